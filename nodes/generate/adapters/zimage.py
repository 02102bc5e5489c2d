"""Z-Image (Tongyi's Z-Image Turbo and Z-Image; images): one single-stream transformer over 2x2 patches of FLUX.1's
latent (its ae.safetensors scales and shifts it), reading the next-to-last hidden states of Qwen3-4B on the prompt in
Qwen3's chat template, each prompt as long as its own tokens (no padding read).

Sampled as diffusers' ZImagePipeline samples it: the transformer is told 1 - sigma and predicts x0 - noise (the flow
velocity's negative); the schedule is 1 down to 1/steps at a fixed shift of 3 (ComfyUI's ModelSamplingAuraFlow 3 in
its Z-Image templates, its tabulated schedules at the same shift). Turbo runs at cfg 1 (no negative pass); the base
model takes true CFG with a negative, Kinograph's cfg being ZImagePipeline's guidance_scale + 1."""
from __future__ import annotations

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import frame_centres, frames_from_batch, padded_rows, text_of_width
from nodes.generate.adapters.mmdit import MMDiTAdapter, flux_ae_factors

MAX_TOKENS = 512
NO_QWEN3 = ("Z-Image reads one text encoder, Qwen3-4B (qwen_3_4b.safetensors); this text encoder has none. Give "
            "load.text_encoder that file with type lumina2, as ComfyUI's CLIPLoader does, or load a Z-Image diffusers "
            "folder, which holds it")


class ZImageAdapter(MMDiTAdapter):
    family = "zimage"
    name = "Z-Image"
    encoders = "Qwen3-4B"
    max_tokens = MAX_TOKENS

    def factors(self, pipe):
        return flux_ae_factors(pipe)

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        """Qwen3's next-to-last hidden states of each prompt in its chat template (ZImagePipeline._encode_prompt),
        padded to the longest with the mask of each prompt's own tokens."""
        if getattr(pipe, "text_encoder", None) is None or not type(pipe.text_encoder).__name__.startswith("Qwen3"):
            raise NodeError(NO_QWEN3)
        from diffusers import ZImagePipeline
        rows = ZImagePipeline._encode_prompt(pipe, list(prompts), device=device, max_sequence_length=self.max_tokens)
        return *padded_rows(rows), None

    def clip_pooled(self, pipe, prompts, device):
        raise NodeError("Z-Image reads no CLIP: encode its prompt with encode.text (Qwen3-4B alone)")

    def token_offsets(self, pipe, text):
        return None             # the chat template's tokens come first: no span of the prompt maps onto them

    # -- sampling ------------------------------------------------------------------------
    def default_sigmas(self, pipe, steps, latent_shape):
        sch = self.scheduler(pipe)
        sch.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps))
        return torch.as_tensor(sch.sigmas, dtype=torch.float64).flatten()

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        reads = int(handle.pipe.transformer.config.cap_feat_dim)
        out = text_of_width(conds, frames, batch, device, dtype, reads,
                            f"this Z-Image transformer reads {reads}: encode it with Z-Image's Qwen3-4B "
                            "(qwen_3_4b.safetensors, type lumina2)")
        controls = handle.option("controlnet")
        if controls:                        # control.model_patch: encoded in forward, at the latent's size
            out.update(control=list(controls), control_frames=frame_centres(frames, 1))
        return out

    def forward(self, handle, x_in, t, inputs):
        """Each frame with its prompt's own tokens (the mask's), as ZImagePipeline hands the transformer lists."""
        model = handle.pipe.transformer
        n = x_in.shape[0]
        flat = self.in_patches(x_in).to(model.dtype)
        ehs, mask = inputs["encoder_hidden_states"], inputs["mask"]
        captions = [e[m] for e, m in zip(ehs, mask)]
        timestep = (1 - t.float() / 1000).to(flat.device).expand(flat.shape[0])
        x = [f[:, None] for f in flat]
        samples = None
        if inputs.get("control"):
            samples = self._control(inputs, x, timestep, captions, flat.shape)
        out = model(x, timestep, captions, controlnet_block_samples=samples, return_dict=False)[0]
        return frames_from_batch(-torch.stack([o.float() for o in out]).squeeze(2), n)

    def _control(self, inputs, x, timestep, captions, shape):
        """The active Fun ControlNets' outputs per layer (zimage_control.block_samples), their pictures encoded for
        these frames and repeated for each conditioning and batch item, as the frames are."""
        from nodes.generate.control import control_latents
        from nodes.generate.vae_ops import encode_pixels
        from nodes.generate.zimage_control import block_samples
        rows, _, h, w = shape

        def latents(c):
            enc = lambda px: encode_pixels(self, c.vae, px, "encoding the ControlNet's picture")  # noqa: E731
            z = control_latents(c, inputs["control_frames"], h, w, enc, self.factors(c.vae)[1])
            return z.repeat(rows // z.shape[0], 1, 1, 1).to(x[0].device)
        return block_samples(inputs["control"], x, timestep, captions, latents)


ADAPTERS = {"zimage": ZImageAdapter()}
