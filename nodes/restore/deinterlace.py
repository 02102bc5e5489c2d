"""Deinterlacing: each frame's two fields made into whole pictures, at the frame rate or one per field.

Interlaced video (DV, broadcast, VHS and DVD captures) holds two fields taken half a frame apart in
each frame: the even lines at one moment and the odd lines at the next. The missing lines of each
field are filled by FFmpeg's bwdif (Bob Weaver: yadif's motion-adaptive temporal check with cubic
and temporal-highpass interpolation), run through PyAV on planar RGB so no chroma is subsampled.

Which field comes first is seldom stated in an image sequence or a re-wrapped capture, and the
wrong order makes motion step back and forth. It is read from the pictures: under the right order
the field that ends one frame is half a frame from the one that starts the next, under the wrong
one a frame and a half, so it differs from it less (see detect_field_order)."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

SAMPLE_PAIRS = 24         # consecutive frame pairs read to tell the field order, spread over the clip
WORK_WIDTH = 360          # detection only compares lines: narrowing the frames keeps every line
# The wrong order's cross-frame field difference exceeds the right one's by this share at least before
# an order is believed; below it the clip moves too little to tell (a still shot), and either order
# deinterlaces it alike.
MIN_ORDER_MARGIN = 0.10
# A progressive frame's two fields show one moment, so with any motion they differ less than fields a
# frame apart (on real clips: 0.1 of it on a pan, 0.7 on the night city's fine detail, 0.8 on a talking
# head in a car); interlaced ones that show no order differ alike (a still shot, ratio ~1).
PROGRESSIVE_RATIO = 0.85


@dataclass
class FieldEvidence:
    within: float       # mean difference between a frame's own two fields
    tff: float          # between a frame's bottom field and the next frame's top field
    bff: float          # between a frame's top field and the next frame's bottom field

    def verdict(self) -> str:
        """'tff', 'bff', 'progressive' or 'unknown' (too little motion to tell)."""
        lo, hi = min(self.tff, self.bff), max(self.tff, self.bff)
        if hi < 1e-6 or hi - lo < MIN_ORDER_MARGIN * max(lo, 1e-6):
            return "progressive" if self.within < PROGRESSIVE_RATIO * lo else "unknown"
        return "tff" if self.tff < self.bff else "bff"


def _gray_lines(frame: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if g.shape[1] > WORK_WIDTH:
        g = cv2.resize(g, (WORK_WIDTH, g.shape[0]), interpolation=cv2.INTER_AREA)
    return g.astype(np.float32)


def _field_gap(top: np.ndarray, bottom: np.ndarray) -> float:
    """Mean difference of a top field and a bottom field at the same height: top line r sits at frame
    line 2r, between bottom lines r-1 and r (frame lines 2r-1 and 2r+1)."""
    n = min(len(top) - 1, len(bottom) - 1)
    if n < 1:
        return 0.0
    between = 0.5 * (bottom[:n] + bottom[1:n + 1])
    return float(np.abs(top[1:n + 1] - between).mean())


def field_evidence(pairs) -> FieldEvidence:
    """Summed field differences over (frame, next frame) pairs of uint8 RGB frames."""
    within = tff = bff = 0.0
    for a, b in pairs:
        ga, gb = _gray_lines(a), _gray_lines(b)
        within += _field_gap(ga[0::2], ga[1::2])
        tff += _field_gap(gb[0::2], ga[1::2])
        bff += _field_gap(ga[0::2], gb[1::2])
    return FieldEvidence(within, tff, bff)


def sample_pairs(clip, pairs: int = SAMPLE_PAIRS):
    """Up to `pairs` consecutive frame pairs spread evenly over the clip."""
    if clip.length < 2:
        return []
    starts = np.unique(np.linspace(0, clip.length - 2, min(pairs, clip.length - 1)).round().astype(int))
    return [tuple(clip.frames(int(s), int(s) + 2)) for s in starts]


def bwdif_frames(frames: np.ndarray, tff: bool, per_field: bool) -> np.ndarray:
    """bwdif over consecutive uint8 RGB frames (uint16 too): len(frames) pictures, or two per frame (first field's
    first). Frame k depends on frames k-1, k, k+1 only (the first and last use themselves in place of
    the missing neighbour), so a run over a window gives its inner frames exactly as a whole run does. Float frames
    (a deep plate's levels) go to bwdif_levels."""
    import av
    if frames.dtype != np.uint8 and frames.dtype != np.uint16:
        return bwdif_levels(frames, tff, per_field)
    fmt = "gbrp" if frames.dtype == np.uint8 else "gbrp16le"
    n, h, w = frames.shape[:3]
    tb = Fraction(1, 1000)
    graph = av.filter.Graph()
    src = graph.add_buffer(width=w, height=h, format=fmt, time_base=tb)
    filt = graph.add("bwdif", f"mode={'send_field' if per_field else 'send_frame'}:"
                              f"parity={'tff' if tff else 'bff'}:deint=all")
    sink = graph.add("buffersink")
    src.link_to(filt)
    filt.link_to(sink)
    graph.configure()
    out = []

    def drain():
        while True:
            try:
                out.append(graph.pull().to_ndarray(format=fmt))
            except (av.error.BlockingIOError, av.error.EOFError):
                return

    for i, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format=fmt)
        vf.pts, vf.time_base = i * 40, tb
        graph.push(vf)
        drain()
    graph.push(None)
    drain()
    want = n * (2 if per_field else 1)
    if len(out) != want:       # not expected from bwdif; a silent shortfall would shift every frame after
        raise RuntimeError(f"bwdif gave {len(out)} pictures for {n} frames, expected {want}")
    return np.stack(out)


