"""Sliding context windows for long video: schedules, fuse weights, fusion.

A model trained on L frames denoises N > L frames by running on windows of L
frames at every sampler step and averaging the overlapping outputs. Schedules
follow AnimateDiff-Evolved's semantics so workflows and intuitions carry over.
Pure numpy/python: the fusion works on numpy arrays and torch tensors alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEDULES = ("static", "uniform_standard", "uniform_looped", "batched")
FUSE_METHODS = ("flat", "pyramid", "overlap_linear")


def ordered_halving(step: int) -> float:
    """Bit-reversed step / 2^64: 0, 1/2, 1/4, 3/4, 1/8, ... spreads window offsets evenly."""
    return int(f"{step:064b}"[::-1], 2) / (1 << 64)


def _check(num_frames: int, length: int, overlap: int, stride: int) -> None:
    if num_frames < 1:
        raise ValueError(f"context windows need at least 1 frame, got {num_frames}")
    if length < 1:
        raise ValueError(f"context length must be at least 1, got {length}")
    if not 0 <= overlap < length:
        raise ValueError(f"context overlap must be in [0, length-1] = [0, {length - 1}], got {overlap}")
    if stride < 1:
        raise ValueError(f"context stride must be at least 1, got {stride}")


def _static(n: int, length: int, overlap: int, closed_loop: bool) -> list[list[int]]:
    delta = length - overlap
    if closed_loop:
        # The wrapping last window joins the end to the start so a loop has no seam.
        return [[i % n for i in range(s, s + length)] for s in range(0, n, delta)]
    windows = []
    for start in range(0, n, delta):
        if start + length >= n:
            # Pulled back to end at n-1 so every window has the full context length.
            windows.append(list(range(n - length, n)))
            break
        windows.append(list(range(start, start + length)))
    return windows


def _uniform_raw(n: int, length: int, overlap: int, stride: int, step: int, end_pad: int) -> list[list[int]]:
    # Dilated windows span L*step frames; capping the levels so that span fits in N keeps
    # every frame at most once per window (AnimateDiff-Evolved allows one more level).
    stride = min(stride, int(np.floor(np.log2(n / length))) + 1)
    shift = ordered_halving(step)
    pad = int(round(n * shift))
    windows = []
    for context_step in (1 << np.arange(stride)).tolist():
        for j in range(int(shift * context_step) + pad, n + pad + end_pad, length * context_step - overlap):
            windows.append([e % n for e in range(j, j + length * context_step, context_step)])
    return windows


def _roll_index(window: list[int]) -> int:
    for i in range(1, len(window)):
        if window[i] < window[i - 1]:
            return i
    return -1


def _uniform_standard(n: int, length: int, overlap: int, stride: int, step: int) -> list[list[int]]:
    windows = _uniform_raw(n, length, overlap, stride, step, -overlap)
    out: list[list[int]] = []
    # Seen windows in a set: looking each up in `out` took 34 s at 25,000 latent frames (a 100,000-frame latent,
    # length 1), at every step of the run and again in the estimate before it.
    seen: set = set()
    i = 0
    while i < len(windows):
        w = windows[i]
        roll = _roll_index(w)
        if roll >= 0:
            # A wrapped window is moved to end at n-1, keeping its dilation; if the
            # frame it wrapped to is then uncovered, a plain window starting there is added.
            roll_val = w[roll]
            rel = [(v - w[0]) % n for v in w]
            w = [v + (n - 1 - rel[-1]) for v in rel]
            windows[i] = w
            if roll_val not in windows[(i + 1) % len(windows)]:
                windows.insert(i + 1, list(range(roll_val, roll_val + length)))
        if tuple(w) not in seen:
            seen.add(tuple(w))
            out.append(w)
        i += 1
    return out


def _batched(n: int, length: int) -> list[list[int]]:
    return [list(range(s, min(s + length, n))) for s in range(0, n, length)]


def context_windows(schedule: str, num_frames: int, length: int, overlap: int = 4, stride: int = 1,
                    closed_loop: bool = False, step: int = 0) -> list[list[int]]:
    """Frame indices of each window at sampler `step`.

    static: starts 0, L-O, 2(L-O), ...; the last window pulled back to end at N-1
        (closed_loop: windows keep going and the last one wraps to the start).
    uniform_standard / uniform_looped: shifted by round(N * ordered_halving(step)) each
        step, with `stride` levels of dilated windows (1, 2, 4, ... frames apart);
        looped windows wrap (indices mod N), standard ones are moved to end at N-1.
        closed_loop adds the window that closes the loop (looped only).
    batched: non-overlapping chunks of L (the last may be shorter); overlap is ignored.
    """
    _check(num_frames, length, overlap, stride)
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown context schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    n = num_frames
    if n <= length:
        return [list(range(n))]
    if schedule == "static":
        return _static(n, length, overlap, closed_loop)
    if schedule == "uniform_looped":
        return _uniform_raw(n, length, overlap, stride, step, 0 if closed_loop else -overlap)
    if schedule == "uniform_standard":
        return _uniform_standard(n, length, overlap, stride, step)
    return _batched(n, length)


def window_boundaries(windows: list[list[int]], num_frames: int) -> list[int]:
    """Frames b where a window begins or the one before ends (the step from b-1 to b), 0 < b < N: where a seam
    can show. Static windows of 16 overlapping by 4 over 64 frames: 12, 16, 24, 28, 36, 40, 48, 52; batched
    chunks of 16: 16, 32, 48. A wrapped (looped) window begins at its first index and ends at its last."""
    bounds = {w[0] for w in windows} | {w[-1] + 1 for w in windows}
    return sorted(b for b in bounds if 0 < b < num_frames)


def fuse_weights(method: str, window: list[int], num_frames: int, overlap: int, looped: bool = False) -> np.ndarray:
    """Per-frame weights (float64, all > 0) of one window's output in the fused average.

    flat: ones. pyramid: 1, 2, ..., L/2, ..., 2, 1. overlap_linear: ramps over the
    `overlap` frames at inner edges only (an edge at frame 0 or N-1 of an open
    schedule stays at 1). The ramps are (k+1)/(O+1), so a ramp down and the next
    window's ramp up sum to exactly 1 where windows overlap by O frames.
    """
    size = len(window)
    if method == "flat":
        return np.ones(size)
    if method == "pyramid":
        ramp = np.arange(1, size + 1, dtype=np.float64)
        return np.minimum(ramp, ramp[::-1])
    if method == "overlap_linear":
        w = np.ones(size)
        o = min(overlap, size)
        if o == 0:
            return w
        ramp = np.arange(1, o + 1) / (o + 1)
        if looped or window[0] != 0:
            w[:o] = ramp
        if looped or window[-1] != num_frames - 1:
            w[size - o:] = np.minimum(w[size - o:], ramp[::-1])
        return w
    raise ValueError(f"unknown fuse method {method!r}; choose one of {', '.join(FUSE_METHODS)}")


def _as_like(values: np.ndarray, ref):
    """`values` as an array of ref's kind (numpy, or torch on ref's device and dtype)."""
    if isinstance(ref, np.ndarray):
        return values.astype(ref.dtype, copy=False)
    import torch
    return torch.as_tensor(values, dtype=ref.dtype, device=ref.device)


def _zeros_like_shape(ref, shape):
    if isinstance(ref, np.ndarray):
        return np.zeros(shape, dtype=ref.dtype)
    return ref.new_zeros(shape)


def take_frames(x, idx: list[int], axis: int):
    if isinstance(x, np.ndarray):
        return np.take(x, idx, axis=axis)
    import torch
    return torch.index_select(x, axis, torch.as_tensor(idx, device=x.device))


def fuse_window_outputs(outputs, windows: list[list[int]], weights: list[np.ndarray], num_frames: int,
                        axis: int = 2):
    """Weighted average of per-window outputs: acc[idx] += out*w; cnt[idx] += w; acc/cnt.

    `outputs` may be a generator, so only one window's output is alive at a time.
    Raises if some frame is covered by no window (its average would be undefined)."""
    acc = None
    cnt = np.zeros(num_frames)
    for out, idx, w in zip(outputs, windows, weights):
        if acc is None:
            axis = axis % out.ndim
            shape = list(out.shape)
            shape[axis] = num_frames
            acc = _zeros_like_shape(out, shape)
            bshape = [1] * out.ndim
        bshape[axis] = len(idx)
        wb = _as_like(np.asarray(w, dtype=np.float64).reshape(bshape), out)
        acc[(slice(None),) * axis + (list(idx),)] += out * wb
        np.add.at(cnt, idx, w)
    if acc is None or not np.all(cnt > 0):
        missing = np.flatnonzero(cnt <= 0).tolist()
        raise ValueError(f"context windows leave frames {missing[:8]} uncovered")
    bshape[axis] = num_frames
    return acc / _as_like(cnt.reshape(bshape), acc)


def overlap_preflight(params: dict, sources: dict) -> list[tuple[str, str]]:
    """context.windows and noise.freenoise, at validation: a window overlaps the next by less than its
    length (FreeNoise would otherwise clamp the overlap silently, context.windows fail once the model
    had loaded)."""
    length, overlap = params["length"], params["overlap"]
    if overlap < length:
        return []
    return [("overlap", f"{overlap} is not less than length {length}: a window would repeat the one before "
                        f"it; set overlap below length (a quarter of it, {length // 4}, is usual)")]


def latent_context(length: int, overlap: int, compression: int) -> tuple[int, int]:
    """Context length and overlap in pixel frames -> the same in latent frames.

    The length maps like a clip ((L-1)//c+1: 81 -> 21 for Wan); the overlap as a span
    of frames (O//c, at least 1 if O > 0: 16 -> 4).
    """
    if compression <= 1:
        return length, overlap
    lat_len = (length - 1) // compression + 1
    lat_overlap = max(1, overlap // compression) if overlap > 0 else 0
    return lat_len, min(lat_overlap, lat_len - 1)


def step_for_sigma(sigmas, sigma: float) -> int:
    """Sampler step index of `sigma`: the last schedule entry >= sigma (intermediate stages count as their step)."""
    s = np.asarray(sigmas, dtype=np.float64)
    hits = np.flatnonzero(s >= float(sigma) - 1e-9 * max(1.0, abs(float(sigma))))
    return int(hits[-1]) if hits.size else 0


@dataclass(frozen=True)
class ContextOptions:
    """What `context.windows` hands to `sample`: lengths in pixel frames, as artists count them."""
    schedule: str = "static"
    length: int = 16
    overlap: int = 4
    stride: int = 1
    closed_loop: bool = False
    fuse: str = "overlap_linear"

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown context schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.fuse not in FUSE_METHODS:
            raise ValueError(f"unknown fuse method {self.fuse!r}; choose one of {', '.join(FUSE_METHODS)}")
        _check(max(self.length, 1), self.length, self.overlap, self.stride)

    def plan(self, num_latent_frames: int, step: int, compression: int = 1) -> tuple[list[list[int]], list[np.ndarray]]:
        """Windows over the latent time axis at `step` and each window's fuse weights."""
        length, overlap = latent_context(self.length, self.overlap, compression)
        windows = context_windows(self.schedule, num_latent_frames, length, overlap, self.stride,
                                  self.closed_loop, step)
        looped = self.closed_loop and self.schedule in ("static", "uniform_looped")
        weights = [fuse_weights(self.fuse, w, num_latent_frames, overlap, looped) for w in windows]
        return windows, weights
