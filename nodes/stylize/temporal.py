"""Temporal stabilization of any per-frame stylization (blind video consistency by warping).

out[i] = stylized[i] where the previous frame cannot be trusted, else a blend of
stylized[i] with out[i-1] warped onto frame i. Flow is measured on the *source* video (the
stylization's own texture would mislead it); pixels fail the trust test when the
forward-backward flow check finds an occlusion or when the warped source disagrees with
the source (lighting change, flow error), so new content shows up at once and nothing
ghosts. The recursion forgets its start geometrically (blend^k), so it restarts every
`period` frames: frame i is the recursion begun at the last restart point at least `warmup`
frames before it. Which recursion makes a frame depends on its index alone, so a shard, a
frame the viewer asks for, and a full render give the same pixels; a sequential render
carries the (at most two) live recursions from chunk to chunk, so it blends each frame
twice, with no warm-up to redo."""
from __future__ import annotations

import threading

import cv2
import numpy as np

from nodes.common.flow import backward_warp, consistency_mask, estimate_flow
from nodes.common.stream import PairCache, Progress, SlidingWindow, from_levels, to_levels

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


# A link is a float16 flow (2 values) and a uint8 trust a pixel. What a read from the middle keeps of its span's
# links is bounded by SPAN_LINK_BYTES: all of them at 1080p and the default warmup (54 links, 560 MB), 15 at 4K.
LINK_BYTES_PER_PIXEL = 5
SPAN_LINK_BYTES = 640 << 20


def period(warmup: int) -> int:
    """Frames between restarts of the recursion (at least 8, so warmup 0 still stabilizes)."""
    return max(warmup, 8)


def restart(i: int, warmup: int) -> int:
    """The restart point frame i is taken from: the last multiple of period(warmup) at least `warmup` before it."""
    p = period(warmup)
    return max(0, (i - warmup) // p * p)


def temporal_clip(ctx, video, source, blend: float = 0.8, warmup: int = 24, quality: str = "medium"):
    """The temporally stabilized stylized clip (lazy); a deep stylized plate's float pixels (Clip.linear) too."""
    links = PairCache(8)
    progress = Progress(ctx, video.length)
    p = period(warmup)
    # Each chunk once took its first frame's recursion from `warmup` frames before the chunk: at 1080p (4 frames
    # a chunk) 28 blends for 4 frames, 55% of the node's time, and 25 a frame at 4K. The recursions are now
    # carried from the chunk before (`live`: restart point -> (frame it is at, state)); a read that cannot go
    # on from them (the first, a shard, a jump) starts at its first frame's restart point. Pulled as
    # video.frames(s, b), those spans joined 7 chunks of both clips at 1080p and made each keep 9: 0.8 GB. The
    # stylized frames' window slides instead (SlidingWindow); the source is read a pair at a time.
    def pair(i: int):
        src = source.frames(i - 1, i + 1)
        return link(src[0], src[1], quality)

    def recursion(styled_span, finish, dtype, counted: bool):
        """A reader of the blended frames from the stylized ones (styled_span(s, b): frames s..b, float32 or to be
        made so), each state made an output frame by finish: the 8-bit frames' or a deep plate's float levels'."""
        lock = threading.Lock()
        live: dict = {}

        def reader(a: int, b: int) -> np.ndarray:
            nonlocal live
            first = restart(a, warmup)
            with lock:          # the window and the live recursions move on at the next read: done with them first
                # Going on from the last read needs every recursion begun between `first` and a, each at frame a - 1.
                needed = range(first, a, p)
                carried = a > 0 and all(live.get(g, (None,))[0] == a - 1 for g in needed)
                states = {g: live[g][1] for g in needed} if carried else {}
                s = a if carried else first
                if not carried and a > 0:
                    # A read from the middle (the viewer, a shard): keep the links of its span, so a scrub back over
                    # it does not measure them again (a sequential render reads each link once and keeps a few), as
                    # far as SPAN_LINK_BYTES goes: a span is up to warmup + period + a chunk of links, 5 bytes a
                    # pixel each (2.2 GB at 4K, 5 GB at warmup 60), where measuring again only costs time.
                    fit = max(8, SPAN_LINK_BYTES // (LINK_BYTES_PER_PIXEL * video.width * video.height))
                    links.size = max(links.size, min(b - first + 2, fit))
                sty = styled_span(s, b)
                out = np.empty((b - a,) + sty.shape[1:], dtype)
                for i in range(s, b):
                    if ctx is not None:
                        ctx.check()
                    fresh = sty[i - s].astype(np.float32)
                    if states:
                        flow, trust = links.get(i, lambda: pair(i))
                        for g in states:
                            states[g] = blend_step(states[g], fresh, flow, trust, blend)
                    if i % p == 0:
                        states[i] = fresh
                    use = restart(i, warmup)
                    for g in [g for g in states if g < use]:
                        del states[g]
                    if i >= a:
                        out[i - a] = finish(states[use])
                live = {g: (b - 1, st) for g, st in states.items()}
            if counted:
                progress.add(b - a)
            return out

        return reader

    styled = SlidingWindow(video)
    reader = recursion(styled.frames, lambda st: np.clip(st + 0.5, 0, 255).astype(np.uint8), np.uint8, True)
    out = video.with_(reader=reader)
    # A sequential render reads each stylized frame and link once; a read that starts over (a shard, a jump)
    # grows the window to its span. Links are 10 MB each at 1080p: 72 kept were 0.75 GB.
    styled.size = min(video.length, out.chunk)
    links.size = out.chunk + 2
    if video.linear is None:
        return out
    # A deep stylized plate's float pixels (a kuwahara of an EXR) blended alike, on their sRGB-coded levels as the
    # 8-bit frames are, unrounded: the same flows and trust, recursions of their own.
    deep = recursion(lambda a, b: to_levels(video.linear(a, b)), lambda st: st, np.float32, False)
    return out.with_(linear=lambda a, b: from_levels(deep(a, b)))
