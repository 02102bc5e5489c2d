"""Inpainting: a mask on a latent (the sampler redraws only there), the masked picture for inpainting models,
and the greyed encode ComfyUI's VAEEncodeForInpaint makes. The mask maths is nodes/common/masks.py.

A latent's mask is [1, 1, T, h, w] on the latent grid, 1 where the sampler draws, 0 where each step puts the
input latent back (noised to the step's level, sampling.guided_model_fn), as ComfyUI's SetLatentNoiseMask."""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
import torch

from graph_engine import Clip, NodeError
from nodes.common import masks
from nodes.generate.latent import Conditioning, Latent, whole_sample


def time_factor(latent: Latent) -> int:
    """Pixel frames per latent frame, from the latent's own sizes (1 for image models; 4 for Wan's VAE)."""
    t = int(latent.samples.shape[2])
    return 1 if t <= 1 or t == latent.frames else max(1, (latent.frames - 1) // (t - 1))


def latent_mask(mask, latent: Latent, rounded: bool = False) -> torch.Tensor:
    """[1, 1, T, h, w] float of a MASK (a still or a clip of masks, stretched to the latent's picture size) on the
    latent's grid: each latent pixel the share of its pixels the mask covers (area), each latent frame the most
    any of its pixel frames asks for (a causal video VAE packs frames 1-4, 5-8, ... into one). rounded: 0 or 1,
    as an inpainting model's mask channel is trained."""
    import torch.nn.functional as F
    t, h, w = (int(s) for s in latent.samples.shape[2:])
    px = torch.from_numpy(masks.frames_of(mask, 0, latent.frames, (latent.width, latent.height)))
    tf = time_factor(latent)
    if tf > 1:
        groups = [px[:1]] + [px[1 + (k - 1) * tf: 1 + k * tf] for k in range(1, t)]
        px = torch.stack([g.amax(0) if len(g) else px[-1] for g in groups])
    px = px[:t]
    if px.shape[0] < t:                 # a latent padded past its frames holds the last mask
        px = torch.cat([px, px[-1:].expand(t - px.shape[0], -1, -1)])
    small = F.interpolate(px[:, None], size=(h, w), mode="area")[:, 0]
    if rounded:
        small = small.round()
    return small.clamp(0, 1)[None, None].float()


def set_mask(latent: Latent, mask) -> Latent:
    """The latent with `mask` as the region the sampler redraws (ComfyUI's SetLatentNoiseMask)."""
    whole_sample(latent, done="given a mask to redraw in")
    return replace(latent, mask=latent_mask(mask, latent))


def differential(timestep, sigmas, lowest: float, strength: float = 1.0):
    """ComfyUI's DifferentialDiffusion as mask_at(mask, sigma): at each step the region is where the soft mask
    reaches the share of the schedule still to run (in the model's timesteps), so a mask of 0.3 is redrawn only
    over the last 30% of the steps and changes that much less, a gradient becomes a gradient of change; strength
    below 1 mixes the soft mask back in."""
    t_from = float(timestep(float(sigmas[0])))
    t_to = float(timestep(max(float(sigmas[-1]), lowest)))

    def mask_at(mask: torch.Tensor, sigma) -> torch.Tensor:
        threshold = (float(timestep(float(sigma))) - t_to) / max(t_from - t_to, 1e-12)
        binary = (mask >= threshold).to(mask.dtype)
        return binary if strength >= 1 else strength * binary + (1 - strength) * mask
    return mask_at


def greyed(clip: Clip, mask) -> Clip:
    """The clip with the masked pixels (mask rounded to 0/1) set to mid grey, ComfyUI's (pixel - 0.5) * (1 - m)
    + 0.5: what an inpainting model is shown of the region it fills."""
    def reader(a: int, b: int) -> np.ndarray:
        m = masks.frames_of(mask, a, b, clip.size)
        keep = 1.0 - np.round(m)
        f = clip.frames(a, b).astype(np.float32)
        return np.clip((f - 127.5) * keep[..., None] + 127.5 + 0.5, 0, 255).astype(np.uint8)
    return clip.with_(reader=reader, matte=None, linear=None, local=True)


def encode_for_inpaint(vae, clip: Clip, mask, grow: int, check=lambda: None, progress=None) -> Latent:
    """ComfyUI's VAEEncodeForInpaint: the clip encoded with its masked pixels grey, and the mask (rounded, grown
    by `grow` pixels so the seam is redrawn too) as the latent's mask (an inpainting model's mask channel rounds it
    again on the latent grid). Meant for inpainting models at denoise 1:
    a plain model redraws the grey it is given."""
    from nodes.generate.vae_ops import encode_clip
    _check_size(clip, mask)
    latent = encode_clip(vae, greyed(clip, mask), check, progress)
    grown = masks.per_frame(mask, lambda m: masks.dilate_square(m, int(grow)))
    return replace(latent, mask=latent_mask(grown, latent))


def inpaint_conditioning(vae, positive: Conditioning, negative: Optional[Conditioning], clip: Clip, mask,
                         noise_mask: bool = True, check=lambda: None, progress=None):
    """ComfyUI's InpaintModelConditioning: (positive, negative, latent). Both conditionings carry the inpainting
    model's extra input channels, the mask (rounded, on the latent grid) and the clip encoded with the masked
    pixels grey; the latent is the clip's own encoding, with the mask as its noise mask when noise_mask is on
    (outside it the picture then stays as it was)."""
    from nodes.generate.vae_ops import encode_clip
    _check_size(clip, mask)
    latent = encode_clip(vae, clip, check, progress)
    masked = encode_clip(vae, greyed(clip, mask), check)
    if latent.family == "flux":
        px = torch.from_numpy(masks.frames_of(mask, 0, latent.frames, (latent.width, latent.height)))
        concat = torch.cat([masked.samples[:1], pixel_blocks(px[None, None].float(), 8)], dim=1)
    else:
        concat = torch.cat([latent_mask(mask, latent, rounded=True), masked.samples[:1]], dim=1)
    pos = positive.with_extra(concat=concat)
    neg = None if negative is None else negative.with_extra(concat=concat)
    return pos, neg, (replace(latent, mask=latent_mask(mask, latent)) if noise_mask else latent)


def _check_size(clip: Clip, mask) -> None:
    if masks.is_clip(mask) and mask.length > clip.length:
        raise NodeError(f"the mask clip has {mask.length} frames but the clip {clip.length}: trim the mask "
                        f"(video.trim) or give a longer clip")


def pixel_blocks(px: torch.Tensor, size: int) -> torch.Tensor:
    """[1, 1, T, H, W] -> [1, size * size, T, H / size, W / size]: each size x size block of pixels as that many
    channels, row by row (the mask as FLUX.1 Fill reads it: ComfyUI's Flux.concat_cond, diffusers' FluxFillPipeline)."""
    b, _, t, h, w = px.shape
    blocks = px.reshape(b, t, h // size, size, w // size, size).permute(0, 3, 5, 1, 2, 4)
    return blocks.reshape(b, size * size, t, h // size, w // size)


# -- inpainting models (a UNet reading 4 + 1 + 4 channels; FLUX.1 Fill 16 + 16 + 64, Depth / Canny 16 + 16) ---------
# Image-to-video models read extra channels too (SVD, Wan i2v), filled by condition.frames: not these.
INPAINT_FAMILIES = ("sd", "sdxl", "animatediff", "flux")


def extra_channels(handle) -> int:
    """Latent channels the denoiser reads beyond the latent's own (5 for an SD 1.5 / SDXL inpainting UNet, 80 for
    FLUX.1 Fill: its transformer's input counts each 2x2 patch's), 0 for most."""
    den = getattr(handle.pipe, "unet", None) or getattr(handle.pipe, "transformer", None)
    if handle.family not in INPAINT_FAMILIES or den is None or not hasattr(den, "config"):
        return 0
    per = 4 if handle.family == "flux" else 1
    out = int(getattr(den.config, "out_channels", 0) or 0)
    return max(0, int(den.config.in_channels) - out) // per if out else 0


def model_concat(handle, positive: Conditioning, negative: Optional[Conditioning], latent: Latent, vae_encode):
    """(positive, negative) with the inpainting model's mask and masked-picture channels, as ComfyUI fills them
    in when InpaintModelConditioning did not: the latent's own mask (rounded) and the latent itself (a
    VAEEncodeForInpaint latent is the greyed picture), or, without a mask, all to redraw over a grey picture
    (the model then makes a whole new image, as from an empty latent). `vae_encode(pixels)` encodes [1, 3, T, H,
    W] in [-1, 1] (the grey)."""
    extra = extra_channels(handle)
    if extra == 0:
        if positive.extra.get("concat") is not None and handle.family in INPAINT_FAMILIES:
            raise NodeError("the conditioning carries an inpainting model's mask and masked picture "
                            "(condition.inpaint), but this model is not an inpainting model: connect the "
                            "latent's mask with latent.set_mask instead (or load an inpainting checkpoint)")
        return positive, negative
    given = positive.extra.get("concat")
    if given is not None:
        if given.shape[1] != extra:
            raise NodeError(f"the inpainting conditioning gives {given.shape[1]} extra channels, the model reads "
                            f"{extra}: make it with condition.inpaint and this model's VAE")
        return positive, negative
    samples = latent.samples[:1].float()
    if handle.family == "flux":
        concat = _flux_default(latent, extra)
    elif latent.mask is not None:
        concat = torch.cat([latent.mask.float().round().expand(1, 1, *samples.shape[2:]), samples], 1)
    else:
        t, h, w = samples.shape[2:]
        sf = latent.height // h if h else 8
        grey = vae_encode(torch.zeros(1, 3, 1, h * sf, w * sf)).float().expand(1, -1, t, -1, -1)
        concat = torch.cat([torch.ones(1, 1, t, h, w), grey], 1)
    if concat.shape[1] != extra:
        raise NodeError(f"this inpainting model reads {extra} extra channels, but a mask and a "
                        f"{samples.shape[1]}-channel latent give {concat.shape[1]}: use the model's own VAE")
    return positive.with_extra(concat=concat), None if negative is None else negative.with_extra(concat=concat)


# FLUX.1's one VAE (ae.safetensors): latent space = (VAE space - shift) * scale
FLUX_VAE_SHIFT, FLUX_VAE_SCALE = 0.1159, 0.3611


def _flux_default(latent: Latent, extra: int) -> torch.Tensor:
    """FLUX.1 Fill's (or Depth's, Canny's) channels when condition.inpaint (condition.control_image) gave none, as
    ComfyUI's Flux.concat_cond fills them: an all-zero picture (in the VAE's own space, so the latent space's shifted
    value) and, for Fill, the latent's mask stretched to the picture (bilinear), or all to redraw."""
    t, h, w = latent.samples.shape[2:]
    zero = torch.full((1, 16, t, h, w), -FLUX_VAE_SHIFT * FLUX_VAE_SCALE)
    if extra <= 16:
        return zero
    if latent.mask is None:
        mask = torch.ones(1, 1, t, h * 8, w * 8)
    else:
        m = latent.mask.float().expand(1, 1, t, h, w)[0].permute(1, 0, 2, 3)
        mask = torch.nn.functional.interpolate(m, size=(h * 8, w * 8), mode="bilinear")
        mask = mask.permute(1, 0, 2, 3)[None]
    return torch.cat([zero, pixel_blocks(mask, 8)], 1)
