"""MiniMax Music 3 (caption and lyrics to a song: 44.1 kHz stereo, up to six minutes) from the files ComfyUI users
have: the diffusion model (diffusion_models/minimax_music3_dit_*.safetensors: latent_conditioners.,
diffusion_transformer., cond_layer_logits / cond_layer_scale), the text encoder (text_encoders/
minimax_music3_text_encoder_*: a Qwen3 language model with the RVQ depth decoder under model.audio_decoder., its
tokenizer as the tensor tokenizer_json; full or pruned embeddings and head, int8 ConvRot or plain) and the DAV
(vae/minimax_music3_dav.safetensors: dec_in_proj., decoder.model.). The weights run in transformers' Qwen3 and
diffusers' MiniMaxMusic3RVQDepthDecoder, MiniMaxMusic3ConditionEncoder, MiniMaxMusic3Transformer1DModel and
MiniMaxMusic3Vocoder.

Made as ComfyUI makes it (comfy/text_encoders/minimax_music.py, comfy/ldm/minimax_music/{prompt,ar,dit,dav}.py,
comfy_extras/nodes_minimax_music.py): the caption and lyrics in its prompt, the language model writing 25 frames a
second (semantic code with guidance against the prompt blanked to <|audio_cfg|>, seven residual codes from the depth
decoder) until <|audio_end|> or the longest length, the frames' eight hidden states as the conditioning, a latent as
long as the frames reached, ConditioningZeroOut's negative as no conditioning, plain CFG (KSampler's) in flow
matching, the DiT over overlapping 200-frame windows averaged, then VAEDecodeAudio's (or its tiled) decode and
loudness rule."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Optional

import torch

from graph_engine import NodeError
from nodes.generate.weights import misfit, sizes_of

RATE = 44100                # the DAV's sample rate
HOP = 512                   # waveform samples per latent frame
FPS = 25                    # the language model's frames a second
MAX_FRAMES = 9000           # six minutes
MAX_PROMPT_TOKENS = 5000
WINDOW_FRAMES, WINDOW_HOP_FRAMES = 200, 100     # the DiT's windows, in language-model frames
DIT_HEAD_DIM = 64           # ComfyUI's DiT attention heads are 64 wide, whatever the width
ROPE_THETA = 10000.0        # the DiT's rotary base (diffusers' MiniMaxMusic3RotaryEmbedding's)
DEPTH_HEADS = 16            # ComfyUI's depth decoder has 16 heads
SAMPLING_TOP_K = 50         # every draw keeps the 50 likeliest (ComfyUI's sample_topk), whatever top_k says
SPECIAL = {"<|im_start|>": 151644, "<|im_end|>": 151645, "<|audio_cfg|>": 151654, "<|audio_start|>": 151669,
           "<|audio_end|>": 151670, "<|caption_start|>": 151671, "<|caption_end|>": 151672,
           "<|lyrics_start|>": 151673, "<|lyrics_end|>": 151674}
CODE_OFFSET = 151675        # the first semantic code's token
SEMANTIC_CODES = 16384
NOT_MUSIC3 = "{name} is not a MiniMax Music 3 {what} ({why}): give {want}"


def latent_length(frames: int) -> int:
    """Latent frames for `frames` language-model frames (24 kHz / 960 to 44.1 kHz / 512)."""
    return max(1, int(frames * 44100 / 24000 * 960 / 512))


def frames_for(seconds: float) -> int:
    """Language-model frames for a length in seconds, as ComfyUI rounds it (1 to 9000)."""
    return min(MAX_FRAMES, max(1, round(float(seconds) * FPS)))


# -- ComfyUI's prompt (comfy/ldm/minimax_music/prompt.py) -----------------------------------------------------------
_SPECIAL_TAG = re.compile(r"<\|([^|]*)\|>")
_LYRIC_TAG = re.compile(r"\s*(\[[^\]]+\])\s*")


def _plain(text: str) -> str:
    """The caption without markdown: headings, bullets, bold and italics marks, rules."""
    lines = []
    for line in text.splitlines():
        line = re.sub(r"^\s{0,3}#{1,6}\s+", "", line)
        line = re.sub(r"^\s*[*+-]\s+", "", line)
        while "**" in line:
            bare = re.sub(r"\*\*([^*]+)\*\*", r"\1", line)
            if bare == line:
                break
            line = bare
        lines.append(re.sub(r"(?<!\*)\*([^*\n]+)\*(?!\*)", r"\1", line).rstrip())
    text = re.sub(r"^\s*[-*_]{3,}\s*$", "", "\n".join(lines), flags=re.MULTILINE)
    return text.replace("• ", "").replace("    ", "")


def clean_caption(caption: str) -> str:
    """<|tag value|> read as 'tag is value' (the model's own tokens never come from the user), markdown dropped,
    blank lines closed up."""
    def spoken(m):
        parts = m.group(1).strip().split(None, 1)
        return f"{parts[0]} is {parts[1]}" if len(parts) == 2 else m.group(1).strip()
    return re.sub(r"\n{2,}", "\n", _plain(_SPECIAL_TAG.sub(spoken, caption)))


def normalize_lyrics(lyrics: str) -> str:
    """Each [tag] on a line of its own, lower case; ' ^ ' a line break; [start] first."""
    parts = _LYRIC_TAG.split(lyrics)
    text = "\n".join(p.lower() if p.startswith("[") else p for p in parts if p)
    return "[start]\n" + text.replace(" ^ ", "\n")


def build_prompt(caption: str, lyrics: str) -> str:
    return (f"<|im_start|><|caption_start|>{clean_caption(caption)}<|caption_end|><|lyrics_start|>"
            f"{normalize_lyrics(lyrics)}<|lyrics_end|><|im_end|><|audio_start|>")


def derive_seed(seed: int, *parts) -> int:
    """ComfyUI's seed for one stage of the song (the language model's: derive_seed(seed, 'ar'))."""
    digest = hashlib.blake2b(digest_size=8, person=b"minimax-ttm")
    digest.update(int(seed).to_bytes(8, "little", signed=False))
    for part in parts:
        value = str(part).encode("utf-8")
        digest.update(len(value).to_bytes(4, "little"))
        digest.update(value)
    return int.from_bytes(digest.digest(), "little") & ((1 << 63) - 1)


# -- the files ------------------------------------------------------------------------------------------------------
def _prefix(state: dict, tail: str) -> Optional[str]:
    return next((k[:-len(tail)] for k in state if k.endswith(tail)), None)


def _count(sd: dict, pre: str) -> int:
    return len({k[len(pre):].split(".")[0] for k in sd if k.startswith(pre)})


def dit_parts(state: dict, name: str) -> dict:
    """{part: (config, state dict)} for diffusers' transformer and condition_encoder from ComfyUI's tensors (the split
    file, or under model.diffusion_model.); sizes from the tensors."""
    pre = _prefix(state, "diffusion_transformer.preprocess_conv.weight")
    if pre is None:
        raise NodeError(NOT_MUSIC3.format(name=name, what="diffusion model", why="no diffusion_transformer.*",
                                          want="minimax_music3_dit_fp16.safetensors from diffusion_models/"))
    sd = {k[len(pre):]: v for k, v in state.items() if k.startswith(pre)}
    dit, cond = {}, {"layer_weight_logits": sd["cond_layer_logits"], "layer_scale": sd["cond_layer_scale"],
                     "proj.weight": sd["latent_conditioners.0.weight"], "proj.bias": sd["latent_conditioners.0.bias"]}
    names = {"timestep_features.weight": "time_proj.weight", "preprocess_conv.weight": "preprocess_conv.weight",
             "postprocess_conv.weight": "postprocess_conv.weight", "transformer.project_in.weight": "proj_in.weight",
             "transformer.project_out.weight": "proj_out.weight"}
    for i, part in ((0, "linear_1"), (2, "linear_2")):
        for p in ("weight", "bias"):
            names[f"to_timestep_embed.{i}.{p}"] = f"time_embed.{part}.{p}"
    block = {"pre_norm.gamma": "norm1.weight", "pre_norm.beta": "norm1.bias", "ff_norm.gamma": "norm2.weight",
             "ff_norm.beta": "norm2.bias", "self_attn.to_out.weight": "attn.to_out.0.weight",
             "ff.ff.0.proj.weight": "ff_in.weight", "ff.ff.0.proj.bias": "ff_in.bias",
             "ff.ff.2.weight": "ff_out.weight", "ff.ff.2.bias": "ff_out.bias"}
    for key, v in sd.items():
        if not key.startswith("diffusion_transformer."):
            continue
        key = key[len("diffusion_transformer."):]
        m = re.match(r"transformer\.layers\.(\d+)\.(.+)", key)
        if m and m.group(2) == "self_attn.to_qkv.weight":
            for part, w in zip(("to_q", "to_k", "to_v"), v.chunk(3)):
                dit[f"transformer_blocks.{m.group(1)}.attn.{part}.weight"] = w
        elif m and m.group(2) in block:
            dit[f"transformer_blocks.{m.group(1)}.{block[m.group(2)]}"] = v
        elif key in names:
            dit[names[key]] = v
    with sizes_of(name, "a MiniMax Music 3 diffusion model"):
        inner, concat = sd["diffusion_transformer.transformer.project_in.weight"].shape
        latent = int(sd["diffusion_transformer.postprocess_conv.weight"].shape[0])
        hidden = int(sd["latent_conditioners.0.weight"].shape[1])
        tcfg = dict(in_channels=latent, condition_dim=int(concat) - 2 * latent,
                    num_layers=_count(sd, "diffusion_transformer.transformer.layers."),
                    num_attention_heads=int(inner) // DIT_HEAD_DIM, attention_head_dim=DIT_HEAD_DIM,
                    ff_inner_dim=int(sd["diffusion_transformer.transformer.layers.0.ff.ff.2.weight"].shape[1]),
                    rotary_dim=2 * int(sd["diffusion_transformer.transformer.rotary_pos_emb.inv_freq"].shape[0]),
                    fourier_embedding_dim=2 * int(sd["diffusion_transformer.timestep_features.weight"].shape[0]))
        ccfg = dict(condition_hidden_dim=hidden, num_condition_layers=int(sd["cond_layer_logits"].shape[0]),
                    out_dim=int(sd["latent_conditioners.0.weight"].shape[0]))
        # the rotary base the file's frequencies were made with (inv_freq[1] = theta ** (-2 / rotary_dim))
        inv = sd["diffusion_transformer.transformer.rotary_pos_emb.inv_freq"].double()
        theta = float(inv[1]) ** (-tcfg["rotary_dim"] / 2) if len(inv) > 1 else ROPE_THETA
    return {"transformer": (tcfg, dit), "condition_encoder": (ccfg, cond), "rope_theta": theta}


def _split_merged(sd: dict) -> dict:
    """A file's merged projections (qkv_proj, gate_up_proj: ComfyUI writes either form) as the separate ones."""
    out = {}
    for key, v in sd.items():
        if key.endswith("qkv_proj.weight"):
            out.update(_qkv(key[:-len("qkv_proj.weight")], v, sd))
        elif key.endswith("gate_up_proj.weight"):
            base = key[:-len("gate_up_proj.weight")]
            out[base + "gate_proj.weight"], out[base + "up_proj.weight"] = v.chunk(2)
        else:
            out[key] = v
    return out


