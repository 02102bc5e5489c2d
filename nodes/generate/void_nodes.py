"""VOID's second-pass noise as a node (ComfyUI's OpticalFlowLoader + VOIDWarpedNoise + VOIDWarpedNoiseSource): the
first pass's video turned into starting noise that moves with it, for sample's noise input."""
from __future__ import annotations

from graph_engine import Param, node
from graph_engine.types import CONDITIONING, LATENT, MASK, NOISE, VAE, VIDEO
from nodes.common.models_dirs import as_given, find_model, locator

RAFT_FILE = "raft_large_C_T_SKHT_V2-ff5fadd5.safetensors"


@node("noise.void_warped", title="VOID Warped Noise", category="Noise", device="gpu")
def void_warped(ctx, video: VIDEO,
                model: str = Param(RAFT_FILE, kind="path", locate=locator("optical_flow"),
                                        help="torchvision's RAFT-large (ComfyUI's models/optical_flow/"
                                             f"{RAFT_FILE}, or the .pth torchvision publishes)"),
                width: int = Param(672, min=16, max=16384, help="the video's width in the model (a multiple of 8)"),
                height: int = Param(384, min=16, max=16384, help="its height (a multiple of 8)"),
                length: int = Param(45, min=1, max=100000, help="pixel frames; rounded down so the latent has an "
                                                                "even frame count (49 -> 45), as VOID needs"),
                batch: int = Param(1, min=1, max=64, help="videos sampled at once (the same noise for each)"),
                seed: int = Param(0, kind="seed", help="the noise drawn before it is warped")) -> NOISE:
    """Noise [batch, 16, frames, height/8, width/8] that follows the motion of `video` (VOID pass 1's result):
    RAFT's flow between its frames at half the size carries Gaussian noise from frame to frame (Burgert's noise
    warping), one latent frame picked for every four pixel frames. ComfyUI draws it from its global random state, so
    no seed reproduces its noise exactly; here the seed decides it."""
    import numpy as np
    import torch

    from graph_engine import NodeError
    from nodes.generate.void import void_warped_latent
    _say_rounding(ctx, length)
    from nodes.generate.weights import load_weights
    from nodes.motion.raft import MIN_SIZE, load_raft, raft_flow
    if min(width, height) < 2 * MIN_SIZE:
        # said in the node's own numbers: RAFT named the half-size frames, which the user never typed
        raise NodeError(f"VOID's warped noise needs a width and height of at least {2 * MIN_SIZE} (RAFT reads the "
                        f"frames at half that, at least {MIN_SIZE} pixels); {width} x {height} is smaller: set "
                        f"width and height to the first pass's size")
    raft = load_raft(load_weights(find_model(as_given(model, ctx.workflow_dir), "optical_flow"))).to(ctx.device)
    frames = video.frames(0, min(length, video.length)).astype(np.float32) / 255.0
    with torch.inference_mode():
        return void_warped_latent(frames, lambda a, b: raft_flow(raft, a, b), width, height, length, batch, seed)


def _say_rounding(ctx, length: int) -> None:
    """The frame count VOID rounds down (49 -> 45), said in the run's log before any other work."""
    from nodes.generate.void import void_length_note
    note = void_length_note(length)
    if note:
        ctx.log(note)


def _mask_frames(mask, count: int):
    """A MASK (one H x W, or a clip of them) as float frames [T, H, W] in 0..1."""
    import numpy as np
    if hasattr(mask, "frames"):
        m = mask.frames(0, min(count, mask.length)).astype(np.float32) / 255.0
        return m.mean(-1) if m.ndim == 4 else m
    m = np.asarray(mask, dtype=np.float32)
    return m[None] if m.ndim == 2 else m


@node("condition.void_inpaint", title="VOID Inpaint Conditioning", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def void_inpaint(ctx, positive: CONDITIONING, negative: CONDITIONING, vae: VAE, video: VIDEO, quadmask: MASK,
                 width: int = Param(672, min=16, max=16384, help="the video's width in the model (a multiple of 16)"),
                 height: int = Param(384, min=16, max=16384, help="its height (a multiple of 16)"),
                 length: int = Param(45, min=1, max=100000, help="pixel frames; rounded down so the latent has an "
                                                                 "even frame count (49 -> 45), as VOID needs"),
                 batch: int = Param(1, min=1, max=64, help="videos sampled at once")):
    """Netflix's VOID object removal (ComfyUI's VOIDInpaintConditioning): the clip with the masked object taken out
    and the mask, encoded by the CogVideoX VAE, ride on both prompts to the VOID transformer (CogVideoX-Fun-V1.5
    inpainting, 48 input channels); the latent is the empty one to sample with sampler void_ddim. The quadmask is 1
    where the object goes (SAM 3's mask, or VOID's four-level mask: its greys mark what the object affects)."""
    import numpy as np

    from nodes.generate.void import void_inpaint as run
    _say_rounding(ctx, length)
    frames = video.frames(0, min(length, video.length)).astype(np.float32) / 255.0
    pos, neg, latent = run(vae, positive, negative, frames, _mask_frames(quadmask, length), width, height, length,
                           batch)
    return {"positive": pos, "negative": neg, "latent": latent}
