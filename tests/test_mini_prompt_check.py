"""validate's kinograph-mini word check (encode.text's preflight) refuses only what the run would refuse: a prompt
the encoder never reads, or one read by a model validate cannot see, stops nothing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "resources" / "models" / "kinograph-mini"

WORKFLOW = """kinograph: 1
nodes:
  load: {type: load.mini%(load)s}
  prompt: {type: encode.text, inputs: {text_encoder: load.text_encoder}, params: %(prompt)s}
  neg: {type: encode.text, inputs: {text_encoder: load.text_encoder}, params: {text: a green square}}
  latent: {type: latent.empty, inputs: {vae: load.vae}, params: {frames: 16, width: 48, height: 48}}
  sample:
    type: generate.sample
    inputs: {model: load.model, positive: prompt.positive, negative: %(negative)s, latent: latent.latent}
    params: {steps: 2, sampler: flow_euler, seed: 1}
"""


def _validate(tmp_path, capsys, **parts) -> tuple[int, str]:
    from app.cli import main
    parts = {"load": "", "prompt": "{text: a red circle moving left}", "negative": "prompt.negative", **parts}
    (tmp_path / "w.yaml").write_text(WORKFLOW % parts)
    code = main(["validate", str(tmp_path / "w.yaml")])
    return code, capsys.readouterr().err


def test_a_negative_nothing_reads_is_not_checked(tmp_path, capsys):
    """encode.text leaves its negative unmade when nothing reads it (a ComfyUI habit: a second encode.text for the
    negative), so the run never reads `blurry`; validate refused it all the same."""
    code, err = _validate(tmp_path, capsys, prompt="{text: a red circle moving left, negative: blurry}",
                          negative="neg.positive")
    assert code == 0, err
    # read, it is checked
    code, err = _validate(tmp_path, capsys, prompt="{text: a red circle moving left, negative: blurry}")
    assert code == 2 and "negative: kinograph-mini does not know the word(s) 'blurry'" in err


def test_a_model_folder_is_judged_by_its_own_words(tmp_path, capsys):
    """load.mini's path names a model trained with more words: the check reads that folder's vocabulary, not the
    bundled model's."""
    custom = tmp_path / "mini_pink"
    shutil.copytree(BUNDLED, custom)
    config = custom / "text_encoder" / "config.json"
    data = json.loads(config.read_text())
    data["vocabulary"] = [*data["vocabulary"], "pink"]
    config.write_text(json.dumps(data))
    pink = "{text: a pink circle moving left}"
    code, err = _validate(tmp_path, capsys, prompt=pink, load=f", params: {{path: '{custom}'}}")
    assert code == 0, err
    code, err = _validate(tmp_path, capsys, prompt=pink)
    assert code == 2 and "'pink'" in err


def test_what_the_encoder_reads_passes(tmp_path, capsys):
    """Case, commas and full stops, 'an', emphasis of both weightings, a schedule, an empty negative."""
    for text in ("A RED Circle, moving left.", "an orange circle moving left", "(a red circle:1.2) moving left",
                 "0: a red circle moving left, 8: a (blue:1.3) square moving up", ""):
        for weighting in ("kinograph", "comfy"):
            code, err = _validate(tmp_path, capsys, prompt=json.dumps({"text": text, "weighting": weighting}))
            assert code == 0, (text, weighting, err)


def test_a_model_named_from_the_model_folders_is_judged_by_its_words(tmp_path, capsys, monkeypatch):
    """load.mini's path a name the loader finds in the model folders (diffusion_models/my-mini): the check looked
    for it beside the workflow only, found nothing and said ok; the run then failed on the word after loading."""
    shutil.copytree(BUNDLED, tmp_path / "models" / "diffusion_models" / "my-mini")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    code, err = _validate(tmp_path, capsys, prompt="{text: a pink circle moving left}", load=", params: {path: my-mini}")
    assert code == 2 and "text: kinograph-mini does not know the word(s) 'pink'" in err, err
    code, err = _validate(tmp_path, capsys, load=", params: {path: my-mini}")
    assert code == 0, err
