"""TRELLIS.2's sparse-structure flow transformer as ComfyUI runs it (comfy/ldm/trellis2/model.py:
SparseStructureFlowModel, its structure mode of Trellis2.forward): a dense transformer over the 16^3 structure latent's
first 8 channels (4096 tokens), each block self-attention with 3-D rotary positions and per-head RMS-normed queries and
keys, cross-attention to DINOv3's 512 tokens of the picture, and an MLP, modulated by the timestep (one shared
adaLN, a learnt offset a block). It gives the flow of those 8 channels; the other 24 of the latent come back as zeros.

ComfyUI's TRELLIS.2 file (diffusion_models/trellis_2_int8_convrot.safetensors) holds it under structure_model. beside
the shape and texture models (img2shape., img2shape_512., shape2txt.), which this stage does not read."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError
from nodes.generate.own_parts import OwnParts

PREFIX = "structure_model."
SIDE, CHANNELS, READ = 16, 32, 8        # the grid's side, the latent's channels, the channels the model reads
FREQ = 256                              # the timestep's sinusoidal features


def _rope_phases(head_dim: int, side: int) -> torch.Tensor:
    """The rotation of each (even, odd) pair of a head's channels at every grid cell, [side^3, head_dim / 2, 2, 2]:
    a third of the pairs turn with x, a third with y, a third with z (frequencies 1 / 10000^(i / n)); pairs left over
    do not turn."""
    n = head_dim // 2 // 3
    freqs = 1.0 / (10000.0 ** (torch.arange(n, dtype=torch.float32) / n))
    grid = torch.stack(torch.meshgrid(*[torch.arange(side, dtype=torch.float32)] * 3, indexing="ij"), -1).reshape(-1, 3)
    angles = torch.cat([grid[:, i:i + 1] * freqs for i in range(3)], -1)
    angles = F.pad(angles, (0, head_dim // 2 - angles.shape[-1]))
    cos, sin = angles.cos(), angles.sin()
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)    # [[cos, -sin], [sin, cos]]


def _rotate(x: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
    """x [B, L, H, D] with each channel pair (2i, 2i + 1) turned by phases [L, D / 2, 2, 2]."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    turned = torch.einsum("lpij,blhpj->blhpi", phases, pairs)         # in float32, as ComfyUI's apply_rope
    return turned.reshape(x.shape).to(x.dtype)


class HeadRMSNorm(nn.Module):
    """RMS norm over each head's channels, a gain per head and channel; eps None: torch's (the dtype's epsilon)."""

    def __init__(self, heads: int, dim: int, eps=None):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(heads, dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), eps=self.eps) * self.gamma.to(x.dtype)


