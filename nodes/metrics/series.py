"""Per-frame metric series over whole clips, streamed chunk by chunk (memory flat in length).

Each function returns a list with one value per frame (pairwise measures: one per frame
from the second on) and reports progress through ctx."""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np

from graph_engine import NodeError
from nodes.metrics import measures


def _same_duration(a, b) -> bool:
    """Within a frame of each other, at two different rates."""
    if abs(a.fps - b.fps) <= 1e-3 * max(a.fps, b.fps):
        return False
    return abs(a.length / a.fps - b.length / b.fps) <= max(1 / a.fps, 1 / b.fps) + 1e-9


def _pairs(ctx, clips, what: str, names=("video", "reference")):
    """Yield aligned frames of several equal-length clips (named `names` in messages), in order."""
    n = clips[0].length
    for c, name in zip(clips[1:], names[1:]):
        if c.length != n and c.size == clips[0].size and _same_duration(clips[0], c):
            # An interpolated or resampled clip against its source: trimming (the advice below) would compare
            # different moments; what they need is one frame rate.
            raise NodeError(f"{what}: the clips last as long but have {n} and {c.length} frames, at "
                            f"{clips[0].fps:g} and {c.fps:g} fps; resample one to the other's rate (video.fps) to "
                            f"compare frame with frame")
        # Which input differs, and in what: "the clips differ (Clip(...) vs Clip(...))" left the reader to
        # compare two reprs and did not say which was the video.
        if c.size != clips[0].size:
            raise NodeError(f"{what}: the video is {clips[0].width}x{clips[0].height} and the {name} "
                            f"{c.width}x{c.height}; frames are compared pixel by pixel, so resize one to the other's "
                            f"size first (video.resize)")
        if c.length != n:
            raise NodeError(f"{what}: the video has {n} frames and the {name} {c.length} (at {clips[0].fps:g} and "
                            f"{c.fps:g} fps); compare clips of the same length: trim one first (video.trim) so "
                            f"frame i of each shows the same moment")
        if ctx is not None and abs(c.fps - clips[0].fps) > 1e-3 * max(c.fps, clips[0].fps):
            # Frame i meets frame i: at two rates they are different moments, and the score says nothing of it.
            ctx.log(f"{what}: the clips run at {clips[0].fps:g} and {c.fps:g} fps; frame i is compared with frame "
                    f"i, which are different moments. Resample one (video.fps) to compare like with like")
    step = clips[0].chunk
    for a in range(0, n, step):
        b = min(n, a + step)
        blocks = [c.frames(a, b) for c in clips]
        for k in range(b - a):
            yield tuple(block[k] for block in blocks)
        if ctx is not None:
            ctx.progress(b, n, what)


def reference_series(ctx, video, reference, fn: Callable, what: str) -> List[float]:
    return [fn(a, r) for a, r in _pairs(ctx, [video, reference], what)]


def frame_series(ctx, video, fn: Callable, what: str) -> List[float]:
    return [fn(f) for (f,) in _pairs(ctx, [video], what)]


def series_of(ctx, names: List[str], video, reference=None, source=None, what: str = "",
              warp_flow: str = "dis", channels: str = "rgb") -> Dict[str, List[float]]:
    """The series of several metrics in one pass over the clips. Each frame is pulled once whatever the
    number of metrics: a lazy clip computes its whole chain upstream for every pass, so metrics.report's
    six metrics, measured one after another, ran that chain six times. psnr/ssim need `reference`;
    warp_error measures flow on `source` when given, by `warp_flow` (measures.FLOWS). psnr and ssim compare
    `channels`: "rgb", or "y" (measures.luma_601)."""
    clips, labels, ref, src = [video], ["video"], None, 0
    if any(n in NEEDS_REFERENCE for n in names):
        ref = len(clips)
        clips.append(reference)
        labels.append("reference")
    if "warp_error" in names and source is not None:
        src = len(clips)
        clips.append(source)
        labels.append("source")
    out: Dict[str, List[float]] = {n: [] for n in names}
    prev = None
    for cur in _pairs(ctx, clips, what or ", ".join(names), labels):
        v = cur[0]
        flows = {}      # a pair's flows, by clip, computed once for motion, flicker and warp_error

        def flow(k, method="dis"):
            if (k, method) not in flows:
                flows[k, method] = measures.pair_flow(prev[k], cur[k], method)
            return flows[k, method]

        if ref is not None:
            a, b = (v, cur[ref]) if channels == "rgb" else (measures.luma_601(v), measures.luma_601(cur[ref]))
        for n in names:
            if n == "psnr":
                out[n].append(measures.psnr(a, b))
            elif n == "ssim":
                out[n].append(measures.ssim(a, b))
            elif n == "sharpness":
                out[n].append(measures.sharpness(v))
            elif prev is not None and n == "flicker":
                out[n].append(measures.flicker(prev[0], v, flow(0)))
            elif prev is not None and n == "motion":
                out[n].append(measures.motion(prev[0], v, flow(0)))
            elif prev is not None and n == "warp_error":
                out[n].append(measures.warp_error(prev[0], v, prev[src], cur[src], flow(src, warp_flow)))
        prev = cur
    return out


