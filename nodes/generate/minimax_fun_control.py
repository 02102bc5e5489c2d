"""MiniMax H3's Fun ControlNet-Union (alibaba-pai/MiniMax-H3-Fun-Controlnet-Union; Comfy-Org's
model_patches/minimax_h3_fun_controlnet_union_*), as ComfyUI's MiniMaxH3FunControlNetApply lays it into the model
(comfy/ldm/minimax/controlnet.py): a tower of MiniMax H3 blocks beside the transformer's, its blocks placed evenly over
the transformer's (every tenth of fifty for five) or where the file's control_blocks_places says.

At the first placed block the transformer's input sequence is copied; the control video's latent rows (2x2 patches of
its 24 channels, zero-padded to the tower's width) are projected into the copy's generated-video rows, and
before_proj of it is added to the sequence. A sequence holding keyframes or reference pictures is refused, as
ComfyUI's init_stream refuses it (no published code says what the tower reads in their rows). After each placed
block the tower's block runs on the copy with the transformer's modulation table, rows and rotary angles, and
after_proj of its output, times the strength, is added to the transformer's sequence everywhere but the sound's rows.
The control video is fitted to the video (frame i of it, its last held; covering the canvas bilinearly, centred) and
encoded to the posterior's mean, as ComfyUI's VAE encodes it."""
from __future__ import annotations

import json
import re
from contextlib import contextmanager

import torch
from torch import nn

from graph_engine import NodeError

PROBE = "control_blocks.0.before_proj.weight"
PLACES = "control_blocks_places"        # the file's metadata key naming the transformer blocks it follows


class FunControl(nn.Module):
    def __init__(self, blocks, in_dim: int, hidden: int, places):
        super().__init__()
        self.places = tuple(places)
        self.control_proj_in = nn.Linear(in_dim, hidden)
        self.control_blocks = blocks
        self.before_proj = nn.Linear(hidden, hidden)
        self.after_proj = nn.ModuleList(nn.Linear(hidden, hidden) for _ in blocks)


