"""Peak memory and time of loading a ComfyUI int8_convrot file through Kinograph's weights loader, against loading
the same weights stored in bf16, measured in the same run.

The file: `--layers` random (3072, 3072) linear weights (Qwen-Image's width) with their biases, written once in
bf16 and once as ComfyUI writes an int8_convrot file (tests/comfy_convrot.py: rotated in groups of 256, int8 with
one scale a row, the comfy_quant tag); both load to bf16 (load_weights without a dtype). Each load runs in a fresh
process; its figures:
  peak    the process's peak resident memory (getrusage ru_maxrss), file-backed pages included
  anon    the peak of its anonymous memory (RssAnon, sampled every 5 ms): what the load took for itself
  base    anonymous memory after the imports, before the load
  out     the loaded tensors' bytes
  time    wall time of the load call
safetensors maps the file: its int8 tensors are file-backed pages (in peak, not in anon), so anon minus base is the
bf16 output plus the rotation's float32 work on a slice of rows.

    PYTHONPATH=. .venv/bin/python bench/convrot_load.py [--layers 16]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PROBE = r"""
import json, resource, sys, threading, time
sys.path.insert(0, {root!r})
def anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0
import torch, safetensors.torch
from nodes.generate.weights import load_weights
base = anon()
peak = [base]
done = threading.Event()
def sample():
    while not done.wait(0.005):
        peak[0] = max(peak[0], anon())
threading.Thread(target=sample, daemon=True).start()
t0 = time.perf_counter()
state = {call}
took = time.perf_counter() - t0
done.set()
peak[0] = max(peak[0], anon())
out = sum(t.numel() * t.element_size() for t in state.values())
print(json.dumps(dict(peak=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, anon=peak[0] / 1024,
                      base=base / 1024, out=out / 2**20, time=took)))
"""


def probe(call: str) -> dict:
    code = PROBE.format(root=str(ROOT), call=call)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=16)
    args = ap.parse_args()
    import torch
    from safetensors.torch import save_file

    import comfy_convrot as cr
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
        rows = [("bf16 file, load_weights", bf16, f"load_weights({str(bf16)!r})"),
                ("int8_convrot file, load_weights", int8, f"load_weights({str(int8)!r})")]
        print(f"{'load':34} {'file MB':>8} {'out MB':>7} {'peak MB':>8} {'anon MB':>8} {'base MB':>8} {'time s':>7}")
        for label, path, call in rows:
            r = probe(call)
            print(f"{label:34} {path.stat().st_size / 2**20:8.0f} {r['out']:7.0f} {r['peak']:8.0f} {r['anon']:8.0f} "
                  f"{r['base']:8.0f} {r['time']:7.2f}")


if __name__ == "__main__":
    main()
