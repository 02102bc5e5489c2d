import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nodes.consistency.freeinit import (freeinit, iteration_steps, low_pass_filter, mix_frequencies, renoise_diffusion,
                                        renoise_flow)

DIMS = (-3, -2, -1)


def test_butterworth_and_gaussian_filters():
    bw = low_pass_filter("butterworth", 8, 16, 16, d_s=0.25, d_t=0.5)
    assert bw.shape == (8, 16, 16) and float(bw[0, 0, 0]) == 1.0
    # Cut-off (value 1/2) at the stop frequencies: spatial 0.25 of Nyquist = bin 2 of 16,
    # temporal 0.5 of Nyquist = bin 2 of 8.
    assert float(bw[0, 2, 0]) == pytest.approx(0.5) and float(bw[0, 0, 2]) == pytest.approx(0.5)
    assert float(bw[2, 0, 0]) == pytest.approx(0.5)
    assert float(bw[0, 8, 8]) < 1e-4 and float(bw[4, 0, 0]) < 0.01
    # Symmetric in +f / -f, so mixing real signals gives a real result.
    assert torch.equal(bw[0, 1:, 0], bw[0, 1:, 0].flip(0))
    g = low_pass_filter("gaussian", 8, 16, 16)
    assert float(g[0, 0, 0]) == 1.0 and float(g[0, 2, 0]) == pytest.approx(torch.exp(torch.tensor(-0.5)).item())
    assert torch.all(g[0, :9, 0][1:] < g[0, :9, 0][:-1])
    assert not low_pass_filter("gaussian", 4, 8, 8, d_s=0).any()
    with pytest.raises(ValueError, match="butterworth, gaussian"):
        low_pass_filter("box", 4, 8, 8)


@pytest.mark.parametrize("t, h, w", [(7, 9, 11), (8, 6, 10)])
def test_the_mix_equals_numpys_two_spectra_on_odd_and_even_sizes(t, h, w):
    # The mix is computed as high + IFFT(FFT(low - high) * LPF) on a half spectrum; checked against the
    # published form, both full spectra mixed, in float64 NumPy.
    g = torch.Generator().manual_seed(1)
    low, high = torch.randn(2, 3, t, h, w, generator=g), torch.randn(2, 3, t, h, w, generator=g)
    lpf = low_pass_filter("gaussian", t, h, w, d_s=0.4, d_t=0.3)
    ax = (-3, -2, -1)
    want = np.fft.ifftn(np.fft.fftn(low.double().numpy(), axes=ax) * lpf.numpy()
                        + np.fft.fftn(high.double().numpy(), axes=ax) * (1 - lpf.numpy()), axes=ax)
    assert np.abs(want.imag).max() < 1e-9
    np.testing.assert_allclose(mix_frequencies(low, high, lpf).numpy(), want.real, atol=2e-5)


def test_the_mix_needs_a_few_latents_of_memory_not_twenty():
    # Two complex128 spectra and their products took about 21 latents beside the inputs (684 MB for a 31 MB
    # latent); a fresh process's high-water mark tells how much the mix itself touched.
    code = """
import resource, torch
from nodes.consistency.freeinit import low_pass_filter, mix_frequencies
shape = (1, 4, 64, 128, 128)
g = torch.Generator().manual_seed(0)
low, high = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
lpf = low_pass_filter("butterworth", *shape[-3:])
torch.fft.rfftn(torch.zeros(4, 4, 4))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
mix_frequencies(low, high, lpf)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / (low.numel() * 4))
"""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 6


def test_low_frequencies_come_from_noised_z0_high_from_fresh_noise():
    g = torch.Generator().manual_seed(0)
    low = torch.randn(1, 4, 8, 16, 16, generator=g)
    high = torch.randn(1, 4, 8, 16, 16, generator=g)
    lpf = low_pass_filter("butterworth", 8, 16, 16)
    out = mix_frequencies(low, high, lpf)
    assert out.dtype == torch.float32
    f_out, f_lo, f_hi = (torch.fft.fftn(x.double(), dim=DIMS) for x in (out, low, high))
    torch.testing.assert_close(f_out, f_lo * lpf + f_hi * (1 - lpf), rtol=1e-4, atol=1e-4)
    pass_band, stop_band = lpf > 0.99, lpf < 0.01
    assert pass_band.sum() > 4 and stop_band.sum() > 100

    def rel_err(a, b):
        return float((a - b).abs().norm() / b.abs().norm())

    assert rel_err(f_out[..., pass_band], f_lo[..., pass_band]) < 0.02
    assert rel_err(f_out[..., stop_band], f_hi[..., stop_band]) < 0.02
    # ... and not the other way round.
    assert rel_err(f_out[..., pass_band], f_hi[..., pass_band]) > 1
    assert rel_err(f_out[..., stop_band], f_lo[..., stop_band]) > 1


