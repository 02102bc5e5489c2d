"""ComfyUI's SDE samplers (dpmpp_sde, dpmpp_2m_sde, dpmpp_2m_sde_heun, dpmpp_3m_sde) and their Brownian-tree step
noise. The reference is ComfyUI's comfy/k_diffusion/sampling.py (GPL-3.0) written out below over torchsde itself
(installed with the test extras, never by Kinograph): Kinograph's tree (nodes/generate/brownian.py) must give
torchsde's increments to the bit, and each sampler ComfyUI's latent for the same seed."""
from functools import partial

import pytest
import torch

from tests.test_comfy_samplers import (SEED, SHAPE, RefCONST, RefEPS, denoiser, get_ancestral_step,
                                      offset_first_sigma_for_snr, schedule, sigma_to_half_log_snr, start)

torchsde = pytest.importorskip("torchsde")

from nodes.generate.brownian import BrownianTree, brownian_noise_sampler  # noqa: E402
from nodes.generate.samplers import SAMPLERS  # noqa: E402


# -- ComfyUI, written out ----------------------------------------------------------------------------------------
class RefBatchedBrownianTree:
    def __init__(self, x, t0, t1, seed=None, **kwargs):
        self.cpu_tree = kwargs.pop("cpu", True)
        t0, t1, self.sign = self.sort(t0, t1)
        w0 = kwargs.pop('w0', None)
        if w0 is None:
            w0 = torch.zeros_like(x)
        self.batched = False
        seed = (seed,)
        if self.cpu_tree:
            t0, w0, t1 = t0.detach().cpu(), w0.detach().cpu(), t1.detach().cpu()
        self.trees = tuple(torchsde.BrownianTree(t0, w0, t1, entropy=s, **kwargs) for s in seed)

    @staticmethod
    def sort(a, b):
        return (a, b, 1) if a < b else (b, a, -1)

    def __call__(self, t0, t1):
        t0, t1, sign = self.sort(t0, t1)
        device, dtype = t0.device, t0.dtype
        if self.cpu_tree:
            t0, t1 = t0.detach().cpu().float(), t1.detach().cpu().float()
        w = torch.stack([tree(t0, t1) for tree in self.trees]).to(device=device, dtype=dtype) * (self.sign * sign)
        return w if self.batched else w[0]


class RefBrownianTreeNoiseSampler:
    def __init__(self, x, sigma_min, sigma_max, seed=None, transform=lambda x: x, cpu=False):
        self.transform = transform
        t0, t1 = self.transform(torch.as_tensor(sigma_min)), self.transform(torch.as_tensor(sigma_max))
        self.tree = RefBatchedBrownianTree(x, t0, t1, seed, cpu=cpu)

    def __call__(self, sigma, sigma_next):
        t0, t1 = self.transform(torch.as_tensor(sigma)), self.transform(torch.as_tensor(sigma_next))
        return self.tree(t0, t1) / (t1 - t0).abs().sqrt()


def half_log_snr_to_sigma(half_log_snr, model_sampling):
    if isinstance(model_sampling, RefCONST):
        return half_log_snr.neg().sigmoid()
    return half_log_snr.neg().exp()


def ref_noise_sampler(x, sigmas, seed):
    sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
    return RefBrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seed, cpu=True)


