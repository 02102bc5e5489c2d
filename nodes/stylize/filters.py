"""Classical, weight-free stylization filters on uint8 RGB frames.

OpenCV's photo module gives the painterly looks (Gastal & Oliveira's domain transform:
stylization, edge-preserving smoothing, detail enhancement) and the pencil sketch; ink is a
soft-thresholded difference of Gaussians (Winnemoeller et al. 2012); cartoon is an iterated bilateral filter,
banded in lightness (as toon shading bands it), with adaptive-threshold outlines. OpenCV's photo filters expect BGR, so frames
are swapped on the way in and out."""
from __future__ import annotations

import cv2
import numpy as np

PAINTERLY = ("stylization", "edge_preserving", "detail")
SKETCHES = ("pencil", "color_pencil", "ink")


def _bgr(f: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(f, cv2.COLOR_RGB2BGR)


def _rgb(f: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(f, cv2.COLOR_BGR2RGB)


def painterly(frame: np.ndarray, method: str = "stylization", sigma_s: float = 60.0, sigma_r: float = 0.45
              ) -> np.ndarray:
    """uint8 frames in and out. Float levels (a deep plate's: stream.levels_frames) are filtered as their 8-bit
    rounding, OpenCV's photo filters taking no deeper, and what the rounding took (light past 255, steps finer than
    a level) added back to the result: an edge-keeping filter leaves a clipped highlight flat near white, so its light
    comes back; within 0..1 the result is the 8-bit one to half a level."""
    if frame.dtype != np.uint8:
        rounded = np.clip(np.round(frame), 0, 255).astype(np.uint8)
        return painterly(rounded, method, sigma_s, sigma_r).astype(np.float32) + (frame - rounded)
    if method == "stylization":
        return _rgb(cv2.stylization(_bgr(frame), sigma_s=sigma_s, sigma_r=sigma_r))
    if method == "edge_preserving":
        return _rgb(cv2.edgePreservingFilter(_bgr(frame), flags=cv2.RECURS_FILTER, sigma_s=sigma_s, sigma_r=sigma_r))
    if method == "detail":
        return _rgb(cv2.detailEnhance(_bgr(frame), sigma_s=sigma_s, sigma_r=sigma_r))
    raise ValueError(f"unknown painterly method {method!r}")


def xdog(gray: np.ndarray, sigma: float = 1.0, k: float = 1.6, eps: float = 0.012, phi: float = 120.0) -> np.ndarray:
    """Soft-thresholded difference of Gaussians: white paper, dark strokes on the dark side of edges (0..1)."""
    g = gray.astype(np.float32) / 255.0
    d = cv2.GaussianBlur(g, (0, 0), sigma) - cv2.GaussianBlur(g, (0, 0), sigma * k)
    return np.where(d >= -eps, 1.0, 1.0 + np.tanh(phi * (d + eps))).clip(0.0, 1.0).astype(np.float32)


def sketch(frame: np.ndarray, style: str = "pencil", detail: float = 1.0) -> np.ndarray:
    if style in ("pencil", "color_pencil"):
        # sigma_r sets which edges get strokes (0.35: outlines only; 0.0175: shading everywhere); the spatial
        # sigma_s that `detail` moved from 18 to 170 changed 2 levels on average past 20, so detail 1..4 looked
        # the same.
        gray, color = cv2.pencilSketch(_bgr(frame), sigma_s=50, sigma_r=0.07 / detail, shade_factor=0.03)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB) if style == "pencil" else _rgb(color)
    if style == "ink":
        ink = xdog(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), sigma=max(0.3, 1.2 / detail))
        return np.repeat((ink * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=-1)
    raise ValueError(f"unknown sketch style {style!r}")


def posterize(frame: np.ndarray, levels: int = 6) -> np.ndarray:
    """Quantize each channel to `levels` evenly spaced values (fixed bins: no flicker between frames). Float levels
    (a deep plate's: stream.levels_frames) get the same bins, unrounded, and bins of the same step past 255."""
    step = 255.0 / (levels - 1)
    if frame.dtype != np.uint8:
        return np.round(frame / np.float32(step)) * np.float32(step)
    lut = (np.round(np.round(np.arange(256) / step) * step)).astype(np.uint8)
    return lut[frame]


def lightness_bands(frame: np.ndarray, levels: int = 8) -> np.ndarray:
    """Quantize CIE L* to `levels` evenly spaced values (fixed bins), keeping each pixel's a*b* (hue, chroma).

    Banding R, G and B apart gave grey and skin tones false hues: a dark grey wall (R a few levels above G)
    straddled a bin edge in one channel only and came out in red and yellow patches, a face in pink and green."""
    lab = cv2.cvtColor(frame.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)
    step = 100.0 / (levels - 1)
    lab[..., 0] = np.round(lab[..., 0] / step) * step
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def cartoon(frame: np.ndarray, levels: int = 8, edges: float = 1.0, smoothing: int = 2) -> np.ndarray:
    flat = frame
    for _ in range(smoothing):
        flat = cv2.bilateralFilter(flat, 9, 40, 7)
    flat = lightness_bands(flat, levels)
    if edges <= 0:
        return flat
    gray = cv2.medianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 7)
    block = max(3, int(min(frame.shape[:2]) / 20) | 1)
    # The offset keeps fine texture (fur, foliage) from turning into outlines; only real edges ink.
    lines = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, 8)
    ink = 1.0 - edges * (1.0 - lines.astype(np.float32) / 255.0)
    return np.clip(flat * ink[..., None] + 0.5, 0, 255).astype(np.uint8)
