"""Simple clip utilities."""
import numpy as np

from graph_engine import Input, Param, node
from graph_engine.types import FLOAT, IMAGE, INT, VIDEO, add_hint

from . import edit
from .blend import BLEND_MODES

# A clip wired where one picture is wanted (a style, reference or start image) is refused; say how.
add_hint(IMAGE, VIDEO, "take one frame of the clip with video.frame")


def _drops_audio(ctx, why: str, *clips) -> None:
    """Say so when the sound a clip carried does not go on (a writer would otherwise just be silent)."""
    if any(c.audio is not None for c in clips):
        ctx.log(f"the audio track is dropped: {why}")


# Every editing node here keeps a clip's alpha (Clip.matte): they pick, order or move pixels, and do the
# same to the alpha; resize's pad bars are transparent.


@node("video.trim", category="Video", temporal_radius=0)
def trim(ctx, video: VIDEO, start: int = Param(0, min=-100000, help="first frame kept, counted from 0; negative: "
                                                                    "counted back from the end (-1: the last)"),
         count: int = Param(0, zero="all", min=0, help="0 = to the end")) -> VIDEO:
    """Keep `count` frames starting at `start` (the alpha, if any, with them)."""
    # a negative start counts back from the end, as ComfyUI's ImageFromBatch takes batch_index -1 (SCAIL-2's
    # templates: the last frame, the colour reference of the next clip), before the start of the clip the first
    return edit.trim(video, max(0, video.length + start) if start < 0 else start, count)


@node("video.slice", title="Slice (Seconds)", category="Video", temporal_radius=0)
def slice_seconds(ctx, video: VIDEO,
                  start: float = Param(0.0, min=-100000.0, max=100000.0,
                                       help="seconds into the clip where the slice starts; negative: counted back "
                                            "from its end"),
                  duration: float = Param(0.0, zero="all", min=0.0, help="seconds kept; 0 = to the end"),
                  strict: bool = Param(False, help="stop when the clip is shorter than `duration` from `start` "
                                                   "(off: keep what there is)")) -> VIDEO:
    """Keep the frames whose time lies in [start, start + duration) (ComfyUI's Video Slice), with their sound and
    alpha; a start or duration between frames keeps the frames after it."""
    if start == 0 and duration == 0:
        return video
    return edit.trim(video, *edit.slice_span(video.length, video.fps, start, duration, strict))


@node("video.concat", category="Video", temporal_radius=0)
def concat(ctx, video: VIDEO, other: VIDEO) -> VIDEO:
    """Play `other` after `video` (same size required) at `video`'s frame rate. Each clip's sound plays with
    its pictures (silence under one without), so the join stays in sync; `other`'s at the speed its frames
    then play when it runs at another rate, its pitch kept. Mono clips stay mono; the sound keeps the highest
    sample rate of the clips'."""
    if abs(video.fps - other.fps) > 1e-3 * max(video.fps, other.fps):
        if other.audio is not None:
            ctx.log(f"`other`'s sound plays at {video.fps / other.fps:.3g}x, as its pictures do (its pitch "
                    f"following, as a tape's)")
        # Frames are joined as they are (as ComfyUI batches them), so the second clip's motion changes speed.
        ctx.log(f"the clips run at {video.fps:g} and {other.fps:g} fps: joined at {video.fps:g} fps, `other` plays "
                f"{video.fps / other.fps:.3g}x as fast as it was made; resample it first (video.fps, mode "
                f"resample, fps {video.fps:g}) to keep its speed")
    return edit.concat(video, other)


@node("video.resize", category="Video", temporal_radius=0)
def resize(ctx, video: VIDEO, width: int = Param(512, zero="auto", min=0, max=16384, help="0 = follow height"),
           height: int = Param(0, zero="auto", min=0, max=16384, help="0 = follow width"),
           method: str = Param("area", choices=tuple(edit.RESIZE_METHODS),
                               help="area: best for shrinking; lanczos or bicubic: sharpest enlarging; "
                                    "nearest: hard pixels"),
           fit: str = Param("stretch", choices=edit.FITS,
                            help="with both sides given, another shape: stretch to it; crop: fill it and cut "
                                 "the overflow, centred (16:9 to 9:16 for a phone); pad: fit inside with black "
                                 "bars, transparent in a clip with alpha (a portrait clip joined to landscape "
                                 "ones)")) -> VIDEO:
    """Resize every frame; a 0 side keeps the aspect ratio, and `fit` keeps it when both are given. A clip's
    alpha is resized alike."""
    return edit.resize(video, width, height, method, fit)


