"""FIBO 2's conditioning and latent, as ComfyUI's TextEncodeFibo2 gives them (positive, negative, latent).

ComfyUI's node code was not at hand: its inputs are the template's (prompt, negative_prompt, width, height,
batch_size; clip, images.image_1..4, vae) and its behaviour is what the template's notes say of it, which is what
diffusers' BriaFibo2Pipeline does, so the pipeline's own steps are used:

- the size of the result: width and height floored to multiples of 16; 0 takes the trained size about a megapixel
  for the first picture's shape (BriaFibo2ImageProcessor.get_image_size), 1024 x 1024 without pictures;
- one picture is scaled to cover that size and cut at the middle (Lanczos); several are each cut to their own
  trained size (BriaFibo2ImageProcessor.preprocess);
- Qwen3-VL-4B reads the prompt in the edit JSON with each picture marked before it (seen at most 768 pixels a side);
  without pictures, the prompt as a caption to make;
- the negative prompt is read without the pictures; empty, it is the null caption FIBO 2 was trained with
  (DEFAULT_NEGATIVE_PROMPT);
- each picture's FLUX.2 latent rides on both prompts as a reference (the pipeline conditions both passes on them);
- the latent is FLUX.2's empty one of that size, batch_size pictures.

The pipeline's pictures of a caption's text_render entries (text drawn for Qwen3-VL) are not made."""
from __future__ import annotations

import json
from typing import List, Sequence

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.latent import Conditioning, Latent

AREA = 1024 * 1024          # the size FIBO 2 was trained at (BriaFibo2Pipeline's default_sample_size x 8, squared)
GRID = 16                   # FLUX.2's latent pixel (8x VAE, 2x2 patches)
SEEN = 768                  # Qwen3-VL sees each picture at most this many pixels a side (text_encoder_image_size)
MAX_PICTURES = 5            # BriaFibo2Pipeline.max_num_images
CHANNELS = 128              # FLUX.2's patched latent


def result_size(width: int, height: int, pictures: Sequence[np.ndarray]) -> tuple:
    """(width, height) of the picture made: each side given floored to a multiple of 16, a side of 0 the trained
    size's for the first picture's shape (1024 without pictures)."""
    from diffusers.pipelines.bria_fibo2.image_processor import BriaFibo2ImageProcessor
    if pictures:
        h, w = pictures[0].shape[:2]
        auto = BriaFibo2ImageProcessor(vae_scale_factor=GRID).get_image_size(w / h, area=AREA)
    else:
        auto = (1024, 1024)
    size = tuple(s // GRID * GRID if s else a for s, a in zip((width, height), auto))
    if min(size) < GRID:
        raise NodeError(f"width={width}, height={height}: give sides of at least {GRID} pixels, or 0 for FIBO 2's "
                        "trained size")
    return size


def _checked_edit(prompt: str) -> None:
    """A JSON edit prompt must say what to change (BriaFibo2Pipeline.check_inputs)."""
    try:
        edit = json.loads(prompt)
    except json.JSONDecodeError:
        return
    if isinstance(edit, dict) and "edit_instruction" not in edit:
        raise NodeError("this edit prompt is a JSON object without an \"edit_instruction\": give the instruction "
                        "alone, or the JSON caption of the result with an \"edit_instruction\" key (the prompt "
                        "enhancer's system prompt asks for one)")


def encode_fibo2(text_encoder, vae, prompt: str, negative: str, pictures: List[np.ndarray], width: int = 0,
                 height: int = 0, batch_size: int = 1) -> tuple:
    """(positive, negative, latent) for the prompt and the pictures to edit (uint8 H x W x 3 each; none makes a
    picture from the prompt)."""
    from PIL import Image
    from diffusers.pipelines.bria_fibo2.image_processor import BriaFibo2ImageProcessor
    from diffusers.pipelines.bria_fibo2.pipeline_bria_fibo2 import DEFAULT_NEGATIVE_PROMPT
    from nodes.generate.adapters import get_adapter
    from nodes.generate.adapters.fibo2 import generation_prompt, prompt_bundles
    from nodes.generate.reference import add_reference
    from nodes.generate.text import _device
    from nodes.generate.vae_ops import encode_pixels
    fam = getattr(text_encoder, "family", None)
    if fam != "fibo2":
        raise NodeError(f"encode.fibo2 reads the prompt with FIBO 2's Qwen3-VL-4B; this text encoder is {fam}'s: load "
                        "qwen3vl_4b_bf16.safetensors with type fibo2")
    if vae is not None and vae.family != "flux2":
        raise NodeError(f"this VAE is {vae.family}'s; FIBO 2 reads the pictures as FLUX.2's latents: connect "
                        "flux2-vae.safetensors")
    if len(pictures) > MAX_PICTURES:
        raise NodeError(f"FIBO 2 edits at most {MAX_PICTURES} pictures at once; {len(pictures)} are connected")
    w, h = result_size(width, height, pictures)
    pipe, device = text_encoder.pipe, _device(text_encoder.pipe)
    crops, seen = [], None
    if pictures:
        _checked_edit(prompt)
        crops, seen = BriaFibo2ImageProcessor(vae_scale_factor=GRID).preprocess(
            [Image.fromarray(np.ascontiguousarray(p[..., :3])) for p in pictures], height=h, width=w, area=AREA,
            text_encoder_image_size=SEEN)
    with torch.inference_mode():
        pos = prompt_bundles(pipe, prompt, device, seen) if pictures else \
            prompt_bundles(pipe, generation_prompt(prompt), device)
        neg = prompt_bundles(pipe, negative or DEFAULT_NEGATIVE_PROMPT, device)
    conds = [Conditioning("fibo2", rows.float().cpu()[None], torch.ones(1, rows.shape[0], dtype=torch.bool), None,
                          (0,), (text,)) for rows, text in ((pos, prompt), (neg, negative))]
    if vae is not None:
        for crop in crops:
            with torch.inference_mode():
                z = encode_pixels(get_adapter(vae.family), vae.pipe, crop[:, :, None], "encoding the picture to edit")
            ref = Latent(z.float().cpu(), vae.family, 1, 1.0, crop.shape[-1], crop.shape[-2])
            conds = [add_reference(c, ref) for c in conds]
    latent = Latent(torch.zeros(batch_size, CHANNELS, 1, h // GRID, w // GRID), "flux2", 1, 1.0, w, h)
    return conds[0], conds[1], latent
