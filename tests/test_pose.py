"""pose.dwpose / pose.pixel_perfect against comfyui_controlnet_aux's DWPose, with tiny TorchScript stand-ins that
have the real files' signatures: YOLOX [1,3,640,640] -> [1,8400,85]; dw-ll_ucoco_384_bs5 [5,3,384,288] ->
(simcc_x [5,133,576], simcc_y [5,133,768]). The expected values are computed here from the published maths
(RTMPose's bbox_xyxy2cs / get_warp_matrix, SimCC's argmax / split ratio, OpenPose's drawing), not by Kinograph's
functions."""
import colorsys
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from graph_engine import NodeError
from graph_engine.clip import Clip

H, W = 48, 64
SPOT = (23.0, 19.0)             # the bright pixel (x, y): the crop samples it exactly (x 9.6 from the box centre)
BOX = (16.0, 8.0, 40.0, 40.0)   # the one person box the tiny detector reports
SHIFTS = np.arange(133) % 7 - 3                     # keypoint k peaks this many SimCC bins from the spot
GAINS = np.where(np.arange(133) % 11 == 4, 0.05, 1.0)   # these keypoints score below 0.3: not drawn


class TinyYolox(torch.nn.Module):
    """Fixed raw predictions: a person at BOX (letterboxed x10), a weaker copy of it (NMS removes it), a car,
    and a person scoring 0.25 (under DWPose's 0.3)."""

    def __init__(self):
        super().__init__()
        pred = torch.full((8400, 85), -20.0)
        pred[:, 4:] = 0.0

        def put(cell_x, cell_y, cx, cy, w, h, obj, cls, score):
            i = cell_y * 80 + cell_x
            pred[i, :4] = torch.tensor([cx / 8 - cell_x, cy / 8 - cell_y, math.log(w / 8), math.log(h / 8)])
            pred[i, 4], pred[i, 5 + cls] = obj, score
        put(35, 30, 280, 240, 240, 320, 0.9, 0, 0.9)
        put(36, 30, 284, 242, 236, 316, 0.9, 0, 0.6)
        put(10, 10, 80, 80, 40, 40, 0.9, 2, 0.9)
        put(60, 60, 480, 480, 40, 40, 0.5, 0, 0.5)
        self.register_buffer("pred", pred)

    def forward(self, x):
        return self.pred[None] + 0.0 * x.mean()


class TinyDWPose(torch.nn.Module):
    """Each keypoint's SimCC peaks at the crop's brightest red column / row, SHIFTS[k] bins on, times GAINS[k]."""

    def __init__(self):
        super().__init__()
        self.register_buffer("ix", torch.from_numpy((np.arange(576)[None] - SHIFTS[:, None]) % 576))
        self.register_buffer("iy", torch.from_numpy((np.arange(768)[None] - SHIFTS[:, None]) % 768))
        self.register_buffer("gain", torch.from_numpy(GAINS).float()[None, :, None])
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        red = x[:, 0] * self.scale
        cols = red.amax(1).repeat_interleave(2, -1)
        rows = red.amax(2).repeat_interleave(2, -1)
        b = x.shape[0]
        sx = torch.gather(cols[:, None].expand(b, 133, 576), 2, self.ix[None].expand(b, 133, 576))
        sy = torch.gather(rows[:, None].expand(b, 133, 768), 2, self.iy[None].expand(b, 133, 768))
        return sx * self.gain, sy * self.gain


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """A ComfyUI folder with the two files where comfyui_controlnet_aux downloads them."""
    root = tmp_path_factory.mktemp("ComfyUI")
    ckpts = root / "custom_nodes" / "comfyui_controlnet_aux" / "ckpts"
    (root / "models" / "checkpoints").mkdir(parents=True)
    for repo, name, module, shape in (("hr16/yolox-onnx", "yolox_l.torchscript.pt", TinyYolox(), (1, 3, 640, 640)),
                                      ("hr16/DWPose-TorchScript-BatchSize5", "dw-ll_ucoco_384_bs5.torchscript.pt",
                                       TinyDWPose(), (5, 3, 384, 288))):
        (ckpts / repo).mkdir(parents=True)
        torch.jit.trace(module, torch.zeros(shape), check_trace=False).save(str(ckpts / repo / name))
    (ckpts / "yzd-v" / "DWPose").mkdir(parents=True)
    (ckpts / "yzd-v" / "DWPose" / "yolox_l.onnx").write_bytes(b"\x08\x07")
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(root))
    yield root
    mp.undo()


