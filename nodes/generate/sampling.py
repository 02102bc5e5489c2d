"""The denoising run behind `sample`: noise levels, the guided model function, the sampler loop.

`model_fn(x, sigma, frames=None) -> x0` is the plain function every sampler integrates, so wrappers
(context windows, guidance tricks) compose around it: a wrapper on the MODEL handle is called as
`wrap(model_fn, info) -> model_fn`, where `info` (SamplingInfo) tells it the run's sigmas, the
family's temporal compression and how to check for cancellation. `frames` is the list of latent
frame indices x covers when a wrapper runs the model on a window; per-frame conditioning (prompt
schedules, image and control frames) is sliced to match."""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, replace
from typing import Callable, Optional

import torch

from graph_engine import NodeError
from nodes.generate import regions
from nodes.generate.adapters import get_adapter
from nodes.generate.attention_multiply import attention_scaled
from nodes.generate.control import active
from nodes.generate.families import FAMILIES, family, latent_families
from nodes.generate.inpaint import differential, model_concat
from nodes.generate.ipadapter import feed_step, installed, new_feed
from nodes.generate.latent import Conditioning, Latent
from nodes.generate.ltx2_sound import without_reference
from nodes.generate.reference import references
from nodes.generate.samplers import (BROWNIAN, CFG_PP, SAMPLERS, SNR_FRAME, STOCHASTIC, TABLE_SCHEDULES, SigmaTable, beta_sigmas,
                                     comfy_step_noise, flow_sigmas, karras_sigmas, ksampler_schedule)

SCHEDULERS = ("default", "karras", "normal", "simple", "sgm_uniform", "beta", "linear_quadratic", "exponential",
              "beta57", "ddim_uniform", "kl_optimal")
BETA = (0.6, 0.6)       # the beta scheduler's Beta(alpha, beta), as ComfyUI's KSampler takes it


@dataclass
class SamplingInfo:
    family: str
    sigmas: torch.Tensor
    flow: bool
    time_factor: int
    num_frames: int                     # latent frames
    seed: int
    check: Callable[[], None]
    generator: torch.Generator
    # (step, windows done, windows in the step): a step split into context windows reports each, so the
    # progress of a long clip (a minute or more per step) moves within the step.
    window_done: Callable[[int, int, int], None] = lambda step, done, count: None
    # unit Gaussian noise at the scale the run holds its noise (adapter.run_noise: HiDream-O1's noise_scale, MiniMax
    # H3's sound share), for noise a run wrapper draws afresh (FreeInit's high frequencies)
    run_noise: Callable[[torch.Tensor], torch.Tensor] = lambda noise: noise


@dataclass(frozen=True)
class DualCfg:
    """guide.dual_cfg's middle prompt, its scale against the negative, and whether the guidance nests."""
    middle: Conditioning
    scale: float
    nested: bool


# The highest noise level sample takes written out (sigmas) or as first_sigma; Lotus's 999 is the highest in use.
MAX_SIGMA = 100000.0


def manual_sigmas(text: str) -> torch.Tensor:
    """A schedule written out as numbers ("1.0, 0.9937, ..., 0.0": ComfyUI's ManualSigmas, the list Lightricks gives
    its distilled LTX-Video models), checked: at least two levels, falling, none negative."""
    import re
    words = [w for w in re.split(r"[\s,;]+", text.strip().strip("[]")) if w]
    try:
        levels = [float(w) for w in words]
    except ValueError:
        raise NodeError(f"sigmas {text!r} is not a list of numbers: write the noise levels separated by commas, "
                        "e.g. 1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219, 0.0") from None
    if len(levels) < 2:
        raise NodeError(f"sigmas {text!r} has {len(levels)} level; a schedule needs at least a start and an end "
                        "(e.g. 1.0, 0.0 for one step)")
    for v in levels:
        # A level float32 cannot hold (1e39, inf) or no number at all (nan) turns the noise into NaN, which the
        # sampler's NaN check would then blame on the weights: refuse it here, by name. The ceiling is first_sigma's.
        if not math.isfinite(v) or v > MAX_SIGMA:
            raise NodeError(f"Sample's sigmas holds the level {v:g}, which is no noise level a model can run: "
                            "write finite numbers from 0 to 1 for flow models (LTX-Video, Wan, Flux), up to "
                            f"about 15 for SD/SDXL (14.6), and never above {MAX_SIGMA:g}")
    if any(v < 0 for v in levels) or any(b >= a for a, b in zip(levels, levels[1:])):
        raise NodeError(f"sigmas {text!r} must fall from the first level to the last (each below the one before, "
                        "none negative)")
    return torch.tensor(levels, dtype=torch.float64)


def make_sigmas(adapter, pipe, steps: int, scheduler: str, denoise: float, latent_shape,
                shift: Optional[float] = None, sampler: str = "", beta=BETA) -> torch.Tensor:
    """steps+1 noise levels (ddim_uniform's may be one more, as ComfyUI's; fewer for denoise < 1: the last part of
    the full schedule), as ComfyUI's KSampler
    gives them to `sampler` (uni_pc, uni_pc_bh2, dpm_2, dpm_2_ancestral: ksampler_schedule; "" = the schedule's own).
    `beta`: the (alpha, beta) of the beta scheduler's distribution (ComfyUI's BetaSamplingScheduler; 0.6, 0.6 as
    KSampler's).

    shift (model.flow_shift) replaces a flow model's own time shift; its default schedule is then the
    plain shifted line, as ComfyUI's ModelSamplingSD3 with the `simple` scheduler gives."""
    if steps < 1:
        raise NodeError(f"steps must be at least 1, got {steps}")
    if not 0 < denoise <= 1:
        raise NodeError(f"denoise must be in (0, 1], got {denoise}")
    if shift is not None and adapter.space != "flow":
        raise NodeError(f"flow shift applies to flow-matching models (Wan, LTX, HunyuanVideo); {adapter.family} "
                        "is not one: remove the flow shift node")
    flow_shift = shift if shift is not None else (adapter.flow_shift(pipe) if adapter.space == "flow" else 0.0)
    if scheduler not in SCHEDULERS:
        raise NodeError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")

    def levels_for(n: int) -> torch.Tensor:
        if scheduler == "default" and shift is not None:
            return flow_sigmas(n, shift).double()
        if scheduler == "default":
            return adapter.default_sigmas(pipe, n, latent_shape)
        if scheduler == "karras":
            return karras_sigmas(n, *adapter.sigma_range(pipe))
        table = SigmaTable.flow(flow_shift, adapter.flow_levels) if adapter.space == "flow" else \
            SigmaTable.vp(adapter.alphas_cumprod(pipe))
        if scheduler == "beta":
            return beta_sigmas(table, n, *beta)
        return TABLE_SCHEDULES[scheduler](table, n)
    sig = ksampler_schedule(levels_for, steps, sampler)
    if denoise >= 1 and scheduler == "ddim_uniform":    # all of it: a level more where steps do not divide its table
        return sig
    keep = max(1, round(steps * denoise))
    return sig[len(sig) - 1 - keep:]


