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


# -- the Gaussian decoder: comfy/ldm/triposplat/vae.py and gaussian.py, with the decoders' sizes as arguments (ComfyUI
# builds them at 1024 wide, 16 heads, 4 octree and 16 Gaussian blocks) -------------------------------------------
PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53]


def radical_inverse(base, n):
    val = 0
    inv_base = 1.0 / base
    inv_base_n = inv_base
    while n > 0:
        digit = n % base
        val += digit * inv_base_n
        n //= base
        inv_base_n *= inv_base
    return val


def halton_sequence(dim, n):
    return [radical_inverse(PRIMES[dim], n) for dim in range(dim)]


def hammersley_sequence(dim, n, num_samples):
    return [n / num_samples] + halton_sequence(dim - 1, n)


def sample_probs(probs, counts):
    batch_shape = counts.shape
    R = counts.numel()
    P = probs.size(-1)
    device = probs.device
    probs = probs.reshape(R, P).to(torch.float32).clamp_min(0)
    counts = counts.reshape(R).to(device=device, dtype=torch.long)
    row_sums = probs.sum(1, keepdim=True)
    probs = torch.where(row_sums == 0, probs.new_tensor(1.0 / P), probs / row_sums.clamp_min(1))
    cdf = probs.cumsum(dim=1).clamp(max=1.0 - 1e-12)
    Nmax = int(counts.max())
    if Nmax == 0:
        return counts.new_zeros(*batch_shape, P)
    cnt = counts.clamp_min(1).float().unsqueeze(1)
    grid = torch.arange(Nmax, device=device, dtype=torch.float32).unsqueeze(0)
    u = (torch.rand(R, 1, device=device) + grid) / cnt
    idx = torch.searchsorted(cdf, u.clamp(max=1.0 - 1e-12)).clamp_max(P - 1)
    weight = (grid < counts.unsqueeze(1)).to(cdf.dtype)
    out = torch.zeros(R, P, dtype=torch.float32, device=device)
    out.scatter_add_(1, idx, weight)
    return out.to(torch.long).view(*batch_shape, P)


class MultiHeadAttention(nn.Module):
    def __init__(self, channels, num_heads, ctx_channels=None, type="self", qkv_bias=True, qk_rms_norm=False):
        super().__init__()
        self.channels = channels
        self.head_dim = channels // num_heads
        self.ctx_channels = ctx_channels if ctx_channels is not None else channels
        self.num_heads = num_heads
        self._type = type
        self.qk_rms_norm = qk_rms_norm
        if self._type == "self":
            self.to_qkv = nn.Linear(channels, channels * 3, bias=qkv_bias)
        else:
            self.to_q = nn.Linear(channels, channels, bias=qkv_bias)
            self.to_kv = nn.Linear(self.ctx_channels, channels * 2, bias=qkv_bias)
        if self.qk_rms_norm:
            self.q_rms_norm = MultiHeadRMSNorm(self.head_dim, num_heads)
            self.k_rms_norm = MultiHeadRMSNorm(self.head_dim, num_heads)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x, context=None):
        B, L, C = x.shape
        if self._type == "self":
            q, k, v = self.to_qkv(x).reshape(B, L, 3, self.num_heads, -1).unbind(dim=2)
        else:
            Lkv = context.shape[1]
            q = self.to_q(x).reshape(B, L, self.num_heads, -1)
            k, v = self.to_kv(context).reshape(B, Lkv, 2, self.num_heads, -1).unbind(dim=2)
        if self.qk_rms_norm:
            q = self.q_rms_norm(q)
            k = self.k_rms_norm(k)
        h = attention(q, k, v)
        return self.to_out(h.reshape(B, L, -1))


class LevelEmbedder(nn.Module):
    def __init__(self, hidden_size, frequency_embedding_size=256, max_period=1024):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size, bias=True), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size, bias=True))
        self.frequency_embedding_size = frequency_embedding_size
        self.max_period = max_period

    @staticmethod
    def level_embedding(t, dim, max_period=1024):
        half = dim // 2
        freqs = torch.exp(-np.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half).to(
            device=t.device)
        args = t[:, None].float() * freqs[None] * 2 * torch.pi
        embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if dim % 2:
            embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
        return embedding

    def forward(self, t):
        emb = self.level_embedding(t, self.frequency_embedding_size, self.max_period)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class ModulatedTransformerCrossOnlyBlock(nn.Module):
    def __init__(self, channels, ctx_channels, num_heads, mlp_ratio=4.0, share_mod=False, qk_rms_norm_cross=True,
                 qkv_bias=True):
        super().__init__()
        self.share_mod = share_mod
        self.norm1 = nn.LayerNorm(channels, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(channels, elementwise_affine=False, eps=1e-6)
        self.cross_attn = MultiHeadAttention(channels, ctx_channels=ctx_channels, num_heads=num_heads, type="cross",
                                             qkv_bias=qkv_bias, qk_rms_norm=qk_rms_norm_cross)
        self.mlp = MLP(channels, int(channels * mlp_ratio), channels)
        if not share_mod:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(channels, 6 * channels, bias=True))

    def forward(self, x, mod, context):
        if self.share_mod:
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        else:
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(mod).chunk(6, dim=1)
        h = torch.addcmul(shift_msa.unsqueeze(1), self.norm1(x), 1 + scale_msa.unsqueeze(1))
        x = torch.addcmul(x, self.cross_attn(h, context), gate_msa.unsqueeze(1))
        h = torch.addcmul(shift_mlp.unsqueeze(1), self.norm2(x), 1 + scale_mlp.unsqueeze(1))
        x = torch.addcmul(x, self.mlp(h), gate_mlp.unsqueeze(1))
        return x


