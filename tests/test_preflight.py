"""Frame counts, sizes and window overlaps a model cannot take are refused while the workflow is
validated (kinograph validate, and every run before its first node), not after the loader has spent
minutes reading the checkpoint."""
from pathlib import Path

import pytest

from graph_engine.errors import WorkflowError
from tests.cli_run import cli

ROOT = Path(__file__).resolve().parents[1]

WAN = """kinograph: 1
nodes:
  load: {type: load.wan, params: {path: models/wan}}
  prompt: {type: encode.text, inputs: {text_encoder: load.text_encoder}, params: {text: a fox}}
  latent:
    type: latent.empty
    inputs: {vae: load.vae}
    params: {frames: %d, width: %d, height: %d}
  sample:
    type: generate.sample
    inputs: {model: load.model, positive: prompt.positive, latent: latent.latent}
    params: {steps: 2, cfg: 1.0}
"""


def _problems(text, tmp_path, name="wf.yaml"):
    from graph_engine.api import load_workflow
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(WorkflowError) as e:
        load_workflow(path)
    return [str(p) for p in e.value.problems]


def test_a_frame_count_and_size_the_model_cannot_take_stop_validation(tmp_path):
    problems = _problems(WAN % (10, 60, 64), tmp_path)
    assert problems == [
        f"{tmp_path / 'wf.yaml'}:8: node latent: frames: Wan 2.1/2.2 takes 4n+1 frames (its VAE compresses time 4x); "
        "10 is not one of them. The nearest valid frame counts are 9 or 13.",
        f"{tmp_path / 'wf.yaml'}:8: node latent: width: Wan 2.1/2.2 needs width and height divisible by 16; 60x64 "
        "is not. Try 64x64."]


def test_a_run_refuses_them_before_the_loader_runs(tmp_path):
    """models/wan does not exist: had the loader run, the run would have failed there instead."""
    from graph_engine.api import Session, load_workflow
    path = tmp_path / "wf.yaml"
    path.write_text(WAN % (9, 64, 64))
    wf = load_workflow(path)
    with pytest.raises(WorkflowError) as e:
        Session(device="cpu").run(wf, overrides=["latent.height=72"], use_cache=False)
    assert [p.message for p in e.value.problems] == [
        "height: Wan 2.1/2.2 needs width and height divisible by 16; 64x72 is not. Try 64x64."]


def _vae_file(path: Path, latent_channels: int) -> None:
    """The two tensors that tell a Wan VAE file's version (ComfyUI's layout), at no real size."""
    import torch
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"decoder.middle.0.residual.0.gamma": torch.zeros(1),
               "conv1.weight": torch.zeros(2 * latent_channels, 1, 1, 1, 1)}, str(path))


SPLIT = """kinograph: 1
nodes:
  vae: {type: load.vae, params: {name: %s}}
  latent: {type: latent.empty, inputs: {vae: vae.vae}, params: {frames: 41, width: 1280, height: 720}}
"""


def test_the_vae_file_tells_its_rules(tmp_path, monkeypatch):
    """ComfyUI's Wan 2.2 VAE packs 16 pixels per latent pixel: 1280x720 fits Wan 2.1 but not 2.2."""
    models = tmp_path / "models"
    _vae_file(models / "vae" / "wan2.2_vae.safetensors", 48)
    _vae_file(models / "vae" / "wan_2.1_vae.safetensors", 16)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    from graph_engine.api import load_workflow
    problems = _problems(SPLIT % "wan2.2_vae.safetensors", tmp_path, "w22.yaml")
    assert len(problems) == 1 and problems[0].endswith(
        "node latent: height: Wan 2.1/2.2 needs width and height divisible by 32; 1280x720 is not. Try 1280x704.")
    (tmp_path / "w21.yaml").write_text(SPLIT % "wan_2.1_vae.safetensors")
    load_workflow(tmp_path / "w21.yaml")
    # A VAE file that is not there yet: the loader names it when the run gets there.
    (tmp_path / "none.yaml").write_text(SPLIT.replace("frames: 41", "frames: 40") % "missing.safetensors")
    load_workflow(tmp_path / "none.yaml")


LONG = """kinograph: 1
nodes:
  load: {type: load.mini, params: {path: ""}}
  latent: {type: latent.empty, inputs: {vae: load.vae}, params: {frames: 48, width: 48, height: 48}}
  noise: {type: noise.freenoise, inputs: {latent: latent.latent}, params: {length: 16, overlap: %d}}
  windows: {type: context.windows, inputs: {model: load.model}, params: {length: 16, overlap: %d}}
"""


