"""Stable Diffusion XL (images): two CLIP text encoders whose hidden states are concatenated, the second's
pooled (projected) embedding, and the size conditioning (add_time_ids: original size, crop top-left, target
size) that StableDiffusionXLPipeline computes. Everything else (VAE per frame, flattened frames) is SD's."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import frame_centres
from nodes.generate.adapters.sd import SDAdapter, concat_flat, with_concat

# Conditioning meta key of encode.sdxl's sizes (ComfyUI's CLIPTextEncodeSDXL): [original h, w, crop top, left,
# target h, w], 0 for a size = the image being made.
SIZE_KEY = "sdxl_size"


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
        if getattr(pipe, "text_encoder_2", None) is None or getattr(pipe, "text_encoder", None) is None:
            raise NodeError("SDXL reads two text encoders (CLIP-L and OpenCLIP-G); this text encoder has only one. "
                            "Load the SDXL checkpoint with load.sdxl (or load.model), which gives both")
        layer = -max(2, clip_skip)
        embeds, pooled = [], None
        for tok, enc in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
            ids = tok(list(prompts), padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids
            out = enc(ids.to(device), output_hidden_states=True)
            hidden = out.hidden_states
            embeds.append(hidden[max(layer, -(len(hidden) - 1))])
            pooled = out[0]                 # the second encoder's projected end token
        return torch.cat(embeds, dim=-1), None, pooled

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        pix = frame_centres(frames, 1)
        ehs, pooled, sizes = [], [], []
        for c in conds:
            e, _, p = c.at_frames(pix)
            if p is None:
                raise NodeError("this conditioning has no pooled text embedding, which SDXL needs: encode the prompt "
                                "with the SDXL model's own text encoder")
            ehs += [e] * batch
            pooled += [p] * batch
            sizes += [c.meta.get(SIZE_KEY)] * (batch * len(pix))
        inputs = {"encoder_hidden_states": torch.cat(ehs).to(device, dtype),
                  "text_embeds": torch.cat(pooled).to(device, dtype), "sizes": sizes}
        return with_concat(inputs, conds, frames, batch, device, dtype)

    def forward(self, handle, x_in, t, inputs):
        n, c, f, h, w = x_in.shape
        time_ids = add_time_ids(inputs["sizes"], h * handle.pipe.vae_scale_factor, w * handle.pipe.vae_scale_factor)
        added = {"text_embeds": inputs["text_embeds"], "time_ids": time_ids.to(x_in.device, inputs["text_embeds"].dtype)}
        out = handle.pipe.unet(concat_flat(handle, x_in, inputs), t,
                               encoder_hidden_states=inputs["encoder_hidden_states"],
                               added_cond_kwargs=added, return_dict=False)[0]
        return out.reshape(n, f, c, h, w).permute(0, 2, 1, 3, 4)


def add_time_ids(sizes, height: int, width: int) -> torch.Tensor:
    """[N, 6] size conditioning, as StableDiffusionXLPipeline._get_add_time_ids builds it: original size
    (height, width), crop top-left (top, left), target size (height, width); a row without sizes of its own
    (plain encode.text) takes the image being made, uncropped, as diffusers and ComfyUI do."""
    image = [height, width, 0, 0, height, width]
    rows = [[v if (v or i in (2, 3)) else image[i] for i, v in enumerate(s)] if s else image for s in sizes]
    return torch.tensor(rows, dtype=torch.float32)


ADAPTERS = {"sdxl": SDXLAdapter()}
