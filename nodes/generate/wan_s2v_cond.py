"""Wan 2.2 S2V's conditioning (ComfyUI's WanSoundImageToVideo and WanSoundImageToVideoExtend): the voice's features
per video frame, the reference image's latent, the motion frames before the clip, a control video's latent, and the
empty latent to sample. The model's side is nodes/generate/wan_s2v.py."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.generate.handles import need_wan_vae
from nodes.generate.latent import Conditioning, Latent

FPS = 16                   # the video's frame rate the model was trained at
SOUND_RATE = 30            # the features are resampled to this many a second, then picked one per video frame
MOTION_PIXELS = 73         # pixel frames of motion before the clip (19 latent frames)
MOTION_LATENTS = 19


def sound_per_frame(layers: torch.Tensor, rate: float, frames: int, offset: int = 0) -> torch.Tensor:
    """encode.audio's layers [L, T, D] (`rate` a second) as the model reads them: [1, L, D, frames], one feature per
    video frame from `offset` on (zeros past the sound's end). As the published pipeline picks them: linearly
    resampled to 30 a second (ends aligned), then the one nearest each 16 fps frame's time."""
    n = int(layers.shape[1] / float(rate) * SOUND_RATE)
    feats = F.interpolate(layers.transpose(1, 2).float(), size=n, mode="linear", align_corners=True)  # [L, D, n]
    # the frames are counted in whole clips of `frames` (the published bucketing), zeros after the sound
    clips = int(n / (frames * SOUND_RATE / FPS)) + 1
    count = clips * frames
    total = math.ceil(count / FPS * SOUND_RATE)
    at = np.round(np.linspace(0, count / FPS, count, endpoint=False) * SOUND_RATE).astype(int).clip(0, total - 1)
    out = torch.zeros(*feats.shape[:2], count)
    inside = at < n
    out[..., torch.from_numpy(inside)] = feats[..., torch.from_numpy(at[inside])]
    out = out[None, ..., offset:offset + frames]
    # A continuation of another length than the first clip can start inside the last bucket and run past it: the
    # rest is after the sound, silence (the model needs one feature per frame; ComfyUI's stops with a shape error).
    return F.pad(out, (0, frames - out.shape[-1])) if 0 < out.shape[-1] < frames else out


def _pixels(pipe, images, width, height) -> torch.Tensor:
    """[1, 3, N, H, W] in [-1, 1]: each picture resized to cover the size and centre-cropped."""
    from PIL import Image
    px = pipe.video_processor.preprocess([Image.fromarray(np.ascontiguousarray(i)) for i in images], height=height,
                                         width=width, resize_mode="crop")
    return px.permute(1, 0, 2, 3)[None]


def condition(vae, positive: Conditioning, negative: Optional[Conditioning], frames: int, width: int, height: int,
              sound: Optional[dict] = None, reference: Optional[np.ndarray] = None, control=None, motion=None,
              previous: Optional[Latent] = None) -> dict:
    """(positive, negative, latent) for a Wan 2.2 S2V model. The positive conditioning carries the voice, the negative
    silence (zeros), so guidance pushes towards the voice. previous (Extend): the clip so far, whose last 19 latent
    frames are the motion frames and whose length is where this clip's sound starts; its size is the new clip's."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.families import family
    from nodes.generate.vae_ops import empty_latent
    need_wan_vae(vae, "condition.s2v")
    if previous is not None:
        if motion is not None:
            raise NodeError("condition.s2v takes its motion frames from `previous` (the clip so far) or `motion` (a "
                            "video), not both: disconnect one")
        width, height = previous.width, previous.height
    latent = empty_latent(vae, frames, width, height, family("wan").fps)
    latent_frames = latent.samples.shape[2]
    adapter, pipe = get_adapter("wan"), vae.pipe
    extra, silent = {}, {}
    if sound is not None:
        offset = previous.samples.shape[2] * 4 if previous is not None else 0
        from nodes.generate.audio_encoder import speech
        feats = sound_per_frame(*speech(sound, "Wan 2.2 S2V"), latent_frames * 4, offset)
        if feats.shape[-1]:
            extra["s2v_audio"], silent["s2v_audio"] = feats, torch.zeros_like(feats)
    with torch.inference_mode():
        if reference is not None:
            extra["s2v_reference"] = adapter.vae_encode(pipe, _pixels(pipe, [reference], width, height))[:, :, :1]
        if motion is not None:
            px = _pixels(pipe, list(motion.frames(max(0, motion.length - MOTION_PIXELS), motion.length)), width,
                         height)
            # fewer than 73 frames: mid-grey ones before them, as the published node pads
            px = torch.cat([px.new_zeros(1, 3, MOTION_PIXELS - px.shape[2], *px.shape[3:]), px], 2)
            extra["s2v_motion"] = adapter.vae_encode(pipe, px)[:, :, -MOTION_LATENTS:]
        elif previous is not None:
            extra["s2v_motion"] = previous.samples[:1, :, -MOTION_LATENTS:].float()
        if control is not None:
            px = _pixels(pipe, list(control.frames(0, min(control.length, frames))), width, height)
            z = adapter.vae_encode(pipe, px)
            lay = torch.zeros_like(latent.samples)
            lay[:, :, :z.shape[2]] = z[:, :, :latent_frames]
            extra["s2v_control"] = lay
    pos = positive.with_extra(**extra)
    neg = None if negative is None else negative.with_extra(**{**extra, **silent})
    return {"positive": pos, "negative": neg, "latent": latent}
