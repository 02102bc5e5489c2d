"""Memory and speed at scale: non-generative chains on long 1080p clips, each against a pass-through
anchor measured in the same run.

Every chain runs in its own process as `kinograph run` runs it (load -> NODE -> save, or load -> METRIC),
and the bench prints, per chain and clip length, the Python process's peak RSS (the ffmpeg encoder is a
child process of its own, reported apart) and frames per second. The anchor is the same pipeline with no
node in the middle (io.load_video -> io.save_video), and a hand-written ffmpeg-decode-pipe -> numpy ->
ffmpeg-encode-pipe loop doing that pass-through, both run in this bench run: a chain's peak above the
anchor's is what the node itself holds, and it must not grow with the clip's length (streaming).

    python -m bench.scale [--frames 100 1000] [--size 1920x1080] [--chains denoise,ssim,...] [--threads]

--threads also prints the thread pools the engine's process ends up with (torch, OpenCV, numba), which on a
small machine should not exceed its cores."""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> YAML of the nodes after `load` (which reads SRC); a chain with a `save` node writes the video.
CHAINS = {
    "pass": "",
    "resize": "  node: {type: video.resize, inputs: {video: load.video}, params: {width: 1280}}\n",
    "upscale": "  node: {type: upscale.resize, inputs: {video: load.video}, params: {scale: 1.5}}\n",
    "grade": "  node: {type: color.grade, inputs: {video: load.video}, params: {exposure: 0.5, gamma: 1.2}}\n",
    "grade_sat": "  node: {type: color.grade, inputs: {video: load.video}, params: {saturation: 1.3}}\n",
    "denoise": "  node: {type: restore.denoise, inputs: {video: load.video}}\n",
    "deflicker": "  node: {type: restore.deflicker, inputs: {video: load.video}}\n",
    "stabilize": "  node: {type: restore.stabilize, inputs: {video: load.video}}\n",
    "deblur": "  node: {type: restore.deblur, inputs: {video: load.video}, params: {method: unsharp}}\n",
    "kuwahara": "  node: {type: stylize.kuwahara, inputs: {video: load.video}}\n",
    "posterize": "  node: {type: stylize.posterize, inputs: {video: load.video}}\n",
    "temporal": "  node: {type: stylize.temporal, inputs: {video: load.video, source: load.video}}\n",
    "reverse": "  node: {type: video.reverse, inputs: {video: load.video}}\n",
    "fps": "  node: {type: video.fps, inputs: {video: load.video}, params: {fps: 30}}\n",
    "deflicker_png": "  node: {type: restore.deflicker, inputs: {video: load.video}}\n",
}
# Chains that write a PNG sequence (io.save_frames) instead of an MP4.
FRAMES = ("deflicker_png",)
METRICS = {
    "psnr": "  ref: {type: io.load_video, params: {path: SRC}}\n"
            "  m: {type: metrics.psnr, inputs: {video: load.video, reference: ref.video}}\n",
    "ssim": "  ref: {type: io.load_video, params: {path: SRC}}\n"
            "  m: {type: metrics.ssim, inputs: {video: load.video, reference: ref.video}}\n",
    "flicker": "  m: {type: metrics.flicker, inputs: {video: load.video}}\n",
    "seam": "  m: {type: metrics.seam, inputs: {video: load.video}}\n",
    "color_drift": "  m: {type: metrics.color_drift, inputs: {video: load.video}}\n",
    "report": "  ref: {type: io.load_video, params: {path: SRC}}\n"
              "  m: {type: metrics.report, inputs: {video: load.video, reference: ref.video}, "
              "params: {path: out/report.json, metrics: 'psnr, ssim, flicker, sharpness'}}\n",
}


def workflow(name: str, src: Path) -> str:
    text = f"kinograph: 1\nnodes:\n  load: {{type: io.load_video, params: {{path: {src}}}}}\n"
    if name in METRICS:
        return text + METRICS[name].replace("SRC", str(src))
    feed = "node.video" if CHAINS[name] else "load.video"
    writer, path = ("io.save_frames", f"out/{name}") if name in FRAMES else ("io.save_video", f"out/{name}.mp4")
    return text + CHAINS[name] + f"  save: {{type: {writer}, inputs: {{video: {feed}}}, params: {{path: {path}}}}}\n"


