"""Anima (circlestone-labs/Anima: anime and illustration pictures): Cosmos-Predict2's 2B DiT over 2x2 patches of
Qwen-Image's latent (its VAE, the Wan 2.1 VAE's per-channel statistics), reading the prompt through its LLM adapter
(nodes/generate/anima_model.py).

The prompt is read as ComfyUI reads it (comfy/text_encoders/anima.py): Qwen3-0.6B's last layer (final norm applied)
over the prompt's own Qwen tokens (no template, no start or end token; an empty prompt is one <|endoftext|>), and the
same prompt's T5-XXL token ids (</s> appended), which the DiT's adapter embeds as its queries. No T5 model is run: only
its tokenizer. Prompt weights ((word:1.2), whatever encode.text's weighting) are ComfyUI's: the prompt split into
parts as ComfyUI's parser splits it (prompts.comfy_parts), each part tokenized on its own, Qwen3's states left
unweighted (ComfyUI's AnimaTokenizer sets their weights to 1.0), and the adapter's output scaled by each T5 token's
weight.

Sampled as ComfyUI samples it (supported_models.Anima: ModelType.FLOW, shift 3, multiplier 1): the DiT is told sigma
itself and predicts the flow velocity; every schedule's levels are shifted by 3. True CFG with a negative prompt. An
Anima ControlNet-LLLite (control.anima_lllite) steers the DiT at the steps of its window."""
from __future__ import annotations

import torch
from diffusers import DiffusionPipeline
from diffusers.loaders import CosmosLoraLoaderMixin

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter, frames_from_batch, padded_rows
from nodes.generate.adapters.mmdit import patch_frames
from nodes.generate.adapters.qwenimage import QwenImageAdapter
from nodes.generate.prompts import comfy_parts

SHIFT = 3.0                 # ComfyUI's Anima sampling shift
T5_IDS = "t5_ids"           # Conditioning.extra: each prompt's T5 token ids, -1 after its own
T5_WEIGHTS = "t5_weights"   # ... and their weights
QWEN_PAD = "<|endoftext|>"  # what ComfyUI reads an empty prompt as (its pad token, 151643)
NO_QWEN3 = ("Anima reads Qwen3-0.6B (qwen_3_06b_base.safetensors); this text encoder is another. Give load.text_encoder "
            "that file with type stable_diffusion (sd) or auto, as ComfyUI's CLIPLoader does")


