"""3-D values: MESH (a triangle mesh) and VOXEL (a dense grid over a box), as ComfyUI's MESH and VOXEL hold them,
one item each (ComfyUI batches them; a batch of one is what its 3-D templates make).

A mesh is numpy throughout: vertices float32 N x 3, faces int32 M x 3 (indices into the vertices, counter-clockwise
seen from outside, as glTF reads them), and what a vertex may carry besides: a colour (uint8 N x 3 or N x 4), a
normal (float32 N x 3), a texture coordinate (float32 N x 2, glTF's: v grows downwards) with the texture it reads
(uint8 H x W x 3, an IMAGE). A voxel grid is float32 D x H x W (occupancy or a signed distance, what the decoder
gave) with the box it covers, axis order z, y, x as the grid's."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from graph_engine import NodeError

_MESH_EXTRAS = ("colors", "normals", "uvs", "texture")


@dataclass(frozen=True, eq=False)
class Mesh:
    vertices: np.ndarray
    faces: np.ndarray
    colors: Optional[np.ndarray] = None
    normals: Optional[np.ndarray] = None
    uvs: Optional[np.ndarray] = None
    texture: Optional[np.ndarray] = None

    def __post_init__(self):
        # Normalise dtypes once here so every reader (writers, previews, the cache) can rely on them.
        v = np.ascontiguousarray(self.vertices, np.float32).reshape(-1, 3)
        f = np.ascontiguousarray(self.faces).reshape(-1, 3)
        bad = int((~np.isfinite(v)).any(1).sum())
        if bad:     # glTF's POSITION min/max would read NaN, which JSON has not: readers reject the file
            raise NodeError(f"{bad:,} of the mesh's {len(v):,} vertices are not numbers (NaN or infinity): the "
                            "values it was made from hold some, and a mesh file cannot carry them")
        if f.size and (f.min() < 0 or f.max() >= len(v)):
            raise NodeError(f"the mesh's faces index vertices {int(f.min())} to {int(f.max())} but it has "
                            f"{len(v):,} vertices: a face may only name vertices 0 to {len(v) - 1}")
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "faces", f.astype(np.int32))
        n = len(v)
        for name, dtype, widths in (("colors", np.uint8, (3, 4)), ("normals", np.float32, (3,)),
                                    ("uvs", np.float32, (2,))):
            a = getattr(self, name)
            if a is None:
                continue
            a = np.asarray(a)
            if a.ndim != 2 or a.shape[0] != n or a.shape[1] not in widths:
                raise NodeError(f"the mesh's {name} must be {n:,} rows (one a vertex) of "
                                f"{' or '.join(map(str, widths))} values, got shape {tuple(a.shape)}")
            object.__setattr__(self, name, np.ascontiguousarray(a, dtype))
        if self.texture is not None:
            t = np.asarray(self.texture)
            if t.dtype != np.uint8 or t.ndim != 3 or t.shape[2] != 3:
                raise NodeError(f"the mesh's texture must be an RGB picture (uint8 H x W x 3), got "
                                f"{t.dtype} {tuple(t.shape)}")
            if self.uvs is None:
                raise NodeError("the mesh has a texture but no texture coordinates (uvs) to read it with")

    def summary(self) -> str:
        """What the mesh holds, in a line (the editor's preview of a MESH)."""
        extras = [name for name in _MESH_EXTRAS if getattr(self, name) is not None]
        text = f"mesh: {len(self.vertices):,} vertices, {len(self.faces):,} triangles"
        if len(self.vertices):
            lo, hi = self.vertices.min(0), self.vertices.max(0)
            text += ", bounds " + " x ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(lo, hi))
        return text + (f"; with {', '.join(extras)}" if extras else "")

    __repr__ = summary      # what the editor's viewer shows of a value it cannot draw

    def nbytes_estimate(self) -> int:
        """its arrays' bytes, as the memory cache's budget and the disk cache's cap count them"""
        return sum(getattr(self, name).nbytes for name in ("vertices", "faces", *_MESH_EXTRAS)
                   if getattr(self, name) is not None)

    def to_state(self):
        import torch
        tensors = {"vertices": torch.from_numpy(self.vertices), "faces": torch.from_numpy(self.faces)}
        for name in _MESH_EXTRAS:
            a = getattr(self, name)
            if a is not None:
                tensors[name] = torch.from_numpy(a)
        return tensors, {}

    @classmethod
    def from_state(cls, tensors, meta):
        return cls(**{k: t.numpy() for k, t in tensors.items()})


@dataclass(frozen=True, eq=False)
class Voxel:
    grid: np.ndarray
    # The box the grid covers, (z, y, x) like the grid's axes: the first sample sits at low, the last at high.
    low: Tuple[float, float, float] = (-1.0, -1.0, -1.0)
    high: Tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self):
        g = np.asarray(self.grid)
        if g.ndim != 3 or min(g.shape) < 1:
            raise NodeError(f"a voxel grid must be 3-D (depth x height x width), got shape {tuple(g.shape)}")
        bad = int(g.size - np.isfinite(g).sum())
        if bad:
            raise NodeError(f"the voxel grid holds {bad:,} values that are not numbers (NaN or infinity): its decoder "
                            "overflowed in half precision; load the model with dtype fp32")
        object.__setattr__(self, "grid", np.ascontiguousarray(g, np.float32))
        low = tuple(float(x) for x in self.low)
        high = tuple(float(x) for x in self.high)
        if len(low) != 3 or len(high) != 3 or any(h <= lo for lo, h in zip(low, high)):
            raise NodeError(f"a voxel grid's box must run from 3 low to 3 higher corners, got {low} to {high}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def summary(self) -> str:
        d, h, w = self.grid.shape
        return (f"voxels: {d} x {h} x {w}, values {self.grid.min():.3g} to {self.grid.max():.3g}, box "
                + " x ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(self.low, self.high)))

    __repr__ = summary

    def nbytes_estimate(self) -> int:
        """its grid's bytes, as the memory cache's budget and the disk cache's cap count them"""
        return self.grid.nbytes

    def to_state(self):
        import torch
        return {"grid": torch.from_numpy(self.grid)}, {"low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_state(cls, tensors, meta):
        return cls(tensors["grid"].numpy(), tuple(meta["low"]), tuple(meta["high"]))
