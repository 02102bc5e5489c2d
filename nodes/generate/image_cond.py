"""Image-to-video conditioning: CLIP-vision embeddings and pinned first/last frames."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from graph_engine import Clip, NodeError
from nodes.generate.adapters import get_adapter
from nodes.generate.latent import Conditioning, Latent


def _pil(image: np.ndarray):
    from PIL import Image
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise NodeError("expected an RGB image (H x W x 3 uint8)")
    return Image.fromarray(np.ascontiguousarray(image))


def encode_image(image_encoder, image: np.ndarray, crop: str = "center") -> Conditioning:
    """crop "center": the encoder's square from the middle of the image (its processor's resize and crop);
    "none": the whole image squeezed into that square, as ComfyUI's CLIPVisionEncode crop=none."""
    if image_encoder is None:
        raise NodeError("this model has no image encoder; image prompts need an image-to-video model "
                        "(SVD, Wan i2v, HunyuanVideo i2v), or load.clip_vision's (SigLIP, "
                        "sigclip_vision_patch14_384.safetensors, for FLUX.1 Redux)")
    if crop not in ("center", "none"):
        raise NodeError(f"unknown crop {crop!r}; choose center or none")
    adapter = get_adapter(image_encoder.family)
    pipe = image_encoder.pipe
    pil = _pil(image)
    if getattr(adapter, "crops_itself", False):         # ComfyUI's clip_preprocess in torch, either crop (Hunyuan3D)
        with torch.inference_mode():
            embeds = adapter.encode_image(pipe, pil, pipe.image_encoder.device, crop=crop)
        return Conditioning(image_encoder.family, embeds.cpu(), prompts=("<image>",), meta={"kind": "image"})
    if crop == "none":
        from PIL import Image
        proc = getattr(pipe, "image_processor", None) or getattr(pipe, "feature_extractor", None)
        side = (getattr(proc, "crop_size", None) or {}).get("height")
        if side:
            pil = pil.resize((int(side), int(side)), Image.BICUBIC)
    with torch.inference_mode():
        embeds = adapter.encode_image(pipe, pil, pipe.image_encoder.device)
        extra = _projected(pipe, pil)
    return Conditioning(image_encoder.family, embeds.cpu(), prompts=("<image>",), meta={"kind": "image"}, extra=extra)


def _projected(pipe, pil) -> dict:
    """{"clip_image_embeds": [1, P]}: the picture's projected CLIP embedding (the pooled output through
    visual_projection, ComfyUI's CLIPVisionEncode image_embeds), which unCLIP (SDXL revision) reads, where the
    model has the projection; {} otherwise."""
    enc = pipe.image_encoder
    # the CLIP processor load.clip_vision gives the file (an SVD pipeline's image_processor is its VAE's, and SVD
    # prepares its pictures itself)
    proc = getattr(pipe, "image_processor", None)
    if not hasattr(enc, "visual_projection") or not hasattr(proc, "crop_size"):
        return {}
    px = proc(images=pil, return_tensors="pt").pixel_values.to(enc.device, enc.dtype)
    return {"clip_image_embeds": enc(pixel_values=px).image_embeds.float().cpu()}


def condition_frames(vae, positive: Conditioning, negative: Optional[Conditioning], latent: Latent,
                     first: Optional[np.ndarray], last: Optional[np.ndarray],
                     image_embeds: Optional[Conditioning], motion: int = 127, noise_aug: float = 0.02,
                     tracks=None, method: str = "ati", temperature: float = 220.0, topk: int = 2,
                     strength: float = 1.0, text_encoder=None, guide: Optional[np.ndarray] = None,
                     guide_frame: int = 0):
    """(positive, negative) carrying the frames the video must start (and end) with; tracks steer Wan ATI or
    Wan-Move models (nodes.motion.wan_tracks); `text_encoder` reads positive's prompt again after the frames'
    pictures (MiniMax H3); `guide` is pinned at `guide_frame` after the frames positive holds (MiniMax H3)."""
    if first is None and last is None and guide is None:
        raise NodeError("condition.frames needs a first frame (and optionally a last frame)")
    adapter = get_adapter(vae.family)
    if not hasattr(adapter, "frame_condition"):
        raise NodeError(f"{vae.family} models take no frame conditioning in Kinograph; image-to-video works with "
                        "SVD and Wan image-to-video models")
    if tracks is not None and vae.family != "wan":
        raise NodeError(f"tracks steer Wan ATI and Wan-Move models; a {vae.family} model takes none: leave tracks "
                        "unconnected")
    if tracks is not None and (first is None or last is not None):
        raise NodeError("tracks steer from the first frame only: connect first, and leave last unconnected")
    if guide is not None and not hasattr(adapter, "guide_condition"):
        raise NodeError(f"guide pins a picture at any frame of a MiniMax H3 video; a {vae.family} model takes "
                        "first and last: connect the picture to first or last instead")
    with torch.inference_mode():
        extra, meta = {}, {}
        if first is not None or last is not None:
            extra, meta = adapter.frame_condition(vae.pipe, latent, _pil(first) if first is not None else None,
                                                  _pil(last) if last is not None else None, image_embeds,
                                                  motion=motion, noise_aug=noise_aug)
        if guide is not None:
            extra, meta = adapter.guide_condition(vae.pipe, latent, positive, extra, meta, _pil(guide), guide_frame)
        neg_extra = extra
        if tracks is not None:
            extra, neg_extra = _steer(extra, tracks, latent, method, temperature, topk, strength)
    if text_encoder is not None and (first is not None or last is not None):     # guides are not read with it
        if not hasattr(adapter, "read_with_pictures"):
            raise NodeError(f"{vae.family} models read no prompt with their frames: leave condition.frames' "
                            "text_encoder unconnected (MiniMax H3 reads one)")
        with torch.inference_mode():
            positive = adapter.read_with_pictures(text_encoder, positive, latent,
                                                  *(None if k is None else _pil(k) for k in (first, last)))
    pos = positive.with_extra(**extra).with_meta(**meta)
    neg = None if negative is None else negative.with_extra(**neg_extra).with_meta(**meta)
    return {"positive": pos, "negative": neg}


