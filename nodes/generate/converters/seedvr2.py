"""SeedVR2's files as ComfyUI's templates load them (utility_seedvr2_*: diffusion_models/seedvr2_3b_* / _7b_*,
vae/seedvr2_ema_vae_fp16.safetensors)."""
from __future__ import annotations

from nodes.generate.converters import Built, register


@register("seedvr2", "diffusion_model")
def nadit(state, det) -> Built:
    """The NaDiT restorer in the file's own names (ComfyUI loads it into its module unconverted), its sizes and
    layout (3B or 7B) read from the tensors."""
    from nodes.generate.seedvr2_dit import NaDiT, nadit_config, with_rope
    cfg = nadit_config(state)
    return Built(lambda: NaDiT(**cfg), with_rope(state, cfg), cfg)


@register("seedvr2", "vae")
def vae(state, det) -> Built:
    """The causal video VAE in the file's own names (ComfyUI loads it into its module unconverted), its sizes read
    from the tensors."""
    from nodes.generate.seedvr2_vae import SeedVR2VAE, config_from_state
    cfg = config_from_state(state)
    return Built(lambda: SeedVR2VAE(**cfg), dict(state), cfg)
