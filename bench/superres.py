"""Multi-frame super-resolution on real photographs: upscale.multiframe against Lanczos.

Two kinds of footage, both made from the photographs in resources/samples and reduced 2x
by area averaging (what a sensor with half the pixels records):
  pan      the photograph panned by known sub-pixel steps per frame (the classic case);
  objects  bench/footage.py composites: camera motion plus moving cut-outs (occlusions).
Every frame is upscaled back 2x and compared with the original; PSNR (4-pixel border
excluded) and frames/s for each method are printed from the same run.

    python bench/superres.py [--frames 7] [--radius 2]
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

STEPS = [(0.37, 0.23), (0.61, -0.29), (-0.45, 0.52)]   # low-res pixels per frame


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
        "bicubic": resize(cv2.INTER_CUBIC),
        "upscale.multiframe radius=0": lambda lr: multiframe_clip(Clip.from_array(lr), radius=0).to_array(),
        f"upscale.multiframe radius={radius}": lambda lr: multiframe_clip(Clip.from_array(lr), radius=radius).to_array(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=7)
    ap.add_argument("--radius", type=int, default=2)
    args = ap.parse_args()
    sets = {"pan": [pan(p, args.frames, s) for p, s in zip(photos()[:3] + photos()[3:], STEPS + STEPS[:1])],
            "objects": [footage(args.frames, 480, 270, seed=s, noise=0.5) for s in (1, 2, 3)]}
    table = {}
    for name, fn in methods(args.radius).items():
        fn(reduce2(sets["pan"][0][:3]))  # warm-up (numba, DIS buffers)
        row = {}
        for kind, clips in sets.items():
            scores, frames, seconds = [], 0, 0.0
            for hr in clips:
                lr = reduce2(hr)
                t = time.perf_counter()
                out = fn(lr)
                seconds += time.perf_counter() - t
                scores += [psnr(o, h) for o, h in zip(out, hr)]
                frames += len(hr)
            row[kind] = (float(np.mean(scores)), frames / seconds)
        table[name] = row
        print(f"  {name:30s} " + "  ".join(f"{k}: {db:6.2f} dB {fps:6.1f} frames/s" for k, (db, fps) in row.items()),
              flush=True)
    anchor = table["lanczos (anchor)"]
    for name, row in table.items():
        if name.startswith("upscale.multiframe"):
            gains = "  ".join(f"{k} {row[k][0] - anchor[k][0]:+.2f} dB" for k in row)
            print(f"  {name}: {gains} over lanczos")
    print(f"  ({len(sets['pan'])} panned photographs and {len(sets['objects'])} composites, {args.frames} frames "
          f"each, 2x area-reduced to {sets['pan'][0].shape[2] // 2}x{sets['pan'][0].shape[1] // 2} and "
          f"{sets['objects'][0].shape[2] // 2}x{sets['objects'][0].shape[1] // 2}, every frame scored)")


if __name__ == "__main__":
    main()
