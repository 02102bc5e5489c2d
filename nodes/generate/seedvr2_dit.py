"""SeedVR2's restorer: ByteDance's NaDiT, in ComfyUI's key names (diffusion_models/seedvr2_3b_* and seedvr2_7b_*,
bf16, fp16, fp8 or int8_convrot: weights.load_weights reads them all into plain matrices).

It denoises a video latent [B, 16, T, H, W] read beside its condition [B, 17, T, H, W] (the low-quality clip's
latent and a plane of ones, condition.seedvr2), attending to a fixed prompt embedding the file carries
(positive_conditioning [58, 5120], negative_conditioning [64, 5120]) and predicting the flow velocity (noise - x0).

Both sizes take the latent in 1x2x2 patches and attend within windows of the patched grid, sized as a 720p grid cut
(4, 3, 3) would be and alternately shifted by half a window; the prompt's tokens join every window and their outputs
are averaged over the windows. They differ so (read from the file, not its width):
  3B: text and video weights of their own for the first mm_layers blocks (.vid / .txt), shared after (.all);
      SwiGLU feed-forwards; RoPE over text (positions 0..l-1) and video (time from l, height, width: window-local);
      the last block's text skips its feed-forward and modulation; an RMS norm and modulation before the output
      (vid_out_norm, vid_out_ada), which reuses each block's attention shift and scale (ComfyUI's and ByteDance's
      cache hands vid_out_ada the attention slot of the two-layer modulation).
  7B: .vid / .txt weights in every block; GELU feed-forwards; RoPE on video only, on positions spread over [-1, 1]
      of each window's axes; no output norm."""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError

LATENT = 16                 # the VAE's latent channels
REF_AREA = 45 * 80          # the patched grid of a 720p picture, by which window sizes are scaled
MAX_WINDOW_T = 30           # latent frames a window's length is cut from
WINDOWS = (4, 3, 3)         # windows per (time, height, width) of the 720p grid
ROPE_THETA = 10000.0
PIXEL_ROPE_MAX = 256        # the 7B's pixel RoPE: frequencies pi .. pi * 128
TIME_DIM = 256              # the timestep's sinusoidal embedding
NORM_EPS = 1e-5


def window_slices(t: int, h: int, w: int, shifted: bool) -> List[Tuple[slice, slice, slice]]:
    """The windows of a (t, h, w) patched grid, width-major, time fastest (the order attention sequences take)."""
    nt_, nh_, nw_ = WINDOWS
    scale = math.sqrt(REF_AREA / (h * w))
    wh, ww = math.ceil(round(h * scale) / nh_), math.ceil(round(w * scale) / nw_)
    wt = math.ceil(min(t, MAX_WINDOW_T) / nt_)

    def cuts(size: int, win: int) -> List[slice]:
        if not shifted:
            return [slice(i * win, min((i + 1) * win, size)) for i in range(math.ceil(size / win))
                    if min((i + 1) * win, size) > i * win]
        s = 0.5 if win < size else 0
        n = math.ceil((size - s) / win) + 1 if s else 1
        out = [slice(max(int((i - s) * win), 0), min(int((i - s + 1) * win), size)) for i in range(n)]
        return [c for c in out if c.stop > c.start]

    return [(ct, chh, cw) for cw in cuts(w, ww) for chh in cuts(h, wh) for ct in cuts(t, wt)]


def rms(x: torch.Tensor, weight=None, eps: float = NORM_EPS) -> torch.Tensor:
    out = x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype)
    return out if weight is None else out * weight.to(x.dtype)


