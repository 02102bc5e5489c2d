"""Meshes from voxel grids, as ComfyUI's VoxelToMesh makes them (comfy_extras/nodes_hunyuan3d.py), vertex for vertex
and face for face in its order, with numpy in place of its per-cell Python loops.

Both read the grid padded with zeros and place the mesh as ComfyUI does: grid index i becomes (i - n/2) / (n/2) with
n the grid's longest side, so a cube of voxels spans -1..1, and the axes are reversed (the grid's z, y, x become the
mesh's x, y, z). "basic" gives each exposed face of a voxel above the threshold its own quad; "surface net" puts one
vertex in each cell whose corners straddle the threshold (the mean of its edges' crossings) and joins neighbouring
ones. As in ComfyUI, surface net's cells are those whose low corner is inside the grid (its first padding layer
included, the last not), which shifts its mesh a voxel towards the low corner."""
from __future__ import annotations

from typing import Tuple

import numpy as np

from graph_engine import NodeError

# The most cells a surface net meshes, or voxel faces the basic mesh shows: a smooth shape at resolution 512 (the
# decoder's most) crosses about a million cells; a noisy grid crosses nearly all of its 134 million, which took about
# 1.5 KB a cell (25 GB at resolution 256) before a single vertex came out.
MAX_CELLS = 4_000_000
_NOISE = ("the grid is noise rather than a shape (a damaged VAE, or a latent sampled too few steps): check "
          "decode.hunyuan3d's model and the sampling, or lower its resolution")

# a voxel's six neighbours and the corners of the face towards each, ComfyUI's order (z, y, x)
_NEIGHBOURS = np.array([[0, 0, 1], [0, 0, -1], [0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0]])
_FACE_CORNERS = np.array([
    [[0, 0, 1], [0, 1, 1], [1, 1, 1], [1, 0, 1]],
    [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]],
    [[0, 1, 0], [1, 1, 0], [1, 1, 1], [0, 1, 1]],
    [[0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 0, 0]],
    [[1, 0, 1], [1, 1, 1], [1, 1, 0], [1, 0, 0]],
    [[0, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0]],
])
_CORNERS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]])
_EDGES = np.array([[0, 1], [0, 2], [0, 4], [1, 3], [1, 5], [2, 3], [2, 6], [3, 7], [4, 5], [4, 6], [5, 7], [6, 7]])
# the axis pairs a surface net joins cells along, and the normal of each pair's plane (e_i x e_j)
_PAIRS = ((0, 1), (0, 2), (1, 2))


def _place(vertices: np.ndarray, shape) -> np.ndarray:
    half = max(shape) / 2
    return np.ascontiguousarray(((vertices - half) / half).astype(np.float32)[:, ::-1])


def basic(grid: np.ndarray, threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    """ComfyUI's voxel_to_mesh: a quad (two triangles) for each face of a voxel above `threshold` that no such voxel
    covers. An empty grid gives an empty mesh (ComfyUI's gives a lone vertex at -1, -1, -1)."""
    solid = grid > threshold
    padded = np.pad(solid, 1)
    d, h, w = grid.shape

    def exposed_mask(offset):
        # masks over the grid, not index lists over its solid cells: a filled 513^3 grid's indices took gigabytes
        z, y, x = offset + 1
        return solid & ~padded[z:z + d, y:y + h, x:x + w]
    shown = sum(int(np.count_nonzero(exposed_mask(offset))) for offset in _NEIGHBOURS)
    if shown > MAX_CELLS:
        raise NodeError(f"the voxel grid shows {shown:,} voxel faces, a mesh of {4 * shown:,} vertices (at most "
                        f"{MAX_CELLS:,} faces are meshed): {_NOISE}")
    vertices, faces, count = [], [], 0
    for offset, corners in zip(_NEIGHBOURS, _FACE_CORNERS):
        exposed = np.argwhere(exposed_mask(offset))                          # raster order, as ComfyUI's
        if not len(exposed):
            continue
        vertices.append((exposed[:, None, :] + corners[None]).reshape(-1, 3))
        quads = np.arange(count, count + 4 * len(exposed)).reshape(-1, 4)
        faces += [quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]]     # all first halves, then all second halves
        count += 4 * len(exposed)
    if not vertices:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)
    return _place(np.concatenate(vertices).astype(np.float32), grid.shape), np.concatenate(faces).astype(np.int32)


