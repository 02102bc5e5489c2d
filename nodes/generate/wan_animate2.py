"""Wan Animate 2 (Wan-Video's Wan-Animate-2, ComfyUI's WanAnimate2ToVideo and comfy/ldm/wan/model_animate2.py): a
character (the reference image) moved as a driving video moves, with no pose or face encoders of its own.

The model file is Wan 2.1 I2V-14B's tensors and nothing more: only its `config` metadata (model_type animate2) tells
it apart, as in ComfyUI. What differs is the forward. A second, pose branch runs the very same blocks over the driving
video's latents (at timestep 1, with its own prompt and CLIP tokens); each block's self-attention over the generated
video then reads, for latent frame j, every generated token plus the pose branch's keys and values of driving frame
j - 1. Frame 0 of the latent is the reference image's slot (kept, mask 1), which condition.wan_animate2 puts in front,
as condition.wan_animate does for Wan 2.2 Animate. The pose tokens' rotary positions start at frame 1 and sit one
latent width to the right (ComfyUI's shift_x), a strip of their own.

ComfyUI's WanAnimate2Cache keeps the pose branch's block inputs between steps: the branch reads nothing that changes
with the step, so the cache saves time (its int8/int4 storage rounds them); here the branch is rerun each step."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.generate.handles import need_wan_vae
from nodes.generate.latent import Conditioning
from nodes.generate.vace import cover
from nodes.generate.wan_animate import AnimateClip, _from, _held, continued

NOT_ANIMATE2 = ("condition.wan_animate2 feeds Wan Animate 2 models (wan_animate_2_*.safetensors, whose config "
                "metadata says model_type animate2); this Wan model is not one")
NEEDS_TOKENS = ("Wan Animate 2 also reads the reference's CLIP image tokens: connect encode.image of the reference "
                "(load.clip_vision with clip_vision_h.safetensors) to condition.wan_animate2's image_embeds")
WINDOWED = ("Wan Animate 2 samples its clip in one pass, the reference frame in front: remove context.windows; for a "
            "longer video chain condition.wan_animate2 nodes, each continuing the last (continue_motion, offset)")


def is_animate2(model) -> bool:
    return bool(getattr(model.config, "animate2", False))


def animate2_condition(vae, positive: Conditioning, negative: Optional[Conditioning], width: int, height: int,
                       length: int, reference: Optional[np.ndarray] = None, pose=None,
                       image_embeds: Optional[Conditioning] = None, pose_text: Optional[Conditioning] = None,
                       pose_image_embeds: Optional[Conditioning] = None, continue_motion=None, offset: int = 0,
                       pose_strength: float = 1.0, reference_strength: float = 1.0, pose_start: float = 0.0,
                       pose_end: float = 1.0) -> dict:
    """positive/negative carrying Wan Animate 2's inputs (both the same pose inputs: the pose branch never reads the
    negative prompt), the latent to sample (the reference frame in front: drop it with latent.trim, amount 1), how
    many frames of the decoded clip repeat the continued clip (`trim_image`) and the driving video's frame where the
    next clip starts (`offset`)."""
    need_wan_vae(vae, "condition.wan_animate2")
    if pose_start > pose_end:
        raise NodeError(f"the pose branch starts at {pose_start} of the way, after it ends ({pose_end}): give a "
                        "pose_start no greater than pose_end")
    c = AnimateClip(vae, "Wan Animate 2", reference, width, height, length)
    # ComfyUI's WanAnimate2ToVideo continues from the previous clip's last frame (CONTINUE_MOTION_FRAMES = 1)
    kept, offset = continued(c.video, continue_motion, 1, offset) if continue_motion is not None else (0, offset)
    encode = c.encode
    with torch.inference_mode():
        concat = torch.cat([encode(c.ref), encode(c.video)], dim=2)
        pose_z = None if pose is None else \
            encode(cover(_held(_from(pose, offset, length, "pose video"), length), width, height))
    mask = torch.zeros(1, 4, c.frames + 1, c.h, c.w)
    mask[:, :, :1 + kept] = 1                       # the reference frame and the continued frame are kept
    extra = {"concat": torch.cat([mask, concat], dim=1)}
    if image_embeds is not None:
        extra["image_embeds"] = image_embeds.embeds
    if pose_z is not None:
        extra["animate2_pose"] = pose_z
        extra["animate2_text"] = (pose_text if pose_text is not None else positive).embeds[:1]
        tokens = pose_image_embeds if pose_image_embeds is not None else image_embeds
        if tokens is not None:
            extra["animate2_image"] = tokens.embeds
    meta = {"animate2": True, "animate2_pose_strength": float(pose_strength),
            "animate2_reference_strength": float(reference_strength),
            "animate2_pose_window": (float(pose_start), float(pose_end))}
    pos = positive.with_extra(**extra).with_meta(**meta)
    neg = None if negative is None else negative.with_extra(**extra).with_meta(**meta)
    return {"positive": pos, "negative": neg, "latent": c.latent(c.frames + 1), "trim_image": kept,
            "offset": offset + length}


def animate2_inputs(conds, frames, batch: int, device, dtype) -> dict:
    """The pose branch's inputs for one model call, per conditioning and batch item: the driving video's latents, its
    prompt's and CLIP tokens, the two strengths (forward's keywords) and the share of the way from noise the branch
    runs over (`pose_window`, for posed())."""
    total = conds[-1].extra["concat"].shape[2]
    if [int(i) for i in frames] != list(range(total)):
        raise NodeError(WINDOWED)
    meta = conds[-1].meta
    out = {"pose_strength": float(meta.get("animate2_pose_strength", 1.0)),
           "reference_strength": float(meta.get("animate2_reference_strength", 1.0)),
           "pose_window": tuple(meta.get("animate2_pose_window", (0.0, 1.0)))}
    for key, name in (("animate2_pose", "pose"), ("animate2_text", "pose_text"), ("animate2_image", "pose_image")):
        if key in conds[-1].extra:
            out[name] = torch.cat([c.extra.get(key, conds[-1].extra[key]) for c in conds
                                   for _ in range(batch)]).to(device, dtype)
    return out


def posed(inputs: dict, sigma: float, to_sigma) -> dict:
    """forward's keywords at noise level `sigma`: without the pose branch outside its window (ComfyUI's
    pose_start_percent / pose_end_percent, through the model's percent_to_sigma `to_sigma`), as ComfyUI's window
    leaves the pose inputs off its conditioning there."""
    start, end = inputs["pose_window"]
    out = {k: v for k, v in inputs.items() if k != "pose_window"}
    if not to_sigma(end) <= sigma <= to_sigma(start):
        for k in ("pose", "pose_text", "pose_image"):
            out.pop(k, None)
    return out


# --- the forward, on diffusers' WanTransformer3DModel's modules ---------------------------------------------------
def _rope_at(model, t0: int, frames: int, h: int, w: int, w0: int):
    """The rotary (cos, sin) [1, frames*h*w, 1, head] of a grid whose frames start at `t0` and columns at `w0`."""
    rope = model.rope
    if t0 + frames > rope.max_seq_len or w0 + w > rope.max_seq_len:
        raise NodeError(f"Wan Animate 2's pose tokens sit {w0 + w} patches across, past this model's "
                        f"{rope.max_seq_len} rotary positions: use a smaller width")
    split = [rope.t_dim, rope.h_dim, rope.w_dim]

    def grid(table):
        ft, fh, fw = table.split(split, dim=1)
        return torch.cat([ft[t0:t0 + frames].view(frames, 1, 1, -1).expand(frames, h, w, -1),
                          fh[:h].view(1, h, 1, -1).expand(frames, h, w, -1),
                          fw[w0:w0 + w].view(1, 1, w, -1).expand(frames, h, w, -1)], -1).reshape(1, -1, 1, ft.shape[1]
                                                                                                 + fh.shape[1]
                                                                                                 + fw.shape[1])
    return grid(rope.freqs_cos), grid(rope.freqs_sin)


def _rotate(v, cos, sin):
    pairs = v.unflatten(-1, (-1, 2))
    x1, x2 = pairs[..., 0], pairs[..., 1]
    c, s = cos[..., 0::2].to(v.device), sin[..., 1::2].to(v.device)
    return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], -1).flatten(-2).type_as(v)


def _attend(q, k, v):
    """[B, L, H, D] attention -> [B, L, H * D]."""
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2) \
        .flatten(2)


def _self_qkv(attn, x, rope):
    q = attn.norm_q(attn.to_q(x)).unflatten(2, (attn.heads, -1))
    k = attn.norm_k(attn.to_k(x)).unflatten(2, (attn.heads, -1))
    return _rotate(q, *rope), _rotate(k, *rope), attn.to_v(x).unflatten(2, (attn.heads, -1))


def _cross(attn, x, text, image):
    """Wan's i2v cross-attention: the text's and the CLIP tokens' attention, summed."""
    q = attn.norm_q(attn.to_q(x)).unflatten(2, (attn.heads, -1))
    out = _attend(q, attn.norm_k(attn.to_k(text)).unflatten(2, (attn.heads, -1)),
                  attn.to_v(text).unflatten(2, (attn.heads, -1)))
    if image is not None:
        out = out + _attend(q, attn.norm_added_k(attn.add_k_proj(image)).unflatten(2, (attn.heads, -1)),
                            attn.add_v_proj(image).unflatten(2, (attn.heads, -1)))
    return attn.to_out[0](out)


