"""InstantX's Qwen-Image ControlNets (Qwen-Image-ControlNet-Union: canny, soft edge, depth, pose in one net, told
nothing of which): diffusers' QwenImageControlNetModel, as the single diffusion_pytorch_model.safetensors (in
controlnet/, any name; diffusers' names, which ComfyUI's repackaged file keeps) or the diffusers folder. Such a net is
a few Qwen-Image blocks reading the latent's 2x2-patch tokens plus the control picture's (through Qwen-Image's VAE,
normalised and packed the same way) and the prompt; its block outputs are added to the transformer's blocks (output
k to blocks k*m .. k*m + m - 1, m = ceil(blocks / outputs)), as QwenImageTransformer2DModel adds them. The net reads
each conditioning's own prompt, as ComfyUI runs a ControlNet on both prompts; QwenImageControlNetPipeline runs it on
the positive prompt alone and adds that to the negative pass too, so under true CFG the two differ. InstantX's
inpainting net (the control picture with a mask, more input channels) is named and refused."""
from __future__ import annotations

import math
from pathlib import Path

import torch.nn.functional as F

from graph_engine import NodeError
from nodes.generate.control import assembled, check_file, from_file

INPAINT = ("an InstantX Qwen-Image inpainting ControlNet ({} input channels: the picture with a mask) is not "
           "supported yet; use Qwen-Image-ControlNet-Union (canny, soft edge, depth, pose)")


def support(det) -> tuple:
    """(loads, what with or why not) for a detected Qwen-Image ControlNet file (model_manager.will_load)."""
    channels = det.extra.get("in_channels", 64)
    if channels != 64:
        return False, INPAINT.format(channels)
    return True, "control.apply on a Qwen-Image model (InstantX's layout; a union net is told no mode)"


def load(source: Path, transformer, dtype):
    """The QwenImageControlNetModel in a file or diffusers folder, checked to fit the transformer it steers. A file's
    config comes from its tensors' shapes; the rotary split, which no tensor shows, is the transformer's."""
    from diffusers import QwenImageControlNetModel
    if source.is_dir():
        net = QwenImageControlNetModel.from_pretrained(str(source), torch_dtype=dtype, local_files_only=True)
        if net.config.extra_condition_channels:
            raise NodeError(f"{source.name}: " + INPAINT.format(net.config.in_channels +
                                                                net.config.extra_condition_channels))
    else:
        check_file(source, "qwenimage", "a Qwen-Image", support)
        net = from_file(source, lambda state: _from_state(state, transformer, source.name), "a Qwen-Image ControlNet")
    mine, theirs = net.config, transformer.config
    width = lambda c: c.num_attention_heads * c.attention_head_dim  # noqa: E731
    if (width(mine), mine.joint_attention_dim, mine.in_channels) != (
            width(theirs), theirs.joint_attention_dim, theirs.in_channels):
        raise NodeError(f"{source.name} is a ControlNet {width(mine)} wide over {mine.in_channels}-channel tokens; this "
                        f"Qwen-Image transformer is {width(theirs)} wide over {theirs.in_channels}: apply it to the "
                        "Qwen-Image it was made for")
    return net.to(dtype)


def _from_state(state: dict, transformer, name: str):
    from diffusers import QwenImageControlNetModel
    x, head = state["img_in.weight"], state["transformer_blocks.0.attn.norm_q.weight"].shape[0]
    cfg = dict(in_channels=int(x.shape[1]), out_channels=transformer.config.out_channels,
               num_layers=len({k.split(".")[1] for k in state if k.startswith("transformer_blocks.")}),
               attention_head_dim=int(head), num_attention_heads=int(x.shape[0]) // int(head),
               joint_attention_dim=int(state["txt_in.weight"].shape[1]),
               axes_dims_rope=tuple(transformer.config.axes_dims_rope))
    return assembled(QwenImageControlNetModel, cfg, state, f"{name}, a Qwen-Image ControlNet,")


def residuals(controls, blocks: int, own: int, tokens: int, **call) -> list:
    """Each active ControlNet's block outputs, scaled by its strength, spread over the transformer's `blocks` blocks
    and summed (nets of different depths stack); zeros past the latent's `own` tokens up to `tokens` (Qwen-Image-Edit's
    pictures, which no ControlNet steers); None when none steers. call: the net's inputs but the control picture
    (hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_mask, img_shapes); each control carries
    its packed pictures in c.frames."""
    if not controls:
        return None
    out = [None] * blocks
    for c in controls:
        r = c.net(controlnet_cond=c.frames, conditioning_scale=c.strength, return_dict=False, **call)
        m = math.ceil(blocks / len(r))
        for i in range(blocks):
            out[i] = r[i // m] if out[i] is None else out[i] + r[i // m]
    return [F.pad(r, (0, 0, 0, tokens - own)) for r in out] if tokens > own else out
