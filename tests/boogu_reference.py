"""ComfyUI's Boogu-Image transformer written out (comfy/ldm/boogu/model.py and the OmniGen2 pieces it reuses from
comfy/ldm/omnigen/omnigen2.py, Flux's EmbedND rope): plain torch, sharing no code with nodes/generate/boogu_model.py,
the reference its latents are judged against. Its parameters carry ComfyUI's names, so its state dict under
model.diffusion_model. is the published file's layout (boogu_image_*_fp8_scaled.safetensors) at tiny sizes. With no
dual-stream blocks and its single-stream ones named layers it is comfy/ldm/omnigen/omnigen2.py's
OmniGen2Transformer2DModel (Boogu reuses its helpers; its forward is Boogu's without the dual-stream loop)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def rms(dim, eps):
    return nn.RMSNorm(dim, eps=eps)


def apply_rope(x, freqs):             # comfy omnigen2.apply_rotary_emb: (cos, -sin; sin, cos) on interleaved pairs
    t = x.reshape(*x.shape[:-1], -1, 1, 2)
    return (freqs[..., 0] * t[..., 0] + freqs[..., 1] * t[..., 1]).reshape(*x.shape).to(x.dtype)


def embed_nd(ids, axes, theta=10000):  # comfy flux EmbedND: one rotation matrix per pair, axes side by side
    out = []
    for i, d in enumerate(axes):
        scale = torch.linspace(0, (d - 2) / d, steps=d // 2, dtype=torch.float64)
        omega = 1.0 / (theta ** scale)
        a = torch.einsum("...n,d->...nd", ids[..., i].double(), omega)
        m = torch.stack([torch.cos(a), -torch.sin(a), torch.sin(a), torch.cos(a)], -1)
        out.append(m.reshape(*m.shape[:-1], 2, 2).float())
    return torch.cat(out, -3).unsqueeze(1)


def timestep_embedding(t, dim=256, scale=1000.0):   # flip_sin_to_cos, downscale_freq_shift 0
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / half
    emb = scale * t[:, None].float() * torch.exp(exponent)[None]
    return torch.cat([torch.cos(emb), torch.sin(emb)], -1)


class FF(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.linear_1 = nn.Linear(dim, inner, bias=False)
        self.linear_2 = nn.Linear(inner, dim, bias=False)
        self.linear_3 = nn.Linear(dim, inner, bias=False)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)) * self.linear_3(x))


class NormZero(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.linear = nn.Linear(min(dim, 1024), 4 * dim)
        self.norm = rms(dim, eps)

    def forward(self, x, emb):
        scale_msa, gate_msa, scale_mlp, gate_mlp = self.linear(F.silu(emb)).chunk(4, dim=1)
        return self.norm(x) * (1 + scale_msa[:, None]), gate_msa, scale_mlp, gate_mlp


def attend(q, k, v, heads, kv_heads):
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if kv_heads < heads:
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(q.shape[0], -1, heads * q.shape[-1])


class Attn(nn.Module):
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.head = heads, kv_heads, dim // heads
        self.to_q = nn.Linear(dim, heads * self.head, bias=False)
        self.to_k = nn.Linear(dim, kv_heads * self.head, bias=False)
        self.to_v = nn.Linear(dim, kv_heads * self.head, bias=False)
        self.norm_q = rms(self.head, 1e-5)
        self.norm_k = rms(self.head, 1e-5)
        self.to_out = nn.Sequential(nn.Linear(heads * self.head, dim, bias=False), nn.Dropout(0.0))

    def forward(self, x, rope):
        b = x.shape[0]
        q = self.norm_q(self.to_q(x).view(b, -1, self.heads, self.head))
        k = self.norm_k(self.to_k(x).view(b, -1, self.kv_heads, self.head))
        v = self.to_v(x).view(b, -1, self.kv_heads, self.head)
        return self.to_out[0](attend(apply_rope(q, rope), apply_rope(k, rope), v, self.heads, self.kv_heads))


class Block(nn.Module):              # OmniGen2TransformerBlock
    def __init__(self, dim, heads, kv_heads, inner, eps, modulation=True):
        super().__init__()
        self.modulation = modulation
        self.attn = Attn(dim, heads, kv_heads)
        self.feed_forward = FF(dim, inner)
        self.norm1 = NormZero(dim, eps) if modulation else rms(dim, eps)
        self.ffn_norm1, self.norm2, self.ffn_norm2 = rms(dim, eps), rms(dim, eps), rms(dim, eps)

    def forward(self, x, rope, temb=None):
        if self.modulation:
            h, gate_msa, scale_mlp, gate_mlp = self.norm1(x, temb)
            x = x + gate_msa.unsqueeze(1).tanh() * self.norm2(self.attn(h, rope))
            mlp = self.feed_forward(self.ffn_norm1(x) * (1 + scale_mlp.unsqueeze(1)))
            return x + gate_mlp.unsqueeze(1).tanh() * self.ffn_norm2(mlp)
        x = x + self.norm2(self.attn(self.norm1(x), rope))
        return x + self.ffn_norm2(self.feed_forward(self.ffn_norm1(x)))


class Processor(nn.Module):          # BooguDoubleStreamProcessor's projections
    def __init__(self, dim, head, heads, kv_heads):
        super().__init__()
        q, kv = head * heads, head * kv_heads
        self.img_to_q, self.img_to_k, self.img_to_v = (nn.Linear(q, n, bias=False) for n in (q, kv, kv))
        self.instruct_to_q, self.instruct_to_k, self.instruct_to_v = (nn.Linear(q, n, bias=False) for n in (q, kv, kv))
        self.instruct_out = nn.Linear(q, q, bias=False)
        self.img_out = nn.Linear(q, q, bias=False)


class JointAttn(nn.Module):          # BooguJointAttention + its processor's forward
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.head = heads, kv_heads, dim // heads
        self.norm_q = rms(self.head, 1e-5)
        self.norm_k = rms(self.head, 1e-5)
        self.to_out = nn.Sequential(nn.Linear(dim, dim, bias=False), nn.Dropout(0.0))
        self.processor = Processor(dim, self.head, heads, kv_heads)

    def forward(self, img, ins, rope):
        p, b, n = self.processor, img.shape[0], ins.shape[1]
        q = torch.cat([p.instruct_to_q(ins), p.img_to_q(img)], 1).view(b, -1, self.heads, self.head)
        k = torch.cat([p.instruct_to_k(ins), p.img_to_k(img)], 1).view(b, -1, self.kv_heads, self.head)
        v = torch.cat([p.instruct_to_v(ins), p.img_to_v(img)], 1).view(b, -1, self.kv_heads, self.head)
        out = attend(apply_rope(self.norm_q(q), rope), apply_rope(self.norm_k(k), rope), v, self.heads, self.kv_heads)
        return self.to_out[0](torch.cat([p.instruct_out(out[:, :n]), p.img_out(out[:, n:])], 1))


class DoubleBlock(nn.Module):        # BooguDoubleStreamBlock
    def __init__(self, dim, heads, kv_heads, inner, eps):
        super().__init__()
        self.img_instruct_attn = JointAttn(dim, heads, kv_heads)
        self.img_self_attn = Attn(dim, heads, kv_heads)
        self.img_feed_forward, self.instruct_feed_forward = FF(dim, inner), FF(dim, inner)
        for n in ("img_norm1", "img_norm2", "img_norm3", "instruct_norm1", "instruct_norm2"):
            setattr(self, n, NormZero(dim, eps))
        for n in ("img_attn_norm", "img_self_attn_norm", "img_ffn_norm1", "img_ffn_norm2", "instruct_attn_norm",
                  "instruct_ffn_norm1", "instruct_ffn_norm2"):
            setattr(self, n, rms(dim, eps))

    def forward(self, img, ins, joint_rope, img_rope, temb):
        n = ins.shape[1]
        i1, i_gate_msa, i_scale_mlp, i_gate_mlp = self.img_norm1(img, temb)
        i2, i_shift_mlp, _, _ = self.img_norm2(img, temb)
        i3, i_gate_self, _, _ = self.img_norm3(img, temb)
        t1, t_gate_msa, t_scale_mlp, t_gate_mlp = self.instruct_norm1(ins, temb)
        t2, t_shift_mlp, _, _ = self.instruct_norm2(ins, temb)
        joint = self.img_instruct_attn(i1, t1, joint_rope)
        own = self.img_self_attn(i3, img_rope)
        img = img + i_gate_msa.unsqueeze(1).tanh() * self.img_attn_norm(joint[:, n:])
        img = img + i_gate_self.unsqueeze(1).tanh() * self.img_self_attn_norm(own)
        mlp = self.img_feed_forward(self.img_ffn_norm1((1 + i_scale_mlp.unsqueeze(1)) * i2 + i_shift_mlp.unsqueeze(1)))
        img = img + i_gate_mlp.unsqueeze(1).tanh() * self.img_ffn_norm2(mlp)
        ins = ins + t_gate_msa.unsqueeze(1).tanh() * self.instruct_attn_norm(joint[:, :n])
        mlp = self.instruct_feed_forward(self.instruct_ffn_norm1((1 + t_scale_mlp.unsqueeze(1)) * t2
                                                                 + t_shift_mlp.unsqueeze(1)))
        return img, ins + t_gate_mlp.unsqueeze(1).tanh() * self.instruct_ffn_norm2(mlp)


class Embedder(nn.Module):           # Lumina2CombinedTimestepCaptionEmbedding
    def __init__(self, dim, text_dim, eps):
        super().__init__()
        self.timestep_embedder = nn.Module()
        self.timestep_embedder.linear_1 = nn.Linear(256, min(dim, 1024))
        self.timestep_embedder.linear_2 = nn.Linear(min(dim, 1024), min(dim, 1024))
        self.caption_embedder = nn.Sequential(rms(text_dim, eps), nn.Linear(text_dim, dim))

    def forward(self, t, text):
        e = self.timestep_embedder
        return e.linear_2(F.silu(e.linear_1(timestep_embedding(t)))), self.caption_embedder(text)


class NormOut(nn.Module):            # LuminaLayerNormContinuous
    def __init__(self, dim, out):
        super().__init__()
        self.linear_1 = nn.Linear(min(dim, 1024), dim)
        self.linear_2 = nn.Linear(dim, out)
        self.dim = dim

    def forward(self, x, temb):
        return self.linear_2(F.layer_norm(x, (self.dim,), eps=1e-6) * (1 + self.linear_1(F.silu(temb)))[:, None])


class ComfyBoogu(nn.Module):
    """BooguTransformer2DModel (patch 2, multiple_of 16 at these sizes); forward(x, timesteps=sigma, context,
    ref_latents) as ComfyUI calls it: 1 - sigma told, the output negated."""

    def __init__(self, in_channels=16, dim=48, layers=2, double=1, refiner=1, heads=2, kv_heads=1, multiple_of=16,
                 axes=(8, 8, 8), text_dim=32, eps=1e-5, single="single_stream_layers"):
        super().__init__()
        inner = multiple_of * ((4 * dim + multiple_of - 1) // multiple_of)
        self.axes, self.p = axes, 2
        self.x_embedder = nn.Linear(4 * in_channels, dim)
        self.ref_image_patch_embedder = nn.Linear(4 * in_channels, dim)
        self.time_caption_embed = Embedder(dim, text_dim, eps)
        self.noise_refiner = nn.ModuleList(Block(dim, heads, kv_heads, inner, eps) for _ in range(refiner))
        self.ref_image_refiner = nn.ModuleList(Block(dim, heads, kv_heads, inner, eps) for _ in range(refiner))
        self.context_refiner = nn.ModuleList(Block(dim, heads, kv_heads, inner, eps, False) for _ in range(refiner))
        self.double_stream_layers = nn.ModuleList(DoubleBlock(dim, heads, kv_heads, inner, eps) for _ in range(double))
        self.single = single
        setattr(self, single, nn.ModuleList(Block(dim, heads, kv_heads, inner, eps) for _ in range(layers)))
        self.norm_out = NormOut(dim, 4 * in_channels)
        self.image_index_embedding = nn.Parameter(torch.randn(5, dim))

    def patches(self, x):
        b, c, h, w = x.shape
        return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 3, 5, 1).reshape(b, -1, 4 * c)

    def rope(self, cap, refs, h, w):  # OmniGen2RotaryPosEmbed for one row
        ids = [torch.stack([torch.arange(cap)] * 3, -1)]
        shift = cap
        for rh, rw in refs:
            rows = torch.arange(rh)[:, None].expand(rh, rw).flatten()
            cols = torch.arange(rw)[None].expand(rh, rw).flatten()
            ids.append(torch.stack([torch.full_like(rows, shift), rows, cols], -1))
            shift += max(rh, rw)
        rows = torch.arange(h)[:, None].expand(h, w).flatten()
        cols = torch.arange(w)[None].expand(h, w).flatten()
        ids.append(torch.stack([torch.full_like(rows, shift), rows, cols], -1))
        return embed_nd(torch.cat(ids)[None], self.axes).movedim(1, 2)

    def forward(self, x, sigma, context, ref_latents=None):
        b, c, hh, ww = x.shape
        temb, text = self.time_caption_embed(1.0 - sigma, context)
        img = self.patches(x)
        refs = [] if ref_latents is None else [(r.shape[2] // 2, r.shape[3] // 2) for r in ref_latents]
        rope = self.rope(text.shape[1], refs, hh // 2, ww // 2).expand(b, -1, -1, -1, -1, -1)
        n, ref_len = text.shape[1], sum(a * d for a, d in refs)
        for layer in self.context_refiner:
            text = layer(text, rope[:, :n])
        img = self.x_embedder(img)
        for layer in self.noise_refiner:
            img = layer(img, rope[:, n + ref_len:], temb)
        if ref_latents is not None:
            ref = self.ref_image_patch_embedder(torch.cat([self.patches(r.expand(b, -1, -1, -1)) for r in ref_latents], 1))
            shift = 0
            for j, (a, d) in enumerate(refs):
                ref[:, shift:shift + a * d] = ref[:, shift:shift + a * d] + self.image_index_embedding[j]
                shift += a * d
            for layer in self.ref_image_refiner:
                ref = layer(ref, rope[:, n:n + ref_len], temb)
            img = torch.cat([ref, img], 1)
        img_len = (hh // 2) * (ww // 2)
        for layer in self.double_stream_layers:
            img, text = layer(img, text, rope, rope[:, n:], temb)
        x = torch.cat([text, img], 1)
        for layer in getattr(self, self.single):
            x = layer(x, rope, temb)
        out = self.norm_out(x, temb)[:, -img_len:]
        out = out.view(b, hh // 2, ww // 2, 2, 2, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, hh, ww)
        return -out


def forward_pairs(model, ref, text_dim: int):
    """(ComfyUI's output, Kinograph's) from one seeded latent and prompt, first alone then reading two reference
    latents of two sizes: `ref` told sigma 0.6 as ComfyUI tells it, Kinograph's `model` 1 - sigma, its output negated."""
    torch.manual_seed(0)
    x, context = torch.randn(1, 16, 6, 8), torch.randn(1, 7, text_dim)
    refs = [torch.randn(1, 16, 8, 6), torch.randn(1, 16, 4, 4)]
    with torch.no_grad():
        return [(ref(x, torch.tensor([0.6]), context, r), -model(x, torch.tensor([0.4]), context, r))
                for r in (None, refs)]
