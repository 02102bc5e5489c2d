"""Clip: a lazy, random-access sequence of uint8 RGB frames (the VapourSynth idea).

A node that processes video returns a new Clip whose reader pulls only what it needs
from upstream. Readers are always called on aligned chunks (a local one on part of one,
below), so a frame's pixels never depend on the order in which a consumer asks for
frames: a shard rendering frames [a, b) alone gets exactly what a full sequential pass
gets. A small LRU of recent chunks (grown to the widest span a consumer reads at once:
a temporal window) makes overlapping pulls cheap while memory stays O(chunk + window)
whatever the clip's length.

A `local` clip (a per-frame node: frame i made from frame i of its sources alone, the same in any span) is read
exactly as far as it is asked, within its chunks: the consumer decides how much is made. Its chunk size is only the
most it makes in one call. Showing frame 0 of mask.grow after SAM 2's tracker made the grow's whole chunk (32 small
frames), and with it 32 frames of tracking, to show one; a chain of per-frame nodes now pulls one frame down to the
first node that does need its chunk (a decoder, a temporal window).

Clips that show the same frames share one computation: `with_` changing only the sound, rate, floats or matte
shares the chunks already made (a node's 8-bit pass read for its frames and again for its float pixels, Clip.linear,
ran twice), and the engine's wrappers (WorkMeter, graph_engine.keep and spill) read through their source's chunks.

Transparency travels beside the frames, not in them: `matte` is a second clip of one channel (uint8
[n,H,W,1], 255 = opaque) read in the same chunks, and the frames are the colour laid over black
(premultiplied in sRGB code values, as the readers have always shown a transparent picture). Nodes
that only see RGB keep doing so; a node that moves or picks pixels (trim, resize, pad) applies the same
operation to the matte, a colour node works on the colour taken off black (nodes/common/stream:
colour_frames), and any other node ends the matte, which the executor logs."""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple, Optional, Tuple

import numpy as np

from .timecode import Timecode

Reader = Callable[[int, int], np.ndarray]

# Aim for chunks of about this many bytes: big enough to amortise per-call overhead
# (encoder pipes, OpenCV batch calls), small enough that a chain of clips stays light.
CHUNK_BYTES = 24 << 20
MAX_CHUNK = 32
# The most pieces one sound is made of, all tracks together: a clip re-timed frame by frame over ten minutes makes
# 14,400. A sound joined to itself doubles its pieces: 30 io.concat_audio nodes in a chain made a billion (the run
# hung at the 20th, a million pieces, 37 s a node), and every join, span and writer walks them all.
MAX_PIECES = 100_000
# Chunks a clip keeps: the one a consumer reads frame by frame (a reverse, a trim, interpolation's pairs) and the
# one before, for a pair across their boundary. Every node of a chain keeps its own, so a third, never read again
# in a pass, cost a chunk a node: 120 MB in a join of three 1080p clips, 55 MB in a 4K grade and crop.
CACHED_CHUNKS = 2


class Piece(NamedTuple):
    """One span of sound: `duration` seconds of the clip's time (None: to the file's end) playing `path` ("":
    silence) from `start` seconds in, at `speed` (0.5: each second of the file lasts two; below 0: backwards,
    from `start` down), pitch kept (time-stretched) unless `tape` (pitch follows the speed, as a tape or
    turntable plays it slower or faster), `gain` dB louder."""
    path: str
    start: float = 0.0
    duration: Optional[float] = None
    speed: float = 1.0
    tape: bool = False
    gain: float = 0.0

    @staticmethod
    def of(p) -> "Piece":
        """A piece from a tuple or list (JSON gives lists back) of its first 3 to 6 fields."""
        p = tuple(p)
        return Piece(str(p[0]), float(p[1]), None if p[2] is None else float(p[2]),
                     *(float(x) for x in p[3:4]), *(bool(x) for x in p[4:5]), *(float(x) for x in p[5:6]))


