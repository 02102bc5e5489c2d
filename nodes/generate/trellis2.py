"""TRELLIS.2's sparse-structure stage as ComfyUI runs it (comfy/ldm/trellis2/vae.py, comfy_extras/nodes_trellis2.py):
the empty structure latent, and the structure decoder of the shape VAE file (trellis_2_shape_vae_*.safetensors, under
struct_dec.), which turns the sampled latent's first 8 channels at 16^3 into occupancy logits at 64^3. The cells
whose logit is above 0 are the shape's voxels; at 32^3 a cell is set where any of its 2^3 is (max pooling).

The decoder is a dense 3-D conv net: an input conv, residual blocks (channel layer norm, SiLU, 3^3 conv, twice) in
the middle and at each width, a conv to 8x the next width folded into 2x the side (3-D pixel shuffle) between widths,
and a norm, SiLU and conv out. Its widths and depths are read from the tensors."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError
from nodes.generate.latent import Latent
from nodes.generate.own_parts import OwnParts

STRUCT = "struct_dec."
CHANNELS, SIDE = 32, 16         # ComfyUI's EmptyTrellis2LatentStructure: the latent format's 32 channels, 16^3
DECODED = 8                     # the channels the structure decoder reads (the rest pad the latent format)
RESOLUTIONS = (32, 64)


class _ChannelNorm(nn.LayerNorm):
    """Layer norm over the channels of [B, C, D, H, W] (weights and bias, eps 1e-5), in float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.movedim(1, -1).float(), self.normalized_shape, self.weight.float(), self.bias.float(),
                         self.eps)
        return y.to(x.dtype).movedim(-1, 1)


