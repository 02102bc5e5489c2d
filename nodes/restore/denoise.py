"""Temporal, motion-compensated denoising.

Each neighbour within `radius` frames is warped onto the current frame by optical flow
(estimated on slightly blurred frames so the noise does not steer it) and averaged in with a
per-pixel weight that falls off where the aligned neighbour disagrees by more than the noise
explains: occlusions and flow failures drop out instead of ghosting. The noise level comes
from Immerkaer's estimator (1996) on each frame unless given."""
from __future__ import annotations

import cv2
import numpy as np

from nodes.common.flow import backward_warp, estimate_flow
from nodes.common.stream import PairCache, windowed

_LAPLACE_DIFF = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def estimate_noise(frame: np.ndarray) -> float:
    """Standard deviation of additive white noise, in 8-bit levels (Immerkaer's fast estimator)."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = gray.shape
    resp = np.abs(cv2.filter2D(gray, -1, _LAPLACE_DIFF)[1:-1, 1:-1])
    return float(np.sqrt(np.pi / 2) * resp.sum() / (6.0 * (w - 2) * (h - 2)))


def _flow_gray(frame: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (5, 5), 1.2)


def fuse(cur: np.ndarray, aligned, sigma: float, strength: float) -> np.ndarray:
    """Weighted mean of cur and its aligned neighbours (float32 HxWx3 each)."""
    acc, wsum = cur.copy(), np.ones(cur.shape[:2], np.float32)
    # Two aligned noisy copies differ by 2 sigma^2 per channel on average; only excess counts.
    noise2 = 2.0 * sigma * sigma
    scale = 2.0 * (strength * max(sigma, 0.5)) ** 2
    for nb in aligned:
        d = cv2.boxFilter(np.mean((nb - cur) ** 2, axis=-1), -1, (5, 5))
        w = np.exp(-np.maximum(d - noise2, 0.0) / scale).astype(np.float32)
        acc += nb * w[..., None]
        wsum += w
    return np.clip(acc / wsum[..., None] + 0.5, 0, 255).astype(np.uint8)


def denoise_clip(ctx, clip, radius: int = 2, strength: float = 1.0, sigma: float = 0.0):
    """The denoised clip (lazy); sigma 0 estimates the noise level per frame."""
    flows = PairCache(8 * radius * (radius + 1) + 64)
    grays = PairCache(4 * radius + 64)

    def compute(window: np.ndarray, lo: int, a: int, b: int) -> np.ndarray:
        out = []
        for i in range(a, b):
            if ctx is not None:
                ctx.check()
            cur = window[i - lo]
            g_i = grays.get(i, lambda: _flow_gray(cur))
            aligned = []
            for j in range(max(lo, i - radius), min(lo + len(window), i + radius + 1)):
                if j == i:
                    continue
                g_j = grays.get(j, lambda: _flow_gray(window[j - lo]))
                flow = flows.get((i, j), lambda: estimate_flow(g_i, g_j, "medium"))
                aligned.append(backward_warp(window[j - lo].astype(np.float32), flow))
            s = sigma if sigma > 0 else estimate_noise(cur)
            out.append(fuse(cur.astype(np.float32), aligned, s, strength))
        return np.stack(out)

    return windowed(ctx, clip, radius, compute)
