"""Camera conditioning for video models: Plücker rays, CameraCtrl pose tensors, MotionCtrl poses.

All use the path relative to its first frame (frame 0 at the origin looking down +z), as
CameraCtrl's `get_relative_pose` and MotionCtrl's `to_relative_RT2` do.

Plücker embedding of pixel (u, v) of frame i (CameraCtrl's `ray_condition`): the ray through
the pixel centre, direction d = normalise(R_i @ ((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1))
and origin o = the camera centre t_i (both in frame 0's camera space); the 6 channels are
[o x d, d]. Wan's camera adapter takes 4 frames per latent frame: the first frame is
repeated 4 times and each group of 4 frames is stacked into 24 channels (channel 4*c + k
is channel c of the group's k-th frame).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .camera import Camera, invert_poses, pose_rows

FORMATS = ("plucker", "plucker_wan", "cameractrl", "motionctrl")


def plucker(cam: Camera, width: Optional[int] = None, height: Optional[int] = None, start: int = 0,
            stop: Optional[int] = None) -> np.ndarray:
    """Plücker embeddings [n, 6, height, width] float32 for frames start..stop of the relative path."""
    rel = cam.relative().fitted(width or cam.width, height or cam.height)
    w, h = rel.width, rel.height
    stop = rel.length if stop is None else stop
    us, vs = np.meshgrid(np.arange(w, dtype=np.float64) + 0.5, np.arange(h, dtype=np.float64) + 0.5)
    out = np.empty((stop - start, 6, h, w), np.float32)
    for n, i in enumerate(range(start, stop)):
        fx, fy, cx, cy = rel.intrinsics[i]
        d = np.stack([(us - cx) / fx, (vs - cy) / fy, np.ones_like(us)], -1)
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        d = d @ rel.c2w[i, :3, :3].T
        o = np.broadcast_to(rel.c2w[i, :3, 3], d.shape)
        out[n, :3] = np.moveaxis(np.cross(o, d), -1, 0)
        out[n, 3:] = np.moveaxis(d, -1, 0)
    return out


def group_wan(emb: np.ndarray) -> np.ndarray:
    """[F, 6, H, W] (F = 4k + 1) -> [24, k + 1, H, W]: Wan's 4 frames per latent frame."""
    f, c, h, w = emb.shape
    if f % 4 != 1:
        raise ValueError(f"Wan's camera control needs 4k+1 frames (e.g. 49 or 81), got {f}; "
                         f"set the camera path's frames to {f + (1 - f % 4) % 4}")
    full = np.concatenate([np.repeat(emb[:1], 4, axis=0), emb[1:]], axis=0)      # [4(k+1), c, h, w]
    g = full.reshape(-1, 4, c, h, w).transpose(0, 2, 1, 3, 4).reshape(-1, c * 4, h, w)
    return np.ascontiguousarray(g.transpose(1, 0, 2, 3))


def cameractrl_tensors(cam: Camera, width: Optional[int] = None, height: Optional[int] = None):
    """(intrinsics [N, 4] fx fy cx cy in pixels of width x height, relative c2w [N, 4, 4]),
    the inputs of CameraCtrl's ray_condition."""
    rel = cam.relative().fitted(width or cam.width, height or cam.height)
    return rel.intrinsics.astype(np.float32), rel.c2w.astype(np.float32)


def motionctrl_poses(cam: Camera) -> np.ndarray:
    """[N, 12]: MotionCtrl's RT per frame, the world-to-camera [R | t] relative to frame 0
    (w2c_i @ c2w_0), flattened row-major; frame 0 is the identity."""
    rel = invert_poses(cam.c2w) @ cam.c2w[:1]
    return rel[:, :3, :].reshape(-1, 12).astype(np.float32)


@dataclass(frozen=True, eq=False)
class CameraControl:
    """What `motion.camera_embed` hands to a model node: a camera path, the size and format
    the model wants, and `tensor()` computing it on demand (Plücker maps are large)."""
    camera: Camera
    width: int
    height: int
    format: str = "plucker"

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"unknown camera format {self.format!r}; use one of {', '.join(FORMATS)}")

    @property
    def shape(self):
        n, h, w = self.camera.length, self.height, self.width
        return {"plucker": (n, 6, h, w), "plucker_wan": (24, (n + 3) // 4, h, w), "cameractrl": (n, 19),
                "motionctrl": (n, 12)}[self.format]

    def array(self) -> np.ndarray:
        """float32: plucker [N,6,H,W]; plucker_wan [24, N_lat, H, W]; cameractrl [N, 19] pose
        rows of the relative path (frame 0, fx fy cx cy normalised, w, h, w2c 3x4);
        motionctrl [N, 12]."""
        if self.format == "plucker":
            return plucker(self.camera, self.width, self.height)
        if self.format == "plucker_wan":
            return group_wan(plucker(self.camera, self.width, self.height))
        if self.format == "cameractrl":
            return pose_rows(self.camera.relative().fitted(self.width, self.height)).astype(np.float32)
        return motionctrl_poses(self.camera)

    def tensor(self, device="cpu", dtype=None):
        """The array as a torch tensor with a leading batch axis of 1 (e.g. [1, 6, N, H, W] for
        plucker: channels first, then frames, as CameraCtrl's and Wan's adapters take it)."""
        import torch
        a = self.array()
        if self.format == "plucker":
            a = a.transpose(1, 0, 2, 3)
        t = torch.from_numpy(np.ascontiguousarray(a))[None]
        return t.to(device=device, dtype=dtype or torch.float32)
