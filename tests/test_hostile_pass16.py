"""Hostile inputs, pass 16: texts that grow as a workflow runs (a join of a text to itself, a regular expression whose
matches overlap the text many times over), GGUF metadata nested past what any writer makes, and what Kinograph says
of them. Each case failed (a memory bomb, a RecursionError traceback) before the change its commit names."""
import re
import struct
from pathlib import Path

import pytest

from graph_engine import NodeError
from nodes.generate.detect import read_header
from nodes.math import text_nodes
from nodes.math.regex_child import MAX_TEXT


def test_a_text_joined_to_itself_is_refused_past_a_million_characters():
    """text.join of a text with itself doubles it: forty joins in a row (a 40-node YAML file, or a ComfyUI loop
    concatenating its carried text to itself) asked for a terabyte, the run stopped only by the machine's memory.
    A join past the texts any prompt holds is named, as the importer's StringConcatenate is."""
    half = "ab" * (MAX_TEXT // 4 + 1)
    with pytest.raises(NodeError, match=r"joining texts of 500,002 and 500,002 characters makes more than 1,000,000"):
        text_nodes.join(None, half, half, "")
    assert text_nodes.join(None, "a", "b", ", ") == {"text": "a, b"}


def test_a_regex_extract_whose_matches_repeat_the_text_is_refused():
    """(?=(.*)) matches (empty) at every character, its group holding the rest of the text: All Groups gave the
    text's square, 200 MB for an LLM's answer of 20,000 characters (unbounded where the child has no memory cap:
    Windows, macOS). What it finds is counted as it is gathered and refused past a million characters."""
    text = "a" * 3000                   # 4.5 million characters gathered
    for mode in ("All Groups", "All Matches"):
        with pytest.raises(NodeError, match=r"regex_pattern '\(\?=\(\.\*\)\)' finds more than 1,000,000 characters "
                                            r"in the text of 3,000"):
            text_nodes.regex_extract(None, text, "(?=(.*))", mode, True, False, False, 1)
    assert text_nodes.regex_extract(None, "w: 832, h: 480", r"\d+", "All Matches", True, False, False, 1)["text"] == "832\n480"


def _nested_gguf(path: Path, depth: int) -> Path:
    """A GGUF of no tensors and one metadata key whose value is an array of an array ... `depth` deep."""
    value = struct.pack("<I", 9)
    for level in range(depth):
        value += struct.pack("<IQ", 9 if level < depth - 1 else 0, 1)      # an array of 1 array, ... of 1 uint8
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"x" + value + b"\0"
    path.write_bytes(head + b"\0" * (-len(head) % 32))
    return path


def test_gguf_metadata_nested_past_any_writer_is_named(tmp_path):
    """An array of arrays 5,000 deep (60 KB) stopped the metadata reader in a RecursionError traceback, out of
    `kinograph info` for the whole models folder and every loader of the file. llama.cpp reads no nested array;
    gguf-py writes one level. Past 8 levels the file is named."""
    with pytest.raises(NodeError, match=r"deep.gguf is not a readable GGUF file \(its metadata x nests arrays more "
                                        r"than 8 deep"):
        read_header(_nested_gguf(tmp_path / "deep.gguf", 5000))
    assert read_header(_nested_gguf(tmp_path / "two.gguf", 2)).shapes == {}


def test_nested_json_under_a_model_s_name_is_named_as_damaged(tmp_path):
    """A 4 KB file of 2,000 nested brackets under a .safetensors name: its first byte '{' read as a server's JSON
    error message, and json's RecursionError came out of every header read (`kinograph info` of the whole folder,
    validate, each loader). It is a damaged file, said as such."""
    path = tmp_path / "vae.safetensors"
    path.write_text('{"a":' + "[" * 2000 + "]" * 2000 + "}")
    with pytest.raises(NodeError, match=r"vae.safetensors is not a valid safetensors file \(its header length [\d,]+ is past"):
        read_header(path)


@pytest.mark.parametrize("file, text, said", [
    ("transformer/config.json", "[1]", r"transformer/config.json holds a JSON list, not the settings"),
    ("model_index.json", "7", r"model_index.json holds a JSON int, not the settings"),
    ("config.json", '{"a":' + "[" * 3000 + "]" * 3000 + "}", r"config.json is not valid JSON \(maximum recursion"),
])
def test_a_model_folder_whose_settings_are_no_json_object_is_named(tmp_path, file, text, said):
    """A diffusers folder whose config.json or model_index.json holds a list, a number or brackets nested 3,000 deep
    stopped `kinograph info` (every model of every folder) in an AttributeError ('list' object has no attribute
    'get') or RecursionError traceback. The folder is listed unreadable, the file and the fix named."""
    from nodes.generate.model_manager import describe_model
    folder = tmp_path / "m"
    (folder / file).parent.mkdir(parents=True, exist_ok=True)
    (folder / file).write_text(text)
    found = describe_model(folder)
    assert found["family"] == "unreadable" and found["loads"] == "no"
    assert re.search(said, found["note"]) and "re-copy the model folder" in found["note"]


LOOPING_TEMPLATES = [
    "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
]


@pytest.mark.parametrize("template", LOOPING_TEMPLATES)
def test_a_chat_template_looping_without_end_is_stopped_and_named(template):
    """A GGUF keeps its chat template in its metadata (tokenizer.chat_template) and a folder in tokenizer_config.json:
    Jinja code of the model's author, which transformers renders in Jinja's sandbox. The sandbox stops code from
    running, not loops: these rendered for ever, text.generate stuck past any timeout. The rendering is counted by
    template line now and stopped past 100,000, naming the model and what else to do."""
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models
    from nodes.generate.textgen import chat_prompt
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, "[UNK]")),
                                  chat_template=template)
    with pytest.raises(NodeError, match=r"the Qwen3 language model: its tokenizer's chat template runs more than "
                                        r"100,000 lines for one prompt.*or set use_default_template off"):
        chat_prompt(tok, "a fox", "Qwen3", False, True)
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    assert chat_prompt(tok, "a fox", "Qwen3", False, True) == "<user>a fox"


