"""A file's sound decoded once for every span of it read at one rate: WanDancer's local passes each encode their
segment of one song (encode.wan_dancer_audio after video.wan_dancer_keyframes), and each decoded the whole file again
to take its part (a 58 s MP3 in 12 segments: 12 decodes, 2.1 s of the 9.3 s the music features took). Kept while
the file is unchanged (its identity is in the key: size, times and inode, as run cache keys take it; a file rewritten
with its size and modification time put back, as cp -p does, has another change time), up to BUDGET bytes, the least
recently read going first."""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

# 256 MB: 23 minutes of mono float32 samples at 48 kHz; a longer sound is decoded for each read, as before.
BUDGET = 256 << 20

_kept: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_lock = threading.Lock()


def mono(path: str, rate: int) -> np.ndarray:
    """read_sound(path, rate, mean=True)'s samples, read-only (shared by every caller reading the file at `rate`)."""
    from graph_engine.cache import file_identity
    from nodes.io.sound import read_sound
    try:
        st = Path(path).stat()
    except OSError:         # read_sound names what is wrong with the file
        return read_sound(path, rate, mean=True)[1]
    key = (str(Path(path).resolve()), tuple(file_identity(st)), int(rate))
    with _lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]
    samples = read_sound(path, rate, mean=True)[1]
    samples.setflags(write=False)
    if samples.nbytes > BUDGET:
        return samples
    with _lock:
        for old in [k for k in _kept if k[0] == key[0] and k[1] != key[1]]:
            del _kept[old]                  # the file's earlier contents: never read again
        _kept[key] = samples
        while sum(v.nbytes for v in _kept.values()) > BUDGET:
            _kept.popitem(last=False)
    return samples
