"""Skip-layer guidance (ComfyUI's SkipLayerGuidanceDiT, after Stability's SD3 experiment): over part of the steps
the prompt's prediction is made once more with some transformer blocks skipped, and the guided result is pushed
away from that weakened prediction: guided + scale (cond - cond_skipped). It sharpens structure on Wan, and on SD3.5
(ComfyUI's SkipLayerGuidanceSD3, diffusers' skip_guidance_layers: 7, 8, 9 on 3.5 medium) its joint blocks.

The negative-pass kind (ComfyUI's SkipLayerGuidanceDiTSimple) makes no extra pass: over its share of the steps the
negative prompt's own prediction is made with the blocks skipped, and CFG pushes away from that."""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Tuple

from graph_engine import NodeError


@dataclass(frozen=True)
class SkipLayers:
    layers: Tuple[int, ...]
    scale: float = 3.0
    start: float = 0.01         # share of the way from noise, as ComfyUI's start_percent / end_percent
    end: float = 0.15
    rescale: float = 0.0        # pull the result's spread back towards the prompt's prediction (rescaling_scale)
    negative: bool = False      # skip them in the negative prompt's pass instead of an extra pass (scale unused)

    @classmethod
    def parse(cls, layers: str, scale: float, start: float, end: float, rescale: float,
              negative: bool = False) -> "SkipLayers":
        """Layers as ComfyUI reads them: every whole number in the text ("7, 8, 9")."""
        if start > end:
            raise NodeError(f"skip-layer guidance's start ({start}) must not come after its end ({end})")
        return cls(tuple(int(n) for n in re.findall(r"\d+", layers)), float(scale), float(start), float(end),
                   float(rescale), negative)

    def steers(self, sigma: float, level_at) -> bool:
        """ComfyUI's test on the step's noise level: level_at(end) <= sigma <= level_at(start); for the negative-pass
        kind SkipLayerGuidanceDiTSimple's, level_at(end) < sigma <= level_at(start)."""
        if self.negative:
            return bool(self.layers) and level_at(self.end) < sigma <= level_at(self.start)
        return bool(self.layers) and self.scale > 0 and level_at(self.end) <= sigma <= level_at(self.start)

    @property
    def node(self) -> str:
        return "guide.skip_layers_negative" if self.negative else "guide.skip_layer_guidance"

    @contextmanager
    def skipped(self, pipe):
        """While active, the listed blocks of the pipeline's transformers hand their input on unchanged (ComfyUI's
        "double_block" replacement returning its arguments). Sampling holds the pipeline's lock meanwhile."""
        dens = [d for d in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if d is not None]
        blocks = [getattr(d, JOINT.get(type(d).__name__, "blocks"), None) for d in dens]
        if not dens or any(b is None for b in blocks):
            raise NodeError("skip-layer guidance runs on Wan and Stable Diffusion 3 models in Kinograph (their "
                            f"transformer blocks are the layers it skips); remove {self.node} for this model")
        through = _through_joint if type(dens[0]).__name__ in JOINT else _through
        wrong = [n for n in self.layers if n >= min(len(b) for b in blocks)]
        if wrong:
            raise NodeError(f"skip-layer guidance names block {wrong[0]}, but this model has {len(blocks[0])} blocks "
                            f"(0 to {len(blocks[0]) - 1})")
        saved = [(block, block.forward) for b in blocks for i, block in enumerate(b) if i in self.layers]
        try:
            for block, _ in saved:
                block.forward = through
            yield
        finally:
            for block, forward in saved:
                block.forward = forward

    def apply(self, cond, cond_skipped, guided):
        out = guided + (cond - cond_skipped) * self.scale
        if self.rescale:
            factor = cond.std() / out.std()
            out = out * (self.rescale * factor + (1 - self.rescale))
        return out


def _through(hidden_states, *args, **kwargs):
    return hidden_states


# Transformers whose blocks carry the text beside the picture and return both (diffusers' SD3 skip_layers leaves both
# as they came), by the attribute holding their blocks.
JOINT = {"SD3Transformer2DModel": "transformer_blocks"}


def _through_joint(hidden_states, encoder_hidden_states, *args, **kwargs):
    return encoder_hidden_states, hidden_states
