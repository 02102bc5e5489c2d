"""CAMERA: a per-frame pinhole camera, and the ways to build one.

Convention (one for all of Kinograph; converted at the edges when reading or writing
other formats):

- `intrinsics[i] = (fx, fy, cx, cy)` in pixels of a `width` x `height` image, pixel
  centres at +0.5 (the image centre is (width/2, height/2));
- `c2w[i]` is the 4x4 camera-to-world matrix of frame i; camera axes are OpenCV's:
  x right, y down, z forward (the viewing direction);
- paths built here start at the world origin looking down +z (frame 0 is the identity),
  so "world" means "the camera space of frame 0";
- the still picture of 2-D moves is a plane 1 unit in front of frame 0's camera, so
  translations are in units of that distance.

Rotations: pan (yaw) positive turns the camera right, tilt (pitch) positive turns it up,
roll positive turns it clockwise as seen through the camera (the picture then turns
counter-clockwise). The rotation of a frame is R_y(pan) @ R_x(tilt) @ R_z(roll), a
tripod head. Image-plane moves change the intrinsics only: `zoom` scales the focal
length (1.5 shows the centre magnified 1.5x) and `pan_x`/`pan_y` shift the principal
point, i.e. move the picture by that many pixels (positive: right / down).

Pure numpy: node modules, the editor and other areas import it freely.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

PRESETS = ("static", "pan_left", "pan_right", "pan_up", "pan_down", "tilt_up", "tilt_down",
           "zoom_in", "zoom_out", "dolly_in", "dolly_out", "roll_cw", "roll_ccw", "orbit_left", "orbit_right")
PRESET_EASINGS = ("linear", "ease_in", "ease_out", "ease_in_out")

# Per-frame amounts of each preset at speed 1 (about 2 seconds of clearly visible motion at 24 fps).
TRANSLATE_PER_FRAME = 0.01      # units of the picture's distance
ROTATE_PER_FRAME = 0.5          # degrees
ZOOM_PER_FRAME = 0.01           # 1% per frame, compounding
ORBIT_DISTANCE = 1.0

# CameraCtrl's default normalised intrinsics (RealEstate10K-like), used for files that give none.
CAMERACTRL_FX, CAMERACTRL_FY = 0.4748, 0.8441


@dataclass(frozen=True, eq=False)
class Camera:
    """Per-frame intrinsics [N,4] (fx, fy, cx, cy in pixels) and camera-to-world [N,4,4];
    see the module docstring for the axes."""
    intrinsics: np.ndarray
    c2w: np.ndarray
    width: int
    height: int

    def __post_init__(self):
        k = np.array(self.intrinsics, dtype=np.float64).reshape(-1, 4)
        m = np.array(self.c2w, dtype=np.float64).reshape(-1, 4, 4)
        if len(k) == 0 or len(k) != len(m):
            raise ValueError(f"a camera needs the same number (>= 1) of intrinsics and poses, "
                             f"got {len(k)} and {len(m)}")
        if not (np.isfinite(k).all() and np.isfinite(m).all()):
            raise ValueError("camera intrinsics and poses must be finite numbers")
        if (k[:, :2] <= 0).any():
            raise ValueError("camera focal lengths must be positive")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"camera image size must be positive, got {self.width}x{self.height}")
        k.setflags(write=False)
        m.setflags(write=False)
        object.__setattr__(self, "intrinsics", k)
        object.__setattr__(self, "c2w", m)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    # -- views ----------------------------------------------------------------------------
    @property
    def length(self) -> int:
        return len(self.intrinsics)

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"Camera({self.length} frames, {self.width}x{self.height})"

    def K(self, i: int) -> np.ndarray:
        fx, fy, cx, cy = self.intrinsics[i]
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])

    @property
    def w2c(self) -> np.ndarray:
        return invert_poses(self.c2w)

    @property
    def positions(self) -> np.ndarray:
        return self.c2w[:, :3, 3].copy()

    def relative(self) -> "Camera":
        """The same path expressed in frame 0's camera space (frame 0 becomes the identity)."""
        return Camera(self.intrinsics, invert_poses(self.c2w[:1]) @ self.c2w, self.width, self.height)

    def fitted(self, width: int, height: int) -> "Camera":
        """Intrinsics for a width x height picture covering the camera's frame with square
        pixels kept (one scale, the larger of the two ratios, about the centre): how a picture
        of another size or aspect is resized and centre-cropped to the camera's framing."""
        if (width, height) == (self.width, self.height):
            return self
        s = max(width / self.width, height / self.height)
        k = self.intrinsics.copy()
        k[:, :2] *= s
        k[:, 2] = width / 2 + (k[:, 2] - self.width / 2) * s
        k[:, 3] = height / 2 + (k[:, 3] - self.height / 2) * s
        return Camera(k, self.c2w, width, height)

    def scaled(self, s: float) -> "Camera":
        """The same path with every position (so every move) times s: a plane at distance d seen by
        this path looks as a plane at distance d * s seen by the scaled one."""
        m = self.c2w.copy()
        m[:, :3, 3] *= s
        return Camera(self.intrinsics, m, self.width, self.height)

    def frames(self, start: int, stop: int) -> "Camera":
        return Camera(self.intrinsics[start:stop], self.c2w[start:stop], self.width, self.height)

    def at(self, index: Sequence[int]) -> "Camera":
        idx = np.clip(np.asarray(index, dtype=int), 0, self.length - 1)
        return Camera(self.intrinsics[idx], self.c2w[idx], self.width, self.height)

    def relative_transform(self, i: int, j: int) -> np.ndarray:
        """4x4 mapping points from camera i's space to camera j's space (w2c_j @ c2w_i)."""
        return invert_poses(self.c2w[j:j + 1])[0] @ self.c2w[i]

    def allclose(self, other: "Camera", atol: float = 1e-6) -> bool:
        return (self.length == other.length and (self.width, self.height) == (other.width, other.height)
                and np.allclose(self.intrinsics, other.intrinsics, atol=atol)
                and np.allclose(self.c2w, other.c2w, atol=atol))


