"""A PNG chart of per-frame metric series, drawn with OpenCV (no plotting library needed).

One panel per series, stacked: the curve, its mean as a dashed line, the value range on the
left and the frame range along the bottom."""
from __future__ import annotations

from typing import Dict, List

import cv2
import numpy as np

PANEL_H, WIDTH, MARGIN_L, MARGIN_R, MARGIN_T = 150, 900, 90, 20, 28
BG, GRID, TEXT = (255, 255, 255), (225, 225, 225), (40, 40, 40)
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (23, 190, 207)]
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def panel_label(name: str, vals: np.ndarray, meta: dict = None) -> str:
    """A panel's title: the metric, its unit, the value the report gives (not a mean of the drawn points: PSNR's
    value leaves identical frames out) and what is not drawn."""
    meta = meta or {}
    unit = f" ({meta['unit']})" if meta.get("unit") else ""
    shown = ~np.isnan(vals)
    shown[list(meta.get("identical", []))] = False
    value = meta.get("value", float(vals[shown].mean()) if shown.any() else None)
    hidden = len(meta.get("identical", []))
    gaps = int((~shown).sum()) - hidden
    notes = (f"   ({hidden} identical to the reference: infinite, not drawn)" if hidden else "") + \
        (f"   ({gaps} not measured)" if gaps else "")
    return f"{name}{unit}   " + ("not measured" if value is None else f"mean {_fmt(value)}") + notes


def draw_chart(series: Dict[str, List[float]], offsets: Dict[str, int] = None,
               meta: Dict[str, dict] = None) -> np.ndarray:
    """RGB image of the series; offsets[name] is the frame index of a series' first value; meta[name] the
    report's value, unit and identical frames (PSNR's, left out of the curve and its scale: drawn at the
    100 dB cap they flattened every other frame to the bottom of the panel)."""
    names = [k for k, v in series.items() if v]
    img = np.full((max(1, len(names)) * PANEL_H + 30, WIDTH, 3), BG, np.uint8)
    if not names:
        cv2.putText(img, "no per-frame series", (20, 40), FONT, 0.6, TEXT, 1, cv2.LINE_AA)
        return img
    last = max(len(series[k]) + (offsets or {}).get(k, 0) for k in names)
    x0, x1 = MARGIN_L, WIDTH - MARGIN_R
    for p, name in enumerate(names):
        vals = np.asarray(series[name], np.float64)
        info = (meta or {}).get(name, {})
        vals[list(info.get("identical", []))] = np.nan
        off = (offsets or {}).get(name, 0)
        top, bottom = p * PANEL_H + MARGIN_T, (p + 1) * PANEL_H - 8
        cv2.rectangle(img, (x0, top), (x1, bottom), GRID, 1)
        seen = ~np.isnan(vals)          # NaN: a frame the metric could not measure, left as a gap
        if not seen.any():
            cv2.putText(img, panel_label(name, vals, info), (x0, top - 8), FONT, 0.5, TEXT, 1, cv2.LINE_AA)
            continue
        lo, hi = float(vals[seen].min()), float(vals[seen].max())
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        xs = x0 + (np.arange(len(vals)) + off) / max(1, last - 1) * (x1 - x0)
        ys = bottom - (np.where(seen, vals, lo) - lo) / (hi - lo) * (bottom - top)
        colour = COLOURS[p % len(COLOURS)]
        pts = np.round(np.stack([xs, ys], -1)).astype(np.int32)
        for run in np.split(np.arange(len(vals)), np.flatnonzero(np.diff(seen.astype(np.int8))) + 1):
            if not seen[run[0]]:
                continue
            if len(run) > 1:
                cv2.polylines(img, [pts[run]], False, colour, 2, cv2.LINE_AA)
            else:
                cv2.circle(img, tuple(int(v) for v in pts[run[0]]), 3, colour, -1, cv2.LINE_AA)
        mean = info.get("value", float(vals[seen].mean()))
        mean_y = int(round(bottom - (mean - lo) / (hi - lo) * (bottom - top)))
        for xa in range(x0, x1, 12):
            cv2.line(img, (xa, mean_y), (min(xa + 6, x1), mean_y), (120, 120, 120), 1)
        cv2.putText(img, panel_label(name, vals, info), (x0, top - 8), FONT, 0.5, TEXT, 1, cv2.LINE_AA)
        cv2.putText(img, _fmt(hi), (6, top + 12), FONT, 0.4, TEXT, 1, cv2.LINE_AA)
        cv2.putText(img, _fmt(lo), (6, bottom), FONT, 0.4, TEXT, 1, cv2.LINE_AA)
    y = len(names) * PANEL_H + 18
    cv2.putText(img, "frame 0", (x0, y), FONT, 0.4, TEXT, 1, cv2.LINE_AA)
    cv2.putText(img, f"frame {last - 1}", (x1 - 80, y), FONT, 0.4, TEXT, 1, cv2.LINE_AA)
    return img


def write_chart(path: str, series: Dict[str, List[float]], offsets: Dict[str, int] = None,
                overwrite: bool = False, meta: Dict[str, dict] = None) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(draw_chart(series, offsets, meta), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode the chart for {path}")
    from graph_engine.atomic import write_bytes
    write_bytes(path, buf.tobytes(), overwrite=overwrite)
