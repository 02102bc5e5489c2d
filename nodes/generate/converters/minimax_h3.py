"""MiniMax H3's transformer as ComfyUI users hold it (Comfy-Org/MiniMax-H3: diffusion_models/minimax_h3_fl2va_bf16 and
its quantised copies): MiniMax's own names (video_patch_proj, blocks.N.attn.qkv_proj in [q; k; v] rows, mlp.fc1 as
[gate; value], final_layer.video_out), through diffusers' own single-file converter; a MiniMaxH3Transformer3DModel
file in diffusers' names loads as it is. The pruned release ComfyUI's templates load (minimax_h3_fl2va_pruned_*) has
no time embedder: its modulation reads a table of the time embedding's curve (adaln_t_table, interpolated at t) with
no SiLU before the projections (comfy/ldm/minimax/model.py's curve form), which diffusers' module does not have; it is
built here as diffusers' module with that table in place of the time embedder and those projections without SiLU.

Its video VAE (vae/minimax_h3_video_vae_*: a causal 3-D CNN encoder, a ViT decoder) in ComfyUI's names, rewritten here
into AutoencoderKLMiniMaxH3's (diffusers has no single-file converter for it), or in diffusers' own."""
from __future__ import annotations

import math

import torch

from nodes.generate.converters import Built, count, model_config, register


def transformer_config(state, table=None) -> dict:
    """MiniMaxH3Transformer3DModel's settings from its (diffusers-named) tensors; the pruned release's from its curve
    table (`table`) in place of a time embedder."""
    cfg = model_config("minimax_h3", "transformer")
    x = state["proj_in.weight"]
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    patch = math.prod(cfg["patch_size"])
    if table is None:
        t1, t2 = state["time_embedder.linear_1.weight"], state["time_embedder.linear_2.weight"]
        cfg.update(freq_dim=int(t1.shape[1]), time_embed_hidden_dim=int(t1.shape[0]), time_embed_dim=int(t2.shape[0]))
    else:
        cfg.update(time_embed_dim=int(table.shape[1]))
    cfg.update(hidden_size=int(x.shape[0]), in_channels=int(x.shape[1]) // patch,
               audio_in_channels=int(state["audio_proj_in.weight"].shape[1]),
               text_dim=int(state["context_embedder.weight"].shape[1]),
               attention_head_dim=head, num_attention_heads=int(state["transformer_blocks.0.attn.to_q.weight"].shape[0]) // head,
               ffn_dim=int(state["transformer_blocks.0.ff.net.2.weight"].shape[1]),
               num_layers=count(state, "transformer_blocks.{}."), num_refiner_layers=count(state, "token_refiner.refiner_blocks.{}."))
    return cfg


class CurveTable(torch.nn.Module):
    """The pruned release's time embedding: row t * (rows - 1) of adaln_t_table, linearly interpolated (t clamped to
    [0, 1], the last interval holding t = 1)."""
    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, t):
        pos = t.float().clamp(0.0, 1.0) * (self.table.shape[0] - 1)
        i0 = pos.floor().long().clamp(max=self.table.shape[0] - 2)
        return torch.lerp(self.table[i0], self.table[i0 + 1], (pos - i0).unsqueeze(1).to(self.table.dtype))


def _curve_form(model, table):
    """diffusers' transformer as the pruned release computes: the time embedder is the curve table (told t itself,
    no sinusoids), and the block and output modulations project it without SiLU."""
    from diffusers.models.transformers.transformer_minimax_h3 import (MiniMaxH3AdaLayerNormModulation,
                                                                      MiniMaxH3AdaLayerNormOut)

    class Modulation(MiniMaxH3AdaLayerNormModulation):
        def forward(self, temb):
            return self.linear(temb.to(self.linear.weight.dtype)).view(-1, 6 * self.hidden_size).chunk(6, dim=-1)

    class NormOut(MiniMaxH3AdaLayerNormOut):
        def forward(self, hidden_states, temb, timestep_indices):
            shift, scale = self.linear(temb.to(self.linear.weight.dtype)).chunk(2, dim=-1)
            return self.norm(hidden_states) * (1.0 + scale.index_select(0, timestep_indices)) + \
                shift.index_select(0, timestep_indices)

    model.time_proj, model.time_embedder = torch.nn.Identity(), CurveTable(table)
    for block in model.transformer_blocks:
        block.adaln_proj.__class__ = Modulation
    model.norm_out.__class__ = NormOut
    return model


