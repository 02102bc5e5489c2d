"""Samplers as short functions of (model, x, sigmas), k-diffusion style.

`model_fn(x, sigma) -> prediction` is the denoiser with everything (guidance, conditioning) already
applied by the caller. `callback(i, total, x)` runs after every step; raising from it cancels the run.
"""
from __future__ import annotations

import functools
import math

import torch

from nodes.generate.causal_wan import sample_ar_video
from nodes.generate.brownian import brownian_noise_sampler
from nodes.generate.dpm_samplers import DPM_SAMPLERS
from nodes.generate.dpm_solver import DPM_SOLVER_SAMPLERS
from nodes.generate.sa_solver import SA_SAMPLERS
from nodes.generate.sde_samplers import BROWNIAN_ON_DEVICE, SDE_SAMPLERS
from nodes.generate.seeds_samplers import SEEDS_SAMPLERS
from nodes.generate.sigma_samplers import SIGMA_SAMPLERS
from nodes.generate.void import sample_void_ddim


def flow_sigmas(steps: int, shift: float = 1.0) -> torch.Tensor:
    """steps + 1 flow-matching noise levels from 1 (pure noise) down to 0, float32.

    shift > 1 spends more steps at high noise: sigma' = shift * s / (1 + (shift - 1) * s),
    the time shift of diffusers' FlowMatchEulerDiscreteScheduler (SD3, Wan)."""
    s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return (shift * s / (1.0 + (shift - 1.0) * s)).float()


@torch.no_grad()
def sample_flow_euler(model_fn, x: torch.Tensor, sigmas: torch.Tensor, callback=None) -> torch.Tensor:
    """Euler integration of a rectified-flow velocity field, x_t = (1 - t) x0 + t noise, v = noise - x0.

    x starts as noise scaled to sigmas[0] (plain noise when sigmas[0] == 1)."""
    total = len(sigmas) - 1
    for i in range(total):
        v = model_fn(x, sigmas[i])
        x = x + (sigmas[i + 1] - sigmas[i]).to(x.dtype) * v
        if callback is not None:
            callback(i, total, x)
    return x


# -- Kinograph's general samplers ------------------------------------------------------------------
# Every sampler below takes model_fn(x, sigma) -> denoised x0 prediction. `flow` picks the frame the
# noise levels live in: False = variance exploding (x = x0 + sigma * n; eps/v models are sampled here
# after scaling), True = rectified flow (x = (1 - sigma) x0 + sigma * n). With alpha(s), sigma(s) of that
# frame and lambda = log(alpha / sigma), the solvers below are written once for both.

def _alpha_sigma(s: torch.Tensor, flow: bool):
    return (1 - s, s) if flow else (torch.ones_like(s), s)


def _lam(s: torch.Tensor, flow: bool) -> torch.Tensor:
    """log(alpha / sigma); pure noise in the flow frame (sigma = 1) is held just short of -inf."""
    a, sg = _alpha_sigma(s.clamp(max=1 - 1e-7) if flow else s, flow)
    return a.log() - sg.log()


def _noise_like(x, noise_sampler, i):
    if noise_sampler is None:
        raise ValueError("an ancestral sampler needs a seeded noise_sampler(step) -> tensor")
    return noise_sampler(i).to(x)


def comfy_noise_sampler(shape, seed: int, device, dtype=torch.float32):
    """noise_sampler(step) drawing the fresh noise of ancestral and SDE steps as ComfyUI's default_noise_sampler does,
    so a seed gives ComfyUI's picture: a generator of its own on the sampling device, seeded with the run's seed (the
    seed + 1 on the CPU, where the seed itself would draw the starting noise again), one draw of the whole latent for
    each step that adds noise."""
    device = torch.device(device)
    gen = torch.Generator(device).manual_seed((int(seed) + (device.type == "cpu")) & 0xFFFF_FFFF_FFFF_FFFF)
    return lambda i: torch.randn(tuple(shape), generator=gen, dtype=dtype, device=device)


@torch.no_grad()
def sample_ddim(model_fn, x, sigmas, callback=None, *, flow=False, eta=0.0, noise_sampler=None, s_noise=1.0):
    """DDIM (eta = 0: deterministic; this is also first-order Euler on the probability-flow ODE in
    both frames). eta > 0 adds fresh noise each step while keeping the marginal at the next level:
    the noise share is eta * sigma' * sqrt(1 - exp(-2h)), h the step in lambda (s_noise scales the noise drawn)."""
    sigmas = sigmas.double()
    total = len(sigmas) - 1
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        den = model_fn(x, s.float())
        a, sg = _alpha_sigma(s, flow)
        a2, sg2 = _alpha_sigma(s2, flow)
        if s2 == 0:
            x = den
        else:
            eps = (x - a.to(x.dtype) * den) / sg.to(x.dtype)
            c = eta * sg2 * (1 - torch.exp(-2 * (_lam(s2, flow) - _lam(s, flow)))).clamp(min=0).sqrt()
            x = a2.to(x.dtype) * den + (sg2 ** 2 - c ** 2).clamp(min=0).sqrt().to(x.dtype) * eps
            if eta > 0:
                x = x + (c * s_noise).to(x.dtype) * _noise_like(x, noise_sampler, i)
        if callback is not None:
            callback(i, total, x)
    return x


