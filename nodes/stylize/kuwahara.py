"""Generalized Kuwahara filter (Papari, Petkov & Campisi 2007): a painterly, edge-keeping blur.

The disc around each pixel is split into N overlapping, smoothly weighted sectors; each
sector's weighted mean and variance come from convolutions (OpenCV's filter2D, so no pixel
loop remains to JIT), and the output favours the sectors with the least variance:
weight 1 / (1 + sigma^q). Smooth sector weights remove the blockiness of the classic
four-square Kuwahara, and a fixed kernel keeps consecutive frames consistent."""
from __future__ import annotations

import functools

import cv2
import numpy as np


SPREAD = 10.0       # 8-bit levels of spread (summed over R, G, B variances) that halve a sector's weight


@functools.lru_cache(maxsize=16)
def sector_kernels(radius: int, sectors: int = 8) -> tuple:
    ys, xs = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float32)
    r = np.hypot(xs, ys)
    theta = np.arctan2(ys, xs)
    radial = np.exp(-0.5 * (r / (radius / 2.0)) ** 2) * (r <= radius + 0.5)
    width = np.pi / sectors
    kernels = []
    for k in range(sectors):
        d = np.angle(np.exp(1j * (theta - 2 * np.pi * k / sectors)))
        w = np.exp(-0.5 * (d / width) ** 2) * radial
        w[radius, radius] = radial[radius, radius] / sectors
        kernels.append((w / w.sum()).astype(np.float32))
    return tuple(kernels)


_CHANNEL_SUM = np.ones((1, 3), np.float32)


def kuwahara(frame: np.ndarray, radius: int = 5, sharpness: float = 8.0, sectors: int = 8) -> np.ndarray:
    """uint8 frames in, uint8 out; float levels (a deep plate's: stream.levels_frames) in, float levels out,
    unrounded and past 255."""
    # Per-pixel work stays in OpenCV's calls: numpy's sum over the 3 channels and its broadcasts took 3/4 of
    # the time at 1080p (4.8 s a frame, 1.6 s now), the convolutions the rest.
    f = frame.astype(np.float32) * (1.0 / 255.0)
    f2 = cv2.multiply(f, f)
    num = np.zeros_like(f)
    den = np.zeros(f.shape[:2], np.float32)
    # The spread in 8-bit levels against SPREAD: a sector SPREAD levels rough has weight 1/2 at any sharpness,
    # which sets only how fast rougher sectors lose. (Written (255 sigma)^q * 1e-8, the halfway point was
    # 10^(8/q) levels: 10^8 at sharpness 1, 100 at 4, so the lower half of the range was a plain blur, edges
    # and all.) Raised to q/2 as a variance: (255 / SPREAD)^2 var.
    scale = (255.0 / SPREAD) ** 2
    for k in sector_kernels(radius, sectors):
        m = cv2.filter2D(f, -1, k, borderType=cv2.BORDER_REFLECT)
        d = cv2.subtract(cv2.filter2D(f2, -1, k, borderType=cv2.BORDER_REFLECT), cv2.multiply(m, m))
        np.maximum(d, 0.0, out=d)
        w = 1.0 / (1.0 + cv2.pow(cv2.transform(d, _CHANNEL_SUM) * scale, sharpness / 2.0))
        cv2.accumulateProduct(m, cv2.merge([w, w, w]), num)
        den += w
    if frame.dtype != np.uint8:
        return num / den[..., None] * np.float32(255.0)
    return np.clip(num / den[..., None] * 255.0 + 0.5, 0, 255).astype(np.uint8)
