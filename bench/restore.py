"""Restoration benchmark: Kinograph's deflicker and stabilizer against ffmpeg's, same frames, same run.

Footage: real photographs filmed by a moving camera with moving objects (bench.footage), or with
--clip one of the real camera clips of bench/interpolation_real.py (its own motion and noise; the
damage below is added to it).
Damage 1: a random gain in [0.8, 1.2] per frame (exposure flicker). Scored by the excess
flicker removed (mean |frame-to-frame change of mean luma| above the clean clip's) and PSNR
against the clean clip; anchor: ffmpeg `deflicker` (defaults) on the same frames.
Damage 2: a random shift of up to 6 px per axis per frame (hand-held shake). Scored by the
residual jitter: mean distance between each output frame-to-frame displacement and the clean
clip's (median phase correlation over a 3x3 grid of tiles), as a share of the shaken clip's; anchor:
ffmpeg `deshake` (defaults). Both ffmpeg filters get the frames losslessly through pipes
(planar RGB / YUV 4:4:4, no chroma subsampling).

    python -m bench.restore [--frames 96] [--width 640] [--height 360] [--seed 3] [--clip bikes]
"""
from __future__ import annotations

import argparse
import subprocess
import time

import cv2
import numpy as np

from bench.footage import footage
from graph_engine import Clip
from nodes.metrics.measures import mean_luma, psnr
from nodes.restore.deflicker import deflicker_clip
from nodes.restore.stabilize import stabilize_clip


def ffmpeg_filter(frames: np.ndarray, vf: str) -> np.ndarray:
    import imageio_ffmpeg
    n, h, w, _ = frames.shape
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", "24", "-i", "-", "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    res = subprocess.run(cmd, input=frames.tobytes(), capture_output=True, check=True)
    out = np.frombuffer(res.stdout, np.uint8)
    return out.reshape(-1, h, w, 3)[:n]


def flicker_gain(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gains = rng.uniform(0.8, 1.2, len(frames)).astype(np.float32)
    return np.clip(frames.astype(np.float32) * gains[:, None, None, None] + 0.5, 0, 255).astype(np.uint8)


def shake(frames: np.ndarray, rng: np.random.Generator, amount: float = 6.0) -> np.ndarray:
    out = np.empty_like(frames)
    for i, f in enumerate(frames):
        dx, dy = rng.uniform(-amount, amount, 2)
        m = np.float64([[1, 0, dx], [0, 1, dy]])
        out[i] = cv2.warpAffine(f, m, (f.shape[1], f.shape[0]), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT101)
    return out


def flicker(frames: np.ndarray) -> float:
    y = np.array([mean_luma(f) for f in frames])
    return float(np.abs(np.diff(y)).mean())


def displacements(frames: np.ndarray, grid: int = 3) -> np.ndarray:
    """Frame-to-frame global shift: the median of phase correlations over a grid of tiles, so a
    large moving object in one tile does not pass for camera motion."""
    h, w = frames.shape[1:3]
    th, tw = h // grid, w // grid
    win = cv2.createHanningWindow((tw, th), cv2.CV_32F)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in frames]
    tiles = [(slice(y * th, (y + 1) * th), slice(x * tw, (x + 1) * tw)) for y in range(grid) for x in range(grid)]
    return np.array([np.median([cv2.phaseCorrelate(a[t], b[t], win)[0] for t in tiles], axis=0)
                     for a, b in zip(gray[:-1], gray[1:])])


def jitter(frames: np.ndarray, clean_disp: np.ndarray) -> float:
    return float(np.linalg.norm(displacements(frames) - clean_disp, axis=1).mean())


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run(frames: int, width: int, height: int, seed: int, clip: str = "") -> None:
    rng = np.random.default_rng(seed)
    if clip:
        from bench.interpolation_real import real_clip
        clean = real_clip(clip, frames)
        print(f"footage: real clip {clip}, {len(clean)} frames {clean.shape[2]}x{clean.shape[1]}")
    else:
        clean = footage(frames, width, height, seed=seed)
        print(f"footage: {frames} frames {width}x{height} (bench.footage seed {seed})")

    damaged = flicker_gain(clean, rng)
    ff, t_ff = timed(lambda: ffmpeg_filter(damaged, "format=gbrp,deflicker,format=rgb24"))
    ours, t_ours = timed(lambda: deflicker_clip(None, Clip.from_array(damaged)).to_array())
    base, dmg = flicker(clean), flicker(damaged)

    def removed(x):
        return 100.0 * (dmg - flicker(x)) / (dmg - base)

    def mean_psnr(x):
        return float(np.mean([psnr(a, b) for a, b in zip(x, clean)]))

    print("\n== deflicker: random per-frame gain 0.8-1.2 ==")
    print(f"flicker (mean |d luma|): clean {base:.2f}  damaged {dmg:.2f}  ffmpeg {flicker(ff):.2f}  "
          f"kinograph {flicker(ours):.2f}")
    print(f"excess flicker removed:  ffmpeg deflicker {removed(ff):5.1f}%   kinograph {removed(ours):5.1f}%")
    p_d, p_f, p_o = mean_psnr(damaged), mean_psnr(ff), mean_psnr(ours)
    print(f"PSNR vs clean:           damaged {p_d:.2f} dB  ffmpeg {p_f:.2f} dB (+{p_f - p_d:.2f})  "
          f"kinograph {p_o:.2f} dB (+{p_o - p_d:.2f}; {p_o - p_f:+.2f} vs ffmpeg)")
    print(f"time: ffmpeg {t_ff:.1f} s  kinograph {t_ours:.1f} s")

    shaken = shake(clean, rng)
    ff, t_ff = timed(lambda: ffmpeg_filter(shaken, "format=yuv444p,deshake,format=rgb24"))
    ours, t_ours = timed(lambda: stabilize_clip(None, Clip.from_array(shaken), border="reflect").to_array())
    cropped = stabilize_clip(None, Clip.from_array(shaken), border="crop").to_array()
    clean_disp = displacements(clean)
    j_s, j_f, j_o = jitter(shaken, clean_disp), jitter(ff, clean_disp), jitter(ours, clean_disp)
    # The crop mode zooms, which scales the clean motion too: compare it with the zoomed clean clip.
    zoomed = stabilize_clip(None, Clip.from_array(clean), border="crop", strength=0.0).to_array()
    j_c = jitter(cropped, displacements(zoomed))
    print("\n== stabilize: random shift up to 6 px per axis ==")
    print(f"residual jitter (px/frame): shaken {j_s:.2f}  ffmpeg deshake {j_f:.2f} ({100 * j_f / j_s:.0f}%)  "
          f"kinograph {j_o:.2f} ({100 * j_o / j_s:.0f}%)  kinograph crop mode {j_c:.2f} ({100 * j_c / j_s:.0f}%)")
    print(f"time: ffmpeg {t_ff:.1f} s  kinograph {t_ours:.1f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--clip", default="", help="a real clip of bench/interpolation_real.py instead (bikes, city, ...)")
    a = ap.parse_args()
    run(a.frames, a.width, a.height, a.seed, a.clip)
