"""SeedVR2's video VAE (ByteDance's SeedVR2 restorer: SD3's autoencoder inflated to causal 3-D convolutions), as
ComfyUI loads it from vae/seedvr2_ema_vae_fp16.safetensors (comfy/ldm/seedvr/vae.py, VideoAutoencoderKLWrapper).

Interface (for the restorer's wiring):
    SeedVR2VAE(**config)             the network, in the file's own key names (encoder.*, decoder.*: ComfyUI loads
                                     the file into its module as it is); config_from_state(state) reads its sizes
    vae.encode(pixels)               [B, 3, T, H, W] in [-1, 1], T = 4n + 1, H and W multiples of 8
                                     -> latent [B, 16, (T - 1) // 4 + 1, H / 8, W / 8], times SCALE (0.9152): what
                                     ComfyUI's VAEEncode gives SeedVR2Conditioning (the posterior's mean, scaled)
    vae.decode(latent)               latent in that same scaled space [B, 16, t, h, w]
                                     -> pixels [B, 3, 4 (t - 1) + 1, 8 h, 8 w] in about [-1, 1] (not clamped)
                                     Both take their input on any device and give float32 on the CPU: a pass's
                                     frames go to the network's device as it needs them
    vae.chunk                        pixel frames per pass after the first frame (4, ComfyUI's slices: an encode
                                     takes a multiple of 4, a decode chunk / 4 latent frames, at least 1)
    vae.tile, vae.overlap            spatial tiles in pixels (None: whole frames); enable_tiling() sets ComfyUI
                                     template's 512 / 128 (VAEEncodeTiled / VAEDecodeTiled on utility_seedvr2_*)
    vae.time, vae.space              frames per latent frame after the first (4), pixels per latent pixel (8)

Time only passes through the causal convolutions: every group norm and the middle blocks' attention work on each
frame alone. So a clip goes through in chunks of frames (and the full-size levels a frame at a time, as ComfyUI's
encoder head and decoder tail go), each convolution keeping the frames its next window needs (its left context) from
the chunk before, and the result is the whole clip's: a first chunk's convolutions see its first frame repeated before
it (ComfyUI's extend_head), and its temporal upsamplers drop the second of the first frame's two outputs
(remove_head), which only happens once. Tiles are passes of their own, blended over their overlap by a raised-cosine
ramp as ComfyUI's tiled_vae blends them."""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError

SCALE = 0.9152            # the latent's scaling factor (configs_3b/main.yaml), shift 0
LATENT_CHANNELS = 16
SPACE, TIME = 8, 4        # the released model's compression; a file's own is read from its shapes
GROUPS = 32               # every group norm's groups
EPS = 1e-6
ENCODE_CHUNK = 4          # ComfyUI's slicing_sample_min_size: pixel frames per pass after the first (its
                          # activations at full size bound the memory: 128 channels of 4 frames)
TEMPLATE_TILE, TEMPLATE_OVERLAP = 512, 128    # pixels: VAEEncodeTiled / VAEDecodeTiled on utility_seedvr2_*


class _Pass:
    """One pass's state between its chunks: each convolution's left context, and whether this is the first chunk."""

    def __init__(self):
        self.tails: Dict[int, torch.Tensor] = {}
        self.first = True


