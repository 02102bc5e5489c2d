"""ComfyUI's SEEDS samplers (Gonzalez et al. 2023, Stochastic Explicit Exponential Derivative-free Solvers, data
prediction): seeds_2, seeds_3, and the exponential Heun steps built on seeds_2 (exp_heun_2_x0 and its SDE twin).

Each step runs in the model's own half-log-SNR frame (sde_samplers._frame: -log sigma on eps/v models, -logit sigma on
flow models), its stages at levels a share r of the way in lambda, eta damping the exponential step and the removed
part drawn afresh. The fresh noise is ComfyUI's default noise sampler's (one draw of the whole latent a call, two or
three calls a step), and a flow run from pure noise starts at top_level, as its offset_first_sigma_for_snr has it."""
from __future__ import annotations

import functools

import torch

from nodes.generate.sde_samplers import _each_step, _frame


def _phi_1(h):
    """h phi_1(h) of exponential integrators (ComfyUI's ei_h_phi_1)."""
    return torch.expm1(h)


def _phi_2(h):
    """h phi_2(h) (ei_h_phi_2)."""
    return (torch.expm1(h) - h) / h


def _fresh(noise_sampler, x, i, factor):
    """noise carried from the stage before, decayed by exp(factor), plus what that decay took out, drawn afresh."""
    from nodes.generate.samplers import _noise_like
    return (factor * 2).expm1().neg().sqrt() * _noise_like(x, noise_sampler, i)


def _counted(update):
    """update(x, den, s, s2, step) for _each_step, which hands it no step."""
    step = [0]

    def run(x, den, s, s2):
        step[0] += 1
        return update(x, den, s, s2, step[0] - 1)
    return run


def _at(lam_of, sigma_of, s, s2, r):
    """(the level a share r of the way from s to s2 in lambda, its alpha)."""
    lam = torch.lerp(lam_of(s), lam_of(s2), r)
    level = sigma_of(lam)
    return level, level * lam.exp()


def sample_seeds_2(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, eta=1.0, s_noise=1.0,
                   r=0.5, solver="phi_1", top_level=1 - 1e-4):
    """SEEDS-2: a stage at the level r of the way in lambda (noised on the way there), then the whole step from both
    predictions (solver phi_1: their lerp by 1 / 2r; phi_2: the phi_2 weights)."""
    lam_of, sigma_of = _frame(flow)
    inject = eta > 0 and s_noise > 0

    def update(x, den, s, s2, i):
        h = lam_of(s2) - lam_of(s)
        h_eta = h * (eta + 1)
        (s_1, alpha_1), alpha_t = _at(lam_of, sigma_of, s, s2, r), s2 * lam_of(s2).exp()
        x2 = s_1 / s * (-r * h * eta).exp() * x - alpha_1 * _phi_1(-r * h_eta) * den
        if inject:
            noise = _fresh(noise_sampler, x, i, -r * h * eta)
            x2 = x2 + noise * s_1 * s_noise
        den2 = model_fn(x2, s_1)
        if solver == "phi_1":
            x = s2 / s * (-h * eta).exp() * x - alpha_t * _phi_1(-h_eta) * torch.lerp(den, den2, 1 / (2 * r))
        else:
            b2 = _phi_2(-h_eta) / r
            x = s2 / s * (-h * eta).exp() * x - alpha_t * ((_phi_1(-h_eta) - b2) * den + b2 * den2)
        if inject:
            seg = (r - 1) * h * eta
            noise = noise * seg.exp() + _fresh(noise_sampler, x, i, seg)
            x = x + noise * s2 * s_noise
        return x
    return _each_step(model_fn, x, sigmas, callback, flow, top_level, _counted(update))


def sample_seeds_3(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, eta=1.0, s_noise=1.0,
                   r_1=1 / 3, r_2=2 / 3, top_level=1 - 1e-4):
    """SEEDS-3: stages at r_1 and r_2 of the way in lambda, each noised on the way, then the whole step from the first
    and third predictions."""
    lam_of, sigma_of = _frame(flow)
    inject = eta > 0 and s_noise > 0

    def update(x, den, s, s2, i):
        h = lam_of(s2) - lam_of(s)
        h_eta = h * (eta + 1)
        (s_1, alpha_1), (s_2, alpha_2) = _at(lam_of, sigma_of, s, s2, r_1), _at(lam_of, sigma_of, s, s2, r_2)
        alpha_t = s2 * lam_of(s2).exp()
        x2 = s_1 / s * (-r_1 * h * eta).exp() * x - alpha_1 * _phi_1(-r_1 * h_eta) * den
        if inject:
            noise = _fresh(noise_sampler, x, i, -r_1 * h * eta)
            x2 = x2 + noise * s_1 * s_noise
        den2 = model_fn(x2, s_1)
        a3_2 = r_2 / r_1 * _phi_2(-r_2 * h_eta)
        x3 = s_2 / s * (-r_2 * h * eta).exp() * x - alpha_2 * ((_phi_1(-r_2 * h_eta) - a3_2) * den + a3_2 * den2)
        if inject:
            seg = (r_1 - r_2) * h * eta
            noise = noise * seg.exp() + _fresh(noise_sampler, x, i, seg)
            x3 = x3 + noise * s_2 * s_noise
        den3 = model_fn(x3, s_2)
        b3 = _phi_2(-h_eta) / r_2
        x = s2 / s * (-h * eta).exp() * x - alpha_t * ((_phi_1(-h_eta) - b3) * den + b3 * den3)
        if inject:
            seg = (r_2 - 1) * h * eta
            noise = noise * seg.exp() + _fresh(noise_sampler, x, i, seg)
            x = x + noise * s2 * s_noise
        return x
    return _each_step(model_fn, x, sigmas, callback, flow, top_level, _counted(update))


SEEDS_SAMPLERS = {"seeds_2": sample_seeds_2, "seeds_3": sample_seeds_3,
                  # exponential Heun in x0 and log-SNR time: seeds_2 with the stage at the end of the step
                  "exp_heun_2_x0": functools.partial(sample_seeds_2, eta=0.0, s_noise=0.0, r=1.0, solver="phi_2"),
                  "exp_heun_2_x0_sde": functools.partial(sample_seeds_2, r=1.0, solver="phi_2")}
