"""OmniGen2 (images and instruction edits): Boogu-Image's transformer without its dual-stream stage
(nodes/generate/boogu_model.py's OmniGen2Transformer) over 2x2 patches of FLUX.1's latent (its ae.safetensors scales
and shifts it). The prompt is read by Qwen2.5-VL-3B in OmniGen2's chat turn (a fixed system prompt, no assistant
turn): its last layer, final norm applied, every token (ComfyUI's comfy/text_encoders/omnigen2.py). An edit's pictures
reach the transformer as reference latents (ComfyUI's ReferenceLatent), never the text encoder.

Sampled as ComfyUI samples it (comfy/model_base.py Omnigen2, the same forward as Boogu's): the transformer is told
1 - sigma and predicts the flow from noise to the picture; the levels shift by 2.6 (ComfyUI's OmniGen2 setting).
ComfyUI's templates guide with DualCFGGuider (guide.dual_cfg): the prompt with the picture, the negative with the
picture, the negative alone."""
from __future__ import annotations

from nodes.generate.adapters.boogu import BooguAdapter, BooguParts, last_states
from nodes.generate.adapters.base import padded_rows

SYSTEM = "You are a helpful assistant that generates high-quality images based on user instructions."
NO_QWEN25VL = ("OmniGen2 reads one text encoder, Qwen2.5-VL-3B (qwen_2.5_vl_fp16.safetensors); this text encoder has "
               "none. Give load.text_encoder that file with type omnigen2, as ComfyUI's CLIPLoader does")


def chat(prompt: str) -> str:
    """OmniGen2's chat turn around a prompt (Omnigen2Tokenizer's llama_template), empty prompts included."""
    return f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n"


class OmniGen2Adapter(BooguAdapter):
    family = "omnigen2"
    name = "OmniGen2"
    encoders = "Qwen2.5-VL-3B"
    encode_with = "OmniGen2's Qwen2.5-VL-3B (qwen_2.5_vl_fp16.safetensors, type omnigen2)"

    def encode_text(self, pipe, prompts, device):
        """Each prompt in OmniGen2's chat turn, its own length, padded to the longest with the mask of each one's."""
        return *padded_rows([last_states(pipe, chat(p), device, reader="Qwen2_5_VL", missing=NO_QWEN25VL)
                             for p in prompts]), None


class OmniGen2Parts(BooguParts):
    """The loaded parts of an OmniGen2 (diffusers has no pipeline for it): the transformer, its scheduler,
    Qwen2.5-VL, its tokenizer, any of them None."""


ADAPTERS = {"omnigen2": OmniGen2Adapter()}
