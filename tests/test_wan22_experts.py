"""Wan 2.2 A14B's two experts as ComfyUI runs them (two UNETLoaders, two KSamplerAdvanced sharing one schedule: the
high-noise expert first, the low-noise one finishing) against diffusers' own Wan 2.2 pipelines, which switch experts
at a boundary timestep: same files, seed, prompt and noise levels, the same latents. Tiny random-weight experts in
ComfyUI's single-file layout."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def wan22_experts(root):
    from tiny_wan22 import build_wan22_experts
    return build_wan22_experts(root, "t2v", "i2v")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from comfy_layouts import built
    with pytest.MonkeyPatch.context() as mp:
        for root in built(wan22_experts, tmp_path_factory):
            mp.setenv("KINOGRAPH_MODELS", str(root / "models"))
            yield root


@pytest.mark.parametrize("kind", ["t2v", "i2v"])
def test_two_experts_match_diffusers_wan22_pipeline(models, kind):
    """Kinograph: the high-noise file's sampler for steps 0-1 (leftover noise), the low-noise file's for 2-3 (no new
    noise), as ComfyUI's Wan 2.2 templates wire them (i2v: the start image through condition.frames). diffusers:
    WanPipeline / WanImageToVideoPipeline with transformer_2 and a boundary_ratio between steps 1 and 2."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanPipeline
    from PIL import Image
    from nodes.generate.image_cond import condition_frames
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager(max_loaded=8)
    high, low = (load_diffusion_model(mm, f"wan22_tiny_{kind}_{e}_noise_fp16.safetensors", "default", "cpu")
                 for e in ("high", "low"))
    text = load_text_encoder(mm, "umt5_tiny_fp16.safetensors", "", "wan", "cpu")
    vae = load_vae(mm, "wan_tiny_vae.safetensors", "cpu")
    sched = FlowMatchEulerDiscreteScheduler(shift=8.0)
    for h in (high, low):                           # the same noise levels on both sides
        h.pipe.scheduler = sched
    image = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    pos, neg = (encode_prompt(text, t) for t in ("a fox", "blurry"))
    lat = empty_latent(vae, 9, 48, 32, 16.0)
    if kind == "i2v":
        cond = condition_frames(vae, pos, neg, lat, image, None, None)
        pos, neg = cond["positive"], cond["negative"]
    kw = dict(steps=4, cfg=3.5, sampler="flow_euler", seed=11)
    half = run_sampling(high, pos, neg, lat, end_step=2, leftover_noise=True, **kw)
    ours = run_sampling(low, pos, neg, half, start_step=2, add_noise=False, **kw).samples
    sched.set_timesteps(4)
    t = sched.timesteps
    boundary = float(t[1] + t[2]) / 2 / 1000
    parts = dict(tokenizer=text.pipe.tokenizer, text_encoder=text.pipe.text_encoder, vae=vae.pipe.vae, scheduler=sched,
                 transformer=high.pipe.transformer, transformer_2=low.pipe.transformer, boundary_ratio=boundary)
    args = dict(prompt="a fox", negative_prompt="blurry", height=32, width=48, num_frames=9, num_inference_steps=4,
                guidance_scale=3.5, generator=torch.Generator().manual_seed(11), output_type="latent")
    if kind == "i2v":
        ref = WanImageToVideoPipeline(image_encoder=None, image_processor=None, **parts)(
            image=Image.fromarray(image), **args).frames
    else:
        ref = WanPipeline(**parts)(**args).frames
    err = float((ref - ours).abs().max()) / float(ref.abs().max())
    assert err < 1e-4, err
    # each expert did its part: the low-noise expert alone for all four steps is another video
    alone = run_sampling(low, pos, neg, lat, **kw).samples
    assert float((alone - ours).abs().max()) / float(ref.abs().max()) > 1e-2
