"""Discovers node types: built-ins under `nodes/`, the `kinograph.nodes` entry-point group,
and a user nodes folder. Only files that declare nodes are imported, so helper modules
with heavy imports (torch, diffusers) stay unloaded until a node actually runs."""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional

from .node_api import NodeSpec, take_pending

_MARKER = "@node("


class Registry:
    def __init__(self):
        self.specs: Dict[str, NodeSpec] = {}
        self.load_errors: List[str] = []

    def add(self, spec: NodeSpec) -> None:
        old = self.specs.get(spec.type)
        if old is not None and old.func is not spec.func and old.module != spec.module:
            self.load_errors.append(f"node type {spec.type!r} from {spec.module} replaces the one from {old.module}")
        self.specs[spec.type] = spec

    def register(self, *funcs) -> None:
        """Add node functions declared with @node (for tests and embedding applications)."""
        pending = take_pending()
        for f in funcs:
            self.add(f.__kinograph_spec__)
        # Declarations not passed here stay pending for whoever loads next.
        from .node_api import _PENDING
        _PENDING.extend(s for s in pending if all(s is not f.__kinograph_spec__ for f in funcs))

    def get(self, type_name: str) -> Optional[NodeSpec]:
        return self.specs.get(type_name)

    def __contains__(self, type_name: str) -> bool:
        return type_name in self.specs

    def __iter__(self):
        return iter(sorted(self.specs))

    def suggest(self, type_name: str) -> str:
        return did_you_mean(type_name, self.specs)

    def _collect(self) -> None:
        for spec in take_pending():
            self.add(spec)

    def _scan(self, module) -> None:
        """Register the node functions a module defines (imports are cached, so scan, don't rely
        on declarations happening during this import)."""
        for obj in vars(module).values():
            spec = getattr(obj, "__kinograph_spec__", None)
            if spec is not None and spec.module == module.__name__:
                self.add(spec)

    def load_builtin(self) -> None:
        import nodes
        root = Path(nodes.__file__).parent
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            try:
                if _MARKER not in path.read_text(encoding="utf-8"):
                    continue
            except OSError:
                continue
            rel = path.relative_to(root.parent).with_suffix("")
            mod = ".".join(rel.parts)
            if mod.endswith(".__init__"):
                mod = mod[: -len(".__init__")]
            self._import(mod)
        self._collect()

    def load_entry_points(self) -> None:
        from importlib.metadata import entry_points
        for ep in entry_points(group="kinograph.nodes"):
            try:
                ep.load()
                self._scan(importlib.import_module(ep.module))
            except Exception as e:  # a broken third-party pack must not take the app down
                self.load_errors.append(f"node pack {ep.name!r} ({ep.value}) failed to load: {e}")
        self._collect()

    def load_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.py")):
            name = f"kinograph_user_nodes.{path.stem}"
            try:
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
                self._scan(module)
            except Exception as e:
                self.load_errors.append(f"user node file {path} failed to load: {e}")
        self._collect()

    def _import(self, mod: str) -> None:
        try:
            self._scan(importlib.import_module(mod))
        except Exception as e:
            self.load_errors.append(f"built-in node module {mod} failed to load: {type(e).__name__}: {e}")


def did_you_mean(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_DEFAULT: Optional[Registry] = None


def user_nodes_dir() -> Path:
    env = os.environ.get("KINOGRAPH_NODES_DIR")
    if env:
        return Path(env)
    from .config import config_dir
    return config_dir() / "nodes"


def default_registry() -> Registry:
    """The process-wide registry with built-ins, entry points and the user folder loaded."""
    global _DEFAULT
    if _DEFAULT is None:
        reg = Registry()
        reg.load_builtin()
        reg.load_entry_points()
        reg.load_folder(user_nodes_dir())
        for msg in reg.load_errors:
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        _DEFAULT = reg
    return _DEFAULT
