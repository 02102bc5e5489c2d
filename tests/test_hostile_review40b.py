"""Review of hostile-input pass 16: routes around its limits (a chat template whose lines each do a filter's heavy
work in C, under the line budget), StringFormat fields whose fault Python named (a width of thousands of digits,
a field by position), a Hunyuan3D tensor of another shape."""
import sys
from pathlib import Path

import pytest

from graph_engine import NodeError


def test_a_chat_template_whose_lines_each_work_for_long_is_stopped(monkeypatch):
    """The line budget counts the template's own lines, not what one line asks of a filter: range(100000)|join is a
    hundred thousand items' work in C on one line, and 19,000 loop passes of it (under 100,000 lines) rendered for
    some 8 minutes (24 ms a pass), text.generate stuck past any timeout. The rendering's time is bounded too (the
    bound made small here: the template would run for minutes; the child rendering it is stopped)."""
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models
    from nodes.generate import chat_template
    from nodes.generate.textgen import chat_prompt
    plain = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, "[UNK]")),
                                  chat_template=plain)
    assert chat_prompt(tok, "a fox", "Qwen3", False, True) == "<user>a fox"     # the rendering child started
    monkeypatch.setattr(chat_template, "SECONDS", 3)
    tok.chat_template = "{% for a in range(19000) %}{% if range(100000)|join|length > 1 %}{% endif %}{% endfor %}"
    with pytest.raises(NodeError, match=r"the Qwen3 language model: its tokenizer's chat template did not finish in "
                                        r"3 s for one prompt.*or set use_default_template off"):
        chat_prompt(tok, "a fox", "Qwen3", False, True)
    monkeypatch.undo()
    tok.chat_template = plain
    assert chat_prompt(tok, "a fox", "Qwen3", False, True) == "<user>a fox"     # a new child after the stopped one


def test_a_string_format_width_of_thousands_of_digits_is_named():
    """StringFormat's widths are read with int(), which refuses more than 4,300 digits: {a:>999...9} (5,000 nines)
    was noted on import as Python's advice to a programmer ('use sys.set_int_max_str_digits() to increase the
    limit'), the node and its field unnamed. It is a field too wide, as {a:>999999999} is."""
    from app.comfyui.packs.logic import format_text
    with pytest.raises(ValueError, match=r"its field \{a:'>99999.*\(5001 characters\)\} asks for a field more than "
                                         r"1,000,000 characters wide"):
        format_text("{a:>" + "9" * 5000 + "}", {"a": "x"})
    assert format_text("{a:>5}|{b:.2f}", {"a": "x", "b": 1.5}) == "    x|1.50"


def test_a_hunyuan3d_tensor_of_another_shape_is_named(tmp_path):
    """Hunyuan3D's parts take their sizes from a few tensors and load the rest with torch's load_state_dict: one
    other tensor of another shape (a damaged or another model's file) was torch's 'size mismatch' RuntimeError, a
    traceback out of load.model. The file and the tensor are named."""
    import torch
    from safetensors.torch import save_file
    from nodes.generate.hunyuan3d import load_checkpoint
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_hunyuan3d import parts
    state = {"model." + k: v.contiguous() for k, v in parts("2.0")[0].state_dict().items()}
    state["model.double_blocks.0.img_attn.qkv.weight"] = torch.zeros(99, 32)
    save_file(state, str(tmp_path / "hy3d.safetensors"))
    with pytest.raises(NodeError, match=r"hy3d.safetensors: its tensor double_blocks.0.img_attn.qkv.weight has shape "
                                        r"\(99, 32\), where the Hunyuan3D model its other tensors make has \(96, 32\)"):
        load_checkpoint(tmp_path / "hy3d.safetensors", torch.float32)


@pytest.mark.parametrize("f_string", ["{} and {a}", "{0}"])
def test_a_string_format_field_by_position_is_named(f_string):
    """StringFormat's values are given by letter (ComfyUI's str.format(**values)): a field by position, {} or {0},
    has no value, and the import's note was Python's 'tuple index out of range'. The field and the fix are named."""
    from app.comfyui.packs.logic import format_text
    with pytest.raises(ValueError, match=r"f_string has a field by position \(\{0?\}\), and StringFormat gives "
                                         r"its values by letter only: write \{a\}, \{b\} .*ComfyUI stops there too"):
        format_text(f_string, {"a": "x"})


def test_trellis2_flow_and_dinov3_files_missing_a_tensor_are_named_by_file():
    """The structure flow model's and DINOv3's loaders were given the file's name with pass 16, used for its new
    refusals only: a tensor missing or of too few dimensions still said 'the DINOv3 file' / 'the TRELLIS.2 model',
    not which of the models folder's files."""
    import torch
    from nodes.generate.trellis2_dino import build_dinov3
    from nodes.generate.trellis2_flow import build_structure_flow
    with pytest.raises(NodeError, match=r"dino.safetensors lacks embeddings.cls_token"):
        build_dinov3({}, "dino.safetensors")
    with pytest.raises(NodeError, match=r"dino.safetensors holds tensors of shapes DINOv3 does not have"):
        build_dinov3({"embeddings.cls_token": torch.zeros(1, 1, 8), "embeddings.patch_embeddings.weight": torch.zeros(8),
                      "embeddings.register_tokens": torch.zeros(1, 0, 8), "layer.0.mlp.up_proj.weight": torch.zeros(8, 8)},
                     "dino.safetensors")
    with pytest.raises(NodeError, match=r"flow.safetensors: its structure_model lacks input_layer.weight"):
        build_structure_flow({}, "flow.safetensors")
    with pytest.raises(NodeError, match=r"flow.safetensors: its structure_model holds tensors of shapes it does not "
                                        r"have"):
        build_structure_flow({"input_layer.weight": torch.zeros(())}, "flow.safetensors")


def test_a_gguf_of_millions_of_metadata_keys_is_refused_before_they_are_walked(tmp_path):
    """Pass 16 counted the entries of the metadata's arrays, not its keys, each walked one at a time as a token is:
    2,100,000 keys of one byte each (29 MB) held the reader 10 s (`kinograph info`, every loader), a 2 GB file
    minutes. Published GGUFs hold a few dozen keys; the keys count among the entries."""
    import struct
    from nodes.generate.detect import read_header
    count = 2_100_000
    path = tmp_path / "keys.gguf"
    with open(path, "wb") as f:     # the keys' bytes: refused before they are read
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, count))
        f.truncate(24 + count * 14)
    with pytest.raises(NodeError, match=r"keys.gguf is not a readable GGUF file \(its metadata lists more than "
                                        r"2,000,000 entries \(2,100,000 keys\)"):
        read_header(path)
