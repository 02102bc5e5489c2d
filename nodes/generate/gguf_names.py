"""llama.cpp's tensor names of a text-encoder GGUF as transformers' names, so the text-encoder detection and
converters read such a file as the safetensors one. T5 / umT5 encoders (city96's t5-v1_1-xxl-encoder-*.gguf,
umt5-xxl-encoder-*.gguf, which ComfyUI-GGUF's CLIPLoaderGGUF reads): ComfyUI-GGUF's T5_SD_MAP pieces (llama.cpp's
convert_hf_to_gguf writes T5 tensors unchanged, only renamed). Decoder language models (Llama, Mistral, Qwen2 / 2.5-VL,
Qwen3, Gemma 2 / 3): gguf-py's tensor map read backwards, and the two value layouts llama.cpp's converter changes
(Llama's query / key row order, Gemma's norm offset) put back."""
from __future__ import annotations

from typing import Dict, Iterable, Optional

# Replaced in this order, each piece anywhere in the name (as ComfyUI-GGUF does).
_T5_PIECES = (("enc.", "encoder."), (".blk.", ".block."), ("token_embd", "shared"),
              ("output_norm", "final_layer_norm"),
              ("attn_q", "layer.0.SelfAttention.q"), ("attn_k", "layer.0.SelfAttention.k"),
              ("attn_v", "layer.0.SelfAttention.v"), ("attn_o", "layer.0.SelfAttention.o"),
              ("attn_norm", "layer.0.layer_norm"), ("attn_rel_b", "layer.0.SelfAttention.relative_attention_bias"),
              ("ffn_up", "layer.1.DenseReluDense.wi_1"), ("ffn_down", "layer.1.DenseReluDense.wo"),
              ("ffn_gate", "layer.1.DenseReluDense.wi_0"), ("ffn_norm", "layer.1.layer_norm"))


def t5_renames(names: Iterable[str]) -> Optional[Dict[str, str]]:
    """llama.cpp name -> transformers name for every tensor of a T5 encoder GGUF; None for any other file (one
    without enc.blk.0.attn_q.weight). A non-gated T5 (t5-base: ffn_up only) has its one input matrix as wi."""
    names = list(names)
    if "enc.blk.0.attn_q.weight" not in names:
        return None
    gated = "enc.blk.0.ffn_gate.weight" in names
    out = {}
    for name in names:
        new = name
        for old, to in _T5_PIECES:
            new = new.replace(old, to)
        if not gated:
            new = new.replace("DenseReluDense.wi_1", "DenseReluDense.wi")
        out[name] = new
    return out


# llama.cpp's language-model architectures whose text encoders Kinograph reads in transformers' form: Llama 3
# (HunyuanVideo's llava-llama3, HiDream's Llama 3.1), Mistral Small (FLUX.2, llama or mistral3), Qwen2.5-VL's language
# model (Qwen-Image, HunyuanVideo 1.5: qwen2vl), Qwen3 (Z-Image, FLUX.2 [klein]), Gemma 2 (Lumina 2, NewBie) and
# Gemma 3 (LTX-2).
LLM_ARCHS = ("llama", "mistral3", "qwen2", "qwen2vl", "qwen3", "gemma2", "gemma3")
# llama.cpp's converter (LlamaModel.permute) reorders these architectures' query and key rows for its rotary layout
PERMUTED = ("llama", "mistral3")
# and stores these architectures' RMS norm weights as 1 + w, the scale Gemma's norms apply (Gemma2Model, Gemma3Model)
SHIFTED = ("gemma2", "gemma3")

# tensor_mapping.py's names, read backwards (gguf-py's MODEL_TENSOR names -> transformers' Llama / Qwen / Gemma ones)
_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLOCK = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
          "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
          "attn_k_norm": "self_attn.k_norm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
          "ffn_down": "mlp.down_proj", "ffn_norm": "post_attention_layernorm"}
