"""ComfyUI's DPM-Solver++ samplers beyond 2M and the SDE ones: dpmpp_2s_ancestral (and its CFG++ twin) and
dpmpp_2m_cfg_pp, stepping as ComfyUI's comfy/k_diffusion/sampling.py does.

dpmpp_2s_ancestral steps in -log sigma (x read as x0 + sigma n) and on a flow model takes ComfyUI's rectified-flow
variant (`flow`): down to sigma' (1 + (sigma' / sigma - 1) eta), the midpoint in log((1 - sigma) / sigma), rescaled by
alpha' / alpha_down and noised to sigma'. The CFG++ ones step along the negative prompt's prediction (uncond_fn) and add
the guidance (guided - negative) back after each step, as CFG++ does."""
from __future__ import annotations

import functools

import torch


def _ancestral(s, s2, eta):
    """k-diffusion's get_ancestral_step: (sigma_down, sigma_up)."""
    if not eta:
        return s2, s2 * 0
    up = torch.minimum(s2, eta * (s2 ** 2 * (s ** 2 - s2 ** 2) / s ** 2).sqrt())
    return (s2 ** 2 - up ** 2).sqrt(), up


def _rf_down(s, s2, eta):
    """The rectified-flow variant's (sigma_down, alpha' / alpha_down, renoise)."""
    down = s2 * (1 + (s2 / s - 1) * eta)
    a2, ad = 1 - s2, 1 - down
    return down, a2 / ad, (s2 ** 2 - down ** 2 * a2 ** 2 / ad ** 2).sqrt()


def _rf_mid(s, down):
    """The midpoint between s and down in log((1 - sigma) / sigma); 0.9999 from pure noise, where that is -inf."""
    if s == 1.0:
        return s.new_tensor(0.9999)
    lam = lambda v: ((1 - v) / v).log()  # noqa: E731
    return 1 / ((lam(s) + (lam(down) - lam(s)) / 2).exp() + 1)


@torch.no_grad()
def sample_dpmpp_2s_ancestral(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, eta=1.0,
                              s_noise=1.0, cfg_pp=False, uncond_fn=None):
    """DPM-Solver++(2S) ancestral: a second-order single-step solver down to the ancestral level (its midpoint a second
    model call), then seeded noise back up to the next level; Euler into zero noise. With cfg_pp both calls' negative
    predictions steer and the first call's guidance is added back (alpha' times it on a flow model)."""
    from nodes.generate.samplers import _noise_like
    if cfg_pp and uncond_fn is None:
        raise ValueError("a CFG++ sampler needs uncond_fn(x, sigma), the negative prompt's prediction")
    sigmas = sigmas.double()
    total = len(sigmas) - 1
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        den = model_fn(x, s.float())
        steer = den
        if cfg_pp:
            steer = uncond_fn(x, s.float())
            guidance = den - steer
        if flow:
            down, rescale, up = _rf_down(s, s2, eta)
        else:
            (down, up), rescale = _ancestral(s, s2, eta), None
        if (s2 == 0) if flow else (down == 0):
            x = x + (x - steer) / s.to(x.dtype) * (down - s).to(x.dtype)
        else:
            mid = _rf_mid(s, down) if flow else (s.log() + (down.log() - s.log()) / 2).exp()
            x2 = (mid / s).to(x.dtype) * x + (1 - mid / s).to(x.dtype) * steer
            # CFG++: ComfyUI's second call keeps only its negative prediction
            steer2 = uncond_fn(x2, mid.float()) if cfg_pp else model_fn(x2, mid.float())
            x = (down / s).to(x.dtype) * x + (1 - down / s).to(x.dtype) * steer2
        if s2 > 0 and (eta > 0 or not flow):
            noise = _noise_like(x, noise_sampler, i) * s_noise
            x = rescale.to(x.dtype) * x + up.to(x.dtype) * noise if flow else x + up.to(x.dtype) * noise
        if cfg_pp:
            x = x + ((1 - s2) if flow else torch.ones_like(s2)).to(x.dtype) * guidance
        if callback is not None:
            callback(i, total, x)
    return x


@torch.no_grad()
def sample_dpmpp_2m_cfg_pp(model_fn, x, sigmas, callback=None, *, flow=False, noise_sampler=None, uncond_fn=None):
    """DPM-Solver++(2M) with CFG++: 2M's step in -log sigma, leaving the guided prediction along the negative prompt's,
    its second-order correction the guided prediction less the step before's negative one."""
    if uncond_fn is None:
        raise ValueError("a CFG++ sampler needs uncond_fn(x, sigma), the negative prompt's prediction")
    sigmas = sigmas.double()
    total = len(sigmas) - 1
    old_uncond = None
    for i in range(total):
        s, s2 = sigmas[i], sigmas[i + 1]
        den = model_fn(x, s.float())
        uncond = uncond_fn(x, s.float())
        h = s.log() - s2.log()          # t_next - t, t = -log sigma
        decay = (-h).exp()
        mix = -decay.to(x.dtype) * uncond
        if old_uncond is not None and s2 != 0:
            r = (sigmas[i - 1].log() - s.log()) / h
            mix = mix - (torch.expm1(-h) / (2 * r)).to(x.dtype) * (den - old_uncond)
        x = den + mix + decay.to(x.dtype) * x
        old_uncond = uncond
        if callback is not None:
            callback(i, total, x)
    return x


DPM_SAMPLERS = {"dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral, "dpmpp_2m_cfg_pp": sample_dpmpp_2m_cfg_pp,
                "dpmpp_2s_ancestral_cfg_pp": functools.partial(sample_dpmpp_2s_ancestral, cfg_pp=True)}
