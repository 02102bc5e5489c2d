"""Kandinsky 5 image-to-video nodes (ComfyUI's Kandinsky5ImageToVideo) and the latent frame nodes its template samples
through (ReplaceVideoLatentFrames, NormalizeVideoLatentStart)."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import CONDITIONING, IMAGE, LATENT, VAE


@node("condition.kandinsky5_i2v", title="Kandinsky 5 Image to Video", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT, "cond_latent": LATENT})
def condition_kandinsky5_i2v(ctx, vae: VAE, latent: LATENT, positive: CONDITIONING,
                             first: IMAGE = Input(help="the video's first frame"),
                             negative: CONDITIONING = Input(optional=True, help="the negative prompt")):
    """A Kandinsky 5 image-to-video latent: the start image's latent as its first frame, kept as it is while the
    sampler makes the rest (ComfyUI's Kandinsky5ImageToVideo, diffusers' Kandinsky5I2VPipeline). cond_latent is the
    image's latent alone, for latent.replace_frames after sampling. The prompts pass through."""
    from nodes.generate.kandinsky5_i2v import image_to_video
    out, cond = image_to_video(vae, latent, first)
    return {"positive": positive, "negative": negative, "latent": out, "cond_latent": cond}


@node("latent.replace_frames", title="Replace Latent Frames", category="Latent")
def latent_replace_frames(ctx, destination: LATENT,
                          source: LATENT = Input(optional=True, help="the frames to put in (none: no change)"),
                          index: int = Param(0, min=-100000, max=100000, help="first latent frame replaced; "
                                                                               "negative counts from the end"),
                          overflow: str = Param("cut", choices=("cut", "keep"),
                                                help="a source that does not fit from index: cut puts in the frames "
                                                     "that fit; keep leaves the destination unchanged (ComfyUI's "
                                                     "way), said in the log")) -> LATENT:
    """Replace a run of latent frames with another latent's (ComfyUI's ReplaceVideoLatentFrames), e.g. put an
    image-to-video's clean start frame back after sampling."""
    from nodes.generate.latent_frames import replace_frames
    return replace_frames(destination, source, index, overflow, ctx.log)


@node("latent.normalize_start", title="Normalize Latent Start", category="Latent")
def latent_normalize_start(ctx, latent: LATENT,
                           start_frames: int = Param(4, min=1, max=100000, help="latent frames evened out, from "
                                                                                 "the start"),
                           reference_frames: int = Param(5, min=1, max=100000, help="latent frames after them "
                                                                                     "measured")) -> LATENT:
    """Give a video latent's first frames the mean and spread of the frames after them, within limits (ComfyUI's
    NormalizeVideoLatentStart): Kandinsky 5's image-to-video starts brighter or flatter than it goes on."""
    from nodes.generate.latent_frames import normalize_start
    return normalize_start(latent, start_frames, reference_frames)
