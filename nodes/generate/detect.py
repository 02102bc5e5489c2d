"""What a model file is, from its tensor names and shapes alone: family, variant, role and precision.

Only headers are read (a safetensors file's JSON header, GGUF metadata through the `gguf` package's
memory map, a zip pickle's records through `torch.load(weights_only=True, mmap=True)`), so inspecting a 30 GB file
costs milliseconds and no memory. Rules match exact key names (with or without the prefixes
ComfyUI and the original repositories add) and shapes, as ComfyUI's model detection does; a
substring match would take SD's `transformer_blocks.0.attn1.to_q.weight` for Wan's
`blocks.0.attn1.to_q.weight`.

Roles: diffusion_model (the denoiser alone), checkpoint (denoiser + VAE + encoders in one file),
text_encoder, vae, clip_vision, motion_module, lora, controlnet, style_model, ipadapter. For text encoders and CLIP
vision, `family` names the encoder (umt5, t5, clip_l, clip_g, llama, clip_vision) since one
encoder serves several model families."""
from __future__ import annotations

import functools
import json
import math
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

from graph_engine import NodeError
from nodes.generate.gguf_names import gguf_renames, refuse_other_attention
from nodes.generate.foreign_quant import foreign_quant
from nodes.generate.per_file import kept_per_file

Shape = Tuple[int, ...]
SAFE_EXT = (".safetensors", ".sft")
PICKLE_EXT = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
GGUF_EXT = (".gguf",)
WEIGHT_EXT = SAFE_EXT + PICKLE_EXT + GGUF_EXT
# Prefixes that wrap a model's own keys in ComfyUI saves and original checkpoints; "" first.
PREFIXES = ("", "model.diffusion_model.", "diffusion_model.", "model.", "transformer.", "unet.", "net.",
            "text_model.", "vision_model.")
ROLES = ("diffusion_model", "checkpoint", "text_encoder", "vae", "clip_vision", "motion_module", "lora",
         "controlnet", "style_model", "ipadapter", "latent_upscaler", "model_patch")


@dataclass
class Header:
    """Tensor names -> (shape, dtype name) and the file's metadata, read without the tensor data."""
    shapes: Dict[str, Shape]
    dtypes: Dict[str, str]
    metadata: Dict[str, str] = field(default_factory=dict)
    format: str = "safetensors"            # safetensors | gguf | pickle


@dataclass
class Detection:
    role: Optional[str]                    # one of ROLES, None when unknown
    family: Optional[str]                  # model family, or the encoder's name for encoders
    variant: str = ""
    precision: str = ""
    layout: str = "original"               # original (ComfyUI / the authors' repo) | diffusers
    prefix: str = ""                       # key prefix of the denoiser's tensors in this file
    why: str = ""
    extra: Dict[str, object] = field(default_factory=dict)

    def describe(self) -> str:
        bits = [self.family or "unknown", self.variant, self.role or "", self.precision]
        return " ".join(b for b in bits if b)


