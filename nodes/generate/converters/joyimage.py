"""JoyImage Edit's transformer as ComfyUI users hold it (Comfy-Org/JoyAI-Image-Edit's diffusion_models/
joyai_image_edit_*.safetensors, bf16 or int8_convrot, dequantised by the shared loader): ComfyUI's names
(comfy/ldm/joyimage/model.py) are diffusers' JoyImageEditTransformer3DModel's, under model.diffusion_model. or bare,
so the tensors load as they are. Every size comes from the tensors; the rotary split is the release's shape."""
from __future__ import annotations

import math

from graph_engine import NodeError
from nodes.generate.converters import Built, count, register


def rope_axes(head: int) -> list:
    """The (t, h, w) rotary split of a head: an eighth for time, the rest halved between the sides ([16, 56, 56] of
    the released 128)."""
    t = head // 8
    side = (head - t) // 2
    if t % 2 or side % 2:
        raise NodeError(f"this JoyImage transformer's heads are {head} wide, which do not split into JoyImage's three "
                        "rotary axes of even widths (the release's 128 = 16 + 56 + 56): the file is damaged or not "
                        "JoyImage Edit's")
    return [head - 2 * side, side, side]


def transformer_config(state) -> dict:
    qkv = state["double_blocks.0.attn.img_attn_qkv.weight"]
    hidden = int(qkv.shape[1])
    head = int(state["double_blocks.0.attn.img_attn_q_norm.weight"].shape[0])
    patch = [int(s) for s in state["img_in.weight"].shape[2:]]
    return dict(patch_size=patch, in_channels=int(state["img_in.weight"].shape[1]),
                out_channels=int(state["proj_out.weight"].shape[0]) // math.prod(patch), hidden_size=hidden,
                num_attention_heads=hidden // head,
                text_dim=int(state["condition_embedder.text_embedder.linear_1.weight"].shape[1]),
                mlp_width_ratio=int(state["double_blocks.0.img_mlp.net.0.proj.weight"].shape[0]) / hidden,
                num_layers=count(state, "double_blocks.{}."), rope_dim_list=rope_axes(head), rope_type="rope",
                theta=256)


@register("joyimage", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import JoyImageEditTransformer3DModel
    cfg = transformer_config(state)
    return Built(lambda: JoyImageEditTransformer3DModel.from_config(cfg), dict(state), cfg)
