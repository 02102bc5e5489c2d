"""A sound (graph_engine.Audio: spans of files, joined and mixed) written as a file of its own, as ComfyUI's
SaveAudio, SaveAudioMP3, SaveAudioOpus and SaveAudioAdvanced write theirs: FLAC (16-bit) lossless, MP3 at V0 or a
bit rate, Opus at a bit rate, or WAV."""
from __future__ import annotations

import subprocess
from contextlib import nullcontext
from pathlib import Path

from graph_engine import NodeError

# file type -> ffmpeg's encoder
AUDIO_CODECS = {".flac": "flac", ".mp3": "libmp3lame", ".opus": "libopus", ".wav": "pcm_s16le"}
# V0: LAME's best variable rate (ComfyUI's qscale, ffmpeg's -q:a 0); the others a constant bit rate
QUALITIES = ("V0", "64k", "96k", "128k", "192k", "256k", "320k")
# the rates Opus codes at; ComfyUI resamples to the first at or above the sound's, else 48 kHz
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def audio_name(path) -> str | None:
    """Why `path` is no sound file this writer makes (None: it is one)."""
    suffix = Path(str(path)).suffix.lower()
    if suffix in AUDIO_CODECS or not str(path).strip():
        return None
    kind = f"is not a sound type Kinograph writes ({suffix})" if suffix else "has no file type"
    return f"{path!r} {kind}: name it .flac (lossless), .mp3, .opus or .wav"


def quality_args(suffix: str, quality: str) -> list:
    if quality not in QUALITIES:
        raise NodeError(f"quality={quality!r}: choose one of {', '.join(QUALITIES)}")
    if suffix == ".flac":
        # 16-bit, as ComfyUI's (PyAV's flac stream takes s16); the mixdown's float would otherwise make it 24-bit
        return ["-sample_fmt", "s16"]
    if suffix == ".wav":
        return []
    if quality == "V0":
        if suffix == ".opus":
            raise NodeError("quality V0 is MP3's variable rate: give an Opus file a bit rate (64k to 320k; ComfyUI's "
                            "default is 128k)")
        return ["-q:a", "0"]
    return ["-b:a", quality]


def write_audio(audio, path: str, quality: str = "V0", workflow_yaml: str = "", overwrite: bool = False) -> dict:
    """Write `audio` to `path` (its type by the name); returns {"path", "seconds", "bytes"} and "earlier_take" where
    the file it replaced is kept (graph_engine.takes)."""
    from graph_engine.atomic import atomic_output
    from .mixdown import sound_args, source_format
    from .sound import length, sound_problem
    from .video_write import ffmpeg_exe, metadata_file
    final = Path(path)
    suffix = final.suffix.lower()
    why = audio_name(final) or ("give the sound file a name" if not str(path).strip() else None)
    if why:
        raise NodeError(why)
    extra = quality_args(suffix, quality)
    for src in dict.fromkeys(p.path for track in audio.tracks() for p in track if p.path):
        why = sound_problem(src)
        if why:
            raise NodeError(f"cannot write {final.name}: {why}")
    seconds = length(audio)
    graph = sound_args(audio, seconds, 0) if seconds > 0 else None
    if graph is None:
        raise NodeError(f"cannot write {final.name}: the sound is empty (0 seconds)")
    if suffix == ".opus":
        rate = source_format(p.path for track in audio.tracks() for p in track)[0]
        extra += ["-ar", str(next((r for r in OPUS_RATES if r >= rate), 48000))]
    kept: list = []
    with atomic_output(final, overwrite=overwrite, takes=kept) as tmp, \
            metadata_file(workflow_yaml, final) if workflow_yaml and suffix != ".wav" else nullcontext() as meta:
        cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", *graph[0]]
        if meta:
            cmd += ["-f", "ffmetadata", "-i", meta, "-map_metadata", str(graph[2])]
        cmd += ["-filter_complex", graph[1], "-map", "[sound]", "-c:a", AUDIO_CODECS[suffix], *extra, str(tmp)]
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if done.returncode:
            err = done.stderr.strip().replace(str(tmp), final.name)
            raise NodeError(f"could not write {final.name}: {err.splitlines()[-1] if err else done.returncode}")
    info = {"path": str(final), "seconds": round(seconds, 3), "bytes": final.stat().st_size}
    return {**info, "earlier_take": str(kept[0])} if kept else info
