"""Camera nodes: build, combine, save, preview and apply camera paths; camera conditioning."""
import inspect
from contextlib import contextmanager

from graph_engine import Input, NodeError, Param, node
from graph_engine.types import CAMERA, FLOW, IMAGE, VIDEO

from .camera import PRESET_EASINGS, PRESETS, WAN_PRESETS   # numpy only: cheap to import
from .camera_files import CHAN_ROTATION_ORDERS


CONVENTION = """
Convention: per frame, intrinsics fx, fy, cx, cy in pixels of width x height (pixel centres
at +0.5) and a camera-to-world 4x4 with OpenCV axes: x right, y down, z forward. Paths
start at the origin looking down +z; a still picture sits on a plane 1 unit ahead, so
translations are in units of that distance. Pan (yaw) positive turns right, tilt positive
turns up, roll positive turns the camera clockwise (the picture turns counter-clockwise)."""


def with_convention(func):
    """Append the camera convention to a node's help."""
    func.__doc__ = inspect.cleandoc(func.__doc__) + "\n" + CONVENTION
    return func


@contextmanager
def user_errors():
    """Bad values found by the plain functions reach the user as node errors."""
    try:
        yield
    except NodeError:
        raise
    except (ValueError, OSError) as e:
        raise NodeError(str(e)) from None


DISTANCE_HELP = ("without depth: how far the picture is from the first camera, in the path's units (1 for "
                 "Kinograph's paths; a Nuke / Blender camera in metres: the distance in metres)")


def _sched(default, help):
    return Param(default, kind="schedule", help=help)


# How a depth map's values read, shared by the nodes that lift a picture to 3-D.
DEPTH_TYPE = Param("disparity", choices=("disparity", "depth", "metric"),
                   help="disparity: bright = near (most estimators); depth: bright = far; metric: values are distances")
NEAR = Param(1.0, min=1e-3, max=1e6, help="distance of the nearest depth value (units)")
FAR = Param(10.0, min=1e-3, max=1e6, help="distance of the farthest depth value (units)")


