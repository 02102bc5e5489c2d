"""ComfyUI's sa_solver and sa_solver_pece: SA-Solver (Xue et al. 2023, Stochastic Adams Solver), a predictor-corrector
multistep method in the model's half-log-SNR frame (sde_samplers._frame), its stochastic strength tau 1 between the
levels 20% and 80% of the way through the model's noise range and 0 (an ODE) outside, as ComfyUI's default tau_func.

The predictor extrapolates the last (up to 3) x0 predictions with Lagrange weights integrated against the SDE's
exponential (compute_stochastic_adams_b_coeffs), adding noise; the corrector redoes the step with the new prediction
among (up to 4) points. pece evaluates the model again on the corrected state. Orders drop near the end of a schedule
into zero noise; a flow run from pure noise starts at top_level (ComfyUI's offset_first_sigma_for_snr)."""
from __future__ import annotations

import functools
import math

import torch

from nodes.generate.sde_samplers import _frame


def _exponential_coefficients(s, t, order: int, tau: float) -> torch.Tensor:
    """(1 + tau^2) times the integral from s to t of exp((1 + tau^2) x) x^p, p < order, exp((1 + tau^2) t) factored
    out, by parts (a lower-triangular recursion)."""
    tau_mul = 1 + tau ** 2
    p = torch.arange(order, dtype=s.dtype, device=s.device)
    ends = t ** p - s ** p * (-tau_mul * (t - s)).exp()
    depth = p.unsqueeze(1) - p.unsqueeze(0)
    log_fact = (p + 1).lgamma()
    coeff = log_fact.unsqueeze(1) - log_fact.unsqueeze(0)
    if tau > 0:
        coeff = coeff - depth * math.log(tau_mul)
    signs = torch.where(depth % 2 == 0, 1.0, -1.0)
    return (coeff.exp() * signs).tril() @ ends


def _b_coefficients(sigma_next, lambdas, lam_s, lam_t, tau: float, simple_order_2: bool, corrector: bool):
    """The step's weights of the predictions at `lambdas` (SA-Solver's eqs. 15 and 18), or with simple_order_2 the
    paper's simplified order-2 ones."""
    alpha_t = sigma_next * lam_t.exp()
    if simple_order_2 and lambdas.shape[0] == 2:
        tau_mul, h = 1 + tau ** 2, lam_t - lam_s
        whole = alpha_t * (-h * tau_mul).expm1().neg()
        if corrector:
            b_1 = alpha_t * (0.5 * tau_mul * h)
            return torch.stack([whole - b_1, b_1])
        b_2 = alpha_t * (0.5 * tau_mul * h ** 2) / (lambdas[-2] - lam_s)
        return torch.stack([b_2, whole - b_2])
    integrals = _exponential_coefficients(lam_s, lam_t, lambdas.shape[0], tau)
    vander = torch.vander(lambdas, lambdas.shape[0], increasing=True).T
    return alpha_t * torch.linalg.solve(vander, integrals)


def _weighted(b, preds):
    return sum(w * p for w, p in zip(b, preds))


@torch.no_grad()
def sample_sa_solver(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, s_noise=1.0,
                     top_level=1 - 1e-4, tau_levels=None, predictor_order=3, corrector_order=4, use_pece=False,
                     simple_order_2=False):
    """tau_levels: (the level 20% of the way, the level 80% of the way), the model's percent_to_sigma(0.2) and (0.8)
    between which the solver adds noise; None = never (an ODE)."""
    from nodes.generate.samplers import _noise_like
    if len(sigmas) <= 1:
        return x
    lam_of = _frame(flow)[0]
    sigmas = sigmas.float().clone()
    if flow and sigmas[0] >= 1:
        sigmas[0] = top_level
    lambdas = lam_of(sigmas)

    def tau_at(sigma) -> float:
        return 1.0 if tau_levels and tau_levels[0] >= float(sigma) >= tau_levels[1] else 0.0

    total = len(sigmas) - 1
    max_order = max(predictor_order, corrector_order)
    x_pred, h, tau, noise, preds = x, 0.0, 0.0, 0.0, []
    to_end = float(sigmas[-1]) == 0          # orders drop near the end for stability
    for i in range(total):
        den = model_fn(x_pred, sigmas[i])
        preds = (preds + [den])[-max_order:]
        p_order = min(predictor_order, len(preds))
        c_order = 0 if i == 0 or (sigmas[i + 1] == 0 and not use_pece) else min(corrector_order, len(preds))
        if to_end:
            p_order, c_order = min(p_order, total - 1 - i), min(c_order, total - i)
        if c_order == 0:
            x = x_pred
        else:
            b = _b_coefficients(sigmas[i], lambdas[i - c_order + 1:i + 1], lambdas[i - 1], lambdas[i], tau,
                                simple_order_2, True)
            x = sigmas[i] / sigmas[i - 1] * (-(tau ** 2) * h).exp() * x + _weighted(b, preds[-c_order:])
            if tau > 0 and s_noise > 0:
                x = x + noise            # the noise of the predictor step before
            if use_pece:
                den = preds[-1] = model_fn(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x_pred = den
        else:
            tau = tau_at(sigmas[i + 1])
            b = _b_coefficients(sigmas[i + 1], lambdas[i - p_order + 1:i + 1], lambdas[i], lambdas[i + 1], tau,
                                simple_order_2, False)
            h = lambdas[i + 1] - lambdas[i]
            x_pred = sigmas[i + 1] / sigmas[i] * (-(tau ** 2) * h).exp() * x + _weighted(b, preds[-p_order:])
            if tau > 0 and s_noise > 0:
                noise = _noise_like(x, noise_sampler, i) * sigmas[i + 1] * \
                    (-2 * tau ** 2 * h).expm1().neg().sqrt() * s_noise
                x_pred = x_pred + noise
        if callback is not None:
            callback(i, total, x_pred)
    return x_pred


SA_SAMPLERS = {"sa_solver": sample_sa_solver, "sa_solver_pece": functools.partial(sample_sa_solver, use_pece=True)}
