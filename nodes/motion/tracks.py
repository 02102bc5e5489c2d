"""TRACKS: point trajectories over frames, drawn as splines through control points.

Coordinates are pixels with OpenCV's convention (x right, y down, the centre of the top-left
pixel at (0, 0)), the same as flow fields.

The text form (a JSON object, or just the list under "tracks"):

    {"width": 512, "height": 320, "frames": 25, "interpolation": "cubic",
     "tracks": [
        {"points": [[100, 200], [180, 150], [300, 160]], "frames": [0, 12, 24]},
        {"points": [[400, 80], [380, 240]], "interpolation": "linear", "visible": [0, 18]},
        [[50, 50], [60, 90]]
     ]}

Each track passes through its points at the given frames (default: spread evenly over the
clip), with `interpolation` linear, cubic (Catmull-Rom), ease_in, ease_out, ease_in_out or
hold between them (the schedule easings: tracks are two schedules, x and y), and holds still
before its first and after its last point. `visible` [first, last] limits the frames where the
point exists. `"normalized": true` means coordinates are fractions of width and height.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from graph_engine.schedule import EASINGS, Keyframe, Schedule

from .flowfield import Flow

FLOW_MODES = ("sparse", "dense")


@dataclass(frozen=True, eq=False)
class Tracks:
    """points float32 [K, N, 2] (x, y per track and frame); visible bool [K, N]."""
    points: np.ndarray
    visible: np.ndarray
    width: int
    height: int

    def __post_init__(self):
        p = np.asarray(self.points, np.float32)
        v = np.asarray(self.visible, bool)
        if p.ndim != 3 or p.shape[2] != 2 or v.shape != p.shape[:2]:
            raise ValueError(f"tracks need points [K, N, 2] and visible [K, N], got {p.shape} and {v.shape}")
        object.__setattr__(self, "points", p)
        object.__setattr__(self, "visible", v)

    @property
    def count(self) -> int:
        return self.points.shape[0]

    @property
    def length(self) -> int:
        return self.points.shape[1]

    def __repr__(self) -> str:
        return f"Tracks({self.count} tracks, {self.length} frames, {self.width}x{self.height})"

    def to_json(self) -> str:
        """Per-frame positions in the text form (reads back with parse_tracks)."""
        tracks = []
        for k in range(self.count):
            t = {"points": np.round(self.points[k], 3).tolist(), "frames": list(range(self.length))}
            vis = np.flatnonzero(self.visible[k])
            if len(vis) and (vis[0] > 0 or vis[-1] < self.length - 1):
                t["visible"] = [int(vis[0]), int(vis[-1])]
            tracks.append(t)
        return json.dumps({"width": self.width, "height": self.height, "frames": self.length,
                           "interpolation": "linear", "tracks": tracks})


def parse_tracks(spec: Any, frames: int = 0, width: int = 0, height: int = 0,
                 interpolation: str = "cubic") -> Tracks:
    """Tracks from the text form (a JSON string, a dict or a list); frames/width/height/
    interpolation fill in what the text leaves out."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as e:
            raise ValueError(f"tracks text is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    if isinstance(spec, list):
        spec = {"tracks": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("tracks"), list) or not spec["tracks"]:
        raise ValueError('tracks need a non-empty list: {"tracks": [{"points": [[x, y], ...]}, ...]}')
    frames = int(spec.get("frames") or frames)
    width, height = int(spec.get("width") or width), int(spec.get("height") or height)
    interpolation = spec.get("interpolation") or interpolation
    if frames < 1 or width < 1 or height < 1:
        raise ValueError(f"tracks need a frame count and a picture size (got {frames} frames, {width}x{height}); "
                         f"set them in the text or on the node")
    norm = bool(spec.get("normalized", False))
    pts, vis = [], []
    for n, t in enumerate(spec["tracks"]):
        p, v = _one_track(t, n, frames, interpolation)
        if norm:
            p = p * np.array([width - 1, height - 1], np.float32)
        pts.append(p)
        vis.append(v)
    return Tracks(np.stack(pts), np.stack(vis), width, height)


def _one_track(t, n: int, frames: int, interpolation: str):
    where = f"track {n + 1}"
    if isinstance(t, list):
        t = {"points": t}
    if not isinstance(t, dict) or "points" not in t:
        raise ValueError(f"{where}: expected {{\"points\": [[x, y], ...]}} or a list of [x, y] points")
    try:
        pts = np.asarray(t["points"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: points must be a list of [x, y] number pairs") from None
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0 or not np.isfinite(pts).all():
        raise ValueError(f"{where}: points must be a non-empty list of [x, y] number pairs")
    times = t.get("frames")
    if times is None:
        if len(pts) > frames:
            raise ValueError(f"{where} has {len(pts)} points for {frames} frames; give its \"frames\"")
        times = np.rint(np.linspace(0, frames - 1, len(pts))).astype(int).tolist() if len(pts) > 1 else [0]
    if len(times) != len(pts) or any(not isinstance(f, int) or f < 0 for f in times):
        raise ValueError(f"{where}: \"frames\" must be one whole frame number >= 0 per point")
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError(f"{where}: \"frames\" must increase")
    mode = t.get("interpolation", interpolation)
    if mode not in EASINGS:
        raise ValueError(f"{where}: unknown interpolation {mode!r}; use one of {', '.join(EASINGS)}")
    xy = np.stack([Schedule([Keyframe(f, float(v)) for f, v in zip(times, pts[:, c])], mode).values(frames)
                   for c in range(2)], -1).astype(np.float32)
    vis = np.ones(frames, bool)
    if "visible" in t:
        a, b = t["visible"]
        vis[:] = False
        vis[max(0, int(a)):int(b) + 1] = True
    return xy, vis


def tracks_to_flow(tracks: Tracks, mode: str = "sparse", sigma: float = 0.0, fps: float = 24.0) -> Flow:
    """Flow fields from the tracks' motion, frame i -> i+1.

    sparse: each track's step spread as a Gaussian blob (sigma pixels, default 1/40 of the
    larger side) around its point, zero elsewhere (the input DragNUWA-style models expect);
    dense: every pixel moves as the inverse-distance-weighted average of the tracks
    (softened by sigma, default 1/10 of the larger side): the whole picture follows."""
    if mode not in FLOW_MODES:
        raise ValueError(f"unknown flow mode {mode!r}; use sparse or dense")
    if tracks.length < 2:
        raise ValueError("tracks of 1 frame have no motion")
    w, h = tracks.width, tracks.height
    big = max(w, h)
    s = sigma if sigma > 0 else big / (40.0 if mode == "sparse" else 10.0)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]

    def fn(i):
        num = np.zeros((h, w, 2), np.float32)
        den = np.zeros((h, w), np.float32)
        for k in range(tracks.count):
            if not (tracks.visible[k, i] and tracks.visible[k, i + 1]):
                continue
            px, py = tracks.points[k, i]
            v = tracks.points[k, i + 1] - tracks.points[k, i]
            d2 = (xs - px) ** 2 + (ys - py) ** 2
            wk = np.exp(-d2 / (2 * s * s)) if mode == "sparse" else 1.0 / (d2 + s * s)
            num += wk[..., None] * v
            den += wk
        if mode == "sparse":
            return num / np.maximum(den, 1.0)[..., None]
        return np.where(den[..., None] > 0, num / np.maximum(den, 1e-30)[..., None], 0.0)
    return Flow(tracks.length - 1, w, h, fn, fps)


def draw_tracks(tracks: Tracks, background=None, trail: int = 0, fps: float = 24.0):
    """A clip of the tracks drawn over `background` (a Clip, an image, or None for dark grey):
    each track a coloured trail up to the current frame (trail frames long; 0 = all) and a dot."""
    import cv2
    from graph_engine import Clip
    w, h = tracks.width, tracks.height
    colours = [tuple(int(c) for c in cv2.cvtColor(np.uint8([[[int(180 * k / max(1, tracks.count)), 220, 255]]]),
                                                   cv2.COLOR_HSV2RGB)[0, 0]) for k in range(tracks.count)]
    length = tracks.length if background is None or isinstance(background, np.ndarray) else \
        min(tracks.length, background.length)

    def bg(a, b):
        if background is None:
            return np.full((b - a, h, w, 3), 40, np.uint8)
        if isinstance(background, np.ndarray):
            img = background if background.shape[:2] == (h, w) else cv2.resize(background, (w, h))
            return np.repeat(img[None], b - a, axis=0)
        frames = background.frames(a, b)
        if (background.width, background.height) != (w, h):
            frames = np.stack([cv2.resize(f, (w, h)) for f in frames])
        return frames.copy()

    box = (np.array([-16.0, -16.0]), np.array([w + 16.0, h + 16.0]))

    def reader(a, b):
        out = bg(a, b)
        for n, i in enumerate(range(a, b)):
            for k in range(tracks.count):
                lo = 0 if trail <= 0 else max(0, i - trail)
                seg = [j for j in range(lo, i + 1) if tracks.visible[k, j]]
                if len(seg) > 1:
                    runs = [np.round(r * 4).astype(np.int32) for r in _on_picture(tracks.points[k, seg], *box)]
                    cv2.polylines(out[n], runs, False, colours[k], 2, cv2.LINE_AA, shift=2)  # 2 bits of sub-pixel
                c = tracks.points[k, i]
                if tracks.visible[k, i] and (c > box[0]).all() and (c < box[1]).all():
                    c = np.round(c * 4).astype(int)
                    cv2.circle(out[n], (int(c[0]), int(c[1])), 4 * 4, colours[k], -1, cv2.LINE_AA, shift=2)
        return out
    return Clip(length, fps, w, h, reader, local=True)



def _on_picture(pts: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list:
    """The parts of a polyline inside the box lo..hi, cut exactly where they cross it (Liang-Barsky).

    OpenCV draws int32 coordinates: a point far off the picture (1e9) wrapped round and failed the whole
    preview with 'Bad argument in function circle', and long lines off the picture cost time for nothing."""
    if ((pts > lo) & (pts < hi)).all():
        return [pts]
    runs, cur = [], []
    for a, b in zip(pts[:-1], pts[1:]):
        d, t0, t1 = b - a, 0.0, 1.0
        for p, q in ((-d[0], a[0] - lo[0]), (d[0], hi[0] - a[0]), (-d[1], a[1] - lo[1]), (d[1], hi[1] - a[1])):
            if p == 0:
                t0, t1 = (t0, t1) if q >= 0 else (1.0, 0.0)
            elif p < 0:
                t0 = max(t0, q / p)
            else:
                t1 = min(t1, q / p)
        if t0 > t1:
            continue
        start, end = (a if t0 == 0 else a + t0 * d), (b if t1 == 1 else a + t1 * d)   # kept points stay exact
        if not cur or not np.array_equal(cur[-1], start):
            runs.append(cur := [start])
        cur.append(end)
    return [np.array(r) for r in runs if len(r) > 1]
