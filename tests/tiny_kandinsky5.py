"""Tiny random-weight Kandinsky 5 video in the layout ComfyUI users hold it (the video_kandinsky5_t2v / _i2v templates):

  root/models/diffusion_models/kandinsky5lite_t2v_sft_5s.safetensors
      the transformer in kandinskylab's names (text_transformer_blocks, visual_transformer_blocks, visual_modulation,
      out_layer), which Kandinsky5Transformer3DModel keeps one to one; 2 x 4 + 1 input channels (noise, a start
      latent, its mask), as the released Lite models
  root/models/vae/hunyuan_video_vae_bf16.safetensors   HunyuanVideo's VAE in ComfyUI's (LDM) names
  root/models/text_encoders/qwen_2.5_vl_tiny.safetensors   Qwen2.5-VL in ComfyUI's names (tests/tiny_qwen.py)
  root/models/text_encoders/clip_l.safetensors (+ its tokenizer folder)   CLIP-L, whose pooled output it reads
  root/comfy/text_encoders/qwen25_tokenizer            ComfyUI's bundled Qwen tokenizer

Kandinsky 5 image (the image_kandinsky5_t2i template's files, build_kandinsky5_image): the same transformer without
start-frame channels over FLUX.1's 16 latent channels, FLUX.1's ae.safetensors, the same two text encoders.

and, for the families Kinograph names but does not load, files holding only the tensor names their converters read:
Genmo's Mochi 1 transformer and VAE (ComfyUI's mochi_preview_bf16 / mochi_vae) and NVIDIA's Cosmos-Predict2 and
Cosmos 1.0 transformers."""
from __future__ import annotations

from pathlib import Path

import torch

from tiny_models import _seed, clip_tokenizer
from tiny_qwen import comfy_text_encoder, qwen_tokenizer, text_encoder

LATENT = 4


def _transformer(latent: int, start_frame: bool):
    from diffusers import Kandinsky5Transformer3DModel
    transformer = Kandinsky5Transformer3DModel(
        in_visual_dim=latent, out_visual_dim=latent, in_text_dim=128, in_text_dim2=64, time_dim=16,
        patch_size=(1, 2, 2), model_dim=32, ff_dim=32, num_text_blocks=1, num_visual_blocks=1, axes_dims=(4, 6, 6),
        visual_cond=start_frame)
    # diffusers starts every modulation (and so every block's gates) at zero, which makes each block an identity: the
    # text, the other frames and the start frame's mask would then change nothing
    g = torch.Generator().manual_seed(1)
    for p in transformer.parameters():
        if not p.data.any():
            p.data = torch.randn(p.shape, generator=g) * 0.5
    return transformer


def _clip():
    from transformers import CLIPTextConfig, CLIPTextModel
    return CLIPTextModel(CLIPTextConfig(bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=64,
                                       intermediate_size=37, num_attention_heads=1, num_hidden_layers=2,
                                       vocab_size=1000, projection_dim=64, hidden_act="quick_gelu"))


def _bf16_values(*modules):
    for m in modules:
        for p in m.parameters():
            p.data = p.data.to(torch.bfloat16).float()
    return tuple(m.eval() for m in modules)


def reference_parts():
    """The transformer, VAE, Qwen2.5-VL and CLIP-L as diffusers / transformers modules (bf16 values)."""
    from comfy_layouts import tiny_hunyuan_vae
    _seed(0)
    transformer = _transformer(LATENT, True)
    return _bf16_values(transformer, tiny_hunyuan_vae(), text_encoder(), _clip())


def image_parts():
    """Kandinsky 5 image's: the transformer without start-frame channels over FLUX.1's 16 latent channels, FLUX.1's
    VAE (tests/tiny_flux.py's), Qwen2.5-VL and CLIP-L (bf16 values)."""
    from tiny_flux import parts
    _seed(5)
    transformer = _transformer(16, False)
    return _bf16_values(transformer, parts(True)[1], text_encoder(), _clip())


