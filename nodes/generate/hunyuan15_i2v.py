"""HunyuanVideo 1.5 image-to-video, as ComfyUI's HunyuanVideo15ImageToVideo and diffusers'
HunyuanVideo15ImageToVideoPipeline give it to the model: the start image's latent on the first latent frame with a mask
of that frame, concatenated to the noise (conditioning extra "concat"), and SigLIP's tokens of the image (encode.image
of sigclip_vision_patch14_384) as the transformer's vision tokens (extra "image_embeds"), on both prompts. The model
side is adapters/hunyuan15.py."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.adapters import get_adapter
from nodes.generate.latent import Conditioning, Latent


def image_to_video(vae, positive: Conditioning, negative: Optional[Conditioning], image: Optional[np.ndarray],
                   image_embeds: Optional[Conditioning], width: int, height: int, frames: int, fps: float = 0.0
                   ) -> Tuple[Conditioning, Optional[Conditioning], Latent]:
    """(positive, negative, the empty latent of the video), both prompts carrying the start image."""
    from nodes.generate.families import family
    from nodes.generate.image_cond import _pil
    from nodes.generate.vae_ops import empty_latent
    if vae is None or vae.family != "hunyuan15":
        got = "nothing" if vae is None else f"a {vae.family} VAE"
        raise NodeError(f"condition.hunyuan15_i2v needs HunyuanVideo 1.5's VAE (hunyuanvideo15_vae), got {got}")
    if image_embeds is not None and (image_embeds.meta.get("kind") != "image"
                                     or image_embeds.family not in ("flux", "hunyuan15")):
        raise NodeError("clip_vision_output must be SigLIP's tokens of the start image: encode.image with "
                        "load.clip_vision of sigclip_vision_patch14_384.safetensors")
    latent = empty_latent(vae, frames, width, height, fps or family("hunyuan15").fps)
    extra = {}
    if image is not None:
        pipe = vae.pipe
        proc = pipe.video_processor
        with torch.inference_mode():
            pixels = proc.preprocess(proc.resize(_pil(image), height=height, width=width, resize_mode="crop"),
                                     height=height, width=width)
            z = get_adapter("hunyuan15").vae_encode(pipe, pixels[:, :, None]).cpu()      # [1, C, 1, h, w]
        t = latent.samples.shape[2]
        concat = torch.zeros(1, z.shape[1] + 1, t, *z.shape[3:])
        concat[:, :-1, :1] = z
        concat[:, -1, 0] = 1                # the mask: 1 on the frame the image gives (the pipeline's, not ComfyUI's 0)
        extra["concat"] = concat
    if image_embeds is not None:
        extra["image_embeds"] = image_embeds.embeds[:1]
    if not extra:
        return positive, negative, latent
    return positive.with_extra(**extra), None if negative is None else negative.with_extra(**extra), latent
