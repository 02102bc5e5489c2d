"""Bria's FIBO 2 (Fibo-2.0 dev and edit turbo; pictures and edits): diffusers' BriaFibo2Transformer2DModel, Z-Image's
blocks over 2x2 patches of FLUX.2's 32-channel latent, reading the prompt twice: a Perceiver squeezes one bundle of
Qwen3-VL-4B's states into gist tokens that join the picture's, and five injection blocks cross-attend to a bundle each.
A bundle is three of Qwen3-VL's hidden states, each scaled to unit RMS per token, side by side (BriaFibo2Pipeline's
_get_qwen_prompt_embeds). Kinograph holds the six bundles side by side per token, [L, 6 x 3 x width].

The latent Kinograph holds is FLUX.2's (its VAE's, [B, 128, 1, H/16, W/16], normalised by the batch norm), which is
exactly the transformer's 2x2 patches of the normalised 32-channel latent (BriaFibo2Pipeline normalises in the patched
space, then unpatches for the transformer, which patches again in the same order). Pictures to edit ride as
references (fibo2_edit.py) and are read as the transformer's clean context tokens.

Sampled as BriaFibo2Pipeline samples it: the transformer is told sigma and predicts the velocity; the default schedule
is 1 down to 1/steps, shifted by FLUX.1's mu of the image's token count (resources/model_configs/fibo2)."""
from __future__ import annotations

import torch
from diffusers import DiffusionPipeline

from graph_engine import NodeError
from nodes.generate.adapters.base import frames_from_batch, frames_in_batch, padded_rows
from nodes.generate.adapters.flux import size_shift, size_shifted_sigmas
from nodes.generate.adapters.flux2 import Flux2Adapter, patched, unpatched
from nodes.generate.reference import text_and_references

BUNDLES = 6             # the Perceiver's bundle, then one per injection block (TEXT_ENCODER_OUT_LAYERS)
NO_QWEN3VL = ("FIBO 2 reads one text encoder, Qwen3-VL-4B (qwen3vl_4b_bf16.safetensors); this text encoder has none. "
              "Give load.text_encoder that file with type fibo2, as ComfyUI's CLIPLoader does")


def prompt_bundles(pipe, prompt: str, device, pictures=None) -> torch.Tensor:
    """One prompt's six bundles side by side per token, [L, 6 x D], as BriaFibo2Pipeline encodes it: in Qwen3-VL's
    user turn, with the pictures to edit (PIL, as Qwen3-VL sees them) marked before the prompt in its edit JSON."""
    from diffusers.pipelines.bria_fibo2.pipeline_bria_fibo2 import TEXT_ENCODER_OUT_LAYERS, BriaFibo2Pipeline
    te = getattr(pipe, "text_encoder", None)
    if te is None or not type(te).__name__.startswith("Qwen3VL"):
        raise NodeError(NO_QWEN3VL)
    layers = te.config.text_config.num_hidden_layers
    deepest = max(max(b) for b in TEXT_ENCODER_OUT_LAYERS)
    if layers < deepest:
        raise NodeError(f"FIBO 2 reads Qwen3-VL's hidden state {deepest}; this text encoder has {layers} layers: give "
                        "load.text_encoder FIBO 2's Qwen3-VL-4B (qwen3vl_4b_bf16.safetensors, 36 layers)")
    if pictures and (getattr(pipe, "processor", None) is None or not hasattr(getattr(te, "model", te), "visual")):
        raise NodeError("this Qwen3-VL file holds no vision tower, so it cannot see the pictures to edit: use "
                        "qwen3vl_4b_bf16.safetensors, which holds one")
    states, _ = BriaFibo2Pipeline._get_qwen_prompt_embeds(te, pipe.processor, prompt, image=pictures or None,
                                                          device=device)
    return states[0].permute(1, 0, 2).flatten(1)


def generation_prompt(prompt: str) -> str:
    """A prompt to make a picture from, as BriaFibo2Pipeline puts it before encoding: a JSON caption cleaned of empty
    values and scores and written compactly, anything else as it is."""
    import json
    from diffusers.pipelines.bria_fibo2.pipeline_bria_fibo2 import BriaFibo2Pipeline
    caption, _ = BriaFibo2Pipeline._parse_prompt(prompt)
    return prompt if isinstance(caption, str) else json.dumps(caption or {}, separators=(",", ":"),
                                                              ensure_ascii=False)


