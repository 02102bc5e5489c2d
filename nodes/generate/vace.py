"""Wan VACE conditioning: a control video, its masks and a reference image turned into the VACE
transformer's 96-channel control context, as ComfyUI's WanVaceToVideo and diffusers' WanVACEPipeline
build it.

The control video is split by the mask into an "inactive" clip (what stays: the video where the mask
is 0, grey elsewhere) and a "reactive" one (what is regenerated); both are VAE-encoded (32 channels).
The mask itself goes in at latent resolution with each 8x8 pixel block unfolded into 64 channels.
A reference image is encoded as one extra latent frame in front (its mask 0, its reactive half zero),
so the latent to sample is one frame longer and latent.trim drops that frame after sampling."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.handles import need_wan_vae
from nodes.generate.adapters import get_adapter
from nodes.generate.families import family as family_spec
from nodes.generate.latent import Conditioning, Latent, cut_sound


def cover(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """[T, H, W, C] float frames cropped to the target's aspect ratio about the centre, then resized
    (bilinear) to height x width: the way ComfyUI fits control frames and reference images."""
    import torch.nn.functional as F
    t, h, w, _ = frames.shape
    if w * height > h * width:              # too wide: the same margin off each side
        x = round((w - h * width / height) / 2)
        frames = frames[:, :, x:w - x]
    elif w * height < h * width:            # too tall: off the top and the bottom
        y = round((h - w * height / width) / 2)
        frames = frames[:, y:h - y]
    x = frames.permute(0, 3, 1, 2).float()
    if x.shape[2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return x.permute(0, 2, 3, 1)


def _fit_length(x: torch.Tensor, length: int, fill: float) -> torch.Tensor:
    """The first `length` frames, padded with `fill` frames when the clip is shorter (as ComfyUI pads)."""
    x = x[:length]
    if x.shape[0] < length:
        x = torch.cat([x, x.new_full((length - x.shape[0], *x.shape[1:]), fill)])
    return x


def control_frames(video, length: int, width: int, height: int) -> torch.Tensor:
    """[length, H, W, 3] in [0, 1]: the control clip fitted to the size, grey (0.5) where it is missing."""
    if video is None:
        return torch.full((length, height, width, 3), 0.5)
    frames = torch.from_numpy(np.ascontiguousarray(video.frames(0, min(video.length, length)))).float() / 255.0
    return _fit_length(cover(frames, width, height), length, 0.5)


def control_masks(masks, length: int, width: int, height: int) -> torch.Tensor:
    """[length, H, W, 1] in [0, 1] (1 = generate there) of a MASK: a clip of masks (or a picture clip, by its
    luma) padded with 1 (generate) past its end, as ComfyUI pads; a still mask covers every frame."""
    from nodes.common import masks as mk
    if masks is None:
        return torch.ones(length, height, width, 1)
    if not mk.is_clip(masks):
        return cover(torch.from_numpy(mk.frames_of(masks, 0, length))[..., None], width, height).clamp(0, 1)
    if masks.channels == 1:
        grey = mk.frames_of(masks, 0, min(masks.length, length))
    else:
        rgb = np.ascontiguousarray(masks.frames(0, min(masks.length, length))).astype(np.float32)
        grey = rgb[..., :3] @ np.array([0.2126, 0.7152, 0.0722], np.float32) / 255.0
    return _fit_length(cover(torch.from_numpy(grey)[..., None], width, height).clamp(0, 1), length, 1.0)


def mask_latent(mask: torch.Tensor, latent_frames: int, space: int) -> torch.Tensor:
    """[T, H, W, 1] pixel mask -> [space^2, t, H/space, W/space]: each space x space block unfolded into
    channels, resampled to the latent frames (nearest, so frame 0 stays frame 0's mask)."""
    import torch.nn.functional as F
    t, h, w, _ = mask.shape
    m = mask[..., 0].reshape(t, h // space, space, w // space, space).permute(2, 4, 0, 1, 3)
    m = m.reshape(space * space, t, h // space, w // space)
    return F.interpolate(m[None], size=(latent_frames, h // space, w // space), mode="nearest-exact")[0]


def vace_condition(vae, positive: Conditioning, negative: Optional[Conditioning], width: int, height: int,
                   length: int, strength: float = 1.0, control_video=None, masks=None,
                   reference: Optional[np.ndarray] = None) -> dict:
    """positive/negative carrying the VACE context, the (empty) latent to sample and how many reference
    latent frames lead it (`trim`, for latent.trim after sampling)."""
    need_wan_vae(vae, "condition.vace")
    adapter = get_adapter("wan")
    spec = family_spec("wan")
    tf, sf, channels = adapter.factors(vae.pipe)
    spec.check_frames(length, tf)
    spec.check_size(width, height, sf)
    if reference is not None and (not isinstance(reference, np.ndarray) or reference.ndim != 3):
        raise NodeError("the reference must be one RGB image (H x W x 3)")
    frames = spec.latent_frames(length, tf)
    from nodes.generate.vae_ops import check_fits
    check_fits(f"VACE's {length} frames at {width}x{height} as pictures", (length, height, width, 3))
    pixels = control_frames(control_video, length, width, height)
    mask = control_masks(masks, length, width, height)

    def encode(rgb01: torch.Tensor) -> torch.Tensor:     # [T, H, W, 3] in [0, 1] -> normalised latent
        from nodes.generate.vae_ops import encode_pixels
        return encode_pixels(adapter, vae.pipe, (rgb01 * 2 - 1).permute(3, 0, 1, 2)[None],
                             "encoding the VACE control video").float().cpu()

    with torch.inference_mode():
        centred = pixels - 0.5
        context = torch.cat([encode(centred * (1 - mask) + 0.5), encode(centred * mask + 0.5)], dim=1)
        m = mask_latent(mask, frames, sf)[None]
        refs = 0
        if reference is not None:
            ref = encode(cover(torch.from_numpy(np.ascontiguousarray(reference[..., :3])).float()[None] / 255.0,
                               width, height))
            refs = ref.shape[2]
            context = torch.cat([torch.cat([ref, torch.zeros_like(ref)], dim=1), context], dim=2)
            m = torch.cat([m.new_zeros(1, m.shape[1], refs, *m.shape[3:]), m], dim=2)
        context = torch.cat([context, m], dim=1)
    extra = {"vace": context}
    pos = positive.with_extra(**extra).with_meta(vace_strength=float(strength))
    neg = None if negative is None else negative.with_extra(**extra).with_meta(vace_strength=float(strength))
    total = frames + refs
    latent = Latent(torch.zeros(1, channels, total, height // sf, width // sf), "wan", spec.pixel_frames(total, tf),
                    spec.fps, width, height)
    return {"positive": pos, "negative": neg, "latent": latent, "trim": refs}


def trim_latent(latent: Latent, amount: int) -> Latent:
    """The latent without its first `amount` frames (ComfyUI's TrimVideoLatent); the pixel frame count it
    decodes to follows."""
    if amount < 0:
        raise NodeError(f"amount must be 0 or more, got {amount}")
    if amount == 0:
        return latent
    t = latent.samples.shape[2]
    if amount >= t:
        raise NodeError(f"cannot drop {amount} latent frames from a latent of {t}: nothing would be left")
    from dataclasses import replace
    spec = family_spec(latent.family)
    dropped = spec.pixel_frames(t) - spec.pixel_frames(t - amount)
    audio = None if latent.audio is None else cut_sound(latent, amount, t - amount).contiguous()
    return replace(latent, samples=latent.samples[:, :, amount:].contiguous(), frames=max(1, latent.frames - dropped),
                   audio=audio)
