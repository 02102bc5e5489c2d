"""Moving pictures and videos by a camera path.

2-D: the picture is a plane 1 unit in front of frame 0's camera; frame i shows it through
camera i, which is a homography (`projection="perspective"`) or its least-squares affine
approximation (`"affine"`). `motion="absolute"` samples every frame from the source (sharp);
`"compounding"` warps each output frame from the previous output by one frame's step, as
Deforum does when it feeds each frame back (detail softens, border fill accumulates); the picture fed
back is the plane ahead of the previous camera, so a forward move keeps zooming into it.

2.5-D (a depth map): source pixels are lifted to 3-D with the depth, moved into camera i and
forward-splatted with a z-buffer; the splatted depth is completed (holes take the farthest
neighbour: what a camera move uncovers is background), colours are fetched backward through
that depth, pixels whose source is hidden behind something nearer become holes, and holes
are filled from their farthest valid neighbours.

Pixel coordinates: the camera's intrinsics use pixel centres at +0.5; OpenCV's warps use
centres at integers, converted here.
"""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np
from numba import njit

from .camera import Camera, homography

BORDERS = {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101,
           "black": cv2.BORDER_CONSTANT, "wrap": cv2.BORDER_WRAP}
PROJECTIONS = ("perspective", "affine")
MOTIONS = ("absolute", "compounding")
DEPTH_TYPES = ("disparity", "depth", "metric")
OCCLUSION_TOLERANCE = 0.03     # relative depth difference that counts as "hidden behind"

_HALF = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
_HALF_INV = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]])


def _border(name: str) -> int:
    if name not in BORDERS:
        raise ValueError(f"unknown border mode {name!r}; use one of {', '.join(BORDERS)}")
    return BORDERS[name]


# ---------------------------------------------------------------------------------------
# 2-D

def pixel_homography(cam: Camera, i: int, j: int = 0, projection: str = "perspective") -> np.ndarray:
    """3x3 map from frame j's pixels to frame i's in OpenCV pixel coordinates (centres at integers)."""
    h = _HALF_INV @ homography(cam, i, j) @ _HALF
    if projection == "affine":
        h = _affine_fit(h, cam.width, cam.height)
    elif projection != "perspective":
        raise ValueError(f"unknown projection {projection!r}; use one of {', '.join(PROJECTIONS)}")
    return h / h[2, 2]


def picture_at(cam: Camera, distance: float) -> Camera:
    """The path a picture `distance` units ahead (in the path's units) sees as the 2-D moves' plane 1 unit
    ahead: a camera file in metres moved 1 m toward a picture 10 m away, not through one 1 m away."""
    if not distance > 0:
        raise ValueError(f"the picture's distance must be above 0, got {distance:g}")
    return cam if distance == 1 else cam.scaled(1.0 / distance)


def check_plane_in_view(cam: Camera, distance: float = 1.0, steps: bool = False) -> None:
    """Refuse a path whose camera reaches the picture plane of the 2-D moves or turns part of its view away
    from it. A homography cannot tell in front from behind: those frames came out white, or showed the
    picture mirrored where the view looks away from it, with nothing to say the path was the cause.
    `cam` is already scaled by picture_at(distance); messages speak in the path's own units. steps: each
    frame is checked against the plane ahead of the frame before it (compounding moves re-place it there)."""
    rel = cam.relative()
    w, h = cam.width, cam.height
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64)
    for i in range(cam.length):
        c2w = cam.relative_transform(i, i - 1) if steps and i else rel.c2w[i]
        ahead = 1.0 - c2w[2, 3]                 # the plane's distance along frame 0's axis
        if ahead <= 1e-6:
            first = "the previous frame's camera (compounding puts it there again every frame)" if steps else \
                "the first camera (distance)"
            raise ValueError(f"camera frame {i} has travelled {c2w[2, 3] * distance:.3g} forward"
                             f"{' in one step' if steps else ''}, through the picture: "
                             f"a still picture is a plane {distance:g} unit{'' if distance == 1 else 's'} ahead of "
                             f"{first}, and a 2-D move shows it from in front only. Keep the forward "
                             f"travel under {distance:g} (a lower speed or translation_z), set distance to how far "
                             f"the picture is in the path's units (a camera file in metres: metres), zoom instead, "
                             f"or give a depth map")
        rays = corners @ np.linalg.inv(cam.K(i)).T @ c2w[:3, :3].T
        if (rays[:, 2] <= 1e-6).any():
            raise ValueError(f"camera frame {i} turns so far that part of its view looks away from the picture "
                             f"(a still picture is a plane ahead of the first camera; past that a 2-D move "
                             f"would show it mirrored). Turn less (rotation_pan / rotation_tilt), lower the "
                             f"preset speed, or narrow the field of view")


