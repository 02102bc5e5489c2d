"""3-D nodes: meshes from voxel grids and from MoGe's point maps, their normals, and .glb files of them (ComfyUI's
VoxelToMesh, MoGePointMapToMesh, MeshSmoothNormals and SaveGLB); Gaussian splats as .spz or .ply files
(SplatToFile3D into SaveGLB) and as pictures (RenderSplat, its camera CreateCameraInfo's)."""
from pathlib import PurePath
from typing import Optional

from graph_engine import NodeError, Param, node
from graph_engine.types import GEOMETRY, MASK, MESH, SPLAT, VIDEO, VOXEL


def _glb_name(path) -> Optional[str]:
    """Why `path` is no .glb file name (None: it is one)."""
    if not str(path).strip() or PurePath(str(path)).suffix.lower() == ".glb":
        return None
    return f"{path!r} is not a .glb file name: name it out/NAME.glb (binary glTF, which Blender and browsers open)"


@node("io.save_glb", title="Save GLB", category="Input/Output", output=True)
def save_glb(ctx, mesh: MESH,
             path: str = Param("out/mesh.glb", kind="path", reads=False, check=_glb_name,
                               help="the .glb file to write (binary glTF 2.0)"),
             overwrite: bool = Param(False, help="replace an existing file Kinograph did not write (kept as an "
                                                 "earlier take unless --replace)")) -> None:
    """Write a mesh as binary glTF (ComfyUI's SaveGLB): positions and triangles with the texture coordinates,
    colours, normals and texture the mesh has, the workflow in the file's asset.extras. Blender, three.js and
    Windows' 3D Viewer open it. The file it replaces is kept as takes/NAME.001.glb ... beside it."""
    from nodes.io.nodes import _wrote
    from .glb import write_glb
    if _glb_name(path):
        raise NodeError(_glb_name(path))
    _wrote(ctx, write_glb(mesh, path, ctx.workflow_yaml, overwrite))


@node("mesh.from_voxels", title="Voxels to Mesh", category="3D")
def from_voxels(ctx, voxel: VOXEL,
                algorithm: str = Param("surface net", choices=("surface net", "basic"),
                                       help="surface net: a smooth surface through the cells the threshold crosses; "
                                            "basic: the voxels' own cube faces, blocky"),
                threshold: float = Param(0.6, min=-1.0, max=1.0,
                                         help="values above it are inside the shape")) -> MESH:
    """The surface of a voxel grid as a triangle mesh, as ComfyUI's VoxelToMesh (and VoxelToMeshBasic, its basic
    algorithm) makes it, vertex for vertex: a cube grid spans -1..1 on each axis."""
    from nodes.common.mesh import Mesh
    from .voxels import basic, surface_net
    vertices, faces = (basic if algorithm == "basic" else surface_net)(voxel.grid, threshold)
    ctx.log(f"{len(vertices):,} vertices, {len(faces):,} triangles")
    return Mesh(vertices, faces)


@node("mesh.from_points", title="Point Map to Mesh", category="3D")
def from_points(ctx, geometry: GEOMETRY,
                frame: int = Param(0, min=0, help="which frame of the geometry's clip to mesh"),
                decimation: int = Param(1, min=1, max=8, help="keep every n-th pixel each way: 1 is full detail"),
                discontinuity_threshold: float = Param(0.04, min=0.0, max=1.0,
                                                       help="leave out pixels whose 3 x 3 depth span exceeds this "
                                                            "share of their depth (0: keep all)"),
                texture: bool = Param(True, help="carry the picture as the mesh's texture")) -> MESH:
    """A triangle mesh of one frame of MoGe's geometry (depth.moge, depth.moge_panorama), as ComfyUI's
    MoGePointMapToMesh makes it: a vertex per pixel with a point, two triangles per 2 x 2 block, the picture as
    texture. A photo's mesh is turned from MoGe's camera (x right, y down, z forward) to glTF's (y up, the camera
    looking down -z); a panorama's is a sphere seen from inside, y up."""
    from .points import geometry_mesh
    mesh = geometry_mesh(geometry, frame, decimation, discontinuity_threshold, texture)
    ctx.log(mesh.summary())
    return mesh


@node("mesh.smooth_normals", title="Smooth Mesh Normals", category="3D")
def smooth_normals(ctx, mesh: MESH,
                   crease_angle: float = Param(180.0, min=0.0, max=180.0,
                                               help="edges folding more than this (degrees) stay hard, their "
                                                    "vertices split; 180 smooths everything, 30-60 suits hard "
                                                    "surfaces")) -> MESH:
    """Per-vertex normals for a mesh, as ComfyUI's MeshSmoothNormals makes them: a viewer shades a mesh without
    them flat, triangle by triangle; with them it shades smoothly. Each vertex's normal is the area-weighted mean of
    its triangles'."""
    from .normals import smooth_normals as make
    return make(mesh, crease_angle)


# How far from the origin the camera and its target may be, in the splat's units: the renderer's float32 squares of
# distances overflow past about 1e17 (NaN pictures; at 1e38 a NaN-to-integer traceback).
FARTHEST = 1e9


def _splat_name(path) -> Optional[str]:
    """Why `path` is no splat file name (None: it is one)."""
    if not str(path).strip() or PurePath(str(path)).suffix.lower() in (".spz", ".ply"):
        return None
    return f"{path!r} is not a splat file name: name it out/NAME.spz (Niantic's compressed splats) or out/NAME.ply"


