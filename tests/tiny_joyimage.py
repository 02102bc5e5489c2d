"""A tiny random-weight JoyImage Edit in the layout ComfyUI users hold it (Comfy-Org/JoyAI-Image-Edit), every file
under the name ComfyUI's template asks for or beside it:

  root/models/diffusion_models/joyai_image_edit_bf16.safetensors          the transformer in ComfyUI's names
                      (diffusers' JoyImageEditTransformer3DModel's, under model.diffusion_model.), bf16;
                      joyai_image_edit_int8_convrot.safetensors the same weights as ComfyUI's int8_convrot
  root/models/text_encoders/qwen3vl_8b_joyimage_tiny_fp8_scaled.safetensors  Qwen3-VL as ComfyUI holds it
                      (fp8_scaled), its tokenizer in a folder named after it
  root/models/vae/wan_2.1_vae.safetensors                                 the Wan 2.1 VAE in its original names
  root/reference/{text_encoder,vae}                                       what the files read back as, saved by
                      transformers / diffusers

Widths are tiny; the structure is the release's: 16 latent channels in 1x2x2 patches, heads split 1/8 : 7/16 : 7/16
into the rotary axes, text as wide as Qwen3-VL's states."""
from __future__ import annotations

from pathlib import Path

import torch

from tiny_models import _seed, wan_original_vae
from tiny_qwen import dequantised, save_fp8_scaled
from tiny_qwen21 import comfy_text_encoder, processor, text_encoder as qwen3vl

TE_NAME = "qwen3vl_8b_joyimage_tiny_fp8_scaled"
BF16 = "joyai_image_edit_bf16.safetensors"
INT8 = "joyai_image_edit_int8_convrot.safetensors"
PREFIX = "model.diffusion_model."
CONFIG = dict(hidden_size=64, num_attention_heads=2, text_dim=64, num_layers=2, rope_dim_list=[4, 14, 14])


def transformer():
    from diffusers import JoyImageEditTransformer3DModel
    _seed(40)
    model = JoyImageEditTransformer3DModel(**CONFIG)
    with torch.no_grad():       # the modulation tables start at zero: random ones show whether each is read
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.bfloat16().float().eval()


def build_joyimage(root: Path) -> Path:
    from diffusers import AutoencoderKLWan
    from safetensors.torch import save_file
    import comfy_convrot as cr
    models, ref = root / "models", root / "reference"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    state = {PREFIX + k: v.bfloat16().contiguous() for k, v in transformer().state_dict().items()}
    save_file(state, str(models / "diffusion_models" / BF16))
    save_file(cr.quantise_file_state(state, 16, prefix=PREFIX + "double_blocks."),
              str(models / "diffusion_models" / INT8))
    _seed(41)
    vae = AutoencoderKLWan(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                           temperal_downsample=[False, True, True]).half().float().eval()
    save_file({k: v.half().contiguous() for k, v in wan_original_vae(vae.state_dict()).items()},
              str(models / "vae" / "wan_2.1_vae.safetensors"))
    vae.save_pretrained(str(ref / "vae"))
    _seed(42)
    te = qwen3vl(2).bfloat16().float()
    save_fp8_scaled(te, comfy_text_encoder(te.state_dict()), models / "text_encoders" / f"{TE_NAME}.safetensors")
    te.save_pretrained(str(ref / "text_encoder"))
    processor(models / "text_encoders" / TE_NAME).tokenizer.save_pretrained(str(models / "text_encoders" / TE_NAME))
    return root


def reference(root: Path, name: str = BF16, plus: bool = False):
    """diffusers' transformer (JoyImageEditPlusTransformer3DModel with plus: references of other sizes) holding what
    the bf16 file reads back as."""
    from diffusers import JoyImageEditPlusTransformer3DModel, JoyImageEditTransformer3DModel
    from safetensors.torch import load_file
    model = (JoyImageEditPlusTransformer3DModel if plus else JoyImageEditTransformer3DModel)(**CONFIG)
    state = dequantised(load_file(str(root / "models" / "diffusion_models" / name)))
    model.load_state_dict({k[len(PREFIX):]: v.float() for k, v in state.items()})
    return model.eval()
