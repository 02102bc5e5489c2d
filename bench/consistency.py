"""Seams of long videos from a 16-frame model: overlap-fused context windows vs batched windows.

Runs examples/tiny/long_context.yaml (kinograph-mini, trained on 16 frames) at 64 frames with
the same prompt, seed and noise under three window schemes: batched (independent 16-frame
chunks: the anchor), static windows overlapping by 4 fused with linear cross-fades, and
uniform looped windows with pyramid weights, and the static windows again with
guide.subject_consensus over the fused 64 frames; once with FreeNoise noise (the example's) and
once with i.i.d. noise. Prints, for each, the seam metric at the chunk boundaries 16/32/48 (frame
difference there over the median elsewhere; 1 = seamless), the colour drift slope, the largest
deviation of the object's area from its median over the whole clip (the kinograph-mini detector)
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

    from graph_engine.api import Session, load_workflow
    from bench.mini_lab.detector import detect

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
    targets = ["seam", "drift", "decode"]
    print(f"kinograph-mini, {args.frames} frames from 16-frame windows, {args.steps} steps, seed {args.seed}, "
          f"prompt {wf.graph.nodes['prompt'].params['text']!r}")
    print("seam = mean frame difference at every 16th frame over the median elsewhere (1 = seamless)")
    for noise in ("freenoise", "independent"):
        if noise == "independent":
            wf.graph.disconnect("sample", "noise")  # sample then draws seeded i.i.d. noise itself
        print(f"-- {noise} noise")
        anchor = None
        for name, params, strength in SCHEMES:
            for key, value in params.items():
                wf.set(f"windows.{key}", value)
            wf.set("subject.strength", strength)
            t0 = time.perf_counter()
            res = Session(use_disk=False).run(wf, targets=targets, use_cache=False)
            secs = time.perf_counter() - t0
            if not res.ok:
                sys.exit(f"{name}: {res.failed}")
            seam, drift = res.results["seam"]["seam"], res.results["drift"]["slope"]
            area = detect(np.asarray(res.outputs["decode"]["video"].frames(0, args.frames))).area_variation()
            anchor = anchor or seam
            print(f"{name:36s} seam {seam:6.2f} ({seam / anchor:4.2f}x anchor)  colour drift {drift:+.3f} "
                  f"dE/frame  area {area:6.1%}  {secs:6.1f} s")
    last = res.outputs["sample"]["latent"].samples
    again = Session(use_disk=False).run(wf, targets=["sample"], use_cache=False).outputs["sample"]["latent"].samples
    print(f"repeat of the last run, same seed: {'bit-identical' if torch.equal(again, last) else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
