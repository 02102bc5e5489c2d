"""FLUX.3 [klein] (images and edits): FLUX.2's latent (its VAE; 2x2 patches normalised by the VAE's batch norm, 128
channels at 1/16 of the picture, each latent pixel one token) read by a transformer that first runs the picture's, the
reference pictures' and the prompt's tokens through blocks of their own, then all together. The prompt is Qwen3-VL-4B's
hidden states 4, 8, ..., 32 side by side per token, in its chat template, padded to a multiple of 80 tokens which the
transformer reads too (so every prompt is sampled at its own length).

Sampled as diffusers' Flux3 modular pipelines sample it: the transformer is told sigma; the schedule is 1 down to
1/steps under a constant time shift of 6.93. The base model takes true CFG with a negative prompt (cfg = the
pipeline's guidance_scale); the step-distilled one is a flow map, told each step the level it goes to (the next one,
0 after the last), at cfg 1. Positions are (time, row, column, layer) with rows and columns at half scale; the prompt's
tokens advance along the layer axis, the i-th reference picture sits on layer -(i + 1)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from diffusers import DiffusionPipeline

from graph_engine import NodeError
from nodes.generate.adapters.base import frames_from_batch, frames_in_batch, padded_rows
from nodes.generate.adapters.flux2 import Flux2Adapter, tokens_of
from nodes.generate.adapters.hunyuan15 import next_level
from nodes.generate.reference import text_and_references

TEXT_LAYERS = (4, 8, 12, 16, 20, 24, 28, 32)     # Flux3TextEncoderStep's text_encoder_out_layers
PAD_MULTIPLE = 80                                # its pad_multiple: part of the model's recipe
MAX_TOKENS = 8192
ROPE_SCALE = 0.5                                 # the picture's rows and columns, as the model was trained


def positions(h: int, w: int, layer: int = 0) -> torch.Tensor:
    """(time, row, column, layer) of an h x w token grid, rows and columns at FLUX.3's half scale."""
    ids = torch.cartesian_prod(torch.arange(1), torch.arange(h), torch.arange(w), torch.tensor([layer])).float()
    ids[:, 1:3] *= ROPE_SCALE
    return ids


def text_positions(length: int) -> torch.Tensor:
    ids = torch.zeros(length, 4)
    ids[:, 3] = torch.arange(length)
    return ids


