"""Wan 2.1 Fun camera control: the camera encoder that Wan Fun camera models add to Wan's i2v transformer.

Hand-written because diffusers (0.42) has no Wan Fun camera model: everything else of the model is
diffusers' WanTransformer3DModel, loaded as usual, and this small encoder is attached to it as the
`control_adapter` submodule (the name the released files use, so their tensors load under their own keys).

What the encoder computes (read from ComfyUI's CameraWanModel, GPL-3.0, and written anew): the camera's
Plücker rays, 24 channels per latent frame at the picture's full resolution ([B, 24, F, H, W], see
nodes/motion/embed.py), are folded 8x8 into channels (pixel unshuffle), projected to the transformer
width by a convolution with the patch size as kernel and stride (so its grid is the patch grid), and
refined by residual 3x3 blocks. The result is added to the patch embedding of the noisy latent, before
the transformer blocks. With zero weights it adds nothing: the model is its plain i2v transformer."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from graph_engine import NodeError

UNSHUFFLE = 8
NOT_CAMERA = ("camera conditioning needs a Wan Fun camera-control model (e.g. "
              "wan2.1_fun_camera_v1.1_1.3B_bf16.safetensors in load.diffusion_model); this one has no camera encoder")


class _Residual(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(torch.relu(self.conv1(x)))


class WanCameraEncoder(nn.Module):
    """Plücker rays [B, C, F, H, W] -> features [B, dim, F, H / (8 p), W / (8 p)] for patch size p."""

    def __init__(self, in_channels: int, dim: int, patch: int = 2, blocks: int = 1):
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(UNSHUFFLE)
        self.conv = nn.Conv2d(in_channels * UNSHUFFLE * UNSHUFFLE, dim, patch, stride=patch)
        self.residual_blocks = nn.Sequential(*[_Residual(dim) for _ in range(blocks)])

    def forward(self, rays: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = rays.shape
        x = rays.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        x = self.residual_blocks(self.conv(self.unshuffle(x)))
        return x.reshape(b, f, *x.shape[1:]).permute(0, 2, 1, 3, 4)


def attach(transformer, state: dict):
    """Give a WanTransformer3DModel the camera encoder whose tensors `state` holds (control_adapter.*)."""
    w = state["control_adapter.conv.weight"]
    blocks = len({k.split(".")[2] for k in state if k.startswith("control_adapter.residual_blocks.")})
    transformer.add_module("control_adapter", WanCameraEncoder(int(w.shape[1]) // UNSHUFFLE ** 2, int(w.shape[0]),
                                                               int(w.shape[-1]), blocks))
    return transformer


def is_camera_model(transformer) -> bool:
    return isinstance(getattr(transformer, "control_adapter", None), WanCameraEncoder)


@contextmanager
def camera_input(transformer, rays: torch.Tensor):
    """While active, the transformer's patch embedding carries the camera encoder's features of `rays`
    ([B, C, F, H, W]; B = 1 serves the whole batch)."""
    if not is_camera_model(transformer):
        raise NodeError(NOT_CAMERA)

    def add(_module, _args, out):
        # computed where the patch embedding ran: with offloading the encoder's weights live elsewhere between calls
        feats = transformer.control_adapter(rays.to(out.device, out.dtype))
        if out.shape[1:] != feats.shape[1:] or feats.shape[0] not in (1, out.shape[0]):
            raise NodeError(f"the camera rays give features {list(feats.shape[2:])} but the latent's patch grid is "
                            f"{list(out.shape[2:])}: condition.camera must see the same latent the sampler uses")
        return out + feats
    hook = transformer.patch_embedding.register_forward_hook(add)
    try:
        yield
    finally:
        hook.remove()
