"""noise.* nodes: seeded initial noise with the inter-frame structure of a chosen prior.

Each takes a LATENT for the shape and outputs NOISE, a float32 CPU tensor [B, C, T, h, w]
that `generate.sample` starts from. Lengths are in pixel frames, as everywhere else; for
models that compress time they are converted to latent frames.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from graph_engine import Input, NodeError, Param, node
from graph_engine.types import CAMERA, FLOW, LATENT, MASK, NOISE
from nodes.consistency.context_windows import overlap_preflight

SEED = Param(0, kind="seed", help="same seed, same noise on every machine")
ALPHA = Param(1.0, min=0.0, max=100.0, help="PYoCo's alpha: larger = frames more alike")


@contextmanager
def _user_errors(what: str):
    try:
        yield
    except ValueError as e:
        raise NodeError(f"{what}: {e}") from None


def _shape(latent) -> tuple:
    shape = tuple(int(s) for s in latent.samples.shape)
    if len(shape) != 5:
        raise NodeError(f"noise needs a video latent [B, C, T, h, w]; this one has shape {list(shape)}")
    return shape


def time_factor(latent) -> int:
    """Pixel frames per latent frame (1 + k*(T-1) pixel frames for T latent frames)."""
    t = int(latent.samples.shape[2])
    return 1 if t <= 1 or latent.frames == t else (latent.frames - 1) // (t - 1)


def _latent_lengths(latent, length: int, overlap: int = 0) -> tuple:
    from nodes.consistency.context_windows import latent_context
    return latent_context(length, overlap, time_factor(latent))


def _draw(latent, seed: int, prior: str, **kw):
    from nodes.consistency import noise_priors
    with _user_errors(f"noise.{prior}"):
        return getattr(noise_priors, prior)(_shape(latent), noise_priors.generator(seed), **kw)


@node("noise.independent", title="Independent Noise", category="Noise")
def noise_independent(ctx, latent: LATENT, seed: int = SEED) -> NOISE:
    """i.i.d. Gaussian noise: every frame independent (what sample draws when no noise is connected).

    Drawn in the element order of the family's diffusers pipeline, so the same seed gives the
    same noise as sample's own and as the pipeline's."""
    from nodes.consistency.noise_priors import generator
    from nodes.generate.adapters import get_adapter
    return get_adapter(latent.family).draw_noise(_shape(latent), generator(seed))


@node("noise.freenoise", title="FreeNoise", category="Noise", preflight=overlap_preflight)
def noise_freenoise(ctx, latent: LATENT, seed: int = SEED,
                    length: int = Param(16, min=1, max=100000, help="context window length (frames)"),
                    overlap: int = Param(4, min=0, max=100000, help="context window overlap (frames)")) -> NOISE:
    """FreeNoise rescheduling for long videos: past the first window, noise repeats earlier frames shuffled.

    Every context window then starts from the same pool of noise frames, which keeps content
    consistent across windows. Use the same length and overlap as context.windows."""
    lat_len, lat_overlap = _latent_lengths(latent, length, overlap)
    return _draw(latent, seed, "freenoise", length=lat_len, overlap=lat_overlap)


@node("noise.repeat", title="Repeated Context Noise", category="Noise")
def noise_repeat(ctx, latent: LATENT, seed: int = SEED,
                 length: int = Param(16, min=1, max=100000, help="frames of noise that repeat")) -> NOISE:
    """The first `length` frames' noise tiled over the whole clip (a loop-like prior)."""
    return _draw(latent, seed, "repeat_context", length=_latent_lengths(latent, length)[0])


@node("noise.constant", title="Constant Noise", category="Noise")
def noise_constant(ctx, latent: LATENT, seed: int = SEED) -> NOISE:
    """One frame's noise for every frame: maximal consistency, little motion."""
    return _draw(latent, seed, "constant")


@node("noise.mixed", title="Mixed Noise (PYoCo)", category="Noise")
def noise_mixed(ctx, latent: LATENT, seed: int = SEED, alpha: float = ALPHA) -> NOISE:
    """A shared noise frame plus a per-frame residual; any two frames correlate by alpha^2/(1+alpha^2).

    alpha 1 gives correlation 0.5; each frame stays unit-variance Gaussian."""
    return _draw(latent, seed, "mixed", alpha=alpha)


@node("noise.progressive", title="Progressive Noise (PYoCo)", category="Noise")
def noise_progressive(ctx, latent: LATENT, seed: int = SEED, alpha: float = ALPHA) -> NOISE:
    """Each frame's noise continues the previous one (AR(1)): frames k apart correlate by r^k, r = alpha/sqrt(1+alpha^2).

    Neighbouring frames are alike and distant ones independent; each frame stays unit-variance Gaussian."""
    return _draw(latent, seed, "progressive", alpha=alpha)


@node("noise.warp", title="Warped Noise", category="Noise")
def noise_warp(ctx, latent: LATENT, flow: FLOW = Input(optional=True, help="motion per frame pair"),
               camera: CAMERA = Input(optional=True, help="a camera path (its image motion is used)"),
               seed: int = SEED,
               subdivisions: int = Param(4, min=1, max=16, help="sub-pixels per side: finer motion, slower")
               ) -> NOISE:
    """Noise that moves with a flow field or camera path, so the video's structure follows the motion.

    The noise is carried frame to frame without blurring: it stays exactly unit-variance Gaussian
    (plain bilinear warping would smear it and the model would render mush). Regions revealed by
    the motion get fresh noise. Give one flow field per frame pair of the video (T-1 for T frames)."""
    from nodes.consistency import noise_priors
    if (flow is None) == (camera is None):
        raise NodeError("noise.warp: connect either a flow or a camera (exactly one)")
    if camera is not None:
        from nodes.motion.flowfield import flow_from_camera
        with _user_errors("noise.warp"):
            flow = flow_from_camera(camera, latent.width, latent.height)
    with _user_errors("noise.warp"):
        return noise_priors.warp_noise(_shape(latent), noise_priors.generator(seed), flow, subdivisions)


def mask_frames(mask, latent_frames: int, factor: int) -> np.ndarray:
    """A MASK (HxW array, or a clip of masks) as [1 or T, H, W] float32 in [0, 1], one per latent frame."""
    if hasattr(mask, "frames"):
        picks = [min(k * factor, mask.length - 1) for k in range(latent_frames)]
        frames = np.stack([mask.frame(i) for i in picks]).astype(np.float32)
        return (frames.mean(axis=-1) if frames.ndim == 4 else frames) / 255.0
    return np.asarray(mask, dtype=np.float32)


@node("noise.blend", title="Blend Noise", category="Noise")
def noise_blend(ctx, a: NOISE, b: NOISE, mask: MASK = Input(optional=True, help="where b replaces a (1 = b)"),
                factor: float = Param(1.0, min=0.0, max=1.0, help="how much of b: 0 = a, 1 = b")) -> NOISE:
    """Mix two noises, or replace one by the other inside a mask, keeping unit variance.

    ((1-m) a + m b) / sqrt((1-m)^2 + m^2) with m = factor x mask: a half-and-half blend is still
    proper noise (a plain average would halve its variance and wash out the sample)."""
    from nodes.consistency.noise_priors import blend
    t = int(a.shape[2])
    # A clip of masks has pixel frames; pick the one that starts each latent frame.
    factor_t = max(1, (mask.length - 1) // (t - 1)) if hasattr(mask, "frames") and t > 1 else 1
    m = None if mask is None else mask_frames(mask, t, factor_t)
    with _user_errors("noise.blend"):
        return blend(a, b, factor, m)
