"""Tiny random-weight Kandinsky 5 video in the layout ComfyUI users hold it (the video_kandinsky5_t2v / _i2v templates):

  root/models/diffusion_models/kandinsky5lite_t2v_sft_5s.safetensors
      the transformer in kandinskylab's names (text_transformer_blocks, visual_transformer_blocks, visual_modulation,
      out_layer), which Kandinsky5Transformer3DModel keeps one to one; 2 x 4 + 1 input channels (noise, a start
      latent, its mask), as the released Lite models
  root/models/vae/hunyuan_video_vae_bf16.safetensors   HunyuanVideo's VAE in ComfyUI's (LDM) names
  root/models/text_encoders/qwen_2.5_vl_tiny.safetensors   Qwen2.5-VL in ComfyUI's names (tests/tiny_qwen.py)
  root/models/text_encoders/clip_l.safetensors (+ its tokenizer folder)   CLIP-L, whose pooled output it reads
  root/comfy/text_encoders/qwen25_tokenizer            ComfyUI's bundled Qwen tokenizer

and, for the families Kinograph names but does not load, files holding only the tensor names their converters read:
Genmo's Mochi 1 transformer and VAE (ComfyUI's mochi_preview_bf16 / mochi_vae) and NVIDIA's Cosmos-Predict2 and
Cosmos 1.0 transformers."""
from __future__ import annotations

from pathlib import Path

import torch

from tiny_models import _seed, clip_tokenizer
from tiny_qwen import comfy_text_encoder, qwen_tokenizer, text_encoder

LATENT = 4


def reference_parts():
    """The transformer, VAE, Qwen2.5-VL and CLIP-L as diffusers / transformers modules (bf16 values)."""
    from diffusers import Kandinsky5Transformer3DModel
    from transformers import CLIPTextConfig, CLIPTextModel
    from comfy_layouts import tiny_hunyuan_vae
    _seed(0)
    transformer = Kandinsky5Transformer3DModel(
        in_visual_dim=LATENT, out_visual_dim=LATENT, in_text_dim=128, in_text_dim2=64, time_dim=16,
        patch_size=(1, 2, 2), model_dim=32, ff_dim=32, num_text_blocks=1, num_visual_blocks=1, axes_dims=(4, 6, 6),
        visual_cond=True)
    # diffusers starts every modulation (and so every block's gates) at zero, which makes each block an identity: the
    # text, the other frames and the start frame's mask would then change nothing
    g = torch.Generator().manual_seed(1)
    for p in transformer.parameters():
        if not p.data.any():
            p.data = torch.randn(p.shape, generator=g) * 0.5
    vae = tiny_hunyuan_vae()
    te = text_encoder()
    clip = CLIPTextModel(CLIPTextConfig(bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=64,
                                        intermediate_size=37, num_attention_heads=1, num_hidden_layers=2,
                                        vocab_size=1000, projection_dim=64, hidden_act="quick_gelu"))
    for m in (transformer, vae, te, clip):
        for p in m.parameters():
            p.data = p.data.to(torch.bfloat16).float()
    return transformer.eval(), vae.eval(), te.eval(), clip.eval()


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
    bf16 = lambda sd: {k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(bf16(transformer.state_dict()), str(models / "diffusion_models" / "kandinsky5lite_t2v_sft_5s.safetensors"))
    save_file(bf16(hunyuan_vae_original(vae.state_dict())), str(models / "vae" / "hunyuan_video_vae_bf16.safetensors"))
    save_file(bf16(comfy_text_encoder(te)), str(models / "text_encoders" / "qwen_2.5_vl_tiny.safetensors"))
    save_file(bf16(clip.state_dict()), str(models / "text_encoders" / "clip_l.safetensors"))
    clip_tokenizer(models / "text_encoders" / "clip_l")
    qwen_tokenizer(root / "comfy" / "text_encoders" / "qwen25_tokenizer")
    save_file(_names(MOCHI), str(models / "diffusion_models" / "mochi_preview_bf16.safetensors"))
    save_file(_names(MOCHI_VAE), str(models / "vae" / "mochi_vae.safetensors"))
    save_file(_names(COSMOS2), str(models / "diffusion_models" / "cosmos_predict2_2B_video2world_480p_16fps.safetensors"))
    save_file(_names(COSMOS1), str(models / "diffusion_models" / "Cosmos-1_0-Diffusion-7B-Text2World.safetensors"))
    return root
