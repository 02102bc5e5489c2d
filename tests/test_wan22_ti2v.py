"""Wan 2.2 TI2V-5B: its VAE (wan2.2_vae.safetensors) and diffusion model in ComfyUI's original key layout,
loaded through the split loaders and compared with the same tiny model's diffusers folder; the start image
kept as the first latent frame (ComfyUI's Wan22ImageToVideoLatent) against diffusers' own TI2V pipeline;
ComfyUI's public 5B example workflows run end to end on the tiny files."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DATA = ROOT / "tests" / "data" / "comfyui"
FILES = {"UNETLoader": "wan22_tiny_ti2v_fp16.safetensors", "CLIPLoader": "umt5_tiny_fp16.safetensors",
         "VAELoader": "wan22_tiny_vae.safetensors"}


@pytest.fixture(scope="module")
def w22(tmp_path_factory):
    from tiny_wan22 import build_wan22_comfy
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    mp = pytest.MonkeyPatch()
    root = build_wan22_comfy(tmp_path_factory.mktemp("wan22"))
    mp.setenv("KINOGRAPH_MODELS", str(root / "models"))
    yield root
    mp.undo()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def parts(w22):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    mm = ModelManager(max_loaded=8)
    folder = mm.load("wan", str(w22 / "diffusers"))
    split = {"model": load_diffusion_model(mm, FILES["UNETLoader"], "default", "cpu"),
             "text_encoder": load_text_encoder(mm, FILES["CLIPLoader"], "", "wan", "cpu"),
             "vae": load_vae(mm, FILES["VAELoader"], "cpu")}
    return {"folder": {"model": folder, **mm.components(folder)}, "split": split}


def _image(seed=0, size=64):
    return np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)


def _sample(p, image, frames=5, size=64, steps=2, seed=1):
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    pos, neg = (encode_prompt(p["text_encoder"], t) for t in ("a fox", ""))
    lat = empty_latent(p["vae"], frames, size, size, 24.0, image)
    return lat, run_sampling(p["model"], pos, neg, lat, steps=steps, cfg=4.0, sampler="flow_euler", seed=seed)


def test_comfyui_files_match_the_diffusers_folder(parts):
    """wan2.2_vae and the TI2V-5B diffusion model in the original layout == the diffusers folder."""
    from nodes.generate.adapters import get_adapter
    folder, split = parts["folder"], parts["split"]
    vae = split["vae"].pipe.vae
    assert vae.config.z_dim == 48 and vae.config.is_residual and vae.config.patch_size == 2
    assert split["vae"].pipe.vae_scale_factor_spatial == 16
    assert split["model"].pipe.config.expand_timesteps and folder["model"].pipe.config.expand_timesteps
    assert split["model"].pipe.scheduler.config.flow_shift == 5.0
    ad = get_adapter("wan")
    px = torch.from_numpy(_image(3)).permute(2, 0, 1)[None, :, None].float() / 127.5 - 1
    with torch.inference_mode():
        z_split, z_folder = ad.vae_encode(split["vae"].pipe, px), ad.vae_encode(folder["vae"].pipe, px)
        assert z_split.shape == (1, 48, 1, 4, 4)
        assert torch.allclose(z_split, z_folder, atol=1e-5)
        assert torch.allclose(ad.vae_decode(split["vae"].pipe, z_split), ad.vae_decode(folder["vae"].pipe, z_folder),
                              atol=1e-5)
    (l1, ref), (l2, got) = _sample(folder, _image()), _sample(split, _image())
    assert torch.allclose(l1.samples, l2.samples, atol=1e-5) and torch.equal(l1.mask, l2.mask)
    assert torch.allclose(got.samples, ref.samples, atol=1e-5), (got.samples - ref.samples).abs().max()


def test_start_image_sampling_matches_diffusers_ti2v_pipeline(w22):
    """The kept first frame, per-token timesteps and all: Kinograph's run == WanImageToVideoPipeline with
    expand_timesteps (how diffusers runs TI2V-5B), same components, seed and noise levels."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline
    from PIL import Image
    from nodes.generate.model_manager import ModelManager
    mm = ModelManager()                     # its own pipeline: the scheduler swap must not leak
    h = mm.load("wan", str(w22 / "diffusers"))
    h.pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=5.0)
    p = h.pipe
    lat, ours = _sample({"model": h, **mm.components(h)}, _image(), frames=9, steps=3, seed=7)
    ref_pipe = WanImageToVideoPipeline(tokenizer=p.tokenizer, text_encoder=p.text_encoder, vae=p.vae,
                                       scheduler=p.scheduler, transformer=p.transformer, expand_timesteps=True)
    ref = ref_pipe(image=Image.fromarray(_image()), prompt="a fox", negative_prompt="", height=64, width=64,
                   num_frames=9, num_inference_steps=3, guidance_scale=4.0, generator=torch.Generator().manual_seed(7),
                   output_type="latent").frames
    err = float((ref - ours.samples).abs().max()) / float(ref.abs().max())
    assert err < 1e-4, err
    assert torch.equal(ours.samples[:, :, :1], lat.samples[:, :, :1])     # the start frame, untouched
    assert not torch.allclose(ours.samples[:, :, 1:], lat.samples[:, :, 1:])


