"""Reference latents: pictures an edit model (FLUX.1 Kontext) reads beside the noise, as extra tokens of the
sequence the transformer attends over, never denoised and dropped from its output (ComfyUI's ReferenceLatent,
diffusers' FluxKontextPipeline). They ride in a conditioning (extra["reference0"], ["reference1"], ...; their
placement in meta["reference_method"]), so every prompt of a combination reads them, as ComfyUI sets them on each.

A reference of one frame serves every frame of the generated latent; a clip gives frame i its own frame i (a clip edited frame by frame, each frame from its source frame)."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

from graph_engine import NodeError
from nodes.generate.latent import Conditioning, Latent

# Black Forest Labs' sizes Kontext was trained at (their flux/util.py; ComfyUI's FluxKontextImageScale)
KONTEXT_SIZES = ((672, 1568), (688, 1504), (720, 1456), (752, 1392), (800, 1328), (832, 1248), (880, 1184),
                 (944, 1104), (1024, 1024), (1104, 944), (1184, 880), (1248, 832), (1328, 800), (1392, 752),
                 (1456, 720), (1504, 688), (1568, 672))
# offset: each further reference beside the last (ComfyUI's default); index: each on its own position plane;
# uxo: beside the generated image itself (UNO / USO); index_timestep_zero: index, the references read as clean
# (timestep zero; Qwen-Image-Edit-2511's)
METHODS = ("offset", "index", "uxo", "index_timestep_zero")
_KEY = "reference"


def kontext_size(width: int, height: int) -> Tuple[int, int]:
    """The trained size whose shape is nearest this picture's (the first of equals, as min() finds it)."""
    aspect = width / height
    _, w, h = min((abs(aspect - w / h), w, h) for w, h in KONTEXT_SIZES)
    return w, h


def add_reference(cond: Conditioning, latent: Latent) -> Conditioning:
    """`cond` with `latent` as one more reference."""
    if latent.samples.shape[0] != 1:
        raise NodeError(f"the reference latent holds {latent.samples.shape[0]} pictures side by side in a batch; give "
                        "one picture (or one clip) per condition.reference")
    n = len(references(cond))
    return cond.with_extra(**{f"{_KEY}{n}": latent.samples.float()})


def with_method(cond: Conditioning, method: str) -> Conditioning:
    if method not in METHODS:
        raise NodeError(f"method={method!r}: choose one of {', '.join(METHODS)}")
    return cond.with_meta(reference_method=method)


def references(cond: Conditioning) -> List[torch.Tensor]:
    """The conditioning's reference latents [1, C, T, h, w], in the order they were added."""
    out = []
    while f"{_KEY}{len(out)}" in cond.extra:
        out.append(cond.extra[f"{_KEY}{len(out)}"])
    return out


def reference_rows(conds: Sequence[Conditioning], frames: Sequence[int], batch: int, default: str = "offset"):
    """The references of a batched call, one [rows, C, h, w] per reference, its rows in the order the network's
    batch has them (conditioning, then batch item, then frame), and the placement method (`default`, the model's
    own, where none was set). Every conditioning of one call must hold references of the same sizes: their tokens
    are one sequence."""
    per_cond = [references(c) for c in conds]
    shapes = {tuple(tuple(r.shape[-2:]) for r in refs) for refs in per_cond}
    if len(shapes) > 1:
        raise NodeError("the prompts sampled together hold different reference pictures (condition.reference on "
                        "one and not the other, or of other sizes): give each the same references")
    methods = {c.meta.get("reference_method", default) for c in conds}
    if len(methods) > 1:
        raise NodeError(f"the prompts sampled together place their references differently ({', '.join(methods)}): "
                        "set one method on both")
    idx = torch.as_tensor([int(f) for f in frames])
    rows = []
    for k in range(len(per_cond[0])):
        rows.append(torch.cat([_frames(refs[k], idx) for refs in per_cond for _ in range(batch)]))
    return rows, methods.pop()


