"""Seams of long videos from a 16-frame model: overlap-fused context windows vs batched windows.

kinograph-mini (trained on 16 frames) draws a 64-frame clip three ways from the same noise:
batched windows (independent 16-frame chunks: the anchor), static windows with overlap
fused by linear ramps, and uniform looped windows with pyramid weights. For each, the seam
metric (frame difference across the batched chunk boundaries 16/32/48 over the median
difference elsewhere; 1 = seamless) and the colour drift slope are printed, with the time.

    python bench/consistency.py [--frames 64] [--steps 20] [--seed 0] [--prompt "..."]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from nodes.consistency.context_sampling import windowed_model_fn  # noqa: E402
from nodes.consistency.context_windows import ContextOptions  # noqa: E402
from nodes.consistency.noise_priors import generator, independent  # noqa: E402
from nodes.generate.samplers import flow_sigmas, sample_flow_euler  # noqa: E402
from nodes.metrics.seam import boundary_frames, color_drift, frame_differences, seam_discontinuity  # noqa: E402
from nodes.mini.model import HEIGHT, LATENT_CHANNELS, NATIVE_FRAMES, WIDTH, load_mini, to_uint8  # noqa: E402

SCHEMES = [
    ("batched (anchor)", ContextOptions("batched", NATIVE_FRAMES, 0, fuse="flat")),
    ("static, overlap 4, overlap_linear", ContextOptions("static", NATIVE_FRAMES, 4, fuse="overlap_linear")),
    ("uniform looped, overlap 4, pyramid", ContextOptions("uniform_looped", NATIVE_FRAMES, 4, fuse="pyramid")),
]


def guided(model, text_encoder, prompt: str, cfg: float):
    with torch.no_grad():
        emb, mask = text_encoder.encode([prompt, ""])

    def model_fn(x, sigma):
        b = x.shape[0]
        t = torch.full((2 * b,), float(sigma))
        v = model(torch.cat([x, x]), t, emb.repeat_interleave(b, 0), mask.repeat_interleave(b, 0))
        cond, uncond = v[:b], v[b:]
        return uncond + cfg * (cond - uncond)

    return model_fn


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "resources/models/kinograph-mini"))
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt", default="a red circle moving right on a blue background")
    args = ap.parse_args(argv)
    if not (Path(args.model) / "transformer").is_dir():
        sys.exit(f"no kinograph-mini weights in {args.model}: train them first (python -m nodes.mini.train)")
    torch.set_num_threads(2)
    model, text_encoder = load_mini(args.model)
    model_fn = guided(model, text_encoder, args.prompt, args.cfg)
    sigmas = flow_sigmas(args.steps)
    noise = independent((1, LATENT_CHANNELS, args.frames, HEIGHT, WIDTH), generator(args.seed))
    seams = boundary_frames(args.frames, every=NATIVE_FRAMES)
    print(f"kinograph-mini, {args.frames} frames {WIDTH}x{HEIGHT} from {NATIVE_FRAMES}-frame windows, "
          f"{args.steps} steps, cfg {args.cfg}, seed {args.seed}, prompt {args.prompt!r}")
    print(f"seam = mean frame difference at frames {seams} / median elsewhere (1 = seamless)")
    anchor = None
    for name, opts in SCHEMES:
        t0 = time.perf_counter()
        with torch.no_grad():
            x0 = sample_flow_euler(windowed_model_fn(model_fn, opts, sigmas), noise.clone(), sigmas)
        secs = time.perf_counter() - t0
        frames = to_uint8(x0[0])
        seam = seam_discontinuity(frame_differences(frames), seams)["seam"]
        drift = color_drift(frames)["slope"]
        anchor = anchor or seam
        print(f"{name:36s} seam {seam:6.2f} ({seam / anchor:4.2f}x anchor)  "
              f"colour drift {drift:+.3f} dE/frame  {secs:6.1f} s")


if __name__ == "__main__":
    main()
