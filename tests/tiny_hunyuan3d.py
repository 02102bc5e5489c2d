"""Tiny random-weight Hunyuan3D checkpoints in ComfyUI's single-file layout (the transformer under model., the
ShapeVAE under vae., DINOv2 under conditioner.main_image_encoder.model. in transformers' names), built from
tests/hunyuan3d_reference.py's modules (ComfyUI's code) and transformers' Dinov2Model:

  root/models/checkpoints/hy3d20_tiny.safetensors     2.0 (guidance input, as the mv turbo's), DINOv2 with SwiGLU
  root/models/checkpoints/hy3d21_tiny.safetensors     2.1 (a U-shaped DiT with an expert layer), DINOv2 plain

The latent keeps its 64 channels; DINOv2 reads 28 x 28 pictures (2 x 2 patches of 14) 64 wide (one head)."""
from __future__ import annotations

from pathlib import Path

import torch

import hunyuan3d_reference as ref

V20, V21 = "hy3d20_tiny.safetensors", "hy3d21_tiny.safetensors"
DINO_WIDTH, DINO_SIDE = 64, 28


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():       # norms start at one and biases at zero: random ones show each is read
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model.eval()


def dino(swiglu: bool, seed: int):
    from transformers import Dinov2Config, Dinov2Model
    cfg = Dinov2Config(hidden_size=DINO_WIDTH, num_hidden_layers=2, num_attention_heads=1, mlp_ratio=4,
                       image_size=DINO_SIDE, patch_size=14, use_swiglu_ffn=swiglu, layerscale_value=1.0,
                       layer_norm_eps=1e-6, qkv_bias=True)
    return randomised(Dinov2Model(cfg), seed)


def published(state):
    """transformers 5's Dinov2Model tensors in the names the checkpoints hold them (transformers 4's, which ComfyUI's
    comfy/image_encoders/dino2.py reads): attention.attention.query / key / value, attention.output.dense, SwiGLU's
    weights_in (gate then up, one matrix) and weights_out."""
    out = {}
    for k, v in state.items():
        if ".mlp.up_proj." in k:
            continue
        if ".mlp.gate_proj." in k:
            out[k.replace(".gate_proj.", ".weights_in.")] = torch.cat([v, state[k.replace(".gate_proj.", ".up_proj.")]])
            continue
        for new, old in ((".attention.q_proj.", ".attention.attention.query."),
                         (".attention.k_proj.", ".attention.attention.key."),
                         (".attention.v_proj.", ".attention.attention.value."),
                         (".attention.o_proj.", ".attention.output.dense."), (".mlp.down_proj.", ".mlp.weights_out.")):
            k = k.replace(new, old)
        out[k] = v
    return out


def parts(version: str):
    """(transformer, ShapeVAE, DINOv2) of ComfyUI's classes for a tiny checkpoint of `version`."""
    if version == "2.0":
        dit = ref.Hunyuan3Dv2(in_channels=64, context_in_dim=DINO_WIDTH, hidden_size=32, num_heads=4, depth=2,
                              depth_single_blocks=1, guidance_embed=True)
    else:
        dit = ref.HunYuanDiTPlain(in_channels=64, hidden_size=32, context_dim=DINO_WIDTH, depth=3, num_heads=4,
                                  num_moe_layers=1, num_experts=2)
    vae = ref.ShapeVAE(embed_dim=64, width=32, heads=4, num_decoder_layers=1)
    seed = 10 if version == "2.0" else 20
    vae = randomised(vae, seed + 1)
    with torch.no_grad():       # logits about 0.4: the grid, (l + 1) / 2, either side of VoxelToMesh's 0.6
        vae.geo_decoder.output_proj.bias.fill_(0.4)
    return randomised(dit, seed), vae, dino(version == "2.0", seed + 2)


def build(root: Path) -> Path:
    from safetensors.torch import save_file
    folder = root / "models" / "checkpoints"
    folder.mkdir(parents=True)
    for version, name in (("2.0", V20), ("2.1", V21)):
        dit, vae, enc = parts(version)
        state = {**{"model." + k: v for k, v in dit.state_dict().items()},
                 **{"vae." + k: v for k, v in vae.state_dict().items()},
                 **{"conditioner.main_image_encoder.model." + k: v for k, v in published(enc.state_dict()).items()}}
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / name))
    return root
