"""Chroma (images): FLUX.1 schnell's transformer with its modulations given by one small network, reading T5-XXL's
hidden states alone, over FLUX.1's VAE and latents (the latent is packed into 2x2-patch tokens as FLUX.1's is).

Sampled as diffusers' ChromaPipeline samples it: true CFG with a negative prompt (no distilled guidance), T5-XXL's
padding masked (the prompt's tokens and the first padding token are read, the text encoder and the transformer told
so), 1 down to 1/steps shifted for the image's size. The tabulated schedules (simple, beta, ...) are ComfyUI's Chroma
sampling: the flow line with no shift (model.flow_shift, ComfyUI's ModelSamplingAuraFlow, sets one).

Chroma Radiance (variant radiance, radiance-x0) samples pixels: its latents are the pictures themselves in [-1, 1]
(load.vae's pixel_space, ComfyUI's), read in 16x16 patches (nodes/generate/chroma_radiance_model.py); its default
schedule is ComfyUI's simple one on that same unshifted line."""
from __future__ import annotations

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter, frames_from_batch, frames_in_batch, masked_text
from nodes.generate.adapters.flux import FluxAdapter, frame_tokens, image_ids, unpack

PIXELS = "pixel_space"              # the family of pixel-space latents (load.vae's pixel_space)
COMFY_SHIFT = 1.0                   # ComfyUI's Chroma sampling (ModelSamplingDiscreteFlow at its default shift)
NO_T5 = ("Chroma reads one text encoder, T5-XXL (t5xxl_fp16.safetensors); this text encoder has none. Give "
         "load.text_encoder that file with type chroma, as ComfyUI's CLIPLoader does, or load a Chroma diffusers "
         "folder, which holds it")


class ChromaAdapter(FluxAdapter):
    family = "chroma"
    reads_references = False
    name = "Chroma"
    encoders = "T5-XXL"
    flow_levels = 1000

    load = Adapter.load

    def title(self, pipe) -> str:
        return "Chroma Radiance" if radiance(pipe) else self.spec.title

    def latents(self, pipe) -> str:
        return PIXELS if radiance(pipe) else self.family

    def factors(self, pipe):
        if radiance(pipe):          # the picture itself: one pixel a latent pixel, its colour channels
            return 1, 1, int(pipe.transformer.config.in_channels)
        return super().factors(pipe)

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        """T5-XXL's hidden states of each prompt padded to 512 tokens, and the mask of those read (its tokens and the
        first padding token), as ChromaPipeline._get_t5_prompt_embeds gives them."""
        if getattr(pipe, "text_encoder", None) is None:
            raise NodeError(NO_T5)
        embeds, mask = pipe._get_t5_prompt_embeds(list(prompts), max_sequence_length=self.max_tokens, device=device)
        return embeds, mask, None

    def clip_pooled(self, pipe, prompts, device):
        raise NodeError("Chroma reads no CLIP-L: encode its prompt with encode.text (T5-XXL alone)")

    def token_offsets(self, pipe, text):
        return self._offsets(pipe.tokenizer, text, self.max_tokens)

    # -- sampling ------------------------------------------------------------------------
    def flow_shift(self, pipe) -> float:
        return COMFY_SHIFT

    def percent_sigma(self, pipe, percent, shift=None):
        return Adapter.percent_sigma(self, pipe, percent, shift)

    def default_sigmas(self, pipe, steps, latent_shape):
        if not radiance(pipe):
            return super().default_sigmas(pipe, steps, latent_shape)
        from nodes.generate.samplers import SigmaTable, simple_sigmas
        return simple_sigmas(SigmaTable.flow(COMFY_SHIFT, self.flow_levels), steps)

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        """Each conditioning's T5-XXL states per frame, padded to the longest, and which of their tokens are read."""
        return masked_text(conds, frames, batch, device, dtype)

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        if radiance(handle.pipe):
            return self._radiance(handle, model, x_in, t, inputs)
        n, c, f, h, w = x_in.shape
        tokens = frame_tokens(x_in, self.name)
        ehs = inputs["encoder_hidden_states"]
        out = model(hidden_states=tokens.to(model.dtype), timestep=(t.float() / 1000).to(tokens.device).expand(n * f),
                    encoder_hidden_states=ehs, txt_ids=torch.zeros(ehs.shape[1], 3, device=tokens.device),
                    img_ids=image_ids(h, w).to(tokens.device), attention_mask=_mask(inputs, ehs, tokens.shape[1]),
                    return_dict=False)[0]
        return frames_from_batch(unpack(out, h, w), n)

    def _radiance(self, handle, model, x_in, t, inputs):
        """Chroma Radiance on pictures [N, 3, f, H, W]: its patches' positions (row, column) as Chroma's latent
        tokens', the prompt's mask as Chroma's; the head's tiling (model.radiance_options) changes only the memory."""
        from nodes.generate.chroma_radiance_model import NERF_TILE
        n, c, f, h, w = x_in.shape
        p = model.config.patch_size
        if h % p or w % p:
            raise NodeError(f"Chroma Radiance reads the picture in {p}x{p} pixel squares; {w}x{h} is not a multiple "
                            f"of {p}: make the latent {w - w % p or p}x{h - h % p or p} (latent.empty)")
        x = frames_in_batch(x_in).to(model.dtype)
        ehs = inputs["encoder_hidden_states"]
        ids = torch.zeros(h // p, w // p, 3)
        ids[..., 1] += torch.arange(h // p)[:, None]
        ids[..., 2] += torch.arange(w // p)[None, :]
        out = model(x, timestep=(t.float() / 1000).to(x.device).expand(n * f), encoder_hidden_states=ehs,
                    txt_ids=torch.zeros(ehs.shape[1], 3, device=x.device), img_ids=ids.reshape(-1, 3).to(x.device),
                    attention_mask=_mask(inputs, ehs, (h // p) * (w // p)),
                    nerf_tile=handle.option("nerf_tile_size", NERF_TILE))
        return frames_from_batch(out, n)


def radiance(pipe) -> bool:
    """Whether the loaded Chroma is Chroma Radiance (pixels, not FLUX.1's latents)."""
    from nodes.generate.chroma_radiance_model import ChromaRadianceTransformer
    return isinstance(getattr(pipe, "transformer", None), ChromaRadianceTransformer)


def _mask(inputs, ehs, images: int) -> torch.Tensor:
    """ChromaPipeline's mask: the text's in the text encoder's float type, every image token read."""
    text = inputs["mask"].to(ehs.device, ehs.dtype)
    return torch.cat([text, torch.ones(text.shape[0], images, dtype=torch.bool, device=ehs.device)], 1)


ADAPTERS = {"chroma": ChromaAdapter()}