def _import_tiny(name, tmp_path, image=None):
    from app.comfyui import import_workflow
    result = import_workflow(DATA / name)
    g = result.graph
    for n in g.nodes.values():
        assert not n.type.startswith("comfyui."), n.type
        if n.type == "load.diffusion_model":
            n.params["name"] = FILES["UNETLoader"]
        elif n.type == "load.text_encoder":
            n.params["name"] = FILES["CLIPLoader"]
        elif n.type == "load.vae":
            n.params["name"] = FILES["VAELoader"]
        elif n.type == "latent.empty":
            n.params.update(frames=5, width=64, height=64)
        elif n.type == "generate.sample":
            n.params["steps"] = 2
        elif n.type == "io.load_image":
            n.params["path"] = str(image)
        elif n.type.startswith("io.save"):
            n.params["path"] = str(tmp_path / Path(n.params["path"]).name)
    return result


def _run(result):
    from graph_engine.api import Session, load_workflow
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    return res


def _first_frame(res, graph):
    dec = next(n.id for n in graph.nodes.values() if n.type == "vae.decode")
    return res.outputs[dec]["video"].frames(0, 1)[0].astype(int)


def test_public_wan22_i2v_5B_workflow_runs_with_its_start_image(w22, parts, tmp_path):
    """ComfyUI's image_to_video_wan22_5B example on the tiny files: the video starts with the start image (as
    the Wan 2.2 VAE sees it: its round trip), and a different start image starts a different video."""
    from PIL import Image
    from nodes.generate.vae_ops import decode_latent, empty_latent
    frames = {}
    for seed in (0, 1):
        png = tmp_path / f"start{seed}.png"
        Image.fromarray(_image(seed)).save(png)
        out = tmp_path / f"run{seed}"
        out.mkdir()
        result = _import_tiny("wan22_i2v_5B.json", out, png)
        assert result.report.exit_code == 0          # every node exact (uni_pc is ComfyUI's own)
        res = _run(result)
        frames[seed] = _first_frame(res, result.graph)
        assert sorted(p.suffix for p in out.iterdir()) == [".webm", ".webp"]
        vae = parts["split"]["vae"]
        start = empty_latent(vae, 1, 64, 64, 24.0, _image(seed))
        round_trip = decode_latent(vae, start).frames(0, 1)[0].astype(int)
        assert np.abs(frames[seed] - round_trip).max() <= 1
    # Same seed and prompt: only the start image differs (each frame within 1 of its own image's round trip).
    assert np.abs(frames[0] - frames[1]).mean() > 2


