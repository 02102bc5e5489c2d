"""What TRELLIS.2's structure stage and TripoSplat share as samplers: a 3-D flow model read from one ComfyUI file
through load.diffusion_model, with no text and no pictures of its own to decode, conditioned only on a picture's
DINOv3 tokens (a negative of zeros shaped like them). Each adapter names itself and its file; its latent, its
forward and the rest of its conditioning stay its own."""
from __future__ import annotations

import dataclasses

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter


class PictureFlowAdapter(Adapter):
    space = "flow"
    prediction = "flow"
    has_text = False
    single_file = True
    # set by each adapter: how messages name the model and its file, the node that makes its conditioning, what its
    # model reads (for the message when the conditioning is another model's), and its latent's channels
    name = ""
    model_file = ""
    condition_node = ""
    reads = ""
    channels = 0

    def load(self, path, dtype, device, **opts):
        raise NodeError(f"{path.name}: {self.name}'s model loads with load.diffusion_model (ComfyUI's UNETLoader), "
                        f"from diffusion_models/{self.model_file}")

    def image_encoder_pipe(self, pipe):
        return None

    def factors(self, pipe):
        return 1, 1, self.channels

    def uncond(self, pipe, positive):
        return dataclasses.replace(positive, embeds=torch.zeros_like(positive.embeds), prompts=("",),
                                   extra={k: torch.zeros_like(v) for k, v in positive.extra.items()}, parts=())

    def picture_tokens(self, handle, conds, batch: int) -> torch.Tensor:
        """The conditionings' picture tokens, each repeated `batch` times, after checking they are this model's."""
        model = handle.pipe.transformer
        for c in conds:
            if c.family != self.family or c.embeds.shape[-1] != model.context_dim:
                raise NodeError(f"the conditioning is a {c.family} one {c.embeds.shape[-1]} wide; {self.reads} "
                                f"({model.context_dim} wide): make it with {self.condition_node}")
        if len({c.embeds.shape[1] for c in conds}) > 1:
            raise NodeError("the positive and negative hold different numbers of picture tokens: make both with one "
                            f"{self.condition_node}")
        return torch.cat([c.embeds[:1] for c in conds for _ in range(batch)])
