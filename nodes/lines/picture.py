"""The pixel steps comfyui_controlnet_aux's line preprocessors share, in plain numpy and OpenCV: the frame sized
to the detect resolution and padded to whole 64s (its resize_image_with_pad), the soft-edge quantising (safe_step)
and the fake-scribble thinning (nms, then a blur and a threshold). Their exact steps matter: a ControlNet trained on
their pictures sees the difference."""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from nodes.pose.geometry import detect_size

PAD = 64


def padded(frame: np.ndarray, resolution: int, upscale=cv2.INTER_CUBIC) -> Tuple[np.ndarray, Tuple[int, int]]:
    """(the frame scaled so its short side is `resolution`, then padded on the right and bottom to multiples of 64
    by repeating the edge pixels; (height, width) of the picture before padding). Scaling down is by area, up by
    `upscale` (each preprocessor has its own)."""
    h, w = frame.shape[:2]
    th, tw = detect_size(h, w, resolution)
    interp = upscale if resolution > min(h, w) else cv2.INTER_AREA
    img = cv2.resize(frame, (tw, th), interpolation=interp)
    ph, pw = -th % PAD, -tw % PAD
    return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge"), (th, tw)


def safe_step(x: np.ndarray, step: int = 2) -> np.ndarray:
    """Soft edges in 0..1 quantised to step + 1 levels (0, 1/2, 1, 3/2 for step 2): controlnet_aux's `safe`
    option, which keeps a ControlNet from reading the picture's exact grey levels."""
    return (x.astype(np.float32) * float(step + 1)).astype(np.int32).astype(np.float32) / float(step)


def thin(edge: np.ndarray, threshold: int = 127, sigma: float = 3.0) -> np.ndarray:
    """uint8 255 where the blurred edge map is a ridge in one of four directions (it is the largest of its two
    neighbours across that direction) and above `threshold`, else 0."""
    x = cv2.GaussianBlur(edge.astype(np.float32), (0, 0), sigma)
    ridge = np.zeros_like(x)
    for k in (np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], np.uint8), np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], np.uint8),
              np.eye(3, dtype=np.uint8), np.fliplr(np.eye(3, dtype=np.uint8)).copy()):
        np.putmask(ridge, cv2.dilate(x, kernel=k) == x, x)
    return np.where(ridge > threshold, 255, 0).astype(np.uint8)


def scribble(edge: np.ndarray) -> np.ndarray:
    """A soft-edge map made a fake scribble: thinned ridges, blurred wide, every touched pixel white."""
    x = cv2.GaussianBlur(thin(edge), (0, 0), 3.0)
    return np.where(x > 4, 255, 0).astype(np.uint8)


def rgb(grey: np.ndarray) -> np.ndarray:
    """A grey picture (or a stack of them) as RGB, the three channels equal."""
    return np.repeat(grey[..., None], 3, axis=-1)
