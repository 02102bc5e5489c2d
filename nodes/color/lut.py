"""Adobe/Resolve `.cube` LUTs: parsing with located errors, trilinear 3D and linear 1D application."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graph_engine import NodeError


@dataclass
class CubeLut:
    table: np.ndarray        # 3D: [N, N, N, 3] indexed [b, g, r]; 1D: [N, 3]
    domain_min: np.ndarray
    domain_max: np.ndarray
    title: str = ""

    @property
    def is_3d(self) -> bool:
        return self.table.ndim == 4


# Room for a 65^3 LUT several times over; parsing keeps every entry as Python floats.
MAX_CUBE_BYTES = 64 << 20


def _lines(f, path: str):
    """(line number, text) of a text file, refusing binary data without quoting it."""
    total = 0
    for no, raw in enumerate(f, 1):
        total += len(raw)
        if total > MAX_CUBE_BYTES:
            raise NodeError(f"{path}: over {MAX_CUBE_BYTES >> 20} MB, too big for a .cube LUT")
        if "\x00" in raw or "\ufffd" in raw:
            raise NodeError(f"{path}:{no}: not a text file (is this a .cube LUT?)")
        yield no, raw


def parse_cube(path: str) -> CubeLut:
    if not path:
        raise NodeError("no LUT file given: set path to a .cube file")
    p = Path(path)
    if not p.is_file():
        raise NodeError(f"LUT file {path} not found: choose an existing .cube file")
    size, dims, title = None, 0, ""
    dmin, dmax = np.zeros(3, np.float32), np.ones(3, np.float32)
    rows = []
    # Messages name the file and line only, never its text: the path may point at any file
    # (a LUT param aimed at a secrets file must not print them).
    # utf-8-sig: a byte-order mark, as some Windows tools write it, is not part of the first line.
    with open(p, encoding="utf-8-sig", errors="replace") as f:
        lines = list(_lines(f, path))
    for no, raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, rest = (line.split(None, 1) + [""])[:2]     # keywords and values may be split by tabs
        key = key.upper()
        try:
            if key == "TITLE":
                title = rest.strip().strip('"')
            elif key in ("LUT_3D_SIZE", "LUT_1D_SIZE"):
                size, dims = int(rest), 3 if key == "LUT_3D_SIZE" else 1
                if not (2 <= size <= (256 if dims == 3 else 65536)):
                    raise NodeError(f"{path}:{no}: {key} is out of range (2..{256 if dims == 3 else 65536})")
            elif key == "DOMAIN_MIN":
                dmin = np.array(rest.split(), np.float32)
            elif key == "DOMAIN_MAX":
                dmax = np.array(rest.split(), np.float32)
            elif key in ("LUT_3D_INPUT_RANGE", "LUT_1D_INPUT_RANGE"):
                lo, hi = (float(v) for v in rest.split())
                dmin, dmax = np.full(3, lo, np.float32), np.full(3, hi, np.float32)
            elif key[0].isdigit() or key[0] in "-+." or key.lower().startswith(("nan", "inf")):
                vals = [float(v) for v in line.split()]
                if len(vals) != 3:
                    raise NodeError(f"{path}:{no}: a LUT entry needs 3 numbers, found {len(vals)}")
                if not all(map(math.isfinite, vals)):   # nan would turn those colours black
                    raise NodeError(f"{path}:{no}: a LUT entry needs finite numbers (no nan or inf)")
                rows.append(vals)
            else:
                raise NodeError(f"{path}:{no}: not a .cube LUT line (is this a .cube LUT?)")
        except ValueError:
            raise NodeError(f"{path}:{no}: cannot read the numbers on this line") from None
    if size is None:
        raise NodeError(f"{path}: no LUT_3D_SIZE or LUT_1D_SIZE line: not a valid .cube LUT")
    if dmin.shape != (3,) or dmax.shape != (3,) or not (np.isfinite(dmin).all() and np.isfinite(dmax).all()) \
            or np.any(dmax <= dmin):
        raise NodeError(f"{path}: DOMAIN_MIN/DOMAIN_MAX need 3 finite numbers each with max > min")
    expected = size ** 3 if dims == 3 else size
    if len(rows) != expected:
        raise NodeError(f"{path}: LUT size {size} needs {expected} entries, found {len(rows)}")
    table = np.array(rows, np.float32)
    # .cube order: red changes fastest, so a C-order reshape indexes [b, g, r].
    table = table.reshape(size, size, size, 3) if dims == 3 else table
    return CubeLut(table, dmin, dmax, title)


def apply_lut(frame: np.ndarray, lut: CubeLut, strength: float = 1.0) -> np.ndarray:
    """Apply to a uint8 RGB frame; output clipped to [0, 1] then 8 bits."""
    x = frame.astype(np.float32) / 255.0
    u = np.clip((x - lut.domain_min) / (lut.domain_max - lut.domain_min), 0.0, 1.0)
    n = lut.table.shape[0]
    pos = u * (n - 1)
    i0 = np.minimum(pos.astype(np.int32), n - 2)
    f = pos - i0
    if lut.is_3d:
        t = lut.table
        r0, g0, b0 = i0[..., 0], i0[..., 1], i0[..., 2]
        fr, fg, fb = f[..., 0:1], f[..., 1:2], f[..., 2:3]
        c00 = t[b0, g0, r0] * (1 - fr) + t[b0, g0, r0 + 1] * fr
        c01 = t[b0, g0 + 1, r0] * (1 - fr) + t[b0, g0 + 1, r0 + 1] * fr
        c10 = t[b0 + 1, g0, r0] * (1 - fr) + t[b0 + 1, g0, r0 + 1] * fr
        c11 = t[b0 + 1, g0 + 1, r0] * (1 - fr) + t[b0 + 1, g0 + 1, r0 + 1] * fr
        out = (c00 * (1 - fg) + c01 * fg) * (1 - fb) + (c10 * (1 - fg) + c11 * fg) * fb
    else:
        ch = np.arange(3)
        out = lut.table[i0, ch] * (1 - f) + lut.table[i0 + 1, ch] * f
    out = x + strength * (out - x)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
