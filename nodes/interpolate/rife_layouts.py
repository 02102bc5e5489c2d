"""Which RIFE release a weight file holds, read from its parameter names and shapes alone
(file names lie: ComfyUI-Frame-Interpolation, Practical-RIFE and converters all name them
differently). See nodes.interpolate.ifnet for what each release changed."""
from __future__ import annotations

import re
from typing import Dict, Mapping, Optional, Sequence, Tuple

from nodes.interpolate.ifnet import Layout

Shapes = Mapping[str, Tuple[int, ...]]

# Parts some files carry that inference does not run: the refinement U-Net of 4.0-4.3 (ComfyUI's
# fast_mode off) and the distillation teacher / time calibration of later training checkpoints.
IGNORED = ("contextnet.", "unet.", "teacher.", "caltime.")

SUPPORTED = ("4.0-4.1", "4.2-4.4", "4.5", "4.6", "4.7-4.9", "4.10-4.13", "4.14-4.20 and 4.24", "4.21-4.23",
             "4.25-4.26 (with their lite / heavy variants)")
SUPPORTED_TEXT = ("RIFE 4.0 to 4.26 IFNet weights, as Practical-RIFE publishes them (train_log/flownet.pkl), "
                  "ComfyUI-Frame-Interpolation keeps them (ckpts/rife/rife47.pth, rife49.pth, rife417.pth, "
                  "rife426.pth, ...) or ComfyUI's own frame interpolation does (models/frame_interpolation/"
                  "rife_v4.26.safetensors, ...), also converted to .safetensors")

# The nn.Sequential encoders of 4.7-4.13 hold the same layers as the later `Head` (cnn0..cnn3).
_SEQ_SHALLOW = {"encode.0.": "encode.cnn0.", "encode.1.": "encode.cnn3."}
_SEQ_DEEP = {"encode.0.": "encode.cnn0.", "encode.2.": "encode.cnn1.", "encode.4.": "encode.cnn2.",
             "encode.6.": "encode.cnn3."}


class UnknownLayout(ValueError):
    """The file is not one of the supported layouts; the message says what it holds instead."""


# ComfyUI's own frame interpolation (Comfy-Org's repackaged models/frame_interpolation/rife_v4.25.safetensors,
# rife_v4.26_heavy.safetensors, ...) keeps Practical-RIFE's block0..block4 as a list: blocks.0..blocks.4.
_LISTED_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def strip(state: Mapping[str, object]) -> Dict[str, object]:
    """Drop multi-GPU prefixes ("module.") and the parts inference never runs; ComfyUI's block names as
    Practical-RIFE's."""
    out = {}
    for k, v in state.items():
        k = k[len("module."):] if k.startswith("module.") else k
        k = _LISTED_BLOCK.sub(r"block\1.", k)
        if not k.startswith(IGNORED):
            out[k] = v
    return out


def encoder_renames(keys) -> Dict[str, str]:
    if "encode.6.weight" in keys:
        return _SEQ_DEEP
    if "encode.1.weight" in keys:
        return _SEQ_SHALLOW
    return {}


def rename(state: Mapping[str, object]) -> Dict[str, object]:
    """Published names -> the names of nodes.interpolate.ifnet.IFNet."""
    table = encoder_renames(state)
    out = {}
    for k, v in state.items():
        for old, new in table.items():
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out


def _found(shapes: Shapes) -> str:
    heads = sorted({k.split(".")[0] for k in shapes})
    sample = ", ".join(f"{k} {tuple(v)}" for k, v in list(shapes.items())[:3])
    return (f"{len(shapes)} tensors under {', '.join(heads[:8])}{' ...' if len(heads) > 8 else ''} "
            f"(e.g. {sample})")


def _unknown(shapes: Shapes, why: str) -> UnknownLayout:
    return UnknownLayout(f"{why}. The file holds {_found(shapes)}. Supported: {SUPPORTED_TEXT}; "
                         f"layouts {', '.join(SUPPORTED)}")


def _block_count(shapes: Shapes) -> int:
    n = 0
    while f"block{n}.conv0.0.0.weight" in shapes:
        n += 1
    return n


def _depth(shapes: Shapes, i: int, res: bool) -> int:
    suffix = "conv.weight" if res else "0.weight"
    pat = re.compile(rf"block{i}\.convblock\.(\d+)\.{re.escape(suffix)}$")
    return len([k for k in shapes if pat.match(k)])


