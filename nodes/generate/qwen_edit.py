"""Qwen-Image-Edit's conditioning: the prompt and the pictures to edit read together by Qwen2.5-VL (its vision tower's
tokens in place of each picture's <|image_pad|>), and each picture's latent as a reference the transformer reads
beside the noise (nodes/generate/reference.py; the model places them, each picture on its own frame plane, read at
timestep zero by Edit-2511).

Two templates, as diffusers' pipelines have them:
  edit (Qwen-Image-Edit, QwenImageEditPipeline): one picture, resized to about a megapixel, seen by the vision tower
      and encoded at that size;
  plus (Qwen-Image-Edit-2509 and later, QwenImageEditPlusPipeline): up to three pictures, each introduced as
      "Picture n:", seen by the vision tower at about 384x384 and encoded at about a megapixel.
The vision tower's input is made here as transformers' Qwen2VLProcessor makes it (its image processor, and
<|image_pad|> repeated once per merged patch), so no video processor (and no torchvision) is needed."""
from __future__ import annotations

import math
from typing import Callable, List, Sequence, Tuple

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.latent import Conditioning, Latent

VAE_AREA = 1024 * 1024          # the reference latent's picture, both templates
PLUS_VL_AREA = 384 * 384        # what Edit-Plus's vision tower sees
MAX_PICTURES = 3                # ComfyUI's TextEncodeQwenImageEditPlus takes three
DROP = 64                       # the system prompt's tokens, dropped from the embeddings (both templates)
SYSTEM = ("<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "
          "background), then explain how the user's text instruction should alter or modify the image. Generate a "
          "new image that meets the user's requirements while maintaining consistency with the original input where "
          "appropriate.<|im_end|>\n<|im_start|>user\n")
