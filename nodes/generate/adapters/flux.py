"""FLUX.1 (images): CLIP-L's pooled embedding and T5-XXL's hidden states, a 16-channel 2-D VAE with a shift, and a
flow-matching transformer that reads the latent in 2x2 patches as one token sequence with 3-D position ids.

dev has guidance distilled in (sample's cfg is the guidance the transformer is told, as FluxGuidance sets it in
ComfyUI; no negative pass) and samples on a schedule shifted by the image's size (diffusers' dynamic shifting,
ComfyUI's ModelSamplingFlux); schnell takes no guidance and samples the plain line in a few steps. Which one a model
is comes from its transformer (guidance_embeds) and the scheduler loaded with it (a folder's own, or the shipped
config of the variant a file shows). The VAE and the conditioning's shape are SD3's too (adapters/mmdit.py)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from nodes.generate.adapters.base import frame_centres, frames_from_batch, frames_in_batch, with_concat
from nodes.generate.adapters.mmdit import MMDiTAdapter, patch_frames
from nodes.generate.reference import reference_rows

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
    packing)."""
    return pack(patch_frames(x_in, title))


def image_ids(h: int, w: int, index: int = 0, row: int = 0, column: int = 0) -> torch.Tensor:
    """Each patch token's position (index, row, column), as FluxPipeline._prepare_latent_image_ids gives it; a
    reference picture's are on plane `index`, moved by (row, column) patches."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 0] = index
    ids[..., 1] += torch.arange(h // 2)[:, None] + row
    ids[..., 2] += torch.arange(w // 2)[None, :] + column
    return ids.reshape(-1, 3)


def reference_tokens(refs, method: str, h: int, w: int):
    """The reference latents ([rows, C, rh, rw] each) as tokens beside a generated h x w latent's, and their
    positions, placed as ComfyUI's Flux.forward places them (offset: plane 1, each further one beside or below the
    last, whichever keeps the whole squarer; index: plane 1, 2, ...; uxo: plane 0, past the image's own corner).
    A side the patches do not divide is padded by wrapping round, as ComfyUI's pad_to_patch_size does."""
    tokens, ids = [], []
    index = hh = ww = 0
    for r in refs:
        rh, rw = r.shape[-2:]
        if method == "index":
            index, ho, wo = index + 1, 0, 0
        elif method == "uxo":
            index, ho, wo = 0, (h + 1) // 2 * 2 + hh, (w + 1) // 2 * 2 + ww
            hh, ww = hh + rh, ww + rw
        else:
            index, ho, wo = 1, 0, 0
            if rh + hh > rw + ww:
                wo = ww
            else:
                ho = hh
            hh, ww = max(hh, rh + ho), max(ww, rw + wo)
        r = F.pad(r, (0, rw % 2, 0, rh % 2), mode="circular") if rh % 2 or rw % 2 else r
        tokens.append(pack(r))
        ids.append(image_ids(r.shape[-2], r.shape[-1], index, (ho + 1) // 2, (wo + 1) // 2))
    return torch.cat(tokens, 1), torch.cat(ids)


def size_shift(config, tokens: int) -> float:
    """mu of a dynamically shifted schedule for an image of `tokens` patches (diffusers' calculate_shift, ComfyUI's
    ModelSamplingFlux): linear in the token count, base_shift at 256 tokens, max_shift at 4096 (1024x1024)."""
    lo, hi = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    m = (config.get("max_shift", 1.15) - config.get("base_shift", 0.5)) / (hi - lo)
    return tokens * m + config.get("base_shift", 0.5) - m * lo


def size_shifted_sigmas(sch, steps: int, latent_shape, mu=None) -> torch.Tensor:
    """The levels FluxPipeline and QwenImagePipeline visit: 1 down to 1/steps through their scheduler, which shifts
    them by mu for the image's 2x2-patch count where it shifts dynamically (`mu`: a pipeline's own), then 0."""
    kw = {}
    if sch.config.get("use_dynamic_shifting"):
        kw["mu"] = size_shift(sch.config, (latent_shape[-2] // 2) * (latent_shape[-1] // 2)) if mu is None else mu
    sch.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), **kw)
    return torch.as_tensor(sch.sigmas, dtype=torch.float64).flatten()


class FluxAdapter(MMDiTAdapter):
    family = "flux"
    name = "FLUX.1"
    encoders = "CLIP-L and T5-XXL"
    max_tokens = 512
    flow_levels = 10000               # ComfyUI's ModelSamplingFlux tabulates 10000 levels (1000 for other flow models)
    reads_references = True           # FLUX.1 Kontext's pictures to edit (ComfyUI hands them to any FLUX.1 model)

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
            cfg = pipe.transformer.config
            return 1, 8, int(cfg.out_channels or cfg.in_channels) // 4
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
        out = super().conditioning_inputs(handle, conds, frames, batch, device, dtype)
        out = with_concat(out, conds, frames, batch, device, dtype)       # FLUX.1 Fill's / Depth's pictures
        biases = [c.extra.get("attention_bias") for c in conds]
        if any(b is not None for b in biases):       # FLUX.1 Redux at attn_bias (nodes/generate/redux.py)
            rows, size = out["encoder_hidden_states"].shape[0] // len(conds), out["encoder_hidden_states"].shape[1] + 1
            # one per row of the prompts' (each conditioning's batch items times frames), as the prompts are laid out
            out["attention_bias"] = torch.stack([torch.zeros(size, size) if b is None else b for b in biases
                                                 for _ in range(rows)]).to(device, dtype)
        refs, method = reference_rows(conds, frames, batch)
        if refs:
            out.update(references=[r.to(device, dtype) for r in refs], reference_method=method)
        controls = handle.option("controlnet")
        if controls:                        # control.apply: encoded in forward, at the latent's size
            out.update(control=list(controls), control_frames=frame_centres(frames, 1))
        return out

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        n, c, f, h, w = x_in.shape
        flat = self.in_patches(x_in)
        if "concat" in inputs:      # FLUX.1 Fill: each patch's latent, then its masked picture's and mask's channels
            flat = torch.cat([flat, frames_in_batch(inputs["concat"]).to(flat.dtype)], 1)
        ehs = inputs["encoder_hidden_states"]
        guidance = inputs.get("guidance")
        if model.config.guidance_embeds:
            guidance = torch.full((n * f,), float(3.5 if guidance is None else guidance), device=flat.device,
                                  dtype=torch.float32)
        else:
            guidance = None                         # schnell: no guidance input at all
        tokens, ids = pack(flat), image_ids(h, w)
        own = tokens.shape[1]
        timestep = (t.float() / 1000).to(flat.device).expand(n * f)
        txt_ids = torch.zeros(ehs.shape[1], 3, device=flat.device)
        control = {}
        if inputs.get("control"):
            control = self._control(handle, inputs, tokens, h, w, n, timestep, guidance, ehs, txt_ids, ids)
        if inputs.get("references"):        # FLUX.1 Kontext: the pictures to edit, read and not denoised
            ref, ref_ids = reference_tokens(inputs["references"], inputs["reference_method"], h, w)
            tokens, ids = torch.cat([tokens, ref.to(tokens)], 1), torch.cat([ids, ref_ids])
        if control and tokens.shape[1] > own:       # Kontext's pictures: steered where the image's tokens are
            control = {k: v and [F.pad(r, (0, 0, 0, tokens.shape[1] - own)) for r in v] for k, v in control.items()}
        attention = {}
        if "attention_bias" in inputs:      # FLUX.1 Redux's strength type attn_bias
            from nodes.generate.redux import spread_bias
            attention["attention_mask"] = spread_bias(inputs["attention_bias"], tokens.shape[1])
        out = model(hidden_states=tokens.to(model.dtype), timestep=timestep, guidance=guidance,
                    pooled_projections=inputs["pooled_projections"], encoder_hidden_states=ehs, txt_ids=txt_ids,
                    img_ids=ids.to(flat.device), joint_attention_kwargs=attention or None, return_dict=False,
                    **control)[0]
        return frames_from_batch(unpack(out[:, :own], h, w), n)

    def _control(self, handle, inputs, tokens, h, w, n, timestep, guidance, ehs, txt_ids, ids) -> dict:
        """The active ControlNets' residuals (flux_control.residuals), their pictures encoded for these frames and
        repeated for each conditioning and batch item, as the frames are."""
        from nodes.generate.flux_control import control_tokens, residuals
        from nodes.generate.vae_ops import encode_pixels
        model = handle.pipe.transformer
        controls = []
        for c in inputs["control"]:
            enc = lambda px, pipe=c.vae: encode_pixels(self, pipe, px, "encoding the ControlNet's picture")  # noqa: E731
            scale = self.factors(c.vae)[1]
            frames = control_tokens(c, inputs["control_frames"], h, w, enc, scale)
            frames = frames.repeat(n, *[1] * (frames.dim() - 1))
            controls.append(c._replace(frames=frames.to(tokens.device, c.net.dtype)))
        g = torch.full((tokens.shape[0],), float(3.5 if inputs.get("guidance") is None else inputs["guidance"]),
                       device=tokens.device, dtype=torch.float32) if guidance is None else guidance
        return residuals(controls, len(model.transformer_blocks), len(model.single_transformer_blocks), g,
                         hidden_states=tokens.to(model.dtype), timestep=timestep,
                         pooled_projections=inputs["pooled_projections"], encoder_hidden_states=ehs, txt_ids=txt_ids,
                         img_ids=ids.to(tokens.device))

    def encode_image(self, pipe, image, device):
        """SigLIP's last hidden states (post-norm), the tokens FLUX.1 Redux reads (FluxPriorReduxPipeline's)."""
        px = pipe.feature_extractor(images=image, return_tensors="pt").pixel_values
        return pipe.image_encoder(pixel_values=px.to(device, pipe.image_encoder.dtype)).last_hidden_state


ADAPTERS = {"flux": FluxAdapter()}
