"""Per-frame quality and temporal-consistency measures (plain functions on uint8 frames).

PSNR and SSIM follow the standard definitions (SSIM: Wang et al. 2004, 11-tap Gaussian
window with sigma 1.5, K1 = 0.01, K2 = 0.03, averaged over channels and over the frame less
a 5-pixel border), so they agree with scikit-image's `peak_signal_noise_ratio` and
`structural_similarity(gaussian_weights=True, use_sample_covariance=False, data_range=255)`.
The warping error is Lai et al. 2018's E_warp: mean squared difference (RGB in [0, 1])
between a frame and the previous one warped onto it by flow, over non-occluded pixels; a pair
where the flow check finds (almost) no pixel visible in both frames is not measured (NaN)."""
from __future__ import annotations

import cv2
import numpy as np

from nodes.common.color import luma_u8
from nodes.common.flow import backward_warp, consistency_mask, estimate_flow, flow_magnitude, to_gray

SSIM_WINDOW = 11  # SSIM's Gaussian window: smaller frames cannot be measured
PSNR_CAP = 100.0   # identical frames: reported as 100 dB so results stay valid JSON
FLOW_WIDTH = 512   # flow-based measures run at most this wide; magnitudes are scaled back
# A finer flow preset than the processing nodes use by default, so a filter is not scored by
# the very flow field it was built on.
FLOW_QUALITY = "best"
# The share of a pair's pixels (at flow size) the flow check must find visible in both frames for
# E_warp to be measured: below it the pair is NaN, not 0. Unrelated frames (noise, a hard cut) can
# leave no pixel at all, and an empty average scored them 0, a perfectly steady pair.
MIN_VISIBLE = 0.001


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    # OpenCV sums the squared differences in integers: the same MSE as in float64, without the four float64
    # copies of the frame (200 MB at 1080p) that took it there.
    mse = cv2.norm(np.ascontiguousarray(a), np.ascontiguousarray(b), cv2.NORM_L2SQR) / a.size
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * np.log10(255.0 ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(ssim_too_small(a.shape[1], a.shape[0]))

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    means = []
    # One channel at a time, in float32 and OpenCV's arithmetic: float64 numpy maps took 0.42 s a 1080p frame
    # (7 minutes for a minute of footage), and their size had the kernel faulting pages in half the time.
    # float32 moves the score by about 1e-7. The variances enter only as sigma_x^2 + sigma_y^2, so the two
    # squares share one blur (a blur is linear): four blurs a channel, not five.
    for ch in range(a.shape[2]) if a.ndim == 3 else (None,):
        x = (a if ch is None else a[..., ch]).astype(np.float32)
        y = (b if ch is None else b[..., ch]).astype(np.float32)
        mx, my = blur(x), blur(y)
        mxy, mm = cv2.multiply(mx, my), cv2.add(cv2.multiply(mx, mx), cv2.multiply(my, my))
        cov = cv2.subtract(blur(cv2.multiply(x, y)), mxy)
        var = cv2.subtract(blur(cv2.add(cv2.multiply(x, x), cv2.multiply(y, y))), mm)
        num = cv2.multiply(cv2.add(2 * mxy, c1), cv2.add(2 * cov, c2))
        s = cv2.divide(num, cv2.multiply(cv2.add(mm, c1), cv2.add(var, c2)))
        means.append(s[5:-5, 5:-5].mean(dtype=np.float64))
    return float(np.mean(means))


def luma_601(frame: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma of 8-bit RGB, float32 in 16..235 and not rounded: the Y channel that
    super-resolution papers measure PSNR and SSIM on (BasicSR's to_y_channel). MATLAB's rgb2ycbcr rounds it to
    integers, which reads lower where the error is small: 0.24 dB at 43 dB, 0.02 dB at 31 dB (bikes)."""
    return frame.astype(np.float32) @ np.float32([65.481, 128.553, 24.966]) / np.float32(255) + np.float32(16)


def ssim_too_small(width: int, height: int) -> str:
    return (f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (its window), the clips are "
            f"{width}x{height}: enlarge both the same way (upscale.resize) or measure PSNR")


def mean_luma(frame: np.ndarray) -> float:
    return float(luma_u8(frame).mean())


def sharpness(frame: np.ndarray) -> float:
    """Variance of the Laplacian of luma: higher is sharper (a standard focus measure)."""
    return float(cv2.Laplacian(luma_u8(frame), cv2.CV_32F).var())


def _work_size(frame: np.ndarray):
    h, w = frame.shape[:2]
    f = min(1.0, FLOW_WIDTH / w)
    return f, (max(8, round(w * f)), max(8, round(h * f)))


def _shrink(frame: np.ndarray, size) -> np.ndarray:
    return frame if (frame.shape[1], frame.shape[0]) == size else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


# The flows a measure may be judged with. DIS is the family Kinograph's own temporal nodes carry frames with
# (stylize.temporal, restore): a filter built on it is then judged along its own kind of flow. Farneback's
# polynomial-expansion flow shares nothing with it. stylize.temporal's cut of a shimmering stylization's E_warp
# read 87% by DIS and 75% by Farneback on bikes (fast pan), 96.7% and 96.5% on portrait (slow): Farneback is
# itself less exact on large motion (bikes' own frames: E_warp 0.54e-3 against DIS's 0.25e-3).
FLOWS = ("dis", "farneback")


def _farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Flow from a to b by Farneback's method (OpenCV), settings that did best on the bench clips' own frames."""
    return cv2.calcOpticalFlowFarneback(to_gray(a), to_gray(b), None, 0.5, 6, 11, 5, 5, 1.1, 0)


def pair_flow(prev: np.ndarray, cur: np.ndarray, method: str = "dis"):
    """The flows between two frames at flow size: (scale, size, fwd cur->prev, bwd prev->cur, visible mask).
    Computed once a pair for every flow-based measure of that pair (metrics.report measures several)."""
    f, size = _work_size(cur)
    p, c = _shrink(prev, size), _shrink(cur, size)
    if method == "farneback":
        fwd, bwd = _farneback(c, p), _farneback(p, c)
    else:
        fwd, bwd = estimate_flow(c, p, FLOW_QUALITY), estimate_flow(p, c, FLOW_QUALITY)
    return f, size, fwd, bwd, consistency_mask(fwd, bwd)


def motion(prev: np.ndarray, cur: np.ndarray, flow=None) -> float:
    """Mean optical-flow magnitude from prev to cur, in pixels of the full frame."""
    f, _, _, bwd, _ = flow or pair_flow(prev, cur)
    return float(flow_magnitude(bwd).mean() / f)


def _measurable(mask: np.ndarray) -> bool:
    return mask.sum() >= max(1.0, MIN_VISIBLE * mask.size)


def warp_error(prev_out: np.ndarray, cur_out: np.ndarray, prev_src: np.ndarray, cur_src: np.ndarray,
               flow=None) -> float:
    """E_warp between consecutive output frames, with flow and occlusions taken from the source frames
    (`flow`: pair_flow of the source frames, if already computed); NaN where the flow check leaves fewer than
    MIN_VISIBLE of the pixels to measure."""
    _, size, fwd, _, mask = flow or pair_flow(prev_src, cur_src)
    if not _measurable(mask):
        return float("nan")
    po, co = _shrink(prev_out, size).astype(np.float32) / 255.0, _shrink(cur_out, size).astype(np.float32) / 255.0
    diff = np.sum((co - backward_warp(po, fwd)) ** 2, axis=-1) / 3.0
    return float((diff * mask).sum() / mask.sum())


FLICKER_GRID = 4   # flicker is measured in a 4x4 grid of regions of the frame


def flicker(prev: np.ndarray, cur: np.ndarray, flow=None) -> float:
    """Brightness flicker between two frames, in 8-bit levels: in each region of a FLICKER_GRID x FLICKER_GRID
    grid, the mean change of luma from the previous frame carried onto this one by flow (over the pixels
    visible in both), as a magnitude; the mean over the regions. A whole-frame change of d levels reads d.

    The change of the whole frame's mean luma, as it was, is what restore.deflicker evens out (one gain a
    frame): on a clip whose left half flickered by 12 levels it read 6.0 before and 5.1 after, while the
    deflicker had made the right half flicker by 13. Regions see that (6.0 -> 8.1); motion compensation keeps
    a pan from reading as flicker (bikes: 1.1 levels of 'flicker' without it, 0.4 with). NaN where the flow
    check finds almost nothing visible in both frames (a cut is not flicker)."""
    _, size, fwd, _, mask = flow or pair_flow(prev, cur)
    if not _measurable(mask):
        return float("nan")
    p, c = _shrink(prev, size), _shrink(cur, size)
    change = (luma_u8(c) - luma_u8(backward_warp(p, fwd))) * mask
    h, w = mask.shape
    ys = np.linspace(0, h, FLICKER_GRID + 1).round().astype(int)
    xs = np.linspace(0, w, FLICKER_GRID + 1).round().astype(int)
    levels = []
    for y0, y1 in zip(ys[:-1], ys[1:]):
        for x0, x1 in zip(xs[:-1], xs[1:]):
            seen = mask[y0:y1, x0:x1].sum()
            if seen >= 0.05 * (y1 - y0) * (x1 - x0):      # a region (almost) all occluded says nothing
                levels.append(abs(float(change[y0:y1, x0:x1].sum()) / seen))
    return float(np.mean(levels)) if levels else float("nan")
