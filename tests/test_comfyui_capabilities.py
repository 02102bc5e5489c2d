"""The node capabilities ComfyUI workflows need, each against an independent computation:
schedules (simple, sgm_uniform, beta), the res_multistep sampler, split schedules (KSamplerAdvanced),
flow shift, linear CFG, latent upscale, LTX preprocess, clip skip and ComfyUI's prompt weighting."""
import math
import sys
from pathlib import Path as _P

import numpy as np
import pytest
import torch

from graph_engine import NodeError
from nodes.generate.samplers import (SAMPLERS, SigmaTable, beta_sigmas, flow_sigmas, sgm_uniform_sigmas,
                                     simple_sigmas)

sys.path.insert(0, str(_P(__file__).resolve().parent))


def _shifted(t, shift):
    return shift * t / (1 + (shift - 1) * t)


def _scaled_linear_alphas(n=1000, b0=0.00085, b1=0.012):
    betas = np.linspace(b0 ** 0.5, b1 ** 0.5, n) ** 2
    return np.cumprod(1 - betas)


# -- schedules ------------------------------------------------------------------------------------
def test_simple_on_a_flow_model_is_the_shifted_line():
    got = simple_sigmas(SigmaTable.flow(8.0), 20).numpy()
    want = [_shifted(1 - i / 20, 8.0) for i in range(20)] + [0.0]
    assert np.allclose(got, want, atol=1e-12)
    assert np.allclose(got, flow_sigmas(20, 8.0).double().numpy(), atol=1e-6)


def test_simple_on_a_discrete_model_takes_every_nth_level():
    ac = _scaled_linear_alphas()
    table = np.sqrt((1 - ac) / ac)
    got = simple_sigmas(SigmaTable.vp(torch.from_numpy(ac)), 30).numpy()
    stride = 1000 / 30
    want = [table[999 - int(i * stride)] for i in range(30)] + [0.0]
    assert np.allclose(got, want, rtol=1e-12)
    assert got[0] == pytest.approx(14.6146, rel=1e-4)        # SD 1.5's sigma_max


def test_sgm_uniform_spaces_timesteps_evenly():
    got = sgm_uniform_sigmas(SigmaTable.flow(3.0), 10).numpy()
    # ComfyUI's flow timestep is 1000 x sigma: the span ends at the smallest level itself (shifted), not at 1 / 1000
    ts = np.linspace(1.0, float(_shifted(np.array([0.001]), 3.0)[0]), 11)[:-1]
    assert np.allclose(got, list(_shifted(ts, 3.0)) + [0.0], atol=1e-12)
    ac = _scaled_linear_alphas()
    table = np.sqrt((1 - ac) / ac)
    vp = sgm_uniform_sigmas(SigmaTable.vp(torch.from_numpy(ac)), 4).numpy()
    ts = np.linspace(999, 0, 5)[:-1]                          # 999, 749.25, 499.5, 249.75
    log_interp = [math.exp(np.interp(t, np.arange(1000), np.log(table))) for t in ts]
    assert np.allclose(vp, log_interp + [0.0], rtol=1e-10)


def test_beta_schedule_follows_beta_quantiles():
    from scipy.stats import beta
    table = SigmaTable.flow(1.0)
    flat = beta_sigmas(table, 10, 1.0, 1.0).numpy()          # Beta(1, 1) is uniform: plain index spacing
    assert np.allclose(flat, [(round((1 - i / 10) * 999) + 1) / 1000 for i in range(10)] + [0.0])
    got = beta_sigmas(table, 8).numpy()
    q = beta.ppf(1 - np.arange(8) / 8, 0.6, 0.6)
    assert np.allclose(got[:-1], (np.rint(q * 999) + 1) / 1000)
    steps = np.diff(got[:-1])
    assert abs(steps[0]) < abs(steps[3]) and abs(steps[-1]) < abs(steps[3])   # dense at both ends


# -- res_multistep ------------------------------------------------------------------------------
def _gaussian_denoiser(mu, s, flow):
    """Exact E[x0 | x] for x0 ~ N(mu, s^2), in the VE (x = x0 + sigma n) or flow frame."""
    def fn(x, sigma):
        sg = float(sigma)
        a = 1 - sg if flow else 1.0
        return mu + a * s * s / (a * a * s * s + sg * sg) * (x - a * mu)
    return fn


def _ode_error(sampler, steps, flow):
    mu, s, z = 0.7, 0.5, 1.3
    if flow:
        sig = torch.linspace(0.98, 0.0, steps + 1, dtype=torch.float64)
        x = (1 - sig[0]) * mu + math.sqrt((1 - sig[0]) ** 2 * s * s + sig[0] ** 2) * z
    else:
        sig = torch.cat([torch.exp(torch.linspace(math.log(10), math.log(0.02), steps)), torch.zeros(1)]).double()
        x = mu + math.sqrt(s * s + sig[0] ** 2) * z
    out = SAMPLERS[sampler](_gaussian_denoiser(mu, s, flow), torch.tensor([float(x)], dtype=torch.float64), sig,
                            flow=flow)
    return abs(float(out[0]) - (mu + s * z))   # the probability-flow ODE keeps the quantile z


