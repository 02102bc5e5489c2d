"""A tiny random-weight Mage-Flow in the files ComfyUI's image_mage_flow_* templates ask for (Comfy-Org/Mage-Flow):

  root/models/diffusion_models/mage_flow_tiny_bf16.safetensors        the transformer in ComfyUI's names under
                      model.diffusion_model., bf16; mage_flow_tiny_int8_convrot.safetensors the same weights as
                      ComfyUI's int8_convrot
  root/models/text_encoders/qwen3vl_4b_bf16.safetensors               Qwen3-VL as ComfyUI holds it (the language
                      model as model.*, the vision tower as visual.*), bf16, its tokenizer in the folder named after it
  root/models/vae/mage_flow_vae_bf16.safetensors                      the Mage VAE in the file's names (the encoder
                      under student.dconv_encoder., the decoder under pipeline., and a FLUX.2 anchor encoder tensor
                      under pipeline.y_embedder.encoder. that is not read), bf16
  root/reference/text_encoder                                         what the text encoder file reads back as,
                      saved by transformers

The tensors are made from a seed, in the published names and shapes, by plain torch (no Kinograph module): widths
are tiny; the structure is the release's: 128 latent channels, 16-pixel patches, heads split 1/8 : 7/16 : 7/16 into
the rotary axes, group norms of 32 groups."""
from __future__ import annotations

from pathlib import Path

import torch

from tiny_models import _seed
from tiny_qwen21 import comfy_text_encoder, processor, text_encoder as qwen3vl

BF16 = "mage_flow_tiny_bf16.safetensors"
INT8 = "mage_flow_tiny_int8_convrot.safetensors"
TE_NAME = "qwen3vl_4b_bf16"
VAE = "mage_flow_vae_bf16.safetensors"
PREFIX = "model.diffusion_model."
C, DIM, HEAD, TEXT, LAYERS = 128, 64, 32, 64, 2           # latent channels, width, head width, text width, blocks
V, VX, FFN = 32, 8, 64                                    # the VAE's width, its pixel MLP's width, DiCo's FFN


def _rand(shapes: dict, scale: float = 0.1) -> dict:
    out = {}
    for k, s in shapes.items():
        if k.endswith(("norm.weight", "norm_q.weight", "norm_k.weight", "norm_added_q.weight", "norm_added_k.weight",
                       "norm1.weight", "norm2.weight", "norm_out.weight", "in_ln.weight", "txt_norm.weight")):
            out[k] = 1 + torch.randn(s) * scale        # norms near one
        else:
            out[k] = torch.randn(s) * scale
    return {k: v.bfloat16() for k, v in out.items()}


def transformer_shapes() -> dict:
    lin = lambda o, i: {"weight": (o, i), "bias": (o,)}     # noqa: E731
    shapes = {}

    def put(name, o, i):
        for k, s in lin(o, i).items():
            shapes[f"{name}.{k}"] = s
    put("img_in", DIM, C)
    put("txt_in", DIM, TEXT)
    shapes["txt_norm.weight"] = (TEXT,)
    put("time_text_embed.timestep_embedder.linear_1", DIM, 256)
    put("time_text_embed.timestep_embedder.linear_2", DIM, DIM)
    for b in range(LAYERS):
        p = f"transformer_blocks.{b}."
        for s in ("img", "txt"):
            put(p + f"{s}_mod.1", 6 * DIM, DIM)
            put(p + f"{s}_mlp.net.0.proj", 4 * DIM, DIM)
            put(p + f"{s}_mlp.net.2", DIM, 4 * DIM)
        for n in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out"):
            put(p + "attn." + n, DIM, DIM)
        for n in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
            shapes[p + f"attn.{n}.weight"] = (HEAD,)
    put("norm_out.linear", 2 * DIM, DIM)
    put("proj_out", C, DIM)
    return shapes


def _dico(p: str, dim: int, modulated: bool) -> dict:
    s = {}
    for n, o, i, k in (("conv1", dim, dim, 1), ("conv3", dim, dim, 1), ("ca.1", dim, dim, 1), ("conv4", FFN, dim, 1),
                       ("conv5", dim, FFN, 1)):
        s[p + n + ".weight"], s[p + n + ".bias"] = (o, i, k, k), (o,)
    s[p + "conv2.weight"], s[p + "conv2.bias"] = (dim, 1, 3, 3), (dim,)
    if modulated:
        s[p + "adaLN_modulation.1.weight"], s[p + "adaLN_modulation.1.bias"] = (6 * dim, dim), (6 * dim,)
    else:
        for n in ("norm1", "norm2"):
            s[p + n + ".weight"], s[p + n + ".bias"] = (dim,), (dim,)
    return s


