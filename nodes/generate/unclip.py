"""SDXL "revision" (ComfyUI's unCLIPConditioning on an SDXL model): pictures' projected CLIP vision embeddings
(clip_vision_g's 1280, the width of SDXL's pooled OpenCLIP-G text output) take the place of the prompt's pooled text
in the UNet's added conditioning, as ComfyUI's model_base.sdxl_pooled / unclip_adm make it.

Each picture's embedding is noise-augmented as a diffusion step of the squared-cosine schedule (1000 levels):
sqrt(abar[k]) x + sqrt(1 - abar[k]) noise at level k = round(999 * noise_augmentation), the noise drawn from the
sampler's seed - 10 (a fresh generator each picture, so every picture gets the same draw), then scaled by its
strength. One picture: that is the pooled input. Several (chained unCLIP nodes, or a batch of pictures): their sum
is augmented once more at level 0, with noise ComfyUI draws unseeded (a different run each time); Kinograph draws it
from the same seed's generator, after the pictures' draw, so a run repeats."""
from __future__ import annotations

import math

import numpy as np
import torch

from graph_engine import NodeError

LEVELS = 1000
EMBEDS, SETTINGS = "unclip_embeds", "unclip_settings"    # Conditioning.extra: [rows, width], [rows, 2]


def _abar() -> np.ndarray:
    """The cumulative alphas of the squared-cosine schedule (betas capped at 0.999), in float64 as numpy has them."""
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    betas = np.array([min(1 - f((i + 1) / LEVELS) / f(i / LEVELS), 0.999) for i in range(LEVELS)])
    return np.cumprod(1.0 - betas)


def augmented(x: torch.Tensor, level: int, noise: torch.Tensor) -> torch.Tensor:
    """x [1, width] noised to `level` of the schedule (the factors float32, as ComfyUI's buffers are)."""
    abar = _abar()[level]
    a = torch.tensor(np.sqrt(abar), dtype=torch.float32)
    b = torch.tensor(np.sqrt(1.0 - abar), dtype=torch.float32)
    return a * x.float() + b * noise


def pooled(embeds: torch.Tensor, settings: torch.Tensor, seed: int) -> torch.Tensor:
    """[1, width]: the pooled input of the pictures' embeddings `embeds` [rows, width], each row's (strength,
    noise_augmentation) in `settings` [rows, 2], for a run of sampler seed `seed`."""
    width = embeds.shape[-1]
    gen = torch.Generator().manual_seed(int(seed) - 10)
    noise = torch.randn((1, width), generator=gen)      # every picture's: ComfyUI seeds afresh for each
    rows = [augmented(x[None], round((LEVELS - 1) * aug), noise) * strength
            for x, (strength, aug) in zip(embeds.float(), settings.tolist())]
    if len(rows) == 1:
        return rows[0]
    return augmented(torch.stack(rows).sum(0), 0, torch.randn((1, width), generator=gen))


def with_picture(conditioning, image, strength: float, noise_augmentation: float):
    """conditioning carrying the projected embedding of each picture encode.image read into `image`, with this
    strength and noise augmentation, after any a previous unCLIP node added (ComfyUI's unCLIPConditioning), on
    every entry of a combination as ComfyUI adds it to each."""
    if conditioning.family != "sdxl":
        raise NodeError(f"unCLIP conditioning (SDXL revision) is read by SDXL models; this prompt is a "
                        f"{conditioning.family} one: encode it with an SDXL checkpoint's text encoders")
    embeds = image.extra.get("clip_image_embeds")
    if embeds is None:
        raise NodeError("this picture was read by a CLIP vision model without its projection (visual_projection), "
                        "whose embedding unCLIP uses: load clip_vision_g.safetensors (ViT-bigG) with "
                        "load.clip_vision and encode the picture with encode.image")
    if strength == 0:
        return conditioning
    settings = torch.tensor([[strength, noise_augmentation]], dtype=torch.float32).repeat(embeds.shape[0], 1)
    return _added(conditioning, embeds.float(), settings)


def _added(conditioning, embeds, settings):
    """conditioning and each entry combined into it with these pictures after the ones it carries."""
    from dataclasses import replace
    old_e, old_s = conditioning.extra.get(EMBEDS), conditioning.extra.get(SETTINGS)
    extra = {EMBEDS: embeds if old_e is None else torch.cat([old_e, embeds]),
             SETTINGS: settings if old_s is None else torch.cat([old_s, settings])}
    return replace(conditioning, extra={**conditioning.extra, **extra},
                   parts=tuple(_added(p, embeds, settings) for p in conditioning.parts))


def for_run(conditioning, seed: int):
    """conditioning with the pictures' pooled input in place of the pooled text (every keyframe, every entry of a
    combination) where unCLIP nodes added pictures; as it is otherwise."""
    from dataclasses import replace
    if conditioning is None:
        return None
    parts = tuple(for_run(p, seed) for p in conditioning.parts)
    embeds = conditioning.extra.get(EMBEDS)
    if embeds is None:
        return replace(conditioning, parts=parts) if parts else conditioning
    text = conditioning.pooled
    if text is not None and text.shape[-1] != embeds.shape[-1]:
        raise NodeError(f"the pictures' CLIP vision embedding is {embeds.shape[-1]} wide and this SDXL model reads a "
                        f"{text.shape[-1]}-wide pooled prompt: use clip_vision_g.safetensors (ViT-bigG, 1280), "
                        "SDXL's revision encoder")
    row = pooled(embeds, conditioning.extra[SETTINGS], seed)
    rows = len(conditioning.keyframes)
    return replace(conditioning, pooled=row.expand(rows, -1).to(text.dtype if text is not None else row.dtype),
                   parts=parts)