@pytest.mark.parametrize("flow", [False, True])
def test_res_multistep_is_second_order(flow):
    # the flow run starts at sigma 0.98, where steps are long in log-SNR: its asymptotic range begins later
    n = 40 if flow else 10
    e1, e2, e3 = (_ode_error("res_multistep", k, flow) for k in (n, 2 * n, 4 * n))
    assert e2 / e3 > 3.0                                      # error / 4 per halving: second order
    assert e1 / e2 > 2.5
    d2, d3 = _ode_error("ddim", 2 * n, flow), _ode_error("ddim", 4 * n, flow)
    assert 1.8 < d2 / d3 < 2.2                                # the first-order reference halves
    assert e2 < d2 / 5


# -- split schedule (KSamplerAdvanced) -------------------------------------------------------------
def test_split_schedule_windows():
    from nodes.generate.sampling import split_schedule
    sig = torch.linspace(1, 0, 21, dtype=torch.float64)
    first = split_schedule(sig, 0, 10, leftover_noise=True)
    assert len(first) == 11 and first[-1] == pytest.approx(0.5)
    closed = split_schedule(sig, 0, 10, leftover_noise=False)
    assert closed[-1] == 0 and closed[-2] == pytest.approx(0.55)
    second = split_schedule(sig, 10, None)
    assert len(second) == 11 and second[0] == pytest.approx(0.5) and second[-1] == 0
    assert split_schedule(sig, 20, None) is None
    with pytest.raises(NodeError, match="0 or more"):
        split_schedule(sig, -1, None)


# -- latent upscale ------------------------------------------------------------------------------
def test_latent_upscale_nearest_and_bilinear():
    from nodes.generate.latent import Latent, upscale_latent
    x = torch.arange(2 * 4 * 3 * 5, dtype=torch.float32).reshape(1, 2, 4, 3, 5)
    lat = Latent(x, "animatediff", 4, 8.0, 40, 24)
    up = upscale_latent(lat, 2.0, "nearest-exact")
    assert up.samples.shape == (1, 2, 4, 6, 10) and (up.width, up.height) == (80, 48)
    assert torch.equal(up.samples, x.repeat_interleave(2, 3).repeat_interleave(2, 4))
    bil = upscale_latent(lat, 2.0, "bilinear").samples[0, 0, 0]
    src = x[0, 0, 0].numpy()
    # half-pixel centres: output (i, j) samples the source at ((i + 0.5) / 2 - 0.5, (j + 0.5) / 2 - 0.5), clamped
    ys = np.clip((np.arange(6) + 0.5) / 2 - 0.5, 0, 2)
    xs = np.clip((np.arange(10) + 0.5) / 2 - 0.5, 0, 4)
    rows = np.array([np.interp(xs, np.arange(5), r) for r in src])
    want = np.array([np.interp(ys, np.arange(3), rows[:, j]) for j in range(10)]).T
    assert np.allclose(bil.numpy(), want, atol=1e-5)
    with pytest.raises(NodeError, match="unknown upscale method"):
        upscale_latent(lat, 2.0, "bislerp")


# -- LTX preprocess -----------------------------------------------------------------------------------
def test_ltx_preprocess_is_one_h264_round_trip():
    from nodes.generate.preprocess import video_compress
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 40, (33, 47, 3)), 0, 255).astype(np.uint8)
    assert video_compress(img, 0) is img
    out = video_compress(img, 35)
    assert out.shape == img.shape and out.dtype == np.uint8
    mse = float(((out.astype(float) - img) ** 2).mean())
    psnr = 10 * math.log10(255 ** 2 / mse)
    assert 15 < psnr < 40                                     # visibly compressed, still the same picture
    assert np.array_equal(out, video_compress(img, 35))       # deterministic
    lighter = video_compress(img, 10)
    assert ((lighter.astype(float) - img) ** 2).mean() < mse  # lower CRF, closer to the original


# -- prompt weighting as ComfyUI computes it ---------------------------------------------------------------
def test_weigh_from_empty_moves_weighted_tokens_away_from_the_empty_prompt():
    from nodes.generate.text import weigh_from_empty
    e = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    z = torch.tensor([[0.5, 0.0], [1.0, 1.0], [0.0, 0.0]])
    out = weigh_from_empty(e, z, torch.tensor([1.0, 1.5]))
    assert torch.allclose(out, torch.tensor([[1.0, 2.0], [4.0, -2.0], [0.5, 0.5]]))


# -- a frame of a clip as an image (ComfyUI's IMAGE batch feeding an image input) ---------------------------
def test_video_frame_and_its_insertion_on_import():
    import json
    from pathlib import Path
    from app.comfyui import import_data
    from graph_engine import Clip
    from nodes.video import nodes as video_nodes
    from node_call import Nodes
    frames = np.stack([np.full((4, 6, 3), i * 40, np.uint8) for i in range(5)])
    clip = Clip.from_array(frames, fps=8.0)
    call = Nodes(video_nodes)
    assert np.array_equal(call.frame(None, clip), frames[0])
    assert np.array_equal(call.frame(None, clip, index=-1), frames[4])
    with pytest.raises(NodeError, match="outside the clip's 5 frames"):
        call.frame(None, clip, index=5)
    wf = json.loads((Path(__file__).parent / "data" / "comfyui" / "svd_txt2img2vid.json").read_text())
    g = import_data(wf).graph
    assert g.inputs["svd_img2vid_conditioning_12"]["first"] == ("vae_decode_20_frame", "image")
    assert g.inputs["vae_decode_20_frame"]["video"] == ("vae_decode_20", "video")
