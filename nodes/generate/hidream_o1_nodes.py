"""HiDream-O1's own nodes (ComfyUI's EmptyHiDreamO1LatentImage, ModelNoiseScale, HiDreamO1PatchSeamSmoothing and
HiDreamO1ReferenceImages). The model: nodes/generate/hidream_o1_model.py; its sampling: adapters/hidream_o1.py."""
from __future__ import annotations

from graph_engine import Input, NodeError, Param, node
from graph_engine.types import CONDITIONING, IMAGE, LATENT, MODEL

# kept here rather than imported: the seams module imports torch, and nodes register without it
PATTERNS = ("single_shift", "symmetric")
PASSES = ("2", "4", "ramp_2_4", "ramp_2_4_8")
BLENDS = ("average", "window", "median")
MAX_REFERENCES = 10


@node("latent.empty_hidream_o1", title="Empty HiDream-O1 Latent", category="Latent")
def empty_hidream_o1(ctx, width: int = Param(2048, min=64, max=4096, help="a multiple of 32; HiDream-O1 was trained "
                                                                         "at about 4 megapixels (2048 x 2048, "
                                                                         "2304 x 1728, 2560 x 1440, ...)"),
                     height: int = Param(2048, min=64, max=4096, help="a multiple of 32"),
                     batch_size: int = Param(1, min=1, max=64, help="pictures made at once")) -> LATENT:
    """The all-zero picture HiDream-O1 samples (it works on the pixels themselves: no VAE). Far below its trained
    4 megapixels the pictures lose quality."""
    import torch
    from nodes.generate.latent import Latent
    if width % 32 or height % 32:
        raise NodeError(f"HiDream-O1 reads the picture in 32 x 32 patches: {width} x {height} is not a multiple of 32 "
                        f"(use {width // 32 * 32} x {height // 32 * 32})")
    return Latent(torch.zeros(batch_size, 3, 1, height, width), "pixel_space", 1, 8.0, width, height)


@node("model.noise_scale", title="Noise Scale", category="Sampling", passes={"model": "model"})
def noise_scale(ctx, model: MODEL, noise_scale: float = Param(8.0, min=0.0, max=64.0,
                                                              help="the noise's scale against the picture's: 8 for "
                                                                   "HiDream-O1 full, 7.6 for dev")) -> MODEL:
    """The scale of the noise HiDream-O1 samples from (ComfyUI's ModelNoiseScale): the first noise and the fresh noise
    stochastic samplers add are drawn at this many times unit noise, as the model was trained."""
    if model.family != "hidream_o1":
        raise NodeError(f"model.noise_scale sets HiDream-O1's noise scale; in Kinograph no other model's sampling "
                        f"reads one, and this model is {model.family}")
    return model.with_option("noise_scale", float(noise_scale))


@node("model.hidream_o1_seams", title="HiDream-O1 Patch Seam Smoothing", category="Sampling",
      passes={"model": "model"})
def hidream_o1_seams(ctx, model: MODEL,
                     start_percent: float = Param(0.8, min=0.0, max=1.0, help="how far into sampling it starts"),
                     end_percent: float = Param(1.0, min=0.0, max=1.0, help="how far into sampling it stops"),
                     pattern: str = Param("single_shift", choices=PATTERNS,
                                          help="single_shift: one pass on the patch grid, the others shifted; "
                                               "symmetric: every pass off it, shifted both ways"),
                     passes: str = Param("2", choices=PASSES, help="passes per step; ramp_*: more passes nearer the "
                                                                   "end, where seams show most"),
                     blend: str = Param("average", choices=BLENDS,
                                        help="average; window: each pass weighted away from its patch edges; "
                                             "median: per pixel, rejecting outliers"),
                     strength: float = Param(1.0, min=0.0, max=1.0, help="0: the grid's prediction; 1: the blend")
                     ) -> MODEL:
    """Smooth HiDream-O1's 32 x 32 patch seams (ComfyUI's HiDreamO1PatchSeamSmoothing): late in sampling the model
    also reads the picture shifted against its patch grid, and the predictions are blended (the border strip a
    shift wraps around keeps the grid's). Each pass costs one more model call per step."""
    if model.family != "hidream_o1":
        raise NodeError(f"model.hidream_o1_seams smooths HiDream-O1's patch seams; this model is {model.family}")
    if strength <= 0 or end_percent <= start_percent:
        return model
    return model.with_option("hidream_o1_seams", {"start": float(start_percent), "end": float(end_percent),
                                                  "pattern": pattern, "passes": passes, "blend": blend,
                                                  "strength": float(strength)})


@node("condition.hidream_o1_references", title="HiDream-O1 Reference Images", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING})
def hidream_o1_references(ctx, positive: CONDITIONING, negative: CONDITIONING,
                          image: IMAGE = Input(help="the picture to edit, or the first reference"),
                          image2: IMAGE = Input(optional=True, help="a second reference"),
                          image3: IMAGE = Input(optional=True, help="a third reference"),
                          image4: IMAGE = Input(optional=True, help="a fourth reference"),
                          image5: IMAGE = Input(optional=True, help="a fifth reference"),
                          image6: IMAGE = Input(optional=True, help="a sixth reference"),
                          image7: IMAGE = Input(optional=True, help="a seventh reference"),
                          image8: IMAGE = Input(optional=True, help="an eighth reference"),
                          image9: IMAGE = Input(optional=True, help="a ninth reference"),
                          image10: IMAGE = Input(optional=True, help="a tenth reference")):
    """Give HiDream-O1 reference pictures on both prompts (ComfyUI's HiDreamO1ReferenceImages): one picture is an
    edit (the prompt says what to change), two to ten guide a picture of their subjects. Each is read twice: fitted
    and patched beside the picture being made, and by Qwen3-VL's vision tower among the prompt's tokens. The more
    pictures, the smaller each is read."""
    import numpy as np
    import torch
    for cond, name in ((positive, "positive"), (negative, "negative")):
        if cond.family != "hidream_o1":
            raise NodeError(f"the {name} prompt is {cond.family}'s; HiDream-O1's reference pictures ride on prompts "
                            "encoded by the HiDream-O1 checkpoint's text_encoder")
    pictures = [p for p in (image, image2, image3, image4, image5, image6, image7, image8, image9, image10)
                if p is not None]
    extras = {f"hidream_o1_ref{i}": torch.from_numpy(np.ascontiguousarray(p[..., :3])) for i, p in enumerate(pictures)}
    return {"positive": positive.with_extra(**extras), "negative": negative.with_extra(**extras)}