class Fibo2Adapter(Flux2Adapter):
    family = "fibo2"
    max_tokens = 4096

    def latents(self, pipe) -> str:
        return "flux2"

    def title(self, pipe) -> str:
        return "FIBO 2"

    def encode_text(self, pipe, prompts, device):
        """Each prompt as a caption to make a picture from (encode.fibo2 encodes edits), its own length, padded to
        the longest with the mask of each one's."""
        return *padded_rows([prompt_bundles(pipe, generation_prompt(p), device) for p in prompts]), None

    def factors(self, pipe):
        return 1, 16, 4 * int(pipe.transformer.config.in_channels)     # FLUX.2's patched latent

    def default_sigmas(self, pipe, steps, latent_shape):
        """BriaFibo2Pipeline's levels: 1 down to 1/steps, shifted by mu of the image's tokens (a latent pixel each)."""
        sch = self.scheduler(pipe)
        return size_shifted_sigmas(sch, steps, latent_shape, size_shift(sch.config, latent_shape[-2] * latent_shape[-1]))

    def flow_shift(self, pipe) -> float:
        """The tabulated schedules' shift (simple, beta, ...): e^mu of a 1024 x 1024 picture (4096 tokens, mu =
        max_shift), the size FIBO 2 was trained at, where the default schedule has the same levels."""
        import math
        return math.exp(float(self.scheduler(pipe).config.max_shift))

    def distilled_guidance(self, handle) -> bool:
        return False            # no guidance input: dev takes true CFG, edit turbo runs at cfg 1

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        reads = BUNDLES * int(handle.pipe.transformer.config.cap_feat_dim)
        return text_and_references(conds, frames, batch, device, dtype, reads,
                                   f"this FIBO 2 transformer reads {reads}: encode it with FIBO 2's Qwen3-VL-4B "
                                   "(qwen3vl_4b_bf16.safetensors, type fibo2)")

    def forward(self, handle, x_in, t, inputs):
        """Each row with its own prompt at its own length (the gist count follows the prompt's length) and the
        pictures to edit as clean context."""
        model = handle.pipe.transformer
        n = x_in.shape[0]
        flat = unpatched(frames_in_batch(x_in).float()).to(model.dtype)
        timestep = (t.float().reshape(-1)[:1] / 1000).to(flat.device)
        refs = [unpatched(r.float()).to(flat.device, model.dtype) for r in inputs.get("references", ())]
        outs = []
        for i, (e, m) in enumerate(zip(inputs["encoder_hidden_states"], inputs["mask"])):
            text = e[m].unflatten(-1, (BUNDLES, -1)).permute(1, 0, 2)[None].to(model.dtype)
            out = model(hidden_states=flat[i:i + 1], timestep=timestep, encoder_hidden_states=text,
                        context_latents=[r[i:i + 1] for r in refs] or None, return_dict=False)[0]
            outs.append(patched(out.float()))
        return frames_from_batch(torch.cat(outs), n)

    def check_latent(self, handle, latent) -> None:
        ch = 4 * int(handle.pipe.transformer.config.in_channels)
        if latent.samples.shape[1] != ch:
            raise NodeError(f"FIBO 2 samples FLUX.2's {ch}-channel latent; this one has {latent.samples.shape[1]} "
                            "channels: make it with encode.fibo2 or latent.empty from the FLUX.2 VAE "
                            "(flux2-vae.safetensors)")


class Fibo2Parts(DiffusionPipeline):
    """The loaded parts of a FIBO 2 from ComfyUI's split files: the transformer, its scheduler, Qwen3-VL, its
    tokenizer and picture processor, any of them None."""
    def __init__(self, transformer=None, scheduler=None, text_encoder=None, tokenizer=None, processor=None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, text_encoder=text_encoder,
                              tokenizer=tokenizer, processor=processor)


ADAPTERS = {"fibo2": Fibo2Adapter()}