def _affine_fit(h: np.ndarray, w: int, ht: int) -> np.ndarray:
    """The affine map closest (least squares over a grid on the frame) to homography h."""
    xs, ys = np.meshgrid(np.linspace(0, w - 1, 7), np.linspace(0, ht - 1, 7))
    src = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], 1)
    dst = src @ h.T
    dst = dst[:, :2] / dst[:, 2:]
    a, *_ = np.linalg.lstsq(src, dst, rcond=None)
    return np.vstack([a.T, [0, 0, 1]])


def warp_2d(img: np.ndarray, h: np.ndarray, border: str = "replicate",
            interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Move img (frame 0) to where homography h (pixels of frame 0 -> frame i) puts it."""
    ht, w = img.shape[:2]
    return cv2.warpPerspective(img, h, (w, ht), flags=interpolation, borderMode=_border(border))


def homography_maps(h: np.ndarray, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
    """Sampling maps (for cv2.remap) of the warp by h: output pixel -> source position."""
    inv = np.linalg.inv(h)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    p = inv[:, 0, None, None] * xs + inv[:, 1, None, None] * ys + inv[:, 2, None, None]
    z = np.where(np.abs(p[2]) < 1e-12, 1e-12, p[2])
    return (p[0] / z).astype(np.float32), (p[1] / z).astype(np.float32)


# ---------------------------------------------------------------------------------------
# depth

def depth_to_z(depth: np.ndarray, width: int, height: int, depth_type: str = "disparity",
               near: float = 1.0, far: float = 10.0) -> np.ndarray:
    """Scene depth (distance along z, in the camera path's units) as float32 height x width.

    disparity / depth: the map is normalised to its own min..max, then mapped so that
    bright = near (disparity, what most monocular estimators output) or bright = far (depth).
    metric: the values already are distances."""
    if depth_type not in DEPTH_TYPES:
        raise ValueError(f"unknown depth type {depth_type!r}; use one of {', '.join(DEPTH_TYPES)}")
    d = np.asarray(depth)
    if d.ndim == 3:
        d = d.astype(np.float32).mean(axis=2)
    d = d.astype(np.float32)
    if d.shape != (height, width):
        d = cv2.resize(d, (width, height), interpolation=cv2.INTER_LINEAR)
    if depth_type == "metric":
        if (d <= 0).any():
            raise ValueError("a metric depth map must be positive everywhere")
        return d
    if not 0 < near < far:
        raise ValueError(f"depth needs 0 < near < far, got near={near}, far={far}")
    lo, hi = float(d.min()), float(d.max())
    u = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)
    if depth_type == "depth":
        return (near + u * (far - near)).astype(np.float32)
    return (1.0 / (1.0 / far + u * (1.0 / near - 1.0 / far))).astype(np.float32)


@njit(cache=True, inline="always")
def _move_pixel(u, v, z, ka, rel, kb):
    """Pixel (u, v) of camera a at depth z, seen by camera b (rel maps a's space to b's):
    its OpenCV pixel position in b and its depth there (<= 0 when behind b)."""
    x = (u + 0.5 - ka[2]) / ka[0] * z
    y = (v + 0.5 - ka[3]) / ka[1] * z
    X = rel[0, 0] * x + rel[0, 1] * y + rel[0, 2] * z + rel[0, 3]
    Y = rel[1, 0] * x + rel[1, 1] * y + rel[1, 2] * z + rel[1, 3]
    Z = rel[2, 0] * x + rel[2, 1] * y + rel[2, 2] * z + rel[2, 3]
    if Z <= 1e-6:
        return 0.0, 0.0, Z
    return kb[0] * X / Z + kb[2] - 0.5, kb[1] * Y / Z + kb[3] - 0.5, Z


@njit(cache=True)
def _splat_depth(z0, k0, rel, ki, h_out, w_out):
    """Forward-splat source depth into camera i with a z-buffer; each point covers the 2x2
    pixels around where it lands, so magnification up to 2x leaves no cracks."""
    zb = np.full((h_out, w_out), np.inf, np.float32)
    h, w = z0.shape
    for v in range(h):
        for u in range(w):
            pu, pv, Z = _move_pixel(u, v, z0[v, u], k0, rel, ki)
            if Z <= 1e-6:
                continue
            iu = int(np.floor(pu))
            iv = int(np.floor(pv))
            for dv in range(2):
                for du in range(2):
                    a, b = iv + dv, iu + du
                    if 0 <= a < h_out and 0 <= b < w_out and Z < zb[a, b]:
                        zb[a, b] = Z
    return zb


@njit(cache=True)
def _fill_from_farthest(values, valid, depth):
    """Fill invalid pixels of values [h,w,c] (and depth) from the neighbour with the largest
    depth (what a camera move uncovers is background), in two raster sweeps: O(pixels)
    whatever the size of the holes. A forward sweep takes the farthest of the left and upper
    neighbours, a backward sweep lets the right and lower ones win when they are farther."""
    h, w, c = values.shape
    known = valid.copy()
    for rev in range(2):
        step = -1 if rev else 1
        for vv in range(h):
            v = h - 1 - vv if rev else vv
            for uu in range(w):
                u = w - 1 - uu if rev else uu
                if valid[v, u]:
                    continue
                best_a, best_b = -1, -1
                bd = depth[v, u] if known[v, u] else -np.inf
                for k in range(4):
                    dv = 0 if k == 0 else -step
                    du = -step if k == 0 else (k - 2) * step
                    a, b = v + dv, u + du
                    if 0 <= a < h and 0 <= b < w and known[a, b] and depth[a, b] > bd:
                        bd = depth[a, b]
                        best_a, best_b = a, b
                if best_a >= 0:
                    for j in range(c):
                        values[v, u, j] = values[best_a, best_b, j]
                    depth[v, u] = bd
                    known[v, u] = True
    return values, depth


@njit(cache=True)
def _backward_maps(zt, k0, rel_inv, ki, z0, tol):
    """For every pixel of camera i with depth zt: where it is in the source (OpenCV coords),
    and whether the source sees something nearer there (then it is a hole, so colours of a
    foreground edge never bleed into the background it uncovers)."""
    h, w = zt.shape
    hs, ws = z0.shape
    mx = np.empty((h, w), np.float32)
    my = np.empty((h, w), np.float32)
    hole = np.zeros((h, w), np.bool_)
    for v in range(h):
        for u in range(w):
            pu, pv, Z = _move_pixel(u, v, zt[v, u], ki, rel_inv, k0)
            if Z <= 1e-6:
                mx[v, u] = -1e6
                my[v, u] = -1e6
                hole[v, u] = True
                continue
            mx[v, u] = pu
            my[v, u] = pv
            # any source pixel of the bilinear footprint nearer than this point hides it
            a0, b0 = int(np.floor(pv)), int(np.floor(pu))
            for a in range(a0, a0 + 2):
                for b in range(b0, b0 + 2):
                    if 0 <= a < hs and 0 <= b < ws and z0[a, b] < Z * (1.0 - tol):
                        hole[v, u] = True
    return mx, my, hole


def depth_view_maps(z0: np.ndarray, cam: Camera, i: int, j: int = 0):
    """Sampling maps that show frame j's picture (depth z0, float32 H x W) from camera i:
    (map_x, map_y, hidden, depth of the new view); `hidden` marks what frame j did not see."""
    h, w = z0.shape
    z0 = np.ascontiguousarray(z0, dtype=np.float32)
    rel = cam.relative_transform(j, i)
    zb = _splat_depth(z0, cam.intrinsics[j], rel, cam.intrinsics[i], h, w)
    holes = ~np.isfinite(zb)
    if holes.all():
        raise ValueError(f"the camera sees none of the picture at frame {i} (it moved behind it)")
    zt = np.where(holes, 0, zb).astype(np.float32)
    _, zt = _fill_from_farthest(np.zeros((h, w, 1), np.float32), ~holes, zt)
    mx, my, hidden = _backward_maps(zt, cam.intrinsics[j], np.linalg.inv(rel), cam.intrinsics[i], z0,
                                    OCCLUSION_TOLERANCE)
    return mx, my, hidden, zt


def fill_hidden(values: np.ndarray, hidden: np.ndarray, zt: np.ndarray) -> np.ndarray:
    """values [H,W,C] with the hidden pixels taken from their farthest neighbours (float32)."""
    vals = np.ascontiguousarray(values, dtype=np.float32)
    return _fill_from_farthest(vals, ~hidden, zt.copy())[0]


def reproject(src: np.ndarray, z0: np.ndarray, cam: Camera, i: int, j: int = 0, border: str = "replicate",
              interpolation: int = cv2.INTER_LINEAR) -> Tuple[np.ndarray, np.ndarray]:
    """Frame j's picture `src` [H,W,C] with depth z0 [H,W], seen from camera i.

    Returns (picture [H,W,C] in src's dtype, depth of the new view [H,W] float32)."""
    h, w = z0.shape
    mx, my, hidden, zt = depth_view_maps(z0, cam, i, j)
    out = remap(src, mx, my, border, interpolation)
    if hidden.any():
        vals = fill_hidden(out.reshape(h, w, -1), hidden, zt).reshape(out.shape)
        out = np.clip(np.rint(vals), 0, 255).astype(np.uint8) if src.dtype == np.uint8 else vals.astype(src.dtype)
    return out, zt


def remap(src: np.ndarray, mx: np.ndarray, my: np.ndarray, border: str = "replicate",
          interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """cv2.remap for any number of channels (OpenCV handles at most 512 at once)."""
    b = _border(border)
    if src.ndim == 2 or src.shape[2] <= 256:
        return cv2.remap(src, mx, my, interpolation, borderMode=b)
    return np.concatenate([cv2.remap(np.ascontiguousarray(src[..., c:c + 256]), mx, my, interpolation,
                                     borderMode=b).reshape(*mx.shape, -1)
                           for c in range(0, src.shape[2], 256)], axis=2)


# ---------------------------------------------------------------------------------------
# clips

class CameraMover:
    """Renders frame k of a camera move, for the image and the video paths of apply_camera."""

    def __init__(self, cam: Camera, width: int, height: int, projection: str = "perspective",
                 motion: str = "absolute", border: str = "replicate", z0: Optional[np.ndarray] = None,
                 interpolation: int = cv2.INTER_LINEAR, distance: float = 1.0):
        if motion not in MOTIONS:
            raise ValueError(f"unknown motion {motion!r}; use one of {', '.join(MOTIONS)}")
        _border(border)
        self.cam = cam.fitted(width, height)
        self.projection, self.motion, self.border, self.z0 = projection, motion, border, z0
        self.interpolation = interpolation
        self._state: Optional[Tuple[int, np.ndarray, Optional[np.ndarray]]] = None
        if z0 is None:
            pixel_homography(self.cam, 0, 0, projection)    # validates projection early
            check_plane_in_view(self.cam, distance, steps=motion == "compounding")

    def _index(self, k: int) -> int:
        return min(k, self.cam.length - 1)

    def absolute(self, src: np.ndarray, k: int) -> np.ndarray:
        i = self._index(k)
        if self.z0 is not None:
            return reproject(src, self.z0, self.cam, i, 0, self.border, self.interpolation)[0]
        return warp_2d(src, pixel_homography(self.cam, i, 0, self.projection), self.border, self.interpolation)

    def compounding(self, src: np.ndarray, k: int) -> np.ndarray:
        """Output k of the feedback loop started from src; continues from the last call when it can."""
        if self._state is None or self._state[0] > k:
            self._state = (0, src, self.z0)
        n, img, z = self._state
        while n < k:
            n += 1
            img, z = self.step(img, n, z)
        self._state = (n, img, z)
        return img

    def step(self, img: np.ndarray, k: int, z: Optional[np.ndarray] = None):
        """(picture, depth): frame k-1's picture (and depth) as camera k sees it, one step of the feedback loop
        (compounding here; generate.feedback moves each generated frame by it)."""
        a, b = self._index(k - 1), self._index(k)
        if z is not None:
            return reproject(img, z, self.cam, b, a, self.border, self.interpolation)
        # The picture fed back is a plane `distance` ahead of the camera that made it, as in Deforum:
        # a step forward magnifies it the same at frame 100 as at frame 1 (a plane fixed in the world
        # magnified faster and faster, and refused a path once it had travelled the distance).
        return warp_2d(img, pixel_homography(self.cam, b, a, self.projection), self.border, self.interpolation), None

    def frame(self, src: np.ndarray, k: int) -> np.ndarray:
        return self.compounding(src, k) if self.motion == "compounding" else self.absolute(src, k)


def apply_camera(cam: Camera, image: Optional[np.ndarray] = None, video=None, depth: Optional[np.ndarray] = None,
                 projection: str = "perspective", motion: str = "absolute", border: str = "replicate",
                 depth_type: str = "disparity", near: float = 1.0, far: float = 10.0, fps: float = 24.0,
                 distance: float = 1.0):
    """A lazy Clip: the image moved by the camera path (camera.length frames), or each video
    frame i moved by camera frame i (the video's length; the camera holds its last pose).
    Without depth the picture is a plane `distance` ahead of the first camera."""
    from graph_engine import Clip
    if (image is None) == (video is None):
        raise ValueError("connect either an image or a video to move")
    if video is not None and motion == "compounding":
        raise ValueError("compounding feeds each output frame back into the next, which only makes sense "
                         "for a still image; use motion=absolute with a video")
    if image is not None:
        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        length = cam.length
    else:
        w, h, length, fps = video.width, video.height, video.length, video.fps
    z0 = depth_to_z(depth, w, h, depth_type, near, far) if depth is not None else None
    mover = CameraMover(cam if z0 is not None else picture_at(cam, distance), w, h, projection, motion, border, z0,
                        distance=distance)

    if image is not None:
        def reader(a, b):
            return np.stack([mover.frame(image, k) for k in range(a, b)])
    else:
        def reader(a, b):
            src = video.frames(a, b)
            return np.stack([mover.frame(src[k - a], k) for k in range(a, b)])
    # frame k is the same alone (compounding starts again from the image when it must)
    return Clip(length, fps, w, h, reader, local=True)


# ---------------------------------------------------------------------------------------
# flow from a camera path

def camera_flow(cam: Camera, i: int, j: int, width: int, height: int, projection: str = "perspective",
                z: Optional[np.ndarray] = None) -> np.ndarray:
    """Flow [height, width, 2] taking each pixel of frame i to its position in frame j
    (nodes.common.flow's convention). Without z the picture is the 2-D plane; z is frame i's
    depth (scene units, height x width) for a 2.5-D flow."""
    c = cam.fitted(width, height)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    if z is None:
        hm = pixel_homography(c, j, i, projection)
        p = hm[:, 0, None, None] * xs + hm[:, 1, None, None] * ys + hm[:, 2, None, None]
        return np.stack([p[0] / p[2] - xs, p[1] / p[2] - ys], -1).astype(np.float32)
    k0, ki = c.intrinsics[i], c.intrinsics[j]
    rel = c.relative_transform(i, j)
    pts = np.stack([(xs + 0.5 - k0[2]) / k0[0] * z, (ys + 0.5 - k0[3]) / k0[1] * z, z], -1) @ rel[:3, :3].T + rel[:3, 3]
    zz = np.maximum(pts[..., 2], 1e-6)
    return np.stack([ki[0] * pts[..., 0] / zz + ki[2] - 0.5 - xs, ki[1] * pts[..., 1] / zz + ki[3] - 0.5 - ys],
                    -1).astype(np.float32)
