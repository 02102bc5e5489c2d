"""Wan 2.2's Fun models, tiny random-weight experts in ComfyUI's single-file layout.

Fun Control (wan2.2_fun_control_{high,low}_noise_14B): ComfyUI's Wan22FunControlToVideo was not mapped, so both of
ComfyUI's Wan 2.2 Fun Control templates stopped at import. The model reads noise, a control video, a start-frame mask
and a start frame side by side, and a reference image as tokens ahead of the video's (ref_conv).
Fun camera (wan2.2_fun_camera_{high,low}_noise_14B): the template imported, then the files were refused ("not the
Wan 2.2 ones yet"). The model reads noise, a start-frame mask and the start frame, and Wan Fun's camera encoder."""
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import Clip, NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_wan_fun_control import _video  # noqa: E402

HIGH, LOW = (f"wan22_tiny_fun_control_{e}_noise_fp16.safetensors" for e in ("high", "low"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"


def wan22_fun(root):
    from tiny_wan22 import build_wan22_experts, build_wan22_fun_inpaint
    build_wan22_fun_inpaint(root)
    return build_wan22_experts(root, "fun_control", "fun_camera")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from comfy_layouts import built
    with pytest.MonkeyPatch.context() as mp:
        for root in built(wan22_fun, tmp_path_factory):
            mp.setenv("KINOGRAPH_MODELS", str(root / "models"))
            yield root


@pytest.fixture(scope="module")
def mm():
    from nodes.generate.model_manager import ModelManager
    return ModelManager(max_loaded=6)


def _encode(vae, frames):
    from nodes.generate.adapters import get_adapter
    px = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        return get_adapter("wan").vae_encode(vae.pipe, px)


def test_the_reference_is_a_latent_frame_before_the_video(models, mm):
    """Detected as Wan 2.2 Fun Control with its ref_conv loaded. With ref_conv set to the patch embedding's weights
    for the latent channels, the reference tokens are what the patch embedding makes of a frame holding the
    reference latent (zeros in the conditioning channels): the model's prediction for the video then equals
    diffusers' plain forward over that frame put before the video, its first frame of output dropped."""
    from nodes.generate.model_manager import describe_model
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.wan_reference import reference_input
    info = describe_model(models / "models" / "diffusion_models" / HIGH)
    assert (info["variant"], info["loads"]) == ("control-2.2-dim128", "yes")
    model = load_diffusion_model(mm, HIGH, "default", "cpu").pipe.transformer
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(1, 52, 3, 4, 6, generator=g), torch.randn(1, 4, 32, generator=g)
    ref = torch.randn(1, 16, 4, 6, generator=g)
    t = torch.tensor([500.0])
    conv = torch.nn.Conv2d(16, 128, 2, stride=2)
    with torch.no_grad():
        conv.weight.copy_(model.patch_embedding.weight[:, :16, 0])
        conv.bias.copy_(model.patch_embedding.bias)
        saved, model.ref_conv = model.ref_conv, conv
        try:
            with reference_input(model, ref):
                got = model(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]
            framed = torch.cat([torch.cat([ref, ref.new_zeros(1, 36, 4, 6)], 1)[:, :, None], x], dim=2)
            want = model(hidden_states=framed, timestep=t, encoder_hidden_states=text, return_dict=False)[0][:, :, 1:]
        finally:
            model.ref_conv = saved
    assert got.shape == (1, 16, 3, 4, 6)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_the_model_reads_control_mask_and_start_frame_as_comfyui_lays_them(models, mm):
    """What the transformer is given: noise, then the control video's latents (zeros after its latent frames), the
    4-channel start-frame mask (1 on the start frame's latent frame) and the start frame's latent, each against
    the VAE's own encoding; the reference image's latent goes to ref_conv. Two reference images give two videos."""
    from nodes.generate.image_cond import condition_fun_control
    from nodes.generate.latent import Conditioning
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_vae
    from nodes.generate.vae_ops import empty_latent
    vae = load_vae(mm, "wan_tiny_vae.safetensors", "cpu")
    handle = load_diffusion_model(mm, HIGH, "default", "cpu")
    model = handle.pipe.transformer
    pos = Conditioning("wan", torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(1)))
    lat = empty_latent(vae, 9, 48, 32, 16.0)                            # 3 latent frames
    control, first = _video(5, 1), _video(1, 2)[0]
    seen = {}

    def sample(reference, start=first):
        cond = condition_fun_control(vae, pos, None, lat, Clip.from_array(control, 16.0), start, None,
                                     reference)["positive"]
        hooks = [model.patch_embedding.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0].clone())),
                 model.ref_conv.register_forward_pre_hook(lambda m, a: seen.__setitem__("ref", a[0].clone()))]
        try:
            return run_sampling(handle, cond, None, lat, steps=2, cfg=1.0, sampler="euler", seed=3).samples
        finally:
            for h in hooks:
                h.remove()
    a = sample(_video(1, 3)[0])
    x = seen["x"]
    assert x.shape == (1, 52, 3, 4, 6)
    assert torch.allclose(x[:, 16:32, :2], _encode(vae, control), atol=1e-4) and x[:, 16:32, 2:].abs().max() == 0
    assert torch.equal(x[:, 32:36, :1], torch.ones(1, 4, 1, 4, 6)) and x[:, 32:36, 1:].abs().max() == 0
    assert torch.allclose(x[:, 36:, :1], _encode(vae, first[None]), atol=1e-4) and x[:, 36:, 1:].abs().max() == 0
    assert torch.allclose(seen["ref"], _encode(vae, _video(1, 3))[:, :, 0], atol=1e-4)
    b = sample(_video(1, 4)[0])
    assert (a - b).abs().max() > 1e-3
    sample(None, start=None)                     # ComfyUI's node has no start image: mask and start channels zero
    assert seen["x"][:, 32:].abs().max() == 0 and "ref" in seen


