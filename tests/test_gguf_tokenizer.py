"""A llama.cpp GGUF keeps its tokenizer in its metadata (tokenizer.ggml.*). Tiny tokenizers are trained here (a
byte-level BPE with each model's published splitting pattern, a sentencepiece BPE as Gemma's), written into a GGUF as
llama.cpp's convert_hf_to_gguf.py writes them, and the tokenizer Kinograph's loader finds for that file (no folder
beside it) must give the trained tokenizer's own token ids."""
from __future__ import annotations

import json

import pytest

gguf = pytest.importorskip("gguf")

CORPUS = ["A red fox jumps over the lazy dog.", "It's 12345 o'clock; the fox's den is 67 meters away!",
          "Café, naïve, 東京 and Zürich in the rain.\n\nNew lines   and  spaces.", "THE QUICK brown Fox, the quick.",
          "CamelCase HTTPServer MiXeD JSONParser iPhone CamelCase HTTPServer"] * 20
TEXTS = ["a red fox", "It's 2024: 12345 foxes!", "Café naïve 東京\n\n  spaced   out ", "UPPER lower MiXeD CamelCase HTTPServer",
         "<|im_start|>user\nA fox<|im_end|>", "<start_of_turn>user\nhi<end_of_turn>"]

# tokenizer.json's Split patterns as the models publish them (Qwen2.5-VL's, Meta-Llama-3.1's, Mistral-Small-3.1's)
PUBLISHED = {
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
                 r"\s+(?!\S)|\s+",
    "tekken": r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?"
              r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|"
              r"\s+(?!\S)|\s+"}
# (begin token, whether the model's tokenizer puts it first, its end token) for each
ENDS = {"qwen2": (None, False, "<|im_end|>"), "llama-bpe": ("<|begin_of_text|>", True, "<|eot_id|>"),
        "tekken": ("<s>", True, "</s>")}
TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"


def _trained_bpe(pre: str):
    """A byte-level BPE trained as the model's tokenizer.json lays one out; its special tokens whole."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    bos, add_bos, eos = ENDS[pre]
    specials = [t for t in (bos, eos, "<|endoftext|>", "<|im_start|>", "<|im_end|>") if t]
    tok = Tokenizer(models.BPE(ignore_merges=pre != "qwen2"))
    # trained on whole lines, so that merges cross digits, case changes and spaces: then which pieces the pattern
    # cuts decides the tokens, and another pattern gives others
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=600, special_tokens=list(dict.fromkeys(specials)),
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(PUBLISHED[pre]), "isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    steps = [processors.ByteLevel(trim_offsets=False)]
    if add_bos:
        steps.append(processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))]))
    tok.post_processor = processors.Sequence(steps)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token="<|endoftext|>")


def _writer(path, arch="qwen2vl"):
    import numpy as np
    w = gguf.GGUFWriter(str(path), arch)
    w.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    return w


def _close(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _write_bpe(path, reference, pre: str):
    """As convert_hf_to_gguf.py's _set_vocab_gpt2: tokens by id, special added tokens CONTROL, the merges as
    "left right", the pre-tokenizer's name, the special ids, the chat template."""
    w = _writer(path)
    _bpe_metadata(w, reference, pre)
    _close(w)


def _bpe_metadata(w, reference, pre: str):
    inner = json.loads(reference.backend_tokenizer.to_str())
    by_id = {i: t for t, i in reference.get_vocab().items()}
    special = {a["content"] for a in inner["added_tokens"] if a["special"]}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list([by_id[i] for i in range(len(by_id))])
    w.add_token_types([gguf.TokenType.CONTROL if by_id[i] in special else gguf.TokenType.NORMAL
                       for i in range(len(by_id))])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in inner["model"]["merges"]])
    bos, add_bos, eos = ENDS[pre]
    if bos:
        w.add_bos_token_id(reference.convert_tokens_to_ids(bos))
    w.add_eos_token_id(reference.convert_tokens_to_ids(eos))
    w.add_pad_token_id(reference.convert_tokens_to_ids("<|endoftext|>"))
    w.add_add_bos_token(add_bos)
    w.add_chat_template(TEMPLATE)


