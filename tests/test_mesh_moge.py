"""mesh.from_points and io.save_glb: MoGe's point map triangulated as ComfyUI's MoGePointMapToMesh does
(comfy/ldm/moge/geometry.py's triangulate_grid_mesh and depth_map_edge, written out below), and the .glb read back
by trimesh, a reader that shares nothing with the writer; 3d_moge_perspective_to_mesh imported and run on a tiny
MoGe-2."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import trimesh

from graph_engine import NodeError
from nodes.common.mesh import Mesh
from nodes.mesh.glb import glb_bytes, write_glb
from nodes.mesh.grid import triangulate
from tests.test_moge import comfyui_setup, tiny_moge

TEMPLATES = Path(__file__).resolve().parent / "data" / "comfyui" / "templates"


def comfy_depth_map_edge(depth, atol=None, rtol=None, kernel_size=3):
    shape = depth.shape
    d = depth.reshape(-1, 1, *shape[-2:])
    pad = kernel_size // 2
    diff = F.max_pool2d(d, kernel_size, stride=1, padding=pad) + F.max_pool2d(-d, kernel_size, stride=1, padding=pad)
    edge = torch.zeros_like(d, dtype=torch.bool)
    if atol is not None:
        edge |= diff > atol
    if rtol is not None:
        edge |= (diff / d.clamp_min(1e-6)).nan_to_num_() > rtol
    return edge.reshape(*shape)


def comfy_triangulate_grid_mesh(points, mask=None, decimation=1, discontinuity_threshold=0.04, depth=None):
    points = points.detach().cpu()
    finite = torch.isfinite(points).all(dim=-1)
    if mask is None:
        mask = finite
    else:
        mask = mask.detach().cpu().to(torch.bool) & finite
    if discontinuity_threshold > 0:
        d = depth.detach().cpu() if depth is not None else points[..., 2]
        d_finite = torch.where(finite, d, torch.zeros_like(d))
        edge = comfy_depth_map_edge(d_finite, rtol=discontinuity_threshold)
        mask = mask & ~edge
    if decimation > 1:
        points = points[::decimation, ::decimation].contiguous()
        mask = mask[::decimation, ::decimation].contiguous()
    H, W = points.shape[:2]
    flat_mask = mask.reshape(-1)
    idx = torch.full((H * W,), -1, dtype=torch.long)
    n_valid = int(flat_mask.sum().item())
    idx[flat_mask] = torch.arange(n_valid, dtype=torch.long)
    idx = idx.reshape(H, W)
    vertices = points.reshape(-1, 3)[flat_mask].contiguous()
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    u = xx.float() / max(W - 1, 1)
    v = yy.float() / max(H - 1, 1)
    uvs = torch.stack([u, v], dim=-1).reshape(-1, 2)[flat_mask].contiguous()
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    quad_ok = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0)
    a, b, c, d = a[quad_ok], b[quad_ok], c[quad_ok], d[quad_ok]
    faces = torch.cat([torch.stack([a, b, c], dim=-1), torch.stack([a, c, d], dim=-1)], dim=0).contiguous()
    return vertices, faces, uvs


def comfy_perspective_mesh(points, depth, decimation=1, discontinuity_threshold=0.04):
    """MoGePointMapToMesh's execute for a photo's geometry (it has intrinsics)."""
    verts, faces, uvs = comfy_triangulate_grid_mesh(points, decimation=decimation,
                                                    discontinuity_threshold=discontinuity_threshold, depth=depth)
    verts = verts * torch.tensor([1.0, -1.0, -1.0], dtype=verts.dtype)
    faces = faces[:, [0, 2, 1]].contiguous()
    return verts.numpy(), faces.numpy(), uvs.numpy()


def _point_map(seed=0, h=13, w=17):
    """A slanted wall with a box in front of it (a depth jump) and a few invalid (inf) pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    z = 3.0 + 0.5 * x + 0.002 * rng.standard_normal((h, w))
    z[4:8, 5:10] = 1.5
    points = np.stack([x * z, y * z, z], -1).astype(np.float32)
    points[rng.random((h, w)) < 0.08] = np.inf
    return points


@pytest.mark.parametrize("decimation,threshold,radial", [(1, 0.04, False), (2, 0.04, False), (1, 0.2, True),
                                                         (3, 0.3, True), (1, 0.0, False)])
def test_triangulation_is_comfyuis(decimation, threshold, radial):
    points = _point_map()
    depth = np.linalg.norm(points, axis=-1) if radial else None
    want = comfy_triangulate_grid_mesh(torch.from_numpy(points), decimation=decimation,
                                       discontinuity_threshold=threshold,
                                       depth=None if depth is None else torch.from_numpy(depth))
    got = triangulate(points, decimation, threshold, depth)
    assert len(got[1]) > 0
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w.numpy())


