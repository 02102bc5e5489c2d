"""SDPose-OOD as ComfyUI's SDPose templates run it (utility_sdpose_ood_image_to_pose, _video_to_pose_map): the
templates imported and run on a tiny random-weight SDPose checkpoint (a Lotus-style SD 2 UNet, heads of 64, the
4-wide task embedding, plus a heatmap head, in the key layout of Comfy-Org's sdpose_wholebody_fp16.safetensors:
model.diffusion_model.* with model.diffusion_model.heatmap_head.*, first_stage_model.*), against ComfyUI's code
written out here (comfy_extras/nodes_sdpose.py: the captured decoder feature, the heatmap head and its DARK decode,
the neck insertion and OpenPose remap, KeypointDraw's cv2 drawing) on the same weights with diffusers'
UNet2DConditionModel and AutoencoderKL."""
from __future__ import annotations

import colorsys
import math
import re
from pathlib import Path

import numpy as np
import pytest

from test_lotus import _prompt

TEMPLATES = Path(__file__).parent / "data" / "comfyui" / "templates"
SIZE = 64           # the templates' 1024-pixel resize, made small for the CPU
# The head's input for the tests of the video template, keypoints and boxes: a quarter of the published 768 x 1024
# each way (which the image template's test keeps), as each point is stretched, decoded and mapped back the same way at any size; at the
# published size a frame's VAE pass alone was 3 s of CPU
SMALL_INPUT = (192, 256)


@pytest.fixture
def small_input(monkeypatch):
    import nodes.pose.sdpose
    monkeypatch.setattr(nodes.pose.sdpose, "INPUT_SIZE", SMALL_INPUT)
    return SMALL_INPUT


def _tiny_nets():
    """A tiny Lotus UNet (SD 2's blocks, heads of 64, the 4-wide task embedding), an SD VAE of four levels (8x down,
    as SD's: the head's quarter-size heatmap then lands on the picture) and a head. The UNet attends on its second
    level only: the features the head reads are the same (the last up level's resnet inputs), but on the 96 x 128
    latent of the head's 768 x 1024 picture a first-level attention over all 12288 positions was three quarters of
    the UNet's time."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(64, 128), layers_per_block=2, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=1024,
                                attention_head_dim=(1, 2), use_linear_projection=True, norm_num_groups=32,
                                class_embed_type="projection", projection_class_embeddings_input_dim=4)
    unet.half().float().eval()          # the file holds float16, as the published one does
    vae = AutoencoderKL(block_out_channels=(32,) * 4, in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        layers_per_block=2, norm_num_groups=32).half().float().eval()
    # the head reads twice the first level's width (640 on SD 2's 320), peaks sharpened so keypoints score
    # over the templates' 0.5
    head = {"deconv_layers.0.weight": torch.randn(128, 128, 4, 4) * 0.05,
            "conv_layers.0.weight": torch.randn(128, 128, 1, 1) * 0.1, "conv_layers.0.bias": torch.randn(128) * 0.1,
            "final_layer.weight": torch.randn(133, 128, 1, 1) * 0.3, "final_layer.bias": torch.randn(133) * 0.1}
    return unet, vae, {k: v.half().float() for k, v in head.items()}      # float16 in the file, as published


@pytest.fixture(scope="module")
def sdpose(tmp_path_factory):
    import torch
    from safetensors.torch import save_file
    from tiny_models import sd_ldm_unet, sd_ldm_vae
    root = tmp_path_factory.mktemp("sdpose")
    unet, vae, head = _tiny_nets()
    state = {re.sub(r"^class_embedding\.", "add_embedding.", k): v for k, v in unet.state_dict().items()}
    ckpt = {"model.diffusion_model." + k: v for k, v in sd_ldm_unet(state, 2, [False, True]).items()}
    ckpt.update({"model.diffusion_model.heatmap_head." + k: v for k, v in head.items()})
    ckpt.update({"first_stage_model." + k: v for k, v in sd_ldm_vae(vae.state_dict(), 4).items()})
    models = root / "models"
    (models / "checkpoints").mkdir(parents=True)
    save_file({k: v.half().contiguous() for k, v in ckpt.items()},
              str(models / "checkpoints" / "sdpose_wholebody_fp16.safetensors"))
    rng = np.random.default_rng(5)
    frames = (rng.uniform(0, 1, (3, 48, SIZE, 3)) * np.linspace(0.3, 1, SIZE)[None, None, :, None] * 255)
    frames = frames.round().astype(np.uint8)
    mp = pytest.MonkeyPatch()
    mp.setenv("KINOGRAPH_MODELS", str(models))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {"root": root, "unet": unet, "vae": vae, "head": head, "frames": frames}
    torch.set_num_threads(threads)
    mp.undo()


# -- ComfyUI's SDPoseKeypointExtractor, HeatmapHead and KeypointDraw, written out ---------------------------------

def _comfy_feature(unet, z):
    """The UNet pass ComfyUI makes (one Euler step of a Lotus-type model: the latent as it is, timestep 999, Lotus'
    prompt and task switch [1, 0] as [sin, cos]) with its output_block_patch keeping the last joined h and skip of
    the head's width before an output block: in diffusers, the input of the last up-block resnet that wide."""
    import torch
    seen = []
    hooks = [r.register_forward_pre_hook(lambda m, a: seen.append(a[0])) for b in unet.up_blocks for r in b.resnets]
    task = torch.tensor([1.0, 0.0]).unsqueeze(0)
    task = torch.cat([torch.sin(task), torch.cos(task)], dim=-1).repeat(len(z), 1)
    with torch.no_grad():
        unet(z, torch.tensor([999]), encoder_hidden_states=_prompt().repeat(len(z), 1, 1), class_labels=task)
    for h in hooks:
        h.remove()
    return [f for f in seen if f.shape[1] == 128][-1]


