"""SDXL revision's node, named as ComfyUI's unCLIPConditioning. The maths: nodes/generate/unclip.py."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import CONDITIONING


@node("condition.unclip", title="unCLIP Conditioning", category="Conditioning")
def condition_unclip(ctx, conditioning: CONDITIONING,
                     image: CONDITIONING = Input(help="encode.image of the picture with clip_vision_g (ViT-bigG "
                                                      "with its projection)"),
                     strength: float = Param(1.0, min=-10.0, max=10.0, help="how much the picture counts"),
                     noise_augmentation: float = Param(0.0, min=0.0, max=1.0,
                                                       help="noise mixed into the picture's embedding (0: as it is; "
                                                            "more: looser variations)")) -> CONDITIONING:
    """SDXL revision (ComfyUI's unCLIPConditioning): a picture's CLIP vision embedding takes the place of the prompt's
    pooled text in SDXL's added conditioning, for variations of a picture steered by the prompt. Chain several to
    mix pictures; a strength of 0 leaves the prompt as it is."""
    from nodes.generate.unclip import with_picture
    return with_picture(conditioning, image, strength, noise_augmentation)
