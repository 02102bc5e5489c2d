"""Boogu-Image 0.1 (base, Turbo, Edit; images and edits): the transformer of nodes/generate/boogu_model.py over 2x2
patches of FLUX.1's latent (its ae.safetensors scales and shifts it). The prompt is read by Qwen3-VL-8B in Boogu's
chat turn (a fixed system prompt, no assistant turn): its last layer, final norm applied, every token (ComfyUI's
comfy/text_encoders/boogu.py). An edit's pictures are seen by Qwen3-VL in the prompt (nodes/generate/boogu_edit.py)
and read by the transformer as reference latents.

Sampled as ComfyUI samples it: the transformer is told 1 - sigma and predicts the flow from noise to the picture
(the velocity's negative); the levels shift by 3.16 (ComfyUI's Boogu setting, ModelSamplingAuraFlow 3.16 in its
templates). Base and Edit take true CFG with a negative; Turbo runs 4 steps at cfg 1."""
from __future__ import annotations

import torch
from diffusers import DiffusionPipeline

from graph_engine import NodeError
from nodes.generate.adapters.mmdit import patch_frames
from nodes.generate.adapters.base import frames_from_batch, padded_rows, text_of_width
from nodes.generate.adapters.zimage import ZImageAdapter
from nodes.generate.reference import row_references

# The reference pipeline's system prompts (comfy/text_encoders/boogu.py): a prompt to draw from, and the one for an
# empty prompt (the unconditional pass) and for any prompt that sees pictures.
T2I_SYSTEM = ("You are a helpful assistant that generates high-quality images based on user instructions. The "
              "instructions are as follows.")
EDIT_SYSTEM = ("Describe the key features of the input image (color, shape, size, texture, objects, background), then "
               "explain how the user's text instruction should alter or modify the image. Generate a new image that "
               "meets the user's requirements while maintaining consistency with the original input where "
               "appropriate.")
PICTURE = "<|vision_start|><|image_pad|><|vision_end|>"
NO_QWEN3VL = ("Boogu-Image reads one text encoder, Qwen3-VL-8B (qwen3vl_8b_fp8_scaled.safetensors); this text encoder "
              "has none. Give load.text_encoder that file with type boogu, as ComfyUI's CLIPLoader does")


def chat(prompt: str, pictures: int = 0) -> str:
    """Boogu's chat turn for a prompt and the number of pictures Qwen3-VL sees before it."""
    system = T2I_SYSTEM if prompt.strip() and not pictures else EDIT_SYSTEM
    return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{PICTURE * pictures}{prompt}<|im_end|>\n"


def last_states(pipe, text: str, device, pictures=None, reader: str = "Qwen3VL", missing: str = NO_QWEN3VL
                ) -> torch.Tensor:
    """Qwen-VL's last layer (final norm applied) over every token of `text`, the pictures (processor inputs) in
    their places: [L, D]. The text encoder must be a `reader` (class name prefix: OmniGen2 reads Qwen2.5-VL), else
    `missing` is the message."""
    model, inputs = qwen3vl_inputs(pipe, text, device, pictures, missing, reader)
    return model(**inputs).last_hidden_state[0]


def qwen3vl_inputs(pipe, text: str, device, pictures, missing: str, reader: str = "Qwen3VL"):
    """(Qwen3-VL's model, its inputs) for `text` with the pictures (processor inputs, or None) in their places; a
    pipeline without Qwen3-VL (or the `reader` named) is refused with `missing`."""
    encoder = getattr(pipe, "text_encoder", None)
    if encoder is None or not type(encoder).__name__.startswith(reader):
        raise NodeError(missing)
    if pictures is None:
        inputs = {"input_ids": pipe.tokenizer(text, return_tensors="pt").input_ids}
    else:
        # pictures come at the size and scale to read them at (boogu_edit.seen): ComfyUI's resizing, not the
        # processor's
        inputs = dict(pipe.processor(text=[text], images=pictures, do_rescale=False, do_resize=False,
                                     return_tensors="pt"))
        inputs.pop("attention_mask", None)
    return getattr(encoder, "model", encoder), {k: v.to(device) for k, v in inputs.items()}


class BooguAdapter(ZImageAdapter):
    family = "boogu"
    name = "Boogu-Image"
    encoders = "Qwen3-VL-8B"
    reads_references = True           # Boogu-Image Edit's pictures to edit (boogu_edit.py)
    encode_with = "Boogu's Qwen3-VL-8B (qwen3vl_8b_fp8_scaled.safetensors, type boogu)"

    def encode_text(self, pipe, prompts, device):
        """Each prompt in Boogu's chat turn, its own length, padded to the longest with the mask of each one's."""
        return *padded_rows([last_states(pipe, chat(p), device) for p in prompts]), None

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        """The masked prompts and each row's own reference latents: every row runs alone (forward), so prompts with
        different pictures, or none, sample together as ComfyUI's Omnigen2 model samples them."""
        reads = int(handle.pipe.transformer.config.instruction_feat_dim)
        out = text_of_width(conds, frames, batch, device, dtype, reads,
                            f"this {self.name} transformer reads {reads}: encode it with {self.encode_with}")
        out["references"] = row_references(conds, frames, batch, device, dtype)
        # the transformer tells a prompt's pictures apart by image_index_embedding's rows (5 in the releases; past
        # them the model stopped in an IndexError at the first step, as ComfyUI's omnigen2.py would)
        slots, most = int(handle.pipe.transformer.image_index_embedding.shape[0]), max(map(len, out["references"]),
                                                                                       default=0)
        if most > slots:
            raise NodeError(f"a prompt holds {most} reference pictures; {self.name} tells at most {slots} apart: "
                            f"chain fewer condition.reference (ReferenceLatent) nodes, or join pictures into one")
        return out

    def forward(self, handle, x_in, t, inputs):
        """Each row with its prompt's own tokens (the model reads every token it is given)."""
        model = handle.pipe.transformer
        n = x_in.shape[0]
        flat = patch_frames(x_in, self.name).to(model.dtype)
        timestep = (1 - t.float() / 1000).to(flat.device, model.dtype).reshape(-1)[:1]
        outs = []
        for i, (e, m) in enumerate(zip(inputs["encoder_hidden_states"], inputs["mask"])):
            out = model(flat[i:i + 1], timestep, e[m][None].to(model.dtype),
                        [r.to(model.dtype) for r in inputs["references"][i]] or None)
            outs.append(-out[0].float())
        return frames_from_batch(torch.stack(outs), n)


class BooguParts(DiffusionPipeline):
    """The loaded parts of a Boogu-Image (diffusers has no pipeline for it): the transformer, its scheduler, Qwen3-VL,
    its tokenizer and picture processor, any of them None."""
    def __init__(self, transformer=None, scheduler=None, text_encoder=None, tokenizer=None, processor=None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, text_encoder=text_encoder,
                              tokenizer=tokenizer, processor=processor)


ADAPTERS = {"boogu": BooguAdapter()}
