"""ComfyUI's TRELLIS.2 structure decoder and VaeDecodeStructureTrellis2, written out from its published code
(comfy/ldm/trellis2/vae.py: pixel_shuffle_3d, ChannelLayerNorm32, UpsampleBlock3d, ResBlock3d,
SparseStructureDecoder; comfy_extras/nodes_trellis2.py: VaeDecodeStructureTrellis2.execute) with torch.nn for its
ops, as the reference the tests compare Kinograph's against. Shares no code with nodes/generate/trellis2.py."""
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn


def pixel_shuffle_3d(x: torch.Tensor, scale_factor: int) -> torch.Tensor:
    B, C, H, W, D = x.shape
    C_ = C // scale_factor**3
    x = x.reshape(B, C_, scale_factor, scale_factor, scale_factor, H, W, D)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    x = x.reshape(B, C_, H*scale_factor, W*scale_factor, D*scale_factor)
    return x


class ChannelLayerNorm32(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        DIM = x.dim()
        x = x.permute(0, *range(2, DIM), 1).contiguous()
        x = super().forward(x)
        x = x.permute(0, DIM-1, *range(1, DIM-1)).contiguous()
        return x


class UpsampleBlock3d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv = nn.Conv3d(in_channels, out_channels * 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle_3d(self.conv(x), 2)


class ResBlock3d(nn.Module):
    def __init__(self, channels: int, out_channels: Optional[int] = None):
        super().__init__()
        self.channels = channels
        self.out_channels = out_channels or channels
        self.norm1 = ChannelLayerNorm32(channels)
        self.norm2 = ChannelLayerNorm32(self.out_channels)
        self.conv1 = nn.Conv3d(channels, self.out_channels, 3, padding=1)
        self.conv2 = nn.Conv3d(self.out_channels, self.out_channels, 3, padding=1)
        self.skip_connection = nn.Conv3d(channels, self.out_channels, 1) if channels != self.out_channels \
            else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        h = F.silu(h)
        h = self.conv1(h)
        h = self.norm2(h)
        h = F.silu(h)
        h = self.conv2(h)
        h = h + self.skip_connection(x)
        return h


class SparseStructureDecoder(nn.Module):
    def __init__(self, out_channels: int, latent_channels: int, num_res_blocks: int, channels: List[int],
                 num_res_blocks_middle: int = 2):
        super().__init__()
        self.input_layer = nn.Conv3d(latent_channels, channels[0], 3, padding=1)
        self.middle_block = nn.Sequential(*[ResBlock3d(channels[0], channels[0])
                                            for _ in range(num_res_blocks_middle)])
        self.blocks = nn.ModuleList([])
        for i, ch in enumerate(channels):
            self.blocks.extend([ResBlock3d(ch, ch) for _ in range(num_res_blocks)])
            if i < len(channels) - 1:
                self.blocks.append(UpsampleBlock3d(ch, channels[i+1]))
        self.out_layer = nn.Sequential(ChannelLayerNorm32(channels[-1]), nn.SiLU(),
                                       nn.Conv3d(channels[-1], out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_layer(x)
        h = self.middle_block(h)
        for block in self.blocks:
            h = block(h)
        h = self.out_layer(h)
        return h


def vae_decode_structure(decoder, samples: torch.Tensor, resolution: int) -> torch.Tensor:
    """VaeDecodeStructureTrellis2.execute on one batch (no Pixal3D projection pack): the VOXEL's data [B, R, R, R]."""
    sample_tensor = samples[:, :8]
    decoded = decoder(sample_tensor) > 0
    current_res = decoded.shape[2]
    if current_res != resolution:
        ratio = current_res // resolution
        decoded = torch.nn.functional.max_pool3d(decoded.float(), ratio, ratio, 0) > 0.5
    return decoded.squeeze(1).float()


def empty_latent_structure(batch_size: int) -> torch.Tensor:
    """EmptyTrellis2LatentStructure.execute's samples."""
    return torch.zeros(batch_size, 32, 16, 16, 16)


# -- the image conditioning: comfy/image_encoders/dino3.py (DINOv3ViTModel, no gated MLP), comfy.utils.lanczos,
# comfy_extras/nodes_trellis2.py (_dinov3_encode, _dino_encode_batch, Trellis2Conditioning.execute); optimized
# attention as torch's scaled_dot_product_attention, LayerScale (comfy/image_encoders/dino2.py) as x * lambda1
import math  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    num_tokens = q.shape[-2]
    num_patches = sin.shape[-2]
    num_prefix_tokens = num_tokens - num_patches
    q_prefix_tokens, q_patches = q.split((num_prefix_tokens, num_patches), dim=-2)
    k_prefix_tokens, k_patches = k.split((num_prefix_tokens, num_patches), dim=-2)
    q_patches = (q_patches * cos) + (rotate_half(q_patches) * sin)
    k_patches = (k_patches * cos) + (rotate_half(k_patches) * sin)
    return torch.cat((q_prefix_tokens, q_patches), dim=-2), torch.cat((k_prefix_tokens, k_patches), dim=-2)


class DINOv3ViTAttention(nn.Module):
    def __init__(self, hidden_size, num_attention_heads):
        super().__init__()
        self.num_heads = num_attention_heads
        self.head_dim = hidden_size // num_attention_heads
        self.k_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v_proj = nn.Linear(hidden_size, hidden_size, bias=True)
        self.q_proj = nn.Linear(hidden_size, hidden_size, bias=True)
        self.o_proj = nn.Linear(hidden_size, hidden_size, bias=True)

    def forward(self, hidden_states, position_embeddings):
        batch_size, patches, _ = hidden_states.size()
        q = self.q_proj(hidden_states).view(batch_size, patches, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden_states).view(batch_size, patches, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden_states).view(batch_size, patches, self.num_heads, self.head_dim).transpose(1, 2)
        cos, sin = position_embeddings
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.o_proj(out.transpose(1, 2).reshape(batch_size, patches, -1))


class LayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.lambda1 = nn.Parameter(torch.empty(dim))

    def forward(self, x):
        return x * self.lambda1


class DINOv3ViTMLP(nn.Module):
    def __init__(self, hidden_size, intermediate_size):
        super().__init__()
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=True)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=True)
        self.act_fn = nn.GELU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.up_proj(x)))