@node("motion.camera_path", title="Camera Path", category="Motion")
@with_convention
def camera_path(ctx,
                frames: int = Param(48, min=1, max=100000, help="length of the path (a pose file sets its own)"),
                width: int = Param(832, min=8, max=16384, help="picture width the pixel values refer to"),
                height: int = Param(480, min=8, max=16384, help="picture height the pixel values refer to"),
                preset: str = Param("static", choices=PRESETS, help="a ready-made move, added to the schedules"),
                speed: float = Param(1.0, min=0.0, max=100.0,
                                     help="preset speed: 1 = 0.01 units, 0.5 degrees or 1% zoom per frame"),
                easing: str = Param("linear", choices=PRESET_EASINGS, help="how the preset's motion is spread in time"),
                zoom: float = _sched(1.0, "view scale relative to frame 0 (1.5 shows the centre magnified 1.5x)"),
                pan_x: float = _sched(0.0, "picture shift to the right in pixels, relative to frame 0"),
                pan_y: float = _sched(0.0, "picture shift downwards in pixels, relative to frame 0"),
                translation_x: float = _sched(0.0, "camera position, right (units)"),
                translation_y: float = _sched(0.0, "camera position, down (units)"),
                translation_z: float = _sched(0.0, "camera position, forward (units)"),
                rotation_pan: float = _sched(0.0, "turn right, degrees"),
                rotation_tilt: float = _sched(0.0, "turn up, degrees"),
                rotation_roll: float = _sched(0.0, "roll clockwise, degrees"),
                fov: float = _sched(60.0, "horizontal field of view, degrees"),
                pose_file: str = Param("", kind="path", help="camera file to start from: CameraCtrl / RealEstate10K "
                                                             "poses, a Nuke .chan (Nuke, Blender, Houdini), a COLMAP "
                                                             "images.txt, a nerfstudio camera_path.json or a NeRF "
                                                             "transforms.json"),
                schedules: str = Param("absolute", choices=("absolute", "per_frame"),
                                       help="absolute: each move is the camera's place at that frame, relative to "
                                            "frame 0; per_frame: the step from the previous frame, accumulated, "
                                            "as in Deforum (zoom 1.02 = 2% more every frame)"),
                rotation_order: str = Param("ZXY", choices=CHAN_ROTATION_ORDERS,
                                            help=".chan files: the order of the rotations (Nuke's cameras: ZXY; "
                                                 "Blender's chan export: XYZ unless changed there)"),
                ) -> CAMERA:
    """A per-frame camera from a preset, keyframed schedules and/or a camera file (CameraCtrl, .chan, COLMAP, JSON).

    The moves (zoom, pan_*, translation_*, rotation_*, fov) are schedules: a number, an
    expression of the frame t, or keyframes such as `0:(1.0), 47:(1.4)`. With `schedules:
    absolute` each is the camera's place at that frame relative to frame 0 (a constant does not
    move it); with `per_frame` each is the step from the previous frame, accumulated, as Deforum's
    are: zoom 1.02 zooms 2% more every frame, rotation_pan 1 turns 1 degree a frame, pan_x 5 shifts
    the previous frame's picture 5 pixels (zoomed and rolled with it after, as Deforum's 2-D translation_x),
    steps made in the camera's own axes (fov stays a plain value; `kinograph import` reads a Deforum
    settings file into these). The image-plane moves (zoom, pan_x, pan_y) change
    the intrinsics only; translation and rotation move the camera in 3-D (with a depth map,
    apply_camera shows parallax). A pose file gives the base path (and the length); the
    schedules, then the preset, move it further in its own frame.

    Camera files are told apart by their content, whatever the extension. A .chan file (`frame tx ty tz
    rx ry rz [vertical fov]`: degrees, Y up, the camera looking down -Z) is converted to the
    convention below; its first line is frame 0 whatever its number (1, 1001), frames must follow
    one by one, and without the fov column the camera gets `fov`. Its translations stay in the
    scene's units (metres from Blender): set apply_camera's distance (or a depth map's near/far)
    in the same units. JSON: nerfstudio's camera_path.json
    (its render paths) or a NeRF / instant-ngp transforms.json (frames in file-name order). COLMAP:
    images.txt (or its folder) in file-name order, the lens from the cameras.txt beside it.

    Presets: pan_* moves the camera sideways or up/down (truck/pedestal, as camera-control
    models use the word), tilt_* turns it up/down, zoom_* changes the focal length, dolly_*
    moves it forward/back, roll_* rolls it, orbit_* circles a point 1 unit ahead.
    """
    from .camera import build_path, held_moves, keys_past_end
    moves = dict(zoom=zoom, pan_x=pan_x, pan_y=pan_y, translation_x=translation_x, translation_y=translation_y,
                 translation_z=translation_z, rotation_pan=rotation_pan, rotation_tilt=rotation_tilt,
                 rotation_roll=rotation_roll)
    with user_errors():
        note = held_moves(frames, **moves) if schedules == "absolute" else ""
        if note:
            ctx.log(note)
        # a pose file sets the length itself
        for note in keys_past_end(frames, fov=fov, **moves) if not pose_file else ():
            ctx.log(note)
        return build_path(frames, width, height, preset_name=preset, speed=speed, easing=easing,
                          pose_file=pose_file, rotation_order=rotation_order, per_frame=schedules == "per_frame",
                          fov=fov, **moves)


