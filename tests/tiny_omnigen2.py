"""A tiny random-weight OmniGen2 in the layout ComfyUI users hold it (Comfy-Org/Omnigen2_ComfyUI_repackaged,
Comfy-Org/Lumina_Image_2.0_Repackaged's ae), every file under the name ComfyUI's OmniGen2 templates ask for:

  root/models/diffusion_models/omnigen2_fp16.safetensors  the transformer in ComfyUI's names (tests/boogu_reference.py's
                      ComfyBoogu without dual-stream blocks, its single-stream ones under layers.N), fp16
  root/models/text_encoders/qwen_2.5_vl_fp16.safetensors  Qwen2.5-VL as ComfyUI holds it (transformers 4's names,
                      fp16), its tokenizer in a folder named after it
  root/models/vae/ae.safetensors                          FLUX.1's VAE in the LDM names (tests/tiny_flux.py's)
  root/reference/text_encoder, root/reference/vae         what the files read back as, as transformers / diffusers
                                                          save them

Widths are tiny; the structure is the released model's: 16 latent channels in 2x2 patches, grouped keys and values,
one refiner of each kind, heads split in three equal rotary axes, Qwen2.5-VL's 128-wide heads."""
from __future__ import annotations

from pathlib import Path

import torch

from boogu_reference import ComfyBoogu
from tiny_flux import parts as flux_parts
from tiny_models import _seed, sd_ldm_vae
from tiny_qwen import comfy_text_encoder, qwen_tokenizer, text_encoder as qwen25vl

MODEL = "omnigen2_fp16.safetensors"
TE_NAME = "qwen_2.5_vl_fp16"


def transformer() -> ComfyBoogu:
    _seed(40)
    model = ComfyBoogu(in_channels=16, dim=48, layers=2, double=0, refiner=1, heads=2, kv_heads=1, multiple_of=16,
                       axes=(8, 8, 8), text_dim=128, single="layers")
    with torch.no_grad():       # norms start at one: random ones show whether each is read, and from where
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.half().float().eval()        # what the fp16 file reads back as


def build_omnigen2(root: Path) -> Path:
    from safetensors.torch import save_file
    models, ref = root / "models", root / "reference"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    half = lambda sd: {k: v.half().contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(half(transformer().state_dict()), str(models / "diffusion_models" / MODEL))
    _, vae, _, _ = flux_parts(True)
    vae = vae.half().float()
    save_file(half(sd_ldm_vae(vae.state_dict(), 4)), str(models / "vae" / "ae.safetensors"))
    vae.save_pretrained(str(ref / "vae"))
    _seed(41)
    te = qwen25vl().half().float()
    save_file(half(comfy_text_encoder(te)), str(models / "text_encoders" / f"{TE_NAME}.safetensors"))
    te.save_pretrained(str(ref / "text_encoder"))
    qwen_tokenizer(models / "text_encoders" / TE_NAME)
    return root
