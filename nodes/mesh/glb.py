"""A MESH as binary glTF 2.0 (.glb), laid out as ComfyUI's SaveGLB writes it (comfy_extras' save_glb): one buffer of
positions, triangle indices, texture coordinates, colours and normals, each 4-byte aligned, then the texture as an
embedded PNG; one mesh, one node, one scene; the material a neutral grey for bare geometry, white under a texture or
vertex colours, double-sided. The workflow goes in asset.extras, where ComfyUI puts its prompt."""
from __future__ import annotations

import io
import json
import struct
from typing import Optional

import numpy as np

from graph_engine import NodeError
from nodes.common.mesh import Mesh

_FLOAT, _UINT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_JSON, _BIN = 0x4E4F534A, 0x004E4942
_LINEAR, _CLAMP = 9729, 33071


def _pad(data: bytes, fill: bytes = b"\0") -> bytes:
    return data + fill * (-len(data) % 4)


def glb_bytes(mesh: Mesh, extras: Optional[dict] = None) -> bytes:
    """The .glb file of `mesh` (a NodeError for a mesh without triangles: glTF has nothing to draw)."""
    if not len(mesh.faces):
        raise NodeError(f"the mesh has no triangles ({len(mesh.vertices):,} vertices): there is nothing to save. A "
                        f"mesh made from voxels is empty when no value crosses its threshold: try another threshold")
    blobs, views, accessors, attributes = [], [], [], {}

    def add(data: bytes, target: Optional[int] = None) -> int:
        offset = sum(len(b) for b in blobs)
        blobs.append(_pad(data))
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        views.append(view)
        return len(views) - 1

    def attribute(name: str, values: np.ndarray, kind: str, bounds: bool = False) -> None:
        values = np.ascontiguousarray(values, np.float32)
        acc = {"bufferView": add(values.tobytes(), _ARRAY_BUFFER), "byteOffset": 0, "componentType": _FLOAT,
               "count": len(values), "type": kind}
        if bounds:          # glTF requires POSITION's min and max
            acc["min"], acc["max"] = values.min(0).tolist(), values.max(0).tolist()
        accessors.append(acc)
        attributes[name] = len(accessors) - 1

    attribute("POSITION", mesh.vertices, "VEC3", bounds=True)
    indices = mesh.faces.astype(np.uint32)
    accessors.append({"bufferView": add(indices.tobytes(), _ELEMENT_ARRAY_BUFFER), "byteOffset": 0,
                      "componentType": _UINT, "count": int(indices.size), "type": "SCALAR"})
    index_accessor = len(accessors) - 1
    if mesh.uvs is not None:
        attribute("TEXCOORD_0", mesh.uvs, "VEC2")
    if mesh.colors is not None:
        attribute("COLOR_0", mesh.colors.astype(np.float32) / 255.0, "VEC3" if mesh.colors.shape[1] == 3 else "VEC4")
    if mesh.normals is not None:
        attribute("NORMAL", mesh.normals, "VEC3")

    pbr = {"metallicFactor": 0.0, "roughnessFactor": 0.5, "baseColorFactor": [0.22, 0.22, 0.22, 1.0]}
    gltf = {"asset": {"version": "2.0", "generator": "Kinograph"}}
    if mesh.texture is not None or mesh.colors is not None:
        pbr.update(baseColorFactor=[1.0, 1.0, 1.0, 1.0], roughnessFactor=1.0)
    if mesh.texture is not None:
        from PIL import Image
        png = io.BytesIO()
        Image.fromarray(mesh.texture, "RGB").save(png, format="PNG")
        gltf.update(images=[{"bufferView": add(png.getvalue()), "mimeType": "image/png"}],
                    samplers=[{"magFilter": _LINEAR, "minFilter": _LINEAR, "wrapS": _CLAMP, "wrapT": _CLAMP}],
                    textures=[{"source": 0, "sampler": 0}])
        pbr["baseColorTexture"] = {"index": 0, "texCoord": 0}
    if extras:
        gltf["asset"]["extras"] = extras
    binary = b"".join(blobs)
    gltf.update(buffers=[{"byteLength": len(binary)}], bufferViews=views, accessors=accessors,
                meshes=[{"primitives": [{"attributes": attributes, "indices": index_accessor, "mode": 4,
                                         "material": 0}]}],
                materials=[{"pbrMetallicRoughness": pbr, "doubleSided": True}],
                nodes=[{"mesh": 0}], scenes=[{"nodes": [0]}], scene=0)
    text = _pad(json.dumps(gltf).encode("utf-8"), b" ")      # the JSON chunk is padded with spaces
    total = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total), struct.pack("<II", len(text), _JSON), text,
                     struct.pack("<II", len(binary), _BIN), binary])


def write_glb(mesh: Mesh, path: str, workflow_yaml: str = "", overwrite: bool = False) -> dict:
    """Write `mesh` to `path` (.glb); returns {"path", "vertices", "triangles", "bytes"} and "earlier_take" where the
    file it replaced is kept (graph_engine.takes)."""
    from pathlib import Path

    from graph_engine.atomic import atomic_output
    final = Path(path)
    data = glb_bytes(mesh, {"kinograph_workflow": workflow_yaml} if workflow_yaml else None)
    kept: list = []
    with atomic_output(final, overwrite=overwrite, takes=kept) as tmp:
        Path(tmp).write_bytes(data)
    info = {"path": str(final), "vertices": len(mesh.vertices), "triangles": len(mesh.faces), "bytes": len(data)}
    return {**info, "earlier_take": str(kept[0])} if kept else info
