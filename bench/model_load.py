"""Peak memory and time of loading single-file checkpoints through Kinograph's loaders, against diffusers'
from_single_file of the same file, measured in the same run.

The files are random weights in the real key layouts, sizes and dtype that ComfyUI users have (SD 1.5 all-in-one
checkpoint in the LDM layout, a Wan 2.1 transformer in diffusion_models/ layout, an SDXL all-in-one checkpoint),
built from the shipped diffusers configs on the meta device and written tensor by tensor, so writing a 7 GB file
needs no more memory than one tensor. They are written to a temporary folder that is deleted afterwards.

Each load runs in a fresh process; its figures:
  peak    the process's peak resident memory (getrusage ru_maxrss), file-backed pages included
  anon    the peak of its anonymous memory (RssAnon, sampled every 10 ms): what the load took from RAM for
          itself, beyond pages the kernel can drop and read again from the file
  base    the process's anonymous memory after the imports, before the load
  held    its anonymous memory after the load (what stays taken while the model is kept)
  time    wall time of the load call

"switch" rows run two workflows in one session (as the editor does), each loading another SD 1.5 checkpoint, with
KINOGRAPH_MODELS_LOADED=1: held is then what the session keeps of the first model besides the second.

    PYTHONPATH=. .venv/bin/python bench/model_load.py [--models sd15,wan13b,sdxl] [--scale 0.25] [--dir DIR]

--scale shrinks every width (1 = the real sizes: SD 1.5 2.1 GB, Wan 2.1 1.3B 2.8 GB, SDXL 6.9 GB in fp16);
the default 0.5 runs in a few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

# One load in a fresh process: the figures on stdout as JSON.
PROBE = r"""
import json, os, resource, sys, threading, time
sys.path.insert(0, {root!r})
def anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0
# The libraries both loaders use are imported before the clock starts: import time is not load time.
import diffusers, torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, WanPipeline, WanTransformer3DModel
from diffusers.loaders import single_file_utils
{imports}
base = anon()
peak = [base]
done = threading.Event()
def sample():
    while not done.wait(0.01):
        peak[0] = max(peak[0], anon())
threading.Thread(target=sample, daemon=True).start()
t0 = time.perf_counter()
{load}
took = time.perf_counter() - t0
done.set()
peak[0] = max(peak[0], anon())
import gc
gc.collect()
print("RESULT " + json.dumps(dict(time=took, peak=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, anon=peak[0],
                                  base=base, held=anon())))
"""


def _scaled(cfg: dict, keys, scale: float, multiple: int) -> dict:
    out = dict(cfg)
    for k in keys:
        v = out[k]
        f = (lambda x: max(multiple, int(x * scale) // multiple * multiple))
        out[k] = [f(x) for x in v] if isinstance(v, (list, tuple)) else f(v)
    return out


def write_random(path: Path, shapes: dict, dtype: str = "F16") -> Path:
    """A safetensors file of random values with these {name: shape}, written one tensor at a time."""
    import torch
    tdtype = {"F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = 2
        for s in shape:
            n *= int(s)
        header[name] = {"dtype": dtype, "shape": [int(s) for s in shape], "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for name, shape in shapes.items():
            t = (torch.randn(tuple(shape), generator=g) * 0.02).to(tdtype)
            f.write(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return path


def _meta(cls, cfg):
    from accelerate import init_empty_weights
    with init_empty_weights():
        return cls.from_config(cfg) if hasattr(cls, "from_config") else cls(cfg)


def _clip_l(scale: float):
    from transformers import CLIPTextConfig, CLIPTextModel
    from nodes.generate.converters import model_config
    cfg = _scaled(model_config("clip_l", "text_encoder"), ("hidden_size", "intermediate_size"), scale, 64 * 12)
    cfg = CLIPTextConfig(**cfg)
    from accelerate import init_empty_weights
    with init_empty_weights():
        return cfg, CLIPTextModel(cfg)


def _text_model(key: str) -> str:
    # transformers 5 names CLIP's tensors without the text_model. that the checkpoints have
    return key if key.startswith("text_model.") else "text_model." + key


def make_sd15(folder: Path, scale: float) -> dict:
    """An SD 1.5 checkpoint as in checkpoints/ (model.diffusion_model., first_stage_model., cond_stage_model.) and
    a config folder for diffusers' from_single_file."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from nodes.generate.converters import model_config
    from tiny_models import clip_tokenizer, sd_ldm_unet, sd_ldm_vae
    ucfg = _scaled(model_config("sd", "unet_sd15"), ("block_out_channels", "cross_attention_dim"), scale, 64)
    vcfg = _scaled(model_config("sd", "vae_sd15"), ("block_out_channels",), scale, 32)
    tcfg, text = _clip_l(scale)
    ucfg["cross_attention_dim"] = tcfg.hidden_size
    unet, vae = _meta(UNet2DConditionModel, ucfg), _meta(AutoencoderKL, vcfg)
    shapes = {f"model.diffusion_model.{k}": v.shape
              for k, v in sd_ldm_unet(unet.state_dict(), 4, [True, True, True, False]).items()}
    shapes.update({f"first_stage_model.{k}": v.shape for k, v in sd_ldm_vae(vae.state_dict(), 4).items()})
    shapes.update({f"cond_stage_model.transformer.{_text_model(k)}": v.shape for k, v in text.state_dict().items()
                   if "position_ids" not in k})
    ckpt = write_random(folder / "checkpoints" / "sd15.safetensors", shapes)
    clip_tokenizer(ckpt.parent / ckpt.stem)
    cfgdir = folder / "sd15_config"
    index = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"],
             "safety_checker": [None, None], "feature_extractor": [None, None], "requires_safety_checker": False}
    for part, cfg in (("unet", unet.config), ("vae", vae.config)):
        (cfgdir / part).mkdir(parents=True)
        (cfgdir / part / "config.json").write_text(json.dumps(dict(cfg)))
    tcfg.save_pretrained(str(cfgdir / "text_encoder"))
    clip_tokenizer(cfgdir / "tokenizer")
    (cfgdir / "scheduler").mkdir()
    (cfgdir / "scheduler" / "scheduler_config.json").write_text(
        (ROOT / "resources" / "model_configs" / "sd" / "scheduler.json").read_text())
    (cfgdir / "model_index.json").write_text(json.dumps(index))
    return {"file": ckpt, "config": cfgdir}


