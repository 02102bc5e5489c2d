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


# -- the structure flow model: comfy/ldm/trellis2/model.py (SparseStructureFlowModel and its dense blocks, global
# image attention; the structure mode of Trellis2.forward), comfy/ldm/genmo/joint_model/layers.py (TimestepEmbedder),
# comfy/ldm/flux/math.py (apply_rope); optimized attention as scaled_dot_product_attention
def apply_rope(xq, xk, freqs_cis):
    xq_ = xq.to(dtype=freqs_cis.dtype).reshape(*xq.shape[:-1], -1, 1, 2)
    xk_ = xk.to(dtype=freqs_cis.dtype).reshape(*xk.shape[:-1], -1, 1, 2)
    xq_out = freqs_cis[..., 0] * xq_[..., 0] + freqs_cis[..., 1] * xq_[..., 1]
    xk_out = freqs_cis[..., 0] * xk_[..., 0] + freqs_cis[..., 1] * xk_[..., 1]
    return xq_out.reshape(*xq.shape).type_as(xq), xk_out.reshape(*xk.shape).type_as(xk)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size, frequency_embedding_size=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.arange(start=0, end=half, dtype=torch.float32, device=t.device)
        freqs.mul_(-math.log(max_period) / half).exp_()
        args = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t, out_dtype):
        return self.mlp(self.timestep_embedding(t, self.frequency_embedding_size).to(dtype=out_dtype))


def dense_attention(q, k, v):
    return F.scaled_dot_product_attention(q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3),
                                          v.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)


class MultiHeadRMSNorm(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.gamma = nn.Parameter(torch.empty(heads, dim))

    def forward(self, x):
        return F.rms_norm(x, (x.shape[-1],)) * self.gamma.to(x.dtype)


class RotaryPositionEmbedder(nn.Module):
    def __init__(self, head_dim, dim=3, rope_freq=(1.0, 10000.0)):
        super().__init__()
        self.head_dim = head_dim
        self.dim = dim
        self.freq_dim = head_dim // 2 // dim
        self.freqs = torch.arange(self.freq_dim, dtype=torch.float32) / self.freq_dim
        self.freqs = rope_freq[0] / (rope_freq[1] ** self.freqs)

    def forward(self, coords):
        phases = torch.cat([torch.outer(coords[..., i], self.freqs) for i in range(self.dim)], dim=-1)
        if phases.shape[-1] < self.head_dim // 2:
            padn = self.head_dim // 2 - phases.shape[-1]
            phases = torch.cat([phases, torch.zeros(*phases.shape[:-1], padn)], dim=-1)
        cos, sin = torch.cos(phases), torch.sin(phases)
        f_cis_0 = torch.stack([cos, sin], dim=-1)
        f_cis_1 = torch.stack([-sin, cos], dim=-1)
        return torch.stack([f_cis_0, f_cis_1], dim=-1)


class MultiHeadAttention(nn.Module):
    def __init__(self, channels, num_heads, ctx_channels=None, type="self"):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self._type = type
        if type == "self":
            self.to_qkv = nn.Linear(channels, channels * 3)
        else:
            self.to_q = nn.Linear(channels, channels)
            self.to_kv = nn.Linear(ctx_channels, channels * 2)
        self.q_rms_norm = MultiHeadRMSNorm(self.head_dim, num_heads)
        self.k_rms_norm = MultiHeadRMSNorm(self.head_dim, num_heads)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x, context=None, phases=None):
        B, L, C = x.shape
        if self._type == "self":
            q, k, v = self.to_qkv(x).reshape(B, L, 3, self.num_heads, -1).unbind(dim=2)
            q, k = self.q_rms_norm(q), self.k_rms_norm(k)
            q, k = apply_rope(q, k, phases.unsqueeze(0).unsqueeze(2))
        else:
            q = self.to_q(x).reshape(B, L, self.num_heads, -1)
            k, v = self.to_kv(context).reshape(B, context.shape[1], 2, self.num_heads, -1).unbind(dim=2)
            q, k = self.q_rms_norm(q), self.k_rms_norm(k)
        return self.to_out(dense_attention(q, k, v).reshape(B, L, -1))


class FeedForwardNet(nn.Module):
    def __init__(self, channels, mlp_ratio):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels, int(channels * mlp_ratio)), nn.GELU(approximate="tanh"),
                                 nn.Linear(int(channels * mlp_ratio), channels))

    def forward(self, x):
        return self.mlp(x)


