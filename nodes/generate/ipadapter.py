"""IP-Adapter (Ye et al. 2023; h94/IP-Adapter, as ComfyUI_IPAdapter_plus runs it): reference images steer SD 1.5, SDXL
and AnimateDiff through a second key/value pair in every cross-attention layer, read from image tokens instead of the
prompt's: out = attention(q, k_text, v_text) + weight * attention(q, to_k_ip(tokens), to_v_ip(tokens)).
XLabs' FLUX.1 IP-Adapter (XLabs-AI/flux-ip-adapter v1 / v2, x-flux-comfyui's LoadFluxIPAdapter) steers FLUX.1 the same
way in its double blocks: diffusers' FluxIPAdapterAttnProcessor adds weight x attention(image query, to_k_ip(tokens),
to_v_ip(tokens)) to each block's image stream, from CLIP ViT-L's projected image embedding.

Files as users have them: `image_proj.*` (the projection of CLIP vision features into tokens) and `ip_adapter.*`
(`1.to_k_ip.weight`, `1.to_v_ip.weight`, `3.to_k_ip.weight` ...: one pair per cross-attention layer, numbered as
diffusers' attn_processors list them, odd numbers), flat in a .safetensors or nested in h94's .bin. The plain
adapter projects CLIP's pooled, projected image embedding into 4 tokens; "plus" runs a Resampler over the penultimate
hidden states (16 tokens); "full face" an MLP over them. The projection modules are diffusers' own, built by its
conversion code. The processors are installed on the shared UNet for one sampling run only (`installed`), under the
pipeline's lock, and the UNet's own come back after it, so a run without IP-Adapter is unchanged."""
from __future__ import annotations

import contextlib
import math
import re
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate import ipadapter_kinds
from nodes.generate.ipadapter_presets import (CLIP_VIT_G, CLIP_VIT_H, EMBEDS_COMBINE, GRADINGS, PRESETS, SCALINGS,
                                             WEIGHT_TYPES)


@dataclass(frozen=True, eq=False)
class IPAdapter:
    """A loaded IP-Adapter file (what an IPADAPTER edge carries); `encoder`: the CLIP vision handle found with it
    (load.ipadapter_preset, ComfyUI's unified loader), else None."""
    name: str
    kind: str                               # "plain", "plus" or "full"
    project: Any                            # diffusers' image projection module
    layers: Tuple[Tuple[torch.Tensor, torch.Tensor], ...]     # (to_k_ip, to_v_ip) weights per cross-attention layer
    encoder: Any = None

    @property
    def context(self) -> int:
        """Width of the tokens: the UNet's cross_attention_dim (768 SD 1.5, 2048 SDXL)."""
        return int(self.layers[0][0].shape[1])

    @property
    def title(self) -> str:
        if self.kind == "flux":
            return "a FLUX.1"
        return {768: "an SD 1.5", 2048: "an SDXL"}.get(self.context, f"a {self.context}-wide")

    def with_encoder(self, encoder) -> "IPAdapter":
        return IPAdapter(self.name, self.kind, self.project, self.layers, encoder)


# Kinds that read CLIP's pooled, projected image embedding (the others its penultimate hidden states).
POOLED = ("plain", "flux")


def _read_flux(path: Path, state: dict) -> IPAdapter:
    """XLabs' FLUX.1 IP-Adapter (ip_adapter_proj_model.proj / norm, double_blocks.N.processor.
    ip_adapter_double_stream_k_proj / _v_proj with biases), renamed as diffusers' FluxIPAdapterMixin.load_ip_adapter
    renames it, its projection built by diffusers' own conversion (4 tokens, 16 for a 65536-row proj as v2's)."""
    from diffusers.loaders.transformer_flux import FluxTransformer2DLoadersMixin
    from nodes.generate.weights import strip_prefix
    proj, blocks = strip_prefix(state, "ip_adapter_proj_model."), strip_prefix(state, "double_blocks.")
    parts = ("weight", "bias")
    count = len({k.split(".")[0] for k in blocks})
    names = [f"{i}.processor.ip_adapter_double_stream_{kv}_proj.{w}" for i in range(count) for kv in "kv"
             for w in parts]
    if not {"proj.weight", "proj.bias", "norm.weight", "norm.bias"} <= set(proj) or \
            any(n not in blocks for n in names):
        raise NodeError(f"{path.name} is not a whole XLabs FLUX.1 IP-Adapter: it lacks "
                        f"{', '.join([n for n in names if n not in blocks][:2]) or 'its ip_adapter_proj_model'} "
                        "(the file is damaged or cut short; XLabs-AI/flux-ip-adapter's ip_adapter.safetensors has "
                        "ip_adapter_proj_model.* and a k / v projection in each of FLUX.1's 19 double blocks)")
    try:
        project = FluxTransformer2DLoadersMixin._convert_ip_adapter_image_proj_to_diffusers(None, proj,
                                                                                             low_cpu_mem_usage=False)
    except (RuntimeError, KeyError) as exc:
        raise NodeError(f"{path.name}: its image projection does not load ({str(exc).splitlines()[0][:200]}); the "
                        "file is damaged") from None
    layers = tuple(tuple(blocks[f"{i}.processor.ip_adapter_double_stream_{kv}_proj.{w}"] for w in parts for kv in "kv")
                   for i in range(count))
    return IPAdapter(path.name, "flux", project.eval(), layers)


