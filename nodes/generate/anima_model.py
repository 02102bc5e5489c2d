"""Anima's DiT (circlestone-labs/Anima: anima-base-v1.0, anima-preview*): Cosmos-Predict2's 2B text-to-image DiT,
diffusers' CosmosTransformer3DModel, with Anima's LLM adapter before it. The adapter turns the prompt's Qwen3-0.6B
states into what the DiT's cross-attention reads: one query per T5 token of the same prompt (T5-XXL's ids embedded,
the Qwen3 states read by cross-attention, rotary positions on both), six pre-norm blocks, then a projection and an RMS
norm; the result is padded with zeros to 512 tokens, as ComfyUI's Anima model does (comfy/ldm/anima/model.py).

The adapter keeps the released names (llm_adapter.blocks.N.self_attn.q_proj ...), so its tensors load as they are;
its sizes come from them."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nodes.generate.converters import count

CONTEXT_TOKENS = 512        # the DiT reads this many text tokens, the adapter's padded with zeros to it
ROPE_THETA = 10000.0


def rotary(positions: int, head: int, device) -> tuple:
    """(cos, sin) [positions, head] of the adapter's rotary embedding (halves rotated, theta 10000), in float32."""
    inv = 1.0 / ROPE_THETA ** (torch.arange(0, head, 2, dtype=torch.int64, device=device).float() / head)
    freqs = torch.arange(positions, device=device).float()[:, None] * inv[None]
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos(), emb.sin()


def _rotated(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos.to(x.dtype) + torch.cat([-x[..., half:], x[..., :half]], -1) * sin.to(x.dtype)


class AdapterAttention(nn.Module):
    def __init__(self, dim: int, source: int, heads: int):
        super().__init__()
        self.heads, head = heads, dim // heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.q_norm = nn.RMSNorm(head, eps=1e-6)
        self.k_proj = nn.Linear(source, dim, bias=False)
        self.k_norm = nn.RMSNorm(head, eps=1e-6)
        self.v_proj = nn.Linear(source, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x, context, rope_q, rope_k):
        b, n, _ = x.shape
        split = lambda t: t.view(b, t.shape[1], self.heads, -1)  # noqa: E731
        q = self.q_norm(split(self.q_proj(x))).transpose(1, 2)
        k = self.k_norm(split(self.k_proj(context))).transpose(1, 2)
        v = split(self.v_proj(context)).transpose(1, 2)
        q, k = _rotated(q, *rope_q), _rotated(k, *rope_k)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))


class AdapterBlock(nn.Module):
    """Self-attention (when the file has it), cross-attention to the Qwen3 states, and a GELU MLP, each after its own
    norm (RMS, or LayerNorm in files trained so) and added back."""
    def __init__(self, dim: int, source: int, heads: int, self_attn: bool, layer_norm: bool):
        super().__init__()
        norm = (lambda: nn.LayerNorm(dim)) if layer_norm else (lambda: nn.RMSNorm(dim, eps=1e-6))
        if self_attn:
            self.norm_self_attn, self.self_attn = norm(), AdapterAttention(dim, dim, heads)
        self.norm_cross_attn, self.cross_attn = norm(), AdapterAttention(dim, source, heads)
        self.norm_mlp = norm()
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x, context, rope_x, rope_context):
        if hasattr(self, "self_attn"):
            normed = self.norm_self_attn(x)
            x = x + self.self_attn(normed, normed, rope_x, rope_x)
        x = x + self.cross_attn(self.norm_cross_attn(x), context, rope_x, rope_context)
        return x + self.mlp(self.norm_mlp(x))


class LLMAdapter(nn.Module):
    def __init__(self, vocab: int = 32128, target: int = 1024, dim: int = 1024, source: int = 1024, layers: int = 6,
                 heads: int = 16, self_attn: bool = True, layer_norm: bool = False):
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(vocab, target)
        self.in_proj = nn.Linear(target, dim) if dim != target else nn.Identity()
        self.blocks = nn.ModuleList([AdapterBlock(dim, source, heads, self_attn, layer_norm) for _ in range(layers)])
        self.out_proj = nn.Linear(dim, target)
        self.norm = nn.RMSNorm(target, eps=1e-6)

    def forward(self, states: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """states [B, Ls, source] (Qwen3's), ids [B, Lt] (T5's) -> [B, Lt, target]."""
        x = self.in_proj(self.embed(ids).to(states.dtype))
        head = x.shape[-1] // self.heads
        rope_x, rope_c = rotary(x.shape[1], head, x.device), rotary(states.shape[1], head, x.device)
        for block in self.blocks:
            x = block(x, states, rope_x, rope_c)
        return self.norm(self.out_proj(x))


def adapter_config(state: dict, prefix: str = "llm_adapter.") -> dict:
    """LLMAdapter's sizes from its tensors (names under `prefix`)."""
    emb = state[f"{prefix}embed.weight"]
    q = state[f"{prefix}blocks.0.cross_attn.q_proj.weight"]
    head = int(state[f"{prefix}blocks.0.cross_attn.q_norm.weight"].shape[0])
    return dict(vocab=int(emb.shape[0]), target=int(emb.shape[1]), dim=int(q.shape[0]),
                source=int(state[f"{prefix}blocks.0.cross_attn.k_proj.weight"].shape[1]),
                layers=count(state, f"{prefix}blocks.{{}}."), heads=int(q.shape[0]) // head,
                self_attn=f"{prefix}blocks.0.self_attn.q_proj.weight" in state,
                layer_norm=f"{prefix}blocks.0.norm_cross_attn.bias" in state)


def anima_transformer(config: dict, adapter: dict):
    """A CosmosTransformer3DModel of `config` carrying an LLMAdapter of `adapter`'s sizes as .llm_adapter."""
    from diffusers import CosmosTransformer3DModel
    model = CosmosTransformer3DModel.from_config(config)
    model.llm_adapter = LLMAdapter(**adapter)
    return model


def context(model, states: torch.Tensor, ids: torch.Tensor, weights=None) -> torch.Tensor:
    """What the DiT's cross-attention reads for one prompt: the adapter's output for its Qwen3 states [1, Ls, D] and T5
    ids [1, Lt], scaled by the ids' weights [1, Lt] where given, zeros after it up to 512 tokens."""
    out = model.llm_adapter(states.to(model.dtype), ids)
    if weights is not None:
        out = out * weights[..., None].to(out.dtype)
    if out.shape[1] < CONTEXT_TOKENS:
        out = F.pad(out, (0, 0, 0, CONTEXT_TOKENS - out.shape[1]))
    return out
