"""SeedVR2's video VAE as ComfyUI runs it (comfy/ldm/seedvr/vae.py at Comfy-Org/ComfyUI f60bf095, VideoAutoencoderKL
and VideoAutoencoderKLWrapper), written out for the tests with nothing of nodes/generate/seedvr2_vae.py: the same
classes, key names and slicing (MemoryState and its per-convolution memory: INITIALIZING on the first slice, ACTIVE
after, DISABLED when the clip is too short to slice), and tiled_vae's spatial tiles. Left out as they change no value:
the CUDA kitchen paths (channels_last, fused norms), the int8-packed host caches (a cache here is a dict), the encoder
head's and decoder tail's frame-at-a-time passes (the same causal maths), group-norm chunking by groups. Widths are a
parameter (ComfyUI fixes BYTEDANCE_BLOCK_OUT_CHANNELS = (128, 256, 512, 512)) so that a tiny file can be made; the
group norms keep 32 groups. build_seedvr2_vae writes such a file in the published layout (its tensors are this
module's state dict, as ComfyUI loads vae/seedvr2_ema_vae_fp16.safetensors into its module unconverted)."""
from __future__ import annotations

import math
from enum import Enum
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

SCALE, SHIFT = 0.9152, 0.0
TINY_WIDTHS = (32, 64, 64, 64)         # the released widths step up where these do (conv_shortcut at the same levels)
FILE = "seedvr2_ema_vae_tiny.safetensors"


class MemoryState(Enum):
    DISABLED = 0
    INITIALIZING = 1
    ACTIVE = 2


class InflatedCausalConv3d(nn.Conv3d):
    def __init__(self, *args, inflation_mode="pad", **kwargs):
        super().__init__(*args, **kwargs)
        self.temporal_padding = self.padding[0]
        self.padding = (0, *self.padding[1:])

    def forward(self, input, memory_state=MemoryState.DISABLED, memory_cache=None):
        # basic_forward
        if memory_cache is None:
            memory_cache = {}
        if memory_state != MemoryState.ACTIVE:
            memory_cache.pop(self, None)
        mem_size = self.stride[0] - self.kernel_size[0]
        memory = memory_cache.get(self)
        if memory is not None and memory_state == MemoryState.ACTIVE:
            head = memory.to(input)
        elif self.temporal_padding:
            head = torch.tile(input[:, :, :1], [1, 1, self.temporal_padding * 2, 1, 1])
        else:
            head = None
        input = input if head is None else torch.cat((head, input), dim=2)
        next_memory = input[:, :, mem_size:].detach() if (mem_size != 0 and memory_state != MemoryState.DISABLED) \
            else None
        if memory_state != MemoryState.DISABLED:
            if next_memory is None:
                memory_cache.pop(self, None)
            else:
                memory_cache[self] = next_memory
        return super().forward(input)


def causal_norm_wrapper(norm_layer, x, silu=False):
    b, c, t, h, w = x.shape
    x = x.transpose(1, 2).reshape(b * t, c, h, w)
    x = norm_layer(x)
    x = x.reshape((b, t, x.size(1), x.size(2), x.size(3))).transpose(1, 2)
    return F.silu(x) if silu else x


def remove_head(tensor, times=1):
    if times == 0:
        return tensor
    return torch.cat(tensors=(tensor[:, :, :1], tensor[:, :, times + 1:]), dim=2)


class Upsample3D(nn.Module):
    def __init__(self, channels, out_channels=None, inflation_mode="tail", temporal_up=False, spatial_up=True):
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.conv = InflatedCausalConv3d(self.channels, self.out_channels, 3, padding=1, inflation_mode=inflation_mode)
        self.temporal_up = temporal_up
        self.temporal_ratio = 2 if temporal_up else 1
        self.spatial_ratio = 2 if spatial_up else 1
        upscale_ratio = (self.spatial_ratio ** 2) * self.temporal_ratio
        self.upscale_conv = nn.Conv3d(self.channels, self.channels * upscale_ratio, kernel_size=1, padding=0)

    def forward(self, hidden_states, memory_state=None, memory_cache=None):
        hidden_states = self.upscale_conv(hidden_states)
        b, channels, f, h, w = hidden_states.shape
        c = channels // (self.spatial_ratio * self.spatial_ratio * self.temporal_ratio)
        hidden_states = hidden_states.view(b, self.spatial_ratio, self.spatial_ratio, self.temporal_ratio, c, f, h, w)
        hidden_states = hidden_states.permute(0, 4, 5, 3, 6, 1, 7, 2).reshape(
            b, c, f * self.temporal_ratio, h * self.spatial_ratio, w * self.spatial_ratio)
        if self.temporal_up and memory_state != MemoryState.ACTIVE:
            hidden_states = remove_head(hidden_states)
        return self.conv(hidden_states, memory_state=memory_state, memory_cache=memory_cache)


