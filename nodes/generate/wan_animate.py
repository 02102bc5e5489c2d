"""Wan 2.2 Animate: a character (the reference image) moved by a pose video, its face by a face video, as
ComfyUI's WanAnimateToVideo and diffusers' WanAnimatePipeline lay the inputs out.

The latent to sample has one extra frame in front holding the reference image's latent (kept, mask 1); the
frames after it read a clip that is grey (animate: the character in a new picture) or the background video with
the character's region free (replace: the character swapped into the footage), its mask 1 where the clip is kept.
Frames continued from a previous clip (`continue_motion`) lead that clip and are kept, which is how longer videos
are made, one clip after another. The pose video's latents are added to the video's patches; the face video goes
in as pixels (square crops) to the model's face motion encoder, and as all -1 (no face) in the negative."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.handles import need_wan_vae
from nodes.generate.adapters import get_adapter
from nodes.generate.families import family as family_spec
from nodes.generate.latent import Conditioning, Latent
from nodes.generate.vace import cover

NOT_ANIMATE = ("condition.wan_animate is for Wan 2.2 Animate models (wan2.2_animate_14B_*.safetensors); this Wan "
               "model has no face or pose encoders")
NEEDS_TOKENS = ("a Wan 2.2 Animate model also reads the reference's CLIP image tokens: connect encode.image of the "
                "reference (load.clip_vision with clip_vision_h.safetensors) to condition.wan_animate's image_embeds")
NEEDS_ANIMATE = ("a Wan 2.2 Animate model takes its reference image, pose video and face video through "
                 "condition.wan_animate (ComfyUI's WanAnimateToVideo)")


def _rgb01(clip, start: int, stop: int) -> torch.Tensor:
    """[stop - start, H, W, 3] float in [0, 1] of a clip's frames."""
    return torch.from_numpy(np.ascontiguousarray(clip.frames(start, stop)[..., :3])).float() / 255.0


class AnimateClip:
    """What both Animate nodes (condition.wan_animate, condition.wan_animate2) start from: the latent's sizes, a grey clip, the reference fitted, an encoder."""

    def __init__(self, vae, what: str, reference, width: int, height: int, length: int):
        if reference is not None and (not isinstance(reference, np.ndarray) or reference.ndim != 3):
            raise NodeError("the reference must be one RGB image (H x W x 3): the character to animate")
        self.adapter, spec = get_adapter("wan"), family_spec("wan")
        self.tf, sf, self.channels = self.adapter.factors(vae.pipe)
        spec.check_frames(length, self.tf)
        spec.check_size(width, height, sf)
        self.frames, self.h, self.w = spec.latent_frames(length, self.tf), height // sf, width // sf
        self.latent = lambda n: Latent(torch.zeros(1, self.channels, n, self.h, self.w), "wan",
                                       spec.pixel_frames(n, self.tf), spec.fps, width, height)
        from nodes.generate.vae_ops import check_fits
        check_fits(f"{what}'s {length} frames at {width}x{height} as pictures", (length, height, width, 3))
        self.video = torch.full((length, height, width, 3), 0.5)
        self.ref = torch.zeros(1, height, width, 3) if reference is None else \
            cover(torch.from_numpy(np.ascontiguousarray(reference[..., :3])).float()[None] / 255.0, width, height)
        self.vae, self.what, self.size = vae, what, (width, height)

    def encode(self, rgb01: torch.Tensor) -> torch.Tensor:     # [T, H, W, 3] in [0, 1] -> normalised latent
        from nodes.generate.vae_ops import encode_pixels
        return encode_pixels(self.adapter, self.vae.pipe, (rgb01 * 2 - 1).permute(3, 0, 1, 2)[None],
                             f"encoding {self.what}'s pictures").float().cpu()


def continued(video: torch.Tensor, motion, count: int, offset: int):
    """The last `count` frames of the clip continued laid at the start of `video` (fitted to its size): (how many,
    the driving videos' offset moved back by them)."""
    kept = min(count, motion.length, video.shape[0])
    if kept <= 0:
        return 0, offset
    video[:kept] = cover(_rgb01(motion, motion.length - kept, motion.length), video.shape[2], video.shape[1])
    return kept, max(0, offset - kept)


def _from(clip, offset: int, length: int, what: str) -> torch.Tensor:
    """The clip's frames from `offset`, at most `length` of them."""
    if clip.length <= offset:
        raise NodeError(f"the {what} has {clip.length} frames, none after frame {offset} where this clip starts "
                        "(offset): give a longer video or a smaller offset")
    return _rgb01(clip, offset, min(clip.length, offset + length))


def _held(frames: torch.Tensor, length: int) -> torch.Tensor:
    """Padded to `length` with its last frame, as ComfyUI pads a short pose video."""
    if frames.shape[0] < length:
        frames = torch.cat([frames, frames[-1:].expand(length - frames.shape[0], *frames.shape[1:])])
    return frames


def _square(frames: torch.Tensor) -> torch.Tensor:
    """The centred square of each frame, uint8 [1, 3, T, S, S]: the face encoder's crop (resized to the model's
    size when sampling, so the pixels are resampled once)."""
    t, h, w, _ = frames.shape
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    sq = frames[:, y:y + s, x:x + s]
    return (sq * 255).round().clamp(0, 255).to(torch.uint8).permute(3, 0, 1, 2)[None].contiguous()


