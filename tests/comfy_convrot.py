"""ComfyUI's ConvRot quantisation as its published code writes it, for tests: comfy-kitchen's
comfy_kitchen/tensor/int8_utils.py (_build_hadamard, _rotate_weight, _rotate_activation), its eager
quantize_int8_rowwise / quantize_int8_convrot_weight / dequantize_int8_convrot_weight, its convrot_w4a4 eager
kernels (quantize_signed_int4_rowwise, _pack_int4_row_major, dequantize_convrot_w4a4_weight), and the per-layer
`comfy_quant` tag ComfyUI's comfy/ops.py reads. Written out here, apart from nodes/generate/weights.py, so that a
test compares Kinograph's loader with an independent copy of the published maths."""
from __future__ import annotations

import json
import math

import torch

INT4_MAX = 7


def build_hadamard(size: int) -> torch.Tensor:
    if size < 4 or (size & (size - 1)) != 0 or math.log(size, 4) % 1 != 0:
        raise ValueError(f"Regular Hadamard size must be a power of 4, got {size}")
    h4 = torch.tensor([[1, 1, 1, -1], [1, 1, -1, 1], [1, -1, 1, 1], [-1, 1, 1, 1]], dtype=torch.float32)
    h = h4
    current_size = 4
    while current_size < size:
        h = torch.kron(h, h4)
        current_size *= 4
    return h / (size ** 0.5)


def rotate_weight(weight, h, group_size):
    """W_rot = W @ H_block^T."""
    out_f, in_f = weight.shape
    weight_grouped = weight.reshape(out_f, in_f // group_size, group_size)
    return torch.matmul(weight_grouped, h.T.to(dtype=weight.dtype)).reshape(out_f, in_f)


def rotate_activation(x, h, group_size):
    features = x.shape[-1]
    return torch.matmul(x.reshape(-1, features // group_size, group_size), h.to(x.dtype)).reshape(x.shape)


def quantize_int8_rowwise(x):
    abs_max = x.abs().amax(dim=-1, keepdim=True)
    scale = (abs_max.float() / 127.0).clamp(min=1e-30)
    safe = torch.where(scale == 0, torch.full_like(scale, torch.finfo(x.dtype).tiny), scale.to(x.dtype))
    return (x / safe).round_().clamp_(-128.0, 127.0).to(torch.int8), scale


def quantize_int8_convrot_weight(weight, group_size):
    """(int8 [N, K] of the rotated weight, float32 scale [N, 1]); the rotation in float32."""
    return quantize_int8_rowwise(rotate_weight(weight.to(torch.float32), build_hadamard(group_size), group_size))


def dequantize_int8_convrot_weight(q, scale, group_size):
    return rotate_weight(q.float() * scale, build_hadamard(group_size), group_size)


def pack_int4_row_major(values):
    lo = values[..., 0::2].to(torch.int32) & 0x0F
    hi = values[..., 1::2].to(torch.int32) & 0x0F
    return (lo | (hi << 4)).to(torch.int8)


def unpack_int4_row_major(packed):
    x32 = packed.to(torch.int32)
    lo, hi = x32 & 0x0F, (x32 >> 4) & 0x0F
    lo = torch.where(lo >= 8, lo - 16, lo)
    hi = torch.where(hi >= 8, hi - 16, hi)
    return torch.stack([lo, hi], dim=-1).reshape(*packed.shape[:-1], -1).to(torch.int8)


def quantize_convrot_w4a4_weight(weight, group_size):
    """(packed int8 [N, K // 2], float32 scale [N])."""
    x = rotate_weight(weight.float(), build_hadamard(group_size), group_size)
    absmax = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-10)
    scales = absmax / INT4_MAX
    q = (x / scales).round_().clamp_(-INT4_MAX, INT4_MAX).to(torch.int8)
    return pack_int4_row_major(q), scales.reshape(x.shape[0]).to(torch.float32)


def dequantize_convrot_w4a4_weight(qdata, scales, group_size):
    w_rot = unpack_int4_row_major(qdata).to(torch.float32) * scales.float().reshape(-1, 1)
    return rotate_weight(w_rot, build_hadamard(group_size), group_size)


def tag(cfg: dict) -> torch.Tensor:
    """A `<layer>.comfy_quant` tensor: the layer's JSON description as uint8 bytes."""
    return torch.tensor(list(json.dumps(cfg).encode("utf-8")), dtype=torch.uint8)


def quantise_file_state(state: dict, group_size: int = 256, prefix: str = "") -> dict:
    """A state dict as ComfyUI's int8_convrot files hold it: every 2-D `.weight` under `prefix` quantised to int8
    row-wise (rotated, with `convrot` in its tag, when its inputs divide into groups), the rest as it was."""
    out = {}
    for name, t in state.items():
        if not (name.startswith(prefix) and name.endswith(".weight") and t.ndim == 2 and t.is_floating_point()):
            out[name] = t
            continue
        base = name[: -len(".weight")]
        if t.shape[1] % group_size == 0:
            q, scale = quantize_int8_convrot_weight(t, group_size)
            cfg = {"format": "int8_tensorwise", "convrot": True, "convrot_groupsize": group_size}
        else:
            q, scale = quantize_int8_rowwise(t.float())
            cfg = {"format": "int8_tensorwise"}
        out[name], out[base + ".weight_scale"], out[base + ".comfy_quant"] = q, scale, tag(cfg)
    return out
