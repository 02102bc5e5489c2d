"""Timing shared by every interpolator: which output frame shows which source pair at which t,
scene-cut handling, and the lazy Clip that renders any output range on its own.

An interpolator only supplies `prepare(a, b) -> state` (per source pair: flows, tensors...)
and `render(state, ts) -> frames` (in-betweens at 0 < t < 1); one that computes faster in
batches may also supply `render_many([(state, ts), ...]) -> [frames, ...]`, which then gets
every pair of an output chunk at once, and one whose work releases the GIL (OpenCV, numba
nogil kernels) may set `parallel = True` to have the pairs of a chunk prepared and rendered on
a small pool of threads, one pair per task. One that sets `outer = True` gets the source frames
on either side of the pair too, `prepare(a, b, before, after)` (None at the clip's ends and
across a scene cut): they show what each frame of the pair hides from the other. One with work of
its own per source frame (reduced copies, say) may supply `prepare_frame(img)`: its prepare then
also gets `frames=` what that returned for each of those frames, made once per frame rather than
once per pair that uses it. Likewise one with work per pair of neighbouring source frames
(flows) may supply `prepare_link(x, y)` (x, y: what prepare_frame made of the two frames): its
prepare then also gets `links=` those of (before, a), (a, b) and (b, after), where it sets `outer`
and `around = True` (the pairs either side read them too; None where before or after is), else
of (a, b) alone; each is made once, the links an output chunk needs queued ahead of its pairs.
Everything else lives here, so flow, RIFE and any later method schedule frames identically."""
from __future__ import annotations

import math
import os
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

import cv2
import numpy as np

from graph_engine import Clip, NodeError
from nodes.common.stream import PairCache, Progress

# A source position closer than this to an integer is that source frame (fps ratios like 24000/1001).
_EXACT = 1e-6
_POOL: Optional[ThreadPoolExecutor] = None
_POOL_LOCK = threading.Lock()


_WORKERS = max(1, min(8, os.cpu_count() or 1))


def _pool() -> ThreadPoolExecutor:
    # One pool for every clip: pairs are independent, and more threads than cores only contend.
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="interpolate")
        return _POOL


class Synth(Protocol):
    def prepare(self, a: np.ndarray, b: np.ndarray) -> Any: ...

    def render(self, state: Any, ts: Sequence[float]) -> List[np.ndarray]: ...


def parse_multipliers(text: str, pairs: int, factor: int) -> np.ndarray:
    """Per-pair frame multipliers from "P:M, A-B:M" (pair P, or pairs A..B inclusive, get M).

    Pairs not named keep `factor`; M = 0 or 1 gives no in-betweens for that pair."""
    mult = np.full(max(pairs, 0), factor, np.int64)
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        m = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?\s*:\s*(\d+)", item)
        if not m:
            raise NodeError(f"multipliers: cannot read {item!r}; write 'PAIR:MULTIPLIER' or 'FIRST-LAST:MULTIPLIER', "
                            f"e.g. '0:2, 10-19:0'")
        a, b, k = int(m.group(1)), int(m.group(2) or m.group(1)), int(m.group(3))
        if b < a:
            raise NodeError(f"multipliers: range {item!r} runs backwards; write it as '{b}-{a}:{k}'")
        if k > 64:
            raise NodeError(f"multipliers: {k} in {item!r} is more than 64 frames per pair")
        mult[a:b + 1] = max(k, 1)
    return mult


@dataclass
class Plan:
    """Output frame k shows source pair `pair` at time t in [0, 1); t == 0 is the source frame itself."""
    n_src: int
    fps: float
    length: int
    offsets: Optional[np.ndarray] = None   # factor mode: output index of each source frame
    ratio: float = 0.0                     # fps mode: source frames per output frame

    def locate(self, start: int, stop: int) -> Tuple[np.ndarray, np.ndarray]:
        k = np.arange(start, stop, dtype=np.int64)
        if self.offsets is not None:
            pair = np.searchsorted(self.offsets, k, side="right") - 1
            span = np.diff(self.offsets, append=self.offsets[-1] + 1)[pair]
            t = (k - self.offsets[pair]) / span
        else:
            pos = k * self.ratio
            pair = np.floor(pos + _EXACT).astype(np.int64)
            t = np.where(pos - pair < _EXACT, 0.0, pos - pair)
        return pair, t.astype(np.float64)


