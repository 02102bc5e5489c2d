"""FIBO 2's transformer file (ComfyUI's image_fibo2_edit_* templates) is named for what it is and said not to run,
and the template's encoder says why it is not mapped (JoyImage Edit, once named here too, runs: tests/test_joyimage.py).

Before, the file was "unknown ... no known key pattern". FIBO 2's names are diffusers'
BriaFibo2Transformer2DModel's, so diffusers' module, built tiny, gives them."""
from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import save_file

from nodes.generate.model_manager import describe_model

TEMPLATES = Path(__file__).resolve().parent / "data" / "comfyui" / "templates"


def _fibo2():
    from diffusers import BriaFibo2Transformer2DModel
    return BriaFibo2Transformer2DModel(in_channels=4, dim=64, n_layers=2, n_refiner_layers=1, n_heads=2, cap_feat_dim=24,
                                       injection_layer_ids=(1,), perceiver_num_layers=1, min_num_gist_tokens=4,
                                       max_num_gist_tokens=8, gist_step=4, gist_min_text_len=4, gist_max_text_len=16,
                                       axes_dims=(8, 12, 12), axes_lens=(64, 32, 32))


@pytest.mark.parametrize("build, name, family, words", [
    (_fibo2, "fibo2_edit_turbo_bf16.safetensors", "fibo2", "FIBO 2 transformer"),
])
@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_transformer_files_are_named_and_refused(tmp_path, monkeypatch, build, name, family, words, prefix):
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    folder = tmp_path / "models" / "diffusion_models"
    folder.mkdir(parents=True)
    save_file({prefix + k: v.contiguous() for k, v in build().state_dict().items()}, str(folder / name))
    got = describe_model(folder / name)
    assert (got["family"], got["loads"]) == (family, "no"), got
    assert words in got["note"] and "does not run yet" in got["note"], got["note"]
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    with pytest.raises(NodeError, match=words):
        load_diffusion_model(ModelManager(), name, "default", "cpu")


@pytest.mark.parametrize("template, encoder, model", [
    ("image_fibo2_edit_dev_pe.json", "TextEncodeFibo2", "FIBO 2"),
])
def test_templates_say_why_their_encoder_is_not_mapped(template, encoder, model):
    """The encoder is not mapped and its line says which model is missing; everything else in the template imports,
    FIBO 2's prompt writer (TextGenerate with the picture and the system prompt) as text.generate."""
    from app.comfyui import import_workflow
    report = import_workflow(TEMPLATES / template).report.entries.values()
    unmapped = [e for e in report if e.status == "unmapped"]
    assert {e.class_type for e in unmapped} == {encoder}, [(e.class_type, e.notes) for e in unmapped]
    assert all(f"{model} (" in e.notes[0] and "is not run by Kinograph yet" in e.notes[0] for e in unmapped)
    writers = [e for e in report if e.class_type == "TextGenerate"]
    assert all(e.kinograph and e.status in ("exact", "approx") for e in writers), writers
