"""LTX-Video single files (ComfyUI keeps `ltx-video-2b-v0.9.5.safetensors` in checkpoints/): the
transformer under `model.diffusion_model.` (or bare) and the VAE under `vae.`, in Lightricks'
original names. The transformer renames are diffusers' own converter. The VAE's are diffusers'
tables too, but written out here because diffusers picks the table by the real model's width
(2048 channels), which a version check by structure does not need."""
from __future__ import annotations

from collections.abc import Mapping

from nodes.generate.converters import Built, count, model_config, register

FAMILY = "ltx"
# Every released LTX-Video transformer has 32 heads; the width per head differs (2B: 64, 13B: 128), so the
# head width follows from the file's inner width, as ComfyUI reads it.
HEADS = 32

# Lightricks' flat up/down block lists -> diffusers' nested blocks, per VAE generation (diffusers'
# convert_ltx_vae_checkpoint_to_diffusers tables).
_COMMON = [("up_blocks.0", "mid_block"), ("up_blocks.1", "up_blocks.0"), ("up_blocks.2", "up_blocks.1.upsamplers.0"),
           ("up_blocks.3", "up_blocks.1"), ("up_blocks.4", "up_blocks.2.conv_in"),
           ("up_blocks.5", "up_blocks.2.upsamplers.0"), ("up_blocks.6", "up_blocks.2"),
           ("up_blocks.7", "up_blocks.3.conv_in"), ("up_blocks.8", "up_blocks.3.upsamplers.0"),
           ("up_blocks.9", "up_blocks.3"),
           ("down_blocks.0", "down_blocks.0"), ("down_blocks.1", "down_blocks.0.downsamplers.0"),
           ("down_blocks.2", "down_blocks.0.conv_out"), ("down_blocks.3", "down_blocks.1"),
           ("down_blocks.4", "down_blocks.1.downsamplers.0"), ("down_blocks.5", "down_blocks.1.conv_out"),
           ("down_blocks.6", "down_blocks.2"), ("down_blocks.7", "down_blocks.2.downsamplers.0"),
           ("down_blocks.8", "down_blocks.3"), ("down_blocks.9", "mid_block")]
_V091_DECODER = [("up_blocks.0", "mid_block"), ("up_blocks.1", "up_blocks.0.upsamplers.0"),
                 ("up_blocks.2", "up_blocks.0"), ("up_blocks.3", "up_blocks.1.upsamplers.0"),
                 ("up_blocks.4", "up_blocks.1"), ("up_blocks.5", "up_blocks.2.upsamplers.0"),
                 ("up_blocks.6", "up_blocks.2"), ("up_blocks.7", "up_blocks.3.upsamplers.0"),
                 ("up_blocks.8", "up_blocks.3")]
_V095_ENCODER = [("down_blocks.0", "down_blocks.0"), ("down_blocks.1", "down_blocks.0.downsamplers.0"),
                 ("down_blocks.2", "down_blocks.1"), ("down_blocks.3", "down_blocks.1.downsamplers.0"),
                 ("down_blocks.4", "down_blocks.2"), ("down_blocks.5", "down_blocks.2.downsamplers.0"),
                 ("down_blocks.6", "down_blocks.3"), ("down_blocks.7", "down_blocks.3.downsamplers.0"),
                 ("down_blocks.8", "mid_block")]
_NAMES = [("conv_shortcut", "conv_shortcut.conv"), ("res_blocks", "resnets"), ("norm3.norm", "norm3"),
          ("last_time_embedder", "time_embedder"), ("last_scale_shift_table", "scale_shift_table"),
          ("per_channel_statistics.mean-of-means", "latents_mean"),
          ("per_channel_statistics.std-of-means", "latents_std")]
_DROPPED = ("per_channel_statistics.channel", "per_channel_statistics.mean-of-stds")


def vae_version(state: Mapping, prefix: str = "vae.") -> str:
    """Which released VAE generation the tensors have (by structure, not by width)."""
    if prefix + "decoder.last_time_embedder.timestep_embedder.linear_1.weight" not in state:
        return "0.9.0"
    # 0.9.5 puts each encoder level's downsampler beside its res blocks: 9 entries, the last the mid block.
    return "0.9.1" if count(state, prefix + "encoder.down_blocks.{}.") == 10 else "0.9.5"


def _vae_table(version: str) -> list:
    table = dict(_COMMON)
    if version in ("0.9.1", "0.9.5"):
        table.update(_V091_DECODER)
    if version == "0.9.5":
        table.update(_V095_ENCODER)
    # Like diffusers: one pass, each rule applied to the already-renamed key in table order.
    return list(table.items())


def _rename_sequential(key: str, table) -> str:
    for old, new in table:
        if key.startswith(old + ".") or ("." + old + ".") in key:
            key = key.replace(old, new)
    return key