@node("motion.wan_camera", title="Wan Camera Preset", category="Motion")
@with_convention
def wan_camera(ctx,
               pose: str = Param("static", choices=tuple(WAN_PRESETS), help="the move"),
               width: int = Param(832, min=16, max=16384, help="picture width"),
               height: int = Param(480, min=16, max=16384, help="picture height"),
               frames: int = Param(81, min=1, max=100000, help="length of the path (Wan: 4n+1)"),
               speed: float = Param(1.0, min=0.0, max=10.0, help="1 = 1.5 units of travel or 60 degrees of roll "
                                                                 "over the clip"),
               fx: float = Param(0.5, min=0.001, max=1.0, help="focal length, fraction of a 1280-wide picture"),
               fy: float = Param(0.5, min=0.001, max=1.0, help="focal length, fraction of a 720-high picture"),
               cx: float = Param(0.5, min=0.0, max=1.0, help="principal point, fraction of the width"),
               cy: float = Param(0.5, min=0.0, max=1.0, help="principal point, fraction of the height"),
               ) -> CAMERA:
    """The camera moves Wan Fun camera-control models were trained with (ComfyUI's WanCameraEmbedding).

    The camera moves linearly: pan_* sideways or up/down, zoom_* forward/back (a dolly: the focal
    length stays), clockwise/anticlockwise rolls it. Feed condition.camera; any other camera path
    (motion.camera_path, a pose file) works there too."""
    from .camera import wan_preset
    with user_errors():
        return wan_preset(pose, frames, width, height, speed=speed, fx=fx, fy=fy, cx=cx, cy=cy)


@node("motion.camera_combine", title="Combine Camera Paths", category="Motion")
def camera_combine(ctx, a: CAMERA, b: CAMERA,
                   mode: str = Param("chain", choices=("chain", "combine"),
                                     help="chain: b continues where a ends; combine: both at once")) -> CAMERA:
    """Join two camera paths.

    chain: b's motion (relative to its first frame) continues from a's last frame; the
    result has len(a) + len(b) - 1 frames (b's first frame is a's last). combine: b's motion
    is added to a's frame by frame in a's local frame (a pan plus a zoom), the shorter path
    holding its last frame."""
    from .camera import chain, combine
    with user_errors():
        return chain(a, b) if mode == "chain" else combine(a, b)


@node("motion.camera_save", title="Save Camera Path", category="Motion", output=True)
def camera_save(ctx, camera: CAMERA,
                path: str = Param("out/camera.txt", kind="path", reads=False,
                                  help="pose file to write; a name ending in .chan writes a Nuke .chan"),
                overwrite: bool = Param(False, help="replace an existing file Kinograph did not write"),
                rotation_order: str = Param("ZXY", choices=CHAN_ROTATION_ORDERS,
                                            help=".chan: the rotation order to write (Nuke's cameras: ZXY)"),
                first_frame: int = Param(1, min=-100000, max=100000, help=".chan: the number of the first frame"),
                ) -> None:
    """Write the path as a CameraCtrl / RealEstate10K pose file, or a Nuke .chan file.

    Pose file: one header line, then per frame `0 fx fy cx cy w h` (intrinsics divided by the
    width and height) and the 3x4 world-to-camera matrix, row-major. .chan (for Nuke's Camera
    'import chan file', Blender's chan import): per frame `frame tx ty tz rx ry rz vfov`, Y up,
    the camera looking down -Z, degrees; frame 0 of the path is Nuke's camera at rest."""
    from .camera import describe, write_pose_file
    from .camera_files import chan_losses, write_chan
    with user_errors():
        if str(path).lower().endswith(".chan"):
            write_chan(camera, path, rotation_order, first_frame, overwrite=overwrite)
            if chan_losses(camera):
                ctx.log(chan_losses(camera))
        else:
            write_pose_file(camera, path, overwrite=overwrite)
    ctx.wrote(path)
    ctx.report(path=path, frames=camera.length, summary=describe(camera))


