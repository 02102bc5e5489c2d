"""A prompt set through a link (text.generate's words, as ComfyUI's prompt enhancers wire TextGenerate into
CLIPTextEncode): encode.text's text takes a STRING link, encodes exactly what the same words typed in encode, and the
embeddings it names are read when it runs, a missing one named then."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from comfy_layouts import models_dir
    from test_textgen import build
    yield from models_dir(tmp_path_factory, build, "linkedprompt")


def _wf(nodes: dict):
    import yaml
    from graph_engine.api import load_workflow
    return load_workflow(text=yaml.safe_dump({"kinograph": 1, "nodes": nodes}), check=True)


def test_a_generated_prompt_encodes_what_the_same_words_typed_in_encode(qwen):
    from graph_engine.api import Session
    load = {"type": "load.text_encoder", "params": {"name": "qwen3_tied_tiny.safetensors", "type": "lumina2"}}
    gen = {"type": "text.generate", "inputs": {"text_encoder": "te.text_encoder"},
           "params": {"prompt": "write a prompt about a cat", "max_length": 8, "seed": 5}}
    run = Session(device="cpu").run(_wf({"te": load, "gen": gen, "enc": {
        "type": "encode.text", "inputs": {"text_encoder": "te.text_encoder", "text": "gen.text"},
        "params": {"text": "typed under the link, not read"}}}), use_cache=False)
    assert run.ok, run.failed
    words = run.outputs["gen"]["text"]
    assert words.strip()
    typed = Session(device="cpu").run(_wf({"te": load, "enc": {
        "type": "encode.text", "inputs": {"text_encoder": "te.text_encoder"}, "params": {"text": words}}}),
        use_cache=False)
    assert typed.ok, typed.failed
    got, want = run.outputs["enc"]["positive"], typed.outputs["enc"]["positive"]
    assert torch.equal(got.embeds, want.embeds)
    other = Session(device="cpu").run(_wf({"te": load, "enc": {
        "type": "encode.text", "inputs": {"text_encoder": "te.text_encoder"},
        "params": {"text": "typed under the link, not read"}}}), use_cache=False)
    assert not torch.equal(other.outputs["enc"]["positive"].embeds, want.embeds)


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    from tiny_models import build_sd15_single_file
    return build_sd15_single_file(tmp_path_factory.mktemp("sd15")) / "diffusers"


def test_a_linked_prompt_naming_a_missing_embedding_fails_when_it_runs(sd, tmp_path, monkeypatch):
    """The words arrive only as the workflow runs, so the embedding is looked up then; the node fails naming it and
    where it looked. The same words typed in fail the same way (no check before the run reads a prompt's embeddings:
    a name not found was always the encoding's to report)."""
    from graph_engine import Param, node
    from graph_engine.api import load_workflow
    from graph_engine.executor import Executor
    from graph_engine.registry import Registry, default_registry
    from graph_engine.types import STRING
    from graph_engine.validate import validate
    import yaml
    (tmp_path / "models" / "embeddings").mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))

    @node("test.words", outputs={"text": STRING})
    def words(ctx, text: str = Param("")):
        """Words as another node makes them (ComfyUI's string and regex nodes)."""
        return {"text": text}
    registry = Registry()
    for spec in default_registry().specs.values():
        registry.add(spec)
    registry.register(words)
    prompt = "a cat, embedding:EasyNegativeV2"
    failed = {}
    for how, nodes in {
        "linked": {"w": {"type": "test.words", "params": {"text": prompt}},
                   "enc": {"type": "encode.text", "inputs": {"text_encoder": "m.text_encoder", "text": "w.text"}}},
        "typed": {"enc": {"type": "encode.text", "inputs": {"text_encoder": "m.text_encoder"},
                          "params": {"text": prompt}}}}.items():
        wf = load_workflow(text=yaml.safe_dump({"kinograph": 1, "nodes": {
            "m": {"type": "load.sd", "params": {"path": str(sd)}}, **nodes}}), registry=registry)
        assert validate(wf, registry) == []
        r = Executor(registry).run(wf)
        assert not r.ok
        failed[how] = r.failed["enc"]
    assert "EasyNegativeV2" in failed["linked"] and str(tmp_path / "models" / "embeddings") in failed["linked"]
    assert failed["linked"] == failed["typed"]


def test_a_prompt_takes_a_text_link_and_a_path_still_does_not():
    from graph_engine.node_api import param_socket
    from graph_engine.registry import default_registry
    from graph_engine.types import STRING
    reg = default_registry()
    for typ, name in (("encode.text", "text"), ("encode.text", "negative"), ("encode.sdxl", "text_l")):
        assert param_socket(reg.get(typ).params[name]) is STRING
    assert param_socket(reg.get("load.text_encoder").params["name"]) is None