def test_iteration_steps_fast_mode():
    assert iteration_steps(20, 3, False) == [20, 20, 20]
    # FreeInit's coarse-to-fine rule, int(steps / iterations * (i + 1)) (it rounded: 7, 13, 20).
    assert iteration_steps(20, 3, True) == [int(20 / 3 * (i + 1)) for i in range(3)] == [6, 13, 20]
    assert iteration_steps(25, 3, True) == [8, 16, 25]
    assert iteration_steps(2, 4, True) == [1, 1, 1, 2]


def test_driver_renoises_and_mixes_as_defined():
    shape = (1, 2, 8, 16, 16)
    init = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    wave = torch.cos(torch.arange(16) * 2 * torch.pi / 16)  # the lowest spatial frequency
    z0 = (3 * wave).expand(shape).contiguous()
    calls = []

    def run_sampling(noise, steps):
        calls.append((noise.clone(), steps))
        return z0

    out = freeinit(run_sampling, init, 10, 3, torch.Generator().manual_seed(5), renoise_sigma=0.9, fast=True)
    assert out is z0 and [s for _, s in calls] == [3, 6, 10]
    assert torch.equal(calls[0][0], init)
    # Pass 2 starts from exactly the FreeInit mix, rebuilt independently here.
    gen = torch.Generator().manual_seed(5)
    lpf = low_pass_filter("butterworth", 8, 16, 16)
    want = mix_frequencies(renoise_flow(z0, init, 0.9), torch.randn(shape, generator=gen), lpf)
    torch.testing.assert_close(calls[1][0], want)
    # Its low-frequency band carries z0's wave at (1 - sigma) * 3 = 0.3; the initial noise had none.

    def wave_amplitude(x):
        return float((x * wave).sum() / (wave ** 2).expand(shape).sum())

    assert wave_amplitude(calls[1][0]) == pytest.approx(0.3, abs=0.07)
    assert abs(wave_amplitude(init)) < 0.07
    # Fresh noise differs per iteration.
    assert not torch.equal(calls[1][0], calls[2][0])