class OctreeProbabilityFixedlenDecoder(nn.Module):
    def __init__(self, model_channels=1024, cond_channels=16, num_blocks=4, num_heads=16, mlp_ratio=4.0,
                 share_mod=True, qk_rms_norm_cross=True):
        super().__init__()
        self.share_mod = share_mod
        self.input_layer = nn.Linear(model_channels, model_channels)
        self.l_embedder = LevelEmbedder(model_channels)
        if share_mod:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(model_channels, 6 * model_channels, bias=True))
        self.blocks = nn.ModuleList([
            ModulatedTransformerCrossOnlyBlock(model_channels, ctx_channels=cond_channels, num_heads=num_heads,
                                               mlp_ratio=mlp_ratio, qk_rms_norm_cross=qk_rms_norm_cross,
                                               share_mod=share_mod) for _ in range(num_blocks)])
        self.out_proj = nn.Linear(model_channels, 8)
        self.in_proj = nn.Linear(3, model_channels)
        self.pos_embedder = PcdAbsolutePositionEmbedder(channels=model_channels, in_channels=3, max_res=10,
                                                        schedule="log2")

    def forward(self, x, l, cond):
        d = next(self.parameters()).dtype
        B, L, _ = x.shape
        h = self.in_proj(x.to(d)) + self.pos_embedder(x.reshape(-1, 3)).reshape(B, L, -1).to(d)
        h = self.input_layer(h)
        l_emb = self.l_embedder(l)
        if self.share_mod:
            l_emb = self.adaLN_modulation(l_emb)
        cond = cond.to(d)
        for block in self.blocks:
            h = block(h, l_emb, cond)
        h = F.layer_norm(h.float(), h.shape[-1:]).to(d)
        logits = self.out_proj(h)
        return {"logits": logits, "probs": torch.softmax(logits, dim=-1)}

    @staticmethod
    def sample(model, cond, num_points, level, temperature=1.0):
        B = cond.shape[0]
        device = cond.device
        child_offset = torch.tensor([[i, j, k] for k in [0, 1] for j in [0, 1] for i in [0, 1]],
                                    dtype=torch.long, device=device)
        prev_coords_int = torch.zeros(B, 1, 3, dtype=torch.long, device=device)
        prev_counts = torch.full((B, 1), num_points, dtype=torch.long, device=device)
        prev_log_probs = torch.zeros(B, 1, dtype=torch.float32, device=device)
        batch_indices_range = torch.arange(B, device=device).unsqueeze(1)
        for lv in range(1, level + 1):
            res_p = 1 << (lv - 1)
            res = 1 << lv
            parent_coords_norm = (prev_coords_int.to(torch.float32) + 0.5) / res_p
            res_tensor = torch.full((B,), res, dtype=torch.long, device=device)
            pred_logits = model(parent_coords_norm, res_tensor, cond)["logits"] / temperature
            pred_probs = torch.softmax(pred_logits, dim=-1)
            pred_log_probs = torch.log_softmax(pred_logits, dim=-1)
            sampled = sample_probs(pred_probs, prev_counts).flatten(1, 2)
            pred_log_probs = pred_log_probs.flatten(1, 2)
            prev_log_probs_expanded = prev_log_probs.repeat_interleave(8, dim=1)
            child_coords_int = (prev_coords_int[:, :, None, :] * 2 + child_offset[None, None, :, :]).flatten(1, 2)
            mask = sampled > 0
            max_valid = mask.sum(dim=1).max().item()
            scatter_indices = mask.cumsum(dim=1) - 1
            valid_scatter_indices = scatter_indices[mask]
            valid_batch_indices = batch_indices_range.expand_as(mask)[mask]
            next_prev_coords_int = torch.zeros(B, max_valid, 3, dtype=child_coords_int.dtype, device=device)
            next_prev_coords_int[valid_batch_indices, valid_scatter_indices] = child_coords_int[mask]
            next_prev_counts = torch.zeros(B, max_valid, dtype=sampled.dtype, device=device)
            next_prev_counts[valid_batch_indices, valid_scatter_indices] = sampled[mask]
            next_prev_log_probs = torch.zeros(B, max_valid, dtype=prev_log_probs.dtype, device=device)
            next_prev_log_probs[valid_batch_indices, valid_scatter_indices] = (
                prev_log_probs_expanded + pred_log_probs)[mask]
            prev_coords_int = next_prev_coords_int
            prev_counts = next_prev_counts
            prev_log_probs = next_prev_log_probs
        res = 1 << level
        prev_log_probs = torch.repeat_interleave(prev_log_probs.flatten(0, 1), prev_counts.flatten(0, 1),
                                                 dim=0).reshape(B, num_points)
        coords_int = torch.repeat_interleave(prev_coords_int.flatten(0, 1), prev_counts.flatten(0, 1),
                                             dim=0).reshape(B, num_points, -1)
        coords_norm = (coords_int.to(torch.float32) + torch.rand_like(coords_int, dtype=torch.float32)) / res
        return {"points": coords_norm, "log_probs": prev_log_probs}