@node("video.scale", title="Scale (ComfyUI)", category="Video", temporal_radius=0)
def scale(ctx, video: VIDEO, width: int = Param(512, zero="auto", min=0, max=16384, help="0 = follow height"),
          height: int = Param(0, zero="auto", min=0, max=16384, help="0 = follow width"),
          method: str = Param("area", choices=tuple(edit.COMFY_SCALES),
                              help="area: best for shrinking; lanczos or bicubic: sharpest enlarging; nearest: hard "
                                   "pixels"),
          crop: bool = Param(False, help="cut each frame to the size's shape at the middle first (off: stretch)")
          ) -> VIDEO:
    """Resize every frame as ComfyUI's ImageScale and Resize Image/Mask do, pixel for pixel: their resampling
    (torch's area, bilinear, bicubic and nearest-exact, Pillow's Lanczos), a 0 side following the other, the
    centre cut before the resize. Both sides 0: the clip as it is."""
    if width == 0 and height == 0:
        return video
    return edit.comfy_resize(video, *edit.fit_size(video.width, video.height, width, height), method, crop)


# Version 2 resamples as ComfyUI does (torch's and Pillow's filters, not OpenCV's): results cached from version 1
# keyed alike would have been served for the new pixels.
@node("video.resize_side", title="Resize by Side", category="Video", temporal_radius=0, version=2,
      migrations={1: dict})
def resize_side(ctx, video: VIDEO, size: int = Param(1024, min=1, max=16384, help="the chosen side's length"),
                side: str = Param("longer", choices=("longer", "shorter"),
                                  help="longer: fit within a size x size square; shorter: cover it"),
                method: str = Param("lanczos", choices=tuple(edit.COMFY_SCALES),
                                    help="area: best for shrinking; lanczos or bicubic: sharpest enlarging")) -> VIDEO:
    """Resize every frame so its longer (or shorter) side is `size`, keeping its shape, whatever the clip's
    orientation (ComfyUI's Resize Image/Mask by longer or shorter dimension and ImageScaleToMaxDimension: their
    rounding and resampling)."""
    return edit.comfy_resize(video, *edit.side_size(video.width, video.height, size, side), method)


@node("video.stitch", title="Stitch (Side by Side)", category="Video", temporal_radius=0)
def stitch(ctx, video: VIDEO, other: VIDEO = Input(optional=True, help="the clip (or picture) to lay beside `video`; "
                                                                    "none: `video` goes on as it is"),
           direction: str = Param("right", choices=("right", "down", "left", "up"),
                                  help="where `other` goes: right of, below, left of or above `video`"),
           match_size: bool = Param(True, help="stretch `other` to `video`'s height (beside) or width (above or "
                                               "below), keeping its shape; off: the smaller one centred"),
           spacing: int = Param(0, min=0, max=1024, help="pixels between the two (rounded up to even)"),
           colour: str = Param("white", choices=("white", "black", "red", "green", "blue"),
                               help="the spacing's colour; without match_size, white or black also fills around "
                                    "the smaller one (black for the others)")) -> VIDEO:
    """Two clips as one picture: a before/after view, or the pictures FLUX.1 Kontext edits as one reference
    (ComfyUI's ImageStitch). The shorter holds its last frame; `video`'s rate and sound go on."""
    from .stitch import stitch as run
    return video if other is None else run(video, other, direction, match_size, spacing, colour)


# Version 2: ComfyUI's resampling, as video.resize_side's version 2.
@node("video.resize_pixels", title="Resize to Pixel Count", category="Video", temporal_radius=0, version=2,
      migrations={1: dict})
