"""ControlNet for AnimateDiff / SD / SDXL: weight-free preprocessors and the per-frame control images.

Preprocessors need no model weights: canny edges, a luminance depth proxy (brighter = nearer,
smoothed, spread over 0..255 by one range for the whole clip), or "none" for a depth/normal/pose video
made elsewhere (a Blender pass through io.load_frames' `layer`). The control frames are kept as uint8
and sliced per frame (and per context window) at sampling time."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from graph_engine import Clip, NodeError

PREPROCESSORS = ("canny", "depth", "none")


def preprocess(clip: Clip, method: str, low: int = 100, high: int = 200) -> np.ndarray:
    """uint8 [T, H, W, 3] control frames."""
    import cv2
    if method not in PREPROCESSORS:
        raise NodeError(f"unknown preprocessor {method!r}; choose one of {', '.join(PREPROCESSORS)}")
    out = []
    for _, block in clip.chunks():
        if method == "none":
            out.append(block)
            continue
        for f in block:
            grey = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
            if method == "canny":
                g = cv2.Canny(grey, int(low), int(high))
            else:
                g = cv2.GaussianBlur(grey, (0, 0), max(1.0, min(grey.shape) / 64))
            out.append(g[None])
    if not out:
        return np.zeros((0, clip.height, clip.width, 3), np.uint8)
    g = np.concatenate(out)
    if method == "depth":
        # One range for the clip: stretched frame by frame, a bright thing coming into view dimmed
        # everything else in that frame and the depth pumped.
        lo, hi = int(g.min()), int(g.max())
        g = np.clip((np.arange(256) - lo) * (255.0 / max(hi - lo, 1)) + 0.5, 0, 255).astype(np.uint8)[g]
    return g if method == "none" else np.repeat(g[..., None], 3, axis=3)


def control_images(frames: np.ndarray, pixel_frames: Sequence[int], size: Tuple[int, int]):
    """Float [n, 3, H, W] in [0, 1] for these pixel frames (the last control frame repeats), resized."""
    import torch
    import torch.nn.functional as F
    idx = np.clip(np.asarray(pixel_frames), 0, len(frames) - 1)
    x = torch.from_numpy(frames[idx]).permute(0, 3, 1, 2).float() / 255.0
    if size[0] and tuple(x.shape[2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x


def control_at(model, frame: int):
    """The model with its ControlNet (control.apply) steered by frame `frame` of the control video alone (its last
    frame past its end), for a sampling run that makes that one frame of a longer clip (generate.feedback): such a
    run's single latent frame is frame 0 of its own, and would read the control video's first frame every time."""
    control = model.option("controlnet")
    if control is None:
        return model
    net, frames, strength = control
    return model.with_option("controlnet", (net, frames[min(frame, len(frames) - 1)][None], strength))


def apply_control(manager, model, clip: Clip, path: str, strength: float, method: str, low: int, high: int):
    if model.family not in ("sd", "sdxl", "animatediff"):
        raise NodeError(f"ControlNet works with AnimateDiff and Stable Diffusion (1.5 and XL) models, not "
                        f"{model.family}")
    net = manager.controlnet(path, model)
    return model.with_option("controlnet", (net, preprocess(clip, method, low, high), float(strength)))
