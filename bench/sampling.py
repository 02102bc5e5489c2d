"""Graph overhead of text-to-video: Kinograph's graph vs the diffusers pipeline, same components.

    python bench/sampling.py [--size 128] [--frames 16] [--steps 8] [--repeats 3] [--threads 1] [--models DIR]

For AnimateDiff (DDIM) and Wan (flow-matching Euler) it builds the tiny random-weight models (or
uses DIR), loads each once through Kinograph's model manager, then times, alternating:
  graph:    the examples/tiny/<family>.yaml workflow up to vae.decode (prompt encoding, empty
            latent, sampling, decoding every frame) run by the engine with caching off;
  pipeline: the diffusers pipeline object the graph uses, called directly with the same prompt,
            seed, steps and guidance, decoding to frames.
It prints the median of each and the overhead, and checks both give the same frames."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

CASES = {"animatediff": dict(sampler="ddim", prompt="a fox running in the snow", cfg=7.5, fps=8.0),
         "wan": dict(sampler="flow_euler", prompt="a fox running in the snow", cfg=5.0, fps=16.0)}


def graph_run(session, wf, n_frames):
    t0 = time.perf_counter()
    res = session.run(wf, targets=["decode"], use_cache=False)
    if not res.ok:
        raise SystemExit(f"graph failed: {res.failed}")
    frames = res.outputs["decode"]["video"].frames(0, n_frames)
    return time.perf_counter() - t0, frames


def pipeline_run(pipe, case, args, frames):
    t0 = time.perf_counter()
    out = pipe(case["prompt"], negative_prompt="", num_frames=frames, height=args.size, width=args.size,
               num_inference_steps=args.steps, guidance_scale=case["cfg"],
               generator=torch.Generator().manual_seed(args.seed), output_type="np").frames[0]
    return time.perf_counter() - t0, np.round(np.asarray(out) * 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--models", default="")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tiny_models import build_all
    from graph_engine.api import Session, load_workflow
    from nodes.generate.model_manager import default_manager

    models = Path(args.models) if args.models else Path(tempfile.mkdtemp(prefix="kinograph-bench-"))
    build_all(models, tuple(CASES))
    print(f"torch threads {torch.get_num_threads()}, {args.size}x{args.size}, steps {args.steps}, "
          f"median of {args.repeats}")
    session = Session(device="cpu")
    for fam, case in CASES.items():
        n = args.frames + 1 if fam == "wan" and args.frames % 4 != 1 else args.frames
        wf = load_workflow(ROOT / "examples" / "tiny" / f"{fam}.yaml", check=False)
        for k, v in {"load.path": str(models / fam), "prompt.text": case["prompt"], "prompt.negative": "",
                     "latent.frames": n, "latent.width": args.size, "latent.height": args.size,
                     "latent.fps": case["fps"], "sample.steps": args.steps, "sample.cfg": case["cfg"],
                     "sample.sampler": case["sampler"], "sample.seed": args.seed}.items():
            wf.set(k, v)
        pipe = default_manager().load(fam, str(models / fam)).pipe
        if fam == "wan":
            from diffusers import FlowMatchEulerDiscreteScheduler
            pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=pipe.scheduler.config.get("flow_shift", 3.0))
        graph_run(session, wf, n)                                 # warm-up: loads, first-call costs
        pipeline_run(pipe, case, args, n)
        g_times, p_times = [], []
        for _ in range(args.repeats):
            g, g_frames = graph_run(session, wf, n)
            p, p_frames = pipeline_run(pipe, case, args, n)
            g_times.append(g)
            p_times.append(p)
        diff = int(np.abs(g_frames.astype(int) - p_frames.astype(int)).max())
        gm, pm = statistics.median(g_times), statistics.median(p_times)
        print(f"{fam:<12} {n} frames  graph {gm:7.3f} s   diffusers pipeline {pm:7.3f} s   "
              f"overhead {100 * (gm - pm) / pm:+6.1f} %   frames max |diff| {diff} "
              f"({'same frames' if diff <= 2 else 'FRAMES DIFFER'})")


if __name__ == "__main__":
    main()
