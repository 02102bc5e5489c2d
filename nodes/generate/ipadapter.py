"""IP-Adapter (Ye et al. 2023; h94/IP-Adapter, as ComfyUI_IPAdapter_plus runs it): reference images steer SD 1.5, SDXL
and AnimateDiff through a second key/value pair in every cross-attention layer, read from image tokens instead of the
prompt's: out = attention(q, k_text, v_text) + weight * attention(q, to_k_ip(tokens), to_v_ip(tokens)).

Files as users have them: `image_proj.*` (the projection of CLIP vision features into tokens) and `ip_adapter.*`
(`1.to_k_ip.weight`, `1.to_v_ip.weight`, `3.to_k_ip.weight` ...: one pair per cross-attention layer, numbered as
diffusers' attn_processors list them, odd numbers), flat in a .safetensors or nested in h94's .bin. The plain
adapter projects CLIP's pooled, projected image embedding into 4 tokens; "plus" runs a Resampler over the penultimate
hidden states (16 tokens); "full face" an MLP over them. The projection modules are diffusers' own, built by its
conversion code. The processors are installed on the shared UNet for one sampling run only (`installed`), under the
pipeline's lock, and the UNet's own come back after it, so a run without IP-Adapter is unchanged."""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.ipadapter_presets import CLIP_VIT_G, CLIP_VIT_H, COMBINE, PRESETS

FACEID = ("it reads a face identity from InsightFace (a separate face-recognition model, with a LoRA of its own), "
          "which Kinograph does not run. Use ip-adapter-plus-face (PLUS FACE) with a crop of the face instead")


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
        return {768: "an SD 1.5", 2048: "an SDXL"}.get(self.context, f"a {self.context}-wide")

    def with_encoder(self, encoder) -> "IPAdapter":
        return IPAdapter(self.name, self.kind, self.project, self.layers, encoder)


def _refusal(proj: dict, ip: dict, name: str) -> Optional[str]:
    """Why this IP-Adapter variant cannot run here, by name (None: it can)."""
    if "0.to_q_lora.down.weight" in ip or "perceiver_resampler.proj_in.weight" in proj or \
            ("proj.2.weight" in proj and "proj.3.weight" not in proj):
        return f"{name} is an IP-Adapter FaceID model: {FACEID}"
    out = proj.get("layers.0.0.to_out.weight")
    if out is not None and int(out.shape[0]) == 2048:
        return f"{name} is the Kolors IP-Adapter, for Kwai's Kolors model, which Kinograph does not run"
    return None


