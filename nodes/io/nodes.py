"""Input/output nodes: the public names other tools build workflows with."""
import os
from pathlib import PurePath
from typing import Optional

import numpy as np

from graph_engine import Input, Param, node
from graph_engine.types import AUDIO, IMAGE, MASK, VIDEO

from .audio_write import QUALITIES, audio_name
from .images import FRAME_FORMATS
from .video_read import DEINTERLACE

LAYER_HELP = ("EXR render pass to read instead of the picture: Depth, Mist, Normal, or a layer's name "
              "(ViewLayer.Depth); empty = the picture (Combined)")


@node("io.load_image", title="Load Image", category="Input/Output",
      outputs={"image": IMAGE, "alpha": MASK, "mask": MASK})
def load_image(ctx, path: str = Param("", kind="path", required=True, help="image file (png, jpg, webp, exr, dpx, ...)"),
               layer: str = Param("", help=LAYER_HELP)):
    """Read a still image as 8-bit RGB, and its transparency as a mask (alpha: 1 = opaque; all 1 when the file
    has none). `mask` is the other way round, 1 where the picture is transparent, as ComfyUI's LoadImage gives it:
    the part erased in an image editor (or ComfyUI's mask editor) is the region to inpaint. Transparent parts of
    the image are laid over black. With `layer`, a render pass of an EXR instead, as the control picture a
    ControlNet takes (see io.load_frames)."""
    from .images import deep, layer_reader, read_image_alpha
    if layer.strip():
        from .exr import world_normals_note
        rgb = layer_reader([path], layer)(path)
        if world_normals_note(layer):
            ctx.log(world_normals_note(layer))
        alpha = None
    else:
        rgb, alpha = read_image_alpha(path)
        if deep(path):
            # A 16-bit PNG went on as 8 bits and came out of a 16-bit writer so, with nothing said.
            ctx.log(f"{PurePath(path).name} holds more than 8 bits a channel: io.load_image reads it as 8-bit RGB (what the "
                    f"models take); to keep its depth through grading into a 16-bit TIFF or an EXR (io.save_frames) or "
                    f"ProRes, read it with io.load_frames (path: the file itself)")
    alpha = np.ones(rgb.shape[:2], np.float32) if alpha is None else alpha
    return {"image": rgb, "alpha": alpha, "mask": 1.0 - alpha}


def _one_video(params, sources):
    """A sequence (plates/shot.####.exr, Nuke's way) or a glob given where one video file goes: validate said ok, as
    the files are there, and the run failed on 'video file not found'. (A preflight, not the param's check: a check
    takes over the param's missing-file report.)"""
    from graph_engine.sequence import names_frames
    name = PurePath(str(params["path"])).name
    # A file of exactly that name is the video ('take #2.mp4'), as a sequence's pattern counts it (sequence_files)
    if (names_frames(name) or "*" in name or "?" in name) and not os.path.lexists(str(params["path"])):
        yield "path", (f"{name!r} names an image sequence; io.load_video reads one video file: read the sequence "
                       f"with io.load_frames")


@node("io.load_video", title="Load Video", category="Input/Output", preflight=_one_video)
def load_video(ctx, path: str = Param("", kind="path", required=True, help="video file (mp4, mov, mkv, webm, ...)"),
               start: int = Param(0, min=0, help="first frame to keep (after fps resampling)"),
               count: int = Param(0, zero="all", min=0, help="frames to keep; 0 = all"),
               every_nth: int = Param(1, min=1, help="keep one frame in n"),
               width: int = Param(0, zero="auto", min=0, max=16384, help="resize to this width; 0 = keep (or follow height)"),
               height: int = Param(0, zero="auto", min=0, max=16384, help="resize to this height; 0 = keep (or follow width)"),
               fps: float = Param(0.0, zero="auto", min=0, max=1000, help="resample to this frame rate; 0 = the file's"),
               deinterlace: str = Param("auto", choices=list(DEINTERLACE),
                                        help="auto: deinterlace when the file says it is interlaced (DV, "
                                             "broadcast, DVD); the field orders force it, for captures that "
                                             "do not say so; off keeps the combed fields"),
               lut: str = Param("", kind="path", help="a .cube or .3dl LUT applied as each picture is decoded, from all "
                                                      "its bits: camera log (S-Log3, LogC, V-Log, C-Log) to "
                                                      "Rec. 709 without the banding of an 8-bit frame")) -> VIDEO:
    """Stream a video file as a clip; frames are decoded only when something pulls them.

    Frames come as players show them: turned upright (phones), HDR (HLG, PQ) mapped to SDR with
    HDR's reference white as white, stretched to square pixels (DV, DVD, HDV store them wider or
    narrower than tall), deinterlaced where the file is interlaced (each picture keeps its time), and
    laid over black where it is transparent (ProRes 4444, VP9 with alpha, QuickTime PNG or Animation), as
    io.load_image lays a transparent picture, with the alpha travelling beside them (see io.save_video);
    the log says what was done. The audio track and the timecode, if any,
    travel with the clip so writers can keep them.

    `lut` applies the camera maker's (or the show's) LUT to 10-bit footage before it becomes the 8-bit
    frames nodes work on, as color.lut does it (tetrahedral, shaper and ranges honoured), and to its 16-bit
    decode for the nodes and writers that keep a deep plate's depth."""
    from .video_read import load_video as _load
    return _load(path, start, count, every_nth, width, height, fps, deinterlace, log=ctx.log, lut=lut)