class Downsample3D(nn.Module):
    def __init__(self, channels, out_channels=None, inflation_mode="tail", spatial_down=False, temporal_down=False):
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.spatial_down = spatial_down
        self.temporal_ratio = 2 if temporal_down else 1
        self.spatial_ratio = 2 if spatial_down else 1
        self.temporal_kernel = 3 if temporal_down else 1
        self.spatial_kernel = 3 if spatial_down else 1
        self.conv = InflatedCausalConv3d(
            self.channels, self.out_channels,
            kernel_size=(self.temporal_kernel, self.spatial_kernel, self.spatial_kernel),
            stride=(self.temporal_ratio, self.spatial_ratio, self.spatial_ratio),
            padding=(1 if temporal_down else 0, 0, 0), inflation_mode=inflation_mode)

    def forward(self, hidden_states, memory_state=None, memory_cache=None):
        if self.spatial_down:
            hidden_states = F.pad(hidden_states, (0, 1, 0, 1), mode="constant", value=0)
        return self.conv(hidden_states, memory_state=memory_state, memory_cache=memory_cache)


class ResnetBlock3D(nn.Module):
    def __init__(self, in_channels, out_channels=None, temb_channels=None, groups=32, eps=1e-6,
                 output_scale_factor=1.0, inflation_mode="tail", time_receptive_field="full"):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = in_channels if out_channels is None else out_channels
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(num_groups=groups, num_channels=in_channels, eps=eps, affine=True)
        self.norm2 = nn.GroupNorm(num_groups=groups, num_channels=self.out_channels, eps=eps, affine=True)
        self.conv1 = InflatedCausalConv3d(
            self.in_channels, self.out_channels,
            kernel_size=(1, 3, 3) if time_receptive_field == "half" else (3, 3, 3), stride=1,
            padding=(0, 1, 1) if time_receptive_field == "half" else (1, 1, 1), inflation_mode=inflation_mode)
        self.conv2 = InflatedCausalConv3d(self.out_channels, self.out_channels, kernel_size=3, stride=1, padding=1,
                                          inflation_mode=inflation_mode)
        self.conv_shortcut = None
        if self.in_channels != self.out_channels:
            self.conv_shortcut = InflatedCausalConv3d(self.in_channels, self.out_channels, kernel_size=1, stride=1,
                                                      padding=0, bias=True, inflation_mode=inflation_mode)

    def forward(self, input_tensor, temb, memory_state=None, memory_cache=None):
        hidden_states = causal_norm_wrapper(self.norm1, input_tensor, silu=True)
        hidden_states = self.conv1(hidden_states, memory_state=memory_state, memory_cache=memory_cache)
        if self.conv_shortcut is not None:
            input_tensor = self.conv_shortcut(input_tensor, memory_state=memory_state, memory_cache=memory_cache)
        hidden_states = causal_norm_wrapper(self.norm2, hidden_states, silu=True)
        hidden_states = self.conv2(hidden_states, memory_state=memory_state, memory_cache=memory_cache)
        return (input_tensor + hidden_states) / self.output_scale_factor


