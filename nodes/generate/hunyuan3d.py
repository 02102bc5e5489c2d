"""Hunyuan3D 2.0 / 2.1 shape generation around its models (hunyuan3d_model.py, hunyuan3d_vae.py): reading ComfyUI's
single-file checkpoint into its parts, the image conditioning (DINOv2's tokens of one picture, or of up to four views
each marked with its view's position), the empty shape latent, and decoding a latent to a VOXEL grid.

A checkpoint holds the transformer under "model.", the ShapeVAE under "vae." and DINOv2 (giant for 2.0, large for 2.1)
under "conditioner.main_image_encoder.model.", in transformers' Dinov2Model names."""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Optional

import torch
from diffusers import DiffusionPipeline

from graph_engine import NodeError
from nodes.generate.latent import Conditioning, Latent

DIT, VAE, DINO = "model.", "vae.", "conditioner.main_image_encoder.model."
CHANNELS = 64
VIEWS = ("front", "left", "back", "right")          # Hunyuan3D-2mv's view order: each view's position embedding
# ComfyUI's latent formats (comfy/latent_formats.py Hunyuan3Dv2, Hunyuan3Dv2mini, Hunyuan3Dv2_1): the ShapeVAE's
# scale, by the transformer it was trained with; the 0.6B mini is the 2.0 transformer 8 double blocks deep
SCALE = {"2.0": 0.9990943042622529, "2.0-mini": 1.0188137142395404, "2.1": 1.0039506158752403}
MINI_DEPTH = 8
GUIDANCE = 5.0                                      # what ComfyUI tells a 2.0 model without FluxGuidance
DINO_MEAN, DINO_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Hunyuan3DParts(DiffusionPipeline):
    """The loaded parts of a Hunyuan3D checkpoint (diffusers has no pipeline for it), any of them None."""

    def __init__(self, transformer=None, vae=None, image_encoder=None):
        super().__init__()
        self.register_modules(transformer=transformer, vae=vae, image_encoder=image_encoder)


def variant(state_keys, depth: int) -> str:
    """2.1, 2.0-mini or 2.0 from the transformer's tensor names (prefix removed) and its double-block depth."""
    if any(k.startswith("x_embedder.") for k in state_keys):
        return "2.1"
    return "2.0-mini" if depth == MINI_DEPTH else "2.0"


