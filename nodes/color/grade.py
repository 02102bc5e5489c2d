"""A basic colour grade in the order a colourist applies it.

Exposure (stops) and white balance (temperature in kelvin, tint) act on linear light, as a
camera would; saturation mixes each pixel with its linear luminance; contrast pivots the
encoded values around mid-grey; gamma bends the encoded tone curve last."""
from __future__ import annotations

import numpy as np

from nodes.common.color import kelvin_gains, linear_to_srgb, luma, srgb_to_linear, to_float, to_uint8

MID_GREY = 0.5   # contrast pivot in encoded values (~18% grey in linear light)
BAND_ROWS = 64


def grade_frame(frame: np.ndarray, exposure: float = 0.0, contrast: float = 1.0, saturation: float = 1.0,
                temperature: float = 6500.0, tint: float = 0.0, gamma: float = 1.0) -> np.ndarray:
    lin = srgb_to_linear(to_float(frame)) * _gains(exposure, temperature, tint)
    if saturation != 1.0:
        y = luma(lin)[..., None]
        lin = np.maximum(y + saturation * (lin - y), 0.0)
    enc = linear_to_srgb(lin)
    if contrast != 1.0:
        enc = MID_GREY + contrast * (enc - MID_GREY)
    enc = np.clip(enc, 0.0, 1.0)
    if gamma != 1.0:
        enc = enc ** (1.0 / gamma)
    return to_uint8(enc)


def _gains(exposure: float, temperature: float, tint: float) -> np.ndarray:
    gains = kelvin_gains(temperature) * np.float32(2.0 ** exposure)
    # Tint: + pushes towards magenta, - towards green, keeping luminance.
    return gains * np.array([1.0 + 0.5 * tint, 1.0 - tint, 1.0 + 0.5 * tint], np.float32)


def grade_linear(lin: np.ndarray, exposure: float = 0.0, contrast: float = 1.0, saturation: float = 1.0,
                 temperature: float = 6500.0, tint: float = 0.0, gamma: float = 1.0) -> np.ndarray:
    """grade_frame on float linear light (an EXR plate's pixels), unclipped: light above 1.0 keeps its
    headroom through exposure, white balance and saturation (Nuke's Grade multiplies the same way), and
    contrast and gamma bend the sRGB-encoded values above 1.0 on the same curve. Within 0..1 it is
    grade_frame's result before 8-bit rounding."""
    lin = np.asarray(lin, np.float32)
    if lin.ndim > 2 and lin.shape[-3] > BAND_ROWS:
        # A band of rows at a time, as grader's: a chunk of 1080p frames' float copies took 0.15 s a frame.
        out = np.empty(lin.shape, np.float32)
        for y in range(0, lin.shape[-3], BAND_ROWS):
            out[..., y:y + BAND_ROWS, :, :] = grade_linear(lin[..., y:y + BAND_ROWS, :, :], exposure, contrast,
                                                           saturation, temperature, tint, gamma)
        return out
    lin = lin * _gains(exposure, temperature, tint)
    if saturation != 1.0:
        y = luma(lin)[..., None]
        lin = np.maximum(y + saturation * (lin - y), 0.0)
    if contrast == 1.0 and gamma == 1.0:
        return lin
    enc = linear_to_srgb(lin)
    if contrast != 1.0:
        enc = np.maximum(MID_GREY + contrast * (enc - MID_GREY), 0.0)
    if gamma != 1.0:
        enc = enc ** (1.0 / gamma)
    return srgb_to_linear(enc)


def grader(exposure: float = 0.0, contrast: float = 1.0, saturation: float = 1.0, temperature: float = 6500.0,
           tint: float = 0.0, gamma: float = 1.0):
    """grade_frame with these settings, as a function of a uint8 frame. Without a saturation change every step
    acts on each channel alone, so the grade of a channel value is the same wherever it occurs: it becomes
    three 256-entry tables, made by grading the 256 levels themselves (the same numbers grade_frame gives).
    Grading each pixel in float32 took longer than decoding and encoding the 1080p frame together."""
    if saturation != 1.0:
        def banded(frame: np.ndarray) -> np.ndarray:
            # A band of rows at a time (every step is per pixel): a whole 1080p frame's dozen float32 copies
            # came to 0.2 GB and were mapped and faulted in afresh for every frame.
            out = np.empty_like(frame)
            for y in range(0, frame.shape[0], BAND_ROWS):
                out[y:y + BAND_ROWS] = grade_frame(frame[y:y + BAND_ROWS], exposure, contrast, saturation,
                                                   temperature, tint, gamma)
            return out
        return banded
    levels = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    table = np.ascontiguousarray(grade_frame(levels, exposure, contrast, saturation, temperature, tint, gamma)
                                 .reshape(256, 1, 3))

    def apply(frame: np.ndarray) -> np.ndarray:
        import cv2
        return cv2.LUT(frame, table)

    return apply
