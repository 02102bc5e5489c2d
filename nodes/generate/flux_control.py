"""FLUX.1 ControlNets in InstantX's and Shakker-Labs' layout (diffusers' FluxControlNetModel): FLUX.1-dev-Controlnet-Canny,
-Union, FLUX.1-dev-ControlNet-Union-Pro and -2.0. Such a net is a few FLUX.1 blocks reading the latent plus the control
picture's latent (its own VAE encoding, packed in 2x2 patches), whose per-block outputs are added to the transformer's
double and single blocks. A union net is also told which kind of picture it is given: one more text token (its mode
embedding) ahead of the prompt's. XLabs' and MistoLine's layouts read the picture in pixels through their own
encoder and are named and refused."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from graph_engine import NodeError
from nodes.generate.control import UNION_MODES, assembled, check_file, from_file

INSTEAD = ("use an InstantX or Shakker-Labs FLUX.1 ControlNet (FLUX.1-dev-Controlnet-Canny, "
           "FLUX.1-dev-ControlNet-Union-Pro), or the FLUX.1 Canny / Depth models with condition.control_image")


def support(det) -> tuple:
    """(loads, what with or why not) for a detected FLUX.1 ControlNet file (model_manager.will_load)."""
    if det.layout == "xlabs":
        return False, ("an XLabs FLUX.1 ControlNet (flux-canny/depth/hed-controlnet-v3: Black Forest Labs' names, the "
                       f"picture read in pixels by its own encoder) is not supported yet; {INSTEAD}")
    if det.layout == "mistoline":
        return False, f"a MistoLine FLUX.1 ControlNet is not supported yet; {INSTEAD}"
    if det.variant == "instantx-inpaint":
        return False, (f"a FLUX.1 inpainting ControlNet ({det.extra.get('in_channels')} input channels: the latent "
                       "with a mask, alimama's) is not supported yet; inpaint with FLUX.1 Fill and condition.inpaint")
    union = f"; a union of {det.extra.get('modes')} modes: mode picks {', '.join(UNION_MODES)}" \
        if det.variant == "instantx-union" else ""
    return True, f"control.apply on a FLUX.1 model (InstantX / Shakker-Labs layout{union})"


def folder_variant(path: Path) -> str:
    """A FluxControlNetModel folder's variant as detection names a file's: instantx, or instantx-union where its
    config.json gives mode rows."""
    import json
    cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    return "instantx-union" if cfg.get("num_mode") else "instantx"


def load(source: Path, transformer, dtype):
    """The FluxControlNetModel in a file or diffusers folder, checked to fit the transformer it steers. A file's config
    comes from its tensors' shapes; the rotary split, which no tensor shows, is the transformer's."""
    from diffusers import FluxControlNetModel
    if source.is_dir():
        net = FluxControlNetModel.from_pretrained(str(source), torch_dtype=dtype, local_files_only=True)
    else:
        check_file(source, "flux", "a FLUX.1", support)
        net = from_file(source, lambda state: _from_state(state, transformer), "a FLUX.1 ControlNet")
    _check_fits(source.name, net, transformer)
    return net.to(dtype)


def _from_state(state: dict, transformer):
    from diffusers import FluxControlNetModel
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
               num_mode=None if modes is None else int(modes.shape[0]))
    return assembled(FluxControlNetModel, cfg, state, "this FLUX.1 ControlNet")


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
        raise NodeError(f"unknown union mode {mode!r}; choose auto or one of {', '.join(UNION_MODES)}")
    return UNION_MODES.index(mode)


def control_tokens(c, pixel_frames, h: int, w: int, encode, scale: int) -> torch.Tensor:
    """The control pictures of these frames as the net reads them (control.control_latents), packed
    [frames, h/2 * w/2, 4C]."""
    from nodes.generate.adapters.flux import pack
    from nodes.generate.control import control_latents
    return pack(control_latents(c, pixel_frames, h, w, encode, scale))


def residuals(controls, blocks: int, singles: int, guidance: torch.Tensor, **call) -> dict:
    """Each active ControlNet's block outputs, scaled by its strength and spread over the transformer's `blocks` double
    and `singles` single blocks as FluxTransformer2DModel spreads one net's (output k steers blocks k*m .. k*m + m - 1,
    m = ceil(blocks / outputs)), then summed: nets of different depths stack, as in ComfyUI. `guidance` goes to a net
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
        for mine, theirs in ((double, d), (single, s)):
            for i in range(len(mine) if theirs else 0):
                r = theirs[i // math.ceil(len(mine) / len(theirs))]
                mine[i] = r if mine[i] is None else mine[i] + r
    return {"controlnet_block_samples": double if double and double[0] is not None else None,
            "controlnet_single_block_samples": single if single and single[0] is not None else None}
