"""SeedVR2's files as ComfyUI's templates load them (utility_seedvr2_*: diffusion_models/seedvr2_3b_* / _7b_*)."""
from __future__ import annotations

from nodes.generate.converters import Built, register


@register("seedvr2", "diffusion_model")
def nadit(state, det) -> Built:
    """The NaDiT restorer in the file's own names (ComfyUI loads it into its module unconverted), its sizes and
    layout (3B or 7B) read from the tensors."""
    from nodes.generate.seedvr2_dit import NaDiT, nadit_config
    cfg = nadit_config(state)
    return Built(lambda: NaDiT(**cfg), dict(state), cfg)
