"""A tiny random-weight Anima in ComfyUI's file layout (circlestone-labs/Anima's split_files), the DiT in the released
MiniTrainDIT names (written here by inverting diffusers' Cosmos converter by hand, from comfy/ldm/cosmos/predict2.py's
module names, so the reference does not go through Kinograph's loading code), the LLM adapter in
comfy/ldm/anima/model.py's:

  root/models/diffusion_models/anima-tiny.safetensors    net.x_embedder.proj.1, net.blocks.N.self_attn.q_proj, ...,
                                                          net.llm_adapter.*, bf16 values
  root/models/text_encoders/qwen_3_06b_tiny.safetensors   Qwen3 in transformers' names (model.layers.*), its tokenizer
                                                          (Qwen2's, byte-level) in a folder named after it, T5's
                                                          (character-level, </s> appended) in t5_tokenizer/ beside it
  root/models/vae/qwen_image_vae.safetensors              Qwen-Image's VAE in the Wan 2.1 VAE's original names
  root/reference/                                         the DiT as diffusers' CosmosTransformer3DModel, the adapter's
                                                          and Qwen3's tensors, for the tests' reference

Widths are tiny; the structure is the released model's: 16 latent channels in 2x2 patches plus the padding-mask
channel, adaptive norms with LoRA-style time modulation, 24-wide heads split 8/8/8 for the rotary axes (the released
128 split 44/42/42 by the same rule), rotary extrapolation 4 in height and width; the adapter's six blocks of
self-attention, cross-attention to Qwen3 and a GELU MLP."""
from __future__ import annotations

from pathlib import Path

import torch

from tiny_models import _seed, t5_tokenizer, wan_original_vae
from tiny_qwen import parts as qwen_parts, qwen_tokenizer
from tiny_zimage import text_encoder

TE_NAME = "qwen_3_06b_tiny"
DIT_NAME = "anima-tiny.safetensors"
QWEN = 1024                 # Qwen3-0.6B's hidden width, which tells it (two layers of one head here)
TEXT = 32                   # the adapter's width, what the DiT's cross-attention reads (1024 released)
T5_VOCAB = 200              # the adapter's T5 vocabulary (32128 released); the tiny T5 tokenizer's ids are below it

# diffusers' CosmosTransformer3DModel names -> the released MiniTrainDIT's (comfy/ldm/cosmos/predict2.py)
RENAMES = (("patch_embed.proj.", "x_embedder.proj.1."), ("time_embed.t_embedder.", "t_embedder.1."),
           ("time_embed.norm.", "t_embedding_norm."), ("transformer_blocks.", "blocks."),
           ("norm1.linear_1.", "adaln_modulation_self_attn.1."), ("norm1.linear_2.", "adaln_modulation_self_attn.2."),
           ("norm2.linear_1.", "adaln_modulation_cross_attn.1."), ("norm2.linear_2.", "adaln_modulation_cross_attn.2."),
           ("norm3.linear_1.", "adaln_modulation_mlp.1."), ("norm3.linear_2.", "adaln_modulation_mlp.2."),
           ("attn1.", "self_attn."), ("attn2.", "cross_attn."), ("to_q.", "q_proj."), ("to_k.", "k_proj."),
           ("to_v.", "v_proj."), ("to_out.0.", "output_proj."), ("norm_q.", "q_norm."), ("norm_k.", "k_norm."),
           ("ff.net.0.proj.", "mlp.layer1."), ("ff.net.2.", "mlp.layer2."),
           ("norm_out.linear_1.", "final_layer.adaln_modulation.1."),
           ("norm_out.linear_2.", "final_layer.adaln_modulation.2."), ("proj_out.", "final_layer.linear."))


def dit():
    from diffusers import CosmosTransformer3DModel
    _seed(11)
    # the padding mask's channel as a 17th input channel (diffusers resizes a padding mask with torchvision)
    model = CosmosTransformer3DModel(in_channels=17, out_channels=16, num_attention_heads=2, attention_head_dim=24,
                                     num_layers=2, mlp_ratio=4.0, text_embed_dim=TEXT, adaln_lora_dim=16,
                                     max_size=(128, 240, 240), patch_size=(1, 2, 2), rope_scale=(1.0, 4.0, 4.0),
                                     concat_padding_mask=False, extra_pos_embed_type=None)
    with torch.no_grad():           # diffusers zero-initialises nothing here, but scale the gates up so blocks matter
        for p in model.parameters():
            p.normal_(0, 0.2) if p.ndim > 1 else p.normal_(1.0, 0.1)
    return model.bfloat16().float().eval()