def read_ipadapter(path: Path) -> IPAdapter:
    """The adapter in an IP-Adapter file (.safetensors with image_proj./ip_adapter. keys, or h94's .bin; XLabs' FLUX.1
    one with ip_adapter_proj_model./double_blocks. keys)."""
    from diffusers.loaders.unet import UNet2DConditionLoadersMixin
    from nodes.generate.config_bound import refuse_built_beyond
    from nodes.generate.weights import load_weights
    state = load_weights(path, torch.float32)
    if ipadapter_kinds.is_flux(state):
        return _read_flux(path, state)
    proj, ip = ipadapter_kinds.parts(state)
    if not ip or not proj:
        raise NodeError(f"{path.name} is not an IP-Adapter file: it has no image_proj.* and ip_adapter.* tensors "
                        "(ip-adapter_sd15.safetensors, ip-adapter-plus_sdxl_vit-h.safetensors ... from h94/IP-Adapter; "
                        "ip_adapter.safetensors from XLabs-AI/flux-ip-adapter for FLUX.1)")
    why = ipadapter_kinds.refusal({k: tuple(v.shape) for k, v in proj.items()}, ip, path.name)
    if why:
        raise NodeError(why)
    kind = ipadapter_kinds.kind(proj)
    if kind is None:
        raise NodeError(f"{path.name} holds an IP-Adapter projection Kinograph does not know (image_proj keys "
                        f"{sorted(proj)[:4]})")
    numbers = ipadapter_kinds.layer_numbers(ip)
    if numbers is None:
        raise NodeError(f"{path.name}: its ip_adapter layers are not numbered 1, 3, 5 ... with a to_k_ip and a to_v_ip "
                        "each; the file is damaged or another kind of adapter")
    # diffusers' own conversion of the published keys into its projection modules (plain, Resampler, MLP).
    def convert():
        return UNet2DConditionLoadersMixin._convert_ip_adapter_image_proj_to_diffusers(None, proj,
                                                                                       low_cpu_mem_usage=False)
    # It sizes the modules from tensor shapes (a Resampler's width from latents' last one) and builds them before
    # reading the file's weights into them: a latents tensor 20,000 wide (a 320 KB file) asked for 6.4 GB a layer.
    refuse_built_beyond(convert, proj, path.name, "its image projection's tensor shapes make a projection",
                        "where it was published (h94/IP-Adapter)")
    try:
        project = convert()
    except (RuntimeError, KeyError, ZeroDivisionError) as exc:
        raise NodeError(f"{path.name}: its image projection does not load ({str(exc).splitlines()[0][:200]}); the "
                        "file is damaged") from None
    layers = tuple((ip[f"{n}.to_k_ip.weight"], ip[f"{n}.to_v_ip.weight"]) for n in numbers)
    return IPAdapter(path.name, kind, project.eval(), layers)


def load_ipadapter(mm, name: str) -> IPAdapter:
    from nodes.generate.model_manager import resolve_model_path
    path = resolve_model_path(name, "ipadapter", "IP-Adapter")
    if path.is_dir():
        raise NodeError(f"{path} is a folder; an IP-Adapter is one file (ip-adapter_sd15.safetensors ...)")
    return mm.cached(("ipadapter", str(path.resolve())), lambda: read_ipadapter(path), files=(path,))


def preset_files(preset: str, family: str) -> Tuple[Path, Path]:
    """(IP-Adapter file, CLIP vision file) that ComfyUI's IPAdapterUnifiedLoader picks for a preset and model family,
    by its own file-name patterns, from ipadapter/ and clip_vision/."""
    from nodes.common.models_dirs import list_models
    if preset not in PRESETS:
        raise NodeError(f"unknown IP-Adapter preset {preset!r}; choose one of {', '.join(PRESETS)}")
    sdxl = family == "sdxl"
    pattern = PRESETS[preset][sdxl]
    if pattern is None:
        raise NodeError(f"the {preset} preset has no SDXL IP-Adapter; pick STANDARD, VIT-G, PLUS or PLUS FACE")
    files = list_models()
    vision = CLIP_VIT_G if preset.startswith("VIT-G") else CLIP_VIT_H

    def pick(kind: str, rx: str, example: str) -> Path:
        hits = [p for p in files.get(kind, []) if re.search(rx, p.name, re.IGNORECASE)]
        if not hits:
            raise NodeError(f"the {preset} preset for {'SDXL' if sdxl else 'SD 1.5'} found no file in {kind}/ "
                            f"matching {rx!r} (ComfyUI's name for it, e.g. {example}): put it there, or load it by "
                            f"name with load.ipadapter and load.clip_vision")
        return hits[0]
    example = {False: "ip-adapter-plus_sd15.safetensors", True: "ip-adapter-plus_sdxl_vit-h.safetensors"}[sdxl]
    return (pick("ipadapter", pattern, example),
            pick("clip_vision", vision, "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors" if vision == CLIP_VIT_G
                 else "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"))


# -- reference images ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """One ipadapter.apply on a model: the image tokens for the prompt (cond) and for the negative (uncond), each
    [references, tokens, context] (one reference unless `per_frame`: then frame i reads reference i, the last one
    past the end, ComfyUI's IPAdapterBatch), over which share of the steps they act (start_at / end_at), how the
    weight spreads over the UNet (weight_type) and scales the tokens (embeds_scaling), and `mask` [masks, H, W]:
    where in the picture the adapter acts (attn_mask; frame i reads mask i, the last one past the end). `layout`:
    the prompt's tokens of a composition picture apart from the style one (IPAdapterStyleComposition), read by SDXL's
    layout transformer instead of `cond`. `frame_weights` [frames]: frame i's weight in place of `weight` (the last
    one past the end), as IPAdapterBatch takes IPAdapterWeights' list."""
    adapter: IPAdapter
    cond: torch.Tensor
    uncond: torch.Tensor
    weight: float
    start: float = 0.0
    end: float = 1.0
    weight_type: str = "linear"
    scaling: str = "V only"
    mask: Optional[torch.Tensor] = None
    per_frame: bool = False
    composition: float = 1.0
    layout: Optional[torch.Tensor] = None
    frame_weights: Optional[torch.Tensor] = None
    block_weights: Optional[Tuple[float, ...]] = None     # FLUX.1: one weight per double block, in place of weight


