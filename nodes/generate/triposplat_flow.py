"""TripoSplat's flow transformer as ComfyUI runs it (comfy/ldm/triposplat/model.py: LatentSeqMMFlowModel), from its
file (diffusion_models/triposplat_fp16.safetensors, VAST-AI/TripoSplat) in ComfyUI's names.

It flows two streams at once: the 8192 shape tokens of 16 channels and one camera token of 5. The shape tokens sit at
fixed 3-D anchors (a scrambled Sobol sequence, seed 123) whose sinusoidal features are added to them; the picture's
DINOv3 tokens, plus its FLUX.2 VAE latent (front-padded to their length), are the context. Shape tokens and context
each pass refiner blocks of their own, then all three (shape, context, camera) pass the main blocks together. Every
block's attention turns queries and keys by a rotation the block computes from its own input (RePo: a small gated map
gives each token a 3-D position per head; each third of a head's channel pairs turns with one coordinate), then
RMS-normalises them per head. Shape blocks are modulated by the timestep (one shared adaLN plus an offset a block);
the context's refiners are plain pre-norm blocks."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError
from nodes.generate.own_parts import OwnParts
from nodes.generate.trellis2_flow import HeadRMSNorm

TOKENS, CHANNELS, CAMERA = 8192, 16, 5      # the shape tokens, their channels, the camera token's channels
FREQ = 256                                  # the timestep's sinusoidal features
SOBOL_SEED = 123


def anchor_features(width: int, tokens: int = TOKENS) -> torch.Tensor:
    """[1, tokens, width]: the shape tokens' fixed positions (3-D scrambled Sobol points) as sines and cosines, per
    coordinate n = width // 6 frequencies 2 * 2^0..2^15 (then, past 16, 2 * 2^(16 i / (n - 16))), times pi; the
    leftover channels zero (PcdAbsolutePositionEmbedder's pow2 schedule)."""
    points = torch.quasirandom.SobolEngine(dimension=3, scramble=True, seed=SOBOL_SEED).draw(tokens)
    n = width // 3 // 2
    extra = max(0, n - 16)
    exps = torch.cat([torch.arange(16, dtype=torch.float32),
                      torch.arange(extra, dtype=torch.float32) / max(extra, 1) * 16])[:n]
    angles = torch.outer(points.reshape(-1), torch.pow(2.0, exps) * 2.0) * torch.pi
    feats = torch.cat([angles.sin(), angles.cos()], -1).reshape(1, tokens, -1)
    return F.pad(feats, (0, width - feats.shape[-1]))


def _timestep_features(t: torch.Tensor) -> torch.Tensor:
    half = FREQ // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], -1)


class _MLP(nn.Module):
    """Linear, tanh-GELU, Linear, named as the file names them (.mlp.0, .mlp.2)."""

    def __init__(self, width_in: int, hidden: int, width_out: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(width_in, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class _Repo(nn.Module):
    """RePo3DRotaryEmbedding: the rotation [B, L, heads, head_dim / 2, 2, 2] of each query / key channel pair, from the
    block's input: a layer norm, a SiLU-gated map to width / 8, a map to 3 positions per head; the first two thirds
    (2 (head_dim // 6) channels each) turn with the first two coordinates, the rest with the third, at the file's
    frequencies (freqs_0..2) times pi."""

    def __init__(self, width: int, heads: int, head_dim: int, hidden: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width)
        self.gate_map = nn.Linear(width, hidden, bias=False)
        self.content_map = nn.Linear(width, hidden, bias=False)
        self.final_map = nn.Linear(hidden, 3 * heads, bias=False)
        a = 2 * (head_dim // 6)
        for i, d in enumerate((a, a, head_dim - 2 * a)):
            setattr(self, f"freqs_{i}", nn.Parameter(torch.zeros(d // 2)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.norm(h)
        pos = self.final_map(F.silu(self.gate_map(x)) * self.content_map(x))
        pos = pos.reshape(*pos.shape[:2], self.heads, 3).float()
        angles = torch.cat([pos[..., i:i + 1] * getattr(self, f"freqs_{i}").float() * torch.pi for i in range(3)], -1)
        cos, sin = angles.cos(), angles.sin()
        return torch.stack([cos, -sin, sin, cos], -1).reshape(*angles.shape, 2, 2)


def _turn(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """x [B, L, H, D], each pair (2i, 2i + 1) multiplied by rot [B, L, H, D / 2, 2, 2], in float32."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 1, 2)
    return (rot[..., 0] * pairs[..., 0] + rot[..., 1] * pairs[..., 1]).reshape(x.shape).to(x.dtype)


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, width * 3)
        self.q_norm = HeadRMSNorm(heads, width // heads, 1e-6)       # comfy.rmsnorm's eps
        self.k_norm = HeadRMSNorm(heads, width // heads, 1e-6)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).unbind(2)
        q, k = self.q_norm(_turn(q, rot)), self.k_norm(_turn(k, rot))      # turned first, then normed, as ComfyUI
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.out(h.transpose(1, 2).reshape(b, n, c))


class _Block(nn.Module):
    """UnifiedTransformerBlock: modulated (the shared adaLN's [B, 6 width] plus the block's shift_table; norms
    without weights) or plain (norms with weights)."""

    def __init__(self, width: int, heads: int, hidden: int, modulated: bool):
        super().__init__()
        self.modulated = modulated
        self.norm1 = nn.LayerNorm(width, elementwise_affine=not modulated, eps=1e-6)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=not modulated, eps=1e-6)
        self.attn = _Attention(width, heads)
        self.mlp = _MLP(width, hidden, width)
        if modulated:
            self.shift_table = nn.Parameter(torch.zeros(1, 6 * width))

    def forward(self, x, rot, mod=None):
        if not self.modulated:
            x = x + self.attn(self.norm1(x), rot)
            return x + self.mlp(self.norm2(x))
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = (mod + self.shift_table.to(mod.dtype))[:, None].chunk(6, -1)
        x = x + self.attn(self.norm1(x) * (1 + scale_a) + shift_a, rot) * gate_a
        return x + self.mlp(self.norm2(x) * (1 + scale_m) + shift_m) * gate_m


class TripoSplatFlow(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, depth: int, refiners: int, context: int, reference: int,
                 repo_hidden: int, channels: int = CHANNELS, camera: int = CAMERA):
        super().__init__()
        head_dim = width // heads
        self.t_embedder = nn.Module()
        self.t_embedder.mlp = nn.Sequential(nn.Linear(FREQ, width), nn.SiLU(), nn.Linear(width, width))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        self.input_layer = nn.Linear(channels, width)
        self.cond_embedder = nn.Linear(context, width)
        self.cond_embedder2 = nn.Linear(reference, width)
        repo = lambda: _Repo(width, heads, head_dim, repo_hidden)  # noqa: E731
        self.noise_repo_layers = nn.ModuleList([repo() for _ in range(refiners)])
        self.context_repo_layers = nn.ModuleList([repo() for _ in range(refiners)])
        self.repo_layers = nn.ModuleList([repo() for _ in range(depth)])
        self.noise_refiner = nn.ModuleList([_Block(width, heads, hidden, True) for _ in range(refiners)])
        self.context_refiner = nn.ModuleList([_Block(width, heads, hidden, False) for _ in range(refiners)])
        self.cam_refiner = _MLP(camera, width, width)
        self.blocks = nn.ModuleList([_Block(width, heads, hidden, True) for _ in range(depth)])
        self.shift_table = nn.Parameter(torch.zeros(1, 2, width))
        self.out_layer = nn.Linear(width, channels)
        self.cam_out_layer = nn.Linear(width, camera)
        self.context_dim, self.reference_dim, self.width = context, reference, width
        self._anchors = {}          # by token count, float32, not buffers: not in the file

    def anchors(self, tokens: int) -> torch.Tensor:
        """The first `tokens` of the Sobol sequence's features (all 8192 in ComfyUI's latent; fewer in tests)."""
        if tokens not in self._anchors:
            self._anchors[tokens] = anchor_features(self.width, tokens)
        return self._anchors[tokens]

    @property
    def dtype(self):
        return self.input_layer.weight.dtype

    @property
    def device(self):
        return self.input_layer.weight.device

    def forward(self, z: torch.Tensor, camera: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                reference: torch.Tensor = None):
        """z [B, 8192, 16] (the shape tokens), camera [B, 1, 5], timestep [B] (1000 sigma), context [B, L, width of
        DINOv3], reference [B, 128, h, w] (FLUX.2's latent of the picture; h w <= L) or None -> their flows, in the
        shapes of z and camera."""
        h_x = self.input_layer(z) + self.anchors(z.shape[1]).to(z.device, z.dtype)
        h_c = self.cond_embedder(context)
        if reference is not None:
            ref = reference.flatten(2).transpose(1, 2)
            h_c = h_c + self.cond_embedder2(F.pad(ref, (0, 0, context.shape[1] - ref.shape[1], 0)).to(h_c.dtype))
        t = self.t_embedder.mlp(_timestep_features(timestep).to(z.dtype))
        mod = self.adaLN_modulation(t)
        for block, repo in zip(self.noise_refiner, self.noise_repo_layers):
            h_x = block(h_x, repo(h_x), mod)
        for block, repo in zip(self.context_refiner, self.context_repo_layers):
            h_c = block(h_c, repo(h_c))
        h = torch.cat([h_x, h_c, self.cam_refiner(camera.to(z.dtype))], 1)
        for block, repo in zip(self.blocks, self.repo_layers):
            h = block(h, repo(h), mod)
        shift, scale = (self.shift_table.to(t.dtype) + t[:, None]).chunk(2, 1)
        ends = [F.layer_norm(part.float(), part.shape[-1:]).to(z.dtype) * (1 + scale) + shift
                for part in (h[:, :z.shape[1]], h[:, -camera.shape[1]:])]
        return self.out_layer(ends[0]), self.cam_out_layer(ends[1])


def build_flow(state: Dict[str, torch.Tensor], name: str = "the TripoSplat model") -> TripoSplatFlow:
    """The flow model for a file's tensors (ComfyUI's names, no prefix): widths, heads (the per-head norm's rows),
    depths read from them, a stranger's file's: blocks counted (at most converters.MAX_BLOCKS) and the model counted
    on the meta device before it is built."""
    from nodes.generate.converters import count, fitted
    from nodes.generate.weights import sizes_of
    try:
        width = int(state["input_layer.weight"].shape[0])
        heads = int(state["blocks.0.attn.q_norm.gamma"].shape[0])
        hidden = int(state["blocks.0.mlp.mlp.0.weight"].shape[0])
        context = int(state["cond_embedder.weight"].shape[1])
        reference = int(state["cond_embedder2.weight"].shape[1])
        repo_hidden = int(state["repo_layers.0.gate_map.weight"].shape[0])
        channels = int(state["input_layer.weight"].shape[1])
        camera = int(state["cam_out_layer.weight"].shape[0])
    except KeyError as e:
        raise NodeError(f"{name}: it lacks {e.args[0]}: the file is incomplete or damaged; get it again") from None
    except IndexError as e:
        raise NodeError(f"{name}: it holds tensors of shapes it does not have ({e}): the file is incomplete or "
                        "damaged; get it again") from None
    with sizes_of(name, "TripoSplat's flow model"):
        depth = count(state, "blocks.{}.")
        refiners = count(state, "noise_refiner.{}.")
    sizes = (width, heads, hidden, depth, refiners, context, reference, repo_hidden, channels, camera)
    return fitted(lambda: TripoSplatFlow(*sizes), state, name, name)


class TripoSplatParts(OwnParts):
    """What load.diffusion_model hands the sampler for TripoSplat: its flow model."""

    def __init__(self, transformer: TripoSplatFlow):
        super().__init__(transformer=transformer)


def load_flow(path: Path, prefix: str, dtype, device: str) -> TripoSplatParts:
    from nodes.generate.weights import dequantise, read_selected, strip_prefix
    state = dequantise(read_selected(path, lambda k: k.startswith(prefix)), dtype)
    return TripoSplatParts(build_flow(strip_prefix(state, prefix), Path(path).name).to(dtype)).to(device)
