"""Colour matching: make a frame's colours follow a reference image.

Reinhard et al. (2001) match per-channel mean and standard deviation in a decorrelated
colour space (CIE Lab here); histogram matching maps each RGB channel through the
reference's cumulative distribution. `strength` blends the result with the input."""
from __future__ import annotations

import threading

import cv2
import numpy as np

from graph_engine import NodeError
from nodes.common.color import (channel_cdfs, lab_to_linear, lab_to_rgb, linear_to_lab, linear_to_srgb,
                                match_cdfs as histogram, match_cdfs_linear, rgb_to_lab, to_float, to_uint8)

STATS_WIDTH = 256   # statistics of a subsampled copy: the same to a fraction of a level, much faster


def _sample(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if w > STATS_WIDTH:
        img = cv2.resize(img, (STATS_WIDTH, max(1, round(h * STATS_WIDTH / w))), interpolation=cv2.INTER_AREA)
    return img


def lab_stats(img: np.ndarray):
    lab = rgb_to_lab(to_float(_sample(img))).reshape(-1, 3)
    return lab.mean(0), lab.std(0)


def reinhard(frame: np.ndarray, ref_stats, strength: float = 1.0, own_stats=None) -> np.ndarray:
    """own_stats: the statistics standing for the frame (the clip's); None = the frame's own."""
    return to_uint8(lab_to_rgb(_moved(rgb_to_lab(to_float(frame)), ref_stats, strength, own_stats or lab_stats(frame))))


def reinhard_linear(lin: np.ndarray, ref_stats, strength: float, own_stats) -> np.ndarray:
    """reinhard on a deep plate's float linear light (own_stats: its 8-bit frames'), unrounded and unclipped: light
    above 1.0 keeps its headroom (L above 100)."""
    return lab_to_linear(_moved(linear_to_lab(lin), ref_stats, strength, own_stats))


def _moved(lab: np.ndarray, ref_stats, strength: float, own_stats) -> np.ndarray:
    (mean_r, std_r), (mean_f, std_f) = ref_stats, own_stats
    matched = (lab - mean_f) * (std_r / np.maximum(std_f, 1e-3)) + mean_r
    return lab + strength * (matched - lab)


# Below this spread (Lab units, every channel) a reference is one flat colour: its palette is a single value, and
# matching its spread scales every frame's contrast to nothing (a grey card made each frame a grey rectangle).
FLAT_SPREAD = 1.0
SAMPLES = 12     # frames, spread over the clip, whose pooled statistics stand for all of it


def matcher(reference: np.ndarray, method: str, strength: float, shot=None, name: str = "the reference image"):
    """A per-frame function matching frames to `reference` (its statistics computed once). `shot`: a
    function giving frames that stand for the whole clip; their pooled statistics make one correction
    for every frame, as a colourist matches a shot. Without it each frame is matched on its own, and
    the correction changed whenever something came into frame (a static wall shifted 14-30 levels). `name`
    says in a refusal which picture the user gave."""
    if method not in ("reinhard", "histogram"):
        raise ValueError(f"unknown colour match method {method!r}")
    spread = lab_stats(reference)[1]
    if float(spread.max()) < FLAT_SPREAD:
        raise NodeError(f"{name} is one flat colour (its spread in Lab is {', '.join(f'{v:.2f}' for v in spread)}): "
                        f"matching its palette would paint every frame that one colour. Give a picture with the "
                        f"range of colours you want, or tint the clip with color.grade (temperature, tint)")
    ref = lab_stats(reference) if method == "reinhard" else channel_cdfs(reference)
    own: list = []
    lock = threading.Lock()     # chunks may be read side by side: the clip is sampled once

    def pooled():
        with lock:
            if not own:
                if method == "reinhard":
                    frames = np.stack([_sample(f) for f in shot()])
                    own.append(lab_stats(frames.reshape(-1, frames.shape[2], 3)))
                else:   # full size: a smaller copy's histograms are narrower than the frames they map
                    own.append(channel_cdfs(np.stack(shot())))
            return own[0]

    def stats(lin: np.ndarray):
        """The statistics standing for a deep plate's float frame: the clip's, or its 8-bit frame's."""
        if shot:
            return pooled()
        return lab_stats(view(lin)) if method == "reinhard" else channel_cdfs(view(lin))
    if method == "reinhard":
        return Matcher(lambda f: reinhard(f, ref, strength, pooled() if shot else None),
                       lambda lin: reinhard_linear(lin, ref, strength, stats(lin)))
    return Matcher(lambda f: histogram(f, ref, strength, pooled() if shot else None),
                   lambda lin: match_cdfs_linear(lin, ref, strength, stats(lin)))


class Matcher:
    """matcher's per-frame function of uint8 frames, with `linear`, the same correction of a deep plate's float
    linear light (Clip.linear: a frame HxWx3 or frames [n,H,W,3], each matched on its own statistics)."""

    def __init__(self, frames, linear):
        self.frames, self._linear = frames, linear

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.frames(frame)

    def linear(self, lin: np.ndarray) -> np.ndarray:
        return np.stack([self._linear(f) for f in lin]) if lin.ndim == 4 else self._linear(lin)


def view(lin: np.ndarray) -> np.ndarray:
    """The 8-bit frame a deep plate's float frame shows (as its reader makes them: sRGB, clipped at 1.0), for a
    frame matched on its own statistics."""
    return to_uint8(linear_to_srgb(np.minimum(lin, 1.0)))


def shot_frames(clip, n: int = SAMPLES):
    """A function reading up to n frames spread evenly over the clip (for matcher's `shot`)."""
    return lambda: [clip.frame(int(i)) for i in np.unique(np.linspace(0, clip.length - 1, min(n, clip.length)).round())]
