"""Context windows and FreeInit as wrappers recorded on a MODEL handle.

`generate.sample` applies a handle's wrappers: `wrap(model_fn, info) -> model_fn` around the
denoiser call of every step, and `run_wrap(run, start_noise, info) -> z0` around the whole
sampling run (`run(start_noise, n_steps=None)`). `info` is nodes.generate.sampling.SamplingInfo.
"""
from __future__ import annotations

from dataclasses import dataclass

from nodes.consistency.context_windows import ContextOptions


@dataclass(frozen=True)
class ContextWrapper:
    options: ContextOptions

    def __call__(self, model_fn, info):
        from nodes.consistency.context_sampling import windowed_model_fn
        return windowed_model_fn(model_fn, self.options, info.sigmas, compression=info.time_factor,
                                 frame_aware=True, check=info.check)


@dataclass(frozen=True)
class FreeInitWrapper:
    iterations: int = 3
    filter: str = "butterworth"
    spatial_stop: float = 0.25
    temporal_stop: float = 0.25
    order: int = 4
    fast: bool = False
    flow_sigma: float = 0.94

    def __call__(self, run, start_noise, info):
        from nodes.consistency.freeinit import freeinit, renoise_diffusion, renoise_flow
        steps = len(info.sigmas) - 1
        first = float(info.sigmas[0])
        # Flow models start at sigma 1, where re-noising would erase z0: stop just short of it.
        sigma, renoise = (min(self.flow_sigma, first), renoise_flow) if info.flow else (first, renoise_diffusion)
        return freeinit(lambda noise, n: run(noise, None if n == steps else n), start_noise, steps,
                        self.iterations, info.generator, renoise_sigma=sigma, renoise=renoise,
                        filter=self.filter, d_s=self.spatial_stop, d_t=self.temporal_stop, order=self.order,
                        fast=self.fast)
