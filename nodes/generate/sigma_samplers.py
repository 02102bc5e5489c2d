"""ComfyUI's k-diffusion samplers that step in sigma on every model: heun, heunpp2, lms, ipndm, ipndm_v, deis, ddpm,
dpm_2_ancestral and res_multistep's ancestral and CFG++ variants.

Each reads the model's x0 prediction as a direction d = (x - x0) / sigma and steps along it in sigma, as ComfyUI's do
on eps, v and flow models alike (on a flow model d is its velocity); dpm_2_ancestral alone has a flow variant of its
own, chosen by `flow`, and adds fresh noise drawn as ComfyUI's default noise sampler draws it (noise_sampler(step)).
"""
from __future__ import annotations

import functools

import torch


def _d(x, den, s):
    return (x - den) / s.to(x.dtype)


@torch.no_grad()
def sample_heun(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None):
    """Heun (Karras et al. 2022, Algorithm 2 without churn): an Euler step, corrected with the direction at its end
    (two model calls a step); Euler into zero noise."""
    sigmas = sigmas.double()
    total = len(sigmas) - 1
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        d = _d(x, model_fn(x, s.float()), s)
        dt = (s2 - s).to(x.dtype)
        if s2 == 0:
            x = x + d * dt
        else:
            x2 = x + d * dt
            d2 = _d(x2, model_fn(x2, s2.float()), s2)
            x = x + (d + d2) / 2 * dt
        if callback is not None:
            callback(i, total, x)
    return x


def _lms_coefficient(order: int, t, i: int, j: int) -> float:
    """The integral over [t_i, t_i+1] of the Lagrange basis polynomial of the j-th last level."""
    from scipy import integrate

    def fn(tau):
        prod = 1.0
        for k in range(order):
            if j != k:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod
    return integrate.quad(fn, t[i], t[i + 1], epsrel=1e-4)[0]


@torch.no_grad()
def sample_lms(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, order=4):
    """Linear multistep (up to 4th order): the directions of the last steps, each weighted by its Lagrange
    polynomial's integral over the step (scipy's quad, as ComfyUI takes it); the x0 prediction into zero noise."""
    levels = sigmas.double().cpu().numpy()
    total = len(sigmas) - 1
    ds = []
    for i in range(total):
        s = sigmas[i].double()
        den = model_fn(x, s.float())
        ds = (ds + [_d(x, den, s)])[-order:]
        if levels[i + 1] == 0:
            x = den
        else:
            n = min(i + 1, order)
            coeffs = [_lms_coefficient(n, levels, i, j) for j in range(n)]
            x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
        if callback is not None:
            callback(i, total, x)
    return x


# ipndm's Adams-Bashforth weights by order (newest direction first), over 24ths
_IPNDM = {1: (24,), 2: (36, -12), 3: (46, -32, 10), 4: (55, -59, 37, -9)}


def _ipndm_v_weights(h, order: int):
    """iPNDM-v's weights of the newest direction first, from the last steps' sizes h = [h_n, h_n-1, ...] (zju-pi's
    variable-step Adams-Bashforth, as ComfyUI's ipndm_v writes them)."""
    if order == 1:
        return (torch.ones_like(h[0]),)
    h0, h1 = h[0], h[1]
    c1, c2 = (2 + h0 / h1) / 2, -(h0 / h1) / 2
    if order == 2:
        return c1, c2
    h2 = h[2]
    t1 = (1 - h0 / (3 * (h0 + h1)) * (h0 * (h0 + h1)) / (h1 * (h1 + h2))) / 2
    if order == 3:
        return c1 + t1, c2 - (1 + h1 / h2) * t1, t1 * h1 / h2
    h3 = h[3]
    t2 = ((1 - h0 / (3 * (h0 + h1))) / 2 + (1 - h0 / (2 * (h0 + h1))) * h0 / (6 * (h0 + h1 + h2))) \
        * (h0 * (h0 + h1) * (h0 + h1 + h2)) / (h1 * (h1 + h2) * (h1 + h2 + h3))
    q = h1 * (h1 + h2) / (h2 * (h2 + h3))
    return (c1 + t1 + t2, c2 - (1 + h1 / h2) * t1 - (1 + h1 / h2 + q) * t2,
            t1 * h1 / h2 + (h1 / h2 + q * (1 + h2 / h3)) * t2, -t2 * q * h1 / h2)


