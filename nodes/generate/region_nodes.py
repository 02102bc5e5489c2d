"""Regional prompting and conditioning arithmetic (ComfyUI's ConditioningSetArea, ConditioningSetAreaPercentage,
ConditioningSetMask, ConditioningCombine, ConditioningAverage, ConditioningConcat), prompts for part of the steps
(ConditioningSetTimestepRange) and the latent composite.
The maths is in nodes/generate/regions.py; the sampler runs the regions (nodes/generate/sampling.py)."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import CONDITIONING, LATENT, MASK

_CAT = "Conditioning"
_STRENGTH = Param(1.0, min=0.0, max=10.0, help="the region's weight where regions overlap (2 counts twice as much "
                                                "as 1 there); alone in a place, any strength above 0 gives it all")


@node("condition.area", title="Prompt in an Area", category=_CAT)
def area(ctx, conditioning: CONDITIONING,
         width: int = Param(64, min=8, max=16384, help="the area's width in pixels (rounded down to whole latent "
                                                      "pixels: 8 for SD and SDXL)"),
         height: int = Param(64, min=8, max=16384, help="the area's height in pixels"),
         x: int = Param(0, min=0, max=16384, help="the area's left edge in pixels"),
         y: int = Param(0, min=0, max=16384, help="the area's top edge in pixels"),
         strength: float = _STRENGTH) -> CONDITIONING:
    """Make a prompt draw only one rectangle of the picture (ComfyUI's ConditioningSetArea): the sampler runs the
    model on that part of the latent with this prompt, its weight fading over 8 latent pixels along the edges inside
    the picture. Combine it (condition.combine) with a prompt for the whole picture: where both reach, their
    predictions are averaged by strength."""
    from nodes.generate.regions import with_region
    return with_region(conditioning, area=["pixels", height, width, y, x], strength=strength, bounds=False)


@node("condition.area_fraction", title="Prompt in an Area (fraction)", category=_CAT)
def area_fraction(ctx, conditioning: CONDITIONING,
                  width: float = Param(1.0, min=0.0, max=1.0, help="the area's width as a share of the picture's"),
                  height: float = Param(1.0, min=0.0, max=1.0, help="the area's height as a share of the picture's"),
                  x: float = Param(0.0, min=0.0, max=1.0, help="the left edge as a share of the picture's width"),
                  y: float = Param(0.0, min=0.0, max=1.0, help="the top edge as a share of the picture's height"),
                  strength: float = _STRENGTH) -> CONDITIONING:
    """condition.area in shares of the picture (ComfyUI's ConditioningSetAreaPercentage): 0.5 wide at x 0.5 is the
    right half whatever size is made."""
    from nodes.generate.regions import with_region
    return with_region(conditioning, area=["fraction", height, width, y, x], strength=strength, bounds=False)


@node("condition.mask", title="Prompt in a Mask", category=_CAT)
def mask(ctx, conditioning: CONDITIONING, mask: MASK = Input(help="where the prompt draws (1), stretched to the "
                                                                  "picture; a clip of masks follows a region"),
         strength: float = _STRENGTH,
         bounds: bool = Param(False, help="run the model on the mask's bounding box only (ComfyUI's set_cond_area "
                                          "'mask bounds'): the prompt fills that box as a picture of its own; off "
                                          "(default): the model sees the whole picture, the mask weighs its result")
         ) -> CONDITIONING:
    """Make a prompt draw only where the mask is (ComfyUI's ConditioningSetMask): its prediction is weighted by the
    mask times strength. Combine it (condition.combine) with a prompt for the rest."""
    from nodes.generate.regions import mask_tensor, with_region
    return with_region(conditioning, mask_tensor(mask), mask_strength=strength, bounds=bool(bounds))


@node("condition.timestep_range", title="Prompt for Part of the Steps", category=_CAT)
def timestep_range(ctx, conditioning: CONDITIONING,
                   start: float = Param(0.0, min=0.0, max=1.0, help="where the prompt starts: 0 = from pure noise, "
                                                                   "0.3 = once 30% of the way to the picture"),
                   end: float = Param(1.0, min=0.0, max=1.0, help="where it stops: 1 = to the last step")
                   ) -> CONDITIONING:
    """Use a prompt only between start and end of the denoising (ComfyUI's ConditioningSetTimestepRange), e.g. a
    composition prompt for 0-0.3 combined (condition.combine) with a detail prompt for 0.3-1. The shares are of the
    way in noise, not in steps: they become noise levels through the model's sampling (its flow shift included),
    and at a step outside them the sampler leaves the prompt out."""
    from nodes.generate.regions import with_steps
    return with_steps(conditioning, start, end)


@node("condition.combine", title="Combine Prompts", category=_CAT)
def combine(ctx, conditioning: CONDITIONING, other: CONDITIONING) -> CONDITIONING:
    """Both prompts, each run by the sampler and their predictions averaged (ComfyUI's ConditioningCombine): with
    regions (condition.area, condition.mask) each draws its part of the picture."""
    from nodes.generate.regions import combine as run
    return run(conditioning, other)


@node("condition.average", title="Average Prompts", category=_CAT)
def average(ctx, conditioning: CONDITIONING, other: CONDITIONING = Input(help="the prompt mixed in (the first, where "
                                                                              "it is combined)"),
            weight: float = Param(1.0, min=0.0, max=1.0, help="conditioning's share; 1 - weight is other's")
            ) -> CONDITIONING:
    """A blend of two prompts' embeddings (ComfyUI's ConditioningAverage): weight x conditioning + (1 - weight) x
    other, other's tokens cut or padded with zeros to conditioning's length."""
    from nodes.generate.regions import average as run
    return run(conditioning, other, weight)


@node("condition.concat", title="Concatenate Prompts", category=_CAT)
def concat(ctx, conditioning: CONDITIONING, other: CONDITIONING) -> CONDITIONING:
    """other's tokens after conditioning's, as one prompt (ComfyUI's ConditioningConcat): each part keeps its own
    emphasis and is not diluted by the other's length."""
    from nodes.generate.regions import concat as run
    return run(conditioning, other)


@node("latent.composite", title="Composite Latents", category="Latent")
def latent_composite(ctx, latent: LATENT = Input(help="the destination"),
                     source: LATENT = Input(help="what is pasted, its top-left at (x, y)"),
                     mask: MASK = Input(optional=True, help="where source shows (stretched to source's size); none: "
                                                             "all of it"),
                     x: int = Param(0, min=0, max=16384, help="pixels; rounded down to whole latent pixels"),
                     y: int = Param(0, min=0, max=16384, help="pixels; rounded down to whole latent pixels"),
                     resize: bool = Param(False, help="stretch source to the destination's size first"),
                     feather: int = Param(0, min=0, max=16384, help="pixels over which the pasted part fades in "
                                                                   "along its edges inside the destination (rounded "
                                                                   "down to whole latent pixels); 0: a hard edge")
                     ) -> LATENT:
    """Paste one latent into another (ComfyUI's LatentCompositeMasked, and LatentComposite with its feather):
    source x mask + latent x (1 - mask), where they overlap; the result is the destination's size, e.g. to start a
    second pass from two generations."""
    from nodes.generate.regions import composite
    return composite(latent, source, mask, x, y, resize, feather)


@node("condition.strength", title="Prompt Strength", category=_CAT)
def strength(ctx, conditioning: CONDITIONING, strength: float = _STRENGTH) -> CONDITIONING:
    """Set the weight of every prompt in a combination, keeping their areas and masks (ComfyUI's
    ConditioningSetAreaStrength)."""
    from nodes.generate.regions import with_region
    return with_region(conditioning, strength=strength)


@node("condition.zero", title="Zero Prompt", category=_CAT)
def zero(ctx, conditioning: CONDITIONING) -> CONDITIONING:
    """The prompt's embeddings (and pooled embedding) all zero, its regions and image conditioning kept (ComfyUI's
    ConditioningZeroOut): the negative that Flux, SD3 and Wan workflows give in place of an empty prompt."""
    from nodes.generate.regions import zeroed
    return zeroed(conditioning)
