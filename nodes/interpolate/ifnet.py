"""IFNet, the network of RIFE 4.x (Huang et al., "Real-Time Intermediate Flow Estimation",
ECCV 2022), in the 4.6 layout, written for Kinograph.

Four IFBlocks estimate, coarse to fine (1/8 .. 1/1 of the frame by default), the flows
from the in-between time t back to both frames plus a blending mask; each block sees the
frames warped by the previous estimate and adds a correction. Module and parameter names
follow the published weight files (`block0.conv0.0.0.weight`, `block0.convblock.0.beta`,
`block0.lastconv.0.weight`, ...) so they load with a plain `load_state_dict`."""
from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

# Input channels of the first block (two frames + the time plane) and of the later ones
# (two warped frames, time, mask, plus the 4 flow channels they refine).
FIRST_IN, LATER_IN = 7, 12
DEFAULT_WIDTHS = (192, 128, 96, 64)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=True), nn.LeakyReLU(0.2, True))


class ResConv(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    def __init__(self, cin: int, c: int):
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, c // 2), _conv(c // 2, c))
        self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
        # 24 channels at half the feature size become 6 at full size: 4 flow, 1 mask, 1 unused.
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * 6, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x, flow, scale: float):
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        feat = self.convblock(self.conv0(x))
        out = F.interpolate(self.lastconv(feat), scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5]


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample img at x + flow(x) (pixels), borders replicated, as the weights were trained."""
    n, _, h, w = flow.shape
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype).view(1, h, 1).expand(n, h, w)
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype).view(1, 1, w).expand(n, h, w)
    gx = xs + flow[:, 0] * (2.0 / max(w - 1, 1))
    gy = ys + flow[:, 1] * (2.0 / max(h - 1, 1))
    return F.grid_sample(img, torch.stack((gx, gy), dim=3), mode="bilinear", padding_mode="border",
                         align_corners=True)


class IFNet(nn.Module):
    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS):
        super().__init__()
        self.block0 = IFBlock(FIRST_IN, widths[0])
        self.block1 = IFBlock(LATER_IN, widths[1])
        self.block2 = IFBlock(LATER_IN, widths[2])
        self.block3 = IFBlock(LATER_IN, widths[3])

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: float, scale: float = 1.0) -> torch.Tensor:
        """img0, img1: [N,3,H,W] in [0,1], H and W multiples of `padding(scale)`; returns the frame at t."""
        time = torch.full_like(img0[:, :1], float(t))
        flow = mask = None
        warped0, warped1 = img0, img1
        for i, block in enumerate((self.block0, self.block1, self.block2, self.block3)):
            s = 8.0 / 2 ** i / scale
            if flow is None:
                flow, mask = block(torch.cat((img0, img1, time), 1), None, s)
            else:
                df, dm = block(torch.cat((warped0, warped1, time, mask), 1), flow, s)
                flow, mask = flow + df, mask + dm
            warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        m = torch.sigmoid(mask)
        return warped0 * m + warped1 * (1 - m)


def padding(scale: float) -> int:
    """Frame sizes must be multiples of this: the coarsest block works at 1/32 of 1/(8/scale)."""
    return max(32, int(32 / scale))


def widths_from_state(state: Dict[str, torch.Tensor]) -> tuple:
    return tuple(int(state[f"block{i}.conv0.1.0.weight"].shape[0]) for i in range(4))
