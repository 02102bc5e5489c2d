"""The two SDXL ControlNet kinds that are not a plain ControlNet: xinsir's ControlNet++ union and Stability's
Control-LoRAs.

A union net (controlnet-union-sdxl-1.0, its promax file) is one ControlNet for many kinds of picture: a task row
(control.SDXL_UNION_MODES) tells it which, through a small transformer over the picture's and the latent's features
(diffusers' ControlNetUnionModel, as xinsir trained it). Told none (ComfyUI without SetUnionControlNetType), it reads
the picture as a plain ControlNet does.

A Control-LoRA (control-lora-canny/depth/recolor/sketch-rank128/256) stores a ControlNet as the SDXL UNet's encoder
plus low-rank deltas: for each weight of two or more dimensions `NAME.up` [out, rank(, 1, 1)] and `NAME.down`
[rank, in(, kh, kw)], the ControlNet's weight being the UNet's + up @ down; everything else (norms, biases, the hint
block, the zero convolutions) whole, in the original (LDM) names, beside an empty `lora_controlnet` tensor."""
from __future__ import annotations

import torch

from graph_engine import NodeError
from nodes.generate.control import SDXL_UNION_MODES, UNION_MODES


def union_config(state: dict) -> dict:
    """What a union file's tensors say of its ControlNetUnionModel config beyond its UNet's (its head count is in no
    tensor: xinsir's nets have 8)."""
    rows, width = state["task_embedding"].shape
    layers = {k.split(".")[1] for k in state if k.startswith("transformer_layes.")}
    return {"num_control_type": int(rows), "num_trans_channel": int(width), "num_trans_layer": len(layers),
            "num_proj_channel": int(state["spatial_ch_projs.weight"].shape[0]), "num_trans_head": 8,
            "addition_time_embed_dim": int(state["control_add_embedding.linear_1.weight"].shape[1]) // int(rows)}


class UnionControlNet(torch.nn.Module):
    """A ControlNetUnionModel called as a plain ControlNet is (adapters.sd.control_residuals), plus its task row."""
    union = True

    def __init__(self, net):
        super().__init__()
        self.net = net

    @property
    def config(self):
        return self.net.config

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_scale=1.0, mode=-1,
                added_cond_kwargs=None, return_dict=False):
        net = self.net
        control_type = torch.zeros(sample.shape[0], net.config.num_control_type, device=sample.device,
                                   dtype=sample.dtype)
        kw = dict(encoder_hidden_states=encoder_hidden_states, added_cond_kwargs=added_cond_kwargs,
                  conditioning_scale=[float(conditioning_scale)], from_multi=True, return_dict=False)
        if mode >= 0:
            control_type[:, mode] = 1
            return net(sample, timestep, controlnet_cond=[controlnet_cond], control_type=control_type,
                       control_type_idx=[mode], **kw)
        # Told no row, the picture's embedding is added to the latent's first convolution as in a plain ControlNet,
        # past the condition transformer (ComfyUI's cldm with an empty control_type); the task embedding still reads
        # the all-zero type.
        hook = net.conv_in.register_forward_hook(lambda m, i, out: out + net.controlnet_cond_embedding(controlnet_cond))
        try:
            return net(sample, timestep, controlnet_cond=[], control_type=control_type, control_type_idx=[], **kw)
        finally:
            hook.remove()


def union_mode(mode: str, net, name: str) -> int:
    """The task row `mode` names on an SDXL union net, -1 for auto."""
    if mode == "auto":
        return -1
    if mode not in SDXL_UNION_MODES:
        hint = " (a FLUX.1 union's mode)" if mode in UNION_MODES else ""
        raise NodeError(f"{name} is an SDXL ControlNet++ union, which has no mode {mode!r}{hint}: choose auto or one "
                        f"of {', '.join(SDXL_UNION_MODES)} (canny also for lineart and mlsd, scribble for hed, pidi "
                        "and ted soft edges)")
    row, rows = SDXL_UNION_MODES.index(mode), int(net.config.num_control_type)
    if row >= rows:
        raise NodeError(f"{name} has {rows} task rows ({', '.join(SDXL_UNION_MODES[:rows])}); {mode} is row {row}, "
                        "which only the promax file has (diffusion_pytorch_model_promax.safetensors in "
                        "xinsir/controlnet-union-sdxl-1.0)")
    return row


