"""Boogu-Image 0.1's transformer (Boogu's base, Turbo and Edit releases; ComfyUI's diffusion_models/boogu_image_*),
in the released files' own names. diffusers has no Boogu; the model is OmniGen2's layout (the picture's, the
reference pictures' and the prompt's tokens refined apart, Lumina 2's blocks) with a dual-stream stage before the
single-stream blocks: there the prompt and the pictures attend jointly through projections of their own, and the
pictures attend to themselves besides. Lumina 2's blocks, feed-forwards, norms and embeddings are diffusers' own
(the same names and maths); the dual-stream block and OmniGen2's positions are written here.

Positions are (offset, row, column) in 2x2-patch units: the prompt's tokens advance all three axes together, each
reference picture sits at the offset after the prompt (then after the previous picture's longer side), the picture
being made after them all. The model is told 1 - sigma (times 1000) and predicts the flow from noise to the
picture."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import LuminaFeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps, apply_rotary_emb
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import LuminaLayerNormContinuous, LuminaRMSNormZero, RMSNorm
from diffusers.models.transformers.transformer_lumina2 import Lumina2AttnProcessor2_0, Lumina2TransformerBlock

THETA = 10000.0
TIME_SCALE = 1000.0          # the released config's timestep_scale: 1 - sigma is embedded times 1000
REFERENCE_SLOTS = 5          # image_index_embedding's rows: one learnt offset per reference picture


def _attention(dim: int, heads: int, kv_heads: int) -> Attention:
    """OmniGen2's attention (q/k RMS-normed per head, grouped keys and values, no biases) as Lumina 2's block has it."""
    return Attention(query_dim=dim, cross_attention_dim=None, dim_head=dim // heads, qk_norm="rms_norm", heads=heads,
                     kv_heads=kv_heads, eps=1e-5, bias=False, out_bias=False, processor=Lumina2AttnProcessor2_0())


def _block(dim: int, heads: int, kv_heads: int, inner: int, eps: float, modulation: bool = True) -> nn.Module:
    block = Lumina2TransformerBlock(dim, heads, kv_heads, 1, None, eps, modulation=modulation)
    # the released files' feed-forward width (4 x dim rounded up to 256) taken as the file states it
    block.feed_forward = LuminaFeedForward(dim, inner, multiple_of=1)
    return block


class JointProcessor(nn.Module):
    """The dual-stream attention's own projections: prompt and pictures project apart, attend as one sequence
    [prompt ; pictures] under the shared q/k norms, and project back apart before the shared output projection."""

    def __init__(self, dim: int, head: int, heads: int, kv_heads: int):
        super().__init__()
        q, kv = head * heads, head * kv_heads
        for side in ("img", "instruct"):
            setattr(self, f"{side}_to_q", nn.Linear(q, q, bias=False))
            setattr(self, f"{side}_to_k", nn.Linear(q, kv, bias=False))
            setattr(self, f"{side}_to_v", nn.Linear(q, kv, bias=False))
        self.instruct_out = nn.Linear(q, q, bias=False)
        self.img_out = nn.Linear(q, q, bias=False)


class JointAttention(nn.Module):
    def __init__(self, dim: int, heads: int, kv_heads: int):
        super().__init__()
        head = dim // heads
        self.heads, self.kv_heads, self.head = heads, kv_heads, head
        self.norm_q = RMSNorm(head, eps=1e-5)
        self.norm_k = RMSNorm(head, eps=1e-5)
        self.to_out = nn.ModuleList([nn.Linear(heads * head, dim, bias=False), nn.Dropout(0.0)])
        self.processor = JointProcessor(dim, head, heads, kv_heads)

    def forward(self, img: torch.Tensor, text: torch.Tensor, rotary: torch.Tensor) -> torch.Tensor:
        p, n, length = self.processor, img.shape[0], text.shape[1]

        def heads(x, count):
            return x.view(n, -1, count, self.head)
        q = heads(torch.cat([p.instruct_to_q(text), p.img_to_q(img)], 1), self.heads)
        k = heads(torch.cat([p.instruct_to_k(text), p.img_to_k(img)], 1), self.kv_heads)
        v = heads(torch.cat([p.instruct_to_v(text), p.img_to_v(img)], 1), self.kv_heads)
        q = apply_rotary_emb(self.norm_q(q), rotary, use_real=False).to(v.dtype)
        k = apply_rotary_emb(self.norm_k(k), rotary, use_real=False).to(v.dtype)
        rep = self.heads // self.kv_heads
        k, v = (t.repeat_interleave(rep, dim=2) for t in (k, v))
        out = nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = out.transpose(1, 2).reshape(n, -1, self.heads * self.head)
        out = torch.cat([p.instruct_out(out[:, :length]), p.img_out(out[:, length:])], 1)
        return self.to_out[0](out)


class DualStreamBlock(nn.Module):
    """Boogu's dual-stream block: the joint attention for both streams and the pictures' self-attention, each stream
    with its own modulations, feed-forward and sandwich norms."""

    def __init__(self, dim: int, heads: int, kv_heads: int, inner: int, eps: float):
        super().__init__()
        self.img_instruct_attn = JointAttention(dim, heads, kv_heads)
        self.img_self_attn = _attention(dim, heads, kv_heads)
        self.img_feed_forward = LuminaFeedForward(dim, inner, multiple_of=1)
        self.instruct_feed_forward = LuminaFeedForward(dim, inner, multiple_of=1)
        for name in ("img_norm1", "img_norm2", "img_norm3", "instruct_norm1", "instruct_norm2"):
            setattr(self, name, LuminaRMSNormZero(dim, eps, True))
        for name in ("img_attn_norm", "img_self_attn_norm", "img_ffn_norm1", "img_ffn_norm2", "instruct_attn_norm",
                     "instruct_ffn_norm1", "instruct_ffn_norm2"):
            setattr(self, name, RMSNorm(dim, eps=eps))

    def forward(self, img, text, joint_rotary, img_rotary, temb):
        # img_norm2 / img_norm3 / instruct_norm2 lend one chunk each (the MLP's shift, the self-attention's gate)
        img1, img_gate, img_scale_mlp, img_gate_mlp = self.img_norm1(img, temb)
        img2, img_shift_mlp, _, _ = self.img_norm2(img, temb)
        img3, img_gate_self, _, _ = self.img_norm3(img, temb)
        text1, text_gate, text_scale_mlp, text_gate_mlp = self.instruct_norm1(text, temb)
        text2, text_shift_mlp, _, _ = self.instruct_norm2(text, temb)
        joint = self.img_instruct_attn(img1, text1, joint_rotary)
        length = text.shape[1]
        own = self.img_self_attn(hidden_states=img3, encoder_hidden_states=img3, image_rotary_emb=img_rotary)

        def gated(gate, x):
            return gate.unsqueeze(1).tanh() * x
        img = img + gated(img_gate, self.img_attn_norm(joint[:, length:]))
        img = img + gated(img_gate_self, self.img_self_attn_norm(own))
        mlp = self.img_feed_forward(self.img_ffn_norm1((1 + img_scale_mlp.unsqueeze(1)) * img2 + img_shift_mlp.unsqueeze(1)))
        img = img + gated(img_gate_mlp, self.img_ffn_norm2(mlp))
        text = text + gated(text_gate, self.instruct_attn_norm(joint[:, :length]))
        mlp = self.instruct_feed_forward(self.instruct_ffn_norm1((1 + text_scale_mlp.unsqueeze(1)) * text2
                                                                 + text_shift_mlp.unsqueeze(1)))
        text = text + gated(text_gate_mlp, self.instruct_ffn_norm2(mlp))
        return img, text


class TimeCaption(nn.Module):
    """Lumina 2's time and caption embedders under OmniGen2's names (time_caption_embed.*)."""

    def __init__(self, dim: int, text_dim: int, eps: float):
        super().__init__()
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0.0)
        self.timestep_embedder = TimestepEmbedding(256, min(dim, 1024))
        self.caption_embedder = nn.Sequential(RMSNorm(text_dim, eps=eps), nn.Linear(text_dim, dim, bias=True))


def rotary(axes: Sequence[int], positions: torch.Tensor) -> torch.Tensor:
    """Complex rotations (tokens x head/2) for (offset, row, column) positions, each axis its share of the head."""
    parts = []
    for i, d in enumerate(axes):
        freqs = 1.0 / THETA ** (torch.arange(0, d, 2, dtype=torch.float64, device=positions.device) / d)
        parts.append(torch.polar(torch.ones(()), (positions[:, i, None].double() * freqs).float()))
    return torch.cat(parts, -1)


def positions(text: int, refs: Sequence[Tuple[int, int]], size: Tuple[int, int], device) -> torch.Tensor:
    """OmniGen2's positions of [prompt ; reference pictures ; picture] (token grids h x w each)."""
    def grid(offset, h, w):
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        return torch.stack([torch.full((h * w,), offset), rows.flatten(), cols.flatten()], 1)
    out = [torch.arange(text)[:, None].expand(text, 3)]
    offset = text
    for h, w in refs:
        out.append(grid(offset, h, w))
        offset += max(h, w)
    out.append(grid(offset, *size))
    return torch.cat(out).to(device)


