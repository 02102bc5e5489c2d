"""ACE-Step v1's diffusion transformer (3.5B: 24 Sana-style blocks of 2560, ReLU linear self-attention, softmax
cross-attention to the prompt) and its Conformer lyric encoder, under ComfyUI's tensor names (comfy/ldm/ace/model.py,
attention.py, lyric_encoder.py: ACEStepTransformer2DModel). Sizes are read from the tensors; the head width (128)
and the lyric encoder's plain layers (no macaron feed-forward, no convolution) are ComfyUI's fixed choices.

The model reads the latent [B, 8, 16, T] (16 mel bands of 8 channels a column), the UMT5 prompt states [B, N, 768]
and the lyric token ids [B, M], and predicts the flow velocity of the same shape."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HEAD_DIM = 128          # ComfyUI's attention_head_dim for ACE-Step (model_detection)
ROPE_THETA = 1000000.0


def _rms(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm without a scale (every RMSNorm of the DiT is elementwise_affine=False)."""
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype)


def rope(length: int, dim: int, device) -> tuple:
    """(cos, sin) [length, dim] as Qwen2RotaryEmbedding builds them: the half-width frequencies written twice."""
    inv = 1.0 / (ROPE_THETA ** (torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim))
    freqs = torch.outer(torch.arange(length, device=device).float(), inv)
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos(), emb.sin()


def _rotate(x: torch.Tensor, cs: tuple) -> torch.Tensor:
    """ACE-Step's rotary embedding of x [B, H, S, D]: neighbouring pairs rotated (-odd, even), mixed with the
    cos/sin tables laid out half-and-half, as its apply_rotary_emb does."""
    cos, sin = cs
    even, odd = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
    turned = torch.stack([-odd, even], -1).flatten(3)
    return (x.float() * cos + turned.float() * sin).to(x.dtype)


class _Projections(nn.Module):
    """An attention's projections under diffusers' Attention names (to_q, to_k, to_v, to_out.0; the cross-attention
    also holds add_q/k/v_proj and to_add_out, which ComfyUI's processor never uses)."""

    def __init__(self, dim: int, cross: bool):
        super().__init__()
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, dim) for _ in range(3))
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])
        if cross:
            self.add_q_proj, self.add_k_proj, self.add_v_proj = (nn.Linear(dim, dim) for _ in range(3))
            self.to_add_out = nn.Linear(dim, dim)


def linear_attention(attn: _Projections, x: torch.Tensor, cs: tuple, heads: int) -> torch.Tensor:
    """ComfyUI's CustomLiteLAProcessor2_0 without masks: ReLU kernels on rotated queries and keys, values padded
    with a row of ones whose product is the normaliser."""
    b = x.shape[0]
    q = attn.to_q(x).transpose(-1, -2).reshape(b, heads, HEAD_DIM, -1)
    k = attn.to_k(x).transpose(-1, -2).reshape(b, heads, HEAD_DIM, -1).transpose(-1, -2)
    v = attn.to_v(x).transpose(-1, -2).reshape(b, heads, HEAD_DIM, -1)
    q = _rotate(q.permute(0, 1, 3, 2), cs).permute(0, 1, 3, 2)
    k = _rotate(k, cs)
    q, k, v = F.relu(q).float(), F.relu(k).float(), v.float()
    v = F.pad(v, (0, 0, 0, 1), value=1.0)
    out = torch.matmul(torch.matmul(v, k), q)
    out = out[:, :, :-1] / (out[:, :, -1:] + 1e-15)
    return attn.to_out[0](out.view(b, heads * HEAD_DIM, -1).permute(0, 2, 1).to(x.dtype))


def cross_attention(attn: _Projections, x, context, cs_x: tuple, cs_ctx: tuple, heads: int) -> torch.Tensor:
    """ComfyUI's CustomerAttnProcessor2_0 without masks: the latent's queries rotated by their places, the prompt's
    keys by theirs."""
    b = x.shape[0]
    q = attn.to_q(x).view(b, -1, heads, HEAD_DIM).transpose(1, 2)
    k = attn.to_k(context).view(b, -1, heads, HEAD_DIM).transpose(1, 2)
    v = attn.to_v(context).view(b, -1, heads, HEAD_DIM).transpose(1, 2)
    out = F.scaled_dot_product_attention(_rotate(q, cs_x), _rotate(k, cs_ctx), v)
    return attn.to_out[0](out.transpose(1, 2).reshape(b, -1, heads * HEAD_DIM).to(x.dtype))


class _ConvLayer(nn.Module):
    def __init__(self, cin, cout, kernel, groups=1, bias=True):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=bias)


