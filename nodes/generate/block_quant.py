"""ComfyUI's block-scaled weight formats (comfy/quant_ops.py QUANT_ALGOS "nvfp4" and "mxfp8", comfy-kitchen's
TensorCoreNVFP4Layout / TensorCoreMXFP8Layout) turned into the plain matrices a bf16 file holds.

NVFP4 (`*_nvfp4`, `*_fp4_mixed` files): `<layer>.weight` is uint8, two 4-bit E2M1 values a byte, the even column in
the HIGH nibble (comfy-kitchen packs hi_first); `<layer>.weight_scale` one float8_e4m3fn scale per 16 values of a
row; `<layer>.weight_scale_2` one float32 scale for the whole matrix; value = e2m1 * block scale * weight_scale_2.
MXFP8 (`*_mxfp8`): `<layer>.weight` float8_e4m3fn, `<layer>.weight_scale` one E8M0 power of two per 32 values of a row.
Both keep the block scales in cuBLAS's tiled order (comfy-kitchen's to_blocked), not row by row: the scale matrix,
padded to 128 rows and 4 columns, cut in 128 x 4 tiles stored one after another, row tile by row tile; inside a tile
the scale of (row r, column c) sits at (r % 32) * 16 + (r // 32) * 4 + c. Read row by row instead, every scale lands
on the wrong block and the weights come out wrong without a word.

An expert bank (comfy/ops.py MoEExperts, tag {"format": ..., "num_experts": E}) is the same with a leading expert
dimension: weight [E, rows, cols / 2], each expert's scales tiled on their own, weight_scale_2 one per expert or one.
ComfyUI pads a matrix to 16 (NVFP4) or 32 (MXFP8) rows and columns and cuts it back to the module's shape; the
matrix given here is the stored one, so a layer of another width loads as that width and the model's loader names
the misfit."""
from __future__ import annotations

from graph_engine import NodeError

FORMATS = ("nvfp4", "mxfp8")
# Values a row block shares a scale with (comfy/quant_ops.py QUANT_ALGOS group_size)
_BLOCK = {"nvfp4": 16, "mxfp8": 32}
# The 16 E2M1 codes: sign bit, two exponent bits, one mantissa bit
_E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
# Rows turned into float32 at once: about 32 MB of work for a matrix of any width
_ELEMENTS = 1 << 22


def _damaged(layer: str, fmt: str, what: str) -> NodeError:
    return NodeError(f"{layer} is tagged {fmt} (ComfyUI's block-scaled format) but {what}: the file is damaged or of a "
                     "layout Kinograph does not know; copy it again, or use the bf16 file of this model")