def make_plan(n_src: int, src_fps: float, factor: int = 2, fps: float = 0.0, multipliers: str = "") -> Plan:
    if n_src <= 0:
        return Plan(0, fps or src_fps * factor, 0, offsets=np.zeros(0, np.int64))
    if fps and fps > 0:
        if multipliers.strip():
            raise NodeError("set either a target fps or per-pair multipliers, not both "
                            "(multipliers only apply with fps = 0)")
        if src_fps <= 0:
            raise NodeError("the input clip has no frame rate, so a target fps cannot be reached; use factor")
        ratio = src_fps / fps
        length = int(math.floor((n_src - 1) / ratio + _EXACT)) + 1
        return Plan(n_src, float(fps), length, ratio=ratio)
    mult = parse_multipliers(multipliers, n_src - 1, factor)
    offsets = np.concatenate([[0], np.cumsum(mult)]).astype(np.int64)
    return Plan(n_src, src_fps * factor, int(offsets[-1]) + 1, offsets=offsets)


def colour_histogram(img: np.ndarray) -> np.ndarray:
    """The normalised 8x8x8 RGB histogram cut_score compares (of a 64-wide copy: enough for shares)."""
    small = cv2.resize(img, (64, max(1, 64 * img.shape[0] // img.shape[1])), interpolation=cv2.INTER_AREA)
    h = cv2.calcHist([small], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3)
    return h / max(h.sum(), 1.0)


def histogram_distance(ha: np.ndarray, hb: np.ndarray) -> float:
    return float(cv2.compareHist(ha, hb, cv2.HISTCMP_BHATTACHARYYA))


def cut_score(a: np.ndarray, b: np.ndarray) -> float:
    """How unlike two frames' colour distributions are, 0 (same) to 1 (disjoint).

    Histograms ignore where things are, so camera and object motion barely move the score
    while a cut to another shot does (Bhattacharyya distance of 8x8x8 RGB histograms)."""
    return histogram_distance(colour_histogram(a), colour_histogram(b))


def resolved(value):
    """value, or its result where it is a Future still running on the pool."""
    return value.result() if isinstance(value, Future) else value


def interpolated_clip(src: Clip, synth: Synth, *, factor: int = 2, fps: float = 0.0, multipliers: str = "",
                      scene_threshold: float = 0.3, ctx=None) -> Clip:
    """The lazily interpolated clip: source frames stay bit-exact at their positions, pairs
    across a scene cut (cut_score > scene_threshold; 0 turns detection off) repeat the nearer
    source frame instead of blending, and any output range can be rendered on its own."""
    plan = make_plan(src.length, src.fps, factor, fps, multipliers)
    # An output chunk often ends inside a pair and the next one needs the same pair again.
    cache = PairCache(size=2)
    progress = Progress(ctx, plan.length)

    outer = getattr(synth, "outer", False)
    reach = 1 if outer else 0
    # A frame serves up to four pairs (two as a member, two as an outer frame), which the pool
    # may prepare side by side: its histogram and the synth's work on it are kept for all of them
    # (the pairs in flight need at most _WORKERS + 3 frames).
    per_frame = PairCache(size=2 * (_WORKERS + 4))
    prepare_frame = getattr(synth, "prepare_frame", None)
    prepare_link = getattr(synth, "prepare_link", None) if prepare_frame is not None else None
    around_links = outer and getattr(synth, "around", False)
    # The links a chunk's last pair read, which the next chunk's first pair (the same one, where
    # the chunk ends inside it, or the one after) reads again.
    carried: Dict[str, Dict[int, Any]] = {"links": {}}

    def reader(start: int, stop: int) -> np.ndarray:
        pairs, ts = plan.locate(start, stop)
        lo, hi = int(pairs.min()), int(pairs.max())
        first = max(0, lo - reach)
        window = src.frames(first, min(src.length, hi + 2 + reach))
        cuts: Dict[int, bool] = {}
        # The chunk's own: its links read more frames than per_frame keeps.
        made: Dict[int, Any] = {}
        links: Dict[int, Any] = {}

        def frame(i: int) -> np.ndarray:
            return window[i - first]

        def prepared(i: Optional[int]):
            if i is None:
                return None
            if i not in made:
                made[i] = per_frame.get(("synth", i), lambda: prepare_frame(frame(i)))
            return made[i]

        def hist(i: int) -> np.ndarray:
            return per_frame.get(("hist", i), lambda: colour_histogram(frame(i)))

        def cut(i: int) -> bool:
            if i not in cuts:
                cuts[i] = scene_threshold > 0 and histogram_distance(hist(i), hist(i + 1)) > scene_threshold
            return cuts[i]

        def around(i: int) -> List[Optional[int]]:
            if not outer:
                return []
            return [i - 1 if i > 0 and not cut(i - 1) else None, i + 2 if i + 2 < src.length and not cut(i + 1) else None]

        def link_pairs(i: int) -> List[Optional[int]]:
            """The pairs whose links pair i reads: (before, a), (a, b), (b, after), by first frame."""
            before, after = (around(i) + [None, None])[:2] if around_links else (None, None)
            return [None if before is None else i - 1, i, None if after is None else i + 1]

        def pair_state(i: int):
            def make():
                if cut(i):
                    return None
                args = [frame(k) if k is not None else None for k in [i, i + 1] + around(i)]
                if prepare_frame is None:
                    return synth.prepare(*args)
                kw = {"frames": [prepared(k) for k in [i, i + 1] + around(i)]}
                if prepare_link is not None:
                    kw["links"] = [None if k is None else resolved(links.get(k)) for k in link_pairs(i)]
                return synth.prepare(*args, **kw)
            return cache.get(i, make)

        out = np.empty((stop - start, src.height, src.width, 3), np.uint8)
        todo: Dict[int, List[int]] = {}
        for j, (p, t) in enumerate(zip(pairs, ts)):
            if t == 0.0:
                out[j] = frame(p)
            else:
                todo.setdefault(int(p), []).append(j)
        # A batching synth gets the chunk's pairs at once; the others one pair at a time (on
        # the pool's threads if the synth allows), so only a few pairs' states are alive.
        batched = hasattr(synth, "render_many")

        def work(p: int, idx: List[int]):
            if ctx is not None:
                ctx.check()
            state = pair_state(p)
            if state is None:
                return idx, [frame(p) if ts[j] < 0.5 else frame(p + 1) for j in idx]
            call = (state, [float(ts[j]) for j in idx])
            return idx, (call if batched else synth.render(*call))

        def link(k: int):
            if ctx is not None:
                ctx.check()
            # (None across a cut: no pair reads it.)
            return None if cut(k) else prepare_link(prepared(k), prepared(k + 1))

        items = list(todo.items())
        missing: List[int] = []
        if prepare_link is not None:
            # Every link a pair of the chunk may read; which ones it does depends on the cuts, whose
            # histograms the tasks compute side by side.
            reads = (-1, 0, 1) if around_links else (0,)
            need = sorted({p + d for p in todo for d in reads if 0 <= p + d < src.length - 1})
            kept = carried["links"]
            links.update((k, kept[k]) for k in need if k in kept)
            missing = [k for k in need if k not in kept]
        if getattr(synth, "parallel", False) and not batched and len(missing) + len(items) > 1:
            # The links first, then the pairs: the queue is first in, first out, so a pair's task
            # starts only after every link it reads has started, and waits at most for those still
            # running instead of for the chunk's last link.
            made_links = [_pool().submit(link, k) for k in missing]
            links.update(zip(missing, made_links))
            tasks = made_links + [_pool().submit(work, p, idx) for p, idx in items]
            try:
                jobs = [task.result() for task in tasks[len(missing):]]
            except BaseException:
                for task in tasks:          # a failed or cancelled chunk leaves nothing queued behind it
                    task.cancel()
                raise
        else:
            links.update((k, link(k)) for k in missing)
            jobs = [work(p, idx) for p, idx in items]
        if prepare_link is not None:
            carried["links"] = {k: resolved(links[k]) for k in need[-3:]}
        if batched:
            calls = [(k, call) for k, (_, call) in enumerate(jobs) if isinstance(call, tuple)]
            if calls:
                for (k, _), frames in zip(calls, synth.render_many([c for _, c in calls])):
                    jobs[k] = (jobs[k][0], frames)
        for idx, frames in jobs:
            for j, frame in zip(idx, frames):
                out[j] = frame
        progress.add(stop - start)
        return out

    return src.with_(length=plan.length, fps=plan.fps, reader=reader)
