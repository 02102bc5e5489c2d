"""Krea 2 (Krea 2 Turbo and Raw; images): one single-stream transformer over the prompt's tokens followed by 2x2
patches of Qwen-Image's latent (its VAE, its per-channel statistics). The prompt is read by Qwen3-VL-4B in
Qwen-Image's chat template (the system turn dropped): twelve of its layers' hidden states per token, which the
transformer fuses itself. Kinograph keeps them flattened, each token's 12 x 2560 values in a row, as ComfyUI does.

Sampled as diffusers' Krea2Pipeline samples it: the transformer is told sigma and predicts the flow velocity; the
schedule is 1 down to 1/steps under an exponential time shift, fixed at mu 1.15 for Turbo and for ComfyUI's files
(ComfyUI's Krea 2 shift 1.15, whatever the file), resolution-aware for a Raw folder. Turbo runs at cfg 1 (no negative
pass); true CFG takes a negative, Kinograph's cfg being Krea2Pipeline's guidance_scale + 1. Padding tokens are dropped
rather than masked: the pipeline's mask keeps every token from reading them, and its text positions are all zero, so
each prompt reads as at its own length."""
from __future__ import annotations

import math

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import frames_from_batch, padded_rows, text_of_width
from nodes.generate.adapters.flux import frame_tokens, size_shift, unpack
from nodes.generate.adapters.qwenimage import QwenImageAdapter

MAX_TOKENS = 512                    # Krea2Pipeline's max_sequence_length
TURBO_MU = 1.15                     # the time shift Turbo was distilled at, and ComfyUI's for every Krea 2 file
NO_QWEN3VL = ("Krea 2 reads one text encoder, Qwen3-VL-4B (qwen3vl_4b_fp8_scaled.safetensors); this text encoder "
              "has none. Give load.text_encoder that file with type krea2, as ComfyUI's CLIPLoader does, or load a "
              "Krea 2 diffusers folder, which holds it")


class Krea2Adapter(QwenImageAdapter):
    family = "krea2"
    reads_references = False
    max_tokens = MAX_TOKENS

    def factors(self, pipe):
        if getattr(pipe, "vae", None) is None:      # a transformer from its own file: Qwen-Image's latent geometry
            return 1, 8, int(pipe.transformer.config.in_channels) // 4
        return super().factors(pipe)

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        """The tapped layers of each prompt's real tokens (Krea2Pipeline.get_text_hidden_states), flattened to one
        row per token and padded to the longest with the mask of each prompt's own."""
        encoder = getattr(pipe, "text_encoder", None)
        if encoder is None or not type(encoder).__name__.startswith("Qwen3VL"):
            raise NodeError(NO_QWEN3VL)
        hidden, mask = reader(pipe).get_text_hidden_states(list(prompts), MAX_TOKENS, device)
        return *padded_rows([h[m].flatten(1) for h, m in zip(hidden, mask)]), None

    # -- sampling ------------------------------------------------------------------------
    def default_sigmas(self, pipe, steps, latent_shape):
        sch = self.scheduler(pipe)
        mu = TURBO_MU if distilled(pipe) else size_shift(sch.config, (latent_shape[-2] // 2) * (latent_shape[-1] // 2))
        sch.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        return torch.as_tensor(sch.sigmas, dtype=torch.float64).flatten()

    def flow_shift(self, pipe) -> float:
        """The tabulated schedules' shift (simple, beta, ...): ComfyUI's Krea 2 shifts by mu 1.15 as FLUX.1's model
        does, sigma = e^mu t / (1 + (e^mu - 1) t), the flow shift e^mu."""
        return math.exp(TURBO_MU)

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        cfg = handle.pipe.transformer.config
        return text_of_width(conds, frames, batch, device, dtype, int(cfg.num_text_layers) * int(cfg.text_hidden_dim),
                             f"this Krea 2 transformer reads {cfg.num_text_layers} layers of {cfg.text_hidden_dim}: "
                             "encode it with Krea 2's Qwen3-VL-4B (qwen3vl_4b_fp8_scaled.safetensors, type krea2)")

    def forward(self, handle, x_in, t, inputs):
        from diffusers import Krea2Pipeline
        model = handle.pipe.transformer
        n, _, _, h, w = x_in.shape
        tokens = frame_tokens(x_in, "Krea 2").to(model.dtype)
        text = inputs["encoder_hidden_states"]
        text = text.view(*text.shape[:2], model.config.num_text_layers, -1).to(model.dtype)
        positions = Krea2Pipeline.prepare_position_ids(text.shape[1], h // 2, w // 2, tokens.device)
        timestep = (t.float() / 1000).to(tokens.device, model.dtype).expand(tokens.shape[0])
        out = model(hidden_states=tokens, encoder_hidden_states=text, timestep=timestep, position_ids=positions,
                    encoder_attention_mask=inputs["mask"].bool().to(tokens.device), return_dict=False)[0]
        return frames_from_batch(unpack(out.float(), h, w), n)


def distilled(pipe) -> bool:
    config = getattr(pipe, "config", None)
    return bool(config.get("is_distilled", True)) if config is not None else True


def reader(pipe):
    """A Krea2Pipeline that reads prompts with this pipeline's Qwen3-VL: the pipeline itself (a diffusers folder,
    its own layer taps), or one over the language model of ComfyUI's file (Qwen3VLForConditionalGeneration, whose
    head the prompt never reaches)."""
    from diffusers import Krea2Pipeline
    if isinstance(pipe, Krea2Pipeline) and type(pipe.text_encoder).__name__ == "Qwen3VLModel":
        return pipe
    return Krea2Pipeline(scheduler=None, vae=None, text_encoder=getattr(pipe.text_encoder, "model", pipe.text_encoder),
                         tokenizer=pipe.tokenizer, transformer=None)


ADAPTERS = {"krea2": Krea2Adapter()}
