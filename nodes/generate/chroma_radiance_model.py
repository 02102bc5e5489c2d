"""Chroma Radiance's denoiser, in pixels: Chroma's transformer (diffusers' ChromaTransformer2DModel, the same blocks
modulated by one small network) reads 16x16 pixel patches instead of latent ones, and in place of its last layer a small
per-patch network (ComfyUI's "NeRF" head, comfy/ldm/chroma_radiance) turns each patch's own noisy pixels into the
prediction: the patch's transformer state generates the weights of a few gated MLPs that each pixel, with DCT-like
features of its place in the patch, goes through. The x0 release predicts the clean picture, turned into the velocity
the sampler steps on, (x - x0) / sigma, as ComfyUI does.

The head's tensors keep ComfyUI's released names (nerf_*); the transformer's are diffusers' (converters/chroma.py)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

NERF_TILE = 512      # patches whose pixels go through the head at once (ComfyUI's default nerf_tile_size)


class Unmodulated(nn.Module):
    """Stands in for the transformer's final norm: the head reads the blocks' states as they come out."""

    def forward(self, x, temb):
        return x


class RMSNorm(nn.Module):
    """ComfyUI's RMSNorm (its weight is named scale), eps 1e-6."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.rms_norm(x, (x.shape[-1],), self.scale.to(x.dtype), 1e-6)


class PixelEmbedder(nn.Module):
    """A patch's pixels [N, P*P, C] and the cosine features of their place in it -> the head's width; in float32
    at least, whatever the model's type, as ComfyUI runs it (nerf_embedder_dtype)."""

    def __init__(self, in_channels: int, width: int, max_freqs: int):
        super().__init__()
        self.max_freqs = max_freqs
        self.embedder = nn.Sequential(nn.Linear(in_channels + max_freqs ** 2, width))

    def positions(self, side: int, device) -> torch.Tensor:
        """[1, side^2, F^2]: cos(pi fx x) cos(pi fy y) / (1 + fx fy) at each pixel's place (0..1 across the patch)."""
        pos = torch.linspace(0, 1, side, device=device, dtype=torch.float32)
        pos_y, pos_x = torch.meshgrid(pos, pos, indexing="ij")
        freqs = torch.arange(self.max_freqs, device=device, dtype=torch.float32)
        fx, fy = freqs[None, :, None], freqs[None, None, :]
        px, py = pos_x.reshape(-1, 1, 1), pos_y.reshape(-1, 1, 1)
        dct = torch.cos(px * fx * math.pi) * torch.cos(py * fy * math.pi) / (1 + fx * fy)
        return dct.reshape(1, -1, self.max_freqs ** 2)

    def forward(self, pixels):
        n, p2, _ = pixels.shape
        work = torch.promote_types(pixels.dtype, torch.float32)
        pos = self.positions(math.isqrt(p2), pixels.device).to(work).expand(n, -1, -1)
        lin = self.embedder[0]
        return F.linear(torch.cat([pixels.to(work), pos], -1), lin.weight.to(work), lin.bias.to(work)).to(pixels.dtype)


class GatedBlock(nn.Module):
    """One step of the head: the patch's state generates a gated MLP (gate, value, out; each matrix normalised along
    its input side) that the patch's pixels go through, with a residual."""

    def __init__(self, state_width: int, width: int, ratio: int):
        super().__init__()
        self.ratio = ratio
        self.param_generator = nn.Linear(state_width, 3 * width * width * ratio)
        self.norm = RMSNorm(width)

    def forward(self, x, s):
        n, _, w = x.shape
        gate, value, out = self.param_generator(s).chunk(3, dim=-1)
        gate = F.normalize(gate.view(n, w, w * self.ratio), dim=-2)
        value = F.normalize(value.view(n, w, w * self.ratio), dim=-2)
        out = F.normalize(out.view(n, w * self.ratio, w), dim=-2)
        h = self.norm(x)
        return torch.bmm(F.silu(torch.bmm(h, gate)) * torch.bmm(h, value), out) + x


