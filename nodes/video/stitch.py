"""Two clips side by side or one above the other (ComfyUI's ImageStitch): a before/after view, or the pictures
an edit model (FLUX.1 Kontext) reads as one reference."""
from __future__ import annotations

import numpy as np

from graph_engine import Clip, NodeError
from nodes.common.stream import held_frames

from .edit import resize

DIRECTIONS = ("right", "down", "left", "up")          # where the second clip goes
COLOURS = {"white": (255, 255, 255), "black": (0, 0, 0), "red": (255, 0, 0), "green": (0, 255, 0),
           "blue": (0, 0, 255)}


def stitch(first: Clip, second: Clip, direction: str = "right", match_size: bool = True, spacing: int = 0,
           colour: str = "white") -> Clip:
    """`second` beside `first` (right, left) or below / above it (down, up), `spacing` pixels of `colour` between
    (rounded up to even, as ComfyUI does). match_size stretches `second` to `first`'s height (beside) or width
    (above / below), keeping its shape; without it the smaller one is centred and the rest filled with white or
    black (black for the other colours, as ComfyUI pads). The shorter clip holds its last frame; the result runs
    at `first`'s rate with its sound. Where either has an alpha the result has one, opaque outside the pictures'."""
    if direction not in DIRECTIONS:
        raise NodeError(f"direction={direction!r}: choose one of {', '.join(DIRECTIONS)}")
    if colour not in COLOURS:
        raise NodeError(f"colour={colour!r}: choose one of {', '.join(COLOURS)}")
    across = direction in ("left", "right")
    if match_size:
        aspect = second.width / second.height
        size = (int(first.height * aspect), first.height) if across else (first.width, int(first.width / aspect))
        if size != second.size:
            second = resize(second, max(1, size[0]), max(1, size[1]), "lanczos")
    gap = spacing + spacing % 2
    a, b = (second, first) if direction in ("left", "up") else (first, second)
    if across:
        width, height = a.width + gap + b.width, max(a.height, b.height)
        places = ((a, 0, (height - a.height) // 2), (b, a.width + gap, (height - b.height) // 2))
        between = (slice(None), slice(a.width, a.width + gap))
    else:
        width, height = max(a.width, b.width), a.height + gap + b.height
        places = ((a, (width - a.width) // 2, 0), (b, (width - b.width) // 2, a.height + gap))
        between = (slice(a.height, a.height + gap), slice(None))
    pad = COLOURS[colour] if colour in ("white", "black") else COLOURS["black"]
    length = max(first.length, second.length)

    def laid(clips, fill, spacer, channels):
        def reader(s: int, e: int) -> np.ndarray:
            out = np.empty((e - s, height, width, channels), np.uint8)
            out[:] = fill
            out[(slice(None),) + between] = spacer
            for clip, (_, x, y) in zip(clips, places):
                out[:, y:y + clip.height, x:x + clip.width] = held_frames(clip, s, e)
            return out
        return reader

    matte = None
    if a.matte is not None or b.matte is not None:
        mattes = (a.opaque_matte(), b.opaque_matte())
        matte = Clip(length, first.fps, width, height, laid(mattes, 255, 255, 1), channels=1, local=True)
    return first.with_(length=length, width=width, height=height, reader=laid((a, b), pad, COLOURS[colour], 3),
                       matte=matte, linear=None, local=True)