def _found(path, family):
    """The tokenizer Kinograph's loader finds for the text encoder file `path`."""
    from nodes.generate.detect import Detection
    from nodes.generate.split import tokenizer
    return tokenizer(path, Detection("text_encoder", family, ""))


@pytest.mark.parametrize("pre,family", [("qwen2", "qwen25vl"), ("llama-bpe", "llama"), ("tekken", "mistral3")])
def test_the_byte_level_bpe_a_gguf_holds_tokenizes_as_the_model_s_own(tmp_path, pre, family):
    reference = _trained_bpe(pre)
    _write_bpe(tmp_path / f"{pre}-Q8_0.gguf", reference, pre)
    got = _found(tmp_path / f"{pre}-Q8_0.gguf", family)
    for text in TEXTS:
        assert got(text).input_ids == reference(text).input_ids, text
    assert got.decode(got("Café 東京").input_ids, skip_special_tokens=True) == "Café 東京"
    assert got.pad_token == "<|endoftext|>" and got.eos_token == ENDS[pre][2]
    chat = got.apply_chat_template([{"role": "user", "content": "a fox"}], tokenize=False)
    assert chat == "<|im_start|>user\na fox<|im_end|>\n"
    assert got(chat, add_special_tokens=False).input_ids[0] == reference.convert_tokens_to_ids("<|im_start|>")


def _trained_sentencepiece() -> bytes:
    """A sentencepiece BPE set up as Gemma's tokenizer.model: byte fallback, no space put before the text, no
    normalisation, <pad> <eos> <bos> <unk> first (Gemma's names), turn markers whole."""
    import io
    import sentencepiece as spm
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=out, vocab_size=360,
                                   model_type="bpe", byte_fallback=True, add_dummy_prefix=False,
                                   normalization_rule_name="identity", remove_extra_whitespaces=False,
                                   pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
                                   bos_piece="<bos>", unk_piece="<unk>", split_digits=True, hard_vocab_limit=False,
                                   user_defined_symbols=["<start_of_turn>", "<end_of_turn>"], minloglevel=2)
    return out.getvalue()


def _write_sentencepiece(path, data: bytes, arch: str):
    """As convert_hf_to_gguf.py's _create_vocab_sentencepiece and Gemma2Model.set_vocab: each piece with its score
    and kind, the special ids, no space prefix."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_proto=data)
    T = gguf.TokenType
    kinds = []
    for i in range(sp.get_piece_size()):
        kinds.append(T.UNKNOWN if sp.is_unknown(i) else T.CONTROL if sp.is_control(i) else
                     T.UNUSED if sp.is_unused(i) else T.BYTE if sp.is_byte(i) else
                     T.USER_DEFINED if sp.id_to_piece(i) in ("<start_of_turn>", "<end_of_turn>") else T.NORMAL)
    w = _writer(path, arch)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list([sp.id_to_piece(i) for i in range(sp.get_piece_size())])
    w.add_token_scores([sp.get_score(i) for i in range(sp.get_piece_size())])
    w.add_token_types(kinds)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_pad_token_id(sp.pad_id())
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    _close(w)
    return sp


@pytest.mark.parametrize("arch", ["gemma2", "gemma3"])
def test_gemma_s_sentencepiece_in_a_gguf_tokenizes_as_sentencepiece(tmp_path, arch):
    data = _trained_sentencepiece()
    sp = _write_sentencepiece(tmp_path / f"{arch}-Q8_0.gguf", data, arch)
    got = _found(tmp_path / f"{arch}-Q8_0.gguf", arch)
    for text in TEXTS:
        assert got(text).input_ids == [sp.bos_id()] + sp.encode(text), text
    assert got.decode(got("Zürich 東京").input_ids, skip_special_tokens=True) == "Zürich 東京"


def test_t5_s_sentencepiece_in_a_gguf_tokenizes_as_sentencepiece(tmp_path):
    """city96's T5 / umT5 encoder GGUFs keep T5's unigram sentencepiece (convert_hf_to_gguf.py's T5Model.set_vocab):
    the pieces, scores and kinds, NFKC's character map, the spacing settings, </s> put last."""
    import io
    import sentencepiece as spm
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=out, vocab_size=200,
                                   model_type="unigram", normalization_rule_name="nmt_nfkc", pad_id=0, eos_id=1,
                                   unk_id=2, bos_id=-1, hard_vocab_limit=False, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=out.getvalue())
    from sentencepiece import sentencepiece_model_pb2 as pb
    proto = pb.ModelProto.FromString(out.getvalue())
    T = gguf.TokenType
    w = _writer(tmp_path / "umt5-xxl-encoder-Q8_0.gguf", "t5encoder")
    w.add_tokenizer_model("t5")
    w.add_tokenizer_pre("default")
    w.add_token_list([sp.id_to_piece(i) for i in range(sp.get_piece_size())])
    w.add_token_scores([sp.get_score(i) for i in range(sp.get_piece_size())])
    w.add_token_types([T.UNKNOWN if sp.is_unknown(i) else T.CONTROL if sp.is_control(i) else T.NORMAL
                       for i in range(sp.get_piece_size())])
    w.add_add_space_prefix(proto.normalizer_spec.add_dummy_prefix)
    w.add_remove_extra_whitespaces(proto.normalizer_spec.remove_extra_whitespaces)
    w.add_precompiled_charsmap(proto.normalizer_spec.precompiled_charsmap)
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_pad_token_id(sp.pad_id())
    w.add_add_bos_token(False)
    w.add_add_eos_token(True)
    _close(w)
    got = _found(tmp_path / "umt5-xxl-encoder-Q8_0.gguf", "umt5")
    for text in TEXTS + ["\uff21\uff22 full-width \u2460 and\ttabs"]:       # NFKC folds those
        assert got(text).input_ids == sp.encode(text) + [sp.eos_id()], text


