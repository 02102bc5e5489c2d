"""Chroma Radiance pictures: the files a Radiance user holds (Comfy-Org/Chroma1-Radiance_Repackaged's
chroma-radiance*.safetensors in ComfyUI's names; T5-XXL with CLIPLoader type chroma; VAELoader's pixel_space) are
recognised, load, and predict what ComfyUI's own Chroma Radiance gives for the same weights (its patch convolution,
NeRF head and x0 residual written out in tests/tiny_chroma_radiance.py around diffusers' Chroma blocks); ComfyUI's
template imports and samples ComfyUI's latent (its beta schedule with alpha = beta = 0.4, CFGGuider, euler). The
prompts are read as Kinograph's Chroma reads them, as diffusers' ChromaPipeline does (its T5-XXL states and mask)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48


@pytest.fixture(scope="module")
def radiance(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_chroma_radiance import build_radiance
    yield from models_dir(tmp_path_factory, build_radiance, "radiance")


def _rel(want, got):
    return float((want - got).abs().max() / want.abs().max())


@pytest.mark.parametrize("name,seed,variant", [("chroma-radiance-tiny.safetensors", 3, "radiance"),
                                               ("chroma-radiance-x0-tiny.safetensors", 4, "radiance-x0")])
def test_radiance_files_load_and_predict_as_comfyui(radiance, name, seed, variant):
    """Both heads (linear; conv with the x0 marker, whose clean-picture prediction becomes a velocity) are told Chroma
    Radiance, load with load.diffusion_model and predict ComfyUI's output: two pictures at two levels, a prompt with
    padding masked, the head tiled or not (the tiling changes nothing)."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_chroma_radiance import reference
    from nodes.generate.model_manager import describe_model
    det = detect_file(radiance / "models" / "diffusion_models" / name)
    assert (det.role, det.family, det.variant) == ("diffusion_model", "chroma", variant), det
    assert describe_model(radiance / "models" / "diffusion_models" / name)["loads"] == "yes"
    model = load_diffusion_model(ModelManager(), name, "fp32", "cpu").pipe.transformer
    ref = reference(radiance / "models" / "diffusion_models" / name, seed)
    torch.manual_seed(0)
    x, context, sigma = torch.randn(2, 3, 16, 24), torch.randn(2, 5, 32), torch.tensor([0.7, 0.3])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).float()
    ids = torch.zeros(4, 6, 3)
    ids[..., 1] += torch.arange(4)[:, None]
    ids[..., 2] += torch.arange(6)[None]
    for tile in (0, 5):
        with torch.no_grad():
            got = model(x, sigma, context, ids.reshape(-1, 3), torch.zeros(5, 3),
                        torch.cat([mask, torch.ones(2, 24, dtype=torch.bool)], 1), nerf_tile=tile)
        want = ref(x, sigma, context, mask, tile=tile)
        assert _rel(want, got) < 2e-5, _rel(want, got)


def test_pixel_space_vae_is_the_picture(radiance):
    """VAELoader's pixel_space: no file; encoding and decoding keep the picture (decoding clamps to [-1, 1], which
    the frames read as 0..255); its empty latent is 3 channels at the picture's size, in 16-pixel steps."""
    from graph_engine import NodeError
    from nodes.generate.adapters import get_adapter
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.vae_ops import decode_latent, empty_latent
    from nodes.generate.latent import Latent
    from graph_engine.api import load_workflow
    from graph_engine.validate import missing_models
    from graph_engine.api import default_registry
    vae = load_vae(ModelManager(), "pixel_space", "cpu")
    assert vae.family == "pixel_space"
    wf = load_workflow(text="kinograph: 1\nnodes:\n  v: {type: load.vae, params: {name: pixel_space}}\n", check=False)
    assert missing_models(wf, default_registry()) == {}          # validate does not call it a missing file
    lat = empty_latent(vae, 1, W, H, 8.0)
    assert tuple(lat.samples.shape) == (1, 3, 1, H, W)
    pixels = torch.rand(1, 3, 1, H, W) * 2 - 1
    assert torch.equal(get_adapter("pixel_space").vae_encode(vae.pipe, pixels), pixels)
    frames = decode_latent(vae, Latent(pixels * 1.5, "pixel_space", 1, 8.0, W, H)).frames(0, 1)
    want = ((pixels * 1.5).clamp(-1, 1)[0, :, 0].permute(1, 2, 0) + 1) * 127.5
    assert np.abs(frames[0].astype(np.float32) - want.round().numpy()).max() == 0
    with pytest.raises(NodeError, match="divisible by 16"):
        empty_latent(vae, 1, 72, 48, 8.0)


