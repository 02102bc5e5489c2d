"""Ovis-Image single files as ComfyUI users hold them (Comfy-Org/Ovis-Image's split_files):
  diffusion_models/ovis_image_bf16.safetensors: FLUX.1's blocks in Black Forest Labs' names, as ComfyUI runs them as its
      Flux model (comfy/ldm/flux, yak_mlp and txt_norm), without vector_in and guidance_in: the double blocks' feed-forwards
      gated (img_mlp / txt_mlp.gate_proj, up_proj, down_proj), the single blocks' linear1 holding the gated MLP's two
      halves (values, then gates) after q, k, v, and txt_norm (an RMSNorm) on the text's states; or an
      OvisImagePipeline folder's transformer file in diffusers' names
  text_encoders/ovis_2.5.safetensors: Ovis 2.5's language model, a Qwen3 (model.layers.*), through the converter FLUX.2
      [klein]'s Qwen3 uses (converters/flux2.py)
  vae/ae.safetensors: FLUX.1's VAE (converters/flux.py)"""
from __future__ import annotations

import re

from nodes.generate.converters import Built, count, model_config, register
from nodes.generate.converters.flux import rope_axes, unpooled_to_diffusers

FAMILY = "ovis"
GATED = re.compile(r"^double_blocks\.(\d+)\.(img|txt)_mlp\.(gate_proj|up_proj|down_proj)\.(weight|bias)$")


def ungated(state) -> dict:
    """The gated feed-forwards as FLUX.1's two layers (img_mlp.0, img_mlp.2), which diffusers' converter names:
    diffusers' SwiGLU projects to (values, gates) in one matrix, so up_proj's rows come first, gate_proj's after."""
    import torch
    out = {k: v for k, v in state.items() if not GATED.match(k)}
    for k in state:
        m = GATED.match(k)
        if m and m.group(3) == "up_proj":
            n, side, _, kind = m.groups()
            base = f"double_blocks.{n}.{side}_mlp"
            out[f"{base}.0.{kind}"] = torch.cat([state[k], state[f"{base}.gate_proj.{kind}"]])
            out[f"{base}.2.{kind}"] = state[f"{base}.down_proj.{kind}"]
    return out


def transformer_config(state) -> dict:
    cfg = model_config(FAMILY, "transformer")
    x = state["x_embedder.weight"]
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    cfg.update(in_channels=int(x.shape[1]), out_channels=int(state["proj_out.weight"].shape[0]),
               num_attention_heads=int(x.shape[0]) // head, attention_head_dim=head,
               num_layers=count(state, "transformer_blocks.{}."),
               num_single_layers=count(state, "single_transformer_blocks.{}."),
               joint_attention_dim=int(state["context_embedder.weight"].shape[1]), axes_dims_rope=rope_axes(head, FAMILY))
    return cfg


@register("ovis", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import OvisImageTransformer2DModel
    if "x_embedder.weight" in state:
        conv = dict(state)
    else:
        state = ungated(state)
        norm = state.pop("txt_norm.scale")
        conv = unpooled_to_diffusers(state, {"time_text_embed.timestep_embedder.": "timestep_embedder."})
        conv["context_embedder_norm.weight"] = norm
    cfg = transformer_config(conv)
    return Built(lambda: OvisImageTransformer2DModel.from_config(cfg), conv, cfg)
