"""Peak memory of whole headless runs (`kinograph run`) of everyday footage pipelines on large and long clips,
against ffmpeg doing the same job, measured in the same run.

For each pipeline it prints three figures of the Kinograph run and one of ffmpeg's:
  self   the Kinograph (Python) process's own peak resident memory (getrusage, RUSAGE_SELF, at exit)
  tree   the peak of the sum over the process and the ffmpeg encoders it starts (sampled every 20 ms)
  grow   self of the long clip minus self of a clip a quarter as long (streamed: about 0)
  ffmpeg the peak resident memory of the ffmpeg command doing the same job (wait4's ru_maxrss)

The footage (a 4K clip and a long 1080p clip, testsrc2 with a tone under it) is made with the ffmpeg that
imageio-ffmpeg ships, in a temporary folder deleted afterwards. Defaults are sized for a 2-core machine
(about 20 minutes); --frames-4k 300 --frames-hd 2000 for the full sizes.

    PYTHONPATH=. .venv/bin/python bench/memory.py [--only grade_4k,concat_hd] [--frames-4k N] [--frames-hd N]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The Kinograph run, with its own peak and its children's printed at exit (RUSAGE_SELF leaves the encoders out).
WRAPPER = ("import atexit, resource, sys\n"
           "def _peaks():\n"
           "    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
           "    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
           "    sys.stderr.write(f'PEAKS {me} {kids}\\n')\n"
           "atexit.register(_peaks)\n"
           "from app.cli import main\n"
           "sys.exit(main(sys.argv[1:]))\n")


def ffmpeg() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def make_footage(folder: Path, frames_4k: int, frames_hd: int) -> dict:
    ff = ffmpeg()
    out = {}
    for name, size, frames, tone in (("uhd", "3840x2160", frames_4k, 440), ("hd", "1920x1080", frames_hd, 330)):
        path = folder / f"{name}.mp4"
        subprocess.run([ff, "-y", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24",
                        "-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=48000", "-frames:v", str(frames),
                        "-t", f"{frames / 24 + 0.01:.3f}", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23",
                        "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)], check=True)
        out[name] = path
    song = folder / "song.wav"
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=44100",
                    "-t", "200", str(song)], check=True)
    out["song"] = song
    return out


def pipelines(f: dict, n4k: int, nhd: int) -> list:
    """(name, clip frames, workflow as YAML with @N@ for the frame count, ffmpeg arguments or None).
    Each writes out/NAME.mp4 in the workflow's folder; ffmpeg writes out/NAME-ffmpeg.mp4."""
    uhd, hd, song = f["uhd"], f["hd"], f["song"]
    enc = ["-c:v", "libx264", "-preset", "medium", "-crf", "19", "-pix_fmt", "yuv420p"]
    save = "  save: {type: io.save_video, inputs: {video: @SRC@}, params: {path: out/@NAME@.mp4}}\n"
    load = "  load: {type: io.load_video, params: {path: @PATH@, count: @N@}}\n"
    rows = [
        ("grade_resize_crop_4k", uhd, n4k,
         "  grade: {type: color.grade, inputs: {video: load.video}, params: {exposure: 0.5, contrast: 1.1}}\n"
         "  crop: {type: video.resize, inputs: {video: grade.video}, params: {width: 1920, height: 800, fit: crop}}\n",
         "crop.video", ["-vf", "eq=contrast=1.1:brightness=0.05,scale=1920:-2,crop=1920:800"]),
        ("grade_hd", hd, nhd,
         "  grade: {type: color.grade, inputs: {video: load.video}, params: {exposure: 0.5, contrast: 1.1}}\n",
         "grade.video", ["-vf", "eq=contrast=1.1:brightness=0.05"]),
        ("interpolate_x2_hd", hd, nhd // 8,
         "  interp: {type: interpolate.flow, inputs: {video: load.video}, params: {factor: 2}}\n",
         "interp.video", ["-vf", "minterpolate=fps=48:mi_mode=mci"]),
        ("stabilize_hd", hd, nhd // 8,
         "  stab: {type: restore.stabilize, inputs: {video: load.video}}\n",
         "stab.video", None),
        ("deflicker_hd", hd, nhd // 4,
         "  flick: {type: restore.deflicker, inputs: {video: load.video}}\n",
         "flick.video", ["-vf", "deflicker"]),
        ("denoise_hd", hd, nhd // 8,
         "  den: {type: restore.denoise, inputs: {video: load.video}}\n",
         "den.video", ["-vf", "hqdn3d"]),
        ("upscale_x2_hd_to_4k", hd, nhd // 8,
         "  up: {type: upscale.resize, inputs: {video: load.video}, params: {scale: 2}}\n",
         "up.video", ["-vf", "scale=iw*2:ih*2:flags=lanczos"]),
        ("concat_3_hd", hd, nhd // 3,
         "  b: {type: io.load_video, params: {path: @PATH@, start: @N@, count: @N@}}\n"
         "  c: {type: io.load_video, params: {path: @PATH@, start: @N2@, count: @N@}}\n"
         "  ab: {type: video.concat, inputs: {video: load.video, other: b.video}}\n"
         "  abc: {type: video.concat, inputs: {video: ab.video, other: c.video}}\n",
         "abc.video", "concat"),
        ("add_audio_hd", hd, nhd,
         "  song: {type: io.add_audio, inputs: {video: load.video}, params: {path: @SONG@}}\n",
         "song.video", "song"),
        ("thumbnail_gif_hd", hd, nhd,
         "  small: {type: video.resize, inputs: {video: load.video}, params: {width: 320}}\n"
         "  nth: {type: video.every_nth, inputs: {video: small.video}, params: {n: 8}}\n",
         "nth.video", "gif"),
    ]
    out = []
    for name, path, n, body, src, anchor in rows:
        yaml = "kinograph: 1\nnodes:\n" + (load + body + save).replace("@PATH@", str(path)).replace(
            "@SONG@", str(song)).replace("@SRC@", src).replace("@NAME@", name)
        if name.startswith("thumbnail"):
            yaml = yaml.replace(f"out/{name}.mp4", f"out/{name}.gif")
        if anchor == "concat":
            args = ["-i", str(path), "-filter_complex",
                    f"[0:v]trim=end_frame={3 * n},setpts=PTS-STARTPTS[v];[0:a]atrim=end={3 * n / 24},"
                    f"asetpts=PTS-STARTPTS[a]", "-map", "[v]", "-map", "[a]"] + enc + ["-c:a", "aac"]
        elif anchor == "song":
            args = ["-i", str(path), "-i", str(song), "-map", "0:v", "-map", "1:a", "-frames:v", str(n)] + enc + \
                ["-c:a", "aac", "-shortest"]
        elif anchor == "gif":
            args = ["-i", str(path), "-frames:v", str(n), "-filter_complex",
                    "[0:v]select='not(mod(n,8))',scale=320:-2,split[a][b];[a]palettegen=stats_mode=diff[p];"
                    "[b][p]paletteuse=dither=sierra2_4a"]
        elif anchor is not None:
            args = ["-i", str(path), "-frames:v", str(n)] + anchor + enc + ["-c:a", "aac"]
        else:
            args = None
        out.append((name, n, yaml, args))
    return out


