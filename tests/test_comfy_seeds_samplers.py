"""ComfyUI's seeds_2, seeds_3, exp_heun_2_x0 (+ _sde), dpm_fast and dpm_adaptive, written out below from
comfy/k_diffusion/sampling.py and comfy/samplers.py's ksampler (ComfyUI, GPL-3.0), against Kinograph's
(nodes/generate/seeds_samplers.py, dpm_solver.py) on test_comfy_samplers' small denoiser: the same seed and levels give
the same latent, on an eps and a flow model."""
import math

import pytest
import torch

from nodes.generate.samplers import SAMPLERS, STOCHASTIC, comfy_noise_sampler
from tests.test_comfy_samplers import (SEED, SHAPE, RefCONST, RefEPS, denoiser, offset_first_sigma_for_snr,
                                       ref_default_noise_sampler, schedule,
                                       sigma_to_half_log_snr, start)


# -- ComfyUI, written out ----------------------------------------------------------------------------------------
def half_log_snr_to_sigma(half_log_snr, model_sampling):
    if isinstance(model_sampling, RefCONST):
        return half_log_snr.neg().sigmoid()
    return half_log_snr.neg().exp()


def ei_h_phi_1(h):
    return torch.expm1(h)


def ei_h_phi_2(h):
    return (torch.expm1(h) - h) / h


def ref_seeds_2(model, x, sigmas, seed, model_sampling, eta=1., s_noise=1., r=0.5, solver_type="phi_1"):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    inject_noise = eta > 0 and s_noise > 0
    sigma_fn = lambda v: half_log_snr_to_sigma(v, model_sampling)  # noqa: E731
    lambda_fn = lambda v: sigma_to_half_log_snr(v, model_sampling)  # noqa: E731
    sigmas = offset_first_sigma_for_snr(sigmas, model_sampling)
    fac = 1 / (2 * r)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lambda_s, lambda_t = lambda_fn(sigmas[i]), lambda_fn(sigmas[i + 1])
        h = lambda_t - lambda_s
        h_eta = h * (eta + 1)
        lambda_s_1 = torch.lerp(lambda_s, lambda_t, r)
        sigma_s_1 = sigma_fn(lambda_s_1)
        alpha_s_1 = sigma_s_1 * lambda_s_1.exp()
        alpha_t = sigmas[i + 1] * lambda_t.exp()
        x_2 = sigma_s_1 / sigmas[i] * (-r * h * eta).exp() * x - alpha_s_1 * ei_h_phi_1(-r * h_eta) * denoised
        if inject_noise:
            sde_noise = (-2 * r * h * eta).expm1().neg().sqrt() * noise_sampler(sigmas[i], sigma_s_1)
            x_2 = x_2 + sde_noise * sigma_s_1 * s_noise
        denoised_2 = model(x_2, sigma_s_1)
        if solver_type == "phi_1":
            denoised_d = torch.lerp(denoised, denoised_2, fac)
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - alpha_t * ei_h_phi_1(-h_eta) * denoised_d
        elif solver_type == "phi_2":
            b2 = ei_h_phi_2(-h_eta) / r
            b1 = ei_h_phi_1(-h_eta) - b2
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - alpha_t * (b1 * denoised + b2 * denoised_2)
        if inject_noise:
            segment_factor = (r - 1) * h * eta
            sde_noise = sde_noise * segment_factor.exp()
            sde_noise = sde_noise + segment_factor.mul(2).expm1().neg().sqrt() * noise_sampler(sigma_s_1,
                                                                                                sigmas[i + 1])
            x = x + sde_noise * sigmas[i + 1] * s_noise
    return x


