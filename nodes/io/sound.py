"""A song (or another file's sound) laid under a clip. The file is read with PyAV when the node runs, so a
damaged, silent or unsupported one is named then, not after a render's frames have all been computed."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from graph_engine import Audio, Clip, NodeError, Piece
from graph_engine.clip import sequence

FIT = ("clip", "song")
ANALYSIS_RATE = 11025       # what beats are found in: a kick's or snare's rise is well under 5 ms at it
REDO = "export it again as WAV, FLAC or MP3"
# Sample rates a sound file may state: 8 kHz telephone sound is the lowest in use, 768 kHz the highest studio rate.
# A 200 KB WAV stating 1 Hz plays 28 hours, read at ANALYSIS_RATE into 4 GB; one stating 20 MHz made the writer's mix
# of it with any other sound 20 MHz, its hours of samples written out at that rate.
RATES = (1000, 768000)
# The longest sound read into memory (io.load_audio, io.add_audio, the speech and sound encoders): a feature's
# soundtrack. Samples are counted as they are decoded, so a file stating a shorter length, or a compressed hour of
# silence, is stopped there (3 h at ANALYSIS_RATE is 476 MB).
MAX_SECONDS = 3 * 3600


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
            rate = s.codec_context.sample_rate or 0
            if not RATES[0] <= rate <= RATES[1]:
                return (f"{p.name} states a sample rate of {rate:,} Hz, where sound is recorded at {RATES[0]:,} to "
                        f"{RATES[1]:,}: the file is damaged or made to fill memory; {REDO}")
    except av.FFmpegError as e:
        return f"{p.name} cannot be read as sound ({_reason(e)}): the file is damaged, cut short or not audio; {REDO}"
    return None


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)


def decoded(path: str, resampler=None):
    """The frames of `path`'s first sound track as `resampler` makes them (lists; none without one), decoded one at
    a time, its leftover last; the file checked first (sound_problem). Counts the samples and stops past
    MAX_SECONDS, so what a caller keeps stays bounded whatever the file states. Yields (input samples, rate,
    frames); raises NodeError naming what is wrong."""
    import av
    why = sound_problem(path)
    if why:
        raise NodeError(why)
    name, samples, rate = Path(path).name, 0, 0
    try:
        with av.open(str(path)) as c:
            for frame in c.decode(c.streams.audio[0]):
                samples += frame.samples
                rate = frame.sample_rate or rate
                if rate and samples > MAX_SECONDS * rate:
                    raise NodeError(f"{name} plays longer than {MAX_SECONDS // 3600} hours: Kinograph reads sounds up "
                                    f"to that long; cut the part you need (ffmpeg -ss START -t SECONDS) and give it")
                yield samples, rate, resampler.resample(frame) if resampler else []
            yield samples, rate, resampler.resample(None) if resampler else []
    except av.FFmpegError as e:
        heard = f" after {clock(samples / rate)}" if rate else ""
        raise NodeError(f"{name}: its sound stops decoding{heard} ({_reason(e)}): the file is damaged or cut "
                        f"short; {REDO}") from None
    if not samples or not rate:
        raise NodeError(f"{name} holds a sound track with no sound in it (0 samples): {REDO}")


def read_sound(path: str, rate_out: int = ANALYSIS_RATE, mean: bool = False, keep: bool = True) -> tuple:
    """(seconds of sound in `path`, counted by decoding it, for an MP3's header states only an estimate; the
    sound as mono float samples at `rate_out`: ANALYSIS_RATE for beat_times; empty unless `keep`). `mean`: a
    stereo sound's mono is the mean of its two channels, as ComfyUI's speech encoders take it (ffmpeg's downmix
    adds them at 1/sqrt(2) each, 41% louder); more channels are mixed by ffmpeg either way. Raises NodeError
    naming what is wrong."""
    import av
    why = sound_problem(path)
    if why:
        raise NodeError(why)
    with av.open(str(path)) as c:
        stereo = mean and c.streams.audio[0].codec_context.channels == 2
    # Mixed to one channel by the resampler: PyAV's to_ndarray crashed the process on 8-channel (7.1) frames.
    down = None if not keep else av.AudioResampler(format="fltp", layout="stereo", rate=rate_out) if stereo else \
        av.AudioResampler(format="flt", layout="mono", rate=rate_out)
    samples, rate, mono = 0, 1, []
    for samples, rate, frames in decoded(path, down):
        mono += [f.to_ndarray().mean(0) if stereo else f.to_ndarray().reshape(-1) for f in frames]
    return samples / rate, np.concatenate(mono) if mono else np.zeros(0, np.float32)


def sound_span(path: str, start: float, duration: float) -> Audio:
    """The sound of `path` from `start` seconds for `duration` (0: to its end), checked to be there."""
    total, _ = read_sound(path, keep=False)
    if start >= total:
        raise NodeError(f"start {start:g} s is past the end of {Path(path).name} ({clock(total)} of sound): give a "
                        f"start below {total:.2f}")
    return Audio(str(path), float(start), min(duration, total - start) if duration > 0 else total - start)


def length(audio: Audio) -> float:
    """Seconds `audio` (io.load_audio's span, or spans joined) plays: its pieces' durations, which a span has."""
    return sum(p.duration for p in audio.pieces())


def trim(audio: Audio, start: float, duration: float) -> Audio:
    """`duration` seconds of `audio` from `start` (negative: from its end), as ComfyUI's TrimAudioDuration cuts a
    waveform: both rounded to samples at the first file's rate, the start held inside the sound, the end to it."""
    import av
    first = next((p.path for p in audio.pieces() if p.path), None)
    if first is None:
        raise NodeError("this sound is silence only: give a sound read from a file (io.load_audio)")
    why = sound_problem(first)
    if why:
        raise NodeError(why)
    with av.open(first) as c:
        rate = int(c.streams.audio[0].codec_context.sample_rate)
    total = int(round(length(audio) * rate))
    begin = total + int(round(start * rate)) if start < 0 else int(round(start * rate))
    begin = max(0, min(begin, total - 1))
    end = max(0, min(begin + int(round(duration * rate)), total))
    if begin >= end:
        raise NodeError(f"nothing to take: the sound lasts {clock(total / rate)} and the part asked for starts at "
                        f"{clock(begin / rate)} and lasts {duration:g} s; give a start inside the sound and a "
                        f"duration above 0")
    part = audio.span(begin / rate, (end - begin) / rate)
    if part is None:
        raise NodeError(f"the sound from {clock(begin / rate)} to {clock(end / rate)} is silence only: take another "
                        f"part")
    return part


def concat(first: Audio, second: Audio) -> Audio:
    """`second` played after `first` (ComfyUI's AudioConcat): each keeps its own file, rate and channels, the
    writer's resampler bringing them to one rate as it mixes them down."""
    return sequence([(first, length(first)), (second, length(second))])


def with_song(clip: Clip, path: str, offset: float, fit: str, log: Callable[[str], None],
              report: Callable[..., None] = lambda **values: None, at: int = 0, mix: bool = False,
              gain: float = 0.0, clip_gain: float = 0.0) -> Clip:
    """`clip` with the sound of `path` from `offset` seconds under it, coming in at the clip's frame `at`
    (silence before it, or with `mix` the clip's own sound, which then plays on under the song at `clip_gain`
    dB; the song at `gain` dB). fit clip: the pictures keep their length (the song is cut to them, silence after
    a shorter one); fit song: the pictures are cut to the song's end, or their last frame held until it ends.
    The song's tempo and the clip's frames its beats fall on go to `report` (bpm, beat_frames) and the log."""
    from nodes.video import edit
    if fit not in FIT:
        raise NodeError(f"fit={fit!r}: choose one of {', '.join(FIT)}")
    if at >= clip.length:
        raise NodeError(f"at={at} is past the clip's last frame ({clip.length} frames): give a frame below "
                        f"{clip.length}")
    name, (total, mono) = Path(path).name, read_sound(path)
    if offset >= total:
        raise NodeError(f"offset {offset:g} s is past the end of {name} ({clock(total)} of sound): give an offset "
                        f"below {total:.2f}")
    left, lead = total - offset, at / clip.fps
    if clip.audio is not None:
        log(f"the clip's own sound plays under {name} at {clip_gain:+g} dB" if mix
            else f"the clip's own sound is replaced by {name}" + (" (mix keeps it under the song)" if at else ""))
    if fit == "song":
        frames = at + max(1, int(round(left * clip.fps)))
        if frames <= clip.length:
            if frames < clip.length:
                log(f"the clip is cut to the song: {frames} of its {clip.length} frames ({clock(left)} of {name})")
            clip = edit.trim(clip, 0, frames)
        else:
            log(f"{name} plays {lead + left - clip.duration:.2f} s past the clip's {clip.length} frames: the last "
                f"frame is held until it ends ({frames} frames)")
            idx = np.minimum(np.arange(frames), clip.length - 1)
            clip = edit.take(clip, idx, clip.fps, edit.sound_under(clip, idx), timecode=clip.timecode)
    elif left < clip.duration - lead - 0.5 / clip.fps:
        log(f"{name} ends {clip.duration - lead - left:.2f} s before the clip (it has {clock(left)} from offset "
            f"{offset:g} s): silence after it; fit song cuts the clip to the song instead")
    _beats(clip, mono, offset, lead, name, log, report)
    song = [Piece("", 0.0, lead), Piece(str(path), float(offset), min(left, clip.duration - lead), gain=gain)]
    own = clip.audio.louder(clip_gain).tracks() if mix and clip.audio is not None else []
    return clip.with_(audio=Audio.joined(own[0], [*own[1:], song]) if own else Audio.joined(song))


def _beats(clip: Clip, mono: np.ndarray, offset: float, lead: float, name: str, log, report) -> None:
    """Report the song's tempo and the frames of the clip its beats fall on (a music video cuts on them); the
    song's `offset` s plays `lead` s into the clip."""
    from nodes.common.beats import beat_times
    bpm, times = beat_times(mono, ANALYSIS_RATE)
    frames = sorted({int(round((t - offset + lead) * clip.fps)) for t in times if offset - 0.5 / clip.fps <= t})
    frames = [f for f in frames if f < clip.length]
    report(bpm=round(bpm, 2), beat_frames=frames)
    if frames:
        shown = ", ".join(map(str, frames[:12])) + (", ..." if len(frames) > 12 else "")
        log(f"{name} keeps a beat of {bpm:.1f} BPM: it falls on frames {shown} of the clip ({len(frames)} in all, "
            f"listed as beat_frames in the report); cut on them with video.trim")
