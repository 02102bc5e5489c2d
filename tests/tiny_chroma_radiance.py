"""A tiny random-weight Chroma Radiance in ComfyUI's released names (Comfy-Org/Chroma1-Radiance_Repackaged's
diffusion_models/chroma-radiance*.safetensors), beside tests/tiny_chroma.py's T5 and ChromaPipeline folder:

  models/diffusion_models/chroma-radiance-tiny.safetensors      the linear head (nerf_final_layer)
  models/diffusion_models/chroma-radiance-x0-tiny.safetensors   the conv head (nerf_final_layer_conv) and __x0__

The transformer is a diffusers ChromaTransformer2DModel over 4x4 pixel patches written in the original names by
tests/tiny_chroma.py's inversion of diffusers' converter, its img_in as ComfyUI's img_in_patch convolution and no last
layer; the head's tensors are random. `reference` is ComfyUI's comfy/ldm/chroma_radiance written out (the patch
convolution, the NeRF head, the x0 residual) around that diffusers transformer's blocks: it shares no code with
Kinograph's."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from tiny_chroma import build_chroma, original_transformer
from tiny_flux import AXES, HEAD
from tiny_models import _seed

PATCH, NERF, RATIO, DEPTH, FREQS = 4, 8, 2, 2, 3
LINEAR, X0 = "chroma-radiance-tiny.safetensors", "chroma-radiance-x0-tiny.safetensors"


def backbone(seed: int):
    from diffusers import ChromaTransformer2DModel
    _seed(seed)
    return ChromaTransformer2DModel(in_channels=3 * PATCH * PATCH, num_layers=2, num_single_layers=2,
                                    attention_head_dim=HEAD, num_attention_heads=2, joint_attention_dim=32,
                                    axes_dims_rope=AXES, approximator_num_channels=16, approximator_hidden_dim=32,
                                    approximator_layers=2)


def released(model, conv: bool, seed: int) -> dict:
    """The file's tensors: the transformer in the original names, its patch embedder as a convolution, the head."""
    sd = original_transformer(model.state_dict())
    sd = {k: v for k, v in sd.items() if not k.startswith("final_layer.")}
    w = sd.pop("img_in.weight")
    sd["img_in_patch.weight"] = w.reshape(w.shape[0], 3, PATCH, PATCH)
    sd["img_in_patch.bias"] = sd.pop("img_in.bias")
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape, s=0.3: (torch.randn(*shape, generator=g) * s).half().float()  # noqa: E731
    width = model.inner_dim
    sd["nerf_image_embedder.embedder.0.weight"] = rand(NERF, 3 + FREQS ** 2)
    sd["nerf_image_embedder.embedder.0.bias"] = rand(NERF)
    for i in range(DEPTH):
        sd[f"nerf_blocks.{i}.param_generator.weight"] = rand(3 * NERF * NERF * RATIO, width, s=0.1)
        sd[f"nerf_blocks.{i}.param_generator.bias"] = rand(3 * NERF * NERF * RATIO)
        sd[f"nerf_blocks.{i}.norm.scale"] = 1 + rand(NERF)
    if conv:
        sd["nerf_final_layer_conv.norm.scale"] = 1 + rand(NERF)
        sd["nerf_final_layer_conv.conv.weight"] = rand(3, NERF, 3, 3)
        sd["nerf_final_layer_conv.conv.bias"] = rand(3)
        sd["__x0__"] = torch.tensor([])
    else:
        sd["nerf_final_layer.norm.scale"] = 1 + rand(NERF)
        sd["nerf_final_layer.linear.weight"] = rand(3, NERF)
        sd["nerf_final_layer.linear.bias"] = rand(3)
    return sd


def build_radiance(root: Path) -> Path:
    from safetensors.torch import save_file
    build_chroma(root)
    for name, conv, seed in ((LINEAR, False, 3), (X0, True, 4)):
        sd = released(backbone(seed), conv, seed)
        save_file({k: v.to(torch.bfloat16 if v.numel() else torch.float32).contiguous() for k, v in sd.items()},
                  str(root / "models" / "diffusion_models" / name))
    return root


# -- ComfyUI's Chroma Radiance, written out (comfy/ldm/chroma_radiance/layers.py and model.py) -------------------------
def _rms(x, scale):
    return torch.nn.functional.rms_norm(x, scale.shape, weight=scale.to(x.dtype), eps=1e-6)


def _dct(patch_size: int, max_freqs: int):
    pos_x = torch.linspace(0, 1, patch_size)
    pos_y = torch.linspace(0, 1, patch_size)
    pos_y, pos_x = torch.meshgrid(pos_y, pos_x, indexing="ij")
    pos_x = pos_x.reshape(-1, 1, 1)
    pos_y = pos_y.reshape(-1, 1, 1)
    freqs = torch.linspace(0, max_freqs - 1, max_freqs)
    freqs_x = freqs[None, :, None]
    freqs_y = freqs[None, None, :]
    coeffs = (1 + freqs_x * freqs_y) ** -1
    dct_x = torch.cos(pos_x * freqs_x * torch.pi)
    dct_y = torch.cos(pos_y * freqs_y * torch.pi)
    return (dct_x * dct_y * coeffs).view(1, -1, max_freqs ** 2)


