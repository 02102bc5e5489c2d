"""WanDancer (Wan 2.2 14B music-driven image-to-video, Comfy-Org/Wan-Dancer): the parts its global and local files
add to Wan 2.1's image-to-video transformer, and its forward.

diffusers (0.42) has no WanDancer model. The rest is diffusers' WanTransformer3DModel (the i2v one, CLIP image tokens
read by its blocks' image attention); the added parts are attached under the released files' names. How the model
reads them (ComfyUI's WanDancerModel, comfy/ldm/wan/model_wandancer.py):
- the music: 35 features per 1/30 s (onset strength, 20 MFCCs, 12 chroma, onset peak, beat) projected to 256 wide,
  two pre-norm transformer layers with 1-D rotary positions, then stretched (bilinear) to 8 tokens per latent frame,
  each the model's width. After blocks 0, 4, ..., 24, 27 the video's tokens, cut into that many runs in order, each
  take their token through the injector's value and output projections (one key: its attention weight is 1), times
  the audio scale.
- a reference image's CLIP tokens, projected by `img_emb_refimage`, read with the first frame's by the image
  attention (reference first).
- the frame rate: at 30 fps (the local passes) the plain patch embedding and head; at another rate (the global pass,
  a whole song's key frames) `patch_embedding_global` / `head_global`, and the rotary time of frame i at i * 30 / fps
  (the last at the clip's length in 30 fps frames, less one)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError
from nodes.generate.wan_s2v import _CrossAttention, _grid, _rotary
from nodes.generate.weights import take_parts

PARTS = ("patch_embedding_global.", "img_emb_refimage.", "head_global.", "music_projection.", "music_encoder.",
         "music_injector.")
NEEDED = ("patch_embedding_global.weight", "img_emb_refimage.proj.1.weight", "head_global.head.weight",
          "head_global.modulation", "music_projection.weight", "music_encoder.0.self_attn.q_proj.weight",
          "music_injector.injector.0.o.weight")
# The blocks the released model's music layers follow (ComfyUI's audio_inject_layers; the file does not say)
INJECT_AFTER = (0, 4, 8, 12, 16, 20, 24, 27)
TOKENS_PER_FRAME = 8        # music tokens per latent frame
MUSIC_HEADS = 4
BASE_FPS = 30               # the local passes' rate, read with the plain patch embedding and head
TEXT_TOKENS = 512           # the text's tokens, after the image tokens in the blocks' context (diffusers' split)
NEEDS_START = ("a WanDancer model reads its start frames (or key frames) beside the noise: make its conditioning with "
               "condition.wan_dancer and a start image")
NEEDS_CLIP = ("a WanDancer model reads CLIP image tokens: connect encode.image's output to condition.wan_dancer's "
              "image_embeds (and reference_embeds)")


class _MLPProj(nn.Module):
    """ComfyUI's MLPProj under its names: LayerNorm, Linear, GELU, Linear, LayerNorm."""

    def __init__(self, cin, dim):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(cin), nn.Linear(cin, dim), nn.GELU(), nn.Linear(dim, dim),
                                  nn.LayerNorm(dim))

    def forward(self, x):
        return self.proj(x)


class _Head(nn.Module):
    def __init__(self, dim, out):
        super().__init__()
        self.head = nn.Linear(dim, out)
        self.modulation = nn.Parameter(torch.zeros(1, 2, dim))

    def forward(self, x, temb):
        shift, scale = (self.modulation + temb.unsqueeze(1)).chunk(2, dim=1)
        return self.head((F.layer_norm(x.float(), x.shape[-1:], eps=1e-6) * (1 + scale) + shift).type_as(x))


