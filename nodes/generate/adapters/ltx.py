"""LTX-Video: T5 text (with attention mask), a 32x/8x compressing VAE with per-channel statistics,
a transformer on packed latent tokens, flow matching with a resolution-dependent time shift."""
from __future__ import annotations

import numpy as np
import torch

from nodes.generate.adapters.base import Adapter, stack_global

# ComfyUI's LTXV VAE decode (and Lightricks' configs: decode_timestep, decode_noise_scale)
DECODE_TIMESTEP, DECODE_NOISE = 0.05, 0.025


class LTXAdapter(Adapter):
    family = "ltx"
    single_file = True
    space = "flow"
    prediction = "flow"
    max_tokens = 128

    def encode_text(self, pipe, prompts, device):
        embeds, mask, _, _ = pipe.encode_prompt(list(prompts), do_classifier_free_guidance=False,
                                                max_sequence_length=self.max_tokens, device=device)
        return embeds, mask.bool(), None

    def scheduler_kwargs(self, pipe, latent_shape):
        from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift
        _, _, t, h, w = latent_shape
        cfg = pipe.scheduler.config
        return {"mu": calculate_shift(t * h * w, cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                                      cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))}

    def default_sigmas(self, pipe, steps, latent_shape):
        if steps == 1:
            # The shift_terminal stretch divides by one minus the last level, which for one step is the first,
            # 1.0: every level came out NaN. Time shift and stretch keep 1.0 where it is at any step count, so one
            # step goes from 1.0 to 0, as ComfyUI's one-step LTX schedule does.
            return torch.tensor([1.0, 0.0], dtype=torch.float64)
        sch = self.scheduler(pipe)
        sch.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), **self.scheduler_kwargs(pipe, latent_shape))
        return torch.as_tensor(sch.sigmas, dtype=torch.float64).flatten()

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        e, m, _ = stack_global(conds, frames, device, dtype, batch, self.factors(handle.pipe)[0])
        return {"encoder_hidden_states": e, "encoder_attention_mask": m, "fps": conds[-1].meta.get("fps", 25.0)}

    def forward(self, handle, x_in, t, inputs):
        pipe = handle.pipe
        model = pipe.transformer
        _, _, f, h, w = x_in.shape
        p, pt = pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
        tf, sf, _ = self.factors(pipe)
        packed = pipe._pack_latents(x_in.to(model.dtype), p, pt)
        where = {"rope_interpolation_scale": (tf / float(inputs["fps"]), sf, sf)}
        if causal_frames(pipe):
            where = {"video_coords": causal_coords(packed.shape[0], f, h, w, p, pt, tf, sf, float(inputs["fps"]),
                                                   packed.device)}
        out = model(hidden_states=packed, encoder_hidden_states=inputs["encoder_hidden_states"],
                    timestep=t.to(packed.device).expand(packed.shape[0]),
                    encoder_attention_mask=inputs["encoder_attention_mask"], num_frames=f, height=h, width=w,
                    return_dict=False, **where)[0]
        return pipe._unpack_latents(out.float(), f, h, w, p, pt)

    def vae_encode(self, pipe, pixels, generator=None):
        vae = pipe.vae
        z = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        return pipe._normalize_latents(z, vae.latents_mean, vae.latents_std, vae.config.scaling_factor).float()

    def vae_decode(self, pipe, latent):
        vae = pipe.vae
        z = latent.to(vae.device, vae.dtype)
        temb = None
        if vae.config.timestep_conditioning:
            # The timestep-conditioned decoders (0.9.1 on) were tuned to finish a slightly noisy latent: ComfyUI and
            # Lightricks' pipelines mix 2.5 % noise into the normalised latent and decode at timestep 0.05. Decoding
            # at 0 without noise (diffusers' default) gave other frames than ComfyUI's for the same latent. The
            # noise is seeded, so a decode repeats.
            noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0)).to(z.device, z.dtype)
            z = (1.0 - DECODE_NOISE) * z + DECODE_NOISE * noise
            temb = torch.full((z.shape[0],), DECODE_TIMESTEP, device=z.device, dtype=z.dtype)
        z = pipe._denormalize_latents(z, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
        return vae.decode(z, temb, return_dict=False)[0].float()


def causal_frames(pipe) -> bool:
    """Whether the model places latent frames causally in time: its file's config says so (0.9.5 on), or it is a
    diffusers LTXConditionPipeline (0.9.5 on), which always does."""
    return bool(getattr(pipe.transformer.config, "causal_temporal_positioning", False)) or \
        type(pipe).__name__ == "LTXConditionPipeline"


def causal_coords(batch, frames, height, width, p, pt, tf, sf, fps, device):
    """Each token's position in pixels and seconds, latent frame k at the first pixel frame it encodes
    (max(0, k * tf + 1 - tf): the first latent frame is one pixel frame, the others tf each), as Lightricks'
    pipeline and diffusers' LTXConditionPipeline place them."""
    from diffusers import LTXConditionPipeline
    ids = LTXConditionPipeline._prepare_video_ids(batch, frames, height, width, p, pt, device=device)
    coords = LTXConditionPipeline._scale_video_ids(ids, sf, tf, 0, device=device).float()
    coords[:, 0] = coords[:, 0] / fps
    return coords


ADAPTERS = {"ltx": LTXAdapter()}
