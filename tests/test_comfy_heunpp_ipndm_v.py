"""ComfyUI's heunpp2, ipndm_v and gradient_estimation_cfg_pp, written out below from comfy/k_diffusion/sampling.py
(ComfyUI, GPL-3.0), against Kinograph's (nodes/generate/sigma_samplers.py, samplers.py) on test_comfy_samplers' small
denoiser: the same levels give the same latent, on an eps and a flow model."""
import pytest
import torch

from nodes.generate.samplers import CFG_PP, SAMPLERS, STOCHASTIC
from tests.test_comfy_samplers import denoiser, schedule, start, to_d


# -- ComfyUI, written out ----------------------------------------------------------------------------------------
def ref_heunpp2(model, x, sigmas):
    s_end = sigmas[-1]
    for i in range(len(sigmas) - 1):
        sigma_hat = sigmas[i]
        denoised = model(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == s_end:
            x = x + d * dt
        elif sigmas[i + 2] == s_end:
            x_2 = x + d * dt
            denoised_2 = model(x_2, sigmas[i + 1])
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            w = 2 * sigmas[0]
            w2 = sigmas[i + 1] / w
            w1 = 1 - w2
            d_prime = d * w1 + d_2 * w2
            x = x + d_prime * dt
        else:
            x_2 = x + d * dt
            denoised_2 = model(x_2, sigmas[i + 1])
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            dt_2 = sigmas[i + 2] - sigmas[i + 1]
            x_3 = x_2 + d_2 * dt_2
            denoised_3 = model(x_3, sigmas[i + 2])
            d_3 = to_d(x_3, sigmas[i + 2], denoised_3)
            w = 3 * sigmas[0]
            w2 = sigmas[i + 1] / w
            w3 = sigmas[i + 2] / w
            w1 = 1 - w2 - w3
            d_prime = w1 * d + w2 * d_2 + w3 * d_3
            x = x + d_prime * dt
    return x


def ref_ipndm_v(model, x, sigmas, max_order=4):
    x_next = x
    t_steps = sigmas
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
            h_n = (t_next - t_cur)
            h_n_1 = (t_cur - t_steps[i - 1])
            coeff1 = (2 + (h_n / h_n_1)) / 2
            coeff2 = -(h_n / h_n_1) / 2
            x_next = x_cur + (t_next - t_cur) * (coeff1 * d_cur + coeff2 * buffer_model[-1])
        elif order == 3:
            h_n = (t_next - t_cur)
            h_n_1 = (t_cur - t_steps[i - 1])
            h_n_2 = (t_steps[i - 1] - t_steps[i - 2])
            temp = (1 - h_n / (3 * (h_n + h_n_1)) * (h_n * (h_n + h_n_1)) / (h_n_1 * (h_n_1 + h_n_2))) / 2
            coeff1 = (2 + (h_n / h_n_1)) / 2 + temp
            coeff2 = -(h_n / h_n_1) / 2 - (1 + h_n_1 / h_n_2) * temp
            coeff3 = temp * h_n_1 / h_n_2
            x_next = x_cur + (t_next - t_cur) * (coeff1 * d_cur + coeff2 * buffer_model[-1] + coeff3 * buffer_model[-2])
        elif order == 4:
            h_n = (t_next - t_cur)
            h_n_1 = (t_cur - t_steps[i - 1])
            h_n_2 = (t_steps[i - 1] - t_steps[i - 2])
            h_n_3 = (t_steps[i - 2] - t_steps[i - 3])
            temp1 = (1 - h_n / (3 * (h_n + h_n_1)) * (h_n * (h_n + h_n_1)) / (h_n_1 * (h_n_1 + h_n_2))) / 2
            temp2 = ((1 - h_n / (3 * (h_n + h_n_1))) / 2 + (1 - h_n / (2 * (h_n + h_n_1))) * h_n / (
                6 * (h_n + h_n_1 + h_n_2))) * (h_n * (h_n + h_n_1) * (h_n + h_n_1 + h_n_2)) / (
                h_n_1 * (h_n_1 + h_n_2) * (h_n_1 + h_n_2 + h_n_3))
            coeff1 = (2 + (h_n / h_n_1)) / 2 + temp1 + temp2
            coeff2 = -(h_n / h_n_1) / 2 - (1 + h_n_1 / h_n_2) * temp1 - (1 + (h_n_1 / h_n_2) + (
                h_n_1 * (h_n_1 + h_n_2) / (h_n_2 * (h_n_2 + h_n_3)))) * temp2
            coeff3 = temp1 * h_n_1 / h_n_2 + ((h_n_1 / h_n_2) + (h_n_1 * (h_n_1 + h_n_2) / (
                h_n_2 * (h_n_2 + h_n_3))) * (1 + h_n_2 / h_n_3)) * temp2
            coeff4 = -temp2 * (h_n_1 * (h_n_1 + h_n_2) / (h_n_2 * (h_n_2 + h_n_3))) * h_n_1 / h_n_2
            x_next = x_cur + (t_next - t_cur) * (coeff1 * d_cur + coeff2 * buffer_model[-1] + coeff3 * buffer_model[-2]
                                                 + coeff4 * buffer_model[-3])
        if len(buffer_model) == max_order - 1:
            for k in range(max_order - 2):
                buffer_model[k] = buffer_model[k + 1]
            buffer_model[-1] = d_cur
        else:
            buffer_model.append(d_cur)
    return x_next


def ref_gradient_estimation_cfg_pp(model, x, sigmas, ge_gamma=2.):
    """model(x, sigma) -> (denoised, uncond_denoised)."""
    old_d = None
    for i in range(len(sigmas) - 1):
        denoised, uncond_denoised = model(x, sigmas[i])
        d = to_d(x, sigmas[i], uncond_denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            x = denoised + d * sigmas[i + 1]
            if i >= 1:
                d_bar = (ge_gamma - 1) * (d - old_d)
                x = x + d_bar * dt
        old_d = d
    return x


# -- the runs ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("name,ref_fn,steps", [("heunpp2", ref_heunpp2, 9), ("heunpp2", ref_heunpp2, 2),
                                               ("ipndm_v", ref_ipndm_v, 9)])
