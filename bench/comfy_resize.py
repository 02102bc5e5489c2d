"""video.resize_side / resize_pixels / scale as ComfyUI resamples (nodes.video.edit.comfy_scaled) against the
OpenCV resize they replaced in resize_side and resize_pixels (edit.resize) and a pass-through anchor, all in this
run: 200 frames of 640x360 (random levels, read from memory) pulled chunk by chunk as a consumer streams them, on
one thread each for torch and OpenCV, and torch's interpolate (ComfyUI's own call) for the methods OpenCV stands in
for; and video.blur (ComfyUI's ImageBlur: OpenCV's two separable passes) against ComfyUI's own grouped conv2d.

    python -m bench.comfy_resize [--frames 200] [--size 640x360]"""
from __future__ import annotations

import argparse
import time

import numpy as np

CASES = [("longer", 1024, "lanczos"), ("longer", 320, "area"), ("longer", 480, "bilinear"),
         ("longer", 1024, "bicubic"), ("longer", 1024, "nearest"), ("longer", 448, "area")]


def pulled(clip) -> float:
    t = time.perf_counter()
    for a in range(0, clip.length, clip.chunk):
        clip.frames(a, min(clip.length, a + clip.chunk))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", default="640x360")
    args = ap.parse_args()
    import cv2
    import torch
    import torch.nn.functional as F
    from graph_engine import Clip
    from nodes.video import edit
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    w0, h0 = map(int, args.size.split("x"))
    src = np.random.default_rng(0).integers(0, 256, (args.frames, h0, w0, 3), dtype=np.uint8)

    def clip():
        return Clip(args.frames, 24.0, w0, h0, lambda a, b: src[a:b].copy())

    def torch_scaled(frames, w, h, mode):
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
        out = F.interpolate(x, size=(h, w), mode=mode).permute(0, 2, 3, 1).numpy()
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)

    anchor = pulled(clip())
    print(f"{args.frames} frames {w0}x{h0}; pass-through anchor {anchor:.2f} s")
    for side, size, method in CASES:
        w, h = edit.side_size(w0, h0, size, side)
        now = pulled(edit.comfy_resize(clip(), w, h, method))
        cv = pulled(edit.resize(clip(), w, h, method))
        line = f"{method:8s} to {w}x{h}: ComfyUI's resampling {now:6.2f} s, OpenCV's {cv:6.2f} s"
        if method != "lanczos":
            mode = edit.COMFY_SCALES[method]
            ref = pulled(clip().map(lambda f: torch_scaled(f, w, h, mode), w, h))
            line += f", torch's interpolate {ref:6.2f} s"
        print(f"{line}  (anchor {anchor:.2f} s)")
    from nodes.video.blend import blur
    for radius in (1, 15):
        size = 2 * radius + 1
        y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
        kernel = torch.exp(-(x * x + y * y) / 2.0)
        kernel = (kernel / kernel.sum()).repeat(3, 1, 1, 1)

        def comfy_blur(frames, r=radius, k=kernel):
            t = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
            out = F.conv2d(F.pad(t, (r,) * 4, "reflect"), k, groups=3).permute(0, 2, 3, 1).numpy()
            return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
        now = pulled(blur(clip(), radius, 1.0))
        ref = pulled(clip().map(comfy_blur, w0, h0))
        print(f"blur radius {radius:2d}: OpenCV's two passes {now:6.2f} s, torch's conv2d {ref:6.2f} s  "
              f"(anchor {anchor:.2f} s)")


if __name__ == "__main__":
    main()
