"""LongCat-Image-Edit's conditioning (encode.qwen_edit given LongCat-Image's text encoder, as ComfyUI's LongCat-Image-Edit
template gives TextEncodeQwenImageEdit its CLIPLoader type longcat_image): LongCatImageEditPipeline's own reading of
the prompt with the picture, called as it is. The picture is resized to about a megapixel (each side rounded up to a
multiple of 16), Qwen2.5-VL's vision tower sees it at half that size, and the embeddings keep the picture's vision
tokens before the prompt's 512 padded ones; the picture's latent at the megapixel size is the reference the transformer
reads beside the noise (adapters/longcat.py places it)."""
from __future__ import annotations

from typing import Callable, List

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.latent import Conditioning, Latent

AREA = 1024 * 1024


class _VisionOnly:
    """What LongCatImageEditPipeline reads of its text processor: the image processor alone (transformers' full
    Qwen2VLProcessor needs torchvision for the videos it never reads here)."""

    def __init__(self, image_processor):
        self.image_processor = image_processor


def encode_longcat_edit(text_encoder, vae, prompt: str, pictures: List[np.ndarray],
                        log: Callable[[str], None] = lambda m: None) -> Conditioning:
    from diffusers import LongCatImageEditPipeline
    from diffusers.pipelines.longcat_image.pipeline_longcat_image_edit import calculate_dimensions
    from nodes.generate.adapters import get_adapter
    from nodes.generate.qwen_edit import image_processor, resized
    from nodes.generate.reference import add_reference
    from nodes.generate.vae_ops import encode_pixels, pixels_of
    pipe = text_encoder.pipe
    if not (hasattr(pipe.text_encoder, "visual") or hasattr(getattr(pipe.text_encoder, "model", None), "visual")):
        raise NodeError("this Qwen2.5-VL has no vision tower (its file holds only the language model), so it cannot "
                        "see the picture: use qwen_2.5_vl_7b_fp8_scaled.safetensors as ComfyUI ships it")
    if len(pictures) != 1:
        raise NodeError(f"LongCat-Image-Edit reads one picture to edit; {len(pictures)} are connected: connect image "
                        "alone")
    h, w = pictures[0].shape[:2]
    width, height = calculate_dimensions(AREA, w / h)
    picture = resized(pictures[0], width, height)
    reader = LongCatImageEditPipeline(scheduler=None, vae=None, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                      text_processor=_VisionOnly(image_processor(pipe)), transformer=None)
    with torch.inference_mode():
        embeds = reader._encode_prompt([prompt], resized(np.array(picture), width // 2, height // 2))
    cond = Conditioning("longcat", embeds.float().cpu(), None, None, (0,), (prompt,))
    if vae is None:
        log("encode.qwen_edit: no VAE connected, so the picture is only seen by the text encoder (not given to "
            "LongCat-Image-Edit's transformer as the picture to edit)")
        return cond
    if vae.family != "flux":
        raise NodeError(f"this VAE is {vae.family}'s; LongCat-Image-Edit reads FLUX.1's latents: load ae.safetensors")
    with torch.inference_mode():
        z = encode_pixels(get_adapter("flux"), vae.pipe, pixels_of(np.array(picture)[None]),
                          "encoding the picture to edit")
    return add_reference(cond, Latent(z.float().cpu(), vae.family, 1, 1.0, width, height))
