"""Deflicker: remove fast brightness/colour pumping while keeping real lighting changes.

Each consecutive pair of frames is aligned with optical flow and compared on matching pixels, so
camera and object motion do not read as flicker (ffmpeg's deflicker compares whole-frame means, which
motion disturbs). Between two frames the tone changes by a gain and an offset (cur = gain * prev +
offset): exposure flicker is a gain, flare or a lifted black an offset; a gain alone over-corrected an
offset flicker, pumping the shadows while it evened the mid-tones. The gain is fitted per region of a
coarse grid (one offset for the frame): the median of the regions' is the frame's, what each region
has beyond it is local flicker (a lamp pulsing in one corner, uneven gate light, mains bands).

Chained, the pair changes give each frame's tone, and each region's gain, relative to the clip; the
correction pulls them to a Gaussian-weighted temporal fit of their neighbours, the frame's through 256-
entry tables, the regions' as a smooth gain field. Slow changes (fades, exposure ramps, a highlight
sliding along a moving car) pass through the low-pass; scene cuts and large sudden steps (a lamp
switched on) split the sequence so nothing is smoothed across them."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from graph_engine.clip import CACHED_CHUNKS
from nodes.common.color import LUMA_709, linear_to_srgb_unclamped, srgb_to_linear
from nodes.common.flow import backward_warp, estimate_flow, inside_mask
from nodes.common.stream import Measures, PairCache, measured_float, smooth_trajectory, windowed

WORK_WIDTH = 256          # tone changes are smooth: a small copy measures them as well as the full frame
MIN_CORRELATION = 0.5     # below this the aligned frames are different shots: a scene cut
# The local grid: 6 regions across and at least 8 down. Mains flicker filmed by a rolling shutter is bands
# across the frame (1.7 of them at 100 Hz and a 1/60 s readout): with 3 rows (a square grid on a 2.35:1
# frame) a third of it was left, with 8 a sixth. More regions also read more real lighting (a highlight
# sliding along a car) as flicker.
GRID_COLUMNS, GRID_ROWS = 6, 8
OFFSET_PRIOR = 10.0       # levels: an offset the matched pixels' spread cannot pin down is taken as 0
REGION_PRIOR = 0.05       # a region's gain keeps to the frame's by this much where its pixels say little
TONES = ("gain+offset", "gain")
# Warping interpolates, which softens the warped frame by a variance of 1/6 px^2 on average: see pair_gain.
SOFTEN_CUR = float(np.hypot(1.0, np.sqrt(1.0 / 6.0)))


@dataclass
class PairGain:
    log_ratio: np.ndarray       # per channel: the median log(cur / prev) over the frame, RGB (a gain alone)
    cut: bool
    gain: np.ndarray = None     # per channel (RGB; luma's in each where measured on luma): cur = gain * prev
    offset: np.ndarray = None   # + offset, in levels
    local: np.ndarray = None    # per region of the grid: log of its luma gain over the frame's (rows x cols)
    seen: np.ndarray = None     # per region: the share of its pixels that measured it
    level: float = 0.0          # prev's mean luma: a step of the tone change is read there


def work_size(h: int, w: int) -> tuple:
    """(height, width) of the copy a frame is measured on."""
    return (max(8, round(h * WORK_WIDTH / w)), WORK_WIDTH) if w > WORK_WIDTH else (h, w)


def small(frame: np.ndarray) -> np.ndarray:
    """The float32 copy of a frame that pair_gain measures."""
    h, w = work_size(*frame.shape[:2])
    if w != frame.shape[1]:
        frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    return frame.astype(np.float32)


def _normalised_u8(gray: np.ndarray) -> np.ndarray:
    # Flow is estimated on mean-normalised frames so the flicker itself does not bias matching.
    return np.clip(gray * (110.0 / max(float(gray.mean()), 1.0)), 0, 255).astype(np.uint8)


def grid_shape(h: int, w: int) -> tuple:
    """(rows, columns) of the local-flicker grid for an h x w frame: GRID_COLUMNS across, GRID_ROWS or more
    down (a portrait frame's regions stay about square)."""
    return max(GRID_ROWS, round(GRID_COLUMNS * h / w)), GRID_COLUMNS


def _tukey(u: np.ndarray) -> np.ndarray:
    return np.where(np.abs(u) < 1.0, (1.0 - u * u) ** 2, 0.0)


def fit_regions(x: np.ndarray, y: np.ndarray, region: np.ndarray, regions: int, offset: bool = True,
                weights: np.ndarray = None, iterations: int = 5) -> tuple:
    """Matched pixels x (prev) -> y (cur), `region` each one's region of the frame's grid (of `regions`):
    y = gain[region] * x + offset, one gain per region and one offset for the frame. Returns the frame's
    gain (the median of the regions', so flicker in a minority of them does not move it), the offset, the
    regions' gains, the weight each region's gain rests on and the pixels' weights.

    A gain per region is what keeps the offset honest: with one gain for the frame, a lamp lighting the
    part of a night shot where its lit windows are read as 23 levels of offset and a gain of 0.88, which
    chained from frame to frame into a drift of 8 levels over 48 frames. An offset now has to be shared
    by the dark and the bright pixels of each region. The fit is iteratively reweighted least squares
    with Tukey's biweight, so pixels the flow matched wrongly (or that changed for real) drop out; weights
    given are used as they are, in one pass. The offset has a Gaussian prior of OFFSET_PRIOR levels and
    each region's gain one of REGION_PRIOR about the frame's: where the data cannot tell them apart (one narrow
    band of levels, a region with a handful of pixels), the offset is 0 and the region follows the frame."""
    gain = np.full(regions, float(np.exp(np.median(np.log(y) - np.log(x)))))
    common, b, w = float(gain[0]), 0.0, weights
    for _ in range(1 if weights is not None else iterations):
        r = y - gain[region] * x - b
        s = max(1.4826 * float(np.median(np.abs(r))), 0.5)
        if weights is None:
            w = _tukey(r / (4.685 * s))
        sw, sx, sxx, sxy, sy = (np.bincount(region, w * v, regions) for v in (np.ones_like(x), x, x * x, x * y, y))
        seen = sw > 8
        kappa = (s / REGION_PRIOR) ** 2
        d = sxx + kappa
        if offset:
            den = sw.sum() - (sx * sx / d).sum() + (s / OFFSET_PRIOR) ** 2
            b = float((sy.sum() - ((sxy + kappa * common) * sx / d).sum()) / den)
        gain = (sxy - b * sx + kappa * common) / d
        common = float(np.median(gain[seen])) if seen.any() else common
    return common, b, gain, sw, w


def _labels(h: int, w: int, shape: tuple) -> np.ndarray:
    """Each pixel's region of an h x w frame split in a grid of `shape` (rows, columns), numbered row-wise."""
    rows, cols = shape
    return (np.arange(h) * rows // h)[:, None] * cols + (np.arange(w) * cols // w)[None, :]


def pair_gain(p: np.ndarray, c: np.ndarray, rgb: bool = False, offset: bool = True) -> PairGain:
    """The tone change from frame p to the next, c (their small copies), measured on motion-aligned
    pixels, and whether they are a cut. rgb: fit each channel's gain and offset, not only luma's;
    offset: fit an offset (else a gain alone)."""
    pl, cl = p @ LUMA_709, c @ LUMA_709
    flow = estimate_flow(_normalised_u8(cl), _normalised_u8(pl), "medium")
    warped = backward_warp(p, flow)
    wl = warped @ LUMA_709
    # Exclude clipped pixels: their ratio says nothing about the gain.
    ok = (inside_mask(flow) > 0) & np.all((c > 4) & (c < 250) & (warped > 4) & (warped < 250), axis=-1)
    if ok.sum() < 0.05 * ok.size:
        return PairGain(np.zeros(3, np.float32), True)
    a, b = cl[ok] - cl[ok].mean(), wl[ok] - wl[ok].mean()
    corr = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-9))
    ratio = np.median(np.log(c[ok]) - np.log(warped[ok]), axis=0).astype(np.float32)
    # Warping interpolates, which softens prev (by a variance of 1/6 px^2 on average): a gain and offset fitted
    # to the softer copy read its lost contrast as a gain (1.022 a frame on a steady night shot, -3 levels of
    # offset), which chained into a drift. Both are blurred alike first, cur by that much more; halving them
    # then leaves plenty of pixels for the fit.
    h2, w2 = ok.shape[0] // 2, ok.shape[1] // 2
    okb = cv2.resize(ok.astype(np.float32), (w2, h2), interpolation=cv2.INTER_AREA) > 0.999
    if okb.sum() < 32:
        return PairGain(ratio, corr < MIN_CORRELATION)
    cb, wb = (cv2.resize(cv2.GaussianBlur(x, (0, 0), sd), (w2, h2), interpolation=cv2.INTER_AREA)[okb]
              .astype(np.float64) for x, sd in ((c, SOFTEN_CUR), (warped, 1.0)))
    shape = grid_shape(*cl.shape)
    labels, regions = _labels(h2, w2, shape)[okb], shape[0] * shape[1]
    common, off, gains, weight, w = fit_regions(wb @ LUMA_709, cb @ LUMA_709, labels, regions, offset)
    fits = [(common, off)] * 3
    if rgb:
        fits = [fit_regions(wb[:, k], cb[:, k], labels, regions, offset, w)[:2] for k in range(3)]
    fits = np.array(fits)
    if not offset:      # a gain alone: the frame's is the median ratio, and the regions' are measured against it
        common = float(np.exp(ratio @ LUMA_709))
    area = np.bincount(_labels(h2, w2, shape).ravel(), minlength=regions)
    local = np.log(np.maximum(gains, 1e-3) / common)
    return PairGain(ratio, corr < MIN_CORRELATION, fits[:, 0], fits[:, 1], local.reshape(shape),
                    (weight / area).reshape(shape), float(wl[ok].mean()))


