"""reviewer36d: ComfyUI's samplers in generate.sample, against ComfyUI's KSampler written out here (comfy/samplers.py,
GPL-3.0; shares no code with nodes/generate)."""
import json
import os
from pathlib import Path

import pytest
import torch
from test_comfy_samplers import RefCONST, ref_normal_scheduler
from test_stable_audio import tiny as stable_audio_tiny     # noqa: F401 (a fixture)

DATA = Path(__file__).parent / "data" / "comfyui"


# -- ComfyUI, written out (comfy/samplers.py; ModelSamplingDiscreteFlow and normal_scheduler: test_comfy_samplers) -----
def ref_simple_scheduler(model_sampling, steps):
    s = model_sampling
    sigs = []
    ss = len(s.sigmas) / steps
    for x in range(steps):
        sigs += [float(s.sigmas[-(1 + int(x * ss))])]
    sigs += [0.0]
    return torch.FloatTensor(sigs)


DISCARD_PENULTIMATE_SIGMA_SAMPLERS = set(('dpm_2', 'dpm_2_ancestral', 'uni_pc', 'uni_pc_bh2'))


def ref_ksampler_sigmas(model_sampling, scheduler, sampler, steps, denoise=1.0):
    """KSampler.calculate_sigmas and set_steps."""
    def calculate_sigmas(steps):
        discard_penultimate_sigma = False
        if sampler in DISCARD_PENULTIMATE_SIGMA_SAMPLERS:
            steps += 1
            discard_penultimate_sigma = True
        fn = {"simple": ref_simple_scheduler, "normal": ref_normal_scheduler}[scheduler]
        sigmas = fn(model_sampling, steps)
        if discard_penultimate_sigma:
            sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
        return sigmas
    if denoise is None or denoise > 0.9999:
        return calculate_sigmas(steps)
    new_steps = int(steps / denoise)
    return calculate_sigmas(new_steps)[-(steps + 1):]


# -- the runs ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    from tiny_models import build_all
    from nodes.generate.model_manager import ModelManager
    root = build_all(tmp_path_factory.mktemp("tiny"), families=("wan",))
    mm = ModelManager(max_loaded=2)
    h = mm.load("wan", str(root / "wan"))
    yield h, mm.components(h)
    torch.set_num_threads(threads)


def _levels(wan, monkeypatch, sampler, scheduler, steps, denoise=1.0):
    """The levels run_sampling hands `sampler` on the tiny Wan (the sampler itself spied out)."""
    from nodes.generate import sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    h, parts = wan
    seen = []

    def spy(model_fn, x, sigmas, callback=None, **kw):
        seen.append(sigmas.double().clone())
        return x
    monkeypatch.setitem(sampling.SAMPLERS, sampler, spy)
    pos = encode_prompt(parts["text_encoder"], "a cat")
    lat = empty_latent(parts["vae"], 1, 64, 64, 8.0)
    sampling.run_sampling(h, pos, None, lat, steps=steps, cfg=1.0, sampler=sampler, scheduler=scheduler,
                          denoise=denoise, seed=3)
    return seen[0]


@pytest.mark.parametrize("sampler", ["uni_pc", "uni_pc_bh2", "dpm_2", "euler"])
@pytest.mark.parametrize("scheduler,steps,denoise", [("simple", 6, 1.0), ("normal", 5, 1.0), ("simple", 8, 0.5)])
def test_sample_takes_comfyuis_ksampler_levels(wan, monkeypatch, sampler, scheduler, steps, denoise):
    """ComfyUI's KSampler schedules uni_pc, uni_pc_bh2 and dpm_2 on steps + 1 levels and drops the next-to-last
    (KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS): Wan's templates (uni_pc, 22 of them) sample those levels. (steps 8,
    denoise 0.5 is how the import writes KSampler's steps 4 at denoise 0.5.)"""
    from nodes.generate.adapters import get_adapter
    shift = get_adapter("wan").flow_shift(wan[0].pipe)
    got = _levels(wan, monkeypatch, sampler, scheduler, steps, denoise)
    comfy_steps = round(steps * denoise)
    want = ref_ksampler_sigmas(RefCONST(shift), scheduler, sampler, comfy_steps, denoise).double()
    assert got.shape == want.shape, (got, want)
    assert float((got - want).abs().max()) < 1e-5, (got, want)