def test_a_reference_for_a_model_without_ref_conv_is_named():
    from diffusers import WanTransformer3DModel
    from nodes.generate.wan_reference import reference_input
    plain = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=16, in_channels=16,
                                  out_channels=16, text_dim=32, freq_dim=32, ffn_dim=16, num_layers=1)
    with pytest.raises(NodeError, match="Wan 2.2 Fun Control.*no ref_conv"):
        with reference_input(plain, torch.zeros(1, 16, 2, 2)):
            pass


def _tiny(graph, kind, tmp_path, size=(48, 32)):
    """The imported template on the tiny files: each ComfyUI model name to its tiny counterpart, 5 frames of 48x32,
    two steps (each expert one), the inputs and outputs in tmp_path."""
    import imageio.v3 as iio
    from PIL import Image
    iio.imwrite(tmp_path / "control.mp4", _video(8, 6), fps=16, codec="libx264")
    Image.fromarray(_video(1, 2)[0]).save(tmp_path / "image.png")
    for n in graph.nodes.values():
        if n.type == "load.diffusion_model":
            n.params["name"] = "wan22_tiny_fun_inpaint_5B_fp16.safetensors" if "5B" in n.params["name"] else \
                f"wan22_tiny_{kind}_{'high' if 'high' in n.params['name'] else 'low'}_noise_fp16.safetensors"
        elif n.type == "load.text_encoder":
            n.params["name"] = "umt5_tiny_fp16.safetensors"
        elif n.type == "load.vae":
            n.params["name"] = "wan22_tiny_vae.safetensors" if "2.2" in n.params["name"] else "wan_tiny_vae.safetensors"
        elif n.type in ("latent.empty", "motion.wan_camera"):
            n.params.update(frames=5, width=size[0], height=size[1])
        elif n.type == "generate.sample":
            n.params["steps"] = 2
            for k in ("start_step", "end_step"):
                if 0 < n.params.get(k, 0) < 10000:
                    n.params[k] = 1
        elif n.type == "io.load_image":
            n.params["path"] = str(tmp_path / "image.png")
        elif n.type == "io.load_video":
            n.params["path"] = str(tmp_path / "control.mp4")
        elif n.type.startswith("io.save"):
            n.params["path"] = str(tmp_path / ("out" + Path(n.params["path"]).suffix))


def _run(result, tmp_path, size=(48, 32)):
    import imageio.v3 as iio
    from graph_engine.api import Session, load_workflow
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    (out,) = [p for p in tmp_path.iterdir() if p.name.startswith("out")]
    assert iio.imread(out).shape[:3] == (5, size[1], size[0])
    return res


def test_comfyuis_wan22_fun_control_template_runs_on_tiny_experts(models, tmp_path):
    """ComfyUI's video_wan2_2_14B_fun_control template: Wan22FunControlToVideo becomes condition.fun_control with
    the control video (the template's Canny is bypassed: its video is a control video already) and the reference
    image; the two experts, each on its half of the steps, run to a video of the template's length."""
    from app.comfyui import import_workflow
    result = import_workflow(TEMPLATES / "video_wan2_2_14B_fun_control.json")
    assert result.report.exit_code == 0 and not result.report.blocking
    g = result.graph
    (cond,) = [n for n in g.nodes.values() if n.type == "condition.fun_control"]
    assert g.nodes[g.inputs[cond.id]["reference"][0]].type == "io.load_image"
    assert g.nodes[g.inputs[cond.id]["control"][0]].type == "io.load_video"
    _tiny(g, "fun_control", tmp_path)
    _run(result, tmp_path)


