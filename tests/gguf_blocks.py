"""GGUF files of given quantisation types, written with the `gguf` package (llama.cpp's gguf-py) as
ComfyUI-GGUF's files hold them: the types gguf-py quantises (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) from random values,
the others (the K-quants, the IQ and ternary TQ types) as random blocks whose float16 scales are set to finite
values (gguf-py only dequantises those)."""
from __future__ import annotations

import gguf
import numpy as np

T = gguf.GGMLQuantizationType
WRITABLE = (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1)
# Byte offsets of each block's float16 scales (llama.cpp's block_q*_K / block_iq4_* structs).
HALF_AT = {T.Q2_K: (80, 82), T.Q3_K: (108,), T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,),
           T.IQ4_NL: (0,), T.IQ4_XS: (0,),
           # imatrix and ternary types, which diffusers' torch kernels lack (city96's ComfyUI-GGUF reads them
           # through gguf-py): each block's d first, the TQ types' last
           T.IQ2_XXS: (0,), T.IQ2_XS: (0,), T.IQ2_S: (0,), T.IQ3_XXS: (0,), T.IQ3_S: (0,), T.IQ1_S: (0,),
           T.TQ1_0: (52,), T.TQ2_0: (64,)}
TYPES = WRITABLE + tuple(HALF_AT)


def blocks(kind, rows: int, cols: int, seed: int = 0, scales=(1e-3, 2e-2)) -> np.ndarray:
    """A (rows, bytes) matrix of `kind` blocks standing for a rows x cols tensor; `scales`: the range of the
    random blocks' float16 scales."""
    rng = np.random.default_rng(seed)
    if kind in WRITABLE:
        return gguf.quants.quantize((rng.standard_normal((rows, cols)) * cols ** -0.5).astype(np.float32), kind)
    block, size = gguf.GGML_QUANT_SIZES[kind]
    raw = rng.integers(0, 256, (rows, cols // block, size), dtype=np.uint8)
    for at in HALF_AT[kind]:
        half = rng.uniform(*scales, raw.shape[:2]).astype(np.float16)
        raw[..., at:at + 2] = half.view(np.uint8).reshape(*raw.shape[:2], 2)
    return raw.reshape(rows, -1)


def write(path, tensors: dict, meta: dict = None) -> None:
    """tensors: name -> (a GGML type, its blocks) or (None, a float array); meta: name -> a list of integers."""
    w = gguf.GGUFWriter(str(path), "flux")
    for k, v in (meta or {}).items():
        w.add_array(k, v)
    for name, (kind, a) in tensors.items():
        if kind is None:
            w.add_tensor(name, a)
        else:
            w.add_tensor(name, a, raw_dtype=kind)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
