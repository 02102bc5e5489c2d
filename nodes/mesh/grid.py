"""A point map (one 3-D point a pixel) as a triangle mesh, as ComfyUI's MoGePointMapToMesh makes it
(comfy/ldm/moge/geometry.py's triangulate_grid_mesh and depth_map_edge): each pixel with a finite point is a vertex,
textured by its own pixel, and each 2 x 2 block of them two triangles; pixels on a depth jump are left out first, so
a foreground and the wall behind it are not joined by a curtain of long thin triangles."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def depth_edges(depth: np.ndarray, rtol: float) -> np.ndarray:
    """True where the depth's span over the 3 x 3 window round a pixel exceeds rtol times its depth (a pixel of depth
    0, an invalid one, counts as an edge wherever its window spans anything)."""
    from scipy.ndimage import maximum_filter, minimum_filter
    d = depth.astype(np.float32)
    # max_pool2d pads with -inf, which a window's own border pixel already dominates: "nearest" is the same window
    span = maximum_filter(d, 3, mode="nearest") - minimum_filter(d, 3, mode="nearest")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.nan_to_num(span / np.maximum(d, np.float32(1e-6)))
    return ratio > rtol


def triangulate(points: np.ndarray, decimation: int = 1, discontinuity: float = 0.04,
                depth: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, faces, uvs) of an H x W x 3 point map. decimation keeps every n-th pixel each way; discontinuity
    (0: off) drops pixels on a jump of that fraction of their depth, judged on `depth` (radial for a panorama, whose
    z goes negative below the horizon) or else the points' z. uvs are the pixel's place in the picture, 0..1 from
    the top left corner, as glTF reads a texture."""
    points = np.asarray(points, np.float32)
    finite = np.isfinite(points).all(-1)
    keep = finite.copy()
    if discontinuity > 0:
        d = points[..., 2] if depth is None else np.asarray(depth, np.float32)
        keep &= ~depth_edges(np.where(finite, d, np.float32(0)), discontinuity)
    if decimation > 1:
        points, keep = points[::decimation, ::decimation], keep[::decimation, ::decimation]
    h, w = keep.shape
    index = np.full(h * w, -1, np.int64)
    index[keep.reshape(-1)] = np.arange(int(keep.sum()))
    index = index.reshape(h, w)
    vertices = points[keep]
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    uvs = np.stack([xx.astype(np.float32) / np.float32(max(w - 1, 1)),
                    yy.astype(np.float32) / np.float32(max(h - 1, 1))], -1)[keep]
    a, b, c, e = index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]
    whole = (a >= 0) & (b >= 0) & (c >= 0) & (e >= 0)
    a, b, c, e = a[whole], b[whole], c[whole], e[whole]
    faces = np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, e], -1)])
    return vertices, faces.astype(np.int32), uvs