class TransformerCrossBlock(nn.Module):
    def __init__(self, channels, ctx_channels, num_heads, mlp_ratio=4.0, qk_rms_norm=True, qk_rms_norm_cross=True,
                 qkv_bias=True):
        super().__init__()
        self.norm1 = nn.LayerNorm(channels, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(channels, elementwise_affine=True, eps=1e-6)
        self.norm3 = nn.LayerNorm(channels, elementwise_affine=False, eps=1e-6)
        self.self_attn = MultiHeadAttention(channels, num_heads=num_heads, type="self", qkv_bias=qkv_bias,
                                            qk_rms_norm=qk_rms_norm)
        self.cross_attn = MultiHeadAttention(channels, ctx_channels=ctx_channels, num_heads=num_heads, type="cross",
                                             qkv_bias=qkv_bias, qk_rms_norm=qk_rms_norm_cross)
        self.mlp = MLP(channels, int(channels * mlp_ratio), channels)

    def forward(self, x, context):
        x = x + self.self_attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), context)
        x = x + self.mlp(self.norm3(x))
        return x


class ElasticGaussianFixedlenDecoder(nn.Module):
    def __init__(self, in_channels=3, model_channels=1024, cond_channels=16, num_blocks=16, num_heads=16,
                 mlp_ratio=4.0, qk_rms_norm=True, qk_rms_norm_cross=True):
        super().__init__()
        self.rep_config = dict(
            lr=dict(_xyz=1.0, _features_dc=1.0, _opacity=1.0, _scaling=1.0, _rotation=0.1),
            perturb_offset=True, perturbe_size=1.5, offset_scale=0.05, num_gaussians=32,
            filter_kernel_size_3d=0.0009, scaling_bias=0.004, opacity_bias=0.1, scaling_activation="softplus")
        self.out_channels = self._calc_layout()
        self.model_channels = model_channels
        self.input_layer = nn.Linear(model_channels, model_channels)
        self.blocks = nn.ModuleList([
            TransformerCrossBlock(model_channels, ctx_channels=cond_channels, num_heads=num_heads,
                                  mlp_ratio=mlp_ratio, qk_rms_norm=qk_rms_norm, qk_rms_norm_cross=qk_rms_norm_cross)
            for _ in range(num_blocks)])
        self.in_proj = nn.Linear(in_channels, model_channels)
        self.pos_embedder = PcdAbsolutePositionEmbedder(channels=model_channels, in_channels=3, max_res=10,
                                                        schedule="log2")
        self.out_proj = nn.Linear(model_channels, self.out_channels)
        self._build_perturbation()

    def _calc_layout(self):
        ng = self.rep_config['num_gaussians']
        self.layout = {
            '_xyz': {'shape': (ng, 3), 'size': ng * 3},
            '_features_dc': {'shape': (ng, 1, 3), 'size': ng * 3},
            '_scaling': {'shape': (ng, 3), 'size': ng * 3},
            '_rotation': {'shape': (ng, 4), 'size': ng * 4},
            '_opacity': {'shape': (ng, 1), 'size': ng},
        }
        self.layout['_offset_scale'] = {'shape': (ng, 1), 'size': ng}
        start = 0
        for k, v in self.layout.items():
            v['range'] = (start, start + v['size'])
            start += v['size']
        return start

    def _build_perturbation(self):
        ng = self.rep_config['num_gaussians']
        perturbation = torch.tensor([hammersley_sequence(3, i, ng) for i in range(ng)]).float()
        perturbation = torch.atanh((perturbation * 2 - 1) / self.rep_config['perturbe_size'])
        self.register_buffer('points_offset_perturbation', perturbation)
        base = torch.tensor(self.rep_config['offset_scale'])
        self.register_buffer('base_offset_scale', torch.log(torch.exp(base) - 1.0))

    def _get_offset(self, h):
        B = h.shape[0]
        r = self.layout['_offset_scale']['range']
        _offset_scale = F.softplus(h[:, :, r[0]:r[1]].reshape(B, -1, *self.layout['_offset_scale']['shape'])
                                   + self.base_offset_scale.to(h.dtype))
        r = self.layout['_xyz']['range']
        offset = h[:, :, r[0]:r[1]].reshape(B, -1, *self.layout['_xyz']['shape'])
        offset = offset * self.rep_config['lr']['_xyz']
        if self.rep_config['perturb_offset']:
            offset = offset + self.points_offset_perturbation.to(offset.dtype)
        offset = torch.tanh(offset) * 0.5 * self.rep_config['perturbe_size']
        offset = offset * _offset_scale
        return offset

    def forward(self, x=None, cond=None):
        pcd = x["points"]
        d = next(self.parameters()).dtype
        B, L, _ = pcd.shape
        h = self.in_proj(pcd.to(d)) + self.pos_embedder(pcd.reshape(-1, 3)).reshape(B, L, -1).to(d)
        h = self.input_layer(h)
        cond = cond.to(d)
        for block in self.blocks:
            h = block(h, cond)
        h = F.layer_norm(h.float(), h.shape[-1:]).to(h.dtype)
        return {"features": self.out_proj(h)}