class _MusicAttention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x, cos, sin):
        def heads(t):
            return t.unflatten(-1, (MUSIC_HEADS, -1)).transpose(1, 2)

        def turned(t):
            # pairs (2i, 2i + 1) turned by each position's angles, as flux's apply_rope1 turns them
            a, b = t.unflatten(-1, (-1, 2)).unbind(-1)
            return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)
        q, k = turned(heads(self.q_proj(x))), turned(heads(self.k_proj(x)))
        return self.out_proj(F.scaled_dot_product_attention(q, k, heads(self.v_proj(x))).transpose(1, 2).flatten(2))


class _MusicLayer(nn.Module):
    def __init__(self, dim, ffn):
        super().__init__()
        self.self_attn = _MusicAttention(dim)
        self.linear1, self.linear2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.norm1(x), cos, sin)
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class _Injector(nn.Module):
    def __init__(self, dim, heads, count):
        super().__init__()
        self.injector = nn.ModuleList(_CrossAttention(dim, heads) for _ in range(count))


def parts(state: dict) -> dict:
    """WanDancer's tensors, taken out of a Wan file's `state`."""
    return take_parts(state, lambda k: k.startswith(PARTS), NEEDED,
                      "this WanDancer file lacks part of its music encoder, global embedding or head")


def attach(transformer, state: dict):
    """Give an i2v WanTransformer3DModel the WanDancer parts whose tensors `state` holds, sized from them."""
    cfg = transformer.config
    dim = cfg.num_attention_heads * cfg.attention_head_dim
    injectors = sum(1 for k in state if k.startswith("music_injector.injector.") and k.endswith(".o.weight"))
    if injectors != len(INJECT_AFTER):
        raise NodeError(f"this WanDancer file has {injectors} music layers; Kinograph runs the released model's "
                        f"{len(INJECT_AFTER)} (after blocks {', '.join(map(str, INJECT_AFTER))}): the file is not one "
                        "it knows")
    pe = state["patch_embedding_global.weight"]
    transformer.add_module("patch_embedding_global", nn.Conv3d(int(pe.shape[1]), dim, tuple(pe.shape[2:]),
                                                               stride=tuple(pe.shape[2:])))
    transformer.add_module("img_emb_refimage", _MLPProj(int(state["img_emb_refimage.proj.1.weight"].shape[1]), dim))
    transformer.add_module("head_global", _Head(dim, int(state["head_global.head.weight"].shape[0])))
    music = state["music_projection.weight"]
    transformer.add_module("music_projection", nn.Linear(int(music.shape[1]), int(music.shape[0])))
    layers = len({k.split(".")[1] for k in state if k.startswith("music_encoder.")})
    ffn = int(state["music_encoder.0.linear1.weight"].shape[0])
    transformer.add_module("music_encoder", nn.ModuleList(_MusicLayer(int(music.shape[0]), ffn) for _ in range(layers)))
    transformer.add_module("music_injector", _Injector(dim, cfg.num_attention_heads, injectors))
    return transformer


def is_dancer(transformer) -> bool:
    return isinstance(getattr(transformer, "music_injector", None), _Injector)


def music_width(transformer) -> int:
    """The music features per frame this model reads (35)."""
    return transformer.music_projection.in_features


def frame_times(frames: int, fps: float) -> torch.Tensor:
    """The rotary time of each latent frame: 0, 1, ... at 30 fps; at another rate i * 30 / fps, the last at the
    clip's length in 30 fps frames less one (ComfyUI's rope_encode)."""
    if int(fps + 0.5) == BASE_FPS:
        return torch.arange(frames, dtype=torch.float64)
    scale = BASE_FPS / fps
    times = torch.arange(frames, dtype=torch.float64) * scale
    times[-1] = int(scale * frames + 0.5) - 1
    return times


