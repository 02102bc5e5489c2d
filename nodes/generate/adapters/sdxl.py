"""Stable Diffusion XL (images): two CLIP text encoders whose hidden states are concatenated, the second's
pooled (projected) embedding, and the size conditioning (add_time_ids: original size, crop top-left, target
size) that StableDiffusionXLPipeline computes. Everything else (VAE per frame, flattened frames) is SD's."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import frame_centres, frames_from_batch
from nodes.generate.adapters.base import with_concat
from nodes.generate.clip_windows import same_length
from nodes.generate.adapters.sd import SDAdapter, concat_flat, control_residuals, with_control

# Conditioning meta key of encode.sdxl's sizes (ComfyUI's CLIPTextEncodeSDXL): [original h, w, crop top, left,
# target h, w], 0 for a size = the image being made.
SIZE_KEY = "sdxl_size"
# The aesthetic score the SDXL refiner is told (encode.sdxl's aesthetic, CLIPTextEncodeSDXLRefiner's ascore); without
# it diffusers' and ComfyUI's defaults: 6 for the positive prompt, 2.5 for the negative.
ASCORE_KEY = "sdxl_ascore"
ASCORES = (2.5, 6.0)


def is_refiner(pipe) -> bool:
    """The SDXL refiner: OpenCLIP-G alone, told an aesthetic score instead of the target size."""
    return bool(getattr(pipe, "config", {}).get("requires_aesthetics_score"))


class SDXLAdapter(SDAdapter):
    family = "sdxl"

    def load(self, path: Path, dtype, device: str, config: Optional[str] = None, **opts):
        from diffusers import StableDiffusionXLPipeline
        if path.is_file():
            from nodes.generate.converters.sdxl import sdxl_pipeline
            return sdxl_pipeline(path, dtype)
        return StableDiffusionXLPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)

    def encode_text(self, pipe, prompts, device, clip_skip: int = 1):
        """(both encoders' hidden states side by side [K, 77, 768 + 1280], None, pooled [K, 1280]).

        SDXL was trained on each encoder's penultimate layer without the final norm (diffusers and ComfyUI take
        it by default), so clip_skip 1 and 2 both mean that layer; 3 and up go further back."""
        embeds, pooled = [], None
        for tok, run in self.clip_encoders(pipe, device, clip_skip):
            ids = tok(list(prompts), padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids
            hidden, pooled = run(ids)       # pooled: the second encoder's projected end token
            embeds.append(hidden)
        return torch.cat(embeds, dim=-1), None, pooled

    def clip_encoders(self, pipe, device, clip_skip: int = 1):
        """[(tokenizer, token ids [N, 77] -> (hidden states [N, 77, D], pooled [N, P]))] for CLIP-L (not in the
        refiner) and OpenCLIP-G."""
        refiner = is_refiner(pipe)
        if getattr(pipe, "text_encoder_2", None) is None or (getattr(pipe, "text_encoder", None) is None
                                                             and not refiner):
            raise NodeError("SDXL reads two text encoders (CLIP-L and OpenCLIP-G); this text encoder has only one. "
                            "Load the SDXL checkpoint with load.sdxl (or load.model), which gives both")
        layer = -max(2, clip_skip)

        def runner(enc):
            def run(ids):
                out = enc(ids.to(device), output_hidden_states=True)
                hidden = out.hidden_states
                return hidden[max(layer, -(len(hidden) - 1))], out[0]
            return run
        pairs = [(pipe.tokenizer_2, runner(pipe.text_encoder_2))]       # the refiner's only encoder
        if not refiner:
            pairs.insert(0, (pipe.tokenizer, runner(pipe.text_encoder)))
        return pairs

    def for_run(self, handle, positive, negative, seed, sigmas):
        """Prompts carrying pictures (condition.unclip: SDXL revision) read their pictures' noise-augmented CLIP
        vision embedding as the pooled prompt, drawn from this run's seed as ComfyUI draws it."""
        from nodes.generate.unclip import for_run
        return for_run(positive, seed), for_run(negative, seed)

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        pix = frame_centres(frames, 1)
        ehs, pooled, sizes, ascores = [], [], [], []
        width = int(handle.pipe.unet.config.cross_attention_dim)
        for i, c in enumerate(conds):
            e, _, p = c.at_frames(pix)
            if p is None:
                raise NodeError("this conditioning has no pooled text embedding, which SDXL needs: encode the prompt "
                                "with the SDXL model's own text encoder")
            if e.shape[-1] != width:
                raise NodeError(_mixed_encoders(is_refiner(handle.pipe)))
            ehs += [e] * batch
            pooled += [p] * batch
            sizes += [c.meta.get(SIZE_KEY)] * (batch * len(pix))
            ascores += [c.meta.get(ASCORE_KEY) or ASCORES[i == len(conds) - 1]] * (batch * len(pix))
        inputs = {"encoder_hidden_states": same_length(ehs).to(device, dtype),
                  "text_embeds": torch.cat(pooled).to(device, dtype), "sizes": sizes, "ascores": ascores}
        inputs = with_control(inputs, handle, pix, len(conds) * batch, device, dtype)
        return with_concat(inputs, conds, frames, batch, device, dtype)

    def forward(self, handle, x_in, t, inputs):
        n, c = x_in.shape[:2]
        added = frame_added_cond(handle, x_in, inputs)
        ehs = inputs["encoder_hidden_states"]
        flat = concat_flat(handle, x_in, inputs)
        # The ControlNet reads the latent alone (an inpainting UNet's extra channels are not its input).
        extra = control_residuals(flat[:, :c], t, ehs, inputs.get("control"), added_cond_kwargs=added)
        out = handle.pipe.unet(flat, t, encoder_hidden_states=ehs, added_cond_kwargs=added, return_dict=False,
                               **extra)[0]
        return frames_from_batch(out, n)


