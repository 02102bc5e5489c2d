"""PixelDiT (NVIDIA's pixel-space text-to-image model; images): the transformer of nodes/generate/pixeldit_model.py over
the picture itself (load.vae's pixel_space: RGB in [-1, 1], 16x16 patches). The prompt is read by Gemma-2-2B as
ComfyUI's comfy/text_encoders/pixeldit.py reads it: PixelDiT's fixed instruction (CHI_PROMPT) before it, the tokens
(<bos> first) padded with token 0 to the instruction's length + 298, the padding masked from Gemma's attention, and
of its last hidden states the first and the last 299 kept (300 in all, the transformer's learned positions). An empty
prompt is <bos> and padding to 300, no instruction. The transformer reads all 300 states (no mask).

Sampled as ComfyUI samples it: told sigma x 1000, it predicts the flow from the picture to noise, on the flow line
at shift 4 (ComfyUI's PixelDiT sampling); 30 steps at cfg 4 in its template.

PiD (variant pid-*: the latent upscaler on PixelDiT's transformer) reads another model's latent and its
degrade_sigma from the prompt (condition.pid, ComfyUI's PiDConditioning); shift 1.5, 4 steps at cfg 1 in its
template."""
from __future__ import annotations

import torch
from diffusers import DiffusionPipeline

from graph_engine import NodeError
from nodes.generate.adapters.base import frames_from_batch, frames_in_batch, masked_text
from nodes.generate.adapters.mmdit import MMDiTAdapter

PIXELS = "pixel_space"
COMFY_SHIFT = 4.0                   # ComfyUI's PixelDiT sampling (ModelSamplingDiscreteFlow, shift 4)
PID_SHIFT = 1.5                     # ComfyUI's PiD sampling
MAX_TOKENS = 300                    # the transformer's learned text positions
CHI_PROMPT = (
    'Given a user prompt, generate an "Enhanced prompt" that provides detailed visual descriptions '
    "suitable for image generation. Evaluate the level of detail in the user prompt:\n"
    "- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, "
    "and spatial relationships to create vivid and concrete scenes.\n"
    "- If the prompt is already detailed, refine and enhance the existing details slightly without "
    "overcomplicating.\n"
    "Here are examples of how to transform or refine prompts:\n"
    "- User Prompt: A cat sleeping -> Enhanced: A small, fluffy white cat curled up in a round shape, "
    "sleeping peacefully on a warm sunny windowsill, surrounded by pots of blooming red flowers.\n"
    "- User Prompt: A busy city street -> Enhanced: A bustling city street scene at dusk, featuring "
    "glowing street lamps, a diverse crowd of people in colorful clothing, and a double-decker bus "
    "passing by towering glass skyscrapers.\n"
    "Please generate only the enhanced description for the prompt below and avoid including any "
    "additional commentary or evaluations:\n"
    "User Prompt: ")
# A prompt that already starts as the instruction does is read as written (ComfyUI's override)
CHI_PREFIX = 'Given a user prompt, generate an "Enhanced prompt"'
PAD = 0                             # Gemma's <pad>, ComfyUI's pad token for it
NO_GEMMA = ("PixelDiT reads one text encoder, Gemma-2-2B (gemma_2_2b_it_elm_*.safetensors); this text encoder has "
            "none. Give load.text_encoder that file with type pixeldit, as ComfyUI's CLIPLoader does")


def prompt_ids(tokenizer, prompt: str) -> list:
    """The token ids Gemma reads for one prompt (ComfyUI's PixelDiTGemma2Tokenizer)."""
    if not prompt.strip():
        ids = tokenizer("").input_ids
        return ids + [PAD] * (MAX_TOKENS - len(ids))
    length = len(tokenizer(CHI_PROMPT).input_ids) + MAX_TOKENS - 2
    ids = tokenizer(prompt if prompt.startswith(CHI_PREFIX) else CHI_PROMPT + prompt).input_ids[:length]
    return ids + [PAD] * (length - len(ids))


def prompt_states(pipe, prompt: str, device) -> torch.Tensor:
    """[300, width]: Gemma's last hidden states of one prompt, its first and its last 299."""
    encoder = getattr(pipe, "text_encoder", None)
    if encoder is None or not type(encoder).__name__.startswith("Gemma2"):
        raise NodeError(NO_GEMMA)
    ids = torch.tensor([prompt_ids(pipe.tokenizer, prompt)], device=device)
    # ComfyUI masks every token from the first padding on (its tokens hold none before)
    mask = (torch.cumsum((ids == PAD).int(), 1) == 0).long()
    states = encoder(input_ids=ids, attention_mask=mask).last_hidden_state[0]
    if states.shape[0] > MAX_TOKENS:
        states = torch.cat([states[:1], states[-(MAX_TOKENS - 1):]])
    return states


