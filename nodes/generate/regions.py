"""Regional prompting, as ComfyUI computes it (comfy/samplers.py: get_area_and_mult, calc_cond_batch,
resolve_areas_and_cond_masks_multidim, create_cond_with_same_area_if_none).

A conditioning may carry a region (condition.area, condition.area_fraction, condition.mask) and several
conditionings may be combined (condition.combine). At each step the sampler runs the model once per conditioning,
on the region's rectangle of the latent only (its area), and averages the predictions pixel by pixel, each weighted
by its `mult`: strength, times the mask (stretched bilinearly to the latent grid) where one is set, else faded over
up to 8 latent pixels along an area's edges inside the picture. Where nothing is weighted the prediction is 0, as in
ComfyUI. Each area of the prompt gets the negative prompt run over the same area (and the other way round), so
guidance compares like with like.

Areas are set in pixels and become latent pixels by the VAE's factor, rounded down (ComfyUI's `// 8` for the 8x
VAEs of SD and SDXL); fractions of the picture are resolved on the latent grid as ComfyUI resolves them.

A conditioning may also be limited to part of the denoising (condition.timestep_range, ComfyUI's
ConditioningSetTimestepRange): its start and end, shares of the way from pure noise to the picture, become noise
levels through the model's own sampling (ComfyUI's percent_to_sigma: Adapter.percent_sigma), and at a step whose
noise level lies outside them the sampler leaves it out (get_area_and_mult returns None there)."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.common import masks
from nodes.generate.latent import Conditioning, whole_sample

FUZZ = 8            # latent pixels an area's weight fades over along an edge inside the picture
SMALLEST = 8        # a mask's bounds are at least this many latent pixels across (ComfyUI's)


def with_region(cond: Conditioning, mask=None, **values) -> Conditioning:
    """Every conditioning of `cond` with these region settings (area, strength, mask_strength, bounds) and mask
    set, the others kept: ComfyUI's conditioning_set_values."""
    def one(c: Conditioning) -> Conditioning:
        c = c.with_meta(region={**c.meta.get("region", {}), **values})
        return c if mask is None else c.with_extra(region_mask=mask)
    head, *rest = cond.entries()
    return replace(one(head), parts=tuple(one(p) for p in rest))


def with_steps(cond: Conditioning, start: float, end: float) -> Conditioning:
    """Every conditioning of `cond` limited to the denoising between start and end (shares of the way from pure
    noise), areas and masks kept: ComfyUI's ConditioningSetTimestepRange."""
    if start >= end:
        # ComfyUI accepts these and never runs the prompt at any step: a graph that silently drops a prompt
        raise NodeError(f"condition.timestep_range: start {start:g} is not before end {end:g}, so the prompt would "
                        "be used at no step; set start below end (0 to 1: from pure noise to the finished picture)")
    return with_region(cond, percent=[float(start), float(end)])


def steps_without(cond: Conditioning, sigmas: Sequence[float], to_sigma: Callable[[float], float]) -> List[int]:
    """The steps (1-based) of a schedule at whose noise level no conditioning of `cond` runs: its step ranges leave
    a gap, and ComfyUI's sampler then takes a prediction of 0 (a blank latent) for that side."""
    entries = cond.entries()
    if not any("percent" in e.meta.get("region", {}) for e in entries):
        return []
    parts = [Part(e, None, torch.ones(1), (to_sigma(step_span(e)[0]), to_sigma(step_span(e)[1])))
             for e in entries]
    return [i + 1 for i, s in enumerate(sigmas[:-1]) if not any(p.runs_at(float(s)) for p in parts)]


def mask_tensor(mask) -> torch.Tensor:
    """float32 [F, H, W] of a MASK (a still is one frame)."""
    n = mask.length if masks.is_clip(mask) else 1
    return torch.from_numpy(masks.frames_of(mask, 0, n))


def combine(first: Conditioning, second: Conditioning) -> Conditioning:
    """Both lists of conditionings as one (ComfyUI's ConditioningCombine)."""
    if first.family != second.family:
        raise NodeError(f"the conditionings were encoded for {first.family} and {second.family}: encode both with "
                        "the same model's text encoder")
    both = first.entries() + second.entries()
    return replace(both[0], parts=both[1:])


