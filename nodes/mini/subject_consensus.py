"""Subject consensus: pull every frame's denoised estimate towards one motion-compensated template.

A video model places a subject's outline frame by frame; where the noisy input no longer shows it
(high noise, where the layout is set) it places it a little differently in each frame, and the
subject's size wanders over the clip (kinograph-mini: by 10-15% on half its clips). Averaging the
frames' estimates after moving the subject to one place pools the evidence of all frames on where
its edges are. Per frame, the subject is where the estimate differs from the frame's border colour:

    centroid  c_f   the mass-weighted mean position, measured in every frame (any path: bouncing too),
    scale     r_f   from sqrt(mass) of each frame, fitted by a straight line over the clip, so a
                    steady growth (or a zoom) is kept while the wander around it is averaged; a
                    line that changes the size by only a little is the wander's own drift, and
                    is faded out,

and each frame's estimate becomes x0_f + strength g_f (T_f(template) - d_f), where d_f is the
frame's difference from its border colour, the template is the mean of every d_f moved to the
clip's mean centroid and scale, T_f moves it back, and the gate g_f is 1 within a few pixels of
the subject (in the frame or in T_f(template)) and 0 away from it, so a background is kept as
the model drew it. It assumes one main subject; two subjects moving apart get merged, or one of
them lost, so it is an opt-in node, not part of every model.

Written here rather than taken from a library: it is a handful of tensor operations on the x0
estimate inside the sampling loop (grid_sample does the warping), and no video library works on a
model's estimate mid-sampling.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# A pixel belongs to the subject when its distance from the border colour is above this share of the
# frame's largest distance: high enough to ignore the haze of a noisy estimate around the subject.
MASS_THRESHOLD = 0.25
# The relative size change over the clip below which a size trend is mostly wander (kinograph-mini's
# wander reaches ~0.12; its growing objects change by ~1, zooms by 0.3-0.4).
TREND_FADE = 0.15
BORDER = 2   # pixels of each frame edge whose median is taken as the background colour
GATE = 3     # pixels around the subject (in a frame or in its template) where frames are changed


def border_colour(frames: torch.Tensor) -> torch.Tensor:
    """[N,C,H,W] -> [N,C,1,1]: the median of each frame's border pixels."""
    edge = torch.cat([frames[..., :BORDER, :].flatten(2), frames[..., -BORDER:, :].flatten(2),
                      frames[..., :, :BORDER].flatten(2), frames[..., :, -BORDER:].flatten(2)], dim=2)
    return edge.median(dim=2).values[..., None, None]


def subject_mass(deviation: torch.Tensor) -> torch.Tensor:
    """[N,C,H,W] frames minus their border colour -> [N,H,W]: each pixel's distance from the border
    colour, 0 below the threshold."""
    # Not Tensor.norm(dim=1): on CPU that is ~80x slower here than the plain sum of squares.
    distance = deviation.square().sum(dim=1).sqrt()
    peak = distance.flatten(1).amax(dim=1).clamp(min=1e-6)[:, None, None]
    return distance * (distance > MASS_THRESHOLD * peak)


def _near(subject: torch.Tensor) -> torch.Tensor:
    """[N,H,W] bool -> [N,1,H,W] in [0, 1]: 1 within GATE pixels of the subject, fading out over GATE more."""
    k = 2 * GATE + 1
    # Separable max pooling: the same result as one k x k window, in half the time.
    inside = F.max_pool2d(subject.float()[:, None], (1, k), stride=1, padding=(0, GATE))
    inside = F.max_pool2d(inside, (k, 1), stride=1, padding=(GATE, 0))
    return F.avg_pool2d(inside, k, stride=1, padding=GATE, count_include_pad=False)


