"""The per-pixel passes of the noise warp (nodes/motion/noise_warp.py) as numba loops over a [3 + C, H, W] float32
state. They do the same float32 operations in the same order as the torch version they replace (torch.unique,
index_add_ scatters, where-selects over 19 channels of a megapixel state, each a full pass with its own buffers):
sums run in pixel order as index_add_ adds, so the result is bit-identical. Anything whose rounding is torch's own
(the random draws, mean, pow 0.9999, even sqrt: torch's vectorised one is not always correctly rounded, so the square
roots come in from torch, grid_sample's coordinates) stays in torch."""
from __future__ import annotations

import functools

import numpy as np


@functools.cache
def kernels():
    """The compiled loops; compiled on first use so importing never pays numba's start-up cost."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def split(state, flow, source):
        """Both halves [K, H, 2W] side by side (ahead: each pixel moved on along the flow; back: what a pixel nothing
        lands on pulls from `source`, the flat index it looks back to, -1 outside), and each pixel's landing place
        (flat index, -1 where it leaves the image)."""
        k, h, w = state.shape
        dest = np.empty(h * w, np.int64)
        inside = np.empty(h * w, np.bool_)
        landed = np.zeros(h * w, np.bool_)
        for y in range(h):
            for x in range(w):
                p = y * w + x
                a0 = state[0, y, x] + flow[0, y, x]
                a1 = state[1, y, x] + flow[1, y, x]
                tx = np.rint(np.float32(x) + a0)
                ty = np.rint(np.float32(y) + a1)
                inside[p] = tx >= 0 and tx < w and ty >= 0 and ty < h
                # one leaving the image becomes a blank (weight 1, no noise) that stays where it is
                sx = x + int(np.rint(a0)) if inside[p] else x
                sy = y + int(np.rint(a1)) if inside[p] else y
                # the rounded sum above and the sum of the rounded parts can differ by one: checked again
                if sx >= 0 and sx < w and sy >= 0 and sy < h:
                    dest[p] = sy * w + sx
                    landed[sy * w + sx] = True
                else:
                    dest[p] = -1
        # channel by channel: each pass reads and writes whole planes in order
        both = np.empty((k, h, 2 * w), np.float32)
        flat = state.reshape(k, h * w)
        for c in range(k):
            blank = np.float32(1.0 if c == 2 else 0.0)
            for y in range(h):
                for x in range(w):
                    p = y * w + x
                    both[c, y, x] = 0.0 if c < 2 else (flat[c, p] if inside[p] else blank)
                    s = source[p]
                    v = blank if landed[p] or s < 0 else flat[c, s]
                    both[c, y, w + x] = 1.0 if c == 2 and v == 0.0 else v
        return both, dest, landed

    @numba.njit(cache=True, nogil=True)
    def groups(values):
        """Group of each value (equal values: one group, as torch.unique finds them) and each group's size."""
        n = values.size
        size = 1
        while size < 2 * n:
            size *= 2
        bits = (values + np.float32(0.0)).view(np.uint32)      # + 0: -0.0 and 0.0 are equal, as unique has them
        table = np.full(size, -1, np.int64)
        keys = np.empty(size, np.uint32)
        group = np.empty(n, np.int64)
        counts = np.zeros(n, np.int64)
        found = 0
        for p in range(n):
            key = bits[p]
            slot = (np.uint64(key) * np.uint64(2654435761)) & np.uint64(size - 1)
            while table[slot] >= 0 and keys[slot] != key:
                slot = (slot + np.uint64(1)) & np.uint64(size - 1)
            if table[slot] < 0:
                table[slot] = found
                keys[slot] = key
                found += 1
            g = table[slot]
            group[p] = g
            counts[g] += 1
        return group, counts[:found]

    @numba.njit(cache=True, nogil=True)
    def regaussianize(noise, weight, fresh, group, counts, root):
        """In place: noise [C, N] with each group's copies made independent (its share of fresh noise's group mean
        taken out, the copies scaled by 1/root, root = sqrt(counts)), weight [N] divided among the copies."""
        c, n = noise.shape
        count = counts.astype(np.float32)
        sums = np.empty(count.size, np.float32)
        for ch in range(c):
            sums[:] = 0.0
            for p in range(n):
                sums[group[p]] += fresh[ch, p]
            for p in range(n):
                g = group[p]
                noise[ch, p] = noise[ch, p] / root[g] + (fresh[ch, p] - sums[g] / count[g])
        big = np.finfo(np.float32).max
        for p in range(n):
            v = weight[p] / count[group[p]]
            weight[p] = 0.0 if np.isnan(v) else (big if v == np.inf else (-big if v == -np.inf else v))

    @numba.njit(cache=True, nogil=True)
    def landed_weights(both, dest):
        """Sums of the landing weights, and of their squares, at each pixel of the next state."""
        _, h, w2 = both.shape
        w = w2 // 2
        wsum = np.zeros(h * w, np.float32)
        wsq = np.zeros(h * w, np.float32)
        for y in range(h):
            for x in range(w):
                d = dest[y * w + x]
                if d >= 0:
                    wt = both[2, y, x]
                    wsum[d] += wt
                    wsq[d] += wt * wt
        return wsum, wsq

    @numba.njit(cache=True, nogil=True)
    def merge(both, dest, landed, wsum, root):
        """The next state [K, H, W]: where something landed, the landed pixels merged by weight (noise by
        sum(w n) / root, root = sqrt(sum w^2), which keeps it unit Gaussian); elsewhere the pulled half."""
        k, h, w2 = both.shape
        w = w2 // 2
        out = np.empty((k, h, w), np.float32)
        acc = np.zeros(h * w, np.float32)
        for c in range(k):
            if c != 2:
                acc[:] = 0.0
                for y in range(h):
                    for x in range(w):
                        d = dest[y * w + x]
                        if d >= 0:
                            acc[d] += both[c, y, x] * both[2, y, x]
            for y in range(h):
                for x in range(w):
                    p = y * w + x
                    if not landed[p]:
                        out[c, y, x] = both[c, y, w + x]
                    elif c == 2:
                        out[c, y, x] = wsum[p]
                    elif c < 2:
                        out[c, y, x] = acc[p] / wsum[p]
                    else:
                        out[c, y, x] = acc[p] / root[p]
        return out

    @numba.njit(cache=True, nogil=True)
    def noise_of(state, root):
        """The state's noise [C, H, W]: noise * weight / root, root = sqrt(weight^2)."""
        k, h, w = state.shape
        out = np.empty((k - 3, h, w), np.float32)
        for c in range(3, k):
            for y in range(h):
                for x in range(w):
                    out[c - 3, y, x] = state[c, y, x] * state[2, y, x] / root[y, x]
        return out

    return split, groups, regaussianize, landed_weights, merge, noise_of