def sample_euler(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None):
    """Euler: x += (sigma' - sigma) * (x - x0) / sigma (in the flow frame, the same as flow Euler)."""
    return sample_ddim(model_fn, x, sigmas, callback, flow=flow, eta=0.0)


@torch.no_grad()
def sample_euler_ancestral(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, eta=1.0,
                           s_noise=1.0):
    """Euler ancestral: step down below the next level, then add seeded noise back up to it. Variance exploding, the
    step down is DDIM's with eta (k-diffusion's sigma_down / sigma_up). In the flow frame it is ComfyUI's rectified-flow
    variant, whose pictures a ComfyUI user expects: down to sigma_d = sigma' (1 + (sigma' / sigma - 1) eta), then
    scaled by (1 - sigma') / (1 - sigma_d) and noised to sigma' (renoise^2 = sigma'^2 - (sigma_d alpha' / alpha_d)^2)."""
    if not flow:
        return sample_ddim(model_fn, x, sigmas, callback, eta=eta, noise_sampler=noise_sampler, s_noise=s_noise)

    def update(i, x, den, s, s2):
        down = s2 * (1 + (s2 / s - 1) * eta)
        ratio = down / s
        x = ratio.to(x.dtype) * x + (1 - ratio).to(x.dtype) * den
        if eta > 0:
            renoise = (s2 ** 2 - down ** 2 * (1 - s2) ** 2 / (1 - down) ** 2).sqrt()
            x = ((1 - s2) / (1 - down)).to(x.dtype) * x + \
                (renoise * s_noise).to(x.dtype) * _noise_like(x, noise_sampler, i)
        return x
    return _each_step(model_fn, x, sigmas, callback, update)


def sample_euler_ancestral_cfg_pp(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, eta=1.0,
                                  s_noise=1.0, uncond_fn=None):
    """ComfyUI's euler_ancestral_cfg_pp (CFG++, Chung et al. 2024; eta 0: euler_cfg_pp): the step lands on the guided
    x0 prediction but leaves it along the negative prompt's noise, uncond_fn(x, sigma) (the model under the negative
    prompt alone), down to the ancestral level of the frame's sigma / alpha, then seeded noise back up to the next."""
    if uncond_fn is None:
        raise ValueError("a CFG++ sampler needs uncond_fn(x, sigma), the negative prompt's prediction")

    def update(i, x, den, s, s2):
        a_s, a_t = _alpha_sigma(s, flow)[0], _alpha_sigma(s2, flow)[0]
        d = (x - a_s.to(x.dtype) * uncond_fn(x, s.float())) / s.to(x.dtype)
        down, up = s2 / a_t, s2 * 0
        if eta:     # k-diffusion's get_ancestral_step, written to hold at pure noise (a flow model's alpha 0)
            up = torch.minimum(down, eta * down * (1 - (down * a_s / s) ** 2).clamp(min=0).sqrt())
            down = (down ** 2 - up ** 2).sqrt()
        x = a_t.to(x.dtype) * den + (a_t * down).to(x.dtype) * d
        if eta > 0 and s_noise > 0:
            x = x + (a_t * up * s_noise).to(x.dtype) * _noise_like(x, noise_sampler, i)
        return x
    return _each_step(model_fn, x, sigmas, callback, update)


@torch.no_grad()
def _each_step(model_fn, x, sigmas, callback, update):
    """The loop of a one-step sampler: the model's x0 at each level, `update(i, x, x0, sigma, sigma')` to the next, and
    x0 itself into zero noise."""
    sigmas = sigmas.double()
    total = len(sigmas) - 1
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        den = model_fn(x, s.float())
        x = den if s2 == 0 else update(i, x, den, s, s2)
        if callback is not None:
            callback(i, total, x)
    return x


@torch.no_grad()
def sample_dpmpp_2m(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None):
    """DPM-Solver++(2M): second-order multistep in data prediction; first order on the first step and
    into sigma = 0."""
    sigmas = sigmas.double()
    total = len(sigmas) - 1
    old_den, h_last = None, None
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        den = model_fn(x, s.float())
        if s2 == 0:
            x = den
        else:
            a2, sg2 = _alpha_sigma(s2, flow)
            _, sg = _alpha_sigma(s, flow)
            h = _lam(s2, flow) - _lam(s, flow)
            d = den
            if old_den is not None:
                r = h_last / h
                d = (1 + 1 / (2 * r)).to(x.dtype) * den - (1 / (2 * r)).to(x.dtype) * old_den
            x = (sg2 / sg).to(x.dtype) * x - (a2 * torch.expm1(-h)).to(x.dtype) * d
            h_last = h
        old_den = den
        if callback is not None:
            callback(i, total, x)
    return x