GROWING_TEMPLATES = [
    '{{ "a" * 10**10 }}',
    '{% set ns = namespace(s="a") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}',
    '{{ "a".ljust(10**10) }}',
]


@pytest.mark.parametrize("template", GROWING_TEMPLATES)
def test_a_chat_template_growing_without_end_is_stopped_and_named(template):
    """One operation of a template ({{ "a" * 10**10 }}), or a text doubled forty times in forty lines, ran no lines to
    count and asked for 10 GB to a terabyte, the run stopped only by the machine's memory. The template renders in a
    child process whose memory is capped, named as the looping ones are; a published template's rendering is
    transformers' own."""
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models
    from nodes.generate.textgen import chat_prompt
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, "[UNK]")),
                                  chat_template=template, bos_token="<s>")
    with pytest.raises(NodeError, match=r"the Qwen3 language model: its tokenizer's chat template needs more than "
                                        r"1024 MB for one prompt.*or set use_default_template off"):
        chat_prompt(tok, "a fox", "Qwen3", False, True)
    tok.chat_template = "{{ raise_exception('only user turns') }}"
    with pytest.raises(NodeError, match=r"chat template fails \(TemplateError: 'only user turns'\)"):
        chat_prompt(tok, "a fox", "Qwen3", False, True)
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}{{ enable_thinking }}")
    assert chat_prompt(tok, "a fox", "Qwen3", True, True, system="be brief") == tok.apply_chat_template(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a fox"}], tokenize=False,
        add_generation_prompt=True, enable_thinking=True) == "<s><system>be brief<user>a fox<assistant>True"


def test_superscript_digits_are_no_numbers(tmp_path, capsys):
    """'²' is a digit to str.isdigit but no number to int(): a ComfyUI file with a node of id '²' stopped `kinograph
    import` in a ValueError traceback (the report sorts its lines by node number), and a frame named 'shot1²1.png'
    in a folder stopped io.load_images' listing (frames sort by their numbers). Each such check is isdecimal now,
    which holds exactly for what int() reads."""
    import json
    from app.cli import main
    from nodes.io.images import list_frames
    api = {"²": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "1": {"class_type": "SaveImage", "inputs": {"images": ["²", 0], "filename_prefix": "x"}}}
    (tmp_path / "w.json").write_text(json.dumps(api))
    assert main(["import", str(tmp_path / "w.json"), "-o", str(tmp_path / "w.yaml")]) in (0, 3)
    assert "Traceback" not in capsys.readouterr().err and (tmp_path / "w.yaml").is_file()
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("shot2.png", "shot1²1.png", "shot10.png"):
        (frames / name).write_bytes(b"")
    assert [Path(f).name for f in list_frames(str(frames))] == ["shot1²1.png", "shot2.png", "shot10.png"]


