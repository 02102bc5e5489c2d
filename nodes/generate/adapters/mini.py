"""kinograph-mini: the bundled pixel-space flow-matching model (no VAE: the latent is the pixels)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from nodes.generate.adapters.base import Adapter, stack_global


class MiniAdapter(Adapter):
    family = "mini"
    space = "flow"
    prediction = "flow"

    def load(self, path: Path, dtype, device: str, **opts):
        from nodes.mini.model import load_mini
        model, text_encoder = load_mini(path, device=device, dtype=dtype)
        return SimpleNamespace(transformer=model, text_encoder=text_encoder, vae=None, scheduler=None)

    def factors(self, pipe):
        return 1, 1, 3

    def encode_text(self, pipe, prompts, device):
        with torch.no_grad():
            emb, mask = pipe.text_encoder.encode(list(prompts))
        return emb, mask, None

    def token_offsets(self, pipe, text):
        return None                   # a word-level tokenizer without character offsets

    def timestep_fn(self, pipe):
        return lambda sigma: torch.as_tensor(sigma, dtype=torch.float32)

    def default_sigmas(self, pipe, steps, latent_shape):
        from nodes.generate.samplers import flow_sigmas
        return flow_sigmas(steps, 1.0).double()

    def flow_shift(self, pipe):
        return 1.0

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        e, m, _ = stack_global(conds, frames, device, dtype, batch)
        return {"emb": e, "mask": m}

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        return model(x_in.to(model.dtype), t.to(x_in.device).expand(x_in.shape[0]), inputs["emb"], inputs["mask"])

    def vae_per_frame(self):
        return True

    def vae_encode(self, pipe, pixels, generator=None):
        return pixels.float()

    def vae_decode(self, pipe, latent):
        return latent.float()

    def set_vae_tiling(self, pipe, on):
        pass


ADAPTERS = {"mini": MiniAdapter()}