def get_patches_center_coordinates(num_patches_h, num_patches_w, dtype, device):
    coords_h = torch.arange(0.5, num_patches_h, dtype=dtype, device=device) / num_patches_h
    coords_w = torch.arange(0.5, num_patches_w, dtype=dtype, device=device) / num_patches_w
    coords = torch.stack(torch.meshgrid(coords_h, coords_w, indexing="ij"), dim=-1).flatten(0, 1)
    return 2.0 * coords - 1.0


class DINOv3ViTRopePositionEmbedding(nn.Module):
    def __init__(self, rope_theta, hidden_size, num_attention_heads, patch_size):
        super().__init__()
        self.head_dim = hidden_size // num_attention_heads
        self.patch_size = patch_size
        inv_freq = 1 / rope_theta ** torch.arange(0, 1, 4 / self.head_dim, dtype=torch.float32)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, pixel_values):
        _, _, height, width = pixel_values.shape
        patch_coords = get_patches_center_coordinates(height // self.patch_size, width // self.patch_size,
                                                      dtype=torch.float32, device=pixel_values.device)
        angles = 2 * math.pi * patch_coords[:, :, None] * self.inv_freq[None, None, :]
        angles = angles.flatten(1, 2).tile(2)
        return torch.cos(angles).to(dtype=pixel_values.dtype), torch.sin(angles).to(dtype=pixel_values.dtype)


class DINOv3ViTEmbeddings(nn.Module):
    def __init__(self, hidden_size, num_register_tokens, num_channels, patch_size):
        super().__init__()
        self.cls_token = nn.Parameter(torch.empty(1, 1, hidden_size))
        self.mask_token = nn.Parameter(torch.empty(1, 1, hidden_size))
        self.register_tokens = nn.Parameter(torch.empty(1, num_register_tokens, hidden_size))
        self.patch_embeddings = nn.Conv2d(num_channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, pixel_values):
        batch_size = pixel_values.shape[0]
        patch_embeddings = self.patch_embeddings(pixel_values).flatten(2).transpose(1, 2)
        cls_token = self.cls_token.expand(batch_size, -1, -1)
        register_tokens = self.register_tokens.expand(batch_size, -1, -1)
        return torch.cat([cls_token, register_tokens, patch_embeddings], dim=1)


