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
  tell where the dropped one was. A quadratic least-squares fit through the six kept frames
  around it (1, 3 and 5 frames either side) would beat the line if the jitter were white noise on
  a smooth path (it averages the kept frames' own jitter out); where it does worse, the camera's
  velocity wanders (a random walk), and the neighbours' line is as good as a prediction gets.
- Where the error left after the oracle shift lies: its share on the flat half of the true frame's
  pixels (grey gradient below the median), on the top tenth by gradient (edges), and the flat
  half's own MSE (grey^2).
- How good the blend would have to be: an ORACLE that picks, per PICK_WINDOW-pixel window and
  knowing the true frame, among interpolate.flow's in-between, its two warped frames alone and their
  plain mean (same motion, same bend), full frame like the bench's PSNR. Reaching it needs content as
  good as a truth-guided choice between what the two frames offer (carphone: +0.55 dB, its whole gap
  to the bar).
- The noise floor, measured on the true dropped frames, not on any interpolator's output: sigma
  (grey levels, RGB) by the flattest tenth of 8x8 blocks after a plane fit (a low estimate: the
  least noisy blocks are picked) and by Immerkaer's filter with a median (robust to edges; the
  mean of its magnitude counts texture as noise: carphone 2.2 instead of 1.1-1.2). The true frame's
  own noise (sigma^2) and half of it in an in-between that blends two frames (sigma^2 / 2) are
  beyond any interpolation of two frames; blending in the frames beyond the pair could at best save
  about sigma^2 / 4 more. The flat half's MSE after the shift bounds 1.5 sigma^2 from above.

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
PICK_WINDOW = 5     # side of the windows over which the oracle pick sums the squared error


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
    """Mean cropped PSNR as is, mean cropped PSNR after the oracle global shift, rms shift (px), and
    where the squared error after the shift lies (error_by_gradient, summed over the frames)."""
    plain, moved, shifts, where = [], [], [], []
    for s, t in zip(synth, truth):
        d = global_shift(t, s)
        flow = np.empty(s.shape[:2] + (2,), np.float32)
        flow[...] = d
        back = np.clip(backward_warp(s.astype(np.float32), flow, interpolation=cv2.INTER_CUBIC), 0, 255)
        plain.append(psnr(crop(s), crop(t)))
        moved.append(psnr(crop(back), crop(t)))
        shifts.append(d)
        where.append(error_by_gradient(crop(back), crop(t)))
    where = np.sum(where, 0)
    shares = (where[0] / where[3], where[1] / where[3], where[0] / where[2])
    return float(np.mean(plain)), float(np.mean(moved)), float(np.sqrt(np.mean(np.square(shifts)))), shares


def error_by_gradient(img: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Squared error (RGB mean per pixel) summed over the flat half of truth's pixels (grey gradient
    below its median) and over its top tenth by gradient, the flat half's pixel count, and the total."""
    err = np.mean((img.astype(np.float64) - truth.astype(np.float64)) ** 2, -1)
    g = _gray(truth)
    grad = cv2.GaussianBlur(np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)), (0, 0), 1)
    flat, edge = grad < np.median(grad), grad >= np.quantile(grad, 0.9)
    return np.array([err[flat].sum(), err[edge].sum(), flat.sum(), err.sum()])


