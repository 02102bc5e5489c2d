"""HuMo (ByteDance's human video from text, a reference image and a voice, on Wan 2.1): the parts humo_17B / 1.7B
add to Wan's text-to-video transformer, and its forward.

diffusers (0.42) has no HuMo model. The rest is diffusers' WanTransformer3DModel; the added parts are attached under
the released files' names. How the model reads them (ComfyUI's HumoWanModel, comfy/ldm/wan/model.py, reads them as
the published bytedance-research/HuMo does):
- the voice: per latent frame a window of 8 whisper feature frames (25 a second) of 5 layer groups, projected by
  `audio_proj` (three linears, a layer norm) to 16 audio tokens. Every block, after its text cross-attention, lets
  each frame's video tokens attend to that frame's 16 tokens (`audio_cross_attn_wrapper`, no rotary).
- the reference image: its latent's tokens follow the video's, at rotary time `frames` (right after the clip) and at
  the video's timestep; they hear silence (zero features).
- the 17B model reads 36 channels, as Wan's image-to-video does: the noise, then a 4-channel mask (zeros) and a
  fixed 16-channel latent (the Wan VAE's latent of an empty clip); its reference reads zeros, ones, its latent."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError
from nodes.generate.wan_s2v import _grid, _rotary
from nodes.generate.weights import take_parts

WRAPPER = ".audio_cross_attn_wrapper."
NEEDED = ("audio_proj.audio_proj_glob_1.layer.weight", "audio_proj.audio_proj_glob_3.layer.weight",
          "audio_proj.audio_proj_glob_norm.layer.weight")
WINDOW, GROUPS = 8, 5          # feature frames per latent frame, whisper layer groups (the released audio_proj's)
# The 17B model's image channels without an image (ComfyUI's WAN21_HuMo): the first two latent frames differ
_EMPTY_FIRST = (0.8660, -0.4326, -0.0017, -0.4884, -0.5283, 0.9207, -0.9896, 0.4433, -0.5543, -0.0113, 0.5753, -0.6000,
                -0.8346, -0.3497, -0.1926, -0.6938)
_EMPTY_SECOND = (1.0869, -1.2370, 0.0206, -0.4357, -0.6411, 2.0307, -1.5972, 1.2659, -0.8595, -0.4654, 0.9638, -1.6330,
                 -1.4310, -0.1098, -0.3856, -1.4583)
_EMPTY = (0.8642, -1.8583, 0.1577, 0.1350, -0.3641, 2.5863, -1.9670, 1.6065, -1.0475, -0.8678, 1.1734, -1.8138,
          -1.5933, -0.7721, -0.3289, -1.3745)


class _Layer(nn.Module):
    """The released files keep each audio_proj layer one level down (`.layer.`)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)


class _AudioProj(nn.Module):
    def __init__(self, inputs, hidden, tokens, width):
        super().__init__()
        self.tokens = tokens
        self.audio_proj_glob_1 = _Layer(nn.Linear(inputs, hidden))
        self.audio_proj_glob_2 = _Layer(nn.Linear(hidden, hidden))
        self.audio_proj_glob_3 = _Layer(nn.Linear(hidden, tokens * width))
        self.audio_proj_glob_norm = _Layer(nn.LayerNorm(width))

    def forward(self, feats):
        """feats [B, F, WINDOW, GROUPS, C] -> the audio tokens, frame after frame [B, F * tokens, width]."""
        b, f = feats.shape[:2]
        x = torch.relu(self.audio_proj_glob_2(torch.relu(self.audio_proj_glob_1(feats.flatten(2)))))
        x = self.audio_proj_glob_3(x).unflatten(-1, (self.tokens, -1))
        return self.audio_proj_glob_norm(x).reshape(b, f * self.tokens, -1)