def ref_seeds_3(model, x, sigmas, seed, model_sampling, eta=1., s_noise=1., r_1=1. / 3, r_2=2. / 3):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    inject_noise = eta > 0 and s_noise > 0
    sigma_fn = lambda v: half_log_snr_to_sigma(v, model_sampling)  # noqa: E731
    lambda_fn = lambda v: sigma_to_half_log_snr(v, model_sampling)  # noqa: E731
    sigmas = offset_first_sigma_for_snr(sigmas, model_sampling)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lambda_s, lambda_t = lambda_fn(sigmas[i]), lambda_fn(sigmas[i + 1])
        h = lambda_t - lambda_s
        h_eta = h * (eta + 1)
        lambda_s_1 = torch.lerp(lambda_s, lambda_t, r_1)
        lambda_s_2 = torch.lerp(lambda_s, lambda_t, r_2)
        sigma_s_1, sigma_s_2 = sigma_fn(lambda_s_1), sigma_fn(lambda_s_2)
        alpha_s_1 = sigma_s_1 * lambda_s_1.exp()
        alpha_s_2 = sigma_s_2 * lambda_s_2.exp()
        alpha_t = sigmas[i + 1] * lambda_t.exp()
        x_2 = sigma_s_1 / sigmas[i] * (-r_1 * h * eta).exp() * x - alpha_s_1 * ei_h_phi_1(-r_1 * h_eta) * denoised
        if inject_noise:
            sde_noise = (-2 * r_1 * h * eta).expm1().neg().sqrt() * noise_sampler(sigmas[i], sigma_s_1)
            x_2 = x_2 + sde_noise * sigma_s_1 * s_noise
        denoised_2 = model(x_2, sigma_s_1)
        a3_2 = r_2 / r_1 * ei_h_phi_2(-r_2 * h_eta)
        a3_1 = ei_h_phi_1(-r_2 * h_eta) - a3_2
        x_3 = sigma_s_2 / sigmas[i] * (-r_2 * h * eta).exp() * x - alpha_s_2 * (a3_1 * denoised + a3_2 * denoised_2)
        if inject_noise:
            segment_factor = (r_1 - r_2) * h * eta
            sde_noise = sde_noise * segment_factor.exp()
            sde_noise = sde_noise + segment_factor.mul(2).expm1().neg().sqrt() * noise_sampler(sigma_s_1, sigma_s_2)
            x_3 = x_3 + sde_noise * sigma_s_2 * s_noise
        denoised_3 = model(x_3, sigma_s_2)
        b3 = ei_h_phi_2(-h_eta) / r_2
        b1 = ei_h_phi_1(-h_eta) - b3
        x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - alpha_t * (b1 * denoised + b3 * denoised_3)
        if inject_noise:
            segment_factor = (r_2 - 1) * h * eta
            sde_noise = sde_noise * segment_factor.exp()
            sde_noise = sde_noise + segment_factor.mul(2).expm1().neg().sqrt() * noise_sampler(sigma_s_2,
                                                                                                sigmas[i + 1])
            x = x + sde_noise * sigmas[i + 1] * s_noise
    return x


class PIDStepSizeController:
    def __init__(self, h, pcoeff, icoeff, dcoeff, order=1, accept_safety=0.81, eps=1e-8):
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.eps = eps
        self.errs = []

    def limiter(self, x):
        return 1 + math.atan(x - 1)

    def propose_step(self, error):
        inv_error = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv_error, inv_error, inv_error]
        self.errs[0] = inv_error
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = self.limiter(factor)
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2] = self.errs[1]
            self.errs[1] = self.errs[0]
        self.h *= factor
        return accept


