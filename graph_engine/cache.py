"""Result caches: a memory tier (LRU under a byte budget) and an on-disk tier that survives
restarts for nodes that declare themselves expensive.

Disk entries are plain files, never pickles: arrays as .npy (allow_pickle=False), tensors
as safetensors, clips as raw uint8 .npy read back a chunk at a time (so a cached
10,000-frame clip costs no RAM), JSON for scalars, and objects that expose
`to_state()`/`from_state()` (latents, conditioning) as safetensors + JSON."""
from __future__ import annotations

import errno
import glob
import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .atomic import held, hold, remove_abandoned, tree_bytes
from .clip import Audio, Clip, Timecode
from .free_space import disk_room
from .sequence import sequence_files

log = logging.getLogger("kinograph.cache")
# An entry being written: tmp/KEY.XXXXXXXX (mkdtemp's random part).
_TEMP_ENTRY = re.compile(r"[0-9A-Za-z]{16,}\.[a-z0-9_]{8}")


def value_nbytes(v: Any) -> int:
    if isinstance(v, np.ndarray):
        return v.nbytes
    if isinstance(v, Clip):
        return v.chunk * v.width * v.height * (3 if v.matte is None else 4)      # what its chunk caches may hold
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


class ClipFailed(Exception):
    """Computing a lazy clip's frames to store them failed (its __cause__ says why): put raises that error as it
    is, since it is the node's (cancelled, a sampler that broke down), not the cache's."""


def _store_frames(value: Clip, path: Path) -> None:
    # Plain writes, not a memory map: a full disk then raises ENOSPC instead of killing the
    # process with SIGBUS.
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (
            value.length, value.height, value.width, value.channels)})
        frames = value.chunks()
        while True:
            try:
                block = next(frames, None)
            except Exception as e:  # noqa: BLE001 - the clip's own node failed: its error, not the cache's
                raise ClipFailed() from e
            if block is None:
                break
            f.write(np.ascontiguousarray(block[1], np.uint8).tobytes())


# Frame files kept open at once. A batch's session keeps its clips in the memory tier across jobs, one file each:
# unbounded, a night of small renders ran into the per-process limit on open files (1024 on many farms).
OPEN_FRAMES = 128
# Where an open file cannot be deleted (Windows), a clip's file is open only while it is read: held open, the clips
# a session's memory tier keeps made their entries undeletable, by eviction and by `kinograph cache clear`.
_HOLD_OPEN = os.name != "nt"
_opened: "OrderedDict[int, list]" = OrderedDict()     # id of a _FramesFile -> its handle
_open_lock = threading.Lock()