def untile(tiled, rows: int, cols: int):
    """The [rows, cols] scale matrix of scales kept in cuBLAS's 128 x 4 tiles (see the module docstring)."""
    tiles_r, tiles_c = -(-rows // 128), -(-cols // 4)
    t = tiled.reshape(tiles_r, tiles_c, 32, 4, 4)       # row tile, column tile, r % 32, r // 32 in tile, c % 4
    return t.permute(0, 3, 2, 1, 4).reshape(tiles_r * 128, tiles_c * 4)[:rows, :cols]


def _as_bytes(t):
    import torch
    return t if t.dtype == torch.uint8 else t.view(torch.uint8)


def _block_scales(layer: str, fmt: str, scale, experts: int, rows: int, cols: int):
    """Each expert's [rows, cols / block] scales as stored (one byte each: NVFP4's float8_e4m3fn, MXFP8's E8M0),
    untiled, checked: not NaN, not infinite."""
    import torch
    if scale is None:
        raise _damaged(layer, fmt, "it has no weight_scale (its block scales)")
    blocks = cols // _BLOCK[fmt]
    tiled = -(-rows // 128) * 128 * (-(-blocks // 4) * 4)
    if scale.numel() != experts * tiled or scale.element_size() != 1:
        raise _damaged(layer, fmt, f"its weight_scale of shape {list(scale.shape)} ({str(scale.dtype)[6:]}) is not "
                       f"one byte per block of {_BLOCK[fmt]} values of its {rows} x {cols} matrix in cuBLAS's 128 x 4 "
                       f"tiles ({tiled} a matrix)")
    raw = _as_bytes(scale.contiguous()).reshape(experts, tiled)
    if fmt == "mxfp8" and bool((raw == 255).any()):
        raise _damaged(layer, fmt, "its weight_scale holds the E8M0 NaN code (255)")
    if not bool(torch.isfinite(scale_values(fmt, raw)).all()):
        raise _damaged(layer, fmt, "its weight_scale holds NaN or infinite values")
    return torch.stack([untile(raw[i], rows, blocks) for i in range(experts)])


def scale_values(fmt: str, raw):
    """Stored one-byte block scales (uint8) as float32: NVFP4's float8_e4m3fn; MXFP8's E8M0, a biased exponent,
    2 ** (e - 127) (comfy-kitchen's e8m0_to_f32 reads 0 as 0; 255, NaN, is refused at load)."""
    import torch
    if fmt == "nvfp4":
        return raw.view(torch.float8_e4m3fn).to(torch.float32)
    e = raw.to(torch.int32)
    return torch.where(e == 0, 0, e << 23).view(torch.float32)


def _tensor_scale(layer: str, scale, experts: int):
    """NVFP4's weight_scale_2: one float32 per expert (or one for all), as [experts, 1, 1]."""
    import torch
    if scale is None:
        raise _damaged(layer, "nvfp4", "it has no weight_scale_2 (its per-tensor scale)")
    scale = scale.to(torch.float32).reshape(-1)
    if scale.numel() not in (1, experts):
        raise _damaged(layer, "nvfp4", f"its weight_scale_2 holds {scale.numel()} values, not one (or one per each of "
                       f"its {experts} experts)")
    if not bool(torch.isfinite(scale).all()):
        raise _damaged(layer, "nvfp4", "its weight_scale_2 is NaN or infinite")
    return scale.expand(experts).reshape(experts, 1, 1)


def block_weight(layer: str, fmt: str, q, scale, scale_2=None, experts=None, dtype=None):
    """The plain weight of layer `layer` stored in `fmt` ("nvfp4" / "mxfp8"): q the stored weight, scale its
    weight_scale, scale_2 NVFP4's weight_scale_2, experts the tag's num_experts (None: a matrix); in `dtype`
    (bfloat16 when None: ComfyUI quantises bf16 models, and float32 would double the memory), on q's device."""
    return expand(fmt, q, *scales_of(layer, fmt, q, scale, scale_2, experts), dtype)


def scales_of(layer: str, fmt: str, q, scale, scale_2=None, experts=None):
    """(each expert's [rows, cols / block] stored block scales, untiled; NVFP4's per-tensor scale as [experts, 1, 1]
    float32, None for MXFP8), the stored tensors' shapes and values checked: what a damaged or foreign file is
    refused by. A sixteenth (NVFP4) or thirty-second of the weight's values, one byte each."""
    import torch
    bank = q.ndim == 3
    if q.ndim not in (2, 3) or (experts is not None and not (bank and q.shape[0] == experts)):
        raise _damaged(layer, fmt, f"its weight has shape {list(q.shape)}, not a matrix"
                       + (f" bank of {experts} experts" if experts is not None else " (or a bank of experts')"))
    if (fmt == "nvfp4" and q.element_size() != 1) or (fmt == "mxfp8" and q.dtype != torch.float8_e4m3fn):
        want = "uint8 (two 4-bit values a byte)" if fmt == "nvfp4" else "float8_e4m3fn"
        raise _damaged(layer, fmt, f"its weight is {str(q.dtype)[6:]}, not {want}")
    n, rows = (q.shape[0] if bank else 1), q.shape[-2]
    cols = q.shape[-1] * (2 if fmt == "nvfp4" else 1)
    if not q.numel():       # no byte in the file: rows of no columns divided the row step by zero
        raise _damaged(layer, fmt, f"its weight has shape {list(q.shape)}, which holds no values")
    if cols % _BLOCK[fmt]:
        raise _damaged(layer, fmt, f"its rows of {cols} values are not whole blocks of {_BLOCK[fmt]}")
    blocks = _block_scales(layer, fmt, scale, n, rows, cols)
    return blocks, (_tensor_scale(layer, scale_2, n) if fmt == "nvfp4" else None)


def expand(fmt: str, q, blocks, tensor_scale=None, dtype=None):
    """The plain weight of stored weight `q` whose scales scales_of gave (of a bank's expert e: q, blocks and
    tensor_scale sliced [e:e + 1]), on q's device."""
    import torch
    blocks = scale_values(fmt, blocks.to(q.device))
    if tensor_scale is not None:
        blocks = blocks * tensor_scale.to(q.device)
    bank = q.ndim == 3
    n, rows = (q.shape[0] if bank else 1), q.shape[-2]
    cols = q.shape[-1] * (2 if fmt == "nvfp4" else 1)
    q = q.reshape(n, rows, q.shape[-1])
    # Each stored byte's value(s) looked up in a table of all 256: NVFP4's two, the even column's (high nibble)
    # first, MXFP8's fp8 value; three times faster on the CPU than unpacking nibbles or casting fp8
    if fmt == "nvfp4":
        lut = torch.tensor(_E2M1, device=q.device)
        table = torch.stack([lut.repeat_interleave(16), lut.repeat(16)], dim=-1)
    else:
        table = torch.arange(256, dtype=torch.uint8, device=q.device).view(torch.float8_e4m3fn).to(torch.float32)
        table = table[:, None]
    out = torch.empty(n, rows, cols, dtype=dtype or torch.bfloat16, device=q.device)
    step = max(1, _ELEMENTS // cols)
    for e in range(n):
        for r in range(0, rows, step):
            part = _as_bytes(q[e, r:r + step])
            k = part.shape[0]
            values = table.index_select(0, part.reshape(-1).to(torch.int32)).view(k, -1, _BLOCK[fmt])
            torch.mul(values, blocks[e, r:r + k, :, None], out=out[e, r:r + k].view(k, -1, _BLOCK[fmt]))
    return out if bank else out[0]
