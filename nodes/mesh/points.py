"""The mesh of one frame of MoGe's geometry (ComfyUI's MoGePointMapToMesh): the point map triangulated (grid.py), then
turned into glTF's axes."""
from __future__ import annotations

import numpy as np

from graph_engine import NodeError
from nodes.common.mesh import Mesh

# The most vertices a point map is meshed into (a 4096 x 4096 picture's): triangulating takes about 160 bytes a pixel,
# and a 13,000-pixel-square picture's mesh (7 GB) is past the 4 GB a .glb file can hold.
MAX_VERTICES = 4096 * 4096


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
    rows, cols = -(-geo.video.height // decimation), -(-geo.video.width // decimation)
    if rows * cols > MAX_VERTICES:
        least = next((d for d in range(decimation, 9) if -(-geo.video.height // d) * -(-geo.video.width // d)
                      <= MAX_VERTICES), None)
        raise NodeError(f"the geometry is {geo.video.width} x {geo.video.height} points, a mesh of {rows * cols:,} "
                        f"vertices at decimation {decimation} (at most {MAX_VERTICES:,} are meshed): "
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