class _FramesFile:
    """A clip's frames stored by _store_frames, read from the file a chunk at a time. Through a memory map (np.load's
    mmap_mode) every page read stayed mapped into the process: reading a cached clip of 300 1080p frames through
    raised its resident memory by the clip's 1.8 GB, all of it at the end.
    The file is read through the handle opened here: the entry may be evicted meanwhile (a later entry of this run
    filling the cap, another worker sharing the folder), and a clip read by its name failed at its next chunk with
    FileNotFoundError on the cache's own file; an open file stays readable. Beyond OPEN_FRAMES the least recently
    read one is closed, and read again through a hard link to it made as it closes (_set_aside): opened again by
    its name, an evicted entry's file failed the same way."""

    def __init__(self, path: Path, sha256: Optional[str] = None):
        self.path, self.sha256 = path, sha256
        # the open file, the link it is read through once closed past OPEN_FRAMES, and its own path; shared with the
        # finalizer that closes it and removes the link with the clip
        self.handle: list = [None, None, path]
        self.identity: Optional[Tuple[int, ...]] = None
        with _open_lock:
            f = self._open()
            try:
                version = np.lib.format.read_magic(f)
                self.shape, fortran, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                              else np.lib.format.read_array_header_2_0)(f)
                self.offset = f.tell()
                if dtype != np.uint8 or fortran or len(self.shape) != 4:
                    raise ValueError(f"{path.name} holds {dtype} {self.shape}, not a clip's uint8 frames")
                self.frame = int(np.prod(self.shape[1:]))
                size, want = os.fstat(f.fileno()).st_size, self.offset + self.shape[0] * self.frame
                if size != want:
                    raise ValueError(f"{path.name} is {size} bytes, not the {want} of its {self.shape[0]} frames")
            except BaseException:
                _FramesFile._close(id(self), self.handle)
                raise
            if not _HOLD_OPEN:
                _FramesFile._close(id(self), self.handle)
        weakref.finalize(self, _FramesFile._finished, self.handle)

    def _open(self):
        """The open file, this one now the most recently read (under _open_lock)."""
        if self.handle[0] is None:
            f = open(self.handle[1] or self.path, "rb")
            self._same(f)
            self.handle[0] = f
            for key in list(_opened):       # the least recently read first; its clip may be gone (see _closing)
                if len(_opened) < OPEN_FRAMES:
                    break
                if _set_aside(_opened[key]):
                    del _opened[key]
        _opened[id(self)] = self.handle
        _opened.move_to_end(id(self))
        return self.handle[0]

    def _same(self, f) -> None:
        """Refuse a file opened again by its name that is no longer the one first read: its entry evicted and the key
        stored again (another GPU's render of the same sampler, whose bytes differ), the clip went on with the other
        render's frames after its first chunks. The same bytes stored again (a deterministic node's) read on."""
        st = os.fstat(f.fileno())
        identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if self.identity not in (None, identity):
            same = self.sha256 is not None and hashlib.file_digest(f, "sha256").hexdigest() == self.sha256
            if not same:
                f.close()
                raise ValueError(f"{self.path} changed while this clip was read (its cache entry was evicted and "
                                 f"stored again with other bytes)")
        self.identity = identity

    @staticmethod
    def _finished(handle: list) -> None:
        """The clip is gone: its file closed and the link it was read through, if any, removed."""
        _FramesFile._closing(handle)
        if handle[1] is not None:
            try:
                os.unlink(handle[1])
            except OSError:     # its cache folder cleared meanwhile
                pass

    @staticmethod
    def _close(key: int, handle: list) -> None:
        _opened.pop(key, None)
        _FramesFile._closing(handle)

    @staticmethod
    def _closing(handle: list) -> None:
        """Close the file, as its clip goes: without _open_lock, which the thread the cycle collector runs in may
        hold (it runs at any allocation, an open() under the lock among them), and taking it there hung the process.
        The clip's entry in _opened stays until the bound pushes it out."""
        f, handle[0] = handle[0], None
        if f is not None:
            f.close()

    def read(self, a: int, b: int) -> np.ndarray:
        block = np.empty((b - a, *self.shape[1:]), np.uint8)
        # One lock for every frames file: a file is never closed (beyond OPEN_FRAMES) while a thread reads it.
        with _open_lock:
            f = self._open()
            f.seek(self.offset + a * self.frame)
            try:
                if f.readinto(memoryview(block).cast("B")) != block.nbytes:
                    raise ValueError(f"{self.path.name} ended before frame {b}")
            finally:
                if not _HOLD_OPEN:
                    _FramesFile._close(id(self), self.handle)
        return block


def _set_aside(handle: list) -> bool:
    """Close a frames file past OPEN_FRAMES, first linking it (hard) under the cache's tmp/ so that it stays
    readable when its entry is evicted, by this process or another sharing the folder; whether it was closed. The
    link is named by host and process, and those of a process of this host no longer running are removed
    (_remove_dead_links). One whose entry is evicted already (no name left to link) is kept open, the only way to
    its frames; where no link can be made otherwise (no hard links on this filesystem) it is closed all the same,
    to be opened again by its name."""
    f, link, path = handle
    if f is None or link is not None:       # the clip is gone, or is read through its link already
        _FramesFile._closing(handle)
        return True
    tmp = path.parents[2] / "tmp"
    link = tmp / f"{_READING}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex}.npy"
    try:
        tmp.mkdir(exist_ok=True)
        if tmp not in _swept_links:     # once a process for each folder
            _swept_links.add(tmp)
            _remove_dead_links(tmp)
        os.link(path, link)
        if os.stat(link).st_ino == os.fstat(f.fileno()).st_ino:
            handle[1] = link
        else:                               # evicted and stored again: not this clip's file
            os.unlink(link)
    except OSError:
        pass
    if handle[1] is None and os.fstat(f.fileno()).st_nlink == 0:
        return False                        # evicted: closed, its frames would be lost
    _FramesFile._closing(handle)
    return True


