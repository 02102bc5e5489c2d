"""Colour look-up tables: Adobe/Resolve `.cube` and Autodesk/Nuke `.3dl`, parsed with located errors, applied
tetrahedrally (as DaVinci Resolve and Nuke apply a 3D LUT) or trilinearly, 1D linearly, and Resolve's 1D
shaper before a 3D table; to 8-bit frames (color.lut) or to a 16-bit decode (io.load_video's lut)."""
from __future__ import annotations

import io
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from graph_engine import NodeError

INTERPOLATIONS = ("tetrahedral", "trilinear")
# Resolve's LUT_IN_VIDEO_RANGE / LUT_OUT_VIDEO_RANGE: the table expects or makes video-range code
# values (10-bit black 64, white 940) where frames hold full range.
VIDEO_BLACK, VIDEO_WHITE = 64.0 / 1023.0, 940.0 / 1023.0


@dataclass
class CubeLut:
    table: Optional[np.ndarray]     # 3D: [N, N, N, 3] indexed [b, g, r]; None for a 1D-only file
    domain_min: np.ndarray          # input range of the 3D table (of the 1D table in a 1D-only file)
    domain_max: np.ndarray
    title: str = ""
    shaper: Optional[np.ndarray] = None     # 1D [M, 3], applied before the 3D table (or alone)
    shaper_min: Optional[np.ndarray] = None
    shaper_max: Optional[np.ndarray] = None
    video_in: bool = False
    video_out: bool = False

    @property
    def is_3d(self) -> bool:
        return self.table is not None


# Room for a 65^3 LUT several times over.
MAX_CUBE_BYTES = 64 << 20


def _lines(path: str):
    """(line number, text) of a text file as it is read, refusing binary data without quoting it."""
    total = 0
    # utf-8-sig: a byte-order mark, as some Windows tools write it, is not part of the first line.
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for no, raw in enumerate(f, 1):
            total += len(raw)
            if total > MAX_CUBE_BYTES:
                raise NodeError(f"{path}: over {MAX_CUBE_BYTES >> 20} MB, too big for a .cube LUT")
            if "\x00" in raw or "\ufffd" in raw:
                raise NodeError(f"{path}:{no}: not a text file (is this a .cube LUT?)")
            yield no, raw


def _range(path: str, no: int, key: str, rest: str, dims: int) -> np.ndarray:
    vals = np.array(rest.split(), np.float32)
    if vals.shape != (dims,):
        raise NodeError(f"{path}:{no}: {key} needs {dims} numbers, found {vals.size}")
    return vals


class _Entries:
    """A table's lines as they are read: their text in one buffer and their line numbers in an array. As a
    Python tuple and strings each, a 64 MB .cube of 10 million short lines (a few KB zipped) took 5 GB."""

    def __init__(self, path: str):
        self.path, self.text, self.lines = path, io.StringIO(), array("I")
        self.bad = None                     # (line number, count) of the first line without 3 numbers

    def add(self, no: int, line: str) -> None:
        count = len(line.split())
        if count != 3 and self.bad is None:
            self.bad = (no, count)
        self.text.write(line + "\n")
        self.lines.append(no)

    def __len__(self) -> int:
        return len(self.lines)

    def table(self) -> np.ndarray:
        """The entries as an [n, 3] float32 array, or the line of the first bad one."""
        if self.bad is not None:
            raise NodeError(f"{self.path}:{self.bad[0]}: a LUT entry needs 3 numbers, found {self.bad[1]}")
        text = self.text.getvalue()
        with warnings.catch_warnings():
            # fromstring refuses text that is no number, and a number past float32's range is inf to it: the
            # lines are then read one by one to name the first such. (Its overflow warning is not the message.)
            warnings.simplefilter("ignore")
            try:
                flat = np.fromstring(text, np.float32, sep=" ")
            except ValueError:
                flat = np.zeros(0, np.float32)
            if flat.size == 3 * len(self) and np.isfinite(flat).all():
                return flat.reshape(-1, 3)
            for no, line in zip(self.lines, io.StringIO(text)):
                try:
                    vals = np.array([float(v) for v in line.split()], np.float32)
                except ValueError:
                    raise NodeError(f"{self.path}:{no}: cannot read the numbers on this line") from None
                if not np.isfinite(vals).all():   # nan would turn those colours black
                    raise NodeError(f"{self.path}:{no}: a LUT entry needs finite numbers (no nan or inf, none "
                                    f"beyond 3.4e38)")
        raise NodeError(f"{self.path}: cannot read the table's numbers")