# ---------------------------------------------------------------------------------------
# rotations and poses

def invert_poses(m: np.ndarray) -> np.ndarray:
    """Inverse of rigid 4x4 transforms [..., 4, 4] (rotation transposed, translation rotated back)."""
    m = np.asarray(m, dtype=np.float64)
    r = m[..., :3, :3]
    rt = np.swapaxes(r, -1, -2)
    out = np.zeros_like(m)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", rt, m[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def rot_x(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(c), np.zeros_like(c)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(c), np.zeros_like(c)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(c), np.zeros_like(c)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def head_rotation(pan_deg, tilt_deg, roll_deg) -> np.ndarray:
    """Camera-to-world rotations [N,3,3] of a tripod head: R_y(pan) @ R_x(tilt) @ R_z(roll).

    Positive pan turns right, positive tilt turns up (forward goes toward -y), positive roll is
    clockwise seen through the camera."""
    p, t, r = (np.radians(np.asarray(v, dtype=np.float64)) for v in (pan_deg, tilt_deg, roll_deg))
    return rot_y(p) @ rot_x(t) @ rot_z(r)


def poses(rotations: np.ndarray, translations: np.ndarray) -> np.ndarray:
    n = len(rotations)
    m = np.tile(np.eye(4), (n, 1, 1))
    m[:, :3, :3] = rotations
    m[:, :3, 3] = translations
    return m


def focal_from_fov(fov_deg, width: int) -> np.ndarray:
    """Focal length in pixels for a horizontal field of view in degrees."""
    fov = np.asarray(fov_deg, dtype=np.float64)
    if (fov <= 0).any() or (fov >= 180).any():
        raise ValueError(f"field of view must be between 0 and 180 degrees, got {fov.min():g}..{fov.max():g}")
    return (width / 2.0) / np.tan(np.radians(fov) / 2.0)


