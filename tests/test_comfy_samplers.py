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


# -- ComfyUI's uni_pc (comfy/extra_samplers/uni_pc.py), written out ----------------------------------------------------
class SigmaConvert:
    def marginal_log_mean_coeff(self, sigma):
        return 0.5 * torch.log(1 / ((sigma * sigma) + 1))

    def marginal_alpha(self, t):
        return torch.exp(self.marginal_log_mean_coeff(t))

    def marginal_std(self, t):
        return torch.sqrt(1. - torch.exp(2. * self.marginal_log_mean_coeff(t)))

    def marginal_lambda(self, t):
        log_mean_coeff = self.marginal_log_mean_coeff(t)
        log_std = 0.5 * torch.log(1. - torch.exp(2. * log_mean_coeff))
        return log_mean_coeff - log_std


def expand_dims(v, dims):
    return v[(...,) + (None,) * (dims - 1)]


class RefUniPC:
    def __init__(self, model_fn, noise_schedule, variant):
        self.model, self.noise_schedule, self.variant = model_fn, noise_schedule, variant

    def model_fn(self, x, t):      # data prediction
        noise = self.model(x, t)
        alpha_t, sigma_t = self.noise_schedule.marginal_alpha(t), self.noise_schedule.marginal_std(t)
        return (x - expand_dims(sigma_t, x.dim()) * noise) / expand_dims(alpha_t, x.dim())

    def update(self, x, model_prev_list, t_prev_list, t, order, use_corrector=True):
        ns = self.noise_schedule
        dims = x.dim()
        t_prev_0 = t_prev_list[-1]
        lambda_prev_0 = ns.marginal_lambda(t_prev_0)
        lambda_t = ns.marginal_lambda(t)
        model_prev_0 = model_prev_list[-1]
        sigma_prev_0, sigma_t = ns.marginal_std(t_prev_0), ns.marginal_std(t)
        alpha_t = torch.exp(ns.marginal_log_mean_coeff(t))
        h = lambda_t - lambda_prev_0
        rks = []
        D1s = []
        for i in range(1, order):
            t_prev_i = t_prev_list[-(i + 1)]
            model_prev_i = model_prev_list[-(i + 1)]
            lambda_prev_i = ns.marginal_lambda(t_prev_i)
            rk = ((lambda_prev_i - lambda_prev_0) / h)[0]
            rks.append(rk)
            D1s.append((model_prev_i - model_prev_0) / rk)
        rks.append(1.)
        rks = torch.tensor(rks, device=x.device)
        R = []
        b = []
        hh = -h[0]
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        factorial_i = 1
        B_h = hh if self.variant == 'bh1' else torch.expm1(hh)
        for i in range(1, order + 1):
            R.append(torch.pow(rks, i - 1))
            b.append(h_phi_k * factorial_i / B_h)
            factorial_i *= (i + 1)
            h_phi_k = h_phi_k / hh - 1 / factorial_i
        R = torch.stack(R)
        b = torch.tensor(b, device=x.device)
        use_predictor = len(D1s) > 0
        if len(D1s) > 0:
            D1s = torch.stack(D1s, dim=1)
            rhos_p = torch.tensor([0.5], device=b.device) if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
        else:
            D1s = None
        if use_corrector:
            rhos_c = torch.tensor([0.5], device=b.device) if order == 1 else torch.linalg.solve(R, b)
        model_t = None
        x_t_ = expand_dims(sigma_t / sigma_prev_0, dims) * x - expand_dims(alpha_t * h_phi_1, dims) * model_prev_0
        pred_res = torch.einsum('k,bkcthw->bcthw', rhos_p, D1s) if use_predictor else 0
        x_t = x_t_ - expand_dims(alpha_t * B_h, dims) * pred_res
        if use_corrector:
            model_t = self.model_fn(x_t, t)
            corr_res = torch.einsum('k,bkcthw->bcthw', rhos_c[:-1], D1s) if D1s is not None else 0
            D1_t = (model_t - model_prev_0)
            x_t = x_t_ - expand_dims(alpha_t * B_h, dims) * (corr_res + rhos_c[-1] * D1_t)
        return x_t, model_t

    def sample(self, x, timesteps, order):
        steps = len(timesteps) - 1
        assert steps >= order
        for step_index in range(steps):
            if step_index == 0:
                vec_t = timesteps[0].expand((x.shape[0]))
                model_prev_list = [self.model_fn(x, vec_t)]
                t_prev_list = [vec_t]
            elif step_index < order:
                init_order = step_index
                vec_t = timesteps[init_order].expand(x.shape[0])
                x, model_x = self.update(x, model_prev_list, t_prev_list, vec_t, init_order, use_corrector=True)
                if model_x is None:
                    model_x = self.model_fn(x, vec_t)
                model_prev_list.append(model_x)
                t_prev_list.append(vec_t)
            else:
                extra_final_step = 1 if step_index == (steps - 1) else 0
                for step in range(step_index, step_index + 1 + extra_final_step):
                    vec_t = timesteps[step].expand(x.shape[0])
                    step_order = min(order, steps + 1 - step)
                    use_corrector = step != steps
                    x, model_x = self.update(x, model_prev_list, t_prev_list, vec_t, step_order,
                                             use_corrector=use_corrector)
                    for i in range(order - 1):
                        t_prev_list[i] = t_prev_list[i + 1]
                        model_prev_list[i] = model_prev_list[i + 1]
                    t_prev_list[-1] = vec_t
                    if step < steps:
                        if model_x is None:
                            model_x = self.model_fn(x, vec_t)
                        model_prev_list[-1] = model_x
        return x


