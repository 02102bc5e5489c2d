"""Ideogram 4's transformers as ComfyUI users hold them (Comfy-Org/Ideogram-4's diffusion_models: ideogram4_* and
ideogram4_unconditional_*, fp8_scaled or int8_convrot, the shared loader dequantising them): ComfyUI's names
(comfy/ldm/ideogram4: layers.N.attention.qkv fused, attention.o) under model.diffusion_model. or bare, or an
Ideogram4Pipeline folder's file in diffusers' (attention.to_q / to_k / to_v, to_out.0). The sizes come from the
tensors, the rest from the released config; the rotary split over (time, row, column) is the release's 24/20/20 of a
256-wide head, in proportion."""
from __future__ import annotations

import re

from nodes.generate.converters import Built, count, model_config, register

RELEASED_HEAD = 256
RELEASED_SECTION = (24, 20, 20)


def diffusers_names(state) -> dict:
    """ComfyUI's names -> Ideogram4Transformer2DModel's: each block's fused qkv rows cut in three (queries, keys,
    values, as ComfyUI's view(..., 3, heads, head) reads them), its output projection to_out.0."""
    out = {}
    for k, v in state.items():
        m = re.match(r"(layers\.\d+\.attention)\.(qkv|o)\.weight$", k)
        if m is None:
            out[k] = v
        elif m.group(2) == "o":
            out[f"{m.group(1)}.to_out.0.weight"] = v
        else:
            for name, part in zip(("to_q", "to_k", "to_v"), v.chunk(3, dim=0)):
                out[f"{m.group(1)}.{name}.weight"] = part
    return out


def transformer_config(state) -> dict:
    cfg = model_config("ideogram4", "transformer")
    head = int(state["layers.0.attention.norm_q.weight"].shape[0])
    hidden = int(state["input_proj.weight"].shape[0])
    cfg.update(in_channels=int(state["input_proj.weight"].shape[1]), num_layers=count(state, "layers.{}."),
               attention_head_dim=head, num_attention_heads=hidden // head,
               intermediate_size=int(state["layers.0.feed_forward.w1.weight"].shape[0]),
               adaln_dim=int(state["adaln_proj.weight"].shape[0]),
               llm_features_dim=int(state["llm_cond_proj.weight"].shape[1]),
               mrope_section=[s * head // RELEASED_HEAD for s in RELEASED_SECTION])
    return cfg


@register("ideogram4", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import Ideogram4Transformer2DModel
    conv = diffusers_names(state)
    cfg = transformer_config(conv)
    return Built(lambda: Ideogram4Transformer2DModel.from_config(cfg), conv, cfg)
