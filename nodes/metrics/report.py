"""metrics.report: several metric series in one JSON file and one PNG chart."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import List

from graph_engine import NodeError
from graph_engine.atomic import write_text
from nodes.metrics import measures, series
from nodes.metrics.chart import write_chart


def write_report(ctx, video, names: List[str], path: str, reference=None, source=None,
                 overwrite: bool = False, channels: str = "rgb") -> dict:
    unknown = [n for n in names if n not in series.SERIES]
    if unknown or not names:
        raise NodeError(f"metrics.report: unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from {', '.join(series.SERIES)}")
    if not path:
        raise NodeError("metrics.report: set path to the JSON file to write")
    if Path(path).suffix.lower() in (".csv", ".png"):
        # The table and the chart are written beside the JSON with these endings: one of them would replace it.
        raise NodeError(f"metrics.report: path {path!r} names the JSON file (the .csv table and .png chart go "
                        f"beside it); give it a .json ending")
    why = {n: "needs a reference clip" for n in names if n in series.NEEDS_REFERENCE and reference is None}
    if "ssim" in names and "ssim" not in why and min(video.size) < measures.SSIM_WINDOW:
        # The report's other numbers are still worth having: one small clip failed the whole report.
        why["ssim"] = f"frames smaller than {measures.SSIM_WINDOW}x{measures.SSIM_WINDOW} pixels (SSIM's window)"
    if video.length < 2:
        # A pairwise series of a one-frame clip is empty: its value was a bare null, with no word of why.
        why.update({n: f"compares each frame with the one before; the clip has {video.length} frame"
                    for n in names if n in series.PAIRWISE})
    skipped = list(why)
    measured = [n for n in dict.fromkeys(names) if n not in skipped]
    # One pass for all of them: the clip's frames (and the chain that computes them) are pulled once.
    values = series.series_of(ctx, measured, video, reference, source, what="metrics.report",
                              channels=channels) if measured else {}
    results = {name: _result(name, values[name], channels) for name in measured}
    for name, r in results.items():
        if "identical_note" in r:
            ctx.log(f"metrics.report: {name}: {r['identical_note']}")
    out = Path(path)
    chart, table = out.with_suffix(".png"), out.with_suffix(".csv")
    doc = {"frames": video.length, "width": video.width, "height": video.height, "fps": video.fps,
           "metrics": results, "skipped": why}
    write_text(out, json.dumps(doc, indent=1), overwrite=overwrite)
    write_text(table, _table(results, video.length, video.fps), overwrite=overwrite)
    write_chart(str(chart), {k: values[k] for k in results},
                {k: v["first_frame"] for k, v in results.items()}, overwrite=overwrite, meta=results)
    return {"json": str(out), "csv": str(table), "chart": str(chart),
            "metrics": {k: v["value"] for k, v in results.items()}, "skipped": skipped}


def _table(results: dict, frames: int, fps: float) -> str:
    """The per-frame values as CSV, one row a frame, one column a metric headed with its unit: what a
    spreadsheet opens (the JSON holds the same numbers nested, with the definitions). Empty cells: not measured,
    or frame 0 of a pairwise metric."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    heads = [k + (" Y" if r.get("channels") == "y" else "") for k, r in results.items()]
    w.writerow(["frame", "time (s)"] + [f"{h} ({r['unit']})" if r["unit"] else h for h, r in zip(heads, results.values())])
    for i in range(frames):
        row = [i, f"{i / fps:.6g}"]
        for r in results.values():
            k = i - r["first_frame"]
            v = r["per_frame"][k] if 0 <= k < len(r["per_frame"]) else None
            row.append("" if v is None else repr(v))
        w.writerow(row)
    return buf.getvalue()


def _result(name: str, values: List[float], channels: str = "rgb") -> dict:
    """One metric's entry: its mean over the frames it measured, the series (null where not measured) and,
    when some frames could not be measured, which and why (a mean that silently skipped them, or an empty
    average that read as a perfect score, would mislead)."""
    first = 1 if name in series.PAIRWISE else 0
    out = {"value": series.summary(values, name), **series.conventions(name, values, channels),
           "per_frame": series.as_json(values), "first_frame": first}
    missing = series.unmeasured(values, first)
    if missing:
        out["unmeasured"] = missing
        out["note"] = (f"{len(missing)} of {len(values)} frames not measured: {series.NOT_MEASURED[name]}; "
                       + ("the value is the mean of the others" if len(missing) < len(values) else "no value"))
    return out