def noise_sigma(frames: np.ndarray, block: int = 8):
    """Noise sigma (grey levels, RMS over RGB channels and frames) of `frames`: from the flattest
    tenth of block x block tiles after a plane fit, and from Immerkaer's filter with a median."""
    yy, xx = np.mgrid[0:block, 0:block]
    design = np.c_[np.ones(block * block), xx.ravel(), yy.ravel()]
    residual = np.eye(block * block) - design @ np.linalg.pinv(design)
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    flat, robust = [], []
    for f in frames:
        for c in range(3):
            ch = f[..., c].astype(np.float64)
            h, w = (ch.shape[0] // block) * block, (ch.shape[1] // block) * block
            tiles = ch[:h, :w].reshape(h // block, block, w // block, block).transpose(0, 2, 1, 3).reshape(-1, block * block)
            var = np.sort(np.sum((tiles @ residual) ** 2, 1) / (block * block - 3))
            flat.append(np.mean(var[:max(1, len(var) // 10)]))
            lap = cv2.filter2D(f[..., c].astype(np.float32), -1, kernel)[1:-1, 1:-1]
            robust.append((1.4826 * np.median(np.abs(lap)) / 6) ** 2)
    return float(np.sqrt(np.mean(flat))), float(np.sqrt(np.mean(robust)))


def oracle_pick_scores(kept: np.ndarray, truth: np.ndarray):
    """Mean PSNR (full frame) of interpolate.flow's in-betweens rendered pair by pair (as the node's
    scheduler does on a clip without cuts), and of the oracle pick among them, the two warped frames
    and their mean, per PICK_WINDOW window by the squared error against the true frame."""
    from nodes.interpolate import kernels
    from nodes.interpolate.flow_interp import FlowSynth
    synth, ours_db, picked_db = FlowSynth(), [], []
    for i, t in enumerate(truth):
        a, b = kept[i], kept[i + 1]
        st = synth.prepare(a, b, kept[i - 1] if i > 0 else None, kept[i + 2] if i + 2 < len(kept) else None)
        out = synth.render(st, [0.5])[0]
        mo = synth.motion_at(st, 0.5)
        w0, w1 = kernels.sampled_frames(a, b, mo.motion, np.zeros_like(mo.motion) if mo.bend is None else mo.bend,
                                        np.float32(0.5))
        cands = [out.astype(np.float32), w0, w1, (w0 + w1) / 2]
        err = np.dstack([np.mean((c - t.astype(np.float32)) ** 2, -1) for c in cands])
        best = cv2.blur(err, (PICK_WINDOW, PICK_WINDOW)).argmin(-1)
        pick = np.choose(best[..., None], cands)
        ours_db.append(psnr(out, t))
        picked_db.append(psnr(np.clip(pick + 0.5, 0, 255).astype(np.uint8), t))
    return float(np.mean(ours_db)), float(np.mean(picked_db))


def path_residuals(frames: np.ndarray):
    """rms residual (x, y) of the dropped (odd) frames' global positions predicted from the kept
    (even) frames': the line through the two neighbours, the cubic through four."""
    steps = np.array([global_shift(a, b) for a, b in zip(frames[:-1], frames[1:])])
    x = np.vstack([[0.0, 0.0], np.cumsum(steps, 0)])
    odd = range(3, len(x) - 3, 2)         # dropped frames with two kept frames either side
    lin = np.array([x[k] - (x[k - 1] + x[k + 1]) / 2 for k in odd])
    cub = np.array([x[k] - (-x[k - 3] + 9 * x[k - 1] + 9 * x[k + 1] - x[k + 3]) / 16 for k in odd])
    # Least squares: the quadratic through the six kept frames 1, 3 and 5 away, at the dropped one.
    near = np.array([-5, -3, -1, 1, 3, 5])
    fit = np.linalg.pinv(np.vander(near.astype(float), 3))[-1]       # its constant term's weights
    smooth = np.array([x[k] - fit @ x[k + near] for k in range(5, len(x) - 5, 2)])
    rms = lambda r: np.sqrt(np.mean(r ** 2, 0))          # noqa: E731
    return rms(lin), rms(cub), rms(smooth), rms(steps)


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
            p0, p1, sh, (flat, edge, flat_mse) = oracle_shift_scores(fn(kept)[1:2 * len(truth):2], truth)
            line.append(f"  {label:16s} {p0:6.2f} -> {p1:6.2f} dB ({p1 - p0:+.2f}), rms shift {sh:.2f} px; after it "
                        f"{flat:.0%} of the error on the flat half (MSE {flat_mse:.1f}), {edge:.0%} on the top tenth")
        mine, picked = oracle_pick_scores(kept, truth)
        line.append(f"  ORACLE pick per {PICK_WINDOW}x{PICK_WINDOW} window among our in-between, its two warped frames and "
                    f"their mean (full frame): {mine:.2f} -> {picked:.2f} dB ({picked - mine:+.2f})")
        lin, cub, smooth, step = path_residuals(f)
        line.append(f"  path: rms step ({step[0]:.2f}, {step[1]:.2f}), residual linear ({lin[0]:.2f}, {lin[1]:.2f}) "
                    f"cubic ({cub[0]:.2f}, {cub[1]:.2f}) least-squares quadratic of 6 ({smooth[0]:.2f}, {smooth[1]:.2f})")
        low, robust = noise_sigma(truth)
        line.append(f"  noise sigma {low:.2f} (flattest blocks) .. {robust:.2f} (Immerkaer, median): the true frame's "
                    f"sigma^2 + a 2-frame blend's sigma^2/2 = {1.5 * low * low:.1f} .. {1.5 * robust * robust:.1f} grey^2 "
                    f"({10 * np.log10(255 ** 2 / (1.5 * robust * robust)):.1f} .. "
                    f"{10 * np.log10(255 ** 2 / (1.5 * low * low)):.1f} dB alone)")
        print("\n".join(line), flush=True)


if __name__ == "__main__":
    main()