def psnr(ctx, video, reference, channels: str = "rgb") -> List[float]:
    return series_of(ctx, ["psnr"], video, reference, what="PSNR", channels=channels)["psnr"]


def ssim(ctx, video, reference, channels: str = "rgb") -> List[float]:
    if min(video.size) < measures.SSIM_WINDOW:     # refused before any frame is pulled, not as a ValueError
        raise NodeError(measures.ssim_too_small(*video.size))
    return series_of(ctx, ["ssim"], video, reference, what="SSIM", channels=channels)["ssim"]


def sharpness(ctx, video) -> List[float]:
    return series_of(ctx, ["sharpness"], video, what="sharpness")["sharpness"]


def flicker(ctx, video) -> List[float]:
    return series_of(ctx, ["flicker"], video, what="flicker")["flicker"]


def motion(ctx, video) -> List[float]:
    return series_of(ctx, ["motion"], video, what="motion")["motion"]


def warp_error(ctx, video, source=None, flow: str = "dis") -> List[float]:
    return series_of(ctx, ["warp_error"], video, source=source, what="warp error", warp_flow=flow)["warp_error"]


SERIES: Dict[str, Callable] = {"psnr": psnr, "ssim": ssim, "warp_error": warp_error, "flicker": flicker,
                               "sharpness": sharpness, "motion": motion}
NEEDS_REFERENCE = ("psnr", "ssim")
# Pairwise series start at the second frame.
PAIRWISE = ("warp_error", "flicker", "motion")


def summary(values: List[float], name: str = "") -> Optional[float]:
    """The mean of the measured values (NaN: a frame the metric could not measure); None if there are none.
    PSNR's mean leaves out the frames equal to the reference (see `identical`)."""
    same = set(identical(name, values))
    measured = [v for i, v in enumerate(values) if not np.isnan(v) and i not in same]
    if not measured and same:
        return measures.PSNR_CAP
    return float(np.mean(measured)) if measured else None


def identical(name: str, values: List[float]) -> List[int]:
    """PSNR's frames equal to their reference frame: their PSNR is infinite (ffmpeg prints inf), held in the
    series as PSNR_CAP so it stays valid JSON. Averaged as 100 dB they made the mean whatever share of such
    frames the clip had: an interpolated clip keeps its source frames unchanged, and one such frame in 20 raised
    a 32 dB mean to 35."""
    return [i for i, v in enumerate(values) if v >= measures.PSNR_CAP] if name == "psnr" else []


def psnr_of_mean_mse(values: List[float]) -> float:
    """PSNR of the mean squared error over all frames: what ffmpeg's psnr filter prints as `average`. It counts
    identical frames (as no error) without making the number infinite."""
    mse = np.mean([0.0 if v >= measures.PSNR_CAP else 255.0 ** 2 / 10 ** (v / 10) for v in values])
    return measures.PSNR_CAP if mse == 0 else min(measures.PSNR_CAP, float(10 * np.log10(255.0 ** 2 / mse)))