def vae_shapes() -> dict:
    e, d = "student.dconv_encoder.", "pipeline."
    s = {e + "patch_cond_embed.weight": (V, 3, 16, 16), e + "patch_cond_embed.bias": (V,),
         e + "proj_down.weight": (V, V, 1, 1), e + "proj_down.bias": (V,),
         e + "z_proj.weight": (V, C, 1, 1), e + "z_proj.bias": (V,),
         e + "fuse_proj.weight": (V, 2 * V, 1, 1), e + "fuse_proj.bias": (V,),
         e + "t_embedder.mlp.0.weight": (V, 256), e + "t_embedder.mlp.0.bias": (V,),
         e + "t_embedder.mlp.2.weight": (V, V), e + "t_embedder.mlp.2.bias": (V,),
         e + "norm_out.weight": (V,), e + "norm_out.bias": (V,),
         e + "proj_out.weight": (2 * C, V, 1, 1), e + "proj_out.bias": (2 * C,)}
    s.update(_dico(e + "head_blocks.0.", V, False))
    s.update(_dico(e + "blocks.0.", V, True))
    s.update({d + "t_embedder.mlp.0.weight": (V, 256), d + "t_embedder.mlp.0.bias": (V,),
              d + "t_embedder.mlp.2.weight": (V, V), d + "t_embedder.mlp.2.bias": (V,),
              d + "y_embedder_x.weight": (VX * 256, V, 1, 1), d + "y_embedder_x.bias": (VX * 256,),
              d + "x_embedder.embedder.0.weight": (VX, 3 + VX + 64), d + "x_embedder.embedder.0.bias": (VX,),
              d + "s_embedder.proj1.weight": (C, 3, 16, 16),
              d + "s_embedder.proj2.weight": (V, C + V, 1, 1), d + "s_embedder.proj2.bias": (V,),
              d + "dec_net.cond_embed.weight": (256 * VX, V), d + "dec_net.cond_embed.bias": (256 * VX,),
              d + "dec_net.input_proj.weight": (VX, VX), d + "dec_net.input_proj.bias": (VX,),
              d + "dec_net.res_blocks.0.in_ln.weight": (VX,), d + "dec_net.res_blocks.0.in_ln.bias": (VX,),
              d + "dec_net.res_blocks.0.mlp.0.weight": (VX, VX), d + "dec_net.res_blocks.0.mlp.0.bias": (VX,),
              d + "dec_net.res_blocks.0.mlp.2.weight": (VX, VX), d + "dec_net.res_blocks.0.mlp.2.bias": (VX,),
              d + "dec_net.res_blocks.0.adaLN_modulation.1.weight": (3 * VX, VX),
              d + "dec_net.res_blocks.0.adaLN_modulation.1.bias": (3 * VX,),
              d + "final_layer.norm.weight": (VX,), d + "final_layer.linear.weight": (3, VX),
              d + "final_layer.linear.bias": (3,),
              "pipeline.y_embedder.encoder.encoder.conv_in.weight": (4, 3, 3, 3)})
    s.update(_dico(d + "blocks.0.", V, True))
    y = d + "y_embedder.decoder."
    s.update({y + "conv_in.weight": (V, C, 3, 3), y + "conv_in.bias": (V,), y + "norm_out.weight": (V,),
              y + "norm_out.bias": (V,), y + "conv_out.weight": (V, V, 3, 3), y + "conv_out.bias": (V,)})
    for i in (0, 2, 4):                                   # ResnetBlocks
        for n in ("norm1", "norm2"):
            s[f"{y}block.{i}.{n}.weight"], s[f"{y}block.{i}.{n}.bias"] = (V,), (V,)
        for n in ("conv1", "conv2"):
            s[f"{y}block.{i}.{n}.weight"], s[f"{y}block.{i}.{n}.bias"] = (V, V, 3, 3), (V,)
    for i in (1, 3):                                      # windowed attention
        s[f"{y}block.{i}.norm.weight"], s[f"{y}block.{i}.norm.bias"] = (V,), (V,)
        for n in ("q", "k", "v", "proj_out"):
            s[f"{y}block.{i}.{n}.weight"], s[f"{y}block.{i}.{n}.bias"] = (V, V, 1, 1), (V,)
    return s


def build_mage_flow(root: Path) -> Path:
    from safetensors.torch import save_file
    import comfy_convrot as cr
    models, ref = root / "models", root / "reference"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    _seed(60)
    state = {PREFIX + k: v.contiguous() for k, v in _rand(transformer_shapes()).items()}
    save_file(state, str(models / "diffusion_models" / BF16))
    save_file(cr.quantise_file_state(state, 16, prefix=PREFIX + "transformer_blocks."),
              str(models / "diffusion_models" / INT8))
    _seed(61)
    save_file({k: v.contiguous() for k, v in _rand(vae_shapes()).items()}, str(models / "vae" / VAE))
    _seed(62)
    te = qwen3vl(2).bfloat16().float()
    save_file({k: v.bfloat16().contiguous() for k, v in comfy_text_encoder(te.state_dict()).items()},
              str(models / "text_encoders" / f"{TE_NAME}.safetensors"))
    te.save_pretrained(str(ref / "text_encoder"))
    processor(models / "text_encoders" / TE_NAME).tokenizer.save_pretrained(str(models / "text_encoders" / TE_NAME))
    return root
