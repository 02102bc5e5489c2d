"""SMPTE timecode: the HH:MM:SS:FF label a camera stamps on its first frame, which editors (Resolve,
Premiere, Avid) use to line a render up with the plate it came from.

Written here rather than taken from a package: the one job is counting frames to and from a label
(drop-frame included) and the timecode packages on PyPI pull in more than these forty lines."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_LABEL = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


@dataclass(frozen=True)
class Timecode:
    """The timecode of a clip's frame 0: `frame` counts timecode frames from 00:00:00:00 at `rate`
    (the real frame rate the label counts, 29.97 for NTSC); `drop` for drop-frame labels (HH:MM:SS;FF)."""
    frame: int
    rate: float
    drop: bool = False

    @property
    def base(self) -> int:
        """Frames in a timecode second: 30 for 29.97, 24 for 23.976."""
        return max(1, round(self.rate))

    @classmethod
    def parse(cls, text: str, rate: float) -> Optional["Timecode"]:
        """The timecode a file states (None for a label that is not one, so a damaged tag is ignored)."""
        m = _LABEL.match(str(text).strip())
        if not m or rate <= 0:
            return None
        h, mi, s, sep, ff = int(m[1]), int(m[2]), int(m[3]), m[4], int(m[5])
        drop = sep in ";," and _dropped(round(rate)) > 0
        base = max(1, round(rate))
        if mi > 59 or s > 59 or ff >= base:
            return None
        return cls(_counted(h, mi, s, ff, base, drop), rate, drop)

    def label(self) -> str:
        """HH:MM:SS:FF (HH:MM:SS;FF drop-frame)."""
        h, m, s, ff = self.parts()
        return f"{h:02d}:{m:02d}:{s:02d}{';' if self.drop else ':'}{ff:02d}"

    def parts(self) -> tuple:
        """(hours, minutes, seconds, frames) of the label, wrapping at 24 hours as timecode does."""
        base, frame = self.base, self.frame
        if self.drop:
            d = _dropped(base)
            per_10min, per_min = base * 600 - 9 * d, base * 60 - d
            tens, rest = divmod(frame, per_10min)
            frame += 9 * d * tens + (d * ((rest - d) // per_min) if rest > d else 0)
        frame %= base * 86400
        s, ff = divmod(frame, base)
        return s // 3600, s // 60 % 60, s % 60, ff

    def shifted(self, frames: int, fps: float) -> "Timecode":
        """The timecode `frames` frames later in a clip playing at `fps` (a trim's first kept frame), counted
        at `fps`: frame 1 of a 48 fps in-between clip is half a 24 fps timecode frame on, which only 48 fps
        labels can say."""
        start = self.at(fps)
        return Timecode(start.frame + frames, start.rate, start.drop)

    def at(self, fps: float) -> "Timecode":
        """The same time for a render at `fps` (after a retime or interpolation): the label keeps its
        hours, minutes and seconds, and its frames become the same fraction of a second."""
        if round(fps) == self.base and abs(fps - self.rate) < 0.01:
            return self
        target = Timecode(0, fps, self.drop and _dropped(round(fps)) > 0)
        h, mi, s, ff = self.parts()
        ff = min(target.base - 1, round(ff * target.base / self.base))
        return Timecode(_counted(h, mi, s, ff, target.base, target.drop), fps, target.drop)


def _counted(h: int, mi: int, s: int, ff: int, base: int, drop: bool) -> int:
    """Timecode frames from 00:00:00:00 to the label h:mi:s:ff (drop-frame labels skip some)."""
    frame = (h * 3600 + mi * 60 + s) * base + ff
    if drop:
        minutes = h * 60 + mi
        frame -= _dropped(base) * (minutes - minutes // 10)
    return frame


def _dropped(base: int) -> int:
    """Labels skipped each minute (but every tenth) in drop-frame timecode: 2 at 30, 4 at 60."""
    return 2 * (base // 30) if base % 30 == 0 else 0