class AnimaAdapter(QwenImageAdapter):
    family = "anima"
    reads_references = False
    max_tokens = 0

    def factors(self, pipe):
        if getattr(pipe, "vae", None) is None:      # the DiT from its own file: Qwen-Image's latent geometry
            return 1, 8, int(pipe.transformer.config.out_channels)
        return super().factors(pipe)

    # -- text ----------------------------------------------------------------------------
    reads_weights = True

    def encode_text(self, pipe, prompts, device):
        """Qwen3's last states over each prompt's own tokens (its parts tokenized apart, unweighted), padded to the
        longest with the mask of each one's."""
        encoder = getattr(pipe, "text_encoder", None)
        if encoder is None or not type(encoder).__name__.startswith("Qwen3") or \
                getattr(pipe, "tokenizer_2", None) is None:
            raise NodeError(NO_QWEN3)
        model = getattr(encoder, "model", encoder)
        pad = pipe.tokenizer.convert_tokens_to_ids(QWEN_PAD)
        rows = []
        for p in prompts:
            ids = tokens(pipe.tokenizer, p)[0] or [pad]
            rows.append(model(input_ids=torch.tensor([ids], device=device)).last_hidden_state[0])
        return *padded_rows(rows), None

    def text_extra(self, pipe, prompts):
        """Each prompt's T5 ids (ComfyUI's: each part tokenized on its own, one </s> at the end) and their weights, -1
        and 0 after its own."""
        rows = [tokens(pipe.tokenizer_2, p, end=True) for p in prompts]
        ids = torch.full((len(rows), max(len(i) for i, _ in rows)), -1, dtype=torch.long)
        weights = torch.zeros(ids.shape)
        for k, (i, w) in enumerate(rows):
            ids[k, :len(i)], weights[k, :len(w)] = torch.tensor(i), torch.tensor(w)
        return {T5_IDS: ids, T5_WEIGHTS: weights}

    def token_offsets(self, pipe, text):
        return None

    # -- sampling ------------------------------------------------------------------------
    def default_sigmas(self, pipe, steps, latent_shape):
        return Adapter.default_sigmas(self, pipe, steps, latent_shape)

    def flow_shift(self, pipe) -> float:
        return SHIFT

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        """Each conditioning's DiT context (the adapter's output on its Qwen3 states and T5 ids, padded to 512; a
        prompt of more T5 tokens keeps them all), one per row of the batch; the model's active LLLite nets under "control" (the sampler keeps those whose
        window holds the step)."""
        from nodes.generate.anima_model import context
        model = handle.pipe.transformer
        reads = int(model.llm_adapter.blocks[0].cross_attn.k_proj.in_features)
        rows = []
        for c in conds:
            ids = c.extra.get(T5_IDS)
            if ids is None or c.embeds.shape[-1] != reads:
                raise NodeError(f"this prompt was not read by Anima's Qwen3-0.6B (its DiT reads {reads}-wide Qwen3 "
                                "states and their T5 token ids): encode it with qwen_3_06b_base.safetensors "
                                "(load.text_encoder type stable_diffusion)")
            if len(c.keyframes) > 1:
                raise NodeError("Anima draws pictures, one prompt each: give encode.text one prompt, not a schedule")
            states = c.embeds[:1][:, c.mask[0]] if c.mask is not None else c.embeds[:1]
            own = ids[0] >= 0
            weights = c.extra.get(T5_WEIGHTS, torch.ones(ids.shape))[:1, own]
            rows += [context(model, states.to(device), ids[:1, own].to(device), weights.to(device))] * \
                (batch * len(frames))
        out = {"contexts": [r.to(device, dtype) for r in rows]}
        controls = handle.option("lllite")
        if controls:
            out["control"] = list(controls)
        return out

    def forward(self, handle, x_in, t, inputs):
        from nodes.generate.anima_lllite import steering
        model = handle.pipe.transformer
        n, _, _, h, w = x_in.shape
        flat = patch_frames(x_in, "Anima").to(model.dtype)
        if model.config.in_channels == model.config.out_channels + 1:   # the padding mask's channel: nothing padded
            flat = torch.cat([flat, flat.new_zeros(flat.shape[0], 1, h, w)], 1)
        sigma = (t.float() / 1000).to(flat.device).expand(flat.shape[0])
        space = self.factors(handle.pipe)[1]
        contexts = inputs["contexts"]
        # rows whose contexts differ in length run apart, as ComfyUI runs conditionings it cannot concatenate
        runs = [slice(0, len(contexts))] if len({c.shape[1] for c in contexts}) == 1 else \
            [slice(i, i + 1) for i in range(len(contexts))]
        outs = []
        with steering(model, inputs.get("control", ()), h * space, w * space):
            for r in runs:
                outs.append(model(flat[r].unsqueeze(2), sigma[r], torch.cat(contexts[r]).to(model.dtype),
                                  return_dict=False)[0])
        return frames_from_batch(torch.cat(outs)[:, :, 0].float(), n)


def tokens(tokenizer, prompt: str, end: bool = False) -> tuple:
    """(ids, weights) of a prompt as ComfyUI's tokenizers read it: each of its parts (prompts.comfy_parts) tokenized
    on its own, no special token but one </s> at the end where `end` (T5's)."""
    ids, weights = [], []
    for part, w in comfy_parts(prompt):
        got = tokenizer(part, add_special_tokens=False).input_ids
        ids, weights = ids + got, weights + [w] * len(got)
    if end:
        ids, weights = ids + [tokenizer.eos_token_id], weights + [1.0]
    return ids, weights


class AnimaParts(DiffusionPipeline, CosmosLoraLoaderMixin):
    """The loaded parts of an Anima (diffusers has no pipeline for it): the DiT with its adapter, its scheduler,
    Qwen3-0.6B with its tokenizer and T5-XXL's tokenizer (tokenizer_2), any of them None. LoRAs load onto the
    transformer, the LLM adapter's layers included (it is the transformer's llm_adapter), in the names
    converters.lora.anima_lora gives them."""
    def __init__(self, transformer=None, scheduler=None, text_encoder=None, tokenizer=None, tokenizer_2=None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, text_encoder=text_encoder,
                              tokenizer=tokenizer, tokenizer_2=tokenizer_2)


ADAPTERS = {"anima": AnimaAdapter()}
