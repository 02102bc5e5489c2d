"""ComfyUI's TripoSplat code written out as the independent reference for the tests (comfy/ldm/triposplat/model.py:
LatentSeqMMFlowModel and its parts; comfy/ldm/flux/math.py apply_rope; comfy/model_sampling.py
ModelSamplingDiscreteFlow's table; comfy/samplers.py simple_scheduler; comfy/k_diffusion/sampling.py
sample_dpmpp_2m, as test_comfy_samplers writes it out), with `operations` = torch.nn and optimized_attention = scaled_dot_product_attention."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from test_comfy_samplers import ref_dpmpp_2m    # comfy/k_diffusion/sampling.py's, written out there
from trellis2_reference import apply_rope       # comfy/ldm/flux/math.py's, written out there


def rms_norm(x, eps=1e-6):          # comfy.rmsnorm.rms_norm without a weight
    return F.rms_norm(x, (x.shape[-1],), eps=eps)


class MultiHeadRMSNorm(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.gamma = nn.Parameter(torch.empty(heads, dim))

    def forward(self, x):
        x = rms_norm(x)
        return x * self.gamma.to(x.dtype)


class RePo3DRotaryEmbedding(nn.Module):
    def __init__(self, model_channels, num_heads, head_dim, repo_hidden_ratio=0.125, max_freq=16.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        repo_hidden_size = int(model_channels * repo_hidden_ratio)
        self.norm = nn.LayerNorm(model_channels)
        self.gate_map = nn.Linear(model_channels, repo_hidden_size, bias=False)
        self.content_map = nn.Linear(model_channels, repo_hidden_size, bias=False)
        self.act = nn.SiLU()
        self.final_map = nn.Linear(repo_hidden_size, 3 * num_heads, bias=False)
        self.dim_0 = 2 * (head_dim // 6)
        self.dim_1 = 2 * (head_dim // 6)
        self.dim_2 = head_dim - self.dim_0 - self.dim_1
        freqs_list = []
        for d in [self.dim_0, self.dim_1, self.dim_2]:
            freqs_list.append(torch.linspace(1.0, float(max_freq), steps=d // 2, dtype=torch.float32))
        self.freqs_0 = nn.Parameter(freqs_list[0])
        self.freqs_1 = nn.Parameter(freqs_list[1])
        self.freqs_2 = nn.Parameter(freqs_list[2])

    def forward(self, hidden_states):
        h = self.norm(hidden_states)
        feat = self.act(self.gate_map(h)) * self.content_map(h)
        out = self.final_map(feat)
        B, L, _ = out.shape
        delta_pos = out.reshape(B, L, self.num_heads, 3)
        ang_0 = delta_pos[..., 0].unsqueeze(-1) * self.freqs_0.float() * torch.pi
        ang_1 = delta_pos[..., 1].unsqueeze(-1) * self.freqs_1.float() * torch.pi
        ang_2 = delta_pos[..., 2].unsqueeze(-1) * self.freqs_2.float() * torch.pi
        ang = torch.cat([ang_0, ang_1, ang_2], dim=-1).float()
        cos, sin = ang.cos(), ang.sin()
        return torch.stack([cos, -sin, sin, cos], dim=-1).reshape(*ang.shape, 2, 2)


class PcdAbsolutePositionEmbedder(nn.Module):
    def __init__(self, channels, in_channels=3, max_res=16, schedule="pow2"):
        super().__init__()
        self.channels = channels
        self.in_channels = in_channels
        self.max_res = max_res
        self.schedule = schedule
        self.freq_dim = channels // in_channels // 2

    def _freqs(self, device):
        if self.schedule == "pow2":
            freqs_2exp = torch.arange(self.max_res, dtype=torch.float32, device=device)
            res_dim = max(0, self.freq_dim - self.max_res)
            freqs_res = (torch.arange(res_dim, dtype=torch.float32, device=device) / max(res_dim, 1) * self.max_res
                         if res_dim > 0 else torch.empty(0, device=device))
            freqs = torch.cat([freqs_2exp, freqs_res], dim=0)[:self.freq_dim]
            return torch.pow(2.0, freqs) * 2.0
        logs = torch.linspace(0.0, float(self.max_res), steps=self.freq_dim, dtype=torch.float32, device=device)
        return torch.pow(2.0, logs)

    def forward(self, x):
        orig_dtype = x.dtype
        x = x.float()
        *dims, D = x.shape
        out = torch.outer(x.reshape(-1), self._freqs(x.device)) * torch.pi
        out = torch.cat([out.sin(), out.cos()], dim=-1).reshape(*dims, -1)
        if out.shape[-1] < self.channels:
            out = torch.cat([out, torch.zeros(*dims, self.channels - out.shape[-1],
                                              device=out.device, dtype=out.dtype)], dim=-1)
        return out.to(orig_dtype)


def attention(q, k, v):
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


class MLP(nn.Module):
    def __init__(self, in_channels, hidden_channels, out_channels):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden_channels), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden_channels, out_channels))

    def forward(self, x):
        return self.mlp(x)


class RopeMultiHeadAttention(nn.Module):
    def __init__(self, channels, num_heads, qkv_bias=True, qk_rms_norm=False, use_rope=False):
        super().__init__()
        self.channels = channels
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.qk_rms_norm = qk_rms_norm
        self.use_rope = use_rope
        self.qkv = nn.Linear(channels, channels * 3, bias=qkv_bias)
        if self.qk_rms_norm:
            self.q_norm = MultiHeadRMSNorm(self.head_dim, num_heads)
            self.k_norm = MultiHeadRMSNorm(self.head_dim, num_heads)
        self.out = nn.Linear(channels, channels)

    def forward(self, x, rope_emb=None):
        B, L, C = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(2)
        if self.use_rope:
            q, k = apply_rope(q, k, rope_emb)
        if self.qk_rms_norm:
            q = self.q_norm(q)
            k = self.k_norm(k)
        h = attention(q, k, v)
        return self.out(h.reshape(B, L, C))


class UnifiedTransformerBlock(nn.Module):
    def __init__(self, channels, num_heads, mlp_ratio=4.0, use_rope=False, qk_rms_norm=False, qkv_bias=True,
                 modulation=True, share_mod=False):
        super().__init__()
        self.modulation = modulation
        self.share_mod = share_mod
        self.norm1 = nn.LayerNorm(channels, elementwise_affine=not modulation, eps=1e-6)
        self.norm2 = nn.LayerNorm(channels, elementwise_affine=not modulation, eps=1e-6)
        self.attn = RopeMultiHeadAttention(channels, num_heads=num_heads, qkv_bias=qkv_bias, use_rope=use_rope,
                                           qk_rms_norm=qk_rms_norm)
        self.mlp = MLP(channels, int(channels * mlp_ratio), channels)
        if modulation:
            if not share_mod:
                self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(channels, 6 * channels, bias=True))
            self.shift_table = nn.Parameter(torch.empty(1, 6 * channels))

    def forward(self, x, mod=None, rotary_emb=None):
        if self.modulation:
            if not self.share_mod:
                mod = self.adaLN_modulation(mod)
            mod = mod + self.shift_table.to(mod.dtype)
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
            h = torch.addcmul(shift_msa.unsqueeze(1), self.norm1(x), 1 + scale_msa.unsqueeze(1))
            x = torch.addcmul(x, self.attn(h, rope_emb=rotary_emb), gate_msa.unsqueeze(1))
            h = torch.addcmul(shift_mlp.unsqueeze(1), self.norm2(x), 1 + scale_mlp.unsqueeze(1))
            x = torch.addcmul(x, self.mlp(h), gate_mlp.unsqueeze(1))
        else:
            x = x + self.attn(self.norm1(x), rope_emb=rotary_emb)
            x = x + self.mlp(self.norm2(x))
        return x


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size, frequency_embedding_size=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size, bias=True), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size, bias=True))
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.exp(-np.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half).to(
            device=t.device)
        args = t[:, None].float() * freqs[None]
        embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
        return embedding

    def forward(self, t):
        emb = self.timestep_embedding(t, self.frequency_embedding_size)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class LatentSeqMMFlowModel(nn.Module):
    def __init__(self, q_token_length=8192, in_channels=16, model_channels=1024, cond_channels=1280, out_channels=16,
                 num_blocks=24, num_refiner_blocks=2, num_heads=None, num_head_channels=64, cam_channels=5,
                 cond2_channels=128, mlp_ratio=4, share_mod=True, qk_rms_norm=True):
        super().__init__()
        self.q_token_length = q_token_length
        self.num_heads = num_heads or model_channels // num_head_channels
        self.share_mod = share_mod
        self.t_embedder = TimestepEmbedder(model_channels)
        if share_mod:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(model_channels, 6 * model_channels, bias=True))
        self.input_layer = nn.Linear(in_channels, model_channels)
        self.cond_embedder = nn.Linear(cond_channels, model_channels)
        self.cond_embedder2 = nn.Linear(cond2_channels, model_channels) if cond2_channels is not None else None
        sobol_seq = torch.quasirandom.SobolEngine(dimension=3, scramble=True, seed=123).draw(q_token_length)
        pos_emb = PcdAbsolutePositionEmbedder(model_channels)(sobol_seq.unsqueeze(0))
        self.register_buffer("pos_emb", pos_emb, persistent=False)
        repo_kwargs = dict(num_heads=self.num_heads, head_dim=num_head_channels)
        self.noise_repo_layers = nn.ModuleList(
            [RePo3DRotaryEmbedding(model_channels, **repo_kwargs) for _ in range(num_refiner_blocks)])
        self.context_repo_layers = nn.ModuleList(
            [RePo3DRotaryEmbedding(model_channels, **repo_kwargs) for _ in range(num_refiner_blocks)])
        self.repo_layers = nn.ModuleList(
            [RePo3DRotaryEmbedding(model_channels, **repo_kwargs) for _ in range(num_blocks)])
        block_kwargs = dict(num_heads=self.num_heads, mlp_ratio=mlp_ratio, use_rope=True, qk_rms_norm=qk_rms_norm)
        self.noise_refiner = nn.ModuleList(
            [UnifiedTransformerBlock(model_channels, modulation=True, share_mod=share_mod, **block_kwargs)
             for _ in range(num_refiner_blocks)])
        self.context_refiner = nn.ModuleList(
            [UnifiedTransformerBlock(model_channels, modulation=False, **block_kwargs)
             for _ in range(num_refiner_blocks)])
        self.cam_refiner = MLP(cam_channels, model_channels, model_channels)
        self.blocks = nn.ModuleList(
            [UnifiedTransformerBlock(model_channels, modulation=True, share_mod=share_mod, **block_kwargs)
             for _ in range(num_blocks)])
        self.shift_table = nn.Parameter(torch.empty(1, 2, model_channels))
        self.out_layer = nn.Linear(model_channels, out_channels)
        self.cam_out_layer = nn.Linear(model_channels, cam_channels)

    def forward(self, x, t, context=None, ref_latents=None):
        z, camera = x[0], x[1]
        feat1 = context
        h_x = self.input_layer(z)
        h_cond = self.cond_embedder(feat1)
        if ref_latents is not None and self.cond_embedder2 is not None:
            feat2 = ref_latents[0].flatten(2).transpose(1, 2)
            feat2 = F.pad(feat2, (0, 0, feat1.shape[1] - feat2.shape[1], 0))
            h_cond = h_cond + self.cond_embedder2(feat2.to(h_cond.dtype))
        t_emb = self.t_embedder(t)
        t_mod = self.adaLN_modulation(t_emb) if self.share_mod else t_emb
        h_x = h_x + self.pos_emb.to(z)
        for i, block in enumerate(self.noise_refiner):
            h_x = block(h_x, mod=t_mod, rotary_emb=self.noise_repo_layers[i](h_x))
        for i, block in enumerate(self.context_refiner):
            h_cond = block(h_cond, mod=None, rotary_emb=self.context_repo_layers[i](h_cond))
        cam = camera.to(z)
        h_cam = self.cam_refiner(cam)
        h = torch.cat([h_x, h_cond, h_cam], dim=1)
        for i, block in enumerate(self.blocks):
            h = block(h, mod=t_mod, rotary_emb=self.repo_layers[i](h))
        h_x = F.layer_norm(h[:, :z.shape[1]].float(), h.shape[-1:]).to(z)
        h_cam = F.layer_norm(h[:, -cam.shape[1]:].float(), h.shape[-1:]).to(z)
        shift, scale = (self.shift_table.to(t_emb.dtype) + t_emb.unsqueeze(1)).chunk(2, dim=1)
        scale = 1 + scale
        h_x = torch.addcmul(shift, h_x, scale)
        h_cam = torch.addcmul(shift, h_cam, scale)
        return self.out_layer(h_x), self.cam_out_layer(h_cam)


# -- sampling as KSampler runs TripoSplat (ModelType.FLOW, sampling_settings shift 3.0) --------------------------
def flow_table(shift=3.0, multiplier=1000, timesteps=1000):
    """ModelSamplingDiscreteFlow.sigmas: time_snr_shift(shift, t / multiplier) at t = (1..1000) / 1000 * multiplier"""
    t = (torch.arange(1, timesteps + 1, 1) / timesteps) * multiplier / multiplier
    return shift * t / (1 + (shift - 1) * t)


def simple_scheduler(sigmas, steps):
    sigs = []
    ss = len(sigmas) / steps
    for x in range(steps):
        sigs += [float(sigmas[-(1 + int(x * ss))])]
    sigs += [0.0]
    return torch.FloatTensor(sigs)


def ksampler(flow, positive, negative, seed, steps, cfg, shift=3.0, tokens=8192):
    """KSampler on TripoSplatConditioning's nested latent (zeros of [1, tokens, 16] and [1, 1, 5]): prepare_noise
    draws each stream's noise in turn from one generator; the flow model's (CONST) x0 = x - sigma out per stream;
    CFG uncond + (cond - uncond) cfg. positive / negative: (feature1, reference latent)."""
    g = torch.manual_seed(seed)
    noise = [torch.randn([1, tokens, 16], generator=g), torch.randn([1, 1, 5], generator=g)]
    sigmas = simple_scheduler(flow_table(shift), steps)
    cut = noise[0].numel()
    # the sampler's updates are elementwise on a NestedTensor: here on the two streams laid end to end
    streams = lambda flat: [flat[:cut].reshape(noise[0].shape), flat[cut:].reshape(noise[1].shape)]  # noqa: E731

    def denoise(flat, sigma):
        x = streams(flat)
        outs = []
        for feat, ref in (positive, negative):
            out = flow(x, (sigma * 1000).reshape(1), context=feat, ref_latents=[ref])
            outs.append(torch.cat([(a - sigma * o).flatten() for a, o in zip(x, out)]))
        cond, uncond = outs
        return uncond + (cond - uncond) * cfg
    x = sigmas[0] * torch.cat([n.flatten() for n in noise])       # CONST noise_scaling on a zero latent
    return streams(ref_dpmpp_2m(denoise, x, sigmas))
