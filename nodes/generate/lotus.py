"""Lotus-D (He et al. 2024, "Lotus: Diffusion-based Visual Foundation Model for High-quality Dense Prediction"): a
Stable Diffusion 2 UNet fine-tuned to draw a depth map of a picture in one step, as ComfyUI runs it.

The UNet reads the picture's latent (no noise) at timestep 999 with a fixed prompt and a task embedding, and predicts
the clean latent of the map (x0), which the picture's VAE decodes. In ComfyUI that is UNETLoader (ComfyUI's LotusD
model: its IMG_TO_IMG sampling hands the latent to the UNet unscaled and takes its output as the result),
LotusConditioning, DisableNoise and one Euler step from SetFirstSigma's level; here load.diffusion_model, condition.lotus
and sample (add_noise off, steps 1). The SD adapter asks `is_lotus` where the model differs from SD."""
from __future__ import annotations

import base64
import json

import numpy as np

from graph_engine import NodeError

# Lotus' task switch: (1, 0) asks the UNet for the map, (0, 1) for the picture back (its training's reconstruction
# task); the UNet reads it as [sin, cos] of both numbers, ComfyUI's LotusD extra condition.
MAP_TASK = (1.0, 0.0)


def task_embedding(batch: int):
    """[batch, 4]: sin and cos of the map task, the UNet's class input."""
    import torch
    t = torch.tensor(MAP_TASK, dtype=torch.float32)
    return torch.cat([torch.sin(t), torch.cos(t)]).unsqueeze(0).repeat(batch, 1)


def prompt_embeds():
    """[1, 2, 1024] float32: the empty prompt as SD 2's text encoder reads it (its start and end tokens), which Lotus
    was trained with and ComfyUI's LotusConditioning inlines; shipped as the float16 values ComfyUI holds."""
    import torch
    from nodes.generate.converters import CONFIG_DIR
    path = CONFIG_DIR / "sd" / "lotus_prompt.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        values = np.frombuffer(base64.b64decode(doc["data"]), dtype="<f2").reshape(doc["shape"])
    except (OSError, ValueError, KeyError) as exc:
        raise NodeError(f"Lotus' shipped prompt {path} is missing or broken ({exc}); reinstall Kinograph") from None
    return torch.from_numpy(values.astype(np.float32))


def is_lotus(unet) -> bool:
    """Whether a loaded UNet is Lotus' (SD 2's with the 4-wide task embedding)."""
    cfg = getattr(unet, "config", None)
    return cfg is not None and cfg.get("class_embed_type") == "projection" and \
        cfg.get("projection_class_embeddings_input_dim") == 4


def unet_config(cfg: dict, variant: str) -> dict:
    """The diffusers config of a Lotus UNet from SD's with the file's widths (`cfg`): SD 2's 64-wide heads and the
    task embedding. Lotus-G (the picture's latent beside noise, 8 channels in) is refused: ComfyUI runs Lotus-D."""
    if variant != "lotus-d":
        raise NodeError(f"this is Lotus-G (a UNet of {cfg['in_channels']} input channels: the picture's latent "
                        "beside noise), which ComfyUI and Kinograph do not run; use Lotus-D (lotus-depth-d-v1-1 from "
                        "Comfy-Org/lotus, in diffusion_models/)")
    if cfg["cross_attention_dim"] != 1024:
        raise NodeError(f"this UNet has the Lotus task embedding but reads a {cfg['cross_attention_dim']}-wide prompt, "
                        "not SD 2's 1024: it is not a Lotus model Kinograph knows")
    from nodes.generate.converters.sd import SD2_HEAD_WIDTH
    heads = [c // SD2_HEAD_WIDTH for c in cfg["block_out_channels"]]
    # ComfyUI's LotusD keeps SD 2's heads but not SD20's float32 attention
    return {**cfg, "attention_head_dim": heads, "upcast_attention": False, "class_embed_type": "projection",
            "projection_class_embeddings_input_dim": 4}


def diffusers_config(cfg: dict, state) -> dict:
    """SD's UNet config (`cfg`) with the widths, attention levels and channels a diffusers-layout state dict shows
    (two resnets a level, as SD 2's and Lotus')."""
    levels = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("down_blocks."))
    attn = [f"down_blocks.{i}.attentions.0.proj_in.weight" in state for i in range(levels)]
    first = attn.index(True)
    return {**cfg, "block_out_channels": [int(state[f"down_blocks.{i}.resnets.0.conv1.weight"].shape[0])
                                          for i in range(levels)],
            "in_channels": int(state["conv_in.weight"].shape[1]), "out_channels": int(state["conv_out.weight"].shape[0]),
            "cross_attention_dim": int(state[f"down_blocks.{first}.attentions.0.transformer_blocks.0.attn2.to_k.weight"]
                                       .shape[1]),
            "use_linear_projection": state[f"down_blocks.{first}.attentions.0.proj_in.weight"].ndim == 2,
            "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn],
            "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)]}


def conditioning():
    """Lotus' prompt as a conditioning of SD's (meta lotus: the sampler refuses it on a UNet that is not Lotus')."""
    from nodes.generate.latent import Conditioning
    return Conditioning("sd", prompt_embeds(), meta={"lotus": True})


def check_model(unet, conds) -> None:
    """Lotus' prompt on a UNet that is not Lotus' (plain SD 2, SD 1.5) would draw a picture from a meaningless
    prompt instead of a map: refuse it, naming the file to load."""
    if is_lotus(unet) or not any(c is not None and c.meta.get("lotus") for c in conds):
        return
    raise NodeError("condition.lotus (ComfyUI's LotusConditioning) is Lotus' fixed prompt, but the model is a plain "
                    "Stable Diffusion UNet, not Lotus': load lotus-depth-d-v1-1.safetensors with "
                    "load.diffusion_model")


SUPPORT = ("load.diffusion_model: Lotus-D, a depth map of a picture in one step: condition.lotus as its "
           "prompt, the picture's latent from vae.encode (an SD VAE), sample with add_noise off, 1 step, cfg 1")
