"""Directional relighting: a classical Lambertian approximation, not a learned relighter.

Surface normals come from a depth map (its gradients), a normal map (RGB-encoded, as
rendered by normal estimators: x right, y up, z towards the viewer), or, failing both,
the frame's own blurred luminance read as a height field (shape-from-shading's crudest
guess: bright = near). The frame is treated as albedo under flat light and re-shaded with
ambient + colour * intensity * max(0, n . l) for a light at (azimuth, elevation). Cast
shadows, speculars and true albedo separation are beyond it."""
from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np

from nodes.common.color import linear_to_srgb, luma, srgb_to_linear, to_float, to_uint8


def light_vector(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector towards the light: azimuth 0 = from the right, 90 = from the top; elevation 90 = frontal."""
    az, el = math.radians(azimuth), math.radians(elevation)
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)], np.float32)


def normals_from_height(height: np.ndarray, relief: float) -> np.ndarray:
    """Normals (x right, y up, z out) of a height field in [0, 1] scaled by `relief` pixels."""
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8.0 * relief
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8.0 * relief
    # Image rows grow downwards while the normal's y points up, hence +gy.
    n = np.dstack([-gx, gy, np.ones_like(gx)])
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def normals_from_map(normal_map: np.ndarray) -> np.ndarray:
    n = to_float(normal_map) * 2.0 - 1.0
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)


def estimate_height(frame: np.ndarray, smooth: float) -> np.ndarray:
    h = luma(to_float(frame))
    return cv2.GaussianBlur(h, (0, 0), smooth) if smooth > 0 else h


def relight(frame: np.ndarray, azimuth: float = 45.0, elevation: float = 35.0, color=(1.0, 1.0, 1.0),
            intensity: float = 1.0, ambient: float = 0.35, strength: float = 1.0, relief: float = 8.0,
            depth: Optional[np.ndarray] = None, normal_map: Optional[np.ndarray] = None,
            smooth: float = 3.0) -> np.ndarray:
    if normal_map is not None:
        n = normals_from_map(cv2.resize(normal_map, frame.shape[1::-1], interpolation=cv2.INTER_LINEAR))
    else:
        # Depth maps from estimators are bright = near, like the luminance guess.
        height = estimate_height(frame if depth is None else
                                 cv2.resize(depth, frame.shape[1::-1], interpolation=cv2.INTER_LINEAR),
                                 smooth if depth is None else 0.0)
        n = normals_from_height(height, relief * max(frame.shape[:2]) / 64.0)
    shade = np.maximum(n @ light_vector(azimuth, elevation), 0.0)
    # Normalise so a surface facing the viewer keeps its brightness under a white light at the default setting.
    light = ambient + intensity * shade[..., None] * np.asarray(color, np.float32)
    flat = ambient + intensity * max(float(light_vector(azimuth, elevation)[2]), 0.2)
    # With no light at all (ambient and intensity 0) the relit frame is black, and `strength`
    # still blends it with the original; 0/0 made every pixel nan, i.e. black at any strength.
    flat = max(flat, 1e-6)
    lin = srgb_to_linear(to_float(frame))
    out = lin * (1.0 + strength * (light / flat - 1.0))
    return to_uint8(linear_to_srgb(out))