def subject_track(mass: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(centroids [B,T,2] as (x, y) pixels, scale [B,T] relative to the clip's mean) of mass [B*T,H,W]."""
    _, h, w = mass.shape
    ys = torch.arange(h, dtype=mass.dtype, device=mass.device)
    xs = torch.arange(w, dtype=mass.dtype, device=mass.device)
    total = mass.sum(dim=(1, 2)).clamp(min=1e-6)
    cx = (mass.sum(dim=1) * xs).sum(dim=1) / total
    cy = (mass.sum(dim=2) * ys).sum(dim=1) / total
    centroids = torch.stack([cx, cy], dim=1).view(-1, frames, 2)
    size = total.sqrt().view(-1, frames)
    f = torch.arange(frames, dtype=mass.dtype, device=mass.device)
    f = f - f.mean()
    mean = size.mean(dim=1, keepdim=True)
    slope = (size * f).sum(dim=1, keepdim=True) / (f * f).sum().clamp(min=1e-6)
    # A wandering size has a straight-line part too, which the fit would keep; real growth and zooms
    # change the size by far more over a clip, so small trends are faded out, large ones kept.
    change = slope * (frames - 1) / mean.clamp(min=1e-6)
    slope = slope * change ** 2 / (change ** 2 + TREND_FADE ** 2)
    # A subject that shrinks to nothing would give a scale of 0 or below at the end of the line.
    return centroids, (1 + slope * f / mean).clamp(min=0.1)


def _warp(frames: torch.Tensor, scale: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Resample frames [N,C,H,W] so that the point src [N,2] lands on dst [N,2], magnified by scale [N];
    zeros come in from outside."""
    n, _, h, w = frames.shape
    # Output pixel p reads input pixel src + (p - dst) / scale; in grid_sample's [-1, 1] coordinates
    # (align_corners=False) pixel p is at (2p + 1) / size - 1.
    inv = 1.0 / scale
    theta = torch.zeros(n, 2, 3, dtype=frames.dtype, device=frames.device)
    theta[:, 0, 0] = inv
    theta[:, 1, 1] = inv
    for axis, size in ((0, w), (1, h)):
        k = 1.0 / size - 1.0
        theta[:, axis, 2] = k * (1 - inv) + 2 * (src[:, axis] - inv * dst[:, axis]) / size
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def subject_consensus(x0: torch.Tensor, strength: float) -> torch.Tensor:
    """x0 [B,C,T,H,W] -> the same with each frame moved `strength` (0..1) towards the clip's template."""
    b, c, t, h, w = x0.shape
    if strength <= 0 or t < 2:
        return x0
    frames = x0.float().transpose(1, 2).reshape(b * t, c, h, w)
    # Only the subject moves: what is warped is each frame's difference from its own background
    # colour, with zeros (the background) coming in at the edges rather than a smear of the edge row.
    deviation = frames - border_colour(frames)
    mass = subject_mass(deviation)
    centroids, scale = subject_track(mass, t)
    home = centroids.mean(dim=1, keepdim=True).expand(-1, t, -1).reshape(-1, 2)
    centroids, scale = centroids.reshape(-1, 2), scale.reshape(-1)
    aligned = _warp(deviation, 1.0 / scale, centroids, home).view(b, t, c, h, w)
    template = aligned.mean(dim=1, keepdim=True).expand(-1, t, -1, -1, -1).reshape(b * t, c, h, w)
    back = _warp(template, scale, home, centroids)
    # Away from the subject (a gradient, a panning background) the frames are left as they are.
    gate = strength * _near((mass > 0) | (subject_mass(back) > 0))
    out = frames + gate * (back - deviation)
    return out.view(b, t, c, h, w).transpose(1, 2).to(x0.dtype)


@dataclass(frozen=True)
class ConsensusWrapper:
    """Every step's denoised estimate moved `strength` of the way to its motion-compensated template
    (the guide.subject_consensus node)."""
    strength: float = 0.5

    def __call__(self, model_fn, info):
        def fn(x, sigma, frames=None):
            return subject_consensus(model_fn(x, sigma, frames=frames), self.strength)

        return fn
