"""FLUX.2 dev and [klein] (images and edits): the hidden states of the prompt in its text encoder's chat template
(dev: Mistral Small 3's layers 10, 20 and 30; [klein]: Qwen3's 9, 18 and 27; side by side), a 32-channel VAE whose latent is taken in 2x2 patches and normalised by the VAE's batch-norm
statistics, and a flow-matching transformer reading each latent pixel of those 128 channels as one token, with 4-D
positions (time, row, column, layer).

The latent Kinograph holds is that normalised, patched one ([B, 128, 1, H/16, W/16], as ComfyUI's
EmptyFlux2LatentImage makes it). dev has guidance distilled in: sample's cfg is the guidance the transformer is told
(ComfyUI's FluxGuidance; no negative pass); [klein] has no guidance input and takes true CFG with a negative prompt, as
Flux2KleinPipeline mixes it (its distilled releases at cfg 1, no negative pass). The default schedule is Flux2Pipeline's (and ComfyUI's Flux2Scheduler's):
1 down to 1/steps, shifted by an empirical mu of the image's token count and the step count, then 0.

Pictures to edit (condition.reference, ComfyUI's ReferenceLatent) are read as more tokens after the image's, the
i-th on time plane 10 + 10 i, never denoised (Flux2Pipeline's image argument)."""
from __future__ import annotations

from contextlib import contextmanager, nullcontext

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter, frame_centres, frames_from_batch, frames_in_batch
from nodes.generate.reference import with_indexed_references

TEXT_LAYERS = (10, 20, 30)          # Flux2Pipeline's text_encoder_out_layers (Mistral Small 3's)
KLEIN_LAYERS = (9, 18, 27)          # Flux2KleinPipeline's (Qwen3's)
MAX_TOKENS = 512


def tokens_of(x: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] -> [N, h w, C] (Flux2Pipeline._pack_latents)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h * w).permute(0, 2, 1)


def positions(h: int, w: int, t: int = 0) -> torch.Tensor:
    """Each latent pixel's (time, row, column, layer) as Flux2Pipeline._prepare_latent_ids gives them."""
    return torch.cartesian_prod(torch.tensor([t]), torch.arange(h), torch.arange(w), torch.arange(1))


def patched(z: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, 4C, H/2, W/2] (Flux2Pipeline._patchify_latents)."""
    n, c, h, w = z.shape
    return z.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w // 2)


def unpatched(z: torch.Tensor) -> torch.Tensor:
    """patched's inverse."""
    n, c, h, w = z.shape
    return z.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, h * 2, w * 2)


def empirical_mu(tokens: int, steps: int) -> float:
    """Black Forest Labs' shift for FLUX.2 (their sampling.py, Flux2Pipeline's compute_empirical_mu): linear in the
    token count, interpolated in the step count between fits at 10 and 200 steps; above 4300 tokens the 200-step
    fit alone."""
    a1, b1, a2, b2 = 8.73809524e-05, 1.89833333, 0.00016927, 0.45666666
    m200 = a2 * tokens + b2
    if tokens > 4300:
        return float(m200)
    m10 = a1 * tokens + b1
    a = (m200 - m10) / 190.0
    return float(a * steps + m200 - 200.0 * a)


def bn_stats(vae):
    """The batch norm's mean and standard deviation [1, 128, 1, 1] the patched latent is normalised by."""
    mean = vae.bn.running_mean.view(1, -1, 1, 1)
    std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps)
    return mean.float(), std.float()


@contextmanager
def kv_processors(transformer):
    """While active, the transformer's attention takes the KV arguments (diffusers' Flux2KV processors, which
    Flux2KleinKVPipeline installs for good; without those arguments they compute what the plain ones do)."""
    from diffusers.models.transformers.transformer_flux2 import (Flux2KVAttnProcessor,
                                                                  Flux2KVParallelSelfAttnProcessor)
    blocks = [(b, Flux2KVAttnProcessor) for b in transformer.transformer_blocks] + \
        [(b, Flux2KVParallelSelfAttnProcessor) for b in transformer.single_transformer_blocks]
    before = [b.attn.processor for b, _ in blocks]
    for b, cls in blocks:
        b.attn.set_processor(cls())
    try:
        yield
    finally:
        for (b, _), p in zip(blocks, before):
            b.attn.set_processor(p)


