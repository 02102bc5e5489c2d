"""Multi-frame super-resolution: neighbouring frames aligned by optical flow and fused on the
high-resolution grid (shift-and-add with robust weights), then a light deconvolution.

When the camera or an object moves by a fraction of a pixel between frames, each frame
samples the scene at slightly different positions: together they hold detail no single
frame has. Every low-res pixel of a neighbour is carried to where it belongs in the
reference frame (flow neighbour -> reference, estimated at low resolution where it is
accurate), and splatted with a small Gaussian onto the high-res grid. Samples that do not
match the reference there (occlusions, flow failures) get little weight, and pixels that
gather little evidence fall back to the Lanczos upscale of the reference itself. The fused
image is the scene blurred by the sensor's pixel footprint; back-projection against the
reference frame sharpens it without inventing detail."""
from __future__ import annotations

from typing import List

import cv2
import numba
import numpy as np

from nodes.common.flow import estimate_flow


@numba.njit(cache=True)
def _splat_samples(lr, flow, weight, scale, sigma, radius, acc, wsum):
    """Each pixel q of lr lands at high-res (q + flow(q) + 0.5) * scale - 0.5 with a Gaussian footprint."""
    h, w = lr.shape[0], lr.shape[1]
    H, W = wsum.shape[0], wsum.shape[1]
    inv = 1.0 / (2.0 * sigma * sigma)
    for y in range(h):
        for x in range(w):
            wt = weight[y, x]
            if wt <= 0.0:
                continue
            px = (x + flow[y, x, 0] + 0.5) * scale - 0.5
            py = (y + flow[y, x, 1] + 0.5) * scale - 0.5
            cx, cy = int(np.floor(px + 0.5)), int(np.floor(py + 0.5))
            for yy in range(max(cy - radius, 0), min(cy + radius + 1, H)):
                dy = yy - py
                for xx in range(max(cx - radius, 0), min(cx + radius + 1, W)):
                    dx = xx - px
                    k = wt * np.exp(-(dx * dx + dy * dy) * inv)
                    wsum[yy, xx] += k
                    for c in range(3):
                        acc[yy, xx, c] += k * lr[y, x, c]


def _robust_weight(ref: np.ndarray, nb: np.ndarray, flow_nr: np.ndarray, flow_rn: np.ndarray,
                   noise: float) -> np.ndarray:
    """Per neighbour pixel: agreement with the reference where it lands (photometric error
    against a tolerance) times the forward-backward flow check."""
    h, w = flow_nr.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow_nr[..., 0], gy + flow_nr[..., 1]
    seen = cv2.remap(ref, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = np.abs(seen - nb).mean(axis=-1)
    back = cv2.remap(flow_rn, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    fb = np.sum((flow_nr + back) ** 2, axis=-1)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return (np.exp(-(err / noise) ** 2) * np.exp(-fb / 0.25) * inside).astype(np.float32)


def flows_to(frames: np.ndarray, ref_index: int) -> list:
    """(flow neighbour -> reference, flow reference -> neighbour) per frame, None for the reference."""
    ref = frames[ref_index]
    return [None if j == ref_index else (estimate_flow(f, ref, "best", 0), estimate_flow(ref, f, "best", 0))
            for j, f in enumerate(frames)]


def fuse(frames: np.ndarray, ref_index: int, scale: int, *, flows=None, sigma: float = 0.6, noise: float = 6.0,
         prior: float = 0.3, iterations: int = 3) -> np.ndarray:
    """The high-res version of frames[ref_index] from all of `frames` (uint8 [n,h,w,3])."""
    flows = flows_to(frames, ref_index) if flows is None else flows
    n, h, w = frames.shape[:3]
    H, W = h * scale, w * scale
    ref = frames[ref_index].astype(np.float32)
    base = cv2.resize(ref, (W, H), interpolation=cv2.INTER_LANCZOS4)
    acc = np.zeros((H, W, 3), np.float32)
    wsum = np.zeros((H, W), np.float32)
    radius = max(1, int(np.ceil(2 * sigma)))
    zero = np.zeros((h, w, 2), np.float32)
    ones = np.ones((h, w), np.float32)
    for j in range(n):
        if j == ref_index:
            flow, weight = zero, ones
        else:
            flow, back = flows[j]
            weight = _robust_weight(ref, frames[j].astype(np.float32), flow, back, noise)
        _splat_samples(frames[j].astype(np.float32), flow, weight, np.float32(scale), np.float32(sigma),
                       radius, acc, wsum)
    fused = (acc + prior * base) / (wsum + prior)[..., None]
    return _back_project(fused, ref, scale, iterations)


def _back_project(x: np.ndarray, ref: np.ndarray, scale: int, iterations: int) -> np.ndarray:
    """A few Irani-Peleg steps against the reference frame: the estimate, reduced the way the
    camera reduced the scene (area average), must give back the reference pixels."""
    h, w = ref.shape[:2]
    for _ in range(iterations):
        err = ref - cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA)
        x = x + cv2.resize(err, (x.shape[1], x.shape[0]), interpolation=cv2.INTER_CUBIC)
    return x


def upscale_window(frames: np.ndarray, ref_index: int, scale: int) -> np.ndarray:
    return np.clip(fuse(frames, ref_index, scale) + 0.5, 0, 255).astype(np.uint8)


def multiframe_clip(video, *, scale: int = 2, radius: int = 2, ctx=None):
    """Lazy clip: frame i fused from source frames [i - radius, i + radius] (clamped to the clip)."""
    n = video.length

    def reader(a: int, b: int) -> np.ndarray:
        lo, hi = max(0, a - radius), min(n, b + radius)
        window = video.frames(lo, hi)
        out: List[np.ndarray] = []
        for i in range(a, b):
            if ctx is not None:
                ctx.check()
            s, e = max(0, i - radius), min(n, i + radius + 1)
            out.append(upscale_window(window[s - lo:e - lo], i - s, scale))
        return np.stack(out)

    return video.with_(width=video.width * scale, height=video.height * scale, reader=reader)
