"""Textual-inversion embeddings as ComfyUI users write them (`embedding:EasyNegative`, weighted, with the
extension) from models/embeddings, in A1111's .pt (string_to_param) and .safetensors (emb_params) files and SDXL's
(clip_l/clip_g). The prompt's encoding is checked against the tiny SD 1.5 text encoder run here directly, with the
file's vectors put in at the token-table lookup where the name stands."""
import os
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from graph_engine import NodeError

sys.path.insert(0, str(Path(__file__).resolve().parent))

WIDTH = 64          # the tiny SD 1.5's text width


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    from tiny_models import build_sd15_single_file
    return build_sd15_single_file(tmp_path_factory.mktemp("sd15")) / "diffusers"


@pytest.fixture
def models(tmp_path, monkeypatch):
    d = tmp_path / "models"
    (d / "embeddings" / "neg").mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(d))
    return d


def _handle(folder):
    from diffusers import StableDiffusionPipeline
    from nodes.generate.handles import ComponentHandle
    pipe = StableDiffusionPipeline.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False)
    return ComponentHandle("sd", str(folder), pipe, "text_encoder")


def _expected(folder, text: str, vec: torch.Tensor) -> torch.Tensor:
    """`text` with each `~` word standing for the next vector, encoded by a fresh copy of the text encoder whose
    token-table output is overwritten at those positions (the file's vectors as the encoder's input)."""
    pipe = _handle(folder).pipe
    tok, enc = pipe.tokenizer, pipe.text_encoder
    ids = tok(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    at = (ids[0] == tok.convert_tokens_to_ids("~</w>")).nonzero()[:, 0]
    assert len(at) == len(vec)

    def put(module, args, out):
        out = out.clone()
        out[0, at] = vec
        return out
    hook = enc.get_input_embeddings().register_forward_hook(put)
    with torch.no_grad():
        out = enc(ids)[0][0]
    hook.remove()
    return out


def _encode(handle, prompt, **kw):
    from nodes.generate.text import encode_prompt
    return encode_prompt(handle, prompt, **kw).embeds[0]


def test_a1111_pt_embedding_is_encoded_where_its_name_stands(sd, models):
    torch.manual_seed(0)
    vec = torch.randn(3, WIDTH)
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.nn.Parameter(vec)},
                "name": "EasyNegative", "step": 10}, str(models / "embeddings" / "EasyNegative.pt"))
    h = _handle(sd)
    got = _encode(h, "a cat embedding:EasyNegative, ugly")
    torch.testing.assert_close(got, _expected(sd, "a cat ~ ~ ~ , ugly", vec), rtol=1e-4, atol=1e-4)
    plain = _encode(h, "a cat EasyNegative, ugly")
    assert (got - plain).abs().max() > 1e-2
    # Not opening a word, it is text in ComfyUI too (no file is looked up for it)
    from nodes.generate.embeddings import has_embeddings
    assert not has_embeddings("cat,embedding:EasyNegative") and not has_embeddings("myembedding:x")
    assert has_embeddings("embedding:x") and has_embeddings("a\nembedding:x") and has_embeddings("[embedding:x]")
    # The same file again (the tokens are added once) and with its extension.
    torch.testing.assert_close(_encode(h, "a cat embedding:EasyNegative.pt, ugly"), got)


def test_safetensors_and_sdxl_embeddings_in_a_sub_folder(sd, models):
    torch.manual_seed(1)
    one, two = torch.randn(2, WIDTH), torch.randn(1, WIDTH)
    save_file({"emb_params": one}, str(models / "embeddings" / "neg" / "bad_hands.safetensors"))
    save_file({"clip_g": torch.randn(1, 1280), "clip_l": two}, str(models / "embeddings" / "xl_style.safetensors"))
    h = _handle(sd)
    # A real CLIP's token table has exactly the tokenizer's rows (the tiny one has spare rows): it grows.
    h.pipe.text_encoder.resize_token_embeddings(len(h.pipe.tokenizer))
    got = _encode(h, "embedding:bad_hands a dog embedding:xl_style.safetensors")
    assert h.pipe.text_encoder.get_input_embeddings().weight.shape[0] == len(h.pipe.tokenizer)
    torch.testing.assert_close(got, _expected(sd, "~ ~ a dog ~", torch.cat([one, two])), rtol=1e-4, atol=1e-4)


