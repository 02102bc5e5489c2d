"""Initial-noise priors for video latents [B, C, T, H, W] (time on axis 2).

Every prior draws from an explicit `torch.Generator` on the CPU, so a seed gives the
same noise on any device, and every prior keeps each frame's noise N(0, 1) per
element: the priors change how frames relate, never the marginal statistics the
sampler expects.
"""
from __future__ import annotations

import math

import numpy as np
import torch

TIME = 2


def generator(seed: int) -> torch.Generator:
    """The CPU generator all priors draw from (CPU draws are identical on every machine)."""
    return torch.Generator("cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)


def _shape(shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 5 or min(shape) < 1:
        raise ValueError(f"noise shape must be [B, C, T, H, W] with positive sizes, got {list(shape)}")
    return shape


def independent(shape, gen: torch.Generator) -> torch.Tensor:
    """i.i.d. N(0, 1) for every element: frames uncorrelated."""
    return torch.randn(_shape(shape), generator=gen)


def freenoise(shape, gen: torch.Generator, length: int, overlap: int) -> torch.Tensor:
    """FreeNoise rescheduling: past the first `length` frames, each block of L-O frames
    repeats the frames L before it in a seeded random order, so every window of a
    context schedule sees noise from the same pool of L frames."""
    shape = _shape(shape)
    n = shape[TIME]
    delta = length - overlap
    if length < 1 or not 0 <= overlap < length:
        raise ValueError(f"FreeNoise needs 1 <= length and 0 <= overlap < length, got length={length}, "
                         f"overlap={overlap}")
    noise = torch.randn(shape, generator=gen)
    for start in range(0, max(n - length, 0), delta):
        place = start + length
        size = min(delta, n - place)
        src = start + torch.randperm(size, generator=gen)
        noise[:, :, place:place + size] = noise[:, :, src]
    return noise


def repeat_context(shape, gen: torch.Generator, length: int) -> torch.Tensor:
    """The first `length` frames' noise tiled along time."""
    shape = _shape(shape)
    if length < 1:
        raise ValueError(f"repeat length must be at least 1, got {length}")
    n = shape[TIME]
    base = torch.randn(shape[:TIME] + (min(length, n),) + shape[TIME + 1:], generator=gen)
    reps = math.ceil(n / base.shape[TIME])
    return base.repeat(1, 1, reps, 1, 1)[:, :, :n].contiguous()


def constant(shape, gen: torch.Generator) -> torch.Tensor:
    """One frame's noise for every frame (fully correlated)."""
    shape = _shape(shape)
    frame = torch.randn(shape[:TIME] + (1,) + shape[TIME + 1:], generator=gen)
    return frame.expand(shape).contiguous()


def mixed(shape, gen: torch.Generator, alpha: float) -> torch.Tensor:
    """PYoCo mixed noise: a shared frame with variance a^2/(1+a^2) plus a per-frame residual
    with variance 1/(1+a^2). Any two frames correlate by a^2/(1+a^2) (alpha=1: 0.5)."""
    shape = _shape(shape)
    if alpha < 0:
        raise ValueError(f"mixed-noise alpha must be >= 0, got {alpha}")
    shared = torch.randn(shape[:TIME] + (1,) + shape[TIME + 1:], generator=gen)
    residual = torch.randn(shape, generator=gen)
    a2 = alpha * alpha
    return (shared * math.sqrt(a2 / (1 + a2)) + residual * math.sqrt(1 / (1 + a2))).contiguous()


def progressive(shape, gen: torch.Generator, alpha: float) -> torch.Tensor:
    """PYoCo progressive noise: an AR(1) chain e_t = r e_(t-1) + sqrt(1-r^2) z_t with
    r = a/sqrt(1+a^2), so frames k apart correlate by r^k (alpha=1: r=0.707)."""
    shape = _shape(shape)
    if alpha < 0:
        raise ValueError(f"progressive-noise alpha must be >= 0, got {alpha}")
    rho = alpha / math.sqrt(1 + alpha * alpha)
    z = torch.randn(shape, generator=gen)
    out = torch.empty(shape)
    out[:, :, 0] = z[:, :, 0]
    keep = math.sqrt(1 - rho * rho)
    for t in range(1, shape[TIME]):
        out[:, :, t] = rho * out[:, :, t - 1] + keep * z[:, :, t]
    return out


def _resize_flow(flow: np.ndarray, h: int, w: int) -> np.ndarray:
    """A flow field resampled to h x w, with displacements rescaled to that grid's pixels."""
    import cv2
    fh, fw = flow.shape[:2]
    if (fh, fw) == (h, w):
        return flow.astype(np.float32)
    interp = cv2.INTER_AREA if fh >= h and fw >= w else cv2.INTER_LINEAR
    out = cv2.resize(flow.astype(np.float32), (w, h), interpolation=interp)
    return out * np.array([w / fw, h / fh], dtype=np.float32)


def warp_noise_frame(noise: torch.Tensor, flow: np.ndarray, gen: torch.Generator,
                     subdivisions: int = 4) -> torch.Tensor:
    """Carry one noise frame [..., H, W] along a forward flow (H x W x 2, in noise pixels),
    keeping the result exactly i.i.d. N(0, 1).

    Each pixel is split into k x k sub-pixels drawn from the Gaussian conditioned on
    their scaled sum being the pixel's value (a Brownian bridge), so the sub-pixels
    are i.i.d. N(0, 1) themselves. Sub-pixels move along the flow; a target pixel is
    the sum of the m sub-pixels that land in it over sqrt(m), which is N(0, 1) and
    independent of its neighbours (they share no sub-pixel). Pixels nothing lands on
    (disocclusions) get fresh noise. Bilinear warping would instead shrink the
    variance and blur the noise wherever the motion is fractional.
    """
    k = int(subdivisions)
    if k < 1:
        raise ValueError(f"noise warp subdivisions must be at least 1, got {subdivisions}")
    lead = noise.shape[:-2]
    h, w = noise.shape[-2:]
    if flow.shape[:2] != (h, w):
        raise ValueError(f"flow is {flow.shape[1]}x{flow.shape[0]} but the noise frame is {w}x{h}")
    x = noise.reshape(-1, h, w).float()
    z = torch.randn(x.shape + (k, k), generator=gen)
    sub = x[..., None, None] / k + (z - z.mean(dim=(-2, -1), keepdim=True))
    off = (torch.arange(k, dtype=torch.float32) + 0.5) / k
    f = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32))
    tx = torch.floor(torch.arange(w, dtype=torch.float32)[None, :, None, None] + off[None, None, None, :]
                     + f[..., 0][:, :, None, None]).long()
    ty = torch.floor(torch.arange(h, dtype=torch.float32)[:, None, None, None] + off[None, None, :, None]
                     + f[..., 1][:, :, None, None]).long()
    valid = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    target = (ty * w + tx)[valid]
    sums = torch.zeros(x.shape[0], h * w).index_add_(1, target, sub[:, valid])
    counts = torch.bincount(target, minlength=h * w).float()
    fresh = torch.randn(x.shape[0], h * w, generator=gen)
    out = torch.where(counts > 0, sums / counts.clamp(min=1).sqrt(), fresh)
    return out.reshape(lead + (h, w)).to(noise.dtype)


