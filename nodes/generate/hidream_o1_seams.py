"""HiDream-O1's patch seam smoothing (ComfyUI's HiDreamO1PatchSeamSmoothing): late in sampling, the model is also run
on the picture shifted against its 32 x 32 patch grid, and the predictions (shifted back) are blended, so the grid's
seams cancel. The strip of a patch's width at each edge, where the shift wraps the picture around, keeps the
unshifted prediction, feathered into the blend over 4 pixels."""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

PATCH = 32
FEATHER = 4
# (pattern, passes) -> the (rows, columns) shifts; single_shift keeps the natural grid as one pass, symmetric puts
# every pass off it, split around the origin
SHIFTS = {
    ("single_shift", 2): [(0, 0), (16, 16)],
    ("single_shift", 4): [(0, 0), (16, 0), (0, 16), (16, 16)],
    ("single_shift", 8): [(0, 0), (16, 0), (0, 16), (16, 16), (8, 8), (24, 8), (8, 24), (24, 24)],
    ("symmetric", 2): [(-8, -8), (8, 8)],
    ("symmetric", 4): [(-8, -8), (8, -8), (-8, 8), (8, 8)],
    ("symmetric", 8): [(-12, -12), (4, -12), (-12, 4), (4, 4), (-4, -4), (12, -4), (-4, 12), (12, 12)],
}
# passes -> the pass counts the gated range steps through, from its start to its end
LEVELS = {"2": (2,), "4": (4,), "ramp_2_4": (2, 4), "ramp_2_4_8": (2, 4, 8)}
PATTERNS = ("single_shift", "symmetric")
BLENDS = ("average", "window", "median")


def hann_tile(cy: int, cx: int) -> torch.Tensor:
    """A patch-sized Hann window peaking at (cy, cx), wrapping around the patch."""
    half = PATCH // 2
    dy = (torch.arange(PATCH).view(-1, 1) - cy + half) % PATCH - half
    dx = (torch.arange(PATCH).view(1, -1) - cx + half) % PATCH - half
    return 0.25 * (1 + torch.cos(math.pi * dy / half)) * (1 + torch.cos(math.pi * dx / half))


def edge_ramp(h: int, w: int) -> torch.Tensor:
    """[h, w]: 0 within a patch of the border, rising to 1 over FEATHER pixels past it."""
    def side(n):
        i = torch.arange(n, dtype=torch.float32)
        return ((torch.minimum(i, n - 1 - i) - PATCH) / FEATHER).clamp(0, 1)
    return side(h)[:, None] * side(w)[None, :]


def blend(preds: torch.Tensor, shifts, how: str) -> torch.Tensor:
    """The passes' predictions [N, B, C, H, W] as one."""
    if how == "median":
        return preds.median(0).values
    if how != "window":
        return preds.mean(0)
    half = PATCH // 2
    h, w = preds.shape[-2:]
    tiles = torch.stack([hann_tile((half - sy) % PATCH, (half - sx) % PATCH) for sy, sx in shifts])
    weights = tiles.repeat(1, -(-h // PATCH), -(-w // PATCH))[:, :h, :w].to(preds)
    total = weights.sum(0, keepdim=True)
    weights = torch.where(total < 1e-3, torch.full_like(weights, 1.0 / len(shifts)),
                          weights / total.clamp(min=1e-8))
    return (preds * weights[:, None, None]).sum(0)


def smoothed(velocity: Callable, x: torch.Tensor, sigma: torch.Tensor, opts: Optional[dict]) -> torch.Tensor:
    """velocity(x, sigma), blended over shifted passes while sigma lies in [opts["bottom"], opts["top"]] (the
    levels of its end and start percent). opts: pattern, passes, blend, strength (None: off)."""
    pred = velocity(x, sigma)
    if opts is None:
        return pred
    s, top, bottom = float(sigma[0]), float(opts["top"]), float(opts["bottom"])
    if not bottom <= s <= top:
        return pred
    counts = LEVELS[opts["passes"]]
    level = 0 if len(counts) == 1 else min(int((top - s) / max(top - bottom, 1e-8) * len(counts)), len(counts) - 1)
    shifts = SHIFTS[(opts["pattern"], counts[level])]
    preds = []
    for sy, sx in shifts:
        if sy == 0 and sx == 0:
            preds.append(pred)
        else:
            out = velocity(torch.roll(x, shifts=(sy, sx), dims=(-2, -1)), sigma)
            preds.append(torch.roll(out, shifts=(-sy, -sx), dims=(-2, -1)))
    mixed = blend(torch.stack(preds), shifts, opts["blend"])
    mask = edge_ramp(*pred.shape[-2:]).to(pred) * float(opts["strength"])
    return pred * (1 - mask) + mixed * mask
