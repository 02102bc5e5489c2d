"""comfyui_controlnet_aux's model-free preprocessor nodes, and ImageInvert."""
from graph_engine import Param, node
from graph_engine.types import VIDEO

RESOLUTION_HELP = ("the picture's short side in pixels (controlnet_aux's detect resolution; link pose.pixel_perfect "
                   "to match the generation size)")


def _resolution():
    return Param(512, min=64, max=16384, help=RESOLUTION_HELP)


def _sized(ctx, video, resolution, fn):
    """video's pictures through fn(frame), at the detect resolution's size."""
    from nodes.common.stream import map_frames
    from .pictures import picture_size
    h, w = picture_size(video.height, video.width, resolution)
    return map_frames(ctx, video, fn, width=w, height=h)


@node("control.canny_edges", title="Canny Edge (controlnet_aux)", category="Conditioning", temporal_radius=0)
def canny_edges(ctx, video: VIDEO,
                low: int = Param(100, min=0, max=255, help="edges this strong join an edge that reaches `high` "
                                                           "(OpenCV's gradient on 0..255 pictures)"),
                high: int = Param(200, min=0, max=255, help="edges this strong are kept"),
                resolution: int = _resolution()) -> VIDEO:
    """White edges on black, as comfyui_controlnet_aux's Canny Edge preprocessor finds them: the frame scaled to
    `resolution` on its short side, then OpenCV's Canny with thresholds in 0..255 steps. ComfyUI's own Canny node
    (0..1 thresholds, at the frame's size) is control.canny."""
    from graph_engine import NodeError
    from .pictures import canny_edges as edges
    if low > high:
        raise NodeError(f"low ({low}) must not be above high ({high})")
    return _sized(ctx, video, resolution, lambda f: edges(f, low, high, resolution))


@node("control.binary", title="Binary Lines", category="Conditioning", temporal_radius=0)
def binary(ctx, video: VIDEO,
           threshold: int = Param(100, min=0, max=255, help="grey levels above this are white; 0 or 255: picked "
                                                            "per frame by Otsu's method"),
           resolution: int = _resolution()) -> VIDEO:
    """Black and white by brightness, as comfyui_controlnet_aux's Binary Lines preprocessor makes it, for a lineart
    or scribble ControlNet."""
    from .pictures import binary_lines
    return _sized(ctx, video, resolution, lambda f: binary_lines(f, threshold, resolution))


@node("control.color_grid", title="Colour Grid", category="Conditioning", temporal_radius=0)
def color_grid(ctx, video: VIDEO, resolution: int = _resolution()) -> VIDEO:
    """The frame's colours as flat 64x64 cells, as comfyui_controlnet_aux's Color preprocessor makes them for the
    T2I-Adapter color model."""
    from nodes.common.stream import map_frames
    from .pictures import colour_grid, colour_size
    h, w = colour_size(video.height, video.width, resolution)
    return map_frames(ctx, video, lambda f: colour_grid(f, resolution), width=w, height=h)


@node("control.tile", title="Tile Blur", category="Conditioning", temporal_radius=0)
def tile(ctx, video: VIDEO,
         iterations: int = Param(3, min=1, max=10, help="how many times the frame is halved before it is brought "
                                                        "back up (pyrUp_iters): more is blurrier")) -> VIDEO:
    """A blurred copy of the frame for a tile ControlNet, as comfyui_controlnet_aux's Tile preprocessor makes it:
    the sides rounded to whole 64s, shrunk by 2^iterations and brought back up by Gaussian pyramid steps."""
    from nodes.common.stream import map_frames
    from .pictures import tile_blur, tile_size
    h, w = tile_size(video.height, video.width, iterations)
    return map_frames(ctx, video, lambda f: tile_blur(f, iterations), width=w, height=h)


@node("control.shuffle", title="Content Shuffle", category="Conditioning", temporal_radius=0)
def shuffle(ctx, video: VIDEO, resolution: int = _resolution(),
            seed: int = Param(0, kind="seed", help="picks the shuffle; every frame is shuffled alike, so the "
                                                   "picture does not boil")) -> VIDEO:
    """The frame's content swirled by smooth random warps, as comfyui_controlnet_aux's Content Shuffle makes it for
    the shuffle ControlNet and T2I-Adapter (style without layout)."""
    from .pictures import content_shuffle
    return _sized(ctx, video, resolution, lambda f: content_shuffle(f, resolution, seed))


@node("video.invert", title="Invert", category="Video", temporal_radius=0)
def invert(ctx, video: VIDEO) -> VIDEO:
    """Each pixel's colour inverted (white becomes black), as ComfyUI's ImageInvert: e.g. black lines on white made
    white on black for a lineart ControlNet."""
    from nodes.common.stream import map_frames
    from .pictures import inverted
    return map_frames(ctx, video, inverted)
