"""Noise held at a scale other than unit (HiDream-O1's noise_scale, 8 by default: the sampler holds
x = (1 - sigma) x0 + sigma * 8 n) reaches every place noise is drawn as ComfyUI's does, where the model's
model_sampling multiplies unit noise by its noise_scale in noise_scaling:

- lcm's noise_clip_std clamps the fresh noise to N of its own standard deviations, so clamping the scaled noise is
  clamping the unit noise and scaling it (ComfyUI's sample_lcm: clip, s_noise, then model_sampling.noise_scaling);
- FreeInit's fresh high frequencies are drawn at the scale the run's noise is held at (adapter.run_noise), as the
  re-noised low band is: at unit scale they were 8 times too weak on HiDream-O1."""
import torch


def comfy_lcm(denoise, x, sigmas, unit_noise, *, noise_scale, s_noise, s_noise_end, noise_clip_std):
    """ComfyUI's comfy/k_diffusion/sampling.py sample_lcm, written out, on a flow model whose model_sampling's
    noise_scaling is sigma * noise * noise_scale + (1 - sigma) * latent."""
    n_steps = max(1, len(sigmas) - 1)
    for i in range(n_steps):
        x = denoise(x, sigmas[i])
        if sigmas[i + 1] > 0:
            noise = unit_noise(i)
            if noise_clip_std > 0:
                clip_val = noise_clip_std * noise.std()
                noise = noise.clamp(min=-clip_val, max=clip_val)
            t = (i / (n_steps - 1)) if n_steps > 1 else 0.0
            noise = noise * (s_noise + (s_noise_end - s_noise) * t)
            x = sigmas[i + 1] * noise * noise_scale + (1 - sigmas[i + 1]) * x
    return x


def test_lcm_noise_clip_on_scaled_noise_is_comfyuis():
    from nodes.generate.samplers import sample_lcm
    draws = [torch.randn(1, 3, 1, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(4)]

    def denoise(x, sigma):
        return 0.5 * x + 0.1

    sigmas = torch.tensor([1.0, 0.8, 0.5, 0.2, 0.0])
    x = 8.0 * torch.randn(1, 3, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    want = comfy_lcm(denoise, x, sigmas, lambda i: draws[i], noise_scale=8.0, s_noise=1.2, s_noise_end=0.6,
                     noise_clip_std=0.5)
    got = sample_lcm(denoise, x, sigmas, flow=True, noise_sampler=lambda i: 8.0 * draws[i], s_noise=1.2,
                     s_noise_end=0.6, noise_clip=0.5)
    torch.testing.assert_close(got, want)
    unclipped = sample_lcm(denoise, x, sigmas, flow=True, noise_sampler=lambda i: 8.0 * draws[i], s_noise=1.2,
                           s_noise_end=0.6)
    assert (got - unclipped).abs().max() > 0.1     # the clip bites: the check is not vacuous


def test_freeinit_fresh_noise_is_drawn_at_the_runs_scale():
    """Pass 2 starts from the low band of z0 re-noised with the run's (8 times) noise and the high band of fresh
    noise at the same 8 times: with z0 zero, the whole mix is noise of about 8 standard deviations."""
    from types import SimpleNamespace
    from nodes.consistency.freeinit import low_pass_filter, mix_frequencies, renoise_flow
    from nodes.consistency.wrappers import FreeInitWrapper
    shape = (1, 2, 4, 16, 16)
    start = 8.0 * torch.randn(shape, generator=torch.Generator().manual_seed(1))
    seen = []

    def run(noise, n):
        seen.append(noise.clone())
        return torch.zeros(shape)

    info = SimpleNamespace(sigmas=torch.linspace(1, 0, 5), flow=True, generator=torch.Generator().manual_seed(5),
                           run_noise=lambda n: 8.0 * n)
    FreeInitWrapper(iterations=2)(run, start, info)
    fresh = 8.0 * torch.randn(shape, generator=torch.Generator().manual_seed(5))
    want = mix_frequencies(renoise_flow(torch.zeros(shape), start, 0.94), fresh, low_pass_filter("butterworth", 4, 16, 16))
    torch.testing.assert_close(seen[1], want)
    assert 7.0 < float(seen[1].std()) < 9.0


def test_freeinit_moved_its_version_and_keeps_its_params():
    from graph_engine.api import load_workflow
    wf = load_workflow(text="kinograph: 1\nnodes:\n  fi: {type: noise.freeinit, version: 1, params: {iterations: 2}}\n",
                       check=False)
    assert wf.graph.nodes["fi"].version == 2 and wf.graph.nodes["fi"].params == {"iterations": 2}
