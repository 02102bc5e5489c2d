"""RIFE in-betweens: load a user's IFNet weights, run them on the chosen device, and let the
shared scheduler (nodes.interpolate.schedule) decide which frames to make."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.interpolate.ifnet import FIRST_IN, IFNet, padding, widths_from_state
from nodes.interpolate.schedule import interpolated_clip

# Containers some trainers and converters wrap a state dict in.
_WRAPPERS = ("state_dict", "model", "params", "flownet")


def read_state(path: Path) -> Dict[str, torch.Tensor]:
    """The tensors of a .safetensors or torch (.pth/.pkl/.pt) file, never executing code from it."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NodeError(f"RIFE weights not found: {path}")
    except Exception as e:  # corrupt, truncated, or not a tensor file at all
        raise NodeError(f"cannot read RIFE weights {path}: the file is damaged, truncated or not a weight file "
                        f"({type(e).__name__}: {str(e)[:200]}); download it again") from None
    for key in _WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NodeError(f"{path} is not a RIFE state dict (expected a mapping of parameter names to tensors)")
    # Multi-GPU training saves names as "module.block0...".
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def build_ifnet(state: Dict[str, torch.Tensor], path: Path) -> IFNet:
    where = f"{path} does not hold RIFE 4.x IFNet weights in the 4.6 layout"
    try:
        widths = widths_from_state(state)
    except KeyError as e:
        raise NodeError(f"{where}: no parameter {e.args[0]!r} (found e.g. {', '.join(list(state)[:4])})") from None
    first_in = state["block0.conv0.0.0.weight"].shape[1] if "block0.conv0.0.0.weight" in state else None
    if first_in != FIRST_IN:
        raise NodeError(f"{where}: its first block takes {first_in} input channels, 4.6 takes {FIRST_IN} "
                        f"(RIFE 4.7+ adds feature encoders; convert or use a 4.6-compatible file)")
    net = IFNet(widths)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or extra or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                 f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "",
                 f"{len(wrong)} of another shape (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} vs "
                 f"{tuple(expected[wrong[0]].shape)})" if wrong else ""]
        raise NodeError(f"{where}: parameters {'; '.join(p for p in parts if p)}")
    net.load_state_dict(state)
    return net.eval()


@functools.lru_cache(maxsize=2)
def _load(path: str, stamp: tuple, device: str) -> IFNet:
    p = Path(path)
    return build_ifnet(read_state(p), p).to(device)


def load_rife(model: str, device: str = "cpu") -> IFNet:
    from nodes.common.models_dirs import find_model
    path = find_model(model, "rife")
    st = path.stat()
    return _load(str(path), (st.st_mtime_ns, st.st_size), device)


class RifeSynth:
    def __init__(self, net: IFNet, device: str = "cpu", scale: float = 1.0):
        self.net, self.device, self.scale = net, torch.device(device), scale

    def _tensor(self, frame: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        h, w = frame.shape[:2]
        m = padding(self.scale)
        return F.pad(x, (0, (-w) % m, 0, (-h) % m))

    def prepare(self, a: np.ndarray, b: np.ndarray):
        return self._tensor(a), self._tensor(b), a.shape[:2]

    @torch.inference_mode()
    def render(self, state, ts: Sequence[float]) -> List[np.ndarray]:
        x0, x1, (h, w) = state
        out = []
        for t in ts:
            y = self.net(x0, x1, t, self.scale)[0, :, :h, :w]
            out.append((y.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy())
        return out


def rife_clip(video, model: str, *, factor: int = 2, fps: float = 0.0, scale: float = 1.0,
              scene_threshold: float = 0.3, multipliers: str = "", device: str = "cpu", ctx=None):
    net = load_rife(model, device)
    return interpolated_clip(video, RifeSynth(net, device, scale), factor=factor, fps=fps, multipliers=multipliers,
                             scene_threshold=scene_threshold, ctx=ctx)
