"""LongCat-Image (Meituan; images, and LongCat-Image-Edit): FLUX.1's double and single blocks told no pooled embedding
and no guidance, over 2x2 patches of FLUX.1's latent (its ae.safetensors scales and shifts it). It reads Qwen2.5-VL
7B's last hidden states of the prompt in LongCat's captioning template, padded to 512 tokens (text in quotes tokenised
a character at a time), the template's own tokens dropped: LongCatImagePipeline's encoding, called as it is.

Rotary positions (index, row, column): the prompt's L tokens on plane 0 at (i, i), the image's patches on plane 1 past
them (row + L, column + L), an edit's picture to edit on plane 2 at the same place; so rows whose prompts differ in
length (an edit's pictures, a concatenated prompt) are run apart, each with its own. Sampled as FLUX.1 (ComfyUI runs it
as its Flux model): timestep sigma, the flow velocity, 1 down to 1/steps shifted for the image's size; unlike FLUX.1
dev it takes true CFG with a negative prompt. LongCatImagePipeline's cfg renorm (the guided prediction capped at the
prompt's own norm over each 2x2 patch) is not applied by default; ComfyUI's templates set CFGNorm (guide.cfg_norm, the
cap over each latent pixel's channels) instead."""
from __future__ import annotations

from pathlib import Path

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter, frames_from_batch, masked_text
from nodes.generate.adapters.flux import FluxAdapter, image_ids, pack, unpack
from nodes.generate.adapters.mmdit import flux_ae_factors
from nodes.generate.reference import reference_rows

NO_QWEN = ("LongCat-Image reads one text encoder, Qwen2.5-VL 7B (qwen_2.5_vl_7b_fp8_scaled.safetensors); this text "
           "encoder is {what}. Give load.text_encoder that file with type longcat_image, as ComfyUI's CLIPLoader does")


def text_ids(length: int) -> torch.Tensor:
    """The prompt's positions: plane 0, (i, i) for its i-th token (LongCat's prepare_pos_ids, type text)."""
    ids = torch.zeros(length, 3)
    ids[:, 1] = ids[:, 2] = torch.arange(length)
    return ids


class LongCatAdapter(FluxAdapter):
    family = "longcat"
    name = "LongCat-Image"
    encoders = "Qwen2.5-VL 7B"
    max_tokens = 512
    reads_references = True           # LongCat-Image-Edit's picture to edit
    no_encoder = NO_QWEN

    def load(self, path: Path, dtype, device: str, **opts):
        return Adapter.load(self, path, dtype, device, **opts)

    def factors(self, pipe):
        return flux_ae_factors(pipe)

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        from diffusers import LongCatImagePipeline
        encoder = getattr(pipe, "text_encoder", None)
        if encoder is None or not type(encoder).__name__.startswith("Qwen2_5_VL"):
            raise NodeError(NO_QWEN.format(what=f"{type(encoder).__name__}" if encoder is not None else "missing"))
        return LongCatImagePipeline._encode_prompt(pipe, list(prompts)), None, None

    def clip_pooled(self, pipe, prompts, device):
        raise NodeError("LongCat-Image reads no CLIP: encode its prompt with encode.text (Qwen2.5-VL alone)")

    def token_offsets(self, pipe, text):
        return None         # quoted text is tokenised a character at a time: no tokenizer call maps the prompt

    # -- sampling ------------------------------------------------------------------------
    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        out = masked_text(conds, frames, batch, device, dtype)
        reads = int(handle.pipe.transformer.config.joint_attention_dim)
        if out["encoder_hidden_states"].shape[-1] != reads:
            raise NodeError(f"this prompt was encoded {out['encoder_hidden_states'].shape[-1]} wide, and this "
                            f"{self.name} transformer reads {reads}: " + self.no_encoder.format(what="another model's"))
        refs, _ = reference_rows(conds, frames, batch)
        if refs:
            out["references"] = [r.to(device, dtype) for r in refs]
        return out

    def positions(self, length: int, h: int, w: int, refs) -> torch.Tensor:
        """The image's patch positions, then each reference picture's, for a prompt of `length` tokens."""
        ids = [image_ids(h, w, 1, length, length)]
        ids += [image_ids(r.shape[-2], r.shape[-1], 2, length, length) for r in refs]
        return torch.cat(ids)

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        n, _, _, h, w = x_in.shape
        tokens = pack(self.in_patches(x_in)).to(model.dtype)
        own = tokens.shape[1]
        refs = inputs.get("references", [])
        if refs:            # the pictures to edit: read beside the noise's tokens, not denoised
            tokens = torch.cat([tokens] + [pack(r).to(tokens) for r in refs], 1)
        ehs, lengths = inputs["encoder_hidden_states"], inputs["mask"].sum(1)
        timestep = (t.float() / 1000).to(tokens.device).expand(tokens.shape[0])
        out = torch.empty(tokens.shape[0], own, tokens.shape[2], dtype=tokens.dtype, device=tokens.device)
        for length in lengths.unique().tolist():
            rows = (lengths == length).nonzero().flatten().to(tokens.device)
            got = model(hidden_states=tokens[rows], timestep=timestep[rows], encoder_hidden_states=ehs[rows, :length],
                        txt_ids=text_ids(length).to(tokens.device),
                        img_ids=self.positions(length, h, w, refs).to(tokens.device), return_dict=False)[0]
            out[rows] = got[:, :own]
        return frames_from_batch(unpack(out, h, w), n)


ADAPTERS = {"longcat": LongCatAdapter()}
