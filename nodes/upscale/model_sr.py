"""Single-image super-resolution networks (ESRGAN, Real-ESRGAN, SwinIR, ... anything spandrel
recognises) from a local weight file, run tile by tile so any frame size fits in memory."""
from __future__ import annotations

import functools
import itertools
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.generate.config_bound import refuse_built_beyond
from nodes.upscale.nodes import MIN_TILE
from nodes.upscale.spandrel_loader import spandrel


# The most tensors a published upscaler holds is about 2,100 (DAT 2,116, RGT 2,024, HAT-L 1,710, RCAN 1,634,
# SwinIR-L 859, Real-ESRGAN x4plus 702), and no layer index passes a hundred. spandrel's architecture detection
# scans every key once per layer it finds (get_seq_len inside a loop over the highest layer number), so a file
# naming 20,000 layers by empty tensors spent minutes there before anything was built.
MAX_TENSORS = 5000
MAX_LAYER_INDEX = 1000


def _refuse_beyond_published(path: str, state) -> None:
    if len(state) > MAX_TENSORS:
        raise NodeError(f"{path} holds {len(state):,} tensors; the largest published upscalers (DAT, HAT-L) hold "
                        f"about 2,100, so Kinograph reads at most {MAX_TENSORS:,}: the file is damaged or made to "
                        "stall the loader. Get it again from where it was published")
    for key in state:
        index = max((int(part) for part in key.split(".") if part.isdecimal()), default=0)
        if index > MAX_LAYER_INDEX:
            raise NodeError(f"{path} names layer {index:,} ({key[:80]}); published upscalers number their layers "
                            f"below a hundred, so Kinograph reads at most {MAX_LAYER_INDEX:,}: the file is damaged or "
                            "made to stall the loader. Get it again from where it was published")


@functools.lru_cache(maxsize=2)
def _load(path: str, stamp: tuple, device: str):
    import re
    if path.lower().endswith(".gguf"):
        raise NodeError(f"{path} is a GGUF file, the format of quantised diffusion models and text encoders, not "
                        "an upscaler; upscale.model reads super-resolution weights (.pth, .safetensors, .ckpt: "
                        "ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, ...)")
    import zipfile
    if zipfile.is_zipfile(path):
        # spandrel opens a .pt with torch.jit.load, which runs the archive's code as it loads
        from nodes.generate.detect import check_torchscript
        check_torchscript(path, "upscaler")
    sp = spandrel()
    loader = sp.ModelLoader(device=torch.device(device))
    try:
        state = loader.load_state_dict_from_file(path)
        _refuse_beyond_published(path, state)
        # spandrel sizes the network from the file's shapes and key names (ESRGAN's depth from its highest block
        # number): a file naming block 200,000 filled 5 GB in 100 s before any message. The build gets a copy: some
        # architectures rename or add entries as they load (SwinIR's conv_first.1, SPAN's no_norm)
        refuse_built_beyond(lambda: loader.registry.load(dict(state)), state, path,
                            "its tensor names and shapes make an upscaler", "where it was published")
        desc = loader.load_from_state_dict(state)
    except NodeError:
        raise
    except sp.UnsupportedModelError:
        raise NodeError(f"{path} is not a super-resolution architecture Kinograph can load (spandrel does not "
                        f"recognise its parameters); use an ESRGAN/Real-ESRGAN, SwinIR, HAT, DAT, ... file") from None
    except Exception as e:  # truncated / corrupt / not a weight file
        # A pickle naming a function to call is refused for safety: another copy of it would be no better.
        runs = re.search(r"Global '([^']+)' is forbidden|GLOBAL (\S+)", str(e))
        if runs:
            raise NodeError(f"{path} holds more than plain tensors: loading it would run {runs.group(1) or runs.group(2)}"
                            ", so it is refused. Convert it to .safetensors, or get the file from a trusted "
                            "source") from None
        raise NodeError(f"cannot read upscale model {path}: the file is damaged, truncated or not a weight file "
                        f"({type(e).__name__}: {str(e)[:200]}); download it again") from None
    if not isinstance(desc, sp.ImageModelDescriptor):
        raise NodeError(f"{path} holds a {desc.architecture.name} model, which is not a single-image model")
    if desc.input_channels != 3 or desc.output_channels != 3:
        raise NodeError(f"{path} is a {desc.architecture.name} model for {desc.input_channels}-channel images; "
                        f"upscale.model needs an RGB (3-channel) model")
    desc.eval()
    if device.startswith("cuda") and desc.supports_half:
        desc.half()
    return desc


def load_model(model: str, device: str = "cpu"):
    from nodes.common.models_dirs import WEIGHT_SUFFIXES, find_model
    path = find_model(model, "upscale_models")
    if path.is_dir():
        # A folder was read as a file and called damaged, with the advice to download it again.
        inside = sorted(p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES)
        raise NodeError(f"{path} is a folder; upscale.model reads one weight file: "
                        + (f"give one of the files in it ({', '.join(inside[:8])})" if inside else
                           "it holds no weight file (.pth, .safetensors, ...)"))
    st = path.stat()
    return _load(str(path), (st.st_mtime_ns, st.st_size), device)


