"""Memory a model loaded from each of ComfyUI's quantised forms holds, packed (nodes/generate/packed_weight.py)
against the same weights expanded to bf16 at load (the former way, the anchor), measured in the same run.

The model: `--layers` random (width x width) linear layers with biases (3072: Qwen-Image's width), each written as
ComfyUI writes it (tests/comfy_blockquant.py, tests/comfy_convrot.py, fp8_scaled: fp8 of weight / scale and its
scale_weight), read by weights.dequantise and built with load_state_dict(assign=True) as the converters do. For
each form it prints:
  held     bytes the model's parameters hold (each storage once: a packed layer's stored weight and scales)
  vs bf16  held over the anchor's
  device   with --device cuda: torch.cuda.memory_allocated after moving the model there (the anchor's likewise)
  step     time of one forward of `--tokens` tokens (every layer expanded for its matmul; the anchor's matmuls
           alone), informational
  max|d|   largest difference of that forward's output from the anchor's (0: the same values)
  default  the form a load that does not say takes for a run on --device now (nodes/generate/pack_policy.py:
           packed on a GPU or where the expanded weights would take over half the RAM available)
GGUF types (gguf_Q8_0, gguf_Q6_K, gguf_Q4_K: a Q4_K_M file is Q4_K with some Q6_K) also print an `f32` row: the
state dict as Kinograph read a GGUF file before, every tensor expanded to float32.

With --iq it measures instead the GGUF types only gguf-py's numpy code dequantises (IQ2_XXS, IQ2_XS, IQ3_S,
TQ2_0: weights._numpy_only), per type:
  gguf-py  seconds gguf.quants.dequantize takes for one width x width matrix (the anchor, measured here)
  before   a step as before: every layer dequantised through gguf-py for each forward (cfg once off)
  first    the first step now: each layer dequantised once, at its first use, and kept in the compute dtype
  later    a step after it: the matmuls alone
  held MB  the layers' bytes packed (the file's) and kept expanded (bf16)

    PYTHONPATH=. .venv/bin/python bench/packed_weights.py [--layers 12] [--width 3072] [--device cpu|cuda]
    PYTHONPATH=. .venv/bin/python bench/packed_weights.py --iq [--layers 2] [--width 3072] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

FORMATS = ("nvfp4", "mxfp8", "int8_convrot", "fp8_scaled", "fp8", "gguf_Q8_0", "gguf_Q6_K", "gguf_Q4_K")


def quantised(plain: dict, fmt: str) -> dict:
    """`plain`'s layers as ComfyUI stores them in `fmt`; a GGUF type's as read from a file of that type (random
    blocks of the same shapes: gguf-py writes no K-quants), its biases F32."""
    import torch
    if fmt.startswith("gguf_"):
        return gguf_state(plain, fmt[len("gguf_"):])
    import comfy_blockquant as ref
    import comfy_convrot as cr
    from comfy_layouts import fp8_scaled
    if fmt in ("nvfp4", "mxfp8"):
        out = {k: v for k, v in plain.items() if not k.endswith(".weight")}
        for k, v in plain.items():
            if k.endswith(".weight"):
                out.update(ref.quantise_layer(k[: -len(".weight")], v, fmt))
        return out
    if fmt == "int8_convrot":
        return cr.quantise_file_state(plain)
    return fp8_scaled(plain) if fmt == "fp8_scaled" else {k: v.to(torch.float8_e4m3fn) for k, v in plain.items()}


def gguf_state(plain: dict, kind: str) -> dict:
    import tempfile
    import gguf_blocks
    from nodes.generate.weights import read_raw
    kind = gguf_blocks.T[kind]
    tensors = {}
    for i, (k, v) in enumerate(plain.items()):
        tensors[k] = ((kind, gguf_blocks.blocks(kind, *v.shape, seed=i, scales=(1e-5, 1e-4))) if v.ndim == 2
                      else (None, v.numpy()))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench-{kind.name}.gguf"
        gguf_blocks.write(path, tensors)
        return read_raw(path)


def build(state: dict, layers: int, width: int, packed: bool, device: str):
    import torch
    from nodes.generate.weights import dequantise
    with torch.device("meta"):
        model = torch.nn.Sequential(*[torch.nn.Linear(width, width, dtype=torch.bfloat16) for _ in range(layers)])
    model.load_state_dict({k.replace("blocks.", ""): v for k, v in dequantise(state, torch.bfloat16, packed=packed)
                           .items()}, assign=True)
    return model.to(device)


def measure(model, x, device: str):
    import torch
    from nodes.generate.packed_weight import module_bytes
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.no_grad():
        model(x)        # warm-up
        sync()
        start = time.perf_counter()
        out = model(x)
        sync()
    return module_bytes(model), time.perf_counter() - start, out


IQ_TYPES = ("IQ2_XXS", "IQ2_XS", "IQ3_S", "TQ2_0")


def timed(run, arg, device: str) -> float:
    import torch
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        run(arg)
    sync()
    return time.perf_counter() - start


def iq(plain: dict, args, x) -> None:
    """The --iq table (see the module docstring)."""
    import gguf
    from nodes.generate.packed_weight import PackedWeight, held_bytes
    n = args.layers * args.width ** 2
    print(f"{'type':<10}{'gguf-py s':>10}{'M val/s':>9}{'before s':>10}{'first s':>9}{'later ms':>10}"
          f"{'packed MB':>11}{'held MB':>9}")
    for kind in IQ_TYPES:
        state = gguf_state(plain, kind)
        q = state["blocks.0.weight"].stored.tensors["q"].numpy()
        anchor = timed(lambda blocks: gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType[kind]), q, "cpu")
        before = build(state, args.layers, args.width, True, args.device)
        for p in before.parameters():
            if isinstance(p, PackedWeight):
                p.stored.cfg = {**p.stored.cfg, "once": False}
        step_before = timed(before, x, args.device)
        packed = sum(p.stored.nbytes() for p in before.parameters() if isinstance(p, PackedWeight))
        del before
        after = build(state, args.layers, args.width, True, args.device)
        first = timed(after, x, args.device)
        later = timed(after, x, args.device)
        held = held_bytes(p for p in after.parameters() if p.ndim == 2)
        print(f"{kind:<10}{anchor:>10.3f}{args.width ** 2 / anchor / 1e6:>9.1f}{step_before:>10.2f}{first:>9.2f}"
              f"{later * 1e3:>10.1f}{packed / 1e6:>11.1f}{held / 1e6:>9.1f}")
        del after
    print(f"({args.layers} layers, {n / 1e6:.0f}M weights: a 12B model has {12e9 / n:.0f} times as many)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--width", type=int, default=3072)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iq", action="store_true", help="the gguf-py-only GGUF types, before and after (see above)")
    args = ap.parse_args()
    import torch
    from graph_engine.devices import running_on
    from nodes.generate.pack_policy import keep_packed_here
    g = torch.Generator().manual_seed(0)
    plain = {}
    for i in range(args.layers):
        plain[f"blocks.{i}.weight"] = torch.randn(args.width, args.width, generator=g) * args.width ** -0.5
        plain[f"blocks.{i}.bias"] = torch.randn(args.width, generator=g) * 0.01
    x = torch.randn(args.tokens, args.width, generator=g).to(torch.bfloat16).to(args.device)
    cuda = args.device == "cuda"
    if args.iq:
        print(f"{args.layers} linear layers of {args.width} x {args.width}, {args.tokens} tokens, on {args.device}")
        return iq(plain, args, x)
    print(f"{args.layers} linear layers of {args.width} x {args.width} ({args.layers * args.width ** 2 / 1e6:.0f}M "
          f"weights), {args.tokens} tokens, on {args.device}")
    print(f"{'form':<20}{'held MB':>10}{'vs bf16':>9}{'device MB':>11}{'step ms':>9}{'max|d|':>10}{'default':>9}")
    for fmt in FORMATS:
        state = quantised(plain, fmt)
        rows = []
        for packed in (False, True):
            if cuda:
                torch.cuda.empty_cache()
                base = torch.cuda.memory_allocated()
            model = build(state, args.layers, args.width, packed, args.device)
            held, step, out = measure(model, x, args.device)
            on_device = (torch.cuda.memory_allocated() - base) / 1e6 if cuda else float("nan")
            rows.append((held, step, out, on_device))
            del model
        if fmt.startswith("gguf_"):     # how Kinograph held a GGUF file before: every tensor expanded to float32
            from nodes.generate.packed_weight import held_bytes
            from nodes.generate.weights import dequantise
            f32 = held_bytes(dequantise(state, packed=False).values())
            print(f"{fmt + ' f32':<20}{f32 / 1e6:>10.1f}{f32 / rows[0][0]:>9.2f}")
        (a_held, a_step, a_out, a_dev), (p_held, p_step, p_out, p_dev) = rows
        diff = float((p_out.float() - a_out.float()).abs().max())
        with running_on(args.device):
            packed_here = keep_packed_here(a_held)
        print(f"{fmt + ' bf16':<20}{a_held / 1e6:>10.1f}{1:>9.2f}{a_dev:>11.1f}{a_step * 1e3:>9.1f}{0:>10.2g}"
              f"{'' if packed_here else 'yes':>9}")
        print(f"{fmt + ' packed':<20}{p_held / 1e6:>10.1f}{p_held / a_held:>9.2f}{p_dev:>11.1f}{p_step * 1e3:>9.1f}"
              f"{diff:>10.2g}{'yes' if packed_here else '':>9}")


if __name__ == "__main__":
    main()