def to_diffusers(state: Mapping) -> dict[str, dict]:
    """{"transformer": ..., "vae": ...} in diffusers names (each only when the file has it)."""
    out: dict[str, dict] = {}
    body = {k: v for k, v in state.items() if not k.startswith("vae.")}
    if body:
        from diffusers.loaders.single_file_utils import (
            convert_ltx_transformer_checkpoint_to_diffusers,
        )
        out["transformer"] = convert_ltx_transformer_checkpoint_to_diffusers(body)
    vae = {k[4:]: v for k, v in state.items() if k.startswith("vae.")}
    if vae:
        table = _vae_table(vae_version(state))
        conv = {}
        for k, v in vae.items():
            if any(d in k for d in _DROPPED):
                continue
            k = _rename_sequential(k, table)
            for old, new in _NAMES:
                k = k.replace(old, new)
            conv[k] = v
        out["vae"] = conv
    return out


def transformer_config(state: Mapping) -> dict:
    """The shipped config with the sizes this file's tensors have."""
    cfg = model_config(FAMILY, "transformer")
    inner, cin = state["proj_in.weight"].shape
    cfg.update(in_channels=int(cin), out_channels=int(state["proj_out.weight"].shape[0]),
               num_attention_heads=HEADS, attention_head_dim=int(inner) // HEADS,
               cross_attention_dim=int(state["transformer_blocks.0.attn2.to_k.weight"].shape[1]),
               caption_channels=int(state["caption_projection.linear_1.weight"].shape[1]),
               num_layers=count(state, "transformer_blocks.{}."))
    return cfg


def vae_config(state: Mapping, version: str) -> dict:
    """The shipped VAE config of this generation with this file's widths and depths."""
    cfg = model_config(FAMILY, f"vae_{version}")
    conv1 = lambda p: int(state[f"{p}.resnets.0.conv1.conv.weight"].shape[0])
    nres = lambda p: count(state, p + ".resnets.{}.")
    downs = range(count(state, "encoder.down_blocks.{}."))
    modern = cfg["down_block_types"][-1] == "LTXVideo095DownBlock3D"
    # Each level's res blocks run at its width; 0.9.5's list also names the mid block's.
    boc = [conv1(f"encoder.down_blocks.{i}") for i in downs] + ([conv1("encoder.mid_block")] if modern else [])
    ups = range(count(state, "decoder.up_blocks.{}."))
    uf = list(cfg.get("upsample_factor") or [1] * len(ups))
    rev = [conv1("decoder.mid_block")] + [conv1(f"decoder.up_blocks.{i}") * uf[i] for i in ups[1:]]
    cfg.update(latent_channels=int(state["decoder.conv_in.conv.weight"].shape[1]), block_out_channels=boc,
               layers_per_block=[nres(f"encoder.down_blocks.{i}") for i in downs] + [nres("encoder.mid_block")],
               decoder_block_out_channels=list(reversed(rev)),
               decoder_layers_per_block=[nres("decoder.mid_block")] + [nres(f"decoder.up_blocks.{i}") for i in ups])
    return cfg


@register("ltx", "checkpoint")          # the all-in-one file: its denoiser (load.diffusion_model)
@register("ltx", "diffusion_model")
def transformer(state, det) -> Built:
    """The transformer of an LTX-Video file: a transformer-only file or the all-in-one checkpoint."""
    from diffusers import LTXVideoTransformer3DModel
    conv = to_diffusers({k: v for k, v in state.items() if not k.startswith("vae.")})["transformer"]
    cfg = transformer_config(conv)
    causal = bool(det.extra.get("causal_temporal_positioning"))

    def make():
        model = LTXVideoTransformer3DModel.from_config(cfg)
        # Kept in the model's config, where the adapter reads how to place frames in time.
        model.register_to_config(causal_temporal_positioning=causal)
        return model
    return Built(make, conv, cfg)


@register("ltx", "vae")
def vae(state, det) -> Built:
    """The VAE of an LTX-Video checkpoint (its `vae.` tensors) or of a VAE-only file."""
    from diffusers import AutoencoderKLLTXVideo
    if det.layout == "diffusers":
        conv = dict(state)
        version = "0.9.0" if "decoder.time_embedder.timestep_embedder.linear_1.weight" not in conv else \
            "0.9.5" if "encoder.down_blocks.0.downsamplers.0.conv.conv.weight" in conv else "0.9.1"
    else:
        if not any(k.startswith("vae.") for k in state):
            state = {"vae." + k: v for k, v in state.items()}
        version = vae_version(state)
        conv = to_diffusers({k: v for k, v in state.items() if k.startswith("vae.")})["vae"]
    cfg = vae_config(conv, version)
    return Built(lambda: AutoencoderKLLTXVideo.from_config(cfg), conv, cfg)
