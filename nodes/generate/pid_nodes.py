"""PiD's node (ComfyUI's PiDConditioning): another model's latent and how noisy it is, carried on the prompt that PiD
(nodes/generate/pixeldit_model.py's PiDTransformer, family pixeldit) draws a 4x larger picture of."""
from __future__ import annotations

from graph_engine import NodeError, Param, node
from graph_engine.types import CONDITIONING, LATENT

# ComfyUI's latent formats -> the latent spaces of Kinograph's families that hold them. ComfyUI's node renormalises
# the raw VAE latent (process_in); Kinograph's latents are already in that space, so they are read as they are.
FORMATS = {"flux": ("flux", "flux2"), "sd3": ("sd3",), "sdxl": ("sdxl",), "qwenimage": ("qwenimage",)}


@node("condition.pid", title="PiD Conditioning", category="Conditioning")
def condition_pid(ctx, positive: CONDITIONING, latent: LATENT,
                  latent_format: str = Param("flux", choices=tuple(FORMATS),
                                             help="the latent's VAE: flux for FLUX.1, FLUX.2 and Z-Image, sd3, sdxl, "
                                                  "qwenimage (Qwen-Image)"),
                  degrade_sigma: float = Param(0.0, min=0.0, max=1.0, step=0.01,
                                               help="how noisy the latent is: 0 a finished one (a sampler's "
                                                    "output), up to 1 pure noise")) -> CONDITIONING:
    """Give PiD the latent to draw at 4x its size (sample a pixel_space latent 4x the latent's picture with the
    PiD file for that latent's VAE, a few steps at cfg 1)."""
    import torch
    from nodes.generate.families import FAMILIES
    spec = FAMILIES.get(latent.family)
    space = (spec.latents or spec.name) if spec else latent.family
    if space not in FORMATS[latent_format]:
        raise NodeError(f"latent_format {latent_format} reads {' or '.join(FORMATS[latent_format])} latents; this "
                        f"latent is {latent.family}'s: set the format of the model that made it")
    if latent.samples.shape[2] != 1:
        raise NodeError(f"PiD draws pictures; this latent holds {latent.samples.shape[2]} frames: give it one picture's")
    return positive.with_extra(lq_latent=latent.samples[:, :, 0].float().clone(),
                               degrade_sigma=torch.tensor([float(degrade_sigma)]))
