"""Frame sequences named the way other tools name them: shot.####.exr (Nuke, Blender), shot.%04d.exr
(Nuke, FFmpeg), shot.$F4.exr (Houdini). Here, not in the loader, because `kinograph validate` checks that
a sequence is there before anything loads."""
from __future__ import annotations

import os
import re
from typing import List, Optional

# Each run of # is a digit of the padded frame number; %04d and $F4 say the padding in figures.
# A letter after one is part of a word: ComfyUI's %date:yyyy% prefixes and $FOO are not frame numbers.
_FRAME_TOKEN = re.compile(r"#+|%0?(\d*)d(?![A-Za-z])|\$F(\d*)(?![A-Za-z])")


def names_frames(path: str) -> bool:
    """Whether the last part of `path` holds a frame-number token (shot.####.exr)."""
    return bool(_FRAME_TOKEN.search(os.path.basename(str(path))))


def sequence_files(path: str) -> Optional[List[str]]:
    """The files of the sequence `path` names with a frame-number token (unsorted), or None when its
    name has none (a folder, a glob, a file) or a file of exactly that name exists."""
    name = os.path.basename(path)
    parts, last = [], 0
    for m in _FRAME_TOKEN.finditer(name):
        pad = len(m[0]) if m[0].startswith("#") else int(m[1] or m[2] or 1)
        parts += [re.escape(name[last:m.start()]), rf"\d{{{pad},}}"]
        last = m.end()
    if not parts or os.path.exists(path):
        return None
    pattern = re.compile("".join(parts) + re.escape(name[last:]))
    folder = os.path.dirname(path) or "."
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return [os.path.join(folder, f) for f in names if pattern.fullmatch(f)]
