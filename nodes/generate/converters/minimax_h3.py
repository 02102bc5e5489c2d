"""MiniMax H3's transformer as ComfyUI users hold it (Comfy-Org/MiniMax-H3: diffusion_models/minimax_h3_fl2va_bf16 and
its quantised copies): MiniMax's own names (video_patch_proj, blocks.N.attn.qkv_proj in [q; k; v] rows, mlp.fc1 as
[gate; value], final_layer.video_out), through diffusers' own single-file converter; a MiniMaxH3Transformer3DModel
file in diffusers' names loads as it is. The pruned release (adaln_t_table instead of a time embedder) is refused
by detection.

Its video VAE (vae/minimax_h3_video_vae_*: a causal 3-D CNN encoder, a ViT decoder) in ComfyUI's names, rewritten here
into AutoencoderKLMiniMaxH3's (diffusers has no single-file converter for it), or in diffusers' own."""
from __future__ import annotations

import math

import torch

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


# ComfyUI's MiniMaxH3VideoVAE names -> AutoencoderKLMiniMaxH3's (comfy/ldm/minimax/vae.py against diffusers' module)
VAE_RENAMES = (("encoder.down.", "encoder.down_blocks."), (".block.", ".resnets."), (".nin_shortcut.", ".conv_shortcut."),
               (".downsample.conv.", ".downsamplers.0.conv."), ("decoder.x_embedder.", "decoder.proj_in."),
               (".attn.to_out.", ".attn.to_out.0."), (".ff.w2.", ".ff.net.2."))
# The released decoder's head width: its attention norms carry no weights, so no tensor states it.
VAE_HEAD = 64


def vae_from_comfy(state) -> dict:
    """ComfyUI's video VAE tensors in diffusers' names. Its decoder's to_qkv holds each head's q, k and v rows together
    ([head 0: q k v, head 1: ...], as it views them per head), diffusers' three projections all heads' each; its
    feed-forward w1 is [gate; value], diffusers' SwiGLU [value; gate]. mask_token (unused by either) is dropped."""
    out = {}
    for k, v in state.items():
        if k == "decoder.mask_token":
            continue
        if ".attn.to_qkv." in k:
            heads = v.shape[0] // (3 * VAE_HEAD)
            q, kk, vv = v.reshape(heads, 3, VAE_HEAD, *v.shape[1:]).unbind(1)
            for name, part in (("to_q", q), ("to_k", kk), ("to_v", vv)):
                out[k.replace("to_qkv", name)] = part.reshape(heads * VAE_HEAD, *v.shape[1:])
            continue
        if ".ff.w1." in k:
            gate, value = v.chunk(2)
            k, v = k.replace(".ff.w1.", ".ff.net.0.proj."), torch.cat([value, gate])
        for a, b in VAE_RENAMES:
            k = k.replace(a, b)
        out[k] = v
    return out


@register("minimax_h3", "vae")
def vae(state, det) -> Built:
    """MiniMax H3's video VAE (ComfyUI's minimax_h3_video_vae_*, or diffusers' AutoencoderKLMiniMaxH3 names): widths,
    depths and the latent statistics from the file; the down-sampling strides (their convolutions have the same
    shapes either way) and the decoder's head width are the released model's."""
    from diffusers import AutoencoderKLMiniMaxH3
    conv = vae_from_comfy(state) if "decoder.x_embedder.weight" in state else dict(state)
    mean, std = conv.pop("latents_mean", None), conv.pop("latents_std", None)
    levels = count(conv, "encoder.down_blocks.{}.")
    inner = int(conv["decoder.proj_in.weight"].shape[0])
    cfg = dict(latent_channels=int(conv["post_quant_conv.weight"].shape[0]),
               block_out_channels=[int(conv[f"encoder.down_blocks.{i}.resnets.0.conv1.weight"].shape[0])
                                   for i in range(levels)],
               layers_per_block=count(conv, "encoder.down_blocks.0.resnets.{}."),
               decoder_num_layers=count(conv, "decoder.transformer_blocks.{}."),
               decoder_num_attention_heads=inner // VAE_HEAD, decoder_attention_head_dim=VAE_HEAD,
               decoder_num_register_tokens=int(conv["decoder.register_tokens"].shape[1]),
               decoder_ffn_mult=int(conv["decoder.transformer_blocks.0.ff.net.2.weight"].shape[1]) // inner)
    if mean is not None and std is not None:
        cfg.update(latents_mean=[float(x) for x in mean], latents_std=[float(x) for x in std])
    return Built(lambda: AutoencoderKLMiniMaxH3.from_config(cfg), conv, cfg)