def _tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and its descendants now."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            pass
    return total


def run_kinograph(workflow: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", WRAPPER, "run", str(workflow), "--replace"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.02)

    t0 = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - t0
    line = [ln for ln in err.splitlines() if ln.startswith("PEAKS ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"kinograph run {workflow.name} failed ({proc.returncode}): {err[-2000:]}")
    me, kids = (int(x) * 1024 for x in line[-1].split()[1:])
    return {"self": me, "children": kids, "tree": max(peak[0], me), "wall": wall}


def run_ffmpeg(args: list, out: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([ffmpeg(), "-y", "-loglevel", "error", *args, str(out)])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed ({proc.returncode})")
    return {"self": usage.ru_maxrss * 1024, "wall": time.perf_counter() - t0}


def mb(n: float) -> str:
    return f"{n / 2 ** 20:7.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames-4k", type=int, default=96)
    ap.add_argument("--frames-hd", type=int, default=960)
    ap.add_argument("--only", default="", help="comma-separated pipeline names (default: all)")
    ap.add_argument("--no-growth", action="store_true", help="skip the quarter-length runs")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kinograph-memory-"))
    try:
        print(f"making footage in {folder} ...", flush=True)
        footage = make_footage(folder, args.frames_4k, args.frames_hd)
        wanted = {w for w in args.only.split(",") if w}
        (folder / "out").mkdir()
        print(f"{'pipeline':24} {'frames':>6} {'self MB':>8} {'tree MB':>8} {'grow MB':>8} {'ffmpeg MB':>9}"
              f" {'wall s':>7} {'ff s':>6}", flush=True)
        for name, n, yaml, ff_args in pipelines(footage, args.frames_4k, args.frames_hd):
            if wanted and name not in wanted:
                continue
            figures = {}
            for frames in ((n,) if args.no_growth else (n // 4, n)):
                wf = folder / f"{name}-{frames}.yaml"
                wf.write_text(yaml.replace("@N2@", str(2 * frames)).replace("@N@", str(frames)))
                figures[frames] = run_kinograph(wf)
            k = figures[n]
            grow = "" if args.no_growth else mb(k["self"] - figures[n // 4]["self"])
            ff = run_ffmpeg(ff_args, folder / "out" / f"{name}-ffmpeg{'.gif' if ff_args[-1].endswith('sierra2_4a') else '.mp4'}") \
                if ff_args else None
            print(f"{name:24} {n:6d} {mb(k['self']):>8} {mb(k['tree']):>8} {grow:>8} "
                  f"{mb(ff['self']) if ff else '      -':>9} {k['wall']:7.1f} {ff['wall'] if ff else 0:6.1f}",
                  flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
