"""nodes/io/sound_memo.py keeps a file's decoded samples while the file is the same one: a file rewritten in place
with the same size and its modification time put back (cp -p, rsync -t, a tool restoring times) is another sound
and is decoded again. Reference: the file decoded fresh by nodes.io.sound.read_sound (no memo)."""
from __future__ import annotations

import os
import wave

import numpy as np


def _wav(path, freq: float, rate: int = 8000, seconds: float = 0.5):
    t = np.arange(int(rate * seconds)) / rate
    pcm = (np.sin(2 * np.pi * freq * t) * 20000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def test_a_file_rewritten_with_its_size_and_time_kept_is_decoded_again(tmp_path):
    from nodes.io.sound import read_sound
    from nodes.io.sound_memo import mono
    path = tmp_path / "song.wav"
    _wav(path, 440.0)
    first = mono(str(path), 8000)
    assert np.array_equal(first, read_sound(str(path), 8000, mean=True)[1])
    st = os.stat(path)
    _wav(path, 660.0)                               # same length: the same size on disk
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    again = mono(str(path), 8000)
    want = read_sound(str(path), 8000, mean=True)[1]
    assert not np.array_equal(want, first)
    assert np.array_equal(again, want)
