"""Qwen2.5-VL's vision tower from llama.cpp's separate projector file (mmproj-*.gguf), for a Qwen2.5-VL text encoder
GGUF (Qwen-Image-Edit's encoder sees the pictures to edit through it). llama.cpp's converter
(convert_hf_to_gguf.py, Qwen2VLVisionModel) writes the tower apart from the language model: gguf-py's v.* / mm.*
names, each block's fused qkv split into attn_q / attn_k / attn_v, the 3-D patch convolution split into its two
frames (v.patch_embd.weight, v.patch_embd.weight.1), and the window-attention layout as metadata. Here that is put
back as the visual.* tensors ComfyUI's safetensors encoder holds, and found as ComfyUI-GGUF's CLIPLoaderGGUF finds
it: a .gguf beside the text encoder whose name holds "mmproj" and the encoder's name without its quantisation."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from graph_engine import NodeError

QWEN25VL_PROJECTOR = "qwen2.5vl_merger"          # gguf-py's VisionProjectorType.QWEN25VL
# the released Qwen2.5-VL sizes by language-model width, for the message when a tower is paired with another size
_SIZES = {2048: "3B", 3584: "7B", 5120: "32B", 8192: "72B"}
# a quantisation at the end of a name: -Q4_K_M, _IQ4_XS, -UD-Q5_K_XL, -Q8_0 (ComfyUI-GGUF strips the same)
_QUANT = re.compile(r"[-_]?(?:ud-)?i?q[0-9]_[a-z0-9_\-]{1,8}$", re.IGNORECASE)
# gguf-py's names in a block -> transformers' Qwen2.5-VL ones (tensor_mapping.py, read backwards)
_BLOCK = {"attn_out": "attn.proj", "ln1": "norm1", "ln2": "norm2", "ffn_gate": "mlp.gate_proj",
          "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
_TOP = {"v.post_ln": "merger.ln_q", "mm.0": "merger.mlp.0", "mm.2": "merger.mlp.2"}
_SPLIT = ("attn_q", "attn_k", "attn_v")


def _stem(path: Path) -> str:
    return _QUANT.sub("", path.stem.lower())


def _projectors(folder: Path, but: Path) -> List[Path]:
    try:
        return sorted(p for p in folder.iterdir()
                      if p.suffix.lower() == ".gguf" and "mmproj" in p.stem.lower() and p != but and p.is_file())
    except OSError:
        return []


def matching(path: Path) -> List[Path]:
    """The projector files whose names pair them with text encoder GGUF `path`, as ComfyUI-GGUF pairs them."""
    path = Path(path)
    return [p for p in _projectors(path.parent, path) if _stem(path) in p.stem.lower()]


def _width(mm: Path) -> int:
    """The language-model width projector `mm` feeds (its last layer's rows); 0 where its header cannot say."""
    from nodes.generate.detect import read_header
    try:
        shape = read_header(mm).shapes.get("mm.2.weight")
    except (NodeError, OSError, ValueError):
        return 0
    return int(shape[0]) if shape else 0


def find_mmproj(path: Path, width: int = 0) -> Optional[Path]:
    """The projector file paired with text encoder GGUF `path`: of several, the first by name (as ComfyUI-GGUF takes
    the first) among those feeding a language model `width` wide where that is given; None where none is there. A
    name without the model's size (qwen2.5-vl-Q8_0.gguf) matches the 3B's and the 7B's projectors alike."""
    named = matching(path)
    if width and len(named) > 1:
        named = [p for p in named if _width(p) == width] or named
    return named[0] if named else None


def missing(path: Path) -> str:
    """Why text encoder GGUF `path` has no vision tower, and how to give it one."""
    path = Path(path)
    others = _projectors(path.parent, path)
    seen = (f" The projector files there ({', '.join(p.name for p in others[:4])}) do not hold that name: rename the "
            f"one published with this model to {_stem(path)}-mmproj-<its type>.gguf." if others else "")
    return (f"{path.name} is a llama.cpp GGUF holding only Qwen2.5-VL's language model; its vision tower is llama.cpp's "
            f"separate projector file, which Kinograph (as ComfyUI-GGUF) takes from beside it: a .gguf in "
            f"{path.parent} whose name holds 'mmproj' and '{_stem(path)}' (e.g. {_stem(path)}-mmproj-F16.gguf, from "
            f"where the GGUF was published).{seen}")


# a block number or a setting of more digits than this is no tower's (int() refuses 4,300 digits by a ValueError)
_DIGITS = 6


def _number(text: str) -> bool:
    """Whether int() reads `text` as a whole number of at most _DIGITS digits (isdigit holds for '²' too)."""
    return text.isdecimal() and len(text) <= _DIGITS


def _int(meta: Dict[str, str], key: str, file: str) -> int:
    value = meta.get(key, "")
    if not _number(value) or int(value) < 1:
        raise NodeError(f"{file}: its metadata {key} is {_shown(value)}, where llama.cpp writes a positive "
                        f"whole number (of at most {_DIGITS} digits). The file is damaged; get it again from where "
                        "it was published")
    return int(value)


def _shown(value: str) -> str:
    return repr(value[:40]) + (f"... ({len(value):,} characters)" if len(value) > 40 else "") if value else "missing"


def _checked(meta: Dict[str, str], text: Path, file: str) -> None:
    arch = meta.get("general.architecture", "")
    kind = meta.get("clip.projector_type") or meta.get("clip.vision.projector_type", "")
    if arch != "clip":
        raise NodeError(f"{file}, taken as {text.name}'s vision projector for its 'mmproj' name, is a llama.cpp file "
                        f"of architecture {arch or 'unstated'!r}, not a projector (clip): rename it, or put the "
                        f"projector published with {text.name} beside it")
    if kind != QWEN25VL_PROJECTOR:
        raise NodeError(f"{file} is llama.cpp's vision projector for {kind or 'an unstated model'!r}, not Qwen2.5-VL's "
                        f"({QWEN25VL_PROJECTOR}), which {text.name} reads pictures with: put the mmproj published with "
                        "the Qwen2.5-VL GGUF beside it instead")


def _config(meta: Dict[str, str], depth: int, file: str) -> dict:
    """The tower's settings no tensor shows: its heads, patch size and which blocks attend to the whole picture
    (llama.cpp writes the window pattern n: every n-th block, where transformers lists those blocks)."""
    every = _int(meta, "clip.vision.n_wa_pattern", file)
    return dict(num_heads=_int(meta, "clip.vision.attention.head_count", file),
                patch_size=_int(meta, "clip.vision.patch_size", file),
                fullatt_block_indexes=[i for i in range(depth) if (i + 1) % every == 0])


def _plain(t):
    """A tensor's values (a quantised one expanded): pieces llama.cpp split are joined as values."""
    from nodes.generate.packed_weight import PackedWeight
    return t.dequantize() if isinstance(t, PackedWeight) else t


def vision_tower(text: Path, hidden: int, dtype) -> Tuple[dict, dict]:
    """(the visual.* tensors, the vision config's settings) of the projector paired with text encoder GGUF `text`,
    whose language model is `hidden` wide; ({}, {}) where there is none. NodeError for a projector of another model,
    another size or another layout."""
    import torch
    from nodes.generate.detect import read_header
    from nodes.generate.weights import load_weights
    mm = find_mmproj(text, hidden)
    if mm is None:
        return {}, {}
    meta = read_header(mm).metadata
    _checked(meta, text, mm.name)
    raw = load_weights(mm, dtype)
    out, split, frames = {}, {}, {}
    for name, t in raw.items():
        stem, _, suffix = name.rpartition(".")
        parts = stem.split(".")
        if name in ("v.patch_embd.weight", "v.patch_embd.weight.1"):
            frames[name] = _plain(t)
        elif stem in _TOP:
            out[f"visual.{_TOP[stem]}.{suffix}"] = t
        elif len(parts) == 4 and parts[:2] == ["v", "blk"] and _number(parts[2]) and parts[3] in _SPLIT:
            split.setdefault(f"visual.blocks.{int(parts[2])}.attn.qkv.{suffix}", {})[parts[3]] = _plain(t)
        elif len(parts) == 4 and parts[:2] == ["v", "blk"] and _number(parts[2]) and parts[3] in _BLOCK:
            out[f"visual.blocks.{int(parts[2])}.{_BLOCK[parts[3]]}.{suffix}"] = t
        else:
            raise NodeError(f"{mm.name}: its tensor {name!r} is not one of the Qwen2.5-VL vision tower's as llama.cpp "
                            "writes it (v.patch_embd, v.blk.N.attn_* / ln* / ffn_*, v.post_ln, mm.0, mm.2): the file "
                            "is another model's projector, or damaged")
    needed = ["v.patch_embd.weight", "v.patch_embd.weight.1"]
    lacking = [k for k in needed if k not in frames] + \
        [f"{k} {p}" for k, pieces in split.items() for p in _SPLIT if p not in pieces] + \
        [f"visual.{k}.weight" for k in _TOP.values() if f"visual.{k}.weight" not in out]
    if lacking or not split:
        raise NodeError(f"{mm.name} lacks {lacking[0] if lacking else 'its blocks'}: it is incomplete or damaged. Get "
                        "it again from where it was published")
    depth = _depth(split, mm.name)
    _fitting(frames, split, mm.name)
    # the convolution over two frames, and each block's one qkv projection, as transformers holds them
    out["visual.patch_embed.proj.weight"] = torch.stack([frames["v.patch_embd.weight"],
                                                         frames["v.patch_embd.weight.1"]], dim=2)
    for name, pieces in split.items():
        out[name] = torch.cat([pieces[p] for p in _SPLIT], dim=0)
    width = int(out["visual.merger.mlp.2.weight"].shape[0])
    if hidden and width != hidden:
        raise NodeError(f"{mm.name} is the vision tower of a Qwen2.5-VL {_SIZES.get(width, f'{width} wide')}, but "
                        f"{text.name} is Qwen2.5-VL {_SIZES.get(hidden, f'{hidden} wide')}: its pictures' tokens would "
                        "not fit the prompt's. Put the mmproj published with this size beside it")
    return out, _config(meta, depth, mm.name)


def _depth(split: dict, file: str) -> int:
    """How many blocks the tower has: its blocks' qkv pieces numbered 0 to depth - 1. A number past them (v.blk.
    99999999) set the depth, and the window layout was listed block by block up to it: seconds and gigabytes for
    10^8, without end for 10^20."""
    from nodes.generate.converters import MAX_BLOCKS
    numbers = {int(k.split(".")[2]) for k in split}
    if len(numbers) > MAX_BLOCKS or max(numbers) >= len(numbers):
        raise NodeError(f"{file}: its blocks are numbered up to v.blk.{max(numbers)} but it holds {len(numbers):,} of "
                        f"them (llama.cpp numbers a tower's blocks from 0, and Kinograph reads at most {MAX_BLOCKS}): "
                        "the file is damaged or made to hang the loader. Get it again from where it was published")
    return len(numbers)


def _fitting(frames: dict, split: dict, file: str) -> None:
    """NodeError where the pieces llama.cpp split cannot be put back: the patch convolution's two frames of one
    shape, each block's q, k and v of one width (torch.stack / torch.cat stopped with a RuntimeError)."""
    a, b = (tuple(frames[k].shape) for k in ("v.patch_embd.weight", "v.patch_embd.weight.1"))
    if a != b:
        raise NodeError(f"{file}: its patch convolution's two frames differ in shape (v.patch_embd.weight {list(a)}, "
                        f"v.patch_embd.weight.1 {list(b)}), where llama.cpp splits one convolution in two: the file is "
                        "damaged. Get it again from where it was published")
    for name, pieces in split.items():
        shapes = [tuple(pieces[p].shape) for p in _SPLIT]
        if len({s[1:] for s in shapes}) > 1 or not all(shapes):
            block = name.split(".")[2]
            raise NodeError(f"{file}: block {block}'s attn_q, attn_k and attn_v have shapes "
                            f"{', '.join(str(list(s)) for s in shapes)}, which do not make one qkv projection: the "
                            "file is damaged. Get it again from where it was published")
