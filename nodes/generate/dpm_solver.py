"""ComfyUI's dpm_fast and dpm_adaptive: k-diffusion's DPM-Solver (Lu et al. 2022) in noise prediction, t = -log sigma,
on every model (x read as x0 + sigma n, as ComfyUI's does on flow models too).

Both run from the schedule's first level to its last non-zero one (ComfyUI hands them sigma_min and sigma_max, not the
levels) and stop there, that level's noise left in, as ComfyUI's do. dpm_fast spends as many model calls as the schedule
has steps, in third-order steps evenly spaced in t (a second- and first-order one at the end); dpm_adaptive takes
DPM-Solver-23 steps whose size a PID controller sets from the error between the second- and third-order results."""
from __future__ import annotations

import math

import torch


class _Solver:
    """DPMSolver's steps over model_fn(x, sigma) -> x0, its noise prediction cached per stage within a step."""

    def __init__(self, model_fn):
        self.model_fn = model_fn

    def eps(self, cache, key, x, t):
        if key not in cache:
            sigma = t.neg().exp()
            cache[key] = (x - self.model_fn(x, sigma)) / sigma
        return cache[key]

    def step_1(self, x, t, t_next, cache):
        h = t_next - t
        return x - t_next.neg().exp() * h.expm1() * self.eps(cache, "eps", x, t)

    def step_2(self, x, t, t_next, cache, r1=1 / 2):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - s1.neg().exp() * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        sig = t_next.neg().exp()
        return x - sig * h.expm1() * eps - sig / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step_3(self, x, t, t_next, cache, r1=1 / 3, r2=2 / 3):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - s1.neg().exp() * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = x - s2.neg().exp() * (r2 * h).expm1() * eps - \
            s2.neg().exp() * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps)
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        sig = t_next.neg().exp()
        return x - sig * h.expm1() * eps - sig / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)


def _ends(sigmas):
    """(t of the first level, t of the last non-zero one), float32 as ComfyUI's."""
    sigmas = sigmas.float()
    low = sigmas[-1] if sigmas[-1] > 0 else sigmas[-2]
    return sigmas[0].log().neg(), low.log().neg()


@torch.no_grad()
def sample_dpm_fast(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None):
    """DPM-Solver-fast: len(sigmas) - 1 model calls in steps of order 3 (the last two of order 2 and 1 when the calls
    divide by 3, else one of the remainder), evenly spaced in t."""
    if len(sigmas) <= 1:
        return x
    nfe = len(sigmas) - 1
    t_start, t_end = _ends(sigmas)
    m = math.floor(nfe / 3) + 1
    ts = torch.linspace(float(t_start), float(t_end), m + 1)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    solver = _Solver(model_fn)
    steps = (solver.step_1, solver.step_2, solver.step_3)
    for i, order in enumerate(orders):
        x = steps[order - 1](x, ts[i], ts[i + 1], {})
        if callback is not None:
            callback(i, len(orders), x)
    return x


class _PID:
    """k-diffusion's PIDStepSizeController: the next step size from the last errors, a step accepted when its
    factor reaches accept_safety."""

    def __init__(self, h, pcoeff, icoeff, dcoeff, order, accept_safety, eps=1e-8):
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety, self.eps, self.errs = accept_safety, eps, []

    def propose(self, error) -> bool:
        inv = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv, inv, inv]
        self.errs[0] = inv
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2], self.errs[1] = self.errs[1], self.errs[0]
        self.h *= factor
        return accept


@torch.no_grad()
def sample_dpm_adaptive(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, order=3, rtol=0.05,
                        atol=0.0078, h_init=0.05, pcoeff=0.0, icoeff=1.0, dcoeff=0.0, accept_safety=0.81):
    """DPM-Solver-23 (order 3; 12 with order 2) with adaptive steps, ComfyUI's defaults: each try a step of both orders,
    its error their difference against atol and rtol of the larger result; the step taken when the controller accepts,
    retried smaller when not. The number of model calls follows the model, not the schedule's steps."""
    if len(sigmas) <= 1:
        return x
    from graph_engine import NodeError
    t_start, t_end = _ends(sigmas)
    solver = _Solver(model_fn)
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    pid = _PID(abs(h_init), pcoeff, icoeff, dcoeff, order, accept_safety)
    s, x_prev = t_start, x
    while s < t_end - 1e-5:
        cache = {}
        t = torch.minimum(t_end, s + pid.h)
        if order == 2:
            x_low, x_high = solver.step_1(x, s, t, cache), solver.step_2(x, s, t, cache)
        else:
            x_low, x_high = solver.step_2(x, s, t, cache, r1=1 / 3), solver.step_3(x, s, t, cache)
        delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        if not torch.isfinite(error):
            # every step would be refused and shrunk for ever (ComfyUI's loops on): the model broke down
            raise NodeError("dpm_adaptive: the model's prediction is not finite (NaN or inf), so no step size can be "
                            "chosen; run at a higher precision (dtype fp32) or choose another sampler")
        if pid.propose(error):
            x_prev, x, s = x_low, x_high, t
            if callback is not None:
                # progress as the share of the way in t, over the schedule's steps
                total = len(sigmas) - 1
                done = float((s - t_start) / (t_end - t_start))
                callback(min(total - 1, int(done * total)), total, x)
    return x


DPM_SOLVER_SAMPLERS = {"dpm_fast": sample_dpm_fast, "dpm_adaptive": sample_dpm_adaptive}
