"""ControlNet for AnimateDiff / SD / SDXL / FLUX.1 / SD 3.5 / Qwen-Image: weight-free preprocessors and the per-frame control images.

Preprocessors need no model weights: canny edges, a luminance depth proxy (brighter = nearer,
smoothed, spread over 0..255 by one range for the whole clip), or "none" for a depth/normal/pose video
made elsewhere (a Blender pass through io.load_frames' `layer`). The control frames are kept as uint8
and sliced per frame (and per context window) at sampling time."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from graph_engine import Clip, NodeError

PREPROCESSORS = ("canny", "depth", "none")
# The modes InstantX's FLUX.1 union nets were trained on, in their embedding rows' order (Shakker-Labs' Union-Pro keeps
# them): control.apply's mode.
UNION_MODES = ("canny", "tile", "depth", "blur", "pose", "gray", "lq")
# xinsir's ControlNet++ union for SDXL, its task rows in order (ComfyUI's comfy/cldm/control_types.py: openpose, depth,
# hed/pidi/scribble/ted, canny/lineart/anime_lineart/mlsd, normal, segment, tile, repaint); tile and repaint are the
# promax file's alone.
SDXL_UNION_MODES = ("pose", "depth", "scribble", "canny", "normal", "segment", "tile", "repaint")


class Control(NamedTuple):
    """One control.apply on a model: a model carries a tuple of them (stacked ControlNets, e.g. pose and depth, whose
    residuals add up, as in ComfyUI and diffusers' MultiControlNetModel). start / end: the share of the steps it
    steers between, as ComfyUI's start_percent / end_percent (noise levels, not step counts)."""
    net: Any
    frames: np.ndarray          # uint8 [T, H, W, 3] control frames; sampling swaps in float images per call
    strength: float
    start: float = 0.0
    end: float = 1.0
    mode: Any = -1              # a union net's task row (UNION_MODES for FLUX.1, SDXL_UNION_MODES), -1: none told
                                # (auto); SD 3.5: its kind
    vae: Any = None             # FLUX.1 / SD 3.5 / Qwen-Image: the VAE that encodes the control pictures into the net
    cache: Any = None           # FLUX.1 / SD 3.5 / Qwen-Image: those encodings, by picture content and size
    keep: Any = None            # an inpainting net's: float [T, H, W], 1 where the picture is kept (the mask's
                                # inverse); alimama's FLUX.1 net reads it beside the masked pictures' latents, an SD /
                                # SDXL one is given -1 where it is 0


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


# Neighbour offsets (dy, dx) along each of the eight gradient directions, 45 degrees apart from +x, y down.
_DIRECTIONS = np.array([(0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1)])


def canny_comfy(frame: np.ndarray, low: float, high: float) -> np.ndarray:
    """White edges on black (uint8 HxWx3) as ComfyUI's Canny node finds them (kornia.filters.canny, 0.9, on the
    picture in 0..1): luma, a 5x5 Gaussian (sigma 1), Sobel gradients, the magnitude kept where it beats both
    neighbours along its direction rounded to 45 degrees (a tie kept towards the right and down, the border counted
    as a flat pixel), then edges above `high` and those above `low` 8-connected to them. kornia before 0.9 differs
    only on exact ties and at the border. Written with OpenCV rather than through kornia: the same steps, a few
    milliseconds a frame on the CPU where kornia's iterative hysteresis took over a second, and no dependency."""
    import cv2
    grey = frame.astype(np.float32) @ np.float32([0.299, 0.587, 0.114]) / np.float32(255)
    g = cv2.getGaussianKernel(5, 1.0, cv2.CV_32F)
    blurred = cv2.sepFilter2D(grey, cv2.CV_32F, g, g, borderType=cv2.BORDER_REFLECT_101)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    eps = np.float32(1e-6)
    mag = np.sqrt(gx * gx + gy * gy + eps)
    flat = np.sqrt(eps)
    ahead_k = np.round(np.arctan2(gy, gx) * np.float32(4 / np.pi)).astype(np.int64) % 8
    behind_k = (ahead_k + 4) % 8
    h, w = mag.shape
    padded = np.pad(mag, 1, constant_values=flat)
    yy, xx = np.mgrid[1:h + 1, 1:w + 1]

    def beats(k):
        other = padded[yy + _DIRECTIONS[k, 0], xx + _DIRECTIONS[k, 1]]
        return (mag > other) | (((k == 0) | (k == 2)) & (mag == other))
    mag = np.where(beats(ahead_k) & beats(behind_k) & (mag > flat), mag, np.float32(0))
    _, labels = cv2.connectedComponents((mag > low).astype(np.uint8), connectivity=8)
    keep = np.unique(labels[mag > high])
    edges = np.isin(labels, keep[keep > 0])
    return np.repeat((edges * np.uint8(255))[..., None], 3, axis=2)


def control_images(frames: np.ndarray, pixel_frames: Sequence[int], keep: Optional[np.ndarray] = None):
    """Float [n, 3, H, W] in [0, 1] for these pixel frames (the last control frame repeats), at the control video's
    size (adapters.sd.control_residuals stretches them to the generation's); where `keep` (an SD inpainting net's,
    inpaint_keep) is 0, -1."""
    import torch
    idx = np.clip(np.asarray(pixel_frames), 0, len(frames) - 1)
    images = torch.from_numpy(frames[idx]).permute(0, 3, 1, 2).float() / 255.0
    if keep is not None:
        hole = torch.from_numpy(keep[np.minimum(idx, len(keep) - 1)] == 0)[:, None].expand_as(images)
        images = images.masked_fill(hole, -1.0)
    return images


def inpaint_keep(frames: np.ndarray, mask) -> np.ndarray:
    """float32 [T, H, W] for an SD / SDXL inpainting ControlNet (control_v11p_sd15_inpaint): 0 where the mask,
    stretched bilinear to the control frames' size, is above 0.5 (those pixels are given as -1, as
    comfyui_controlnet_aux's InpaintPreprocessor sets them), 1 elsewhere."""
    from nodes.common import masks
    n, h, w = frames.shape[:3]
    return (masks.frames_of(mask, 0, n, (w, h)) <= 0.5).astype(np.float32)


def control_at(model, frame: int):
    """The model with its ControlNets (control.apply) steered by frame `frame` of their control videos alone (the last
    frame past the end), for a sampling run that makes that one frame of a longer clip (generate.feedback): such a
    run's single latent frame is frame 0 of its own, and would read each control video's first frame every time."""
    controls = model.option("controlnet")
    if controls is None:
        return model
    def at(a):
        return None if a is None else a[min(frame, len(a) - 1)][None]
    return model.with_option("controlnet", tuple(c._replace(frames=at(c.frames), keep=at(c.keep)) for c in controls))


def apply_control(manager, model, clip: Clip, path: str, strength: float, method: str, low: int, high: int,
                  start: float = 0.0, end: float = 1.0, mode: str = "auto", vae=None, mask=None):
    """The model with one more ControlNet: on a model that has one already, both steer. A FLUX.1, SD 3.5 or Qwen-Image
    ControlNet reads the control pictures' latents, from `vae` or the model's own VAE. `mask`: the region an
    inpainting ControlNet (alimama's for FLUX.1) redraws."""
    if model.family not in ("sd", "sdxl", "animatediff", "flux", "sd3", "qwenimage"):
        from nodes.generate.families import family as family_spec
        raise NodeError(f"ControlNet works with AnimateDiff, Stable Diffusion (1.5, XL and 3.5 Large), FLUX.1 and "
                        f"Qwen-Image models, not {family_spec(model.family).title}")
    if not 0.0 <= start < end <= 1.0:
        raise NodeError(f"the ControlNet's start ({start}) must come before its end ({end}), both between 0 (the first "
                        "step) and 1 (the last)")
    net = manager.controlnet(path, model)
    extra = {}
    if model.family in ("flux", "sd3", "qwenimage"):
        title, vae_file = {"flux": ("FLUX.1", "ae.safetensors"), "sd3": ("SD 3.5", "an SD3 VAE file"),
                           "qwenimage": ("Qwen-Image", "qwen_image_vae.safetensors")}[model.family]
        from nodes.generate.flux_control import reads_pixels
        if vae is None and getattr(model.pipe, "vae", None) is None and not reads_pixels(net):
            raise NodeError(f"a {title} ControlNet reads the control pictures through {title}'s VAE, and this model "
                            f"was loaded without one: connect load.vae ({vae_file}) to control.apply's vae")
        if vae is not None and vae.family != model.family:
            raise NodeError(f"control.apply's vae is a {vae.family} VAE; a {title} ControlNet reads pictures through "
                            f"{title}'s ({vae_file})")
        if model.family == "flux":
            from nodes.generate.flux_control import mode_index
            told = mode_index(mode, net, Path(path).name)
        elif model.family == "sd3":
            from nodes.generate.sd3_control import kind_for
            told = kind_for(mode, net, Path(path).name)
        elif mode != "auto":
            raise NodeError(f"{Path(path).name} is a Qwen-Image ControlNet, which is told no mode (a union net reads "
                            "what the picture shows): set mode to auto")
        else:
            told = -1
        extra = {"mode": told, "vae": vae.pipe if vae is not None else model.pipe, "cache": {}}
    elif getattr(net, "union", False):
        from nodes.generate.sdxl_control import union_mode
        extra = {"mode": union_mode(mode, net, Path(path).name)}
    elif mode != "auto":
        raise NodeError(f"mode {mode!r} picks what a union ControlNet (FLUX.1's, SDXL's ControlNet++) or an SD 3.5 "
                        f"one is given; {Path(path).name} is a ControlNet of one kind, which takes none: set mode to "
                        "auto")
    frames = preprocess(clip, method, low, high)
    if mask is not None and model.family in ("sd", "sdxl", "animatediff"):
        keep = inpaint_keep(frames, mask)
    else:
        from nodes.generate.flux_control import masked
        frames, keep = masked(net, frames, mask, Path(path).name)
    control = Control(net, frames, float(strength), float(start), float(end), keep=keep, **extra)
    return model.with_option("controlnet", (model.option("controlnet") or ()) + (control,))


def check_file(source: Path, family: str, title: str, support) -> None:
    """A FLUX.1, SD 3.5 or Qwen-Image ControlNet file checked to be one of `family`'s that loads (support(detection): (loads,
    why not)); else an error naming the file and what it is."""
    from nodes.generate.detect import detect_file
    from nodes.generate.families import FAMILIES
    det = detect_file(source)
    if det.role == "controlnet" and det.family != family and det.family in FAMILIES:
        raise NodeError(f"{source.name} is {det.describe()}, a ControlNet for {FAMILIES[det.family].title} models, not "
                        f"{title} ControlNet: apply it to such a model, or pick one made for {title} in controlnet/")
    if det.role != "controlnet" or det.family != family:
        raise NodeError(f"{source.name} is {det.describe() or 'not a model Kinograph recognises'}, not {title} "
                        f"ControlNet: pick one made for {title} in controlnet/")
    ok, why = support(det)
    if not ok:
        raise NodeError(f"{source.name}: {why}")


def from_file(source: Path, build, what: str):
    """build(the file's tensors): a FLUX.1 or Qwen-Image ControlNet sized from them; a tensor it is sized by that
    the file lacks (a KeyError out of the node) is named."""
    from nodes.generate.weights import load_weights
    try:
        return build(load_weights(source))
    except KeyError as e:
        raise NodeError(f"{source.name} lacks {e.args[0]}, which {what} has: the file is damaged or of another "
                        "kind") from None


def assembled(cls, cfg: dict, state: dict, what: str):
    """A FLUX.1 or Qwen-Image ControlNet of class `cls` built to `cfg` (read from the file's shapes) around the file's
    tensors, or an error naming `what` where they do not fit."""
    from accelerate import init_empty_weights
    with init_empty_weights():
        net = cls(**cfg)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as e:       # a tensor of another size: torch lists them all, the first names the place
        missing, unexpected = [], ["another size of " + str(e).split("size mismatch for ")[-1].split(":")[0]]
    if missing or unexpected:
        raise NodeError(f"the tensors of {what} do not fit its layout (missing {missing[:3]}, unexpected "
                        f"{unexpected[:3]}): the file is damaged or of another kind")
    return net


def control_latents(c: Control, pixel_frames, h: int, w: int, encode, scale: int, prepare=None):
    """The control pictures of these frames as a FLUX.1, SD 3.5 or Qwen-Image net reads them: stretched to the generation's
    h x w latent pixels (bilinear, as SD's ControlNet frames are), given to the VAE as `prepare` makes them from
    [-1, 1] (as they are where None), each encoded once (cached by content in c.cache): [frames, C, h, w]. `encode`
    takes [1, 3, T, H, W] to the model's latent [1, C, T, h, w]."""
    import hashlib

    import torch
    import torch.nn.functional as F
    from nodes.generate.vae_ops import pixels_of
    idx = np.clip(np.asarray(pixel_frames), 0, len(c.frames) - 1)
    out = []
    for i in idx:
        frame = c.frames[i]
        key = (hashlib.blake2b(frame.tobytes(), digest_size=16).digest(), frame.shape, h, w)
        if key not in c.cache:
            px = pixels_of(frame[None])[:, :, 0]
            if tuple(px.shape[2:]) != (h * scale, w * scale):
                px = F.interpolate(px, size=(h * scale, w * scale), mode="bilinear", align_corners=False)
            if prepare is not None:
                px = prepare(px)
            c.cache[key] = encode(px[:, :, None])[:, :, 0].float()
        out.append(c.cache[key])
    return torch.cat(out)


def active(controls, sigma: float, level_at) -> list:
    """The controls that steer at noise level `sigma`: ComfyUI's ControlBase test, level_at(start) >= sigma >=
    level_at(end), where level_at gives a share of the way the noise level (Adapter.percent_sigma)."""
    return [c for c in controls if level_at(c.end) <= sigma <= level_at(c.start)]
