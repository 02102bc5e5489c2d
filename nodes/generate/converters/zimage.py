"""Z-Image single files as ComfyUI users hold them (Comfy-Org/z_image_turbo's split_files):
  diffusion_models/z_image_turbo_bf16.safetensors (z_image_bf16 for the base model): the NextDiT in ComfyUI's names
      (x_embedder, final_layer, fused attention.qkv, attention.out, q_norm / k_norm), through diffusers' own
      single-file converter; a ZImagePipeline folder's transformer file in diffusers' names loads as it is
  text_encoders/qwen_3_4b.safetensors: Qwen3-4B, the converter FLUX.2 [klein] reads it with (converters/flux2.py)
  vae/ae.safetensors: FLUX.1's VAE (converters/flux.py)"""
from __future__ import annotations

from nodes.generate.converters import Built, converted, count, model_config, register


def transformer_config(state) -> dict:
    """ZImageTransformer2DModel's settings from its (diffusers-named) tensors; the rotary split over (caption
    position, row, column) is the released model's 32/48/48 of each 128-wide head, in proportion."""
    cfg = model_config("zimage", "transformer")
    x = state["all_x_embedder.2-1.weight"]
    head = int(state["layers.0.attention.norm_q.weight"].shape[0])
    dim = int(x.shape[0])
    cfg.update(dim=dim, in_channels=int(x.shape[1]) // 4, n_layers=count(state, "layers.{}."),
               n_refiner_layers=count(state, "noise_refiner.{}."), n_heads=dim // head,
               n_kv_heads=int(state["layers.0.attention.to_k.weight"].shape[0]) // head,
               cap_feat_dim=int(state["cap_embedder.0.weight"].shape[0]),
               axes_dims=[head // 4, head * 3 // 8, head * 3 // 8])
    return cfg


@register("zimage", "diffusion_model")
def transformer(state, det) -> Built:
    """ComfyUI's names (fused attention.qkv ...) or a ZImagePipeline folder's (all_x_embedder.2-1 ...)."""
    from diffusers import ZImageTransformer2DModel
    from diffusers.loaders.single_file_utils import convert_z_image_transformer_checkpoint_to_diffusers
    return converted(state, "all_x_embedder.2-1.weight", convert_z_image_transformer_checkpoint_to_diffusers,
                     ZImageTransformer2DModel, transformer_config)
