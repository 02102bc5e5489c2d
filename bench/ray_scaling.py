"""Ray scaling: sharded-render and batch throughput with 1 and 2 workers, same run, same machine.

Workload: a moving test pattern through `restore.denoise` (flow-aligned temporal averaging,
radius 2, so every shard pulls context from its neighbours' frames) into a lossless FFV1
file. Anchor: the same workflow rendered in this process without Ray. Workers are warmed
up first (imports and JIT compilation happen once per worker, as in real use) and the
caches are bypassed, so the figures are steady-state throughput. The sharded output is
checked against the in-process one frame for frame.

Each sharded line also gives the shards' busy worker-seconds over the wall time: how many
workers really ran at once (on a machine shared with other work this, not the frame rate,
shows whether the second worker got a core).

    python bench/ray_scaling.py [--frames 128] [--width 320] [--height 240] [--shards 4]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
_tmp = tempfile.mkdtemp(prefix="kinograph-ray-bench-")
os.environ.setdefault("KINOGRAPH_CACHE_DIR", os.path.join(_tmp, "cache"))

import numpy as np  # noqa: E402

from app.distributed import WorkerPool  # noqa: E402
from app.jobs import payload_of  # noqa: E402
from app.shard import render_sharded  # noqa: E402
from graph_engine.api import Session, load_workflow  # noqa: E402
from graph_engine.registry import default_registry  # noqa: E402
from nodes.io.video_read import load_video  # noqa: E402

WORKFLOW = """\
kinograph: 1
nodes:
  pattern: {{type: generate.test_pattern, params: {{frames: {frames}, width: {width}, height: {height}}}}}
  denoise: {{type: restore.denoise, inputs: {{video: pattern.video}}, params: {{strength: {strength}}}}}
  save: {{type: io.save_video, inputs: {{video: denoise.video}}, params: {{path: {out}, codec: ffv1}}}}
"""


def workflow(folder: Path, name: str, **kw):
    path = folder / f"{name}.yaml"
    path.write_text(WORKFLOW.format(out=f"{name}.mkv", **{"strength": 1.0, **kw}))
    return load_workflow(path), folder / f"{name}.mkv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=4, help="batch cases per worker count")
    a = ap.parse_args()
    import ray
    reg = default_registry()
    folder = Path(_tmp)
    size = dict(width=a.width, height=a.height)

    wf, ref_path = workflow(folder, "anchor", frames=a.frames, **size)
    Session().run(workflow(folder, "warm", frames=8, **size)[0], use_cache=False)      # JIT, imports
    t0 = time.perf_counter()
    res = Session().run(wf, use_cache=False)
    anchor = time.perf_counter() - t0
    assert res.ok, res.failed
    ref = load_video(str(ref_path)).to_array()
    print(f"workload: {a.frames} frames {a.width}x{a.height}, test pattern -> restore.denoise -> ffv1 "
          f"({os.cpu_count()} CPUs on this machine)")
    print(f"in-process, no Ray (anchor):  {a.frames / anchor:7.1f} frames/s  ({anchor:.2f} s)")

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"ray.init (local, 2 CPUs):     {time.perf_counter() - t0:.2f} s")
    jobs = [workflow(folder, f"case{i}", frames=max(8, a.frames // 4), strength=1.0 + 0.25 * i, **size)[0]
            for i in range(a.jobs)]
    try:
        for n in (1, 2):
            t0 = time.perf_counter()
            with WorkerPool(ray, n, gpu_nodes=[], limit=n) as pool:
                warm, _ = workflow(folder, f"warm{n}", frames=8, **size)
                render_sharded(warm, reg, pool, n, emit=lambda e: None, use_cache=False)
                started = time.perf_counter() - t0
                wf, out_path = workflow(folder, f"sharded{n}", frames=a.frames, **size)
                t0 = time.perf_counter()
                out = render_sharded(wf, reg, pool, a.shards, emit=lambda e: None, use_cache=False)
                secs = time.perf_counter() - t0
                assert out["ok"], out["failed"]
                same = np.array_equal(load_video(str(out_path)).to_array(), ref)
                busy = sum(sh["seconds"] for sh in out["shards"])
                print(f"ray, {n} worker{'s' if n > 1 else ' '}, {a.shards} shards: {a.frames / secs:7.1f} frames/s  "
                      f"({secs:.2f} s, {anchor / secs:.2f}x anchor; shards busy {busy:.2f} worker-s = "
                      f"{busy / secs:.2f} workers in parallel; identical to anchor: {same}; "
                      f"workers up and warm in {started:.2f} s)")
                t0 = time.perf_counter()
                calls = [(i, "run", (payload_of(j, reg, False),)) for i, j in enumerate(jobs)]
                results = [r for _, r in pool.imap(calls)]
                secs = time.perf_counter() - t0
                assert all(r["ok"] for r in results), [r["error"] for r in results]
                print(f"ray, {n} worker{'s' if n > 1 else ' '}, batch:    {len(jobs) / secs:7.2f} jobs/s    "
                      f"({len(jobs)} jobs of {max(8, a.frames // 4)} frames in {secs:.2f} s)")
    finally:
        ray.shutdown()
        shutil.rmtree(_tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
