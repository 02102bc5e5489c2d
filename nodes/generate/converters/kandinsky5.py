"""Kandinsky 5 transformers as ComfyUI users hold them (diffusion_models/kandinsky5lite_t2v_sft_5s.safetensors,
kandinsky5lite_i2v_5s ..., and the image model's kandinsky5lite_t2i.safetensors): kandinskylab's own names, which diffusers' Kandinsky5Transformer3DModel keeps one to one,
so the tensors load as they are; widths, depths and the start-frame channels are read from their shapes."""
from __future__ import annotations

from collections.abc import Mapping

from nodes.generate.converters import Built, count, register

FAMILY = "kandinsky5"


def axes_dims(head_dim: int) -> list:
    """The rotary split of a head over (time, height, width): the released (16, 24, 24) of 64, a quarter for time."""
    t = head_dim // 4
    return [t, (head_dim - t) // 2, (head_dim - t) // 2]


def transformer_config(state: Mapping) -> dict:
    patch = (1, 2, 2)
    area = patch[0] * patch[1] * patch[2]
    out = int(state["out_layer.out_layer.weight"].shape[0]) // area
    visual = int(state["visual_embeddings.in_layer.weight"].shape[1]) // area
    head_dim = int(state["visual_transformer_blocks.0.self_attention.query_norm.weight"].shape[0])
    return dict(in_visual_dim=out, out_visual_dim=out, visual_cond=visual == 2 * out + 1, patch_size=patch,
                in_text_dim=int(state["text_embeddings.in_layer.weight"].shape[1]),
                in_text_dim2=int(state["pooled_text_embeddings.in_layer.weight"].shape[1]),
                time_dim=int(state["time_embeddings.out_layer.weight"].shape[0]),
                model_dim=int(state["text_embeddings.in_layer.weight"].shape[0]),
                ff_dim=int(state["visual_transformer_blocks.0.feed_forward.in_layer.weight"].shape[0]),
                num_text_blocks=count(state, "text_transformer_blocks.{}."),
                num_visual_blocks=count(state, "visual_transformer_blocks.{}."), axes_dims=axes_dims(head_dim))


@register(FAMILY, "diffusion_model")
@register("kandinsky5image", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import Kandinsky5Transformer3DModel
    cfg = transformer_config(state)
    return Built(lambda: Kandinsky5Transformer3DModel.from_config(cfg), dict(state), cfg)