# ---------------------------------------------------------------------------------------
# building paths

def from_components(width: int, height: int, *, fov=60.0, zoom=1.0, pan_x=0.0, pan_y=0.0,
                    translation=(0.0, 0.0, 0.0), rotation=(0.0, 0.0, 0.0), frames: Optional[int] = None
                    ) -> Camera:
    """A camera from per-frame components (each a scalar or an array over frames).

    translation = (x, y, z) position in frame-0 axes; rotation = (pan, tilt, roll) degrees;
    fov = horizontal field of view in degrees; zoom = focal-length scale; pan_x/pan_y =
    principal-point shift in pixels."""
    comps = [fov, zoom, pan_x, pan_y, *translation, *rotation]
    n = frames or max(np.size(c) for c in comps)
    fov, zoom, pan_x, pan_y, tx, ty, tz, rp, rt, rr = (np.broadcast_to(np.asarray(c, np.float64), (n,))
                                                       for c in comps)
    if (zoom <= 0).any():
        raise ValueError(f"zoom must stay above 0, got {zoom.min():g}")
    f = focal_from_fov(fov, width) * zoom
    k = np.stack([f, f, width / 2.0 + pan_x, height / 2.0 + pan_y], -1)
    return Camera(k, poses(head_rotation(rp, rt, rr), np.stack([tx, ty, tz], -1)), width, height)


def _progress(frames: int, easing: str) -> np.ndarray:
    """Motion in 'frames at full speed': 0 .. frames-1, reshaped by the easing."""
    from graph_engine.schedule import ease
    if easing not in PRESET_EASINGS:
        raise ValueError(f"unknown easing {easing!r}; use one of {', '.join(PRESET_EASINGS)}")
    if frames < 2:
        return np.zeros(frames)
    u = np.arange(frames) / (frames - 1)
    return np.array([ease(easing, x) for x in u]) * (frames - 1)


def preset(name: str, frames: int, width: int, height: int, *, speed: float = 1.0, easing: str = "linear",
           fov: float = 60.0) -> Camera:
    """A named camera move over `frames` frames; `speed` scales the per-frame amounts
    (TRANSLATE_PER_FRAME, ROTATE_PER_FRAME, ZOOM_PER_FRAME), `easing` redistributes the
    same total motion over time. pan_* moves the camera sideways/up/down (a truck or
    pedestal, as camera-control models name it); tilt_* turns it; orbit_* circles a point
    ORBIT_DISTANCE ahead while looking at it."""
    if name not in PRESETS:
        raise ValueError(f"unknown camera preset {name!r}; use one of {', '.join(PRESETS)}")
    if frames < 1:
        raise ValueError(f"a camera path needs at least 1 frame, got {frames}")
    s = _progress(frames, easing) * speed
    zero = np.zeros(frames)
    d = TRANSLATE_PER_FRAME * s
    a = ROTATE_PER_FRAME * s
    kw = {}
    if name == "pan_left":
        kw["translation"] = (-d, zero, zero)
    elif name == "pan_right":
        kw["translation"] = (d, zero, zero)
    elif name == "pan_up":
        kw["translation"] = (zero, -d, zero)
    elif name == "pan_down":
        kw["translation"] = (zero, d, zero)
    elif name == "dolly_in":
        kw["translation"] = (zero, zero, d)
    elif name == "dolly_out":
        kw["translation"] = (zero, zero, -d)
    elif name in ("tilt_up", "tilt_down"):
        kw["rotation"] = (zero, a if name == "tilt_up" else -a, zero)
    elif name in ("roll_cw", "roll_ccw"):
        kw["rotation"] = (zero, zero, a if name == "roll_cw" else -a)
    elif name in ("zoom_in", "zoom_out"):
        kw["zoom"] = (1.0 + ZOOM_PER_FRAME) ** (s if name == "zoom_in" else -s)
    elif name in ("orbit_left", "orbit_right"):
        # Moving left around the target means turning right to keep looking at it.
        th = np.radians(a if name == "orbit_left" else -a)
        r = ORBIT_DISTANCE
        kw["translation"] = (-r * np.sin(th), zero, r - r * np.cos(th))
        kw["rotation"] = (np.degrees(th), zero, zero)
    return from_components(width, height, fov=fov, frames=frames, **kw)