def _padded_to(t: torch.Tensor, length: int) -> torch.Tensor:
    t = t[:, :length]
    if t.shape[1] < length:
        t = torch.cat([t, t.new_zeros(t.shape[0], length - t.shape[1], *t.shape[2:])], 1)
    return t


def _rows(src: torch.Tensor, like: torch.Tensor, what: str) -> torch.Tensor:
    if src.shape[0] in (1, like.shape[0]):
        return src.expand(like.shape[0], *src.shape[1:]).to(like.dtype)
    raise NodeError(f"{what}: the two prompt schedules have {src.shape[0]} and {like.shape[0]} keyframes; give the "
                    "second one keyframe (or the same keyframes)")


def average(to: Conditioning, frm: Conditioning, weight: float) -> Conditioning:
    """Each conditioning of `to` as weight * itself + (1 - weight) * the first of `frm`, its tokens cut or padded
    with zeros to `to`'s length; pooled embeddings mixed alike (ComfyUI's ConditioningAverage)."""
    src = frm.entries()[0]

    def one(c: Conditioning) -> Conditioning:
        t0 = _rows(_padded_to(src.embeds, c.embeds.shape[1]), c.embeds, "condition.average")
        pooled = c.pooled
        if src.pooled is not None:
            pooled = src.pooled if c.pooled is None else \
                c.pooled * weight + _rows(src.pooled, c.pooled, "condition.average") * (1.0 - weight)
        return replace(c, embeds=c.embeds * weight + t0 * (1.0 - weight), pooled=pooled)
    head, *rest = to.entries()
    return replace(one(head), parts=tuple(one(p) for p in rest))


def concat(to: Conditioning, frm: Conditioning) -> Conditioning:
    """Each conditioning of `to` with the first of `frm`'s tokens after its own (ComfyUI's ConditioningConcat)."""
    src = frm.entries()[0]

    def one(c: Conditioning) -> Conditioning:
        mask = None
        if c.mask is not None or src.mask is not None:
            mine = c.mask if c.mask is not None else torch.ones(c.embeds.shape[:2], dtype=torch.bool)
            theirs = src.mask if src.mask is not None else torch.ones(src.embeds.shape[:2], dtype=torch.bool)
            mask = torch.cat([mine, _rows(theirs, mine, "condition.concat")], 1)
        return replace(c, embeds=torch.cat([c.embeds, _rows(src.embeds, c.embeds, "condition.concat")], 1),
                       mask=mask)
    head, *rest = to.entries()
    return replace(one(head), parts=tuple(one(p) for p in rest))


# -- at sampling ----------------------------------------------------------------------------------------------------
def is_regional(*conds: Optional[Conditioning]) -> bool:
    return any(c is not None and (c.parts or "region" in c.meta) for c in conds)


@dataclass
class Part:
    cond: Conditioning                          # without its region: what the model is given
    area: Optional[Tuple[int, int, int, int]]   # (h, w, y, x) in latent pixels, or the whole picture
    mult: torch.Tensor                          # [1, 1, T, h, w] over the area
    # the noise levels (highest, lowest) it runs between; a partner made for another part's area keeps that part's
    # (ComfyUI copies the whole cond, timestep_start/end included)
    levels: Tuple[float, float] = (math.inf, 0.0)

    def runs_at(self, sigma: float) -> bool:
        """ComfyUI skips the entry where sigma > timestep_start or sigma < timestep_end; a level equal to a bound
        up to float rounding counts as inside (the float32 sigma of a step and a bound worked out in float64 would
        otherwise decide the step a range ends on by a rounding error)."""
        hi, lo = self.levels
        return lo * (1 - 1e-6) <= sigma <= hi * (1 + 1e-6)


def has_areas(*conds: Optional[Conditioning]) -> bool:
    """Some entry draws in part of the picture only (an area or a mask), not just for part of the steps."""
    return any(c is not None and ("area" in e.meta.get("region", {}) or "region_mask" in e.extra)
               for c in conds if c is not None for e in c.entries())


def step_span(c: Conditioning) -> Tuple[float, float]:
    """The (start, end) shares of the denoising a conditioning runs in (0, 1: all of it)."""
    start, end = c.meta.get("region", {}).get("percent", (0.0, 1.0))
    return float(start), float(end)


