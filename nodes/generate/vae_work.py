"""The work of a VAE's decode, from its weights' shapes: told beside the samplers' before a run, since for Wan at
81 frames the decode is a real share of the run (the samplers were all that was counted).

Wan 2.1's VAE decodes one latent frame at a time, causally: the first latent frame makes one frame and each
later one four, doubled at the two levels whose upsampler has a time convolution (frames 1 + 2 (t - 1) there,
the time convolution itself skipping the first); each convolution costs 2 FLOPs per weight per output position,
and the middle block's single-head attention runs over each frame's latent pixels."""
from __future__ import annotations

import math
import re
from typing import Dict, Tuple

_UP = re.compile(r"^decoder\.up_blocks\.(\d+)\.")


def wan_vae_decode_flops(shapes: Dict[str, Tuple[int, ...]], lat_frames: int, lat_h: int, lat_w: int) -> float:
    """FLOPs of decoding `lat_frames` x lat_h x lat_w latents with a Wan 2.1 VAE of these (diffusers) shapes."""
    levels = 1 + max((int(m.group(1)) for m in map(_UP.match, shapes) if m), default=0)
    frames = [lat_frames]
    for i in range(levels - 1):
        up3d = f"decoder.up_blocks.{i}.upsamplers.0.time_conv.weight" in shapes
        frames.append(2 * frames[-1] - 1 if up3d and frames[-1] > 0 else frames[-1])
    total = 0.0
    for key, shape in shapes.items():
        if not key.endswith(".weight") or len(shape) < 4 or not (key.startswith("decoder.") or
                                                                 key.startswith("post_quant_conv.")):
            continue
        m = _UP.match(key)
        if m is None:
            level = levels - 1 if key.startswith("decoder.conv_out") else 0
            t = frames[level]
        elif ".upsamplers.0.time_conv." in key:
            level, t = int(m.group(1)), frames[int(m.group(1))] - 1
        elif ".upsamplers.0.resample." in key:
            level = int(m.group(1)) + 1
            t = frames[level]
        else:
            level = int(m.group(1))
            t = frames[level]
        pixels = lat_h * lat_w * 4 ** level
        total += 2.0 * math.prod(shape) * pixels * t
        if key.endswith(".attentions.0.to_qkv.weight"):       # Q K^T and the weighted sum of V, per frame
            total += 4.0 * pixels * pixels * shape[1] * t
    return total


def diffusers_wan_vae_shapes(shapes: Dict[str, Tuple[int, ...]]) -> Dict[str, Tuple[int, ...]]:
    """A Wan 2.1 VAE's shapes in diffusers' names, from the original ones (ComfyUI's wan_2.1_vae.safetensors)
    through diffusers' own converter, on shapes alone."""
    if "decoder.conv_in.weight" in shapes:
        return shapes
    import torch
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
    with torch.device("meta"):
        state = {k: torch.empty(s) for k, s in shapes.items()}
    return {k: tuple(v.shape) for k, v in convert_wan_vae_to_diffusers(state).items()}
