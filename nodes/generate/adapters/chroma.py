"""Chroma (images): FLUX.1 schnell's transformer with its modulations given by one small network, reading T5-XXL's
hidden states alone, over FLUX.1's VAE and latents (the latent is packed into 2x2-patch tokens as FLUX.1's is).

Sampled as diffusers' ChromaPipeline samples it: true CFG with a negative prompt (no distilled guidance), T5-XXL's
padding masked (the prompt's tokens and the first padding token are read, the text encoder and the transformer told
so), 1 down to 1/steps shifted for the image's size. The tabulated schedules (simple, beta, ...) are ComfyUI's Chroma
sampling: the flow line with no shift (model.flow_shift, ComfyUI's ModelSamplingAuraFlow, sets one)."""
from __future__ import annotations

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter, frames_from_batch, masked_text
from nodes.generate.adapters.flux import FluxAdapter, frame_tokens, image_ids, unpack

COMFY_SHIFT = 1.0                   # ComfyUI's Chroma sampling (ModelSamplingDiscreteFlow at its default shift)
NO_T5 = ("Chroma reads one text encoder, T5-XXL (t5xxl_fp16.safetensors); this text encoder has none. Give "
         "load.text_encoder that file with type chroma, as ComfyUI's CLIPLoader does, or load a Chroma diffusers "
         "folder, which holds it")


class ChromaAdapter(FluxAdapter):
    family = "chroma"
    reads_references = False
    name = "Chroma"
    encoders = "T5-XXL"
    flow_levels = 1000

    load = Adapter.load

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        """T5-XXL's hidden states of each prompt padded to 512 tokens, and the mask of those read (its tokens and the
        first padding token), as ChromaPipeline._get_t5_prompt_embeds gives them."""
        if getattr(pipe, "text_encoder", None) is None:
            raise NodeError(NO_T5)
        embeds, mask = pipe._get_t5_prompt_embeds(list(prompts), max_sequence_length=self.max_tokens, device=device)
        return embeds, mask, None

    def clip_pooled(self, pipe, prompts, device):
        raise NodeError("Chroma reads no CLIP-L: encode its prompt with encode.text (T5-XXL alone)")

    def token_offsets(self, pipe, text):
        return self._offsets(pipe.tokenizer, text, self.max_tokens)

    # -- sampling ------------------------------------------------------------------------
    def flow_shift(self, pipe) -> float:
        return COMFY_SHIFT

    def percent_sigma(self, pipe, percent, shift=None):
        return Adapter.percent_sigma(self, pipe, percent, shift)

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        """Each conditioning's T5-XXL states per frame, padded to the longest, and which of their tokens are read."""
        return masked_text(conds, frames, batch, device, dtype)

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        n, c, f, h, w = x_in.shape
        tokens = frame_tokens(x_in, self.name)
        ehs = inputs["encoder_hidden_states"]
        # ChromaPipeline's mask: the text's in the text encoder's float type, every image token read
        text = inputs["mask"].to(tokens.device, ehs.dtype)
        mask = torch.cat([text, torch.ones(text.shape[0], tokens.shape[1], dtype=torch.bool, device=tokens.device)], 1)
        out = model(hidden_states=tokens.to(model.dtype), timestep=(t.float() / 1000).to(tokens.device).expand(n * f),
                    encoder_hidden_states=ehs, txt_ids=torch.zeros(ehs.shape[1], 3, device=tokens.device),
                    img_ids=image_ids(h, w).to(tokens.device), attention_mask=mask, return_dict=False)[0]
        return frames_from_batch(unpack(out, h, w), n)


ADAPTERS = {"chroma": ChromaAdapter()}