def _block(block, x, temb, rope, text, image, attention):
    """One Wan block; `attention(q, k, v)` is its self-attention over the normed input's projections."""
    m = (block.scale_shift_table + temb.float()).chunk(6, dim=1)
    q, k, v = _self_qkv(block.attn1, (block.norm1(x.float()) * (1 + m[1]) + m[0]).type_as(x), rope)
    x = (x.float() + block.attn1.to_out[0](attention(q, k, v)) * m[2]).type_as(x)
    x = x + _cross(block.attn2, block.norm2(x.float()).type_as(x), text, image)
    h = (block.norm3(x.float()) * (1 + m[4]) + m[3]).type_as(x)
    return (x.float() + block.ffn(h).float() * m[5]).type_as(x), k, v


def forward(model, x, t, text, image=None, pose=None, pose_text=None, pose_image=None, pose_strength: float = 1.0,
            reference_strength: float = 1.0):
    """Wan Animate 2's prediction for x [B, 36, F, H, W] (noise, mask, reference and video latents) at timesteps t
    [B]; pose [B, 16, F - 1, H, W]: the driving video's latents (None: no pose branch), read with pose_text and
    pose_image (default: the generation's own prompt and CLIP tokens)."""
    b, _, frames, hh, ww = x.shape
    _, ph, pw = model.config.patch_size
    gh, gw = hh // ph, ww // pw
    hw = gh * gw
    rope = model.rope(x)
    h = model.patch_embedding(x).flatten(2).transpose(1, 2).contiguous()
    temb, proj, ctx, img = model.condition_embedder(t, text, image)
    proj = proj.unflatten(1, (6, -1))
    if pose is not None:
        if pose.shape[2] != frames - 1:
            raise NodeError(f"the pose video has {pose.shape[2]} latent frames where Wan Animate 2 reads "
                            f"{frames - 1} (the clip's, after the reference frame): make the latent and the pose "
                            "inputs with the same condition.wan_animate2")
        xp = torch.cat([pose, torch.ones_like(pose[:, :4]), pose], 1).to(x.dtype)
        xp = model.patch_embedding(xp).flatten(2).transpose(1, 2).contiguous()
        _, proj_p, ctx_p, img_p = model.condition_embedder(torch.ones_like(t), text if pose_text is None else pose_text,
                                                           image if pose_image is None else pose_image)
        proj_p = proj_p.unflatten(1, (6, -1))
        rope_p = _rope_at(model, 1, frames - 1, gh, gw, gw)

    def weighted(v):          # the reference frame's values, scaled (read by every frame)
        return v if reference_strength == 1.0 else torch.cat([v[:, :hw] * reference_strength, v[:, hw:]], 1)

    for block in model.blocks:
        def attention(q, k, v):
            return _attend(q, k, weighted(v))
        if pose is not None:
            xp, kp, vp = _block(block, xp, proj_p, rope_p, ctx_p, img_p, _attend)
            if pose_strength != 1.0:
                vp = vp * pose_strength

            def attention(q, k, v, kp=kp, vp=vp):
                # latent frame j reads every generated token plus driving frame j - 1 (frame 0, the reference's
                # slot, has none)
                v = weighted(v)
                outs = [_attend(q[:, :hw], k, v)]
                for j in range(1, frames):
                    part = slice((j - 1) * hw, j * hw)
                    outs.append(_attend(q[:, j * hw:(j + 1) * hw], torch.cat([k, kp[:, part]], 1),
                                        torch.cat([v, vp[:, part]], 1)))
                return torch.cat(outs, 1)
        h = _block(block, h, proj, rope, ctx, img, attention)[0]
    shift, scale = (model.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
    h = model.proj_out((model.norm_out(h.float()) * (1 + scale) + shift).type_as(h))
    h = h.reshape(b, frames, gh, gw, 1, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return h.flatten(6, 7).flatten(4, 5).flatten(2, 3)