def test_a_weighted_embedding_is_weighted_like_its_words(sd, models):
    """(embedding:name:1.2) with ComfyUI's weighting: each of its positions moves 1.2 x away from the empty
    prompt's encoding there; the others stay as they were."""
    torch.manual_seed(2)
    vec = torch.randn(2, WIDTH)
    save_file({"emb_params": vec}, str(models / "embeddings" / "Easy.safetensors"))
    h = _handle(sd)
    got = _encode(h, "a cat (embedding:Easy:1.2)", weighting="comfy")
    plain = _expected(sd, "a cat ~ ~", vec)
    empty = _encode(h, "")
    want = plain.clone()
    want[5:7] = empty[5:7] + 1.2 * (plain[5:7] - empty[5:7])     # <bos> a c a t ~ ~: the vectors at 5 and 6
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_missing_embedding_names_the_file_and_where_it_looked(sd, models):
    with pytest.raises(NodeError) as e:
        _encode(_handle(sd), "a cat, embedding:EasyNegativeV2")
    assert "EasyNegativeV2" in str(e.value) and str(models / "embeddings") in str(e.value), str(e.value)


def test_an_embedding_for_another_model_says_so(sd, models):
    save_file({"emb_params": torch.randn(2, 768)}, str(models / "embeddings" / "sd15_real.safetensors"))
    with pytest.raises(NodeError, match="sd15_real.safetensors holds 768-wide vectors and this text encoder takes "
                                        "64-wide ones"):
        _encode(_handle(sd), "embedding:sd15_real")


def test_embeddings_on_a_model_without_clip_text_are_refused():
    from nodes.generate.embeddings import insert_embeddings
    with pytest.raises(NodeError, match="embedding:EasyNegative in the prompt.*CLIP text encoders"):
        insert_embeddings(object(), "a cat, embedding:EasyNegative", clip=False)
    assert insert_embeddings(object(), "a cat", clip=False) == "a cat"


def test_a_replaced_embedding_file_is_read_again(sd, models):
    path = models / "embeddings" / "mine.safetensors"
    save_file({"emb_params": torch.randn(1, WIDTH)}, str(path))
    h = _handle(sd)
    first = _encode(h, "embedding:mine")
    new = torch.randn(1, WIDTH)
    before = path.stat().st_mtime_ns
    save_file({"emb_params": new}, str(path))
    os.utime(path, ns=(before + 10**9, before + 10**9))      # saved a second later, as a retrained file is
    torch.testing.assert_close(_encode(h, "embedding:mine"), _expected(sd, "~", new), rtol=1e-4, atol=1e-4)
    assert (first - _encode(h, "embedding:mine")).abs().max() > 1e-2


def test_embeddings_in_an_a1111_folder_named_by_extra_model_paths(sd, tmp_path, monkeypatch):
    """ComfyUI's extra_model_paths.yaml (its A1111 preset names `embeddings: embeddings`) is read for embeddings
    too, and a ComfyUI folder's own models/embeddings."""
    comfy, a1111 = tmp_path / "ComfyUI", tmp_path / "webui"
    (comfy / "models" / "embeddings").mkdir(parents=True)
    (a1111 / "embeddings").mkdir(parents=True)
    vec = torch.randn(1, WIDTH)
    save_file({"emb_params": vec}, str(a1111 / "embeddings" / "webui_neg.safetensors"))
    save_file({"emb_params": torch.randn(1, WIDTH)}, str(comfy / "models" / "embeddings" / "comfy_neg.safetensors"))
    (comfy / "extra_model_paths.yaml").write_text(f"a111:\n    base_path: {a1111}\n    embeddings: embeddings\n")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfy))
    h = _handle(sd)
    torch.testing.assert_close(_encode(h, "embedding:webui_neg"), _expected(sd, "~", vec), rtol=1e-4, atol=1e-4)
    _encode(h, "embedding:comfy_neg")


