"""Temporal stabilization of any per-frame stylization (blind video consistency by warping).

out[i] = stylized[i] where the previous frame cannot be trusted, else a blend of
stylized[i] with out[i-1] warped onto frame i. Flow is measured on the *source* video (the
stylization's own texture would mislead it); pixels fail the trust test when the
forward-backward flow check finds an occlusion or when the warped source disagrees with
the source (lighting change, flow error), so new content shows up at once and nothing
ghosts. The recursion forgets its start geometrically (blend^k), so any frame range is
computed from `warmup` frames before it: a shard matches a sequential pass to within
blend^warmup of a level."""
from __future__ import annotations

import threading

import cv2
import numpy as np

from nodes.common.flow import backward_warp, consistency_mask, estimate_flow
from nodes.common.stream import PairCache, Progress, SlidingWindow

FLOW_WIDTH = 960        # flows of wider frames are measured on a reduced copy and scaled up
SOURCE_TOLERANCE = 24.0  # source mismatch (8-bit levels) where the previous output stops being trusted


def _shrink(frame: np.ndarray):
    h, w = frame.shape[:2]
    if w <= FLOW_WIDTH:
        return frame, 1.0
    f = FLOW_WIDTH / w
    return cv2.resize(frame, (FLOW_WIDTH, max(8, round(h * f))), interpolation=cv2.INTER_AREA), f


def link(prev_src: np.ndarray, cur_src: np.ndarray, quality: str = "medium"):
    """(flow cur->prev at full size, trust mask in [0, 1]) for carrying output from prev to cur."""
    p, f = _shrink(prev_src)
    c, _ = _shrink(cur_src)
    fwd, bwd = estimate_flow(c, p, quality), estimate_flow(p, c, quality)
    trust = consistency_mask(fwd, bwd)
    diff = np.abs(c.astype(np.float32) - backward_warp(p, fwd).astype(np.float32)).max(-1)
    trust *= np.clip(2.0 - diff / (SOURCE_TOLERANCE / 2.0), 0.0, 1.0)
    # A slight blur feathers the trust edges so blended and fresh regions meet without a seam.
    trust = cv2.GaussianBlur(cv2.erode(trust, np.ones((3, 3), np.uint8)), (0, 0), 1.5)
    if f != 1.0:
        h, w = cur_src.shape[:2]
        fwd = cv2.resize(fwd, (w, h), interpolation=cv2.INTER_LINEAR) / f
        trust = cv2.resize(trust, (w, h), interpolation=cv2.INTER_LINEAR)
    return fwd.astype(np.float16), (trust * 255 + 0.5).astype(np.uint8)


def blend_step(prev_out: np.ndarray, stylized: np.ndarray, flow: np.ndarray, trust: np.ndarray,
               blend: float) -> np.ndarray:
    carried = backward_warp(prev_out, flow.astype(np.float32))
    a = (blend / 255.0) * trust.astype(np.float32)[..., None]
    return stylized + a * (carried - stylized)


def temporal_clip(ctx, video, source, blend: float = 0.8, warmup: int = 24, quality: str = "medium"):
    """The temporally stabilized stylized clip (lazy)."""
    links = PairCache(warmup + 48)
    progress = Progress(ctx, video.length)
    # Each chunk is computed from `warmup` frames before it. Pulled as video.frames(s, b), those spans joined
    # 7 chunks of both clips at 1080p and made each keep 9: 0.8 GB. The stylized frames' window slides instead
    # (SlidingWindow); the source is read only for the links not kept from the chunk before (a pair at a time).
    styled = SlidingWindow(video)
    lock = threading.Lock()

    def pair(i: int):
        src = source.frames(i - 1, i + 1)
        return link(src[0], src[1], quality)

    def reader(a: int, b: int) -> np.ndarray:
        s = max(0, a - warmup)
        with lock:          # the window moves on at the next read: done with its frames first
            sty = styled.frames(s, b)
            out = np.empty((b - a,) + sty.shape[1:], np.uint8)
            state = sty[0].astype(np.float32)
            if s == a:
                out[0] = sty[0]
            for i in range(s + 1, b):
                if ctx is not None:
                    ctx.check()
                flow, trust = links.get(i, lambda: pair(i))
                state = blend_step(state, sty[i - s].astype(np.float32), flow, trust, blend)
                if i >= a:
                    out[i - a] = np.clip(state + 0.5, 0, 255).astype(np.uint8)
        progress.add(b - a)
        return out

    out = video.with_(reader=reader)
    styled.size = min(video.length, out.chunk + warmup)
    # The links the next chunk's warm-up reads again (10 MB each at 1080p): 72 kept were 0.75 GB.
    links.size = warmup + out.chunk + 2
    return out
