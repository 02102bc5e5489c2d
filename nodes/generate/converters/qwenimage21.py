"""Qwen-Image 2.1's transformer as ComfyUI users hold it (diffusion_models/qwen_image_2.1_bf16.safetensors, a
fine-tune's file): diffusers' names under model.diffusion_model., each block's SwiGLU gate and up projections fused
into one img_mlp.gate_up (gate rows first). diffusers' own single-file converter splits them; the sizes come from the
tensors, the rest from the released config."""
from __future__ import annotations

from nodes.generate.converters import Built, count, model_config, register

FAMILY = "qwenimage21"


@register("qwenimage21", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import QwenImage21Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_qwen_image21_transformer_checkpoint_to_diffusers
    from nodes.generate.converters.flux import rope_axes
    state = convert_qwen_image21_transformer_checkpoint_to_diffusers(dict(state))
    cfg = model_config(FAMILY, "transformer")
    w = state["img_in.weight"]
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    inner = int(w.shape[0])
    cfg.update(in_channels=int(w.shape[1]), num_attention_heads=inner // head, attention_head_dim=head,
               out_channels=int(state["proj_out.weight"].shape[0]), num_layers=count(state, "transformer_blocks.{}."),
               context_in_dim=int(state["txt_in.in_layer.weight"].shape[1]),
               mlp_ratio=int(state["transformer_blocks.0.img_mlp.gate_layer.weight"].shape[0]) // inner,
               axes_dims_rope=rope_axes(head, FAMILY))
    return Built(lambda: QwenImage21Transformer2DModel.from_config(cfg), state, cfg)