def parse_cube(path: str) -> CubeLut:
    if not path:
        raise NodeError("no LUT file given: set path to a .cube file")
    p = Path(path)
    if not p.is_file():
        raise NodeError(f"LUT file {path} not found: choose an existing .cube file")
    size1, size3, title = None, None, ""
    dmin, dmax = np.zeros(3, np.float32), np.ones(3, np.float32)
    range1 = range3 = None
    video_in = video_out = False
    data = _Entries(path)
    # Messages name the file and line only, never its text: the path may point at any file
    # (a LUT param aimed at a secrets file must not print them).
    for no, raw in _lines(path):
        head = raw.strip()
        if head[:5].upper() == "TITLE" and head[5:6].isspace():  # a quoted title may hold a '#' ("Look #3")
            title = head[5:].strip().strip('"')
            continue
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, rest = (line.split(None, 1) + [""])[:2]     # keywords and values may be split by tabs
        key = key.upper()
        if key[0].isdigit() or key[0] in "-+." or key.lower().startswith(("nan", "inf")):
            data.add(no, line)
            continue
        try:
            if key in ("LUT_3D_SIZE", "LUT_1D_SIZE"):
                size, top = int(rest), (256 if key == "LUT_3D_SIZE" else 65536)
                if not 2 <= size <= top:
                    raise NodeError(f"{path}:{no}: {key} is out of range (2..{top})")
                if key == "LUT_3D_SIZE":
                    size3 = size
                else:
                    size1 = size
            elif key == "DOMAIN_MIN":
                dmin = _range(path, no, key, rest, 3)
            elif key == "DOMAIN_MAX":
                dmax = _range(path, no, key, rest, 3)
            elif key in ("LUT_3D_INPUT_RANGE", "LUT_1D_INPUT_RANGE"):
                lo_hi = _range(path, no, key, rest, 2)
                rng = (np.full(3, lo_hi[0], np.float32), np.full(3, lo_hi[1], np.float32))
                if key == "LUT_3D_INPUT_RANGE":
                    range3 = rng
                else:
                    range1 = rng
            elif key == "LUT_IN_VIDEO_RANGE":
                video_in = True
            elif key == "LUT_OUT_VIDEO_RANGE":
                video_out = True
            else:
                raise NodeError(f"{path}:{no}: not a .cube LUT line (is this a .cube LUT?)")
        except ValueError:
            raise NodeError(f"{path}:{no}: cannot read the numbers on this line") from None
    if size1 is None and size3 is None:
        raise NodeError(f"{path}: no LUT_3D_SIZE or LUT_1D_SIZE line: not a valid .cube LUT")
    # Adobe's DOMAIN_MIN/MAX is the input range of whatever table the file holds; Resolve's
    # LUT_1D/3D_INPUT_RANGE name theirs.
    range1, range3 = range1 or (dmin, dmax), range3 or (dmin, dmax)
    for lo, hi in (range1, range3):
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()) or np.any(hi <= lo):
            raise NodeError(f"{path}: DOMAIN_MIN/DOMAIN_MAX need 3 finite numbers each with max > min "
                            f"(LUT_1D/3D_INPUT_RANGE two)")
    n1, n3 = size1 or 0, (size3 or 0) ** 3
    if len(data) != n1 + n3:
        sizes = " and ".join(str(s) for s in (size1, size3) if s)
        raise NodeError(f"{path}: LUT size {sizes} needs {n1 + n3} entries, found {len(data)}")
    rows = data.table()
    # .cube order: red changes fastest, so a C-order reshape indexes [b, g, r].
    # In a file with both, the 1D shaper's rows come first (Resolve's layout).
    table = rows[n1:].reshape(size3, size3, size3, 3) if size3 else None
    shaper = rows[:n1] if size1 else None
    lo, hi = range3 if size3 else range1
    return CubeLut(table, lo, hi, title, shaper, *(range1 if size1 else (None, None)), video_in, video_out)


