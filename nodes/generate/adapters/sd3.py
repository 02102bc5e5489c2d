"""Stable Diffusion 3 medium and 3.5 medium / large / large turbo (images): CLIP-L's and OpenCLIP-G's penultimate
hidden states side by side, zero-padded to T5-XXL's width and followed by T5-XXL's (zeros where a model is given no
T5, as diffusers does), the two CLIPs' projected end tokens as the pooled embedding, and an MMDiT that reads
the latent in 2x2 patches on the flow schedule shifted by 3 (scheduler's shift; model.flow_shift changes it).
Guidance is classifier-free, with a negative pass. The VAE is FLUX.1's kind (adapters/mmdit.py)."""
from __future__ import annotations

from pathlib import Path
import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import frame_centres, frames_from_batch
from nodes.generate.adapters.mmdit import MMDiTAdapter
from nodes.generate.clip_windows import LENGTH, MAX_WINDOWS
from nodes.generate.prompts import clean_and_weights, comfy_parts, token_weights

NO_ENCODERS = ("Stable Diffusion 3 reads three text encoders, CLIP-L (clip_l.safetensors), OpenCLIP-G "
               "(clip_g.safetensors) and T5-XXL (t5xxl_fp16.safetensors, optional); this text encoder {lacks}. Give "
               "load.text_encoder the files (name, name2, name3, type sd3), as ComfyUI's TripleCLIPLoader does, or "
               "load a checkpoint that holds them (sd3.5_large_fp8_scaled, sd3_medium_incl_clips_t5xxlfp8)")


# T5's least length by weighting: ComfyUI's T5XXLTokenizer min_length; StableDiffusion3Pipeline's max_sequence_length
T5_LEAST = {"comfy": 77, "kinograph": 256}
T5_MAX_TOKENS = MAX_WINDOWS * LENGTH    # the CLIP windows one prompt may read (clip_windows.windows_for)