def test_public_wan22_t2v_5B_workflow_runs_on_ti2v_files(w22, tmp_path):
    result = _import_tiny("wan22_t2v_5B.json", tmp_path)
    res = _run(result)
    lat = next(n.id for n in result.graph.nodes.values() if n.type == "latent.empty")
    assert res.outputs[lat]["latent"].mask is None and res.outputs[lat]["latent"].samples.shape[1] == 48
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".webm", ".webp"]


def test_wrong_parts_and_damaged_files_are_named(w22, parts, tmp_path):
    from diffusers import WanPipeline, WanTransformer3DModel
    from safetensors.torch import load_file, save_file
    from tiny_models import wan_scheduler, wan_vae
    from nodes.generate.handles import ComponentHandle, ModelHandle
    from nodes.generate.image_cond import condition_frames
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    split = parts["split"]
    # a start image with the Wan 2.1 VAE, and a kept-frame latent given to a Wan model that is not TI2V-5B
    vae21 = ComponentHandle("wan", "wan_2.1_vae", WanPipeline(vae=wan_vae(), transformer=None, tokenizer=None,
                                                              text_encoder=None, scheduler=None), "vae")
    with pytest.raises(NodeError, match="Wan 2.2 TI2V-5B.*condition.frames"):
        empty_latent(vae21, 5, 64, 64, 16.0, _image())
    t2v = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=16, in_channels=16,
                                out_channels=16, text_dim=32, freq_dim=32, ffn_dim=16, num_layers=1)
    model21 = ModelHandle("wan", "wan21", WanPipeline(transformer=t2v, scheduler=wan_scheduler(), vae=None,
                                                      tokenizer=None, text_encoder=None))
    lat, _ = _sample(split, _image(), steps=1)
    cond = encode_prompt(split["text_encoder"], "a fox")
    with pytest.raises(NodeError, match="only Wan 2.2 TI2V-5B"):
        run_sampling(model21, cond, None, lat, steps=1, cfg=1.0, sampler="flow_euler")
    # Kinograph's other image-to-video path, on TI2V-5B, points at latent.empty's start_image (when the model samples:
    # the Wan 2.2 VAE alone serves Fun InP 5B's frames too)
    plain = empty_latent(split["vae"], 5, 64, 64, 24.0)
    framed = condition_frames(split["vae"], cond, None, plain, _image(), None, None)["positive"]
    with pytest.raises(NodeError, match="start_image"):
        run_sampling(split["model"], framed, None, plain, steps=1, cfg=1.0, sampler="flow_euler")
    # a size the 2x2 patches of TI2V-5B cannot tile (16x space: 48 px is 3 latent pixels): latent.empty says so,
    # and the sampler too when a latent of that size comes another way (latent.upscale)
    with pytest.raises(NodeError, match=r"divisible by 32; 48x48 is not\. Try 64x64"):
        empty_latent(split["vae"], 5, 48, 48, 24.0, _image(size=48))
    from nodes.generate.latent import upscale_latent
    odd = upscale_latent(empty_latent(split["vae"], 5, 64, 64, 24.0, _image(size=64)), 0.75)
    with pytest.raises(NodeError, match=r"by 32 \(Wan 2.2 TI2V-5B\)"):
        run_sampling(split["model"], cond, None, odd, steps=1, cfg=1.0, sampler="flow_euler")
    # a damaged wan2.2_vae file: one block's weights missing
    state = load_file(str(w22 / "models" / "vae" / FILES["VAELoader"]))
    del state["decoder.upsamples.1.upsamples.0.residual.2.weight"]
    bad = tmp_path / "wan2.2_vae_damaged.safetensors"
    save_file(state, str(bad))
    with pytest.raises(NodeError, match="wan2.2_vae_damaged.*missing.*damaged"):
        load_vae(ModelManager(), str(bad), "cpu")
    cut = tmp_path / "wan2.2_vae_cut.safetensors"           # an interrupted copy
    cut.write_bytes((w22 / "models" / "vae" / FILES["VAELoader"]).read_bytes()[:100000])
    with pytest.raises(NodeError, match="wan2.2_vae_cut.*truncated.*Copy the file again"):
        load_vae(ModelManager(), str(cut), "cpu")


