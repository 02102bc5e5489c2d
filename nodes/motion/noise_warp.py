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


def _pushed(image: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Each pixel added onto the pixel at its position + (dx, dy), offsets truncated; those landing outside drop."""
    c, h, w = image.shape
    x = dx.long() + torch.arange(w)
    y = dy.long() + torch.arange(h)[:, None]
    inside = ((x >= 0) & (x < w) & (y >= 0) & (y < h)).reshape(-1)
    out = torch.zeros(h * w, c, dtype=image.dtype)
    out.index_add_(0, (y * w + x).reshape(-1)[inside], image.reshape(c, -1).t()[inside])
    return out.t().reshape(c, h, w)


def regaussianize(noise: torch.Tensor, gen: torch.Generator):
    """noise [C, H, W] with groups of equal pixels (copies of one source) made independent unit Gaussians again, and
    each pixel's group size [1, H, W] (groups found on the first channel)."""
    c, h, w = noise.shape
    _, group, counts = torch.unique(noise[0].reshape(-1), return_inverse=True, return_counts=True, sorted=False)
    fresh = torch.randn(noise.shape, generator=gen, dtype=noise.dtype)
    # summed and gathered along the pixel axis of [C, H*W] as it lies in memory (over a transposed view: 3x slower)
    sums = torch.zeros(c, len(counts), dtype=noise.dtype).index_add_(1, group, fresh.reshape(c, -1))
    mean = (sums / counts).index_select(1, group).reshape(c, h, w)
    count = counts.to(noise.dtype)[group].reshape(1, h, w)
    return noise / count ** 0.5 + (fresh - mean), count


def warp_state(state: torch.Tensor, flow: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The state [3 + C, H, W] (dx, dy, weight, noise) one frame on along flow [2, H, W]."""
    _, h, w = state.shape
    blank = torch.zeros_like(state)
    blank[2] = 1
    # pulled: what each pixel would see looking back along the flow
    back = _pulled(state, -flow[0], -flow[1])
    back[2][back[2] == 0] = 1
    # pushed: each pixel moved on along the flow (its remainder kept nowhere: ComfyUI's xy_mode "none")
    ahead = state.clone()
    ahead[:2] += flow
    ys, xs = torch.meshgrid(torch.arange(h, dtype=state.dtype), torch.arange(w, dtype=state.dtype), indexing="ij")
    to = (torch.stack([xs, ys]) + ahead[:2]).round()
    inside = (to[0] >= 0) & (to[0] < w) & (to[1] >= 0) & (to[1] < h)
    ahead = torch.where(inside[None], ahead, blank)
    shift = ahead[:2].round()
    ahead[:2] = 0
    landed = _pushed(torch.ones(1, h, w, dtype=state.dtype), shift[0], shift[1]) > 0
    back = torch.where(landed, blank, back)
    # both halves regaussianized together: a source copied into each is one group
    both = torch.cat([ahead, back], dim=2)
    both[3:], count = regaussianize(both[3:], gen)
    both[2] = (both[2] / count[0]).nan_to_num()
    ahead, back = both.chunk(2, dim=2)
    weight = ahead[2:3]
    merged = torch.empty_like(ahead)
    merged[2:3] = _pushed(weight, shift[0], shift[1])
    merged[:2] = _pushed(ahead[:2] * weight, shift[0], shift[1]) / merged[2:3]
    merged[3:] = _pushed(ahead[3:] * weight, shift[0], shift[1]) / _pushed(weight ** 2, shift[0], shift[1]).sqrt()
    out = torch.where(landed, merged, back)
    out[2] = ((out[2] / out[2].mean()) + 1e-5) ** 0.9999
    return out


def _noise_of(state: torch.Tensor) -> torch.Tensor:
    weight = state[2:3]
    return state[3:] * weight / (weight ** 2).sqrt()


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
