"""SeedVR2's picture preparation and finishing, as ComfyUI's SeedVR2Preprocess and SeedVR2PostProcessing do them.

SeedVR2 (ByteDance's one-step video restorer) works on frames whose sides are multiples of 16 and on clips of 4n+1
frames (its VAE folds 4 frames into one latent after the first). pad_clip pads a clip so; finish_clip crops the
decoded result back to the frames and size of the picture it restored, brings its colours back to that picture's
(the diffusion drifts them) and gives it that picture's alpha.

The colour corrections work on values in [-1, 1], per frame, as ComfyUI's comfy/ldm/seedvr/color_fix.py:
wavelet keeps the result's fine detail (five levels of a dilated 3x3 blur) over the reference's coarse colour;
adain matches each channel's mean and spread; lab takes the wavelet result into CIE Lab and matches its a*, b*
histograms to the reference's, and its L* a fifth of the way."""
from __future__ import annotations

import cv2
import numpy as np

from graph_engine import NodeError
from nodes.common.color import lab_to_rgb, rgb_to_lab
from nodes.common.stream import Progress

SIDE = 16          # the sides' multiple (the VAE's 8x and the transformer's 2x2 patches)
TIME = 4           # frames per latent frame after the first
METHODS = ("lab", "wavelet", "adain", "none")
WAVELET_LEVELS = 5
LAB_LUMINANCE_KEPT = 0.8    # share of the result's own L* kept; the rest follows the reference's histogram
_BLUR = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16


def padded_length(n: int) -> int:
    """The 4n+1 frame count a clip of n frames is padded to (its last frame repeated); a still stays one frame."""
    return n if n == 1 else (n - 1 + TIME - 1) // TIME * TIME + 1


