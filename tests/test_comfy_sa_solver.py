"""ComfyUI's sa_solver and sa_solver_pece, written out below from comfy/k_diffusion/sampling.py and sa_solver.py
(ComfyUI, GPL-3.0), against Kinograph's (nodes/generate/sa_solver.py) on test_comfy_samplers' small denoiser: the same
seed and levels give the same latent, on an eps and a flow model, with the noise on between the levels 20% and 80% of
the way (ComfyUI's default tau_func)."""
import math

import pytest
import torch

from nodes.generate.samplers import SAMPLERS, SNR_FRAME, STOCHASTIC, comfy_noise_sampler
from tests.test_comfy_samplers import (SEED, SHAPE, RefCONST, RefEPS, denoiser, offset_first_sigma_for_snr,
                                       ref_default_noise_sampler, schedule, sigma_to_half_log_snr, start)


# -- ComfyUI, written out ----------------------------------------------------------------------------------------
def compute_exponential_coeffs(s, t, solver_order, tau_t):
    tau_mul = 1 + tau_t ** 2
    h = t - s
    p = torch.arange(solver_order, dtype=s.dtype, device=s.device)
    product_terms_factored = (t ** p - s ** p * (-tau_mul * h).exp())
    recursive_depth_mat = p.unsqueeze(1) - p.unsqueeze(0)
    log_factorial = (p + 1).lgamma()
    recursive_coeff_mat = log_factorial.unsqueeze(1) - log_factorial.unsqueeze(0)
    if tau_t > 0:
        recursive_coeff_mat = recursive_coeff_mat - (recursive_depth_mat * math.log(tau_mul))
    signs = torch.where(recursive_depth_mat % 2 == 0, 1.0, -1.0)
    recursive_coeff_mat = (recursive_coeff_mat.exp() * signs).tril()
    return recursive_coeff_mat @ product_terms_factored


def compute_simple_stochastic_adams_b_coeffs(sigma_next, curr_lambdas, lambda_s, lambda_t, tau_t,
                                             is_corrector_step=False):
    tau_mul = 1 + tau_t ** 2
    h = lambda_t - lambda_s
    alpha_t = sigma_next * lambda_t.exp()
    if is_corrector_step:
        b_1 = alpha_t * (0.5 * tau_mul * h)
        b_2 = alpha_t * (-h * tau_mul).expm1().neg() - b_1
    else:
        b_2 = alpha_t * (0.5 * tau_mul * h ** 2) / (curr_lambdas[-2] - lambda_s)
        b_1 = alpha_t * (-h * tau_mul).expm1().neg() - b_2
    return torch.stack([b_2, b_1])


def compute_stochastic_adams_b_coeffs(sigma_next, curr_lambdas, lambda_s, lambda_t, tau_t, simple_order_2=False,
                                      is_corrector_step=False):
    num_timesteps = curr_lambdas.shape[0]
    if simple_order_2 and num_timesteps == 2:
        return compute_simple_stochastic_adams_b_coeffs(sigma_next, curr_lambdas, lambda_s, lambda_t, tau_t,
                                                        is_corrector_step)
    exp_integral_coeffs = compute_exponential_coeffs(lambda_s, lambda_t, num_timesteps, tau_t)
    vandermonde_matrix_T = torch.vander(curr_lambdas, num_timesteps, increasing=True).T
    lagrange_integrals = torch.linalg.solve(vandermonde_matrix_T, exp_integral_coeffs)
    alpha_t = sigma_next * lambda_t.exp()
    return alpha_t * lagrange_integrals


def get_tau_interval_func(start_sigma, end_sigma, eta=1.0):
    def tau_func(sigma):
        if eta <= 0:
            return 0.0
        if isinstance(sigma, torch.Tensor):
            sigma = sigma.item()
        return eta if start_sigma >= sigma >= end_sigma else 0.0
    return tau_func


def percent_to_sigma(model_sampling, percent):
    """ModelSamplingDiscreteFlow's (RefCONST has it) or ModelSamplingDiscrete's."""
    if isinstance(model_sampling, RefCONST):
        return model_sampling.percent_to_sigma(percent)
    if percent <= 0.0:
        return 999999999.9
    if percent >= 1.0:
        return 0.0
    percent = 1.0 - percent
    return model_sampling.sigma(torch.tensor(percent * 999.0)).item()


