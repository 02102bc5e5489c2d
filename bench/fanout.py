"""Two outputs of one chain: the cost of the second output, with the run's spill (graph_engine/spill.py:
the shared clip computed once) against recomputing the chain for each output (what runs did before), both
measured in this run, and against a single output as the floor.

    python bench/fanout.py [--frames 48] [--size 1280x720]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graph_engine import spill  # noqa: E402
from graph_engine.api import Session, load_workflow  # noqa: E402


def workflow(d: str, frames: int, w: int, h: int, outputs: int) -> str:
    text = f"""kinograph: 1
nodes:
  p: {{type: generate.test_pattern, params: {{frames: {frames}, width: {w}, height: {h}}}}}
  s: {{type: restore.denoise, inputs: {{video: p.video}}}}
  a: {{type: io.save_video, inputs: {{video: s.video}}, params: {{path: {d}/a.mp4}}}}
"""
    if outputs > 1:
        text += f"  b: {{type: io.save_frames, inputs: {{video: s.video}}, params: {{path: {d}/b}}}}\n"
    return text


def timed(text: str) -> float:
    t = time.perf_counter()
    res = Session(use_disk=False).run(load_workflow(text=text))
    if not res.ok:
        raise SystemExit(f"the bench workflow failed: {res.failed}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="1280x720")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as d:
        one = timed(workflow(d + "/1", args.frames, w, h, 1))
        two = timed(workflow(d + "/2", args.frames, w, h, 2))
        share = spill.Spill.share
        spill.Spill.share = lambda self, key, clip: clip          # each output pulls the chain itself
        try:
            again = timed(workflow(d + "/3", args.frames, w, h, 2))
        finally:
            spill.Spill.share = share
    print(f"{args.frames} frames {w}x{h}, test pattern -> restore.denoise -> save_video (+ save_frames)")
    print(f"  one output (save_video)                     {one:6.1f} s")
    print(f"  two outputs, chain computed once (spill)    {two:6.1f} s")
    print(f"  two outputs, chain computed per output      {again:6.1f} s")
    print(f"  the second output costs {two - one:+.1f} s with the spill, {again - one:+.1f} s recomputing")


if __name__ == "__main__":
    main()
