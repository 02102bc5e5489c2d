"""Code run on a library's module as soon as it is imported, without importing it before it is needed: transformers
and diffusers take seconds to import, which a run that uses neither should not pay. Kinograph routes through its
own code a few of their functions that run a stranger's content (chat templates) or that it must be able to stop
(reading a diffusers part's weights)."""
from __future__ import annotations

import importlib.abc
import sys
from typing import Callable, Dict, List

_waiting: Dict[str, List[Callable]] = {}


def after_import(name: str, fn: Callable) -> None:
    """Call `fn(module)` on the module `name` once it has run: now where it is imported already, else as soon as it
    is (once, however often this is asked)."""
    module = sys.modules.get(name)
    if module is not None:
        fn(module)
        return
    waiting = _waiting.setdefault(name, [])
    if fn not in waiting:
        waiting.append(fn)
    if not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds a waited-for module through the other finders and runs its waiting code as soon as the module has run,
    before the modules importing names from it take them."""

    def find_spec(self, name, path, target=None):
        if name not in _waiting:
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else getattr(finder, "find_spec", lambda *a: None)(name, path, target)
            if spec is not None and spec.loader is not None:
                run = spec.loader.exec_module

                def exec_module(module):
                    run(module)
                    for fn in _waiting.pop(name, []):
                        fn(module)
                spec.loader.exec_module = exec_module
                return spec
        return None