def compose_flows(flows: np.ndarray) -> np.ndarray:
    """One flow equivalent to following `flows` [n, H, W, 2] in order (f1 then f2 ...)."""
    from nodes.common.flow import backward_warp
    total = flows[0].astype(np.float32)
    for f in flows[1:]:
        total = total + backward_warp(f.astype(np.float32), total)
    return total


def warp_noise(shape, gen: torch.Generator, flows, subdivisions: int = 4) -> torch.Tensor:
    """Noise whose structure follows the motion: frame 0 i.i.d., each next frame the
    previous one carried along its forward flow (see `warp_noise_frame`).

    `flows`: an array [F, h, w, 2] or a FLOW value (`len()` and `.field(i)`), frame t -> t+1,
    in pixels of any resolution. F must be T-1, or (T-1)*c for a video compressed c frames
    per latent frame, whose flows are composed in groups of c. Fields are read one group
    at a time, so a long FLOW is never held in memory whole."""
    shape = _shape(shape)
    t_len, h, w = shape[TIME], shape[3], shape[4]
    field = flows.field if hasattr(flows, "field") else None
    if field is None:
        flows = np.asarray(flows)
        if flows.ndim != 4 or flows.shape[-1] != 2:
            raise ValueError(f"flows must be an array [F, h, w, 2]; got shape {flows.shape}")
        field = flows.__getitem__
    count = len(flows)
    need = t_len - 1
    if need and (count == 0 or count % need):
        raise ValueError(f"noise warping over {t_len} latent frames needs {need} flow fields (or a multiple, "
                         f"one group per latent frame); got {count}")
    group = count // need if need else 1
    out = torch.empty(shape)
    out[:, :, 0] = torch.randn(shape[:2] + shape[3:], generator=gen)
    for t in range(need):
        f = np.stack([field(i) for i in range(t * group, (t + 1) * group)])
        f = compose_flows(f) if group > 1 else f[0]
        out[:, :, t + 1] = warp_noise_frame(out[:, :, t], _resize_flow(f, h, w), gen, subdivisions)
    return out


def _frame_masks(mask, t_len: int, h: int, w: int) -> torch.Tensor:
    """A mask [H, W] or [T', H, W] (any resolution, values in [0, 1]) as [T, h, w] by area averaging."""
    m = torch.as_tensor(np.asarray(mask, dtype=np.float32))
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[0] not in (1, t_len):
        raise ValueError(f"mask must be [H, W] or [{t_len}, H, W] (one per latent frame); got shape {list(m.shape)}")
    m = torch.nn.functional.interpolate(m[None], size=(h, w), mode="area")[0] if m.shape[1:] != (h, w) else m
    return m.clamp(0, 1).expand(t_len, h, w)


def blend(a: torch.Tensor, b: torch.Tensor, factor: float = 1.0, mask=None) -> torch.Tensor:
    """Variance-preserving blend of two independent noises: ((1-m) a + m b) / sqrt((1-m)^2 + m^2)
    with m = factor * mask. m = 1 replaces a by b; m = 0.5 gives an equal mix that still has unit
    variance (a plain average would have variance 0.5 and wash out the sample)."""
    if a.shape != b.shape:
        raise ValueError(f"cannot blend noises of shapes {list(a.shape)} and {list(b.shape)}")
    if not 0 <= factor <= 1:
        raise ValueError(f"blend factor must be in [0, 1], got {factor}")
    if mask is None:
        m = torch.tensor(float(factor))
    else:
        m = factor * _frame_masks(mask, a.shape[TIME], a.shape[3], a.shape[4])[None, None]
    m = m.to(a.dtype)
    return ((1 - m) * a + m * b) / torch.sqrt((1 - m) ** 2 + m ** 2)
