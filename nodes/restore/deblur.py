"""Deblurring: unsharp masking, Wiener and Richardson-Lucy deconvolution.

The blur kernel is a Gaussian (given or estimated), a linear motion streak, or a PSF image
the user supplies. Estimation follows Zhuo & Sim (2011): re-blurring a step edge of blur
sigma by sigma_r lowers its gradient peak by sqrt(sigma^2 + sigma_r^2) / sigma, so the
median ratio over strong edges gives sigma. It assumes roughly uniform Gaussian-like blur
(defocus, soft upscales); for motion blur give the kernel."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np

from nodes.common.noise import estimate_noise

REBLUR_SIGMA = 1.0
# Wiener's noise-to-signal ratio when it is not given: BALANCE_FLOOR + BALANCE_PER_LEVEL * the frame's noise
# (8-bit levels). Natural pictures hold little fine detail, so the ratio the deconvolution needs grows
# with the noise far faster than a flat-spectrum Wiener filter assumes. Over 60 cases (4 real clips and
# bench footage at half size, blur 0.7-2 px, noise 0-6 levels) this came within 0.8 dB of the best fixed
# ratio on average and never 0.4 dB below the blurred input; the old constant 0.005 lost up to 11 dB
# against the input on footage with any noise (a sharp clip with noise 3 came out 13 dB worse).
BALANCE_FLOOR = 0.001
BALANCE_PER_LEVEL = 0.03


def gaussian_kernel(sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(3 * sigma)))
    g = cv2.getGaussianKernel(2 * r + 1, sigma)
    return (g @ g.T).astype(np.float32)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A straight streak `length` px long at `angle` degrees, anti-aliased by supersampling."""
    ss = 8
    size = int(np.ceil(length)) | 1
    big = np.zeros((size * ss, size * ss), np.float32)
    c = (size * ss - 1) / 2.0
    dx, dy = np.cos(np.radians(angle)) * length * ss / 2, -np.sin(np.radians(angle)) * length * ss / 2
    cv2.line(big, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, thickness=ss,
             lineType=cv2.LINE_AA)
    k = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    return k / k.sum()