PICTURE = "<|vision_start|><|image_pad|><|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
# Qwen2.5-VL-7B-Instruct's preprocessor_config.json (Qwen/Qwen-Image-Edit's processor/ holds the same)
IMAGE_PROCESSOR = {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
                   "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                   "image_std": [0.26862954, 0.26130258, 0.27577711]}
TEMPLATES = ("edit", "plus")


def picture_size(width: int, height: int, area: int) -> Tuple[int, int]:
    """The size of about `area` pixels with the picture's shape, each side a multiple of 32 (the pipelines')."""
    ratio = width / height
    w = math.sqrt(area * ratio)
    return round(w / 32) * 32, round(w / ratio / 32) * 32


def resized(picture: np.ndarray, width: int, height: int):
    """A PIL picture resized as diffusers' VaeImageProcessor resizes one (Lanczos)."""
    from PIL import Image
    img = Image.fromarray(np.ascontiguousarray(picture[..., :3]))
    return img.resize((width, height), resample=Image.LANCZOS)


def image_processor(pipe):
    """The folder's own image processor (processor/ of a Qwen-Image-Edit folder), else Qwen2.5-VL's released one."""
    from transformers import Qwen2VLImageProcessor
    proc = getattr(pipe, "qwen_image_processor", None)
    return proc if proc is not None else Qwen2VLImageProcessor(**IMAGE_PROCESSOR)


def prompt_embeds(pipe, prompt: str, pictures: Sequence, template: str, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Qwen2.5-VL's last hidden states [1, L, D] of the prompt with the pictures (PIL), the system prompt dropped,
    and the mask [1, L]: QwenImageEditPipeline's and QwenImageEditPlusPipeline's _get_qwen_prompt_embeds."""
    te, tok = pipe.text_encoder, pipe.tokenizer
    if template == "plus":
        text = SYSTEM + "".join(f"Picture {i + 1}: {PICTURE}" for i in range(len(pictures))) + prompt
    else:
        text = SYSTEM + PICTURE + prompt
    text += "<|im_end|>\n<|im_start|>assistant\n"
    vision = image_processor(pipe)(images=list(pictures), return_tensors="pt")
    grid = vision["image_grid_thw"]
    merge = image_processor(pipe).merge_size ** 2
    parts = text.split(IMAGE_PAD)
    text = parts[0] + "".join("\0" * int(g.prod() // merge) + p for g, p in zip(grid, parts[1:]))
    ids = tok(text.replace("\0", IMAGE_PAD), return_tensors="pt")
    out = te(input_ids=ids["input_ids"].to(device), attention_mask=ids["attention_mask"].to(device),
             pixel_values=vision["pixel_values"].to(device, te.dtype), image_grid_thw=grid.to(device),
             output_hidden_states=True)
    embeds = out.hidden_states[-1][:, DROP:]
    return embeds, torch.ones(embeds.shape[:2], dtype=torch.bool)


def encode_edit(text_encoder, vae, prompt: str, pictures: List[np.ndarray], template: str = "plus",
                log: Callable[[str], None] = lambda m: None, size: int = 1024) -> Conditioning:
    """The prompt and pictures (uint8 H x W x 3) as Qwen-Image-Edit's conditioning: the text encoder's reading of
    both, and (with a VAE) each picture's latent as a reference, placed by index. Qwen-Image 2.1's text encoder
    reads them as QwenImage21Pipeline does (qwen21_edit.py), each picture at about size x size pixels."""
    from nodes.generate.reference import add_reference
    from nodes.generate.text import _device
    from nodes.generate.vae_ops import encode_pixels, pixels_of
    from nodes.generate.adapters import get_adapter
    if template not in TEMPLATES:
        raise NodeError(f"template={template!r}: choose edit (Qwen-Image-Edit) or plus (Qwen-Image-Edit-2509 and "
                        "later)")
    if getattr(text_encoder, "family", None) == "longcat":
        from nodes.generate.longcat_edit import encode_longcat_edit
        return encode_longcat_edit(text_encoder, vae, prompt, pictures, log)
    if getattr(text_encoder, "family", None) == "qwenimage21":
        from nodes.generate.qwen21_edit import encode_edit21
        return encode_edit21(text_encoder, vae, prompt, pictures, size, log)
    if getattr(text_encoder, "family", None) == "krea2":
        raise NodeError("Krea 2 reading pictures (ComfyUI's Krea 2 style-reference template: its Qwen3-VL seeing the "
                        "picture, the picture's latent read beside the noise) is not something Kinograph runs: "
                        "diffusers' Krea2Pipeline has no such input to check it against. Krea 2 text-to-image runs: "
                        "encode the prompt with encode.text")
    if text_encoder is None or text_encoder.family != "qwenimage":
        fam = getattr(text_encoder, "family", None)
        raise NodeError(f"encode.qwen_edit reads the prompt with Qwen2.5-VL; this text encoder is {fam}'s: load "
                        "qwen_2.5_vl_7b_fp8_scaled.safetensors (type qwen_image) or a Qwen-Image-Edit folder")
    pipe = text_encoder.pipe
    te = pipe.text_encoder
    if not (hasattr(te, "visual") or hasattr(getattr(te, "model", None), "visual")):
        if str(text_encoder.path).lower().endswith(".gguf"):
            from nodes.generate.gguf_mmproj import missing
            raise NodeError(f"encode.qwen_edit needs the text encoder to see the pictures: {missing(text_encoder.path)}")
        raise NodeError("this Qwen2.5-VL has no vision tower (its file holds only the language model), so it cannot "
                        "see the pictures: use qwen_2.5_vl_7b_fp8_scaled.safetensors as ComfyUI ships it")
    if not pictures:
        raise NodeError("encode.qwen_edit needs the picture to edit: connect image (and image2, image3 for Plus)")
    if template == "edit" and len(pictures) > 1:
        raise NodeError(f"the edit template reads one picture; {len(pictures)} are connected: use template plus "
                        "(Qwen-Image-Edit-2509 and later) for several")
    if len(pictures) > MAX_PICTURES:
        raise NodeError(f"Qwen-Image-Edit-Plus reads at most {MAX_PICTURES} pictures; {len(pictures)} were given")
    seen, encoded = [], []
    for pic in pictures:
        h, w = pic.shape[:2]
        big = resized(pic, *picture_size(w, h, VAE_AREA))
        seen.append(resized(pic, *picture_size(w, h, PLUS_VL_AREA)) if template == "plus" else big)
        encoded.append(np.array(big))
    with torch.inference_mode():
        embeds, mask = prompt_embeds(pipe, prompt, seen, template, _device(pipe))
    cond = Conditioning("qwenimage", embeds.float().cpu(), mask, None, (0,), (prompt,))
    if vae is None:
        log("encode.qwen_edit: no VAE connected, so the pictures are only seen by the text encoder (not given to the "
            "transformer as references)")
        return cond
    if vae.family != "qwenimage":
        raise NodeError(f"this VAE is {vae.family}'s; the pictures' latents must be Qwen-Image's (its VAE is Wan "
                        "2.1's network with its own weights and statistics): load qwen_image_vae.safetensors "
                        "(load.vae family qwenimage, or auto with qwen in its name)")
    adapter = get_adapter(vae.family)
    for pic in encoded:
        with torch.inference_mode():
            z = encode_pixels(adapter, vae.pipe, pixels_of(pic[None]), "encoding the picture to edit")
        h, w = pic.shape[:2]
        cond = add_reference(cond, Latent(z.float().cpu(), vae.family, 1, 1.0, w, h))
    return cond
