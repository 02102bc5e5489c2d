"""Seams of long videos from a 16-frame model: overlap-fused context windows vs batched windows.

Runs examples/tiny/long_context.yaml (kinograph-mini, trained on 16 frames) at 64 frames with
the same prompt, seed and noise under four window schemes: batched (independent 16-frame
chunks: the anchor), static windows overlapping by 4 fused with linear cross-fades, uniform
looped windows with pyramid weights, and the static windows again with guide.subject_consensus
over the fused 64 frames; once with FreeNoise noise (the example's) and once with i.i.d. noise.
Prints, for each:

    seam    metrics.seam at the scheme's OWN window boundaries (every frame where one of its
            windows begins or ends, nodes.consistency.context_windows.window_boundaries; uniform
            windows move every step, so theirs are only step 0's): the frame difference there
            over the median elsewhere, 1 = seamless,
    peak    the largest frame step anywhere over the median step, and where: needs no idea of
            where the seams are, so it judges every scheme alike,
    drift   the colour drift slope,
    area    the largest deviation of the object's area from its median over the clip, the object
            found by the colour the prompt names (bench/mini_lab/colour_area.py; the detector's
            area shares guide.subject_consensus's definition of a subject, so it cannot judge it);
            the prompt's circle moving right can leave the frame and come back in 64 frames (with
            the example's FreeNoise it does, at frames 25-26 and 49-50), which reads 100%: look at
            the clip before reading a large value as a change of size,

and the time, then checks that a repeated run is bit-identical.

    python bench/consistency.py [--frames 64] [--steps 20] [--seed 42] [--model DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCHEMES = [
    ("batched (anchor)", {"schedule": "batched", "overlap": 0, "fuse": "flat"}, 0.0),
    ("static, overlap 4, overlap_linear", {"schedule": "static", "overlap": 4, "fuse": "overlap_linear"}, 0.0),
    ("uniform looped, overlap 4, pyramid", {"schedule": "uniform_looped", "overlap": 4, "fuse": "pyramid"}, 0.0),
    ("static + subject consensus 0.5", {"schedule": "static", "overlap": 4, "fuse": "overlap_linear"}, 0.5),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="", help="kinograph-mini folder (default: the bundled one)")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from bench.mini_lab.colour_area import area_variation, colour_areas
    from graph_engine.api import Session, load_workflow
    from nodes.consistency.context_windows import context_windows, window_boundaries
    from nodes.mini.shapes_world import parse_caption

    torch.set_num_threads(2)
    wf = load_workflow(ROOT / "examples" / "tiny" / "long_context.yaml")
    wf.set("load.path", args.model)
    wf.set("latent.frames", args.frames)
    wf.set("sample.steps", args.steps)
    wf.set("noise.seed", args.seed)
    wf.set("sample.seed", args.seed)
    # Strength 0 leaves the sampling exactly as without the node (tests/test_subject_consensus.py).
    wf.graph.add_node("guide.subject_consensus", "subject", {"strength": 0.0})
    wf.graph.connect("windows", "model", "subject", "model")
    wf.graph.connect("subject", "model", "sample", "model")
    prompt = wf.graph.nodes["prompt"].params["text"]
    colour = parse_caption(prompt).objects[0].colour
    length = wf.graph.nodes["windows"].params["length"]
    targets = ["seam", "drift", "decode"]
    print(f"kinograph-mini, {args.frames} frames from {length}-frame windows, {args.steps} steps, seed {args.seed}, "
          f"prompt {prompt!r}")
    print("seam = frame difference where the scheme's windows begin or end over the median elsewhere (1 = seamless);"
          " peak = largest frame step over the median step")
    for noise in ("freenoise", "independent"):
        if noise == "independent":
            wf.graph.disconnect("sample", "noise")  # sample then draws seeded i.i.d. noise itself
        print(f"-- {noise} noise")
        for name, params, strength in SCHEMES:
            for key, value in params.items():
                wf.set(f"windows.{key}", value)
            wf.set("subject.strength", strength)
            bounds = window_boundaries(context_windows(params["schedule"], args.frames, length, params["overlap"]),
                                       args.frames)
            wf.set("seam.every", 0)
            wf.set("seam.boundaries", ", ".join(map(str, bounds)))
            t0 = time.perf_counter()
            res = Session(use_disk=False).run(wf, targets=targets, use_cache=False)
            secs = time.perf_counter() - t0
            if not res.ok:
                sys.exit(f"{name}: {res.failed}")
            seam, drift = res.results["seam"], res.results["drift"]["slope"]
            area = area_variation(colour_areas(np.asarray(res.outputs["decode"]["video"].frames(0, args.frames)),
                                               colour))
            print(f"{name:36s} seam {seam['seam']:5.2f}  peak {seam['peak']:5.2f} at {seam['peak_at']:3d}  "
                  f"colour drift {drift:+.3f} dE/frame  area {area:6.1%}  {secs:6.1f} s")
    last = res.outputs["sample"]["latent"].samples
    again = Session(use_disk=False).run(wf, targets=["sample"], use_cache=False).outputs["sample"]["latent"].samples
    print(f"repeat of the last run, same seed: {'bit-identical' if torch.equal(again, last) else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
