"""A clip that several nodes of one run read is computed once: its costly chunks go to disk as the first reader
pulls them, and the other readers get them back from there (cheap ones, keep.worth_keeping, are computed again).

Clips are lazy, and each consumer reads the whole clip in turn (a save_video, then a save_frames or a
metrics.report), so a chain feeding two outputs ran twice: an upscale or a stylization feeding an MP4 and
a PNG sequence cost double. Holding the frames in memory would make memory grow with the clip's length;
the disk holds them instead, for the run only. Chunks are the source clip's own, so what a reader gets is
byte for byte what the source gives."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, Hashable, Optional

import numpy as np

from .atomic import hold, remove_abandoned
from . import keep
from .clip import Clip
from .free_space import disk_room

# A run's folder: mkdtemp(prefix="run-") names it run-XXXXXXXX.
RUN_FOLDER = re.compile(r"run-[A-Za-z0-9_]{8}")


class Spill:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir: Optional[Path] = None
        self.unwritable = False         # the folder could not be made: the run recomputes instead
        self.lock = -1
        self.shared: Dict[Hashable, "_Shared"] = {}
        self._lock = threading.Lock()

    def share(self, key: Hashable, clip: Clip) -> Clip:
        """The clip as its readers in this run see it: one computation, however many read it."""
        with self._lock:
            if key not in self.shared:
                self.shared[key] = _Shared(self, clip, len(self.shared))
            return self.shared[key].clip

    def folder(self) -> Optional[Path]:
        """This run's folder, made at the first chunk that needs it; None where none can be made (the run goes
        on, recomputing as before)."""
        with self._lock:
            if self.dir is None and not self.unwritable:
                try:
                    self.root.mkdir(parents=True, exist_ok=True)
                    # What runs killed outright (kill -9, the OOM killer) left; a live run holds its folder.
                    remove_abandoned(self.root, RUN_FOLDER)
                    self.dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.root))
                    self.lock = hold(self.dir)
                except OSError:
                    self.unwritable = True
            return self.dir

    def close(self) -> None:
        """Delete this run's chunks. Clips made from the shared ones (kept in the memory cache for the next
        run) then read their source again."""
        with self._lock:
            for s in self.shared.values():
                s.closed = True
                if s.matte is not None:
                    s.matte.closed = True
            self.shared.clear()
            if self.dir:
                shutil.rmtree(self.dir, ignore_errors=True)
            if self.lock >= 0:
                os.close(self.lock)
            self.dir, self.lock = None, -1


class _Shared:
    def __init__(self, spill: Spill, source: Clip, n):
        self.spill, self.source, self.n = spill, source, n
        self.closed = False
        self.stored: set = set()
        nbytes = source.length * source.width * source.height * source.channels
        # A clip that would take half the free space is recomputed instead: a full disk stops everything.
        room = disk_room(_existing(spill.root))
        self.off = room is not None and nbytes > room.free // 2
        # The alpha (Clip.matte) is shared alike: computed once, spilled beside the frames.
        self.matte = None if source.matte is None else _Shared(spill, source.matte, f"{n}a")
        self.make = source._reader      # the chunks are the source's own (Clip.wrapped): made, not read from it
        self.clip = source.wrapped(self.read, None if self.matte is None else self.matte.clip)

    def read(self, a: int, b: int) -> np.ndarray:
        # Called under the shared clip's own lock, one chunk at a time (aligned to the source's chunks; a local
        # source's read in part, as far as asked).
        shape = (b - a, self.source.height, self.source.width, self.source.channels)
        if self.closed or self.off:
            return self.make(a, b)
        folder = self.spill.folder()
        path = folder / f"{self.n}-{a}-{b}.raw" if folder else None
        if (a, b) in self.stored:
            try:
                return np.fromfile(path, np.uint8).reshape(shape)
            except (OSError, ValueError):     # deleted under us (a cleaner): compute it again
                self.stored.discard((a, b))
        t0 = time.perf_counter()
        block = self.make(a, b)
        # Frames cheaper to compute again than to write and read back (a decode, a resize) are computed again
        # for the next reader: a loader read by two nodes wrote 6 GB per 1000 1080p frames to spare a decode.
        if path is not None and not self.closed and keep.worth_keeping(time.perf_counter() - t0, block.nbytes):
            try:
                _store(block, path)
                self.stored.add((a, b))
            except OSError:                   # disk full: stop spilling this clip, keep rendering
                self.off = True
                path.unlink(missing_ok=True)
        return block


def _store(block: np.ndarray, path: Path) -> None:
    np.ascontiguousarray(block).tofile(path)


def _existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p
