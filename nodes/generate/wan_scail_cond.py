"""SCAIL's conditioning (ComfyUI's WanSCAILToVideo and SCAIL2ColoredMask, comfy_extras/nodes_scail.py): what
nodes/generate/wan_scail.py's forward reads, made from a reference image, a pose video, SCAIL-2's colour masks of
who is where, and the last frames of a previous clip.

SCAIL-2's masks: each tracked person painted one colour of a fixed palette (blue, red, green, magenta, cyan,
yellow: the colours the model was trained on), the same person the same colour in the reference and the driving
video; the background black or white by mode. The model reads them as 7 binary colour channels (white, red, green,
blue, yellow, magenta, cyan; a channel is on above 225/255) averaged over 8 x 8 pixels, 4 frames to a latent frame
(the first frame 4 times) - 28 channels."""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.generate.handles import need_wan_vae
from nodes.generate.latent import Conditioning

PALETTE = ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0), (1.0, 1.0, 0.0))
ON = 225.0 / 255.0


def fit(frames: torch.Tensor, width: int, height: int, mode: str) -> torch.Tensor:
    """[T, H, W, C] cropped about the centre to width:height and resized by `mode` (ComfyUI's common_upscale with
    crop "center": area for the pose video, bicubic for pictures, nearest-exact for masks)."""
    t, h, w, _ = frames.shape
    old, new = w / h, width / height
    x = round((w - w * (new / old)) / 2) if old > new else 0
    y = round((h - h * (old / new)) / 2) if old < new else 0
    s = frames[:, y:h - y, x:w - x].permute(0, 3, 1, 2).float()
    return F.interpolate(s, size=(height, width), mode=mode).permute(0, 2, 3, 1)


def order(masks: torch.Tensor, sort_by: str) -> list:
    """The objects of masks [T, N, H, W] (bool) in colour order: those appearing in earlier frames first; within a
    frame left to right by centroid, or biggest first (`area`), where each first appears; `none`: as given."""
    n = masks.shape[1]
    if sort_by == "none":
        return list(range(n))
    t, w = masks.shape[0], masks.shape[-1]
    # Counted from the bool masks, never a float copy of the clip (that and its product with x were 8 times the
    # masks: 2.4 GB for 81 frames of 720p with 4 people). Integer sums are exact; ComfyUI's float32 ones are too
    # below 2^24, and past it only a tie within their rounding could order otherwise.
    # numpy's sum casts a buffer at a time (torch's sum of bool casts the whole clip to int64 first)
    columns = torch.from_numpy(masks.numpy().sum(axis=-2, dtype=np.int64))     # [T, N, W] pixels on, a column
    area_t = columns.sum(dim=-1).double()
    cx_t = (columns.double() * torch.arange(w, dtype=torch.float64)).sum(dim=-1) / area_t.clamp(min=1)
    first = torch.where(area_t > 0, torch.arange(t).unsqueeze(1), t).amin(dim=0)
    at = first.clamp(max=t - 1).unsqueeze(0)
    cx, area = cx_t.gather(0, at)[0].tolist(), area_t.gather(0, at)[0].tolist()
    first = first.tolist()
    key = (lambda i: (first[i], cx[i])) if sort_by == "left_to_right" else (lambda i: (first[i], -area[i]))
    return sorted(range(n), key=key)


def picked(masks: torch.Tensor, sort_by: str, indices: str) -> list:
    """Which objects of masks [T, N, H, W] are painted, in colour order: sorted (order) and, when `indices` lists
    some ('0,2'), only those (after sorting). Indices, not masks: a copy of the clip's masks is not needed."""
    ranked = order(masks, sort_by) if masks.shape[1] else []
    if indices.strip():
        keep = [int(i.strip()) for i in indices.split(",") if i.strip().isdecimal()]
        ranked = [ranked[i] for i in keep if 0 <= i < len(ranked)]
    return ranked


def painted(masks: torch.Tensor, white: bool) -> torch.Tensor:
    """[T, H, W, 3] in [0, 1]: object k of masks [T, N, H, W] (bool) in palette colour k (the first object on top
    where they overlap), the rest black or white."""
    t, n, h, w = masks.shape
    bg = torch.full((1, 1, 1, 3), float(white))
    if n == 0:
        return bg.expand(t, h, w, 3).clone()
    colours = torch.tensor([PALETTE[i % len(PALETTE)] for i in range(n)])
    over = colours[masks.to(torch.uint8).argmax(dim=1)]
    return torch.where(masks.any(dim=1).unsqueeze(-1), over, bg.expand_as(over))


def mask_channels(rgb: torch.Tensor) -> torch.Tensor:
    """Colour masks [T, H, W, 3] in [0, 1] -> SCAIL-2's [1, 28, (T - 1) // 4 + 1, H/8, W/8] (sizes rounded up)."""
    t, h, w, _ = rgb.shape
    r, g, b = ((rgb[..., i] > ON).float().unsqueeze(1) for i in range(3))
    nr, ng, nb = 1 - r, 1 - g, 1 - b
    seven = torch.cat([r * g * b, r * ng * nb, nr * g * nb, nr * ng * b, r * g * nb, r * ng * b, nr * g * b], 1)
    for _ in range(3):
        h, w = (h + 1) // 2, (w + 1) // 2
    seven = F.interpolate(seven, size=(h, w), mode="area")
    frames = (t - 1) // 4 + 1
    padded = torch.cat([seven[:1].repeat(4, 1, 1, 1), seven[1:]], 0)[:frames * 4]
    return padded.reshape(frames, 28, h, w).movedim(1, 0)[None]


