"""The editor's own preferences (recent files, favourite and recent nodes, snapping, each workflow's last view) in
`editor.json` beside Kinograph's config, written atomically."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from graph_engine import config
from graph_engine.errors import NodeError
from graph_engine.workflow import atomic_write_text

MAX_RECENT_FILES = 10
MAX_RECENT_NODES = 8
MAX_VIEWS = 50


class EditorSettings:
    def __init__(self, path: Path = None):
        self.path = Path(path) if path else config.config_dir() / "editor.json"
        self.data: Dict[str, Any] = {}
        self._seen: Optional[Tuple[int, int]] = None       # the file's (mtime, size) as last read or written here
        self._read()

    def _stamp(self) -> Optional[Tuple[int, int]]:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _read(self) -> None:
        """The file as it is now, when it changed since this editor last read or wrote it: another editor open (two
        workflows double-clicked) writes it too, and a change made to the copy read at start (a view saved at each
        autosave tick) put back that editor's recent files and favourites as they were then. Unchanged, what is
        held here stays (a config folder that cannot be written keeps this session's changes)."""
        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        self._seen = stamp
        if isinstance(loaded, dict):
            self.data = loaded

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.data, indent=1))
            self._seen = self._stamp()
        except (OSError, NodeError):
            # Preferences are a convenience; never fail an edit over them. NodeError: a folder that cannot be
            # written (a read-only config folder, a locked-down account) raised out of Save after the file was saved.
            pass

    def _list(self, key: str) -> List[str]:
        v = self.data.get(key)
        return [str(x) for x in v] if isinstance(v, list) else []

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._read()
        self.data[key] = value
        self._save()

    @property
    def recent_files(self) -> List[str]:
        return self._list("recent_files")

    def add_recent_file(self, path: str) -> None:
        self._read()
        items = [p for p in self.recent_files if p != path]
        self.data["recent_files"] = [path] + items[: MAX_RECENT_FILES - 1]
        self._save()

    def view_of(self, path: str) -> Optional[Tuple[float, float, float]]:
        """(x, y, zoom) of the canvas when workflow `path` was last closed here: the scene point at its top left."""
        v = (self.data.get("views") or {}).get(path) if isinstance(self.data.get("views"), dict) else None
        ok = isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) and math.isfinite(x) for x in v)
        return (float(v[0]), float(v[1]), float(v[2])) if ok and v[2] > 0 else None

    def remember_view(self, path: str, view: Tuple[float, float, float]) -> None:
        self._read()
        views = self.data.get("views") if isinstance(self.data.get("views"), dict) else {}
        views.pop(path, None)
        views[path] = [round(view[0], 1), round(view[1], 1), round(view[2], 4)]
        self.data["views"] = dict(list(views.items())[-MAX_VIEWS:])
        self._save()

    @property
    def recent_nodes(self) -> List[str]:
        return self._list("recent_nodes")

    def add_recent_node(self, type_name: str) -> None:
        self._read()
        items = [t for t in self.recent_nodes if t != type_name]
        self.data["recent_nodes"] = [type_name] + items[: MAX_RECENT_NODES - 1]
        self._save()

    @property
    def favourites(self) -> List[str]:
        return self._list("favourite_nodes")

    def toggle_favourite(self, type_name: str) -> bool:
        self._read()
        favs = self.favourites
        on = type_name not in favs
        self.data["favourite_nodes"] = favs + [type_name] if on else [t for t in favs if t != type_name]
        self._save()
        return on
