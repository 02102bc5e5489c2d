"""The editor's own preferences (recent files, favourite and recent nodes, snapping) in
`editor.json` beside Kinograph's config, written atomically."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

from graph_engine import config
from graph_engine.errors import NodeError
from graph_engine.workflow import atomic_write_text

MAX_RECENT_FILES = 10
MAX_RECENT_NODES = 8


class EditorSettings:
    def __init__(self, path: Path = None):
        self.path = Path(path) if path else config.config_dir() / "editor.json"
        self.data: Dict[str, Any] = {}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self.data = loaded
        except (OSError, ValueError):
            pass

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.data, indent=1))
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
        self.data[key] = value
        self._save()

    @property
    def recent_files(self) -> List[str]:
        return self._list("recent_files")

    def add_recent_file(self, path: str) -> None:
        items = [p for p in self.recent_files if p != path]
        self.data["recent_files"] = [path] + items[: MAX_RECENT_FILES - 1]
        self._save()

    @property
    def recent_nodes(self) -> List[str]:
        return self._list("recent_nodes")

    def add_recent_node(self, type_name: str) -> None:
        items = [t for t in self.recent_nodes if t != type_name]
        self.data["recent_nodes"] = [type_name] + items[: MAX_RECENT_NODES - 1]
        self._save()

    @property
    def favourites(self) -> List[str]:
        return self._list("favourite_nodes")

    def toggle_favourite(self, type_name: str) -> bool:
        favs = self.favourites
        on = type_name not in favs
        self.data["favourite_nodes"] = favs + [type_name] if on else [t for t in favs if t != type_name]
        self._save()
        return on