def split_schedule(sigmas: torch.Tensor, start_step: int = 0, end_step: Optional[int] = None,
                   leftover_noise: bool = False) -> Optional[torch.Tensor]:
    """Steps start_step..end_step of a schedule (KSamplerAdvanced's window), or None when nothing is left.

    Stopping early ends at that step's noise level with leftover_noise, else jumps to zero noise there."""
    total = len(sigmas) - 1
    if start_step < 0 or (end_step is not None and end_step < 0):
        raise NodeError(f"start and end steps must be 0 or more, got {start_step} and {end_step}")
    sig = sigmas.clone()
    if end_step is not None and end_step < total:
        sig = sig[:end_step + 1]
        if not leftover_noise:
            sig[-1] = 0.0
    if start_step >= len(sig) - 1:
        return None
    return sig[start_step:]


def guided_model_fn(handle, adapter, positive: Conditioning, negative: Optional[Conditioning], cfg: float,
                    batch: int, device, dtype, num_frames: int = 0, keep: Optional[Latent] = None,
                    keep_noise: Optional[torch.Tensor] = None, mask_at: Optional[Callable] = None, ip_feed=None,
                    true_from: float = -1.0, dual: Optional[DualCfg] = None):
    """x0 prediction with classifier-free guidance (uncond and cond in one batched call).

    With the handle's `min_cfg` option (guide.linear_cfg) the scale rises linearly over the clip's
    num_frames latent frames, from min_cfg at the first to cfg at the last. With `keep` (a latent with a
    mask, 1 where the sampler draws) the rest enters the model as keep's values noised to the step's level by
    `keep_noise` (ComfyUI's SetLatentNoiseMask: the model sees one consistent picture), or clean for a model
    that takes clean frames with their own timestep (adapter.keeps_clean), and is keep's values in the
    prediction, so it comes out as it went in. `mask_at(mask, sigma)`: the mask a step applies (differential
    diffusion's, inpaint.differential). `ip_feed`: what the IP-Adapter processors installed for the run read
    (ipadapter.installed), set before each network call. With the handle's `true_cfg` option (guide.true_cfg) a
    model told cfg as its guidance also takes true CFG at that scale against `negative`, at levels from `true_from`
    down (the level of its first step), its prompt alone above. `dual` (guide.dual_cfg, its middle prompt made ready
    for the run) adds a third prompt between the two, guided as ComfyUI's DualCFGGuider guides it."""
    pipe = handle.pipe
    levels = sampling_view(handle)
    min_cfg = handle.option("min_cfg")
    rescale = handle.option("rescale_cfg")
    zero_star = handle.option("cfg_zero_star")
    norm = handle.option("cfg_norm")
    skip = handle.option("skip_layer_guidance")
    weak_negative = handle.option("skip_layers_negative")
    identity = handle.option("identity_guidance")
    tfn = adapter.timestep_fn(levels)
    velocity_from_image = handle.option("img_to_img_velocity")
    true_cfg = handle.option("true_cfg")
    negative_model = handle.option("negative_model")
    override = handle.option("cfg_override")
    if negative_model is not None and (dual is not None or true_cfg is not None):
        raise NodeError("guide.negative_model makes sample's negative pass on a second model and cannot be mixed "
                        f"with {'guide.dual_cfg' if dual is not None else 'guide.true_cfg'} yet: remove one of them")
    if override is not None:
        _check_override(handle, adapter, {"guide.dual_cfg": dual, "guide.linear_cfg": min_cfg,
                                          "guide.true_cfg": true_cfg})
    if true_cfg is not None and not adapter.distilled_guidance(handle):
        raise NodeError(f"guide.true_cfg adds true CFG to a model told cfg as its guidance (FLUX.1 dev); this "
                        f"{handle.family} model takes sample's cfg as true CFG already: remove guide.true_cfg")
    if dual is not None:
        _check_dual(handle, adapter, negative, {"guide.skip_layer_guidance": skip, "guide.skip_layers_negative":
                                                weak_negative, "condition.reference_voice": identity,
                                                "guide.true_cfg": true_cfg, "guide.linear_cfg": min_cfg})
    # guide.cfg_override's scale needs the negative pass also where sample's own cfg of 1 would skip it
    scaled = cfg != 1.0 or override is not None and override[0] != 1.0
    guided = negative is not None and (true_cfg is not None or dual is not None
                                       or scaled and not adapter.distilled_guidance(handle))
    conds = [negative, dual.middle, positive] if dual is not None else [negative, positive] if guided else [positive]
    if negative_model is not None and guided:
        _check_negative_pass(handle, conds, weak_negative)
    if not adapter.reads_references and any(references(e) for c in conds for e in c.entries()):
        raise NodeError(f"the prompt holds reference pictures (condition.reference), which only an edit model reads "
                        f"(FLUX.1 Kontext); this {handle.family} model would ignore them: remove the "
                        f"condition.reference, or load a FLUX.1 Kontext model")
    if dual is not None and regions.is_regional(*conds):
        raise NodeError("guide.dual_cfg and regional prompts cannot be sampled together yet: remove one of them")
    if (skip is not None or weak_negative is not None and guided) and regions.is_regional(*conds):
        raise NodeError(f"skip-layer guidance ({(skip or weak_negative).node}) and regional prompts cannot be "
                        "sampled together yet: remove one of them")
    clean_keep = keep is not None and adapter.keeps_clean(handle)
    plans: dict = {}
    # The ControlNet's frames are the whole picture: prompts for part of the steps (condition.timestep_range) run
    # over the whole picture and take them as they are; a prompt run over an area would need them cut to it.
    if regions.has_areas(*conds) and handle.option("controlnet") is not None:
        raise NodeError("regional prompts (condition.area, condition.mask) and a ControlNet cannot be sampled "
                        "together yet: apply the ControlNet in a second pass, or sample without the regions")
    if regions.is_regional(*conds) and ip_feed is not None:
        raise NodeError("regional prompts and an IP-Adapter cannot be sampled together yet: sample without the "
                        "regions, or without ipadapter.apply")

    def model_fn(x, sigma, frames=None):
        idx = list(range(x.shape[2])) if frames is None else [int(i) for i in frames]
        if keep is not None:
            mask, clean = (t[:, :, idx].to(x.device, x.dtype) for t in (keep.mask, keep.samples))
            if mask_at is not None:
                mask = mask_at(mask, sigma)
            kept = clean if clean_keep else adapter.noise_scaling(
                float(sigma), keep_noise[:, :, idx].to(x.device, x.dtype), clean, full=False)
            return mask * predict(x * mask + kept * (1 - mask), sigma, idx, mask) + clean * (1 - mask)
        return predict(x, sigma, idx)

    def run(cs, x, sigma, idx, mask=None, sl=None, h=handle):
        """The model's (h's: the negative pass's second model) x0 prediction under each conditioning of cs, batched;
        x (and mask) over an area: sl."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        s = sigma.to(x.device, x.dtype)
        x_in = adapter.model_input(h.pipe, x, s)
        inputs = adapter.conditioning_inputs(h, cs, idx, x.shape[0], device, dtype)
        if "control" in inputs:     # ControlNets for part of the steps (control.apply's start / end)
            inputs["control"] = active(inputs["control"], float(sigma), lambda p: adapter.percent_sigma(
                levels, p, handle.option("flow_shift")))
        if mask is not None:
            inputs["noise_mask"] = mask
        feed_step(ip_feed, handle, cs, negative, float(sigma), lambda p: adapter.percent_sigma(
            levels, p, handle.option("flow_shift")), idx, tuple(x.shape[-2:]))
        if sl is not None:
            inputs = regions.crop_inputs(inputs, sl, plans["hw"])
        if adapter.distilled_guidance(handle):
            inputs["guidance"] = cfg
        t = tfn(sigma).to(device)
        batch_in = torch.cat([x_in] * len(cs)).to(device, dtype)
        if sl is None:
            out = adapter.forward(h, batch_in, t, inputs)
        else:
            out = regions.padded_run(lambda xx, ii: adapter.forward(h, xx, t, ii), batch_in, inputs,
                                     family(handle.family).patch)
        if velocity_from_image:     # Marigold v2: x0 = x - v at any level (the reference's latent - model_pred)
            return torch.cat([x] * len(cs)) - out.to(x.device, x.dtype)
        return adapter.denoised(levels, torch.cat([x] * len(cs)), s, out.to(x.device))

    def predict(x, sigma, idx, mask=None):
        s = torch.as_tensor(sigma, dtype=torch.float32).to(x.device, x.dtype)
        if regions.is_regional(*conds):
            if plans.get("hw") != tuple(x.shape[-2:]):
                plans.update(hw=tuple(x.shape[-2:]), sides=regions.plan(
                    conds, (*x.shape[:2], max(num_frames, max(idx) + 1), *x.shape[-2:]), adapter.factors(pipe)[1],
                    adapter.factors(pipe)[0], lambda p: adapter.percent_sigma(levels, p, handle.option("flow_shift"))))
            den = torch.cat(regions.denoised(plans["sides"], x, idx, lambda c, xs, sl: run(
                [c], xs, sigma, idx, mask, sl if sl[-1] != slice(None) else None), float(sigma)))
        elif guided and weak_negative is not None and weak_negative.steers(float(sigma), lambda p: adapter.percent_sigma(
                levels, p, handle.option("flow_shift"))):
            # ComfyUI's SkipLayerGuidanceDiTSimple: the negative prompt's pass made without the blocks
            with weak_negative.skipped(pipe):
                uncond = run([negative], x, sigma, idx, mask)
            den = torch.cat([uncond, run([positive], x, sigma, idx, mask)])
        elif guided and negative_model is not None:
            den = torch.cat([run([negative], x, sigma, idx, mask, h=negative_model), run([positive], x, sigma, idx, mask)])
        else:
            den = run(conds, x, sigma, idx, mask)
        guided_den = guide(x, s, den, idx)
        if identity is not None and identity.steers(float(sigma), lambda p: adapter.percent_sigma(
                levels, p, handle.option("flow_shift"))):    # LTX-2's reference voice (condition.reference_voice)
            guided_den = identity.apply(guided_den, den.chunk(2)[1] if guided else den,
                                        run([without_reference(positive)], x, sigma, idx, mask))
        if skip is None or not skip.steers(float(sigma), lambda p: adapter.percent_sigma(
                levels, p, handle.option("flow_shift"))):
            return guided_den
        with skip.skipped(pipe):
            return skip.apply(den.chunk(2)[1] if guided else den, run([positive], x, sigma, idx, mask), guided_den)

    def guide(x, s, den, idx):
        if dual is None:
            return guide_pair(x, s, den, idx, cfg_at(float(s.flatten()[0])))
        # ComfyUI's Guider_DualCFG: one CFG step (its post-CFG steps, CFGNorm's, with it) between two of the three
        # predictions, the third prompt's push added (regular) or pushing that result (nested)
        uncond, middle, cond = den.chunk(3)
        if dual.nested:
            return uncond + (guide_pair(x, s, torch.cat([middle, cond]), idx, cfg) - uncond) * dual.scale
        return guide_pair(x, s, torch.cat([uncond, middle]), idx, dual.scale) + (cond - middle) * cfg

    def cfg_at(sigma: float) -> float:
        """sample's cfg, or guide.cfg_override's over its levels (ComfyUI's CFGOverride: start_percent down to
        end_percent of the way, as the model's percent_to_sigma places them)."""
        if override is None:
            return cfg
        to_sigma = lambda p: adapter.percent_sigma(levels, p, handle.option("flow_shift"))     # noqa: E731
        hi, lo = to_sigma(override[1]), to_sigma(override[2])
        return override[0] if lo * (1 - 1e-6) <= sigma <= hi * (1 + 1e-6) else cfg

    def guide_pair(x, s, den, idx, scale):
        mixed = mix(x, s, den, idx, scale)
        if norm is None:
            return mixed
        cond = den.chunk(2)[1] if guided else den
        return cfg_norm_pre(x, cond, mixed, norm[0]) if norm[1] else cfg_norm(cond, mixed, norm[0])

    def mix(x, s, den, idx, scale):
        if not guided:
            return den
        uncond, cond = den.chunk(2)
        if true_cfg is not None:    # float32 levels against the schedule's: a relative margin
            return cond if float(s.flatten()[0]) > true_from * (1 + 1e-6) else uncond + (cond - uncond) * true_cfg[0]
        if min_cfg is None:
            g = adapter.guidance_scale(scale, len(idx), x.device)
        else:
            g = linear_cfg(min_cfg, cfg, max(num_frames, max(idx) + 1))[idx].to(x.device, x.dtype).view(1, 1, -1, 1, 1)
        mixed = uncond + (cond - uncond) * g
        if rescale:
            mixed = rescale_cfg(x, s, cond, mixed, float(rescale), adapter.space == "flow")
        return cfg_zero_star(x, cond, uncond, mixed, g) if zero_star else mixed

    return model_fn


def check_negative_model(model, negative_model) -> None:
    """guide.negative_model's second model samples the same latents with the same prompts: one family."""
    if model.family != negative_model.family:
        raise NodeError(f"guide.negative_model's negative_model is {negative_model.family} and the model "
                        f"{model.family}: the negative pass must be made by a model of the same family (Ideogram 4's "
                        "ideogram4_unconditional_* beside its ideogram4_*)")
    if negative_model.loras:
        raise NodeError("guide.negative_model's negative_model has LoRAs, which its pass does not apply yet: put the "
                        "LoRA on the model that reads the prompt, or leave it off")


def _check_override(handle, adapter, others: dict):
    """guide.cfg_override replaces sample's cfg as the true CFG scale; the options that set the scale their own way
    would leave it out."""
    names = [name for name, option in others.items() if option is not None]
    if names:
        raise NodeError(f"guide.cfg_override cannot be sampled together with {', '.join(names)} yet (the scale is "
                        "theirs): remove one of them")
    if adapter.distilled_guidance(handle):
        raise NodeError(f"guide.cfg_override changes the true CFG scale; this {handle.family} model is told cfg as "
                        "its guidance (a distilled model), which the override does not change: remove "
                        "guide.cfg_override, or add guide.true_cfg for a true CFG pass")


def _check_negative_pass(handle, conds, weak_negative):
    """guide.negative_model's pass is sample's plain negative pass on the second model; the options that make their
    own negative passes on the first model, or ride on the first model alone, would leave it out."""
    if regions.is_regional(*conds):
        raise NodeError("guide.negative_model and regional prompts (condition.area, condition.mask, "
                        "condition.timestep_range) cannot be sampled together yet: remove one of them")
    if weak_negative is not None:
        raise NodeError("guide.negative_model and guide.skip_layers_negative both make the negative pass: remove one "
                        "of them")
    if handle.option("controlnet") is not None:
        raise NodeError("guide.negative_model's pass on the second model would run without the model's ControlNet "
                        "(ComfyUI's steers both passes): apply the ControlNet in a run without guide.negative_model")


def _check_dual(handle, adapter, negative, others: dict):
    """guide.dual_cfg's run needs a negative prompt and true CFG, and does not yet mix with the guidance options
    that take sample's two predictions apart."""
    if negative is None:
        raise NodeError("guide.dual_cfg guides between three prompts: connect sample's negative prompt")
    if adapter.distilled_guidance(handle):
        raise NodeError(f"guide.dual_cfg needs true CFG; this {handle.family} model is told cfg as its guidance "
                        "(a distilled model): remove guide.dual_cfg")
    names = [name for name, option in others.items() if option is not None]
    if names:
        raise NodeError(f"guide.dual_cfg cannot be sampled together with {', '.join(names)} yet: remove one of them")


def cfg_norm(cond, guided, strength: float):
    """ComfyUI's CFGNorm: the guided x0 prediction scaled, at each latent pixel, to at most the conditional one's
    norm over the channels, then by strength."""
    scale = (cond.norm(dim=1, keepdim=True) / (guided.norm(dim=1, keepdim=True) + 1e-8)).clamp(0.0, 1.0)
    return guided * scale * strength


def cfg_norm_pre(x, cond, guided, strength: float):
    """ComfyUI's CFGNorm with pre_cfg: the guided noise x - guided rescaled, at each latent pixel, to the conditional
    noise's norm over the channels (either way; left as it is where it is zero), blended back towards plain CFG by
    1 - strength; returns the x0 prediction."""
    noise, own = x - guided, x - cond
    size = noise.norm(dim=1, keepdim=True)
    rescaled = noise * torch.where(size > 0, own.norm(dim=1, keepdim=True) / size.clamp_min(1e-12),
                                   torch.ones_like(size))
    return x - (strength * rescaled + (1 - strength) * noise)


def rescale_cfg(x, sigma, cond, guided, multiplier: float, flow: bool = False):
    """Guidance rescaled towards the conditional prediction's spread (Lin et al. 2024, section 3.4; ComfyUI's
    RescaleCFG): in velocity space, the guided output is scaled to the conditional one's standard deviation per
    batch item and mixed in by `multiplier`, which keeps high cfg (and zero-terminal-SNR models) from burning out.
    cond and guided are x0 predictions at x (the sampler's frame, noise level sigma); returns the guided x0."""
    if flow:        # x = (1 - s) x0 + s n: velocity n - x0 = (x - x0) / s
        to_v, from_v = (lambda d: (x - d) / sigma), (lambda v: x - sigma * v)
    else:           # x = x0 + s n, the network sees x / sqrt(1 + s^2): v = (x / (1 + s^2) - x0) sqrt(1 + s^2) / s
        k = (1 + sigma ** 2) ** 0.5
        to_v, from_v = (lambda d: (x / k ** 2 - d) * k / sigma), (lambda v: x / k ** 2 - v * sigma / k)
    v_cond, v_cfg = to_v(cond), to_v(guided)
    dims = list(range(1, x.ndim))
    rescaled = v_cfg * (v_cond.std(dim=dims, keepdim=True) / v_cfg.std(dim=dims, keepdim=True))
    return from_v(multiplier * rescaled + (1 - multiplier) * v_cfg)


def cfg_zero_star(x, cond, uncond, guided, scale):
    """CFG-Zero* (Fan et al. 2025; ComfyUI's CFGZeroStar, applied after any other guidance as its post-CFG step): the
    unconditional prediction is scaled by alpha, the projection of x - cond on x - uncond per batch item, so the
    guidance pushes away only from what the prompt does not already agree with. Without other guidance this is
    alpha uncond + scale (cond - alpha uncond); written, as ComfyUI writes it, as a change to the guided output.
    x0 predictions at x, the sampler's latent."""
    dims = list(range(1, x.ndim))
    away = x - uncond
    alpha = ((x - cond) * away).sum(dim=dims, keepdim=True) / ((away * away).sum(dim=dims, keepdim=True) + 1e-8)
    return guided + uncond * (alpha - 1.0) + scale * uncond * (1.0 - alpha)


class _Resampled:
    """A loaded pipeline seen with another scheduler (model.sampling): the samplers read the noise levels and the
    prediction type from it; everything else is the pipeline's own."""

    def __init__(self, pipe, scheduler):
        self._pipe, self.scheduler = pipe, scheduler

    def __getattr__(self, name):
        return getattr(self._pipe, name)


def sampling_view(handle):
    """The pipeline whose scheduler gives this run's noise levels and prediction type: the loaded one, or with
    model.sampling's prediction type / zero terminal SNR (the loaded pipeline is shared and stays as it is)."""
    over = handle.option("sampling")
    if not over:
        return handle.pipe
    from nodes.generate.split import resampled
    return _Resampled(handle.pipe, resampled(handle.pipe.scheduler, *over))


def linear_cfg(lo: float, hi: float, frames: int) -> torch.Tensor:
    """Guidance scale per frame rising linearly from lo (first frame) to hi (last frame)."""
    return torch.linspace(float(lo), float(hi), frames, dtype=torch.float64)


def run_sampling(handle, positive: Conditioning, negative: Optional[Conditioning], latent: Latent, *,
                 steps: int, cfg: float, sampler: str, scheduler: str = "default", denoise: float = 1.0,
                 seed: int = 0, noise: Optional[torch.Tensor] = None,
                 callback: Optional[Callable[[int, int], None]] = None,
                 check: Callable[[], None] = lambda: None,
                 preview: Optional[Callable[[torch.Tensor, int, int], None]] = None, start_step: int = 0,
                 end_step: Optional[int] = None, add_noise: bool = True, leftover_noise: bool = False,
                 log: Callable[[str], None] = lambda message: None, resume_dir=None,
                 noise_scale: float = 1.0, sigmas: str = "", first_sigma: float = 0.0, s_noise: float = 1.0,
                 s_noise_end: float = -1.0, noise_clip: float = 0.0, frame: str = "model",
                 ksampler_levels: bool = True, beta=BETA) -> Latent:
    """Denoise `latent` (pure noise when denoise = 1) and return the new latent; `preview(x, step,
    steps)` sees the latent after each step (the editor's live preview).

    start_step/end_step run only part of the schedule (KSamplerAdvanced). Without add_noise the latent is
    taken as the sampler's state at the first level (another sampler's leftover-noise output); with
    leftover_noise an early end returns that state instead of a clean latent. A clip longer than the model
    takes in one pass is sampled in context windows (fit_frame_limit), which `log` reports. `resume_dir`: a
    folder where each step's model output is kept, so a run that stops is taken up there (resume.py).
    `noise_scale` multiplies the noise the run starts from (A1111's initial noise multiplier for img2img, which
    Deforum schedules per frame). `sigmas`, when given, is the whole schedule written out (manual_sigmas): it
    replaces steps, scheduler, denoise and the flow shift, and a first level below the top starts from the input
    latent noised to it, as denoise below 1 does. `first_sigma` above 0 replaces the first level this run starts from
    (after start_step; ComfyUI's SetFirstSigma: Lotus' one step from level 999, timestep 999). `s_noise` scales the
    fresh noise a stochastic sampler adds each step (the others add none), which is drawn as ComfyUI draws it (comfy_step_noise); lcm
    fades it to `s_noise_end` (below 0: the same) and clamps it to `noise_clip` standard deviations (0: not). `frame`
    sigma takes a flow model's steps in log sigma, x read as x0 + sigma n (ComfyUI's dpmpp_2m and res_multistep); model
    takes them in the model's own alpha and sigma (diffusers' flow schedulers). `ksampler_levels`: uni_pc, uni_pc_bh2
    and dpm_2 sample the levels ComfyUI's KSampler gives them (steps + 1 scheduled, the next-to-last dropped); off,
    the schedule's own (ComfyUI's SamplerCustom with BasicScheduler). `beta`: the beta scheduler's (alpha, beta)."""
    from nodes.generate.model_manager import activate_loras
    adapter = get_adapter(handle.family)
    pipe = handle.pipe
    _check_inputs(handle, positive, negative, latent, sampler, getattr(handle.option("dual_cfg"), "middle", None))
    adapter.check_latent(handle, latent)
    if negative is None and not adapter.distilled_guidance(handle):
        negative = adapter.uncond(pipe, positive)
    if negative is None and cfg != 1.0 and not adapter.distilled_guidance(handle):
        raise NodeError(f"cfg {cfg} needs a negative conditioning: connect encode.text's negative output to "
                        "sample's negative input (or set cfg to 1)")
    # the schedule is the given latent's; the run's state holds the frames the prompts add (LTX-2's guides)
    given, latent = latent, adapter.with_keyframes(latent, (positive, negative))
    x0 = adapter.pack(latent)
    handle = adapter.for_latent(handle, latent)
    gen = torch.Generator("cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    if noise is not None and latent is not given and tuple(noise.shape) == tuple(given.samples.shape):
        # a noise.* node's noise is the given latent's: the frames the prompts add take seeded noise after it
        more = (*noise.shape[:2], latent.samples.shape[2] - noise.shape[2], *noise.shape[3:])
        noise = torch.cat([noise.float(), torch.randn(more, generator=gen)], 2)
    handle, noise = fit_frame_limit(handle, adapter, x0.shape, noise, gen, log)
    note = unchanging_schedule(handle, adapter, positive, given.samples.shape[2])
    if note:
        log(note)
    if noise is None or tuple(noise.shape) == tuple(latent.samples.shape):
        noise = adapter.latent_noise(latent, gen, noise)
    elif tuple(noise.shape) != tuple(x0.shape):
        raise NodeError(f"noise of shape {list(noise.shape)} does not fit the latent {list(x0.shape)}: make the "
                        "noise from the same latent")
    if noise_scale != 1.0:
        noise = noise * float(noise_scale)
    noise = adapter.run_noise(handle, noise)
    dtype = handle.denoiser.dtype
    device = handle.denoiser.device if handle.device == "cpu" else torch.device(handle.device)
    shift = handle.option("flow_shift")
    levels = sampling_view(handle)
    manual = bool(sigmas.strip())
    levels_of = sampler if ksampler_levels else ""
    sigmas = manual_sigmas(sigmas) if manual else make_sigmas(adapter, levels, steps, scheduler, denoise,
                                                              given.samples.shape, shift, levels_of, beta)
    if handle.option("img_to_img_velocity") and (add_noise or adapter.space != "flow"):
        raise NodeError("model.flow_shift's sampling img_to_img_velocity (Marigold v2) starts from the picture's "
                        "latent itself, on a flow model (Qwen-Image): set sample's add_noise off (ComfyUI's "
                        "DisableNoise)" if adapter.space == "flow" else
                        f"model.flow_shift's sampling img_to_img_velocity is for flow models (Qwen-Image); "
                        f"{handle.family} is not one: set sampling to flow")
    partial = start_step > 0 or (end_step is not None and end_step < len(sigmas) - 1) or not add_noise
    if handle.run_wrappers and denoise < 1:
        # FreeInit re-noises each pass's result as a run from pure noise starts; a run with denoise below 1
        # mixes what it is given with the input latent, so passes after the first started with far less noise
        # than their first step expects (0.36 instead of 0.6 at denoise 0.6 on a flow model), without a word.
        raise NodeError(f"FreeInit (noise.freeinit) re-initialises the noise of a run that starts from pure noise; "
                        f"denoise {denoise:g} starts from the input latent, which FreeInit's passes cannot: set "
                        f"denoise to 1 or remove noise.freeinit")
    if partial:
        if handle.run_wrappers:
            raise NodeError("start/end steps and add_noise off cannot be combined with FreeInit (it reruns the "
                            "whole schedule): remove one of them")
        total = len(sigmas) - 1
        sigmas = split_schedule(sigmas, start_step, end_step, leftover_noise)
        if sigmas is None:
            # ComfyUI's KSamplerAdvanced passes the latent through here; a latent that comes out as it
            # went in (zeros, noise) decodes to a black or noisy video with no sign of what went wrong.
            raise NodeError(_empty_window(start_step, end_step, steps, total))
    if first_sigma > 0:
        # The level this run starts from, after start_step: set before the window was cut, it landed on a step the
        # run skips (ComfyUI's SetFirstSigma after SplitSigmas sets the second half's first level)
        sigmas = sigmas.clone()
        sigmas[0] = float(first_sigma)
    work = torch.float32
    if add_noise:
        x = first_noised(adapter, levels, float(sigmas[0]), noise.to(x0.device, work), x0.to(work),
                         denoise >= 1.0 and start_step == 0 and not manual, first_sigma > 0)
    else:
        x = x0.to(work)
    x = x.to(device)
    # Progress counts the steps of every pass a run wrapper makes (FreeInit: iterations x steps, fewer in fast
    # mode) against their sum: each pass restarted the bar at 0 after it had read 100%, and a fast pass's windows
    # were reported as steps of the full schedule (0.33/4, 1/2, 2.33/4, 2/2 for a 2-step pass of 4 windows).
    progress = {"before": 0, "total": planned_steps(handle.run_wrappers, len(sigmas) - 1)}

    def window_done(step: int, done: int, count: int) -> None:
        if callback is not None and done < count:
            callback(round(progress["before"] + step + done / count, 2), progress["total"])
    gaps = regions.steps_without(positive, sigmas, lambda p: adapter.percent_sigma(levels, p, shift))
    if gaps:
        log(f"steps {', '.join(map(str, gaps))} of {len(sigmas) - 1} fall outside every prompt's step range "
            f"(condition.timestep_range): the prompt's prediction there is zero, as in ComfyUI's sampler, which "
            f"throws those steps off; make the ranges meet (one's end at the next one's start)")
    info = SamplingInfo(handle.family, sigmas, adapter.space == "flow", adapter.factors(pipe)[0], x.shape[2],
                        int(seed), check, gen, window_done, lambda n: adapter.run_noise(handle, n))
    keep = None
    packed_mask = adapter.pack_mask(latent)
    if packed_mask is not None:
        keep = Latent(x0.to(device), latent.family, latent.frames, latent.fps, latent.width, latent.height,
                      _mask_on(packed_mask, x0.shape).to(device))
    def encode(px):
        return adapter.vae_encode(pipe, px.to(x0.dtype))
    positive, negative = model_concat(handle, positive, negative, latent, encode)
    positive, negative = adapter.for_run(handle, positive, negative, int(seed), sigmas)
    dual = handle.option("dual_cfg")
    if dual is not None:        # the middle prompt made ready for the run as the other two are
        middle = model_concat(handle, dual.middle, None, latent, encode)
        dual = replace(dual, middle=adapter.for_run(handle, middle[0], None, int(seed), sigmas)[0])
    mask_at = None
    if keep is not None and handle.option("differential") is not None:
        mask_at = differential(adapter.timestep_fn(levels), sigmas, adapter.sigma_range(levels)[0],
                               float(handle.option("differential")))
    ip_feed = new_feed(handle)
    true_at = (handle.option("true_cfg") or (0.0, 0))[1]
    guided = guided_model_fn(handle, adapter, positive, negative, cfg, x.shape[0], device, dtype, x.shape[2], keep,
                             noise.to(device), mask_at, ip_feed,
                             float(sigmas[true_at]) if true_at < len(sigmas) - 1 else -1.0, dual)

    # A CFG++ sampler leaves each step along the negative prompt's own prediction (ComfyUI's uncond_denoised): the
    # model under the negative prompt alone, through the same wrappers; a model told cfg as its guidance (FLUX.1 dev)
    # reads the run's there too (no negative prompt to guide against, so cfg is its guidance alone)
    negative_alone = None
    if sampler in CFG_PP:
        if negative is None:
            raise NodeError(f"{sampler} steps along the negative prompt's prediction (CFG++): connect encode.text's "
                            "negative output to sample's negative input, or choose another sampler")
        negative_alone = guided_model_fn(handle, adapter, negative, None, cfg, x.shape[0], device, dtype, x.shape[2],
                                         keep, noise.to(device), mask_at, ip_feed)

    def wrapped(pass_info: SamplingInfo, f=guided):
        # Wrappers see the schedule of the pass they run in (context windows find their step from it).
        for wrap in handle.wrappers:
            f = wrap(f, pass_info)
        return f

    current = {"fn": wrapped(info), "uncond": negative_alone and wrapped(info, negative_alone)}

    def model_fn(x, sigma, frames=None):
        return current["fn"](x, sigma) if frames is None else current["fn"](x, sigma, frames=frames)
    from nodes.generate.resume import replaying
    # a block-wise run's calls at noise 0 fill the attention cache: replayed, they would leave it empty
    fn = model_fn if sampler == "ar_video" else replaying(model_fn, resume_dir, log)

    def step_callback(i, total, x_now):
        check()
        # One NaN spreads to the whole latent within a step or two and decodes as black frames: stop
        # at the step it appeared, with the precision that is the usual cause, instead of finishing.
        if not bool(torch.isfinite(x_now).all()):
            raise NodeError(broke_down(handle, i + 1, total))
        if callback is not None:
            callback(progress["before"] + i + 1, progress["total"])
        if preview is not None:
            preview(adapter.unpack(latent, x_now).samples, i + 1, total)

    smp = SAMPLERS[sampler]
    if frame not in ("model", "sigma"):
        raise NodeError(f"frame {frame!r}: choose model or sigma")
    if frame == "sigma" and adapter.space == "flow" and sampler in STOCHASTIC:
        raise NodeError(f"frame sigma: {sampler} adds its noise in the model's own frame (as ComfyUI's does on a flow "
                        f"model): set frame to model")
    kw = {"flow": adapter.space == "flow" and frame == "model"}

    def step_noise(sig) -> dict:
        """The run's step noise on the levels `sig` (the SDE samplers' Brownian tree spans them)."""
        draw = comfy_step_noise(sampler, x0.shape, int(seed), device, sig)
        return {"noise_sampler": lambda *at: adapter.run_noise(handle, draw(*at))}
    if sampler in STOCHASTIC:
        kw.update(step_noise(sigmas), s_noise=s_noise)
    if sampler == "lcm":
        kw.update(s_noise_end=s_noise_end if s_noise_end >= 0 else None, noise_clip=noise_clip)
    if sampler in CFG_PP:
        kw["uncond_fn"] = lambda x, sigma: current["uncond"](x, sigma)
    if sampler == "er_sde" or (sampler in SNR_FRAME and adapter.space == "flow"):
        kw["top_level"] = adapter.percent_sigma(levels, 1e-4, shift)
    if sampler.startswith("sa_solver"):
        # ComfyUI's default tau_func: noise added between these two levels of the model's range
        kw["tau_levels"] = (adapter.percent_sigma(levels, 0.2, shift), adapter.percent_sigma(levels, 0.8, shift))
    blockwise = contextlib.nullcontext()
    if sampler == "ar_video":
        from nodes.generate.causal_wan import ar_options
        if partial:
            raise NodeError("the ar_video sampler takes each block through the whole schedule: start_step, end_step "
                            "and add_noise off do not apply to it")
        blockwise, opts = ar_options(handle, int(seed))
        kw.update(opts, start=None if opts["start"] is None else opts["start"].to(device))

    def run(start_noise: torch.Tensor, n_steps: Optional[int] = None) -> torch.Tensor:
        sig = sigmas if n_steps in (None, steps) else make_sigmas(adapter, levels, n_steps, scheduler, denoise,
                                                                  given.samples.shape, shift, levels_of, beta)
        pass_info = info if sig is sigmas else replace(info, sigmas=sig)
        current.update(fn=wrapped(pass_info), uncond=negative_alone and wrapped(pass_info, negative_alone))
        xs = adapter.noise_scaling(float(sig[0]), start_noise.to(x0.device, work), x0.to(work),
                                   full=denoise >= 1.0).to(device)
        run_kw = dict(kw, **step_noise(sig)) if sampler in BROWNIAN and sig is not sigmas else kw
        out = adapter.finish(smp(fn, xs, sig, step_callback, **run_kw), float(sig[-1]))
        progress["before"] += len(sig) - 1
        return out

    lock = _pipe_lock(pipe)
    with lock, torch.inference_mode(), _named_oom(handle, latent, sampler == "ar_video"), attention_scaled(handle), \
            installed(handle, ip_feed), blockwise as cache:
        if cache is not None:
            kw["cache"] = cache
        activate_loras(pipe, handle.loras) if hasattr(pipe, "load_lora_weights") else None
        check()
        if handle.run_wrappers:
            runner = run
            for wrap in handle.run_wrappers:
                runner = functools.partial(_wrapped_run, wrap, runner, info)
            out = runner(noise)
        else:
            out = smp(fn, x, sigmas, step_callback, **kw)
            # A leftover-noise result is the sampler's state, which the next sampler continues as is.
            if not (leftover_noise and float(sigmas[-1]) > 0 and partial):
                out = adapter.finish(out, float(sigmas[-1]))
        if keep is not None:
            # Kept frames come out as they went in (also in a leftover-noise state: the next sampler keeps them);
            # with differential diffusion, what its last step kept.
            mask = keep.mask if mask_at is None else mask_at(keep.mask, float(sigmas[-2]))
            out = out * mask + keep.samples * (1 - mask)
    return adapter.without_keyframes(given, adapter.unpack(latent, out.float().cpu()))


def first_noised(adapter, levels, sigma: float, noise: torch.Tensor, latent: torch.Tensor, whole: bool,
                 set_first: bool) -> torch.Tensor:
    """The state a run starts from: `latent` noised to its first level `sigma`, pure noise scaled to the top level
    when `whole` (the full schedule from its first step). A first level set by hand (first_sigma) is pure noise only
    where it reaches the model's top level, as ComfyUI's Sampler.max_denoise decides after SetFirstSigma: a VP
    model's noise at level 1 on a full schedule was scaled by sqrt(2), where ComfyUI scales it by 1."""
    if set_first:
        top = adapter.sigma_range(levels)[1]
        whole = math.isclose(top, sigma, rel_tol=1e-5) or sigma > top
    return adapter.noise_scaling(sigma, noise, latent, full=whole)


def _mask_on(mask: torch.Tensor, shape) -> torch.Tensor:
    """A latent's mask [1, 1, T, h, w] as the sampler applies it; one of another size (a latent resized or trimmed
    after the mask was set) is refused by name, not broadcast into the wrong frames."""
    if tuple(mask.shape[2:]) != tuple(shape[2:]):
        raise NodeError(f"the latent's mask covers {list(mask.shape[2:])} (frames, height, width) but the latent is "
                        f"{list(shape[2:])}: set the mask (latent.set_mask) after resizing or trimming the latent")
    return mask.float()


AUTO_SCHEDULE = "uniform_standard"


def fit_frame_limit(handle, adapter, shape, noise: Optional[torch.Tensor], gen: torch.Generator,
                    log: Callable[[str], None]):
    """(handle, noise) for a clip of latent `shape` on a model that takes at most so many frames at once
    (AnimateDiff's motion module): past that, uniform context windows of the model's trained length
    overlapping by a quarter, with FreeNoise when no noise is connected, as AnimateDiff-Evolved's
    defaults do; a long clip used to fail at the first step with 'add context windows'. A context.windows
    node of the user's is kept, unless its windows are themselves longer than the model takes."""
    from nodes.consistency.context_windows import ContextOptions, latent_context
    from nodes.consistency.wrappers import ContextWrapper
    limit = adapter.frame_limit(handle.pipe)
    frames = int(shape[2])
    if limit is None or frames <= limit[0]:
        return handle, noise
    most, native = limit
    title = adapter.spec.title
    tf = adapter.factors(handle.pipe)[0]
    own = [w.options for w in handle.wrappers if isinstance(w, ContextWrapper)]
    if own:
        longest = max(own, key=lambda o: latent_context(o.length, o.overlap, tf)[0])
        if latent_context(longest.length, longest.overlap, tf)[0] > most:
            raise NodeError(f"context.windows length {longest.length} is longer than the {most} frames the {title} "
                            f"model takes at once: set its length to {native} (overlap {native // 4})")
        return handle, noise
    options = ContextOptions(AUTO_SCHEDULE, native, native // 4)
    note = (f"{frames} frames are more than the {most} the {title} model takes at once: sampled in "
            f"{AUTO_SCHEDULE.replace('_standard', '')} context windows of {options.length} frames overlapping by "
            f"{options.overlap}")
    if noise is None:
        from nodes.consistency.noise_priors import freenoise
        noise = freenoise(shape, gen, options.length, options.overlap)
        note += " with FreeNoise"
    else:
        note += " (the connected noise as it is)"
    log(f"{note}; put context.windows before sample to choose them yourself")
    return handle.with_wrapper(ContextWrapper(options)), noise


def unchanging_schedule(handle, adapter, positive: Conditioning, latent_frames: int) -> Optional[str]:
    """What to say when a prompt schedule cannot change over the clip: a model that reads one prompt for all
    the frames of a pass (every family but AnimateDiff/SD) gets the schedule's average over the pass, so
    '0: a caterpillar, 24: a butterfly' sampled in one pass drew one creature, half of each, without a word."""
    from nodes.consistency.context_windows import latent_context
    from nodes.consistency.wrappers import ContextWrapper
    if adapter.per_frame_text or len(positive.keyframes) < 2:
        return None
    tf = adapter.factors(handle.pipe)[0]
    if any(latent_context(w.options.length, w.options.overlap, tf)[0] < latent_frames
           for w in handle.wrappers if isinstance(w, ContextWrapper)):
        return None
    return (f"the prompt schedule's {len(positive.keyframes)} keyframes do not change this clip over time: the "
            f"{adapter.spec.title} model reads one prompt for all the frames it samples at once, so every frame "
            f"gets the schedule's average. Put context.windows (shorter than the clip) before sample to give each "
            f"window its part of the schedule")


@contextlib.contextmanager
def _named_oom(handle, latent: Latent, blockwise: bool = False):
    """Out of memory while sampling names the run and what lowers its memory; torch's own text
    (allocator figures) stays at its end for whoever needs it. `blockwise`: an ar_video run, whose memory grows with
    the clip (its attention cache) and which context windows do not cut."""
    from nodes.generate.vae_ops import free_memory, is_oom
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is renamed
        if not is_oom(exc):
            raise
        free_memory()
        offload = ("set the loader's offload to model (or sequential: least memory, slowest), "
                   if handle.device != "cpu" else "")
        longer = ("; the ar_video sampler's attention cache holds the keys and values of every frame before the "
                  "block, so a shorter clip needs less" if blockwise else
                  ", or sample a long clip in context windows (context.windows)")
        raise NodeError(f"out of memory while sampling {latent.frames} frames of {latent.width}x{latent.height} "
                        f"with the {handle.family} model ({handle.dtype} on {handle.device}): {offload}lower "
                        f"width/height or frames{longer}; what ran before is kept in the cache. "
                        f"({str(exc).strip().splitlines()[0][:200]})") from None


def broke_down(handle, step: int, total: int) -> str:
    """What to say when sampling produced NaN/inf values at `step`."""
    if handle.dtype == "fp16":
        fix = "half precision overflows in some models: set the loader's dtype to bf16 or fp32"
    elif handle.dtype == "bf16":
        fix = "set the loader's dtype to fp32"
    else:
        fix = ("in fp32 that points at the weights: the model file or a LoRA holds NaN/inf values or is "
               "damaged (a LoRA's strength far above 1 can do it too)")
    return (f"sampling broke down at step {step} of {total}: the {handle.family} model ({handle.dtype} on "
            f"{handle.device}) produced NaN/inf values, which decode as black frames; {fix}")


def _empty_window(start_step: int, end_step: Optional[int], steps: int, total: int) -> str:
    last = total if end_step is None else min(end_step, total)
    why = [f"steps {steps}"] + ([f"denoise runs the last {total} of them"] if total != steps else []) \
        + ([f"end_step {end_step}"] if end_step is not None and end_step < total else [])
    return (f"start_step {start_step} leaves nothing to sample: the schedule stops at step {last} "
            f"({', '.join(why)}), so the latent would come out unchanged (a black or noisy video). Set start_step "
            f"below {last}, or raise steps or end_step")


def planned_steps(run_wrappers, steps: int) -> int:
    """Sampler steps a run makes in all: run wrappers nest (the last outermost), and a pass of the full
    `steps` runs the wrappers inside it, a shorter one (FreeInit's fast mode) a plain run."""
    if not run_wrappers:
        return steps
    *inner, outer = run_wrappers
    return sum(planned_steps(inner, steps) if n == steps else n for n in outer.pass_steps(steps))


def _wrapped_run(wrap, inner, info, start_noise, n_steps=None):
    """A run wrapper (FreeInit) around `inner(start_noise, n_steps) -> latent tensor`; start_noise is unit
    Gaussian noise, scaled to the first level (and mixed with the input latent) by `inner`."""
    return wrap(inner, start_noise, info) if n_steps is None else inner(start_noise, n_steps)


_LOCKS = {}


def _pipe_lock(pipe):
    """One run at a time per loaded pipeline (LoRA activation is pipeline-wide state)."""
    import threading
    return _LOCKS.setdefault(id(pipe), threading.Lock())


def _check_inputs(handle, positive, negative, latent, sampler, middle=None):
    if sampler not in SAMPLERS:
        raise NodeError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    fam = handle.family
    if sampler == "void_ddim" and get_adapter(fam).space == "flow":
        # Its steps are in VOID's alpha = 1 / (1 + sigma^2): on a flow model it ran to the end and decoded noise.
        raise NodeError(f"void_ddim is VOID's sampler (CogVideoX video inpainting) and {fam} is a flow-matching "
                        f"model: choose euler, dpmpp_2m or unipc")
    compatible = {fam} | ({"sd", "animatediff"} if fam in ("sd", "animatediff") else set())
    adapter = get_adapter(fam)
    if latent.family not in latent_families(adapter.latents(handle.pipe)):
        from nodes.generate.vae_ops import sd_vae_hint
        made = family(latent.family).title if latent.family in FAMILIES else latent.family
        raise NodeError(f"the latent was made for {made}, but the model is {adapter.title(handle.pipe)}: make the "
                        f"latent with this model's VAE (latent.empty / vae.encode)"
                        f"{sd_vae_hint(latent.family, adapter.latents(handle.pipe))}")
    for name, c in (("positive", positive), ("negative", negative), ("guide.dual_cfg's middle", middle)):
        if c is not None and c.family not in compatible:
            from nodes.generate.split import TYPE_OF
            how = f" (load.text_encoder with type {TYPE_OF[fam]})" if fam in TYPE_OF else ""
            raise NodeError(f"the {name} conditioning was encoded for {c.family}, but the model is {fam}: encode "
                            f"it with this model's text encoder{how}")
        vace = None if c is None else c.extra.get("vace")
        if vace is not None and vace.shape[2] != latent.samples.shape[2]:
            raise NodeError(f"the {name} VACE conditioning covers {vace.shape[2]} latent frames but the latent has "
                            f"{latent.samples.shape[2]}: sample the latent that condition.vace made")
    if sampler == "flow_euler" and get_adapter(fam).space != "flow":
        raise NodeError(f"flow_euler is for flow-matching models (Wan, LTX, HunyuanVideo, kinograph-mini); "
                        f"{fam} is not one. Use ddim, euler, dpmpp_2m or unipc")
