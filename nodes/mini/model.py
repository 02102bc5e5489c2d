"""kinograph-mini: a tiny text-to-video flow-matching model for the shapes world.

Value range and layout
    The model works in pixel space: x is a float tensor [B, 3, T, H, W] (RGB, T = NATIVE_FRAMES = 16,
    H = W = HEIGHT = WIDTH = 48) with values in [-1, 1]. `to_uint8` / `from_uint8` convert to and from
    uint8 frames [T, H, W, 3]:  x = frames / 127.5 - 1,  frames = round((x + 1) * 127.5) clipped.
    There is no VAE: the "latent" is the pixels (LATENT_CHANNELS = 3, no spatial/temporal compression).
    Inside, frames are pixel-unshuffled 4x4 (an exact, invertible reshape) to a 12x12 grid.

Flow matching (rectified flow; the convention of diffusers' FlowMatchEulerDiscreteScheduler and Wan)
    x_t = (1 - t) * x0 + t * noise,  t in [0, 1] (1 = pure noise),
    model(x_t, t, emb, mask) -> v = noise - x0.
    Inside, the network predicts the clean clip x0 and returns v = (x_t - x0) / max(t, T_MIN): in
    pixel space with 4x4 patches a small network can draw clean shapes far more easily than it can
    reproduce the noise that a direct velocity prediction has to carry (Li & He 2025, "Back to
    Basics: Let Denoising Generative Models Denoise").
    Euler from t=1 to t=0 (x <- x + (t_next - t) * v) draws a clip; classifier-free guidance mixes the
    velocities for the prompt and for the empty prompt "" (the model was trained with caption dropout).

Architecture
    A small 3D U-Net with factorised space-time convolutions (3x3 spatial then 3-tap temporal),
    x / y / frame coordinate channels at the input plus co-moving coordinates of each object's
    parsed screen motion (`motion_coordinates`), per-frame FiLM conditioning on the time step, the
    pooled caption and a learned frame embedding, self-attention at 6x6 (per pixel across frames, or
    over the whole clip with `space_time_attention`), full space-time self-attention at 3x3, and
    cross-attention to the caption's token embeddings at both.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from nodes.mini.shapes_world import MOTION_FEATURES

NATIVE_FRAMES = 16
HEIGHT = WIDTH = 48
CHANNELS = 3
LATENT_CHANNELS = 3
FAMILY = "mini"
T_MIN = 0.05   # floor of t when turning the clean-clip prediction into a velocity


def from_uint8(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames [T,H,W,3] (or [B,T,H,W,3]) -> float tensor [3,T,H,W] (or [B,3,T,H,W]) in [-1,1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float() / 127.5 - 1.0
    return x.movedim(-1, -4)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Inverse of `from_uint8`: [..., 3, T, H, W] in [-1,1] -> uint8 [..., T, H, W, 3]."""
    return ((x.detach().float().movedim(-4, -1) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def _groups(c: int) -> int:
    return math.gcd(c, 16)


class ResBlock(nn.Module):
    """Spatial 3x3 conv, FiLM, spatial 3x3 conv, then a residual 3-tap temporal conv."""

    def __init__(self, cin: int, cout: int, cond: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv3d(cin, cout, (1, 3, 3), padding=(0, 1, 1))
        self.film = nn.Linear(cond, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv3d(cout, cout, (1, 3, 3), padding=(0, 1, 1))
        self.norm_t = nn.GroupNorm(_groups(cout), cout)
        self.conv_t = nn.Conv3d(cout, cout, (3, 1, 1), padding=(1, 0, 0))
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv_t.weight)

    def forward(self, x, c):
        h = self.conv1(F.silu(self.norm1(x)))
        # c is per frame [B,T,cond]: FiLM differs from frame to frame.
        scale, shift = self.film(c).transpose(1, 2)[..., None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        h = h + self.skip(x)
        return h + self.conv_t(F.silu(self.norm_t(h)))


class Attention(nn.Module):
    """Self-attention over tokens grouped by `mode` ("time": per pixel across frames; "all": every
    position of the clip), then cross-attention to the caption tokens."""

    def __init__(self, dim: int, text_dim: int, heads: int, mode: str):
        super().__init__()
        self.mode, self.heads = mode, heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out1 = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(text_dim, 2 * dim)
        self.out2 = nn.Linear(dim, dim)
        self.frame_pos = nn.Parameter(torch.zeros(NATIVE_FRAMES, dim))
        nn.init.zeros_(self.out1.weight)
        nn.init.zeros_(self.out2.weight)

    def _heads(self, t):
        b, n, d = t.shape
        return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def _attend(self, q, k, v, mask=None):
        o = F.scaled_dot_product_attention(self._heads(q), self._heads(k), self._heads(v), attn_mask=mask)
        return o.transpose(1, 2).flatten(2)

    def forward(self, x, emb, mask):
        b, c, t, h, w = x.shape
        # Frame positions repeat every NATIVE_FRAMES so longer clips (context windows) stay in range.
        pos = self.frame_pos[torch.arange(t, device=x.device) % NATIVE_FRAMES]
        tokens = x.permute(0, 3, 4, 2, 1) + pos  # [B,H,W,T,C]
        if self.mode == "time":
            seq = tokens.reshape(b * h * w, t, c)
        else:
            seq = tokens.reshape(b, h * w * t, c)
        q, k, v = self.qkv(self.norm1(seq)).chunk(3, dim=-1)
        seq = seq + self.out1(self._attend(q, k, v))
        seq = seq.reshape(b, h * w * t, c)
        kv_k, kv_v = self.kv(emb).chunk(2, dim=-1)
        text_mask = mask[:, None, None, :]
        seq = seq + self.out2(self._attend(self.q(self.norm2(seq)), kv_k, kv_v, text_mask))
        return (seq.reshape(b, h, w, t, c) - pos).permute(0, 4, 3, 1, 2).contiguous()


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * 1000.0 * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class KinographMini(ModelMixin, ConfigMixin):
    """model(x [B,3,T,H,W] in [-1,1], t [B] in [0,1], emb [B,L,D], mask [B,L] bool) -> velocity like x.

    T may differ from 16 (context windows) and H, W may be any multiple of 16; the model was trained
    on 16 x 48 x 48."""

    @register_to_config
    def __init__(self, channels: tuple[int, ...] = (48, 96, 160), patch: int = 4, text_dim: int = 128,
                 cond_dim: int = 256, heads: int = 4, frames: int = NATIVE_FRAMES,
                 height: int = HEIGHT, width: int = WIDTH, family: str = FAMILY,
                 motion_coordinates: bool = False, space_time_attention: bool = False):
        super().__init__()
        c0, c1, c2 = channels
        pc = CHANNELS * patch * patch
        self.time_mlp = nn.Sequential(nn.Linear(c0, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.text_pool = nn.Linear(text_dim, cond_dim)
        # Without an absolute frame signal the network is nearly symmetric in time (3-tap convolutions,
        # zero padding at both ends). The frame embedding gives every block the arrow of time; it did
        # not by itself teach the sign of a motion (see `_with_coordinates`).
        self.frame_embed = nn.Embedding(frames, cond_dim)
        coordinates = 3 + (MOTION_FEATURES if motion_coordinates else 0)
        self.stem = nn.Conv3d(pc + coordinates, c0, (1, 3, 3), padding=(0, 1, 1))
        self.enc0 = ResBlock(c0, c0, cond_dim)
        self.down1 = nn.Conv3d(c0, c1, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.enc1 = ResBlock(c1, c1, cond_dim)
        # Per-pixel temporal attention at 6x6 cannot follow a moving object (it crosses ~2.5 cells in a
        # clip); space-time attention there lets every frame of the object see every other, at the same
        # parameter count and step time.
        fine = "all" if space_time_attention else "time"
        self.attn1 = Attention(c1, text_dim, heads, fine)
        self.down2 = nn.Conv3d(c1, c2, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.mid1 = ResBlock(c2, c2, cond_dim)
        self.attn_mid = Attention(c2, text_dim, heads, "all")
        self.mid2 = ResBlock(c2, c2, cond_dim)
        self.up2 = nn.Conv3d(c2, c1 * 4, 1)
        self.dec1 = ResBlock(2 * c1, c1, cond_dim)
        self.attn_dec1 = Attention(c1, text_dim, heads, fine)
        self.up1 = nn.Conv3d(c1, c0 * 4, 1)
        self.dec0 = ResBlock(2 * c0, c0, cond_dim)
        self.out_norm = nn.GroupNorm(_groups(c0), c0)
        self.out = nn.Conv3d(c0, pc, (1, 3, 3), padding=(0, 1, 1))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def _shuffle(x, r, inverse=False):
        """Pixel (un)shuffle of every frame of [B,C,T,H,W]."""
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        frames = F.pixel_shuffle(frames, r) if inverse else F.pixel_unshuffle(frames, r)
        return frames.reshape(b, t, *frames.shape[1:]).transpose(1, 2)

    def _with_coordinates(self, h, emb):
        """Append x, y and frame-index channels in [-1, 1] and, with `motion_coordinates`, the
        co-moving coordinates x - dx * f, y - dy * f of each object's parsed screen motion (dx, dy
        in image widths over the clip, read from the begin token of `emb`; see `text.py`).

        From pure noise a convolutional network has no idea where it is; to draw an object that
        starts on the right and ends on the left it must, and the side flips with the caption's
        direction word. Kinograph-mini trained with only x, y and frame channels drew the axis of
        motion right but "left" and "right" alike: the sign is a three-way interaction of caption,
        frame and position that it never learned (its prediction from pure noise was the same for
        both words). In co-moving coordinates a moving object stands still, and a still pattern is
        what such a network learns easily."""
        b, _, t, hh, ww = h.shape
        frame = (torch.arange(t, device=h.device) % NATIVE_FRAMES) / (NATIVE_FRAMES - 1) * 2 - 1
        f, y, x = torch.meshgrid(frame.to(h.dtype), torch.linspace(-1, 1, hh, device=h.device, dtype=h.dtype),
                                 torch.linspace(-1, 1, ww, device=h.device, dtype=h.dtype), indexing="ij")
        coords = [torch.stack([x, y, f]).expand(b, -1, -1, -1, -1)]
        if self.config.motion_coordinates:
            d = emb[:, 0, :MOTION_FEATURES].to(h.dtype)[:, :, None, None, None]   # [B,4,1,1,1]
            base = torch.stack([x, y, x, y])[None]                                # [1,4,T,H,W]
            coords.append(base - d * f)
        return torch.cat([h, *coords], dim=1)

    def forward(self, x, t, emb, mask):
        p = self.config.patch
        mask = mask.bool()
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        fmask = mask.to(emb.dtype)[..., None]
        pooled = (emb * fmask).sum(1) / fmask.sum(1).clamp(min=1.0)
        c = self.time_mlp(timestep_embedding(t, self.config.channels[0]).to(x.dtype)) + self.text_pool(pooled)
        frame_index = torch.arange(x.shape[2], device=x.device) % self.config.frames
        c = F.silu(c[:, None] + self.frame_embed(frame_index).to(c.dtype)[None])
        h0 = self.enc0(self.stem(self._with_coordinates(self._shuffle(x, p), emb)), c)
        h1 = self.attn1(self.enc1(self.down1(h0), c), emb, mask)
        h = self.mid1(self.down2(h1), c)
        h = self.mid2(self.attn_mid(h, emb, mask), c)
        h = self._shuffle(self.up2(h), 2, inverse=True)
        h = self.attn_dec1(self.dec1(torch.cat([h, h1], 1), c), emb, mask)
        h = self._shuffle(self.up1(h), 2, inverse=True)
        h = self.dec0(torch.cat([h, h0], 1), c)
        x0 = self._shuffle(self.out(F.silu(self.out_norm(h))), p, inverse=True)
        return (x - x0) / t.clamp(min=T_MIN).to(x0.dtype)[:, None, None, None, None]


def load_mini(folder, device="cpu", dtype=torch.float32):
    """(KinographMini, MiniTextEncoder) from a folder with `transformer/` and `text_encoder/` subfolders."""
    from nodes.mini.text import MiniTextEncoder

    folder = Path(folder)
    model = KinographMini.from_pretrained(folder / "transformer", torch_dtype=dtype).to(device).eval()
    text_encoder = MiniTextEncoder.from_pretrained(folder / "text_encoder", torch_dtype=dtype).to(device).eval()
    return model, text_encoder
