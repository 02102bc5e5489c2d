"""LTX-2: prompts read by Gemma 3 and turned by the checkpoint's text connectors into the video and audio streams'
prompt tokens; one transformer denoises a video latent (LTX-Video's packing) and an audio latent together."""
from __future__ import annotations

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter


class LTX2Adapter(Adapter):
    family = "ltx2"
    single_file = True
    space = "flow"
    prediction = "flow"
    max_tokens = 1024                   # LTX2Pipeline's: Gemma's features padded (left) to 1024 tokens

    def encode_text(self, pipe, prompts, device):
        """[K, 1024, video width + audio width]: the video and audio connectors' tokens side by side (as ComfyUI's
        LTXAVTEModel gives them), with the connectors' mask."""
        if getattr(pipe, "connectors", None) is None or getattr(pipe, "text_encoder", None) is None:
            raise NodeError("LTX-2 prompts need Gemma 3 and the checkpoint's text connectors: load them with "
                            "load.text_encoder (gemma_3_12B_it.safetensors, name2 the LTX-2 checkpoint)")
        embeds, mask, _, _ = pipe.encode_prompt(list(prompts), do_classifier_free_guidance=False,
                                                max_sequence_length=self.max_tokens, device=device)
        video, audio, keep = pipe.connectors(embeds, mask, padding_side=pipe.tokenizer.padding_side)
        return torch.cat([video, audio], -1), keep.bool(), None

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        from nodes.generate.converters.ltx2 import NOT_SAMPLED
        raise NodeError(NOT_SAMPLED)


ADAPTERS = {"ltx2": LTX2Adapter()}
