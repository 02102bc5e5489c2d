"""Wan 2.2 S2V (sound to video): the parts wan2.2_s2v_14B adds to Wan's text-to-video transformer, and its forward.

diffusers (0.42) has no S2V model. The rest of it is diffusers' WanTransformer3DModel, whose blocks' own modules run
(at rotary angles of S2V's positions, modulated by segment: `_block`); the added parts are attached as
submodules under the released files' names. How the model reads them (Wan-Video/Wan2.2's wan/modules/s2v,
Apache-2.0; ComfyUI's WanModel_S2V reads them the same way):
- the voice: the speech encoder's layers mixed by learned weights (SiLU'd, normalised to sum 1), then causal 1-D
  convolutions (time / 4) make, per latent frame, a few audio tokens plus a learned padding token, and one global
  vector. After blocks 0, 4, ..., 24, 27, ..., 39 each frame's video tokens attend to that frame's audio tokens,
  normalised by an AdaLN driven by the global vector.
- the reference image: its latent's tokens follow the video's, at timestep 0, at rotary time max(30, frames + 9).
- motion frames (the clip before, for a continuation): its last 19 latent frames, 1 patched at the patch size, 2 at
  twice it and 16 at four times it, at rotary times -1, -3 and -19..-16 (the coarse ones spread over the same
  height and width), at timestep 0.
- a control (pose) video's latent, patched by `cond_encoder` and added to the noise's tokens (zeros without one:
  its bias remains), and `trainable_cond_mask`, one learned vector each for video, reference and motion tokens."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError
from nodes.generate.weights import take_parts

PARTS = ("casual_audio_encoder.", "audio_injector.", "frame_packer.", "trainable_cond_mask.", "cond_encoder.")
# The blocks the released model's audio layers follow (its config; the file does not say)
INJECT_AFTER = (0, 4, 8, 12, 16, 20, 24, 27, 30, 33, 36, 39)
NEEDED = ("casual_audio_encoder.weights", "casual_audio_encoder.encoder.conv1_local.conv.weight",
          "frame_packer.proj.weight", "cond_encoder.weight", "trainable_cond_mask.weight")
MOTION_FRAMES = (16, 2, 1)                  # latent frames packed at 4x, 2x and 1x the patch, oldest first


class _CausalConv(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, 3, stride=stride)

    def forward(self, x):
        return self.conv(F.pad(x, (2, 0), mode="replicate"))


def _act(x):
    return F.silu(F.layer_norm(x, x.shape[-1:], eps=1e-6))


class _SoundEncoder(nn.Module):
    def __init__(self, width, dim, tokens):
        super().__init__()
        self.tokens = tokens
        self.conv1_local = _CausalConv(width, dim // 4 * tokens, 1)
        self.conv1_global = _CausalConv(width, dim // 4, 1)
        self.conv2 = _CausalConv(dim // 4, dim // 2, 2)
        self.conv3 = _CausalConv(dim // 2, dim, 2)
        self.final_linear = nn.Linear(dim, dim)
        self.padding_tokens = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def _down(self, x):
        """[N, C/4, T] -> [N, T/4, C], through the shared stride-2 convolutions."""
        x = _act(x.transpose(1, 2)).transpose(1, 2)
        x = _act(self.conv2(x).transpose(1, 2)).transpose(1, 2)
        return _act(self.conv3(x).transpose(1, 2))

    def forward(self, x):
        """x [B, width, T] -> (global [B, T/4, C], tokens [B, T/4, tokens + 1, C])."""
        b, _, t = x.shape
        local = self.conv1_local(x).unflatten(1, (self.tokens, -1)).flatten(0, 1)
        local = self._down(local).unflatten(0, (b, self.tokens)).transpose(1, 2)
        local = torch.cat([local, self.padding_tokens.to(local.dtype).expand(b, local.shape[1], 1, -1)], 2)
        return self.final_linear(self._down(self.conv1_global(x))), local


class _AudioEncoder(nn.Module):
    def __init__(self, layers, width, dim, tokens):
        super().__init__()
        self.weights = nn.Parameter(torch.ones(1, layers, 1, 1))
        self.encoder = _SoundEncoder(width, dim, tokens)

    def forward(self, feats):
        """feats [B, layers, width, T] (encode.audio's layers at 30 a second, per video frame)."""
        w = F.silu(self.weights.to(feats.dtype))
        return self.encoder((feats * (w / w.sum(1, keepdim=True))).sum(1))


class _CrossAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = nn.RMSNorm(dim, eps=1e-6), nn.RMSNorm(dim, eps=1e-6)

    def forward(self, x, context):
        q = self.norm_q(self.q(x)).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        k = self.norm_k(self.k(context)).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        v = self.v(context).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        return self.o(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))


class _AdaNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * dim)

    def forward(self, x, cond):
        shift, scale = self.linear(F.silu(cond)).chunk(2, dim=-1)
        return F.layer_norm(x, x.shape[-1:], eps=1e-5) * (1 + scale[:, None]) + shift[:, None]