class Attention(nn.Module):
    """diffusers' Attention as ComfyUI keeps it for the middle blocks: group norm, q k v, softmax(q k^T / sqrt(d)) v,
    out, residual."""

    def __init__(self, query_dim, heads=8, dim_head=64, bias=False, norm_num_groups=None, out_bias=True, eps=1e-5,
                 rescale_output_factor=1.0, residual_connection=False):
        super().__init__()
        self.inner_dim = dim_head * heads
        self.rescale_output_factor = rescale_output_factor
        self.residual_connection = residual_connection
        self.heads = heads
        self.group_norm = nn.GroupNorm(num_channels=query_dim, num_groups=norm_num_groups, eps=eps, affine=True)
        self.to_q = nn.Linear(query_dim, self.inner_dim, bias=bias)
        self.to_k = nn.Linear(query_dim, self.inner_dim, bias=bias)
        self.to_v = nn.Linear(query_dim, self.inner_dim, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(self.inner_dim, query_dim, bias=out_bias), nn.Identity()])

    def forward(self, hidden_states, temb=None):
        residual = hidden_states
        batch_size, channel, height, width = hidden_states.shape
        hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        hidden_states = self.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query, key, value = self.to_q(hidden_states), self.to_k(hidden_states), self.to_v(hidden_states)
        head_dim = key.shape[-1] // self.heads
        query, key, value = (t.view(batch_size, -1, self.heads, head_dim).transpose(1, 2) for t in (query, key, value))
        weights = torch.softmax(query @ key.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)
        hidden_states = (weights @ value).transpose(1, 2).reshape(batch_size, -1, self.heads * head_dim)
        hidden_states = self.to_out[1](self.to_out[0](hidden_states))
        hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if self.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / self.rescale_output_factor


class _ResnetsThenSampler(nn.Module):
    """DownEncoderBlock3D's and UpDecoderBlock3D's shared forward: the resnets, then the block's down- or upsampler."""
    samplers = ""

    def forward(self, hidden_states, temb=None, memory_state=None, memory_cache=None):
        for resnet in self.resnets:
            hidden_states = resnet(hidden_states, temb=None, memory_state=memory_state, memory_cache=memory_cache)
        for sampler in getattr(self, self.samplers) or ():
            hidden_states = sampler(hidden_states, memory_state=memory_state, memory_cache=memory_cache)
        return hidden_states


def _resnets(in_channels, out_channels, num_layers, **kw):
    return nn.ModuleList([ResnetBlock3D(in_channels if i == 0 else out_channels, out_channels, **kw)
                          for i in range(num_layers)])


class DownEncoderBlock3D(_ResnetsThenSampler):
    samplers = "downsamplers"

    def __init__(self, in_channels, out_channels, num_layers=1, add_downsample=True, temporal_down=True,
                 spatial_down=True, **kw):
        super().__init__()
        self.resnets = _resnets(in_channels, out_channels, num_layers, **kw)
        self.downsamplers = nn.ModuleList([Downsample3D(out_channels, out_channels, temporal_down=temporal_down,
                                                        spatial_down=spatial_down)]) if add_downsample else None


class UpDecoderBlock3D(_ResnetsThenSampler):
    samplers = "upsamplers"

    def __init__(self, in_channels, out_channels, num_layers=1, add_upsample=True, temporal_up=True,
                 spatial_up=True, **kw):
        super().__init__()
        self.resnets = _resnets(in_channels, out_channels, num_layers, **kw)
        self.upsamplers = nn.ModuleList([Upsample3D(out_channels, out_channels, temporal_up=temporal_up,
                                                    spatial_up=spatial_up)]) if add_upsample else None


class UNetMidBlock3D(nn.Module):
    def __init__(self, in_channels, groups=32, eps=1e-6, **kw):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock3D(in_channels, in_channels, groups=groups, eps=eps, **kw)
                                      for _ in range(2)])
        self.attentions = nn.ModuleList([Attention(in_channels, heads=1, dim_head=in_channels, eps=eps,
                                                   norm_num_groups=groups, residual_connection=True, bias=True)])

    def forward(self, hidden_states, temb=None, memory_state=None, memory_cache=None):
        video_length = hidden_states.size(2)
        hidden_states = self.resnets[0](hidden_states, temb, memory_state=memory_state, memory_cache=memory_cache)
        for attn, resnet in zip(self.attentions, self.resnets[1:]):
            b, c, f, h, w = hidden_states.shape
            hidden_states = hidden_states.transpose(1, 2).reshape(b * f, c, h, w)
            hidden_states = attn(hidden_states, temb=temb)
            hidden_states = hidden_states.reshape(b, video_length, c, h, w).transpose(1, 2)
            hidden_states = resnet(hidden_states, temb, memory_state=memory_state, memory_cache=memory_cache)
        return hidden_states