def _keys(cells: np.ndarray, h: int, w: int) -> np.ndarray:
    """Raster keys of (z, y, x) cells of a padded grid (y up to h, x up to w): increasing in raster order."""
    return (cells[:, 0] * (h + 1) + cells[:, 1]) * (w + 1) + cells[:, 2]


def _vertex_of(keys: np.ndarray, number: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The vertex number of the active cell at each wanted key, -1 where no active cell is."""
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[at] == wanted, number[at], -1)


def surface_net(grid: np.ndarray, threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    """ComfyUI's voxel_to_mesh_surfnet."""
    grid = np.asarray(grid, np.float32)
    d, h, w = grid.shape
    padded = np.pad(grid, 1)
    # which cells the surface passes through, from the grid's eight shifted views, then the corners of those cells
    # alone (gathering every cell's corners, as ComfyUI does, held ~260 bytes a cell: 36 GB at octree resolution 512)
    above = padded > threshold
    some, every = above[:d, :h, :w].copy(), above[:d, :h, :w].copy()
    for z, y, x in _CORNERS[1:]:
        some |= above[z:z + d, y:y + h, x:x + w]
        every &= above[z:z + d, y:y + h, x:x + w]
    some &= ~every
    del above, every
    crossed = int(np.count_nonzero(some))
    if crossed > MAX_CELLS:
        raise NodeError(f"the voxel grid's surface passes through {crossed:,} cells, a mesh of as many vertices (at "
                        f"most {MAX_CELLS:,} are meshed; a smooth shape at resolution 512 makes about a million): "
                        f"{_NOISE}")
    cells = np.argwhere(some)                           # raster order, as ComfyUI's
    del some
    pos = cells[:, None, :] + _CORNERS[None]
    values = padded[pos[..., 0], pos[..., 1], pos[..., 2]]
    inside = values > threshold
    if not len(cells):
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)

    # each edge whose ends straddle the threshold is crossed where the values interpolate to it (midway if equal)
    e1, e2 = _EDGES[:, 0], _EDGES[:, 1]
    crossing = inside[:, e1] != inside[:, e2]
    v1, v2 = values[:, e1], values[:, e2]
    step = v2 - v1
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(step != 0, (np.float32(threshold) - v1) / step, np.float32(0.5)).astype(np.float32)
    points = _CORNERS[e1][None].astype(np.float32) + t[..., None] * (_CORNERS[e2] - _CORNERS[e1])[None]
    mean = (points * crossing[..., None]).sum(1) / crossing.sum(1, keepdims=True).astype(np.float32)
    # ComfyUI numbers a cell's vertex when its first crossed edge comes up, edges in turn, cells in order
    first = crossing.argmax(1)
    order = np.lexsort((np.arange(len(cells)), first))
    number = np.empty(len(cells), np.int64)
    number[order] = np.arange(len(cells))
    vertices = (mean + cells.astype(np.float32))[order]

    # a cell's vertex found by its raster key among the active cells' (sorted, as argwhere gave them), not in a dense
    # table of the whole grid
    keys = _keys(cells, h, w)
    inside_f = inside.astype(np.float32)
    corners = _CORNERS.astype(np.float32)
    gradient = (inside_f @ corners) / inside_f.sum(1, keepdims=True) - \
        ((1 - inside_f) @ corners) / (1 - inside_f).sum(1, keepdims=True)
    faces = []
    for i, j in _PAIRS:
        normal = np.cross(np.eye(3)[i], np.eye(3)[j])
        quad = [cells, cells + np.eye(3, dtype=int)[i], cells + np.eye(3, dtype=int)[j],
                cells + np.eye(3, dtype=int)[i] + np.eye(3, dtype=int)[j]]
        ids = np.stack([_vertex_of(keys, number, _keys(q, h, w)) for q in quad], 1)
        ok = (ids >= 0).all(1)
        ids, facing = ids[ok], (gradient @ normal)[ok] > 0
        a, b, c, e = ids.T
        first_half = np.where(facing[:, None], np.stack([a, b, e], 1), np.stack([a, e, b], 1))
        second_half = np.where(facing[:, None], np.stack([a, e, c], 1), np.stack([a, c, e], 1))
        faces.append(np.stack([first_half, second_half], 1).reshape(-1, 3))     # a quad's two triangles together
    return _place(vertices, grid.shape), np.concatenate(faces).astype(np.int32)