@node("io.add_audio", title="Add Audio (Song)", category="Input/Output", temporal_radius=0)
def add_audio(ctx, video: VIDEO,
              path: str = Param("", kind="path", required=True,
                                help="the sound to lay under the clip: a song (wav, mp3, flac, m4a, ogg) or a video "
                                     "whose sound to take"),
              offset: float = Param(0.0, min=0.0, help="seconds into the song that play from frame `at` (the clip's "
                                                       "start): 62.5 comes in at the chorus at 1:02.5"),
              fit: str = Param("clip", choices=("clip", "song"),
                               help="clip: the pictures keep their length, the song is cut to them (silence after "
                                    "a shorter one); song: the pictures are cut to the song, or their last frame "
                                    "held until it ends"),
              at: int = Param(0, min=0, help="the clip's frame where the song comes in (a cut starting mid-clip): "
                                             "silence before it, or the clip's own sound with mix"),
              mix: bool = Param(False, help="keep the clip's own sound, under the song (else the song replaces it)"),
              gain: float = Param(0.0, min=-60.0, max=24.0, help="the song's level in dB (0: as the file has it)"),
              clip_gain: float = Param(0.0, min=-60.0, max=24.0,
                                       help="with mix, the clip's own sound's level in dB: -12 keeps dialogue or "
                                            "room sound well under the song")) -> VIDEO:
    """Put a song (or another file's sound) under a clip, from `offset` seconds into the song, coming in at the
    clip's frame `at`: in place of the clip's own sound, or with `mix` over it (the two summed at their gains;
    keep their sum under 0 dBFS). The sound then goes through trims, joins, retimes (and backwards) with the
    pictures, as a camera's does, and out in io.save_video. The file is checked when the node runs: one that is
    missing, damaged or holds no sound is named then, before anything renders; the log says when the song and
    the clip differ in length.

    A song with a steady beat has its tempo and the clip's frames its beats fall on reported (bpm,
    beat_frames) and logged: the frames to cut on with video.trim."""
    from .sound import with_song
    return with_song(video, path, offset, fit, ctx.log, ctx.report, at, mix, gain, clip_gain)


@node("io.load_audio", title="Load Audio", category="Input/Output")
def load_audio(ctx, path: str = Param("", kind="path", required=True,
                                      help="a sound file (wav, mp3, flac, m4a, ogg) or a video whose sound to take"),
               start: float = Param(0.0, min=0.0, help="seconds into the file where the sound starts"),
               duration: float = Param(0.0, zero="all", min=0.0, help="seconds of it to take; 0 = to its end")) -> AUDIO:
    """A sound from a file (ComfyUI's LoadAudio), for encode.audio: a voice or a song for Wan 2.2 S2V to move a
    character by. The file is checked when the node runs: one that is missing, damaged, holds no sound or ends
    before `start` is named then."""
    from .sound import sound_span
    return sound_span(path, start, duration)


