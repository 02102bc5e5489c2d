"""HunyuanVideo image-to-video, as ComfyUI's TextEncodeHunyuanVideo_ImageToVideo and HunyuanImageToVideo
do it: the prompt encoded together with the start image's llava tokens, and the start image's latent
given to the model (v1 "concat": concatenated with a mask, the 33-channel model; v2 "replace": the clean
first latent frame kept by the latent's noise mask, the 16-channel v2 model). The model side is adapters/hunyuan.py."""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Tuple

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.adapters import get_adapter
from nodes.generate.latent import Conditioning, Latent

GUIDANCE = ("concat", "replace")


def encode_text_image(text_encoder, image: Conditioning, text: str, interleave: int = 2,
                      log=lambda m: None) -> Conditioning:
    """The prompt (a schedule gives one row per keyframe) encoded with the image tokens of encode.image."""
    from graph_engine.schedule import is_keyframed_text, parse_text_keyframes
    from nodes.generate.prompts import clean_and_weights
    from nodes.generate.text import _device
    if text_encoder is None or text_encoder.family != "hunyuan":
        got = "nothing" if text_encoder is None else f"a {text_encoder.family} text encoder"
        raise NodeError(f"encode.text_image needs HunyuanVideo's text encoder (llava_llama3 + clip_l), got {got}")
    if image is None or image.meta.get("kind") != "image" or image.family != "hunyuan":
        raise NodeError("encode.text_image needs the start image's tokens: encode.image of the image with "
                        "load.clip_vision of llava_llama3_vision.safetensors")
    if interleave < 1:
        raise NodeError(f"image_interleave must be 1 or more, got {interleave}")
    keys = parse_text_keyframes(text) if is_keyframed_text(text) else [(0, text)]
    cleaned = [clean_and_weights(t) for _, t in keys]
    if any(spans for _, spans in cleaned):
        log("hunyuan image-to-video: (word:weight) emphasis is not applied to prompts encoded with an image")
    pipe = text_encoder.pipe
    with torch.inference_mode():
        embeds, mask, pooled = get_adapter("hunyuan").encode_text_image(
            pipe, image.embeds, [c for c, _ in cleaned], int(interleave), _device(pipe))
    return Conditioning("hunyuan", embeds.cpu(), mask.cpu(), pooled.cpu(), tuple(k for k, _ in keys),
                        tuple(t for _, t in keys))


def image_to_video(vae, positive: Conditioning, image: Optional[np.ndarray], width: int, height: int, frames: int,
                   guidance: str = "concat", fps: float = 0.0) -> Tuple[Conditioning, Latent]:
    """(positive carrying the start image, the empty latent of the video): ComfyUI's HunyuanImageToVideo."""
    from nodes.generate.families import family
    from nodes.generate.image_cond import _pil
    from nodes.generate.vae_ops import empty_latent
    if vae.family != "hunyuan":
        raise NodeError(f"condition.hunyuan_i2v needs the HunyuanVideo VAE, got a {vae.family} one")
    if guidance not in GUIDANCE:
        raise NodeError(f"unknown guidance {guidance!r}; choose concat (the v1 model) or replace (the v2 model)")
    latent = empty_latent(vae, frames, width, height, fps or family("hunyuan").fps)
    if image is None:
        return positive, latent
    pipe = vae.pipe
    with torch.inference_mode():
        pixels = pipe.video_processor.preprocess(_pil(image), height=height, width=width)
        z = get_adapter("hunyuan").vae_encode(pipe, pixels[:, :, None]).cpu()  # [1, C, 1, h, w]
    if guidance == "replace":
        # ComfyUI's v2: the latent's first frame is the image's, kept by the noise mask, and the conditioning
        # names it the guiding frame (the model reads its tokens at time 0)
        samples = latent.samples.clone()
        samples[:, :, :1] = z
        mask = torch.ones(1, 1, *samples.shape[2:])
        mask[:, :, 0] = 0
        return positive.with_meta(guiding_frame=0), replace(latent, samples=samples, mask=mask)
    t = latent.samples.shape[2]
    first = torch.zeros(1, 1, t, *z.shape[3:])
    first[:, :, 0] = 1
    concat = torch.cat([z, z.new_zeros(1, z.shape[1], t - 1, *z.shape[3:])], dim=2)
    return positive.with_extra(concat=torch.cat([concat, first], dim=1)), latent