# Wan Fun camera-control presets, as VideoX-Fun defined them and ComfyUI's WanCameraEmbedding uses them:
# over `frames` frames the camera moves linearly, frame i at i/frames of the full move (so the last frame
# stops one step short), the full move being speed * WAN_TRAVEL units along the direction or speed *
# WAN_TURN degrees of roll. "zoom" moves the camera forward/back (a dolly), the focal length stays.
WAN_PRESETS = {"static": ((0, 0, 0), 0), "pan_up": ((0, -1, 0), 0), "pan_down": ((0, 1, 0), 0),
               "pan_left": ((-1, 0, 0), 0), "pan_right": ((1, 0, 0), 0), "zoom_in": ((0, 0, 2), 0),
               "zoom_out": ((0, 0, -2), 0), "anticlockwise": ((0, 0, 0), -1), "clockwise": ((0, 0, 0), 1)}
WAN_TRAVEL = 1.5
WAN_TURN = 60.0
# The presets' intrinsics are fractions of a 1280x720 picture, fitted (covering, centred) to the output.
WAN_POSE_SIZE = (1280, 720)


def wan_preset(name: str, frames: int, width: int, height: int, *, speed: float = 1.0, fx: float = 0.5,
               fy: float = 0.5, cx: float = 0.5, cy: float = 0.5) -> Camera:
    """A Wan Fun camera-control preset (see WAN_PRESETS) as a Camera of width x height.

    fx, fy are focal lengths as fractions of WAN_POSE_SIZE's width and height (so 0.5, 0.5 is not
    square: the presets were made that way); cx, cy place the principal point as fractions of the
    output picture."""
    if name not in WAN_PRESETS:
        raise ValueError(f"unknown Wan camera preset {name!r}; use one of {', '.join(WAN_PRESETS)}")
    if frames < 1:
        raise ValueError(f"a camera path needs at least 1 frame, got {frames}")
    direction, turn = WAN_PRESETS[name]
    u = np.arange(frames) / frames * speed
    c2w = poses(rot_z(np.radians(u * WAN_TURN * turn)), np.outer(u * WAN_TRAVEL, direction))
    pw, ph = WAN_POSE_SIZE
    k = Camera(np.tile([fx * pw, fy * ph, pw / 2, ph / 2], (frames, 1)), c2w, pw, ph).fitted(width, height)
    k = k.intrinsics.copy()
    k[:, 2], k[:, 3] = cx * width, cy * height
    return Camera(k, c2w, width, height)


def combine(a: Camera, b: Camera) -> Camera:
    """Apply b's motion (relative to its first frame) on top of a, frame by frame.

    Poses compose in a's local frame; focal lengths multiply by b's change, principal points
    shift by b's change. The shorter path holds its last frame."""
    b = b.fitted(a.width, a.height)
    n = max(a.length, b.length)
    a, b = a.at(range(n)), b.at(range(n))
    rel = invert_poses(b.c2w[:1]) @ b.c2w
    k = a.intrinsics.copy()
    k[:, :2] *= b.intrinsics[:, :2] / b.intrinsics[:1, :2]
    k[:, 2:] += b.intrinsics[:, 2:] - b.intrinsics[:1, 2:]
    return Camera(k, a.c2w @ rel, a.width, a.height)