def frame_added_cond(handle, x_in, inputs) -> dict:
    """Each frame's pooled text and size conditioning (the refiner's aesthetic score in place of the target size), as
    StableDiffusionXLPipeline gives its UNet and ControlNet, for latent frames x_in [N, C, f, h, w]."""
    h, w = x_in.shape[-2:]
    time_ids = add_time_ids(inputs["sizes"], h * handle.pipe.vae_scale_factor, w * handle.pipe.vae_scale_factor)
    if is_refiner(handle.pipe):     # original size, crop, aesthetic score (no target size)
        time_ids = torch.cat([time_ids[:, :4], torch.tensor(inputs["ascores"], dtype=torch.float32)[:, None]], 1)
    return {"text_embeds": inputs["text_embeds"], "time_ids": time_ids.to(x_in.device, inputs["text_embeds"].dtype)}


def _mixed_encoders(refiner: bool) -> str:
    if refiner:
        return ("this conditioning was encoded with the SDXL base model's text encoders, but the refiner reads its own "
                "(OpenCLIP-G alone): encode the prompts again with the refiner checkpoint's text_encoder output")
    return ("this conditioning was encoded with the SDXL refiner's text encoder (OpenCLIP-G alone), but this model "
            "reads the base model's two: encode the prompts with this model's own text_encoder output")


def add_time_ids(sizes, height: int, width: int) -> torch.Tensor:
    """[N, 6] size conditioning, as StableDiffusionXLPipeline._get_add_time_ids builds it: original size
    (height, width), crop top-left (top, left), target size (height, width); a row without sizes of its own
    (plain encode.text) takes the image being made, uncropped, as diffusers and ComfyUI do."""
    image = [height, width, 0, 0, height, width]
    rows = [[v if (v or i in (2, 3)) else image[i] for i, v in enumerate(s)] if s else image for s in sizes]
    return torch.tensor(rows, dtype=torch.float32)


ADAPTERS = {"sdxl": SDXLAdapter()}
