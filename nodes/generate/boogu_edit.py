"""Boogu-Image Edit's conditioning, as ComfyUI's TextEncodeBooguEdit makes it (comfy_extras/nodes_boogu.py, after
Boogu's reference pipeline): each picture is used twice. Qwen3-VL sees it (resized to about 384 x 384 pixels, then
read in 32-pixel squares) before the instruction, in the positive prompt only, so guidance amplifies the
instruction; its latent (the picture at about 1024 x 1024, sides multiples of 16) rides on both prompts as a
reference, so guidance keeps the picture. The negative is read alone, without pictures. The pictures stay in float
between the resizes, as ComfyUI's do."""
from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.latent import Conditioning, Latent

VISION_SIZE = 384        # the reference pipeline's max_vlm_input_pil_pixels: 384 x 384
SIZE = 1024              # the reference latent's area: 1024 x 1024
SQUARE = 32              # Qwen3-VL reads pictures in 16-pixel patches merged 2x2
MIN_PIXELS = 3136        # below it ComfyUI's Qwen-VL reading scales a picture up


def about(w: int, h: int, size: int, step: int = 1) -> Tuple[int, int]:
    """(width, height) of about size x size pixels with this shape, sides rounded to multiples of `step`."""
    s = math.sqrt(size * size / (w * h))
    return round(w * s / step) * step, round(h * s / step) * step


def read_size(w: int, h: int, min_pixels: int = MIN_PIXELS, max_pixels: int = 0) -> Tuple[int, int]:
    """The size ComfyUI's Qwen-VL reading resizes a picture to (comfy/text_encoders/qwen_vl.process_qwen2vl_images):
    sides rounded to multiples of 32, scaled down where that leaves over max_pixels (0: no bound), up where under
    min_pixels."""
    wb, hb = round(w / SQUARE) * SQUARE, round(h / SQUARE) * SQUARE
    if max_pixels and wb * hb > max_pixels:
        beta = math.sqrt(w * h / max_pixels)
        wb, hb = max(SQUARE, math.floor(w / beta / SQUARE) * SQUARE), max(SQUARE, math.floor(h / beta / SQUARE) * SQUARE)
    elif wb * hb < min_pixels:
        beta = math.sqrt(min_pixels / (w * h))
        wb, hb = math.ceil(w * beta / SQUARE) * SQUARE, math.ceil(h * beta / SQUARE) * SQUARE
    return wb, hb


def seen(picture: np.ndarray, vision_size: int = VISION_SIZE) -> np.ndarray:
    """The picture (float H x W x 3 in 0..1) as Qwen3-VL sees it: area-resized to about vision_size squared, then
    bilinearly to multiples of 32."""
    import torch.nn.functional as F
    from nodes.video.edit import comfy_scaled
    h, w = picture.shape[:2]
    vw, vh = about(w, h, vision_size)
    small = comfy_scaled(picture[None], max(1, vw), max(1, vh), "area")[0]     # ComfyUI fails on a side of 0
    wb, hb = read_size(small.shape[1], small.shape[0])
    x = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)[None]
    return F.interpolate(x, size=(hb, wb), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()


def reference_latent(vae, picture: np.ndarray, size: int = SIZE) -> Latent:
    """The picture's latent at about size squared, sides multiples of 16 (the VAE's 8 times the 2x2 patch)."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.vae_ops import encode_pixels
    from nodes.video.edit import comfy_scaled
    h, w = picture.shape[:2]
    rw, rh = about(w, h, size, 16)
    if rw < 16 or rh < 16:
        raise NodeError(f"a {w}x{h} picture at about {size}x{size} pixels is {rw}x{rh}: too narrow for Boogu-Image, "
                        "which reads it in 16-pixel squares; crop it nearer to square or raise size")
    px = comfy_scaled(picture[None], rw, rh, "area")
    pixels = torch.from_numpy(np.ascontiguousarray(px)).permute(3, 0, 1, 2)[None] * 2 - 1
    with torch.inference_mode():
        z = encode_pixels(get_adapter(vae.family), vae.pipe, pixels, "encoding the picture to edit")
    return Latent(z.float().cpu(), vae.family, 1, 1.0, rw, rh)


def encode_boogu_edit(text_encoder, vae, prompt: str, negative: str, pictures: List[np.ndarray],
                      size: int = SIZE, vision_size: int = VISION_SIZE) -> Tuple[Conditioning, Conditioning]:
    """(positive, negative) for Boogu-Image Edit from the instruction, the negative and the pictures (uint8 H x W x
    3 each; none gives text-to-image's prompts, ComfyUI's node with no picture)."""
    from nodes.generate.adapters.boogu import chat, last_states
    from nodes.generate.reference import add_reference
    from nodes.generate.text import _device
    if getattr(text_encoder, "family", None) != "boogu":
        fam = getattr(text_encoder, "family", None)
        raise NodeError(f"encode.boogu_edit reads the prompt with Boogu-Image's Qwen3-VL-8B; this text encoder is "
                        f"{fam}'s: load qwen3vl_8b_fp8_scaled.safetensors with type boogu")
    if vae is not None and vae.family != "flux":
        raise NodeError(f"this VAE is {vae.family}'s; Boogu-Image reads the pictures as FLUX.1's VAE's latents: "
                        "connect ae.safetensors")
    pipe = text_encoder.pipe
    floats = [np.asarray(p[..., :3], np.float32) / 255 for p in pictures]
    if floats and (pipe.processor is None or not hasattr(pipe.text_encoder.model, "visual")):
        raise NodeError("this Qwen3-VL file holds no vision tower, so it cannot see the pictures to edit: use "
                        "Boogu's qwen3vl_8b_fp8_scaled.safetensors, which holds one")
    device = _device(pipe)
    with torch.inference_mode():
        states = last_states(pipe, chat(prompt, len(floats)), device,
                             [seen(f, vision_size) for f in floats] if floats else None)
        unconditional = last_states(pipe, chat(negative), device)

    def cond(text, rows):
        rows = rows.float().cpu()[None]
        return Conditioning("boogu", rows, torch.ones(rows.shape[:2], dtype=torch.bool), None, (0,), (text,))
    positive, negative_cond = cond(prompt, states), cond(negative, unconditional)
    if vae is not None:
        for f in floats:
            latent = reference_latent(vae, f, size)
            positive, negative_cond = add_reference(positive, latent), add_reference(negative_cond, latent)
    return positive, negative_cond
