"""WanDancer's local passes' key frames (ComfyUI's WanDancerPadKeyframes): the global pass's pictures spread evenly
over the whole song's 30 fps frames, and the ones falling in one segment laid at their frames in a clip of the
segment's length (black elsewhere), with a mask of those frames and the segment's part of the music."""
from __future__ import annotations

import math

import numpy as np

from graph_engine import NodeError

FPS = 30                # the local passes' frame rate
BUFFER = 0.2            # seconds of music at the end too few for a segment of their own


def segments(seconds: float, length: int) -> int:
    """How many segments of `length` frames the song's seconds fill (a last, partial one counted unless the music
    left for it is under BUFFER)."""
    return int((seconds - BUFFER) / (length / FPS)) + 1 if seconds > BUFFER else 0


def placements(count: int, seconds: float, length: int, index: int) -> list:
    """[(frame in the segment, picture index)] of segment `index`: picture k of `count` at frame ceil(k * step) of
    the whole song (step: its frames / count), each segment's last frame taking the picture after its others."""
    total = segments(seconds, length) * length
    if total <= 0 or count <= 0:
        return []
    step = float(total) / count
    last = int(math.ceil(total / length)) - 1

    def end(seg):
        return total - length * seg - 1 if seg == last else length - 1

    def taken(stop):
        n = 0
        while n * step < stop - step:
            n += 1
        return n
    before = sum(taken(end(s)) for s in range(index))
    stop = end(index)
    n = taken(stop)
    spots = [(int(math.ceil(step * k)), before + k) for k in range(n)] + [(stop, before + n)]
    return [(at, k) for at, k in spots if k < count and at < length]


def keyframes(pictures, audio, length: int, index: int) -> tuple:
    """(the segment's key frames as a clip at 30 fps, their mask as a clip, the segment's music) of `pictures` (a
    clip) over `audio`'s seconds."""
    from graph_engine import Clip
    from nodes.generate.wan_dancer_audio import native_rate
    from nodes.io.sound import length as seconds_of
    seconds = seconds_of(audio)
    rate = native_rate(audio)
    spots = dict(placements(pictures.length, seconds, length, index))
    w, h = pictures.width, pictures.height

    def frames(a, b):
        out = np.zeros((b - a, h, w, 3), np.uint8)
        for at in range(a, b):
            if at in spots:
                out[at - a] = pictures.frames(spots[at], spots[at] + 1)[0, ..., :3]
        return out

    def marks(a, b):
        out = np.zeros((b - a, h, w, 1), np.uint8)
        out[[at - a for at in range(a, b) if at in spots]] = 255
        return out
    start = index * length / FPS
    first, stop = int(start * rate), int(min(start + length / FPS, seconds) * rate)
    if stop <= first:
        raise NodeError(f"segment {index} starts at {start:.2f} s, after the music's {seconds:.2f} s: the song has "
                        f"{segments(seconds, length)} segments of {length} frames; ask for fewer")
    music = audio.span(first / rate, (stop - first) / rate)
    return (Clip(length, FPS, w, h, frames, local=True), Clip(length, FPS, w, h, marks, channels=1, local=True),
            music)
