"""A tiny random-weight FLUX.3 [klein] in the layout ComfyUI users hold it (black-forest-labs/flux-3-image-klein-comfy),
the transformer in Black Forest Labs' names written here by inverting diffusers' single-file converter by hand (so the
reference does not go through Kinograph's loading code):

  root/models/diffusion_models/flux3-image-klein-base-tiny-bf16.safetensors  the base model (true CFG), bf16,
                                                             under model.diffusion_model.
  root/models/diffusion_models/flux3-image-klein-tiny-bf16.safetensors       the step-distilled one (ref_time_in)
  root/models/text_encoders/qwen3vl_4b_tiny_fp8_scaled.safetensors  Qwen3-VL as ComfyUI holds it (fp8_scaled), its
                                                             tokenizer in a folder named after it
  root/models/vae/flux2-vae.safetensors                      FLUX.2's VAE (tests/tiny_flux2.py's)
  root/reference/{base,distilled,vae,text_encoder}  the same weights as diffusers / transformers save them

Widths are tiny; the structure is the released model's: 128 latent channels, per-mode blocks then joint ones, four
equal rotary axes, eight of Qwen3-VL's hidden states (4, 8, ..., 32 of its 36 layers) side by side."""
from __future__ import annotations

from pathlib import Path

import torch

from tiny_flux2 import parts as flux2_parts
from tiny_models import _seed, sd_ldm_vae
from tiny_qwen import save_fp8_scaled
from tiny_qwen21 import comfy_text_encoder, processor, text_encoder as qwen3vl
from tiny_krea2 import CHAT

TE_NAME = "qwen3vl_4b_tiny_fp8_scaled"
BASE = "flux3-image-klein-base-tiny-bf16.safetensors"
DISTILLED = "flux3-image-klein-tiny-bf16.safetensors"

EXACT = {"timestep_embedder.linear_1.weight": "time_in.in_layer.weight",
         "timestep_embedder.linear_2.weight": "time_in.out_layer.weight",
         "target_timestep_embedder.linear_1.weight": "ref_time_in.in_layer.weight",
         "target_timestep_embedder.linear_2.weight": "ref_time_in.out_layer.weight",
         "proj_out.weight": "final_layer.image.linear.weight",
         "norm_out.linear.weight": "final_layer.image.adaLN_modulation.1.weight"}
PREFIXES = (("x_embedders.", "emb_in."), ("context_embedder.", "txt_in."), ("mode_blocks.", "content_mode_blocks."),
            ("single_transformer_blocks.", "single_blocks."))
INSIDE = (("attn.to_q.weight", "q_proj.weight"), ("attn.to_k.weight", "k_proj.weight"),
          ("attn.to_v.weight", "v_proj.weight"), ("attn.to_out.0.weight", "attn_out.weight"),
          ("attn.norm_q.weight", "norm.query_norm.scale"), ("attn.norm_k.weight", "norm.key_norm.scale"),
          ("ff.linear_in.weight", "mlp_in.weight"), ("ff.linear_out.weight", "mlp_out.weight"))


def transformer(flow_map: bool):
    from diffusers import Flux3Transformer2DModel
    _seed(11 if flow_map else 10)
    model = Flux3Transformer2DModel(in_channels=128, cond_in_channels=128, num_layers=1, num_single_layers=2,
                                    attention_head_dim=16, num_attention_heads=2, joint_attention_dim=8 * 64,
                                    timestep_channels=32, axes_dims_rope=(4, 4, 4, 4), flow_map=flow_map)
    with torch.no_grad():       # norms start at one: random ones show whether each is read, and from where
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.bfloat16().float().eval()


def comfy_transformer(sd: dict) -> dict:
    """diffusers' Flux3Transformer2DModel names -> Black Forest Labs' / ComfyUI's; the output modulation's halves
    back in their [shift, scale] order."""
    out = {}
    for k, v in sd.items():
        if k in EXACT:
            if k == "norm_out.linear.weight":
                scale, shift = v.chunk(2, dim=0)
                v = torch.cat([shift, scale])
            out["model.diffusion_model." + EXACT[k]] = v
            continue
        for new, old in PREFIXES:
            if k.startswith(new):
                k = old + k[len(new):]
                break
        k = k.replace(".linear.weight", ".lin.weight")
        for new, old in INSIDE:
            if k.endswith(new):
                k = k[:-len(new)] + old
                break
        out["model.diffusion_model." + k] = v
    return out


def reference_processor(root: Path):
    """Qwen3-VL's processor over the file's tokenizer (diffusers' Flux3 pipelines read prompts through one)."""
    proc = processor(root / "reference" / "processor")
    proc.chat_template = proc.tokenizer.chat_template = CHAT
    return proc


def build_flux3(root: Path) -> Path:
    from safetensors.torch import save_file
    models, ref = root / "models", root / "reference"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    bf16 = lambda sd: {k: v.bfloat16().contiguous() for k, v in sd.items()}  # noqa: E731
    for name, flow_map in ((BASE, False), (DISTILLED, True)):
        model = transformer(flow_map)
        save_file(bf16(comfy_transformer(model.state_dict())), str(models / "diffusion_models" / name))
        model.save_pretrained(str(ref / ("distilled" if flow_map else "base")))
    _, vae, _ = flux2_parts()
    ae = {k: v for k, v in vae.state_dict().items() if not k.startswith("bn.")}
    save_file({k: v.contiguous() for k, v in {**sd_ldm_vae(ae, 2), "bn.running_mean": vae.bn.running_mean,
                                               "bn.running_var": vae.bn.running_var}.items()},
              str(models / "vae" / "flux2-vae.safetensors"))
    vae.save_pretrained(str(ref / "vae"))
    _seed(12)
    te = qwen3vl(36).bfloat16().float()       # Qwen3-VL-4B's 36 layers: FLUX.3 reads hidden states up to 32
    save_fp8_scaled(te, comfy_text_encoder(te.state_dict()), models / "text_encoders" / f"{TE_NAME}.safetensors")
    te.save_pretrained(str(ref / "text_encoder"))
    proc = processor(models / "text_encoders" / TE_NAME)
    proc.chat_template = proc.tokenizer.chat_template = CHAT
    proc.tokenizer.save_pretrained(str(models / "text_encoders" / TE_NAME))
    return root