@torch.no_grad()
def sample_unipc(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None):
    """UniPC (B(h) = expm1(h) variant, order 2): a second-order multistep predictor, and a corrector
    that refines each point reached with the model output computed there (no extra model calls)."""
    sigmas = sigmas.double()
    total = len(sigmas) - 1
    hist = []                           # (x at a step's start, its level, model output there), newest last
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        den = model_fn(x, s.float())
        if hist:
            xp, sp, mp = hist[-1]
            x = _unipc_step(xp, sp, mp, s, flow, hist[-2][1:] if len(hist) > 1 else None, target=den)
        hist = (hist + [(x, s, den)])[-2:]
        if s2 == 0:
            x = den
        else:
            x = _unipc_step(x, s, den, s2, flow, hist[-2][1:] if len(hist) > 1 else None)
        if callback is not None:
            callback(i, total, x)
    return x


def _unipc_step(x, s, m0, t, flow, older=None, target=None):
    """From x at level s (model output m0) to level t. older = (level, output) one step back makes it
    second order; target = the model output at t turns the predictor into the UniC corrector."""
    dt = x.dtype
    a_t, sg_t = _alpha_sigma(t, flow)
    _, sg_s = _alpha_sigma(s, flow)
    lam_s = _lam(s, flow)
    h = _lam(t, flow) - lam_s
    bh = torch.expm1(-h)
    out = (sg_t / sg_s).to(dt) * x - (a_t * bh).to(dt) * m0
    d1 = rk = None
    if older is not None:
        rk = (_lam(older[0], flow) - lam_s) / h
        d1 = (older[1] - m0) / rk.to(dt)
    if target is None:
        return out if d1 is None else out - (a_t * bh * 0.5).to(dt) * d1
    d1_t = target - m0
    if d1 is None:
        return out - (a_t * bh * 0.5).to(dt) * d1_t
    phi = bh / -h - 1
    b1, b2 = phi / bh, (phi / -h - 0.5) * 2 / bh
    rho0, rho1 = (b1 - b2) / (1 - rk), (b2 - rk * b1) / (1 - rk)     # [[1, 1], [rk, 1]] @ rho = b
    return out - (a_t * bh).to(dt) * (rho0.to(dt) * d1 + rho1.to(dt) * d1_t)


def sample_flow_euler_denoised(model_fn, x, sigmas, callback=None, *, flow=True, noise_sampler=None):
    """Flow-matching Euler with a denoised-prediction model_fn (velocity v = (x - x0) / sigma)."""
    return sample_flow_euler(lambda xx, s: (xx - model_fn(xx, s)) / s.to(xx.dtype), x, sigmas.float(), callback)


@torch.no_grad()
def sample_lcm(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, s_noise=1.0,
               s_noise_end=None, noise_clip=0.0):
    """ComfyUI's lcm (the ping-pong sampler of distilled models): each step jumps to the model's x0, then noises it
    afresh to the next level (none after the last). As its SamplerLCM: the fresh noise is clamped to noise_clip times
    its own standard deviation (0: not), then scaled by s_noise, fading linearly to s_noise_end at the last step."""
    total = len(sigmas) - 1
    end = s_noise if s_noise_end is None else s_noise_end
    for i in range(total):
        x = model_fn(x, sigmas[i])
        s = sigmas[i + 1]
        if s > 0:
            n = _noise_like(x, noise_sampler, i)
            if noise_clip > 0:
                bound = noise_clip * n.std()
                n = n.clamp(-bound, bound)
            scale = s_noise + (end - s_noise) * (i / (total - 1) if total > 1 else 0.0)
            n = n * scale if scale != 1.0 else n
            x = (1 - s).to(x.dtype) * x + s.to(x.dtype) * n if flow else x + s.to(x.dtype) * n
        if callback is not None:
            callback(i, total, x)
    return x


def sample_gradient_estimation(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, ge_gamma=2.0,
                               cfg_pp=False, uncond_fn=None):
    """Gradient estimation (Permenter & Yuan 2024, ComfyUI's gradient_estimation): Euler, plus (ge_gamma - 1) times the
    change of the direction since the last step, along the step. x - sigma d = x0 in both frames, so one rule serves.
    cfg_pp (gradient_estimation_cfg_pp): the direction is the negative prompt's (uncond_fn) and the step lands on the
    guided prediction, as CFG++ does."""
    if cfg_pp and uncond_fn is None:
        raise ValueError("a CFG++ sampler needs uncond_fn(x, sigma), the negative prompt's prediction")
    old = {}

    def update(i, x, den, s, s2):
        d = (x - (uncond_fn(x, s.float()) if cfg_pp else den)) / s.to(x.dtype)
        dt = (s2 - s).to(x.dtype)
        x = den + d * s2.to(x.dtype) if cfg_pp else x + d * dt
        if "d" in old:
            x = x + (ge_gamma - 1) * (d - old["d"]) * dt
        old["d"] = d
        return x
    return _each_step(model_fn, x, sigmas, callback, update)


