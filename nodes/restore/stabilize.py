"""Video stabilization: track features, smooth the camera path, warp each frame onto it.

Corners are tracked with pyramidal Lucas-Kanade between consecutive frames and a
similarity transform (shift, rotation, scale about the frame centre) is fitted with RANSAC,
so moving objects do not drag the estimate. Integrated, those motions are the camera path;
its low-pass (a Gaussian-weighted local quadratic fit: pans, and pans that speed up or
slow down, stay) is where the camera should have
been, and each frame is warped by the difference. Tracking failures (cuts, blank frames)
break the path so nothing is smoothed across them."""
from __future__ import annotations

import math

import cv2
import numpy as np

from graph_engine.clip import CACHED_CHUNKS
from nodes.common.flow import to_gray
from nodes.common.stream import Measures, PairCache, measured_float, smooth_trajectory, windowed

WORK_WIDTH = 640
# Share of the tracked corners the fitted motion must explain. Between two shots of similar content (a
# cut in a night-city clip) LK still "tracks" hundreds of corners and RANSAC finds a fit 6 of 355 agree
# with (a 48 px jump, 17 degrees, 1.2x); across cuts in the real bench clips the share is at most 0.04,
# within a shot at least 0.58 (a large face moving in front of the camera).
MIN_INLIER_SHARE = 0.15
CROP_MAX = 0.25             # the node's largest crop
BORDERS = {"reflect": cv2.BORDER_REFLECT101, "replicate": cv2.BORDER_REPLICATE, "black": cv2.BORDER_CONSTANT}


