"""A tiny random-weight Boogu-Image 0.1 in the layout ComfyUI users hold it (Comfy-Org/Boogu-Image, Comfy-Org/
HiDream-I1_ComfyUI's ae), every file under the name ComfyUI's Boogu templates ask for:

  root/models/diffusion_models/boogu_image_turbo_fp8_scaled.safetensors  the transformer in ComfyUI's names
                      (tests/boogu_reference.py's), fp8_scaled; boogu_image_edit_fp8_scaled.safetensors another one
  root/models/text_encoders/qwen3vl_8b_fp8_scaled.safetensors  Qwen3-VL as ComfyUI holds it (fp8_scaled), its
                      tokenizer in a folder named after it
  root/models/vae/ae.safetensors                              FLUX.1's VAE in the LDM names (tests/tiny_flux.py's)
  root/reference/text_encoder                                 the Qwen3-VL as transformers saves it

The references (ComfyBoogu modules) hold what the fp8_scaled files read back as. Widths are tiny; the structure is the
released model's: 16 latent channels in 2x2 patches, grouped keys and values, one refiner of each kind, dual-stream
blocks before single-stream ones, heads split in three equal rotary axes."""
from __future__ import annotations

from pathlib import Path

import torch

from boogu_reference import ComfyBoogu
from comfy_layouts import fp8_scaled
from tiny_flux import parts as flux_parts
from tiny_models import _seed, sd_ldm_vae
from tiny_qwen import dequantised, save_fp8_scaled
from tiny_qwen21 import comfy_text_encoder, processor, text_encoder as qwen3vl

TE_NAME = "qwen3vl_8b_fp8_scaled"
TURBO = "boogu_image_turbo_fp8_scaled.safetensors"
EDIT = "boogu_image_edit_fp8_scaled.safetensors"
PREFIX = "model.diffusion_model."


def transformer(seed: int) -> ComfyBoogu:
    _seed(seed)
    model = ComfyBoogu(in_channels=16, dim=48, layers=2, double=1, refiner=1, heads=2, kv_heads=1, multiple_of=16,
                       axes=(8, 8, 8), text_dim=64)
    with torch.no_grad():       # norms start at one: random ones show whether each is read, and from where
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def save_transformer(model: ComfyBoogu, path: Path) -> None:
    """ComfyUI's fp8_scaled file: the block matrices float8 with their scales, the rest bf16."""
    from safetensors.torch import save_file
    fp8 = fp8_scaled({PREFIX + k: v.bfloat16() for k, v in model.state_dict().items()})
    save_file({k: v.contiguous() for k, v in fp8.items()}, str(path))


def build_boogu(root: Path) -> Path:
    from safetensors.torch import save_file
    models, ref = root / "models", root / "reference"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    for name, seed in ((TURBO, 30), (EDIT, 31)):
        save_transformer(transformer(seed), models / "diffusion_models" / name)
    _, vae, _, _ = flux_parts(True)
    vae = vae.half().float()        # what the fp16 file reads back as
    save_file({k: v.half().contiguous() for k, v in sd_ldm_vae(vae.state_dict(), 4).items()},
              str(models / "vae" / "ae.safetensors"))
    vae.save_pretrained(str(ref / "vae"))
    _seed(32)
    te = qwen3vl(2).bfloat16().float()
    save_fp8_scaled(te, comfy_text_encoder(te.state_dict()), models / "text_encoders" / f"{TE_NAME}.safetensors")
    te.save_pretrained(str(ref / "text_encoder"))
    processor(models / "text_encoders" / TE_NAME).tokenizer.save_pretrained(str(models / "text_encoders" / TE_NAME))
    return root


def reference(root: Path, name: str) -> ComfyBoogu:
    """The reference transformer holding what the file `name` reads back as."""
    from safetensors.torch import load_file
    model = transformer(30 if name == TURBO else 31)
    state = dequantised(load_file(str(root / "models" / "diffusion_models" / name)))
    model.load_state_dict({k[len(PREFIX):]: v.float() for k, v in state.items() if k.startswith(PREFIX)})
    return model