def _nerf(sd, img_orig, img_out, patch_size, tile):
    B, C, H, W = img_orig.shape
    num_patches = img_out.shape[1]
    nerf_pixels = nn.functional.unfold(img_orig, kernel_size=patch_size, stride=patch_size).transpose(1, 2)
    nerf_hidden = img_out.reshape(B * num_patches, -1)
    nerf_pixels = nerf_pixels.reshape(B * num_patches, C, patch_size ** 2).transpose(1, 2)
    tiles = []
    # forward_tiled_nerf's slices: tile * B rows at a time where there are more patches than the tile
    step = tile * B if 0 < tile < num_patches else B * num_patches
    for i in range(0, B * num_patches, step):
        px, hid = nerf_pixels[i:i + step], nerf_hidden[i:i + step]
        freqs = math.isqrt(sd["nerf_image_embedder.embedder.0.weight"].shape[1] - C)
        # the embedder in float32 (nerf_embedder_dtype), or in float64 where the whole model is
        work = torch.float64 if px.dtype == torch.float64 else torch.float32
        dct = _dct(patch_size, freqs).to(work).repeat(px.shape[0], 1, 1)
        x = torch.cat((px.to(work), dct), dim=-1)
        x = nn.functional.linear(x, sd["nerf_image_embedder.embedder.0.weight"].to(work),
                                 sd["nerf_image_embedder.embedder.0.bias"].to(work)).to(px.dtype)
        for b in range(len([k for k in sd if k.endswith(".param_generator.weight")])):
            p = f"nerf_blocks.{b}."
            batch, _, hx = x.shape
            ratio = sd[p + "param_generator.weight"].shape[0] // (3 * hx * hx)
            params = nn.functional.linear(hid, sd[p + "param_generator.weight"], sd[p + "param_generator.bias"])
            g, v, o = params.chunk(3, dim=-1)
            g = nn.functional.normalize(g.view(batch, hx, hx * ratio), dim=-2)
            v = nn.functional.normalize(v.view(batch, hx, hx * ratio), dim=-2)
            o = nn.functional.normalize(o.view(batch, hx * ratio, hx), dim=-2)
            res = x
            x = _rms(x, sd[p + "norm.scale"])
            x = torch.bmm(nn.functional.silu(torch.bmm(x, g)) * torch.bmm(x, v), o) + res
        tiles.append(x)
    img_dct = torch.cat(tiles).transpose(1, 2).reshape(B, num_patches, -1).transpose(1, 2)
    img_dct = nn.functional.fold(img_dct, output_size=(H, W), kernel_size=patch_size, stride=patch_size)
    if "nerf_final_layer_conv.conv.weight" in sd:
        y = _rms(img_dct.movedim(1, -1), sd["nerf_final_layer_conv.norm.scale"]).movedim(-1, 1)
        return nn.functional.conv2d(y, sd["nerf_final_layer_conv.conv.weight"], sd["nerf_final_layer_conv.conv.bias"],
                                    padding=1)
    y = _rms(img_dct.movedim(1, -1), sd["nerf_final_layer.norm.scale"])
    return nn.functional.linear(y, sd["nerf_final_layer.linear.weight"], sd["nerf_final_layer.linear.bias"]).movedim(-1, 1)


class _PatchIn(nn.Module):
    """ComfyUI's img_in: the patch convolution, flattened into a sequence."""

    def __init__(self, weight, bias, patch_size):
        super().__init__()
        self.weight, self.bias, self.patch_size = weight, bias, patch_size

    def forward(self, img):
        out = nn.functional.conv2d(img, self.weight, self.bias, stride=self.patch_size)
        return out.flatten(2).transpose(1, 2)


def reference(path: Path, seed: int, dtype=torch.float32):
    """ComfyUI's ChromaRadiance._forward for the file at `path` (computing in `dtype`): f(x [B, 3, H, W], sigma [B],
    context [B, L, D], text mask [B, L] (1 read, 0 padding) or None, tile) -> velocity. The blocks are the diffusers transformer the
    file was written from (the same weights, rounded as the file holds them), read up to its last layer."""
    from safetensors.torch import load_file
    sd = {k: v.to(dtype) for k, v in load_file(str(path)).items()}
    model = backbone(seed)
    # the weights as the file rounds them; buffers (its modulation index's embedding) are computed, as ComfyUI does
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    model.to(dtype)
    model.x_embedder = _PatchIn(sd["img_in_patch.weight"], sd["img_in_patch.bias"], PATCH)
    states = {}
    model.norm_out.register_forward_hook(lambda m, args, out: states.__setitem__("img", args[0]))

    def run(x, sigma, context, mask=None, tile=0):
        b, c, h, w = x.shape
        h_len, w_len = h // PATCH, w // PATCH
        x, sigma, context = x.to(dtype), sigma.to(dtype), context.to(dtype)
        img_ids = torch.zeros((h_len, w_len, 3))
        img_ids[:, :, 1] = img_ids[:, :, 1] + torch.linspace(0, h_len - 1, steps=h_len).unsqueeze(1)
        img_ids[:, :, 2] = img_ids[:, :, 2] + torch.linspace(0, w_len - 1, steps=w_len).unsqueeze(0)
        # the prompt's mask as ChromaPipeline hands it to diffusers' blocks (its _prepare_attention_mask), which is
        # how Kinograph's Chroma reads a prompt (the T5TokenizerOptions row of the import is approximate)
        attn = None if mask is None else torch.cat([mask.to(dtype), torch.ones(b, h_len * w_len, dtype=torch.bool)], 1)
        with torch.no_grad():
            model(hidden_states=x, encoder_hidden_states=context, timestep=sigma, img_ids=img_ids.reshape(-1, 3),
                  txt_ids=torch.zeros(context.shape[1], 3), attention_mask=attn, return_dict=False)
            out = _nerf(sd, x, states["img"], PATCH, tile)
        if "__x0__" in sd:
            out = (x - out) / sigma.view(-1, 1, 1, 1)
        return out
    return run