def spread_corners(gray: np.ndarray, total: int = 400, grid: int = 4):
    """Up to `total` corners, an equal share from each cell of a grid x grid grid (float32 [n, 1, 2]) or None.
    Picked over the whole frame, corners crowded onto its most contrasted part: on an interview (a lit face before
    dark panelling) nearly all were on the moving head, the fit followed it and the background kept its shake
    (1.45 px a frame left, vid.stab 1.07); spread, the still background gets its say (1.39)."""
    h, w = gray.shape
    found = []
    for y in range(grid):
        for x in range(grid):
            y0, x0 = y * h // grid, x * w // grid
            p = cv2.goodFeaturesToTrack(gray[y0:(y + 1) * h // grid, x0:(x + 1) * w // grid],
                                        maxCorners=total // (grid * grid), qualityLevel=0.01,
                                        minDistance=max(4, w // 80), blockSize=7)
            if p is not None:
                found.append(p + np.float32([x0, y0]))
    return np.concatenate(found) if found else None


def pair_motion(prev: np.ndarray, cur: np.ndarray):
    """(dx, dy, angle, log_scale) of cur relative to prev about the frame centre, or None if lost."""
    g0, g1 = to_gray(prev), to_gray(cur)
    h, w = g0.shape
    f = min(1.0, WORK_WIDTH / w)
    if f < 1.0:
        size = (WORK_WIDTH, max(8, round(h * f)))
        g0, g1 = cv2.resize(g0, size, interpolation=cv2.INTER_AREA), cv2.resize(g1, size, interpolation=cv2.INTER_AREA)
    pts = spread_corners(g0)
    if pts is None or len(pts) < 8:
        return None
    nxt, status, _ = cv2.calcOpticalFlowPyrLK(g0, g1, pts, None, winSize=(21, 21), maxLevel=3)
    good = status.ravel() == 1
    if good.sum() < 8:
        return None
    m, inliers = cv2.estimateAffinePartial2D(pts[good], nxt[good], method=cv2.RANSAC,
                                             ransacReprojThreshold=1.5, maxIters=2000, confidence=0.995)
    if m is None or inliers is None or inliers.sum() < max(6, MIN_INLIER_SHARE * good.sum()):
        return None
    a = m[:, :2]
    c = np.array([g0.shape[1] / 2.0, g0.shape[0] / 2.0])
    t = (a @ c + m[:, 2] - c) / f
    return np.array([t[0], t[1], math.atan2(a[1, 0], a[0, 0]), math.log(math.hypot(a[0, 0], a[1, 0]))])


def correction_matrix(d: np.ndarray, w: int, h: int, zoom: float) -> np.ndarray:
    """2x3 warp that moves a frame by the path correction d = (dx, dy, angle, log_scale), then zooms."""
    s = math.exp(d[3]) * zoom
    cos, sin = s * math.cos(d[2]), s * math.sin(d[2])
    cx, cy = w / 2.0, h / 2.0
    a = np.array([[cos, -sin], [sin, cos]])
    t = np.array([cx, cy]) - a @ np.array([cx, cy]) + zoom * d[:2]
    return np.hstack([a, t[:, None]]).astype(np.float64)


def covers(mat: np.ndarray, w: int, h: int) -> bool:
    """Whether the warp `mat` fills every output pixel from inside the source frame."""
    inv = cv2.invertAffineTransform(mat)
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
    src = corners @ inv[:, :2].T + inv[:, 2]
    return bool(np.all((src >= -1e-6) & (src <= np.array([w - 1, h - 1]) + 1e-6)))


def within_frame(d: np.ndarray, w: int, h: int, zoom: float) -> np.ndarray:
    """The correction d, shortened as little as it must be for the zoomed frame to still cover the
    picture. Clamping the shift alone let a turn (or a shift with a turn) past the zoom's margin: with
    4 degree, 25 px shake over half the frames of a crop-mode render showed mirrored slivers in the corners."""
    if covers(correction_matrix(d, w, h, zoom), w, h):
        return d
    lo, hi = 0.0, 1.0           # no correction at all always covers (the zoom is about the centre)
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if covers(correction_matrix(d * mid, w, h, zoom), w, h) else (lo, mid)
    return d * lo


def crop_needed(d: np.ndarray, w: int, h: int) -> float:
    """The least crop (share of each side) whose zoom lets the correction d cover the whole frame, up to 0.45."""
    lo, hi = 0.0, 0.45
    if not covers(correction_matrix(d, w, h, 1.0 / (1.0 - 2.0 * hi)), w, h):
        return hi
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if covers(correction_matrix(d, w, h, 1.0 / (1.0 - 2.0 * mid)), w, h) else (mid, hi)
    return hi


def stabilize_clip(ctx, clip, radius: int = 20, strength: float = 1.0, border: str = "crop",
                   crop: float = 0.05, rotation: bool = True):
    """The stabilized clip (lazy). border 'crop' zooms by 1/(1-2*crop) so edges stay filled. A deep plate's float
    pixels (Clip.linear) are moved by the warp each 8-bit frame got, unrounded and past 1.0."""
    if border not in ("crop",) + tuple(BORDERS):
        raise ValueError(f"unknown border mode {border!r}")
    zoom = 1.0 / (1.0 - 2.0 * crop) if border == "crop" else 1.0
    mode = BORDERS["reflect" if border == "crop" else border]
    cache = PairCache(4 * radius + 64)
    # Crop mode shortens a correction its margin cannot hold, so shake is left in there; that went unsaid (on the
    # hand-held bikes clip of bench/handheld.py, crop 0.01 kept part of the shake in 17 of 48 frames). Said once,
    # for the first chunk where it happens, with the crop its frames needed.
    told = []

    def tell_short(short) -> None:
        if told or ctx is None or not short:
            return
        told.append(True)
        need = math.ceil(max(crop_needed(d, clip.width, clip.height) for _, d in short) * 100) / 100
        fix = f"raise crop to {need:g} or more" if need <= CROP_MAX else \
            f"even the largest crop ({CROP_MAX:g}) cannot hold it: lower strength"
        where = f"frame {short[0][0]}" if len(short) == 1 else \
            f"{len(short)} frames from {short[0][0]} to {short[-1][0]}"
        ctx.log(f"restore.stabilize: crop {crop:g} leaves too little margin for the shake of {where}, so part of it "
                f"is left in (there, and maybe later): {fix}, or set border to reflect, replicate or black to keep "
                f"the whole picture and fill the uncovered edge instead")

    def compute(window: np.ndarray, lo: int, a: int, b: int) -> np.ndarray:
        n = len(window)
        path = np.zeros((n, 4))
        breaks = np.zeros(n, bool)
        for k in range(1, n):
            if ctx is not None:
                ctx.check()
            m = cache.get(lo + k, lambda: pair_motion(window[k - 1], window[k]))
            breaks[k] = m is None
            path[k] = path[k - 1] + (0.0 if m is None else m)
        if not rotation:
            path[:, 2:] = 0.0
        smooth = smooth_trajectory(path, breaks, range(a, b), lo, radius, degree=2)
        out, short = [], []
        for i in range(a, b):
            d = strength * (smooth[i - a] - path[i - lo])
            if border == "crop":
                fitted = within_frame(d, clip.width, clip.height, zoom)
                if fitted is not d:
                    short.append((i, d))
                d = fitted
            mat = correction_matrix(d, clip.width, clip.height, zoom)
            if warps is not None:
                warps.put(i, mat)
            out.append(warp(window[i - lo], mat))
        tell_short(short)
        return np.stack(out)

    def warp(frame: np.ndarray, mat: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(frame, mat, (clip.width, clip.height), flags=cv2.INTER_LINEAR, borderMode=mode)

    out = windowed(ctx, clip, radius, compute, behind=False)
    # Frame -> the warp its 8-bit frame got, for a deep plate's floats (none for 8 bits): as many frames' as out keeps.
    warps = Measures((CACHED_CHUNKS + 1) * out.chunk) if clip.linear is not None else None
    return measured_float(out, clip, warp, warps)
