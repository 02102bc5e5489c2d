"""FLUX.1 ControlNets: InstantX's and Shakker-Labs' layout (diffusers' FluxControlNetModel): FLUX.1-dev-Controlnet-Canny,
-Union, FLUX.1-dev-ControlNet-Union-Pro and -2.0, jasperai's; and XLabs' (flux-canny/depth/hed-controlnet v1-v3) and
TheMisto's MistoLine in Black Forest Labs' block names. Such a net is a few FLUX.1 blocks reading the latent plus the
control picture, whose per-block outputs are added to the transformer's double and single blocks. InstantX's read the
picture's latent (its own VAE encoding, packed in 2x2 patches), and each output steers a run of neighbouring blocks; a
union net is also told which kind of picture it is given: one more text token (its mode embedding) ahead of the
prompt's. XLabs' and MistoLine's read the picture in pixels through their own small encoder (diffusers builds XLabs'
as a FluxControlNetModel with an input_hint_block), and their outputs take the blocks in turn, as ComfyUI spreads them."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from graph_engine import NodeError
from nodes.generate.control import UNION_MODES, assembled, check_file, from_file

# alimama's inpainting nets (FLUX.1-dev-Controlnet-Inpainting-Alpha / -Beta) read 2x2 patches of the masked picture's 16
# latent channels and the mask's 1: ComfyUI's concat_mask nets (control_latent_channels 17).
INPAINT_CHANNELS = 4 * 17
# The layouts that read the control picture in pixels, as `kinograph info` names them.
PIXEL_LAYOUTS = {"xlabs": "XLabs layout", "mistoline": "MistoLine layout"}


def support(det) -> tuple:
    """(loads, what with or why not) for a detected FLUX.1 ControlNet file (model_manager.will_load)."""
    layout = "xlabs" if det.variant == "xlabs" else det.layout
    if layout in PIXEL_LAYOUTS:
        return True, (f"control.apply on a FLUX.1 model ({PIXEL_LAYOUTS[layout]}: the picture read in pixels, "
                      "no VAE needed)")
    if det.variant == "instantx-inpaint" and det.extra.get("in_channels") != INPAINT_CHANNELS:
        return False, (f"a FLUX.1 ControlNet reading {det.extra.get('in_channels')} channels per patch, which none "
                       f"Kinograph knows does (InstantX's read 64, alimama's inpainting nets {INPAINT_CHANNELS})")
    if det.variant == "instantx-inpaint":
        return True, ("control.apply with a mask on a FLUX.1 model (alimama's inpainting ControlNet: the picture "
                      "outside the mask and the mask; ComfyUI's ControlNetInpaintingAliMamaApply)")
    union = f"; a union of {det.extra.get('modes')} modes: mode picks {', '.join(UNION_MODES)}" \
        if det.variant == "instantx-union" else ""
    return True, f"control.apply on a FLUX.1 model (InstantX / Shakker-Labs layout{union})"


def folder_variant(path: Path) -> str:
    """A FluxControlNetModel folder's variant as detection names a file's: instantx, instantx-union where its
    config.json gives mode rows, xlabs where it gives a pixel encoder (XLabs' flux-controlnet-canny-diffusers)."""
    import json
    cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if cfg.get("conditioning_embedding_channels"):
        return "xlabs"
    return "instantx-union" if cfg.get("num_mode") else "instantx"


def load(source: Path, transformer, dtype):
    """The FluxControlNetModel in a file or diffusers folder, checked to fit the transformer it steers. A file's config
    comes from its tensors' shapes; the rotary split, which no tensor shows, is the transformer's."""
    from diffusers import FluxControlNetModel
    if source.is_dir():
        net = FluxControlNetModel.from_pretrained(str(source), torch_dtype=dtype, local_files_only=True)
    else:
        check_file(source, "flux", "a FLUX.1", support)
        net = from_file(source, lambda state: _from_state(state, transformer, source.name), "a FLUX.1 ControlNet")
    _check_fits(source.name, net, transformer)
    return net.to(dtype)


def reads_pixels(net) -> bool:
    """XLabs' and MistoLine's nets read the control picture in pixels (through their input_hint_block)."""
    return getattr(net, "input_hint_block", None) is not None


def _from_state(state: dict, transformer, name: str):
    from diffusers import FluxControlNetModel
    if "double_blocks.0.img_attn.qkv.weight" in state:
        mistoline = "controlnet_blocks.0.linear.weight" in state
        state = _pixel_net_to_diffusers(state, mistoline)
        extra = dict(conditioning_embedding_channels=16, patch_size=2)
        build = (lambda **cfg: _as_mistoline(FluxControlNetModel(**cfg))) if mistoline else FluxControlNetModel
    elif state["controlnet_x_embedder.weight"].shape[1] != state["x_embedder.weight"].shape[1]:
        extra, cond = {}, int(state["controlnet_x_embedder.weight"].shape[1])
        build = lambda **cfg: _reading(FluxControlNetModel(**cfg), cond)  # noqa: E731
    else:
        extra, build = {}, FluxControlNetModel
    x, head = state["x_embedder.weight"], state["transformer_blocks.0.attn.norm_q.weight"].shape[0]
    count = lambda p: len({k.split(".")[1] for k in state if k.startswith(p)})  # noqa: E731
    modes = state.get("controlnet_mode_embedder.weight")
    cfg = dict(in_channels=int(x.shape[1]), num_layers=count("transformer_blocks."),
               num_single_layers=count("single_transformer_blocks."), attention_head_dim=int(head),
               num_attention_heads=int(x.shape[0]) // int(head),
               joint_attention_dim=int(state["context_embedder.weight"].shape[1]),
               pooled_projection_dim=int(state["time_text_embed.text_embedder.linear_1.weight"].shape[1]),
               guidance_embeds="time_text_embed.guidance_embedder.linear_1.weight" in state,
               axes_dims_rope=list(transformer.config.axes_dims_rope),
               num_mode=None if modes is None else int(modes.shape[0]), **extra)
    return assembled(build, cfg, state, f"{name}, a FLUX.1 ControlNet")


def _pixel_net_to_diffusers(state: dict, mistoline: bool) -> dict:
    """XLabs' or MistoLine's tensors in diffusers' FluxControlNetModel names: the blocks and embedders through the FLUX.1
    transformer's converter, pos_embed_input as controlnet_x_embedder, XLabs' eight-conv input_hint_block as diffusers'
    ControlNetConditioningEmbedding (conv_in, six blocks, conv_out), MistoLine's input_cond_block.encoder and
    (single_)controlnet_blocks.N.linear kept in place for _as_mistoline's modules. The converter wants single blocks
    and a final layer, which an XLabs net lacks: empty stand-ins go in and their outputs are dropped."""
    import re

    from nodes.generate.converters.flux import transformer_to_diffusers
    blocks = ("img_in.", "txt_in.", "time_in.", "vector_in.", "guidance_in.", "double_blocks.", "single_blocks.")
    given = {k: v for k, v in state.items() if k.startswith(blocks)}
    stand_in = not any(k.startswith("single_blocks.") for k in given)
    if stand_in:
        width = int(state["img_in.weight"].shape[0])
        given.update({f"single_blocks.0.{n}": torch.zeros(1) for n in (
            "modulation.lin.weight", "modulation.lin.bias", "linear2.weight", "linear2.bias",
            "norm.query_norm.scale", "norm.key_norm.scale")})
        given.update({"single_blocks.0.linear1.weight": torch.empty(3 * width, 0),
                      "single_blocks.0.linear1.bias": torch.zeros(1).expand(3 * width)})
    if "final_layer.linear.weight" not in given:
        given.update({f"final_layer.{n}": torch.zeros(2) for n in (
            "linear.weight", "linear.bias", "adaLN_modulation.1.weight", "adaLN_modulation.1.bias")})
    out = {k: v for k, v in transformer_to_diffusers(given).items()
           if not k.startswith(("proj_out.", "norm_out.")) and not (stand_in and k.startswith("single_transformer_"))}
    hint = {0: "conv_in", 14: "conv_out", **{2 * i + 2: f"blocks.{i}" for i in range(6)}}
    for k, v in state.items():
        if k.startswith(blocks):
            continue
        m = re.match(r"input_hint_block\.(\d+)\.(weight|bias)$", k)
        if m and int(m.group(1)) in hint and not mistoline:
            k = f"input_hint_block.{hint[int(m.group(1))]}.{m.group(2)}"
        k = re.sub(r"^input_cond_block\.encoder\.", "input_hint_block.", k)
        k = re.sub(r"^single_controlnet_blocks\.", "controlnet_single_blocks.", k)
        k = re.sub(r"^(controlnet_(?:single_)?blocks\.\d+)\.linear\.", r"\1.0.", k)
        out[k.replace("pos_embed_input.", "controlnet_x_embedder.")] = v
    return out


def _reading(net, channels: int):
    """A FluxControlNetModel whose control input reads `channels` per patch (alimama's: the latent's 64 and the mask's
    4), where diffusers' class reads as many as the latent has."""
    from torch import nn
    net.controlnet_x_embedder = nn.Linear(channels, net.config.num_attention_heads * net.config.attention_head_dim)
    return net


def reads_mask(net) -> bool:
    """alimama's inpainting nets read the mask beside the masked picture's latent."""
    return not reads_pixels(net) and net.controlnet_x_embedder.in_features == INPAINT_CHANNELS


def masked(net, frames, mask, name: str):
    """(control frames, keep) for control.apply: for an inpainting net (reads_mask) the frames with the masked pixels
    black and 1 - mask per frame, as ComfyUI's ControlNetInpaintingAliMamaApply gives them (the pixels multiplied by
    the inverted mask rounded to 0 / 1; the inverted mask itself read by the net); others take no mask."""
    import numpy as np
    from nodes.common import masks
    inpaints = getattr(net, "controlnet_x_embedder", None) is not None and reads_mask(net)
    if mask is None and not inpaints:
        return frames, None
    if mask is None:
        raise NodeError(f"{name} is alimama's FLUX.1 inpainting ControlNet, which redraws a region: connect the mask "
                        "of it to control.apply's mask (ComfyUI's ControlNetInpaintingAliMamaApply)")
    if not inpaints:
        raise NodeError(f"{name} is not an inpainting ControlNet and reads no mask: disconnect control.apply's mask "
                        "(alimama's FLUX.1-dev-Controlnet-Inpainting-Alpha / -Beta take one)")
    n, h, w = frames.shape[:3]
    keep = 1.0 - masks.frames_of(mask, 0, n, (w, h))
    return (frames * np.round(keep)[..., None]).astype(np.uint8), keep.astype(np.float32)


def _as_mistoline(net):
    """A FluxControlNetModel made MistoLine's (ComfyUI's MistolineCondDownsamplBlock and MistolineControlnetBlock): a
    ten-conv picture encoder, 1x1 convs second and ninth, and each output block a linear layer then SiLU."""
    from torch import nn
    convs = [(3, 3, 1), (16, 1, 1), (16, 3, 1), (16, 3, 2), (16, 3, 1), (16, 3, 2), (16, 3, 1), (16, 3, 2), (16, 1, 1),
             (16, 3, 1)]
    layers = []
    for i, (cin, k, stride) in enumerate(convs):
        layers += [nn.Conv2d(cin, 16, k, padding=k // 2, stride=stride)] + ([nn.SiLU()] if i < len(convs) - 1 else [])
    net.input_hint_block = nn.Sequential(*layers)
    width = net.config.num_attention_heads * net.config.attention_head_dim
    for name in ("controlnet_blocks", "controlnet_single_blocks"):
        setattr(net, name, nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.SiLU())
                                         for _ in getattr(net, name)))
    return net


def _check_fits(name: str, net, transformer) -> None:
    """Its outputs are added to the transformer's hidden states, and it reads the same latent and text."""
    mine, theirs = net.config, transformer.config
    width = lambda c: c.num_attention_heads * c.attention_head_dim  # noqa: E731
    if (width(mine), mine.joint_attention_dim, mine.in_channels) != (
            width(theirs), theirs.joint_attention_dim, int(theirs.in_channels)):
        raise NodeError(f"{name} is a ControlNet {width(mine)} wide over {mine.in_channels}-channel latents; this "
                        f"FLUX.1 transformer is {width(theirs)} wide over {theirs.in_channels} (a FLUX.1 Fill, Depth "
                        "or Canny model, or another base model): apply it to the FLUX.1 dev it was made for")


def mode_index(mode: str, net, name: str) -> int:
    """The union row `mode` names, -1 for auto (a union net then reads no mode token, as ComfyUI runs it without
    SetUnionControlNetType)."""
    union = getattr(net, "union", False)
    if mode == "auto":
        return -1
    if not union:
        raise NodeError(f"{name} is not a union ControlNet (it has one control type): set mode to auto")
    if mode not in UNION_MODES:
        raise NodeError(f"unknown union mode {mode!r} for {name}; choose auto or one of {', '.join(UNION_MODES)}")
    return UNION_MODES.index(mode)


def control_tokens(c, pixel_frames, h: int, w: int, encode, scale: int) -> torch.Tensor:
    """The control pictures of these frames as the net reads them: their latents (control.control_latents) packed
    [frames, h/2 * w/2, 4C]; for XLabs' and MistoLine's nets the pictures themselves at the generation's size in
    [-1, 1] (ComfyUI's hint * 2 - 1, diffusers' prepare_image) [frames, 3, h * scale, w * scale]."""
    from nodes.generate.adapters.flux import pack
    from nodes.generate.control import control_images, control_latents
    import torch.nn.functional as F
    if reads_pixels(c.net):
        px = control_images(c.frames, pixel_frames)
        if tuple(px.shape[2:]) != (h * scale, w * scale):
            px = F.interpolate(px, size=(h * scale, w * scale), mode="bilinear", align_corners=False)
        return px * 2 - 1
    latents = control_latents(c, pixel_frames, h, w, encode, scale)
    if c.keep is not None:          # the kept region at the latent's size, nearest-exact as ComfyUI scales it
        import numpy as np
        keep = torch.from_numpy(c.keep[np.clip(np.asarray(pixel_frames), 0, len(c.keep) - 1)])[:, None]
        latents = torch.cat([latents, F.interpolate(keep, size=(h, w), mode="nearest-exact").to(latents)], dim=1)
    return pack(latents)


def residuals(controls, blocks: int, singles: int, guidance: torch.Tensor, **call) -> dict:
    """Each active ControlNet's block outputs, scaled by its strength and spread over the transformer's `blocks` double
    and `singles` single blocks as ComfyUI spreads them (InstantX's: output k steers blocks k*m .. k*m + m - 1,
    m = ceil(blocks / outputs), as FluxTransformer2DModel; XLabs' and MistoLine's take the blocks in turn, block i
    steered by output i mod outputs, as x-flux trained them), then summed: nets of different depths stack. `guidance` goes to a net
    with a guidance embedder (FluxControlNetPipeline's guidance_scale); call: the transformer's own inputs
    (hidden_states, timestep, pooled_projections, encoder_hidden_states, txt_ids, img_ids). Each control carries its
    packed pictures in c.frames."""
    double, single = [None] * blocks, [None] * singles
    for c in controls:
        net, n = c.net, call["hidden_states"].shape[0]
        mode = torch.full((n, 1), c.mode, dtype=torch.long, device=c.frames.device) if c.mode >= 0 else None
        union, net.union = net.union, mode is not None     # a union net told no mode reads no mode token (auto)
        try:
            d, s = net(**call, guidance=guidance if net.config.guidance_embeds else None, controlnet_cond=c.frames,
                       controlnet_mode=mode, conditioning_scale=c.strength, return_dict=False)
        finally:
            net.union = union
        turns = reads_pixels(net)
        for mine, theirs in ((double, d), (single, s)):
            for i in range(len(mine) if theirs else 0):
                r = theirs[i % len(theirs)] if turns else theirs[i // math.ceil(len(mine) / len(theirs))]
                mine[i] = r if mine[i] is None else mine[i] + r
    return {"controlnet_block_samples": double if double and double[0] is not None else None,
            "controlnet_single_block_samples": single if single and single[0] is not None else None}
