"""Stable Diffusion 3.5 Large ControlNets: Stability's sd3.5_large_controlnet_canny / _depth / _blur.safetensors (in
controlnet/, as ComfyUI keeps them; Stability's names, fused qkv) and their diffusers folders (SD3ControlNetModel, as
diffusers' convert_sd3_controlnet_to_diffusers writes them). Such a net is a stack of single-stream MMDiT blocks that
reads the transformer's own patch embedding of the latent plus its own of the control picture's latent (the picture
through SD3's VAE), told the timestep and the pooled text embedding but not the prompt's tokens; each block's output
is added to the transformer's blocks (output k to blocks k*m .. k*m + m - 1, m = blocks / outputs), as
StableDiffusion3ControlNetPipeline adds them.

Each file holds its kind (a `control_type` tensor: blur, canny, depth), which says how the picture goes into the VAE:
canny edges as Stability's reference and diffusers' SD3CannyImageProcessor give them (the picture in 0..1 times
127.5, plus 0.5, not mapped to -1..1), a depth map inverted as ComfyUI inverts it (the net reads near as dark; the
depth maps Kinograph and ComfyUI's preprocessors make are near-white), a blurred picture as it is. InstantX's SD3
(medium) ControlNets, which read the prompt's tokens and their own patch embedding, are named and refused."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from graph_engine import NodeError

KINDS = ("blur", "canny", "depth")      # the file's control_type, 0, 1 and 2, as ComfyUI reads it
INSTANTX = ("an InstantX SD3 ControlNet (SD3 medium's: it reads the prompt's tokens through its own patch embedding) "
            "is not supported yet; use Stability's SD 3.5 Large ControlNets (sd3.5_large_controlnet_canny / _depth / "
            "_blur.safetensors) on SD 3.5 Large")


def support(det) -> tuple:
    """(loads, what with or why not) for a detected SD3 ControlNet file (model_manager.will_load)."""
    if det.layout != "original":
        return False, INSTANTX if det.variant == "instantx" else (
            "an SD 3.5 ControlNet in diffusers' names loads from its diffusers folder (with its config.json)")
    return True, ("control.apply on an SD 3.5 Large model (Stability's layout; the file says whether it is a canny, "
                  "depth or blur net)")


def folder_support(path: Path) -> tuple:
    """support() for an SD3ControlNetModel folder: SD 3.5 Large's nets read the transformer's patch embedding (no
    pos_embed of their own), InstantX's SD3 ones do not."""
    cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if cfg.get("use_pos_embed", True):
        return False, INSTANTX
    return True, ("control.apply on an SD 3.5 Large model (a diffusers folder, which does not say its kind: set "
                  "control.apply's mode to canny or depth for those nets)")


def load(source: Path, transformer, dtype):
    """The SD3ControlNetModel in a Stability file or diffusers folder, checked to fit the transformer it steers; its
    kind (KINDS, "" where the folder says none) as net.kind."""
    from diffusers import SD3ControlNetModel
    from nodes.generate.control import check_file
    from nodes.generate.weights import load_weights
    if source.is_dir():
        ok, why = folder_support(source)
        if not ok:
            raise NodeError(f"{source.name}: {why}")
        net, kind = SD3ControlNetModel.from_pretrained(str(source), torch_dtype=dtype, local_files_only=True), ""
    else:
        check_file(source, "sd3", "an SD 3.5", support)
        state = load_weights(source)
        kind = file_kind(state.pop("control_type", None), source.name)
        net = _from_stability(state, transformer, source.name)
    width = lambda c: c.num_attention_heads * c.attention_head_dim  # noqa: E731
    if width(net.config) != width(transformer.config) or net.config.in_channels != transformer.config.in_channels:
        raise NodeError(f"{source.name} is an SD 3.5 ControlNet {width(net.config)} wide; this SD3 transformer is "
                        f"{width(transformer.config)} (SD 3.5 Large's is 2432, medium's 1536): apply it to the SD 3.5 "
                        "Large (or Large Turbo) it was made for")
    net.kind = kind
    return net.to(dtype)


def file_kind(value, name: str) -> str:
    """A file's control_type tensor as a name of KINDS ("" where there is none); a value that names none of them (an
    empty tensor failed in torch, one out of range was read as blur) is the file's error."""
    if value is None:
        return ""
    v = float(value.flatten()[0]) if value.numel() else float("nan")
    if not (v == v and 0 <= round(v) < len(KINDS)):
        raise NodeError(f"{name}'s control_type ({value.flatten()[:4].tolist()}) is none of 0 (blur), 1 (canny), "
                        "2 (depth): the file is damaged or of a kind Kinograph does not know")
    return KINDS[round(v)]


