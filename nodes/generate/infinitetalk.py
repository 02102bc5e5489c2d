"""InfiniteTalk (MeiGen-AI): a voice, or two, moving the people of a Wan 2.1 image-to-video clip, from a patch file
(ComfyUI's model_patches/wan2.1_infiniteTalk_{single,multi}_fp16.safetensors) laid over the unchanged Wan 2.1 I2V
14B transformer.

The file holds `audio_proj` (the speech features of a window of video frames -> 32 tokens per latent frame) and,
per Wan block, `audio_cross_attn` and `norm_x`. How the model reads them (MeiGen-AI/InfiniteTalk, Apache-2.0;
ComfyUI's model_multitalk.py reads them the same way):
- after each block's text cross-attention, the video tokens of each latent frame attend (after `norm_x`) to that
  frame's audio tokens, and the result, times the audio scale, is added before the feed-forward;
- with two speakers, both voices' tokens are there; each video token is told whose it is by a 1-D rotary position:
  from the block's self-attention, how much the token attends to each speaker's masked region of the first frame
  (averaged over heads, min-max scaled into 0..4 for the first speaker and 20..24 for the second, the larger one
  chosen), and each speaker's audio tokens sit at the centre of their range (2 and 22);
- the first latent frame(s) of the model's input are the clean motion frames at every step (the start image's
  latent; in a continuation, the previous clip's last frames).
The transformer's blocks run unchanged; hooks add the audio (`patched`)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from graph_engine import NodeError
from nodes.generate.handles import need_wan_vae

PROBE = "audio_proj.proj1.weight"
WINDOW = 5                  # feature frames around each video frame (-2..2)
LATENT_STRIDE = 4           # video frames per latent frame after the first
FPS = 25                    # the video's frame rate the model was trained at: one feature per frame
SPEAKER_RANGES = ((0.0, 4.0), (20.0, 24.0))     # each speaker's range of 1-D rotary positions


class _AudioProj(nn.Module):
    def __init__(self, first_in, rest_in, inner, tokens, dim):
        super().__init__()
        self.tokens = tokens
        self.proj1 = nn.Linear(first_in, inner)
        self.proj1_vf = nn.Linear(rest_in, inner)
        self.proj2 = nn.Linear(inner, inner)
        self.proj3 = nn.Linear(inner, tokens * dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, first, rest):
        """first [S, 1, 5, L, D], rest [S, n, 8, L, D] -> [S, 1 + n, tokens, dim] (S speakers)."""
        a = torch.relu(self.proj1(first.flatten(2)))
        b = torch.relu(self.proj1_vf(rest.flatten(2)))
        x = torch.relu(self.proj2(torch.cat([a, b], 1)))
        return self.norm(self.proj3(x).unflatten(-1, (self.tokens, -1)))


class _AudioAttention(nn.Module):
    def __init__(self, dim, audio_dim):
        super().__init__()
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(audio_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)


class _Block(nn.Module):
    def __init__(self, dim, audio_dim):
        super().__init__()
        self.audio_cross_attn = _AudioAttention(dim, audio_dim)
        self.norm_x = nn.LayerNorm(dim)


class InfiniteTalkPatch(nn.Module):
    """The patch file's modules under its names, sized from its tensors."""

    def __init__(self, state: dict):
        super().__init__()
        p1, p3 = state[PROBE], state["audio_proj.proj3.weight"]
        audio_dim = int(state["audio_proj.norm.weight"].shape[0])
        self.audio_proj = _AudioProj(int(p1.shape[1]), int(state["audio_proj.proj1_vf.weight"].shape[1]),
                                     int(p1.shape[0]), int(p3.shape[0]) // audio_dim, audio_dim)
        n = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
        dim = int(state["blocks.0.audio_cross_attn.proj.weight"].shape[0])
        self.blocks = nn.ModuleList(_Block(dim, audio_dim) for _ in range(n))

    @property
    def dim(self) -> int:
        return self.blocks[0].norm_x.normalized_shape[0]


def read(path: Path) -> InfiniteTalkPatch:
    """The InfiniteTalk patch in `path`; another kind of patch, or a file short of tensors, is named."""
    from nodes.generate.weights import load_weights, misfit
    state = load_weights(path, torch.float32)
    if PROBE not in state:
        kinds = {"controlnet_blocks.0.y_rms.weight": "a Qwen-Image DiffSynth ControlNet",
                 "feature_embedder.mid_layer_norm.bias": "a USO style projector (FLUX.1)",
                 "control_all_x_embedder.2-1.weight": "a Z-Image Fun ControlNet"}
        what = next((v for k, v in kinds.items() if k in state), "not a model patch Kinograph knows")
        raise NodeError(f"{path.name} is {what}, not InfiniteTalk's (no {PROBE}): condition.infinitetalk reads "
                        "model_patches/wan2.1_infiniteTalk_single_fp16.safetensors or _multi_fp16")
    if "blocks.0.audio_cross_attn.proj.weight" not in state:
        raise NodeError(f"{path.name} has InfiniteTalk's audio projection but no per-block audio attention "
                        "(blocks.0.audio_cross_attn): the file is cut short; download it again")
    patch = InfiniteTalkPatch(state)
    why = misfit(patch, state)
    if why:
        raise NodeError(f"{path.name} is not a complete InfiniteTalk patch ({why}): download it again")
    return patch.eval()


def features_per_frame(sound: dict) -> torch.Tensor:
    """encode.audio's layers [L + 1, T, D] (sound["fps"] a second) as InfiniteTalk reads them: the transformer
    layers' outputs (the first, the feature projection, dropped), linearly resampled (ends aligned) to one per
    25 fps video frame: [frames, L, D]."""
    from nodes.generate.audio_encoder import speech
    layers, rate = speech(sound, "InfiniteTalk")
    layers = layers[1:].float()
    n = int(layers.shape[1] / float(rate) * FPS)
    if n < 1:
        raise NodeError("the sound is shorter than one video frame (40 ms): give a longer span")
    return F.interpolate(layers.transpose(1, 2), size=n, mode="linear", align_corners=True).permute(2, 0, 1)


def one_timeline(voices: list) -> list:
    """Two speakers take turns: the first voice, then the second, each silent (zeros) while the other speaks."""
    if len(voices) < 2:
        return voices
    total = sum(v.shape[0] for v in voices)
    out, at = [], 0
    for v in voices:
        full = v.new_zeros(total, *v.shape[1:])
        full[at:at + v.shape[0]] = v
        out.append(full)
        at += v.shape[0]
    return out


def _windows(voice: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """[stop - start, 5, L, D]: each frame's features and its 2 neighbours either side (clamped at the ends); past
    the sound's end, its first feature (most likely silence)."""
    if stop > voice.shape[0]:
        voice = torch.cat([voice, voice[:1].expand(stop - voice.shape[0], *voice.shape[1:])])
    at = torch.arange(start, stop)[:, None] + torch.arange(WINDOW)[None] - WINDOW // 2
    return voice[at.clamp(0, voice.shape[0] - 1)]


def audio_tokens(patch: InfiniteTalkPatch, voices: list, start: int, frames: int) -> torch.Tensor:
    """The audio tokens of video frames start..start + frames: [latent frames, speakers * tokens, dim]. The first
    latent frame reads its frame's 5-frame window; each later one its 4 frames': the first's first 3 features, the
    middle ones' centres and the last's last 3."""
    if (frames - 1) % LATENT_STRIDE:
        raise NodeError(f"InfiniteTalk reads {frames} frames in latent frames of {LATENT_STRIDE}: make the length "
                        f"4n+1 ({frames // LATENT_STRIDE * LATENT_STRIDE + 1})")
    w = torch.stack([_windows(v, start, start + frames) for v in voices])       # [S, frames, 5, L, D]
    want = patch.audio_proj.proj1.in_features
    if w[0, 0].numel() != want:
        raise NodeError(f"this InfiniteTalk patch reads {want // WINDOW} speech features a frame (layers x width) "
                        f"but the speech encoder gives {w.shape[-2]} x {w.shape[-1]}: encode the voices with "
                        "InfiniteTalk's encoder (audio_encoders/wav2vec2-chinese-base_fp16.safetensors)")
    mid = WINDOW // 2
    rest = w[:, 1:].unflatten(1, (-1, LATENT_STRIDE))                          # [S, n, 4, 5, L, D]
    rest = torch.cat([rest[:, :, 0, :mid + 1], rest[:, :, 1:-1, mid], rest[:, :, -1, mid:]], 2)
    p = next(patch.parameters())
    tokens = patch.audio_proj(w[:, :1].to(p), rest.to(p))                       # [S, F, tokens, dim]
    return torch.cat(list(tokens), 1) if tokens.shape[0] > 1 else tokens[0]


def token_masks(masks: torch.Tensor, latent_h: int, latent_w: int, patch_hw) -> torch.Tensor:
    """The speakers' masks [S, H, W] at the token grid (nearest), as [S, tokens per frame] booleans."""
    grid = (latent_h // patch_hw[0], latent_w // patch_hw[1])
    return (F.interpolate(masks[None].float(), size=grid, mode="nearest")[0] > 0).flatten(1)


def _rope_1d(x, pos):
    """x [..., N, d] rotated by 1-D positions pos [N] (adjacent channel pairs, base 10000)."""
    d = x.shape[-1]
    a = pos.double()[:, None] / 10000.0 ** (torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)
    cos, sin = a.cos().float(), a.sin().float()
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).flatten(-2).type_as(x)


def _speaker_positions(q, k_first, masks, heads):
    """Each video token's rotary position from whose region its query attends to most (in the first frame):
    q [B, N, C], k_first [B, S, C] (after norm and rotary), masks [speakers, S] -> [B, N]."""
    q = q.unflatten(-1, (heads, -1)).float()
    k = k_first.unflatten(-1, (heads, -1)).float()
    m = masks.float()
    share = 0
    for h in range(heads):      # one head's [B, N, S] at a time: all at once is gigabytes at 81 frames of 480p
        probs = torch.softmax(q[:, :, h] @ k[:, :, h].transpose(-1, -2) * q.shape[-1] ** -0.5, -1)
        share = share + probs @ m.T / (m.sum(1) + 1e-8) / heads
    share = share.transpose(1, 2)                                               # [B, speakers, N]
    lo, hi = share.amin(-1, keepdim=True), share.amax(-1, keepdim=True)
    r = torch.tensor(SPEAKER_RANGES, device=q.device, dtype=share.dtype)
    scaled = (share - lo) / (hi - lo + 1e-8) * (r[:, 1:] - r[:, :1]) + r[:, :1]
    return scaled.gather(1, share.argmax(1, keepdim=True))[:, 0]


def _audio_attention(block, x, tokens, grid, heads, positions=None):
    """block's audio cross-attention: each latent frame's video tokens x [B, F * S, C] attend to that frame's audio
    tokens [F, A, C_a]; positions [B, F * S]: the two-speaker rotary positions of the video tokens (None: one)."""
    att = block.audio_cross_attn
    b, f = x.shape[0], grid[0]
    q = att.q_linear(x).unflatten(-1, (heads, -1)).transpose(1, 2)             # [B, H, N, d]
    k, v = att.kv_linear(tokens.to(x)).unflatten(-1, (2, heads, -1)).permute(2, 0, 3, 1, 4)   # [F, H, A, d]
    if positions is not None:
        q = torch.stack([_rope_1d(q[i], positions[i]) for i in range(b)])
        half = k.shape[2] // 2
        centre = torch.tensor([sum(r) / 2 for r in SPEAKER_RANGES], device=x.device)
        k = _rope_1d(k, centre.repeat_interleave(torch.tensor([half, k.shape[2] - half], device=x.device)))
    q = q.unflatten(2, (f, -1)).transpose(1, 2).flatten(0, 1)                   # [B * F, H, S, d]
    k, v = (t.repeat(b, 1, 1, 1) for t in (k, v))
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)    # [B * F, S, C]
    return att.proj(out).unflatten(0, (b, f)).flatten(1, 2)


def _qk(attn, x, rotary, keys: int):
    """The self-attention's queries of x and keys of its first `keys` tokens (the first frame's: the only ones the
    speakers' regions are read in) as the model attends with them (normed, rotated): [B, N, C], [B, keys, C]."""
    cos, sin = rotary                   # [1, N, 1, head_dim]
    out = []
    for t in (attn.norm_q(attn.to_q(x)), attn.norm_k(attn.to_k(x[:, :keys]))):
        n = t.shape[1]
        t = t.unflatten(-1, (attn.heads, -1))
        x1, x2 = t.unflatten(-1, (-1, 2)).unbind(-1)
        c, s = cos[:, :n, :, 0::2], sin[:, :n, :, 1::2]
        out.append(torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], -1).flatten(-2).type_as(t).flatten(2))
    return out


