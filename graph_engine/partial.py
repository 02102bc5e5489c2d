"""Work in progress that outlives a stopped run: the finished steps of a long sampling run.

Only finished nodes reach the cache, so a sampling run cancelled (or killed) at step 18 of 20 began
again at step 0. An expensive node may keep its work in progress in a folder named by its cache key
(Context.partial_folder); the same node with the same inputs, run again, finds it there and goes on;
the folder goes once the node's result is cached. Folders of runs that stopped are kept for the few
most recent stops only, never one a live run holds."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO, Callable, Dict, List, Optional, Tuple

from .atomic import hold, remove_unheld, tree_bytes
from .cache import _looks_like_key
from .free_space import short_of

KEEP = 3
# As the disk cache: the work in progress never takes the last 64 MB, which the render's own output needs.
RESERVE = 64 << 20


def keep_work(path: Path, write: Callable[[BinaryIO], None], nbytes: int) -> bool:
    """Keep one piece of work in progress at `path`, whole or not at all (written under a temporary name and
    renamed); False where the disk has no room for it or the write fails: a full disk costs the resume, never
    the run or its output."""
    tmp = path.with_suffix(".tmp")
    try:
        if short_of(path.parent, nbytes + RESERVE):
            return False
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
        return True
    except OSError:
        tmp.unlink(missing_ok=True)     # this function's own temporary
        return False


class Partials:
    def __init__(self, root: Path, keep: int = KEEP):
        self.root = Path(root)
        self.keep = keep
        self.held: Dict[str, int] = {}

    def folder(self, key: str) -> Optional[Path]:
        """The folder of `key`'s work in progress (made if new, held while this run lives); None where none
        can be made (the node then works as if it had none)."""
        path = self.root / key
        try:
            path.mkdir(parents=True, exist_ok=True)
            os.utime(path)
        except OSError:
            return None
        if key not in self.held:
            fd = hold(path)
            if fd < 0 and os.name == "posix":
                return None         # another live run works on the same node: let it have the folder
            self.held[key] = fd
        self._prune()
        return path

    def finish(self, key: str) -> None:
        """The node's result is cached: its work in progress is no longer needed."""
        if key in self.held:
            shutil.rmtree(self.root / key, ignore_errors=True)
        self.release(key)

    def release(self, key: str) -> None:
        """The run stops holding the folder: it stays for the next run if it holds any work."""
        if key not in self.held:
            return
        fd = self.held.pop(key)
        try:
            os.rmdir(self.root / key)       # only when empty (a node that failed before its first step)
        except OSError:
            pass
        if fd >= 0:
            os.close(fd)

    def kept(self, key: str) -> bool:
        """Whether `key`'s folder holds any work."""
        try:
            with os.scandir(self.root / key) as it:
                return any(True for _ in it)
        except OSError:
            return False

    def release_all(self) -> None:
        for key in list(self.held):
            self.release(key)

    def usage(self) -> Tuple[int, int]:
        """(folders, bytes) of work in progress kept on disk."""
        found = self._folders()
        return len(found), sum(tree_bytes(e.path) for e in found)

    def clear(self) -> int:
        """Remove the work in progress no live run holds (`kinograph cache clear`); the bytes freed."""
        return sum(self._remove(e) for e in self._folders())

    def _prune(self) -> None:
        """All but the `keep` most recently used folders that no live run holds."""
        for e in self._folders()[self.keep:]:
            self._remove(e)

    def _folders(self) -> List[os.DirEntry]:
        """Newest first; only folders named as cache keys (--cache-dir may name a folder of the user's)."""
        try:
            return sorted((e for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False)
                           and _looks_like_key(e.name)),
                          key=lambda e: e.stat(follow_symlinks=False).st_mtime, reverse=True)
        except OSError:
            return []

    def _remove(self, e: os.DirEntry) -> int:
        return 0 if e.name in self.held else remove_unheld(e)