def _part(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# The checkpoint's DINOv2 names (transformers 4's, which ComfyUI's comfy/image_encoders/dino2.py reads) to
# transformers 5's; SwiGLU's fused weights_in splits into gate_proj (first half) and up_proj
DINO_NAMES = ((".attention.attention.query.", ".attention.q_proj."), (".attention.attention.key.", ".attention.k_proj."),
              (".attention.attention.value.", ".attention.v_proj."), (".attention.output.dense.", ".attention.o_proj."),
              (".mlp.weights_out.", ".mlp.down_proj."))


def dino_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The checkpoint's DINOv2 tensors in transformers 5's Dinov2Model names."""
    out = {}
    for k, v in state.items():
        if ".mlp.weights_in." in k:
            gate, up = v.chunk(2, 0)
            out[k.replace(".weights_in.", ".gate_proj.")], out[k.replace(".weights_in.", ".up_proj.")] = gate, up
            continue
        for old, new in DINO_NAMES:
            k = k.replace(old, new)
        out[k] = v
    return out


def build_dino(state: Dict[str, torch.Tensor], load: bool = True):
    """transformers' Dinov2Model for the checkpoint's conditioner tensors: widths, depth, patch and picture size from
    them; 64-wide heads (DINOv2 giant's 24 and large's 16); SwiGLU where the tensors have it (giant). Without `load`
    the bare network, counted on the meta device before it is made."""
    from transformers import Dinov2Config, Dinov2Model
    hidden = state["embeddings.cls_token"].shape[-1]
    patch = state["embeddings.patch_embeddings.projection.weight"].shape[-1]
    side = math.isqrt(state["embeddings.position_embeddings"].shape[1] - 1) * patch
    swiglu = "encoder.layer.0.mlp.weights_in.weight" in state
    layers = 0
    while f"encoder.layer.{layers}.norm1.weight" in state:
        layers += 1
    ratio = 4 if swiglu else state["encoder.layer.0.mlp.fc1.weight"].shape[0] // hidden
    cfg = Dinov2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                       mlp_ratio=ratio, image_size=side, patch_size=patch, use_swiglu_ffn=swiglu, layerscale_value=1.0,
                       layer_norm_eps=1e-6, qkv_bias=True)
    model = Dinov2Model(cfg)
    if not load:
        return model
    missing, _ = model.load_state_dict(dino_state(state), strict=False)
    missing = [k for k in missing if "mask_token" not in k]        # training's masked patches: never read here
    if missing:
        raise NodeError(f"the checkpoint's DINOv2 tensors do not fit DINOv2: missing {sorted(missing)[:4]}")
    return model.eval()


def _not_a_checkpoint(name: str, state: Dict[str, torch.Tensor]) -> str:
    """Why a file without model.* tensors is no Hunyuan3D checkpoint: what it holds, what is missing, where the
    checkpoint goes. A transformer saved on its own (its tensors unprefixed) is told Hunyuan3D's by detection, but
    the ShapeVAE and DINOv2 come only from ComfyUI's single checkpoint."""
    where = ("put ComfyUI's single checkpoint (hunyuan3d-dit-v2*.safetensors or hunyuan_3d_v2.1.safetensors: "
             "transformer, ShapeVAE and image encoder in one file) in models/checkpoints/ and load it with load.model")
    if any(k.startswith(("latent_in.", "x_embedder.")) for k in state):
        return (f"{name} holds only a Hunyuan3D transformer (DiT); it lacks the ShapeVAE (vae.*) and the DINOv2 "
                f"image encoder (conditioner.*) that decode and encode.image need: {where}")
    return f"{name} holds no Hunyuan3D transformer (no model.* tensors): {where}"


@contextmanager
def _checked(name: str, parts):
    """Within the block, checked(build, part) builds one part of the checkpoint `name` whose sizes its builder reads
    from the tensors' shapes and names, a stranger's: `parts` ((state, block patterns) each) have their blocks
    counted first (at most converters.MAX_BLOCKS), and each part is counted on the meta device before it is built. A
    tensor the file lacks or of too few dimensions is named (weights.sizes_of), not a KeyError traceback; a
    transformer width claimed by a tensor of shape [10^7, 0], no byte in the file, asked for gigabytes."""
    from nodes.generate.converters import check_claim, count
    from nodes.generate.weights import sizes_of

    def checked(build, part, named=dict):
        check_claim(lambda: build(part, load=False), part, name)
        # the builders load with torch's load_state_dict, whose answer to a tensor of another shape is a 'size
        # mismatch' RuntimeError (a traceback out of load.model): each tensor's shape is held to the network's first
        with torch.device("meta"):
            wanted = build(part, load=False).state_dict()
        given = named(part)     # in the network's names
        bad = next((k for k, v in given.items() if k in wanted and tuple(v.shape) != tuple(wanted[k].shape)), None)
        if bad is not None:
            raise NodeError(f"{name}: its tensor {bad} has shape {tuple(given[bad].shape)}, where the Hunyuan3D model "
                            f"its other tensors make has {tuple(wanted[bad].shape)}: the file is damaged or another "
                            "model's; get it again from where it was published")
        return build(part)
    with sizes_of(name, "a Hunyuan3D checkpoint"):
        for part, patterns in parts:
            for pattern in patterns:
                count(part, pattern)
        yield checked


def load_checkpoint(path: Path, dtype) -> Hunyuan3DParts:
    """A Hunyuan3D checkpoint's transformer, ShapeVAE (its latent scale set by the transformer's version) and DINOv2,
    in `dtype` (DINOv2 and the ShapeVAE in float32 on the CPU, where half precision is slow or missing)."""
    from nodes.generate.hunyuan3d_model import build_dit
    from nodes.generate.hunyuan3d_vae import build_vae
    from nodes.generate.weights import load_weights
    state = load_weights(path)
    dit_state = _part(state, DIT)
    if not dit_state:
        raise NodeError(_not_a_checkpoint(Path(path).name, state))
    vae_state, dino_part = _part(state, VAE), _part(state, DINO)
    with _checked(Path(path).name, ((dit_state, ("double_blocks.{}.", "single_blocks.{}.", "blocks.{}.")),
                                    (vae_state, ("transformer.resblocks.{}.",)),
                                    (dino_part, ("encoder.layer.{}.",)))) as checked:
        dit = checked(build_dit, dit_state)
        kind = variant(dit_state, len(getattr(dit, "double_blocks", ())))
        vae = checked(lambda part, load=True: build_vae(part, SCALE[kind], load), vae_state) if vae_state else None
        dino = checked(build_dino, dino_part, dino_state) if dino_part else None
    dit.variant = kind
    work = dtype if dtype != torch.float16 or torch.cuda.is_available() else torch.float32
    return Hunyuan3DParts(dit.to(dtype), vae.to(work) if vae is not None else None,
                          dino.to(work) if dino is not None else None)


# -- image conditioning ------------------------------------------------------------------------------------------
def dino_tokens(encoder, picture, crop: bool = True) -> torch.Tensor:
    """DINOv2's last hidden state [1, 1 + patches, width] of a PIL picture, prepared as ComfyUI's clip_preprocess
    prepares it: the short side to the encoder's size and the middle square (crop), or the whole picture squeezed to
    the square (bicubic, antialiased either way), 8-bit levels, ImageNet's mean and deviation."""
    import numpy as np
    side = int(encoder.config.image_size)
    x = torch.from_numpy(np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    if x.shape[2] != side or x.shape[3] != side:
        scale = side / min(x.shape[2], x.shape[3])
        size = (round(scale * x.shape[2]), round(scale * x.shape[3])) if crop else (side, side)
        x = torch.nn.functional.interpolate(x, size=size, mode="bicubic", antialias=True)
        top, left = (x.shape[2] - side) // 2, (x.shape[3] - side) // 2
        x = x[:, :, top:top + side, left:left + side]
    x = torch.clip(255.0 * x, 0, 255).round() / 255.0
    x = (x - torch.tensor(DINO_MEAN).view(3, 1, 1)) / torch.tensor(DINO_STD).view(3, 1, 1)
    p = next(encoder.parameters())
    return encoder(pixel_values=x.to(p.device, p.dtype)).last_hidden_state.float()


def view_embeds(views: Dict[str, torch.Tensor]) -> torch.Tensor:
    """The given views' tokens, each plus the sin/cos position of its view (front 0, left 1, back 2, right 3, the
    view's place whichever are given), one after another (ComfyUI's Hunyuan3Dv2ConditioningMultiView)."""
    out = []
    for i, name in enumerate(VIEWS):
        e = views.get(name)
        if e is None:
            continue
        width = e.shape[-1]
        omega = 1.0 / 10000 ** (torch.arange(width // 2, dtype=torch.float32) / (width / 2.0))
        angle = float(i) * omega
        out.append(e + torch.cat([angle.sin(), angle.cos()]).to(e.dtype).view(1, 1, -1))
    if not out:
        raise NodeError("condition.hunyuan3d needs a picture: connect encode.image's output to front (or image), "
                        "and for Hunyuan3D-2mv the other views to left, back and right")
    return torch.cat(out, 1)


def conditioning(image: Optional[Conditioning], views: Dict[str, Optional[Conditioning]], guidance: float):
    """(positive, negative) for a Hunyuan3D model: one picture's DINOv2 tokens as they are (ComfyUI's
    Hunyuan3Dv2Conditioning), or the views' each marked with its view's position (Hunyuan3Dv2ConditioningMultiView),
    and zeros of their shape for the negative, as ComfyUI's. The positive tells a 2.0 model `guidance` (ComfyUI's
    FluxGuidance on it), the negative ComfyUI's default 5."""
    given = {k: v for k, v in views.items() if v is not None}
    if image is not None and given:
        raise NodeError("condition.hunyuan3d takes one picture (image) or views (front, left, back, right), not both: "
                        "a Hunyuan3D-2mv model reads views, the others one picture")
    for name, c in ({"image": image} if image is not None else given).items():
        if c.family != "hunyuan3d" or c.meta.get("kind") != "image":
            raise NodeError(f"the {name} input is a {c.family} encoding; encode the picture with encode.image from a "
                            "Hunyuan3D checkpoint's image encoder (load.model's image_encoder)")
    tokens = {k: c.embeds[:1].float() for k, c in given.items()}
    if len({t.shape[-1] for t in tokens.values()}) > 1:
        raise NodeError("the views were encoded by different image encoders: encode every view with the same "
                        "checkpoint's encoder")
    embeds = image.embeds[:1].float() if image is not None else view_embeds(tokens)
    positive = Conditioning("hunyuan3d", embeds, prompts=("<image>",), meta={"kind": "image", "guidance": guidance})
    negative = Conditioning("hunyuan3d", torch.zeros_like(embeds), prompts=("",),
                            meta={"kind": "image", "guidance": GUIDANCE})
    return positive, negative


# -- latents ---------------------------------------------------------------------------------------------------
def empty_latent(tokens: int, batch: int = 1) -> Latent:
    """ComfyUI's EmptyLatentHunyuan3Dv2: zeros [batch, 64, tokens], held as [batch, 64, 1, 1, tokens] (Kinograph's
    latents are 5-D; one frame of 1 x tokens)."""
    return Latent(torch.zeros(batch, CHANNELS, 1, 1, tokens), "hunyuan3d", 1, 8.0, tokens, 1)


def shape_tokens(latent: Latent) -> torch.Tensor:
    """A Hunyuan3D latent's samples as the models take them, [B, 64, tokens]."""
    s = latent.samples
    if latent.family != "hunyuan3d" or s.ndim != 5 or s.shape[2] != 1 or s.shape[3] != 1:
        raise NodeError(f"this is a {latent.family} latent of shape {list(s.shape)}, not a Hunyuan3D shape latent: "
                        "make it with latent.empty_hunyuan3d and sample it with a Hunyuan3D model")
    return s[:, :, 0, 0]


def decode(vae, latent: Latent, num_chunks: int, resolution: int, progress=None):
    """The latent's first shape as a VOXEL: its occupancy (0 to 1, ComfyUI's VOXEL values) on a (resolution + 1)^3
    grid over [-1.01, 1.01]^3, num_chunks points decoded at a time."""
    from nodes.common.mesh import Voxel
    from nodes.generate.hunyuan3d_vae import BOUNDS
    model = getattr(vae.pipe, "vae", None) if vae is not None else None
    if model is None or not hasattr(model, "geo_decoder"):
        raise NodeError("decode.hunyuan3d needs a Hunyuan3D checkpoint's VAE (load.model's vae output on "
                        "hunyuan3d-dit-v2*.safetensors or hunyuan_3d_v2.1.safetensors)")
    tokens = shape_tokens(latent)
    if tokens.shape[1] != model.post_kl.in_features:
        raise NodeError(f"the latent has {tokens.shape[1]} channels; this ShapeVAE reads {model.post_kl.in_features}")
    if tokens.shape[0] > 1:
        raise NodeError(f"the latent holds {tokens.shape[0]} shapes; decode.hunyuan3d makes one VOXEL: sample a "
                        "batch of 1 (latent.empty_hunyuan3d's batch)")
    with torch.inference_mode():
        grid = model.decode(tokens / model.scale_factor, resolution, num_chunks, progress)
    return Voxel(grid[0].cpu().numpy(), (-BOUNDS,) * 3, (BOUNDS,) * 3)


def check_tokens(model, latent: Latent, context_width: Optional[int] = None) -> None:
    """A latent (and a conditioning width) that this transformer reads, named otherwise."""
    tokens = shape_tokens(latent)
    if tokens.shape[1] != model.in_channels:
        raise NodeError(f"the latent has {tokens.shape[1]} channels; this Hunyuan3D transformer reads "
                        f"{model.in_channels}: make it with latent.empty_hunyuan3d")
    if context_width is not None and context_width != model.context_dim:
        raise NodeError(f"the picture was encoded {context_width} wide and this Hunyuan3D {model.version} transformer "
                        f"reads {model.context_dim}: encode it with this checkpoint's own image encoder")