class SD3Adapter(MMDiTAdapter):
    family = "sd3"
    name = "Stable Diffusion 3"
    encoders = "CLIP-L, OpenCLIP-G and T5-XXL"

    def load(self, path: Path, dtype, device: str, **opts):
        if Path(path).is_file():
            from nodes.generate.converters.sd3 import sd3_pipeline
            return sd3_pipeline(Path(path), dtype)
        from diffusers import StableDiffusion3Pipeline
        return StableDiffusion3Pipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)

    def factors(self, pipe):
        if getattr(pipe, "vae", None) is None:      # a transformer from its own file
            return 1, 8, int(pipe.transformer.config.out_channels)
        return 1, int(pipe.vae_scale_factor), int(pipe.vae.config.latent_channels)

    # -- text ----------------------------------------------------------------------------
    # Under both weightings (text.encode_prompt): CLIP-L's and OpenCLIP-G's hidden states in 77-token windows
    # (clip_windows, each weighting's own breaks) laid end to end, T5-XXL's whole prompt after them, never cut. The
    # weighting sets T5's least length: comfy ComfyUI's 77 (imported workflows, as its SD3ClipModel reads); kinograph
    # StableDiffusion3Pipeline's 256, and T5's 256 tokens of zeros where the model has no T5, so a prompt it read
    # whole (75 CLIP tokens, 255 of T5's) reads as the pipeline reads it, as it always did in Kinograph.

    def clip_encoders(self, pipe, device):
        """[(tokenizer, token ids [N, 77] -> (penultimate hidden states [N, 77, D], projected end token [N, P]))] for
        CLIP-L and OpenCLIP-G, as StableDiffusion3Pipeline._get_clip_prompt_embeds reads them."""
        lacks = [name for name, part in (("CLIP-L", "text_encoder"), ("OpenCLIP-G", "text_encoder_2"))
                 if getattr(pipe, part, None) is None]
        if lacks:
            raise NodeError(NO_ENCODERS.format(lacks="has no " + " and no ".join(lacks)))

        def runner(enc):
            def run(ids):
                out = enc(ids.to(device), output_hidden_states=True)
                return out.hidden_states[-2], out[0]
            return run
        return [(pipe.tokenizer, runner(pipe.text_encoder)), (pipe.tokenizer_2, runner(pipe.text_encoder_2))]

    def t5_whole(self, pipe, text: str, device, length: int = 0, weighting: str = "comfy"):
        """T5-XXL's hidden states [1, L, D] of the whole prompt (no start token, the end token, padded to at least
        `length` and the weighting's T5_LEAST, never cut), weighted as the weighting has it: comfy as ComfyUI's
        T5XXLTokenizer reads it (each weighted part tokenized on its own) and its encoder weighs it (each token moved
        from the empty prompt's, ClipTokenWeightEncoder); kinograph the prompt tokenized whole, its tokens scaled with
        their mean kept (text.emphasise). None where the model has no T5."""
        from nodes.generate.text import emphasise, weigh_from_empty
        tok, enc = getattr(pipe, "tokenizer_3", None), getattr(pipe, "text_encoder_3", None)
        if tok is None or enc is None:
            return None
        pairs = self._t5_pairs(tok, text, weighting)
        pairs += [(tok.pad_token_id, 1.0)] * (max(length, T5_LEAST[weighting]) - len(pairs))
        hidden = enc(torch.tensor([[t for t, _ in pairs]], device=device))[0]
        w = torch.tensor([w for _, w in pairs])
        if (w == 1.0).all():
            return hidden
        if weighting == "kinograph":
            return emphasise(hidden[0], w)[None]
        empty = torch.tensor([[tok.eos_token_id] + [tok.pad_token_id] * (len(pairs) - 1)], device=device)
        return weigh_from_empty(hidden[0], enc(empty)[0][0], w)[None]

    def t5_tokens(self, pipe, text: str, weighting: str = "comfy") -> int:
        """How many tokens T5-XXL reads of `text` before its padding (t5_whole); 0 where the model has no T5."""
        tok = getattr(pipe, "tokenizer_3", None)
        if tok is None or getattr(pipe, "text_encoder_3", None) is None:
            return 0
        return len(self._t5_pairs(tok, text, weighting))

    @staticmethod
    def _t5_pairs(tok, text: str, weighting: str):
        if weighting == "kinograph":
            clean, spans = clean_and_weights(text)
            enc = tok(clean, truncation=False, return_offsets_mapping=True)
            special = set(tok.all_special_ids)
            offsets = [None if i in special else tuple(o) for i, o in zip(enc["input_ids"], enc["offset_mapping"])]
            pairs = list(zip(enc["input_ids"], token_weights(offsets, spans)))
        else:
            pairs = [(t, w) for part, w in comfy_parts(text) for t in tok(part, truncation=False)["input_ids"][:-1]]
            pairs.append((tok.eos_token_id, 1.0))
        if len(pairs) > T5_MAX_TOKENS:
            # never cut, as ComfyUI reads it, but bounded: encode.sd3's T5 prompt is not its CLIP prompts, whose
            # windows are capped, and a megabyte of it was one sequence of 250,000 tokens, terabytes of attention
            raise NodeError(f"the T5-XXL prompt ({len(text):,} characters, {text[:40]!r}...) reads {len(pairs):,} "
                            f"tokens; Kinograph reads at most {T5_MAX_TOKENS:,}, as many as CLIP's windows hold for "
                            "one prompt: shorten the prompt")
        return pairs

    # -- sampling ------------------------------------------------------------------------
    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        pix = frame_centres(frames, 1)
        if len({int(c.at_frames(pix)[0].shape[1]) for c in conds}) > 1:
            # prompts of different lengths (a long prompt's CLIP windows and T5 tokens, a short negative's): each run
            # apart, as ComfyUI runs conditionings it cannot concatenate (CONDCrossAttn.can_concat)
            inputs = {"apart": [self._text_inputs(handle, [c], frames, batch, device, dtype) for c in conds]}
        else:
            inputs = self._text_inputs(handle, conds, frames, batch, device, dtype)
        controls = handle.option("controlnet")
        if controls:                        # control.apply: encoded in forward, at the latent's size
            inputs.update(control=list(controls), control_frames=frame_centres(frames, 1))
        return inputs

    def _text_inputs(self, handle, conds, frames, batch, device, dtype):
        inputs = super().conditioning_inputs(handle, conds, frames, batch, device, dtype)
        ehs, width = inputs["encoder_hidden_states"], handle.pipe.transformer.config.joint_attention_dim
        if ehs.shape[-1] < width:       # encoded without T5: zeros to the model's width, as diffusers pads
            inputs["encoder_hidden_states"] = torch.nn.functional.pad(ehs, (0, width - ehs.shape[-1]))
        return inputs

    def forward(self, handle, x_in, t, inputs):
        apart = inputs.get("apart")
        if apart:
            rest = {k: v for k, v in inputs.items() if k != "apart"}
            return torch.cat([self.forward(handle, x, t, {**rest, **own})
                              for x, own in zip(x_in.chunk(len(apart)), apart)])
        model = handle.pipe.transformer
        n = x_in.shape[0]
        f = x_in.shape[2]
        flat = self.in_patches(x_in).to(model.dtype)
        timestep = t.float().to(flat.device).expand(n * f)
        control = self._control(handle, inputs, flat, timestep) if inputs.get("control") else None
        out = model(hidden_states=flat, timestep=timestep, encoder_hidden_states=inputs["encoder_hidden_states"],
                    pooled_projections=inputs["pooled_projections"], block_controlnet_hidden_states=control,
                    return_dict=False)[0]
        return frames_from_batch(out, n)

    def _control(self, handle, inputs, flat, timestep):
        """The active SD 3.5 ControlNets' residuals (sd3_control.residuals), their pictures encoded for these frames
        and repeated for each conditioning and batch item, as the frames are."""
        from nodes.generate.control import control_latents
        from nodes.generate.sd3_control import prepare, residuals
        from nodes.generate.vae_ops import encode_pixels
        model = handle.pipe.transformer
        h, w = flat.shape[-2:]
        controls = []
        for c in inputs["control"]:
            enc = lambda px, pipe=c.vae: encode_pixels(self, pipe, px, "encoding the ControlNet's picture")  # noqa: E731
            latents = control_latents(c, inputs["control_frames"], h, w, enc, self.factors(c.vae)[1], prepare(c.mode))
            controls.append(c._replace(frames=latents.repeat(flat.shape[0] // latents.shape[0], 1, 1, 1).to(
                flat.device, c.net.dtype)))
        return residuals(controls, model, flat, len(model.transformer_blocks), timestep=timestep,
                         pooled_projections=inputs["pooled_projections"])


ADAPTERS = {"sd3": SD3Adapter()}
