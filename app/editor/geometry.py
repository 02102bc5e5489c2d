"""Node geometry shared by the painter, hit-testing and auto-layout (which runs before any item exists)."""
from __future__ import annotations

import re
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


ZERO_MEANS = re.compile(r"\b0 = (the |use |from |automatic|whole|keep|follow |estimate|each )|\b0: (from )"
                        r"|\b0 = (off|none)\b|\b0 ?[:=] (all\b|to (?:the|its) end)")


def zero_meaning(p) -> Optional[str]:
    """"auto", "off" or "all" for a number whose help says what 0 stands for, so fields say it too: Load
    Video's count showed 0 (as if no frame were read) where it reads them all, Resize's height 0 where it
    follows the width."""
    m = ZERO_MEANS.search(p.help or "") if p.type in ("int", "float") else None
    return None if m is None else "auto" if m.group(1) or m.group(2) else "off" if m.group(3) else "all"


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
