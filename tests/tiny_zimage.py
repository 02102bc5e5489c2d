"""A tiny random-weight Z-Image in the layouts users hold it: a diffusers ZImagePipeline folder, and ComfyUI's split
files (Comfy-Org/z_image_turbo's split_files), the transformer in ComfyUI's names (written here by inverting diffusers'
converter by hand, so the reference does not go through Kinograph's loading code):

  root/diffusers/                                          ZImagePipeline, the shipped Z-Image scheduler
  root/models/diffusion_models/z_image_turbo_tiny.safetensors  ComfyUI's names (x_embedder, final_layer, fused
                                                           attention.qkv, attention.out, q_norm / k_norm), bf16
  root/models/vae/ae.safetensors                           FLUX.1's VAE in the LDM names (tests/tiny_flux.py's)
  root/models/text_encoders/qwen_3_4b_tiny.safetensors     Qwen3 in transformers' names (model.layers.*), its
                                                           tokenizer (Qwen3's chat template) in a folder named after it

Qwen3 has 28 layers, as FLUX.2 [klein], which reads the same file with type auto, reads layers 9, 18 and 27. Widths are
tiny but the transformer's structure is the released model's: 16 latent channels in 2x2 patches, refiners of the
picture's and the prompt's tokens, 32-wide heads split 8/12/12 for the rotary axes as the released 128 are 32/48/48."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import torch

from tiny_flux import parts
from tiny_flux2 import QWEN3_CHAT, tokenizer
from tiny_models import _seed, sd_ldm_vae

CAPTION = 48                # Qwen3's hidden width here (the released Qwen3-4B's is 2560)


def transformer():
    from diffusers import ZImageTransformer2DModel
    _seed(3)
    model = ZImageTransformer2DModel(dim=64, n_layers=2, n_refiner_layers=1, n_heads=2, n_kv_heads=2,
                                     cap_feat_dim=CAPTION, axes_dims=[8, 12, 12], axes_lens=[1536, 512, 512])
    # the pad tokens start at zero; random ones make a test see whether padding is read
    with torch.no_grad():
        model.x_pad_token.normal_()
        model.cap_pad_token.normal_()
    return model.bfloat16().float().eval()


def text_encoder(width: int = CAPTION, layers: int = 28, seed: int = 4):
    """A Qwen3 of one 128-wide head (Qwen3's head width, which the shipped config fixes)."""
    from transformers import Qwen3Config, Qwen3Model
    _seed(seed)
    return Qwen3Model(Qwen3Config(vocab_size=300, hidden_size=width, intermediate_size=64, num_hidden_layers=layers,
                                  num_attention_heads=1, num_key_value_heads=1, head_dim=128, rms_norm_eps=1e-6,
                                  rope_theta=1000000.0, max_position_embeddings=1024)).bfloat16().float().eval()


def comfy_transformer(sd: dict) -> dict:
    """diffusers' ZImageTransformer2DModel names -> ComfyUI's (z_image_turbo_bf16.safetensors): q, k, v fused into
    attention.qkv, to_out.0 -> out, norm_q / norm_k -> q_norm / k_norm, the one patch size's embedder and final
    layer without their all_*.2-1 wrapping."""
    out = {}
    for k, v in sd.items():
        m = re.match(r"^(.*)\.attention\.to_q\.weight$", k)
        if m:
            out[f"{m.group(1)}.attention.qkv.weight"] = torch.cat(
                [sd[f"{m.group(1)}.attention.{p}.weight"] for p in ("to_q", "to_k", "to_v")])
            continue
        if re.search(r"\.attention\.(to_k|to_v)\.weight$", k):
            continue
        k = k.replace("all_x_embedder.2-1.", "x_embedder.").replace("all_final_layer.2-1.", "final_layer.")
        k = k.replace(".attention.to_out.0.", ".attention.out.").replace(".attention.norm_q.", ".attention.q_norm.")
        out[k.replace(".attention.norm_k.", ".attention.k_norm.")] = v
    return out


def build_zimage(root: Path) -> Path:
    from diffusers import ZImagePipeline
    from safetensors.torch import save_file
    from nodes.generate.split import scheduler
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    name = "qwen_3_4b_tiny"
    tok = tokenizer(models / "text_encoders" / name, QWEN3_CHAT,
                    ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"))
    _, vae, _, _ = parts(True)
    model, te = transformer(), text_encoder()
    ZImagePipeline(scheduler=scheduler("zimage"), vae=vae, text_encoder=te, tokenizer=copy.deepcopy(tok),
                   transformer=model).save_pretrained(str(root / "diffusers"), safe_serialization=True)
    bf16 = lambda sd: {k: v.bfloat16().contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(bf16(comfy_transformer(model.state_dict())),
              str(models / "diffusion_models" / "z_image_turbo_tiny.safetensors"))
    save_file({k: v.half().contiguous() for k, v in sd_ldm_vae(vae.state_dict(), 4).items()},
              str(models / "vae" / "ae.safetensors"))
    save_file(bf16({"model." + k: v for k, v in te.state_dict().items()}),
              str(models / "text_encoders" / f"{name}.safetensors"))
    return root