def _likely_bits(largest: float) -> int:
    """The bit depth of integer code values whose largest is `largest`, as OpenColorIO infers it for .3dl
    (GetLikelyLutBitDepth): the even depth whose top is up to twice the largest, 14 read as 16."""
    for bits in (8, 10, 12, 14, 16):
        if largest <= 2 ** (bits + 1) - 1:
            return 16 if bits == 14 else bits
    return 16


def parse_3dl(path: str) -> CubeLut:
    """An Autodesk (Lustre, Flame) or Nuke `.3dl`: a line of input code values (the mesh), then N^3 rows
    of integer outputs with blue changing fastest. Bit depths come from the largest values, as OpenColorIO
    reads them, unless a Lustre 'Mesh <in> <out bits>' line says; an uneven mesh becomes a shaper."""
    p = Path(path)
    if not p.is_file():
        raise NodeError(f"LUT file {path} not found: choose an existing .cube or .3dl file")
    mesh, rows, out_bits = None, _Entries(path), None
    for no, raw in _lines(path):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key = line.split()[0].upper()
        if key == "MESH":           # Lustre: Mesh <input bits of the mesh> <output bits>
            try:
                out_bits = int(line.split()[2])
            except (IndexError, ValueError):
                raise NodeError(f"{path}:{no}: a Mesh line needs two numbers (Mesh 4 12)") from None
            continue
        if key in ("3DMESH", "LUT8", "GAMMA"):     # Lustre and Flame's other tokens
            continue
        if not (key[0].isdigit() or key[0] in "-+."):
            raise NodeError(f"{path}:{no}: not a .3dl LUT line (is this a .3dl LUT?)")
        if mesh is None:
            try:
                mesh = np.array(line.split(), np.float64)
            except ValueError:
                raise NodeError(f"{path}:{no}: cannot read the numbers on this line") from None
            if len(mesh) < 2 or np.any(np.diff(mesh) <= 0):
                raise NodeError(f"{path}:{no}: the first line of a .3dl lists its input levels, rising")
            continue
        rows.add(no, line)
    if mesh is None:
        raise NodeError(f"{path}: no input levels and no table: not a .3dl LUT")
    n = len(mesh)
    if len(rows) != n ** 3:
        raise NodeError(f"{path}: {n} input levels need {n ** 3} entries, found {len(rows)}")
    table = rows.table()
    top = 2.0 ** (out_bits or _likely_bits(table.max())) - 1
    # Blue fastest: a C-order reshape indexes [r, g, b]; CubeLut's tables are [b, g, r].
    table = np.ascontiguousarray((table / top).reshape(n, n, n, 3).transpose(2, 1, 0, 3), np.float32)
    in_top = 2 ** _likely_bits(mesh[-1]) - 1
    # The usual mesh (0 64 ... 960 1023) is even but for its last step: read as even, as OpenColorIO and
    # FFmpeg read it.
    if np.abs(mesh - np.linspace(mesh[0], mesh[-1], n)).max() <= 0.05 * (mesh[-1] - mesh[0]) / (n - 1):
        lo, hi = np.full(3, mesh[0] / in_top, np.float32), np.full(3, mesh[-1] / in_top, np.float32)
        return CubeLut(table, lo, hi, p.stem)
    # An uneven mesh: a shaper taking each input code to its place on the table's axis.
    codes = np.arange(in_top + 1, dtype=np.float64)
    place = (np.interp(codes, mesh, np.arange(n)) / (n - 1)).astype(np.float32)
    return CubeLut(table, np.zeros(3, np.float32), np.ones(3, np.float32), p.stem, np.repeat(place[:, None], 3, 1),
                   np.zeros(3, np.float32), np.ones(3, np.float32))


