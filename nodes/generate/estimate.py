"""How much work a workflow's samplers are, told before it runs, and about how long that is on the device.

An imported ComfyUI Wan or SVD graph runs for hours on a laptop's CPU, and nothing said so before it began.
Each generate.sample is counted from what is known without running anything: the steps it runs times its
guidance passes times its context windows, each one forward pass of the denoiser over the latent's tokens;
a pass costs 2 FLOPs per weight per token (read from the weight files' headers, nothing loaded) plus
attention's token-squared term. Seconds are that work over the speed of a matrix product measured on the
device, times the share of it a denoiser reaches (CPU_EFFICIENCY, measured on this CPU; GPU_EFFICIENCY,
assumed). Where a part cannot be told before the run (a latent encoded from a video, a pickled checkpoint, a size
set through a link), the sampler is named with the reason instead of a guessed figure."""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

from graph_engine import NodeError

# A denoiser's forward pass's speed on a CPU over that of a 1024x1024 matrix product (matmul_speed): (transformers,
# UNets). A transformer's matmuls are larger than the probe's and run faster; a UNet's convolutions and group
# norms slower. Measured with bench/estimate_calibration.py (Wan-, SD 1.5- and SVD-shaped denoisers timed on a
# shared 2-core CPU, three runs: transformers 0.67-2.2, UNets 0.52-0.75; the medians).
CPU_EFFICIENCY = (1.5, 0.65)
# The same share on a GPU, over a 4096x4096 fp16 product: assumed, not measured (no GPU was lent to calibrate
# one), so a GPU's time is told as such.
GPU_EFFICIENCY = 0.5
# Over this many seconds, validate, run and the editor say so before the run, with what to change.
LONG_S = 30 * 60
UNET = ("sd", "sdxl", "animatediff", "svd")
# Weights applied once per sample or to the prompt's tokens, not to each latent token: left out of the count.
_NOT_PER_TOKEN = re.compile(
    r"(text_embedding|condition_embedder|time_embedding|time_projection|img_emb\.|cross_attn\.(k|v|k_img|v_img)\.|attn2\.to_[kv]\."
    r"|add_[kv]_proj|time_embed|label_emb|emb_layers|time_emb_proj|add_embedding|adaLN|adaln|context_embedder"
    r"|caption_projection|time_text_embed|txt_in|vector_in|guidance_in|time_in\.|modulation|norm_out\.linear"
    r"|time_pos_embed|image_embeds)")
# Cross-attention's key and value weights, which read the prompt's tokens: Wan's, and diffusers' attn2.
_CROSS = re.compile(r"(?:cross_attn\.|attn2\.)(k|v|to_k|to_v)\.weight$")
# The prompt's tokens a denoiser's cross-attention reads (its text encoder's padded length; SVD: one image
# embedding).
TEXT_TOKENS = {"wan": 512, "sd": 77, "sdxl": 77, "animatediff": 77, "svd": 1, "ltx": 128}
_BLOCK = re.compile(r"^(.*?(?:blocks|layers))\.(\d+)\.")


@dataclass
class SamplerWork:
    node: str
    family: str = ""
    weights: int = 0               # the denoiser's parameters, from its files' headers
    passes: int = 0                # denoiser calls: steps run x guidance passes x context windows
    steps: int = 0
    guidance: int = 1              # 2: a negative (unconditional) pass beside each positive one
    windows: int = 1
    frames: int = 0
    width: int = 0
    height: int = 0
    tokens: int = 0                # latent tokens one window's pass reads (UNets: latent pixels x frames)
    flops: float = 0.0             # the whole sampler's work
    unknown: str = ""              # why it cannot be counted
    notes: List[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.unknown:
            return f"{self.node}: not estimated: {self.unknown}"
        from nodes.generate.families import family
        how = f"{self.steps} steps" + (" x 2 (guidance: a negative pass each)" if self.guidance == 2 else "") + \
            (f" x {self.windows} context windows" if self.windows > 1 else "")
        return (f"{self.node}: {self.passes} passes ({how}) of a {_count(self.weights)}-parameter "
                f"{family(self.family).title} denoiser over {self.frames} frames at {self.width}x{self.height} "
                f"({self.tokens:,} latent tokens a pass): {_flops(self.flops)}")


def duration(s: float) -> str:
    """'40 s', '12 min', '3.4 h': a length of time as an estimate or a log line reads it."""
    return "under a second" if s < 1 else f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else \
        f"{s / 3600:.1f} h"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n:,}"