def _vision(encoder):
    """(CLIP vision module, its image processor) of an IMAGE_ENCODER handle."""
    pipe = getattr(encoder, "pipe", None)
    module = getattr(pipe, "image_encoder", None)
    proc = getattr(pipe, "image_processor", None) or getattr(pipe, "feature_extractor", None)
    if module is None or proc is None or not hasattr(module.config, "patch_size"):
        raise NodeError("IP-Adapter reads a CLIP vision model (ViT-H: CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors, or "
                        "ViT-bigG for ip-adapter_sdxl): load it with load.clip_vision")
    return module, proc


def clip_features(adapter: IPAdapter, encoder, images: Sequence[np.ndarray], negative: Sequence[np.ndarray] = (),
                  mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(features of the images, of the negative) as the adapter reads them, ComfyUI's way: the plain adapter the
    pooled, projected embedding, the others the penultimate hidden states. The negative: those of the `negative`
    pictures (image_negative), else zeros for the plain adapter and a black picture's for the others. `mask`
    [masks, H, W]: what CLIP sees of each image (IPAdapterEncoder's mask: cut to its centre square, resized to CLIP's
    input, times the normalised pixels)."""
    from PIL import Image
    module, proc = _vision(encoder)

    def pixels(pics):
        return proc(images=[Image.fromarray(np.ascontiguousarray(i)) for i in pics],
                    return_tensors="pt").pixel_values.to(module.device, module.dtype)
    with torch.inference_mode():
        px = pixels(images)
        if mask is not None:
            px = px * _sized(_clip_mask(mask, int(px.shape[-1])), px.shape[0]).to(px)
        if adapter.kind in POOLED:
            if not hasattr(module, "visual_projection"):
                full = "clip_vision_l.safetensors (CLIP ViT-L/14 with its projection)" if adapter.kind == "flux" \
                    else "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
                raise NodeError(f"{adapter.name} reads CLIP's projected image embedding, and this CLIP vision file has "
                                f"no visual_projection: use the full {full}")
            feats = module(pixel_values=px).image_embeds.float()
            if len(negative):
                neg = module(pixel_values=pixels(negative)).image_embeds.float()
            elif adapter.kind == "flux":
                # x-flux-comfyui's IPProcessor gives the negative pass of true CFG the pictures too (the negative it
                # computes goes unused), so true CFG does not push the adapter's effect further
                neg = feats
            else:
                neg = torch.zeros_like(feats[:1])
        else:
            side = int(px.shape[-1])
            black = proc(images=[Image.new("RGB", (side, side))], return_tensors="pt").pixel_values.to(px)
            feats = module(pixel_values=px, output_hidden_states=True).hidden_states[-2].float()
            neg = module(pixel_values=pixels(negative) if len(negative) else black,
                         output_hidden_states=True).hidden_states[-2].float()
    _check_width(adapter, feats)
    return feats.cpu(), neg.cpu()


def _clip_mask(mask: torch.Tensor, side: int) -> torch.Tensor:
    """[masks, 1, side, side]: each mask's centre square resized to CLIP's input."""
    return _centre_square(mask[:, None].float(), side)


def _centre_square(x: torch.Tensor, side: int) -> torch.Tensor:
    """[n, c, side, side]: the middle square of each [c, H, W], resized bicubic with antialiasing, as
    ComfyUI_IPAdapter_plus prepares masks and noise pictures for CLIP."""
    import torch.nn.functional as F
    h, w = x.shape[-2:]
    n = min(h, w)
    top, left = int(round((h - n) / 2)), int(round((w - n) / 2))
    return F.interpolate(x[:, :, top:top + n, left:left + n], size=(side, side), mode="bicubic", antialias=True)


def _check_width(adapter: IPAdapter, feats: torch.Tensor) -> None:
    wants = _feature_width(adapter)
    if feats.shape[-1] != wants or feats.ndim != (2 if adapter.kind in POOLED else 3):
        got = "pooled" if feats.ndim == 2 else "hidden"
        if adapter.kind == "flux":
            raise NodeError(f"{adapter.name} reads CLIP ViT-L/14's projected image embedding ({wants} wide) and this "
                            f"CLIP vision model gives {got} features {feats.shape[-1]} wide: load "
                            "clip_vision_l.safetensors (openai/clip-vit-large-patch14's vision tower), the one "
                            "XLabs' adapter was trained with")
        raise NodeError(f"{adapter.name} reads CLIP vision {'pooled' if adapter.kind == 'plain' else 'hidden'} "
                        f"features {wants} wide and these are {got}, {feats.shape[-1]} wide: ViT-H (1024 projected, "
                        "1280 hidden) goes with the _sd15 and _vit-h adapters, ViT-bigG (1280 projected, 1664 hidden) "
                        "with ip-adapter_sdxl and _vit-G; embeddings (ipadapter.encode) are read by the kind of "
                        "adapter that made them")


def _feature_width(adapter: IPAdapter) -> int:
    p = adapter.project
    if adapter.kind in POOLED:
        return int(p.image_embeds.in_features)
    if adapter.kind == "plus":
        return int(p.proj_in.in_features)
    return int(p.ff.net[0].proj.in_features)


def combine(feats: torch.Tensor, how: str) -> torch.Tensor:
    """Several reference images' features as ComfyUI's combine_embeds joins them before the projection ("concat"
    keeps each image, whose tokens then stand side by side)."""
    if how not in EMBEDS_COMBINE:
        raise NodeError(f"unknown combine {how!r}; choose one of {', '.join(EMBEDS_COMBINE)}")
    if how == "concat" or feats.shape[0] == 1:
        return feats
    if how == "add":
        return feats.sum(0, keepdim=True)
    if how == "subtract":
        return (feats[0] - feats[1:].mean(0))[None]
    if how == "average":
        return feats.mean(0, keepdim=True)
    if how == "max":
        return feats.max(0, keepdim=True).values
    if how == "min":
        return feats.min(0, keepdim=True).values
    return (feats / feats.norm(dim=0, keepdim=True)).mean(0, keepdim=True)


def tokens(adapter: IPAdapter, feats: torch.Tensor, per_frame: bool = False) -> torch.Tensor:
    """[1, images x tokens, context]: each image's tokens, side by side (as diffusers lays several images out);
    per_frame: [images, tokens, context], one reference per frame."""
    with torch.inference_mode():
        out = adapter.project(feats.to(next(adapter.project.parameters()).dtype))
    return (out if per_frame else out.reshape(1, -1, out.shape[-1])).float()


def _sized(t: torch.Tensor, n: int) -> torch.Tensor:
    """t's first n rows, its last one repeated where it has fewer (ComfyUI's tensor_to_size)."""
    return t[[min(i, t.shape[0] - 1) for i in range(n)]]


def _checked_encoder(adapter: IPAdapter, encoder, node: str):
    encoder = encoder if encoder is not None else adapter.encoder
    if encoder is None:
        raise NodeError(f"{node} needs a CLIP vision model: connect load.clip_vision to its image_encoder input (or "
                        "load the adapter with load.ipadapter_preset, which finds one)")
    return encoder


def _built(adapter: IPAdapter, feats: torch.Tensor, neg: torch.Tensor, weight: float, start: float, end: float,
           weight_type: str, scaling: str, mask: Optional[torch.Tensor], per_frame: bool, composition: float,
           layout: Optional[torch.Tensor] = None) -> Reference:
    if not 0.0 <= start < end <= 1.0:
        raise NodeError(f"the IP-Adapter's start ({start}) must come before its end ({end}), both between 0 (the first "
                        "step) and 1 (the last)")
    if weight_type not in WEIGHT_TYPES:
        raise NodeError(f"unknown IP-Adapter weight type {weight_type!r}; choose one of {', '.join(WEIGHT_TYPES)}")
    if scaling not in SCALINGS:
        raise NodeError(f"unknown IP-Adapter embeds scaling {scaling!r}; choose one of {', '.join(SCALINGS)}")
    if layout is not None and layout.shape[0] != feats.shape[0]:
        raise NodeError(f"{layout.shape[0]} composition pictures for {feats.shape[0]} style pictures: give as many, or "
                        "join each set into one (combine average)")
    if layout is not None and weight_type not in _LAYOUT_TYPES:
        raise NodeError(f"a composition picture is read by the weight types {' and '.join(_LAYOUT_TYPES)} only (the "
                        f"layout transformer's own picture); with {weight_type!r} it would be ignored: pick one of "
                        "them, or leave composition_image unconnected")
    return Reference(adapter, tokens(adapter, feats, per_frame), tokens(adapter, _sized(neg, feats.shape[0]), per_frame),
                     float(weight), float(start), float(end), weight_type, scaling, mask, per_frame, float(composition),
                     None if layout is None else tokens(adapter, layout, per_frame))


def with_frame_weights(ref: Reference, text: str) -> Reference:
    """The reference with one weight per frame, from `text` as IPAdapterWeights' weights widget holds them: numbers
    separated by commas or new lines ("1.0, 0.5, 0.0"); frame i takes the i-th, the last one past the end. Empty
    text: the reference as it was."""
    parts = [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
    if not parts:
        return ref
    try:
        weights = [float(p) for p in parts]
    except ValueError:
        raise NodeError(f"frame_weights {text!r} is not a list of numbers: write one weight per frame, separated by "
                        "commas or new lines (1.0, 0.5, 0.0)") from None
    if not all(math.isfinite(w) for w in weights):
        raise NodeError(f"frame_weights {text!r} holds a weight that is not a finite number")
    return dataclasses.replace(ref, weight=1.0, frame_weights=torch.tensor(weights))


def reference(adapter: IPAdapter, encoder, images: Sequence[np.ndarray], weight: float, start: float, end: float,
              how: str = "concat", weight_type: str = "linear", scaling: str = "V only",
              mask: Optional[torch.Tensor] = None, negative: Sequence[np.ndarray] = (), per_frame: bool = False,
              composition: float = 1.0, layout_images: Sequence[np.ndarray] = ()) -> Reference:
    """A reference from pictures; `layout_images`: a composition picture apart from the style ones (joined the same
    way)."""
    if not images:
        raise NodeError("ipadapter.apply needs at least one reference image")
    encoder = _checked_encoder(adapter, encoder, "ipadapter.apply")
    feats, neg = clip_features(adapter, encoder, images, negative)
    layout = clip_features(adapter, encoder, layout_images)[0] if len(layout_images) else None
    if not per_frame and feats.shape[0] > 1 and how != "concat":
        feats, neg = combine(feats, how), neg[:1]
    if layout is not None and not per_frame and layout.shape[0] > 1 and how != "concat":
        layout = combine(layout, how)
    return _built(adapter, feats, neg, weight, start, end, weight_type, scaling, mask, per_frame, composition, layout)


def encode(adapter: IPAdapter, encoder, images: Sequence[np.ndarray], weight: float,
           mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(the images' CLIP features times weight, the negative's) as IPAdapterEncoder makes them: embeddings to combine
    (combine) and apply (from_embeds)."""
    if not images:
        raise NodeError("ipadapter.encode needs at least one picture")
    feats, neg = clip_features(adapter, _checked_encoder(adapter, encoder, "ipadapter.encode"), images, mask=mask)
    return feats * float(weight), neg