def resize_pixels(ctx, video: VIDEO,
                  megapixels: float = Param(1.0, min=0.01, max=16.0, help="the frames' size in millions of pixels "
                                                                          "(1 = 1024 x 1024 = 1,048,576)"),
                  method: str = Param("lanczos", choices=tuple(edit.COMFY_SCALES),
                                      help="area: best for shrinking; lanczos or bicubic: sharpest enlarging"),
                  step: int = Param(1, min=1, max=256, help="each side a multiple of this (16 for most models)")
                  ) -> VIDEO:
    """Resize every frame to about `megapixels` million pixels, keeping its shape (ComfyUI's
    ImageScaleToTotalPixels, its rounding and resampling): a picture of any size brought to the size a model was
    trained at."""
    return edit.comfy_resize(video, *edit.pixel_count_size(video.width, video.height, megapixels, step), method)


@node("video.resize_pad", title="Resize and Pad", category="Video", temporal_radius=0)
def resize_pad(ctx, video: VIDEO, width: int = Param(512, min=1, max=16384, help="the frames' width"),
               height: int = Param(512, min=1, max=16384, help="the frames' height"),
               colour: str = Param("black", choices=tuple(edit.PAD_COLOURS), help="the bars' colour"),
               method: str = Param("area", choices=tuple(edit.COMFY_SCALES),
                                   help="area: best for shrinking; lanczos or bicubic: sharpest enlarging; "
                                        "nearest: hard pixels")) -> VIDEO:
    """Fit every frame inside width x height keeping its shape, centred on black or white bars (ComfyUI's
    ResizeAndPadImage, pixel for pixel: its resampling, its rounding down of the fitted size, its bars). An alpha
    is resized alike, opaque under the bars."""
    return edit.resize_pad(video, width, height, colour, method)


@node("video.blend", title="Blend", category="Video", temporal_radius=0)
def blend(ctx, video: VIDEO, other: VIDEO = Input(help="the clip (or one picture, over every frame) blended over "
                                                        "`video`; another size is cut to its shape at the middle "
                                                        "and resized bicubic"),
          factor: float = Param(0.5, min=0.0, max=1.0, help="how much of the blend: 0 = `video` as it is"),
          mode: str = Param("normal", choices=BLEND_MODES,
                            help="normal: `other` itself; multiply, screen, overlay, soft_light, difference: the "
                                 "two combined so")) -> VIDEO:
    """Mix `other` into `video` by a blend mode (ComfyUI's ImageBlend, computed as it computes it: a pose drawn
    over the picture it was found in). `video`'s rate and sound go on."""
    from .blend import blend as run
    return run(video, other, mode, factor)


@node("video.blur", title="Blur (Gaussian)", category="Video", temporal_radius=0)
def blur(ctx, video: VIDEO, radius: int = Param(1, min=1, max=31, help="pixels the kernel reaches each side"),
         sigma: float = Param(1.0, min=0.1, max=10.0, help="the Gaussian's width as a share of the radius (1: the "
                                                            "kernel's edge at one sigma), as ComfyUI's sigma")
         ) -> VIDEO:
    """Blur every frame (ComfyUI's ImageBlur, pixel for pixel: its kernel of 2 radius + 1 taps, the border
    reflected): a soft mask or a picture blurred before it guides an inpaint."""
    from .blend import blur as run
    return run(video, radius, sigma)


@node("video.match_size", title="Match Size", category="Video", temporal_radius=0)
def match_size(ctx, video: VIDEO, reference: VIDEO = Input(help="the clip (or picture) whose size to take"),
               method: str = Param("bilinear", choices=tuple(edit.COMFY_SCALES),
                                   help="area: best for shrinking; lanczos or bicubic: sharpest enlarging; "
                                        "nearest: hard pixels"),
               crop: bool = Param(True, help="cut `video` to the reference's shape at the middle first (off: "
                                             "stretch it)")) -> VIDEO:
    """Resize every frame to `reference`'s size, as ComfyUI resizes a picture to match another (Resize
    Image/Mask's match size; the pictures Batch Images joins to the first's: bilinear, centre cut). A clip of
    that size already goes on as it is."""
    if video.size == reference.size:
        return video
    return edit.comfy_resize(video, reference.width, reference.height, method, crop)


