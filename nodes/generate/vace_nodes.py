"""Wan VACE (all-in-one video creation and editing): reference-to-video, control-video-to-video and masked
editing with one model, named after ComfyUI's WanVaceToVideo and TrimVideoLatent."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import CONDITIONING, IMAGE, LATENT, MASK, VAE, VIDEO
from nodes.generate.preflight import latent_preflight


@node("condition.vace", title="Wan VACE", category="Conditioning", device="gpu", preflight=latent_preflight,
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def condition_vace(ctx, vae: VAE, positive: CONDITIONING, negative: CONDITIONING = Input(optional=True),
                   control_video: VIDEO = Input(optional=True, help="the video to follow (a pose, depth or edge "
                                                                     "clip, or footage to edit); none = free"),
                   control_masks: MASK = Input(optional=True, help="where to generate (1, white) and where to "
                                                                    "keep the control video (0), frame by frame: a "
                                                                    "clip of masks (mask.from_video of a mask video; "
                                                                    "frames past its end are white), or one mask "
                                                                    "for all"),
                   reference: IMAGE = Input(optional=True, help="a subject or style image the video should show"),
                   width: int = Param(832, min=16, max=8192, help="video width in pixels (multiple of 16)"),
                   height: int = Param(480, min=16, max=8192, help="video height in pixels (multiple of 16)"),
                   frames: int = Param(81, min=1, max=100000, help="4n+1"),
                   strength: float = Param(1.0, min=0.0, max=1000.0, help="how strongly the VACE hints steer "
                                                                           "the video")):
    """Conditioning for a Wan VACE model (load.diffusion_model with wan2.1_vace_*.safetensors) and the
    latent to sample.

    With a reference image the latent gets one extra frame in front, holding the reference: after
    sample, drop it with latent.trim (amount 1) before decoding. Without any input it is plain
    text-to-video."""
    from nodes.generate.vace import vace_condition
    out = vace_condition(vae, positive, negative, width, height, frames, strength, control_video, control_masks,
                         reference)
    return {k: out[k] for k in ("positive", "negative", "latent")}


@node("latent.trim", title="Trim Latent Frames", category="Latent")
def latent_trim(ctx, latent: LATENT, amount: int = Param(0, min=0, max=100000, help="latent frames dropped from "
                                                                                     "the start")) -> LATENT:
    """Drop latent frames from the start, e.g. the reference-image frame condition.vace puts in front."""
    from nodes.generate.vace import trim_latent
    return trim_latent(latent, amount)
