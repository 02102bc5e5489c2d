"""Prompt -> CONDITIONING: schedules split into keyframes, emphasis applied per token."""
from __future__ import annotations

from typing import Callable

import torch

from graph_engine import NodeError
from graph_engine.schedule import is_keyframed_text, parse_text_keyframes
from nodes.generate.adapters import get_adapter
from nodes.generate.latent import Conditioning
from nodes.generate.prompts import clean_and_weights, token_weights


def encode_prompt(text_encoder, prompt: str, log: Callable[[str], None] = lambda m: None) -> Conditioning:
    if text_encoder is None or not get_adapter(text_encoder.family).has_text:
        raise NodeError("this model takes no text prompt (Stable Video Diffusion is image-to-video): use "
                        "encode.image for its conditioning")
    adapter = get_adapter(text_encoder.family)
    keys = parse_text_keyframes(prompt) if is_keyframed_text(prompt) else [(0, prompt)]
    pipe = text_encoder.pipe
    device = _device(pipe)
    cleaned = [clean_and_weights(text) for _, text in keys]
    with torch.inference_mode():
        embeds, mask, pooled = adapter.encode_text(pipe, [c for c, _ in cleaned], device)
        for row, (clean, spans) in enumerate(cleaned):
            if not spans:
                continue
            offsets = adapter.token_offsets(pipe, clean)
            if offsets is None:
                log(f"{text_encoder.family}: emphasis is not supported by this text encoder; weights ignored")
                continue
            w = torch.tensor(token_weights(offsets, spans), dtype=torch.float32)
            embeds[row] = emphasise(embeds[row], w[: embeds.shape[1]])
    return Conditioning(text_encoder.family, embeds.cpu(), None if mask is None else mask.cpu().bool(),
                        None if pooled is None else pooled.cpu(), tuple(k for k, _ in keys),
                        tuple(t for _, t in keys))


def emphasise(embeds: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scale token embeddings [L, D] by per-token weights, then restore the original mean so the
    prompt's overall strength stays put and only the balance between words changes."""
    w = torch.ones(embeds.shape[0])
    w[: len(weights)] = weights
    e = embeds.float()
    before = e.mean()
    out = e * w[:, None].to(e.device)
    after = out.mean()
    if after.abs() > 1e-12:
        out = out * (before / after)
    return out.to(embeds.dtype)


def _device(pipe):
    enc = getattr(pipe, "text_encoder", None)
    return getattr(enc, "device", torch.device("cpu"))
