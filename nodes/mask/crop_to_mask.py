"""ComfyUI's ImageCropToMask (comfy_extras/nodes_images.py, _crop_image_with_mask): the subject of a picture, found
by its mask, centred in a frame of the asked shape with a margin, its background painted one colour, as the 3-D
templates (Pixal3D, TRELLIS.2) hand a cut-out to their models, and as a product shot is framed.

Its steps, each as ComfyUI's: a mask whose border is mostly 1 and centre mostly 0 is taken inverted; it grows or
shrinks by a square of pixels; values under 0.05 become 0; a picture larger than the output is first brought down
(Lanczos, 8-bit, as comfy.utils.lanczos does with PIL); the box of the mask's pixels over 0.8 (204 of 255), grown
to the output's aspect and by pad_factor, is cut out (zeros past the picture's edge), laid over the colour by the
mask, and resized to the output (Lanczos again)."""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

from graph_engine import NodeError

THRESHOLD = 0.05        # _crop_image_with_mask's mask_threshold
FOREGROUND = 204        # its test of a mask's 8-bit value for the box


def colour(text: str) -> Tuple[float, float, float]:
    """ImageCropToMask's background: #rrggbb (any other length: black, as ComfyUI reads it)."""
    h = str(text).strip().lstrip("#")
    if len(h) != 6:
        return 0.0, 0.0, 0.0
    try:
        return tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
    except ValueError:
        raise NodeError(f"background={text!r}: give a colour as #rrggbb (#000000 for black)") from None


def lanczos(x: np.ndarray, width: int, height: int) -> np.ndarray:
    """comfy.utils.lanczos: float 0..1 to 8 bits (truncated), PIL's Lanczos, back to 0..1."""
    from PIL import Image
    u8 = np.clip(255.0 * x, 0, 255).astype(np.uint8)
    out = np.asarray(Image.fromarray(u8).resize((width, height), resample=Image.Resampling.LANCZOS))
    return out.astype(np.float32) / 255.0


def grown(mask: np.ndarray, pixels: int) -> np.ndarray:
    """max (min, for negative pixels) over a (2|pixels|+1)-square around each pixel, the picture's edge ignored"""
    import cv2
    if pixels == 0:
        return mask
    kernel = np.ones((2 * abs(pixels) + 1,) * 2, np.uint8)
    return cv2.dilate(mask, kernel) if pixels > 0 else cv2.erode(mask, kernel)


def crop_to_mask(frame: np.ndarray, mask: np.ndarray, width: int, height: int, pad_factor: float, grow: int,
                 background) -> np.ndarray:
    """uint8 [height, width, 3] of a uint8 [H, W, 3] frame and its float [h, w] mask."""
    import torch
    img = frame[..., :3].astype(np.float32) / 255.0
    m = np.clip(mask.astype(np.float32), 0.0, 1.0)
    if m.shape != img.shape[:2]:        # common_upscale's bilinear, no antialiasing
        m = torch.nn.functional.interpolate(torch.from_numpy(m)[None, None], size=img.shape[:2],
                                            mode="bilinear", align_corners=False)[0, 0].numpy()
    h, w = m.shape
    border = np.concatenate([m[0, :], m[-1, :], m[:, 0], m[:, -1]])
    if border.mean() > 0.5 and m[h // 4:h - h // 4, w // 4:w - w // 4].mean() < 0.5:
        m = 1.0 - m
    m = grown(np.ascontiguousarray(m), grow)
    m = np.where(m < THRESHOLD, 0.0, m).astype(np.float32)
    H, W = m.shape
    if max(H, W) > max(width, height):
        scale = max(width, height) / max(H, W)
        W, H = int(W * scale), int(H * scale)
        img, m = lanczos(img, W, H), lanczos(m, W, H)
    alpha = (np.clip(m, 0, 1) * 255.0).astype(np.uint8)
    ys, xs = np.nonzero(alpha > FOREGROUND)
    if ys.size == 0:
        ys, xs = np.nonzero(255 - alpha > FOREGROUND)
        if ys.size:
            m = 1.0 - m
    if ys.size:
        aspect = width / height
        cy, cx = (ys.min() + ys.max()) / 2.0, (xs.min() + xs.max()) / 2.0
        bw, bh = int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
        if bw / max(bh, 1) >= aspect:
            cw, ch = int(bw * pad_factor), int(bw / aspect * pad_factor)
        else:
            cw, ch = int(bh * aspect * pad_factor), int(bh * pad_factor)
        hw, hh = math.ceil(cw / 2), math.ceil(ch / 2)
        x1, y1 = int(cx - hw), int(cy - hh)
        x2, y2 = x1 + 2 * hw, y1 + 2 * hh
    else:
        x1, y1, x2, y2 = 0, 0, W, H
    pl, pt, pr, pb = max(0, -x1), max(0, -y1), max(0, x2 - W), max(0, y2 - H)
    img = np.pad(img, ((pt, pb), (pl, pr), (0, 0)))
    m = np.pad(m, ((pt, pb), (pl, pr)))
    img, m = img[y1 + pt:y2 + pt, x1 + pl:x2 + pl], m[y1 + pt:y2 + pt, x1 + pl:x2 + pl, None]
    laid = np.clip(img * m + np.asarray(background, np.float32) * (1.0 - m), 0.0, 1.0)
    return np.round(lanczos(laid, width, height) * 255.0).astype(np.uint8)
