"""PixelDiT's transformer (NVIDIA's pixel-space text-to-image model; ComfyUI's diffusion_models/
pixeldit_1300m_1024px_bf16.safetensors), in the released files' own names. diffusers has no PixelDiT.

It samples the picture itself (RGB in [-1, 1], no VAE) in two levels. Patch level: 16x16 patches are tokens of an
MMDiT (each block modulates picture and prompt apart by the time alone, projects each to q, k, v in one matrix,
RMS-norms queries and keys per head, turns them by 2-D (picture) and 1-D (prompt) rotary positions and attends over
[prompt ; picture]; SwiGLU feed-forwards). Pixel level: every pixel is a token of its own (a linear lift plus MAE's
sin/cos position), modulated per pixel by its patch's final token; attention runs over patches, each patch's pixels
compressed into one token and expanded back. The model is told sigma times 1000 (sin/cos over a period of 10) and
predicts the flow from the picture to noise.

The prompt is Gemma-2-2B's last hidden states (300 tokens at most), projected, RMS-normed and given a learned position
per token (y_pos_embedding)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from nodes.generate.lens_model import SwiGLU         # the same w1 / w2 / w3 feed-forward, names and all

EPS = 1e-6
THETA = 10000.0
TIME_CHANNELS = 256
TIME_PERIOD = 10.0          # the timestep embedder's longest period (ComfyUI's max_period=10)
ROPE_SPAN = 16.0            # 2-D rotary positions run 0..16 across the picture, whatever its size
PIXEL_MLP_PATCHES = 4096    # patches whose pixels go through a pixel block's MLP at once (1 M pixels; 0.13 GB hidden in bf16)


def _rms(dim: int) -> nn.RMSNorm:
    return nn.RMSNorm(dim, eps=EPS)


def grid_angles(head: int, h: int, w: int, theta_w: float = THETA, theta_h: float = THETA) -> torch.Tensor:
    """[h * w, head / 2] angles of a 2-D rotary embedding: column and row frequencies alternating pair by pair, the
    positions spread evenly over 0..ROPE_SPAN on each axis (PiD stretches each axis's theta for its size)."""
    steps = torch.arange(0, head, 4, dtype=torch.float64)[: head // 4] / head
    ys, xs = torch.meshgrid(torch.linspace(0, ROPE_SPAN, h), torch.linspace(0, ROPE_SPAN, w), indexing="ij")
    return torch.stack([xs.reshape(-1, 1).double() * theta_w ** -steps,
                        ys.reshape(-1, 1).double() * theta_h ** -steps], -1).reshape(h * w, -1).float()


def line_angles(head: int, n: int) -> torch.Tensor:
    """[n, head / 2] angles of a 1-D rotary embedding at positions 0..n-1 (the prompt's)."""
    inv = 1.0 / THETA ** (torch.arange(0, head, 2, dtype=torch.float64) / head)
    return (torch.arange(n, dtype=torch.float64)[:, None] * inv[None]).float()


def rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x [B, heads, S, D] turned by `angles` [S, D / 2], adjacent channels forming each pair."""
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)


def pixel_positions(dim: int, h: int, w: int, device=None) -> torch.Tensor:
    """[h * w, dim]: MAE's 2-D sin/cos position of every pixel, the column's half first, then the row's (made where
    the picture is: 1 GB of float32 at 4096 px, every step)."""
    omega = 1.0 / THETA ** (torch.arange(dim // 4, dtype=torch.float32, device=device) / (dim / 4.0))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device),
                            torch.arange(w, dtype=torch.float32, device=device), indexing="ij")
    cw, ch = xs.reshape(-1, 1) * omega, ys.reshape(-1, 1) * omega
    return torch.cat([cw.sin(), cw.cos(), ch.sin(), ch.cos()], 1)


def heads(x: torch.Tensor, n: int) -> tuple:
    """q, k, v [B, n, S, D] out of one projection [B, S, 3 * n * D]."""
    b, s, _ = x.shape
    return x.reshape(b, s, 3, n, -1).permute(2, 0, 3, 1, 4).unbind(0)


def merged(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).flatten(2)


class Linear(nn.Module):
    """A projection kept under `.proj` (and an optional RMS norm after it), as the release names its embedders."""
    def __init__(self, din: int, dout: int, norm: bool = False):
        super().__init__()
        self.proj = nn.Linear(din, dout)
        self.norm = _rms(dout) if norm else nn.Identity()

    def forward(self, x):
        return self.norm(self.proj(x))


class GeluMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class TimeEmbedder(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(TIME_CHANNELS, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor, dtype) -> torch.Tensor:
        half = TIME_CHANNELS // 2
        freqs = torch.exp(-math.log(TIME_PERIOD) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([args.cos(), args.sin()], -1).to(dtype))


def modulated(x, shift, scale):
    return x * (1 + scale) + shift


class JointAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.n = n_heads
        head = dim // n_heads
        self.qkv_x, self.qkv_y = nn.Linear(dim, 3 * dim, bias=False), nn.Linear(dim, 3 * dim, bias=False)
        self.q_norm_x, self.k_norm_x, self.q_norm_y, self.k_norm_y = (_rms(head) for _ in range(4))
        self.proj_x, self.proj_y = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x, y, img_angles, txt_angles):
        qx, kx, vx = heads(self.qkv_x(x), self.n)
        qy, ky, vy = heads(self.qkv_y(y), self.n)
        qx, kx = rotate(self.q_norm_x(qx), img_angles), rotate(self.k_norm_x(kx), img_angles)
        qy, ky = self.q_norm_y(qy), self.k_norm_y(ky)
        if txt_angles is not None:
            qy, ky = rotate(qy, txt_angles), rotate(ky, txt_angles)
        out = F.scaled_dot_product_attention(torch.cat([qy, qx], 2), torch.cat([ky, kx], 2), torch.cat([vy, vx], 2))
        ny = y.shape[1]
        return self.proj_x(merged(out[:, :, ny:])), self.proj_y(merged(out[:, :, :ny]))


class PatchBlock(nn.Module):
    """One MMDiT block of the patch level (ComfyUI's MMDiTBlockT2I)."""
    def __init__(self, dim: int, n_heads: int, ff: int):
        super().__init__()
        self.norm_x1, self.norm_y1, self.norm_x2, self.norm_y2 = (_rms(dim) for _ in range(4))
        self.attn = JointAttention(dim, n_heads)
        self.mlp_x, self.mlp_y = SwiGLU(dim, ff), SwiGLU(dim, ff)
        self.adaLN_modulation_img = nn.Sequential(nn.Linear(dim, 6 * dim))
        self.adaLN_modulation_txt = nn.Sequential(nn.Linear(dim, 6 * dim))

    def forward(self, x, y, c, img_angles, txt_angles):
        mx = self.adaLN_modulation_img(c).chunk(6, -1)
        my = self.adaLN_modulation_txt(c).chunk(6, -1)
        ax, ay = self.attn(modulated(self.norm_x1(x), mx[0], mx[1]), modulated(self.norm_y1(y), my[0], my[1]),
                           img_angles, txt_angles)
        x, y = x + mx[2] * ax, y + my[2] * ay
        x = x + mx[5] * self.mlp_x(modulated(self.norm_x2(x), mx[3], mx[4]))
        y = y + my[5] * self.mlp_y(modulated(self.norm_y2(y), my[3], my[4]))
        return x, y


class SelfAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.n = n_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_norm, self.k_norm = _rms(dim // n_heads), _rms(dim // n_heads)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, angles):
        q, k, v = heads(self.qkv(x), self.n)
        q, k = rotate(self.q_norm(q), angles), rotate(self.k_norm(k), angles)
        return self.proj(merged(F.scaled_dot_product_attention(q, k, v)))


class PixelBlock(nn.Module):
    """One block of the pixel level (ComfyUI's PiTBlock): per-pixel adaLN from the patch's token; attention over
    patches, each patch's pixels compressed into one token of attn_dim and expanded back."""
    def __init__(self, pixel_dim: int, patch_dim: int, pixels: int, attn_dim: int, n_heads: int):
        super().__init__()
        self.pixel_dim = pixel_dim
        self.compress_to_attn = nn.Linear(pixels * pixel_dim, attn_dim)
        self.expand_from_attn = nn.Linear(attn_dim, pixels * pixel_dim)
        self.norm1, self.norm2 = _rms(pixel_dim), _rms(pixel_dim)
        self.attn = SelfAttention(attn_dim, n_heads)
        self.mlp = GeluMlp(pixel_dim, 4 * pixel_dim)
        self.adaLN_modulation_msa = nn.Linear(patch_dim, 3 * pixel_dim * pixels)
        self.adaLN_modulation_mlp = nn.Linear(patch_dim, 3 * pixel_dim * pixels)

    def forward(self, x, cond, batch: int, angles):
        """x [B * L, pixels, pixel_dim]; cond [B * L, patch_dim]; angles of the L patches."""
        bl, p2, d = x.shape
        shift, scale, gate = self.adaLN_modulation_msa(cond).view(bl, p2, 3 * d).chunk(3, -1)
        tokens = self.compress_to_attn(modulated(self.norm1(x), shift, scale).reshape(bl, p2 * d))
        attn = self.attn(tokens.view(batch, bl // batch, -1), angles)
        x = torch.addcmul(x, gate, self.expand_from_attn(attn.reshape(bl, -1)).view(bl, p2, d))
        # Each modulation is 3 values per pixel channel (1.6 GB at PiD's 4096 px in bf16): the attention's goes before
        # the MLP's comes, and the MLP's shift and scale before the MLP runs (its gate copied out of their storage).
        del shift, scale, gate
        shift, scale, gate = self.adaLN_modulation_mlp(cond).view(bl, p2, 3 * d).chunk(3, -1)
        gate = gate.contiguous()
        h = modulated(self.norm2(x), shift, scale)
        del shift, scale
        # The MLP's hidden layer is 4x the pixels' width (2 GB and its GELU as much again at 4096 px): run it over
        # some patches at a time into x (a fresh tensor since the addcmul), as ComfyUI's PiTBlock chunks it.
        for rows in range(0, bl, PIXEL_MLP_PATCHES):
            x[rows:rows + PIXEL_MLP_PATCHES].addcmul_(gate[rows:rows + PIXEL_MLP_PATCHES],
                                                      self.mlp(h[rows:rows + PIXEL_MLP_PATCHES]))
        return x


class PixelDiTTransformer(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, in_channels: int = 3, hidden_size: int = 1536, num_groups: int = 24,
                 pixel_hidden_size: int = 16, pixel_attn_hidden_size: int = 1152, pixel_num_groups: int = 16,
                 patch_depth: int = 14, pixel_depth: int = 2, patch_size: int = 16, txt_embed_dim: int = 2304,
                 txt_max_length: int = 300, mlp_hidden: int = 4096, use_text_rope: bool = True):
        super().__init__()
        p2 = patch_size * patch_size
        self.pixel_embedder = Linear(in_channels, pixel_hidden_size)
        self.s_embedder = Linear(in_channels * p2, hidden_size)
        self.t_embedder = TimeEmbedder(hidden_size)
        self.y_embedder = Linear(txt_embed_dim, hidden_size, norm=True)
        self.y_pos_embedding = nn.Parameter(torch.zeros(1, txt_max_length, hidden_size))
        self.patch_blocks = nn.ModuleList(PatchBlock(hidden_size, num_groups, mlp_hidden) for _ in range(patch_depth))
        self.pixel_blocks = nn.ModuleList(
            PixelBlock(pixel_hidden_size, hidden_size, p2, pixel_attn_hidden_size, pixel_num_groups)
            for _ in range(pixel_depth))
        self.final_layer = nn.Module()
        self.final_layer.norm = _rms(pixel_hidden_size)
        self.final_layer.linear = nn.Linear(pixel_hidden_size, in_channels)

    def before_patch_block(self, s: torch.Tensor, i: int, extra: dict) -> torch.Tensor:
        """What a variant adds to the patch tokens before block i (PiD: its low-quality latent's gate)."""
        return s

    def prepared(self, extra: dict, x: torch.Tensor) -> dict:
        """A variant's inputs beside the picture, ready for before_patch_block."""
        return extra

    def angles(self, head: int, hs: int, ws: int) -> torch.Tensor:
        """The rotary angles of the patch grid, for heads `head` wide."""
        return grid_angles(head, hs, ws)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor, **extra) -> torch.Tensor:
        """x [B, C, H, W] (H, W multiples of the patch); timestep [B] (sigma x 1000); context [B, L, txt_embed_dim]
        -> the flow [B, C, H, W]."""
        cfg = self.config
        b, c, h, w = x.shape
        p = cfg.patch_size
        hs, ws = h // p, w // p
        dtype = x.dtype
        t = self.t_embedder(timestep.reshape(-1), dtype).view(b, -1, cfg.hidden_size)
        n = min(context.shape[1], cfg.txt_max_length)
        y = self.y_embedder(context[:, :n].to(dtype)) + self.y_pos_embedding[:, :n].to(dtype)
        img_angles = self.angles(cfg.hidden_size // cfg.num_groups, hs, ws).to(x.device)
        txt_angles = line_angles(cfg.hidden_size // cfg.num_groups, n).to(x.device) if cfg.use_text_rope else None
        cond = F.silu(t)
        s = self.s_embedder(F.unfold(x, kernel_size=p, stride=p).transpose(1, 2))
        extra = self.prepared(extra, x)
        for i, blk in enumerate(self.patch_blocks):
            s = self.before_patch_block(s, i, extra)
            s, y = blk(s, y, cond, img_angles, txt_angles)
        s = F.silu(t + s).reshape(b * hs * ws, cfg.hidden_size)

        d = cfg.pixel_hidden_size
        px = self.pixel_embedder(x.permute(0, 2, 3, 1)) + pixel_positions(d, h, w, x.device).to(dtype).view(h, w, d)
        px = px.view(b, hs, p, ws, p, d).permute(0, 1, 3, 2, 4, 5).reshape(b * hs * ws, p * p, d)
        angles = self.angles(cfg.pixel_attn_hidden_size // cfg.pixel_num_groups, hs, ws).to(x.device)
        for blk in self.pixel_blocks:
            px = blk(px, s, b, angles)
        out = self.final_layer.linear(self.final_layer.norm(px))
        out = out.view(b, hs * ws, p * p, c).permute(0, 3, 2, 1).reshape(b, c * p * p, hs * ws)
        return F.fold(out, (h, w), kernel_size=p, stride=p)


class ResBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(nn.GroupNorm(4, dim), nn.SiLU(), nn.Conv2d(dim, dim, 3, padding=1),
                                   nn.GroupNorm(4, dim), nn.SiLU(), nn.Conv2d(dim, dim, 3, padding=1))

    def forward(self, x):
        return x + self.block(x)


class Gate(nn.Module):
    """PiD's sigma-aware gate: the low-quality latent's feature added by sigmoid(content - e^log_alpha x sigma)."""
    def __init__(self, dim: int):
        super().__init__()
        self.content_proj = nn.Linear(2 * dim, dim)
        self.log_alpha = nn.Parameter(torch.zeros(()))

    def forward(self, s, lq, sigma):
        logit = self.content_proj(torch.cat([s, lq], -1)) - self.log_alpha.float().exp() * sigma.float().view(-1, 1, 1)
        return s + (torch.sigmoid(logit) * lq).to(s.dtype)


class LowQualityProjection(nn.Module):
    def __init__(self, channels: int, hidden: int, out: int, res_blocks: int, outputs: int):
        super().__init__()
        self.latent_proj = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.SiLU(),
                                         nn.Conv2d(hidden, hidden, 3, padding=1),
                                         *(ResBlock(hidden) for _ in range(res_blocks)))
        self.output_heads = nn.ModuleList(nn.Linear(hidden, out) for _ in range(outputs))
        self.gate_modules = nn.ModuleList(Gate(out) for _ in range(outputs))


class PiDTransformer(PixelDiTTransformer):
    """PiD (NVIDIA's Pixel Diffusion Decoder; ComfyUI's pid_*_4step files): PixelDiT's transformer drawing a picture
    4x the size of another model's latent (the low-quality latent, PiDConditioning's) in a few steps. The latent,
    brought to the patch grid (nearest), runs through a small conv net; one of its projections is gated into the
    patch tokens before every lq_interval-th patch block, less as degrade_sigma (how noisy the latent is) grows. The
    rotary angles of both levels stretch theta per axis for grids past the reference's (NTK-aware)."""
    @register_to_config
    def __init__(self, in_channels: int = 3, hidden_size: int = 1536, num_groups: int = 24,
                 pixel_hidden_size: int = 16, pixel_attn_hidden_size: int = 1152, pixel_num_groups: int = 16,
                 patch_depth: int = 14, pixel_depth: int = 2, patch_size: int = 16, txt_embed_dim: int = 2304,
                 txt_max_length: int = 300, mlp_hidden: int = 4096, use_text_rope: bool = True,
                 lq_latent_channels: int = 16, lq_hidden_dim: int = 512, lq_num_res_blocks: int = 4,
                 lq_interval: int = 2, lq_outputs: int = 7, rope_ref: int = 1024):
        super().__init__(in_channels, hidden_size, num_groups, pixel_hidden_size, pixel_attn_hidden_size,
                         pixel_num_groups, patch_depth, pixel_depth, patch_size, txt_embed_dim, txt_max_length,
                         mlp_hidden, use_text_rope)
        self.lq_proj = LowQualityProjection(lq_latent_channels, lq_hidden_dim, self.config.hidden_size,
                                            lq_num_res_blocks, lq_outputs)

    def angles(self, head: int, hs: int, ws: int) -> torch.Tensor:
        ref = self.config.rope_ref // self.config.patch_size
        axis = head // 2
        power = axis / (axis - 2) if axis > 2 else 0.0
        return grid_angles(head, hs, ws, THETA * (ws / ref) ** power, THETA * (hs / ref) ** power)

    def prepared(self, extra: dict, x: torch.Tensor) -> dict:
        lq, sigma = extra.get("lq_latent"), extra.get("degrade_sigma")
        if lq is None or sigma is None:
            raise ValueError("PiD reads a low-quality latent and its degrade_sigma (PiDConditioning's)")
        p = self.config.patch_size
        hs, ws = x.shape[2] // p, x.shape[3] // p
        lq = lq.to(x)
        if tuple(lq.shape[2:]) != (hs, ws):
            lq = F.interpolate(lq, size=(hs, ws), mode="nearest")
        tokens = self.lq_proj.latent_proj(lq).flatten(2).transpose(1, 2)
        sigma = sigma.to(x.device, torch.float32).reshape(-1)
        return {"features": [head(tokens) for head in self.lq_proj.output_heads],
                "sigma": sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma}

    def before_patch_block(self, s, i, extra):
        k = i // self.config.lq_interval
        if i % self.config.lq_interval or k >= len(extra["features"]):
            return s
        return self.lq_proj.gate_modules[k](s, extra["features"][k], extra["sigma"])
