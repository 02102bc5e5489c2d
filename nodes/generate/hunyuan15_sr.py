"""HunyuanVideo 1.5's 1080p super-resolution stage, as ComfyUI's templates run it after the 480p / 720p video:

  latent.hunyuan15_upsample (HunyuanVideo15LatentUpscaleWithModel): the latent resized (bilinear) to the final size
      / 16, then refined by latent_upscale_models/hunyuanvideo15_latent_upsampler_1080p (Upsampler below);
  condition.hunyuan15_sr (HunyuanVideo15SuperResolution): that latent as the 98-channel SR transformer's extra
      channels (the start image's latent and mask, the low-resolution latent, a plane of ones), noised at sampling
      with the run's seed (augmented);
  then sampling with hunyuanvideo1.5_1080p_sr_distilled (a step-distilled model: adapters/hunyuan15.py).

Both the upsampler and the SR model read latents as the VAE makes them, before its scaling factor (ComfyUI's: "scaling
wasn't applied in reference code"); Kinograph's latents carry it, so they are divided by it on the way in."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch
from torch import nn

from graph_engine import NodeError
from nodes.generate.latent import Conditioning, Latent

SCALE = 1.03682             # AutoencoderKLHunyuanVideo15's scaling_factor (hunyuanvideo15_vae)


class Upsampler(nn.Module):
    """Tencent's 1080p latent upsampler (its file's names): a causal 3-D convolution into the first width plus the
    latent repeated across it, stages of HunyuanVideo 1.5's VAE resnet blocks, RMS norm, SiLU, a causal convolution
    out. It does not change the size: the bilinear resize before it does."""

    def __init__(self, z_channels: int, out_channels: int, widths: Tuple[int, ...], blocks: int):
        from diffusers.models.autoencoders.autoencoder_kl_hunyuanvideo15 import (
            HunyuanVideo15CausalConv3d, HunyuanVideo15ResnetBlock, HunyuanVideo15RMS_norm)
        super().__init__()
        self.z_channels, self.widths = z_channels, widths
        self.conv_in = HunyuanVideo15CausalConv3d(z_channels, widths[0], kernel_size=3)
        self.up = nn.ModuleList()
        ch = widths[0]
        for width in widths:
            stage = nn.Module()
            stage.block = nn.ModuleList([HunyuanVideo15ResnetBlock(ch if j == 0 else width, width)
                                         for j in range(blocks)])
            self.up.append(stage)
            ch = width
        self.norm_out = HunyuanVideo15RMS_norm(ch, images=False)
        self.conv_out = HunyuanVideo15CausalConv3d(ch, out_channels, kernel_size=3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(z) + z.repeat_interleave(self.widths[0] // self.z_channels, dim=1)
        for stage in self.up:
            for block in stage.block:
                x = block(x)
        return self.conv_out(torch.nn.functional.silu(self.norm_out(x)))


def load_upsampler(path, dtype, device) -> Upsampler:
    """The 1080p upsampler of a weights file, built from its shapes; a clear refusal for any other file."""
    from nodes.generate.converters import count
    from nodes.generate.weights import load_weights, misfit
    name = Path(path).name
    state = load_weights(path)
    if "up.0.block.0.conv1.conv.weight" not in state or "conv_in.conv.weight" not in state:
        which = ("the 720p upsampler (in_conv / blocks / out_conv), which Kinograph does not run yet"
                 if "blocks.0.block.0.conv.weight" in state else "not a HunyuanVideo 1.5 latent upsampler")
        raise NodeError(f"{name} is {which}: use latent_upscale_models/hunyuanvideo15_latent_upsampler_1080p"
                        ".safetensors")
    # ResnetBlock's 1x1 shortcut is nin_shortcut in Tencent's names, conv_shortcut in diffusers'
    state = {k.replace(".nin_shortcut.", ".conv_shortcut."): v for k, v in state.items()}
    stages = count(state, "up.{}.block.0.")
    net = Upsampler(int(state["conv_in.conv.weight"].shape[1]), int(state["conv_out.conv.weight"].shape[0]),
                    tuple(int(state[f"up.{i}.block.0.conv1.conv.weight"].shape[0]) for i in range(stages)),
                    count(state, "up.0.block.{}."))
    why = misfit(net, state)
    if why:
        raise NodeError(f"{name}: its tensors do not fit the HunyuanVideo 1.5 latent upsampler its shapes describe "
                        f"({why})")
    return net.to(device=device, dtype=dtype).eval()


def upsample(latent: Latent, net: Upsampler, width: int, height: int, method: str = "bilinear") -> Latent:
    """ComfyUI's HunyuanVideo15LatentUpscaleWithModel: `latent` resized to width/16 x height/16 latent pixels, then
    through the upsampler (in the VAE's unscaled space). A 0 side follows the other at the latent's aspect."""
    from nodes.generate.latent import upscale_latent
    if latent.family != "hunyuan15":
        raise NodeError(f"the HunyuanVideo 1.5 latent upsampler takes HunyuanVideo 1.5 latents; this one is "
                        f"{latent.family}'s")
    if latent.samples.shape[1] != net.z_channels:
        raise NodeError(f"this upsampler takes {net.z_channels}-channel latents and the latent has "
                        f"{latent.samples.shape[1]}")
    if width == 0 and height == 0:
        return latent
    h, w = latent.samples.shape[-2:]
    if width == 0:
        height = max(64, height)
        width = max(64, round(w * height / h))
    elif height == 0:
        width = max(64, width)
        height = max(64, round(h * width / w))
    sized = upscale_latent(latent, 1.0, method, size=(max(64, height) // 16, max(64, width) // 16))
    p = next(net.parameters())
    with torch.inference_mode():
        out = net((sized.samples / SCALE).to(p.device, p.dtype)).float().cpu() * SCALE
    return sized.with_samples(out)


def sr_conditioning(positive: Conditioning, negative: Optional[Conditioning], latent: Latent,
                    noise_augmentation: float, vae=None, image: Optional[np.ndarray] = None,
                    image_embeds: Optional[Conditioning] = None) -> Tuple[Conditioning, Optional[Conditioning], Latent]:
    """ComfyUI's HunyuanVideo15SuperResolution: the SR model's extra channels [the start image's latent, its mask,
    the low-resolution latent, ones] on both prompts, with how much noise the low-resolution latent gets at
    sampling; the latent passes through (it sets the size; the run starts from noise)."""
    if latent.family != "hunyuan15":
        raise NodeError(f"condition.hunyuan15_sr refines a HunyuanVideo 1.5 latent (from latent.hunyuan15_upsample); "
                        f"this one is {latent.family}'s")
    lq = latent.samples.float() / SCALE
    c = lq.shape[1]
    cond = torch.zeros(lq.shape[0], 2 * c + 2, *lq.shape[2:])
    cond[:, c + 1:2 * c + 1] = lq
    cond[:, 2 * c + 1] = 1
    if image is not None:
        if vae is None or vae.family != "hunyuan15":
            raise NodeError("condition.hunyuan15_sr's start image is encoded with HunyuanVideo 1.5's VAE "
                            "(hunyuanvideo15_vae): connect it")
        from PIL import Image
        from nodes.generate.adapters import get_adapter
        from nodes.generate.image_cond import _pil
        pipe = vae.pipe
        h, w = lq.shape[-2:]
        with torch.inference_mode():
            picture = _pil(image).resize((w * 16, h * 16), Image.BILINEAR)
            pixels = pipe.video_processor.preprocess(picture, height=h * 16, width=w * 16)
            z = get_adapter("hunyuan15").vae_encode(pipe, pixels[:, :, None]).cpu() / SCALE
        cond[:, :c, :z.shape[2]] = z
        cond[:, c, 0] = 1
    extra = {"concat": cond, "noise_augmentation": torch.tensor(float(noise_augmentation))}     # extras are tensors
    if image_embeds is not None:
        extra["image_embeds"] = image_embeds.embeds[:1]
    return positive.with_extra(**extra), None if negative is None else negative.with_extra(**extra), latent


def augmented(concat: torch.Tensor, strength: float, seed: int) -> torch.Tensor:
    """The SR channels with the low-resolution latent noised as ComfyUI noises it for a run of `seed`:
    strength x N(0, 1) (drawn on the CPU from seed - 10) + min(1 - strength, 0.75) x the latent."""
    c = (concat.shape[1] - 2) // 2
    out = concat.clone()
    lq = out[:, c + 1:2 * c + 1]
    if strength > 0:
        noise = torch.randn(lq.shape, generator=torch.Generator("cpu").manual_seed(seed - 10), dtype=lq.dtype)
        out[:, c + 1:2 * c + 1] = strength * noise + min(1.0 - strength, 0.75) * lq
    else:
        out[:, c + 1:2 * c + 1] = 0.75 * lq
    return out