def load_kernel(path: str, most: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """A PSF from an image (grayscale, any bit depth) or a .npy array, normalised to sum 1. `most`: the largest
    (height, width) it may be (the frames'), refused from the file's header before its values are read."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"blur kernel file {path} not found: give a grayscale PSF image or a .npy array")
    if p.suffix.lower() == ".npy":
        try:
            # Mapped, not read: the header's shape is checked against the file's size (a 64-byte .npy claiming
            # 60000x60000 values asked for 27 GB and failed as 'out of memory: give it smaller frames').
            k = np.load(p, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"blur kernel file {path} is not a whole .npy array ({e}): save it again with numpy.save")
    else:
        _check_declared(p, most)
        k = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    if k is None or np.asarray(k).ndim != 2 or np.asarray(k).dtype.kind not in "biuf":
        raise ValueError(f"blur kernel file {path} is not a 2-D grayscale image or array of numbers")
    check_size(k.shape, most, _crop(path))
    k = np.asarray(k, np.float32)
    # NaN passes both comparisons below; a NaN kernel deblurred every frame to black with only numpy's
    # 'invalid value' warnings.
    if not np.isfinite(k).all() or k.min() < 0 or k.sum() <= 0:
        raise ValueError(f"blur kernel in {path} must be finite, non-negative and not all zero")
    return k / k.sum()


def check_size(shape, most: Optional[Tuple[int, int]], fix: str) -> None:
    """Refuse a kernel of `shape` larger than frames of `most` (height, width), saying `fix`."""
    if most is not None and (shape[0] > most[0] or shape[1] > most[1]):
        # A picture given as the PSF: deconvolving by it is meaningless, and Richardson-Lucy spent minutes on it.
        raise ValueError(f"the blur kernel is {shape[1]}x{shape[0]}, larger than the {most[1]}x{most[0]} frames: a "
                         f"PSF is the blur of one point (a few to a few dozen pixels across); {fix}")


def _crop(path) -> str:
    return f"crop {path}'s image to the blur"


def _check_declared(p: Path, most: Optional[Tuple[int, int]]) -> None:
    """Refuse a PSF picture by the size its header declares, before OpenCV decodes it: a 400 KB PNG of
    20000x20000 took 400 MB to be refused as larger than the frames."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(p) as im:
            width, height = im.size
    except Image.DecompressionBombError:       # over Pillow's pixel limit: no frame is that large either
        raise ValueError(f"blur kernel file {p} is a picture of over {2 * Image.MAX_IMAGE_PIXELS:,} pixels, not the "
                         f"blur of one point (a few to a few dozen pixels across): {_crop(p)}") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return          # a format Pillow does not know: OpenCV says what it makes of it
    check_size((height, width), most, _crop(p))


def estimate_sigma(frame: np.ndarray) -> float:
    """Gaussian blur sigma of a frame from the gradient drop on re-blurring its strong edges."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)

    def grad(img):
        return np.hypot(cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3))

    g0 = grad(gray)
    g1 = grad(cv2.GaussianBlur(gray, (0, 0), REBLUR_SIGMA))
    edges = cv2.Canny(cv2.GaussianBlur(gray, (0, 0), 1.0).astype(np.uint8), 30, 90) > 0
    strong = edges & (g0 > np.percentile(g0[edges], 50)) if edges.any() else edges
    if strong.sum() < 20:
        return 0.0
    ratio = np.median(g0[strong] / np.maximum(g1[strong], 1e-3))
    # The Sobel operator itself spreads an edge by ~0.7 px; remove it so sharp frames read ~0.
    total = REBLUR_SIGMA / np.sqrt(max(ratio ** 2 - 1.0, 1e-6))
    return float(np.sqrt(max(total ** 2 - 0.5, 0.0)))


def _out(levels: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The result in levels as the input came: uint8 rounded and clipped, or a deep plate's float levels (sRGB-coded
    x 255, past 255 above 1.0: stream.levels_frames) as they are."""
    return np.clip(levels + 0.5, 0, 255).astype(np.uint8) if frame.dtype == np.uint8 else levels.astype(np.float32)


def unsharp(frame: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    f = frame.astype(np.float32)
    return _out(f + amount * (f - cv2.GaussianBlur(f, (0, 0), sigma)), frame)


def _padded(frame: np.ndarray, k: np.ndarray):
    # Reflect-padding by the kernel size keeps the periodic FFT from wrapping edges into ringing.
    p = max(k.shape) * 2
    return cv2.copyMakeBorder(frame.astype(np.float32) / 255.0, p, p, p, p, cv2.BORDER_REFLECT), p


def _otf(k: np.ndarray, shape) -> np.ndarray:
    big = np.zeros(shape, np.float32)
    kh, kw = k.shape
    big[:kh, :kw] = k
    big = np.roll(big, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return np.fft.rfft2(big)


def auto_balance(frame: np.ndarray) -> float:
    return BALANCE_FLOOR + BALANCE_PER_LEVEL * estimate_noise(frame)


def wiener(frame: np.ndarray, k: np.ndarray, balance: float = 0.0) -> np.ndarray:
    """Wiener deconvolution with a constant noise-to-signal ratio `balance` (0: from the frame's noise,
    auto_balance), scaled so flat areas keep their level: the plain filter passes 1 / (1 + balance) of
    the mean (the kernel sums to 1), so raising `balance` against ringing darkened the whole picture
    (0.1: 9%, 0.5: a third)."""
    if balance <= 0:        # a deep plate's noise read on its 8-bit picture, as its 8-bit frames are
        balance = auto_balance(frame if frame.dtype == np.uint8 else np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    img, p = _padded(frame, k)
    h = _otf(k, img.shape[:2])
    filt = np.conj(h) * (1.0 + balance) / (np.abs(h) ** 2 + balance)
    out = np.stack([np.fft.irfft2(np.fft.rfft2(img[..., c]) * filt, s=img.shape[:2]) for c in range(3)], -1)
    return _out(out[p:-p, p:-p] * 255.0, frame)


def richardson_lucy(frame: np.ndarray, k: np.ndarray, iterations: int = 20) -> np.ndarray:
    img, p = _padded(frame, k)
    img = np.maximum(img, 1e-4)
    est = img.copy()
    flipped = k[::-1, ::-1].copy()
    for _ in range(iterations):
        blurred = cv2.filter2D(est, -1, flipped, borderType=cv2.BORDER_REFLECT)
        est *= cv2.filter2D(img / np.maximum(blurred, 1e-4), -1, k, borderType=cv2.BORDER_REFLECT)
    return _out(est[p:-p, p:-p] * 255.0, frame)


def choose_kernel(kind: str, sigma: float, length: float, angle: float, path: Optional[str],
                  sample_frames, most: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """The PSF for a whole clip; 'auto' estimates a Gaussian from a few frames spread over it. `most`: the largest
    (height, width) a kernel file may be (load_kernel)."""
    if kind == "file":
        return load_kernel(path or "", most)
    if kind == "motion":
        return motion_kernel(length, angle)
    if kind == "auto":
        sigma = float(np.median([estimate_sigma(f) for f in sample_frames]))
    return gaussian_kernel(max(sigma, 0.3))
