"""Camera files from other tools, read into Kinograph's convention (see camera.py).

The format is told by the content, not the extension (a .txt export of a .chan, a pose file
saved as .cam are common):

- CameraCtrl / RealEstate10K pose files: 19 numbers a line, `frame fx fy cx cy w h` (intrinsics
  divided by the image size) and the 3x4 world-to-camera matrix, OpenCV axes; a first line of
  text (a URL) is a header.
- Nuke .chan files (also written by Blender's "Nuke (.chan)" export, Houdini, 3DEqualizer):
  7 or 8 numbers a line, `frame tx ty tz rx ry rz [vertical fov]`. Translations in scene units,
  rotations in degrees applied in `rotation_order` (Nuke's cameras default to ZXY, Blender's
  export to XYZ; the file does not say which), Y-up world, the camera looking down -Z (OpenGL
  axes; the world is turned to Kinograph's y-down, z-forward one, so a camera at rest is one at
  Kinograph's origin). The 8th column is the vertical field of view in degrees; without it the camera gets
  `hfov`. Frame numbers may start anywhere (1, 1001): the first line is frame 0 of the path,
  and a gap in the numbers is refused rather than silently closed up.

- COLMAP text models: images.txt (with cameras.txt beside it for the lens), or their folder; see
  colmap_camera.
- JSON: nerfstudio's camera_path.json or a NeRF / instant-ngp / nerfstudio transforms.json
  (see json_camera), OpenGL camera axes like .chan.

Every line is checked for numbers that are not finite, and errors name the file and line."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import List, Tuple

import numpy as np

from .camera import Camera, camera_from_pose_rows, focal_from_fov, invert_poses, poses, rot_x, rot_y, rot_z

CHAN_ROTATION_ORDERS = ("ZXY", "XYZ", "XZY", "YXZ", "YZX", "ZYX")
# OpenGL camera axes (x right, y up, looking down -z) to OpenCV's (x right, y down, z forward); the same
# flip takes a Y-up world to Kinograph's y-down one, so Nuke's camera at rest is Kinograph's frame 0.
FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])
FORMATS = ("a CameraCtrl / RealEstate10K pose file (19 numbers a line: frame fx fy cx cy w h and a 3x4 "
           "world-to-camera matrix), a Nuke .chan file (7 or 8: frame tx ty tz rx ry rz and the vertical "
           "field of view), a COLMAP images.txt, or a nerfstudio camera_path.json / NeRF transforms.json")


def read_text(path: str) -> str:
    raw = Path(path).read_bytes()
    if b"\0" in raw[:8192]:
        raise ValueError(f"{path} is not a text file; a camera file is {FORMATS}")
    # utf-8-sig: a byte-order mark (Windows editors write one) made the first pose line read as a header
    # and dropped frame 0 without a word. Numbers are ASCII, so undecodable bytes can only be in comments.
    return raw.decode("utf-8-sig", errors="replace")


def number_lines(path: str, text: str) -> List[Tuple[int, List[float]]]:
    """(line number, numbers) of each line of numbers; blank lines and # comments skipped. A first line
    of text is a header (RealEstate10K's URL); text after numbers have started is an error."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            if not rows:    # the header line (a URL or a title)
                continue
            raise ValueError(f"{path}, line {lineno}: expected numbers, found text that is not a number") from None
        if not all(map(math.isfinite, vals)):
            raise ValueError(f"{path}, line {lineno}: {' '.join(p for p, v in zip(parts, vals) if not math.isfinite(v))}"
                             f" is not a number a camera can have; fix or remove the line")
        rows.append((lineno, vals))
    if not rows:
        raise ValueError(f"{path}: no lines of numbers found; a camera file is {FORMATS}")
    return rows


def read_camera_file(path: str, width: int = 0, height: int = 0, rotation_order: str = "ZXY",
                     hfov: float = 60.0) -> Camera:
    """A camera path from any of the formats of the module docstring, told apart by their content.
    width/height: the picture size (a .chan file has none; a file's own size wins when it has one)."""
    if Path(path).is_dir():
        # A COLMAP sparse model's folder: as a path param a folder is fingerprinted whole, so editing its
        # cameras.txt re-runs the node (given images.txt, only that file is watched).
        if not (Path(path) / "images.txt").is_file():
            raise ValueError(f"{path} is a folder without a COLMAP images.txt; a camera file is {FORMATS}")
        path = str(Path(path) / "images.txt")
    text = read_text(path)
    if text.lstrip()[:1] in ("{", "["):
        return json_camera(path, text, width, height)
    images = colmap_images(text)
    if images:
        return colmap_camera(path, images, width, height, hfov)
    rows = number_lines(path, text)
    lineno, first = rows[0]
    for n, vals in rows:
        if len(vals) != len(first):
            raise ValueError(f"{path}, line {n}: {len(vals)} numbers where line {lineno} has {len(first)}; "
                             f"every line of a camera file has the same columns")
    if len(first) == 19:
        return camera_from_pose_rows(np.array([v for _, v in rows]), width, height, source=str(path))
    if len(first) in (7, 8):
        return chan_camera(np.array([v for _, v in rows]), width, height, rotation_order, hfov, str(path),
                           [n for n, _ in rows])
    raise ValueError(f"{path}, line {lineno}: {len(first)} numbers; a camera file is {FORMATS}")


def _is_number(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def colmap_images(text: str) -> list:
    """The image lines of a COLMAP images.txt, `IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME` (each
    followed by a line of 2-D points, all numbers), as (name, camera id, [qw qx qy qz tx ty tz]); []
    when the text is not one."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 10 and not parts[0].startswith("#") and all(map(_is_number, parts[:9])) \
                and not _is_number(parts[9]):
            out.append((" ".join(parts[9:]), parts[8], [float(v) for v in parts[1:8]]))
    return out


def colmap_camera(path: str, images: list, width: int = 0, height: int = 0, hfov: float = 60.0) -> Camera:
    """A COLMAP sparse model's images.txt (world-to-camera quaternion and translation, OpenCV axes like
    Kinograph's) as a path through its images in file-name order, numbers as numbers. The lens and
    picture size come from cameras.txt beside it (PINHOLE, SIMPLE_PINHOLE, SIMPLE_RADIAL, RADIAL,
    OPENCV...: distortion is ignored); without one, from width, height and hfov."""
    from scipy.spatial.transform import Rotation
    images = sorted(images, key=lambda im: _natural({"file_path": im[0]}))
    lenses = _colmap_cameras(Path(path).with_name("cameras.txt"))
    if not lenses and (width <= 0 or height <= 0):
        raise ValueError(f"{path}: there is no cameras.txt beside it to give the picture size; set width and height")
    size = next(iter(lenses.values()))[0] if lenses else (width, height)
    k = []
    for name, cam_id, _ in images:
        if lenses and cam_id not in lenses:
            raise ValueError(f"{path}: image {name} uses camera {cam_id}, which cameras.txt does not list")
        if lenses and lenses[cam_id][0] != size:
            raise ValueError(f"{path}: the images come from cameras of different sizes ({size[0]}x{size[1]} and "
                             f"{lenses[cam_id][0][0]}x{lenses[cam_id][0][1]}); a camera path has one picture size")
        k.append(lenses[cam_id][1] if lenses else [float(focal_from_fov(hfov, size[0]))] * 2 + [size[0] / 2, size[1] / 2])
    q = np.array([im[2] for im in images])
    w2c = poses(Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix(), q[:, 4:7])   # scipy: x y z w
    return Camera(np.array(k), invert_poses(w2c), *size)


def _colmap_cameras(path: Path) -> dict:
    """camera id -> ((width, height), [fx, fy, cx, cy]) from a COLMAP cameras.txt, {} if there is none."""
    if not path.is_file():
        return {}
    out = {}
    for line in read_text(str(path)).splitlines():
        parts = line.split()
        if len(parts) < 7 or parts[0].startswith("#"):
            continue
        model, (w, h), p = parts[1], (int(parts[2]), int(parts[3])), [float(v) for v in parts[4:]]
        # SIMPLE_* and RADIAL* models have one focal length; the rest fx, fy
        f = [p[0], p[0], p[1], p[2]] if model.startswith(("SIMPLE", "RADIAL")) else p[:4]
        out[parts[0]] = ((w, h), f)
    return out


def from_y_up(c2w: np.ndarray) -> np.ndarray:
    """Camera-to-world matrices of OpenGL cameras in a Y-up world (Nuke, Blender's exports, NeRF
    data) in Kinograph's axes."""
    return FLIP_YZ @ c2w @ FLIP_YZ


def json_camera(path: str, text: str, width: int = 0, height: int = 0) -> Camera:
    """nerfstudio's camera_path.json (its viewer's render paths: `camera_path` entries with a row-major
    `camera_to_world` and a vertical `fov` in degrees) or a NeRF / instant-ngp / nerfstudio
    transforms.json (`frames` with a 4x4 `transform_matrix`, ordered by file name, numbers as numbers;
    intrinsics from fl_x, fl_y, cx, cy or the horizontal `camera_angle_x` in radians). Both use OpenGL
    camera axes. The picture size is the file's (render_width/height, w/h), else width and height."""
    import json
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("camera_path", doc.get("frames")), list):
        raise ValueError(f"{path} is JSON but neither a nerfstudio camera_path.json (a 'camera_path' list) nor a "
                         f"transforms.json (a 'frames' list); a camera file is one of those, {FORMATS}")
    nerfstudio = "camera_path" in doc
    w = int(doc.get("render_width" if nerfstudio else "w", 0)) or width
    h = int(doc.get("render_height" if nerfstudio else "h", 0)) or height
    if w <= 0 or h <= 0:
        raise ValueError(f"{path} does not give the picture size; set width and height")
    try:
        if nerfstudio:
            entries = doc["camera_path"]
            c2w = [np.reshape(np.asarray(e["camera_to_world"], np.float64), (4, 4)) for e in entries]
            k = [[f, f, w / 2, h / 2] for f in (focal_from_fov(float(e["fov"]), h) for e in entries)]
        else:
            entries = sorted(doc["frames"], key=_natural)
            c2w = [np.asarray(e["transform_matrix"], np.float64)[:4, :4] for e in entries]
            k = [_nerf_intrinsics({**doc, **e}, w, h, path) for e in entries]     # a frame's own values win
    except (KeyError, TypeError, ValueError) as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: a camera entry lacks {e} or has it in the wrong shape") from None
    if not entries:
        raise ValueError(f"{path}: the camera list is empty")
    if not (np.isfinite(c2w).all() and np.isfinite(k).all()):
        raise ValueError(f"{path}: a camera holds a value that is not a number")
    return Camera(np.array(k), from_y_up(np.array(c2w)), w, h)


def _natural(entry: dict) -> list:
    """Sort key of a frame by its file name, numbers as numbers: frame_10 after frame_9."""
    return [int(t) if t.isdecimal() else t for t in re.split(r"(\d+)", str(entry.get("file_path", "")))]


def _nerf_intrinsics(d: dict, w: int, h: int, path: str) -> list:
    if "fl_x" in d:
        fx = float(d["fl_x"])
    elif "camera_angle_x" in d:
        angle = float(d["camera_angle_x"])
        if not 0 < angle < math.pi:
            raise ValueError(f"{path}: camera_angle_x is the horizontal field of view in radians (NeRF's convention), "
                             f"between 0 and pi; {angle:g} is not one{' (degrees?)' if angle >= math.pi else ''}")
        fx = w / 2 / math.tan(angle / 2)
    else:
        raise KeyError("fl_x or camera_angle_x")
    return [fx, float(d.get("fl_y", fx)), float(d.get("cx", w / 2)), float(d.get("cy", h / 2))]


def chan_camera(rows: np.ndarray, width: int, height: int, rotation_order: str = "ZXY", hfov: float = 60.0,
                source: str = ".chan rows", linenos=None) -> Camera:
    """Rows of a .chan file ([N, 7] or [N, 8], see the module docstring) as a Camera of width x height."""
    if rotation_order not in CHAN_ROTATION_ORDERS:
        raise ValueError(f"unknown rotation order {rotation_order!r}; use one of {', '.join(CHAN_ROTATION_ORDERS)}")
    if width <= 0 or height <= 0:
        raise ValueError(f"{source} does not give the picture size; set width and height")
    frame = rows[:, 0]
    steps = np.diff(frame)
    if len(steps) and not np.all(steps == 1):
        k = int(np.argmax(steps != 1))
        where = f"line {linenos[k + 1]}: " if linenos else ""
        raise ValueError(f"{source}, {where}the frame numbers go from {frame[k]:g} to {frame[k + 1]:g}; a .chan "
                         f"file has one line per frame, in order: export every frame (step 1)")
    angles = {axis: np.radians(rows[:, 4 + i]) for i, axis in enumerate("XYZ")}
    turn = {"X": rot_x, "Y": rot_y, "Z": rot_z}
    r = np.tile(np.eye(3), (len(rows), 1, 1))
    for axis in rotation_order:     # the first letter turns first (about the fixed world axes)
        r = turn[axis](angles[axis]) @ r
    c2w = from_y_up(poses(r, rows[:, 1:4]))
    if rows.shape[1] == 8:
        vfov = rows[:, 7]
        if (vfov <= 0).any() or (vfov >= 180).any():
            raise ValueError(f"{source}: the 8th column is the vertical field of view in degrees (between 0 and "
                             f"180), got {vfov.min():g}..{vfov.max():g}")
        f = focal_from_fov(vfov, height)
    else:
        f = np.full(len(rows), float(focal_from_fov(hfov, width)))
    k = np.stack([f, f, np.full_like(f, width / 2.0), np.full_like(f, height / 2.0)], -1)
    return Camera(k, c2w, width, height)



def chan_rows(cam: Camera, rotation_order: str = "ZXY", first_frame: int = 1) -> np.ndarray:
    """The inverse of chan_camera: [N, 8] rows `frame tx ty tz rx ry rz vfov` of a .chan file."""
    from scipy.spatial.transform import Rotation
    if rotation_order not in CHAN_ROTATION_ORDERS:
        raise ValueError(f"unknown rotation order {rotation_order!r}; use one of {', '.join(CHAN_ROTATION_ORDERS)}")
    gl = from_y_up(cam.c2w)     # the flip is its own inverse
    seq = Rotation.from_matrix(gl[:, :3, :3]).as_euler(rotation_order.lower(), degrees=True)
    rot = np.stack([seq[:, rotation_order.index(axis)] for axis in "XYZ"], -1)
    vfov = np.degrees(2 * np.arctan(cam.height / 2.0 / cam.intrinsics[:, 1]))
    return np.column_stack([np.arange(cam.length) + first_frame, gl[:, :3, 3], rot, vfov])


def write_chan(cam: Camera, path: str, rotation_order: str = "ZXY", first_frame: int = 1,
               overwrite: bool = False) -> str:
    """Write a .chan file (tab-separated, as Nuke and Blender write them). It has no place for the
    principal point or non-square focal lengths: see chan_losses."""
    lines = ["\t".join([str(int(r[0]))] + [f"{v:.9g}" for v in r[1:]]) for r in chan_rows(cam, rotation_order, first_frame)]
    from graph_engine.atomic import write_text
    write_text(path, "\n".join(lines) + "\n", overwrite=overwrite)
    return path


def chan_losses(cam: Camera) -> str:
    """What a .chan file cannot hold of this camera, in words, or ""."""
    k = cam.intrinsics
    lost = []
    if np.abs(k[:, 2] - cam.width / 2).max() > 1e-3 or np.abs(k[:, 3] - cam.height / 2).max() > 1e-3:
        lost.append("the principal point shifts (pan_x, pan_y)")
    if np.abs(k[:, 0] / k[:, 1] - 1).max() > 1e-6:
        lost.append("non-square focal lengths (the vertical field of view is kept)")
    return f"a .chan file has no place for {' or '.join(lost)}; they are left out" if lost else ""
