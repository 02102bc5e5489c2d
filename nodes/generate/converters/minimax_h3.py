"""MiniMax H3's transformer as ComfyUI users hold it (Comfy-Org/MiniMax-H3: diffusion_models/minimax_h3_fl2va_bf16 and
its quantised copies): MiniMax's own names (video_patch_proj, blocks.N.attn.qkv_proj in [q; k; v] rows, mlp.fc1 as
[gate; value], final_layer.video_out), through diffusers' own single-file converter; a MiniMaxH3Transformer3DModel
file in diffusers' names loads as it is. The pruned release (adaln_t_table instead of a time embedder) is refused
by detection."""
from __future__ import annotations

import math

from nodes.generate.converters import Built, count, model_config, register


def transformer_config(state) -> dict:
    """MiniMaxH3Transformer3DModel's settings from its (diffusers-named) tensors; the rotary base is the file's own
    (ComfyUI reads rope.inv_freq from it, diffusers recomputes it from rope_theta)."""
    cfg = model_config("minimax_h3", "transformer")
    x = state["proj_in.weight"]
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    t1, t2 = state["time_embedder.linear_1.weight"], state["time_embedder.linear_2.weight"]
    patch = math.prod(cfg["patch_size"])
    cfg.update(hidden_size=int(x.shape[0]), in_channels=int(x.shape[1]) // patch,
               audio_in_channels=int(state["audio_proj_in.weight"].shape[1]),
               text_dim=int(state["context_embedder.weight"].shape[1]),
               attention_head_dim=head, num_attention_heads=int(state["transformer_blocks.0.attn.to_q.weight"].shape[0]) // head,
               ffn_dim=int(state["transformer_blocks.0.ff.net.2.weight"].shape[1]),
               num_layers=count(state, "transformer_blocks.{}."), num_refiner_layers=count(state, "token_refiner.refiner_blocks.{}."),
               freq_dim=int(t1.shape[1]), time_embed_hidden_dim=int(t1.shape[0]), time_embed_dim=int(t2.shape[0]))
    return cfg


@register("minimax_h3", "diffusion_model")
def transformer(state, det) -> Built:
    """MiniMax's / ComfyUI's names (blocks.N.attn.qkv_proj ...) or diffusers' (proj_in, transformer_blocks.N ...).
    The rotary frequencies are the file's rope.inv_freq where it has them (ComfyUI reads that buffer; diffusers'
    converter drops it and its module recomputes it from a base the file does not state)."""
    from diffusers import MiniMaxH3Transformer3DModel
    from diffusers.loaders.single_file_utils import convert_minimax_h3_transformer_checkpoint_to_diffusers
    inv = state.get("rope.inv_freq")
    conv = dict(state) if "proj_in.weight" in state else \
        convert_minimax_h3_transformer_checkpoint_to_diffusers(dict(state), config={})
    conv.pop("rope.inv_freq", None)
    cfg = transformer_config(conv)
    if inv is not None:
        cfg["rope_freq_dim"] = int(inv.shape[0])

    def make():
        model = MiniMaxH3Transformer3DModel.from_config(cfg)
        if inv is not None:
            model.rope.inv_freq = inv.float().clone()
        return model
    return Built(make, conv, cfg)
