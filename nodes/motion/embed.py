"""Camera conditioning for video models: per-pixel Plücker rays of a camera path.

The path is taken relative to its first frame (frame 0 at the origin looking down +z), as
CameraCtrl's `get_relative_pose` does. Plücker embedding of pixel (u, v) of frame i: the ray
through the pixel centre, direction d = normalise(R_i @ ((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1))
and origin o = the camera centre t_i (both in frame 0's camera space); the 6 channels are
[o x d, d]. Wan's camera adapter (Wan Fun camera control) takes 4 frames per latent frame:
the first frame is repeated 4 times and each group of 4 frames is stacked into 24 channels
(channel 4*c + k is channel c of the group's k-th frame).

Pure numpy, like camera.py.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .camera import Camera


def plucker(cam: Camera, width: Optional[int] = None, height: Optional[int] = None) -> np.ndarray:
    """Plücker embeddings [N, 6, height, width] float32 of the relative path, fitted to the size."""
    rel = cam.relative().fitted(width or cam.width, height or cam.height)
    w, h = rel.width, rel.height
    us, vs = np.meshgrid(np.arange(w, dtype=np.float64) + 0.5, np.arange(h, dtype=np.float64) + 0.5)
    out = np.empty((rel.length, 6, h, w), np.float32)
    for i in range(rel.length):
        fx, fy, cx, cy = rel.intrinsics[i]
        d = np.stack([(us - cx) / fx, (vs - cy) / fy, np.ones_like(us)], -1)
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        d = d @ rel.c2w[i, :3, :3].T
        o = np.broadcast_to(rel.c2w[i, :3, 3], d.shape)
        out[i, :3] = np.moveaxis(np.cross(o, d), -1, 0)
        out[i, 3:] = np.moveaxis(d, -1, 0)
    return out


def group_wan(emb: np.ndarray) -> np.ndarray:
    """[F, 6, H, W] (F = 4k + 1) -> [24, k + 1, H, W]: Wan's 4 frames per latent frame."""
    f, c, h, w = emb.shape
    if f % 4 != 1:
        raise ValueError(f"Wan's camera control needs 4k+1 frames (e.g. 49 or 81), got {f}; "
                         f"use {f - (f - 1) % 4} or {f - (f - 1) % 4 + 4} frames")
    full = np.concatenate([np.repeat(emb[:1], 4, axis=0), emb[1:]], axis=0)      # [4(k+1), c, h, w]
    g = full.reshape(-1, 4, c, h, w).transpose(0, 2, 1, 3, 4).reshape(-1, c * 4, h, w)
    return np.ascontiguousarray(g.transpose(1, 0, 2, 3))


def plucker_wan(cam: Camera, frames: int, width: int, height: int) -> np.ndarray:
    """What Wan's camera adapter reads for a `frames`-frame clip of width x height: [24, latent frames, H, W].

    The path is fitted to the picture size (one scale, centred); a shorter path holds its last pose,
    a longer one is cut at `frames`."""
    return group_wan(plucker(cam.at(range(frames)), width, height))
