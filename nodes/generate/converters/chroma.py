"""Chroma single files as ComfyUI users hold them: diffusion_models/Chroma1-HD.safetensors, chroma-unlocked-v*.safetensors
(FLUX.1's Black Forest Labs names without the blocks' own modulations, plus distilled_guidance_layer; fp8_scaled or
GGUF through weights.load_weights). Its T5-XXL (text_encoders/t5xxl_*.safetensors) and FLUX.1's ae.safetensors load
through their own converters (text.py, flux.py).

The transformer goes through diffusers' own converter, its single blocks split at the file's width as FLUX.1's are
(converters/flux.py)."""
from __future__ import annotations

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
    conv = transformer_to_diffusers(dict(state), convert_chroma_transformer_checkpoint_to_diffusers)
    cfg = transformer_config(conv)
    return Built(lambda: ChromaTransformer2DModel.from_config(cfg), conv, cfg)
