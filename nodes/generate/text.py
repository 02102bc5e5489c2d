"""Prompt -> CONDITIONING: schedules split into keyframes, emphasis applied per token."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import torch

from graph_engine import NodeError
from graph_engine.schedule import is_keyframed_text, parse_text_keyframes
from nodes.generate.adapters import get_adapter
from nodes.generate.clip_windows import LENGTH, common_length, empty_window, ids, to_length, weights, windows_for
from nodes.generate.embeddings import insert_embeddings
from nodes.generate.latent import Conditioning
from nodes.generate.prompts import clean_and_weights, comfy_clean_and_weights, literal, token_weights


def encode_prompt(text_encoder, prompt: str, log: Callable[[str], None] = lambda m: None, *,
                  clip_skip: int = 1, weighting: str = "kinograph", clip_prompts=("", "")) -> Conditioning:
    """weighting "kinograph": emphasise() below, the prompt read by prompts.parse_emphasis; "comfy": ComfyUI's rule,
    the prompt read as ComfyUI's sd1_clip reads it (prompts.comfy_parts: only round brackets weigh, an inner (x:w) sets
    w, [x] is text) and each weighted token embedding moved away from the empty prompt's embedding at the same
    position, e + (w - 1) (e - e_empty). clip_prompts: SD3's CLIP-L and OpenCLIP-G prompts (encode.sd3's text_l and
    text_g; "" = the prompt), where its CLIPs are read in windows."""
    if weighting not in ("kinograph", "comfy"):
        raise NodeError(f"unknown prompt weighting {weighting!r}; choose kinograph or comfy")
    from nodes.generate.split import LANGUAGE_ONLY
    if text_encoder is not None and text_encoder.family in LANGUAGE_ONLY:
        raise NodeError(f"{Path(text_encoder.path).name} is {LANGUAGE_ONLY[text_encoder.family]}, which Kinograph "
                        "writes text with (text.generate), but none of its model families reads prompts with it")
    if text_encoder is None or not get_adapter(text_encoder.family).has_text:
        raise NodeError("this model takes no text prompt (Stable Video Diffusion is image-to-video): use "
                        "encode.image for its conditioning")
    adapter = get_adapter(text_encoder.family)
    keys = parse_text_keyframes(prompt) if is_keyframed_text(prompt) else [(0, prompt)]
    pipe = text_encoder.pipe
    device = _device(pipe)
    clip = getattr(adapter, "clip_layers", False)
    texts = [insert_embeddings(pipe, text, clip, log) for _, text in keys]
    # a family that weighs its prompts itself (Anima, as ComfyUI does) is given them as written
    read = comfy_clean_and_weights if weighting == "comfy" else clean_and_weights
    cleaned = [(t, []) for t in texts] if adapter.reads_weights else [(literal(t), []) for t in texts] \
        if adapter.literal_prompts else [read(t) for t in texts]
    kw = {}
    if clip_skip > 1:
        if getattr(adapter, "clip_layers", False):
            kw["clip_skip"] = clip_skip
        else:
            log(f"{text_encoder.family}: clip_skip applies to CLIP text encoders (SD 1.5, AnimateDiff); ignored")
    if hasattr(adapter, "clip_encoders") and not (adapter.reads_weights or adapter.literal_prompts):
        with _text_loras(text_encoder), torch.inference_mode():
            encoders = adapter.clip_encoders(pipe, device, **kw)
            if hasattr(adapter, "t5_whole"):
                l_texts, g_texts = (_scheduled_like(p, prompt, keys, texts, lambda t: insert_embeddings(pipe, t, clip, log))
                                    for p in clip_prompts)
                prompts = list(zip(texts, l_texts, g_texts))
                lengths = sd3_lengths(adapter, pipe, encoders, prompts, weighting)
                rows = [sd3_windows(adapter, pipe, encoders, p, device, *lengths, weighting=weighting) for p in prompts]
            else:
                rows = [encode_windows(encoders, t, weighting) for t in texts]
        length = common_length([e for e, _ in rows])
        embeds = torch.cat([to_length(e, length) for e, _ in rows])
        pooled = None if rows[0][1] is None else torch.cat([p for _, p in rows])
        return Conditioning(text_encoder.family, embeds.cpu(), None, None if pooled is None else pooled.cpu(),
                            tuple(k for k, _ in keys), tuple(t for _, t in keys), {})
    with _text_loras(text_encoder), torch.inference_mode():
        embeds, mask, pooled = adapter.encode_text(pipe, [c for c, _ in cleaned], device, **kw)
        extra = adapter.text_extra(pipe, [c for c, _ in cleaned])
        empty = None
        if weighting == "comfy" and any(spans for _, spans in cleaned):
            empty = adapter.encode_text(pipe, [""], device, **kw)[0][0]
            if empty.shape != embeds.shape[1:]:
                log(f"{text_encoder.family}: comfy weighting needs fixed-length prompt embeddings; "
                    "kinograph weighting used")
                empty = None
        for row, (clean, spans) in enumerate(cleaned):
            if not spans:
                continue
            offsets = adapter.token_offsets(pipe, clean)
            if offsets is None:
                log(f"{text_encoder.family}: emphasis is not supported by this text encoder; weights ignored")
                continue
            w = torch.tensor(token_weights(offsets, spans), dtype=torch.float32)
            if empty is not None:
                embeds[row] = weigh_from_empty(embeds[row], empty, w[: embeds.shape[1]])
            else:
                embeds[row] = emphasise(embeds[row], w[: embeds.shape[1]])
    return Conditioning(text_encoder.family, embeds.cpu(), None if mask is None else mask.cpu().bool(),
                        None if pooled is None else pooled.cpu(), tuple(k for k, _ in keys),
                        tuple(t for _, t in keys), {k: v.cpu() for k, v in extra.items()})


def _scheduled_like(prompt: str, first: str, keys, texts, insert):
    """A second prompt's texts at the first prompt's keyframes (texts; "" or the first prompt = those texts)."""
    if not prompt or prompt == first:
        return texts
    own = parse_text_keyframes(prompt) if is_keyframed_text(prompt) else [(0, prompt)]
    if [k for k, _ in own] != [k for k, _ in keys]:
        raise NodeError("text_l's and text_g's prompt schedules need text's keyframes; give them the same frames")
    return [insert(t) for _, t in own]


def sd3_lengths(adapter, pipe, encoders, keyframes, weighting: str = "comfy") -> tuple:
    """(CLIP windows, T5 tokens) the SD3 prompts of keyframes `keyframes` ([(T5's, CLIP-L's, OpenCLIP-G's)]) are
    padded to: the most any reads, so that all are as long without a repeat (SD3 attends over the prompt's and the
    picture's tokens together: a prompt's tokens repeated weigh more); (0, 0), as read, for a prompt alone."""
    if len(keyframes) < 2:
        return 0, 0
    windows = max(len(windows_for(tok, text, weighting)) for k in keyframes
                  for (tok, _), text in zip(encoders, k[1:]))
    return windows, max(adapter.t5_tokens(pipe, k[0], weighting) for k in keyframes)


def sd3_windows(adapter, pipe, encoders, prompts, device, windows: int = 0, t5_tokens: int = 0,
                weighting: str = "comfy"):
    """(embeds [1, 77 x windows + T5's length, 4096], pooled [1, 2048]) from SD3's prompts (T5-XXL's, CLIP-L's,
    OpenCLIP-G's; CLIPTextEncodeSD3, encode.sd3): CLIP-L's and OpenCLIP-G's windows side by side, the shorter given the
    empty prompt's windows, zero-padded to T5's width, T5-XXL's whole prompt after them along the tokens
    (adapter.t5_whole), the pooled embedding both CLIPs' of the first window. Without T5: none after them under
    weighting comfy, as ComfyUI's SD3ClipModel; T5's least length of zeros under kinograph, as StableDiffusion3Pipeline
    (zero-padded to the MMDiT's width when sampled: SD3Adapter.conditioning_inputs). windows, t5_tokens: at least so
    many CLIP windows (the empty prompt's after) and T5 tokens (T5's pad after; sd3_lengths)."""
    from nodes.generate.adapters.sd3 import T5_LEAST
    text = prompts[0]
    parts = [encode_windows([enc], t, weighting) for enc, t in zip(encoders, prompts[1:])]
    clip = torch.cat(with_empty_windows(encoders, [h for h, _ in parts], windows * LENGTH), dim=-1)
    pooled = torch.cat([p for _, p in parts], dim=-1)
    t5 = adapter.t5_whole(pipe, text, device, t5_tokens, weighting)
    if t5 is None:
        if weighting == "comfy":
            return clip, pooled
        t5 = clip.new_zeros(1, max(t5_tokens, T5_LEAST[weighting]), clip.shape[-1])
    clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))    # SD3ClipModel's pad to T5-XXL's 4096
    return torch.cat([clip, t5.to(clip.dtype)], dim=-2), pooled


def encode_windows(encoders, text: str, weighting: str):
    """(embeds [1, 77 x windows, D], pooled [1, P] or None) of a prompt read by CLIP encoders in 77-token windows
    (clip_windows), each encoder's hidden states side by side, the pooled embedding the last encoder's of the first
    window. Weighted tokens as the weighting has it, window by window: ComfyUI's move away from the empty prompt
    (ClipTokenWeightEncoder), or Kinograph's scaling with the window's mean kept (A1111 keeps each chunk's mean)."""
    hiddens, pooled = [], None
    for tokenizer, run in encoders:
        windows = windows_for(tokenizer, text, weighting)
        hidden, pooled = run(ids(windows, tokenizer.pad_token_id))
        w = weights(windows)
        if (w != 1.0).any():
            if weighting == "comfy":
                empty = run(ids(empty_window(tokenizer), tokenizer.pad_token_id))[0][0]
                hidden = torch.stack([weigh_from_empty(h, empty, row) for h, row in zip(hidden, w)])
            else:
                hidden = torch.stack([emphasise(h, row) for h, row in zip(hidden, w)])
        hiddens.append(hidden.reshape(1, -1, hidden.shape[-1]))
    # Encoders whose windows broke apart (a textual inversion of other lengths) are padded with the empty prompt's
    # windows, as ComfyUI's CLIPTextEncodeSDXL pads the shorter token list.
    return torch.cat(with_empty_windows(encoders, hiddens), dim=-1), None if pooled is None else pooled[:1]


def with_empty_windows(encoders, hiddens, length: int = 0):
    """Each encoder's hidden states [1, 77 x windows, D] given its empty prompt's windows up to the longest's count
    (at least `length` tokens), as ComfyUI's CLIPTextEncodeSDXL and CLIPTextEncodeSD3 pad the shorter token list."""
    longest = max(length, *(h.shape[1] for h in hiddens))
    out = []
    for (tokenizer, run), h in zip(encoders, hiddens):
        if h.shape[1] < longest:
            empty = run(ids(empty_window(tokenizer), tokenizer.pad_token_id))[0]
            h = torch.cat([h] + [empty] * ((longest - h.shape[1]) // empty.shape[1]), 1)
        out.append(h)
    return out


def encode_sdxl(text_encoder, text: str, text_l: str, sizes, log: Callable[[str], None] = lambda m: None,
                aesthetic: float = 0.0, **kw) -> Conditioning:
    """SDXL conditioning as ComfyUI's CLIPTextEncodeSDXL makes it: `text` through OpenCLIP-G (and the pooled
    embedding), `text_l` through CLIP-L ("" = the same text), and its size conditioning `sizes` = (original
    height, width, crop top, left, target height, width; 0 = the image being made, as encode.text leaves it).
    `aesthetic`: the score the refiner is told (CLIPTextEncodeSDXLRefiner's ascore; 0 = 6 positive, 2.5 negative)."""
    from dataclasses import replace
    from nodes.generate.adapters.sdxl import ASCORE_KEY, is_refiner
    xl = text_encoder is not None and (text_encoder.family == "sdxl" or (  # AnimateDiff-SDXL's too
        text_encoder.family == "animatediff" and getattr(text_encoder.pipe, "text_encoder_2", None) is not None))
    if not xl:
        fam = getattr(text_encoder, "family", None)
        raise NodeError(f"encode.sdxl is for Stable Diffusion XL's text encoder; this one is {fam}'s: use encode.text")
    refiner = is_refiner(text_encoder.pipe)
    if refiner and text_l and text_l != text:
        log("the SDXL refiner has no CLIP-L encoder; text_l is not used")
    if aesthetic and not refiner:
        log("the aesthetic score is told to the SDXL refiner only; the base model ignores it")
    cond = encode_prompt(text_encoder, text, log, **kw)
    if aesthetic:
        cond = cond.with_meta(**{ASCORE_KEY: float(aesthetic)})
    if text_l and text_l != text and not refiner:
        clip_l = encode_prompt(text_encoder, text_l, log, **kw)
        if clip_l.keyframes != cond.keyframes:
            raise NodeError("text_l's prompt schedule has other keyframes than text's; give both the same frames")
        width = int(text_encoder.pipe.text_encoder.config.hidden_size)
        l_half, g_half = clip_l.embeds[..., :width], cond.embeds[..., width:]
        if l_half.shape[1] != g_half.shape[1]:
            # prompts of different window counts: the shorter one's encoder is given empty-prompt windows, as
            # ComfyUI's CLIPTextEncodeSDXL pads the shorter token list with the empty prompt's
            empty = encode_prompt(text_encoder, "", log, **kw).embeds
            longest = max(l_half.shape[1], g_half.shape[1])

            def padded(half, cols):
                more = (longest - half.shape[1]) // empty.shape[1]
                return torch.cat([half] + [empty[..., cols].expand(half.shape[0], -1, -1)] * more, 1)
            l_half, g_half = padded(l_half, slice(0, width)), padded(g_half, slice(width, None))
        cond = replace(cond, embeds=torch.cat([l_half, g_half], dim=-1))
    if any(sizes):
        from nodes.generate.adapters.sdxl import SIZE_KEY
        cond = cond.with_meta(**{SIZE_KEY: [int(v) for v in sizes]})
    return cond


def encode_flux(text_encoder, text: str, text_l: str, log: Callable[[str], None] = lambda m: None,
                **kw) -> Conditioning:
    """FLUX.1 conditioning as ComfyUI's CLIPTextEncodeFlux makes it: `text` through T5-XXL (the token embeddings the
    transformer attends to) and `text_l` through CLIP-L (its pooled embedding; "" = the same text), as diffusers'
    FluxPipeline takes prompt_2 and prompt."""
    from dataclasses import replace
    if text_encoder is None or text_encoder.family != "flux":
        fam = getattr(text_encoder, "family", None)
        raise NodeError(f"encode.flux is for FLUX.1's text encoders (CLIP-L and T5-XXL); this one is {fam}'s: use "
                        "encode.text")
    cond = encode_prompt(text_encoder, text, log, **kw)
    if not text_l or text_l == text:
        return cond
    keys = parse_text_keyframes(text_l) if is_keyframed_text(text_l) else [(0, text_l)]
    if tuple(k for k, _ in keys) != cond.keyframes:
        raise NodeError("text_l's prompt schedule has other keyframes than text's; give both the same frames")
    adapter = get_adapter("flux")
    with torch.inference_mode():
        pooled = adapter.clip_pooled(text_encoder.pipe, [t for _, t in keys], _device(text_encoder.pipe))
    return replace(cond, pooled=pooled.cpu())


def encode_sd3(text_encoder, text: str, text_l: str, text_g: str, log: Callable[[str], None] = lambda m: None,
               **kw) -> Conditioning:
    """SD3 conditioning as ComfyUI's CLIPTextEncodeSD3 makes it: `text` through T5-XXL, `text_l` through CLIP-L and
    `text_g` through OpenCLIP-G ("" = the same as text), each encoder's columns of the embedding and of the pooled
    vector from its own prompt, as StableDiffusion3Pipeline takes prompt_3, prompt and prompt_2."""
    if text_encoder is None or text_encoder.family != "sd3":
        fam = getattr(text_encoder, "family", None)
        raise NodeError(f"encode.sd3 is for Stable Diffusion 3's text encoders (CLIP-L, OpenCLIP-G, T5-XXL); this one "
                        f"is {fam}'s: use encode.text")
    return encode_prompt(text_encoder, text, log, clip_prompts=(text_l, text_g), **kw)


@contextlib.contextmanager
def _text_loras(text_encoder):
    """The text encoder's LoRA layers active (and no others) while it encodes; the pipeline is held meanwhile,
    as sampling holds it, since LoRA activation is pipeline-wide."""
    pipe = text_encoder.pipe
    if not hasattr(pipe, "load_lora_weights") or not (text_encoder.loras or getattr(pipe, "_kinograph_loras", None)):
        yield
        return
    from nodes.generate.model_manager import activate_loras
    from nodes.generate.sampling import _pipe_lock
    with _pipe_lock(pipe):
        activate_loras(pipe, text_encoder.loras, text=True)
        yield


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


def weigh_from_empty(embeds: torch.Tensor, empty: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """ComfyUI's emphasis: token i becomes empty_i + w_i (e_i - empty_i); weight-1 tokens are unchanged."""
    w = torch.ones(embeds.shape[0])
    w[: len(weights)] = weights
    e, z = embeds.float(), empty.float().to(embeds.device)
    return (z + (e - z) * w[:, None].to(e.device)).to(embeds.dtype)


def _device(pipe):
    # The SDXL refiner's one encoder is text_encoder_2.
    enc = getattr(pipe, "text_encoder", None) or getattr(pipe, "text_encoder_2", None)
    return getattr(enc, "device", torch.device("cpu"))
