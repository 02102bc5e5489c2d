"""LongCat-Image single files as ComfyUI users hold them (Comfy-Org/LongCat-Image's split_files):
  diffusion_models/longcat_image_bf16.safetensors, longcat_image_edit_bf16.safetensors: FLUX.1's blocks in Black Forest
      Labs' names (ComfyUI runs them as its Flux model, comfy/ldm/flux) without vector_in and guidance_in; or a
      LongCatImagePipeline folder's transformer file in diffusers' names
  text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors: Qwen-Image's Qwen2.5-VL (converters/qwenimage.py)
  vae/ae.safetensors: FLUX.1's VAE (converters/flux.py)"""
from __future__ import annotations

from nodes.generate.converters import Built, count, model_config, register
from nodes.generate.converters.flux import rope_axes, unpooled_to_diffusers

FAMILY = "longcat"


def transformer_config(state) -> dict:
    cfg = model_config(FAMILY, "transformer")
    x = state["x_embedder.weight"]
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    text = int(state["context_embedder.weight"].shape[1])
    cfg.update(in_channels=int(x.shape[1]), num_attention_heads=int(x.shape[0]) // head, attention_head_dim=head,
               num_layers=count(state, "transformer_blocks.{}."),
               num_single_layers=count(state, "single_transformer_blocks.{}."), joint_attention_dim=text,
               pooled_projection_dim=text, axes_dims_rope=rope_axes(head, FAMILY))
    return cfg


@register("longcat", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import LongCatImageTransformer2DModel
    conv = dict(state) if "x_embedder.weight" in state else \
        unpooled_to_diffusers(state, {"time_text_embed.timestep_embedder.": "time_embed.timestep_embedder."})
    cfg = transformer_config(conv)
    return Built(lambda: LongCatImageTransformer2DModel.from_config(cfg), conv, cfg)
