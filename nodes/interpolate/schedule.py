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
A parallel synth's pool also works ahead of sequential reads (see _Reader): the next pairs' links
and renders are queued behind the chunk being read, so both cores stay busy across chunks and at 4K.
Everything else lives here, so flow, RIFE and any later method schedule frames identically."""
from __future__ import annotations

import math
import os
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

import cv2
import numpy as np

from graph_engine import Clip, NodeError
from nodes.common.flow import backward_warp, estimate_flow, to_gray
from nodes.common.stream import PairCache, Progress

# A source position closer than this to an integer is that source frame (fps ratios like 24000/1001).
_EXACT = 1e-6
_POOL: Optional[ThreadPoolExecutor] = None
_POOL_LOCK = threading.Lock()


_CORES = os.cpu_count() or 1
_WORKERS = max(1, min(8, _CORES))


def _pool() -> ThreadPoolExecutor:
    # One pool for every clip: pairs are independent, and more threads than cores only contend.
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="interpolate")
        return _POOL


class _OpenCVSerial:
    """OpenCV's own threads off (cv2.setNumThreads(1)) while any of the pool's tasks runs, the caller's
    setting back once none does, where the pool's threads fill every core (_WORKERS >= the cores).

    OpenCV runs one parallel_for_ at a time across its worker threads; with both pool threads calling
    it, its worker only takes the third slot on two cores and costs wake-ups and waits. Two Python
    threads making bikes-d's main DIS flows (256x109) side by side: 6.32-6.68 ms process CPU a call
    with 1 OpenCV thread, 6.79-6.86 with 2 (wall 3.17-3.37 vs 3.44-3.50 ms a call). Whole bikes-d runs
    of the bench (20 pairs, 2 cores), with and without, alternating processes, 6 rounds of 8: process
    CPU a run -1.9% (median of each round: mean 975 vs 994 ms), wall -3.1% (502 vs 519 ms); at the
    start and tail of a run, the only times one task is in flight (~25 ms of ~480), OpenCV's second
    thread would help a little, but not as much as it costs the rest. OpenCV has no per-thread or
    scoped thread count, and setNumThreads is process-global (the editor and other nodes share it:
    their OpenCV calls run single-threaded too while the pool fills the cores), hence on only while
    the pool is busy (twice per run of a clip read in order). OpenCV 5.1's DIS, remap and filters give
    the same output at any thread count (test_opencv_output_does_not_depend_on_its_thread_count), so
    what a task makes does not depend on when it runs. Where the pool is narrower than the machine
    (over 8 cores) OpenCV's threads use the spare cores and are left alone."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = 0
        self.saved: Optional[int] = None

    def __enter__(self):
        with self.lock:
            if self.running == 0 and _WORKERS >= _CORES:
                self.saved = cv2.getNumThreads()
                cv2.setNumThreads(1)
            self.running += 1

    def __exit__(self, *exc):
        with self.lock:
            self.running -= 1
            if self.running == 0 and self.saved is not None:
                cv2.setNumThreads(self.saved)
                self.saved = None


_SERIAL = _OpenCVSerial()