@torch.no_grad()
def sample_uni_pc(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, variant="bh1"):
    """ComfyUI's uni_pc (variant bh1) and uni_pc_bh2: UniPC (Zhao et al. 2023) multistep up to third order with its
    corrector, in log sigma on every model, as ComfyUI runs it (its flow models too: lambda = -log sigma, x taken as
    x0 + sigma n, whatever `flow` says), stepping to sigma 0.001 where the schedule ends at 0 (the result keeps that
    much noise, as ComfyUI's does). Kinograph's own unipc takes its steps in the model's frame (diffusers')."""
    from graph_engine import NodeError
    t = sigmas.double().clone()
    steps = len(t) - 1
    if steps < 2:
        raise NodeError(f"uni_pc needs at least 2 steps, got {steps} (with one, ComfyUI's returns the noise as it "
                        "was): set steps to 2 or more, or pick another sampler (euler takes one)")
    if t[-1] == 0:
        t[-1] = 0.001
    order = min(3, steps - 1)
    bh1 = variant == "bh1"

    def update(x, models, levels, lt, k, correct):
        lam0 = -levels[-1].log()
        h = -lt.log() - lam0
        m0 = models[-1]
        rks = [(-levels[-(i + 1)].log() - lam0) / h for i in range(1, k)]
        d1s = [(models[-(i + 1)] - m0) / rk.to(x.dtype) for i, rk in enumerate(rks, 1)]
        rks = torch.stack(rks + [torch.ones((), dtype=torch.float64)])
        hh = -h
        h_phi_1 = torch.expm1(hh)
        b_h = hh if bh1 else torch.expm1(hh)
        phi_k, fact, rows, b = h_phi_1 / hh - 1, 1, [], []
        for i in range(1, k + 1):
            rows.append(rks ** (i - 1))
            b.append(phi_k * fact / b_h)
            fact *= i + 1
            phi_k = phi_k / hh - 1 / fact
        r_mat, b = torch.stack(rows), torch.stack(b)
        base = (lt / levels[-1]).to(x.dtype) * x - h_phi_1.to(x.dtype) * m0
        res = 0
        if d1s:
            rhos = torch.tensor([0.5], dtype=torch.float64) if k == 2 else torch.linalg.solve(r_mat[:-1, :-1], b[:-1])
            res = sum(r.to(x.dtype) * d for r, d in zip(rhos, d1s))
        x_t = base - b_h.to(x.dtype) * res
        if not correct:
            return x_t, None
        m_t = model_fn(x_t, lt.float())
        rhos = torch.tensor([0.5], dtype=torch.float64) if k == 1 else torch.linalg.solve(r_mat, b)
        res = sum(r.to(x.dtype) * d for r, d in zip(rhos[:-1], d1s)) if d1s else 0
        return base - b_h.to(x.dtype) * (res + rhos[-1].to(x.dtype) * (m_t - m0)), m_t

    models, levels = [model_fn(x, t[0].float())], [t[0]]
    for i in range(steps):
        if 0 < i < order:
            x, m = update(x, models, levels, t[i], i, True)
            models.append(m)
            levels.append(t[i])
        elif i >= order:
            for step in range(i, i + 1 + (i == steps - 1)):
                x, m = update(x, models, levels, t[step], min(order, steps + 1 - step), step != steps)
                models, levels = models[1:] + models[-1:], levels[1:] + [t[step]]
                if step < steps:
                    models[-1] = m if m is not None else model_fn(x, t[step].float())
        if callback is not None:
            callback(i, steps, x)
    return x


def sample_dpm_2(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None):
    """ComfyUI's dpm_2 (DPM-Solver-2 after Karras et al.): a half Euler step to the geometric mean of the two levels,
    then the whole step along the direction found there (two model calls a step; Euler into zero noise). In sigma on
    every model (x read as x0 + sigma n), as ComfyUI runs it."""
    def update(i, x, den, s, s2):
        mid = (s.log() + 0.5 * (s2.log() - s.log())).exp()
        d = (x - den) / s.to(x.dtype)
        x_mid = x + d * (mid - s).to(x.dtype)
        d_mid = (x_mid - model_fn(x_mid, mid.float())) / mid.to(x.dtype)
        return x + d_mid * (s2 - s).to(x.dtype)
    return _each_step(model_fn, x, sigmas, callback, update)


def _er_sde_scaler(v):
    """ER-SDE's noise scaler (Cui et al.'s default): more noise the noisier the level."""
    return v * ((v ** 0.3).exp() + 10.0)


