"""color.lut at 1920x1080: milliseconds a frame of apply_lut (tetrahedral and trilinear, 33- and 65-point
tables), against FFmpeg's lut3d filter on the same frames in the same run (rgb24 through a pipe, one
thread, so the pipe's copy is counted against it), and the old numpy trilinear path. Also how long
parse_cube takes on each table.

    python bench/lut.py [--frames 10]
"""
import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.footage import footage
from nodes.common.lut import apply_lut, lattice_positions, parse_cube
from nodes.io.video_write import ffmpeg_exe


def numpy_trilinear(frame, lut):
    """The numpy path color.lut had before its kernel: the baseline."""
    x = frame.astype(np.float32) / 255.0
    n = lut.table.shape[0]
    pos = np.clip((x - lut.domain_min) / (lut.domain_max - lut.domain_min), 0.0, 1.0) * (n - 1)
    i0 = np.minimum(pos.astype(np.int32), n - 2)
    f = pos - i0
    t = lut.table
    r0, g0, b0 = i0[..., 0], i0[..., 1], i0[..., 2]
    fr, fg, fb = f[..., 0:1], f[..., 1:2], f[..., 2:3]
    c00 = t[b0, g0, r0] * (1 - fr) + t[b0, g0, r0 + 1] * fr
    c01 = t[b0, g0 + 1, r0] * (1 - fr) + t[b0, g0 + 1, r0 + 1] * fr
    c10 = t[b0 + 1, g0, r0] * (1 - fr) + t[b0 + 1, g0, r0 + 1] * fr
    c11 = t[b0 + 1, g0 + 1, r0] * (1 - fr) + t[b0 + 1, g0 + 1, r0 + 1] * fr
    out = (c00 * (1 - fg) + c01 * fg) * (1 - fb) + (c10 * (1 - fg) + c11 * fg) * fb
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def write_cube(path: Path, size: int) -> None:
    g = np.linspace(0, 1, size)
    b, gr, r = np.meshgrid(g, g, g, indexing="ij")
    x = np.stack([r, gr, b], -1).reshape(-1, 3)
    look = np.clip(np.stack([x[:, 0] ** 0.8 + 0.05 * x[:, 2], x[:, 1] ** 1.2, 0.2 + 0.7 * x[:, 2] ** 0.9], -1), 0, 1)
    path.write_text(f"LUT_3D_SIZE {size}\n" + "\n".join(f"{a:.6f} {b:.6f} {c:.6f}" for a, b, c in look))


def ms_per_frame(fn, frames) -> float:
    fn(frames[0])       # compile / warm
    t = time.perf_counter()
    for f in frames:
        fn(f)
    return (time.perf_counter() - t) * 1000 / len(frames)


def ffmpeg_ms(frames, cube: Path, interp: str) -> float:
    n, h, w, _ = frames.shape
    cmd = [ffmpeg_exe(), "-v", "error", "-threads", "1", "-filter_threads", "1", "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "-", "-vf", f"lut3d=file={cube}:interp={interp}",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    data = frames.tobytes()
    subprocess.run(cmd, input=data[: h * w * 3], capture_output=True, check=True)
    t = time.perf_counter()
    subprocess.run(cmd, input=data, capture_output=True, check=True)
    return (time.perf_counter() - t) * 1000 / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=10)
    n = ap.parse_args().frames
    frames = footage(n, 1920, 1080, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        for size in (33, 65):
            cube = Path(tmp) / f"look{size}.cube"
            write_cube(cube, size)
            t = time.perf_counter()
            lut = parse_cube(str(cube))
            parse = (time.perf_counter() - t) * 1000
            pos = lattice_positions(lut)
            print(f"{size}-point table: parse_cube {parse:.0f} ms")
            for interp in ("tetrahedral", "trilinear"):
                ours = ms_per_frame(lambda f: apply_lut(f, lut, 1.0, interp, pos), frames)
                print(f"  {interp:12s} apply_lut {ours:6.1f} ms/frame   ffmpeg lut3d {ffmpeg_ms(frames, cube, interp):6.1f} ms/frame")
            print(f"  {'trilinear':12s} old numpy {ms_per_frame(lambda f: numpy_trilinear(f, lut), frames):6.1f} ms/frame")


if __name__ == "__main__":
    main()