class Flux3Adapter(Flux2Adapter):
    family = "flux3"
    max_tokens = MAX_TOKENS

    def latents(self, pipe) -> str:
        return "flux2"

    def title(self, pipe) -> str:
        return "FLUX.3 [klein]"

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        """Each prompt as Flux3TextEncoderStep reads it (its own window, a multiple of 80 tokens), padded to the
        longest with the mask of each one's own window."""
        from diffusers.modular_pipelines.flux3.encoders import Flux3TextEncoderStep
        te = pipe.text_encoder
        layers = te.config.text_config.num_hidden_layers
        if layers < TEXT_LAYERS[-1]:        # a smaller Qwen3-VL (2B: 28 layers)
            raise NodeError(f"FLUX.3 reads Qwen3-VL's hidden state {TEXT_LAYERS[-1]}; this text encoder has {layers} "
                            "layers: give load.text_encoder FLUX.3's Qwen3-VL-4B (qwen3vl_4b_int8_convrot.safetensors, "
                            "36 layers)")
        # the step wants a processor: its chat template and its tokenizer
        tok = SimpleNamespace(apply_chat_template=pipe.tokenizer.apply_chat_template, tokenizer=pipe.tokenizer)
        rows = [Flux3TextEncoderStep._get_qwen3_vl_prompt_embeds(te, tok, p, device, MAX_TOKENS, PAD_MULTIPLE,
                                                                 TEXT_LAYERS)[0] for p in prompts]
        return *padded_rows(rows), None

    # -- sampling ------------------------------------------------------------------------
    def default_sigmas(self, pipe, steps, latent_shape):
        sch = self.scheduler(pipe)
        sch.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps))
        return torch.as_tensor(sch.sigmas, dtype=torch.float64).flatten()

    def flow_shift(self, pipe) -> float:
        """The tabulated schedules' shift (simple, beta, ...): the recipe's constant."""
        return float(self.scheduler(pipe).config.shift)

    def usual_cfg(self, handle) -> float:
        """The step-distilled file (a flow map) samples unguided, at cfg 1; the base file at the pipeline's 3.5."""
        return self.spec.usual_cfg("distilled" if handle.pipe.transformer.config.flow_map else "base")

    def distilled_guidance(self, handle) -> bool:
        return False            # no guidance input: the base model takes true CFG, the distilled one none

    def for_run(self, handle, positive, negative, seed, sigmas):
        """A flow map (the step-distilled file) is told each step's next level: its conditionings carry the run's
        schedule."""
        if not handle.pipe.transformer.config.flow_map:
            return positive, negative
        return tuple(None if c is None else c.with_extra(schedule=sigmas.float().cpu()) for c in (positive, negative))

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        reads = int(handle.pipe.transformer.config.joint_attention_dim)
        out = text_and_references(conds, frames, batch, device, dtype, reads,
                                  f"this FLUX.3 transformer reads {reads}: encode it with FLUX.3's Qwen3-VL-4B "
                                  "(qwen3vl_4b_int8_convrot.safetensors, type flux3)")
        if "schedule" in conds[-1].extra:
            out["schedule"] = conds[-1].extra["schedule"]
        return out

    def forward(self, handle, x_in, t, inputs):
        """Each row with its own prompt at its own length (the transformer reads the prompt's padding, so prompts
        of other lengths are not batched)."""
        model = handle.pipe.transformer
        n, _, _, h, w = x_in.shape
        flat = frames_in_batch(x_in)
        dev = flat.device
        refs = inputs.get("references", ())
        extra = {}
        if model.config.flow_map:
            extra["target_timestep"] = (next_level(inputs["schedule"], t) / 1000).to(dev, model.dtype).reshape(1)
        outs = []
        for i, (e, m) in enumerate(zip(inputs["encoder_hidden_states"], inputs["mask"])):
            if refs:
                extra["image_cond_hidden_states"] = torch.cat([tokens_of(r[i:i + 1]) for r in refs], 1).to(model.dtype)
                extra["image_cond_ids"] = torch.cat([positions(r.shape[-2], r.shape[-1], -(k + 1))
                                                     for k, r in enumerate(refs)]).to(dev)
            text = e[m][None].to(model.dtype)
            out = model(hidden_states=tokens_of(flat[i:i + 1]).to(model.dtype), encoder_hidden_states=text,
                        timestep=(t.float().reshape(-1)[:1] / 1000).to(dev, model.dtype),
                        img_ids=positions(h, w).to(dev), txt_ids=text_positions(text.shape[1]).to(dev),
                        return_dict=False, **extra)[0]
            outs.append(out[0].float().permute(1, 0).reshape(-1, h, w))
        return frames_from_batch(torch.stack(outs), n)

    def check_latent(self, handle, latent) -> None:
        ch = int(handle.pipe.transformer.config.in_channels)
        if latent.samples.shape[1] != ch:
            raise NodeError(f"FLUX.3 samples FLUX.2's 128-channel latent; this one has {latent.samples.shape[1]} "
                            "channels: make it with latent.empty from the FLUX.2 VAE (flux2-vae.safetensors; "
                            "ComfyUI's EmptyFlux2LatentImage)")


class Flux3Parts(DiffusionPipeline):
    """The loaded parts of a FLUX.3 [klein] (diffusers has only modular pipelines for it, which load whole
    repositories): the transformer, its scheduler, Qwen3-VL and its tokenizer, any of them None."""
    def __init__(self, transformer=None, scheduler=None, text_encoder=None, tokenizer=None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, text_encoder=text_encoder,
                              tokenizer=tokenizer)


ADAPTERS = {"flux3": Flux3Adapter()}
