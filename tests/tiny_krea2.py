"""A tiny random-weight Krea 2 in the layouts its users hold it: a diffusers Krea2Pipeline folder, and ComfyUI's split
files (Comfy-Org/Krea-2's), the transformer in Krea's / ComfyUI's names (written here by inverting diffusers' converter
by hand from ComfyUI's comfy/ldm/krea2/model.py module names, so the reference does not go through Kinograph's
loading code):

  root/diffusers/                                            Krea2Pipeline (Turbo: is_distilled), the shipped scheduler
  root/models/diffusion_models/krea2_turbo_tiny_bf16.safetensors  ComfyUI's names (first, blocks.N.attn.wq,
                                                             qknorm.qnorm.scale, mod.lin flat, txtfusion, txtmlp,
                                                             tmlp, tproj, last) under model.diffusion_model., bf16
  root/models/text_encoders/qwen3vl_4b_tiny_fp8_scaled.safetensors  Qwen3-VL as ComfyUI's qwen3vl_4b_fp8_scaled
                                                             holds it (model.*, visual.*, no head; fp8 with scales),
                                                             its tokenizer (with a chat template) in a folder
                                                             named after it
  root/models/vae/qwen_image_vae.safetensors                 Qwen-Image's VAE in the Wan 2.1 VAE's original names

Widths are tiny; the structure is the released model's: 16 latent channels in 2x2 patches, grouped-query attention
with a sigmoid gate, 32-wide heads split 8/12/12 for the rotary axes as Krea 2's formula splits the released 128 into
32/48/48, twelve of Qwen3-VL's layers (hidden states 2, 5, ..., 35 of its 36) fused by two layer-wise and two
refiner blocks."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from tiny_models import _seed, wan_original_vae
from tiny_qwen import parts as qwen_parts, qwen_tokenizer, save_fp8_scaled
from tiny_qwen21 import comfy_text_encoder, text_encoder as qwen3vl

TEXT = 64                       # Qwen3-VL's hidden width here (the released 4B's is 2560)
TE_NAME = "qwen3vl_4b_tiny_fp8_scaled"
# Qwen3-VL's chat template as far as its users read it: a turn's content as text (TextGenerate's request) or as a list
# of parts (Qwen-Image 2.1's prompt), thinking switched off by an empty <think> block
CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
        "{% else %}{% for c in m['content'] %}{{ c['text'] }}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and "
        "enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}")

PREFIXES = (("img_in.", "first."), ("time_embed.linear_1.", "tmlp.0."), ("time_embed.linear_2.", "tmlp.2."),
            ("time_mod_proj.", "tproj.1."), ("txt_in.norm.weight", "txtmlp.0.scale"), ("txt_in.linear_1.", "txtmlp.1."),
            ("txt_in.linear_2.", "txtmlp.3."), ("text_fusion.", "txtfusion."), ("transformer_blocks.", "blocks."),
            ("final_layer.linear.", "last.linear."), ("final_layer.norm.weight", "last.norm.scale"),
            ("final_layer.scale_shift_table", "last.modulation.lin"))
INSIDE = ((".attn.to_q.", ".attn.wq."), (".attn.to_k.", ".attn.wk."), (".attn.to_v.", ".attn.wv."),
          (".attn.to_out.0.", ".attn.wo."), (".attn.to_gate.", ".attn.gate."),
          (".attn.norm_q.weight", ".attn.qknorm.qnorm.scale"), (".attn.norm_k.weight", ".attn.qknorm.knorm.scale"),
          (".ff.", ".mlp."), (".norm1.weight", ".prenorm.scale"), (".norm2.weight", ".postnorm.scale"))


def transformer():
    from diffusers import Krea2Transformer2DModel
    _seed(5)
    model = Krea2Transformer2DModel(in_channels=64, num_layers=2, attention_head_dim=32, num_attention_heads=2,
                                    num_key_value_heads=1, intermediate_size=96, text_hidden_dim=TEXT,
                                    num_text_layers=12, text_num_attention_heads=2, text_num_key_value_heads=2,
                                    text_intermediate_size=48, axes_dims_rope=(8, 12, 12))
    # norms and modulation tables start at zero: random ones make a test see whether each is read, and from where
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.bfloat16().float().eval()


def comfy_transformer(sd: dict) -> dict:
    """diffusers' Krea2Transformer2DModel names -> ComfyUI's (krea2_turbo_*.safetensors), each block's six modulation
    vectors flattened into one mod.lin."""
    out = {}
    for k, v in sd.items():
        for new, old in PREFIXES:
            if k.startswith(new):
                k = old + k[len(new):]
                break
        for new, old in INSIDE:
            k = k.replace(new, old)
        if k.startswith("blocks.") and k.endswith(".scale_shift_table"):
            k, v = k.replace(".scale_shift_table", ".mod.lin"), v.flatten()
        out["model.diffusion_model." + k] = v
    return out


def build_krea2(root: Path) -> Path:
    from diffusers import Krea2Pipeline
    from safetensors.torch import save_file
    from nodes.generate.split import scheduler
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    _, vae, _ = qwen_parts()
    _seed(6)
    te = qwen3vl(36).bfloat16().float()      # Qwen3-VL-4B's 36 layers: Krea 2 reads hidden states up to 35
    save_fp8_scaled(te, comfy_text_encoder(te.state_dict()), models / "text_encoders" / f"{TE_NAME}.safetensors")
    tok = qwen_tokenizer(models / "text_encoders" / TE_NAME)
    tok.chat_template = CHAT
    tok.save_pretrained(str(models / "text_encoders" / TE_NAME))
    model = transformer()
    Krea2Pipeline(scheduler=scheduler("krea2"), vae=vae, text_encoder=te.model, tokenizer=copy.deepcopy(tok),
                  transformer=model, is_distilled=True).save_pretrained(str(root / "diffusers"), safe_serialization=True)
    bf16 = lambda sd: {k: v.bfloat16().contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(bf16(comfy_transformer(model.state_dict())),
              str(models / "diffusion_models" / "krea2_turbo_tiny_bf16.safetensors"))
    save_file(bf16(wan_original_vae(vae.state_dict())), str(models / "vae" / "qwen_image_vae.safetensors"))
    return root