@node("io.concat_audio", title="Concatenate Audio", category="Input/Output")
def concat_audio(ctx, first: AUDIO, second: AUDIO,
                 order: str = Param("after", choices=("after", "before"),
                                    help="after: `second` plays after `first`; before: `second` plays first")) -> AUDIO:
    """Two sounds played one after the other (ComfyUI's AudioConcat): two speakers' lines as one soundtrack for
    the frames of a talking-head video. Files of different rates or channel counts join as they are; a mono one
    is heard on both sides, as ComfyUI duplicates it."""
    from .sound import concat
    return concat(first, second) if order == "after" else concat(second, first)


@node("io.trim_audio", title="Trim Audio", category="Input/Output")
def trim_audio(ctx, audio: AUDIO,
               start: float = Param(0.0, min=-1e9, max=1e9, help="seconds into the sound where the part starts; "
                                                                 "negative counts back from its end"),
               duration: float = Param(60.0, min=0.0, help="seconds of it to take (less where the sound ends)")) -> AUDIO:
    """A part of a sound (ComfyUI's TrimAudioDuration): `duration` seconds from `start`, both counted in the
    file's own samples as ComfyUI counts them, the end held to the sound's. The song's few seconds a clip is made
    to (latent.set_sound). A start past the end takes the sound's last sample, as ComfyUI's does; a duration of 0
    is named."""
    from .sound import trim
    return trim(audio, start, duration)


@node("io.set_audio", title="Set Audio", category="Input/Output", temporal_radius=0)
def set_audio(ctx, video: VIDEO, audio: AUDIO) -> VIDEO:
    """The clip with `audio` (io.load_audio, io.concat_audio) as its sound, from its first frame (ComfyUI's
    CreateVideo with an audio input): cut at the clip's last frame, silence after a shorter one."""
    return video.with_(audio=audio.span(0.0, video.duration))


@node("io.save_audio", title="Save Audio", category="Input/Output", output=True)
def save_audio(ctx, audio: AUDIO,
               path: str = Param("out/audio.flac", kind="path", reads=False, check=audio_name,
                                 help="file to write: .flac (lossless), .mp3, .opus or .wav (16-bit)"),
               quality: str = Param("V0", choices=QUALITIES,
                                    help="MP3: V0 (LAME's best variable rate) or a bit rate; Opus: a bit rate; "
                                         "FLAC and WAV are lossless and take none"),
               overwrite: bool = Param(False, help="replace an existing file Kinograph did not write (kept as an "
                                                   "earlier take unless --replace)")) -> None:
    """Write a sound as a file of its own (ComfyUI's SaveAudio, SaveAudioMP3, SaveAudioOpus, SaveAudioAdvanced):
    FLAC at the sound's rate, MP3, or Opus at the first rate Opus codes at or above it, with the workflow in its
    tags (WAV has none). The file it replaces is kept as takes/NAME.001.flac ... beside it."""
    from .audio_write import write_audio
    _wrote(ctx, write_audio(audio, path, quality, ctx.workflow_yaml, overwrite))


@node("io.load_frames", title="Load Frames", category="Input/Output")
def load_frames(ctx, path: str = Param("", kind="path", required=True,
                                        help="a folder of images, a glob such as shots/*.png, or a "
                                             "sequence as Nuke names it: plates/shot.####.exr (or %04d)"),
                fps: float = Param(0.0, zero="auto", min=0, max=1000, help="frame rate of the clip; 0 = the rate EXR files "
                                                            "state (Nuke writes it), else 24"),
                layer: str = Param("", help=LAYER_HELP)) -> VIDEO:
    """Read an image sequence (sorted by natural order) as a clip. A frame missing from a numbered sequence
    (shot.1001.exr, shot.1003.exr) is filled by holding the one before it, and the log names it. An EXR
    plate's frame numbers, frame rate and timecode travel with the clip, for io.save_frames. Transparent
    frames (RGBA PNG, TIFF, EXR) are laid over black and their alpha travels with the clip: through
    editing, resizing and colour nodes to io.save_frames, io.save_video (prores, vp9) and video.over; a node
    that cannot keep it says so in the log.

    `layer` reads a render pass of EXR files (Blender's multilayer ViewLayer.Depth, .Mist, .Normal, or a
    sequence of one pass: depth_####.exr) as the control picture a ControlNet takes (control.apply with
    preprocessor none): Depth (Z) as MiDaS shows depth, near white, far dark, the background (Blender's
    1e10, inf) black, spread by one range for the whole clip so it does not pump; Mist as 1 - mist; Normal
    as a normal ControlNet's colours (red left, green up, blue towards the camera). Blender's Normal pass
    is in world space: for a moving camera, render camera-space normals (an AOV through a Vector Transform
    node set to Camera) under a name with Normal in it (CamNormal) and read that layer."""
    from .images import load_frames as _load
    return _load(path, fps, log=ctx.log, layer=layer)