def strengthened(z: torch.Tensor, strength: float) -> torch.Tensor:
    """The normalised latent z of a VAE latent scaled by `strength` before it is normalised, as ComfyUI scales the
    pose's (vae.encode(...) * pose_strength, then the model's process_latent_in): strength 0 is the VAE's zero
    latent, not Kinograph's zero."""
    from nodes.generate.adapters.wan import zero_latent
    return z * strength + zero_latent(z.shape) * (1.0 - strength)


def _picture(image) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(image)[..., :3])).float()[None] / 255.0


def scail_condition(vae, positive: Conditioning, negative: Optional[Conditioning], width: int, height: int,
                    length: int, pose=None, pose_mask=None, replacement: bool = False, pose_strength: float = 1.0,
                    pose_start: float = 0.0, pose_end: float = 1.0, reference=None, reference_mask=None,
                    image_embeds: Optional[Conditioning] = None, offset: int = 0, previous_count: int = 5,
                    previous=None) -> dict:
    """positive / negative carrying SCAIL's inputs, the latent to sample (its first frames held from `previous`'s
    last `previous_count` when given) and the driving video's frame where the next clip starts (`offset`), as
    ComfyUI's WanSCAILToVideo makes them."""
    from nodes.generate.wan_animate import AnimateClip, _rgb01
    need_wan_vae(vae, "condition.wan_scail")
    if pose_start > pose_end:
        raise NodeError(f"the pose steers from {pose_start} of the way, after it stops ({pose_end}): give a "
                        "pose_start no greater than pose_end")
    if width % 32 or height % 32:
        raise NodeError(f"SCAIL reads its pose video at half the size in 2 x 2 patches: {width}x{height} is not "
                        "a multiple of 32 each way; use e.g. 512x896")
    c = AnimateClip(vae, "SCAIL", None, width, height, length)
    latent = c.latent(c.frames)
    extra, held = {}, 0
    with torch.inference_mode():
        if previous is not None and previous.length > 0:
            prev = _rgb01(previous, max(0, previous.length - previous_count), previous.length)
            offset = max(0, offset - prev.shape[0])
            z = c.encode(fit(prev, width, height, "bicubic"))
            held = min(z.shape[2], c.frames)
            samples = latent.samples.clone()
            samples[:, :, :held] = z[:, :, :held]
            mask = torch.ones(1, 1, c.frames, c.h, c.w)
            mask[:, :, :held] = 0.0
            latent = replace(latent, samples=samples, mask=mask)
        if reference is not None:
            ref = fit(_picture(reference), width, height, "bicubic")
            if replacement and reference_mask is not None:
                matte = fit(_picture(reference_mask), width, height, "nearest-exact")
                ref = ref * (matte[..., :3].amax(dim=-1, keepdim=True) > 0.1).to(ref.dtype)
            z = c.encode(ref)
            extra["scail_reference"] = torch.cat([z, torch.ones_like(z[:, :4])], 1)
        pose_frames = pose_masks = None
        if pose is not None and pose.length > offset:
            pose_frames = _rgb01(pose, offset, min(pose.length, offset + length))
        if pose_mask is not None and pose_mask.length > offset:
            pose_masks = _rgb01(pose_mask, offset, min(pose_mask.length, offset + length))
        kept = [v.shape[0] for v in (pose_frames, pose_masks) if v is not None]
        if kept:
            n = (min(min(kept), length) - 1) // 4 * 4 + 1
            if pose_frames is not None:
                z = strengthened(c.encode(fit(pose_frames[:n], width // 2, height // 2, "area")), pose_strength)
                extra["scail_pose"] = torch.cat([z, torch.ones_like(z[:, :4])], 1)
            if pose_masks is not None:
                extra["scail_sam"] = mask_channels(fit(pose_masks[:n], width // 2, height // 2, "area"))
        if reference_mask is not None and reference is not None:
            one = mask_channels(fit(_picture(reference_mask), width, height, "nearest-exact"))
            extra["scail_ref_mask"] = torch.cat([one, one.new_zeros(1, 28, c.frames, *one.shape[-2:])], 2)
    if image_embeds is not None:
        extra["image_embeds"] = image_embeds.embeds
    meta = {"scail_frames": c.frames, "scail_replacement": bool(replacement),
            "scail_pose_window": (float(pose_start), float(pose_end))}
    pos = positive.with_extra(**extra).with_meta(**meta)
    neg = None if negative is None else negative.with_extra(**extra).with_meta(**meta)
    return {"positive": pos, "negative": neg, "latent": latent, "offset": offset + length}


def scail_inputs(conds, frames, batch: int, device, dtype) -> dict:
    """forward's SCAIL inputs for one model call, per conditioning and batch item, plus the share of the way from
    noise the pose steers over (`pose_window`) and the mode."""
    from nodes.generate.wan_scail import WINDOWED
    last = conds[-1]
    idx, made = [int(i) for i in frames], last.meta["scail_frames"]
    if idx and max(idx) >= made:
        raise NodeError(f"the latent has {max(idx) + 1} latent frames but condition.wan_scail made {made}: sample "
                        "the latent condition.wan_scail gives (or set its frames to this latent's)")
    if idx != list(range(made)):
        raise NodeError(WINDOWED)
    out = {"replacement": bool(last.meta.get("scail_replacement", False)),
           "pose_window": tuple(last.meta.get("scail_pose_window", (0.0, 1.0)))}
    for key, name in (("scail_reference", "reference"), ("scail_pose", "pose"), ("scail_ref_mask", "ref_mask"),
                      ("scail_sam", "sam")):
        if key in last.extra:
            out[name] = torch.cat([c.extra.get(key, last.extra[key]) for c in conds for _ in range(batch)]).to(
                device, dtype)
    return out