def read_ipadapter(path: Path) -> IPAdapter:
    """The adapter in an IP-Adapter file (.safetensors with image_proj./ip_adapter. keys, or h94's .bin)."""
    from diffusers.loaders.unet import UNet2DConditionLoadersMixin
    from nodes.generate.weights import load_weights, strip_prefix
    state = load_weights(path, torch.float32)
    proj, ip = strip_prefix(state, "image_proj."), strip_prefix(state, "ip_adapter.")
    if not ip or not proj:
        raise NodeError(f"{path.name} is not an IP-Adapter file: it has no image_proj.* and ip_adapter.* tensors "
                        "(ip-adapter_sd15.safetensors, ip-adapter-plus_sdxl_vit-h.safetensors ... from h94/IP-Adapter)")
    why = _refusal(proj, ip, path.name)
    if why:
        raise NodeError(why)
    kind = "full" if "proj.3.weight" in proj else "plus" if "latents" in proj else "plain" if "proj.weight" in proj \
        else None
    if kind is None:
        raise NodeError(f"{path.name} holds an IP-Adapter projection Kinograph does not know (image_proj keys "
                        f"{sorted(proj)[:4]})")
    numbers = sorted(int(m.group(1)) for k in ip for m in [re.match(r"^(\d+)\.to_k_ip\.weight$", k)] if m)
    if not numbers or numbers != list(range(1, 2 * len(numbers), 2)) or \
            any(f"{n}.to_v_ip.weight" not in ip for n in numbers):
        raise NodeError(f"{path.name}: its ip_adapter layers are not numbered 1, 3, 5 ... with a to_k_ip and a to_v_ip "
                        "each; the file is damaged or another kind of adapter")
    try:
        # diffusers' own conversion of the published keys into its projection modules (plain, Resampler, MLP).
        project = UNet2DConditionLoadersMixin._convert_ip_adapter_image_proj_to_diffusers(None, proj,
                                                                                           low_cpu_mem_usage=False)
    except (RuntimeError, KeyError) as exc:
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
    [1, tokens, context], and over which share of the steps they act (ComfyUI's start_at / end_at)."""
    adapter: IPAdapter
    cond: torch.Tensor
    uncond: torch.Tensor
    weight: float
    start: float = 0.0
    end: float = 1.0


def _vision(encoder):
    """(CLIP vision module, its image processor) of an IMAGE_ENCODER handle."""
    pipe = getattr(encoder, "pipe", None)
    module = getattr(pipe, "image_encoder", None)
    proc = getattr(pipe, "image_processor", None) or getattr(pipe, "feature_extractor", None)
    if module is None or proc is None or not hasattr(module.config, "patch_size"):
        raise NodeError("IP-Adapter reads a CLIP vision model (ViT-H: CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors, or "
                        "ViT-bigG for ip-adapter_sdxl): load it with load.clip_vision")
    return module, proc


def clip_features(adapter: IPAdapter, encoder, images: Sequence[np.ndarray]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(features of the images, of the negative) as the adapter reads them, ComfyUI's way: the plain adapter the
    pooled, projected embedding (negative: zeros), the others the penultimate hidden states (negative: those of a
    black picture)."""
    from PIL import Image
    module, proc = _vision(encoder)
    pixels = proc(images=[Image.fromarray(np.ascontiguousarray(i)) for i in images], return_tensors="pt").pixel_values
    pixels = pixels.to(module.device, module.dtype)
    with torch.inference_mode():
        if adapter.kind == "plain":
            if not hasattr(module, "visual_projection"):
                raise NodeError(f"{adapter.name} reads CLIP's projected image embedding, and this CLIP vision file has "
                                "no visual_projection: use the full CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
            feats = module(pixel_values=pixels).image_embeds.float()
            neg = torch.zeros_like(feats[:1])
        else:
            side = int(pixels.shape[-1])
            black = proc(images=[Image.new("RGB", (side, side))], return_tensors="pt").pixel_values
            feats = module(pixel_values=pixels, output_hidden_states=True).hidden_states[-2].float()
            neg = module(pixel_values=black.to(pixels), output_hidden_states=True).hidden_states[-2].float()
    wants = _feature_width(adapter)
    if feats.shape[-1] != wants:
        raise NodeError(f"{adapter.name} reads CLIP vision features {wants} wide and this CLIP vision model gives "
                        f"{feats.shape[-1]}: ViT-H (1024 projected, 1280 hidden) goes with the _sd15 and _vit-h "
                        "adapters, ViT-bigG (1280 projected, 1664 hidden) with ip-adapter_sdxl and _vit-G")
    return feats.cpu(), neg.cpu()


def _feature_width(adapter: IPAdapter) -> int:
    p = adapter.project
    if adapter.kind == "plain":
        return int(p.image_embeds.in_features)
    if adapter.kind == "plus":
        return int(p.proj_in.in_features)
    return int(p.ff.net[0].proj.in_features)


def combine(feats: torch.Tensor, how: str) -> torch.Tensor:
    """Several reference images' features as ComfyUI's combine_embeds joins them before the projection ("concat"
    keeps each image, whose tokens then stand side by side)."""
    if how not in COMBINE:
        raise NodeError(f"unknown combine {how!r}; choose one of {', '.join(COMBINE)}")
    if how == "concat" or feats.shape[0] == 1:
        return feats
    if how == "add":
        return feats.sum(0, keepdim=True)
    if how == "subtract":
        return (feats[0] - feats[1:].mean(0))[None]
    if how == "average":
        return feats.mean(0, keepdim=True)
    return (feats / feats.norm(dim=0, keepdim=True)).mean(0, keepdim=True)


def tokens(adapter: IPAdapter, feats: torch.Tensor) -> torch.Tensor:
    """[1, images x tokens, context]: each image's tokens, side by side (as diffusers lays several images out)."""
    with torch.inference_mode():
        out = adapter.project(feats.to(next(adapter.project.parameters()).dtype))
    return out.reshape(1, -1, out.shape[-1]).float()


def reference(adapter: IPAdapter, encoder, images: Sequence[np.ndarray], weight: float, start: float, end: float,
              how: str = "concat") -> Reference:
    if not images:
        raise NodeError("ipadapter.apply needs at least one reference image")
    if not 0.0 <= start < end <= 1.0:
        raise NodeError(f"the IP-Adapter's start ({start}) must come before its end ({end}), both between 0 (the first "
                        "step) and 1 (the last)")
    encoder = encoder if encoder is not None else adapter.encoder
    if encoder is None:
        raise NodeError("ipadapter.apply needs a CLIP vision model: connect load.clip_vision to its image_encoder "
                        "input (or load the adapter with load.ipadapter_preset, which finds one)")
    feats, neg = clip_features(adapter, encoder, images)
    feats = combine(feats, how)
    return Reference(adapter, tokens(adapter, feats), tokens(adapter, neg.expand(feats.shape[0], *neg.shape[1:])),
                     float(weight), float(start), float(end))


def apply_ipadapter(model, ref: Reference):
    """The model with one more IP-Adapter: chained, they add up (ComfyUI's stacked IPAdapter nodes)."""
    if model.family not in ("sd", "sdxl", "animatediff"):
        raise NodeError(f"IP-Adapter works with Stable Diffusion 1.5, SDXL and AnimateDiff models, not {model.family}")
    cross = _cross_layers(model.denoiser)
    if len(cross) != len(ref.adapter.layers) or ref.adapter.context != model.denoiser.config.cross_attention_dim:
        raise NodeError(f"{ref.adapter.name} is {ref.adapter.title} IP-Adapter ({len(ref.adapter.layers)} "
                        f"cross-attention layers, {ref.adapter.context} wide) and this {model.family} model has "
                        f"{len(cross)} ({model.denoiser.config.cross_attention_dim} wide): use the IP-Adapter made for "
                        "the model's family (_sd15 files for SD 1.5 and AnimateDiff, _sdxl for SDXL)")
    return model.with_option("ipadapter", (model.option("ipadapter") or ()) + (ref,))


# -- sampling --------------------------------------------------------------------------------------------------------
def _cross_layers(unet) -> List[str]:
    """The UNet's cross-attention processors in the order IP-Adapter files number them (diffusers'
    _convert_ip_adapter_attn_to_diffusers: attn_processors' order, without self-attention and motion modules)."""
    return [n for n in unet.attn_processors if not n.endswith("attn1.processor") and "motion_modules" not in n]


class _Feed:
    """What the installed processors read during one network call: per reference, the tokens of each batch item's
    conditioning [len(conds), T, D] and its weight, or None where it does not act at this step."""

    def __init__(self, count: int):
        self.now: List[Optional[Tuple[torch.Tensor, float]]] = [None] * count


class IPAttention:
    """A cross-attention processor computing diffusers' IPAdapterAttnProcessor2_0 for the text and every active
    reference; without an active one it is the UNet's own processor."""

    def __init__(self, base, layers, feed: _Feed):
        self.base, self.layers, self.feed = base, layers, feed

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        active = [(w, now) for w, now in zip(self.layers, self.feed.now) if now is not None]
        if not active or encoder_hidden_states is None:
            return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        import torch.nn.functional as F
        if attn.spatial_norm is not None or attn.group_norm is not None or attn.norm_cross or \
                hidden_states.ndim != 3 or attention_mask is not None:
            raise NodeError("IP-Adapter met a cross-attention layer of a kind it does not patch (normed or masked)")
        residual = hidden_states
        batch = hidden_states.shape[0]
        query = attn.to_q(hidden_states)
        heads = attn.heads
        width = query.shape[-1] // heads

        def split(t):
            return t.view(t.shape[0], -1, heads, width).transpose(1, 2)
        q = split(query)
        out = F.scaled_dot_product_attention(q, split(attn.to_k(encoder_hidden_states)),
                                             split(attn.to_v(encoder_hidden_states)))
        for (k_ip, v_ip), (toks, weight) in active:
            toks = toks.to(query.device, query.dtype).repeat_interleave(batch // toks.shape[0], dim=0)
            ip = F.scaled_dot_product_attention(q, split(F.linear(toks, k_ip.to(query))),
                                                split(F.linear(toks, v_ip.to(query))))
            out = out + weight * ip
        out = out.transpose(1, 2).reshape(batch, -1, heads * width).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
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
    unet = handle.denoiser
    own = unet.attn_processors
    cross = _cross_layers(unet)
    procs = dict(own)
    for i, name in enumerate(cross):
        procs[name] = IPAttention(own[name], [r.adapter.layers[i] for r in refs], feed)
    unet.set_attn_processor(procs)
    try:
        yield
    finally:
        unet.set_attn_processor(own)


def feed_step(feed: Optional[_Feed], handle, conds, negative, sigma: float, level_at) -> None:
    """Set what the references give this network call: the negative conditioning's batch items read uncond tokens,
    the others cond tokens; a reference outside its start/end share of the way is off (ComfyUI's sigma test)."""
    if feed is None:
        return
    for i, ref in enumerate(handle.option("ipadapter")):
        if level_at(ref.end) <= sigma <= level_at(ref.start):
            feed.now[i] = (torch.cat([ref.uncond if c is negative else ref.cond for c in conds]), ref.weight)
        else:
            feed.now[i] = None