def ref_sa_solver(model, x, sigmas, seed, model_sampling, s_noise=1.0, predictor_order=3, corrector_order=4,
                  use_pece=False, simple_order_2=False):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    sigmas = offset_first_sigma_for_snr(sigmas, model_sampling)
    lambdas = sigma_to_half_log_snr(sigmas, model_sampling=model_sampling)
    start_sigma = percent_to_sigma(model_sampling, 0.2)
    end_sigma = percent_to_sigma(model_sampling, 0.8)
    tau_func = get_tau_interval_func(start_sigma, end_sigma, eta=1.0)
    max_used_order = max(predictor_order, corrector_order)
    x_pred = x
    h = 0.0
    tau_t = 0.0
    noise = 0.0
    pred_list = []
    lower_order_to_end = sigmas[-1].item() == 0
    for i in range(len(sigmas) - 1):
        denoised = model(x_pred, sigmas[i])
        pred_list.append(denoised)
        pred_list = pred_list[-max_used_order:]
        predictor_order_used = min(predictor_order, len(pred_list))
        if i == 0 or (sigmas[i + 1] == 0 and not use_pece):
            corrector_order_used = 0
        else:
            corrector_order_used = min(corrector_order, len(pred_list))
        if lower_order_to_end:
            predictor_order_used = min(predictor_order_used, len(sigmas) - 2 - i)
            corrector_order_used = min(corrector_order_used, len(sigmas) - 1 - i)
        if corrector_order_used == 0:
            x = x_pred
        else:
            curr_lambdas = lambdas[i - corrector_order_used + 1:i + 1]
            b_coeffs = compute_stochastic_adams_b_coeffs(sigmas[i], curr_lambdas, lambdas[i - 1], lambdas[i], tau_t,
                                                         simple_order_2, is_corrector_step=True)
            pred_mat = torch.stack(pred_list[-corrector_order_used:], dim=1)
            corr_res = torch.tensordot(pred_mat, b_coeffs, dims=([1], [0]))
            x = sigmas[i] / sigmas[i - 1] * (-(tau_t ** 2) * h).exp() * x + corr_res
            if tau_t > 0 and s_noise > 0:
                x = x + noise
            if use_pece:
                denoised = model(x, sigmas[i])
                pred_list[-1] = denoised
        if sigmas[i + 1] == 0:
            x_pred = denoised
        else:
            tau_t = tau_func(sigmas[i + 1])
            curr_lambdas = lambdas[i - predictor_order_used + 1:i + 1]
            b_coeffs = compute_stochastic_adams_b_coeffs(sigmas[i + 1], curr_lambdas, lambdas[i], lambdas[i + 1],
                                                         tau_t, simple_order_2, is_corrector_step=False)
            pred_mat = torch.stack(pred_list[-predictor_order_used:], dim=1)
            pred_res = torch.tensordot(pred_mat, b_coeffs, dims=([1], [0]))
            h = lambdas[i + 1] - lambdas[i]
            x_pred = sigmas[i + 1] / sigmas[i] * (-(tau_t ** 2) * h).exp() * x + pred_res
            if tau_t > 0 and s_noise > 0:
                noise = noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (
                    -2 * tau_t ** 2 * h).expm1().neg().sqrt() * s_noise
                x_pred = x_pred + noise
    return x_pred


# -- the runs ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("name,opts", [("sa_solver", {}), ("sa_solver_pece", {}),
                                       ("sa_solver", {"simple_order_2": True, "predictor_order": 2,
                                                      "corrector_order": 2})])
@pytest.mark.parametrize("s_noise", [1.0, 0.0])
def test_sa_solver_is_comfyuis(flow, name, opts, s_noise):
    ms = RefCONST() if flow else RefEPS()
    sig = schedule(flow, 10).float()
    ref = ref_sa_solver(denoiser(flow), start(flow, float(sig[0])), sig, SEED, ms, s_noise=s_noise,
                        use_pece=name.endswith("pece"), **opts)
    levels = (percent_to_sigma(ms, 0.2), percent_to_sigma(ms, 0.8))
    assert any(levels[0] >= float(s) >= levels[1] for s in sig)         # the noise is on for part of the run
    ours = SAMPLERS[name](denoiser(flow), start(flow, float(sig[0])), sig.double(), flow=flow, s_noise=s_noise,
                          noise_sampler=comfy_noise_sampler(SHAPE, SEED, "cpu"), tau_levels=levels,
                          top_level=ms.percent_to_sigma(1e-4) if flow else 1.0, **opts)
    assert torch.isfinite(ours).all()
    assert float((ours - ref).abs().max()) < 5e-5


def test_sa_solver_is_registered_stochastic_in_the_snr_frame():
    from app.comfyui.mapping import SAMPLERS_EXACT
    names = {"sa_solver", "sa_solver_pece"}
    assert names <= STOCHASTIC and names <= SNR_FRAME and all(SAMPLERS_EXACT[n] == n for n in names)
