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
                      check: Optional[Callable[[], None]] = None,
                      window_done: Optional[Callable[[int, int, int], None]] = None) -> Callable:
    """`model_fn` run on context windows along latent `axis`, fused per `options`.

    sigmas: the run's schedule; the step index (which moves uniform windows) is found from
    the sigma a call receives, so multi-stage samplers keep one window layout per step.
    frame_aware: call `model_fn(x_window, sigma, frames=idx)` so the model function slices its
    per-frame conditioning (prompt schedules, image and control frames) to the window.
    check: called before each window (cancellation within a step).
    window_done(step, done, count): called after each window (progress within a step)."""

    def fn(x, sigma, frames=None):
        n = x.shape[axis]
        # An outer wrapper may hand us a window already: report frames in its numbering.
        base = list(range(n)) if frames is None else [int(i) for i in frames]

        def call(xw, idx):
            if check is not None:
                check()
            return model_fn(xw, sigma, frames=[base[i] for i in idx]) if frame_aware else model_fn(xw, sigma)

        step = step_for_sigma(sigmas, float(sigma))
        windows, weights = options.plan(n, step, compression)
        if len(windows) == 1:
            return call(x, windows[0])

        def outs():
            for k, idx in enumerate(windows):
                yield call(take_frames(x, idx, axis), idx)
                if window_done is not None:
                    window_done(step, k + 1, len(windows))
        return fuse_window_outputs(outs(), windows, weights, n, axis)

    return fn
