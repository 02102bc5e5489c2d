"""Colour maths shared by colour, restoration, stylization, relighting and metrics nodes.

Conventions: RGB arrays are float32 in [0, 1] unless a function says uint8; "srgb" means
gamma-encoded display values (what uint8 frames hold), "linear" means scene light.
Lab is CIE L*a*b* under D65, L in [0, 100]."""
from __future__ import annotations

import numpy as np

# Rec. 709 / sRGB primaries: luminance weights for linear light, and the same weights used as
# luma on encoded values (what video metrics and ffmpeg's filters measure).
LUMA_709 = np.array([0.2126, 0.7152, 0.0722], np.float32)

_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]], np.float32)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ).astype(np.float32)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883], np.float32)


def to_float(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) * (1.0 / 255.0)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, np.float32), 0.0, None)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055
                    ).astype(np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 weighted sum over the last axis (luminance on linear input, luma on encoded input)."""
    return np.asarray(rgb, np.float32) @ LUMA_709


def luma_u8(frames: np.ndarray) -> np.ndarray:
    """Luma of uint8 RGB frames, float32 in 0..255 (any leading shape)."""
    return frames.astype(np.float32) @ LUMA_709


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded float RGB in [0, 1] -> CIE Lab (D65)."""
    xyz = srgb_to_linear(rgb) @ _RGB_TO_XYZ.T / _WHITE_D65
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) -> sRGB-encoded float RGB, clipped to [0, 1]."""
    lab = np.asarray(lab, np.float32)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    eps, kappa = 6 / 29, 24389 / 27
    xyz = np.where(f > eps, f ** 3, (116 * f - 16) / kappa) * _WHITE_D65
    return np.clip(linear_to_srgb(xyz @ _XYZ_TO_RGB.T), 0.0, 1.0)


def kelvin_gains(kelvin: float, reference: float = 6500.0) -> np.ndarray:
    """Per-channel linear gains that move a scene lit at `reference` K to look lit at `kelvin` K.

    Uses the black-body chromaticity fit of Tanner Helland (good to a few percent between
    1000 K and 40000 K), normalised so the green gain is 1 and overall brightness is kept."""
    def rgb_of(k):
        t = np.clip(k, 1000.0, 40000.0) / 100.0
        r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
        g = 99.4708025861 * np.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
        b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * np.log(t - 10) - 305.0447927307)
        return srgb_to_linear(np.clip(np.array([r, g, b], np.float32), 1.0, 255.0) / 255.0)

    gains = rgb_of(kelvin) / rgb_of(reference)
    return (gains / float(luma(gains))).astype(np.float32)