class _GLUMBConv(nn.Module):
    """The block's feed-forward: 1x1 up (SiLU), depthwise 3 wide, half gating the other, 1x1 down."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.inverted_conv = _ConvLayer(dim, hidden * 2, 1)
        self.depth_conv = _ConvLayer(hidden * 2, hidden * 2, 3, groups=hidden * 2)
        self.point_conv = _ConvLayer(hidden, dim, 1, bias=False)

    def forward(self, x):
        x = F.silu(self.inverted_conv.conv(x.transpose(1, 2)))
        x, gate = self.depth_conv.conv(x).chunk(2, 1)
        return self.point_conv.conv(x * F.silu(gate)).transpose(1, 2)


class _Block(nn.Module):
    """LinearTransformerBlock with adaLN-single: modulated linear self-attention (gated), cross-attention (not
    gated, on the unnormalised stream), modulated feed-forward (gated)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.attn = _Projections(dim, cross=False)
        self.cross_attn = _Projections(dim, cross=True)
        self.ff = _GLUMBConv(dim, hidden)
        self.scale_shift_table = nn.Parameter(torch.zeros(6, dim))

    def forward(self, x, context, temb, cs_x, cs_ctx, heads):
        mods = (self.scale_shift_table[None].to(temb) + temb.reshape(x.shape[0], 6, -1)).chunk(6, 1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
        x = x + gate_msa * linear_attention(self.attn, _rms(x) * (1 + scale_msa) + shift_msa, cs_x, heads)
        x = x + cross_attention(self.cross_attn, x, context, cs_x, cs_ctx, heads)
        return x + gate_mlp * self.ff(_rms(x) * (1 + scale_mlp) + shift_mlp)


# -- the lyric encoder: a Conformer without convolution modules (CosyVoice's, as ACE-Step configures it) -----------
def rel_positions(length: int, dim: int, device) -> torch.Tensor:
    """ESPnet's relative positional encoding [1, 2 * length - 1, dim] for offsets length - 1 down to 1 - length."""
    rel = torch.arange(length - 1, -length, -1, dtype=torch.float32, device=device)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / dim))
    pe = torch.zeros(2 * length - 1, dim, device=device)
    pe[:, 0::2] = torch.sin(rel * div)
    pe[:, 1::2] = torch.cos(rel * div)
    return pe[None]


class _RelAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.h, self.d_k = heads, dim // heads
        self.linear_q, self.linear_k, self.linear_v, self.linear_out = (nn.Linear(dim, dim) for _ in range(4))
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(heads, dim // heads))
        self.pos_bias_v = nn.Parameter(torch.zeros(heads, dim // heads))

    def forward(self, x, pos):
        b, t, _ = x.shape
        q, k, v = (f(x).view(b, t, self.h, self.d_k) for f in (self.linear_q, self.linear_k, self.linear_v))
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        p = self.linear_pos(pos).view(1, -1, self.h, self.d_k).transpose(1, 2)
        ac = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        bd = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1))
        # Transformer-XL's shift: row i keeps the offsets i - j for j = 0..t-1
        bd = torch.cat([bd.new_zeros(b, self.h, t, 1), bd], -1).view(b, self.h, 2 * t, t)[:, :, 1:]
        bd = bd.reshape(b, self.h, t, 2 * t - 1)[..., :t]
        att = torch.softmax((ac + bd) / math.sqrt(self.d_k), -1)
        return self.linear_out(torch.matmul(att, v).transpose(1, 2).reshape(b, t, -1))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, units: int):
        super().__init__()
        self.w_1, self.w_2 = nn.Linear(dim, units), nn.Linear(units, dim)

    def forward(self, x):
        return self.w_2(F.silu(self.w_1(x)))


class _ConformerLayer(nn.Module):
    def __init__(self, dim: int, heads: int, units: int):
        super().__init__()
        self.self_attn = _RelAttention(dim, heads)
        self.feed_forward = _FeedForward(dim, units)
        self.norm_mha, self.norm_ff = nn.LayerNorm(dim, eps=1e-5), nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x, pos):
        x = x + self.self_attn(self.norm_mha(x), pos)
        return x + self.feed_forward(self.norm_ff(x))


class _LinearEmbed(nn.Module):
    def __init__(self, cin: int, dim: int):
        super().__init__()
        self.out = nn.Sequential(nn.Linear(cin, dim), nn.LayerNorm(dim, eps=1e-5))


class LyricEncoder(nn.Module):
    """ConformerEncoder(static_chunk_size=0): every token sees every other; no padding mask (ComfyUI passes none)."""

    def __init__(self, cin: int, dim: int, heads: int, units: int, layers: int):
        super().__init__()
        self.embed = _LinearEmbed(cin, dim)
        self.encoders = nn.ModuleList([_ConformerLayer(dim, heads, units) for _ in range(layers)])
        self.after_norm = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x):
        x = self.embed.out(x)
        x = x * math.sqrt(x.shape[-1])
        pos = rel_positions(x.shape[1], x.shape[-1], x.device).to(x.dtype)
        for layer in self.encoders:
            x = layer(x, pos)
        return self.after_norm(x)


class _PatchEmbed(nn.Module):
    def __init__(self, cin: int, dim: int, patch: int):
        super().__init__()
        self.early_conv_layers = nn.Sequential(nn.Conv2d(cin, cin * 256, (patch, 1), (patch, 1)),
                                               nn.GroupNorm(32, cin * 256, eps=1e-6),
                                               nn.Conv2d(cin * 256, dim, 1))