def _track(pieces) -> tuple:
    """Pieces as Piece, those of no length left out and each that carries on where the one before it stops (the
    same file at the same speed, or silence after silence) merged into it: a speed ramp's pairs or a clip cut
    and joined again play as one span (one input of ffmpeg's, not one a frame)."""
    out: list = []
    for p in (Piece.of(p) for p in pieces if p[2] is None or p[2] > 1e-6):
        last = out[-1] if out else None
        if last is not None and last.duration is not None and last[3:] == p[3:] and last.path == p.path and (
                not p.path or abs(last.start + last.duration * last.speed - p.start) < 1e-6):
            out[-1] = last._replace(duration=None if p.duration is None else last.duration + p.duration)
        else:
            out.append(p)
    return tuple(out)


@dataclass(frozen=True)
class Audio:
    """The audio that belongs with a clip: a media file and the span of it that plays, then (clips joined
    one after another) the pieces in `then` in turn (Piece: a path of "" is silence). The first piece's speed,
    tape and gain are those fields here. `mix`: other tracks (each a tuple of pieces) heard at the same time
    from the clip's start (a song laid under the clip's own sound)."""
    path: str
    start: float = 0.0
    duration: Optional[float] = None
    then: tuple = ()
    speed: float = 1.0
    tape: bool = False
    gain: float = 0.0
    mix: tuple = ()

    def __post_init__(self):
        # Kept as tuples of Piece however it was made (JSON gives the cache and the shard driver lists back).
        object.__setattr__(self, "then", tuple(Piece.of(p) for p in self.then))
        object.__setattr__(self, "mix", tuple(tuple(Piece.of(p) for p in track) for track in self.mix))

    def summary(self) -> str:
        """What the sound is, in a line (the editor's viewer, which draws pictures only, shows it for an AUDIO):
        its repr was the dataclass's insides, 'Audio(path=…, then=(), speed=1.0, tape=False, gain=0.0, mix=())'."""
        def piece(p: Piece) -> str:
            if not p.path:
                return f"{p.duration:g} s of silence" if p.duration is not None else "silence"
            long = f"{p.duration:g} s of " if p.duration is not None else ""
            return (f"{long}{os.path.basename(p.path)}" + (f" from {p.start:g} s" if p.start else "")
                    + (f" at {p.speed:g}x" if p.speed != 1 else "") + (f", {p.gain:+g} dB" if p.gain else ""))
        first = self.pieces()
        total = None if any(p.duration is None for p in first) else sum(p.duration for p in first)
        text = "sound: " + (f"{total:g} s: " if total is not None and len(first) > 1 else "")
        text += ", then ".join(map(piece, first[:3])) + (f", then {len(first) - 3} more" if len(first) > 3 else "")
        if self.mix:
            text += f"; {len(self.mix)} more track{'s' if len(self.mix) > 1 else ''} mixed under it"
        return text + " (not played here)"

    def pieces(self) -> list:
        """The first track's pieces."""
        return [Piece(self.path, self.start, self.duration, self.speed, self.tape, self.gain), *self.then]

    def tracks(self) -> list:
        """Every track: the first (pieces) and those mixed under it."""
        return [self.pieces(), *map(list, self.mix)]

    @staticmethod
    def joined(pieces, mix=()) -> Optional["Audio"]:
        """The sound of `pieces` played one after another, with the tracks in `mix` heard at the same time;
        None when none of it is more than silence."""
        tracks = [t for t in (_track(pieces), *map(_track, mix)) if any(p.path for p in t)]
        if not tracks:
            return None
        count = sum(map(len, tracks))
        if count > MAX_PIECES:
            from .errors import NodeError
            raise NodeError(f"this sound would be made of {count:,} pieces, and Kinograph joins up to {MAX_PIECES:,} "
                            "in one sound: a sound joined to itself doubles its pieces at each join; join fewer "
                            "times, or write it out (io.save_audio) and read that file back")
        first = tracks[0]
        return Audio(*first[0][:3], then=first[1:], speed=first[0].speed, tape=first[0].tape, gain=first[0].gain,
                     mix=tuple(tracks[1:]))

    def span(self, offset: float, duration: Optional[float]) -> Optional["Audio"]:
        """The part of this sound from `offset` seconds on, for `duration` seconds (None: to its end)."""
        tracks = _spans(self.tracks(), offset, duration)
        return Audio.joined(tracks[0], tracks[1:])

    def louder(self, db: float) -> "Audio":
        """This sound `db` dB louder (below 0: quieter), every piece of every track."""
        tracks = [[p._replace(gain=p.gain + db) for p in track] for track in self.tracks()]
        return Audio.joined(tracks[0], tracks[1:]) if db else self

    def warped(self, segments, tape: bool = False) -> Optional["Audio"]:
        """The sound of this clip's time remapped: each segment (a, b, length) plays its seconds a to b (b below
        a: backwards) in `length` seconds, one after another (reverse, retime, a speed ramp, a loop); a to a is a
        held frame, silent. Played faster or slower, the pitch is kept unless `tape` (it then follows the
        speed). Silence fills where the sound ends early."""
        tracks = [[] for _ in self.tracks()]
        for a, b, length in segments:
            if length <= 1e-9:
                continue
            lo = min(a, b)
            k = (b - a) / length              # source seconds a second of the result
            for out, track in zip(tracks, self.tracks()):
                part = padded(_spans([track], lo, abs(b - a))[0], abs(b - a))
                if abs(k) < 1e-9:             # a held frame: silence under it
                    out.append(Piece("", 0.0, length))
                    continue
                if k < 0:
                    part = [p._replace(start=p.start + p.duration * p.speed, speed=-p.speed) for p in reversed(part)]
                out += [p._replace(duration=p.duration / abs(k), speed=float(f"{p.speed * abs(k):.12g}"),
                                     tape=p.tape or (tape and abs(abs(k) - 1) > 1e-9)) for p in part]
        return Audio.joined(tracks[0], tracks[1:])