def test_a_tokenizer_kinograph_does_not_rebuild_is_named_in_the_message(tmp_path):
    from graph_engine import NodeError
    w = _writer(tmp_path / "rwkv.gguf")
    w.add_tokenizer_model("rwkv")
    w.add_token_list(["a", "b"])
    _close(w)
    with pytest.raises(NodeError, match=r"(?s)no tokenizer found for rwkv\.gguf.*the metadata of rwkv\.gguf: it holds "
                                        r"llama\.cpp's 'rwkv' tokenizer, which Kinograph does not rebuild"):
        _found(tmp_path / "rwkv.gguf", "qwen25vl")


def test_a_damaged_gguf_tokenizer_is_refused_by_name(tmp_path):
    from graph_engine import NodeError
    w = _writer(tmp_path / "twice.gguf")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(["a", "b", "a"])
    w.add_token_merges([])
    _close(w)
    with pytest.raises(NodeError, match=r"twice\.gguf: its tokenizer lists a token twice"):
        _found(tmp_path / "twice.gguf", "qwen25vl")
    w = _writer(tmp_path / "merges.gguf")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(["a", "b", "ab"])
    w.add_token_merges(["a b c"])
    _close(w)
    with pytest.raises(NodeError, match=r"merges\.gguf: its tokenizer's merges .* are not pairs of tokens"):
        _found(tmp_path / "merges.gguf", "qwen25vl")


def write_qwen25vl(path, reference):
    """A tiny Qwen2.5-VL language model written as llama.cpp writes it, with `reference`'s tokenizer in its metadata;
    returns the values the file holds in transformers' names."""
    import torch
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel
    from tests.test_gguf_llm_encoder import _write_llama_cpp
    torch.manual_seed(0)
    model = Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
        vocab_size=len(reference), hidden_size=256, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]})).eval()
    return _write_llama_cpp(model, "qwen2vl", path, lambda w: _bpe_metadata(w, reference, "qwen2"))