def test_a_window_overlap_as_long_as_the_window_is_refused(tmp_path):
    """context.windows failed only once the model had loaded; noise.freenoise clamped it without a word."""
    problems = _problems(LONG % (16, 20), tmp_path)
    assert [p.split(": ", 2)[1:] for p in problems] == [
        ["node noise", "overlap: 16 is not less than length 16: a window would repeat the one before it; set "
                       "overlap below length (a quarter of it, 4, is usual)"],
        ["node windows", "overlap: 20 is not less than length 16: a window would repeat the one before it; set "
                         "overlap below length (a quarter of it, 4, is usual)"]]
    from graph_engine.api import load_workflow
    (tmp_path / "ok.yaml").write_text(LONG % (15, 4))
    load_workflow(tmp_path / "ok.yaml")


def test_validate_takes_the_runs_overrides(tmp_path):
    """`kinograph validate` had no --set: the frame count a run would be given could not be checked."""
    wf = tmp_path / "mini.yaml"
    wf.write_text(LONG % (4, 4))

    def validate(*args):
        return cli("validate", wf, *args, cwd=ROOT)
    r = validate()
    assert r.returncode == 0, r.stderr
    r = validate("--set", "latent.width=40", "--set", "windows.overlap=16")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "node latent: width: kinograph-mini needs width and height divisible by 16; 40x48 is not." in r.stderr
    assert "node windows: overlap: 16 is not less than length 16" in r.stderr
    r = validate("--set", "latnt.width=40")
    assert r.returncode == 2 and "no node 'latnt'" in r.stderr and "did you mean 'latent'" in r.stderr


def test_guidance_without_a_negative_is_refused_before_the_load(tmp_path):
    """sample said 'cfg 5.0 needs a negative conditioning' only after the loader and the text encoder ran."""
    problems = _problems((WAN % (9, 64, 64)).replace("cfg: 1.0", "cfg: 0"), tmp_path)
    assert len(problems) == 1 and problems[0].endswith(
        "node sample: cfg: cfg 5.0 needs a negative conditioning: connect encode.text's negative output to "
        "sample's negative input (or set cfg to 1)")
    from graph_engine.api import load_workflow
    linked = (WAN % (9, 64, 64)).replace("cfg: 1.0", "cfg: 0").replace(
        "positive: prompt.positive,", "positive: prompt.positive, negative: prompt.negative,")
    (tmp_path / "linked.yaml").write_text(linked)
    load_workflow(tmp_path / "linked.yaml")


THROUGH = """kinograph: 1
nodes:
  vae: {type: load.vae, params: {name: wan2.2_vae.safetensors}}
  load: {type: load.wan, inputs: {vae: vae.vae}, params: {path: models/wan}}
  lora: {type: lora.image, inputs: {model: load.model}, params: {path: loras/x.safetensors}%s}
  windows: {type: context.windows, inputs: {model: lora.model}, params: {length: 81, overlap: 16}}
  prompt: {type: encode.text, inputs: {text_encoder: load.text_encoder}, params: {text: a fox}}
  latent: {type: latent.empty, inputs: {vae: load.vae}, params: {frames: 41, width: 1280, height: 720}}
  sample:
    type: generate.sample
    inputs: {model: windows.model, positive: prompt.positive, latent: latent.latent}
    params: {steps: 2, cfg: 0}
"""


def test_checks_look_through_nodes_that_pass_a_model_or_vae_on(tmp_path, monkeypatch):
    """Preflights saw only the node one link back: a Wan 2.2 VAE linked into load.wan was judged by Wan 2.1's
    size rule (1280x720 let through), and a model reaching sample through a LoRA and context windows was not
    checked at all (cfg without a negative failed after the loader had run). Nodes declare what they pass on
    (`passes=`), and bypassed nodes pass their input, so both reach the loader behind them."""
    models = tmp_path / "models"
    _vae_file(models / "vae" / "wan2.2_vae.safetensors", 48)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    want = ["node latent: height: Wan 2.1/2.2 needs width and height divisible by 32; 1280x720 is not. Try 1280x704.",
            "node sample: cfg: cfg 5.0 needs a negative conditioning: connect encode.text's negative output to "
            "sample's negative input (or set cfg to 1)"]
    for bypass in ("", ", bypass: true"):
        problems = _problems(THROUGH % bypass, tmp_path)
        assert [p.split(": ", 1)[1] for p in problems] == want


def test_a_pass_through_that_names_no_such_port_or_another_type_fails_at_declaration():
    from graph_engine import node
    from graph_engine.node_api import DeclarationError
    from graph_engine.types import LATENT, MODEL

    def f(ctx, model: MODEL, latent: LATENT) -> MODEL:
        """Probe."""
    with pytest.raises(DeclarationError, match=r"passes=\{'model': 'modle'\} names no such input"):
        node("probe.x", passes={"model": "modle"})(f)
    with pytest.raises(DeclarationError, match=r"output 'model' \(MODEL\) cannot pass input 'latent' \(LATENT\)"):
        node("probe.x", passes={"model": "latent"})(f)