def sequence(parts) -> Optional[Audio]:
    """The sound of `parts` ((Audio or None, seconds) each) played one after another, each for its seconds
    (silence under one without sound or where its sound ends early), track by track."""
    own = [(audio.span(0.0, seconds) if audio else None, seconds) for audio, seconds in parts]
    width = max((len(audio.tracks()) for audio, _ in own if audio), default=0)
    tracks: list = [[] for _ in range(width)]
    for audio, seconds in own:
        mine = audio.tracks() if audio else []
        for j, track in enumerate(tracks):
            track += padded(mine[j] if j < len(mine) else [], seconds)
    return Audio.joined(tracks[0], tracks[1:]) if width else None


def _spans(tracks, offset: float, duration: Optional[float]) -> list:
    """Each track's pieces from `offset` seconds on, for `duration` seconds (None: to its end)."""
    end = float("inf") if duration is None else offset + duration
    out = []
    for track in tracks:
        kept, t = [], 0.0
        for p in track:
            stop = t + (float("inf") if p.duration is None else p.duration)
            lo, hi = max(offset, t), min(end, stop)
            if hi > lo:
                kept.append(p._replace(start=p.start + (lo - t) * p.speed,
                                       duration=None if hi == float("inf") else hi - lo))
            t = stop
        out.append(kept)
    return out


def padded(pieces, seconds: float) -> list:
    """`pieces` (of known durations) lasting exactly `seconds`, with silence after them where they end early."""
    heard = sum(p.duration for p in pieces)
    return pieces + [Piece("", 0.0, seconds - heard)] if seconds - heard > 1e-6 else pieces


class _Chunks:
    """What a reader made, in aligned chunks: one per computation, held by every Clip that shows its frames."""

    def __init__(self, chunk: int, local: bool):
        self.chunk, self.local = chunk, local
        self.cache: "OrderedDict[int, np.ndarray]" = OrderedDict()
        # A local reader's chunks read in part: which of their frames are made (a chunk in `cache` and not here
        # is whole).
        self.made: dict = {}
        self.keep = CACHED_CHUNKS
        self.lock = threading.RLock()