class Encoder3D(nn.Module):
    def __init__(self, block_out_channels, out_channels=16, layers_per_block=2, temporal_down_num=2):
        super().__init__()
        self.conv_in = InflatedCausalConv3d(3, block_out_channels[0], kernel_size=3, stride=1, padding=1)
        self.down_blocks = nn.ModuleList([])
        output_channel = block_out_channels[0]
        for i in range(len(block_out_channels)):
            input_channel = output_channel
            output_channel = block_out_channels[i]
            is_final_block = i == len(block_out_channels) - 1
            is_temporal_down_block = i >= len(block_out_channels) - temporal_down_num - 1
            self.down_blocks.append(DownEncoderBlock3D(input_channel, output_channel, num_layers=layers_per_block,
                                                       add_downsample=not is_final_block,
                                                       temporal_down=is_temporal_down_block, spatial_down=True))
        self.mid_block = UNetMidBlock3D(block_out_channels[-1])
        self.conv_norm_out = nn.GroupNorm(num_channels=block_out_channels[-1], num_groups=32, eps=1e-6)
        self.conv_out = InflatedCausalConv3d(block_out_channels[-1], 2 * out_channels, 3, padding=1)

    def forward(self, sample, memory_state=None, memory_cache=None):
        sample = self.conv_in(sample, memory_state=memory_state, memory_cache=memory_cache)
        for down_block in self.down_blocks:
            sample = down_block(sample, memory_state=memory_state, memory_cache=memory_cache)
        sample = self.mid_block(sample, memory_state=memory_state, memory_cache=memory_cache)
        sample = causal_norm_wrapper(self.conv_norm_out, sample, silu=True)
        return self.conv_out(sample, memory_state=memory_state, memory_cache=memory_cache)


class Decoder3D(nn.Module):
    def __init__(self, block_out_channels, in_channels=16, layers_per_block=2, temporal_up_num=2):
        super().__init__()
        self.temporal_up_num = temporal_up_num
        self.conv_in = InflatedCausalConv3d(in_channels, block_out_channels[-1], kernel_size=3, stride=1, padding=1)
        self.mid_block = UNetMidBlock3D(block_out_channels[-1])
        self.up_blocks = nn.ModuleList([])
        reversed_block_out_channels = list(reversed(block_out_channels))
        output_channel = reversed_block_out_channels[0]
        for i in range(len(block_out_channels)):
            prev_output_channel = output_channel
            output_channel = reversed_block_out_channels[i]
            is_final_block = i == len(block_out_channels) - 1
            self.up_blocks.append(UpDecoderBlock3D(prev_output_channel, output_channel,
                                                   num_layers=layers_per_block + 1, add_upsample=not is_final_block,
                                                   temporal_up=i < temporal_up_num))
        self.conv_norm_out = nn.GroupNorm(num_channels=block_out_channels[0], num_groups=32, eps=1e-6)
        self.conv_out = InflatedCausalConv3d(block_out_channels[0], 3, 3, padding=1)

    def forward(self, sample, latent_embeds=None, memory_state=None, memory_cache=None):
        sample = self.conv_in(sample, memory_state=memory_state, memory_cache=memory_cache)
        sample = self.mid_block(sample, latent_embeds, memory_state=memory_state, memory_cache=memory_cache)
        for up_block in self.up_blocks:
            sample = up_block(sample, latent_embeds, memory_state=memory_state, memory_cache=memory_cache)
        sample = causal_norm_wrapper(self.conv_norm_out, sample, silu=True)
        return self.conv_out(sample, memory_state=memory_state, memory_cache=memory_cache)


