"""ComfyUI's dpmpp_2s_ancestral (and its rectified-flow variant), dpmpp_2s_ancestral_cfg_pp, dpmpp_2m_cfg_pp and
res_multistep_ancestral_cfg_pp, written out below from comfy/k_diffusion/sampling.py (ComfyUI, GPL-3.0), against
Kinograph's (nodes/generate/dpm_samplers.py, sigma_samplers.py) on test_comfy_samplers' small denoiser: the same seed
and levels give the same latent, on an eps and a flow model. A CFG++ reference reads the negative prediction as
ComfyUI's post-CFG hook hands it: the last model call's."""
import pytest
import torch

from nodes.generate.samplers import SAMPLERS, STOCHASTIC, CFG_PP, comfy_noise_sampler
from tests.test_comfy_samplers import (SEED, SHAPE, denoiser, get_ancestral_step, ref_default_noise_sampler,
                                       ref_res_multistep_full, schedule, start, to_d)


# -- ComfyUI, written out ----------------------------------------------------------------------------------------
def ref_dpmpp_2s_ancestral(model, x, sigmas, seed, eta=1., s_noise=1.):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    sigma_fn = lambda t: t.neg().exp()  # noqa: E731
    t_fn = lambda sigma: sigma.log().neg()  # noqa: E731
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if sigma_down == 0:
            d = to_d(x, sigmas[i], denoised)
            dt = sigma_down - sigmas[i]
            x = x + d * dt
        else:
            t, t_next = t_fn(sigmas[i]), t_fn(sigma_down)
            r = 1 / 2
            h = t_next - t
            s = t + r * h
            x_2 = (sigma_fn(s) / sigma_fn(t)) * x - (-h * r).expm1() * denoised
            denoised_2 = model(x_2, sigma_fn(s))
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def ref_dpmpp_2s_ancestral_RF(model, x, sigmas, seed, eta=1., s_noise=1.):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    sigma_fn = lambda lbda: (lbda.exp() + 1) ** -1  # noqa: E731
    lambda_fn = lambda sigma: ((1 - sigma) / sigma).log()  # noqa: E731
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        downstep_ratio = 1 + (sigmas[i + 1] / sigmas[i] - 1) * eta
        sigma_down = sigmas[i + 1] * downstep_ratio
        alpha_ip1 = 1 - sigmas[i + 1]
        alpha_down = 1 - sigma_down
        renoise_coeff = (sigmas[i + 1] ** 2 - sigma_down ** 2 * alpha_ip1 ** 2 / alpha_down ** 2) ** 0.5
        if sigmas[i + 1] == 0:
            d = to_d(x, sigmas[i], denoised)
            dt = sigma_down - sigmas[i]
            x = x + d * dt
        else:
            if sigmas[i] == 1.0:
                sigma_s = 0.9999
            else:
                t_i, t_down = lambda_fn(sigmas[i]), lambda_fn(sigma_down)
                r = 1 / 2
                h = t_down - t_i
                s = t_i + r * h
                sigma_s = sigma_fn(s)
            sigma_s_i_ratio = sigma_s / sigmas[i]
            u = sigma_s_i_ratio * x + (1 - sigma_s_i_ratio) * denoised
            D_i = model(u, sigma_s)
            sigma_down_i_ratio = sigma_down / sigmas[i]
            x = sigma_down_i_ratio * x + (1 - sigma_down_i_ratio) * D_i
        if sigmas[i + 1] > 0 and eta > 0:
            x = (alpha_ip1 / alpha_down) * x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * renoise_coeff
    return x


