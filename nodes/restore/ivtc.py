"""Inverse telecine: film transferred to NTSC video by 3:2 pulldown, back to its own frames.

Pulldown spreads each 4 film frames over 5 video frames by repeating fields (A A, B B, B C, C D, D D):
two of every five frames weave fields of two film frames (combed), one film frame is shown twice.
Deinterlacing such video throws away half the lines of frames that were whole on film; undoing the
pulldown gives every film frame back line for line.

Field matching: each frame's top field is woven with the bottom field of the previous, the same or
the next frame, whichever combs least (ffmpeg fieldmatch's pc_n). Decimation: in each cycle of 5
matched frames the one most like the frame before it (the repeat) is dropped (ffmpeg decimate).
Both work on a narrowed grey copy; the output frames are the source's own lines, except frames no
match makes whole (video cut into the film), which are deinterlaced."""
from __future__ import annotations

import cv2
import numpy as np

CYCLE, KEEP = 5, 4
WORK_WIDTH = 320
# A matched frame still combed this much is not film (video-shot titles or shots cut into a telecined
# programme, a field orphaned at an edit) and is deinterlaced from its top field instead (bwdif, as
# ffmpeg's fieldmatch is followed by yadif). Measured against the top field's own line-to-line change:
# progressive frames of five real clips read at most 0.42 (with noise), interlaced ones in fast motion
# 6 or more; the milder combing of slow motion in between is left, as slight as it looks.
COMBED = 1.0


def _gray(frame: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if g.shape[1] > WORK_WIDTH:
        g = cv2.resize(g, (WORK_WIDTH, g.shape[0]), interpolation=cv2.INTER_AREA)
    return g.astype(np.float32)


def weave(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    out = top.copy()
    out[1::2] = bottom[1::2]
    return out


def combing(gray: np.ndarray) -> float:
    """Mean of the lines that stand out from both neighbours the same way (a comb's teeth)."""
    if len(gray) < 3:
        return 0.0
    mid = gray[1:-1]
    return float(np.maximum((mid - gray[:-2]) * (mid - gray[2:]), 0.0).mean())


def comb_ratio(gray: np.ndarray) -> float:
    """Combing of a frame against the vertical change within its top field (see COMBED)."""
    field = gray[0::2]
    if len(field) < 2:
        return 0.0
    return combing(gray) / (float(((field[1:] - field[:-1]) ** 2).mean()) / 4 + 1.0)


def _deinterlaced(frames: np.ndarray, i: int) -> np.ndarray:
    from nodes.restore.deinterlace import bwdif_frames
    if frames.shape[1] < 3:
        return frames[i]
    a = max(0, i - 1)
    return bwdif_frames(frames[a: i + 2], tff=True, per_field=False)[i - a]


def match(grays, i: int) -> int:
    """Which frame's bottom field (i-1, i or i+1) frame i's top field is woven with; on a tie (a still
    shot) the frame as it is."""
    best, best_c = i, combing(weave(grays[i], grays[i]))
    for j in (i - 1, i + 1):
        if 0 <= j < len(grays):
            c = combing(weave(grays[i], grays[j]))
            if c < best_c:
                best, best_c = j, c
    return best


def output_length(n: int, keep: int = KEEP) -> int:
    """Frames after decimation: `keep` of each whole cycle of 5, a partial cycle at the end kept whole."""
    return n // CYCLE * keep + n % CYCLE


def ivtc_window(frames: np.ndarray, lo: int, n: int, cycles: range, decimate: bool = True,
                deep: np.ndarray = None) -> np.ndarray:
    """The kept frames of `cycles` (whole cycles of the clip), from frames = clip[lo:...] which reach two
    frames before the first cycle and one after the last (matches look one frame either way; the first
    frame's repeat test looks at the matched frame before it). deep: the same frames' float levels (a deep plate's,
    stream.levels_float), made into the kept frames instead, as the 8-bit frames decide."""
    grays = [_gray(f) for f in frames]
    matched = {}

    def matched_gray(k):        # k: clip index
        if k not in matched:
            j = match(grays, k - lo)
            matched[k] = (j, weave(grays[k - lo], grays[j]))
        return matched[k]

    out = []
    for c in cycles:
        first = c * CYCLE
        idx = list(range(first, min(first + CYCLE, n)))
        if decimate and len(idx) == CYCLE:
            diffs = [float(np.abs(matched_gray(k)[1] - matched_gray(k - 1)[1]).mean()) if k > 0 else np.inf
                     for k in idx]
            idx.pop(int(np.argmin(diffs)))
        src = frames if deep is None else deep
        for k in idx:
            j, g = matched_gray(k)
            out.append(_deinterlaced(src, k - lo) if comb_ratio(g) > COMBED else weave(src[k - lo], src[j]))
    return np.stack(out)


def ivtc_clip(ctx, clip, progress, decimate: bool = True):
    """The clip with its pulldown undone (lazy): 4 frames for every 5 at 4/5 of the frame rate, or with
    decimate False (2:2 pulldown, PAL) every frame, fields matched. A deep plate's float pixels (Clip.linear) are
    woven (and deinterlaced) as its 8-bit frames are, line for line at their own depth."""
    from nodes.common.stream import levels_float
    n, keep = clip.length, KEEP if decimate else CYCLE

    def reader(a: int, b: int) -> np.ndarray:
        c0, c1 = a // keep, (b - 1) // keep
        lo, hi = max(0, c0 * CYCLE - 2), min(n, (c1 + 1) * CYCLE + 1)
        if ctx is not None:
            ctx.check()
        kept = ivtc_window(clip.frames(lo, hi), lo, n, range(c0, c1 + 1), decimate)
        progress.add(b - a)
        return kept[a - c0 * keep: b - c0 * keep]

    out = clip.with_(length=output_length(n, keep), fps=clip.fps * keep / CYCLE, reader=reader)
    if clip.linear is None:
        return out
    # Cycles c0..c1's source frames with two either side (one more after than the 8-bit reader's window: unused).
    deep = levels_float(clip, 2, lambda frames, lo, first, last, levels: ivtc_window(
        frames, lo, n, range(first // CYCLE, (last - 1) // CYCLE + 1), decimate, levels))

    def linear(a: int, b: int) -> np.ndarray:
        c0, c1 = a // keep, (b - 1) // keep
        return deep(c0 * CYCLE, min(n, (c1 + 1) * CYCLE))[a - c0 * keep: b - c0 * keep]

    return out.with_(linear=linear)
