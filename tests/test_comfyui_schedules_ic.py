"""ComfyUI's SDTurboScheduler (sdxlturbo_example's one missing node) and GetICLoRAParameters, checked against
ComfyUI's published code written out here."""
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DATA = ROOT / "tests" / "data" / "comfyui"


def _comfy_turbo_sigmas(steps, denoise):
    """comfy_extras/nodes_custom_sampler.py SDTurboScheduler.get_sigmas on ComfyUI's ModelSamplingDiscrete (SD's
    and SDXL's: make_beta_schedule "linear" 0.00085..0.012, its sigmas kept in float32, sigma(t) interpolated in
    log), as published."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - torch.tensor(betas.numpy()), dim=0)
    log_sigmas = (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).float().log()

    def sigma(timestep):
        t = torch.clamp(timestep.float().to(log_sigmas.device), min=0, max=(len(log_sigmas) - 1))
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * log_sigmas[low_idx] + w * log_sigmas[high_idx]).exp()
    start_step = 10 - int(10 * denoise)
    timesteps = torch.flip(torch.arange(1, 11) * 100 - 1, (0,))[start_step:start_step + steps]
    return torch.cat([sigma(timesteps), torch.zeros(1)])


def _sample_sigmas(result):
    from nodes.generate.sampling import manual_sigmas
    sample = next(n for n in result.graph.nodes.values() if n.type == "generate.sample")
    return manual_sigmas(sample.params["sigmas"])


def test_sd_turbo_scheduler_writes_comfyui_levels_out():
    """sdxlturbo_example (ComfyUI's template: SamplerCustom on SDTurboScheduler, 1 step) was blocked on
    SDTurboScheduler. It becomes sample's sigmas, ComfyUI's levels: the noisiest of SD's table (diffusers'
    EulerAncestralDiscreteScheduler at 1 trailing step, as SDXL-Turbo's card runs it, starts there too); 3 steps at
    denoise 0.5 start five tenths down, one level per 100 timesteps."""
    from diffusers import EulerAncestralDiscreteScheduler
    from app.comfyui import import_data
    wf = json.loads((DATA / "templates" / "sdxlturbo_example.json").read_text(encoding="utf-8"))
    res = import_data(wf)
    assert {e.class_type: e.status for e in res.report.entries.values()}["SDTurboScheduler"] == "exact"
    got = _sample_sigmas(res)
    torch.testing.assert_close(got.float(), _comfy_turbo_sigmas(1, 1.0), rtol=1e-6, atol=0)
    euler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                            timestep_spacing="trailing")
    euler.set_timesteps(1)
    assert abs(float(got[0]) - float(euler.sigmas[0])) < 1e-4 * float(euler.sigmas[0])
    scheduler = next(n for n in wf["nodes"] if n["type"] == "SDTurboScheduler")
    scheduler["widgets_values"] = [3, 0.5]
    got = _sample_sigmas(import_data(wf))
    assert len(got) == 4
    torch.testing.assert_close(got.float(), _comfy_turbo_sigmas(3, 0.5), rtol=1e-6, atol=0)


def _comfy_iclora_factor(metadata):
    """comfy_extras/nodes_lt.py GetICLoRAParameters.execute on a LoRA's metadata, as published."""
    factor = 1
    if metadata:
        try:
            factor = max(1, round(float(next(v for k, v in metadata.items() if k.endswith("reference_downscale_factor")))))
        except (StopIteration, TypeError, ValueError):
            factor = 1
    return factor


def test_get_iclora_parameters_reads_the_factor_comfyui_reads(tmp_path, monkeypatch):
    """template_ltx2_3_ic_lora_ingredients was blocked on GetICLoRAParameters. It reads the IC-LoRA's
    reference_downscale_factor from the file's metadata as ComfyUI's node does, and LTXVAddGuide is exact where that
    is 1 (the file's metadata without one, or 1) and says what differs where it is above 1 (ComfyUI then reads the
    guide smaller, spread over the video) or where the file is not there to read."""
    from safetensors.torch import save_file
    from app.comfyui import import_data
    wf = json.loads((DATA / "templates" / "template_ltx2_3_ic_lora_ingredients.json").read_text(encoding="utf-8"))
    loras = tmp_path / "loras"
    loras.mkdir()
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))

    def guide_notes():
        res = import_data(wf)
        status = {e.class_type: e.status for e in res.report.entries.values()}
        assert status["GetICLoRAParameters"] == "exact", status
        guide = next(e for e in res.report.entries.values() if e.class_type == "LTXVAddGuide")
        return [n for n in guide.notes if n.startswith("iclora_parameters")]
    assert "not in the model folders" in guide_notes()[0]
    for metadata in ({}, {"format": "pt"}, {"reference_downscale_factor": "1"}, {"ss_reference_downscale_factor": "2"},
                     {"reference_downscale_factor": "3.4"}, {"reference_downscale_factor": "x"}):
        save_file({"a.lora_A.weight": torch.zeros(1, 1)}, str(loras / "ltx-2.3-22b-ic-lora-ingredients-0.9.safetensors"),
                  metadata=metadata or None)
        want = _comfy_iclora_factor(metadata)
        got = guide_notes()
        if want == 1:
            assert got == [], (metadata, got)
        else:
            assert len(got) == 1 and f"reference_downscale_factor {want}, so ComfyUI reads the guide at 1/{want}" \
                in got[0], (metadata, got)