def test_an_embedding_replaced_under_its_name_changes_the_prompts_cache_key(sd, models, tmp_path):
    """encode.text's key fingerprinted the prompt's words only: an embedding retrained and saved under the same
    name kept serving the old encoding from the cache (the pipeline read the new file, the cache never asked)."""
    import time
    import yaml
    from graph_engine.api import load_workflow
    from graph_engine.plan import plan_run
    from graph_engine.registry import default_registry
    emb = models / "embeddings" / "mine.safetensors"
    save_file({"emb_params": torch.randn(1, WIDTH)}, str(emb))
    wf_file = tmp_path / "w.yaml"
    wf_file.write_text(yaml.safe_dump({"kinograph": 1, "nodes": {
        "m": {"type": "load.sd", "params": {"path": str(sd)}},
        "p": {"type": "encode.text", "inputs": {"text_encoder": "m.text_encoder"},
              "params": {"text": "a cat", "negative": "blurry, embedding:mine"}},
        "q": {"type": "encode.text", "inputs": {"text_encoder": "m.text_encoder"}, "params": {"text": "a cat"}}}}))

    def keys():
        return plan_run(load_workflow(str(wf_file)), default_registry()).keys
    before = keys()
    time.sleep(0.01)
    save_file({"emb_params": torch.randn(1, WIDTH)}, str(emb))
    after = keys()
    assert after["p"] != before["p"] and after["q"] == before["q"] and after["m"] == before["m"]


def test_kinograph_info_lists_embeddings_and_stored_prompts_as_read(models, capsys):
    """A ComfyUI embeddings/ folder was all 'unknown ... no known key pattern', loads 'no': A1111's textual inversions
    (read by prompts as embedding:NAME) and Marigold v2's stored prompts (read by condition.load) alike."""
    from app.cli import main
    emb = models / "embeddings"
    torch.save({"string_to_param": {"*": torch.randn(3, 768)}, "name": "bad_hands"}, emb / "bad_hands.pt")
    save_file({"emb_params": torch.randn(2, 768)}, str(emb / "EasyNegative.safetensors"))
    save_file({"clip_l": torch.randn(2, 768), "clip_g": torch.randn(2, 1280)}, str(emb / "neg" / "sdxl_neg.safetensors"))
    save_file({"conditioning": torch.randn(1, 5, 3584).bfloat16()}, str(emb / "marigold_v2_depth_conditioning.safetensors"))
    save_file({"x": torch.randn(4, 4), "y": torch.randn(4)}, str(emb / "other.safetensors"))
    assert main(["info"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.rsplit("/", 1)[-1]: line.split()[:5] for line in out if str(emb) in line}
    assert rows["bad_hands.pt"] == ["embedding", "sd15", "embedding", "fp32", "yes"]
    assert rows["EasyNegative.safetensors"] == ["embedding", "sd15", "embedding", "fp32", "yes"]
    assert rows["sdxl_neg.safetensors"] == ["embedding", "sdxl", "embedding", "fp32", "yes"]
    assert rows["marigold_v2_depth_conditioning.safetensors"] == ["conditioning", "5x3584", "conditioning", "bf16", "yes"]
    assert rows["other.safetensors"][0] == "unknown" and rows["other.safetensors"][4] == "no"
    notes = "\n".join(out)
    assert "(embedding:EasyNegative in an SD 1.5 or AnimateDiff prompt)" in notes
    assert "(condition.load: a stored prompt, 5 tokens 3584 wide" in notes