def _task(fn, *args):
    with _SERIAL:
        return fn(*args)


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
    """The normalised 8x8x8 RGB histogram cut_score compares (of a ~64-wide copy: enough for shares)."""
    h, w = img.shape[:2]
    # Area averaging by a whole factor, the last odd rows/columns cropped: OpenCV's fast path. A
    # fractional ratio (640x272 to 64x27) took 0.5 ms a frame, about 1% of a pair's work.
    s = max(1, w // 64)
    small = cv2.resize(img[:max(s, h // s * s), :w // s * s], (w // s, max(1, h // s)), interpolation=cv2.INTER_AREA)
    h = cv2.calcHist([small], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3)
    return h / max(h.sum(), 1.0)


def histogram_distance(ha: np.ndarray, hb: np.ndarray) -> float:
    return float(cv2.compareHist(ha, hb, cv2.HISTCMP_BHATTACHARYYA))


def cut_score(a: np.ndarray, b: np.ndarray) -> float:
    """How unlike two frames' colour distributions are, 0 (same) to 1 (disjoint).

    Histograms ignore where things are, so camera and object motion barely move the score
    while a cut to another shot does (Bhattacharyya distance of 8x8x8 RGB histograms)."""
    return histogram_distance(colour_histogram(a), colour_histogram(b))


# A pair whose colour histograms differ by more than CUT_DOUBT of the scene threshold is a cut too
# where its structure does not match either: after a flow between grey copies CUT_THUMB wide, the
# median pixel is still more than CUT_MISMATCH grey levels off. Two shots of one palette fool the
# histograms: bikes.mp4 cuts from its fence shot to a pavement at frame 187 with a score of 0.265
# (step 2, as the bench drops frames: 0.268), under the default 0.3, and the in-between blended across
# it scored 12.4 dB (minterpolate, which holds a frame there, 24.3). Of the pairs 1, 2 or 3 frames
# apart in the bench's five files whose histograms change by over 0.15, the 33 within a shot leave
# a median of at most 21.7 grey levels (bikes' passing truck, frames 98-101, whose histogram change
# reaches 0.240), the 36 across a cut at least 32.7 (that one 40.4). The check runs only where the
# histograms doubt (in the bench clips, a few of bikes-d's truck pairs: their output is unchanged).
CUT_DOUBT = 0.5
CUT_THUMB = 96
CUT_MISMATCH = 27.0


def structure_mismatch(a: np.ndarray, b: np.ndarray) -> float:
    """Median grey-level error left where b, moved onto a by a fast flow, misses a (CUT_THUMB-wide grey
    copies): a few levels within a shot, however things move, tens across a cut."""
    small = []
    for img in (a, b):
        h, w = img.shape[:2]
        size = (CUT_THUMB, max(8, round(h * CUT_THUMB / w)))
        small.append(cv2.resize(to_gray(img), size, interpolation=cv2.INTER_AREA))
    moved = backward_warp(small[1].astype(np.float32), estimate_flow(small[0], small[1], "fast"))
    return float(np.median(np.abs(moved - small[0])))


def scene_cut(score: float, a: np.ndarray, b: np.ndarray, threshold: float) -> bool:
    """Whether frames a, b whose colour histograms differ by `score` (cut_score) lie either side of a
    scene cut at `threshold` (0: never): over it, or over CUT_DOUBT of it where their structure does
    not match either (structure_mismatch)."""
    return threshold > 0 and (score > threshold or (score > CUT_DOUBT * threshold and
                                                    structure_mismatch(a, b) > CUT_MISMATCH))


def resolved(value):
    """value, or its result where it is a Future of the pool."""
    return value.result() if isinstance(value, Future) else value


def _failed(value) -> bool:
    return isinstance(value, Future) and value.done() and (value.cancelled() or value.exception() is not None)


class _Frame:
    """A source frame and what is made of it (histogram, scene cut to the next frame, the synth's
    prepare_frame) once for every pair and link that reads it, on whichever thread asks first."""

    def __init__(self, img: np.ndarray):
        self.img = img
        self.made = PairCache(size=3)


# An output render: a pair and the times of its in-betweens that one read (an output chunk) shows.
Key = Tuple[int, Tuple[float, ...]]


class _Reader:
    """The interpolated clip's reader, and the work it keeps from one read to the next.

    The frames, links and renders a read needs live in dicts keyed by source frame, link (first
    frame) and render; each read drops what it and the reads it expects next do not need. With a
    parallel synth, a read that continues the previous one (or starts the clip) also queues, behind
    its own tasks, the renders of the next _WORKERS pairs the next reads will show and the links of
    one pair more (a render waits for the link after its pair): the pool's threads go on with those
    while the read's last tasks finish and while the caller handles the chunk and asks for the next,
    so both cores stay busy across chunks, and at 4K (one frame per chunk, a pair's render waiting
    for its link) a pair renders while the next pairs' links are made. At 4K that keeps at most 6
    links (21 MB each) and 2 rendered frames ahead alive.
    Everything is a pure function of the source frames, so what a read gets never depends on what was
    queued before it: a queued render nobody reads is cancelled (or, if running, finishes unread), and
    one that failed is made again when a read needs it, so its error surfaces only if it is used."""

    def __init__(self, src: Clip, synth: Synth, plan: Plan, scene_threshold: float, ctx):
        self.src, self.synth, self.plan, self.ctx = src, synth, plan, ctx
        self.threshold = scene_threshold
        self.outer = getattr(synth, "outer", False)
        self.reach = 1 if self.outer else 0
        self.prepare_frame = getattr(synth, "prepare_frame", None)
        self.prepare_link = getattr(synth, "prepare_link", None) if self.prepare_frame is not None else None
        self.around_links = self.outer and getattr(synth, "around", False)
        # A batching synth gets the read's pairs at once; the others one pair at a time (on the pool's
        # threads if the synth allows), so only a few pairs' states are alive.
        self.batched = hasattr(synth, "render_many")
        self.parallel = getattr(synth, "parallel", False) and not self.batched
        # An output chunk often ends inside a pair and the next one needs the same pair again.
        self.states = PairCache(size=2)
        self.progress = Progress(ctx, plan.length)
        self.chunk = 1                      # the output clip's, set by interpolated_clip
        self.frames: Dict[int, _Frame] = {}
        self.links: Dict[int, Any] = {}     # value, or its Future
        self.renders: Dict[Key, Any] = {}
        self.dropped: List[Future] = []     # dropped while running: they finish unread
        self.follows = 0                    # where a read that continues the last one starts
        self.lock = threading.Lock()

    # -- what a range of output frames needs --------------------------------------------------
    def keys(self, start: int, stop: int) -> Dict[Key, List[int]]:
        """The renders output frames [start, stop) need, each with the offsets of its frames."""
        pairs, ts = self.plan.locate(start, stop)
        by_pair: Dict[int, List[int]] = {}
        for j, (p, t) in enumerate(zip(pairs, ts)):
            if t != 0.0:
                by_pair.setdefault(int(p), []).append(j)
        return {(p, tuple(float(ts[j]) for j in idx)): idx for p, idx in by_pair.items()}

    def ahead(self, stop: int) -> Tuple[List[Key], List[int]]:
        """The renders of the next _WORKERS pairs that sequential reads after `stop` will show, and the
        pairs whose links to make: those and one more, since a pair's render waits for the link after it."""
        keys: List[Key] = []
        start = stop
        # (Chunks of source frames alone need no render: at 4K, factor 2, every other chunk.)
        for _ in range(2 * _WORKERS + 2):
            if start >= self.plan.length or len(keys) > _WORKERS:
                break
            stop = min(self.plan.length, start + self.chunk)
            keys += list(self.keys(start, stop))[:_WORKERS + 1 - len(keys)]
            start = stop
        return keys[:_WORKERS], [p for p, _ in keys]

    def link_keys(self, pairs) -> List[int]:
        """Every link the pairs may read; which ones they do depends on the scene cuts."""
        if self.prepare_link is None:
            return []
        reads = (-1, 0, 1) if self.around_links else (0,)
        return sorted({p + d for p in pairs for d in reads if 0 <= p + d < self.src.length - 1})

    def frame_keys(self, pairs) -> List[int]:
        return sorted({i for p in pairs for i in range(p - self.reach, p + 2 + self.reach) if 0 <= i < self.src.length})

    # -- the reader ---------------------------------------------------------------------------
    def read(self, start: int, stop: int) -> np.ndarray:
        with self.lock:
            own = self.keys(start, stop)
            pairs, ts = self.plan.locate(start, stop)
            ahead, linked = self.ahead(stop) if self.parallel and start == self.follows else ([], [])
            self.follows = stop
            self.drop(set(own) | set(ahead), [int(p) for p in pairs] + linked)
            try:
                self.fetch(self.frame_keys(range(int(pairs.min()), int(pairs.max()) + 1)))
                self.queue(list(own))
                if linked:
                    try:
                        self.fetch(self.frame_keys(linked))
                    except Exception:   # the source fails there: a read that needs those frames will say so
                        ahead, linked = [], []
                    self.queue(ahead, linked)
                out = np.empty((stop - start, self.src.height, self.src.width, 3), np.uint8)
                for j, (p, t) in enumerate(zip(pairs, ts)):
                    if t == 0.0:
                        out[j] = self.frames[int(p)].img
                made = [(idx, resolved(self.renders.pop(key))) for key, idx in own.items()]
                if self.batched:
                    calls = [(k, call) for k, (_, call) in enumerate(made) if isinstance(call, tuple)]
                    if calls:
                        for (k, _), frames in zip(calls, self.synth.render_many([c for _, c in calls])):
                            made[k] = (made[k][0], frames)
                for idx, frames in made:
                    for j, frame in zip(idx, frames):
                        out[j] = frame
                self.progress.add(stop - start)
            except BaseException:
                self.abandon()
                raise
        return out

    def drop(self, renders, pairs) -> None:
        """Forget (and cancel, where not started) what neither this read nor the next ones need."""
        links, frames = set(self.link_keys(pairs)), set(self.frame_keys(pairs))
        self.dropped = [f for f in self.dropped if not f.done()]
        for store, keep in ((self.renders, renders), (self.links, links)):
            for k in [k for k in store if k not in keep]:
                if isinstance(store[k], Future) and not store[k].cancel():
                    self.dropped.append(store[k])
                del store[k]
        for i in [i for i in self.frames if i not in frames]:
            del self.frames[i]

    def fetch(self, indices) -> None:
        # On the calling thread: a source may itself be a clip whose reader waits on the pool.
        for i in indices:
            if i not in self.frames:
                self.frames[i] = _Frame(self.src.frames(i, i + 1)[0])

    def queue(self, keys: List[Key], linked: Sequence[int] = ()) -> None:
        """Start the renders of `keys` and the links they read, links first, where not started yet (or
        failed), and those the pairs `linked` read. The pool's queue is first in, first out: a render's
        task starts only after every link it reads has started, and waits at most for those still running."""
        for k in self.link_keys([p for p, _ in keys] + list(linked)):
            if k not in self.links or _failed(self.links[k]):
                self.links[k] = self.run(self.link, k, {i: self.frames[i] for i in (k, k + 1)})
        for key in keys:
            if key not in self.renders or _failed(self.renders[key]):
                p = key[0]
                win = {i: self.frames[i] for i in self.frame_keys([p])}
                links = {k: self.links[k] for k in self.link_keys([p])}
                self.renders[key] = self.run(self.render, key, win, links)

    def run(self, fn, *args):
        return _pool().submit(_task, fn, *args) if self.parallel else fn(*args)

    def abandon(self) -> None:
        """After a failed or cancelled read: cancel what is queued, and let nothing run on behind it."""
        pending = [f for f in (*self.links.values(), *self.renders.values()) if isinstance(f, Future)]
        for f in pending:
            f.cancel()
        wait(pending + self.dropped)
        self.dropped = []
        self.links.clear()
        self.renders.clear()
        self.follows = -1

    # -- pool tasks: `win` holds the source frames a task may read, `links` the links -----------
    def check(self) -> None:
        if self.ctx is not None:
            self.ctx.check()

    def hist(self, f: _Frame) -> np.ndarray:
        return f.made.get("hist", lambda: colour_histogram(f.img))

    def prepared(self, f: Optional[_Frame]):
        return None if f is None else f.made.get("synth", lambda: self.prepare_frame(f.img))

    def cut(self, win: Dict[int, _Frame], i: int) -> bool:
        return win[i].made.get("cut", lambda: self.is_cut(win[i], win[i + 1]))

    def is_cut(self, a: _Frame, b: _Frame) -> bool:
        # (No histograms at all where detection is off.)
        return self.threshold > 0 and scene_cut(histogram_distance(self.hist(a), self.hist(b)), a.img, b.img,
                                                self.threshold)

    def around(self, win, i: int) -> List[Optional[int]]:
        if not self.outer:
            return []
        return [i - 1 if i > 0 and not self.cut(win, i - 1) else None,
                i + 2 if i + 2 < self.src.length and not self.cut(win, i + 1) else None]

    def link(self, k: int, win):
        self.check()
        # (None across a cut: no pair reads it.)
        return None if self.cut(win, k) else self.prepare_link(self.prepared(win[k]), self.prepared(win[k + 1]))

    def render(self, key: Key, win, links):
        self.check()
        p, ts = key
        state = self.states.get(p, lambda: self.prepare(p, win, links))
        if state is None:
            return [win[p].img if t < 0.5 else win[p + 1].img for t in ts]
        call = (state, list(ts))
        return call if self.batched else self.synth.render(*call)

    def prepare(self, i: int, win, links):
        if self.cut(win, i):
            return None
        which = [i, i + 1] + self.around(win, i)
        args = [None if k is None else win[k].img for k in which]
        if self.prepare_frame is None:
            return self.synth.prepare(*args)
        kw = {"frames": [self.prepared(None if k is None else win[k]) for k in which]}
        if self.prepare_link is not None:
            # The pairs whose links pair i reads: (before, a), (a, b), (b, after), by first frame.
            before, after = (self.around(win, i) + [None, None])[:2] if self.around_links else (None, None)
            kw["links"] = [None if k is None else resolved(links[k])
                           for k in (None if before is None else i - 1, i, None if after is None else i + 1)]
        return self.synth.prepare(*args, **kw)


def interpolated_clip(src: Clip, synth: Synth, *, factor: int = 2, fps: float = 0.0, multipliers: str = "",
                      scene_threshold: float = 0.3, ctx=None) -> Clip:
    """The lazily interpolated clip: source frames stay bit-exact at their positions, pairs
    across a scene cut (cut_score > scene_threshold, or over half of it where the frames' structure
    does not match either: structure_mismatch; 0 turns detection off) repeat the nearer
    source frame instead of blending, and any output range can be rendered on its own."""
    plan = make_plan(src.length, src.fps, factor, fps, multipliers)
    reader = _Reader(src, synth, plan, scene_threshold, ctx)
    audio = src.audio
    if audio is not None and plan.offsets is not None and np.any(np.diff(plan.offsets) != factor):
        # Multipliers other than `factor` make a speed ramp: the sound, kept whole, drifted from the pictures.
        from nodes.video.edit import ramped_sound
        audio = ramped_sound(src, plan.offsets, plan.fps)
        if ctx is not None:
            ctx.log("the sound follows the speed ramp: each pair's slice plays at its pictures' speed, its pitch "
                    "following (as a tape)")
    clip = src.with_(length=plan.length, fps=plan.fps, reader=reader.read, audio=audio)
    reader.chunk = clip.chunk
    return clip
