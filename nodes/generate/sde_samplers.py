"""ComfyUI's DPM-Solver++ SDE samplers: dpmpp_sde, dpmpp_2m_sde (midpoint, or heun's correction) and dpmpp_3m_sde.

Each step is DPM-Solver++ in the model's own frame (lambda = log(alpha / sigma): -log sigma on eps/v models, -logit
sigma on flow models) with part of the noise taken out and drawn afresh: the Brownian-tree noise of brownian.py, which
run_sampling hands over as noise(sigma, sigma_next). The step scalars are float32, as ComfyUI's sigmas are, so the
levels the noise is drawn at are its levels. A flow run from pure noise starts at top_level (ComfyUI's
offset_first_sigma_for_snr: the model's percent_to_sigma(1e-4)), where lambda is finite.
"""
from __future__ import annotations

import torch


def _frame(flow: bool):
    """(lambda of sigma, sigma of lambda) of the frame, ComfyUI's sigma_to_half_log_snr and its inverse."""
    if flow:
        return (lambda s: s.logit().neg()), (lambda lam: lam.neg().sigmoid())
    return (lambda s: s.log().neg()), (lambda lam: lam.neg().exp())


def _ancestral(s_from, s_to, eta: float):
    """k-diffusion's get_ancestral_step: the level to step down to, and the noise that brings it back to s_to."""
    if not eta:
        return s_to, 0.0
    up = torch.minimum(s_to, eta * (s_to ** 2 * (s_from ** 2 - s_to ** 2) / s_from ** 2) ** 0.5)
    return (s_to ** 2 - up ** 2) ** 0.5, up


def _need(noise_sampler, eta, s_noise):
    if eta > 0 and s_noise > 0 and noise_sampler is None:
        raise ValueError("an SDE sampler needs noise(sigma, sigma_next) (brownian_noise_sampler)")


@torch.no_grad()
def _each_step(model_fn, x, sigmas, callback, flow, top_level, update):
    """The loop: the model's x0 at each (float32) level, `update(x, x0, sigma, sigma')` to the next, and x0 itself
    into zero noise."""
    sigmas = sigmas.float().clone()
    if flow and len(sigmas) > 1 and sigmas[0] >= 1:
        sigmas[0] = top_level
    total = len(sigmas) - 1
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        den = model_fn(x, s)
        x = den if s2 == 0 else update(x, den, s, s2)
        if callback is not None:
            callback(i, total, x)
    return x


def sample_dpmpp_sde(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, eta=1.0, s_noise=1.0,
                     r=0.5, top_level=1 - 1e-4):
    """DPM-Solver++ (stochastic), two model calls a step: one at the level a share r of the way in lambda, with
    noise added on the way there, then the whole step from both predictions."""
    _need(noise_sampler, eta, s_noise)
    lam_of, sigma_of = _frame(flow)
    fac = 1 / (2 * r)

    def update(x, den, s, s2):
        lam_s, lam_t = lam_of(s), lam_of(s2)
        lam_mid = lam_s + r * (lam_t - lam_s)
        s_mid = sigma_of(lam_mid)
        alpha_s, alpha_mid, alpha_t = s * lam_s.exp(), s_mid * lam_mid.exp(), s2 * lam_t.exp()
        down, up = _ancestral(lam_s.neg().exp(), lam_mid.neg().exp(), eta)
        h_ = down.log().neg() - lam_s
        x_mid = (alpha_mid / alpha_s) * (-h_).exp() * x - alpha_mid * (-h_).expm1() * den
        if eta > 0 and s_noise > 0:
            x_mid = x_mid + alpha_mid * noise_sampler(s, s_mid) * s_noise * up
        den_mid = model_fn(x_mid, s_mid)
        down, up = _ancestral(lam_s.neg().exp(), lam_t.neg().exp(), eta)
        h_ = down.log().neg() - lam_s
        den_d = (1 - fac) * den + fac * den_mid
        x = (alpha_t / alpha_s) * (-h_).exp() * x - alpha_t * (-h_).expm1() * den_d
        if eta > 0 and s_noise > 0:
            x = x + alpha_t * noise_sampler(s, s2) * s_noise * up
        return x
    return _each_step(model_fn, x, sigmas, callback, flow, top_level, update)


