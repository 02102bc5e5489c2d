"""Alibaba PAI's Z-Image-Turbo-Fun-Controlnet-Union (canny, HED, depth, pose, MLSD in one net, told nothing of which), as
ComfyUI loads it with ModelPatchLoader from model_patches/ and applies it with QwenImageDiffsynthControlnet (or
ZImageFunControlnet): diffusers' ZImageControlNetModel, whose names the published file keeps. The net shares the Z-Image
transformer's embedders and refiners; it reads the control picture's latent (FLUX.1's VAE, normalised as the model's
latent is) in 2x2 patches and gives each of its layers' outputs, scaled by the strength, to the transformer layer it
steers: n control layers over L transformer layers steer layers 0, d, 2d, ... (d = round(L / n), ComfyUI's spacing:
every 5th of Z-Image Turbo's 30 for the union file's 6). The 2.x files (15 layers, 33 input channels) also steer the
picture's refiner; their extra channels (an inpainting mask and picture) are given zeros, as ZImageControlNetPipeline
gives them."""
from __future__ import annotations

import re

import torch

from graph_engine import NodeError
from nodes.generate.control import assembled

PROBE = "control_all_x_embedder.2-1.weight"


def count(state: dict, prefix: str) -> int:
    return len({m.group(1) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))})


def build(state: dict, transformer, name: str):
    """The ZImageControlNetModel in `state` (the file's tensors), sized from them, spaced over this transformer's layers
    and sharing its embedders; a net of another width than the transformer is named."""
    from diffusers import ZImageControlNetModel
    embed = state[PROBE]
    if "control_layers.0.attention.norm_q.weight" not in state:
        raise NodeError(f"{name} has a Z-Image Fun ControlNet's embedder but no control_layers.0: the file is damaged; "
                        "get it again from where it was published")
    dim, head = int(embed.shape[0]), int(state["control_layers.0.attention.norm_q.weight"].shape[0])
    theirs = int(transformer.config.dim)
    if dim != theirs:
        raise NodeError(f"{name} is a Z-Image ControlNet {dim} wide; this Z-Image transformer is {theirs} wide: apply "
                        "it to the Z-Image it was made for (Z-Image Turbo)")
    n, layers = count(state, "control_layers."), len(transformer.layers)
    step = max(1, round(layers / n))
    refiners = count(state, "control_noise_refiner.")
    # The union file refines the control tokens with plain blocks; the 2.x files steer the picture's refiner too: 2.1
    # with control blocks of its own, 2.0 (whose such blocks are all zero) with its control layers.
    after = state.get("control_noise_refiner.0.after_proj.weight")
    refiner = None
    if after is not None and bool(after.any()):
        refiner = "control_noise_refiner"
    elif after is not None or not refiners:
        refiner = "control_layers"
        state = {k: v for k, v in state.items() if not k.startswith("control_noise_refiner.")}
    cfg = dict(control_layers_places=[i * step for i in range(n)],
               control_refiner_layers_places=list(range(refiners or len(transformer.noise_refiner))),
               control_in_dim=int(embed.shape[1]) // 4, add_control_noise_refiner=refiner, dim=dim,
               n_refiner_layers=refiners or len(transformer.noise_refiner), n_heads=dim // head, n_kv_heads=dim // head,
               norm_eps=float(transformer.config.norm_eps), qk_norm=bool(transformer.config.qk_norm))
    net = assembled(ZImageControlNetModel, cfg, state, f"{name}, a Z-Image Fun ControlNet,")
    net = net.to(transformer.device, transformer.dtype)
    return ZImageControlNetModel.from_transformer(net, transformer).eval()


def block_samples(controls, x: list, timestep, captions: list, latents) -> dict:
    """The active nets' outputs per transformer layer, summed (stacked nets add up): x, timestep and captions as the
    transformer is given them; latents(control): its pictures' latents [rows, 16, h, w] for these rows."""
    out: dict = {}
    for c in controls:
        z = latents(c)
        extra = c.net.config.control_in_dim - z.shape[1]
        if extra > 0:
            z = torch.cat([z, z.new_zeros(z.shape[0], extra, *z.shape[2:])], 1)
        c.net.to(x[0].device)       # where the transformer, whose layers it shares, runs now
        r = c.net([v.to(c.net.dtype) for v in x], timestep, captions, [v[:, None].to(c.net.dtype) for v in z],
                  conditioning_scale=c.strength)
        for k, v in r.items():
            out[k] = v if k not in out else out[k] + v
    return out
