"""mesh.smooth_normals against ComfyUI's MeshSmoothNormals (comfy_extras/nodes_save_3d.py _smooth_vertex_normals and
_compute_vertex_normals, written out below as published): the same normals, and below 180 degrees the same split
vertices in the same order."""
import math

import numpy as np
import pytest

from nodes.common.mesh import Mesh
from nodes.mesh.normals import smooth_normals
from nodes.mesh.voxels import surface_net


def _smooth_vertex_normals(vertices_np, faces_np):
    tris = vertices_np[faces_np]
    face_n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    normals = np.zeros((vertices_np.shape[0], 3), dtype=np.float64)
    for k in range(3):
        np.add.at(normals, faces_np[:, k], face_n)
    lens = np.linalg.norm(normals, axis=1, keepdims=True)
    normals /= np.where(lens > 1e-12, lens, 1.0)
    return normals.astype(np.float32)


def _compute_vertex_normals(vertices_np, faces_np, crease_angle=None):
    faces_i = faces_np.astype(np.int64)
    if crease_angle is None or crease_angle >= 180.0:
        return (vertices_np, faces_i.astype(np.uint32),
                _smooth_vertex_normals(vertices_np, faces_i), None)
    M = faces_i.shape[0]
    tris = vertices_np[faces_i]
    face_n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    areas = np.linalg.norm(face_n, axis=1, keepdims=True)
    face_unit = face_n / np.where(areas > 1e-12, areas, 1.0)
    cos_thresh = math.cos(math.radians(crease_angle))
    parent = list(range(M))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edge_faces = {}
    for fi in range(M):
        a, b, c = int(faces_i[fi, 0]), int(faces_i[fi, 1]), int(faces_i[fi, 2])
        for u, v in ((a, b), (b, c), (c, a)):
            edge_faces.setdefault((u, v) if u < v else (v, u), []).append(fi)
    for fl in edge_faces.values():
        if len(fl) == 2 and float(np.dot(face_unit[fl[0]], face_unit[fl[1]])) >= cos_thresh:
            ra, rb = find(fl[0]), find(fl[1])
            if ra != rb:
                parent[ra] = rb
    new_index = {}
    remap = []
    out_faces = np.empty((M, 3), dtype=np.int64)
    for fi in range(M):
        g = find(fi)
        for k in range(3):
            ov = int(faces_i[fi, k])
            key = (ov, g)
            ni = new_index.get(key)
            if ni is None:
                ni = len(remap)
                new_index[key] = ni
                remap.append(ov)
            out_faces[fi, k] = ni
    remap = np.asarray(remap, dtype=np.int64)
    normals = np.zeros((remap.shape[0], 3), dtype=np.float64)
    for k in range(3):
        np.add.at(normals, out_faces[:, k], face_n)
    lens = np.linalg.norm(normals, axis=1, keepdims=True)
    normals /= np.where(lens > 1e-12, lens, 1.0)
    return (vertices_np[remap], out_faces.astype(np.uint32), normals.astype(np.float32), remap)


def _box():
    """A surface net of a box: flat sides meeting at right angles, a few bevelled corners."""
    grid = np.zeros((7, 8, 9), np.float32)
    grid[2:5, 2:6, 1:7] = 1.0
    v, f = surface_net(grid, 0.5)
    uvs = np.random.default_rng(0).random((len(v), 2))
    return Mesh(v, f, uvs=uvs, colors=np.arange(len(v) * 3).reshape(-1, 3) % 256)


@pytest.mark.parametrize("angle", [180.0, 60.0, 30.0, 0.0])
def test_normals_are_comfyuis(angle):
    mesh = _box()
    v, f, n, remap = _compute_vertex_normals(mesh.vertices, mesh.faces.astype(np.int64), angle)
    got = smooth_normals(mesh, angle)
    np.testing.assert_array_equal(got.vertices, v)
    np.testing.assert_array_equal(got.faces, f.astype(np.int32))
    np.testing.assert_allclose(got.normals, n, atol=1e-6)
    if remap is None:
        assert got.uvs is mesh.uvs
    else:
        # the net bevels the box's edges at 45 degrees: a smaller crease angle splits them
        assert (len(remap) > len(mesh.vertices)) == (angle < 45)
        np.testing.assert_array_equal(got.uvs, mesh.uvs[remap])
        np.testing.assert_array_equal(got.colors, mesh.colors[remap])


def test_voxels_to_a_saved_mesh_through_the_nodes(tmp_path):
    """mesh.from_voxels -> mesh.smooth_normals -> io.save_glb, node by node: the file holds the net with its normals
    (the chain Hunyuan3D's templates end in)."""
    import trimesh
    from graph_engine.context import Context
    from nodes.common.mesh import Voxel
    from nodes.mesh import nodes
    grid = np.zeros((7, 8, 9), np.float32)
    grid[2:5, 2:6, 1:7] = 1.0
    mesh = nodes.from_voxels(Context("v"), Voxel(grid), algorithm="surface net", threshold=0.5)
    smooth = nodes.smooth_normals(Context("n"), mesh, crease_angle=180.0)
    nodes.save_glb(Context("s"), smooth, path=str(tmp_path / "box.glb"))
    got = trimesh.load(str(tmp_path / "box.glb"), process=False)
    (back,) = got.geometry.values()
    np.testing.assert_array_equal(np.asarray(back.vertices, np.float32), surface_net(grid, 0.5)[0])
    np.testing.assert_allclose(back.vertex_normals, smooth.normals, atol=1e-6)
