"""Ideogram 4 (images, text in pictures): a single-stream transformer over one packed sequence, the prompt's tokens
then FLUX.2's normalised, patched latent (its VAE; each latent pixel's 128 channels one token, read as 2x2 patches of
32 channels), with block-diagonal attention, 3-axis rotary positions (the prompt's on the diagonal, the picture's
(0, row, column) far after them) and the model time 1 - sigma. The prompt is read by Qwen3-VL-8B in its chat template:
the outputs of 13 of its layers per token, side by side value by value (each of a state's values, its 13 layers),
as ComfyUI keeps them (CLIPLoader type ideogram4).

Guidance is asymmetric: the negative pass is a second transformer trained without text (ideogram4_unconditional_*,
guide.negative_model: ComfyUI's DualModelGuider), reading the picture's tokens alone, and the scale drops for the
last steps (guide.cfg_override: ComfyUI's CFGOverride). A prompt of zeros (condition.zero: the templates'
ConditioningZeroOut) is read so, the picture alone, as Ideogram4Pipeline's unconditional branch. The default schedule
is its logit-normal one (samplers.ideogram4_sigmas: mu 0, spread 1.5, Ideogram4Pipeline's)."""
from __future__ import annotations

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import frames_from_batch, frames_in_batch, layer_outputs, padded_rows, text_of_width
from nodes.generate.adapters.flux2 import Flux2Adapter

# Qwen3-VL-8B's decoder layers whose outputs Ideogram 4 reads (Ideogram4Pipeline's QWEN3_VL_ACTIVATION_LAYERS)
TAPS = (0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 35)
IMAGE_POSITION = 65536              # the picture's positions start here, after any prompt's
TEXT, IMAGE, PAD = 3, 2, 0          # the transformer's token roles (its indicator)
NO_QWEN3VL = ("Ideogram 4 reads one text encoder, Qwen3-VL-8B (qwen3vl_8b_fp8_scaled.safetensors); this text encoder "
              "has none. Give load.text_encoder that file with type ideogram4, as ComfyUI's CLIPLoader does")


