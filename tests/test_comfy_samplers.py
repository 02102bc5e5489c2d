"""ComfyUI's samplers and schedulers, written out here from comfy/k_diffusion/sampling.py and comfy/samplers.py
(ComfyUI, GPL-3.0; the functions Kinograph's import maps exactly), run against Kinograph's on a small denoiser: the
same seed, sampler and scheduler give the same latent. The reference shares no code with nodes/generate/samplers.py."""
import math

import pytest
import torch

from nodes.generate.samplers import (SAMPLERS, SigmaTable, comfy_noise_sampler, normal_sigmas, sd_table)

SEED = 1234
SHAPE = (1, 4, 2, 6, 5)


# -- ComfyUI, written out ----------------------------------------------------------------------------------------
def ref_default_noise_sampler(x, seed=None):
    if seed is not None:
        if x.device == torch.device("cpu"):
            seed += 1
        generator = torch.Generator(device=x.device)
        generator.manual_seed(seed)
    else:
        generator = None
    return lambda sigma, sigma_next: torch.randn(x.size(), dtype=x.dtype, layout=x.layout, device=x.device,
                                                 generator=generator)


class RefSampling:
    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]


class RefEPS(RefSampling):
    """ModelSamplingDiscrete (its sigmas table, timestep/sigma) with EPS noise_scaling."""
    def __init__(self):
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.sigmas = sigmas.float()
        self.log_sigmas = sigmas.log().float()

    def timestep(self, sigma):
        log_sigma = sigma.log()
        dists = log_sigma.to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)

    def sigma(self, timestep):
        t = torch.clamp(timestep.float().to(self.log_sigmas.device), min=0, max=(len(self.sigmas) - 1))
        low_idx = t.floor().long()
        high_idx = t.ceil().long()
        w = t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]
        return log_sigma.exp().to(timestep.device)

    def noise_scaling(self, sigma, noise, latent_image):
        return latent_image + noise * sigma


def time_snr_shift(alpha, t):
    if alpha == 1.0:
        return t
    return alpha * t / (1 + (alpha - 1) * t)


class RefCONST(RefSampling):
    """ModelSamplingDiscreteFlow (shift, multiplier 1000) with CONST noise_scaling."""
    def __init__(self, shift=3.0, multiplier=1000):
        self.shift, self.multiplier = shift, multiplier
        self.sigmas = self.sigma(torch.arange(1, 1000 + 1, 1) / 1000 * multiplier)

    def timestep(self, sigma):
        return sigma * self.multiplier

    def sigma(self, timestep):
        return time_snr_shift(self.shift, timestep / self.multiplier)

    def percent_to_sigma(self, percent):
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return time_snr_shift(self.shift, 1.0 - percent)

    def noise_scaling(self, sigma, noise, latent_image):
        return sigma * noise + (1.0 - sigma) * latent_image


def ref_normal_scheduler(model_sampling, steps, sgm=False, floor=False):
    s = model_sampling
    start = s.timestep(s.sigma_max)
    end = s.timestep(s.sigma_min)
    append_zero = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(s.sigma(end)), 0, abs_tol=0.00001):
            steps += 1
            append_zero = False
        timesteps = torch.linspace(start, end, steps)
    sigs = []
    for x in range(len(timesteps)):
        ts = timesteps[x]
        sigs.append(float(s.sigma(ts)))
    if append_zero:
        sigs += [0.0]
    return torch.FloatTensor(sigs)


def to_d(x, sigma, denoised):
    return (x - denoised) / sigma


def get_ancestral_step(sigma_from, sigma_to, eta=1.):
    if not eta:
        return sigma_to, 0.
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
    return sigma_down, sigma_up


def ref_euler_ancestral(model, x, sigmas, seed, eta=1., s_noise=1.):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if sigma_down == 0:
            x = denoised
        else:
            d = to_d(x, sigmas[i], denoised)
            dt = sigma_down - sigmas[i]
            x = x + d * dt + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def ref_euler_ancestral_RF(model, x, sigmas, seed, eta=1.0, s_noise=1.):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            downstep_ratio = 1 + (sigmas[i + 1] / sigmas[i] - 1) * eta
            sigma_down = sigmas[i + 1] * downstep_ratio
            alpha_ip1 = 1 - sigmas[i + 1]
            alpha_down = 1 - sigma_down
            renoise_coeff = (sigmas[i + 1] ** 2 - sigma_down ** 2 * alpha_ip1 ** 2 / alpha_down ** 2) ** 0.5
            sigma_down_i_ratio = sigma_down / sigmas[i]
            x = sigma_down_i_ratio * x + (1 - sigma_down_i_ratio) * denoised
            if eta > 0:
                x = (alpha_ip1 / alpha_down) * x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * renoise_coeff
    return x


