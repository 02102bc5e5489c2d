"""Pixel space: the "latent" of a model that samples pictures themselves (Chroma Radiance), as ComfyUI's pixel_space
VAE holds it: the picture's RGB in [-1, 1] at full size, so encoding and decoding only move between [0, 1] colours and
that range (decoding clamps), with no network and no file (load.vae's name pixel_space)."""
from __future__ import annotations

import torch

from nodes.generate.adapters.base import Adapter
from nodes.generate.pixel_space_name import NAME


class PixelSpace:
    """What a pixel_space VAE handle holds: nothing to load."""
    components: dict = {}

    def __repr__(self):
        return "PixelSpace()"


class PixelSpaceAdapter(Adapter):
    family = NAME
    has_text = False

    def factors(self, pipe):
        return 1, 1, 3

    def vae_encode(self, pipe, pixels: torch.Tensor, generator=None) -> torch.Tensor:
        return pixels.float()

    def vae_decode(self, pipe, latent: torch.Tensor) -> torch.Tensor:
        return latent.float()

    def vae_per_frame(self) -> bool:
        return True

    def set_vae_tiling(self, pipe, on: bool) -> None:
        """Nothing to tile: decoding is the latent itself."""


ADAPTERS = {NAME: PixelSpaceAdapter()}