def image_tokens(x: torch.Tensor) -> torch.Tensor:
    """[N, 128, h, w] (FLUX.2's latent: channel c of patch pixel (i, j) at 4c + 2i + j) -> [N, h w, 128] with each
    token's values patch pixel by patch pixel (2i + j) 32 channels each, the order Ideogram 4 reads."""
    n, c, h, w = x.shape
    return x.view(n, c // 4, 2, 2, h, w).permute(0, 4, 5, 2, 3, 1).reshape(n, h * w, c)


def image_of_tokens(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """image_tokens' inverse."""
    n, _, c = tokens.shape
    return tokens.reshape(n, h, w, 2, 2, c // 4).permute(0, 5, 3, 4, 1, 2).reshape(n, c, h, w)


def packed(lengths, h: int, w: int, device):
    """(positions [N, L + h w, 3], segments, roles) of prompts of these lengths left-padded to the longest L, then the
    picture's h x w tokens: each prompt's k-th token at (k, k, k), the picture's at (0, row, column) + 65536,
    padding its own segment (nothing real attends to it)."""
    longest = max(lengths) if lengths else 0
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    picture = torch.stack([torch.zeros_like(rows), rows, cols], -1).reshape(-1, 3) + IMAGE_POSITION
    n = len(lengths)
    pos = torch.zeros(n, longest + h * w, 3, dtype=torch.long)
    seg = torch.ones(n, longest + h * w, dtype=torch.long)
    role = torch.full((n, longest + h * w), IMAGE, dtype=torch.long)
    for b, k in enumerate(lengths):
        pad = longest - k
        pos[b, pad:longest] = torch.arange(k).unsqueeze(-1)
        seg[b, :pad], role[b, :pad], role[b, pad:longest] = -1, PAD, TEXT
        pos[b, longest:] = picture
    return pos.to(device), seg.to(device), role.to(device)


class Ideogram4Adapter(Flux2Adapter):
    family = "ideogram4"
    reads_references = False
    per_frame_text = False
    literal_prompts = True          # its prompts are JSON captions: brackets and parentheses are the prompt's own

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        """Each prompt in Qwen3-VL's chat template (one user turn, the answer's turn opened), its real tokens alone, all
        of them (a long JSON caption is not cut; Ideogram4Pipeline's max_sequence_length is a buffer size): the outputs
        of the TAPS layers side by side, one row of 13 x width per token."""
        te = getattr(pipe, "text_encoder", None)
        if te is None or not type(te).__name__.startswith("Qwen3VL"):
            raise NodeError(NO_QWEN3VL)
        lm = te.model.language_model if hasattr(te, "model") else te.language_model
        if len(lm.layers) <= TAPS[-1]:
            raise NodeError(f"this Qwen3-VL has {len(lm.layers)} layers and Ideogram 4 reads layer {TAPS[-1]}: "
                            "give load.text_encoder Qwen3-VL-8B (qwen3vl_8b_fp8_scaled.safetensors, 36 layers; a file of "
                            "that name with fewer is another Qwen3-VL: download it again)")
        from nodes.generate.chat_template import apply_chat_template
        rows = []
        for prompt in prompts:
            chat = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
            text = apply_chat_template(pipe.tokenizer, chat, "Ideogram 4's Qwen3-VL text encoder",
                                       add_generation_prompt=True)
            ids = pipe.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
            rows.append(tapped(lm, ids.to(lm.embed_tokens.weight.device))[0].to(device))
        embeds, mask = padded_rows(rows)
        return embeds, mask, None

    def token_offsets(self, pipe, text):
        return None             # the chat template's tokens come first: no span of the prompt maps onto them

    # -- sampling ------------------------------------------------------------------------
    def default_sigmas(self, pipe, steps, latent_shape):
        from nodes.generate.samplers import ideogram4_sigmas
        return ideogram4_sigmas(steps, latent_shape[-1] * 16, latent_shape[-2] * 16).double()

    def flow_shift(self, pipe) -> float:
        return 1.0              # ComfyUI's Ideogram 4 samples on the unshifted line (CFGOverride's percents too)

    def distilled_guidance(self, handle) -> bool:
        return False

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        cfg = handle.pipe.transformer.config
        return text_of_width(conds, frames, batch, device, dtype, int(cfg.llm_features_dim),
                             f"this Ideogram 4 transformer reads {cfg.llm_features_dim} (13 of Qwen3-VL-8B's layers): "
                             "encode it with qwen3vl_8b_fp8_scaled.safetensors, type ideogram4")

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        n, _, _, h, w = x_in.shape
        tokens = image_tokens(frames_in_batch(x_in)).to(model.dtype)
        text, mask = inputs["encoder_hidden_states"], inputs["mask"]
        rows = tokens.shape[0]
        # a zeroed prompt's row (condition.zero) reads the picture alone, as the unconditional transformer was trained
        lengths = [int(m.sum()) if bool(e.any()) else 0 for e, m in zip(text, mask)]
        longest = max(lengths)
        text = torch.stack([torch.cat([e.new_zeros(longest - k, e.shape[-1]), e[:k], e.new_zeros(h * w, e.shape[-1])])
                            for e, k in zip(text, lengths)])
        pos, seg, role = packed(lengths, h, w, tokens.device)
        hidden = torch.cat([tokens.new_zeros(rows, longest, tokens.shape[-1]), tokens], 1)
        time = (1 - t.float() / 1000).to(tokens.device, model.dtype).expand(rows)
        v = model(hidden_states=hidden, timestep=time, encoder_hidden_states=text.to(model.dtype), position_ids=pos,
                  segment_ids=seg, indicator=role, return_dict=False)[0][:, longest:]
        # it predicts the way from noise to picture in its time; Kinograph's flow models the other way
        return frames_from_batch(image_of_tokens(-v.float(), h, w), n)


def tapped(lm, ids: torch.Tensor) -> torch.Tensor:
    """[1, k, 13 x width]: the outputs of the TAPS decoder layers of the language model `lm` for the tokens `ids`
    (the raw outputs: the last tap is the last layer's, before the final norm)."""
    return torch.stack(layer_outputs(lm, ids, TAPS), -1).flatten(-2).float()


ADAPTERS = {"ideogram4": Ideogram4Adapter()}