def _pad_for(desc, h: int, w: int) -> Tuple[int, int]:
    req = desc.size_requirements
    m = max(1, req.multiple_of)
    ph, pw = max(h, req.minimum), max(w, req.minimum)
    if req.square:
        ph = pw = max(ph, pw)
    return (-ph) % m + ph - h, (-pw) % m + pw - w


def _run(desc, x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    dh, dw = _pad_for(desc, h, w)
    if dh or dw:
        x = F.pad(x, (0, dw, 0, dh), mode="reflect" if dh < h and dw < w else "replicate")
    param = next(desc.model.parameters())
    y = desc(x.to(param.device, param.dtype)).float()
    return y[..., :h * desc.scale, :w * desc.scale]


def _ramp(n: int, lead: int, trail: int) -> np.ndarray:
    """A tile's blending weights along one side, n samples: 1 inside; over a `lead`-sample overlap at the
    start, 0 for its first quarter, rising over its middle half, 1 for its last quarter (and mirrored over
    `trail` at the end). A network sees past a tile's edge only padding, so the few samples next to the
    edge are wrong (a SwinIR's by up to 170 levels); they get no say, and the neighbouring tile, whose
    inside they are, covers them. Two tiles' ramps over a shared overlap add up to 1."""
    r = np.ones(n, np.float32)
    for length, sl in ((lead, slice(0, lead)), (trail, slice(n - trail, n))):
        if not length:
            continue
        margin = length // 4
        rise = np.clip((np.arange(length) + 0.5 - margin) / max(1, length - 2 * margin), 0, 1)
        r[sl] = np.minimum(r[sl], rise if sl.start == 0 else rise[::-1])
    return r


def upscale_image(desc, img: np.ndarray, tile: int = 512, overlap: int = 32, check=None, on_tile=None) -> np.ndarray:
    """uint8 HxWx3 -> uint8 (H*s)x(W*s)x3; tiles overlap and are cross-faded so no seams show.
    Running out of memory halves the tile and tries again. check() (ctx.check: raises when the run is
    cancelled) is called before each tile: on a CPU one 1080p frame of Real-ESRGAN x4plus takes half an
    hour, and a cancel waited for the whole frame. on_tile(done, total) follows the tiles."""
    h, w = img.shape[:2]
    s = desc.scale
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0
    while True:
        try:
            with torch.inference_mode():
                out = _tiled(desc, x, tile, overlap, check, on_tile)
            break
        except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
            if "out of memory" not in str(e).lower() and not isinstance(e, torch.cuda.OutOfMemoryError):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            tile = (tile or max(h, w)) // 2
            if tile < MIN_TILE:
                raise NodeError(f"not enough memory to upscale even {MIN_TILE}x{MIN_TILE} tiles with this model; "
                                f"free memory or use the CPU") from None
    # In place: at 4x each float copy of the output is 16 times the frame's bytes (1.6 GB for a 4K frame).
    with torch.inference_mode():
        out = out.clamp_(0, 1).mul_(255.0).add_(0.5).to(torch.uint8)[0]
    return out.permute(1, 2, 0).numpy().reshape(h * s, w * s, 3)


def _tiled(desc, x: torch.Tensor, tile: int, overlap: int, check=None, on_tile=None) -> torch.Tensor:
    h, w = x.shape[-2:]
    s = desc.scale
    if not tile or (h <= tile and w <= tile):
        return _run(desc, x).cpu()
    overlap = min(overlap, tile // 4)
    stride = tile - overlap
    out = torch.zeros((1, 3, h * s, w * s))
    weight = torch.zeros((1, 1, h * s, w * s))
    rows, cols = range(0, max(h - overlap, 1), stride), range(0, max(w - overlap, 1), stride)
    for k, (y0, x0) in enumerate(itertools.product(rows, cols)):
        y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
        y0c, x0c = max(0, y1 - tile), max(0, x1 - tile)   # last tiles shift back to stay full-size
        if check is not None:
            check()
        part = _run(desc, x[..., y0c:y1, x0c:x1]).cpu()
        th, tw = part.shape[-2:]
        ry = _ramp(th, overlap * s if y0c > 0 else 0, overlap * s if y1 < h else 0)
        rx = _ramp(tw, overlap * s if x0c > 0 else 0, overlap * s if x1 < w else 0)
        wt = torch.from_numpy(np.outer(ry, rx))[None, None]
        out[..., y0c * s:y1 * s, x0c * s:x1 * s] += part * wt
        weight[..., y0c * s:y1 * s, x0c * s:x1 * s] += wt
        if on_tile is not None:
            on_tile(k + 1, len(rows) * len(cols))
    return out.div_(weight)


def model_clip(video, model: str, *, tile: int = 512, overlap: int = 32, device: str = "cpu", ctx=None):
    from nodes.common.stream import Progress, map_indexed
    desc = load_model(model, device)
    check = None if ctx is None else ctx.check
    progress = Progress(ctx, video.length)

    def on_tile(i: int, done: int, total: int) -> None:
        # A big frame is minutes of tiles on a CPU: the bar moves with them, not once a frame.
        if total > 1:
            progress.within(done / total, f"frame {i + 1}: tile {done} of {total}")
    return map_indexed(ctx, video, lambda i, f: upscale_image(desc, f, tile, overlap, check,
                                                             lambda d, t: on_tile(i, d, t)),
                       video.width * desc.scale, video.height * desc.scale, progress)
