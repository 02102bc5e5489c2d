"""Ovis-Image (AIDC-AI's Ovis-Image-7B; images): FLUX.1's double and single blocks with gated (SwiGLU) feed-forwards and
an RMSNorm on the text's states, told no pooled embedding and no guidance, over 2x2 patches of FLUX.1's latent. It
reads the last hidden states of Ovis 2.5's language model (a Qwen3, 2048 wide) on the prompt in Qwen3's chat template
with thinking off, padded to 256 tokens past the template's first 28 (the padding's states zeroed): OvisImagePipeline's
encoding, called as it is.

Rotary positions are FLUX.1's but the prompt's: its tokens at (0, i, i), the image's patches at (0, row, column).
Sampled as LongCat-Image (adapters/longcat.py, the same transformer interface): timestep sigma, the flow velocity,
1 down to 1/steps shifted for the image's size, true CFG with a negative prompt; ComfyUI's template fixes the shift
at 3 (ModelSamplingAuraFlow, model.flow_shift)."""
from __future__ import annotations

import torch

from graph_engine import NodeError
from nodes.generate.adapters.flux import image_ids
from nodes.generate.adapters.longcat import LongCatAdapter

MAX_TOKENS = 256                    # OvisImagePipeline's max_sequence_length (its largest)
NO_QWEN3 = ("Ovis-Image reads one text encoder, Ovis 2.5's Qwen3 (ovis_2.5.safetensors); this text encoder is {what}. "
            "Give load.text_encoder that file with type ovis, as ComfyUI's CLIPLoader does")


class OvisAdapter(LongCatAdapter):
    family = "ovis"
    name = "Ovis-Image"
    encoders = "Ovis 2.5's Qwen3"
    max_tokens = MAX_TOKENS
    reads_references = False
    no_encoder = NO_QWEN3

    def encode_text(self, pipe, prompts, device):
        from diffusers import OvisImagePipeline
        encoder = getattr(pipe, "text_encoder", None)
        if encoder is None or not type(encoder).__name__.startswith("Qwen3"):
            raise NodeError(NO_QWEN3.format(what=type(encoder).__name__ if encoder is not None else "missing"))
        return OvisImagePipeline._get_ovis_prompt_embeds(pipe, list(prompts), max_sequence_length=self.max_tokens,
                                                         device=device), None, None

    def clip_pooled(self, pipe, prompts, device):
        raise NodeError("Ovis-Image reads no CLIP: encode its prompt with encode.text (Ovis 2.5's Qwen3 alone)")

    def positions(self, length: int, h: int, w: int, refs) -> torch.Tensor:
        return image_ids(h, w)


ADAPTERS = {"ovis": OvisAdapter()}
