"""Context windows, FreeInit, pinned frames and subject consensus as wrappers recorded on a MODEL handle.

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
                                 frame_aware=True, check=info.check, window_done=info.window_done)


@dataclass(frozen=True)
class FreeInitWrapper:
    iterations: int = 3
    filter: str = "butterworth"
    spatial_stop: float = 0.25
    temporal_stop: float = 0.25
    order: int = 4
    fast: bool = False
    flow_sigma: float = 0.94

    def pass_steps(self, steps: int) -> list[int]:
        """Sampler steps of each pass for a run of `steps` (what the progress counts against)."""
        from nodes.consistency.freeinit import iteration_steps
        return iteration_steps(steps, self.iterations, self.fast)

    def __call__(self, run, start_noise, info):
        from nodes.consistency.freeinit import freeinit, renoise_diffusion, renoise_flow
        steps = len(info.sigmas) - 1
        first = float(info.sigmas[0])
        # Flow models start at sigma 1, where re-noising would erase z0: stop just short of it.
        sigma, renoise = (min(self.flow_sigma, first), renoise_flow) if info.flow else (first, renoise_diffusion)
        return freeinit(lambda noise, n: run(noise, None if n == steps else n), start_noise, steps,
                        self.iterations, info.generator, renoise_sigma=sigma, renoise=renoise,
                        filter=self.filter, d_s=self.spatial_stop, d_t=self.temporal_stop, order=self.order,
                        fast=self.fast, scale=info.run_noise)


def pinned_latent_start(start: int, pinned_frames: int, latent_frames: int, time_factor: int) -> int:
    """Latent frame where pinned frames begin, from a pixel frame `start` (negative: counted from
    the end, -1 putting the pinned clip's last frame on the video's last frame)."""
    if start < 0:
        return latent_frames - pinned_frames + start + 1
    return start if time_factor <= 1 or start == 0 else (start - 1) // time_factor + 1


@dataclass(frozen=True, eq=False)
class PinWrapper:
    """Training-free frame conditioning: the denoised prediction of some frames is replaced by
    known latent frames at every step, so the sampler walks those frames exactly along their
    noising path while the model fills the rest around them (first frames of a continuation,
    keyframes of an in-between).

    context_noise scales the noise the model is shown on the pinned frames (the same noise,
    at context_noise x the step's level): with 1 it sees them as noisy as the rest and has
    settled the layout before they become legible; lower values show them cleaner from the
    first step, so the new frames follow them (seams measured 2x smaller at 0 with kinograph-mini)."""
    known: object            # latent tensor [B, C, k, h, w]
    start: int               # pixel frame, see pinned_latent_start
    context_noise: float = 0.0

    def __call__(self, model_fn, info):
        from graph_engine import NodeError
        k = int(self.known.shape[2])
        first = pinned_latent_start(self.start, k, info.num_frames, info.time_factor)
        if first < 0 or first + k > info.num_frames:
            raise NodeError(f"condition.pin_frames: {k} pinned latent frames starting at frame {first} do not fit "
                            f"in the {info.num_frames} latent frames being sampled; change start or the length")

        def noised(known, x, s):
            # Re-express the pinned frames at level s * context_noise with the noise they carry now.
            t = s * self.context_noise
            if info.flow:
                return (1 - t) * known + t * (x - (1 - s) * known) / s
            return known + t * (x - known) / s

        def fn(x, sigma, frames=None):
            base = range(x.shape[2]) if frames is None else frames
            hits = [(j, f - first) for j, f in enumerate(base) if first <= f < first + k]
            if not hits:
                return model_fn(x, sigma, frames=frames)
            if tuple(self.known.shape[3:]) != tuple(x.shape[3:]) or self.known.shape[1] != x.shape[1]:
                raise NodeError(f"condition.pin_frames: the pinned latent {list(self.known.shape)} does not fit "
                                f"the sampled latent {list(x.shape)}: encode frames of the same size with this "
                                f"model's VAE")
            dst, src = (list(v) for v in zip(*hits))
            known = self.known[:, :, src].to(x.device, x.dtype)
            s = float(sigma)
            if self.context_noise < 1 and s > 0:
                x = x.clone()
                x[:, :, dst] = noised(known, x[:, :, dst], s)
            den = model_fn(x, sigma, frames=frames).clone()
            den[:, :, dst] = known.to(den.dtype)
            return den

        return fn
