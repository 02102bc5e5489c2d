"""ComfyUI's Lens transformer written out (comfy/ldm/lens/model.py: LensEmbedRope's complex axial tables,
LensJointAttention, LensTransformerBlock, _AdaLayerNormContinuousNoAffine, LensTransformer2DModel._forward with
comfy.ldm.flux.layers.timestep_embedding), with plain torch layers in ComfyUI's names. It shares no code with
nodes/generate/lens_model.py; tests compare the two on the same weights."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t, dim, max_period=10000, time_factor=1000.0):
    t = time_factor * t
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32, device=t.device)
                      / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def rope_params(index, dim, theta=10000):
    freqs = torch.outer(index, 1.0 / torch.pow(theta, torch.arange(0, dim, 2).float().div(dim)))
    return torch.polar(torch.ones_like(freqs), freqs)


class EmbedRope:
    def __init__(self, axes_dim, theta=10000):
        self.axes_dim = list(axes_dim)
        pos_index = torch.arange(4096)
        neg_index = torch.arange(4096).flip(0) * -1 - 1
        self.pos_freqs = torch.cat([rope_params(pos_index, d, theta) for d in self.axes_dim], dim=1)
        self.neg_freqs = torch.cat([rope_params(neg_index, d, theta) for d in self.axes_dim], dim=1)

    def __call__(self, frame, height, width, txt_len):
        fp = self.pos_freqs.split([d // 2 for d in self.axes_dim], dim=1)
        fn = self.neg_freqs.split([d // 2 for d in self.axes_dim], dim=1)
        ff = fp[0][0:frame].view(frame, 1, 1, -1).expand(frame, height, width, -1)
        fh = torch.cat([fn[1][-(height - height // 2):], fp[1][:height // 2]], dim=0).view(
            1, height, 1, -1).expand(frame, height, width, -1)
        fw = torch.cat([fn[2][-(width - width // 2):], fp[2][:width // 2]], dim=0).view(
            1, 1, width, -1).expand(frame, height, width, -1)
        vid = torch.cat([ff, fh, fw], dim=-1).reshape(frame * height * width, -1)
        m = max(height // 2, width // 2)
        return vid, self.pos_freqs[m:m + txt_len]


def apply_rotary(x, freqs_cis):
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * freqs_cis.unsqueeze(1)).flatten(3).type_as(x)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class _TE(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.linear_1 = nn.Linear(256, dim)
        self.linear_2 = nn.Linear(dim, dim)


class _TTE(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.timestep_embedder = _TE(dim)


class GateMLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Attn(nn.Module):
    def __init__(self, dim, head):
        super().__init__()
        self.heads, self.dim_head = dim // head, head
        self.norm_q, self.norm_k = RMSNorm(head, 1e-5), RMSNorm(head, 1e-5)
        self.norm_added_q, self.norm_added_k = RMSNorm(head, 1e-5), RMSNorm(head, 1e-5)
        self.img_qkv = nn.Linear(dim, 3 * dim)
        self.txt_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Identity()])
        self.to_add_out = nn.Linear(dim, dim)

    def forward(self, hs, ehs, rope, mask):
        b, si, _ = hs.shape
        st = ehs.shape[1]
        iq, ik, iv = self.img_qkv(hs).view(b, si, 3, self.heads, self.dim_head).unbind(dim=2)
        tq, tk, tv = self.txt_qkv(ehs).view(b, st, 3, self.heads, self.dim_head).unbind(dim=2)
        iq, ik, tq, tk = self.norm_q(iq), self.norm_k(ik), self.norm_added_q(tq), self.norm_added_k(tk)
        fi, ft = rope
        iq, ik = apply_rotary(iq, fi[:si]), apply_rotary(ik, fi[:si])
        if st > 0:
            tq, tk = apply_rotary(tq, ft[:st]), apply_rotary(tk, ft[:st])
        q = torch.cat([iq, tq], dim=1).transpose(1, 2)
        k = torch.cat([ik, tk], dim=1).transpose(1, 2)
        v = torch.cat([iv, tv], dim=1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype))
        out = out.transpose(1, 2).reshape(b, si + st, -1)
        return self.to_out[1](self.to_out[0](out[:, :si])), self.to_add_out(out[:, si:])


class Block(nn.Module):
    def __init__(self, dim, head):
        super().__init__()
        self.attn = Attn(dim, head)
        hidden = int(dim / 3 * 8)
        self.img_mod = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.img_norm1, self.img_norm2 = RMSNorm(dim, 1e-6), RMSNorm(dim, 1e-6)
        self.img_mlp = GateMLP(dim, hidden)
        self.txt_mod = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.txt_norm1, self.txt_norm2 = RMSNorm(dim, 1e-6), RMSNorm(dim, 1e-6)
        self.txt_mlp = GateMLP(dim, hidden)

    @staticmethod
    def _modulate(x, p):
        shift, scale, gate = p.chunk(3, dim=-1)
        return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1), gate.unsqueeze(1)

    def forward(self, hs, ehs, temb, rope, mask):
        im1, im2 = self.img_mod(temb).chunk(2, dim=-1)
        tm1, tm2 = self.txt_mod(temb).chunk(2, dim=-1)
        im, ig1 = self._modulate(self.img_norm1(hs), im1)
        tmod, tg1 = self._modulate(self.txt_norm1(ehs), tm1)
        ia, ta = self.attn(im, tmod, rope, mask)
        hs = hs + ig1 * ia
        ehs = ehs + tg1 * ta
        im2_, ig2 = self._modulate(self.img_norm2(hs), im2)
        hs = hs + ig2 * self.img_mlp(im2_)
        tm2_, tg2 = self._modulate(self.txt_norm2(ehs), tm2)
        ehs = ehs + tg2 * self.txt_mlp(tm2_)
        return ehs, hs


class NormOut(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * dim)
        self.dim = dim

    def forward(self, x, c):
        scale, shift = torch.chunk(self.linear(F.silu(c)), 2, dim=-1)
        return F.layer_norm(x, (self.dim,), None, None, 1e-6) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class ComfyLens(nn.Module):
    """LensTransformer2DModel(patch_size 2, rms_norm, multi_layer_encoder_feature) in ComfyUI's names."""

    def __init__(self, in_channels=128, out_channels=32, layers=2, head=16, heads=2, enc=24, text_layers=4,
                 axes=(4, 6, 6)):
        super().__init__()
        dim = head * heads
        self.L = text_layers
        self.rope = EmbedRope(axes)
        self.time_text_embed = _TTE(dim)
        self.txt_norm = nn.ModuleList([RMSNorm(enc, 1e-5) for _ in range(text_layers)])
        self.txt_in = nn.Linear(enc * text_layers, dim)
        self.img_in = nn.Linear(in_channels, dim)
        self.transformer_blocks = nn.ModuleList([Block(dim, head) for _ in range(layers)])
        self.norm_out = NormOut(dim)
        self.proj_out = nn.Linear(dim, 4 * out_channels)

    def forward(self, x, timestep, context, attention_mask=None):
        B, C, h, w = x.shape
        hs = x.permute(0, 2, 3, 1).reshape(B, h * w, C)
        enc = context.shape[-1] // self.L
        ehs = list(context.reshape(B, -1, self.L, enc).unbind(dim=2))
        S = ehs[0].shape[1]
        if attention_mask is None:
            attention_mask = torch.ones((B, S), dtype=torch.bool)
        joint = torch.cat([torch.ones((B, h * w), dtype=torch.bool), attention_mask.bool()], dim=1)
        mask = torch.zeros_like(joint, dtype=torch.float32).masked_fill_(~joint, torch.finfo(torch.float32).min)
        mask = mask[:, None, None, :]
        hs = self.img_in(hs)
        ehs = self.txt_in(torch.cat([self.txt_norm[i](ehs[i]) for i in range(self.L)], dim=-1))
        temb = self.time_text_embed.timestep_embedder.linear_2(F.silu(
            self.time_text_embed.timestep_embedder.linear_1(timestep_embedding(timestep, 256).to(hs.dtype))))
        rope = self.rope(1, h, w, S)
        for block in self.transformer_blocks:
            ehs, hs = block(hs, ehs, temb, rope, mask)
        out = self.proj_out(self.norm_out(hs, temb))
        return out.reshape(B, h, w, C).permute(0, 3, 1, 2).contiguous()


