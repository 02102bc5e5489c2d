"""A tuning set of small frames (176-320 wide) that bench/interpolation_real.py never scores.

interpolate.flow reduces frames less for its flows below 250 pixels high (flow_interp.MIN_FLOW_SIDE),
so settings tuned on 640-wide footage need not carry over to small frames (the bench's carphone
clips, 176x144). A setting that depends on frame size is tuned here, then confirmed on the bench:
the stretches of the bench's files that no bench clip uses and that cross no cut (bench/heldout.py's
rules), carphone at its own size and the other files downscaled (area) by SCALES (Big Buck Bunny's
whole frame, the others cropped as their bench clips).

    from bench.heldout_small import small_segments, read_small
    for seg in small_segments():
        frames = read_small(seg)            # uint8 [n, h, w, 3], n odd; drop every other one and score

    python bench/heldout_small.py [--files all]

prints, per segment, the drop-every-other-frame PSNR of ffmpeg minterpolate and interpolate.flow
(default) and the mean difference (about 30 s for the 33 segments).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, NamedTuple, Sequence, Tuple

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.heldout import bench_frames, score, shots  # noqa: E402
from bench.interpolation_real import CLIPS, read_frames  # noqa: E402

# File: (downscale factors, crop as the bench clips' or None for the whole frame).
SCALES = {
    "carphone_pristine.mp4": ((1.0,), "bench"),
    "bikes.mp4": ((0.5, 0.3), "bench"),
    "bigbuckbunny.mp4": ((0.2, 0.14), None),
    "cityCC0.mpg": ((0.3,), "bench"),
    "WolfgangLanger_Pexels.mp4": ((0.3,), "bench"),
}
SHORTEST, LONGEST = 9, 25       # frames of a segment (odd: the last frame is a kept one)


class SmallSegment(NamedTuple):
    fname: str
    first: int
    frames: int
    crop: tuple
    scale: float

    @property
    def name(self) -> str:
        return f"{Path(self.fname).stem}@{self.first}x{self.scale:g}"


def stretches(total: int, used: set, cuts: Sequence[int], shortest: int = SHORTEST,
              longest: int = LONGEST) -> List[Tuple[int, int]]:
    """(first, frames) of the runs of frames in 0..total-1 that touch no frame of `used` and cross no
    cut (a cut at c starts a new shot at frame c), cut into back-to-back pieces of at most `longest`
    frames, each an odd number of frames and none shorter than `shortest`."""
    bounds = sorted(set(cuts) | {total})
    out, i = [], 0
    while i < total:
        if i in used:
            i += 1
            continue
        end = min(min(c for c in bounds if c > i), min((u for u in used if u > i), default=total))
        while end - i >= shortest:
            n = min(longest, end - i)
            n -= 1 - n % 2
            out.append((i, n))
            i += n
        i = end
    return out


def small_segments(files: Sequence[str] = tuple(SCALES)) -> List[SmallSegment]:
    segs = []
    for fname in files:
        scales, crop = SCALES[fname]
        crop = next(c for f, _, c in CLIPS.values() if f == fname) if crop == "bench" else None
        total, cuts = shots(fname)
        for first, n in stretches(total, bench_frames(fname), cuts):
            segs += [SmallSegment(fname, first, n, crop, s) for s in scales]
    return segs


def read_small(seg: SmallSegment) -> np.ndarray:
    f = read_frames(seg.fname, seg.first, seg.frames, seg.crop)
    if seg.scale == 1.0:
        return f
    h, w = f.shape[1:3]
    size = (round(w * seg.scale), round(h * seg.scale))
    return np.stack([cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in f])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", default="all", help=f"comma-separated, or all: {', '.join(SCALES)}")
    args = ap.parse_args()
    segs = small_segments(list(SCALES) if args.files == "all" else args.files.split(","))
    print(f"{len(segs)} small tuning segments (no bench frame, no cut); drop every other frame: PSNR of "
          f"minterpolate, interpolate.flow (default)")
    score(segs, read_small)

if __name__ == "__main__":
    main()