def comfy_dit(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        for a, b in RENAMES:
            k = k.replace(a, b)
        out[k] = v
    # the released files carry the rotary embedder's buffers, which diffusers computes itself
    out["pos_embedder.dim_spatial_range"] = torch.arange(0, 8, 2).float() / 8
    out["pos_embedder.dim_temporal_range"] = torch.arange(0, 8, 2).float() / 8
    return out


def adapter_state(layers: int = 6, heads: int = 2) -> dict:
    """The LLM adapter's tensors in comfy/ldm/anima/model.py's names (source QWEN, model and target TEXT wide)."""
    _seed(12)
    g = lambda *s: torch.randn(*s) * 0.3  # noqa: E731
    sd = {"embed.weight": g(T5_VOCAB, TEXT), "out_proj.weight": g(TEXT, TEXT), "out_proj.bias": g(TEXT),
          "norm.weight": 1 + g(TEXT)}
    head = TEXT // heads
    for i in range(layers):
        b = f"blocks.{i}."
        for attn, source in (("self_attn", TEXT), ("cross_attn", QWEN)):
            sd.update({f"{b}{attn}.q_proj.weight": g(TEXT, TEXT), f"{b}{attn}.q_norm.weight": 1 + g(head),
                       f"{b}{attn}.k_proj.weight": g(TEXT, source), f"{b}{attn}.k_norm.weight": 1 + g(head),
                       f"{b}{attn}.v_proj.weight": g(TEXT, source), f"{b}{attn}.o_proj.weight": g(TEXT, TEXT)})
        for norm in ("norm_self_attn", "norm_cross_attn", "norm_mlp"):
            sd[f"{b}{norm}.weight"] = 1 + g(TEXT)
        sd.update({f"{b}mlp.0.weight": g(4 * TEXT, TEXT), f"{b}mlp.0.bias": g(4 * TEXT),
                   f"{b}mlp.2.weight": g(TEXT, 4 * TEXT), f"{b}mlp.2.bias": g(TEXT)})
    return {k: v.bfloat16().float() for k, v in sd.items()}


def build_anima(root: Path) -> Path:
    from safetensors.torch import save_file
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    qwen_tokenizer(models / "text_encoders" / TE_NAME)
    t5_tokenizer(models / "text_encoders" / "t5_tokenizer")
    _, vae, _ = qwen_parts()
    model, adapter, te = dit(), adapter_state(), text_encoder(QWEN, 2, 13)
    bf16 = lambda sd: {k: v.bfloat16().contiguous() for k, v in sd.items()}  # noqa: E731
    state = {**comfy_dit(model.state_dict()), **{f"llm_adapter.{k}": v for k, v in adapter.items()}}
    save_file(bf16({f"net.{k}": v for k, v in state.items()}), str(models / "diffusion_models" / DIT_NAME))
    save_file(bf16({"model." + k: v for k, v in te.state_dict().items()}),
              str(models / "text_encoders" / f"{TE_NAME}.safetensors"))
    save_file(bf16(wan_original_vae(vae.state_dict())), str(models / "vae" / "qwen_image_vae.safetensors"))
    ref = root / "reference"
    model.save_pretrained(str(ref / "dit"))
    te.save_pretrained(str(ref / "text_encoder"))
    save_file(adapter, str(ref / "adapter.safetensors"))
    return root


def reference_parts(root: Path):
    """(the DiT, the adapter's tensors, Qwen3) as built, for a reference that shares no code with Kinograph's."""
    from diffusers import CosmosTransformer3DModel
    from safetensors.torch import load_file
    from transformers import Qwen3Model
    ref = root / "reference"
    return (CosmosTransformer3DModel.from_pretrained(str(ref / "dit")).eval(), load_file(str(ref / "adapter.safetensors")),
            Qwen3Model.from_pretrained(str(ref / "text_encoder")).eval())



def released_names(root: Path) -> Path:
    """root/models with the tiny DiT and Qwen3 also under the released names ComfyUI's templates load
    (anima-base-v1.0, qwen_3_06b_base and its tokenizer folder), and a model_patches/ folder; returns models/."""
    from comfy_layouts import link_as
    models = root / "models"
    link_as(models / "diffusion_models" / "anima-base-v1.0.safetensors", models / "diffusion_models" / DIT_NAME)
    link_as(models / "text_encoders" / "qwen_3_06b_base.safetensors", models / "text_encoders" / f"{TE_NAME}.safetensors")
    if not (models / "text_encoders" / "qwen_3_06b_base").exists():
        link_as(models / "text_encoders" / "qwen_3_06b_base", models / "text_encoders" / TE_NAME)
    (models / "model_patches").mkdir(exist_ok=True)
    return models
