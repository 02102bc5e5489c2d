"""The line networks of lllyasviel/Annotators, written from their published architectures and built to the shapes
of the weights they load, so the key names are the real files' (and a test's tiny network loads the same way):

- sk_model.pth / sk_model2.pth (informative-drawings' generator, realistic and coarse line art): a 7x7 stem,
  two stride-2 convolutions, residual blocks, two transposed convolutions back up and a 7x7 sigmoid head, each
  inner convolution instance-normalised, reflection padding at the ends and in the blocks.
- ControlNetHED.pth (lllyasviel's Apache-2.0 HED): a learned RGB offset, five VGG-like stages (max-pooled by 2
  before every stage but the first), each with a 1x1 projection to one edge channel."""
from __future__ import annotations

import re
from typing import Dict, List

import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c),
                                        nn.ReLU(inplace=True), nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3),
                                        nn.InstanceNorm2d(c))

    def forward(self, x):
        return x + self.conv_block(x)


def _down(a: int, b: int) -> List[nn.Module]:
    return [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.InstanceNorm2d(b), nn.ReLU(inplace=True)]


def _up(a: int, b: int) -> List[nn.Module]:
    return [nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(b),
            nn.ReLU(inplace=True)]


class LineGenerator(nn.Module):
    """RGB in 0..1 -> line darkness in 0..1 (one channel), at the input's size (a multiple of 4)."""

    def __init__(self, width: int = 64, blocks: int = 3):
        super().__init__()
        w = width
        self.model0 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, w, 7), nn.InstanceNorm2d(w), nn.ReLU(inplace=True))
        self.model1 = nn.Sequential(*_down(w, 2 * w), *_down(2 * w, 4 * w))
        self.model2 = nn.Sequential(*[Residual(4 * w) for _ in range(blocks)])
        self.model3 = nn.Sequential(*_up(4 * w, 2 * w), *_up(2 * w, w))
        self.model4 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(w, 1, 7), nn.Sigmoid())

    @classmethod
    def shaped_for(cls, state: Dict[str, torch.Tensor]) -> "LineGenerator":
        blocks = len({m.group(1) for k in state for m in [re.match(r"model2\.(\d+)\.", k)] if m})
        return cls(state["model0.1.weight"].shape[0], blocks)

    def forward(self, x):
        for stage in (self.model0, self.model1, self.model2, self.model3, self.model4):
            x = stage(x)
        return x


class HEDStage(nn.Module):
    def __init__(self, a: int, b: int, layers: int):
        super().__init__()
        self.convs = nn.Sequential(*[nn.Conv2d(a if i == 0 else b, b, 3, padding=1) for i in range(layers)])
        self.projection = nn.Conv2d(b, 1, 1)

    def forward(self, x, pool: bool):
        if pool:
            x = nn.functional.max_pool2d(x, 2, 2)
        for conv in self.convs:
            x = nn.functional.relu(conv(x))
        return x, self.projection(x)


class HED(nn.Module):
    """RGB in 0..255 -> five edge logit maps, at 1, 1/2, 1/4, 1/8 and 1/16 of the input's size."""

    def __init__(self, widths=(64, 128, 256, 512, 512), layers=(2, 2, 3, 3, 3)):
        super().__init__()
        self.norm = nn.Parameter(torch.zeros(1, 3, 1, 1))
        ins = (3,) + tuple(widths[:-1])
        for i, (a, b, n) in enumerate(zip(ins, widths, layers), 1):
            setattr(self, f"block{i}", HEDStage(a, b, n))

    @classmethod
    def shaped_for(cls, state: Dict[str, torch.Tensor]) -> "HED":
        widths = tuple(state[f"block{i}.projection.weight"].shape[1] for i in range(1, 6))
        layers = tuple(len({k for k in state if re.match(rf"block{i}\.convs\.\d+\.weight$", k)}) for i in range(1, 6))
        return cls(widths, layers)

    def forward(self, x):
        h, out = x - self.norm, []
        for i in range(1, 6):
            h, p = getattr(self, f"block{i}")(h, pool=i > 1)
            out.append(p)
        return out