class ModulatedTransformerCrossBlock(nn.Module):
    def __init__(self, channels, ctx_channels, num_heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(channels, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(channels, elementwise_affine=True, eps=1e-6)
        self.norm3 = nn.LayerNorm(channels, elementwise_affine=False, eps=1e-6)
        self.self_attn = MultiHeadAttention(channels, num_heads, type="self")
        self.cross_attn = MultiHeadAttention(channels, num_heads, ctx_channels=ctx_channels, type="cross")
        self.mlp = FeedForwardNet(channels, mlp_ratio)
        self.modulation = nn.Parameter(torch.empty(6 * channels))

    def forward(self, x, mod, context, phases):
        mod = self.modulation.to(mod.dtype) + mod
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.unsqueeze(1).chunk(6, dim=-1)
        h = torch.addcmul(shift_msa, self.norm1(x), 1 + scale_msa)
        x = torch.addcmul(x, self.self_attn(h, phases=phases), gate_msa)
        x = x + self.cross_attn(self.norm2(x), context)
        h = torch.addcmul(shift_mlp, self.norm3(x), 1 + scale_mlp)
        return torch.addcmul(x, self.mlp(h), gate_mlp)


class SparseStructureFlowModel(nn.Module):
    """share_mod and qk RMS norms on, as Trellis2 builds it (resolution 16, 8 channels in and out)."""

    def __init__(self, model_channels, cond_channels, num_blocks, num_heads, mlp_ratio, resolution=16, in_channels=8,
                 out_channels=8):
        super().__init__()
        self.resolution, self.in_channels = resolution, in_channels
        self.t_embedder = TimestepEmbedder(model_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(model_channels, 6 * model_channels))
        pos_embedder = RotaryPositionEmbedder(model_channels // num_heads, 3)
        coords = torch.meshgrid(*[torch.arange(res, dtype=torch.float32) for res in [resolution] * 3], indexing="ij")
        self.register_buffer("rope_phases", pos_embedder(torch.stack(coords, dim=-1).reshape(-1, 3)), persistent=False)
        self.input_layer = nn.Linear(in_channels, model_channels)
        self.blocks = nn.ModuleList([ModulatedTransformerCrossBlock(model_channels, cond_channels, num_heads, mlp_ratio)
                                     for _ in range(num_blocks)])
        self.out_layer = nn.Linear(model_channels, out_channels)

    def forward(self, x, t, cond):
        x = x.view(x.shape[0], self.in_channels, *[self.resolution] * 3)
        h = x.view(*x.shape[:2], -1).permute(0, 2, 1).contiguous()
        h = self.input_layer(h)
        t_emb = self.adaLN_modulation(self.t_embedder(t, out_dtype=t.dtype))
        for block in self.blocks:
            h = block(h, t_emb, cond, self.rope_phases)
        h = self.out_layer(F.layer_norm(h, h.shape[-1:]))
        return h.permute(0, 2, 1).view(h.shape[0], h.shape[2], *[self.resolution] * 3).contiguous()


def trellis2_structure_forward(structure_model, x, timestep, context, sigma):
    """Trellis2.forward in structure mode for one sample (global image attention): the first 8 channels in, 24 zero
    channels out. Outside its guidance_interval [0.6, 1.0] a cfg batch (uncond, cond) runs the cond half alone, its
    output repeated for both (shape_rule).
    The timestep is given as model_sampling.timestep makes it (sigma times its multiplier; the templates'
    ModelSamplingSD3 makes that 1000, its patch's default): 1000 sigma, as TRELLIS.2 was trained and samples
    (flow_euler: model(x_t, 1000 * t, cond)), and as ComfyUI's current Trellis2.forward passes it on. Its earlier
    versions (cond and coords in transformer_options) also multiplied it by 1000 wherever the sampler's sigma was
    below 1.00001 (a test of sigma, not of the timestep: always, for a flow), so that a ModelSamplingSD3 chain told
    the model 10^6 sigma; that line is gone from ComfyUI and left out here."""
    timestep = timestep.to(x.dtype)
    bsz = x.size(0)
    x = x[:, :8].view(bsz, 8, 16, 16, 16)
    cond = context.chunk(2)[1] if context.size(0) > 1 else context
    shape_rule = sigma < 0.6 or sigma > 1.0
    orig_bsz = x.shape[0]
    if shape_rule and orig_bsz > 1:
        half = orig_bsz // 2
        x = x[half:]
        timestep = timestep[half:] if timestep.shape[0] > 1 else timestep
    out = structure_model(x, timestep, cond if shape_rule and orig_bsz > 1 else context)
    if shape_rule and orig_bsz > 1:
        out = out.repeat(2, 1, 1, 1, 1)
    return torch.nn.functional.pad(out, (0, 0, 0, 0, 0, 0, 0, 24))


def flow_normal_sigmas(shift, steps, multiplier=1000):
    """ModelSamplingDiscreteFlow's levels (comfy/model_sampling.py) through the normal scheduler
    (comfy/samplers.py normal_scheduler): linspace over timestep(sigma_max)..timestep(sigma_min), then sigma() of
    each, then 0."""
    def sigma(t):
        t = t / multiplier
        return shift * t / (1 + (shift - 1) * t)
    ts = torch.arange(1, 1001, dtype=torch.float32)
    table = sigma(ts)
    start, end = float(table[-1]) * multiplier, float(table[0]) * multiplier
    sigs = [float(sigma(torch.tensor(t))) for t in torch.linspace(start, end, steps).tolist()]
    return sigs + [0.0]


def randomised(model):
    """(test helper, not ComfyUI's) a DINOv3's weights random: layer scales and norms away from 1 / 0 so a swapped
    or skipped one would show"""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lambda1" in name or "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith(("weight", "lambda1")) else 0.0))
            else:
                p.copy_(torch.randn_like(p) * 0.05)
    return model.eval()