class _FinalLayer(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.linear = nn.Linear(dim, out)
        self.scale_shift_table = nn.Parameter(torch.zeros(2, dim))


class _TimestepEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.linear_1, self.linear_2 = nn.Linear(256, dim), nn.Linear(dim, dim)


def timestep_features(t: torch.Tensor) -> torch.Tensor:
    """Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0): [cos | sin] of t at 128 frequencies."""
    freqs = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32, device=t.device) / 128)
    arg = t.float()[:, None] * freqs[None]
    return torch.cat([arg.cos(), arg.sin()], -1)


class AceStepDiT(nn.Module):
    """ACEStepTransformer2DModel for sampling (ComfyUI's names; the SSL projectors are training heads, left unread)."""

    def __init__(self, dim: int, layers: int, hidden: int, channels: int, height: int, text_dim: int,
                 speaker_dim: int, vocab: int, lyric_dim: int, lyric_heads: int, lyric_units: int,
                 lyric_layers: int):
        super().__init__()
        self.heads, self.channels, self.height = dim // HEAD_DIM, channels, height
        self.transformer_blocks = nn.ModuleList([_Block(dim, hidden) for _ in range(layers)])
        self.timestep_embedder = _TimestepEmbedding(dim)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.speaker_embedder = nn.Linear(speaker_dim, dim)
        self.genre_embedder = nn.Linear(text_dim, dim)
        self.lyric_embs = nn.Embedding(vocab, lyric_dim)
        self.lyric_encoder = LyricEncoder(lyric_dim, lyric_dim, lyric_heads, lyric_units, lyric_layers)
        self.lyric_proj = nn.Linear(lyric_dim, dim)
        self.proj_in = _PatchEmbed(channels, dim, height)
        self.final_layer = _FinalLayer(dim, height * channels)

    def encode(self, text: torch.Tensor, lyrics: torch.Tensor, lyrics_strength: float) -> torch.Tensor:
        """The cross-attention context [B, 1 + N + M, dim]: the speaker (none: zeros, its bias), the prompt, the
        lyrics scaled by lyrics_strength."""
        speaker = self.speaker_embedder(text.new_zeros(text.shape[0], self.speaker_embedder.in_features))
        lyric = self.lyric_proj(self.lyric_encoder(self.lyric_embs(lyrics).to(text.dtype))) * lyrics_strength
        return torch.cat([speaker[:, None], self.genre_embedder(text), lyric], 1)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The velocity [B, C, H, T] of x at `timestep` (sigma x 1000), given encode()'s context."""
        emb = self.timestep_embedder
        t = emb.linear_2(F.silu(emb.linear_1(timestep_features(timestep).to(x.dtype))))
        temb = self.t_block(t)
        width = x.shape[-1]
        h = self.proj_in.early_conv_layers(x).flatten(2).transpose(1, 2)
        cs_x = rope(h.shape[1], HEAD_DIM, x.device)
        cs_ctx = rope(context.shape[1], HEAD_DIM, x.device)
        for block in self.transformer_blocks:
            h = block(h, context, temb, cs_x, cs_ctx, self.heads)
        fl = self.final_layer
        shift, scale = (fl.scale_shift_table[None].to(t) + t[:, None]).chunk(2, 1)
        h = fl.linear(_rms(h) * (1 + scale) + shift)
        b, n = h.shape[:2]
        out = h.reshape(b, 1, n, self.height, 1, self.channels)
        out = torch.einsum("nhwpqc->nchpwq", out).reshape(b, self.channels, self.height, n)
        return out[..., :width]


def _count(state: dict, prefix: str) -> int:
    """The blocks numbered under `prefix`, at most converters.MAX_BLOCKS: 1,000 names of one value each made the
    meta-device size check build 1,000 blocks (18 s; 20,000 would take minutes) before it refused the file."""
    from nodes.generate.converters import count
    return count(state, prefix + "{}.")


def build(state: dict) -> AceStepDiT:
    """The DiT its tensors describe (ComfyUI's names, without the model.diffusion_model. prefix), on the meta device;
    KeyError / IndexError for a file that is not one (callers name it)."""
    dim = int(state["genre_embedder.weight"].shape[0])
    conv = state["proj_in.early_conv_layers.0.weight"]
    lyric = state["lyric_embs.weight"]
    bias_u = state["lyric_encoder.encoders.0.self_attn.pos_bias_u"]
    with torch.device("meta"):
        return AceStepDiT(dim=dim, layers=_count(state, "transformer_blocks."),
                          hidden=int(state["transformer_blocks.0.ff.point_conv.conv.weight"].shape[1]),
                          channels=int(conv.shape[1]), height=int(conv.shape[2]),
                          text_dim=int(state["genre_embedder.weight"].shape[1]),
                          speaker_dim=int(state["speaker_embedder.weight"].shape[1]),
                          vocab=int(lyric.shape[0]), lyric_dim=int(lyric.shape[1]), lyric_heads=int(bias_u.shape[0]),
                          lyric_units=int(state["lyric_encoder.encoders.0.feed_forward.w_1.weight"].shape[0]),
                          lyric_layers=_count(state, "lyric_encoder.encoders."))
