"""The ffmpeg inputs and filter graph that play a clip's sound (graph_engine.Audio) under its pictures: each
piece cut from its file, played backwards, faster or slower, louder or quieter, the pieces of a track one after
another and the tracks mixed. The output keeps the sources' format: mono clips joined stay mono, and the rate
is the highest of theirs (44.1 kHz with 48 kHz gives 48 kHz), where every join was made 48 kHz stereo."""
from __future__ import annotations

from typing import Optional

# atempo takes 0.5 to 100 in one pass; slower is several passes (0.25 = 0.5 x 0.5), as ffmpeg's manual does it.
ATEMPO_MIN, ATEMPO_MAX = 0.5, 100.0
# Seconds decoded before a span's start and cut off: an MP3 entered by seeking decodes its first frame without
# the one before it, and a beep 50 ms into a song laid from there sounded 12 ms late, its start lost.
PREROLL = 0.1
# Seconds over which a piece fades in and out where it meets another sound (a cut between clips), as a DAW's
# auto-fades do: a hard cut in a held tone or room sound jumped 0.17 in one sample (a click at every join).
# Pieces that carry on from each other (a speed ramp, pingpong's turn) meet without one.
FADE = 0.004


def source_format(paths) -> tuple:
    """(sample rate, channel layout, the mono files) that holds the sound of every file in `paths`: the highest
    rate, and the layout of the one with the most channels (mono files stay mono). 48 kHz stereo when none can be
    read."""
    import av
    rate, layout, channels, mono = 0, "stereo", 0, set()
    for path in dict.fromkeys(p for p in paths if p):
        try:
            with av.open(path) as c:
                s = c.streams.audio[0].codec_context
                rate = max(rate, s.sample_rate or 0)
                if s.channels == 1:
                    mono.add(path)
                if s.channels > channels:     # a WAV without a channel mask names its layout "1 channels"
                    channels = s.channels
                    layout = s.layout.name if "channels" not in s.layout.name else (
                        {1: "mono", 2: "stereo"}.get(channels, f"{channels}c"))
        except (OSError, IndexError, ValueError):
            continue        # named by the writer's check before anything renders (video_write._sound_problem)
    return rate or 48000, layout if channels else "stereo", mono


def tempo(speed: float) -> str:
    """atempo filters that change the tempo by `speed` (above 0) and keep the pitch."""
    out = []
    while speed < ATEMPO_MIN - 1e-9:
        out.append(ATEMPO_MIN)
        speed /= ATEMPO_MIN
    while speed > ATEMPO_MAX + 1e-9:
        out.append(ATEMPO_MAX)
        speed /= ATEMPO_MAX
    return ",".join(f"atempo={s:.9g}" for s in [*out, speed])


def _chain(piece, rate: int, layout: str, preroll: float, fades: tuple, mono: bool = False) -> str:
    """The filters after input's own: the source span made exact (its `preroll` cut off), turned round, played
    at its speed, held to the piece's length (so the next piece starts on its picture), faded in and out over
    FADE where `fades` says it meets another sound, and set to its gain. A `mono` file in a stereo mix is heard
    on both sides at its own level, as a player plays it (ffmpeg's own upmix puts it 3 dB down on each)."""
    speed = abs(piece.speed)
    span = piece.duration * speed
    # Starting with the first picture, silence filling a gap: an MP3 or AAC track starts a few ms late (the
    # encoder's delay), which MP4 and MOV state but MXF cannot, so a DNxHR render's sound played 52 ms early.
    out = ["pan=stereo|c0=c0|c1=c0"] if mono and layout == "stereo" else []
    out += [f"aresample={rate}:async=1:first_pts=0", f"aformat=sample_fmts=fltp:channel_layouts={layout}"]
    if preroll:
        out += [f"atrim=start={preroll:.6f}", "asetpts=PTS-STARTPTS"]
    out += [f"apad=whole_dur={span:.6f}", f"atrim=duration={span:.6f}"]
    if piece.path and piece.speed < 0:
        out.append("areverse")
    if piece.path and abs(speed - 1.0) > 1e-9:
        # tape: the samples played at another rate (the pitch follows); else the tempo changes, the pitch not.
        out += [f"asetrate={max(1, round(rate * speed))}", f"aresample={rate}"] if piece.tape else [tempo(speed)]
    out += [f"apad=whole_dur={piece.duration:.6f}", f"atrim=duration={piece.duration:.6f}"]
    fade = min(FADE, piece.duration / 2)
    if piece.path and fades[0]:
        out.append(f"afade=t=in:d={fade:.6f}:curve=hsin")
    if piece.path and fades[1]:
        out.append(f"afade=t=out:st={piece.duration - fade:.6f}:d={fade:.6f}:curve=hsin")
    if piece.path and piece.gain:
        out.append(f"volume={piece.gain:.4g}dB")
    return ",".join(out)


def sound_args(audio, seconds: float, first_input: int) -> Optional[tuple]:
    """(ffmpeg input arguments, -filter_complex graph ending in [sound], inputs used) for `seconds` of `audio`,
    its inputs numbered from `first_input`; None when nothing of it sounds in that time."""
    from graph_engine.clip import padded
    audio = audio.span(0.0, seconds)
    if audio is None:
        return None
    tracks = [padded(track, seconds) for track in audio.tracks()]
    rate, layout, mono = source_format(p.path for track in tracks for p in track)
    args, chains, k = [], [], first_input
    for j, track in enumerate(tracks):
        for i, p in enumerate(track):
            lo = max(0.0, p.start if p.speed >= 0 else p.start + p.duration * p.speed)
            preroll = min(lo, PREROLL) if p.path else 0.0
            if p.path:
                args += ["-ss", f"{lo - preroll:.6f}", "-t", f"{preroll + p.duration * abs(p.speed):.6f}", "-i", p.path]
            else:
                args += ["-f", "lavfi", "-t", f"{p.duration:.6f}", "-i", f"anullsrc=r={rate}:cl={layout}"]
            fades = (i > 0 and not _continues(track[i - 1], p), i + 1 < len(track) and not _continues(p, track[i + 1]))
            chains.append(f"[{k}:a:0]{_chain(p, rate, layout, preroll, fades, p.path in mono)}[t{j}p{i}]")
            k += 1
        chains.append("".join(f"[t{j}p{i}]" for i in range(len(track)))
                      + f"concat=n={len(track)}:v=0:a=1[t{j}]")
    if len(tracks) == 1:
        chains[-1] = chains[-1][:-len("[t0]")] + "[sound]"
    else:       # summed as they are (normalize=0): each track's level is its pieces' gain
        chains.append("".join(f"[t{j}]" for j in range(len(tracks)))
                      + f"amix=inputs={len(tracks)}:normalize=0:duration=longest[sound]")
    return args, ";".join(chains), k - first_input



def _continues(a, b) -> bool:
    """Whether piece `b` starts in its file where `a` stops (its sound goes on without a cut)."""
    return a.path == b.path and abs(a.start + a.duration * a.speed - b.start) < 1e-3