def from_embeds(adapter: IPAdapter, encoder, pos: torch.Tensor, neg: Optional[torch.Tensor], weight: float,
                start: float, end: float, weight_type: str = "linear", scaling: str = "V only",
                mask: Optional[torch.Tensor] = None, per_frame: bool = False) -> Reference:
    """A reference from embeddings (IPAdapterEmbeds): each one's tokens side by side (one per frame with per_frame);
    without `neg`, the negative the adapter reads by default (a black picture's features, or zeros)."""
    _check_width(adapter, pos)
    if neg is None:
        if adapter.kind == "plain":
            neg = torch.zeros_like(pos[:1])
        else:
            _, neg = clip_features(adapter, _checked_encoder(adapter, encoder, "ipadapter.apply_embeds"),
                                   [np.zeros((8, 8, 3), np.uint8)])
    _check_width(adapter, neg)
    return _built(adapter, pos, neg, weight, start, end, weight_type, scaling, mask, per_frame, 1.0)


def apply_ipadapter(model, ref: Reference):
    """The model with one more IP-Adapter: chained, they add up (ComfyUI's stacked IPAdapter nodes)."""
    from nodes.generate.adapters import get_adapter
    title = get_adapter(model.family).title(model.pipe)
    if model.family == "flux" or ref.adapter.kind == "flux":
        return _apply_flux(model, ref, title)
    if model.family not in ("sd", "sdxl", "animatediff"):
        raise NodeError(f"IP-Adapter works with Stable Diffusion 1.5, SDXL and AnimateDiff models, not {title}")
    cross = _cross_layers(model.denoiser)
    if len(cross) != len(ref.adapter.layers) or ref.adapter.context != model.denoiser.config.cross_attention_dim:
        raise NodeError(f"{ref.adapter.name} is {ref.adapter.title} IP-Adapter ({len(ref.adapter.layers)} "
                        f"cross-attention layers, {ref.adapter.context} wide) and this {title} model has "
                        f"{len(cross)} ({model.denoiser.config.cross_attention_dim} wide): use the IP-Adapter made for "
                        "the model's family (_sd15 files for SD 1.5 and AnimateDiff, _sdxl for SDXL and "
                        "AnimateDiff-SDXL)")
    sdxl = sdxl_unet(model)
    if ref.layout is not None and not sdxl:
        raise NodeError("a composition picture apart from the style one works on SDXL only (as in "
                        "ComfyUI_IPAdapter_plus); on SD 1.5 use weight type 'style and composition' with one picture")
    if ref.weight_type in BLOCK_TYPES:
        count = places(model.denoiser)[0].count
        if count != (11 if sdxl else 16):
            raise NodeError(f"the IP-Adapter weight type {ref.weight_type!r} picks transformers of "
                            f"{'SDXL' if sdxl else 'SD 1.5'}'s own UNet by number ({11 if sdxl else 16} with "
                            f"cross-attention) and this model's UNet has {count}: use linear or an ease/weak type, "
                            "which spread over any UNet")
    return model.with_option("ipadapter", (model.option("ipadapter") or ()) + (ref,))


