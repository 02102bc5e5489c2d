"""TripoSplat's Gaussian decoder as ComfyUI runs it (comfy/ldm/triposplat/vae.py and gaussian.py:
OctreeGaussianDecoder, VAEDecodeTripoSplat), from vae/triposplat_vae_decoder_fp16.safetensors (octree., gs.).

A sampled latent's 8192 shape tokens become Gaussians in two passes, both cross-attending to the tokens:
- the octree decoder places points: from the root cube, level by level to 2^8 cells a side, it gives each occupied
  cell's 8 children their probabilities, and the cell's points are dealt to its children by systematic resampling
  (one uniform draw a cell); at the last level each point is jittered uniformly within its cell;
- the Gaussian decoder gives every point 32 Gaussians: offsets (tanh-bounded, around a fixed Hammersley pattern,
  scaled), colour, scale (softplus), rotation and opacity (sigmoid), each about its bias.
The result is turned to Y-up (x, -z, y) as ComfyUI's render_tensors turns it. The draws are from a generator seeded
by the node's seed, on the CPU: ComfyUI's are torch's global ones on the VAE's device, the same values on a CPU."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError
from nodes.generate.own_parts import OwnParts
from nodes.generate.trellis2_flow import Attention

LEVELS = 8                  # OctreeGaussianDecoder._MAX_VOXEL_LEVEL
PER_POINT = 32              # rep_config num_gaussians: Gaussians a point
FREQ = 256                  # the level's sinusoidal features
# rep_config: where the Gaussians' raw values sit about (softplus scale 0.004, opacity 0.1), the 3-D filter's size,
# offsets' reach and base scale, the rotations' learning-rate scale
SCALE_BIAS, OPACITY_BIAS, KERNEL, REACH, OFFSET_SCALE, ROTATION_LR = 0.004, 0.1, 0.0009, 1.5, 0.05, 0.1
# the per-point layout of the Gaussian decoder's output: (name, values a Gaussian)
LAYOUT = (("xyz", 3), ("color", 3), ("scale", 3), ("rotation", 4), ("opacity", 1), ("offset_scale", 1))
Y_UP = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])       # gaussian.py's _DEFAULT_TRANSFORM


def _position_features(points: torch.Tensor, width: int) -> torch.Tensor:
    """[..., width]: each coordinate's sines and cosines at 2^(0..10) (width // 6 steps) times pi, the rest zero
    (PcdAbsolutePositionEmbedder's log2 schedule)."""
    n = width // 3 // 2
    freqs = torch.pow(2.0, torch.linspace(0.0, 10.0, n, device=points.device))
    angles = torch.outer(points.float().reshape(-1), freqs) * torch.pi
    feats = torch.cat([angles.sin(), angles.cos()], -1).reshape(*points.shape[:-1], -1)
    return F.pad(feats, (0, width - feats.shape[-1]))


def _radical_inverse(base: int, n: int) -> float:
    value, inv = 0.0, 1.0 / base
    step = inv
    while n > 0:
        value += (n % base) * step
        n //= base
        step *= inv
    return value


def _offset_pattern(count: int) -> torch.Tensor:
    """[count, 3]: the Hammersley points (i / count, radical inverses in bases 2 and 3) mapped through atanh to
    where tanh(. ) * 0.75 spreads them over the cell."""
    pts = torch.tensor([[i / count, _radical_inverse(2, i), _radical_inverse(3, i)] for i in range(count)])
    return torch.atanh((pts * 2 - 1) / REACH)


def _attention(width: int, heads: int, context: int = 0) -> nn.Module:
    """vae.py's MultiHeadAttention: TRELLIS.2's layout, its per-head RMS norm at comfy.rmsnorm's eps"""
    return Attention(width, heads, context, eps=1e-6)


class _MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))

    def forward(self, x):
        return self.mlp(x)


