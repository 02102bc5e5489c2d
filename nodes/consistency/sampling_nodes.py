"""Nodes that change how `generate.sample` runs a model: context windows, FreeInit, pinned frames
(kinograph-mini's subject consensus is in nodes/mini/nodes.py).

Each takes a MODEL and return it with a wrapper recorded on the handle (the loaded weights
are shared, not copied); sample applies the wrappers for the duration of its run.
"""
from __future__ import annotations

from graph_engine import NodeError, Param, node
from graph_engine.types import LATENT, MODEL
from nodes.consistency.context_windows import overlap_preflight

SCHEDULES = ("static", "uniform_standard", "uniform_looped", "batched")
FUSE_METHODS = ("flat", "pyramid", "overlap_linear")


def windows_preflight(params: dict, sources: dict) -> list[tuple[str, str]]:
    """context.windows at validation: overlap below length, and no setting its schedule would ignore without a
    word (stride 3 on static windows, or closed_loop on uniform_standard ones, which never wrap, ran as if unset)."""
    found = list(overlap_preflight(params, sources))
    schedule = params["schedule"]
    if params["stride"] > 1 and not schedule.startswith("uniform"):
        found.append(("stride", f"{params['stride']} has no effect on {schedule} windows: dilated windows are a "
                                f"uniform schedule's; choose uniform_standard or uniform_looped, or set stride to 1"))
    if params["closed_loop"] and schedule not in ("static", "uniform_looped"):
        found.append(("closed_loop", f"{schedule} windows never wrap from the last frames to the first, so the clip "
                                     f"would not loop; choose static or uniform_looped, or turn closed_loop off"))
    return found


@node("context.windows", title="Context Windows", category="Sampling", preflight=windows_preflight,
      passes={"model": "model"})
def context_windows(ctx, model: MODEL,
                    schedule: str = Param("static", choices=SCHEDULES,
                                          help="static: fixed windows; uniform: shift every step; batched: "
                                               "separate chunks (no overlap)"),
                    length: int = Param(16, min=1, max=100000, help="frames per window: the model's native "
                                                                    "length (AnimateDiff and kinograph-mini 16, "
                                                                    "CogVideoX 49, HunyuanVideo 61, Wan 81, "
                                                                    "LTX-Video 121)"),
                    overlap: int = Param(4, min=0, max=100000, help="frames shared by neighbouring windows, "
                                                                    "below length (a quarter of it is usual)"),
                    stride: int = Param(1, min=1, max=8, help="uniform only: levels of dilated windows "
                                                              "(1, 2, 4... frames apart)"),
                    closed_loop: bool = Param(False, help="static / uniform_looped: the last window wraps to "
                                                          "the first frames, for seamless loops"),
                    fuse: str = Param("overlap_linear", choices=FUSE_METHODS,
                                      help="how overlapping windows are averaged")) -> MODEL:
    """Generate videos longer than the model's context: denoise overlapping windows and fuse them every step.

    At each sampler step the latent's frames are split into windows of `length` frames, the
    model runs on each (with the matching slice of per-frame prompts and control frames) and
    the overlaps are averaged with the `fuse` weights (overlap_linear cross-fades, pyramid
    favours window centres, flat averages). Lengths are pixel frames; for models that
    compress time (Wan, LTX...) they are converted to latent frames. Pairs well with
    noise.freenoise of the same length and overlap. AnimateDiff past its motion module's 32 frames
    gets uniform windows of 16 overlapping by 4 without this node; add it to choose others."""
    from nodes.consistency.context_windows import ContextOptions
    from nodes.consistency.wrappers import ContextWrapper
    try:
        options = ContextOptions(schedule, length, overlap, stride, closed_loop, fuse)
    except ValueError as e:
        raise NodeError(f"context.windows: {e}") from None
    return model.with_wrapper(ContextWrapper(options))


def freeinit_preflight(params: dict, sources: dict) -> list[tuple[str, str]]:
    """noise.freeinit at validation: a stop frequency of 0 is a filter that keeps nothing of a pass, so every pass
    after the first would start from fresh noise alone: `iterations` times the sampling for a video no more
    consistent than one pass (FreeInit's own filters return all zeros there, without a word)."""
    return [(name, "0 keeps nothing of the first pass (the low-pass filter is zero everywhere), so each pass "
                   "would start from fresh noise and cost a full sampling run for nothing; set it above 0 "
                   "(FreeInit's default is 0.25) or remove noise.freeinit")
            for name in ("spatial_stop", "temporal_stop") if params[name] == 0 and params["iterations"] > 1]


# Version 2: the passes' fresh noise is drawn at the scale the run holds its noise (HiDream-O1's noise_scale, MiniMax
# H3's sound share), so those models' results differ for the same params; the params are kept as they were.
@node("noise.freeinit", title="FreeInit", category="Sampling", passes={"model": "model"},
      preflight=freeinit_preflight, version=2, migrations={1: dict})
def freeinit(ctx, model: MODEL,
             iterations: int = Param(3, min=1, max=10, help="sampling passes (the first is a normal one)"),
             filter: str = Param("butterworth", choices=("butterworth", "gaussian"),
                                 help="low-pass that keeps the layout: butterworth cuts sharply (see order), "
                                      "gaussian softly"),
             spatial_stop: float = Param(0.25, min=0.0, max=1.0, help="spatial stop frequency (fraction of "
                                                                      "Nyquist)"),
             temporal_stop: float = Param(0.25, min=0.0, max=1.0, help="temporal stop frequency (fraction of "
                                                                       "Nyquist)"),
             order: int = Param(4, min=1, max=16, help="Butterworth order (sharper cut-off when larger)"),
             fast: bool = Param(False, help="fewer steps in the early passes (coarse to fine)"),
             flow_sigma: float = Param(0.94, min=0.0, max=1.0,
                                       help="flow-matching models: the noise level the result is re-noised to "
                                            "(1 would erase it)")) -> MODEL:
    """Refine a video's initial noise by sampling several times (FreeInit): more consistent frames.

    After each pass the result is re-noised to the first step; its low spatio-temporal
    frequencies (overall layout and motion) are kept and the high ones replaced by fresh noise,
    and sampling runs again. Costs `iterations` times the sampling time (less with fast)."""
    from nodes.consistency.wrappers import FreeInitWrapper
    return model.with_run_wrapper(FreeInitWrapper(iterations, filter, spatial_stop, temporal_stop, order, fast,
                                                  flow_sigma))


@node("condition.pin_frames", title="Pin Frames", category="Conditioning", passes={"model": "model"})
def pin_frames(ctx, model: MODEL, latent: LATENT,
               start: int = Param(0, min=-100000, max=100000,
                                  help="frame of the generated video where the pinned frames begin; negative "
                                       "counts from the end (-1: they end on the last frame)"),
               context_noise: float = Param(0.0, min=0.0, max=1.0,
                                            help="how noisy the model sees the pinned frames, relative to the "
                                                 "step: 0 = clean (new frames follow them most), 1 = as noisy "
                                                 "as the rest")) -> MODEL:
    """Fix some frames of the video to given ones (vae.encode of a clip) and let the model fill the rest.

    Works with any model, no image-to-video training needed: at every step the model's estimate
    of those frames is replaced by the given frames, so the rest is generated to agree with
    them. Chain two for first and last frames. Uses: continuing a video from its last frames
    (autoregressive chunks), in-betweening keyframes."""
    from nodes.consistency.wrappers import PinWrapper
    return model.with_wrapper(PinWrapper(latent.samples, start, context_noise))