def frames_with_spot(n):
    f = np.zeros((n, H, W, 3), np.uint8)
    x, y = int(SPOT[0]), int(SPOT[1])
    f[:, y, x] = 255        # one pixel: the crop's bilinear tent peaks at its centre alone
    return f


def reference_centre_scale():
    """RTMPose: centre and size of the box grown 1.25x, widened to 288:384."""
    x0, y0, x1, y1 = BOX
    w, h = (x1 - x0) * 1.25, (y1 - y0) * 1.25
    w, h = (w, w / 0.75) if w > h * 0.75 else (h * 0.75, h)
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2]), np.array([w, h])


def test_keypoints_affine_and_clip(comfy):
    from nodes.pose.dwpose import load_dwpose, pose_clip
    from nodes.pose.geometry import box_centre_scale, crop_matrices

    # get_warp_matrix's three-point construction (centre, centre - half width up, the perpendicular third point)
    c, s = reference_centre_scale()
    third = lambda a, b: b + np.array([-(a - b)[1], (a - b)[0]])        # noqa: E731
    src = np.array([c, c + [0, -s[0] / 2], third(c, c + [0, -s[0] / 2])], np.float32)
    dst0 = np.array([144.0, 192.0])
    dst = np.array([dst0, dst0 + [0, -144], third(dst0, dst0 + [0, -144])], np.float32)
    mine_c, mine_s = box_centre_scale(np.array([BOX]), 288 / 384)
    np.testing.assert_allclose(crop_matrices(mine_c, mine_s, (288, 384))[0], cv2.getAffineTransform(src, dst),
                               atol=1e-4)

    model = load_dwpose("yolox_l.torchscript.pt", "dw-ll_ucoco_384_bs5.torchscript.pt")
    frames = frames_with_spot(7)
    boxes = [model.boxes(f) for f in frames]
    np.testing.assert_allclose(boxes[0], [BOX], atol=1e-3)     # the copy suppressed, the car and 0.25 dropped
    kp = model.keypoints(frames, boxes)
    assert len(kp) == 7 and kp[0].shape == (1, 134, 3)        # 7 crops in two bs5 batches, padding dropped
    # each keypoint at the spot plus its shift: SHIFTS bins / 2 (split ratio) / the crop's scale (288 / width)
    coco = SPOT + (SHIFTS[:, None] / 2.0) * (s[0] / 288.0)
    peak = (255 - 123.675) / 58.395
    score = peak * GAINS
    neck = np.append(coco[[5, 6]].mean(0), float(score[5] > 0.3 and score[6] > 0.3))
    full = np.insert(np.concatenate([coco, score[:, None]], 1), 17, neck, axis=0)
    openpose = [0, 17, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
    full[:18] = full[openpose]
    np.testing.assert_allclose(kp[3][0, :, 2], full[:, 2], atol=1e-4)
    np.testing.assert_allclose(kp[3][0, :, :2], full[:, :2], atol=1e-6)

    clip = Clip(7, 24.0, W, H, lambda a, b: frames_with_spot(b - a), chunk=3)
    out = pose_clip(clip, "yolox_l.torchscript.pt", "dw-ll_ucoco_384_bs5.torchscript.pt", resolution=96)
    assert (out.length, out.height, out.width) == (7, 96, 128)
    got = out.frames(2, 6)
    assert got.dtype == np.uint8 and got.shape == (4, 96, 128, 3)
    want = cv2.resize(reference_drawing(kp[0][0], H, W), (128, 96), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(got[0], want) and np.array_equal(got[3], want)


def reference_drawing(person, h, w, body=True, hands=True, face=True, stick=4):
    """controlnet_aux's draw_bodypose / draw_handpose / draw_facepose over one person's 134 keypoints."""
    pts = [None if sc < 0.3 else (x, y) for x, y, sc in person]
    canvas = np.zeros((h, w, 3), np.uint8)
    limbs = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13],
             [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18]]
    colors = [[255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
              [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
              [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85]]
    bodypts = pts[:18]
    if body:
        for (i, j), col in zip(limbs, colors):
            a, b = bodypts[i - 1], bodypts[j - 1]
            if a is None or b is None:
                continue
            X, Y = np.array([a[1], b[1]]), np.array([a[0], b[0]])
            length = ((X[0] - X[1]) ** 2 + (Y[0] - Y[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(X[0] - X[1], Y[0] - Y[1]))
            poly = cv2.ellipse2Poly((int(np.mean(Y)), int(np.mean(X))), (int(length / 2), stick), int(angle), 0, 360,
                                    1)
            cv2.fillConvexPoly(canvas, poly, [int(float(c) * 0.6) for c in col])
        for p, col in zip(bodypts, colors):
            if p is not None:
                cv2.circle(canvas, (int(p[0]), int(p[1])), 4, col, thickness=-1)
    edges = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [0, 9], [9, 10], [10, 11], [11, 12],
             [0, 13], [13, 14], [14, 15], [15, 16], [0, 17], [17, 18], [18, 19], [19, 20]]
    for hand in ((pts[92:113], pts[113:134]) if hands else ()):
        if all(p is None for p in hand):
            continue
        for ie, (e1, e2) in enumerate(edges):
            if hand[e1] is None or hand[e2] is None:
                continue
            x1, y1, x2, y2 = int(hand[e1][0]), int(hand[e1][1]), int(hand[e2][0]), int(hand[e2][1])
            if x1 > 0.01 and y1 > 0.01 and x2 > 0.01 and y2 > 0.01:
                cv2.line(canvas, (x1, y1), (x2, y2), np.array(colorsys.hsv_to_rgb(ie / 20.0, 1.0, 1.0)) * 255,
                         thickness=2)
        for p in hand:
            if p is not None and int(p[0]) > 0.01 and int(p[1]) > 0.01:
                cv2.circle(canvas, (int(p[0]), int(p[1])), 4, (0, 0, 255), thickness=-1)
    facepts = pts[24:92]
    if face and not all(p is None for p in facepts):
        for p in facepts + [bodypts[14], bodypts[15]]:
            if p is not None and int(p[0]) > 0.01 and int(p[1]) > 0.01:
                cv2.circle(canvas, (int(p[0]), int(p[1])), 3, (255, 255, 255), thickness=-1)
    return canvas


def test_drawing_matches_openpose_and_sizes():
    from nodes.pose.draw import draw_people
    from nodes.pose.dwpose import people, render
    from nodes.pose.geometry import detect_size, pixel_perfect
    rng = np.random.default_rng(3)
    person = np.concatenate([rng.uniform(-4, 200, (134, 2)), rng.uniform(0, 1, (134, 1))], 1)
    person[92:113, 2] = 0.1                      # the left hand not found: not drawn at all
    other = person.copy()
    other[:, :2] = other[:, :2] * 0.5 + 20
    for body, hands, face in ((True, True, True), (False, False, True), (True, True, False)):
        want = reference_drawing(person, 160, 220, body, hands, face)
        got = draw_people(160, 220, people(person[None]), body, hands, face)
        assert np.array_equal(got, want), (body, hands, face)
    # two people: the second drawn over the first
    both = draw_people(160, 220, people(np.stack([person, other])))
    second = reference_drawing(other, 160, 220)
    assert np.array_equal(both[second > 0], second[second > 0])
    # xinsir's thicker sticks from 500 px up: stickwidth 4 x (2 + side // 1000)
    big = person.copy()
    big[:, :2] *= 4
    assert np.array_equal(draw_people(600, 900, people(big[None]), xinsr=True),
                          reference_drawing(big, 600, 900, stick=8))
    # controlnet_aux's output size: the short side at the detect resolution, each side rounded
    assert detect_size(480, 854, 512) == (512, 911) and detect_size(720, 1280, 360) == (360, 640)
    shrunk = render(person[None], 160, 220, 100, True, True, True, False)
    assert np.array_equal(shrunk, cv2.resize(reference_drawing(person, 160, 220), (138, 100),
                                             interpolation=cv2.INTER_AREA))
    # PixelPerfectResolution: round(max or min of the axis ratios x the short side)
    assert pixel_perfect(480, 854, 832, 480) == round(max(480 / 480, 832 / 854) * 480) == 480
    assert pixel_perfect(720, 1280, 1024, 1024) == round(max(1024 / 720, 1024 / 1280) * 720) == 1024
    assert pixel_perfect(720, 1280, 1024, 1024, "Resize and Fill") == round(0.8 * 720) == 576
    with pytest.raises(NodeError, match="Resize and Fill"):
        pixel_perfect(720, 1280, 512, 512, "Fit")


class ReadsFiles(torch.nn.Module):
    def forward(self, x):
        return x + torch.from_file("/etc/hostname", size=1, dtype=torch.uint8).float()


def test_onnx_and_hostile_files_are_refused_by_name(comfy, tmp_path):
    from nodes.pose.dwpose import load_dwpose
    with pytest.raises(NodeError) as e:
        load_dwpose("yolox_l.onnx", "dw-ll_ucoco_384_bs5.torchscript.pt")
    text = str(e.value)
    assert "yolox_l.onnx is an ONNX file" in text and "put yolox_l.torchscript.pt (Hugging Face hr16/yolox-onnx)" in text
    bad = tmp_path / "evil_bs5.torchscript.pt"
    torch.jit.script(ReadsFiles()).save(str(bad))
    with pytest.raises(NodeError, match=r"refused: its code \(.*\.py\) calls from_file\(\), which reads or writes files"):
        load_dwpose("None", str(bad))
    # The two files swapped: each is named with what it should be, not a ValueError or TorchScript's traceback.
    swapped = load_dwpose("dw-ll_ucoco_384_bs5.torchscript.pt", "yolox_l.torchscript.pt")
    with pytest.raises(NodeError, match=r"dw-ll_ucoco_384_bs5.torchscript.pt is not DWPose's detector \(it fails on "
                                        r"a \(1, 3, 640, 640\) batch: .*check that the two are not swapped"):
        swapped.boxes(frames_with_spot(1)[0])
    with pytest.raises(NodeError, match=r"yolox_l.torchscript.pt is not DWPose's estimator \(its output has another "
                                        r"shape\). The detector should be yolox_l.torchscript.pt"):
        swapped.keypoints(frames_with_spot(1), [np.array([BOX])])
    with pytest.raises(NodeError, match="pose model 'dw-ll_ucoco_384_bs6.torchscript.pt' not found"):
        load_dwpose("None", "dw-ll_ucoco_384_bs6.torchscript.pt")


def test_edges_of_yolox_and_rtmpose_decoding():
    """Where the tiny models cannot tell (they ignore their input, their scores are never at a threshold): YOLOX's
    letterbox is grey 114 beyond the resized frame; its NMS counts pixels inclusively (+1), so a 5x5 box inside a
    7x7 one overlaps 25/49 > 0.45 and is suppressed (16/36 < 0.45 without); SimCC puts a keypoint whose peak is
    0 at -1 (RTMPose: locs[vals <= 0] = -1); controlnet_aux hides a keypoint only below 0.3 (subset < 0.3)."""
    from nodes.pose.dwpose import letterbox, nms, people, simcc_decode
    frame = np.full((32, 64, 3), 7, np.uint8)
    out, ratio = letterbox(frame)
    assert ratio == 10.0 and (out[:320] == 7).all() and (out[320:] == 114).all()
    assert nms(np.array([[0.0, 0, 6, 6], [0, 0, 4, 4]]), np.array([0.9, 0.8])) == [0]
    bins = np.zeros((1, 2, 8))
    bins[0, 1, 3] = 0.5
    points, scores = simcc_decode(bins, bins)
    assert points.tolist() == [[[-0.5, -0.5], [1.5, 1.5]]] and scores.tolist() == [[0.0, 0.5]]
    person = np.zeros((1, 134, 3))
    person[0, :, :2], person[0, 0, 2], person[0, 1, 2] = 5.0, 0.3, 0.29
    body = people(person)[0]["body"]
    assert body[0].tolist() == [5.0, 5.0] and np.isnan(body[1]).all()


def test_kinograph_info_lists_the_pose_files_as_dwpose(comfy):
    """`kinograph info` read the two TorchScript files as diffusion weights: 'unreadable ... no ... it is truncated
    or corrupt. Copy the file again.' for good files. Now each is pose.dwpose's detector or estimator; the ONNX
    export is listed as not loading, with the TorchScript file to use."""
    from nodes.generate.model_manager import list_found_models
    rows = {Path(p).name: d for kind, p, d in list_found_models() if kind == "pose"}
    assert {n: (d["family"], d["role"], d["loads"]) for n, d in rows.items()} == {
        "yolox_l.torchscript.pt": ("dwpose", "detector", "yes"),
        "dw-ll_ucoco_384_bs5.torchscript.pt": ("dwpose", "estimator", "yes"),
        "yolox_l.onnx": ("dwpose", "detector", "no")}
    assert "put yolox_l.torchscript.pt (Hugging Face hr16/yolox-onnx)" in rows["yolox_l.onnx"]["note"]


def test_wan_animate_template_gets_its_pose_and_face_videos():
    """ComfyUI's Wan 2.2 Animate template: DWPreprocessor (face only; body and hands) and PixelPerfectResolution
    were not mapped, so the pose and face videos had to be brought from ComfyUI. Now both pictures are made here,
    at the resolution linked from pose.pixel_perfect; yolox_l.onnx is taken as its TorchScript export, said."""
    from pathlib import Path
    from app.comfyui import import_workflow
    res = import_workflow(Path(__file__).parent / "data" / "comfyui" / "templates" / "video_wan2_2_14B_animate.json")
    g = res.graph
    pp = [n for n in g.nodes.values() if n.type == "pose.pixel_perfect"]
    assert [n.params for n in pp] == [{"width": 640, "height": 640, "resize_mode": "Just Resize"}]
    pose = {n.id: n for n in g.nodes.values() if n.type == "pose.dwpose"}
    common = {"detector": "yolox_l.torchscript.pt", "estimator": "dw-ll_ucoco_384_bs5.torchscript.pt",
              "xinsr_sticks": False}
    assert pose["dw_preprocessor_100"].params == {"hands": False, "body": False, "face": True, **common}
    assert pose["dw_preprocessor_101"].params == {"hands": True, "body": True, "face": False, **common}
    for nid in pose:
        assert g.inputs[nid]["resolution"] == (pp[0].id, "resolution")
    animate = [n for n in g.nodes.values() if n.type == "condition.wan_animate"]
    assert len(animate) == 2 and all(g.inputs[n.id]["face"] == ("dw_preprocessor_100", "video") and
                                     g.inputs[n.id]["pose"] == ("dw_preprocessor_101", "video") for n in animate)
    text = res.report.text()
    lines = text.splitlines()
    assert not [x for x in lines if x.startswith("NOT MAPPED") and ("DWPreprocessor" in x or "PixelPerfect" in x)]
    assert [x for x in lines if x.startswith("mapped approximately") and "DWPreprocessor #100 ->" in x and
            "yolox_l.onnx is an ONNX file" in x]        # one line for both DWPreprocessors: they say the same


def test_openpose_preprocessor_imports_as_dwpose_and_says_so():
    """An openpose ControlNet graph's OpenposePreprocessor (its settings named, as in an API prompt) was not
    mapped; it becomes pose.dwpose with its switches and resolution, the model swap said."""
    from app.comfyui import import_data
    res = import_data({
        "1": {"class_type": "LoadImage", "inputs": {"image": "dancer.png"}},
        "2": {"class_type": "OpenposePreprocessor", "inputs": {"image": ["1", 0], "detect_hand": "enable",
                                                                "detect_body": "enable", "detect_face": "disable",
                                                                "resolution": 768}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}})
    pose = [n for n in res.graph.nodes.values() if n.type == "pose.dwpose"]
    assert len(pose) == 1 and pose[0].params == {"hands": True, "body": True, "face": False, "resolution": 768}
    assert "OpenPose's networks (body_pose_model.pth" in res.report.text()