class CausalConv3d(nn.Conv3d):
    """A convolution causal in time: its temporal padding p becomes 2p frames before the clip (the first frame
    repeated, or the frames kept from the chunk before), none after; spatial padding is zeros on both sides."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__(cin, cout, kernel, stride=stride, padding=padding)
        self.lead = 2 * self.padding[0]
        self.padding = (0, *self.padding[1:])

    def forward(self, x: torch.Tensor, state: _Pass) -> torch.Tensor:
        tail = state.tails.get(id(self))
        if tail is not None:
            x = torch.cat((tail.to(x), x), dim=2)
        elif self.lead:
            x = torch.cat((x[:, :, :1].expand(-1, -1, self.lead, -1, -1), x), dim=2)
        kt, st = self.kernel_size[0], self.stride[0]
        if x.shape[2] < kt:
            raise NodeError(f"SeedVR2 VAE: a chunk of {x.shape[2]} frames is too short for a {kt}-frame convolution")
        if kt > 1:
            # the frames from the next window's start on: a window of stride st begins at st * (outputs)
            state.tails[id(self)] = x[:, :, st * ((x.shape[2] - kt) // st + 1):].clone()
        return super().forward(x)


def by_frame(run: Callable, x: torch.Tensor) -> torch.Tensor:
    """run over x's frames one at a time (the same result: its convolutions keep their left context in the pass's
    state), so only a frame's activations are held at the sizes where they are largest."""
    if x.shape[2] == 1:
        return run(x)
    return torch.cat([run(x[:, :, i:i + 1]) for i in range(x.shape[2])], dim=2)