@contextmanager
def patched(transformer, patch: InfiniteTalkPatch, tokens: torch.Tensor, masks=None, scale: float = 1.0):
    """While active, the Wan transformer's blocks read the audio tokens [latent frames, A, dim] through the patch's
    audio attention; masks [2, tokens per frame]: the two speakers' regions (None: one speaker)."""
    cfg = transformer.config
    if len(patch.blocks) != len(transformer.blocks) or patch.dim != cfg.num_attention_heads * cfg.attention_head_dim:
        raise NodeError(f"this InfiniteTalk patch is for a Wan model of {len(patch.blocks)} blocks of width "
                        f"{patch.dim}; this one has {len(transformer.blocks)} of "
                        f"{cfg.num_attention_heads * cfg.attention_head_dim}: InfiniteTalk patches Wan 2.1 I2V 14B")
    heads = cfg.num_attention_heads
    p = next(transformer.parameters())
    patch.to(p.device, p.dtype)
    tokens = tokens.to(p.device)        # once a forward, not once a block
    state = {}

    def grid(_module, _args, out):
        state["grid"] = tuple(out.shape[2:])
        if out.shape[2] != tokens.shape[0]:
            raise NodeError(f"the InfiniteTalk audio covers {tokens.shape[0]} latent frames but the latent has "
                            f"{out.shape[2]}: make the latent with condition.infinitetalk")

    def share(_module, args):
        x, rotary = args[0], args[3]
        q, k = _qk(_module, x, rotary, state["grid"][1] * state["grid"][2])
        state["positions"] = _speaker_positions(q, k, masks.to(x.device), heads)

    def before_cross(_module, args):
        state["x"] = args[0]

    def add_audio(i):
        def hook(_module, _args, out):
            x = state.pop("x").type_as(out) + out
            block = patch.blocks[i]
            y = _audio_attention(block, block.norm_x(x), tokens, state["grid"], heads,
                                 state.pop("positions", None))
            return out + y * scale
        return hook

    hooks = [transformer.patch_embedding.register_forward_hook(grid)]
    for i, block in enumerate(transformer.blocks):
        if masks is not None:
            hooks.append(block.attn1.register_forward_pre_hook(share))
        hooks.append(block.norm2.register_forward_pre_hook(before_cross))
        hooks.append(block.attn2.register_forward_hook(add_audio(i)))
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