def _wrote(ctx, info: dict) -> None:
    """A writer's report; where it kept the render it replaced (graph_engine.takes) goes to the log."""
    from pathlib import Path
    from graph_engine.takes import settle
    ctx.wrote(info["path"])
    ctx.report(**info)
    if info.get("earlier_take"):
        ctx.log(settle(Path(info["path"]), Path(info["earlier_take"])))
    if info.get("resumed_at"):
        ctx.log(f"went on from {info['resumed_at']}: the frames before it are those a run of this same workflow "
                f"wrote before it stopped (delete them to render them again)")


def _video_name(path) -> Optional[str]:
    """A video name without a file type, before anything runs: ffmpeg wrote the codec's format under it, and
    the file did not open again in Kinograph (`kinograph run`, a drop on the canvas) nor in most players."""
    if not str(path).strip() or PurePath(str(path)).suffix:
        return None
    return (f"{path!r} has no file type: name the video .mp4 (h264, h265, av1), .webm (vp9), .mov (prores, dnxhr), "
            f".mkv (ffv1), .gif or .webp")


@node("io.save_video", title="Save Video", category="Input/Output", output=True)
def save_video(ctx, video: VIDEO,
               path: str = Param("out/video.mp4", kind="path", reads=False, check=_video_name,
                                 help="the video file to write: out/shot.mp4 (its type goes with the codec; "
                                      "codec auto follows it)"),
               fps: float = Param(0.0, zero="auto", min=0, max=1000, help="0 = the clip's rate"),
               codec: str = Param("auto", choices=("auto", "h264", "h265", "vp9", "av1", "prores", "dnxhr",
                                                     "ffv1", "gif", "webp"),
                                  help="auto: by the file's name (.webm vp9, .gif, .webp, .apng, .mxf dnxhr; h264 "
                                       "for .mp4, .mov, .mkv). h264/h265/av1 mp4, vp9 webm, prores or dnxhr mov "
                                       "and dnxhr mxf (for editors), ffv1 lossless mkv, gif, webp. A clip with "
                                       "alpha keeps it in prores (4444), vp9, ffv1 and webp"),
               crf: int = Param(19, min=0, max=51, help="quality for h264/h265/vp9/av1/webp: lower is better"),
               keep_audio: bool = Param(True, help="mux the source's audio track when the clip carries one"),
               overwrite: bool = Param(False, help="replace an existing file Kinograph did not write (kept as an "
                                                   "earlier take unless --replace)")) -> None:
    """Encode the clip to a video file, streaming chunk by chunk. It starts at the timecode of its
    first source frame, when the source stated one (camera files, editors' exports).

    The workflow is embedded in the file's metadata, so `kinograph run` and the editor can
    open the result again. Written to a temporary name and renamed when complete; an existing
    file is replaced only if Kinograph wrote it, or with `overwrite`, and the render it replaces
    is kept as takes/NAME.001.mp4, .002, ... beside it (`--replace` or `keep_takes` in config.yaml
    to keep fewer).

    A clip with transparency (an element read from ProRes 4444, VP9 or RGBA frames, a key) keeps its
    alpha in prores (ProRes 4444, 16-bit alpha), vp9 (WebM with alpha, as browsers play it), ffv1 and
    webp, each with straight (unpremultiplied) colour as those formats hold it; the other codecs have no
    alpha and the log says it is left out."""
    from .video_write import ALPHA_CODECS, DEEP_CODECS, EVEN_CODECS, codec_for, write_video
    codec = codec_for(path, codec)
    if codec in EVEN_CODECS and (video.width % 2 or video.height % 2):
        # A picture of 133x101 came out 134x102 with a black edge, and nothing said why. Where the alpha is kept
        # (vp9) the edge is transparent (codec_args pads with black@0).
        edge = "transparent" if video.matte is not None and codec in ALPHA_CODECS else "black"
        edges = [e for e, odd in ((f"a {edge} column on the right", video.width % 2),
                                  (f"a {edge} row at the bottom", video.height % 2)) if odd]
        ctx.log(f"the frames are {video.width}x{video.height}, and {codec} takes even sizes only: {' and '.join(edges)} "
                f"{'are' if len(edges) > 1 else 'is'} added ({video.width + video.width % 2}x{video.height + video.height % 2}). To keep the size, crop "
                f"or resize to an even one first (video.crop, video.resize), or set codec to prores (.mov) or ffv1 "
                f"(.mkv)")
    if video.linear is not None and codec not in DEEP_CODECS:
        ctx.log(f"{codec} is written from the 8-bit frames: the plate's deeper pixels (a 10-bit video's, an EXR's) "
                f"are not. Write codec prores (10-bit) or ffv1 (16-bit), or io.save_frames (exr, dpx, tif)")
    if video.matte is not None and codec not in ALPHA_CODECS:
        ctx.log(f"the alpha (transparency) is not written: {codec} has none, so the frames go out laid over black. "
                f"To keep it, write codec prores (.mov, ProRes 4444) or vp9 (.webm), or io.save_frames (png, tif, "
                f"exr); to lay the clip over a background first, use video.over")
    if fps and keep_audio and video.audio is not None and abs(fps - video.fps) > 1e-3 * video.fps:
        # Frames at another rate play faster or slower (a conform: 23.976 to 25); the sound with them, as video.fps
        # retime plays it. It was dropped.
        from nodes.video.edit import retimed_sound
        ctx.log(f"fps {fps:g} plays the clip's {video.fps:g} fps frames at {fps / video.fps:.3g}x speed, and the "
                f"sound with them, its pitch following (as a tape). To change the rate and keep the speed, put "
                f"video.fps (mode resample, fps {fps:g}) before io.save_video and leave its fps at 0")
        video = video.with_(audio=retimed_sound(video, fps, tape=True))
    info = write_video(video, path, fps=fps, codec=codec, crf=crf, workflow_yaml=ctx.workflow_yaml,
                       keep_audio=keep_audio, overwrite=overwrite, progress=ctx.progress)
    _wrote(ctx, info)


