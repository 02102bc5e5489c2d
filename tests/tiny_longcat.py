"""A tiny random-weight LongCat-Image as ComfyUI users hold it (Comfy-Org/LongCat-Image's split_files), and the same
weights in diffusers' LongCatImagePipeline (the reference, built in memory from the modules, not from the files):

  root/models/diffusion_models/longcat_image_tiny_bf16.safetensors   Black Forest Labs' names (ComfyUI's Flux model's:
      double_blocks, single_blocks, img_in, txt_in, time_in, final_layer; no vector_in, no guidance_in), written here
      from diffusers' names by tests/tiny_flux.py's inverse of diffusers' FLUX.1 converter, bf16 values
  root/models/text_encoders/qwen_2.5_vl_tiny_bf16.safetensors        Qwen2.5-VL in ComfyUI's (transformers 4's) names,
      its vision tower as visual.*; its tokenizer where a ComfyUI install bundles it (root/comfy/text_encoders/...)
  root/models/vae/ae.safetensors                                     FLUX.1's VAE in the LDM names (tests/tiny_flux.py's)

Widths are tiny; the structure is the released model's: 64 input channels (16 latent channels in 2x2 patches), 32-wide
heads split 4/14/14 for the rotary axes as the released 128 are 16/56/56, Qwen2.5-VL's 128-wide heads."""
from __future__ import annotations

from pathlib import Path

from tiny_flux import bfl_transformer
from tiny_flux import parts as flux_parts
from tiny_models import _seed, sd_ldm_vae
from tiny_qwen import comfy_text_encoder, qwen_tokenizer, text_encoder

TEXT = 128                  # Qwen2.5-VL's width here (the released 7B's is 3584)


def transformer():
    from diffusers import LongCatImageTransformer2DModel
    _seed(7)
    model = LongCatImageTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=2,
                                           attention_head_dim=32, num_attention_heads=2, joint_attention_dim=TEXT,
                                           pooled_projection_dim=TEXT, axes_dims_rope=[4, 14, 14])
    return model.bfloat16().float().eval()


def encoder():
    _seed(8)
    return text_encoder().bfloat16().float().eval()


def comfy_transformer(sd: dict) -> dict:
    """diffusers' LongCatImageTransformer2DModel names -> ComfyUI's file's: FLUX.1's BFL names, the time embedder
    named as FLUX.1's."""
    return bfl_transformer({k.replace("time_embed.", "time_text_embed."): v for k, v in sd.items()})


def build_longcat(root: Path) -> Path:
    from safetensors.torch import save_file
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    qwen_tokenizer(root / "comfy" / "text_encoders" / "qwen25_tokenizer")
    _, vae, _, _ = flux_parts(True)
    bf16 = lambda sd: {k: v.bfloat16().contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(bf16(comfy_transformer(transformer().state_dict())),
              str(models / "diffusion_models" / "longcat_image_tiny_bf16.safetensors"))
    save_file(bf16(comfy_text_encoder(encoder())), str(models / "text_encoders" / "qwen_2.5_vl_tiny_bf16.safetensors"))
    save_file({k: v.half().contiguous() for k, v in sd_ldm_vae(vae.state_dict(), 4).items()},
              str(models / "vae" / "ae.safetensors"))
    return root


def reference(root: Path, edit: bool = False, scheduler=None):
    """diffusers' LongCatImagePipeline (or LongCatImageEditPipeline, with Qwen2.5-VL's released image processor) on the
    same weights, from the modules; its scheduler the shipped one unless given."""
    import diffusers
    from nodes.generate.split import scheduler as shipped
    from tiny_qwen import edit_processor
    _, vae, _, _ = flux_parts(True)
    cls = diffusers.LongCatImageEditPipeline if edit else diffusers.LongCatImagePipeline
    tok = qwen_tokenizer(root / "comfy" / "text_encoders" / "qwen25_tokenizer")
    return cls(scheduler=scheduler or shipped("longcat"), vae=vae, text_encoder=encoder(), tokenizer=tok,
               text_processor=edit_processor(tok) if edit else None, transformer=transformer())