class _ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm1, self.norm2 = _ChannelNorm(width), _ChannelNorm(width)
        self.conv1 = nn.Conv3d(width, width, 3, padding=1)
        self.conv2 = nn.Conv3d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class _Upsample(nn.Module):
    """A conv to 8x `width` channels, each group of 8 laid out as a 2 x 2 x 2 block of the doubled grid."""

    def __init__(self, width_in: int, width: int):
        super().__init__()
        self.conv = nn.Conv3d(width_in, width * 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        b, c8, d, hh, w = h.shape
        h = h.view(b, c8 // 8, 2, 2, 2, d, hh, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
        return h.reshape(b, c8 // 8, d * 2, hh * 2, w * 2)


class StructureDecoder(nn.Module):
    def __init__(self, latent_channels: int, widths, middle: int, per_width: int, out_channels: int):
        super().__init__()
        self.input_layer = nn.Conv3d(latent_channels, widths[0], 3, padding=1)
        self.middle_block = nn.Sequential(*[_ResBlock(widths[0]) for _ in range(middle)])
        blocks = []
        for i, width in enumerate(widths):
            blocks += [_ResBlock(width) for _ in range(per_width)]
            if i + 1 < len(widths):
                blocks.append(_Upsample(width, widths[i + 1]))
        self.blocks = nn.ModuleList(blocks)
        self.out_layer = nn.Sequential(_ChannelNorm(widths[-1]), nn.SiLU(),
                                       nn.Conv3d(widths[-1], out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.middle_block(self.input_layer(x))
        for block in self.blocks:
            h = block(h)
        return self.out_layer(h)


def _count(state: Dict[str, torch.Tensor], pattern: str) -> int:
    n = 0
    while pattern.format(n) in state:
        n += 1
    return n


def build_structure_decoder(state: Dict[str, torch.Tensor], name: str = "the shape VAE") -> StructureDecoder:
    """The structure decoder for a shape VAE file's struct_dec. tensors (prefix removed), widths and depths read
    from them: blocks.N holds a residual block (conv1) or an upsample (conv) between widths. The sizes are a
    stranger's file's: its blocks are counted (at most converters.MAX_BLOCKS) and the decoder they make counted on
    the meta device before it is built (a tensor of shape [10^7, 0], no byte in the file, asked the allocator for
    8.6 GB; 3,000 one-value tensors took 3 s to build as many blocks)."""
    from nodes.generate.converters import count, fitted
    from nodes.generate.weights import sizes_of
    with sizes_of(name, "TRELLIS.2's structure decoder"):
        count(state, "blocks.{}.")
        count(state, "middle_block.{}.")
        first = state["input_layer.weight"]
        widths, per_width, run = [int(first.shape[0])], 0, 0
        for j in itertools.count():
            if f"blocks.{j}.conv1.weight" in state:
                run += 1
            elif f"blocks.{j}.conv.weight" in state:
                widths.append(int(state[f"blocks.{j}.conv.weight"].shape[0]) // 8)
                per_width, run = run, 0
            else:
                break
        per_width = per_width or run
        out = state.get("out_layer.2.weight")
        sizes = (int(first.shape[1]), widths, _count(state, "middle_block.{}.norm1.weight"), per_width,
                 int(out.shape[0]) if out is not None else 1)
    model = fitted(lambda: StructureDecoder(*sizes), state, name, "the shape VAE's structure decoder")
    _check_grid(widths, name)
    return model


def _check_grid(widths, name: str) -> None:
    """NodeError unless the decoder doubles the 16^3 latent twice, to the 64^3 grid decode_structure pools from (as
    ComfyUI's widths 512, 128, 32 do). Each upsample of a stranger's file doubled the grid: five
    (a file of a few KB) asked the allocator for 8.6 GB at the first decode, seven for 550 GB; none left a 16^3 grid, which
    max pooling to 32^3 stopped on ('stride should not be zero')."""
    side = SIDE * 2 ** (len(widths) - 1)
    if side != SIDE * 4:
        raise NodeError(f"{name}: its structure decoder upsamples the latent {len(widths) - 1} times, to a grid of "
                        f"{side}^3; TRELLIS.2's doubles it twice, to {SIDE * 4}^3. The file is damaged or another "
                        "model's: get trellis_2_shape_vae_bf16.safetensors again")


class ShapeVae(OwnParts):
    """The parts of TRELLIS.2's shape VAE file that Kinograph runs: its structure decoder (its mesh decoder,
    shape_dec., is not read yet)."""

    def __init__(self, struct_dec: StructureDecoder):
        super().__init__(struct_dec=struct_dec)


def load_shape_vae(path: Path, device: str) -> ShapeVae:
    """The shape VAE at `path`, its structure decoder in float32 (it is small, and an occupancy logit near 0 decides
    a voxel, which half precision may tip)."""
    from nodes.generate.weights import dequantise, read_selected, strip_prefix
    state = dequantise(read_selected(path, lambda k: k.startswith(STRUCT)), torch.float32)   # not shape_dec's GB
    return ShapeVae(build_structure_decoder(strip_prefix(state, STRUCT), path.name)).to(device)


def empty_structure_latent(batch: int = 1) -> Latent:
    """ComfyUI's EmptyTrellis2LatentStructure: zeros [batch, 32, 16, 16, 16] (the grid's depth held as frames)."""
    return Latent(torch.zeros(batch, CHANNELS, SIDE, SIDE, SIDE), "trellis2", SIDE, 8.0, SIDE, SIDE)


def decode_structure(vae, latent: Latent, resolution: int):
    """The latent's shape as ComfyUI's VaeDecodeStructureTrellis2 makes it: occupancy (1 inside, 0 outside) on a
    resolution^3 grid spanning -1..1, what mesh.from_voxels reads."""
    from nodes.common.mesh import Voxel
    decoder = getattr(getattr(vae, "pipe", None), "struct_dec", None)
    if decoder is None:
        raise NodeError("decode.trellis2_structure needs TRELLIS.2's shape VAE (load.vae on "
                        "trellis_2_shape_vae_bf16.safetensors)")
    s = latent.samples
    if latent.family != "trellis2" or s.ndim != 5 or s.shape[1] < DECODED:
        raise NodeError(f"this is a {latent.family} latent of shape {list(s.shape)}, not a TRELLIS.2 structure "
                        "latent: make it with latent.empty_trellis2_structure")
    if s.shape[0] > 1:
        raise NodeError(f"the latent holds {s.shape[0]} shapes; decode.trellis2_structure makes one VOXEL: sample a "
                        "batch of 1 (latent.empty_trellis2_structure's batch)")
    if resolution not in RESOLUTIONS:
        raise NodeError(f"resolution {resolution} is not one the decoder makes: choose 32 or 64")
    param = next(decoder.parameters())
    with torch.inference_mode():
        occupied = decoder(s[:, :DECODED].to(param.device, param.dtype)) > 0
    side = occupied.shape[-1]
    if side != resolution:
        ratio = side // resolution
        occupied = F.max_pool3d(occupied.float(), ratio, ratio, 0) > 0.5
    return Voxel(occupied[0, 0].float().cpu().numpy())
