"""Wan 2.1 Fun camera control: the Plücker embedding against rays computed directly, the camera model from
ComfyUI's single file (a tiny random-weight one), ComfyUI's camera example imported and run end to end."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError
from nodes.motion import camera as cm
from nodes.motion.embed import group_wan, plucker, plucker_wan

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


# -- the embedding ------------------------------------------------------------------------------------------
def _direct_ray(K, c2w, u, v):
    """One pixel from first principles: the ray through its centre, in world space, as [o x d, d]."""
    d_cam = np.linalg.inv(K) @ np.array([u + 0.5, v + 0.5, 1.0])
    d = c2w[:3, :3] @ (d_cam / np.linalg.norm(d_cam))
    o = c2w[:3, 3]
    return np.concatenate([np.cross(o, d), d])


def test_plucker_matches_rays_of_a_pinhole_camera_computed_directly():
    w, h = 24, 16
    k = np.array([[20.0, 0, 11.0], [0, 22.0, 9.0], [0, 0, 1]])
    rot = cm.head_rotation([0, 20.0, -35.0], [0, -10.0, 5.0], [0, 15.0, 30.0])
    c2w = cm.poses(rot, np.array([[0, 0, 0], [0.3, -0.2, 0.5], [-1.0, 0.4, 2.0]]))
    cam = cm.Camera(np.tile([20.0, 22.0, 11.0, 9.0], (3, 1)), c2w, w, h)
    emb = plucker(cam)
    assert emb.shape == (3, 6, h, w) and emb.dtype == np.float32
    for i in range(3):
        for v in range(h):
            for u in range(w):
                np.testing.assert_allclose(emb[i, :, v, u], _direct_ray(k, c2w[i], u, v), atol=1e-5)
    # the moment is the same for every point on the ray, and the ray projects back onto its pixel
    i, u, v = 2, 5, 12
    d, m = emb[i, 3:, v, u].astype(np.float64), emb[i, :3, v, u].astype(np.float64)
    x = c2w[i, :3, 3] + 3.7 * d
    np.testing.assert_allclose(np.cross(x, d), m, atol=1e-5)
    p = k @ (cm.invert_poses(c2w[i])[:3] @ np.append(x, 1))
    np.testing.assert_allclose(p[:2] / p[2], [u + 0.5, v + 0.5], atol=1e-4)
    # relative to the first frame: moving the whole path changes nothing
    g = cm.poses(cm.rot_y(np.array([0.7])), np.array([[5.0, 1.0, -2.0]]))[0]
    np.testing.assert_allclose(plucker(cm.Camera(cam.intrinsics, g @ c2w, w, h)), emb, atol=1e-5)


@pytest.mark.parametrize("pose,speed,size", [("pan_right", 2.0, (48, 32)), ("clockwise", 1.0, (32, 48)),
                                             ("zoom_out", 0.5, (32, 32))])
def test_wan_preset_rays_as_the_fun_camera_models_define_them(pose, speed, size):
    """The preset written out by hand (VideoX-Fun's definition: frame i at i/n of speed x 1.5 units or
    60 degrees; intrinsics fractions of a 1280x720 picture covering the output; Plücker rays grouped
    4 frames per latent frame with the first frame repeated) against plucker_wan."""
    w, h = size
    n = 9
    got = plucker_wan(cm.wan_preset(pose, n, w, h, speed=speed), n, w, h)
    assert got.shape == (24, 3, h, w)
    scale = max(w / 1280, h / 720)                   # the 16:9 pose picture covering w x h
    K = np.array([[0.5 * 1280 * scale, 0, w / 2], [0, 0.5 * 720 * scale, h / 2], [0, 0, 1]])
    per_frame = []
    for i in range(n):
        a = i / n * speed
        c2w = np.eye(4)
        if pose == "clockwise":
            t = np.radians(60 * a)
            c2w[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
        else:
            c2w[:3, 3] = {"pan_right": [1.5 * a, 0, 0], "zoom_out": [0, 0, -3.0 * a]}[pose]
        per_frame.append([[_direct_ray(K, c2w, u, v) for u in range(w)] for v in range(h)])
    rays = torch.tensor(np.array(per_frame)).permute(3, 0, 1, 2)[None]            # [1, 6, n, h, w]
    # the grouping as ComfyUI's WanCameraEmbedding writes it
    rays = torch.cat([rays[:, :, :1].repeat_interleave(4, dim=2), rays[:, :, 1:]], dim=2).transpose(1, 2)
    b, f, c = rays.shape[:3]
    rays = rays.reshape(b, f // 4, 4, c, h, w).transpose(2, 3).reshape(b, f // 4, c * 4, h, w).transpose(1, 2)
    np.testing.assert_allclose(got, rays[0].numpy(), atol=1e-5)


def test_wan_grouping_and_bad_lengths():
    emb = plucker(cm.preset("orbit_left", 9, 16, 8, speed=3))
    g = group_wan(emb)
    padded = [0, 0, 0, 0] + list(range(1, 9))
    for lat in range(3):
        for c in range(6):
            for k in range(4):
                np.testing.assert_array_equal(g[4 * c + k, lat], emb[padded[4 * lat + k], c])
    with pytest.raises(ValueError, match="4k\\+1.*use 5 or 9"):
        group_wan(emb[:8])
    # a shorter path holds its last pose
    short = plucker_wan(cm.wan_preset("pan_left", 3, 16, 16), 9, 16, 16)
    for k in range(4):                  # latent frame 2 (frames 5-8) repeats frame 2, the last of latent frame 1
        np.testing.assert_array_equal(short[k::4, 2], short[3::4, 1])
    with pytest.raises(ValueError, match="unknown Wan camera preset 'tilt'"):
        cm.wan_preset("tilt", 5, 16, 16)


# -- the model ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def camera_models(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_models import build_wan_comfy
    yield from models_dir(tmp_path_factory, build_wan_comfy, "wan_camera", camera=True)


@pytest.fixture(scope="module")
def mm():
    from nodes.generate.model_manager import ModelManager
    return ModelManager(max_loaded=6)


def _call(handle, x, concat, rays, text, image):
    from nodes.generate.adapters import get_adapter
    inputs = {"encoder_hidden_states": text, "encoder_hidden_states_image": image, "concat": concat}
    if rays is not None:
        inputs["camera"] = rays
    with torch.no_grad():
        return get_adapter("wan").forward(handle, x, torch.tensor([500.0]), inputs)


def test_camera_model_from_comfyui_file_equals_plain_i2v_with_a_zero_encoder(camera_models, mm):
    from diffusers import WanTransformer3DModel
    from safetensors.torch import load_file
    from nodes.generate.split import load_diffusion_model
    g = torch.Generator().manual_seed(0)
    x, concat = torch.randn(1, 16, 2, 4, 4, generator=g), torch.randn(1, 16, 2, 4, 4, generator=g)
    text, image = torch.randn(1, 6, 32, generator=g), torch.randn(1, 5, 32, generator=g)
    rays = torch.from_numpy(plucker_wan(cm.wan_preset("pan_left", 5, 32, 32, speed=3), 5, 32, 32))[None]
    plain = WanTransformer3DModel.from_pretrained(str(camera_models / "diffusers" / "transformer")).eval()
    with torch.no_grad():
        want = plain(hidden_states=torch.cat([x, concat], 1), timestep=torch.tensor([500.0]),
                     encoder_hidden_states=text, encoder_hidden_states_image=image, return_dict=False)[0]

    zero = load_diffusion_model(mm, "wan_tiny_camera_zero_fp16.safetensors", "default", "cpu")
    assert zero.denoiser.config.in_channels == 32
    got = _call(zero, x, concat, rays, text, image)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()

    model = load_diffusion_model(mm, "wan_tiny_camera_fp16.safetensors", "default", "cpu")
    stored = load_file(str(camera_models / "models" / "diffusion_models" / "wan_tiny_camera_fp16.safetensors"))
    for key in ("control_adapter.conv.weight", "control_adapter.residual_blocks.0.conv2.bias"):
        assert torch.equal(model.denoiser.state_dict()[key], stored[key].float())
    moved = _call(model, x, concat, rays, text, image)
    assert (moved - want).abs().max() > 1e-2                          # the camera steers the prediction
    assert torch.allclose(_call(model, x, concat, None, text, image), want, atol=1e-5)      # no camera: plain
    other = torch.from_numpy(plucker_wan(cm.wan_preset("zoom_in", 5, 32, 32, speed=3), 5, 32, 32))[None]
    assert (_call(model, x, concat, other, text, image) - moved).abs().max() > 1e-3
    # one camera for a batch of two (a guided call) equals the camera given to each item
    xs, cs, ts, ims = torch.cat([x, -x]), torch.cat([concat] * 2), torch.cat([text] * 2), torch.cat([image] * 2)
    shared = _call(model, xs, cs, rays, ts, ims)
    each = _call(model, xs, cs, torch.cat([rays, rays]), ts, ims)
    assert torch.allclose(shared, each, atol=1e-6) and torch.allclose(shared[:1], moved, atol=1e-5)


def test_bad_camera_files_and_wiring_say_what_is_wrong(camera_models, mm, tmp_path):
    from safetensors.torch import load_file, save_file
    from nodes.generate.image_cond import condition_camera, condition_frames
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.model_manager import describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_vae
    from nodes.generate.vae_ops import empty_latent
    folder = camera_models / "models" / "diffusion_models"
    state = load_file(str(folder / "wan_tiny_camera_fp16.safetensors"))
    info = describe_model(folder / "wan_tiny_camera_fp16.safetensors")
    assert (info["family"], info["variant"], info["loads"]) == ("wan", "camera-dim128", "yes")

    cut = {k: v for k, v in state.items() if not k.startswith("control_adapter.residual_blocks.0.conv2")}
    save_file(cut, str(tmp_path / "cut.safetensors"))
    with pytest.raises(NodeError, match="missing.*control_adapter.residual_blocks.0.conv2"):
        load_diffusion_model(mm, str(tmp_path / "cut.safetensors"), "default", "cpu")
    wide = dict(state, **{"patch_embedding.weight": torch.zeros(128, 36, 1, 2, 2, dtype=torch.float16)})
    save_file(wide, str(tmp_path / "wide.safetensors"))
    with pytest.raises(NodeError, match="reads 36 input channels and CLIP image tokens.*Wan 2.2 \\(36: noise, start-frame"):
        load_diffusion_model(mm, str(tmp_path / "wide.safetensors"), "default", "cpu")

    vae = load_vae(mm, "wan_tiny_vae.safetensors", "cpu")
    pos = Conditioning("wan", torch.zeros(1, 4, 32))
    img = np.zeros((32, 32, 3), np.uint8)
    odd = Latent(torch.zeros(1, 16, 2, 4, 4), "wan", 6, 16.0, 32, 32)
    with pytest.raises(NodeError, match="4k\\+1"):
        condition_camera(vae, pos, None, odd, cm.wan_preset("static", 6, 32, 32), img, None)
    lat = empty_latent(vae, 5, 32, 32, 16.0)
    tokens = Conditioning("wan", torch.zeros(1, 5, 32))
    model = load_diffusion_model(mm, "wan_tiny_camera_fp16.safetensors", "default", "cpu")
    framed = condition_frames(vae, pos, None, lat, img, None, tokens)
    with pytest.raises(NodeError, match="through condition.camera, not condition.frames"):
        run_sampling(model, framed["positive"], None, lat, steps=1, cfg=1.0, sampler="euler")
    camera = condition_camera(vae, pos, None, lat, cm.wan_preset("pan_up", 5, 32, 32), img, tokens)["positive"]
    assert camera.extra["concat"].shape == (1, 16, 2, 4, 4) and camera.extra["camera"].shape == (1, 24, 2, 32, 32)
    assert camera.extra["concat"][:, :, 1:].abs().max() == 0          # only the start frame is pinned
    # a wider picture is centre-cropped (as ComfyUI's WanCameraImageToVideo does), not squeezed
    wide = np.random.default_rng(5).integers(0, 255, (32, 64, 3), dtype=np.uint8)
    centre = condition_camera(vae, pos, None, lat, None, np.ascontiguousarray(wide[:, 16:48]), None)["positive"]
    cropped = condition_camera(vae, pos, None, lat, None, wide, None)["positive"]
    assert torch.allclose(cropped.extra["concat"], centre.extra["concat"], atol=1e-5)
    assert "camera" not in cropped.extra
    plain = load_diffusion_model(mm, str(camera_models / "diffusers" / "transformer" /
                                         "diffusion_pytorch_model.safetensors"), "default", "cpu")
    with pytest.raises(NodeError, match="needs a Wan Fun camera-control model"):
        run_sampling(plain, camera, None, lat, steps=1, cfg=1.0, sampler="euler")


# -- ComfyUI's example ----------------------------------------------------------------------------------------
def test_comfyui_camera_example_imports_and_runs_on_tiny_models(camera_models, tmp_path):
    """ComfyUI_examples' wan/camera_image_to_video_wan_example.json: imported (every node mapped), the model
    names remapped to the tiny files, shrunk to 5 frames of 32x32 and run end to end."""
    from PIL import Image
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    result = import_workflow(ROOT / "tests" / "data" / "comfyui" / "wan_camera_i2v.json")
    assert not result.report.blocking
    assert result.report.entries["56"].status == result.report.entries["57"].status == "exact"
    g = result.graph
    types = {n.type for n in g.nodes.values()}
    assert {"motion.wan_camera", "condition.camera", "load.diffusion_model", "load.clip_vision"} <= types
    cam = next(n for n in g.nodes.values() if n.type == "motion.wan_camera")
    lat = next(n for n in g.nodes.values() if n.type == "latent.empty")
    # WanCameraImageToVideo's width, height and length come from WanCameraEmbedding's outputs in the file
    assert (lat.params["width"], lat.params["height"], lat.params["frames"]) == (512, 512, 81)
    assert cam.params == {"pose": "zoom_out", "width": 512, "height": 512, "frames": 81, "speed": 1, "fx": 0.5,
                          "fy": 0.5, "cx": 0.5, "cy": 0.5}
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    from comfy_layouts import on_tiny_wan
    small = dict(frames=5, width=32, height=32)
    on_tiny_wan(g, "wan_tiny_camera_fp16.safetensors", {
        "motion.wan_camera": small, "latent.empty": small, "generate.sample": {"steps": 2},
        "io.load_image": {"path": str(tmp_path / "in.png")}, "io.save_video": {"path": str(tmp_path / "out.webp")}})
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    with Image.open(tmp_path / "out.webp") as im:
        assert im.n_frames == 5


def test_shipped_example_drives_the_model_with_a_keyframed_camera_path(camera_models, tmp_path):
    """examples/comfyui/wan_camera.yaml: motion.camera_path (schedules, not a Wan preset) into condition.camera;
    the same graph with a still camera gives another video."""
    from comfy_layouts import run_example
    small = ["unet.name=wan_tiny_camera_fp16.safetensors", "clip.name=umt5_tiny_fp16.safetensors",
             "vae.name=wan_tiny_vae.safetensors", "vision.name=clip_vision_tiny.safetensors", "cam.frames=5",
             "cam.width=32", "cam.height=32", "latent.frames=5", "latent.width=32", "latent.height=32",
             "sample.steps=2"]
    moving, frames = run_example("wan_camera", camera_models / "models", tmp_path / "a.mp4", small)
    assert frames.shape[:3] == (5, 32, 32)
    still, _ = run_example("wan_camera", camera_models / "models", tmp_path / "b.mp4",
                           small + ["cam.translation_z=0", "cam.translation_y=0", "cam.rotation_roll=0"])
    assert (moving - still).abs().max() > 1e-3
