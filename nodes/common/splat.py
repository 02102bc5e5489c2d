"""SPLAT: a 3-D Gaussian splat, as ComfyUI's SPLAT holds one item (render-ready, world space, Y up).

numpy throughout, N Gaussians: positions float32 N x 3; scales float32 N x 3 (the axes' standard deviations, not
their logs); rotations float32 N x 4, unit quaternions w, x, y, z; opacities float32 N in 0..1 (not logits);
sh float32 N x K x 3, the colour's spherical-harmonic coefficients (K = 1: the base colour alone, rgb = 0.5 +
C0 sh[:, 0])."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graph_engine import NodeError

C0 = 0.28209479177387814        # the band-0 harmonic: a base colour's coefficient

_FIELDS = (("positions", (3,)), ("scales", (3,)), ("rotations", (4,)), ("opacities", ()), ("sh", None))


@dataclass(frozen=True, eq=False)
class Splat:
    positions: np.ndarray
    scales: np.ndarray
    rotations: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray

    def __post_init__(self):
        n = len(np.asarray(self.positions))
        for name, tail in _FIELDS:
            a = np.ascontiguousarray(getattr(self, name), np.float32)
            if name == "opacities":
                a = a.reshape(-1)
            want = (n, *tail) if tail is not None else (n, a.shape[1] if a.ndim == 3 else 0, 3)
            if a.shape != want or (name == "sh" and want[1] < 1):
                raise NodeError(f"the splat's {name} must be of shape {list(want) if tail is not None else [n, 'K', 3]}"
                                f" (one row a Gaussian), got {list(a.shape)}")
            bad = int(a.size - np.isfinite(a).sum())
            if bad:
                raise NodeError(f"the splat's {name} hold {bad:,} values that are not numbers (NaN or infinity): its "
                                "decoder overflowed in half precision; load the VAE with dtype fp32")
            if name == "scales" and (a < 0).any():
                raise NodeError(f"the splat's scales hold {int((a < 0).sum()):,} negative values: a Gaussian's scales "
                                "are its axes' standard deviations, 0 or more (a .ply holds their logs)")
            object.__setattr__(self, name, a)

    def __len__(self) -> int:
        return len(self.positions)

    def nbytes_estimate(self) -> int:
        """its arrays' bytes, as the memory cache's budget and the disk cache's cap count them"""
        return sum(getattr(self, name).nbytes for name, _ in _FIELDS)

    def colors(self) -> np.ndarray:
        """float32 N x 3: each Gaussian's base colour (its band-0 harmonic), clipped to 0..1."""
        return np.clip(0.5 + C0 * self.sh[:, 0], 0.0, 1.0)

    def summary(self) -> str:
        text = f"splat: {len(self):,} Gaussians"
        if len(self):
            lo, hi = self.positions.min(0), self.positions.max(0)
            text += ", bounds " + " x ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(lo, hi))
        return text + f", {self.sh.shape[1]} colour coefficient{'s' if self.sh.shape[1] > 1 else ''} each"

    __repr__ = summary

    def to_state(self):
        import torch
        return {name: torch.from_numpy(getattr(self, name)) for name, _ in _FIELDS}, {}

    @classmethod
    def from_state(cls, tensors, meta):
        return cls(**{name: tensors[name].numpy() for name, _ in _FIELDS})