def _comfy_head(head, feat):
    import torch
    from torch import nn
    deconv = nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1, output_padding=0, bias=False)
    deconv.weight.data = head["deconv_layers.0.weight"]
    conv = nn.Conv2d(128, 128, 1)
    conv.weight.data, conv.bias.data = head["conv_layers.0.weight"], head["conv_layers.0.bias"]
    final = nn.Conv2d(128, 133, 1)
    final.weight.data, final.bias.data = head["final_layer.weight"], head["final_layer.bias"]
    net = nn.Sequential(deconv, nn.InstanceNorm2d(128), nn.SiLU(), conv, nn.InstanceNorm2d(128), nn.SiLU(), final)
    with torch.no_grad():
        return net(feat).float().numpy()


def _comfy_decode(heatmaps, input_size=(768, 1024)):
    from scipy.ndimage import gaussian_filter
    input_size = np.array(input_size)
    heatmap_size = input_size // 4
    scale_factor = ((input_size - 1) / (heatmap_size - 1)).astype(np.float32)
    hm = heatmaps.copy()
    K, H, W = hm.shape
    flat = hm.reshape(K, -1)
    idx = np.argmax(flat, axis=1)
    scores = flat[np.arange(K), idx].copy()
    y_locs, x_locs = np.unravel_index(idx, (H, W))
    keypoints = np.stack([x_locs, y_locs], axis=-1).astype(np.float32)
    invalid = scores <= 0.
    keypoints[invalid] = -1
    border = 5
    for k in range(K):
        origin_max = np.max(hm[k])
        dr = np.zeros((H + 2 * border, W + 2 * border), dtype=np.float32)
        dr[border:-border, border:-border] = hm[k].copy()
        dr = gaussian_filter(dr, sigma=2.0)
        hm[k] = dr[border:-border, border:-border].copy()
        cur_max = np.max(hm[k])
        if cur_max > 0:
            hm[k] *= origin_max / cur_max
    np.clip(hm, 1e-3, 50., hm)
    np.log(hm, hm)
    hm_pad = np.pad(hm, ((0, 0), (1, 1), (1, 1)), mode='edge').flatten()
    index = keypoints[:, 0] + 1 + (keypoints[:, 1] + 1) * (W + 2)
    index += (W + 2) * (H + 2) * np.arange(0, K)
    index = index.astype(int).reshape(-1, 1)
    i_, ix1, iy1 = hm_pad[index], hm_pad[index + 1], hm_pad[index + W + 2]
    ix1y1, ix1_y1_ = hm_pad[index + W + 3], hm_pad[index - W - 3]
    ix1_, iy1_ = hm_pad[index - 1], hm_pad[index - 2 - W]
    dx, dy = 0.5 * (ix1 - ix1_), 0.5 * (iy1 - iy1_)
    derivative = np.concatenate([dx, dy], axis=1).reshape(K, 2, 1)
    dxx, dyy = ix1 - 2 * i_ + ix1_, iy1 - 2 * i_ + iy1_
    dxy = 0.5 * (ix1y1 - ix1 - iy1 + i_ + i_ - ix1_ - iy1_ + ix1_y1_)
    hessian = np.concatenate([dxx, dxy, dxy, dyy], axis=1).reshape(K, 2, 2)
    hessian = np.linalg.inv(hessian + np.finfo(np.float32).eps * np.eye(2))
    keypoints -= np.einsum('imn,ink->imk', hessian, derivative).squeeze(axis=-1)
    keypoints = keypoints * scale_factor
    keypoints[invalid] = -1
    return keypoints, scores


