"""Stylization benchmark: does stylize.temporal stop per-frame stylizations from shimmering?

Footage: real photographs filmed by a moving camera with moving objects and sensor noise
(bench.footage), or with --clip one of the real camera clips of bench/interpolation_real.py. Each classical stylization is run frame by frame, then through
stylize.temporal (flow from the source clip). Scored by metrics.warp_error (Lai et al.'s
E_warp: each frame vs the previous one warped by flow, occlusions masked; the metric uses
a finer flow preset than the filter). Anchor: the per-frame stylization in the same run;
the source clip's own warping error is the floor set by the flow and the sensor noise.
Also printed: PSNR of the stabilized result against the per-frame stylization, which shows
how far the look moved.

    python -m bench.stylize [--frames 48] [--width 480] [--height 270] [--seed 5] [--clip city]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from bench.footage import footage
from graph_engine import Clip
from nodes.metrics import series
from nodes.common.stream import map_frames
from nodes.stylize import filters
from nodes.stylize.kuwahara import kuwahara
from nodes.stylize.temporal import temporal_clip

STYLES = {
    "painterly (cv2.stylization)": lambda f: filters.painterly(f, "stylization"),
    "kuwahara r=5": lambda f: kuwahara(f, 5),
    "cartoon": lambda f: filters.cartoon(f),
    "ink (DoG lines)": lambda f: filters.sketch(f, "ink"),
}


def run(frames: int, width: int, height: int, seed: int, clip: str = "") -> None:
    if clip:
        from bench.interpolation_real import real_clip
        src = Clip.from_array(real_clip(clip, frames), fps=24)
        what = f"real clip {clip}, {src.length} frames {src.width}x{src.height}"
    else:
        src = Clip.from_array(footage(frames, width, height, seed=seed), fps=24)
        what = f"{frames} frames {width}x{height} (bench.footage seed {seed})"
    floor = series.summary(series.warp_error(None, src))
    print(f"footage: {what}; source warp error {floor * 1e3:.3f}e-3")
    print(f"{'style':30s} {'per-frame':>10s} {'temporal':>10s} {'reduction':>10s} {'RMS red.':>9s} "
          f"{'PSNR vs per-frame':>18s} {'time':>6s}")
    for name, fn in STYLES.items():
        per_frame = Clip.from_array(map_frames(None, src, fn).to_array(), fps=24)
        t = time.perf_counter()
        stable = Clip.from_array(temporal_clip(None, per_frame, src).to_array(), fps=24)
        dt = time.perf_counter() - t
        e0 = series.summary(series.warp_error(None, per_frame, src))
        e1 = series.summary(series.warp_error(None, stable, src))
        psnr = series.summary(series.psnr(None, stable, per_frame), "psnr")
        print(f"{name:30s} {e0 * 1e3:8.3f}e-3 {e1 * 1e3:8.3f}e-3 {100 * (1 - e1 / e0):9.1f}% "
              f"{100 * (1 - np.sqrt(e1 / e0)):8.1f}% {psnr:15.2f} dB {dt:5.1f}s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=270)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--clip", default="", help="a real clip of bench/interpolation_real.py instead (bikes, city, ...)")
    a = ap.parse_args()
    run(a.frames, a.width, a.height, a.seed, a.clip)