def test_a_qwen_image_encoder_gguf_needs_no_tokenizer_folder(tmp_path, monkeypatch):
    """Through load.text_encoder (type qwen_image): a Qwen2.5-VL GGUF with its tokenizer inside and nothing beside it
    encodes a prompt as the safetensors file of the same values does with the same tokenizer in a folder beside it."""
    import torch
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    folder = tmp_path / "models" / "text_encoders"
    folder.mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    reference = _trained_bpe("qwen2")
    gguf_path = folder / "Qwen2.5-VL-7B-Instruct-Q8_0.gguf"
    held = write_qwen25vl(gguf_path, reference)
    save_file({"model." + k: v.contiguous() for k, v in held.items()}, str(folder / "qwen_values_fp32.safetensors"))
    reference.save_pretrained(str(folder / "qwen_values_fp32"))
    got, want = (encode_prompt(load_text_encoder(ModelManager(), name, "", "qwen_image", "cpu"), "a red fox").embeds
                 for name in (gguf_path.name, "qwen_values_fp32.safetensors"))
    assert not (folder / gguf_path.stem).exists() and got.shape == want.shape and got.abs().max() > 0
    torch.testing.assert_close(got.float(), want.float(), atol=2e-3 * float(want.abs().max()), rtol=3e-3)



def test_qwen2_s_gguf_tokenizer_composes_unicode_as_qwen2_s_own(tmp_path):
    """Qwen2's tokenizer (transformers' Qwen2Tokenizer, the reference here, and Qwen's tokenizer.json) composes
    text to NFC before splitting it: a prompt typed or pasted with a combining accent (e + U+0301, as macOS keyboards
    and many web pages give it) gets the same tokens as one with é. The GGUF keeps no normaliser; qwen2 implies it."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    trained = _trained_bpe("qwen2")
    inner = json.loads(trained.backend_tokenizer.to_str())
    reference = Qwen2Tokenizer(vocab=inner["model"]["vocab"], merges=[tuple(m) for m in inner["model"]["merges"]])
    reference.add_tokens([AddedToken(t, special=True) for t in ("<|im_start|>", "<|im_end|>")])
    _write_bpe(tmp_path / "Qwen3-4B-Q8_0.gguf", reference, "qwen2")
    got = _found(tmp_path / "Qwen3-4B-Q8_0.gguf", "qwen3")
    for text in TEXTS + ["Cafe\u0301 nai\u0308ve Zu\u0308rich", "\u212b ang\u0301strom"]:
        assert got(text).input_ids == reference(text).input_ids, text
    assert got("Cafe\u0301").input_ids == got("Caf\u00e9").input_ids


def _write_tiny_bpe(path, tokens, merges):
    w = _writer(path)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    _close(w)


def test_a_gguf_s_tokenizer_is_rebuilt_once_until_the_file_changes(tmp_path, monkeypatch):
    """Each loader and encode asks for the tokenizer again: the same file gives the one rebuilt, without reading its
    metadata again; a file written over it (another vocabulary) gives its own."""
    import nodes.generate.gguf_tokenizer as gt
    path = tmp_path / "qwen-Q8_0.gguf"
    _write_tiny_bpe(path, ["a", "b", "ab"], ["a b"])
    reads = []
    fields = gt._fields
    monkeypatch.setattr(gt, "_fields", lambda p: reads.append(p) or fields(p))
    first = _found(path, "qwen25vl")
    assert first("ab", add_special_tokens=False).input_ids == [2]
    assert _found(path, "qwen25vl") is first and len(reads) == 1
    _write_tiny_bpe(path, ["b", "a", "c", "ab"], ["a b"])
    assert _found(path, "qwen25vl")("ab", add_special_tokens=False).input_ids == [3]
    assert len(reads) == 2


def test_the_tokenizer_reads_only_the_metadata_it_rebuilds_from(tmp_path):
    """llama.cpp's converter may keep the model's whole tokenizer.json as one text (tokenizer.huggingface.json, some
    MB), which nothing rebuilds from: it was read into memory with the tokenizer's other entries."""
    from nodes.generate import gguf_tokenizer as gt
    w = _writer(tmp_path / "hf.gguf")
    w.add_tokenizer_model("rwkv")
    w.add_token_list(["a", "b"])
    w.add_chat_template(TEMPLATE)
    w.add_string("tokenizer.huggingface.json", "{" + " " * 100_000 + "}")
    _close(w)
    assert set(gt._fields(tmp_path / "hf.gguf")) == {"tokenizer.ggml.model", "tokenizer.ggml.tokens",
                                                    "tokenizer.chat_template"}
