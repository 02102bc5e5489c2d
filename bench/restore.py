"""Restoration benchmark: each restore node against the ffmpeg filter a user would otherwise run,
on the same damaged frames with known ground truth, quality and whole-run time printed in one run.

Footage: a real camera clip of bench/interpolation_real.py (default bikes: a panning street shot;
its own grain and compression stay, the damage below is added on top), or --clip footage for
bench.footage's photographs filmed by a moving camera.

  denoise      Gaussian sensor noise (sigma 10 levels, per channel) -> restore.denoise against
               hqdn3d (defaults and a strong setting), nlmeans (s=6) and atadenoise.
  deblur       Gaussian blur (sigma 1.5 px) and noise (sigma 2 levels) -> restore.deblur at its defaults
               (kernel estimated from the clip) against ffmpeg unsharp (defaults and 7x7 amount 1.5).
  deflicker    on each of --flicker-clips (real footage: bikes, carphone, city, portrait), each kind of flicker
               in FLICKERS below (exposure jumps, a lifted black, a flickering lamp, uneven gate light, mains
               bands, auto-exposure pumping, and none: a steady clip must come back as it was) ->
               restore.deflicker at its defaults against ffmpeg deflicker and against one gain a frame
               (restore.deflicker tone gain, local off: the method before regions and offsets). Each
               figure is PSNR to the clean clip and, in brackets, the flicker left in 8-bit levels (the
               frame-to-frame change of out - clean in a 4x4 grid of regions; no flow involved); time is
               the whole run. A summary gives the mean over clips per flicker.
  dust         12 soft specks (1-5 px, dark or light) and a hair per frame, each on one frame only (dirt on
               scanned film) -> restore.dust against ffmpeg tmedian (a temporal median of 3 frames); and
               both on the clean clip, to show what each changes that was not dirt.
  stabilize    a random shift of up to 6 px per axis per frame (hand-held shake) -> restore.stabilize
               (border reflect) against deshake and vid.stab (two passes, no zoom); also residual
               jitter, the mean distance between each output frame-to-frame displacement and the clean
               clip's (median phase correlation over 3x3 tiles). Quality is scored inside a 16 px margin,
               where every method has picture.
  deinterlace  the clip's frames woven into interlaced ones (frame i: frame 2i's top field, 2i+1's bottom,
               so each field is a real moment) -> restore.deinterlace (field order read from the pictures,
               one picture per field) against bwdif and yadif told the order; scored on all the frames.
  ivtc         the clip's frames as film through 3:2 pulldown (AA BB BC CD DD) -> restore.ivtc against
               fieldmatch,decimate and against deinterlacing it (bwdif); scored on the film frames.

Quality is PSNR (of the mean squared error over the clip, so exact frames do not swamp it) and mean
SSIM against the undamaged frames; each time is the whole run (ffmpeg: piping in and
out included; ours: the lazy clip rendered to an array). ffmpeg gets frames losslessly (planar RGB or
YUV 4:4:4).

    python -m bench.restore [--clip bikes|city|carphone|portrait|footage] [--frames 48] [--only denoise,...]
                            [--flicker-clips bikes,carphone,city,portrait]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

import cv2
import numpy as np

from graph_engine import Clip
from graph_engine.context import Context
from nodes.metrics.measures import ssim
from nodes.restore import nodes as restore_nodes

SECTIONS = ("denoise", "deblur", "deflicker", "dust", "stabilize", "deinterlace", "ivtc")
MARGIN = 16


def ffmpeg_filter(frames: np.ndarray, vf: str, fps: float = 24.0) -> np.ndarray:
    import imageio_ffmpeg
    n, h, w, _ = frames.shape
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", f"{fps:g}", "-i", "-", "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    res = subprocess.run(cmd, input=frames.tobytes(), capture_output=True, check=True)
    return np.frombuffer(res.stdout, np.uint8).reshape(-1, h, w, 3)


def node(name, frames, **params):
    """restore.<name> at its defaults but for `params`, rendered whole."""
    fn = getattr(restore_nodes, name)
    defaults = {k: p.default for k, p in fn.__kinograph_spec__.params.items()}
    return fn(Context("bench"), Clip.from_array(frames), **{**defaults, **params}).to_array()


def add_noise(frames, rng, sigma=10.0):
    return np.clip(frames + rng.normal(0, sigma, frames.shape), 0, 255).astype(np.uint8)


# Flicker as it reaches a restorer, each defined on its own terms (no part of restore.deflicker's model):
FLICKERS = {
    "gain": "exposure jumps: a random gain in [0.8, 1.2] per frame",
    "lift": "a flare / lifted black: x + o (1 - x/255), o random in [-16, 16] levels per frame",
    "gain+lift": "both: a gain in [0.88, 1.12] and a lift in [-10, 10] per frame",
    "lamp": "a flickering lamp: one region (a Gaussian pool of light, 0.18 of the width) gains 1 + [-0.3, 0.3]",
    "gate": "uneven gate light: a random smooth field exp(tilt x + tilt y + vignette), each in [-0.2, 0.2]",
    "mains": "fluorescent mains flicker, 100 Hz at 24 fps, rolling shutter (1/60 s readout): bands of +-8% "
             "drifting down the frame",
    "pumping": "auto-exposure pumping: exposure x exp(0.3 sin(2 pi t / 7)) in linear light, highlights clip",
    "steady": "none: the clean clip (it must come back as it was)",
}


def add_flicker(frames: np.ndarray, kind: str, rng: np.random.Generator, fps: float = 24.0) -> np.ndarray:
    n, h, w = frames.shape[:3]
    x = frames.astype(np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = ys / h - 0.5, xs / w - 0.5

    def lift(x, o):
        return x + o[:, None, None, None] * (1.0 - x / 255.0)

    if kind == "gain":
        x = x * rng.uniform(0.8, 1.2, n).astype(np.float32)[:, None, None, None]
    elif kind == "lift":
        x = lift(x, rng.uniform(-16, 16, n).astype(np.float32))
    elif kind == "gain+lift":
        x = lift(x * rng.uniform(0.88, 1.12, n).astype(np.float32)[:, None, None, None],
                 rng.uniform(-10, 10, n).astype(np.float32))
    elif kind == "lamp":
        pool = np.exp(-0.5 * (((xs + 0.2) * w) ** 2 + ((ys + 0.15) * h) ** 2) / (0.18 * w) ** 2)
        x = x * (1.0 + rng.uniform(-0.3, 0.3, n)[:, None, None, None] * pool[None, :, :, None])
    elif kind == "gate":
        c = rng.uniform(-0.2, 0.2, (n, 3))
        x = x * np.exp(c[:, 0, None, None] * xs + c[:, 1, None, None] * ys
                       + c[:, 2, None, None] * 2 * (xs ** 2 + ys ** 2))[..., None]
    elif kind == "mains":
        t = np.arange(n)[:, None, None] / fps + (ys[None] + 0.5) / 60.0
        x = x * (1.0 + 0.08 * np.sin(2 * np.pi * 100.0 * t))[..., None]
    elif kind == "pumping":
        from nodes.common.color import linear_to_srgb, srgb_to_linear
        k = np.exp(0.3 * np.sin(2 * np.pi * np.arange(n) / 7.0)).astype(np.float32)
        x = linear_to_srgb(srgb_to_linear(x / 255.0) * k[:, None, None, None]) * 255.0
    elif kind != "steady":
        raise ValueError(f"unknown flicker {kind!r}")
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def add_dust(frames: np.ndarray, rng: np.random.Generator, specks: int = 12) -> np.ndarray:
    """Dirt on scanned film, one frame each: per frame `specks` soft specks (ellipses 1-5 px in radius, dark
    10-40 or light 215-250) and one short hair (a curve 10-30 px long, 1 px wide, dark)."""
    out = frames.copy()
    h, w = frames.shape[1:3]
    for f in out:
        mask, level = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        for _ in range(specks):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
            v = float(rng.uniform(10, 40) if rng.random() < 0.6 else rng.uniform(215, 250))
            cv2.ellipse(mask, c, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
            cv2.ellipse(level, c, axes, 0, 0, 360, v, -1)
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        t = np.linspace(0, 1, 12)
        length, bend, ang = rng.uniform(10, 30), rng.uniform(-6, 6), rng.uniform(0, np.pi)
        pts = np.stack([x0 + length * t * np.cos(ang) + bend * t * t * np.sin(ang),
                        y0 + length * t * np.sin(ang) - bend * t * t * np.cos(ang)], 1).astype(np.int32)
        cv2.polylines(mask, [pts], False, 1.0, 1)
        cv2.polylines(level, [pts], False, 20.0, 1)
        soft = cv2.GaussianBlur(mask, (0, 0), 0.7)[..., None]
        f[:] = np.clip(f * (1 - soft) + level[..., None] * soft + 0.5, 0, 255).astype(np.uint8)
    return out


def flicker_left(out: np.ndarray, truth: np.ndarray, grid: int = 4) -> float:
    """Flicker against the clean clip, in 8-bit levels, needing no flow: in each region of a grid x grid grid,
    the frame-to-frame change of (its mean luma in out - in truth); the mean over regions and frames."""
    d = (out.astype(np.float32) - truth.astype(np.float32)) @ np.float32([0.2126, 0.7152, 0.0722])
    n, h, w = d.shape
    m = d[:, : h // grid * grid, : w // grid * grid].reshape(n, grid, h // grid, grid, w // grid).mean(axis=(2, 4))
    return float(np.abs(np.diff(m, axis=0)).mean())


def shake(frames: np.ndarray, rng: np.random.Generator, amount: float = 6.0) -> np.ndarray:
    out = np.empty_like(frames)
    for i, f in enumerate(frames):
        dx, dy = rng.uniform(-amount, amount, 2)
        m = np.float64([[1, 0, dx], [0, 1, dy]])
        out[i] = cv2.warpAffine(f, m, (f.shape[1], f.shape[0]), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT101)
    return out


def weave(frames: np.ndarray) -> np.ndarray:
    out = frames[0::2].copy()
    out[:, 1::2] = frames[1::2][:, 1::2]
    return out


def telecine(film: np.ndarray) -> np.ndarray:
    out = []
    for k in range(0, len(film) - 3, 4):
        a, b, c, d = film[k:k + 4]
        bc, cd = b.copy(), c.copy()
        bc[1::2], cd[1::2] = c[1::2], d[1::2]
        out += [a, b, bc, cd, d]
    return np.stack(out)


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


def scores(out, truth, margin=0):
    m = (slice(margin, -margin), slice(margin, -margin)) if margin else (slice(None), slice(None))
    n = min(len(out), len(truth))
    mse = np.mean([np.mean((a[m].astype(np.float64) - b[m]) ** 2) for a, b in zip(out[:n], truth[:n])])
    return (10 * np.log10(255.0 ** 2 / mse) if mse > 0 else float("inf"),
            float(np.mean([ssim(a[m], b[m]) for a, b in zip(out[:n], truth[:n])])))


def table(title, truth, damaged, rows, margin=0, extra=None):
    """rows: (label, fn) pairs, each fn giving the restored frames; prints PSNR, SSIM and time."""
    print(f"\n== {title} ==")
    p, s = scores(damaged, truth, margin)
    print(f"  {'damaged':36s} {p:6.2f} dB  SSIM {s:.4f}" + (f"  {extra(damaged)}" if extra else ""))
    for label, fn in rows:
        out, t = timed(fn)
        p, s = scores(out, truth, margin)
        print(f"  {label:36s} {p:6.2f} dB  SSIM {s:.4f}  {t:6.2f} s" + (f"  {extra(out)}" if extra else ""))


def vidstab(frames):
    with tempfile.TemporaryDirectory() as d:
        trf = os.path.join(d, "t.trf")
        ffmpeg_filter(frames, f"format=yuv444p,vidstabdetect=result={trf}:shakiness=8,format=rgb24")
        return ffmpeg_filter(frames, f"format=yuv444p,vidstabtransform=input={trf}:optzoom=0:crop=keep,"
                                     "format=rgb24")


DEFLICKERS = (
    ("ffmpeg deflicker", lambda x: ffmpeg_filter(x, "format=gbrp,deflicker,format=rgb24")),
    ("one gain a frame", lambda x: node("deflicker", x, tone="gain", local=False)),
    ("restore.deflicker", lambda x: node("deflicker", x)),
)


def deflicker_tables(frames: int, clips, seed: int) -> None:
    from bench.interpolation_real import real_clip
    summary = {kind: {name: [] for name in ("damaged",) + tuple(n for n, _ in DEFLICKERS)} for kind in FLICKERS}
    for clip in clips:
        clean = real_clip(clip, frames)
        print(f"\n== deflicker on {clip} ({len(clean)} frames {clean.shape[2]}x{clean.shape[1]}): PSNR dB "
              f"(flicker left, levels), time ==")
        for kind in FLICKERS:
            damaged = add_flicker(clean, kind, np.random.default_rng(seed))
            p = scores(damaged, clean)[0]
            summary[kind]["damaged"].append(p)
            line = f"  {kind:10s} damaged {p:6.2f} ({flicker_left(damaged, clean):4.2f})"
            for name, fn in DEFLICKERS:
                out, t = timed(lambda: fn(damaged))
                p = scores(out, clean)[0]
                summary[kind][name].append(p)
                line += f" | {name} {p:6.2f} ({flicker_left(out, clean):4.2f}) {t:5.2f} s"
            print(line.replace(" inf ", "  inf"))
    print(f"\n== deflicker, mean PSNR over {', '.join(clips)} (dB; steady: against the input, capped at 80) ==")
    for kind, rows in summary.items():
        print(f"  {kind:10s} " + " | ".join(f"{name} {np.mean(np.minimum(v, 80.0)):6.2f}" for name, v in rows.items()))
    for kind, text in FLICKERS.items():
        print(f"  {kind}: {text}")


def run(frames: int, clip: str, seed: int, only, flicker_clips=("bikes", "carphone", "city", "portrait")) -> None:
    rng = np.random.default_rng(seed)
    if clip == "footage":
        from bench.footage import footage
        clean = footage(frames, 640, 360, seed=seed)
    else:
        from bench.interpolation_real import real_clip
        clean = real_clip(clip, frames)
    print(f"footage: {clip}, {len(clean)} frames {clean.shape[2]}x{clean.shape[1]}")

    if "denoise" in only:
        noisy = add_noise(clean, rng)
        yuv = "format=yuv444p,{},format=rgb24".format
        table("denoise: Gaussian noise sigma 10", clean, noisy, [
            ("ffmpeg hqdn3d (defaults)", lambda: ffmpeg_filter(noisy, yuv("hqdn3d"))),
            ("ffmpeg hqdn3d=8:6:12:9 (strong)", lambda: ffmpeg_filter(noisy, yuv("hqdn3d=8:6:12:9"))),
            ("ffmpeg nlmeans=s=6", lambda: ffmpeg_filter(noisy, yuv("nlmeans=s=6"))),
            ("ffmpeg atadenoise (defaults)", lambda: ffmpeg_filter(noisy, yuv("atadenoise"))),
            ("kinograph restore.denoise", lambda: node("denoise", noisy)),
        ])

    if "deblur" in only:
        blurred = add_noise(np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in clean]), rng, 2.0)
        table("deblur: Gaussian blur 1.5 px, noise 2 levels", clean, blurred, [
            ("ffmpeg unsharp (defaults)", lambda: ffmpeg_filter(blurred, "format=gbrp,unsharp,format=rgb24")),
            ("ffmpeg unsharp=7:7:1.5", lambda: ffmpeg_filter(blurred, "format=gbrp,unsharp=7:7:1.5,format=rgb24")),
            ("kinograph restore.deblur (defaults)", lambda: node("deblur", blurred)),
        ])

    if "deflicker" in only:
        deflicker_tables(frames, flicker_clips, seed)

    if "dust" in only:
        dusty = add_dust(clean, rng)
        table("dust: 12 specks and a hair per frame", clean, dusty, [
            ("ffmpeg tmedian (radius 1)", lambda: ffmpeg_filter(dusty, "format=gbrp,tmedian=radius=1,format=rgb24")),
            ("kinograph restore.dust", lambda: node("dust", dusty)),
        ])
        table("dust: the clean clip (what each harms)", clean, clean, [
            ("ffmpeg tmedian (radius 1)", lambda: ffmpeg_filter(clean, "format=gbrp,tmedian=radius=1,format=rgb24")),
            ("kinograph restore.dust", lambda: node("dust", clean)),
        ])

    if "stabilize" in only:
        shaken = shake(clean, rng)
        clean_disp = displacements(clean)
        table("stabilize: random shift up to 6 px per axis", clean, shaken, [
            ("ffmpeg deshake (defaults)", lambda: ffmpeg_filter(shaken, "format=yuv444p,deshake,format=rgb24")),
            ("ffmpeg vidstab (2 passes, no zoom)", lambda: vidstab(shaken)),
            ("kinograph restore.stabilize reflect", lambda: node("stabilize", shaken, border="reflect")),
        ], margin=MARGIN, extra=lambda x: f"jitter {jitter(x, clean_disp):.2f} px/frame")

    if "deinterlace" in only:
        prog = clean[: len(clean) // 2 * 2]
        inter = weave(prog)
        table("deinterlace: woven top field first, one picture per field", prog, np.repeat(inter, 2, axis=0), [
            ("ffmpeg bwdif=send_field:tff", lambda: ffmpeg_filter(inter, "format=gbrp,bwdif=1:0:0,format=rgb24")),
            ("ffmpeg yadif=send_field:tff", lambda: ffmpeg_filter(inter, "format=gbrp,yadif=1:0:0,format=rgb24")),
            ("kinograph restore.deinterlace auto", lambda: node("deinterlace", inter, rate="field")),
        ])

    if "ivtc" in only:
        film = clean[: len(clean) // 4 * 4]
        video = telecine(film)
        # Damaged, and deinterlaced: the frames A B BC CD DD of each five, less the second B (so in step).
        table("ivtc: 3:2 pulldown (29.97 from 23.976)", film, np.delete(video, np.s_[2::5], axis=0), [
            ("ffmpeg fieldmatch,decimate", lambda: ffmpeg_filter(video, "format=yuv444p,fieldmatch,decimate,"
                                                                        "format=rgb24", 29.97)),
            ("ffmpeg bwdif (deinterlace instead)", lambda: np.delete(
                ffmpeg_filter(video, "format=gbrp,bwdif=0:0:0,format=rgb24", 29.97), np.s_[2::5], axis=0)),
            ("kinograph restore.ivtc", lambda: node("ivtc", video)),
        ])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--clip", default="bikes", help="a real clip of bench/interpolation_real.py, or footage")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    ap.add_argument("--flicker-clips", default="bikes,carphone,city,portrait",
                    help="the real clips the deflicker section runs on")
    a = ap.parse_args()
    run(a.frames, a.clip, a.seed, set(a.only.split(",")), a.flicker_clips.split(","))