def ref_dpmpp_2s_ancestral_cfg_pp(model, x, sigmas, seed, eta=1., s_noise=1.):
    """model(x, sigma) -> (denoised, uncond_denoised)."""
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    sigma_fn = lambda t: t.neg().exp()  # noqa: E731
    t_fn = lambda sigma: sigma.log().neg()  # noqa: E731
    for i in range(len(sigmas) - 1):
        denoised, uncond_denoised = model(x, sigmas[i])
        guidance_vector = denoised - uncond_denoised
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if sigma_down == 0:
            d = to_d(x, sigmas[i], uncond_denoised)
            dt = sigma_down - sigmas[i]
            x = x + d * dt
        else:
            t, t_next = t_fn(sigmas[i]), t_fn(sigma_down)
            r = 1 / 2
            h = t_next - t
            s = t + r * h
            x_2 = (sigma_fn(s) / sigma_fn(t)) * x - (-h * r).expm1() * uncond_denoised
            _, uncond_denoised = model(x_2, sigma_fn(s))
            uncond_denoised_2 = uncond_denoised
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * uncond_denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
        x += guidance_vector
    return x


def ref_dpmpp_2s_ancestral_RF_cfg_pp(model, x, sigmas, seed, eta=1., s_noise=1.):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    sigma_fn = lambda lbda: (lbda.exp() + 1) ** -1  # noqa: E731
    lambda_fn = lambda sigma: ((1 - sigma) / sigma).log()  # noqa: E731
    for i in range(len(sigmas) - 1):
        denoised, uncond_denoised = model(x, sigmas[i])
        guidance_vector = denoised - uncond_denoised
        downstep_ratio = 1 + (sigmas[i + 1] / sigmas[i] - 1) * eta
        sigma_down = sigmas[i + 1] * downstep_ratio
        alpha_ip1 = 1 - sigmas[i + 1]
        alpha_down = 1 - sigma_down
        renoise_coeff = (sigmas[i + 1] ** 2 - sigma_down ** 2 * alpha_ip1 ** 2 / alpha_down ** 2) ** 0.5
        if sigmas[i + 1] == 0:
            d = to_d(x, sigmas[i], uncond_denoised)
            dt = sigma_down - sigmas[i]
            x = x + d * dt
        else:
            if sigmas[i] == 1.0:
                sigma_s = 0.9999
            else:
                t_i, t_down = lambda_fn(sigmas[i]), lambda_fn(sigma_down)
                r = 1 / 2
                h = t_down - t_i
                s = t_i + r * h
                sigma_s = sigma_fn(s)
            sigma_s_i_ratio = sigma_s / sigmas[i]
            u = sigma_s_i_ratio * x + (1 - sigma_s_i_ratio) * uncond_denoised
            _, uncond_denoised = model(u, sigma_s)
            uncond_D_i = uncond_denoised
            sigma_down_i_ratio = sigma_down / sigmas[i]
            x = sigma_down_i_ratio * x + (1 - sigma_down_i_ratio) * uncond_D_i
        if sigmas[i + 1] > 0 and eta > 0:
            x = (alpha_ip1 / alpha_down) * x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * renoise_coeff
        x += (1 - sigmas[i + 1]) * guidance_vector
    return x


def ref_dpmpp_2m_cfg_pp(model, x, sigmas):
    t_fn = lambda sigma: sigma.log().neg()  # noqa: E731
    old_uncond_denoised = None
    for i in range(len(sigmas) - 1):
        denoised, uncond_denoised = model(x, sigmas[i])
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        if old_uncond_denoised is None or sigmas[i + 1] == 0:
            denoised_mix = -torch.exp(-h) * uncond_denoised
        else:
            h_last = t - t_fn(sigmas[i - 1])
            r = h_last / h
            denoised_mix = -torch.exp(-h) * uncond_denoised - torch.expm1(-h) * (1 / (2 * r)) * (
                denoised - old_uncond_denoised)
        x = denoised + denoised_mix + torch.exp(-h) * x
        old_uncond_denoised = uncond_denoised
    return x


