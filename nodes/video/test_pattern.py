"""A moving synthetic pattern: something to look at and test with, with no input files."""
import numpy as np

from graph_engine import Clip, Param, node
from graph_engine.types import VIDEO


def pattern_frames(start: int, stop: int, width: int, height: int, frames: int) -> np.ndarray:
    """Colour bands drifting sideways, a checker that scrolls, and a disc on a circular path."""
    out = np.empty((stop - start, height, width, 3), np.uint8)
    for i in range(start, stop):
        # A frame at a time: a chunk's float temporaries at once came to 340 MB at 1080p, more than the
        # temporal node the pattern fed.
        out[i - start] = _pattern(i, i + 1, width, height, frames)[0]
    return out


def _pattern(start: int, stop: int, width: int, height: int, frames: int) -> np.ndarray:
    t = np.arange(start, stop, dtype=np.float32)[:, None, None] / max(1, frames)
    y = np.linspace(0, 1, height, dtype=np.float32)[None, :, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, None, :]
    phase = 2 * np.pi * (x + t)
    r = 0.5 + 0.5 * np.sin(phase)
    g = 0.5 + 0.5 * np.sin(phase + 2.1 + 3 * y)
    b = 0.5 + 0.5 * np.sin(2 * np.pi * y * 2 - 4 * np.pi * t)
    img = np.stack(np.broadcast_arrays(r, g, b), axis=-1)
    cell = max(4, width // 16)
    xi = np.arange(width)[None, None, :] + (np.arange(start, stop)[:, None, None] * 2)
    yi = np.arange(height)[None, :, None]
    checker = (((xi // cell) + (yi // cell)) % 2).astype(np.float32)
    img = img * (0.75 + 0.25 * checker[..., None])
    ang = 2 * np.pi * t[:, 0, 0]
    cx = 0.5 + 0.3 * np.cos(ang)
    cy = 0.5 + 0.3 * np.sin(ang)
    rad = 0.12 * min(1.0, height / width)
    d = (x - cx[:, None, None]) ** 2 * (width / height) ** 2 + (y - cy[:, None, None]) ** 2
    disc = (d < rad ** 2)[..., None]
    img = np.where(disc, np.array([1.0, 1.0, 0.95], np.float32), img)
    return (img * 255 + 0.5).astype(np.uint8)


@node("generate.test_pattern", title="Test Pattern", category="Generate", temporal_radius=0)
def test_pattern(ctx, frames: int = Param(48, min=1, max=100000, help="length of the clip"),
                 width: int = Param(320, min=16, max=8192, help="pixels"),
                 height: int = Param(240, min=16, max=8192, help="pixels"),
                 fps: float = Param(24.0, min=0.01, max=1000, help="frames per second")) -> VIDEO:
    """A moving synthetic pattern (drifting colour bands, scrolling checker, orbiting disc)."""
    return Clip(frames, fps, width, height, lambda a, b: pattern_frames(a, b, width, height, frames))


@node("generate.solid", title="Solid Colour", category="Generate", temporal_radius=0)
def solid_colour(ctx, width: int = Param(512, min=1, max=16384, help="pixels"),
                 height: int = Param(512, min=1, max=16384, help="pixels"),
                 frames: int = Param(1, min=1, max=100000, help="length of the clip"),
                 color: int = Param(0, min=0, max=0xFFFFFF, help="the colour as 0xRRGGBB (0 = black)"),
                 fps: float = Param(24.0, min=0.01, max=1000, help="frames per second")) -> VIDEO:
    """Frames of one colour (ComfyUI's EmptyImage): a canvas, or a size to hand on (video.size)."""
    rgb = np.array([(color >> 16) & 255, (color >> 8) & 255, color & 255], np.uint8)
    return Clip(frames, fps, width, height, lambda a, b: np.broadcast_to(rgb, (b - a, height, width, 3)).copy())
