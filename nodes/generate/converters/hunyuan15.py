"""HunyuanVideo 1.5 single files as ComfyUI users hold them (Comfy-Org/HunyuanVideo_1.5_repackaged):
  diffusion_models/hunyuanvideo1.5_{480p,720p}_{t2v,i2v}_fp16.safetensors  (Tencent's names: double_blocks with
      separate img_attn_q/k/v, txt_in's token refiner, byt5_in, vision_in, cond_type_embedding)
  vae/hunyuanvideo15_vae_fp16.safetensors  (Tencent's names: encoder.down.N.block.M, mid.block_1, mid.attn_1, ...)
  diffusion_models/hunyuanvideo1.5_*_cfg_distilled / _step_distilled, hunyuanvideo1.5_1080p_sr_distilled
      (the same names plus guidance_in, the cfg-distilled guidance embedding, or time_r_in, the step-distilled
      mean-flow embedding of the next step's time; the 1080p super-resolution model reads 98 channels)
diffusers has no single-file converter for either; the renaming here is that of diffusers'
scripts/convert_hunyuan_video1_5_to_diffusers.py, with depths and widths read from the tensors instead of fixed.
t2v and i2v share one layout (65 input channels: noise, the image latent, a mask), so one converter serves both; the
super-resolution model's 98 are noise, the image latent, its mask, the low-resolution latent and a plane of ones
(hunyuan15_sr.py). diffusers' model has time_r_in (use_meanflow) but no guidance embedding, which
hunyuan15_distilled.py adds."""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from graph_engine import NodeError
from nodes.generate.converters import Built, count, model_config, register

FAMILY = "hunyuan15"
HEAD_DIM = 128                      # every released HunyuanVideo 1.5 transformer

_TOP = {"time_in.mlp.0": "time_embed.timestep_embedder.linear_1",
        "time_in.mlp.2": "time_embed.timestep_embedder.linear_2",
        "txt_in.t_embedder.mlp.0": "context_embedder.time_text_embed.timestep_embedder.linear_1",
        "txt_in.t_embedder.mlp.2": "context_embedder.time_text_embed.timestep_embedder.linear_2",
        "txt_in.c_embedder.linear_1": "context_embedder.time_text_embed.text_embedder.linear_1",
        "txt_in.c_embedder.linear_2": "context_embedder.time_text_embed.text_embedder.linear_2",
        "txt_in.input_embedder": "context_embedder.proj_in",
        "byt5_in.layernorm": "context_embedder_2.norm", "byt5_in.fc1": "context_embedder_2.linear_1",
        "byt5_in.fc2": "context_embedder_2.linear_2", "byt5_in.fc3": "context_embedder_2.linear_3",
        "vision_in.proj.0": "image_embedder.norm_in", "vision_in.proj.1": "image_embedder.linear_1",
        "vision_in.proj.3": "image_embedder.linear_2", "vision_in.proj.4": "image_embedder.norm_out",
        "img_in.proj": "x_embedder.proj", "cond_type_embedding": "cond_type_embed",
        "final_layer.adaLN_modulation.1": "norm_out.linear", "final_layer.linear": "proj_out",
        "time_r_in.mlp.0": "time_embed.timestep_embedder_r.linear_1",
        "time_r_in.mlp.2": "time_embed.timestep_embedder_r.linear_2",
        "guidance_in.mlp.0": "time_embed.guidance_embedder.linear_1",
        "guidance_in.mlp.2": "time_embed.guidance_embedder.linear_2"}
_DOUBLE = {"img_mod.linear": "norm1.linear", "txt_mod.linear": "norm1_context.linear",
           "img_attn_q": "attn.to_q", "img_attn_k": "attn.to_k", "img_attn_v": "attn.to_v",
           "img_attn_q_norm": "attn.norm_q", "img_attn_k_norm": "attn.norm_k", "img_attn_proj": "attn.to_out.0",
           "txt_attn_q": "attn.add_q_proj", "txt_attn_k": "attn.add_k_proj", "txt_attn_v": "attn.add_v_proj",
           "txt_attn_q_norm": "attn.norm_added_q", "txt_attn_k_norm": "attn.norm_added_k",
           "txt_attn_proj": "attn.to_add_out", "img_mlp.fc1": "ff.net.0.proj", "img_mlp.fc2": "ff.net.2",
           "txt_mlp.fc1": "ff_context.net.0.proj", "txt_mlp.fc2": "ff_context.net.2"}
_REFINER = {"norm1": "norm1", "norm2": "norm2", "self_attn_proj": "attn.to_out.0", "mlp.fc1": "ff.net.0.proj",
            "mlp.fc2": "ff.net.2", "adaLN_modulation.1": "norm_out.linear"}
_BLOCK = re.compile(r"^double_blocks\.(\d+)\.(.+)\.(weight|bias)$")
_REFINE = re.compile(r"^txt_in\.individual_token_refiner\.blocks\.(\d+)\.(.+)\.(weight|bias)$")


def unsupported(in_channels: int, latent: int) -> str:
    """Why Kinograph cannot run a HunyuanVideo 1.5 transformer of this input width, or "" when it can."""
    if in_channels not in (2 * latent + 1, 3 * latent + 2):
        return (f"a HunyuanVideo 1.5 transformer with {in_channels} input channels: Kinograph runs the 480p and "
                f"720p text-to-video and image-to-video models ({2 * latent + 1}) and the 1080p super-resolution "
                f"one ({3 * latent + 2}). Use one of Comfy-Org/HunyuanVideo_1.5_repackaged's diffusion_models")
    return ""


