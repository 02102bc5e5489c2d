"""Chroma single files as ComfyUI users hold them: diffusion_models/Chroma1-HD.safetensors, chroma-unlocked-v*.safetensors
(FLUX.1's Black Forest Labs names without the blocks' own modulations, plus distilled_guidance_layer; fp8_scaled or
GGUF through weights.load_weights). Its T5-XXL (text_encoders/t5xxl_*.safetensors) and FLUX.1's ae.safetensors load
through their own converters (text.py, flux.py). Chroma Radiance (chroma-radiance*.safetensors: the same transformer
reading pixel patches through img_in_patch, ComfyUI's nerf_* head after it) loads as nodes/generate/
chroma_radiance_model.py's.

The transformer goes through diffusers' own converter, its single blocks split at the file's width as FLUX.1's are
(converters/flux.py)."""
from __future__ import annotations

import math
from collections.abc import Mapping

from nodes.generate.converters import Built, count, model_config, register
from nodes.generate.converters.flux import rope_axes, transformer_to_diffusers

FAMILY = "chroma"


def transformer_config(state: Mapping) -> dict:
    cfg = model_config(FAMILY, "transformer")
    w = state["x_embedder.weight"]
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    approx = state["distilled_guidance_layer.in_proj.weight"]
    cfg.update(in_channels=int(w.shape[1]), out_channels=int(state["proj_out.weight"].shape[0]),
               num_attention_heads=int(w.shape[0]) // head, attention_head_dim=head,
               num_layers=count(state, "transformer_blocks.{}."),
               num_single_layers=count(state, "single_transformer_blocks.{}."),
               joint_attention_dim=int(state["context_embedder.weight"].shape[1]),
               approximator_num_channels=int(approx.shape[1]), approximator_hidden_dim=int(approx.shape[0]),
               approximator_layers=count(state, "distilled_guidance_layer.layers.{}."),
               axes_dims_rope=rope_axes(head, FAMILY))
    return cfg


@register("chroma", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import ChromaTransformer2DModel
    from diffusers.loaders.single_file_utils import convert_chroma_transformer_checkpoint_to_diffusers
    if "img_in_patch.weight" in state:
        return radiance(state)
    conv = transformer_to_diffusers(dict(state), convert_chroma_transformer_checkpoint_to_diffusers)
    cfg = transformer_config(conv)
    return Built(lambda: ChromaTransformer2DModel.from_config(cfg), conv, cfg)


HEAD = "nerf_"
X0 = "__x0__"          # ComfyUI's marker of the release predicting the clean picture (an empty tensor)


def radiance(state: Mapping) -> Built:
    """Chroma Radiance: its patch convolution (stride = kernel) is the linear map of each patch's pixels flattened
    channel first, which is diffusers' x_embedder over those patches; the transformer goes through diffusers'
    converter as Chroma's (handed an empty stand-in of the last layer Radiance has none of, whose piece is dropped);
    the head keeps ComfyUI's names. Every size comes from the tensors."""
    import torch
    from diffusers.loaders.single_file_utils import convert_chroma_transformer_checkpoint_to_diffusers
    from nodes.generate.chroma_radiance_model import ChromaRadianceTransformer
    patch = state["img_in_patch.weight"]
    width, channels, side = int(patch.shape[0]), int(patch.shape[1]), int(patch.shape[2])
    body = {k: v for k, v in state.items() if not k.startswith((HEAD, "img_in_patch.")) and k != X0}
    body.update({"img_in.weight": patch.reshape(width, -1), "img_in.bias": state["img_in_patch.bias"],
                 "final_layer.linear.weight": torch.empty(0, width), "final_layer.linear.bias": torch.empty(0)})
    conv = transformer_to_diffusers(body, convert_chroma_transformer_checkpoint_to_diffusers)
    backbone = transformer_config(conv)
    for k in ("in_channels", "out_channels", "patch_size"):
        backbone.pop(k, None)
    tensors = {"transformer." + k: v for k, v in conv.items() if not k.startswith("proj_out.")}
    tensors.update({k: v for k, v in state.items() if k.startswith(HEAD)})
    embed = state["nerf_image_embedder.embedder.0.weight"]
    nerf = int(embed.shape[0])
    cfg = dict(backbone=backbone, patch_size=side, in_channels=channels, nerf_hidden_size=nerf,
               nerf_mlp_ratio=int(state["nerf_blocks.0.param_generator.weight"].shape[0]) // (3 * nerf * nerf),
               nerf_depth=count(state, "nerf_blocks.{}."), nerf_max_freqs=math.isqrt(int(embed.shape[1]) - channels),
               nerf_head="conv" if "nerf_final_layer_conv.conv.weight" in state else "linear",
               predicts_x0=X0 in state)
    return Built(lambda: ChromaRadianceTransformer.from_config(cfg), tensors, cfg)