def _sample_params(wf):
    from app.comfyui import import_data
    result = import_data(wf)
    import yaml
    doc = yaml.safe_load(result.yaml)
    nodes = doc["nodes"]
    return next(n for n in (nodes.values() if isinstance(nodes, dict) else nodes)
                if n.get("type") == "generate.sample").get("params", {})


def test_samplercustom_schedules_without_ksamplers_drop():
    """SamplerCustomAdvanced with BasicScheduler takes the scheduler's levels as they are (only KSampler drops the
    next-to-last for uni_pc): the import says so to sample; KSampler's import keeps sample's KSampler levels."""
    wf = json.loads((DATA / "hunyuan_t2v.json").read_text())
    next(n for n in wf["nodes"] if n["type"] == "KSamplerSelect")["widgets_values"] = ["uni_pc"]
    assert _sample_params(wf).get("ksampler_levels") is False
    wf = json.loads((DATA / "wan_t2v.json").read_text())
    next(n for n in wf["nodes"] if n["type"] == "KSampler")["widgets_values"][4] = "uni_pc"
    assert _sample_params(wf).get("ksampler_levels", True) is True


def test_no_node_lists_a_choice_twice():
    """generate.stable_audio3 listed lcm twice once ComfyUI's lcm joined the picture samplers it adds lcm to (the
    editor's menu showed it twice)."""
    from graph_engine.registry import default_registry
    registry = default_registry()
    twice = [(name, param) for name in registry for param, spec in registry.get(name).params.items()
             if spec.choices and len(set(spec.choices)) != len(spec.choices)]
    assert twice == []


@pytest.mark.usefixtures("stable_audio_tiny")
@pytest.mark.parametrize("sampler", ["euler_ancestral", "uni_pc"])
def test_stable_audio_takes_ksamplers_levels_and_step_noise(monkeypatch, sampler):
    """generate.stable_audio runs 'KSampler's sampler': a stochastic one re-noises from ComfyUI's default_noise_sampler
    (its own generator, seed + 1 on the CPU), not the starting noise's generator drawn on; uni_pc on KSampler's levels.
    """
    import math
    from nodes.generate import samplers
    from nodes.generate import stable_audio as sa
    from nodes.generate.model_manager import ModelManager
    from test_comfy_samplers import ref_default_noise_sampler
    from test_stable_audio import CKPT, SECONDS
    seen = {}

    def spy(name):
        def run(model_fn, x, sigmas, callback=None, noise_sampler=None, **kw):
            seen.update(levels=sigmas.double(), draws=[noise_sampler(i) for i in range(2)], x=x)
            return x
        return run
    monkeypatch.setattr(samplers, "latent_sampler", spy)
    model = sa.load(ModelManager(), CKPT, "t5-base.safetensors", "cpu")
    sa.generate(model, "rain on a tin roof", "", SECONDS, 4, 4.0, sampler, "exponential", 7)
    steps = 5 if sampler == "uni_pc" else 4     # KSampler.calculate_sigmas, then its next-to-last dropped
    want = torch.linspace(math.log(500.0), math.log(0.03), steps).exp()      # get_sigmas_exponential
    want = torch.cat([want, want.new_zeros([1])])
    if sampler == "uni_pc":
        want = torch.cat([want[:-2], want[-1:]])
    assert float((seen["levels"] - want.double()).abs().max()) < 1e-3
    ref = ref_default_noise_sampler(torch.zeros(seen["x"].shape), 7)
    assert all(torch.equal(d, ref(None, None)) for d in seen["draws"])
