"""TRELLIS.2 / Pixal3D's image conditioning as ComfyUI computes it (comfy_extras/nodes_trellis2.py:
Trellis2Conditioning, _dino_encode_batch, _dinov3_encode): DINOv3 ViT-L/16's tokens of the picture at 512 and at 1024
pixels a side, each sequence (class token, 4 registers, the patches) layer-normed without the model's own scale and
shift (skip_norm_elementwise). The positive holds the 512 tokens with the 1024 tokens beside them (ComfyUI's
"embeds"); the negative is zeros of both shapes.

The encoder is ComfyUI's clip_vision file (dino_v3_L_naf_fp32.safetensors): DINOv3 in transformers' names without
their model. prefix (embeddings., layer.N., norm.), and Pixal3D's NAF feature upsampler under naf., which only
Pixal3D's conditioning reads (not read here)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.generate.latent import Conditioning
from nodes.generate.own_parts import OwnParts
from nodes.generate.weights import misfit

SIZES = (512, 1024)                 # the two sides ComfyUI encodes the picture at (the shape stages' 512 and 1024)
# ImageNet's, which DINOv3 was trained with and ComfyUI's TRELLIS.2 code names as its default. (ComfyUI's loader
# hands _dinov3_encode CLIP's unless the model's json names an "image_mean"; its dino3_large.json names "mean".)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NAF = "naf."


def build_dinov3(state: Dict[str, torch.Tensor], name: str = "the DINOv3 file"):
    """transformers' DINOv3ViTModel for ComfyUI's DINOv3 tensors: widths, depth, registers and patch size read
    from them; 64-wide heads (ViT-L's 16); the gated MLP where the tensors have one (ViT-H+). A stranger's sizes:
    the layers counted (at most converters.MAX_BLOCKS), the model counted on the meta device before it is built."""
    from transformers import DINOv3ViTConfig, DINOv3ViTModel
    from nodes.generate.converters import check_claim, count
    from nodes.generate.weights import sizes_of
    state = {k[len("model."):] if k.startswith("model.layer.") else k: v for k, v in state.items()}  # transformers 5's
    try:
        hidden = int(state["embeddings.cls_token"].shape[-1])
        patch = state["embeddings.patch_embeddings.weight"]
        gated = "layer.0.mlp.gate_proj.weight" in state
        cfg = DINOv3ViTConfig(
            hidden_size=hidden, num_attention_heads=max(1, hidden // 64),
            num_hidden_layers=sum(1 for k in state if k.startswith("layer.") and k.endswith(".norm1.weight")),
            intermediate_size=int(state["layer.0.mlp.up_proj.weight"].shape[0]),
            num_register_tokens=int(state["embeddings.register_tokens"].shape[1]),
            patch_size=int(patch.shape[-1]), num_channels=int(patch.shape[1]),
            use_gated_mlp=gated, hidden_act="silu" if gated else "gelu",
            key_bias="layer.0.attention.k_proj.bias" in state, layer_norm_eps=1e-5, rope_theta=100.0)
    except KeyError as e:
        raise NodeError(f"{name} lacks {e.args[0]}: it is incomplete or damaged; get it again") from None
    except IndexError as e:     # a tensor of too few dimensions
        raise NodeError(f"{name} holds tensors of shapes DINOv3 does not have ({e}): it is incomplete or "
                        "damaged; get it again") from None
    with sizes_of(name, "DINOv3"):
        count(state, "layer.{}.")
    check_claim(lambda: DINOv3ViTModel(cfg), state, name)
    model = DINOv3ViTModel(cfg)
    named = {("model." + k if k.startswith("layer.") else k): v for k, v in state.items()}   # transformers 5 nests
    why = misfit(model, named)
    if why:
        raise NodeError(f"{name} does not fit DINOv3's layout ({why}): it is incomplete or damaged; get it "
                        "again")
    return model.eval()


class Dinov3Encoder(OwnParts):
    """What load.clip_vision hands condition.trellis2: DINOv3 in float32 (its tokens feed the flow models
    directly; ComfyUI runs it in the text encoders' precision)."""

    def __init__(self, model):
        super().__init__(model=model)


def load_dinov3(path: Path, device: str) -> Dinov3Encoder:
    from nodes.generate.weights import dequantise, read_selected
    state = dequantise(read_selected(path, lambda k: not k.startswith(NAF)), torch.float32)
    return Dinov3Encoder(build_dinov3(state, Path(path).name)).to(device)


def _lanczos(picture: np.ndarray, side: int) -> np.ndarray:
    """comfy.utils.common_upscale's lanczos: PIL's Lanczos on 8-bit levels taken from the float picture as
    ComfyUI's (255 * x truncated, which turns a few levels of a uint8 / 255 picture one down), back to 0..1."""
    from PIL import Image
    levels = np.clip(255.0 * (picture.astype(np.float32) / 255.0), 0, 255).astype(np.uint8)
    sized = Image.fromarray(levels).resize((side, side), resample=Image.Resampling.LANCZOS)
    return np.asarray(sized).astype(np.float32) / 255.0


def tokens(model, picture: np.ndarray, side: int) -> torch.Tensor:
    """DINOv3's [1, 1 + registers + (side / patch)^2, width] tokens of `picture` resized to side x side, the last
    layer's output layer-normed without the model's norm weights (ComfyUI's skip_norm_elementwise)."""
    param = next(model.parameters())
    x = torch.from_numpy(_lanczos(picture, side)).permute(2, 0, 1)[None].to(param.device)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    x = ((x - mean) / std).to(param.dtype)
    with torch.inference_mode():
        hidden = model.embeddings(x)
        hidden = model.model(hidden, position_embeddings=model.rope_embeddings(x)).last_hidden_state
        return F.layer_norm(hidden.float(), hidden.shape[-1:])


def conditioning(encoder, picture: np.ndarray):
    """(positive, negative) as ComfyUI's Trellis2Conditioning makes them from one squared picture (ImageCropToMask's,
    mask.crop_to_mask here): embeds the 512 tokens, extra["embeds_1024"] the 1024 tokens; the negative zeros."""
    model = getattr(getattr(encoder, "pipe", None), "model", None)
    if getattr(encoder, "family", None) != "trellis2" or model is None:
        raise NodeError("condition.trellis2 needs DINOv3 (load.clip_vision on dino_v3_L_naf_fp32.safetensors, "
                        "Comfy-Org/Pixal3D's clip_vision/)")
    if not isinstance(picture, np.ndarray) or picture.ndim != 3 or picture.shape[2] < 3:
        raise NodeError("condition.trellis2 reads one RGB picture (H x W x 3): crop it to its subject first "
                        "(mask.crop_to_mask)")
    rgb = np.ascontiguousarray(picture[..., :3])
    small, large = (tokens(model, rgb, side).cpu() for side in SIZES)
    positive = Conditioning("trellis2", small, prompts=("<image>",), extra={"embeds_1024": large},
                            meta={"kind": "image"})
    negative = Conditioning("trellis2", torch.zeros_like(small), prompts=("",),
                            extra={"embeds_1024": torch.zeros_like(large)}, meta={"kind": "image"})
    return positive, negative
