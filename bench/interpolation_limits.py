"""How much of the interpolation error on bench/interpolation_real.py's clips is one global
sub-pixel misplacement of the in-between, and how predictable the camera's global path is.

Per clip (every other frame dropped, as in the bench), for interpolate.flow (default) and ffmpeg
minterpolate:

- PSNR of the re-synthesised frames with a BORDER-pixel border cropped, and the same after each
  in-between is moved by the one global shift that best aligns it with the true frame (phase
  correlation, cubic resampling). The shift is found FROM THE TRUE FRAME: an oracle no
  interpolator can have. Its gain is the part of the error that a perfectly placed whole frame
  would remove (a hand-held camera's jitter between frames), not a reachable figure. Where parts
  of the scene move apart the correlation peak need not be the PSNR-best shift, and the "gain" can
  be negative (bikes-c -0.1 dB).
- The camera's global path: positions of all frames (kept and dropped) chained from phase
  correlation of consecutive true frames, and the rms residual (full-size pixels, x and y) of
  predicting each dropped frame's position from the kept frames' alone, by the straight line
  through its two neighbours and by the cubic through four (the frames two and four apart). A
  cubic no better than the line means the jitter is not on a smooth path: the kept frames do not
  tell where the dropped one was.

    PYTHONPATH=$PWD python bench/interpolation_limits.py [--clips carphone,carphone-b] [--frames 41]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.interpolation import minterpolate, psnr  # noqa: E402
from bench.interpolation_real import CLIPS, FRAMES, ours, real_clip  # noqa: E402
from nodes.common.flow import backward_warp  # noqa: E402

BORDER = 8      # full-size pixels cropped on each side before scoring (a shifted frame's edge is made up)


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)


def global_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(dx, dy) by which b's content sits off a's (phase correlation, Hanning window)."""
    ga, gb = _gray(a), _gray(b)
    win = cv2.createHanningWindow(ga.shape[::-1], cv2.CV_32F)
    return np.array(cv2.phaseCorrelate(ga, gb, win)[0])


def crop(img: np.ndarray) -> np.ndarray:
    return img[BORDER:-BORDER, BORDER:-BORDER]


def oracle_shift_scores(synth: np.ndarray, truth: np.ndarray):
    """Mean cropped PSNR as is, mean cropped PSNR after the oracle global shift, rms shift (px)."""
    plain, moved, shifts = [], [], []
    for s, t in zip(synth, truth):
        d = global_shift(t, s)
        flow = np.empty(s.shape[:2] + (2,), np.float32)
        flow[...] = d
        back = np.clip(backward_warp(s.astype(np.float32), flow, interpolation=cv2.INTER_CUBIC), 0, 255)
        plain.append(psnr(crop(s), crop(t)))
        moved.append(psnr(crop(back), crop(t)))
        shifts.append(d)
    return float(np.mean(plain)), float(np.mean(moved)), float(np.sqrt(np.mean(np.square(shifts))))


def path_residuals(frames: np.ndarray):
    """rms residual (x, y) of the dropped (odd) frames' global positions predicted from the kept
    (even) frames': the line through the two neighbours, the cubic through four."""
    steps = np.array([global_shift(a, b) for a, b in zip(frames[:-1], frames[1:])])
    x = np.vstack([[0.0, 0.0], np.cumsum(steps, 0)])
    odd = range(3, len(x) - 3, 2)         # dropped frames with two kept frames either side
    lin = np.array([x[k] - (x[k - 1] + x[k + 1]) / 2 for k in odd])
    cub = np.array([x[k] - (-x[k - 3] + 9 * x[k - 1] + 9 * x[k + 1] - x[k + 3]) / 16 for k in odd])
    rms = lambda r: np.sqrt(np.mean(r ** 2, 0))          # noqa: E731
    return rms(lin), rms(cub), rms(steps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=",".join(CLIPS))
    ap.add_argument("--frames", type=int, default=FRAMES)
    args = ap.parse_args()
    print(f"PSNR with a {BORDER}-px border cropped: as is -> after the ORACLE global shift (found from the true "
          f"frame), rms shift; global path: rms step, rms residual of the dropped frames' positions (x, y px)")
    for name in args.clips.split(","):
        f = real_clip(name, args.frames)
        kept, truth = f[0::2], f[1::2]
        line = [f"{name} ({f.shape[2]}x{f.shape[1]}):"]
        for label, fn in (("interpolate.flow", ours), ("minterpolate", minterpolate)):
            p0, p1, sh = oracle_shift_scores(fn(kept)[1:2 * len(truth):2], truth)
            line.append(f"  {label:16s} {p0:6.2f} -> {p1:6.2f} dB ({p1 - p0:+.2f}), rms shift {sh:.2f} px")
        lin, cub, step = path_residuals(f)
        line.append(f"  path: rms step ({step[0]:.2f}, {step[1]:.2f}), residual linear ({lin[0]:.2f}, {lin[1]:.2f}) "
                    f"cubic ({cub[0]:.2f}, {cub[1]:.2f})")
        print("\n".join(line), flush=True)


if __name__ == "__main__":
    main()