def _quat_to_matrix(q):
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)


def _matrix_to_quat(R):
    """gaussian.py's, its trace > -1 branch (the others: rotations of half a turn, which random ones are not)"""
    trace = R[:, 0, 0] + R[:, 1, 1] + R[:, 2, 2]
    q = torch.zeros((R.shape[0], 4), dtype=R.dtype, device=R.device)
    s = torch.sqrt(torch.clamp(trace + 1, min=0)) * 2
    q[:, 0] = 0.25 * s
    denom = torch.where(s != 0, s, torch.ones_like(s))
    q[:, 1] = (R[:, 2, 1] - R[:, 1, 2]) / denom
    q[:, 2] = (R[:, 0, 2] - R[:, 2, 0]) / denom
    q[:, 3] = (R[:, 1, 0] - R[:, 0, 1]) / denom
    return q / torch.linalg.norm(q, dim=-1, keepdim=True)


def render_tensors(gs, points, features, i=0):
    """build_gaussian_models' i-th GaussianModel (aabb -0.5..1, softplus scaling) through render_tensors:
    (positions, scales, rotations wxyz, opacities [N, 1], sh [N, 1, 3])"""
    cfg = gs.rep_config
    offset = gs._get_offset(features)
    h = features[i]
    x = points[i, :, None, :]
    store = {}
    for k, v in gs.layout.items():
        if k == '_xyz':
            store[k] = (offset[i] + x).flatten(0, 1)
        elif k != '_offset_scale':
            store[k] = h[:, v['range'][0]:v['range'][1]].reshape(-1, *v['shape']).flatten(0, 1) * cfg['lr'][k]
    xyz = store['_xyz'] * 1.0 + (-0.5)
    inv_softplus = lambda y: y + torch.log(-torch.expm1(-y))  # noqa: E731
    s = F.softplus(store['_scaling'] + inv_softplus(torch.tensor(cfg['scaling_bias'])))
    scaling = torch.sqrt(torch.square(s) + cfg['filter_kernel_size_3d'] ** 2)
    ob = torch.tensor(cfg['opacity_bias'])
    opacity = torch.sigmoid(store['_opacity'] + torch.log(ob / (1 - ob)))
    rots_bias = torch.zeros(4)
    rots_bias[0] = 1
    rotation = store['_rotation'] + rots_bias[None, :]
    T = torch.as_tensor([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float32)
    xyz = xyz @ T.T
    rotation = _matrix_to_quat(torch.matmul(T, _quat_to_matrix(rotation)))
    rotation = rotation / torch.linalg.norm(rotation, dim=-1, keepdim=True)
    return xyz, scaling, rotation, opacity, store['_features_dc']


def vae_decode_triposplat(octree, gs, latent_tokens, num_gaussians, seed, level=8):
    """VAEDecodeTripoSplat.execute with OctreeGaussianDecoder.decode on latent tokens [1, L, 16]"""
    n = max(32768, min(1048576, int(num_gaussians)))
    if n % 32 != 0:
        n = round(n / 32) * 32
    torch.manual_seed(seed)
    num_decoder_tokens = max(1, n // 32)
    points_pred = OctreeProbabilityFixedlenDecoder.sample(octree, latent_tokens, num_points=num_decoder_tokens,
                                                          level=level, temperature=1.0)
    pred = gs(x=points_pred, cond=latent_tokens)
    return render_tensors(gs, points_pred["points"], pred["features"])