def _comfy_openpose(kp, sc):
    kp, sc = np.array(kp, dtype=np.float32), np.array(sc, dtype=np.float32)
    neck = (kp[5] + kp[6]) / 2
    neck_score = min(sc[5], sc[6]) if sc[5] > 0.3 and sc[6] > 0.3 else 0
    kp, sc = np.insert(kp, 17, neck, axis=0), np.insert(sc, 17, neck_score)
    mmpose_idx = np.array([17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3])
    openpose_idx = np.array([1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17])
    tmp_kp, tmp_sc = kp.copy(), sc.copy()
    tmp_kp[openpose_idx], tmp_sc[openpose_idx] = kp[mmpose_idx], sc[mmpose_idx]
    return tmp_kp, tmp_sc


LIMB_SEQ = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13], [13, 14],
            [2, 1], [1, 15], [15, 17], [1, 16], [16, 18]]
COLORS = [[255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
          [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
          [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85]]
HAND_EDGES = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [0, 9], [9, 10], [10, 11], [11, 12],
              [0, 13], [13, 14], [14, 15], [15, 16], [0, 17], [17, 18], [18, 19], [19, 20]]


def _comfy_draw(canvas, keypoints, scores, threshold, draw_body, draw_feet, draw_face, draw_hands, stick_width,
                face_point_size):
    """KeypointDraw.draw_wholebody_keypoints with its cv2 backend."""
    import cv2
    H, W, _ = canvas.shape
    if draw_body:
        for i, limb in enumerate(LIMB_SEQ):
            idx1, idx2 = limb[0] - 1, limb[1] - 1
            if scores[idx1] < threshold or scores[idx2] < threshold:
                continue
            Y = [keypoints[idx1][0], keypoints[idx2][0]]
            X = [keypoints[idx1][1], keypoints[idx2][1]]
            mX, mY = (X[0] + X[1]) / 2, (Y[0] + Y[1]) / 2
            length = math.sqrt((X[0] - X[1]) ** 2 + (Y[0] - Y[1]) ** 2)
            if length < 1:
                continue
            angle = math.degrees(math.atan2(X[0] - X[1], Y[0] - Y[1]))
            polygon = cv2.ellipse2Poly((int(mY), int(mX)), (int(length / 2), stick_width), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, COLORS[i % len(COLORS)])
        for i in range(18):
            if scores[i] < threshold:
                continue
            x, y = int(keypoints[i][0]), int(keypoints[i][1])
            if 0 <= x < W and 0 <= y < H:
                cv2.circle(canvas, (x, y), 4, COLORS[i % len(COLORS)], thickness=-1)
    if draw_feet:
        for i in range(18, 24):
            if scores[i] < threshold:
                continue
            x, y = int(keypoints[i][0]), int(keypoints[i][1])
            if 0 <= x < W and 0 <= y < H:
                cv2.circle(canvas, (x, y), 4, COLORS[i % len(COLORS)], thickness=-1)
    eps = 0.01
    if draw_hands:
        for base in (92, 113):
            for ie, edge in enumerate(HAND_EDGES):
                idx1, idx2 = base + edge[0], base + edge[1]
                if scores[idx1] < threshold or scores[idx2] < threshold:
                    continue
                x1, y1 = int(keypoints[idx1][0]), int(keypoints[idx1][1])
                x2, y2 = int(keypoints[idx2][0]), int(keypoints[idx2][1])
                if x1 > eps and y1 > eps and x2 > eps and y2 > eps:
                    if 0 <= x1 < W and 0 <= y1 < H and 0 <= x2 < W and 0 <= y2 < H:
                        r, g, b = colorsys.hsv_to_rgb(ie / float(len(HAND_EDGES)), 1.0, 1.0)
                        cv2.line(canvas, (x1, y1), (x2, y2), (int(r * 255), int(g * 255), int(b * 255)), thickness=2)
            for i in range(base, base + 21):
                if scores[i] < threshold:
                    continue
                x, y = int(keypoints[i][0]), int(keypoints[i][1])
                if x > eps and y > eps and 0 <= x < W and 0 <= y < H:
                    cv2.circle(canvas, (x, y), 4, (0, 0, 255), thickness=-1)
    if draw_face:
        for i in range(24, 92):
            if scores[i] < threshold:
                continue
            x, y = int(keypoints[i][0]), int(keypoints[i][1])
            if x > eps and y > eps and 0 <= x < W and 0 <= y < H:
                cv2.circle(canvas, (x, y), face_point_size, (255, 255, 255), thickness=-1)
    return canvas


def _comfy_remap(kp, sx, sy, offset_x=0, offset_y=0):
    kp = kp.copy()
    invalid = kp[..., 0] < 0
    kp[..., 0] = kp[..., 0] / sx + offset_x
    kp[..., 1] = kp[..., 1] / sy + offset_y
    kp[invalid] = -1
    return kp


def _comfy_pictures(sdpose, frames, draw=(True, True, True, True, 4, 2, 0.5), offset=(0, 0), size=(768, 1024)):
    """The templates' pictures of `frames` ([T, H, W, 3] uint8, any size) and the keypoints: each frame stretched
    to the head's `size`, 768x1024 (_resize_to_model: area when shrinking both ways, else bilinear), keypoints
    mapped back (and moved by a crop's `offset`)."""
    import torch
    body, hands, face, feet, stick, face_size, threshold = draw
    vae = sdpose["vae"]
    h, w = frames.shape[1:3]
    x = torch.from_numpy(frames.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    mw, mh = size
    x = torch.nn.functional.interpolate(x, size=(mh, mw), mode="area" if (mh <= h and mw <= w) else "bilinear")
    with torch.no_grad():
        # contiguous: a channels-last stride (left by the permute) only changes the convolutions' float rounding,
        # which the Newton step of the decode turns into a pixel on a random peak of a lone frame
        z = vae.encode((x * 2 - 1).contiguous()).latent_dist.mean * vae.config.scaling_factor
    heat = _comfy_head(sdpose["head"], _comfy_feature(sdpose["unet"], z))
    pictures, points = [], []
    for hm in heat:
        kp, sc = _comfy_decode(hm, size)
        kp, sc = _comfy_openpose(_comfy_remap(kp, mw / w, mh / h, *offset), sc)
        # SDPoseDrawKeypoints drops the face's two appended eye points and draws the 134 as they are
        pictures.append(_comfy_draw(np.zeros(frames.shape[1:], np.uint8), kp, sc, threshold, body, feet, face, hands,
                                    stick, face_size))
        points.append(np.concatenate([kp, sc[:, None]], axis=1))
    return np.stack(pictures), points


def _run(template: str, source: Path, out: Path, size: int = SIZE):
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    res = import_workflow(str(TEMPLATES / template))
    assert not [e for e in res.report.entries.values() if e.status == "unmapped"], res.report
    wf = load_workflow(text=res.yaml, check=False)
    for n in wf.graph.nodes.values():
        if n.type in ("io.load_image", "io.load_video"):
            n.params["path"] = str(source)
        if n.type == "io.save_frames":
            n.params["path"] = str(out)
        if n.type == "io.save_video":       # lossless, to compare pixels
            n.params.update(path=str(out), codec="ffv1")
        if n.type == "video.resize_side":
            n.params["size"] = size
    return wf, Session(device="cpu").run(wf, use_cache=False)


def test_image_template_draws_comfyuis_pose(sdpose):
    """utility_sdpose_ood_image_to_pose imported node for node (CheckpointLoaderSimple, ResizeImageMaskNode,
    SDPoseKeypointExtractor, SDPoseDrawKeypoints with the template's feet on, face points of 2, threshold 0.5) gives
    the picture ComfyUI's code draws from the same weights, pixel for pixel."""
    import cv2
    from PIL import Image
    frame = sdpose["frames"][0]
    src = sdpose["root"] / "dancer.png"
    cv2.imwrite(str(src), frame[:, :, ::-1])
    wf, run = _run("utility_sdpose_ood_image_to_pose.json", src, sdpose["root"] / "out_image")
    assert run.ok, run.failed
    png = sorted((sdpose["root"] / "out_image").rglob("*.png"))
    assert len(png) == 1
    got = np.asarray(Image.open(png[0]).convert("RGB"))
    want, points = _comfy_pictures(sdpose, frame[None])
    assert (points[0][:, 2] >= 0.5).sum() >= 20         # a skeleton with parts drawn, not an empty frame
    assert got.shape == want[0].shape
    assert np.count_nonzero(want[0].any(-1)) > 100
    assert np.array_equal(got, want[0])


def test_keypoints_are_comfyuis(sdpose, small_input):
    """The extractor's keypoints of a 3-frame clip of odd, non-square frames (45 x 61: ComfyUI stretches each to the
    head's input size, here `small_input`, and maps the points back) read in batches of 2 (the UNet's pass on frames 0-1, then the last
    batch of one, as ComfyUI's batch_size splits a clip) against ComfyUI's code on the same batches: scores to 1e-4 of
    their size, points
    within 0.05 pixel, or 1e-3 of their distance for those a nearly flat peak throws hundreds of pixels off the
    picture (the sub-pixel Newton step on random heatmaps turns float rounding of the convolutions into a few
    hundredths of a pixel)."""
    from types import SimpleNamespace
    from nodes.generate.handles import ComponentHandle, ModelHandle
    from nodes.pose.sdpose import PoseTrack, SDPose
    frames = np.ascontiguousarray(sdpose["frames"][:, 1:46, 2:63])
    pipe = SimpleNamespace(unet=sdpose["unet"], vae=sdpose["vae"])
    path = str(sdpose["root"] / "models" / "checkpoints" / "sdpose_wholebody_fp16.safetensors")
    model = SDPose(ModelHandle("sd", path, pipe), ComponentHandle("sd", path, pipe, "vae"))
    video = SimpleNamespace(length=3, width=61, height=45, fps=24.0, frames=lambda a, b: frames[a:b])
    got = PoseTrack(video, model, 2).people(0, 3)
    want = _comfy_pictures(sdpose, frames[:2], size=small_input)[1] + \
        _comfy_pictures(sdpose, frames[2:], size=small_input)[1]
    for people, w in zip(got, want):
        assert len(people) == 1
        np.testing.assert_allclose(people[0][:, :2], w[:, :2], rtol=1e-3, atol=0.05)
        np.testing.assert_allclose(people[0][:, 2], w[:, 2], rtol=1e-4)


def _comfy_people(sdpose, frame, bboxes, size):
    """SDPoseKeypointExtractor's bbox-crop mode, written out: each box (x, y, width, height) cut to whole pixels
    inside the frame, skipped when empty, its crop read alone (stretched to the head's `size`); no box: the whole
    frame."""
    if not bboxes:
        return _comfy_pictures(sdpose, frame[None], size=size)[1]
    height, width = frame.shape[:2]
    people = []
    for bbox in bboxes:
        x1, y1 = max(0, int(bbox["x"])), max(0, int(bbox["y"]))
        x2, y2 = min(width, int(bbox["x"] + bbox["width"])), min(height, int(bbox["y"] + bbox["height"]))
        if x2 <= x1 or y2 <= y1:
            continue
        people += _comfy_pictures(sdpose, np.ascontiguousarray(frame[None, y1:y2, x1:x2]), offset=(x1, y1),
                                  size=size)[1]
    return people


def test_people_in_boxes_are_comfyuis(sdpose, small_input):
    """With detect.rtdetr's boxes, one person a box read from its crop, against ComfyUI's crop mode on the same
    weights: a box reaching past the frame's top and right edges beside one left empty once cut to whole pixels;
    points within 0.05 pixel (or 1e-3 of their distance), scores to 1e-4."""
    from types import SimpleNamespace
    from nodes.common.boxes import Box, Boxes
    from nodes.generate.handles import ComponentHandle, ModelHandle
    from nodes.pose.sdpose import PoseTrack, SDPose
    frames = np.ascontiguousarray(sdpose["frames"][:1, 1:46, 2:63])
    boxes = Boxes(61, 45, (Box(20.5, -2.0, 49.5, 46.9, "person", score=0.9),
                           Box(10.2, 10.9, 0.6, 19.1, "person", score=0.7)))
    pipe = SimpleNamespace(unet=sdpose["unet"], vae=sdpose["vae"])
    path = str(sdpose["root"] / "models" / "checkpoints" / "sdpose_wholebody_fp16.safetensors")
    model = SDPose(ModelHandle("sd", path, pipe), ComponentHandle("sd", path, pipe, "vae"))
    video = SimpleNamespace(length=1, width=61, height=45, fps=24.0, frames=lambda a, b: frames[a:b])
    people = PoseTrack(video, model, 2, boxes=boxes).people(0, 1)[0]
    want = _comfy_people(sdpose, frames[0], [{"x": b.x, "y": b.y, "width": b.width, "height": b.height}
                                             for b in boxes.boxes], small_input)
    assert len(people) == len(want) == 1
    np.testing.assert_allclose(people[0][:, :2], want[0][:, :2], rtol=1e-3, atol=0.05)
    np.testing.assert_allclose(people[0][:, 2], want[0][:, 2], rtol=1e-4)
    inside = people[0][:, 0] >= 0
    assert inside.any() and people[0][inside, 0].min() >= 20       # the crop's points, moved into its box


def test_video_template_streams_a_clip(sdpose, small_input):
    """utility_sdpose_ood_video_to_pose_map (LoadVideo, GetVideoComponents, the subgraph, CreateVideo, SaveVideo)
    on a 2-frame clip (fewer than the 16 frames the template reads a pass, as 3 were): a pose video of 2 frames at
    the source's fps, each ComfyUI's picture of the frame as decoded, pixel for pixel (saved losslessly)."""
    import imageio.v3 as iio
    src = sdpose["root"] / "man_in_the_rain.mp4"
    iio.imwrite(src, sdpose["frames"][:2], fps=24, codec="libx264", quality=10)
    decoded = iio.imread(src)
    wf, run = _run("utility_sdpose_ood_video_to_pose_map.json", src, sdpose["root"] / "out_video" / "pose.mkv")
    assert run.ok, run.failed
    out = sorted((sdpose["root"] / "out_video").rglob("*.mkv"))
    assert len(out) == 1
    got = iio.imread(out[0]).astype(np.float32)
    assert iio.immeta(out[0])["fps"] == 24          # the source's, which GetVideoComponents hands CreateVideo
    want, _ = _comfy_pictures(sdpose, decoded, size=small_input)
    assert got.shape == want.shape
    assert np.count_nonzero(want.any(-1)) > 300
    assert np.array_equal(got, want)


def test_a_model_without_the_head_is_named(sdpose, tmp_path):
    """A Lotus checkpoint without SDPose's heatmap head, given to the extractor: the message names the file to
    load, not a traceback."""
    from types import SimpleNamespace
    from safetensors.torch import load_file, save_file
    from graph_engine import NodeError
    from nodes.generate.handles import ComponentHandle, ModelHandle
    from nodes.pose.sdpose import SDPose
    full = load_file(str(sdpose["root"] / "models" / "checkpoints" / "sdpose_wholebody_fp16.safetensors"))
    plain = tmp_path / "lotus_with_vae.safetensors"
    save_file({k: v for k, v in full.items() if ".heatmap_head." not in k}, str(plain))
    pipe = SimpleNamespace(unet=sdpose["unet"], vae=sdpose["vae"])
    with pytest.raises(NodeError, match="no SDPose heatmap head.*sdpose_wholebody_fp16"):
        SDPose(ModelHandle("sd", str(plain), pipe), ComponentHandle("sd", str(plain), pipe, "vae"))


HEAD = "model.diffusion_model.heatmap_head."


@pytest.mark.parametrize("damage, message", [
    ({"deconv_layers.0.weight": (128, 128, 5, 5)}, "damaged.safetensors holds tensors of shapes SDPose's heatmap head "
     "does not have (a deconvolution of kernel 5): the file is cut short or another model's; download it again"),
    ({"final_layer.weight": None}, "damaged.safetensors lacks final_layer.weight, which gives SDPose's heatmap head's "
     "size: the file is cut short or another model's; download it again"),
    ({"conv_layers.0.bias": None}, "damaged.safetensors: its heatmap head's tensors do not fit the head its shapes "
     "describe (missing conv_layers.0.bias; unexpected none): the file is damaged; download "
     "sdpose_wholebody_fp16.safetensors again"),
    ({"final_layer.weight": (3, 128, 1, 1), "final_layer.bias": (3,)}, "damaged.safetensors: its heatmap head draws "
     "3 heatmaps, where SDPose's wholebody head draws 133 (one a COCO-WholeBody keypoint): load "
     "sdpose_wholebody_fp16.safetensors (Comfy-Org/SDPose)")])
def test_a_damaged_heatmap_head_is_named(sdpose, tmp_path, damage, message):
    """A head with a 5x5 deconvolution, without its last layer or a bias, or drawing 3 heatmaps: a KeyError (5, or
    'final_layer.weight'), load_state_dict's RuntimeError, or an IndexError as the keypoints were read."""
    import torch
    from safetensors.torch import load_file, save_file
    from graph_engine import NodeError
    from nodes.pose.sdpose import build_head, head_state
    state = load_file(str(sdpose["root"] / "models" / "checkpoints" / "sdpose_wholebody_fp16.safetensors"))
    for k, shape in damage.items():
        state.pop(HEAD + k)
        if shape is not None:
            state[HEAD + k] = torch.zeros(shape, dtype=torch.float16)
    path = tmp_path / "damaged.safetensors"
    save_file(state, str(path))
    with pytest.raises(NodeError) as e:
        build_head(head_state(str(path)), str(path))
    assert str(e.value) == message
