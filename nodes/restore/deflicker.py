"""Deflicker: remove fast brightness/colour pumping while keeping real lighting changes.

Each consecutive pair of frames is aligned with optical flow and the gain between them is
the median log ratio of matching pixels, so camera and object motion do not read as flicker
(ffmpeg's deflicker compares whole-frame means, which motion disturbs). Integrating those
ratios gives each frame's log gain; the correction pulls it to a Gaussian temporal average.
Slow changes (fades, exposure ramps) pass through the low-pass untouched; scene cuts and
large sudden steps (a lamp switched on) split the sequence so nothing is smoothed across them."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from nodes.common.color import LUMA_709
from nodes.common.flow import backward_warp, estimate_flow, inside_mask
from nodes.common.stream import PairCache, smooth_trajectory, windowed

WORK_WIDTH = 192          # gains are global: a small copy measures them as well as the full frame
MIN_CORRELATION = 0.5     # below this the aligned frames are different shots: a scene cut


@dataclass
class PairGain:
    log_ratio: np.ndarray   # per channel: log(gain_cur / gain_prev), RGB
    cut: bool


def _small(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if w > WORK_WIDTH:
        frame = cv2.resize(frame, (WORK_WIDTH, max(8, round(h * WORK_WIDTH / w))), interpolation=cv2.INTER_AREA)
    return frame.astype(np.float32)


def _normalised_u8(gray: np.ndarray) -> np.ndarray:
    # Flow is estimated on mean-normalised frames so the flicker itself does not bias matching.
    return np.clip(gray * (110.0 / max(float(gray.mean()), 1.0)), 0, 255).astype(np.uint8)


def pair_gain(prev: np.ndarray, cur: np.ndarray) -> PairGain:
    """Gain from prev to cur, measured on motion-aligned pixels, and whether they are a cut."""
    p, c = _small(prev), _small(cur)
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
    return PairGain(ratio, corr < MIN_CORRELATION)


def apply_gain(frame: np.ndarray, log_gain: np.ndarray) -> np.ndarray:
    """Multiply each channel by exp(log_gain) through 256-entry tables (uint8 in, uint8 out)."""
    levels = np.arange(256, dtype=np.float32)
    out = np.empty_like(frame)
    for ch in range(3):
        lut = np.clip(levels * np.exp(log_gain[ch]) + 0.5, 0, 255).astype(np.uint8)
        out[..., ch] = lut[frame[..., ch]]
    return out


def deflicker_clip(ctx, clip, radius: int = 12, strength: float = 1.0, mode: str = "luma",
                   step_threshold: float = 0.5):
    """The deflickered clip (lazy). mode 'luma' applies one gain to all channels; 'rgb' one per channel."""
    if mode not in ("luma", "rgb"):
        raise ValueError(f"unknown deflicker mode {mode!r}")
    cache = PairCache(4 * radius + 64)

    def compute(window: np.ndarray, lo: int, a: int, b: int) -> np.ndarray:
        n = len(window)
        log_gain = np.zeros((n, 3), np.float64)
        breaks = np.zeros(n, bool)
        for k in range(1, n):
            if ctx is not None:
                ctx.check()
            g = cache.get(lo + k, lambda: pair_gain(window[k - 1], window[k]))
            ratio = g.log_ratio if mode == "rgb" else np.full(3, float(g.log_ratio @ LUMA_709))
            breaks[k] = g.cut or float(np.abs(ratio).max()) > step_threshold
            log_gain[k] = log_gain[k - 1] + (0.0 if breaks[k] else ratio)
        target = smooth_trajectory(log_gain, breaks, range(a, b), lo, radius)
        corr = strength * (target - log_gain[a - lo: b - lo])
        return np.stack([apply_gain(window[i - lo], corr[i - a]) for i in range(a, b)])

    return windowed(ctx, clip, radius, compute)
