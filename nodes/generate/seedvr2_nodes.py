"""SeedVR2's conditioning node (ComfyUI's SeedVR2Conditioning); its transformer is nodes/generate/seedvr2_dit.py."""
from __future__ import annotations

from graph_engine import node
from graph_engine.types import CONDITIONING, LATENT, MODEL


@node("condition.seedvr2", title="SeedVR2 Conditioning", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING})
def condition_seedvr2(ctx, model: MODEL, latent: LATENT):
    """Both conditionings for SeedVR2's restorer (ComfyUI's SeedVR2Conditioning): the prompt embeddings its
    transformer file carries, and the clip to restore (its latent from SeedVR2's VAE, after upscale.seedvr2_pad) read
    beside the noise. Sample from that latent at denoise 1 (one step, cfg 1), decode with the same VAE and finish
    with upscale.seedvr2_finish."""
    from nodes.generate.seedvr2_dit import seedvr2_conditioning
    positive, negative = seedvr2_conditioning(model, latent)
    return {"positive": positive, "negative": negative}
