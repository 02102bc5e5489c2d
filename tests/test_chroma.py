"""Chroma keyframes: the files a Chroma user holds (ComfyUI's split files: the transformer in its original names,
t5xxl alone, FLUX.1's ae.safetensors; a diffusers ChromaPipeline folder) are recognised, load, and sample what
diffusers' own ChromaPipeline gives for the same weights, prompts and seed: true CFG with a negative prompt, T5-XXL's
padding masked, its size-shifted schedule. ComfyUI's Chroma template imports and runs on them. The tiny model's
original-layout file is written by inverting diffusers' converter by hand (tests/tiny_chroma.py)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
W, H = 64, 48


@pytest.fixture(scope="module")
def chroma(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_chroma import build_chroma
    yield from models_dir(tmp_path_factory, build_chroma, "chroma")


def _reference(root, prompt, negative, cfg, seed, steps=2, sigmas=None):
    """ChromaPipeline's own latent [1, 16, h, w]; on given levels (sigmas) its scheduler is told not to shift them."""
    from diffusers import ChromaPipeline, FlowMatchEulerDiscreteScheduler
    ref = ChromaPipeline.from_pretrained(str(root / "diffusers"), local_files_only=True)
    if sigmas is not None:
        ref.scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    packed = ref(prompt, negative_prompt=negative, width=W, height=H, num_inference_steps=steps, sigmas=sigmas,
                 guidance_scale=cfg, generator=torch.Generator().manual_seed(seed), output_type="latent").images
    return ref._unpack_latents(packed, H, W, ref.vae_scale_factor)


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def test_chroma_files_are_detected_and_radiance_is_named(chroma):
    from nodes.generate.detect import detect_keys
    from nodes.generate.model_manager import describe_model
    got = describe_model(chroma / "models" / "diffusion_models" / "chroma-tiny.safetensors")
    assert (got["family"], got["role"], got["loads"]) == ("chroma", "diffusion_model", "yes"), got
    # the ChromaPipeline folder's transformer file, in diffusers' names (x_embedder, no img_in), is Chroma too
    got = describe_model(chroma / "diffusers" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert (got["family"], got["role"], got["loads"]) == ("chroma", "diffusion_model", "yes"), got
    # Chroma Radiance: the same modulation network, reading pixels through img_in_patch (no img_in), then the NeRF
    # head; a Chroma variant of its own (tests/test_chroma_radiance.py runs it)
    radiance = detect_keys({"distilled_guidance_layer.in_proj.weight": (5120, 64), "img_in_patch.weight": (3072, 3),
                            "nerf_image_embedder.embedder.0.weight": (64, 67),
                            "double_blocks.0.img_attn.qkv.weight": (9216, 3072)})
    assert (radiance.role, radiance.family, radiance.variant) == ("diffusion_model", "chroma", "radiance"), radiance
    # control.apply on a model it does not steer names the model as the user knows it (it said "not chroma")
    from types import SimpleNamespace
    from graph_engine import NodeError
    from nodes.generate.control import apply_control
    with pytest.raises(NodeError, match=r"FLUX.1 and Qwen-Image models, not Chroma \(image\)$"):
        apply_control(None, SimpleNamespace(family="chroma"), None, "cn.safetensors", 1.0, "none", 100, 200)


def test_chroma_split_files_and_folder_match_chromapipeline(chroma):
    """The transformer from its original names, t5xxl (type chroma) and FLUX.1's ae.safetensors; and the diffusers
    folder through load.model: both give ChromaPipeline's latent for a prompt and a negative at cfg 4."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager()
    model = load_diffusion_model(mm, "chroma-tiny.safetensors", "default", "cpu")
    te = load_text_encoder(mm, "t5xxl_fp16.safetensors", "", "chroma", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")
    assert (model.family, te.family, vae.family) == ("chroma", "chroma", "flux")
    want = _reference(chroma, "a cat", "blurry", 4.0, 7)

    def sample(model, te, vae):
        pos, neg = encode_prompt(te, "a cat"), encode_prompt(te, "blurry")
        return run_sampling(model, pos, neg, empty_latent(vae, 1, W, H, 8.0), steps=2, cfg=4.0, sampler="euler",
                            seed=7).samples[:, :, 0]
    assert _err(want, sample(model, te, vae)) < 1e-4
    h = mm.load("chroma", str(chroma / "diffusers"))
    p = mm.components(h)
    assert _err(want, sample(h, p["text_encoder"], p["vae"])) < 1e-4
    # the prompt's tokens and the first padding token are read, out of 512
    mask, ids = encode_prompt(te, "a cat").mask, te.pipe.tokenizer("a cat").input_ids
    assert mask.shape == (1, 512) and mask[0].tolist() == [True] * (len(ids) + 1) + [False] * (511 - len(ids))


def test_chroma_text_encoder_of_another_family_is_named(chroma):
    """t5xxl loaded with type auto is LTX-Video's: sampling Chroma with it names the mismatch, not a shape error."""
    from comfy_layouts import auto_encoder_mismatch
    message = auto_encoder_mismatch("chroma-tiny.safetensors", "t5xxl_fp16.safetensors")
    assert "encoded for ltx, but the model is chroma" in message, message


def comfy_beta_sigmas(steps: int):
    """ComfyUI's beta schedule (alpha = beta = 0.6) on Chroma's sampling at shift 1 (ModelSamplingAuraFlow 1): levels
    (i + 1) / 1000, picked at the Beta distribution's quantiles of 1 - k / steps, written out from ComfyUI's formulas."""
    from scipy.stats import beta
    idx = np.rint(beta.ppf(1 - np.arange(steps) / steps, 0.6, 0.6) * 999).astype(int)
    return [(int(i) + 1) / 1000 for i in idx]


def test_comfyui_chroma_template_imports_and_runs(chroma, tmp_path, monkeypatch):
    """ComfyUI's own "Chroma1-HD text to image" template (UI format; tests/data/chroma): UNETLoader, CLIPLoader (t5xxl,
    type chroma), T5TokenizerOptions, ModelSamplingAuraFlow 1, two CLIPTextEncodes into CFGGuider 3.5, the beta
    schedule, EmptySD3LatentImage, SamplerCustomAdvanced. Every node maps, and on the tiny model under the template's
    file names (at 64x48, 2 steps) the latent is ChromaPipeline's with its prompts, cfg and seed on ComfyUI's levels,
    with the ModelSamplingAuraFlow node or without it."""
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    models = chroma / "models"
    from comfy_layouts import link_as
    for link, target in (("diffusion_models/Chroma1-HD-fp8_scaled_rev2.safetensors", "diffusion_models/chroma-tiny.safetensors"),
                         ("text_encoders/t5xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders/t5xxl_fp16.safetensors"),
                         ("text_encoders/t5xxl_fp8_e4m3fn_scaled", "text_encoders/t5xxl_fp16")):
        link_as(models / link, models / target)
    data = json.loads((ROOT / "tests" / "data" / "chroma" / "image_chroma_text_to_image.json").read_text("utf-8"))
    monkeypatch.chdir(tmp_path)

    def run(data):
        res = import_data(data)
        statuses = {e.class_type: e.status for e in res.report.entries.values()}
        assert "unmapped" not in statuses.values() and statuses["T5TokenizerOptions"] == "approx", statuses
        yaml = res.yaml.replace("width: 1024", f"width: {W}").replace("height: 1024", f"height: {H}")
        yaml = yaml.replace("steps: 26", "steps: 2")
        assert yaml.count(f"width: {W}") == 1 and "steps: 2" in yaml, yaml
        wf = tmp_path / "chroma.kino.yaml"
        wf.write_text(yaml)
        out = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
        assert out.ok, out.failed
        return next(v["latent"] for k, v in out.outputs.items() if k.startswith("sampler_custom")).samples[:, :, 0]
    got = run(data)
    # the template's ModelSamplingAuraFlow 1 is Chroma's own shift in ComfyUI: bypassed, the levels are the same
    # (the shipped scheduler's shift 3 is not the tabulated schedules')
    bypassed = json.loads(json.dumps(data))
    next(n for n in bypassed["nodes"] if n["type"] == "ModelSamplingAuraFlow")["mode"] = 4
    unshifted = run(bypassed)
    texts = {n["title"]: n["widgets_values"][0] for n in data["nodes"] if n["type"] == "CLIPTextEncode"}
    seed = next(n for n in data["nodes"] if n["type"] == "RandomNoise")["widgets_values"][0]
    want = _reference(chroma, texts["CLIP Text Encode (Positive Prompt)"], texts["CLIP Text Encode (Negative Prompt)"],
                      3.5, seed, sigmas=comfy_beta_sigmas(2))
    assert _err(want, got) < 1e-4 and _err(want, unshifted) < 1e-4


def test_chroma_lora_in_comfyuis_layout_applies(chroma):
    """A Chroma LoRA (FLUX.1's block names: diffusion_model.double_blocks.N.img_attn.qkv.lora_A ...) was refused as
    "a FLUX.1 (image) LoRA ... and this model is Chroma (image)", though ChromaPipeline loads FLUX.1's LoRA layouts.
    Applied now, it samples as the transformer with the LoRA merged into its weights."""
    from safetensors.torch import load_file, save_file
    from nodes.generate.loaders import add_lora
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    models = chroma / "models"
    from tiny_flux import comfy_lora
    stored = load_file(str(models / "diffusion_models" / "chroma-tiny.safetensors"))
    lora, merged = comfy_lora({k: v.float() for k, v in stored.items()},
                              ("double_blocks.0.img_attn.qkv", "double_blocks.1.txt_mlp.0"))
    (models / "loras").mkdir(exist_ok=True)
    save_file(lora, str(models / "loras" / "chroma_lora_tiny.safetensors"))
    save_file(merged, str(models / "diffusion_models" / "chroma-tiny-lora-merged.safetensors"))
    mm = ModelManager()
    te = load_text_encoder(mm, "t5xxl_fp16.safetensors", "", "chroma", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")

    def sample(model):
        return run_sampling(model, encode_prompt(te, "a cat"), encode_prompt(te, "blurry"),
                            empty_latent(vae, 1, W, H, 8.0), steps=2, cfg=4.0, sampler="euler", seed=7).samples
    model = load_diffusion_model(mm, "chroma-tiny.safetensors", "default", "cpu")
    want = sample(load_diffusion_model(mm, "chroma-tiny-lora-merged.safetensors", "default", "cpu"))
    assert _err(want, sample(add_lora(model, "chroma_lora_tiny.safetensors", 1.0))) < 1e-4
    assert _err(want, sample(model)) > 1e-3
