"""Arbitrary style transfer with adaptive instance normalization (Huang & Belongie 2017).

The encoder is VGG-19 up to relu4_1 and the decoder its mirror, laid out exactly as the
reference PyTorch release (`vgg_normalized.pth`, `decoder.pth`: nn.Sequential state dicts),
so those files load as they are. No weights ship with Kinograph: the user points at local
files. AdaIN gives each content feature map the style's per-channel mean and spread; the
decoder turns the result back into an image."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from graph_engine import NodeError

# (in, out) of each 3x3 conv up to relu4_1, with "M" for the 2x2 max-pools between stages.
_VGG = [(3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), (256, 256), (256, 256), "M",
        (256, 512)]
_DECODER = [(512, 256), "U", (256, 256), (256, 256), (256, 256), (256, 128), "U", (128, 128), (128, 64), "U",
            (64, 64), (64, 3)]


def _conv(cin: int, cout: int):
    return [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(cin, cout, (3, 3))]


def encoder() -> nn.Sequential:
    layers = [nn.Conv2d(3, 3, (1, 1))]
    for item in _VGG:
        layers += [nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)] if item == "M" else _conv(*item) + [nn.ReLU()]
    return nn.Sequential(*layers)


def decoder() -> nn.Sequential:
    layers = []
    for k, item in enumerate(_DECODER):
        if item == "U":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        else:
            layers += _conv(*item) + ([nn.ReLU()] if k < len(_DECODER) - 1 else [])
    return nn.Sequential(*layers)


def _load(net: nn.Sequential, path: str, what: str) -> nn.Sequential:
    if not path or not Path(path).is_file():
        raise NodeError(f"AdaIN {what} weights not found at {path!r}: download the reference release's "
                        f"{'vgg_normalised.pth' if what == 'encoder' else 'decoder.pth'} and set the path to it")
    from nodes.generate.detect import torch_load
    # The model files' reader: a damaged or non-torch file is named as such (torch's own message
    # suggested loading it with weights_only=False, which would run any code the file holds).
    try:
        state = torch_load(Path(path))
    except NodeError as e:
        raise NodeError(f"AdaIN {what} weights: {e}") from None
    wanted = net.state_dict()
    missing = [k for k in wanted if k not in state]
    wrong = [k for k in wanted if k in state and tuple(state[k].shape) != tuple(wanted[k].shape)]
    if missing or wrong:
        raise NodeError(f"{path} is not an AdaIN {what} state dict: "
                        f"{'missing ' + ', '.join(missing[:4]) if missing else 'wrong shapes for ' + ', '.join(wrong[:4])}")
    # The released encoder continues past relu4_1; those extra layers are not needed.
    net.load_state_dict({k: state[k] for k in wanted})
    return net.eval()


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    cm, cs = content.mean((2, 3), keepdim=True), (content.var((2, 3), keepdim=True) + eps).sqrt()
    sm, ss = style.mean((2, 3), keepdim=True), (style.var((2, 3), keepdim=True) + eps).sqrt()
    return (content - cm) / cs * ss + sm


MIN_SIDE = 16     # pixels a side the encoder is given at least (it needs more than 8)
STYLE_SIDE = 512  # the shorter side a larger style image is brought down to, as the reference release's test.py


class StyleTransfer:
    """Loaded networks plus the style's features, computed once for the whole clip."""

    def __init__(self, encoder_path: str, decoder_path: str, style: np.ndarray, device: str = "cpu",
                 alpha: float = 1.0):
        self.device = torch.device(device)
        self.enc = _load(encoder(), encoder_path, "encoder").to(self.device)
        self.dec = _load(decoder(), decoder_path, "decoder").to(self.device)
        self.alpha = alpha
        # The network learned styles at this scale (style images resized to 512, cropped to 256): a 4000-px
        # scan of a painting gave brush strokes a sixth of the size, and held 4.8 GB at 3000x2000 (a
        # 6000x4000 scan ran out of memory).
        short = min(style.shape[:2])
        if short > STYLE_SIDE:
            import cv2
            size = (max(1, round(style.shape[1] * STYLE_SIDE / short)), max(1, round(style.shape[0] * STYLE_SIDE / short)))
            style = cv2.resize(style, size, interpolation=cv2.INTER_AREA)
        with torch.no_grad():
            self.style_feat = self.enc(self._tensor(style))

    def _tensor(self, img: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(img).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        # The encoder halves the picture three times and pads each 3x3 conv by reflection, which needs
        # 2 px at relu4_1: a frame or style image of 8 px or less on a side ended in a RuntimeError.
        # Such pictures are enlarged first (a frame's result is sized back to it in __call__).
        short = min(x.shape[2:])
        if short < MIN_SIDE:
            size = [max(MIN_SIDE, round(n * MIN_SIDE / short)) for n in x.shape[2:]]
            x = nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        with torch.no_grad():
            feat = self.enc(self._tensor(frame))
            t = adain(feat, self.style_feat)
            out = self.dec(self.alpha * t + (1 - self.alpha) * feat)
            out = nn.functional.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return (out[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
