"""LTX-2's in-context guide node (ComfyUI's LTXVAddGuide with a clip, for the canny / depth / pose IC-LoRAs)."""
from __future__ import annotations

from graph_engine import Input, node
from graph_engine.types import CONDITIONING, LATENT, VAE, VIDEO


@node("condition.guide_video", title="LTX-2 Guide Video (IC-LoRA)", category="Conditioning", device="gpu",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING})
def condition_guide_video(ctx, vae: VAE, positive: CONDITIONING, latent: LATENT, video: VIDEO,
                          negative: CONDITIONING = Input(optional=True)):
    """The clip an LTX-2 IC-LoRA follows (its canny edges, depth maps or poses; load the IC-LoRA with lora.image):
    the model reads it clean, frame for frame beside the video it makes, from the first frame on. The clip is cut
    to 8n + 1 frames and fitted to the latent's size (centre crop); it may be shorter than the video, not longer.
    Sample with these prompts and the same latent; a second pass at another size (after latent.ltx_upsample) takes
    the prompts from before this node, as ComfyUI's LTXVCropGuides gives them."""
    from nodes.generate.ltx2_guide import with_guide
    pos, neg = with_guide(vae, positive, negative, latent, video)
    return {"positive": pos, "negative": neg}
