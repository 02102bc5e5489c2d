"""IP-Adapter nodes, named as ComfyUI_IPAdapter_plus's: IPAdapterModelLoader, IPAdapterUnifiedLoader, IPAdapter /
IPAdapterAdvanced. The maths and the files: nodes/generate/ipadapter.py."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import EMBEDS, IMAGE_ENCODER, IPADAPTER, MASK, MODEL, VIDEO
from nodes.common.models_dirs import locator
from nodes.generate.ipadapter_presets import COMBINE, EMBEDS_COMBINE, GRADINGS, PRESETS, SCALINGS, WEIGHT_TYPES

_ENCODER_INPUT = Input(optional=True, help="CLIP vision (load.clip_vision); not needed after load.ipadapter with "
                                           "clip_vision")


@node("load.ipadapter", title="Load IP-Adapter", category="Models", device="gpu", outputs={"ipadapter": IPADAPTER})
def load_ipadapter(ctx, name: str = Param("", kind="path", locate=locator("ipadapter"), required=True,
                                          help="file in ipadapter/ (ip-adapter_sd15.safetensors, "
                                               "ip-adapter-plus_sdxl_vit-h.safetensors, h94's .bin ...) or "
                                               "xlabs/ipadapters/ (XLabs' FLUX.1 ip_adapter.safetensors)"),
                   clip_vision: str = Param("", kind="path", locate=locator("clip_vision"),
                                            help="optional: a CLIP vision file in clip_vision/ loaded with it, so "
                                                 "ipadapter.apply needs no image_encoder (as x-flux-comfyui's Load "
                                                 "Flux IPAdapter loads clip_vision_l.safetensors)")):
    """An IP-Adapter file (ComfyUI's IPAdapter Model Loader): plain, plus, plus face and full face adapters for SD 1.5
    (and AnimateDiff) and SDXL, and XLabs' FLUX.1 IP-Adapter (x-flux-comfyui's Load Flux IPAdapter; it reads CLIP
    ViT-L/14, clip_vision_l.safetensors). Feed it to ipadapter.apply with a CLIP vision model from load.clip_vision.
    FaceID adapters, which need InsightFace, are refused by name."""
    from nodes.generate.ipadapter import load_ipadapter as load
    from nodes.generate.model_manager import manager_for
    from nodes.generate.split import load_clip_vision
    mm = manager_for(ctx)
    adapter = load(mm, name)
    return {"ipadapter": adapter.with_encoder(load_clip_vision(mm, clip_vision, "auto", ctx.device)) if clip_vision
            else adapter}


@node("load.ipadapter_preset", title="IP-Adapter Unified Loader", category="Models", device="gpu",
      outputs={"model": MODEL, "ipadapter": IPADAPTER}, passes={"model": "model"})
def load_ipadapter_preset(ctx, model: MODEL,
                          preset: str = Param("PLUS (high strength)", choices=tuple(PRESETS),
                                              help="which adapter, found by ComfyUI's own file-name patterns in "
                                                   "ipadapter/ and clip_vision/")):
    """The IP-Adapter and CLIP vision files ComfyUI's IPAdapterUnifiedLoader picks for a preset and the model's family
    (SD 1.5 or SDXL), by the same names (ip-adapter-plus_sd15.safetensors with CLIP-ViT-H-14-laion2B-s32B-b79K ...).
    The model passes through unchanged."""
    from nodes.generate.ipadapter import load_ipadapter as load, preset_files, sdxl_unet
    from nodes.generate.model_manager import manager_for
    from nodes.generate.split import load_clip_vision
    adapter_file, vision_file = preset_files(preset, "sdxl" if sdxl_unet(model) else "sd")
    mm = manager_for(ctx)
    ctx.log(f"{preset}: {adapter_file.name} with {vision_file.name}")
    return {"model": model, "ipadapter": load(mm, str(adapter_file)).with_encoder(
        load_clip_vision(mm, str(vision_file), "auto", ctx.device))}


@node("ipadapter.apply", title="Apply IP-Adapter", category="Conditioning", device="gpu", passes={"model": "model"})
def ipadapter_apply(ctx, model: MODEL, ipadapter: IPADAPTER, image: VIDEO,
                    image_encoder: IMAGE_ENCODER = Input(optional=True, help="CLIP vision (load.clip_vision); "
                                                         "not needed after load.ipadapter_preset"),
                    mask: MASK = Input(optional=True, help="where in the picture the adapter acts (1), stretched to "
                                                           "it; a clip of masks: one per frame (attn_mask)"),
                    negative_image: VIDEO = Input(optional=True, help="what the negative prompt reads instead of "
                                                                      "nothing (image_negative), e.g. a noisy "
                                                                      "picture to steer away from"),
                    composition_image: VIDEO = Input(optional=True, help="SDXL, weight type (strong) style and "
                                                                         "composition: the layout's own picture, "
                                                                         "`image` giving the style "
                                                                         "(IPAdapterStyleComposition)"),
                    weight: float = Param(1.0, min=-1.0, max=5.0, help="how strongly the images steer; 0 = not at "
                                                                       "all"),
                    weight_type: str = Param("linear", choices=WEIGHT_TYPES,
                                             help="how the weight spreads over the UNet: evenly (linear), rising or "
                                                  "falling through it (ease), weaker in one part (weak), or only "
                                                  "the transformers that carry style or layout (style transfer, "
                                                  "composition ...: SD 1.5 and SDXL's own UNets)"),
                    composition_weight: float = Param(1.0, min=-1.0, max=5.0,
                                                      help="style and composition: the layout transformers' weight "
                                                           "(weight is the style's)"),
                    scaling: str = Param("V only", choices=SCALINGS,
                                         help="what the weight scales (embeds_scaling): the result (V only), the "
                                              "image keys and values (K+V), with the narrow layers weakened "
                                              "(C penalty)"),
                    start: float = Param(0.0, min=0.0, max=1.0, help="share of the way from noise to picture where "
                                                                     "it starts (ComfyUI's start_at)"),
                    end: float = Param(1.0, min=0.0, max=1.0, help="share of the way where it stops (end_at)"),
                    combine: str = Param("concat", choices=COMBINE,
                                         help="several images: concat keeps each (their tokens side by side); the "
                                              "others join their CLIP features first (ComfyUI's combine_embeds)"),
                    per_frame: bool = Param(False, help="one reference per frame: frame i reads image i (the last "
                                                        "image past the end), ComfyUI's IPAdapterBatch for "
                                                        "AnimateDiff"),
                    frame_weights: str = Param("", help="one weight per frame in place of weight, separated by "
                                                        "commas or new lines (1.0, 0.5, 0.0; the last one past the "
                                                        "end): IPAdapterWeights' list into IPAdapterBatch, to fade "
                                                        "a reference in or out")) -> MODEL:
    """Steer an SD 1.5, SDXL or AnimateDiff model with reference images (ComfyUI's IPAdapter / IPAdapter Advanced /
    IPAdapter Batch), or FLUX.1 with XLabs' adapter (x-flux-comfyui's Apply Flux IPAdapter: weight = its ip_scale,
    start / end too; the SD options mask, weight types, scaling and composition are refused): every frame of `image` is one reference (a still connects as one), or, with per_frame, each
    frame's own. Chained, adapters add up (a style one and a face one). The loaded model stays shared: the adapter
    acts only while this branch samples."""
    from nodes.generate.ipadapter import apply_ipadapter, reference, with_frame_weights
    return apply_ipadapter(model, with_frame_weights(reference(
        ipadapter, image_encoder, _frames(image), weight, start, end, combine, weight_type, scaling, _mask(mask),
        _frames(negative_image) if negative_image is not None else (), bool(per_frame), composition_weight,
        _frames(composition_image) if composition_image is not None else ()), frame_weights))


@node("ipadapter.flux_graded", title="Apply FLUX IP-Adapter (graded)", category="Conditioning", device="gpu",
      passes={"model": "model"})
def ipadapter_flux_graded(ctx, model: MODEL, ipadapter: IPADAPTER, image: VIDEO,
                          image_encoder: IMAGE_ENCODER = _ENCODER_INPUT,
                          begin: float = Param(0.0, min=-100.0, max=100.0, help="the weight at the first double "
                                                                                 "block"),
                          end: float = Param(1.0, min=-100.0, max=100.0, help="the weight toward the last one"),
                          grading: str = Param("linear", choices=GRADINGS,
                                               help="how it goes from begin to end over the blocks: evenly, over "
                                                    "the first or the second half only, or along a sigmoid")
                          ) -> MODEL:
    """Steer FLUX.1 with XLabs' IP-Adapter at a weight graded over its double blocks (x-flux-comfyui's Apply Advanced
    Flux IPAdapter): the pictures' CLIP embeddings averaged into one reference, block i at its own weight."""
    import dataclasses
    from graph_engine import NodeError
    from nodes.generate.ipadapter import apply_ipadapter, graded, reference
    if model.family != "flux":
        raise NodeError(f"ipadapter.flux_graded steers FLUX.1 with XLabs' IP-Adapter; this is a {model.family} "
                        "model: use ipadapter.apply (its weight types spread the weight over a UNet)")
    ref = reference(ipadapter, image_encoder, _frames(image), 1.0, 0.0, 1.0, "average")
    return apply_ipadapter(model, dataclasses.replace(ref, block_weights=graded(
        begin, end, grading, len(model.denoiser.transformer_blocks))))