def _from_stability(state: dict, transformer, name: str):
    """Stability's names (attn.qkv, attn.proj, mlp.fc1 / fc2, adaLN_modulation.1) as diffusers' SD3ControlNetModel's,
    its shape read from the tensors; the head width, which no tensor shows, is the transformer's."""
    from accelerate import init_empty_weights
    from diffusers import SD3ControlNetModel
    blocks = len({k.split(".")[1] for k in state if k.startswith("transformer_blocks.")})
    rename = {"attn.proj": "attn.to_out.0", "mlp.fc1": "ff.net.0.proj", "mlp.fc2": "ff.net.2",
              "adaLN_modulation.1": "norm1.linear"}
    out = {}
    for key, value in state.items():
        if not key.startswith("transformer_blocks."):
            out[key] = value
            continue
        head, _, rest = key.partition(".")[2].partition(".")
        layer, kind = rest.rsplit(".", 1)
        if layer == "attn.qkv":
            for part, v in zip("qkv", value.chunk(3, dim=0)):
                out[f"transformer_blocks.{head}.attn.to_{part}.{kind}"] = v
        else:
            out[f"transformer_blocks.{head}.{rename.get(layer, layer)}.{kind}"] = value
    embed = out["pos_embed_input.proj.weight"]
    head_dim = int(transformer.config.attention_head_dim)
    cfg = dict(patch_size=int(embed.shape[2]), in_channels=int(embed.shape[1]), num_layers=blocks,
               attention_head_dim=head_dim, num_attention_heads=int(embed.shape[0]) // head_dim,
               joint_attention_dim=None, caption_projection_dim=int(embed.shape[0]),
               pooled_projection_dim=int(out["time_text_embed.text_embedder.linear_1.weight"].shape[1]),
               out_channels=int(embed.shape[1]), pos_embed_max_size=None, pos_embed_type=None, use_pos_embed=False,
               force_zeros_for_pooled_projection=False)
    with init_empty_weights():
        net = SD3ControlNetModel(**cfg)
    mine = net.state_dict()
    missing = [k for k in mine if k not in out]
    if missing:
        raise NodeError(f"{name} lacks tensors an SD 3.5 ControlNet has ({', '.join(missing[:3])}): the file is "
                        "damaged or of another kind")
    try:    # what diffusers' converter leaves out is left out here too
        net.load_state_dict({k: out[k] for k in mine}, strict=True, assign=True)
    except RuntimeError as e:
        raise NodeError(f"{name}'s tensors do not fit an SD 3.5 ControlNet's layout (another size of "
                        f"{str(e).split('size mismatch for ')[-1].split(':')[0]})") from None
    return net


def kind_for(mode: str, net, name: str) -> str:
    """The kind control.apply's mode names; auto: the file's own (a diffusers folder says none: a plain picture)."""
    if mode == "auto":
        return net.kind or "blur"
    if mode not in KINDS:
        raise NodeError(f"an SD 3.5 ControlNet reads a {', '.join(KINDS)} picture, not {mode!r}: set mode to auto (the "
                        f"file's own kind{', ' + net.kind if net.kind else ''}) or one of those")
    return mode


def prepare(kind: str):
    """pixels [-1, 1] -> what the VAE is given for a net of this kind (see the module docstring)."""
    if kind == "canny":
        return lambda px: (px + 1) * 63.75 + 0.5
    if kind == "depth":
        return lambda px: -px
    return lambda px: px


def residuals(controls, transformer, latent: torch.Tensor, blocks: int, **call) -> list:
    """Each active ControlNet's block outputs, scaled by its strength and spread over the transformer's `blocks` blocks
    as SD3Transformer2DModel spreads one net's, then summed (nets of different depths stack); None when none steers.
    latent: the transformer's input [N, C, h, w], read through its own patch embedding; call: timestep and
    pooled_projections. Each control carries its pictures' latents in c.frames."""
    if not controls:
        return None
    tokens = transformer.pos_embed(latent)
    out = [None] * blocks
    for c in controls:
        r = c.net(hidden_states=tokens.to(c.net.dtype), controlnet_cond=c.frames, conditioning_scale=c.strength,
                  return_dict=False, **call)[0]
        for i in range(blocks):
            add = r[int(i / (blocks / len(r)))]
            out[i] = add if out[i] is None else out[i] + add
    return out