def _flops(f: float) -> str:
    return f"{f / 1e15:.1f} PFLOP" if f >= 1e15 else f"{f / 1e12:.1f} TFLOP" if f >= 1e12 else \
        f"{f / 1e9:.1f} GFLOP"


# -- the work of one pass, from the weights' shapes ----------------------------------------
def pass_flops(shapes: Dict[str, Tuple[int, ...]], family: str, frames: int, lat_h: int, lat_w: int,
               patch: int) -> Tuple[float, int]:
    """(FLOPs of one forward pass over a latent of `frames` x lat_h x lat_w, tokens it reads)."""
    text = TEXT_TOKENS.get(family, 0)
    if family in UNET:
        return _unet_flops(shapes, frames, lat_h, lat_w, text), frames * lat_h * lat_w
    tokens = frames * (lat_h // patch) * (lat_w // patch)
    per_token = sum(math.prod(s) for k, s in shapes.items() if len(s) >= 2 and not _NOT_PER_TOKEN.search(k))
    squares = Counter(s[0] for k, s in shapes.items() if len(s) == 2 and s[0] == s[1] and not _NOT_PER_TOKEN.search(k))
    width = squares.most_common(1)[0][0] if squares else 0
    layers = len({m.groups() for m in map(_BLOCK.match, shapes) if m})
    # Q K^T and the weighted sum of V: 2 x 2 FLOPs per pair of tokens per channel, in every block.
    return 2.0 * per_token * tokens + 4.0 * tokens * tokens * width * layers + \
        sum(_cross(k, s, tokens, text) for k, s in shapes.items()), tokens


def _cross(key: str, shape, tokens: float, text: int) -> float:
    """Cross-attention to the prompt's `text` tokens: its keys and values made from them, and each latent token's
    attention over them."""
    m = _CROSS.search(key)
    if not m or len(shape) != 2:
        return 0.0
    return 2.0 * math.prod(shape) * text + (4.0 * tokens * text * shape[0] if m.group(1) in ("k", "to_k") else 0.0)


def _unet_flops(shapes, frames: int, lat_h: int, lat_w: int, text: int) -> float:
    """A UNet's pass: each weight works on every latent pixel of its level (a quarter as many a level down),
    for every frame; spatial attention over a level's pixels, temporal attention (SVD's time_stack,
    AnimateDiff's motion modules) over the frames at each pixel."""
    inputs = [int(m.group(1)) for m in map(re.compile(r".*input_blocks\.(\d+)\.").match, shapes) if m]
    downs = {int(m.group(1)) for m in map(re.compile(r".*down_blocks\.(\d+)\.").match, shapes) if m}
    depth = max(inputs) // 3 + 1 if inputs else len(downs) or 1
    pixels = lat_h * lat_w
    total = 0.0
    for key, shape in shapes.items():
        at = pixels / 4 ** max(0, _level(key, depth))
        total += _cross(key, shape, at, text) * frames
        if len(shape) < 2 or _NOT_PER_TOKEN.search(key):
            continue
        total += 2.0 * math.prod(shape) * at * frames
        if key.endswith("to_q.weight"):
            temporal = any(t in key for t in ("time_stack", "temporal", "motion_modules"))
            if temporal and ("attention_blocks" in key or "attn1" in key):
                total += 4.0 * frames * frames * shape[0] * at
            elif not temporal and "attn1" in key:
                total += 4.0 * at * at * shape[0] * frames
    return total


def _level(key: str, depth: int) -> int:
    """Which level of the UNet (0: the latent's own size) a weight's output is at, in the original (ldm) and the
    diffusers layouts; a down/upsampling convolution's output is at the level it leads to."""
    m = re.search(r"input_blocks\.(\d+)\.", key)
    if m:
        i = int(m.group(1))
        return 0 if i == 0 else i // 3 if i % 3 == 0 else (i - 1) // 3
    m = re.search(r"output_blocks\.(\d+)\.", key)
    if m:
        return depth - 1 - int(m.group(1)) // 3 - bool(re.search(r"output_blocks\.\d+\.\d+\.conv\.weight$", key))
    if "middle_block" in key or "mid_block" in key:
        return depth - 1
    m = re.search(r"down_blocks\.(\d+)\.", key)
    if m:
        return int(m.group(1)) + ("downsamplers" in key)
    m = re.search(r"up_blocks\.(\d+)\.", key)
    if m:
        return depth - 1 - int(m.group(1)) - ("upsamplers" in key)
    return 0


# -- the denoiser's weights, from headers --------------------------------------------------
def denoiser_shapes(kind: str, params: dict) -> Tuple[str, Dict[str, Tuple[int, ...]], str]:
    """(family, denoiser tensor name -> shape, detected variant or "") of the model a loader node hands out, read
    from headers; NodeError naming why where that cannot be told before loading."""
    from nodes.generate.detect import GGUF_EXT, SAFE_EXT, detect_header, read_header
    from nodes.generate.loaders import _resolve_any
    from nodes.generate.model_manager import detect_family, family_of_file, resolve_family_path, resolve_model_path
    if kind == "load.diffusion_model":
        path = resolve_model_path(params.get("name") or "", "diffusion_models", "diffusion model")
    elif kind == "load.mini":
        return "mini", {}, ""
    elif kind == "load.model":
        path = _resolve_any(params.get("path") or "")
    elif kind.startswith("load.") and params.get("path"):
        path = resolve_family_path(params["path"], kind[len("load."):], "model")
    else:
        raise NodeError(f"its model comes from {kind}, whose weights are known only when it runs")
    files, prefix, variant = [path], "", ""
    if path.is_dir():
        fam = detect_family(path)[0]
        files = [f for sub in ("transformer", "unet", "motion_adapter", "") for f in sorted((path / sub).glob("*"))
                 if f.suffix.lower() in SAFE_EXT + GGUF_EXT and (sub or not (path / "transformer").is_dir())]
        if not files:
            raise NodeError(f"{path} holds no .safetensors weights to count")
    elif path.suffix.lower() not in SAFE_EXT + GGUF_EXT:
        raise NodeError(f"{path.name} is a pickled checkpoint, whose weights are read only when it loads")
    else:
        det = detect_header(read_header(path))
        fam, prefix, variant = family_of_file(det), det.prefix, det.variant
    shapes: Dict[str, Tuple[int, ...]] = {}
    for f in files:
        shapes.update({k[len(prefix):]: s for k, s in read_header(f).shapes.items() if k.startswith(prefix)})
    motion = params.get("motion_adapter") if kind == "load.animatediff" else ""
    if motion:
        shapes.update({"motion_modules." + k: s for k, s in
                       read_header(resolve_model_path(motion, "animatediff_models", "motion module")).shapes.items()})
    if kind.startswith("load.") and kind[len("load."):] not in ("model", "diffusion_model", "mini", "animatediff"):
        fam = kind[len("load."):] if fam in (None, "motion") else fam
    if fam is None:
        raise NodeError(f"{path.name}'s family is not recognised from its files")
    return fam, shapes, variant


# -- the workflow's samplers ---------------------------------------------------------------
def sampler_work(wf, registry) -> List[SamplerWork]:
    """The work of each generate.sample a whole run of `wf` runs, or why it cannot be told."""
    from graph_engine.validate import check_param, known_params, origin_chain, run_scope
    g = wf.graph
    specs = {n: registry.get(inst.type) for n, inst in g.nodes.items() if registry.get(inst.type) is not None}

    def params_of(n: str) -> dict:
        # `run` and the editor tell the estimate before the run validates the workflow: a value the run refuses
        # (10**400 steps or frames, whose work overflowed a float in a traceback) is named, not counted.
        for k, v in g.nodes[n].params.items():
            why = check_param(specs[n].params[k], v) if k in specs[n].params else None
            if why:
                raise NodeError(f"{n}'s {k}: {why}, which the run refuses")
        return known_params(g, n, specs[n], wf.base_dir)

    found = []
    for nid in run_scope(wf, registry)[0]:
        inst = g.nodes[nid]
        if inst.type != "generate.sample" or inst.bypass or nid not in specs:
            continue
        work = SamplerWork(nid)
        try:
            _count_sampler(work, g, specs, params_of(nid),
                           lambda port: origin_chain(g, specs, g.inputs[nid][port]) if port in g.inputs.get(nid, {})
                           else None,
                           params_of)
        except (NodeError, OSError, ValueError, TypeError) as e:     # what the run itself reports, if it fails
            work.unknown = str(e)
        found.append(work)
    return found


def _count_sampler(work: SamplerWork, g, specs, p: dict, chain_of, params_of) -> None:
    from nodes.generate.families import FAMILIES, family
    linked = [k for k in ("steps", "cfg", "denoise", "start_step", "end_step") if k not in p]
    if linked:
        raise NodeError(f"its {linked[0]} comes through a link, known only when it runs")
    latent, model = chain_of("latent"), chain_of("model")
    if not latent or g.nodes[latent[-1]].type != "latent.empty":
        what = f"{latent[-1]} ({g.nodes[latent[-1]].type})" if latent else "its input"
        raise NodeError(f"its latent comes from {what}, whose size is known only when it runs")
    lp = params_of(latent[-1])
    if not all(k in lp for k in ("frames", "width", "height")):
        raise NodeError(f"the size of {latent[-1]} comes through a link, known only when it runs")
    if not model:
        raise NodeError("its model's loader cannot be told from the graph")
    fam, shapes, variant = denoiser_shapes(g.nodes[model[-1]].type, params_of(model[-1]))
    if fam not in FAMILIES or fam == "mini":
        raise NodeError("kinograph-mini's denoiser is not counted: a few million weights, it samples in seconds "
                        "on any CPU" if fam == "mini" else f"its model's family {fam!r} is not one Kinograph samples")
    spec = family(fam)
    work.family, work.frames, work.width, work.height = fam, lp["frames"], lp["width"], lp["height"]
    work.weights = sum(math.prod(s) for s in shapes.values())
    steps = max(1, round(p["steps"] * p["denoise"])) if p["denoise"] < 1 else p["steps"]
    work.steps = max(0, min(steps, p["end_step"]) - p["start_step"])
    distilled = fam in ("hunyuan", "flux") or (fam == "flux2" and "guidance_in.in_layer.weight" in shapes)
    work.guidance = 1 if distilled or (p["cfg"] or spec.usual_cfg(variant)) == 1.0 else 2
    lat_frames = spec.latent_frames(work.frames)
    sf = spec.space_factor
    windows = _windows(g, model, params_of, fam, lat_frames, spec.time_factor)
    work.windows = len(windows)
    work.flops = 0.0
    for length in windows:
        flops, work.tokens = pass_flops(shapes, fam, length, work.height // sf, work.width // sf, spec.patch)
        work.flops += flops * work.steps * work.guidance
    work.passes = work.steps * work.guidance * work.windows
    if any(g.nodes[n].type == "noise.freeinit" and not g.nodes[n].bypass for n in model):
        work.notes.append("noise.freeinit runs the schedule several times over: the run takes that many times this")


def _windows(g, model_chain, params_of, fam: str, lat_frames: int, time_factor: int) -> List[int]:
    """The latent frames of each context window one step runs (one window: the whole clip)."""
    from nodes.consistency.context_windows import context_windows, latent_context
    ctx = [n for n in model_chain if g.nodes[n].type == "context.windows" and not g.nodes[n].bypass]
    if ctx:
        cp = params_of(ctx[0])
        if not all(k in cp for k in ("schedule", "length", "overlap", "stride", "closed_loop")):
            raise NodeError(f"the windows of {ctx[0]} come through a link, known only when it runs")
        length, overlap = latent_context(cp["length"], cp["overlap"], time_factor)
        return [len(w) for w in context_windows(cp["schedule"], lat_frames, length, min(overlap, length - 1),
                                                cp["stride"], cp["closed_loop"])]
    if fam == "animatediff" and lat_frames > 32:        # sampling.fit_frame_limit's own windows
        return [len(w) for w in context_windows("uniform_standard", lat_frames, 16, 4)]
    return [lat_frames]


# -- the VAE's decode -----------------------------------------------------------------------
@dataclass
class DecodeWork:
    node: str
    frames: int
    width: int
    height: int
    flops: float

    def describe(self) -> str:
        return f"{self.node}: decoding {self.frames} frames at {self.width}x{self.height} with the Wan 2.1 VAE: " \
               f"{_flops(self.flops)}"


def _loaded_headers(wf, registry, node_type: str, slot: str, loader: str, folder: str, what: str):
    """(node, header, detection) for each `node_type` node the run reaches whose `slot` comes from a `loader` node
    (through pass-through nodes), with that loader's file header; a missing or unreadable file is skipped, since the
    loader names it when the run checks it. decode_work's and encode_work's one walk of the graph."""
    from graph_engine.validate import origin_chain, run_scope
    from nodes.generate.detect import detect_header, read_header
    from nodes.generate.model_manager import resolve_model_path
    g = wf.graph
    specs = {n: registry.get(inst.type) for n, inst in g.nodes.items() if registry.get(inst.type) is not None}
    for nid in run_scope(wf, registry)[0]:
        ins = g.inputs.get(nid, {})
        if g.nodes[nid].type != node_type or g.nodes[nid].bypass or slot not in ins:
            continue
        chain = origin_chain(g, specs, ins[slot])
        if not chain or g.nodes[chain[-1]].type != loader:
            continue
        name = g.nodes[chain[-1]].params.get("name")
        try:
            header = read_header(resolve_model_path(name if isinstance(name, str) else "", folder, what))
            det = detect_header(header)
        except (NodeError, OSError, ValueError):
            continue
        yield nid, header, det


def decode_work(wf, registry, samplers: List[SamplerWork]) -> List[DecodeWork]:
    """Each vae.decode of a counted Wan sampler's latent through a Wan 2.1 VAE file (load.vae): at 81 frames
    832x480 its decode is 275 TFLOP, a quarter of a 4-step distilled run's sampling. Other VAEs are not counted."""
    from graph_engine.validate import origin_chain
    from nodes.generate.families import family
    from nodes.generate.vae_work import diffusers_wan_vae_shapes, wan_vae_decode_flops
    g = wf.graph
    specs = {n: registry.get(inst.type) for n, inst in g.nodes.items() if registry.get(inst.type) is not None}
    counted = {w.node: w for w in samplers if not w.unknown and w.family == "wan"}
    spec = family("wan")
    found = []
    for nid, header, det in _loaded_headers(wf, registry, "vae.decode", "vae", "load.vae", "vae", "VAE"):
        latent = origin_chain(g, specs, g.inputs[nid]["latent"]) if "latent" in g.inputs[nid] else None
        if not latent or latent[0] not in counted or (det.role, det.family, det.variant) != ("vae", "wan", "2.1"):
            continue
        work = counted[latent[0]]
        flops = wan_vae_decode_flops(diffusers_wan_vae_shapes(header.shapes), spec.latent_frames(work.frames),
                                     work.height // spec.space_factor, work.width // spec.space_factor)
        found.append(DecodeWork(nid, work.frames, work.width, work.height, flops))
    return found


@dataclass
class EncodeWork:
    node: str
    weights: int
    flops: float
    prompts: int = 2

    def describe(self) -> str:
        what = "2 prompts (its text and its negative)" if self.prompts == 2 else "1 prompt (its text)"
        return f"{self.node}: {what} of {WAN_PROMPT_TOKENS} tokens through a " \
               f"{_count(self.weights)}-parameter UMT5 text encoder: {_flops(self.flops)}"


# Wan's prompts are padded to this many tokens, all of which its UMT5 encoder reads (adapters/wan.py's max_tokens).
WAN_PROMPT_TOKENS = 512


def encode_work(wf, registry) -> List[EncodeWork]:
    """Each encode.text through a UMT5 encoder file (load.text_encoder): Wan's, 4.8 TFLOP a prompt at the
    released size, and each node encodes its text and, where something reads it, its negative (empty or not: an
    imported CLIPTextEncode's is read by nothing). Other text encoders are not counted."""
    from graph_engine.validate import read_outputs
    from nodes.generate.encoder_work import t5_encoder_flops
    found = []
    for nid, header, det in _loaded_headers(wf, registry, "encode.text", "text_encoder", "load.text_encoder",
                                            "text_encoders", "text encoder"):
        if (det.role, det.family) != ("text_encoder", "umt5"):
            continue
        shapes = {k: s for k, s in header.shapes.items() if k.startswith("encoder.")}
        prompts = 2 if "negative" in read_outputs(wf.graph, nid) else 1
        found.append(EncodeWork(nid, sum(math.prod(s) for s in shapes.values()),
                                prompts * t5_encoder_flops(shapes, WAN_PROMPT_TOKENS), prompts))
    return found


# -- seconds -------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def matmul_speed(device: str) -> float:
    """FLOP/s of a matrix product on `device`, best of a few: 1024x1024 fp32 on the CPU (about 0.2 s), 4096x4096
    fp16 on a GPU, in the half precision a run takes there, each product waited for (a GPU's calls return before
    the work is done)."""
    import time
    import torch
    n, dtype = (1024, torch.float32) if device == "cpu" else (4096, torch.float16)
    a = torch.randn(n, n, dtype=dtype, device=device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.startswith("cuda") else \
        torch.mps.synchronize if device == "mps" else (lambda: None)
    a @ a                       # the first product: cuBLAS's setup, the thread pool's start
    sync()
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        a @ a
        sync()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


@dataclass
class Estimate:
    samplers: List[SamplerWork]
    lines: List[str]                       # each sampler's work, and the time where it is told
    seconds: Optional[float] = None        # the samplers counted, on the device
    warning: Optional[str] = None          # a run this long: what to change
    each: Dict[str, float] = field(default_factory=dict)     # seconds by sampler node, on the device
    where: str = ""                        # the device the seconds are for: "this CPU", "this GPU (cuda:0)"
    decodes: List[DecodeWork] = field(default_factory=list)
    encodes: List[EncodeWork] = field(default_factory=list)

    def data(self) -> dict:
        """For --json readers."""
        return {"seconds": self.seconds, "warning": self.warning,
                "samplers": [{"node": w.node, "unknown": w.unknown} if w.unknown else
                             {"node": w.node, "family": w.family, "weights": w.weights, "passes": w.passes,
                              "steps": w.steps, "guidance": w.guidance, "windows": w.windows, "frames": w.frames,
                              "width": w.width, "height": w.height, "tokens": w.tokens, "flops": w.flops}
                             for w in self.samplers],
                "decodes": [{"node": d.node, "frames": d.frames, "width": d.width, "height": d.height,
                             "flops": d.flops} for d in self.decodes],
                "encodes": [{"node": e.node, "weights": e.weights, "tokens": WAN_PROMPT_TOKENS, "flops": e.flops}
                            for e in self.encodes]}


def estimate(wf, registry, device: str = "auto") -> Estimate:
    """Each sampler's work and about how long the samplers take on `device` (as --device gives it: its own matrix
    speed measured), with a warning past LONG_S. On a GPU the time says its share of that speed is assumed."""
    works = sampler_work(wf, registry)
    known = [w for w in works if not w.unknown]
    decodes, encodes = (decode_work(wf, registry, works), encode_work(wf, registry)) if known else ([], [])
    lines = [w.describe() for w in works] + [d.describe() for d in decodes] + [e.describe() for e in encodes] + \
        [n for w in works for n in w.notes]
    if not known:
        return Estimate(works, lines)
    from graph_engine.devices import resolve_device
    from graph_engine.errors import KinographError
    try:
        dev = resolve_device(device)
        speed = matmul_speed(dev)
    except (ImportError, KinographError):     # no torch, or a device the run itself refuses and names
        return Estimate(works, lines)
    except RuntimeError as e:   # a GPU out of memory (torch.OutOfMemoryError) or busy: the run goes on, untimed
        return Estimate(works, lines + [f"no time told: this device's matrix speed could not be measured "
                                        f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"])
    cpu = dev == "cpu"
    each = {w.node: w.flops / (speed * (CPU_EFFICIENCY[w.family in UNET] if cpu else GPU_EFFICIENCY)) for w in known}
    # a VAE's convolutions run at a UNet's share of the probe's speed (not calibrated on a VAE of its own)
    each.update({d.node: d.flops / (speed * (CPU_EFFICIENCY[1] if cpu else GPU_EFFICIENCY)) for d in decodes})
    each.update({e.node: e.flops / (speed * (CPU_EFFICIENCY[0] if cpu else GPU_EFFICIENCY)) for e in encodes})
    seconds = sum(each.values())
    partial = " for the samplers counted" if len(known) < len(works) else ""
    where = "this CPU" if cpu else f"this GPU ({dev})"
    measured = f"{speed / 1e9:.0f} GFLOP/s" if cpu else \
        f"{speed / 1e12:.3g} TFLOP/s in fp16; the share of it a denoiser reaches on a GPU is assumed, not measured"
    # "about under a second" was the short run's line
    parts = ["sampling"] + ["text encoding"] * bool(encodes) + ["VAE decoding"] * bool(decodes)
    what = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    lines.append(("under a second" if seconds < 1 else f"about {duration(seconds)}") + f" of {what} on {where}"
                 f"{partial} (its matrix speed measured: {measured}); the pace is measured once the first step is done")
    if seconds < LONG_S:
        return Estimate(works, lines, seconds, each=each, where=where, decodes=decodes, encodes=encodes)
    big = max(known, key=lambda w: w.flops)
    cuts = [f"fewer steps ({big.node} runs {big.steps}: half as many take half the time)",
            f"fewer frames or a smaller size ({big.frames} frames at {big.width}x{big.height})"]
    if big.guidance == 2:
        cuts.append("a distilled model at cfg 1, which skips the negative pass (Wan with a lightx2v or CausVid "
                    "LoRA at 4-8 steps, LTX-Video's distilled model)")
    if cpu:
        cuts.append("a GPU (--device cuda)")
    return Estimate(works, lines, seconds, f"this run will take about {duration(seconds)} on {where}. To make "
                                           "it shorter: " + "; ".join(cuts), each, where, decodes, encodes)
