"""RIFE in-betweens: find and read a user's RIFE 4.x weights, tell which release they are from
their tensors, run them on the chosen device and precision, several frames per forward pass,
and let the shared scheduler (nodes.interpolate.schedule) decide which frames to make."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.generate.detect import SAFE_EXT, read_header
from nodes.generate.weights import read_raw
from nodes.interpolate.ifnet import IFNet, Layout
from nodes.interpolate.rife_layouts import UnknownLayout, detect, rename, strip
from nodes.interpolate.schedule import interpolated_clip

# Containers some trainers and converters wrap a state dict in.
_WRAPPERS = ("state_dict", "model", "params", "flownet")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def _unwrap(state, path: Path) -> Dict[str, object]:
    for key in _WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state:
        raise NodeError(f"{path} is not a RIFE weight file (expected a mapping of parameter names to tensors)")
    return strip(state)


def _read(path: Path, shapes_only: bool):
    """The file's tensors (a safetensors file's shapes only, if asked), never executing code from it.

    The model-file readers do the reading (headers, memory-mapped pickles with weights_only); RIFE only
    words the failure for its own node."""
    try:
        if shapes_only and path.suffix.lower() in SAFE_EXT:
            return dict(read_header(path).shapes)
        return read_raw(path)
    except FileNotFoundError:
        raise NodeError(f"RIFE weights not found: {path}") from None
    except NodeError as e:  # the readers already name the file and what is wrong with it
        raise NodeError(f"cannot read RIFE weights: {e}") from None
    except Exception as e:  # corrupt, truncated, or not a tensor file at all
        raise NodeError(f"cannot read RIFE weights {path}: the file is damaged, truncated or not a weight file "
                        f"({type(e).__name__}: {str(e)[:200]}); download it again") from None


def read_state(path: Path) -> Dict[str, torch.Tensor]:
    state = _unwrap(_read(path, False), path)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NodeError(f"{path} is not a RIFE weight file (it holds values that are not tensors)")
    return state


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=32)
def _inspect(path: str, stamp: tuple) -> Tuple[Optional[Layout], str]:
    p = Path(path)
    try:
        state = _unwrap(_read(p, True), p)
        shapes = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else v for k, v in state.items()}
        if not all(isinstance(v, tuple) for v in shapes.values()):
            raise NodeError(f"{p} is not a RIFE weight file (it holds values that are not tensors)")
        return detect(shapes), ""
    except UnknownLayout as e:
        return None, f"{p} is not a RIFE layout Kinograph knows: {e}"
    except NodeError as e:
        return None, str(e)


def inspect(path: Path) -> Layout:
    """The layout of a weight file, from its names and shapes only (cached per file version)."""
    layout, why = _inspect(str(path), _stamp(path))
    if layout is None:
        raise NodeError(why)
    return layout


def find_weights(name: str, required: bool = True) -> Optional[Path]:
    """The file a model name means. A name whose extension is not there still finds the same name
    with another one (ComfyUI-Frame-Interpolation has rife47.pth where a converter made
    rife47.safetensors)."""
    from nodes.common.models_dirs import WEIGHT_SUFFIXES, find_model, list_models
    found = find_model(name, "rife", required=False)
    given = Path((name or "").strip())
    if found is None and len(given.parts) == 1 and given.suffix.lower() in WEIGHT_SUFFIXES:
        found = find_model(given.stem, "rife", required=False)
    if found is None and required:
        try:
            find_model(name, "rife")   # not found: its message says where it looked
        except NodeError as e:
            have = [p.name for p in list_models().get("rife", [])]
            hint = (f"\nRIFE files found there: {', '.join(have[:12])}" if have else
                    "\nNo RIFE files are there yet: RIFE 4.x weights come from Practical-RIFE's releases, "
                    "ComfyUI-Frame-Interpolation's ckpts/rife folder (rife47.pth, rife49.pth, rife426.pth ...) or "
                    "ComfyUI's models/frame_interpolation (rife_v4.26.safetensors ...)")
            raise NodeError(f"{e}{hint}") from None
    return found


def check_model(name: str) -> Optional[str]:
    """For validation: why this model name cannot be run, or None."""
    try:
        inspect(find_weights(name))
    except NodeError as e:
        return str(e)
    return None


def build_ifnet(state: Dict[str, torch.Tensor], path: Path) -> IFNet:
    try:
        layout = detect({k: tuple(v.shape) for k, v in state.items()})
    except UnknownLayout as e:
        raise NodeError(f"{path} is not a RIFE layout Kinograph knows: {e}") from None
    with torch.device("meta"):   # no random initialisation: every parameter comes from the file
        net = IFNet(layout)
    state = rename(state)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or extra or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                 f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "",
                 f"{len(wrong)} of another shape (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} vs "
                 f"{tuple(expected[wrong[0]].shape)})" if wrong else ""]
        raise NodeError(f"{path} looks like the {layout.describe()} but its parameters do not fit: "
                        f"{'; '.join(p for p in parts if p)}. The file may be damaged or edited; download it again")
    net.load_state_dict(state, assign=True)
    return net.eval()


def compute_dtype(device: str, precision: str) -> torch.dtype:
    """fp16 (auto) or the asked half precision on CUDA GPUs; everywhere else fp32, which is what
    CPUs run fastest and what Apple GPUs run reliably."""
    if precision not in PRECISIONS:
        raise NodeError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if torch.device(device).type != "cuda" or precision == "fp32":
        return torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float16


@functools.lru_cache(maxsize=2)
def _load(path: str, stamp: tuple, device: str, dtype: torch.dtype) -> IFNet:
    p = Path(path)
    return build_ifnet(read_state(p), p).to(device=device, dtype=dtype)


def load_rife(model: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> IFNet:
    path = find_weights(model)
    return _load(str(path), _stamp(path), device, dtype)


class RifeSynth:
    """prepare/render for the scheduler; render_many runs up to `batch` in-betweens per forward,
    across pairs. A pair's state keeps its frames' encoder features for all its in-betweens."""

    def __init__(self, net: IFNet, device: str = "cpu", scale: float = 1.0, ensemble: bool = False, batch: int = 4):
        self.net, self.device, self.scale, self.ensemble = net, torch.device(device), scale, ensemble
        self.batch = max(1, int(batch))
        self.dtype = next(net.parameters()).dtype

    @torch.inference_mode()
    def prepare(self, a: np.ndarray, b: np.ndarray):
        x0, x1 = self._tensor(a), self._tensor(b)
        return x0, x1, a.shape[:2], (self.net.features(x0), self.net.features(x1))

    def _tensor(self, frame: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1)[None]
        x = x.to(self.dtype) / 255.0
        h, w = frame.shape[:2]
        m = self.net.layout.multiple(self.scale)
        return F.pad(x, (0, (-w) % m, 0, (-h) % m))

    def render(self, state, ts: Sequence[float]) -> List[np.ndarray]:
        return self.render_many([(state, ts)])[0]

    @torch.inference_mode()
    def render_many(self, jobs) -> List[List[np.ndarray]]:
        items = [(state, float(t)) for state, ts in jobs for t in ts]
        frames: List[np.ndarray] = []
        for k in range(0, len(items), self.batch):
            part = items[k:k + self.batch]
            x0 = torch.cat([s[0] for s, _ in part])
            x1 = torch.cat([s[1] for s, _ in part])
            feats = None
            if self.net.layout.enc_hidden:
                feats = (torch.cat([s[3][0] for s, _ in part]), torch.cat([s[3][1] for s, _ in part]))
            t = torch.tensor([t for _, t in part], device=self.device)
            y = self.net(x0, x1, t, self.scale, self.ensemble, feats).float().clamp(0, 1)
            y = (y * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            frames += [y[i, :h, :w] for i, ((_, _, (h, w), _), _) in enumerate(part)]
        out, k = [], 0
        for _, ts in jobs:
            out.append(frames[k:k + len(ts)])
            k += len(ts)
        return out


def rife_clip(video, model: str, *, factor: int = 2, fps: float = 0.0, scale: float = 1.0, ensemble: bool = False,
              precision: str = "auto", batch: int = 4, scene_threshold: float = 0.3, multipliers: str = "",
              device: str = "cpu", ctx=None):
    net = load_rife(model, device, compute_dtype(device, precision))
    synth = RifeSynth(net, device, scale, ensemble, batch)
    return interpolated_clip(video, synth, factor=factor, fps=fps, multipliers=multipliers,
                             scene_threshold=scene_threshold, ctx=ctx)
