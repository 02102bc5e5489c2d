"""IFNet, the network of RIFE 4.x (Huang et al., "Real-Time Intermediate Flow Estimation",
ECCV 2022; Practical-RIFE releases 4.0 to 4.26), written for Kinograph.

Every release is the same machine: a stack of IFBlocks estimates, coarse to fine, the flows
from the in-between time t back to both frames plus a blending mask; each block sees the
frames (and, from 4.7 on, learned features) warped by the estimate so far and adds a
correction. The releases differ only in parts that can be read off a weight file, so one
parameterised network (`Layout`) loads all of them:

  4.0-4.1   PReLU, 8 plain convs with a skip around them, a bare 5-channel transposed-conv head,
            and a second, finer pass when block 1 sees motion beyond 32 pixels
  4.2-4.4   LeakyReLU, 8 plain convs, the bare head
  4.5       residual convs (ResConv), transposed conv + pixel shuffle head (5 channels)
  4.6       the same with a 6-channel head
  4.7-4.9   a feature encoder (conv, transposed conv) whose features are warped with the frames;
            each block's mask replaces the previous one instead of adding to it
  4.10-4.13 a 4-layer encoder (nn.Sequential names), 4.14-4.20 the same as `Head` (cnn0..cnn3)
  4.21-4.24 blocks hand 8 feature channels to the next (13-channel head); no ensemble
  4.25-4.26 five blocks (1/16 .. 1/1); lite/heavy variants only change widths and encoders

Module and parameter names follow the published files (`block0.conv0.0.0.weight`,
`block0.convblock.0.beta`, `block0.lastconv.0.weight`, `encode.cnn0.weight`), except that the
nn.Sequential encoders of 4.7-4.13 are renamed to the `Head` names on load (same layers)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class Layout:
    release: str                 # the Practical-RIFE releases that share it, e.g. "4.7-4.9"
    widths: Tuple[int, ...]      # channels of each block
    in_ch: Tuple[int, ...]       # input channels of each block (checked against the rest)
    prelu: bool                  # 4.0-4.1 activations; they also imply the skip and the retry
    res_body: bool               # ResConv body (4.5+) instead of plain conv + activation
    depth: int                   # layers in each block body (8 in every release)
    shuffle: bool                # transposed conv + pixel shuffle head (4.5+) instead of bare
    head_out: int                # channels the head produces: 4 flow + 1 mask (+1 unused | +8 features)
    enc_hidden: int = 0          # encoder width; 0 = no encoder (4.0-4.6)
    enc_deep: bool = False       # three convs before the transposed one (4.10+) instead of one
    enc_out: int = 0             # feature channels per frame
    scales: Tuple[float, ...] = (8, 4, 2, 1)

    @property
    def feat_ch(self) -> int:
        """Feature channels one block hands to the next (4.21+)."""
        return self.head_out - 5 if self.head_out > 6 else 0

    @property
    def ensemble(self) -> bool:
        # From 4.21 on the blocks pass features forward, which the mirrored pass cannot average.
        return self.feat_ch == 0

    @property
    def mask_adds(self) -> bool:
        return self.enc_hidden == 0

    def multiple(self, scale: float) -> int:
        """Frame sides must be multiples of this at flow scale `scale`: every block shrinks by its
        downscale and then by 4 inside, and must land on whole pixels to come back to full size."""
        coarsest = max(self.scales) / scale * (2 if self.prelu else 1)   # 4.0's retry doubles the scales
        return max(8, int(round(4 * coarsest)))

    def describe(self) -> str:
        extra = f", {self.enc_out}-channel features" if self.enc_hidden else ""
        return f"RIFE {self.release} layout ({len(self.widths)} blocks, widths {'/'.join(map(str, self.widths))}{extra})"


class ResConv(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        return self.relu(self.conv(x) * self.beta + x)


def _conv(cin: int, cout: int, stride: int, prelu: bool) -> nn.Sequential:
    act = nn.PReLU(cout) if prelu else nn.LeakyReLU(0.2, True)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), act)


class IFBlock(nn.Module):
    def __init__(self, cin: int, c: int, lay: Layout):
        super().__init__()
        self.skip = lay.prelu
        self.bare_head = not lay.shuffle
        self.conv0 = nn.Sequential(_conv(cin, c // 2, 2, lay.prelu), _conv(c // 2, c, 2, lay.prelu))
        body = [ResConv(c) if lay.res_body else _conv(c, c, 1, lay.prelu) for _ in range(lay.depth)]
        self.convblock = nn.Sequential(*body)
        if self.bare_head:
            self.lastconv = nn.ConvTranspose2d(c, lay.head_out, 4, 2, 1)
        else:
            self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * lay.head_out, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x, flow, scale: float):
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        feat = self.conv0(x)
        feat = self.convblock(feat) + feat if self.skip else self.convblock(feat)
        # The bare head comes back at half the size, the shuffled one at full size.
        up = scale * 2 if self.bare_head else scale
        out = F.interpolate(self.lastconv(feat), scale_factor=up, mode="bilinear", align_corners=False)
        return out[:, :4] * up, out[:, 4:5], out[:, 5:]


class Encoder(nn.Module):
    """Per-frame features (4.7+): stride-2 conv, (two more convs,) transposed conv back to full size."""

    def __init__(self, hidden: int, out: int, deep: bool):
        super().__init__()
        self.deep = deep
        self.cnn0 = nn.Conv2d(3, hidden, 3, 2, 1)
        if deep:
            self.cnn1 = nn.Conv2d(hidden, hidden, 3, 1, 1)
            self.cnn2 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(hidden, out, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        x = self.cnn0(x)
        if self.deep:
            x = self.relu(self.cnn2(self.relu(self.cnn1(self.relu(x)))))
        # 4.7-4.9 go from the strided conv straight to the transposed one, with no activation.
        return self.cnn3(x)


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample img at x + flow(x) (pixels), borders replicated, as the weights were trained."""
    n, _, h, w = flow.shape
    # Sampling positions in fp32 even when the network runs in fp16/bf16: half precision cannot
    # address single pixels across a 1920-pixel frame.
    flow = flow.float()
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device).view(1, h, 1).expand(n, h, w)
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device).view(1, 1, w).expand(n, h, w)
    gx = xs + flow[:, 0] * (2.0 / max(w - 1, 1))
    gy = ys + flow[:, 1] * (2.0 / max(h - 1, 1))
    out = F.grid_sample(img.float(), torch.stack((gx, gy), dim=3), mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out.to(img.dtype)


def _swap(flow: torch.Tensor) -> torch.Tensor:
    return torch.cat((flow[:, 2:4], flow[:, :2]), 1)


class IFNet(nn.Module):
    def __init__(self, layout: Layout):
        super().__init__()
        self.layout = layout
        for i, (cin, c) in enumerate(zip(layout.in_ch, layout.widths)):
            self.add_module(f"block{i}", IFBlock(cin, c, layout))
        if layout.enc_hidden:
            self.encode = Encoder(layout.enc_hidden, layout.enc_out, layout.enc_deep)

    @property
    def blocks(self) -> List[IFBlock]:
        return [getattr(self, f"block{i}") for i in range(len(self.layout.widths))]

    def features(self, img: torch.Tensor) -> Optional[torch.Tensor]:
        """The encoder's features of frames in [0,1] (4.7+; None before): they depend on the frame
        alone, so a caller making several in-betweens of one pair computes them once."""
        return self.encode(img.clamp(0, 1)) if self.layout.enc_hidden else None

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, t: torch.Tensor, scale: float = 1.0,
                ensemble: bool = False, feats: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        """img0, img1: [N,3,H,W] in [0,1] with H, W multiples of `layout.multiple(scale)`; t: [N]
        times in (0,1). The in-between frames [N,3,H,W]. `ensemble` also runs every block on the
        mirrored pair (1 - t) and averages; layouts trained without it (4.21+) ignore it. `feats`:
        `features()` of img0 and img1, if already computed."""
        img0, img1 = img0.clamp(0, 1), img1.clamp(0, 1)
        time = t.to(img0.dtype).view(-1, 1, 1, 1).expand(-1, 1, *img0.shape[2:])
        ensemble = ensemble and self.layout.ensemble
        scales = [s / scale for s in self.layout.scales]
        if feats is None and self.layout.enc_hidden:
            feats = (self.features(img0), self.features(img1))
        out, big = self._run(img0, img1, time, scales, ensemble, ensemble, feats)
        if big is not None and bool(big.any()):
            # 4.0-4.1 (no encoder): where block 1 still corrects by more than 32 pixels both ways,
            # the motion is too large for the pyramid; those pairs start over with every scale
            # doubled (and, as published, no mirrored pass on the restarted first block).
            i = big.nonzero().flatten()
            out[i] = self._run(img0[i], img1[i], time[i], [s * 2 for s in scales], False, ensemble, None,
                               retry=False)[0]
        return out

    def _run(self, img0, img1, time, scales, ensemble_first: bool, ensemble: bool, feats, retry: bool = True):
        lay = self.layout
        f0, f1 = feats if feats is not None else (None, None)
        flow = mask = feat = big = None
        warped0, warped1 = img0, img1
        for i, block in enumerate(self.blocks):
            if flow is None:
                parts = (img0, img1) + ((f0, f1) if f0 is not None else ()) + (time,)
                flow, mask, feat = block(torch.cat(parts, 1), None, scales[i])
                if ensemble_first:
                    mirror = (img1, img0) + ((f1, f0) if f0 is not None else ()) + (1 - time,)
                    fm, mm, _ = block(torch.cat(mirror, 1), None, scales[i])
                    flow, mask = (flow + _swap(fm)) / 2, (mask - mm) / 2
            else:
                wf = (warp(f0, flow[:, :2]), warp(f1, flow[:, 2:4])) if f0 is not None else ()
                fd, md, new_feat = block(torch.cat((warped0, warped1) + wf + (time, mask)
                                                   + ((feat,) if lay.feat_ch else ()), 1), flow, scales[i])
                if i == 1 and lay.prelu and retry:
                    big = (fd[:, :2].flatten(1).abs().amax(1) > 32) & (fd[:, 2:4].flatten(1).abs().amax(1) > 32)
                if ensemble:
                    wm = (wf[1], wf[0]) if wf else ()
                    fm, mm, _ = block(torch.cat((warped1, warped0) + wm + (1 - time, -mask), 1), _swap(flow), scales[i])
                    fd, md = (fd + _swap(fm)) / 2, (md - mm) / 2
                flow = flow + fd
                mask = mask + md if lay.mask_adds else md
                feat = new_feat
            warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        m = torch.sigmoid(mask)
        return warped0 * m + warped1 * (1 - m), big
