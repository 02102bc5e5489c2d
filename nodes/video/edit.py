"""Clip editing as index arithmetic: every operation here is a lazy Clip over its source."""
from __future__ import annotations

import math

import numpy as np

from graph_engine import Clip, NodeError
from graph_engine.clip import sequence
from nodes.common.stream import moved, moved_float

# Chunks of its source a clip read backwards computes at a time (forwards, in one pass): about 150 MB at 1080p.
BACKWARDS_SPAN = 6
# What a retimed clip's sound does (video.fps): tape plays it faster or slower, its pitch following (as NLEs do
# unless told to keep the pitch), every sound on its frame; stretch keeps the pitch with ffmpeg's atempo, whose
# windows smear a click up to 40 ms early at half speed (measured: a 50 ms beep at 0.5x).
RETIMED_SOUND = ("tape", "stretch", "drop")
RESIZE_METHODS = {"area": 3, "bilinear": 1, "bicubic": 2, "lanczos": 4, "nearest": 0}   # cv2.INTER_* values


def take(clip: Clip, indices: np.ndarray, fps: float, audio=..., timecode=..., number=None) -> Clip:
    """A clip of clip's frames at `indices` (any order, repeats allowed), read in chunks. Without `audio`,
    `timecode` or `number` (Clip.number) it has none: only the caller knows whether the frames still play
    in the source's time, one source frame to a frame."""
    indices = np.asarray(indices, dtype=np.int64)

    def reader(a: int, b: int) -> np.ndarray:
        want = indices[a:b]
        lo, hi = int(want.min()), int(want.max()) + 1
        if hi - lo <= 4 * len(want):        # a compact span: one pull, then gather
            if want[0] > want[-1]:
                # Going backwards: the source's chunks a span at a time, in their own order (Clip.prefetch).
                span = BACKWARDS_SPAN * clip.chunk
                clip.prefetch(lo // span * span, hi)
            return clip.frames(lo, hi)[want - lo]
        # Copied one by one: a frame is a view that keeps its whole source chunk alive, so a list of them
        # held a chunk per frame (every_nth 50 at 640x360: 32 chunks, 700 MB, for 32 frames of 22 MB).
        out = np.empty((len(want), clip.height, clip.width, clip.channels), np.uint8)
        for k, i in enumerate(want):
            out[k] = clip.frame(int(i))
        return out

    return clip.with_(length=len(indices), fps=fps, reader=reader,
                      audio=None if audio is ... else audio, timecode=None if timecode is ... else timecode,
                      number=number, linear=_picked(clip.linear, indices), local=True,
                      matte=None if clip.matte is None else take(clip.matte, indices, fps))


def _picked(linear, indices: np.ndarray):
    """Clip.linear of the frames at `indices` of a clip whose float pixels `linear` reads (None: none)."""
    if linear is None:
        return None
    return lambda a, b: np.stack([linear(int(i), int(i) + 1)[0] for i in indices[a:b]])


def trim(clip: Clip, start: int, count: int) -> Clip:
    if start >= clip.length:
        raise NodeError(f"start={start} is past the end of the clip ({clip.length} frames)")
    stop = clip.length if count == 0 else min(clip.length, start + count)
    audio = clip.audio.span(start / clip.fps, (stop - start) / clip.fps) if clip.audio else None
    return take(clip, np.arange(start, stop), clip.fps, audio, _shifted(clip, start),
                None if clip.number is None else clip.number + start)


def slice_span(length: int, fps: float, start: float, duration: float, strict: bool = False) -> tuple:
    """(first frame, count) of the frames a ComfyUI Video Slice keeps: those whose time (frame / fps) lies in
    [start, start + duration), a negative start counted back from the clip's end, duration 0 to the end; strict:
    a clip too short for the whole duration is refused, as ComfyUI's strict_duration refuses it."""
    if duration < 0:
        raise NodeError(f"duration must be 0 (to the end) or more, got {duration:g} s")
    total = length / fps
    begin = max(total + start, 0.0) if start < 0 else start
    # a frame at time t is kept from t >= start: its index rounded up, a hair's float error aside
    first = max(0, math.ceil(begin * fps - 1e-6))
    if first >= length:
        raise NodeError(f"start {start:g} s is past the end of the clip ({total:.3f} s, {length} frames): give a "
                        f"start below {total:.3f}")
    left = total - begin
    if strict and duration > left + 1e-6:
        raise NodeError(f"the clip has {left:.3f} s from {begin:.3f} s, less than the {duration:g} s asked for: "
                        f"shorten duration or turn strict off")
    stop = length if duration == 0 else min(length, math.ceil((begin + duration) * fps - 1e-6))
    return first, max(1, stop - first)


def every_nth(clip: Clip, n: int, offset: int) -> Clip:
    """Frames offset, offset + n, ... at fps / n; the sound starts where the first kept frame does."""
    if offset >= clip.length:
        raise NodeError(f"offset={offset} is past the end of the clip ({clip.length} frames): nothing would be "
                        f"left to keep; use an offset below {clip.length}")
    idx = np.arange(offset, clip.length, n)
    audio = clip.audio
    if audio and offset:        # kept whole, the sound would run `offset` frames ahead of the pictures
        audio = audio.span(offset / clip.fps, None)
    return take(clip, idx, clip.fps / n, audio, _shifted(clip, offset))


def _shifted(clip: Clip, frames: int):
    """The timecode of the clip's frame `frames` (None when the clip has none)."""
    return clip.timecode.shifted(frames, clip.fps) if clip.timecode else None


def concat(a: Clip, b: Clip) -> Clip:
    """`b` after `a`, at a's rate. The sound of each plays with its pictures (silence under a clip without
    any); b's at the speed its pictures then play (b at 25 fps joined to a at 24 plays 24/25 as fast), its
    pitch following, as a tape's."""
    if (a.width, a.height) != (b.width, b.height):
        raise NodeError(f"cannot join a {a.width}x{a.height} clip with a {b.width}x{b.height} one; resize one of "
                        f"them first (video.resize to {a.width}x{a.height}, with fit pad or crop to keep its shape)")
    n = a.length

    def reader(s: int, e: int) -> np.ndarray:
        parts = []
        if s < n:
            parts.append(a.frames(s, min(e, n)))
        if e > n:
            parts.append(b.frames(max(0, s - n), e - n))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    linear = None
    if a.linear is not None and b.linear is not None:
        def linear(s: int, e: int) -> np.ndarray:
            from nodes.common.color import stack_rgba
            return stack_rgba([(a.linear(i, i + 1) if i < n else b.linear(i - n, i - n + 1))[0] for i in range(s, e)])
    audio = sequence([(a.audio, a.length / a.fps), (retimed_sound(b, a.fps, tape=True), b.length / a.fps)])
    # A clip without transparency joined to one with it is opaque, so the join keeps the other's alpha.
    matte = concat(a.opaque_matte(), b.opaque_matte()) if a.matte is not None or b.matte is not None else None
    return a.with_(length=a.length + b.length, reader=reader, audio=audio, linear=linear, number=a.number,
                   matte=matte, local=True)


def resize_frames(frames: np.ndarray, width: int, height: int, method: str = "area") -> np.ndarray:
    import cv2
    interp = RESIZE_METHODS[method]
    out = np.empty((len(frames), height, width, frames.shape[-1]), frames.dtype)    # uint8, or float (Clip.linear)
    for i, f in enumerate(frames):
        out[i] = cv2.resize(f, (width, height), interpolation=interp).reshape(out[i].shape)   # a matte's 1 channel
    return out


def fit_size(w0: int, h0: int, width: int, height: int):
    if not width and not height:
        raise NodeError("give a width, a height or both (0 keeps the aspect ratio from the other)")
    if not height:
        height = max(1, round(h0 * width / w0))
    if not width:
        width = max(1, round(w0 * height / h0))
    return int(width), int(height)


def pixel_count_size(w0: int, h0: int, megapixels: float, step: int = 1):
    """The size of about `megapixels` x 2^20 pixels with this shape, each side rounded to a multiple of `step`
    (ComfyUI's ImageScaleToTotalPixels)."""
    if megapixels <= 0 or step < 1:
        raise NodeError(f"megapixels must be above 0 and step 1 or more, got {megapixels} and {step}")
    scale = math.sqrt(megapixels * 1024 * 1024 / (w0 * h0))
    return max(step, round(w0 * scale / step) * step), max(step, round(h0 * scale / step) * step)


FITS = ("stretch", "crop", "pad")


def fitted_frames(frames: np.ndarray, width: int, height: int, method: str, fit: str) -> np.ndarray:
    """Frames at width x height keeping their shape: `crop` fills the size and cuts the overflow (centred),
    `pad` fits inside it with black bars (transparent in a matte); `stretch` pulls them to it."""
    h0, w0 = frames.shape[1:3]
    if fit == "stretch" or w0 * height == h0 * width:
        return resize_frames(frames, width, height, method)
    if fit == "crop":       # scaled to cover the size, the side that overflows then cut
        scale = max(width / w0, height / h0)
        w, h = max(width, round(w0 * scale)), max(height, round(h0 * scale))
    else:                   # scaled to fit inside it
        scale = min(width / w0, height / h0)
        w, h = min(width, max(1, round(w0 * scale))), min(height, max(1, round(h0 * scale)))
    scaled = resize_frames(frames, w, h, method)
    if fit == "crop":
        x, y = (w - width) // 2, (h - height) // 2
        return np.ascontiguousarray(scaled[:, y:y + height, x:x + width])
    out = np.zeros((len(frames), height, width, frames.shape[-1]), frames.dtype)
    x, y = (width - w) // 2, (height - h) // 2
    out[:, y:y + h, x:x + w] = scaled
    return out


def resize(clip: Clip, width: int, height: int, method: str = "area", fit: str = "stretch") -> Clip:
    w, h = fit_size(clip.width, clip.height, width, height)

    def move(frames: np.ndarray) -> np.ndarray:
        return fitted_frames(frames, w, h, method, fit)
    return moved_float(clip.map(move, w, h).with_(matte=moved(clip.matte, move, w, h)), clip, move)



# ComfyUI's interpolations (comfy.utils.common_upscale) by Kinograph's names: torch's interpolate in float, Lanczos
# by Pillow (3 lobes), as ComfyUI resamples; "nearest" is its nearest-exact (pixel centres), not torch's nearest.
COMFY_SCALES = {"area": "area", "bicubic": "bicubic", "bilinear": "bilinear", "nearest": "nearest-exact",
                "lanczos": "lanczos"}
# torch's bilinear and bicubic (A = -0.75, border pixels repeated) share OpenCV's half-pixel grid, as torch's area
# (adaptive average pooling) and OpenCV's area do on a whole-number shrink: on float32 OpenCV gives torch's values to
# 2e-5 of a level, in a tenth of torch's time on one core (bench/comfy_resize.py), so it stands in for torch there.
# Its nearest-exact rounds ties otherwise than torch's, which picks pixels from 8-bit levels as they are.
CV_SCALES = {"bilinear": 1, "bicubic": 2, "area": 3}       # cv2.INTER_LINEAR, INTER_CUBIC, INTER_AREA
PAD_COLOURS = {"black": 0.0, "white": 1.0}


def comfy_scaled(frames: np.ndarray, width: int, height: int, method: str, crop: bool = False) -> np.ndarray:
    """Frames [n,H,W,C] (uint8, or float as Clip.linear) at width x height, resampled as ComfyUI's common_upscale
    does (crop: first cut to the size's shape at the middle, as its crop "center"); uint8 comes back rounded to the
    nearest level."""
    if method not in COMFY_SCALES:
        raise NodeError(f"method={method!r}: choose one of {', '.join(COMFY_SCALES)}")
    if crop:
        h0, w0 = frames.shape[1:3]
        old, new = w0 / h0, width / height
        x = round((w0 - w0 * (new / old)) / 2) if old > new else 0
        y = round((h0 - h0 * (old / new)) / 2) if old < new else 0
        frames = frames[:, y:h0 - y, x:w0 - x]
    if method == "lanczos":
        from PIL import Image
        if frames.dtype == np.uint8 and frames.shape[-1] == 3:      # Pillow resamples RGB's bands as it does L
            return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(f), "RGB").resize(
                (width, height), Image.Resampling.LANCZOS)) for f in frames])
        # one channel at a time also takes float and a matte's single channel
        mode = "L" if frames.dtype == np.uint8 else "F"
        return np.stack([np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(f[..., c]), mode).resize(
            (width, height), Image.Resampling.LANCZOS)) for c in range(f.shape[-1])], -1) for f in frames])
    h0, w0 = frames.shape[1:3]
    if method == "nearest" or (method == "area" and (h0 % height or w0 % width)):   # area's windows overlap here
        import torch
        import torch.nn.functional as F
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        out = F.interpolate(x if method == "nearest" else x.float(), size=(height, width),
                            mode=COMFY_SCALES[method]).permute(0, 2, 3, 1).numpy()
        return out if out.dtype == frames.dtype else np.clip(np.rint(out), 0, 255).astype(np.uint8)
    import cv2
    out = np.empty((len(frames), height, width, frames.shape[-1]), frames.dtype)
    for i, f in enumerate(frames):      # a frame at a time: its float copy stays small; reshape: a matte's 1 channel
        r = cv2.resize(f.astype(np.float32), (width, height), interpolation=CV_SCALES[method])
        if frames.dtype == np.uint8:
            np.clip(np.rint(r, out=r), 0, 255, out=r)
        out[i] = r.reshape(out[i].shape)
    return out


