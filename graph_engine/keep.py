"""Frames kept between the runs of one session (the editor): a lazy clip's costly chunks go to disk as they are
computed, and a later run that the memory cache serves the clip to reads them back instead of computing them again.

The memory cache holds a node's lazy Clip, not its frames. Re-running after a change downstream of a temporal node
(load -> restore.denoise -> color.grade, grade's exposure changed) found denoise "cached" and still computed every
one of its frames again, a few tenths of a second each at 1080p, on every tweak. Only chunks whose own computing
took longer than reading them back would are kept (a decode, a colour table or a resize is cheaper than the disk:
those are computed again), under a byte budget, least recently used out first. A clip the memory cache lets go
takes its chunks with it; the session's folder goes when the session ends, and what a killed one left goes at the
next session's first write. Chunks are the clip's own reads (a local clip's part of one), so a kept frame is byte
for byte the frame computed."""
from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Optional, Set, Tuple

import numpy as np

from .atomic import hold, remove_abandoned
from .clip import Clip, WorkMeter
from .free_space import disk_room

# A session's folder: mkdtemp(prefix="keep-") names it keep-XXXXXXXX.
KEEP_FOLDER = re.compile(r"keep-[A-Za-z0-9_]{8}")
# A chunk is worth keeping when computing it (its node's own work, upstream apart) took longer than reading it
# back at this rate would (62 ms a 1080p frame): a disk or the page cache reads a GB/s and more, and a decoder
# (25-60 ms a 1080p frame on a busy 2-core machine, a few ms on a workstation) is not worth 6 MB a frame of disk.
WORTH_BYTES_PER_SECOND = 100 << 20


def worth_keeping(seconds: float, nbytes: int) -> bool:
    """Whether frames that took `seconds` to compute are worth writing to disk to read back later."""
    return seconds * WORTH_BYTES_PER_SECOND > nbytes


# Free space the kept frames never take (or a tenth of the disk, if more): the render's own outputs come first.
FREE_MARGIN = 1 << 30


class FrameStore:
    def __init__(self, root: Path, budget: int):
        self.root, self.budget = Path(root), int(budget)
        self.bytes = 0                  # kept now
        self.written = 0                # written in all (for benches and tests)
        # (clip, first frame, stop) -> bytes: a local clip's chunk may be read in part (graph_engine.clip)
        self._chunks: "OrderedDict[Tuple[int, int, int], int]" = OrderedDict()
        self._of: Dict[int, Set[Tuple[int, int]]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        # Mutable, so the finalizer (at exit, or when the session goes) sees the folder made later.
        self._state: Dict[str, object] = {"dir": None, "fd": -1, "unwritable": False}
        self._final = weakref.finalize(self, _remove, self._state)

    def keep(self, clip: Clip, meter: WorkMeter) -> Clip:
        """`clip` (a WorkMeter-wrapped node output) as a clip whose costly chunks are kept for later runs."""
        n = next(self._ids)
        source = clip._reader
        shape = (clip.height, clip.width, clip.channels)

        def read(a: int, b: int) -> np.ndarray:
            block = self._get(n, a, b, shape)
            if block is not None:
                return block
            block = np.asarray(source(a, b))
            if worth_keeping(meter.last_own(), block.nbytes):
                self._put(n, a, b, block)
            return block

        # The alpha (Clip.matte), a clip of its own, is kept alike.
        matte = None if clip.matte is None else self.keep(clip.matte, meter)
        out = clip.wrapped(read, matte)
        # Not at exit: the session's folder goes then, all at once.
        weakref.finalize(out, self._forget, n).atexit = False
        return out

    def close(self) -> None:
        """Delete every kept chunk and the session's folder."""
        with self._lock:
            self._chunks.clear()
            self._of.clear()
            self.bytes = 0
            self._state["unwritable"] = True     # nothing is kept after the session
        self._final()

    # -- chunks -----------------------------------------------------------------------------------
    def _path(self, n: int, a: int, b: int) -> Path:
        return Path(self._state["dir"]) / f"{n}-{a}-{b}.raw"

    def _get(self, n: int, a: int, b: int, shape) -> Optional[np.ndarray]:
        with self._lock:
            if (n, a, b) not in self._chunks:
                return None
            self._chunks.move_to_end((n, a, b))
            path = self._path(n, a, b)
        try:
            return np.fromfile(path, np.uint8).reshape((b - a, *shape))
        except (OSError, ValueError):       # removed under us (a cleaner, a full disk's cut write): compute it
            with self._lock:
                self._drop(n, a, b)
            return None

    def _put(self, n: int, a: int, b: int, block: np.ndarray) -> None:
        with self._lock:
            if block.nbytes > self.budget or (n, a, b) in self._chunks or not self._folder():
                return
            path = self._path(n, a, b)
            try:
                disk = disk_room(path.parent)
                if disk is not None and disk.free - block.nbytes < max(FREE_MARGIN, disk.total // 10):
                    return
                np.ascontiguousarray(block).tofile(path)
            except OSError:                 # disk full, folder gone: the run goes on, the chunk is not kept
                path.unlink(missing_ok=True)
                return
            self._chunks[(n, a, b)] = block.nbytes
            self._of.setdefault(n, set()).add((a, b))
            self.bytes += block.nbytes
            self.written += block.nbytes
            while self.bytes > self.budget and self._chunks:
                self._drop(*next(iter(self._chunks)))

    def _drop(self, n: int, a: int, b: int) -> None:
        """Under the lock: forget one chunk and delete its file."""
        nbytes = self._chunks.pop((n, a, b), None)
        if nbytes is None:
            return
        self.bytes -= nbytes
        self._of.get(n, set()).discard((a, b))
        if self._state["dir"] is None:      # the session's folder went with all of it
            return
        try:
            self._path(n, a, b).unlink()
        except OSError:
            pass

    def _forget(self, n: int) -> None:
        with self._lock:
            for a, b in sorted(self._of.pop(n, ())):
                self._drop(n, a, b)

    def _folder(self) -> Optional[Path]:
        """Under the lock: the session's folder, made at the first chunk kept; None where none can be made."""
        st = self._state
        if st["dir"] is None and not st["unwritable"]:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                remove_abandoned(self.root, KEEP_FOLDER)     # a live session holds its folder's lock
                st["dir"] = tempfile.mkdtemp(prefix="keep-", dir=self.root)
                st["fd"] = hold(st["dir"])
            except OSError:
                st["unwritable"] = True
        return Path(st["dir"]) if st["dir"] else None


def _remove(state: Dict[str, object]) -> None:
    if state["dir"]:
        shutil.rmtree(state["dir"], ignore_errors=True)
    if state["fd"] >= 0:
        os.close(state["fd"])
    state["dir"], state["fd"] = None, -1