# the name that begins the links _set_aside makes
_READING = "reading"
_swept_links: set = set()


def _remove_dead_links(tmp: Path) -> None:
    """Remove the links _set_aside made for processes of this host that have ended: a killed process leaves its
    links, which would hold evicted entries' bytes on the disk for ever. Another host's are left: no process of it
    can be asked after."""
    mine = re.compile(rf"{_READING}\.{re.escape(socket.gethostname())}\.(\d+)\.[0-9a-f]{{32}}\.npy")
    try:
        found = list(os.scandir(tmp))
    except OSError:             # no tmp/ yet
        return
    for e in found:
        m = mine.fullmatch(e.name)
        if m and not _running(int(m.group(1))):
            try:
                os.unlink(e.path)
            except OSError:
                pass


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:             # another user's process: running
        return True
    return True


def _storable(value: Any) -> bool:
    """Whether _encode can write the value: one that cannot is not judged by its size (SAM 3's OBJECTS, sized at its
    bound of 64 objects, was 'too large for the disk cache' when no cap would have kept it)."""
    if isinstance(value, Clip) or _is_tensor(value) or (isinstance(value, np.ndarray) and value.dtype != object):
        return True
    if hasattr(value, "to_state") and hasattr(type(value), "from_state"):
        return True
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _encode(value: Any, folder: Path, name: str) -> Optional[Dict[str, Any]]:
    """Write one output value; returns its manifest entry, or None if it cannot live on disk."""
    if isinstance(value, Clip):
        path = folder / f"{name}.frames.npy"
        _store_frames(value, path)
        audio = value.audio.__dict__ if value.audio else None
        timecode = value.timecode.__dict__ if value.timecode else None
        entry = {"codec": "clip", "file": path.name, "fps": value.fps, "audio": audio, "timecode": timecode,
                 "number": value.number}
        if value.matte is not None:     # the clip's alpha, beside its frames
            _store_frames(value.matte, folder / f"{name}.matte.npy")
            entry["matte"] = f"{name}.matte.npy"
        return entry
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
    if not _storable(value):
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
        frames = _FramesFile(folder / entry["file"], entry.get("sha256"))
        shape = frames.shape
        audio = Audio(**entry["audio"]) if entry.get("audio") else None
        timecode = Timecode(**entry["timecode"]) if entry.get("timecode") else None
        clip = Clip(shape[0], entry["fps"], shape[2], shape[1], frames.read, audio, timecode=timecode,
                    number=entry.get("number"), local=True)
        if entry.get("matte"):
            clip = clip.with_matte(_FramesFile(folder / entry["matte"]).read)
        return clip
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


class OverCap(OSError):
    """An entry larger than the cache's whole cap. Written, it evicted every other entry and then itself: the cache
    emptied, gigabytes written for nothing, and a feedback loop's frames computed twice (its readers found no entry
    and read the lazy clip again)."""


def _size_text(n: int) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= 1 << 30 else f"{max(1, n >> 20)} MB"


def _lost_sound(outputs: Dict[str, Any], home: Path) -> Optional[str]:
    """A sound file a clip among `outputs` plays that the cache folder held (a model's decoded sound: LTX-2's) and
    that is gone; as much the entry's damage as a lost frames file, where a user's own sound file that moved is the
    user's to put back."""
    for value in outputs.values():
        if isinstance(value, Clip) and value.audio is not None:
            for track in value.audio.tracks():
                for piece in track:
                    p = Path(piece.path) if piece.path else None
                    if p is not None and p.is_relative_to(home) and not p.is_file():
                        return str(p)
    return None