@torch.no_grad()
def sample_er_sde(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, s_noise=1.0, max_stage=3,
                  top_level=1 - 1e-4):
    """ER-SDE-Solver-3 (Cui et al. 2023, "Elucidating the solution space of extended reverse-time SDEs"), as ComfyUI's
    er_sde: a stochastic exponential solver in er_lambda = sigma / alpha, up to third order from the last two steps'
    predictions, the integrals of its noise scaler taken on 200 points. A flow run from pure noise starts at top_level
    (ComfyUI's model_sampling.percent_to_sigma(1e-4)), where lambda is finite."""
    sigmas = sigmas.double().clone()
    if flow and sigmas[0] >= 1 and len(sigmas) > 1:
        sigmas[0] = top_level
    alphas = _alpha_sigma(sigmas, flow)[0]
    lams = sigmas / alphas
    points = torch.arange(200, dtype=torch.float64)
    total = len(sigmas) - 1
    old_den = old_dd = None
    for i in range(total):
        den = model_fn(x, sigmas[i].float())
        stage = min(max_stage, i + 1)
        if sigmas[i + 1] == 0:
            x = den
        else:
            ls, lt, a_t = lams[i], lams[i + 1], alphas[i + 1]
            r = _er_sde_scaler(lt) / _er_sde_scaler(ls)
            x = (a_t / alphas[i] * r).to(x.dtype) * x + (a_t * (1 - r)).to(x.dtype) * den
            if stage >= 2:
                dt = lt - ls
                step = -dt / 200
                pos = lt + points * step
                scaled = _er_sde_scaler(pos)
                dd = (den - old_den) / (ls - lams[i - 1]).to(x.dtype)
                x = x + (a_t * (dt + (1 / scaled).sum() * step * _er_sde_scaler(lt))).to(x.dtype) * dd
                if stage >= 3:
                    su = ((pos - ls) / scaled).sum() * step
                    du = (dd - old_dd) / ((ls - lams[i - 2]) / 2).to(x.dtype)
                    x = x + (a_t * (dt ** 2 / 2 + su * _er_sde_scaler(lt))).to(x.dtype) * du
                old_dd = dd
            if s_noise > 0:
                spread = (lt ** 2 - ls ** 2 * r ** 2).clamp(min=0).sqrt()
                x = x + (a_t * s_noise * spread).to(x.dtype) * _noise_like(x, noise_sampler, i)
        old_den = den
        if callback is not None:
            callback(i, total, x)
    return x


SAMPLERS = {"ddim": sample_ddim, "euler": sample_euler, "euler_ancestral": sample_euler_ancestral,
            "dpmpp_2m": sample_dpmpp_2m, "unipc": sample_unipc, "flow_euler": sample_flow_euler_denoised,
            "lcm": sample_lcm, "er_sde": sample_er_sde, "gradient_estimation": sample_gradient_estimation,
            "uni_pc": sample_uni_pc, "uni_pc_bh2": functools.partial(sample_uni_pc, variant="bh2"),
            "dpm_2": sample_dpm_2}
SAMPLERS.update({"euler_ancestral_cfg_pp": sample_euler_ancestral_cfg_pp,
                 "euler_cfg_pp": functools.partial(sample_euler_ancestral_cfg_pp, eta=0.0, s_noise=0.0),
                 "gradient_estimation_cfg_pp": functools.partial(sample_gradient_estimation, cfg_pp=True)})
