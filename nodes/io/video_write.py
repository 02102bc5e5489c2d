"""Encoding Clips with the ffmpeg binary that imageio-ffmpeg ships, chunk by chunk through a pipe.

Output goes to a temporary name beside the target and is renamed only when complete, so a
cancel or a crash never leaves a half-written file under the final name. Frames are sRGB
and tagged BT.709 (TV range for YUV codecs) so players show the colours we computed."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from queue import Queue
from typing import Callable, Iterator, Optional

import numpy as np

from graph_engine import Clip, NodeError
from graph_engine.atomic import folder_removed, held_temporary
from .mixdown import sound_args

CODECS = ("h264", "h265", "vp9", "av1", "prores", "dnxhr", "ffv1", "gif", "webp", "png")
CONTAINERS = {"h264": ".mp4", "h265": ".mp4", "vp9": ".webm", "av1": ".mp4", "prores": ".mov", "dnxhr": ".mov", "ffv1": ".mkv",
              "gif": ".gif", "webp": ".webp", "png": ".apng"}
# What each file type Kinograph writes video into can hold (as the bundled ffmpeg muxes it).
# The gif, webp and png encoders are chosen by the file type alone, so a mismatch would not fail
# but silently write something else (codec gif into .mp4 made an H.264 file).
HOLDS = {".mp4": ("h264", "h265", "vp9", "av1", "ffv1"), ".m4v": ("h264",),
         ".mov": ("h264", "h265", "prores", "dnxhr", "ffv1"),
         ".mkv": ("h264", "h265", "vp9", "av1", "prores", "dnxhr", "ffv1"),
         ".webm": ("vp9", "av1"), ".mxf": ("dnxhr", "prores", "ffv1"),
         ".avi": ("h264", "h265", "vp9", "av1", "prores", "ffv1"),
         ".ts": ("h264", "h265"), ".gif": ("gif",), ".webp": ("webp",), ".apng": ("png",)}
# What `codec: auto` writes into each file type (h264 for any other): what a player or editor opening that name
# expects, as ffmpeg itself picks by the name. With h264 as the default, out.webm or out.gif failed on a codec
# the user had never chosen.
BY_NAME = {".webm": "vp9", ".gif": "gif", ".webp": "webp", ".apng": "png", ".mxf": "dnxhr"}


def codec_for(path, codec: str) -> str:
    """`codec`, or for "auto" the codec a file named `path` usually holds."""
    return BY_NAME.get(Path(str(path)).suffix.lower(), "h264") if codec == "auto" else codec


_BT709 = ["-colorspace", "bt709", "-color_range", "tv"]
# Codecs that keep a clip's transparency (Clip.matte), all as straight (unpremultiplied) colour beside the
# alpha, as their players and editors composite them: ProRes 4444 (Apple's ProRes keeps straight colour),
# VP9 with alpha (browsers), FFV1 (lossless), animated PNG and WebP.
ALPHA_CODECS = ("prores", "vp9", "ffv1", "png", "webp")
# Codecs fed 16-bit RGB(A) from a plate's float pixels (Clip.linear) where the clip carries them: ProRes holds
# 10 bits (its alpha 16) and FFV1 16, and fed 8 they banded a 10-bit or EXR plate's gradients in 8-bit steps.
DEEP_CODECS = ("prores", "ffv1")
# Of those, the ones whose colour is shared between neighbours (4:2:0): transparent pixels get the edge's colour.
LOSSY_ALPHA = ("vp9", "webp")
# The primaries and transfer are said of the frames coming in: ffmpeg 8 and later take an encoder's colour tags
# from its frames, and -color_primaries/-color_trc given for the output were dropped (every render was tagged
# bt709/unknown/unknown, which QuickTime, Safari and editors show with a gamma of their own choosing).
_SRGB_IN = ["-color_primaries", "bt709", "-color_trc", "bt709"]


def ffmpeg_exe() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


# Codecs whose 4:2:0 / 4:2:2 pictures take even sizes only: codec_args pads an odd side with a black row or column.
EVEN_CODECS = ("h264", "h265", "vp9", "av1", "dnxhr")


def codec_args(codec: str, crf: int, fps: float, alpha: bool = False, deep: bool = False) -> list:
    """ffmpeg's output options for `codec`; alpha: the frames come as RGBA (ALPHA_CODECS keep it)."""
    even = ["-vf", f"pad=ceil(iw/2)*2:ceil(ih/2)*2{':color=black@0' if alpha else ''},"
                   f"scale=out_color_matrix=bt709:out_range=tv"]
    if codec == "h264":
        return even + ["-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", "yuv420p"] + _BT709
    if codec == "h265":
        return even + ["-c:v", "libx265", "-crf", str(crf), "-pix_fmt", "yuv420p", "-tag:v", "hvc1",
                       "-x265-params", "log-level=error"] + _BT709
    if codec == "vp9":      # yuva420p: WebM's alpha (alpha_mode), as browsers and Kinograph read it
        return even + ["-c:v", "libvpx-vp9", "-crf", str(crf), "-b:v", "0", "-pix_fmt",
                       "yuva420p" if alpha else "yuv420p", "-row-mt", "1"] + _BT709
    if codec == "av1":
        return even + ["-c:v", "libsvtav1", "-crf", str(crf), "-pix_fmt", "yuv420p"] + _BT709
    if codec == "prores":   # HQ, or 4444 with a 16-bit alpha for a clip with transparency
        if alpha:
            return ["-c:v", "prores_ks", "-profile:v", "4", "-pix_fmt", "yuva444p10le", "-alpha_bits", "16"] + _BT709
        return ["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le"] + _BT709
    if codec == "dnxhr":      # DNxHR HQ, 8-bit 4:2:2: what Avid (in .mxf) and Premiere edit natively
        return even + ["-c:v", "dnxhd", "-profile:v", "dnxhr_hq", "-pix_fmt", "yuv422p"] + _BT709
    if codec == "ffv1":
        fmt = ("gbrap16le" if alpha else "gbrp16le") if deep else "bgra" if alpha else "rgb24"
        return ["-c:v", "ffv1", "-level", "3", "-pix_fmt", fmt]
    if codec == "gif":
        return ["-filter_complex", "[0:v]split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=sierra2_4a",
                "-loop", "0"]
    if codec == "webp":
        return ["-c:v", "libwebp_anim", "-lossless", "0", "-quality", str(max(0, 100 - 2 * crf)), "-loop", "0"] + \
            (["-pix_fmt", "yuva420p"] if alpha else [])
    if codec == "png":
        return ["-c:v", "apng", "-plays", "0"] + (["-pix_fmt", "rgba"] if alpha else [])
    raise NodeError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")