@register("minimax_h3", "diffusion_model")
def transformer(state, det) -> Built:
    """MiniMax's / ComfyUI's names (blocks.N.attn.qkv_proj ...) or diffusers' (proj_in, transformer_blocks.N ...),
    FastVideo's FastH3 too.
    The rotary frequencies are the file's rope.inv_freq where it has them (ComfyUI reads that buffer; diffusers'
    converter drops it and its module recomputes it from a base the file does not state)."""
    from diffusers import MiniMaxH3Transformer3DModel
    from diffusers.loaders.single_file_utils import convert_minimax_h3_transformer_checkpoint_to_diffusers
    inv = state.get("rope.inv_freq")
    # FastVideo's FastH3 adds VSA's coarse-attention gate to each block: only ComfyUI's sparse kernel
    # (BlockSparseAttention) reads it; its model attends densely without it, as this one does
    state = {k: v for k, v in state.items() if ".attn.to_gate_compress." not in k}
    table = state.pop("adaln_t_table", None)
    conv = state if "proj_in.weight" in state else \
        convert_minimax_h3_transformer_checkpoint_to_diffusers(state, config={})
    conv.pop("rope.inv_freq", None)
    cfg = transformer_config(conv, table)
    if inv is not None:
        cfg["rope_freq_dim"] = int(inv.shape[0])
    if table is not None:
        conv["time_embedder.table"] = table

    def make():
        model = MiniMaxH3Transformer3DModel.from_config(cfg)
        if inv is not None:
            model.rope.inv_freq = inv.float().clone()
        return model if table is None else _curve_form(model, torch.empty_like(table, device="meta"))
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
    shapes either way) and the decoder's head width are the released model's. Its audio VAE: audio_vae."""
    if det.variant == "audio":
        return audio_vae(state)
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


# comfy/ldm/minimax/audio_vae.py fixes these (the released 32 kHz BigVGAN decoder): its file holds no trace of the
# upsampling rates, only the kernels' widths, which several rates would fit
AUDIO_DECODER = dict(decoder_rates=(5, 5, 2, 2, 2, 2, 2), decoder_kernel_sizes=(9, 9, 4, 4, 4, 4, 4),
                     resblock_kernel_sizes=(3, 7, 11), resblock_dilation_sizes=((1, 3, 5),) * 3, num_attention_heads=8,
                     sampling_rate=32000)


def audio_vae(state) -> Built:
    """MiniMax H3's stereo audio VAE (ComfyUI's minimax_h3_audio_vae_*: AutoencoderKLMiniMaxH3Audio's names with its
    weight norms folded into plain weights): widths and encoder strides (each stride convolution is twice as wide)
    from the file; the module is built with its weight norms removed, so the file's weights are its own. The
    anti-aliasing filters are computed (the module's formula), not read: ComfyUI's module computes its own too."""
    from diffusers import AutoencoderKLMiniMaxH3Audio
    from diffusers.models.autoencoders.autoencoder_kl_minimax_h3_audio import kaiser_sinc_filter1d
    conv = {k: v for k, v in state.items() if not k.endswith(".filter") and not k.startswith("latents_")}
    folded = "decoder.conv_pre.weight_v" not in conv       # diffusers' own files keep the weight norms

    def width(name):
        return conv[f"{name}.weight" if folded else f"{name}.weight_v"].shape
    levels = count(conv, "encoder.block.{}.") - 3           # the first convolution, the last snake and convolution
    cfg = dict(AUDIO_DECODER, encoder_dim=int(width("encoder.block.0")[0]),
               encoder_rates=tuple(int(width(f"encoder.block.{i}.block.4")[-1]) // 2 for i in range(1, levels + 1)),
               latent_dim=int(conv["dec_in_proj.weight"].shape[0]), latent_channels=int(conv["mean_proj.weight"].shape[0]),
               decoder_dim=int(width("decoder.conv_pre")[0]))
    if "latents_mean" in state and "latents_std" in state:
        cfg.update(latents_mean=[float(x) for x in state["latents_mean"]],
                   latents_std=[float(x) for x in state["latents_std"]])
    # every alias-free activation resamples by 2 through 12 taps: the same filter, from the module's own formula
    taps = kaiser_sinc_filter1d(cutoff=0.25, half_width=0.3, kernel_size=12)
    acts = [f"decoder.resblocks.{r}.activations.{a}." for r in range(count(conv, "decoder.resblocks.{}."))
            for a in range(2 * len(AUDIO_DECODER["resblock_dilation_sizes"][0]))] + ["decoder.activation_post."]
    conv.update({a + f: taps.clone() for a in acts for f in ("upsample.filter", "downsample.lowpass.filter")})

    def make():
        model = AutoencoderKLMiniMaxH3Audio.from_config(cfg)
        for module in model.modules() if folded else ():
            if hasattr(module, "weight_g"):
                torch.nn.utils.remove_weight_norm(module)
        return model
    return Built(make, conv, cfg)
