"""FreeInit: re-initialise the low-frequency band of the initial noise from a first pass.

Training noise contains no low-frequency signal, but the noisy latents a model sees at
its first step do (the signal never fully vanishes). After a full sampling pass, the
result is re-noised to the first step, its low spatio-temporal frequencies are kept and
the high ones replaced by fresh noise, and sampling runs again from that mix.
Reimplemented from the algorithm (Wu et al. 2023); works on [..., T, H, W] tensors.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

FILTERS = ("butterworth", "gaussian")


def _radius2(t: int, h: int, w: int, d_s: float, d_t: float) -> torch.Tensor:
    """Squared normalised frequency radius over an unshifted (T, H, W) FFT grid.

    Frequencies run over [-1, 1) per axis; the temporal axis is scaled by 1/d_t and the
    spatial ones by 1/d_s, so the filter's cut-off sits at radius 1."""
    ft = torch.fft.fftfreq(t, dtype=torch.float64) * 2 / d_t
    fh = torch.fft.fftfreq(h, dtype=torch.float64) * 2 / d_s
    fw = torch.fft.fftfreq(w, dtype=torch.float64) * 2 / d_s
    return ft[:, None, None] ** 2 + fh[None, :, None] ** 2 + fw[None, None, :] ** 2


def low_pass_filter(kind: str, t: int, h: int, w: int, d_s: float = 0.25, d_t: float = 0.25,
                    order: int = 4) -> torch.Tensor:
    """3-D low-pass mask (T, H, W) in [0, 1], 1 at DC, laid out like `torch.fft.fftn`'s output.

    butterworth: 1 / (1 + r^(2n)); gaussian: exp(-r^2 / 2); r is the frequency radius with
    spatial stop frequency d_s and temporal stop frequency d_t (fractions of Nyquist).
    A stop frequency of 0 passes nothing."""
    if kind not in FILTERS:
        raise ValueError(f"unknown FreeInit filter {kind!r}; choose one of {', '.join(FILTERS)}")
    if d_s < 0 or d_t < 0:
        raise ValueError(f"FreeInit stop frequencies must be >= 0, got spatial {d_s}, temporal {d_t}")
    if d_s == 0 or d_t == 0:
        return torch.zeros(t, h, w, dtype=torch.float64)
    r2 = _radius2(t, h, w, d_s, d_t)
    if kind == "butterworth":
        return 1 / (1 + r2 ** order)
    return torch.exp(-r2 / 2)


def mix_frequencies(low_source: torch.Tensor, high_source: torch.Tensor, lpf: torch.Tensor) -> torch.Tensor:
    """IFFT(FFT(low_source) * LPF + FFT(high_source) * (1 - LPF)) over the last three axes (T, H, W)."""
    if low_source.shape != high_source.shape:
        raise ValueError(f"cannot mix frequencies of shapes {list(low_source.shape)} and {list(high_source.shape)}")
    if tuple(lpf.shape) != tuple(low_source.shape[-3:]):
        raise ValueError(f"filter shape {list(lpf.shape)} does not match the (T, H, W) of the latents "
                         f"{list(low_source.shape[-3:])}")
    # By linearity the mix is high + IFFT(FFT(low - high) * LPF): one real FFT pair instead of two complex
    # ones, in float32 (its error, ~1e-6 of the noise, is far below what sampling notices). The filter is
    # symmetric in each frequency, so the half spectrum rfftn keeps takes the first W//2+1 of its columns.
    # Peak memory beside the inputs fell from about 22 latents (684 MB for a 31 MB one) to about 3.
    dims, size = (-3, -2, -1), tuple(low_source.shape[-3:])
    spectrum = torch.fft.rfftn(low_source.float() - high_source.float(), dim=dims)
    spectrum *= lpf[..., : size[-1] // 2 + 1].to(torch.float32)
    mixed = torch.fft.irfftn(spectrum, s=size, dim=dims)
    del spectrum
    mixed += high_source
    return mixed.to(low_source.dtype)


def renoise_flow(z0: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """Flow-matching forward process: x_sigma = (1 - sigma) z0 + sigma noise."""
    return (1 - sigma) * z0 + sigma * noise


def renoise_diffusion(z0: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """Diffusion forward process to noise level sigma, in unit-variance (VP) form:
    sqrt(a) z0 + sqrt(1-a) noise with a = 1/(1+sigma^2), i.e. (z0 + sigma noise)/sqrt(1+sigma^2),
    which is what a sampler starting at sigma scales back up like initial noise."""
    return (z0 + sigma * noise) / math.sqrt(1 + sigma * sigma)


def iteration_steps(steps: int, iterations: int, fast: bool) -> list[int]:
    """Steps per pass; fast mode ramps coarse-to-fine, ending at full steps.

    Fast mode's pass i takes int(steps / iterations * (i + 1)) steps, FreeInit's published
    coarse-to-fine rule (its repository and diffusers' FreeInitMixin floor it: 20 steps in 3
    passes are 6, 13, 20), at least 1 so a pass always samples."""
    if iterations < 1 or steps < 1:
        raise ValueError(f"FreeInit needs iterations >= 1 and steps >= 1, got {iterations} and {steps}")
    if not fast:
        return [steps] * iterations
    return [max(1, int(steps / iterations * (i + 1))) for i in range(iterations)]


def freeinit(run_sampling: Callable[[torch.Tensor, int], torch.Tensor], initial_noise: torch.Tensor,
             steps: int, iterations: int, gen: torch.Generator, *, renoise_sigma: float = 0.94,
             filter: str = "butterworth", d_s: float = 0.25, d_t: float = 0.25, order: int = 4,
             fast: bool = False, renoise: Callable = renoise_flow,
             on_iteration: Optional[Callable[[int, int], None]] = None,
             scale: Callable[[torch.Tensor], torch.Tensor] = lambda noise: noise) -> torch.Tensor:
    """Run `run_sampling(noise, steps) -> z0` `iterations` times, each pass after the first
    starting from the previous z0 re-noised to `renoise_sigma` with the original noise, its
    low frequencies kept and its high ones taken from fresh noise drawn from `gen`, brought by `scale` to the
    scale `initial_noise` is held at (HiDream-O1's noise_scale: a unit-scale band would be 8 times too weak).

    renoise_sigma 1.0 would erase z0 entirely in flow matching; 0.94 leaves z0 at the
    signal-to-noise ratio DDPM's last timestep leaves it (sqrt(alpha_bar_T) ~= 0.068).
    Returns the last pass's z0."""
    if renoise_sigma < 0 or (renoise is renoise_flow and renoise_sigma > 1):
        raise ValueError(f"FreeInit re-noise level must be in [0, 1] for flow matching (>= 0 for diffusion), "
                         f"got {renoise_sigma}")
    schedule = iteration_steps(steps, iterations, fast)
    lpf = low_pass_filter(filter, *initial_noise.shape[-3:], d_s=d_s, d_t=d_t, order=order)
    noise = initial_noise
    z0 = None
    for i, n_steps in enumerate(schedule):
        if i:
            # The noise is drawn on the CPU (the same seed gives the same video on any device); a
            # pass returns z0 on the device it ran on.
            noised = renoise(z0.to(initial_noise), initial_noise, renoise_sigma)
            fresh = scale(torch.randn(initial_noise.shape, generator=gen)).to(initial_noise)
            noise = mix_frequencies(noised, fresh, lpf.to(initial_noise.device))
        if on_iteration is not None:
            on_iteration(i, len(schedule))
        z0 = run_sampling(noise, n_steps)
    return z0
