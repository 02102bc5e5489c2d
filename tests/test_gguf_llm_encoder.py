"""Language-model text encoders as llama.cpp writes them (ComfyUI-GGUF's CLIPLoaderGGUF reads Qwen2.5-VL, Qwen3,
Llama 3.1, Mistral Small and Gemma GGUFs): blk.N.attn_q ... names, Llama's query / key rows in llama.cpp's rotary order,
Gemma's norms stored as 1 + w. Tiny random models are written so (names from gguf-py's own tensor map, the row
order and norm offset as llama.cpp's convert_hf_to_gguf.py applies them, written out here), then must be detected as
the safetensors encoder and give transformers' hidden states for the same (Q8_0-rounded) weights, matrices packed."""
from __future__ import annotations

import re

import pytest
import torch

gguf = pytest.importorskip("gguf")
from tests.gguf_blocks import T  # noqa: E402


def llama_cpp_permute(weights, n_head: int, n_head_kv=None):
    """llama.cpp's convert_hf_to_gguf.py LlamaModel.permute, as published."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _model(kind: str):
    """(transformers model, llama.cpp architecture, family Kinograph should detect) with random weights, norms away
    from 1 (Gemma's away from 0) so a mixed-up or unshifted norm shows."""
    import transformers as tr
    torch.manual_seed(len(kind))
    common = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1)
    if kind in ("llama", "mistral3"):
        model, arch, family = tr.LlamaModel(tr.LlamaConfig(**common, head_dim=128)), kind, "llama"
    elif kind == "qwen2vl":
        model = tr.Qwen2_5_VLTextModel(tr.Qwen2_5_VLTextConfig(**{**common, "hidden_size": 256},
                                                               rope_scaling={"type": "mrope",
                                                                             "mrope_section": [16, 24, 24]}))
        arch, family = "qwen2vl", "qwen25vl"
    elif kind == "qwen3":
        model, arch, family = tr.Qwen3Model(tr.Qwen3Config(**common, head_dim=128)), "qwen3", "qwen3"
    elif kind == "gemma2":
        model = tr.Gemma2Model(tr.Gemma2Config(**common, head_dim=256, query_pre_attn_scalar=256))
        arch, family = "gemma2", "gemma2"
    else:
        model = tr.Gemma3TextModel(tr.Gemma3TextConfig(**common, head_dim=32, query_pre_attn_scalar=32))
        arch, family = "gemma3", "gemma3"
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.uniform_(0.5, 1.5)
    return model.eval(), arch, family