def _frames(r: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """A reference [1, C, T, h, w] for the generated frames `idx`: [frames, C, h, w], a picture serving them all, a
    clip giving each its own frame."""
    t = r.shape[2]
    if t > 1 and int(idx.max()) >= t:
        raise NodeError(f"the reference clip has {t} frames and frame {int(idx.max())} is generated from it: give "
                        "one picture, or a clip as long as the generated one")
    return r[0, :, idx if t > 1 else torch.zeros_like(idx)].permute(1, 0, 2, 3)


def row_references(conds: Sequence[Conditioning], frames: Sequence[int], batch: int, device, dtype
                   ) -> List[List[torch.Tensor]]:
    """Each row's own references ([1, C, h, w] each, in their order), rows as the network's batch has them
    (conditioning, then batch item, then frame): for models run row by row, whose prompts may hold different
    references, as ComfyUI samples such conditionings apart (OmniGen2's DualCFGGuider: the instruction and the
    negative with the picture, the negative alone without it)."""
    idx = torch.as_tensor([int(f) for f in frames])
    rows = []
    for c in conds:
        per_frame = [_frames(r, idx).to(device, dtype) for r in references(c)]
        rows += [[r[j:j + 1] for r in per_frame] for _ in range(batch) for j in range(len(idx))]
    return rows


def with_indexed_references(out: dict, conds: Sequence[Conditioning], frames: Sequence[int], batch: int, device,
                            dtype) -> dict:
    """A network's inputs with "references": the conditionings' reference latents, one [rows, C, h, w] each, for
    models that tell the pictures apart by their order and run the rows together (FLUX.2's and FLUX.3's layers,
    JoyImage Edit); Boogu and OmniGen2, run row by row, take row_references."""
    refs, _ = reference_rows(conds, frames, batch, default="index")
    if refs:
        out["references"] = [r.to(device, dtype) for r in refs]
    return out


def text_and_references(conds: Sequence[Conditioning], frames: Sequence[int], batch: int, device, dtype, reads: int,
                        what: str) -> dict:
    """A masked prompt checked to be `reads` wide (adapters.base.text_of_width) and the indexed references."""
    from nodes.generate.adapters.base import text_of_width
    out = text_of_width(conds, frames, batch, device, dtype, reads, what)
    return with_indexed_references(out, conds, frames, batch, device, dtype)


def add_references(vae, positive: Conditioning, negative, pictures: Sequence, megapixels=None,
                   check=lambda: None, progress=None, latent=None, text_encoder=None, area=None):
    """(positive, negative, latent) of ComfyUI's ReferenceMultiLatent: each picture (resized to about `megapixels`
    million pixels, keeping its shape, where given) encoded on its own and added, in order, to both prompts as one
    more reference; the negative is the positive where none is given; the latent is the first reference's, zeroed
    (the picture made is the first reference's size). With the video `latent` (MiniMax H3's reference-to-video), see
    _read_references."""
    from nodes.generate.vae_ops import encode_clip, fit_to_grid
    from nodes.video import edit
    if not pictures:
        raise NodeError("condition.references needs at least one picture: connect the pictures to edit to image, "
                        "image2, ...")
    from nodes.generate.adapters import get_adapter
    if latent is not None or text_encoder is not None or hasattr(get_adapter(vae.family), "reference_latents"):
        return _read_references(vae, positive, negative, pictures, latent, text_encoder, area)
    latents = []
    for clip in pictures:
        if megapixels is not None:
            clip = edit.comfy_resize(clip, *edit.pixel_count_size(clip.width, clip.height, megapixels), "area")
        latents.append(encode_clip(vae, fit_to_grid(vae, clip)[0], check, progress))
    for latent in latents:
        positive = add_reference(positive, latent)
        negative = None if negative is None else add_reference(negative, latent)
    first = latents[0]
    empty = Latent(torch.zeros_like(first.samples), first.family, first.frames, first.fps, first.width, first.height)
    return positive, positive if negative is None else negative, empty


def _read_references(vae, positive: Conditioning, negative, pictures: Sequence, latent, text_encoder, area):
    """A model that reads reference pictures beside the video it makes (MiniMax H3's ref2va): each picture sized and
    encoded by the model's own rule (its adapter's reference_latents, scaled down to `area` pixels or its own limit)
    and added to both prompts as a reference; with `text_encoder` the positive prompt is read again after the
    pictures. The latent is the video's, passed on."""
    from PIL import Image
    from nodes.generate.adapters import get_adapter
    adapter = get_adapter(vae.family)
    if not hasattr(adapter, "reference_latents"):
        raise NodeError(f"condition.references' latent, text_encoder and resolution match are for MiniMax H3's "
                        f"reference-to-video; a {vae.family} VAE takes the pictures alone: leave them unconnected")
    if latent is None:
        raise NodeError("MiniMax H3 reads its reference pictures beside the video it makes: connect latent.empty's "
                        "latent (the MiniMax H3 video VAE, 17n+5 frames) to condition.references' latent")
    if any(p.length != 1 for p in pictures):
        raise NodeError("MiniMax H3's reference videos are not read yet: give condition.references pictures (one "
                        "frame each), e.g. a frame of the video through video.trim")
    with torch.inference_mode():
        read = adapter.reference_latents(vae.pipe, latent, [Image.fromarray(p.frame(0)) for p in pictures], area)
    for _, z in read:
        ref = Latent(z, latent.family, 1, latent.fps, z.shape[-1] * 16, z.shape[-2] * 16)
        positive = add_reference(positive, ref)
        negative = None if negative is None else add_reference(negative, ref)
    if text_encoder is not None:
        with torch.inference_mode():
            positive = adapter.read_after(text_encoder, positive, [pic for pic, _ in read])
    return positive, positive if negative is None else negative, latent
