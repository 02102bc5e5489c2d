"""FLOW: dense motion per frame pair, computed lazily, and the ways to make and show one.

`Flow.field(i)` is float32 [height, width, 2]: (dx, dy) taking each pixel of frame i to its
position in frame i+1 (the convention of nodes.common.flow), so a clip of N frames has N-1
fields. Fields are computed on request and a few recent ones are kept, so memory stays flat
in the clip's length.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Callable, Optional

import numpy as np

CACHED_FIELDS = 8


class Flow:
    def __init__(self, length: int, width: int, height: int, field_fn: Callable[[int], np.ndarray],
                 fps: float = 24.0):
        if length < 0 or width <= 0 or height <= 0:
            raise ValueError(f"invalid flow geometry: {length} fields of {width}x{height}")
        self.length, self.width, self.height, self.fps = int(length), int(width), int(height), float(fps)
        self._fn = field_fn
        self._cache: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"Flow({self.length} fields, {self.width}x{self.height})"

    def field(self, i: int) -> np.ndarray:
        if not 0 <= i < self.length:
            raise IndexError(f"flow field {i} out of range 0..{self.length - 1}")
        with self._lock:
            hit = self._cache.get(i)
            if hit is not None:
                self._cache.move_to_end(i)
                return hit
            f = np.asarray(self._fn(i), dtype=np.float32)
            if f.shape != (self.height, self.width, 2):
                raise RuntimeError(f"flow field {i} has shape {f.shape}, expected {(self.height, self.width, 2)}")
            f.setflags(write=False)
            self._cache[i] = f
            while len(self._cache) > CACHED_FIELDS:
                self._cache.popitem(last=False)
            return f

    def fields(self, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
        stop = self.length if stop is None else min(stop, self.length)
        if stop <= start:
            return np.zeros((0, self.height, self.width, 2), np.float32)
        return np.stack([self.field(i) for i in range(start, stop)])

    def to_array(self) -> np.ndarray:
        """[length, H, W, 2]: every field at once (what noise warping takes)."""
        return self.fields()

    def resized(self, width: int, height: int) -> "Flow":
        """The same motion on a width x height grid (vectors rescaled to its pixels)."""
        if (width, height) == (self.width, self.height):
            return self
        import cv2
        sx, sy = width / self.width, height / self.height

        def fn(i):
            f = cv2.resize(self.field(i), (width, height), interpolation=cv2.INTER_LINEAR)
            return f * np.array([sx, sy], np.float32)
        return Flow(self.length, width, height, fn, self.fps)


# ---------------------------------------------------------------------------------------
# sources

def flow_from_video(video, quality: str = "medium") -> Flow:
    """Optical flow between consecutive frames of a clip (OpenCV DIS via nodes.common.flow)."""
    from nodes.common.flow import estimate_flow
    if video.length < 2:
        raise ValueError(f"flow needs a clip of at least 2 frames, got {video.length}")
    if quality not in ("fast", "medium", "best"):
        raise ValueError(f"unknown flow quality {quality!r}; use fast, medium or best")

    def fn(i):
        a, b = video.frames(i, i + 2)
        return estimate_flow(a, b, quality)
    return Flow(video.length - 1, video.width, video.height, fn, video.fps)


def flow_from_camera(cam, width: int, height: int, z: Optional[np.ndarray] = None, fps: float = 24.0,
                     distance: float = 1.0) -> Flow:
    """The image motion a camera path causes, frame i -> i+1. Without z the picture is the
    2-D plane of the 2-D camera moves, `distance` ahead; z (frame 0's depth in scene units, H x W)
    gives 2.5-D flow, with the depth carried to each frame i by reprojection."""
    from .warp import camera_flow, check_plane_in_view, depth_view_maps, picture_at
    if cam.length < 2:
        raise ValueError("a camera path of 1 frame has no motion; give it at least 2 frames")
    if z is None:
        cam = picture_at(cam, distance)
        check_plane_in_view(cam.fitted(width, height), distance)

    def fn(i):
        if z is None:
            return camera_flow(cam, i, i + 1, width, height)
        zi = z if i == 0 else depth_view_maps(z, cam.fitted(width, height), i, 0)[3]
        return camera_flow(cam, i, i + 1, width, height, z=zi)
    return Flow(cam.length - 1, width, height, fn, fps)


def brush_flow(mask: np.ndarray, frames: int, direction, speed, feather: float = 4.0, follow: bool = True,
               base: Optional[Flow] = None) -> Flow:
    """A motion brush: pixels under `mask` (float HxW in [0,1], or an image: its brightness)
    move `speed` pixels per frame towards `direction` degrees (0 = right, 90 = up on screen,
    counter-clockwise); both are schedules over frames. With follow, the region travels with
    its own motion; outside it the flow is `base` (or zero)."""
    import cv2
    from graph_engine.schedule import parse_schedule
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m.astype(np.float32).mean(axis=2)
    m = m.astype(np.float32)
    if m.max() > 1.0:
        m = m / 255.0
    h, w = m.shape
    if frames < 2:
        raise ValueError(f"a motion brush needs at least 2 frames, got {frames}")
    if base is not None:
        if base.length < frames - 1:
            raise ValueError(f"the base flow has {base.length} fields; the brush needs {frames - 1}")
        base = base.resized(w, h)
    if feather > 0:
        m = cv2.GaussianBlur(m, (0, 0), feather)
    ang = np.radians(parse_schedule(direction).values(frames))
    spd = parse_schedule(speed).values(frames)
    vx, vy = spd * np.cos(ang), -spd * np.sin(ang)
    offsets = np.concatenate([[[0.0, 0.0]], np.cumsum(np.stack([vx, vy], -1), axis=0)[:-1]]) if follow \
        else np.zeros((frames, 2))

    def fn(i):
        dx, dy = offsets[i]
        mi = cv2.warpAffine(m, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT) if (dx or dy) else m
        vec = np.array([vx[i], vy[i]], np.float32)
        out = mi[..., None] * vec
        if base is not None:
            out = out + (1.0 - mi[..., None]) * base.field(i)
        return out
    return Flow(frames - 1, w, h, fn, base.fps if base is not None else 24.0)


# ---------------------------------------------------------------------------------------
# showing flow

def flow_to_rgb(f: np.ndarray, max_motion: float = 0.0) -> np.ndarray:
    """Colour-wheel picture of a flow field: hue = direction, brightness = speed (white = still).

    max_motion (pixels) maps to full colour; 0 uses the field's own largest motion."""
    import cv2
    mag = np.hypot(f[..., 0], f[..., 1])
    ref = max_motion if max_motion > 0 else max(float(mag.max()), 1e-6)
    hsv = np.empty(f.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = ((np.degrees(np.arctan2(-f[..., 1], f[..., 0])) % 360) / 2).astype(np.uint8)
    hsv[..., 1] = np.clip(mag / ref * 255, 0, 255).astype(np.uint8)
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def flow_preview(flow: Flow, max_motion: float = 0.0, arrows: int = 16):
    """A clip of colour-wheel pictures, one per field, with a sparse grid of arrows."""
    import cv2
    from graph_engine import Clip
    step = max(4, int(math.ceil(max(flow.width, flow.height) / max(arrows, 1))))

    def draw(i):
        f = flow.field(i)
        img = flow_to_rgb(f, max_motion)
        for y in range(step // 2, flow.height, step):
            for x in range(step // 2, flow.width, step):
                dx, dy = f[y, x]
                if dx * dx + dy * dy >= 0.25:
                    cv2.arrowedLine(img, (x, y), (int(round(x + dx)), int(round(y + dy))), (0, 0, 0), 1,
                                    cv2.LINE_AA, tipLength=0.3)
        return img

    return Clip(flow.length, flow.fps, flow.width, flow.height,
                lambda a, b: np.stack([draw(i) for i in range(a, b)]), local=True)
