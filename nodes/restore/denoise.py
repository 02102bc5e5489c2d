"""Temporal, motion-compensated denoising.

Each neighbour within `radius` frames is warped onto the current frame by optical flow
(estimated on slightly blurred frames so the noise does not steer it) and averaged in with a
per-pixel weight that falls off where the aligned neighbour disagrees by more than the noise
explains: occlusions and flow failures drop out instead of ghosting. An edge-preserving spatial pass,
scaled to the noise left, then smooths what averaging could not remove. The noise level, unless
given, is the larger of a robust form of Immerkaer's estimator (1996) on each frame and what the frame
and its nearest aligned neighbour disagree by."""
from __future__ import annotations

import itertools

import cv2
import numpy as np

from nodes.common.flow import backward_warp, estimate_flow
from nodes.common.noise import estimate_noise
from nodes.common.stream import PairCache, levels_float, windowed


def _flow_gray(frame: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (5, 5), 1.2)


_CHANNEL_MEAN = np.full((1, 3), 1.0 / 3.0, np.float32)


def disagreement(nb: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Mean squared difference per channel of an aligned neighbour and the frame, over 5x5 pixels (HxW float32)."""
    diff = cv2.subtract(nb, cur)
    return cv2.boxFilter(cv2.transform(cv2.multiply(diff, diff), _CHANNEL_MEAN), -1, (5, 5))


def aligned_noise(nb: np.ndarray, cur: np.ndarray) -> float:
    """The noise per channel, in levels, read from how an aligned neighbour and the frame disagree: where the flow
    holds (most of a frame) that is by 2 sigma^2, so the median gives sigma. Unlike a spatial estimate it
    reads noise that resampling has smoothed (a stabilized, zoomed or rescaled clip): after restore.stabilize
    Immerkaer's filter, which sees only the finest detail, read sigma 7 as 2.6."""
    return float(np.sqrt(np.median(disagreement(nb, cur)) / 2.0))


def fuse(cur: np.ndarray, aligned, sigma: float, strength: float, deep: np.ndarray = None):
    """Weighted mean of cur and its aligned neighbours (float32 HxWx3 each; any iterable of (neighbour, its deep
    copy or None)), uint8. deep: the frame's float copy (a deep plate's sRGB-coded light, in levels, above 255
    where it is above 1.0), averaged with the same weights, unrounded: returned second, (uint8, float32)."""
    acc, wsum = cur.copy(), np.ones(cur.shape[:2], np.float32)
    acc_deep = None if deep is None else deep.copy()
    # Two aligned noisy copies differ by 2 sigma^2 per channel on average; only excess counts.
    noise2 = 2.0 * sigma * sigma
    scale = 2.0 * (strength * max(sigma, 0.5)) ** 2
    for nb, nb_deep in aligned:
        d = disagreement(nb, cur)
        w = np.exp(-np.maximum(d - noise2, 0.0) / scale).astype(np.float32)
        acc += nb * w[..., None]
        wsum += w
        if acc_deep is not None:
            acc_deep += nb_deep * w[..., None]
    out = np.clip(acc / wsum[..., None] + 0.5, 0, 255).astype(np.uint8)
    return out if deep is None else (out, acc_deep / wsum[..., None])


def smooth_residual(frame: np.ndarray, amount: float, deep: np.ndarray = None):
    """An edge-preserving (bilateral) pass over what the temporal average left, scaled by the noise
    still in the frame. Five aligned frames take out at most sqrt(5) of the noise, and less where
    neighbours drop out: on real clips at sigma 10 this pass added 0.5-2.5 dB (ffmpeg's nlmeans, purely
    spatial, beat the temporal average alone on soft footage); on clean footage it stays below visibility
    (48 dB or more against the input). deep: the frame's float copy in levels (fuse's), smoothed alike (the
    noise read on the 8-bit frame) and returned instead."""
    r = estimate_noise(frame) if amount > 0 else 0.0
    if deep is not None:
        return cv2.bilateralFilter(deep, 5, amount * 2.0 * r, 1.5) if r > 0 else deep
    return cv2.bilateralFilter(frame, 5, amount * 2.0 * r, 1.5) if r > 0 else frame


def denoise_clip(ctx, clip, radius: int = 2, strength: float = 1.0, sigma: float = 0.0, spatial: float = 1.5):
    """The denoised clip (lazy); sigma 0 estimates the noise level per frame; spatial 0 averages in time only.
    A deep plate's float pixels (Clip.linear) are averaged with the weights the 8-bit frames give, on their
    sRGB-coded values as those hold them, unrounded and past 1.0; the flow is found again for them (once per
    frame read: an EXR render reads the floats alone)."""
    # Each frame's blurred grey copy serves the 2 * radius + 1 frames around it, which are computed one after
    # another: that many (and a little slack) is all a pass reuses. Flows are not kept: flow (i, j) serves frame
    # i alone, and the 112 the cache held at radius 2 (16 MB each at 1080p) took the render to 2.8 GB, where
    # a pass-through of the same clip takes 0.6 GB. A chunk read again comes from the clip's own cache.
    grays = PairCache(4 * radius + 8)

    def compute(window: np.ndarray, lo: int, a: int, b: int, deep: np.ndarray = None) -> np.ndarray:
        out = []
        for i in range(a, b):
            if ctx is not None:
                ctx.check()
            cur = window[i - lo]
            g_i = grays.get(i, lambda: _flow_gray(cur))
            cur = cur.astype(np.float32)
            aligned = _aligned(window, lo, i, g_i, deep)
            nearest = list(itertools.islice(aligned, 2))       # the frames before and after (one at an end)
            s = sigma if sigma > 0 else estimate_noise(window[i - lo])
            if sigma <= 0 and nearest:
                # The larger of the two readings: the spatial one misses noise resampling smoothed. Of the two
                # nearest neighbours the one that agrees better: at a cut the other is another shot (read as
                # sigma 30, a frame of bikes came out 7 dB worse for it).
                s = max(s, min(aligned_noise(nb, cur) for nb, _ in nearest))
            fused = fuse(cur, itertools.chain(nearest, aligned), s, strength, None if deep is None else deep[i - lo])
            out.append(smooth_residual(fused, spatial) if deep is None else smooth_residual(fused[0], spatial, fused[1]))
        return np.stack(out)

    def _aligned(window: np.ndarray, lo: int, i: int, g_i: np.ndarray, deep: np.ndarray = None):
        """The neighbours of frame i warped onto it, nearest first, one at a time as fuse takes them (with their
        deep copies, warped alike, where given): a list held all 2 * radius float copies (25 MB each at 1080p)."""
        hi = lo + len(window)
        for j in sorted(range(max(lo, i - radius), min(hi, i + radius + 1)), key=lambda j: (abs(j - i), j)):
            if j != i:
                g_j = grays.get(j, lambda: _flow_gray(window[j - lo]))
                flow = estimate_flow(g_i, g_j, "medium")
                yield (backward_warp(window[j - lo].astype(np.float32), flow),
                       None if deep is None else backward_warp(deep[j - lo], flow))

    out = windowed(ctx, clip, radius, compute, local=True)    # a frame from its window alone
    return out if clip.linear is None else out.with_(linear=levels_float(clip, radius, compute))