# -- the runs ------------------------------------------------------------------------------------------------------
def _guided(flow):
    cond_fn = denoiser(flow)

    def uncond_fn(x, s):
        return 0.8 * cond_fn(x, s) - 0.1

    def guided(x, s):
        u = uncond_fn(x, s)
        return u + 4.0 * (cond_fn(x, s) - u)
    return guided, uncond_fn


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("eta,s_noise", [(1.0, 1.0), (0.5, 1.2), (0.0, 1.0)])
def test_dpmpp_2s_ancestral_is_comfyuis(flow, eta, s_noise):
    sig = schedule(flow, 8)
    ref_fn = ref_dpmpp_2s_ancestral_RF if flow else ref_dpmpp_2s_ancestral
    ref = ref_fn(denoiser(flow), start(flow, float(sig[0])), sig, SEED, eta=eta, s_noise=s_noise)
    ours = SAMPLERS["dpmpp_2s_ancestral"](denoiser(flow), start(flow, float(sig[0])), sig, flow=flow, eta=eta,
                                          s_noise=s_noise, noise_sampler=comfy_noise_sampler(SHAPE, SEED, "cpu"))
    assert torch.isfinite(ours).all()
    assert float((ours - ref).abs().max()) < 5e-5


@pytest.mark.parametrize("flow", [False, True])
def test_dpmpp_2s_ancestral_cfg_pp_is_comfyuis(flow):
    guided, uncond_fn = _guided(flow)
    sig = schedule(flow, 8)
    ref_fn = ref_dpmpp_2s_ancestral_RF_cfg_pp if flow else ref_dpmpp_2s_ancestral_cfg_pp
    ref = ref_fn(lambda x, s: (guided(x, s), uncond_fn(x, s)), start(flow, float(sig[0])), sig, SEED)
    ours = SAMPLERS["dpmpp_2s_ancestral_cfg_pp"](guided, start(flow, float(sig[0])), sig, flow=flow,
                                                 uncond_fn=uncond_fn,
                                                 noise_sampler=comfy_noise_sampler(SHAPE, SEED, "cpu"))
    assert float((ours - ref).abs().max()) < 5e-5


@pytest.mark.parametrize("flow", [False, True])
def test_dpmpp_2m_cfg_pp_is_comfyuis(flow):
    """ComfyUI's steps in -log sigma on a flow model too (x read as x0 + sigma n), whatever `flow` says."""
    guided, uncond_fn = _guided(flow)
    sig = schedule(flow, 8)
    ref = ref_dpmpp_2m_cfg_pp(lambda x, s: (guided(x, s), uncond_fn(x, s)), start(flow, float(sig[0])), sig)
    ours = SAMPLERS["dpmpp_2m_cfg_pp"](guided, start(flow, float(sig[0])), sig, flow=flow, uncond_fn=uncond_fn)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=5e-5)      # a flow run ends far from its data here


@pytest.mark.parametrize("flow", [False, True])
def test_res_multistep_ancestral_cfg_pp_is_comfyuis(flow):
    guided, uncond_fn = _guided(flow)
    sig = schedule(flow, 8)
    ref = ref_res_multistep_full(lambda x, s: (guided(x, s), uncond_fn(x, s)), start(flow, float(sig[0])), sig, SEED,
                                 s_noise=1.1, eta=0.7, cfg_pp=True)
    ours = SAMPLERS["res_multistep_ancestral_cfg_pp"](guided, start(flow, float(sig[0])), sig, flow=flow, eta=0.7,
                                                      s_noise=1.1, uncond_fn=uncond_fn,
                                                      noise_sampler=comfy_noise_sampler(SHAPE, SEED, "cpu"))
    assert float((ours - ref).abs().max()) < 5e-5


def test_the_new_samplers_are_registered_for_noise_cfg_pp_and_import():
    from app.comfyui.mapping import SAMPLERS_EXACT
    from nodes.generate.nodes import SAMPLERS as CHOICES
    new = {"dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_2m_cfg_pp", "res_multistep_ancestral_cfg_pp"}
    assert new <= set(SAMPLERS) and new <= set(CHOICES) and all(SAMPLERS_EXACT[n] == n for n in new)
    assert new - {"dpmpp_2m_cfg_pp"} <= STOCHASTIC and "dpmpp_2m_cfg_pp" not in STOCHASTIC
    assert new - {"dpmpp_2s_ancestral"} <= CFG_PP
    with pytest.raises(ValueError, match="uncond_fn"):
        SAMPLERS["dpmpp_2m_cfg_pp"](denoiser(False), start(False, 1.0), schedule(False, 2))