def _apply_flux(model, ref: Reference, title: str):
    """The FLUX.1 model with one more XLabs IP-Adapter (chained ones add up, as x-flux-comfyui's)."""
    if ref.adapter.kind != "flux":
        raise NodeError(f"{ref.adapter.name} is {ref.adapter.title} IP-Adapter and this is {title}: FLUX.1 takes "
                        "XLabs' FLUX.1 IP-Adapter (ip_adapter.safetensors from XLabs-AI/flux-ip-adapter)")
    if model.family != "flux":
        raise NodeError(f"{ref.adapter.name} is XLabs' FLUX.1 IP-Adapter and this is {title}: apply it to a FLUX.1 "
                        "dev or schnell model")
    t = model.denoiser
    blocks, width = len(t.transformer_blocks), int(t.transformer_blocks[0].attn.to_q.out_features)
    k_w = ref.adapter.layers[0][0]
    if len(ref.adapter.layers) != blocks or ref.adapter.context != t.config.joint_attention_dim or \
            int(k_w.shape[0]) != width:
        raise NodeError(f"{ref.adapter.name} fits a FLUX.1 of {len(ref.adapter.layers)} double blocks "
                        f"{int(k_w.shape[0])} wide reading {ref.adapter.context}-wide text, and this model has "
                        f"{blocks} ({width} wide, {t.config.joint_attention_dim}-wide text)")
    unsupported = [what for what, on in (("weight types other than linear", ref.weight_type != "linear"),
                                         ("embeds scaling other than V only", ref.scaling != "V only"),
                                         ("a mask", ref.mask is not None), ("a composition picture", ref.layout
                                                                            is not None),
                                         ("frame weights", ref.frame_weights is not None)) if on]
    if ref.block_weights is not None and len(ref.block_weights) != blocks:
        raise NodeError(f"{len(ref.block_weights)} block weights for this model's {blocks} double blocks")
    if unsupported:
        raise NodeError(f"XLabs' FLUX.1 IP-Adapter takes a weight, start and end; {', '.join(unsupported)} "
                        "work with SD 1.5 / SDXL adapters only: leave them at their defaults")
    return model.with_option("ipadapter", (model.option("ipadapter") or ()) + (ref,))


def graded(begin: float, end: float, how: str, count: int) -> Tuple[float, ...]:
    """One weight per FLUX.1 double block from `begin` (the first) toward `end`, as x-flux-comfyui's strength models
    grade ApplyAdvancedFluxIPAdapter's: evenly (linear); over the first half then held at end (first half); held at
    begin then over the second half (second half); or XLabs' sigmoid, begin + (end - begin) x (logistic - 0.5) centred
    mid-way, which runs from about begin - 0.48 (end - begin) to begin + 0.47 (end - begin)."""
    if how not in GRADINGS:
        raise NodeError(f"unknown grading {how!r}; choose one of {', '.join(GRADINGS)}")
    if how == "sigmoid":
        return tuple(begin + (end - begin) * (1 / (1 + math.exp(-(i - count / 2) * 8 / count)) - 0.5)
                     for i in range(count))
    if how == "linear":
        return tuple(begin + (end - begin) * i / max(count - 1, 1) for i in range(count))
    half = count // 2
    ramp = [begin + (end - begin) * i / max(half - 1, 1) for i in range(half)]
    return tuple(ramp + [end] * (count - half) if how == "first half" else [begin] * (count - half) + ramp)


def sdxl_unet(model) -> bool:
    """Whether the model's UNet is SDXL's (an SDXL model's, or AnimateDiff-SDXL's motion UNet around it): which
    transformers the weight types pick and which files a preset finds."""
    from nodes.generate.adapters import get_adapter
    return get_adapter(model.family).latents(model.pipe) == "sdxl"


