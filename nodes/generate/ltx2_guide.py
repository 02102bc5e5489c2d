"""LTX-2's guides (ComfyUI's LTXVAddGuide): a picture or clip the video must pass through, at any frame and strength
(first and last frames, keyframes between, IC-LoRA control clips: canny, depth or pose). As ComfyUI does it, the
guide's latent frames follow the video's in the sampled latent, each token placed in time where the guide's frames
are (its RoPE positions, ComfyUI's keyframe_idxs) and kept at noise mask 1 - strength; a strength other than 1 also
weighs the attention between the video and the guide's tokens by log(strength). The conditioning carries them; the
sampler appends the frames for its run and cuts them again, so ComfyUI's LTXVCropGuides has nothing to cut."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from graph_engine import NodeError

GUIDE = "ltx2_guide"                # Conditioning.extra: the guides' normalised latent frames [1, C, K, h, w]
AT = "ltx2_guide_at"                # their tokens' RoPE positions in pixel frames and pixels [1, 3, K*h*w, 2]
WEIGHT = "ltx2_guide_weight"        # their tokens' strength [K*h*w]
STEP = 8                            # LTX-2's VAE: pixel frames per latent frame


def resolve_frame(frame_idx: int, latent_frames: int, guide_frames: int) -> int:
    """The pixel frame a guide of `guide_frames` (8n + 1 cut, less the leading frame a mid-video clip drops) starts
    at, as ComfyUI's LTXVAddGuide reads frame_idx: a negative one counts from the video's end (-1: its last frame,
    never before 0); a clip not at 0 starts on a frame 8k + 1."""
    f = frame_idx if frame_idx >= 0 else max((latent_frames - 1) * STEP + 1 + frame_idx, 0)
    if guide_frames > 1 and f != 0:
        f = (f - 1) // STEP * STEP + 1
    return f


def with_guide(vae, positive, negative, latent, frames: np.ndarray, frame_idx: int = 0, strength: float = 1.0):
    """positive and negative carrying `frames` (uint8 [T, H, W, 3+]) as a guide of `latent`'s video from frame
    `frame_idx` at `strength`: cut to 8n + 1 frames, each fitted to the latent's size by a centre crop, encoded by
    the model's VAE (a clip starting past frame 0 behind a copy of its first frame, whose latent frame is dropped, so
    that no latent frame of it stands for a single picture), added after the guides they already carry."""
    from PIL import Image
    from nodes.generate.adapters import get_adapter
    from nodes.generate.vae_ops import encode_pixels
    if vae.family != "ltx2" or latent.family != "ltx2":
        raise NodeError(f"condition.guide_video is LTX-2's; this VAE is {vae.family}'s and the latent "
                        f"{latent.family}'s: give it an LTX-2 checkpoint's VAE and a latent made with it (LTX-Video "
                        "pins a first or last frame with condition.frames)")
    if strength < 0:
        raise NodeError(f"condition.guide_video's strength is {strength}: give 0 or more (1 keeps the guide as it is)")
    t, h, w = latent.samples.shape[2:]
    kept = (len(frames) - 1) // STEP * STEP + 1
    start = frame_idx if frame_idx >= 0 else max((t - 1) * STEP + 1 + frame_idx, 0)
    single = start == 0 or kept == 1           # ComfyUI's causal_fix: the guide's first latent frame is one picture
    if not single:
        frames = np.concatenate([frames[:1], frames])
    frames = frames[:(len(frames) - 1) // STEP * STEP + 1]
    px = vae.pipe.video_processor.preprocess_video([Image.fromarray(np.ascontiguousarray(f[..., :3])) for f in frames],
                                                   height=latent.height, width=latent.width, resize_mode="crop")
    with torch.inference_mode():
        z = encode_pixels(get_adapter("ltx2"), vae.pipe, px, "encoding the guide").float().cpu()
    if not single:
        z, frames = z[:, :, 1:], frames[1:]
    at = resolve_frame(frame_idx, t, len(frames))
    first = (at + STEP - 1) // STEP
    if first + z.shape[2] > t:
        raise NodeError(f"the guide ({len(frames)} frames from frame {at}) runs past the latent's {latent.frames} "
                        f"frames: trim it (video.trim) or place it earlier")
    k = z.shape[2]
    grid = torch.stack(torch.meshgrid(torch.arange(k), torch.arange(h), torch.arange(w), indexing="ij")).reshape(3, -1)
    pos = torch.stack([grid, grid + 1], -1).float() * torch.tensor([STEP, 32, 32.0]).view(3, 1, 1)
    if single:
        pos[0] = (pos[0] + 1 - STEP).clamp(min=0)
    pos[0] += at
    weight = torch.full((k * h * w,), float(strength))

    def add(c):
        if c is None:
            return None
        old = [c.extra[key] for key in (GUIDE, AT, WEIGHT)] if GUIDE in c.extra else None
        if old is not None and old[0].shape[3:] != z.shape[3:]:
            raise NodeError("these prompts carry a guide of another size: give condition.guide_video the same latent")
        new = (z, pos[None], weight) if old is None else (torch.cat([old[0], z], 2), torch.cat([old[1], pos[None]], 2),
                                                          torch.cat([old[2], weight]))
        return dataclasses.replace(c, extra={**c.extra, **dict(zip((GUIDE, AT, WEIGHT), new))})
    return add(positive), add(negative)


def guide_of(conds):
    """The guides the conditionings carry (the first that has them): (latent frames, RoPE positions, strengths), or
    None."""
    return next(((c.extra[GUIDE], c.extra[AT], c.extra[WEIGHT]) for c in conds if c is not None and GUIDE in c.extra),
                None)


def with_keyframes(latent, conds):
    """`latent` with the guides' latent frames after its own, at noise mask 1 - strength (none below 0), as ComfyUI's
    LTXVAddGuide appends them; the latent itself where no guide is given."""
    guide = guide_of(conds)
    if guide is None:
        return latent
    z, _, weight = guide
    t, h, w = latent.samples.shape[2:]
    if z.shape[3:] != (h, w):
        raise NodeError(f"this guide was encoded for a {z.shape[4] * 32}x{z.shape[3] * 32} video and the latent is "
                        f"{w * 32}x{h * 32}: a pass at another size takes the prompts from before "
                        "condition.guide_video")
    mask = torch.ones(1, 1, t, 1, 1) if latent.mask is None else latent.mask.float()
    keep = (1 - weight.view(-1, h * w)[:, 0]).clamp(min=0).view(1, 1, -1, 1, 1)
    keep = keep.expand(1, 1, -1, *mask.shape[3:])
    return dataclasses.replace(latent, samples=torch.cat([latent.samples.float(), z.to(latent.samples.device)], 2),
                               mask=torch.cat([mask, keep], 2))


def attention_blocks(weight: torch.Tensor, total: int, dtype=torch.float32):
    """ComfyUI's guide attention mask for `weight` (the last tokens' strengths, of `total`) as the additive biases of
    its two blocks of queries, never the [T, T] matrix: the video's rows [1, 1, T] (log(strength) on the guides'
    columns: one row for all of them) and the guides' rows [1, G, T] (log of each one's strength on the video's
    columns, nothing between guide tokens). A strength of 0 shuts the pair off (the dtype's lowest value)."""
    w = weight.float()
    g = total - w.shape[0]
    log_w = torch.where(w > 0, w.clamp(min=torch.finfo(torch.float32).tiny).log(),
                        torch.full_like(w, torch.finfo(dtype).min))
    row = torch.zeros(1, 1, total, device=w.device)
    row[0, 0, g:] = log_w
    block = torch.zeros(1, w.shape[0], total, device=w.device)
    block[0, :, :g] = log_w[:, None]
    return row.to(dtype), block.to(dtype)


def needs_bias(weight: torch.Tensor) -> bool:
    return bool((weight != 1.0).any())


def frames_of(video=None, image=None) -> np.ndarray:
    """The guide's frames from a clip or one picture (uint8 [T, H, W, C])."""
    if (video is None) == (image is None):
        raise NodeError("condition.guide_video takes one guide: connect a video or an image")
    return video.to_array() if video is not None else np.asarray(image)[None]