def conventions(name: str, values: List[float], channels: str = "rgb") -> dict:
    """What a reader of a metric's value needs beside it: its unit, its definition and, for PSNR, the frames
    left out of the mean as identical and ffmpeg's average."""
    definition = DEFINITIONS[name]
    if channels == "y" and name in NEEDS_REFERENCE:
        definition = definition.replace(ON_RGB[name], ON_Y)
    out = {"unit": UNITS[name], "definition": definition}
    if name in NEEDS_REFERENCE:
        out["channels"] = channels
    if name == "psnr" and values:
        same = identical(name, values)
        out["psnr_of_mean_mse"] = psnr_of_mean_mse(values)
        if same:
            out["identical"] = same
            out["identical_note"] = (
                f"{len(same)} of {len(values)} frames are identical to the reference (PSNR infinite, shown as "
                f"{measures.PSNR_CAP:g} dB): the value is the mean of the others" if len(same) < len(values) else
                f"every frame is identical to the reference (PSNR infinite): the value is the {measures.PSNR_CAP:g} "
                f"dB cap")
    return out


def unmeasured(values: List[float], first_frame: int = 0) -> List[int]:
    """The frames (numbered as in the clip; a pairwise series starts at frame 1) a series could not measure."""
    return [first_frame + i for i, v in enumerate(values) if np.isnan(v)]


def as_json(values: List[float]) -> List[Optional[float]]:
    """A series as JSON can hold it: NaN (not measured) as null."""
    return [None if np.isnan(v) else float(v) for v in values]


UNITS = {"psnr": "dB", "ssim": "", "warp_error": "", "flicker": "levels", "sharpness": "", "motion": "px",
         "lpips": "", "clip_score": ""}
# Each series' definition and conventions, written into reports and logs beside the numbers: a value is only
# comparable with a published one measured the same way (RGB or Y, which peak, per frame or pooled).
DEFINITIONS = {
    "psnr": "10 log10(255^2 / MSE) per frame, MSE over the R, G, B values of the 8-bit full-range frames (peak 255) "
            "as ffmpeg's psnr filter gives it on rgb24 input; the value is the mean of the per-frame values over "
            "frames that differ from the reference",
    "ssim": "Wang et al. 2004 per frame: Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, on each of R, G, B "
            "(8-bit, full range, L 255) and averaged, leaving out a 5-pixel border (scikit-image's "
            "structural_similarity with gaussian_weights=True, use_sample_covariance=False); the value is the mean "
            "over frames. ffmpeg's ssim filter is x264's: 8x8 windows on a 4-pixel grid and a luminance constant "
            "1/64 of C1: a thousandth or so apart on well-exposed footage, a few hundredths on small noisy frames, "
            "and far lower where the picture is near black",
    "warp_error": "Lai et al. 2018's E_warp: mean squared RGB difference (values in [0, 1]) between each frame and "
                  "the previous one warped onto it by optical flow, over the pixels the forward-backward check "
                  "finds visible in both; the value is the mean over frame pairs",
    "flicker": "in each region of a 4x4 grid, |mean change of luma (BT.709 weights on the 8-bit RGB values)| from "
               "the previous frame carried onto this one by optical flow, over the pixels visible in both; the mean "
               "over the regions, in 8-bit levels (a whole-frame change of d levels reads d); the value is the mean "
               "over frame pairs",
    "sharpness": "variance of the Laplacian of luma per frame (8-bit levels squared); the value is the mean over "
                 "frames",
    "motion": "mean optical-flow magnitude from the previous frame, in pixels of the frame; the value is the mean "
              "over frame pairs",
    "lpips": "Zhang et al. 2018's LPIPS (AlexNet, v0.1 linear heads) per frame on RGB in [-1, 1]; the value is the "
             "mean over frames",
    "clip_score": "100 x max(cosine of CLIP's image and text embeddings, 0) per frame (Hessel et al. 2021 without "
                  "the 2.5 rescale); the value is the mean over frames",
}

# The part of psnr's and ssim's definitions that says what is compared, and its replacement for channels="y".
ON_RGB = {"psnr": "the R, G, B values of the 8-bit full-range frames (peak 255)",
          "ssim": "each of R, G, B (8-bit, full range, L 255) and averaged"}
ON_Y = ("BT.601 studio-range luma, Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 of the 8-bit RGB, not rounded "
        "(as super-resolution papers and BasicSR measure; peak 255)")

# Why warp_error leaves a pair unmeasured, for the log and the report.
NOT_MEASURED = {name: "the flow check found almost no pixel visible in both frames (unrelated frames: noise, or "
                      "a cut)" for name in ("warp_error", "flicker")}