@contextmanager
def metadata_file(workflow_yaml: str, beside: Path) -> Iterator[str]:
    """The workflow as an FFMETADATA file, while ffmpeg reads it: metadata of any size reaches the muxer without argv's
    128 KiB-per-argument limit. A hidden temporary beside the output `beside` (as the output's own is), held by this
    writer: one in /tmp stayed there for ever, the whole workflow in each, where the writer was killed outright (kill
    -9, the OOM killer, a preempted farm node); the next write into that folder removes it
    (graph_engine.atomic.remove_abandoned)."""
    esc = workflow_yaml
    for ch in ("\\", "=", ";", "#", "\n"):
        esc = esc.replace(ch, "\\" + ch)
    fd, path, _ = held_temporary(beside, ".txt")
    try:
        with open(fd, "w", encoding="utf-8", closefd=False) as f:
            f.write(f";FFMETADATA1\nkinograph_workflow={esc}\n")
        yield str(path)
    finally:
        os.close(fd)        # before the unlink: Windows removes no open file
        path.unlink(missing_ok=True)


def write_video(clip: Clip, path: str, *, fps: float = 0.0, codec: str = "h264", crf: int = 19,
                workflow_yaml: str = "", keep_audio: bool = True, overwrite: bool = False,
                progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """Encode the clip to `path`; returns {"path", "frames", "bytes"}, and "earlier_take": where the render it
    replaced is kept (graph_engine.takes), when it kept one."""
    from graph_engine.atomic import atomic_output
    if clip.length == 0:
        raise NodeError("the clip has no frames to write")
    final = Path(path)
    why = container_problem(final, codec) or _size_problem(final, codec, clip.width, clip.height) or \
        (_sound_problem(final, clip) if keep_audio and codec not in ("gif", "webp", "png") else None)
    if why:
        raise NodeError(why)
    kept: list = []
    with atomic_output(final, overwrite=overwrite, suffix=final.suffix or CONTAINERS[codec], takes=kept) as tmp:
        with metadata_file(workflow_yaml, final) if workflow_yaml and codec not in ("gif", "webp", "png") else \
                nullcontext() as meta:
            _encode(clip, tmp, final.name, fps, codec, crf, meta, keep_audio, progress)
    info = {"path": str(final), "frames": clip.length, "bytes": final.stat().st_size}
    return {**info, "earlier_take": str(kept[0])} if kept else info


def _sound_problem(final: Path, clip: Clip) -> Optional[str]:
    """Why the sound a clip carries cannot go out with it (its file since moved, damaged), asked before a frame is
    computed: ffmpeg said so only when the pictures came, as 'could not write ... with codec h264: Error opening
    input' after the first chunk of what may be an hour's work."""
    if clip.audio is None:
        return None
    from .sound import sound_problem
    for path in dict.fromkeys(p.path for track in clip.audio.tracks() for p in track if p.path):
        why = sound_problem(path)
        if why:
            return f"cannot write {final.name} with its sound: {why} (or turn keep_audio off to write it silent)"
    return None


def _failure(name: str, folder: Path, codec: str, err: str, code: int) -> str:
    """Why ffmpeg could not write `name`, in words that say what to do: its own stderr is a page of
    muxer errors for a full disk, and nothing at all when the file size limit (SIGXFSZ) kills it."""
    if "No space left on device" in err:
        from graph_engine.takes import on_full_disk
        return (f"the disk holding {folder} is full: {name} was not written. Free some space there or write "
                f"it elsewhere (another `path` on the node){on_full_disk(folder)}")
    if "File too large" in err or code == -getattr(signal, "SIGXFSZ", 0):
        return (f"{name} grew past the largest file this process may write (`ulimit -f`, or the largest file "
                f"the filesystem of {folder} holds): raise the limit, or write it elsewhere")
    if not folder.is_dir():
        return folder_removed(folder / name)
    if code < 0 and not err.strip():
        what = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
        return f"ffmpeg was stopped by {what} while writing {name} ({codec}); nothing was written"
    return f"ffmpeg could not write {name} with codec {codec}: {err.strip()[-500:]}"


def _or(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def container_problem(final: Path, codec: str) -> Optional[str]:
    """Why `final`'s file type cannot hold `codec` (and what to name it instead), or None.
    Checked before any frame is pulled, so an hour of upstream work is not spent on it."""
    ext = final.suffix.lower()
    if not ext or codec not in CONTAINERS:
        return None         # no extension: the codec's own file type; an unknown codec says so itself
    own = CONTAINERS[codec]
    from .images import IMAGE_EXTS
    if ext in IMAGE_EXTS and ext not in HOLDS:       # .webp holds animation too
        return (f"{final} is a still-image name: io.save_frames writes one PNG per frame, io.save_image a "
                f"single image; for a video name it {own}")
    if ext in HOLDS:
        if codec in HOLDS[ext]:
            return None
        return (f"cannot write {codec} video into {final}: a {ext} file takes codec {_or(HOLDS[ext])}; "
                f"for {codec} name the file {own}")
    if codec in ("gif", "webp", "png") or ext[1:] not in _ffmpeg_suffixes():
        return f"cannot write {final}: ffmpeg knows no {ext} file: name it {own}"
    return None


def _size_problem(final: Path, codec: str, width: int, height: int) -> Optional[str]:
    """Why `codec` cannot take frames this small (before any frame is pulled), or None."""
    if codec == "dnxhr" and (width < 256 or height < 120):
        return (f"cannot write {final.name} as DNxHR: its frames are {width}x{height} and DNxHR takes 256x120 or "
                f"larger. Enlarge them first (video.resize or upscale) or write codec prores, which takes any size")
    return None


def _ffmpeg_suffixes() -> set:
    import av
    out = set()
    for name in av.formats_available:
        fmt = av.ContainerFormat(name)
        if fmt.is_output:
            out |= set(fmt.extensions)
    return out


def _rate(fps: float) -> str:
    """The frame rate as ffmpeg should store it: NTSC rates as the fractions they are. As decimals
    ("29.970030") they became a rate of 979001/32666 and a time base of 1/979001, which editing software
    shows as an odd, slightly-off rate."""
    from fractions import Fraction
    exact = Fraction(fps).limit_denominator(1001)
    return f"{exact.numerator}/{exact.denominator}" if abs(float(exact) - fps) < 1e-6 * fps else f"{fps:.6f}"


def _audio_codec(codec: str, suffix: str) -> str:
    """The sound's codec: uncompressed beside an intermediate (ProRes, DNxHR, FFV1) in a MOV or MKV, as editors take
    it (AAC there was a second lossy generation under a picture kept near-lossless); Opus in WebM; else AAC.
    24-bit, as cameras and recorders make it: 16-bit cut a 24-bit take's quiet detail under the picture kept
    near-lossless, and the joined clips' sound (mixed as floats) too."""
    if codec in ("prores", "dnxhr", "ffv1") and suffix.lower() in (".mov", ".mkv", ".mxf"):
        return "pcm_s24le"
    return "libopus" if suffix.lower() == ".webm" or codec == "vp9" else "aac"


def _deep_chunks(clip: Clip, alpha: bool):
    """(first frame, 16-bit sRGB-coded RGB(A) frames) of the clip's float pixels (Clip.linear), chunk by chunk.
    alpha: straight colour beside the alpha, as the codecs keep it: the float pixels' own alpha (premultiplied),
    or the matte given to colour that has none (video.matte); without, the colour over black."""
    from nodes.common.color import linear_to_srgb16
    for a in range(0, clip.length, clip.chunk):
        b = min(clip.length, a + clip.chunk)
        floats = np.asarray(clip.linear(a, b), np.float32)
        rgb = floats[..., :3]       # NaN and infinities: linear_to_srgb16 makes them black and white
        if not alpha:
            yield a, linear_to_srgb16(rgb).astype("<u2", copy=False)      # rgb48le
            continue
        if floats.shape[-1] == 4:
            cover = np.clip(np.nan_to_num(floats[..., 3:]), 0.0, 1.0)
            rgb = np.where(cover > 0, rgb / np.where(cover > 0, cover, 1.0), 0.0)
        else:
            cover = clip.matte.frames(a, b).astype(np.float32) / 255.0
        yield a, np.concatenate([linear_to_srgb16(rgb), (cover * 65535.0 + 0.5).astype(np.uint16)], -1
                                ).astype("<u2", copy=False)


def _encode(clip: Clip, tmp: Path, name: str, fps: float, codec: str, crf: int, meta: Optional[str],
            keep_audio: bool, progress) -> None:
    rate = fps or clip.fps
    alpha = clip.matte is not None and codec in ALPHA_CODECS
    deep = clip.linear is not None and codec in DEEP_CODECS
    cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo",
           "-pix_fmt", ("rgba64le" if alpha else "rgb48le") if deep else "rgba" if alpha else "rgb24", *_SRGB_IN,
           "-s", f"{clip.width}x{clip.height}", "-r", _rate(rate), "-i", "-"]
    audio = clip.audio if keep_audio and codec not in ("gif", "webp", "png") else None
    inputs = 1
    sound: list = []
    if audio is not None:
        # Each piece of the sound through a filter graph (nodes/io/mixdown), cut to the pictures' length there,
        # not with `-shortest`, which ended the file with the shorter stream: a sound that stops before the
        # pictures cut the video there, and at 29.97 or 23.976 fps it dropped the last frame.
        graph = sound_args(audio, clip.length / rate, 1)
        if graph is not None:
            cmd += graph[0]
            inputs += graph[2]
            sound = ["-filter_complex", graph[1], "-map", "0:v:0", "-map", "[sound]"]
    if meta:
        cmd += ["-f", "ffmetadata", "-i", meta, "-map_metadata", str(inputs)]
    if sound:
        cmd += sound + ["-c:a", _audio_codec(codec, tmp.suffix)]
        if tmp.suffix.lower() == ".mxf":
            cmd += ["-ar", "48000"]     # the only rate MXF holds ("only 48khz is implemented")
    if clip.timecode is not None and codec not in ("gif", "webp", "png"):
        # The source's timecode, so an editor conforming the cut finds the render where the plate was.
        cmd += ["-timecode", clip.timecode.at(rate).label()]
    cmd += codec_args(codec, crf, rate, alpha, deep)
    if tmp.suffix.lower() in (".mp4", ".mov"):
        # faststart: the index before the pictures, so a browser plays a web upload while it loads (without
        # the workflow to embed it was left at the end, and the page waited for the whole file).
        cmd += ["-movflags", "+use_metadata_tags+faststart" if meta else "+faststart"]
    if tmp.suffix.lower() in (".mkv", ".webm"):
        # Matroska stamps a random segment id and the date into every file: the same render twice made two
        # different files, so an unchanged re-run was kept as a new take (graph_engine.takes) for ever.
        cmd += ["-fflags", "+bitexact"]
    cmd += [str(tmp)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    done = False
    # A feeder thread writes to the pipe while this thread computes the next chunk, so
    # decoding/processing and encoding overlap (the pipe write releases the GIL).
    queue: "Queue" = Queue(maxsize=2)
    feeder_error: list = []

    def feed():
        try:
            while True:
                block = queue.get()
                if block is None:
                    break
                proc.stdin.write(memoryview(block).cast("B"))
        except (BrokenPipeError, OSError) as e:
            feeder_error.append(e)
            while queue.get() is not None:      # drain so the producer never blocks forever
                pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        try:
            for a, block in (_deep_chunks(clip, alpha) if deep else clip.chunks()):
                if feeder_error:        # ffmpeg has stopped: computing the rest of the clip would be for nothing
                    break
                if alpha and not deep:       # straight colour beside the alpha, as these codecs keep it
                    from nodes.common.alpha import straight_rgba
                    block = straight_rgba(block, clip.matte.frames(a, a + len(block)), bleed=codec in LOSSY_ALPHA)
                queue.put(np.ascontiguousarray(block))
                if progress:
                    progress(a + len(block), clip.length)
        finally:
            queue.put(None)
            feeder.join()
        err = proc.stderr.read().decode(errors="replace")
        code = proc.wait()
        if code != 0 or feeder_error:
            raise NodeError(_failure(name, tmp.parent, codec, err, code))
        done = True
    finally:
        if not done:
            proc.kill()
            proc.wait()
