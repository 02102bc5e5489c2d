"""LTX-2's guide node (ComfyUI's LTXVAddGuide): a first or last frame, keyframes between, or the clip an IC-LoRA
follows (canny / depth / pose)."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import CONDITIONING, IMAGE, LATENT, VAE, VIDEO


@node("condition.guide_video", title="LTX-2 Guide (Keyframe / IC-LoRA)", category="Conditioning", device="gpu",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING})
def condition_guide_video(ctx, vae: VAE, positive: CONDITIONING, latent: LATENT,
                          video: VIDEO = Input(optional=True, help="a clip to follow (an IC-LoRA's canny, depth or "
                                                                   "pose clip)"),
                          image: IMAGE = Input(optional=True, help="one picture the video passes through"),
                          negative: CONDITIONING = Input(optional=True),
                          frame_idx: int = Param(0, min=-9999, max=9999, help="the frame the guide starts at; "
                                                 "negative counts from the end (-1: the last frame)"),
                          strength: float = Param(1.0, min=0.0, max=10.0, help="1 keeps the guide as it is; less "
                                                  "lets the model change it (ComfyUI's first/last-frame templates "
                                                  "use 0.7)")):
    """A picture or clip the LTX-2 video passes through at frame_idx (0 the first frame, -1 the last; a clip not at
    0 starts on a frame 8k + 1), as ComfyUI's LTXVAddGuide places it: the model reads its latent frames beside the
    video's, at their own place in time, kept at noise 1 - strength, the attention between them and the video
    weighed by the strength. A clip is cut to 8n + 1 frames and fitted to the latent's size (centre crop); chain
    the node for more guides (first and last frame). Sample with these prompts and the same latent; a second pass
    at another size (after latent.ltx_upsample) takes the prompts from before the first guide, as ComfyUI's
    LTXVCropGuides gives them."""
    from nodes.generate.ltx2_guide import frames_of, with_guide
    pos, neg = with_guide(vae, positive, negative, latent, frames_of(video, image), int(frame_idx), float(strength))
    return {"positive": pos, "negative": neg}