@node("motion.camera_preview", title="Camera Preview", category="Motion")
def camera_preview(ctx, camera: CAMERA,
                   width: int = Param(512, min=64, max=4096, help="picture width in pixels (both views)"),
                   height: int = Param(256, min=64, max=4096, help="picture height in pixels")) -> IMAGE:
    """Draw the path from above (x right, forward up) and from the side (forward right, up up).

    The path runs from blue (first frame) to red (last), with view frusta at a few frames
    and the still picture's plane in grey."""
    from .preview import camera_preview as draw
    return draw(camera, width, height)


@node("motion.apply_camera", title="Apply Camera", category="Motion", temporal_radius=0)
@with_convention
def apply_camera(ctx, camera: CAMERA,
                 image: IMAGE = Input(optional=True, help="a still picture to move"),
                 video: VIDEO = Input(optional=True, help="a clip whose frame i is moved by camera frame i"),
                 depth: IMAGE = Input(optional=True, help="depth map of the picture: enables 2.5-D parallax"),
                 projection: str = Param("perspective", choices=("perspective", "affine"),
                                         help="2-D: full homography, or its closest affine map"),
                 motion: str = Param("absolute", choices=("absolute", "compounding"),
                                     help="absolute: every frame from the source; compounding: each frame "
                                          "from the previous one (Deforum's move without its diffusion; stills "
                                          "only; generate.feedback re-diffuses every step)"),
                 border: str = Param("replicate", choices=("replicate", "reflect", "black", "wrap"),
                                     help="what fills areas the source does not cover"),
                 depth_type: str = DEPTH_TYPE, near: float = NEAR, far: float = FAR,
                 fps: float = Param(24.0, min=0.01, max=1000, help="frame rate of the clip made from an image"),
                 distance: float = Param(1.0, min=1e-3, max=1e6, help=DISTANCE_HELP),
                 ) -> VIDEO:
    """Move a picture or a video by a camera path, as a streaming clip.

    Without depth the picture is a plane `distance` in front of the first camera (2-D:
    homographies; 1 unit for Kinograph's own paths, the picture's real distance for a camera file
    in metres), seen from in front only: a path that travels 1 unit forward or turns its view
    away from the plane is refused, naming the frame. With a depth map each pixel is lifted to 3-D, reprojected into every
    camera and splatted with a z-buffer; what the move uncovers is filled from the
    background around it. The camera is fitted to the picture's size (one scale, centred).
    With an image the clip has the path's length; with a video, the video's (the camera
    holds its last pose)."""
    from .warp import apply_camera as run
    if near >= far and depth_type != "metric":
        raise NodeError(f"near ({near}) must be smaller than far ({far})")
    with user_errors():
        return run(camera, image=image, video=video, depth=depth, projection=projection, motion=motion,
                   border=border, depth_type=depth_type, near=near, far=far, fps=fps, distance=distance)


@node("motion.camera_flow", title="Camera Flow", category="Motion")
def camera_flow(ctx, camera: CAMERA,
                depth: IMAGE = Input(optional=True, help="depth map of the first frame, for parallax"),
                width: int = Param(0, zero="auto", min=0, max=16384, help="flow width; 0 = the camera's"),
                height: int = Param(0, zero="auto", min=0, max=16384, help="flow height; 0 = the camera's"),
                depth_type: str = DEPTH_TYPE, near: float = NEAR, far: float = FAR,
                fps: float = Param(24.0, min=0.01, max=1000, help="frame rate the flow is labelled with"),
                distance: float = Param(1.0, min=1e-3, max=1e6, help=DISTANCE_HELP)) -> FLOW:
    """The image motion a camera path causes, as flow fields (frame i to i+1).

    Feed it to noise warping or anything that takes a FLOW; with a depth map the flow has
    the parallax of a 3-D move."""
    from .flowfield import flow_from_camera
    from .warp import depth_to_z
    w, h = width or camera.width, height or camera.height
    with user_errors():
        z = depth_to_z(depth, w, h, depth_type, near, far) if depth is not None else None
        return flow_from_camera(camera, w, h, z, fps, distance)
