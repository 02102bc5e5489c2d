"""RAFT-large optical flow (Teed & Deng) in torchvision's layout, the file ComfyUI's OpticalFlowLoader reads
(raft_large_C_T_SKHT_V2 as a .safetensors or .pth state dict): features of both frames at 1/8 size, their all-pairs
correlation in a 4-level pyramid, 12 recurrent refinements of the flow, and a learned convex 8x upsampling."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from graph_engine import NodeError

RADIUS, LEVELS, HIDDEN, UPDATES = 4, 4, 128, 12


def _conv(cin, cout, k, stride=1, norm=None, relu=True) -> nn.Sequential:
    """conv (+ norm) (+ ReLU), numbered as torchvision's Conv2dNormActivation (conv .0, norm .1)."""
    parts = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2)]
    parts += [norm(cout)] if norm is not None else []
    parts += [nn.ReLU()] if relu else []
    return nn.Sequential(*parts)


class _Residual(nn.Module):
    def __init__(self, cin, cout, norm, stride):
        super().__init__()
        self.convnormrelu1 = _conv(cin, cout, 3, stride, norm)
        self.convnormrelu2 = _conv(cout, cout, 3, 1, norm)
        self.downsample = nn.Identity() if stride == 1 else _conv(cin, cout, 1, stride, norm, relu=False)

    def forward(self, x):
        return F.relu(self.downsample(x) + self.convnormrelu2(self.convnormrelu1(x)))


class _Encoder(nn.Module):
    """3 -> 256 channels at 1/8 size (the feature encoder with instance norm, the context encoder with batch norm)."""

    def __init__(self, norm):
        super().__init__()
        self.convnormrelu = _conv(3, 64, 7, 2, norm)
        self.layer1 = nn.Sequential(_Residual(64, 64, norm, 1), _Residual(64, 64, norm, 1))
        self.layer2 = nn.Sequential(_Residual(64, 96, norm, 2), _Residual(96, 96, norm, 1))
        self.layer3 = nn.Sequential(_Residual(96, 128, norm, 2), _Residual(128, 128, norm, 1))
        self.conv = nn.Conv2d(128, 256, 1)

    def forward(self, x):
        return self.conv(self.layer3(self.layer2(self.layer1(self.convnormrelu(x)))))


class _MotionEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.convcorr1 = _conv(LEVELS * (2 * RADIUS + 1) ** 2, 256, 1)
        self.convcorr2 = _conv(256, 192, 3)
        self.convflow1 = _conv(2, 128, 7)
        self.convflow2 = _conv(128, 64, 3)
        self.conv = _conv(192 + 64, 126, 3)

    def forward(self, flow, corr):
        c = self.convcorr2(self.convcorr1(corr))
        f = self.convflow2(self.convflow1(flow))
        return torch.cat([self.conv(torch.cat([c, f], 1)), flow], 1)


class _GRU(nn.Module):
    def __init__(self, k, pad):
        super().__init__()
        cin = HIDDEN + 128 + 128
        self.convz, self.convr, self.convq = (nn.Conv2d(cin, HIDDEN, k, padding=pad) for _ in range(3))

    def forward(self, h, x):
        hx = torch.cat([h, x], 1)
        z, r = torch.sigmoid(self.convz(hx)), torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], 1)))
        return (1 - z) * h + z * q


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.convgru1 = _GRU((1, 5), (0, 2))      # along rows, then along columns
        self.convgru2 = _GRU((5, 1), (2, 0))

    def forward(self, h, x):
        return self.convgru2(self.convgru1(h, x), x)


class _FlowHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(HIDDEN, 256, 3, padding=1)
        self.conv2 = nn.Conv2d(256, 2, 3, padding=1)

    def forward(self, h):
        return self.conv2(F.relu(self.conv1(h)))


class _Update(nn.Module):
    def __init__(self):
        super().__init__()
        self.motion_encoder = _MotionEncoder()
        self.recurrent_block = _Recurrent()
        self.flow_head = _FlowHead()


class _Mask(nn.Module):
    def __init__(self):
        super().__init__()
        self.convrelu = _conv(HIDDEN, 256, 3)
        self.conv = nn.Conv2d(256, 8 * 8 * 9, 1)

    def forward(self, h):
        return 0.25 * self.conv(self.convrelu(h))


def _lookup(pyramid, coords):
    """Correlation around each pixel's current match: a (2r+1)^2 window, bilinear, on every level."""
    b, _, h, w = coords.shape
    d = torch.arange(-RADIUS, RADIUS + 1, dtype=coords.dtype, device=coords.device)
    rows, cols = torch.meshgrid(d, d, indexing="ij")
    # the x offset runs down the window's rows, y along them (torchvision's order, which its weights learnt)
    window = torch.stack([rows, cols], -1).view(1, 2 * RADIUS + 1, 2 * RADIUS + 1, 2)
    at = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
    out = []
    for level in pyramid:
        g = at + window
        lh, lw = level.shape[-2:]
        norm = torch.cat([2 * g[..., :1] / (lw - 1) - 1, 2 * g[..., 1:] / (lh - 1) - 1], -1)
        out.append(F.grid_sample(level, norm, mode="bilinear", align_corners=True).view(b, h, w, -1))
        at = at / 2
    return torch.cat(out, -1).permute(0, 3, 1, 2)