def rotate(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x [N, heads, d] with each pair (2i, 2i+1) of its first 2 * angles.shape[-1] features rotated by angles [N, k]
    (in float32); the features past them unchanged."""
    k = angles.shape[-1]
    head = x[..., :2 * k].float().unflatten(-1, (k, 2))
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]
    a, b = head[..., 0], head[..., 1]
    turned = torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2).to(x.dtype)
    return torch.cat((turned, x[..., 2 * k:]), -1)


def axial_angles(freqs: torch.Tensor, t_pos, h_pos, w_pos) -> torch.Tensor:
    """[t*h*w, 3k]: each axis's positions times the frequencies, time's then height's then width's."""
    t, h, w = len(t_pos), len(h_pos), len(w_pos)
    parts = [(pos[:, None] * freqs[None]).reshape(shape + (-1,)).expand(t, h, w, -1)
             for pos, shape in ((t_pos, (t, 1, 1)), (h_pos, (1, h, 1)), (w_pos, (1, 1, w)))]
    return torch.cat(parts, -1).reshape(t * h * w, -1)


class Linear(nn.Linear):
    """nn.Linear in the input's dtype (the file's weights may be kept in another)."""

    def forward(self, x):
        return F.linear(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


class Pair(nn.Module):
    """A layer for the video and text streams: one each (.vid / .txt) or one shared (.all)."""

    def __init__(self, shared: bool, make):
        super().__init__()
        if shared:
            self.all = make()
        else:
            self.vid, self.txt = make(), make()

    def parts(self):
        return (self.all, self.all) if hasattr(self, "all") else (self.vid, self.txt)


class Ada(nn.Module):
    """AdaSingle's learnt shift / scale / gate for the attention and feed-forward, added to the timestep's."""

    def __init__(self, dim: int, layers=("attn", "mlp")):
        super().__init__()
        for layer in layers:
            setattr(self, f"{layer}_shift", nn.Parameter(torch.zeros(dim)))
            setattr(self, f"{layer}_scale", nn.Parameter(torch.zeros(dim)))
            if layer != "out":
                setattr(self, f"{layer}_gate", nn.Parameter(torch.zeros(dim)))

    def modulate(self, x, mod, layer: str):
        """x * (scale) + (shift); mod [D, 3]: the timestep's (shift, scale, gate) of this layer."""
        scale = mod[:, 1] + getattr(self, f"{layer}_scale").to(x.dtype)
        return x * scale + (mod[:, 0] + getattr(self, f"{layer}_shift").to(x.dtype))

    def gate(self, x, mod, layer: str):
        return x * (mod[:, 2] + getattr(self, f"{layer}_gate").to(x.dtype))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj_in_gate = Linear(dim, hidden, bias=False)
        self.proj_in = Linear(dim, hidden, bias=False)
        self.proj_out = Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.proj_out(F.silu(self.proj_in_gate(x)) * self.proj_in(x))


class GeluMLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj_in = Linear(dim, hidden)
        self.proj_out = Linear(hidden, dim)

    def forward(self, x):
        return self.proj_out(F.gelu(self.proj_in(x), approximate="tanh"))