_LABEL_EMB = {"label_emb.0.0.": "add_embedding.linear_1.", "label_emb.0.2.": "add_embedding.linear_2."}


def size_embedding(ldm_names) -> dict:
    """{diffusers name: LDM name} of an SDXL ControlNet's size embedding (label_emb, under control_model. or not),
    which diffusers' controlnet converter leaves out: without it an SDXL ControlNet in the original layout missed
    add_embedding and was refused as "for another base model"."""
    out = {}
    for n in ldm_names:
        bare = n[len("control_model."):] if n.startswith("control_model.") else n
        for old, new in _LABEL_EMB.items():
            if bare.startswith(old):
                out[new + bare[len(old):]] = n
    return out


def _diffusers_names(ldm_names, config) -> dict:
    """{diffusers name: LDM name} for a ControlNet's LDM names, by diffusers' own converter run over the names."""
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
    names = {n: n for n in ldm_names}
    out = {k: v for k, v in convert_controlnet_checkpoint(names, config).items() if v is not None}
    return {**out, **size_embedding(ldm_names)}


def _unet_weights(unet) -> dict:
    """The UNet's own weights by name, a LoRA that sampling loaded into it (PEFT's base_layer / lora_A / lora_B)
    left out: a Control-LoRA is made against the base model."""
    return {k.replace(".base_layer.", "."): v for k, v in unet.state_dict().items()
            if ".lora_A." not in k and ".lora_B." not in k and "lora_magnitude" not in k}


def control_lora(name: str, state: dict, unet, dtype):
    """A ControlNetModel made from a Control-LoRA file and the SDXL UNet it is applied to."""
    from accelerate import init_empty_weights
    from diffusers import ControlNetModel
    from nodes.generate.model_manager import controlnet_config
    full = {k: v for k, v in state.items() if k != "lora_controlnet" and not k.endswith((".up", ".down"))}
    lowrank = {k[:-len(".up")] for k in state if k.endswith(".up")}
    unpaired = sorted(n + ".down" for n in lowrank if n + ".down" not in state) + sorted(
        k for k in state if k.endswith(".down") and k[:-len(".down")] not in lowrank)
    if unpaired:
        raise NodeError(f"{name} is a damaged Control-LoRA: {', '.join(unpaired[:3])} has no partner (each low-rank "
                        "weight is an .up and a .down)")
    cfg = controlnet_config(ControlNetModel, full, "original", unet)
    with init_empty_weights():
        net = ControlNetModel.from_config(cfg)
    ldm = _diffusers_names(list(full) + [n + ".weight" for n in lowrank], net.config)
    base = _unet_weights(unet)
    out, used = {}, set()
    for key, ldm_name in ldm.items():
        stem = ldm_name[:-len(".weight")]
        if stem in lowrank:
            if key not in base:
                raise NodeError(f"{name} changes {ldm_name}, which this SDXL model has no weight for: it is a "
                                "Control-LoRA for another base model")
            w = base[key].float()
            up, down = state[stem + ".up"].float().flatten(1), state[stem + ".down"].float().flatten(1)
            # checked before multiplying: sizes that do not meet failed in torch, and a pair of 1e5 x 1 and 1 x 1e5
            # would have been a 40 GB delta before its size was seen to be wrong
            if up.shape[1] != down.shape[0] or up.shape[0] * down.shape[1] != w.numel():
                raise NodeError(f"{name}: {stem}'s low-rank delta ({tuple(state[stem + '.up'].shape)} x "
                                f"{tuple(state[stem + '.down'].shape)}) does not fit this model's {tuple(w.shape)} "
                                "weight: it is damaged, or a Control-LoRA for another base model")
            out[key] = w + (up @ down).reshape(w.shape)
        else:
            out[key] = full[ldm_name]
        used.add(ldm_name)
    # As ComfyUI builds it: the UNet's weights first, the file's set over them (Stability's files set them all).
    for key in net.state_dict():
        if key not in out and key in base:
            out[key] = base[key]
    left = sorted(set(full) - used)
    missing = sorted(k for k in net.state_dict() if k not in out)
    if left or missing:
        raise NodeError(f"{name} does not fit an SDXL Control-LoRA's layout (unknown {left[:3]}, missing "
                        f"{missing[:3]})")
    net.load_state_dict({k: v.to(dtype) for k, v in out.items()}, assign=True)
    return net.to(dtype)