def frame_norm(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """A group norm over each frame of [B, C, T, H, W] alone."""
    b, c, t, h, w = x.shape
    y = norm(x.transpose(1, 2).reshape(b * t, c, h, w))
    return y.reshape(b, t, c, h, w).transpose(1, 2)


class ResnetBlock3D(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, cin, eps=EPS)
        self.conv1 = CausalConv3d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(GROUPS, cout, eps=EPS)
        self.conv2 = CausalConv3d(cout, cout, 3, padding=1)
        self.conv_shortcut = CausalConv3d(cin, cout, 1) if cin != cout else None

    def forward(self, x, state):
        h = self.conv1(F.silu(frame_norm(self.norm1, x)), state)
        h = self.conv2(F.silu(frame_norm(self.norm2, h)), state)
        return (x if self.conv_shortcut is None else self.conv_shortcut(x, state)) + h


class FrameAttention(nn.Module):
    """Single-head self-attention over each frame's pixels (the middle blocks'), residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(GROUPS, dim, eps=EPS)
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])

    def forward(self, x):
        b, c, t, h, w = x.shape
        out = torch.empty_like(x)
        for i in range(t):          # one frame's attention matrix at a time
            f = x[:, :, i]
            s = self.group_norm(f).flatten(2).transpose(1, 2)
            a = F.scaled_dot_product_attention(self.to_q(s)[:, None], self.to_k(s)[:, None], self.to_v(s)[:, None])
            out[:, :, i] = f + self.to_out[0](a[:, 0]).transpose(1, 2).reshape(b, c, h, w)
        return out


class MidBlock3D(nn.Module):
    def __init__(self, dim: int, attention: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock3D(dim, dim), ResnetBlock3D(dim, dim)])
        self.attentions = nn.ModuleList([FrameAttention(dim)]) if attention else None

    def forward(self, x, state):
        x = self.resnets[0](x, state)
        if self.attentions is not None:
            x = self.attentions[0](x)
        return self.resnets[1](x, state)


class Downsample3D(nn.Module):
    """Halves the size (zeros padded right and bottom, a 3x3 stride-2 convolution), and the frames where temporal
    (a causal 3-frame stride-2 convolution: 4n + 1 frames to 2n + 1)."""

    def __init__(self, dim: int, temporal: bool):
        super().__init__()
        self.conv = CausalConv3d(dim, dim, (3 if temporal else 1, 3, 3), stride=(2 if temporal else 1, 2, 2),
                                 padding=(1 if temporal else 0, 0, 0))

    def forward(self, x, state):
        return self.conv(F.pad(x, (0, 1, 0, 1)), state)


class Upsample3D(nn.Module):
    """Doubles the size, and the frames where temporal (the first frame's second copy dropped: 2n + 1 to 4n + 1),
    by a 1x1x1 convolution to 4 or 8 times the channels laid out as pixels and frames (MAGViT-v2's), then a causal
    3x3x3 convolution."""

    def __init__(self, dim: int, temporal: bool):
        super().__init__()
        self.ratio = 2 if temporal else 1
        self.upscale_conv = nn.Conv3d(dim, dim * 4 * self.ratio, 1)
        self.conv = CausalConv3d(dim, dim, 3, padding=1)

    def forward(self, x, state):
        b, _, t, h, w = x.shape
        r = self.ratio
        y = self.upscale_conv(x)
        c = y.shape[1] // (4 * r)
        # channels are ordered (row offset, column offset, frame offset, channel)
        y = y.view(b, 2, 2, r, c, t, h, w).permute(0, 4, 5, 3, 6, 1, 7, 2).reshape(b, c, t * r, h * 2, w * 2)
        if r > 1 and state.first:
            y = torch.cat((y[:, :, :1], y[:, :, 2:]), dim=2)
        return self.conv(y, state)


class Level(nn.Module):
    """One resolution of the encoder (resnets, then a downsampler) or decoder (resnets, then an upsampler)."""

    def __init__(self, cin: int, cout: int, layers: int, sampler: Optional[nn.Module], down: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock3D(cin if i == 0 else cout, cout) for i in range(layers)])
        self.samplers = "downsamplers" if down else "upsamplers"
        if sampler is not None:
            setattr(self, self.samplers, nn.ModuleList([sampler]))

    def forward(self, x, state):
        for r in self.resnets:
            x = r(x, state)
        samplers = getattr(self, self.samplers, None)
        return x if samplers is None else samplers[0](x, state)


class Encoder3D(nn.Module):
    def __init__(self, widths: Sequence[int], layers: int, temporal: Sequence[bool], latent: int, attention: bool):
        super().__init__()
        self.conv_in = CausalConv3d(3, widths[0], 3, padding=1)
        last = len(widths) - 1
        self.down_blocks = nn.ModuleList(
            Level(widths[max(i - 1, 0)], widths[i], layers, None if i == last else Downsample3D(widths[i], temporal[i]),
                  True) for i in range(len(widths)))
        self.mid_block = MidBlock3D(widths[-1], attention)
        self.conv_norm_out = nn.GroupNorm(GROUPS, widths[-1], eps=EPS)
        self.conv_out = CausalConv3d(widths[-1], 2 * latent, 3, padding=1)

        # the full-size levels before the first that halves the frames: run a frame at a time within a chunk
        self.head = next((i for i, t in enumerate(temporal) if t), len(temporal))

    def forward(self, x, state):
        def head(f):
            f = self.conv_in(f, state)
            for level in self.down_blocks[:self.head]:
                f = level(f, state)
            return f
        x = by_frame(head, x)
        for level in self.down_blocks[self.head:]:
            x = level(x, state)
        x = self.mid_block(x, state)
        return self.conv_out(F.silu(frame_norm(self.conv_norm_out, x)), state)


class Decoder3D(nn.Module):
    def __init__(self, widths: Sequence[int], layers: int, temporal: Sequence[bool], latent: int, attention: bool):
        super().__init__()
        rev = list(reversed(widths))
        self.conv_in = CausalConv3d(latent, rev[0], 3, padding=1)
        self.mid_block = MidBlock3D(rev[0], attention)
        last = len(rev) - 1
        self.up_blocks = nn.ModuleList(
            Level(rev[max(i - 1, 0)], rev[i], layers + 1, None if i == last else Upsample3D(rev[i], temporal[i]),
                  False) for i in range(len(rev)))
        self.conv_norm_out = nn.GroupNorm(GROUPS, widths[0], eps=EPS)
        self.conv_out = CausalConv3d(widths[0], 3, 3, padding=1)

        # the levels after the last that doubles the frames, at the largest sizes: run a frame at a time
        self.tail = 1 + max((i for i, t in enumerate(temporal) if t), default=-1)

    def forward(self, z, state):
        x = self.mid_block(self.conv_in(z, state), state)
        for level in self.up_blocks[:self.tail]:
            x = level(x, state)

        def tail(f):
            for level in self.up_blocks[self.tail:]:
                f = level(f, state)
            return self.conv_out(F.silu(frame_norm(self.conv_norm_out, f)), state)
        return by_frame(tail, x)


def config_from_state(state: Dict[str, torch.Tensor]) -> dict:
    """The network's sizes from a file's tensors: level widths and depth, latent channels, which levels change the
    frame count (a 3-frame downsampling kernel; an upsampler making 8 channels of each where 4 is spatial only)."""
    from nodes.generate.converters import count
    levels = count(state, "encoder.down_blocks.{}.")
    widths = [int(state[f"encoder.down_blocks.{i}.resnets.0.conv1.weight"].shape[0]) for i in range(levels)]
    down = [int(state[f"encoder.down_blocks.{i}.downsamplers.0.conv.weight"].shape[2]) == 3
            for i in range(levels - 1)]
    up = []
    for i in range(levels - 1):
        w = state[f"decoder.up_blocks.{i}.upsamplers.0.upscale_conv.weight"]
        up.append(int(w.shape[0]) == 8 * int(w.shape[1]))
    if any(w % GROUPS for w in widths):
        raise NodeError(f"SeedVR2 VAE: level widths {widths} do not divide into {GROUPS} norm groups")
    return dict(widths=widths, layers=count(state, "encoder.down_blocks.0.resnets.{}."), temporal_down=down,
                temporal_up=up, latent_channels=int(state["decoder.conv_in.weight"].shape[1]),
                attention="encoder.mid_block.attentions.0.to_q.weight" in state)


class SeedVR2VAE(nn.Module):
    """SeedVR2's causal video VAE. encode / decode take and give the scaled latent (see the module's docstring)."""

    def __init__(self, widths: Sequence[int] = (128, 256, 512, 512), layers: int = 2,
                 temporal_down: Sequence[bool] = (False, True, True), temporal_up: Sequence[bool] = (True, True, False),
                 latent_channels: int = LATENT_CHANNELS, attention: bool = True):
        super().__init__()
        self.encoder = Encoder3D(widths, layers, temporal_down, latent_channels, attention)
        self.decoder = Decoder3D(widths, layers, temporal_up, latent_channels, attention)
        self.space = 2 ** (len(widths) - 1)
        self.time = 2 ** sum(temporal_down)
        self.config = SimpleNamespace(latent_channels=latent_channels, scaling_factor=SCALE, out_channels=3,
                                      widths=list(widths))
        self.chunk = ENCODE_CHUNK
        self.tile: Optional[int] = None
        self.overlap = TEMPLATE_OVERLAP

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    @property
    def device(self):
        return next(self.parameters()).device

    def enable_tiling(self, tile: int = TEMPLATE_TILE, overlap: int = TEMPLATE_OVERLAP):
        """Tiles of `tile` pixels overlapping by `overlap`, both held to whole latent cells."""
        self.tile = max(self.space, tile // self.space * self.space)
        self.overlap = max(0, overlap // self.space * self.space)

    def disable_tiling(self):
        self.tile = None

    # -- the two directions --------------------------------------------------------------
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.ndim != 5 or pixels.shape[1] != 3:
            raise NodeError(f"SeedVR2 VAE encodes pixels [B, 3, T, H, W]; got {list(pixels.shape)}")
        t, h, w = pixels.shape[2:]
        if (t - 1) % self.time or h % self.space or w % self.space:
            raise NodeError(f"SeedVR2 VAE encodes {self.time}n+1 frames of sides divisible by {self.space}; got {t} "
                            f"frames of {w}x{h}: pad the clip with upscale.seedvr2_pad")
        return self._tiled(pixels, self._encode_pass, 1 / self.space) * SCALE

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        c = self.config.latent_channels
        if latent.ndim != 5 or latent.shape[1] != c:
            raise NodeError(f"SeedVR2 VAE decodes latents [B, {c}, t, h, w]; got {list(latent.shape)}")
        return self._tiled(latent.float() / SCALE, self._decode_pass, self.space)

    def _encode_pass(self, x: torch.Tensor) -> torch.Tensor:
        """Whole frames' latent means, `chunk` frames a pass after the first frame (with the first chunk)."""
        step = max(self.time, self.chunk // self.time * self.time)
        return self._chunked(x, step, (x.shape[2] - 1) // self.time + 1,
                             lambda piece, state: self.encoder(piece, state)[:, :self.config.latent_channels])

    def _decode_pass(self, z: torch.Tensor) -> torch.Tensor:
        return self._chunked(z, max(1, self.chunk // self.time), self.time * (z.shape[2] - 1) + 1, self.decoder)

    def _chunked(self, x: torch.Tensor, step: int, frames: int, run: Callable) -> torch.Tensor:
        """run over x's frames in passes of `step` after the first frame (which joins the first pass), one pass's
        frames on the device at a time; the `frames` of the result gather in float32 in host memory (a decoded clip
        upscaled to 4K would not fit beside the network's activations)."""
        state, out, at = _Pass(), None, 0
        for a in range(1, max(x.shape[2], 2), step):
            piece = x[:, :, :a + step] if a == 1 else x[:, :, a:a + step]
            y = run(piece.to(self.device, self.dtype), state).float().cpu()
            state.first = False
            if out is None:
                out = torch.empty((*y.shape[:2], frames, *y.shape[3:]))
            out[:, :, at:at + y.shape[2]] = y
            at += y.shape[2]
        return out

    def _tiled(self, x: torch.Tensor, run: Callable, scale: float) -> torch.Tensor:
        """run(x) over spatial tiles of `tile` pixels overlapping by `overlap`, blended (ComfyUI's tiled_vae plan)."""
        h, w = x.shape[-2:]
        unit = 1 if scale < 1 else self.space           # tile sizes are pixels: latent cells on a decode
        tile = None if self.tile is None else max(1, self.tile // unit)
        if tile is None or (h <= tile and w <= tile):
            return run(x)
        ov = min(self.overlap // unit, tile - 1)
        blend = ov // self.space if scale < 1 else ov * self.space
        spans_h, spans_w = _spans(h, tile, ov), _spans(w, tile, ov)
        out = count = None
        for y0, y1 in spans_h:
            for x0, x1 in spans_w:
                part = run(x[..., y0:y1, x0:x1])
                if out is None:
                    out = torch.zeros((*part.shape[:3], round(h * scale), round(w * scale)))
                    count = torch.zeros((round(h * scale), round(w * scale)))
                wy = _ramp(part.shape[3], blend, y0 > 0, y1 < h)
                wx = _ramp(part.shape[4], blend, x0 > 0, x1 < w)
                weight = wy[:, None] * wx[None, :]
                ys, xs = int(y0 * scale), int(x0 * scale)
                out[..., ys:ys + part.shape[3], xs:xs + part.shape[4]] += part * weight
                count[ys:ys + part.shape[3], xs:xs + part.shape[4]] += weight
        return out / count.clamp(min=1e-6)


def _spans(n: int, tile: int, overlap: int) -> List[Tuple[int, int]]:
    """Tiles' [start, end) along a side: every tile - overlap, a last sliver no wider than the overlap left out."""
    out = []
    for a in range(0, n, max(1, tile - overlap)):
        b = min(a + tile, n)
        if a > 0 and b - a <= overlap:
            continue
        out.append((a, b))
    return out


def _ramp(n: int, blend: int, rise: bool, fall: bool) -> torch.Tensor:
    """A tile's weights along one side: a raised cosine over `blend` cells where it overlaps a neighbour."""
    weight = torch.ones(n)
    blend = max(0, min(blend, n // 2))
    if blend:
        r = 0.5 - 0.5 * torch.cos(torch.linspace(0, 1, blend) * math.pi)
        if rise:
            weight[:blend] = r
        if fall:
            weight[-blend:] = 1.0 - r
    return weight
