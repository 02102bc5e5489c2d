"""Latent frame operations after sampling: replacing a run of frames (ComfyUI's ReplaceVideoLatentFrames) and evening
out the statistics of a video's first frames with the next ones' (ComfyUI's NormalizeVideoLatentStart, written for
Kandinsky 5's image-to-video, whose first frames come out brighter or flatter than the rest)."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional

import torch

from graph_engine import NodeError
from nodes.generate.latent import Latent


def replace_frames(destination: Latent, source: Optional[Latent], index: int, overflow: str = "cut",
                   log: Callable[[str], None] = print) -> Latent:
    """destination with its latent frames from `index` on (negative: counted from the end) replaced by source's; no
    source (an image-to-video node given no image) leaves it as it is. A source that does not fit from `index` (or an
    index outside the destination): overflow "cut" puts in the frames that fit (an index outside is refused),
    "keep" leaves the destination as it is and says so in the log, as ComfyUI's ReplaceVideoLatentFrames does."""
    if source is None:
        return destination
    dst, src = destination.samples, source.samples
    t = dst.shape[2]
    start = index + t if index < 0 else index
    if src.shape[1] != dst.shape[1] or src.shape[-2:] != dst.shape[-2:]:
        raise NodeError(f"the source latent is {list(src.shape[1:])} (channels, frames, height, width) and the "
                        f"destination {list(dst.shape[1:])}: make both with the same VAE at the same size")
    if src.shape[0] not in (1, dst.shape[0]):
        # torch's broadcast error (a RuntimeError of 'expanded size') was the node's message
        raise NodeError(f"the source latent is a batch of {src.shape[0]} and the destination of {dst.shape[0]}: give a "
                        f"source of one (put in every video of the batch) or of {dst.shape[0]}")
    if overflow == "keep" and not (0 <= start and start + src.shape[2] <= t):
        log(f"the source's {src.shape[2]} latent frames do not fit in the destination's {t} from index {index}: the "
            "destination is passed on unchanged (overflow 'keep', as ComfyUI does); set overflow to 'cut' to put in "
            "the frames that fit")
        return destination
    if not 0 <= start < t:
        raise NodeError(f"index {index} is outside this latent's {t} frames (0 to {t - 1}, or -{t} to -1 from the end)")
    n = min(src.shape[2], t - start)
    out = dst.clone()
    out[:, :, start:start + n] = src[:, :, :n].to(out.dtype)
    return destination.with_samples(out)


def normalize_start(latent: Latent, start_frames: int, reference_frames: int) -> Latent:
    """The first `start_frames` latent frames, each standardised over its channels and pixels, given the mean and
    spread of the `reference_frames` after them (held within 0.3 below / 0.35 above each frame's own mean, and 0.35
    below / 0.5 above its own spread, so a frame is evened out, not replaced)."""
    x = latent.samples
    if x.shape[2] <= 1:
        return latent
    first = x[:, :, :start_frames]
    ref = x[:, :, start_frames:start_frames + min(reference_frames, x.shape[2] - 1)]
    if ref.numel() == 0:
        raise NodeError(f"this latent has {x.shape[2]} frames: none is left after the first {start_frames} to "
                        "measure them against; lower start_frames")
    mean = first.mean(dim=(1, 3, 4), keepdim=True)
    std = first.std(dim=(1, 3, 4), keepdim=True)
    ref_mean = torch.clamp(ref.mean(), mean - 0.3, mean + 0.35)
    ref_std = torch.clamp(ref.std(), std - 0.35, std + 0.5)
    out = x.clone()
    out[:, :, :start_frames] = (first - mean) / (std + 1e-8) * ref_std + ref_mean
    return replace(latent, samples=out)
