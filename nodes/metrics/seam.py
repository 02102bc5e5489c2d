"""Seams and drift in long videos: how visible window/chunk boundaries are, and how far
the colour wanders from the first frame.

Both measures stream over a Clip (or take a small array), so memory stays flat in length.
"""
from __future__ import annotations

from typing import Iterator, Sequence, Tuple

import numpy as np

from graph_engine import NodeError, Param, node
from graph_engine.types import FLOAT, VIDEO

# A video with no motion at all would divide by zero; a hundredth of a grey level is
# far below anything visible, so seams in such a video read as very large, not infinite.
_MIN_DIFF = 0.01


def _chunks(video, ctx=None, size: int = 32) -> Iterator[Tuple[int, np.ndarray]]:
    """A clip's frames in its own chunks, with progress and cancellation through `ctx`. Asking a Clip for
    32 frames at a time joined 8 of its 1080p chunks into one 200 MB array and made it keep 10 chunks
    (clip.frames keeps a wide read's span for the next one), 750 MB for a measure that needs two frames."""
    if isinstance(video, np.ndarray):
        for s in range(0, len(video), size):
            yield s, video[s:s + size]
        return
    from nodes.common.stream import Progress
    progress = Progress(ctx, video.length)
    for a, chunk in video.chunks():
        yield a, chunk
        progress.add(len(chunk))


def frame_differences(video, ctx=None) -> np.ndarray:
    """d[t] = mean |frame[t+1] - frame[t]| over pixels and channels (grey levels), t = 0..n-2."""
    out = []
    prev = None
    for _, chunk in _chunks(video, ctx):
        for cur in chunk:
            if prev is not None:
                # max - min is |a - b| without leaving uint8 (no full-frame upcast).
                out.append(float((np.maximum(prev, cur) - np.minimum(prev, cur)).mean(dtype=np.float64)))
            prev = cur
    return np.asarray(out, dtype=np.float64)


def boundary_frames(num_frames: int, every: int = 0, listed: str | Sequence[int] = "") -> list[int]:
    """Frames where a new window or chunk begins: multiples of `every` and/or listed indices
    ("16, 32, 48"), keeping those with a frame before them (0 < b < num_frames)."""
    if isinstance(listed, str):
        try:
            listed = [int(v) for v in listed.replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"boundaries must be frame numbers separated by commas (e.g. '16, 32'), "
                             f"got {listed!r}") from None
    bounds = set(int(b) for b in listed)
    if every > 0:
        bounds.update(range(every, num_frames, every))
    return sorted(b for b in bounds if 0 < b < num_frames)


def seam_discontinuity(diffs: np.ndarray, boundaries: Sequence[int]) -> dict:
    """Mean frame difference across the boundaries over the median difference elsewhere.

    1 means seams look like any other frame step; 3 means a jump three times the usual
    motion. `diffs` come from `frame_differences`; boundary b is the step from b-1 to b."""
    n = len(diffs) + 1
    bounds = [b for b in boundaries if 0 < b < n]
    if not bounds:
        raise ValueError(f"no seam boundaries inside the video's {n} frames")
    at = np.zeros(len(diffs), bool)
    at[np.asarray(bounds) - 1] = True
    if at.all():
        raise ValueError("every frame step is a boundary, so there is nothing inside the windows to compare with")
    seam = float(diffs[at].mean())
    inside = float(np.median(diffs[~at]))
    # The largest step anywhere over the median step needs no idea of where the seams are, so it also judges
    # schedules whose windows move every step (uniform) and catches a jump away from the listed boundaries.
    peak = int(np.argmax(diffs))
    return {"seam": seam / max(inside, _MIN_DIFF), "seam_difference": seam, "inside_median": inside,
            "boundaries": bounds, "peak": float(diffs[peak]) / max(float(np.median(diffs)), _MIN_DIFF),
            "peak_at": peak + 1}


def color_drift(video, space: str = "lab", ctx=None) -> dict:
    """Distance of each frame's mean colour from frame 0's (Delta E in Lab, or RGB grey levels),
    with the least-squares slope of that series per frame and its maximum."""
    from nodes.common.color import mean_lab
    if space not in ("lab", "rgb"):
        raise ValueError(f"colour drift space must be 'lab' or 'rgb', got {space!r}")
    means = []
    for _, chunk in _chunks(video, ctx):
        for frame in chunk:
            means.append(mean_lab(frame) if space == "lab" else frame.reshape(-1, 3).mean(axis=0, dtype=np.float64))
    if not means:
        raise ValueError("colour drift needs at least one frame")
    means = np.asarray(means)
    dist = np.linalg.norm(means - means[0], axis=1)
    slope = float(np.polyfit(np.arange(len(dist)), dist, 1)[0]) if len(dist) > 1 else 0.0
    return {"drift": dist, "slope": slope, "max": float(dist.max())}


def _bounds(length: int, every: int, boundaries: str) -> list[int]:
    if length < 3:
        # "set 'every' below 1" was the advice for a one-frame clip.
        raise NodeError(f"metrics.seam: the video has {length} frame{'s' * (length != 1)}; a seam is a step between "
                        f"frames, compared with the steps inside the windows, so it needs at least 3")
    try:
        bounds = boundary_frames(length, every, boundaries)
    except ValueError as e:
        raise NodeError(f"metrics.seam: {e}") from None
    if not bounds:
        raise NodeError(f"metrics.seam: no boundary falls inside the {length}-frame video; "
                        f"set 'every' below {length} or list boundary frames")
    return bounds


@node("metrics.seam", title="Seam Discontinuity", category="Metrics", output=True)
def seam_node(ctx, video: VIDEO,
              every: int = Param(16, zero="off", min=0, max=100000,
                                 help="a boundary every this many frames (chunk length); 0: only the listed ones"),
              boundaries: str = Param("", help="extra boundary frames, e.g. '12, 24, 36' (first frame of a window)")
              ) -> FLOAT:
    """How visible window or chunk boundaries are: the frame difference across them over the median inside.

    About 1 means seamless; larger means a visible jump. Reports `seam`, the raw
    differences, the per-frame difference series `frame_diff`, and `peak`: the largest step
    anywhere over the median step (at frame `peak_at`), which needs no boundaries."""
    bounds = _bounds(video.length, every, boundaries)
    diffs = frame_differences(video, ctx)
    try:
        res = seam_discontinuity(diffs, bounds)
    except ValueError as e:
        raise NodeError(f"metrics.seam: {e}; set fewer boundaries or a larger 'every'") from None
    ctx.report(**res, frame_diff=[round(float(d), 4) for d in diffs])
    return res["seam"]


@node("metrics.color_drift", title="Colour Drift", category="Metrics", output=True)
def color_drift_node(ctx, video: VIDEO,
                     space: str = Param("lab", choices=("lab", "rgb"),
                                        help="lab: Delta E (perceptual); rgb: grey levels")) -> FLOAT:
    """How far the mean colour wanders from the first frame over time.

    Reports the per-frame distance series `drift`, its `slope` per frame and `max`;
    outputs the slope (a steady drift in long or chunked videos shows as a positive slope)."""
    res = color_drift(video, space, ctx)
    ctx.report(drift=[round(float(d), 4) for d in res["drift"]], slope=res["slope"], max=res["max"])
    return res["slope"]