@node("video.crop", title="Crop", category="Video", temporal_radius=0)
def crop(ctx, video: VIDEO, x: int = Param(0, min=0, max=16384, help="the rectangle's left edge in pixels"),
         y: int = Param(0, min=0, max=16384, help="the rectangle's top edge in pixels"),
         width: int = Param(512, min=1, max=16384, help="the rectangle's width (cut at the picture's edge)"),
         height: int = Param(512, min=1, max=16384, help="the rectangle's height (cut at the picture's edge)")
         ) -> VIDEO:
    """A rectangle of every frame (ComfyUI's Image Crop): a corner past the picture moves onto its last pixel,
    and the rectangle is cut where the picture ends. The alpha is cut alike."""
    return edit.crop(video, x, y, width, height)


@node("video.flip", category="Video", temporal_radius=0)
def flip(ctx, video: VIDEO, direction: str = Param("horizontal", choices=edit.FLIPS,
                                                   help="horizontal: mirror left and right (Nuke's flop); "
                                                        "vertical: upside down; both: turned half round")) -> VIDEO:
    """Mirror every frame (the alpha with it)."""
    return edit.flip(video, direction)


@node("video.every_nth", category="Video", temporal_radius=0)
def every_nth(ctx, video: VIDEO, n: int = Param(2, min=1, help="keep one frame in n"),
              offset: int = Param(0, min=0, help="the first frame kept")) -> VIDEO:
    """Keep one frame in n (the frame rate drops by n, so the duration stays)."""
    return edit.every_nth(video, n, offset)


@node("video.reverse", category="Video", temporal_radius=0)
def reverse(ctx, video: VIDEO) -> VIDEO:
    """Play the clip backwards, its sound backwards with it."""
    idx = np.arange(video.length - 1, -1, -1)
    return edit.take(video, idx, video.fps, edit.sound_under(video, idx))


@node("video.pingpong", category="Video", temporal_radius=0)
def pingpong(ctx, video: VIDEO) -> VIDEO:
    """Forward then backward, without repeating the turning frames: a seamless loop; the sound plays forwards
    then backwards with the pictures."""
    n = video.length
    idx = np.concatenate([np.arange(n), np.arange(n - 2, 0, -1)]) if n > 2 else np.arange(n)
    return edit.take(video, idx, video.fps, edit.sound_under(video, idx))


@node("video.repeat", title="Repeat", category="Video", temporal_radius=0)
def repeat(ctx, video: VIDEO, times: int = Param(2, min=1, max=100000,
                                                 help="how many times the clip plays (a still: frames)")) -> VIDEO:
    """The clip played `times` times in a row (a still becomes a clip of that many frames), its sound with each:
    ComfyUI's RepeatImageBatch, which makes a batch of one picture or mask per frame."""
    idx = np.tile(np.arange(video.length), times)
    return edit.take(video, idx, video.fps, edit.sound_under(video, idx))


@node("video.fps", category="Video", temporal_radius=0)
def fps(ctx, video: VIDEO, fps: float = Param(24.0, min=0.01, max=1000, help="frames per second of the result"),
        mode: str = Param("resample", choices=("resample", "retime"),
                          help="resample: drop/repeat frames, same duration; retime: same frames, new speed "
                               "(a 48 fps clip retimed to 24 plays at half speed: slow motion)"),
        sound: str = Param("tape", choices=edit.RETIMED_SOUND,
                           help="retime: the sound at the pictures' new speed, tape letting its pitch follow (lower "
                                "when slower, as a tape; every sound on its frame), stretch keeping the pitch "
                                "(voices stay voices; a sharp sound may lead its frame by up to 40 ms at half "
                                "speed), or drop it")) -> VIDEO:
    """Change the frame rate. Retimed, the sound plays at the pictures' new speed and stays in sync with them."""
    if mode == "retime" and video.audio is not None and abs(fps - video.fps) > 1e-6 * fps:
        if sound == "drop":
            _drops_audio(ctx, "sound is drop (stretch or tape keeps it, at the new speed)", video)
        else:
            ctx.log(f"the sound plays at {fps / video.fps:.3g}x speed with the pictures ("
                    f"{'its pitch kept' if sound == 'stretch' else 'its pitch following, as a tape'}), in sync "
                    f"with them")
    return edit.change_fps(video, fps, mode, sound)


