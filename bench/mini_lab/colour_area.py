"""The object's area found by the colour its caption names: a size measure that shares nothing
with the subject consensus's idea of a subject.

guide.subject_consensus (and the detector) take the subject to be the pixels far from the frame's
border colour, so judging the consensus by the detector's area would grade it by its own
definition. Here the object is found by the colour the caption names (shapes_world.COLOURS),
whatever the background: the largest 8-connected blob of pixels near that colour
(scipy.ndimage.label). Its edge pixels, anti-aliased or blurred, count by their coverage:
each pixel is unmixed between the blob's own inner colour and the colour just around the blob
(linear, clipped to 0..1), so the area is the same whether an edge is sharp or soft, and
sub-pixel motion does not change it."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nodes.mini.shapes_world import COLOURS

# RGB distance from the named colour within which a pixel seeds the blob (about half the distance to
# the palette's closest pair, orange/yellow at 78, so a neighbouring colour never joins it).
SEED = 40.0
_EIGHT = np.ones((3, 3), bool)


def colour_areas(frames: np.ndarray, colour: str) -> np.ndarray:
    """Coverage-weighted pixel count of the `colour` object in each uint8 frame [T,H,W,3] (0 where none)."""
    named = np.asarray(COLOURS[colour], np.float32)
    areas = np.zeros(len(frames))
    for i, frame in enumerate(frames.astype(np.float32)):
        labels, n = ndimage.label(np.linalg.norm(frame - named, axis=-1) < SEED, structure=_EIGHT)
        if n == 0:
            continue
        core = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
        inner = ndimage.binary_erosion(core, _EIGHT)
        obj = np.median(frame[inner if inner.any() else core], axis=0)
        reach = ndimage.binary_dilation(core, _EIGHT, iterations=2)
        ring = ndimage.binary_dilation(reach, _EIGHT, iterations=2) & ~reach
        if not ring.any():
            continue
        axis = obj - np.median(frame[ring], axis=0)
        length2 = float(axis @ axis)
        if length2 < SEED ** 2:        # the object does not stand out from what surrounds it
            continue
        alpha = np.clip((frame[reach] - np.median(frame[ring], axis=0)) @ axis / length2, 0.0, 1.0)
        areas[i] = float(alpha.sum())
    return areas


def area_variation(areas: np.ndarray) -> float:
    """Largest relative deviation of a frame's area from the clip's median area."""
    med = float(np.median(areas))
    return float(np.max(np.abs(areas - med)) / med) if med > 0 else float("inf")
