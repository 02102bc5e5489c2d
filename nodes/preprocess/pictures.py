"""The pictures of comfyui_controlnet_aux's model-free preprocessors, in OpenCV as the pack computes them (its
custom_controlnet_aux detectors). Each returns uint8 HxWx3 at the size the pack returns it: ComfyUI gets the picture
at the detect resolution (the frame's short side scaled to `resolution`), not at the frame's size, and the
ControlNet apply stretches it to the generation's."""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from graph_engine import NodeError
from nodes.pose.geometry import detect_size

PAD = 64        # the detectors pad their input to whole 64s on the right and bottom (sd-webui-controlnet's rule)
MAX_SIDE = 16384    # ComfyUI's largest picture side (MAX_RESOLUTION), which the pack's resolution stops at too


def picture_size(h: int, w: int, resolution: int) -> Tuple[int, int]:
    """(height, width) of a preprocessor's picture of an h x w frame: its short side `resolution`."""
    return _fits(h, w, resolution, *detect_size(h, w, resolution))


def _fits(h: int, w: int, resolution: int, ph: int, pw: int) -> Tuple[int, int]:
    if max(ph, pw) > MAX_SIDE:
        most = int(MAX_SIDE * min(h, w) / max(h, w))
        raise NodeError(f"resolution {resolution} makes the pictures of this {w}x{h} clip {pw}x{ph} pixels, over "
                        f"{MAX_SIDE} a side: resolution is the short side, so for frames this long use {most} or "
                        "less")
    return ph, pw


def detect_sized(frame: np.ndarray, resolution: int,
                 upscale: int = cv2.INTER_CUBIC) -> Tuple[np.ndarray, Tuple[int, int]]:
    """(the frame scaled so its short side is `resolution` (by `upscale` up, each detector has its own; area down)
    and padded to multiples of 64 by repeating its edge pixels; (height, width) before the padding): the pack's
    resize_image_with_pad, which its line preprocessors (nodes/lines) share. The padding shows: Canny's gradients at
    the last rows read it, and Otsu's threshold counts its pixels."""
    h, w = frame.shape[:2]
    th, tw = picture_size(h, w, resolution)
    interp = upscale if resolution > min(h, w) else cv2.INTER_AREA
    img = cv2.resize(frame, (tw, th), interpolation=interp)
    return np.pad(img, [[0, -th % PAD], [0, -tw % PAD], [0, 0]], mode="edge"), (th, tw)


def canny_edges(frame: np.ndarray, low: int, high: int, resolution: int) -> np.ndarray:
    """CannyEdgePreprocessor: OpenCV's Canny on the sized RGB picture (the strongest channel's gradient), thresholds
    in 0..255 steps."""
    img, (th, tw) = detect_sized(frame, resolution)
    edges = cv2.Canny(img, int(low), int(high))[:th, :tw]
    return np.repeat(edges[..., None], 3, axis=2)


def binary_lines(frame: np.ndarray, threshold: int, resolution: int) -> np.ndarray:
    """BinaryPreprocessor: white where the sized picture's grey is above `threshold`, black elsewhere; 0 or 255
    picks the threshold by Otsu's method (over the padded picture, as the pack does)."""
    img, (th, tw) = detect_sized(frame, resolution)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if threshold in (0, 255):
        _, inv = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    else:
        _, inv = cv2.threshold(grey, int(threshold), 255, cv2.THRESH_BINARY_INV)
    return np.repeat((255 - inv)[:th, :tw, None], 3, axis=2)


def colour_size(h: int, w: int, resolution: int) -> Tuple[int, int]:
    """(height, width) of the colour grid: the short side `resolution`, the long one round(long / short x it) (the
    pack's own rounding, not the detect resolution's)."""
    if h < w:
        nh, nw = resolution, int(round(w / h * resolution))
    else:
        nh, nw = int(round(h / w * resolution)), resolution
    return _fits(h, w, resolution, nh, nw)


def colour_grid(frame: np.ndarray, resolution: int) -> np.ndarray:
    """ColorPreprocessor (T2I-Adapter color): the frame's short side to `resolution` (area), shrunk to one pixel per
    64x64 cell (cubic) and blown back up as flat cells (nearest)."""
    nh, nw = colour_size(*frame.shape[:2], resolution)
    img = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    cells = cv2.resize(img, (nw // PAD, nh // PAD), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(cells, (nw, nh), interpolation=cv2.INTER_NEAREST)


def tile_size(h: int, w: int, iterations: int) -> Tuple[int, int]:
    """(height, width) of the tile picture: each side rounded to whole 64s, then to whole 2^iterations."""
    k = 2 ** int(iterations)
    H, W = int(np.round(h / 64.0)) * 64, int(np.round(w / 64.0)) * 64
    if H // k < 1 or W // k < 1:
        raise NodeError(f"a {w}x{h} frame rounds to {W}x{H} pixels, too small to halve {iterations} times "
                        f"(pyrUp_iters): each side must round to {k} or more; lower the iterations or enlarge the "
                        "frames")
    return H // k * k, W // k * k


def tile_blur(frame: np.ndarray, iterations: int) -> np.ndarray:
    """TilePreprocessor: the frame's sides rounded to whole 64s, shrunk by 2^iterations (area) and brought back up
    by as many Gaussian pyramid steps (pyrUp). It takes no resolution: the picture is the frame's size, rounded."""
    H, W = tile_size(*frame.shape[:2], iterations)
    k = 2 ** int(iterations)
    small = cv2.resize(frame, (W // k, H // k), interpolation=cv2.INTER_AREA)
    for _ in range(int(iterations)):
        small = cv2.pyrUp(small)
    return small


SHUFFLE_CELL = 256      # the size of the shuffle's noise features in pixels (ContentShuffleDetector's f)


def noise_disk(h: int, w: int, cell: int, rng: np.random.Generator) -> np.ndarray:
    """float64 h x w x 1 smooth noise spread over 0..1 (the pack's make_noise_disk): uniform values on a grid one
    per `cell` pixels (two more each way), cubic-resized past the picture by a cell on each side, cut to it."""
    noise = rng.uniform(low=0, high=1, size=(h // cell + 2, w // cell + 2, 1))
    noise = cv2.resize(noise, (w + 2 * cell, h + 2 * cell), interpolation=cv2.INTER_CUBIC)[cell:cell + h, cell:cell + w]
    noise -= noise.min()
    noise /= noise.max()
    return noise[:, :, None]


def content_shuffle(frame: np.ndarray, resolution: int, seed: int) -> np.ndarray:
    """ShufflePreprocessor (ContentShuffleDetector): the sized, padded picture resampled at positions two smooth
    noise fields give (x from the first, y from the second, drawn from numpy's Generator seeded with `seed`)."""
    img, (th, tw) = detect_sized(frame, resolution)
    H, W = img.shape[:2]
    rng = np.random.default_rng(seed)
    x = noise_disk(H, W, SHUFFLE_CELL, rng) * float(W - 1)
    y = noise_disk(H, W, SHUFFLE_CELL, rng) * float(H - 1)
    flow = np.concatenate([x, y], axis=2).astype(np.float32)
    return cv2.remap(img, flow, None, cv2.INTER_LINEAR)[:th, :tw]


def inverted(frame: np.ndarray) -> np.ndarray:
    """ImageInvert: 1 - the picture, each channel (255 - v on 8 bits)."""
    return 255 - frame