class DINOv3ViTLayer(nn.Module):
    def __init__(self, hidden_size, layer_norm_eps, intermediate_size, num_attention_heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.attention = DINOv3ViTAttention(hidden_size, num_attention_heads)
        self.layer_scale1 = LayerScale(hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.mlp = DINOv3ViTMLP(hidden_size, intermediate_size)
        self.layer_scale2 = LayerScale(hidden_size)

    def forward(self, hidden_states, position_embeddings):
        residual = hidden_states
        hidden_states = self.layer_scale1(self.attention(self.norm1(hidden_states), position_embeddings)) + residual
        residual = hidden_states
        return self.layer_scale2(self.mlp(self.norm2(hidden_states))) + residual


class DINOv3ViTModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embeddings = DINOv3ViTEmbeddings(config["hidden_size"], config["num_register_tokens"],
                                              config["num_channels"], config["patch_size"])
        self.rope_embeddings = DINOv3ViTRopePositionEmbedding(config["rope_theta"], config["hidden_size"],
                                                              config["num_attention_heads"], config["patch_size"])
        self.layer = nn.ModuleList([
            DINOv3ViTLayer(config["hidden_size"], config["layer_norm_eps"], config["intermediate_size"],
                           config["num_attention_heads"]) for _ in range(config["num_hidden_layers"])])
        self.norm = nn.LayerNorm(config["hidden_size"], eps=config["layer_norm_eps"])

    def forward(self, pixel_values, skip_norm_elementwise=False):
        hidden_states = self.embeddings(pixel_values)
        position_embeddings = self.rope_embeddings(pixel_values)
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states, position_embeddings=position_embeddings)
        if skip_norm_elementwise:
            sequence_output = F.layer_norm(hidden_states, hidden_states.shape[-1:])
        else:
            sequence_output = self.norm(hidden_states)
        return sequence_output, None, sequence_output[:, 0, :], None


def lanczos(samples, width, height):
    images = [Image.fromarray(np.clip(255. * image.movedim(0, -1).cpu().numpy(), 0, 255).astype(np.uint8))
              for image in samples]
    images = [image.resize((width, height), resample=Image.Resampling.LANCZOS) for image in images]
    images = [torch.from_numpy(np.array(image).astype(np.float32) / 255.0).movedim(-1, 0) for image in images]
    return torch.stack(images).to(samples.device, samples.dtype)


def dinov3_encode(model, image_bchw, image_size, image_mean=(0.485, 0.456, 0.406), image_std=(0.229, 0.224, 0.225)):
    """_dinov3_encode without the patches (the Trellis2 path); the model's mean and std as given."""
    img_t = lanczos(image_bchw, image_size, image_size)
    mean = torch.tensor(image_mean).view(1, 3, 1, 1)
    std = torch.tensor(image_std).view(1, 3, 1, 1)
    img_t = (img_t - mean) / std
    return model(img_t, skip_norm_elementwise=True)[0]


def trellis2_conditioning(model, image):
    """Trellis2Conditioning.execute on an IMAGE [B, H, W, C] in 0..1: (positive, negative) as ComfyUI's lists."""
    image = image[..., :3]
    cond_512_list, cond_1024_list = [], []
    for b in range(image.shape[0]):
        item = image[b].movedim(-1, -3).unsqueeze(0).contiguous().float().clamp(0, 1)
        cond_512_list.append(dinov3_encode(model, item, 512))
        cond_1024_list.append(dinov3_encode(model, item, 1024))
    cond_512_batched, cond_1024_batched = torch.cat(cond_512_list, dim=0), torch.cat(cond_1024_list, dim=0)
    positive = [[cond_512_batched, {"embeds": cond_1024_batched}]]
    negative = [[torch.zeros_like(cond_512_batched), {"embeds": torch.zeros_like(cond_1024_batched)}]]
    return positive, negative