def chain(a: Camera, b: Camera) -> Camera:
    """b's motion continues from a's last frame: a.length + b.length - 1 frames (b's first
    frame coincides with a's last, so the join does not stutter)."""
    b = b.fitted(a.width, a.height)
    last = a.frames(a.length - 1, a.length)
    tail = combine(last, b).frames(1, b.length)
    return Camera(np.concatenate([a.intrinsics, tail.intrinsics]), np.concatenate([a.c2w, tail.c2w]),
                  a.width, a.height)


def from_schedules(frames: int, width: int, height: int, *, fov=60.0, zoom=1.0, pan_x=0.0, pan_y=0.0,
                   translation_x=0.0, translation_y=0.0, translation_z=0.0,
                   rotation_pan=0.0, rotation_tilt=0.0, rotation_roll=0.0, per_frame: bool = False) -> Camera:
    """A camera whose components are schedules (Schedule objects, their text, or numbers).

    per_frame=False: each value is where the camera is at that frame (relative to frame 0).
    per_frame=True (Deforum's convention): each value is the step from the previous frame to this
    one, accumulated: zoom multiplies (1.02 = 2% more every frame), pan_x/pan_y shift the previous frame's
    picture (which the frame's zoom and roll then scale and turn, as Deforum's 2-D steps do), and the
    translation and rotation of each step are made in the camera's own axes of the previous frame
    (a turn while moving forward curves the path). fov stays a plain value per frame."""
    from graph_engine.schedule import parse_schedule
    if frames < 1:
        raise ValueError(f"a camera path needs at least 1 frame, got {frames}")

    def v(x):
        return parse_schedule(x).values(frames)
    moves = dict(zoom=v(zoom), pan_x=v(pan_x), pan_y=v(pan_y),
                 translation=(v(translation_x), v(translation_y), v(translation_z)),
                 rotation=(v(rotation_pan), v(rotation_tilt), v(rotation_roll)))
    if not per_frame:
        return from_components(width, height, fov=v(fov), frames=frames, **moves)
    after = np.arange(frames) > 0          # frame 0 is where the path starts: its step values are unused
    step = from_components(width, height, zoom=np.where(after, moves["zoom"], 1.0),
                           translation=[np.where(after, c, 0.0) for c in moves["translation"]],
                           rotation=[np.where(after, c, 0.0) for c in moves["rotation"]], frames=frames)
    c2w = step.c2w.copy()
    for i in range(1, frames):
        c2w[i] = c2w[i - 1] @ step.c2w[i]
    zooms = np.cumprod(step.intrinsics[:, 0] / step.intrinsics[0, 0])
    fovs = v(fov)
    still = from_components(width, height, fov=fovs, zoom=zooms, frames=frames)
    pan = step_pans(still.intrinsics[:, 0], moves["rotation"][2], np.where(after, moves["pan_x"], 0.0),
                    np.where(after, moves["pan_y"], 0.0))
    cam = from_components(width, height, fov=fovs, zoom=zooms, frames=frames, pan_x=pan[:, 0], pan_y=pan[:, 1])
    return Camera(cam.intrinsics, c2w, width, height)


def step_pans(focal: np.ndarray, roll_steps: np.ndarray, step_x: np.ndarray, step_y: np.ndarray) -> np.ndarray:
    """Principal-point shifts [frames, 2] for pans made in steps, each in the previous frame's pixels: the
    shift so far and this step's are zoomed and rolled with the frame, as Deforum's 2-D move does (frame i is
    frame i-1 shifted, then turned and zoomed about the centre). Added up without that, a pan with a zoom
    slowed down and turned back: 5 pixels a frame with zoom 1.04 went the other way after 26 frames."""
    pan = np.zeros((len(focal), 2))
    for i in range(1, len(focal)):
        th = math.radians(roll_steps[i])
        # a positive roll turns the picture counter-clockwise on screen (y down)
        a = focal[i] / focal[i - 1] * np.array([[math.cos(th), math.sin(th)], [-math.sin(th), math.cos(th)]])
        pan[i] = a @ (pan[i - 1] + (step_x[i], step_y[i]))
    return pan