def _encoder(shapes: Shapes) -> Tuple[int, bool, int, str]:
    """(hidden width, deep, feature channels, naming) of the feature encoder; hidden 0 = none."""
    if "encode.cnn0.weight" in shapes:
        if "encode.cnn3.weight" not in shapes:
            raise KeyError("encode.cnn3.weight")
        return shapes["encode.cnn0.weight"][0], "encode.cnn1.weight" in shapes, shapes["encode.cnn3.weight"][1], "head"
    table = encoder_renames(shapes)
    if table:
        last = "encode.6.weight" if table is _SEQ_DEEP else "encode.1.weight"
        return shapes["encode.0.weight"][0], table is _SEQ_DEEP, shapes[last][1], "seq"
    return 0, False, 0, ""


def _release(prelu: bool, shuffle: bool, head_out: int, enc: int, deep: bool, naming: str, feat: int,
             blocks: int) -> Optional[str]:
    if blocks == 5:
        return "4.25-4.26" if enc and naming == "head" and deep and feat else None
    if blocks != 4:
        return None
    if prelu:
        return "4.0-4.1" if not shuffle and head_out == 5 and not enc else None
    if not shuffle:
        return "4.2-4.4" if head_out == 5 and not enc else None
    if not enc:
        return {5: "4.5", 6: "4.6"}.get(head_out)
    if not deep:
        return "4.7-4.9" if head_out == 6 else None
    if naming == "seq":
        return "4.10-4.13" if head_out == 6 else None
    return {6: "4.14-4.20 / 4.24", 13: "4.21-4.23"}.get(head_out)


def detect(shapes: Shapes) -> Layout:
    """The layout of a state dict given as {name: shape} (prefixes already stripped).
    UnknownLayout, saying what was found, when it is none of the published ones."""
    blocks = _block_count(shapes)
    if blocks == 0:
        raise _unknown(shapes, "no RIFE IFNet blocks in it (no 'block0.conv0.0.0.weight')")
    if blocks == 3:
        raise _unknown(shapes, "it has 3 flow blocks, the layout of RIFE 2.x/3.x (HD/HDv2/HDv3), which Kinograph "
                               "does not run; use a RIFE 4.x file")
    try:
        widths, in_ch, kinds = [], [], set()
        for i in range(blocks):
            p = f"block{i}."
            first, second = shapes[p + "conv0.0.0.weight"], shapes[p + "conv0.1.0.weight"]
            prelu = p + "conv0.0.1.weight" in shapes
            res = p + "convblock.0.beta" in shapes
            shuffle = p + "lastconv.0.weight" in shapes
            head = shapes[p + ("lastconv.0.weight" if shuffle else "lastconv.weight")]
            head_out = head[1] // 4 if shuffle else head[1]
            widths.append(int(second[0]))
            in_ch.append(int(first[1]))
            kinds.add((prelu, res, _depth(shapes, i, res), shuffle, int(head_out)))
        hidden, deep, enc_out, naming = _encoder(shapes)
    except (KeyError, IndexError) as e:
        raise _unknown(shapes, f"its blocks are incomplete (no parameter {e.args[0]!r})") from None
    if len(kinds) != 1:
        raise _unknown(shapes, "its blocks are built differently from each other")
    prelu, res, depth, shuffle, head_out = kinds.pop()
    feat = head_out - 5 if head_out > 6 else 0
    release = _release(prelu, shuffle, head_out, hidden, deep, naming, feat, blocks)
    if release is None or depth == 0 or (prelu and res):
        raise _unknown(shapes, f"its {blocks} blocks ({'PReLU' if prelu else 'LeakyReLU'}, "
                               f"{'residual' if res else 'plain'} body, {head_out}-channel head, "
                               f"{'no encoder' if not hidden else f'{enc_out}-channel encoder'}) match no published RIFE 4.x")
    want = [7 + 2 * enc_out] + [12 + 2 * enc_out + feat] * (blocks - 1)
    if in_ch != want:
        raise _unknown(shapes, f"its blocks take {in_ch} input channels where the {release} layout takes {want}")
    scales: Sequence[float] = (8, 4, 2, 1)
    if blocks == 5:
        # 4.25.lite, whose last block is less than half as wide as the one before (24 after 64;
        # 4.25/4.26 and the heavy ones halve), was released with a coarser pyramid.
        scales = (32, 16, 8, 4, 1) if 2 * widths[-1] < widths[-2] else (16, 8, 4, 2, 1)
    return Layout(release=release, widths=tuple(widths), in_ch=tuple(in_ch), prelu=prelu, res_body=res, depth=depth,
                  shuffle=shuffle, head_out=head_out, enc_hidden=int(hidden), enc_deep=deep, enc_out=int(enc_out),
                  scales=tuple(float(s) for s in scales))