def _frames_folder(path) -> Optional[str]:
    """A file name where io.save_frames wants its folder (out/shot.####.exr, as Nuke's Write node takes it):
    a folder of that name was made and filled with frame_000000.png."""
    from graph_engine.sequence import names_frames
    from .images import IMAGE_EXTS
    if not names_frames(path) and not str(path).lower().endswith(IMAGE_EXTS):
        return None
    folder = PurePath(str(path)).parent
    return (f"{path!r} names files; io.save_frames fills a folder: give the folder ({str(folder)!r}, or a new one "
            f"for this shot), with format exr or png and `first` (1001) for the frame numbers: frame_001001.exr ...")


@node("io.save_frames", title="Save Frames", category="Input/Output", output=True)
def save_frames(ctx, video: VIDEO, path: str = Param("out/frames", kind="path", reads=False, folder=True,
                                                     check=_frames_folder,
                                                     help="folder to fill with frame_000000.png ..."),
                overwrite: bool = Param(False, help="replace frame files in a folder Kinograph did not fill (kept as "
                                                    "an earlier take unless --replace)"),
                format: str = Param("png", choices=list(FRAME_FORMATS),
                                    help="png (8-bit); exr: linear-light half float, as Nuke and Blender read a "
                                         "plate; tif: 16-bit from an EXR, 16-bit or DPX plate, else 8-bit; dpx: "
                                         "10-bit log (Cineon), as film scans are exchanged. A clip's alpha goes "
                                         "into png, exr and tif"),
                first: int = Param(-1, min=-1, max=999999, help="number of the first frame's file: 1001 for a VFX "
                                                                "plate (frame_001001.exr ...); -1: the numbers of "
                                                                "the sequence the clip was read from, else 0")
                ) -> None:
    """Write every frame as a numbered PNG (or EXR) into a folder (with the workflow beside them),
    frame_000000.png on, or from `first` (Nuke and Blender read the folder as frame_######). A clip read
    from a numbered sequence (io.load_frames of shot.1001.exr ..., trimmed or not) keeps its numbers
    unless `first` says otherwise; a generated clip starts at 0. A plate deeper than 8 bits (EXR, 16-bit
    PNG/TIFF, DPX) keeps its depth through the nodes that can (editing, color.grade, resizing, flips): EXR
    writes its float pixels, above 1.0 and alpha included, DPX them in 10-bit log (Cineon: highlights to
    about 13.5, the frame number and timecode in the header), TIFF them in 16 bits (clipped at 1.0).
    After any other node the frames are the 8-bit picture's light, as io.save_image writes them.

    A clip with transparency writes RGBA: PNG and TIFF with straight colour (PNG's rule; the TIFF tagged
    unassociated alpha), EXR with colour premultiplied in linear light, as Nuke and Blender keep it.

    Nothing else in the folder is touched. The earlier render's frames are kept as takes/NAME.001/
    beside the folder, which then holds this render alone; with `--replace` (or `keep_takes: 0` in
    config.yaml) they are replaced in place, and frames left from a longer earlier render stay (the
    report counts them). A render of the same workflow that stopped part way (Ctrl+C, a crash) goes on
    from its first missing frame."""
    from .images import DEEP_FORMATS, write_frames
    if video.linear is not None and format not in DEEP_FORMATS:
        ctx.log(f"{format} frames are 8-bit: the plate's float pixels (light above 1.0, fine shadow steps) are not "
                f"written. Write format exr (float), dpx (10-bit log) or tif (16-bit) to keep them")
    elif video.linear is not None and format == "tif" and video.matte is not None:
        ctx.log("a TIFF with alpha is written in 8 bits: the plate's float pixels are not. Write format exr to keep "
                "both, or tif from the clip without its alpha (video.matte, mode none) for 16 bits")
    if format == "dpx" and video.matte is not None:
        ctx.log("DPX frames are written without the alpha: the colour laid over black. Write exr, tif or png to keep it")
    if first < 0:
        first = video.number if video.number is not None and video.number >= 0 else 0
    info = write_frames(video, path, ctx.workflow_yaml, ctx.progress, overwrite=overwrite, fmt=format, first=first)
    _wrote(ctx, info)


