"""VOID's warped noise (nodes/motion/noise_warp.py) on the state VOID's template test runs (256 x 256 frames: a
1024 x 1024 state of 16 noise channels), CPU seconds on one thread as CI's test workers run, against ComfyUI's
torch version written out in tests/void_reference.py (the implementation this one replaced did the same tensor
operations) measured in the same run, with the largest difference between the two.

    python bench/noise_warp.py [--frames 5] [--size 256]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

# run as `python bench/noise_warp.py` (and by `make bench`): the reference lives in tests/, which is no installed package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nodes.motion.noise_warp import warped_noise  # noqa: E402
from tests import void_reference as ref  # noqa: E402


def swirl(a, b):
    """A smooth flow of a few pixels that turns with the frames' brightness (as tests/test_void.py's)."""
    _, h, w = a.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    k = 1.0 + 4.0 * float((b - a).abs().mean() + a.mean())
    return torch.stack([k * torch.sin(ys / 9.0) + 1.5, k * torch.cos(xs / 11.0) - 0.7])


def cpu(fn):
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    u8 = torch.randint(0, 256, (args.frames, args.size, args.size, 3), dtype=torch.uint8,
                       generator=torch.Generator().manual_seed(0))
    first, _ = cpu(lambda: warped_noise(u8[:2, :32, :32], swirl, channels=16, seed=1))   # numba: load or compile
    torch.manual_seed(1)
    before, want = cpu(lambda: ref.get_noise_from_video(u8, swirl, noise_channels=16))
    after, got = cpu(lambda: warped_noise(u8, swirl, channels=16, seed=1))
    side = args.size // 2 * 8
    print(f"warped noise, {args.frames} frames, {side}x{side} state, 16 channels, 1 thread (CPU s)")
    print(f"  torch (ComfyUI's code)        {before:7.2f}")
    print(f"  numba loops                    {after:7.2f}   x{before / after:.1f}   first call {first:.2f}")
    print(f"  largest difference {float((got - want).abs().max()):.2e}")


if __name__ == "__main__":
    main()
