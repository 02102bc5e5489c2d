"""Hunyuan3D's ShapeVAE decoder in ComfyUI's key names (the checkpoint's "vae." part, prefix removed): the shape
latent's tokens through a transformer, then an occupancy field read at any point by one cross-attention from the
point's Fourier features to those tokens. decode() samples it on a (resolution + 1)^3 grid over [-1.01, 1.01]^3,
num_chunks points a call, as ComfyUI's VAEDecodeHunyuan3D does, and hands the grid as ComfyUI's VAE hands it on:
logits mapped to (l + 1) / 2 clamped to [0, 1], axes z, y, x. Widths, depths and heads are read from the tensors
(the head count from the q/k norm's width)."""
from __future__ import annotations

from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError

BOUNDS = 1.01                    # ComfyUI's VanillaVolumeDecoder box half-side
FREQS = 8                        # the Fourier features of a point: x, sin(2^i x), cos(2^i x), i < 8 (no pi)


def fourier(x: torch.Tensor) -> torch.Tensor:
    freqs = 2.0 ** torch.arange(FREQS, dtype=torch.float32, device=x.device)
    embed = (x[..., None] * freqs.to(x.dtype)).view(*x.shape[:-1], -1)
    return torch.cat([x, embed.sin(), embed.cos()], -1)


def _ln(dim: int, eps: float = 1e-6) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=eps)


class _Norms(nn.Module):
    def __init__(self, head_dim: int, qk_norm: bool):
        super().__init__()
        self.q_norm = _ln(head_dim) if qk_norm else nn.Identity()
        self.k_norm = _ln(head_dim) if qk_norm else nn.Identity()


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    return t.view(t.shape[0], t.shape[1], heads, -1)


class SelfAttention(nn.Module):
    """c_qkv's output cut per head into that head's q, k, v (the checkpoint's order)."""

    def __init__(self, width: int, heads: int, bias: bool, qk_norm: bool):
        super().__init__()
        self.c_qkv = nn.Linear(width, 3 * width, bias=bias)
        self.c_proj = nn.Linear(width, width)
        self.attention = _Norms(width // heads, qk_norm)
        self.heads = heads

    def forward(self, x):
        b, n, w = x.shape
        q, k, v = _heads(self.c_qkv(x), self.heads).split(w // self.heads, -1)
        q, k, v = (t.transpose(1, 2) for t in (self.attention.q_norm(q), self.attention.k_norm(k), v))
        return self.c_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w))


class CrossAttention(nn.Module):
    def __init__(self, width: int, heads: int, bias: bool, qk_norm: bool):
        super().__init__()
        self.c_q = nn.Linear(width, width, bias=bias)
        self.c_kv = nn.Linear(width, 2 * width, bias=bias)
        self.c_proj = nn.Linear(width, width)
        self.attention = _Norms(width // heads, qk_norm)
        self.heads = heads

    def forward(self, x, data):
        b, n, w = x.shape
        q = _heads(self.c_q(x), self.heads)
        k, v = _heads(self.c_kv(data), self.heads).split(w // self.heads, -1)
        q, k, v = (t.transpose(1, 2) for t in (self.attention.q_norm(q), self.attention.k_norm(k), v))
        return self.c_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w))


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc, self.c_proj = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class ResBlock(nn.Module):
    def __init__(self, width: int, heads: int, bias: bool, qk_norm: bool):
        super().__init__()
        self.attn = SelfAttention(width, heads, bias, qk_norm)
        self.ln_1, self.ln_2 = _ln(width), _ln(width)
        self.mlp = MLP(width, 4 * width)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class CrossBlock(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, bias: bool, qk_norm: bool):
        super().__init__()
        self.attn = CrossAttention(width, heads, bias, qk_norm)
        self.ln_1, self.ln_2, self.ln_3 = _ln(width), _ln(width), _ln(width)
        self.mlp = MLP(width, hidden)

    def forward(self, x, data):
        x = x + self.attn(self.ln_1(x), self.ln_2(data))
        return x + self.mlp(self.ln_3(x))


class GeoDecoder(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, bias: bool, qk_norm: bool, ln_post: bool,
                 latent_width: int):
        super().__init__()
        self.query_proj = nn.Linear(3 * (2 * FREQS + 1), width)
        self.latents_proj = nn.Linear(latent_width, width) if latent_width != width else None
        self.cross_attn_decoder = CrossBlock(width, heads, hidden, bias, qk_norm and ln_post)
        self.ln_post = nn.LayerNorm(width) if ln_post else None       # torch's default eps, as the checkpoint's
        self.output_proj = nn.Linear(width, 1)

    def forward(self, points, latents):
        if self.latents_proj is not None:
            latents = self.latents_proj(latents)
        x = self.cross_attn_decoder(self.query_proj(fourier(points).to(latents.dtype)), latents)
        return self.output_proj(self.ln_post(x) if self.ln_post is not None else x)