class Talk(NamedTuple):
    """What condition.infinitetalk puts on the model (ComfyUI: its transformer options and sampling wrappers)."""
    patch: InfiniteTalkPatch
    tokens: torch.Tensor                # [latent frames, speakers * 32, dim]
    masks: Optional[torch.Tensor]       # [2, tokens per frame] (two speakers) or None
    scale: float
    motion: torch.Tensor                # [1, C, m, h, w]: the clean latent frames every step's input starts with


class KeepMotion:
    """A run wrapper: a continuation's result starts with its motion frames (the previous clip's) as they were."""

    def __init__(self, motion: torch.Tensor):
        self.motion = motion

    def pass_steps(self, steps: int) -> list:
        return [steps]

    def __call__(self, run, start_noise, info):
        out = run(start_noise)
        m = self.motion.shape[2]
        return torch.cat([self.motion.to(out).expand(out.shape[0], -1, -1, -1, -1), out[:, :, m:]], 2)


def condition(model, patch: InfiniteTalkPatch, vae, positive, negative, voices: list, masks: list, first=None,
              image_embeds=None, previous=None, frames: int = 81, width: int = 832, height: int = 480,
              motion_frames: int = 9, scale: float = 1.0) -> dict:
    """ComfyUI's WanInfiniteTalkToVideo: {model, positive, negative, latent, trim}. voices: encode.audio's outputs
    (one, or two taking turns); masks: the two speakers' regions ([H, W] each, any size) with two voices;
    previous: the clip so far (a continuation: its last `motion_frames` frames start this one, whose sound starts
    where they do, and `trim` says how many frames to drop from the decoded result)."""
    import numpy as np
    from nodes.generate.adapters import get_adapter
    from nodes.generate.families import family
    from nodes.generate.image_cond import condition_frames
    from nodes.generate.vae_ops import empty_latent
    if model.family != "wan":
        raise NodeError(f"condition.infinitetalk patches a Wan 2.1 image-to-video model; this is a {model.family} one")
    need_wan_vae(vae, "condition.infinitetalk")
    if len(voices) == 2 and len(masks) != 2:
        raise NodeError("two voices need both speakers' masks (mask_1 for the first voice's speaker, mask_2 for the "
                        "second's): paint or connect them")
    if len(masks) == 2 and len(voices) != 2:
        raise NodeError("two speakers' masks need two voices: connect audio_embeds_2, or disconnect the masks")
    if len(masks) == 1:
        # the masks place each voice's tokens by speaker (halves of the audio tokens): one would split one voice
        raise NodeError("a speaker's mask tells two speakers apart; one voice needs none: disconnect it, or connect "
                        "the second voice (audio_embeds_2) and both masks")
    patch_hw = transformer_of(model).config.patch_size[1:]
    latent = empty_latent(vae, frames, width, height, family("wan").fps)
    pipe = vae.pipe
    if first is not None:
        cond = condition_frames(vae, positive, negative, latent, first, None, image_embeds)
        positive, negative = cond["positive"], cond["negative"]
    elif image_embeds is not None:
        positive = positive.with_extra(image_embeds=image_embeds.embeds)
        negative = None if negative is None else negative.with_extra(image_embeds=image_embeds.embeds)
    start = 0
    with torch.inference_mode():
        if previous is not None:
            if previous.length < motion_frames:
                raise NodeError(f"the previous clip has {previous.length} frames; a continuation starts with its "
                                f"last {motion_frames}: give a longer clip or fewer motion frames")
            from nodes.generate.wan_s2v_cond import _pixels
            px = _pixels(pipe, previous.frames(previous.length - motion_frames, previous.length), latent.width,
                         latent.height)
            motion = get_adapter("wan").vae_encode(pipe, px).float().cpu()
            start = previous.length - motion_frames
        elif first is not None:
            motion = positive.extra["concat"][:, 4:, :1].float()
        else:
            from nodes.generate.adapters.wan import zero_latent
            motion = zero_latent(latent.samples[:1, :, :1].shape)        # ComfyUI's motion frame without a picture
        tokens = audio_tokens(patch, one_timeline([features_per_frame(v) for v in voices]), start,
                              latent.samples.shape[2] * LATENT_STRIDE - LATENT_STRIDE + 1)
        spans = None
        if masks:
            # a clip of masks: its first (ComfyUI reads one mask per speaker)
            still = [m.frames(0, 1)[0] if hasattr(m, "frames") else m for m in masks]
            # each at the token grid on its own: the two may be drawn at different sizes
            spans = torch.cat([token_masks(torch.as_tensor(np.asarray(m, np.float32)).squeeze()[None],
                                           latent.samples.shape[3], latent.samples.shape[4], patch_hw) for m in still])
            empty = [i + 1 for i, s in enumerate(spans) if not s.any()]
            if empty:
                raise NodeError(f"mask_{empty[0]} covers none of the video's {spans.shape[1]} patches (it is empty, "
                                "or its region is smaller than one): without it the model cannot tell where that "
                                "speaker is. Paint the speaker's region white: give the mask.painter feeding it a "
                                "drawing (path: a PNG whose alpha covers that speaker, from any paint program), or "
                                "feed it another mask (mask.from_video of a white-on-black picture)")
    talk = Talk(patch, tokens.cpu(), spans, float(scale), motion)
    out = model.with_option("infinitetalk", talk)
    if previous is not None:
        out = out.with_run_wrapper(KeepMotion(motion))
    return {"model": out, "positive": positive, "negative": negative, "latent": latent,
            "trim": motion_frames if previous is not None else 0}


def transformer_of(model):
    t = getattr(model.pipe, "transformer", None)
    if t is None or not getattr(t.config, "image_dim", None):
        raise NodeError("InfiniteTalk patches Wan 2.1 image-to-video 14B (wan2.1_i2v_480p_14B or 720p); this Wan "
                        "model is not an image-to-video one with CLIP image input")
    return t


def load(mm, name: str):
    """The InfiniteTalk patch in `name` (a file in model_patches/), cached by the model manager."""
    from nodes.generate.handles import ComponentHandle
    from nodes.generate.model_manager import resolve_model_path
    path = resolve_model_path(name, "model_patches", "model patch (InfiniteTalk)")
    patch = mm.cached(("model_patch", str(path.resolve())), lambda: read(path), files=(path,))
    return ComponentHandle("wan", str(path), patch, "model_patch")
