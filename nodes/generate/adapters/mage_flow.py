"""Microsoft's Mage-Flow (base, Turbo and Edit; pictures and edits): the transformer of
nodes/generate/mage_flow_model.py over the Mage VAE's 128-channel latent (nodes/generate/mage_flow_vae.py), one
token per latent pixel. The prompt is read by Qwen3-VL-4B in Mage's chat turn (a fixed system prompt; an edit's has
its own and names each picture "Image N: " before it): its last layer with the final norm, everything from the user
turn's text on (the system turn and the user turn's header dropped, as comfy/text_encoders/mage_flow.py drops them).
An edit's pictures are seen by Qwen3-VL and read by the transformer as reference latents (mage_flow_edit.py).

Sampled as ComfyUI samples it (ModelType.FLOW, multiplier 1, static shift 6): the transformer is told sigma and
predicts the velocity."""
from __future__ import annotations

import torch
from diffusers import DiffusionPipeline

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter, frames_from_batch, frames_in_batch, padded_rows
from nodes.generate.adapters.boogu import last_states
from nodes.generate.reference import text_and_references

PICTURE = "<|vision_start|><|image_pad|><|vision_end|>"
T2I_SYSTEM = ("Describe the image by detailing the color, shape, size, texture, quantity, text, spatial relationships "
              "of the objects and background:")
EDIT_SYSTEM = ("Describe the key features of the input image (color, shape, size, texture, objects, background), then "
               "explain how the user's text instruction should alter or modify the image. Generate a new image that "
               "meets the user's requirements while maintaining consistency with the original input where "
               "appropriate.")
NO_QWEN3VL = ("Mage-Flow reads one text encoder, Qwen3-VL-4B (qwen3vl_4b_bf16.safetensors); this text encoder has none. "
              "Give load.text_encoder that file with type mage, as ComfyUI's CLIPLoader does")


def chat(prompt: str, pictures: int = 0) -> str:
    """Mage's chat turn for a prompt and the number of pictures Qwen3-VL sees before it (the edit's turn when any)."""
    system = EDIT_SYSTEM if pictures else T2I_SYSTEM
    named = "".join(f"Image {j + 1}: {PICTURE}" for j in range(pictures))
    return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{named}{prompt}<|im_end|>\n" \
           "<|im_start|>assistant\n"


def dropped(tokenizer, text: str) -> int:
    """How many leading tokens of the chat turn are not read: up to the second <|im_start|>, and its "user" and line
    end when they follow (ComfyUI's MageFlowTEModel counts them so, 34 for text to image, 64 for an edit)."""
    ids = tokenizer(text).input_ids
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    at = [i for i, t in enumerate(ids) if t == start]
    if len(at) < 2:
        raise NodeError("this tokenizer does not read <|im_start|> as one token, so Mage's chat turn cannot be found "
                        "in it: use the tokenizer of Qwen3-VL (the one beside qwen3vl_4b_bf16.safetensors or "
                        "ComfyUI's)")
    header = tokenizer("user\n").input_ids
    p = at[1]
    return p + 1 + len(header) if ids[p + 1:p + 1 + len(header)] == header else p


def prompt_states(pipe, text: str, device, pictures=None) -> torch.Tensor:
    """Qwen3-VL's last layer (normed) over the chat turn `text`, the pictures (float H x W x 3 at the size to read
    them) in their places, its system turn dropped: [L, D]."""
    states = last_states(pipe, text, device, pictures, missing=NO_QWEN3VL)
    return states[dropped(pipe.tokenizer, text):]


class MageFlowAdapter(Adapter):
    family = "mage_flow"
    name = "Mage-Flow"
    space = "flow"
    prediction = "flow"
    per_frame_text = True
    single_file = True
    reads_references = True           # the pictures to edit (mage_flow_edit.py)
    literal_prompts = True            # ComfyUI's Qwen3-VL tokenizer reads the prompt with its weights disabled

    def factors(self, pipe):
        vae = getattr(pipe, "vae", None)
        if vae is None:                 # the transformer from its own file: the Mage VAE's geometry
            return 1, 16, int(pipe.transformer.config.in_channels)
        return 1, vae.space, int(vae.config.latent_channels)

    def encode_text(self, pipe, prompts, device):
        """Each prompt in Mage's text-to-image turn, its own length, padded to the longest with the mask of each
        one's."""
        with torch.inference_mode():
            rows = [prompt_states(pipe, chat(p), device) for p in prompts]
        return *padded_rows(rows), None

    def token_offsets(self, pipe, text):
        return None             # the chat turn's tokens come first: no span of the prompt maps onto them

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        reads = int(handle.pipe.transformer.config.joint_attention_dim)
        return text_and_references(conds, frames, batch, device, dtype, reads,
                                   f"this Mage-Flow transformer reads {reads}: encode it with Mage-Flow's Qwen3-VL-4B "
                                   "(qwen3vl_4b_bf16.safetensors, type mage)")

    def forward(self, handle, x_in, t, inputs):
        """Each row with its prompt's own tokens and its references (the transformer reads every token given)."""
        model = handle.pipe.transformer
        n = x_in.shape[0]
        flat = frames_in_batch(x_in).to(model.dtype)
        sigma = (t.float().reshape(-1)[:1] / 1000).to(flat.device)
        refs = inputs.get("references", ())
        outs = []
        for i, (e, m) in enumerate(zip(inputs["encoder_hidden_states"], inputs["mask"])):
            out = model(flat[i:i + 1], sigma, e[m][None].to(model.dtype),
                        [r[i:i + 1].to(flat.device, model.dtype) for r in refs])
            outs.append(out.float())
        return frames_from_batch(torch.cat(outs), n)

    def check_latent(self, handle, latent) -> None:
        ch = int(handle.pipe.transformer.config.in_channels)
        if latent.samples.shape[1] != ch:
            raise NodeError(f"Mage-Flow samples the Mage VAE's {ch}-channel latent; this one has "
                            f"{latent.samples.shape[1]} channels: make it with encode.mage_flow_edit or latent.empty "
                            "from the Mage VAE (mage_flow_vae_bf16.safetensors)")

    def vae_per_frame(self):
        return True

    def vae_encode(self, pipe, pixels, generator=None):
        """pixels [B, 3, T, H, W] in -1..1 -> the latent's mean [B, 128, T, H/16, W/16], each frame on its own."""
        z = pipe.vae.encode(frames_in_batch(pixels))
        return frames_from_batch(z.float(), pixels.shape[0])

    def vae_decode(self, pipe, latent):
        img = pipe.vae.decode(frames_in_batch(latent))
        return frames_from_batch(img.float(), latent.shape[0])

    def set_vae_tiling(self, pipe, on: bool) -> None:
        """The Mage VAE decodes whole pictures (ComfyUI tiles it no more than this)."""


class MageFlowParts(DiffusionPipeline):
    """The loaded parts of a Mage-Flow from ComfyUI's split files: the transformer, its scheduler, the VAE, Qwen3-VL,
    its tokenizer and picture processor, any of them None."""
    def __init__(self, transformer=None, scheduler=None, vae=None, text_encoder=None, tokenizer=None, processor=None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, processor=processor)


ADAPTERS = {"mage_flow": MageFlowAdapter()}