def padded_size(width: int, height: int):
    return -(-width // SIDE) * SIDE, -(-height // SIDE) * SIDE


def pad_clip(ctx, clip):
    """The clip on black to the next multiple of 16 a side (right and bottom), its last frame repeated to 4n+1
    frames; alpha is dropped (finish_clip gives the reference's back)."""
    if clip.length == 0:
        raise NodeError("upscale.seedvr2_pad: the clip has no frames")
    w, h = padded_size(clip.width, clip.height)
    n = padded_length(clip.length)
    progress = Progress(ctx, n)

    def reader(a: int, b: int) -> np.ndarray:
        idx = np.minimum(np.arange(a, b), clip.length - 1)
        lo = int(idx[0])
        src = clip.frames(lo, int(idx[-1]) + 1)[idx - lo]
        out = np.zeros((b - a, h, w, 3), np.uint8)
        out[:, :clip.height, :clip.width] = src
        progress.add(b - a)
        return out

    return clip.with_(length=n, width=w, height=h, reader=reader, matte=None, linear=None)


def _signed(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float32) * np.float32(2 / 255) - 1


def wavelet_blur(img: np.ndarray, radius: int) -> np.ndarray:
    """img [H,W,C] blurred by the 3x3 binomial kernel dilated by `radius` (edges repeated), the radius held to an
    eighth of the shorter side."""
    radius = min(radius, max(1, min(img.shape[:2]) // 8))
    h, w = img.shape[:2]
    padded = np.pad(img, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    out = np.zeros_like(img)
    for i in range(3):
        for j in range(3):
            out += _BLUR[i, j] * padded[i * radius:i * radius + h, j * radius:j * radius + w]
    return out


def wavelet_split(img: np.ndarray):
    """(the detail, the coarse colour) of img over WAVELET_LEVELS levels."""
    detail = np.zeros_like(img)
    for level in range(WAVELET_LEVELS):
        low = wavelet_blur(img, 2 ** level)
        detail += img - low
        img = low
    return detail, img


def wavelet_transfer(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    return np.clip(wavelet_split(content)[0] + wavelet_split(style)[1], -1.0, 1.0)


def adain_transfer(content: np.ndarray, style: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    c = content.reshape(-1, content.shape[2])
    s = style.reshape(-1, style.shape[2])
    moved = (content - c.mean(0)) / np.sqrt(c.var(0) + eps) * np.sqrt(s.var(0) + eps) + s.mean(0)
    return np.clip(moved, -1.0, 1.0)


def _matched(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """source's values replaced, rank for rank, by reference's (quantile mapping over the whole picture)."""
    src, ref = source.ravel(), np.sort(reference.ravel())
    if len(ref) != len(src):
        ref = ref[(np.linspace(0, 1, len(src)) * (len(ref) - 1)).astype(np.int64)]
    out = np.empty_like(src)
    out[np.argsort(src, kind="stable")] = ref
    return out.reshape(source.shape)


def lab_transfer(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    content = (np.clip(wavelet_transfer(content, style), -1, 1) + 1) / 2
    c, s = rgb_to_lab(content), rgb_to_lab(np.clip((style + 1) / 2, 0, 1))
    out = np.empty_like(c)
    out[..., 0] = c[..., 0] * LAB_LUMINANCE_KEPT + _matched(c[..., 0], s[..., 0]) * (1 - LAB_LUMINANCE_KEPT)
    for ch in (1, 2):
        out[..., ch] = _matched(c[..., ch], s[..., ch])
    return lab_to_rgb(out) * 2 - 1


TRANSFERS = {"lab": lab_transfer, "wavelet": wavelet_transfer, "adain": adain_transfer}


def colour_fixed(frame: np.ndarray, reference: np.ndarray, method: str) -> np.ndarray:
    """uint8 frame with its colours brought to the uint8 reference's (resized to it where the sizes differ)."""
    if method == "none":
        return frame
    if reference.shape != frame.shape:
        reference = cv2.resize(reference, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_CUBIC)
    out = TRANSFERS[method](_signed(frame), _signed(reference))
    return np.clip((out + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def finish_clip(ctx, video, reference, method: str):
    """video (SeedVR2's decoded frames) cropped to reference's frames and size, to even sides, its colours fixed
    against reference by `method` and reference's alpha and sound given it."""
    if method not in METHODS:
        raise NodeError(f"upscale.seedvr2_finish: unknown colour correction {method!r}; use one of {', '.join(METHODS)}")
    n = min(video.length, reference.length)
    w, h = min(video.width, reference.width), min(video.height, reference.height)
    if n == 0:
        raise NodeError("upscale.seedvr2_finish: the clip or its reference has no frames")
    if w < 2 or h < 2:
        raise NodeError(f"upscale.seedvr2_finish: {w}x{h} pixels (the smaller of the clip's {video.width}x"
                        f"{video.height} and the reference's {reference.width}x{reference.height}) is too small: "
                        f"give a reference of at least 2x2")
    ew, eh = w - w % 2, h - h % 2
    progress = Progress(ctx, n)

    def reader(a: int, b: int) -> np.ndarray:
        frames, refs = video.frames(a, b), reference.frames(a, b)
        out = np.empty((b - a, eh, ew, 3), np.uint8)
        for k in range(b - a):
            if ctx is not None:
                ctx.check()
            # ComfyUI fixes the colours at the cropped size and evens the sides after: the blur's edges see the same
            out[k] = colour_fixed(frames[k, :h, :w], refs[k], method)[:eh, :ew]
        progress.add(b - a)
        return out

    # SeedVR2's decoded frames come from a latent and carry no sound: the reference's is the clip's (ComfyUI's video
    # template lays the loaded clip's sound under them again with CreateVideo)
    sound = video.audio if reference.audio is None else reference.audio
    out = video.with_(length=n, width=ew, height=eh, reader=reader, matte=None, linear=None, audio=sound)
    if reference.matte is None:
        return out
    matte = reference.matte
    return out.with_matte(lambda a, b: matte.frames(a, b)[:, :eh, :ew])
