"""A tiny random-weight Ovis-Image as ComfyUI users hold it (Comfy-Org/Ovis-Image's split_files), and the same weights
in diffusers' OvisImagePipeline (the reference, built in memory from the modules, not from the files):

  root/models/diffusion_models/ovis_image_tiny_bf16.safetensors   Black Forest Labs' names as ComfyUI's Flux model has
      them for Ovis (double_blocks.N.img_mlp.gate_proj / up_proj / down_proj, txt_norm.scale, single_blocks.N.linear1
      with the gated MLP's two halves; no vector_in, no guidance_in), written here from diffusers' names by
      tests/tiny_flux.py's inverse of diffusers' FLUX.1 converter and the gated layers split by hand, bf16 values
  root/models/text_encoders/ovis_2.5_tiny.safetensors             Ovis 2.5's Qwen3 in transformers' names
      (model.layers.*); its Qwen3 tokenizer (chat template with thinking off) in a folder named after it
  root/models/vae/ae.safetensors                                  FLUX.1's VAE in the LDM names (tests/tiny_flux.py's)

Widths are tiny; the structure is the released model's: 64 input channels (16 latent channels in 2x2 patches), gated
feed-forwards four times as wide as the blocks, 32-wide heads split 4/14/14 as the released 128 are 16/56/56, Qwen3's
128-wide heads and 28 layers (FLUX.2 [klein], which reads a Qwen3 given type auto, reads layers 9, 18 and 27)."""
from __future__ import annotations

from pathlib import Path

import torch

from tiny_flux import bfl_transformer
from tiny_flux import parts as flux_parts
from tiny_flux2 import QWEN3_CHAT, tokenizer
from tiny_models import _seed, sd_ldm_vae
from tiny_zimage import CAPTION as TEXT, text_encoder

SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")


def transformer():
    from diffusers import OvisImageTransformer2DModel
    _seed(9)
    model = OvisImageTransformer2DModel(patch_size=1, in_channels=64, out_channels=64, num_layers=1, num_single_layers=2,
                                        attention_head_dim=32, num_attention_heads=2, joint_attention_dim=TEXT,
                                        axes_dims_rope=(4, 14, 14))
    with torch.no_grad():           # the text norm starts at ones; random ones make a test see whether it is read
        model.context_embedder_norm.weight.normal_()
    return model.bfloat16().float().eval()


def encoder():
    """Ovis 2.5's Qwen3 at Z-Image's tiny Qwen3's sizes (tests/tiny_zimage.py): the same structure, 2048 wide released."""
    return text_encoder()


def comfy_transformer(sd: dict) -> dict:
    """diffusers' OvisImageTransformer2DModel names -> ComfyUI's file's: FLUX.1's BFL names, then each double block's
    SwiGLU projection (values, gates) split into up_proj and gate_proj, its output layer as down_proj."""
    flux = {("time_text_embed." + k if k.startswith("timestep_embedder.") else k): v for k, v in sd.items()
            if k != "context_embedder_norm.weight"}
    out = {"txt_norm.scale": sd["context_embedder_norm.weight"]}
    for k, v in bfl_transformer(flux).items():
        block, sep, rest = k.partition("_mlp.")
        if not (sep and block.startswith("double_blocks.")):
            out[k] = v
        elif rest.startswith("0."):
            up, gate = v.chunk(2)
            out[f"{block}_mlp.up_proj.{rest[2:]}"], out[f"{block}_mlp.gate_proj.{rest[2:]}"] = up, gate
        else:
            out[f"{block}_mlp.down_proj.{rest[2:]}"] = v
    return out


def build_ovis(root: Path) -> Path:
    from safetensors.torch import save_file
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    tokenizer(models / "text_encoders" / "ovis_2.5_tiny", QWEN3_CHAT, SPECIAL)
    _, vae, _, _ = flux_parts(True)
    bf16 = lambda sd: {k: v.bfloat16().contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(bf16(comfy_transformer(transformer().state_dict())),
              str(models / "diffusion_models" / "ovis_image_tiny_bf16.safetensors"))
    save_file(bf16({"model." + k: v for k, v in encoder().state_dict().items()}),
              str(models / "text_encoders" / "ovis_2.5_tiny.safetensors"))
    save_file({k: v.half().contiguous() for k, v in sd_ldm_vae(vae.state_dict(), 4).items()},
              str(models / "vae" / "ae.safetensors"))
    return root


def reference(root: Path, scheduler=None):
    """diffusers' OvisImagePipeline on the same weights, from the modules; its scheduler the shipped one unless
    given."""
    from diffusers import OvisImagePipeline
    from transformers import AutoTokenizer
    from nodes.generate.split import scheduler as shipped
    _, vae, _, _ = flux_parts(True)
    return OvisImagePipeline(scheduler=scheduler or shipped("ovis"), vae=vae, text_encoder=encoder(),
                             tokenizer=AutoTokenizer.from_pretrained(str(root / "models" / "text_encoders" / "ovis_2.5_tiny")),
                             transformer=transformer())
