"""ComfyUI's Hunyuan3D shape code written out (plain torch in place of comfy.ops), the independent reference the
tests hold nodes/generate/hunyuan3d_* to: comfy/ldm/flux/layers.py (the blocks 2.0 is made of),
comfy/ldm/hunyuan3d/model.py (Hunyuan3Dv2), comfy/ldm/hunyuan3dv2_1/hunyuandit.py (HunYuanDiTPlain with its MoE,
inference path), comfy/ldm/hunyuan3d/vae.py (ShapeVAE's decoder and VanillaVolumeDecoder), comfy/sd.py's VAE.decode
post-processing ((x + 1) / 2 clamped, movedim(1, -1)), comfy_extras/nodes_hunyuan3d.py's multi-view
conditioning with get_1d_sincos_pos_embed_from_grid_torch (comfy/ldm/modules/diffusionmodules/mmdit.py), and
comfy/clip_model.py's clip_preprocess (CLIPVisionEncode's picture preparation, DINOv2's ImageNet mean and std)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# -- comfy/ldm/flux/layers.py, math.py (pe None: plain attention) --------------------------------------------------
def attention(q, k, v, pe=None):
    x = F.scaled_dot_product_attention(q, k, v)
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


def timestep_embedding(t: Tensor, dim, max_period=10000, time_factor: float = 1000.0):
    t = time_factor * t
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32,
                                                           device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if torch.is_floating_point(t):
        embedding = embedding.to(t)
    return embedding


class MLPEmbedder(nn.Module):
    def __init__(self, in_dim, hidden_dim):
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden_dim, bias=True)
        self.silu = nn.SiLU()
        self.out_layer = nn.Linear(hidden_dim, hidden_dim, bias=True)

    def forward(self, x):
        return self.out_layer(self.silu(self.in_layer(x)))


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.scale = nn.Parameter(torch.empty((dim)))

    def forward(self, x):
        x_dtype = x.dtype
        x = x.float()
        rrms = torch.rsqrt(torch.mean(x ** 2, dim=-1, keepdim=True) + 1e-6)
        return (x * rrms).to(dtype=x_dtype) * self.scale.to(x_dtype)


class QKNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.query_norm = RMSNorm(dim)
        self.key_norm = RMSNorm(dim)

    def forward(self, q, k, v):
        return self.query_norm(q).to(v), self.key_norm(k).to(v)


class SelfAttention(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=False):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.norm = QKNorm(dim // num_heads)
        self.proj = nn.Linear(dim, dim)


@dataclass
class ModulationOut:
    shift: Tensor
    scale: Tensor
    gate: Tensor


class Modulation(nn.Module):
    def __init__(self, dim, double):
        super().__init__()
        self.is_double = double
        self.multiplier = 6 if double else 3
        self.lin = nn.Linear(dim, self.multiplier * dim, bias=True)

    def forward(self, vec):
        out = self.lin(nn.functional.silu(vec))[:, None, :].chunk(self.multiplier, dim=-1)
        return ModulationOut(*out[:3]), ModulationOut(*out[3:]) if self.is_double else None


class DoubleStreamBlock(nn.Module):
    def __init__(self, hidden_size, num_heads, mlp_ratio, qkv_bias=False):
        super().__init__()
        mlp_hidden_dim = int(hidden_size * mlp_ratio)
        self.num_heads = num_heads
        self.img_mod = Modulation(hidden_size, double=True)
        self.img_norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.img_attn = SelfAttention(hidden_size, num_heads, qkv_bias)
        self.img_norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.img_mlp = nn.Sequential(nn.Linear(hidden_size, mlp_hidden_dim), nn.GELU(approximate="tanh"),
                                     nn.Linear(mlp_hidden_dim, hidden_size))
        self.txt_mod = Modulation(hidden_size, double=True)
        self.txt_norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.txt_attn = SelfAttention(hidden_size, num_heads, qkv_bias)
        self.txt_norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.txt_mlp = nn.Sequential(nn.Linear(hidden_size, mlp_hidden_dim), nn.GELU(approximate="tanh"),
                                     nn.Linear(mlp_hidden_dim, hidden_size))

    def forward(self, img, txt, vec, pe):
        img_mod1, img_mod2 = self.img_mod(vec)
        txt_mod1, txt_mod2 = self.txt_mod(vec)
        img_modulated = self.img_norm1(img)
        img_modulated = (1 + img_mod1.scale) * img_modulated + img_mod1.shift
        img_qkv = self.img_attn.qkv(img_modulated)
        img_q, img_k, img_v = img_qkv.view(img_qkv.shape[0], img_qkv.shape[1], 3, self.num_heads, -1) \
            .permute(2, 0, 3, 1, 4)
        img_q, img_k = self.img_attn.norm(img_q, img_k, img_v)
        txt_modulated = self.txt_norm1(txt)
        txt_modulated = (1 + txt_mod1.scale) * txt_modulated + txt_mod1.shift
        txt_qkv = self.txt_attn.qkv(txt_modulated)
        txt_q, txt_k, txt_v = txt_qkv.view(txt_qkv.shape[0], txt_qkv.shape[1], 3, self.num_heads, -1) \
            .permute(2, 0, 3, 1, 4)
        txt_q, txt_k = self.txt_attn.norm(txt_q, txt_k, txt_v)
        attn = attention(torch.cat((txt_q, img_q), dim=2), torch.cat((txt_k, img_k), dim=2),
                         torch.cat((txt_v, img_v), dim=2), pe=pe)
        txt_attn, img_attn = attn[:, : txt.shape[1]], attn[:, txt.shape[1]:]
        img = img + img_mod1.gate * self.img_attn.proj(img_attn)
        img = img + img_mod2.gate * self.img_mlp((1 + img_mod2.scale) * self.img_norm2(img) + img_mod2.shift)
        txt += txt_mod1.gate * self.txt_attn.proj(txt_attn)
        txt += txt_mod2.gate * self.txt_mlp((1 + txt_mod2.scale) * self.txt_norm2(txt) + txt_mod2.shift)
        return img, txt


class SingleStreamBlock(nn.Module):
    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.num_heads = num_heads
        self.mlp_hidden_dim = int(hidden_size * mlp_ratio)
        self.linear1 = nn.Linear(hidden_size, hidden_size * 3 + self.mlp_hidden_dim)
        self.linear2 = nn.Linear(hidden_size + self.mlp_hidden_dim, hidden_size)
        self.norm = QKNorm(hidden_size // num_heads)
        self.hidden_size = hidden_size
        self.pre_norm = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp_act = nn.GELU(approximate="tanh")
        self.modulation = Modulation(hidden_size, double=False)

    def forward(self, x, vec, pe):
        mod, _ = self.modulation(vec)
        x_mod = (1 + mod.scale) * self.pre_norm(x) + mod.shift
        qkv, mlp = torch.split(self.linear1(x_mod), [3 * self.hidden_size, self.mlp_hidden_dim], dim=-1)
        q, k, v = qkv.view(qkv.shape[0], qkv.shape[1], 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k = self.norm(q, k, v)
        attn = attention(q, k, v, pe=pe)
        output = self.linear2(torch.cat((attn, self.mlp_act(mlp)), 2))
        x += mod.gate * output
        return x


class LastLayer(nn.Module):
    def __init__(self, hidden_size, patch_size, out_channels):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def forward(self, x, vec):
        shift, scale = self.adaLN_modulation(vec).chunk(2, dim=1)
        x = (1 + scale[:, None, :]) * self.norm_final(x) + shift[:, None, :]
        return self.linear(x)


# -- comfy/ldm/hunyuan3d/model.py ----------------------------------------------------------------------------------
class Hunyuan3Dv2(nn.Module):
    def __init__(self, in_channels=64, context_in_dim=1536, hidden_size=1024, mlp_ratio=4.0, num_heads=16, depth=16,
                 depth_single_blocks=32, qkv_bias=True, guidance_embed=False):
        super().__init__()
        self.max_period = 1000
        self.latent_in = nn.Linear(in_channels, hidden_size, bias=True)
        self.time_in = MLPEmbedder(in_dim=256, hidden_dim=hidden_size)
        self.guidance_in = MLPEmbedder(in_dim=256, hidden_dim=hidden_size) if guidance_embed else None
        self.cond_in = nn.Linear(context_in_dim, hidden_size)
        self.double_blocks = nn.ModuleList([DoubleStreamBlock(hidden_size, num_heads, mlp_ratio=mlp_ratio,
                                                              qkv_bias=qkv_bias) for _ in range(depth)])
        self.single_blocks = nn.ModuleList([SingleStreamBlock(hidden_size, num_heads, mlp_ratio=mlp_ratio)
                                            for _ in range(depth_single_blocks)])
        self.final_layer = LastLayer(hidden_size, 1, in_channels)

    def forward(self, x, timestep, context, guidance=None):
        x = x.movedim(-1, -2)
        timestep = 1.0 - timestep
        txt = context
        img = self.latent_in(x)
        vec = self.time_in(timestep_embedding(timestep, 256, self.max_period).to(dtype=img.dtype))
        if self.guidance_in is not None:
            if guidance is not None:
                vec = vec + self.guidance_in(timestep_embedding(guidance, 256, self.max_period).to(img.dtype))
        txt = self.cond_in(txt)
        pe = None
        for block in self.double_blocks:
            img, txt = block(img=img, txt=txt, vec=vec, pe=pe)
        img = torch.cat((txt, img), 1)
        for block in self.single_blocks:
            img = block(img, vec=vec, pe=pe)
        img = img[:, txt.shape[1]:, ...]
        img = self.final_layer(img, vec)
        return img.movedim(-2, -1) * (-1.0)


# -- comfy/ldm/hunyuan3dv2_1/hunyuandit.py (inference path) -------------------------------------------------------
class GELU(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, hidden_states):
        return F.gelu(self.proj(hidden_states))


class FeedForward(nn.Module):
    def __init__(self, dim, dim_out=None, mult=4, dropout=0.0, inner_dim=None):
        super().__init__()
        if inner_dim is None:
            inner_dim = int(dim * mult)
        dim_out = dim_out if dim_out is not None else dim
        self.net = nn.ModuleList([GELU(dim, inner_dim), nn.Dropout(dropout), nn.Linear(inner_dim, dim_out)])

    def forward(self, hidden_states):
        for module in self.net:
            hidden_states = module(hidden_states)
        return hidden_states


class MoEGate(nn.Module):
    def __init__(self, embed_dim, num_experts=16, num_experts_per_tok=2):
        super().__init__()
        self.top_k = num_experts_per_tok
        self.weight = nn.Parameter(torch.empty((num_experts, embed_dim)))

    def forward(self, hidden_states):
        hidden_states = hidden_states.view(-1, hidden_states.size(-1))
        scores = F.linear(hidden_states, self.weight, bias=None).softmax(dim=-1)
        topk_weight, topk_idx = torch.topk(scores, k=self.top_k, dim=-1, sorted=False)
        return topk_idx, topk_weight, None


class MoEBlock(nn.Module):
    def __init__(self, dim, num_experts=6, moe_top_k=2, dropout=0.0, ff_inner_dim=None):
        super().__init__()
        self.moe_top_k = moe_top_k
        self.experts = nn.ModuleList([FeedForward(dim, dropout=dropout, inner_dim=ff_inner_dim)
                                      for _ in range(num_experts)])
        self.gate = MoEGate(dim, num_experts=num_experts, num_experts_per_tok=moe_top_k)
        self.shared_experts = FeedForward(dim, dropout=dropout, inner_dim=ff_inner_dim)

    def forward(self, hidden_states):
        identity = hidden_states
        orig_shape = hidden_states.shape
        topk_idx, topk_weight, _ = self.gate(hidden_states)
        hidden_states = hidden_states.view(-1, hidden_states.shape[-1])
        flat_topk_idx = topk_idx.view(-1)
        y = self.moe_infer(hidden_states, flat_topk_idx, topk_weight.view(-1, 1)).view(*orig_shape)
        return y + self.shared_experts(identity)

    @torch.no_grad()
    def moe_infer(self, x, flat_expert_indices, flat_expert_weights):
        expert_cache = torch.zeros_like(x)
        idxs = flat_expert_indices.argsort()
        tokens_per_expert = flat_expert_indices.bincount().cumsum(0)
        token_idxs = idxs // self.moe_top_k
        for i, end_idx in enumerate(tokens_per_expert):
            start_idx = 0 if i == 0 else tokens_per_expert[i - 1]
            if start_idx == end_idx:
                continue
            expert = self.experts[i]
            exp_token_idx = token_idxs[start_idx:end_idx]
            expert_out = expert(x[exp_token_idx])
            expert_out.mul_(flat_expert_weights[idxs[start_idx:end_idx]])
            expert_cache.index_add_(0, exp_token_idx, expert_out)
        return expert_cache


class Timesteps(nn.Module):
    def __init__(self, num_channels, downscale_freq_shift=0.0, scale=1.0, max_period=10000):
        super().__init__()
        self.num_channels = num_channels
        half_dim = num_channels // 2
        exponent = -math.log(max_period) * torch.arange(half_dim, dtype=torch.float32) / (half_dim
                                                                                           - downscale_freq_shift)
        self.register_buffer("inv_freq", torch.exp(exponent), persistent=False)
        self.scale = scale

    def forward(self, timesteps):
        x = timesteps.float().unsqueeze(1) * self.inv_freq.to(timesteps.device).unsqueeze(0)
        return torch.cat([x.sin(), x.cos()], dim=1)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size, frequency_embedding_size=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden_size, frequency_embedding_size, bias=True), nn.GELU(),
                                 nn.Linear(frequency_embedding_size, hidden_size, bias=True))
        self.time_embed = Timesteps(hidden_size)

    def forward(self, timesteps, condition):
        timestep_embed = self.time_embed(timesteps).type(self.mlp[0].weight.dtype)
        return self.mlp(timestep_embed).unsqueeze(1)


class MLP21(nn.Module):
    def __init__(self, *, width):
        super().__init__()
        self.fc1 = nn.Linear(width, width * 4)
        self.fc2 = nn.Linear(width * 4, width)
        self.gelu = nn.GELU()

    def forward(self, x):
        return self.fc2(self.gelu(self.fc1(x)))


class CrossAttention21(nn.Module):
    def __init__(self, qdim, kdim, num_heads, qkv_bias=True, norm_layer=nn.RMSNorm):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = qdim // num_heads
        self.to_q = nn.Linear(qdim, qdim, bias=qkv_bias)
        self.to_k = nn.Linear(kdim, qdim, bias=qkv_bias)
        self.to_v = nn.Linear(kdim, qdim, bias=qkv_bias)
        self.q_norm = norm_layer(self.head_dim, elementwise_affine=True, eps=1e-6)
        self.k_norm = norm_layer(self.head_dim, elementwise_affine=True, eps=1e-6)
        self.out_proj = nn.Linear(qdim, qdim, bias=True)

    def forward(self, x, y):
        b, s1, _ = x.shape
        _, s2, _ = y.shape
        q = self.to_q(x)
        k = self.to_k(y)
        v = self.to_v(y)
        kv = torch.cat((k, v), dim=-1)
        split_size = kv.shape[-1] // self.num_heads // 2
        kv = kv.view(1, -1, self.num_heads, split_size * 2)
        k, v = torch.split(kv, split_size, dim=-1)
        q = q.view(b, s1, self.num_heads, self.head_dim)
        k = k.view(b, s2, self.num_heads, self.head_dim)
        v = v.view(b, s2, self.num_heads, self.head_dim)
        q = self.q_norm(q)
        k = self.k_norm(k)
        q, k, v = [t.permute(0, 2, 1, 3) for t in (q, k, v)]
        context = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, s1, -1)
        return self.out_proj(context)


class Attention21(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True, norm_layer=nn.RMSNorm):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.to_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.to_k = nn.Linear(dim, dim, bias=qkv_bias)
        self.to_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.q_norm = norm_layer(self.head_dim, elementwise_affine=True, eps=1e-6)
        self.k_norm = norm_layer(self.head_dim, elementwise_affine=True, eps=1e-6)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, _ = x.shape
        qkv_combined = torch.cat((self.to_q(x), self.to_k(x), self.to_v(x)), dim=-1)
        split_size = qkv_combined.shape[-1] // self.num_heads // 3
        qkv = qkv_combined.view(1, -1, self.num_heads, split_size * 3)
        query, key, value = torch.split(qkv, split_size, dim=-1)
        query = query.reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        key = key.reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        value = value.reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        query = self.q_norm(query)
        key = self.k_norm(key)
        x = F.scaled_dot_product_attention(query, key, value).transpose(1, 2).reshape(B, N, -1)
        return self.out_proj(x)


class HunYuanDiTBlock(nn.Module):
    def __init__(self, hidden_size, num_heads, text_states_dim=1024, qkv_bias=True, skip_connection=True,
                 use_moe=False, num_experts=8, moe_top_k=2):
        super().__init__()
        eps = 1e-6
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=True, eps=eps)
        self.attn1 = Attention21(hidden_size, num_heads=num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=True, eps=eps)
        self.attn2 = CrossAttention21(hidden_size, text_states_dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.norm3 = nn.LayerNorm(hidden_size, elementwise_affine=True, eps=eps)
        if skip_connection:
            self.skip_norm = nn.LayerNorm(hidden_size, elementwise_affine=True, eps=eps)
            self.skip_linear = nn.Linear(2 * hidden_size, hidden_size)
        else:
            self.skip_linear = None
        self.use_moe = use_moe
        if self.use_moe:
            self.moe = MoEBlock(hidden_size, num_experts=num_experts, moe_top_k=moe_top_k, dropout=0.0,
                                ff_inner_dim=int(hidden_size * 4.0))
        else:
            self.mlp = MLP21(width=hidden_size)

    def forward(self, hidden_states, conditioning=None, text_states=None, skip_tensor=None):
        if self.skip_linear is not None:
            combined = torch.cat([skip_tensor, hidden_states], dim=-1)
            hidden_states = self.skip_linear(combined)
            hidden_states = self.skip_norm(hidden_states)
        hidden_states = hidden_states + self.attn1(self.norm1(hidden_states))
        hidden_states = hidden_states + self.attn2(self.norm2(hidden_states), text_states)
        mlp_input = self.norm3(hidden_states)
        if self.use_moe:
            return hidden_states + self.moe(mlp_input)
        return hidden_states + self.mlp(mlp_input)


class FinalLayer(nn.Module):
    def __init__(self, final_hidden_size, out_channels):
        super().__init__()
        self.norm_final = nn.LayerNorm(final_hidden_size, elementwise_affine=True, eps=1e-6)
        self.linear = nn.Linear(final_hidden_size, out_channels, bias=True)

    def forward(self, x):
        x = self.norm_final(x)
        x = x[:, 1:]
        return self.linear(x)


class HunYuanDiTPlain(nn.Module):
    def __init__(self, in_channels=64, hidden_size=2048, context_dim=1024, depth=21, num_heads=16, qkv_bias=False,
                 num_moe_layers=6, num_experts=8, moe_top_k=2):
        super().__init__()
        self.depth = depth
        self.x_embedder = nn.Linear(in_channels, hidden_size, bias=True)
        self.t_embedder = TimestepEmbedder(hidden_size, hidden_size * 4)
        self.blocks = nn.ModuleList([
            HunYuanDiTBlock(hidden_size=hidden_size, num_heads=num_heads, text_states_dim=context_dim,
                            skip_connection=layer > depth // 2, qkv_bias=qkv_bias,
                            use_moe=True if depth - layer <= num_moe_layers else False, num_experts=num_experts,
                            moe_top_k=moe_top_k)
            for layer in range(depth)])
        self.final_layer = FinalLayer(hidden_size, in_channels)

    def forward(self, x, t, context, **kwargs):
        x = x.movedim(-1, -2)
        uncond_emb, cond_emb = context.chunk(2, dim=0)
        context = torch.cat([cond_emb, uncond_emb], dim=0)
        main_condition = context
        t = 1.0 - t
        time_embedded = self.t_embedder(t, condition=kwargs.get('guidance_cond'))
        x_embedded = self.x_embedder(x.to(dtype=next(self.x_embedder.parameters()).dtype))
        combined = torch.cat([time_embedded, x_embedded], dim=1)
        skip_stack = []
        for idx, block in enumerate(self.blocks):
            skip_input = None if idx <= self.depth // 2 else skip_stack.pop()
            combined = block(combined, time_embedded, main_condition, skip_tensor=skip_input)
            if idx < self.depth // 2:
                skip_stack.append(combined)
        output = self.final_layer(combined)
        output = output.movedim(-2, -1) * (-1.0)
        cond_emb, uncond_emb = output.chunk(2, dim=0)
        return torch.cat([uncond_emb, cond_emb])


# -- comfy/ldm/hunyuan3d/vae.py (decoder) ------------------------------------------------------------------------
class FourierEmbedder(nn.Module):
    def __init__(self, num_freqs=6, input_dim=3, include_pi=True):
        super().__init__()
        frequencies = 2.0 ** torch.arange(num_freqs, dtype=torch.float32)
        if include_pi:
            frequencies *= torch.pi
        self.register_buffer("frequencies", frequencies, persistent=False)
        self.out_dim = input_dim * (num_freqs * 2 + 1)

    def forward(self, x):
        embed = (x[..., None].contiguous() * self.frequencies.to(device=x.device, dtype=x.dtype)) \
            .view(*x.shape[:-1], -1)
        return torch.cat((x, embed.sin(), embed.cos()), dim=-1)


class MLPv(nn.Module):
    def __init__(self, *, width, expand_ratio=4):
        super().__init__()
        self.c_fc = nn.Linear(width, width * expand_ratio)
        self.c_proj = nn.Linear(width * expand_ratio, width)
        self.gelu = nn.GELU()

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class QKVMultiheadCrossAttention(nn.Module):
    def __init__(self, heads, width=None, qk_norm=False):
        super().__init__()
        self.heads = heads
        self.q_norm = nn.LayerNorm(width // heads, elementwise_affine=True, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(width // heads, elementwise_affine=True, eps=1e-6) if qk_norm else nn.Identity()

    def forward(self, q, kv):
        _, n_ctx, _ = q.shape
        bs, n_data, width = kv.shape
        attn_ch = width // self.heads // 2
        q = q.view(bs, n_ctx, self.heads, -1)
        kv = kv.view(bs, n_data, self.heads, -1)
        k, v = torch.split(kv, attn_ch, dim=-1)
        q = self.q_norm(q)
        k = self.k_norm(k)
        q, k, v = [t.permute(0, 2, 1, 3) for t in (q, k, v)]
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(bs, n_ctx, -1)


class MultiheadCrossAttention(nn.Module):
    def __init__(self, *, width, heads, qkv_bias=True, qk_norm=False):
        super().__init__()
        self.c_q = nn.Linear(width, width, bias=qkv_bias)
        self.c_kv = nn.Linear(width, width * 2, bias=qkv_bias)
        self.c_proj = nn.Linear(width, width)
        self.attention = QKVMultiheadCrossAttention(heads=heads, width=width, qk_norm=qk_norm)

    def forward(self, x, data):
        return self.c_proj(self.attention(self.c_q(x), self.c_kv(data)))


class ResidualCrossAttentionBlock(nn.Module):
    def __init__(self, *, width, heads, mlp_expand_ratio=4, qkv_bias=True, qk_norm=False):
        super().__init__()
        self.attn = MultiheadCrossAttention(width=width, heads=heads, qkv_bias=qkv_bias, qk_norm=qk_norm)
        self.ln_1 = nn.LayerNorm(width, elementwise_affine=True, eps=1e-6)
        self.ln_2 = nn.LayerNorm(width, elementwise_affine=True, eps=1e-6)
        self.ln_3 = nn.LayerNorm(width, elementwise_affine=True, eps=1e-6)
        self.mlp = MLPv(width=width, expand_ratio=mlp_expand_ratio)

    def forward(self, x, data):
        x = x + self.attn(self.ln_1(x), self.ln_2(data))
        return x + self.mlp(self.ln_3(x))


class QKVMultiheadAttention(nn.Module):
    def __init__(self, *, heads, width=None, qk_norm=False):
        super().__init__()
        self.heads = heads
        self.q_norm = nn.LayerNorm(width // heads, elementwise_affine=True, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(width // heads, elementwise_affine=True, eps=1e-6) if qk_norm else nn.Identity()

    def forward(self, qkv):
        bs, n_ctx, width = qkv.shape
        attn_ch = width // self.heads // 3
        qkv = qkv.view(bs, n_ctx, self.heads, -1)
        q, k, v = torch.split(qkv, attn_ch, dim=-1)
        q = self.q_norm(q)
        k = self.k_norm(k)
        q, k, v = [t.permute(0, 2, 1, 3) for t in (q, k, v)]
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(bs, n_ctx, -1)


class MultiheadAttention(nn.Module):
    def __init__(self, *, width, heads, qkv_bias, qk_norm=False):
        super().__init__()
        self.c_qkv = nn.Linear(width, width * 3, bias=qkv_bias)
        self.c_proj = nn.Linear(width, width)
        self.attention = QKVMultiheadAttention(heads=heads, width=width, qk_norm=qk_norm)

    def forward(self, x):
        return self.c_proj(self.attention(self.c_qkv(x)))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, *, width, heads, qkv_bias=True, qk_norm=False):
        super().__init__()
        self.attn = MultiheadAttention(width=width, heads=heads, qkv_bias=qkv_bias, qk_norm=qk_norm)
        self.ln_1 = nn.LayerNorm(width, elementwise_affine=True, eps=1e-6)
        self.mlp = MLPv(width=width)
        self.ln_2 = nn.LayerNorm(width, elementwise_affine=True, eps=1e-6)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, *, width, layers, heads, qkv_bias=True, qk_norm=False):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width=width, heads=heads, qkv_bias=qkv_bias,
                                                               qk_norm=qk_norm) for _ in range(layers)])

    def forward(self, x):
        for block in self.resblocks:
            x = block(x)
        return x


class CrossAttentionDecoder(nn.Module):
    def __init__(self, *, out_channels, fourier_embedder, width, heads, mlp_expand_ratio=4, enable_ln_post=True,
                 qkv_bias=True, qk_norm=False):
        super().__init__()
        self.enable_ln_post = enable_ln_post
        self.fourier_embedder = fourier_embedder
        self.query_proj = nn.Linear(self.fourier_embedder.out_dim, width)
        if not self.enable_ln_post:
            qk_norm = False
        self.cross_attn_decoder = ResidualCrossAttentionBlock(width=width, mlp_expand_ratio=mlp_expand_ratio,
                                                              heads=heads, qkv_bias=qkv_bias, qk_norm=qk_norm)
        if self.enable_ln_post:
            self.ln_post = nn.LayerNorm(width)
        self.output_proj = nn.Linear(width, out_channels)

    def forward(self, queries=None, latents=None):
        query_embeddings = self.query_proj(self.fourier_embedder(queries).to(latents.dtype))
        x = self.cross_attn_decoder(query_embeddings, latents)
        if self.enable_ln_post:
            x = self.ln_post(x)
        return self.output_proj(x)


class ShapeVAE(nn.Module):
    def __init__(self, *, embed_dim=64, width=1024, heads=16, num_decoder_layers=16, num_freqs=8, qkv_bias=False,
                 qk_norm=True, include_pi=False, geo_decoder_mlp_expand_ratio=4, geo_decoder_ln_post=True):
        super().__init__()
        self.fourier_embedder = FourierEmbedder(num_freqs=num_freqs, include_pi=include_pi)
        self.post_kl = nn.Linear(embed_dim, width)
        self.transformer = Transformer(width=width, layers=num_decoder_layers, heads=heads, qkv_bias=qkv_bias,
                                       qk_norm=qk_norm)
        self.geo_decoder = CrossAttentionDecoder(fourier_embedder=self.fourier_embedder, out_channels=1,
                                                 mlp_expand_ratio=geo_decoder_mlp_expand_ratio,
                                                 enable_ln_post=geo_decoder_ln_post, width=width, heads=heads,
                                                 qkv_bias=qkv_bias, qk_norm=qk_norm)

    def decode(self, latents, num_chunks=8000, octree_resolution=256, bounds=1.01):
        latents = self.post_kl(latents.movedim(-2, -1))
        latents = self.transformer(latents)
        # VanillaVolumeDecoder
        bounds = [-bounds, -bounds, -bounds, bounds, bounds, bounds]
        bbox_min, bbox_max = torch.tensor(bounds[:3]), torch.tensor(bounds[3:])
        x = torch.linspace(bbox_min[0], bbox_max[0], int(octree_resolution) + 1, dtype=torch.float32)
        y = torch.linspace(bbox_min[1], bbox_max[1], int(octree_resolution) + 1, dtype=torch.float32)
        z = torch.linspace(bbox_min[2], bbox_max[2], int(octree_resolution) + 1, dtype=torch.float32)
        [xs, ys, zs] = torch.meshgrid(x, y, z, indexing="ij")
        xyz = torch.stack((xs, ys, zs), axis=-1).to(latents.device, dtype=latents.dtype).contiguous().reshape(-1, 3)
        grid_size = [int(octree_resolution) + 1] * 3
        batch_logits = []
        for start in range(0, xyz.shape[0], num_chunks):
            chunk_queries = xyz[start: start + num_chunks, :]
            chunk_queries = chunk_queries.unsqueeze(0).repeat(latents.shape[0], 1, 1)
            batch_logits.append(self.geo_decoder(queries=chunk_queries, latents=latents))
        grid_logits = torch.cat(batch_logits, dim=1)
        grid_logits = grid_logits.view((latents.shape[0], *grid_size)).float()
        return grid_logits.movedim(-2, -1)


def vae_decode(vae: ShapeVAE, samples, **vae_options):
    """comfy/sd.py VAE.decode on a ShapeVAE: the default process_output, then movedim(1, -1) (the VOXEL's data)."""
    out = torch.clamp((vae.decode(samples, **vae_options).float() + 1.0) / 2.0, min=0.0, max=1.0)
    return out.movedim(1, -1)


# -- comfy_extras/nodes_hunyuan3d.py's multi-view embeds ----------------------------------------------------------
def get_1d_sincos_pos_embed_from_grid_torch(embed_dim, pos, device=None, dtype=torch.float32):
    omega = torch.arange(embed_dim // 2, device=device, dtype=dtype)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000 ** omega
    pos = pos.reshape(-1)
    out = torch.einsum("m,d->md", pos, omega)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def multiview(front=None, left=None, back=None, right=None):
    """Hunyuan3Dv2ConditioningMultiView.execute on last_hidden_state tensors: (positive, negative) embeds."""
    out, pos_embeds = [], None
    for i, e in enumerate([front, left, back, right]):
        if e is not None:
            if pos_embeds is None:
                pos_embeds = get_1d_sincos_pos_embed_from_grid_torch(e.shape[-1], torch.arange(4))
            out.append(e + pos_embeds[i].reshape(1, 1, -1))
    embeds = torch.cat(out, dim=1)
    return embeds, torch.zeros_like(embeds)


# -- comfy/clip_model.py ----------------------------------------------------------------------------------------
def clip_preprocess(image, size=224, mean=(0.48145466, 0.4578275, 0.40821073),
                    std=(0.26862954, 0.26130258, 0.27577711), crop=True):
    """image [B, H, W, C] in [0, 1] -> pixel values [B, 3, size, size]."""
    image = image[:, :, :, :3] if image.shape[3] > 3 else image
    mean = torch.tensor(mean, device=image.device, dtype=image.dtype)
    std = torch.tensor(std, device=image.device, dtype=image.dtype)
    image = image.movedim(-1, 1)
    if not (image.shape[2] == size and image.shape[3] == size):
        if crop:
            scale = (size / min(image.shape[2], image.shape[3]))
            scale_size = (round(scale * image.shape[2]), round(scale * image.shape[3]))
        else:
            scale_size = (size, size)
        image = torch.nn.functional.interpolate(image, size=scale_size, mode="bicubic", antialias=True)
        h = (image.shape[2] - size) // 2
        w = (image.shape[3] - size) // 2
        image = image[:, :, h:h + size, w:w + size]
    image = torch.clip((255. * image), 0, 255).round() / 255.0
    return (image - mean.view([3, 1, 1])) / std.view([3, 1, 1])