# Gemma 2 / 3 norm both sides of each sublayer: ffn_norm is the one before the feed-forward there
_SANDWICH = {"post_attention_norm": "post_attention_layernorm", "ffn_norm": "pre_feedforward_layernorm",
             "post_ffw_norm": "post_feedforward_layernorm"}
# Llama 3.1's long-context rotary factors: transformers computes them from its config, the encoders read short prompts
_DROPPED = ("rope_freqs.weight",)


# llama.cpp architectures of text encoders Kinograph reads in safetensors form only: what each is, why its GGUF is not
# read, and the file to use instead
_SAFETENSORS_ONLY = {
    "qwen3vl": ("Qwen3-VL (Qwen-Image 2.1's, Krea 2's, JoyImage's encoder)", "Kinograph builds it with its vision "
                "tower, which llama.cpp keeps in a projector file of another layout (deepstack mergers) it does not "
                "read", "qwen3vl_8b_fp8_scaled.safetensors or qwen3vl_4b_bf16.safetensors"),
    "qwen35": ("Qwen3.5 (MOSS-Image's encoder)", "its linear-attention layers are not among the GGUF layouts read",
               "qwen3.5_4b_bf16.safetensors (or its 2B / 9B)"),
    "gemma4": ("Gemma 4", "its layers are not among the GGUF layouts read", "gemma4_e4b_it_bf16.safetensors"),
    "gpt-oss": ("GPT-OSS (Lens's encoder)", "its routed experts and attention sinks are not among the GGUF layouts "
                "read", "gpt_oss_20b_*.safetensors"),
}


def is_llm(names: Iterable[str]) -> bool:
    """Whether the tensors are a llama.cpp decoder language model's (token_embd and blk.N.attn_q)."""
    names = set(names)
    return "token_embd.weight" in names and "blk.0.attn_q.weight" in names


def llm_renames(names: Iterable[str], arch: str, file: str) -> Dict[str, Optional[str]]:
    """llama.cpp name -> transformers name (`model.layers.N...`, as ComfyUI's safetensors text encoders hold them) for
    every tensor of a language-model GGUF of architecture `arch` (general.architecture); None for a tensor not read.
    NodeError for another architecture or a tensor outside the architecture's layout."""
    from graph_engine import NodeError
    if arch in _SAFETENSORS_ONLY:
        what, why, use = _SAFETENSORS_ONLY[arch]
        raise NodeError(f"{file} is a llama.cpp language model of architecture {arch!r}, {what}: {why}. Kinograph "
                            f"reads these as GGUF: {', '.join(LLM_ARCHS)}. Put ComfyUI's {use} in text_encoders/ "
                            "instead")
    if arch not in LLM_ARCHS:
        raise NodeError(f"{file} is a llama.cpp language model of architecture {arch or 'unstated'!r}: Kinograph reads "
                        f"these as GGUF: {', '.join(LLM_ARCHS)}. Use the safetensors text encoder ComfyUI publishes "
                        "for this model instead")
    block = {**_BLOCK, **_SANDWICH} if arch in SHIFTED else _BLOCK
    out: Dict[str, Optional[str]] = {}
    for name in names:
        stem, dot, suffix = name.rpartition(".")
        parts = stem.split(".")
        if name in _DROPPED:
            out[name] = None
        elif stem in _TOP and suffix == "weight":
            out[name] = f"{_TOP[stem]}.{suffix}"
        elif len(parts) == 3 and parts[0] == "blk" and parts[1].isdecimal() and parts[2] in block and \
                suffix in ("weight", "bias"):
            out[name] = f"model.layers.{int(parts[1])}.{block[parts[2]]}.{suffix}"
        else:
            raise NodeError(f"{file}: its tensor {name!r} is not one of llama.cpp's {arch} tensors Kinograph reads "
                            "(token_embd, output_norm, output, blk.N.attn_* / ffn_*): the file is not a plain "
                            f"{arch} language model, or is damaged")
    return out


