"""Qwen-Image 2.1 (images): Qwen3-VL's last layer (before its final norm) over the prompt in a chat template (the
system turn dropped), a 16x VAE with a 64-channel latent and its per-channel statistics, and one single-stream
transformer over the prompt's tokens followed by the latent's, unpatched: every 2x2 of latent pixels fills one of
the text encoder's image slots (QwenImage21Pipeline's img_mask), the tokens in raster order, and only the latent's
tokens come out.

It is sampled as QwenImage21Pipeline samples it: without guidance by default (cfg 1; a negative prompt at cfg > 1 is
true CFG, the pipeline's plain mix), on the sigmas its folder names (model_index.json's sample_sigmas, when steps is
their count) or 1 down to 1/steps, shifted for the image's token count by its scheduler. The transformer's key/value
cache for the prompt (the pipeline's use_kv_cache) is an optimisation: without it every step computes the same
values in full."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import frames_from_batch, frames_in_batch, masked_text
from nodes.generate.adapters.flux import size_shift
from nodes.generate.adapters.qwenimage import QwenImageAdapter
from nodes.generate.reference import reference_rows


class QwenImage21Adapter(QwenImageAdapter):
    family = "qwenimage21"
    single_file = False
    reads_references = True           # the pictures to edit (qwen21_edit.py), with their slots in the prompt

    def load(self, path, dtype, device: str, **opts):
        """The folder's Qwen3VLProcessor built from its tokenizer, image processor and chat template: transformers
        cannot load it whole without torchvision (its video processor, which a keyframe never uses)."""
        from diffusers import DiffusionPipeline
        folder = Path(path)
        if not (folder / "processor").is_dir():
            raise NodeError(f"{folder} has no processor/ folder: a Qwen-Image 2.1 diffusers folder holds Qwen3-VL's "
                            "processor (tokenizer and chat template) there; download the whole Qwen/Qwen-Image-2.1 "
                            "folder")
        return DiffusionPipeline.from_pretrained(str(folder), dtype=dtype, local_files_only=True,
                                                 processor=processor(folder / "processor"))

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        if getattr(pipe, "text_encoder", None) is None:
            raise NodeError("this text encoder has no Qwen3-VL: load a Qwen-Image 2.1 diffusers folder")
        embeds, mask, _ = pipe.encode_prompt(list(prompts), device=device)
        if mask is None:        # every prompt as long as the longest: kept, so prompts of other lengths pad against it
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        return embeds, mask, None

    # -- sampling ------------------------------------------------------------------------
    def default_sigmas(self, pipe, steps, latent_shape):
        sch = self.scheduler(pipe)
        own = getattr(pipe.config, "sample_sigmas", None) if hasattr(pipe, "config") else None
        sigmas = own if own is not None and len(own) == steps else np.linspace(1.0, 1 / steps, steps)
        kw = {}
        if sch.config.get("use_dynamic_shifting"):     # one token per latent pixel (no patches)
            kw["mu"] = size_shift(sch.config, latent_shape[-2] * latent_shape[-1])
        sch.set_timesteps(sigmas=sigmas, **kw)
        return torch.as_tensor(sch.sigmas, dtype=torch.float64).flatten()

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        """The text states (masked_text) with each row's image slots, and the pictures' latents (references)."""
        out = masked_text(conds, frames, batch, device, dtype)
        refs, _ = reference_rows(conds, frames, batch)
        length, rows = out["mask"].shape[1], out["mask"].shape[0] // len(conds)
        need = sum(r.shape[-2] * r.shape[-1] // 4 for r in refs)
        slots = []
        for c in conds:
            s = c.extra.get("image_slots", torch.zeros(1, 0, dtype=torch.bool)).bool()
            if int(s.sum()) != need:
                raise NodeError("Qwen-Image 2.1 reads a picture only where its text encoder saw it, and this prompt "
                                f"has {int(s.sum())} image slots for pictures of {need}: give the pictures to "
                                "encode.qwen_edit (positive and negative alike, with the VAE), not condition.reference")
            slots += [torch.cat([s, s.new_zeros(1, length - s.shape[1])], 1)] * rows
        if refs:
            out.update(references=[r.to(device, dtype) for r in refs], image_slots=torch.cat(slots).to(device))
        return out

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        n, c, f, h, w = x_in.shape
        if h % 2 or w % 2:
            raise NodeError(f"Qwen-Image 2.1 reads the latent 2x2 pixels to an image slot; {w}x{h} latent pixels do "
                            "not divide into them: make width and height multiples of 32")
        own = frames_in_batch(x_in).flatten(2).transpose(1, 2)
        refs = inputs.get("references", ())
        # the pictures to edit first, in raster order, then the picture being made (QwenImage21Pipeline's order)
        tokens = torch.cat([r.flatten(2).transpose(1, 2).to(own) for r in refs] + [own], 1).to(model.dtype)
        shapes = [(1, r.shape[-2], r.shape[-1]) for r in refs] + [(1, h, w)]
        text, lengths = inputs["encoder_hidden_states"], inputs["mask"].sum(1)
        slots = inputs.get("image_slots", torch.zeros(text.shape[:2], dtype=torch.bool, device=text.device))
        out = torch.empty_like(own, dtype=tokens.dtype)
        # Each prompt at its own length, as QwenImage21Pipeline encodes and runs each: the picture's rotary positions
        # follow the prompt's tokens, so padding a shorter prompt (a negative) to a longer one's would move them.
        # Rows of one length share their slots (the pictures come before the prompt in the template).
        for length in lengths.unique().tolist():
            rows = (lengths == length).nonzero()[:, 0]
            img_mask = torch.cat([slots[rows, :length],
                                  torch.ones(len(rows), h * w // 4, dtype=torch.bool, device=slots.device)], 1)
            out[rows] = model(hidden_states=tokens[rows], timestep=(t.float() / 1000).to(tokens.device).expand(len(rows)),
                              encoder_hidden_states=text[rows, :length], img_mask=img_mask.to(text.device),
                              img_shapes=[shapes] * len(rows), return_dict=False)[0][:, -h * w:]
        return frames_from_batch(out.transpose(1, 2).reshape(n * f, c, h, w), n)


class _NoProcessor:
    """What QwenImage21Pipeline's constructor reads of a processor, for a pipeline that encodes no prompt."""
    class tokenizer:
        @staticmethod
        def encode(text):
            return [None]

    def apply_chat_template(self, *args, **kwargs):
        return [[]]