class Raft(nn.Module):
    """RAFT-large; forward(a, b) -> flow [B, 2, H, W] in pixels from a to b, for frames [B, 3, H, W] in -1..1 whose
    sides are multiples of 8 and at least 128 (the coarsest correlation level needs two pixels a side)."""

    def __init__(self):
        super().__init__()
        self.feature_encoder = _Encoder(nn.InstanceNorm2d)
        self.context_encoder = _Encoder(nn.BatchNorm2d)
        self.update_block = _Update()
        self.mask_predictor = _Mask()

    def forward(self, a, b, updates: int = 0):
        """updates: the refinements (0 = RAFT's 12, as ComfyUI runs it)."""
        n, _, h, w = a.shape
        f1, f2 = self.feature_encoder(torch.cat([a, b])).chunk(2)
        c = f1.shape[1]
        corr = (f1.flatten(2).transpose(1, 2) @ f2.flatten(2)) / torch.sqrt(torch.tensor(float(c)))
        level = corr.reshape(n * (h // 8) * (w // 8), 1, h // 8, w // 8)
        pyramid = [level]
        for _ in range(LEVELS - 1):
            level = F.avg_pool2d(level, 2, 2)
            pyramid.append(level)
        hidden, context = self.context_encoder(a).split([HIDDEN, 256 - HIDDEN], 1)
        hidden, context = torch.tanh(hidden), F.relu(context)
        ys, xs = torch.meshgrid(torch.arange(h // 8), torch.arange(w // 8), indexing="ij")
        coords0 = torch.stack([xs, ys]).float()[None].repeat(n, 1, 1, 1).to(a.device)
        coords1 = coords0.clone()
        up = self.update_block
        for _ in range(updates or UPDATES):
            motion = up.motion_encoder(coords1 - coords0, _lookup(pyramid, coords1))
            hidden = up.recurrent_block(hidden, torch.cat([context, motion], 1))
            coords1 = coords1 + up.flow_head(hidden)
        return _upsampled(coords1 - coords0, self.mask_predictor(hidden))


def _upsampled(flow, mask):
    """Each full-size pixel a convex (softmax) mix of its 3x3 coarse neighbours' flow, times 8."""
    n, _, h, w = flow.shape
    weights = torch.softmax(mask.view(n, 1, 9, 8, 8, h, w), dim=2)
    near = F.unfold(8 * flow, 3, padding=1).view(n, 2, 9, 1, 1, h, w)
    return (weights * near).sum(2).permute(0, 1, 4, 2, 5, 3).reshape(n, 2, 8 * h, 8 * w)


def load_raft(state: dict) -> Raft:
    """RAFT-large from torchvision's state dict; another file is refused by name."""
    if not all(any(k.startswith(p) for k in state) for p in ("feature_encoder.", "context_encoder.",
                                                            "update_block.")):
        raise NodeError("the optical flow file is not torchvision's RAFT-large (no feature_encoder., "
                        "context_encoder. and update_block. weights): give raft_large_C_T_SKHT_V2 (ComfyUI's "
                        "optical_flow model)")
    model = Raft()
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    odd = [k for k in state if k in ours and tuple(state[k].shape) != tuple(ours[k].shape)]
    if missing or odd:
        raise NodeError(f"the optical flow file is not RAFT-large: {len(missing)} weights missing "
                        f"({', '.join(missing[:3])}), {len(odd)} of another size ({', '.join(odd[:3])}); RAFT-small "
                        f"and other flow models are not read")
    model.load_state_dict({k: state[k] for k in ours})
    return model.eval().float()


# Its coarsest correlation level is 1/64 of the frame: below this it has no pixel left.
MIN_SIZE = 128


@torch.no_grad()
def raft_flow(model: Raft, a: torch.Tensor, b: torch.Tensor, updates: int = 0) -> torch.Tensor:
    """Flow [2, H, W] from frame a to b (CHW, 0..1) as ComfyUI's RaftOpticalFlow gives it: the frames scaled
    (bilinear) to multiples of 8, the flow scaled back to the frames' size (its values as they are)."""
    _, h, w = a.shape
    if min(h, w) < MIN_SIZE:
        raise NodeError(f"RAFT needs frames of at least {MIN_SIZE} x {MIN_SIZE} pixels (its coarsest correlation level is 1/64 of "
                        f"them); these are {w} x {h}: give a larger size")
    dev = next(model.parameters()).device
    size = (h // 8 * 8, w // 8 * 8)

    def prep(x):
        x = x.to(dev, torch.float32)[None]
        x = x if size == (h, w) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x * 2 - 1
    flow = model(prep(a), prep(b), updates)
    if flow.shape[-2:] != (h, w):
        flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
    return flow[0]
