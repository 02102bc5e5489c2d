"""ComfyUI's block-scaled quantisation as its published code writes it, for tests: comfy-kitchen's
comfy_kitchen/backends/eager/quantization.py (quantize_nvfp4 / dequantize_nvfp4 with hi_first packing,
quantize_mxfp8 / dequantize_mxfp8), comfy_kitchen/float_utils.py (_f32_to_floatx_unpacked for E2M1, pack_uint4,
to_blocked / from_blocked, e8m0_to_f32, roundup), TensorCoreNVFP4Layout.quantize's per-tensor scale and ComfyUI's
comfy/ops.py state-dict keys (weight, weight_scale, weight_scale_2, comfy_quant; MoEExperts banks with num_experts).
Written out here, apart from nodes/generate/block_quant.py, so a test compares Kinograph's loader with an
independent copy of the published maths."""
from __future__ import annotations

import torch

from comfy_convrot import tag

F4_E2M1_MAX, F8_E4M3_MAX, E8M0_BIAS = 6.0, 448.0, 127


def roundup(x, m):
    return ((x + m - 1) // m) * m


def ceil_div(a, b):
    return (a + b - 1) // b


def f32_to_e2m1(x):
    """torchao's _f32_to_floatx_unpacked(x, ebits=2, mbits=1): round to nearest even, saturating at 6."""
    ebits, mbits, mbits_f32, f32_bias = 2, 1, 23, 127
    exp_bias = 1
    max_int = (1 << (ebits + mbits)) - 1
    sign_mask = 1 << (ebits + mbits)
    magic_adder = (1 << (mbits_f32 - mbits - 1)) - 1
    max_normal = 2 ** (((1 << ebits) - 1) - exp_bias) * (((1 << (mbits + 1)) - 1) / (2 ** mbits))
    min_normal = 2 ** (1 - exp_bias)
    denorm_exp = (f32_bias - exp_bias) + (mbits_f32 - mbits) + 1
    denorm_mask_int = denorm_exp << mbits_f32
    denorm_mask_float = torch.tensor(denorm_mask_int, dtype=torch.int32).view(torch.float32)
    x = x.view(torch.int32)
    sign = x & 0x80000000
    x = (x ^ sign).view(torch.float)
    saturate_mask = x >= max_normal
    denormal_mask = torch.logical_and(torch.logical_not(saturate_mask), x < min_normal)
    normal_mask = torch.logical_not(torch.logical_or(saturate_mask, denormal_mask))
    denormal_x = (x + denorm_mask_float).view(torch.int32)
    denormal_x -= denorm_mask_int
    denormal_x = denormal_x.to(torch.uint8)
    normal_x = x.view(torch.int32)
    mant_odd = (normal_x >> (mbits_f32 - mbits)) & 1
    normal_x += ((exp_bias - f32_bias) << mbits_f32) + magic_adder
    normal_x += mant_odd
    normal_x = (normal_x >> (mbits_f32 - mbits)).to(torch.uint8)
    x = torch.full_like(x, max_int, dtype=torch.uint8)
    x = torch.where(denormal_mask, denormal_x, x)
    x = torch.where(normal_mask, normal_x, x)
    sign_lp = (sign >> (mbits_f32 + 8 - mbits - ebits)).to(torch.uint8) & sign_mask
    return (x | sign_lp).to(torch.uint8)


def pack_uint4(u8):
    """hi_first: the even element in the high nibble."""
    shape = u8.shape
    flat = u8.contiguous().view(-1)
    return (flat[::2] << 4 | flat[1::2]).view(*shape[:-1], shape[-1] // 2)


def to_blocked(m):
    rows, cols = m.shape
    n_row_blocks, n_col_blocks = ceil_div(rows, 128), ceil_div(cols, 4)
    padded_rows, padded_cols = n_row_blocks * 128, n_col_blocks * 4
    padded = m
    if (rows, cols) != (padded_rows, padded_cols):
        padded = torch.zeros((padded_rows, padded_cols), dtype=m.dtype)
        padded[:rows, :cols] = m
    blocks = padded.view(n_row_blocks, 128, n_col_blocks, 4).permute(0, 2, 1, 3)
    rearranged = blocks.reshape(-1, 4, 32, 4).transpose(1, 2).reshape(-1, 32, 16)
    return rearranged.reshape(padded_rows, padded_cols)


def from_blocked(blocked, num_rows, num_cols):
    n_row_blocks, n_col_blocks = ceil_div(num_rows, 128), ceil_div(num_cols, 4)
    step1 = blocked.reshape(-1, 32, 16)
    step2 = step1.reshape(-1, 32, 4, 4).transpose(1, 2)
    step3 = step2.reshape(n_row_blocks, n_col_blocks, 4, 32, 4)
    step4 = step3.reshape(n_row_blocks, n_col_blocks, 128, 4)
    step5 = step4.permute(0, 2, 1, 3)
    return step5.reshape(n_row_blocks * 128, n_col_blocks * 4)[:num_rows, :num_cols]


def quantize_nvfp4(x):
    """(packed uint8 [R16, C16 / 2], blocked float8_e4m3fn scales, float32 per-tensor scale) of a 2-D tensor, padded
    to 16 rows and columns as TensorCoreNVFP4Layout.quantize pads."""
    per_tensor_scale = (torch.amax(x.abs()) / (F8_E4M3_MAX * F4_E2M1_MAX)).to(torch.float32)
    rows, cols = x.shape
    x = torch.nn.functional.pad(x, (0, roundup(cols, 16) - cols, 0, roundup(rows, 16) - rows))
    shape = x.shape
    x = x.reshape(shape[0], -1, 16)
    block_scale = torch.amax(torch.abs(x), dim=-1).to(torch.float32) / F4_E2M1_MAX
    scaled = torch.clamp(block_scale / per_tensor_scale, max=F8_E4M3_MAX)
    total = per_tensor_scale * scaled.to(torch.float8_e4m3fn).to(torch.float32)
    zero = total == 0
    data = x.float() / torch.where(zero, torch.ones_like(total), total).unsqueeze(-1)
    data = torch.where(zero.unsqueeze(-1), torch.zeros_like(data), data)
    data = torch.clamp(data, -F4_E2M1_MAX, F4_E2M1_MAX).view(shape)
    return pack_uint4(f32_to_e2m1(data)), to_blocked(scaled.to(torch.float8_e4m3fn)), per_tensor_scale


E2M1_LUT = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]
                        ).unsqueeze(1)