class Rope(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.register_buffer("freqs", torch.zeros(n))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, shared: bool, rope_freqs: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.proj_qkv = Pair(shared, lambda: Linear(dim, 3 * heads * head_dim, bias=False))
        self.proj_out = Pair(shared, lambda: Linear(heads * head_dim, dim))
        self.norm_q = Pair(shared, lambda: RMSWeight(head_dim))
        self.norm_k = Pair(shared, lambda: RMSWeight(head_dim))
        self.rope = nn.Module()
        self.rope.rope = Rope(rope_freqs)


class RMSWeight(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, hidden: int, shared: bool, swiglu: bool,
                 rope_freqs: int, text_stops: bool):
        super().__init__()
        self.attn = Attention(dim, heads, head_dim, shared, rope_freqs)
        mlp = (lambda: SwiGLU(dim, hidden)) if swiglu else (lambda: GeluMLP(dim, hidden))
        self.mlp = Pair(shared, mlp)
        self.ada = Pair(shared, lambda: Ada(dim))
        self.text_stops = text_stops        # the 3B's last block: text skips the feed-forward and modulation


class NaDiT(nn.Module):
    _keep_in_fp32_modules = ("rope",)      # RoPE frequencies stay float32, as ComfyUI's buffers do
    # tokens through a feed-forward at once: its hidden layer is the widest activation (3B: 4 x 6912 values a token,
    # 7B: 2 x 12288), ~25 GB over a 720p clip upscaled 2x (121 frames, 446k tokens) in one go; ComfyUI chunks its
    # linears too. 64k tokens: ~3.6 GB
    token_chunk = 1 << 16

    def __init__(self, dim: int, in_channels: int, out_channels: int, txt_in_dim: int, heads: int, head_dim: int,
                 hidden: int, shared: Tuple[bool, ...], swiglu: bool, rope_freqs: int, seven_b: bool,
                 prompt_tokens: Tuple[int, int]):
        super().__init__()
        self.dim, self.heads, self.head_dim, self.seven_b = dim, heads, head_dim, seven_b
        self.vid_in = nn.Module()
        self.vid_in.proj = Linear(in_channels * 4, dim)
        self.txt_in = Linear(txt_in_dim, dim)
        self.emb_in = nn.Module()
        self.emb_in.proj_in = Linear(TIME_DIM, dim)
        self.emb_in.proj_hid = Linear(dim, dim)
        self.emb_in.proj_out = Linear(dim, 6 * dim)
        n = len(shared)
        self.blocks = nn.ModuleList(Block(dim, heads, head_dim, hidden, s, swiglu, rope_freqs,
                                          text_stops=not seven_b and i == n - 1) for i, s in enumerate(shared))
        if not seven_b:
            self.vid_out_norm = RMSWeight(dim)
            self.vid_out_ada = Ada(dim, ("out",))
        self.vid_out = nn.Module()
        self.vid_out.proj = Linear(dim, out_channels * 4)
        # the prompts it was trained on, read by the text stream (ComfyUI's SeedVR2Conditioning hands them out)
        self.register_buffer("positive_conditioning", torch.zeros(prompt_tokens[0], txt_in_dim))
        self.register_buffer("negative_conditioning", torch.zeros(prompt_tokens[1], txt_in_dim))

    @property
    def dtype(self):
        return self.vid_in.proj.weight.dtype

    @property
    def device(self):
        return self.vid_in.proj.weight.device

    def time_embedding(self, timestep: torch.Tensor, dtype) -> torch.Tensor:
        """[B, 6D]: the sinusoid of the timestep (sines first, frequencies 10000^(-i/128)) through the MLP."""
        half = TIME_DIM // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=timestep.device) / half)
        angles = timestep.float()[:, None] * freqs[None]
        e = torch.cat((angles.sin(), angles.cos()), -1).to(dtype)
        e = self.emb_in.proj_hid(F.silu(self.emb_in.proj_in(e)))
        return self.emb_in.proj_out(F.silu(e))

    def forward(self, x: torch.Tensor, condition: torch.Tensor, timestep: torch.Tensor,
                text: List[torch.Tensor]) -> torch.Tensor:
        """Velocity [B, 16, T, H, W] of latents x beside their condition [B, 17, T, H, W] at timestep [B] (sigma *
        1000), each reading its prompt embedding text[b] [L, txt_in_dim]."""
        b, _, t, h, w = x.shape
        if h % 2 or w % 2:
            raise NodeError(f"SeedVR2 takes latents of even height and width (pictures of sides a multiple of 16); "
                            f"this one is {w}x{h}: pad the clip with upscale.seedvr2_pad first")
        dtype = self.dtype
        emb = self.time_embedding(timestep.expand(b).to(x.device), dtype).reshape(b, self.dim, 2, 3)
        out = []
        for i in range(b):
            vid = torch.cat((x[i], condition[i]), 0).movedim(0, -1).to(dtype)          # [T, H, W, 33]
            vid = vid.reshape(t, h // 2, 2, w // 2, 2, -1).permute(0, 1, 3, 2, 4, 5).reshape(t, h // 2, w // 2, -1)
            vid = self.vid_in.proj(vid).reshape(-1, self.dim)
            txt = self.txt_in(text[i].to(device=x.device, dtype=dtype))
            for j, block in enumerate(self.blocks):
                vid, txt = self._block(block, vid, txt, (t, h // 2, w // 2), emb[i, :, 0], emb[i, :, 1], j % 2 == 1)
            if not self.seven_b:
                vid = self.vid_out_ada.modulate(rms(vid, self.vid_out_norm.weight), emb[i, :, 0], "out")
            vid = self.vid_out.proj(vid).reshape(t, h // 2, w // 2, 2, 2, -1)
            out.append(vid.permute(5, 0, 1, 3, 2, 4).reshape(-1, t, h, w))
        return torch.stack(out)

    def _block(self, block: Block, vid, txt, grid, mod_attn, mod_mlp, shifted: bool):
        ada_v, ada_t = block.ada.parts()
        a_v = ada_v.modulate(rms(vid), mod_attn, "attn")
        a_t = rms(txt) if block.text_stops else ada_t.modulate(rms(txt), mod_attn, "attn")
        a_v, a_t = self._attention(block.attn, a_v, a_t, grid, shifted)
        a_v = ada_v.gate(a_v, mod_attn, "attn") + vid
        a_t = (a_t if block.text_stops else ada_t.gate(a_t, mod_attn, "attn")) + txt
        mlp_v, mlp_t = block.mlp.parts()
        m_v = self._feed_forward(ada_v, mlp_v, a_v, mod_mlp).add_(a_v)
        # the 3B's last block passes its text through the feed-forward's stage unchanged and adds it to itself
        m_t = a_t if block.text_stops else self._feed_forward(ada_t, mlp_t, a_t, mod_mlp)
        return m_v, m_t + a_t

    def _feed_forward(self, ada: Ada, mlp, x, mod):
        """The modulated, gated feed-forward of x's tokens, token_chunk of them at a time."""
        out = torch.empty_like(x)
        for a in range(0, x.shape[0], self.token_chunk):
            part = x[a:a + self.token_chunk]
            out[a:a + self.token_chunk] = ada.gate(mlp(ada.modulate(rms(part), mod, "mlp")), mod, "mlp")
        return out

    def _attention(self, attn: Attention, vid, txt, grid, shifted: bool):
        t, h, w = grid
        heads, hd = attn.heads, attn.head_dim
        qkv_v, qkv_t = attn.proj_qkv.parts()
        nq_v, nq_t = attn.norm_q.parts()
        nk_v, nk_t = attn.norm_k.parts()
        qv, kv, vv = qkv_v(vid).reshape(-1, 3, heads, hd).unbind(1)
        qt, kt, vt = qkv_t(txt).reshape(-1, 3, heads, hd).unbind(1)
        qv, kv = rms(qv, nq_v.weight), rms(kv, nk_v.weight)
        qt, kt = rms(qt, nq_t.weight), rms(kt, nk_t.weight)
        freqs = attn.rope.rope.freqs.float().to(vid.device)
        if self.seven_b:                # ComfyUI builds the 7B's pixel frequencies anew, of the file's count
            freqs = torch.linspace(1, PIXEL_ROPE_MAX / 2, len(freqs), device=vid.device) * math.pi
        l = txt.shape[0]
        if not self.seven_b:            # text on positions 0..l-1 of every axis' frequencies
            pos = torch.arange(l, device=vid.device, dtype=torch.float32)
            a = (pos[:, None] * freqs[None]).repeat(1, 3)
            qt, kt = rotate(qt, a), rotate(kt, a)
        idx = torch.arange(t * h * w, device=vid.device).reshape(t, h, w)
        out_v = vid.new_empty(vid.shape[0], heads * hd)
        out_t = torch.zeros(l, heads, hd, device=vid.device, dtype=torch.float32)
        wins = window_slices(t, h, w, shifted)
        q4, k4, v4 = (z.reshape(t, h, w, heads, hd) for z in (qv, kv, vv))
        for st, sh, sw in wins:
            wt, wh, ww = (s.stop - s.start for s in (st, sh, sw))
            q, k = q4[st, sh, sw].reshape(-1, heads, hd), k4[st, sh, sw].reshape(-1, heads, hd)
            v = v4[st, sh, sw].reshape(-1, heads, hd)
            q, k = self._rope_window(q, k, freqs, (wt, wh, ww), l)
            seq = [torch.cat(p, 0).transpose(0, 1)[None] for p in ((q, qt), (k, kt), (v, vt))]
            o = F.scaled_dot_product_attention(*seq)[0].transpose(0, 1)              # [n + l, heads, hd]
            out_v[idx[st, sh, sw].reshape(-1)] = o[:-l].reshape(-1, heads * hd).to(vid.dtype)
            out_t += o[-l:].float()
        out_t = (out_t / len(wins)).reshape(l, -1).to(txt.dtype)
        pv, pt = attn.proj_out.parts()
        return pv(out_v), pt(out_t)

    def _rope_window(self, q, k, freqs, shape, l: int):
        """The window's own RoPE: 3B from (l, 0, 0) on integer positions; 7B over [-1, 1] of each axis."""
        wt, wh, ww = shape
        dev = q.device
        if self.seven_b:
            pos = [torch.linspace(-1, 1, n, device=dev) for n in shape]
        else:
            pos = [torch.arange(l, l + wt, device=dev, dtype=torch.float32),
                   torch.arange(wh, device=dev, dtype=torch.float32), torch.arange(ww, device=dev, dtype=torch.float32)]
        a = axial_angles(freqs, *pos)
        return rotate(q, a), rotate(k, a)


def rope_frequencies(seven_b: bool) -> torch.Tensor:
    """The RoPE frequencies ComfyUI's NaDiT makes when it builds itself (a file may leave them out): the 3B's 21 of
    theta 10000 over 42 features (rope_dim 128 / 3), the 7B's 10 of pi .. 128 pi."""
    if seven_b:
        return torch.linspace(1, PIXEL_ROPE_MAX / 2, 10) * math.pi
    return 1.0 / ROPE_THETA ** (torch.arange(0, 42, 2, dtype=torch.float32) / 42)


def with_rope(state, cfg: dict) -> dict:
    """state with each block's RoPE frequencies, ComfyUI's own where the file has none."""
    made = rope_frequencies(cfg["seven_b"])
    return {**{f"blocks.{i}.attn.rope.rope.freqs": made for i in range(len(cfg["shared"]))}, **state}


def nadit_config(state) -> dict:
    """NaDiT's sizes from a file's tensors (ComfyUI's names): KeyError / IndexError where one is missing."""
    from nodes.generate.converters import count
    dim, patch_in = state["vid_in.proj.weight"].shape
    n = count(state, "blocks.{}.")
    if n < 1:
        raise KeyError("blocks.0.attn.proj_qkv.vid.weight")
    shared = tuple(f"blocks.{i}.attn.proj_qkv.all.weight" in state for i in range(n))
    first = "all" if shared[0] else "vid"
    head_dim = int(state[f"blocks.0.attn.norm_q.{first}.weight"].shape[0])
    cfg = dict(dim=int(dim), in_channels=int(patch_in) // 4, out_channels=int(state["vid_out.proj.weight"].shape[0]) // 4,
               txt_in_dim=int(state["txt_in.weight"].shape[1]), head_dim=head_dim,
               heads=int(state[f"blocks.0.attn.proj_qkv.{first}.weight"].shape[0]) // (3 * head_dim),
               hidden=int(state[f"blocks.0.mlp.{first}.proj_in.weight"].shape[0]), shared=shared,
               swiglu=f"blocks.0.mlp.{first}.proj_in_gate.weight" in state,
               rope_freqs=int(state["blocks.0.attn.rope.rope.freqs"].shape[0]) if "blocks.0.attn.rope.rope.freqs" in state
               else len(rope_frequencies("vid_out_norm.weight" not in state)),
               seven_b="vid_out_norm.weight" not in state,
               prompt_tokens=(int(state["positive_conditioning"].shape[0]), int(state["negative_conditioning"].shape[0])))
    if cfg["in_channels"] != 2 * LATENT + 1 or cfg["out_channels"] != LATENT:
        raise NodeError(f"it reads {cfg['in_channels']} latent channels and writes {cfg['out_channels']}, where "
                        f"SeedVR2's transformer reads {2 * LATENT + 1} and writes {LATENT}: the file is another model's")
    return cfg


def seedvr2_conditioning(model, latent):
    """ComfyUI's SeedVR2Conditioning: (positive, negative) carrying the transformer's own prompt embeddings
    (positive_conditioning / negative_conditioning of its file) and, as the channels read beside the noise, the
    clip's latent and a plane of ones."""
    from nodes.generate.latent import Conditioning
    if model.family != "seedvr2":
        raise NodeError(f"condition.seedvr2 takes SeedVR2's transformer (diffusion_models/seedvr2_3b_* or _7b_*); "
                        f"this model is {model.family}'s")
    if latent.family != "seedvr2":
        raise NodeError(f"condition.seedvr2 reads a clip encoded by SeedVR2's VAE (vae/seedvr2_ema_vae_fp16); this "
                        f"latent is {latent.family}'s: encode the padded clip with SeedVR2's VAE")
    z = latent.samples.float()
    if z.ndim != 5 or z.shape[1] != LATENT:
        raise NodeError(f"condition.seedvr2 reads a {LATENT}-channel video latent [B, {LATENT}, T, h, w]; this one "
                        f"is {list(z.shape)}")
    net = model.denoiser
    concat = torch.cat((z, torch.ones_like(z[:, :1])), 1)
    return tuple(Conditioning("seedvr2", e.detach().float().cpu()[None], extra={"concat": concat})
                 for e in (net.positive_conditioning, net.negative_conditioning))