class ShapeVAE(nn.Module):
    def __init__(self, channels: int, width: int, heads: int, layers: int, bias: bool, qk_norm: bool,
                 geo_width: int, geo_heads: int, geo_hidden: int, ln_post: bool, scale_factor: float = 1.0):
        super().__init__()
        self.post_kl = nn.Linear(channels, width)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(ResBlock(width, heads, bias, qk_norm) for _ in range(layers))
        self.geo_decoder = GeoDecoder(geo_width, geo_heads, geo_hidden, bias, qk_norm, ln_post, width)
        # The latent's scale in the sampler (ComfyUI's latent format for the checkpoint's transformer): a latent is
        # divided by it before decoding
        self.scale_factor = scale_factor

    @property
    def dtype(self):
        return self.post_kl.weight.dtype

    @property
    def device(self):
        return self.post_kl.weight.device

    def tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """The latent [B, C, N] as the field's tokens [B, N, width]."""
        x = self.post_kl(latents.movedim(-2, -1))
        for block in self.transformer.resblocks:
            x = block(x)
        return x

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, resolution: int = 256, num_chunks: int = 8000,
               progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
        """latents [B, C, N] (already divided by scale_factor) -> grid [B, R+1, R+1, R+1] in [0, 1], axes z, y, x."""
        tokens = self.tokens(latents.to(self.device, self.dtype))
        r = int(resolution) + 1
        side = torch.linspace(-BOUNDS, BOUNDS, r, dtype=torch.float32, device=self.device)
        out, n = [], r ** 3
        for start in range(0, n, num_chunks):
            # the chunk's grid points (x slowest, as ComfyUI's meshgrid), made as they are asked for and in float32
            # whatever the weights: bf16 rounded a 512 grid's neighbours together and its finest Fourier feature by
            # half a radian, and the whole grid's points held 1.6 GB
            i = torch.arange(start, min(start + num_chunks, n), device=self.device)
            pts = torch.stack([side[i // (r * r)], side[i // r % r], side[i % r]], -1)
            out.append(self.geo_decoder(pts[None].expand(tokens.shape[0], -1, -1), tokens).float())
            if progress is not None:
                progress(min(start + num_chunks, n), n)
        grid = torch.cat(out, 1).view(tokens.shape[0], r, r, r)      # axes x, y, z
        return ((grid + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 3, 2, 1)


def _count(state, prefix: str) -> int:
    n = 0
    while f"{prefix}{n}.ln_1.weight" in state:
        n += 1
    return n


def build_vae(state: Dict[str, torch.Tensor], scale_factor: float = 1.0, load: bool = True) -> ShapeVAE:
    """The decoder for a checkpoint's "vae." tensors (prefix removed; the encoder's, if any, are not read); without
    `load` the bare network, counted on the meta device before it is made."""
    if "geo_decoder.cross_attn_decoder.ln_1.bias" not in state or "post_kl.weight" not in state:
        raise NodeError("these tensors are not Hunyuan3D's ShapeVAE (no geo_decoder / post_kl): load a Hunyuan3D "
                        "checkpoint (hunyuan3d-dit-v2*.safetensors, hunyuan_3d_v2.1.safetensors)")
    width, channels = state["post_kl.weight"].shape
    qk_norm = "transformer.resblocks.0.attn.attention.q_norm.weight" in state
    heads = width // state["transformer.resblocks.0.attn.attention.q_norm.weight"].shape[0] if qk_norm else 16
    geo_width = state["geo_decoder.output_proj.weight"].shape[1]
    geo_norm = state.get("geo_decoder.cross_attn_decoder.attn.attention.q_norm.weight")
    geo_heads = geo_width // geo_norm.shape[0] if geo_norm is not None else heads * geo_width // width
    vae = ShapeVAE(channels, width, heads, _count(state, "transformer.resblocks."),
                   "transformer.resblocks.0.attn.c_qkv.bias" in state, qk_norm, geo_width, geo_heads,
                   state["geo_decoder.cross_attn_decoder.mlp.c_fc.weight"].shape[0],
                   "geo_decoder.ln_post.weight" in state, scale_factor)
    if not load:
        return vae
    missing, _ = vae.load_state_dict(state, strict=False)      # the encoder's tensors (2.1's file) are not read
    if missing:
        raise NodeError(f"Hunyuan3D's ShapeVAE tensors do not fit it: missing {sorted(missing)[:4]}")
    return vae.eval()
