"""What a re-run costs in the editor after changing only a parameter downstream: one session (an Executor, as the
editor's RunController keeps one) runs a graph, then runs it again twice with color.grade's exposure changed.

The graph: a noisy 1080p clip -> restore.denoise (temporal) -> color.grade -> save_video, a branch of the same
clip -> video.resize -> save_video, and a tiny random-weight wan model -> generate.sample -> vae.decode ->
save_video (built by tests/tiny_models.py; --no-gen leaves it out). Each mode runs in a process of its own:
"before" is the engine as it was (the memory cache holds denoise's lazy clip, whose frames are computed again on
every run; the spill writes every frame of the loader both branches read), "after" is the editor's session now
(graph_engine.keep keeps costly chunks; the spill writes only chunks worth it). Per run: seconds, denoise's own seconds,
the nodes that ran, the process's peak RSS (reset before each run) and the bytes it wrote to disk (/proc/self/io;
the encoders are processes of their own).

    python bench/rerun.py [--frames 300] [--size 1920x1080] [--no-gen]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GRAPH = """kinograph: 1
nodes:
  load: {{type: io.load_video, params: {{path: {src}}}}}
  dn: {{type: restore.denoise, inputs: {{video: load.video}}}}
  grade: {{type: color.grade, inputs: {{video: dn.video}}, params: {{exposure: 0.2}}}}
  save: {{type: io.save_video, inputs: {{video: grade.video}}, params: {{path: {out}/graded.mp4}}}}
  small: {{type: video.resize, inputs: {{video: load.video}}, params: {{width: 640}}}}
  proxy: {{type: io.save_video, inputs: {{video: small.video}}, params: {{path: {out}/proxy.mp4}}}}
"""
GEN = """  wan: {{type: load.wan, params: {{path: {model}}}}}
  prompt: {{type: encode.text, inputs: {{text_encoder: wan.text_encoder}}, params: {{text: a fox in the snow}}}}
  latent: {{type: latent.empty, inputs: {{vae: wan.vae}}, params: {{frames: 9, width: 64, height: 64}}}}
  sample:
    type: generate.sample
    inputs: {{model: wan.model, positive: prompt.positive, negative: prompt.negative, latent: latent.latent}}
    params: {{steps: 4, sampler: flow_euler, seed: 42}}
  decode: {{type: vae.decode, inputs: {{vae: wan.vae, latent: sample.latent}}}}
  gen: {{type: io.save_video, inputs: {{video: decode.video}}, params: {{path: {out}/gen.mp4}}}}
"""


def make_input(path: Path, frames: int, size: str) -> None:
    import imageio_ffmpeg
    # Grain that changes every frame: what a temporal denoiser is for.
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=24", "-vf", "noise=alls=12:allf=t", "-frames:v", str(frames),
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", str(path)],
                   check=True)


def _written() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("write_bytes:")).split()[1])


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1]) / 1024


def child(yaml_path: str, keep: bool, cache: str) -> None:
    os.environ["KINOGRAPH_CACHE_DIR"] = cache
    sys.path.insert(0, str(ROOT))
    import torch
    torch.set_num_threads(1)
    from graph_engine import keep as keeping
    from graph_engine.api import load_workflow
    from graph_engine.executor import Executor
    if not keep:
        keeping.worth_keeping = lambda seconds, nbytes: True        # the spill as it was: every chunk written
    ex = Executor(keep_frames=keep, device="cpu")
    wf = load_workflow(yaml_path)
    runs = []
    for exposure in (0.2, 0.4, 0.6):
        wf.set("grade.exposure", exposure)
        times: dict = {}
        with open("/proc/self/clear_refs", "w") as f:       # the peak from here on
            f.write("5")
        w0, t0 = _written(), time.perf_counter()
        res = ex.run(wf, keep=(), on_event=lambda e: e["event"] == "node_time" and times.update({e["node"]: e["seconds"]}))
        if not res.ok:
            raise SystemExit(f"the bench workflow failed: {res.failed}")
        runs.append({"seconds": time.perf_counter() - t0, "dn": times.get("dn", 0.0), "ran": res.executed,
                     "peak_mb": _peak_mb(), "written_mb": (_written() - w0) / 1e6})
    ex.close()
    print(json.dumps(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--no-gen", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        src = d / "in.mp4"
        make_input(src, a.frames, a.size)
        text = GRAPH.format(src=src, out=d / "out")
        if not a.no_gen:
            sys.path.insert(0, str(ROOT / "tests"))
            from tiny_models import build_all
            text += GEN.format(model=build_all(d / "tiny", ("wan",)) / "wan", out=d / "out")
        (d / "g.yaml").write_text(text)
        print(f"{a.frames} frames of {a.size}: load -> denoise -> grade -> save, load -> resize -> save"
              + ("" if a.no_gen else ", tiny wan -> sample -> decode -> save") + "; runs 2 and 3 change grade.exposure")
        for name, keep in (("before", False), ("after", True)):
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            r = subprocess.run([sys.executable, __file__, "--child", str(d / "g.yaml"), str(keep), str(d / name[:4])],
                               capture_output=True, text=True, env=env)
            if r.returncode:
                raise SystemExit(r.stderr)
            for i, run in enumerate(json.loads(r.stdout.strip().splitlines()[-1]), 1):
                print(f"  {name:7s} run {i}: {run['seconds']:6.1f} s  denoise {run['dn']:6.1f} s  "
                      f"peak RSS {run['peak_mb']:5.0f} MB  wrote {run['written_mb']:6.0f} MB  ran {','.join(run['ran'])}",
                      flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3] == "True", sys.argv[4])
    else:
        main()