@pytest.mark.parametrize("value", ["9" * 5000, "[" * 1000])
def test_a_set_value_python_cannot_read_is_named_as_the_parameter_s_problem(value, capsys):
    """--set's value is read as YAML: a whole number past Python's 4,300 digits said 'use
    sys.set_int_max_str_digits() to increase the limit' (Python's advice to a programmer), 1,000 brackets were
    PyYAML's RecursionError traceback. Both are the text as given, which the parameter refuses by name."""
    from app.cli import main
    example = Path(__file__).parent.parent / "examples" / "test_pattern.yaml"
    assert main(["validate", str(example), "--set", f"pattern.frames={value}"]) == 2
    err = capsys.readouterr().err
    assert "--set: node pattern: parameter 'frames' expects a whole number" in err
    assert "Traceback" not in err and "set_int_max_str_digits" not in err


def test_a_gguf_listing_millions_of_tokens_is_refused_before_they_are_walked(tmp_path):
    """5,000,000 one-letter tokens (45 MB) held `kinograph info`, which walks every model file's metadata, 11 s; a
    2 GB file would for minutes and its tokenizer fill the memory. Past 2,000,000 entries (the largest tokenizers,
    with their kinds and scores, list under a million) the file is named."""
    count, key = 2_100_000, b"tokenizer.ggml.tokens"
    head = (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key +
            struct.pack("<IIQ", 9, 8, count) + (struct.pack("<Q", 1) + b"a") * count)
    path = tmp_path / "many.gguf"
    path.write_bytes(head + b"\0" * (-len(head) % 32))
    with pytest.raises(NodeError, match=r"many.gguf is not a readable GGUF file \(its metadata lists more than "
                                        r"2,000,000 entries \(up to tokenizer.ggml.tokens, 2,100,000\)"):
        read_header(path)


def test_a_chat_template_too_long_to_compile_is_refused():
    """Jinja compiles a template at about 20 us a character: 2.2 MB took 41 s, and a GGUF's metadata holds hundreds
    of MB. Past 256,000 characters (published templates are under 50,000) it is refused before Jinja reads it."""
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models
    from nodes.generate.textgen import chat_prompt
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, "[UNK]")),
                                  chat_template="{% if a %}x{% endif %}" * 20_000)
    with pytest.raises(NodeError, match=r"the Qwen3 language model: its tokenizer's chat template is 440,000 "
                                        r"characters long, where published ones are under 50,000"):
        chat_prompt(tok, "a fox", "Qwen3", False, True)


@pytest.mark.parametrize("state, said", [
    ({"struct_dec.input_layer.weight": [8]}, r"holds tensors of shapes TRELLIS.2's structure decoder does not have"),
    ({"struct_dec.input_layer.weight": [8, 8, 3, 3, 3], "struct_dec.out_layer.2.weight": [10 ** 7, 0]},
     r"its tensor shapes make a network of 2,170,001,752 values, far more than the file's 1,728"),
    ({"struct_dec.input_layer.weight": [8, 8, 3, 3, 3],
      **{f"struct_dec.middle_block.{i}.norm1.weight": [1] for i in range(600)}},
     r"its tensor names number 600 blocks of middle_block.N"),
])
def test_a_hostile_trellis2_shape_vae_is_named_before_it_is_built(tmp_path, monkeypatch, state, said):
    """TRELLIS.2's structure decoder took its widths and depths from the file's shapes and names and was built for
    real: an input layer of one dimension was an IndexError traceback, an output layer of shape [10^7, 0] (no byte
    in the file) asked the allocator for 8.6 GB, and one-value tensors naming thousands of middle blocks built as
    many (3 s for 3,000). Blocks are counted (at most 512) and the decoder counted on the meta device first."""
    import torch
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    (tmp_path / "vae").mkdir()
    save_file({k: torch.zeros(*shape) for k, shape in state.items()}, str(tmp_path / "vae" / "shape.safetensors"))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    with pytest.raises(NodeError, match=rf"shape.safetensors:? {said}"):
        load_vae(ModelManager(), "shape.safetensors", "cpu")


