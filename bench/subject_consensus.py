"""guide.subject_consensus beyond the held-out set: does it keep what it should and fix what it should?

    python bench/subject_consensus.py [--strength 0.5] [--seed 0] [--threads 2]

60 single-object captions: every motion of the shapes world (moving in 8 directions, growing,
shrinking, bouncing, standing still) in five settings (plain dark, a plain coloured background, a
gradient background, a panning camera, a zooming camera). kinograph-mini draws each with and without the consensus
(the model alone is the anchor) and every clip is read, next to the reading of ground-truth clips
of the same captions:

    colour+shape      the named colour and shape (the classical detector),
    area within 10%   the object's area in every frame within 10% of the clip median (all but
                      growing/shrinking and zooms), the object found by the caption's colour
                      (bench/mini_lab/colour_area.py: not the consensus's own idea of a subject),
    detector area     the same, by the detector's area (which shares the consensus's definition),
    growth kept       growing/shrinking: the area of the last 3 frames against the first 3 changes by
                      at least 2x in the caption's sense,
    zoom              zooms: the median over clips of that area ratio (zooming out inverted), which
                      the consensus should keep,
    warp error        metrics.warp_error between neighbouring frames,
and the sampling time of the 60 clips.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (background kind or None, camera move or None) of the five settings.
SETTINGS = ((None, None), ("plain", None), ("gradient", None), (None, "panning"), (None, "zooming"))


def captions(seed: int) -> list[str]:
    from nodes.mini.shapes_world import COLOURS, DIRECTIONS, MOTIONS, SHAPES, ObjectSpec, SceneSpec, caption
    rng = np.random.default_rng(seed)
    out = []
    for kind, camera in SETTINGS:
        for motion in MOTIONS:
            colour, bg = (str(c) for c in rng.choice(list(COLOURS), size=2, replace=False))
            shape, pan, zoom = str(rng.choice(SHAPES)), str(rng.choice(list(DIRECTIONS))), str(rng.choice(["in", "out"]))
            move = {"panning": f"panning {pan}", "zooming": f"zooming {zoom}"}.get(camera, "static")
            out.append(caption(SceneSpec((ObjectSpec(colour, shape, motion),), (kind, bg) if kind else None, move)))
    return out


def read(clips, caps) -> dict:
    from bench.mini_lab.colour_area import area_variation, colour_areas
    from bench.mini_lab.detector import detect
    from bench.mini_lab.evaluate import clip_warp_error
    from nodes.mini.shapes_world import parse_caption
    shape_ok, area_ok, detector_area_ok, growth_ok, zooms = [], [], [], [], []
    for clip, cap in zip(clips, caps):
        scene = parse_caption(cap)
        obj = scene.objects[0]
        d = detect(clip)
        shape_ok.append(d.colour == obj.colour and d.shape == obj.shape)
        areas = colour_areas(clip, obj.colour)
        ratio = areas[-3:].mean() / max(areas[:3].mean(), 1e-6)
        if obj.motion in ("growing", "shrinking"):
            growth_ok.append(ratio >= 2 if obj.motion == "growing" else ratio <= 0.5)
        elif scene.camera.startswith("zooming"):
            zooms.append(ratio if scene.camera == "zooming in" else 1 / max(ratio, 1e-6))
        else:
            area_ok.append(area_variation(areas) <= 0.10)
            detector_area_ok.append(d.area_variation() <= 0.10)
    return {"colour+shape": np.mean(shape_ok), "area within 10%": np.mean(area_ok),
            "detector area": np.mean(detector_area_ok),
            "growth kept": np.mean(growth_ok), "zoom": np.median(zooms),
            "warp error": np.mean([clip_warp_error(c) for c in clips])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strength", type=float, default=None, help="default: the example graphs' strength")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    from bench.mini_lab.evaluate import DEFAULT_MODEL
    from nodes.mini.generate import DEFAULT_CONSENSUS, generate
    from nodes.mini.model import load_mini
    from nodes.mini.shapes_world import parse_caption, render

    torch.set_num_threads(args.threads)
    strength = DEFAULT_CONSENSUS if args.strength is None else args.strength
    model, text_encoder = load_mini(DEFAULT_MODEL)
    caps = captions(args.seed)
    rows = [("ground truth", read([render(parse_caption(c), args.seed + i) for i, c in enumerate(caps)], caps),
             None)]
    for label, s in (("model alone (anchor)", 0.0), (f"consensus {strength:g}", strength)):
        t0 = time.perf_counter()
        clips = np.concatenate([generate(model, text_encoder, caps[i:i + 16], seed=args.seed + i, consensus=s)
                                for i in range(0, len(caps), 16)])
        rows.append((label, read(clips, caps), time.perf_counter() - t0))
    print(f"{len(caps)} single-object captions ({len(SETTINGS)} settings x {len(caps) // len(SETTINGS)} motions), 20 steps, seed {args.seed}")
    print(f"{'':22}{'colour+shape':>13}{'area within 10%':>17}{'detector area':>15}{'growth kept':>13}{'zoom':>7}"
          f"{'warp error':>12}{'time':>9}")
    for label, r, seconds in rows:
        print(f"{label:22}{r['colour+shape']:>13.1%}{r['area within 10%']:>17.1%}{r['detector area']:>15.1%}"
              f"{r['growth kept']:>13.1%}"
              f"{r['zoom']:>6.2f}x{r['warp error']:>12.4f}" + (f"{seconds:>8.1f}s" if seconds is not None else ""))


if __name__ == "__main__":
    main()