# PiDiNet's table-5 network (carv4): the pixel-difference kind of each of its 16 depthwise convolutions, in order
# (the stem, then blocks 1_1 .. 4_4): central, angular, radial differences and plain convolution in turn.
CARV4 = ("cd", "ad", "rd", "cv") * 4
# Angular difference: weight i is paired with the neighbour clockwise before it (the 3x3 window in raster order).
CLOCKWISE = [3, 0, 1, 6, 4, 2, 7, 8, 5]
# Radial difference: the eight weights after the first go to the 5x5 window's outer ring and, negated, to the ring
# inside it.
OUTER, INNER = [0, 2, 4, 10, 14, 20, 22, 24], [6, 7, 8, 11, 13, 16, 17, 18]


def pixel_difference(x, w, kind: str, groups: int = 1):
    """A pixel-difference convolution (stride 1, padding keeping the size), as plain convolution weights."""
    F = nn.functional
    o, i = w.shape[:2]
    if kind == "cd":
        return F.conv2d(x, w, padding=1, groups=groups) - F.conv2d(x, w.sum(dim=(2, 3), keepdim=True), groups=groups)
    if kind == "ad":
        flat = w.reshape(o, i, 9)
        return F.conv2d(x, (flat - flat[:, :, CLOCKWISE]).reshape(w.shape), padding=1, groups=groups)
    if kind == "rd":
        flat = w.reshape(o, i, 9)
        ring = flat.new_zeros(o, i, 25)
        ring[:, :, OUTER] = flat[:, :, 1:]
        ring[:, :, INNER] = -flat[:, :, 1:]
        return F.conv2d(x, ring.reshape(o, i, 5, 5), padding=2, groups=groups)
    return F.conv2d(x, w, padding=1, groups=groups)


class PDCBlock(nn.Module):
    def __init__(self, kind: str, a: int, b: int, stride: int = 1):
        super().__init__()
        self.kind, self.stride = kind, stride
        if stride > 1:
            self.shortcut = nn.Conv2d(a, b, 1)
        self.conv1 = nn.Module()
        self.conv1.weight = nn.Parameter(torch.zeros(a, 1, 3, 3))
        self.conv2 = nn.Conv2d(a, b, 1, bias=False)

    def forward(self, x):
        if self.stride > 1:
            x = nn.functional.max_pool2d(x, 2, 2)
        y = self.conv2(torch.relu(pixel_difference(x, self.conv1.weight, self.kind, groups=x.shape[1])))
        return y + (self.shortcut(x) if self.stride > 1 else x)


class CDCM(nn.Module):
    """Four dilated 3x3 convolutions (5, 7, 9, 11) of a 1x1 reduction, summed."""

    def __init__(self, a: int, b: int):
        super().__init__()
        self.conv1 = nn.Conv2d(a, b, 1)
        for k, d in enumerate((5, 7, 9, 11), 1):
            setattr(self, f"conv2_{k}", nn.Conv2d(b, b, 3, dilation=d, padding=d, bias=False))

    def forward(self, x):
        x = self.conv1(torch.relu(x))
        return sum(getattr(self, f"conv2_{k}")(x) for k in range(1, 5))


