"""SeedVR2 (ByteDance's one-step video restorer): the parts as loaded and what differs from the other families. Its
VAE (nodes/generate/seedvr2_vae.py) takes and gives the latent in the denoiser's space (scaled by 0.9152) itself; its
transformer samples as adapters/seedvr2_denoise.py says."""
from __future__ import annotations

from typing import Tuple

import torch
from diffusers import DiffusionPipeline

from nodes.generate.adapters.seedvr2_denoise import SeedVR2Denoising
from nodes.generate.seedvr2_vae import LATENT_CHANNELS, SPACE, TIME


class SeedVR2Parts(DiffusionPipeline):
    """The loaded parts of SeedVR2 (diffusers has no pipeline for it): the transformer, its scheduler and the VAE,
    any of them None."""

    def __init__(self, transformer=None, scheduler=None, vae=None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, vae=vae)


class SeedVR2Adapter(SeedVR2Denoising):
    family = "seedvr2"

    def factors(self, pipe) -> Tuple[int, int, int]:
        vae = getattr(pipe, "vae", None)
        if vae is None:
            return TIME, SPACE, LATENT_CHANNELS
        return vae.time, vae.space, vae.config.latent_channels

    def vae_encode(self, pipe, pixels: torch.Tensor, generator=None) -> torch.Tensor:
        return pipe.vae.encode(pixels)

    def vae_decode(self, pipe, latent: torch.Tensor) -> torch.Tensor:
        return pipe.vae.decode(latent)


ADAPTERS = {"seedvr2": SeedVR2Adapter()}