def _encoders(root: Path, te, clip) -> None:
    """Qwen2.5-VL in ComfyUI's names and CLIP-L with their tokenizers, where the templates' loaders look."""
    from safetensors.torch import save_file
    models = root / "models" / "text_encoders"
    save_file(_bf16(comfy_text_encoder(te)), str(models / "qwen_2.5_vl_tiny.safetensors"))
    save_file(_bf16(clip.state_dict()), str(models / "clip_l.safetensors"))
    clip_tokenizer(models / "clip_l")
    qwen_tokenizer(root / "comfy" / "text_encoders" / "qwen25_tokenizer")


def _bf16(sd: dict) -> dict:
    return {k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}


def build_kandinsky5_image(root: Path) -> Path:
    """ComfyUI's image_kandinsky5_t2i files: diffusion_models/kandinsky5lite_t2i_tiny.safetensors (kandinskylab's
    names), vae/ae.safetensors (FLUX.1's VAE in the LDM names), the two text encoders."""
    from safetensors.torch import save_file
    from tiny_models import sd_ldm_vae
    models = root / "models"
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    transformer, vae, te, clip = image_parts()
    save_file(_bf16(transformer.state_dict()), str(models / "diffusion_models" / "kandinsky5lite_t2i_tiny.safetensors"))
    save_file({k: v.half().contiguous() for k, v in sd_ldm_vae(vae.state_dict(), 4).items()},
              str(models / "vae" / "ae.safetensors"))
    _encoders(root, te, clip)
    return root


def _names(keys, shape=(4, 4)) -> dict:
    return {k: torch.zeros(shape, dtype=torch.bfloat16) for k in keys}


MOCHI = ["x_embedder.proj.weight", "t_embedder.mlp.0.weight", "t5_y_embedder.to_kv.weight", "t5_yproj.weight",
         "blocks.0.attn.qkv_x.weight", "blocks.0.attn.qkv_y.weight", "blocks.0.mod_x.weight",
         "final_layer.linear.weight", "pos_frequencies"]
MOCHI_VAE = ["decoder.blocks.0.0.weight", "decoder.blocks.0.1.stack.0.weight", "decoder.output_proj.weight",
             "encoder.layers.0.weight", "encoder.output_proj.weight"]
COSMOS2 = ["net.x_embedder.proj.1.weight", "net.blocks.0.self_attn.q_proj.weight", "net.pos_embedder.dim_spatial_range",
           "net.t_embedder.1.linear_1.weight", "net.final_layer.linear.weight"]
COSMOS1 = ["net.x_embedder.proj.1.weight", "net.blocks.block1.blocks.0.block.attn.to_q.0.weight",
           "net.extra_pos_embedder.pos_emb_h", "net.final_layer.linear.weight"]


def build_kandinsky5(root: Path) -> Path:
    from safetensors.torch import save_file
    from comfy_layouts import hunyuan_vae_original
    models = root / "models"
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    transformer, vae, te, clip = reference_parts()
    save_file(_bf16(transformer.state_dict()), str(models / "diffusion_models" / "kandinsky5lite_t2v_sft_5s.safetensors"))
    save_file(_bf16(hunyuan_vae_original(vae.state_dict())), str(models / "vae" / "hunyuan_video_vae_bf16.safetensors"))
    _encoders(root, te, clip)
    save_file(_names(MOCHI), str(models / "diffusion_models" / "mochi_preview_bf16.safetensors"))
    save_file(_names(MOCHI_VAE), str(models / "vae" / "mochi_vae.safetensors"))
    save_file(_names(COSMOS2), str(models / "diffusion_models" / "cosmos_predict2_2B_video2world_480p_16fps.safetensors"))
    save_file(_names(COSMOS1), str(models / "diffusion_models" / "Cosmos-1_0-Diffusion-7B-Text2World.safetensors"))
    return root