def bwdif_levels(levels: np.ndarray, tff: bool, per_field: bool) -> np.ndarray:
    """bwdif_frames on float frames (a deep plate's sRGB-coded levels, past 255 above 1.0), unrounded: bwdif takes
    16 bits at most and no floats, so each frame's three (itself and its neighbours, all its pictures depend on) are
    spread over the 16-bit codes from their own darkest to their brightest (at least 0..255: 257 codes a level),
    and the pictures brought back to levels. Made from its own three alone, a frame is the same in any window."""
    from nodes.common.stream import finite
    n, per = len(levels), 2 if per_field else 1
    out = np.empty((n * per,) + levels.shape[1:], np.float32)
    for k in range(n):
        a, b = max(0, k - 1), min(n, k + 2)
        near = finite(np.asarray(levels[a:b], np.float32))
        lo = min(0.0, float(near.min()))
        step = max(255.0, float(near.max()) - lo) / 65535.0
        codes = np.clip(np.round((near - lo) / step), 0, 65535).astype(np.uint16)
        pictures = bwdif_frames(codes, tff, per_field)[(k - a) * per: (k - a + 1) * per]
        out[k * per: (k + 1) * per] = pictures.astype(np.float32) * np.float32(step) + np.float32(lo)
    return out


def deinterlace_clip(ctx, clip, tff: bool, per_field: bool, progress):
    """The deinterlaced clip (lazy): frame j of a per-field clip is field j % 2 of source frame j // 2. A deep
    plate's float pixels (Clip.linear) are deinterlaced alike, at their own depth (bwdif_levels)."""
    from nodes.common.stream import levels_float
    per = 2 if per_field else 1

    def pictures(frames: np.ndarray) -> np.ndarray:
        if clip.height < 3:
            # bwdif needs three lines; one or two lines hold no picture to interpolate.
            return np.repeat(frames, per, axis=0)
        return bwdif_frames(frames, tff, per_field)

    def reader(a: int, b: int) -> np.ndarray:
        first, last = a // per, (b - 1) // per
        lo = max(0, first - 1)
        if ctx is not None:
            ctx.check()
        out = pictures(clip.frames(lo, min(clip.length, last + 2)))
        progress.add(b - a)
        return out[a - lo * per: b - lo * per]

    out = clip.with_(length=clip.length * per, fps=clip.fps * per, reader=reader)
    if clip.linear is None:
        return out
    # The source frames' float levels, each with its neighbours, made into the pictures of frames first..last.
    deep = levels_float(clip, 1, lambda _, lo, first, last, levels: pictures(levels)[(first - lo) * per:
                                                                                     (last - lo) * per])

    def linear(a: int, b: int) -> np.ndarray:
        first = a // per
        return deep(first, (b - 1) // per + 1)[a - first * per: b - first * per]

    return out.with_(linear=linear)
