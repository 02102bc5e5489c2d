"""ControlNet for AnimateDiff / SD / SDXL: weight-free preprocessors and the per-frame control images.

Preprocessors need no model weights: canny edges, a luminance depth proxy (brighter = nearer,
smoothed, spread over 0..255 by one range for the whole clip), or "none" for a depth/normal/pose video
made elsewhere (a Blender pass through io.load_frames' `layer`). The control frames are kept as uint8
and sliced per frame (and per context window) at sampling time."""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence, Tuple

import numpy as np

from graph_engine import Clip, NodeError

PREPROCESSORS = ("canny", "depth", "none")


class Control(NamedTuple):
    """One control.apply on a model: a model carries a tuple of them (stacked ControlNets, e.g. pose and depth, whose
    residuals add up, as in ComfyUI and diffusers' MultiControlNetModel). start / end: the share of the steps it
    steers between, as ComfyUI's start_percent / end_percent (noise levels, not step counts)."""
    net: Any
    frames: np.ndarray          # uint8 [T, H, W, 3] control frames; sampling swaps in float images per call
    strength: float
    start: float = 0.0
    end: float = 1.0


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
    """The model with its ControlNets (control.apply) steered by frame `frame` of their control videos alone (the last
    frame past the end), for a sampling run that makes that one frame of a longer clip (generate.feedback): such a
    run's single latent frame is frame 0 of its own, and would read each control video's first frame every time."""
    controls = model.option("controlnet")
    if controls is None:
        return model
    return model.with_option("controlnet", tuple(c._replace(frames=c.frames[min(frame, len(c.frames) - 1)][None])
                                                 for c in controls))


def apply_control(manager, model, clip: Clip, path: str, strength: float, method: str, low: int, high: int,
                  start: float = 0.0, end: float = 1.0):
    """The model with one more ControlNet: on a model that has one already, both steer."""
    if model.family not in ("sd", "sdxl", "animatediff"):
        raise NodeError(f"ControlNet works with AnimateDiff and Stable Diffusion (1.5 and XL) models, not "
                        f"{model.family}")
    if not 0.0 <= start < end <= 1.0:
        raise NodeError(f"the ControlNet's start ({start}) must come before its end ({end}), both between 0 (the first "
                        "step) and 1 (the last)")
    net = manager.controlnet(path, model)
    control = Control(net, preprocess(clip, method, low, high), float(strength), float(start), float(end))
    return model.with_option("controlnet", (model.option("controlnet") or ()) + (control,))


def active(controls, sigma: float, level_at) -> list:
    """The controls that steer at noise level `sigma`: ComfyUI's ControlBase test, level_at(start) >= sigma >=
    level_at(end), where level_at gives a share of the way the noise level (Adapter.percent_sigma)."""
    return [c for c in controls if level_at(c.end) <= sigma <= level_at(c.start)]