def _textured(h=4, w=5):
    points = _point_map(h=h, w=w)
    points[np.isinf(points)] = 1.0
    v, f, uv = triangulate(points, 1, 0.0)
    texture = np.random.default_rng(2).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Mesh(v, f, uvs=uv, texture=texture)


def _read(data: bytes):
    import io
    scene = trimesh.load(io.BytesIO(data), file_type="glb", process=False)
    (mesh,) = scene.geometry.values()
    return mesh


def test_glb_reads_back_in_trimesh():
    m = _textured()
    got = _read(glb_bytes(m))
    np.testing.assert_array_equal(np.asarray(got.vertices, np.float32), m.vertices)
    np.testing.assert_array_equal(got.faces, m.faces)
    np.testing.assert_allclose(got.visual.uv[:, 0], m.uvs[:, 0], atol=1e-7)
    np.testing.assert_allclose(got.visual.uv[:, 1], 1 - m.uvs[:, 1], atol=1e-6)     # trimesh flips glTF's v
    np.testing.assert_array_equal(np.asarray(got.visual.material.baseColorTexture.convert("RGB")), m.texture)


def test_glb_colours_normals_and_header():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    normals = np.array([[0, 0, 1]] * 3, np.float32)
    data = glb_bytes(Mesh(v, [[0, 1, 2]], colors=colors, normals=normals), {"kinograph_workflow": "nodes: {}"})
    magic, version, length = np.frombuffer(data[:12], "<u4")
    assert data[:4] == b"glTF" and version == 2 and length == len(data) and len(data) % 4 == 0
    got = _read(data)
    # with a material, trimesh keeps COLOR_0 as the float values glTF stores
    np.testing.assert_allclose(np.asarray(got.visual.vertex_attributes["color"]) * 255, colors, atol=1e-4)
    np.testing.assert_allclose(got.vertex_normals, normals)
    import json
    text = data[20:20 + int(np.frombuffer(data[12:16], "<u4")[0])]
    assert json.loads(text)["asset"]["extras"] == {"kinograph_workflow": "nodes: {}"}


def _strict_json(text: bytes) -> dict:
    import json

    def refuse(word):
        raise ValueError(f"{word} is not JSON")
    return json.loads(text, parse_constant=refuse)      # as a browser's JSON.parse: no NaN or Infinity


def test_glb_layout_follows_the_gltf_spec():
    """The file read by the glTF 2.0 spec's rules, not by a loader that forgives: a 12-byte header whose length is the
    file's; a JSON chunk then a BIN chunk, each 4-byte aligned (JSON padded with spaces); every bufferView inside the
    buffer and 4-byte aligned (float and uint32 components); each accessor's elements inside its view; POSITION's
    min and max exactly its values' (readers cull by them); strict JSON. Every attribute a mesh can carry is in."""
    import struct
    rng = np.random.default_rng(5)
    v = rng.standard_normal((7, 3)).astype(np.float32)
    meshes = [Mesh(v, [[0, 1, 2], [2, 3, 4], [4, 5, 6]], colors=rng.integers(0, 256, (7, 4)), normals=v,
                   uvs=rng.random((7, 2)), texture=rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)),
              Mesh(v[:5], [[0, 1, 2], [2, 3, 4]], colors=rng.integers(0, 256, (5, 3)))]
    widths = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
    for mesh in meshes:
        data = glb_bytes(mesh, {"kinograph_workflow": "name: é"})
        magic, version, length = struct.unpack_from("<4sII", data)
        assert (magic, version, length) == (b"glTF", 2, len(data))
        json_len, json_type = struct.unpack_from("<II", data, 12)
        assert json_type == 0x4E4F534A and json_len % 4 == 0
        text = data[20:20 + json_len]
        assert text.rstrip(b" ") == text.rstrip()      # padded with spaces only
        gltf = _strict_json(text)
        bin_len, bin_type = struct.unpack_from("<II", data, 20 + json_len)
        assert bin_type == 0x004E4942 and bin_len % 4 == 0 and 28 + json_len + bin_len == len(data)
        binary = data[28 + json_len:]
        assert gltf["buffers"] == [{"byteLength": gltf["buffers"][0]["byteLength"]}]
        assert gltf["buffers"][0]["byteLength"] <= bin_len
        for view in gltf["bufferViews"]:
            assert view["byteOffset"] % 4 == 0 and "byteStride" not in view
            assert view["byteOffset"] + view["byteLength"] <= gltf["buffers"][0]["byteLength"]
        primitive = gltf["meshes"][0]["primitives"][0]
        for acc in gltf["accessors"]:
            view = gltf["bufferViews"][acc["bufferView"]]
            assert acc["componentType"] in (5126, 5125) and acc["byteOffset"] % 4 == 0
            assert acc["byteOffset"] + acc["count"] * widths[acc["type"]] * 4 <= view["byteLength"]
        index = gltf["accessors"][primitive["indices"]]
        assert (index["componentType"], index["type"], index["count"]) == (5125, "SCALAR", mesh.faces.size)
        assert gltf["bufferViews"][index["bufferView"]]["target"] == 34963
        pos = gltf["accessors"][primitive["attributes"]["POSITION"]]
        view = gltf["bufferViews"][pos["bufferView"]]
        values = np.frombuffer(binary, "<f4", pos["count"] * 3, view["byteOffset"]).reshape(-1, 3)
        np.testing.assert_array_equal(values, mesh.vertices)
        assert pos["min"] == values.min(0).tolist() and pos["max"] == values.max(0).tolist()
        want = {"POSITION", "COLOR_0"} | ({"NORMAL", "TEXCOORD_0"} if mesh.uvs is not None else set())
        assert set(primitive["attributes"]) == want
        if mesh.texture is not None:
            image = gltf["images"][0]
            view = gltf["bufferViews"][image["bufferView"]]
            assert image["mimeType"] == "image/png"
            assert binary[view["byteOffset"]:view["byteOffset"] + 8] == b"\x89PNG\r\n\x1a\n"