# -- comfy/text_encoders/gpt_oss.py: GptOssModel with multi-layer capture, Lens's chat turn ----------------------------
LENS_SYSTEM = ("Describe the image by detailing the color, shape, size, texture, quantity, text, spatial relationships "
               "of the objects and background.")
LENS_THINKING = "Need to generate one image according to the description."


def lens_render_chat(prompt):
    return ("<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
            "Knowledge cutoff: 2024-06\nCurrent date: 2026-05-23\n\nReasoning: medium\n\n"
            "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
            f"<|start|>developer<|message|># Instructions\n\n{LENS_SYSTEM}\n\n<|end|>"
            f"<|start|>user<|message|>{prompt}<|end|>"
            f"<|start|>assistant<|channel|>analysis<|message|>{LENS_THINKING}<|end|>"
            "<|start|>assistant<|channel|>final<|message|>")


def yarn_inv_freq(dim, base=150000.0, factor=32.0, beta_fast=32.0, beta_slow=1.0, orig=4096):
    def corr(n):
        return (dim * math.log(orig / (n * 2 * math.pi))) / (2 * math.log(base))
    low, high = max(corr(beta_fast), 0), min(corr(beta_slow), dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    pos = base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    extrap = 1 - ramp
    inv = (1.0 / (factor * pos)) * (1 - extrap) + (1.0 / pos) * extrap
    return inv, 0.1 * math.log(factor) + 1.0


def rope_rotate_half(q, k, cos, sin):
    def rot(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat((-x2, x1), dim=-1)
    return q * cos + rot(q) * sin, k * cos + rot(k) * sin


def gpt_oss_layers(sd, ids, layers, heads, kv_heads, head_dim, top_k=4, window=128, eps=1e-5, alpha=1.702,
                   limit=7.0):
    """The outputs of `layers` of ComfyUI's GptOssModel over ids [S] (one prompt, no padding), from its tensors
    `sd` in the file's names without model. ([experts, out, in] banks)."""
    S = ids.shape[0]
    x = sd["embed_tokens.weight"][ids][None]
    inv, scale = yarn_inv_freq(head_dim)
    freqs = torch.arange(S, dtype=torch.float32)[:, None] * inv[None]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * scale, emb.sin() * scale
    i, j = torch.arange(S)[:, None], torch.arange(S)[None]
    neg = torch.finfo(torch.float32).min
    full = torch.where(j <= i, 0.0, neg)
    sliding = torch.where((j <= i) & (j > i - window), 0.0, neg)

    def rms(t, w):
        return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps) * w

    caught = {}
    for n in range(max(layers) + 1):
        p = f"layers.{n}."
        h = rms(x, sd[p + "input_layernorm.weight"])
        q = (h @ sd[p + "self_attn.q_proj.weight"].T + sd[p + "self_attn.q_proj.bias"]).view(1, S, heads, head_dim)
        k = (h @ sd[p + "self_attn.k_proj.weight"].T + sd[p + "self_attn.k_proj.bias"]).view(1, S, kv_heads, head_dim)
        v = (h @ sd[p + "self_attn.v_proj.weight"].T + sd[p + "self_attn.v_proj.bias"]).view(1, S, kv_heads, head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = rope_rotate_half(q, k, cos, sin)
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
        mask = sliding if n % 2 == 0 else full          # layer_types: sliding when (n + 1) is odd
        logits = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + mask
        sink = sd[p + "self_attn.sinks"].view(1, heads, 1, 1).expand(1, heads, S, 1)
        probs = torch.softmax(torch.cat([logits, sink], dim=-1), dim=-1)[..., :-1]
        att = (probs @ v).transpose(1, 2).reshape(1, S, heads * head_dim)
        x = x + att @ sd[p + "self_attn.o_proj.weight"].T + sd[p + "self_attn.o_proj.bias"]
        h = rms(x, sd[p + "post_attention_layernorm.weight"])[0]
        logits = h @ sd[p + "mlp.router.weight"].T + sd[p + "mlp.router.bias"]
        vals, idx = torch.topk(logits, top_k, dim=-1)
        weights = torch.softmax(vals, dim=-1)
        out = torch.zeros_like(h)
        for slot in range(top_k):          # every token through its slot-th expert (banks gathered per token)
            e = idx[:, slot]
            gu = torch.einsum("toi,ti->to", sd[p + "mlp.experts.gate_up_proj.weight"][e], h) + \
                sd[p + "mlp.experts.gate_up_proj.bias"][e]
            gate, up = gu[:, ::2].clamp(max=limit), gu[:, 1::2].clamp(min=-limit, max=limit)
            glu = gate * torch.sigmoid(gate * alpha)
            y = torch.einsum("toi,ti->to", sd[p + "mlp.experts.down_proj.weight"][e], (up + 1) * glu) + \
                sd[p + "mlp.experts.down_proj.bias"][e]
            out += weights[:, slot, None] * y
        x = x + out[None]
        if n in layers:
            caught[n] = x[0]
    return [caught[n] for n in layers]
