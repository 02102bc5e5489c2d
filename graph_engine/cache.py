"""Result caches: a memory tier (LRU under a byte budget) and an on-disk tier that survives
restarts for nodes that declare themselves expensive.

Disk entries are plain files, never pickles: arrays as .npy (allow_pickle=False), tensors
as safetensors, clips as raw uint8 .npy read back through a memory map (so a cached
10,000-frame clip costs no RAM), JSON for scalars, and objects that expose
`to_state()`/`from_state()` (latents, conditioning) as safetensors + JSON."""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .clip import Audio, Clip


def value_nbytes(v: Any) -> int:
    if isinstance(v, np.ndarray):
        return v.nbytes
    if isinstance(v, Clip):
        return v.chunk * v.width * v.height * 3      # what its chunk cache may hold
    if hasattr(v, "element_size") and hasattr(v, "numel"):
        return int(v.element_size() * v.numel())
    if hasattr(v, "nbytes_estimate"):
        return int(v.nbytes_estimate())
    if isinstance(v, (list, tuple)):
        return sum(value_nbytes(x) for x in v) + 64
    if isinstance(v, dict):
        return sum(value_nbytes(x) for x in v.values()) + 64
    return 256


class MemoryCache:
    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self._items: "OrderedDict[str, Tuple[Any, int]]" = OrderedDict()
        self.bytes = 0

    def get(self, key: str):
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: str, value: Any) -> None:
        size = value_nbytes(value)
        if key in self._items:
            self.bytes -= self._items.pop(key)[1]
        if size > self.budget:
            return
        self._items[key] = (value, size)
        self.bytes += size
        while self.bytes > self.budget and self._items:
            _, (_, s) = self._items.popitem(last=False)
            self.bytes -= s

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def __len__(self):
        return len(self._items)


# -- disk tier ---------------------------------------------------------------------------------
def _is_tensor(v) -> bool:
    return type(v).__module__.startswith("torch") and hasattr(v, "numel")


def _encode(value: Any, folder: Path, name: str) -> Optional[Dict[str, Any]]:
    """Write one output value; returns its manifest entry, or None if it cannot live on disk."""
    if isinstance(value, Clip):
        path = folder / f"{name}.frames.npy"
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                        shape=(value.length, value.height, value.width, 3))
        for a, block in value.chunks():
            arr[a:a + len(block)] = block
        arr.flush()
        del arr
        audio = value.audio.__dict__ if value.audio else None
        return {"codec": "clip", "file": path.name, "fps": value.fps, "audio": audio}
    if isinstance(value, np.ndarray) and value.dtype != object:
        np.save(folder / f"{name}.npy", value, allow_pickle=False)
        return {"codec": "npy", "file": f"{name}.npy"}
    if _is_tensor(value):
        from safetensors.torch import save_file
        save_file({"t": value.detach().cpu().contiguous()}, str(folder / f"{name}.safetensors"))
        return {"codec": "tensor", "file": f"{name}.safetensors"}
    if hasattr(value, "to_state") and hasattr(type(value), "from_state"):
        tensors, meta = value.to_state()
        from safetensors.torch import save_file
        save_file({k: t.detach().cpu().contiguous() for k, t in tensors.items()},
                  str(folder / f"{name}.safetensors"))
        cls = type(value)
        return {"codec": "state", "file": f"{name}.safetensors", "class": f"{cls.__module__}:{cls.__qualname__}",
                "meta": meta}
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return {"codec": "json", "value": value}


_TRUSTED = {"graph_engine"}


def trust_package(package: str) -> None:
    """Let disk entries rebuild classes from `package` (the registry calls this for each node pack)."""
    _TRUSTED.add(package)


def _decode(entry: Dict[str, Any], folder: Path) -> Any:
    codec = entry["codec"]
    if codec == "json":
        return entry["value"]
    if codec == "npy":
        return np.load(folder / entry["file"], allow_pickle=False)
    if codec == "clip":
        arr = np.load(folder / entry["file"], mmap_mode="r", allow_pickle=False)
        audio = Audio(**entry["audio"]) if entry.get("audio") else None
        return Clip(arr.shape[0], entry["fps"], arr.shape[2], arr.shape[1],
                    lambda a, b: np.array(arr[a:b]), audio)
    if codec == "tensor":
        from safetensors.torch import load_file
        return load_file(str(folder / entry["file"]))["t"]
    if codec == "state":
        mod, qual = entry["class"].split(":")
        # Only classes of packages the registry loaded nodes from are rebuilt from a cache entry.
        if mod.split(".", 1)[0] not in _TRUSTED:
            raise ValueError(f"refusing to rebuild {entry['class']} from the cache")
        cls = importlib.import_module(mod)
        for part in qual.split("."):
            cls = getattr(cls, part)
        from safetensors.torch import load_file
        return cls.from_state(load_file(str(folder / entry["file"])), entry["meta"])
    raise ValueError(f"unknown cache codec {codec!r}")


class DiskCache:
    """One folder per key: `manifest.json` plus data files, written to a temp folder and renamed."""

    def __init__(self, root: Path, cap_bytes: int):
        self.root = Path(root)
        self.cap = cap_bytes

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def has(self, key: str) -> bool:
        return (self._dir(key) / "manifest.json").is_file()

    def get(self, key: str) -> Optional[Tuple[Dict[str, Any], Dict[str, Any]]]:
        folder = self._dir(key)
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            outputs = {k: _decode(e, folder) for k, e in manifest["outputs"].items()}
        except (OSError, ValueError, KeyError):
            return None
        try:
            os.utime(folder / "manifest.json")     # LRU order is by last use
        except OSError:
            pass
        return outputs, manifest.get("results", {})

    def put(self, key: str, outputs: Dict[str, Any], results: Dict[str, Any], node_type: str) -> bool:
        final = self._dir(key)
        if final.exists():
            return True
        tmp = self.root / "tmp" / f"{key}.{os.getpid()}.{time.monotonic_ns()}"
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            entries = {}
            for name, v in outputs.items():
                e = _encode(v, tmp, name)
                if e is None:
                    shutil.rmtree(tmp, ignore_errors=True)
                    return False
                entries[name] = e
            (tmp / "manifest.json").write_text(json.dumps(
                {"type": node_type, "outputs": entries, "results": results, "created": time.time()}))
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(tmp, final)
            except OSError:       # another worker sharing this folder wrote the same key first
                shutil.rmtree(tmp, ignore_errors=True)
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.evict()
        return True

    def entries(self) -> List[Dict[str, Any]]:
        out = []
        if not self.root.is_dir():
            return out
        for man in self.root.glob("??/*/manifest.json"):
            folder = man.parent
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            try:
                node_type = json.loads(man.read_text()).get("type", "?")
            except (OSError, ValueError):
                node_type = "?"
            out.append({"key": folder.name, "type": node_type, "bytes": size, "used": man.stat().st_mtime})
        return out

    def size(self) -> int:
        return sum(e["bytes"] for e in self.entries())

    def evict(self) -> None:
        entries = sorted(self.entries(), key=lambda e: e["used"])
        total = sum(e["bytes"] for e in entries)
        for e in entries:
            if total <= self.cap:
                break
            shutil.rmtree(self._dir(e["key"]), ignore_errors=True)
            total -= e["bytes"]

    def clear(self) -> int:
        n = len(self.entries())
        if self.root.is_dir():
            shutil.rmtree(self.root, ignore_errors=True)
        return n


def hash_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()[:32]
