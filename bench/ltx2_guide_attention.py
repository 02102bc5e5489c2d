"""What LTX-2's guides (condition.guide_video) cost a transformer forward, in time and peak memory.

    python bench/ltx2_guide_attention.py [--frames 121] [--width 768] [--height 512] [--layers 2] [--threads 1]

A random LTX-2 transformer of few, narrow layers (4 heads of 32) at the token count of a real clip (121 frames of
768x512: 16 latent frames of 16 x 24 tokens, and its sound) with a first and a last frame as guides (2 latent frames
more). Each case runs in a fresh process; it prints the median seconds of 3 forwards and the memory the forward
took at its peak (CUDA's peak allocation on a GPU, else the process's peak resident size over the model's), against
the anchor: the same forward without guides.
  guides at 1:    no attention weighting (ComfyUI builds no mask when every strength is 1);
  guides at 0.7:  the weighting as sample applies it (two query blocks, a broadcast row and a [G, T] block);
  dense at 0.7:   the same weighting as one [T, T] bias (diffusers' video_self_attention_mask), what it replaced."""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

CASES = ("anchor", "guides at 1", "guides at 0.7", "dense at 0.7")


class _dense:
    """The hook this replaced: every block's video self-attention given the whole [T, T] bias, expanded (not copied)
    to one per batch and head."""

    def __init__(self, model, bias):
        self.layers, self.bias = [b.attn1 for b in model.transformer_blocks], bias

    def __enter__(self):
        self.before = [a.processor for a in self.layers]
        for a, p in zip(self.layers, self.before):
            a.processor = lambda attn, x, enc=None, mask=None, *rest, _p=p: _p(
                attn, x, enc, self.bias.expand(x.shape[0] * attn.heads, -1, -1), *rest)

    def __exit__(self, *exc):
        for a, p in zip(self.layers, self.before):
            a.processor = p


def _case(name: str, args) -> dict:
    import diffusers
    import torch
    from nodes.generate.adapters.ltx2 import _video_self_attention_bias
    from nodes.generate.ltx2_guide import attention_blocks, needs_bias
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    model = diffusers.LTX2VideoTransformer3DModel(
        in_channels=128, out_channels=128, num_attention_heads=4, attention_head_dim=32, cross_attention_dim=128,
        audio_in_channels=128, audio_out_channels=128, audio_num_attention_heads=2, audio_attention_head_dim=32,
        audio_cross_attention_dim=64, caption_channels=64, num_layers=args.layers).eval().to(device, dtype)
    f, h, w = (args.frames - 1) // 8 + 1, args.height // 32, args.width // 32
    guides = 0 if name == "anchor" else 2
    total, sound = (f + guides) * h * w, round(args.frames / 24 * 25)
    weight = torch.full((guides * h * w,), 1.0 if name == "guides at 1" else 0.7, device=device)
    g = torch.Generator(device).manual_seed(1)
    x = torch.randn(1, total, 128, generator=g, device=device, dtype=dtype)
    a = torch.randn(1, sound, 128, generator=g, device=device, dtype=dtype)
    e = torch.randn(1, 16, 64, generator=g, device=device, dtype=dtype)

    def hook():
        # made in each forward, as the adapter makes it for each model call
        if name == "dense at 0.7":
            row, block = attention_blocks(weight, total, dtype)
            return _dense(model, torch.cat([row.expand(1, total - weight.shape[0], -1), block], 1))
        return _video_self_attention_bias(model, attention_blocks(weight, total, dtype)
                                          if name.startswith("guides") and needs_bias(weight) else None)

    def forward():
        with torch.no_grad(), hook():
            model(hidden_states=x, audio_hidden_states=a, encoder_hidden_states=e, audio_encoder_hidden_states=e,
                  timestep=torch.full((1, total), 500.0, device=device),
                  audio_timestep=torch.full((1, sound), 500.0, device=device),
                  num_frames=f + guides, height=h, width=w, fps=24.0, audio_num_frames=sound, return_dict=False)
        if device == "cuda":
            torch.cuda.synchronize()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    forward()                                           # warm-up (and the peak)
    peak = (torch.cuda.max_memory_allocated() - base if device == "cuda"
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        forward()
        times.append(time.perf_counter() - t0)
    return {"s": statistics.median(times), "mb": peak / 2**20, "tokens": total, "device": device}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=121)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared machine)")
    ap.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(_case(args.case, args)))
        return
    rows = {}
    for name in CASES:
        cmd = [sys.executable, __file__, "--case", name] + [f"--{k}={getattr(args, k)}" for k in
                                                            ("frames", "width", "height", "layers", "threads")]
        rows[name] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    anchor = rows["anchor"]
    print(f"{args.frames} frames {args.width}x{args.height}, {args.layers} layers, on {anchor['device']}")
    for name, r in rows.items():
        print(f"{name:14s} {r['tokens']:6d} tokens  {r['s']:7.3f} s ({r['s'] / anchor['s']:5.2f}x)  "
              f"peak {r['mb']:8.1f} MB ({r['mb'] - anchor['mb']:+8.1f} MB)")


if __name__ == "__main__":
    main()
