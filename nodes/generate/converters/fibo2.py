"""Bria's FIBO 2 transformer as ComfyUI users hold it (Comfy-Org/Fibo-2.0's diffusion_models/fibo2_dev_* and
fibo2_edit_turbo_*, bf16 or int8_convrot, dequantised by the shared loader). ComfyUI's own model code was not at hand:
the names read are diffusers' BriaFibo2Transformer2DModel's, bare or under model.diffusion_model., so the tensors load
as they are. Widths, depths, the injection blocks and the gist queries come from the tensors; the gist schedule, the
rotary base and the 2x2 patches are the release's (the class's defaults)."""
from __future__ import annotations

import re

from graph_engine import NodeError
from nodes.generate.converters import Built, count, register

PATCH = 2       # the release's 2x2 latent patches: x_embedder reads patch^2 x channels, which its shape cannot split


def rope_axes(head: int) -> list:
    """The (plane, row, column) rotary split of a head: a quarter for the plane, the rest halved between the sides
    ([32, 48, 48] of the released 128)."""
    plane = head // 4
    side = (head - plane) // 2
    if plane % 2 or side % 2 or plane + 2 * side != head:
        raise NodeError(f"this FIBO 2 transformer's heads are {head} wide, which do not split into its three rotary "
                        "axes of even widths (the release's 128 = 32 + 48 + 48): the file is damaged or not FIBO 2's")
    return [plane, side, side]


def transformer_config(state) -> dict:
    dim, patched = (int(s) for s in state["x_embedder.weight"].shape)
    head = int(state["layers.0.attention.norm_q.weight"].shape[0])
    injection = sorted({int(m.group(1)) for k in state for m in [re.match(r"layers\.(\d+)\.cross_attention\.", k)]
                        if m})
    return dict(in_channels=patched // PATCH ** 2, patch_size=PATCH, dim=dim, n_layers=count(state, "layers.{}."),
                n_refiner_layers=count(state, "noise_refiner.{}."), n_heads=dim // head,
                cap_feat_dim=int(state["perceiver.layers.0.cross_attention.to_k.weight"].shape[1]),
                injection_layer_ids=tuple(injection), perceiver_num_layers=count(state, "perceiver.layers.{}."),
                max_num_gist_tokens=int(state["perceiver.latent_queries"].shape[0]), axes_dims=tuple(rope_axes(head)))


@register("fibo2", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import BriaFibo2Transformer2DModel
    cfg = transformer_config(state)
    return Built(lambda: BriaFibo2Transformer2DModel.from_config(cfg), dict(state), cfg)
