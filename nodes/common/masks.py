"""Masks: the region a node acts on (inpainting, a composite, noise blending).

A MASK is one float32 H x W picture in [0, 1] (1 = the region), or, for a region that changes from frame to
frame (a person walking through the shot), a clip of them: a one-channel Clip of uint8 (255 = 1), read lazily
as any clip is. Every operation here keeps that shape: a still stays a still, a clip stays a clip of the same
length. Where a mask meets a clip, a still covers every frame and a shorter clip holds its last frame (a mask
painted on frame 0 of a locked-off shot)."""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np

from nodes.common.color import luma_u8

CHANNELS = ("red", "green", "blue", "alpha", "luma")


def is_clip(mask) -> bool:
    return hasattr(mask, "frames") and hasattr(mask, "length")


def to_u8(m: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(m, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def still(mask) -> np.ndarray:
    """float32 H x W of a still mask (an IMAGE-shaped array is taken by its luma, white = 1)."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., :3].astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32) / 255.0 \
            if m.shape[-1] >= 3 else m[..., 0].astype(np.float32) / (255.0 if m.dtype == np.uint8 else 1.0)
    elif m.dtype == np.uint8:
        m = m.astype(np.float32) / 255.0
    return np.clip(m.astype(np.float32), 0.0, 1.0)


def size_of(mask) -> Tuple[int, int]:
    """(width, height)."""
    if is_clip(mask):
        return mask.width, mask.height
    m = np.asarray(mask)
    return int(m.shape[1]), int(m.shape[0])


def frames_of(mask, start: int, stop: int, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """float32 [stop - start, H, W] of the mask at frames start..stop of a clip; resized (bilinear) to `size`
    (width, height) when given and different."""
    n = stop - start
    if is_clip(mask):
        idx = np.minimum(np.arange(start, stop), mask.length - 1)
        lo = int(idx[0])
        block = mask.frames(lo, int(idx[-1]) + 1)[idx - lo]
        m = (block.mean(-1) if block.shape[-1] > 1 else block[..., 0]).astype(np.float32) / 255.0
    else:
        m = np.repeat(still(mask)[None], n, axis=0)
    if size is not None and (m.shape[2], m.shape[1]) != tuple(size):
        import cv2
        m = np.stack([cv2.resize(f, tuple(size), interpolation=cv2.INTER_LINEAR) for f in m])
    return np.ascontiguousarray(m, dtype=np.float32)


def per_frame(mask, fn: Callable[[np.ndarray], np.ndarray]):
    """`fn` (float32 H x W -> float32 H x W in [0, 1]) applied to a still, or to each frame of a clip of masks
    as it is read."""
    if not is_clip(mask):
        return np.clip(fn(still(mask)), 0.0, 1.0).astype(np.float32)

    def reader(a: int, b: int) -> np.ndarray:
        return to_u8(np.stack([fn(f) for f in frames_of(mask, a, b)]))[..., None]
    return mask.with_(reader=reader, matte=None, linear=None, local=True)


def clip_of(frames_reader: Callable[[int, int], np.ndarray], like, chunk: Optional[int] = None,
            local: bool = False) -> "object":
    """A clip of masks shaped like the clip `like`, from a reader of float32 [n, H, W] frames, read in like's
    chunks or `chunk` frames at a time (`local`: a reader of each frame alone, graph_engine.clip)."""
    from graph_engine import Clip
    return Clip(like.length, like.fps, like.width, like.height,
                lambda a, b: to_u8(frames_reader(a, b))[..., None], chunk=chunk or like.chunk, channels=1,
                local=local)


def grow(m: np.ndarray, pixels: int, tapered: bool = True) -> np.ndarray:
    """The mask grown outwards by `pixels` (shrunk for negative), one pixel a pass with a 3x3 cross (tapered:
    rounded corners) or square, a grey-level dilation (erosion), as ComfyUI's GrowMask."""
    if pixels == 0:
        return m
    import cv2
    kernel = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]] if tapered else np.ones((3, 3)), np.uint8)
    op = cv2.dilate if pixels > 0 else cv2.erode
    return op(m, kernel, iterations=abs(int(pixels)), borderType=cv2.BORDER_REPLICATE)