def _latent_frames(m: torch.Tensor, t: int, time_factor: int) -> torch.Tensor:
    if m.shape[0] == 1:
        return m.expand(t, -1, -1)
    if time_factor > 1:                         # a causal video VAE packs pixel frames 1-4, 5-8 ... into one
        groups = [m[:1]] + [m[1 + (k - 1) * time_factor: 1 + k * time_factor] for k in range(1, t)]
        m = torch.stack([g.amax(0) if len(g) else m[-1] for g in groups])
    m = m[:t]
    return torch.cat([m, m[-1:].expand(t - m.shape[0], -1, -1)]) if m.shape[0] < t else m


def _area(region: dict, dims: Tuple[int, int], factor: int) -> Optional[List[int]]:
    spec = region.get("area")
    if spec is None:
        return None
    kind, h, w, y, x = spec
    if kind == "fraction":
        return [max(1, round(h * dims[0])), max(1, round(w * dims[1])), round(y * dims[0]), round(x * dims[1])]
    # at least one latent pixel: a VAE of 16x or 32x (Wan 2.2 TI2V-5B, LTX) rounds an 8 px area down to none
    return [max(1, int(h) // factor), max(1, int(w) // factor), int(y) // factor, int(x) // factor]


def _bounds(mask: torch.Tensor) -> List[int]:
    """The mask's bounding box on the latent grid, at least SMALLEST across; an empty mask a SMALLEST square in
    the corner (it weighs nothing there)."""
    ys, xs = torch.where(mask.abs().amax(0) != 0)
    if len(ys) == 0:
        return [SMALLEST, SMALLEST, 0, 0]
    y0, x0 = int(ys.min()), int(xs.min())
    return [max(SMALLEST, int(ys.max()) - y0 + 1), max(SMALLEST, int(xs.max()) - x0 + 1), y0, x0]


def resolve(c: Conditioning, shape, factor: int, time_factor: int,
            to_sigma: Optional[Callable[[float], float]] = None) -> Part:
    """The conditioning's region on a latent of `shape` [B, C, T, h, w]: its area and weight there, and the noise
    levels it runs between (to_sigma: the model's percent_to_sigma)."""
    t, h, w = (int(s) for s in shape[2:])
    region = dict(c.meta.get("region", {}))
    bare = replace(c, meta={k: v for k, v in c.meta.items() if k != "region"},
                   extra={k: v for k, v in c.extra.items() if k != "region_mask"})
    area = _area(region, (h, w), factor)
    mask = c.extra.get("region_mask")
    if mask is not None:
        m = _latent_frames(mask.float(), t, time_factor)
        if tuple(m.shape[1:]) != (h, w):
            m = F.interpolate(m[:, None], size=(h, w), mode="bilinear")[:, 0]
        mask = m
        if region.get("bounds"):
            area = _bounds(mask)
    if area is not None:
        ah, aw, y, x = area
        if y >= h or x >= w:
            raise NodeError(f"the region at x {x * factor}, y {y * factor} (pixels) starts outside the "
                            f"{w * factor}x{h * factor} picture being made: move it inside (condition.area's x and y)")
        area = (min(h - y, ah), min(w - x, aw), y, x)
    start, end = step_span(c)
    levels = (math.inf, 0.0) if to_sigma is None or "percent" not in region else (to_sigma(start), to_sigma(end))
    return Part(bare, area, _mult(region, mask, area, (t, h, w)), levels)


def _mult(region: dict, mask, area, dims) -> torch.Tensor:
    t, h, w = dims
    ah, aw, y, x = area if area is not None else (h, w, 0, 0)
    strength = float(region.get("strength", 1.0))
    if mask is not None:
        return (mask[:, y:y + ah, x:x + aw] * float(region.get("mask_strength", 1.0)) * strength)[None, None]
    mult = torch.full((1, 1, t, ah, aw), strength)
    if area is not None:
        mult = mult * edge_fade((ah, aw), (y, x), (h, w), lambda size: min(FUZZ, size // 4))
    return mult


def edge_fade(size: Tuple[int, int], at: Tuple[int, int], full: Tuple[int, int],
              width: Callable[[int], int]) -> torch.Tensor:
    """[h, w] weights of a rectangle of `size` at (y, x) in a picture of `full`: along each edge that lies inside the
    picture, rows (columns) k = 0 .. n-1 from the edge weigh (k + 1) / n, n = width(that side's size); the fades of
    facing edges multiply where they meet. ComfyUI's loop in both get_area_and_mult and LatentComposite."""
    out = torch.ones(size)
    for axis in (0, 1):
        n, off = width(size[axis]), at[axis]
        ramp = torch.ones(size[axis])
        for k in range(min(n, size[axis])):     # a fade wider than the rectangle stops at its far side
            if off != 0:
                ramp[k] *= (k + 1) / n
            if off + size[axis] < full[axis]:
                ramp[size[axis] - 1 - k] *= (k + 1) / n
        out = out * (ramp.view(-1, 1) if axis == 0 else ramp.view(1, -1))
    return out


def _inside(a, b) -> bool:
    """Area a lies within area b (None: the whole picture)."""
    if b is None:
        return True
    if a is None:
        return False
    return a[2] >= b[2] and a[3] >= b[3] and a[0] + a[2] <= b[0] + b[2] and a[1] + a[3] <= b[1] + b[3]


def _same_area_partners(sides: List[List[Part]]) -> None:
    """Each part with an area gets, on the other side (positive <-> negative), the smallest part there enclosing
    it run over the same area with the same weight, unless that one has this very area already."""
    for k in reversed(range(len(sides))):          # the positive first, as ComfyUI goes (sides: negative, positive)
        side = sides[k]
        for part in list(side):
            if part.area is None:
                continue
            for kk, other in enumerate(sides):
                if kk == k or not other:
                    continue
                smallest = None
                for o in other:
                    if o.area is not None and _inside(part.area, o.area):
                        if smallest is None or smallest.area is None or \
                                math.prod(smallest.area[:2]) > math.prod(o.area[:2]):
                            smallest = o
                    elif o.area is None and smallest is None:
                        smallest = o
                if smallest is None or smallest.area == part.area:
                    continue
                other.append(replace(part, cond=smallest.cond))


def plan(conds: Sequence[Optional[Conditioning]], shape, factor: int, time_factor: int,
         to_sigma: Optional[Callable[[float], float]] = None) -> List[List[Part]]:
    sides = [[resolve(e, shape, factor, time_factor, to_sigma) for e in c.entries()] if c is not None else []
             for c in conds]
    _same_area_partners(sides)
    return sides


def denoised(sides: List[List[Part]], x: torch.Tensor, idx: Sequence[int],
             run: Callable[[Conditioning, torch.Tensor, tuple], torch.Tensor],
             sigma: Optional[float] = None) -> List[torch.Tensor]:
    """Per side, the weighted average of its parts' predictions over the latent frames `idx` that x holds:
    run(cond, x over the area, the area's slices) -> the prediction there. At noise level sigma, parts whose step
    range leaves it out are not run (a side with none left predicts 0, as ComfyUI's)."""
    frames = torch.as_tensor([int(i) for i in idx])
    out = []
    for side in sides:
        total = torch.zeros_like(x)
        count = torch.full_like(x, 1e-37)
        for p in side:
            if sigma is not None and not p.runs_at(float(sigma)):
                continue
            sl = (slice(None), slice(None), slice(None)) + (
                (slice(None), slice(None)) if p.area is None else
                (slice(p.area[2], p.area[2] + p.area[0]), slice(p.area[3], p.area[3] + p.area[1])))
            mult = p.mult[:, :, frames.clamp(max=p.mult.shape[2] - 1)].to(x.device, x.dtype)
            total[sl] += run(p.cond, x[sl], sl) * mult
            count[sl] += mult
        out.append(total / count)
    return out


def crop_inputs(inputs: dict, sl: tuple, hw: Tuple[int, int]) -> dict:
    """A network call's latent-sized inputs (an inpainting model's channels, a kept-region mask) cut to the area."""
    out = dict(inputs)
    for k in ("concat", "noise_mask"):
        v = out.get(k)
        if isinstance(v, torch.Tensor) and v.ndim == 5 and tuple(v.shape[-2:]) == tuple(hw):
            out[k] = v[sl]
    return out



def composite(dest, source, mask, x: int, y: int, resize: bool, feather: int = 0):
    """ComfyUI's LatentCompositeMasked (comfy_extras/nodes_mask.py: composite) on a Latent: source pasted at
    (x, y) pixels, rounded down to latent pixels, where the mask (bilinear on source's grid) says. feather (pixels,
    rounded down alike): ComfyUI's LatentComposite, the pasted part fading in over that many latent pixels along its
    edges inside the destination (times the mask, where one is given)."""
    whole_sample(dest, source, done="pasted into or from")
    if dest.family != source.family and {dest.family, source.family} - {"sd", "animatediff"}:
        raise NodeError(f"the latents were made for {dest.family} and {source.family}: make both with one VAE")
    d, s = dest.samples.clone(), source.samples.to(dest.samples.dtype)
    factor = max(1, round(dest.width / d.shape[-1]))
    if resize:
        b, c, t, _, _ = s.shape
        flat = s.permute(0, 2, 1, 3, 4).reshape(b * t, c, *s.shape[-2:])
        s = F.interpolate(flat, size=tuple(d.shape[-2:]), mode="bilinear")
        s = s.reshape(b, t, c, *d.shape[-2:]).permute(0, 2, 1, 3, 4)
    if s.shape[2] not in (1, d.shape[2]):
        raise NodeError(f"the source latent has {s.shape[2]} frames and the destination {d.shape[2]}: trim one "
                        "(latent.trim) so they match, or give a one-frame source")
    s = s.expand(-1, -1, d.shape[2], -1, -1)
    x = max(-s.shape[-1] * factor, min(x, d.shape[-1] * factor))
    y = max(-s.shape[-2] * factor, min(y, d.shape[-2] * factor))
    left, top = x // factor, y // factor
    if mask is None:
        m = torch.ones(1, 1, d.shape[2], *s.shape[-2:])
    else:
        from nodes.generate.inpaint import time_factor
        px = _latent_frames(mask_tensor(mask), d.shape[2], time_factor(dest))
        m = F.interpolate(px[:, None], size=tuple(s.shape[-2:]), mode="bilinear")[:, 0][None, None]
    vw, vh = d.shape[-1] - left + min(0, x), d.shape[-2] - top + min(0, y)
    m = m[..., :vh, :vw].to(d.dtype)
    n = int(feather) // factor
    if n > 0:
        # on the part that shows (ComfyUI cuts the source to the destination first), from its edges inside
        m = m * edge_fade(tuple(m.shape[-2:]), (top, left), tuple(d.shape[-2:]), lambda size: n).to(d.dtype)
    region = d[..., top:top + s.shape[-2], left:left + s.shape[-1]]
    d[..., top:top + s.shape[-2], left:left + s.shape[-1]] = m * s[..., :vh, :vw] + (1 - m) * region
    return dest.with_samples(d)


def padded_run(fn: Callable[[torch.Tensor, dict], torch.Tensor], x: torch.Tensor, inputs: dict,
               patch: int) -> torch.Tensor:
    """fn(x, inputs) on an area whose size the model's patches do not divide: x and its latent-sized inputs padded
    at the bottom and right by wrapping round (ComfyUI's pad_to_patch_size), the result cut back to the area."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % patch, (-w) % patch
    if not (ph or pw):
        return fn(x, inputs)

    def pad(t):
        b, c, f = t.shape[:3]
        flat = t.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        out = F.pad(flat, (0, pw, 0, ph), mode="circular")
        return out.reshape(b, f, c, h + ph, w + pw).permute(0, 2, 1, 3, 4)
    big = {k: pad(v) if isinstance(v, torch.Tensor) and v.ndim == 5 and tuple(v.shape[-2:]) == (h, w) else v
           for k, v in inputs.items()}
    return fn(pad(x), big)[..., :h, :w]


def zeroed(cond: Conditioning) -> Conditioning:
    """Every conditioning's embeddings and pooled embedding as zeros (ComfyUI's ConditioningZeroOut)."""
    def one(c: Conditioning) -> Conditioning:
        return replace(c, embeds=torch.zeros_like(c.embeds),
                       pooled=None if c.pooled is None else torch.zeros_like(c.pooled))
    head, *rest = cond.entries()
    return replace(one(head), parts=tuple(one(p) for p in rest))
