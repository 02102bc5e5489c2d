"""WanDancer's conditioning (ComfyUI's WanDancerVideo): the start frames' (or key frames') latent beside a mask of
which frames are kept, the first frame's and the reference image's CLIP tokens, the music's features and frame rate,
and the empty latent to sample. The model's side is nodes/generate/wan_dancer.py."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.generate.handles import need_wan_vae
from nodes.generate.latent import Conditioning
from nodes.generate.wan_dancer import BASE_FPS

FILL = 16               # start frames fitted to the size at a time


def kept_mask(frames: int, latent_frames: int, h: int, w: int, starts: int = 0, mask=None) -> torch.Tensor:
    """[1, 4, latent_frames, h, w]: 1 where the model keeps the given frames. Without a mask, the latent frames
    holding the `starts` start frames; with one (1 = a key frame there), the mask's frames (a still mask is one),
    nearest-sampled to the latent's size, each latent frame's four pixel frames as its four channels (the first
    frame four times); latent frames past a shorter mask's are generated, as ComfyUI's concat_cond pads them."""
    kept = torch.zeros(1, 4, latent_frames, h, w)
    if mask is None:
        kept[:, :, :(starts - 1) // 4 + 1] = 1.0
        return kept
    from nodes.common import masks as mk
    given = min(mask.length, frames) if mk.is_clip(mask) else 1
    if (given - 1) % 4:
        raise NodeError(f"the key frames' mask has {given} frames; WanDancer's Wan VAE holds 4n+1 frames (1, 5, ..., "
                        f"{frames}): make it with the clip's segment length (video.wan_dancer_keyframes)")
    m = torch.from_numpy(mk.frames_of(mask, 0, given))[None]
    m = F.interpolate(m, size=(h, w), mode="nearest-exact")
    m = torch.cat([m[:, :1].repeat_interleave(4, dim=1), m[:, 1:]], dim=1)
    kept[:, :, :m.shape[1] // 4] = m.view(1, -1, 4, h, w).transpose(1, 2)
    return kept


def condition(vae, positive: Conditioning, negative: Optional[Conditioning], frames: int, width: int, height: int,
              start=None, mask=None, image_embeds: Optional[Conditioning] = None,
              reference_embeds: Optional[Conditioning] = None, music: Optional[dict] = None) -> dict:
    """(positive, negative, latent) for a WanDancer model; both sides get the same inputs. start: a clip whose first
    frames (at most `frames`) are fitted to the size (ComfyUI's bilinear, centre-cropped) and encoded with black
    after them; mask: which of those frames the model keeps (WanDancer's local passes' key frames)."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.vae_ops import empty_latent
    from nodes.video.edit import comfy_scaled
    need_wan_vae(vae, "condition.wan_dancer")
    if (frames - 1) % 4:
        raise NodeError(f"frames={frames}: WanDancer's Wan VAE takes 4n+1 frames (149 as released)")
    if music is not None and "dancer" not in music:
        raise NodeError("these audio features are a speech encoder's (encode.audio); WanDancer reads the music's "
                        "rhythm features: connect encode.wan_dancer_audio")
    fps = float(music["fps"]) if music is not None else float(BASE_FPS)
    latent = empty_latent(vae, frames, width, height, fps)
    f, h, w = latent.samples.shape[2:]
    extra, meta = {}, {}
    if start is not None:
        n = min(start.length, frames)
        # -1..1 (black after the start frames), filled FILL frames at a time in place: 149 key frames at 720x1280
        # are 1.6 GB as float32, and whole-clip temporaries took three more copies
        px = np.full((frames, height, width, 3), -1.0, np.float32)
        for a in range(0, n, FILL):
            part = px[a:min(a + FILL, n)]
            part[:] = comfy_scaled(start.frames(a, a + len(part)).astype(np.float32) / 255.0, width, height,
                                   "bilinear", crop=True)
            part *= 2.0
            part -= 1.0
        pixels = torch.from_numpy(px).permute(3, 0, 1, 2)[None]
        with torch.inference_mode():
            z = get_adapter("wan").vae_encode(vae.pipe, pixels)
        extra["concat"] = torch.cat([kept_mask(frames, f, h, w, n, mask), z], dim=1)
    elif mask is not None:
        raise NodeError("condition.wan_dancer's mask says which start frames to keep: connect the frames (start)")
    if image_embeds is not None:
        extra["image_embeds"] = image_embeds.embeds
    if reference_embeds is not None:
        extra["dancer_reference"] = reference_embeds.embeds
    if music is not None:
        extra["dancer_music"] = music["dancer"]
        meta = {"dancer_fps": fps, "dancer_scale": float(music["scale"])}

    def given(c):
        return None if c is None else c.with_extra(**extra).with_meta(**meta)
    return {"positive": given(positive), "negative": given(negative), "latent": latent}
