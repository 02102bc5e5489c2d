"""FLUX.1 Redux: a picture as prompt tokens. SigLIP reads the picture (encode.image with
sigclip_vision_patch14_384), Redux lifts its tokens to T5-XXL's width and they are appended to the prompt's, as
ComfyUI's StyleModelApply appends them and diffusers' FluxPriorReduxPipeline hands them to FluxPipeline.

strength_type multiply scales the tokens; attn_bias leaves them and adds log(strength) to the attention the prompt's
and the picture's tokens pay them, kept (as ComfyUI keeps it) as a bias over the text tokens plus one stand-in for
every image token, spread over the image when the model runs."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch

from graph_engine import NodeError
from nodes.generate.handles import ComponentHandle
from nodes.generate.latent import Conditioning
from nodes.generate.redux_nodes import STRENGTH_TYPES

REDUX_PIPELINE = "FluxPriorReduxPipeline"
WHERE = ("FLUX.1 Redux is flux1-redux-dev.safetensors in style_models/ (or black-forest-labs/FLUX.1-Redux-dev's "
         "diffusers folder)")


def redux_folder(path: Path) -> bool:
    from nodes.generate.model_manager import read_index
    return Path(path).is_dir() and read_index(path).get("_class_name") == REDUX_PIPELINE


def find(name: str, kind: str, what: str) -> Path:
    """A file in `kind`'s folders, or a FLUX.1-Redux-dev diffusers folder there or in diffusers/."""
    from nodes.generate.model_manager import resolve_model_path
    try:
        return resolve_model_path(name, kind, what)
    except NodeError:
        try:
            found = resolve_model_path(name, "diffusers", what)
        except NodeError:
            found = None
        if found is None or not redux_folder(found):
            raise
        return found


def _pipe(**parts):
    from diffusers import FluxPriorReduxPipeline
    return FluxPriorReduxPipeline(**{"image_encoder": None, "feature_extractor": None, "image_embedder": None,
                                     **parts})


def load_style_model(mm, name: str, device: str) -> ComponentHandle:
    """Redux from flux1-redux-dev.safetensors (ComfyUI's StyleModelLoader) or from a FLUX.1-Redux-dev folder's
    image_embedder."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import dtype_of
    from nodes.generate.split import _module
    path = find(name, "style_models", "style model")
    _, dtype = dtype_of("auto", "flux", device)
    if path.is_dir():
        if not redux_folder(path):
            raise NodeError(f"{path} is a folder but not FLUX.1 Redux's (its model_index.json does not name "
                            f"{REDUX_PIPELINE}). {WHERE}")

        def build():
            from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
            return _pipe(image_embedder=ReduxImageEncoder.from_pretrained(
                str(path / "image_embedder"), torch_dtype=dtype, local_files_only=True).to(device))
        files = tuple(sorted((path / "image_embedder").glob("*")))
    else:
        det = detect_file(path)
        if det.role != "style_model":
            raise NodeError(f"{path.name} is {det.describe() or 'no model Kinograph knows'}, not a style model. "
                            f"{WHERE}")
        build, files = (lambda: _pipe(image_embedder=_module(path, det, dtype, device))), (path,)
    pipe = mm.cached(("style_model", str(path.resolve()), str(dtype), device), build, files=files)
    return ComponentHandle("flux", str(path), pipe, "image_embedder", device)


def load_siglip_folder(path: Path, dtype, device: str):
    """The SigLIP of a FLUX.1-Redux-dev folder (image_encoder/, feature_extractor/) as load.clip_vision's pipe."""
    import json
    from transformers import SiglipVisionModel
    module = SiglipVisionModel.from_pretrained(str(path / "image_encoder"), dtype=dtype,
                                               local_files_only=True).to(device)
    cfg = json.loads((path / "feature_extractor" / "preprocessor_config.json").read_text(encoding="utf-8"))
    return _pipe(image_encoder=module, feature_extractor=siglip_processor(
        int(module.config.image_size), cfg.get("image_mean"), cfg.get("image_std")))


def siglip_processor(size: int, mean=None, std=None):
    """SigLIP's preprocessing (scaled to [-1, 1]) with ComfyUI's CLIPVisionEncode crop: the shorter side to `size`,
    then the middle square (encode.image crop none squeezes the whole picture into the square first, which is
    what SiglipImageProcessor does)."""
    from transformers import CLIPImageProcessor
    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                              image_mean=mean or [0.5] * 3, image_std=std or [0.5] * 3, do_convert_rgb=True)


def siglip_pipe(module):
    return _pipe(image_encoder=module, feature_extractor=siglip_processor(int(module.config.image_size)))


