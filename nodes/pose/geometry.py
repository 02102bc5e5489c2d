"""The geometry of top-down pose estimation as DWPose runs it (RTMPose's preprocessing in comfyui_controlnet_aux),
and the sizes of its pictures: one place for the crop a person's box becomes, the way back from the crop to the
frame, and the size a pose picture is drawn at. Plain numpy; no model here."""
from __future__ import annotations

from typing import Tuple

import numpy as np

BOX_PADDING = 1.25          # the person box is grown by this before cropping (RTMPose's bbox_xyxy2cs padding)
RESIZE_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")


def box_centre_scale(boxes: np.ndarray, aspect: float) -> Tuple[np.ndarray, np.ndarray]:
    """(centre [n,2], scale [n,2]) of person boxes [n,4] (x0, y0, x1, y1): the box grown by BOX_PADDING, then
    widened or heightened (never shrunk) to the model's aspect (width / height)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    w, h = ((boxes[:, 2:] - boxes[:, :2]) * BOX_PADDING).T
    wide = w > h * aspect
    scale = np.stack([np.where(wide, w, h * aspect), np.where(wide, w / aspect, h)], axis=1)
    return centre, scale


def crop_matrices(centre: np.ndarray, scale: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """[n,2,3] affine matrices taking frame pixels to the model's input (size = (width, height)): the box's
    centre to the input's centre, its width to the input's width (no rotation: DWPose crops upright)."""
    w, h = size
    k = w / scale[:, 0]
    m = np.zeros((len(k), 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = k
    m[:, 0, 2] = w * 0.5 - k * centre[:, 0]
    m[:, 1, 2] = h * 0.5 - k * centre[:, 1]
    return m


def to_frame(points: np.ndarray, centre: np.ndarray, scale: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Model-input pixel positions [n,K,2] back in the frame: p / size * scale + centre - scale / 2."""
    size = np.asarray(size, np.float64)
    return points / size * scale[:, None] + centre[:, None] - scale[:, None] / 2


def detect_size(height: int, width: int, resolution: int) -> Tuple[int, int]:
    """(height, width) of the pose picture: the frame scaled so its short side is `resolution`, each side
    rounded (controlnet_aux's detect_resolution; ComfyUI gets the picture at this size, not the frame's)."""
    k = float(resolution) / float(min(height, width))
    return int(np.round(height * k)), int(np.round(width * k))


def pixel_perfect(height: int, width: int, gen_width: int, gen_height: int, mode: str = "Just Resize") -> int:
    """The detect resolution that makes a preprocessor's picture match the generation size pixel for pixel
    (controlnet_aux's PixelPerfectResolution, from sd-webui-controlnet): the frame's short side scaled by the
    larger of the two axes' ratios (the smaller for "Resize and Fill", which fits the whole frame inside)."""
    if mode not in RESIZE_MODES:
        from graph_engine import NodeError
        raise NodeError(f"resize mode {mode!r}: use one of {', '.join(RESIZE_MODES)}")
    k0, k1 = float(gen_height) / float(height), float(gen_width) / float(width)
    k = min(k0, k1) if mode == "Resize and Fill" else max(k0, k1)
    return int(np.round(k * float(min(height, width))))