@node("io.save_splat", title="Save Splat", category="Input/Output", output=True)
def save_splat(ctx, splat: SPLAT,
               path: str = Param("out/splat.spz", kind="path", reads=False, check=_splat_name,
                                 help="the file to write: .spz (Niantic's compressed splats, version 2) or .ply "
                                      "(3DGS's binary layout)"),
               overwrite: bool = Param(False, help="replace an existing file Kinograph did not write (kept as an "
                                                   "earlier take unless --replace)")) -> None:
    """Write 3-D Gaussians as a file (ComfyUI's SplatToFile3D with SaveGLB): .spz or .ply by the name's suffix;
    three.js viewers (Spark), SuperSplat and Blender's 3DGS add-ons open them. The file it replaces is kept as
    takes/NAME.001.spz ... beside it."""
    from nodes.io.nodes import _wrote
    from .splat_files import write_splat
    _wrote(ctx, write_splat(splat, path, overwrite))


@node("splat.render", title="Render Splat", category="3D", device="cpu",
      outputs={"video": VIDEO, "mask": MASK})
def render_splat(ctx, splat: SPLAT,
                 width: int = Param(1024, min=64, max=2048, step=8, help="the pictures' width in pixels"),
                 height: int = Param(1024, min=64, max=2048, step=8, help="the pictures' height in pixels"),
                 frames: int = Param(1, min=-240, max=240, help="1: one picture; more: the camera turns a full "
                                                               "circle about its target over them (negative: the "
                                                               "other way)"),
                 splat_scale: float = Param(1.0, min=0.1, max=5.0, help="each Gaussian's size, times this"),
                 sharpen: float = Param(2.0, min=1.0, max=8.0, help="1: overlapping Gaussians blend as light does; "
                                                                     "more: each pixel leans to its strongest"),
                 headlight_shading: float = Param(0.0, min=0.0, max=3.0, help="darken surfaces turned from the "
                                                                               "camera (0: flat colour)"),
                 opacity_threshold: float = Param(0.0, min=0.0, max=1.0, help="leave out fainter Gaussians"),
                 style: str = Param("color", choices=("color", "clay", "depth", "normal"),
                                    help="color; clay: grey, lit from the upper left; depth: near bright; normal: "
                                         "OpenGL's normal map"),
                 background: str = Param("#000000", help="#RRGGBB behind the splat"),
                 camera: str = Param("auto", choices=("auto", "orbit", "look_at"),
                                     help="auto: a three-quarter view framing the splat; orbit: yaw, pitch and "
                                          "distance about the target; look_at: from eye_x/y/z to the target"),
                 yaw: float = Param(35.0, min=-360.0, max=360.0, help="orbit: degrees about the up axis, from +z"),
                 pitch: float = Param(30.0, min=-89.0, max=89.0, help="orbit: degrees above the target"),
                 distance: float = Param(4.0, min=0.01, max=1000.0, help="orbit: how far from the target"),
                 eye_x: float = Param(4.0, min=-FARTHEST, max=FARTHEST, help="look_at: the camera's x"),
                 eye_y: float = Param(4.0, min=-FARTHEST, max=FARTHEST, help="look_at: the camera's y (up)"),
                 eye_z: float = Param(4.0, min=-FARTHEST, max=FARTHEST, help="look_at: the camera's z"),
                 target_x: float = Param(0.0, min=-FARTHEST, max=FARTHEST, help="the point looked at (and orbited), x"),
                 target_y: float = Param(0.0, min=-FARTHEST, max=FARTHEST, help="the point looked at, y (up)"),
                 target_z: float = Param(0.0, min=-FARTHEST, max=FARTHEST, help="the point looked at, z"),
                 roll: float = Param(0.0, min=-180.0, max=180.0, help="degrees about the view axis"),
                 fov: float = Param(35.0, min=1.0, max=120.0, help="field of view across the shorter side, degrees"),
                 zoom: float = Param(1.0, min=0.01, max=100.0, help="the focal length, times this"),
                 projection: str = Param("perspective", choices=("perspective", "orthographic"),
                                         help="orthographic: no foreshortening, the target's distance sets the "
                                              "scale"),
                 fps: float = Param(24.0, min=1.0, max=240.0, help="the pictures' rate as a clip")):
    """Pictures of 3-D Gaussians from a camera (ComfyUI's RenderSplat, its camera CreateCameraInfo's), drawn on the
    CPU: each Gaussian's peak along a pixel's ray, depth slabs composited front to back. The world is the viewer's
    (Y up). mask: how covered each pixel is."""
    from graph_engine import Clip
    from .splat_render import look_at, orbit, render_frames
    target = (target_x, target_y, target_z)
    kw = dict(fov=fov, zoom=zoom, projection=projection, roll=roll)
    cam = None if camera == "auto" else orbit(yaw, pitch, distance, target, **kw) if camera == "orbit" else \
        look_at((eye_x, eye_y, eye_z), target, **kw)
    pictures, cover = render_frames(splat, width, height, cam, frames, splat_scale, sharpen, headlight_shading,
                                    opacity_threshold, style, background)
    from nodes.common.masks import clip_of
    video = Clip.from_array((pictures * 255).round().astype("uint8"), fps)
    return {"video": video, "mask": cover[0] if len(cover) == 1 else clip_of(lambda a, b: cover[a:b], video)}