def sample_dpmpp_multistep_sde(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, eta=1.0,
                               s_noise=1.0, order=2, solver="midpoint", top_level=1 - 1e-4):
    """DPM-Solver++(2M) SDE (order 2; solver midpoint or heun, ComfyUI's dpmpp_2m_sde / dpmpp_2m_sde_heun) and
    DPM-Solver++(3M) SDE (order 3, dpmpp_3m_sde): the exponential step damped by eta, corrected with the last one or
    two steps' predictions, and noise sigma' sqrt(1 - exp(-2 h eta)) added."""
    _need(noise_sampler, eta, s_noise)
    lam_of = _frame(flow)[0]
    past = []          # (x0, step in lambda) of the steps before, newest first

    def update(x, den, s, s2):
        lam_t = lam_of(s2)
        h = lam_t - lam_of(s)
        h_eta = h * (eta + 1)
        alpha_t = s2 * lam_t.exp()
        x = s2 / s * (-h * eta).exp() * x + alpha_t * (-h_eta).expm1().neg() * den
        if order == 3 and len(past) > 1:
            (den_1, h_1), (den_2, h_2) = past[:2]
            r0, r1 = h_1 / h, h_2 / h
            d1_0, d1_1 = (den - den_1) / r0, (den_1 - den_2) / r1
            d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            phi_3 = phi_2 / h_eta - 0.5
            x = x + (alpha_t * phi_2) * d1 - (alpha_t * phi_3) * d2
        elif order == 3 and past:
            den_1, h_1 = past[0]
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            x = x + (alpha_t * phi_2) * ((den - den_1) / (h_1 / h))
        elif past and solver == "heun":
            den_1, h_1 = past[0]
            x = x + alpha_t * ((-h_eta).expm1().neg() / (-h_eta) + 1) * (1 / (h_1 / h)) * (den - den_1)
        elif past:
            den_1, h_1 = past[0]
            x = x + 0.5 * alpha_t * (-h_eta).expm1().neg() * (1 / (h_1 / h)) * (den - den_1)
        if eta > 0 and s_noise > 0:
            x = x + noise_sampler(s, s2) * s2 * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        past[:] = [(den, h)] + past[:1]
        return x
    return _each_step(model_fn, x, sigmas, callback, flow, top_level, update)


def sample_dpmpp_2m_sde(model_fn, x, sigmas, callback=None, **kw):
    return sample_dpmpp_multistep_sde(model_fn, x, sigmas, callback, order=2, solver="midpoint", **kw)


def sample_dpmpp_2m_sde_heun(model_fn, x, sigmas, callback=None, **kw):
    return sample_dpmpp_multistep_sde(model_fn, x, sigmas, callback, order=2, solver="heun", **kw)


def sample_dpmpp_3m_sde(model_fn, x, sigmas, callback=None, **kw):
    return sample_dpmpp_multistep_sde(model_fn, x, sigmas, callback, order=3, **kw)


# ComfyUI's names: the _gpu variants are the same samplers with the Brownian tree drawn on the sampling device
# (run_sampling builds the noise; BROWNIAN_ON_DEVICE)
SDE_SAMPLERS = {"dpmpp_sde": sample_dpmpp_sde, "dpmpp_2m_sde": sample_dpmpp_2m_sde,
                "dpmpp_2m_sde_heun": sample_dpmpp_2m_sde_heun, "dpmpp_3m_sde": sample_dpmpp_3m_sde}
SDE_SAMPLERS.update({f"{k}_gpu": v for k, v in list(SDE_SAMPLERS.items())})
BROWNIAN_ON_DEVICE = frozenset(k for k in SDE_SAMPLERS if k.endswith("_gpu"))