def _write_llama_cpp(model, arch: str, path, vocab=None):
    """The model as convert_hf_to_gguf.py writes it: gguf-py's names, Llama's q/k rows permuted, Gemma's norms + 1,
    matrices Q8_0 and the rest F32; vocab(writer) adds a tokenizer's metadata. Returns the model's state with the
    values the file holds (gguf-py's dequantisation, the layout changes undone)."""
    cfg = model.config
    names = gguf.get_tensor_name_map(next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch),
                                     cfg.num_hidden_layers)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    if vocab:
        vocab(w)
    held = {}
    for k, v in model.state_dict().items():
        stem, _, suffix = ("model." + k).rpartition(".")
        a = v.float().numpy()
        if arch in ("llama", "mistral3") and stem.endswith("q_proj"):
            a = llama_cpp_permute(a, cfg.num_attention_heads, cfg.num_attention_heads)
        elif arch in ("llama", "mistral3") and stem.endswith("k_proj"):
            a = llama_cpp_permute(a, cfg.num_attention_heads, cfg.num_key_value_heads)
        elif arch.startswith("gemma") and k.endswith("norm.weight"):
            a = a + 1
        name = f"{names.get_name(stem)}.{suffix}"
        if a.ndim == 2 and a.shape[1] % 32 == 0:
            q = gguf.quants.quantize(a, T.Q8_0)
            w.add_tensor(name, q, raw_dtype=T.Q8_0)
            back = gguf.quants.dequantize(q, T.Q8_0).reshape(a.shape)
        else:
            w.add_tensor(name, a)
            back = a
        back = torch.from_numpy(back.copy())
        if arch in ("llama", "mistral3") and stem.endswith(("q_proj", "k_proj")):
            # the published permute taken back: the same reshape, halves and pairs swapped
            heads = cfg.num_attention_heads if stem.endswith("q_proj") else cfg.num_key_value_heads
            back = back.reshape(heads, back.shape[0] // heads // 2, 2, -1).transpose(1, 2).reshape(v.shape)
        held[k] = back - 1 if arch.startswith("gemma") and k.endswith("norm.weight") else back
    # the language-model head a released file keeps (untied models' output.weight), which the encoders do not read
    head = torch.randn(cfg.vocab_size, cfg.hidden_size).numpy()
    w.add_tensor(f"{names.get_name('lm_head') or 'output'}.weight", gguf.quants.quantize(head, T.Q8_0), raw_dtype=T.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return held


KINDS = ["llama", "mistral3", "qwen2vl", "qwen3", "gemma2", "gemma3"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_llama_cpp_language_model_gguf_encodes_as_transformers(tmp_path, kind):
    from nodes.generate import converters
    from nodes.generate.detect import detect_file
    from nodes.generate.packed_weight import PackedWeight
    from nodes.generate.weights import load_weights
    model, arch, family = _model(kind)
    path = tmp_path / f"{kind}-Q8_0.gguf"
    held = _write_llama_cpp(model, arch, path)
    det = detect_file(path)
    assert (det.role, det.family) == ("text_encoder", family)
    built = converters.build(det, load_weights(path, torch.float32, packed=True), torch.float32, str(path))
    matrices = {k: v for k, v in built.named_parameters() if v.ndim == 2 and "embed_tokens" not in k}
    assert matrices and all(isinstance(v, PackedWeight) for v in matrices.values())
    ids = torch.tensor([[5, 17, 42, 3, 88, 1, 200]])
    # transformers' own class with Kinograph's config (its sizes, the released model's settings), given the values
    # the file holds in transformers' layout
    reference = type(built)(built.config).eval()
    reference.load_state_dict(held)
    with torch.no_grad():
        got = built(input_ids=ids).last_hidden_state
        want = reference(input_ids=ids).last_hidden_state
        reference.load_state_dict(model.state_dict())
        original = reference(input_ids=ids).last_hidden_state
    assert got.abs().max() > 0
    # Kinograph's expansion multiplies in float16 (ComfyUI-GGUF's maths), gguf-py's in float32: the weights differ
    # by float16's rounding, which Gemma's sqrt(width)-scaled states carry
    torch.testing.assert_close(got, want, atol=2e-3 * float(want.abs().max()), rtol=3e-3)
    assert (got - original).abs().max() < 0.1 * original.abs().max()          # Q8_0's rounding only


def test_kinograph_info_lists_the_gguf_under_transformers_names(tmp_path):
    from nodes.generate.detect import read_header
    model, arch, _ = _model("gemma3")
    _write_llama_cpp(model, arch, tmp_path / "gemma-3-Q8_0.gguf")
    header = read_header(tmp_path / "gemma-3-Q8_0.gguf")
    assert header.shapes["model.layers.1.pre_feedforward_layernorm.weight"] == (64,)
    assert header.dtypes["model.layers.0.self_attn.q_proj.weight"] == "Q8_0"
    assert not any(k.startswith(("blk.", "token_embd")) for k in header.shapes)


def _bare(path, arch: str, tensors: dict, heads=None):
    w = gguf.GGUFWriter(str(path), arch)
    if heads:
        w.add_head_count(heads)
        w.add_head_count_kv(heads)
    for name, a in tensors.items():
        w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_bad_language_model_ggufs_are_refused_by_name(tmp_path):
    import numpy as np
    from graph_engine import NodeError
    from nodes.generate.detect import detect_file
    from nodes.generate.weights import load_weights
    base = {"token_embd.weight": np.zeros((8, 4), np.float32), "blk.0.attn_q.weight": np.zeros((4, 4), np.float32)}
    _bare(tmp_path / "qwen3vl.gguf", "qwen3vl", base)
    with pytest.raises(NodeError, match=r"qwen3vl\.gguf is a llama\.cpp language model of architecture 'qwen3vl'"):
        detect_file(tmp_path / "qwen3vl.gguf")
    # the architectures read as safetensors only name the model, why, what is read and the file to use
    for arch, use in (("qwen3vl", "qwen3vl_8b_fp8_scaled"), ("gemma4", "gemma4_e4b_it_bf16"),
                      ("gpt-oss", "gpt_oss_20b_"), ("qwen35", "qwen3.5_4b_bf16")):
        _bare(tmp_path / f"{arch}.gguf", arch, base)
        with pytest.raises(NodeError, match=rf"architecture '{arch}', .*reads these as GGUF: llama, mistral3, qwen2, "
                                            rf"qwen2vl, qwen3, gemma2, gemma3\. Put ComfyUI's {re.escape(use)}"):
            detect_file(tmp_path / f"{arch}.gguf")
    _bare(tmp_path / "odd.gguf", "qwen3", {**base, "blk.0.attn_gate.weight": np.zeros((4, 4), np.float32)})
    with pytest.raises(NodeError, match=r"odd\.gguf: its tensor 'blk\.0\.attn_gate\.weight' is not one of llama"):
        detect_file(tmp_path / "odd.gguf")
    _bare(tmp_path / "noheads.gguf", "llama", base)
    with pytest.raises(NodeError, match=r"^noheads\.gguf: its metadata llama\.attention\.head_count is 'missing'"):
        load_weights(tmp_path / "noheads.gguf", torch.float32)
    _bare(tmp_path / "threeheads.gguf", "llama", base, heads=3)
    with pytest.raises(NodeError, match=r"threeheads\.gguf: its tensor model\.layers\.0\.self_attn\.q_proj\.weight "
                                        r"has 4 rows"):
        load_weights(tmp_path / "threeheads.gguf", torch.float32)


def test_a_llama_gguf_without_a_kv_head_count_has_as_many_as_query_heads(tmp_path, monkeypatch):
    """convert_hf_to_gguf.py writes {arch}.attention.head_count_kv only where the config names num_key_value_heads
    (Llama 1 / 2-7B style configs do not); llama.cpp's loader then takes the query heads' count, as transformers'
    LlamaConfig does. Such a file reads as the one with the count written."""
    import transformers as tr
    from nodes.generate.weights import load_weights
    torch.manual_seed(3)
    model = tr.LlamaModel(tr.LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, head_dim=64)).eval()
    held = _write_llama_cpp(model, "llama", tmp_path / "with.gguf")
    monkeypatch.setattr(gguf.GGUFWriter, "add_head_count_kv", lambda self, n: None)
    _write_llama_cpp(model, "llama", tmp_path / "without.gguf")
    got = load_weights(tmp_path / "without.gguf", torch.float32)
    for k in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"):
        torch.testing.assert_close(got[k], held[k[len("model."):]], atol=1e-3, rtol=1e-3)


def test_a_gguf_replaced_by_another_of_the_same_size_and_time_is_read_again(tmp_path):
    """The header kept per file state: a file put in place of another (a re-published quantisation with its
    metadata fixed, fetched by a tool that keeps the server's modification time, here an equal size) is read anew."""
    import os
    import numpy as np
    from nodes.generate.detect import read_header
    base = {"token_embd.weight": np.zeros((8, 4), np.float32), "blk.0.attn_q.weight": np.zeros((4, 4), np.float32)}
    path = tmp_path / "encoder-Q8_0.gguf"
    _bare(path, "llama", base, heads=2)
    first = os.stat(path)
    assert read_header(path).metadata["general.architecture"] == "llama"
    _bare(tmp_path / "download.part", "qwen3", base, heads=2)
    os.replace(tmp_path / "download.part", path)
    os.utime(path, ns=(first.st_atime_ns, first.st_mtime_ns))
    assert os.stat(path).st_size == first.st_size
    assert read_header(path).metadata["general.architecture"] == "qwen3"


def test_a_tokenizer_s_arrays_are_not_walked_entry_by_entry_to_list_the_tensors(tmp_path, monkeypatch):
    """A language model GGUF holds its tokenizer: Qwen's 152k tokens, 151k merges and 152k kinds. The gguf package's
    reader made numpy views of each entry (35 s for the header and 51 s more in diffusers' loader on the shared test
    machine, for a 3-tensor file); neither the header nor the weights read a token, so entries are counted, not
    viewed. Counted here as the reader's element reads, which must stay well under the number of tokens."""
    import numpy as np
    from gguf import GGUFReader
    from nodes.generate.detect import read_header
    from nodes.generate.weights import load_weights
    tokens = [f"t{i}" for i in range(20000)]
    path = tmp_path / "Qwen3-4B-Q8_0.gguf"
    w = gguf.GGUFWriter(str(path), "qwen3")
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([1] * len(tokens))
    w.add_token_merges([f"t{i} t{i + 1}" for i in range(len(tokens) - 1)])
    w.add_array("comfy.gguf.orig_shape.token_embd.weight", [4, 8])
    tensors = {"token_embd.weight": np.arange(32, dtype=np.float32).reshape(8, 4),
               "blk.0.attn_q.weight": np.ones((4, 4), np.float32)}
    for name, a in tensors.items():
        w.add_tensor(name, a)
    _close = (w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close())
    reads = []
    real = GGUFReader._get
    monkeypatch.setattr(GGUFReader, "_get", lambda self, *a, **k: reads.append(1) or real(self, *a, **k))
    header = read_header(path)
    state = load_weights(path, torch.float32)
    assert len(reads) < len(tokens) / 10 and _close
    assert header.shapes == {"model.embed_tokens.weight": (4, 8), "model.layers.0.self_attn.q_proj.weight": (4, 4)}
    assert torch.equal(state["model.embed_tokens.weight"], torch.arange(32.0).reshape(4, 8))


def test_a_ministral_3_gguf_is_not_taken_for_flux2_s_mistral_small(tmp_path):
    """llama.cpp writes Mistral Small 3.x (FLUX.2's encoder) and Ministral 3 both as mistral3 with Mistral's
    131072-token vocabulary; Ministral 3 (14B: Mistral Small's width) scales its attention by position (Llama 4's
    attention temperature, convert_hf_to_gguf.py's add_attn_temperature_scale) and stretches its rotary angles
    (YaRN), which FLUX.2's encoder does not: its states read as Mistral Small's would be other features, silently."""
    import numpy as np
    from graph_engine import NodeError
    from nodes.generate.detect import detect_file
    model, arch, _ = _model("mistral3")
    _write_llama_cpp(model, "mistral3", tmp_path / "Mistral-Small-3.2-24B-Q8_0.gguf")
    assert detect_file(tmp_path / "Mistral-Small-3.2-24B-Q8_0.gguf").role == "text_encoder"
    w = gguf.GGUFWriter(str(tmp_path / "Ministral-3-14B-Instruct-2512-Q8_0.gguf"), "mistral3")
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_attn_temperature_scale(0.1)
    w.add_rope_scaling_yarn_log_mul(1.0)
    w.add_tensor("token_embd.weight", np.zeros((131072, 32), np.float16))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((32, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(NodeError, match=r"Ministral-3-14B-Instruct-2512-Q8_0\.gguf is Ministral 3 .*not Mistral Small"):
        detect_file(tmp_path / "Ministral-3-14B-Instruct-2512-Q8_0.gguf")


@pytest.mark.parametrize("kind", ["Q4_K", "Q6_K", "Q2_K"])
def test_k_quant_query_and_key_rows_are_put_back_whole(tmp_path, kind):
    """llama.cpp quantises along a row (a K-quant block: 256 of a row's values), so every row of a query or key
    projection is whole blocks and moving rows of blocks is moving rows of values: the blocks put back, then
    expanded, equal gguf-py's expansion of the file's blocks with the published permute taken back on the values.
    8 query heads over 4 key heads (grouped), rows of 256 values (one block) and 512 (two)."""
    import numpy as np
    from tests import gguf_blocks
    from nodes.generate.weights import load_weights
    q_type = getattr(T, kind)
    tensors = {"token_embd.weight": (None, np.zeros((8, 256), np.float32)),
               "blk.0.attn_q.weight": (q_type, gguf_blocks.blocks(q_type, 512, 256, seed=1)),
               "blk.0.attn_k.weight": (q_type, gguf_blocks.blocks(q_type, 256, 512, seed=2))}
    w = gguf.GGUFWriter(str(tmp_path / "llama-3.1-8b.gguf"), "llama")
    w.add_head_count(8)
    w.add_head_count_kv(4)
    for name, (quant, a) in tensors.items():
        w.add_tensor(name, a, raw_dtype=quant) if quant is not None else w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    got = load_weights(tmp_path / "llama-3.1-8b.gguf", torch.float32)
    for name, heads, cols in (("q_proj", 8, 256), ("k_proj", 4, 512)):
        stored = tensors[f"blk.0.attn_{name[0]}.weight"][1]
        values = torch.from_numpy(gguf.quants.dequantize(stored, q_type).reshape(-1, cols).copy())
        want = values.reshape(heads, values.shape[0] // heads // 2, 2, cols).transpose(1, 2).reshape(values.shape)
        torch.testing.assert_close(got[f"model.layers.0.self_attn.{name}.weight"].float(), want,
                                   atol=2e-3 * float(want.abs().max()), rtol=1e-2)
