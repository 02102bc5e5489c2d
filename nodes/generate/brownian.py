"""ComfyUI's Brownian-tree step noise (k-diffusion's BrownianTreeNoiseSampler) without torchsde.

ComfyUI's SDE samplers (dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde and their _gpu twins) draw each step's fresh noise as
the increment of one Brownian motion over the step, so a seed gives the same picture whatever the step count. The
motion is torchsde's BrownianTree: a BrownianInterval over [sigma_min, sigma_max] whose intervals are halved (the
"halfway tree", times rounded to 6 digits) until a query's ends are interval ends, each half's increment drawn from its
parent's by the Brownian bridge with a generator seeded from numpy's SeedSequence on the interval's place in the tree.
The numbers below are torchsde's, operation for operation, so the noise is ComfyUI's to the bit (tests/test_brownian.py
compares it with torchsde itself). torchsde is not needed: it is the one use ComfyUI makes of it.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch

# torchsde.BrownianTree's defaults, which k-diffusion keeps
TOL_DIGITS = 6          # tol 1e-6: interval ends rounded to 6 digits
POOL_SIZE = 24
CACHE_SIZE = 45         # BrownianInterval's cache of recent increments (a latent each)


class BrownianTree:
    """The increments of one seeded Brownian motion over [t0, t1] of a tensor of `shape`, as torchsde's
    BrownianTree(t0, zeros(shape), t1, entropy=seed) returns them for tree(ta, tb)."""

    def __init__(self, t0: float, t1: float, shape, seed: int, dtype=torch.float32, device="cpu"):
        # t0 = t1 is a one-level run (one step to zero), whose only query is empty; torchsde takes it too
        if not t0 <= t1:
            raise ValueError(f"a Brownian tree spans t0 <= t1; got {t0} and {t1}")
        self.shape, self.dtype, self.device = tuple(shape), dtype, torch.device(device)
        self.seed = int(seed)
        self.start, self.end = self._round(t0), self._round(t1)
        w_seed = np.random.SeedSequence(entropy=self.seed, pool_size=POOL_SIZE).generate_state(3)[0]
        # the whole motion's increment is scaled by the unrounded span, as BrownianInterval does
        self.top = self._randn(w_seed) * math.sqrt(float(t1) - float(t0))
        self.cache: OrderedDict = OrderedDict()

    @staticmethod
    def _round(t: float) -> float:
        return round(float(t), TOL_DIGITS)

    def _randn(self, seed) -> torch.Tensor:
        gen = torch.Generator(self.device).manual_seed(int(seed))
        return torch.randn(self.shape, dtype=self.dtype, device=self.device, generator=gen)

    def _split_seed(self, key: int, depth: int):
        """The seed of the bridge noise that splits the interval at (key, depth): its path from the root as bits."""
        ss = np.random.SeedSequence(entropy=self.seed, spawn_key=(key, depth), pool_size=POOL_SIZE)
        return ss.generate_state(4)[0]

    def _pieces(self, ta: float, tb: float):
        """The tree's intervals that make up [ta, tb], in order: (start, end, path) with path the left/right turns
        from the root; each interval is split at its own (rounded) middle."""
        out, todo = [], [(self.start, self.end, (), ta, tb)]
        while todo:
            s, e, path, a, b = todo.pop()
            if a == s and b == e:
                out.append((s, e, path))
                continue
            m = self._round(0.5 * (e + s))
            if b <= m:
                todo.append((s, m, path + (0,), a, b))
            elif a >= m:
                todo.append((m, e, path + (1,), a, b))
            else:           # right first on the stack: the left half comes out first
                todo += [(m, e, path + (1,), m, b), (s, m, path + (0,), a, m)]
        return out

    def _increment(self, path) -> torch.Tensor:
        """W over the interval at `path`: down from the root, each half drawn from its parent's increment."""
        w, s, e, key = self.top, self.start, self.end, 0
        for depth, right in enumerate(path):
            node = path[:depth + 1]
            m = self._round(0.5 * (e + s))
            if node in self.cache:
                self.cache.move_to_end(node)
                w = self.cache[node]
            else:
                h_reciprocal = 1 / (e - s)
                left_diff, right_diff = m - s, e - m
                mean = left_diff * w * h_reciprocal
                var = left_diff * right_diff * h_reciprocal
                left_w = mean + math.sqrt(var) * self._randn(self._split_seed(key, depth))
                w = w - left_w if right else left_w
                self.cache[node] = w
                if len(self.cache) > CACHE_SIZE:
                    self.cache.popitem(last=False)
            s, e = (m, e) if right else (s, m)
            key = 2 * key + right
        return w

    def __call__(self, ta: float, tb: float) -> torch.Tensor:
        """The increment W(tb) - W(ta), ta <= tb; times outside [t0, t1] are held at its ends, as torchsde does."""
        ta, tb = min(max(float(ta), self.start), self.end), min(max(float(tb), self.start), self.end)
        if ta > tb:
            raise ValueError(f"a Brownian increment runs forwards; got ta={ta} > tb={tb}")
        ta, tb = self._round(ta), self._round(tb)
        if ta == tb:
            return torch.zeros(self.shape, dtype=self.dtype, device=self.device)
        w = None
        for _, _, path in self._pieces(ta, tb):
            piece = self._increment(path)
            w = piece if w is None else w + piece
        return w


def brownian_noise_sampler(shape, sigmas: torch.Tensor, seed: int, device, on_cpu: bool = True,
                           dtype=torch.float32):
    """noise(sigma, sigma_next) of ComfyUI's BrownianTreeNoiseSampler for a run on `sigmas`: the motion over the run's
    nonzero levels (sigma_min to sigma_max as float32, ComfyUI's sigmas), each step's noise its increment from sigma
    to sigma_next over sqrt(|sigma_next - sigma|), a unit normal. on_cpu: the tree is drawn on the CPU and moved to
    `device` (dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde); off, on `device` itself (their _gpu variants)."""
    levels = sigmas.float().cpu()
    lo, hi = float(levels[levels > 0].min()), float(levels.max())
    device = torch.device(device)
    tree = BrownianTree(lo, hi, shape, seed, dtype, "cpu" if on_cpu else device)

    def noise(sigma, sigma_next) -> torch.Tensor:
        s, s2 = torch.as_tensor(sigma).float().cpu(), torch.as_tensor(sigma_next).float().cpu()
        # k-diffusion sorts the ends and flips the sign: the step runs from the noisier level down
        w = tree(float(s2), float(s)) if s2 < s else tree(float(s), float(s2))
        w = w.to(device=device, dtype=dtype) * (-1.0 if s2 < s else 1.0)
        return w / (s2 - s).abs().sqrt().to(device)
    return noise
