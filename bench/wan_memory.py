"""Peak memory of the Wan 2.2 S2V blocks at the S2V template's token count (640x640, 77 frames: 20 latent frames of
40x40 tokens, a reference frame's 1600 and the motion frames' 2400 at timestep 0), on a transformer narrowed to fit
a CPU machine (one block, width 128): the modulation as it was (one row per token, diffusers' block given
[B, N, 6, dim]) against wan_s2v's by segment, and the anchor: the same block with one row for every token, as a
text-to-video Wan runs. Each case runs in its own process; the figure is the growth of its peak resident memory
(getrusage's max RSS) over the forward, the least of a few runs. What is measured scales with width and blocks: at the released 5120 wide,
the per-token rows are 40x these.

    PYTHONPATH=$PWD .venv/bin/python bench/wan_memory.py [--tokens 32000] [--held 4000]"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

CASES = ("anchor", "per-token", "segment")


def _case(name, tokens, held, dim, layers):
    from diffusers import WanTransformer3DModel
    from nodes.generate.wan_s2v import _block, _grid, _rotary
    torch.manual_seed(0)
    heads = dim // 128
    model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=128,
                                  in_channels=16, out_channels=16, text_dim=64, freq_dim=256, ffn_dim=4 * dim,
                                  num_layers=layers, cross_attn_norm=True).eval()
    n = tokens + held
    x, context = torch.randn(1, n, dim), torch.randn(1, 64, 64)
    rotary = _rotary(_grid(torch.arange(n, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                           torch.zeros(1, dtype=torch.float64)), 128)
    t = torch.tensor([700.0])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.no_grad():
        if name == "per-token":
            steps = torch.zeros(1, n)
            steps[:, :tokens] = t
            _, proj, ctx, _ = model.condition_embedder(steps.flatten(), context, None, timestep_seq_len=n)
            proj = proj.unflatten(2, (6, -1))
            for block in model.blocks:
                x = block(x, ctx, proj, rotary)
        elif name == "segment":
            _, proj, ctx, _ = model.condition_embedder(torch.cat([t, torch.zeros_like(t)]), context, None)
            rows = proj.unflatten(1, (6, -1)).split(1)
            for block in model.blocks:
                x = _block(block, x, ctx, rows, tokens, rotary)
        else:
            _, proj, ctx, _ = model.condition_embedder(t, context, None)
            proj = proj.unflatten(1, (6, -1))
            for block in model.blocks:
                x = block(x, ctx, proj, rotary)
    seconds = time.perf_counter() - start
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"case": name, "peak_mb": grown / 1024, "seconds": seconds}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=32000, help="the clip's tokens (at the step's timestep)")
    ap.add_argument("--held", type=int, default=4000, help="reference and motion tokens (at timestep 0)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--case", choices=CASES)
    a = ap.parse_args()
    if a.case:
        return _case(a.case, a.tokens, a.held, a.dim, a.layers)
    print(f"S2V blocks, {a.tokens} + {a.held} tokens, width {a.dim}, {a.layers} block(s); peak RSS growth over the "
          "forward, one process a case")
    # one malloc arena: glibc's per-thread arenas otherwise make the peak vary by tens of MB from run to run
    env = {**os.environ, "MALLOC_ARENA_MAX": "1"}
    runs = {name: [] for name in CASES}
    for _ in range(a.repeats):
        for name in CASES:
            out = subprocess.run([sys.executable, __file__, "--case", name, "--tokens", str(a.tokens), "--held",
                                  str(a.held), "--dim", str(a.dim), "--layers", str(a.layers)],
                                 capture_output=True, text=True, check=True, env=env)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    got = {name: {k: min(r[k] for r in runs[name]) for k in ("peak_mb", "seconds")} for name in CASES}
    for name in CASES:
        print(f"  {name:10s} peak +{got[name]['peak_mb']:8.1f} MB  {got[name]['seconds']:6.2f} s  (least of "
              f"{a.repeats}; peaks seen {', '.join('%.0f' % r['peak_mb'] for r in runs[name])} MB)")
    anchor = got["anchor"]["peak_mb"]
    for name, when in (("per-token", "before"), ("segment", "after")):
        print(f"  {when}: {name:10s} over the anchor {got[name]['peak_mb'] - anchor:+.1f} MB, "
              f"time {got[name]['seconds'] / got['anchor']['seconds']:.2f}x the anchor's")


if __name__ == "__main__":
    main()
