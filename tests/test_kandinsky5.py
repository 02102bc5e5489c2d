"""Kandinsky 5 video from ComfyUI's split files (the video_kandinsky5_t2v template's: kandinskylab's transformer,
HunyuanVideo's VAE, Qwen2.5-VL + CLIP-L as DualCLIPLoader type kandinsky5): detected, loaded and sampled through
Kinograph's sampler to the latent diffusers' own Kandinsky5T2VPipeline gives for the same weights, prompts and seed.
Mochi 1's and Cosmos' files are named, with what runs instead."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

W, H, FRAMES, STEPS, SEED, CFG = 32, 32, 5, 2, 3, 5.0
PROMPT, NEGATIVE = "a paper airplane over a city", "blurry"


@pytest.fixture(scope="module")
def k5(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_kandinsky5 import build_kandinsky5
    yield from models_dir(tmp_path_factory, build_kandinsky5, "k5")


def _pipeline(k5):
    from diffusers import Kandinsky5T2VPipeline
    from transformers import AutoTokenizer, CLIPTokenizer
    from tiny_kandinsky5 import reference_parts
    from nodes.generate.split import scheduler
    transformer, vae, te, clip = reference_parts()
    return Kandinsky5T2VPipeline(
        transformer=transformer, vae=vae, text_encoder=te,
        tokenizer=AutoTokenizer.from_pretrained(str(k5 / "comfy" / "text_encoders" / "qwen25_tokenizer")),
        text_encoder_2=clip, scheduler=scheduler("kandinsky5"),
        tokenizer_2=CLIPTokenizer.from_pretrained(str(k5 / "models" / "text_encoders" / "clip_l"), model_max_length=77))


def test_new_video_families_are_named_by_kinograph_info(k5):
    """Before: every one of these files was "unknown ... (no known key pattern)"."""
    from nodes.generate.model_manager import describe_model
    found = {p.name: describe_model(p) for p in (k5 / "models").glob("*/*.safetensors")}
    k = found["kandinsky5lite_t2v_sft_5s.safetensors"]
    assert (k["family"], k["role"], k["loads"]) == ("kandinsky5", "diffusion_model", "yes")
    for name, family, words in (("mochi_preview_bf16.safetensors", "mochi", "Mochi 1 transformer"),
                                ("mochi_vae.safetensors", "mochi", "Mochi 1 VAE"),
                                ("cosmos_predict2_2B_video2world_480p_16fps.safetensors", "cosmos", "Cosmos-Predict2"),
                                ("Cosmos-1_0-Diffusion-7B-Text2World.safetensors", "cosmos", "Cosmos 1.0")):
        d = found[name]
        assert (d["family"], d["loads"]) == (family, "no"), (name, d)
        assert words in d["note"] and "does not" in d["note"], d["note"]


def test_kandinsky5_comfyui_files_sample_as_diffusers_pipeline(k5):
    """Before: the transformer was "unknown (no known key pattern)" and load.diffusion_model refused it."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager()
    model = load_diffusion_model(mm, "kandinsky5lite_t2v_sft_5s.safetensors", "default", "cpu")
    te = load_text_encoder(mm, "qwen_2.5_vl_tiny.safetensors", "clip_l.safetensors", "kandinsky5", "cpu")
    vae = load_vae(mm, "hunyuan_video_vae_bf16.safetensors", "cpu")
    assert (model.family, te.family, vae.family) == ("kandinsky5", "kandinsky5", "hunyuan")
    latent = run_sampling(model, encode_prompt(te, PROMPT), encode_prompt(te, NEGATIVE),
                          empty_latent(vae, FRAMES, W, H, 24.0), steps=STEPS, cfg=CFG, sampler="euler",
                          seed=SEED).samples
    pipe = _pipeline(k5)
    want = pipe(PROMPT, negative_prompt=NEGATIVE, height=H, width=W, num_frames=FRAMES, num_inference_steps=STEPS,
                guidance_scale=CFG, output_type="latent", generator=torch.Generator().manual_seed(SEED)).frames
    want = want.permute(0, 4, 1, 2, 3)          # the pipeline's latents are channels-last
    assert latent.shape == want.shape == (1, 4, 2, H // 8, W // 8)
    err = float((latent - want).abs().max() / want.abs().max())
    assert err < 1e-4, err
    # HunyuanVideo's VAE file decodes it as the pipeline's VAE
    pixels = get_adapter("hunyuan").vae_decode(vae.pipe, want)
    ref = pipe.vae.decode(want / pipe.vae.config.scaling_factor, return_dict=False)[0]
    assert torch.allclose(pixels, ref, atol=1e-4)
