"""A tiny random-weight PixelDiT in the layout ComfyUI users hold it (Comfy-Org/PixelDiT), and ComfyUI's code for it
written out as the reference (it shares no code with Kinograph's):

  root/models/diffusion_models/pixeldit_tiny_bf16.safetensors   ComfyPixDiT's tensors (comfy/ldm/pixeldit/model.py and
                      modules.py: PixDiT_T2I's names) under model.diffusion_model., bf16
  root/models/diffusion_models/pid_flux1_tiny_bf16.safetensors   ComfyPiD's (comfy/ldm/pixeldit/pid.py PidNet's names:
                      lq_proj.*), reading FLUX.1's 16-channel latent, bf16
  root/models/text_encoders/gemma2_tiny_bf16.safetensors        Gemma 2 as ComfyUI's text_encoders/gemma_2_2b_it_elm_*
                      hold it: transformers' names under model., a sentencepiece model trained here as spiece_model

Widths are tiny; the structure is the release's: 16x16 patches of 3 colours, MMDiT patch blocks with SwiGLU, pixel
blocks compressing each patch's 256 pixels into one token, 300 learned text positions, Gemma 2's sandwich norms."""
from __future__ import annotations

import io
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

MODEL, TE = "pixeldit_tiny_bf16.safetensors", "gemma2_tiny_bf16.safetensors"
PID = "pid_flux1_tiny_bf16.safetensors"
PREFIX = "model.diffusion_model."
GEMMA = dict(hidden=32, heads=2, kv_heads=1, head_dim=32, inter=48, layers=2, vocab=200)


