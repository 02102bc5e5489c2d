"""Per-frame metric series over whole clips, streamed chunk by chunk (memory flat in length).

Each function returns a list with one value per frame (pairwise measures: one per frame
from the second on) and reports progress through ctx."""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np

from graph_engine import NodeError
from nodes.metrics import measures


def _pairs(ctx, clips, what: str):
    """Yield aligned frames of several equal-length clips, in order."""
    n = clips[0].length
    for c in clips[1:]:
        if c.length != n or c.size != clips[0].size:
            raise NodeError(f"{what}: the clips differ ({clips[0]!r} vs {c!r}); compare clips of the same length "
                            f"and size (resize or trim one first)")
        if ctx is not None and abs(c.fps - clips[0].fps) > 1e-3 * max(c.fps, clips[0].fps):
            # Frame i meets frame i: at two rates they are different moments, and the score says nothing of it.
            ctx.log(f"{what}: the clips run at {clips[0].fps:g} and {c.fps:g} fps; frame i is compared with frame "
                    f"i, which are different moments. Resample one (video.fps) to compare like with like")
    step = clips[0].chunk
    for a in range(0, n, step):
        b = min(n, a + step)
        blocks = [c.frames(a, b) for c in clips]
        for k in range(b - a):
            yield tuple(block[k] for block in blocks)
        if ctx is not None:
            ctx.progress(b, n, what)


def reference_series(ctx, video, reference, fn: Callable, what: str) -> List[float]:
    return [fn(a, r) for a, r in _pairs(ctx, [video, reference], what)]


def frame_series(ctx, video, fn: Callable, what: str) -> List[float]:
    return [fn(f) for (f,) in _pairs(ctx, [video], what)]


def consecutive_series(ctx, video, fn: Callable, what: str, source=None) -> List[float]:
    """fn(prev, cur) or, with a source clip, fn(prev, cur, prev_src, cur_src), for each frame pair."""
    clips = [video] if source is None else [video, source]
    out, prev = [], None
    for cur in _pairs(ctx, clips, what):
        if prev is not None:
            out.append(fn(prev[0], cur[0]) if source is None else fn(prev[0], cur[0], prev[1], cur[1]))
        prev = cur
    return out


def psnr(ctx, video, reference) -> List[float]:
    return reference_series(ctx, video, reference, measures.psnr, "PSNR")


def ssim(ctx, video, reference) -> List[float]:
    return reference_series(ctx, video, reference, measures.ssim, "SSIM")


def sharpness(ctx, video) -> List[float]:
    return frame_series(ctx, video, measures.sharpness, "sharpness")


def flicker(ctx, video) -> List[float]:
    lum = frame_series(ctx, video, measures.mean_luma, "flicker")
    return [abs(b - a) for a, b in zip(lum[:-1], lum[1:])]


def motion(ctx, video) -> List[float]:
    return consecutive_series(ctx, video, measures.motion, "motion")


def warp_error(ctx, video, source=None) -> List[float]:
    src = source if source is not None else video
    return consecutive_series(ctx, video, measures.warp_error, "warp error", source=src)


SERIES: Dict[str, Callable] = {"psnr": psnr, "ssim": ssim, "warp_error": warp_error, "flicker": flicker,
                               "sharpness": sharpness, "motion": motion}
NEEDS_REFERENCE = ("psnr", "ssim")


def summary(values: List[float]) -> Optional[float]:
    return float(np.mean(values)) if values else None