class VideoAutoencoderKLWrapper(nn.Module):
    """VideoAutoencoderKL's slicing encode / decode and the wrapper's scaling, as ComfyUI's VAE node calls them:
    encode(pixels in [-1, 1]) -> comfy_format_encoded (the mean times 0.9152); decode(that) -> pixels."""

    def __init__(self, block_out_channels=(128, 256, 512, 512), latent_channels=16, slicing_sample_min_size=4):
        super().__init__()
        self.slicing_sample_min_size = slicing_sample_min_size
        self.slicing_latent_min_size = slicing_sample_min_size // 4
        self.temporal_downsample_factor, self.spatial_downsample_factor = 4, 8
        self.encoder = Encoder3D(block_out_channels, latent_channels)
        self.decoder = Decoder3D(block_out_channels, latent_channels)

    def _encode(self, x, memory_state=MemoryState.DISABLED, memory_cache=None):
        return self.encoder(x, memory_state=memory_state, memory_cache=memory_cache)

    def _decode(self, z, memory_state=MemoryState.DISABLED, memory_cache=None):
        return self.decoder(z, memory_state=memory_state, memory_cache=memory_cache)

    def slicing_encode(self, x):
        if (x.shape[2] - 1) > self.slicing_sample_min_size:
            memory_cache = {}
            split_size = max(self.slicing_sample_min_size, self.temporal_downsample_factor)
            x_slices = list(x[:, :, 1:].split(split_size=split_size, dim=2))
            if len(x_slices) > 1 and x_slices[-1].shape[2] < self.temporal_downsample_factor:
                x_slices[-2] = torch.cat((x_slices[-2], x_slices[-1]), dim=2)
                x_slices.pop()
            encoded_slices = [self._encode(torch.cat((x[:, :, :1], x_slices[0]), dim=2),
                                           memory_state=MemoryState.INITIALIZING, memory_cache=memory_cache)]
            for x_idx in range(1, len(x_slices)):
                encoded_slices.append(self._encode(x_slices[x_idx], memory_state=MemoryState.ACTIVE,
                                                   memory_cache=memory_cache))
            return torch.cat(encoded_slices, dim=2)
        return self._encode(x)

    def slicing_decode(self, z):
        if (z.shape[2] - 1) > self.slicing_latent_min_size:
            memory_cache = {}
            z_slices = z[:, :, 1:].split(split_size=self.slicing_latent_min_size, dim=2)
            decoded = [self._decode(torch.cat((z[:, :, :1], z_slices[0]), dim=2),
                                    memory_state=MemoryState.INITIALIZING, memory_cache=memory_cache)]
            for z_idx in range(1, len(z_slices)):
                decoded.append(self._decode(z_slices[z_idx], memory_state=MemoryState.ACTIVE,
                                            memory_cache=memory_cache))
            return torch.cat(decoded, dim=2)
        return self._decode(z)

    def encode_raw(self, x):
        """VideoAutoencoderKL.encode: DiagonalGaussianDistribution(h).mode(), the mean."""
        return torch.chunk(self.slicing_encode(x), 2, dim=1)[0]

    def decode_(self, latent):
        return self.slicing_decode(latent)

    def encode(self, x):
        return self.encode_raw(x) * SCALE                      # comfy_format_encoded

    def decode(self, z, tiling=None):
        latent = z / SCALE + SHIFT
        x = self.decode_(latent) if tiling is None else tiled_vae(latent, self, **tiling, encode=False)
        h, w = x.shape[-2:]
        return x[..., :h - h % 2, :w - w % 2]

    def encode_tiled(self, x, tile, overlap):
        return tiled_vae(x, self, tile_size=(tile, tile), tile_overlap=(overlap, overlap), encode=True) * SCALE