def _frames(clip):
    return [f for _, block in clip.chunks() for f in block]


def _mask(mask):
    from nodes.generate.regions import mask_tensor
    return None if mask is None else mask_tensor(mask)


_ENCODER = Input(optional=True, help="CLIP vision (load.clip_vision); not needed after load.ipadapter_preset")


@node("ipadapter.encode", title="IP-Adapter Encoder", category="Conditioning", device="gpu",
      outputs={"pos_embed": EMBEDS, "neg_embed": EMBEDS})
def ipadapter_encode(ctx, ipadapter: IPADAPTER, image: VIDEO, image_encoder: IMAGE_ENCODER = _ENCODER,
                     mask: MASK = Input(optional=True, help="what CLIP sees of the pictures (1); its centre square "
                                                            "is used, as CLIP crops the pictures"),
                     weight: float = Param(1.0, min=-1.0, max=3.0, help="scales these pictures' features, to weigh "
                                                                        "them against others in combine_embeds")):
    """The CLIP features the IP-Adapter reads from each frame of `image` (ComfyUI's IPAdapterEncoder), and its default
    negative, to weigh, combine (ipadapter.combine_embeds) and apply (ipadapter.apply_embeds)."""
    from nodes.generate.ipadapter import encode
    pos, neg = encode(ipadapter, image_encoder, _frames(image), weight, _mask(mask))
    return {"pos_embed": pos, "neg_embed": neg}


