"""The tokenizer a llama.cpp GGUF keeps in its metadata (tokenizer.ggml.*), rebuilt as a transformers tokenizer so a
text encoder GGUF needs no tokenizer folder beside it.

Three of llama.cpp's tokenizer kinds are rebuilt. "gpt2", byte-level BPE (Llama 3, Qwen2.5-VL, Qwen3, Mistral's tekken):
the vocabulary in id order, the merges, and the pre-tokenizer that tokenizer.ggml.pre names, whose splitting pattern is
the one the model's own tokenizer.json holds (llama.cpp's llama-vocab.cpp quotes each). "llama", sentencepiece (Gemma
2 / 3): the pieces, scores and kinds are put back into a sentencepiece model, which Gemma's transformers tokenizer
reads as it reads Google's tokenizer.model. "t5", sentencepiece unigram (city96's T5 / umT5 encoders): the pieces and
the character map put back into a sentencepiece model, read as ComfyUI's spiece_model tensor is. Any other kind is not
rebuilt: the loader then looks for the tokenizer's files in folders, as for a safetensors file."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

from graph_engine import NodeError
from nodes.generate.per_file import kept_per_file

# tokenizer.json's Split patterns (Llama 3's, Qwen2's, Mistral's tekken), by the names llama.cpp gives them
_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
           r"\s+(?!\S)|\s+")
_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
          r"\s+(?!\S)|\s+")
_TEKKEN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?"
           r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|"
           r"\s+(?!\S)|\s+")
SPLITS = {"llama3": _LLAMA3, "llama-v3": _LLAMA3, "llama-bpe": _LLAMA3, "qwen2": _QWEN2, "tekken": _TEKKEN}
# the pre-tokenizers llama.cpp gives a whole word found in the vocabulary as one token (tokenizer.json's
# ignore_merges) and a leading <bos> unless the file says otherwise
_WHOLE_WORDS = ("llama3", "llama-v3", "llama-bpe", "tekken")
# the pre-tokenizers whose tokenizer.json composes the text first (Qwen2's NFC normaliser, which llama.cpp does not
# record): "e" + a combining accent then gives the tokens of "é", as through the model's own tokenizer
_COMPOSED = ("qwen2",)
# llama.cpp's token kinds (gguf-py's TokenType, sentencepiece's piece types by the same numbers)
CONTROL, USER_DEFINED, BYTE = 3, 4, 6


# each text encoder load asks again, and rebuilding a language model's 150k tokens and merges takes seconds
@kept_per_file(maxsize=4)
def gguf_tokenizer(path: Path, family: str) -> Tuple[Optional[object], str]:
    """(the tokenizer stored in GGUF `path`, None where it holds none Kinograph rebuilds; what it holds, in words),
    rebuilt once for the file as it stands. family: the detected text encoder's (Gemma's sentencepiece is read the way
    its transformers tokenizer reads it)."""
    meta = _fields(path)
    kind = meta.get("tokenizer.ggml.model")
    if not kind:
        return None, "no tokenizer (tokenizer.ggml.model)"
    pre = meta.get("tokenizer.ggml.pre", "")
    if kind == "gpt2" and pre in SPLITS:
        return _bpe(meta, pre, path.name), ""
    if kind == "llama" and family in ("gemma2", "gemma3"):
        from nodes.generate.ltx2_text import gemma_tokenizer
        return gemma_tokenizer(_sentencepiece(meta, path.name)), ""
    if kind == "t5":
        from nodes.generate.split import spiece_tokenizer
        return spiece_tokenizer(_sentencepiece(meta, path.name, unigram=True)), ""
    return None, (f"llama.cpp's {kind!r} tokenizer" + (f" (pre-tokenizer {pre!r})" if pre else "") +
                  ", which Kinograph does not rebuild")


def _fields(path: Path) -> dict:
    """The file's tokenizer metadata this module rebuilds from (tokenizer.ggml.*, tokenizer.chat_template) as Python
    values: the rest is skipped unread, llama.cpp's tokenizer.huggingface.json (the model's whole tokenizer.json as
    one text, megabytes) among it."""
    from nodes.generate.detect import gguf_fields
    try:
        return gguf_fields(path, lambda key: key.startswith("tokenizer.ggml.") or key == "tokenizer.chat_template")
    except (OSError, ValueError) as exc:
        raise NodeError(f"{path} is not a readable GGUF file ({exc}): it is truncated or corrupt. Copy the file "
                        "again.") from None


def _tokens(meta: dict, file: str) -> Tuple[list, list]:
    tokens, kinds = meta.get("tokenizer.ggml.tokens"), meta.get("tokenizer.ggml.token_type")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens) or not tokens:
        raise NodeError(f"{file}: its tokenizer has no list of tokens (tokenizer.ggml.tokens). The file is damaged; "
                        "get it again from where it was published")
    if kinds is None:
        kinds = [1] * len(tokens)
    if not isinstance(kinds, list) or len(kinds) != len(tokens):
        raise NodeError(f"{file}: its tokenizer lists {len(tokens):,} tokens but not one kind for each "
                        "(tokenizer.ggml.token_type). The file is damaged; get it again from where it was published")
    if len(set(tokens)) != len(tokens):
        raise NodeError(f"{file}: its tokenizer lists a token twice (tokenizer.ggml.tokens). The file is damaged; get "
                        "it again from where it was published")
    return tokens, kinds


def _special(meta: dict, tokens: list, what: str) -> Optional[str]:
    at = meta.get(f"tokenizer.ggml.{what}_token_id")
    return tokens[at] if isinstance(at, int) and 0 <= at < len(tokens) else None


def _bpe(meta: dict, pre: str, file: str):
    """Byte-level BPE as the model's tokenizer.json builds it: the pattern's pieces, each as bytes mapped to
    characters, merged by rank; control and user-defined tokens matched whole before that."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    tokens, kinds = _tokens(meta, file)
    merges = meta.get("tokenizer.ggml.merges") or []
    pairs = [tuple(m.split(" ")) for m in merges] if isinstance(merges, list) else []
    if len(pairs) != len(merges) or any(len(p) != 2 for p in pairs):
        raise NodeError(f"{file}: its tokenizer's merges (tokenizer.ggml.merges) are not pairs of tokens. The file is "
                        "damaged; get it again from where it was published")
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, pairs, ignore_merges=pre in _WHOLE_WORDS))
    if pre in _COMPOSED:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLITS[pre]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_tokens([AddedToken(t, special=k == CONTROL, normalized=False)
                    for t, k in zip(tokens, kinds) if k in (CONTROL, USER_DEFINED)])
    bos, eos = _special(meta, tokens, "bos"), _special(meta, tokens, "eos")
    add_bos = meta.get("tokenizer.ggml.add_bos_token", pre in _WHOLE_WORDS) and bos is not None
    add_eos = meta.get("tokenizer.ggml.add_eos_token", False) and eos is not None
    steps = [processors.ByteLevel(trim_offsets=False)]
    if add_bos or add_eos:
        ends = [(t, tokens.index(t)) for t, on in ((bos, add_bos), (eos, add_eos)) if on]
        single = " ".join(([bos] if add_bos else []) + ["$A"] + ([eos] if add_eos else []))
        steps.append(processors.TemplateProcessing(single=single, special_tokens=ends))
    tok.post_processor = processors.Sequence(steps)
    # no padding token (Llama 3's): padding with the end token, which the attention mask hides
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos,
                                   pad_token=_special(meta, tokens, "padding") or eos,
                                   unk_token=_special(meta, tokens, "unknown"),
                                   chat_template=meta.get("tokenizer.chat_template"))


