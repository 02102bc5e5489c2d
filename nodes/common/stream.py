"""Streaming building blocks for the restoration, colour, stylization and relighting nodes.

Every derived clip computes a chunk from a bounded window of its source, so memory stays
O(chunk) and any frame range can be rendered alone (sharded rendering) with the same pixels
as a sequential pass. Progress is reported from inside the readers, where the work happens.
No heavy imports here: node modules import this at call time only, but it stays light anyway."""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Callable, Dict, Hashable, Optional

import numpy as np

from graph_engine import NodeError


def held_frames(clip, a: int, b: int, matte: bool = False) -> np.ndarray:
    """Frames a..b of `clip` (or its matte), its last frame held past its end (a still background, a matte
    painted once)."""
    src = clip.matte if matte else clip
    idx = np.minimum(np.arange(a, b), clip.length - 1)
    lo = int(idx[0])
    return src.frames(lo, int(idx[-1]) + 1)[idx - lo]


class Progress:
    """Reports frames computed so far against the clip length (chunks may arrive in any order)."""

    def __init__(self, ctx, total: int):
        self.ctx, self.total, self.done = ctx, max(1, int(total)), 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.done = min(self.total, self.done + int(n))
            done = self.done
        if self.ctx is not None:
            self.ctx.progress(done, self.total)

    def within(self, fraction: float, message: str = "") -> None:
        """Report a share (0..1) of the frame being computed, for frames that take minutes each."""
        if self.ctx is not None:
            self.ctx.progress(min(self.total, self.done + fraction), self.total, message)


def map_frames(ctx, clip, fn: Callable[[np.ndarray], np.ndarray], width: int = None, height: int = None):
    """A frame-local clip: fn(uint8 HxWx3) -> uint8 H'xW'x3, applied per frame with progress."""
    return map_indexed(ctx, clip, lambda i, f: fn(f), width, height)


def map_indexed(ctx, clip, fn: Callable[[int, np.ndarray], np.ndarray], width: int = None, height: int = None,
                progress: Optional[Progress] = None):
    """Like map_frames, but fn also gets the frame's index (for per-frame schedules and side inputs).
    `progress` (one made for this clip) lets fn report within a frame (Progress.within); it then counts
    each frame as it is done, not each chunk, so that a report within a frame follows the frames before it."""
    per_frame = progress is not None
    progress = progress or Progress(ctx, clip.length)
    w, h = width or clip.width, height or clip.height

    def reader(a: int, b: int) -> np.ndarray:
        out = np.empty((b - a, h, w, 3), np.uint8)
        for lo, block in clip.pieces(a, b):     # the source's chunks as they are: a smaller output's span of them
            for k, frame in enumerate(block, lo - a):      # is not joined into one more copy
                if ctx is not None:
                    ctx.check()
                out[k] = fn(a + k, frame)
                if per_frame:
                    progress.add(1)
        if not per_frame:
            progress.add(b - a)
        return out

    return clip.with_(width=w, height=h, reader=reader, local=True)


def moved(matte, fn, width: int, height: int):
    """A matte (Clip.matte) put through the same per-frame move as its clip's colour (resize, crop, pad: fn
    takes frames [n,H,W,C] of any C); None for none. The colour is premultiplied (laid over black), so filtering
    both alike keeps the edges right."""
    return None if matte is None else matte.map(fn, width, height)


def moved_float(out, clip, fn):
    """`out` (a node's result of `clip` through a move: resize, crop, flip) carrying clip's float pixels
    (Clip.linear) through the same move, fn(float32 [n,H,W,C]) -> [n,H',W',C] for any C: premultiplied colour
    and its alpha filter alike. Without, an EXR plate resized came out through 8-bit sRGB, clipped at 1.0."""
    if clip.linear is None:
        return out
    return out.with_(linear=lambda a, b: fn(np.asarray(clip.linear(a, b), np.float32)))


def colour_float(out, clip, fn):
    """`out` (a node's result of `clip` through a colour operation) carrying clip's float pixels (Clip.linear)
    through fn(float32 linear RGB [..., 3]) -> the same: unpremultiplied by their alpha first where they have
    one, as Nuke grades an element, and premultiplied again after."""
    if clip.linear is None:
        return out

    def linear(a: int, b: int) -> np.ndarray:
        px = np.asarray(clip.linear(a, b), np.float32)
        if px.shape[-1] == 3:
            return fn(px)
        alpha = px[..., 3:]
        held = alpha > 0
        straight = np.where(held, px[..., :3] / np.where(held, alpha, 1.0), 0.0)
        return np.concatenate([fn(straight) * alpha, alpha], -1)

    return out.with_(linear=linear)


