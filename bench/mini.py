"""kinograph-mini: prompt adherence on the 40 held-out captions and the time to make one clip.

    python bench/mini.py [--model DIR] [--steps 20] [--guidance 2.5] [--threads 2]

1. `bench.mini_lab.evaluate`: the classical detector reads colour, shape, direction and area from the
   generated clips, next to the same reading of ground-truth shapes-world clips of the same
   captions (the anchor: what the detector can reach at best).
   Both with and without guide.subject_consensus (the example graphs use it).
2. One 16-frame 48x48 clip through examples/mini_text_to_video.yaml (prompt encoding, sampling with
   subject consensus, decoding, caching off) against the bare sampling function on the same model
   with the same consensus, and without it (what the consensus costs): median of 3.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    from bench.mini_lab.evaluate import DEFAULT_MODEL
    from bench.mini_lab.evaluate import main as evaluate_main
    from nodes.mini.generate import DEFAULT_GUIDANCE, DEFAULT_STEPS, generate

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    evaluate_main(["--model", str(args.model), "--steps", str(args.steps), "--guidance", str(args.guidance),
                   "--threads", str(args.threads)])

    import numpy as np
    import torch

    from graph_engine.api import Session, load_workflow
    from nodes.mini.model import load_mini

    torch.set_num_threads(args.threads)
    wf = load_workflow(ROOT / "examples" / "mini_text_to_video.yaml")
    wf.set("load.path", str(args.model))
    wf.set("sample.steps", args.steps)
    wf.set("sample.cfg", args.guidance)
    prompt = wf.graph.nodes["prompt"].params["text"]
    session = Session(use_disk=False)
    session.run(wf, targets=["decode"])          # loads the model once, as an open editor would have
    graph_times, graph_frames = [], None
    for _ in range(3):
        t0 = time.perf_counter()
        res = session.run(wf, targets=["decode"], use_cache=False)
        graph_times.append(time.perf_counter() - t0)
        graph_frames = res.outputs["decode"]["video"].frames(0, 16)
    model, text_encoder = load_mini(args.model)
    strength = wf.graph.nodes["subject"].params["strength"]
    bare_times = {strength: [], 0.0: []}
    for _ in range(3):
        for consensus, times in bare_times.items():
            t0 = time.perf_counter()
            generate(model, text_encoder, [prompt], seed=0, steps=args.steps, guidance=args.guidance,
                     consensus=consensus)
            times.append(time.perf_counter() - t0)
    print(f"one clip 16x48x48, {args.steps} steps, guidance {args.guidance}, {args.threads} threads: "
          f"graph {statistics.median(graph_times):.2f} s (target <= 3 s) | "
          f"bare sampling function, consensus {strength:g} (anchor) {statistics.median(bare_times[strength]):.2f} s"
          f" | without consensus {statistics.median(bare_times[0.0]):.2f} s | frames {np.asarray(graph_frames).shape}")


if __name__ == "__main__":
    main()
