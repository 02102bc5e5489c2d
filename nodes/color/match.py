"""Colour matching: make a frame's colours follow a reference image.

Reinhard et al. (2001) match per-channel mean and standard deviation in a decorrelated
colour space (CIE Lab here); histogram matching maps each RGB channel through the
reference's cumulative distribution. `strength` blends the result with the input."""
from __future__ import annotations

import cv2
import numpy as np

from nodes.common.color import channel_cdfs, lab_to_rgb, match_cdfs as histogram, rgb_to_lab, to_float, to_uint8

STATS_WIDTH = 256   # statistics of a subsampled copy: the same to a fraction of a level, much faster


def _sample(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if w > STATS_WIDTH:
        img = cv2.resize(img, (STATS_WIDTH, max(1, round(h * STATS_WIDTH / w))), interpolation=cv2.INTER_AREA)
    return img


def lab_stats(img: np.ndarray):
    lab = rgb_to_lab(to_float(_sample(img))).reshape(-1, 3)
    return lab.mean(0), lab.std(0)


def reinhard(frame: np.ndarray, ref_stats, strength: float = 1.0) -> np.ndarray:
    mean_r, std_r = ref_stats
    mean_f, std_f = lab_stats(frame)
    lab = rgb_to_lab(to_float(frame))
    matched = (lab - mean_f) * (std_r / np.maximum(std_f, 1e-3)) + mean_r
    out = lab_to_rgb(lab + strength * (matched - lab))
    return to_uint8(out)


def matcher(reference: np.ndarray, method: str, strength: float):
    """A per-frame function matching frames to `reference` (statistics computed once)."""
    if method == "reinhard":
        stats = lab_stats(reference)
        return lambda f: reinhard(f, stats, strength)
    if method == "histogram":
        cdfs = channel_cdfs(reference)
        return lambda f: histogram(f, cdfs, strength)
    raise ValueError(f"unknown colour match method {method!r}")