def _qkv(base: str, w, sd: dict) -> dict:
    """q, k and v of a merged projection: equal thirds in the depth decoder; in the language model k and v are as
    wide as the grouped heads its q_norm and o_proj tell."""
    o = sd.get(base + "o_proj.weight")
    norm = sd.get(base + "q_norm.weight")
    if o is None or norm is None:
        q, k, v = w.chunk(3)
    else:
        width = int(o.shape[1])
        kv = (int(w.shape[0]) - width) // 2
        q, k, v = w.split([width, kv, kv])
    return {base + "q_proj.weight": q, base + "k_proj.weight": k, base + "v_proj.weight": v}


def text_parts(state: dict, name: str) -> dict:
    """The language model's and depth decoder's (config, state dict), the prompt's and codes' embedding tables, the
    head and whether it is pruned, from ComfyUI's text encoder tensors."""
    if "model.audio_decoder.projection.weight" not in state or "model.layers.0.self_attn.q_norm.weight" not in state:
        raise NodeError(NOT_MUSIC3.format(name=name, what="text encoder", why="no model.audio_decoder.*",
                                          want="minimax_music3_text_encoder_*.safetensors from text_encoders/"))
    sd = _split_merged(state)
    pruned_embed = "model.embed_tokens_prefill.weight" in sd
    pruned_head = "model.lm_head_pruned.weight" in sd
    with sizes_of(name, "the MiniMax Music 3 language model"):
        prompt_table = sd["model.embed_tokens_prefill.weight" if pruned_embed else "model.embed_tokens.weight"]
        code_table = sd["model.embed_tokens_audio.weight"] if pruned_embed else \
            sd["model.embed_tokens.weight"][CODE_OFFSET:CODE_OFFSET + SEMANTIC_CODES]
        head = sd["model.lm_head_pruned.weight" if pruned_head else "model.lm_head.weight"]
        hidden = int(prompt_table.shape[1])
        head_dim = int(sd["model.layers.0.self_attn.q_norm.weight"].shape[0])
        lm = dict(vocab_size=1, hidden_size=hidden, head_dim=head_dim,
                  num_hidden_layers=_count(sd, "model.layers."),
                  num_attention_heads=int(sd["model.layers.0.self_attn.q_proj.weight"].shape[0]) // head_dim,
                  num_key_value_heads=int(sd["model.layers.0.self_attn.k_proj.weight"].shape[0]) // head_dim,
                  intermediate_size=int(sd["model.layers.0.mlp.gate_proj.weight"].shape[0]),
                  rms_norm_eps=1e-6, rope_theta=1000000.0, max_position_embeddings=10240)
        extra = sd["model.audio_extra_embedding.weight"]
        books = len([k for k in sd if re.match(r"model\.audio_decoder\.audio_heads\.\d+\.weight$", k)]) + 1
        depth = dict(hidden_size=hidden, num_layers=_count(sd, "model.audio_decoder.layers."),
                     num_attention_heads=DEPTH_HEADS,
                     intermediate_size=int(sd["model.audio_decoder.layers.0.mlp.gate_proj.weight"].shape[0]),
                     audio_vocab_size=int(extra.shape[0]) // (books - 1), num_codebooks=books,
                     max_position_embeddings=int(sd["model.audio_decoder.pos_embedding.weight"].shape[0]))
    lm_sd = {k[len("model."):]: v for k, v in sd.items()
             if k.startswith("model.layers.") or k == "model.norm.weight"}
    depth_sd = {"audio_embeddings.weight": extra}
    for key, v in sd.items():
        if key.startswith("model.audio_decoder."):
            key = key[len("model.audio_decoder."):]
            key = re.sub(r"\.self_attn\.(q|k|v)_proj\.", r".attn.to_\1.", key)
            key = key.replace(".self_attn.o_proj.", ".attn.to_out.").replace(".mlp.", ".")
            depth_sd[key] = v
    return {"lm": (lm, lm_sd), "depth": (depth, depth_sd), "prompt_table": prompt_table, "code_table": code_table,
            "head": head, "pruned_head": pruned_head}