def ref_dpmpp_sde(model, x, sigmas, seed, model_sampling, eta=1., s_noise=1., r=1 / 2):
    noise_sampler = ref_noise_sampler(x, sigmas, seed)
    sigma_fn = partial(half_log_snr_to_sigma, model_sampling=model_sampling)
    lambda_fn = partial(sigma_to_half_log_snr, model_sampling=model_sampling)
    sigmas = offset_first_sigma_for_snr(sigmas, model_sampling)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lambda_s, lambda_t = lambda_fn(sigmas[i]), lambda_fn(sigmas[i + 1])
            h = lambda_t - lambda_s
            lambda_s_1 = lambda_s + r * h
            fac = 1 / (2 * r)
            sigma_s_1 = sigma_fn(lambda_s_1)
            alpha_s = sigmas[i] * lambda_s.exp()
            alpha_s_1 = sigma_s_1 * lambda_s_1.exp()
            alpha_t = sigmas[i + 1] * lambda_t.exp()
            sd, su = get_ancestral_step(lambda_s.neg().exp(), lambda_s_1.neg().exp(), eta)
            lambda_s_1_ = sd.log().neg()
            h_ = lambda_s_1_ - lambda_s
            x_2 = (alpha_s_1 / alpha_s) * (-h_).exp() * x - alpha_s_1 * (-h_).expm1() * denoised
            if eta > 0 and s_noise > 0:
                x_2 = x_2 + alpha_s_1 * noise_sampler(sigmas[i], sigma_s_1) * s_noise * su
            denoised_2 = model(x_2, sigma_s_1)
            sd, su = get_ancestral_step(lambda_s.neg().exp(), lambda_t.neg().exp(), eta)
            lambda_t_ = sd.log().neg()
            h_ = lambda_t_ - lambda_s
            denoised_d = (1 - fac) * denoised + fac * denoised_2
            x = (alpha_t / alpha_s) * (-h_).exp() * x - alpha_t * (-h_).expm1() * denoised_d
            if eta > 0 and s_noise > 0:
                x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * su
    return x


def ref_dpmpp_2m_sde(model, x, sigmas, seed, model_sampling, eta=1., s_noise=1., solver_type='midpoint'):
    noise_sampler = ref_noise_sampler(x, sigmas, seed)
    lambda_fn = partial(sigma_to_half_log_snr, model_sampling=model_sampling)
    sigmas = offset_first_sigma_for_snr(sigmas, model_sampling)
    old_denoised = None
    h, h_last = None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lambda_s, lambda_t = lambda_fn(sigmas[i]), lambda_fn(sigmas[i + 1])
            h = lambda_t - lambda_s
            h_eta = h * (eta + 1)
            alpha_t = sigmas[i + 1] * lambda_t.exp()
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x + alpha_t * (-h_eta).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == 'heun':
                    x = x + alpha_t * ((-h_eta).expm1().neg() / (-h_eta) + 1) * (1 / r) * (denoised - old_denoised)
                elif solver_type == 'midpoint':
                    x = x + 0.5 * alpha_t * (-h_eta).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta > 0 and s_noise > 0:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * \
                    (-2 * h * eta).expm1().neg().sqrt() * s_noise
        old_denoised = denoised
        h_last = h
    return x