def test_wan22_fun_camera_reads_mask_and_start_frame_and_its_template_runs(models, mm, tmp_path):
    """The Wan 2.2 Fun camera files load (36 input channels) and the model is given noise, the start-frame mask (1 on
    the start frame's latent frame, as ComfyUI's WanCameraImageToVideo) and the start frame's latent; another camera
    move gives another video. ComfyUI's video_wan2_2_14B_fun_camera template runs on the two tiny experts."""
    from app.comfyui import import_workflow
    from nodes.generate.image_cond import condition_camera
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_vae
    from nodes.generate.vae_ops import empty_latent
    from nodes.motion.camera import wan_preset
    name = "wan22_tiny_fun_camera_high_noise_fp16.safetensors"
    assert describe_model(models / "models" / "diffusion_models" / name)["loads"] == "yes"
    handle = load_diffusion_model(mm, name, "default", "cpu")
    vae = load_vae(mm, "wan_tiny_vae.safetensors", "cpu")
    lat = empty_latent(vae, 5, 48, 32, 16.0)
    pos = Conditioning("wan", torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(1)))
    seen = []
    hook = handle.pipe.transformer.patch_embedding.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    try:
        outs = [run_sampling(handle, condition_camera(vae, pos, None, lat, wan_preset(pose, 5, 48, 32), _video(1, 2)[0],
                                                    None)["positive"], None, lat, steps=1, cfg=1.0, sampler="euler", seed=3).samples
                for pose in ("pan_left", "zoom_in")]
    finally:
        hook.remove()
    x = seen[0]
    assert x.shape == (1, 36, 2, 4, 6)
    assert torch.equal(x[:, 16:20, :1], torch.ones(1, 4, 1, 4, 6)) and x[:, 16:20, 1:].abs().max() == 0
    assert torch.allclose(x[:, 20:, :1], _encode(vae, _video(1, 2))[:, :, :1], atol=1e-4)
    assert x[:, 20:, 1:].abs().max() == 0
    assert (outs[0] - outs[1]).abs().max() > 1e-4
    result = import_workflow(TEMPLATES / "video_wan2_2_14B_fun_camera.json")
    assert result.report.exit_code == 0
    _tiny(result.graph, "fun_camera", tmp_path)
    _run(result, tmp_path)


def test_wan22_fun_inpaint_5B_reads_its_frames_and_its_template_runs(models, mm, tmp_path):
    """Wan 2.2 Fun InP 5B (Wan 2.2 VAE latents, 100 input channels) was taken for a text-to-video model and its
    template stopped at "this is Wan 2.2 TI2V-5B ... connect the image to latent.empty's start_image". The model is given
    noise, the mask (1 on the first frame's latent frame and on the last pixel frame) and the first frame's latent, as ComfyUI's
    WanFunInpaintToVideo lays them; ComfyUI's video_wan2_2_5B_fun_inpaint template runs on the tiny file."""
    from app.comfyui import import_workflow
    from nodes.generate.image_cond import condition_frames
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_vae
    from nodes.generate.vae_ops import empty_latent
    name = "wan22_tiny_fun_inpaint_5B_fp16.safetensors"
    assert describe_model(models / "models" / "diffusion_models" / name)["variant"] == "i2v-2.2-dim128"
    handle = load_diffusion_model(mm, name, "default", "cpu")
    vae = load_vae(mm, "wan22_tiny_vae.safetensors", "cpu")
    lat = empty_latent(vae, 9, 64, 64, 24.0)                            # 3 latent frames
    first, last = _video(1, 2, 64, 64)[0], _video(1, 3, 64, 64)[0]
    pos = Conditioning("wan", torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(1)))
    seen = []
    hook = handle.pipe.transformer.patch_embedding.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    try:
        run_sampling(handle, condition_frames(vae, pos, None, lat, first, last, None)["positive"], None, lat, steps=1,
                     cfg=1.0, sampler="euler", seed=3)
    finally:
        hook.remove()
    x = seen[0]
    assert x.shape == (1, 100, 3, 4, 4)
    mask = torch.zeros(1, 4, 3, 4, 4)            # one channel per pixel frame of a latent frame: the last pinned alone
    mask[:, :, 0] = mask[:, 3, 2] = 1
    assert torch.equal(x[:, 48:52], mask)
    assert torch.allclose(x[:, 52:, :1], _encode(vae, first[None]), atol=1e-4)
    result = import_workflow(TEMPLATES / "video_wan2_2_5B_fun_inpaint.json")
    assert not result.report.blocking
    _tiny(result.graph, "", tmp_path, size=(64, 64))
    _run(result, tmp_path, size=(64, 64))


def test_an_incomplete_wan22_s2v_file_is_named(tmp_path, mm):
    """Wan 2.2 S2V files were refused as unsupported; they load now (tests/test_wan_s2v.py). One lacking its sound
    encoder's tensors is named as incomplete, not a KeyError."""
    from safetensors.torch import save_file
    from nodes.generate.split import load_diffusion_model
    path = tmp_path / "diffusion_models" / "wan2.2_tiny.safetensors"
    path.parent.mkdir()
    save_file({"head.modulation": torch.zeros(1, 2, 128), "patch_embedding.weight": torch.zeros(128, 16, 1, 2, 2),
               "casual_audio_encoder.encoder.final_linear.weight": torch.zeros(128, 4)}, str(path))
    with pytest.raises(NodeError, match=r"this Wan 2.2 S2V file lacks part .*casual_audio_encoder.weights.*Copy the "):
        load_diffusion_model(mm, str(path), "default", "cpu")
