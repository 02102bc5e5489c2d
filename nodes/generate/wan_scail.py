"""SCAIL and SCAIL-2 (zai-org's character animation on Wan 2.1 I2V-14B; ComfyUI's SCAILWanModel / SCAIL2WanModel in
comfy/ldm/wan/model.py, Comfy-Org/SCAIL-2's wan2.1_14B_SCAIL_2_*.safetensors): a character from a reference image
moved as a driving pose video moves, or put in place of the person in it (replacement mode).

The file is the Wan 2.1 i2v transformer reading 20 channels (the noise and a 4-channel history mask: 1 on frames
held from a previous clip) plus `patch_embedding_pose` (the pose video's latent, 16 channels and 4 of ones) and, in
SCAIL-2, `patch_embedding_mask`: 28 channels of per-identity colour masks (7 colours x 4 frames of a latent frame)
whose embedding is added to the reference's and the video's tokens (`ref_mask`) and to the pose tokens (`sam`).

The tokens, in order: the reference frame(s) (their latent and 4 channels of ones), the video, then the pose video's
patches at half the size. The reference and video read rotary positions as one clip (the reference first); the pose
tokens sit at the video's frames, spread over the video's rows and columns (a half-size patch at 0.5, 2.5, ...) and
120 columns to the right. In replacement mode (SCAIL-2, ref_mask_flag False) the reference instead sits 120 rows
down and the video starts at the reference's last frame. The pose tokens leave before the head, the reference frames
after it."""
from __future__ import annotations

import torch
from torch import nn

from graph_engine import NodeError
from nodes.generate.rope_scale import grid_freqs
from nodes.generate.wan_animate2 import _attend, _block
from nodes.generate.weights import take_parts

PARTS = ("patch_embedding_pose.", "patch_embedding_mask.")
POSE_COLUMNS = 120.0        # ComfyUI's w-offset of the pose tokens (and, replacement mode, h-offset of the reference)
MASK_CHANNELS = 28
NOT_SCAIL = ("condition.wan_scail (ComfyUI's WanSCAILToVideo) feeds SCAIL models (wan2.1_14B_SCAIL*.safetensors, "
             "which hold patch_embedding_pose); this Wan model is not one")
NOT_SCAIL2 = ("these colour masks (pose_video_mask, reference_image_mask) are read by SCAIL-2 models "
              "(wan2.1_14B_SCAIL_2_*.safetensors, which hold patch_embedding_mask); this is SCAIL-Preview: leave "
              "the masks unconnected or load SCAIL-2")
NEEDS_SCAIL = ("a SCAIL model takes its reference image and pose video through condition.wan_scail (ComfyUI's "
               "WanSCAILToVideo)")
NEEDS_TOKENS = ("SCAIL also reads the reference's CLIP image tokens: connect encode.image of the reference "
                "(load.clip_vision with clip_vision_h.safetensors) to condition.wan_scail's image_embeds")
WINDOWED = ("SCAIL samples its clip in one pass, the reference and pose tokens beside it: remove context.windows; for "
            "a longer video chain condition.wan_scail nodes, each given the last one's frames (previous_frames)")


def parts(state: dict) -> dict:
    """SCAIL's pose (and SCAIL-2's mask) patch embeddings, taken out of a Wan file's `state`."""
    return take_parts(state, lambda k: k.startswith(PARTS), ("patch_embedding_pose.weight",),
                      "this SCAIL file lacks part of its pose patch embedding")


def attach(transformer, state: dict):
    """Give an i2v WanTransformer3DModel SCAIL's patch embeddings, sized from `state`'s tensors."""
    for name in ("patch_embedding_pose", "patch_embedding_mask"):
        w = state.get(name + ".weight")
        if w is not None:
            k = tuple(int(s) for s in w.shape[2:])
            transformer.add_module(name, nn.Conv3d(int(w.shape[1]), int(w.shape[0]), k, stride=k))
    return transformer


def is_scail(transformer) -> bool:
    return isinstance(getattr(transformer, "patch_embedding_pose", None), nn.Conv3d)


def is_scail2(transformer) -> bool:
    return isinstance(getattr(transformer, "patch_embedding_mask", None), nn.Conv3d)


def _tokens(conv, x):
    return conv(x.to(conv.weight.dtype)).flatten(2).transpose(1, 2)


