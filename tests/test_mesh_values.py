"""MESH and VOXEL values (nodes/common/mesh.py): what they accept, what they refuse, and that the cache gives them
back as they were."""
import numpy as np
import pytest

from graph_engine import NodeError
from graph_engine.cache import _decode, _encode, trust_package
from graph_engine.types import MESH, VOXEL, get_type
from nodes.common.mesh import Mesh, Voxel


def _tetra(**extra):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float64)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int64)
    return Mesh(v, f, **extra)


def test_types_are_registered():
    assert get_type("MESH") is MESH and get_type("VOXEL") is VOXEL
    assert not MESH.can_take(VOXEL)


def test_mesh_normalises_dtypes_and_summarises():
    m = _tetra(colors=np.full((4, 3), 200, np.int64))
    assert m.vertices.dtype == np.float32 and m.faces.dtype == np.int32 and m.colors.dtype == np.uint8
    assert m.summary().startswith("mesh: 4 vertices, 4 triangles, bounds [0, 1] x [0, 1] x [0, 1]; with colors")


def test_mesh_refusals_name_the_problem():
    with pytest.raises(NodeError, match="face may only name vertices 0 to 3"):
        Mesh(np.zeros((4, 3)), np.array([[0, 1, 4]]))
    with pytest.raises(NodeError, match="normals must be 4 rows"):
        _tetra(normals=np.zeros((3, 3)))
    with pytest.raises(NodeError, match="no texture coordinates"):
        _tetra(texture=np.zeros((2, 2, 3), np.uint8))


def test_voxel_refuses_a_flat_grid_and_an_empty_box():
    with pytest.raises(NodeError, match="must be 3-D"):
        Voxel(np.zeros((4, 4)))
    with pytest.raises(NodeError, match="box"):
        Voxel(np.zeros((2, 2, 2)), (0, 0, 0), (1, 0, 1))


def test_cache_round_trip(tmp_path):
    trust_package("nodes")      # what the registry does when it loads the node packs
    m = _tetra(normals=np.ones((4, 3)), uvs=np.zeros((4, 2)), texture=np.full((2, 3, 3), 7, np.uint8))
    back = _decode(_encode(m, tmp_path, "m"), tmp_path)
    for name in ("vertices", "faces", "normals", "uvs", "texture"):
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name))
    assert back.colors is None
    vox = Voxel(np.arange(24, dtype=np.float32).reshape(2, 3, 4), (-1.01,) * 3, (1.01,) * 3)
    back = _decode(_encode(vox, tmp_path, "v"), tmp_path)
    np.testing.assert_array_equal(back.grid, vox.grid)
    assert back.low == vox.low and back.high == vox.high


def test_values_that_are_not_numbers_are_refused():
    """A NaN vertex made a .glb whose POSITION min/max read NaN: JSON has no NaN, and three.js's JSON.parse (and the
    glTF validator) reject the file. A decoder that overflowed in half precision gives NaN in its grid; the VOXEL
    says so where it is made, before a mesh is."""
    v = np.array([[0, 0, 0], [1, 0, 0], [0, np.nan, 0]], np.float32)
    with pytest.raises(NodeError, match="1 of the mesh's 3 vertices are not numbers"):
        Mesh(v, [[0, 1, 2]])
    grid = np.zeros((3, 3, 3), np.float32)
    grid[1, 1, 1], grid[0, 0, 0] = np.nan, np.inf
    with pytest.raises(NodeError, match="2 values that are not numbers.*fp32"):
        Voxel(grid)
