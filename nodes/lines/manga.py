"""The manga line extractor of Li et al. (MangaLineExtraction_PyTorch, MIT; lllyasviel/Annotators' erika.pth), which
comfyui_controlnet_aux's Manga Lineart runs for the anime line-art ControlNet: a residual U-Net on the grey picture
in 0..255, written here from the published architecture and built to the shapes of the weights it loads.

Each unit is batch norm (eps 1e-3), LeakyReLU 0.2 and a convolution ("bn_relu_conv"); a block is two units and a
shortcut (a 1x1 convolution where the width or size changes). Five stages go down (the last block of stages 1-4 at
stride 2), four come back up (each first block doubling the size, nearest), each added to the stage of its size,
then a stage at full size and a 1x1 unit to one channel."""
from __future__ import annotations

import re
from typing import Dict

import torch
from torch import nn

DOWN, UP = ("block0", "block1", "block2", "block3", "block4"), ("block5", "block6", "block7", "block8")


class Unit(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, up: bool = False):
        super().__init__()
        layers = [nn.BatchNorm2d(cin, eps=1e-3), nn.LeakyReLU(0.2), nn.Conv2d(cin, cout, k, stride, k // 2)]
        self.model = nn.Sequential(*layers, *([nn.Upsample(scale_factor=2, mode="nearest")] if up else []))

    def forward(self, x):
        return self.model(x)


class Shortcut(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, up: bool, project: bool):
        super().__init__()
        self.model = nn.Sequential(nn.Conv2d(cin, cout, 1, stride),
                                   *([nn.Upsample(scale_factor=2, mode="nearest")] if up else [])) if project else None

    def forward(self, x, y):
        return (x if self.model is None else self.model(x)) + y


class Block(nn.Module):
    def __init__(self, state: Dict[str, torch.Tensor], p: str, stride: int, up: bool):
        super().__init__()
        w = state[p + "conv1.model.2.weight"]
        self.conv1 = Unit(w.shape[1], w.shape[0], w.shape[-1], stride, up)
        self.residual = Unit(w.shape[0], w.shape[0], state[p + "residual.model.2.weight"].shape[-1])
        self.shortcut = Shortcut(w.shape[1], w.shape[0], stride, up, p + "shortcut.model.0.weight" in state)

    def forward(self, x):
        return self.shortcut(x, self.residual(self.conv1(x)))


class Stage(nn.Module):
    def __init__(self, state, name: str):
        super().__init__()
        n = len({m.group(1) for k in state for m in [re.match(rf"{name}\.model\.(\d+)\.", k)] if m})
        # the last block of stages 1-4 halves the size; the first of 5-8 doubles it
        self.model = nn.Sequential(*[Block(state, f"{name}.model.{i}.",
                                           2 if name in DOWN[1:] and i == n - 1 else 1,
                                           name in UP and i == 0) for i in range(n)])

    def forward(self, x):
        return self.model(x)


class MangaLine(nn.Module):
    """Grey [n,1,h,w] in 0..255 (h, w whole 16s) -> line darkness [n,1,h,w], 255 for none."""

    def __init__(self, state):
        super().__init__()
        for name in DOWN + UP + ("block9",):
            setattr(self, name, Stage(state, name))
        w = state["conv15.model.2.weight"]
        self.conv15 = Unit(w.shape[1], w.shape[0], w.shape[-1])

    @classmethod
    def shaped_for(cls, state: Dict[str, torch.Tensor]) -> "MangaLine":
        return cls(state)

    def forward(self, x):
        skips = []
        for name in DOWN:
            x = getattr(self, name)(x)
            skips.append(x)
        for name, skip in zip(UP, reversed(skips[:-1])):
            x = skip + getattr(self, name)(x)
        return self.conv15(self.block9(x))
