"""Qwen-Image 2.1's picture edits, as QwenImage21Pipeline runs them with `image=`: each picture, resized to about
size x size pixels (multiples of 32, its shape kept), is seen by Qwen3-VL in the prompt ("<image1>" and its vision
tokens before the instruction), and its latent fills the image slots Qwen3-VL's vision tokens left in the embeddings
(one slot per 2x2 latent pixels), before the picture being made. The conditioning carries the slots
(extra["image_slots"], bool per token) and the latents as references (nodes/generate/reference.py); the adapter
(adapters/qwenimage21.py) lays them out for the transformer."""
from __future__ import annotations

from typing import Callable, List

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.latent import Conditioning, Latent

SIZE = 1024          # QwenImage21Pipeline's output_resolution: the pictures' area is about SIZE * SIZE
SLOT = 32            # pixels per side of one image slot: Qwen3-VL's 16-pixel patches merged 2x2


def check_size(image_processor, width: int, height: int, source: str) -> None:
    """Refuse a picture Qwen3-VL's image processor would resize: its vision tokens would no longer be one per 2x2
    latent pixels of the picture's latent (the processor keeps a picture whose sides are multiples of 32 when its
    area lies within its bounds)."""
    if width < SLOT or height < SLOT:
        raise NodeError(f"the picture to edit ({source}) would be {width}x{height} at this size: too narrow for "
                        "Qwen-Image 2.1, which reads it in 32-pixel squares; crop it nearer to square or raise size")
    low, high = image_processor.size["shortest_edge"], image_processor.size["longest_edge"]
    if not low <= width * height <= high:
        raise NodeError(f"the picture to edit ({source}) would be {width}x{height} at this size, but this Qwen3-VL "
                        f"reads pictures of {low} to {high} pixels (its image processor's bounds) and would resize it "
                        f"away from its latent: set size between {int(np.ceil(low ** 0.5))} and {int(high ** 0.5)}")


def encode_edit21(text_encoder, vae, prompt: str, pictures: List[np.ndarray], size: int = SIZE,
                  log: Callable[[str], None] = lambda m: None) -> Conditioning:
    """The prompt and pictures (uint8 H x W x 3) as Qwen-Image 2.1's edit conditioning; size 0 reads each picture
    at its own size, its sides rounded to multiples of 32 (ComfyUI's TextEncodeQwenImage21 at resolution 0)."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.qwen_edit import picture_size, resized
    from nodes.generate.reference import add_reference
    from nodes.generate.text import _device
    from nodes.generate.vae_ops import encode_pixels, pixels_of
    if vae is None:
        raise NodeError("Qwen-Image 2.1 reads each picture to edit as its latent in the places its text encoder saw "
                        "it: connect the VAE (qwen_image_2.1_vae, or the folder's) to encode.qwen_edit")
    if vae.family != "qwenimage21":
        raise NodeError(f"this VAE is {vae.family}'s; Qwen-Image 2.1 reads the pictures as its own VAE's 64-channel "
                        "latents: connect the Qwen-Image 2.1 folder's VAE")
    if not pictures:
        raise NodeError("encode.qwen_edit needs the picture to edit: connect image (and image2, image3)")
    pipe = text_encoder.pipe
    seen, encoded = [], []
    for i, pic in enumerate(pictures):
        h, w = pic.shape[:2]
        size_w, size_h = picture_size(w, h, size * size) if size else (round(w / SLOT) * SLOT, round(h / SLOT) * SLOT)
        check_size(pipe.processor.image_processor, size_w, size_h, f"image{i + 1 if i else ''}, {w}x{h}")
        seen.append(resized(pic, size_w, size_h))
        encoded.append(np.array(seen[-1]))
    with torch.inference_mode():
        embeds, _, slots = pipe.encode_prompt([prompt], image=seen, device=_device(pipe))
    cond = Conditioning("qwenimage21", embeds.float().cpu(), torch.ones(embeds.shape[:2], dtype=torch.bool), None,
                        (0,), (prompt,), extra={"image_slots": slots.cpu()})
    adapter = get_adapter(vae.family)
    for pic in encoded:
        with torch.inference_mode():
            z = encode_pixels(adapter, vae.pipe, pixels_of(pic[None]), "encoding the picture to edit")
        cond = add_reference(cond, Latent(z.float().cpu(), vae.family, 1, 1.0, pic.shape[1], pic.shape[0]))
    return cond
