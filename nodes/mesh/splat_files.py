"""A SPLAT as a file: Niantic's .spz (version 2, SH degree 0, gzipped; the format of nianticlabs/spz: a 16-byte
header, then positions as 24-bit fixed point, alphas, colours, log scales and rotations' x y z, each a byte, per
attribute) or a 3DGS binary .ply (the storage convention of the 3DGS trainers: log scales, logit opacities, SH DC
then the rest channel by channel), as ComfyUI's SplatToFile3D writes them."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from graph_engine import NodeError
from nodes.common.splat import Splat

FORMATS = ("spz", "ply")
SPZ_MAGIC, SPZ_VERSION = 0x5053474E, 2      # "NGSP"
FRACTION = 12                               # the positions' fractional bits (1/4096 of a unit)
COLOR_SCALE = 0.15                          # spz's colour byte: SH DC x 0.15 x 255 + 127.5


def _bytes(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def spz_bytes(splat: Splat) -> bytes:
    n = len(splat)
    fixed = np.clip(np.round(splat.positions.astype(np.float64) * (1 << FRACTION)), -(1 << 23), (1 << 23) - 1)
    word = fixed.astype(np.int64) & 0xFFFFFF
    positions = np.stack([word & 0xFF, (word >> 8) & 0xFF, word >> 16], -1).astype(np.uint8)      # little-endian
    alphas = _bytes(splat.opacities * 255.0)
    colors = _bytes((splat.sh[:, 0] * COLOR_SCALE + 0.5) * 255.0)
    scales = _bytes((np.log(np.maximum(splat.scales, 1e-9)) + 10.0) * 16.0)
    rot = splat.rotations / np.maximum(np.linalg.norm(splat.rotations, axis=1, keepdims=True), 1e-12)
    rot = np.where(rot[:, :1] < 0, -rot, rot)       # w >= 0: the reader rebuilds w from x, y, z
    rotations = _bytes((rot[:, 1:] + 1.0) * 127.5)
    header = struct.pack("<IIIBBBB", SPZ_MAGIC, SPZ_VERSION, n, 0, FRACTION, 0, 0)
    return gzip.compress(header + b"".join(a.tobytes() for a in (positions, alphas, colors, scales, rotations)),
                         mtime=0)


def ply_bytes(splat: Splat) -> bytes:
    n = len(splat)
    rest = splat.sh[:, 1:].transpose(0, 2, 1).reshape(n, -1)        # channel by channel, as 3DGS stores them
    op = np.clip(splat.opacities, 1e-6, 1 - 1e-6)
    columns = [splat.positions, np.zeros((n, 3), np.float32), splat.sh[:, 0], rest,
               np.log(op / (1 - op))[:, None], np.log(np.maximum(splat.scales, 1e-8)), splat.rotations]
    names = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
             + [f"f_rest_{i}" for i in range(rest.shape[1])] + ["opacity", "scale_0", "scale_1", "scale_2"]
             + [f"rot_{i}" for i in range(4)])
    body = np.concatenate(columns, 1).astype("<f4")
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n"
              + "".join(f"property float {a}\n" for a in names) + "end_header\n")
    return header.encode("ascii") + body.tobytes()


def write_splat(splat: Splat, path: str, overwrite: bool = False) -> dict:
    """Write `splat` to `path` in the format its suffix names; returns {"path", "gaussians", "bytes"} and
    "earlier_take" where the file it replaced is kept (graph_engine.takes)."""
    from graph_engine.atomic import atomic_output
    final = Path(path)
    kind = final.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise NodeError(f"{path!r} is not a splat file name: name it out/NAME.spz (Niantic's compressed splats) or "
                        "out/NAME.ply (3DGS)")
    if not len(splat):
        raise NodeError("the splat holds no Gaussians: there is nothing to write")
    data = spz_bytes(splat) if kind == "spz" else ply_bytes(splat)
    kept: list = []
    with atomic_output(final, overwrite=overwrite, takes=kept) as tmp:
        Path(tmp).write_bytes(data)
    info = {"path": str(final), "gaussians": len(splat), "bytes": len(data)}
    return {**info, "earlier_take": str(kept[0])} if kept else info

