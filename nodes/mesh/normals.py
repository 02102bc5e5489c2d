"""Per-vertex normals of a mesh, as ComfyUI's MeshSmoothNormals makes them (comfy_extras/nodes_save_3d.py): each
vertex the area-weighted mean of its triangles' normals; with a crease angle, vertices are split along edges folding
more than it, so hard edges stay hard while the rest shades smoothly."""
from __future__ import annotations

import math

import numpy as np

from nodes.common.mesh import Mesh


def _accumulate(count: int, faces: np.ndarray, face_normals: np.ndarray) -> np.ndarray:
    normals = np.zeros((count, 3), np.float64)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.where(lengths > 1e-12, lengths, 1.0)).astype(np.float32)


def smooth_normals(mesh: Mesh, crease_angle: float = 180.0) -> Mesh:
    """`mesh` with normals; below 180 degrees, split along its creases (its colours and uvs follow the split)."""
    from dataclasses import replace
    faces = mesh.faces.astype(np.int64)
    if not len(faces):
        return mesh
    corners = mesh.vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])    # length: twice the area
    if crease_angle >= 180.0:
        return replace(mesh, normals=_accumulate(len(mesh.vertices), faces, face_normals))
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    areas = np.linalg.norm(face_normals, axis=1, keepdims=True)
    unit = face_normals / np.where(areas > 1e-12, areas, 1.0)
    # faces meeting at an edge of two faces, folded less than the crease angle, smooth together
    edges = np.sort(np.stack([faces, np.roll(faces, -1, axis=1)], -1).reshape(-1, 2), axis=1)
    owner = np.repeat(np.arange(len(faces)), 3)
    _, which, count = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(count[which] == 2)
    shared = shared[np.argsort(which[shared], kind="stable")].reshape(-1, 2)
    a, b = owner[shared[:, 0]], owner[shared[:, 1]]
    flat = (unit[a] * unit[b]).sum(1) >= math.cos(math.radians(crease_angle))
    graph = coo_matrix((np.ones(int(flat.sum())), (a[flat], b[flat])), shape=(len(faces),) * 2)
    group = connected_components(graph, directed=False)[1]
    # a vertex for each (vertex, smoothing group), numbered as the faces first use them
    pairs = np.stack([faces.reshape(-1), np.repeat(group, 3)], 1)
    _, first, inverse = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    new_faces = rank[inverse.reshape(-1)].reshape(-1, 3)
    remap = faces.reshape(-1)[np.sort(first)]
    return Mesh(mesh.vertices[remap], new_faces,
                colors=None if mesh.colors is None else mesh.colors[remap],
                normals=_accumulate(len(remap), new_faces, face_normals),
                uvs=None if mesh.uvs is None else mesh.uvs[remap], texture=mesh.texture)