def dequantize_nvfp4(qx, per_tensor_scale, block_scales):
    """float32 [R16, C16] (comfy-kitchen's eager dequantize_nvfp4 with output_type float32)."""
    lo, hi = qx & 0x0F, qx >> 4
    out = torch.stack([hi, lo], dim=-1).view(*qx.shape[:-1], -1)
    out = torch.nn.functional.embedding(out.int(), E2M1_LUT).squeeze(-1)
    shape = out.shape
    out = out.reshape(shape[0], -1, 16)
    scales = from_blocked(block_scales, num_rows=shape[0], num_cols=shape[1] // 16)
    total = per_tensor_scale.to(torch.float32) * scales.to(torch.float32)
    return (out * total.unsqueeze(-1)).view(shape)


def e8m0_to_f32(x):
    biased_exp = x.to(torch.int32)
    result = biased_exp << 23
    return torch.where(biased_exp == 0, torch.zeros_like(result), result).view(torch.float32)


def quantize_mxfp8(x):
    """(float8_e4m3fn [R32, C32], blocked float8_e8m0fnu scales) of a 2-D tensor, padded to 32 rows and columns."""
    rows, cols = x.shape
    x = torch.nn.functional.pad(x, (0, roundup(cols, 32) - cols, 0, roundup(rows, 32) - rows))
    rows, cols = x.shape
    x_blocked = x.reshape(rows, cols // 32, 32)
    max_abs = torch.amax(torch.abs(x_blocked), dim=-1)
    scale_needed = torch.clamp(max_abs.float() / F8_E4M3_MAX, min=2 ** (-127))
    exp_biased = torch.clamp(torch.ceil(torch.log2(scale_needed)).to(torch.int32) + E8M0_BIAS, 0, 254)
    e8m0 = exp_biased.to(torch.uint8)
    scales_f32 = e8m0_to_f32(e8m0)
    zero = max_abs == 0
    scales_f32 = torch.where(zero, torch.ones_like(scales_f32), scales_f32)
    data = x_blocked.float() / scales_f32.unsqueeze(-1)
    data = torch.where(zero.unsqueeze(-1), torch.zeros_like(data), data)
    data = torch.clamp(data, -F8_E4M3_MAX, F8_E4M3_MAX).reshape(rows, cols).to(torch.float8_e4m3fn)
    e8m0 = torch.where(zero, torch.zeros_like(e8m0), e8m0)
    return data, to_blocked(e8m0).view(torch.float8_e8m0fnu)


def dequantize_mxfp8(qx, block_scales):
    rows, cols = qx.shape
    scales = e8m0_to_f32(from_blocked(block_scales.view(torch.uint8), num_rows=rows, num_cols=cols // 32))
    return (qx.to(torch.float32).reshape(rows, cols // 32, 32) * scales.unsqueeze(-1)).reshape(rows, cols)


def quantise_layer(base: str, weight, fmt: str) -> dict:
    """`base`'s tensors as ComfyUI's mixed-precision ops save a layer (a matrix, or an expert bank [E, out, in] with
    num_experts in its tag) in `fmt`."""
    bank = weight.ndim == 3
    mats = weight.float() if bank else weight.float()[None]
    parts = [quantize_nvfp4(m) if fmt == "nvfp4" else quantize_mxfp8(m) for m in mats]
    out = {base + ".weight": torch.stack([p[0] for p in parts]), base + ".weight_scale": torch.stack([p[1] for p in parts])}
    if fmt == "nvfp4":
        out[base + ".weight_scale_2"] = torch.stack([p[2] for p in parts])
    cfg = {"format": fmt, **({"num_experts": weight.shape[0]} if bank else {})}
    out = {k: (v if bank else v[0]) for k, v in out.items()}
    out[base + ".comfy_quant"] = tag(cfg)
    return out


def dequantise_layer(tensors: dict, base: str, fmt: str):
    """The stored layer's float32 weight by the reference's dequantisation, each expert on its own."""
    w, s = tensors[base + ".weight"], tensors[base + ".weight_scale"]
    bank = w.ndim == 3
    w, s = (w, s) if bank else (w[None], s[None])
    if fmt == "nvfp4":
        s2 = tensors[base + ".weight_scale_2"].reshape(-1).expand(w.shape[0])
        mats = [dequantize_nvfp4(w[i], s2[i], s[i]) for i in range(w.shape[0])]
    else:
        mats = [dequantize_mxfp8(w[i], s[i]) for i in range(w.shape[0])]
    out = torch.stack(mats)
    return out if bank else out[0]