class BooguTransformer(ModelMixin, ConfigMixin):
    # the single-stream blocks' name in the released files (OmniGen2's, which has no dual-stream stage: layers)
    single = "single_stream_layers"

    @register_to_config
    def __init__(self, in_channels: int = 16, hidden_size: int = 3360, num_layers: int = 32,
                 num_double_stream_layers: int = 8, num_refiner_layers: int = 2, num_attention_heads: int = 28,
                 num_kv_heads: int = 7, ffn_inner_dim: int = 13568, norm_eps: float = 1e-5,
                 axes_dim_rope: Tuple[int, int, int] = (40, 40, 40), instruction_feat_dim: int = 4096,
                 patch_size: int = 2):
        super().__init__()
        dim, heads, kv, inner, eps = hidden_size, num_attention_heads, num_kv_heads, ffn_inner_dim, norm_eps
        patch = patch_size * patch_size * in_channels
        self.x_embedder = nn.Linear(patch, dim)
        self.ref_image_patch_embedder = nn.Linear(patch, dim)
        self.time_caption_embed = TimeCaption(dim, instruction_feat_dim, eps)
        self.noise_refiner = nn.ModuleList(_block(dim, heads, kv, inner, eps) for _ in range(num_refiner_layers))
        self.ref_image_refiner = nn.ModuleList(_block(dim, heads, kv, inner, eps) for _ in range(num_refiner_layers))
        self.context_refiner = nn.ModuleList(_block(dim, heads, kv, inner, eps, modulation=False)
                                             for _ in range(num_refiner_layers))
        self.double_stream_layers = nn.ModuleList(DualStreamBlock(dim, heads, kv, inner, eps)
                                                  for _ in range(num_double_stream_layers))
        setattr(self, self.single, nn.ModuleList(_block(dim, heads, kv, inner, eps) for _ in range(num_layers)))
        self.norm_out = LuminaLayerNormContinuous(dim, min(dim, 1024), elementwise_affine=False, eps=1e-6, bias=True,
                                                  out_dim=patch)
        self.image_index_embedding = nn.Parameter(torch.empty(REFERENCE_SLOTS, dim))

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_size
        n, c, h, w = x.shape
        return x.view(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(n, (h // p) * (w // p), -1)

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                ref_latents: Optional[List[torch.Tensor]] = None) -> torch.Tensor:
        """hidden_states: n x C x H x W latents (H, W even); timestep: 1 - sigma per row; encoder_hidden_states: the
        prompt's n x L x instruction_feat_dim states (every token read); ref_latents: reference pictures' latents."""
        p = self.config.patch_size
        n, c, h, w = hidden_states.shape
        tc = self.time_caption_embed
        temb = tc.timestep_embedder(tc.time_proj(timestep * TIME_SCALE).to(hidden_states.dtype))
        text = tc.caption_embedder(encoder_hidden_states)
        length = text.shape[1]
        refs = [r.expand(n, *r.shape[1:]) for r in (ref_latents or [])]
        sizes = [(r.shape[-2] // p, r.shape[-1] // p) for r in refs]
        rope = rotary(self.config.axes_dim_rope, positions(length, sizes, (h // p, w // p), hidden_states.device))
        rope = rope[None].expand(n, -1, -1)
        ref_len = sum(a * b for a, b in sizes)
        for layer in self.context_refiner:
            text = layer(text, None, rope[:, :length])
        img = self.x_embedder(self._tokens(hidden_states))
        for layer in self.noise_refiner:
            img = layer(img, None, rope[:, length + ref_len:], temb)
        if refs:
            ref = torch.cat([self.ref_image_patch_embedder(self._tokens(r)) + self.image_index_embedding[i].to(img.dtype)
                             for i, r in enumerate(refs)], 1)
            for layer in self.ref_image_refiner:
                ref = layer(ref, None, rope[:, length:length + ref_len], temb)
            img = torch.cat([ref, img], 1)
        for layer in self.double_stream_layers:
            img, text = layer(img, text, rope, rope[:, length:], temb)
        x = torch.cat([text, img], 1)
        for layer in getattr(self, self.single):
            x = layer(x, None, rope, temb)
        out = self.norm_out(x, temb)[:, -(h // p) * (w // p):]
        return out.view(n, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, h, w)


class OmniGen2Transformer(BooguTransformer):
    """OmniGen2's transformer (ComfyUI's diffusion_models/omnigen2_fp16.safetensors): Boogu's without the
    dual-stream stage (num_double_stream_layers 0), its single-stream blocks named layers.N, the prompt read from
    Qwen2.5-VL-3B's 2048 widths; every size is the file's (converters/boogu.py)."""
    single = "layers"
