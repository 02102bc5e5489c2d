"""The engine's own overhead: per node on a 200-node graph (first run and cached re-run),
against calling the same node functions directly in a loop, and memory over 50 runs of a
video workflow in one process (what the editor does all day)."""
from __future__ import annotations

import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graph_engine import Param, node  # noqa: E402
from graph_engine.cache import DiskCache  # noqa: E402
from graph_engine.executor import Executor  # noqa: E402
from graph_engine.registry import Registry  # noqa: E402
from graph_engine.types import FLOAT  # noqa: E402
from graph_engine.workflow import parse_workflow  # noqa: E402

N = 200


@node("bench.const", category="Bench")
def const(ctx, value: float = Param(1.0)) -> FLOAT:
    """A constant."""
    return value


@node("bench.inc", category="Bench")
def inc(ctx, a: FLOAT, step: float = Param(1.0, min=0, max=10)) -> FLOAT:
    """a + step."""
    return a + step


def graph_text(n: int) -> str:
    lines = ["kinograph: 1", "nodes:", "  n0: {type: bench.const, params: {value: 0.0}}"]
    for i in range(1, n):
        # A chain with some fan-in so keys depend on more than one parent.
        lines.append(f"  n{i}: {{type: bench.inc, inputs: {{a: n{i - 1}.float}}, params: {{step: {i % 7}.0}}}}")
    return "\n".join(lines) + "\n"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    reg = Registry()
    reg.register(const, inc)
    wf, problems = parse_workflow(graph_text(N), None, reg)
    assert not problems
    with tempfile.TemporaryDirectory() as d:
        ex = Executor(reg, disk=DiskCache(Path(d), 1 << 30))
        t = time.perf_counter()
        ex.run(wf)
        first = time.perf_counter() - t
        reps = 20
        t = time.perf_counter()
        for _ in range(reps):
            r = ex.run(wf)
        cached = (time.perf_counter() - t) / reps
        assert r.ok and not r.executed
        t = time.perf_counter()
        for _ in range(reps):
            v = const(None, 0.0)
            for i in range(1, N):
                v = inc(None, v, float(i % 7))
        direct = (time.perf_counter() - t) / reps
    print(f"engine first run {N} nodes: {first * 1e3:.1f} ms ({first / N * 1e3:.3f} ms/node)")
    print(f"engine cached re-run {N} nodes: {cached * 1e3:.1f} ms ({cached / N * 1e3:.3f} ms/node, target < 0.2) "
          f"| direct calls {direct * 1e3:.2f} ms")

    from graph_engine.api import Session, load_workflow
    with tempfile.TemporaryDirectory() as d:
        video_wf = load_workflow(text=f"""
kinograph: 1
nodes:
  p: {{type: generate.test_pattern, params: {{frames: 48, width: 256, height: 256}}}}
  r: {{type: video.resize, inputs: {{video: p.video}}, params: {{width: 128, height: 0}}}}
  save: {{type: io.save_video, inputs: {{video: r.video}}, params: {{path: {d}/o.mp4, codec: ffv1}}}}
""")
        s = Session(use_disk=False, memory_budget=256 << 20)
        samples = []
        for i in range(50):
            video_wf.graph.set_param("p", "frames", 48 + i % 5)      # vary so nodes really re-run
            assert s.run(video_wf).ok
            gc.collect()
            samples.append(rss_mb())
        print(f"50 runs of a video workflow in one process: RSS after run 5 {samples[4]:.0f} MB, run 25 "
              f"{samples[24]:.0f} MB, run 50 {samples[49]:.0f} MB; memory cache {s.executor.memory.bytes / 2**20:.1f} MB "
              f"of {s.executor.memory.budget / 2**20:.0f} MB budget")


if __name__ == "__main__":
    main()
