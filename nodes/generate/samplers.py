"""Samplers as short functions of (model, x, sigmas), k-diffusion style.

`model_fn(x, sigma) -> prediction` is the denoiser with everything (guidance, conditioning) already
applied by the caller. `callback(i, total, x)` runs after every step; raising from it cancels the run.
"""
from __future__ import annotations

import torch


def flow_sigmas(steps: int, shift: float = 1.0) -> torch.Tensor:
    """steps + 1 flow-matching noise levels from 1 (pure noise) down to 0, float32.

    shift > 1 spends more steps at high noise: sigma' = shift * s / (1 + (shift - 1) * s),
    the time shift of diffusers' FlowMatchEulerDiscreteScheduler (SD3, Wan)."""
    s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return (shift * s / (1.0 + (shift - 1.0) * s)).float()


@torch.no_grad()
def sample_flow_euler(model_fn, x: torch.Tensor, sigmas: torch.Tensor, callback=None) -> torch.Tensor:
    """Euler integration of a rectified-flow velocity field, x_t = (1 - t) x0 + t noise, v = noise - x0.

    x starts as noise scaled to sigmas[0] (plain noise when sigmas[0] == 1)."""
    total = len(sigmas) - 1
    for i in range(total):
        v = model_fn(x, sigmas[i])
        x = x + (sigmas[i + 1] - sigmas[i]).to(x.dtype) * v
        if callback is not None:
            callback(i, total, x)
    return x