class CSAM(nn.Module):
    """Spatial attention: the input times a sigmoid map from a 1x1 then a 3x3 convolution of it."""

    def __init__(self, c: int, mid: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(c, mid, 1)
        self.conv2 = nn.Conv2d(mid, 1, 3, padding=1, bias=False)

    def forward(self, x):
        return x * torch.sigmoid(self.conv2(self.conv1(torch.relu(x))))


class MapReduce(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        return self.conv(x)


class PiDiNet(nn.Module):
    """RGB in 0..1 (in BGR order, as it was trained) -> the fused edge probability at the input's size (a multiple
    of 8): four stages of four pixel-difference blocks (widths C, 2C, 4C, 4C), each stage's map through a dilation
    module and spatial attention to one channel, upsampled, and the four mixed by a 1x1 classifier."""

    def __init__(self, width: int = 60, dil: int = 24, mid: int = 4):
        super().__init__()
        self.init_block = nn.Module()
        self.init_block.weight = nn.Parameter(torch.zeros(width, 3, 3, 3))
        widths = (width, 2 * width, 4 * width, 4 * width)
        k, prev = 1, width
        for s, c in enumerate(widths, 1):
            for j in range(1, 5 if s > 1 else 4):
                setattr(self, f"block{s}_{j}", PDCBlock(CARV4[k], prev, c, 2 if (j == 1 and s > 1) else 1))
                k, prev = k + 1, c
        self.dilations = nn.ModuleList(CDCM(c, dil) for c in widths)
        self.attentions = nn.ModuleList(CSAM(dil, mid) for _ in widths)
        self.conv_reduces = nn.ModuleList(MapReduce(dil) for _ in widths)
        self.classifier = nn.Conv2d(4, 1, 1)

    @classmethod
    def shaped_for(cls, state: Dict[str, torch.Tensor]) -> "PiDiNet":
        return cls(state["init_block.weight"].shape[0], state["dilations.0.conv1.weight"].shape[0],
                   state["attentions.0.conv1.weight"].shape[0])

    def forward(self, x):
        h, w = x.shape[2:]
        x = pixel_difference(x, self.init_block.weight, CARV4[0])
        maps = []
        for s in range(1, 5):
            for j in range(1, 5 if s > 1 else 4):
                x = getattr(self, f"block{s}_{j}")(x)
            e = self.conv_reduces[s - 1](self.attentions[s - 1](self.dilations[s - 1](x)))
            maps.append(nn.functional.interpolate(e, (h, w), mode="bilinear", align_corners=False))
        return torch.sigmoid(self.classifier(torch.cat(maps, dim=1)))


class SkipBlock(nn.Module):
    """One level of pix2pix's U-Net: a 4x4 stride-2 convolution down, the inner levels, a 4x4 transposed
    convolution up, its input joined to its output (not at the outermost level). Instance norm without weights."""

    def __init__(self, outer: int, inner: int, sub: "SkipBlock" = None, outermost_in: int = 0):
        super().__init__()
        self.outermost = bool(outermost_in)
        down = nn.Conv2d(outermost_in or outer, inner, 4, 2, 1)
        if self.outermost:
            layers = [down, sub, nn.ReLU(), nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1), nn.Tanh()]
        elif sub is None:
            layers = [nn.LeakyReLU(0.2), down, nn.ReLU(), nn.ConvTranspose2d(inner, outer, 4, 2, 1),
                      nn.InstanceNorm2d(outer)]
        else:
            layers = [nn.LeakyReLU(0.2), down, nn.InstanceNorm2d(inner), sub, nn.ReLU(),
                      nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1), nn.InstanceNorm2d(outer)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class AnimeUNet(nn.Module):
    """netG.pth (lllyasviel's anime line art): RGB in -1..1 -> lines in -1..1, an 8-level U-Net (the input a
    multiple of 256) whose widths grow from `width` by doubling to 8 x width and stay there."""

    def __init__(self, width: int = 64, levels: int = 8):
        super().__init__()
        widths = [min(width * 2 ** i, width * 8) for i in range(levels)]
        block = SkipBlock(widths[-1], widths[-1])
        for i in range(levels - 2, 0, -1):
            block = SkipBlock(widths[i - 1], widths[i], block)
        self.model = SkipBlock(1, width, block, outermost_in=3)

    @classmethod
    def shaped_for(cls, state: Dict[str, torch.Tensor]) -> "AnimeUNet":
        # level n's down convolution is `.model.1` below n - 2 `.model.3` (each level's inner block) below the
        # outermost's `model.model.1`
        levels = 2 + max(k.count(".model.3") for k in state
                         if k.startswith("model.model.1.") and k.endswith(".model.1.weight"))
        return cls(state["model.model.0.weight"].shape[0], levels)

    def forward(self, x):
        return self.model(x)


def _conv_bn(a: int, b: int, k: int, relu, **kw) -> List[nn.Module]:
    return [nn.Conv2d(a, b, k, **kw), nn.BatchNorm2d(b)] + ([relu] if relu is not None else [])


class TFConvBN(nn.Sequential):
    """MobileNetV2's convolution, batch norm and ReLU6, padded as TFLite pads (one pixel right and below, none
    before) where it strides by 2."""

    def __init__(self, a: int, b: int, k: int = 3, stride: int = 1, groups: int = 1):
        pad = 0 if stride == 2 else (k - 1) // 2
        super().__init__(*_conv_bn(a, b, k, nn.ReLU6(), stride=stride, padding=pad, groups=groups, bias=False))
        self.stride = stride

    def forward(self, x):
        if self.stride == 2:
            x = nn.functional.pad(x, (0, 1, 0, 1))
        return super().forward(x)


class InvertedResidual(nn.Module):
    def __init__(self, a: int, b: int, stride: int, expand: int):
        super().__init__()
        hidden = a * expand
        layers = [TFConvBN(a, hidden, 1)] if expand != 1 else []
        layers += [TFConvBN(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, b, 1, bias=False),
                   nn.BatchNorm2d(b)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and a == b

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2Trunk(nn.Module):
    """MobileNetV2 to its 96-channel stage, on RGB plus a plane of ones; the outputs of features 1, 3, 6, 10, 13
    (strides 2, 4, 8, 16, 16)."""
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
    TAPS = (1, 3, 6, 10, 13)

    def __init__(self):
        super().__init__()
        layers, c = [TFConvBN(4, 32, stride=2)], 32
        for t, out, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        taps = []
        for i, f in enumerate(self.features):
            x = f(x)
            if i in self.TAPS:
                taps.append(x)
        return taps


class MergeBlock(nn.Module):
    """M-LSD's block A: a 1x1 conv of the finer map beside a 1x1 conv of the coarser one (upscaled x2)."""

    def __init__(self, fine: int, coarse: int, upscale: bool = True):
        super().__init__()
        self.conv1 = nn.Sequential(*_conv_bn(coarse, 64, 1, nn.ReLU()))
        self.conv2 = nn.Sequential(*_conv_bn(fine, 64, 1, nn.ReLU()))
        self.upscale = upscale

    def forward(self, fine, coarse):
        coarse = self.conv1(coarse)
        if self.upscale:
            coarse = nn.functional.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=True)
        return torch.cat((self.conv2(fine), coarse), dim=1)


class RefineBlock(nn.Module):
    """M-LSD's block B: a residual 3x3 conv, then a 3x3 conv to 64 channels."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(*_conv_bn(128, 128, 3, nn.ReLU(), padding=1))
        self.conv2 = nn.Sequential(*_conv_bn(128, 64, 3, nn.ReLU(), padding=1))

    def forward(self, x):
        return self.conv2(self.conv1(x) + x)


class MLSD(nn.Module):
    """M-LSD large (mlsd_large_512_fp32.pth): RGB and ones in -1..1 -> at half the input's size, line centre logits
    (channel 0) and each centre's start and end offsets (1..4), the first of the 9 maps it keeps."""

    def __init__(self):
        super().__init__()
        self.backbone = MobileNetV2Trunk()
        self.block15, self.block16 = MergeBlock(64, 96, upscale=False), RefineBlock()
        self.block17, self.block18 = MergeBlock(32, 64), RefineBlock()
        self.block19, self.block20 = MergeBlock(24, 64), RefineBlock()
        self.block21, self.block22 = MergeBlock(16, 64), RefineBlock()
        self.block23 = nn.Module()
        self.block23.conv1 = nn.Sequential(*_conv_bn(64, 64, 3, nn.ReLU(), padding=5, dilation=5))
        self.block23.conv2 = nn.Sequential(*_conv_bn(64, 64, 3, nn.ReLU(), padding=1))
        self.block23.conv3 = nn.Conv2d(64, 16, 1)

    @classmethod
    def shaped_for(cls, state: Dict[str, torch.Tensor]) -> "MLSD":
        return cls()

    def forward(self, x):
        c1, c2, c3, c4, c5 = self.backbone(x)
        x = self.block16(self.block15(c4, c5))
        x = self.block18(self.block17(c3, x))
        x = self.block20(self.block19(c2, x))
        x = self.block22(self.block21(c1, x))
        b = self.block23
        return b.conv3(b.conv2(b.conv1(x)))[:, 7:]
