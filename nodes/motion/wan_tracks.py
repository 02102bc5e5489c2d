"""Point tracks steering Wan image-to-video models through their conditioning latent, two ways.

ATI ("Any Trajectory Instruction", Wan 2.1 I2V ATI): point tracks steer an image-to-video model through its
conditioning latent. Each track's feature is read from the start frame's latent where the track starts and
written, Gaussian-weighted, where the track is in each later latent frame; the frame mask carries the weights.

Positions are measured with the picture's centre at 0 and its short edge 2 long; a latent frame after the first
stands for 4 video frames and takes the mean position of the track over the ones where it is visible.

ComfyUI's WanTrackToVideo takes tracks as JSON lists of {"x", "y"} pixel points, 121 samples per track (24 fps
over the 5 s that 81 frames at 16 fps last); `from_comfyui` turns them into Kinograph's per-frame tracks with
the same frame-to-sample choice.

Wan-Move: in each later latent frame (video frame 4t), the latent pixel under each visible track takes the start
latent's feature from the pixel under the track's start (blended by strength); the mask stays the start frame's.
`generate_tracks` draws ComfyUI's GenerateTracks bundles: a line or quadratic Bezier path, eased, with tracks
spread across it.
"""
from __future__ import annotations

import json
import math

import numpy as np
import torch

from .tracks import Tracks

ATI_SAMPLES = 121


def _frames_per_latent(tracks: Tracks, latent_frames: int) -> int:
    """Wan's 4 video frames per latent frame after the first, once the tracks are checked to cover the clip."""
    tf = 4
    if tracks.length != tf * (latent_frames - 1) + 1:
        raise ValueError(f"the tracks cover {tracks.length} frames and the clip has {tf * (latent_frames - 1) + 1}: "
                         f"give motion.tracks frames={tf * (latent_frames - 1) + 1}")
    return tf


