"""ComfyUI's UNetTemporalAttentionMultiply: the output projections of a UNet's self-attention (attn1) and
cross-attention (attn2) scaled, temporal and spatial ("structural") ones apart. ComfyUI scales those weights by
their names, which only UNets have; on a DiT (Wan, LTX, HunyuanVideo) it finds none and changes nothing, and so
does this."""
from __future__ import annotations

from contextlib import contextmanager
from typing import NamedTuple

UNET_FAMILIES = ("sd", "sdxl", "animatediff", "svd")


class AttentionScale(NamedTuple):
    self_structural: float = 1.0
    self_temporal: float = 1.0
    cross_structural: float = 1.0
    cross_temporal: float = 1.0

    def factor(self, name: str) -> float:
        # ComfyUI's temporal blocks (SVD's) are its `.time_stack.`, diffusers' `temporal_transformer_blocks`
        temporal = "temporal_transformer_blocks" in name
        if name.endswith("attn1.to_out.0"):
            return self.self_temporal if temporal else self.self_structural
        if name.endswith("attn2.to_out.0"):
            return self.cross_temporal if temporal else self.cross_structural
        return 1.0


@contextmanager
def attention_scaled(handle):
    """While active (sampling holds the pipeline's lock), the UNet's attention outputs are scaled as the model's
    attention_multiply option says: hooks on the projections, so the shared weights stay as loaded."""
    scale = handle.option("attention_multiply")
    unet = getattr(handle.pipe, "unet", None)
    hooks = []
    if scale is not None and handle.family in UNET_FAMILIES and unet is not None:
        for name, module in unet.named_modules():
            f = scale.factor(name)
            if f != 1.0:
                hooks.append(module.register_forward_hook(lambda m, args, out, f=f: out * f))
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
