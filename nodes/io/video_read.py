"""Decoding video files into Clips with PyAV: streaming, frame-accurate random access.

Sequential reads (the common case) keep one decoder running; a jump backwards or far
ahead seeks to the keyframe before the target and decodes forward, so any frame range
can be read on its own (sharded rendering relies on this)."""
from __future__ import annotations

import itertools
import os
import threading
from fractions import Fraction
from pathlib import Path
from typing import List, Optional

import numpy as np

from graph_engine import Audio, Clip, NodeError, Timecode
from graph_engine.clip import split_reader
from graph_engine.mp4_samples import refuse_claimed_frames
from nodes.common.color import TRC_HLG, TRC_PQ, hdr_to_sdr

from .images import over_black

# Decoding forward beats seeking for short gaps; beyond this many frames we seek.
SEEK_GAP = 48
# Frames a file whose header states its frame count may end short of it and still be whole (the last
# frame held, as players hold it); more missing is a file cut short.
HOLD_FRAMES = 2
# Frames a video's timestamps may add to the frames it holds (gaps filled with the frame before, as players
# show them): a day at 30 fps. A 777-byte MKV whose second frame is stamped 115 days after its first made a
# clip of 300 million frames, 2.4 GB and 20 s to open and forever to render.
MAX_HELD = 30 * 86400
# One frame an hour: a file stating a slower rate is damaged (a timelapse is encoded at a rate it plays at).
LEAST_RATE = 1 / 3600
# io.load_video's `deinterlace` choices. Interlaced video (DV, broadcast, VHS and DVD captures) holds two
# fields taken 1/50 or 1/60 s apart in each frame: anything that moves is combed, and every node after
# (flow, upscaling, a diffusion model) takes the comb for detail. Players deinterlace; so does "auto"
# where the file says it is interlaced; the other two force it, for captures flagged progressive.
DEINTERLACE = ("auto", "off", "top field first", "bottom field first")
ALPHA_NOTE = "it has transparency (an alpha channel): it travels with the clip (frames laid over black, the " \
             "alpha beside them) to io.save_video's prores or vp9, io.save_frames and video.over"


UNLOOKED_GIF_NOTE = "it may have transparency (a GIF this long is not looked through for it): its alpha travels " \
                    "with the clip as a transparent video's does; an opaque one's is solid throughout"
# The pixels _opaque_gif decodes at most to look for transparency (1080p x 240 pictures, 800x600 x 1,000): each
# picture of a GIF is drawn onto its whole canvas, so a 250-byte GIF of ten one-pixel pictures on a 10000x10000 canvas
# took 9 s to open, 2,000 of them (34 KB) half an hour, before any frame was asked for.
OPAQUE_LOOK_PIXELS = 500_000_000


def _opaque_gif(path: str, container: str, f0) -> Optional[bool]:
    """A GIF with no transparent pixel in any picture. FFmpeg decodes every GIF as BGRA, so each one, io.save_video's
    own among them, was said to have transparency, and writing it to .mp4 warned that its alpha was left out. Every
    picture is looked at: one opaque at first can clear to transparent later (a frame disposed to the background).
    None for one longer than OPAQUE_LOOK_PIXELS: not looked through, it keeps its matte (all opaque where it is)."""
    import av
    if container != "gif" or f0.format.name != "bgra" or int(f0.to_ndarray()[..., 3].min()) != 255:
        return False
    looked = 0
    try:
        with av.open(path) as c:
            for f in c.decode(video=0):
                looked += f.width * f.height
                if looked > OPAQUE_LOOK_PIXELS:
                    return None
                if int(f.to_ndarray()[..., 3].min()) != 255:
                    return False
        return True
    except av.error.FFmpegError:        # a damaged GIF keeps its matte, as before; reading it says what is wrong
        return False


# libavcodec's AVFieldOrder, in the order of the stream's field_order: 0 unknown, 1 progressive, then the
# interlaced ones, named by the field coded first and the one shown first (TT, BB, TB, BT).
_SHOWN_TOP_FIRST = {2: True, 3: False, 4: False, 5: True}


