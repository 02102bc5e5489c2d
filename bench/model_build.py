"""CPU time and peak memory of building a model as a load does, against the library's own load of the same weights,
measured in the same run: the bundled kinograph-mini (tiny, a diffusers folder) and a Wan 2.1 transformer of random
weights in the diffusion_models/ layout (a few hundred MB) and an SD 1.5 all-in-one checkpoint (UNet, VAE, CLIP
text encoder) of half its widths, written to a temporary folder deleted afterwards (bench/model_load.py's makers).

Each row is a fresh process that loads once to warm up (imports, first calls), then --repeat times:
  cpu    median CPU seconds of one load (one torch thread: the figure the 2-core CI machine and a busy laptop see)
  wall   median wall seconds of one load
  peak   the process's peak resident memory (VmHWM: ru_maxrss keeps the bench's own peak across the exec)
Rows:
  kinograph          Kinograph's loader as the node runs it (its shape check builds the network on the meta device,
                     then the real build)
  kinograph-stock    the same with torch's initialisers left as they are (they run on meta tensors in both builds):
                     what every load cost before nodes/generate/meta_init.py
  diffusers          the anchor: diffusers' from_pretrained / from_single_file of the same weights

    PYTHONPATH=. .venv/bin/python bench/model_build.py [--scale 0.4] [--repeat 7]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

PROBE = r"""
import json, statistics, sys, time
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)
{setup}
def load():
{load}
load()
cpu, wall = [], []
for _ in range({repeat}):
    c, w = time.process_time(), time.perf_counter()
    load()
    cpu.append(time.process_time() - c)
    wall.append(time.perf_counter() - w)
peak = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
print("RESULT " + json.dumps(dict(cpu=statistics.median(cpu), wall=statistics.median(wall), peak=peak)))
"""
STOCK = "import nodes.generate.meta_init as m\nm.skip_init_on_meta = lambda: None"
MINI = {"kinograph": ("from nodes.generate.model_manager import ModelManager",
                      "    ModelManager().load('mini', {path!r}, dtype='fp32', device='cpu')"),
        "diffusers": ("from nodes.mini.model import load_mini",
                      "    load_mini({path!r})")}
SD15 = {"kinograph": ("from nodes.generate.model_manager import ModelManager",
                     "    ModelManager().load('sd', {path!r}, dtype='fp16', device='cpu')"),
        "diffusers": ("from diffusers import StableDiffusionPipeline",
                      "    StableDiffusionPipeline.from_single_file({path!r}, config={config!r}, local_files_only=True, "
                      "torch_dtype=torch.float16, safety_checker=None)")}
WAN = {"kinograph": ("from nodes.generate.model_manager import ModelManager\n"
                     "from nodes.generate.split import load_diffusion_model",
                     "    load_diffusion_model(ModelManager(), {path!r}, 'fp16', 'cpu')"),
       "diffusers": ("from diffusers import WanTransformer3DModel",
                     "    WanTransformer3DModel.from_single_file({path!r}, config={config!r}, subfolder='transformer', "
                     "local_files_only=True, torch_dtype=torch.float16)")}


def probe(setup: str, load: str, repeat: int) -> dict:
    code = PROBE.format(root=str(ROOT), setup=setup, load=load, repeat=repeat)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"probe failed:\n{out.stderr[-3000:]}")
    return json.loads(line[7:])


def rows(name: str, runs: dict, fields: dict, repeat: int):
    kino_setup, kino_load = runs["kinograph"]
    for label, setup, load in (("kinograph", kino_setup, kino_load),
                               ("kinograph-stock", STOCK + "\n" + kino_setup, kino_load),
                               ("diffusers", *runs["diffusers"])):
        r = probe(setup, load.format(**fields), repeat)
        yield name, label, r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.4, help="Wan 2.1 1.3B widths times this (0.4: about 0.5 GB); "
                                                                "SD 1.5's times half of it")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    from model_load import make_sd15, make_wan
    from nodes.generate.loaders import MINI_DEFAULT
    folder = Path(tempfile.mkdtemp(prefix="model_build_"))
    try:
        wan, sd15 = make_wan(folder / "wan", args.scale), make_sd15(folder / "sd15", args.scale / 2)
        size = wan["file"].stat().st_size / 1e9
        print(f"{'model':<18}{'loader':<18}{'cpu':>8}{'wall':>8}{'peak':>9}")
        for model, runs, fields in (("kinograph-mini", MINI, {"path": str(MINI_DEFAULT)}),
                                    (f"sd15 {sd15['file'].stat().st_size / 1e9:.2f}G", SD15,
                                     {"path": str(sd15["file"]), "config": str(sd15["config"])}),
                                    (f"wan {size:.2f}G", WAN, {"path": str(wan["file"]), "config": str(wan["config"])})):
            for name, label, r in rows(model, runs, fields, args.repeat):
                print(f"{name:<18}{label:<18}{r['cpu']:>7.3f}s{r['wall']:>7.3f}s{r['peak'] / 1e6:>8.2f}G")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