# What each move of from_schedules is when it does not move the camera.
REST = {"zoom": 1.0, "pan_x": 0.0, "pan_y": 0.0, "translation_x": 0.0, "translation_y": 0.0, "translation_z": 0.0,
        "rotation_pan": 0.0, "rotation_tilt": 0.0, "rotation_roll": 0.0}


def held_moves(frames: int, **schedules) -> str:
    """A note naming the moves whose schedule holds one value other than their rest on every frame,
    or "". As places relative to frame 0 they do not move the camera at all: the Deforum habit of
    zoom 1.02 meaning 2% more each frame (per_frame) gave a still camera without a word."""
    from graph_engine.schedule import parse_schedule
    held = []
    for name, rest in REST.items():
        vals = parse_schedule(schedules.get(name, rest)).values(max(frames, 2))
        if np.all(vals == vals[0]) and vals[0] != rest:
            held.append(f"{name} {vals[0]:g}")
    if not held:
        return ""
    return (f"{', '.join(held)} on every frame: the moves are places relative to frame 0, so "
            f"{'this does' if len(held) == 1 else 'these do'} not move the camera. For Deforum-style steps "
            f"(zoom 1.02 = 2% more every frame) set schedules: per_frame; to move, give keyframes such as "
            f"'0:(1), {max(frames, 2) - 1}:(1.5)'")


def keys_past_end(frames: int, **schedules) -> List[str]:
    """A note for each move with a keyframe after the path's last frame, which the move never reaches: 4 seconds at
    24 fps is frames 0 to 95, and the end key a Blender or Deforum user writes at 96 left the push-in short of its
    value without a word."""
    from graph_engine.schedule import parse_schedule
    last = frames - 1
    notes = []
    for name, value in schedules.items():
        sched = parse_schedule(value)
        late = [k.frame for k in sched.keyframes if k.frame > last]
        if late and last > 0:
            notes.append(f"{name} has a keyframe at frame {late[0]}, past the path's last frame ({last}: frames are "
                         f"counted from 0), so the move stops short of it ({name} {sched(last):.4g} at frame {last}). "
                         f"Put the key at frame {last}, or set frames to {late[-1] + 1}")
    return notes


def build_path(frames: int, width: int, height: int, *, preset_name: str = "static", speed: float = 1.0,
               easing: str = "linear", pose_file: str = "", rotation_order: str = "ZXY", per_frame: bool = False,
               **schedules) -> Camera:
    """What `motion.camera_path` makes: a pose file (or the origin) moved by the schedules
    (see `from_schedules`), then by the preset, each in the previous one's local frame. A .chan
    file without a field-of-view column takes the fov schedule's first value."""
    if pose_file:
        from graph_engine.schedule import parse_schedule
        hfov = float(parse_schedule(schedules.get("fov", 60.0))(0))
        base = read_pose_file(pose_file, width, height, rotation_order, hfov).fitted(width, height)
        frames = base.length
        cam = combine(base, from_schedules(frames, width, height, per_frame=per_frame, **schedules))
    else:
        cam = from_schedules(frames, width, height, per_frame=per_frame, **schedules)
    if preset_name != "static":
        fov0 = math.degrees(2 * math.atan(width / 2 / cam.intrinsics[0, 0]))
        cam = combine(cam, preset(preset_name, frames, width, height, speed=speed, easing=easing, fov=fov0))
    return cam


# ---------------------------------------------------------------------------------------
# CameraCtrl pose files: per line `frame fx fy cx cy w h <3x4 world-to-camera, row-major>`
# with intrinsics normalised by the image size; the first line is a header (a URL in
# RealEstate10K) that CameraCtrl skips, so a header is always written.

