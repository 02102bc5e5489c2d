"""Simple clip utilities."""
import numpy as np

from graph_engine import Param, node
from graph_engine.types import IMAGE, VIDEO, add_hint

from . import edit

# A clip wired where one picture is wanted (a style, reference or start image) is refused; say how.
add_hint(IMAGE, VIDEO, "take one frame of the clip with video.frame")


def _drops_audio(ctx, why: str, *clips) -> None:
    """Say so when the sound a clip carried does not go on (a writer would otherwise just be silent)."""
    if any(c.audio is not None for c in clips):
        ctx.log(f"the audio track is dropped: {why}")


@node("video.trim", category="Video", temporal_radius=0)
def trim(ctx, video: VIDEO, start: int = Param(0, min=0, help="first frame kept, counted from 0"), count: int = Param(0, min=0, help="0 = to the end")) -> VIDEO:
    """Keep `count` frames starting at `start`."""
    return edit.trim(video, start, count)


@node("video.concat", category="Video", temporal_radius=0)
def concat(ctx, video: VIDEO, other: VIDEO) -> VIDEO:
    """Play `other` after `video` (same size required) at `video`'s frame rate. Each clip's sound plays with
    its pictures (silence under one without), so the join stays in sync; `other`'s is dropped when it runs at
    another rate (its frames then play faster or slower than its sound)."""
    if abs(video.fps - other.fps) > 1e-3 * max(video.fps, other.fps):
        _drops_audio(ctx, f"`other` runs at {other.fps:g} fps and plays at {video.fps:g}: its sound would not "
                          f"match its pictures (silence plays under them instead)", other)
        # Frames are joined as they are (as ComfyUI batches them), so the second clip's motion changes speed.
        ctx.log(f"the clips run at {video.fps:g} and {other.fps:g} fps: joined at {video.fps:g} fps, `other` plays "
                f"{video.fps / other.fps:.3g}x as fast as it was made; resample it first (video.fps, mode "
                f"resample, fps {video.fps:g}) to keep its speed")
    return edit.concat(video, other)


@node("video.resize", category="Video", temporal_radius=0)
def resize(ctx, video: VIDEO, width: int = Param(512, min=0, max=16384, help="0 = follow height"),
           height: int = Param(0, min=0, max=16384, help="0 = follow width"),
           method: str = Param("area", choices=tuple(edit.RESIZE_METHODS),
                               help="area: best for shrinking; lanczos or bicubic: sharpest enlarging; "
                                    "nearest: hard pixels"),
           fit: str = Param("stretch", choices=edit.FITS,
                            help="with both sides given, another shape: stretch to it; crop: fill it and cut "
                                 "the overflow, centred (16:9 to 9:16 for a phone); pad: fit inside with black "
                                 "bars (a portrait clip joined to landscape ones)")) -> VIDEO:
    """Resize every frame; a 0 side keeps the aspect ratio, and `fit` keeps it when both are given."""
    return edit.resize(video, width, height, method, fit)


@node("video.every_nth", category="Video", temporal_radius=0)
def every_nth(ctx, video: VIDEO, n: int = Param(2, min=1, help="keep one frame in n"),
              offset: int = Param(0, min=0, help="the first frame kept")) -> VIDEO:
    """Keep one frame in n (the frame rate drops by n, so the duration stays)."""
    return edit.every_nth(video, n, offset)


@node("video.reverse", category="Video", temporal_radius=0)
def reverse(ctx, video: VIDEO) -> VIDEO:
    """Play the clip backwards (without its audio)."""
    _drops_audio(ctx, "the sound does not play backwards with the pictures", video)
    return edit.take(video, np.arange(video.length - 1, -1, -1), video.fps, None)


@node("video.pingpong", category="Video", temporal_radius=0)
def pingpong(ctx, video: VIDEO) -> VIDEO:
    """Forward then backward, without repeating the turning frames: a seamless loop (without audio)."""
    _drops_audio(ctx, "the sound does not play backwards with the pictures", video)
    n = video.length
    idx = np.concatenate([np.arange(n), np.arange(n - 2, 0, -1)]) if n > 2 else np.arange(n)
    return edit.take(video, idx, video.fps, None)


@node("video.fps", category="Video", temporal_radius=0)
def fps(ctx, video: VIDEO, fps: float = Param(24.0, min=0.01, max=1000, help="frames per second of the result"),
        mode: str = Param("resample", choices=("resample", "retime"),
                          help="resample: drop/repeat frames, same duration; retime: same frames, new speed")) -> VIDEO:
    """Change the frame rate (retime drops the audio: it would no longer match)."""
    if mode == "retime":
        _drops_audio(ctx, "retimed pictures no longer match the sound", video)
    return edit.change_fps(video, fps, mode)


@node("video.frame", title="Frame of Video", category="Video", temporal_radius=0)
def frame(ctx, video: VIDEO, index: int = Param(0, help="frame number; negative counts from the end")) -> IMAGE:
    """One frame of a clip as an image (a start image for image-to-video, a still to save)."""
    from graph_engine import NodeError
    if not -video.length <= index < video.length:
        raise NodeError(f"frame {index} is outside the clip's {video.length} frames")
    return video.frame(index)