def make_wan(folder: Path, scale: float) -> dict:
    """A Wan 2.1 T2V 1.3B transformer as in diffusion_models/ (the original layout) and its diffusers config."""
    from diffusers import WanTransformer3DModel
    from nodes.generate.converters import model_config
    from tiny_models import wan_original_transformer
    cfg = model_config("wan", "transformer_t2v")
    heads = max(1, round(cfg["num_attention_heads"] * scale))
    cfg.update(num_attention_heads=heads, ffn_dim=max(128, int(cfg["ffn_dim"] * scale) // 128 * 128))
    model = _meta(WanTransformer3DModel, cfg)
    shapes = {k: v.shape for k, v in wan_original_transformer(model.state_dict()).items()}
    path = write_random(folder / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors", shapes)
    cfgdir = folder / "wan_config" / "transformer"
    cfgdir.mkdir(parents=True)
    (cfgdir / "config.json").write_text(json.dumps(dict(model.config)))
    return {"file": path, "config": cfgdir.parent}


def make_sdxl(folder: Path, scale: float) -> dict:
    """An SDXL checkpoint as in checkpoints/ (SGM layout: two text encoders) and diffusers' config folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    from nodes.generate.converters import model_config
    from tiny_models import clip_tokenizer, open_clip_text, sd_ldm_unet, sd_ldm_vae
    ucfg = _scaled(model_config("sdxl", "unet_sdxl"), ("block_out_channels",), scale, 64)
    vcfg = _scaled(model_config("sdxl", "vae_sdxl"), ("block_out_channels",), scale, 32)
    tcfg, text = _clip_l(scale)
    gcfg = _scaled(_scaled(model_config("clip_g", "text_encoder"), ("intermediate_size", "projection_dim"), scale, 64),
                   ("hidden_size",), scale, 64 * 20)
    gcfg = CLIPTextConfig(**gcfg)
    from accelerate import init_empty_weights
    with init_empty_weights():
        text_2 = CLIPTextModelWithProjection(gcfg)
    ucfg.update(attention_head_dim=[max(1, c // 64) for c in ucfg["block_out_channels"]],     # 64-wide heads
                cross_attention_dim=tcfg.hidden_size + gcfg.hidden_size,
                projection_class_embeddings_input_dim=gcfg.projection_dim + 6 * ucfg["addition_time_embed_dim"])
    unet, vae = _meta(UNet2DConditionModel, ucfg), _meta(AutoencoderKL, vcfg)
    shapes = {f"model.diffusion_model.{k}": v.shape
              for k, v in sd_ldm_unet(unet.state_dict(), 3, [False, True, True]).items()}
    shapes.update({f"first_stage_model.{k}": v.shape for k, v in sd_ldm_vae(vae.state_dict(), 4).items()})
    shapes.update({f"conditioner.embedders.0.transformer.{_text_model(k)}": v.shape
                   for k, v in text.state_dict().items() if "position_ids" not in k})
    import torch
    g_state = {k: torch.empty(v.shape, device="meta") for k, v in text_2.state_dict().items()}
    shapes.update({f"conditioner.embedders.1.model.{k}": v.shape for k, v in open_clip_text(g_state).items()})
    ckpt = write_random(folder / "checkpoints" / "sdxl.safetensors", shapes)
    clip_tokenizer(ckpt.parent / ckpt.stem)
    return {"file": ckpt, "config": None}


MODELS = {"sd15": make_sd15, "wan13b": make_wan, "sdxl": make_sdxl}

# (label, imports, load statement) per model: Kinograph's loader node path and diffusers' own, same file and dtype.
KINOGRAPH_SD = ("from nodes.generate.model_manager import ModelManager\nmm = ModelManager()",
                "h = mm.load('{family}', {file!r}, dtype='{dtype}', device='cpu')")
KINOGRAPH_WAN = ("from nodes.generate.model_manager import ModelManager\n"
                 "from nodes.generate.split import load_diffusion_model\nmm = ModelManager()",
                 "h = load_diffusion_model(mm, {file!r}, '{dtype}', 'cpu')")
DIFFUSERS_SD = ("import torch\nfrom diffusers import StableDiffusionPipeline",
                "p = StableDiffusionPipeline.from_single_file({file!r}, config={config!r}, local_files_only=True, "
                "torch_dtype=torch.{tdtype}, safety_checker=None)")
DIFFUSERS_WAN = ("import torch\nfrom diffusers import WanTransformer3DModel",
                 "m = WanTransformer3DModel.from_single_file({file!r}, config={config!r}, subfolder='transformer', "
                 "local_files_only=True, torch_dtype=torch.{tdtype})")
# The editor's case: one session runs a workflow on one checkpoint, then on another; one model may stay loaded.
SWITCH = ("from graph_engine.api import Session, load_workflow\n"
          "from nodes.generate.model_manager import ModelManager\n"
          "def wf(p):\n"
          "    return load_workflow(text='kinograph: 1\\nnodes:\\n  load: {type: load.sd, params: {path: \"%s\"}}\\n"
          "  prompt: {type: encode.text, inputs: {text_encoder: load.text_encoder}, params: {text: a}}\\n' % p)\n"
          "s = Session(device='cpu', use_disk=False, models=ModelManager(max_loaded=1))",
          "assert s.run(wf({file!r}), keep=(), overrides=['load.dtype={dtype}']).ok\n"
          "assert s.run(wf({other!r}), keep=(), overrides=['load.dtype={dtype}']).ok")
RUNS = {"sd15": [("kinograph", KINOGRAPH_SD, "sd"), ("diffusers", DIFFUSERS_SD, ""), ("switch", SWITCH, "")],
        "wan13b": [("kinograph", KINOGRAPH_WAN, ""), ("diffusers", DIFFUSERS_WAN, "")],
        "sdxl": [("kinograph", KINOGRAPH_SD, "sdxl")]}


def probe(imports: str, load: str) -> dict:
    code = PROBE.format(root=str(ROOT), imports=imports, load=load)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT),
                       env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return {"error": (r.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(line[7:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="sd15,wan13b")
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--dtypes", default="fp16,fp32", help="the dtypes to load in (fp16 keeps the file's)")
    ap.add_argument("--dir", default=None, help="where to make the bench's own temporary folder (default: the system's)")
    args = ap.parse_args(argv)
    # A folder of its own even under --dir: the files it writes and deletes are only ever the ones it made.
    folder = Path(tempfile.mkdtemp(prefix="model_load_", dir=args.dir))
    try:
        print(f"{'model':8} {'file':>8} {'loader':10} {'dtype':5} {'time':>7} {'peak':>8} {'anon':>8} {'base':>7} "
              f"{'held':>7}")
        for name in args.models.split(","):
            made = MODELS[name](folder, args.scale)
            size = made["file"].stat().st_size
            other = made["file"].with_name("other" + made["file"].suffix)
            other.hardlink_to(made["file"])
            if made["file"].with_suffix("").is_dir():            # its tokenizer folder
                shutil.copytree(made["file"].with_suffix(""), other.with_suffix(""))
            for dtype in args.dtypes.split(","):
                for label, (imports, load), family in RUNS[name]:
                    if label == "diffusers" and made["config"] is None:
                        continue
                    stmt = load.format(file=str(made["file"]), other=str(other), config=str(made["config"]), dtype=dtype,
                                       family=family, tdtype={"fp16": "float16", "fp32": "float32"}[dtype])
                    r = probe(imports, stmt)
                    if "error" in r:
                        print(f"{name:8} {size / 2**30:7.2f}G {label:10} {dtype:5} failed: {r['error']}")
                        continue
                    print(f"{name:8} {size / 2**30:7.2f}G {label:10} {dtype:5} {r['time']:6.1f}s "
                          f"{r['peak'] / 2**20:7.2f}G {r['anon'] / 2**20:7.2f}G {r['base'] / 2**20:6.2f}G "
                          f"{r['held'] / 2**20:6.2f}G",
                          flush=True)
            made["file"].unlink()
            other.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