class DiskCache:
    """One folder per key: `manifest.json` plus data files, written to a temp folder and renamed."""

    def __init__(self, root: Path, cap_bytes: int):
        self.root = Path(root)
        self.cap = cap_bytes
        # What this process knows of the cache: its entries by last use, oldest first, with their bytes (None: not
        # read yet), as its last reading found them plus what it stored and used since; their total; and the bytes
        # it stored since that reading. Reading every entry at every store cost 0.2 s with 600 entries, and a night
        # of stills on a share paid that per job.
        self._known: "Optional[OrderedDict[str, int]]" = None
        self._total = 0
        self._stored = 0
        self._every = cap_bytes / 10    # what this process stores before it reads the folder again
        self._said_stuck = False
        self._known_lock = threading.RLock()

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def has(self, key: str) -> bool:
        return (self._dir(key) / "manifest.json").is_file()

    def get(self, key: str) -> Optional[Tuple[Dict[str, Any], Dict[str, Any]]]:
        """The entry's outputs and results, or None. An entry that is not exactly what was
        written for this key (another key's data, truncated, edited) is a miss, logged and removed."""
        folder = self._dir(key)
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (FileNotFoundError, NotADirectoryError):     # no entry (or the cache folder is a file)
            return None
        except (OSError, ValueError) as e:
            return self._reject(key, f"unreadable manifest ({e})")
        try:
            if manifest.get("key") != key:
                return self._reject(key, "the entry belongs to another key")
            for name, e in manifest["outputs"].items():
                if "file" in e and _digest(folder / e["file"]) != e.get("sha256"):
                    return self._reject(key, f"{e['file']} does not match its recorded content hash")
            outputs = {k: _decode(e, folder) for k, e in manifest["outputs"].items()}
            lost = _lost_sound(outputs, self.root.parent)
            if lost:
                return self._reject(key, f"the sound it carries ({lost}) is gone from the cache folder")
        except Exception as e:      # whatever the damage, a bad entry costs a recomputation, not the run
            return self._reject(key, f"{type(e).__name__}: {e}")
        self.touch(key)
        return outputs, manifest.get("results", {})

    def touch(self, key: str) -> None:
        """Mark the entry used now: eviction goes by last use, whichever tier served it."""
        now = time.time_ns()    # the clock's own: the file system's stamps tick coarsely (4 ms), and entries tied
        try:
            os.utime(self._dir(key) / "manifest.json", ns=(now, now))
        except OSError:         # gone meanwhile, or a read-only cache: nothing to order
            return
        with self._known_lock:
            if self._known is not None and key in self._known:
                self._known.move_to_end(key)

    def _reject(self, key: str, why: str) -> None:
        log.warning("disk cache entry %s ignored and removed: %s; the node runs again", key, why)
        # Only the cache's own entry: a folder named by its key under the cache root, which put() created.
        shutil.rmtree(self._dir(key), ignore_errors=True)
        with self._known_lock:      # counted past the cap, it would have evicted a good entry in its place
            if self._known is not None and key in self._known and not self._dir(key).exists():
                self._total -= self._known.pop(key)
        return None

    def put(self, key: str, outputs: Dict[str, Any], results: Dict[str, Any], node_type: str) -> bool:
        """Store an entry. Any failure (disk full, read-only, a value that will not encode) leaves
        no partial entry and is raised as OSError, which callers report as a warning; an error while a
        clip's frames are computed to be stored is the clip's node's, raised as it is."""
        final = self._dir(key)
        if final.exists():
            return True
        if not all(_storable(v) for v in outputs.values()):
            return False
        # A clip's whole length goes to disk (value_nbytes counts only what it holds in memory).
        need = sum(v.length * v.width * v.height * (3 if v.matte is None else 4) if isinstance(v, Clip)
                   else value_nbytes(v)
                   for v in outputs.values())
        if need > self.cap:
            raise OverCap(errno.EFBIG, f"the result takes {_size_text(need)} and the disk cache holds at most "
                                       f"{_size_text(self.cap)}")
        tmp, lock = None, -1
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Entries a killed process was writing (a clip's can be gigabytes) are counted by no cap:
            # they go before the free space is judged.
            remove_abandoned(self.root / "tmp", _TEMP_ENTRY)
            # Leave room for the render's own output: the cache never takes the last 64 MB.
            room = disk_room(self.root)
            if room is not None and room.free < need + (64 << 20):
                raise OSError(errno.ENOSPC, f"No space left: {room.free >> 20} MB free, the entry needs "
                                            f"{max(1, need >> 20)} MB and the cache leaves 64 MB for outputs")
            (self.root / "tmp").mkdir(exist_ok=True)
            # `tmp` is made here by mkdtemp and is the only folder the removals below touch.
            tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=self.root / "tmp"))
            lock = hold(tmp)
            entries = {}
            for name, v in outputs.items():
                e = _encode(v, tmp, name)
                if e is None:
                    shutil.rmtree(tmp, ignore_errors=True)
                    return False
                if "file" in e:
                    e["sha256"] = _digest(tmp / e["file"])
                entries[name] = e
            (tmp / "manifest.json").write_text(json.dumps(
                {"key": key, "type": node_type, "outputs": entries, "results": results, "created": time.time()}))
            final.parent.mkdir(parents=True, exist_ok=True)
            stored = tree_bytes(tmp)
            try:
                os.replace(tmp, final)
            except OSError:       # another worker sharing this folder wrote the same key first
                shutil.rmtree(tmp, ignore_errors=True)
            # Read again after this process stored a tenth of the cap (less when others store too): the entries other
            # workers sharing the folder stored are counted then. Between readings it evicts by what it knows: a full
            # cache (a farm's, after its first night) is past its cap at every store, and reading it whole each time
            # was the cost again.
            with self._known_lock:
                self._stored += stored
                if self._known is None or self._stored >= self._every:
                    self.evict()
                else:
                    self._total += stored - self._known.pop(key, 0)
                    self._known[key] = stored
                    self._trim()
        except Exception as e:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, ClipFailed):
                raise e.__cause__ from None
            if isinstance(e, OSError):
                raise
            raise OSError(f"{type(e).__name__}: {e}") from e
        finally:
            if lock >= 0:
                os.close(lock)
        return True

    def entries(self) -> List[Dict[str, Any]]:
        out = []
        if not self.root.is_dir():
            return out
        for man in self.root.glob("??/*/manifest.json"):
            folder = man.parent
            try:
                size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
                used = man.stat().st_mtime
            except OSError:                      # removed meanwhile
                continue
            try:
                meta = json.loads(man.read_text())
            except (OSError, ValueError):
                meta = None
            # A damaged manifest (valid JSON but not an entry's: null, a list) still counts, so the cap evicts it;
            # it made `kinograph cache` and every eviction fail with AttributeError.
            node_type = meta.get("type", "?") if isinstance(meta, dict) else "?"
            out.append({"key": folder.name, "type": node_type, "bytes": size, "used": used})
        return out

    def size(self) -> int:
        return sum(e["bytes"] for e in self.entries())

    def evict(self) -> None:
        """Read the cache folder and remove the least recently used entries past the cap."""
        with self._known_lock:
            entries = sorted(self.entries(), key=lambda e: e["used"])
            found = sum(e["bytes"] for e in entries)
            if self._known is not None:
                # Others sharing the folder stored meanwhile: eight workers each storing a tenth of the cap between
                # readings held it two thirds past its cap. Read again sooner, by how much more they stored than this.
                others = sum(e["bytes"] for e in entries if e["key"] not in self._known) / max(self._stored, 1)
                self._every = self.cap / 10 / (1 + others)
            self._known = OrderedDict((e["key"], e["bytes"]) for e in entries)
            self._total, self._stored = found, 0
            self._trim()

    def _trim(self) -> None:
        """Remove the least recently used known entries while the cache is past its cap (under _known_lock)."""
        stuck = 0
        while self._total > self.cap and self._known:
            key, size = self._known.popitem(last=False)
            shutil.rmtree(self._dir(key), ignore_errors=True)
            # Counted as gone only when it is: one that stays (another user's in a shared folder, a read-only share)
            # had stopped eviction, and the cache stayed past its cap without a word. It stays counted, not listed.
            if self._dir(key).exists():
                stuck += 1
            else:
                self._total -= size
        if stuck and self._total > self.cap and not self._said_stuck:
            self._said_stuck = True     # once: every later reading finds them again
            log.warning("disk cache %s: %d entries could not be removed (another user's, or a read-only folder), "
                        "so it holds %s past its cap of %s", self.root, stuck, _size_text(self._total - self.cap),
                        _size_text(self.cap))

    def clear(self) -> Tuple[int, Optional[str]]:
        """Remove every entry and unfinished write; returns how many entries went, and why some could
        not go (a read-only cache folder, another user's), or None. Only what the cache itself lays
        out goes: `--cache-dir` may name a project folder whose `results/` also holds someone's
        files, and those stay (see `others`)."""
        if not self.root.is_dir():
            return 0, None
        n, why = 0, []

        def failed(func, path, exc_info):
            why.append(getattr(exc_info[1], "strerror", None) or str(exc_info[1]))
        for folder in self.root.glob("??/*"):
            if _is_entry(folder):
                shutil.rmtree(folder, onerror=failed)
                # Counted only when gone: a read-only cache said 'removed 1' and served the entry next run.
                n += not folder.exists()
        # Unfinished writes, but those a live writer holds: a clear from another shell deleted a farm job's entry
        # half-written, and the job lost its result.
        try:
            temps = [e for e in os.scandir(self.root / "tmp")
                     if e.is_dir(follow_symlinks=False) and _looks_like_key(e.name.split(".", 1)[0])]
        except OSError:
            temps = []
        for e in temps:
            # Where no lock tells a writer from a killed one (Windows, NFS), none was ever removed: they go, as before.
            if not held(e.path):
                shutil.rmtree(e.path, ignore_errors=True)
        # the links killed processes read evicted clips through: a few clips' worth of bytes each, which only a
        # later process closing clips past OPEN_FRAMES in this cache swept
        _remove_dead_links(self.root / "tmp")
        for d in [*self.root.glob("??"), self.root / "tmp", self.root]:
            try:
                d.rmdir()           # only when empty: anything else in it is not ours
            except OSError:
                pass
        return n, (why[0] if why else None)

    def others(self) -> List[str]:
        """Names in the cache folder that are not the cache's own (what `clear` leaves)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if not (p.name == "tmp" or (len(p.name) == 2 and p.is_dir()
                                                  and all(_is_entry(e) for e in p.iterdir()))))


def _looks_like_key(name: str) -> bool:
    return len(name) >= 16 and name.isalnum()


def _is_entry(folder: Path) -> bool:
    """A folder laid out as one of the cache's entries: `XX/XXkey/manifest.json`."""
    return (folder.is_dir() and folder.name[:2] == folder.parent.name and _looks_like_key(folder.name)
            and (folder / "manifest.json").is_file())


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# A single input file up to this size is fingerprinted by its content too, so a file replaced
# by another of the same size and times still changes the key; inode and change time (which no
# copy can keep) cover bigger files and the files of folders and globs.
CONTENT_HASH_BYTES = 8 << 20
_content_memo: Dict[Tuple, str] = {}


