"""Dust and dirt removal: specks and blotches that are on one frame of film and not the next.

A speck of dust, a hair or a blotch of dirt sits on one frame only. At its pixels the frame differs
from both of its neighbours, motion-aligned, the same way (both darker or both lighter), while the
neighbours agree with each other (Kokaram's spike detection index). Those pixels, grown a little to
take the speck's soft edge, are replaced by the mean of the aligned neighbours; nothing else is
touched. Only patches up to `size` pixels across count: anything larger seen on one frame only is
a real thing moving fast, not dirt."""
from __future__ import annotations

import cv2
import numpy as np

from nodes.common.color import LUMA_709
from nodes.common.flow import backward_warp, estimate_flow
from nodes.common.stream import PairCache, levels_float, windowed

_GROW = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_NEAR = np.ones((5, 5), np.uint8)


def speck_mask(cur: np.ndarray, prev: np.ndarray, nxt: np.ndarray, threshold: float, size: int) -> np.ndarray:
    """uint8 1 where cur (float32 RGB) has a speck that prev and nxt (aligned onto it) do not."""
    lc, lp, ln = cur @ LUMA_709, prev @ LUMA_709, nxt @ LUMA_709
    # Darker (lighter) than anything within 2 px in either neighbour: a bright point the flow placed a pixel
    # off (city lights at night: 7400 pixels a frame changed of a clean clip) is not dust.
    lowest = np.minimum(cv2.erode(lp, _NEAR), cv2.erode(ln, _NEAR))
    highest = np.maximum(cv2.dilate(lp, _NEAR), cv2.dilate(ln, _NEAR))
    least = np.maximum(lowest - lc, lc - highest)
    spike = (least > threshold) & (np.abs(lp - ln) < least)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(spike.astype(np.uint8), connectivity=8)
    small = (stats[:, cv2.CC_STAT_WIDTH] <= size) & (stats[:, cv2.CC_STAT_HEIGHT] <= size)
    small[0] = False
    return small[labels].astype(np.uint8)


def clean_frame(cur: np.ndarray, prev: np.ndarray, nxt: np.ndarray, threshold: float, size: int, deep=None):
    """cur (uint8) with its specks replaced from prev and nxt (float32, aligned onto cur). deep: (cur, prev, nxt) of a
    deep plate's float copies in levels (sRGB-coded x 255, aligned alike): those are cleaned instead, where the 8-bit
    frames find specks, and returned unrounded."""
    c = cur.astype(np.float32)
    mask = speck_mask(c, prev, nxt, threshold, size)
    if deep is not None:
        c, prev, nxt = deep
    if not mask.any():
        return cur if deep is None else c
    # A speck's edge is soft (out of focus on the film): grow the mask past it, then feather its border.
    weight = cv2.GaussianBlur(cv2.dilate(mask, _GROW).astype(np.float32), (5, 5), 1.0)
    out = c + weight[..., None] * (0.5 * (prev + nxt) - c)
    return out if deep is not None else np.clip(out + 0.5, 0, 255).astype(np.uint8)


def dust_clip(ctx, clip, threshold: float = 24.0, size: int = 24):
    """The clip with one-frame specks removed (lazy). The first and last frames, with a neighbour on one
    side only, are compared with the two frames on that side. A clip of under 3 frames has no frame to
    compare a speck with and comes back as it was. A deep plate's float pixels (Clip.linear) are cleaned where its
    8-bit frames show specks, from the same aligned neighbours (the flow found again for them)."""
    if clip.length < 3:
        return clip
    grays = PairCache(8)

    def gray(i: int, frame: np.ndarray) -> np.ndarray:
        return grays.get(i, lambda: cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))

    def compute(window: np.ndarray, lo: int, a: int, b: int, deep: np.ndarray = None) -> np.ndarray:
        out = []
        for i in range(a, b):
            if ctx is not None:
                ctx.check()
            cur = window[i - lo]
            sides = (i - 1, i + 1) if 0 < i < clip.length - 1 else (1, 2) if i == 0 else (i - 1, i - 2)
            g = gray(i, cur)
            flows = [estimate_flow(g, gray(j, window[j - lo])) for j in sides]
            aligned = [backward_warp(window[j - lo].astype(np.float32), f) for j, f in zip(sides, flows)]
            floats = None if deep is None else \
                [deep[i - lo]] + [backward_warp(deep[j - lo], f) for j, f in zip(sides, flows)]
            out.append(clean_frame(cur, *aligned, threshold, size, floats))
        return np.stack(out)

    out = windowed(ctx, clip, 2, compute, local=True)     # a frame from its neighbours alone
    return out if clip.linear is None else out.with_(linear=levels_float(clip, 2, compute))
