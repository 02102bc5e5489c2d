"""The mesh of one frame of MoGe's geometry (ComfyUI's MoGePointMapToMesh): the point map triangulated (grid.py), then
turned into glTF's axes."""
from __future__ import annotations

import numpy as np

from graph_engine import NodeError
from nodes.common.mesh import Mesh

# The most vertices a point map is meshed into (an 8192 x 8192 picture's): a .glb holds 4 GiB, and a vertex of a
# point-map mesh takes up to 59 bytes in it (position, uv, normal, two triangles, its texture pixel), 64 with the
# vertices smooth_normals splits at creases. Triangulating takes about 200 bytes a vertex (183 measured at 2000^2,
# with the frame's maps beside): the memory free bounds it too.
MAX_VERTICES = 8192 * 8192
VERTEX_BYTES = 200


def geometry_mesh(geo, frame: int, decimation: int, discontinuity: float, texture: bool) -> Mesh:
    from nodes.depth.moge import Geometry
    from .grid import triangulate
    if not isinstance(geo, Geometry):
        raise NodeError("mesh.from_points meshes MoGe's geometry (depth.moge, depth.moge_panorama); this one is "
                        "another model's (Depth Anything 3's): use depth.moge for the picture")
    if frame >= geo.length:
        raise NodeError(f"frame {frame} is past the geometry's clip of {geo.length} frame(s): pick 0 to "
                        f"{geo.length - 1}")
    # a vertex a kept pixel: counted from the picture's size before MoGe makes the frame's maps
    from nodes.common.stream import _size, free_memory
    free = free_memory()

    def vertices(d: int) -> int:
        return -(-geo.video.height // d) * -(-geo.video.width // d)

    def fits(d: int) -> bool:
        return vertices(d) <= MAX_VERTICES and (free is None or vertices(d) * VERTEX_BYTES <= free)
    if not fits(decimation):
        count = vertices(decimation)
        why = (f"at most {MAX_VERTICES:,} fit a .glb file" if count > MAX_VERTICES else
               f"meshing them takes about {_size(count * VERTEX_BYTES)}, more than the {_size(free)} this machine "
               "has free")
        least = next((d for d in range(decimation, 9) if fits(d)), None)
        raise NodeError(f"the geometry is {geo.video.width} x {geo.video.height} points, a mesh of {count:,} "
                        f"vertices at decimation {decimation} ({why}): "
                        + (f"set decimation to {least} or more" if least else "make the picture smaller "
                           "(video.resize) before depth.moge"))
    maps = geo.frames(frame, frame + 1)[0]
    vertices, faces, uvs = triangulate(maps["points"], decimation, discontinuity, maps.get("depth"))
    if not len(faces):
        raise NodeError("MoGe's geometry gave an empty mesh (no 2 x 2 block of pixels with points): set "
                        "discontinuity_threshold to 0, or apply_mask off on depth.moge")
    if geo.panorama:
        # MoGe's sphere (z up) -> glTF's (y up); seen from inside, the winding stays as it is
        vertices = vertices[:, [1, 2, 0]]
    else:
        # MoGe's camera (x right, y down, z forward) -> glTF's (y up, z back). A 2 x 2 block's triangles run
        # clockwise as the camera sees them; reversed, they are front faces (counter-clockwise) towards it
        vertices = vertices * np.array([1.0, -1.0, -1.0], np.float32)
        faces = faces[:, [0, 2, 1]]
    picture = geo.video.frame(frame)[..., :3] if texture else None
    return Mesh(vertices, faces, uvs=uvs, texture=picture)
