"""Peak memory and time of loading a ComfyUI int8_convrot file through Kinograph's weights loader, against loading
the same weights stored in bf16, measured in the same run.

The file: `--layers` random (3072, 3072) linear weights (Qwen-Image's width) with their biases, written once in
bf16 and once as ComfyUI writes an int8_convrot file (tests/comfy_convrot.py: rotated in groups of 256, int8 with
one scale a row, the comfy_quant tag); both load to bf16 (load_weights without a dtype), out MB of weights. Each
load runs in a fresh process (bench/model_load.py's probe); its figures:
  peak    the process's peak resident memory (getrusage ru_maxrss), file-backed pages included
  anon    the peak of its anonymous memory (RssAnon, sampled every 10 ms): what the load took for itself
  base    anonymous memory after the imports, before the load
  time    wall time of the load call
safetensors maps the file: its int8 tensors are file-backed pages (in peak, not in anon), so anon minus base is the
bf16 output plus the rotation's float32 work on a slice of rows.

    PYTHONPATH=. .venv/bin/python bench/convrot_load.py [--layers 16]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=16)
    args = ap.parse_args()
    import torch
    from safetensors.torch import save_file

    import comfy_convrot as cr
    from model_load import probe
    with tempfile.TemporaryDirectory() as tmp:
        g = torch.Generator().manual_seed(0)
        state = {}
        for i in range(args.layers):
            state[f"blocks.{i}.proj.weight"] = (torch.randn(3072, 3072, generator=g) * 0.02).to(torch.bfloat16)
            state[f"blocks.{i}.proj.bias"] = torch.zeros(3072, dtype=torch.bfloat16)
        bf16, int8 = Path(tmp) / "model_bf16.safetensors", Path(tmp) / "model_int8_convrot.safetensors"
        save_file(state, str(bf16))
        save_file(cr.quantise_file_state(state, 256), str(int8))
        del state
        out = args.layers * (3072 * 3072 + 3072) * 2 / 2**20
        print(f"{'load':34} {'file MB':>8} {'out MB':>7} {'peak MB':>8} {'anon MB':>8} {'base MB':>8} {'time s':>7}")
        for label, path in (("bf16 file, load_weights", bf16), ("int8_convrot file, load_weights", int8)):
            r = probe("from nodes.generate.weights import load_weights", f"state = load_weights({str(path)!r})")
            print(f"{label:34} {path.stat().st_size / 2**20:8.0f} {out:7.0f} {r['peak'] / 1024:8.0f} "
                  f"{r['anon'] / 1024:8.0f} {r['base'] / 1024:8.0f} {r['time']:7.2f}")


if __name__ == "__main__":
    main()