class Attention(nn.Module):
    """Self-attention (to_qkv) or cross-attention to a context `context` wide (to_q, to_kv), queries and keys
    RMS-normed per head (HeadRMSNorm's eps), then turned by rotary phases where given."""

    def __init__(self, width: int, heads: int, context: int = 0, eps=None):
        super().__init__()
        self.heads = heads
        if context:
            self.to_q = nn.Linear(width, width)
            self.to_kv = nn.Linear(context, width * 2)
        else:
            self.to_qkv = nn.Linear(width, width * 3)
        self.q_rms_norm = HeadRMSNorm(heads, width // heads, eps)
        self.k_rms_norm = HeadRMSNorm(heads, width // heads, eps)
        self.to_out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor = None, phases: torch.Tensor = None) -> torch.Tensor:
        b, n, c = x.shape
        if context is None:
            q, k, v = self.to_qkv(x).reshape(b, n, 3, self.heads, -1).unbind(2)
        else:
            q = self.to_q(x).reshape(b, n, self.heads, -1)
            k, v = self.to_kv(context).reshape(b, context.shape[1], 2, self.heads, -1).unbind(2)
        q, k = self.q_rms_norm(q), self.k_rms_norm(k)
        if phases is not None:
            q, k = _rotate(q, phases), _rotate(k, phases)
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.to_out(h.transpose(1, 2).reshape(b, n, c))


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, context: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.norm3 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.self_attn = Attention(width, heads)
        self.cross_attn = Attention(width, heads, context)
        self.mlp = nn.Sequential()          # nested as the file names it (mlp.mlp.N), as t_embedder.mlp.N below
        self.mlp.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.modulation = nn.Parameter(torch.zeros(6 * width))

    def forward(self, x, mod, context, phases):
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = (self.modulation.to(mod.dtype) + mod)[:, None].chunk(6, -1)
        x = x + self.self_attn(self.norm1(x) * (1 + scale_a) + shift_a, phases=phases) * gate_a
        x = x + self.cross_attn(self.norm2(x), context)
        return x + self.mlp(self.norm3(x) * (1 + scale_m) + shift_m) * gate_m


class StructureFlow(nn.Module):
    def __init__(self, width: int, heads: int, context: int, hidden: int, depth: int):
        super().__init__()
        self.t_embedder = nn.Sequential()
        self.t_embedder.mlp = nn.Sequential(nn.Linear(FREQ, width), nn.SiLU(), nn.Linear(width, width))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        self.input_layer = nn.Linear(READ, width)
        self.blocks = nn.ModuleList([_Block(width, heads, context, hidden) for _ in range(depth)])
        self.out_layer = nn.Linear(width, READ)
        self.context_dim = context
        self.rope_phases = _rope_phases(width // heads, SIDE)     # float32 whatever the weights' type: not a buffer

    @property
    def dtype(self):
        return self.input_layer.weight.dtype

    @property
    def device(self):
        return self.input_layer.weight.device

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x [B, 32, 16, 16, 16] (the structure latent), timestep [B] (1000 sigma), context [B, L, 1024] -> the flow,
        [B, 32, 16, 16, 16], its last 24 channels zero."""
        b = x.shape[0]
        h = self.input_layer(x[:, :READ].reshape(b, READ, -1).transpose(1, 2))
        half = FREQ // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
        args = timestep.float()[:, None] * freqs[None]
        t = self.t_embedder.mlp(torch.cat([args.cos(), args.sin()], -1).to(h.dtype))
        mod = self.adaLN_modulation(t)
        phases = self.rope_phases.to(x.device)
        for block in self.blocks:
            h = block(h, mod, context, phases)
        out = self.out_layer(F.layer_norm(h, h.shape[-1:])).transpose(1, 2).reshape(b, READ, SIDE, SIDE, SIDE)
        return F.pad(out, (0, 0, 0, 0, 0, 0, 0, CHANNELS - READ))


def build_structure_flow(state: Dict[str, torch.Tensor], name: str = "the TRELLIS.2 model") -> StructureFlow:
    """The structure model for a file's structure_model. tensors (prefix removed): width, heads, the picture tokens'
    width, the MLP's width and the depth read from them, a stranger's file's: the blocks counted (at most
    converters.MAX_BLOCKS) and the model counted on the meta device before it is built (a width claimed by a tensor of
    shape [10^6, 0], no byte in the file, asked for terabytes)."""
    from nodes.generate.converters import count, fitted
    from nodes.generate.weights import sizes_of
    try:
        width = int(state["input_layer.weight"].shape[0])
        heads = int(state["blocks.0.self_attn.q_rms_norm.gamma"].shape[0])
        context = int(state["blocks.0.cross_attn.to_kv.weight"].shape[1])
        hidden = int(state["blocks.0.mlp.mlp.0.weight"].shape[0])
    except KeyError as e:
        raise NodeError(f"{name}: its structure_model lacks {e.args[0]}: the file is incomplete or damaged; "
                        "get it again") from None
    except IndexError as e:     # a tensor of too few dimensions
        raise NodeError(f"{name}: its structure_model holds tensors of shapes it does not have ({e}): the "
                        "file is incomplete or damaged; get it again") from None
    with sizes_of(name, "TRELLIS.2's structure model"):
        depth = count(state, "blocks.{}.")
    return fitted(lambda: StructureFlow(width, heads, context, hidden, depth), state, name,
                  f"{name}: its structure_model")


class Trellis2Parts(OwnParts):
    """What load.diffusion_model hands the sampler for TRELLIS.2: its structure model (the shape and texture models
    of the same file are not read yet)."""

    def __init__(self, transformer: StructureFlow):
        super().__init__(transformer=transformer)


def load_structure_flow(path: Path, prefix: str, dtype, device: str) -> Trellis2Parts:
    """The file's structure model in `dtype` (its int8 ConvRot layers turned back into plain matrices), its other
    models left unread."""
    from nodes.generate.weights import dequantise, read_selected, strip_prefix
    where = prefix + PREFIX
    state = dequantise(read_selected(path, lambda k: k.startswith(where)), dtype)
    return Trellis2Parts(build_structure_flow(strip_prefix(state, where), Path(path).name).to(dtype)).to(device)
