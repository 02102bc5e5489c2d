"""Transparency maths for 8-bit frames and their mattes (graph_engine.Clip.matte).

One convention everywhere: a frame is its colour laid over black in sRGB code values (straight colour
times alpha, what every reader has always shown of a transparent picture), and the alpha is uint8, 255
opaque. Files differ, so each writer converts: PNG, TIFF, ProRes 4444 and VP9 keep straight colour (the
frame taken off black); EXR keeps colour premultiplied in linear light (as Nuke and Blender do), made here
from the straight colour's light times alpha, and read back the same way, so an EXR and a PNG of one
element come in with the same frame and edges."""
from __future__ import annotations

import numpy as np

from .color import linear_to_srgb, luma_u8, srgb_to_linear, to_uint8


def _a(alpha: np.ndarray) -> np.ndarray:
    """Alpha with its channel axis ([..., 1]), given with or without it (HxW, HxWx1, nxHxWx1)."""
    alpha = np.asarray(alpha)
    return alpha if alpha.ndim >= 3 and alpha.shape[-1] == 1 else alpha[..., None]


def _table(kind: str) -> np.ndarray:
    """256x256 uint8 look-up (alpha, value) -> value: one gather per pixel where the arithmetic took several
    passes over the frame (unpremultiplying 1080p went from ~140 to ~20 ms a frame)."""
    got = _TABLES.get(kind)
    if got is None:
        a = np.arange(256, dtype=np.uint32)[:, None]
        v = np.arange(256, dtype=np.uint32)[None, :]
        if kind == "over":
            got = (v * a + 127) // 255
        else:
            got = np.where(a > 0, np.minimum((v * 255 + a // 2) // np.maximum(a, 1), 255), 0)
        got = _TABLES[kind] = np.ascontiguousarray(got.astype(np.uint8))
    return got


_TABLES: dict = {}


def _looked_up(kind: str, values: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    index = _a(alpha).astype(np.uint16) << 8
    return _table(kind).reshape(-1)[index | values]


def premultiplied(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 straight colour laid over black by uint8 alpha (rounded: 255 keeps it, 0 is black)."""
    return _looked_up("over", rgb, alpha)


def unpremultiplied(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The straight colour of a frame laid over black (premultiplied) by uint8 alpha; black where alpha is 0
    (nothing of the colour is left there). premultiplied(unpremultiplied(f, a), a) == f for f <= a."""
    return _looked_up("off", frame, alpha)


def from_linear_premultiplied(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 frame (colour over black in code values) of float linear-light colour premultiplied by float
    alpha in [0, 1] (an EXR's RGBA). Where alpha is 0 nothing shows; light above the alpha (a glow stored
    with little alpha) is clipped to what straight colour can hold."""
    rgb = np.nan_to_num(np.asarray(rgb, np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    a = np.clip(np.nan_to_num(np.asarray(alpha, np.float32)), 0.0, 1.0)[..., None]
    straight = np.where(a > 0, rgb / np.maximum(a, 1e-8), 0.0)
    return premultiplied(to_uint8(linear_to_srgb(np.clip(straight, 0.0, 1.0))), to_uint8(a))


def to_linear_premultiplied(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """float32 linear-light colour premultiplied by alpha (an EXR's RGB) of a uint8 frame and its uint8 alpha."""
    a = _a(alpha)
    straight = srgb_to_linear(unpremultiplied(frame, a).astype(np.float32) / 255.0)
    return straight * (a.astype(np.float32) / 255.0)


def over(fg: np.ndarray, fa: np.ndarray, bg: np.ndarray, ba=None, linear: bool = True) -> tuple:
    """(frame, alpha) of uint8 frame `fg` (over black) with uint8 alpha `fa` laid over `bg` (with alpha `ba`, or
    opaque): out = fg + (1 - a) bg, alpha a + (1 - a) b. In linear light, as Nuke merges (edges and motion blur
    blend as light does), or in code values, as After Effects without a linear working space and browsers do."""
    a = _a(fa).astype(np.float32) / 255.0
    b = np.ones_like(a) if ba is None else _a(ba).astype(np.float32) / 255.0
    alpha = a + (1.0 - a) * b
    out_a = to_uint8(alpha)
    if not linear:
        return to_uint8((fg.astype(np.float32) + (1.0 - a) * bg.astype(np.float32)) / 255.0), out_a
    back = srgb_to_linear(bg.astype(np.float32) / 255.0) if ba is None else to_linear_premultiplied(bg, ba)
    lin = to_linear_premultiplied(fg, fa) + (1.0 - a) * back
    if ba is None:      # opaque: the light as it is
        return to_uint8(linear_to_srgb(lin)), out_a
    return from_linear_premultiplied(lin, alpha[..., 0]), out_a


def over_float(front: np.ndarray, back: np.ndarray, alpha_out: bool) -> np.ndarray:
    """float32 [..., 3 or 4] of premultiplied linear-light RGBA `front` laid over `back` (both [..., 4]), as
    Nuke's Merge over: A + B (1 - a), alpha a + b (1 - a), nothing clamped (a highlight of 8 stays 8, light
    over a transparent pixel adds). alpha_out: with the alpha (the background had one), else RGB only."""
    out = back if alpha_out else back[..., :3]
    out *= 1.0 - front[..., 3:]
    out += front if alpha_out else front[..., :3]
    return out


def linear_rgba(frames: np.ndarray, alpha=None) -> np.ndarray:
    """float32 [..., 4] premultiplied linear light with alpha of uint8 frames (over black) and their uint8 alpha
    (None: opaque), for a float merge with an 8-bit input."""
    out = np.empty(frames.shape[:-1] + (4,), np.float32)
    light = _TABLES.get("linear")
    if light is None:       # the 256 levels' light, what srgb_to_linear gives each (a gather, not a power per pixel)
        light = _TABLES["linear"] = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)
    if alpha is None:
        out[..., :3], out[..., 3] = light[frames], 1.0
    else:
        a = _a(alpha)
        out[..., 3:] = a.astype(np.float32) / 255.0
        out[..., :3] = light[unpremultiplied(frames, a)] * out[..., 3:]
    return out


def luma_alpha(frames: np.ndarray) -> np.ndarray:
    """uint8 alpha [..., 1] of a matte picture: its Rec. 709 luma (white opaque), as a matte file is painted."""
    y = luma_u8(frames)
    return np.clip(y + 0.5, 0, 255).astype(np.uint8)[..., None]


def chroma_key(frames: np.ndarray, key, tolerance: float, softness: float, despill: bool = True) -> tuple:
    """(straight colour, uint8 alpha [..., 1]) of frames shot against a `key` colour (uint8 RGB): transparent
    where a pixel's chroma (Rec. 709 Cb, Cr) is within `tolerance` of the key's, opaque past tolerance +
    softness, a ramp between (0..1 of the chroma plane's range). despill: the key's dominant channel is held
    to the larger of the other two (green or blue light spilled on the subject turns neutral), as a keyer's
    despill does."""
    f = frames.astype(np.float32) / 255.0
    k = np.asarray(key, np.float32) / 255.0

    def chroma(rgb):
        y = rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)
        return np.stack([(rgb[..., 2] - y) / 1.8556, (rgb[..., 0] - y) / 1.5748], -1)

    dist = np.linalg.norm(chroma(f) - chroma(k), axis=-1)
    a = np.clip((dist - tolerance) / max(softness, 1e-6), 0.0, 1.0)
    if despill:
        main = int(np.argmax(k))
        others = [c for c in range(3) if c != main]
        f[..., main] = np.minimum(f[..., main], np.maximum(f[..., others[0]], f[..., others[1]]))
    return to_uint8(f), to_uint8(a)[..., None]


def straight_rgba(frames: np.ndarray, alpha: np.ndarray, bleed: bool = False) -> np.ndarray:
    """uint8 [..., 4] of frames (over black) and their uint8 alpha: the straight colour beside the alpha, as
    PNG, TIFF, ProRes 4444 and VP9 keep it. bleed: the colour of the edges spread into the transparent parts
    (nothing shows there), for codecs that share colour between neighbouring pixels (VP9's 4:2:0): against
    black, an edge's colour was pulled towards black, a dark fringe on every background (24 levels measured)."""
    a = _a(alpha)
    straight = unpremultiplied(frames, a)
    if bleed:
        straight = np.stack([_bled(f, m[..., 0]) for f, m in zip(straight.reshape((-1,) + straight.shape[-3:]),
                                                                   a.reshape((-1,) + a.shape[-3:]))]
                            ).reshape(straight.shape)
    return np.concatenate([straight, a], -1)


def _bled(rgb: np.ndarray, alpha: np.ndarray, radius: int = 4) -> np.ndarray:
    """rgb (straight) with its fully transparent pixels given the average colour of the visible ones within
    `radius` (a normalised box filter); those with none near stay as they were."""
    import cv2
    clear = alpha == 0
    if not clear.any() or clear.all():
        return rgb
    seen = (~clear).astype(np.float32)
    k = (2 * radius + 1, 2 * radius + 1)
    total = cv2.blur(rgb.astype(np.float32) * seen[..., None], k)
    weight = cv2.blur(seen, k)[..., None]
    fill = np.where(weight > 1e-6, total / np.maximum(weight, 1e-6), rgb)
    return np.where(clear[..., None], np.clip(fill + 0.5, 0, 255).astype(np.uint8), rgb)