def dav_part(state: dict, name: str):
    """(MiniMaxMusic3Vocoder's config, its state dict) from the DAV's tensors (weight norms as weight_g / weight_v, or
    torch's parametrizations)."""
    if "dec_in_proj.weight" not in state:
        raise NodeError(NOT_MUSIC3.format(name=name, what="DAV", why="no dec_in_proj",
                                          want="minimax_music3_dav.safetensors from vae/"))
    last = max(int(k.split(".")[2]) for k in state if k.startswith("decoder.model."))
    where = {"0": "conv_in", str(last - 1): "snake_out", str(last): "conv_out"}
    where.update({str(i): f"blocks.{i - 1}" for i in range(1, last - 1)})
    inner = {"block.0.": "snake1.", "block.1.": "conv_t1.", "block.2.": "res_unit1.", "block.3.": "res_unit2.",
             "block.4.": "res_unit3."}
    unit = {"block.0.": "snake1.", "block.1.": "conv1.", "block.2.": "snake2.", "block.3.": "conv2."}
    sd = {}
    for key, v in state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v")
        if key.startswith("decoder.model."):
            idx, rest = key[len("decoder.model."):].split(".", 1)
            if idx not in where:
                continue
            head = next((h for h in inner if rest.startswith(h)), None) if where[idx].startswith("blocks.") else None
            if head is not None:
                rest = rest[len(head):]
                inside = next((h for h in unit if rest.startswith(h)), None) if head in ("block.2.", "block.3.",
                                                                                         "block.4.") else None
                rest = inner[head] + (unit[inside] + rest[len(inside):] if inside else rest)
            key = f"{where[idx]}.{rest}"
        sd[key] = v
    with sizes_of(name, "a MiniMax Music 3 DAV"):
        ratios = tuple(int(sd[f"blocks.{i}.conv_t1.weight_v"].shape[2]) // 2 for i in range(last - 2))
        cfg = dict(latent_channels=2 * int(sd["dec_in_proj.weight"].shape[1]),
                   decoder_input_dim=int(sd["dec_in_proj.weight"].shape[0]),
                   decoder_hidden_dim=int(sd["conv_in.weight_v"].shape[0]), upsampling_ratios=ratios,
                   sampling_rate=RATE)
    return cfg, sd


@dataclass(frozen=True, eq=False)
class Music3:
    transformer: object
    condition_encoder: object
    vocoder: object
    lm: object                  # transformers' Qwen3Model (its embeddings unused: the tables below)
    depth: object               # diffusers' MiniMaxMusic3RVQDepthDecoder
    prompt_table: torch.Tensor  # the prompt's token embeddings
    code_table: torch.Tensor    # the semantic codes' embeddings
    head: torch.Tensor          # the full head, or the pruned one (<|audio_end|> then the codes)
    pruned_head: bool
    tokenizer: object           # tokenizers.Tokenizer from the file's tokenizer_json
    device: str
    dtype: torch.dtype          # the language model's


def _loaded(module, sd: dict, name: str, part: str, allowed=()):
    why = misfit(module, sd, allowed)
    if why:
        raise NodeError(f"{name}: its {part} tensors do not match MiniMax Music 3's ({why}): the file is damaged or "
                        "another model's")
    return module.eval()


def tokenizer_of(raw, name: str):
    """The tokenizer the text encoder file carries (tokenizer_json, bytes of its JSON), its special tokens checked."""
    from tokenizers import Tokenizer
    if raw is None:
        raise NodeError(f"{name} carries no tokenizer_json: it is not ComfyUI's MiniMax Music 3 text encoder; give "
                        "minimax_music3_text_encoder_*.safetensors from text_encoders/")
    tok = Tokenizer.from_str(bytes(raw.to(torch.uint8).flatten().tolist()).decode("utf-8"))
    for token, want in SPECIAL.items():
        if tok.token_to_id(token) != want:
            raise NodeError(f"{name}: its tokenizer gives {token} the id {tok.token_to_id(token)}, not {want}: the "
                            "file is damaged or another model's")
    return tok


def load(mm, diffusion_model: str, text_encoder: str, vae: str, device: str) -> Music3:
    """The model from ComfyUI's three files (cached by the model manager): the language model in bfloat16 on a GPU
    (as ComfyUI runs it), float32 elsewhere and for the rest."""
    from nodes.generate.model_manager import resolve_model_path
    if not (diffusion_model and text_encoder and vae):
        raise NodeError("generate.minimax_music3 needs its three files: diffusion_model, text_encoder and vae")
    dm = resolve_model_path(diffusion_model, "diffusion_models", "MiniMax Music 3 diffusion model")
    te = resolve_model_path(text_encoder, "text_encoders", "MiniMax Music 3 text encoder")
    dav = resolve_model_path(vae, "vae", "MiniMax Music 3 DAV")
    lm_dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32

    def build():
        from diffusers import (MiniMaxMusic3ConditionEncoder, MiniMaxMusic3RVQDepthDecoder,
                               MiniMaxMusic3Transformer1DModel, MiniMaxMusic3Vocoder)
        from transformers import Qwen3Config, Qwen3Model
        from nodes.generate.weights import load_weights
        parts = dit_parts(load_weights(dm, torch.float32), dm.name)
        mods = {k: _loaded(cls(**parts[k][0]), parts[k][1], dm.name, k) for k, cls in (
            ("transformer", MiniMaxMusic3Transformer1DModel), ("condition_encoder", MiniMaxMusic3ConditionEncoder))}
        if abs(parts["rope_theta"] / ROPE_THETA - 1) > 1e-3:      # diffusers' default is the released one
            mods["transformer"].rotary_emb.theta = parts["rope_theta"]
        # the 8B language model read and built in its own dtype: in float32 first it took twice the memory
        state = load_weights(te, lm_dtype)
        raw = state.pop("tokenizer_json", None)
        text = text_parts(state, te.name)
        tok = tokenizer_of(raw, te.name)
        before = torch.get_default_dtype()
        torch.set_default_dtype(lm_dtype)
        try:
            lm = Qwen3Model(Qwen3Config(**text["lm"][0]))
            depth = MiniMaxMusic3RVQDepthDecoder(**text["depth"][0])
        finally:
            torch.set_default_dtype(before)
        lm = _loaded(lm, text["lm"][1], te.name, "language model", ("embed_tokens.weight",))
        depth = _loaded(depth, text["depth"][1], te.name, "depth decoder")
        vcfg, vsd = dav_part(load_weights(dav, torch.float32), dav.name)
        vocoder = _loaded(MiniMaxMusic3Vocoder(**vcfg), vsd, dav.name, "DAV")
        return Music3(mods["transformer"].to(device), mods["condition_encoder"].to(device), vocoder.to(device),
                      lm.to(device, lm_dtype), depth.to(device, lm_dtype),
                      *(text[k].to(device, lm_dtype) for k in ("prompt_table", "code_table", "head")),
                      text["pruned_head"], tok, device, lm_dtype)
    return mm.cached(("minimax_music3", str(dm), str(te), str(dav), device), build, files=[dm, te, dav])


# -- the language model's frames (comfy/ldm/minimax_music/ar.py) ----------------------------------------------------
def prompt_ids(model: Music3, caption: str, lyrics: str) -> torch.Tensor:
    """The prompt's tokens [1, L]."""
    ids = model.tokenizer.encode(build_prompt(caption, lyrics), add_special_tokens=False).ids
    if len(ids) > MAX_PROMPT_TOKENS:
        raise NodeError(f"the caption and lyrics make {len(ids)} tokens; MiniMax Music 3 reads at most "
                        f"{MAX_PROMPT_TOKENS}: shorten them")
    return torch.tensor([ids], device=model.device)


def _top_draw(logits: torch.Tensor, gen) -> torch.Tensor:
    """One draw from the 50 likeliest of each row (ComfyUI's sample_topk)."""
    values = torch.nan_to_num(logits.float(), nan=-1e9, posinf=1e9, neginf=-1e9)
    kth = torch.topk(values, min(SAMPLING_TOP_K, values.shape[-1]), dim=-1).values[..., -1, None]
    probs = torch.nan_to_num(torch.softmax(values.masked_fill(values < kth, -float("inf")), -1), nan=0.0)
    probs = probs / probs.sum(-1, keepdim=True).clamp_min(1e-12)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


def _semantic(model: Music3, hidden: torch.Tensor, cfg_scale: float, top_k: int, gen):
    """(the frame's semantic code, whether the song ends here) from the two rows' last hidden states."""
    logits = torch.nn.functional.linear(hidden, model.head).float()
    if not model.pruned_head:       # only the codes and <|audio_end|> may come
        keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        keep[CODE_OFFSET:CODE_OFFSET + SEMANTIC_CODES] = True
        keep[SPECIAL["<|audio_end|>"]] = True
        logits = logits.masked_fill(~keep, -float("inf"))
    cond, uncond = logits[0:1], logits[1:2]
    guided = uncond + (cond - uncond) * cfg_scale
    # the guided scores among the conditional row's top_k (guidance on two -inf gives NaN: masked again)
    kth = torch.topk(cond, min(int(top_k), cond.shape[-1]), dim=-1).values[..., -1, None]
    guided = guided.masked_fill(cond < kth, -float("inf"))
    if not model.pruned_head:
        guided = guided.masked_fill(~keep, -float("inf"))
    token = _top_draw(guided, gen)
    stop, first = (0, 1) if model.pruned_head else (SPECIAL["<|audio_end|>"], CODE_OFFSET)
    return torch.where(token == stop, 0, token - first), bool(int(token) == stop)


def _embed_codes(model: Music3, codes: torch.Tensor) -> torch.Tensor:
    """A frame's eight codes [2, 8] as the language model's next input [2, 1, H]."""
    d = model.depth.config
    extra = model.depth.audio_embeddings(codes[:, 1:] + torch.arange(d.num_codebooks - 1, device=codes.device)
                                         * d.audio_vocab_size).sum(1)
    return ((model.code_table[codes[:, 0]] + extra) * d.num_codebooks ** -0.5).unsqueeze(1)


def _residual(model: Music3, hidden: torch.Tensor, c0: torch.Tensor, cfg_scale: float, gen):
    """The seven residual codes after semantic code c0 (both rows alike) and the depth decoder's hidden states:
    (codes [2, 8], hidden [1, 7 H])."""
    depth = model.depth
    seq = [depth.projection(hidden).unsqueeze(1), depth.projection(model.code_table[c0]).unsqueeze(1)]
    codes, states = [c0], []
    for i in range(1, depth.config.num_codebooks):
        out = depth(torch.cat(seq, 1))[:, -1]
        states.append(out[:1])
        logits = depth.audio_heads[i - 1](out).float()
        code = _top_draw(logits[1:2] + (logits[:1] - logits[1:2]) * cfg_scale, gen).repeat(2)
        codes.append(code)
        if i < depth.config.num_codebooks - 1:
            seq.append(depth.projection(depth.audio_embeddings(code + (i - 1) * depth.config.audio_vocab_size))
                       .unsqueeze(1))
    return torch.stack(codes, 1), torch.cat(states, -1)


@torch.no_grad()
def frame_states(model: Music3, caption: str, lyrics: str, seed: int, max_frames: int, cfg_scale: float = 1.5,
                 top_k: int = 50, progress=None) -> torch.Tensor:
    """The song's conditioning [1, frames, 8 H] (MiniMaxMusic3TextEncode's): the language model's and the depth
    decoder's hidden states of each frame it writes, up to `max_frames`, drawn as ComfyUI draws them for `seed`."""
    if not caption.strip():
        raise NodeError("MiniMax Music 3 needs a caption (the song's style, voice and arrangement)")
    if not lyrics.strip():
        raise NodeError("MiniMax Music 3 needs lyrics: for an instrumental, write only section tags "
                        "([intro] [instrumental] [outro])")
    ids = prompt_ids(model, caption, lyrics)
    blank = ids.clone()
    blank[:, 1:-2] = SPECIAL["<|audio_cfg|>"]     # the unconditional row: all but the first and last two tokens
    out = model.lm(inputs_embeds=model.prompt_table[torch.cat([ids, blank])], use_cache=True)
    cache, hidden = out.past_key_values, out.last_hidden_state[:, -1]
    gen = torch.Generator(model.device).manual_seed(derive_seed(seed, "ar"))
    limit = min(int(max_frames), MAX_FRAMES)
    frames = []
    # the first pass only steps past <|audio_start|>: its frame is fed back, not kept
    for step in range(limit + 1):
        c0, end = _semantic(model, hidden, cfg_scale, top_k, gen)
        if end:
            break
        codes, states = _residual(model, hidden, c0.repeat(2), cfg_scale, gen)
        if step > 0:
            frames.append(torch.cat([hidden[:1], states], -1))
            if progress:
                progress(len(frames), limit)
            if len(frames) >= limit:
                break
        out = model.lm(inputs_embeds=_embed_codes(model, codes), past_key_values=cache, use_cache=True)
        cache, hidden = out.past_key_values, out.last_hidden_state[:, -1]
    if not frames:
        raise NodeError("MiniMax Music 3's language model ended the song before its first frame: change the seed, "
                        "or the caption and lyrics")
    return torch.stack(frames, 1).float()


# -- the DiT (comfy/ldm/minimax_music/dit.py) ------------------------------------------------------------------------
def velocity(model: Music3, x: torch.Tensor, sigma: float, condition: torch.Tensor) -> torch.Tensor:
    """The DiT's velocity (toward the song) at noise level sigma over overlapping windows of 200 frames' latents,
    100 frames apart, averaged where they overlap; condition [B, latent, D] already aligned to x [B, C, latent]."""
    t = torch.full((x.shape[0],), 1.0 - float(sigma), device=x.device)

    def run(a, b):
        return model.transformer(hidden_states=x[..., a:b], timestep=t, encoder_hidden_states=condition[:, a:b],
                                 return_dict=False)[0]
    n, window = x.shape[-1], latent_length(WINDOW_FRAMES)
    if n <= window:
        return run(0, n)
    out, count = torch.zeros_like(x), torch.zeros((1, 1, n), device=x.device, dtype=x.dtype)
    start, hop = 0, latent_length(WINDOW_HOP_FRAMES)
    while start < n:
        end = min(start + window, n)
        out[..., start:end] += run(start, end)
        count[..., start:end] += 1
        if end == n:
            break
        start += hop
    return out / count


def aligned(model: Music3, states: torch.Tensor, length: int) -> torch.Tensor:
    """The condition encoder's sequence for `states`, padded with zeros or cut to `length` latent frames."""
    cond = model.condition_encoder(states.to(model.device))
    if cond.shape[1] < length:
        return torch.nn.functional.pad(cond, (0, 0, 0, length - cond.shape[1]))
    return cond[:, :length]


@torch.no_grad()
def decode(model: Music3, latent: torch.Tensor, tile: int = 0, overlap: int = 64) -> torch.Tensor:
    """The waveform [2, samples] (VAEDecodeAudio's; with `tile` latent frames, VAEDecodeAudioTiled's: windows of
    `tile` frames `overlap` apart, blended with linear ramps as comfy.utils.tiled_scale_multidim does), at
    VAEDecodeAudio's loudness."""
    from nodes.generate.stable_audio import loudness
    n = latent.shape[-1]
    if not tile or n <= tile:
        return loudness(model.vocoder(latent)[0].float().cpu())
    if overlap >= tile:
        raise NodeError(f"overlap {overlap} is not below tile_size {tile}: give a smaller overlap")
    out = torch.zeros(latent.shape[0], 2, n * HOP)
    weight = torch.zeros_like(out)
    for start in range(0, n - overlap, tile - overlap):
        pos = max(0, min(n - overlap, start))
        wave = model.vocoder(latent[..., pos:pos + min(tile, n - pos)]).float().cpu()
        mask = torch.ones_like(wave)
        feather = overlap * HOP
        if feather < mask.shape[-1]:
            ramp = torch.arange(1, feather + 1, dtype=mask.dtype) / feather
            mask[..., :feather] *= ramp
            mask[..., mask.shape[-1] - feather:] *= ramp.flip(0)
        out[..., pos * HOP:pos * HOP + wave.shape[-1]] += wave * mask
        weight[..., pos * HOP:pos * HOP + wave.shape[-1]] += mask
    return loudness((out / weight)[0])


@torch.no_grad()
def generate(model: Music3, states: torch.Tensor, seconds: float, steps: int, cfg: float, sampler: str,
             scheduler: str, seed: int, progress=None) -> torch.Tensor:
    """The song's latent [1, C, latent frames] for the conditioning `states`: EmptyMiniMaxMusic3LatentAudio's
    `seconds` (0: as long as the frames), KSampler's noise, steps, cfg (against no conditioning) and schedule."""
    from nodes.generate.ace_step import SCHEDULERS
    from nodes.generate.samplers import (SigmaTable, beta_sigmas, comfy_noise_sampler, ksampler_schedule,
                                         latent_sampler, sgm_uniform_sigmas, simple_sigmas)
    pick = {"simple": simple_sigmas, "sgm_uniform": sgm_uniform_sigmas, "beta": beta_sigmas}.get(scheduler)
    if pick is None:
        raise NodeError(f"scheduler={scheduler!r}: MiniMax Music 3 takes {', '.join(SCHEDULERS)}")
    sample = latent_sampler(sampler)
    length = latent_length(frames_for(seconds) if seconds else states.shape[1])
    cond = aligned(model, states, length)
    guided = cfg != 1.0
    if guided:          # ConditioningZeroOut's negative: no conditioning at all
        cond = torch.cat([cond, torch.zeros_like(cond)])

    def denoised(x, sigma):
        v = velocity(model, torch.cat([x] * len(cond)), float(sigma), cond).float()
        if guided:
            c, u = v.chunk(2)
            v = u + cfg * (c - u)
        return x + float(sigma) * v

    gen = torch.Generator("cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    noise = torch.randn((1, model.transformer.config.in_channels, length), generator=gen)    # KSampler's noise
    levels = ksampler_schedule(lambda n: pick(SigmaTable.flow(1.0), n), steps, sampler)
    kw = {"noise_sampler": comfy_noise_sampler(noise.shape, seed, model.device)}
    callback = (lambda i, n, _: progress(i + 1, n)) if progress else None
    return sample(denoised, noise.to(model.device) * float(levels[0]), levels, callback, flow=True, **kw)