def build(state: dict, transformer, name: str, metadata=None) -> FunControl:
    """The tower in `state` (ComfyUI's / MiniMax's names), its blocks of the transformer's own kind (the pruned
    release's curve-form modulation where the transformer has it), placed where the file's `metadata` says or evenly
    (ComfyUI's nodes_model_patch reads both)."""
    from diffusers.loaders.single_file_utils import convert_minimax_h3_transformer_checkpoint_to_diffusers
    from nodes.generate.control import assembled
    n = len({m.group(1) for k in state if (m := re.match(r"control_blocks\.(\d+)\.after_proj\.", k))})
    layers = len(transformer.transformer_blocks)
    if not n:
        raise NodeError(f"{name} has a MiniMax H3 Fun ControlNet's first block but no after_proj: the file is damaged; "
                        "get it again from where it was published")
    try:
        places = tuple(int(p) for p in json.loads(metadata[PLACES])) if metadata and PLACES in metadata else \
            tuple(range(0, layers, max(1, layers // n)))[:n]
    except (ValueError, TypeError):
        raise NodeError(f"{name}'s {PLACES} metadata is not a list of block numbers: the file is damaged") from None
    if len(places) != n or places[0] != 0 or places[-1] >= layers or list(places) != sorted(set(places)):
        raise NodeError(f"{name} places its {n} control blocks after transformer blocks {list(places)}; this MiniMax "
                        f"H3 transformer has {layers}: apply it to the MiniMax H3 it was made for")
    rest = {k: v for k, v in state.items() if ".before_proj." not in k and ".after_proj." not in k
            and not k.startswith("control_proj_in.")}
    conv = convert_minimax_h3_transformer_checkpoint_to_diffusers(
        {re.sub(r"^control_blocks\.", "x.", k): v for k, v in rest.items()}, config={})
    conv = {re.sub(r"^x\.", "control_blocks.", k): v for k, v in conv.items()}
    conv.update({k: v for k, v in state.items() if k.startswith("control_proj_in.")})
    conv.update({k.replace("control_blocks.0.before_proj.", "before_proj."): v for k, v in state.items()
                 if k.startswith("control_blocks.0.before_proj.")})
    conv.update({re.sub(r"^control_blocks\.(\d+)\.after_proj\.", r"after_proj.\1.", k): v for k, v in state.items()
                 if ".after_proj." in k})
    base = transformer.transformer_blocks[0]

    def tower(**cfg):
        blocks = nn.ModuleList(type(base)(**cfg["block"]) for _ in range(n))
        for b in blocks:        # the pruned release's modulation (no SiLU) where the transformer has it
            b.adaln_proj.__class__ = type(base.adaln_proj)
        return FunControl(blocks, cfg["in_dim"], cfg["block"]["hidden_size"], places)
    c = transformer.config
    block = dict(hidden_size=c.hidden_size, num_attention_heads=c.num_attention_heads,
                 attention_head_dim=c.attention_head_dim, ffn_dim=c.ffn_dim, time_embed_dim=c.time_embed_dim,
                 norm_eps=c.norm_eps, qk_norm_eps=c.qk_norm_eps)
    net = assembled(tower, dict(block=block, in_dim=int(state["control_proj_in.weight"].shape[1])), conv,
                    f"{name}, a MiniMax H3 Fun ControlNet (its modulation must be of the transformer's form: the "
                    "pruned release's with the pruned transformer),")
    return net.to(transformer.device, transformer.dtype).eval()


def control_rows(net: FunControl, latent: torch.Tensor) -> torch.Tensor:
    """The control latent [C, T, h, w] as the tower's input rows: 2x2 patches, each row zero-padded to its width."""
    from nodes.generate.adapters.minimax_h3 import patchify
    rows = patchify(latent.float())
    width = net.control_proj_in.in_features
    if rows.shape[1] > width:
        raise NodeError(f"the control latent has {rows.shape[1] // 4} channels; this Fun ControlNet reads "
                        f"{width // 4}")
    return nn.functional.pad(rows, (0, width - rows.shape[1]))


@contextmanager
def steering(blocks, controls, video_rows, target_rows, sound_rows):
    """While the transformer runs on one sequence: controls [(net, strength, rows)] (rows: control_rows of the
    generated video) steer it as the module docstring says. video_rows: every video row's place in the sequence
    (held rows first: refused), target_rows: the generated video's places, sound_rows: the sound's."""
    if not controls:
        yield
        return
    if video_rows.numel() != target_rows.numel():
        raise NodeError("MiniMax H3's Fun ControlNet steers a video made from its prompt alone, as ComfyUI's does (it "
                        "refuses keyframe and reference conditioning): remove the keyframes or reference pictures "
                        "(condition.frames, condition.references) or the control (control.model_patch)")
    streams = [None] * len(controls)

    def after(layer):
        def hook(module, args, out):
            h, rest = args[0], args[1:]
            for k, (net, strength, rows) in enumerate(controls):
                if layer not in net.places:
                    continue
                i = net.places.index(layer)
                if i == 0:
                    full = rows.new_zeros(video_rows.numel(), rows.shape[1])
                    full[-target_rows.numel():] = rows
                    c = h.clone()
                    c[:, video_rows] = net.control_proj_in(full.to(net.control_proj_in.weight.dtype)).to(h.dtype)
                    streams[k] = net.before_proj(c) + h
                streams[k] = net.control_blocks[i](streams[k], *rest)
                skip = net.after_proj[i](streams[k])
                skip[:, sound_rows] = 0
                out = out + skip * strength
            return out
        return hook
    places = sorted({p for net, _, _ in controls for p in net.places})
    handles = [blocks[p].register_forward_hook(after(p)) for p in places]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def control_latent(pipe, frames, shape) -> torch.Tensor:
    """The control video's latent [C, T, h, w] for a video latent of `shape` (C, T, h, w): frame i of it for frame
    i of the video (its last held), cut to the canvas' shape at the middle and scaled bilinearly (ComfyUI's
    common_upscale "center"), encoded by the video VAE to its posterior's mean, normalised."""
    import numpy as np
    from nodes.generate.adapters.minimax_h3 import PIXEL_MEAN, PIXEL_STD, video_vae
    from nodes.video.edit import comfy_scaled
    vae = video_vae(pipe)
    _, t, h, w = shape
    ratio = int(vae.spatial_compression_ratio)
    count = max((t - 2) // 5, 0) * 17 + 5
    picked = frames[np.minimum(np.arange(count), len(frames) - 1)].astype(np.float32) / 255.0
    px = torch.from_numpy(comfy_scaled(picked, w * ratio, h * ratio, "bilinear", crop=True)).permute(3, 0, 1, 2)
    mean, std = (torch.tensor(s).view(3, 1, 1, 1) for s in (PIXEL_MEAN, PIXEL_STD))
    z = vae.encode(((px - mean) / std)[None].to(vae.device, vae.dtype)).latent_dist.mode().float().cpu()[0]
    if tuple(z.shape[1:]) != (t, h, w):
        raise NodeError(f"the control video encodes to {tuple(z.shape[1:])} latent frames x rows x columns; the video "
                        f"is {(t, h, w)}: give the Fun ControlNet the MiniMax H3 video VAE")
    lmean, lstd = (torch.tensor(s).view(-1, 1, 1, 1) for s in (vae.config.latents_mean, vae.config.latents_std))
    return (z - lmean) / lstd