def _rope(model, video: tuple, ref_frames: int, pose: tuple | None, replacement: bool):
    """(cos, sin) of the tokens in order: `ref_frames` reference frames and the video (`video`: its latent frames,
    rows, columns in patches), then the pose video's patches (`pose`), as ComfyUI's SCAILWanModel.rope_encode."""
    f, h, w = video
    rope = model.rope
    parts = []
    if replacement:
        start = max(ref_frames - 1, 0)
        if ref_frames:
            parts.append(grid_freqs(rope, ref_frames, h, w, (1.0, 0.0, 1.0, POSE_COLUMNS, 1.0, 0.0)))
        parts.append(grid_freqs(rope, f, h, w, (1.0, 0.0, 1.0, 0.0, 1.0, float(start))))
    else:
        start = ref_frames
        parts.append(grid_freqs(rope, ref_frames + f, h, w))
    if pose is not None:
        fp, hp, wp = pose
        # ComfyUI's scale is the latent's size over the pose latent's (h / H_pose), patches spread to cover the
        # same span, the first at the midpoint (scale - 1) / 2
        sy, sx = h / hp, w / wp
        parts.append(grid_freqs(rope, fp, hp, wp, (sx, POSE_COLUMNS + (sx - 1) / 2, sy, (sy - 1) / 2, 1.0,
                                                   float(start))))
    return tuple(torch.cat([p[k] for p in parts], 1) for k in range(2))


def forward(model, x, t, text, image=None, reference=None, pose=None, ref_mask=None, sam=None,
            replacement: bool = False):
    """SCAIL's prediction for x [B, 20, F, H, W] (the noise and the 4-channel history mask) at timesteps t [B].

    text: the prompt's tokens; image: the reference's CLIP tokens [B, 257, 1280]; reference [B, 20, R, H, W]: the
    reference's latent frame(s) and 4 channels of ones; pose [B, 20, F, H/2, W/2]: the pose video's latent and 4 of
    ones; ref_mask [B, 28, R + F, H, W] and sam [B, 28, F, H/2, W/2]: SCAIL-2's colour masks of the reference (zeros
    over the video) and of the driving video; replacement: SCAIL-2's replacement mode (ComfyUI's ref_mask_flag
    False; SCAIL-Preview has none)."""
    cfg = model.config
    _, ph, pw = cfg.patch_size
    b, _, frames, hh, ww = x.shape
    for name, v in (("latent", x), ("pose video's latent", pose)):
        if v is not None and (v.shape[-2] % ph or v.shape[-1] % pw):
            raise NodeError(f"SCAIL's {name} is {v.shape[-1]}x{v.shape[-2]}, which its {pw}x{ph} patches do not "
                            "tile: use a width and height divisible by 32")
    if x.shape[1] != cfg.in_channels:
        raise NodeError(f"this SCAIL model reads {cfg.in_channels} channels but its input gives {x.shape[1]}: make "
                        "the conditioning with condition.wan_scail")
    if (ref_mask is not None or sam is not None) and not is_scail2(model):
        raise NodeError(NOT_SCAIL2)
    # replacement mode is SCAIL-2's: SCAIL-Preview (ComfyUI's SCAILWanModel) places its tokens one way in either mode
    replacement = replacement and is_scail2(model)
    for v, half in ((reference, 1), (ref_mask, 1), (pose, 2), (sam, 2)):
        if v is not None and tuple(v.shape[-2:]) != (hh // half, ww // half):
            size = (v.shape[-1] * half * 8, v.shape[-2] * half * 8)
            raise NodeError(f"the latent is {ww * 8}x{hh * 8} but condition.wan_scail made its inputs for "
                            f"{size[0]}x{size[1]}: sample the latent condition.wan_scail gives (or set its width and "
                            "height to this latent's)")
    gh, gw = hh // ph, ww // pw
    ref_frames = 0 if reference is None else reference.shape[2]
    video = torch.cat([reference.to(x), x], 2) if reference is not None else x
    h = model.patch_embedding(video)
    if ref_mask is not None:
        h = h + model.patch_embedding_mask(ref_mask.to(h.dtype))
    h = h.flatten(2).transpose(1, 2)
    posed = 0
    if pose is not None:
        hp = _tokens(model.patch_embedding_pose, pose)
        if sam is not None:
            hp = hp + _tokens(model.patch_embedding_mask, sam).to(hp.dtype)
        posed = hp.shape[1]
        h = torch.cat([h, hp.to(h.dtype)], 1)
    h = h.contiguous()
    pose_grid = None if pose is None else (pose.shape[2], pose.shape[3] // ph, pose.shape[4] // pw)
    rope = tuple(r.to(h.device, torch.float32) for r in _rope(model, (frames, gh, gw), ref_frames, pose_grid,
                                                              replacement))
    temb, proj, ctx, img = model.condition_embedder(t, text, image)
    proj = proj.unflatten(1, (6, -1))
    for block in model.blocks:
        h = _block(block, h, proj, rope, ctx, img, _attend)[0]
    shift, scale = (model.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
    h = model.proj_out((model.norm_out(h.float()) * (1 + scale) + shift).type_as(h))
    if posed:
        h = h[:, :-posed]
    h = h.reshape(b, ref_frames + frames, gh, gw, 1, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return h.flatten(6, 7).flatten(4, 5).flatten(2, 3)[:, :, ref_frames:]