def _beta_levels(steps: int, alpha: float, beta: float):
    """ComfyUI's beta_scheduler on ModelSamplingAuraFlow 1's levels ((t + 1) / 1000 for t = 0..999), written out:
    the Beta distribution's quantiles of 1 - k / steps, rounded to a level, repeats dropped, then 0."""
    from scipy.stats import beta as dist
    ts = np.rint(dist.ppf(1 - np.linspace(0, 1, steps, endpoint=False), alpha, beta) * 999)
    out, last = [], -1
    for t in ts:
        if t != last:
            out.append((int(t) + 1) / 1000)
        last = t
    return out + [0.0]


def _comfy_sample(model, cond, uncond, cfg, seed, levels):
    """SamplerCustomAdvanced with CFGGuider and euler on a flow model: x0 = x - sigma v, guided x0, Euler steps;
    the noise is RandomNoise's (torch's generator seeded with the seed, the latent's shape)."""
    x = torch.randn((1, 3, H, W), generator=torch.Generator().manual_seed(seed)) * levels[0]
    for s, nxt in zip(levels, levels[1:]):
        sig = torch.tensor([s])
        c = x - s * model(x, sig, *cond)
        u = x - s * model(x, sig, *uncond)
        den = u + cfg * (c - u)
        x = x + (x - den) / s * (nxt - s)
    return x


def test_comfyui_radiance_template_imports_and_runs(radiance, tmp_path, monkeypatch):
    """ComfyUI's image_chroma1_radiance_text_to_image (a subgraph: UNETLoader chroma-radiance-x0, CLIPLoader t5xxl
    type chroma, T5TokenizerOptions, ChromaRadianceOptions, ModelSamplingAuraFlow 1, CFGGuider 3.5,
    BetaSamplingScheduler 0.4 / 0.4, EmptyChromaRadianceLatentImage, VAELoader pixel_space) imports with every node
    mapped and runs on the tiny x0 file linked under the template's name (64x48, 2 steps), saving the picture; the
    latent is ComfyUI's model's for the template's prompts, seed and levels."""
    from diffusers import ChromaPipeline
    from comfy_layouts import imported_template, sampled_latent
    from tiny_chroma_radiance import X0, reference
    monkeypatch.chdir(tmp_path)
    data, yaml = imported_template(radiance / "models", (
        ("diffusion_models/chroma-radiance-x0.safetensors", f"diffusion_models/{X0}"),
        ("text_encoders/t5xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders/t5xxl_fp16.safetensors"),
        ("text_encoders/t5xxl_fp8_e4m3fn_scaled", "text_encoders/t5xxl_fp16")),
        TEMPLATES / "image_chroma1_radiance_text_to_image.json", (W, H), (30, 2))
    assert "name: pixel_space" in yaml and "model.radiance_options" in yaml and "beta_alpha: 0.4" in yaml, yaml
    got = sampled_latent(tmp_path / "radiance.kino.yaml", yaml, "sampler_custom")
    assert (tmp_path / "out" / "Chroma-Radiance" / "frame_000000.png").is_file()
    sub = data["definitions"]["subgraphs"][0]["nodes"]
    texts = [n["widgets_values"][0] for n in sub if n["type"] == "CLIPTextEncode"]
    seed = next(n for n in sub if n["type"] == "RandomNoise")["widgets_values"][0]
    cfg = next(n for n in sub if n["type"] == "CFGGuider")["widgets_values"][0]
    steps, alpha, beta = next(n for n in sub if n["type"] == "BetaSamplingScheduler")["widgets_values"]
    # ChromaPipeline's T5-XXL states and mask for each prompt (the tiny T5 the folder holds)
    pipe = ChromaPipeline.from_pretrained(str(radiance / "diffusers"), local_files_only=True)
    with torch.no_grad():
        cond, uncond = (pipe._get_t5_prompt_embeds(t, max_sequence_length=512) for t in texts)
    ref = reference(radiance / "models" / "diffusion_models" / X0, 4)
    levels = _beta_levels(2, alpha, beta)
    assert len(levels) == 3 and steps == 30
    with torch.no_grad():
        want = _comfy_sample(ref, cond, uncond, cfg, seed, levels)
    print("latent rel diff", _rel(want, got))
    assert _rel(want, got) < 1e-4