# the samplers that read the negative prompt's prediction besides the guided one (uncond_fn)
CFG_PP = frozenset({"euler_ancestral_cfg_pp", "euler_cfg_pp", "res_multistep_cfg_pp", "res_multistep_ancestral_cfg_pp",
                    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_2m_cfg_pp", "gradient_estimation_cfg_pp"})
SAMPLERS.update(SDE_SAMPLERS)
SAMPLERS.update(SIGMA_SAMPLERS)
SAMPLERS.update(DPM_SAMPLERS)
SAMPLERS.update(SEEDS_SAMPLERS)
SAMPLERS.update(DPM_SOLVER_SAMPLERS)
SAMPLERS.update(SA_SAMPLERS)
# the samplers that add fresh noise each step, drawn from the run's seed; the SDE ones take it from a Brownian tree
# (brownian_noise_sampler), noise(sigma, sigma_next), the others one draw a step, noise(step) (comfy_noise_sampler)
BROWNIAN = frozenset(SDE_SAMPLERS)
STOCHASTIC = {"euler_ancestral", "lcm", "er_sde", "ddpm", "dpm_2_ancestral", "euler_ancestral_cfg_pp",
              "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "dpmpp_2s_ancestral",
              "dpmpp_2s_ancestral_cfg_pp", "seeds_2", "seeds_3", "exp_heun_2_x0_sde", *SA_SAMPLERS} | BROWNIAN
# the samplers that step in the model's half-log-SNR frame, where a flow run from pure noise starts at top_level
# (ComfyUI's offset_first_sigma_for_snr)
SNR_FRAME = BROWNIAN | set(SEEDS_SAMPLERS) | set(SA_SAMPLERS)


def comfy_step_noise(sampler: str, shape, seed: int, device, sigmas: torch.Tensor):
    """The fresh noise `sampler` adds on the levels `sigmas`, as ComfyUI's KSampler draws it for the seed: a Brownian
    tree over the levels for the SDE samplers (on the CPU, or the sampling device for the _gpu ones), one draw a step
    from a generator of its own for the others."""
    if sampler in BROWNIAN:
        return brownian_noise_sampler(shape, sigmas, seed, device, sampler not in BROWNIAN_ON_DEVICE)
    return comfy_noise_sampler(shape, seed, device)


def flow_top_level(shift: float) -> float:
    """Where ComfyUI's SDE samplers start a flow run from pure noise: its percent_to_sigma(1e-4) at `shift`."""
    t = 1 - 1e-4
    return shift * t / (1 + (shift - 1) * t)
# ComfyUI's KSampler schedules these on one step more and drops the next-to-last level
# (KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS); its SamplerCustom with BasicScheduler does not
PENULTIMATE_DROPPED = frozenset({"uni_pc", "uni_pc_bh2", "dpm_2", "dpm_2_ancestral"})


def ksampler_schedule(levels_for, steps: int, sampler: str) -> torch.Tensor:
    """levels_for(steps), the steps + 1 levels of a schedule, as ComfyUI's KSampler hands them to `sampler`: for
    uni_pc, uni_pc_bh2, dpm_2 and dpm_2_ancestral the schedule of steps + 1 without its next-to-last level (still `steps` steps)."""
    if sampler not in PENULTIMATE_DROPPED:
        return levels_for(steps)
    sig = levels_for(steps + 1)
    return torch.cat([sig[:-2], sig[-1:]])


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) noise levels: uniform in sigma^(1/rho), then a final 0."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return torch.cat([(hi + ramp * (lo - hi)) ** rho, torch.zeros(1, dtype=torch.float64)])


@torch.no_grad()
def sample_res_multistep(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None):
    """RES multistep (second-order exponential integrator, Zhang & Chen's "refined exponential solver"):
    the denoised prediction is taken as linear in lambda = log(alpha / sigma) through this step's and the
    previous step's values, and integrated exactly against the ODE's exponential factor:

        x' = (sigma' / sigma) x + alpha' h [(phi1 - phi2 / c) D + (phi2 / c) D_prev]

    with h the step in lambda, c = (lambda_prev - lambda) / h, phi1(-h) = (1 - e^-h) / h and
    phi2(-h) = (h - 1 + e^-h) / h^2. First order (DDIM) on the first step and into sigma = 0."""
    sigmas = sigmas.double()
    total = len(sigmas) - 1
    old_den, old_lam = None, None
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        den = model_fn(x, s.float())
        lam = _lam(s, flow)
        if s2 == 0:
            x = den
        else:
            a2, sg2 = _alpha_sigma(s2, flow)
            _, sg = _alpha_sigma(s, flow)
            h = _lam(s2, flow) - lam
            phi1 = -torch.expm1(-h) / h
            if old_den is None:
                x = (sg2 / sg).to(x.dtype) * x + (a2 * h * phi1).to(x.dtype) * den
            else:
                phi2 = (h - 1 + torch.exp(-h)) / h ** 2
                c = (old_lam - lam) / h
                b1, b2 = a2 * h * (phi1 - phi2 / c), a2 * h * phi2 / c
                x = (sg2 / sg).to(x.dtype) * x + b1.to(x.dtype) * den + b2.to(x.dtype) * old_den
        old_den, old_lam = den, lam
        if callback is not None:
            callback(i, total, x)
    return x


SAMPLERS["res_multistep"] = sample_res_multistep
# block by block with an autoregressive Wan model's attention cache (run_sampling gives it the cache)
SAMPLERS["ar_video"] = sample_ar_video
SAMPLERS["void_ddim"] = sample_void_ddim


# -- schedules over a model's table of noise levels --------------------------------------------------
# ComfyUI's schedulers `simple`, `sgm_uniform` and `beta` pick levels from the model's own table of
# noise levels by training timestep, so the same names give the same steps here as there.

class SigmaTable:
    """A model's noise levels by training timestep, ascending (index 0 = least noise).

    Discrete (VP) models: sqrt((1 - alphas_cumprod) / alphas_cumprod), one level per timestep.
    Flow models: the shifted line shift * t / (1 + (shift - 1) t) at t = i / n, i = 1..n, continuous
    in t. Their timestep of a level is n x the level itself, not the unshifted t it sits at: ComfyUI's
    ModelSamplingDiscreteFlow (and ModelSamplingFlux) take sigma x multiplier, which sgm_uniform's span
    follows (its end is 1000 x the smallest shifted level, 3.0 at shift 3, not 1)."""

    def __init__(self, sigmas: torch.Tensor, shift: float = 0.0):
        self.sigmas = sigmas.double()
        self.shift = float(shift)

    @classmethod
    def vp(cls, alphas_cumprod: torch.Tensor) -> "SigmaTable":
        ac = alphas_cumprod.double()
        return cls(((1 - ac) / ac) ** 0.5)

    @classmethod
    def flow(cls, shift: float = 1.0, n: int = 1000) -> "SigmaTable":
        t = torch.arange(1, n + 1, dtype=torch.float64) / n
        return cls(shift * t / (1 + (shift - 1) * t), shift)

    def __len__(self) -> int:
        return len(self.sigmas)

    def timestep(self, sigma: float) -> float:
        n = len(self.sigmas)
        if self.shift:
            return n * sigma
        return float((self.sigmas.log() - torch.log(torch.tensor(float(sigma), dtype=torch.float64))).abs().argmin())

    def sigma(self, t: float) -> float:
        n = len(self.sigmas)
        if self.shift:
            u = t / n
            return self.shift * u / (1 + (self.shift - 1) * u)
        t = min(max(float(t), 0.0), n - 1.0)
        lo = int(t)
        hi = min(lo + 1, n - 1)
        w = t - lo
        ls = self.sigmas.log()
        return float(((1 - w) * ls[lo] + w * ls[hi]).exp())


def _with_zero(levels) -> torch.Tensor:
    return torch.cat([torch.as_tensor(levels, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])


def simple_sigmas(table: SigmaTable, steps: int) -> torch.Tensor:
    """Every (n / steps)-th level of the table, from the noisiest down, then 0."""
    stride = len(table) / steps
    return _with_zero([float(table.sigmas[-(1 + int(i * stride))]) for i in range(steps)])


def _timestep_span(table: SigmaTable):
    """The timesteps of the table's noisiest and least noisy levels."""
    return table.timestep(float(table.sigmas[-1])), table.timestep(float(table.sigmas[0]))


def sgm_uniform_sigmas(table: SigmaTable, steps: int) -> torch.Tensor:
    """Evenly spaced timesteps from the noisiest level towards the least noisy (that end excluded), then 0."""
    t0, t1 = _timestep_span(table)
    ts = torch.linspace(t0, t1, steps + 1, dtype=torch.float64)[:-1]
    return _with_zero([table.sigma(float(t)) for t in ts])


def normal_sigmas(table: SigmaTable, steps: int) -> torch.Tensor:
    """ComfyUI's normal: `steps` evenly spaced timesteps from the noisiest level to the least noisy (both ends, their
    levels interpolated between whole timesteps, not rounded), then 0; a table whose least noisy level is 0 takes
    steps + 1 timesteps and ends there."""
    t0, t1 = _timestep_span(table)
    if math.isclose(table.sigma(t1), 0.0, abs_tol=1e-5):
        return torch.tensor([table.sigma(float(t)) for t in torch.linspace(t0, t1, steps + 1, dtype=torch.float64)],
                            dtype=torch.float64)
    return _with_zero([table.sigma(float(t)) for t in torch.linspace(t0, t1, steps, dtype=torch.float64)])


def beta_sigmas(table: SigmaTable, steps: int, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    """Timesteps at the quantiles of a Beta(alpha, beta) distribution (Lee et al. 2024, "Beta sampling is
    all you need"): with 0.6/0.6, denser at both ends of the schedule. Repeated timesteps are dropped."""
    import numpy as np
    from scipy.stats import beta as beta_dist
    total = len(table) - 1
    q = 1.0 - np.arange(steps, dtype=np.float64) / steps
    idx = np.rint(beta_dist.ppf(q, alpha, beta) * total).astype(int)
    picked = [int(t) for k, t in enumerate(idx) if k == 0 or t != idx[k - 1]]
    return _with_zero([float(table.sigmas[t]) for t in picked])


def linear_quadratic_sigmas(table: SigmaTable, steps: int, threshold: float = 0.025) -> torch.Tensor:
    """ComfyUI's linear_quadratic (Mochi's schedule): the first half of the steps falls linearly from the noisiest level
    by `threshold` of it in all, the rest quadratically to 0."""
    if steps == 1:
        return torch.tensor([1.0, 0.0], dtype=torch.float64) * float(table.sigmas[-1])
    lin = steps // 2
    quad = steps - lin
    diff = lin - threshold * steps
    q_coef = diff / (lin * quad ** 2)
    l_coef = threshold / lin - 2 * diff / quad ** 2
    done = [i * threshold / lin for i in range(lin)] + \
        [q_coef * i ** 2 + l_coef * i + q_coef * lin ** 2 for i in range(lin, steps)] + [1.0]
    return (1.0 - torch.tensor(done, dtype=torch.float64)) * float(table.sigmas[-1])


def exponential_sigmas(table: SigmaTable, steps: int) -> torch.Tensor:
    """ComfyUI's exponential: levels evenly spaced in log sigma from the table's noisiest to its least noisy, then 0."""
    hi, lo = float(table.sigmas[-1]), float(table.sigmas[0])
    return _with_zero(torch.linspace(math.log(hi), math.log(lo), steps, dtype=torch.float64).exp())


def ddim_uniform_sigmas(table: SigmaTable, steps: int) -> torch.Tensor:
    """ComfyUI's ddim_uniform: every (n // steps)-th level of the table from its second least noisy up, noisiest
    first, then 0 (a table whose second level is 0 takes one step more and ends there)."""
    levels = [float(v) for v in table.sigmas]
    if math.isclose(levels[1], 0.0, abs_tol=1e-5):
        steps, tail = steps + 1, []
    else:
        tail = [0.0]
    return torch.tensor(levels[1::max(len(levels) // steps, 1)][::-1] + tail, dtype=torch.float64)


def kl_optimal_sigmas(table: SigmaTable, steps: int) -> torch.Tensor:
    """ComfyUI's kl_optimal (taken from A1111's): levels evenly spaced in arctan sigma from the table's noisiest to its least noisy, then 0, in float32 as there."""
    if steps < 2:
        from graph_engine import NodeError
        raise NodeError("the kl_optimal schedule spans its first and last level: give it 2 steps or more")
    share = torch.arange(steps, dtype=torch.float32).div_(steps - 1)
    levels = (share * math.atan(float(table.sigmas[0])) + (1 - share) * math.atan(float(table.sigmas[-1]))).tan_()
    return _with_zero(levels.double())


def sd_turbo_sigmas(table: SigmaTable, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """ComfyUI's SDTurboScheduler: the levels at every 100th timestep from the noisiest (999, 899, ...; at most
    ten), denoise starting that many tenths lower, then 0."""
    start = 10 - int(10 * denoise)
    picked = [999 - 100 * k for k in range(start, min(10, start + steps))]
    return _with_zero([float(table.sigmas[t]) for t in picked])


def ideogram4_sigmas(steps: int, width: int, height: int, mu: float = 0.0, std: float = 1.5) -> torch.Tensor:
    """Ideogram 4's logit-normal flow schedule (ComfyUI's Ideogram4Scheduler, Ideogram4Pipeline's own): steps + 1
    levels, the i-th from the noisy end 1 - t at the (steps - i) / steps quantile of t = 1 - sigmoid(N(mu', std)),
    mu' = mu + ln(pixels / 512^2) / 2 (bigger pictures spend longer at high noise), t kept inside Ideogram's logSNR
    window [-15, 18]. The window leaves the last level at about 5.5e-4; it ends at 0, as the pipeline and the
    templates' scheduler end."""
    import math
    from statistics import NormalDist
    mean = mu + 0.5 * math.log(width * height / (512 * 512))
    t_min, t_max = 1 / (1 + math.exp(0.5 * 18.0)), 1 / (1 + math.exp(0.5 * -15.0))
    levels = []
    for i in range(steps, -1, -1):
        u = i / steps
        z = -math.inf if u <= 0 else math.inf if u >= 1 else NormalDist().inv_cdf(u)
        t = 1 - 1 / (1 + math.exp(-(mean + std * z)))
        levels.append(1 - min(max(t, t_min), t_max))
    levels[-1] = 0.0
    return torch.tensor(levels, dtype=torch.float64).float()


def sd_table() -> SigmaTable:
    """Stable Diffusion's (and SDXL's) noise levels: scaled_linear betas from 0.00085 to 0.012 over 1000 steps."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return SigmaTable.vp(torch.cumprod(1 - betas, 0))


TABLE_SCHEDULES = {"simple": simple_sigmas, "sgm_uniform": sgm_uniform_sigmas, "beta": beta_sigmas,
                   "normal": normal_sigmas, "linear_quadratic": linear_quadratic_sigmas,
                   "exponential": exponential_sigmas,
                   # RES4LYF's beta57, the favourite of many shared workflows: ComfyUI's beta at alpha 0.5, beta 0.7
                   "beta57": functools.partial(beta_sigmas, alpha=0.5, beta=0.7),
                   "ddim_uniform": ddim_uniform_sigmas, "kl_optimal": kl_optimal_sigmas}


def latent_sampler(name: str):
    """The sampler `name` for a plain latent (every one but ar_video, which needs an autoregressive Wan model's
    cache, and void_ddim, VOID's CogVideoX loop); the sound models call it directly, outside run_sampling."""
    if name not in SAMPLERS or name in ("ar_video", "void_ddim") or name in CFG_PP:
        from graph_engine import NodeError
        raise NodeError(f"sampler={name!r}: choose one of "
                        f"{', '.join(s for s in SAMPLERS if s not in ('ar_video', 'void_ddim') and s not in CFG_PP)}")
    return SAMPLERS[name]
