"""Krea 2's transformer as ComfyUI users hold it (Comfy-Org/Krea-2's diffusion_models/krea2_turbo_*.safetensors: bf16,
fp8_scaled or int8_convrot): Krea's own names (first, blocks.N.attn.wq / qknorm, mod.lin, txtfusion, txtmlp, tmlp,
tproj, last) under model.diffusion_model. or bare, through diffusers' own single-file converter; a Krea2Pipeline
folder's transformer file in diffusers' names loads as it is. The sizes come from the tensors, the rest from the
released config. Its text encoder is Qwen3-VL-4B (converters/qwenimage21.py's qwen3vl), its VAE Qwen-Image's."""
from __future__ import annotations

from nodes.generate.converters import Built, count, model_config, register


def rope_axes(head: int) -> list:
    """The (t, h, w) rotary split of a head as Krea 2 makes it: 6/16 of the head for each spatial axis, the rest
    for the first ([32, 48, 48] of the released 128)."""
    side = 6 * (head // 16)
    return [head - 2 * side, side, side]


def transformer_config(state) -> dict:
    cfg = model_config("krea2", "transformer")
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    hidden = int(state["img_in.weight"].shape[0])
    text_head = int(state["text_fusion.layerwise_blocks.0.attn.norm_q.weight"].shape[0])
    text = int(state["txt_in.norm.weight"].shape[0])
    cfg.update(in_channels=int(state["img_in.weight"].shape[1]), num_layers=count(state, "transformer_blocks.{}."),
               attention_head_dim=head, num_attention_heads=hidden // head,
               num_key_value_heads=int(state["transformer_blocks.0.attn.to_k.weight"].shape[0]) // head,
               intermediate_size=int(state["transformer_blocks.0.ff.gate.weight"].shape[0]),
               timestep_embed_dim=int(state["time_embed.linear_1.weight"].shape[1]), text_hidden_dim=text,
               num_text_layers=int(state["text_fusion.projector.weight"].shape[1]),
               text_num_attention_heads=text // text_head,
               text_num_key_value_heads=int(state["text_fusion.layerwise_blocks.0.attn.to_k.weight"].shape[0]) // text_head,
               text_intermediate_size=int(state["text_fusion.layerwise_blocks.0.ff.gate.weight"].shape[0]),
               num_layerwise_text_blocks=count(state, "text_fusion.layerwise_blocks.{}."),
               num_refiner_text_blocks=count(state, "text_fusion.refiner_blocks.{}."), axes_dims_rope=rope_axes(head))
    return cfg


@register("krea2", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import Krea2Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_krea2_transformer_checkpoint_to_diffusers
    conv = dict(state) if "text_fusion.projector.weight" in state else \
        convert_krea2_transformer_checkpoint_to_diffusers(dict(state))      # it empties the dict it is given
    cfg = transformer_config(conv)
    return Built(lambda: Krea2Transformer2DModel.from_config(cfg), conv, cfg)
