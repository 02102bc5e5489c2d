"""OBJECTS: several objects' masks through a clip, each kept apart (SAM 3's tracks, ComfyUI's SAM3_TRACK_DATA), for
a node that tells the objects apart (mask.scail_colors paints each its own colour). A MASK linked where OBJECTS is
asked for is one object. numpy only: listing nodes imports this module and must not import torch."""
from __future__ import annotations

import threading
from typing import Callable, Optional

import numpy as np

from graph_engine.types import MASK, add_conversion, add_hint, register_type

OBJECTS = register_type("OBJECTS", "#90c0b0", help="several objects' masks through a clip, each its own, in the "
                                                  "order they were first found (mask.segment_objects)")


class Objects:
    """The masks of N objects on each of `length` frames, bool [length, N, H, W], made once on first read (the
    tracker's pass over the whole clip: an object's place in the order is known only once it has been found).
    `fps` is None for a still picture's. `most`: how many objects there can be (the tracker's cap), for the memory
    cache, which sizes a value before anything has read it."""

    def __init__(self, length: int, fps: Optional[float], width: int, height: int,
                 reader: Callable[[], np.ndarray], most: int = 1):
        self.length, self.fps, self.width, self.height, self.most = length, fps, width, height, most
        self._reader, self._masks, self._lock = reader, None, threading.Lock()

    def masks(self) -> np.ndarray:
        with self._lock:
            if self._masks is None:
                # the reader (the tracker's pass) holds SAM 3: a cached value must not keep the model alive
                self._masks, self._reader = self._reader(), None
            return self._masks

    def nbytes_estimate(self) -> int:
        """Bytes the masks take, or would at most before the pass has run (81 frames of 720p, 4 objects: 299 MB)."""
        if self._masks is not None:
            return int(self._masks.nbytes)
        return self.length * self.width * self.height * self.most

    def summary(self) -> str:
        """In words, for the viewer: never runs the pass (the whole clip through SAM 3) to say so."""
        found = (f"{self._masks.shape[1]} objects" if self._masks is not None
                 else "objects tracked when a node reads them (mask.scail_colors)")
        return f"{found} · {self.length} frames · {self.width}×{self.height}"


def of_mask(mask) -> Objects:
    """One object: a MASK (a still one or a clip), on where it is above one half."""
    from nodes.common import masks
    if masks.is_clip(mask):
        return Objects(mask.length, mask.fps, mask.width, mask.height,
                       lambda: (masks.frames_of(mask, 0, mask.length) > 0.5)[:, None])
    m = masks.still(mask)
    return Objects(1, None, m.shape[1], m.shape[0], lambda: (m > 0.5)[None, None])


add_conversion(OBJECTS, MASK, of_mask)
add_hint(MASK, OBJECTS, "mask.segment gives one mask of all the objects a prompt names")
