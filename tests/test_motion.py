"""Camera paths, applying them, camera conditioning, tracks, brushes and flow."""
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from graph_engine import Clip, NodeError
from graph_engine.api import Session, load_workflow
from nodes.motion import camera as cm
from nodes.motion.flowfield import brush_flow, flow_from_camera, flow_from_video
from nodes.motion.tracks import parse_tracks, tracks_to_flow
from nodes.motion.warp import apply_camera, camera_flow, reproject

SAMPLES = Path(__file__).resolve().parent.parent / "resources" / "samples"


def photo(name="coffee.png", width=None):
    img = cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2RGB)
    if width:
        img = cv2.resize(img, (width, round(img.shape[0] * width / img.shape[1])), interpolation=cv2.INTER_AREA)
    return img


def similarity(a, b):
    """Independent measure: SIFT matches + RANSAC similarity from a to b -> (scale, degrees, tx, ty)."""
    sift = cv2.SIFT_create(3000)
    ka, da = sift.detectAndCompute(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), None)
    kb, db = sift.detectAndCompute(cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), None)
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
    good = [m for m, n in pairs if m.distance < 0.75 * n.distance]
    pa = np.float32([ka[m.queryIdx].pt for m in good])
    pb = np.float32([kb[m.trainIdx].pt for m in good])
    m, inliers = cv2.estimateAffinePartial2D(pa, pb, method=cv2.RANSAC, ransacReprojThreshold=1.5)
    assert inliers.sum() >= 20, "too few feature matches to measure"
    return math.hypot(m[0, 0], m[1, 0]), math.degrees(math.atan2(m[1, 0], m[0, 0])), m[0, 2], m[1, 2]


def run(text):
    r = Session(use_disk=False).run(load_workflow(text=text))
    assert r.ok, r.failed
    return r


# ---------------------------------------------------------------------------------------
# the must-shows

def test_zoom_of_a_real_photo_measures_1_5():
    r = run(f"""
kinograph: 1
nodes:
  photo: {{type: io.load_image, params: {{path: {SAMPLES / 'coffee.png'}}}}}
  cam:   {{type: motion.camera_path, params: {{frames: 25, width: 600, height: 400, zoom: "0:(1.0), 24:(1.5)"}}}}
  move:  {{type: motion.apply_camera, inputs: {{image: photo.image, camera: cam.camera}}}}
""")
    clip = r.outputs["move"]["video"]
    assert isinstance(clip, Clip) and clip.length == 25 and (clip.width, clip.height) == (600, 400)
    scale, angle, _, _ = similarity(clip.frame(0), clip.frame(24))
    assert abs(scale - 1.5) / 1.5 < 0.02, scale
    assert abs(angle) < 0.5
    mid, *_ = similarity(clip.frame(0), clip.frame(12))
    assert abs(mid - 1.25) < 0.02


def test_image_plane_pan_measures_known_pixels_per_frame():
    img = photo("chelsea.png")
    h, w = img.shape[:2]
    cam = cm.build_path(13, w, h, pan_x="0:(0), 12:(30)", pan_y="-1.5*t")     # 2.5 px and -1.5 px per frame
    clip = apply_camera(cam, image=img)
    frames = clip.to_array()
    for i in (0, 5, 11):
        s, ang, tx, ty = similarity(frames[i], frames[i + 1])
        assert abs(tx - 2.5) < 0.5 and abs(ty + 1.5) < 0.5, (i, tx, ty)
        assert abs(s - 1) < 0.01
    _, _, tx, ty = similarity(frames[0], frames[12])
    assert abs(tx - 30) < 0.5 and abs(ty + 18) < 0.5


def test_preset_pan_moves_by_focal_times_distance():
    # pan_right moves the camera 0.01 * speed units per frame; the picture plane is 1 unit away,
    # so the picture moves left by fx * 0.01 * speed pixels per frame
    img = photo("astronaut.png", 256)
    cam = cm.preset("pan_right", 6, 256, 256, speed=2.0, fov=60)
    px = cam.intrinsics[0, 0] * 0.01 * 2.0
    frames = apply_camera(cam, image=img).to_array()
    _, _, tx, ty = similarity(frames[1], frames[4])
    assert abs(tx + 3 * px) < 0.5 and abs(ty) < 0.5, (tx, px)


# ---------------------------------------------------------------------------------------
# paths

def _project(cam, i, x):
    p = cam.K(i) @ (cam.w2c[i, :3] @ np.append(x, 1.0))
    return p[:2] / p[2]


@pytest.mark.parametrize("name, check", [
    ("pan_left", lambda a, b: b[0] > a[0] + 1 and abs(b[1] - a[1]) < 1e-6),      # picture moves right
    ("pan_up", lambda a, b: b[1] > a[1] + 1),                                    # picture moves down
    ("tilt_up", lambda a, b: b[1] > a[1] + 1),
    ("tilt_down", lambda a, b: b[1] < a[1] - 1),
    ("dolly_out", lambda a, b: abs(b[0] - 32) < abs(a[0] - 32)),                # things shrink to the centre
    ("zoom_in", lambda a, b: abs(b[0] - 32) > abs(a[0] - 32)),
    ("orbit_right", lambda a, b: abs(b[0] - a[0]) < 1e-6),                      # the target stays centred
])
def test_preset_directions(name, check):
    cam = cm.preset(name, 10, 64, 64, speed=2)
    x = np.array([0.2, 0.2, 1.0]) if name in ("dolly_out", "zoom_in") else np.array([0.0, 0.0, 1.0])
    assert check(_project(cam, 0, x), _project(cam, 9, x))


