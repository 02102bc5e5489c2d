"""Mage-Flow's conditioning, as ComfyUI's TextEncodeMageFlowEdit makes it (comfy_extras/nodes_mage.py), for text to
image and edits alike:

- the result's size is width x height, each 0 taken from the first picture (or 1024 without one), floored to a
  multiple of 16;
- each picture is seen by Qwen3-VL-4B (bicubically down to a long edge of 384 where longer, then read in 32-pixel
  squares) as "Image N: " before the prompt, in the edit's chat turn; the negative prompt (a space where empty) is
  read with the same pictures, so only the instruction differs;
- each picture's Mage VAE latent, the picture first resized bicubically to the result's size (Mage's rotary
  positions align the references with the result by place), rides on both prompts as a reference;
- the latent to sample is zeros of the result's size.

The pictures stay in float between the resizes, as ComfyUI's do."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.latent import Conditioning, Latent

GRID = 16               # the Mage VAE's pixels per latent pixel
VISION_EDGE = 384       # the long edge Qwen3-VL sees a picture at, at most (the training preprocessing)
VISION_MAX = 12845056   # ComfyUI's Qwen-VL reading's pixel bound (process_qwen2vl_images)
DEFAULT = 1024          # the result's side without a picture or a size
MAX_PICTURES = 16       # ComfyUI's node grows to image_16 (its templates wire 3)


def result_size(width: int, height: int, pictures: List[np.ndarray]) -> Tuple[int, int]:
    """(width, height) of the result: each 0 from the first picture (1024 without one), floored to the 16 grid."""
    h0, w0 = pictures[0].shape[:2] if pictures else (DEFAULT, DEFAULT)
    w, h = width or w0, height or h0
    return max(GRID, w // GRID * GRID), max(GRID, h // GRID * GRID)


def seen(picture: np.ndarray) -> np.ndarray:
    """The picture (float H x W x 3 in 0..1) as Qwen3-VL sees it: bicubically down to a long edge of 384 where longer,
    then bilinearly to multiples of 32 (ComfyUI's Qwen-VL reading)."""
    import torch.nn.functional as F
    from nodes.generate.boogu_edit import MIN_PIXELS, read_size
    from nodes.video.edit import comfy_scaled
    h, w = picture.shape[:2]
    if max(h, w) > VISION_EDGE:
        s = VISION_EDGE / max(h, w)
        picture = comfy_scaled(picture[None], max(1, round(w * s)), max(1, round(h * s)), "bicubic")[0]
    wb, hb = read_size(picture.shape[1], picture.shape[0], MIN_PIXELS, VISION_MAX)
    x = torch.from_numpy(np.ascontiguousarray(picture)).permute(2, 0, 1)[None]
    return F.interpolate(x, size=(hb, wb), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()


def encode_mage_flow_edit(text_encoder, vae, prompt: str, negative: str, pictures: List[np.ndarray], width: int = 0,
                          height: int = 0, batch_size: int = 1) -> tuple:
    """(positive, negative, latent) for the prompt and the pictures (uint8 H x W x 3 each; none makes a picture from
    the prompt)."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.adapters.mage_flow import chat, prompt_states
    from nodes.generate.reference import add_reference
    from nodes.generate.text import _device
    from nodes.generate.vae_ops import encode_pixels
    from nodes.video.edit import comfy_scaled
    fam = getattr(text_encoder, "family", None)
    if fam != "mage_flow":
        raise NodeError(f"encode.mage_flow_edit reads the prompt with Mage-Flow's Qwen3-VL-4B; this text encoder is "
                        f"{fam}'s: load qwen3vl_4b_bf16.safetensors with type mage")
    if vae is not None and vae.family != "mage_flow":
        raise NodeError(f"this VAE is {vae.family}'s; Mage-Flow reads the pictures as the Mage VAE's latents: connect "
                        "mage_flow_vae_bf16.safetensors")
    if len(pictures) > MAX_PICTURES:
        raise NodeError(f"encode.mage_flow_edit reads at most {MAX_PICTURES} pictures; {len(pictures)} are connected")
    w, h = result_size(width, height, pictures)
    floats = [np.asarray(p[..., :3], np.float32) / 255 for p in pictures]
    pipe = text_encoder.pipe
    if floats and (pipe.processor is None or not hasattr(pipe.text_encoder.model, "visual")):
        raise NodeError("this Qwen3-VL file holds no vision tower, so it cannot see the pictures to edit: use "
                        "qwen3vl_4b_bf16.safetensors, which holds one")
    views = [seen(f) for f in floats] or None
    device = _device(pipe)
    conds = []
    with torch.inference_mode():
        for text in (prompt, negative or " "):
            rows = prompt_states(pipe, chat(text, len(floats)), device, views).float().cpu()[None]
            conds.append(Conditioning("mage_flow", rows, torch.ones(rows.shape[:2], dtype=torch.bool), None, (0,),
                                      (text,)))
    if vae is not None:
        for f in floats:
            px = f if f.shape[:2] == (h, w) else comfy_scaled(f[None], w, h, "bicubic")[0]
            pixels = torch.from_numpy(np.ascontiguousarray(px)).permute(2, 0, 1)[None, :, None] * 2 - 1
            with torch.inference_mode():
                z = encode_pixels(get_adapter(vae.family), vae.pipe, pixels, "encoding the picture to edit")
            ref = Latent(z.float().cpu(), vae.family, 1, 1.0, w, h)
            conds = [add_reference(c, ref) for c in conds]
    latent = Latent(torch.zeros(batch_size, 128, 1, h // GRID, w // GRID), "mage_flow", 1, 1.0, w, h)
    return conds[0], conds[1], latent
