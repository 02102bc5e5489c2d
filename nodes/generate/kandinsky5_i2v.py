"""Kandinsky 5 image-to-video, as diffusers' Kandinsky5I2VPipeline gives it to the model: the start image's latent is
the first latent frame, kept clean through sampling (the latent's mask; the model reads it as it is, with its mask
channel 1 there: adapters/kandinsky5.py), the prompts unchanged. ComfyUI's Kandinsky5ImageToVideo hands the same
latent out as cond_latent, for ReplaceVideoLatentFrames after sampling."""
from __future__ import annotations

from dataclasses import replace
from typing import Tuple

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.adapters import get_adapter
from nodes.generate.families import latent_families
from nodes.generate.latent import Latent


def image_to_video(vae, latent: Latent, image: np.ndarray) -> Tuple[Latent, Latent]:
    """(the latent to sample, its first frame kept as the image's latent; the image's latent alone)."""
    from nodes.generate.image_cond import _pil
    if vae is None or vae.family != "hunyuan":
        got = "nothing" if vae is None else f"a {vae.family} VAE"
        raise NodeError(f"condition.kandinsky5_i2v needs HunyuanVideo's VAE (hunyuan_video_vae_bf16), Kandinsky 5's; "
                        f"got {got}")
    if latent.family not in latent_families("kandinsky5"):
        raise NodeError(f"this latent was made by a {latent.family} VAE; make it with latent.empty from HunyuanVideo's "
                        "VAE (hunyuan_video_vae_bf16), whose latents Kandinsky 5 samples")
    pipe = vae.pipe
    proc = pipe.video_processor
    with torch.inference_mode():
        # scaled to cover the video's size and centre-cropped, as ComfyUI's Kandinsky5ImageToVideo fits it
        pixels = proc.preprocess(proc.resize(_pil(image), height=latent.height, width=latent.width,
                                             resize_mode="crop"), height=latent.height, width=latent.width)
        z = get_adapter("hunyuan").vae_encode(pipe, pixels[:, :, None]).cpu()     # [1, C, 1, h, w]
    samples = latent.samples.clone()
    samples[:, :, :1] = z.to(samples.dtype).expand(samples.shape[0], -1, -1, -1, -1)
    mask = torch.ones(1, 1, *samples.shape[2:])
    mask[:, :, 0] = 0
    return replace(latent, samples=samples, mask=mask), replace(latent, samples=z, frames=1, mask=None)