def test_heunpp2_and_ipndm_v_are_comfyuis(flow, name, ref_fn, steps):
    sig = schedule(flow, steps)
    ref = ref_fn(denoiser(flow), start(flow, float(sig[0])), sig)
    ours = SAMPLERS[name](denoiser(flow), start(flow, float(sig[0])), sig, flow=flow)
    assert float((ours - ref).abs().max()) < 5e-5


@pytest.mark.parametrize("flow", [False, True])
def test_gradient_estimation_cfg_pp_is_comfyuis(flow):
    cond_fn = denoiser(flow)

    def uncond_fn(x, s):
        return 0.8 * cond_fn(x, s) - 0.1

    def guided(x, s):
        return uncond_fn(x, s) + 4.0 * (cond_fn(x, s) - uncond_fn(x, s))
    sig = schedule(flow, 8)
    ref = ref_gradient_estimation_cfg_pp(lambda x, s: (guided(x, s), uncond_fn(x, s)), start(flow, float(sig[0])), sig)
    ours = SAMPLERS["gradient_estimation_cfg_pp"](guided, start(flow, float(sig[0])), sig, flow=flow,
                                                  uncond_fn=uncond_fn)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=5e-5)


def test_registered_deterministic_and_mapped():
    from app.comfyui.mapping import SAMPLERS_EXACT
    new = {"heunpp2", "ipndm_v", "gradient_estimation_cfg_pp"}
    assert not new & STOCHASTIC and "gradient_estimation_cfg_pp" in CFG_PP
    assert all(SAMPLERS_EXACT[n] == n for n in new)