def dilate_square(m: np.ndarray, size: int) -> np.ndarray:
    """The 0/1 mask (rounded) spread over a size x size square, as ComfyUI's VAEEncodeForInpaint grows it
    (grow_mask_by: a convolution with ones, window offset by ceil((size - 1) / 2), cv2's own anchor)."""
    r = np.round(m).astype(np.float32)
    if size <= 1:
        return r
    import cv2
    return cv2.dilate(r, np.ones((size, size), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)


def feather(m: np.ndarray, radius: float = 0.0, edges: Tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """A soft edge: the mask blurred by a Gaussian of `radius` pixels (sigma radius / 2, so the edge ramps over
    about `radius` each side), then faded to 0 over (left, top, right, bottom) pixels at the picture's borders,
    linearly as ComfyUI's FeatherMask fades them."""
    out = m
    if radius > 0:
        import cv2
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=radius / 2.0, borderType=cv2.BORDER_REPLICATE)
    left, top, right, bottom = (int(e) for e in edges)
    if any((left, top, right, bottom)):
        h, w = out.shape
        ramp = np.ones((h, w), np.float32)
        x, y = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
        for n, coord, axis, rev in ((left, x, 1, False), (right, x, 1, True), (top, y, 0, False),
                                    (bottom, y, 0, True)):
            if n > 0:
                d = (coord[::-1] if rev else coord)
                r = np.minimum((d + 1) / n, 1.0)
                ramp *= r[None, :] if axis == 1 else r[:, None]
        out = out * ramp
    return out.astype(np.float32)


def channel(frames: np.ndarray, which: str, alpha: Optional[np.ndarray] = None) -> np.ndarray:
    """float32 [n, H, W] of one channel of uint8 frames [n, H, W, 3]: red, green, blue, luma (Rec. 709), or the
    alpha (uint8 [n, H, W, 1], 255 opaque; all 1 without one)."""
    if which == "alpha":
        if alpha is None:
            return np.ones(frames.shape[:3], np.float32)
        return alpha[..., 0].astype(np.float32) / 255.0
    if which == "luma":
        return luma_u8(frames) / 255.0
    return frames[..., ("red", "green", "blue").index(which)].astype(np.float32) / 255.0


def paste(bg: np.ndarray, fg: np.ndarray, m: Optional[np.ndarray], x: int = 0, y: int = 0,
          resize: bool = False) -> np.ndarray:
    """uint8 frames [n, H, W, 3] of `bg` with `fg` laid at (x, y) where the mask (float [n, h, w] at fg's size, None
    = all) is 1, mixed between in code values, clipped to bg's picture, as ComfyUI's ImageCompositeMasked."""
    import cv2
    n, hb, wb = bg.shape[:3]
    if resize and fg.shape[1:3] != (hb, wb):
        fg = np.stack([cv2.resize(f, (wb, hb), interpolation=cv2.INTER_LINEAR) for f in fg])
        m = None if m is None else np.stack([cv2.resize(f, (wb, hb), interpolation=cv2.INTER_LINEAR) for f in m])
    hf, wf = fg.shape[1:3]
    out = bg.copy()
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + wf, wb), min(y + hf, hb)
    if x1 <= x0 or y1 <= y0:
        return out
    part = fg[:, y0 - y:y1 - y, x0 - x:x1 - x].astype(np.float32)
    under = bg[:, y0:y1, x0:x1].astype(np.float32)
    w = 1.0 if m is None else m[:, y0 - y:y1 - y, x0 - x:x1 - x, None]
    out[:, y0:y1, x0:x1] = np.clip(part * w + under * (1.0 - w) + 0.5, 0, 255).astype(np.uint8)
    return out


def outpaint_mask(width: int, height: int, pad: Tuple[int, int, int, int], feathering: int) -> np.ndarray:
    """float32 mask of a picture of width x height grown by pad (left, top, right, bottom): 1 in the new border,
    inside the picture ((f - d) / f)^2 at distance d < f from a side that grew (f = feathering), else 0, as
    ComfyUI's ImagePadForOutpaint feathers it (not at all when the feathering is half the picture or more)."""
    left, top, right, bottom = pad
    m = np.ones((height + top + bottom, width + left + right), np.float32)
    inner = np.zeros((height, width), np.float32)
    if feathering > 0 and feathering * 2 < height and feathering * 2 < width:
        i, j = np.arange(height, dtype=np.float32)[:, None], np.arange(width, dtype=np.float32)[None, :]
        far = np.float32(max(height, width))
        d = np.minimum.reduce([np.broadcast_to(v, (height, width)) for v in (
            i if top else far, (height - i) if bottom else far, j if left else far, (width - j) if right else far)])
        inner = np.where(d < feathering, ((feathering - d) / feathering) ** 2, 0.0).astype(np.float32)
    m[top:top + height, left:left + width] = inner
    return m


