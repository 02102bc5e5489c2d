"""NewBie-image (NewBie-AI's Exp0.1; anime pictures): Lumina-Image 2.0's NextDiT over 2x2 patches of FLUX.1's latent
(its ae.safetensors scales and shifts it), reading two encoders as ComfyUI's DualCLIPLoader type newbie gives them:
Gemma 3 4B's next-to-last hidden states of the prompt (<bos> first, every token read, each prompt its own length, its
brackets as text) and Jina CLIP v2's pooled prompt (the mean of its last states over <s> prompt </s>, bracket weights
taken as markup and not applied, as ComfyUI's pooled output ignores them).

Sampled as ComfyUI samples it: the model is told sigma and predicts the flow from the picture to noise (it reads the
time as 1 - sigma), on the flow line at shift 6 (ComfyUI's Lumina 2 sampling, the scheduler's here;
ModelSamplingAuraFlow 6 in its template), 20 steps of res_multistep at cfg 5.5 there. Each prompt row runs through
the model alone, as ComfyUI runs a prompt and a negative of other lengths apart."""
from __future__ import annotations

import torch
from diffusers import DiffusionPipeline

from graph_engine import NodeError
from nodes.generate.adapters.base import frame_centres, frames_from_batch, frames_in_batch, padded_rows, text_of_width
from nodes.generate.adapters.mmdit import MMDiTAdapter, flux_ae_factors

NO_ENCODERS = ("NewBie-image reads two text encoders, Gemma 3 4B (gemma_3_4b_it_bf16.safetensors) and Jina CLIP v2 "
               "(jina_clip_v2_bf16.safetensors); this text encoder lacks {}. Give load.text_encoder both files (name "
               "and name2) with type newbie, as ComfyUI's DualCLIPLoader does")


def gemma_states(pipe, prompt: str, device) -> torch.Tensor:
    """[L, width]: Gemma 3's next-to-last hidden states of one prompt, <bos> first, its brackets read as text
    (ComfyUI's Gemma 3 tokenizer has weights off)."""
    from nodes.generate.prompts import literal
    ids = torch.tensor([pipe.tokenizer(literal(prompt)).input_ids], device=device)
    return pipe.text_encoder(input_ids=ids, output_hidden_states=True).hidden_states[-2][0]


class NewBieAdapter(MMDiTAdapter):
    family = "newbie"
    name = "NewBie-image"
    encoders = "Gemma 3 4B and Jina CLIP v2"
    # each encoder reads the prompt as written as ComfyUI's does: Gemma with weights off, Jina's parts without markup
    reads_weights = True

    def factors(self, pipe):
        return flux_ae_factors(pipe)

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        from nodes.generate.jina_clip2 import JinaClip2Text, pooled
        gemma = type(getattr(pipe, "text_encoder", None)).__name__.startswith("Gemma3")
        jina = isinstance(getattr(pipe, "text_encoder_2", None), JinaClip2Text)
        if not (gemma and jina):
            raise NodeError(NO_ENCODERS.format(" and ".join(
                n for n, ok in (("Gemma 3 4B", gemma), ("Jina CLIP v2", jina)) if not ok)))
        rows = [gemma_states(pipe, p, device) for p in prompts]
        pools = torch.stack([pooled(pipe.text_encoder_2, pipe.tokenizer_2, p, device) for p in prompts])
        return *padded_rows(rows), pools

    def clip_pooled(self, pipe, prompts, device):
        raise NodeError("NewBie-image's pooled prompt is Jina CLIP v2's, read with its Gemma 3 states: encode the "
                        "prompt with encode.text")

    def token_offsets(self, pipe, text):
        return None             # two tokenizers read the prompt: no one span per position

    # -- sampling ------------------------------------------------------------------------
    def default_sigmas(self, pipe, steps, latent_shape):
        from nodes.generate.samplers import SigmaTable, simple_sigmas
        return simple_sigmas(SigmaTable.flow(self.flow_shift(pipe), self.flow_levels), steps)

    def distilled_guidance(self, handle) -> bool:
        return False

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        cfg = handle.pipe.transformer.config
        out = text_of_width(conds, frames, batch, device, dtype, int(cfg.cap_feat_dim),
                            f"this NewBie-image transformer reads {cfg.cap_feat_dim}: encode it with NewBie's Gemma 3 "
                            "4B and Jina CLIP v2 (DualCLIPLoader type newbie)")
        pools = []
        for c in conds:
            p = c.at_frames(frame_centres(frames, 1))[2]
            if p is None or p.shape[-1] != int(cfg.clip_text_dim):
                raise NodeError("this prompt carries no Jina CLIP v2 pooled output NewBie-image reads: encode it with "
                                "load.text_encoder type newbie (Gemma 3 4B and Jina CLIP v2)")
            pools += [p] * batch
        out["pooled"] = torch.cat(pools).to(device, dtype)
        return out

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        n = x_in.shape[0]
        x = frames_in_batch(x_in)
        sigma = (t.float().reshape(-1)[:1] / 1000).to(x.device).expand(x.shape[0])
        ehs, mask, pools = inputs["encoder_hidden_states"], inputs["mask"], inputs["pooled"]
        out = [model(x[i:i + 1].to(model.dtype), sigma[i:i + 1], ehs[i:i + 1, mask[i]], pools[i:i + 1])
               for i in range(x.shape[0])]
        return frames_from_batch(torch.cat(out).float(), n)


class NewBieParts(DiffusionPipeline):
    """The loaded parts of a NewBie-image (diffusers has no pipeline for it): the transformer, its scheduler, FLUX.1's
    VAE, Gemma 3 4B and Jina CLIP v2 with their tokenizers, any of them None."""
    def __init__(self, transformer=None, scheduler=None, vae=None, text_encoder=None, tokenizer=None,
                 text_encoder_2=None, tokenizer_2=None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 8


ADAPTERS = {"newbie": NewBieAdapter()}
