"""A tiny random-weight Ideogram 4 in the files ComfyUI's users hold (Comfy-Org/Ideogram-4, Comfy-Org/Qwen3-VL,
Comfy-Org/flux2-dev), and the same weights as diffusers' Ideogram4Pipeline (the reference):

  root/models/diffusion_models/ideogram4_tiny_fp8_scaled.safetensors, ideogram4_unconditional_tiny_fp8_scaled
      the two transformers in ComfyUI's names (comfy/ldm/ideogram4/model.py's modules: layers.N.attention.qkv fused
      in query, key, value order, attention.o, feed_forward.w1/w2/w3, t_embedding.mlp_in/out, final_layer) under
      model.diffusion_model., fp8 with a per-matrix scale (ComfyUI's fp8_scaled: its linear layers, the embedding
      table as it is); written here by hand from those module names, not through Kinograph's converter
  root/models/text_encoders/qwen3vl_8b_tiny_fp8_scaled.safetensors
      Qwen3-VL as ComfyUI's qwen3vl_8b_fp8_scaled holds it (model.*, visual.*, no head), 36 layers (Ideogram 4 reads
      layers 0, 3, ..., 33, 35), its tokenizer (with a chat template) in a folder named after it
  root/models/vae/flux2-vae.safetensors   FLUX.2's VAE (tests/tiny_flux2.py's) with its batch-norm statistics
  root/diffusers/                         Ideogram4Pipeline holding exactly the values the files give back

Widths are tiny; the structure is the release's: 128-channel tokens (2x2 patches of 32 latent channels), 13 x 64 text
features per token, 64-wide heads with the rotary split 6/5/5 (the release's 24/20/20 of 256, in proportion)."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from tiny_krea2 import CHAT
from tiny_models import _seed, to_fp8_scaled
from tiny_qwen import dequantised, qwen_tokenizer, save_fp8_scaled
from tiny_qwen21 import comfy_text_encoder, text_encoder as qwen3vl

TEXT = 64                       # the tiny Qwen3-VL's width (the released 8B's is 4096)
TE_NAME = "qwen3vl_8b_tiny_fp8_scaled"
MODELS = ("ideogram4_tiny_fp8_scaled", "ideogram4_unconditional_tiny_fp8_scaled")
PREFIX = "model.diffusion_model."


def transformer(seed: int):
    from diffusers import Ideogram4Transformer2DModel
    _seed(seed)
    model = Ideogram4Transformer2DModel(in_channels=128, num_layers=2, attention_head_dim=64, num_attention_heads=2,
                                        intermediate_size=96, adaln_dim=32, llm_features_dim=13 * TEXT,
                                        mrope_section=(6, 5, 5))
    # norms start at one and biases at zero: random ones make a test see whether each is read, and from where
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def comfy_transformer(sd: dict) -> dict:
    """diffusers' Ideogram4Transformer2DModel names -> ComfyUI's: each block's to_q, to_k, to_v rows stacked into
    attention.qkv (ComfyUI views it as (3, heads, head)), to_out.0 as attention.o; the rest is named alike."""
    out = {}
    for k, v in sd.items():
        if ".attention.to_k." in k or ".attention.to_v." in k:
            continue
        if ".attention.to_q." in k:
            k, v = k.replace(".to_q.", ".qkv."), torch.cat([v, sd[k.replace("to_q", "to_k")],
                                                              sd[k.replace("to_q", "to_v")]])
        out[PREFIX + k.replace(".attention.to_out.0.", ".attention.o.")] = v
    return out


def back_to_diffusers(stored: dict) -> dict:
    """What a loader reads back from the stored ComfyUI file, in diffusers' names (for the reference)."""
    out = {}
    for k, v in dequantised(stored).items():
        k = k[len(PREFIX):]
        if ".attention.qkv." in k:
            for name, part in zip(("to_q", "to_k", "to_v"), v.chunk(3)):
                out[k.replace("qkv", name)] = part
        else:
            out[k.replace(".attention.o.", ".attention.to_out.0.")] = v
    return out


def build_ideogram4(root: Path) -> Path:
    from diffusers import Ideogram4Pipeline
    from safetensors.torch import save_file
    from tiny_flux2 import parts as flux2_parts, save_vae
    from nodes.generate.split import scheduler
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    vae = flux2_parts()[1]
    save_vae(vae, models / "vae" / "flux2-vae.safetensors")
    _seed(6)
    te = qwen3vl(36)
    save_fp8_scaled(te, comfy_text_encoder(te.state_dict()), models / "text_encoders" / f"{TE_NAME}.safetensors")
    tok = qwen_tokenizer(models / "text_encoders" / TE_NAME)
    tok.chat_template = CHAT
    tok.save_pretrained(str(models / "text_encoders" / TE_NAME))
    nets = []
    for seed, name in zip((5, 7), MODELS):
        net = transformer(seed)
        comfy = comfy_transformer(net.state_dict())
        # ComfyUI quantises the linear layers; the image-token marker is an embedding table, kept as it is
        table = {k: comfy.pop(k) for k in [k for k in comfy if ".embed_image_indicator." in k]}
        stored = {**to_fp8_scaled(comfy), **table}
        save_file({k: v.contiguous() for k, v in stored.items()}, str(models / "diffusion_models" / f"{name}.safetensors"))
        net.load_state_dict(back_to_diffusers(stored))
        nets.append(net)
    Ideogram4Pipeline(scheduler=scheduler("ideogram4"), vae=vae, text_encoder=te.model, tokenizer=copy.deepcopy(tok),
                      transformer=nets[0], unconditional_transformer=nets[1]).save_pretrained(
        str(root / "diffusers"), safe_serialization=True)
    return root