# -- ComfyUI's PixelDiT (comfy/ldm/pixeldit/model.py, modules.py; comfy/ldm/flux/math.py rope / apply_rope) --------
def flux_rope(pos, dim, theta):
    scale = torch.linspace(0, (dim - 2) / dim, steps=dim // 2, dtype=torch.float64)
    omega = 1.0 / (theta ** scale)
    out = torch.einsum("...n,d->...nd", pos.to(torch.float64), omega)
    out = torch.stack([torch.cos(out), -torch.sin(out), torch.sin(out), torch.cos(out)], dim=-1)
    return out.reshape(*out.shape[:-1], 2, 2).float()


def apply_rope1(x, freqs_cis):
    x_ = x.to(dtype=freqs_cis.dtype).reshape(*x.shape[:-1], -1, 1, 2)
    x_out = freqs_cis[..., 0] * x_[..., 0]
    x_out.addcmul_(freqs_cis[..., 1], x_[..., 1])
    return x_out.reshape(*x.shape).type_as(x)


def precompute_freqs_cis_2d(dim, height, width, theta=10000.0, scale=16.0):
    x_pos = torch.linspace(0, scale, width)
    y_pos = torch.linspace(0, scale, height)
    y_grid, x_grid = torch.meshgrid(y_pos, x_pos, indexing="ij")
    x_pos, y_pos = x_grid.reshape(-1), y_grid.reshape(-1)
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4, dtype=torch.float32)[: (dim // 4)] / dim))
    x_freqs, y_freqs = torch.outer(x_pos, freqs), torch.outer(y_pos, freqs)
    fi = torch.stack([x_freqs, y_freqs], dim=-1).reshape(height * width, -1)
    cos, sin = torch.cos(fi), torch.sin(fi)
    return torch.stack([cos, -sin, sin, cos], dim=-1).reshape(*cos.shape, 2, 2)


def get_2d_sincos_pos_embed(embed_dim, height, width):
    grid_y, grid_x = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                    torch.arange(width, dtype=torch.float32), indexing="ij")
    grid_y, grid_x = grid_y.reshape(-1), grid_x.reshape(-1)
    omega = torch.arange(embed_dim // 4, dtype=torch.float32) / (embed_dim / 4.0)
    omega = 1.0 / (10000.0 ** omega)
    out_w, out_h = torch.outer(grid_x, omega), torch.outer(grid_y, omega)
    emb_w = torch.cat([torch.sin(out_w), torch.cos(out_w)], dim=1)
    emb_h = torch.cat([torch.sin(out_h), torch.cos(out_h)], dim=1)
    return torch.cat([emb_w, emb_h], dim=1)


def apply_adaln_(x, shift, scale):
    return x.addcmul_(x, scale).add_(shift)


def attention(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.rms_norm(x, (x.shape[-1],), self.weight, 1e-6)


class Embed(nn.Module):
    def __init__(self, din, dout, norm=False):
        super().__init__()
        self.proj = nn.Linear(din, dout)
        self.norm = RMSNorm(dout) if norm else nn.Identity()

    def forward(self, x):
        return self.norm(self.proj(x))


class FeedForwardSwiGLU(nn.Module):          # comfy/ldm/hidream/model.py, multiple_of=1
    def __init__(self, dim, hidden_dim):
        super().__init__()
        hidden_dim = int(2 * hidden_dim / 3)
        self.w1, self.w2, self.w3 = nn.Linear(dim, hidden_dim, bias=False), nn.Linear(hidden_dim, dim, bias=False), \
            nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class MMDiTJointAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv_x, self.qkv_y = nn.Linear(dim, dim * 3, bias=False), nn.Linear(dim, dim * 3, bias=False)
        self.q_norm_x, self.k_norm_x = RMSNorm(self.head_dim), RMSNorm(self.head_dim)
        self.q_norm_y, self.k_norm_y = RMSNorm(self.head_dim), RMSNorm(self.head_dim)
        self.proj_x, self.proj_y = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x, y, pos_img, pos_txt):
        B, Nx, _ = x.shape
        Ny = y.shape[1]
        H, D = self.num_heads, self.head_dim
        qx, kx, vx = self.qkv_x(x).reshape(B, Nx, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)
        qx, kx = self.q_norm_x(qx), self.k_norm_x(kx)
        qy, ky, vy = self.qkv_y(y).reshape(B, Ny, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)
        qy, ky = self.q_norm_y(qy), self.k_norm_y(ky)
        qx, kx = apply_rope1(qx, pos_img[None, None]), apply_rope1(kx, pos_img[None, None])
        qy, ky = apply_rope1(qy, pos_txt[None, None]), apply_rope1(ky, pos_txt[None, None])
        out = attention(torch.cat([qy, qx], 2), torch.cat([ky, kx], 2), torch.cat([vy, vx], 2))
        out_y = out[:, :, :Ny].transpose(1, 2).reshape(B, Ny, H * D)
        out_x = out[:, :, Ny:].transpose(1, 2).reshape(B, Nx, H * D)
        return self.proj_x(out_x), self.proj_y(out_y)


class MMDiTBlockT2I(nn.Module):
    def __init__(self, hidden_size, groups):
        super().__init__()
        self.norm_x1, self.norm_y1 = RMSNorm(hidden_size), RMSNorm(hidden_size)
        self.attn = MMDiTJointAttention(hidden_size, groups)
        self.norm_x2, self.norm_y2 = RMSNorm(hidden_size), RMSNorm(hidden_size)
        self.mlp_x, self.mlp_y = FeedForwardSwiGLU(hidden_size, 4 * hidden_size), \
            FeedForwardSwiGLU(hidden_size, 4 * hidden_size)
        self.adaLN_modulation_img = nn.Sequential(nn.Linear(hidden_size, 6 * hidden_size))
        self.adaLN_modulation_txt = nn.Sequential(nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x, y, c, pos_img, pos_txt):
        sx, cx, gx, sx2, cx2, gx2 = self.adaLN_modulation_img(c).chunk(6, dim=-1)
        sy, cy, gy, sy2, cy2, gy2 = self.adaLN_modulation_txt(c).chunk(6, dim=-1)
        ax, ay = self.attn(apply_adaln_(self.norm_x1(x), sx, cx), apply_adaln_(self.norm_y1(y), sy, cy),
                           pos_img, pos_txt)
        x = torch.addcmul(x, gx, ax)
        y = torch.addcmul(y, gy, ay)
        x = torch.addcmul(x, gx2, self.mlp_x(apply_adaln_(self.norm_x2(x), sx2, cx2)))
        y = torch.addcmul(y, gy2, self.mlp_y(apply_adaln_(self.norm_y2(y), sy2, cy2)))
        return x, y


class RotaryAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_norm, self.k_norm = RMSNorm(self.head_dim), RMSNorm(self.head_dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, pos):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope1(q, pos[None, None]), apply_rope1(k, pos[None, None])
        return self.proj(attention(q, k, v).transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):                         # comfy mmdit Mlp: exact GELU
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class PiTBlock(nn.Module):
    def __init__(self, pixel_dim, context_dim, patch_size, attn_dim, num_heads):
        super().__init__()
        self.pixel_dim, self.attn_dim, self.num_heads = pixel_dim, attn_dim, num_heads
        p2 = patch_size * patch_size
        self.compress_to_attn = nn.Linear(p2 * pixel_dim, attn_dim)
        self.expand_from_attn = nn.Linear(attn_dim, p2 * pixel_dim)
        self.norm1, self.norm2 = RMSNorm(pixel_dim), RMSNorm(pixel_dim)
        self.attn = RotaryAttention(attn_dim, num_heads)
        self.mlp = Mlp(pixel_dim, 4 * pixel_dim)
        self.adaLN_modulation_msa = nn.Linear(context_dim, 3 * pixel_dim * p2)
        self.adaLN_modulation_mlp = nn.Linear(context_dim, 3 * pixel_dim * p2)
        self.rope_fn = precompute_freqs_cis_2d

    def forward(self, x, s_cond, image_height, image_width, patch_size):
        BL, P2, _ = x.shape
        Hs, Ws = image_height // patch_size, image_width // patch_size
        L = Hs * Ws
        B = BL // L
        shift_msa, scale_msa, gate_msa = self.adaLN_modulation_msa(s_cond).view(BL, P2, 3 * self.pixel_dim) \
            .chunk(3, dim=-1)
        x_norm = apply_adaln_(self.norm1(x), shift_msa, scale_msa)
        x_comp = self.compress_to_attn(x_norm.view(BL, P2 * self.pixel_dim)).view(B, L, self.attn_dim)
        pos = self.rope_fn(self.attn_dim // self.num_heads, Hs, Ws).to(x.dtype)
        attn_out = self.attn(x_comp, pos)
        attn_exp = self.expand_from_attn(attn_out.view(B * L, self.attn_dim)).view(BL, P2, self.pixel_dim)
        x = torch.addcmul(x, gate_msa, attn_exp)
        shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation_mlp(s_cond).view(BL, P2, 3 * self.pixel_dim) \
            .chunk(3, dim=-1)
        mlp_input = apply_adaln_(self.norm2(x), shift_mlp, scale_mlp)
        return x + gate_mlp * self.mlp(mlp_input)


class TimestepEmbedder(nn.Module):            # comfy mmdit TimestepEmbedder with PixDiT's max_period=10
    def __init__(self, hidden_size, frequency_embedding_size=256, max_period=10):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))
        self.frequency_embedding_size, self.max_period = frequency_embedding_size, max_period

    def forward(self, t, dtype):
        half = self.frequency_embedding_size // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(dtype))


class ComfyPixDiT(nn.Module):
    def __init__(self, hidden_size=32, num_groups=2, pixel_hidden_size=4, pixel_attn_hidden_size=32,
                 pixel_num_groups=2, patch_depth=2, pixel_depth=1, patch_size=16, txt_embed_dim=32,
                 txt_max_length=300):
        super().__init__()
        self.hidden_size, self.num_groups, self.patch_size = hidden_size, num_groups, patch_size
        self.pixel_hidden_size, self.txt_max_length = pixel_hidden_size, txt_max_length
        self.pixel_embedder = Embed(3, pixel_hidden_size)
        self.s_embedder = Embed(3 * patch_size ** 2, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = Embed(txt_embed_dim, hidden_size, norm=True)
        self.y_pos_embedding = nn.Parameter(torch.randn(1, txt_max_length, hidden_size))
        self.patch_blocks = nn.ModuleList(MMDiTBlockT2I(hidden_size, num_groups) for _ in range(patch_depth))
        self.pixel_blocks = nn.ModuleList(PiTBlock(pixel_hidden_size, hidden_size, patch_size,
                                                   pixel_attn_hidden_size, pixel_num_groups)
                                          for _ in range(pixel_depth))
        self.final_layer = nn.Module()
        self.final_layer.norm = RMSNorm(pixel_hidden_size)
        self.final_layer.linear = nn.Linear(pixel_hidden_size, 3)

    def pre_patch_block(self, s, i, **kwargs):
        return s

    def patch_pos(self, hs, ws):
        return precompute_freqs_cis_2d(self.hidden_size // self.num_groups, hs, ws)

    def forward(self, x, timesteps, context, **kwargs):
        B, _, H, W = x.shape
        p = self.patch_size
        Hs, Ws = H // p, W // p
        L = Hs * Ws
        pos_img = self.patch_pos(Hs, Ws).to(x.dtype)
        x_patches = F.unfold(x, kernel_size=p, stride=p).transpose(1, 2)
        t_emb = self.t_embedder(timesteps.view(-1), x.dtype).view(B, -1, self.hidden_size)
        Ltxt = min(context.shape[1], self.txt_max_length)
        y_emb = self.y_embedder(context[:, :Ltxt]).view(B, Ltxt, self.hidden_size)
        y_emb = y_emb + self.y_pos_embedding[:, :Ltxt].to(y_emb)
        condition = F.silu(t_emb)
        pos_txt = flux_rope(torch.arange(Ltxt, dtype=torch.float32).reshape(1, -1),
                            self.hidden_size // self.num_groups, 10000.0).squeeze(0).to(x.dtype)
        s = self.s_embedder(x_patches)
        for i, blk in enumerate(self.patch_blocks):
            s = self.pre_patch_block(s, i, **kwargs)
            s, y_emb = blk(s, y_emb, condition, pos_img, pos_txt)
        s = F.silu(t_emb + s)
        s_cond = s.view(B * L, self.hidden_size)
        xp = self.pixel_embedder.proj(x.permute(0, 2, 3, 1).contiguous())
        xp = xp + get_2d_sincos_pos_embed(self.pixel_hidden_size, H, W).to(xp).view(H, W, -1).unsqueeze(0)
        xp = xp.view(B, Hs, p, Ws, p, -1).permute(0, 1, 3, 2, 4, 5).contiguous().view(B * L, p * p, -1)
        for blk in self.pixel_blocks:
            xp = blk(xp, s_cond, H, W, p)
        xp = self.final_layer.linear(self.final_layer.norm(xp))
        xp = xp.view(B, L, p * p, 3).permute(0, 3, 2, 1).reshape(B, 3 * p * p, L)
        return F.fold(xp, (H, W), kernel_size=p, stride=p)


# -- ComfyUI's PiD (comfy/ldm/pixeldit/pid.py) -------------------------------------------------------------------
def precompute_freqs_cis_2d_ntk(dim, height, width, ref_grid_h, ref_grid_w, theta=10000.0, scale=16.0):
    dim_axis = dim // 2
    h_ntk = (height / ref_grid_h) ** (dim_axis / (dim_axis - 2)) if dim_axis > 2 else 1.0
    w_ntk = (width / ref_grid_w) ** (dim_axis / (dim_axis - 2)) if dim_axis > 2 else 1.0
    x_lin, y_lin = torch.linspace(0, scale, width), torch.linspace(0, scale, height)
    y_grid, x_grid = torch.meshgrid(y_lin, x_lin, indexing="ij")
    x_rope = flux_rope(x_grid.reshape(1, -1), dim_axis, theta * w_ntk).squeeze(0)
    y_rope = flux_rope(y_grid.reshape(1, -1), dim_axis, theta * h_ntk).squeeze(0)
    return torch.stack([x_rope, y_rope], dim=2).reshape(height * width, dim // 2, 2, 2)


class SigmaAwareGatePerTokenPerDim(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.content_proj = nn.Linear(dim * 2, dim)
        self.log_alpha = nn.Parameter(torch.tensor(0.3))

    def forward(self, x, lq, sigma):
        content_logit = self.content_proj(torch.cat([x, lq], dim=-1))
        sigma_offset = -self.log_alpha.float().exp() * sigma.float().view(-1, 1, 1)
        return x + (torch.sigmoid(content_logit + sigma_offset) * lq).to(x.dtype)


class ResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.block = nn.Sequential(nn.GroupNorm(4, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                   nn.GroupNorm(4, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x):
        return x + self.block(x)


class LQProjection2D(nn.Module):
    """sr_scale 4, latent_spatial_down_factor 8, patch 16: z_to_patch_ratio 2 >= 1, so the latent is brought to the
    patch grid by nearest interpolation (the fold branch is for ratios under 1)."""
    def __init__(self, latent_channels, hidden_dim, out_dim, num_res_blocks, num_outputs):
        super().__init__()
        self.latent_proj = nn.Sequential(nn.Conv2d(latent_channels, hidden_dim, 3, padding=1), nn.SiLU(),
                                         nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1),
                                         *[ResBlock(hidden_dim) for _ in range(num_res_blocks)])
        self.output_heads = nn.ModuleList([nn.Linear(hidden_dim, out_dim) for _ in range(num_outputs)])
        self.gate_modules = nn.ModuleList([SigmaAwareGatePerTokenPerDim(out_dim) for _ in range(num_outputs)])

    def forward(self, lq_latent, pH, pW):
        if lq_latent.shape[2] != pH or lq_latent.shape[3] != pW:
            lq_latent = F.interpolate(lq_latent, size=(pH, pW), mode="nearest")
        tokens = self.latent_proj(lq_latent).flatten(2).transpose(1, 2)
        return [head(tokens) for head in self.output_heads]


class ComfyPiD(ComfyPixDiT):
    def __init__(self, lq_latent_channels=16, lq_hidden_dim=8, lq_num_res_blocks=2, lq_interval=2, patch_depth=3,
                 rope_ref=1024):
        super().__init__(patch_depth=patch_depth)
        self.ref = rope_ref // self.patch_size
        self.interval = lq_interval
        self.lq_proj = LQProjection2D(lq_latent_channels, lq_hidden_dim, self.hidden_size, lq_num_res_blocks,
                                      (patch_depth + lq_interval - 1) // lq_interval)
        for blk in self.pixel_blocks:      # PiD's pixel blocks turn by the NTK-aware angles too
            blk.rope_fn = lambda d, h, w: precompute_freqs_cis_2d_ntk(d, h, w, self.ref, self.ref)

    def patch_pos(self, hs, ws):
        return precompute_freqs_cis_2d_ntk(self.hidden_size // self.num_groups, hs, ws, self.ref, self.ref)

    def pre_patch_block(self, s, i, pid_lq_features=(), pid_degrade_sigma=None, **kwargs):
        if i % self.interval != 0 or i // self.interval >= len(pid_lq_features):
            return s
        return self.lq_proj.gate_modules[i // self.interval](s, pid_lq_features[i // self.interval],
                                                             pid_degrade_sigma)

    def forward(self, x, timesteps, context, lq_latent=None, degrade_sigma=None):
        B = x.shape[0]
        degrade_sigma = degrade_sigma.float().reshape(-1)
        if degrade_sigma.numel() == 1 and B > 1:
            degrade_sigma = degrade_sigma.expand(B).contiguous()
        feats = self.lq_proj(lq_latent.to(x), x.shape[2] // self.patch_size, x.shape[3] // self.patch_size)
        return super().forward(x, timesteps, context, pid_lq_features=feats, pid_degrade_sigma=degrade_sigma)


def _jitter(model):
    with torch.no_grad():       # norms start at one: random ones show whether each is read, and from where
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def pid_transformer(seed: int = 62) -> ComfyPiD:
    torch.manual_seed(seed)
    return _jitter(ComfyPiD())


def transformer(seed: int = 60) -> ComfyPixDiT:
    torch.manual_seed(seed)
    return _jitter(ComfyPixDiT())


# -- ComfyUI's Gemma 2 (comfy/text_encoders/llama.py, transformer_type gemma2) ---------------------------------------
def _rms_add(x, w):
    return F.rms_norm(x, (x.shape[-1],), w + 1.0, 1e-6)


def _rotate_half(x):
    return torch.cat((-x[..., x.shape[-1] // 2:], x[..., : x.shape[-1] // 2]), dim=-1)


def comfy_gemma2(sd: dict, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Last hidden states [1, S, hidden] of ComfyUI's Gemma2_2B on ids [1, S] with its attention mask [1, S]."""
    g = GEMMA
    x = F.embedding(ids, sd["embed_tokens.weight"]) * g["hidden"] ** 0.5
    S = ids.shape[1]
    m = 1.0 - mask.float().reshape(1, 1, 1, S).expand(1, 1, S, S)
    m = m.masked_fill(m.bool(), float("-inf")) + torch.full((S, S), float("-inf")).triu_(1)
    inv = 1.0 / (10000.0 ** (torch.arange(0, g["head_dim"], 2).float() / g["head_dim"]))
    ang = torch.arange(S).float()[:, None] * inv[None]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    for n in range(g["layers"]):
        p = f"layers.{n}."
        h = _rms_add(x, sd[p + "input_layernorm.weight"])
        q = (h @ sd[p + "self_attn.q_proj.weight"].T).view(1, S, g["heads"], -1).transpose(1, 2)
        k = (h @ sd[p + "self_attn.k_proj.weight"].T).view(1, S, g["kv_heads"], -1).transpose(1, 2)
        v = (h @ sd[p + "self_attn.v_proj.weight"].T).view(1, S, g["kv_heads"], -1).transpose(1, 2)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        rep = g["heads"] // g["kv_heads"]
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=m).transpose(1, 2).reshape(1, S, -1)
        x = x + _rms_add(a @ sd[p + "self_attn.o_proj.weight"].T, sd[p + "post_attention_layernorm.weight"])
        h = _rms_add(x, sd[p + "pre_feedforward_layernorm.weight"])
        h = (F.gelu(h @ sd[p + "mlp.gate_proj.weight"].T, approximate="tanh") * (h @ sd[p + "mlp.up_proj.weight"].T)) \
            @ sd[p + "mlp.down_proj.weight"].T
        x = x + _rms_add(h, sd[p + "post_feedforward_layernorm.weight"])
    return _rms_add(x, sd["norm.weight"])


def gemma_spiece() -> bytes:
    import sentencepiece as spm
    import string
    text = CHI_PROMPT + " ".join(string.ascii_letters + string.digits + string.punctuation)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter([text] * 20), model_writer=model, vocab_size=GEMMA["vocab"],
                                   model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>",
                                   eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>", add_dummy_prefix=False,
                                   # Gemma's own model keeps text as written (new lines and runs of spaces too)
                                   normalization_rule_name="identity", remove_extra_whitespaces=False,
                                   minloglevel=2)
    return model.getvalue()


def gemma_state() -> dict:
    g = GEMMA
    torch.manual_seed(61)
    r = lambda *s: torch.randn(*s) * 0.2  # noqa: E731
    sd = {"embed_tokens.weight": torch.randn(g["vocab"], g["hidden"]), "norm.weight": r(g["hidden"])}
    for n in range(g["layers"]):
        p = f"layers.{n}."
        for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm"):
            sd[p + norm + ".weight"] = r(g["hidden"])
        sd.update({p + "self_attn.q_proj.weight": r(g["heads"] * g["head_dim"], g["hidden"]),
                   p + "self_attn.k_proj.weight": r(g["kv_heads"] * g["head_dim"], g["hidden"]),
                   p + "self_attn.v_proj.weight": r(g["kv_heads"] * g["head_dim"], g["hidden"]),
                   p + "self_attn.o_proj.weight": r(g["hidden"], g["heads"] * g["head_dim"]),
                   p + "mlp.gate_proj.weight": r(g["inter"], g["hidden"]),
                   p + "mlp.up_proj.weight": r(g["inter"], g["hidden"]),
                   p + "mlp.down_proj.weight": r(g["hidden"], g["inter"])})
    return {k: v.bfloat16() for k, v in sd.items()}


def build_pixeldit(root: Path) -> Path:
    from safetensors.torch import save_file
    models = root / "models"
    for sub in ("diffusion_models", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    for name, model in ((MODEL, transformer()), (PID, pid_transformer())):
        sd = {PREFIX + k: v.bfloat16().contiguous() for k, v in model.state_dict().items()}
        save_file(sd, str(models / "diffusion_models" / name))
    te = {"model." + k: v for k, v in gemma_state().items()}
    te["spiece_model"] = torch.frombuffer(bytearray(gemma_spiece()), dtype=torch.uint8)
    save_file(te, str(models / "text_encoders" / TE))
    return root


def reference(root: Path, name: str = MODEL) -> ComfyPixDiT:
    """The reference transformer holding what the file `name` reads back as."""
    from safetensors.torch import load_file
    model = transformer() if name == MODEL else pid_transformer()
    state = load_file(str(root / "models" / "diffusion_models" / name))
    model.load_state_dict({k[len(PREFIX):]: v.float() for k, v in state.items()})
    return model


# comfy/text_encoders/pixeldit.py
CHI_PROMPT = (
    'Given a user prompt, generate an "Enhanced prompt" that provides detailed visual descriptions '
    "suitable for image generation. Evaluate the level of detail in the user prompt:\n"
    "- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, "
    "and spatial relationships to create vivid and concrete scenes.\n"
    "- If the prompt is already detailed, refine and enhance the existing details slightly without "
    "overcomplicating.\n"
    "Here are examples of how to transform or refine prompts:\n"
    "- User Prompt: A cat sleeping -> Enhanced: A small, fluffy white cat curled up in a round shape, "
    "sleeping peacefully on a warm sunny windowsill, surrounded by pots of blooming red flowers.\n"
    "- User Prompt: A busy city street -> Enhanced: A bustling city street scene at dusk, featuring "
    "glowing street lamps, a diverse crowd of people in colorful clothing, and a double-decker bus "
    "passing by towering glass skyscrapers.\n"
    "Please generate only the enhanced description for the prompt below and avoid including any "
    "additional commentary or evaluations:\n"
    "User Prompt: ")


def reference_states(root: Path, text: str) -> torch.Tensor:
    """ComfyUI's PixelDiT conditioning of `text` on the tiny Gemma 2: [1, 300, hidden]."""
    import sentencepiece as spm
    from safetensors.torch import load_file
    state = load_file(str(root / "models" / "text_encoders" / TE))
    sp = spm.SentencePieceProcessor(model_proto=bytes(state.pop("spiece_model").tolist()))
    sd = {k[len("model."):]: v.float() for k, v in state.items()}
    tok = lambda s: [sp.bos_id()] + sp.encode(s)  # noqa: E731  (SPieceTokenizer add_bos=True, add_eos=False)
    if not text.strip():
        ids = tok("")
        ids = ids + [0] * (300 - len(ids))
    else:
        chi = len(tok(CHI_PROMPT))
        combined = text if text.startswith('Given a user prompt, generate an "Enhanced prompt"') else CHI_PROMPT + text
        ids = tok(combined)[: chi + 298]
        ids = ids + [0] * (chi + 298 - len(ids))
    # sd1_clip: the mask is 0 from the first pad token on
    mask, eos = [], False
    for t in ids:
        mask.append(0 if eos or t == 0 else 1)
        eos = eos or t == 0
    with torch.no_grad():
        cond = comfy_gemma2(sd, torch.tensor([ids]), torch.tensor([mask]))
    if cond.shape[1] > 300:
        cond = torch.cat([cond[:, :1], cond[:, -299:]], dim=1)
    return cond