def ref_unipc(model, noise, sigmas, variant='bh1'):
    timesteps = sigmas.clone()
    if sigmas[-1] == 0:
        timesteps = sigmas[:]
        timesteps[-1] = 0.001
    ns = SigmaConvert()
    noise = noise / torch.sqrt(1.0 + timesteps[0] ** 2.0)

    def predict_eps_sigma(input, sigma_in):     # model_wrapper's noise prediction, t_input = t
        sigma = sigma_in.view(sigma_in.shape[:1] + (1,) * (input.ndim - 1))
        input = input * ((sigma ** 2 + 1.0) ** 0.5)
        return (input - model(input, sigma_in[0])) / sigma
    order = min(3, len(timesteps) - 2)
    x = RefUniPC(predict_eps_sigma, ns, variant).sample(noise, timesteps, order)
    x /= ns.marginal_alpha(timesteps[-1])
    return x


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("steps", [2, 3, 10])
def test_uni_pc_is_comfyuis(flow, variant, steps):
    """ComfyUI runs uni_pc in log sigma on flow models too (x taken as x0 + sigma n), and stops at sigma 0.001. Its
    steps are run here in float64: in float32 its SigmaConvert's log(1 - exp(2 log alpha)) cancels near sigma 0.001 and
    1, which moves its own result by up to 1e-2 on this denoiser (rounding, not the method)."""
    sig = schedule(flow, steps)
    ref = ref_unipc(denoiser(flow), start(flow, float(sig[0])).double(), sig.clone().double(), variant)
    ours = kinograph("uni_pc" if variant == "bh1" else "uni_pc_bh2", flow, sig)
    assert float((ours.double() - ref).abs().max()) < 2e-5
    # Kinograph's own unipc (the model's frame, bh2, second order) is another method
    assert float((kinograph("unipc", flow, sig).double() - ref).abs().max()) > 1e-3


def test_uni_pc_one_step_is_refused():
    from graph_engine import NodeError
    with pytest.raises(NodeError, match="at least 2 steps, got 1 .*set steps to 2 or more, or pick another sampler"):
        kinograph("uni_pc", True, schedule(True, 1))