def test_an_empty_mesh_is_refused_and_a_written_file_kept_as_a_take(tmp_path):
    with pytest.raises(NodeError, match="no triangles"):
        glb_bytes(Mesh(np.zeros((0, 3)), np.zeros((0, 3))))
    path = tmp_path / "out" / "m.glb"
    info = write_glb(_textured(), str(path))
    assert info["triangles"] == len(_textured().faces) and path.stat().st_size == info["bytes"]
    path.write_bytes(b"someone else's")
    with pytest.raises(NodeError):
        write_glb(_textured(), str(path))          # a file Kinograph did not write is not replaced unasked


def smooth_moge():
    """A tiny MoGe-2 seeing a smooth scene, as a trained model does: random weights' depth jumps at every pixel,
    which the templates' 0.04 discontinuity filter would all drop."""
    ref = tiny_moge(seed=7)
    with torch.no_grad():
        ref.points_head.output_blocks[4].weight[2] *= 0.1
    return ref


def run_template(name, tmp_path, picture, saves, edit=lambda wf: None):
    """Template `name` imported without a blocking node, its picture `picture` (in tmp_path), its SaveGLB's path
    checked to be `saves` and sent to tmp_path, `edit` applied, and run: (the run, the mesh the .glb holds)."""
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    res = import_workflow(str(TEMPLATES / name))
    assert not res.report.blocking
    wf = load_workflow(text=res.yaml, check=False)
    for n in wf.graph.nodes.values():
        if n.type == "io.load_image":
            n.params["path"] = str(tmp_path / picture)
        if n.type == "io.save_glb":
            assert n.params["path"] == saves
            n.params["path"] = str(tmp_path / "out" / "mesh.glb")
    edit(wf)
    run = Session(device="cpu").run(wf, use_cache=False)
    assert run.ok, run.failed
    return run, _read((tmp_path / "out" / "mesh.glb").read_bytes())


def test_perspective_template_runs_as_comfyui_meshes(tmp_path, monkeypatch):
    """3d_moge_perspective_to_mesh imported (LoadImage, the size switch, LoadMoGeModel, MoGeInference,
    MoGePointMapToMesh, SaveGLB, two MoGeRenders) and run on a tiny MoGe-2: the saved .glb holds ComfyUI's mesh of
    the authors' geometry, textured with the picture, and the editor's viewer shows the mesh as its counts."""
    from app.editor.viewer import Source
    ref = smooth_moge()
    frame = comfyui_setup(ref, tmp_path, monkeypatch, "room.png")
    run, got = run_template("3d_moge_perspective_to_mesh.json", tmp_path, "room.png", "out/3d/ComfyUI.glb")
    want = ref.infer(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255, 16)
    v, f, uv = comfy_perspective_mesh(want["points"][0], want["depth"][0])
    assert len(f) > 0
    np.testing.assert_allclose(got.vertices, v, atol=1e-4, rtol=1e-3)
    np.testing.assert_array_equal(got.faces, f)
    np.testing.assert_allclose(got.visual.uv[:, 1], 1 - uv[:, 1], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(got.visual.material.baseColorTexture.convert("RGB")), frame)
    (mesh,) = [out["mesh"] for out in run.outputs.values() if "mesh" in out]
    assert f"{len(v):,} vertices, {len(f):,} triangles" in Source(mesh, "mesh").text


def test_refusals_name_what_to_do(tmp_path):
    from graph_engine.context import Context
    from nodes.depth.moge import Geometry
    from nodes.mesh import nodes
    with pytest.raises(NodeError, match="Depth Anything 3"):
        nodes.from_points(Context("m"), object())
    one = object.__new__(Geometry)
    one.length = 1
    with pytest.raises(NodeError, match="frame 3 is past the geometry's clip of 1 frame"):
        nodes.from_points(Context("m"), one, frame=3)
    with pytest.raises(NodeError, match="not a .glb file name"):
        nodes.save_glb(Context("s"), _textured(), path=str(tmp_path / "mesh.obj"))
