"""Bae et al.'s surface-normal network (ICCV 2021, "Estimating and Exploiting the Aleatoric Uncertainty in Surface
Normal Estimation"), as lllyasviel/Annotators' scannet.pt holds it and ControlNet 1.1's normalbae model was trained
on its pictures. Written here from the published architecture, in plain torch (the pack builds its encoder with timm,
which Kinograph does not depend on), and built to the shapes of the weights it loads, so the keys are the real file's
and a test's tiny network loads the same way:

- encoder.original_model: EfficientNet-B5 (the TensorFlow-trained "AdvProp" weights, tf_efficientnet_b5_ap), with
  TensorFlow's SAME padding (the extra pixel of a stride-2 step on the right and bottom) and batch-norm eps 1e-3: a
  3x3 stride-2 stem, seven stages of squeeze-excited depthwise (stage 0) and inverted-residual blocks, a 1x1 head.
- decoder: the head's raw output and stages 0, 1, 2 and 4 upsampled U-Net style (bilinear, corners aligned), a 1/8
  map of (normal, kappa), refined at 1/4, 1/2 and full size by per-pixel MLPs that read the features and the coarser
  prediction; each prediction's normal scaled to unit length."""
from __future__ import annotations

import math
import re
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

# the stride of each stage's first block (EfficientNet-B0's table, which B5 scales in width and depth only)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
SKIP_STAGES = (0, 1, 2, 4)      # the stages whose outputs the decoder reads, finest first
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class SameConv(nn.Conv2d):
    """A convolution padded as TensorFlow's SAME: the output is ceil(input / stride), the odd pixel of padding on
    the right and bottom."""

    def forward(self, x):
        pad = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pad += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pad), self.weight, self.bias, self.stride, 0, 1, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3)


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, reduced: int):
        super().__init__()
        self.conv_reduce, self.conv_expand = nn.Conv2d(c, reduced, 1), nn.Conv2d(reduced, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv_expand(F.silu(self.conv_reduce(x.mean((2, 3), keepdim=True)))))


class DepthwiseBlock(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, reduced: int):
        super().__init__()
        self.conv_dw, self.bn1 = SameConv(cin, cin, k, stride, groups=cin, bias=False), _bn(cin)
        self.se = SqueezeExcite(cin, reduced)
        self.conv_pw, self.bn2 = nn.Conv2d(cin, cout, 1, bias=False), _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.bn2(self.conv_pw(self.se(F.silu(self.bn1(self.conv_dw(x))))))
        return x + y if self.skip else y


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, k: int, stride: int, reduced: int):
        super().__init__()
        self.conv_pw, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), _bn(mid)
        self.conv_dw, self.bn2 = SameConv(mid, mid, k, stride, groups=mid, bias=False), _bn(mid)
        self.se = SqueezeExcite(mid, reduced)
        self.conv_pwl, self.bn3 = nn.Conv2d(mid, cout, 1, bias=False), _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = F.silu(self.bn1(self.conv_pw(x)))
        y = self.bn3(self.conv_pwl(self.se(F.silu(self.bn2(self.conv_dw(y))))))
        return x + y if self.skip else y


def _block(state: Dict[str, torch.Tensor], p: str, stride: int) -> nn.Module:
    dw, reduced = state[p + "conv_dw.weight"], state[p + "se.conv_reduce.weight"].shape[0]
    if p + "conv_pwl.weight" not in state:
        return DepthwiseBlock(dw.shape[0], state[p + "conv_pw.weight"].shape[0], dw.shape[-1], stride, reduced)
    pw = state[p + "conv_pw.weight"]
    return InvertedResidual(pw.shape[1], pw.shape[0], state[p + "conv_pwl.weight"].shape[0], dw.shape[-1], stride,
                            reduced)


class EfficientNet(nn.Module):
    """Features: the outputs of SKIP_STAGES' last blocks, then the head convolution's (before its batch norm, as
    the decoder was trained on it)."""

    def __init__(self, state: Dict[str, torch.Tensor], p: str):
        super().__init__()
        stem = state[p + "conv_stem.weight"]
        self.conv_stem, self.bn1 = SameConv(3, stem.shape[0], stem.shape[-1], 2, bias=False), _bn(stem.shape[0])
        counts = [len({m.group(1) for k in state for m in [re.match(re.escape(p) + rf"blocks\.{s}\.(\d+)\.", k)] if m})
                  for s in range(len(STAGE_STRIDES))]
        self.blocks = nn.Sequential(*[nn.Sequential(*[_block(state, f"{p}blocks.{s}.{j}.", STAGE_STRIDES[s] if j == 0
                                                             else 1) for j in range(n)])
                                      for s, n in enumerate(counts)])
        head = state[p + "conv_head.weight"]
        self.conv_head, self.bn2 = nn.Conv2d(head.shape[1], head.shape[0], 1, bias=False), _bn(head.shape[0])

    def forward(self, x):
        x = F.silu(self.bn1(self.conv_stem(x)))
        skips = []
        for s, stage in enumerate(self.blocks):
            x = stage(x)
            if s in SKIP_STAGES:
                skips.append(x)
        return skips + [self.conv_head(x)]


