"""Lens's transformer (Microsoft's Lens and Lens-Turbo text-to-image models; ComfyUI's diffusion_models/
lens_bf16.safetensors, lens_turbo_bf16.safetensors), in the released files' own names. diffusers has no Lens.

A dual-stream MMDiT: every block modulates the picture's and the prompt's tokens apart (img_mod / txt_mod: shift,
scale and gate for attention, then for the SwiGLU feed-forward), projects each to q, k, v in one matrix, RMS-norms
queries and keys per head, and attends over [picture ; prompt] jointly. The picture is FLUX.2's latent as it is (128
channels at 1/16, each latent pixel one token); the prompt is GPT-OSS's hidden states at four layers side by side per
token, each RMS-normed by its own norm before one projection. The model is told sigma (times 1000, sin/cos of 256)
and predicts the flow from the picture to noise.

Positions are (frame, row, column) per head pair: rows and columns centred on the picture (the first half negative),
the prompt's tokens after the picture's larger half-side on all three axes together."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

THETA = 10000.0
TIME_CHANNELS = 256
TIME_SCALE = 1000.0        # sigma is embedded times 1000


def _rms(dim: int, eps: float) -> nn.RMSNorm:
    return nn.RMSNorm(dim, eps=eps)


def axis_angles(positions: torch.Tensor, width: int) -> torch.Tensor:
    """[n, width / 2] rotation angles of one rotary axis at integer positions."""
    inv = 1.0 / THETA ** (torch.arange(0, width, 2, dtype=torch.float64) / width)
    return positions.double()[:, None] * inv[None]


def centred(n: int) -> torch.Tensor:
    """Row (or column) positions of n tokens centred as Lens's rotary embedding centres them: the first n - n // 2
    negative, then 0 .. n // 2 - 1."""
    return torch.arange(n) - (n - n // 2)


def rotary_angles(h: int, w: int, text: int, axes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Angles [h * w, head / 2] of the picture's tokens and [text, head / 2] of the prompt's."""
    f, r, c = axes
    rows, cols = centred(h), centred(w)
    img = torch.cat([axis_angles(torch.zeros(h * w), f),
                     axis_angles(rows.repeat_interleave(w), r),
                     axis_angles(cols.repeat(h), c)], dim=1)
    pos = torch.arange(text) + max(h // 2, w // 2)
    txt = torch.cat([axis_angles(pos, a) for a in axes], dim=1)
    return img, txt


def rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x [B, S, heads, D] turned by `angles` [S, D / 2] pair by pair (adjacent channels form a pair)."""
    cos, sin = angles.cos().float()[None, :, None], angles.sin().float()[None, :, None]
    a, b = x.float()[..., 0::2], x.float()[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2).type_as(x)


def time_features(sigma: torch.Tensor) -> torch.Tensor:
    """sin/cos features of sigma * 1000 (cosines first, FLUX's order)."""
    half = TIME_CHANNELS // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=sigma.device) / half)
    args = sigma.float()[:, None] * TIME_SCALE * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


class TimestepEmbedder(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(TIME_CHANNELS, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class TimeTextEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.timestep_embedder = TimestepEmbedder(dim)


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class JointAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        head = dim // heads
        self.heads, self.head = heads, head
        self.img_qkv = nn.Linear(dim, 3 * dim)
        self.txt_qkv = nn.Linear(dim, 3 * dim)
        self.norm_q, self.norm_k = _rms(head, 1e-5), _rms(head, 1e-5)
        self.norm_added_q, self.norm_added_k = _rms(head, 1e-5), _rms(head, 1e-5)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])
        self.to_add_out = nn.Linear(dim, dim)

    def _qkv(self, proj, q_norm, k_norm, x, angles):
        b, s, _ = x.shape
        q, k, v = proj(x).view(b, s, 3, self.heads, self.head).unbind(2)
        return rotate(q_norm(q), angles), rotate(k_norm(k), angles), v

    def forward(self, img, txt, img_angles, txt_angles, mask):
        iq, ik, iv = self._qkv(self.img_qkv, self.norm_q, self.norm_k, img, img_angles)
        tq, tk, tv = self._qkv(self.txt_qkv, self.norm_added_q, self.norm_added_k, txt, txt_angles)
        q, k, v = (torch.cat(p, dim=1).transpose(1, 2) for p in ((iq, tq), (ik, tk), (iv, tv)))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).flatten(2)
        n = img.shape[1]
        return self.to_out[0](out[:, :n]), self.to_add_out(out[:, n:])


def _modulated(norm, x, shift, scale):
    return norm(x) * (1 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attn = JointAttention(dim, heads)
        hidden = int(dim / 3 * 8)
        for side in ("img", "txt"):
            setattr(self, f"{side}_mod", nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim)))
            setattr(self, f"{side}_norm1", _rms(dim, 1e-6))
            setattr(self, f"{side}_norm2", _rms(dim, 1e-6))
            setattr(self, f"{side}_mlp", SwiGLU(dim, hidden))

    def forward(self, img, txt, temb, img_angles, txt_angles, mask):
        i1, i2, i3, i4, i5, i6 = self.img_mod(temb).chunk(6, dim=-1)
        t1, t2, t3, t4, t5, t6 = self.txt_mod(temb).chunk(6, dim=-1)
        ia, ta = self.attn(_modulated(self.img_norm1, img, i1, i2), _modulated(self.txt_norm1, txt, t1, t2),
                           img_angles, txt_angles, mask)
        img = img + i3[:, None] * ia
        txt = txt + t3[:, None] * ta
        img = img + i6[:, None] * self.img_mlp(_modulated(self.img_norm2, img, i4, i5))
        txt = txt + t6[:, None] * self.txt_mlp(_modulated(self.txt_norm2, txt, t4, t5))
        return img, txt