def ref_lcm(model, x, sigmas, seed, model_sampling, s_noise=1.0, s_noise_end=None, noise_clip_std=0.0):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)
    n_steps = max(1, len(sigmas) - 1)
    s_start = float(s_noise)
    s_end = s_start if s_noise_end is None else float(s_noise_end)
    for i in range(n_steps):
        denoised = model(x, sigmas[i])
        x = denoised
        if sigmas[i + 1] > 0:
            noise = noise_sampler(sigmas[i], sigmas[i + 1])
            if noise_clip_std > 0:
                clip_val = noise_clip_std * noise.std()
                noise = noise.clamp(min=-clip_val, max=clip_val)
            t = (i / (n_steps - 1)) if n_steps > 1 else 0.0
            s_noise_i = s_start + (s_end - s_start) * t
            if s_noise_i != 1.0:
                noise = noise * s_noise_i
            x = model_sampling.noise_scaling(sigmas[i + 1], noise, x)
    return x


def ref_gradient_estimation(model, x, sigmas, ge_gamma=2.):
    old_d = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        d = to_d(x, sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            x = x + d * dt
            if i >= 1:
                d_bar = (ge_gamma - 1) * (d - old_d)
                x = x + d_bar * dt
        old_d = d
    return x


def sigma_to_half_log_snr(sigma, model_sampling):
    if isinstance(model_sampling, RefCONST):
        return sigma.logit().neg()
    return sigma.log().neg()


def offset_first_sigma_for_snr(sigmas, model_sampling, percent_offset=1e-4):
    if len(sigmas) <= 1:
        return sigmas
    if isinstance(model_sampling, RefCONST):
        if sigmas[0] >= 1:
            sigmas = sigmas.clone()
            sigmas[0] = model_sampling.percent_to_sigma(percent_offset)
    return sigmas


def ref_er_sde(model, x, sigmas, seed, model_sampling, s_noise=1.0, max_stage=3):
    noise_sampler = ref_default_noise_sampler(x, seed=seed)

    def noise_scaler(x):
        return x * ((x ** 0.3).exp() + 10.0)
    num_integration_points = 200.0
    point_indice = torch.arange(0, num_integration_points, dtype=torch.float32, device=x.device)
    sigmas = offset_first_sigma_for_snr(sigmas, model_sampling)
    half_log_snrs = sigma_to_half_log_snr(sigmas, model_sampling)
    er_lambdas = half_log_snrs.neg().exp()
    old_denoised = None
    old_denoised_d = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        stage_used = min(max_stage, i + 1)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            er_lambda_s, er_lambda_t = er_lambdas[i], er_lambdas[i + 1]
            alpha_s = sigmas[i] / er_lambda_s
            alpha_t = sigmas[i + 1] / er_lambda_t
            r_alpha = alpha_t / alpha_s
            r = noise_scaler(er_lambda_t) / noise_scaler(er_lambda_s)
            x = r_alpha * r * x + alpha_t * (1 - r) * denoised
            if stage_used >= 2:
                dt = er_lambda_t - er_lambda_s
                lambda_step_size = -dt / num_integration_points
                lambda_pos = er_lambda_t + point_indice * lambda_step_size
                scaled_pos = noise_scaler(lambda_pos)
                s = torch.sum(1 / scaled_pos) * lambda_step_size
                denoised_d = (denoised - old_denoised) / (er_lambda_s - er_lambdas[i - 1])
                x = x + alpha_t * (dt + s * noise_scaler(er_lambda_t)) * denoised_d
                if stage_used >= 3:
                    s_u = torch.sum((lambda_pos - er_lambda_s) / scaled_pos) * lambda_step_size
                    denoised_u = (denoised_d - old_denoised_d) / ((er_lambda_s - er_lambdas[i - 2]) / 2)
                    x = x + alpha_t * ((dt ** 2) / 2 + s_u * noise_scaler(er_lambda_t)) * denoised_u
                old_denoised_d = denoised_d
            if s_noise > 0:
                x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * \
                    (er_lambda_t ** 2 - er_lambda_s ** 2 * r ** 2).sqrt().nan_to_num(nan=0.0)
        old_denoised = denoised
    return x


# -- the runs ------------------------------------------------------------------------------------------------------
MU, S0 = 0.3, 0.6


def denoiser(flow):
    """The exact denoiser of Gaussian data N(MU, S0^2), bent by a small nonlinearity so that errors cannot cancel."""
    def den(x, s):
        s = float(s)
        if flow:
            a = 1 - s
            out = MU + (x - a * MU) * a * S0 ** 2 / (a ** 2 * S0 ** 2 + s ** 2)
        else:
            out = MU + (x - MU) * S0 ** 2 / (S0 ** 2 + s ** 2)
        return out + 0.05 * torch.sin(3 * x)
    return den


def start(flow, sigma0):
    noise = torch.randn(SHAPE, generator=torch.Generator("cpu").manual_seed(SEED))
    return noise if flow else noise * math.sqrt(1 + sigma0 ** 2)


def schedule(flow, steps=8):
    return torch.tensor(ref_normal_scheduler(RefCONST() if flow else RefEPS(), steps).tolist())


def kinograph(name, flow, sigmas, **kw):
    x = start(flow, float(sigmas[0]))
    return SAMPLERS[name](denoiser(flow), x, sigmas, flow=flow,
                          noise_sampler=comfy_noise_sampler(SHAPE, SEED, "cpu"), **kw)


@pytest.mark.parametrize("flow", [False, True])
def test_normal_schedule_is_comfyuis(flow):
    ms = RefCONST() if flow else RefEPS()
    table = SigmaTable.flow(3.0) if flow else sd_table()
    for steps in (1, 4, 9, 30):
        ours, ref = normal_sigmas(table, steps), ref_normal_scheduler(ms, steps)
        assert ours.shape == ref.shape
        assert float((ours - ref.double()).abs().max() / ref.max()) < 1e-5, (steps, ours, ref)


def test_noise_sampler_is_comfyuis_and_not_the_starting_noise():
    x = torch.zeros(SHAPE)
    ref, ours = ref_default_noise_sampler(x, SEED), comfy_noise_sampler(SHAPE, SEED, "cpu")
    for i in range(3):
        assert torch.equal(ours(i), ref(None, None))
    # on the CPU ComfyUI seeds its step noise with seed + 1: the first draw is not the starting noise again
    assert not torch.allclose(comfy_noise_sampler(SHAPE, SEED, "cpu")(0), start(True, 1.0))


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("eta,s_noise", [(1.0, 1.0), (0.5, 1.3)])
def test_euler_ancestral_is_comfyuis(flow, eta, s_noise):
    sig = schedule(flow)
    ref_fn = ref_euler_ancestral_RF if flow else ref_euler_ancestral
    ref = ref_fn(denoiser(flow), start(flow, float(sig[0])), sig, SEED, eta=eta, s_noise=s_noise)
    ours = kinograph("euler_ancestral", flow, sig, eta=eta, s_noise=s_noise)
    assert float((ours - ref).abs().max()) < 2e-5


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("opts", [{}, {"s_noise": 1.02, "s_noise_end": 1.0}, {"noise_clip_std": 2.5}])
def test_lcm_is_comfyuis(flow, opts):
    sig = schedule(flow, 4)
    ref = ref_lcm(denoiser(flow), start(flow, float(sig[0])), sig, SEED, RefCONST() if flow else RefEPS(), **opts)
    ours = kinograph("lcm", flow, sig, s_noise=opts.get("s_noise", 1.0), s_noise_end=opts.get("s_noise_end"),
                     noise_clip=opts.get("noise_clip_std", 0.0))
    assert float((ours - ref).abs().max()) < 2e-5


@pytest.mark.parametrize("flow", [False, True])
def test_gradient_estimation_is_comfyuis(flow):
    sig = schedule(flow)
    ref = ref_gradient_estimation(denoiser(flow), start(flow, float(sig[0])), sig)
    assert float((kinograph("gradient_estimation", flow, sig) - ref).abs().max()) < 2e-5


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("s_noise", [1.0, 1.05, 0.0])
def test_er_sde_is_comfyuis(flow, s_noise):
    ms = RefCONST() if flow else RefEPS()
    sig = schedule(flow, 10)
    ref = ref_er_sde(denoiser(flow), start(flow, float(sig[0])), sig, SEED, ms, s_noise=s_noise)
    ours = kinograph("er_sde", flow, sig, s_noise=s_noise, top_level=ms.percent_to_sigma(1e-4) if flow else None)
    assert torch.isfinite(ours).all()
    assert float((ours - ref).abs().max()) < 5e-5
