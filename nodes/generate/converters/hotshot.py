"""Hotshot-XL's temporal layers (hsxl_temporal_layers.safetensors) under AnimateDiff's original names: the same
architecture on SDXL's levels, named `temporal_attentions.N` for AnimateDiff's `motion_modules.N.temporal_transformer`
and `pos_encoder.positional_encoding` for `pos_encoder.pe`, as AnimateDiff-Evolved renames them."""
import re

MARKER = "down_blocks.0.temporal_attentions.0.proj_in.weight"


def to_animatediff(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        k = re.sub(r"\btemporal_attentions\.(\d+)\.", r"motion_modules.\1.temporal_transformer.", k, count=1)
        out[k.replace("pos_encoder.positional_encoding", "pos_encoder.pe")] = v
    return out
