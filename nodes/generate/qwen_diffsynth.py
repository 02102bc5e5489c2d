"""DiffSynth's "blockwise" Qwen-Image ControlNets (Comfy-Org/Qwen-Image-DiffSynth-ControlNets: canny, depth), as
ComfyUI loads them with ModelPatchLoader from model_patches/ and applies them with QwenImageDiffsynthControlnet. No
transformer of their own: the control picture's latent (Qwen-Image's VAE, normalised as the model's latent is) in
2x2-patch tokens through one linear layer, then after each of the transformer's blocks a small block per transformer
block reads the block's picture tokens and those control tokens (each RMS-normalised, summed, linear, GELU, linear) and
its output, times the strength, is added to the picture tokens. Qwen-Image-Edit's reference pictures are not steered.
The inpainting file (more input channels: the picture with a mask) is named and refused."""
from __future__ import annotations

import re
from contextlib import contextmanager

import torch
from torch import nn

from graph_engine import NodeError
from nodes.generate.control import assembled

PROBE = "controlnet_blocks.0.y_rms.weight"


class _Block(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.x_rms = nn.RMSNorm(dim, eps=1e-6)
        self.y_rms = nn.RMSNorm(dim, eps=1e-6)
        self.input_proj = nn.Linear(dim, dim)
        self.act = nn.GELU()
        self.output_proj = nn.Linear(dim, dim)

    def forward(self, x, y):
        return self.output_proj(self.act(self.input_proj(self.x_rms(x) + self.y_rms(y))))


class BlockwiseNet(nn.Module):
    def __init__(self, in_dim: int, dim: int, layers: int):
        super().__init__()
        self.img_in = nn.Linear(in_dim, dim)
        self.controlnet_blocks = nn.ModuleList(_Block(dim) for _ in range(layers))


def build(state: dict, transformer, name: str) -> BlockwiseNet:
    """The net in `state` (the file's tensors), checked to fit this Qwen-Image transformer block for block."""
    dim, in_dim = (int(s) for s in state["img_in.weight"].shape)
    if in_dim != transformer.config.in_channels:
        raise NodeError(f"{name} is DiffSynth's Qwen-Image inpainting ControlNet ({in_dim} input channels: the picture "
                        "with a mask), which Kinograph does not run yet; use the canny or depth file")
    layers = len({m.group(1) for k in state if (m := re.match(r"controlnet_blocks\.(\d+)\.", k))})
    width = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    if (dim, layers) != (width, len(transformer.transformer_blocks)):
        raise NodeError(f"{name} is a Qwen-Image ControlNet {dim} wide for {layers} blocks; this Qwen-Image "
                        f"transformer is {width} wide with {len(transformer.transformer_blocks)}: apply it to the "
                        "Qwen-Image it was made for")
    net = assembled(BlockwiseNet, dict(in_dim=in_dim, dim=dim, layers=layers), state,
                    f"{name}, a Qwen-Image DiffSynth ControlNet,")
    return net.to(transformer.device, transformer.dtype).eval()


@contextmanager
def steering(blocks, controls, own: int):
    """While the transformer runs: after block i, each control (c, tokens) adds c.strength x its block i's output to
    the first `own` picture tokens (the latent's), one control after another, as ComfyUI's double_block patches do.
    tokens: the control picture's packed latent [rows, own, 64]."""
    if not controls:
        yield
        return
    conds = [(c, c.net.img_in(tokens)) for c, tokens in controls]

    def after(i):
        def hook(module, args, out):
            text, img = out
            mine = img[:, :own]
            for c, cond in conds:
                mine = mine + c.net.controlnet_blocks[i](mine, cond) * c.strength
            return text, torch.cat([mine, img[:, own:]], 1)
        return hook
    handles = [b.register_forward_hook(after(i)) for i, b in enumerate(blocks)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
