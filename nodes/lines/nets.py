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
