"""A renderer's data passes (Blender's Depth, Mist and Normal, Nuke's depth channel) as the control
pictures ControlNets were trained on.

- Depth ControlNets learned on MiDaS output: relative inverse depth (disparity), near bright, far dark.
  A Z pass holds distance, so it is turned to 1/Z and spread over 0..255 by one range for the whole
  clip (a range per frame made the picture pump as objects came and went). Where nothing was hit
  Blender writes Z = 1e10 (other renderers inf, NaN or 0): that is the far background, black.
- Blender's Mist pass is already 0 at the near end and 1 at the far end of the scene's mist range,
  the same for every frame: depth is 1 - mist.
- Normal ControlNets (control_v11p_sd15_normalbae, ScanNet's protocol as the ControlNet 1.0 normal
  maps) take camera-space normals as colour: red towards the picture's left, green up, blue towards
  the viewer, each (n + 1) / 2. Blender's and Nuke's camera space is x right, y up, z towards the
  viewer, so red is -x."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .color import to_uint8

# Blender writes 1e10 where a ray hit nothing; no scene is deeper than this.
BACKGROUND_Z = 1e9
# The share of pixels at each end left out of the range: a stray near pixel (a particle at the lens)
# had made everything else dark.
_TAIL = 0.1


def disparity(z: np.ndarray) -> np.ndarray:
    """1/Z of a depth pass, 0 where nothing was hit (background, inf, NaN, 0 or negative)."""
    z = np.asarray(z, np.float32)
    hit = np.isfinite(z) & (z > 0) & (z < BACKGROUND_Z)
    return np.where(hit, 1.0 / np.where(hit, z, 1.0), 0.0).astype(np.float32)


def depth_range(z: np.ndarray) -> Optional[Tuple[float, float]]:
    """(farthest, nearest) disparity of the surfaces in a depth pass, None when it shows only background."""
    d = disparity(z)
    d = d[d > 0]
    if d.size == 0:
        return None
    lo, hi = np.percentile(d, [_TAIL, 100.0 - _TAIL])
    return float(lo), float(hi)


def joined(ranges) -> Optional[Tuple[float, float]]:
    """One range holding every frame's (depth_range of each), None when no frame shows a surface."""
    ranges = [r for r in ranges if r is not None]
    if not ranges:
        return None
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def depth_picture(z: np.ndarray, rng: Optional[Tuple[float, float]]) -> np.ndarray:
    """uint8 HxWx3 depth control picture of a Z pass: the nearest surface of `rng` white, the farthest
    dark but not black (the background is black), as MiDaS shows a scene."""
    d = disparity(z)
    out = np.zeros(d.shape, np.float32)
    if rng is not None:
        lo, hi = rng
        # Surfaces span 1/16..1 so the farthest one stays apart from the background.
        span = (d - lo) / (hi - lo) if hi > lo else np.ones_like(d)
        out = np.where(d > 0, 1.0 / 16 + (15.0 / 16) * np.clip(span, 0.0, 1.0), 0.0)
    return np.repeat(to_uint8(out)[..., None], 3, axis=2)


def mist_picture(mist: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 depth control picture of a Mist pass (0 near, 1 far and beyond)."""
    m = np.nan_to_num(np.asarray(mist, np.float32), nan=1.0, posinf=1.0, neginf=0.0)
    return np.repeat(to_uint8(1.0 - np.clip(m, 0.0, 1.0))[..., None], 3, axis=2)


def normal_picture(n: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 normal control picture of camera-space normals (HxWx3, x right, y up, z towards the
    viewer); where there is no surface (all 0) it is the flat (128, 128, 255) normal maps leave there."""
    n = np.nan_to_num(np.asarray(n, np.float32))
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(length > 1e-6, n / np.maximum(length, 1e-6), np.array([0.0, 0.0, 1.0], np.float32))
    rgb = np.stack([-n[..., 0], n[..., 1], n[..., 2]], axis=-1)
    return to_uint8((rgb + 1.0) * 0.5)


def value_picture(v: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 grey of any other one-channel pass (a matte, AO), its 0..1 as stored, not display-encoded."""
    v = np.nan_to_num(np.asarray(v, np.float32))
    return np.repeat(to_uint8(np.clip(v, 0.0, 1.0))[..., None], 3, axis=2)
