"""LongCat-Image keyframes: the files a ComfyUI user holds (the transformer in diffusion_models/ in ComfyUI's Flux
names, qwen_2.5_vl_7b loaded with CLIPLoader type longcat_image, FLUX.1's ae.safetensors) load, sample and give what
diffusers' own LongCatImagePipeline gives for the same weights, prompt, negative and seed (tests/tiny_longcat.py: the
reference is built from the modules, not through Kinograph's loading). ComfyUI's LongCat-Image template imports and
runs on them."""
import sys
from pathlib import Path

import pytest
import torch


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
W, H = 64, 48
STEPS, SEED = 2, 5
MODEL, TEXT = "longcat_image_tiny_bf16.safetensors", "qwen_2.5_vl_tiny_bf16.safetensors"


@pytest.fixture(scope="module")
def longcat(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_longcat import build_longcat
    yield from models_dir(tmp_path_factory, build_longcat, "longcat")


def _reference(root, prompt, negative, cfg, seed, scheduler=None, **kw):
    """LongCatImagePipeline's latent; its prompt rewriting (a generation by the text encoder) and cfg renorm off, as
    ComfyUI's LongCat nodes run it."""
    from comfy_layouts import packed_latent
    from tiny_longcat import reference
    return packed_latent(reference(root, scheduler=scheduler), prompt, negative, cfg, seed, (W, H),
                         enable_prompt_rewrite=False, enable_cfg_renorm=False, **kw)


def test_longcat_files_are_detected_and_another_familys_encoder_is_named(longcat):
    """The transformer file is told from FLUX.1's by its missing vector_in; qwen_2.5_vl loaded with type auto is
    Qwen-Image's (its template, not LongCat's): sampling LongCat-Image with it names the mismatch."""
    from comfy_layouts import auto_encoder_mismatch
    from nodes.generate.model_manager import describe_model
    got = describe_model(longcat / "models" / "diffusion_models" / MODEL)
    assert (got["family"], got["role"], got["loads"]) == ("longcat", "diffusion_model", "yes"), got
    message = auto_encoder_mismatch(MODEL, TEXT)
    assert ("encoded for qwenimage, but the model is longcat: encode it with this model's text encoder "
            "(load.text_encoder with type longcat_image)") in message, message


@pytest.mark.parametrize("cfg", [4.0, 1.0])
def test_longcat_split_files_match_longcatimagepipeline(longcat, cfg):
    """True CFG with a negative (cfg 4) and the prompt alone (cfg 1): the transformer file, Qwen2.5-VL (type
    longcat_image) and FLUX.1's VAE sample what LongCatImagePipeline samples (its schedule shifted for the size)."""
    from comfy_layouts import close_to
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager()
    model = load_diffusion_model(mm, MODEL, "default", "cpu")
    te = load_text_encoder(mm, TEXT, "", "longcat_image", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")
    assert (model.family, te.family, vae.family) == ("longcat", "longcat", "flux")
    prompt = 'a cat holding a sign that says "hi"'      # quoted text: a token a character
    got = run_sampling(model, encode_prompt(te, prompt), encode_prompt(te, "blurry"), empty_latent(vae, 1, W, H, 8.0),
                       steps=STEPS, cfg=cfg, sampler="euler", seed=SEED).samples[:, :, 0]
    close_to(_reference(longcat, prompt, "blurry", cfg, SEED, num_inference_steps=STEPS), got)


def test_comfyui_longcat_template_imports_and_runs(longcat, tmp_path, monkeypatch):
    """ComfyUI's own LongCat-Image template (a subgraph: UNETLoader, CLIPLoader qwen_2.5_vl_7b type longcat_image,
    VAELoader ae, CFGNorm, FluxGuidance 4 on both prompts, EmptySD3LatentImage, KSampler 20 steps cfg 4 euler / simple)
    imports with every node mapped (FluxGuidance's value not taken for cfg: ComfyUI's model drops it) and runs on the tiny model under its file names (64x48, 2 steps). Without CFGNorm
    (ComfyUI caps over each latent pixel, LongCatImagePipeline's renorm over each 2x2 patch) its latent is
    LongCatImagePipeline's with the template's prompts and seed on ComfyUI's levels (simple on FLUX.1's shift
    e^1.15: 1, then 1.15's time shift of 1/2). The LongCat-Image-Edit template (TextEncodeQwenImageEdit with the
    picture on both prompts, FluxKontextMultiReferenceLatentMethod index) imports and validates."""
    import math
    from comfy_layouts import close_to, imported_template, sampled_latent
    from comfyui_corpus import check
    good, how = check(TEMPLATES / "image_longcat_image_edit.json")      # its picture is read at a megapixel: not run
    assert good, how
    data, yaml = imported_template(longcat / "models", (("diffusion_models/longcat_image_bf16.safetensors", f"diffusion_models/{MODEL}"),
                                            ("text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors", f"text_encoders/{TEXT}")),
                                   TEMPLATES / "image_longcat_text_to_image.json", (W, H), (20, STEPS))
    monkeypatch.chdir(tmp_path)
    assert "type: guide.cfg_norm" in yaml and "cfg: 4" in yaml and "sampler: euler" in yaml, yaml
    from app.comfyui import import_data
    for n in data["definitions"]["subgraphs"][0]["nodes"]:
        if n["type"] == "FluxGuidance":     # ComfyUI's LongCat-Image drops it: sample's cfg stays the KSampler's 4
            n["widgets_values"] = [9.0]
    assert "cfg: 4\n" in import_data(data).yaml
    assert torch.isfinite(sampled_latent(tmp_path / "longcat.kino.yaml", yaml)).all()
    plain = yaml.replace("model: cfg_norm_13_10.model", "model: unet_loader_13_1.model")
    got = sampled_latent(tmp_path / "longcat.kino.yaml", plain)
    inner = data["definitions"]["subgraphs"][0]["nodes"]
    text = {n["id"]: n["widgets_values"][0] for n in inner if n["type"] == "CLIPTextEncode"}
    seed = next(n for n in inner if n["type"] == "KSampler")["widgets_values"][0]
    from diffusers import FlowMatchEulerDiscreteScheduler
    half = math.exp(1.15) / (math.exp(1.15) + 1)
    want = _reference(longcat, text[4], text[5], 4.0, seed, FlowMatchEulerDiscreteScheduler(shift=1.0),
                      sigmas=[1.0, half])         # the levels given as they are
    close_to(want, got)


def test_longcat_edit_matches_longcatimageeditpipeline(longcat, monkeypatch):
    """LongCat-Image-Edit: encode.qwen_edit with LongCat's text encoder reads the prompt with the picture as
    LongCatImageEditPipeline does (its vision tower at half the megapixel size), the picture's latent rides along as
    the reference on plane 2; sampling the picture's size with true CFG (the negative sees the picture too) gives the
    pipeline's latent. One step, and the megapixel both sides resize to made 256 x 256 pixels (the pipeline's
    calculate_dimensions, which Kinograph calls too, given a sixteenth of the area it is asked for): at the published
    megapixel the tiny VAE's three encodes of the picture were 14 of the test's 18 CPU seconds."""
    from comfy_layouts import close_to
    import numpy as np
    from PIL import Image
    import diffusers.pipelines.longcat_image.pipeline_longcat_image_edit as edit_pipeline
    from nodes.generate.adapters.flux import unpack
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.qwen_edit import encode_edit
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.vae_ops import empty_latent
    from tiny_longcat import reference
    published = edit_pipeline.calculate_dimensions
    monkeypatch.setattr(edit_pipeline, "calculate_dimensions", lambda area, ratio: published(area // 16, ratio))
    picture = np.random.default_rng(3).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    w, h = published(256 * 256, 80 / 48)
    mm = ModelManager()
    model = load_diffusion_model(mm, MODEL, "default", "cpu")
    te = load_text_encoder(mm, TEXT, "", "longcat_image", "cpu")
    vae = load_vae(mm, "ae.safetensors", "cpu")
    pos, neg = (encode_edit(te, vae, text, [picture], "edit") for text in ("make it night", ""))
    got = run_sampling(model, pos, neg, empty_latent(vae, 1, w, h, 8.0), steps=1, cfg=4.5, sampler="euler",
                       seed=SEED).samples[:, :, 0]
    ref = reference(longcat, edit=True)
    want = ref(Image.fromarray(picture), "make it night", negative_prompt="", num_inference_steps=1, guidance_scale=4.5,
               generator=torch.Generator().manual_seed(SEED), output_type="latent").images
    close_to(unpack(want, h // 8, w // 8), got)