def _steer(extra: dict, tracks, latent: Latent, method: str, temperature: float, topk: int, strength: float):
    """(positive's, negative's) extra inputs with the tracks applied to Wan's i2v concat (4 mask channels, then
    the frames' latents): ATI moves features and weights the mask, in both; Wan-Move moves features, in the
    positive only, as its authors' pipeline."""
    from nodes.motion.wan_tracks import ati_condition, wanmove_condition
    concat = extra["concat"]
    mask, z = concat[0, :4], concat[0, 4:]
    try:
        if method == "ati":
            z, weights = ati_condition(z, tracks, latent.width, latent.height, temperature, topk)
            steered = torch.cat([weights.expand_as(mask), z])[None]
            return {**extra, "concat": steered}, {**extra, "concat": steered}
        if method == "wan_move":
            z = wanmove_condition(z, tracks, latent.width, latent.height, strength)
            return {**extra, "concat": torch.cat([mask, z])[None]}, extra
    except ValueError as e:
        raise NodeError(str(e)) from None
    raise NodeError(f"unknown track method {method!r}; choose ati or wan_move")


def condition_camera(vae, positive: Conditioning, negative: Optional[Conditioning], latent: Latent, camera,
                     first: Optional[np.ndarray], image_embeds: Optional[Conditioning]):
    """(positive, negative) carrying a camera path (Plücker rays at the latent's size and length) and the
    start frame, for camera-control models (Wan Fun camera)."""
    adapter = get_adapter(vae.family)
    if not hasattr(adapter, "camera_condition"):
        raise NodeError(f"{vae.family} models take no camera conditioning in Kinograph; Wan Fun camera-control "
                        "models do")
    rays = None
    if camera is not None:
        from nodes.motion.embed import plucker_wan
        try:
            rays = torch.from_numpy(plucker_wan(camera, latent.frames, latent.width, latent.height))[None]
        except ValueError as e:
            raise NodeError(str(e)) from None
        if rays.shape[2] != latent.samples.shape[2]:
            raise NodeError(f"the camera gives {rays.shape[2]} latent frames for {latent.frames} frames but the "
                            f"latent has {latent.samples.shape[2]}; make the latent with this model's VAE")
    with torch.inference_mode():
        extra = adapter.camera_condition(vae.pipe, latent, _pil(first) if first is not None else None, image_embeds,
                                         rays)
    pos = positive.with_extra(**extra)
    neg = None if negative is None else negative.with_extra(**extra)
    return {"positive": pos, "negative": neg}


def condition_fun_control(vae, positive: Conditioning, negative: Optional[Conditioning], latent: Latent,
                          control: Optional[Clip], first: Optional[np.ndarray], image_embeds: Optional[Conditioning],
                          reference: Optional[np.ndarray] = None):
    """(positive, negative) carrying a control video (edges, depth, pose), the start frame and (Wan 2.2) a reference
    image, for Wan Fun Control models (ComfyUI's WanFunControlToVideo, Wan22FunControlToVideo). The control video's
    first `latent.frames` frames steer; a shorter one leaves the rest free."""
    adapter = get_adapter(vae.family)
    if not hasattr(adapter, "fun_control_condition"):
        raise NodeError(f"{vae.family} models take no Fun Control conditioning; Wan Fun Control models do")
    if control is None and first is None and reference is None:
        raise NodeError("condition.fun_control needs a control video (or at least a start frame or reference image)")
    frames = None
    if control is not None:
        from nodes.generate.vae_ops import check_fits
        n = min(control.length, latent.frames)
        check_fits(f"Fun Control's {n} control frames at {latent.width}x{latent.height} as pictures",
                   (n, latent.height, latent.width, 3))
        frames = [_pil(f) for f in control.frames(0, n)]
    with torch.inference_mode():
        extra = adapter.fun_control_condition(vae.pipe, latent, frames, _pil(first) if first is not None else None,
                                              image_embeds, _pil(reference) if reference is not None else None)
    pos = positive.with_extra(**extra)
    neg = None if negative is None else negative.with_extra(**extra)
    return {"positive": pos, "negative": neg}


def condition_control_image(vae, positive: Conditioning, negative: Optional[Conditioning], control: Clip,
                            check=lambda: None, progress=None):
    """(positive, negative, latent) for FLUX.1 Depth and Canny (ComfyUI's InstructPixToPixConditioning): both
    conditionings carry the control picture's latent as the transformer's extra channels (its depth map or edges,
    frame by frame for a clip), and the latent to sample is an empty one of its size."""
    from dataclasses import replace
    from nodes.generate.vae_ops import encode_clip
    if vae.family != "flux":
        raise NodeError(f"condition.control_image feeds FLUX.1 Depth and Canny models; this is a {vae.family} VAE: "
                        "load FLUX.1's ae.safetensors (for other models use control.apply with a ControlNet)")
    latent = encode_clip(vae, control, check, progress)
    concat = latent.samples[:1].float()
    pos = positive.with_extra(concat=concat)
    neg = None if negative is None else negative.with_extra(concat=concat)
    return {"positive": pos, "negative": neg, "latent": replace(latent, samples=torch.zeros_like(latent.samples))}