class _AudioAttention(nn.Module):
    def __init__(self, dim, kv_dim, heads):
        super().__init__()
        self.heads = heads
        self.q, self.o = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.k, self.v = nn.Linear(kv_dim, dim), nn.Linear(kv_dim, dim)
        self.norm_q, self.norm_k = nn.RMSNorm(dim, eps=1e-6), nn.RMSNorm(dim, eps=1e-6)

    def forward(self, x, sound, frames):
        """Each of `frames` runs of x's tokens attends to its own run of sound's."""
        b = x.shape[0]
        q = self.norm_q(self.q(x)).reshape(b * frames, -1, self.heads, x.shape[-1] // self.heads).transpose(1, 2)
        k = self.norm_k(self.k(sound)).reshape(b * frames, -1, self.heads, q.shape[-1]).transpose(1, 2)
        v = self.v(sound).reshape(b * frames, -1, self.heads, q.shape[-1]).transpose(1, 2)
        return self.o(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, x.shape[-1]))


class _AudioWrapper(nn.Module):
    def __init__(self, dim, kv_dim, heads):
        super().__init__()
        self.audio_cross_attn = _AudioAttention(dim, kv_dim, heads)
        self.norm1_audio = nn.LayerNorm(dim, eps=1e-6)


def parts(state: dict) -> dict:
    """HuMo's tensors, taken out of a Wan file's `state`."""
    return take_parts(state, lambda k: k.startswith("audio_proj.") or WRAPPER in k, NEEDED,
                      "this HuMo file lacks part of its voice projection")