@pytest.mark.parametrize("state, said", [
    ({"model.latent_in.weight": [8, 4]}, r"lacks double_blocks.0.img_attn.norm.query_norm.scale, which gives"),
    ({"model.latent_in.weight": [10 ** 6, 0], "model.cond_in.weight": [4, 4],
      "model.double_blocks.0.img_attn.norm.query_norm.scale": [2], "model.double_blocks.0.img_mlp.0.weight": [4, 4]},
     r"its tensor shapes make a network of [\d,]+ values, far more than the file's 34"),
    ({"model.latent_in.weight": [8, 4], **{f"model.double_blocks.{i}.x": [1] for i in range(600)}},
     r"its tensor names number 600 blocks of double_blocks.N"),
])
def test_a_hostile_hunyuan3d_checkpoint_is_named_before_it_is_built(tmp_path, state, said):
    """Hunyuan3D's transformer, ShapeVAE and DINOv2 took their sizes from the checkpoint's shapes and names, built
    for real: a tensor the file lacks was a KeyError traceback out of load.model, a width claimed by a tensor of
    shape [10^6, 0] (no byte in the file) asked the allocator for 4 TB, and block names were counted by scanning
    every name for each (quadratic). Blocks are counted first (at most 512), each part on the meta device."""
    import torch
    from safetensors.torch import save_file
    from nodes.generate.hunyuan3d import load_checkpoint
    save_file({k: torch.zeros(*shape) for k, shape in state.items()}, str(tmp_path / "hy3d.safetensors"))
    with pytest.raises(NodeError, match=rf"hy3d.safetensors:? {said}"):
        load_checkpoint(tmp_path / "hy3d.safetensors", torch.float32)


def test_a_string_format_of_many_wide_fields_is_refused_as_it_is_made():
    """StringFormat's fields were held under a million characters each, not in sum: {a:>999999} 2,000 times (a
    22 KB f_string in a ComfyUI file) made 2 GB on import before the text's length was judged, 20,000 times 20 GB.
    Each field's text is counted as it is made now, and the import names the node."""
    from app.comfyui import import_data
    api = {"1": {"class_type": "StringFormat", "inputs": {"f_string": "{a:>999999}" * 2000, "values.a": "x"}},
           "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    notes = [n for e in import_data(api).report.entries.values() if e.class_type == "StringFormat" for n in e.notes]
    assert any("its fields make more than 1,000,000 characters" in n for n in notes), notes


def test_hostile_trellis2_structure_flow_and_dinov3_files_are_named_before_they_are_built():
    """TRELLIS.2's structure flow model and its DINOv3 encoder (landed with trellis40) read widths and depths from
    the file's shapes and names and built them for real: a width claimed by a tensor of shape [10^6, 0] asked the
    allocator for terabytes (a RuntimeError traceback, or the machine's memory where less is asked), a tensor of too
    few dimensions was an IndexError traceback, and DINOv3's layers were built as many as the names count. Layers
    are counted (at most 512), each model on the meta device, before it is built."""
    import torch
    from nodes.generate.trellis2_dino import build_dinov3
    from nodes.generate.trellis2_flow import build_structure_flow
    flow = {"input_layer.weight": torch.zeros(10 ** 6, 0), "blocks.0.self_attn.q_rms_norm.gamma": torch.zeros(2, 4),
            "blocks.0.cross_attn.to_kv.weight": torch.zeros(4, 8), "blocks.0.mlp.mlp.0.weight": torch.zeros(4, 0)}
    with pytest.raises(NodeError, match=r"flow.safetensors: its tensor shapes make a network of [\d,]+ values, far "
                                        r"more than the file's 40"):
        build_structure_flow(flow, "flow.safetensors")
    flow["blocks.0.cross_attn.to_kv.weight"] = torch.zeros(4)
    with pytest.raises(NodeError, match=r"structure_model holds tensors of shapes it does not have"):
        build_structure_flow(flow, "flow.safetensors")
    dino = {"embeddings.cls_token": torch.zeros(1, 1, 64), "embeddings.patch_embeddings.weight": torch.zeros(64, 3, 4, 4),
            "embeddings.register_tokens": torch.zeros(1, 0, 64), "layer.0.mlp.up_proj.weight": torch.zeros(128, 64),
            **{f"layer.{i}.norm1.weight": torch.zeros(1) for i in range(600)}}
    with pytest.raises(NodeError, match=r"dino.safetensors: its tensor names number 600 blocks of layer.N"):
        build_dinov3(dino, "dino.safetensors")
