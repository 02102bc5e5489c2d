"""NewBie-image's transformer (NewBie-AI's Exp0.1; ComfyUI's diffusion_models/NewBie-Image-Exp0.1-bf16.safetensors), in
the released file's own names: Lumina-Image 2.0's NextDiT with a pooled text input. diffusers has no NewBie.

Single-stream over [prompt ; picture]: the prompt's states (Gemma 3 4B's) are RMS-normed and projected, then refined
alone (unmodulated blocks), the picture's 2x2 patches of FLUX.1's latent are embedded and refined alone (modulated
blocks), then both run through the main blocks. Every block: sandwich RMS norms around attention (fused q/k/v,
grouped keys, RMS-normed queries and keys per head, rotary over (prompt position, row, column)) and a SwiGLU
feed-forward, each scaled by 1 + scale and gated by tanh(gate) from the modulation vector. That vector is the time
(1 - sigma, sin/cos over 256 channels through an MLP) joined with Jina CLIP v2's pooled prompt (RMS-normed and
projected) through one more linear layer (time_text_embed); ComfyUI gives zeros for a missing pooled prompt. The
output is negated: the model predicts the flow from the picture to noise."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from nodes.generate.lens_model import SwiGLU         # the same w1 / w2 / w3 feed-forward, names and all

THETA = 10000.0
TIME_CHANNELS = 256
HEAD_NORM_EPS = 1e-6        # the per-head q / k norms (ComfyUI's RMSNorm default)


def axis_angles(pos: torch.Tensor, dims) -> torch.Tensor:
    """[..., head / 2] rotary angles of integer positions [..., 3], one axis after the other (FLUX.1's EmbedND)."""
    parts = []
    for i, d in enumerate(dims):
        omega = 1.0 / THETA ** (torch.arange(0, d, 2, dtype=torch.float64, device=pos.device) / d)
        parts.append(pos[..., i, None].double() * omega)
    return torch.cat(parts, -1)


def rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x [B, L, H, D] turned pair by pair (elements 2i, 2i+1) by angles [B, L, D / 2]."""
    cos, sin = angles.cos()[:, :, None].to(x.dtype), angles.sin()[:, :, None].to(x.dtype)
    a, b = x.unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, kv_heads: int):
        super().__init__()
        self.heads, self.kv_heads, self.head = heads, kv_heads, dim // heads
        self.qkv = nn.Linear(dim, (heads + 2 * kv_heads) * self.head, bias=False)
        self.out = nn.Linear(heads * self.head, dim, bias=False)
        self.q_norm = nn.RMSNorm(self.head, eps=HEAD_NORM_EPS)
        self.k_norm = nn.RMSNorm(self.head, eps=HEAD_NORM_EPS)

    def forward(self, x, angles):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).split([self.heads * self.head, self.kv_heads * self.head, self.kv_heads * self.head], -1)
        q = rotate(self.q_norm(q.view(b, n, self.heads, self.head)), angles)
        k = rotate(self.k_norm(k.view(b, n, self.kv_heads, self.head)), angles)
        v = v.view(b, n, self.kv_heads, self.head)
        rep = self.heads // self.kv_heads
        k, v = (t.repeat_interleave(rep, 2) for t in (k, v))
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.out(o.transpose(1, 2).reshape(b, n, -1))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, kv_heads: int, hidden: int, eps: float, modulated: bool):
        super().__init__()
        self.attention = Attention(dim, heads, kv_heads)
        self.feed_forward = SwiGLU(dim, hidden)
        for name in ("attention_norm1", "attention_norm2", "ffn_norm1", "ffn_norm2"):
            setattr(self, name, nn.RMSNorm(dim, eps=eps))
        if modulated:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(min(dim, 1024), 4 * dim))

    def forward(self, x, angles, c=None):
        if c is None:
            x = x + self.attention_norm2(self.attention(self.attention_norm1(x), angles))
            return x + self.ffn_norm2(self.feed_forward(self.ffn_norm1(x)))
        scale_a, gate_a, scale_f, gate_f = self.adaLN_modulation(c)[:, None].chunk(4, -1)
        x = x + gate_a.tanh() * self.attention_norm2(self.attention(self.attention_norm1(x) * (1 + scale_a), angles))
        return x + gate_f.tanh() * self.ffn_norm2(self.feed_forward(self.ffn_norm1(x) * (1 + scale_f)))


class TimeEmbedder(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(TIME_CHANNELS, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t):
        half = TIME_CHANNELS // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([args.cos(), args.sin()], -1).to(self.mlp[0].weight.dtype))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, out)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(min(dim, 1024), dim))

    def forward(self, x, c):
        return self.linear(self.norm_final(x) * (1 + self.adaLN_modulation(c)[:, None]))


class NewBieTransformer(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, in_channels: int = 16, patch_size: int = 2, dim: int = 2304, n_layers: int = 36,
                 n_refiner_layers: int = 2, n_heads: int = 24, n_kv_heads: int = 8, ffn_hidden: int = 9216,
                 norm_eps: float = 1e-5, cap_feat_dim: int = 2560, clip_text_dim: int = 1024,
                 axes_dims=(32, 32, 32)):
        super().__init__()
        mod = min(dim, 1024)

        def blocks(count, modulated):
            return nn.ModuleList(Block(dim, n_heads, n_kv_heads, ffn_hidden, norm_eps, modulated) for _ in range(count))
        self.x_embedder = nn.Linear(patch_size * patch_size * in_channels, dim)
        self.noise_refiner = blocks(n_refiner_layers, True)
        self.context_refiner = blocks(n_refiner_layers, False)
        self.t_embedder = TimeEmbedder(mod)
        self.cap_embedder = nn.Sequential(nn.RMSNorm(cap_feat_dim, eps=norm_eps), nn.Linear(cap_feat_dim, dim))
        self.clip_text_pooled_proj = nn.Sequential(nn.RMSNorm(clip_text_dim, eps=norm_eps),
                                                   nn.Linear(clip_text_dim, clip_text_dim))
        self.time_text_embed = nn.Sequential(nn.SiLU(), nn.Linear(mod + clip_text_dim, mod))
        self.layers = blocks(n_layers, True)
        # in the file and never read (ComfyUI builds it and skips it too)
        self.norm_final = nn.RMSNorm(dim, eps=norm_eps)
        self.final_layer = FinalLayer(dim, patch_size * patch_size * in_channels)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor,
                pooled: torch.Tensor = None) -> torch.Tensor:
        """x [B, C, h, w] latents at noise level sigma [B], context [B, L, cap_feat_dim] (every token read),
        pooled [B, clip_text_dim] or None -> the flow [B, C, h, w]."""
        cfg = self.config
        p = cfg.patch_size
        b, c, h, w = x.shape
        x = F.pad(x, (0, (-w) % p, 0, (-h) % p))
        gh, gw = x.shape[2] // p, x.shape[3] // p
        t = self.t_embedder(1.0 - sigma.to(x.device))
        if pooled is None:
            pooled = t.new_zeros(b, cfg.clip_text_dim)
        else:
            pooled = self.clip_text_pooled_proj(pooled.to(t.dtype))
        adaln = self.time_text_embed(torch.cat([t, pooled], -1))
        n = context.shape[1]
        cap_pos = torch.zeros(n, 3, dtype=torch.long, device=x.device)
        cap_pos[:, 0] = torch.arange(n, device=x.device)
        rows, cols = torch.meshgrid(torch.arange(gh, device=x.device), torch.arange(gw, device=x.device), indexing="ij")
        img_pos = torch.stack([torch.full_like(rows, n), rows, cols], -1).reshape(-1, 3)
        cap_ang = axis_angles(cap_pos, cfg.axes_dims)[None].expand(b, -1, -1)
        img_ang = axis_angles(img_pos, cfg.axes_dims)[None].expand(b, -1, -1)
        cap = self.cap_embedder(context.to(self.x_embedder.weight.dtype))
        for blk in self.context_refiner:
            cap = blk(cap, cap_ang)
        img = x.view(b, c, gh, p, gw, p).permute(0, 2, 4, 3, 5, 1).reshape(b, gh * gw, p * p * c)
        img = self.x_embedder(img.to(self.x_embedder.weight.dtype))
        for blk in self.noise_refiner:
            img = blk(img, img_ang, adaln)
        seq, ang = torch.cat([cap, img], 1), torch.cat([cap_ang, img_ang], 1)
        for blk in self.layers:
            seq = blk(seq, ang, adaln)
        out = self.final_layer(seq[:, n:], adaln)
        out = out.view(b, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, gh * p, gw * p)
        return -out[:, :, :h, :w]