def test_roll_cw_turns_the_picture_counter_clockwise():
    cam = cm.preset("roll_cw", 10, 64, 64, speed=4)               # 18 degrees
    a, b = _project(cam, 0, np.array([0.3, 0, 1])), _project(cam, 9, np.array([0.3, 0, 1]))
    ang = math.degrees(math.atan2(b[1] - 32, b[0] - 32) - math.atan2(a[1] - 32, a[0] - 32))
    assert ang == pytest.approx(-18, abs=1e-6)                    # y is down: negative is counter-clockwise


def test_easing_keeps_the_total_motion():
    lin = cm.preset("dolly_in", 20, 64, 64, easing="linear")
    eased = cm.preset("dolly_in", 20, 64, 64, easing="ease_in_out")
    assert eased.positions[-1] == pytest.approx(lin.positions[-1])
    assert eased.positions[3, 2] < lin.positions[3, 2]


def test_schedules_fov_and_combinations():
    cam = cm.from_schedules(10, 100, 50, fov="0:(90), 9:(60)", rotation_pan="t", translation_z=0.5)
    assert cam.intrinsics[0, 0] == pytest.approx(50.0)
    assert cam.intrinsics[9, 0] == pytest.approx(50 / math.tan(math.radians(30)))
    assert cam.positions[:, 2] == pytest.approx(np.full(10, 0.5))
    pan = cm.preset("pan_right", 5, 100, 50)
    zoom = cm.preset("zoom_in", 8, 100, 50)
    chained = cm.chain(pan, zoom)
    assert chained.length == 12
    assert np.allclose(chained.c2w[4], chained.c2w[5])            # the zoom starts where the pan ended
    assert chained.intrinsics[11, 0] / chained.intrinsics[4, 0] == pytest.approx(1.01 ** 7)
    both = cm.combine(pan, zoom)
    assert both.length == 8
    np.testing.assert_allclose(both.c2w[7], pan.c2w[4])           # the shorter path holds its last frame
    assert both.intrinsics[7, 0] / both.intrinsics[0, 0] == pytest.approx(1.01 ** 7)


def test_pose_file_round_trip_and_cameractrl_layout(tmp_path):
    cam = cm.combine(cm.preset("orbit_left", 6, 320, 240, speed=3), cm.preset("zoom_in", 6, 320, 240))
    p = tmp_path / "poses.txt"
    cm.write_pose_file(cam, str(p))
    lines = p.read_text().splitlines()
    assert len(lines) == 7 and lines[0].startswith("#")
    first = [float(x) for x in lines[1].split()]
    assert len(first) == 19 and first[0] == 0 and first[5:7] == [320, 240]
    assert first[1] == pytest.approx(cam.intrinsics[0, 0] / 320)
    back = cm.read_pose_file(str(p))
    assert back.allclose(cam, atol=1e-6)
    # a RealEstate10K-style file: URL header, w h columns 0, CameraCtrl's default intrinsics
    re10k = tmp_path / "re10k.txt"
    re10k.write_text("https://www.youtube.com/watch?v=xyz\n"
                     "0 0.4748 0.8441 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n"
                     "33366 0.4748 0.8441 0.5 0.5 0 0 1 0 0 -0.1 0 1 0 0 0 0 1 0\n")
    with pytest.raises(ValueError, match="set width and height"):
        cm.read_pose_file(str(re10k))
    c = cm.read_pose_file(str(re10k), 384, 256)
    assert c.intrinsics[0, 0] == pytest.approx(0.4748 * 384)
    assert c.positions[1] == pytest.approx([0.1, 0, 0])           # w2c translation -0.1 = camera at +0.1
    bad = tmp_path / "bad.txt"
    bad.write_text("header\n0 1 2 3\n")
    with pytest.raises(ValueError, match="line 2: 4 numbers; a camera file is a CameraCtrl"):
        cm.read_pose_file(str(bad), 64, 64)


