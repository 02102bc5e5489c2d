"""Hunyuan3D's shape transformers in ComfyUI's single-file key names (the checkpoint's "model." part, prefix removed):
2.0 (and 2.0 mini / mv / turbo), FLUX.1's double- and single-stream blocks without positions over the shape latent's
tokens and DINOv2's image tokens; 2.1, a U-shaped DiT (long skips from the first half of the blocks into the second)
whose last blocks' feed-forward is a mixture of experts.

Both take ComfyUI's call: x [B, 64, tokens] (the latent), sigma [B] (the flow level, 1 = noise), context [B, L, D]
(the image tokens), and give ComfyUI's output, the flow from the shape to the noise (the sampler's x - sigma * out is
the shape). The models count time the other way (1 - sigma) and predict the opposite flow, which forward undoes.
Depths, widths and expert counts are read from the tensors; the head count from the q/k norm's width."""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError


# -- 2.0: FLUX.1's blocks, no positions -------------------------------------------------------------------------
def flux_time(t: torch.Tensor, dim: int = 256, max_period: float = 1000.0) -> torch.Tensor:
    """FLUX.1's time features of 1000 t; Hunyuan3D 2.0 was trained with max_period 1000 (not FLUX.1's 10000)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (1000.0 * t.float())[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


class RMSScale(nn.Module):
    """FLUX.1's q/k norm (its weight is called scale)."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * self.scale.to(x.dtype)


class QKNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.query_norm, self.key_norm = RMSScale(dim), RMSScale(dim)


class Embedder(nn.Module):
    def __init__(self, dim_in: int, dim: int):
        super().__init__()
        self.in_layer, self.out_layer = nn.Linear(dim_in, dim), nn.Linear(dim, dim)

    def forward(self, x):
        return self.out_layer(F.silu(self.in_layer(x)))


class Modulation(nn.Module):
    def __init__(self, dim: int, parts: int):
        super().__init__()
        self.lin = nn.Linear(dim, parts * dim)
        self.parts = parts

    def forward(self, vec):
        return self.lin(F.silu(vec))[:, None, :].chunk(self.parts, -1)      # shift, scale, gate (twice when 6)


class SelfAttn(nn.Module):
    def __init__(self, dim: int, heads: int, bias: bool):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.norm = QKNorm(dim // heads)
        self.proj = nn.Linear(dim, dim)


def _mlp(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))


def _plain_norm(x):
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


def _heads_qkv(qkv, heads: int, norm: QKNorm):
    b, n, _ = qkv.shape
    q, k, v = qkv.view(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
    return norm.query_norm(q).to(v), norm.key_norm(k).to(v), v


def _attend(q, k, v):
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)


class DoubleBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, bias: bool):
        super().__init__()
        self.heads = heads
        for side in ("img", "txt"):
            setattr(self, f"{side}_mod", Modulation(dim, 6))
            setattr(self, f"{side}_attn", SelfAttn(dim, heads, bias))
            setattr(self, f"{side}_mlp", _mlp(dim, hidden))

    def forward(self, img, txt, vec):
        im = self.img_mod(vec)
        tm = self.txt_mod(vec)
        iq, ik, iv = _heads_qkv(self.img_attn.qkv((1 + im[1]) * _plain_norm(img) + im[0]), self.heads,
                                self.img_attn.norm)
        tq, tk, tv = _heads_qkv(self.txt_attn.qkv((1 + tm[1]) * _plain_norm(txt) + tm[0]), self.heads,
                                self.txt_attn.norm)
        attn = _attend(torch.cat([tq, iq], 2), torch.cat([tk, ik], 2), torch.cat([tv, iv], 2))
        ta, ia = attn[:, :txt.shape[1]], attn[:, txt.shape[1]:]
        img = img + im[2] * self.img_attn.proj(ia)
        img = img + im[5] * self.img_mlp((1 + im[4]) * _plain_norm(img) + im[3])
        txt = txt + tm[2] * self.txt_attn.proj(ta)
        txt = txt + tm[5] * self.txt_mlp((1 + tm[4]) * _plain_norm(txt) + tm[3])
        return img, txt


class SingleBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.heads, self.dim, self.hidden = heads, dim, hidden
        self.linear1 = nn.Linear(dim, 3 * dim + hidden)
        self.linear2 = nn.Linear(dim + hidden, dim)
        self.norm = QKNorm(dim // heads)
        self.modulation = Modulation(dim, 3)

    def forward(self, x, vec):
        shift, scale, gate = self.modulation(vec)
        qkv, mlp = torch.split(self.linear1((1 + scale) * _plain_norm(x) + shift), [3 * self.dim, self.hidden], -1)
        attn = _attend(*_heads_qkv(qkv, self.heads, self.norm))
        return x + gate * self.linear2(torch.cat([attn, F.gelu(mlp, approximate="tanh")], 2))


class LastLayer(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.linear = nn.Linear(dim, out)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x, vec):
        shift, scale = self.adaLN_modulation(vec).chunk(2, 1)
        return self.linear((1 + scale[:, None]) * _plain_norm(x) + shift[:, None])


class _Denoiser(nn.Module):
    """What the sampler reads of a denoiser besides calling it: its dtype and device."""

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    @property
    def device(self):
        return next(self.parameters()).device


class Hunyuan3DDiT(_Denoiser):
    """Hunyuan3D 2.0's shape DiT (Hunyuan3D-DiT-v2-0, -mini, -mv and their turbo/fast distillations)."""
    version = "2.0"

    def __init__(self, in_channels: int, context_dim: int, dim: int, heads: int, depth: int, depth_single: int,
                 mlp_hidden: int, qkv_bias: bool, guidance: bool):
        super().__init__()
        self.latent_in = nn.Linear(in_channels, dim)
        self.time_in = Embedder(256, dim)
        self.guidance_in = Embedder(256, dim) if guidance else None
        self.cond_in = nn.Linear(context_dim, dim)
        self.double_blocks = nn.ModuleList(DoubleBlock(dim, heads, mlp_hidden, qkv_bias) for _ in range(depth))
        self.single_blocks = nn.ModuleList(SingleBlock(dim, heads, mlp_hidden) for _ in range(depth_single))
        self.final_layer = LastLayer(dim, in_channels)
        self.in_channels, self.context_dim = in_channels, context_dim

    def forward(self, x, sigma, context, guidance: Optional[torch.Tensor] = None):
        img = self.latent_in(x.movedim(-1, -2))
        vec = self.time_in(flux_time(1.0 - sigma).to(img.dtype))
        if self.guidance_in is not None and guidance is not None:
            vec = vec + self.guidance_in(flux_time(guidance).to(img.dtype))
        txt = self.cond_in(context)
        for block in self.double_blocks:
            img, txt = block(img, txt, vec)
        joint = torch.cat([txt, img], 1)
        for block in self.single_blocks:
            joint = block(joint, vec)
        return -self.final_layer(joint[:, txt.shape[1]:], vec).movedim(-2, -1)


# -- 2.1: U-shaped DiT with a mixture of experts ---------------------------------------------------------------
class Attention21(nn.Module):
    """Self (kdim None) or cross attention of the 2.1 blocks. The checkpoint's heads read q, k and v concatenated
    and cut into per-head pieces (each head's q, k and v side by side), not each of q, k and v cut by itself: the
    pieces are taken as the model was trained with them."""

    def __init__(self, dim: int, heads: int, kdim: Optional[int] = None):
        super().__init__()
        self.heads, self.cross = heads, kdim is not None
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(kdim or dim, dim, bias=False)
        self.to_v = nn.Linear(kdim or dim, dim, bias=False)
        self.q_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim // heads, eps=1e-6)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, y=None):
        b, n, d = x.shape
        hd = d // self.heads
        if self.cross:
            m = y.shape[1]
            q = self.to_q(x).view(b, n, self.heads, hd)
            k, v = torch.cat([self.to_k(y), self.to_v(y)], -1).view(b, m, self.heads, 2 * hd).split(hd, -1)
        else:
            q, k, v = torch.cat([self.to_q(x), self.to_k(x), self.to_v(x)], -1).view(b, n, self.heads, 3 * hd) \
                .split(hd, -1)
        q, k, v = (t.transpose(1, 2) for t in (self.q_norm(q), self.k_norm(k), v))
        return self.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class FF(nn.Module):
    """An expert: net.0.proj (Linear then GELU), net.2 (Linear); net.1 was a dropout."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.net = nn.ModuleList([nn.Module(), nn.Identity(), nn.Linear(inner, dim)])
        self.net[0].proj = nn.Linear(dim, inner)

    def forward(self, x):
        return self.net[2](F.gelu(self.net[0].proj(x)))


class MoE(nn.Module):
    """Each token through its top_k experts (softmax gate weights, not renormalised) plus the shared expert."""

    def __init__(self, dim: int, experts: int, top_k: int):
        super().__init__()
        self.experts = nn.ModuleList(FF(dim, 4 * dim) for _ in range(experts))
        self.gate = nn.Module()
        self.gate.weight = nn.Parameter(torch.empty(experts, dim))
        self.shared_experts = FF(dim, 4 * dim)
        self.top_k = top_k

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        weight, idx = torch.topk(F.linear(flat, self.gate.weight).softmax(-1), self.top_k, -1)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            rows, slot = torch.nonzero(idx == e, as_tuple=True)
            if len(rows):
                out.index_add_(0, rows, expert(flat[rows]) * weight[rows, slot, None])
        return out.view_as(x) + self.shared_experts(x)


class MLP21(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block21(nn.Module):
    def __init__(self, dim: int, heads: int, context_dim: int, skip: bool, experts: int, top_k: int):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(dim, eps=1e-6) for _ in range(3))
        self.attn1 = Attention21(dim, heads)
        self.attn2 = Attention21(dim, heads, context_dim)
        if skip:
            self.skip_norm = nn.LayerNorm(dim, eps=1e-6)
            self.skip_linear = nn.Linear(2 * dim, dim)
        self.skip = skip
        if experts:
            self.moe = MoE(dim, experts, top_k)
        else:
            self.mlp = MLP21(dim)

    def forward(self, h, context, skip=None):
        if self.skip:
            h = self.skip_norm(self.skip_linear(torch.cat([skip, h], -1)))
        h = h + self.attn1(self.norm1(h))
        h = h + self.attn2(self.norm2(h), context)
        ff = self.moe if hasattr(self, "moe") else self.mlp
        return h + ff(self.norm3(h))


class TimeEmbed21(nn.Module):
    """sin, cos of t (not 1000 t) at the width's frequencies, then an MLP 4x wide; one token before the latent's."""

    def __init__(self, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.dim = dim

    def forward(self, t):
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        x = t.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([x.sin(), x.cos()], 1).to(self.mlp[0].weight.dtype))[:, None]


class Hunyuan3DDiT21(_Denoiser):
    """Hunyuan3D 2.1's shape DiT (hunyuan_3d_v2.1.safetensors)."""
    version = "2.1"

    def __init__(self, in_channels: int, context_dim: int, dim: int, heads: int, depth: int,
                 experts: Dict[int, int], top_k: int = 2):
        super().__init__()
        self.x_embedder = nn.Linear(in_channels, dim)
        self.t_embedder = TimeEmbed21(dim)
        self.blocks = nn.ModuleList(Block21(dim, heads, context_dim, i > depth // 2, experts.get(i, 0), top_k)
                                    for i in range(depth))
        self.final_layer = nn.Module()
        self.final_layer.norm_final = nn.LayerNorm(dim, eps=1e-6)
        self.final_layer.linear = nn.Linear(dim, in_channels)
        self.in_channels, self.context_dim, self.depth = in_channels, context_dim, depth

    def forward(self, x, sigma, context, guidance=None):
        h = torch.cat([self.t_embedder(1.0 - sigma), self.x_embedder(x.movedim(-1, -2).to(self.dtype))], 1)
        skips = []
        for i, block in enumerate(self.blocks):
            h = block(h, context, skips.pop() if i > self.depth // 2 else None)
            if i < self.depth // 2:
                skips.append(h)
        out = self.final_layer.linear(self.final_layer.norm_final(h)[:, 1:])
        return -out.movedim(-2, -1)


# -- building one from its tensors -----------------------------------------------------------------------------
def _count(state, prefix: str) -> int:
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in state):
        n += 1
    return n


def build_dit(state: Dict[str, torch.Tensor], load: bool = True) -> nn.Module:
    """The transformer for a checkpoint's "model." tensors (prefix removed), weights loaded (unless not `load`: the
    bare network, counted on the meta device before it is made), in eval mode."""
    if "latent_in.weight" in state:
        dim, cin = state["latent_in.weight"].shape
        hd = state["double_blocks.0.img_attn.norm.query_norm.scale"].shape[0]
        model = Hunyuan3DDiT(cin, state["cond_in.weight"].shape[1], dim, dim // hd, _count(state, "double_blocks."),
                             _count(state, "single_blocks."), state["double_blocks.0.img_mlp.0.weight"].shape[0],
                             "double_blocks.0.img_attn.qkv.bias" in state, "guidance_in.in_layer.weight" in state)
    elif "x_embedder.weight" in state and "t_embedder.mlp.2.weight" in state:
        dim, cin = state["x_embedder.weight"].shape
        depth = _count(state, "blocks.")
        experts = {i: state[f"blocks.{i}.moe.gate.weight"].shape[0] for i in range(depth)
                   if f"blocks.{i}.moe.gate.weight" in state}
        model = Hunyuan3DDiT21(cin, state["blocks.0.attn2.to_k.weight"].shape[1], dim,
                               dim // state["blocks.0.attn1.q_norm.weight"].shape[0], depth, experts)
    else:
        raise NodeError("these tensors are not a Hunyuan3D shape transformer (no latent_in or x_embedder): load "
                        "ComfyUI's hunyuan3d-dit-v2*.safetensors or hunyuan_3d_v2.1.safetensors")
    if not load:
        return model
    # Tensors the model does not read are left, as ComfyUI leaves them (2.1's guidance projection,
    # t_embedder.cond_proj, which ComfyUI never gives a guidance); a missing one is a file for another model
    missing, _ = model.load_state_dict(state, strict=False)
    if missing:
        raise NodeError(f"the Hunyuan3D {model.version} transformer's tensors do not fit it: missing "
                        f"{sorted(missing)[:4]}")
    return model.eval()