# -- where the weight acts (ComfyUI_IPAdapter_plus's weight types) ---------------------------------------------------
@dataclass(frozen=True)
class Place:
    """Where a cross-attention layer sits: the number of its transformer in the order the UNet runs them (down,
    middle, up: ComfyUI's transformer_index, which the weight types count), how many there are, and its block."""
    index: int
    count: int
    block: str          # "input", "middle" or "output"


def places(unet) -> List[Place]:
    """Each cross-attention layer's Place, in the order IP-Adapter files number them."""
    owners = [n.split(".transformer_blocks.")[0] for n in _cross_layers(unet)]

    def run_order(owner: str):
        head, *rest = owner.split(".")
        return ({"down_blocks": 0, "mid_block": 1}.get(head, 2), *[int(p) for p in rest if p.isdecimal()])
    ranked = {o: i for i, o in enumerate(sorted(set(owners), key=run_order))}
    block = {"down_blocks": "input", "mid_block": "middle"}
    return [Place(ranked[o], len(ranked), block.get(o.split(".")[0], "output")) for o in owners]


# The weight types that pick transformers by number, on SDXL's UNet (11 transformers: 0-3 down, 4 middle, 5-10 up)
# and SD 1.5's (16: 0-5 down, 6 middle, 7-15 up): transformer -> (share of weight, share of the composition weight).
# InstantStyle's finding: SDXL's transformer 6 (up_blocks.0.attentions.1) carries style, 3 (down_blocks.2.attentions.1)
# the layout.
_ALL_XL, _ALL_15 = range(11), range(16)
_STYLE_15 = (0, 1, 2, 3, *range(9, 16))
_TABLES = {
    "style transfer": ({6: (1, 0)}, {i: (1, 0) for i in _STYLE_15}),
    "composition": ({3: (1, 0)}, {4: (0.25, 0), 5: (1, 0)}),
    "strong style transfer": ({i: (1, 0) for i in _ALL_XL if i != 3}, {i: (1, 0) for i in _ALL_15 if i not in (4, 5)}),
    "style and composition": ({3: (0, 1), 6: (1, 0)}, {**{i: (1, 0) for i in _STYLE_15}, 4: (0, 0.25), 5: (0, 1)}),
    "strong style and composition": ({**{i: (1, 0) for i in _ALL_XL}, 3: (0, 1)},
                                     {**{i: (1, 0) for i in _ALL_15}, 4: (0, 1), 5: (0, 1)}),
    "style transfer precise": ({3: (1, 0), 6: (1, 0)}, {**{i: (1, 0) for i in _STYLE_15}, 4: (0.25, 0), 5: (1, 0)}),
    "composition precise": ({**{i: (0.1, 0) for i in _ALL_XL}, 3: (1, 0), 6: (1, 0)},
                            {**{i: (1, 0) for i in _STYLE_15}, 4: (0.25, 0), 5: (1, 0), 6: (0.1, 0), 7: (0.1, 0),
                             8: (0.1, 0)}),
}
BLOCK_TYPES = tuple(_TABLES)
_LAYOUT_TYPES = ("style and composition", "strong style and composition")
# The precise types' composition transformers (style: those) read the picture as the negative and nothing as the
# prompt, steering away from the reference's layout (its style) while the others take its style (layout).
_COMPOSITION = ((3,), (4, 5))


def layer_weight(ref: Reference, place: Place, sdxl: bool) -> Tuple[float, bool]:
    """(this layer's weight, whether its prompt and negative tokens swap: the precise types) for one reference;
    weight 0: the layer does not read it."""
    w, n, half = ref.weight, place.count, place.count / 2
    curve = {"ease in": 1 - place.index / n, "ease out": place.index / n,
             "ease in-out": 1 - abs(place.index - half) / half, "reverse in-out": abs(place.index - half) / half}
    if ref.weight_type in curve:
        return w * (0.05 + 0.95 * curve[ref.weight_type]), False
    weak = {"weak input": ("input",), "weak middle": ("middle",), "weak output": ("output",),
            "strong middle": ("input", "output")}
    if ref.weight_type in weak:
        return (w * 0.2 if place.block in weak[ref.weight_type] else w), False
    if ref.weight_type not in _TABLES:
        return w, False
    share = _TABLES[ref.weight_type][0 if sdxl else 1].get(place.index)
    if share is None:
        return 0.0, False
    comp = place.index in _COMPOSITION[0 if sdxl else 1]
    swap = (ref.weight_type == "style transfer precise" and comp) or (ref.weight_type == "composition precise" and
                                                                       not comp)
    return w * share[0] + ref.composition * share[1], swap


# -- sampling --------------------------------------------------------------------------------------------------------
def _cross_layers(unet) -> List[str]:
    """The UNet's cross-attention processors in the order IP-Adapter files number them (diffusers'
    _convert_ip_adapter_attn_to_diffusers: attn_processors' order, without self-attention and motion modules)."""
    return [n for n in unet.attn_processors if not n.endswith("attn1.processor") and "motion_modules" not in n]