def _runs(missing: np.ndarray) -> Iterator[Tuple[int, int]]:
    """(start, stop) of each run of True in a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], missing, [False]]).astype(np.int8)))
    return zip(edges[::2].tolist(), edges[1::2].tolist())


class Clip:
    def __init__(self, length: int, fps: float, width: int, height: int, reader: Reader,
                 audio: Optional[Audio] = None, chunk: Optional[int] = None,
                 timecode: Optional[Timecode] = None, number: Optional[int] = None,
                 linear: Optional[Reader] = None, matte: Optional["Clip"] = None, channels: int = 3,
                 local: bool = False, over: Optional["Clip"] = None, _chunks: Optional[_Chunks] = None):
        """`local`: the reader makes each frame alone (a per-frame node), so it may be called on any span within a
        chunk and is asked only for the frames read. `over`: the clip this one reads its frames through (a matte read
        in its colour's chunks), whose chunks go when this one's do (drop_cache). The engine's wrappers, which make no
        frames of their own, share their source's chunks instead (Clip.wrapped)."""
        if length < 0 or width <= 0 or height <= 0:
            raise ValueError(f"invalid clip geometry: {length} frames of {width}x{height}")
        self.length, self.fps, self.width, self.height = int(length), float(fps), int(width), int(height)
        self.audio = audio
        self.timecode = timecode    # of frame 0, as the source file stated it; writers stamp it on renders
        # Frame 0's number in the name of the sequence it was read from (1001 for shot.1001.exr): io.save_frames
        # numbers the render's files from it, so a plate keeps its frame range through Kinograph.
        self.number = number
        # The same frames at the source's own depth, float32 [n,H,W,3 or 4] linear-light RGB(A), alpha
        # premultiplied (an EXR plate's pixels, above 1.0 and alpha included; a 16-bit, DPX or 10-bit video
        # source's code values decoded), for writers of deep files (EXR, DPX, 16-bit TIFF, ProRes): a new reader
        # drops it unless the node gives its own (nodes/common/stream: moved_float, colour_float), so a plate
        # trimmed, graded or resized goes out at its depth rather than through 8-bit sRGB.
        self.linear = linear
        self.channels = int(channels)     # 3: colour; 1: a matte (another clip's alpha)
        self._chunks = _chunks or _Chunks(
            chunk or max(1, min(MAX_CHUNK, CHUNK_BYTES // (self.width * self.height * 3))), bool(local))
        self._reader = reader
        self.chunk, self.local = self._chunks.chunk, self._chunks.local
        self._over = over
        # Read in the colour's own chunks, so a reader that decodes both at once (split_reader) does so once.
        if matte is not None and (matte.channels != 1 or matte.chunk != self.chunk or matte.length != self.length
                                  or matte.size != self.size):
            matte = Clip(self.length, self.fps, self.width, self.height, _checked_matte(matte, self),
                         chunk=self.chunk, channels=1, local=True, over=matte)
        self.matte = matte

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_array(cls, frames: np.ndarray, fps: float = 24.0, audio: Optional[Audio] = None) -> "Clip":
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames [n,H,W,3], got {frames.dtype} {frames.shape}")
        return cls(len(frames), fps, frames.shape[2], frames.shape[1], lambda a, b: frames[a:b], audio,
                   chunk=max(1, len(frames)))

    def with_(self, *, length=None, fps=None, width=None, height=None, reader=None, audio=...,
              timecode=..., number=..., linear=..., matte=..., local: bool = False) -> "Clip":
        """A clip like this one but for what is given; unless given them, it keeps `number` only while
        there are as many frames (an interpolated clip's frames are no longer the plate's), and `linear`
        (the source's float pixels) and `matte` (its alpha) only while the frames are the same (no new
        reader, size or length): a node whose pixels no longer match the alpha says which one goes with them.
        The same frames are this clip's own, chunks already made included; `local` says a new reader makes each
        frame alone (see Clip)."""
        same = reader is None and width in (None, self.width) and height in (None, self.height)
        counted = length in (None, self.length)
        return Clip(self.length if length is None else length, self.fps if fps is None else fps,
                    self.width if width is None else width, self.height if height is None else height,
                    reader or self._reader, self.audio if audio is ... else audio,
                    timecode=self.timecode if timecode is ... else timecode,
                    number=(self.number if counted else None) if number is ... else number,
                    linear=(self.linear if same else None) if linear is ... else linear,
                    matte=(self.matte if same and counted else None) if matte is ... else matte,
                    channels=self.channels, local=self.local if reader is None else local,
                    over=self._over if same and counted else None, _chunks=self._chunks if same and counted else None)

    def wrapped(self, reader: Reader, matte: Optional["Clip"] = None) -> "Clip":
        """This clip's frames, the chunks it lacks made by `reader`, which gives the same frames (an engine wrapper's:
        the node's reader timed, kept on disk, spilled) and holds none: its chunks are this clip's own, so the node's
        frames are held once however many wrappers show them (each holding its own copy, a 10-node chain of
        per-frame nodes held twice the frames main did in the editor)."""
        return Clip(self.length, self.fps, self.width, self.height, reader, self.audio, timecode=self.timecode,
                    number=self.number, linear=self.linear, matte=matte, channels=self.channels, over=self._over,
                    _chunks=self._chunks)

    def with_matte(self, reader: Optional[Reader], local: bool = False) -> "Clip":
        """This clip with the alpha `reader` gives (uint8 [n,H,W,1], 255 = opaque; None: none; `local`: a reader of
        each frame alone)."""
        if reader is None:
            return self.with_(matte=None)
        return self.with_(matte=Clip(self.length, self.fps, self.width, self.height, reader, chunk=self.chunk,
                                     channels=1, local=local))

    def opaque_matte(self) -> "Clip":
        """The matte, or one of 255 for a clip without (joined to one with transparency, it is opaque)."""
        if self.matte is not None:
            return self.matte
        h, w = self.height, self.width
        return Clip(self.length, self.fps, w, h, lambda a, b: np.full((b - a, h, w, 1), 255, np.uint8),
                    chunk=self.chunk, channels=1)

    def map(self, fn: Callable[[np.ndarray], np.ndarray], width: Optional[int] = None,
            height: Optional[int] = None) -> "Clip":
        """A frame-local transform applied chunk by chunk: fn(uint8 [n,H,W,3]) -> uint8 [n,H',W',3], each frame's
        result the same whatever frames come with it (the clip is local: read as far as asked)."""
        def reader(a: int, b: int) -> np.ndarray:
            parts = [fn(block) for _, block in self.pieces(a, b)]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        return self.with_(width=width, height=height, reader=reader, local=True)

    # -- access -------------------------------------------------------------------------
    @property
    def size(self) -> Tuple[int, int]:
        return self.width, self.height

    @property
    def duration(self) -> float:
        return self.length / self.fps if self.fps > 0 else 0.0

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"Clip({self.length} frames, {self.width}x{self.height}, {self.fps:g} fps)"

    def frame(self, i: int) -> np.ndarray:
        if i < 0:
            i += self.length
        return self.frames(i, i + 1)[0]

    def frames(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, int(start)), min(self.length, int(stop))
        if stop <= start:
            return np.empty((0, self.height, self.width, self.channels), np.uint8)
        c = self.chunk
        first, last = start // c, (stop - 1) // c
        if first == last:
            block = self._chunk(first, start, stop)
            return block[start - first * c: stop - first * c]
        with self._chunks.lock:
            # A temporal window (stabilize, deflicker: radius 20 around a chunk of 9 frames at 720p, of 1 at
            # 4K) spans many chunks, and the next window shares all but one of them. With only the last
            # CACHED_CHUNKS kept, each window computed its span again upstream (10x the decoding at 1080p).
            # Keeping a span's worth costs what the window itself already holds. A read of the whole clip
            # (a VAE encoding it) overlaps nothing later: kept, it would hold the clip twice until the run ends.
            # (A frame-local consumer of smaller frames reads its source's chunks one by one: Clip.pieces.)
            # The next window shares all but the first of these chunks and computes one: the span is enough (a
            # chunk more made every pair read across a boundary, interpolation's, keep 4 chunks where 2 do).
            if first > 0 or last < (self.length - 1) // c:
                self._chunks.keep = max(self._chunks.keep, last - first + 1)
        # A local clip's first and last chunks are made only as far as the span reaches: the rows cut off below.
        parts = [self._chunk(k, max(start, k * c), min(stop, (k + 1) * c)) for k in range(first, last + 1)]
        return np.concatenate(parts)[start - first * c: stop - first * c]

    def pieces(self, start: int, stop: int) -> Iterator[Tuple[int, np.ndarray]]:
        """Frames [start, stop) as (first frame, frames) that each lie within one of this clip's chunks: views of
        them, nothing joined. For a consumer whose chunks are longer than its source's (smaller frames: a
        downscale, a crop), which frames(start, stop) gave a joined copy of the span, 0.2 GB of 1080p frames
        under a resize to 320 wide, on top of the chunks themselves."""
        start, stop = max(0, int(start)), min(self.length, int(stop))
        while start < stop:
            end = min(stop, (start // self.chunk + 1) * self.chunk)
            yield start, self.frames(start, end)
            start = end

    def prefetch(self, start: int, stop: int) -> None:
        """Compute the chunks of frames [start, stop) in ascending order and keep them for the reads that follow,
        without joining them. For a consumer going backwards (video.reverse): a decoder seeks back to a keyframe
        for each chunk read out of order, and at 1080p (4 frames a chunk, a keyframe every 250) reversing a clip
        decoded it 32 times over; one seek per span of chunks divides that by the span."""
        start, stop = max(0, int(start)), min(self.length, int(stop))
        if stop <= start:
            return
        first, last = start // self.chunk, (stop - 1) // self.chunk
        with self._chunks.lock:
            self._chunks.keep = max(self._chunks.keep, last - first + 2)
        for k in range(first, last + 1):
            self._chunk(k)

    def chunks(self, size: Optional[int] = None, start: int = 0, stop: Optional[int] = None
               ) -> Iterator[Tuple[int, np.ndarray]]:
        size = size or self.chunk
        stop = self.length if stop is None else min(stop, self.length)
        for a in range(start, stop, size):
            yield a, self.frames(a, min(stop, a + size))

    def to_array(self) -> np.ndarray:
        """All frames at once; for small clips and tests only."""
        return self.frames(0, self.length)

    def _chunk(self, k: int, lo: Optional[int] = None, hi: Optional[int] = None) -> np.ndarray:
        """Chunk k, made at least over frames lo..hi (a local clip's; any other's whole)."""
        s = self._chunks
        a, b = k * self.chunk, min(self.length, (k + 1) * self.chunk)
        lo, hi = (lo, hi) if s.local and lo is not None else (a, b)
        with s.lock:
            block, made = s.cache.get(k), s.made.get(k)
            if block is not None and (made is None or made[lo - a:hi - a].all()):
                s.cache.move_to_end(k)
                return block
            if block is None and (lo, hi) == (a, b):
                block = self._read(a, b)
            else:
                if block is None:
                    block = np.empty((b - a, self.height, self.width, self.channels), np.uint8)
                    made = np.zeros(b - a, bool)
                for x, y in _runs(~made[lo - a:hi - a]):
                    block[lo - a + x:lo - a + y] = self._read(lo + x, lo + y)
                    made[lo - a + x:lo - a + y] = True
                if made.all():
                    s.made.pop(k, None)
                else:
                    s.made[k] = made
            s.cache[k] = block
            s.cache.move_to_end(k)
            while len(s.cache) > s.keep:
                s.made.pop(s.cache.popitem(last=False)[0], None)
            return block

    def _read(self, a: int, b: int) -> np.ndarray:
        block = np.asarray(self._reader(a, b))
        want = (b - a, self.height, self.width, self.channels)
        if block.shape != want or block.dtype != np.uint8:
            raise RuntimeError(f"clip reader returned {block.dtype} {block.shape} for frames {a}-{b}, "
                               f"expected uint8 {want}")
        return block

    def drop_cache(self) -> None:
        with self._chunks.lock:
            self._chunks.cache.clear()
            self._chunks.made.clear()
        if self._over is not None:
            self._over.drop_cache()
        if self.matte is not None:
            self.matte.drop_cache()


def _checked_matte(matte: Clip, clip: Clip) -> Reader:
    """A reader of `matte` in `clip`'s chunks, refusing one that does not fit the clip's frames."""
    if matte.channels != 1 or matte.length != clip.length or matte.size != clip.size:
        raise ValueError(f"a matte of {matte.length} frames of {matte.width}x{matte.height}x{matte.channels} does "
                         f"not fit a clip of {clip.length} frames of {clip.width}x{clip.height}")
    return matte.frames


def split_reader(read_rgba: Reader, memo: int = 8) -> Tuple[Reader, Reader]:
    """(colour reader, alpha reader) of a reader that gives both at once (uint8 [n,H,W,4], a decoder's RGBA):
    whichever is asked for a span first reads it, and the other's part waits in a small memo, so a clip and
    its matte (read in the same chunks) decode each frame once."""
    held: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
    lock = threading.Lock()

    def part(mine: slice, other: slice) -> Reader:
        def read(a: int, b: int) -> np.ndarray:
            with lock:
                got = held.pop((a, b, mine.start), None)
            if got is not None:
                return got
            block = np.asarray(read_rgba(a, b))
            with lock:
                held[(a, b, other.start)] = np.ascontiguousarray(block[..., other])
                while len(held) > memo:
                    held.popitem(last=False)
            return np.ascontiguousarray(block[..., mine])
        return read

    colour, alpha = slice(0, 3), slice(3, 4)
    return part(colour, alpha), part(alpha, colour)


class WorkMeter:
    """Seconds of work per node, wherever it happens. A lazy clip's frames are computed when a
    later node (a writer, the viewer) pulls them; the time belongs to the node whose reader ran,
    not to the puller and not to the node that merely returned the clip. Readers nest (a clip
    reads its upstream's), so each node gets its own time minus the readers it called."""

    def __init__(self):
        self.seconds: dict = {}
        self.read: set = set()              # the nodes whose lazy reader gave a reader frames (not only their call)
        self._local = threading.local()
        self._lock = threading.Lock()

    def measure(self, node: str, fn: Callable, *args):
        stack = self._local.__dict__.setdefault("stack", [])
        stack.append(0.0)
        t0 = time.perf_counter()
        try:
            return fn(*args)
        except Exception as e:
            # The innermost reader that failed is the node at fault; the readers and the writer that pulled
            # through it only pass the error on (the executor names it).
            if not hasattr(e, "kinograph_node"):
                try:
                    e.kinograph_node = node
                except AttributeError:      # an exception type that takes no attributes
                    pass
            raise
        finally:
            elapsed = time.perf_counter() - t0
            inner = stack.pop()
            if stack:
                stack[-1] += elapsed
            self._local.own = elapsed - inner
            with self._lock:
                self.seconds[node] = self.seconds.get(node, 0.0) + elapsed - inner

    def last_own(self) -> float:
        """The own seconds of the last `measure` this thread finished (the readers it called apart)."""
        return getattr(self._local, "own", 0.0)

    def wrap(self, node: str, clip: Clip) -> Clip:
        """The same frames, their computing time counted for `node`: in clip's own chunks, which the node's float
        pixels (Clip.linear) may read too (a deflicker's measures), so they are made once."""
        reader = clip._reader

        def read(a, b):
            got = self.measure(node, reader, a, b)
            # Once it gave frames: a reader that failed (its own, or one upstream it read) made none, and the chain
            # between a Save and the node whose frames failed was said to have 'computed its frames in 0.00s'.
            self.read.add(node)
            return got
        return clip.wrapped(read, None if clip.matte is None else self.wrap(node, clip.matte))

    def take(self) -> dict:
        """The seconds counted since the last take; `read` starts again too."""
        with self._lock:
            out, self.seconds, self.read = self.seconds, {}, set()
        return out
