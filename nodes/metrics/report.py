"""metrics.report: several metric series in one JSON file and one PNG chart."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

from graph_engine import NodeError
from graph_engine.atomic import write_text
from nodes.metrics import measures, series
from nodes.metrics.chart import write_chart

# Pairwise series start at the second frame.
PAIRWISE = ("warp_error", "flicker", "motion")


def write_report(ctx, video, names: List[str], path: str, reference=None, source=None,
                 overwrite: bool = False) -> dict:
    unknown = [n for n in names if n not in series.SERIES]
    if unknown or not names:
        raise NodeError(f"metrics.report: unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from {', '.join(series.SERIES)}")
    if not path:
        raise NodeError("metrics.report: set path to the JSON file to write")
    why = {n: "needs a reference clip" for n in names if n in series.NEEDS_REFERENCE and reference is None}
    if "ssim" in names and "ssim" not in why and min(video.size) < measures.SSIM_WINDOW:
        # The report's other numbers are still worth having: one small clip failed the whole report.
        why["ssim"] = f"frames smaller than {measures.SSIM_WINDOW}x{measures.SSIM_WINDOW} pixels (SSIM's window)"
    skipped = list(why)
    measured = [n for n in dict.fromkeys(names) if n not in skipped]
    # One pass for all of them: the clip's frames (and the chain that computes them) are pulled once.
    values = series.series_of(ctx, measured, video, reference, source, what="metrics.report") if measured else {}
    results = {name: {"value": series.summary(values[name]), "per_frame": [float(v) for v in values[name]],
                      "first_frame": 1 if name in PAIRWISE else 0} for name in measured}
    out = Path(path)
    chart = out.with_suffix(".png")
    doc = {"frames": video.length, "width": video.width, "height": video.height, "fps": video.fps,
           "metrics": results, "skipped": why}
    write_text(out, json.dumps(doc, indent=1), overwrite=overwrite)
    write_chart(str(chart), {k: v["per_frame"] for k, v in results.items()},
                {k: v["first_frame"] for k, v in results.items()}, overwrite=overwrite)
    return {"json": str(out), "chart": str(chart), "metrics": {k: v["value"] for k, v in results.items()},
            "skipped": skipped}