class _OctreeBlock(nn.Module):
    """cross-attention and MLP, each modulated by the level (the shared adaLN's six chunks)"""

    def __init__(self, width, heads, context, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.cross_attn = _attention(width, heads, context)
        self.mlp = _MLP(width, hidden)

    def forward(self, x, mod, context):
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod[:, None].chunk(6, -1)
        x = x + self.cross_attn(self.norm1(x) * (1 + scale_a) + shift_a, context) * gate_a
        return x + self.mlp(self.norm2(x) * (1 + scale_m) + shift_m) * gate_m


class OctreeDecoder(nn.Module):
    """Children's occupancy logits [B, L, 8] of the cells at normalised centres x [B, L, 3], at resolution res."""

    def __init__(self, width, heads, context, hidden, depth):
        super().__init__()
        self.in_proj = nn.Linear(3, width)
        self.input_layer = nn.Linear(width, width)
        self.l_embedder = nn.Module()
        self.l_embedder.mlp = nn.Sequential(nn.Linear(FREQ, width), nn.SiLU(), nn.Linear(width, width))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        self.blocks = nn.ModuleList([_OctreeBlock(width, heads, context, hidden) for _ in range(depth)])
        self.out_proj = nn.Linear(width, 8)
        self.width = width

    def forward(self, x, res, context):
        d = self.in_proj.weight.dtype
        h = self.input_layer(self.in_proj(x.to(d)) + _position_features(x, self.width).to(d))
        half = FREQ // 2
        freqs = torch.exp(-math.log(1024) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
        args = res.float()[:, None] * freqs[None] * 2 * torch.pi
        mod = self.adaLN_modulation(self.l_embedder.mlp(torch.cat([args.cos(), args.sin()], -1).to(d)))
        for block in self.blocks:
            h = block(h, mod, context.to(d))
        return self.out_proj(F.layer_norm(h.float(), h.shape[-1:]).to(d))


class _GaussianBlock(nn.Module):
    def __init__(self, width, heads, context, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.norm3 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.self_attn = _attention(width, heads)
        self.cross_attn = _attention(width, heads, context)
        self.mlp = _MLP(width, hidden)

    def forward(self, x, context):
        x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), context)
        return x + self.mlp(self.norm3(x))


class GaussianDecoder(nn.Module):
    """Each point's 32 Gaussians' raw values [B, N, 32 x 15] (LAYOUT's order) from the points [B, N, 3]."""

    def __init__(self, width, heads, context, hidden, depth):
        super().__init__()
        self.in_proj = nn.Linear(3, width)
        self.input_layer = nn.Linear(width, width)
        self.blocks = nn.ModuleList([_GaussianBlock(width, heads, context, hidden) for _ in range(depth)])
        self.out_proj = nn.Linear(width, PER_POINT * sum(n for _, n in LAYOUT))
        self.width = width
        self.pattern = _offset_pattern(PER_POINT)      # float32, not a buffer: ComfyUI builds it too

    def forward(self, points, context):
        d = self.in_proj.weight.dtype
        h = self.input_layer(self.in_proj(points.to(d)) + _position_features(points, self.width).to(d))
        for block in self.blocks:
            h = block(h, context.to(d))
        return self.out_proj(F.layer_norm(h.float(), h.shape[-1:]).to(h.dtype))


def _children(probs: torch.Tensor, counts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[R, 8]: each of R cells' `counts` points dealt to its 8 children by systematic resampling of `probs` [R, 8]
    (one uniform draw a cell; sample_probs)."""
    probs = probs.float().clamp_min(0)
    sums = probs.sum(1, keepdim=True)
    probs = torch.where(sums == 0, probs.new_tensor(1.0 / 8), probs / sums.clamp_min(1))
    cdf = probs.cumsum(1).clamp(max=1.0 - 1e-12)
    most = int(counts.max())
    if most == 0:
        return counts.new_zeros(len(counts), 8)
    grid = torch.arange(most, dtype=torch.float32)[None]
    u = (torch.rand(len(counts), 1, generator=generator) + grid) / counts.clamp_min(1).float()[:, None]
    idx = torch.searchsorted(cdf, u.clamp(max=1.0 - 1e-12)).clamp_max(7)
    out = torch.zeros(len(counts), 8).scatter_add_(1, idx, (grid < counts[:, None]).float())
    return out.long()


def place_points(octree: OctreeDecoder, tokens: torch.Tensor, count: int, generator: torch.Generator,
                 levels: int = LEVELS) -> torch.Tensor:
    """[count, 3] points in 0..1 for one latent's tokens [1, L, C]: the octree walked down `levels` levels, then each
    point jittered within its cell."""
    # the children of a cell in ComfyUI's order: x fastest, then y, then z
    offsets = torch.tensor([[i, j, k] for k in (0, 1) for j in (0, 1) for i in (0, 1)])
    cells, counts = torch.zeros(1, 3, dtype=torch.long), torch.tensor([count])
    device = tokens.device
    for level in range(1, levels + 1):
        centres = (cells.float() + 0.5) / (1 << (level - 1))
        with torch.inference_mode():
            logits = octree(centres[None].to(device), torch.full((1,), 1 << level, device=device), tokens)[0]
        dealt = _children(torch.softmax(logits.float(), -1).cpu(), counts, generator).reshape(-1)
        kids = (cells[:, None] * 2 + offsets[None]).reshape(-1, 3)
        cells, counts = kids[dealt > 0], dealt[dealt > 0]
    cells = torch.repeat_interleave(cells, counts, 0)
    return (cells.float() + torch.rand(1, count, 3, generator=generator)[0]) / (1 << levels)


def _quat_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def gaussians(gs: GaussianDecoder, points: torch.Tensor, raw: torch.Tensor):
    """The Splat of the points [N, 3] and their Gaussians' raw values [N, 32 x 15] (build_gaussian_models and
    render_tensors): activated, about the box -0.5..0.5, turned Y-up."""
    from nodes.common.splat import Splat
    raw = raw.float()
    n = len(points)
    parts, start = {}, 0
    for name, size in LAYOUT:
        parts[name] = raw[:, start:start + PER_POINT * size].reshape(n, PER_POINT, size)
        start += PER_POINT * size
    reach = F.softplus(parts["offset_scale"] + math.log(math.expm1(OFFSET_SCALE)))
    offset = torch.tanh(parts["xyz"] + gs.pattern.to(raw.device)) * 0.5 * REACH * reach
    xyz = (offset + points[:, None].to(raw.device)).reshape(-1, 3) - 0.5
    scale_bias = SCALE_BIAS + math.log(-math.expm1(-SCALE_BIAS))       # softplus's inverse at 0.004
    scales = torch.sqrt(F.softplus(parts["scale"].reshape(-1, 3) + scale_bias) ** 2 + KERNEL ** 2)
    opacity = torch.sigmoid(parts["opacity"].reshape(-1) + math.log(OPACITY_BIAS / (1 - OPACITY_BIAS)))
    rot = parts["rotation"].reshape(-1, 4) * ROTATION_LR + torch.tensor([1.0, 0, 0, 0], device=raw.device)
    rot = rot / torch.linalg.norm(rot, dim=-1, keepdim=True)
    half = math.sqrt(0.5)       # Y_UP as a quaternion: a quarter turn about x
    rot = _quat_product(torch.tensor([half, half, 0.0, 0.0], device=raw.device).expand_as(rot), rot)
    rot = torch.where(rot[:, :1] < 0, -rot, rot)            # w >= 0, as _matrix_to_quat gives it
    rot = rot / torch.linalg.norm(rot, dim=-1, keepdim=True)
    xyz = xyz @ Y_UP.to(raw.device).T
    return Splat(xyz.cpu().numpy(), scales.cpu().numpy(), rot.cpu().numpy(), opacity.cpu().numpy(),
                 parts["color"].reshape(-1, 1, 3).cpu().numpy())


class _File(nn.Module):
    """the decoders as the file names them (octree., gs.)"""

    def __init__(self, octree: OctreeDecoder, gs: GaussianDecoder):
        super().__init__()
        self.octree, self.gs = octree, gs


class TripoSplatVae(OwnParts):
    """TripoSplat's decoder file: the octree decoder and the Gaussian decoder."""

    def __init__(self, octree: OctreeDecoder, gs: GaussianDecoder):
        super().__init__(octree=octree, gs=gs)


def _sizes(state: Dict[str, torch.Tensor], part: str, norm: str):
    from nodes.generate.converters import count
    width = int(state[f"{part}.input_layer.weight"].shape[0])
    heads = int(state[f"{part}.blocks.0.{norm}.q_rms_norm.gamma"].shape[0])
    context = int(state[f"{part}.blocks.0.cross_attn.to_kv.weight"].shape[1])
    hidden = int(state[f"{part}.blocks.0.mlp.mlp.0.weight"].shape[0])
    return width, heads, context, hidden, count(state, f"{part}.blocks.{{}}.")


def build_vae(state: Dict[str, torch.Tensor], name: str = "the TripoSplat VAE") -> TripoSplatVae:
    """The decoder for a file's octree. and gs. tensors, sizes read from them (a stranger's file's: counted and
    checked on the meta device first)."""
    from nodes.generate.converters import fitted
    from nodes.generate.weights import sizes_of
    with sizes_of(name, "TripoSplat's decoder"):
        octree, gs = _sizes(state, "octree", "cross_attn"), _sizes(state, "gs", "self_attn")
    # ComfyUI's file may carry the Gaussian decoder's fixed offsets (buffers it rebuilds); they are rebuilt here too
    state = {k: v for k, v in state.items() if k not in ("gs.points_offset_perturbation", "gs.base_offset_scale")}
    both = fitted(lambda: _File(OctreeDecoder(*octree), GaussianDecoder(*gs)), state, name, name)
    return TripoSplatVae(both.octree, both.gs)


def load_vae(path: Path, device: str) -> TripoSplatVae:
    """The file's decoder in float32 (small next to the flow model; the octree's probabilities decide where points
    go, which half precision may tip)."""
    from nodes.generate.weights import dequantise, read_selected
    state = dequantise(read_selected(path, lambda k: k.startswith(("octree.", "gs."))), torch.float32)
    return build_vae(state, Path(path).name).to(device)


def decode(vae, latent, num_gaussians: int, seed: int):
    """ComfyUI's VAEDecodeTripoSplat: the latent's shape tokens (its camera token dropped) to num_gaussians
    Gaussians (32768..1048576, rounded to a multiple of 32)."""
    parts = getattr(vae, "pipe", None)
    if not isinstance(parts, TripoSplatVae):
        raise NodeError("decode.triposplat needs TripoSplat's decoder (load.vae on "
                        "triposplat_vae_decoder_fp16.safetensors)")
    s = latent.samples
    if latent.family != "triposplat" or s.ndim != 5 or s.shape[2:4] != (1, 1):
        raise NodeError(f"this is a {latent.family} latent of shape {list(s.shape)}, not a TripoSplat one: sample "
                        "condition.triposplat's latent")
    if s.shape[0] > 1:
        raise NodeError(f"the latent holds {s.shape[0]} splats; decode.triposplat makes one SPLAT: sample a batch of 1")
    n = max(32768, min(1048576, int(num_gaussians)))
    n = round(n / PER_POINT) * PER_POINT
    param = next(parts.octree.parameters())
    tokens = s.reshape(1, s.shape[1], -1).transpose(1, 2).to(param.device, param.dtype)     # [1, 8192, 16]
    generator = torch.Generator().manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)
    points = place_points(parts.octree, tokens, max(1, n // PER_POINT), generator)
    with torch.inference_mode():
        raw = parts.gs(points[None].to(param.device), tokens)[0]
    return gaussians(parts.gs, points, raw)