def _image_name(path) -> Optional[str]:
    """Why io.save_image cannot write `path`, before anything runs: Pillow picks the format by the name, and
    without a known one it failed after the work with its temporary file's name ('unknown file extension:
    .partial')."""
    from .images import WRITABLE_EXTS
    suffix = PurePath(str(path)).suffix.lower()
    if suffix in WRITABLE_EXTS or not str(path).strip():
        return None
    from .video_write import HOLDS
    kind = "is a video name (io.save_video writes videos)" if suffix in HOLDS else \
        f"is not an image type Kinograph writes ({suffix})" if suffix else "has no file type"
    return f"{path!r} {kind}: name the image .png (it carries the workflow), .exr (linear half float, for Nuke " \
           f"and Blender), .jpg or .webp"


@node("io.save_image", title="Save Image", category="Input/Output", output=True)
def save_image(ctx, image: IMAGE,
               alpha: MASK = Input(optional=True, help="transparency to write with the image (io.load_image's "
                                                       "alpha): .png, .tif and .webp get straight "
                                                       "colour, .exr premultiplied in linear light"),
               path: str = Param("out/image.png", kind="path", reads=False, check=_image_name,
                                 help="file to write: .png (carries the workflow), .exr (linear-light half float; "
                                      "carries it too), .jpg, .webp, .bmp or .tif"),
               overwrite: bool = Param(False, help="replace an existing file Kinograph did not write (kept as an "
                                                   "earlier take unless --replace)")) -> None:
    """Write an image; PNGs carry the workflow in a text chunk, EXRs (linear light, as Nuke and Blender
    expect them) in a header attribute. With `alpha`, PNG, TIFF and WebP hold straight colour beside it,
    EXR colour premultiplied in linear light. The image it replaces is kept as takes/NAME.001.png, .002, ...
    beside it (`--replace` or `keep_takes` in config.yaml to keep fewer)."""
    from .images import write_png
    take = write_png(image, path, ctx.workflow_yaml, overwrite=overwrite, alpha=alpha)
    _wrote(ctx, {"path": path, "width": int(image.shape[1]), "height": int(image.shape[0]),
                 **({"earlier_take": take} if take else {})})