class VideoSource:
    """One open video file; `read(indices)` returns uint8 RGB frames for ascending source indices."""

    def __init__(self, path: str, deinterlace: str = "auto", lut=None):
        import av
        self.path = path
        self._lut = lut     # a CubeLut applied before frames become 8-bit (nodes.common.lut)
        self.notes: List[str] = []      # what was done to the pictures to show them as players do
        if Path(path).is_dir():
            raise NodeError(f"{path} is a folder, not a video file: name a file in it (io.load_frames reads "
                            f"a folder of images)")
        if not Path(path).is_file():
            from graph_engine.portable import missing_hint
            raise NodeError(f"video file not found: {path}{missing_hint(path)} - check the path (relative paths are "
                            f"taken from the workflow file's folder)")
        refuse_claimed_frames(path)
        try:
            self._container = av.open(path)
        except (av.error.FFmpegError, OSError) as e:
            # PyAV's text leads with FFmpeg's internal error number, which tells a user nothing.
            if _unfinished_mp4(path):
                raise NodeError(f"{path} holds pictures but not the index an MP4/MOV file ends with (its 'moov'): a "
                                f"recording that stopped before the phone or camera finished writing it (battery, "
                                f"crash, card full), or a copy cut short. Copy it again if it is a copy; a recording "
                                f"can be rebuilt with a repair tool (untrunc) from a good file of the same camera"
                                ) from None
            raise NodeError(f"cannot open {path} as a video ({getattr(e, 'strerror', None) or e}): the file is "
                            f"damaged, cut short or not a video. Copy or export it again.") from None
        # A cover picture (an MP3's or M4A's album art, a download's thumbnail) is a video stream of one frame:
        # taken for the video, a song made a one-frame clip at 90000 fps.
        moving = [s for s in self._container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not moving:
            what = ", only a cover picture: a song" if self._container.streams.video else ": a sound"
            raise NodeError(f"{path} holds no pictures (no video stream{what} or data file?): give a video file, "
                            f"or io.load_image for a still picture")
        self.stream = moving[0]
        self.stream.thread_type = "AUTO"
        avg, nominal = self.stream.average_rate, self.stream.guessed_rate
        if self._container.format.name == "gif" and self.stream.frames and self.stream.duration:
            # ffmpeg averages a GIF's first delays only: a 24 fps GIF (delays of 4, 4, 5 hundredths) read at 25
            # fps and a 30 fps one (3, 4, 3) at 33.3, each playing 4-10% fast. Its frames over its length, then.
            avg = Fraction(self.stream.frames) / (self.stream.duration * self.stream.time_base)
        rate = avg or nominal or Fraction(24)
        # A variable-rate recording (phones, browsers) averages fewer frames a second than it
        # records in its fast stretches; on the average rate those lose frames to their neighbours.
        # Its nominal rate (ffmpeg's r_frame_rate) shows every frame at its time.
        variable = bool(avg and nominal and avg * Fraction(101, 100) < nominal <= 4 * avg) and self.stream.frames != 1
        if variable:
            rate = nominal
        self.fps = float(rate)
        self.width = self.stream.codec_context.width
        self.height = self.stream.codec_context.height
        from .images import check_pixels
        check_pixels(path, self.width, self.height, "scale it down first (ffmpeg -i IN -vf scale=iw/2:-2 OUT)")
        # DV, DVD and HDV store pixels wider (or narrower) than tall, and say so (the sample aspect
        # ratio); players stretch them. Frames are resampled to the picture players show, so that
        # every node (a circle-finding face model, flow, a diffusion model) sees square pixels.
        sar = self.stream.sample_aspect_ratio
        if sar and sar > 0 and sar != 1 and self.width:
            coded = self.width
            self.width = max(2, int(round(coded * sar)))
            self.notes.append(f"its pixels are not square (aspect {sar.numerator}:{sar.denominator}): frames are "
                              f"resampled from {coded}x{self.height} to {self.width}x{self.height}, as players show them")
        # Phones store portrait video landscape with a display matrix saying how to turn it;
        # players apply it, so frames are turned here (np.rot90 turns counter-clockwise for k > 0).
        # VP9 and VP8 keep transparency in a side channel FFmpeg's own decoders skip; libvpx reads it. The file
        # says so as alpha_mode, or ALPHA_MODE once ffmpeg has copied it (a trim or remux with -c copy), which read
        # as opaque: the element's alpha was dropped without a word.
        transparent = any(k.lower() == "alpha_mode" and v == "1" for k, v in self.stream.metadata.items())
        self._vpx = {"vp9": "libvpx-vp9", "vp8": "libvpx"}.get(self.stream.codec_context.name) if transparent else None
        if self._vpx not in av.codecs_available:
            self._vpx = None
        self.turns, f0, first = self._display_turns()
        if self.turns % 2:
            self.width, self.height = self.height, self.width
        self._bwdif = self._deinterlacer(deinterlace, f0)
        cc = self.stream.codec_context
        trc = cc.color_trc if cc.color_trc in (TRC_PQ, TRC_HLG) else getattr(f0, "color_trc", None)
        self._hdr = trc if trc in (TRC_PQ, TRC_HLG) else None
        self._bt2020 = (cc.color_primaries if cc.color_primaries not in (None, 2) else
                        getattr(f0, "color_primaries", None)) == 9
        # What a transparent pixel stores is undefined (often the key colour): shown as io.load_image
        # shows a transparent picture, laid over black.
        carries_alpha = f0 is not None and any(c.is_alpha for c in f0.format.components)
        opaque = carries_alpha and _opaque_gif(path, self._container.format.name, f0)   # None: not looked through
        self._alpha = carries_alpha and not opaque
        self._convert = {} if self._hdr else _conversion(f0)     # HDR goes through its own 16-bit path
        # libswscale (FFmpeg 8), which PyAV runs on a thread per core, now and then turned the first 8 pixels of a
        # row where its slices meet into other values when converting 4:2:0 with alpha (VP9 and VP8 with
        # transparency) to RGBA: colour up to 239 levels off, alpha 10, in 1 of 3 fresh reads of a 24x40 clip.
        # One thread converts such frames the same every time.
        self._sws = {"threads": 1} if self._alpha and f0.format.name.startswith("yuva420p") else {}
        if lut is not None:
            if self._hdr:       # the camera's HLG/PQ-to-709 LUT, made for the signal, replaces the SDR mapping
                self.notes.append(f"it is HDR ({'HLG' if self._hdr == TRC_HLG else 'PQ'}): the LUT given maps it, "
                                  f"in place of Kinograph's own SDR mapping")
                self._hdr = None
            # A deep source is looked up from its 16 bits: log footage quantised to 8 bits first came out of
            # a log-to-Rec. 709 LUT banded (a 10-bit S-Log3 ramp kept 88 of its 158 output levels).
            self._deep = f0 is not None and _bits(f0) > 8
            from nodes.common.lut import lattice_positions
            self._lut_pos = lattice_positions(lut, 65536, _rgb48_white(f0)) if self._deep \
                else lattice_positions(lut)
            if self._deep:
                self._convert = {}      # 16-bit RGB: libswscale's default path is the exact one there
        self._white = _rgb48_white(f0) if self._hdr and f0 is not None else 65535.0
        # A 10-bit (or deeper) SDR stream (ProRes, DNxHR HQX, 10-bit HEVC) also reads at its own depth for the
        # nodes and writers that keep it (Clip.linear), through the LUT given where there is one (a camera's log
        # footage through its LUT went to 8 bits, and a 10-bit ProRes render of it came out in 8-bit steps); HDR
        # without a LUT goes to 8 bits through its own mapping.
        self.deep = f0 is not None and _bits(f0) > 8 and not self._hdr
        self._deep_white = _rgb48_white(f0) if self.deep else 65535.0
        if self._alpha:
            self.notes.append(ALPHA_NOTE if opaque is not None else UNLOOKED_GIF_NOTE)
        if self._hdr:
            self.notes.append(f"it is HDR ({'HLG' if self._hdr == TRC_HLG else 'PQ'}"
                              f"{', BT.2020' if self._bt2020 else ''}): frames are mapped to SDR as an SDR screen "
                              f"shows them (203-nit white as white, brighter light rolled off, BT.709 colours)")
        self._iter = None if first is None else self._through(first)
        self.time_base = self.stream.time_base
        self.start_pts = self.stream.start_time or 0
        # Seconds from the file's start, as ffmpeg's -ss counts them (the earliest stream's start), to the first
        # picture: the sound is cut from there. Phones, OBS and stream captures start the video after the sound;
        # taken from 0, the sound ran that far ahead of the pictures (0.5 s late video: every word early).
        began = self._container.start_time
        self.audio_at = max(0.0, float(self.start_pts * self.time_base) - (began or 0) / 1e6)
        self.has_audio = bool(self._container.streams.audio)
        tracks = self._container.streams.audio
        if len(tracks) > 1:     # OBS's tracks, a second microphone, a dub: only the first goes with the clip
            names = ", ".join(t.metadata.get("title") or (t.language if t.language not in (None, "und") else None)
                              or f"#{k + 1}" for k, t in enumerate(tracks))
            self.notes.append(f"it has {len(tracks)} sound tracks ({names}): the first goes with the clip. For "
                              f"another, make it the first: ffmpeg -i IN -map 0:v -map 0:a:1 -c copy OUT")
        self.timecode = self._stated_timecode()
        # An AVI keeps no presentation times: with B-frames, the times PyAV reports follow the
        # packets' order, not the pictures'. The decoder gives pictures in order, so count them.
        self._counted = self._container.format.name == "avi"
        self.length, end = self._count_frames()
        # The count is the header's word (an MP4's sample table), not what the packets hold: a copy that
        # did not finish keeps its header and loses its tail.
        self._stated = bool(self.stream.frames) and not variable
        if self.length > 0 and (variable or not self.stream.frames):
            # On a variable rate the frames span more slots than their count, and an MKV/WebM states
            # a rate its frames need not keep: the clip lasts as long as the video does.
            span = self._span(end)
            if span:
                timed = int(round(span * self.fps))
                if timed - self.length > MAX_HELD:
                    raise NodeError(f"{path}: its timestamps spread its {self.length} frames over {span / 3600:.0f} "
                                    f"hours ({timed} frames at {self.fps:g} fps): the file is damaged or made to "
                                    f"look long. Re-encode it with fresh timestamps, e.g. ffmpeg -i IN -vf "
                                    f"setpts=N/FRAME_RATE/TB OUT.mkv")
                if timed > self.length:
                    # Nothing said it: 30 frames came out as 50, and the repeats looked like a stutter of Kinograph's.
                    self.notes.append(f"its frame rate varies (a phone's or a screen recording's may): its "
                                      f"{self.length} frames are held in time at {self.fps:g} fps, {timed} in all, as "
                                      f"players show them (a frame repeats where the next comes late)")
                self.length = max(self.length, timed)
        if self.length <= 0 or not self.width:
            raise NodeError(f"{path}: no decodable frames (is the file complete?)")
        self._lock = threading.Lock()
        self._next = 0          # source index the running decoder yields next
        self._last = None       # the frame it yielded last: on screen to the end of the video

    def _stated_timecode(self) -> Optional[Timecode]:
        """The timecode of the first frame: on the video stream or its timecode track (MOV, MP4, MXF
        from cameras and editors) or on the file (Matroska)."""
        c = self._container
        for tags in (self.stream.metadata, *(s.metadata for s in c.streams if s is not self.stream), c.metadata):
            text = tags.get("timecode") or tags.get("TIMECODE")
            if text:
                return Timecode.parse(text, self.fps)
        return None

    def _display_turns(self) -> tuple:
        """Quarter turns counter-clockwise the display matrix asks for (0 when it has none; PyAV shows
        it on decoded frames only), the first frame (its flags say what the stream may not: interlaced,
        HDR), and the decoder left at frame 0 with that frame in front, so the first read does not open
        and decode the start of the file again."""
        import av
        gen = self._decoded()
        try:
            frame = next(gen, None)
        except av.error.FFmpegError:
            return 0, None, None    # a damaged file: reading its frames says so, with the frame number
        if frame is None:
            return 0, None, None
        return round(frame.rotation / 90) % 4, frame, itertools.chain([frame], gen)

    def _decoded(self):
        """The stream's frames from where the container stands, through libvpx where it holds the alpha."""
        if self._vpx is None:
            return self._container.decode(self.stream)
        import av
        decoder = av.CodecContext.create(self._vpx, "r")     # a fresh one: a seek leaves nothing in it
        return (frame for packet in self._container.demux(self.stream) for frame in decoder.decode(packet))

    def _deinterlacer(self, mode: str, first_frame) -> Optional[str]:
        """FFmpeg's bwdif options for `mode` (DEINTERLACE), None for none. "auto" follows the stream's
        field order, or the first frame's interlaced flag where the stream has none."""
        if mode not in DEINTERLACE:
            raise NodeError(f"deinterlace={mode!r}: choose one of {', '.join(DEINTERLACE)}")
        order = self.stream.codec_context.field_order
        if mode == "off":
            return None
        if mode != "auto":
            parity = "tff" if mode == "top field first" else "bff"
        elif order in _SHOWN_TOP_FIRST:
            parity = "tff" if _SHOWN_TOP_FIRST[order] else "bff"
        else:
            if first_frame is None or not first_frame.interlaced_frame:
                return None
            parity = "auto"     # bwdif reads each frame's own field order
        self.notes.append(f"it is interlaced ({'field order from each frame' if parity == 'auto' else parity}): "
                          f"frames are deinterlaced (bwdif); deinterlace=off keeps the fields as they are (for "
                          f"restore.deinterlace, rate field: one picture per field)")
        # send_frame: one picture per frame at its own time, so the clip keeps its frames and rate.
        return f"mode=send_frame:parity={parity}:deint=all"

    def _through(self, frames):
        """The decoded frames through the deinterlacer, if any. bwdif makes frame k from frames k-1, k
        and k+1 alone (a fresh filter given frame k-1 first makes the same frame k as one that ran
        from the start), which is why a seek starts a frame early (_seek)."""
        if self._bwdif is None:
            return frames
        return _filtered(self.stream, "bwdif", self._bwdif, frames)
    def _count_frames(self) -> tuple:
        """The number of video frames, and where the last packet ends when the packets had to be
        read for it (None otherwise)."""
        n = self.stream.frames
        if n:
            return int(n), None
        # Containers like MKV/WebM don't store a count: demux (no decode) and count packets; the
        # same pass finds where the video ends, which _span would otherwise read the file again for.
        import av
        with av.open(self.path) as c:
            return _packets_end(c.demux(c.streams[self.stream.index]))

    def _span(self, end) -> Optional[float]:
        """Seconds from the first video frame to the end of the last (None when the file keeps no
        timestamps). `end` is where the packets end if _count_frames read them all; otherwise only
        the packets after the last keyframe are read."""
        import av
        if end is None and self.stream.frames:
            try:
                with av.open(self.path) as c:
                    s = c.streams[self.stream.index]
                    try:
                        if s.duration:
                            c.seek((s.start_time or 0) + s.duration, stream=s, backward=True, any_frame=False)
                        elif c.duration:
                            c.seek(c.duration, backward=True, any_frame=False)
                    except av.error.FFmpegError:
                        pass
                    end = _packets_end(c.demux(s))[1]
            except av.error.FFmpegError:
                return None
        return float((end - self.start_pts) * self.time_base) if end is not None else None

    def _index_of(self, frame) -> int:
        if frame.pts is None or self._counted:
            return self._next
        return int(round(float((frame.pts - self.start_pts) * self.time_base) * self.fps))

    def _seek(self, index: int) -> None:
        if self._bwdif is not None:
            index -= 1      # the deinterlacer makes frame `index` from the one before it too
        pts = int(index / self.fps / self.time_base) + self.start_pts
        self._container.seek(max(pts, self.start_pts), stream=self.stream, backward=True, any_frame=False)
        self._iter = self._through(self._decoded())
        self._next = -1
        self._last = None

    def _frames_from(self, first: int):
        if self._counted:       # no times to seek by: forward by decoding, back by starting again
            if self._iter is None or first < self._next:
                self._container.seek(0, backward=True, any_frame=False)
                self._iter = self._through(self._decoded())
                self._next, self._last = 0, None
            return self._iter
        if self._iter is None or first < self._next or first - self._next > SEEK_GAP or self._next < 0:
            if first == 0 and self._iter is None:
                self._iter = self._through(self._decoded())
                self._next = 0
            else:
                self._seek(first)
        return self._iter

    def _cut_short(self, wanted: int, last: Optional[int]) -> str:
        """Why frame `wanted` is not there in a file whose header states more: holding the last frame
        over the missing tail rendered a frozen ending without a word."""
        where = f"ends after frame {last + 1}" if last is not None else f"has no pictures at frame {wanted + 1}"
        use = f"keep to its first {last + 1} frames" if last is not None else "keep to the frames before it"
        return (f"{self.path} {where} but its header states {self.length} frames: the file is cut short (a copy "
                f"or download that did not finish?). Copy it again, or {use} (io.load_video's count)")

    def _pixels(self, frame, w: int, h: int) -> np.ndarray:
        if self._lut is not None:
            from nodes.common.lut import apply_lut
            deep = "rgba64le" if self._alpha else "rgb48le"
            wide = frame.to_ndarray(format=deep if self._deep else "rgba" if self._alpha else "rgb24", **self._convert,
                                **self._sws)
            arr = apply_lut(np.ascontiguousarray(wide[..., :3]), self._lut, pos=self._lut_pos)
            if self._alpha:
                arr = _with_alpha(arr, wide[..., 3], 65535.0 if self._deep else 255.0)
        elif self._alpha:
            wide = frame.to_ndarray(format="rgba64le" if self._hdr else "rgba", **self._convert, **self._sws)
            arr = hdr_to_sdr(np.ascontiguousarray(wide[..., :3]), self._hdr, self._bt2020, self._white) if self._hdr \
                else wide[..., :3]
            arr = _with_alpha(arr, wide[..., 3], 65535.0 if self._hdr else 255.0)
        elif self._hdr:
            arr = hdr_to_sdr(frame.to_ndarray(format="rgb48le"), self._hdr, self._bt2020, self._white)
        else:
            arr = frame.to_ndarray(format="rgb24", **self._convert)
        if self.turns:
            arr = np.ascontiguousarray(np.rot90(arr, self.turns))
        return _resized(arr, w, h)

    def _linear_pixels(self, frame, w: int, h: int) -> np.ndarray:
        """float32 linear light of a deep frame from its 16-bit decode (the code values read as the 8-bit frames
        are shown, sRGB), premultiplied beside its alpha where it has one."""
        from nodes.common.color import code16_to_linear, srgb_to_linear
        wide = frame.to_ndarray(format="rgba64le" if self._alpha else "rgb48le", **self._sws)
        if self._lut is not None:       # the LUT's output, as the 8-bit frames show it, unrounded and past 1.0
            from nodes.common.lut import apply_lut_float
            px = srgb_to_linear(apply_lut_float(wide[..., :3].astype(np.float32) / np.float32(self._deep_white),
                                                self._lut))
        else:
            px = code16_to_linear(wide[..., :3], "srgb", self._deep_white)
        if self._alpha:
            alpha = wide[..., 3:].astype(np.float32) / 65535.0
            px = np.concatenate([px * alpha, alpha], -1)
        if self.turns:
            px = np.ascontiguousarray(np.rot90(px, self.turns))
        return _resized(px, w, h)

    def read_linear(self, indices: List[int], size: Optional[tuple] = None) -> np.ndarray:
        """float32 [n,H,W,3 or 4] of a deep stream (self.deep): Clip.linear."""
        return self.read(indices, size, self._linear_pixels)

    def read(self, indices: List[int], size: Optional[tuple] = None, pixels_of=None) -> np.ndarray:
        import av
        w, h = size or (self.width, self.height)
        pixels_of = pixels_of or self._pixels
        # RGBA: split_reader
        out = np.empty((len(indices), h, w, 4 if self._alpha else 3), np.uint8 if pixels_of == self._pixels
                       else np.float32)
        with self._lock:
            it = self._frames_from(indices[0])
            k = 0
            pixels = None
            try:
                while k < len(indices):
                    frame = next(it, None)
                    if frame is None:   # past the last frame (or fewer than the header promised): it stays
                        last = self._next - 1 if self._last is not None else None
                        if self._stated and (last is None or self.length - 1 - last > HOLD_FRAMES):
                            raise NodeError(self._cut_short(indices[k], last))
                        if self._last is None:
                            raise NodeError(f"{self.path}: could not decode frame {indices[k]}")
                        out[k:] = pixels if pixels is not None else pixels_of(self._last, w, h)
                        break
                    idx = self._index_of(frame)
                    self._next, self._last, pixels = idx + 1, frame, None
                    while k < len(indices) and indices[k] <= idx:
                        if pixels is None:
                            pixels = pixels_of(frame, w, h)
                        out[k] = pixels
                        k += 1
            except av.error.FFmpegError as e:
                raise NodeError(f"{self.path}: the video is damaged near frame {indices[k]}: {e}")
        return out


def _unfinished_mp4(path: str) -> bool:
    """Whether `path` is an MP4/MOV whose pictures (mdat) are there and whose index (moov) is not: phones and
    cameras write the index last, when the recording stops."""
    import struct
    seen = set()
    try:
        with open(path, "rb") as f:
            for _ in range(64):         # top-level boxes: a handful in any real file
                head = f.read(8)
                if len(head) < 8:
                    break
                size, kind = struct.unpack(">I4s", head)
                seen.add(kind)
                if size == 1:
                    size = struct.unpack(">Q", f.read(8).rjust(8, b"\0"))[0] - 8
                if size < 8:            # 0: runs to the end of the file
                    break
                f.seek(size - 8, 1)
    except OSError:
        return False
    return {b"ftyp", b"mdat"} <= seen and b"moov" not in seen


def _packets_end(packets) -> tuple:
    """How many of `packets` hold a picture, and where the one shown last ends (None without timestamps).
    A packet's duration runs to the next one decoded, not shown: with B-frames, the first picture after a
    pause in a screen recording or a phone's dropped frames carries the pause, and taken as the end it held
    the last frame a second past the real end (and past the sound)."""
    count, last = 0, None
    for pkt in packets:
        if pkt.size:
            count += 1
            if pkt.pts is not None and (last is None or pkt.pts > last.pts):
                last = pkt
    return count, None if last is None else last.pts + (last.duration or 0)


def _rgb48_white(frame) -> float:
    """The 16-bit level libswscale turns white of `frame`'s pixel format, range and matrix into: not 65535
    (TV-range 10-bit white came out 65283, full range 65472), so a LUT read 1 level low at white. Found by
    converting a small frame of white."""
    import av
    try:
        probe = av.VideoFrame(16, 2, frame.format.name)
        bits = _bits(frame)
        full = frame.color_range == 2 or frame.format.name.startswith("yuvj")
        for i, plane in enumerate(probe.planes):
            top = 2 ** bits - 1
            level = top if i == 3 or full and i == 0 else (235 << (bits - 8)) if i == 0 else 1 << (bits - 1)
            plane.update(np.full(plane.buffer_size // 2, level, "<u2").tobytes())
        probe.color_range, probe.colorspace = frame.color_range, frame.colorspace
        white = float(probe.to_ndarray(format="rgb48le")[..., 1].mean())
    except (ValueError, TypeError, av.error.FFmpegError):
        return 65535.0
    return white if 60000 < white <= 65535 else 65535.0


def _bits(frame) -> int:
    return max(c.bits for c in frame.format.components)


def _conversion(first_frame) -> dict:
    """How libswscale should turn the stream's frames into 8-bit RGB. From 10-bit (and deeper) YUV its
    default path came out 1-2 levels dark (a grey ramp from ProRes or 10-bit HEVC read 1.6 levels low on
    average, red 255 as 253): with full chroma interpolation it converts exactly. 8-bit YUV stays on the
    default path: within a level already, and the flags that round it exactly took ten times as long there."""
    if first_frame is None or first_frame.format.name.startswith(("rgb", "bgr", "gbr", "gray")):
        return {}
    if _bits(first_frame) <= 8:
        return {}
    from av.video.reformatter import Interpolation
    return {"interpolation": Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INT}


def _resized(arr: np.ndarray, w: int, h: int) -> np.ndarray:
    """arr at w x h: area averaging to shrink; cubic to enlarge (area averaging enlarges as bilinear
    does, softer than the bicubic players and ffmpeg stretch non-square pixels with)."""
    import cv2
    if (arr.shape[1], arr.shape[0]) == (w, h):
        return arr
    grow = w > arr.shape[1] or h > arr.shape[0]
    return cv2.resize(arr, (w, h), interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA)


def _filtered(stream, name: str, options: str, frames):
    """`frames` (decoded from `stream`) through one FFmpeg filter, as its output frames come."""
    import av
    graph = av.filter.Graph()
    src, filt, sink = graph.add_buffer(template=stream), graph.add(name, options), graph.add("buffersink")
    src.link_to(filt)
    filt.link_to(sink)
    graph.configure()

    def drain():
        while True:
            try:
                out = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            # A deinterlacer halves the time base (room for a picture per field): times go back into
            # the stream's, which frame indices are counted in.
            if out.pts is not None and out.time_base and out.time_base != stream.time_base:
                out.pts = int(round(out.pts * out.time_base / stream.time_base))
                out.time_base = stream.time_base
            yield out

    for frame in frames:
        graph.push(frame)
        yield from drain()
    graph.push(None)       # the end: the filter gives the frames it held back
    yield from drain()


class PillowSource:
    """An animated WebP, read with Pillow: ffmpeg has no decoder for them (it finds no frames), yet
    they are what save_video's webp codec and ComfyUI's SaveAnimatedWEBP write. Same interface as
    VideoSource; frames are decoded when read."""

    has_audio = False
    timecode = None

    def __init__(self, path: str):
        from PIL import Image
        self.path = path
        try:
            self._im = Image.open(path)
            self._im.load()
        except (OSError, SyntaxError, ValueError) as e:
            raise NodeError(f"cannot open {path} as a video ({e}): the file is damaged, cut short or not a "
                            f"video. Copy or export it again.") from None
        except Image.DecompressionBombError as e:
            from .images import too_big
            raise NodeError(too_big(path, str(e))) from None
        self.length = getattr(self._im, "n_frames", 1)
        self.width, self.height = self._im.size
        self._alpha = "A" in self._im.getbands() or "transparency" in self._im.info
        self.notes = [ALPHA_NOTE] if self._alpha else []
        # Read from the file's frame headers: Pillow sets a frame's duration only as it decodes the frame, and each
        # frame decodes onto the whole canvas, so a 1 KB file of 20 one-pixel frames on a 10000x10000 canvas took
        # 30 s to open (2,000 of them, 80 KB, most of an hour) before any frame was asked for.
        total_ms = sum(_webp_durations(path, self.length))
        # Frames may each last their own time; they play as a sequence at their average rate.
        self.fps = 1000.0 * self.length / total_ms if total_ms > 0 else 10.0
        self._lock = threading.Lock()

    def read(self, indices: List[int], size: Optional[tuple] = None) -> np.ndarray:
        w, h = size or (self.width, self.height)
        out = np.empty((len(indices), h, w, 4 if self._alpha else 3), np.uint8)     # RGBA: split_reader
        with self._lock:
            for k, i in enumerate(indices):
                self._im.seek(int(i))
                if self._alpha:
                    rgba = np.asarray(self._im.convert("RGBA"))
                    out[k] = _resized(_with_alpha(rgba[..., :3], rgba[..., 3], 255.0), w, h)
                else:
                    out[k] = _resized(np.asarray(self._im.convert("RGB")), w, h)
        return out


def _is_webp(path: str) -> bool:
    """Whether the file is a WebP by its first bytes (RIFF....WEBP), whatever its name: a GIF or APNG saved under a
    .webp name (a download named by its address) is read by FFmpeg, which finds its frames' times, and a WebP under
    another name by Pillow, as FFmpeg finds no frames in an animated one."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:                 # no such file, a folder, a numbered sequence's pattern: VideoSource says
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _webp_durations(path: str, frames: int) -> List[int]:
    """The milliseconds each frame of an animated WebP lasts, from its ANMF chunks' headers (a 24-bit duration at
    byte 12, as libwebp's demuxer and so Pillow read it); [] for a still WebP. The walk stops after the `frames`
    Pillow counted, and at a few chunks a frame beyond them (unknown chunks hold no frame)."""
    out: List[int] = []
    with open(path, "rb") as f:
        if f.read(12)[8:12] != b"WEBP":
            return out
        for _ in range(4 * frames + 16):
            head = f.read(8)
            if len(head) < 8 or len(out) >= frames:
                break
            size = int.from_bytes(head[4:8], "little")
            if head[:4] == b"ANMF":
                payload = f.read(16)
                if len(payload) < 16 or size < 16:
                    break
                out.append(int.from_bytes(payload[12:15], "little"))
                f.seek(size + (size & 1) - 16, os.SEEK_CUR)
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)
    return out


def load_video(path: str, start: int = 0, count: int = 0, every_nth: int = 1, width: int = 0, height: int = 0,
               fps: float = 0.0, deinterlace: str = "auto", log=None, lut: str = "") -> Clip:
    """log: called with a line for each thing done to show the pictures as players do (deinterlacing,
    non-square pixels). lut: a .cube file applied to each picture before it becomes 8-bit (and to a deep source's
    16 bits for Clip.linear)."""
    table = None
    if lut:
        from nodes.common.lut import parse_lut
        table = parse_lut(lut)
    if _is_webp(path):
        if table is not None:
            raise NodeError(f"{path}: an animated WebP is 8-bit: apply the LUT with color.lut")
        src = PillowSource(path)
    else:
        src = VideoSource(path, deinterlace, table)
    for note in getattr(src, "notes", ()):
        if log is not None:
            log(f"{Path(path).name}: {note}")
    n_src, fps_src = src.length, src.fps
    step = max(1, every_nth)
    resample = bool(fps) and abs(fps - fps_src) > 1e-6
    base_fps = fps if resample else fps_src
    n_base = _resampled_count(path, n_src, fps_src, fps, start, count, step) if resample else n_src
    if start >= n_base:
        raise NodeError(f"{path} has {n_base} frames; start={start} is past the end")
    # Only the frames asked are worked out: at a high fps the whole file's list may be millions long.
    positions = start + step * np.arange(_taken(n_base, start, count, step), dtype=np.int64)
    idx = np.minimum(np.round(positions * fps_src / fps).astype(np.int64), n_src - 1) if resample else positions
    w, h = _target_size(src.width, src.height, width, height)
    out_fps = base_fps / step
    audio = Audio(path, src.audio_at + start / base_fps, len(idx) * step / base_fps) if src.has_audio else None
    timecode = src.timecode.shifted(int(idx[0]), src.fps) if src.timecode and len(idx) else None
    colour, matte = lambda a, b: src.read([int(i) for i in idx[a:b]], (w, h)), None
    if src._alpha:      # decoded once for both (ProRes 4444, VP9 with alpha, QuickTime PNG or Animation)
        colour, matte = split_reader(colour)
    linear = (lambda a, b: src.read_linear([int(i) for i in idx[a:b]], (w, h))) if getattr(src, "deep", False) \
        else None
    return Clip(len(idx), out_fps, w, h, colour, audio, timecode=timecode, linear=linear).with_matte(matte)


def _taken(n: int, start: int, count: int, step: int) -> int:
    """How many of `n` frames io.load_video's start, count and every_nth take."""
    left = len(range(start, n, step))
    return min(left, count) if count else left


def _resampled_count(path: str, n_src: int, fps_src: float, fps: float, start: int = 0, count: int = 0,
                     step: int = 1) -> int:
    """The frames `n_src` at `fps_src` make at `fps`; NodeError when those start, count and step take (all of them
    by default) are past MAX_HELD more than it holds. A file may state any rate: a 3 KB MKV of 50 frames at one a
    million seconds (11 days each) made 1.2 billion frames at fps 24, the frame index alone 9 GB before anything
    was read. A real rate may make too many as well (a day of 30 fps footage at fps 60): only a rate under
    LEAST_RATE is called damaged."""
    made = (n_src - 1) * fps / fps_src
    total = int(np.floor(min(made, 2.0 ** 62))) + 1     # a rate near zero would make it infinite
    asked = _taken(total, start, count, step)
    if asked - n_src > MAX_HELD:
        said = (f"{path}: its {n_src:,} frames play at {fps_src:g} fps, {(n_src - 1) / fps_src / 3600:,.0f} hours; "
                f"at fps {fps:g} that is {made:,.0f} frames")
        if asked < total:
            said += f", {asked:,} of them asked"
        if fps_src < LEAST_RATE:
            raise NodeError(f"{said}: the file states a rate no video has (it is damaged or made to fill memory). "
                            f"Leave fps at 0 to take its frames as they are, or re-encode it at a real rate, e.g. "
                            f"ffmpeg -i IN -r 24 OUT")
        raise NodeError(f"{said}, more than {MAX_HELD:,} beyond its own, which a clip holds at most: give a lower "
                        f"fps or a count, leave fps at 0 to take its frames as they are, or cut the part you need "
                        f"first, e.g. ffmpeg -ss 3600 -t 600 -i IN -c copy OUT")
    return total


def _with_alpha(rgb: np.ndarray, alpha: np.ndarray, top: float) -> np.ndarray:
    """uint8 HxWx4: the colour laid over black by `alpha` (0..top), and the alpha as uint8 (Clip.matte)."""
    a = alpha.astype(np.float32) / top
    return np.concatenate([over_black(rgb, a), (a * 255.0 + 0.5).astype(np.uint8)[..., None]], -1)


def _target_size(w0: int, h0: int, w: int, h: int):
    if w and h:
        return w, h
    if w:
        return w, max(2, int(round(h0 * w / w0)))
    if h:
        return max(2, int(round(w0 * h / h0))), h
    return w0, h0
