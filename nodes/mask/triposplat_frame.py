"""ComfyUI's TripoSplatPreprocessImage (comfy_extras/nodes_triposplat.py, _preprocess): the subject of a picture
framed as TripoSplat was trained on: the picture brought to `size` on its short side (Lanczos, with the mask as
its alpha), the mask eroded, the box of its non-zero pixels grown to a square 1.2 times its longer side, cut out
(zeros past the picture's edge), brought to size x size (Lanczos again) and laid over black."""
from __future__ import annotations

import numpy as np

from graph_engine import NodeError
from nodes.mask.crop_to_mask import grown, lanczos

MARGIN = 1.2            # _preprocess's square around the subject's box


def side(size: int) -> int:
    """the node's size to a multiple of 16 (DINOv3's patch and the FLUX.2 VAE's stride), at least 16"""
    return max(16, (int(size) // 16) * 16)


def triposplat_frame(frame: np.ndarray, mask: np.ndarray, erode: int, size: int) -> np.ndarray:
    """uint8 [size, size, 3] of a uint8 [H, W, 3] frame and its float [h, w] mask (size already a side())"""
    import torch
    rgb = frame[..., :3].astype(np.float32) / 255.0
    a = np.clip(mask.astype(np.float32), 0.0, 1.0)
    if a.shape != rgb.shape[:2]:        # the node's bilinear, no antialiasing
        a = torch.nn.functional.interpolate(torch.from_numpy(a)[None, None], size=rgb.shape[:2],
                                            mode="bilinear", align_corners=False)[0, 0].numpy()
    h, w = a.shape
    s = size / min(w, h)
    # one RGBA picture, as comfy.utils.lanczos hands the four channels to PIL (which weighs colour by alpha)
    rgba = lanczos(np.concatenate([rgb, a[..., None]], -1), max(1, round(w * s)), max(1, round(h * s)))
    if erode > 0:
        rgba[..., 3] = grown(np.ascontiguousarray(rgba[..., 3]), -erode)
    ys, xs = np.nonzero(rgba[..., 3] > 0)
    if xs.size == 0:
        raise NodeError("TripoSplat's framing: the mask is empty (no subject). Give the subject's mask "
                        "(mask.remove_background's), or lower erode_radius if the mask is a thin one")
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    half = max(int(xs.max() - xs.min()), int(ys.max() - ys.min())) / 2 * MARGIN
    left, upper, right, lower = int(cx - half), int(cy - half), int(cx + half), int(cy + half)
    H, W = rgba.shape[:2]
    crop = np.zeros((lower - upper, right - left, 4), np.float32)
    x0, y0, x1, y1 = max(left, 0), max(upper, 0), min(right, W), min(lower, H)
    if x1 > x0 and y1 > y0:
        crop[y0 - upper:y1 - upper, x0 - left:x1 - left] = rgba[y0:y1, x0:x1]
    crop = lanczos(crop, size, size)
    return np.round(np.clip(crop[..., :3] * crop[..., 3:4], 0.0, 1.0) * 255.0).astype(np.uint8)