class Encoder(nn.Module):
    def __init__(self, state):
        super().__init__()
        self.original_model = EfficientNet(state, "encoder.original_model.")


class UpSample(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self._net = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(),
                                  nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU())

    def forward(self, x, skip):
        x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=True)
        return self._net(torch.cat([x, skip], dim=1))


def _mlp(state, p: str) -> nn.Sequential:
    layers = []
    for i in range(4):
        w = state[f"{p}.{2 * i}.weight"]
        layers += [nn.Conv1d(w.shape[1], w.shape[0], 1)] + ([nn.ReLU()] if i < 3 else [])
    return nn.Sequential(*layers)


def unit_normal(out):
    """(normal, kappa): the normal scaled to unit length, kappa made positive (ELU + 1.01)."""
    nx, ny, nz, kappa = torch.split(out, 1, dim=1)
    norm = torch.sqrt(nx ** 2.0 + ny ** 2.0 + nz ** 2.0) + 1e-10
    return torch.cat([nx / norm, ny / norm, nz / norm, F.elu(kappa) + 1.0 + 0.01], dim=1)


class Decoder(nn.Module):
    def __init__(self, state):
        super().__init__()
        c = state["decoder.conv2.weight"]
        self.conv2 = nn.Conv2d(c.shape[1], c.shape[0], 1)
        for i in range(1, 5):
            w = state[f"decoder.up{i}._net.0.weight"]
            setattr(self, f"up{i}", UpSample(w.shape[1], w.shape[0]))
        w = state["decoder.out_conv_res8.weight"]
        self.out_conv_res8 = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
        for r in (4, 2, 1):
            setattr(self, f"out_conv_res{r}", _mlp(state, f"decoder.out_conv_res{r}"))

    @staticmethod
    def _refine(mlp, features, coarse):
        feat = F.interpolate(features, scale_factor=2, mode="bilinear", align_corners=True)
        feat = torch.cat([feat, F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=True)], dim=1)
        b, c, h, w = feat.shape
        return unit_normal(mlp(feat.view(b, c, -1))).view(b, -1, h, w)

    def forward(self, features):
        b0, b1, b2, b3, b4 = features
        d1 = self.up1(self.conv2(b4), b3)
        d2 = self.up2(d1, b2)
        d3 = self.up3(d2, b1)
        d4 = self.up4(d3, b0)
        out = unit_normal(self.out_conv_res8(d2))
        out = self._refine(self.out_conv_res4, d2, out)
        out = self._refine(self.out_conv_res2, d3, out)
        return self._refine(self.out_conv_res1, d4, out)


class BaeNormals(nn.Module):
    """ImageNet-normalised RGB [n,3,h,w] (h, w whole 32s) -> (normal x, y, z, kappa) [n,4,h,w], the normal of unit
    length."""

    def __init__(self, state):
        super().__init__()
        self.encoder, self.decoder = Encoder(state), Decoder(state)

    @classmethod
    def shaped_for(cls, state: Dict[str, torch.Tensor]) -> "BaeNormals":
        return cls(state)

    def forward(self, x):
        return self.decoder(self.encoder.original_model(x))


def bae_pictures(net, frames, resolution: int, device: str):
    """BAE-NormalMapPreprocessor's pictures, uint8 [n,h,w,3] at the detect size: the normal's x, y, z from -1..1 to
    0..255 as R, G, B."""
    import cv2
    import numpy as np
    from nodes.preprocess.pictures import detect_sized
    sized = [detect_sized(f, resolution, cv2.INTER_CUBIC) for f in frames]
    th, tw = sized[0][1]
    with torch.inference_mode():
        x = torch.from_numpy(np.stack([p for p, _ in sized])).to(device).permute(0, 3, 1, 2).contiguous().float() / 255.0
        x = (x - torch.tensor(MEAN, device=device)[:, None, None]) / torch.tensor(STD, device=device)[:, None, None]
        normal = ((net(x)[:, :3] + 1) * 0.5).clip(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
    return (normal * 255.0).clip(0, 255).astype(np.uint8)[:, :th, :tw]