class PixelDiTAdapter(MMDiTAdapter):
    family = "pixeldit"
    name = "PixelDiT"
    encoders = "Gemma-2-2B"
    max_tokens = MAX_TOKENS

    def title(self, pipe) -> str:
        return "PiD" if pid(pipe) else "PixelDiT"

    def latents(self, pipe) -> str:
        return PIXELS

    def factors(self, pipe):
        return 1, 1, int(pipe.transformer.config.in_channels)

    def encode_text(self, pipe, prompts, device):
        states = torch.stack([prompt_states(pipe, p, device) for p in prompts])
        return states, torch.ones(states.shape[:2], dtype=torch.bool, device=states.device), None

    def clip_pooled(self, pipe, prompts, device):
        raise NodeError("PixelDiT reads no CLIP: encode its prompt with encode.text (Gemma-2-2B alone)")

    def token_offsets(self, pipe, text):
        return None             # the instruction's tokens come first: no span of the prompt maps onto them

    def flow_shift(self, pipe) -> float:
        return PID_SHIFT if pid(pipe) else COMFY_SHIFT

    def default_sigmas(self, pipe, steps, latent_shape):
        from nodes.generate.samplers import SigmaTable, simple_sigmas
        return simple_sigmas(SigmaTable.flow(self.flow_shift(pipe), self.flow_levels), steps)

    def distilled_guidance(self, handle) -> bool:
        return False

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        out = masked_text(conds, frames, batch, device, dtype)
        reads = int(handle.pipe.transformer.config.txt_embed_dim)
        if out["encoder_hidden_states"].shape[-1] != reads:
            raise NodeError(f"this prompt was encoded {out['encoder_hidden_states'].shape[-1]} wide, and this "
                            f"PixelDiT transformer reads {reads}: encode it with PixelDiT's Gemma-2-2B "
                            "(gemma_2_2b_it_elm_*.safetensors, type pixeldit)")
        if pid(handle.pipe):
            out.update(low_quality(handle.pipe.transformer, conds, batch))
        return out

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        n = x_in.shape[0]
        x = frames_in_batch(x_in).to(model.dtype)
        ehs = inputs["encoder_hidden_states"].to(model.dtype)
        extra = {k: inputs[k] for k in ("lq_latent", "degrade_sigma") if k in inputs}
        out = model(x, t.float().to(x.device).reshape(-1)[:1].expand(x.shape[0]), ehs, **extra)
        return frames_from_batch(out.float(), n)

    def check_latent(self, handle, latent) -> None:
        cfg = handle.pipe.transformer.config
        _, c, *_, h, w = latent.samples.shape
        if c != cfg.in_channels:
            raise NodeError(f"PixelDiT samples the picture itself ({cfg.in_channels} colour channels); this latent has "
                            f"{c}: make it with latent.empty from load.vae's pixel_space")
        p = cfg.patch_size
        if h % p or w % p:
            raise NodeError(f"PixelDiT reads the picture in {p}x{p} pixel squares; {w}x{h} is not a multiple of {p}: "
                            f"make the latent {w - w % p or p}x{h - h % p or p} (latent.empty)")


def pid(pipe) -> bool:
    """Whether the loaded transformer is PiD (the latent upscaler) rather than PixelDiT itself."""
    from nodes.generate.pixeldit_model import PiDTransformer
    return isinstance(getattr(pipe, "transformer", None), PiDTransformer)


def low_quality(model, conds, batch: int) -> dict:
    """PiD's inputs per row: each conditioning's low-quality latents [n, C, h, w] and degrade_sigma (condition.pid's)."""
    lq, sigma = [], []
    want = int(model.config.lq_latent_channels)
    for c in conds:
        z = c.extra.get("lq_latent")
        if z is None:
            raise NodeError("PiD draws the picture of another model's latent, which this prompt does not carry: pass "
                            "the prompt and that latent through condition.pid (ComfyUI's PiDConditioning) first")
        if z.shape[1] != want:
            raise NodeError(f"this PiD reads latents of {want} channels; the one given has {z.shape[1]}: use the PiD "
                            "file made for that model's VAE (pid_flux1_* for FLUX.1 and Z-Image, pid_flux2_* for "
                            "FLUX.2, pid_sd3_* for SD3)")
        # row i reads latent i (wrapping round a shorter batch), as ComfyUI repeats a cond to the batch
        lq += [z[i % z.shape[0]][None] for i in range(batch)]
        sigma += [c.extra["degrade_sigma"].reshape(-1)[:1]] * batch
    return {"lq_latent": torch.cat(lq), "degrade_sigma": torch.cat(sigma)}


class PixelDiTParts(DiffusionPipeline):
    """The loaded parts of a PixelDiT (diffusers has no pipeline for it): the transformer, its scheduler, Gemma-2-2B
    and its tokenizer, any of them None."""
    def __init__(self, transformer=None, scheduler=None, text_encoder=None, tokenizer=None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, text_encoder=text_encoder,
                              tokenizer=tokenizer)


ADAPTERS = {"pixeldit": PixelDiTAdapter()}