class NormOut(nn.Module):
    """The last norm: no affine of its own, scale then shift (in that order) from the time embedding."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * dim)

    def forward(self, x, temb):
        scale, shift = self.linear(F.silu(temb)).chunk(2, dim=-1)
        return F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + scale[:, None]) + shift[:, None]


class LensTransformer(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, in_channels: int = 128, out_channels: int = 32, patch_size: int = 2, num_layers: int = 48,
                 num_attention_heads: int = 24, attention_head_dim: int = 64, enc_hidden_dim: int = 2880,
                 text_layers: int = 4, axes_dims_rope: Sequence[int] = (8, 28, 28)):
        super().__init__()
        dim = num_attention_heads * attention_head_dim
        self.time_text_embed = TimeTextEmbed(dim)
        self.txt_norm = nn.ModuleList(_rms(enc_hidden_dim, 1e-5) for _ in range(text_layers))
        self.txt_in = nn.Linear(enc_hidden_dim * text_layers, dim)
        self.img_in = nn.Linear(in_channels, dim)
        self.transformer_blocks = nn.ModuleList(Block(dim, num_attention_heads) for _ in range(num_layers))
        self.norm_out = NormOut(dim)
        self.proj_out = nn.Linear(dim, patch_size * patch_size * out_channels)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [B, C, h, w] FLUX.2 latent, sigma [B], context [B, S, layers * width] (GPT-OSS's layers side by side),
        mask [B, S] (True where a token is real; None: all are) -> the flow [B, C, h, w]. An empty prompt is read as no
        tokens at all (S = 0), as ComfyUI reads one."""
        b, c, h, w = x.shape
        cfg = self.config
        layers = context.reshape(b, context.shape[1], cfg.text_layers, cfg.enc_hidden_dim).unbind(2)
        txt = self.txt_in(torch.cat([norm(t) for norm, t in zip(self.txt_norm, layers)], dim=-1))
        img = self.img_in(x.flatten(2).transpose(1, 2))
        temb = self.time_text_embed.timestep_embedder(time_features(sigma).to(img.dtype))
        img_angles, txt_angles = (a.to(x.device) for a in rotary_angles(h, w, txt.shape[1], cfg.axes_dims_rope))
        keep = torch.ones(b, h * w + txt.shape[1], dtype=torch.bool, device=x.device)
        if mask is not None:
            keep[:, h * w:] = mask.bool()
        bias = torch.zeros(keep.shape, dtype=img.dtype, device=x.device).masked_fill(~keep, float("-inf"))
        bias = bias[:, None, None]
        for block in self.transformer_blocks:
            img, txt = block(img, txt, temb, img_angles, txt_angles, bias)
        out = self.proj_out(self.norm_out(img, temb))
        return out.transpose(1, 2).reshape(b, c, h, w)
