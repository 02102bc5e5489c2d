"""Lens (Microsoft's Lens and Lens-Turbo; images): the transformer of nodes/generate/lens_model.py over FLUX.2's
latent (its VAE: 128 channels at 1/16 of the picture, each latent pixel one token). The prompt is read by GPT-OSS-20B
in Lens's Harmony chat turn (a fixed system, developer and analysis turn around it, as ComfyUI's
comfy/text_encoders/gpt_oss.py renders it): the outputs of its layers 5, 11, 17 and 23 (no final norm) side by side
per token, the first 97 tokens (the turn before the prompt) dropped, 512 tokens at most. An empty prompt is no
tokens at all (ComfyUI's unconditional pass).

Sampled as ComfyUI samples it (a FLUX-type model): the transformer is told sigma and predicts the flow from the
picture to noise; the levels shift for the picture's size as ComfyUI's ModelSamplingFlux shifts them (max_shift 1.15,
base_shift 0.5 in its Lens templates). Base: 20 steps at true CFG 5; Turbo (distilled): 4 steps at cfg 1."""
from __future__ import annotations

import torch
from diffusers import DiffusionPipeline

from graph_engine import NodeError
from nodes.generate.adapters.base import frames_from_batch, frames_in_batch, layer_outputs, padded_rows, text_of_width
from nodes.generate.adapters.flux import FluxAdapter
from nodes.generate.adapters.flux2 import Flux2Adapter

TEXT_LAYERS = (5, 11, 17, 23)       # comfy/text_encoders/gpt_oss.py LENS_SELECTED_LAYERS
TEXT_OFFSET = 97                    # LENS_TXT_OFFSET: the Harmony turn's tokens before the prompt
MAX_TOKENS = 512                    # LENS_MAX_TOKENS, the whole turn counted
# The reference pipeline's Harmony turn; its date is the one ComfyUI renders (the template's tokens are part of the
# model's recipe: the first 97 are dropped, so they must be these)
SYSTEM = ("You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n"
          "Current date: 2026-05-23\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel "
          "must be included for every message.")
INSTRUCTIONS = ("Describe the image by detailing the color, shape, size, texture, quantity, text, spatial "
                "relationships of the objects and background.")
THINKING = "Need to generate one image according to the description."
NO_GPT_OSS = ("Lens reads one text encoder, GPT-OSS-20B (gpt_oss_20b_*.safetensors); this text encoder has none. Give "
              "load.text_encoder that file with type lens, as ComfyUI's CLIPLoader does")


def chat(prompt: str) -> str:
    """Lens's Harmony turn around a prompt."""
    return (f"<|start|>system<|message|>{SYSTEM}<|end|><|start|>developer<|message|># Instructions\n\n{INSTRUCTIONS}"
            f"\n\n<|end|><|start|>user<|message|>{prompt}<|end|><|start|>assistant<|channel|>analysis<|message|>"
            f"{THINKING}<|end|><|start|>assistant<|channel|>final<|message|>")


def prompt_states(pipe, prompt: str, device) -> torch.Tensor:
    """One prompt as Lens reads it: [tokens after the turn's first 97, 4 * width]; no tokens for an empty prompt."""
    encoder = getattr(pipe, "text_encoder", None)
    if encoder is None or not type(encoder).__name__.startswith("GptOss"):
        raise NodeError(NO_GPT_OSS)
    if len(encoder.layers) <= TEXT_LAYERS[-1]:
        raise NodeError(f"Lens reads GPT-OSS's layer {TEXT_LAYERS[-1]}; this text encoder has {len(encoder.layers)} "
                        "layers: give load.text_encoder Lens's GPT-OSS-20B (gpt_oss_20b_*.safetensors, 24 layers)")
    width = len(TEXT_LAYERS) * int(encoder.config.hidden_size)
    if not prompt.strip():
        return torch.zeros(0, width, device=device)
    ids = pipe.tokenizer(chat(prompt), add_special_tokens=False).input_ids[:MAX_TOKENS]
    return torch.cat(layer_outputs(encoder, torch.tensor([ids], device=device), TEXT_LAYERS), -1)[0, TEXT_OFFSET:]


class LensAdapter(Flux2Adapter):
    family = "lens"
    name = "Lens"
    encoders = "GPT-OSS-20B"
    max_tokens = MAX_TOKENS
    reads_references = False
    flow_levels = FluxAdapter.flow_levels
    default_sigmas = FluxAdapter.default_sigmas
    flow_shift = FluxAdapter.flow_shift
    percent_sigma = FluxAdapter.percent_sigma

    def latents(self, pipe) -> str:
        return "flux2"

    def title(self, pipe) -> str:
        return "Lens"

    def encode_text(self, pipe, prompts, device):
        """Each prompt at its own length, padded to the longest with the mask of each one's own tokens."""
        return *padded_rows([prompt_states(pipe, p, device) for p in prompts]), None

    def distilled_guidance(self, handle) -> bool:
        return False            # no guidance input: base takes true CFG, Turbo runs at cfg 1

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        cfg = handle.pipe.transformer.config
        reads = int(cfg.enc_hidden_dim) * int(cfg.text_layers)
        return text_of_width(conds, frames, batch, device, dtype, reads,
                             f"this Lens transformer reads {reads}: encode it with Lens's GPT-OSS-20B "
                             "(gpt_oss_20b_*.safetensors, type lens)")

    def forward(self, handle, x_in, t, inputs):
        """Each row with its own prompt's tokens (the model reads every token it is given)."""
        model = handle.pipe.transformer
        n = x_in.shape[0]
        flat = frames_in_batch(x_in).to(model.dtype)
        sigma = (t.float() / 1000).to(flat.device).reshape(-1)[:1]
        outs = [model(flat[i:i + 1], sigma, e[m][None].to(model.dtype))[0].float()
                for i, (e, m) in enumerate(zip(inputs["encoder_hidden_states"], inputs["mask"]))]
        return frames_from_batch(torch.stack(outs), n)

    def check_latent(self, handle, latent) -> None:
        ch = int(handle.pipe.transformer.config.in_channels)
        if latent.samples.shape[1] != ch:
            raise NodeError(f"Lens samples FLUX.2's 128-channel latent; this one has {latent.samples.shape[1]} "
                            "channels: make it with latent.empty from the FLUX.2 VAE (flux2-vae.safetensors)")


class LensParts(DiffusionPipeline):
    """The loaded parts of a Lens (diffusers has no pipeline for it): the transformer, its scheduler, GPT-OSS and its
    tokenizer, any of them None."""
    def __init__(self, transformer=None, scheduler=None, text_encoder=None, tokenizer=None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, text_encoder=text_encoder,
                              tokenizer=tokenizer)


ADAPTERS = {"lens": LensAdapter()}