def read_pose_file(path: str, width: int = 0, height: int = 0, rotation_order: str = "ZXY",
                   hfov: float = 60.0) -> Camera:
    """Read a camera file: a CameraCtrl / RealEstate10K pose file, or a Nuke .chan file (told apart by
    their columns; see camera_files). The image size comes from a pose file's w, h columns when they
    are set, else from width/height (required then); rotation_order and hfov are for .chan files."""
    from .camera_files import read_camera_file
    return read_camera_file(path, width, height, rotation_order, hfov)


def camera_from_pose_rows(rows: np.ndarray, width: int = 0, height: int = 0, source: str = "pose rows") -> Camera:
    rows = np.asarray(rows, dtype=np.float64)
    w_col, h_col = rows[0, 5], rows[0, 6]
    w = int(round(w_col)) if w_col > 1 else int(width)
    h = int(round(h_col)) if h_col > 1 else int(height)
    if w <= 0 or h <= 0:
        raise ValueError(f"{source} does not give the image size (its w, h columns are 0); "
                         f"set width and height")
    k = rows[:, 1:5] * np.array([w, h, w, h])
    w2c = np.tile(np.eye(4), (len(rows), 1, 1))
    w2c[:, :3, :] = rows[:, 7:19].reshape(-1, 3, 4)
    if np.abs(np.linalg.det(w2c[:, :3, :3]) - 1).max() > 1e-3:
        raise ValueError(f"{source}: the 3x3 part of each pose must be a rotation (determinant 1)")
    return Camera(k, invert_poses(w2c), w, h)


def pose_rows(cam: Camera) -> np.ndarray:
    """[N, 19] rows of the CameraCtrl format (frame column 0, normalised intrinsics, w, h, w2c)."""
    n = cam.length
    rows = np.zeros((n, 19))
    rows[:, 1:5] = cam.intrinsics / np.array([cam.width, cam.height, cam.width, cam.height])
    rows[:, 5], rows[:, 6] = cam.width, cam.height
    rows[:, 7:19] = cam.w2c[:, :3, :].reshape(n, 12)
    return rows


def write_pose_file(cam: Camera, path: str, overwrite: bool = False) -> str:
    rows = pose_rows(cam)
    lines = [f"# Kinograph camera path: {cam.length} frames, {cam.width}x{cam.height}, "
             f"normalised intrinsics, world-to-camera, OpenCV axes (x right, y down, z forward)"]
    rows[rows == 0] = 0.0     # no "-0" in the file
    for r in rows:
        lines.append(" ".join(["0"] + [f"{v:.9g}" for v in r[1:5]] + [str(int(r[5])), str(int(r[6]))]
                              + [f"{v:.9g}" for v in r[7:]]))
    from graph_engine.atomic import write_text
    write_text(path, "\n".join(lines) + "\n", overwrite=overwrite)
    return path


def homography(cam: Camera, i: int, j: int = 0, plane_depth: float = 1.0) -> np.ndarray:
    """3x3 map from frame j's pixels to frame i's pixels for the fronto-parallel plane
    `plane_depth` in front of camera j (continuous pixel coordinates, centres at +0.5)."""
    rel = cam.relative_transform(j, i)
    r, t = rel[:3, :3], rel[:3, 3]
    n = np.array([0.0, 0.0, 1.0])
    h = cam.K(i) @ (r + np.outer(t, n) / plane_depth) @ np.linalg.inv(cam.K(j))
    return h / h[2, 2]


def describe(cam: Camera) -> str:
    p = cam.positions
    travel = float(np.linalg.norm(p[-1] - p[0]))
    f0, f1 = cam.intrinsics[0, 0], cam.intrinsics[-1, 0]
    ang = math.degrees(math.acos(np.clip((np.trace(cam.relative_transform(0, cam.length - 1)[:3, :3]) - 1) / 2,
                                         -1, 1)))
    return (f"{cam.length} frames at {cam.width}x{cam.height}; travel {travel:.3g} units, turn {ang:.3g} deg, "
            f"zoom x{f1 / f0:.3g}")