@torch.no_grad()
def sample_ipndm(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, max_order=4, variable=False):
    """iPNDM (Zhang & Chen 2023, ComfyUI's ipndm): Adams-Bashforth steps in sigma up to 4th order on the directions
    of the last steps, as if evenly spaced; with `variable` (ipndm_v) weighted for the steps' own uneven sizes. The
    x0 prediction into zero noise."""
    sigmas = sigmas.double()
    total = len(sigmas) - 1
    past = []          # the directions of the steps before, newest last
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        den = model_fn(x, s.float())
        d = _d(x, den, s)
        if s2 == 0:
            x = den
        else:
            order = min(max_order, i + 1)
            if variable:
                h = [s2 - s] + [sigmas[i - k] - sigmas[i - k - 1] for k in range(order - 1)]
                weights = [w.to(x.dtype) for w in _ipndm_v_weights(h, order)]
            else:
                weights = [w / 24 for w in _IPNDM[order]]
            step = sum(w * dd for w, dd in zip(weights, [d] + past[::-1]))
            x = x + (s2 - s).to(x.dtype) * step
        past = (past + [d])[-(max_order - 1):]
        if callback is not None:
            callback(i, total, x)
    return x


@torch.no_grad()
def sample_heunpp2(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None):
    """Heun++ (ComfyUI's heunpp2, after Carzit's sd-webui-samplers-scheduler): Euler steps looked ahead one and two
    levels, their directions weighted by those levels over 3 (2 on the next-to-last step) times the first level; Euler
    into the last level."""
    sigmas = sigmas.double()
    total, end = len(sigmas) - 1, sigmas[-1]
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        d = _d(x, model_fn(x, s.float()), s)
        dt = (s2 - s).to(x.dtype)
        if s2 == end:
            x = x + d * dt
        else:
            x2 = x + d * dt
            d2 = _d(x2, model_fn(x2, s2.float()), s2)
            if sigmas[i + 2] == end:
                w2 = s2 / (2 * sigmas[0])
                x = x + (d * (1 - w2).to(x.dtype) + d2 * w2.to(x.dtype)) * dt
            else:
                s3 = sigmas[i + 2]
                x3 = x2 + d2 * (s3 - s2).to(x.dtype)
                d3 = _d(x3, model_fn(x3, s3.float()), s3)
                w2, w3 = s2 / (3 * sigmas[0]), s3 / (3 * sigmas[0])
                x = x + ((1 - w2 - w3).to(x.dtype) * d + w2.to(x.dtype) * d2 + w3.to(x.dtype) * d3) * dt
        if callback is not None:
            callback(i, total, x)
    return x


