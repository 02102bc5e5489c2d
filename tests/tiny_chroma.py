"""A tiny random-weight Chroma in the layouts users hold it: a diffusers ChromaPipeline folder, and ComfyUI's split
files, the transformer in the original names (written here by inverting diffusers' converter by hand, so the reference
does not go through Kinograph's loading code):

  root/diffusers/                                      ChromaPipeline, the shipped Chroma scheduler
  root/models/diffusion_models/chroma-tiny.safetensors the original names (double_blocks, distilled_guidance_layer)
  root/models/vae/ae.safetensors                       FLUX.1's VAE in the LDM names (tests/tiny_flux.py's)
  root/models/text_encoders/t5xxl_fp16.safetensors     T5's encoder (its tokenizer in a folder named after it)

Widths are tiny but the structure is the released model's: 64 input channels (16 latent x 2x2 patches), two double
and two single blocks, 32-wide heads, a two-layer modulation network."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from tiny_flux import AXES, HEAD, parts
from tiny_models import _seed, sd_ldm_vae, t5_tokenizer


def transformer():
    from diffusers import ChromaTransformer2DModel
    _seed(1)
    model = ChromaTransformer2DModel(in_channels=64, num_layers=2, num_single_layers=2, attention_head_dim=HEAD,
                                     num_attention_heads=2, joint_attention_dim=32, axes_dims_rope=AXES,
                                     approximator_num_channels=16, approximator_hidden_dim=32, approximator_layers=2)
    return model.half().float()


def original_transformer(sd: dict) -> dict:
    """diffusers' ChromaTransformer2DModel names -> the released files' (Chroma1-HD.safetensors)."""
    out = {}
    top = {"context_embedder": "txt_in", "x_embedder": "img_in", "proj_out": "final_layer.linear",
           "distilled_guidance_layer.in_proj": "distilled_guidance_layer.in_proj",
           "distilled_guidance_layer.out_proj": "distilled_guidance_layer.out_proj"}
    double = {"ff.net.0.proj": "img_mlp.0", "ff.net.2": "img_mlp.2", "ff_context.net.0.proj": "txt_mlp.0",
              "ff_context.net.2": "txt_mlp.2", "attn.to_out.0": "img_attn.proj", "attn.to_add_out": "txt_attn.proj"}
    norms = {"attn.norm_q": "img_attn.norm.query_norm", "attn.norm_k": "img_attn.norm.key_norm",
             "attn.norm_added_q": "txt_attn.norm.query_norm", "attn.norm_added_k": "txt_attn.norm.key_norm"}
    layers = {int(k.split(".")[2]) for k in sd if k.startswith("distilled_guidance_layer.layers.")}
    for kind in ("weight", "bias"):
        for d, b in top.items():
            out[f"{b}.{kind}"] = sd[f"{d}.{kind}"]
        for i in layers:
            p = f"distilled_guidance_layer.layers.{i}."
            out[f"{p}in_layer.{kind}"] = sd[f"{p}linear_1.{kind}"]
            out[f"{p}out_layer.{kind}"] = sd[f"{p}linear_2.{kind}"]
    for i in layers:
        out[f"distilled_guidance_layer.norms.{i}.scale"] = sd[f"distilled_guidance_layer.norms.{i}.weight"]
    for i in {int(k.split(".")[1]) for k in sd if k.startswith("transformer_blocks.")}:
        p, q = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        for kind in ("weight", "bias"):
            for d, b in double.items():
                out[f"{q}{b}.{kind}"] = sd[f"{p}{d}.{kind}"]
            out[f"{q}img_attn.qkv.{kind}"] = torch.cat([sd[f"{p}attn.to_{x}.{kind}"] for x in "qkv"])
            out[f"{q}txt_attn.qkv.{kind}"] = torch.cat([sd[f"{p}attn.add_{x}_proj.{kind}"] for x in "qkv"])
        for d, b in norms.items():
            out[f"{q}{b}.scale"] = sd[f"{p}{d}.weight"]
    for i in {int(k.split(".")[1]) for k in sd if k.startswith("single_transformer_blocks.")}:
        p, q = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{q}linear1.{kind}"] = torch.cat([sd[f"{p}attn.to_{x}.{kind}"] for x in "qkv"] +
                                                  [sd[f"{p}proj_mlp.{kind}"]])
            out[f"{q}linear2.{kind}"] = sd[f"{p}proj_out.{kind}"]
        out[f"{q}norm.query_norm.scale"] = sd[f"{p}attn.norm_q.weight"]
        out[f"{q}norm.key_norm.scale"] = sd[f"{p}attn.norm_k.weight"]
    assert sum(v.numel() for v in out.values()) == sum(v.numel() for v in sd.values()), "a tensor was left out"
    return out


def build_chroma(root: Path) -> Path:
    from diffusers import ChromaPipeline
    from safetensors.torch import save_file
    from nodes.generate.split import scheduler
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    tok = t5_tokenizer(models / "text_encoders" / "t5xxl_fp16")
    _, vae, _, t5 = parts(True)
    model = transformer()
    ChromaPipeline(scheduler=scheduler("chroma"), vae=vae, text_encoder=t5, tokenizer=copy.deepcopy(tok),
                   transformer=model).save_pretrained(str(root / "diffusers"), safe_serialization=True)
    half = lambda sd: {k: v.half().contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(half(original_transformer(model.state_dict())), str(models / "diffusion_models" / "chroma-tiny.safetensors"))
    save_file(half(sd_ldm_vae(vae.state_dict(), 4)), str(models / "vae" / "ae.safetensors"))
    save_file(half({k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}),
              str(models / "text_encoders" / "t5xxl_fp16.safetensors"))
    return root
