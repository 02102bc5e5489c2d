"""One place that turns a weights file into a state dict of correct values.

Formats: safetensors (.safetensors, .sft), GGUF (.gguf, quantised tensors dequantised by diffusers' GGUF kernels),
legacy torch pickles (.ckpt/.pt/.pth/.bin, read with weights_only=True so no code runs, memory-mapped
where the file is a zip). Precisions: fp32/fp16/bf16 as stored; fp8_e4m3fn/fp8_e5m2 cast up to the
compute dtype (or kept in fp8 when asked); ComfyUI's fp8_scaled (a `scaled_fp8` marker and a
`<layer>.scale_weight` per matrix) dequantised as weight * scale_weight: loading the raw fp8
values instead gives weights hundreds of times too large, which is what a naive loader does. ComfyUI's newer
mixed-precision files (flux2_dev_fp8mixed: some layers fp8 with a `<layer>.weight_scale`, a `<layer>.comfy_quant`
description and an `.input_scale`, the rest bf16) are folded the same way. ComfyUI's ConvRot files
(`*_int8_convrot`: int8 weights of a matrix rotated by a Hadamard transform over groups of its inputs, one scale per
row; `convrot_w4a4`: the same with 4-bit weights) are dequantised and rotated back, as comfy-kitchen's
dequantize_int8_convrot_weight does, into the plain matrix a bf16 file holds, a slice of rows at a time.
ComfyUI's block-scaled files (`*_nvfp4`, `*_fp4_mixed`, `*_mxfp8`: layers tagged nvfp4 or mxfp8, expert banks too)
are dequantised the same way by nodes/generate/block_quant.py. Those layers (and plain fp8 matrices, and GGUF's
quantised tensors) are checked at load and kept as stored, each a PackedWeight (nodes/generate/packed_weight.py) that dequantises for the operation
reading it, so a model holds the file's bytes, not the expanded matrices' (dequantise's `packed`)."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional

from graph_engine import NodeError
from graph_engine.context import check_cancelled
from nodes.generate.block_quant import FORMATS as BLOCK_FORMATS, expand, scales_of
from nodes.generate.gguf_names import gguf_renames, llm_values
from nodes.generate.foreign_quant import foreign_quant
from nodes.generate.detect import GGUF_EXT, PICKLE_EXT, SAFE_EXT, WEIGHT_EXT, gguf_reader, read_header, torch_load

# Markers and per-layer scales of ComfyUI's scaled fp8 files; they are folded into the weights.
_SCALE_SUFFIXES = (".scale_weight", ".scale_input", ".weight_scale", ".weight_scale_2", ".input_scale", ".comfy_quant")


def _fp8_dtypes():
    import torch
    return tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
                 if hasattr(torch, n))


def read_raw(path) -> Dict[str, "object"]:
    """The file's tensors exactly as stored (fp8 stays fp8, GGUF stays quantised)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in SAFE_EXT:
        return read_selected(path, lambda name: True)
    if suffix in GGUF_EXT:
        return _read_gguf(path)
    if suffix in PICKLE_EXT:
        return torch_load(path)
    raise NodeError(f"{path}: unknown weights format {suffix!r}; Kinograph reads {', '.join(WEIGHT_EXT)}")


def read_selected(path, wanted) -> Dict[str, "object"]:
    """The tensors of safetensors file `path` whose names `wanted(name)` accepts, as stored, with the `comfy_quant`
    tags its `_quantization_metadata` gives them (dequantise() reads them): the rest of a large file left unread."""
    from safetensors import safe_open
    read_header(path)       # a clear error for a truncated file, before safetensors' own
    state = {}
    with safe_open(str(path), "pt") as f:
        for k in f.keys():
            if wanted(k):
                check_cancelled()       # a cancel stops a multi-GB file at the next tensor, not after the last
                state[k] = f.get_tensor(k)
        state.update(metadata_tags(f.metadata(), state))
    return state