def _deis_coefficients(sigmas: torch.Tensor, max_order: int, points: int = 10000):
    """DEIS's 'tab' coefficients (ComfyUI's deis.get_deis_coeff_list, after zju-pi's diff-sampler): the levels read as
    times of the VP process EDM's sigma range (0.002 to 80) spans, and for each step the integral of the
    exponential integrator's weight against each past level's Lagrange polynomial, summed on `points` points in
    float32 as there. None where a step takes Euler (its first, and the one into zero noise)."""
    eps_s, lo, hi = 1e-3, torch.tensor(0.002), torch.tensor(80.0)
    beta_d = 2 * ((lo ** 2 + 1).log() / eps_s - (hi ** 2 + 1).log()) / (eps_s - 1)
    beta_min = (hi ** 2 + 1).log() - 0.5 * beta_d
    t = ((beta_min ** 2 + 2 * beta_d * (sigmas.float().cpu() ** 2 + 1).log()).sqrt() - beta_min) / beta_d
    beta_0, beta_1 = beta_min, beta_d + beta_min
    out = []
    for i in range(len(t) - 1):
        order = min(i + 1, max_order)
        if order == 1 or float(sigmas[i + 1]) <= 0:
            out.append(None)
            continue
        taus = torch.linspace(float(t[i]), float(t[i + 1]), points)
        dtau = (t[i + 1] - t[i]) / points
        alpha = torch.exp(-0.5 * taus ** 2 * (beta_1 - beta_0) - taus * beta_0)
        # d log(alpha) / d tau, which ComfyUI takes by autograd
        integrand = -0.5 * -(taus * (beta_1 - beta_0) + beta_0) / torch.sqrt(alpha * (1 - alpha))
        prev = t[[i - k for k in range(order)]]
        coeffs = []
        for j in range(order):
            poly = 1
            for k in range(order):
                if k != j:
                    poly = poly * (taus - prev[k]) / (prev[j] - prev[k])
            coeffs.append(float(torch.sum(integrand * poly) * dtau))
        out.append(coeffs)
    return out


@torch.no_grad()
def sample_deis(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, max_order=3):
    """DEIS (Zhang & Chen 2023, ComfyUI's deis, its 'tab' mode): up to third-order multistep in sigma on the
    directions of the last steps, weighted by the exponential integrator's coefficients (_deis_coefficients);
    Euler on the first step and into zero noise."""
    sigmas = sigmas.double()
    coeffs = _deis_coefficients(sigmas, max_order)
    total = len(sigmas) - 1
    past = []          # the directions of the steps before, newest last
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        d = _d(x, model_fn(x, s.float()), s)
        if coeffs[i] is None:
            x = x + (s2 - s).to(x.dtype) * d
        else:
            x = x + sum(c * dd for c, dd in zip(coeffs[i], [d] + past[::-1]))
        past = (past + [d])[-(max_order - 1):]
        if callback is not None:
            callback(i, total, x)
    return x


@torch.no_grad()
def sample_ddpm(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, s_noise=1.0):
    """DDPM ancestral sampling (ComfyUI's ddpm): each step the posterior mean of the level below, read off the levels
    as a variance-preserving chain (alpha_cumprod = 1 / (1 + sigma^2)), plus its share of fresh noise (times s_noise,
    which ComfyUI's ddpm keeps at 1)."""
    from nodes.generate.samplers import _noise_like
    sigmas = sigmas.double()
    total = len(sigmas) - 1
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        den = model_fn(x, s.float())
        eps = _d(x, den, s)
        ac, ac2 = 1 / (s * s + 1), 1 / (s2 * s2 + 1)
        a = ac / ac2
        x = ((1 / a).sqrt().to(x.dtype) * (x / (1 + s * s).sqrt().to(x.dtype)
                                           - ((1 - a) / (1 - ac).sqrt()).to(x.dtype) * eps))
        if s2 > 0:
            share = ((1 - a) * (1 - ac2) / (1 - ac)).sqrt() * s_noise
            x = x + share.to(x.dtype) * _noise_like(x, noise_sampler, i)
            x = x * (1 + s2 * s2).sqrt().to(x.dtype)
        if callback is not None:
            callback(i, total, x)
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, eta=1.0,
                           s_noise=1.0):
    """DPM-Solver-2 ancestral (ComfyUI's dpm_2_ancestral): dpm_2's midpoint step down below the next level, then seeded
    noise back up to it: k-diffusion's sigma_down / sigma_up, or on a flow model ComfyUI's rectified-flow variant
    (down to sigma' (1 + (sigma' / sigma - 1) eta), rescaled by alpha' / alpha_down, noised to sigma')."""
    from nodes.generate.samplers import _noise_like
    sigmas = sigmas.double()
    total = len(sigmas) - 1
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        den = model_fn(x, s.float())
        if flow:
            down = s2 * (1 + (s2 / s - 1) * eta)
            up = (s2 ** 2 - down ** 2 * (1 - s2) ** 2 / (1 - down) ** 2).sqrt()
        elif eta:
            up = torch.minimum(s2, eta * (s2 ** 2 * (s ** 2 - s2 ** 2) / s ** 2).sqrt())
            down = (s2 ** 2 - up ** 2).sqrt()
        else:
            down, up = s2, s2 * 0
        d = _d(x, den, s)
        if down == 0:
            x = x + d * (down - s).to(x.dtype)
        else:
            mid = (s.log() + 0.5 * (down.log() - s.log())).exp()
            x2 = x + d * (mid - s).to(x.dtype)
            d2 = _d(x2, model_fn(x2, mid.float()), mid)
            x = x + d2 * (down - s).to(x.dtype)
            noise = _noise_like(x, noise_sampler, i) * s_noise
            x = ((1 - s2) / (1 - down)).to(x.dtype) * x + (up).to(x.dtype) * noise if flow \
                else x + up.to(x.dtype) * noise
        if callback is not None:
            callback(i, total, x)
    return x