@node("video.frame", title="Frame of Video", category="Video", temporal_radius=0)
def frame(ctx, video: VIDEO, index: int = Param(0, help="frame number; negative counts from the end")) -> IMAGE:
    """One frame of a clip as an image (a start image for image-to-video, a still to save)."""
    from graph_engine import NodeError
    if not -video.length <= index < video.length:
        raise NodeError(f"frame {index} is outside the clip's {video.length} frames")
    if ctx is not None and video.length > 1:   # a batch of pictures where one is read (text.generate's image)
        ctx.log(f"frame {index} of {video.length}: the other {video.length - 1} are not passed on")
    return video.frame(index)


@node("video.size", title="Size of Video", category="Video",
      outputs={"width": INT, "height": INT, "frames": INT, "fps": FLOAT})
def size(ctx, video: VIDEO) -> dict:
    """A clip's width, height, frame count and frame rate, to link into the settings that take them (a
    latent.empty's width and height made from a picture's; ComfyUI's GetImageSize). A picture is a clip of one
    frame. Reads no frames."""
    return {"width": video.width, "height": video.height, "frames": video.length, "fps": float(video.fps)}


def _key_problem(text):
    from graph_engine import NodeError
    from .matte import key_colour
    try:
        key_colour(text)
    except NodeError as e:
        return str(e)
    return None


@node("video.over", title="Over (Composite)", category="Video", temporal_radius=0)
def over(ctx, video: VIDEO, background: VIDEO = Input(help="the plate (or a still image) to lay the clip over"),
         blend: str = Param("linear", choices=("linear", "encoded"),
                            help="linear: blend the light, as Nuke merges (soft edges and motion blur look right); "
                                 "encoded: blend the sRGB values, as After Effects (without linear blending) and "
                                 "web browsers do")) -> VIDEO:
    """Lay a clip with transparency (an element: ProRes 4444, RGBA frames, a key) over a background of the
    same size: out = element + (1 - alpha) x background. A background shorter than the clip holds its last
    frame (a still holds throughout). The result keeps the background's sound, timecode and frame numbers
    when it is as long as the clip, and is opaque unless the background has an alpha of its own. A clip
    without alpha covers the background. blend linear keeps an EXR or deep plate's float pixels (light above 1.0
    for an EXR render); encoded is 8-bit."""
    from .matte import over as _over
    ctx.alpha_handled = True        # the result is the element laid over: opaque, as asked
    if video.matte is None:
        ctx.log("the clip has no alpha (transparency), so it covers the background: give it one first "
                "(video.matte), or read it from a file that has one (a still PNG too: io.load_frames keeps its "
                "alpha, io.load_image gives it as a separate mask)")
    return _over(video, background, blend)


@node("video.matte", title="Set Alpha (Key)", category="Video", temporal_radius=0)
def matte(ctx, video: VIDEO,
          source: VIDEO = Input(optional=True, help="alpha: a clip whose alpha to take; luma: a black-and-white "
                                                     "matte (white opaque); a shorter one holds its last frame"),
          mode: str = Param("alpha", choices=("alpha", "luma", "chroma", "none"),
                            help="alpha: the alpha of `source` (an element's, kept past a node that drops it); "
                                 "luma: the brightness of `source` (a matte file), or of the clip (a luma key); "
                                 "chroma: key out the `key` colour (green or blue screen); none: remove the alpha"),
          key: str = Param("0 177 64", check=_key_problem, help="chroma: the screen's colour, red green blue "
                                                                  "0-255 or #00b140"),
          tolerance: float = Param(0.12, min=0.0, max=1.0, help="chroma: how far from the key colour is still "
                                                                 "fully transparent"),
          softness: float = Param(0.1, min=0.0, max=1.0, help="chroma: the width of the soft edge past tolerance"),
          despill: bool = Param(True, help="chroma: neutralise the screen's light spilled on the subject"),
          invert: bool = Param(False, help="swap transparent and opaque")) -> VIDEO:
    """Give a clip an alpha (transparency), for io.save_video (prores, vp9), io.save_frames or video.over:
    from another clip's alpha, a black-and-white matte, a luma key, or a chroma key against a green or
    blue screen (with despill). The colour is laid over black by the new alpha (premultiplied)."""
    from .matte import key_colour, with_alpha
    ctx.alpha_handled = True        # mode none removes it, as asked
    return with_alpha(video, mode, source, key_colour(key), tolerance, softness, despill, invert)
