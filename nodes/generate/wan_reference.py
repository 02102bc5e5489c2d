"""Wan 2.2 Fun's reference image: the `ref_conv` that Wan 2.2 Fun Control models add to Wan's transformer.

diffusers (0.42) has no such model, so the rest of it is diffusers' WanTransformer3DModel and this convolution
is attached as its `ref_conv` submodule (the name the released files use). How the model reads it (VideoX-Fun's
WanTransformer3DModel, Apache-2.0; ComfyUI reads it the same way): the reference image's latent frame goes
through the convolution, whose kernel and stride are the patch size, and its tokens are put before the video's,
as one more latent frame at time 0 of the rotary positions (the video's frames move to 1..T). The tokens are
dropped again before the output projection, so the model predicts the video alone."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from graph_engine import NodeError

NOT_REFERENCE = ("a reference image (ComfyUI's ref_image) is read by Wan 2.2 Fun Control models "
                 "(wan2.2_fun_control_*.safetensors); this Wan model has no ref_conv to read it: disconnect it")


def attach(transformer, state: dict):
    """Give a WanTransformer3DModel the reference convolution whose tensors `state` holds (ref_conv.*)."""
    w = state["ref_conv.weight"]
    transformer.add_module("ref_conv", nn.Conv2d(int(w.shape[1]), int(w.shape[0]), tuple(w.shape[2:]),
                                                 stride=tuple(w.shape[2:])))
    return transformer


def reads_reference(transformer) -> bool:
    return isinstance(getattr(transformer, "ref_conv", None), nn.Conv2d)


@contextmanager
def reference_input(transformer, latent: torch.Tensor):
    """While active, the transformer reads the reference latent `latent` ([B, C, h, w], B = 1 serves the whole
    batch) as a latent frame before the video's."""
    if not reads_reference(transformer):
        raise NodeError(NOT_REFERENCE)
    state = {}

    def rope(_module, args):
        (x,) = args
        # the rotary table only reads the shape: one more frame, in front
        return (x[:, :, :1].expand(-1, -1, x.shape[2] + 1, -1, -1),)

    def prepend(_module, _args, out):
        ref = transformer.ref_conv(latent.to(out.device, out.dtype))
        if ref.shape[1:] != (out.shape[1], *out.shape[3:]):
            raise NodeError(f"the reference image's latent gives a {list(ref.shape[2:])} patch grid but the video's is "
                            f"{list(out.shape[3:])}: condition.fun_control must see the latent the sampler uses")
        state["tokens"] = ref.shape[2] * ref.shape[3]
        return torch.cat([ref.expand(out.shape[0], -1, -1, -1)[:, :, None], out], dim=2)

    def drop(_module, _args, out):
        return out[:, state["tokens"]:]
    hooks = [transformer.rope.register_forward_pre_hook(rope),
             transformer.patch_embedding.register_forward_hook(prepend),
             transformer.proj_out.register_forward_hook(drop)]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