@dataclass(frozen=True)
class _Step:
    """What one reference gives one network call: its prompt and negative tokens [1 or frames, T, D], which of the
    call's conditionings is the negative, its masks [1 or frames, H, W] (or None), the call's frame count and latent
    size (for the masks' shape at each layer), and the composition picture's prompt tokens (or None)."""
    cond: torch.Tensor
    uncond: torch.Tensor
    negative: Tuple[bool, ...]
    mask: Optional[torch.Tensor]
    frames: int
    hw: Tuple[int, int]
    layout: Optional[torch.Tensor] = None
    weights: Optional[torch.Tensor] = None      # each frame's weight [1 or frames]

    def rows(self, t: torch.Tensor, batch: int) -> torch.Tensor:
        """t [1 or frames, ...] for each batch item: items run conditioning by conditioning, frames innermost."""
        return t[torch.arange(batch) % self.frames % t.shape[0]]

    def tokens(self, batch: int, swap: bool, layout: bool = False) -> torch.Tensor:
        cond = self.rows(self.layout if layout and self.layout is not None else self.cond, batch)
        uncond = self.rows(self.uncond, batch)
        neg = torch.tensor(self.negative).repeat_interleave(batch // len(self.negative))[:, None, None]
        if swap:
            return torch.where(neg, cond, torch.zeros_like(cond))
        return torch.where(neg, uncond, cond)

    def layer_mask(self, batch: int, seq: int) -> torch.Tensor:
        """[batch, seq, 1]: the mask at a layer's token grid, shaped as ComfyUI_IPAdapter_plus shapes it (the
        latent's aspect, bilinear, padded or cut at the middle when the grid does not divide evenly)."""
        import torch.nn.functional as F
        oh, ow = self.hw
        mh = int(oh / math.sqrt(oh * ow / seq))
        mh = mh + int(seq % mh != 0)
        m = F.interpolate(self.mask[:, None], size=(mh, seq // mh), mode="bilinear")[:, 0].flatten(1)
        if m.shape[1] < seq:
            pad = seq - m.shape[1]
            m = F.pad(m, (pad // 2, pad - pad // 2))
        m = m[:, (m.shape[1] - seq) // 2:][:, :seq]
        return self.rows(m, batch)[..., None]


class _Feed:
    """What the installed processors read during one network call: per reference its _Step, or None where it does
    not act at this step."""

    def __init__(self, count: int):
        self.now: List[Optional[_Step]] = [None] * count


def _attention(q, k, v, heads: int) -> torch.Tensor:
    """Multi-head attention over [batch, tokens, heads x width] tensors."""
    import torch.nn.functional as F
    b, width = q.shape[0], q.shape[-1] // heads

    def split(t):
        return t.view(b, -1, heads, width).transpose(1, 2)
    return F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).reshape(b, -1, heads * width)


class IPAttention:
    """A cross-attention processor computing diffusers' IPAdapterAttnProcessor2_0 for the text and every active
    reference, each with its layer's weight, scaling and mask as ComfyUI_IPAdapter_plus applies them; without an
    active one it is the UNet's own processor."""

    def __init__(self, base, layers, refs, place: Place, sdxl: bool, feed: _Feed):
        self.base, self.layers, self.refs, self.place, self.sdxl, self.feed = base, layers, refs, place, sdxl, feed

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        active = [(kv, ref, now) for kv, ref, now in zip(self.layers, self.refs, self.feed.now) if now is not None]
        if not active or encoder_hidden_states is None:
            return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        import torch.nn.functional as F
        if attn.spatial_norm is not None or attn.group_norm is not None or attn.norm_cross or \
                hidden_states.ndim != 3 or attention_mask is not None:
            raise NodeError("IP-Adapter met a cross-attention layer of a kind it does not patch (normed or masked)")
        residual = hidden_states
        batch, seq = hidden_states.shape[:2]
        query = attn.to_q(hidden_states)
        out = _attention(query, attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states), attn.heads)
        for (k_ip, v_ip), ref, step in active:
            weight, swap = layer_weight(ref, self.place, self.sdxl)
            if weight == 0:
                continue
            if step.weights is not None:    # each batch item its frame's weight, [batch, 1, 1]
                weight = weight * step.rows(step.weights, batch)[:, None, None].to(query)
            layout = ref.weight_type in _LAYOUT_TYPES and self.place.index in _COMPOSITION[0 if self.sdxl else 1]
            toks = step.tokens(batch, swap, layout).to(query.device, query.dtype)
            k, v = F.linear(toks, k_ip.to(query)), F.linear(toks, v_ip.to(query))
            if ref.scaling != "V only":
                # ComfyUI's "C penalty" weakens the narrow layers: the weight times the layer's width / 1280.
                w = weight * (k.shape[-1] / 1280.0 if "penalty" in ref.scaling else 1.0)
                mean = v.mean(1, keepdim=True)
                k, v = k * w, ((v - mean) + mean * w if "mean" in ref.scaling else v * w)
                ip = _attention(query, k, v, attn.heads)
            else:
                ip = weight * _attention(query, k, v, attn.heads)
            if step.mask is not None:
                ip = ip * step.layer_mask(batch, seq).to(ip)
            out = out + ip
        out = attn.to_out[1](attn.to_out[0](out.to(query.dtype)))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def new_feed(handle) -> Optional[_Feed]:
    """The feed of one sampling run with the model's references (None without)."""
    refs = handle.option("ipadapter")
    return _Feed(len(refs)) if refs else None


@contextlib.contextmanager
def installed(handle, feed: Optional[_Feed]):
    """While active (sampling holds the pipeline's lock), the UNet's cross-attention layers read the model's
    references through `feed`. The UNet's own processors are put back after, so runs without IP-Adapter, and other
    branches, see the model as loaded."""
    refs = handle.option("ipadapter")
    if not refs:
        yield
        return
    if handle.family == "flux":
        with _flux_installed(handle.denoiser, refs, feed):
            yield
        return
    unet = handle.denoiser
    own = unet.attn_processors
    procs = dict(own)
    for i, (name, place) in enumerate(zip(_cross_layers(unet), places(unet))):
        procs[name] = IPAttention(own[name], [r.adapter.layers[i] for r in refs], refs, place, sdxl_unet(handle),
                                  feed)
    unet.set_attn_processor(procs)
    try:
        yield
    finally:
        unet.set_attn_processor(own)


class FluxIPAttention:
    """A FLUX.1 double block's attention: diffusers' FluxIPAdapterAttnProcessor with one to_k_ip / to_v_ip entry per
    picture of every reference, each at its reference's weight / its picture count while active (0 outside its
    start / end): several pictures give the mean of their attention outputs, as x-flux-comfyui's IPProcessor
    averages them. Without an active reference, the block's own processor."""

    def __init__(self, base, layers, refs, feed: _Feed, heads_width: int, context: int, device, dtype, block: int):
        from diffusers.models.transformers.transformer_flux import FluxIPAdapterAttnProcessor
        self.base, self.refs, self.feed, self.context = base, refs, feed, context
        self.weights = [r.weight if r.block_weights is None else r.block_weights[block] for r in refs]
        # (reference, its picture, how many it has, how many tokens each) per entry
        self.entries = [(r, j, n, t) for r in range(len(refs))
                        for t in [int(refs[r].adapter.project.num_image_text_embeds)]
                        for n in [int(refs[r].cond.shape[1]) // t] for j in range(n)]
        self.ip = FluxIPAdapterAttnProcessor(heads_width, context, num_tokens=[1] * len(self.entries), device=device,
                                             dtype=dtype)
        with torch.no_grad():
            for e, (r, *_) in enumerate(self.entries):
                k_w, v_w, k_b, v_b = layers[r]
                for lin, w, b in ((self.ip.to_k_ip[e], k_w, k_b), (self.ip.to_v_ip[e], v_w, v_b)):
                    lin.weight.copy_(w)
                    lin.bias.copy_(b)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        now = self.feed.now
        if encoder_hidden_states is None or all(n is None for n in now):
            return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
        batch = hidden_states.shape[0]
        toks = [None if n is None else n.tokens(batch, False).to(hidden_states.device, hidden_states.dtype)
                for n in now]
        self.ip.scale = [0.0 if now[r] is None else self.weights[r] / n for r, _, n, _ in self.entries]
        states = [hidden_states.new_zeros(batch, 1, self.context) if toks[r] is None else toks[r][:, j * t:(j + 1) * t]
                  for r, j, _, t in self.entries]
        return self.ip(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb,
                       ip_hidden_states=states)


@contextlib.contextmanager
def _flux_installed(transformer, refs, feed: _Feed):
    """installed() for FLUX.1: the double blocks' attention reads the references (the single blocks do not, as in
    XLabs' and diffusers' FLUX.1 IP-Adapter)."""
    own = transformer.attn_processors
    procs = dict(own)
    doubles = [n for n in own if n.startswith("transformer_blocks.")]
    width = int(transformer.transformer_blocks[0].attn.to_q.out_features)
    for i, name in enumerate(doubles):
        procs[name] = FluxIPAttention(own[name], [r.adapter.layers[i] for r in refs], refs, feed, width,
                                      refs[0].adapter.context, transformer.device, transformer.dtype, i)
    transformer.set_attn_processor(procs)
    try:
        yield
    finally:
        transformer.set_attn_processor(own)


def feed_step(feed: Optional[_Feed], handle, conds, negative, sigma: float, level_at, frames: Sequence[int] = (0,),
              hw: Tuple[int, int] = (1, 1)) -> None:
    """Set what the references give this network call over latent frames `frames` (hw: the latent's size): the
    negative conditioning's batch items read uncond tokens, the others cond tokens; a reference outside its
    start/end share of the way is off (ComfyUI's sigma test)."""
    if feed is None:
        return
    for i, ref in enumerate(handle.option("ipadapter")):
        if not level_at(ref.end) <= sigma <= level_at(ref.start):
            feed.now[i] = None
            continue

        def at(t):
            return t[[min(int(f), t.shape[0] - 1) for f in frames]]
        def picked(t):
            return None if t is None else at(t) if ref.per_frame else t
        feed.now[i] = _Step(picked(ref.cond), picked(ref.uncond), tuple(c is negative for c in conds),
                            None if ref.mask is None else at(ref.mask), len(frames), (int(hw[0]), int(hw[1])),
                            picked(ref.layout), None if ref.frame_weights is None else at(ref.frame_weights))


# -- negative pictures (ComfyUI_IPAdapter_plus's IPAdapterNoise) ----------------------------------------------------
NOISE_TYPES = ("fade", "dissolve", "gaussian")


def noise_picture(kind: str, strength: float, blur: int, images: Optional[np.ndarray] = None) -> np.ndarray:
    """uint8 [n, 224, 224, 3]: a picture to give the negative prompt (image_negative) as IPAdapterNoise makes it: the
    images (each cut to its centre square, resized as CLIP's 224) or black, faded to / dissolved into uniform noise
    or with gaussian noise added, at `strength`; seeded by the pictures' sum, so the same pictures give the same
    noise; then blurred (a `blur` x `blur` gaussian, odd sizes)."""
    import torch.nn.functional as F
    if kind not in NOISE_TYPES:
        raise NodeError(f"IP-Adapter noise {kind!r} is not in Kinograph (shuffle needs torchvision's elastic warp); "
                        f"choose {', '.join(NOISE_TYPES)}")
    if images is None:
        image = torch.zeros(1, 224, 224, 3)
    else:
        x = torch.from_numpy(np.ascontiguousarray(images)).float().div(255).permute(0, 3, 1, 2)
        image = _centre_square(x, 224).permute(0, 2, 3, 1)
    gen = torch.Generator().manual_seed(int(torch.sum(image).item()) % 1000000007)
    if kind == "fade":
        out = image * (1 - strength) + torch.rand(image.shape, generator=gen) * strength
    elif kind == "dissolve":
        mask = (torch.rand(image.shape, generator=gen) < strength).float()
        out = image * (1 - mask) + torch.rand(image.shape, generator=gen) * mask
    else:
        out = image + torch.randn(image.shape, generator=gen) * strength
    out = out.clamp(0, 1).permute(0, 3, 1, 2)
    if blur > 0:
        size = blur + 1 - blur % 2
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
        k = torch.exp(-0.5 * (torch.linspace(-(size // 2), size // 2, size) / sigma) ** 2)
        k = k / k.sum()
        out = F.pad(out, (size // 2,) * 4, mode="reflect")
        out = F.conv2d(out.reshape(-1, 1, *out.shape[-2:]), k.view(1, 1, 1, -1))
        out = F.conv2d(out, k.view(1, 1, -1, 1)).reshape(-1, 3, 224, 224)
    return (out.permute(0, 2, 3, 1) * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy()