OPERATIONS = ("multiply", "add", "subtract", "and", "or", "xor")


def combined(dst: np.ndarray, src: np.ndarray, x: int, y: int, operation: str) -> np.ndarray:
    """float32 [n, H, W]: `src` [n, h, w] combined into `dst` at (x, y) by `operation`, clipped to dst's picture and
    to [0, 1], as ComfyUI's MaskComposite (and, or, xor on the masks rounded to 0/1)."""
    out = dst.copy()
    h, w = dst.shape[1:]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + src.shape[2], w), min(y + src.shape[1], h)
    if x1 <= x0 or y1 <= y0:
        return out
    a, b = out[:, y0:y1, x0:x1], src[:, y0 - y:y1 - y, x0 - x:x1 - x]
    ops = {"multiply": lambda: a * b, "add": lambda: a + b, "subtract": lambda: a - b,
           "and": lambda: (np.round(a) > 0) & (np.round(b) > 0), "or": lambda: (np.round(a) > 0) | (np.round(b) > 0),
           "xor": lambda: (np.round(a) > 0) ^ (np.round(b) > 0)}
    out[:, y0:y1, x0:x1] = ops[operation]()
    return np.clip(out, 0.0, 1.0)


def joined(a, b, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    """fn(frames of a, frames of b) -> frames, over two masks: a still when both are, else a clip of masks of the
    longer one's length at a's size (a still or a shorter clip holds its last frame)."""
    if not is_clip(a) and not is_clip(b):
        return fn(still(a)[None], still(b)[None])[0]
    from graph_engine import Clip
    clip = a if is_clip(a) and (not is_clip(b) or a.length >= b.length) else b
    w, h = size_of(a)
    return Clip(clip.length, clip.fps, w, h, lambda s, e: to_u8(fn(frames_of(a, s, e), frames_of(b, s, e)))[..., None],
                chunk=clip.chunk, channels=1, local=True)


def cropped(mask, x: int, y: int, width: int, height: int):
    """The mask's rectangle at (x, y), cut to the mask's picture as ComfyUI's CropMask slices it; a still stays a
    still, a clip a clip of the rectangle's size. A rectangle wholly outside is refused by name."""
    from graph_engine import NodeError
    w, h = size_of(mask)
    x1, y1 = min(x + width, w), min(y + height, h)
    if x >= w or y >= h or x1 <= x or y1 <= y:
        raise NodeError(f"the crop at ({x}, {y}) lies outside the {w}x{h} mask: move it inside")
    if not is_clip(mask):
        return still(mask)[y:y1, x:x1].copy()
    return mask.with_(width=x1 - x, height=y1 - y, matte=None, linear=None, local=True,
                      reader=lambda a, b: to_u8(frames_of(mask, a, b)[:, y:y1, x:x1])[..., None])


def blockify(m: np.ndarray, block: int) -> np.ndarray:
    """The mask as blocks: its bounding box (where it is above 0) cut into a grid of cells about `block` pixels a
    side (as many whole ones as fit, the last row and column taking the remainder), every cell that holds any of it
    1, the rest 0 (KJNodes' BlockifyMask): a coarse region for a model that redraws a character in blocks."""
    out = np.zeros(m.shape, np.float32)
    on = m > 0
    rows, cols = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
    if not len(rows):
        return out
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    cells = []
    for lo, hi in ((y0, y1), (x0, x1)):
        n = max(1, (hi - lo) // block)
        cells.append(np.minimum((np.arange(lo, hi) - lo) // ((hi - lo) // n), n - 1))
    ry, rx = cells
    filled = np.zeros((ry[-1] + 1, rx[-1] + 1), bool)
    np.logical_or.at(filled, (ry[:, None], rx[None, :]), on[y0:y1, x0:x1])
    out[y0:y1, x0:x1] = filled[ry[:, None], rx[None, :]]
    return out


def filled(frames: np.ndarray, m: np.ndarray, colour) -> np.ndarray:
    """uint8 frames [n, H, W, 3] blended towards `colour` (r, g, b 0-255) by the mask (float [n, H, W])."""
    m = m[..., None]
    out = frames.astype(np.float32) * (1.0 - m) + np.asarray(colour, np.float32) * m
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
