"""Multi-frame super-resolution: neighbouring frames aligned by optical flow and fused on the
high-resolution grid by iterative back-projection (Irani & Peleg), with robust weights.

When the camera or an object moves by a fraction of a pixel between frames, each frame
samples the scene at slightly different positions: together they hold detail no single
frame has. The estimate starts as the Lanczos upscale of the reference frame; each step
moves it into each neighbour's geometry (flow, estimated at low resolution where it is
accurate), reduces it the way a sensor does (each low-res pixel the average of its
footprint), compares with what that neighbour actually recorded, and carries the
difference back onto the reference grid. Neighbour pixels that do not match the reference
where they land (occlusions, flow failures) get little say, so moving objects and cuts do
not ghost; the reference frame always counts fully. The fusion is also the deconvolution:
an estimate that reproduces every observation is sharper than any one of them."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from nodes.common.flow import estimate_flow
from nodes.common.stream import windowed

# Photometric tolerance (0-255) of the robust weights. Aliasing makes well-aligned
# neighbours differ by several levels, and that difference is the very detail to recover,
# so the tolerance is wide; occluded pixels differ by far more.
TOLERANCE = 16.0
ITERATIONS = 6
STEP = 1.25


def flows_to(frames: np.ndarray, ref_index: int, cache: Optional[Dict] = None,
             ids: Optional[Sequence[int]] = None) -> List[Optional[Tuple[np.ndarray, np.ndarray]]]:
    """(flow neighbour -> reference, flow reference -> neighbour) per frame, None for the reference.

    With `cache` (keyed by the frames' `ids`), each directed flow is computed once however
    many reference frames need it: neighbouring outputs share most of their pairs."""
    ids = list(range(len(frames))) if ids is None else list(ids)

    def flow(a: int, b: int) -> np.ndarray:
        key = (ids[a], ids[b])
        if cache is None or key not in cache:
            f = estimate_flow(frames[a], frames[b], "best", 0)
            if cache is None:
                return f
            cache[key] = f
        return cache[key]
    return [None if j == ref_index else (flow(j, ref_index), flow(ref_index, j)) for j in range(len(frames))]


def robust_weight(ref: np.ndarray, nb: np.ndarray, flow_nr: np.ndarray, flow_rn: np.ndarray,
                  tolerance: float = TOLERANCE) -> np.ndarray:
    """Per neighbour pixel, 0..1: agreement with the reference where it lands (photometric
    error against `tolerance`), times the forward-backward flow check, times inside-frame."""
    h, w = flow_nr.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow_nr[..., 0], gy + flow_nr[..., 1]
    seen = cv2.remap(ref, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = np.abs(seen - nb).mean(axis=-1)
    back = cv2.remap(flow_rn, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    fb = np.sum((flow_nr + back) ** 2, axis=-1)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return (np.exp(-(err / tolerance) ** 2) * np.exp(-fb / 0.25) * inside).astype(np.float32)


def fuse(frames: np.ndarray, ref_index: int, scale: int, *, flows: Optional[Sequence] = None,
         iterations: int = ITERATIONS, step: float = STEP, tolerance: float = TOLERANCE) -> np.ndarray:
    """The high-res version of frames[ref_index] (float32) from all of `frames` (uint8 [n,h,w,3])."""
    n, h, w = frames.shape[:3]
    H, W = h * scale, w * scale
    flows = flows_to(frames, ref_index) if flows is None else flows
    ref = frames[ref_index].astype(np.float32)
    x = cv2.resize(ref, (W, H), interpolation=cv2.INTER_LANCZOS4)
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    views = []   # (observed low-res frame, map ref->its geometry, map back, weight on the ref grid)
    for j in range(n):
        obs = frames[j].astype(np.float32)
        if flows[j] is None:
            views.append((obs, None, None, np.ones((H, W), np.float32)))
            continue
        f_nr, f_rn = flows[j]
        weight = cv2.resize(robust_weight(ref, obs, f_nr, f_rn, tolerance), (W, H), interpolation=cv2.INTER_LINEAR)
        up_nr = cv2.resize(f_nr, (W, H), interpolation=cv2.INTER_LINEAR) * np.float32(scale)
        up_rn = cv2.resize(f_rn, (W, H), interpolation=cv2.INTER_LINEAR) * np.float32(scale)
        # Fixed-point maps: remapping is most of the iterations' cost and twice as fast this way.
        to_nb = cv2.convertMaps(gx + up_nr[..., 0], gy + up_nr[..., 1], cv2.CV_16SC2)   # neighbour px -> reference
        to_ref = cv2.convertMaps(gx + up_rn[..., 0], gy + up_rn[..., 1], cv2.CV_16SC2)  # reference px -> neighbour
        weight = cv2.remap(weight, *to_ref, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        views.append((obs, to_nb, to_ref, weight))
    total = np.maximum(sum(v[3] for v in views), 1e-3)[..., None]
    for _ in range(iterations):
        update = np.zeros_like(x)
        for obs, to_nb, to_ref, weight in views:
            seen = x if to_nb is None else cv2.remap(x, *to_nb, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            err = cv2.resize(obs - cv2.resize(seen, (w, h), interpolation=cv2.INTER_AREA), (W, H),
                             interpolation=cv2.INTER_CUBIC)
            if to_ref is not None:
                err = cv2.remap(err, *to_ref, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            update += err * weight[..., None]
        x += step * update / total
    return x


def upscale_window(frames: np.ndarray, ref_index: int, scale: int, flows: Optional[Sequence] = None) -> np.ndarray:
    return np.clip(fuse(frames, ref_index, scale, flows=flows) + 0.5, 0, 255).astype(np.uint8)


def multiframe_clip(video, *, scale: int = 2, radius: int = 2, ctx=None):
    """Lazy clip: frame i fused from source frames [i - radius, i + radius] (clamped to the clip)."""
    n = video.length

    def fn(window: np.ndarray, lo: int, a: int, b: int) -> np.ndarray:
        out = np.empty((b - a, video.height * scale, video.width * scale, 3), np.uint8)
        cache: Dict = {}
        for i in range(a, b):
            if ctx is not None:
                ctx.check()
            s, e = max(0, i - radius), min(n, i + radius + 1)
            frames = window[s - lo:e - lo]
            out[i - a] = upscale_window(frames, i - s, scale, flows_to(frames, i - s, cache, range(s, e)))
            # Flows between frames this window has left behind are not needed again.
            for key in [k for k in cache if min(k) < i + 1 - radius]:
                del cache[key]
        return out

    return windowed(ctx, video, radius, fn).with_(width=video.width * scale, height=video.height * scale)
