"""JoyImage Edit (JD's JoyAI-Image-Edit; pictures and edits): diffusers' JoyImageEditTransformer3DModel, a dual-stream
transformer over 2x2 patches of the Wan 2.1 VAE's 16-channel latent (its per-channel statistics). The prompt is read
by Qwen3-VL-8B in JoyImage's chat turn (a fixed system prompt, the assistant turn opened): the output of its last
decoder layer BEFORE the final norm, the turn's first 34 tokens (the system prompt) dropped, every other token read
(comfy/text_encoders/joyimage.py; diffusers' JoyImageEditPipeline). An edit's pictures are seen by Qwen3-VL in the
prompt and read by the transformer as reference latents (nodes/generate/joyimage_edit.py).

The transformer is run as ComfyUI runs it (comfy/ldm/joyimage/model.py): the noise's tokens first, then each
reference's, each picture on its own time plane of the rotary positions (its rows and columns from 0), so references
may differ in size from the picture made; only the noise's tokens come out. Sampled as a flow model told sigma x 1000,
predicting the velocity."""
from __future__ import annotations

import torch
from diffusers import DiffusionPipeline

from graph_engine import NodeError
from nodes.generate.adapters.mmdit import patch_frames
from nodes.generate.adapters.base import Adapter, frames_from_batch, padded_rows
from nodes.generate.adapters.boogu import qwen3vl_inputs
from nodes.generate.adapters.qwenimage import QwenImageAdapter
from nodes.generate.reference import text_and_references

# The system turn the prompt is read in and the number of its tokens dropped (JOYIMAGE_TEMPLATE_* / DROP_IDX)
SYSTEM = ("<|im_start|>system\n \\nDescribe the image by detailing the color, shape, size, texture, quantity, text, "
          "spatial relationships of the objects and background:<|im_end|>\n")
DROP = 34
PICTURE = "<|vision_start|><|image_pad|><|vision_end|>"
NO_QWEN3VL = ("JoyImage Edit reads one text encoder, Qwen3-VL-8B (qwen3vl_8b_joyimage_edit_int8_convrot.safetensors); "
              "this text encoder has none. Give load.text_encoder that file with type joyimage, as ComfyUI's "
              "CLIPLoader does")


def chat(prompt: str, pictures: int = 0) -> str:
    """JoyImage's chat turn for a prompt and the number of pictures Qwen3-VL sees before it."""
    return f"{SYSTEM}<|im_start|>user\n{PICTURE * pictures}{prompt}<|im_end|>\n<|im_start|>assistant\n"


def prompt_states(pipe, text: str, device, pictures=None) -> torch.Tensor:
    """Qwen3-VL's last decoder layer's output before the final norm over `text` (the pictures, processor inputs, in
    their places), the system turn's tokens dropped: [L, D]."""
    model, inputs = qwen3vl_inputs(pipe, text, device, pictures, NO_QWEN3VL)
    seen = {}
    # the last layer's own output: transformers' hidden_states[-1] is taken after the final norm
    hook = model.language_model.layers[-1].register_forward_hook(
        lambda _m, _i, out: seen.update(states=out[0] if isinstance(out, tuple) else out))
    try:
        model(**inputs)
    finally:
        hook.remove()
    states = seen["states"][0]
    if states.shape[0] <= DROP:
        raise NodeError(f"this tokenizer reads JoyImage's chat turn in {states.shape[0]} tokens, not more than the "
                        f"{DROP} of its system prompt: use the tokenizer of Qwen3-VL (the one beside "
                        "qwen3vl_8b_joyimage_edit_int8_convrot.safetensors or ComfyUI's)")
    return states[DROP:]


