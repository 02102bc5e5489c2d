"""Bernini-R (ByteDance's renderer: Wan 2.2 A14B's transformer trained to read pictures and videos in context), as
ComfyUI runs it (comfy_extras/nodes_bernini.py's BerniniConditioning, comfy/ldm/wan/model.py's context_latents).

The conditioning: the source video (what is edited), a reference video and reference pictures, each encoded by the
Wan VAE as a stream of its own; the source resized to the video's size (area, centre-cropped to its shape), the
references at their own shape, the long side at most ref_max_size, sides snapped to 16. The model: each stream's
latent goes through the patch embedding and its tokens follow the video's, with rotary positions from 0 on its own
grid, every pair of channels then turned further by the stream's number (1, 2, ... in the order source, reference
video, reference pictures) as a one-axis rotary position over the whole head; the tokens read the step's timestep as
the video's do, and are dropped before the output."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import List, Optional

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.latent import Conditioning

KEY = "bernini"
STRIDE = 16
WAN21_CHANNELS = 16     # the Wan 2.1 VAE's latent channels, which Bernini-R reads its streams in


def area(px: torch.Tensor, width: int, height: int, crop: bool) -> torch.Tensor:
    """ComfyUI's common_upscale with "area" on [N, 3, H, W] in [0, 1] (nodes/video/edit.py's comfy_scaled, kept in
    float): cut to the new shape about the centre first (`crop`), then average each output pixel's area."""
    from nodes.video.edit import comfy_scaled
    out = comfy_scaled(px.permute(0, 2, 3, 1).numpy(), width, height, "area", crop)
    return torch.from_numpy(np.ascontiguousarray(out)).permute(0, 3, 1, 2)


def long_edge(h: int, w: int, max_size: int):
    """(height, width): scaled down (never up) to a long side of at most max_size, each side snapped to 16."""
    scale = min(max_size / max(h, w), 1.0)
    return max(STRIDE, round(h * scale / STRIDE) * STRIDE), max(STRIDE, round(w * scale / STRIDE) * STRIDE)


def _pixels(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames[..., :3])).permute(0, 3, 1, 2).float() / 255.0


def _encode(vae, px: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [0, 1] -> the Wan VAE's latent of those N frames as one clip [1, 16, T, h, w]."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.vae_ops import encode_pixels
    return encode_pixels(get_adapter("wan"), vae.pipe, (px * 2 - 1).permute(1, 0, 2, 3)[None],
                         "encoding Bernini's context").float().cpu()


def streams(vae, width: int, height: int, length: int, source=None, reference_video=None, references=None,
            ref_max_size: int = 848) -> List[torch.Tensor]:
    """The context latents, in ComfyUI's order: the source video (its first `length` frames at width x height),
    the reference video (its first `length` frames), then each reference picture (each frame of `references`)."""
    out = []
    if source is not None:
        out.append(_encode(vae, area(_pixels(source.frames(0, min(length, source.length))), width, height, True)))
    if reference_video is not None:
        px = _pixels(reference_video.frames(0, min(length, reference_video.length)))
        out.append(_encode(vae, area(px, *long_edge(*px.shape[-2:], ref_max_size)[::-1], False)))
    if references is not None:
        for i in range(references.length):
            px = _pixels(references.frames(i, i + 1))
            out.append(_encode(vae, area(px, *long_edge(*px.shape[-2:], ref_max_size)[::-1], False)))
    return out


def with_streams(cond: Optional[Conditioning], latents: List[torch.Tensor]) -> Optional[Conditioning]:
    if cond is None or not latents:
        return cond
    return cond.with_extra(**{f"{KEY}{i}": z for i, z in enumerate(latents)})


def context_of(cond: Conditioning) -> List[torch.Tensor]:
    out = []
    while f"{KEY}{len(out)}" in cond.extra:
        out.append(cond.extra[f"{KEY}{len(out)}"])
    return out


def source_rotation(dim: int, source_id: int, theta: float = 10000.0):
    """cos and sin [dim] of the stream's own turn: pair j by source_id * theta^(-2j / dim), repeated for its two
    channels."""
    angle = source_id * theta ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    return torch.cos(angle).repeat_interleave(2), torch.sin(angle).repeat_interleave(2)


@contextmanager
def context_input(transformer, latents: List[torch.Tensor], scale=None):
    """While active, a diffusers WanTransformer3DModel reads the context latents (each [B, C, T, h, w]) as tokens
    after the video's, and predicts the video's alone."""
    from nodes.generate.rope_scale import IDENTITY, grid_freqs, patches
    rope, embed = transformer.rope, transformer.patch_embedding
    state = {}
    for lat in latents:
        if lat.shape[1] != embed.in_channels and lat.shape[1] != WAN21_CHANNELS:
            raise NodeError(f"Bernini's context latents have {lat.shape[1]} channels and this Wan model reads "
                            f"{embed.in_channels}: encode them with the Wan 2.1 VAE (wan_2.1_vae)")
        if lat.shape[1] != embed.in_channels:
            # the Wan 2.1 VAE's latents, on an image-to-video, VACE or TI2V-5B transformer: the model is wrong
            raise NodeError(f"this Wan model reads {embed.in_channels} channels a token, not the {WAN21_CHANNELS} of "
                            "the Wan 2.1 VAE's latents that Bernini-R's transformer (wan2.2_bernini_r_high/"
                            "low_noise) reads its streams from: load a Bernini-R model")

    def freqs(module, args, out):
        parts = [[o] for o in out]
        for i, lat in enumerate(latents):
            turn = source_rotation(module.attention_head_dim, i + 1)
            cos, sin = grid_freqs(module, *patches(module, lat), scale or IDENTITY)
            for k, f in enumerate((cos * turn[0] - sin * turn[1], sin * turn[0] + cos * turn[1])):
                parts[k].append(f.to(out[k].device, out[k].dtype))
        return tuple(torch.cat(p, 1) for p in parts)

    def append(_module, _args, out):
        state["tokens"] = out[0, 0].numel()
        # the main tokens and the streams' in one sequence, as the shape diffusers flattens next: [B, C, 1, 1, N]
        toks = [out.flatten(2)] + [embed.forward(lat.to(out.device, out.dtype).expand(out.shape[0], -1, -1, -1, -1))
                                   .flatten(2) for lat in latents]
        return torch.cat(toks, 2)[:, :, None, None]

    def drop(_module, _args, out):
        return out[:, :state["tokens"]]
    with ExitStack() as hooks:
        for handle in (rope.register_forward_hook(freqs), embed.register_forward_hook(append),
                       transformer.proj_out.register_forward_hook(drop)):
            hooks.callback(handle.remove)
        yield
