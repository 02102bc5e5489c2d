"""Discovers node types. There is one way in: a module whose `@node` functions are registered.

Modules come from the `kinograph.nodes` entry-point group (Kinograph's own nodes are declared
there like any third-party pack, see pyproject.toml) and from the user nodes folder. An entry
point names a module; if that module lists `NODE_MODULES` (names of further modules), those are
registered too, so a pack with many files needs one entry point. Only the listed modules are
imported, so helper modules with heavy imports (torch, diffusers) stay unloaded until a node runs."""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Set

from .node_api import NodeSpec

GROUP = "kinograph.nodes"


class Registry:
    def __init__(self):
        self.specs: Dict[str, NodeSpec] = {}
        self.load_errors: List[str] = []
        # Top-level packages nodes were registered from: the disk cache rebuilds values of
        # classes from these packages only (see cache.trust_package).
        self.packages: Set[str] = set()

    def add(self, spec: NodeSpec) -> None:
        old = self.specs.get(spec.type)
        if old is not None and old.func is not spec.func and old.module != spec.module:
            self.load_errors.append(f"node type {spec.type!r} from {spec.module} replaces the one from {old.module}")
        self.specs[spec.type] = spec
        package = spec.module.split(".", 1)[0]
        if package not in self.packages:
            from .cache import trust_package
            trust_package(package)
            self.packages.add(package)

    def register(self, *funcs) -> None:
        """Add node functions declared with @node (for tests and embedding applications)."""
        for f in funcs:
            self.add(f.__kinograph_spec__)

    def get(self, type_name: str) -> Optional[NodeSpec]:
        return self.specs.get(type_name)

    def __contains__(self, type_name: str) -> bool:
        return type_name in self.specs

    def __iter__(self):
        return iter(sorted(self.specs))

    def suggest(self, type_name: str) -> str:
        return did_you_mean(type_name, self.specs)

    def register_module(self, module) -> None:
        """Register the node functions `module` defines (not ones it merely imports), then the
        modules named in its NODE_MODULES."""
        for obj in vars(module).values():
            spec = getattr(obj, "__kinograph_spec__", None)
            if spec is not None and spec.module == module.__name__:
                self.add(spec)
        for name in getattr(module, "NODE_MODULES", ()):
            try:
                self.register_module(importlib.import_module(name))
            except (Exception, SystemExit) as e:  # one broken module must not hide the others
                self.load_errors.append(f"node module {name} (listed by {module.__name__}) failed to load: "
                                        f"{_why(e)}")

    def load_entry_points(self) -> None:
        from importlib.metadata import entry_points
        found = False
        for ep in entry_points(group=GROUP):
            found = True
            try:
                self.register_module(importlib.import_module(ep.module))
            except (Exception, SystemExit) as e:  # a broken third-party pack must not take the app down
                self.load_errors.append(f"node pack {ep.name!r} ({ep.value}) failed to load: {_why(e)}")
        if not found:
            self.load_errors.append(f"no node packs are installed (entry-point group {GROUP!r} is empty): "
                                    "install Kinograph with `make install` (or `pip install -e .`) so its "
                                    "built-in nodes are registered")

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
                self.register_module(module)
            except SystemExit as e:
                self.load_errors.append(f"user node file {path} failed to load: {_why(e)} (a script, not a node "
                                        "file? move it out of this folder)")
            except Exception as e:
                self.load_errors.append(f"user node file {path} failed to load: {e}")


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
    """The process-wide registry with the installed node packs and the user folder loaded."""
    global _DEFAULT
    if _DEFAULT is None:
        reg = Registry()
        reg.load_entry_points()
        reg.load_folder(user_nodes_dir())
        for msg in reg.load_errors:
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        _DEFAULT = reg
    return _DEFAULT


def _why(e: BaseException) -> str:
    """Why a node module failed to load. One calling sys.exit as it is imported (a script ending in sys.exit, one
    reading its command line with argparse) ended every command as the nodes loaded: sys.exit(0) made a farm's
    renders exit 0 with nothing written, argparse's 2 read as a wrong workflow."""
    if isinstance(e, SystemExit):
        return f"it called sys.exit({e.code!r}) as it was imported"
    return f"{type(e).__name__}: {e}"
