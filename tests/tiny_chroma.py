"""A tiny random-weight Chroma in the layouts users hold it: a diffusers ChromaPipeline folder, and ComfyUI's split
files, the transformer in the original names (written here by inverting diffusers' converter by hand, so the reference
does not go through Kinograph's loading code):

  root/diffusers/                                      ChromaPipeline, the shipped Chroma scheduler
  root/models/diffusion_models/chroma-tiny.safetensors the original names (double_blocks, distilled_guidance_layer)
  root/models/vae/ae.safetensors                       FLUX.1's VAE in the LDM names (tests/tiny_flux.py's)
  root/models/text_encoders/t5xxl_fp16.safetensors     T5's encoder (its tokenizer in a folder named after it)

Widths are tiny but the structure is the released model's: 64 input channels (16 latent x 2x2 patches), two double
and two single blocks, 32-wide heads, a two-layer modulation network."""
from __future__ import annotations

import copy
from pathlib import Path

from tiny_flux import AXES, HEAD, bfl_transformer, parts
from tiny_models import _seed, sd_ldm_vae, t5_tokenizer


def transformer():
    from diffusers import ChromaTransformer2DModel
    _seed(1)
    model = ChromaTransformer2DModel(in_channels=64, num_layers=2, num_single_layers=2, attention_head_dim=HEAD,
                                     num_attention_heads=2, joint_attention_dim=32, axes_dims_rope=AXES,
                                     approximator_num_channels=16, approximator_hidden_dim=32, approximator_layers=2)
    return model.half().float()


def original_transformer(sd: dict) -> dict:
    """diffusers' ChromaTransformer2DModel names -> the released files' (Chroma1-HD.safetensors): FLUX.1's blocks
    without their modulations (tiny_flux.bfl_transformer names them), and the one network that gives every block its
    modulation, distilled_guidance_layer (linear_1/2 -> in_layer/out_layer, norm weights -> scale)."""
    guide = "distilled_guidance_layer."
    out = bfl_transformer({k: v for k, v in sd.items() if not k.startswith(guide)})
    for k, v in sd.items():
        if k.startswith(guide):
            name = k.replace(".linear_1.", ".in_layer.").replace(".linear_2.", ".out_layer.")
            out[name[:-len("weight")] + "scale" if ".norms." in k else name] = v
    return out


def build_chroma(root: Path) -> Path:
    from diffusers import ChromaPipeline
    from safetensors.torch import save_file
    from nodes.generate.split import scheduler
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    tok = t5_tokenizer(models / "text_encoders" / "t5xxl_fp16")
    _, vae, _, t5 = parts(True)
    model = transformer()
    ChromaPipeline(scheduler=scheduler("chroma"), vae=vae, text_encoder=t5, tokenizer=copy.deepcopy(tok),
                   transformer=model).save_pretrained(str(root / "diffusers"), safe_serialization=True)
    half = lambda sd: {k: v.half().contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(half(original_transformer(model.state_dict())), str(models / "diffusion_models" / "chroma-tiny.safetensors"))
    save_file(half(sd_ldm_vae(vae.state_dict(), 4)), str(models / "vae" / "ae.safetensors"))
    save_file(half({k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}),
              str(models / "text_encoders" / "t5xxl_fp16.safetensors"))
    return root
