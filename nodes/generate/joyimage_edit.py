"""JoyImage Edit's conditioning, as ComfyUI's TextEncodeJoyImageEdit makes it (comfy_extras/nodes_joyimage.py): each
picture (one per input, up to six) is cut at the middle to the shape of the nearest of JoyImage's trained sizes about
1024 x 1024 (BUCKETS_1024) and resized to it bilinearly; Qwen3-VL-8B sees the pictures before the prompt (resized to
multiples of 32, bicubic, at least 256 x 256 pixels), and their Wan 2.1 VAE latents ride on the conditioning as
references for the transformer to read beside the noise. The negative prompt is its own TextEncodeJoyImageEdit with
the same pictures, as ComfyUI's template makes it."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.handles import need_wan_vae
from nodes.generate.latent import Conditioning, Latent

# JoyImage's trained sizes, (height, width), about 1024 x 1024 (comfy_extras/nodes_joyimage.py BUCKETS_1024)
BUCKETS = ((512, 1792), (512, 1856), (512, 1920), (512, 1984), (512, 2048), (576, 1600), (576, 1664), (576, 1728),
           (576, 1792), (640, 1472), (640, 1536), (640, 1600), (704, 1344), (704, 1408), (704, 1472), (768, 1216),
           (768, 1280), (768, 1344), (832, 1152), (832, 1216), (896, 1088), (896, 1152), (960, 1024), (960, 1088),
           (1024, 960), (1024, 1024), (1088, 896), (1088, 960), (1152, 832), (1152, 896), (1216, 768), (1216, 832),
           (1280, 768), (1344, 704), (1344, 768), (1408, 704), (1472, 640), (1472, 704), (1536, 640), (1600, 576),
           (1600, 640), (1664, 576), (1728, 576), (1792, 512), (1792, 576), (1856, 512), (1920, 512), (1984, 512),
           (2048, 512))
SIZE = 1024
MAX_PICTURES = 6
VISION_MIN, VISION_MAX = 65536, 16777216      # the pixels Qwen3-VL reads a picture at (Qwen3VL8B_JoyImage)


def bucket(w: int, h: int, size: int = SIZE) -> Tuple[int, int]:
    """(width, height) of the trained size whose shape is nearest this picture's (the first of equals), scaled by
    size / 1024 (sides multiples of 16 for a size that is a multiple of 256)."""
    bh, bw = min(BUCKETS, key=lambda hw: abs(hw[0] / hw[1] - h / w))
    return bw * size // SIZE, bh * size // SIZE


def seen(picture: np.ndarray) -> np.ndarray:
    """The picture (float H x W x 3 in 0..1) as Qwen3-VL sees it: bicubically to multiples of 32 within its pixels."""
    import torch.nn.functional as F
    from nodes.generate.boogu_edit import read_size
    h, w = picture.shape[:2]
    wb, hb = read_size(w, h, VISION_MIN, VISION_MAX)
    x = torch.from_numpy(np.ascontiguousarray(picture)).permute(2, 0, 1)[None]
    return F.interpolate(x, size=(hb, wb), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()


def encode_joyimage_edit(text_encoder, vae, prompt: str, pictures: List[np.ndarray], size: int = SIZE) -> Conditioning:
    """JoyImage Edit's conditioning for the prompt and the pictures (uint8 H x W x 3 each; none gives a text-only
    prompt, ComfyUI's node with no picture)."""
    if getattr(text_encoder, "family", None) != "joyimage":
        fam = getattr(text_encoder, "family", None)
        raise NodeError(f"encode.joyimage_edit reads the prompt with JoyImage Edit's Qwen3-VL-8B; this text encoder is "
                        f"{fam}'s: load qwen3vl_8b_joyimage_edit_int8_convrot.safetensors with type joyimage")
    if vae is not None:     # refused before the diffusers the rest imports
        need_wan_vae(vae, "encode.joyimage_edit")
    from nodes.generate.adapters import get_adapter
    from nodes.generate.adapters.joyimage import chat, prompt_states
    from nodes.generate.reference import add_reference
    from nodes.generate.text import _device
    from nodes.generate.vae_ops import encode_pixels
    from nodes.video.edit import comfy_scaled
    if len(pictures) > MAX_PICTURES:
        raise NodeError(f"JoyImage Edit reads at most {MAX_PICTURES} pictures; {len(pictures)} are connected")
    if size % 256:
        raise NodeError(f"size={size}: give a multiple of 256 (1024 is JoyImage's), so every trained shape keeps sides "
                        "of whole 16-pixel squares")
    pipe = text_encoder.pipe
    resized = []
    for p in pictures:
        w, h = bucket(p.shape[1], p.shape[0], size)
        resized.append(comfy_scaled(np.asarray(p[None, ..., :3], np.float32) / 255, w, h, "bilinear", crop=True)[0])
    if resized and (pipe.processor is None or not hasattr(pipe.text_encoder.model, "visual")):
        raise NodeError("this Qwen3-VL file holds no vision tower, so it cannot see the pictures to edit: use "
                        "qwen3vl_8b_joyimage_edit_int8_convrot.safetensors, which holds one")
    with torch.inference_mode():
        rows = prompt_states(pipe, chat(prompt, len(resized)), _device(pipe),
                             [seen(r) for r in resized] if resized else None).float().cpu()[None]
    cond = Conditioning("joyimage", rows, torch.ones(rows.shape[:2], dtype=torch.bool), None, (0,), (prompt,))
    if vae is None:
        return cond
    for r in resized:
        pixels = torch.from_numpy(np.ascontiguousarray(r)).permute(2, 0, 1)[None, :, None] * 2 - 1
        with torch.inference_mode():
            z = encode_pixels(get_adapter(vae.family), vae.pipe, pixels, "encoding the picture to edit")
        cond = add_reference(cond, Latent(z.float().cpu(), vae.family, 1, 1.0, r.shape[1], r.shape[0]))
    return cond