@torch.no_grad()
def sample_res_multistep_sigma(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, eta=1.0,
                               s_noise=1.0, cfg_pp=False, uncond_fn=None):
    """ComfyUI's res_multistep_ancestral (eta) and res_multistep_cfg_pp (cfg_pp, eta 0): RES's second-order multistep
    in -log sigma on every model, stepping down to k-diffusion's ancestral level and noising back up to the next one;
    with cfg_pp each step leaves the guided prediction along the negative prompt's (uncond_fn), as CFG++ does."""
    from nodes.generate.samplers import _noise_like
    if cfg_pp and uncond_fn is None:
        raise ValueError("a CFG++ sampler needs uncond_fn(x, sigma), the negative prompt's prediction")
    sigmas = sigmas.double()
    total = len(sigmas) - 1
    old_den = old_down = None
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        den = model_fn(x, s.float())
        uncond = uncond_fn(x, s.float()) if cfg_pp else None
        if eta:
            up = torch.minimum(s2, eta * (s2 ** 2 * (s ** 2 - s2 ** 2) / s ** 2).sqrt())
            down = (s2 ** 2 - up ** 2).sqrt()
        else:
            down, up = s2, s2 * 0
        if down == 0 or old_den is None:
            if cfg_pp:
                x = den + _d(x, uncond, s) * down.to(x.dtype)
            else:
                x = x + _d(x, den, s) * (down - s).to(x.dtype)
        else:
            h = s.log() - down.log()
            c2 = (old_down.log() - sigmas[i - 1].log()) / h
            phi1 = torch.expm1(-h) / -h
            phi2 = (phi1 - 1) / -h
            b1, b2 = torch.nan_to_num(phi1 - phi2 / c2, nan=0.0), torch.nan_to_num(phi2 / c2, nan=0.0)
            if cfg_pp:
                x = x + (den - uncond)
            x = (-h).exp().to(x.dtype) * x + (h * b1).to(x.dtype) * (uncond if cfg_pp else den) + \
                (h * b2).to(x.dtype) * old_den
        if s2 > 0 and eta:
            x = x + (up * s_noise).to(x.dtype) * _noise_like(x, noise_sampler, i)
        old_den, old_down = (uncond if cfg_pp else den), down
        if callback is not None:
            callback(i, total, x)
    return x


SIGMA_SAMPLERS = {"heun": sample_heun, "lms": sample_lms, "ipndm": sample_ipndm, "ddpm": sample_ddpm,
                  "dpm_2_ancestral": sample_dpm_2_ancestral, "res_multistep_ancestral": sample_res_multistep_sigma,
                  "res_multistep_cfg_pp": functools.partial(sample_res_multistep_sigma, eta=0.0, cfg_pp=True),
                  "res_multistep_ancestral_cfg_pp": functools.partial(sample_res_multistep_sigma, cfg_pp=True),
                  "deis": sample_deis, "ipndm_v": functools.partial(sample_ipndm, variable=True), "heunpp2": sample_heunpp2}
