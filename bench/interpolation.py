"""Frame interpolation on real imagery: interpolate.flow against ffmpeg's minterpolate.

Footage from bench/footage.py (photographs filmed with a panning, zooming camera and
moving cut-outs: parallax, occlusion, frame borders). Every other frame is dropped, both
methods re-synthesise the dropped frames from the kept ones, and PSNR against the dropped
frames plus output frames/s are printed for each, measured in the same run. Then peak
memory of a streamed interpolation at two clip lengths, which should be about equal.

    python bench/interpolation.py [--frames 41] [--size 640x360] [--quality fast,medium] [--no-memory]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.footage import footage  # noqa: E402


# Faster camera and more, faster objects than footage.py's hand-held default: more occlusion.
FAST = dict(pan=16.0, object_speed=14.0, objects=5)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def minterpolate(kept: np.ndarray, fps: float = 12.0) -> np.ndarray:
    import imageio_ffmpeg
    n, h, w = kept.shape[:3]
    vf = f"minterpolate=fps={2 * fps:g}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", f"{fps:g}", "-i", "-", "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    # minterpolate holds back the last in-between until it sees one more frame: feed the
    # last frame twice and keep the 2n-1 frames that correspond to the input span.
    feed = np.concatenate([kept, kept[-1:]])
    out = subprocess.run(cmd, input=feed.tobytes(), capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, h, w, 3)[:2 * n - 1]


def ours(kept: np.ndarray, quality: str, fps: float = 12.0) -> np.ndarray:
    from graph_engine import Clip
    from nodes.interpolate.flow_interp import interpolate_clip
    return interpolate_clip(Clip.from_array(kept, fps), factor=2, quality=quality).to_array()


def naive_dis(kept: np.ndarray) -> np.ndarray:
    """The textbook two-way DIS warp, no occlusion handling: the prior-art reference point."""
    from nodes.common.flow import backward_warp, estimate_flow
    out = [kept[0]]
    for a, b in zip(kept[:-1], kept[1:]):
        fwd, bwd = estimate_flow(a, b, "medium"), estimate_flow(b, a, "medium")
        mid = 0.5 * backward_warp(a.astype(np.float32), 0.5 * bwd) + 0.5 * backward_warp(b.astype(np.float32), 0.5 * fwd)
        out += [np.clip(mid + 0.5, 0, 255).astype(np.uint8), b]
    return np.stack(out)


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def quality_table(clips, qualities):
    """clips: (scene name, kept frames, dropped frames). PSNR per scene and overall, output frames/s."""
    rows = {}
    for name, fn in [("ffmpeg minterpolate", minterpolate), ("naive two-way DIS", naive_dis)] + \
            [(f"interpolate.flow {q}", (lambda q: lambda k: ours(k, q))(q)) for q in qualities]:
        scores, frames, seconds = {}, 0, 0.0
        for scene, kept, truth in clips:
            out, dt = timed(fn, kept)
            synth = out[1:2 * len(truth):2]
            if len(synth) != len(truth):
                raise RuntimeError(f"{name} gave {len(out)} frames for {len(kept)} inputs")
            scores.setdefault(scene, []).extend(psnr(s, t) for s, t in zip(synth, truth))
            frames += 2 * len(kept) - 1
            seconds += dt
        overall = float(np.mean([v for vs in scores.values() for v in vs]))
        rows[name] = (overall, frames / seconds)
        per_scene = "  ".join(f"{k} {np.mean(v):5.2f}" for k, v in scores.items())
        print(f"  {name:26s} {overall:6.2f} dB ({per_scene})  {rows[name][1]:6.1f} frames/s", flush=True)
    return rows


def peak_rss(frames: int, size: int) -> float:
    """Peak resident MB of a fresh process that streams an interpolation of a lazy clip."""
    code = (f"import sys, resource; sys.path.insert(0, {str(ROOT)!r})\n"
            "from bench.footage import footage_clip\n"
            "from nodes.interpolate.flow_interp import interpolate_clip\n"
            f"clip = interpolate_clip(footage_clip({frames}, {size}, {size}, seed=3, objects=2), factor=2)\n"
            "n = sum(len(c) for _, c in clip.chunks())\n"
            "print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), float(out[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=41, help="frames per clip before dropping every other one")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--seeds", default="0,2,3", help="footage seeds of the hand-held scenes (one clip each)")
    ap.add_argument("--fast-seeds", default="1,4", help="seeds of the fast-motion scenes (one clip each)")
    ap.add_argument("--quality", default="medium", help="comma-separated interpolate.flow qualities")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory lines")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    clips = []
    for scene, seeds, kw in [("hand-held", args.seeds, {}), ("fast", args.fast_seeds, FAST)]:
        for seed in (int(s) for s in seeds.split(",") if s):
            f = footage(args.frames, w, h, seed=seed, **kw)
            clips.append((scene, f[0::2], f[1::2]))
    ours(clips[0][1][:3], "fast")  # compile the numba kernels outside the timing
    print(f"re-synthesising every other frame of {len(clips)} clips of {args.frames} frames, {w}x{h}, "
          f"{os.cpu_count()} cores; PSNR of the re-synthesised frames (per scene), output frames/s")
    rows = quality_table(clips, args.quality.split(","))
    anchor = rows["ffmpeg minterpolate"]
    for name, (db, fps) in rows.items():
        if name.startswith("interpolate.flow"):
            print(f"  {name}: {db - anchor[0]:+.2f} dB and {fps / anchor[1]:.2f}x the throughput of minterpolate")
    mem = {}
    if not args.no_memory:
        for n in (100, 1000):
            count, mb = peak_rss(n, 256)
            mem[n] = mb
            print(f"  peak RSS streaming {n} frames of 256x256 -> {count} frames: {mb:.0f} MB", flush=True)
    if args.json:
        print(json.dumps({"rows": rows, "peak_rss_mb": mem}))


if __name__ == "__main__":
    main()
