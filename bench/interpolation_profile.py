"""Where interpolate.flow's time goes on a clip of bench/interpolation_real.py: thread CPU per
in-between of each step, as a tree of the calls that made it (the pool's threads added together).

Each step named in STEPS is wrapped (for the run only) by a timer of its thread's CPU time
(time.thread_time_ns): on a machine others share, wall time swings with their load, a thread's CPU
time much less. A step's figure includes its children's; "(own)" is what its children leave (numpy
glue, OpenCV calls not named here). The run is the bench's (every other frame of FRAMES frames
dropped, the default settings); the figures are the run with the least wall time of --runs.

    python bench/interpolation_profile.py [--clip carphone] [--runs 5]
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.interpolation_real import CLIPS, FRAMES, ours, real_clip  # noqa: E402

# (module, attribute) of each step timed. Functions are replaced where their callers look them
# up: flow_interp imports the flow steps by name, so those are wrapped in its namespace.
STEPS = {
    "nodes.interpolate.schedule": ["_Reader.link", "_Reader.render", "_Reader.prepare", "_Reader.is_cut",
                                   "colour_histogram", "structure_mismatch"],
    "nodes.interpolate.flow_interp": ["FlowSynth.prepare_frame", "FlowSynth.prepare_link", "FlowSynth.prepare",
                                      "FlowSynth.motion_at", "estimate_flow", "layered_flows", "border_layers",
                                      "fuse_directions", "adopt_nearby", "forward_splat", "fill_holes", "_smoothed",
                                      "_bend", "_extra", "_spread"],
    "nodes.interpolate.kernels": ["confidence", "tile_motions", "hypothesis_fields", "candidate_costs", "pick",
                                  "outer_mismatch", "warp_blend"],
}


class Tree:
    """Thread CPU per call path (a tuple of step names), over every thread."""

    def __init__(self):
        self.cpu = defaultdict(int)
        self.calls = defaultdict(int)
        self.lock = threading.Lock()
        self.local = threading.local()

    def wrap(self, fn, name):
        def timed(*args, **kw):
            path = getattr(self.local, "path", ()) + (name,)
            self.local.path = path
            t = time.thread_time_ns()
            try:
                return fn(*args, **kw)
            finally:
                spent = time.thread_time_ns() - t
                self.local.path = path[:-1]
                with self.lock:
                    self.cpu[path] += spent
                    self.calls[path] += 1
        return timed

    def install(self):
        import importlib
        for module, names in STEPS.items():
            mod = importlib.import_module(module)
            for name in names:
                owner, attr = (getattr(mod, name.split(".")[0]), name.split(".")[1]) if "." in name else (mod, name)
                setattr(owner, attr, self.wrap(getattr(owner, attr), name.lstrip("_")))

    def reset(self):
        self.cpu.clear()
        self.calls.clear()

    def lines(self, per: int) -> list:
        out = []

        def walk(prefix, depth):
            kids = sorted((p for p in self.cpu if p[:-1] == prefix), key=lambda p: -self.cpu[p])
            for p in kids:
                out.append(f"{'  ' * depth}{p[-1]:{34 - 2 * depth}s} {self.cpu[p] / 1e6 / per:7.3f} ms"
                           f"  ({self.calls[p]} calls)")
                walk(p, depth + 1)
                below = sum(self.cpu[k] for k in self.cpu if k[:-1] == p)
                if below and self.cpu[p] - below > 0.02 * self.cpu[p]:
                    out.append(f"{'  ' * (depth + 1)}{'(own)':{32 - 2 * depth}s} {(self.cpu[p] - below) / 1e6 / per:7.3f} ms")
        walk((), 0)
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="carphone", choices=list(CLIPS))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    kept = real_clip(args.clip, FRAMES)[0::2]
    tree = Tree()
    tree.install()
    ours(kept[:3])          # compile the numba kernels outside the timing
    best = None
    for _ in range(args.runs):
        tree.reset()
        wall, cpu = time.perf_counter(), time.process_time()
        ours(kept)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if best is None or wall < best[0]:
            best = (wall, cpu, tree.lines(len(kept) - 1))
    wall, cpu, lines = best
    n = len(kept) - 1
    print(f"{args.clip} ({kept.shape[2]}x{kept.shape[1]}), {n} in-betweens: wall {wall * 1e3:.0f} ms, process CPU "
          f"{cpu * 1e3:.0f} ms ({cpu / n * 1e3:.1f} ms an in-between); thread CPU per in-between:")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