def from_comfyui(text: str, frames: int, width: int, height: int) -> Tracks:
    """Tracks over `frames` video frames from WanTrackToVideo's JSON (a track = a list of {"x", "y"}; one track
    alone may stand unwrapped). Missing samples past a track's end leave it invisible there, as ComfyUI pads them."""
    data = json.loads(text) if isinstance(text, str) else text
    if data and isinstance(data[0], dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(t, list) and t and all(
            isinstance(p, dict) and "x" in p and "y" in p for p in t) for t in data):
        raise ValueError('ATI tracks are a JSON list of tracks, each a list of {"x": .., "y": ..} points')
    if frames < 2:
        raise ValueError(f"ATI tracks need a clip of 2 frames or more, got {frames}")
    pts = np.zeros((len(data), ATI_SAMPLES, 2), np.float32)
    vis = np.zeros((len(data), ATI_SAMPLES), bool)
    for k, t in enumerate(data):
        t = t[:ATI_SAMPLES]
        pts[k, :len(t)] = [(float(p["x"]), float(p["y"])) for p in t]
        vis[k, :len(t)] = True
    # frame 0 is sample 0; the other frames share samples 1..120 as ComfyUI's repeat-and-stride picks them
    n = frames - 1
    g = math.gcd(ATI_SAMPLES - 1, n)
    a, b = (ATI_SAMPLES - 1) // g, n // g
    pick = np.concatenate([[0], np.minimum(1 + (1 + np.arange(n) * a) // b, ATI_SAMPLES - 1)])
    # a padded sample sits at (0, 0) invisible; hold the last real point there instead (it carries no weight)
    last = vis.sum(1) - 1
    held = np.where(vis[..., None], pts, pts[np.arange(len(data)), last][:, None])
    return Tracks(held[:, pick], vis[:, pick], width, height)


def ati_condition(z: torch.Tensor, tracks: Tracks, width: int, height: int, temperature: float = 220.0,
                  topk: int = 2):
    """(features [C, T, h, w], weights [T, h, w]) for start-frame latent z [C, T, h, w] (the model's normalised
    latent space) of a video `width` x `height`. Weights are 1 on the first latent frame."""
    c, n, h, w = z.shape
    tf = _frames_per_latent(tracks, n)
    s = min(width, height)
    scale = np.array([width / tracks.width, height / tracks.height], np.float32)
    p = torch.from_numpy((tracks.points * scale - np.array([width, height], np.float32) / 2) * 2 / s)  # [K, N, 2]
    vis = torch.from_numpy(tracks.visible).float()
    k = p.shape[0]
    # the feature each track carries: the start latent, bilinearly, where the track starts
    at = (p[:, 0] / torch.tensor([width / s, height / s])).clamp(-1, 1).to(z.dtype)
    feat = torch.nn.functional.grid_sample(z[:, 0][None], at.view(1, 1, k, 2), mode="bilinear",
                                           padding_mode="zeros", align_corners=False)[0, :, 0].T   # [K, C]
    gv = vis[:, 1:].reshape(k, n - 1, tf)
    seen = gv.sum(-1)
    pos = (p[:, 1:].reshape(k, n - 1, tf, 2) * gv[..., None]).sum(2) / (seen[..., None] + 1e-5)   # [K, T-1, 2]
    gx = torch.linspace(-width / s, width / s, w)
    gy = torch.linspace(-height / s, height / s, h)
    d2 = (pos[..., 0, None, None] - gx) ** 2 + (pos[..., 1, None, None] - gy[:, None]) ** 2   # [K, T-1, h, w]
    wt = torch.exp(-d2 * temperature) * seen.clamp(0, 1)[..., None, None]
    top, idx = wt.topk(min(topk, k), dim=0)
    wt = torch.zeros_like(wt).scatter_(0, idx, top).to(z.dtype)
    placed = torch.einsum("kthw,kc->cthw", wt, feat)
    total = wt.sum(0)
    out = torch.cat([z[:, :1], placed + z[:, 1:] * (1 - total.clamp(0, 1))], dim=1)
    return out, torch.cat([torch.ones_like(total[:1]), total])


def wanmove_condition(z: torch.Tensor, tracks: Tracks, width: int, height: int, strength: float = 1.0):
    """Features [C, T, h, w] for start-frame latent z [C, T, h, w] of a video `width` x `height`. Where two tracks
    land on one latent pixel the later track wins (ComfyUI shuffles them first, so which one is left to chance)."""
    c, n, h, w = z.shape
    tf = _frames_per_latent(tracks, n)
    pts = tracks.points[:, ::tf] * np.array([width / tracks.width, height / tracks.height], np.float32)
    inside = tracks.visible[:, ::tf] & (pts >= 0).all(-1) & (pts[..., 0] < width) & (pts[..., 1] < height)
    col = np.floor(pts[..., 0] * w / width).astype(int)
    row = np.floor(pts[..., 1] * h / height).astype(int)
    out = z.clone()
    for k in np.flatnonzero(inside[:, 0]):      # a track must start on the picture to carry anything
        src = z[:, 0, row[k, 0], col[k, 0]]
        for t in np.flatnonzero(inside[k, 1:]) + 1:
            dst = z[:, t, row[k, t], col[k, t]]
            out[:, t, row[k, t], col[k, t]] = dst + (src - dst) * strength
    return out


EASE = {"linear": lambda t: t, "ease_in": lambda t: t * t, "ease_out": lambda t: 1 - (1 - t) ** 2,
        "ease_in_out": lambda t: t * t * (3 - 2 * t), "constant": lambda t: 0 * t}


def generate_tracks(width: int, height: int, start, end, frames: int, count: int, spread: float,
                    mid=None, interpolation: str = "linear") -> Tracks:
    """`count` tracks over `frames` frames along the path from `start` to `end` (through Bezier control point
    `mid` when given), points as fractions of the picture, eased by `interpolation`; the tracks sit side by side
    across the path, `spread` apart as a fraction of the mean of width and height."""
    if interpolation not in EASE:
        raise ValueError(f"unknown interpolation {interpolation!r}; choose one of {', '.join(EASE)}")
    size = np.array([width, height], np.float64)
    a, b = np.asarray(start) * size, np.asarray(end) * size
    u = EASE[interpolation](np.linspace(0.0, 1.0, frames))[:, None]
    if mid is None:
        path, tangent = a + (b - a) * u, np.broadcast_to(b - a, (frames, 2))
    else:
        m = np.asarray(mid) * size
        path = (1 - u) ** 2 * a + 2 * (1 - u) * u * m + u ** 2 * b
        tangent = 2 * (1 - u) * (m - a) + 2 * u * (b - m)
    norm = np.linalg.norm(tangent, axis=1, keepdims=True)
    across = np.where(norm > 0, np.stack([-tangent[:, 1], tangent[:, 0]], 1) / np.maximum(norm, 1e-30), [1.0, 0.0])
    offsets = (np.arange(count) - (count - 1) / 2) * spread * (width + height) / 2
    pts = path[None] + offsets[:, None, None] * across[None]
    return Tracks(pts.astype(np.float32), np.ones((count, frames), bool), width, height)
