"""Dense optical flow and warping, shared by interpolation, super-resolution, restoration,
stylization, metrics and motion nodes. One implementation, reused everywhere.

Convention: flow[y, x] = (dx, dy) maps a pixel of frame A to its position in frame B,
so `backward_warp(B, flow_AB)` reconstructs A."""
from __future__ import annotations

import threading

import cv2
import numpy as np

_PRESETS = {
    "fast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "best": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
_local = threading.local()


def to_gray(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return img if img.dtype == np.uint8 else np.clip(img, 0, 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def _dis(quality: str, finest_scale=None, refine=None):
    # DIS objects hold scratch buffers; one per thread and setting avoids reallocating them per pair.
    cache = getattr(_local, "dis", None)
    if cache is None:
        cache = _local.dis = {}
    key = (quality, finest_scale, refine)
    if key not in cache:
        if quality not in _PRESETS:
            raise ValueError(f"unknown flow quality {quality!r}; use one of {', '.join(_PRESETS)}")
        dis = cv2.DISOpticalFlow_create(_PRESETS[quality])
        if finest_scale is not None:
            dis.setFinestScale(int(finest_scale))
        if refine is not None:
            dis.setVariationalRefinementIterations(int(refine))
        cache[key] = dis
    return cache[key]


def estimate_flow(a: np.ndarray, b: np.ndarray, quality: str = "medium", finest_scale=None,
                  refine=None) -> np.ndarray:
    """Flow from frame a to frame b (uint8 RGB or gray), float32 HxWx2.

    finest_scale overrides the preset's finest pyramid level (0 = full resolution): on
    frames already reduced for speed, the cheap "fast" preset at level 0 beats a slower
    preset that stops a level above. refine overrides the variational refinement
    iterations per level (0 = none: a third of the time, and on real footage the
    interpolator's choice of motion recovers what it would add)."""
    return _dis(quality, finest_scale, refine).calc(to_gray(a), to_gray(b), None)


def base_grid(h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.dstack([xs, ys])


def backward_warp(img: np.ndarray, flow: np.ndarray, border: int = cv2.BORDER_REPLICATE,
                  interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Sample img at x + flow(x): with flow A->B and img = B, returns B moved onto A."""
    h, w = flow.shape[:2]
    m = base_grid(h, w) + flow
    return cv2.remap(img, m[..., 0], m[..., 1], interpolation, borderMode=border)


def inside_mask(flow: np.ndarray) -> np.ndarray:
    """1 where x + flow(x) lands inside the frame, else 0 (pixels that leave the frame)."""
    h, w = flow.shape[:2]
    m = base_grid(h, w) + flow
    return ((m[..., 0] >= 0) & (m[..., 0] <= w - 1) & (m[..., 1] >= 0) & (m[..., 1] <= h - 1)).astype(np.float32)


def consistency_mask(fwd: np.ndarray, bwd: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward-backward check (Sundaram et al.): 1 where fwd and bwd agree, 0 at occlusions.

    fwd is A->B, bwd is B->A; a visible pixel of A goes to B and comes back to itself."""
    bwd_at = backward_warp(bwd, fwd)
    err = np.sum((fwd + bwd_at) ** 2, axis=-1)
    tol = alpha * (np.sum(fwd ** 2, axis=-1) + np.sum(bwd_at ** 2, axis=-1)) + beta
    return ((err <= tol).astype(np.float32) * inside_mask(fwd))


def flow_magnitude(flow: np.ndarray) -> np.ndarray:
    return np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2)


def _splat_kernel():
    # Compiled on first use so importing this module never pays numba's start-up cost.
    global _SPLAT
    if _SPLAT is None:
        import numba

        @numba.njit(cache=True, nogil=True)
        def splat(values, flow, weight, scale, acc, wsum, cover):
            h, w, c = values.shape
            for y in range(h):
                for x in range(w):
                    wt = weight[y, x]
                    if wt <= 0.0:
                        continue
                    tx = x + scale * flow[y, x, 0]
                    ty = y + scale * flow[y, x, 1]
                    x0 = int(np.floor(tx))
                    y0 = int(np.floor(ty))
                    fx = tx - x0
                    fy = ty - y0
                    for dy in range(2):
                        yy = y0 + dy
                        if yy < 0 or yy >= h:
                            continue
                        wy = fy if dy else 1.0 - fy
                        for dx in range(2):
                            xx = x0 + dx
                            if xx < 0 or xx >= w:
                                continue
                            b = wy * (fx if dx else 1.0 - fx)
                            k = wt * b
                            cover[yy, xx] += b
                            wsum[yy, xx] += k
                            for ch in range(c):
                                acc[yy, xx, ch] += k * values[y, x, ch]
        _SPLAT = splat
    return _SPLAT


_SPLAT = None


def forward_splat(values: np.ndarray, flow: np.ndarray, weight: np.ndarray, scale: float = 1.0):
    """Push each pixel's values to x + scale * flow(x) with bilinear weights (forward warping).

    values float32 HxWxC, weight float32 HxW (0 skips a pixel; where several land together
    the heavier wins, e.g. exp(-k * error) for softmax splatting). Returns (acc, wsum, cover):
    weighted sums HxWxC, their weights HxW, and the unweighted coverage HxW (how many source
    pixels landed: 0 in holes, about 1 where motion is smooth, more where things pile up).
    acc / wsum is the splatted image where wsum > 0; `fill_holes` completes it."""
    h, w = flow.shape[:2]
    values = np.ascontiguousarray(values.reshape(h, w, -1), np.float32)
    acc = np.zeros(values.shape, np.float32)
    wsum = np.zeros((h, w), np.float32)
    cover = np.zeros((h, w), np.float32)
    _splat_kernel()(values, np.ascontiguousarray(flow, np.float32), np.ascontiguousarray(weight, np.float32),
                    np.float32(scale), acc, wsum, cover)
    return acc, wsum, cover


def fill_holes(acc: np.ndarray, wsum: np.ndarray, trust: float = 1e-3) -> np.ndarray:
    """Normalise splatted sums and fill pixels nobody landed on from coarser levels (push-pull).

    acc HxWxC weighted sums and wsum HxW weights, as returned by forward_splat; a pixel with
    at least `trust` weight keeps its own value, emptier ones blend in the coarser estimate."""
    eps = 1e-12
    h, w = wsum.shape
    acc = acc.reshape(h, w, -1)
    levels = [(acc, wsum)]
    while min(levels[-1][1].shape) > 4:
        a, s = levels[-1]
        # Averaging sums and weights alike keeps their ratio, and each level halves the holes.
        a2 = cv2.resize(a, (max(1, a.shape[1] // 2), max(1, a.shape[0] // 2)), interpolation=cv2.INTER_AREA)
        s2 = cv2.resize(s, (a2.shape[1], a2.shape[0]), interpolation=cv2.INTER_AREA)
        levels.append((a2.reshape(a2.shape[0], a2.shape[1], -1), s2))
    a, s = levels[-1]
    out = a / np.maximum(s, eps)[..., None]
    for a, s in reversed(levels[:-1]):
        up = cv2.resize(out, (s.shape[1], s.shape[0]), interpolation=cv2.INTER_LINEAR).reshape(a.shape)
        out = np.empty_like(up)
        _pull_kernel()(np.ascontiguousarray(a), np.ascontiguousarray(s), up, s.dtype.type(trust), s.dtype.type(eps), out)
    return out


def _pull_kernel():
    # One pass per level instead of six numpy temporaries (half of fill_holes' time on small fields).
    global _PULL
    if _PULL is None:
        import numba

        # No fastmath: the same float32 operations in the same order as the numpy it replaced.
        @numba.njit(cache=True, nogil=True)
        def pull(a, s, up, trust, eps, out):
            h, w, c = a.shape
            one = s.dtype.type(1.0)
            for y in range(h):
                for x in range(w):
                    # Trust a level where it has weight; lean on the coarser estimate where it has little.
                    k = min(s[y, x] / trust, one)
                    d = max(s[y, x], eps)
                    for ch in range(c):
                        out[y, x, ch] = k * (a[y, x, ch] / d) + (one - k) * up[y, x, ch]
        _PULL = pull
    return _PULL


_PULL = None