def _keep_mask(character_mask, offset: int, length: int, kept: int, h: int, w: int) -> torch.Tensor:
    """[length, h, w] at latent size: 1 where the clip behind the video is kept (continued frames; the background
    outside the character's mask), 0 where the model draws."""
    import torch.nn.functional as F
    from nodes.common import masks as mk
    keep = torch.zeros(length, h, w)
    if character_mask is not None:
        if mk.is_clip(character_mask):
            if character_mask.length <= offset:
                raise NodeError(f"the character mask has {character_mask.length} frames, none after frame {offset} "
                                "where this clip starts (offset)")
            stop = min(character_mask.length, offset + length)
            m = torch.from_numpy(mk.frames_of(character_mask, offset, stop))
        else:
            m = torch.from_numpy(mk.frames_of(character_mask, 0, length))
        m = F.interpolate(m[:, None], size=(h, w), mode="nearest-exact")[:, 0]
        keep[:m.shape[0]] = 1 - m
    keep[:kept] = 1
    return keep


def _i2v_layout(keep: torch.Tensor, tf: int) -> torch.Tensor:
    """[T, h, w] pixel-frame mask -> [1, tf, t, h, w] per latent frame: the first frame stands for a whole latent
    frame (repeated), each later latent frame holds tf pixel frames, as Wan's image-to-video masks are laid out."""
    m = torch.cat([keep[:1].expand(tf, -1, -1), keep[1:]])
    return m.view(-1, tf, *m.shape[1:]).permute(1, 0, 2, 3)[None]


def animate_condition(vae, positive: Conditioning, negative: Optional[Conditioning], width: int, height: int,
                      length: int, pose=None, face=None, reference: Optional[np.ndarray] = None,
                      image_embeds: Optional[Conditioning] = None, background=None, character_mask=None,
                      continue_motion=None, continue_frames: int = 5, offset: int = 0) -> dict:
    """positive/negative carrying Wan Animate's inputs, the latent to sample (its reference frame in front: drop it
    with latent.trim, amount 1), how many frames of the decoded clip repeat the continued clip (`trim_image`) and
    the frame of the driving videos where the next clip starts (`offset`)."""
    need_wan_vae(vae, "condition.wan_animate")
    if pose is None or face is None:
        raise NodeError("condition.wan_animate needs the pose video (the body's skeleton, e.g. DWPose's) and the face "
                        "video (the face cropped from the driving video) of the motion to follow")
    c = AnimateClip(vae, "Wan Animate", reference, width, height, length)
    tf, frames, h, w, video, encode = c.tf, c.frames, c.h, c.w, c.video, c.encode
    kept, offset = continued(video, continue_motion, continue_frames, offset) if continue_motion is not None else \
        (0, offset)
    if background is not None:
        bg = cover(_from(background, offset, length, "background video"), width, height)
        video[kept:bg.shape[0]] = bg[kept:]
    keep = _keep_mask(character_mask, offset, length, kept, h, w)
    pose_px = cover(_held(_from(pose, offset, length, "pose video"), length), width, height)
    face_px = _square(_held(_from(face, offset, length, "face video"), length))
    with torch.inference_mode():
        ref_z, video_z, pose_z = encode(c.ref), encode(video), encode(pose_px)
    concat = torch.cat([torch.cat([torch.ones(1, tf, 1, h, w), ref_z], dim=1),
                        torch.cat([_i2v_layout(keep, tf), video_z], dim=1)], dim=2)
    extra = {"concat": concat, "animate_pose": pose_z, "animate_face": face_px}
    if image_embeds is not None:
        extra["image_embeds"] = image_embeds.embeds
    pos = positive.with_extra(**extra)
    neg = None if negative is None else negative.with_extra(**extra).with_meta(animate_face_blank=True)
    return {"positive": pos, "negative": neg, "latent": c.latent(frames + 1), "trim_image": kept,
            "offset": offset + length}


def animate_inputs(model, conds, frames, batch: int, device, dtype) -> dict:
    """The Animate transformer's pose latents and face pixels for one model call, per conditioning and batch item
    (the negative's face all -1, as Wan Animate's guidance runs without the face)."""
    import torch.nn.functional as F
    if not hasattr(model, "motion_encoder"):
        raise NodeError(NOT_ANIMATE)
    if getattr(model.config, "image_dim", None) and "image_embeds" not in conds[-1].extra:
        raise NodeError(NEEDS_TOKENS)
    total = conds[-1].extra["concat"].shape[2]
    if [int(i) for i in frames] != list(range(total)):
        raise NodeError("Wan Animate samples its clip in one pass, the reference frame in front: remove "
                        "context.windows; for a longer video chain condition.wan_animate nodes, each continuing the "
                        "last (continue_motion, offset)")
    size = int(model.config.motion_encoder_size)
    pose, face = [], []
    for c in conds:
        px = c.extra.get("animate_face", conds[-1].extra["animate_face"])
        if c.meta.get("animate_face_blank"):
            px = torch.full((1, 3, px.shape[2], size, size), -1.0)
        else:
            flat = px[0].permute(1, 0, 2, 3).float()                  # [T, 3, S, S]
            if flat.shape[-1] != size:
                flat = F.interpolate(flat, size=(size, size), mode="area" if flat.shape[-1] > size else "bilinear")
            px = (flat / 127.5 - 1).permute(1, 0, 2, 3)[None]
        pose += [c.extra.get("animate_pose", conds[-1].extra["animate_pose"])] * batch
        face += [px] * batch
    return {"pose_hidden_states": torch.cat(pose).to(device, dtype), "face_pixel_values": torch.cat(face).to(device, dtype)}
