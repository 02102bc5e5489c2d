"""The hook that puts context windows into any sampler: a wrapper around `model_fn(x, sigma)`.

At each call the latent's time axis is split into the windows of the current step, the
model runs on each window, and the outputs are fused. Samplers need no change: they see
a model that takes N frames.
"""
from __future__ import annotations

from typing import Callable, Optional

from nodes.consistency.context_windows import ContextOptions, fuse_window_outputs, step_for_sigma, take_frames


def windowed_model_fn(model_fn: Callable, options: ContextOptions, sigmas, *, compression: int = 1,
                      axis: int = 2, frame_aware: bool = False,
                      check: Optional[Callable[[], None]] = None) -> Callable:
    """`model_fn` run on context windows along latent `axis`, fused per `options`.

    sigmas: the run's schedule; the step index (which moves uniform windows) is found from
    the sigma a call receives, so multi-stage samplers keep one window layout per step.
    frame_aware: call `model_fn(x_window, sigma, frames=idx)` so per-frame conditioning
    (prompt schedules, control frames) can be sliced with `slice_frames(value, idx, ...)`.
    check: called before each window (cancellation within a step)."""

    def call(x, sigma, idx):
        if check is not None:
            check()
        return model_fn(x, sigma, frames=idx) if frame_aware else model_fn(x, sigma)

    def fn(x, sigma):
        n = x.shape[axis]
        windows, weights = options.plan(n, step_for_sigma(sigmas, float(sigma)), compression)
        if len(windows) == 1:
            return call(x, sigma, windows[0])
        outs = (call(take_frames(x, idx, axis), sigma, idx) for idx in windows)
        return fuse_window_outputs(outs, windows, weights, n, axis)

    return fn