def ref_dpmpp_3m_sde(model, x, sigmas, seed, model_sampling, eta=1., s_noise=1.):
    noise_sampler = ref_noise_sampler(x, sigmas, seed)
    lambda_fn = partial(sigma_to_half_log_snr, model_sampling=model_sampling)
    sigmas = offset_first_sigma_for_snr(sigmas, model_sampling)
    denoised_1, denoised_2 = None, None
    h, h_1, h_2 = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lambda_s, lambda_t = lambda_fn(sigmas[i]), lambda_fn(sigmas[i + 1])
            h = lambda_t - lambda_s
            h_eta = h * (eta + 1)
            alpha_t = sigmas[i + 1] * lambda_t.exp()
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x + alpha_t * (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0 = h_1 / h
                r1 = h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + (alpha_t * phi_2) * d1 - (alpha_t * phi_3) * d2
            elif h_1 is not None:
                r = h_1 / h
                d = (denoised - denoised_1) / r
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + (alpha_t * phi_2) * d
            if eta > 0 and s_noise > 0:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * \
                    (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


# -- the tree ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, SEED, 2 ** 40 + 7])
def test_brownian_tree_gives_torchsdes_increments_to_the_bit(seed):
    t0, t1 = torch.tensor(0.0291675), torch.tensor(14.614642)
    ref = torchsde.BrownianTree(t0, torch.zeros(SHAPE), t1, entropy=seed)
    ours = BrownianTree(float(t0), float(t1), SHAPE, seed)
    levels = schedule(False, 12).float()
    queries = [(levels[i + 1], levels[i]) for i in range(11)] + \
        [(torch.tensor(0.5), torch.tensor(3.25)), (t0, t1), (torch.tensor(1.0), torch.tensor(1.5))]
    for a, b in queries:
        assert torch.equal(ours(float(a), float(b)), ref(a, b)), (seed, float(a), float(b))


def test_brownian_noise_sampler_is_comfyuis_and_one_motion():
    sig = schedule(True, 6).float()
    x = torch.zeros(SHAPE)
    ref = ref_noise_sampler(x, sig, SEED)
    ours = brownian_noise_sampler(SHAPE, sig, SEED, "cpu")
    for i in range(len(sig) - 2):
        assert torch.equal(ours(sig[i], sig[i + 1]), ref(sig[i], sig[i + 1]))
    # the increments of one motion: two half steps add up to the whole step
    a, b = float(sig[1]), float(sig[3])
    m = (a + b) / 2
    whole = ours(a, b) * (a - b) ** 0.5
    parts = ours(a, m) * (a - m) ** 0.5 + ours(m, b) * (m - b) ** 0.5
    assert torch.allclose(whole, parts, atol=1e-5)
    # a unit normal, drawn afresh for another seed
    assert 0.8 < float(ours(a, b).std()) < 1.2
    assert not torch.allclose(ours(a, b), brownian_noise_sampler(SHAPE, sig, SEED + 1, "cpu")(a, b))


# -- the samplers ----------------------------------------------------------------------------------------------------
CASES = [("dpmpp_sde", ref_dpmpp_sde, {}), ("dpmpp_2m_sde", ref_dpmpp_2m_sde, {}),
         ("dpmpp_2m_sde_heun", ref_dpmpp_2m_sde, {"solver_type": "heun"}), ("dpmpp_3m_sde", ref_dpmpp_3m_sde, {})]


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("name,ref_fn,opts", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("eta,s_noise", [(1.0, 1.0), (0.6, 1.1)])
def test_sde_samplers_are_comfyuis(flow, name, ref_fn, opts, eta, s_noise):
    ms = RefCONST() if flow else RefEPS()
    sig = schedule(flow, 7).float()
    ref = ref_fn(denoiser(flow), start(flow, float(sig[0])), sig, SEED, ms, eta=eta, s_noise=s_noise, **opts)
    for variant in (name, name + "_gpu"):        # on the CPU the _gpu tree is the same one
        ours = SAMPLERS[variant](denoiser(flow), start(flow, float(sig[0])), sig.double(), flow=flow,
                                 noise_sampler=brownian_noise_sampler(SHAPE, sig, SEED, "cpu", "_gpu" not in variant),
                                 eta=eta, s_noise=s_noise, top_level=ms.percent_to_sigma(1e-4) if flow else 1.0)
        assert torch.isfinite(ours).all()
        assert float((ours - ref).abs().max()) < 5e-5, variant


def test_sde_sampler_without_its_noise_says_so():
    sig = schedule(False, 3)
    with pytest.raises(ValueError, match="brownian_noise_sampler"):
        SAMPLERS["dpmpp_2m_sde"](denoiser(False), start(False, float(sig[0])), sig)


@pytest.mark.parametrize("flow", [False, True])
@pytest.mark.parametrize("name,ref_fn,opts", CASES, ids=[c[0] for c in CASES])
def test_one_step_sde_run_is_comfyuis(flow, name, ref_fn, opts):
    """One step ([sigma, 0]: a turbo model, or denoise that low) spans a tree of one level, sigma_min = sigma_max,
    which torchsde takes and ComfyUI's step never queries; it used to be refused with a ValueError."""
    ms = RefCONST() if flow else RefEPS()
    sig = schedule(flow, 1).float()
    assert len(sig) == 2 and float(sig[-1]) == 0
    ref = ref_fn(denoiser(flow), start(flow, float(sig[0])), sig, SEED, ms, **opts)
    ours = SAMPLERS[name](denoiser(flow), start(flow, float(sig[0])), sig.double(), flow=flow,
                          noise_sampler=brownian_noise_sampler(SHAPE, sig, SEED, "cpu"),
                          top_level=ms.percent_to_sigma(1e-4) if flow else 1.0)
    assert torch.equal(ours, ref)