# -- ComfyUI's dpmpp_2m and res_multistep: log sigma on every model ----------------------------------------------------
def ref_dpmpp_2m(model, x, sigmas):
    sigma_fn = lambda t: t.neg().exp()  # noqa: E731 (as ComfyUI writes them)
    t_fn = lambda sigma: sigma.log().neg()  # noqa: E731
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - t_fn(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def ref_res_multistep_full(model, x, sigmas, seed, s_noise=1., eta=1., cfg_pp=False):
    """model(x, sigma) -> (denoised, uncond_denoised)."""
    noise_sampler = ref_default_noise_sampler(x, seed=seed)

    def sigma_fn(t):
        return t.neg().exp()

    def t_fn(sigma):
        return sigma.log().neg()

    def phi1_fn(t):
        return torch.expm1(t) / t

    def phi2_fn(t):
        return (phi1_fn(t) - 1.0) / t
    old_sigma_down = None
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised, uncond_denoised = model(x, sigmas[i])
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if sigma_down == 0 or old_denoised is None:
            if cfg_pp:
                d = to_d(x, sigmas[i], uncond_denoised)
                x = denoised + d * sigma_down
            else:
                d = to_d(x, sigmas[i], denoised)
                dt = sigma_down - sigmas[i]
                x = x + d * dt
        else:
            t, t_old, t_next, t_prev = t_fn(sigmas[i]), t_fn(old_sigma_down), t_fn(sigma_down), t_fn(sigmas[i - 1])
            h = t_next - t
            c2 = (t_prev - t_old) / h
            phi1_val, phi2_val = phi1_fn(-h), phi2_fn(-h)
            b1 = torch.nan_to_num(phi1_val - phi2_val / c2, nan=0.0)
            b2 = torch.nan_to_num(phi2_val / c2, nan=0.0)
            if cfg_pp:
                x = x + (denoised - uncond_denoised)
                x = sigma_fn(h) * x + h * (b1 * uncond_denoised + b2 * old_denoised)
            else:
                x = sigma_fn(h) * x + h * (b1 * denoised + b2 * old_denoised)
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
        if cfg_pp:
            old_denoised = uncond_denoised
        else:
            old_denoised = denoised
        old_sigma_down = sigma_down
    return x


def ref_res_multistep(model, x, sigmas):
    """res_multistep at eta 0 (sigma_down = the next level, sigma_up = 0)."""
    return ref_res_multistep_full(lambda xx, s: (model(xx, s), None), x, sigmas, None, eta=0.)


@pytest.mark.parametrize("name,ref_fn", [("dpmpp_2m", ref_dpmpp_2m), ("res_multistep", ref_res_multistep)])
def test_sigma_frame_is_comfyuis_on_flow_models(name, ref_fn):
    """sample's frame sigma (what the import sets for these two) is ComfyUI's on a flow model; the model's own frame is
    another method."""
    sig = schedule(True, 10)
    ref = ref_fn(denoiser(True), start(True, 1.0).double(), sig.double())
    x = start(True, 1.0)
    comfy = SAMPLERS[name](denoiser(True), x, sig, flow=False)
    own = SAMPLERS[name](denoiser(True), x, sig, flow=True)
    assert float((comfy.double() - ref).abs().max()) < 2e-5
    assert float((own.double() - ref).abs().max()) > 1e-3


@pytest.mark.parametrize("name,settings", [("uni_pc", "sampler: uni_pc"), ("res_multistep", "frame: sigma"),
                                           ("lcm", "sampler: lcm"), ("er_sde", "sampler: er_sde")])
def test_import_maps_them_exactly(name, settings):
    import json
    from pathlib import Path
    from app.comfyui import import_data
    wf = json.loads((Path(__file__).parent / "data" / "comfyui" / "wan_t2v.json").read_text())
    widgets = next(n for n in wf["nodes"] if n["type"] == "KSampler")["widgets_values"]
    widgets[4], widgets[5] = name, "normal"
    result = import_data(wf)
    assert result.report.exit_code == 0, result.report.text()
    assert settings in result.yaml and "scheduler: normal" in result.yaml


def ref_linear_quadratic(model_sampling, steps, threshold_noise=0.025, linear_steps=None):
    if steps == 1:
        sigma_schedule = [1.0, 0.0]
    else:
        if linear_steps is None:
            linear_steps = steps // 2
        linear_sigma_schedule = [i * threshold_noise / linear_steps for i in range(linear_steps)]
        threshold_noise_step_diff = linear_steps - threshold_noise * steps
        quadratic_steps = steps - linear_steps
        quadratic_coef = threshold_noise_step_diff / (linear_steps * quadratic_steps ** 2)
        linear_coef = threshold_noise / linear_steps - 2 * threshold_noise_step_diff / (quadratic_steps ** 2)
        const = quadratic_coef * (linear_steps ** 2)
        quadratic_sigma_schedule = [quadratic_coef * (i ** 2) + linear_coef * i + const
                                    for i in range(linear_steps, steps)]
        sigma_schedule = linear_sigma_schedule + quadratic_sigma_schedule + [1.0]
        sigma_schedule = [1.0 - x for x in sigma_schedule]
    return torch.FloatTensor(sigma_schedule) * model_sampling.sigma_max.cpu()


def ref_exponential(n, sigma_min, sigma_max):
    sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp()
    return torch.cat([sigmas, sigmas.new_zeros([1])])


@pytest.mark.parametrize("flow", [False, True])
def test_linear_quadratic_and_exponential_schedules_are_comfyuis(flow):
    from nodes.generate.samplers import exponential_sigmas, linear_quadratic_sigmas
    ms = RefCONST() if flow else RefEPS()
    table = SigmaTable.flow(3.0) if flow else sd_table()
    for steps in (1, 2, 7, 30):
        ref = ref_linear_quadratic(ms, steps).double()
        assert float((linear_quadratic_sigmas(table, steps) - ref).abs().max() / ref.max()) < 1e-6
        ref = ref_exponential(steps, float(ms.sigma_min), float(ms.sigma_max)).double()
        assert float((exponential_sigmas(table, steps) - ref).abs().max() / ref.max()) < 1e-5


def ref_dpm_2(model, x, sigmas):
    for i in range(len(sigmas) - 1):
        sigma_hat = sigmas[i]
        denoised = model(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        if sigmas[i + 1] == 0:
            dt = sigmas[i + 1] - sigma_hat
            x = x + d * dt
        else:
            sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
            dt_1 = sigma_mid - sigma_hat
            dt_2 = sigmas[i + 1] - sigma_hat
            x_2 = x + d * dt_1
            denoised_2 = model(x_2, sigma_mid)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * dt_2
    return x


@pytest.mark.parametrize("flow", [False, True])
def test_dpm_2_is_comfyuis(flow):
    sig = schedule(flow)
    ref = ref_dpm_2(denoiser(flow), start(flow, float(sig[0])).double(), sig.double())
    assert float((kinograph("dpm_2", flow, sig).double() - ref).abs().max()) < 2e-5


# -- RES4LYF's beta57: ComfyUI's beta_scheduler (comfy/samplers.py) at alpha 0.5, beta 0.7 --------------------------
def ref_beta_scheduler(model_sampling, steps, alpha=0.6, beta=0.6):
    import numpy
    import scipy.stats
    total_timesteps = (len(model_sampling.sigmas) - 1)
    ts = 1 - numpy.linspace(0, 1, steps, endpoint=False)
    ts = numpy.rint(scipy.stats.beta.ppf(ts, alpha, beta) * total_timesteps)
    sigs = []
    last_t = -1
    for t in ts:
        if t != last_t:
            sigs += [float(model_sampling.sigmas[int(t)])]
        last_t = t
    sigs += [0.0]
    return torch.FloatTensor(sigs)


@pytest.mark.parametrize("flow", [False, True])
def test_beta57_schedule_is_res4lyfs(flow):
    from nodes.generate.samplers import TABLE_SCHEDULES
    ms = RefCONST() if flow else RefEPS()
    table = SigmaTable.flow(3.0) if flow else sd_table()
    for steps in (1, 5, 12, 40):
        ours, ref = TABLE_SCHEDULES["beta57"](table, steps), ref_beta_scheduler(ms, steps, alpha=0.5, beta=0.7)
        assert ours.shape == ref.shape
        assert float((ours - ref.double()).abs().max() / ref.max()) < 1e-6, (steps, ours, ref)
    assert not torch.allclose(TABLE_SCHEDULES["beta"](table, 12), TABLE_SCHEDULES["beta57"](table, 12))


# -- ComfyUI's ddim_uniform and kl_optimal (comfy/samplers.py) ------------------------------------------------------
def ref_ddim_scheduler(model_sampling, steps):
    s = model_sampling
    x = 1
    if math.isclose(float(s.sigmas[x]), 0, abs_tol=0.00001):
        steps += 1
        sigs = []
    else:
        sigs = [0.0]
    ss = max(len(s.sigmas) // steps, 1)
    while x < len(s.sigmas):
        sigs += [float(s.sigmas[x])]
        x += ss
    sigs = sigs[::-1]
    return torch.FloatTensor(sigs)


def ref_kl_optimal_scheduler(n, sigma_min, sigma_max):
    adj_idxs = torch.arange(n, dtype=torch.float).div_(n - 1)
    sigmas = adj_idxs.new_zeros(n + 1)
    sigmas[:-1] = (adj_idxs * math.atan(sigma_min) + (1 - adj_idxs) * math.atan(sigma_max)).tan_()
    return sigmas


@pytest.mark.parametrize("flow", [False, True])
def test_ddim_uniform_and_kl_optimal_are_comfyuis(flow):
    from graph_engine import NodeError
    from nodes.generate.samplers import TABLE_SCHEDULES
    ms = RefCONST() if flow else RefEPS()
    table = SigmaTable.flow(3.0) if flow else sd_table()
    for steps in (2, 7, 30):
        for ours, ref in ((TABLE_SCHEDULES["ddim_uniform"](table, steps), ref_ddim_scheduler(ms, steps)),
                          (TABLE_SCHEDULES["kl_optimal"](table, steps),
                           ref_kl_optimal_scheduler(steps, float(ms.sigma_min), float(ms.sigma_max)))):
            assert ours.shape == ref.shape
            assert float((ours - ref.double()).abs().max() / ref.max()) < 1e-6, (steps, ours, ref)
    with pytest.raises(NodeError, match="2 steps or more"):
        TABLE_SCHEDULES["kl_optimal"](table, 1)


@pytest.mark.parametrize("steps", [7, 30])
def test_ddim_uniform_run_takes_every_level_comfyui_gives(steps):
    """ddim_uniform gives one level more than steps when the table's length is not a multiple of them (1000 // 7 =
    142: 8 steps); ComfyUI's KSampler and BasicScheduler at denoise 1 sample all of them. make_sigmas kept the last
    steps + 1, dropping the noisiest level (the run started lower and took a step fewer)."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.sampling import make_sigmas
    ref = ref_ddim_scheduler(RefCONST(), steps)
    assert len(ref) == steps + 2
    got = make_sigmas(get_adapter("wan"), None, steps, "ddim_uniform", 1.0, (1, 16, 1, 8, 8), shift=3.0)
    assert got.shape == ref.shape and float((got - ref.double()).abs().max()) < 1e-6
