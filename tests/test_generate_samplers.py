"""Samplers, noise schedules and prompt syntax: pure maths and parsing, no model weights."""
import math

import pytest
import torch

from graph_engine import NodeError
from nodes.generate.families import family
from graph_engine.schedule import parse_text_keyframes
from nodes.generate.prompts import clean_and_weights, interpolation_weights, parse_emphasis
from nodes.generate.samplers import SAMPLERS, flow_sigmas, karras_sigmas, sample_unipc

MU, S0 = 0.7, 0.5


def den_ve(x, s):
    """Exact denoiser for data ~ N(MU, S0^2) observed as x = x0 + s * n."""
    return MU + (x - MU) * S0 ** 2 / (S0 ** 2 + s ** 2)


def den_flow(x, s):
    """Exact denoiser for x = (1 - s) x0 + s * n."""
    a = 1 - s
    return MU + (x - a * MU) * a * S0 ** 2 / (a ** 2 * S0 ** 2 + s ** 2)


@pytest.fixture(scope="module")
def unit_noise():
    return torch.randn(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _ve_case(n, steps):
    sig = karras_sigmas(steps, 0.03, 80.0)
    x = MU + n * math.sqrt(S0 ** 2 + 80.0 ** 2)
    # The probability-flow ODE maps x at sigma_max to MU + (x - MU) * S0 / sqrt(S0^2 + sigma_max^2).
    exact = MU + (x - MU) * S0 / math.sqrt(S0 ** 2 + 80.0 ** 2)
    return sig, x, exact


def _error(name, steps, n, flow):
    if flow:
        sig, x, exact, fn = flow_sigmas(steps, 3.0).double(), n.clone(), MU + n * S0, den_flow
    else:
        (sig, x, exact), fn = _ve_case(n, steps), den_ve
    out = SAMPLERS[name](lambda xx, s: fn(xx, s.double()), x, sig, flow=flow)
    return float((out - exact).abs().max())


@pytest.mark.parametrize("flow", [False, True])
def test_deterministic_samplers_converge_with_their_order(unit_noise, flow):
    names = ["euler", "dpmpp_2m", "unipc"] + (["flow_euler"] if flow else [])
    coarse = {k: _error(k, 10, unit_noise, flow) for k in names}
    fine = {k: _error(k, 40, unit_noise, flow) for k in names}
    for k in names:
        assert fine[k] < coarse[k]
    # First order: 4x the steps ~ 1/4 the error; second order solvers gain far more and beat Euler.
    assert coarse["euler"] / fine["euler"] > 2.5
    assert coarse["dpmpp_2m"] / fine["dpmpp_2m"] > 8 and coarse["unipc"] / fine["unipc"] > 8
    assert fine["unipc"] < fine["euler"] / 5 and fine["dpmpp_2m"] < fine["euler"] / 5


def test_flow_euler_equals_ddim_in_the_flow_frame(unit_noise):
    sig = flow_sigmas(12, 3.0).double()
    f = lambda xx, s: den_flow(xx, s.double())  # noqa: E731
    a = SAMPLERS["flow_euler"](f, unit_noise.clone(), sig)
    b = SAMPLERS["ddim"](f, unit_noise.clone(), sig, flow=True)
    assert torch.allclose(a, b, atol=1e-9)


def test_unipc_matches_diffusers_unipc_scheduler(unit_noise):
    from diffusers import UniPCMultistepScheduler
    sch = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    sch.set_timesteps(8)
    sig = torch.as_tensor(sch.sigmas, dtype=torch.float64)
    x = unit_noise.reshape(1, 4, -1) * sig[0]
    ours = sample_unipc(lambda xx, s: den_flow(xx, s.double()), x.clone(), sig, flow=True)
    for i, t in enumerate(sch.timesteps):
        v = (x - den_flow(x, sig[i])) / sig[i]
        x = sch.step(v, t, x).prev_sample
    assert float((ours - x).abs().max()) < 1e-6


def test_ancestral_keeps_the_marginal_and_follows_its_seed(unit_noise):
    sig = flow_sigmas(300, 1.0).double()

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return SAMPLERS["euler_ancestral"](lambda xx, s: den_flow(xx, s.double()), unit_noise.clone(), sig,
                                           flow=True, noise_sampler=lambda i: torch.randn(unit_noise.shape,
                                                                                          generator=g).double())
    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Samples of the data distribution N(MU, S0^2) (ancestral sampling is first order: many steps).
    assert abs(float(a.mean()) - MU) < 0.03 and abs(float(a.std()) - S0) < 0.03


def test_karras_and_flow_schedules():
    k = karras_sigmas(5, 0.1, 10.0)
    assert len(k) == 6 and k[-1] == 0 and abs(float(k[0]) - 10) < 1e-9 and abs(float(k[-2]) - 0.1) < 1e-9
    assert bool((k[:-1][1:] < k[:-1][:-1]).all())
    f = flow_sigmas(4, 3.0)
    assert float(f[0]) == 1.0 and float(f[-1]) == 0.0
    assert abs(float(f[2]) - 3 * 0.5 / (1 + 2 * 0.5)) < 1e-6


def test_emphasis_syntax():
    assert parse_emphasis("a (red:1.5) cat") == [("a ", 1.0), ("red", 1.5), (" cat", 1.0)]
    runs = dict((t, w) for t, w in parse_emphasis("((sharp)) [blurry] \\(x\\)"))
    assert abs(runs["sharp"] - 1.21) < 1e-9 and abs(runs["blurry"] - 1 / 1.1) < 1e-9
    assert "".join(t for t, _ in parse_emphasis("((sharp)) [blurry] \\(x\\)")) == "sharp blurry (x)"
    clean, spans = clean_and_weights("a (red:1.5) cat")
    assert clean == "a red cat" and spans == [(2, 5, 1.5)]
    with pytest.raises(NodeError, match="unbalanced"):
        parse_emphasis("a red) cat")
    with pytest.raises(NodeError, match="unclosed"):
        parse_emphasis("a (red cat")


def test_prompt_schedule_and_interpolation():
    keys = parse_text_keyframes("0: a caterpillar, on a leaf, 24: a butterfly")
    assert keys == [(0, "a caterpillar, on a leaf"), (24, "a butterfly")]
    # The number schedules' keyframe syntax: a value may be parenthesised (or quoted).
    assert parse_text_keyframes("0:(a cat), 12: 'a dog, asleep'") == [(0, "a cat"), (12, "a dog, asleep")]
    w = interpolation_weights([0, 24], [0, 6, 24, 40])
    assert w.tolist() == [[1, 0], [0.75, 0.25], [0, 1], [0, 1]]
    with pytest.raises(NodeError, match="increasing frame order; frame 5 comes after frame 10") as e:
        parse_text_keyframes("10: a, 5: b")
    assert "^" in str(e.value)          # the caret under the offending frame, as for number schedules
    with pytest.raises(NodeError, match="looks like"):
        parse_text_keyframes("a cat, 5: b")


def test_frame_rules_name_the_nearest_valid_counts():
    with pytest.raises(NodeError, match="4n\\+1.*13 or 17"):
        family("wan").check_frames(16)
    with pytest.raises(NodeError, match="8n\\+1.*25 or 33"):
        family("ltx").check_frames(30)
    family("hunyuan").check_frames(61)
    family("animatediff").check_frames(16)
    with pytest.raises(NodeError, match="divisible by 32.*Try 704x480"):
        family("ltx").check_size(700, 480)
    assert family("wan").latent_frames(81) == 21 and family("ltx").pixel_frames(16) == 121
    # size_fit floor (ComfyUI's empty latents): preflight passes a size it will floor, and refuses one under a step
    from nodes.generate.preflight import latent_preflight
    ltx = {"vae": ("load.ltx", {})}
    assert latent_preflight({"frames": 9, "width": 700, "height": 480, "size_fit": "floor"}, ltx) == []
    assert [p for p, _ in latent_preflight({"frames": 9, "width": 700, "height": 480}, ltx)] == ["width"]
    assert [p for p, _ in latent_preflight({"frames": 9, "width": 640, "height": 20, "size_fit": "floor"}, ltx)] == \
        ["height"]


def _comfy_start(sigmas, noise, latent_image, betas_range=(0.00085, 0.012)):
    """ComfyUI's first state for a VP (EPS / V_PREDICTION) model, written out: comfy/model_sampling.py's
    ModelSamplingDiscrete sigmas from the scaled_linear betas (sigma_max their last), comfy/samplers.py's
    Sampler.max_denoise and EPS.noise_scaling, which KSAMPLER.sample calls with sigmas[0]."""
    start, end = betas_range
    betas = torch.linspace(start ** 0.5, end ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    max_sigma = float((((1 - alphas_cumprod) / alphas_cumprod) ** 0.5)[-1])
    sigma = float(sigmas[0])
    max_denoise = math.isclose(max_sigma, sigma, rel_tol=1e-05) or sigma > max_sigma
    if max_denoise:
        noise = noise * math.sqrt(1.0 + sigma ** 2.0)
    else:
        noise = noise * sigma
    return noise + latent_image, max_sigma


def test_a_first_level_set_by_hand_starts_from_comfyuis_noise():
    """SetFirstSigma on a full schedule, noise added (ComfyUI's KSAMPLER.sample): the noise is scaled by
    sqrt(1 + s^2) only when the first level reaches the model's top level, else by s. Kinograph scaled it by
    sqrt(1 + s^2) for any first level of a full schedule (1.41x ComfyUI's noise at level 1)."""
    from types import SimpleNamespace

    from diffusers import DDIMScheduler

    from nodes.generate.adapters import get_adapter
    from nodes.generate.sampling import first_noised
    adapter = get_adapter("sd")
    levels = SimpleNamespace(scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012,
                                                     beta_schedule="scaled_linear"))
    g = torch.Generator().manual_seed(0)
    noise, latent = torch.randn(1, 4, 1, 4, 4, generator=g), torch.randn(1, 4, 1, 4, 4, generator=g)
    _, top = _comfy_start(torch.tensor([1.0]), noise, latent)
    for first in (1.0, 5.0, top, 30.0):
        want, _ = _comfy_start(torch.tensor([first, 0.0]), noise, latent)
        got = first_noised(adapter, levels, first, noise, latent, True, True)
        assert torch.allclose(got, want.float(), atol=1e-5), first
    # without a level set by hand the full schedule's first level is the top one: pure noise, as before
    full = first_noised(adapter, levels, top, noise, latent, True, False)
    assert torch.allclose(full, latent + noise * math.sqrt(1 + top ** 2), atol=1e-5)
    # a flow model's start does not depend on it (ComfyUI's CONST.noise_scaling)
    flow = get_adapter("wan")
    got = first_noised(flow, None, 0.5, noise, latent, True, True)
    assert torch.allclose(got, 0.5 * noise + 0.5 * latent)