# LUT files of other programs: named, so that one is not read as a broken .cube.
OTHER_LUTS = (".csp", ".spi3d", ".spi1d", ".spimtx", ".clf", ".ctf", ".mga", ".m3d", ".vf", ".look", ".icc", ".icm",
              ".lut", ".dat", ".xmp")


def parse_lut(path: str) -> CubeLut:
    """A .3dl LUT by its file type, else a .cube."""
    kind = Path(path).suffix.lower()
    if kind == ".3dl":
        return parse_3dl(path)
    if kind in OTHER_LUTS:
        raise NodeError(f"{path}: Kinograph reads .cube (Resolve, Adobe, camera makers) and .3dl (Nuke, Flame, "
                        f"Lustre) LUTs, not {kind}: export this look as a .cube (Resolve: right-click the "
                        f"clip, Generate LUT; OpenColorIO: ociobakelut --format resolve_cube)")
    return parse_cube(path)


def lattice_positions(lut: CubeLut, levels: int = 256, white: Optional[float] = None) -> np.ndarray:
    """[3, levels] float32: where each level of each channel (256: 8-bit frames; 65536: 16-bit) falls on
    the 3D table's axis, in cells (through the shaper where there is one); for a 1D-only LUT, each
    level's output value. `white`: the level that is 1.0 (the top level unless the decoder says otherwise)."""
    x = np.minimum(np.arange(levels, dtype=np.float64) / (white or levels - 1), 1.0)
    return placed(np.repeat(x[None], 3, 0), lut).astype(np.float32)


def placed(x: np.ndarray, lut: CubeLut) -> np.ndarray:
    """Input values [3, ...] (a row per channel, float64) -> where they fall on the 3D table's axis, in cells,
    through the shaper where there is one; for a 1D-only LUT their output values. Inputs outside a table's
    domain are held at its edge, as Resolve and OpenColorIO clamp them."""
    if lut.video_in:
        x = VIDEO_BLACK + x * (VIDEO_WHITE - VIDEO_BLACK)
    if lut.shaper is not None:
        m = len(lut.shaper)
        u = np.clip((x - lut.shaper_min[:, None]) / (lut.shaper_max - lut.shaper_min)[:, None], 0.0, 1.0)
        grid = np.linspace(0.0, 1.0, m)
        x = np.stack([np.interp(u[c], grid, lut.shaper[:, c]) for c in range(3)])
    if lut.table is None:
        return x
    n = lut.table.shape[0]
    u = np.clip((x - lut.domain_min[:, None]) / (lut.domain_max - lut.domain_min)[:, None], 0.0, 1.0)
    return u * (n - 1)


_KERNELS: tuple = ()


