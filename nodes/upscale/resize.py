"""Plain resampling of every frame, with an optional unsharp mask against resampling softness."""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from graph_engine import NodeError

METHODS = {"lanczos": cv2.INTER_LANCZOS4, "bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA,
           "nearest": cv2.INTER_NEAREST}


def target_size(w: int, h: int, scale: float = 2.0, width: int = 0, height: int = 0) -> Tuple[int, int]:
    """width and height both set: exactly that; one set: the other follows the aspect ratio; none: scale."""
    if width and height:
        return width, height
    if width:
        return width, max(1, round(h * width / w))
    if height:
        return max(1, round(w * height / h)), height
    if scale <= 0:
        raise NodeError(f"scale must be positive, got {scale}")
    return max(1, round(w * scale)), max(1, round(h * scale))


def unsharp(frame: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """frame + amount * (frame - blurred frame), in uint8."""
    blurred = cv2.GaussianBlur(frame, (0, 0), sigma)
    return cv2.addWeighted(frame, 1.0 + amount, blurred, -amount, 0)


def resize_frame(frame: np.ndarray, size: Tuple[int, int], method: str = "lanczos",
                 sharpen: float = 0.0) -> np.ndarray:
    r = cv2.resize(frame, size, interpolation=METHODS[method])
    return unsharp(r, sharpen) if sharpen > 0 else r


def resize_clip(video, *, scale: float = 2.0, width: int = 0, height: int = 0, method: str = "lanczos",
                sharpen: float = 0.0, ctx=None):
    from nodes.common.stream import map_frames
    size = target_size(video.width, video.height, scale, width, height)
    if method not in METHODS:
        raise NodeError(f"unknown resize method {method!r}; choose one of {', '.join(METHODS)}")
    from nodes.common.stream import moved_float
    # The alpha is resized alike but not sharpened (a halo in a matte shows as a fringe on every background).
    out = map_frames(ctx, video, lambda f: resize_frame(f, size, method, sharpen), size[0], size[1]).with_(
        matte=resized_matte(video.matte, size, method))
    return moved_float(out, video, lambda f: np.stack([_float_frame(x, size, method, sharpen) for x in f]))


def _float_frame(frame: np.ndarray, size: Tuple[int, int], method: str, sharpen: float) -> np.ndarray:
    """resize_frame of float pixels (Clip.linear, RGB or premultiplied RGBA): the colour sharpened, not the alpha."""
    r = cv2.resize(frame, size, interpolation=METHODS[method])
    if sharpen > 0:
        r[..., :3] = unsharp(np.ascontiguousarray(r[..., :3]), sharpen)
    return r


def resized_matte(matte, size: Tuple[int, int], method: str = "lanczos"):
    """A clip's alpha (Clip.matte; None: none) at `size`, for an upscaler: the networks and the multi-frame
    reconstruction make colour only, and the element's alpha, resampled, still fits it (no node outlines the
    subject otherwise)."""
    from nodes.common.stream import moved
    return moved(matte, lambda f: np.stack([resize_frame(m, size, method)[..., None] for m in f]), *size)