class Flux2Adapter(Adapter):
    family = "flux2"
    space = "flow"
    prediction = "flow"
    per_frame_text = True
    single_file = True
    reads_references = True
    max_tokens = MAX_TOKENS

    def factors(self, pipe):
        if getattr(pipe, "vae", None) is None:       # a transformer from its own file
            return 1, 16, int(pipe.transformer.config.in_channels)
        return 1, int(pipe.vae_scale_factor) * 2, int(pipe.vae.config.latent_channels) * 4

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        """Mistral Small 3's layers 10, 20, 30 of the prompt in its chat template (dev, Flux2Pipeline), or Qwen3's
        9, 18, 27 in Qwen3's, thinking off ([klein], Flux2KleinPipeline), side by side per token."""
        from diffusers import Flux2KleinPipeline, Flux2Pipeline
        te = getattr(pipe, "text_encoder", None)
        if te is None:
            raise NodeError("this text encoder has none of FLUX.2's: give load.text_encoder "
                            "mistral_3_small_flux2_bf16.safetensors for FLUX.2 dev or qwen_3_4b.safetensors / "
                            "qwen_3_8b for [klein] (type flux2), or load a FLUX.2 diffusers folder")
        if type(te).__name__.startswith("Qwen3"):
            embeds = Flux2KleinPipeline._get_qwen3_prompt_embeds(te, pipe.tokenizer, list(prompts), device=device,
                                                                 max_sequence_length=self.max_tokens,
                                                                 hidden_states_layers=KLEIN_LAYERS)
        else:
            embeds = Flux2Pipeline._get_mistral_3_small_prompt_embeds(te, pipe.tokenizer, list(prompts),
                                                                      device=device,
                                                                      max_sequence_length=self.max_tokens,
                                                                      hidden_states_layers=TEXT_LAYERS)
        return embeds, None, None

    def token_offsets(self, pipe, text):
        return None             # the chat template's tokens come first: no span of the prompt maps onto them

    # -- sampling ------------------------------------------------------------------------
    def default_sigmas(self, pipe, steps, latent_shape):
        sch = self.scheduler(pipe)
        sch.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps),
                          mu=empirical_mu(latent_shape[-2] * latent_shape[-1], steps))
        return torch.as_tensor(sch.sigmas, dtype=torch.float64).flatten()

    def flow_shift(self, pipe) -> float:
        """The shift of the tabulated schedules (simple, beta, ...): e^mu of a 1024x1024 picture at 20 steps
        (about 3.1), the shift the default schedule has there."""
        return float(np.exp(empirical_mu(64 * 64, 20)))

    def distilled_guidance(self, handle) -> bool:
        """dev is told sample's cfg as its guidance; [klein] has no guidance input and takes true CFG."""
        return bool(handle.pipe.transformer.config.guidance_embeds)

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        pix = frame_centres(frames, 1)
        rows = [c.at_frames(pix)[0] for c in conds]
        reads = int(handle.pipe.transformer.config.joint_attention_dim)
        if rows[0].shape[-1] != reads:
            raise NodeError(f"this prompt was encoded {rows[0].shape[-1]} wide, and this FLUX.2 transformer reads "
                            f"{reads}: FLUX.2 dev reads Mistral Small 3 (mistral_3_small_flux2_*), [klein] 4B Qwen3-4B "
                            "(qwen_3_4b) and [klein] 9B Qwen3-8B (qwen_3_8b_*). Encode it with the model's own")
        length = max(e.shape[1] for e in rows)
        if any(e.shape[1] != length for e in rows):
            raise NodeError("FLUX.2 prompts are all 512 tokens long; these conditionings differ: encode them with "
                            "the same FLUX.2 text encoder")
        out = {"encoder_hidden_states": torch.cat([e for e in rows for _ in range(batch)]).to(device, dtype)}
        with_indexed_references(out, conds, frames, batch, device, dtype)
        return out

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        n, c, f, h, w = x_in.shape
        flat = frames_in_batch(x_in)
        tokens, ids = tokens_of(flat), positions(h, w)
        own = tokens.shape[1]
        refs = [(tokens_of(ref).to(tokens), positions(ref.shape[-2], ref.shape[-1], 10 + 10 * i))
                for i, ref in enumerate(inputs.get("references", ()))]     # the pictures to edit, not denoised
        kv = {}
        if refs and handle.option("reference_kv"):
            # [klein] KV (Flux2KleinKVPipeline): the pictures' tokens first, read at timestep 0 and attending only
            # to each other, so their keys and values are the same at every step; its pipeline keeps them from
            # the first step, here they are computed again (the same values)
            kv = {"kv_cache_mode": "extract", "num_ref_tokens": sum(r.shape[1] for r, _ in refs)}
            tokens = torch.cat([r for r, _ in refs] + [tokens], 1)
            ids = torch.cat([i for _, i in refs] + [ids])
        else:
            for r, i in refs:
                tokens, ids = torch.cat([tokens, r], 1), torch.cat([ids, i])
        ehs = inputs["encoder_hidden_states"]
        rows = n * f
        guidance = None
        if model.config.guidance_embeds:
            g = inputs.get("guidance")
            guidance = torch.full((rows,), float(4.0 if g is None else g), device=flat.device, dtype=torch.float32)
        txt_ids = positions(1, 1).repeat(ehs.shape[1], 1)
        txt_ids[:, 3] = torch.arange(ehs.shape[1])
        with kv_processors(model) if kv else nullcontext():
            out = model(hidden_states=tokens.to(model.dtype), encoder_hidden_states=ehs,
                        timestep=(t.float() / 1000).to(flat.device).expand(rows),
                        img_ids=ids.to(flat.device).expand(rows, -1, -1),
                        txt_ids=txt_ids.to(flat.device).expand(rows, -1, -1), guidance=guidance, return_dict=False,
                        **kv)[0]
        out = out[:, :own].permute(0, 2, 1).reshape(rows, -1, h, w)
        return frames_from_batch(out, n)

    # -- VAE: each frame a picture --------------------------------------------------------
    def vae_per_frame(self):
        return True

    def vae_encode(self, pipe, pixels, generator=None):
        vae = pipe.vae
        z = vae.encode(frames_in_batch(pixels).to(vae.device, vae.dtype)).latent_dist.mode()
        mean, std = bn_stats(vae)
        z = (patched(z.float()) - mean.to(z.device)) / std.to(z.device)
        return frames_from_batch(z, pixels.shape[0]).float()

    def vae_decode(self, pipe, latent):
        vae = pipe.vae
        mean, std = bn_stats(vae)
        z = frames_in_batch(latent).float().to(vae.device)
        z = unpatched(z * std.to(z.device) + mean.to(z.device))
        img = vae.decode(z.to(vae.dtype), return_dict=False)[0]
        return frames_from_batch(img, latent.shape[0]).float()

    def check_latent(self, handle, latent) -> None:
        ch = int(handle.pipe.transformer.config.in_channels)
        if latent.samples.shape[1] != ch:
            raise NodeError(f"FLUX.2 samples its own 128-channel latent; this one has {latent.samples.shape[1]} "
                            "channels: make it with latent.empty from a FLUX.2 VAE (ComfyUI's EmptyFlux2LatentImage)")


ADAPTERS = {"flux2": Flux2Adapter()}