# Bits per value of every dtype the safetensors library reads (0.8's list): a header naming another was listed as a
# model that loads, and its loader stopped at the library's "unknown variant" error.
_ST_BITS = {"F64": 64, "I64": 64, "U64": 64, "C64": 64, "F32": 32, "I32": 32, "U32": 32, "F16": 16, "BF16": 16,
            "I16": 16, "U16": 16, "I8": 8, "U8": 8, "BOOL": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8,
            "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "F6_E2M3": 6, "F6_E3M2": 6, "F4": 4}
AGAIN = "Copy the file again or re-download it."
_INT = {int}


def _no_constant(word: str):
    """json's parse_constant: NaN and Infinity are no JSON, and the safetensors library refuses a header holding them."""
    raise ValueError(f"its header holds {word}, which is not JSON")


# -- reading headers -----------------------------------------------------------------------
def safetensors_header(path: Path) -> Header:
    """The header of a .safetensors/.sft file, checked against the file's size as the safetensors library checks it
    when it loads (clear error if not), reading no weight."""
    try:
        size = path.stat().st_size
        if size < 8:        # an empty file is what many a failed download leaves
            raise ValueError(f"it is {size} bytes, too short to hold a header")
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            if n > 100 << 20:       # 100,000 tensors take 10 MB
                raise ValueError(f"its header length {n:,} is past the 100 MB any model's takes")
            if n <= 0 or 8 + n > size:
                raise ValueError(f"its header length {n:,} does not fit its {size:,} bytes")
            header = json.loads(f.read(n), parse_constant=_no_constant)
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise ValueError("its __metadata__ is not a mapping of texts")
        data = size - 8 - n
        # One pass over the entries (a header may hold 100,000), then one over their byte ranges in order.
        shapes, dtypes, spans = {}, {}, []
        for k, v in header.items():
            shape, dtype, (start, stop) = tuple(v["shape"]), v["dtype"], v["data_offsets"]
            if not set(map(type, shape + (start, stop))) <= _INT or min(shape + (start, stop)) < 0:
                raise ValueError(f"{k}: its shape {list(shape)} or offsets are not whole numbers")
            bits = _ST_BITS.get(dtype) if type(dtype) is str else None
            if bits is None:
                raise ValueError(f"{k}: its type {str(dtype)[:40]!r} is none the safetensors library reads")
            # Types of less than a byte a value (F4, F6_...) count in bits: unchecked, a header of 10^15 values over 4
            # bytes made a folder's weights look large enough for any config.json.
            if math.prod(shape) * bits != 8 * (stop - start):
                raise ValueError(f"{k}: its shape {list(shape)} does not fill its {stop - start} bytes")
            shapes[k], dtypes[k] = shape, dtype
            spans.append((start, stop, k))
        # Tensors follow one another with no gap or overlap, as the safetensors library requires when it loads them:
        # 10,000 entries naming the same 4 KB made a folder's weights look large enough for any config.json
        # (config_bound weighs a config against the header), the library refusing the file only after the build.
        at = 0
        for start, stop, name in sorted(spans):
            if start != at:
                raise ValueError(f"{name}: its bytes {start}-{stop} {'overlap' if start < at else 'leave a gap after'} "
                                 f"the tensor before (which ends at {at})")
            # The first tensor past the end is named: a cut-off download said only the two sizes.
            if stop > data:
                raise ValueError(f"{size:,} bytes on disk; tensor {name} ends at byte {8 + n + stop:,}: the file is "
                                 f"cut short")
            at = stop
        # The library refuses bytes after the last tensor too ("file not fully covered"), after validate said ok.
        if at != data:
            raise ValueError(f"{data - at:,} bytes follow its last tensor, which no safetensors writer leaves")
    # RecursionError: a header of nested brackets, which json's C scanner recurses into.
    except (OSError, ValueError, struct.error, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise NodeError(f"{path} is not a valid safetensors file ({exc}): it is truncated or corrupt, "
                        f"e.g. an interrupted copy or download. {AGAIN}") from None
    # ComfyUI's NVFP4 matrices (a uint8 weight beside its weight_scale_2) hold two 4-bit values a byte: their shape is
    # the matrix's, as the loader dequantises it; rules reading a width from them (in_channels) saw half of it
    for k, shape in shapes.items():
        if dtypes[k] == "U8" and k.endswith(".weight") and k + "_scale_2" in shapes and shape:
            shapes[k] = shape[:-1] + (shape[-1] * 2,)
    return Header(shapes, dtypes, {str(k): str(v) for k, v in meta.items()}, "safetensors")


def gguf_header(path: Path) -> Header:
    """The GGUF file's header, read once for the file as it stands (per_file): detection, the weights' reader and the
    tokenizer each ask for it, and the gguf package's reader takes seconds over a language model's tokenizer arrays
    (held in the metadata it parses whole). A copy each time: callers add to its dictionaries."""
    kept = _kept_gguf_header(Path(path))
    return Header(dict(kept.shapes), dict(kept.dtypes), dict(kept.metadata), kept.format)


@kept_per_file(maxsize=8)
def _kept_gguf_header(path: Path) -> Header:
    return _gguf_header(path)


def gguf_reader(path: Path):
    """The gguf package's reader of the file, its metadata arrays taken whole. The package reads an array entry by
    entry, a numpy view each: a language model's tokenizer (Qwen's 152k tokens, 151k merges and 152k kinds) took it
    tens of seconds, for values neither the header nor the weights read (the tokenizer has gguf_fields). An array
    of numbers is one view (its contents() the same list); a long array of text (a tokenizer's) is its bytes,
    counted, its contents() empty. Call after gguf_fields(path), which refuses counts the bytes cannot hold."""
    import numpy as np
    from gguf import GGUFReader, GGUFValueType

    class Reader(GGUFReader):
        def _get_field_parts(self, orig_offs: int, raw_type: int):
            if raw_type != GGUFValueType.ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            item, count = self._get(orig_offs, np.uint32), self._get(orig_offs + 4, np.uint64)
            at, kind = orig_offs + 12, GGUFValueType(int(item[0]))
            if kind in self.gguf_scalar_to_np:
                values = self._get(at, self.gguf_scalar_to_np[kind], int(count[0]))
                return at + values.nbytes - orig_offs, [item, count, values], [2], [GGUFValueType.ARRAY, kind]
            if kind != GGUFValueType.STRING or count[0] < 4096:     # a short list of text: as the package reads it
                return super()._get_field_parts(orig_offs, raw_type)
            length = "<Q" if self.byte_order != "S" else ">Q"
            for _ in range(int(count[0])):
                at += 8 + struct.unpack_from(length, self.data, at)[0]
            return at - orig_offs, [item, count, self.data[orig_offs + 12:at]], [], [GGUFValueType.ARRAY, kind]

    return Reader(str(path))


def _gguf_header(path: Path) -> Header:
    gguf_intact(path)
    reader = _gguf_read(path, gguf_reader)
    meta = {}
    for name, fld in reader.fields.items():
        # the heads: llama.cpp orders a Llama's query and key rows by them (gguf_names.llm_values); a vision
        # projector's settings (clip.*: gguf_mmproj)
        if name.startswith(("general.architecture", "comfy.gguf.orig_shape", "clip.")) or \
                name.endswith((".attention.head_count", ".attention.head_count_kv")):
            try:
                meta[name] = fld.contents()
            except (ValueError, IndexError, AttributeError):
                pass
    shapes, dtypes = {}, {}
    for t in reader.tensors:
        stored = tuple(int(x) for x in reversed(t.shape.tolist()))
        orig = meta.get(f"comfy.gguf.orig_shape.{t.name}")
        # ComfyUI-GGUF writes (and reads only) an array of whole numbers: a string, a number or a list of text there
        # was a ValueError / TypeError traceback out of `kinograph info` and every GGUF loader
        if orig is not None and not (isinstance(orig, list) and all(type(x) is int for x in orig)):
            raise NodeError(f"{path} is not a valid GGUF file: its metadata gives tensor {t.name} the shape "
                            f"{str(orig)[:80]!r}, where ComfyUI writes a list of whole numbers. It is corrupt or made "
                            "to mislead; copy the file again from where it was published.")
        shapes[t.name] = tuple(orig) if orig else stored
        # ComfyUI's shape is metadata beside the tensor, free to say anything: a tensor of 16 values stated as
        # 1,000,000 x 16 x 2 x 2 was listed as a Wan transformer 1,000,000 wide that loads.
        if math.prod(shapes[t.name]) != math.prod(stored) or min(shapes[t.name], default=1) < 0:
            raise NodeError(f"{path} is not a valid GGUF file: its metadata gives tensor {t.name} the shape "
                            f"{shapes[t.name]}, but the file holds {math.prod(stored):,} values for it {stored}. "
                            "It is corrupt or made to mislead; copy the file again from where it was published.")
        dtypes[t.name] = t.tensor_type.name
    arch = str(meta.get("general.architecture", ""))
    renames = gguf_renames(shapes, arch, path.name)
    if renames:         # a text encoder in llama.cpp's names: listed and detected under transformers' names
        refuse_other_attention(arch, reader.fields, path.name)
        shapes = {renames[k]: v for k, v in shapes.items() if renames[k]}
        dtypes = {renames[k]: v for k, v in dtypes.items() if renames[k]}
    return Header(shapes, dtypes, {k: str(v) for k, v in meta.items()}, "gguf")


def gguf_intact(path: Path) -> None:
    """The GGUF's structure and every tensor held to its size (gguf_fields), for the check before a run: the gguf
    package's reader, which parses a tokenizer's arrays element by element, took 25 s over a 150,000-token text
    encoder for `kinograph validate` alone."""
    _gguf_read(path, gguf_fields)


def _gguf_read(path: Path, read):
    """read(path), a damaged file's error said as such."""
    try:
        import gguf  # noqa: F401  (the tensor walk reads GGML's block sizes from it)
    except ImportError:
        raise NodeError("reading .gguf files needs the `gguf` package: pip install gguf") from None
    try:
        return read(path)
    except (OSError, ValueError, IndexError, KeyError, struct.error) as exc:     # KeyError: a name written twice
        raise NodeError(f"{path} is not a readable GGUF file ({exc}): it is truncated or corrupt. {AGAIN}") from None


# GGUF's value types: the struct format of each fixed-size one (the gguf package's GGUFValueType); 8 is a string, 9 an
# array.
_GGUF_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def gguf_fields(path: Path, keep=None) -> dict:
    """The values of the GGUF metadata keys that keep(key) accepts (none by default), read straight from the bytes:
    a few hundred thousand tokens in a tenth of a second, where the gguf package's reader builds an array view per
    token (a Qwen tokenizer's 450,000 entries took it seconds). Raises ValueError where the header declares more
    entries than the file has bytes for: the package reads an array element by element, and past the end of the file
    each one reads as nothing, so an 88-byte file declaring an array of 10^12 numbers kept it looping, its lists
    growing, for ever. Each element, key and tensor takes some bytes, so what the bytes left cannot hold is refused
    before the package reads it; then each tensor's data is held to the file (_gguf_tensors_fit)."""
    import mmap
    out = {}
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        end = len(data)

        # A file written on a big-endian machine says so by its version read backwards (as the package tells).
        order = "<" if len(data) < 8 or struct.unpack_from("<I", data, 4)[0] & 0xFFFF else ">"

        def number(at: int, fmt: str) -> Tuple[object, int]:
            size = struct.calcsize("<" + fmt)
            if at + size > end:
                raise ValueError(f"it ends at byte {end}, inside its header")
            return struct.unpack_from(order + fmt, data, at)[0], at + size

        def many(count: int, least: int, at: int, what: str) -> None:
            if count * least > end - at:
                raise ValueError(f"its header declares {count:,} {what}, more than its {end - at:,} bytes left hold")

        def text(at: int, read: bool) -> Tuple[Optional[str], int]:
            n, at = number(at, "Q")
            many(n, 1, at, "bytes of text")
            return (bytes(data[at:at + n]).decode("utf-8", "replace") if read else None), at + n

        def value(kind: int, at: int, read: bool, depth: int = 0) -> Tuple[object, int]:
            nonlocal entries
            if kind in _GGUF_FORMATS:
                got, after = number(at, _GGUF_FORMATS[kind])
                return (got if read else None), after
            if kind == 8:
                return text(at, read)
            if kind != 9:
                raise ValueError(f"a value of unknown type {kind}")
            item, at = number(at, "I")
            count, at = number(at, "Q")
            if item == 9 and depth >= _GGUF_MOST_NESTING:
                raise ValueError(f"its metadata {key[:80]} nests arrays more than {_GGUF_MOST_NESTING} deep, as no GGUF "
                                 "writer does")
            # text and arrays are walked one entry at a time, numbers read all at once where asked for
            entries += count if item not in _GGUF_FORMATS or read else 0
            if entries > _GGUF_MOST_ENTRIES:
                raise ValueError(f"its metadata lists more than {_GGUF_MOST_ENTRIES:,} entries (up to {key[:80]}, "
                                 f"{count:,}), where the largest tokenizers list some 800,000")
            if item in _GGUF_FORMATS:
                size = struct.calcsize("<" + _GGUF_FORMATS[item])
                many(count, size, at, "array values")
                got = list(struct.unpack_from(f"{order}{count}{_GGUF_FORMATS[item]}", data, at)) if read else None
                return got, at + count * size
            many(count, 8 if item == 8 else 12, at, "array entries")
            items = []
            for _ in range(count):
                got, at = value(item, at, read, depth + 1)
                items.append(got)
            return (items if read else None), at

        magic = bytes(data[:4])
        if magic != b"GGUF":
            raise ValueError("it does not start with GGUF")
        version, at = number(4, "I")
        if version == 1:        # 32-bit counts: the package refuses this old version itself
            return out
        tensors, at = number(at, "Q")
        keys, at = number(at, "Q")
        many(keys, 8 + 4, at, "metadata keys")
        many(tensors, 8 + 4 + 4 + 8, at, "tensors")
        alignment = 32         # the format's default, or its general.alignment (a uint32)
        key, entries = "", keys        # each key is walked one at a time, as an array's texts are
        if keys > _GGUF_MOST_ENTRIES:
            raise ValueError(f"its metadata lists more than {_GGUF_MOST_ENTRIES:,} entries ({keys:,} keys), where "
                             "published files hold a few dozen keys")
        for _ in range(keys):
            key, at = text(at, True)
            kind, at = number(at, "I")
            wanted = keep is not None and keep(key)
            got, at = value(kind, at, wanted or key == "general.alignment")
            if wanted:
                out[key] = got
            if key == "general.alignment" and kind == 4:
                alignment = got
        _gguf_tensors_fit(data, tensors, at, alignment, number)
    return out


# Arrays in arrays a GGUF's metadata may hold: gguf-py writes one level (a list of lists of numbers), llama.cpp reads
# none; 5,000 levels (60 KB) stopped the reader, which walks each level in a call of its own, in a RecursionError.
_GGUF_MOST_NESTING = 8
# Entries of the metadata's arrays of text (walked one at a time) and of those read: a tokenizer's tokens and merges
# (Gemma 3's 262,144 tokens with their kinds and scores, umT5's 256,384 and its character map of 237,000 bytes). A
# 45 MB file listing 5,000,000 one-letter tokens held `kinograph info` 11 s walking them, a 2 GB one would for
# minutes and its tokenizer fill the memory.
_GGUF_MOST_ENTRIES = 2_000_000
# GGML's most dimensions a tensor has (GGML_MAX_DIMS).
_GGML_MAX_DIMS = 4
# Tensors a GGUF may describe: the largest published models (mixtures of experts, 405B language models) hold 1,000 to
# 3,000, ComfyUI's video models about 1,100.
_GGUF_MOST_TENSORS = 100_000


def _gguf_tensors_fit(data, count: int, at: int, alignment: int, number) -> None:
    """Raise ValueError naming the first of a GGUF's `count` tensors (described from byte `at`) whose type is unknown,
    whose dimensions are more than GGML's four, do not fill its type's blocks, or whose data runs past the file's
    end: the gguf package said only numpy's "cannot reshape array of size 4085 into shape (64,64)" for a cut-off
    download, and nothing for a tensor of no values."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    # The gguf package takes a fraction of a millisecond a tensor: an 8 MB file describing 200,000 tensors on the same
    # 4 bytes held `kinograph info` (which reads every model file) for minutes. Published files hold a few thousand.
    if count > _GGUF_MOST_TENSORS:
        raise ValueError(f"its header declares {count:,} tensors, more than the {_GGUF_MOST_TENSORS:,} any model "
                         "holds")
    infos = []
    for _ in range(count):
        length, at = number(at, "Q")
        name = bytes(data[at:at + min(length, 200)]).decode("utf-8", "replace")
        at += length
        dims, at = number(at, "I")
        if dims > _GGML_MAX_DIMS:
            raise ValueError(f"tensor {name}: {dims:,} dimensions, where GGML has at most {_GGML_MAX_DIMS}")
        shape = []
        for _ in range(dims):
            size, at = number(at, "Q")
            shape.append(size)
        kind, at = number(at, "I")
        offset, at = number(at, "Q")
        infos.append((name, shape, kind, offset))
    if alignment <= 0 or alignment & (alignment - 1):
        raise ValueError(f"its alignment {alignment} is not a power of two")
    start = at + -at % alignment
    spans = []
    for name, shape, kind, offset in infos:
        try:
            block, size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
        except ValueError:
            raise ValueError(f"tensor {name}: type {kind} is no GGML type the gguf package reads (an unknown "
                             "quantisation)") from None
        values = math.prod(shape)
        if values % block:
            raise ValueError(f"tensor {name}: its shape {shape} ({values:,} values) does not fill blocks of {block}")
        end = start + offset + values // block * size
        if end > len(data):
            raise ValueError(f"{len(data):,} bytes on disk; tensor {name} ends at byte {end:,}: the file is cut short")
        spans.append((start + offset, end, name))
    # Writers lay tensors one after another; each is copied out as it is read (weights._read_gguf), so tensors laid
    # over the same bytes multiply them: 99,999 over 1 MB of a 5 MB file asked for 100 GB.
    spans.sort()
    for (_, end, first), (begin, _, name) in zip(spans, spans[1:]):
        if begin < end:
            raise ValueError(f"tensor {name} lies over {first}'s bytes (from byte {begin:,}, where {first} runs to "
                             f"{end:,}), as no GGUF writer lays them")


def torch_load(path: Path) -> dict:
    """A torch checkpoint's tensor dict, memory-mapped where it is a zip (tensor data read only when used).

    weights_only=True refuses anything but tensors and containers, so no code in the file runs."""
    import pickle
    import zipfile
    import torch
    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        _refuse_unpacking_beyond(Path(path))
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        # torch raises this both for a pickle that names code to run (or uses an opcode it does not
        # allow) and for bytes that are no pickle at all, such as a cut-off download: only the first is
        # a safety refusal, and telling a user with a broken download that the file is hostile misleads.
        named = [] if is_zip else _pickle_globals(path)
        if named is None:
            from nodes.generate.not_weights import not_weights
            raise NodeError(not_weights(path) or f"{path} is not a readable checkpoint: it is truncated, corrupt or "
                            f"not a torch file. {AGAIN}") from None
        # torch names the global it blocked, but not what a pickle of a newer protocol would call (it
        # stops at the first opcode it does not allow); the file's own opcodes say that.
        foreign = re.findall(r"GLOBAL (\S+)", str(exc)) or [n for n in named if not n.startswith(TENSOR_GLOBALS)]
        runs = f"would run {foreign[0]}" if foreign else "may run code"
        raise NodeError(f"{path} holds more than plain tensors: loading it {runs}, so it is refused. "
                        "Convert it to .safetensors, or get the file again from a trusted source.") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise NodeError(f"{path} is not a readable checkpoint ({str(exc).splitlines()[0][:200]}): it is "
                        f"truncated or corrupt. {AGAIN}") from None
    state = unwrap_state_dict(sd, path)
    _refuse_views_beyond(Path(path), state)
    return state


def _refuse_views_beyond(path: Path, state: dict) -> None:
    """A pickled tensor is a view of its stored values, and a view whose stride is 0 repeats one value across any
    shape: a 2 KB .pth held a 40,000 x 40,000 fp16 tensor, which the first dtype conversion (every reader of
    annotators, IP-Adapters, LoRAs ...) made 6.4 GB. Tensors claiming far more than the file are refused, as
    records that unpack far beyond it are."""
    import torch
    tensors = {k: t for k, t in state.items() if isinstance(t, torch.Tensor)}
    claimed = sum(t.numel() * t.element_size() for t in tensors.values())
    size = path.stat().st_size
    if claimed > 4 * size + (16 << 20):
        big = max(tensors, key=lambda k: tensors[k].numel() * tensors[k].element_size()
                  - tensors[k].untyped_storage().nbytes())
        raise NodeError(f"{path} is refused: its tensors claim {claimed:,} bytes from a file of {size:,} ({big} "
                        f"repeats a few stored values across the shape {list(tensors[big].shape)}), which reading "
                        "them would fill memory with. The file is damaged or made to fill memory: get it again "
                        "from a trusted source, or as .safetensors")


def _refuse_unpacking_beyond(path: Path) -> None:
    """torch.save stores a checkpoint's records uncompressed, so that they can be memory-mapped; torch reads a
    compressed one too, unpacking it whole into memory: a 66 KB .pt whose tensor record deflates from 64 MB of
    zeros took 200 MB to inspect, and one of 10 MB would take 10 GB or more. Records unpacking to far more than
    the file holds are refused before torch reads them."""
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise NodeError(f"{path} is not a readable checkpoint ({exc}): it is truncated or corrupt. {AGAIN}") from None
    _refuse_records_beyond(path, infos, ", or as .safetensors")


def _refuse_records_beyond(path, infos, other: str = "") -> None:
    size = Path(path).stat().st_size
    unpacked = sum(i.file_size for i in infos)
    if unpacked > 4 * size + (16 << 20):
        raise NodeError(f"{path} is refused: its records unpack to {unpacked:,} bytes from a file of {size:,} (torch "
                        "saves them uncompressed), which would all be held in memory. Get the file again from a "
                        f"trusted source{other}")


@functools.lru_cache(maxsize=1)
def _file_ops() -> Tuple[str, ...]:
    """The TorchScript operators that take a file name (torch.save, torch.from_file): asked of torch itself,
    so that one added later is refused too."""
    import torch
    names = {s.name.split("::")[-1] for s in torch._C._jit_get_all_schemas()
             if any(str(a.type) == "str" and re.search("file|path|dir", a.name) for a in s.arguments)}
    return tuple(sorted(names | {"save", "from_file"}))


# Operator namespaces a network's code may call through `ops.`: torch's own arithmetic, and torchvision's (an
# upscaler's deformable convolution). Any other is a library's code that nobody has read.
TORCHSCRIPT_NAMESPACES = ("aten", "prim", "quantized", "torchvision")


def _forbidden_use(text: str) -> Optional[str]:
    """What (a phrase) in a TorchScript archive's code (Python syntax) reaches past arithmetic, read token by
    token so that spacing, line breaks and comments change nothing: a file operator named directly or as a
    string (getattr(torch, "sa" "ve") is torch.save: adjacent strings join), `ops.` of a namespace not in
    TORCHSCRIPT_NAMESPACES (or `ops` handed on whole), or a custom class (torch.classes). None when clean."""
    import io
    import tokenize
    file_ops = set(_file_ops())
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
                  if t.type in (tokenize.NAME, tokenize.OP, tokenize.STRING, tokenize.NUMBER)]
    except (tokenize.TokenError, SyntaxError) as e:
        return f"cannot be read as code ({e})"
    words, strings = [], []
    for i, t in enumerate(tokens):
        if t.type == tokenize.STRING:
            strings.append(t.string)
            continue
        if strings:
            words.append(_joined(strings))
            strings = []
        if t.type != tokenize.NAME:
            continue
        after_dot = i > 0 and tokens[i - 1].string == "."
        if t.string != "classes":
            words.append(t.string)
        elif after_dot and tokens[i - 2].string == "torch":    # a network may have its own self.classes
            words.append("torch.classes")
        if t.string == "ops" and not after_dot:
            ns = tokens[i + 2].string if i + 2 < len(tokens) and tokens[i + 1].string == "." else ""
            if ns not in TORCHSCRIPT_NAMESPACES:
                return (f"calls ops.{ns}, operators of a library other than torch's and torchvision's" if ns else
                        "hands on ops, torch's table of every library's operators")
    if strings:
        words.append(_joined(strings))
    hit = next((w for w in words if w in file_ops or w in ("classes", "torch.classes")), None)
    if hit in ("classes", "torch.classes"):
        return "uses torch.classes, classes compiled into a library other than torch"
    return None if hit is None else f"calls {hit}(), which reads or writes files"


def _joined(strings) -> str:
    """The value of adjacent string literals, as the TorchScript parser joins them."""
    import ast
    try:
        return "".join(ast.literal_eval(s) for s in strings)
    except (ValueError, SyntaxError, TypeError):
        return ""


def check_torchscript(path, what: str) -> None:
    """Refuse a TorchScript archive (`what` names it in messages) whose code touches files or calls code outside
    torch's (and torchvision's) operators.

    TorchScript is a program, not weights: a detector someone shipped beside a workflow ran torch.save(x,
    "/any/path") and overwrote a file of the user's when the metric ran, and loading one already runs its
    __setstate__ (spandrel loads a .pt upscaler with torch.jit.load). Its code is read from the archive
    without running any of it; a zip holding no code (a torch.save checkpoint) passes. Every record is read as
    itself: a zip may hold two records of one name, and torch reads the first where zipfile reads the last, so
    such an archive is refused whole."""
    import zipfile
    import zlib
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            # a TorchScript archive is torch.save's zip: its code records were read whole to be checked, so one
            # deflated from 3 GB of spaces (a 3 MB file) took all memory in the check itself
            _refuse_records_beyond(path, infos)
            twice = [n for n, k in Counter(i.filename for i in infos).items() if k > 1]
            code = [(i.filename, z.read(i).decode("utf-8", "replace")) for i in infos if i.filename.endswith(".py")]
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError, NotImplementedError, EOFError, zlib.error) as e:
        raise NodeError(f"{path} is not a TorchScript {what} ({e}): export it again with torch.jit.save") from None
    if twice:
        raise NodeError(f"{path} is refused: it holds two records named {twice[0]}, which torch.jit.save never "
                        f"writes; a TorchScript {what} runs as a program, so one whose code could be read two ways "
                        f"is not loaded. Export it again with torch.jit.save, or use one from a source you trust")
    for name, text in code:
        hit = _forbidden_use(text)
        if hit:
            raise NodeError(f"{path} is refused: its code ({name}) {hit}. A TorchScript {what} runs as a program; "
                            f"use one from a source you trust that only computes")


def load_torchscript(path: Path, device, what: str):
    """A TorchScript module, checked first (check_torchscript)."""
    import torch
    check_torchscript(path, what)
    try:
        return torch.jit.load(str(path), map_location=device).eval()
    except Exception as e:
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise NodeError(f"{path} is not a TorchScript {what} ({first.strip()[:200]}): export it again with "
                        f"torch.jit.save") from None


# The first bytes of a legacy (pre-zip, torch < 1.6) torch.save file: a pickled magic number, protocol 2.
LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."
# What a plain tensor checkpoint's pickle names anyway; anything else is what the refusal is about.
TENSOR_GLOBALS = ("torch.", "collections.", "_codecs.")


def _pickle_globals(path: Path) -> Optional[list]:
    """The callables the first pickle in a file names, read opcode by opcode without running any of
    it; None where the bytes are no pickle (a cut-off or damaged download)."""
    import pickletools
    from collections import deque
    names, strings = [], deque(maxlen=2)          # STACK_GLOBAL takes the last two strings pushed
    try:
        with open(path, "rb") as f:
            for op, arg, _ in pickletools.genops(f):
                if isinstance(arg, str):
                    strings.append(arg)
                if op.name == "GLOBAL":
                    names.append(arg.replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) == 2:
                    names.append(".".join(strings))
                elif op.name == "STOP":
                    return names
    except Exception:  # genops raises ValueError and others on bytes that are no pickle
        return None
    return None


def _pickle_intact(path: Path) -> None:
    """A torch checkpoint's cheap check, reading no pickle: a zip's directory (a cut-off zip has none) and what its
    records unpack to, or a legacy file's opening bytes."""
    import zipfile
    if zipfile.is_zipfile(path):
        _refuse_unpacking_beyond(path)
        return
    try:
        with open(path, "rb") as f:
            head = f.read(len(LEGACY_MAGIC))
    except OSError as exc:
        raise NodeError(f"{path} cannot be read ({exc.strerror or exc})") from None
    # An empty file, an HTML error page saved under the model's name or a cut-off download is neither
    # a zip nor a legacy torch file (which opens with a pickled magic number): nothing to convert.
    if head != LEGACY_MAGIC:
        what = "an empty file" if not head else "neither a zip nor a legacy torch file"
        raise NodeError(f"{path} is not a torch checkpoint ({what}): it is damaged, cut short or not a "
                        f"weights file. {AGAIN}")


def pickle_header(path: Path) -> Header:
    """Names, shapes and dtypes of a torch zip checkpoint: tensor data is never read."""
    import zipfile
    _pickle_intact(path)
    if not zipfile.is_zipfile(path):
        raise NodeError(f"{path} is an old-style (pre-zip) torch pickle that cannot be inspected without "
                        "reading all of it; convert it to .safetensors")
    sd = torch_load(path)
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    dtypes = {k: str(v.dtype).replace("torch.", "") for k, v in sd.items()}
    return Header(shapes, dtypes, {}, "pickle")


def unwrap_state_dict(sd, path) -> dict:
    """The tensor dict inside a checkpoint: {"state_dict": ...} and {"module": ...} wrappers are common."""
    for key in ("state_dict", "module", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict) and not hasattr(sd.get(key), "shape"):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise NodeError(f"{path} does not hold a state dict of tensors")
    out = {k: v for k, v in sd.items() if hasattr(v, "shape")}
    # h94's IP-Adapter .bin files nest their two parts ({"image_proj": {...}, "ip_adapter": {...}}); their
    # .safetensors hold the same tensors flat under those prefixes, which is the one layout read here.
    for part in ("image_proj", "ip_adapter"):
        if isinstance(sd.get(part), dict):
            out.update({f"{part}.{k}": v for k, v in sd[part].items() if hasattr(v, "shape")})
    # A1111's textual-inversion .pt keeps its vectors one level down: {"string_to_param": {"*": tensor}}.
    if isinstance(sd.get("string_to_param"), dict):
        out.update({f"string_to_param.{k}": v for k, v in sd["string_to_param"].items() if hasattr(v, "shape")})
    return out


def read_header(path) -> Header:
    return _checked(Path(path), {**dict.fromkeys(SAFE_EXT, safetensors_header), **dict.fromkeys(GGUF_EXT, gguf_header),
                                 **dict.fromkeys(PICKLE_EXT, pickle_header)})


def loaded_weights(files):
    """Of the weight files of one folder, those diffusers and transformers read: where there are safetensors, not
    the pickles beside them (both libraries take safetensors first). Hugging Face's SDXL parts keep Optimum's
    OpenVINO weights, raw bytes named openvino_model.bin, beside theirs: read as a torch file, each refused a folder
    that loads."""
    if any(f.suffix.lower() in SAFE_EXT for f in files):
        return [f for f in files if f.suffix.lower() not in PICKLE_EXT]
    return list(files)


def check_file(path) -> None:
    """read_header's checks of a weights file against its size, reading no weight and no pickle (a zip checkpoint's
    directory, a legacy one's first bytes): what `kinograph validate` and the check before a run ask of each model
    file, a cut-off download having been said ok until its loader failed."""
    _checked(Path(path), {**dict.fromkeys(SAFE_EXT, safetensors_header), **dict.fromkeys(GGUF_EXT, gguf_intact),
                          **dict.fromkeys(PICKLE_EXT, _pickle_intact)})


def _checked(path: Path, readers):
    """What `readers` (by file suffix) reads of `path`, a failed download's page said as such (not_weights)."""
    from graph_engine.atomic import special_file
    kind = special_file(path)
    if kind:        # a model name the model folders resolve: opening a pipe waits for ever, past Ctrl-C
        raise NodeError(f"{path} is {kind}, not a model file: reading it waits for ever or never ends; put the "
                        "model file itself there")
    suffix = path.suffix.lower()
    if suffix not in readers:
        raise NodeError(f"{path}: unknown weights format {suffix!r}; Kinograph reads {', '.join(WEIGHT_EXT)}")
    try:
        return readers[suffix](path)
    except NodeError as exc:
        from nodes.generate.not_weights import not_weights
        raise NodeError(not_weights(path) or str(exc)) from None


# -- precision -----------------------------------------------------------------------------
_DTYPE_NAMES = {"F16": "fp16", "float16": "fp16", "BF16": "bf16", "bfloat16": "bf16", "F32": "fp32",
                "float32": "fp32", "F8_E4M3": "fp8_e4m3fn", "float8_e4m3fn": "fp8_e4m3fn", "F8_E5M2": "fp8_e5m2",
                "float8_e5m2": "fp8_e5m2", "F64": "fp64", "float64": "fp64"}


def _scaled_kind(weight: Optional[str], scale: Optional[str]) -> str:
    """ComfyUI's per-layer format told by a weight's and its weight_scale's types: int8_convrot's int8, NVFP4's bytes
    (two 4-bit values a byte), MXFP8's fp8 with one-byte E8M0 block scales, else fp8mixed. int8 is named as the
    files holding it are (krea2_turbo_int8_convrot.safetensors, the README's int8_convrot): ComfyUI's tag,
    int8_tensorwise, is inside the file, and `info` said int8_mixed, a name no file or page uses. The layers too
    narrow to rotate are plain int8 in the same file."""
    if weight == "I8":
        return "int8_convrot"
    if weight == "U8":
        return "nvfp4_mixed"
    return "mxfp8_mixed" if weight == "F8_E4M3" and scale in ("F8_E8M0", "U8") else "fp8_mixed"


def precision_of(header: Header) -> str:
    """fp16 / bf16 / fp32 / fp8_e4m3fn / fp8_e5m2 / fp8_scaled / gguf-<quant> of the file's matrices."""
    if "scaled_fp8" in header.shapes or any(k.endswith(".scale_weight") for k in header.shapes):
        return "fp8_scaled"
    scaled = Counter(_scaled_kind(header.dtypes.get(k[: -len("_scale")]), header.dtypes.get(k))
                     for k in header.shapes if k.endswith(".weight_scale"))
    if scaled:      # ComfyUI's per-layer quantisation, told by the weights' and their scales' types
        return scaled.most_common(1)[0][0]
    big = Counter(header.dtypes[k] for k, s in header.shapes.items() if len(s) >= 2 and k in header.dtypes)
    if not big:
        return ""
    if header.format == "gguf":
        quant = [d for d, _ in big.most_common() if d not in ("F32", "F16", "BF16")]
        return f"gguf-{quant[0] if quant else big.most_common(1)[0][0]}"
    name = big.most_common(1)[0][0]
    return _DTYPE_NAMES.get(name, name.lower())


# -- rules ---------------------------------------------------------------------------------
class Keys:
    """Exact key lookups that tolerate the wrapping prefixes (model.diffusion_model. etc.)."""

    def __init__(self, shapes: Dict[str, Shape]):
        self.shapes = shapes
        self.asked: list = []       # the tensors a rule read the shape of, to name one a damaged file got wrong


    def prefix_of(self, key: str) -> Optional[str]:
        for p in PREFIXES:
            if p + key in self.shapes:
                return p
        return None

    def has(self, *keys: str) -> bool:
        return all(self.prefix_of(k) is not None for k in keys)

    def any(self, *keys: str) -> bool:
        return any(self.prefix_of(k) is not None for k in keys)

    def shape(self, key: str) -> Optional[Shape]:
        p = self.prefix_of(key)
        if p is not None:
            self.asked.append(p + key)
        return None if p is None else self.shapes[p + key]

    def count(self, pattern: str) -> int:
        """How many distinct indices fill `{}` in `pattern` (e.g. number of blocks)."""
        rx = re.compile("^(?:" + "|".join(re.escape(p) for p in PREFIXES if p) + ")?"
                        + re.escape(pattern).replace(r"\{\}", r"(\d+)") + "$")
        return len({m.group(1) for k in self.shapes for m in [rx.match(k)] if m})

    def starts(self, *prefixes: str) -> bool:
        return any(k.startswith(prefixes) for k in self.shapes)


MISTRAL_VOCAB = 131072                 # Tekken, the tokenizer of Mistral's 3.x models
_WAN_SIZES = {1536: "1.3B", 3072: "5B", 5120: "14B"}


def _wan(k: Keys) -> Optional[Detection]:
    if k.has("head.modulation", "patch_embedding.weight"):
        layout = "original"
    elif k.has("scale_shift_table", "patch_embedding.weight", "condition_embedder.time_embedder.linear_1.weight"):
        layout = "diffusers"
    else:
        return None
    pe = k.shape("patch_embedding.weight")
    dim, in_ch = pe[0], pe[1]
    size = _WAN_SIZES.get(dim, f"dim{dim}")
    if k.any("vace_patch_embedding.weight", "vace_blocks.0.after_proj.weight", "vace_blocks.0.proj_out.weight"):
        kind = "vace"
    elif k.any("motion_encoder.dec.direction.weight", "face_adapter.fuser_blocks.0.k_norm.weight"):
        kind = "animate"
    elif k.any("casual_audio_encoder.encoder.final_linear.weight"):
        kind = "s2v"                      # Wan 2.2 S2V: sound to video
    elif k.any("audio_proj.audio_proj_glob_1.layer.weight"):
        kind = "humo"                     # HuMo (humo_17B, 1.7B): text, reference image and voice to video
    elif k.any("music_projection.weight"):
        kind = "dancer"                   # WanDancer: music and a picture to dance video (global and local files)
    elif k.any("patch_embedding_pose.weight"):
        # SCAIL (zai-org, on Wan 2.1 i2v): a pose video's patch embedding; SCAIL-2 also its colour masks'
        kind = "scail2" if k.any("patch_embedding_mask.weight") else "scail"
    elif k.any("control_adapter.conv.weight"):
        kind = "camera"
    elif k.any("img_emb.emb_pos", "condition_embedder.image_embedder.pos_embed"):
        kind = "flf2v"
    elif k.any("img_emb.proj.0.bias", "condition_embedder.image_embedder.norm1.bias"):
        # Wan 2.1 Fun Control: the i2v model reading 16 noise + 16 control-video + 16 start-frame channels
        kind = "control" if in_ch == 48 else "i2v"
    elif in_ch in (36, 2 * 48 + 4):
        kind = "i2v-2.2"                  # Wan 2.2 A14B image-to-video, Fun InP A14B and 5B: no CLIP image tokens
    elif in_ch in (3 * 16 + 4, 3 * 48 + 4):
        # Wan 2.2 Fun Control (A14B, 5B): noise, control video, a 4-channel start-frame mask and the start frame
        kind = "control-2.2"
    elif in_ch == 48:
        kind = "ti2v-2.2"
    else:
        kind = "t2v"
    prefix = k.prefix_of("patch_embedding.weight")
    return Detection("diffusion_model", "wan", f"{kind}-{size}", layout=layout, prefix=prefix,
                     why="head.modulation / patch_embedding" if layout == "original" else "scale_shift_table",
                     extra={"dim": dim, "in_channels": in_ch})


def _hunyuan15(k: Keys) -> Optional[Detection]:
    """HunyuanVideo 1.5 (ComfyUI's hunyuanvideo1.5_* and hunyuanvideo15_vae files, Tencent's names; or diffusers'):
    HunyuanVideo's token refiner and double blocks with separate q/k/v, plus the ByT5 and vision inputs; its VAE
    normalises with per-channel gammas."""
    from nodes.generate.converters.hunyuan15 import unsupported
    if k.has("encoder.down.0.block.0.norm1.gamma", "decoder.conv_in.conv.weight"):
        return Detection("vae", "hunyuan15", "", why="3-D VAE with RMS-norm gammas (HunyuanVideo 1.5's)")
    if k.has("encoder.down_blocks.0.resnets.0.norm1.gamma", "decoder.conv_in.conv.weight"):
        return Detection("vae", "hunyuan15", "", layout="diffusers", why="3-D VAE with RMS-norm gammas")
    if k.has("cond_type_embedding.weight") and k.any("double_blocks.0.img_attn_q.weight",
                                                     "double_blocks.0.img_attn_qkv.weight"):
        layout, img_in = "original", "img_in.proj.weight"
    elif k.has("cond_type_embed.weight", "context_embedder_2.norm.weight"):
        layout, img_in = "diffusers", "x_embedder.proj.weight"
    else:
        return None
    in_ch = (k.shape(img_in) or (0, 65))[1]
    latent = (k.shape("final_layer.linear.weight" if layout == "original" else "proj_out.weight") or (32,))[0]
    prefix = k.prefix_of(img_in) or ""
    why = unsupported(in_ch, latent)
    if why:
        return Detection(None, "hunyuan15", "", layout=layout, prefix=prefix, why=f"this is {why}")
    names = {n[len(prefix):] for n in k.shapes if n.startswith(prefix)}
    variant = ("1080p-sr" if in_ch == 3 * latent + 2 else
               "cfg-distilled" if {"guidance_in.mlp.0.weight", "time_embed.guidance_embedder.linear_1.weight"} & names
               else "step-distilled" if {"time_r_in.mlp.0.weight", "time_embed.timestep_embedder_r.linear_1.weight"}
               & names else "")
    return Detection("diffusion_model", "hunyuan15", variant, layout=layout, prefix=prefix,
                     why="double blocks with separate q/k/v, byt5_in / vision_in")


def _kandinsky5(k: Keys) -> Optional[Detection]:
    """Kandinsky 5 video and image transformers (ComfyUI's kandinsky5lite_t2v_sft_5s / _i2v_5s files, kandinskylab's
    names, which diffusers' Kandinsky5Transformer3DModel keeps one to one)."""
    if not k.has("visual_transformer_blocks.0.visual_modulation.out_layer.weight", "pooled_text_embeddings.in_layer.weight"):
        return None
    prefix = k.prefix_of("visual_embeddings.in_layer.weight") or ""
    visual, out = k.shape("visual_embeddings.in_layer.weight"), k.shape("out_layer.out_layer.weight")
    if visual and out and visual[1] == out[0]:
        # no start-frame channels beside the noise (the video models hold 2 x 16 + 1): ComfyUI's Kandinsky5Image
        # (kandinsky5lite_t2i), which samples FLUX.1's latents, not HunyuanVideo's
        return Detection("diffusion_model", "kandinsky5image", "", prefix=prefix,
                         why="Kandinsky 5's image model (no start-frame channels; FLUX.1's VAE)")
    return Detection("diffusion_model", "kandinsky5", "", prefix=prefix,
                     why="text / visual transformer blocks with pooled CLIP embeddings (Kandinsky 5)")


def _anima(k: Keys) -> Optional[Detection]:
    """Anima's DiT (circlestone-labs/Anima's anima-base-v1.0, anima-preview*): Cosmos-Predict2's with an LLM adapter
    (Qwen3-0.6B's states to queries on the prompt's T5 token ids) before it."""
    if not k.has("x_embedder.proj.1.weight", "blocks.0.self_attn.q_proj.weight", "llm_adapter.embed.weight"):
        return None
    return Detection("diffusion_model", "anima", "", prefix=k.prefix_of("x_embedder.proj.1.weight") or "",
                     why="Cosmos-Predict2's DiT with an LLM adapter (llm_adapter)")


def _not_yet(k: Keys) -> Optional[Detection]:
    """Video families Kinograph recognises by the names their diffusers single-file converters read, and does not
    run yet: named, so a user knows what the file is and what to use instead."""
    instead = "Wan 2.1/2.2, HunyuanVideo (1 and 1.5), LTX-Video or Kandinsky 5 run today"
    if k.has("blocks.0.attn.qkv_x.weight", "t5_y_embedder.to_kv.weight"):
        return Detection(None, "mochi", "", prefix=k.prefix_of("blocks.0.attn.qkv_x.weight") or "",
                         why=f"Genmo's Mochi 1 transformer, which Kinograph does not run yet; {instead}")
    if k.has("decoder.blocks.0.0.weight", "decoder.output_proj.weight"):
        return Detection(None, "mochi", "", why="Genmo's Mochi 1 VAE (mochi_vae), which Kinograph does not read yet")
    if k.has("x_embedder.proj.1.weight", "blocks.0.self_attn.q_proj.weight", "pos_embedder.dim_spatial_range"):
        return Detection(None, "cosmos", "predict2", prefix=k.prefix_of("x_embedder.proj.1.weight") or "",
                         why=f"NVIDIA's Cosmos-Predict2 transformer, which Kinograph does not run yet; {instead}")
    if k.has("x_embedder.proj.1.weight", "extra_pos_embedder.pos_emb_h"):
        return Detection(None, "cosmos", "1.0", prefix=k.prefix_of("x_embedder.proj.1.weight") or "",
                         why=f"NVIDIA's Cosmos 1.0 transformer, which Kinograph does not run yet; {instead}")
    return _minimax_h3(k)


def _mage_flow(k: Keys) -> Optional[Detection]:
    """Microsoft's Mage-Flow as ComfyUI holds it (Comfy-Org/Mage-Flow): the transformer (diffusion_models/
    mage_flow_*.safetensors) has Qwen-Image's names (comfy/ldm/mage_flow/model.py builds Qwen-Image's blocks) but reads
    and gives the Mage VAE's 128-channel latent pixel by pixel, where Qwen-Image's reads and gives 2x2 patches of 16
    channels (64): it was taken for a Qwen-Image. The VAE (vae/mage_flow_vae_bf16) holds its encoder under
    student.dconv_encoder. and its decoder under pipeline. (or the module's own dconv_encoder. / decoder_model.).
    Lens also reads 128 channels with img_mod names, but fuses q/k/v (attn.img_qkv): that is Lens's."""
    if (k.shape("img_in.weight") or (0, 0))[1] == MAGE_CHANNELS and \
            (k.shape("proj_out.weight") or (0,))[0] == MAGE_CHANNELS and k.has("transformer_blocks.0.img_mod.1.weight") \
            and not k.has("transformer_blocks.0.attn.img_qkv.weight"):
        return Detection("diffusion_model", "mage_flow", "", prefix=k.prefix_of("img_in.weight") or "",
                         why="Qwen-Image's blocks over 128 latent channels, one token per latent pixel (Mage-Flow)")
    for enc, dec in (("student.dconv_encoder.", "pipeline."), ("dconv_encoder.", "decoder_model.")):
        if k.has(enc + "patch_cond_embed.weight", dec + "y_embedder.decoder.conv_in.weight"):
            return Detection("vae", "mage_flow", "", why="Microsoft's Mage-VAE (a one-step DiCo codec: "
                                                         f"{enc}patch_cond_embed, {dec}y_embedder.decoder)")
    return None


def _seedvr2(k: Keys) -> Optional[Detection]:
    """ByteDance's SeedVR2 restorer as ComfyUI keeps it: seedvr2_3b/7b_*.safetensors in diffusion_models (any
    precision; its NaDiT, with the prompt embeddings it was trained on baked in as positive/negative_conditioning),
    which load.diffusion_model reads (nodes/generate/seedvr2_dit.py); and seedvr2_ema_vae_fp16 in vae (SD3's
    autoencoder names on 3-D convolutions), which load.vae reads (nodes/generate/seedvr2_vae.py). That VAE was taken
    for FLUX.1's (the same names, 16 latent channels) and failed on its 5-D weights."""
    dim = k.shape("vid_in.proj.weight")
    if dim is not None and k.any("emb_in.proj_in.weight"):
        size = {2560: "3B", 3072: "7B"}.get(dim[0], f"width {dim[0]}")
        return Detection("diffusion_model", "seedvr2", size.lower(), prefix=k.prefix_of("vid_in.proj.weight") or "",
                         why=f"ByteDance's SeedVR2 {size} restoration transformer (NaDiT)")
    # diffusers' Wan and Qwen-Image VAEs have these names on 3-D convolutions too, with RMS norms (gamma) where
    # SeedVR2's (SD3's autoencoder inflated) has group norms
    if len(k.shape("decoder.conv_in.weight") or ()) == 5 and k.any("decoder.up_blocks.0.resnets.0.conv1.weight") \
            and not k.any("decoder.up_blocks.0.resnets.0.norm1.gamma", "decoder.mid_block.resnets.0.norm1.gamma"):
        return Detection("vae", "seedvr2", "", why="ByteDance's SeedVR2 video VAE (causal 3-D convolutions, 16 latent "
                                                  "channels, 8x and 4n+1 frames)")
    return None


def _minimax_h3(k: Keys) -> Optional[Detection]:
    """MiniMax H3's files as ComfyUI's templates hold them (comfy/ldm/minimax: model.py, vae.py, audio_vae.py) and
    its transformer in diffusers' names (MiniMaxH3Transformer3DModel)."""
    for q, joint in (("video_patch_proj.weight", "final_layer.audio_out.weight"),
                     ("transformer_blocks.0.adaln_proj.linear.weight", "audio_proj_out.weight")):
        if k.has(q, joint):
            # the pruned release (minimax_h3_fl2va_pruned_*) reads its modulation from a table of the time
            # embedding's curve (adaln_t_table) instead of a time embedder
            return Detection("diffusion_model", "minimax_h3", "pruned" if k.has("adaln_t_table") else "",
                             layout="original" if q == "video_patch_proj.weight" else "diffusers",
                             prefix=k.prefix_of(q) or "", why="video_patch_proj / final_layer.audio_out")
    if k.has("decoder.register_tokens", "post_quant_conv.weight") and \
            k.any("decoder.x_embedder.weight", "decoder.proj_in.weight"):      # ComfyUI's names, diffusers'
        return Detection("vae", "minimax_h3", "", layout="original" if k.has("decoder.x_embedder.weight") else "diffusers",
                         why="MiniMax H3's video VAE (24 channels, a causal 3-D encoder and a ViT decoder)")
    if k.has("pre_block.attn.q_bias", "dec_in_proj.weight", "mean_proj.weight"):
        return Detection("vae", "minimax_h3", "audio", why="MiniMax H3's stereo audio VAE (32 kHz, a BigVGAN "
                                                           "decoder): vae.decode_sound reads a video's soundtrack")
    return None


def _hunyuan(k: Keys) -> Optional[Detection]:
    if k.any("txt_in.individual_token_refiner.blocks.0.norm1.weight", "double_blocks.0.img_attn_qkv.weight"):
        layout, img_in = "original", "img_in.proj.weight"
    elif k.has("context_embedder.token_refiner.refiner_blocks.0.norm1.weight"):
        layout, img_in = "diffusers", "x_embedder.proj.weight"
    else:
        return None
    shape = k.shape(img_in)
    out = k.shape("final_layer.linear.weight" if layout == "original" else "proj_out.weight")
    in_ch = shape[1] if shape else 16
    # Input channels against the latent's (output / patch volume): equal for text-to-video and the v2
    # "replace" image-to-video model, 2 x latent + 1 for the v1 "concat" one.
    latent = out[0] // (shape[2] * shape[3] * shape[4]) if shape and out and len(shape) == 5 else 16
    kind = {latent: "t2v", 2 * latent + 1: "i2v"}.get(in_ch, f"in{in_ch}")
    if k.any("guidance_in.in_layer.weight", "time_text_embed.guidance_embedder.linear_1.weight"):
        kind += "-guidance"
    return Detection("diffusion_model", "hunyuan", kind, layout=layout,
                     prefix=k.prefix_of(img_in) or "", why="token refiner / double blocks")


LTX2_FILES = ("Kinograph runs LTX-2 from its all-in-one checkpoint (checkpoints/ltx-2-19b-dev.safetensors or "
              "-distilled: transformer, text connectors, video and audio VAEs and vocoder in one file)")


def _ltx2(k: Keys) -> Optional[Detection]:
    """LTX-2 / LTX-2.3 (Lightricks' joint audio and video transformer) and the parts ComfyUI splits from it. Its
    transformer holds LTX-Video's adaln_single / patchify_proj too, so this rule comes before _ltx."""
    if k.any("av_ca_a2v_gate_adaln_single.emb.timestep_embedder.linear_1.weight"):
        layout, q = "original", "transformer_blocks.0.attn1.to_q.weight"
    elif k.any("av_cross_attn_video_a2v_gate.emb.timestep_embedder.linear_1.weight"):
        layout, q = "diffusers", "transformer_blocks.0.attn1.to_q.weight"
    elif k.any("audio_vae.per_channel_statistics.mean-of-means") or (
            k.any("per_channel_statistics.mean-of-means") and len(k.shape("decoder.conv_in.conv.weight") or ()) == 4):
        return Detection(None, "ltx2", "audio-vae", why=f"LTX-2's audio VAE (2-D convolutions over a mel "
                         f"spectrogram) alone: {LTX2_FILES}")
    elif k.any("vocoder.conv_pre.weight") or k.has("conv_pre.weight", "ups.0.weight", "resblocks.0.convs1.0.weight"):
        return Detection(None, "ltx2", "vocoder", why=f"LTX-2's vocoder (mel spectrogram to sound) alone: {LTX2_FILES}")
    elif k.any("text_embedding_projection.weight", "text_embedding_projection.aggregate_embed.weight",
               "video_embeddings_connector.learnable_registers"):
        return Detection(None, "ltx2", "connectors", why=f"LTX-2's text projection and connectors alone: {LTX2_FILES}")
    elif k.any("layers.0.layer_scalar", "language_model.layers.0.layer_scalar"):
        # Gemma 4 (ComfyUI's gemma4_*: LTX-2.5's encoder and enhancer, text generation): Gemma 3's norms, a learned
        # scale on each layer's output; read as Gemma 3 it failed on its per-layer inputs or LTX-2's connectors
        hidden = (k.shape("model.embed_tokens.weight") or k.shape("model.language_model.embed_tokens.weight") or
                  (0, 0))[1]
        # its towers (ComfyUI's names or transformers'): what text.generate can give it beside the prompt
        towers = [what for what, key in (("vision", "vision_model.patch_embedder.input_proj.weight"),
                                         ("audio", "audio_model.output_proj.weight"))
                  if k.any(key, "model." + key.replace("_model.", "_tower.", 1))]
        reads = {("vision", "audio"): ", with its vision and audio towers: it reads a picture and hears a sound",
                 ("vision",): ", with its vision tower: it reads a picture"}.get(tuple(towers), ", text only")
        return Detection("text_encoder", "gemma4", {1536: "e2b", 2560: "e4b", 5376: "31b"}.get(hidden, f"h{hidden}"),
                         why=f"Gemma 4 (a scale on each layer: ComfyUI's gemma4_* text encoders){reads}, read by "
                             "text.generate")
    elif k.any("layers.0.post_feedforward_layernorm.weight") and k.any("layers.0.self_attn.q_norm.weight"):
        # Gemma 3 (ComfyUI's gemma_3_12B_it: transformers' language-model names, its sentencepiece as spiece_model);
        # Gemma 2 has the same norms but no query norm.
        hidden = (k.shape("model.embed_tokens.weight") or k.shape("embed_tokens.weight") or
                  k.shape("model.language_model.embed_tokens.weight") or (0, 0))[1]
        return Detection("text_encoder", "gemma3", {3840: "12b"}.get(hidden, f"h{hidden}"),
                         why="Gemma 3 layers (pre/post feed-forward norms, q_norm): LTX-2's text encoder",
                         extra={"hidden": hidden})
    else:
        return None
    dim = (k.shape(q) or (0,))[0]
    # LTX-2.3 projects Gemma's features separately for video and audio and modulates cross-attention by the prompt.
    v23 = k.any("text_embedding_projection.video_aggregate_embed.weight", "prompt_adaln_single.linear.weight",
                "video_text_proj_in.weight")
    # LTX-2.5 keeps 2.3's layers but drops the video feed-forward's biases (diffusers' ff_bias)
    v25 = v23 and not k.any("transformer_blocks.0.ff.net.0.proj.bias")
    size = "22B" if v23 else {4096: "19B"}.get(dim, f"dim{dim}")
    role = "checkpoint" if k.starts("vae.") else "diffusion_model"
    return Detection(role, "ltx2", size, layout=layout, prefix=k.prefix_of(q) or "",
                     why="audio-video cross-attention gates (av_ca_*)",
                     extra={"version": "2.5" if v25 else "2.3" if v23 else "2.0"})


def ltx2_release(det: Detection, name: str) -> Detection:
    """What only the file's name tells: dev or distilled (the two releases share every tensor shape:
    ltx-2-19b-dev.safetensors, ltx-2-19b-distilled-fp8.safetensors), and LTX-2's latent upscaler
    (ltx-2-spatial-upscaler-x2-1.0), built as LTX-Video 0.9.7's but trained on another VAE's latents."""
    if det.family == "ltx" and det.role == "latent_upscaler" and re.match(r"ltx-?2", name.lower()):
        det.family = "ltx2"
    if det.family == "ltx2" and det.role in ("checkpoint", "diffusion_model"):
        low = name.lower()
        release = "distilled" if "distill" in low else "dev" if "dev" in low else ""
        det.variant = "-".join(b for b in (det.variant, release) if b)
    return det


def _ltx(k: Keys) -> Optional[Detection]:
    if k.has("adaln_single.emb.timestep_embedder.linear_1.weight", "patchify_proj.weight"):
        layout, q = "original", "transformer_blocks.0.attn1.to_q.weight"
    elif k.has("time_embed.emb.timestep_embedder.linear_1.weight", "proj_in.weight", "caption_projection.linear_1.weight"):
        layout, q = "diffusers", "transformer_blocks.0.attn1.to_q.weight"
    else:
        return None
    dim = (k.shape(q) or (0,))[0]
    size = {2048: "2B", 4096: "13B"}.get(dim, f"dim{dim}")
    role = "checkpoint" if k.starts("vae.", "first_stage_model.") else "diffusion_model"
    return Detection(role, "ltx", size, layout=layout,
                     prefix=k.prefix_of("patchify_proj.weight" if layout == "original" else "proj_in.weight") or "",
                     why="adaln_single / patchify_proj")


def _ltx_upsampler(k: Keys) -> Optional[Detection]:
    """LTX-Video's latent upscalers (ltxv-spatial-upscaler-0.9.7 / -0.9.8, ltxv-temporal-upscaler-0.9.7)."""
    if not k.has("initial_conv.weight", "upsampler.0.weight", "final_conv.weight"):
        return None
    from nodes.generate.ltx_upsampler import axes_of
    axes = axes_of(k.shape("initial_conv.weight"), k.shape("upsampler.0.weight"))
    variant = {(True, False): "spatial", (False, True): "temporal", (True, True): "spatiotemporal"}.get(axes, "")
    return Detection("latent_upscaler", "ltx", variant, why="initial_conv / upsampler / final_conv")


def _hunyuan15_upsampler(k: Keys) -> Optional[Detection]:
    """HunyuanVideo 1.5's latent upsamplers (hunyuanvideo15_latent_upsampler_1080p: VAE-style resnet stages without a
    down or up path; _720p: in_conv / blocks / out_conv)."""
    if k.has("conv_in.conv.weight", "up.0.block.0.conv1.conv.weight", "conv_out.conv.weight") \
            and not k.starts("encoder.", "decoder."):
        return Detection("latent_upscaler", "hunyuan15", "1080p", why="conv_in / up.N.block / conv_out")
    if k.has("in_conv.conv.weight", "blocks.0.block.0.conv.weight", "out_conv.conv.weight"):
        return Detection("latent_upscaler", "hunyuan15", "720p", why="in_conv / blocks / out_conv")
    return None


def _cogvideox(k: Keys) -> Optional[Detection]:
    if k.has("mixins.patch_embed.proj.weight"):
        layout, pe = "original", "mixins.patch_embed.proj.weight"
    elif k.has("patch_embed.text_proj.weight", "transformer_blocks.0.norm1.linear.weight"):
        layout, pe = "diffusers", "patch_embed.proj.weight"
    elif k.has("patch_embed.text_proj.weight", "time_embedding_linear_1.weight", "blocks.0.norm1.linear.weight"):
        # comfy/ldm/cogvideo's own names (blocks.N.q, ff_proj, time_embedding_linear_1): Comfy-Org's VOID files
        layout, pe = "comfyui", "patch_embed.proj.weight"
    else:
        return None
    shape = k.shape(pe) or (0, 16)
    # V1.5's patch is a Linear over two frames of 2x2 cells: its width is 8 times the latent's channels
    channels = shape[1] // 8 if len(shape) == 2 else shape[1]
    kind = {32: "i2v", 48: "inpaint"}.get(channels, "t2v")      # 48: noise, mask and kept picture (CogVideoX-Fun, VOID)
    size = {1920: "2B", 3072: "5B"}.get(shape[0], f"dim{shape[0]}")
    return Detection("diffusion_model", "cogvideox", f"{kind}-{size}", layout=layout, prefix=k.prefix_of(pe) or "",
                     why="patch_embed")


def _svd(k: Keys) -> Optional[Detection]:
    if k.has("down_blocks.0.resnets.0.temporal_res_block.conv1.weight", "conv_in.weight", "time_embedding.linear_1.weight"):
        layout = "diffusers"
    elif k.has("input_blocks.0.0.weight") and any(".time_stack." in n for n in k.shapes):
        layout = "original"
    else:
        return None
    role = "checkpoint" if k.starts("first_stage_model.", "conditioner.") else "diffusion_model"
    return Detection(role, "svd", "", layout=layout, prefix="model.diffusion_model." if k.starts(
        "model.diffusion_model.") else "", why="time_stack / temporal blocks")


# The width of Lotus' task embedding (sin and cos of its two-number task switch), ComfyUI's adm_in_channels for it
LOTUS_TASK_WIDTH = 4


def _sd(k: Keys) -> Optional[Detection]:
    if k.has("input_blocks.0.0.weight", "out.2.weight"):
        layout = "original"
        ctx = k.shape("input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight") or \
            k.shape("input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight")
        in_ch = k.shape("input_blocks.0.0.weight")[1]
        prefix = k.prefix_of("input_blocks.0.0.weight")
    elif k.has("conv_in.weight", "time_embedding.linear_1.weight", "conv_norm_out.weight") and k.starts(
            "down_blocks.", "unet.down_blocks."):
        layout = "diffusers"
        ctx = k.shape("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight") or \
            k.shape("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight")
        in_ch = k.shape("conv_in.weight")[1]
        prefix = k.prefix_of("conv_in.weight")
    else:
        return None
    task = k.shape("label_emb.0.0.weight") or k.shape("class_embedding.linear_1.weight")
    if task is not None and task[1] == LOTUS_TASK_WIDTH:
        # Lotus (depth / normals from a picture): SD 2's UNet with a 4-wide task embedding where SDXL's is 2816-wide;
        # Lotus-D reads the picture's latent alone (4 channels), Lotus-G it beside noise (8)
        variant = "lotus-d" if in_ch == 4 else "lotus-g"
    elif k.starts("conditioner.embedders.") or k.any("label_emb.0.0.weight", "add_embedding.linear_1.weight"):
        # The refiner reads OpenCLIP-G alone (1280-wide context, conditioner.embedders.0 is OpenCLIP); the base
        # model both encoders (2048-wide).
        refiner = k.starts("conditioner.embedders.0.model.") or (ctx is not None and ctx[1] == 1280)
        variant = "sdxl-refiner" if refiner else "sdxl"
    elif ctx is not None and ctx[1] == 1024:
        variant = "sd2"
    else:
        variant = "sd15"
    if in_ch == 9 and not variant.startswith("lotus"):
        variant += "-inpainting"
    role = "checkpoint" if k.starts("cond_stage_model.", "first_stage_model.", "conditioner.") else "diffusion_model"
    extra = {"context_dim": ctx[1] if ctx else 0}
    if k.has("v_pred"):         # ComfyUI's marker tensors of v-prediction fine-tunes (NoobAI-XL V-Pred)
        extra["prediction"] = "v-prediction, zero terminal SNR" if k.has("ztsnr") else "v-prediction"
    return Detection(role, "sd", variant, layout=layout, prefix=prefix or "", why="input_blocks / out" if
                     layout == "original" else "conv_in / time_embedding", extra=extra)


def _motion(k: Keys) -> Optional[Detection]:
    from nodes.generate.converters.hotshot import MARKER
    if k.any(MARKER):
        return Detection("motion_module", "animatediff", "sdxl", layout="hotshot", why="Hotshot-XL temporal layers")
    if not k.any("down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight",
                 "down_blocks.0.motion_modules.0.proj_in.weight"):
        return None
    if k.any("mid_block.motion_modules.0.temporal_transformer.norm.bias", "mid_block.motion_modules.0.norm.bias"):
        variant = "v2"
    elif not k.any("down_blocks.3.motion_modules.0.temporal_transformer.proj_in.weight",
                   "down_blocks.3.motion_modules.0.proj_in.weight"):
        variant = "sdxl"
    else:
        variant = "v1/v3"
    layout = "original" if k.any("down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight") else "diffusers"
    return Detection("motion_module", "animatediff", variant, layout=layout, why="motion_modules")


def _controlnet(k: Keys) -> Optional[Detection]:
    if k.any("input_hint_block.0.weight", "control_model.input_hint_block.0.weight"):
        layout = "original"
    elif k.has("controlnet_cond_embedding.conv_in.weight") and k.any("controlnet_down_blocks.0.weight"):
        layout = "diffusers"
    else:
        return None
    if any("motion_modules" in n for n in k.shapes):
        return Detection("controlnet", "animatediff", "sparsectrl", layout=layout, why="controlnet + motion modules")
    # A Control-LoRA keeps SDXL's size embedding as a low-rank delta (label_emb.0.0.up / .down), not a weight.
    sdxl = k.any("add_embedding.linear_1.weight", "label_emb.0.0.weight", "control_model.label_emb.0.0.weight",
                 "label_emb.0.0.up")
    variant = "sdxl" if sdxl else "sd15"
    extra = {}
    # Two SDXL kinds that share the ControlNet's keys but not its network: xinsir's ControlNet++ "union" (one net, a
    # task embedding choosing canny / depth / pose...) and Stability's Control-LoRAs (low-rank deltas on the base
    # UNet's own weights, in the original layout, marked by an empty lora_controlnet tensor).
    if k.starts("task_embedding", "control_add_embedding", "transformer_layes"):
        variant += "-union"
        extra["modes"] = (k.shape("task_embedding") or (0,))[0]
    elif k.any("lora_controlnet"):
        variant += "-control-lora"
        extra["rank"] = (k.shape("input_blocks.0.0.up") or k.shape("time_embed.0.up") or (0, 0))[1]
    return Detection("controlnet", "sd", variant, layout=layout, why="input_hint_block / controlnet_cond_embedding",
                     extra=extra)


def _flux_controlnet(k: Keys) -> Optional[Detection]:
    """FLUX.1 ControlNets, told apart as ComfyUI's load_controlnet_state_dict tells them: InstantX's and Shakker-Labs'
    (FLUX.1-dev-Controlnet-Canny / -Union, FLUX.1-dev-ControlNet-Union-Pro and -2.0, in diffusers' names with a
    controlnet_x_embedder taking the control picture's latent; a union one has a controlnet_mode_embedder), XLabs'
    (flux-canny/depth/hed-controlnet-v3: Black Forest Labs' names and a pixel-space input_hint_block, which SD's
    ControlNet rule would take for its own) and TheMisto's MistoLine. Checked before _controlnet and _flux."""
    if not k.any("controlnet_blocks.0.weight", "controlnet_blocks.0.linear.weight"):
        return None
    if k.any("controlnet_blocks.0.linear.weight"):
        return Detection("controlnet", "flux", "mistoline", layout="mistoline", why="controlnet_blocks.N.linear")
    if k.has("double_blocks.0.img_attn.qkv.weight"):
        return Detection("controlnet", "flux", "xlabs", layout="xlabs", why="double_blocks + input_hint_block")
    x = k.shape("controlnet_x_embedder.weight")
    if x is None or not k.has("transformer_blocks.0.attn.to_q.weight"):
        return None
    if k.any("transformer_blocks.0.img_mlp.net.0.proj.weight"):      # InstantX's Qwen-Image ControlNet
        return Detection("controlnet", "qwenimage", "instantx", layout="diffusers", why="controlnet_x_embedder",
                         extra={"in_channels": x[1]})
    modes = k.shape("controlnet_mode_embedder.weight")
    variant = "instantx-inpaint" if x[1] != 64 else "instantx-union" if modes else "instantx"
    return Detection("controlnet", "flux", variant, layout="diffusers", why="controlnet_x_embedder / controlnet_blocks",
                     extra={"modes": modes[0] if modes else 0, "in_channels": x[1]})


def _vae(k: Keys) -> Optional[Detection]:
    if k.any("decoder.middle.0.residual.0.gamma"):
        z = (k.shape("conv1.weight") or (32,))[0] // 2
        if z == 64:         # Qwen-Image 2.1's (Wan's 2-D layout at 16x, 64 latent channels), not a Wan VAE
            return Detection(None, "qwenimage21", "", why=qwen21_files("VAE"))
        # RGBA (4 channels in: Qwen-Image-Layered's qwen_image_layered_vae) or RGB
        return Detection("vae", "wan", "2.2" if z == 48 else "2.1", why="decoder.middle residual gamma",
                         extra={"z_dim": z, "channels": (k.shape("encoder.conv1.weight") or (0, 3))[1]})
    if k.any("encoder.down_blocks.0.norm1.gamma", "decoder.mid_block.resnets.0.norm1.gamma"):
        z = (k.shape("quant_conv.weight") or (32,))[0] // 2
        if z == 64:         # Qwen-Image 2.1's (Wan's 2-D layout at 16x, 64 latent channels), not a Wan VAE
            return Detection(None, "qwenimage21", "", layout="diffusers", why=qwen21_files("VAE"))
        return Detection("vae", "wan", "2.2" if z == 48 else "2.1", layout="diffusers", extra={"z_dim": z})
    if k.any("per_channel_statistics.mean-of-means", "vae.per_channel_statistics.mean-of-means") or (
            k.has("latents_mean", "encoder.conv_in.conv.weight")):
        return Detection("vae", "ltx", "", layout="original" if k.any(
            "per_channel_statistics.mean-of-means", "vae.per_channel_statistics.mean-of-means") else "diffusers",
            why="per-channel statistics")
    if k.any("decoder.up_blocks.0.resnets.0.norm1.conv_y.conv.weight", "decoder.up_blocks.0.resnets.0.norm1.conv_y.weight"):
        # conv_y is a causal 3-D convolution holding its Conv3d as .conv (diffusers' and comfy/ldm/cogvideo's names)
        return Detection("vae", "cogvideox", "", layout="diffusers", why="spatial norm (conv_y)")
    if k.any("encoder.down_blocks.0.downsamplers.0.conv.conv.weight"):
        return Detection("vae", "hunyuan", "", layout="diffusers", why="causal conv3d blocks")
    if k.has("encoder.down.0.block.0.conv1.conv.weight", "decoder.conv_in.conv.weight"):
        return Detection("vae", "hunyuan", "", why="LDM blocks with 3-D convolutions (ComfyUI's Hunyuan VAE)")
    if k.any("decoder.time_mixer.mix_factor", "decoder.up_blocks.0.resnets.0.time_mixer.mix_factor") or \
            any(n.startswith(("decoder.up.0.block.0.time_stack", "first_stage_model.decoder.up.0.block.0.time_stack"))
                for n in k.shapes):
        return Detection("vae", "svd", "temporal-decoder", why="time_mixer")
    if k.any("bn.running_mean") and (k.shape("decoder.conv_in.weight") or (0, 0))[1] == 32:
        # FLUX.2's autoencoder (flux2-vae.safetensors): 32 latent channels, normalised in 2x2 patches by a batch norm
        return Detection("vae", "flux2", "", why="32 latent channels with patch statistics (bn)")
    # The 2-D autoencoders: SD's and SDXL's with 4 latent channels, FLUX.1's ae.safetensors with 16 (SD3's has the
    # same tensors and only another latent scale: load.vae tells them by its family or the file's name).
    z = (k.shape("decoder.conv_in.weight") or (0, 4))[1]
    fam, why = ("flux", "16 latent channels") if z == 16 else ("sd", "")
    if k.has("encoder.down.0.block.0.conv1.weight", "decoder.up.0.block.0.conv1.weight"):
        return Detection("vae", fam, "", why=why or "encoder.down / decoder.up")
    if k.has("encoder.down_blocks.0.resnets.0.conv1.weight", "decoder.up_blocks.0.resnets.0.conv1.weight"):
        return Detection("vae", fam, "", layout="diffusers", why=why or "AutoencoderKL blocks")
    return None


def _text_encoder(k: Keys) -> Optional[Detection]:
    q = k.shape("encoder.block.0.layer.0.SelfAttention.q.weight")
    if q is not None:
        umt5 = k.any("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight")
        d = q[1]
        size = {4096: "xxl", 1024: "large", 768: "base", 512: "small"}.get(d, f"d{d}")
        return Detection("text_encoder", "umt5" if umt5 else "t5", size, why="encoder.block SelfAttention",
                         extra={"d_model": d})
    if k.any("encoder.layers.0.mixer.Wqkv.weight") and k.any("embeddings.token_type_embeddings.weight"):
        # Jina CLIP v2's text tower (ComfyUI's jina_clip_v2_*: NewBie-image's pooled prompt): Jina's XLM-RoBERTa
        return Detection("text_encoder", "jina_clip2", "", why="Jina XLM-RoBERTa blocks (encoder.layers.N.mixer.Wqkv)")
    emb = k.shape("embeddings.token_embedding.weight")
    if emb is not None:
        name = {768: "clip_l", 1280: "clip_g"}.get(emb[1], "clip")
        return Detection("text_encoder", name, "", why="text_model embeddings", extra={"hidden": emb[1]})
    if k.any("layers.0.post_feedforward_layernorm.weight") and k.any("layers.0.pre_feedforward_layernorm.weight") \
            and not k.any("layers.0.self_attn.q_norm.weight"):
        # Gemma 2 (ComfyUI's gemma_2_2b_it_elm_*: PixelDiT's encoder): Gemma 3's sandwich norms without its q/k norms
        hidden = (k.shape("model.embed_tokens.weight") or k.shape("embed_tokens.weight") or (0, 0))[1]
        return Detection("text_encoder", "gemma2", {2304: "2b"}.get(hidden, f"h{hidden}"),
                         why="Gemma 2 layers (pre/post feed-forward norms, no q_norm)", extra={"hidden": hidden})
    sinks = k.shape("layers.0.self_attn.sinks")
    if sinks is not None and k.any("layers.0.mlp.router.weight"):
        # GPT-OSS (Lens's gpt_oss_20b_*): biased q/k/v like Qwen2's, with a softmax sink per head and routed experts
        emb = k.shape("embed_tokens.weight") or (0, 0)
        return Detection("text_encoder", "gpt_oss", "20b" if emb[1] == 2880 else f"h{emb[1]}",
                         why="attention sinks and routed experts (GPT-OSS)", extra={"hidden": emb[1]})
    # Qwen2.5-VL (Qwen-Image's encoder): a Qwen2 language model (biased q/k/v) under model. in ComfyUI's files
    # (transformers 4's names, with the vision tower as visual.*), or model.language_model. in transformers 5's
    qkv_bias = k.shape("layers.0.self_attn.k_proj.bias") or k.shape("language_model.layers.0.self_attn.k_proj.bias")
    if qkv_bias is not None:
        emb = k.shape("embed_tokens.weight") or k.shape("language_model.embed_tokens.weight") or (0, 0)
        return Detection("text_encoder", "qwen25vl", {3584: "7b", 2048: "3b"}.get(emb[1], f"h{emb[1]}"),
                         why="Qwen2 layers (q/k/v biases)", extra={"hidden": emb[1],
                                                                  "vision": k.any("visual.patch_embed.proj.weight")})
    emb = k.shape("embed_tokens.weight") or k.shape("model.language_model.embed_tokens.weight")
    if emb is not None and emb[0] == MISTRAL_VOCAB:
        # Mistral Small 3.x (FLUX.2 dev's encoder, mistral_3_small_flux2_*): its language model's names, as
        # transformers 4 (model.layers.*) or Mistral3's checkpoints (model.language_model.*) write them
        return Detection("text_encoder", "mistral3", "24b" if emb[1] == 5120 else f"h{emb[1]}",
                         why="Mistral's 131072-token vocabulary", extra={"hidden": emb[1]})
    qk_norm = k.any("layers.0.self_attn.q_norm.weight", "language_model.layers.0.self_attn.q_norm.weight")
    if emb is not None and qk_norm and k.any("visual.patch_embed.proj.weight"):
        # Qwen3-VL (Qwen-Image 2.1's qwen3vl_8b, Krea 2's qwen3vl_4b): Qwen3's layers with a vision tower, not [klein]'s Qwen3
        return Detection("text_encoder", "qwen3vl", {4096: "8b", 2560: "4b"}.get(emb[1], f"h{emb[1]}"),
                         why="Qwen3 layers with a vision tower", extra={"hidden": emb[1]})
    if emb is not None and qk_norm:
        # Qwen3 (FLUX.2 [klein]'s encoders, qwen_3_4b / qwen_3_8b): per-head query and key norms, no biases
        return Detection("text_encoder", "qwen3", {1024: "0.6b", 2560: "4b", 4096: "8b"}.get(emb[1], f"h{emb[1]}"),
                         why="Qwen3 layers (q_norm / k_norm)", extra={"hidden": emb[1]})
    if emb is not None and k.any("layers.0.linear_attn.A_log", "language_model.layers.0.linear_attn.A_log"):
        # Qwen3.5 (MOSS-Image's qwen3.5_9b, ComfyUI's text generation): gated delta-net layers between full ones
        return Detection("text_encoder", "qwen35", {2048: "2b", 2560: "4b", 4096: "9b", 5120: "27b"}.get(
            emb[1], f"h{emb[1]}"), why="Qwen3.5 layers (linear_attn)", extra={"hidden": emb[1]})
    if k.has("layers.0.self_attn.q_proj.weight", "embed_tokens.weight") or \
            k.has("model.layers.0.self_attn.q_proj.weight", "model.embed_tokens.weight"):
        hidden = (k.shape("embed_tokens.weight") or k.shape("model.embed_tokens.weight"))[1]
        return Detection("text_encoder", "llama", "llava-llama3" if hidden == 4096 else f"h{hidden}",
                         why="layers.*.self_attn q_proj / embed_tokens", extra={"hidden": hidden})
    return None


def siglip_side(positions: int, patch: int) -> int:
    """The picture side a SigLIP tower reads: its patch grid's, but so400m-patch14-384 reads 384 px, whose last 6 no
    14 px patch covers."""
    grid = int(round(positions ** 0.5))
    return 384 if (grid, patch) == (27, 14) else grid * patch


def _clip_vision(k: Keys) -> Optional[Detection]:
    pe = k.shape("embeddings.patch_embedding.weight")
    if pe is None and k.has("visual.conv1.weight"):
        pe = k.shape("visual.conv1.weight")
    if pe is None:
        return None
    if k.any("embeddings.patch_embedding.bias") and not k.any("embeddings.class_embedding"):
        # SigLIP (sigclip_vision_patch14_384, FLUX.1 Redux's image encoder): its patches have a bias, CLIP's none;
        # no class token, so its positions are the patch grid's alone
        if len(pe) != 4:
            return Detection("clip_vision", "clip_vision", "siglip2-naflex", why="SigLIP 2 NaFlex vision tower "
                             "(patches through a linear layer)", extra={"hidden": pe[0]})
        positions = (k.shape("embeddings.position_embedding.weight") or (0,))[0]
        side = siglip_side(positions, pe[2])
        return Detection("clip_vision", "clip_vision", "siglip-so400m" if pe[0] == 1152 else f"siglip-w{pe[0]}",
                         why=f"SigLIP vision tower ({side} px, no class token)", layout="diffusers",
                         extra={"hidden": pe[0], "siglip": True, "image_size": side})
    variant = {1280: "vit-h", 1024: "vit-l", 1664: "vit-bigg", 768: "vit-b"}.get(pe[0], f"w{pe[0]}")
    if k.any("multi_modal_projector.linear_1.weight"):
        variant = "llava-" + variant          # llava-llama-3's image side (HunyuanVideo image-to-video)
    return Detection("clip_vision", "clip_vision", variant, why="vision_model patch embedding",
                     layout="original" if k.has("visual.conv1.weight") else "diffusers",
                     extra={"hidden": pe[0]})


def _style_model(k: Keys) -> Optional[Detection]:
    """FLUX.1 Redux (flux1-redux-dev.safetensors): two linear layers lifting SigLIP's tokens to T5-XXL's width."""
    up, down = k.shape("redux_up.weight"), k.shape("redux_down.weight")
    if up is None or down is None:
        return None
    return Detection("style_model", "flux", "redux", why="redux_up / redux_down",
                     extra={"vision": up[1], "text": down[0]})


def _model_patch(k: Keys) -> Optional[Detection]:
    """ComfyUI's model_patches/: InfiniteTalk's patch for Wan 2.1 I2V 14B (audio_proj and per-block audio
    cross-attention), Alibaba PAI's Z-Image Fun ControlNets (control_all_x_embedder) and DiffSynth's blockwise
    Qwen-Image ones (controlnet_blocks.N.y_rms)."""
    fun = k.shape("control_all_x_embedder.2-1.weight")
    if fun is not None:
        return Detection("model_patch", "zimage", "fun-controlnet", why="control_all_x_embedder / control_layers",
                         extra={"layers": k.count("control_layers.{}.after_proj.weight")})
    blockwise = k.shape("img_in.weight")
    if k.shape("controlnet_blocks.0.y_rms.weight") is not None and blockwise is not None:
        return Detection("model_patch", "qwenimage", "diffsynth" if blockwise[1] == 64 else "diffsynth-inpaint",
                         why="img_in / controlnet_blocks.N.x_rms, y_rms",
                         extra={"layers": k.count("controlnet_blocks.{}.y_rms.weight")})
    if k.shape("audio_proj.proj1.weight") is None or k.shape("blocks.0.audio_cross_attn.proj.weight") is None:
        return None
    return Detection("model_patch", "wan", "infinitetalk", why="audio_proj / blocks.N.audio_cross_attn")


def _ipadapter(k: Keys) -> Optional[Detection]:
    """h94's IP-Adapters (image_proj.* / ip_adapter.*, SD 1.5 and SDXL; FaceID's LoRA'd attention would read as a
    LoRA) and XLabs' FLUX.1 one, as load.ipadapter tells them apart (ipadapter_kinds)."""
    from nodes.generate.ipadapter_kinds import describe
    found = describe(k.shapes)
    if found is None:
        return None
    family = {"SD 1.5": "sd", "SDXL": "sdxl", "FLUX.1": "flux"}.get(found["base"])
    variant = "xlabs" if found["kind"] == "flux" else "-".join(
        b.lower() for b in (found["kind"], found["encoder"]) if b)
    return Detection("ipadapter", family, variant, why=found["title"], extra=found)


# LyCORIS's layouts too (LoHa hada_w1_a, LoKr lokr_w1, full diff, DoRA dora_scale, OFT / BOFT oft_blocks; GLoRA by
# its four a1 / a2 / b1 / b2 matrices together, as one a1.weight could be any model's), under any naming; XLabs'
# (x-flux-comfyui's LoadFluxLora: double_blocks.N.processor.qkv_lora1 / proj_lora2 ...).
_XLABS_LORA = re.compile(r"^double_blocks\.\d+\.processor\.(qkv|proj)_lora[12]\.(down|up)\.weight$")
_LORA = re.compile(r"(\.lora_[AB]\.|\.lora_(down|up)\.|\.lora\.(down|up)\.|_lora\.(down|up)\.|\.lora_(A|B)$|"
                   r"\.processor\.(qkv|proj)_lora[12]\.(down|up)\.|"
                   r"^lora_(unet|te\d?)_|\.(hada_w1_a|lokr_w1|lokr_w1_a|diff|dora_scale|oft_blocks)$)")


SHARED_BLOCKS = "double/single blocks of FLUX.1 or HunyuanVideo"


def _lora(k: Keys) -> Optional[Detection]:
    names = [n for n in k.shapes if _LORA.search(n) or n.endswith(".a1.weight") and all(
        n[:-len("a1.weight")] + p in k.shapes for p in ("a2.weight", "b1.weight", "b2.weight"))]
    if not names:
        return None
    text = " ".join(names[:400])
    if all(_XLABS_LORA.match(n) for n in names):
        # diffusers converts them to FLUX.1's layers (_convert_xlabs_flux_lora_to_diffusers)
        return Detection("lora", "flux", "xlabs", why="XLabs' double_blocks processor LoRA (qkv_lora / proj_lora)")
    if "motion_modules" in text:
        fam, why = "animatediff", "motion_modules LoRA"
    elif re.search(r"(^|[._])(blocks[._]\d+[._](attn[._]qkv_proj|mlp[._]fc1|adaln_proj)|final_layer[._](video|audio)_out|"
                   r"video_patch_proj|condition_proj)", text) and \
            not re.search("double_blocks|single_blocks|individual_token_refiner", text):
        # MiniMax H3's own names (qkv_proj, mlp.fc1, adaln_proj, video_out), as ComfyUI's, ai-toolkit's and
        # musubi-tuner's (lora_unet_blocks_0_attn_qkv_proj) turbo LoRAs have them; HunyuanVideo's text refiner
        # (txt_in.individual_token_refiner.blocks.N.mlp.fc1) has one of them too
        fam, why = "minimax_h3", "MiniMax H3 block names"
    elif re.search(r"(^|[._])blocks[._]\d+[._](self_attn|cross_attn)[._](q_proj|k_proj|v_proj|output_proj)|"
                   r"[._]mlp[._]layer[12][._]|adaln_modulation_(self|cross)_attn|(^|[._])llm_adapter[._]", text):
        # Cosmos-Predict2's MiniTrainDIT names (self_attn.q_proj, mlp.layer1; Wan's are self_attn.q, ffn.0), which
        # Anima's DiT has, and its LLM adapter's, as ComfyUI's, kohya's (lora_unet_blocks_0_self_attn_q_proj) and
        # diffusion-pipe's Anima LoRAs have them
        fam, why = "anima", "Anima (Cosmos-Predict2) block names"
    elif re.search(r"(^|[._])blocks[._]0[._](self_attn|cross_attn|attn1|attn2|ffn)", text) and \
            "transformer_blocks" not in text and "double_blocks" not in text:
        fam, why = "wan", "Wan block names"
    elif re.search(r"(img_attn\.qkv|txt_attn\.qkv|[._]img_mlp[._]0[._]|[._]txt_mlp[._]0[._]|img_mod[._]lin[._]|"
                   r"txt_mod[._]lin[._]|modulation[._]lin[._])", text):
        # FLUX.1's block names in BFL's / ComfyUI's and kohya's spelling (HunyuanVideo's are img_attn_qkv,
        # img_mlp.fc1, img_mod.linear)
        fam, why = "flux", "FLUX.1 double/single blocks"
    elif re.search(r"[._](img_mod|txt_mod)[._]1[._]|[._](img_mlp|txt_mlp)[._]net[._]", text):
        # Qwen-Image's block names (img_mod.1, txt_mlp.net.*), in diffusers', ComfyUI's (diffusion_model.), kohya's or
        # the Lightning LoRAs' (lora_down / lora_up / alpha) spelling
        fam, why = "qwenimage", "Qwen-Image block names"
    elif re.search(r"[._]img_mlp[._]gate[._]?(layer|up)[._]|[._]txt_in[._]in[._]?layer[._]", text):
        # Qwen-Image 2.1's SwiGLU (diffusers' gate_layer, ComfyUI's fused gate_up) and text input layers
        fam, why = "qwenimage21", "Qwen-Image 2.1 block names"
    elif re.search(r"lora_unet_(double|single)_blocks_", text) and not re.search(
            r"(fc1|fc2|mod_linear|modulation_linear|token_refiner)", text):
        # kohya's names of layers both have (img_attn_qkv, linear1): the model it is applied to tells
        fam, why = None, SHARED_BLOCKS
    elif "double_blocks" in text or "single_blocks" in text or "token_refiner" in text:
        fam, why = "hunyuan", "double/single blocks"
    elif any(n.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.", "te2.")) for n in names):
        fam, why = "sdxl", "two text encoders (lora_te1_/lora_te2_)"
    elif re.search(r"(down_blocks|up_blocks|input_blocks|output_blocks|lora_te_)", text):
        fam, why = "sd", "UNet block names"
    elif re.search(r"transformer_blocks[._]\d+[._](audio_attn|audio_ff|audio_to_video_attn|video_to_audio_attn)", text):
        # LTX-2's audio stream (ltx-2-19b-distilled-lora-384, the camera-control LoRAs)
        fam, why = "ltx2", "LTX-2's audio and audio-video attention layers"
    elif "transformer_blocks" in text:
        fam, why = None, "transformer_blocks (LTX or CogVideoX)"
    else:
        fam, why = None, "unrecognised base layer names"
    style = "kohya" if any(n.startswith(("lora_unet_", "lora_te")) for n in names) else (
        "peft" if any(".lora_A." in n for n in names) else "original")
    return Detection("lora", fam, style, why=why)


def _flux(k: Keys) -> Optional[Detection]:
    """FLUX.1 in Black Forest Labs' names (ComfyUI's diffusion_models/unet files, model.diffusion_model.* in an
    all-in-one checkpoint) or diffusers'. dev has a guidance embedder, schnell none; Fill and Depth take the mask or
    depth latents on extra input channels. FLUX.2 and Chroma (_chroma, before this rule) share the block names but
    not the model."""
    if k.any("single_stream_modulation.lin.weight", "double_stream_modulation_img.lin.weight",
             "single_stream_modulation.linear.weight", "double_stream_modulation_img.linear.weight"):
        return _flux2(k)
    if k.has("double_blocks.0.img_attn.qkv.weight", "img_in.weight"):
        layout, img_in, guide = "original", "img_in.weight", "guidance_in.in_layer.weight"
    elif k.has("x_embedder.weight", "single_transformer_blocks.0.proj_mlp.weight", "context_embedder.weight"):
        layout, img_in, guide = "diffusers", "x_embedder.weight", "time_text_embed.guidance_embedder.linear_1.weight"
    else:
        return None
    kind = {64: "", 384: "fill-", 128: "control-"}.get((k.shape(img_in) or (0, 64))[1], "in-")
    variant = kind + ("dev" if k.any(guide) else "schnell")
    prefix = k.prefix_of(img_in) or ""
    role = "checkpoint" if k.starts("vae.", "first_stage_model.", "text_encoders.") else "diffusion_model"
    return Detection(role, "flux", variant, layout=layout, prefix=prefix,
                     why="double_blocks / img_in" if layout == "original" else "x_embedder / single_transformer_blocks",
                     extra={"in_channels": (k.shape(img_in) or (0, 64))[1]})


def _unpooled_flux(k: Keys) -> Optional[Detection]:
    """FLUX.1's blocks told no pooled embedding and no guidance (no vector_in): LongCat-Image's (Qwen2.5-VL's states,
    longcat_image_bf16 and longcat_image_edit_bf16) and Ovis-Image's (gated feed-forwards, gate_proj / up_proj, and a
    norm on the text's states, txt_norm), in the names ComfyUI loads them with (comfy/ldm/flux: Black Forest Labs') or
    in diffusers' (a LongCatImagePipeline's or OvisImagePipeline's transformer file). Before _flux, which reads the
    same block names."""
    if k.has("double_blocks.0.img_attn.qkv.weight", "img_in.weight", "txt_in.weight"):
        if k.any("vector_in.in_layer.weight", "distilled_guidance_layer.in_proj.weight",
                 "double_stream_modulation_img.lin.weight"):
            return None
        layout, x = "original", "img_in.weight"
        ovis = k.any("double_blocks.0.img_mlp.gate_proj.weight")
    elif k.has("x_embedder.weight", "context_embedder.weight", "time_embed.timestep_embedder.linear_1.weight"):
        layout, x, ovis = "diffusers", "x_embedder.weight", False
    elif k.has("x_embedder.weight", "context_embedder_norm.weight", "timestep_embedder.linear_1.weight"):
        layout, x, ovis = "diffusers", "x_embedder.weight", True
    else:
        return None
    return Detection("diffusion_model", "ovis" if ovis else "longcat", "", layout=layout, prefix=k.prefix_of(x) or "",
                     why=("gated double blocks, txt_norm" if ovis else "double blocks without vector_in")
                     if layout == "original" else "x_embedder / " + ("context_embedder_norm" if ovis else "time_embed"),
                     extra={"in_channels": (k.shape(x) or (0, 64))[1]})


def _chroma(k: Keys) -> Optional[Detection]:
    """Chroma (lodestones' Chroma1-HD / -Base / chroma-unlocked-v*): FLUX.1 schnell's blocks in Black Forest Labs'
    names without their own modulations, which one small network (distilled_guidance_layer) gives every block, as
    diffusers' single-file loader recognises it; or in diffusers' names (x_embedder: a ChromaPipeline folder's
    transformer file). Chroma Radiance reads pixels (img_in_patch, then ComfyUI's nerf_* head): variant radiance, or
    radiance-x0 for the release predicting the clean picture (its __x0__ marker)."""
    if not k.any("distilled_guidance_layer.in_proj.weight"):
        return None
    g = "distilled_guidance_layer.in_proj.weight"
    if k.has("img_in_patch.weight", "nerf_image_embedder.embedder.0.weight"):
        x0 = k.any("__x0__")
        return Detection("diffusion_model", "chroma", "radiance-x0" if x0 else "radiance", layout="original",
                         prefix=k.prefix_of(g) or "", why="distilled_guidance_layer / img_in_patch / nerf_blocks"
                         + (" / __x0__" if x0 else ""), extra={"in_channels": k.shape("img_in_patch.weight")[1]})
    layout, x = ("original", "img_in.weight") if k.any("img_in.weight") else ("diffusers", "x_embedder.weight")
    if not k.any(x):
        return None
    return Detection("diffusion_model", "chroma", "", layout=layout,
                     prefix=k.prefix_of("distilled_guidance_layer.in_proj.weight") or "",
                     why="distilled_guidance_layer / " + ("double_blocks" if layout == "original" else "x_embedder"),
                     extra={"in_channels": k.shape(x)[1]})


def _flux2(k: Keys) -> Detection:
    """FLUX.2 in Black Forest Labs' names (ComfyUI's flux2_dev_fp8mixed.safetensors) or diffusers' (a Flux2Pipeline
    folder's transformer file): shared modulations instead of FLUX.1's per-block ones. dev is guidance-distilled
    (guidance_in); [klein] has no guidance input."""
    layout, x = ("original", "img_in.weight") if k.any("img_in.weight") else ("diffusers", "x_embedder.weight")
    variant = "dev" if k.any("guidance_in.in_layer.weight", "time_guidance_embed.guidance_embedder.linear_1.weight") \
        else "klein"
    return Detection("diffusion_model", "flux2", variant, layout=layout, prefix=k.prefix_of(x) or "",
                     why="double/single stream modulation", extra={"in_channels": (k.shape(x) or (0, 0))[1]})


def _sd3(k: Keys) -> Optional[Detection]:
    """Stable Diffusion 3 / 3.5's MMDiT in Stability's names (joint_blocks; ComfyUI's checkpoints/, diffusion_models/)
    or diffusers' (pos_embed.proj, transformer_blocks), and its ControlNets. 3.5 medium (MMDiT-X) has a second
    attention in its first blocks, 3.5 large (and large turbo) normalises queries and keys, 3 medium neither."""
    if k.any("pos_embed_input.proj.weight"):          # the control image's own patch embedding
        # Stability's SD 3.5 Large ControlNets keep its fused qkv names; InstantX's SD3 (medium) ones read the
        # prompt's tokens (a context_embedder)
        if k.any("transformer_blocks.0.attn.qkv.weight"):
            return Detection("controlnet", "sd3", "3.5-large", layout="original", why="pos_embed_input + attn.qkv")
        return Detection("controlnet", "sd3", "instantx" if k.any("context_embedder.weight") else "3.5-large",
                         layout="diffusers", why="pos_embed_input")
    if k.has("joint_blocks.0.context_block.attn.qkv.weight", "x_embedder.proj.weight"):
        layout, pe, attn2, norm = ("original", "x_embedder.proj.weight", "joint_blocks.0.x_block.attn2.qkv.weight",
                                   "joint_blocks.0.x_block.attn.ln_q.weight")
        blocks = k.count("joint_blocks.{}.")
    elif k.has("pos_embed.proj.weight", "transformer_blocks.0.attn.add_q_proj.weight", "context_embedder.weight"):
        layout, pe, attn2, norm = ("diffusers", "pos_embed.proj.weight", "transformer_blocks.0.attn2.to_q.weight",
                                   "transformer_blocks.0.attn.norm_q.weight")
        blocks = k.count("transformer_blocks.{}.")
    else:
        return None
    variant = "3.5-medium" if k.any(attn2) else "3.5-large" if k.any(norm) else "3-medium"
    role = "checkpoint" if k.starts("first_stage_model.", "text_encoders.") else "diffusion_model"
    return Detection(role, "sd3", variant, layout=layout, prefix=k.prefix_of(pe) or "",
                     why="joint_blocks" if layout == "original" else "pos_embed / transformer_blocks",
                     extra={"blocks": blocks, "t5": k.starts("text_encoders.t5xxl."),
                            "clips": k.starts("text_encoders.clip_g.")})


def _pixeldit(k: Keys) -> Optional[Detection]:
    """PixelDiT's transformer (ComfyUI's pixeldit_1300m_1024px_*): MMDiT patch blocks (patch_blocks.N) then pixel blocks
    that compress each patch's pixels into one attention token (pixel_blocks.N.compress_to_attn)."""
    x = "pixel_blocks.0.compress_to_attn.weight"
    if not k.has(x, "s_embedder.proj.weight", "patch_blocks.0.attn.qkv_x.weight"):
        return None
    # PiD (pid_*_4step: the latent upscaler) adds a branch reading another model's latent (lq_proj)
    pid = k.shape("lq_proj.latent_proj.0.weight")
    return Detection("diffusion_model", "pixeldit", f"pid-{pid[1]}ch" if pid else "", prefix=k.prefix_of(x) or "",
                     why="patch_blocks.N / pixel_blocks.N.compress_to_attn" + (" / lq_proj (PiD)" if pid else ""))


def _lens(k: Keys) -> Optional[Detection]:
    """Lens's transformer (ComfyUI's lens_bf16 / lens_turbo_bf16.safetensors): dual-stream blocks with one q/k/v
    matrix per stream (transformer_blocks.N.attn.img_qkv), a norm per GPT-OSS layer read (txt_norm.N). Qwen-Image's
    blocks share img_mod / txt_norm names but project q, k, v apart, so this rule comes first."""
    x = "transformer_blocks.0.attn.img_qkv.weight"
    if not k.has(x, "img_in.weight", "txt_norm.0.weight"):
        return None
    return Detection("diffusion_model", "lens", "", prefix=k.prefix_of(x) or "",
                     why="transformer_blocks.N.attn.img_qkv / txt_norm.N")


def _qwenimage(k: Keys) -> Optional[Detection]:
    """Qwen-Image's transformer: ComfyUI's split files keep diffusers' own names (img_in, txt_norm, txt_in,
    transformer_blocks.N.img_mod.1), as diffusers' single-file loader maps them one to one. Qwen-Image 2.1's
    (qwen_image_2.1_*) has a norm inside txt_in and no img_mod: another model."""
    if not k.has("img_in.weight", "txt_norm.weight", "transformer_blocks.0.img_mod.1.weight"):
        if k.has("img_in.weight", "txt_in.text_norm.weight"):
            return Detection("diffusion_model", "qwenimage21", "", prefix=k.prefix_of("img_in.weight") or "",
                             layout="comfyui", why="img_in / txt_in.text_norm")
        return None
    in_ch = (k.shape("img_in.weight") or (0, 64))[1]
    return Detection("diffusion_model", "qwenimage", "" if in_ch == 64 else f"in{in_ch}",
                     prefix=k.prefix_of("img_in.weight") or "", layout="diffusers", why="img_in / txt_norm / img_mod",
                     extra={"in_channels": in_ch})


MAGE_CHANNELS = 128                      # Mage-Flow's latent channels (its VAE's), read one latent pixel a token
LUMINA2_CAPTION = 2304                  # Gemma 2 2B's width, which Lumina-Image 2.0's caption embedder reads


HIDREAM_O1_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.", "")


def hidream_o1_prefix(keys) -> Optional[str]:
    """The prefix HiDream-O1's transformer tensors carry in a file (ComfyUI's checkpoint: model.diffusion_model.; the
    authors' release: model.), None when it holds none."""
    keys = set(keys)
    return next((p for p in HIDREAM_O1_PREFIXES if {f"{p}x_embedder.proj1.weight", f"{p}t_embedder1.mlp.0.weight",
                                                    f"{p}final_layer2.linear.weight"} <= keys), None)


def _hidream_o1(k: Keys) -> Optional[Detection]:
    """HiDream-O1-Image's transformer (ComfyUI's checkpoints/hidream_o1_image_*.safetensors under
    model.diffusion_model., the authors' release under model.): Qwen3-VL-8B with a pixel patch embedder
    (x_embedder.proj1/proj2), a timestep embedder (t_embedder1) and a pixel head (final_layer2). The whole model:
    its prompt is read by Qwen3-VL inside it, and it has no VAE."""
    prefix = hidream_o1_prefix(k.shapes)
    if prefix is None:
        return None
    return Detection("checkpoint", "hidream_o1", "", prefix=prefix,
                     why="x_embedder.proj1 / t_embedder1 / final_layer2 beside Qwen3-VL (HiDream-O1)")


def _fibo2(k: Keys) -> Optional[Detection]:
    """Bria's FIBO 2 transformer (ComfyUI's fibo2_dev_* / fibo2_edit_turbo_*): Z-Image's blocks with a Perceiver that
    squeezes the prompt into gist tokens (perceiver.latent_queries). ComfyUI's own file was not at hand; these are the
    names of diffusers' BriaFibo2Transformer2DModel, bare or under model.diffusion_model."""
    q = "perceiver.latent_queries"
    if not k.has(q, "x_embedder.weight", "t_embedder.mlp.0.weight"):
        return None
    return Detection("diffusion_model", "fibo2", "", prefix=k.prefix_of(q) or "",
                     why="perceiver.latent_queries / x_embedder / t_embedder (Bria's FIBO 2)")


def _joyimage(k: Keys) -> Optional[Detection]:
    """JoyImage Edit's transformer (ComfyUI's joyai_image_edit_*.safetensors, comfy/ldm/joyimage), which holds the
    names of diffusers' JoyImageEditTransformer3DModel: a learnt modulation table per stream in each double block."""
    q = "double_blocks.0.img_mod.modulate_table"
    if not k.has(q, "double_blocks.0.attn.img_attn_qkv.weight", "condition_embedder.text_embedder.linear_1.weight"):
        return None
    return Detection("diffusion_model", "joyimage", "", prefix=k.prefix_of(q) or "",
                     why="double_blocks.N.img_mod.modulate_table / condition_embedder.text_embedder")


def _boogu(k: Keys) -> Optional[Detection]:
    """Boogu-Image 0.1's transformer (ComfyUI's boogu_image_{turbo,edit}_*.safetensors): OmniGen2's refiners and
    single-stream blocks with dual-stream blocks before them (double_stream_layers.N.img_instruct_attn). The edit
    release reads reference pictures with the same tensors, so one detection serves both."""
    x = "double_stream_layers.0.img_instruct_attn.processor.img_to_q.weight"
    if not k.has(x, "x_embedder.weight", "time_caption_embed.caption_embedder.0.weight"):
        return None
    return Detection("diffusion_model", "boogu", "", prefix=k.prefix_of(x) or "",
                     why="double_stream_layers.N.img_instruct_attn / time_caption_embed")


def _omnigen2(k: Keys) -> Optional[Detection]:
    """OmniGen2's transformer (ComfyUI's omnigen2_fp16.safetensors): Boogu's refiners and blocks without its
    dual-stream stage, the single-stream blocks under layers.N with separate q/k/v (Lumina 2 / Z-Image fuse them in
    attention.qkv) and a reference-picture refiner."""
    x = "ref_image_refiner.0.attn.to_q.weight"
    if not k.has(x, "layers.0.attn.to_q.weight", "x_embedder.weight", "time_caption_embed.caption_embedder.0.weight"):
        return None
    return Detection("diffusion_model", "omnigen2", "", prefix=k.prefix_of(x) or "",
                     why="layers.N.attn.to_q / ref_image_refiner / time_caption_embed")


def _newbie(k: Keys) -> Optional[Detection]:
    """NewBie-image's NextDiT (ComfyUI's NewBie-Image-Exp0.1-*): Lumina-Image 2.0's blocks with a pooled text input
    (clip_text_pooled_proj), reading Gemma 3 4B's states; Z-Image's rule would take it for Z-Image."""
    x = "clip_text_pooled_proj.1.weight"
    if not k.has(x, "cap_embedder.1.weight", "layers.0.attention.qkv.weight", "x_embedder.weight"):
        return None
    return Detection("diffusion_model", "newbie", "", prefix=k.prefix_of(x) or "",
                     why="NextDiT layers.N.attention.qkv with clip_text_pooled_proj")


def _zimage(k: Keys) -> Optional[Detection]:
    """Z-Image's NextDiT (Tongyi's Z-Image Turbo / Z-Image) in ComfyUI's names (z_image_turbo_bf16.safetensors: fused
    attention.qkv, x_embedder, final_layer), as diffusers' single-file converter reads them, or in diffusers' own
    (all_x_embedder.2-1: a ZImagePipeline folder's transformer file). Lumina-Image 2.0 has the same blocks reading
    Gemma 2's 2304-wide states: another model."""
    if k.has("cap_embedder.0.weight", "layers.0.attention.qkv.weight", "x_embedder.weight"):
        layout, x = "original", "x_embedder.weight"
    elif k.has("cap_embedder.0.weight", "all_x_embedder.2-1.weight"):
        layout, x = "diffusers", "all_x_embedder.2-1.weight"
    else:
        return None
    caption = (k.shape("cap_embedder.0.weight") or (0,))[0]
    if caption == LUMINA2_CAPTION:
        return Detection(None, "lumina2", "", prefix=k.prefix_of(x) or "",
                         why="Lumina-Image 2.0 (NextDiT reading Gemma 2), which Kinograph does not run; Z-Image, the "
                             "same blocks reading Qwen3-4B, it does")
    return Detection("diffusion_model", "zimage", "", layout=layout, prefix=k.prefix_of(x) or "",
                     why="cap_embedder / " + ("layers.N.attention.qkv" if layout == "original" else "all_x_embedder"),
                     extra={"caption_width": caption})


def _hidream(k: Keys) -> Optional[Detection]:
    """HiDream-I1's sparse DiT (hidream_i1_full/dev/fast): its own names, which are diffusers' (double_stream_blocks.N.block
    with mixture-of-experts feed-forwards, a caption projection per block)."""
    if not k.has("double_stream_blocks.0.block.adaLN_modulation.1.bias", "x_embedder.proj.weight",
                 "caption_projection.0.linear.weight"):
        return None
    return Detection("diffusion_model", "hidream", "", layout="original",
                     prefix=k.prefix_of("x_embedder.proj.weight") or "",
                     why="double_stream_blocks.N.block / caption_projection")


def _flux3(k: Keys) -> Optional[Detection]:
    """FLUX.3 [klein] in Black Forest Labs' names (ComfyUI's flux3-image-klein*-*.safetensors: per-mode blocks and
    modulations, early_stream_modulations.image) or diffusers' (.linear instead of .lin). The step-distilled file
    (flux3-image-klein-*, 16 steps at cfg 1) is a flow map told the level each step goes to (ref_time_in /
    target_timestep_embedder); the base file (flux3-image-klein-base-*) is sampled with true CFG."""
    for layout, x in (("original", "early_stream_modulations.image.lin.weight"),
                      ("diffusers", "early_stream_modulations.image.linear.weight")):
        if k.any(x):
            distilled = k.any("ref_time_in.in_layer.weight", "target_timestep_embedder.linear_1.weight")
            return Detection("diffusion_model", "flux3", "distilled" if distilled else "base", layout=layout,
                             prefix=k.prefix_of(x) or "", why="per-mode modulations (early_stream_modulations)"
                             + (", a second time embedder (step-distilled)" if distilled else ""))
    return None


def _krea2(k: Keys) -> Optional[Detection]:
    """Krea 2's single-stream DiT in Krea's and ComfyUI's names (krea2_turbo_*.safetensors: txtfusion, blocks.N.attn.wq)
    or in diffusers' (text_fusion: a Krea2Pipeline folder's transformer file)."""
    for layout, x in (("original", "txtfusion.projector.weight"), ("diffusers", "text_fusion.projector.weight")):
        if k.any(x):
            return Detection("diffusion_model", "krea2", "", layout=layout, prefix=k.prefix_of(x) or "",
                             why=x.rsplit(".", 1)[0] + " (its text fusion over 12 of Qwen3-VL's layers)")
    return None


def _stable_audio(k: Keys) -> Optional[Detection]:
    """Stable Audio Open 1.0's or Stable Audio 3's checkpoint as ComfyUI keeps it (stable-audio-open-1.0.safetensors,
    stable_audio_3_medium.safetensors: the DiT under model.model., the VAE under pretransform.model., the seconds
    conditioners), which generate.stable_audio or generate.stable_audio3 reads whole; no model loader takes it.
    Stable Audio 3's DiT is told by its adaLN (a global conditioning embedder)."""
    if not k.has("model.model.transformer.project_in.weight",
                 "conditioner.conditioners.seconds_total.embedder.embedding.1.weight"):
        return None
    return Detection("checkpoint", "stable_audio",
                     "3" if k.has("model.model.transformer.global_cond_embedder.0.weight") else "open-1.0",
                     why="model.model.transformer / pretransform / conditioner.conditioners.seconds_total "
                     "(stable-audio-tools' names)")


def _minimax_music3(k: Keys) -> Optional[Detection]:
    """MiniMax Music 3's three files in ComfyUI's names, which generate.minimax_music3 reads by name: the DiT
    (diffusion_transformer. with latent_conditioners and cond_layer_logits), the text encoder (a Qwen3 with the RVQ depth
    decoder under model.audio_decoder.: told before Qwen3 text encoders) and the DAV (dec_in_proj, decoder.model.N)."""
    if k.has("diffusion_transformer.preprocess_conv.weight", "cond_layer_logits"):
        return Detection(None, "minimax_music3", "diffusion_model", why="diffusion_transformer / latent_conditioners")
    if k.has("model.audio_decoder.projection.weight", "model.audio_extra_embedding.weight"):
        return Detection(None, "minimax_music3", "text_encoder", why="model.layers with model.audio_decoder")
    if k.has("dec_in_proj.weight") and k.any("decoder.model.0.weight_v", "decoder.model.0.parametrizations.weight.original1"):
        return Detection(None, "minimax_music3", "vae", why="dec_in_proj / decoder.model.N (weight-normed)")
    return None


def _read_by_a_node(k: Keys) -> Optional[Detection]:
    """Files no model loader takes that a sound or control node reads by name (model_manager.READ_BY_NODE says which):
    ACE-Step v1's checkpoint (ace_step_v1_3.5b: model.diffusion_model.genre_embedder / lyric_embs, vae.dcae., vae.vocoder.),
    ACE-Step 1.5's all-in-one checkpoint (ace_step_1.5_turbo_aio: model.diffusion_model., vae., text_encoders.qwen3_06b.),
    its split diffusion model (decoder. / encoder. / detokenizer. and null_condition_emb) and Oobleck VAE (ace_1.5_vae:
    stable-audio-tools' weight-normed decoder.layers at the top), Stable Audio 3's T5Gemma (t5gemma_b_b_ul2:
    model.encoder.layers.N.pre_self_attn_layernorm), Anima's ControlNet-LLLite nets (lllite_conditioning1 and
    lllite_dit_blocks_N_*; kohya's SDXL ones are lllite_unet_*) and MiniMax H3's Fun ControlNet (control_blocks.N):
    listed as no known key pattern, a newcomer took them for broken downloads."""
    if k.has("model.diffusion_model.genre_embedder.weight", "model.diffusion_model.lyric_embs.weight"):
        return Detection("checkpoint", "ace_step", "v1", why="model.diffusion_model.genre_embedder / lyric_encoder / "
                         "vae.dcae / vae.vocoder")
    if k.has("model.diffusion_model.decoder.condition_embedder.weight",
             "text_encoders.qwen3_06b.transformer.model.embed_tokens.weight"):
        return Detection("checkpoint", "ace_step", "aio", why="model.diffusion_model.decoder / vae / text_encoders")
    if k.has("decoder.condition_embedder.weight", "null_condition_emb"):
        return Detection(None, "ace_step", "diffusion_model", why="decoder / encoder / detokenizer / null_condition_emb")
    if k.any("decoder.layers.0.weight_v", "decoder.layers.0.parametrizations.weight.original1"):
        return Detection(None, "ace_step", "vae", why="Oobleck decoder.layers (stable-audio-tools' names)")
    if k.has("model.encoder.layers.0.pre_self_attn_layernorm.weight"):
        return Detection(None, "t5gemma", "", why="model.encoder.layers.N.pre_self_attn_layernorm")
    if k.has("lllite_conditioning1.conv1.weight"):
        return Detection("model_patch", "anima", "lllite", why="lllite_conditioning1 / lllite_dit_blocks_N")
    if any(key.startswith("lllite_unet_") for key in k.shapes):
        return Detection(None, "sdxl", "lllite", why="lllite_unet_* (kohya's ControlNet-LLLite for SDXL)")
    if k.has("control_blocks.0.before_proj.weight"):
        return Detection("model_patch", "minimax_h3", "fun-controlnet", why="control_blocks.N.before_proj / after_proj")
    return None


def _ideogram4(k: Keys) -> Optional[Detection]:
    """Ideogram 4's transformer (ideogram4_* and ideogram4_unconditional_*: the same tensors, the second trained
    without text) in ComfyUI's names (comfy/ldm/ideogram4: layers.N.attention.qkv fused) or diffusers' (to_q: an
    Ideogram4Pipeline folder's): read by its text-feature projection and its image-token marker."""
    if not k.has("llm_cond_proj.weight", "embed_image_indicator.weight"):
        return None
    return Detection("diffusion_model", "ideogram4", "", prefix=k.prefix_of("llm_cond_proj.weight") or "",
                     layout="original" if k.any("layers.0.attention.qkv.weight") else "diffusers",
                     why="llm_cond_proj / embed_image_indicator (13 of Qwen3-VL's layers per token)")


def qwen21_files(part: str) -> str:
    return (f"Qwen-Image 2.1's {part}. Kinograph reads Qwen-Image 2.1's VAE from its diffusers folder "
            "(Qwen/Qwen-Image-2.1: load.model, whose vae output also serves ComfyUI's transformer and text encoder "
            "files), not as a separate file (ComfyUI's qwen_image_2.1_vae in vae/)")


def _hunyuan3d(k: Keys) -> Optional[Detection]:
    """Hunyuan3D's shape checkpoints as ComfyUI holds them (hunyuan3d-dit-v2*.safetensors, hunyuan_3d_v2.1.safetensors):
    the transformer under model. (2.0: FLUX.1's double_blocks over latent_in / cond_in, no img_in; 2.1: x_embedder
    and t_embedder with blocks.N.attn2), the ShapeVAE under vae., DINOv2 under conditioner.main_image_encoder.model.
    First of the rules: 2.0's blocks carry FLUX.1's names."""
    if k.has("latent_in.weight", "cond_in.weight", "double_blocks.0.img_attn.qkv.weight"):
        x = "latent_in.weight"
        variant = "2.0-mini" if k.count("double_blocks.{}.img_mod.lin.weight") == 8 else "2.0"
    elif k.has("x_embedder.weight", "t_embedder.mlp.2.weight", "blocks.0.attn2.to_k.weight"):
        x, variant = "x_embedder.weight", "2.1"
    else:
        return None
    role = "checkpoint" if k.starts("vae.", "conditioner.") else "diffusion_model"
    return Detection(role, "hunyuan3d", variant, prefix=k.prefix_of(x) or "",
                     why="latent_in / cond_in" if variant != "2.1" else "x_embedder / t_embedder / blocks.N.attn2")


def _trellis2(k: Keys) -> Optional[Detection]:
    """TRELLIS.2's VAE files as ComfyUI holds them (Comfy-Org/Pixal3D's vae/): the shape VAE holds the structure
    decoder under struct_dec. and the mesh decoder under shape_dec.; the texture VAE its decoder under txt_dec."""
    if k.has("struct_dec.input_layer.weight"):
        return Detection("vae", "trellis2", "shape", why="struct_dec / shape_dec (TRELLIS.2's shape VAE)")
    if k.has("txt_dec.from_latent.weight"):
        return Detection("vae", "trellis2", "texture", why="txt_dec (TRELLIS.2's texture VAE)")
    if k.has("structure_model.t_embedder.mlp.0.weight"):
        # the flow models (diffusion_models/trellis_2_int8_convrot): structure_model., img2shape(_512)., shape2txt.;
        # Pixal3D's read the picture's features projected onto the grid besides (cross_attn.proj_linear)
        x = "structure_model.t_embedder.mlp.0.weight"
        pixal = k.has("structure_model.blocks.0.cross_attn.proj_linear.weight")
        return Detection("diffusion_model", "trellis2", "pixal3d" if pixal else "trellis2",
                         prefix=k.prefix_of(x) or "", why="structure_model / img2shape (TRELLIS.2's flow models)")
    if k.has("embeddings.register_tokens", "layer.0.layer_scale1.lambda1"):
        # its image encoder (clip_vision/dino_v3_L_naf_fp32): DINOv3 in transformers' names, Pixal3D's NAF beside it
        return Detection("clip_vision", "trellis2", "dinov3-naf" if k.starts("naf.") else "dinov3",
                         why="embeddings.register_tokens / layer.N.layer_scale1 (DINOv3, TRELLIS.2's image encoder)")
    return None


def _triposplat(k: Keys) -> Optional[Detection]:
    """TripoSplat's flow model (VAST-AI/TripoSplat diffusion_models/triposplat_fp16): its camera token's output and
    RePo rotary maps are its own; its decoder file holds the octree and Gaussian decoders."""
    x = "cam_out_layer.weight"
    if k.has(x, "repo_layers.0.final_map.weight"):
        return Detection("diffusion_model", "triposplat", "triposplat", prefix=k.prefix_of(x) or "",
                         why="cam_out_layer / repo_layers (TripoSplat's flow model)")
    if k.has("octree.out_proj.weight", "gs.out_proj.weight"):     # vae/triposplat_vae_decoder_fp16
        return Detection("vae", "triposplat", "decoder", why="octree / gs (TripoSplat's Gaussian decoder)")
    return None


# Order matters: IP-Adapter FaceID files hold LoRA keys; LoRAs and ControlNets contain their base model's names;
# motion modules SD's.
def _foreign_quant(k: Keys) -> Optional[Detection]:
    """bitsandbytes' and nunchaku's quantised files (their names hold the base model's too): named, not run."""
    why = foreign_quant(k.shapes)
    return Detection(None, None, "", why=why) if why else None


RULES = [_foreign_quant, _hunyuan3d, _trellis2, _triposplat, _ipadapter, _lora, _flux_controlnet, _controlnet, _motion, _wan, _hunyuan15, _hunyuan, _ltx2, _kandinsky5, _anima, _not_yet, _mage_flow, _seedvr2, _stable_audio, _minimax_music3, _ltx, _ltx_upsampler, _hunyuan15_upsampler, _cogvideox, _svd, _sd, _chroma, _unpooled_flux, _flux, _sd3, _lens, _pixeldit, _qwenimage, _newbie, _zimage, _krea2, _ideogram4, _flux3, _boogu, _omnigen2, _joyimage, _fibo2, _hidream_o1, _hidream, _vae,
         _text_encoder, _clip_vision, _style_model, _model_patch, _read_by_a_node]


def detect_keys(shapes: Dict[str, Shape]) -> Detection:
    """Detection from tensor names and shapes (exact names, prefixes tolerated)."""
    k = Keys(shapes)
    for rule in RULES:
        try:
            found = rule(k)
        except (IndexError, TypeError, ValueError, ZeroDivisionError):
            # The rules read a layer's width from its shape; a damaged file's tensor of too few dimensions (or none)
            # under a model's name stopped `kinograph info` on the whole models folder, and every loader, with an
            # IndexError traceback.
            raise NodeError(f"not a model file Kinograph can read: {_odd_shape(k)}, which no model has; the file is "
                            "damaged: get it again from where it came") from None
        if found is not None:
            return found
    return Detection(None, None, why="no known key pattern")


def _odd_shape(k: Keys) -> str:
    """The tensor a rule stopped on: of those it read, one with no values or too few dimensions, else the last."""
    odd = [n for n in k.asked if len(k.shapes[n]) < 2 or 0 in k.shapes[n]] or k.asked[-1:]
    return f"its tensor {odd[-1]} has shape {list(k.shapes[odd[-1]])}" if odd else "its tensor shapes fit no layout"


def detect_header(header: Header) -> Detection:
    det = detect_keys(header.shapes)
    det.precision = precision_of(header)
    if det.role is None and det.family is None and header.metadata.get("general.architecture") == "clip":
        # llama.cpp's projector file (mmproj-*.gguf) is read with the language model it serves (gguf_mmproj)
        kind = header.metadata.get("clip.projector_type") or header.metadata.get("clip.vision.projector_type", "")
        det.why = (f"llama.cpp's vision projector (mmproj, {kind or 'type unstated'}), read with the language-model "
                   "GGUF whose name it holds (the Qwen2.5-VL text encoder beside it), not loaded alone")
    if det.family in ("ltx", "ltx2") and det.role in ("checkpoint", "diffusion_model"):
        cfg = _transformer_config(header.metadata)
        if det.family == "ltx" and cfg.get("causal_temporal_positioning") is True:
            det.extra["causal_temporal_positioning"] = True
        if det.family == "ltx2" and cfg.get("rope_type") in ("split", "interleaved"):
            det.extra["rope_type"] = cfg["rope_type"]
        if det.family == "ltx2" and cfg.get("frequencies_precision") in ("float32", "float64"):
            det.extra["rope_double_precision"] = cfg["frequencies_precision"] == "float64"
    if det.family == "wan" and det.role == "diffusion_model" and det.variant.startswith("i2v-") and \
            _transformer_config(header.metadata).get("model_type") == "animate2":
        # Wan Animate 2 (wan_animate_2_*.safetensors): Wan 2.1 I2V-14B's very tensors, run with a pose branch
        # (nodes/generate/wan_animate2.py); only the file's metadata says so, as ComfyUI reads it
        det.variant = "animate2-" + det.variant[len("i2v-"):]
        det.extra["animate2"] = True
        det.why += "; config metadata model_type animate2"
    if det.family == "wan" and det.role == "diffusion_model" and det.variant.startswith("t2v-") and \
            _transformer_config(header.metadata).get("causal_ar") is True:
        # Causal Forcing / Self-Forcing (causal_forcing-framewise.safetensors): Wan 2.1 T2V's very tensors, made
        # block by block; only the file's metadata says so
        det.variant = "causal-" + det.variant
        det.extra["causal_ar"] = True
        det.why += "; config metadata causal_ar"
    return det


def _transformer_config(metadata: Dict[str, str]) -> dict:
    """A file's own transformer config (its `config` metadata: Lightricks' LTX-Video 0.9.5 on and LTX-2, an
    autoregressive Wan), which says what no tensor shape shows: whether frames are placed causally in time, LTX-2's
    rotary embedding layout (split or interleaved halves) and precision, whether a Wan model makes its video block by
    block (causal_ar). ComfyUI reads them there too."""
    try:
        cfg = json.loads(metadata.get("config") or "{}")
    except ValueError:
        return {}
    transformer = cfg.get("transformer") if isinstance(cfg, dict) else None
    return transformer if isinstance(transformer, dict) else {}


def detect_file(path) -> Detection:
    header = read_header(path)
    try:
        det = detect_header(header)
    except NodeError as exc:
        raise NodeError(f"{path} is {exc}") from None
    return ltx2_release(det, Path(path).name)


def detect_state_dict(state: Dict[str, object]) -> Detection:
    """Detection of tensors already in memory (name -> tensor)."""
    return detect_keys({k: tuple(getattr(v, "shape", ())) for k, v in state.items()})