def file_identity(st: os.stat_result) -> List[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def fingerprint(path: str) -> Any:
    """Identity of what a path param points at, for cache keys: files, folders, globs or sequences
    (shot.####.exr)."""
    try:
        if any(c in path for c in "*?["):
            return [(f, file_identity(os.stat(f))) for f in sorted(glob.glob(path))]
        sequence = sequence_files(path)
        if sequence is not None:
            return [(f, file_identity(os.stat(f))) for f in sorted(sequence)]
        st = os.stat(path)
        if os.path.isdir(path):
            return _folder_identity(path)
        ident = file_identity(st)
        # Only a plain file is read: a named pipe or a device (/dev/zero, size 0) blocked or never ended.
        if stat.S_ISREG(st.st_mode) and st.st_size <= CONTENT_HASH_BYTES:
            memo = (path, *ident)
            if memo not in _content_memo:
                _content_memo[memo] = _digest(Path(path))
            ident.append(_content_memo[memo])
        return ident
    except OSError:
        return None


def _folder_identity(path: str) -> List[Tuple[str, List[int]]]:
    """The files of a folder and of its sub-folders one level down. A diffusers or Hugging Face
    folder keeps its weights there (transformer/, vae/, text_encoder/), so weights replaced in place
    must change the key; deeper levels are not a model layout, and walking them (a project or a
    drive named by mistake) would stall every plan."""
    files = []
    for e in sorted(os.scandir(path), key=lambda e: e.name):
        if e.is_file():
            files.append((e.name, file_identity(e.stat())))
        elif e.is_dir():
            files += [(f"{e.name}/{s.name}", file_identity(s.stat()))
                      for s in sorted(os.scandir(e.path), key=lambda s: s.name) if s.is_file()]
    return files


def hash_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()[:32]