def apply_gain(frame: np.ndarray, log_gain: np.ndarray) -> np.ndarray:
    """Multiply each channel by exp(log_gain) through 256-entry tables (uint8 in, uint8 out)."""
    return apply_tone(frame, np.exp(log_gain), np.zeros(3))


def apply_tone(frame: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Each channel c -> gain[c] * level + offset[c] through 256-entry tables (uint8 in, uint8 out)."""
    levels = np.arange(256, dtype=np.float64)
    out = np.empty_like(frame)
    for ch in range(3):
        lut = np.clip(levels * gain[ch] + offset[ch] + 0.5, 0, 255).astype(np.uint8)
        out[..., ch] = lut[frame[..., ch]]
    return out


def field_gains(h: int, w: int, log_field: np.ndarray) -> np.ndarray:
    """float32 HxWx3: exp(log_field), the coarse grid of log gains upsampled smoothly to the frame: cubic to an
    eighth of the frame, then linear (a third of the time of cubic all the way at 1080p, within a level)."""
    g = cv2.resize(np.exp(log_field).astype(np.float32), (max(2, w // 8), max(2, h // 8)),
                   interpolation=cv2.INTER_CUBIC)
    return cv2.resize(np.repeat(g[..., None], 3, axis=2), (w, h), interpolation=cv2.INTER_LINEAR)


def apply_field(frame: np.ndarray, log_field: np.ndarray) -> np.ndarray:
    """uint8 frame times exp(log_field) (field_gains)."""
    return cv2.multiply(frame, field_gains(*frame.shape[:2], log_field), dtype=cv2.CV_8U)


def tone_linear(lin: np.ndarray, gain: np.ndarray, offset: np.ndarray, log_field=None) -> np.ndarray:
    """A deep plate's float linear light (HxWx3) through the correction the 8-bit frame got (apply_tone's gain and
    offset in levels, apply_field's gains), unrounded and unclipped: on its sRGB-coded values, as the 8-bit
    frame holds them, the curve continued past 1.0 (light above it keeps its headroom)."""
    coded = linear_to_srgb_unclamped(lin) * np.float32(255.0)
    coded = coded * gain.astype(np.float32) + offset.astype(np.float32)
    if log_field is not None:
        coded *= field_gains(*lin.shape[:2], log_field)
    return srgb_to_linear(coded * np.float32(1 / 255.0))


def _fill(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """A light spatial smoothing of per-region values by their weights; regions measured on too few
    pixels take their neighbours' values (or 0: no local change) instead of a noisy one of their own."""
    k = dict(ksize=(3, 3), sigmaX=0.7, borderType=cv2.BORDER_REPLICATE)
    num = cv2.GaussianBlur((values * weight).astype(np.float32), **k)
    den = cv2.GaussianBlur(weight.astype(np.float32), **k)
    return np.where(den > 0.05, num / np.maximum(den, 1e-6), 0.0)


def deflicker_clip(ctx, clip, radius: int = 12, strength: float = 1.0, mode: str = "luma",
                   step_threshold: float = 0.5, tone: str = "gain+offset", local: bool = True):
    """The deflickered clip (lazy). mode 'luma' applies one tone change to all channels, 'rgb' one per
    channel; tone 'gain' fits a gain alone; local also evens out flicker in parts of the frame."""
    if mode not in ("luma", "rgb"):
        raise ValueError(f"unknown deflicker mode {mode!r}")
    if tone not in TONES:
        raise ValueError(f"unknown deflicker tone {tone!r}")
    cache, smalls = PairCache(4 * radius + 64), PairCache(8)
    shape = grid_shape(*work_size(clip.height, clip.width))

    def compute(window: np.ndarray, lo: int, a: int, b: int) -> np.ndarray:
        n = len(window)
        # Frame k's levels are gain_k * (s + offset_k) of a reference's levels s: smoothing the log gain and
        # this offset (in the reference's units) gives the same correction whichever frame is the reference.
        log_gain = np.zeros((n, 3), np.float64)
        offset = np.zeros((n, 3), np.float64)
        cells = np.zeros((n,) + shape) if local else None
        breaks = np.zeros(n, bool)
        for k in range(1, n):
            if ctx is not None:
                ctx.check()
            g = cache.get(lo + k, lambda: pair_gain(smalls.get(lo + k - 1, lambda: small(window[k - 1])),
                                                    smalls.get(lo + k, lambda: small(window[k])),
                                                    mode == "rgb", tone != "gain"))
            if tone == "gain" or g.gain is None:
                ratio = g.log_ratio if mode == "rgb" else np.full(3, float(g.log_ratio @ LUMA_709))
                gain, off = np.exp(ratio), np.zeros(3)
                step = float(np.abs(ratio).max())
            else:
                gain, off = g.gain, g.offset
                # How much the mean brightness jumps (the ends of the tone range: a lift of 20 levels on a dark
                # frame is a log step of 1 at its darkest quartile, and flicker on it read as lamps switched on).
                step = float(np.abs(np.log(np.maximum(gain * g.level + off, 1.0) / max(g.level, 1.0))).max())
                ratio = np.log(np.maximum(gain, 1e-3))
            breaks[k] = g.cut or step > step_threshold
            if breaks[k]:
                log_gain[k], offset[k] = log_gain[k - 1], offset[k - 1]
            else:
                log_gain[k] = log_gain[k - 1] + ratio
                offset[k] = offset[k - 1] + off / np.exp(log_gain[k])
            if local:
                cells[k] = cells[k - 1] + (0.0 if breaks[k] or g.local is None else _local_step(g, step_threshold))
        path = np.concatenate([log_gain, offset], axis=1)
        target = smooth_trajectory(path, breaks, range(a, b), lo, radius)
        here = path[a - lo: b - lo]
        target = here + strength * (target - here)
        new_gain = np.exp(target[:, :3] - here[:, :3])
        new_offset = np.exp(target[:, :3]) * (target[:, 3:] - here[:, 3:])
        out = np.stack([apply_tone(window[i - lo], new_gain[i - a], new_offset[i - a]) for i in range(a, b)])
        fields = [None] * (b - a)
        if local:
            # A quadratic fit: real local lighting that curves in time (a highlight passing over a moving car)
            # is followed, and not taken for flicker, more closely than by a straight line (steady bikes clip:
            # 46.4 -> 48.0 dB against the input); flicker, fast, is removed all the same.
            field = strength * (smooth_trajectory(cells, breaks, range(a, b), lo, radius, degree=2)
                                - cells[a - lo: b - lo])
            for i in range(b - a):
                if np.abs(field[i]).max() > 1e-3:
                    out[i] = apply_field(out[i], field[i])
                    fields[i] = field[i]
        if tones is not None:
            for i in range(b - a):
                tones.put(a + i, (new_gain[i], new_offset[i], fields[i]))
        return out

    out = windowed(ctx, clip, radius, compute, behind=False)
    # Frame -> the correction it got (gain, offset, field or None), for a deep plate's floats (none for 8 bits): as
    # many frames' as out keeps.
    tones = Measures((CACHED_CHUNKS + 1) * out.chunk) if clip.linear is not None else None
    return measured_float(out, clip, lambda lin, tone: tone_linear(lin, *tone), tones)


def _local_step(g: PairGain, step_threshold: float) -> np.ndarray:
    """Per region, the log change of luma beyond the frame's; 0 for a real step (a lamp switched on)."""
    return _fill(np.where(np.abs(g.local) < step_threshold, g.local, 0.0), g.seen)
