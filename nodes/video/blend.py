"""Two pictures mixed by a blend mode, and a Gaussian blur, computed as ComfyUI's ImageBlend and ImageBlur compute
them (comfy_extras/nodes_post_processing.py): in float, the blur's kernel drawn over [-1, 1] (its sigma a share of
the radius, not pixels) on a reflected border."""
from __future__ import annotations

import numpy as np

from graph_engine import Clip, NodeError

from .edit import comfy_scaled

BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")


def blended(a, b, mode: str, factor: float):
    """float tensors in [0, 1] (b broadcast over a): a mixed with `mode` of (a, b) by `factor`, clamped."""
    import torch
    if mode == "normal":
        m = b
    elif mode == "multiply":
        m = a * b
    elif mode == "screen":
        m = 1 - (1 - a) * (1 - b)
    elif mode == "overlay":
        m = torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b))
    elif mode == "soft_light":
        g = torch.where(a <= 0.25, ((16 * a - 12) * a + 4) * a, torch.sqrt(a))
        m = torch.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (g - a))
    elif mode == "difference":
        m = a - b
    else:
        raise NodeError(f"mode={mode!r}: choose one of {', '.join(BLEND_MODES)}")
    return torch.clamp(a * (1 - factor) + m * factor, 0, 1)


def _levels(x) -> np.ndarray:
    return np.clip(np.rint(x.numpy() * 255.0), 0, 255).astype(np.uint8)


def blend(video: Clip, other: Clip, mode: str, factor: float) -> Clip:
    """`other` blended over `video` frame by frame (one frame of `other`: over every frame), `other` first brought
    to `video`'s size by bicubic after cutting it to that shape at the middle, as ComfyUI does for pictures of
    another size."""
    import torch
    if mode not in BLEND_MODES:
        raise NodeError(f"mode={mode!r}: choose one of {', '.join(BLEND_MODES)}")
    if not 0.0 <= factor <= 1.0:
        raise NodeError(f"factor must be between 0 and 1, got {factor:g}")
    if other.length not in (1, video.length):
        raise NodeError(f"`other` has {other.length} frames and `video` {video.length}: give `other` one frame (laid "
                        f"over every frame) or as many as `video` (trim one of them)")
    resize = other.size != video.size

    def fn(frames: np.ndarray, a: int, b: int) -> np.ndarray:
        theirs = (other.frames(0, 1) if other.length == 1 else other.frames(a, b)).astype(np.float32) / 255.0
        if resize:      # in float: bicubic's overshoot goes into the blend unclamped, as in ComfyUI
            theirs = comfy_scaled(theirs, video.width, video.height, "bicubic", crop=True)
        x = torch.from_numpy(np.ascontiguousarray(frames)).float() / 255.0
        y = torch.from_numpy(np.ascontiguousarray(theirs))
        return _levels(blended(x, y, mode, factor))
    return video.with_(reader=lambda a, b: fn(video.frames(a, b), a, b), local=True, matte=None, linear=None)


def gaussian_taps(radius: int, sigma: float) -> np.ndarray:
    """ComfyUI's kernel, one axis of it: its (2 radius + 1)^2 taps at distances over [-1, 1], exp(-d^2 / 2 sigma^2)
    summing to 1, are the outer product of these 2 radius + 1 (exp(-(x^2 + y^2) / 2s^2) = exp(-x^2 / 2s^2)
    exp(-y^2 / 2s^2)), which blur in two passes of 2 radius + 1 taps each, not one of (2 radius + 1)^2."""
    x = np.linspace(-1.0, 1.0, 2 * radius + 1)
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return (g / g.sum()).astype(np.float32)


def blur(video: Clip, radius: int, sigma: float) -> Clip:
    """Every frame blurred by ComfyUI's Gaussian on a border reflected by `radius` pixels (torch's reflect, OpenCV's
    REFLECT_101): the two passes by OpenCV, in float (radius 31 on 640x360: 1.3 s a frame by torch's grouped
    conv2d, as ComfyUI runs it on the CPU)."""
    import cv2
    if radius < 1 or sigma <= 0:
        raise NodeError(f"radius must be 1 or more and sigma above 0, got {radius} and {sigma:g}")
    if radius >= min(video.width, video.height):
        raise NodeError(f"radius {radius} is not below the picture's {min(video.width, video.height)}-pixel side: the "
                        f"reflected border needs a smaller radius (ComfyUI stops there too)")
    taps = gaussian_taps(radius, sigma)

    def fn(frames: np.ndarray) -> np.ndarray:
        out = np.empty_like(frames)
        for i, f in enumerate(frames):
            x = cv2.sepFilter2D(f.astype(np.float32), -1, taps, taps, borderType=cv2.BORDER_REFLECT_101)
            out[i] = np.clip(np.rint(x, out=x), 0, 255)
        return out
    return video.map(fn, video.width, video.height).with_(matte=None, linear=None)
