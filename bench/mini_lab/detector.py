"""A classical (no learning) reader of shapes-world clips, used to judge kinograph-mini's prompt adherence.

For one-object clips on a plain background it finds the object in every frame (pixels far in colour
from the background, which is the median of the frame border; the largest connected blob), then reads
    colour     the named colour nearest to the object's median inner colour,
    shape      from the share of the blob in the lower half of its bounding box (triangle ~3/4) and
               the fill ratio of the box (square ~1, circle ~pi/4),
    direction  from a straight-line fit of the centroid over time ("left", "up right", ..., or "still"),
    area       the blob's anti-aliasing-aware pixel count in each frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from nodes.mini.shapes_world import COLOURS

_NAMES = list(COLOURS)
_PALETTE = np.array([COLOURS[n] for n in _NAMES], np.float32)
FOREGROUND_DISTANCE = 60.0     # RGB distance from the background that counts as object
MIN_TRAVEL = 4.0               # pixels of fitted travel below which an object stands still
DIAGONAL_RATIO = 0.5           # minor/major travel above which a motion is diagonal


@dataclass
class Detection:
    colour: str | None
    shape: str | None
    direction: str | None
    areas: np.ndarray                       # soft pixel count per frame (0 where nothing was found)
    colours: list = field(default_factory=list)   # named colour per frame (None where nothing was found)
    centroids: np.ndarray | None = None     # [T,2] (x, y)
    fill_ratio: float = float("nan")
    lower_share: float = float("nan")

    @property
    def found_everywhere(self) -> bool:
        return bool(np.all(self.areas > 0))

    def area_variation(self) -> float:
        """Largest relative deviation of a frame's area from the clip's median area."""
        med = float(np.median(self.areas))
        return float(np.max(np.abs(self.areas - med)) / med) if med > 0 else float("inf")

    def colour_stable(self) -> bool:
        return self.found_everywhere and len(set(self.colours)) == 1


def nearest_colour(rgb) -> str:
    return _NAMES[int(np.argmin(np.linalg.norm(_PALETTE - np.asarray(rgb, np.float32), axis=1)))]


def _object_mask(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(mask of the largest far-from-background blob, distance of every pixel from the background)."""
    border = np.concatenate([frame[:2].reshape(-1, 3), frame[-2:].reshape(-1, 3),
                             frame[:, :2].reshape(-1, 3), frame[:, -2:].reshape(-1, 3)])
    background = np.median(border, axis=0)
    distance = np.linalg.norm(frame.astype(np.float32) - background, axis=2)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((distance > FOREGROUND_DISTANCE).astype(np.uint8),
                                                           connectivity=8)
    if n < 2:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest, distance


def _soft_area(mask: np.ndarray, distance: np.ndarray, inner: np.ndarray) -> float:
    """Anti-aliasing-aware area: edge pixels count by how far their colour has moved from the
    background towards the object's, so sub-pixel motion does not change the area."""
    full = float(np.median(distance[inner])) if inner.any() else float(distance[mask].max())
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return float(np.clip(distance[ring] / full, 0.0, 1.0).sum())


def classify_shape(fill_ratio: float, lower_share: float) -> str:
    """An apex-up triangle keeps 3/4 of its area in the lower half of its box; circles and squares 1/2."""
    if lower_share > 0.62:
        return "triangle"
    return "square" if fill_ratio > 0.88 else "circle"


def classify_direction(centroids: np.ndarray) -> str:
    t = np.arange(len(centroids), dtype=np.float64)
    slope = np.polyfit(t, centroids, 1)[0]          # (dx, dy) per frame
    travel = slope * (len(centroids) - 1)
    major = np.max(np.abs(travel))
    if major < MIN_TRAVEL:
        return "still"
    horizontal = "left" if travel[0] < 0 else "right"
    vertical = "up" if travel[1] < 0 else "down"
    if np.min(np.abs(travel)) > DIAGONAL_RATIO * major:
        return f"{vertical} {horizontal}"
    return horizontal if abs(travel[0]) > abs(travel[1]) else vertical


def detect(frames: np.ndarray) -> Detection:
    """Read one object from uint8 frames [T,H,W,3]."""
    areas = np.zeros(len(frames))
    colours, fills, lower, centroids, inner_rgb = [], [], [], [], []
    for i, frame in enumerate(frames):
        found = _object_mask(frame)
        if found is None:
            colours.append(None)
            continue
        mask, distance = found
        ys, xs = np.nonzero(mask)
        # Edge pixels are blended with the background; the eroded interior carries the true colour.
        inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        areas[i] = _soft_area(mask, distance, inner)
        fills.append(len(xs) / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1)))
        lower.append(np.mean(ys > (ys.min() + ys.max()) / 2))
        centroids.append((xs.mean(), ys.mean()))
        rgb = np.median(frame[inner if inner.any() else mask], axis=0)
        inner_rgb.append(rgb)
        colours.append(nearest_colour(rgb))
    if not centroids:
        return Detection(None, None, None, areas, colours)
    fill, lower_share = float(np.median(fills)), float(np.median(lower))
    direction = classify_direction(np.array(centroids)) if len(centroids) > 1 else None
    return Detection(nearest_colour(np.median(np.array(inner_rgb), axis=0)), classify_shape(fill, lower_share), direction,
                     areas, colours, np.array(centroids), fill, lower_share)
