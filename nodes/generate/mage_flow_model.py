"""Mage-Flow's transformer (Microsoft's Mage-Flow, Mage-Flow-Turbo and Mage-Flow-Edit), in ComfyUI's names
(comfy/ldm/mage_flow/model.py; Comfy-Org/Mage-Flow's diffusion_models/mage_flow_*.safetensors). It is Qwen-Image's
double-stream transformer with three differences, kept here:

- one token per latent pixel (no 2x2 patches) of the Mage VAE's 128-channel latent; rows and columns placed from
  -ceil(n/2) (Qwen-Image's start at -(n//2)), each picture on its own time plane (0 the picture made, 1.. its
  references, concatenated after it);
- the prompt's tokens are not rotated (all at position 0);
- the timestep's frequency table is kept in the running dtype and the level itself is rounded to bf16 first
  (ComfyUI's MageFlow.process_timestep: Mage runs in bf16), its angles sigma x 1000 x frequency.

The blocks are diffusers' QwenImageTransformerBlock, whose tensor names are ComfyUI's own."""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Sequence

import torch
from torch import nn

THETA = 10000.0
FREQUENCIES = 256           # the timestep embedding's input width (128 cosines, 128 sines)


class TimestepEmbedding(nn.Module):
    """linear_1, SiLU, linear_2 (comfy/ldm/lightricks/model.TimestepEmbedding's names)."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(FREQUENCIES, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(nn.functional.silu(self.linear_1(x)))


class TimeEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.timestep_embedder = TimestepEmbedding(dim)

    def forward(self, sigma: torch.Tensor, dtype) -> torch.Tensor:
        """The embedding of levels sigma [B] (0..1), in `dtype`: the level rounded to bf16, the table in `dtype`."""
        t = sigma.to(torch.bfloat16).to(dtype)
        half = FREQUENCIES // 2
        table = torch.exp(-math.log(THETA) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        angles = 1000.0 * (t[:, None].float() * table.to(dtype)[None, :].float())
        return self.timestep_embedder(torch.cat([angles.cos(), angles.sin()], -1).to(dtype))


class LastLayer(nn.Module):
    """The output's adaptive norm: scale then shift from the time embedding (norm_out.linear)."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)

    def forward(self, x, emb):
        scale, shift = self.linear(nn.functional.silu(emb)).chunk(2, dim=1)
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None]


def picture_positions(index: int, h: int, w: int) -> torch.Tensor:
    """(plane, row, column) of each latent pixel of an h x w picture, rows and columns from -ceil(n/2): [h * w, 3]."""
    rows = torch.arange(h, dtype=torch.float64) - (h - h // 2)
    cols = torch.arange(w, dtype=torch.float64) - (w - w // 2)
    grid = torch.stack(torch.meshgrid(torch.full((1,), float(index), dtype=torch.float64), rows, cols,
                                      indexing="ij"))
    return grid.reshape(3, -1).T


def rotations(positions: torch.Tensor, axes: Sequence[int]) -> torch.Tensor:
    """Unit complex rotations of each position's rotary pairs, axis by axis: [n, head / 2]."""
    parts = []
    for axis, dim in enumerate(axes):
        omega = 1.0 / THETA ** torch.linspace(0, (dim - 2) / dim, dim // 2, dtype=torch.float64)
        angles = positions[:, axis:axis + 1] * omega[None]
        parts.append(torch.polar(torch.ones_like(angles), angles))
    return torch.cat(parts, 1).to(torch.complex64)


class MageFlowTransformer(nn.Module):
    def __init__(self, in_channels: int = 128, out_channels: int = 128, num_layers: int = 12, heads: int = 24,
                 head_dim: int = 128, text_dim: int = 2560):
        from diffusers.models.transformers.transformer_qwenimage import QwenImageTransformerBlock
        super().__init__()
        from nodes.generate.converters.flux import rope_axes
        dim = heads * head_dim
        self.axes = rope_axes(head_dim, "qwenimage")        # Qwen-Image's split: [16, 56, 56] of 128
        self.config = SimpleNamespace(in_channels=in_channels, out_channels=out_channels, num_layers=num_layers,
                                      num_attention_heads=heads, attention_head_dim=head_dim,
                                      joint_attention_dim=text_dim)
        self.time_text_embed = TimeEmbed(dim)
        self.txt_norm = nn.RMSNorm(text_dim, eps=1e-6)
        self.img_in = nn.Linear(in_channels, dim)
        self.txt_in = nn.Linear(text_dim, dim)
        self.transformer_blocks = nn.ModuleList(
            QwenImageTransformerBlock(dim=dim, num_attention_heads=heads, attention_head_dim=head_dim, eps=1e-6)
            for _ in range(num_layers))
        self.norm_out = LastLayer(dim)
        self.proj_out = nn.Linear(dim, out_channels)

    @property
    def dtype(self):
        return self.img_in.weight.dtype

    @property
    def device(self):
        return self.img_in.weight.device

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor, refs: Sequence = ()):
        """The velocity at x [B, C, h, w] at levels sigma [B] (0..1), reading the prompt's states context [B, L, D]
        and the reference latents (each [B, C, h', w'], any size)."""
        b, c, h, w = x.shape
        parts = [x, *refs]
        tokens = torch.cat([p.flatten(2).transpose(1, 2) for p in parts], 1)
        positions = torch.cat([picture_positions(i, p.shape[-2], p.shape[-1]) for i, p in enumerate(parts)])
        img_rot = rotations(positions, self.axes).to(x.device)
        txt_rot = torch.ones(context.shape[1], img_rot.shape[1], dtype=img_rot.dtype, device=x.device)
        hidden = self.img_in(tokens)
        text = self.txt_in(self.txt_norm(context))
        emb = self.time_text_embed(sigma.reshape(-1).expand(b), hidden.dtype)
        for block in self.transformer_blocks:
            text, hidden = block(hidden_states=hidden, encoder_hidden_states=text, encoder_hidden_states_mask=None,
                                 temb=emb, image_rotary_emb=(img_rot, txt_rot))
        out = self.proj_out(self.norm_out(hidden[:, :h * w], emb))
        return out.transpose(1, 2).reshape(b, -1, h, w)


def transformer_config(state) -> dict:
    """The transformer's sizes, from its tensors (bare names)."""
    from nodes.generate.converters import count
    inner, channels = (int(s) for s in state["img_in.weight"].shape)
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    return dict(in_channels=channels, out_channels=int(state["proj_out.weight"].shape[0]),
                num_layers=count(state, "transformer_blocks.{}."), heads=inner // head, head_dim=head,
                text_dim=int(state["txt_in.weight"].shape[1]))