class LinearHead(nn.Module):
    def __init__(self, width: int, out_channels: int):
        super().__init__()
        self.norm = RMSNorm(width)
        self.linear = nn.Linear(width, out_channels)

    def forward(self, x):                     # [B, width, H, W] -> [B, C, H, W]
        return self.linear(self.norm(x.movedim(1, -1))).movedim(-1, 1)


class ConvHead(nn.Module):
    def __init__(self, width: int, out_channels: int):
        super().__init__()
        self.norm = RMSNorm(width)
        self.conv = nn.Conv2d(width, out_channels, kernel_size=3, padding=1)

    def forward(self, x):
        return self.conv(self.norm(x.movedim(1, -1)).movedim(-1, 1))


class ChromaRadianceTransformer(ModelMixin, ConfigMixin):
    """forward(x [B, C, H, W] pixels, H and W multiples of patch_size; the rest as diffusers' Chroma takes it, timestep
    the noise level sigma) -> the velocity [B, C, H, W]."""

    @register_to_config
    def __init__(self, backbone: dict = None, patch_size: int = 16, in_channels: int = 3, nerf_hidden_size: int = 64,
                 nerf_mlp_ratio: int = 4, nerf_depth: int = 4, nerf_max_freqs: int = 8, nerf_head: str = "linear",
                 predicts_x0: bool = False):
        super().__init__()
        from diffusers import ChromaTransformer2DModel
        self.transformer = ChromaTransformer2DModel(**dict(backbone or {}, patch_size=1,
                                                           in_channels=in_channels * patch_size ** 2))
        self.transformer.norm_out = Unmodulated()
        self.transformer.proj_out = nn.Identity()
        state = self.transformer.inner_dim
        self.nerf_image_embedder = PixelEmbedder(in_channels, nerf_hidden_size, nerf_max_freqs)
        self.nerf_blocks = nn.ModuleList([GatedBlock(state, nerf_hidden_size, nerf_mlp_ratio)
                                          for _ in range(nerf_depth)])
        if nerf_head == "conv":
            self.nerf_final_layer_conv = ConvHead(nerf_hidden_size, in_channels)
        else:
            self.nerf_final_layer = LinearHead(nerf_hidden_size, in_channels)

    def head(self, pixels, states, tile: int):
        """Each patch's pixels [N, P*P, C] through the head generated from its state [N, D], `tile` patches at a time
        (0: all at once); every patch is its own, so the tiling changes nothing but the memory it takes."""
        step = tile if tile > 0 else len(pixels)
        outs = []
        for i in range(0, len(pixels), step):
            x, s = self.nerf_image_embedder(pixels[i:i + step]), states[i:i + step]
            for block in self.nerf_blocks:
                x = block(x, s)
            outs.append(x)
        return torch.cat(outs)

    def forward(self, x, timestep, encoder_hidden_states, img_ids, txt_ids, attention_mask=None,
                nerf_tile: int = NERF_TILE):
        b, c, h, w = x.shape
        p = self.config.patch_size
        patches = F.unfold(x, kernel_size=p, stride=p).transpose(1, 2)            # [B, L, C*P*P], channel first
        states = self.transformer(hidden_states=patches, timestep=timestep, encoder_hidden_states=encoder_hidden_states,
                                  img_ids=img_ids, txt_ids=txt_ids, attention_mask=attention_mask,
                                  return_dict=False)[0]
        n = patches.shape[1]
        pixels = patches.reshape(b * n, c, p * p).transpose(1, 2)
        out = self.head(pixels, states.reshape(b * n, -1), nerf_tile)             # [B*L, P*P, width]
        out = F.fold(out.transpose(1, 2).reshape(b, n, -1).transpose(1, 2), output_size=(h, w), kernel_size=p, stride=p)
        head = self.nerf_final_layer_conv if self.config.nerf_head == "conv" else self.nerf_final_layer
        out = head(out)
        if self.config.predicts_x0:
            out = (x - out) / timestep.to(out.dtype).view(-1, 1, 1, 1)
        return out
