"""A tiny random-weight FIBO 2 in the files ComfyUI's image_fibo2_edit_* templates ask for (Comfy-Org/Fibo-2.0):

  root/models/diffusion_models/fibo2_tiny_bf16.safetensors          the transformer in diffusers' names
                      (BriaFibo2Transformer2DModel's) under model.diffusion_model., bf16;
                      fibo2_tiny_int8_convrot.safetensors the same weights as ComfyUI's int8_convrot
  root/models/text_encoders/qwen3vl_4b_bf16.safetensors             Qwen3-VL as ComfyUI holds it (the language model
                      as model.*, the vision tower as visual.*), bf16, its tokenizer in the folder named after it
  root/models/text_encoders/qwen3vl_pe_tiny_bf16.safetensors         a smaller Qwen3-VL (2 layers) for the prompt
                      enhancer's text generation, its tokenizer beside it
  root/models/vae/flux2-vae.safetensors                             FLUX.2's VAE (8x, four blocks) in the LDM names
                      with its batch norm
  root/reference/{text_encoder,vae}                                 what the files read back as, saved by
                      transformers / diffusers

Widths are tiny; the structure is the release's: 32 latent channels in 2x2 patches, Qwen3-VL with the 36 layers whose
hidden states FIBO 2 reads, the Perceiver's 512 gist queries and its 256..512 gist schedule, heads split 1/4 : 3/8 :
3/8 into the rotary axes, five injection blocks (not every block one: layer 4 reads no text)."""
from __future__ import annotations

from pathlib import Path

import torch

from tiny_models import _seed
from tiny_qwen21 import comfy_text_encoder, processor, text_encoder as qwen3vl

BF16 = "fibo2_tiny_bf16.safetensors"
INT8 = "fibo2_tiny_int8_convrot.safetensors"
TE_NAME = "qwen3vl_4b_bf16"
PE_NAME = "qwen3vl_pe_tiny_bf16"
PREFIX = "model.diffusion_model."
CONFIG = dict(in_channels=32, dim=64, n_layers=6, n_refiner_layers=1, n_heads=2, cap_feat_dim=3 * 64,
              injection_layer_ids=(0, 1, 2, 3, 5), perceiver_num_layers=1, axes_dims=(8, 12, 12))


def transformer():
    from diffusers import BriaFibo2Transformer2DModel
    _seed(50)
    model = BriaFibo2Transformer2DModel(**CONFIG)
    with torch.no_grad():       # the cross-attention gates start at zero: random ones show whether each is read
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.bfloat16().float().eval()


def flux2_vae():
    from diffusers import AutoencoderKLFlux2
    _seed(51)
    vae = AutoencoderKLFlux2(block_out_channels=(32, 32, 32, 32), layers_per_block=2, latent_channels=32,
                             norm_num_groups=32, down_block_types=["DownEncoderBlock2D"] * 4,
                             up_block_types=["UpDecoderBlock2D"] * 4)
    vae.bn.running_mean.copy_(torch.randn(128) * 0.1)
    vae.bn.running_var.copy_(torch.rand(128) + 0.5)
    return vae.bfloat16().float().eval()


def build_fibo2(root: Path) -> Path:
    from safetensors.torch import save_file
    import comfy_convrot as cr
    from tiny_flux2 import save_vae
    models, ref = root / "models", root / "reference"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    state = {PREFIX + k: v.bfloat16().contiguous() for k, v in transformer().state_dict().items()}
    save_file(state, str(models / "diffusion_models" / BF16))
    save_file(cr.quantise_file_state(state, 16, prefix=PREFIX + "layers."), str(models / "diffusion_models" / INT8))
    vae = flux2_vae()
    save_vae(vae, models / "vae" / "flux2-vae.safetensors", 4)
    vae.save_pretrained(str(ref / "vae"))
    _seed(52)
    te = qwen3vl(36).bfloat16().float()
    save_file({k: v.bfloat16().contiguous() for k, v in comfy_text_encoder(te.state_dict()).items()},
              str(models / "text_encoders" / f"{TE_NAME}.safetensors"))
    te.save_pretrained(str(ref / "text_encoder"))
    _seed(53)
    pe = qwen3vl(2).bfloat16()
    save_file({k: v.contiguous() for k, v in comfy_text_encoder(pe.state_dict()).items()},
              str(models / "text_encoders" / f"{PE_NAME}.safetensors"))
    for name in (TE_NAME, PE_NAME):
        processor(models / "text_encoders" / name).tokenizer.save_pretrained(str(models / "text_encoders" / name))
    return root


def reference(root: Path):
    """diffusers' transformer holding what the bf16 file reads back as."""
    from diffusers import BriaFibo2Transformer2DModel
    from safetensors.torch import load_file
    model = BriaFibo2Transformer2DModel(**CONFIG)
    model.load_state_dict({k[len(PREFIX):]: v.float() for k, v in load_file(str(root / "models" / "diffusion_models"
                                                                                 / BF16)).items()})
    return model.eval()
