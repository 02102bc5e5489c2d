"""How many pictures an MP4/MOV file's sample tables claim, read from its boxes before FFmpeg opens it.

FFmpeg builds an index entry for every sample a video track's tables state as it opens the file, before a frame is
read: a table may state one sample size for all (stsz) or none per sample at all (a fragment's trun), so a 3 KB file
stating 80,000,000 frames took 2.9 GB and 27 s to open, every time Kinograph opened it (reading it, checking whether
an output is its own, importing a ComfyUI workflow that names it). A real file spends bytes on every frame it holds;
one stating more frames than a frame every few bytes is refused."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, Optional, Tuple

from graph_engine.errors import NodeError

SUFFIXES = (".mp4", ".mov", ".m4v", ".3gp", ".3g2", ".mj2", ".qt")
BYTES_PER_FRAME = 4         # an MP4's sample-size table alone spends 4 bytes on each frame
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof"}
_MAX_BOXES = 100_000        # a walk through a damaged file's boxes stops there


def _boxes(f: BinaryIO, start: int, end: int) -> Iterator[Tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes between `start` and `end`."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head)
        body = pos + 8
        if size == 1:
            big = f.read(8)
            if len(big) < 8:
                return
            size, body = struct.unpack(">Q", big)[0], pos + 16
        elif size == 0:
            size = end - pos
        if size < body - pos:
            return
        yield kind, body, min(pos + size, end)
        pos += size


def _fields(f: BinaryIO, at: int, fmt: str) -> Optional[tuple]:
    f.seek(at)
    raw = f.read(struct.calcsize(fmt))
    return struct.unpack(fmt, raw) if len(raw) == struct.calcsize(fmt) else None


def stated_frames(path) -> Dict[int, int]:
    """{track id: samples its tables state} of the file's video tracks (sample tables and fragments together); {}
    for a file that is not an MP4/MOV or whose boxes cannot be walked (FFmpeg then says what is wrong)."""
    path = Path(path)
    size = path.stat().st_size
    tracks: Dict[int, dict] = {}
    fragments: Dict[int, int] = {}
    seen = 0
    with open(path, "rb") as f:
        def walk(start: int, end: int, track: Optional[dict]) -> None:
            nonlocal seen
            for kind, body, stop in _boxes(f, start, end):
                seen += 1
                if seen > _MAX_BOXES:
                    return
                if kind == b"trak":
                    own = {"id": None, "video": False, "samples": 0}
                    walk(body, stop, own)
                    if own["id"] is not None:
                        tracks[own["id"]] = own
                    continue
                if kind == b"traf":         # a fragment's runs, of the track its tfhd names
                    of = None
                    for part, at, _ in _boxes(f, body, stop):
                        got = _fields(f, at + 4, ">I") if part in (b"tfhd", b"trun") else None
                        if got and part == b"tfhd":
                            of = got[0]
                        elif got and of is not None:
                            fragments[of] = fragments.get(of, 0) + got[0]
                    continue
                if kind in _CONTAINERS:
                    walk(body, stop, track)
                elif kind == b"tkhd" and track is not None:
                    version = _fields(f, body, ">B")
                    got = version and _fields(f, body + (20 if version[0] == 1 else 12), ">I")
                    if got:
                        track["id"] = got[0]
                elif kind == b"hdlr" and track is not None:
                    got = _fields(f, body + 8, ">4s")
                    # a MOV has a second one, of its data reference ('alis', 'url '), after the media's own
                    track["video"] = track["video"] or (bool(got) and got[0] == b"vide")
                elif kind in (b"stsz", b"stz2") and track is not None:
                    got = _fields(f, body + 8, ">I")
                    track["samples"] = got[0] if got else 0
        try:
            walk(0, size, None)
        except (OSError, struct.error, RecursionError):
            return {}
    return {t["id"]: t["samples"] + fragments.get(t["id"], 0) for t in tracks.values() if t["video"]}


def refuse_claimed_frames(path) -> None:
    """Refuse an MP4/MOV whose video sample tables state more frames than its size can hold, before FFmpeg indexes
    them."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES or not path.is_file():
        return
    size = path.stat().st_size
    for track, frames in stated_frames(path).items():
        if frames * BYTES_PER_FRAME > size + 4096:
            raise NodeError(f"{path}: its video track states {frames:,} frames in a file of {size:,} bytes, more "
                            f"than a file that size can hold: it is damaged or made to fill memory as it is opened "
                            f"(every frame it states is indexed first). Export it again, or re-encode what plays of "
                            f"it with ffmpeg")
