"""ComfyUI's heun, lms, ipndm, ddpm and dpm_2_ancestral, written out below from comfy/k_diffusion/sampling.py
(ComfyUI, GPL-3.0), against Kinograph's (nodes/generate/sigma_samplers.py) on the small denoiser of
test_comfy_samplers: the same seed and levels give the same latent, on an eps and a flow model."""
import pytest
import torch
from scipy import integrate

from nodes.generate.samplers import SAMPLERS, comfy_noise_sampler, ksampler_schedule
from tests.test_comfy_samplers import (SEED, SHAPE, denoiser, get_ancestral_step, kinograph,
                                       ref_default_noise_sampler, ref_res_multistep_full, schedule, start, to_d)


# -- ComfyUI, written out ----------------------------------------------------------------------------------------
def ref_heun(model, x, sigmas):
    for i in range(len(sigmas) - 1):
        sigma_hat = sigmas[i]
        denoised = model(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = model(x_2, sigmas[i + 1])
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            d_prime = (d + d_2) / 2
            x = x + d_prime * dt
    return x


def linear_multistep_coeff(order, t, i, j):
    def fn(tau):
        prod = 1.
        for k in range(order):
            if j == k:
                continue
            prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod
    return integrate.quad(fn, t[i], t[i + 1], epsrel=1e-4)[0]


def ref_lms(model, x, sigmas, order=4):
    sigmas_cpu = sigmas.detach().cpu().numpy()
    ds = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        d = to_d(x, sigmas[i], denoised)
        ds.append(d)
        if len(ds) > order:
            ds.pop(0)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            cur_order = min(i + 1, order)
            coeffs = [linear_multistep_coeff(cur_order, sigmas_cpu, i, j) for j in range(cur_order)]
            x = x + sum(coeff * d for coeff, d in zip(coeffs, reversed(ds)))
    return x


def ref_ipndm(model, x, sigmas, max_order=4):
    x_next = x
    buffer_model = []
    for i in range(len(sigmas) - 1):
        t_cur = sigmas[i]
        t_next = sigmas[i + 1]
        x_cur = x_next
        denoised = model(x_cur, t_cur)
        d_cur = (x_cur - denoised) / t_cur
        order = min(max_order, i + 1)
        if t_next == 0:
            x_next = denoised
        elif order == 1:
            x_next = x_cur + (t_next - t_cur) * d_cur
        elif order == 2:
            x_next = x_cur + (t_next - t_cur) * (3 * d_cur - buffer_model[-1]) / 2
        elif order == 3:
            x_next = x_cur + (t_next - t_cur) * (23 * d_cur - 16 * buffer_model[-1] + 5 * buffer_model[-2]) / 12
        elif order == 4:
            x_next = x_cur + (t_next - t_cur) * (55 * d_cur - 59 * buffer_model[-1] + 37 * buffer_model[-2]
                                                 - 9 * buffer_model[-3]) / 24
        if len(buffer_model) == max_order - 1:
            for k in range(max_order - 2):
                buffer_model[k] = buffer_model[k + 1]
            buffer_model[-1] = d_cur
        else:
            buffer_model.append(d_cur)
    return x_next


def DDPMSampler_step(x, sigma, sigma_prev, noise, noise_sampler):
    alpha_cumprod = 1 / ((sigma * sigma) + 1)
    alpha_cumprod_prev = 1 / ((sigma_prev * sigma_prev) + 1)
    alpha = (alpha_cumprod / alpha_cumprod_prev)
    mu = (1.0 / alpha).sqrt() * (x - (1 - alpha) * noise / (1 - alpha_cumprod).sqrt())
    if sigma_prev > 0:
        mu += ((1 - alpha) * (1. - alpha_cumprod_prev) / (1. - alpha_cumprod)).sqrt() * noise_sampler(sigma, sigma_prev)
    return mu


def ref_ddpm(model, x, sigmas, seed):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        x = DDPMSampler_step(x / torch.sqrt(1.0 + sigmas[i] ** 2.0), sigmas[i], sigmas[i + 1],
                             (x - denoised) / sigmas[i], noise_sampler)
        if sigmas[i + 1] != 0:
            x *= torch.sqrt(1.0 + sigmas[i + 1] ** 2.0)
    return x


def ref_dpm_2_ancestral(model, x, sigmas, seed, eta=1., s_noise=1.):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            dt = sigma_down - sigmas[i]
            x = x + d * dt
        else:
            sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
            dt_1 = sigma_mid - sigmas[i]
            dt_2 = sigma_down - sigmas[i]
            x_2 = x + d * dt_1
            denoised_2 = model(x_2, sigma_mid)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * dt_2
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def ref_dpm_2_ancestral_RF(model, x, sigmas, seed, eta=1., s_noise=1.):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        downstep_ratio = 1 + (sigmas[i + 1] / sigmas[i] - 1) * eta
        sigma_down = sigmas[i + 1] * downstep_ratio
        alpha_ip1 = 1 - sigmas[i + 1]
        alpha_down = 1 - sigma_down
        renoise_coeff = (sigmas[i + 1] ** 2 - sigma_down ** 2 * alpha_ip1 ** 2 / alpha_down ** 2) ** 0.5
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            dt = sigma_down - sigmas[i]
            x = x + d * dt
        else:
            sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
            dt_1 = sigma_mid - sigmas[i]
            dt_2 = sigma_down - sigmas[i]
            x_2 = x + d * dt_1
            denoised_2 = model(x_2, sigma_mid)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * dt_2
            x = (alpha_ip1 / alpha_down) * x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * renoise_coeff
    return x


# -- the runs ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("name,ref_fn", [("heun", ref_heun), ("lms", ref_lms), ("ipndm", ref_ipndm)])
def test_deterministic_sigma_samplers_are_comfyuis(flow, name, ref_fn):
    sig = schedule(flow, 9)
    ref = ref_fn(denoiser(flow), start(flow, float(sig[0])), sig)
    ours = kinograph(name, flow, sig)
    assert float((ours - ref).abs().max()) < 5e-5


@pytest.mark.parametrize("flow", [False, True])
def test_ddpm_is_comfyuis(flow):
    sig = schedule(flow, 8)
    ref = ref_ddpm(denoiser(flow), start(flow, float(sig[0])), sig, SEED)
    assert float((kinograph("ddpm", flow, sig) - ref).abs().max()) < 5e-5


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("eta,s_noise", [(1.0, 1.0), (0.5, 1.2)])
def test_dpm_2_ancestral_is_comfyuis_on_ksamplers_levels(flow, eta, s_noise):
    # KSampler drops the next-to-last of steps + 1 levels for dpm_2_ancestral, as for dpm_2
    sig = ksampler_schedule(lambda n: schedule(flow, n), 7, "dpm_2_ancestral")
    assert len(sig) == 8 and float(sig[-1]) == 0
    ref_fn = ref_dpm_2_ancestral_RF if flow else ref_dpm_2_ancestral
    ref = ref_fn(denoiser(flow), start(flow, float(sig[0])), sig, SEED, eta=eta, s_noise=s_noise)
    ours = kinograph("dpm_2_ancestral", flow, sig, eta=eta, s_noise=s_noise)
    assert float((ours - ref).abs().max()) < 5e-5


def test_the_sigma_samplers_draw_no_noise_but_ddpm_and_dpm_2_ancestral():
    from nodes.generate.samplers import STOCHASTIC
    assert {"ddpm", "dpm_2_ancestral"} <= STOCHASTIC and not {"heun", "lms", "ipndm"} & STOCHASTIC
    sig = schedule(False, 4)
    for name in ("heun", "lms", "ipndm"):
        SAMPLERS[name](denoiser(False), start(False, float(sig[0])), sig)      # no noise_sampler wanted


# -- CFG++ (comfy/k_diffusion/sampling.py sample_euler_ancestral_cfg_pp, uncond_denoised from its post-CFG hook) -----
def sigma_to_half_log_snr(sigma, flow):
    return sigma.logit().neg() if flow else sigma.log().neg()


def ref_euler_ancestral_cfg_pp(model, x, sigmas, seed, flow, eta=1., s_noise=1.):
    """model(x, sigma) -> (denoised, uncond_denoised), what the sampler's model call and its hook hand it."""
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    for i in range(len(sigmas) - 1):
        denoised, uncond_denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            alpha_s = sigmas[i] * sigma_to_half_log_snr(sigmas[i], flow).exp()
            alpha_t = sigmas[i + 1] * sigma_to_half_log_snr(sigmas[i + 1], flow).exp()
            d = to_d(x, sigmas[i], alpha_s * uncond_denoised)
            sigma_down, sigma_up = get_ancestral_step(sigmas[i] / alpha_s, sigmas[i + 1] / alpha_t, eta=eta)
            sigma_down = alpha_t * sigma_down
            x = alpha_t * denoised + sigma_down * d
            if eta > 0 and s_noise > 0:
                x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("name,eta", [("euler_ancestral_cfg_pp", 1.0), ("euler_cfg_pp", 0.0)])
def test_cfg_pp_is_comfyuis(flow, name, eta):
    cond_fn = denoiser(flow)

    def uncond_fn(x, s):
        return 0.8 * cond_fn(x, s) - 0.1

    def guided(x, s):
        u = uncond_fn(x, s)
        return u + 4.0 * (cond_fn(x, s) - u)
    sig = schedule(flow, 8)         # a flow run from 1: alpha 0 there, the first step's noise all fresh
    ref = ref_euler_ancestral_cfg_pp(lambda x, s: (guided(x, s), uncond_fn(x, s)), start(flow, float(sig[0])), sig,
                                     SEED, flow, eta=eta, s_noise=eta)
    ours = SAMPLERS[name](guided, start(flow, float(sig[0])), sig, flow=flow, uncond_fn=uncond_fn,
                          noise_sampler=comfy_noise_sampler(SHAPE, SEED, "cpu"))
    assert torch.isfinite(ours).all()
    assert float((ours - ref).abs().max()) < 5e-5


# -- res_multistep's ancestral and CFG++ variants (comfy/k_diffusion/sampling.py res_multistep) ---------------------
@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("name,eta,cfg_pp", [("res_multistep_ancestral", 1.0, False),
                                             ("res_multistep_ancestral", 0.6, False),
                                             ("res_multistep_cfg_pp", 0.0, True)])
def test_res_multistep_variants_are_comfyuis(flow, name, eta, cfg_pp):
    cond_fn = denoiser(flow)

    def uncond_fn(x, s):
        return 0.8 * cond_fn(x, s) - 0.1

    def guided(x, s):
        u = uncond_fn(x, s)
        return u + 4.0 * (cond_fn(x, s) - u)
    model = guided if cfg_pp else cond_fn
    sig = schedule(flow, 8)
    if flow:        # ComfyUI's res_multistep steps in -log sigma, whose pure noise (sigma 1) is a level like any
        assert float(sig[0]) == 1.0
    ref = ref_res_multistep_full(lambda x, s: (model(x, s), uncond_fn(x, s)), start(flow, float(sig[0])), sig, SEED,
                            s_noise=1.1, eta=eta, cfg_pp=cfg_pp)
    kw = {"uncond_fn": uncond_fn} if cfg_pp else {"eta": eta, "s_noise": 1.1}
    ours = SAMPLERS[name](model, start(flow, float(sig[0])), sig, flow=flow,
                          noise_sampler=comfy_noise_sampler(SHAPE, SEED, "cpu"), **kw)
    assert float((ours - ref).abs().max()) < 5e-5


# -- deis (comfy/k_diffusion/deis.py get_deis_coeff_list 'tab', sampling.py sample_deis) ----------------------------
def edm2t(edm_steps, epsilon_s=1e-3, sigma_min=0.002, sigma_max=80):
    import numpy as np

    def vp_sigma_inv(beta_d, beta_min):
        return lambda sigma: ((beta_min ** 2 + 2 * beta_d * (sigma ** 2 + 1).log()).sqrt() - beta_min) / beta_d
    vp_beta_d = 2 * (np.log(torch.tensor(sigma_min).cpu() ** 2 + 1) / epsilon_s
                     - np.log(torch.tensor(sigma_max).cpu() ** 2 + 1)) / (epsilon_s - 1)
    vp_beta_min = np.log(torch.tensor(sigma_max).cpu() ** 2 + 1) - 0.5 * vp_beta_d
    t_steps = vp_sigma_inv(vp_beta_d.clone().detach().cpu(), vp_beta_min.clone().detach().cpu())(
        edm_steps.clone().detach().cpu())
    return t_steps, vp_beta_min, vp_beta_d + vp_beta_min


def cal_poly(prev_t, j, taus):
    poly = 1
    for k in range(prev_t.shape[0]):
        if k == j:
            continue
        poly *= (taus - prev_t[k]) / (prev_t[j] - prev_t[k])
    return poly


def cal_intergrand(beta_0, beta_1, taus):
    with torch.inference_mode(mode=False):
        taus = taus.clone()
        beta_0 = beta_0.clone()
        beta_1 = beta_1.clone()
        with torch.enable_grad():
            taus.requires_grad_(True)
            alpha = torch.exp(-0.5 * taus ** 2 * (beta_1 - beta_0) - taus * beta_0)
            log_alpha = alpha.log()
            log_alpha.sum().backward()
            d_log_alpha_dtau = taus.grad
    return -0.5 * d_log_alpha_dtau / torch.sqrt(alpha * (1 - alpha))


def get_deis_coeff_list(t_steps, max_order, N=10000):
    t_steps, beta_0, beta_1 = edm2t(t_steps)
    C = []
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        order = min(i + 1, max_order)
        if order == 1:
            C.append([])
        else:
            taus = torch.linspace(t_cur, t_next, N)
            dtau = (t_next - t_cur) / N
            prev_t = t_steps[[i - k for k in range(order)]]
            coeff_temp = []
            integrand = cal_intergrand(beta_0, beta_1, taus)
            for j in range(order):
                poly = cal_poly(prev_t, j, taus)
                coeff_temp.append(torch.sum(integrand * poly) * dtau)
            C.append(coeff_temp)
    return C


def ref_deis(model, x, sigmas, max_order=3):
    x_next = x
    coeff_list = get_deis_coeff_list(sigmas, max_order)
    buffer_model = []
    for i in range(len(sigmas) - 1):
        t_cur = sigmas[i]
        t_next = sigmas[i + 1]
        x_cur = x_next
        denoised = model(x_cur, t_cur)
        d_cur = (x_cur - denoised) / t_cur
        order = min(max_order, i + 1)
        if t_next <= 0:
            order = 1
        if order == 1:
            x_next = x_cur + (t_next - t_cur) * d_cur
        elif order == 2:
            coeff_cur, coeff_prev1 = coeff_list[i]
            x_next = x_cur + coeff_cur * d_cur + coeff_prev1 * buffer_model[-1]
        elif order == 3:
            coeff_cur, coeff_prev1, coeff_prev2 = coeff_list[i]
            x_next = x_cur + coeff_cur * d_cur + coeff_prev1 * buffer_model[-1] + coeff_prev2 * buffer_model[-2]
        if len(buffer_model) == max_order - 1:
            for k in range(max_order - 2):
                buffer_model[k] = buffer_model[k + 1]
            buffer_model[-1] = d_cur
        else:
            buffer_model.append(d_cur)
    return x_next


@pytest.mark.parametrize("flow", [False, True])
def test_deis_is_comfyuis(flow):
    sig = schedule(flow, 9)
    ref = ref_deis(denoiser(flow), start(flow, float(sig[0])), sig)
    ours = kinograph("deis", flow, sig)
    assert float((ours - ref).abs().max()) < 5e-5