def test_two_samplers_sharing_a_schedule_keep_the_start_frame(parts):
    """KSamplerAdvanced-style halves (leftover noise, then no new noise) == one run, start frame kept."""
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    p = parts["split"]
    lat, whole = _sample(p, _image(), steps=4, seed=5)
    pos, neg = (encode_prompt(p["text_encoder"], t) for t in ("a fox", ""))
    kw = dict(steps=4, cfg=4.0, sampler="flow_euler", seed=5)
    half = run_sampling(p["model"], pos, neg, lat, end_step=2, leftover_noise=True, **kw)
    assert torch.equal(half.samples[:, :, :1], lat.samples[:, :, :1]) and half.mask is not None
    done = run_sampling(p["model"], pos, neg, half, start_step=2, add_noise=False, **kw)
    assert torch.allclose(done.samples, whole.samples, atol=1e-5), (done.samples - whole.samples).abs().max()


def test_released_sizes_are_detected_and_convert_to_the_shipped_configs():
    """The real wan2.2_vae and wan2.2_ti2v_5B key sets and shapes (diffusers' classes at the released configs on the
    meta device, renamed to the original layout) are detected, convert, and give back the released configs:
    705M and 5.0B parameters, as the published files hold."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from tiny_models import wan_original_transformer
    from tiny_wan22 import wan_original_vae_22
    from nodes.generate.converters import model_config
    from nodes.generate.converters.wan import transformer, vae
    from nodes.generate.detect import detect_keys
    for cls, name, to_original, convert, want, size in (
            (AutoencoderKLWan, "vae_2.2", wan_original_vae_22, vae, ("vae", "2.2"), 704.7e6),
            (WanTransformer3DModel, "transformer_ti2v", wan_original_transformer, transformer,
             ("diffusion_model", "ti2v-2.2-5B"), 5.0e9)):
        shipped = model_config("wan", name)
        with init_empty_weights():
            module = cls.from_config(shipped)
        assert abs(sum(p.numel() for p in module.parameters()) - size) / size < 1e-3
        original = to_original(module.state_dict())
        det = detect_keys({k: tuple(v.shape) for k, v in original.items()})
        assert (det.role, det.family, det.variant, det.layout) == (*want[:1], "wan", want[1], "original")
        built = convert(dict(original), det)
        assert {k: built.config[k] for k in shipped} == shipped
        assert {k: tuple(v.shape) for k, v in built.state_dict.items()} == \
            {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_shipped_ti2v_example_runs_on_the_tiny_files(w22, tmp_path):
    """examples/comfyui/wan22_ti2v.yaml with the tiny files' names: a photo of another aspect, cropped to the size."""
    from graph_engine.api import Session, load_workflow
    out = tmp_path / "ti2v.mp4"
    res = Session(device="cpu").run(load_workflow(ROOT / "examples" / "comfyui" / "wan22_ti2v.yaml"), overrides=[
        f"unet.name={FILES['UNETLoader']}", f"clip.name={FILES['CLIPLoader']}", f"vae.name={FILES['VAELoader']}",
        "latent.frames=5", "latent.width=64", "latent.height=32", "sample.steps=2", f"save.path={out}"],
        use_cache=False)
    assert res.ok, res.failed
    assert res.outputs["latent"]["latent"].mask[0, 0, :, 0, 0].tolist() == [0.0, 1.0]
    assert out.stat().st_size > 0


def test_info_says_the_ti2v_files_load(w22):
    import os
    from tests.cli_run import cli
    out = cli("info", env=dict(os.environ, KINOGRAPH_MODELS=str(w22 / "models"))).stdout
    rows = {line.split()[-1].rsplit("/", 1)[-1]: line.split() for line in out.splitlines() if "/models/" in line}
    assert rows[FILES["VAELoader"]][:5] == ["wan", "2.2", "vae", "fp16", "yes"]
    assert rows[FILES["UNETLoader"]][:5] == ["wan", "ti2v-2.2-dim128", "diffusion_model", "fp16", "yes"]