class DPMSolver:
    def __init__(self, model):
        self.model = model

    def t(self, sigma):
        return -sigma.log()

    def sigma(self, t):
        return t.neg().exp()

    def eps(self, eps_cache, key, x, t):
        if key in eps_cache:
            return eps_cache[key], eps_cache
        sigma = self.sigma(t)
        eps = (x - self.model(x, sigma)) / self.sigma(t)
        return eps, {key: eps, **eps_cache}

    def dpm_solver_1_step(self, x, t, t_next, eps_cache=None):
        eps_cache = {} if eps_cache is None else eps_cache
        h = t_next - t
        eps, eps_cache = self.eps(eps_cache, 'eps', x, t)
        x_1 = x - self.sigma(t_next) * h.expm1() * eps
        return x_1, eps_cache

    def dpm_solver_2_step(self, x, t, t_next, r1=1 / 2, eps_cache=None):
        eps_cache = {} if eps_cache is None else eps_cache
        h = t_next - t
        eps, eps_cache = self.eps(eps_cache, 'eps', x, t)
        s1 = t + r1 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1, eps_cache = self.eps(eps_cache, 'eps_r1', u1, s1)
        x_2 = x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)
        return x_2, eps_cache

    def dpm_solver_3_step(self, x, t, t_next, r1=1 / 3, r2=2 / 3, eps_cache=None):
        eps_cache = {} if eps_cache is None else eps_cache
        h = t_next - t
        eps, eps_cache = self.eps(eps_cache, 'eps', x, t)
        s1 = t + r1 * h
        s2 = t + r2 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1, eps_cache = self.eps(eps_cache, 'eps_r1', u1, s1)
        u2 = x - self.sigma(s2) * (r2 * h).expm1() * eps - self.sigma(s2) * (r2 / r1) * (
            (r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps)
        eps_r2, eps_cache = self.eps(eps_cache, 'eps_r2', u2, s2)
        x_3 = x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)
        return x_3, eps_cache

    def dpm_solver_fast(self, x, t_start, t_end, nfe):
        m = math.floor(nfe / 3) + 1
        ts = torch.linspace(t_start, t_end, m + 1, device=x.device)
        if nfe % 3 == 0:
            orders = [3] * (m - 2) + [2, 1]
        else:
            orders = [3] * (m - 1) + [nfe % 3]
        for i in range(len(orders)):
            eps_cache = {}
            t, t_next = ts[i], ts[i + 1]
            t_next_ = t_next
            if orders[i] == 1:
                x, eps_cache = self.dpm_solver_1_step(x, t, t_next_, eps_cache=eps_cache)
            elif orders[i] == 2:
                x, eps_cache = self.dpm_solver_2_step(x, t, t_next_, eps_cache=eps_cache)
            else:
                x, eps_cache = self.dpm_solver_3_step(x, t, t_next_, eps_cache=eps_cache)
        return x

    def dpm_solver_adaptive(self, x, t_start, t_end, order=3, rtol=0.05, atol=0.0078, h_init=0.05, pcoeff=0.,
                            icoeff=1., dcoeff=0., accept_safety=0.81):
        forward = t_end > t_start
        h_init = abs(h_init) * (1 if forward else -1)
        atol = torch.tensor(atol)
        rtol = torch.tensor(rtol)
        s = t_start
        x_prev = x
        pid = PIDStepSizeController(h_init, pcoeff, icoeff, dcoeff, order, accept_safety)
        info = {'steps': 0, 'nfe': 0, 'n_accept': 0, 'n_reject': 0}
        while s < t_end - 1e-5 if forward else s > t_end + 1e-5:
            eps_cache = {}
            t = torch.minimum(t_end, s + pid.h) if forward else torch.maximum(t_end, s + pid.h)
            t_ = t
            if order == 2:
                x_low, eps_cache = self.dpm_solver_1_step(x, s, t_, eps_cache=eps_cache)
                x_high, eps_cache = self.dpm_solver_2_step(x, s, t_, eps_cache=eps_cache)
            else:
                x_low, eps_cache = self.dpm_solver_2_step(x, s, t_, r1=1 / 3, eps_cache=eps_cache)
                x_high, eps_cache = self.dpm_solver_3_step(x, s, t_, eps_cache=eps_cache)
            delta = torch.maximum(atol, rtol * torch.maximum(x_low.abs(), x_prev.abs()))
            error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
            accept = pid.propose_step(error)
            if accept:
                x_prev = x_low
                x = x_high
                s = t
                info['n_accept'] += 1
            else:
                info['n_reject'] += 1
            info['nfe'] += order
            info['steps'] += 1
        return x, info


def ref_dpm_fast(model, noise, sigmas):
    """ksampler's dpm_fast_function, then sample_dpm_fast (eta 0: its noise is drawn and multiplied by 0)."""
    sigma_min = sigmas[-1]
    if sigma_min == 0:
        sigma_min = sigmas[-2]
    total_steps = len(sigmas) - 1
    solver = DPMSolver(model)
    return solver.dpm_solver_fast(noise, solver.t(torch.tensor(sigmas[0])), solver.t(torch.tensor(sigma_min)),
                                  total_steps)


def ref_dpm_adaptive(model, noise, sigmas):
    sigma_min = sigmas[-1]
    if sigma_min == 0:
        sigma_min = sigmas[-2]
    solver = DPMSolver(model)
    return solver.dpm_solver_adaptive(noise, solver.t(torch.tensor(sigmas[0])), solver.t(torch.tensor(sigma_min)))


# -- the runs ------------------------------------------------------------------------------------------------------
def _ours(name, flow, sig, ms, **kw):
    return SAMPLERS[name](denoiser(flow), start(flow, float(sig[0])), sig.double(), flow=flow,
                          noise_sampler=comfy_noise_sampler(SHAPE, SEED, "cpu"),
                          top_level=ms.percent_to_sigma(1e-4) if flow else 1.0, **kw)