@node("ipadapter.combine_embeds", title="IP-Adapter Combine Embeds", category="Conditioning")
def ipadapter_combine_embeds(ctx, embed1: EMBEDS, embed2: EMBEDS = Input(optional=True),
                             embed3: EMBEDS = Input(optional=True), embed4: EMBEDS = Input(optional=True),
                             embed5: EMBEDS = Input(optional=True),
                             method: str = Param("concat", choices=EMBEDS_COMBINE,
                                                 help="concat keeps each picture (tokens side by side); the others "
                                                      "join them into one (max, min: per feature)")) -> EMBEDS:
    """Join embeddings from ipadapter.encode (ComfyUI's IPAdapterCombineEmbeds)."""
    import torch
    from graph_engine import NodeError
    from nodes.generate.ipadapter import combine
    parts = [e for e in (embed1, embed2, embed3, embed4, embed5) if e is not None]
    if len({tuple(e.shape[1:]) for e in parts}) > 1:
        raise NodeError(f"the embeddings have different shapes ({', '.join(str(tuple(e.shape[1:])) for e in parts)}): "
                        "encode them all with the same IP-Adapter and CLIP vision model")
    return combine(torch.cat(parts), method)


@node("ipadapter.apply_embeds", title="Apply IP-Adapter Embeds", category="Conditioning", device="gpu",
      passes={"model": "model"})
def ipadapter_apply_embeds(ctx, model: MODEL, ipadapter: IPADAPTER, pos_embed: EMBEDS,
                           neg_embed: EMBEDS = Input(optional=True, help="the negative's (none: the adapter's "
                                                                         "default, a black picture's or zeros)"),
                           image_encoder: IMAGE_ENCODER = _ENCODER,
                           mask: MASK = Input(optional=True, help="where in the picture the adapter acts (attn_mask)"),
                           weight: float = Param(1.0, min=-1.0, max=3.0, help="how strongly they steer"),
                           weight_type: str = Param("linear", choices=WEIGHT_TYPES,
                                                    help="how the weight spreads over the UNet (as ipadapter.apply)"),
                           scaling: str = Param("V only", choices=SCALINGS, help="embeds_scaling (as ipadapter.apply)"),
                           start: float = Param(0.0, min=0.0, max=1.0, help="start_at"),
                           end: float = Param(1.0, min=0.0, max=1.0, help="end_at"),
                           per_frame: bool = Param(False, help="one embedding per frame (IPAdapterEmbedsBatch)")
                           ) -> MODEL:
    """Steer the model with embeddings from ipadapter.encode / combine_embeds (ComfyUI's IPAdapterEmbeds), as
    ipadapter.apply does with pictures."""
    from nodes.generate.ipadapter import apply_ipadapter, from_embeds
    return apply_ipadapter(model, from_embeds(ipadapter, image_encoder, pos_embed, neg_embed, weight, start, end,
                                              weight_type, scaling, _mask(mask), bool(per_frame)))


@node("ipadapter.noise", title="IP-Adapter Noise", category="Conditioning")
def ipadapter_noise(ctx, image: VIDEO = Input(optional=True, help="pictures to noise (none: black)"),
                    kind: str = Param("fade", choices=("fade", "dissolve", "gaussian"),
                                      help="fade: blend toward uniform noise; dissolve: replace a share of the "
                                           "pixels with noise; gaussian: add gaussian noise"),
                    strength: float = Param(1.0, min=0.0, max=1.0, help="how much noise"),
                    blur: int = Param(0, min=0, max=32, help="blur after, in pixels (an odd gaussian size)")
                    ) -> VIDEO:
    """A 224 x 224 noise picture for ipadapter.apply's negative_image (ComfyUI's IPAdapterNoise): steering away from
    it, rather than from nothing, often gives a cleaner result. The same pictures always give the same noise."""
    import numpy as np
    from graph_engine import Clip
    from nodes.generate.ipadapter import noise_picture
    frames = None if image is None else np.stack(_frames(image))
    return Clip.from_array(noise_picture(kind, strength, blur, frames))
