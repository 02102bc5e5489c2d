"""A song (or another file's sound) laid under a clip. The file is read with PyAV when the node runs, so a
damaged, silent or unsupported one is named then, not after a render's frames have all been computed."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from graph_engine import Audio, Clip, NodeError

FIT = ("clip", "song")
REDO = "export it again as WAV, FLAC or MP3"


def clock(seconds: float) -> str:
    """1:02.50 for 62.5 s: the way a song's times are read off a player."""
    m, s = divmod(max(0.0, seconds), 60.0)
    return f"{int(m)}:{s:05.2f}"


def sound_problem(path: str) -> Optional[str]:
    """Why `path` gives no sound ffmpeg can play (missing, not media, no sound track, a codec it cannot
    decode), or None. Opens the file only: cheap enough to ask before a render."""
    import av
    p = Path(path)
    if not p.is_file():
        return f"the sound file {path} is not there (moved or deleted?): put it back, or give another"
    try:
        with av.open(str(p)) as c:
            if not c.streams.audio:
                return f"{p.name} holds no sound (no audio stream): give a song (WAV, MP3, FLAC, M4A) or a video with sound"
            s = c.streams.audio[0]
            if s.codec_context is None or not s.codec_context.name:
                return f"{p.name}: its sound is in a codec this ffmpeg cannot decode: {REDO}"
    except av.FFmpegError as e:
        return f"{p.name} cannot be read as sound ({_reason(e)}): the file is damaged, cut short or not audio; {REDO}"
    return None


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)


def sound_length(path: str) -> float:
    """Seconds of sound in `path`, counted by decoding it (an MP3's header states only an estimate).
    Raises NodeError naming what is wrong with the file."""
    import av
    why = sound_problem(path)
    if why:
        raise NodeError(why)
    name, samples, rate = Path(path).name, 0, 0
    try:
        with av.open(str(path)) as c:
            s = c.streams.audio[0]
            for frame in c.decode(s):
                samples += frame.samples
                rate = frame.sample_rate or rate
    except av.FFmpegError as e:
        heard = f" after {clock(samples / rate)}" if rate else ""
        raise NodeError(f"{name}: its sound stops decoding{heard} ({_reason(e)}): the file is damaged or cut "
                        f"short; {REDO}") from None
    if not samples or not rate:
        raise NodeError(f"{name} holds a sound track with no sound in it (0 samples): {REDO}")
    return samples / rate


def with_song(clip: Clip, path: str, offset: float, fit: str, log: Callable[[str], None]) -> Clip:
    """`clip` with the sound of `path` from `offset` seconds under it. fit clip: the pictures keep their
    length (the song is cut to them, silence after a shorter one); fit song: the pictures are cut to the song,
    or their last frame held until it ends."""
    from nodes.video import edit
    if fit not in FIT:
        raise NodeError(f"fit={fit!r}: choose one of {', '.join(FIT)}")
    name, total = Path(path).name, sound_length(path)
    if offset >= total:
        raise NodeError(f"offset {offset:g} s is past the end of {name} ({clock(total)} of sound): give an offset "
                        f"below {total:.2f}")
    left = total - offset
    if clip.audio is not None:
        log(f"the clip's own sound is replaced by {name}")
    if fit == "song":
        frames = max(1, int(round(left * clip.fps)))
        if frames <= clip.length:
            if frames < clip.length:
                log(f"the clip is cut to the song: {frames} of its {clip.length} frames ({clock(left)} of {name})")
            clip = edit.trim(clip, 0, frames)
        else:
            log(f"{name} plays {left - clip.duration:.2f} s past the clip's {clip.length} frames: the last frame "
                f"is held until it ends ({frames} frames)")
            clip = edit.take(clip, np.minimum(np.arange(frames), clip.length - 1), clip.fps,
                             timecode=clip.timecode)
    elif left < clip.duration - 0.5 / clip.fps:
        log(f"{name} ends {clip.duration - left:.2f} s before the clip (it has {clock(left)} from offset "
            f"{offset:g} s): silence after it; fit song cuts the clip to the song instead")
    return clip.with_(audio=Audio(str(path), float(offset), min(left, clip.duration)))