class _AudioInjector(nn.Module):
    def __init__(self, dim, heads, count):
        super().__init__()
        self.injector = nn.ModuleList(_CrossAttention(dim, heads) for _ in range(count))
        self.injector_adain_layers = nn.ModuleList(_AdaNorm(dim) for _ in range(count))


class _FramePacker(nn.Module):
    def __init__(self, channels, dim):
        super().__init__()
        self.proj, self.proj_2x, self.proj_4x = (nn.Conv3d(channels, dim, k, stride=k)
                                                 for k in ((1, 2, 2), (2, 4, 4), (4, 8, 8)))


def parts(state: dict) -> dict:
    """The S2V parts' tensors, taken out of a Wan file's `state`."""
    return take_parts(state, lambda k: k.startswith(PARTS), NEEDED,
                      "this Wan 2.2 S2V file lacks part of its sound, motion or control encoders")


def attach(transformer, state: dict):
    """Give a WanTransformer3DModel the S2V parts whose tensors `state` holds, sized from them."""
    cfg = transformer.config
    dim = cfg.num_attention_heads * cfg.attention_head_dim
    injectors = sum(1 for k in state if k.startswith("audio_injector.injector.") and k.endswith(".q.weight"))
    if injectors != len(INJECT_AFTER) or cfg.num_layers <= INJECT_AFTER[-1]:
        raise NodeError(f"this Wan 2.2 S2V file has {injectors} audio layers over {cfg.num_layers} blocks; Kinograph "
                        f"runs the released S2V models' {len(INJECT_AFTER)} (after blocks "
                        f"{', '.join(map(str, INJECT_AFTER))} of 40): the file is not one it knows")
    local = state["casual_audio_encoder.encoder.conv1_local.conv.weight"]
    enc = _AudioEncoder(int(state["casual_audio_encoder.weights"].shape[1]), int(local.shape[1]), dim,
                        int(local.shape[0]) // (dim // 4))
    transformer.add_module("casual_audio_encoder", enc)
    transformer.add_module("audio_injector", _AudioInjector(dim, cfg.num_attention_heads, injectors))
    transformer.add_module("frame_packer", _FramePacker(int(state["frame_packer.proj.weight"].shape[1]), dim))
    transformer.add_module("trainable_cond_mask", nn.Embedding(3, dim))
    transformer.add_module("cond_encoder", nn.Conv3d(int(state["cond_encoder.weight"].shape[1]), dim,
                                                     tuple(cfg.patch_size), stride=tuple(cfg.patch_size)))
    return transformer


def is_s2v(transformer) -> bool:
    return isinstance(getattr(transformer, "casual_audio_encoder", None), _AudioEncoder)


def sound_layers(transformer) -> tuple:
    """(layers, width) of the speech encoder features this model reads."""
    enc = transformer.casual_audio_encoder
    return int(enc.weights.shape[1]), int(enc.encoder.conv1_local.conv.in_channels)


def _grid(t, h, w):
    """[len(t) * len(h) * len(w), 3] rotary positions, time-major as patched tokens are flattened."""
    return torch.stack(torch.meshgrid(t, h, w, indexing="ij"), -1).reshape(-1, 3)


def _span(n, steps):
    """`steps` positions spread over the n of the finest grid (a coarse patch sits where its fine ones do)."""
    return torch.linspace(0, n - 1, steps, dtype=torch.float64)


def _rotary(pos, head_dim):
    """(cos, sin) as diffusers' Wan attention takes them ([1, N, 1, head_dim], each angle twice), at any positions."""
    hw = 2 * (head_dim // 6)
    angles = []
    for axis, d in enumerate((head_dim - 2 * hw, hw, hw)):
        inv = 1.0 / 10000.0 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
        angles.append(pos[:, axis:axis + 1] * inv)
    a = torch.cat(angles, 1).repeat_interleave(2, dim=1)[None, :, None]
    return a.cos().float(), a.sin().float()


def _motion_tokens(model, motion, f64):
    """The packed tokens of the last 19 latent frames before the clip (zeros where there are fewer), and their
    rotary positions."""
    b, c, _, hh, ww = motion.shape
    frames = motion.new_zeros(b, c, sum(MOTION_FRAMES), hh, ww)
    n = min(sum(MOTION_FRAMES), motion.shape[2])
    if n:
        frames[:, :, -n:] = motion[:, :, -n:]
    far, near, last = frames.split(MOTION_FRAMES, dim=2)
    packer = model.frame_packer
    h, w = hh // 2, ww // 2
    tokens, pos = [], []
    for conv, x, times in ((packer.proj, last, [-1.0]), (packer.proj_2x, near, [-3.0]),
                           (packer.proj_4x, far, [-19.0, -18.0, -17.0, -16.0])):
        y = conv(x.to(conv.weight.dtype))
        tokens.append(y.flatten(2).transpose(1, 2))
        pos.append(_grid(torch.tensor(times, **f64), _span(h, y.shape[3]), _span(w, y.shape[4])))
    return torch.cat(tokens, 1), torch.cat(pos)


def _block(block, x, context, rows, seq, rotary):
    """diffusers' WanTransformerBlock.forward with the tokens before `seq` modulated by rows[0] [B, 6, dim] and the
    rest by rows[1]. The block's forward takes one row for all tokens or one per token ([B, N, 6, dim], and then
    adds its table to them in float32 in every block: gigabytes at the released size, where ComfyUI keeps one row
    per segment); so this wraps the block, running its own norms, attention processors and MLP, and repeats only its
    modulation arithmetic, by segment."""
    mods = [(block.scale_shift_table + r.float()).chunk(6, dim=1) for r in rows]
    spans = (slice(None, seq), slice(seq, None))

    def modulated(norm, shift, scale):
        h = norm(x.float())
        for s, m in zip(spans, mods):
            h[:, s] = h[:, s] * (1 + m[scale]) + m[shift]
        return h.type_as(x)

    def gated(y, gate):
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        for s, m in zip(spans, mods):
            out[:, s] = x[:, s].float() + y[:, s] * m[gate]
        return out.type_as(x)

    x = gated(block.attn1(modulated(block.norm1, 0, 1), None, None, rotary), 2)
    x = x + block.attn2(block.norm2(x.float()).type_as(x), context, None, None)
    return gated(block.ffn(modulated(block.norm3, 3, 4)).float(), 5)


def forward(model, x, t, context, audio=None, reference=None, motion=None, control=None):
    """The S2V model's prediction for the noisy latent x [B, C, F, H, W] at timestep t [B].

    context: the text tokens [B, L, text_dim]; audio: the speech features [B, layers, width, >= 4F] (None: no
    voice); reference: the reference image's latent [B, C, R, H, W]; motion: the latent frames before the clip
    [B, C, M, H, W]; control: a control video's latent like x (None: zeros)."""
    b, _, frames, hh, ww = x.shape
    cfg = model.config
    pt, ph, pw = cfg.patch_size
    f64 = {"dtype": torch.float64}
    mask = model.trainable_cond_mask.weight
    video = model.patch_embedding(x)
    cond = model.cond_encoder
    video = video + (cond(control.to(video.dtype)) if control is not None else cond.bias.view(1, -1, 1, 1, 1))
    f, h, w = video.shape[2:]
    parts = [video.flatten(2).transpose(1, 2) + mask[0]]
    pos = [_grid(torch.arange(f, **f64), torch.arange(h, **f64), torch.arange(w, **f64))]
    seq = parts[0].shape[1]
    if reference is not None:
        ref = model.patch_embedding(reference.to(x.dtype)).expand(b, -1, -1, -1, -1)
        start = max(30, frames + 9)
        parts.append(ref.flatten(2).transpose(1, 2) + mask[1])
        pos.append(_grid(torch.arange(start, start + ref.shape[2], **f64), torch.arange(ref.shape[3], **f64),
                         torch.arange(ref.shape[4], **f64)))
    if motion is not None:
        if min(hh, ww) < 8:
            raise NodeError(f"Wan 2.2 S2V packs its motion frames in 8x8-latent patches; this {ww * 8}x{hh * 8} video "
                            "is smaller: make it at least 64 pixels wide and high")
        tokens, mpos = _motion_tokens(model, motion.to(x.dtype), f64)
        parts.append(tokens.expand(b, -1, -1) + mask[2])
        pos.append(mpos)
    hidden = torch.cat(parts, 1).contiguous()
    rotary = tuple(r.to(x.device) for r in _rotary(torch.cat(pos).to(torch.float64), cfg.attention_head_dim))
    # the video's tokens at t, the reference's and motion's clean (timestep 0): one modulation row each
    t = t.reshape(-1).to(x.device)
    temb, proj, context, _ = model.condition_embedder(torch.cat([t, torch.zeros_like(t)]), context, None)
    rows = proj.unflatten(1, (6, -1)).split(b)
    sound = None
    if audio is not None:
        if audio.shape[-1] < 4 * frames:
            raise NodeError(f"the sound's features cover {audio.shape[-1]} video frames but the latent's {frames} "
                            f"latent frames need {4 * frames}: make the conditioning with condition.s2v for this "
                            "latent")
        glob, tokens = model.casual_audio_encoder(audio[..., :4 * frames].to(hidden.dtype))
        sound = glob.flatten(0, 1), tokens.flatten(0, 1)
    at = {block: i for i, block in enumerate(INJECT_AFTER)}
    for i, block in enumerate(model.blocks):
        hidden = _block(block, hidden, context, rows, seq, rotary)
        if sound is not None and i in at:
            inj = model.audio_injector
            per_frame = hidden[:, :seq].reshape(b * f, h * w, -1)
            normed = inj.injector_adain_layers[at[i]](per_frame, sound[0])
            hidden[:, :seq] += inj.injector[at[i]](normed, sound[1]).reshape(b, seq, -1)
    shift, scale = (model.scale_shift_table + temb[:b].unsqueeze(1)).chunk(2, dim=1)
    out = (model.norm_out(hidden[:, :seq].float()) * (1 + scale) + shift).type_as(hidden)
    out = model.proj_out(out).reshape(b, f, h, w, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return out.flatten(6, 7).flatten(4, 5).flatten(2, 3)
