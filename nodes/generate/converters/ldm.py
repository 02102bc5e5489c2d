"""LDM (Stability's original) block names -> diffusers', shared by the families that ship LDM-style
files: the autoencoder (encoder.down.N.block.M...) in SVD and in ComfyUI's HunyuanVideo VAE, and the
UNet (input_blocks.K.I...) in SVD. diffusers' own LDM converters assume a 2-D image UNet/VAE with a
config in hand; these work from the names and the tensor shapes alone, for 2-D and 3-D layers."""
from __future__ import annotations

import re
from collections.abc import Mapping

from nodes.generate.converters import count

_VAE_RULES = [
    (r"^(encoder|decoder)\.mid\.block_1\.", r"\1.mid_block.resnets.0."),
    (r"^(encoder|decoder)\.mid\.block_2\.", r"\1.mid_block.resnets.1."),
    (r"^(encoder|decoder)\.mid\.attn_1\.norm\.", r"\1.mid_block.attentions.0.group_norm."),
    (r"^(encoder|decoder)\.mid\.attn_1\.(q|k|v)\.", r"\1.mid_block.attentions.0.to_\2."),
    (r"^(encoder|decoder)\.mid\.attn_1\.proj_out\.", r"\1.mid_block.attentions.0.to_out.0."),
    (r"^encoder\.down\.(\d+)\.block\.(\d+)\.", r"encoder.down_blocks.\1.resnets.\2."),
    (r"^encoder\.down\.(\d+)\.downsample\.", r"encoder.down_blocks.\1.downsamplers.0."),
    (r"^(encoder|decoder)\.norm_out\.", r"\1.conv_norm_out."),
]


def vae_to_diffusers(state: Mapping) -> dict:
    """LDM autoencoder names -> diffusers' (the decoder's levels renumbered from the input end)."""
    levels = count(state, "decoder.up.{}.")
    out = {}
    for k, v in state.items():
        m = re.match(r"^decoder\.up\.(\d+)\.(block|upsample)\.(?:(\d+)\.)?(.*)$", k)
        if m:
            i, kind, j, rest = m.groups()
            i = levels - 1 - int(i)             # LDM numbers the decoder's levels from the output end
            k = f"decoder.up_blocks.{i}.resnets.{j}.{rest}" if kind == "block" else \
                f"decoder.up_blocks.{i}.upsamplers.0.{rest}"
        else:
            for pat, rep in _VAE_RULES:
                k, n = re.subn(pat, rep, k)
                if n:
                    break
        k = k.replace(".nin_shortcut.", ".conv_shortcut.")
        if ".attentions.0.to_" in k and k.endswith(".weight") and v.ndim > 2:
            v = v.reshape(v.shape[0], v.shape[1])   # 1x1(x1) convolutions there, linear layers here
        out[k] = v
    return out


_RESNET = [("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
           ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut.")]


def resnet_names(rest: str) -> str:
    """Inside an LDM ResBlock -> diffusers' ResnetBlock names (`rest` is the part after the block)."""
    for old, new in _RESNET:
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest


def unet_to_diffusers(state: Mapping, resnet, attention) -> dict:
    """LDM UNet names (input_blocks / middle_block / output_blocks) -> diffusers' block names.

    `resnet(rest)` and `attention(rest)` rename what is inside a residual block or a transformer
    (they differ between UNet kinds); the block structure is read from the keys: a level has
    `layers` resnets (+1 on the way up) and, except the last, a down/upsampler."""
    ins = count(state, "input_blocks.{}.")
    levels = count(state, "input_blocks.{}.0.op.") + 1
    layers = (ins - 1 - (levels - 1)) // levels
    return {unet_name(k, layers, resnet, attention): v for k, v in state.items()}


_TOP = {"time_embed.0.": "time_embedding.linear_1.", "time_embed.2.": "time_embedding.linear_2.",
        "label_emb.0.0.": "add_embedding.linear_1.", "label_emb.0.2.": "add_embedding.linear_2.",
        "input_blocks.0.0.": "conv_in.", "out.0.": "conv_norm_out.", "out.2.": "conv_out."}


def unet_name(k: str, layers: int, resnet, attention) -> str:
    """One LDM UNet name -> diffusers', for a UNet of `layers` resnets a level (see unet_to_diffusers)."""
    new = next((n + k[len(o):] for o, n in _TOP.items() if k.startswith(o)), None)
    if new is not None:
        return new
    m = re.match(r"^(input_blocks|output_blocks|middle_block)\.(\d+)\.(?:(\d+)\.)?(.*)$", k)
    if m is None:
        return k
    where, a, b, rest = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    return _unet_block(where, a, int(b) if b is not None else None, rest, layers, resnet, attention)


def _unet_block(where, a, b, rest, layers, resnet, attention) -> str:
    if where == "middle_block":
        return f"mid_block.resnets.{a // 2}.{resnet(rest)}" if a in (0, 2) else \
            f"mid_block.attentions.0.{attention(rest)}"
    if where == "input_blocks":
        level, j = divmod(a - 1, layers + 1)
        base = f"down_blocks.{level}"
        if j == layers:                             # the level's downsampler: input_blocks.K.0.op
            return f"{base}.downsamplers.0.conv.{rest[len('op.'):]}"
        return f"{base}.resnets.{j}.{resnet(rest)}" if b == 0 else f"{base}.attentions.{j}.{attention(rest)}"
    level, j = divmod(a, layers + 1)
    base = f"up_blocks.{level}"
    if b == 0:
        return f"{base}.resnets.{j}.{resnet(rest)}"
    if rest.startswith("conv."):                    # the level's upsampler (after its attention, if any)
        return f"{base}.upsamplers.0.{rest}"
    return f"{base}.attentions.{j}.{attention(rest)}"
