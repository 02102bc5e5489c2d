"""FLUX.1 (images): CLIP-L's pooled embedding and T5-XXL's hidden states, a 16-channel 2-D VAE with a shift, and a
flow-matching transformer that reads the latent in 2x2 patches as one token sequence with 3-D position ids.

dev has guidance distilled in (sample's cfg is the guidance the transformer is told, as FluxGuidance sets it in
ComfyUI; no negative pass) and samples on a schedule shifted by the image's size (diffusers' dynamic shifting,
ComfyUI's ModelSamplingFlux); schnell takes no guidance and samples the plain line in a few steps. Which one a model
is comes from its transformer (guidance_embeds) and the scheduler loaded with it (a folder's own, or the shipped
config of the variant a file shows). Frames of a latent are separate images, each its own batch item, as SD's."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter, frame_centres, frames_from_batch, frames_in_batch

NO_ENCODERS = ("FLUX.1 reads two text encoders, CLIP-L (clip_l.safetensors) and T5-XXL (t5xxl_fp16.safetensors); "
               "this text encoder {lacks}. Give load.text_encoder both files (name and name2, type flux), as "
               "ComfyUI's DualCLIPLoader does, or load a FLUX.1 diffusers folder, which holds both")


def pack(x: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] -> [N, h/2 * w/2, 4C]: the 2x2 patches as tokens (FluxPipeline._pack_latents)."""
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(n, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """pack's inverse (FluxPipeline._unpack_latents)."""
    n, _, d = tokens.shape
    return tokens.view(n, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(n, d // 4, h, w)


def frame_tokens(x_in: torch.Tensor, title: str) -> torch.Tensor:
    """A latent [N, C, f, h, w] as each frame's 2x2-patch tokens [N f, h/2 w/2, 4C] (FLUX.1's and Qwen-Image's
    packing); a size that does not divide into patches is named, not met with a reshape error."""
    h, w = x_in.shape[-2:]
    if h % 2 or w % 2:
        raise NodeError(f"{title} reads the latent in 2x2 patches; {w}x{h} latent pixels do not divide into them: "
                        "make width and height multiples of 16")
    return pack(frames_in_batch(x_in))


def image_ids(h: int, w: int) -> torch.Tensor:
    """Each patch token's position (0, row, column), as FluxPipeline._prepare_latent_image_ids gives it."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] += torch.arange(h // 2)[:, None]
    ids[..., 2] += torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3)


def size_shift(config, tokens: int) -> float:
    """mu of a dynamically shifted schedule for an image of `tokens` patches (diffusers' calculate_shift, ComfyUI's
    ModelSamplingFlux): linear in the token count, base_shift at 256 tokens, max_shift at 4096 (1024x1024)."""
    lo, hi = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    m = (config.get("max_shift", 1.15) - config.get("base_shift", 0.5)) / (hi - lo)
    return tokens * m + config.get("base_shift", 0.5) - m * lo


def size_shifted_sigmas(sch, steps: int, latent_shape) -> torch.Tensor:
    """The levels FluxPipeline and QwenImagePipeline visit: 1 down to 1/steps through their scheduler, which shifts
    them by mu for the image's 2x2-patch count where it shifts dynamically, then 0."""
    kw = {}
    if sch.config.get("use_dynamic_shifting"):
        kw["mu"] = size_shift(sch.config, (latent_shape[-2] // 2) * (latent_shape[-1] // 2))
    sch.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), **kw)
    return torch.as_tensor(sch.sigmas, dtype=torch.float64).flatten()


class FluxAdapter(Adapter):
    family = "flux"
    space = "flow"
    prediction = "flow"
    embedded_guidance = True
    per_frame_text = True
    single_file = True
    max_tokens = 512
    flow_levels = 10000               # ComfyUI's ModelSamplingFlux tabulates 10000 levels (1000 for other flow models)

    def load(self, path: Path, dtype, device: str, **opts):
        if Path(path).is_file():
            from nodes.generate.converters.pipelines import load_single_file
            from nodes.generate.detect import detect_file
            det = detect_file(path)
            if det.family == self.family and det.role == "checkpoint":
                from nodes.generate.converters.flux import flux_pipeline
                return flux_pipeline(Path(path), det, dtype)
            return load_single_file(self.family, Path(path), dtype, det)
        from diffusers import FluxPipeline
        return FluxPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)

    def factors(self, pipe):
        if getattr(pipe, "vae", None) is None:      # a transformer from its own file: 4 latent channels per patch
            return 1, 8, int(pipe.transformer.config.in_channels) // 4
        return 1, int(pipe.vae_scale_factor), int(pipe.vae.config.latent_channels)

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        lacks = [name for name, part in (("CLIP-L", "text_encoder"), ("T5-XXL", "text_encoder_2"))
                 if getattr(pipe, part, None) is None]
        if lacks:
            raise NodeError(NO_ENCODERS.format(lacks="has no " + " and no ".join(lacks)))
        embeds, pooled, _ = pipe.encode_prompt(list(prompts), list(prompts), device=device,
                                               max_sequence_length=self.max_tokens)
        return embeds, None, pooled

    def clip_pooled(self, pipe, prompts, device) -> torch.Tensor:
        """CLIP-L's pooled embedding alone [K, 768] (encode.flux's text_l)."""
        if getattr(pipe, "text_encoder", None) is None:
            raise NodeError(NO_ENCODERS.format(lacks="has no CLIP-L"))
        return pipe._get_clip_prompt_embeds(list(prompts), device=device)

    def token_offsets(self, pipe, text):
        return self._offsets(pipe.tokenizer_2, text, self.max_tokens)

    # -- sampling ------------------------------------------------------------------------
    def default_sigmas(self, pipe, steps, latent_shape):
        """FluxPipeline's levels: 1 down to 1/steps, shifted for the image's size where the scheduler shifts
        dynamically (dev), as they are (schnell's shift 1), then 0."""
        return size_shifted_sigmas(self.scheduler(pipe), steps, latent_shape)

    def flow_shift(self, pipe) -> float:
        """The shift of the tabulated schedules (simple, beta, ...) and of prompt step ranges: ComfyUI's Flux model
        shifts by mu = max_shift (1.15, the 1024x1024 value) whatever the size, sigma = e^mu t / (1 + (e^mu - 1) t),
        which is the flow shift e^mu; schnell's scheduler does not shift."""
        cfg = pipe.scheduler.config
        if cfg.get("use_dynamic_shifting"):
            return math.exp(float(cfg.get("max_shift", 1.15)))
        return float(cfg.get("shift") or 1.0)

    def percent_sigma(self, pipe, percent, shift=None):
        """ComfyUI's ModelSamplingFlux.percent_to_sigma: 1 - percent, on the unshifted line (condition.timestep_range
        on a FLUX.1 model switches at the same step as in ComfyUI, whatever the shift)."""
        if percent <= 0.0 or percent >= 1.0:
            return super().percent_sigma(pipe, percent, shift)
        return 1.0 - percent

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        pix = frame_centres(frames, 1)
        ehs, pooled = [], []
        for c in conds:
            e, _, p = c.at_frames(pix)
            if p is None:
                raise NodeError("this conditioning has no pooled CLIP embedding, which FLUX.1 needs: encode the prompt "
                                "with the FLUX.1 text encoders (CLIP-L and T5-XXL)")
            ehs += [e] * batch
            pooled += [p] * batch
        return {"encoder_hidden_states": torch.cat(ehs).to(device, dtype),
                "pooled_projections": torch.cat(pooled).to(device, dtype)}

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        n, c, f, h, w = x_in.shape
        tokens = frame_tokens(x_in, "FLUX.1")
        ehs = inputs["encoder_hidden_states"]
        guidance = inputs.get("guidance")
        if model.config.guidance_embeds:
            guidance = torch.full((n * f,), float(3.5 if guidance is None else guidance), device=tokens.device,
                                  dtype=torch.float32)
        else:
            guidance = None                         # schnell: no guidance input at all
        out = model(hidden_states=tokens.to(model.dtype), timestep=(t.float() / 1000).to(tokens.device).expand(n * f),
                    guidance=guidance, pooled_projections=inputs["pooled_projections"], encoder_hidden_states=ehs,
                    txt_ids=torch.zeros(ehs.shape[1], 3, device=tokens.device), img_ids=image_ids(h, w).to(tokens.device),
                    return_dict=False)[0]
        return frames_from_batch(unpack(out, h, w), n)

    # -- VAE ------------------------------------------------------------------------------
    def vae_per_frame(self):
        return True

    def vae_encode(self, pipe, pixels, generator=None):
        vae = pipe.vae
        z = vae.encode(frames_in_batch(pixels).to(vae.device, vae.dtype)).latent_dist.mode()
        return frames_from_batch((z - _shift(vae)) * vae.config.scaling_factor, pixels.shape[0]).float()

    def vae_decode(self, pipe, latent):
        vae = pipe.vae
        z = frames_in_batch(latent) / vae.config.scaling_factor + _shift(vae)
        img = vae.decode(z.to(vae.device, vae.dtype), return_dict=False)[0]
        return frames_from_batch(img, latent.shape[0]).float()


def _shift(vae) -> float:
    return float(getattr(vae.config, "shift_factor", None) or 0.0)


ADAPTERS = {"flux": FluxAdapter()}
