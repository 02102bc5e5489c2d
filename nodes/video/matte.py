"""Clips with transparency: laying one over a background, and giving a clip its alpha (graph_engine.Clip.matte).
The per-pixel maths is nodes/common/alpha.py."""
from __future__ import annotations

import numpy as np

from graph_engine import Clip, NodeError
from graph_engine.clip import split_reader
from nodes.common import alpha as px
from nodes.common.stream import held_frames as _held

MATTE_MODES = ("alpha", "luma", "chroma", "none")
BLENDS = ("linear", "encoded")


def _same_size(clip: Clip, other: Clip, what: str) -> None:
    if clip.size != other.size:
        raise NodeError(f"the {what} is {other.width}x{other.height} but the clip {clip.width}x{clip.height}: "
                        f"bring it to the clip's size first (video.resize {clip.width}x{clip.height}, fit pad or "
                        f"crop to keep its shape)")


def over(fg: Clip, bg: Clip, blend: str = "linear") -> Clip:
    """`fg` laid over `bg` (a clip or a still), for fg's frames; a background shorter than fg holds its last
    frame. The result has the background's sound, timecode and frame numbers (as Nuke's Merge passes its B
    input's), and an alpha only where the background has one."""
    _same_size(fg, bg, "background")
    linear = blend == "linear"

    def reader(a: int, b: int) -> np.ndarray:
        back = _held(bg, a, b)
        back_a = None if bg.matte is None else _held(bg, a, b, matte=True)
        frames, alpha = px.over(fg.frames(a, b), fg.opaque_matte().frames(a, b), back, back_a, linear)
        return np.concatenate([frames, alpha], -1)

    colour, alpha = split_reader(reader)
    meta = bg if bg.length == fg.length else fg
    out = Clip(fg.length, fg.fps, fg.width, fg.height, colour, meta.audio, chunk=fg.chunk,
               timecode=meta.timecode, number=meta.number, local=True)
    out = out.with_matte(alpha if bg.matte is not None else None, local=True)
    if not linear or (fg.linear is None and bg.linear is None):
        return out

    # Either side deeper than 8 bits (an EXR element or plate): merged on the float pixels too, so a CG
    # element's highlights above 1.0 reach an EXR render (through 8 bits they came out clipped at 1.0). An
    # 8-bit side joins as its light.
    def floats(a: int, b: int) -> np.ndarray:
        return px.over_float(_rgba(fg, a, b), _rgba(bg, a, b), bg.matte is not None)

    return out.with_(linear=floats)


def _rgba(clip: Clip, a: int, b: int) -> np.ndarray:
    """float32 [n,H,W,4] premultiplied linear RGBA of frames a..b of `clip` (its last held past its end): its
    float pixels (Clip.linear) if it has them, else its 8-bit frames' light."""
    if clip.linear is None:
        return px.linear_rgba(_held(clip, a, b), None if clip.matte is None else _held(clip, a, b, matte=True))
    idx = np.minimum(np.arange(a, b), clip.length - 1)
    lo = int(idx[0])
    got = np.asarray(clip.linear(lo, int(idx[-1]) + 1), np.float32)[idx - lo]
    if got.shape[-1] == 4:
        return got
    alpha = (np.ones(got.shape[:-1] + (1,), np.float32) if clip.matte is None
             else _held(clip, a, b, matte=True).astype(np.float32) / 255.0)
    return np.concatenate([got, alpha], -1)


def with_alpha(clip: Clip, mode: str, source: Clip = None, key=(0, 177, 64), tolerance: float = 0.12,
               softness: float = 0.1, despill: bool = True, invert: bool = False) -> Clip:
    """The clip with a new alpha (MATTE_MODES): `source`'s alpha, `source`'s luma (a matte file: white
    opaque; the clip's own without a source), a chroma key of the clip against `key`, or none (the frames as
    they are shown, over black, opaque). The colour is laid over black by the new alpha, from the clip's
    straight colour (taken off black by its old alpha, if it had one)."""
    if mode not in MATTE_MODES:
        raise NodeError(f"mode={mode!r}: choose one of {', '.join(MATTE_MODES)}")
    if mode == "none":
        return clip.with_(matte=None)
    if source is not None:
        _same_size(clip, source, "source")
    if mode == "alpha" and (source is None or source.matte is None):
        raise NodeError("mode alpha takes the alpha of `source`, and " + (
            "no source is connected" if source is None else "the source has none (it is opaque)") +
            ": connect a clip read from a file with transparency (RGBA PNG/TIFF/EXR, ProRes 4444, VP9 with alpha), "
            "or use mode luma for a black-and-white matte file")
    if mode == "chroma" and source is not None:
        raise NodeError("mode chroma keys the clip itself: leave `source` unconnected")

    def reader(a: int, b: int) -> np.ndarray:
        frames = clip.frames(a, b)
        straight = frames if clip.matte is None else px.unpremultiplied(frames, clip.matte.frames(a, b))
        if mode == "chroma":
            straight, alpha = px.chroma_key(straight, key, tolerance, softness, despill)
        elif mode == "luma":
            alpha = px.luma_alpha(frames if source is None else _held(source, a, b))
        else:
            alpha = _held(source, a, b, matte=True)
        if invert:
            alpha = 255 - alpha
        return np.concatenate([px.premultiplied(straight, alpha), alpha], -1)

    colour, alpha = split_reader(reader)
    return clip.with_(reader=colour, local=True, matte=Clip(clip.length, clip.fps, clip.width, clip.height, alpha,
                                                            chunk=clip.chunk, channels=1, local=True))


def key_colour(text: str) -> tuple:
    """'0 177 64' or '#00b140' as an RGB triple of 0..255."""
    t = str(text).strip()
    try:
        if t.startswith("#") and len(t) == 7:
            return tuple(int(t[i:i + 2], 16) for i in (1, 3, 5))
        vals = tuple(int(round(float(v))) for v in t.replace(",", " ").split())
    except ValueError:
        vals = ()
    if len(vals) != 3 or not all(0 <= v <= 255 for v in vals):
        raise NodeError(f"key={text!r}: give the screen's colour as three numbers 0-255 (0 177 64 for green, "
                        f"0 71 187 for blue) or as #00b140")
    return vals