def rope(model, sizes, device) -> tuple:
    """(cos, sin) of the tokens of pictures of these (rows, cols) patch grids, in order: picture j on time plane j,
    its rows and columns from 0 (ComfyUI's get_rotary_pos_embed_for_components)."""
    cos, sin = [], []
    for j, (h, w) in enumerate(sizes):
        grid = torch.stack(torch.meshgrid(torch.full((1,), float(j)), torch.arange(h, dtype=torch.float32),
                                          torch.arange(w, dtype=torch.float32), indexing="ij")).reshape(3, -1)
        c, s = [], []
        for axis, dim in enumerate(model.rope_dim_list):
            freqs = 1.0 / (model.theta ** (torch.arange(0, dim, 2, dtype=torch.float32)[: dim // 2] / dim))
            angles = torch.outer(grid[axis], freqs)
            c.append(angles.cos().repeat_interleave(2, 1))
            s.append(angles.sin().repeat_interleave(2, 1))
        cos.append(torch.cat(c, 1))
        sin.append(torch.cat(s, 1))
    return torch.cat(cos).to(device), torch.cat(sin).to(device)


def run_transformer(model, x: torch.Tensor, timestep: torch.Tensor, text: torch.Tensor, refs=()) -> torch.Tensor:
    """The transformer on one picture's latent x [1, C, 1, h, w] with its references (each [1, C, 1, h', w']) and
    prompt [1, L, D]: the velocity at x's tokens [1, C, 1, h, w]."""
    parts = [x, *refs]
    tokens = torch.cat([model.img_in(p).flatten(2).transpose(1, 2) for p in parts], 1)
    _, vec, txt = model.condition_embedder(timestep, text)
    vec = vec.unflatten(1, (6, -1))
    sizes = [(p.shape[-2] // 2, p.shape[-1] // 2) for p in parts]
    freqs = (rope(model, sizes, tokens.device), None)
    for block in model.double_blocks:
        tokens, txt = block(hidden_states=tokens, encoder_hidden_states=txt, temb=vec, image_rotary_emb=freqs)
    h, w = sizes[0]
    out = model.proj_out(model.norm_out(tokens))[:, :h * w]
    return model.unpatchify(out, 1, h, w)


class JoyImageAdapter(Adapter):
    family = "joyimage"
    name = "JoyImage Edit"
    space = "flow"
    prediction = "flow"
    per_frame_text = True
    single_file = True
    reads_references = True           # the pictures to edit (joyimage_edit.py)

    def factors(self, pipe):
        if getattr(pipe, "vae", None) is None:      # the transformer from its own file: the Wan 2.1 VAE's geometry
            return 1, 8, int(pipe.transformer.config.in_channels)
        return 1, 8, int(pipe.vae.config.z_dim)

    def encode_text(self, pipe, prompts, device):
        """Each prompt in JoyImage's chat turn, its own length, padded to the longest with the mask of each one's."""
        return *padded_rows([prompt_states(pipe, chat(p), device) for p in prompts]), None

    def token_offsets(self, pipe, text):
        return None             # the system turn's tokens come first: no span of the prompt maps onto them

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        reads = int(handle.pipe.transformer.config.text_dim)
        return text_and_references(conds, frames, batch, device, dtype, reads,
                                   f"this JoyImage transformer reads {reads}: encode it with JoyImage's Qwen3-VL-8B "
                                   "(qwen3vl_8b_joyimage_edit_int8_convrot.safetensors, type joyimage)")

    def forward(self, handle, x_in, t, inputs):
        """Each row with its prompt's own tokens (the model reads every token it is given) and its references."""
        model = handle.pipe.transformer
        n = x_in.shape[0]
        flat = patch_frames(x_in, "JoyImage Edit").to(model.dtype)
        timestep = t.float().to(flat.device, model.dtype).reshape(-1)[:1]
        refs = inputs.get("references", ())
        outs = []
        for i, (e, m) in enumerate(zip(inputs["encoder_hidden_states"], inputs["mask"])):
            out = run_transformer(model, flat[i:i + 1, :, None], timestep, e[m][None].to(model.dtype),
                                  [r[i:i + 1, :, None].to(model.dtype) for r in refs])
            outs.append(out[:, :, 0].float())
        return frames_from_batch(torch.cat(outs), n)

    # the Wan 2.1 VAE as Qwen-Image reads it: each frame its own one-frame clip, the same latent statistics
    vae_per_frame = QwenImageAdapter.vae_per_frame
    vae_encode = QwenImageAdapter.vae_encode
    vae_decode = QwenImageAdapter.vae_decode


class JoyImageParts(DiffusionPipeline):
    """The loaded parts of a JoyImage Edit from ComfyUI's split files: the transformer, its scheduler, Qwen3-VL, its
    tokenizer and picture processor, any of them None."""
    def __init__(self, transformer=None, scheduler=None, text_encoder=None, tokenizer=None, processor=None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, text_encoder=text_encoder,
                              tokenizer=tokenizer, processor=processor)


ADAPTERS = {"joyimage": JoyImageAdapter()}