def _kernels():
    """(the kernel for 8- or 16-bit frames, the one for float values), compiled on first use so importing this module
    never pays numba's start-up cost. Both interpolate through one function, bound as a module global: numba keys
    its disk cache on a kernel's closure, where a compiled function has a new identity in every process, so every
    process compiled both kernels again (3.6 s of CPU)."""
    global _KERNELS, _lut_interp
    if not _KERNELS:
        import numba

        @numba.njit(cache=True, nogil=True, inline="always")
        def _lut_interp(table, r, g, b, fr, fg, fb, c, tetrahedral):
            """Channel c of the 3D table in cell (r, g, b) at fractions (fr, fg, fb) of it."""
            c000 = table[b, g, r, c]
            c111 = table[b + 1, g + 1, r + 1, c]
            if tetrahedral:     # the corners of the one tetrahedron of 6 holding the point
                if fr > fg:
                    if fg > fb:
                        return (1 - fr) * c000 + (fr - fg) * table[b, g, r + 1, c] \
                            + (fg - fb) * table[b, g + 1, r + 1, c] + fb * c111
                    if fr > fb:
                        return (1 - fr) * c000 + (fr - fb) * table[b, g, r + 1, c] \
                            + (fb - fg) * table[b + 1, g, r + 1, c] + fg * c111
                    return (1 - fb) * c000 + (fb - fr) * table[b + 1, g, r, c] \
                        + (fr - fg) * table[b + 1, g, r + 1, c] + fg * c111
                if fb > fg:
                    return (1 - fb) * c000 + (fb - fg) * table[b + 1, g, r, c] \
                        + (fg - fr) * table[b + 1, g + 1, r, c] + fr * c111
                if fb > fr:
                    return (1 - fg) * c000 + (fg - fb) * table[b, g + 1, r, c] \
                        + (fb - fr) * table[b + 1, g + 1, r, c] + fr * c111
                return (1 - fg) * c000 + (fg - fr) * table[b, g + 1, r, c] \
                    + (fr - fb) * table[b, g + 1, r + 1, c] + fb * c111
            c00 = c000 + fr * (table[b, g, r + 1, c] - c000)
            c01 = table[b, g + 1, r, c] + fr * (table[b, g + 1, r + 1, c] - table[b, g + 1, r, c])
            c10 = table[b + 1, g, r, c] + fr * (table[b + 1, g, r + 1, c] - table[b + 1, g, r, c])
            c11 = table[b + 1, g + 1, r, c] + fr * (c111 - table[b + 1, g + 1, r, c])
            c0 = c00 + fg * (c01 - c00)
            return c0 + fb * (c10 + fg * (c11 - c10) - c0)

        @numba.njit(cache=True, nogil=True)
        def coded(src, pos, table, tetrahedral, scale, offset, strength, out):
            inv = np.float32(1.0 / (pos.shape[1] - 1))
            h, w, _ = src.shape
            last = table.shape[0] - 2
            for y in range(h):
                for x in range(w):
                    s0, s1, s2 = src[y, x, 0], src[y, x, 1], src[y, x, 2]
                    pr, pg, pb = pos[0, s0], pos[1, s1], pos[2, s2]
                    r, g, b = min(int(pr), last), min(int(pg), last), min(int(pb), last)
                    for c in range(3):
                        v = _lut_interp(table, r, g, b, pr - r, pg - g, pb - b, c, tetrahedral)
                        level = (s0, s1, s2)[c] * inv
                        v = level + strength * (v * scale + offset - level)
                        out[y, x, c] = np.uint8(min(255.0, max(0.0, v * 255.0 + 0.5)))

        @numba.njit(cache=True, nogil=True)
        def floats(values, pos, table, tetrahedral, scale, offset, strength, out):
            last = table.shape[0] - 2
            for i in range(values.shape[0]):
                pr, pg, pb = pos[0, i], pos[1, i], pos[2, i]
                r, g, b = min(int(pr), last), min(int(pg), last), min(int(pb), last)
                for c in range(3):
                    v = _lut_interp(table, r, g, b, pr - r, pg - g, pb - b, c, tetrahedral) * scale + offset
                    # Blended only below full strength: an infinite input (a CG render's) made inf - inf = NaN.
                    out[i, c] = v if strength == 1 else values[i, c] + strength * (v - values[i, c])
        _KERNELS = (coded, floats)
    return _KERNELS


