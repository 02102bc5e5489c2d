"""Nodes of the autoregressive Wan models (Causal Forcing, Self-Forcing): nodes/generate/causal_wan.py."""
from __future__ import annotations

from graph_engine import Param, node
from graph_engine.types import IMAGE, LATENT, MODEL, VAE


@node("model.ar_block", title="AR Block Size", category="Sampling", passes={"model": "model"})
def ar_block(ctx, model: MODEL, frames: int = Param(1, min=1, max=64, help="latent frames a block: 1 framewise, 3 "
                                                                            "chunkwise, as the checkpoint was trained")
             ) -> MODEL:
    """How many latent frames the ar_video sampler makes at a time with an autoregressive Wan model (ComfyUI's
    SamplerARVideo num_frame_per_block). Without this node: 1 (framewise, causal_forcing-framewise)."""
    return model.with_option("ar_block", int(frames))


@node("condition.ar_start", title="AR Video Start Image", category="Conditioning", device="gpu",
      outputs={"model": MODEL, "latent": LATENT})
def ar_start(ctx, model: MODEL, vae: VAE, start_image: IMAGE,
             frames: int = Param(81, min=1, max=100000, help="the video's length in frames (4n+1)"),
             width: int = Param(832, min=16, max=8192, help="video width, a multiple of 16"),
             height: int = Param(480, min=16, max=8192, help="video height, a multiple of 16")):
    """Image-to-video with an autoregressive Wan model (ComfyUI's ARVideoI2V): the image's latent frame fills the
    model's attention cache before the first block and is the video's first latent frame; the empty latent is the
    video's. Sample with sampler ar_video. The picture is resized to cover the size and centre-cropped."""
    from nodes.generate.causal_wan import start_model
    from nodes.generate.families import family
    return start_model(model, vae, start_image, frames, width, height, family("wan").fps)