def without_processor(cls):
    """QwenImage21Pipeline (`cls`) to hold a part without the text encoder's processor (ComfyUI's transformer file
    alone): its constructor counts the system turn's tokens with the processor, which only prompt encoding uses."""
    class Pipeline(cls):
        def __init__(self, scheduler, vae, text_encoder, processor, transformer, sample_sigmas=None):
            super().__init__(scheduler, vae, text_encoder, _NoProcessor(), transformer, sample_sigmas)
            self.register_modules(processor=None)
    Pipeline.__name__ = Pipeline.__qualname__ = cls.__name__
    return Pipeline


def processor(folder: Path):
    """Qwen3VLProcessor without its video processor, from a Qwen-Image 2.1 folder's processor/."""
    from transformers import AutoImageProcessor, AutoTokenizer
    template = folder / "chat_template.jinja"
    return _processor(AutoImageProcessor.from_pretrained(str(folder)), AutoTokenizer.from_pretrained(str(folder)),
                      template.read_text(encoding="utf-8") if template.is_file() else None)


# Qwen3-VL's chat template as far as QwenImage21Pipeline uses it: it counts the system turn's tokens with it (the
# prompts themselves it writes out), and every Qwen chat template writes that turn so.
SYSTEM_TURN = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}{{ c['text'] }}"
               "{% endfor %}<|im_end|>\n{% endfor %}")


def file_processor(tokenizer, pictures=None):
    """Qwen3VLProcessor for a text encoder file (ComfyUI's qwen3vl_8b): the tokenizer found for it (a Qwen-Image 2.1
    folder's processor/, one named after the file, or ComfyUI's bundled Qwen tokenizer) with Qwen3-VL's image
    settings (16-pixel patches merged 2x2, pixels to -1..1), or another model's (`pictures`: Qwen2VLImageProcessor's
    settings; Qwen3.5 reads pictures through the same processor)."""
    from transformers import Qwen2VLImageProcessor
    images = Qwen2VLImageProcessor(**(pictures or dict(patch_size=16, merge_size=2, image_mean=[0.5] * 3,
                                                        image_std=[0.5] * 3)))
    return _processor(images, tokenizer, getattr(tokenizer, "chat_template", None) or SYSTEM_TURN)


def _processor(image_processor, tokenizer, chat_template):
    from transformers import Qwen3VLProcessor
    from transformers.processing_utils import ProcessorMixin
    check = ProcessorMixin.check_argument_for_proper_class
    ProcessorMixin.check_argument_for_proper_class = lambda self, name, arg: None
    try:
        return Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template)
    finally:
        ProcessorMixin.check_argument_for_proper_class = check


ADAPTERS = {"qwenimage21": QwenImage21Adapter()}