def _out_range(lut: CubeLut) -> tuple:
    """(scale, offset) taking the table's output to full range: LUT_OUT_VIDEO_RANGE's video-range output back."""
    if lut.video_out:
        return 1.0 / (VIDEO_WHITE - VIDEO_BLACK), -VIDEO_BLACK / (VIDEO_WHITE - VIDEO_BLACK)
    return 1.0, 0.0


def apply_lut(frame: np.ndarray, lut: CubeLut, strength: float = 1.0, interpolation: str = "tetrahedral",
              pos: Optional[np.ndarray] = None) -> np.ndarray:
    """Apply to a uint8 RGB frame, or a uint16 one (a 10-bit source decoded without losing its bits);
    output clipped to [0, 1] then 8 bits. `pos`: lattice_positions(lut, levels of the frame's type),
    computed once per clip."""
    if interpolation not in INTERPOLATIONS:
        raise NodeError(f"interpolation={interpolation!r}: choose one of {', '.join(INTERPOLATIONS)}")
    pos = lattice_positions(lut, np.iinfo(frame.dtype).max + 1) if pos is None else pos
    scale, offset = _out_range(lut)
    if lut.table is None:       # 1D only: each channel's 256 levels are a table of their own
        level = np.arange(pos.shape[1], dtype=np.float32) / (pos.shape[1] - 1)
        tab = level + strength * (pos * scale + offset - level)
        tab = np.clip(tab * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.stack([tab[c][frame[..., c]] for c in range(3)], -1)
    out = np.empty(frame.shape, np.uint8)
    _kernels()[0](np.ascontiguousarray(frame), pos, np.ascontiguousarray(lut.table, np.float32),
              interpolation == "tetrahedral", np.float32(scale), np.float32(offset), np.float32(strength), out)
    return out


def apply_lut_float(values: np.ndarray, lut: CubeLut, strength: float = 1.0, interpolation: str = "tetrahedral",
                    linear: bool = False) -> np.ndarray:
    """float32 values [..., 3] (a deep plate's sRGB-coded pixels, any range) through the LUT as apply_lut takes
    8-bit ones, unrounded and unclamped: inputs outside the domain held at its edge, outputs above 1.0 or below 0
    kept (as OpenColorIO and Resolve apply a LUT in float). Within the domain it is apply_lut before rounding.
    linear: the values are linear light (Clip.linear), coded to sRGB for the LUT, as the 8-bit frames hold them,
    and the result decoded back, the curve continued past 0..1 both ways."""
    from nodes.common.color import linear_to_srgb_unclamped, srgb_to_linear
    if interpolation not in INTERPOLATIONS:
        raise NodeError(f"interpolation={interpolation!r}: choose one of {', '.join(INTERPOLATIONS)}")
    flat = np.ascontiguousarray(values, np.float32).reshape(-1, 3)
    out = np.empty(flat.shape, np.float32)
    scale, offset = _out_range(lut)
    table = None if lut.table is None else np.ascontiguousarray(lut.table, np.float32)
    # In blocks: the positions of a chunk of 1080p frames in float64 came to a copy of several hundred MB.
    for i in range(0, len(flat), 1 << 16):
        x = linear_to_srgb_unclamped(flat[i:i + (1 << 16)]) if linear else flat[i:i + (1 << 16)]
        pos = placed(x.T.astype(np.float64), lut)
        y = out[i:i + len(x)]
        # NaN (a CG render's) has no place on the table: numba's kernel would read outside it. Taken as 0, as black.
        np.nan_to_num(pos, copy=False, nan=0.0)
        if table is None:       # 1D only: the positions are the outputs
            y[:] = pos.T * scale + offset if strength == 1 else x + strength * (pos.T * scale + offset - x)
        else:
            _kernels()[1](x, np.ascontiguousarray(pos, np.float32), table, interpolation == "tetrahedral",
                          np.float32(scale), np.float32(offset), np.float32(strength), y)
        if linear:
            y[:] = srgb_to_linear(y)
    return out.reshape(np.shape(values))
