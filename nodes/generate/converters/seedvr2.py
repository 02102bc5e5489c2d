"""SeedVR2's files as ComfyUI's templates load them (utility_seedvr2_*: vae/seedvr2_ema_vae_fp16.safetensors)."""
from __future__ import annotations

from nodes.generate.converters import Built, register


@register("seedvr2", "vae")
def vae(state, det) -> Built:
    """The causal video VAE in the file's own names (ComfyUI loads it into its module unconverted), its sizes read
    from the tensors."""
    from nodes.generate.seedvr2_vae import SeedVR2VAE, config_from_state
    cfg = config_from_state(state)
    return Built(lambda: SeedVR2VAE(**cfg), dict(state), cfg)
