"""Workflow copies that Kinograph versions before the writers' hidden temporaries left in the temporary folder.

Those versions wrote the workflow as an FFMETADATA file, tempfile's kinograph-meta-XXXXXXXX.txt, for ffmpeg to read,
and removed it after the write; a writer killed outright (kill -9, the OOM killer, a preempted farm node) left it there
for ever, a whole workflow in each (112 on one machine). No version writes them now, so one is abandoned once it is
old and no process has it open: an older version still rendering keeps its ffmpeg's input open until the end.
A leaf module (stdlib only): `run` and `batch` sweep once as their process starts."""
import os
import tempfile
import time
from pathlib import Path
from typing import Optional, Set

PREFIX, SUFFIX = "kinograph-meta-", ".txt"
HEADER = b";FFMETADATA1\nkinograph_workflow="      # what those writers put first: not a stranger's file
OLDER_THAN = 24 * 3600          # a render still running after a day kept its ffmpeg's input open (checked too)
_swept = False


def sweep_old_metadata() -> int:
    """Remove the abandoned copies (once per process); how many went. Cheap where there are none: one scan of the
    temporary folder. Only this user's, older than a day, starting as those writers wrote them, that no process has
    open; where open files cannot be listed (no /proc: macOS) none is removed. On Windows an open file refuses its
    removal."""
    global _swept
    if _swept:
        return 0
    _swept = True
    folder = tempfile.gettempdir()
    old = time.time() - OLDER_THAN
    try:
        with os.scandir(folder) as it:
            found = [e for e in it if e.name.startswith(PREFIX) and e.name.endswith(SUFFIX) and _abandoned(e, old)]
    except OSError:
        return 0
    if not found:
        return 0
    held = set() if os.name == "nt" else _open_files()
    if held is None:
        return 0
    removed = 0
    for e in found:
        if os.path.realpath(e.path) in held:
            continue
        try:
            os.unlink(e.path)
            removed += 1
        except OSError:         # held (Windows), or another process swept it first
            pass
    return removed


def _abandoned(e: os.DirEntry, old: float) -> bool:
    try:
        st = e.stat(follow_symlinks=False)
        if not e.is_file(follow_symlinks=False) or st.st_mtime >= old:
            return False
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            return False
        with open(e.path, "rb") as f:
            return f.read(len(HEADER)) == HEADER
    except OSError:
        return False


def _open_files() -> Optional[Set[str]]:
    """The files open in every process this user can see (Linux's /proc), or None where that cannot be known.
    The copies are mode 0600, so only this user's processes (or root's) can open them."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    held: Set[str] = set()
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(proc / pid / "fd")
        except OSError:         # another user's, or it ended
            continue
        for fd in fds:
            try:
                held.add(os.readlink(proc / pid / "fd" / fd))
            except OSError:
                pass
    return held