def tiled_vae(x, vae_model, tile_size=(512, 512), tile_overlap=(64, 64), encode=True):
    """comfy/ldm/seedvr/vae.py tiled_vae without temporal tiling (ComfyUI's wrapper passes temporal_size None)."""
    _, _, d, h, w = x.shape
    sf_s, sf_t = vae_model.spatial_downsample_factor, vae_model.temporal_downsample_factor
    if encode:
        ti_h, ti_w = tile_size
        ov_h, ov_w = min(max(0, int(tile_overlap[0])), ti_h - 1), min(max(0, int(tile_overlap[1])), ti_w - 1)
        blend_ov_h, blend_ov_w = max(0, ov_h // sf_s), max(0, ov_w // sf_s)
        target_d, target_h, target_w = (d + sf_t - 1) // sf_t, (h + sf_s - 1) // sf_s, (w + sf_s - 1) // sf_s
    else:
        ti_h, ti_w = max(1, tile_size[0] // sf_s), max(1, tile_size[1] // sf_s)
        ov_h = min(max(0, int(tile_overlap[0] // sf_s)), ti_h - 1)
        ov_w = min(max(0, int(tile_overlap[1] // sf_s)), ti_w - 1)
        blend_ov_h, blend_ov_w = ov_h * sf_s, ov_w * sf_s
        target_d, target_h, target_w = max(1, d * sf_t - (sf_t - 1)), h * sf_s, w * sf_s
    stride_h, stride_w = max(1, ti_h - ov_h), max(1, ti_w - ov_w)

    def get_ramp(steps):
        t = torch.linspace(0, 1, steps=steps, dtype=torch.float32)
        return 0.5 - 0.5 * torch.cos(t * torch.pi)

    tile_ranges = []
    for y_idx in range(0, h, stride_h):
        y_end = min(y_idx + ti_h, h)
        if y_idx > 0 and (y_end - y_idx) <= ov_h:
            continue
        for x_idx in range(0, w, stride_w):
            x_end = min(x_idx + ti_w, w)
            if x_idx > 0 and (x_end - x_idx) <= ov_w:
                continue
            tile_ranges.append((y_idx, y_end, x_idx, x_end))
    result = count = None
    for y_idx, y_end, x_idx, x_end in tile_ranges:
        tile_x = x[:, :, :, y_idx:y_end, x_idx:x_end].contiguous()
        tile_out = vae_model.encode_raw(tile_x) if encode else vae_model.decode_(tile_x)
        if h <= ti_h and w <= ti_w:
            return tile_out[:, :, :target_d, :target_h, :target_w]
        if result is None:
            result = torch.zeros((tile_out.shape[0], tile_out.shape[1], target_d, target_h, target_w))
            count = torch.zeros((1, 1, 1, target_h, target_w))
        if encode:
            ys, ye = y_idx // sf_s, (y_idx // sf_s) + tile_out.shape[3]
            xs, xe = x_idx // sf_s, (x_idx // sf_s) + tile_out.shape[4]
        else:
            ys, ye = y_idx * sf_s, (y_idx * sf_s) + tile_out.shape[3]
            xs, xe = x_idx * sf_s, (x_idx * sf_s) + tile_out.shape[4]
        cur_ov_h = max(0, min(blend_ov_h, tile_out.shape[3] // 2))
        cur_ov_w = max(0, min(blend_ov_w, tile_out.shape[4] // 2))
        w_h, w_w = torch.ones((tile_out.shape[3],)), torch.ones((tile_out.shape[4],))
        if cur_ov_h > 0:
            r = get_ramp(cur_ov_h)
            if y_idx > 0:
                w_h[:cur_ov_h] = r
            if y_end < h:
                w_h[-cur_ov_h:] = 1.0 - r
        if cur_ov_w > 0:
            r = get_ramp(cur_ov_w)
            if x_idx > 0:
                w_w[:cur_ov_w] = r
            if x_end < w:
                w_w[-cur_ov_w:] = 1.0 - r
        final_weight = w_h.view(1, 1, 1, -1, 1) * w_w.view(1, 1, 1, 1, -1)
        valid_d = min(tile_out.shape[2], result.shape[2])
        tile_out = tile_out[:, :, :valid_d] * final_weight
        result[:, :, :valid_d, ys:ye, xs:xe] += tile_out
        count[:, :, :, ys:ye, xs:xe] += final_weight
    return result / count.clamp(min=1e-6)


def reference(seed: int = 0, widths=TINY_WIDTHS) -> VideoAutoencoderKLWrapper:
    """The tiny network with seeded weights (norms' scales and shifts too, so they count), rounded to fp16 as the
    published file is stored."""
    torch.manual_seed(seed)
    model = VideoAutoencoderKLWrapper(widths)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.ndim == 1:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif p.ndim == 1:
                p.copy_(0.05 * torch.randn_like(p))
            p.copy_(p.half().float())
    return model.eval()


def build_seedvr2_vae(root: Path) -> Path:
    """models/vae/FILE under root: the tiny network's state dict in fp16, the published file's layout."""
    from safetensors.torch import save_file
    folder = root / "models" / "vae"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in reference().state_dict().items()}, str(folder / FILE))
    return root
