"""Gaussian noise carried along a video's optical flow (Ryan Burgert's noise warping, as ComfyUI's VOIDWarpedNoise
uses it): every frame's noise is still unit-variance Gaussian per pixel, but a pixel's noise follows the motion from
frame to frame, so a sampler started from it keeps the previous pass's motion (VOID's second pass).

The state is [dx, dy, weight, noise...] per pixel. Each step splits it in two: pixels that land somewhere (scatter
along the flow: several may land on one pixel, merged by weight) and pixels that nothing lands on (pulled back along
the flow, nearest). Where one source pixel was copied to several places the copies are made independent again
(regaussianize: each group's share of fresh zero-mean noise, scaled by 1/sqrt(count)), which keeps the variance 1."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from nodes.motion.noise_warp_kernels import kernels


def _resized(image: torch.Tensor, size, mode: str) -> torch.Tensor:
    """CHW image at size (h, w) or scaled by a factor; the image itself where the size is unchanged."""
    _, h, w = image.shape
    nh, nw = (max(1, int(h * size)), max(1, int(w * size))) if isinstance(size, (int, float)) else size
    if (nh, nw) == (h, w):
        return image
    extra = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(image[None], size=(nh, nw), mode=mode, **extra)[0]


def _pulled(image: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Each pixel takes the nearest pixel at its position + (dx, dy); 0 outside the image."""
    _, h, w = image.shape
    x = (dx + torch.arange(w, dtype=dx.dtype)) / (w - 1) * 2 - 1
    y = (dy + torch.arange(h, dtype=dy.dtype)[:, None]) / (h - 1) * 2 - 1
    grid = torch.stack([x, y], -1)[None].to(image.dtype)
    return F.grid_sample(image[None], grid, mode="nearest", align_corners=True, padding_mode="zeros")[0]


def warp_state(state: torch.Tensor, flow: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The state [3 + C, H, W] (dx, dy, weight, noise) one frame on along flow [2, H, W]."""
    split, groups, regaussianize, landed_weights, merge, _ = kernels()
    c, h, w = state.shape
    # pulled: where each pixel would look back along the flow (grid_sample's own rounding picks the pixel)
    index = torch.arange(1, h * w + 1, dtype=torch.float32).reshape(1, h, w)
    source = _pulled(index, -flow[0], -flow[1]).reshape(-1).long() - 1
    # pushed: each pixel moved on along the flow (its remainder kept nowhere: ComfyUI's xy_mode "none"); the pulled
    # half only where nothing landed
    both, dest, landed = split(state.numpy(), flow.numpy(), source.numpy())
    # both halves regaussianized together: a source copied into each is one group (groups found on the first channel)
    group, counts = groups(both[3].reshape(-1))
    fresh = torch.randn((c - 3, h, 2 * w), generator=gen, dtype=state.dtype)
    root = (torch.from_numpy(counts).to(torch.float32) ** 0.5).numpy()
    regaussianize(both[3:].reshape(c - 3, -1), both[2].reshape(-1), fresh.numpy().reshape(c - 3, -1), group, counts,
                  root)
    wsum, wsq = landed_weights(both, dest)
    out = torch.from_numpy(merge(both, dest, landed, wsum, torch.from_numpy(wsq).sqrt().numpy()))
    out[2] = ((out[2] / out[2].mean()) + 1e-5) ** 0.9999
    return out


def _noise_of(state: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(kernels()[5](state.numpy(), (state[2] ** 2).sqrt().numpy()))


def warped_noise(frames: torch.Tensor, flow_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], channels: int,
                 seed: int, frame_scale: float = 0.5, flow_scale: int = 8, pool: int = 32) -> torch.Tensor:
    """Noise [T, H', W', channels] for frames [T, H, W, 3] (uint8): the frames scaled by frame_scale (area), flow
    between each pair from flow_of(a, b) (CHW floats in 0..1 -> [2, h, w] in pixels), the noise kept at flow_scale x
    that size and area-pooled by pool for each frame (times pool, which keeps the variance 1)."""
    x = frames.permute(0, 3, 1, 2).float() / 255.0
    if frame_scale != 1.0:
        x = F.interpolate(x, size=(max(1, int(x.shape[2] * frame_scale)), max(1, int(x.shape[3] * frame_scale))),
                          mode="area")
    h, w = flow_scale * x.shape[2], flow_scale * x.shape[3]
    gen = torch.Generator().manual_seed(int(seed))
    start = torch.randn(channels, h, w, generator=gen)
    state = torch.cat([torch.zeros(2, h, w), torch.ones(1, h, w), start])

    def pooled(noise):
        return _resized(noise, 1.0 / pool, "area").permute(1, 2, 0) * pool

    out = [pooled(_noise_of(state))]
    for a, b in zip(x[:-1], x[1:]):
        flow = flow_of(a, b).float().cpu()
        fh, fw = flow.shape[1:]
        flow = _resized(flow, (h, w), "bilinear").clone()
        flow[0] *= h / fh
        flow[1] *= w / fw
        state = warp_state(state, flow, gen)
        out.append(pooled(_noise_of(state)))
    return torch.stack(out)
