"""llama.cpp's tensor names of a T5 / umT5 encoder GGUF (city96's t5-v1_1-xxl-encoder-*.gguf, umt5-xxl-encoder-*.gguf,
which ComfyUI-GGUF's CLIPLoaderGGUF reads) as transformers' T5EncoderModel names, so the text-encoder detection and
converter read such a file as the safetensors one. The pieces are ComfyUI-GGUF's T5_SD_MAP (llama.cpp's
convert_hf_to_gguf writes T5 tensors unchanged, only renamed)."""
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
