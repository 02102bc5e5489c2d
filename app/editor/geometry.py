"""Node geometry shared by the painter, hit-testing and auto-layout (which runs before any item exists)."""
from __future__ import annotations

import math
from typing import Optional, Tuple

NODE_W = 200.0
HEADER_H = 26.0
ROW_H = 20.0
PAD = 6.0
PORT_R = 5.5
GRID = 20.0
THUMB_H = 96.0
FAR_ZOOM = 0.35         # below this zoom a node is drawn as a plain coloured block
DETAIL_ZOOM = 0.6       # below this zoom a node shows no socket labels or fields (so none can be clicked)


def node_rows(spec) -> Tuple[int, int]:
    """(port rows, parameter rows): inputs and outputs share rows, parameters follow."""
    if spec is None:
        return 1, 0
    return max(len(spec.inputs), len(spec.outputs)), len(spec.params)


def node_size(spec, collapsed: bool = False, thumb: bool = False) -> Tuple[float, float]:
    if collapsed:
        return NODE_W * 0.75, HEADER_H
    ports, params = node_rows(spec)
    h = HEADER_H + PAD + (ports + params) * ROW_H + PAD + (THUMB_H + PAD if thumb else 0.0)
    return NODE_W, max(h, HEADER_H + ROW_H + 2 * PAD)


def snap(v: float, grid: Optional[float] = GRID) -> float:
    return round(v / grid) * grid if grid else v


SLIDER_SPAN = 500


def slider_range(p) -> Optional[Tuple[float, float]]:
    """(min, max) when a numeric parameter's range is narrow enough for a slider to be precise."""
    if p.type in ("int", "float") and p.min is not None and p.max is not None and 0 < p.max - p.min <= SLIDER_SPAN:
        return float(p.min), float(p.max)
    return None


PLACES = 9              # the decimals a typed number keeps (0.12345 stays 0.12345)
# A range a little short of a round one is read as that one: denoise 0.01..1 and Canny's 0.01..0.99 stepped by
# 0.001 and dragged at 0.0005 a pixel, ten and two times finer than a 0..1 strength.
NEARLY = 1.12


def _span(p) -> float:
    return (p.max - p.min) * NEARLY


def places(x: float) -> int:
    """The decimals `x` needs to read exactly (up to PLACES): 6500.0 needs none, 0.125 three; nan and inf none
    (they print without a point: a stranger's workflow can hold them, and the panel must still draw)."""
    if not math.isfinite(x):
        return 0
    text = f"{abs(x):.{PLACES}f}".rstrip("0")
    return len(text) - text.index(".") - 1


def value_step(p) -> float:
    """A number's step: the declared one, else a power of ten a hundredth of its range (temperature
    1500..15000 steps by 1, exposure -6..6 by 0.1, a 0..1 strength by 0.01), at most 1; a float without
    a range steps by 0.1, a whole number by 1."""
    if p.step:
        return float(p.step)
    if p.type == "int":
        return 1.0
    if p.min is None or p.max is None or p.max <= p.min:
        return 0.1
    return min(1.0, 10.0 ** math.floor(math.log10(_span(p) / 100)))


def decimals(p, v=None) -> int:
    """The decimals a float field shows: as many as its step needs, more where the value holds more
    (typed 0.12345 on a 0.01 step): every float read '6500.0000' at four."""
    return max(places(value_step(p)), places(v) if isinstance(v, (int, float)) else 0)


def _nice(x: float) -> float:
    """x rounded down to 1, 2 or 5 times a power of ten."""
    e = 10.0 ** math.floor(math.log10(x))
    return next(m * e for m in (5, 2, 1) if m * e <= x * (1 + 1e-9))


def drag_rate(p) -> float:
    """How much a field dragged on the canvas changes per screen pixel at normal speed (Shift a tenth,
    Ctrl ten times, as in Nuke and Blender): a declared step every 4 pixels, else a thousandth of the range
    (exposure -6..6: 0.01 a pixel; it was the whole range across the node, 80 px = 5 stops), whole
    numbers between a tenth and one a pixel."""
    if p.step:
        return float(p.step) / 4
    ranged = p.min is not None and p.max is not None and p.max > p.min
    rate = _nice(_span(p) / 1000) if ranged else value_step(p) / 4
    return min(1.0, max(0.1, rate)) if p.type == "int" else rate


def zero_meaning(p) -> Optional[str]:
    """The word a number's declaration gives its 0 (Param.zero: "all", "auto", "off"), for fields to show: Load
    Video's count showed 0, as if no frame were read, where it reads them all. None where 0 is a value like any
    other: a timestep range's start 0 (from pure noise) or a radius 0 showed "auto" when the help was read for it."""
    return (getattr(p, "zero", "") or None) if p.type in ("int", "float") else None


def nearest_toward(origin: Tuple[float, float], centres: dict, dx: int, dy: int) -> Optional[str]:
    """The key of the centre nearest `origin` in direction (dx, dy) (one of them 0, the other ±1):
    distance along the direction plus twice the distance across it, so the node straight to the
    right wins over a nearer one far above."""
    best, score = None, None
    for key, (x, y) in centres.items():
        vx, vy = x - origin[0], y - origin[1]
        along = vx * dx + vy * dy
        if along <= 1.0:
            continue
        s = along + 2 * abs(vx * dy + vy * dx)
        if score is None or s < score:
            best, score = key, s
    return best
