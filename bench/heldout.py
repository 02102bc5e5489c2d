"""A tuning set of real footage that bench/interpolation_real.py never scores.

The segments are stretches of the bench's own files that share no frame with a bench clip and
cross no cut (found with the node's own cut detector), cropped as the file's bench clips are.
Tune interpolate.flow on them, then confirm on the bench clips: the bench stays a fair judge.
The files that no setting was ever tuned on (HELD_OUT_FILES: the city and portrait clips) are
the closest stand-ins for the judges' unseen footage; the default set is theirs alone.
Segments are 25 frames: cityCC0 is short, and 41-frame ones would leave a single city segment.

    from bench.heldout import HELD_OUT_FILES, read_segment, tuning_segments
    for seg in tuning_segments(HELD_OUT_FILES):
        frames = read_segment(seg)          # uint8 [25, h, w, 3]; drop every other one and score

    python bench/heldout.py [--files all] [--frames 25]

prints the segments and, per segment, the drop-every-other-frame PSNR of ffmpeg minterpolate and
interpolate.flow (default), the yardstick to tune against.
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any, Callable, List, NamedTuple, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.interpolation import minterpolate, psnr  # noqa: E402
from bench.interpolation_real import CLIPS, FOOTAGE, FRAMES, footage_path, ours, read_frames  # noqa: E402

HELD_OUT_FILES = ("cityCC0.mpg", "WolfgangLanger_Pexels.mp4")
SEGMENT = 25
CUT = 0.3                  # interpolate.flow's default scene_threshold


class Segment(NamedTuple):
    fname: str
    first: int
    frames: int
    crop: tuple

    @property
    def name(self) -> str:
        return f"{Path(self.fname).stem}@{self.first}"


def bench_frames(fname: str) -> set:
    """Every frame of `fname` that a bench clip uses."""
    return {i for f, first, _ in CLIPS.values() if f == fname for i in range(first, first + FRAMES)}


@functools.lru_cache(maxsize=None)
def shots(fname: str) -> tuple:
    """(number of frames, the first frame of each shot after the first) of a file of FOOTAGE, by the
    node's own cut detector (schedule.scene_cut)."""
    import av
    from nodes.interpolate.schedule import cut_score, scene_cut
    cuts, prev, n = [], None, 0
    with av.open(str(footage_path(fname))) as box:
        for n, fr in enumerate(box.decode(video=0)):
            img = fr.to_ndarray(format="rgb24")
            if prev is not None and scene_cut(cut_score(prev, img), prev, img, CUT):
                cuts.append(n)
            prev = img
    return n + 1, tuple(cuts)


def windows(total: int, used: set, cuts: Sequence[int], length: int) -> List[int]:
    """First frames of back-to-back windows of `length` frames in 0..total-1 that touch no frame
    of `used` and hold no cut (a cut at c starts a new shot at frame c), taken greedily from 0."""
    out, i = [], 0
    while i + length <= total:
        span = range(i, i + length)
        if used.isdisjoint(span) and not any(i < c < i + length for c in cuts):
            out.append(i)
            i += length
        else:
            i += 1
    return out


def tuning_segments(files: Sequence[str] = HELD_OUT_FILES, frames: int = SEGMENT) -> List[Segment]:
    """The tuning set: every window of `frames` frames of `files` that no bench clip touches."""
    segs = []
    for fname in files:
        crop = next(c for f, _, c in CLIPS.values() if f == fname)
        total, cuts = shots(fname)
        segs += [Segment(fname, i, frames, crop) for i in windows(total, bench_frames(fname), cuts, frames)]
    return segs


def read_segment(seg: Segment) -> np.ndarray:
    return read_frames(seg.fname, seg.first, seg.frames, seg.crop)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", default=",".join(HELD_OUT_FILES), help=f"comma-separated, or all: {', '.join(FOOTAGE)}")
    ap.add_argument("--frames", type=int, default=SEGMENT, help="frames per segment (odd)")
    args = ap.parse_args()
    files = list(FOOTAGE) if args.files == "all" else args.files.split(",")
    segs = tuning_segments(files, args.frames)
    print(f"{len(segs)} tuning segments of {args.frames} frames (no bench frame, no cut); drop every other frame: "
          f"PSNR of minterpolate, interpolate.flow (default)")
    score(segs, read_segment)


def score(segs: Sequence, read: Callable[[Any], np.ndarray]) -> None:
    """Print, per segment (read by `read`), the drop-every-other-frame PSNR of minterpolate and
    interpolate.flow (default), then their mean difference."""
    gains = []
    for seg in segs:
        f = read(seg)
        kept, truth = f[0::2], f[1::2]
        m, o = (float(np.mean([psnr(s, t) for s, t in zip(fn(kept)[1::2], truth)]))
                for fn in (minterpolate, lambda k: ours(k, None)))
        gains.append(o - m)
        print(f"  {seg.name:36s} {f.shape[2]}x{f.shape[1]}x{len(f)}  minterpolate {m:6.2f} dB  interpolate.flow "
              f"{o:6.2f} dB  ({o - m:+.2f})", flush=True)
    print(f"mean interpolate.flow - minterpolate over {len(gains)} segments: {np.mean(gains):+.3f} dB")


if __name__ == "__main__":
    main()
