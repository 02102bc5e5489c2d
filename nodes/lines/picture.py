"""The pixel steps comfyui_controlnet_aux's line preprocessors share, in plain numpy and OpenCV (the sizing to the
detect resolution is nodes.preprocess.pictures.detect_sized): the soft-edge quantising (safe_step) and the
fake-scribble thinning (nms, then a blur and a threshold). Their exact steps matter: a ControlNet trained on
their pictures sees the difference."""
from __future__ import annotations

import cv2
import numpy as np


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