def _music_tokens(model, feats, frames):
    """feats [B, T, 35] -> [B, frames * 8, dim]: the music encoder's tokens stretched to 8 per latent frame."""
    m = model.music_projection(feats)
    half = m.shape[-1] // MUSIC_HEADS // 2
    inv = 1.0 / 10000.0 ** (torch.arange(half, dtype=torch.float64) * 2 / (2 * half))
    ang = (torch.arange(m.shape[1], dtype=torch.float64)[:, None] * inv).to(m.device)
    cos, sin = ang.cos().to(m.dtype), ang.sin().to(m.dtype)
    for layer in model.music_encoder:
        m = layer(m, cos, sin)
    dim = model.config.num_attention_heads * model.config.attention_head_dim
    return F.interpolate(m.unsqueeze(1), size=(frames * TOKENS_PER_FRAME, dim), mode="bilinear").squeeze(1)


def forward(model, x, t, context, image=None, reference=None, music=None, fps: float = BASE_FPS,
            scale: float = 1.0):
    """WanDancer's prediction for x [B, 36, F, H, W] (the noise, then the 4-channel mask and the start frames'
    latent) at timestep t [B].

    context: the text tokens [B, L, text_dim]; image, reference: the first frame's and the reference image's CLIP
    tokens [B, 257, 1280]; music: the music features [B, T, 35] (None: no music layers run); fps: the clip's frame
    rate; scale: the music injection's strength."""
    b, _, frames, hh, ww = x.shape
    cfg = model.config
    pt, ph, pw = cfg.patch_size
    if x.shape[1] != cfg.in_channels:
        raise NodeError(NEEDS_START)
    if image is None and reference is None:
        raise NodeError(NEEDS_CLIP)
    glob = int(fps + 0.5) != BASE_FPS
    video = (model.patch_embedding_global if glob else model.patch_embedding)(x)
    f, h, w = video.shape[2:]
    hidden = video.flatten(2).transpose(1, 2).contiguous()
    seq = hidden.shape[1]
    f64 = {"dtype": torch.float64}
    pos = _grid(frame_times(f, fps), torch.arange(h, **f64), torch.arange(w, **f64))
    rotary = tuple(r.to(x.device) for r in _rotary(pos, cfg.attention_head_dim))
    context = F.pad(context, (0, 0, 0, max(0, TEXT_TOKENS - context.shape[1])))
    temb, proj, text, clip = model.condition_embedder(t, context, image)
    proj = proj.unflatten(1, (6, -1))
    seen = [model.img_emb_refimage(reference.to(hidden.dtype))] if reference is not None else []
    ctx = torch.cat(seen + ([clip] if clip is not None else []) + [text], 1)
    sound = None
    if music is not None:
        if music.shape[-1] != music_width(model):
            raise NodeError(f"these music features are {music.shape[-1]} wide; WanDancer reads "
                            f"{music_width(model)}: encode the music with encode.wan_dancer_audio")
        groups = f * TOKENS_PER_FRAME
        if seq % groups:
            raise NodeError(f"WanDancer hears the music in {TOKENS_PER_FRAME} runs of tokens per latent frame; this "
                            f"{ww * 8}x{hh * 8} video's {h * w} tokens a frame do not split so: use a width and height "
                            "whose latent patches number a multiple of 8 (e.g. multiples of 64 pixels)")
        sound = _music_tokens(model, music.to(hidden.dtype), f)
    at = {block: i for i, block in enumerate(INJECT_AFTER)}
    for i, block in enumerate(model.blocks):
        hidden = block(hidden, ctx, proj, rotary)
        if sound is not None and i in at:
            # one audio token per run: the attention's weight is 1, so each run gets o(v(its token))
            inj = model.music_injector.injector[at[i]]
            hidden = hidden + (inj.o(inj.v(sound)) * scale).repeat_interleave(seq // sound.shape[1], dim=1)
    if glob:
        out = model.head_global(hidden, temb)
    else:
        shift, scale_ = (model.scale_shift_table + temb.unsqueeze(1)).chunk(2, dim=1)
        out = model.proj_out((model.norm_out(hidden.float()) * (1 + scale_) + shift).type_as(hidden))
    out = out.reshape(b, f, h, w, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return out.flatten(6, 7).flatten(4, 5).flatten(2, 3)