def attach(transformer, state: dict):
    """Give a WanTransformer3DModel the HuMo parts whose tensors `state` holds, sized from them."""
    cfg = transformer.config
    dim = cfg.num_attention_heads * cfg.attention_head_dim
    first, last = state["audio_proj.audio_proj_glob_1.layer.weight"], state["audio_proj.audio_proj_glob_3.layer.weight"]
    width = int(state["audio_proj.audio_proj_glob_norm.layer.weight"].shape[0])
    missing = [i for i in range(cfg.num_layers) if f"blocks.{i}{WRAPPER}audio_cross_attn.q.weight" not in state]
    if missing or int(first.shape[1]) % (WINDOW * GROUPS):
        raise NodeError(f"this HuMo file's voice layers do not fit its {cfg.num_layers} Wan blocks (block {missing[0]} "
                        "has none)" if missing else
                        f"this HuMo file reads {int(first.shape[1])} voice features a latent frame, not {WINDOW} "
                        f"frames of {GROUPS} whisper layer groups: it is not a HuMo model Kinograph knows")
    transformer.add_module("audio_proj", _AudioProj(int(first.shape[1]), int(first.shape[0]),
                                                    int(last.shape[0]) // width, width))
    for block in transformer.blocks:
        block.add_module("audio_cross_attn_wrapper", _AudioWrapper(dim, width, cfg.num_attention_heads))
    return transformer


def is_humo(transformer) -> bool:
    return isinstance(getattr(transformer, "audio_proj", None), _AudioProj)


def sound_width(transformer) -> int:
    """The width of the whisper features this model reads (1280: whisper large-v3's)."""
    return transformer.audio_proj.audio_proj_glob_1.layer.in_features // (WINDOW * GROUPS)


def _block(block, x, context, proj, rotary, sound, frames):
    """diffusers' WanTransformerBlock with HuMo's voice attention between the text attention and the MLP."""
    shift, scale, gate, c_shift, c_scale, c_gate = (block.scale_shift_table + proj.float()).chunk(6, dim=1)
    h = (block.norm1(x.float()) * (1 + scale) + shift).type_as(x)
    x = (x.float() + block.attn1(h, None, None, rotary) * gate).type_as(x)
    x = x + block.attn2(block.norm2(x.float()).type_as(x), context, None, None)
    wrap = block.audio_cross_attn_wrapper
    x = x + wrap.audio_cross_attn(wrap.norm1_audio(x), sound, frames)
    h = (block.norm3(x.float()) * (1 + c_scale) + c_shift).type_as(x)
    return (x.float() + block.ffn(h).float() * c_gate).type_as(x)


def image_channels(x) -> torch.Tensor:
    """The 17B model's 20 extra channels for the noise x [B, 16, F, H, W]: a zero mask, the empty clip's latent."""
    empty = x.new_tensor(_EMPTY).view(1, -1, 1, 1, 1).expand(x.shape[0], -1, *x.shape[2:]).clone()
    empty[:, :, :1] = x.new_tensor(_EMPTY_FIRST).view(1, -1, 1, 1, 1)
    empty[:, :, 1:2] = x.new_tensor(_EMPTY_SECOND).view(1, -1, 1, 1, 1)
    return torch.cat([x.new_zeros(x.shape[0], 4, *x.shape[2:]), empty], 1)


def forward(model, x, t, context, audio=None, reference=None):
    """HuMo's prediction for the noisy latent x [B, 16, F, H, W] at timestep t [B].

    context: the text tokens [B, L, text_dim]; audio: the voice's windows [B, F, WINDOW, GROUPS, width] (None:
    silence); reference: the reference image's latent [B, 16, R, H, W] (None: no reference tokens)."""
    b, _, frames, hh, ww = x.shape
    cfg = model.config
    pt, ph, pw = cfg.patch_size
    wide = cfg.in_channels != x.shape[1]
    if wide:
        x = torch.cat([x, image_channels(x)], 1)
    video = model.patch_embedding(x)
    f, h, w = video.shape[2:]
    f64 = {"dtype": torch.float64}
    tokens = [video.flatten(2).transpose(1, 2)]
    pos = [_grid(torch.arange(f, **f64), torch.arange(h, **f64), torch.arange(w, **f64))]
    seq, heard = tokens[0].shape[1], f
    if audio is None:
        audio = x.new_zeros(b, frames, WINDOW, GROUPS, sound_width(model))
    if audio.shape[-1] != sound_width(model):
        raise NodeError(f"these voice features are {audio.shape[-1]} wide; this HuMo model reads whisper's "
                        f"{sound_width(model)}: encode the voice with whisper_large_v3_fp16.safetensors")
    if audio.shape[1] != frames:
        raise NodeError(f"the voice's windows cover {audio.shape[1]} latent frames but the latent has {frames}: make "
                        "the conditioning with condition.humo for this latent")
    if reference is not None:
        reference = reference.to(x.dtype).expand(b, -1, -1, -1, -1)
        if wide:
            reference = torch.cat([torch.zeros_like(reference), reference.new_ones(b, 4, *reference.shape[2:]),
                                   reference], 1)
        ref = model.patch_embedding(reference)
        tokens.append(ref.flatten(2).transpose(1, 2))
        pos.append(_grid(torch.arange(f, f + ref.shape[2], **f64), torch.arange(ref.shape[3], **f64),
                         torch.arange(ref.shape[4], **f64)))
        audio = torch.cat([audio, audio.new_zeros(b, ref.shape[2], *audio.shape[2:])], 1)
        heard += ref.shape[2]
    hidden = torch.cat(tokens, 1).contiguous()
    rotary = tuple(r.to(x.device) for r in _rotary(torch.cat(pos), cfg.attention_head_dim))
    temb, proj, context, _ = model.condition_embedder(t, context, None)
    proj = proj.unflatten(1, (6, -1))
    sound = model.audio_proj(audio.to(hidden.dtype))
    for block in model.blocks:
        hidden = _block(block, hidden, context, proj, rotary, sound, heard)
    shift, scale = (model.scale_shift_table + temb.unsqueeze(1)).chunk(2, dim=1)
    out = (model.norm_out(hidden[:, :seq].float()) * (1 + scale) + shift).type_as(hidden)
    out = model.proj_out(out).reshape(b, f, h, w, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return out.flatten(6, 7).flatten(4, 5).flatten(2, 3)