def _read_gguf(path: Path) -> dict:
    """GGUF tensors in torch dimension order and their original shapes: F16 / BF16 / F32 as stored, each quantised
    one (Q4_0 ... Q8_0, the K-quants, IQ4) a PackedWeight of its blocks standing for the float32 tensor
    (gguf_expand's values), as ComfyUI-GGUF keeps them: expanded at load, a Q4 file took 8 times its bytes."""
    import torch
    header = read_header(path)            # checks the file and gives the original shapes
    try:
        from diffusers.quantizers.gguf.utils import GGML_QUANT_SIZES, SUPPORTED_GGUF_QUANT_TYPES
        from gguf import GGMLQuantizationType
    except ImportError as exc:
        raise NodeError(f"reading {path.name} needs the `gguf` package ({exc}): pip install gguf") from None
    # diffusers' load_gguf_checkpoint, through the reader that does not view a tokenizer's entries one by one
    raw = {}
    for tensor in gguf_reader(path).tensors:
        check_cancelled()
        quant = tensor.tensor_type
        if quant in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            quant = None
        elif quant not in SUPPORTED_GGUF_QUANT_TYPES and not _numpy_dequantises(quant):
            kind = getattr(quant, "name", f"type {int(quant)}")
            raise NodeError(f"{path}: {tensor.name} is stored as GGUF {kind}, which neither diffusers' GGUF kernels "
                            "nor gguf-py dequantise (ComfyUI-GGUF cannot read it either); get a Q8_0, Q6_K, Q5_K_M "
                            "or Q4_K_M file of the same model")
        raw[tensor.name] = (torch.from_numpy(tensor.data.copy()), quant)
    # read_header gives a text encoder's llama.cpp names as transformers' (gguf_names); the tensors take the same names
    renames = gguf_renames(raw, header.metadata.get("general.architecture", ""), path.name) or {}
    raw = {renames.get(k, k): v for k, v in raw.items() if renames.get(k, k)}
    fix = llm_values(header.metadata, path.name)
    out = {}
    for name, (t, quant) in raw.items():
        shape = header.shapes.get(name)
        if quant == GGMLQuantizationType.BF16:
            t = t.view(torch.bfloat16)      # bf16 values as bytes: a plain bf16 tensor
        t = fix(name, t)                    # values, or whole rows of blocks
        if quant is not None and quant != GGMLQuantizationType.BF16:
            block, size = GGML_QUANT_SIZES[quant]
            natural = (*t.shape[:-1], t.shape[-1] // size * block)
            whole = shape if shape is not None and shape != natural and _numel(shape) == _numel(natural) else None
            out[name] = _packed("gguf", name.removesuffix(".weight"), {"q": t}, whole or natural, torch.float32,
                                {"format": quant.name, "type": quant, "shape": whole, "once": _numpy_only(quant)})
            continue
        if shape is not None and tuple(t.shape) != shape and t.numel() == _numel(shape):
            t = t.reshape(shape)
        out[name] = t
    return out


def _numpy_only(quant) -> bool:
    """Whether `quant` is dequantised by gguf-py's numpy code alone (no torch kernel of diffusers'): such a tensor
    is expanded once, at its first use, and kept expanded (PackedWeight's `once`). gguf-py is the reference for the
    imatrix grids; it runs on the CPU at 10-25 M values a second (0.4-0.9 s a 3072 x 3072 matrix, bench/
    packed_weights.py --iq), so expanded per operation a 12B IQ2 model spent 8-20 minutes a sampling step on it.
    Kept expanded it holds its compute dtype's bytes instead of the file's (a 12B model: 24 GB in bf16 against
    about 4 GB as IQ2): held_bytes and pipeline_bytes count it so, and place() offloads by them."""
    from diffusers.quantizers.gguf.utils import dequantize_functions
    return quant not in dequantize_functions


def _numpy_dequantises(quant) -> bool:
    """gguf-py dequantises `quant` (the imatrix IQ1 / IQ2 / IQ3 types, ternary TQ1_0 / TQ2_0) where diffusers'
    torch kernels do not."""
    from gguf import quants
    return quant in getattr(quants, "_type_traits", {})


def gguf_expand(q, cfg: dict, dtype):
    """GGUF blocks `q` (bytes, one row of blocks per row of the tensor) as values of `dtype`: diffusers' torch
    port of GGUF's dequantisation (ComfyUI-GGUF's maths: half-precision scales), reshaped to cfg's shape if any.
    Types it lacks (IQ2_XXS, IQ3_S, TQ2_0 ...) go through gguf-py's numpy dequantisation on the CPU, as
    ComfyUI-GGUF falls back to it: slower, the same values."""
    from diffusers.quantizers.gguf.utils import GGML_QUANT_SIZES, dequantize_functions
    block, size = GGML_QUANT_SIZES[cfg["type"]]
    if cfg["type"] not in dequantize_functions:
        import torch
        from gguf import quants
        w = torch.from_numpy(quants.dequantize(q.reshape(-1, size).cpu().numpy(), cfg["type"])).to(q.device)
    else:
        w = dequantize_functions[cfg["type"]](q.reshape(-1, size), block, size)
    w = w.reshape(*q.shape[:-1], q.shape[-1] // size * block).to(dtype)
    return w if cfg["shape"] is None else w.reshape(cfg["shape"])


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def dequantise(state: Dict[str, "object"], dtype=None, keep_fp8: bool = False, packed: Optional[bool] = None
               ) -> Dict[str, "object"]:
    """fp8_scaled folded (weight * scale_weight), ConvRot rotated back, NVFP4 / MXFP8 blocks scaled, fp8 cast to `dtype` unless keep_fp8, markers
    dropped.

    dtype None keeps fp16/bf16/fp32 tensors as stored, casts fp8 to float32 and gives ConvRot, NVFP4 and MXFP8 layers
    in bfloat16. With `packed` a quantised layer's weight (a matrix or an expert bank) is a PackedWeight: the stored
    tensors, checked here, standing for that plain weight and expanded only for the operation that reads it (see
    nodes/generate/packed_weight.py); without, the plain weight itself; None (the default) packed or not as
    nodes/generate/pack_policy.py decides for this machine and these weights' expanded size."""
    import torch
    from nodes.generate.packed_weight import PackedWeight
    fp8 = _fp8_dtypes()
    out = {}
    pack = packed is not False
    for name in state:
        if name == "scaled_fp8" or name.endswith(_SCALE_SUFFIXES):
            continue
        check_cancelled()       # a pickle's tensors are read here (memory-mapped), and each cast is another copy
        t = state[name]
        if not hasattr(t, "dtype"):
            continue
        if isinstance(t, PackedWeight):         # GGUF blocks (read_raw): expanded straight into the dtype
            # apart: a tensor expanded once at first use (cfg's once) replaces its own Stored's blocks, not read_raw's
            t = PackedWeight(t.stored.apart(), t.shape, (dtype,) if dtype is not None else t.casts)
            out[name] = t if pack else t.dequantize()
            continue
        if name.endswith(".weight"):
            base = name[: -len(".weight")]
            cfg = quant_config(base, state.get(base + ".comfy_quant"))
            if cfg is not None and cfg["format"] in BLOCK_FORMATS:
                blocks, tensor_scale = scales_of(base, cfg["format"], t, state.get(base + ".weight_scale"),
                                                 state.get(base + ".weight_scale_2"), cfg["experts"])
                if pack:
                    shape = (*t.shape[:-1], t.shape[-1] * (2 if cfg["format"] == "nvfp4" else 1))
                    out[name] = _packed("block", base, {"q": t, "blocks": blocks, "tensor_scale": tensor_scale}, shape,
                                        dtype or torch.bfloat16, cfg)
                else:
                    out[name] = expand(cfg["format"], t, blocks, tensor_scale, dtype)
                continue
            if base + ".weight_scale_2" in state:
                raise NodeError(_nvfp4(base))
            if cfg is not None and cfg["rotation"]:
                scale = convrot_scale(base, t, state.get(base + ".weight_scale"), cfg)
                cols = t.shape[1] * (2 if cfg["format"] == "convrot_w4a4" else 1)
                out[name] = (_packed("convrot", base, {"q": t, "scale": scale}, (t.shape[0], cols),
                                     dtype or torch.bfloat16, cfg) if pack else rotate_back(t, scale, cfg, dtype))
                continue
            scale = state.get(base + ".scale_weight")
            if scale is None:
                scale = state.get(base + ".weight_scale")
            if scale is not None:
                scale = _checked_scale(base, scale.to(torch.float32), t.shape)
                if pack and t.ndim >= 2 and t.element_size() < 2:
                    out[name] = _packed("scaled", base, {"q": t, "scale": scale}, t.shape, dtype or torch.float32)
                    continue
                w = t.to(torch.float32) * scale
                out[name] = w.to(dtype or torch.float32)
                continue
        if t.dtype in fp8:
            if keep_fp8:
                out[name] = t
            elif pack and t.ndim >= 2 and name.endswith(".weight"):
                out[name] = _packed("cast", name[: -len(".weight")], {"q": t}, t.shape, dtype or torch.float32)
            else:
                out[name] = t.to(dtype or torch.float32)
        elif dtype is not None and t.is_floating_point():
            out[name] = t.to(dtype)
        else:
            out[name] = t
    return out if packed is not None else _expanded_unless_kept(out)


def _expanded_unless_kept(out: dict) -> dict:
    """`out` as pack_policy decides: its packed weights kept, or each expanded (one at a time)."""
    import torch
    from nodes.generate.pack_policy import keep_packed_here
    from nodes.generate.packed_weight import PackedWeight
    if not any(isinstance(v, PackedWeight) for v in out.values()):
        return out
    expanded = sum(v.numel() * v.element_size() for v in out.values() if isinstance(v, torch.Tensor))
    if keep_packed_here(expanded):
        _per_operation_unless_room(out)
        return out
    return {k: v.dequantize() if isinstance(v, PackedWeight) else v for k, v in out.items()}


def _per_operation_unless_room(out: dict) -> None:
    """A run on the CPU keeps a file packed when its expanded weights would not fit the RAM available
    (pack_policy): its gguf-py-only tensors are then expanded for every operation, not kept expanded at their first
    use (which would fill the RAM the policy kept free), and the log names what that costs each step."""
    from graph_engine.devices import run_device
    from nodes.generate.packed_weight import PackedWeight
    once = [v for v in out.values() if isinstance(v, PackedWeight) and v.stored.kind == "gguf"
            and v.stored.cfg.get("once")]
    if not once or run_device() != "cpu":
        return
    values = sum(v.numel() for v in once)
    for v in once:
        v.stored.cfg = {**v.stored.cfg, "once": False}
    logging.getLogger(__name__).warning(
        "%d GGUF IQ / TQ tensors (%.1f G values) are dequantised by gguf-py's numpy code at every step: the RAM "
        "available cannot hold them expanded (%.1f GB in %s). At about 15 M values a second that adds about %.0f s "
        "a step; a Q4_K / Q5_K / Q8_0 file of the same model avoids it", len(once), values / 1e9,
        sum(v.numel() * v.element_size() for v in once) / 1e9, once[0].dtype, values / 15e6)


def _packed(kind: str, layer: str, tensors: dict, shape, dtype, cfg=None):
    from nodes.generate.packed_weight import PackedWeight, Stored
    tensors = {k: v for k, v in tensors.items() if v is not None}
    return PackedWeight(Stored(kind, layer, tensors, cfg and cfg["format"], cfg), tuple(shape), (dtype,))


def _nvfp4(layer: str) -> str:
    return (f"{layer} is stored in a 4-bit format (NVFP4: a second weight scale) without ComfyUI's comfy_quant tag "
            "saying how (another tool's layout, which Kinograph does not read); use ComfyUI's nvfp4 file, or the fp8 "
            "or bf16 file of this model")


# A file's layers share one quantisation format; a few of its tags tell it without reading them all.
_TAGS_READ = 16


def unreadable_format(path, names, metadata=None) -> Optional[str]:
    """Why load_weights would refuse a file's quantisation (NVFP4, formats not read), from its tensor names, its
    metadata and its few small comfy_quant tags, without reading a weight: `kinograph info` listed such files as
    loading."""
    tagged = set(metadata_tags(metadata, names)) | {n for n in names if n.endswith(".comfy_quant")}
    for name in names:
        base = name[: -len(".weight_scale_2")]
        if name.endswith(".weight_scale_2") and base + ".comfy_quant" not in tagged:
            return _nvfp4(base)
    try:
        for name, tag in list(metadata_tags(metadata, names).items())[:_TAGS_READ]:
            quant_config(name[: -len(".comfy_quant")], tag)
    except NodeError as exc:
        return str(exc)
    tags = [n for n in names if n.endswith(".comfy_quant")][:_TAGS_READ]
    if not tags or Path(path).suffix not in (".safetensors", ".sft"):
        return None
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            for name in tags:
                quant_config(name[: -len(".comfy_quant")], f.get_tensor(name))
    except NodeError as exc:
        return str(exc)
    except (OSError, SafetensorError):      # a damaged file: load_weights names it when it is read
        return None
    return None


def metadata_tags(metadata, names) -> Dict[str, "object"]:
    """The `comfy_quant` tags of the layers a file's `_quantization_metadata` describes: ComfyUI's documented form of a
    quantised file ({"layers": {layer: {"format": ...}}} in the safetensors metadata), which its comfy/utils.py
    convert_old_quants turns into one tag per layer, over any tag the file holds. Read without it, an int8_convrot
    layer described only there loaded as q * scale, unrotated, without a word. A layer named without the file's key
    prefix (ComfyUI strips `model.diffusion_model.` first) is the one weight whose name ends so."""
    import json
    import torch
    raw = (metadata or {}).get("_quantization_metadata")
    if raw is None:
        return {}
    try:
        layers = json.loads(raw)["layers"].items()
    except (ValueError, TypeError, KeyError, AttributeError):
        raise NodeError("its _quantization_metadata is not the JSON description ComfyUI writes ({\"layers\": {layer: "
                        "{\"format\": ...}}}): the file is damaged; copy it again") from None
    bases = {n[: -len(".weight")] for n in names if n.endswith(".weight")}
    tails: Dict[str, list] = {}
    out = {}
    for layer, cfg in layers:
        base = layer if layer in bases else None
        if base is None:
            if not tails:
                for b in bases:
                    parts = b.split(".")
                    for i in range(1, len(parts)):
                        tails.setdefault(".".join(parts[i:]), []).append(b)
            found = tails.get(layer, [])
            base = found[0] if len(found) == 1 else None
        if base is not None:        # a layer of no weight here: ComfyUI's tag is read by nothing either
            out[base + ".comfy_quant"] = torch.tensor(list(json.dumps(cfg).encode("utf-8")), dtype=torch.uint8)
    return out


# The largest rotation group read: rotating back builds a group x group matrix, 64 MB at 4,096. A 64 KB file tagged
# with a group of 65,536 (one row of that many inputs) asked for 16 GB.
MAX_ROTATION = 4 ** 6
# comfy_quant formats (ComfyUI's comfy/quant_ops.py QUANT_ALGOS) whose weights Kinograph turns into plain matrices.
_READ_FORMATS = ("float8_e4m3fn", "float8_e5m2", "int8_tensorwise", "convrot_w4a4") + BLOCK_FORMATS


def quant_config(layer: str, quant) -> Optional[dict]:
    """A layer's `comfy_quant` tag as ComfyUI's comfy/ops.py reads it: its format, and for a ConvRot layer the
    rotation's group size (`convrot`/`convrot_groupsize` at the top or under `params`, 256 when absent) and an expert
    bank's `num_experts` (None for a matrix); None without a tag. A tag that is not JSON, or of a format Kinograph cannot read, is refused by name: guessing gave wrong
    weights without a word."""
    import json
    if quant is None:
        return None
    try:
        cfg = json.loads(bytes(quant.flatten().to("cpu").tolist()).decode("utf-8"))
        fmt = cfg["format"]
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError):
        raise NodeError(f"{layer}'s comfy_quant tag is not the JSON description ComfyUI writes (a format and its "
                        "settings): the file is damaged; copy it again") from None
    if fmt not in _READ_FORMATS:
        raise NodeError(f"{layer} is stored in ComfyUI's {fmt} format, which Kinograph cannot read yet; use the "
                        "bf16, fp8 or int8_convrot file of this model")
    params = cfg.get("params") if isinstance(cfg.get("params"), dict) else {}
    rotated = fmt == "convrot_w4a4" or (fmt == "int8_tensorwise" and bool(cfg.get("convrot", params.get("convrot"))))
    group = cfg.get("convrot_groupsize", params.get("convrot_groupsize", 256))
    try:        # ComfyUI reads it with int(): "256" and 256.0 load there
        group = int(group) if rotated and not isinstance(group, bool) else group
    except (ValueError, TypeError, OverflowError):
        pass
    if rotated and (not isinstance(group, int) or group < 4 or (group & (group - 1)) or group.bit_length() % 2 == 0):
        raise NodeError(f"{layer}'s comfy_quant tag gives a rotation group of {group!r}; ComfyUI's ConvRot rotates "
                        "groups of a power of 4 inputs (256 in its files): the file is damaged; copy it again")
    if rotated and group > MAX_ROTATION:
        raise NodeError(f"{layer}'s comfy_quant tag gives a rotation group of {group} inputs; ComfyUI's ConvRot "
                        f"rotates groups of at most {MAX_ROTATION} (256 in its files): the file is damaged; copy it "
                        "again")
    experts = cfg.get("num_experts")
    if experts is not None and (isinstance(experts, bool) or not isinstance(experts, int) or experts < 1):
        raise NodeError(f"{layer}'s comfy_quant tag gives {experts!r} experts, not a count: the file is damaged; copy "
                        "it again")
    return {"format": fmt, "rotation": group if rotated else 0, "experts": experts}


def hadamard(size: int):
    """comfy-kitchen's regular Hadamard matrix of a power-of-4 size (Kronecker powers of a symmetric 4 x 4 one),
    normalised: symmetric and orthogonal, so it is its own inverse."""
    import torch
    h4 = torch.tensor([[1, 1, 1, -1], [1, 1, -1, 1], [1, -1, 1, 1], [-1, 1, 1, 1]], dtype=torch.float32)
    h = h4
    while h.shape[0] < size:
        h = torch.kron(h, h4)
    return h / size ** 0.5


@lru_cache(maxsize=8)
def _rotation(group: int, device):
    """hadamard(group).T on `device`, built once: a packed layer rotates back at every operation, and building it
    each time (and copying it to the GPU) took 15 ms a layer a step on the CPU."""
    return hadamard(group).T.to(device)


# Rows dequantised at once: float32 work of about 32 MB for a layer of any size.
_ROTATE_ELEMENTS = 1 << 22


def convrot_weight(layer: str, q, scale, cfg: dict, dtype=None):
    """A ConvRot layer's plain weight: the stored values (int8, or two signed 4-bit values a byte, the even column in
    the low nibble) times the row's scale, each group of inputs rotated back by the Hadamard matrix (W = Q s H^T per
    group, as comfy-kitchen's dequantize_int8_convrot_weight), in float32 a slice of rows at a time, given in `dtype`
    (bfloat16 when None: ComfyUI's files are bf16 models, and float32 would double the memory), on q's device."""
    return rotate_back(q, convrot_scale(layer, q, scale, cfg), cfg, dtype)


def rotate_back(q, scale, cfg: dict, dtype=None):
    """convrot_weight of a weight whose scale convrot_scale gave."""
    import torch
    group, packed = cfg["rotation"], cfg["format"] == "convrot_w4a4"
    rows, cols = q.shape[0], q.shape[1] * (2 if packed else 1)
    # torch.compile traces this on stand-in tensors: the cached matrix (a real one) would be mixed with them
    h_t = hadamard(group).T.to(q.device) if torch.compiler.is_compiling() else _rotation(group, q.device)
    out = torch.empty(rows, cols, dtype=dtype or torch.bfloat16, device=q.device)
    step = min(rows, max(1, _ROTATE_ELEMENTS // cols))
    # two float32 buffers used for every slice: fresh ones each slice left the allocator holding freed holes
    scaled = torch.empty(step, cols, device=q.device)
    rotated = torch.empty(step, cols // group, group, device=q.device)
    for r in range(0, rows, step):
        block = _unpack_int4(q[r:r + step]) if packed else q[r:r + step]
        n = block.shape[0]
        torch.mul(block, scale[r:r + step], out=scaled[:n])
        torch.matmul(scaled[:n].view(n, cols // group, group), h_t, out=rotated[:n])
        out[r:r + n] = rotated[:n].view(n, cols)
    return out


def convrot_scale(layer: str, q, scale, cfg: dict):
    """A ConvRot layer's one float32 scale a row, [rows, 1], its stored weight and scale checked: what a damaged
    file is refused by."""
    import torch
    group, packed = cfg["rotation"], cfg["format"] == "convrot_w4a4"
    if q.dtype == torch.int8 and q.ndim == 3:       # ComfyUI's MoEExperts: [experts, out, in], num_experts in the tag
        raise NodeError(f"{layer} is a bank of {q.shape[0]} experts' matrices (a mixture-of-experts model, as ComfyUI's "
                        "MoEExperts loads it), which no model Kinograph runs has: use a model Kinograph lists")
    if q.dtype != torch.int8 or q.ndim != 2:
        raise NodeError(f"{layer} is tagged {cfg['format']} but its weight is {str(q.dtype).replace('torch.', '')} "
                        f"of shape {list(q.shape)}, not an int8 matrix: the file is damaged; copy it again")
    rows, cols = q.shape[0], q.shape[1] * (2 if packed else 1)
    if cols % group:
        raise NodeError(f"{layer} has {cols} inputs, not a multiple of its ConvRot group of {group}: the file is "
                        "damaged; copy it again")
    if scale is None:
        raise NodeError(f"{layer} is tagged {cfg['format']} but has no weight_scale: the file is incomplete or "
                        "damaged; copy it again")
    scale = _checked_scale(layer, scale.to(torch.float32), (rows, 1))
    if scale.numel() != rows:
        raise NodeError(f"{layer}'s scale of shape {list(scale.shape)} is not one per row of its {rows} rows: the "
                        "file is damaged or of a layout Kinograph does not know")
    return scale.reshape(rows, 1).to(q.device)


def _unpack_int4(packed):
    """Two signed 4-bit values a byte, the even column in the low nibble (comfy-kitchen's _unpack_int4_row_major)."""
    import torch
    x = packed.to(torch.int32)
    lo, hi = x & 0x0F, (x >> 4) & 0x0F
    lo, hi = torch.where(lo >= 8, lo - 16, lo), torch.where(hi >= 8, hi - 16, hi)
    return torch.stack([lo, hi], dim=-1).reshape(packed.shape[0], -1)


def _checked_scale(base: str, scale, shape):
    """A layer's scale as it multiplies the weight: one per output row, or one broadcasting over the weight without
    growing it (a (1000, 1, 1) scale on a (3072, 3072) weight made a 37 GB product of a 4 KB tensor), and finite (a
    NaN scale made every value of the layer NaN, drawing black frames without a word)."""
    import torch
    if scale.ndim == 1 and len(shape) and scale.numel() == shape[0] > 1:      # one scale per output row
        scale = scale.view(-1, *[1] * (len(shape) - 1))
    try:
        fits = torch.broadcast_shapes(tuple(shape), tuple(scale.shape)) == tuple(shape)
    except RuntimeError:
        fits = False
    if not fits:
        raise NodeError(f"{base}'s scale of shape {list(scale.shape)} does not fit its weight of shape {list(shape)}: "
                        "the file is damaged or of a layout Kinograph does not know")
    if not bool(torch.isfinite(scale).all()):
        raise NodeError(f"{base}'s scale holds NaN or infinite values, which would make every value of the layer "
                        "so: the file is damaged; copy it again")
    return scale


def load_weights(path, dtype=None, keep_fp8: bool = False, packed: Optional[bool] = None) -> Dict[str, "object"]:
    """A file's state dict with correct values: see the module docstring (and dequantise's `packed`)."""
    try:
        state = read_raw(path)
        foreign = foreign_quant(state)
        if foreign:
            raise NodeError(f"{Path(path).name} is {foreign}")
        return dequantise(state, dtype, keep_fp8, packed)
    except NodeError as exc:        # a format refused: name the file too, where the message does not yet
        name = Path(path).name
        raise NodeError(str(exc) if name in str(exc) else f"{name}: {exc}") from None


def strip_prefix(state: Dict[str, "object"], prefix: str) -> Dict[str, "object"]:
    """The tensors under `prefix`, without it (all tensors when prefix is empty)."""
    if not prefix:
        return dict(state)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def take_parts(state: Dict[str, "object"], wanted, needed, damaged: str) -> Dict[str, "object"]:
    """The tensors whose names `wanted(name)` accepts, taken out of `state` (what is left builds the base model);
    `damaged` is the message's start when one of `needed` is absent (a truncated or half-copied file)."""
    found = {k: state.pop(k) for k in [k for k in state if wanted(k)]}
    lacking = [k for k in needed if k not in found]
    if lacking:
        raise NodeError(f"{damaged} ({lacking[0]}): it is incomplete or damaged. Copy the file again")
    return found


def torch_dtype(name: Optional[str]):
    import torch
    return {None: None, "": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
            "fp8_e4m3fn": getattr(torch, "float8_e4m3fn", None),
            "fp8_e5m2": getattr(torch, "float8_e5m2", None)}[name]


def misfit(module, state: Dict[str, "object"], allowed=(), assign: bool = False) -> Optional[str]:
    """Why `state` does not load into `module` (None: it does, and it is loaded, strict=False): a tensor missing
    (other than `allowed`), one the module has no place for, or one of another shape, named with both shapes. A
    damaged file's tensor of another shape was torch's size-mismatch RuntimeError, a traceback, where the
    loaders named only missing and unexpected ones. With `assign` the module takes the tensors themselves (one
    built on the meta device: no copy)."""
    own = module.state_dict()
    for k, v in state.items():
        if k in own and tuple(v.shape) != tuple(own[k].shape):
            return f"its {k} is {tuple(v.shape)}, where the model its other tensors describe has {tuple(own[k].shape)}"
    missing, unexpected = module.load_state_dict(state, strict=False, assign=assign)
    missing = [k for k in missing if k not in allowed]
    if missing or unexpected:
        return f"missing {', '.join(missing[:3]) or 'none'}; unexpected {', '.join(unexpected[:3]) or 'none'}"
    return None


@contextmanager
def sizes_of(name: str, what: str):
    """Around reading `what`'s sizes (a model's, with its article: "an ACE-Step 1.5 transformer") from the named
    tensors of the file `name`: a tensor the file lacks (a KeyError), one of too few dimensions (IndexError,
    ValueError) or with a 0 (ZeroDivisionError) is named as a damaged file, not a traceback; a refusal the reading
    raised (too many blocks) gets the file's name."""
    damaged = "the file is cut short or another model's; download it again"
    try:
        yield
    except NodeError as e:      # converters.count's refusal of thousands of blocks, said of the tensors alone
        if name in str(e):
            raise
        raise NodeError(f"{name}: {e}") from None
    except KeyError as e:
        raise NodeError(f"{name} lacks {e.args[0]}, which gives {what}'s size: {damaged}") from None
    except (IndexError, ValueError, ZeroDivisionError) as e:
        raise NodeError(f"{name} holds tensors of shapes {what} does not have ({e}): {damaged}") from None