SEEDS = [("seeds_2", ref_seeds_2, {}, {}), ("seeds_2", ref_seeds_2, {"r": 0.4, "solver": "phi_2"},
                                            {"r": 0.4, "solver_type": "phi_2"}),
         ("seeds_3", ref_seeds_3, {}, {}),
         ("exp_heun_2_x0_sde", ref_seeds_2, {}, {"r": 1.0, "solver_type": "phi_2"})]


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("name,ref_fn,ours_kw,ref_kw", SEEDS, ids=["seeds_2", "seeds_2_phi_2", "seeds_3",
                                                                  "exp_heun_2_x0_sde"])
@pytest.mark.parametrize("eta,s_noise", [(1.0, 1.0), (0.6, 1.2)])
def test_seeds_samplers_are_comfyuis(flow, name, ref_fn, ours_kw, ref_kw, eta, s_noise):
    ms = RefCONST() if flow else RefEPS()
    sig = schedule(flow, 7).float()
    ref = ref_fn(denoiser(flow), start(flow, float(sig[0])), sig, SEED, ms, eta=eta, s_noise=s_noise, **ref_kw)
    ours = _ours(name, flow, sig, ms, eta=eta, s_noise=s_noise, **ours_kw)
    assert torch.isfinite(ours).all()
    assert float((ours - ref).abs().max()) < 5e-5


@pytest.mark.parametrize("flow", [False, True])
def test_exp_heun_2_x0_is_comfyuis_and_draws_no_noise(flow):
    ms = RefCONST() if flow else RefEPS()
    sig = schedule(flow, 7).float()
    ref = ref_seeds_2(denoiser(flow), start(flow, float(sig[0])), sig, SEED, ms, eta=0.0, s_noise=0.0, r=1.0,
                      solver_type="phi_2")
    ours = SAMPLERS["exp_heun_2_x0"](denoiser(flow), start(flow, float(sig[0])), sig.double(), flow=flow,
                                     top_level=ms.percent_to_sigma(1e-4) if flow else 1.0)
    assert float((ours - ref).abs().max()) < 5e-5
    assert "exp_heun_2_x0" not in STOCHASTIC and {"seeds_2", "seeds_3", "exp_heun_2_x0_sde"} <= STOCHASTIC


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("steps", [7, 9, 2])          # 7 and 2 calls: a last step of the remainder; 9: 3, 3, 2, 1
def test_dpm_fast_is_comfyuis(flow, steps):
    sig = schedule(flow, steps).float()
    ref = ref_dpm_fast(denoiser(flow), start(flow, float(sig[0])), sig)
    ours = SAMPLERS["dpm_fast"](denoiser(flow), start(flow, float(sig[0])), sig)
    assert float((ours - ref).abs().max()) < 5e-5


@pytest.mark.parametrize("flow", [False, True])
def test_dpm_adaptive_is_comfyuis(flow):
    sig = schedule(flow, 8).float()
    calls = []

    def counted(x, s):
        calls.append(float(s))
        return denoiser(flow)(x, s)
    ref, info = ref_dpm_adaptive(denoiser(flow), start(flow, float(sig[0])), sig)
    ours = SAMPLERS["dpm_adaptive"](counted, start(flow, float(sig[0])), sig)
    assert info["n_accept"] > 2 and len(calls) == info["nfe"]       # the same accepted and refused steps
    assert float((ours - ref).abs().max()) < 5e-5


def test_dpm_adaptive_on_a_broken_model_says_so():
    from graph_engine import NodeError
    sig = schedule(False, 4)
    with pytest.raises(NodeError, match="not finite"):
        SAMPLERS["dpm_adaptive"](lambda x, s: x * float("nan"), start(False, float(sig[0])), sig)


def test_the_new_samplers_map_exactly():
    from app.comfyui.mapping import SAMPLERS_EXACT
    from nodes.generate.nodes import SAMPLERS as CHOICES
    new = {"seeds_2", "seeds_3", "exp_heun_2_x0", "exp_heun_2_x0_sde", "dpm_fast", "dpm_adaptive"}
    assert new <= set(CHOICES) and all(SAMPLERS_EXACT[n] == n for n in new)