def test_pose_file_quirks_of_other_editors(tmp_path):
    """A byte-order mark made the first pose line read as a header (frame 0 dropped without a word); NaN
    passed to a message naming neither file nor line; a Latin-1 comment was a UnicodeDecodeError."""
    cam = cm.preset("pan_right", 5, 64, 48)
    cm.write_pose_file(cam, str(tmp_path / "p.txt"))
    body = (tmp_path / "p.txt").read_text().split("\n", 1)[1]
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeff".encode() + body.replace("\n", "\r\n").encode())
    assert cm.read_pose_file(str(bom)).allclose(cam)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("# caméra\n".encode("latin-1") + body.encode())
    assert cm.read_pose_file(str(latin)).allclose(cam)
    lines = body.splitlines()
    lines[2] = lines[2].replace(" 64 48 ", " 64 48 nan ", 1).rsplit(" ", 1)[0]
    (tmp_path / "nan.txt").write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"nan.txt, line 3: nan is not a number a camera can have"):
        cm.read_pose_file(str(tmp_path / "nan.txt"))
    (tmp_path / "cam.json").write_text('{"shots": []}')
    with pytest.raises(ValueError, match="cam.json is JSON but neither a nerfstudio camera_path.json"):
        cm.read_pose_file(str(tmp_path / "cam.json"))
    (tmp_path / "shot.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    with pytest.raises(ValueError, match="shot.png is not a text file"):
        cm.read_pose_file(str(tmp_path / "shot.png"))


def chan_file(path, rows):
    path.write_text("".join("\t".join(f"{v:.12g}" for v in r) + "\n" for r in rows))
    return str(path)


def test_a_nuke_chan_file_is_read_in_kinograph_axes(tmp_path):
    """A .chan (Nuke, Blender's chan export) given as pose_file was refused: 'a pose line has 19 numbers'.
    Nuke's axes: Y up, the camera looking down -Z; positive ry turns it left, rz rolls it counter-clockwise."""
    p = chan_file(tmp_path / "shot.chan", [(1001, 0, 0, 0, 0, 0, 0), (1002, 1, 2, 3, 0, -10, 0),
                                           (1003, 0, 0, 0, 10, 0, 0), (1004, 0, 0, 0, 0, 0, 10)])
    c = cm.read_pose_file(p, 64, 48, hfov=50).relative()
    # the same moves in Kinograph's words: right 1, up 2 (y down), back 3 (z forward); pan right 10,
    # tilt up 10, roll counter-clockwise 10
    ref = cm.from_components(64, 48, fov=50, translation=([0, 1, 0, 0], [0, -2, 0, 0], [0, -3, 0, 0]),
                             rotation=([0, 10, 0, 0], [0, 0, 10, 0], [0, 0, 0, -10]))
    assert c.allclose(ref, atol=1e-9)
    # Rotations about all three axes: scipy's extrinsic Euler angles (the first letter turns first), in the
    # order the file was written with, converted from OpenGL camera axes to OpenCV's.
    from scipy.spatial.transform import Rotation
    rng = np.random.default_rng(0)
    ang = rng.uniform(-40, 40, (3, 3))
    rows = [(i + 1, 0.1 * i, 0, 0, *a, 30 + i) for i, a in enumerate(ang)]
    for order in ("ZXY", "XYZ"):
        c = cm.read_pose_file(chan_file(tmp_path / "r.chan", rows), 320, 240, rotation_order=order)
        for i, a in enumerate(ang):
            r = Rotation.from_euler(order.lower(), [a["XYZ".index(x)] for x in order], degrees=True).as_matrix()
            # Nuke's Y-up world turned to Kinograph's y-down, z-forward one
            np.testing.assert_allclose(c.c2w[i, :3, :3], np.diag([1, -1, -1]) @ r @ np.diag([1, -1, -1]), atol=1e-9)
        # the 8th column is the vertical field of view
        assert c.intrinsics[2, 1] == pytest.approx(120 / math.tan(math.radians(32 / 2)))
    assert not cm.read_pose_file(p, 64, 48, rotation_order="XYZ").allclose(
        cm.read_pose_file(chan_file(tmp_path / "r2.chan", rows), 64, 48), atol=1e-3)
    (tmp_path / "gap.chan").write_text("1 0 0 0 0 0 0\n2 0 0 0 0 0 0\n4 0 0 0 0 0 0\n")
    with pytest.raises(ValueError, match="gap.chan, line 3: the frame numbers go from 2 to 4; .*export every frame"):
        cm.read_pose_file(str(tmp_path / "gap.chan"), 64, 48)
    (tmp_path / "mixed.chan").write_text("1 0 0 0 0 0 0\n2 0 0 0 0 0 0 40\n")
    with pytest.raises(ValueError, match="line 2: 8 numbers where line 1 has 7"):
        cm.read_pose_file(str(tmp_path / "mixed.chan"), 64, 48)


def test_camera_save_writes_a_chan_file_nuke_reads_as_the_same_move(tmp_path):
    """camera_save wrote CameraCtrl pose files only: a move made here could not go back to Nuke or Blender."""
    from graph_engine.context import Context
    from nodes.motion import camera_nodes
    from node_call import Nodes
    cam = cm.combine(cm.preset("orbit_left", 6, 320, 240, speed=3), cm.preset("tilt_up", 6, 320, 240, speed=4))
    for order in ("ZXY", "XYZ"):
        path = str(tmp_path / f"move_{order}.chan")
        events = []
        Nodes(camera_nodes).camera_save(Context("s", emit=events.append), cam, path=path, rotation_order=order,
                                        first_frame=1001)
        assert not [e for e in events if e["event"] == "log"]
        rows = [[float(v) for v in line.split("\t")] for line in Path(path).read_text().splitlines()]
        assert [r[0] for r in rows] == list(range(1001, 1007)) and all(len(r) == 8 for r in rows)
        assert rows[0][1:7] == pytest.approx([0] * 6, abs=1e-9)       # frame 0 is Nuke's camera at rest
        assert rows[0][7] == pytest.approx(2 * math.degrees(math.atan(120 / cam.intrinsics[0, 1])))
        assert cm.read_pose_file(path, 320, 240, rotation_order=order).allclose(cam, atol=1e-6)
    # a pure turn right is a negative Y rotation in Nuke; moving right is +x, up is +y, forward is -z
    Nodes(camera_nodes).camera_save(Context("s"), cm.from_components(64, 48, rotation=([0, 20], 0, 0),
                                                                   translation=([0, 1], [0, -2], [0, 3])),
                                    path=str(tmp_path / "turn.chan"))
    last = [float(v) for v in (tmp_path / "turn.chan").read_text().splitlines()[1].split()]
    assert last[1:7] == pytest.approx([1, 2, -3, 0, -20, 0])
    events = []
    Nodes(camera_nodes).camera_save(Context("s", emit=events.append), cm.preset("pan_right", 3, 64, 48),
                                    path=str(tmp_path / "p.chan"))
    assert not events or all(e["event"] != "log" for e in events)
    Nodes(camera_nodes).camera_save(Context("s", emit=events.append),
                                    cm.from_components(64, 48, pan_x=[0, 5]), path=str(tmp_path / "shift.chan"))
    assert [e["message"] for e in events if e["event"] == "log"] == [
        "a .chan file has no place for the principal point shifts (pan_x, pan_y); they are left out"]


def test_nerfstudio_and_nerf_json_cameras(tmp_path):
    """JSON camera files (nerfstudio's render paths, NeRF transforms.json) were 'no pose lines found'."""
    turn = math.radians(-10)             # OpenGL axes, Y up: a negative turn about y looks right
    moved = [[math.cos(turn), 0, math.sin(turn), 1], [0, 1, 0, 2], [-math.sin(turn), 0, math.cos(turn), -3],
             [0, 0, 0, 1]]
    still = np.eye(4).tolist()
    (tmp_path / "camera_path.json").write_text(json.dumps({
        "render_width": 320, "render_height": 240, "fps": 24, "seconds": 1,
        "camera_path": [{"camera_to_world": sum(still, []), "fov": 40, "aspect": 4 / 3},
                        {"camera_to_world": sum(moved, []), "fov": 40, "aspect": 4 / 3}]}))
    c = cm.read_pose_file(str(tmp_path / "camera_path.json"))
    f = 120 / math.tan(math.radians(20))                                   # fov is vertical
    hfov = math.degrees(2 * math.atan(160 / f))
    # right 1, up 2, forward 3, turned 10 degrees right, in Kinograph's words
    assert c.allclose(cm.from_components(320, 240, fov=hfov, rotation=([0, 10], 0, 0),
                                         translation=([0, 1], [0, -2], [0, 3])), atol=1e-9)
    (tmp_path / "transforms.json").write_text(json.dumps({
        "camera_angle_x": math.radians(60), "w": 64, "h": 48,
        "frames": [{"file_path": "images/frame_10.png", "transform_matrix": moved, "fl_x": 70},
                   {"file_path": "images/frame_9.png", "transform_matrix": still}]}))
    c = cm.read_pose_file(str(tmp_path / "transforms.json"))
    assert (c.width, c.height) == (64, 48)
    np.testing.assert_allclose(c.intrinsics, [[32 / math.tan(math.radians(30))] * 2 + [32, 24], [70, 70, 32, 24]])
    np.testing.assert_allclose(c.c2w[0], np.eye(4), atol=1e-12)             # frame_9 before frame_10
    assert c.positions[1] == pytest.approx([1, -2, 3])
    doc = json.loads((tmp_path / "transforms.json").read_text())
    (tmp_path / "degrees.json").write_text(json.dumps({**doc, "camera_angle_x": 60}))
    with pytest.raises(ValueError, match=r"degrees.json: camera_angle_x is the horizontal field of view in radians "
                                         r"\(NeRF's convention\), between 0 and pi; 60 is not one \(degrees\?\)"):
        cm.read_pose_file(str(tmp_path / "degrees.json"))
    (tmp_path / "bad.json").write_text('{"camera_path": [{"fov": 40}], "render_width": 8, "render_height": 8}')
    with pytest.raises(ValueError, match="bad.json: a camera entry lacks 'camera_to_world'"):
        cm.read_pose_file(str(tmp_path / "bad.json"))


def test_a_colmap_text_model_is_a_path_through_its_images(tmp_path):
    """A COLMAP images.txt said 'expected 19 numbers, found text that is not a number'. Its poses are world-to-camera in
    OpenCV axes (Kinograph's): a quaternion QW QX QY QZ and a translation."""
    half = math.radians(-10) / 2                     # world-to-camera: turned 10 degrees right is -10 about y
    c = np.array([0.5, -0.2, 1.0])                   # the second camera's centre
    r = np.array([[math.cos(2 * half), 0, math.sin(2 * half)], [0, 1, 0], [-math.sin(2 * half), 0, math.cos(2 * half)]])
    t = -r @ c
    (tmp_path / "images.txt").write_text(
        "# Image list with two lines of data per image:\n"
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
        f"7 {math.cos(half)} 0 {math.sin(half)} 0 {t[0]} {t[1]} {t[2]} 2 frame_10.jpg\n"
        "12.5 30.25 -1 40 8.5 3\n"
        "3 1 0 0 0 0 0 0 1 frame_9.jpg\n"
        "\n")
    (tmp_path / "cameras.txt").write_text("# Camera list\n1 PINHOLE 320 240 300 310 161 119\n"
                                          "2 SIMPLE_RADIAL 320 240 290 160 120 0.01\n")
    cam = cm.read_pose_file(str(tmp_path))          # the model's folder, or its images.txt
    assert cam.allclose(cm.read_pose_file(str(tmp_path / "images.txt")))
    assert (cam.width, cam.height) == (320, 240)
    np.testing.assert_allclose(cam.intrinsics, [[300, 310, 161, 119], [290, 290, 160, 120]])
    ref = cm.from_components(320, 240, rotation=([0, 10], 0, 0), translation=([0, 0.5], [0, -0.2], [0, 1.0]))
    np.testing.assert_allclose(cam.c2w, ref.c2w, atol=1e-12)
    (tmp_path / "cameras.txt").unlink()
    cam = cm.read_pose_file(str(tmp_path / "images.txt"), 64, 48, hfov=90)
    np.testing.assert_allclose(cam.intrinsics[0], [32, 32, 32, 24])


def test_camera_path_node_reads_a_chan_file_under_any_name(tmp_path):
    chan_file(tmp_path / "cam_export.txt", [(1, 0, 0, 0, 0, 0, 0), (2, 0, 0, 0, 0, -12, 0), (3, 0, 0, 0, 0, -24, 0)])
    (tmp_path / "wf.yaml").write_text("""
kinograph: 1
nodes:
  cam: {type: motion.camera_path, params: {pose_file: cam_export.txt, width: 128, height: 96, fov: 40}}
""")
    r = Session(use_disk=False).run(load_workflow(tmp_path / "wf.yaml"))
    assert r.ok, r.failed
    cam = r.outputs["cam"]["camera"]
    assert cam.relative().allclose(cm.from_components(128, 96, fov=40, rotation=([0, 12, 24], 0, 0)), atol=1e-9)


def test_deforum_style_per_frame_schedules():
    """Deforum's schedules are steps (zoom 1.02 = 2% more every frame); pasted into camera_path they were
    places relative to frame 0, so 'zoom: 1.02' gave a still camera without a word."""
    from graph_engine.context import Context
    from nodes.motion import camera_nodes
    from node_call import Nodes
    events = []
    cam = Nodes(camera_nodes).camera_path(Context("cam", emit=events.append), frames=5, width=64, height=48,
                                          zoom="1.02", rotation_pan="0:(0), 4:(0)", translation_x=0.5)
    assert np.allclose(cam.intrinsics, cam.intrinsics[0]) and np.allclose(cam.relative().c2w, np.eye(4))
    assert [e["message"] for e in events if e["event"] == "log"] == [
        "zoom 1.02, translation_x 0.5 on every frame: the moves are places relative to frame 0, so these do not "
        "move the camera. For Deforum-style steps (zoom 1.02 = 2% more every frame) set schedules: per_frame; to "
        "move, give keyframes such as '0:(1), 4:(1.5)'"]
    events.clear()
    cam = Nodes(camera_nodes).camera_path(Context("cam", emit=events.append), frames=5, width=64, height=48,
                                          schedules="per_frame", zoom="1.02", pan_x=3, rotation_pan=10,
                                          translation_z="0:(7), 1:(0.1)")
    assert not [e for e in events if e["event"] == "log"]
    np.testing.assert_allclose(cam.intrinsics[:, 0] / cam.intrinsics[0, 0], 1.02 ** np.arange(5))
    pans = [0.0]
    for _ in range(4):
        pans.append(1.02 * (pans[-1] + 3))          # each step's 3 pixels, zoomed with the frame after it
    np.testing.assert_allclose(cam.intrinsics[:, 2], 32 + np.array(pans))
    # each step moves 0.1 along the previous frame's view, then turns 10 degrees right (frame 0's values unused)
    pos, expected = np.zeros(3), [np.zeros(3)]
    for i in range(1, 5):
        th = math.radians(10 * (i - 1))
        pos = pos + 0.1 * np.array([math.sin(th), 0, math.cos(th)])
        expected.append(pos)
    np.testing.assert_allclose(cam.positions, expected, atol=1e-12)
    fwd = cam.c2w[:, :3, 2]
    np.testing.assert_allclose(np.degrees(np.arctan2(fwd[:, 0], fwd[:, 2])), 10 * np.arange(5), atol=1e-9)


def test_camera_path_node_with_pose_file_and_preview(tmp_path):
    src = cm.preset("dolly_in", 7, 128, 96, speed=3)
    cm.write_pose_file(src, str(tmp_path / "in.txt"))
    (tmp_path / "wf.yaml").write_text("""
kinograph: 1
nodes:
  cam:  {type: motion.camera_path, params: {pose_file: in.txt, width: 128, height: 96, rotation_pan: "0:(0), 6:(12)"}}
  save: {type: motion.camera_save, inputs: {camera: cam.camera}, params: {path: out/saved.txt}}
  view: {type: motion.camera_preview, inputs: {camera: cam.camera}, params: {width: 320, height: 160}}
""")
    r = Session(use_disk=False).run(load_workflow(tmp_path / "wf.yaml"))
    assert r.ok, r.failed
    cam = r.outputs["cam"]["camera"]
    assert cam.length == 7
    np.testing.assert_allclose(cam.positions, src.positions, atol=1e-6)
    turn = cam.relative_transform(6, 0)[:3, :3]      # camera 6 seen from camera 0
    assert math.degrees(math.atan2(turn[0, 2], turn[2, 2])) == pytest.approx(12, abs=1e-6)
    saved = cm.read_pose_file(str(tmp_path / "out" / "saved.txt"))
    assert saved.allclose(cam, atol=1e-6)
    img = r.outputs["view"]["image"]
    assert img.shape == (160, 320, 3) and img.dtype == np.uint8
    assert (img.max(axis=2) > 150).sum() > 200                    # the path and frusta are drawn


# ---------------------------------------------------------------------------------------
# applying

def test_streaming_and_shards_agree():
    img = photo("rocket.jpg", 96)
    h, w = img.shape[:2]
    cam = cm.build_path(12, w, h, zoom="1.03**t", rotation_roll="t")
    for motion in ("absolute", "compounding"):
        full = apply_camera(cam, image=img, motion=motion).to_array()
        shard = apply_camera(cam, image=img, motion=motion)
        np.testing.assert_array_equal(shard.frames(7, 10), full[7:10])
        np.testing.assert_array_equal(shard.frames(2, 4), full[2:4])
    absolute = apply_camera(cam, image=img).to_array()
    compounding = apply_camera(cam, image=img, motion="compounding").to_array()
    psnr = cv2.PSNR(absolute[-1][20:-20, 20:-20], compounding[-1][20:-20, 20:-20])
    assert 20 < psnr < 60                  # the same move, softened by repeated resampling


def test_video_input_and_affine_projection():
    img = photo("astronaut.png", 64)
    vid = Clip.from_array(np.stack([img, img[:, ::-1], img]), fps=12)
    cam = cm.build_path(2, 64, 64, pan_x="0:(0), 1:(4)")
    out = apply_camera(cam, video=vid, projection="affine")
    assert out.length == 3 and out.fps == 12
    np.testing.assert_array_equal(out.frame(0), img)
    np.testing.assert_array_equal(out.frame(2)[:, 8:], img[:, 4:-4])          # holds the last pose
    with pytest.raises(ValueError, match="still image"):
        apply_camera(cam, video=vid, motion="compounding")


def test_depth_of_one_equals_the_plane():
    img = photo("chelsea.png", 120)
    h, w = img.shape[:2]
    cam = cm.combine(cm.preset("pan_right", 5, w, h, speed=3), cm.preset("tilt_up", 5, w, h, speed=2))
    flat = apply_camera(cam, image=img).frame(4)
    z = np.ones((h, w), np.float32)
    deep = apply_camera(cam, image=img, depth=z, depth_type="metric").frame(4)
    assert cv2.PSNR(flat[4:-4, 4:-4], deep[4:-4, 4:-4]) > 35


def _layered_scene(w=96, h=64):
    rng = np.random.default_rng(3)
    bg = (np.array([40, 90, 200]) + rng.integers(-20, 20, (h, w, 3))).astype(np.uint8)
    img = bg.copy()
    img[20:44, 36:60] = (rng.integers(0, 2, (24, 24, 1)) * np.array([[[230, 40, 40]]])).astype(np.uint8) + 20
    z = np.full((h, w), 4.0, np.float32)
    z[20:44, 36:60] = 1.0
    return img, z


def test_depth_parallax_and_background_fill():
    img, z = _layered_scene()
    h, w = z.shape
    cam = cm.from_components(w, h, fov=60, translation=(np.array([0.0, 0.08]), np.zeros(2), np.zeros(2)))
    fx = cam.intrinsics[0, 0]
    out, zt = reproject(img, z, cam, 1, 0)
    # the near square moves fx * 0.08 / 1 pixels left, the far background a quarter of that
    near_shift, far_shift = fx * 0.08, fx * 0.08 / 4
    red = (out[..., 0] > 150) & (out[..., 2] < 100)
    cols = np.flatnonzero(red.any(axis=0))
    assert cols.min() == pytest.approx(36 - near_shift, abs=1.5) and cols.max() == pytest.approx(59 - near_shift,
                                                                                                   abs=1.5)
    f = camera_flow(cam, 0, 1, w, h, z=z)
    np.testing.assert_allclose(flow_from_camera(cam, w, h, z).field(0), f)
    assert f[30, 45, 0] == pytest.approx(-near_shift, abs=1e-3)
    assert f[5, 5, 0] == pytest.approx(-far_shift, abs=0.05)
    # the strip the square uncovered (right of it) is filled with background, not smeared red
    uncovered = out[22:42, 61 - int(near_shift) + 1: 59 - int(far_shift)]
    assert uncovered.size and (uncovered[..., 2] > 150).mean() > 0.95
    assert zt[30, 45] == pytest.approx(1.0, abs=1e-3) and zt[5, 5] == pytest.approx(4.0, abs=1e-3)


def test_depth_map_types():
    from nodes.motion.warp import depth_to_z
    d = np.array([[0, 255]], np.uint8)
    assert depth_to_z(d, 2, 1, "disparity", 1, 10).tolist() == [[10, 1]]
    assert depth_to_z(d, 2, 1, "depth", 1, 10).tolist() == [[1, 10]]
    with pytest.raises(ValueError):
        depth_to_z(d, 2, 1, "metric")


def test_camera_flow_matches_the_rendered_motion():
    from nodes.common.flow import backward_warp
    img = photo("coffee.png", 120)
    h, w = img.shape[:2]
    cam = cm.build_path(3, w, h, zoom="1 + 0.05*t", pan_x="2*t", rotation_roll="t")
    frames = apply_camera(cam, image=img).to_array()
    f = camera_flow(cam, 1, 2, w, h)
    recon = backward_warp(frames[2], f)
    assert cv2.PSNR(recon[8:-8, 8:-8], frames[1][8:-8, 8:-8]) > 30


# ---------------------------------------------------------------------------------------
# tracks, brush, flow

def test_tracks_splines_flow_and_json_round_trip():
    spec = {"width": 64, "height": 48, "frames": 9, "tracks": [
        {"points": [[10, 10], [30, 10], [30, 40]], "frames": [0, 4, 8], "interpolation": "linear"},
        {"points": [[50, 5], [40, 20], [50, 40]]},
        [[5, 40], [5, 40]]]}
    tr = parse_tracks(json.dumps(spec))
    assert tr.points.shape == (3, 9, 2) and tr.count == 3
    np.testing.assert_allclose(tr.points[0, 2], [20, 10])
    np.testing.assert_allclose(tr.points[0, 6], [30, 25])
    np.testing.assert_allclose(tr.points[1, [0, 4, 8]], [[50, 5], [40, 20], [50, 40]])   # cubic through points
    assert not np.allclose(tr.points[1, 2], [45, 12.5])                                   # and curved between
    sparse = tracks_to_flow(tr, "sparse", sigma=2.0)
    assert sparse.length == 8
    f = sparse.field(1)
    np.testing.assert_allclose(f[10, 15], [5, 0], atol=1e-5)      # the step of track 1 at its point
    assert np.abs(f[30, 60]).max() < 1e-3                          # nothing far from the points
    dense = tracks_to_flow(parse_tracks([[[10, 10], [20, 14]]], 3, 32, 32), "dense")
    assert np.allclose(dense.field(0), [5, 2])                     # one track: everything follows it
    again = parse_tracks(tr.to_json())
    np.testing.assert_allclose(again.points, tr.points, atol=1e-3)
    for bad, words in [("{", "not valid JSON"), ('{"tracks": []}', "non-empty"),
                       ('[{"points": [[1, 2]], "frames": [3, 4]}]', "one whole frame number"),
                       ('[{"points": [[1, 2, 3]]}]', "pairs")]:
        with pytest.raises(ValueError, match=words):
            parse_tracks(bad, 5, 16, 16)


def test_tracks_node_with_preview():
    r = run("""
kinograph: 1
nodes:
  tr: {type: motion.tracks, params: {frames: 6, width: 48, height: 32, trail: 3,
       points: '{"tracks": [{"points": [[4, 4], [40, 28]], "visible": [1, 5]}]}'}}
""")
    out = r.outputs["tr"]
    assert out["tracks"].visible[0].tolist() == [False, True, True, True, True, True]
    assert out["flow"].length == 5
    prev = out["preview"].to_array()
    assert prev.shape == (6, 32, 48, 3)
    assert (prev[0] == 40).all() and (prev[5] != 40).any()         # drawn only where visible


def test_tracks_file_saved_by_a_windows_editor(tmp_path):
    """A tracks JSON file with a byte-order mark and CRLF lines (Notepad, PowerShell) said 'tracks text is not
    valid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig)'."""
    text = '{"frames": 6, "width": 48, "height": 32,\r\n "tracks": [{"points": [[4, 4], [40, 28]], "name": "caf\u00e9"}]}'
    (tmp_path / "tracks.json").write_bytes(b"\xef\xbb\xbf" + text.replace("\u00e9", "\xe9").encode("latin-1"))
    r = run(f"""
kinograph: 1
nodes:
  tr: {{type: motion.tracks, params: {{path: {tmp_path / 'tracks.json'}}}}}
""")
    pts = r.outputs["tr"]["tracks"].points[0]
    assert pts[0].tolist() == [4, 4] and pts[-1].tolist() == [40, 28]


def test_motion_brush():
    mask = np.zeros((40, 60), np.float32)
    mask[10:20, 10:20] = 1
    fl = brush_flow(mask, 6, direction="0:(0), 5:(90)", speed=3, feather=0, follow=True)
    assert fl.length == 5
    np.testing.assert_allclose(fl.field(0)[15, 15], [3, 0])
    assert np.abs(fl.field(0)[30, 40]).max() == 0
    # after 2 frames moving right (the direction turns slowly) the region has moved ~6 px right
    f2 = fl.field(2)
    assert np.hypot(*f2[15, 24]) == pytest.approx(3, abs=1e-4) and np.abs(f2[15, 10]).max() < 1e-6
    up = brush_flow(mask, 3, direction=90, speed=2, feather=0, follow=False)
    np.testing.assert_allclose(up.field(1)[15, 15], [0, -2], atol=1e-6)
    base = brush_flow(np.ones((40, 60), np.float32), 6, direction=180, speed=1, feather=0)
    mixed = brush_flow(mask, 6, direction=0, speed=3, feather=0, follow=False, base=base)
    np.testing.assert_allclose(mixed.field(0)[30, 40], [-1, 0], atol=1e-6)
    np.testing.assert_allclose(base.resized(30, 20).field(0), np.full((20, 30, 2), [-0.5, 0]), atol=1e-6)


def test_flow_from_video_recovers_a_camera_pan():
    img = photo("coffee.png", 160)
    h, w = img.shape[:2]
    clip = apply_camera(cm.build_path(4, w, h, pan_x="3*t", pan_y="-t"), image=img)
    fl = flow_from_video(clip, "best")
    assert fl.length == 3 and (fl.width, fl.height) == (w, h)
    f = fl.field(1)[20:-20, 20:-20]
    assert np.median(f[..., 0]) == pytest.approx(3, abs=0.3) and np.median(f[..., 1]) == pytest.approx(-1, abs=0.3)


def test_flow_nodes_and_errors():
    r = run(f"""
kinograph: 1
nodes:
  photo: {{type: io.load_image, params: {{path: {SAMPLES / 'astronaut.png'}}}}}
  cam:   {{type: motion.camera_path, params: {{frames: 4, width: 64, height: 64, preset: zoom_in, speed: 3}}}}
  cflow: {{type: motion.camera_flow, inputs: {{camera: cam.camera}}}}
  show:  {{type: motion.flow_preview, inputs: {{flow: cflow.flow}}}}
""")
    fl = r.outputs["cflow"]["flow"]
    assert fl.length == 3 and fl.to_array().shape == (3, 64, 64, 2)
    # a zoom pushes pixels away from the centre
    assert fl.field(0)[5, 5, 0] < 0 < fl.field(0)[58, 58, 0]
    assert r.outputs["show"]["video"].to_array().shape == (3, 64, 64, 3)
    text = """
kinograph: 1
nodes:
  cam:  {type: motion.camera_path, params: {frames: 4}}
  move: {type: motion.apply_camera, inputs: {camera: cam.camera}}
"""
    res = Session(use_disk=False).run(load_workflow(text=text))
    assert not res.ok and "connect either an image or a video" in res.failed["move"]


def test_bad_schedule_is_reported_at_validation():
    from graph_engine.errors import WorkflowError
    with pytest.raises(WorkflowError) as info:
        load_workflow(text="""
kinograph: 1
nodes:
  cam: {type: motion.camera_path, params: {zoom: "0:(1.0), 24:(1.5 +)"}}
""")
    assert "expected a value" in str(info.value) and "^" in str(info.value)


def test_a_camera_file_in_metres_moves_toward_a_picture_at_its_distance(tmp_path):
    """A camera from Nuke or Blender moves in metres, and the picture of a 2-D move sat 1 unit ahead: a
    dolly of 2 m toward a painting 10 m away was refused as travelling 'through the picture'. distance
    puts the picture where it is."""
    chan_file(tmp_path / "dolly.chan", [(1001 + i, 0, 1.6, -0.5 * i, 0, 0, 0, 40) for i in range(5)])
    h, w = photo().shape[:2]
    text = f"""
kinograph: 1
nodes:
  photo: {{type: io.load_image, params: {{path: {SAMPLES / 'coffee.png'}}}}}
  cam:   {{type: motion.camera_path, params: {{pose_file: {tmp_path / 'dolly.chan'}, width: {w}, height: {h}}}}}
  near:  {{type: motion.apply_camera, inputs: {{image: photo.image, camera: cam.camera}}}}
  far:   {{type: motion.apply_camera, inputs: {{image: photo.image, camera: cam.camera}}, params: {{distance: 10}}}}
"""
    res = Session(use_disk=False).run(load_workflow(text=text))
    assert set(res.failed) == {"near"}
    assert res.failed["near"].startswith("camera frame 2 has travelled 1 forward, through the picture: a still "
                                         "picture is a plane 1 unit ahead of the first camera (distance)")
    assert "set distance to how far the picture is in the path's units" in res.failed["near"]
    frames = res.outputs["far"]["video"].to_array()
    # 2 m nearer to a picture 10 m away: it looks 10 / 8 = 1.25 times bigger (SIFT, independent of the warp)
    scale, angle, _, _ = similarity(frames[0], frames[4])
    assert scale == pytest.approx(1.25, abs=0.01) and abs(angle) < 0.2


def test_camera_validation_messages():
    with pytest.raises(ValueError, match="unknown camera preset"):
        cm.preset("spin", 3, 8, 8)
    with pytest.raises(ValueError, match="zoom must stay above 0"):
        cm.build_path(3, 8, 8, zoom="1 - t")
    with pytest.raises(NodeError):
        from nodes.motion.camera_nodes import user_errors
        with user_errors():
            cm.preset("spin", 3, 8, 8)


@pytest.mark.parametrize("move, says", [
    ("preset: dolly_in, speed: 50", "camera frame 2 has travelled 1 forward, through the picture"),
    ("rotation_pan: '0:(0), 3:(120)'", "camera frame 2 turns so far that part of its view looks away"),
])
def test_a_camera_that_passes_or_turns_from_the_picture_is_refused(move, says):
    """A 2-D move whose camera reached the picture plane rendered a white frame and then the picture
    mirrored (a homography cannot tell in front from behind), and the run said ok; so did a turn past
    the picture's edge. apply_camera, and camera_flow without depth, now name the frame and what to change."""
    text = f"""
kinograph: 1
nodes:
  photo: {{type: io.load_image, params: {{path: {SAMPLES / 'astronaut.png'}}}}}
  cam:   {{type: motion.camera_path, params: {{frames: 4, width: 64, height: 64, {move}}}}}
  move:  {{type: motion.apply_camera, inputs: {{image: photo.image, camera: cam.camera}}}}
  cflow: {{type: motion.camera_flow, inputs: {{camera: cam.camera}}}}
"""
    res = Session(use_disk=False).run(load_workflow(text=text))
    assert set(res.failed) == {"move", "cflow"}
    assert says in res.failed["move"] and says in res.failed["cflow"]
    # The frames before the bad one were fine: the same move over 2 frames still renders.
    ok = Session(use_disk=False).run(load_workflow(text=text.replace("frames: 4", "frames: 2")))
    assert ok.ok, ok.failed
    assert ok.outputs["move"]["video"].to_array().shape[0] == 2


def test_a_track_point_far_off_the_picture_draws_its_line_to_the_edge():
    """A point at 1e9 pixels (a slip, or normalised values without "normalized") wrapped OpenCV's int32
    coordinates: the preview, and the save that pulled it, failed with 'Bad argument in function circle'."""
    r = run("""
kinograph: 1
nodes:
  tr: {type: motion.tracks, params: {frames: 3, width: 64, height: 48, interpolation: linear,
       points: '{"tracks": [{"points": [[8, 24], [1e9, 24], [1e9, 1e9]]},
                            {"points": [[0, 0], [1e9, 1e9], [-1e9, 5]]}]}'}}
""")
    prev = r.outputs["tr"]["preview"].to_array()
    assert prev.shape == (3, 48, 64, 3)
    drawn = (prev[1] != 40).any(axis=2)
    # Frame 1: the first track's trail runs right along row 24 to the edge, the second's down the diagonal.
    assert drawn[24, 10:].all()
    assert all(drawn[k, k] for k in range(2, 46))
    assert not drawn[2:20, 40:60].any() and not drawn[30:46, 2:20].any()


def test_compounding_moves_forward_into_the_picture_as_deforum_does():
    """Deforum's 3-D feedback without depth: every frame the picture is a plane 1 unit ahead of the camera that
    made it, so 0.05 forward a frame magnifies it 1/0.95 each frame, frame after frame. The plane stayed where
    frame 0 saw it: the zoom sped up, and past 1 unit of travel (20 frames of Deforum's translation_z 10) the
    path was refused as going through the picture."""
    img = photo("rocket.jpg", 96)
    h, w = img.shape[:2]
    forward = cm.build_path(30, w, h, translation_z="0.05", per_frame=True)
    zoom = cm.build_path(30, w, h, zoom=repr(1 / 0.95), per_frame=True)
    got = apply_camera(forward, image=img, motion="compounding").to_array()
    want = apply_camera(zoom, image=img, motion="compounding").to_array()
    assert got.shape == (30, h, w, 3)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert np.abs(got[29].astype(int) - img.astype(int)).mean() > 5       # it did move
    with pytest.raises(ValueError, match="camera frame 1 has travelled 1.2 forward in one step"):
        apply_camera(cm.build_path(3, w, h, translation_z="1.2", per_frame=True), image=img, motion="compounding")
    with pytest.raises(ValueError, match="camera frame 20 has travelled 1 forward, through"):
        apply_camera(forward, image=img)          # absolute: the plane stays where frame 0 saw it


def test_per_frame_2d_steps_are_deforums_2d_steps():
    """Deforum's 2-D frame i is frame i-1 shifted by translation_x/y, then turned by angle and zoomed about the
    centre (OpenCV's getRotationMatrix2D). Each step of a per_frame path is that same map, frame after frame;
    the pans used to add up unzoomed, so with a zoom they slowed down and turned back."""
    from nodes.motion.warp import pixel_homography
    w, h = 96, 64
    cam = cm.build_path(60, w, h, per_frame=True, zoom="1.04", rotation_roll="0:(2), 30:(-1)",
                        pan_x="5", pan_y="0:(-3), 40:(2)")
    centre = (w / 2 - 0.5, h / 2 - 0.5)            # pixel centres at integers, as OpenCV counts them
    for i in (1, 2, 25, 45, 59):
        angle, ty = 2 - 3 * min(i, 30) / 30, -3 + 5 * min(i, 40) / 40        # the keyframes, linear between
        deforum = np.vstack([cv2.getRotationMatrix2D(centre, angle, 1.04), [0, 0, 1]]) @ \
            np.array([[1, 0, 5], [0, 1, ty], [0, 0, 1]])
        np.testing.assert_allclose(pixel_homography(cam, i, i - 1), deforum, atol=1e-9)
