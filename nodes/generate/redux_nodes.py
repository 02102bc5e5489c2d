"""FLUX.1 Redux nodes, named as ComfyUI's StyleModelLoader and StyleModelApply. The maths and the files:
nodes/generate/redux.py."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import CONDITIONING, STYLE_MODEL
from nodes.common.models_dirs import locator

# redux.apply_style's strength types, kept here: redux.py imports torch, and nodes register without it
STRENGTH_TYPES = ("multiply", "attn_bias")


@node("load.style_model", title="Load Style Model", category="Models", device="gpu",
      outputs={"style_model": STYLE_MODEL})
def load_style_model(ctx, name: str = Param("", kind="path", locate=locator("style_models"), required=True,
                                            help="file in style_models/ (flux1-redux-dev.safetensors) or a "
                                                 "FLUX.1-Redux-dev diffusers folder")):
    """FLUX.1 Redux (ComfyUI's Load Style Model): it turns a picture's SigLIP tokens (load.clip_vision of
    sigclip_vision_patch14_384, encode.image) into prompt tokens for condition.style_model."""
    from nodes.generate.model_manager import manager_for
    from nodes.generate.redux import load_style_model as run
    return {"style_model": run(manager_for(ctx), name, ctx.device)}


@node("condition.style_model", title="Apply Style Model", category="Conditioning")
def condition_style_model(ctx, conditioning: CONDITIONING, style_model: STYLE_MODEL,
                          image: CONDITIONING = Input(help="encode.image of the picture, with SigLIP "
                                                           "(sigclip_vision_patch14_384)"),
                          strength: float = Param(1.0, min=-10.0, max=10.0,
                                                  help="how much the picture counts"),
                          strength_type: str = Param("multiply", choices=STRENGTH_TYPES,
                                                     help="multiply: the picture's tokens scaled by strength; "
                                                          "attn_bias: left as they are, the attention paid them "
                                                          "scaled by strength (0 ignores the picture)")) -> CONDITIONING:
    """FLUX.1 Redux (ComfyUI's Apply Style Model): a picture's tokens appended to a FLUX.1 prompt, for variations
    and restyles of a keyframe; chain several to mix pictures. Works with FLUX.1 dev and schnell."""
    from nodes.generate.redux import apply_style
    return apply_style(conditioning, style_model, image, strength, strength_type)