def transformer_to_diffusers(state: Mapping) -> dict:
    """Tencent's / ComfyUI's names -> HunyuanVideo15Transformer3DModel's (identity for diffusers names)."""
    if "x_embedder.proj.weight" in state:
        return dict(state)
    out = {}
    for key, v in state.items():
        m = _BLOCK.match(key)
        if m and m.group(2) in ("img_attn_qkv", "txt_attn_qkv"):      # HunyuanVideo 1's fused spelling
            side = m.group(2)[:3]
            for part, t in zip("qkv", v.chunk(3, dim=0)):
                out[f"transformer_blocks.{m.group(1)}.{_DOUBLE[f'{side}_attn_{part}']}.{m.group(3)}"] = t
            continue
        if m and m.group(2) in _DOUBLE:
            out[f"transformer_blocks.{m.group(1)}.{_DOUBLE[m.group(2)]}.{m.group(3)}"] = v
            continue
        m = _REFINE.match(key)
        if m:
            base = f"context_embedder.token_refiner.refiner_blocks.{m.group(1)}"
            if m.group(2) == "self_attn_qkv":
                for part, t in zip(("to_q", "to_k", "to_v"), v.chunk(3, dim=0)):
                    out[f"{base}.attn.{part}.{m.group(3)}"] = t
            else:
                out[f"{base}.{_REFINER.get(m.group(2), m.group(2))}.{m.group(3)}"] = v
            continue
        name, _, kind = key.rpartition(".")
        if name == "final_layer.adaLN_modulation.1":        # Tencent's (shift, scale) -> diffusers' (scale, shift)
            shift, scale = v.chunk(2, dim=0)
            v = torch.cat([scale, shift], dim=0)
        out[f"{_TOP.get(name, name)}.{kind}"] = v
    return out


def transformer_config(state: Mapping) -> dict:
    cfg = model_config(FAMILY, "transformer")
    w = state["x_embedder.proj.weight"]
    inner = int(w.shape[0])
    cfg.update(in_channels=int(w.shape[1]), out_channels=int(state["proj_out.weight"].shape[0]),
               num_attention_heads=inner // HEAD_DIM, attention_head_dim=HEAD_DIM,
               num_layers=count(state, "transformer_blocks.{}."),
               num_refiner_layers=count(state, "context_embedder.token_refiner.refiner_blocks.{}."),
               mlp_ratio=state["transformer_blocks.0.ff.net.0.proj.weight"].shape[0] / inner,
               text_embed_dim=int(state["context_embedder.proj_in.weight"].shape[1]),
               text_embed_2_dim=int(state["context_embedder_2.norm.weight"].shape[0]),
               image_embed_dim=int(state["image_embedder.norm_in.weight"].shape[0]),
               use_meanflow="time_embed.timestep_embedder_r.linear_1.weight" in state)
    return cfg


_VAE = [(re.compile(r"^(encoder)\.down\.(\d+)\.block\.(\d+)\."), r"\1.down_blocks.\2.resnets.\3."),
        (re.compile(r"^(encoder)\.down\.(\d+)\.downsample\."), r"\1.down_blocks.\2.downsamplers.0."),
        (re.compile(r"^(decoder)\.up\.(\d+)\.block\.(\d+)\."), r"\1.up_blocks.\2.resnets.\3."),
        (re.compile(r"^(decoder)\.up\.(\d+)\.upsample\."), r"\1.up_blocks.\2.upsamplers.0."),
        (re.compile(r"^(\w+)\.mid\.block_1\."), r"\1.mid_block.resnets.0."),
        (re.compile(r"^(\w+)\.mid\.block_2\."), r"\1.mid_block.resnets.1."),
        (re.compile(r"^(\w+)\.mid\.attn_1\.([qkv])\."), r"\1.mid_block.attentions.0.to_\2."),
        (re.compile(r"^(\w+)\.mid\.attn_1\."), r"\1.mid_block.attentions.0.")]


def vae_to_diffusers(state: Mapping) -> dict:
    """Tencent's / ComfyUI's VAE names -> AutoencoderKLHunyuanVideo15's (the decoder's up blocks keep their order)."""
    out = {}
    for key, v in state.items():
        for rx, sub in _VAE:
            key, n = rx.subn(sub, key)
            if n:
                break
        out[key] = v
    return out


def vae_config(state: Mapping) -> dict:
    cfg = model_config(FAMILY, "vae")
    downs = count(state, "encoder.down_blocks.{}.")
    cfg.update(block_out_channels=[int(state[f"encoder.down_blocks.{i}.resnets.0.conv1.conv.weight"].shape[0])
                                   for i in range(downs)],
               latent_channels=int(state["decoder.conv_in.conv.weight"].shape[1]),
               layers_per_block=count(state, "encoder.down_blocks.0.resnets.{}."))
    return cfg


@register(FAMILY, "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import HunyuanVideo15Transformer3DModel
    w = state.get("img_in.proj.weight", state.get("x_embedder.proj.weight"))
    out = state.get("final_layer.linear.weight", state.get("proj_out.weight"))
    why = unsupported(int(w.shape[1]), int(out.shape[0]))
    if why:
        raise NodeError(f"this is {why}")
    from nodes.generate.hunyuan15_distilled import with_guidance
    conv = transformer_to_diffusers(state)
    cfg = transformer_config(conv)
    if "time_embed.guidance_embedder.linear_1.weight" in conv:
        return Built(lambda: with_guidance(HunyuanVideo15Transformer3DModel.from_config(cfg)), conv, cfg)
    return Built(lambda: HunyuanVideo15Transformer3DModel.from_config(cfg), conv, cfg)


@register(FAMILY, "vae")
def vae(state, det) -> Built:
    from diffusers import AutoencoderKLHunyuanVideo15
    conv = vae_to_diffusers(state)
    cfg = vae_config(conv)
    return Built(lambda: AutoencoderKLHunyuanVideo15.from_config(cfg), conv, cfg)