# What Measures holds beyond a chunk's frames: a warp or a tone is a few hundred bytes a frame, so this keeps a long
# render's every frame.
MEASURES_BYTES = 64 << 20


class Measures:
    """What a node's 8-bit pass measured per frame (a deflicker's tone, a stabilizer's warp), kept for its float pass
    (measured_float): every frame's while they take under MEASURES_BYTES, and at least the latest `size` frames'.
    Kept for a chunk or two only, an EXR written from the floats after an MP4 of the same clip (its chunks long
    let go) made the whole 8-bit pass again to find them."""

    def __init__(self, size: int, budget: int = MEASURES_BYTES):
        self.size, self.budget, self.bytes, self._data = size, budget, 0, OrderedDict()
        self._lock = threading.Lock()

    def put(self, i: int, value) -> None:
        n = sum(np.asarray(v).nbytes for v in (value if isinstance(value, tuple) else (value,)) if v is not None)
        with self._lock:
            self.bytes += n - self._data.pop(i, (None, 0))[1]
            self._data[i] = (value, n)
            while len(self._data) > self.size and self.bytes > self.budget:
                self.bytes -= self._data.popitem(last=False)[1][1]

    def get(self, i: int):
        with self._lock:
            return self._data.get(i, (None, 0))[0]


def measured_float(out, clip, fn, measures: Measures):
    """`out` (a node's result of `clip`, whose 8-bit frames are measured as they are made into `measures`)
    carrying clip's float pixels (Clip.linear) through fn(float32 HxWx3 of frame i, measures' value for i) ->
    HxWx3, once out's frames a..b are made. The colour goes as it is premultiplied, as out's 8-bit frames are:
    over black, without the alpha they no longer carry."""
    if clip.linear is None:
        return out

    def measured(a: int, b: int) -> list:
        found = [measures.get(i) for i in range(a, b)]
        if any(v is None for v in found):
            # out's chunks are those of every clip showing its frames (the executor's wrappers read through
            # them): made once, whichever of the frames and the floats is read first
            out.frames(a, b)
            found = [measures.get(i) for i in range(a, b)]
        if any(v is None for v in found):       # frames out still holds but whose measures were let go
            out.drop_cache()
            out.frames(a, b)
            found = [measures.get(i) for i in range(a, b)]
        return found

    def linear(a: int, b: int) -> np.ndarray:
        c = out.chunk         # a chunk of out at a time: made as one, its measures are kept as one
        found = [v for s in range(a // c * c, b, c) for v in measured(max(a, s), min(b, s + c))]
        px = np.asarray(clip.linear(a, b), np.float32)
        return np.stack([fn(finite(px[k, ..., :3]), found[k]) for k in range(b - a)])

    return out.with_(linear=linear)


def levels_float(clip, radius: int, fn):
    """Clip.linear for a temporal node of `clip` that finds what to do on the 8-bit frames (flow, specks, weights)
    and does it to the float pixels too: fn(window, lo, a, b, deep) as windowed's, deep the window's float pixels
    as levels (sRGB-coded x 255, past 255 above 1.0; premultiplied colour, as the 8-bit frames hold it), returning
    frames a..b in those levels."""
    def linear(a: int, b: int) -> np.ndarray:
        lo, hi = max(0, a - radius), min(clip.length, b + radius)
        return from_levels(fn(clip.frames(lo, hi), lo, a, b, to_levels(clip.linear(lo, hi))))

    return linear


def levels_frames(out, clip, fn):
    """`out` (a node's per-frame result of `clip`, fn(uint8 frame)) carrying clip's float pixels (Clip.linear) through
    the same fn, given float levels (levels_float's) in place of the uint8 frame and returning them."""
    if clip.linear is None:
        return out
    return out.with_(linear=lambda a, b: from_levels(np.stack([fn(f) for f in to_levels(clip.linear(a, b))])))


def to_levels(px) -> np.ndarray:
    """A deep plate's float pixels (Clip.linear) as levels: sRGB-coded x 255, past 255 above 1.0, colour only; a CG
    render's NaN and infinite pixels as finite() makes them, frame by frame (a frame's levels are the same whichever
    window it is read in)."""
    from nodes.common.color import linear_to_srgb_unclamped
    px = np.asarray(px, np.float32)[..., :3]
    if not np.isfinite(px).all():
        px = finite(px) if px.ndim == 3 else np.stack([finite(f) for f in px])
    return linear_to_srgb_unclamped(px) * np.float32(255)


def finite(px: np.ndarray) -> np.ndarray:
    """px with a CG render's NaN pixels black and its infinite ones the brightest (darkest) finite value of px. A
    filter spreads them: one NaN pixel through stylize.kuwahara was a NaN hole 11 pixels wide in the EXR written,
    and an infinite one spread over bwdif's 16 bits left every other pixel 0."""
    seen = np.isfinite(px)
    if seen.all():
        return px
    top, bottom = (float(px[seen].max()), float(px[seen].min())) if seen.any() else (0.0, 0.0)
    return np.nan_to_num(px, nan=0.0, posinf=top, neginf=bottom)


def from_levels(levels: np.ndarray) -> np.ndarray:
    """to_levels undone: linear light."""
    from nodes.common.color import srgb_to_linear
    return srgb_to_linear(levels * np.float32(1 / 255))


def colour_frames(ctx, clip, fn: Callable[[np.ndarray], np.ndarray]):
    """map_frames for a colour operation (a grade, a LUT): a clip with transparency (Clip.matte) has fn applied
    to its colour taken off black and laid back over it, so a lift or offset does not paint the transparent
    parts and edges keep their colour (as Nuke grades an unpremultiplied element); the matte goes on as it is."""
    if clip.matte is None:
        return map_frames(ctx, clip, fn)
    from nodes.common.alpha import premultiplied, unpremultiplied
    progress = Progress(ctx, clip.length)

    def reader(a: int, b: int) -> np.ndarray:
        frames, alpha = clip.frames(a, b), clip.matte.frames(a, b)
        out = np.empty((b - a, clip.height, clip.width, 3), np.uint8)
        for k in range(b - a):
            if ctx is not None:
                ctx.check()
            out[k] = premultiplied(fn(unpremultiplied(frames[k], alpha[k])), alpha[k])
        progress.add(b - a)
        return out

    return clip.with_(reader=reader, matte=clip.matte, local=True)


def windowed(ctx, clip, radius: int, fn: Callable[[np.ndarray, int, int, int], np.ndarray], behind: bool = True,
             local: bool = False):
    """A temporal clip: fn(window, lo, a, b) -> uint8 frames [b-a] where window = clip[lo:hi].

    The window reaches `radius` frames either side of [a, b) (clamped to the clip), so a
    frame's output depends only on its neighbourhood, never on which chunk asked for it.
    `local`: fn makes each frame from its own window alone (nothing carried from the frames before it), so the
    clip is made as far as read, from exactly the windows of the frames read (graph_engine.clip's local clips).

    behind=False, for a node that reads the frames before `a` only for statistics of pairs of frames it keeps
    from one chunk to the next (stabilize's motion, deflicker's gains): only frames a..hi are held, and the
    window is a Behind, which reads one before `a` from the clip if it is asked for (after a jump). Held
    whole, those `radius` frames were never looked at again: at 4K, stabilize held 41 frames (1 GB) for 21."""
    _window_fits(ctx, clip, radius, behind)
    progress = Progress(ctx, clip.length)
    window = SlidingWindow(clip)
    lock = threading.Lock()

    def reader(a: int, b: int) -> np.ndarray:
        lo, hi = max(0, a - radius), min(clip.length, b + radius)
        with lock:          # the window's frames are shifted by the next call: fn must be done with them
            frames = window.frames(lo, hi) if behind else Behind(clip, window.frames(a, hi), lo, a)
            out = fn(frames, lo, a, b)
            if np.shares_memory(out, window.buf):
                out = out.copy()
        progress.add(b - a)
        return out

    out = clip.with_(reader=reader, local=local)
    window.size = min(clip.length, out.chunk + (2 if behind else 1) * radius)      # the widest window it holds
    return out


class Behind:
    """Frames lo..hi of a clip, indexed from lo, of which a..hi are held (`held`, an array): one before `a` is
    read from the clip when asked for."""

    def __init__(self, clip, held: np.ndarray, lo: int, a: int):
        self.clip, self.held, self.lo, self.a = clip, held, lo, a

    def __len__(self) -> int:
        return self.a - self.lo + len(self.held)

    def __getitem__(self, k: int) -> np.ndarray:
        i = self.lo + int(k)
        if not 0 <= k < len(self):
            raise IndexError(f"frame {i} is outside the window {self.lo}-{self.lo + len(self)}")
        return self.held[i - self.a] if i >= self.a else self.clip.frame(i)


class SlidingWindow:
    """Frames [lo, hi) of a clip in one array that slides forward with the reads: the frames the next
    window shares with this one are moved down, and only the new ones are pulled.

    Joining the window from the clip's chunks (clip.frames(lo, hi)) held it twice, the chunks kept for the
    next window and the joined copy: 550 MB for stabilize at 1080p (radius 20), 8 GB at 8K. Here the
    source is read a chunk at a time (its cache stays at a few chunks) and the window exists once."""

    def __init__(self, clip):
        self.clip, self.size = clip, 0
        self.buf: Optional[np.ndarray] = None
        self.lo = self.hi = 0

    def frames(self, lo: int, hi: int) -> np.ndarray:
        n = hi - lo
        keep = min(self.hi, hi) - lo if self.lo <= lo < self.hi else 0     # else a jump (a shard, the viewer)
        skip = lo - self.lo
        if self.buf is None or len(self.buf) < n:
            grown = np.empty((max(n, self.size), self.clip.height, self.clip.width, 3), np.uint8)
            if keep:
                grown[:keep] = self.buf[skip: skip + keep]
            self.buf = grown
        elif keep and skip:
            # Frame by frame: each copy is between distinct frames, so numpy needs no temporary.
            for k in range(keep):
                self.buf[k] = self.buf[skip + k]
        start = lo + keep
        c = self.clip.chunk
        while start < hi:                           # within one source chunk per pull
            stop = min(hi, (start // c + 1) * c)
            self.buf[start - lo: stop - lo] = self.clip.frames(start, stop)
            start = stop
        self.lo, self.hi = lo, hi
        return self.buf[:n]


def _meminfo(path: str = "/proc/meminfo") -> Optional[dict]:
    """The kernel's memory figures in bytes, by name (None where unknown: not Linux, or unreadable)."""
    try:
        with open(path) as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.strip()}
        return info if "MemAvailable" in info else None
    except (OSError, ValueError, IndexError):
        return None


def free_memory(path: str = "/proc/meminfo") -> Optional[int]:
    """Bytes this process could still get: available RAM plus free swap (None where unknown)."""
    info = _meminfo(path)
    return None if info is None else info["MemAvailable"] + info.get("SwapFree", 0)


def _cgroup_headroom(root: str) -> Optional[int]:
    """Bytes the memory cgroup this process is in (a container's: Docker and Kubernetes mount it at `root`) may still
    take: its limit less its use, cgroup v2's files or v1's; None without a limit. /proc/meminfo tells the host's
    memory, and a container limited to less was killed by the kernel, no word said, for memory the host had."""
    for limit, used in (("memory.max", "memory.current"),
                        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            with open(os.path.join(root, limit)) as f:
                cap = f.read().strip()
            with open(os.path.join(root, used)) as f:
                use = int(f.read().strip())
        except (OSError, ValueError):
            continue
        # v2 writes "max" without a limit; v1 a number near 2**63
        if cap.isdecimal() and int(cap) < 1 << 62:
            return max(0, int(cap) - use)
        return None
    return None


def available_ram(path: str = "/proc/meminfo", cgroup: str = "/sys/fs/cgroup") -> Optional[int]:
    """Bytes of RAM free for this process without swapping (None where unknown): what weights read at every step
    may take (swapped out, each step would read them back from disk). Within a container's memory limit."""
    info = _meminfo(path)
    if info is None:
        return None
    room = _cgroup_headroom(cgroup)
    return info["MemAvailable"] if room is None else min(info["MemAvailable"], room)


def _window_fits(ctx, clip, radius: int, behind: bool = True) -> None:
    """Refuse, before any frame is computed, a window that cannot fit in memory: at 8K, stabilize's 41 frames
    take 4 GB, and a radius past what the machine holds ended with the kernel killing the render, no word
    said. A temporal node holds its window (SlidingWindow: radius frames on one side of a chunk, or on both) and
    the few chunks its source keeps."""
    from graph_engine.clip import CACHED_CHUNKS
    sides = 2 if behind else 1
    frames = min(clip.length, clip.chunk + sides * radius)
    frame_bytes = clip.width * clip.height * 3
    held = min(clip.length, CACHED_CHUNKS * clip.chunk)
    need, free = (frames + held) * frame_bytes, free_memory()
    if free is None or need <= free:
        return
    fits = (free // frame_bytes - held - clip.chunk) // sides
    lower = f"lower radius to {fits} or less, or " if 1 <= fits < radius else ""
    raise NodeError(f"a window of {frames} frames of {clip.width}x{clip.height} ({radius} {'either side' if behind else 'ahead'}) "
                    f"needs about "
                    f"{_size(need)} at once, more than the {_size(free)} this machine has free: {lower}make the "
                    f"frames smaller first (video.resize, or io.load_video's width and height)")


class ByBatch:
    """Per-frame results of `make(frames)` (a sequence, one item a frame) over a clip, made `batch` frames a pass as
    they are read: get(a, b) gives frames a..b's. One pass is kept, as a clip is read forwards; chunks read side by
    side wait for each other, so no pass is made twice at once."""

    def __init__(self, video, batch: int, make: Callable, ctx=None):
        self.video, self.batch, self.make, self.ctx = video, max(1, int(batch)), make, ctx
        self._done: dict = {}
        self._lock = threading.Lock()

    def get(self, a: int, b: int) -> list:
        with self._lock:
            out = []
            for i in range(a, b):
                lo = i // self.batch * self.batch
                if lo not in self._done:
                    if self.ctx is not None:
                        self.ctx.check()
                    self._done = {lo: self.make(self.video.frames(lo, min(lo + self.batch, self.video.length)))}
                out.append(self._done[lo][i - lo])
            return out


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{max(1, round(n / 1e6))} MB"


class PairCache:
    """Bounded memo of per-frame or per-pair results (pure functions of the frames).

    Overlapping windows of consecutive chunks reuse flows and statistics instead of
    recomputing them; because the cached values are pure, caching never changes results.
    Threads that ask for the same key together get one computation: the others wait for it
    (two pairs rendered side by side share a frame)."""

    def __init__(self, size: int = 96):
        self.size = size
        self._data: "OrderedDict[Hashable, object]" = OrderedDict()
        self._lock = threading.Lock()
        self._pending: Dict[Hashable, threading.Event] = {}

    def get(self, key: Hashable, compute: Callable[[], object]):
        while True:
            with self._lock:
                if key in self._data:
                    self._data.move_to_end(key)
                    return self._data[key]
                busy = self._pending.get(key)
                if busy is None:
                    busy = self._pending[key] = threading.Event()
                    break
            # Another thread computes it; if that fails (or it is evicted at once), compute it here.
            busy.wait()
        try:
            value = compute()
            with self._lock:
                self._data[key] = value
                while len(self._data) > self.size:
                    self._data.popitem(last=False)
            return value
        finally:
            with self._lock:
                del self._pending[key]
            busy.set()


def smooth_trajectory(values: np.ndarray, breaks: np.ndarray, targets: range, lo: int, radius: int,
                      degree: int = 1) -> np.ndarray:
    """Low-pass of a per-frame signal at the target frames: a Gaussian-weighted local polynomial fit.

    values[k], breaks[k] belong to frame lo + k; a break starts a new segment and no fit crosses
    one. With degree 1 this equals a Gaussian average (sigma = radius / 2) inside the clip, and
    near the clip's ends and at breaks the linear term keeps ramps (pans, fades) unbiased where a
    plain average would drag them towards the frames that are present; degree 2 also follows
    curving paths (a pan that slows down) at the price of passing a little more noise."""
    values = np.asarray(values, np.float64)
    segment = np.cumsum(breaks)
    t_all = np.arange(-radius, radius + 1, dtype=np.float64)
    w_all = np.exp(-0.5 * (t_all / max(radius / 2.0, 0.5)) ** 2)
    out = np.zeros((len(targets),) + values.shape[1:], np.float64)
    for n, i in enumerate(targets):
        k = i - lo
        j0, j1 = max(0, k - radius), min(len(values), k + radius + 1)
        t = t_all[j0 - k + radius: j1 - k + radius]
        w = w_all[j0 - k + radius: j1 - k + radius] * (segment[j0:j1] == segment[k])
        y = values[j0:j1].reshape(j1 - j0, -1)
        # Fewer frames than coefficients (a segment just started): drop to what they can support.
        deg = min(degree, int((w > 1e-6).sum()) - 1)
        basis = np.vander(t, deg + 1, increasing=True) * np.sqrt(w)[:, None]
        coef = np.linalg.lstsq(basis, y * np.sqrt(w)[:, None], rcond=None)[0]
        out[n] = coef[0].reshape(values.shape[1:])
    return out