def test_driver_is_deterministic_per_generator_seed():
    init = torch.randn(1, 1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    seen = []

    def run(noise, steps):
        seen.append(noise)
        return noise * 0.5

    a = freeinit(run, init, 4, 2, torch.Generator().manual_seed(3))
    b = freeinit(run, init, 4, 2, torch.Generator().manual_seed(3))
    c = freeinit(run, init, 4, 2, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="re-noise level"):
        freeinit(run, init, 4, 2, torch.Generator(), renoise_sigma=1.5)


def test_renoise_diffusion_matches_ddpm_at_the_last_timestep():
    z0, noise = torch.full((4,), 2.0), torch.full((4,), -1.0)
    sigma = 14.6  # SD 1.5's largest sigma: sqrt(alpha_bar_T) = 1/sqrt(1+sigma^2) ~= 0.068
    a = 1 / (1 + sigma ** 2)
    torch.testing.assert_close(renoise_diffusion(z0, noise, sigma), a ** 0.5 * z0 + (1 - a) ** 0.5 * noise)
    torch.testing.assert_close(renoise_flow(z0, noise, 0.25), 0.75 * z0 + 0.25 * noise)


def test_freeinit_node_wraps_the_sampling_run(tmp_path):
    from test_context_windows import build_tiny_mini, mini_graph, run_latent
    folder = build_tiny_mini(tmp_path)
    wf = mini_graph(folder, frames=8, noise="noise.independent", noise_params="{seed: 2}",
                    wrapper="noise.freeinit", wrapper_params="{iterations: 1}", steps=4)
    single = run_latent(wf)
    wf.set("wrap.iterations", 2)
    wf.set("wrap.fast", True)
    progress = []
    twice = run_latent(wf, lambda e: progress.append((e["done"], e["total"])) if e["event"] == "node_progress"
                       and e["node"] == "sample" else None)
    # Fast mode: a 2-step pass, then the full 4 steps from the re-initialised noise, counted as 6 steps in all
    # (each pass restarted the count: 1/2, 2/2, 1/4 ... 4/4, so the bar read 100% after the first).
    assert progress == [(i, 6) for i in range(1, 7)]
    assert not torch.equal(single, twice)
    assert torch.equal(twice, run_latent(wf))
    # One iteration is exactly a plain sampling run.
    plain = mini_graph(folder, frames=8, noise="noise.independent", noise_params="{seed: 2}",
                       wrapper="context.windows", wrapper_params="{length: 100}", steps=4)
    assert torch.equal(single, run_latent(plain))


def test_freeinit_refuses_what_it_cannot_do(tmp_path):
    """A stop frequency of 0 keeps nothing of a pass (every later pass started from fresh noise, at full cost), and a
    run with denoise below 1 starts from the input latent, which FreeInit's re-noised start does not fit (passes after
    the first started with too little noise); both ran without a word."""
    from graph_engine.api import Session
    from graph_engine.errors import WorkflowError
    from test_context_windows import build_tiny_mini, mini_graph
    folder = build_tiny_mini(tmp_path)
    wf = mini_graph(folder, frames=8, noise="noise.independent", noise_params="{seed: 2}",
                    wrapper="noise.freeinit", wrapper_params="{iterations: 2}", steps=2)
    wf.set("wrap.spatial_stop", 0.0)
    with pytest.raises(WorkflowError) as e:
        Session(use_disk=False).run(wf, use_cache=False)
    assert [(p.node, p.message) for p in e.value.problems] == [
        ("wrap", "spatial_stop: 0 keeps nothing of the first pass (the low-pass filter is zero everywhere), so each "
                 "pass would start from fresh noise and cost a full sampling run for nothing; set it above 0 "
                 "(FreeInit's default is 0.25) or remove noise.freeinit")]
    wf.set("wrap.spatial_stop", 0.25)
    wf.set("sample.denoise", 0.6)
    res = Session(use_disk=False).run(wf, use_cache=False)
    assert not res.ok and res.failed["sample"] == (
        "FreeInit (noise.freeinit) re-initialises the noise of a run that starts from pure noise; denoise 0.6 starts "
        "from the input latent, which FreeInit's passes cannot: set denoise to 1 or remove noise.freeinit")
    wf.set("sample.denoise", 1.0)
    assert Session(use_disk=False).run(wf, use_cache=False).ok


def test_freeinit_progress_in_context_windows_counts_every_pass(tmp_path):
    """With context windows each window moves the bar within a step; in a fast pass the windows reported steps of the
    full schedule against its length (0.33/4, 0.67/4, 1/2, 2.33/4, 2.67/4, 2/2, then 0.33/4 again). Now the pass's own
    steps, after the passes before it, against the run's total."""
    from test_context_windows import build_tiny_mini, mini_graph, run_latent
    folder = build_tiny_mini(tmp_path)
    wf = mini_graph(folder, frames=24, noise="noise.independent", noise_params="{seed: 2}",
                    wrapper="noise.freeinit", wrapper_params="{iterations: 2, fast: true}", steps=4)
    wf.graph.add_node("context.windows", "windows", {"length": 12, "overlap": 4})
    wf.graph.connect("load", "model", "windows", "model")
    wf.graph.connect("windows", "model", "wrap", "model")
    progress = []
    run_latent(wf, lambda e: progress.append((e["done"], e["total"])) if e["event"] == "node_progress"
               and e["node"] == "sample" else None)
    # 24 frames in static windows of 12 overlapping by 4: 3 windows a step; 2 + 4 steps.
    assert progress == [(round(k / 3, 2) if k % 3 else k // 3, 6) for k in range(1, 19)]


@pytest.mark.parametrize("kind", ["butterworth", "gaussian"])
def test_filters_equal_freeinit_published_masks(kind):
    """FreeInit's masks as published, per element on the fftshift-ed grid: d^2 = ((d_s/d_t)(2t/T-1))^2 + (2h/H-1)^2
    + (2w/W-1)^2, butterworth 1/(1 + (d^2/d_s^2)^n), gaussian exp(-d^2/(2 d_s^2)); Kinograph's are laid out unshifted
    (as torch.fft.fftn's output), so they equal the published ones ifftshift-ed (even sizes, where the published
    grid's zero is the DC bin)."""
    import math
    t, h, w, d_s, d_t, n = 4, 8, 6, 0.25, 0.5, 4
    ref = torch.zeros(t, h, w, dtype=torch.float64)
    for i in range(t):
        for j in range(h):
            for k in range(w):
                d2 = ((d_s / d_t) * (2 * i / t - 1)) ** 2 + (2 * j / h - 1) ** 2 + (2 * k / w - 1) ** 2
                ref[i, j, k] = 1 / (1 + (d2 / d_s ** 2) ** n) if kind == "butterworth" else math.exp(-d2 / (2 * d_s ** 2))
    got = low_pass_filter(kind, t, h, w, d_s=d_s, d_t=d_t, order=n)
    torch.testing.assert_close(got, torch.fft.ifftshift(ref), rtol=1e-12, atol=1e-15)