def apply_style(conditioning: Conditioning, style_model, image: Conditioning, strength: float = 1.0,
                strength_type: str = "multiply") -> Conditioning:
    """ComfyUI's StyleModelApply: the picture's Redux tokens after each prompt's (each of a combined one's)."""
    if style_model is None or getattr(style_model.pipe, "image_embedder", None) is None:
        raise NodeError(f"condition.style_model needs the Redux model: connect load.style_model. {WHERE}")
    if strength_type not in STRENGTH_TYPES:
        raise NodeError(f"unknown strength_type {strength_type!r}; choose multiply or attn_bias")
    if conditioning.family != "flux":
        raise NodeError(f"FLUX.1 Redux adds its tokens to a FLUX.1 prompt; this conditioning is "
                        f"{conditioning.family}'s. Encode the prompt with FLUX.1's text encoders")
    embedder = style_model.pipe.image_embedder
    want = int(embedder.config.redux_dim)
    if image is None or image.meta.get("kind") != "image" or image.embeds.shape[-1] != want:
        got = "no image embedding" if image is None or image.meta.get("kind") != "image" else \
            f"an image embedding {image.embeds.shape[-1]} wide"
        raise NodeError(f"Redux reads SigLIP's {want}-wide picture tokens; its image input has {got}. Give it "
                        "encode.image of the picture with load.clip_vision of sigclip_vision_patch14_384.safetensors")
    p = next(embedder.parameters())
    with torch.inference_mode():
        tokens = embedder(image.embeds.to(p.device, p.dtype)).image_embeds.float().cpu()
    tokens = tokens.flatten(0, 1)[None]
    if strength_type == "multiply":
        tokens = tokens * strength
    if strength_type == "attn_bias" and strength < 0:
        raise NodeError(f"strength {strength} with attn_bias: the bias is log(strength), so it must be 0 (the "
                        "picture ignored) or more; multiply takes negative strengths")
    bias = 0.0
    if strength_type == "attn_bias":
        bias = math.log(strength) if strength > 0 else -math.inf
    out = [_append(e, tokens, bias, bias != 0.0) for e in (replace(conditioning, parts=()), *conditioning.parts)]
    return replace(out[0], parts=tuple(out[1:]))


def _append(cond: Conditioning, tokens: torch.Tensor, bias: float, biased: bool) -> Conditioning:
    if tokens.shape[-1] != cond.embeds.shape[-1]:
        raise NodeError(f"this Redux gives {tokens.shape[-1]}-wide tokens but the prompt's are "
                        f"{cond.embeds.shape[-1]} wide (T5-XXL's 4096 for FLUX.1): the Redux and the text "
                        "encoder belong to different models. Encode the prompt with FLUX.1's (t5xxl with clip_l)")
    from nodes.generate.regions import concat
    out = concat(cond, Conditioning(cond.family, tokens))
    old = cond.extra.get("attention_bias")
    # As ComfyUI: once there is a bias, every further Redux widens it, even at no bias of its own.
    if biased or old is not None:
        out = out.with_extra(attention_bias=widen_bias(old, cond.embeds.shape[1], tokens.shape[1], bias))
    return out


def widen_bias(old, n_txt: int, n: int, bias: float) -> torch.Tensor:
    """ComfyUI's StyleModelApply mask, [text + 1, text + 1] (the last row and column stand for every image token):
    room for n new tokens after the n_txt text tokens, which the text's and the image's tokens attend to with
    `bias`; the new tokens themselves attend as before."""
    if old is None:
        old = torch.zeros(n_txt + 1, n_txt + 1)
    new = torch.zeros(n_txt + n + 1, n_txt + n + 1)
    new[:n_txt, :n_txt] = old[:n_txt, :n_txt]
    new[:n_txt, n_txt + n:] = old[:n_txt, n_txt:]
    new[n_txt + n:, :n_txt] = old[n_txt:, :n_txt]
    new[n_txt + n:, n_txt + n:] = old[n_txt:, n_txt:]
    new[:n_txt, n_txt:n_txt + n] = bias
    new[n_txt + n:, n_txt:n_txt + n] = bias
    return new


def spread_bias(bias: torch.Tensor, n_image: int) -> torch.Tensor:
    """[B, T + 1, T + 1] -> [B, 1, T + n_image, T + n_image]: the stand-in row and column for each image token, the
    mask the transformer's joint attention adds (text first, then the image, as FLUX.1 orders them)."""
    t = bias.shape[-1] - 1
    idx = torch.cat([torch.arange(t), torch.full((n_image,), t)]).to(bias.device)
    return bias[:, idx][:, :, idx][:, None]