def make_input(path: Path, frames: int, size: str) -> None:
    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=24", "-frames:v", str(frames), "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)


def child_engine(yaml_path: str, show_threads: bool) -> dict:
    sys.path.insert(0, str(ROOT))
    from graph_engine.api import Session, load_workflow
    wf = load_workflow(yaml_path)
    t = time.perf_counter()
    res = Session(use_disk=False).run(wf, keep=())        # as `kinograph run` does: no value kept
    out = {"seconds": time.perf_counter() - t, "ok": res.ok, "failed": res.failed}
    if show_threads:
        out["threads"] = thread_pools()
    return out


def thread_pools() -> dict:
    pools = {"os_threads": len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None}
    for mod, get in (("torch", lambda m: m.get_num_threads()), ("cv2", lambda m: m.getNumThreads()),
                     ("numba", lambda m: m.get_num_threads())):
        if mod in sys.modules:
            pools[mod] = get(sys.modules[mod])
    return pools


def child_anchor(src: str, dst: str) -> dict:
    """A hand-written pass-through: ffmpeg decodes to a pipe, numpy holds each frame, ffmpeg encodes it."""
    import imageio_ffmpeg
    import numpy as np
    import av
    with av.open(src) as c:
        w, h = c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    t = time.perf_counter()
    dec = subprocess.Popen([ff, "-loglevel", "error", "-i", src, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                           stdout=subprocess.PIPE)
    enc = subprocess.Popen([ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
                            f"{w}x{h}", "-r", "24", "-i", "-", "-c:v", "libx264", "-preset", "medium", "-crf", "19",
                            "-pix_fmt", "yuv420p", dst], stdin=subprocess.PIPE)
    n = w * h * 3
    while True:
        buf = dec.stdout.read(n)
        if len(buf) < n:
            break
        enc.stdin.write(np.frombuffer(buf, np.uint8).reshape(h, w, 3).tobytes())
    enc.stdin.close()
    enc.wait()
    dec.wait()
    return {"seconds": time.perf_counter() - t, "ok": True}


def child(argv) -> None:
    out = child_anchor(argv[1], argv[2]) if argv[0] == "--anchor" else child_engine(argv[1], "--threads" in argv)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["child_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(out))


def measure(args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if r.returncode:
        return {"ok": False, "failed": r.stderr.strip().splitlines()[-1:], "seconds": 0, "peak_mb": 0,
                "child_peak_mb": 0}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--chains", default="", help="comma-separated names (default: all): " +
                                                 ", ".join([*CHAINS, *METRICS]))
    ap.add_argument("--threads", action="store_true")
    a = ap.parse_args()
    names = [n.strip() for n in a.chains.split(",") if n.strip()] or [*CHAINS, *METRICS]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for n in a.frames:
            src = d / f"in{n}.mp4"
            make_input(src, n, a.size)
            anchor = measure(["--anchor", str(src), str(d / "anchor.mp4")])
            base = None
            print(f"-- {n} frames of {a.size}: ffmpeg pipe pass-through {n / anchor['seconds']:.1f} fps, "
                  f"peak RSS {anchor['peak_mb']:.0f} MB (encoder {anchor['child_peak_mb']:.0f} MB)", flush=True)
            for name in ["pass", *[x for x in names if x != "pass"]]:
                yaml_path = d / f"{name}.yaml"
                yaml_path.write_text(workflow(name, src))
                r = measure(["--engine", str(yaml_path)] + (["--threads"] if a.threads else []))
                if not r["ok"]:
                    print(f"{name:12s} FAILED {r['failed']}", flush=True)
                    continue
                if name == "pass":
                    base = r
                extra = f" threads {r['threads']}" if "threads" in r else ""
                print(f"{name:12s} {n / r['seconds']:6.1f} fps ({r['seconds'] / base['seconds']:5.2f}x pass)  "
                      f"peak RSS {r['peak_mb']:5.0f} MB ({r['peak_mb'] - base['peak_mb']:+5.0f} over pass)  "
                      f"encoder {r['child_peak_mb']:.0f} MB{extra}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
