"""ComfyUI's Painter: a drawing made over a picture (or a plain background) in ComfyUI's page, saved as a PNG whose
alpha is where the brush went. Its picture is the drawing laid over the base by that alpha, its mask the alpha,
both at the base's size (the drawing resized to it with Pillow's Lanczos, as ComfyUI resizes it); with no drawing,
the base and a mask of 0 everywhere."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from graph_engine import NodeError


def painted(image: Optional[np.ndarray], drawing: str, width: int, height: int, bg_color: str):
    """(uint8 picture HxWx3, float32 mask HxW): the drawing at `drawing` (a PNG path; empty: none) over `image`, or
    over a width x height plain `bg_color` picture when there is no image."""
    from PIL import Image

    from nodes.common.color import hex_rgb
    base = np.asarray(image, np.float32)[..., :3] / 255.0 if image is not None else \
        np.broadcast_to(np.float32(hex_rgb(bg_color, "bg_color")) / 255.0, (height, width, 3))
    h, w = base.shape[:2]
    if not drawing.strip():
        return np.round(base * 255.0).astype(np.uint8), np.zeros((h, w), np.float32)
    if not os.path.isfile(drawing):
        raise NodeError(f"the drawing {drawing} is not there: give the PNG drawn over the picture (its alpha is the "
                        "mask), or empty for none")
    try:
        with Image.open(drawing) as im:
            im = im.convert("RGBA")
            if im.size != (w, h):
                im = im.resize((w, h), Image.LANCZOS)
            rgba = np.asarray(im, np.float32) / 255.0
    except Image.DecompressionBombError as e:         # a small PNG claiming gigabytes of pixels
        from nodes.io.images import too_big
        raise NodeError(too_big(drawing, str(e))) from None
    except (OSError, SyntaxError, ValueError) as e:     # Pillow's UnidentifiedImageError is an OSError
        raise NodeError(f"cannot read the drawing {drawing} as a picture ({e}): give the PNG drawn over the picture "
                        "(its alpha is the mask), or empty for none") from None
    alpha = rgba[..., 3:]
    out = rgba[..., :3] * alpha + base * (1.0 - alpha)
    return np.round(out * 255.0).astype(np.uint8), np.ascontiguousarray(rgba[..., 3])
