"""ComfyUI's ScaleROPE on Wan: the rotary positions a Wan transformer reads its latent by, stretched and moved along
each axis. ComfyUI's rope_encode puts the i-th latent frame (row, column) at shift + i * scale (its linspace from
shift to shift + (n - 1) * scale) where diffusers' WanRotaryPosEmbed reads row i of its table; the table's
frequencies are the same (theta 10000, the head's channels split time / height / width as 2 * (d // 6) for each
side and the rest for time). ChronoEdit is the case in use: a picture and its edit as two latent frames 7 apart
(scale_t 7), as diffusers' ChronoEditRotaryPosEmbed places them."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Tuple

import torch

# ComfyUI's widget order: (scale_x, shift_x, scale_y, shift_y, scale_t, shift_t)
Scale = Tuple[float, float, float, float, float, float]
IDENTITY: Scale = (1.0, 0.0, 1.0, 0.0, 1.0, 0.0)


def axis_freqs(dim: int, count: int, scale: float, shift: float, theta: float = 10000.0):
    """cos and sin [count, dim] at positions shift + i * scale, each frequency repeated for the pair it turns
    (diffusers' get_1d_rotary_pos_embed with use_real and repeat_interleave_real)."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed
    pos = shift + scale * torch.arange(count, dtype=torch.float64)
    return get_1d_rotary_pos_embed(dim, pos, theta, use_real=True, repeat_interleave_real=True,
                                   freqs_dtype=torch.float64)


def grid_freqs(rope, f: int, h: int, w: int, scale: Scale = IDENTITY):
    """cos and sin [1, f h w, 1, head dim] (float64) of a grid of f x h x w patches, as diffusers' WanRotaryPosEmbed
    `rope` lays them out, at the positions of `scale`."""
    sx, hx, sy, hy, st, ht = scale
    parts = [axis_freqs(rope.t_dim, f, st, ht), axis_freqs(rope.h_dim, h, sy, hy), axis_freqs(rope.w_dim, w, sx, hx)]
    views = ((f, 1, 1, -1), (1, h, 1, -1), (1, 1, w, -1))
    return tuple(torch.cat([p[k].view(v).expand(f, h, w, -1) for p, v in zip(parts, views)], -1)
                 .reshape(1, f * h * w, 1, -1) for k in range(2))


def patches(rope, x):
    """The patch grid (frames, rows, columns) of a latent x [B, C, T, H, W]."""
    pt, ph, pw = rope.patch_size
    return x.shape[2] // pt, x.shape[3] // ph, x.shape[4] // pw


@contextmanager
def scaled_rope(transformer, scale: Scale):
    """While active, the transformer's rotary table (diffusers' WanRotaryPosEmbed) gives the positions of `scale`."""
    def positions(module, args, out):
        return tuple(f.to(o.device, o.dtype) for f, o in zip(grid_freqs(module, *patches(module, args[0]), scale), out))
    hook = transformer.rope.register_forward_hook(positions)
    try:
        yield
    finally:
        hook.remove()