def _sentencepiece(meta: dict, file: str, unigram: bool = False) -> bytes:
    """A serialized sentencepiece model (BPE, or unigram: T5's) of the file's pieces, scores and kinds (llama.cpp's
    "llama" and "t5" kinds keep sentencepiece's pieces as they are), its special pieces and its normaliser: T5's
    character map (tokenizer.ggml.precompiled_charsmap) and spacing settings."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    tokens, kinds = _tokens(meta, file)
    scores = meta.get("tokenizer.ggml.scores")
    if not isinstance(scores, list) or len(scores) != len(tokens):
        raise NodeError(f"{file}: its sentencepiece tokenizer lists {len(tokens):,} tokens but not one score for each "
                        "(tokenizer.ggml.scores). The file is damaged; get it again from where it was published")
    model = pb.ModelProto()
    for token, score, kind in zip(tokens, scores, kinds):
        model.pieces.add(piece=token, score=float(score), type=kind if kind in (1, 2, 3, 4, 5, 6) else 1)
    spec = model.trainer_spec
    spec.model_type = pb.TrainerSpec.UNIGRAM if unigram else pb.TrainerSpec.BPE
    spec.vocab_size = len(tokens)
    spec.byte_fallback = BYTE in kinds
    for what, field in (("unknown", "unk"), ("bos", "bos"), ("eos", "eos"), ("padding", "pad")):
        piece = _special(meta, tokens, what)
        setattr(spec, f"{field}_id", tokens.index(piece) if piece is not None else -1)
        if piece is not None:
            setattr(spec, f"{field}_piece", piece)
    charsmap = meta.get("tokenizer.ggml.precompiled_charsmap")
    if isinstance(charsmap, list) and charsmap:
        model.normalizer_spec.precompiled_charsmap = bytes(b & 0xFF for b in charsmap)
    else:
        model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    model.normalizer_spec.remove_extra_whitespaces = bool(meta.get("tokenizer.ggml.remove_extra_whitespaces", False))
    model.normalizer_spec.escape_whitespaces = True
    return model.SerializeToString()
