"""A text encoder file's tokenizer is looked for beside it first, then in the pipelines the model folders hold: the
model folders are listed only when the folders beside the file do not hold it, and then once."""
import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPTokenizer

from nodes.common import models_dirs
from nodes.generate.detect import Detection
from nodes.generate.split import tokenizer
from tiny_models import clip_tokenizer

CLIP_L = Detection("text_encoder", "clip_l", "")


@pytest.fixture
def encoder(tmp_path, monkeypatch):
    """clip_l.safetensors in text_encoders/ of an empty model folder; list_models counted."""
    models = tmp_path / "models"
    path = models / "text_encoders" / "clip_l.safetensors"
    path.parent.mkdir(parents=True)
    save_file({"text_model.embeddings.token_embedding.weight": torch.zeros(4, 2)}, str(path))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    calls = []
    listed = models_dirs.list_models
    monkeypatch.setattr(models_dirs, "list_models", lambda: calls.append(1) or listed())
    return path, calls


def ids(tok, text="a red circle"):
    return tok(text).input_ids


def test_the_tokenizer_beside_the_file_is_read_without_listing_the_model_folders(encoder):
    path, calls = encoder
    clip_tokenizer(path.parent / "clip_l")
    found = tokenizer(path, CLIP_L)
    assert ids(found) == ids(CLIPTokenizer.from_pretrained(str(path.parent / "clip_l"))) and calls == []


def test_an_sdxl_folders_tokenizer_is_found_listing_the_model_folders_once(encoder):
    path, calls = encoder
    sdxl = path.parents[1] / "diffusers" / "sdxl-base"
    clip_tokenizer(sdxl / "tokenizer")
    (sdxl / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    found = tokenizer(path, CLIP_L)
    assert ids(found) == ids(CLIPTokenizer.from_pretrained(str(sdxl / "tokenizer"))) and calls == [1]


def test_a_listing_works_the_model_folders_out_once_and_lists_what_each_kinds_folder_holds(tmp_path, monkeypatch):
    models = tmp_path / "models"
    for rel in ("checkpoints/sd15.safetensors", "loras/a.safetensors", "text_encoders/t5xxl.safetensors"):
        (models / rel).parent.mkdir(parents=True, exist_ok=True)
        (models / rel).write_bytes(b"x")
    (models / "diffusers" / "sdxl-base").mkdir(parents=True)
    (models / "diffusers" / "sdxl-base" / "model_index.json").write_text("{}")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    worked_out = []
    real = models_dirs._model_dirs
    monkeypatch.setattr(models_dirs, "_model_dirs", lambda: worked_out.append(1) or real())
    listed = models_dirs.list_models()
    assert worked_out == [1]
    # diffusers/ is one of checkpoints' folders too (a whole pipeline loads as a checkpoint does): listed there, once
    assert {k: [p.relative_to(models).as_posix() for p in v] for k, v in listed.items()} == {
        "checkpoints": ["checkpoints/sd15.safetensors", "diffusers/sdxl-base"], "loras": ["loras/a.safetensors"],
        "text_encoders": ["text_encoders/t5xxl.safetensors"]}
    assert models_dirs._list_models() == listed         # as worked out anew for each kind, outside one look