def comfy_resize(clip: Clip, width: int, height: int, method: str, crop: bool = False) -> Clip:
    """The clip at width x height by comfy_scaled, streamed chunk by chunk; an alpha resized alike."""
    if width < 1 or height < 1:
        raise NodeError(f"width and height must both be 1 or more, got {width} x {height}")

    def move(frames: np.ndarray) -> np.ndarray:
        return comfy_scaled(frames, width, height, method, crop)
    return moved_float(clip.map(move, width, height).with_(matte=moved(clip.matte, move, width, height)), clip,
                       move)


def crop(clip: Clip, x: int, y: int, width: int, height: int) -> Clip:
    """The rectangle at (x, y) of every frame, as ComfyUI's ImageCrop cuts it: a corner past the picture is moved
    onto its last column or row (so something is always left), and the rectangle is cut at the picture's edge."""
    if width < 1 or height < 1:
        raise NodeError(f"width and height must both be 1 or more, got {width} x {height}")
    x, y = min(max(x, 0), clip.width - 1), min(max(y, 0), clip.height - 1)
    x1, y1 = min(x + width, clip.width), min(y + height, clip.height)

    def move(frames: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(frames[:, y:y1, x:x1])
    return moved_float(clip.map(move, x1 - x, y1 - y).with_(matte=moved(clip.matte, move, x1 - x, y1 - y)), clip,
                       move)


def side_size(w0: int, h0: int, size: int, side: str = "longer"):
    """The size with the longer (or shorter) side `size`, the other rounded as ComfyUI's scale_longer_dimension
    and scale_shorter_dimension round it (a square: both)."""
    if side not in ("longer", "shorter"):
        raise NodeError(f"side={side!r}: choose longer or shorter")
    if size < 1:
        raise NodeError(f"size must be 1 or more, got {size}")
    tall = h0 > w0 if side == "longer" else h0 < w0
    wide = w0 > h0 if side == "longer" else w0 < h0
    if tall:
        return max(1, round((w0 / h0) * size)), size
    if wide:
        return size, max(1, round((h0 / w0) * size))
    return size, size


def pad_fit_size(w0: int, h0: int, width: int, height: int):
    """The size a picture fitted inside width x height takes, rounded down as ComfyUI's ResizeAndPadImage does."""
    scale = min(width / w0, height / h0)
    return max(1, int(w0 * scale)), max(1, int(h0 * scale))


def resize_pad(clip: Clip, width: int, height: int, colour: str = "black", method: str = "area") -> Clip:
    """Each frame fitted inside width x height keeping its shape, centred on bars of `colour` (ComfyUI's
    ResizeAndPadImage: the fitted size rounded down, the bars' odd pixel right and below). An alpha is resized
    alike, opaque under the bars (they are drawn, not cut out)."""
    if width < 1 or height < 1:
        raise NodeError(f"width and height must both be 1 or more, got {width} x {height}")
    if colour not in PAD_COLOURS:
        raise NodeError(f"colour={colour!r}: choose one of {', '.join(PAD_COLOURS)}")
    w, h = pad_fit_size(clip.width, clip.height, width, height)
    x, y = (width - w) // 2, (height - h) // 2

    def fitted(frames: np.ndarray, fill: float) -> np.ndarray:
        scaled = comfy_scaled(frames, w, h, method)
        if frames.dtype == np.uint8:
            fill = round(fill * 255)
        # a premultiplied RGBA float frame's bars are the colour, opaque
        value = [fill] * min(3, frames.shape[-1]) + [255 if frames.dtype == np.uint8 else 1.0] * (frames.shape[-1] - 3)
        out = np.empty((len(frames), height, width, frames.shape[-1]), frames.dtype)
        out[:] = np.asarray(value, frames.dtype)
        out[:, y:y + h, x:x + w] = scaled
        return out
    move = lambda f: fitted(f, PAD_COLOURS[colour])          # noqa: E731
    opaque = lambda f: fitted(f, 1.0)                          # noqa: E731
    return moved_float(clip.map(move, width, height).with_(matte=moved(clip.matte, opaque, width, height)), clip,
                       move)


FLIPS = ("horizontal", "vertical", "both")


def flip(clip: Clip, direction: str) -> Clip:
    if direction not in FLIPS:
        raise NodeError(f"direction={direction!r}: choose one of {', '.join(FLIPS)}")
    axes = {"horizontal": (2,), "vertical": (1,), "both": (1, 2)}[direction]

    def fn(frames: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.flip(frames, axes))
    return moved_float(clip.map(fn).with_(matte=moved(clip.matte, fn, clip.width, clip.height)), clip, fn)


def retimed_sound(clip: Clip, fps: float, tape: bool = False):
    """The clip's sound played as its frames are at `fps` (faster or slower than their own rate; None: none)."""
    if clip.audio is None or abs(clip.fps - fps) <= 1e-6 * fps:
        return clip.audio
    return clip.audio.warped([(0.0, clip.duration, clip.length / fps)], tape)


def sound_under(clip: Clip, idx) -> object:
    """The clip's sound under its frames played in the order `idx`: each run of frames stepping forwards plays
    its slice of sound forwards, a run stepping back plays it backwards (reverse, pingpong, repeat), and a frame
    held (repeated) is silent after its first showing. None where the clip has no sound."""
    if clip.audio is None or not len(idx):
        return None
    idx, step, segments, k = np.asarray(idx, np.int64), 1.0 / clip.fps, [], 0
    while k < len(idx):
        j, at = k + 1, int(idx[k])
        if k and at == idx[k - 1]:          # a held frame: silent while it repeats
            while j < len(idx) and idx[j] == at:
                j += 1
            segments.append((at * step, at * step, (j - k) * step))
        else:                               # a run of frames stepping one way (a lone frame: forwards)
            d = int(idx[j] - at) if j < len(idx) and abs(int(idx[j]) - at) == 1 else 1
            while j < len(idx) and idx[j] - idx[j - 1] == d:
                j += 1
            last = int(idx[j - 1])
            segments.append((at * step, (last + 1) * step, (j - k) * step) if d == 1
                            else ((at + 1) * step, last * step, (j - k) * step))
        k = j
    return clip.audio.warped(segments)


def ramped_sound(clip: Clip, offsets, fps: float):
    """The clip's sound under its frames spread out to output frames `offsets` at `fps` (a speed ramp: frame i
    shows at offsets[i], pair i lasting offsets[i+1] - offsets[i] frames), each pair's slice of sound played at
    its pictures' speed, as a tape; the last frame's for one frame at the first's own speed. None: none."""
    if clip.audio is None:
        return None
    src, out = 1.0 / clip.fps, 1.0 / fps
    segments = [(i * src, (i + 1) * src, (int(offsets[i + 1]) - int(offsets[i])) * out) for i in range(len(offsets) - 1)]
    last = (len(offsets) - 1) * src
    return clip.audio.warped(segments + [(last, last + out, out)], tape=True)


def change_fps(clip: Clip, fps: float, mode: str, sound: str = "tape") -> Clip:
    if mode == "retime":
        return clip.with_(fps=fps, audio=None if sound == "drop" else retimed_sound(clip, fps, sound == "tape"))
    # Frames last 1/fps each, as in ffmpeg's fps filter: 2 s at 24 fps stay 2 s at 48 (96 frames, not the 95
    # that counting frames as instants gave, which left the sound running past the pictures). Each new frame
    # shows the source frame on screen when it starts, so halving the rate keeps frames 0, 2, 4...
    ratio = clip.fps / fps
    n = max(1, int(np.floor(clip.length / ratio + 0.5)))
    idx = np.minimum(np.floor(np.arange(n) * ratio + 1e-6).astype(np.int64), clip.length - 1)
    return take(clip, idx, fps, clip.audio, clip.timecode)