def refuse_other_attention(arch: str, keys: Iterable[str], file: str) -> None:
    """NodeError for a language model of a listed architecture whose attention the encoders' configs do not have:
    Ministral 3, which llama.cpp writes as mistral3 like Mistral Small 3.x (FLUX.2's encoder, 131072 tokens, the 14B
    as wide), scales its attention by position (Llama 4's temperature) and stretches its rotary angles (YaRN); read
    as Mistral Small it gave other features without a word."""
    from graph_engine import NodeError
    if f"{arch}.attention.temperature_scale" in set(keys):
        raise NodeError(f"{file} is Ministral 3 (its metadata {arch}.attention.temperature_scale: Llama 4's "
                        "position-scaled attention), not Mistral Small 3.x, FLUX.2's text encoder, which llama.cpp "
                        "names the same. Use Mistral Small 3.2's GGUF or ComfyUI's mistral_3_small_flux2 file")


def _undo_permute(t, heads: int, name: str, file: str):
    """The rows of a query or key projection (weights, or GGUF blocks a row of the matrix each) in transformers'
    order: llama.cpp's LlamaModel.permute took each head's rotary halves apart into interleaved pairs."""
    from graph_engine import NodeError
    rows = t.shape[0]
    if rows % (2 * heads):
        raise NodeError(f"{file}: its tensor {name} has {rows} rows, which its metadata's {heads} attention heads do "
                        "not split into pairs of rotary halves. The file is damaged; get it again from where it was "
                        "published")
    return t.reshape(heads, rows // heads // 2, 2, *t.shape[1:]).transpose(1, 2).reshape(t.shape)


def llm_values(meta: Dict[str, str], file: str):
    """fix(transformers name, stored tensor) -> the tensor transformers' model reads, for a language-model GGUF with
    metadata `meta`: llama.cpp's query / key row order and Gemma's 1 + w norms undone, the rest as stored. A row
    reorder keeps quantised blocks whole (each row's blocks move with it), so matrices stay packed."""
    from graph_engine import NodeError
    arch = meta.get("general.architecture", "")
    heads = {}
    if arch in PERMUTED:
        for key in ("head_count", "head_count_kv"):
            value = meta.get(f"{arch}.attention.{key}", "")
            if key == "head_count_kv" and not value:
                # written only where the config names num_key_value_heads; llama.cpp's loader then takes the query
                # heads' count (no grouped keys), as transformers' LlamaConfig does
                value = str(heads["head_count"])
            if not value.isdecimal() or int(value) < 1:
                raise NodeError(f"{file}: its metadata {arch}.attention.{key} is {value or 'missing'!r}, where "
                                "llama.cpp writes the number of attention heads, which its query and key rows are "
                                "ordered by. The file is damaged; get it again from where it was published")
            heads[key] = int(value)

    def fix(name: str, t):
        if heads and name.endswith(("self_attn.q_proj.weight", "self_attn.q_proj.bias")):
            return _undo_permute(t, heads["head_count"], name, file)
        if heads and name.endswith(("self_attn.k_proj.weight", "self_attn.k_proj.bias")):
            return _undo_permute(t, heads["head_count_kv"], name, file)
        if arch in SHIFTED and name.endswith("norm.weight"):
            if not t.is_floating_point():
                raise NodeError(f"{file}: its norm {name} is stored quantised, where llama.cpp keeps norms as "
                                "floats. The file is damaged or not llama.cpp's; get it again from where it was "
                                "published")
            return t - 1
        return t
    return fix


def gguf_renames(names: Iterable[str], arch: str, file: str) -> Optional[Dict[str, Optional[str]]]:
    """The transformers names of a text encoder GGUF's tensors (None: a tensor not read); None for another file."""
    names = list(names)
    renames = t5_renames(names)
    if renames is None and is_llm(names):
        renames = llm_renames(names, arch, file)
    return renames
