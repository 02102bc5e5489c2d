"""ACE-Step v1 (3.5B: a song from tags and lyrics, 44.1 kHz stereo) from ComfyUI's all-in-one checkpoint
(checkpoints/ace_step_v1_3.5b.safetensors: the DiT under model.diffusion_model., the music DCAE and vocoder under
vae., UMT5-base under text_encoders.umt5base.transformer. with its sentencepiece model in the file), made as
ComfyUI makes it: EmptyAceStepLatentAudio's length, TextEncodeAceStepAudio (UMT5's last states of the tags, the
lyrics as VoiceBPE ids, lyrics_strength), ConditioningZeroOut's negative, ModelSamplingSD3's shifted flow (the
DiT told sigma x 1000), KSampler (with its denoise for a song given to edit: VAEEncodeAudio's latent), an optional
LatentApplyOperationCFG with LatentOperationTonemapReinhard on the guidance, then VAEDecodeAudio's loudness rule.

The lyric tokenizer's vocabulary (ComfyUI ships it as comfy/text_encoders/ace_lyrics_tokenizer/vocab.json) is read
from beside the checkpoint. Lyrics are cleaned as ComfyUI cleans them: English, or romanised lines marked with their
language ([zh], [ja], [ko], ...); lines in other scripts (which ComfyUI does not convert either) are refused."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from graph_engine import NodeError
from nodes.generate.audio_nodes import ACE_SCHEDULERS as SCHEDULERS

RATE = 44100
DIT = "model.diffusion_model."
VAE = "vae."
UMT5 = "text_encoders.umt5base.transformer."
GENRE = DIT + "genre_embedder.weight"     # the DiT's prompt projection: ACE-Step v1's alone
VOCAB_PLACES = ("{stem}", "{stem}_tokenizer", "ace_lyrics_tokenizer")
# The most tokens the lyrics, or the tags, may make: ComfyUI reads any number, and the lyric encoder's and UMT5's
# attention grows with the square of it (20 KB of lyrics asked 30 GB of the tiny test model).
MAX_TOKENS = 4096


def latent_columns(seconds: float) -> int:
    """EmptyAceStepLatentAudio's length: int(seconds * 44100 / 512 / 8) columns."""
    return int(seconds * RATE / 512 / 8)


@dataclass(frozen=True, eq=False)
class AceStep1:
    dit: object
    vae: object
    text_encoder: object
    tokenizer: object
    lyrics: object
    device: str


def not_v1(name: str) -> str:
    return (f"{name} is not ACE-Step v1's checkpoint (no {GENRE}): give ace_step_v1_3.5b.safetensors from "
            "checkpoints/ (ACE-Step 1.5's files go to generate.ace_step)")


def _assign(make, sd: dict, name: str, what: str, skip=(), dtype=torch.float32):
    """make()'s module (built on the meta device) holding `sd` in `dtype`, checked tensor by tensor against it
    first."""
    from nodes.generate.converters import check_claim
    check_claim(make, sd, name)
    with torch.device("meta"):
        module = make()
    want = module.state_dict()
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want and not k.startswith(skip)]
    wrong = next((k for k in want if k in sd and tuple(sd[k].shape) != tuple(want[k].shape)), None)
    if missing or unexpected or wrong:
        why = (f"its {wrong} is {tuple(sd[wrong].shape)}, where the model its other tensors describe has "
               f"{tuple(want[wrong].shape)}" if wrong else
               f"missing {', '.join(missing[:3]) or 'none'}; unexpected {', '.join(unexpected[:3]) or 'none'}")
        raise NodeError(f"{name}: its {what} tensors do not match ACE-Step v1's ({why}): the file is damaged or "
                        "another model's")
    module.load_state_dict({k: sd[k].to(dtype) for k in want}, assign=True)
    return module.eval()


def _part(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def parts(state: dict, name: str, dtype=torch.float32):
    """(DiT in `dtype`, MusicVAE, UMT5 encoder) from the checkpoint's tensors."""
    from diffusers import AutoencoderDC

    from nodes.generate import ace_step1_dit as dit_mod
    from nodes.generate import ace_step1_vae as vae_mod
    from nodes.generate.converters.text import umt5
    from nodes.generate.weights import sizes_of
    if GENRE not in state:
        raise NodeError(not_v1(name))
    dit_sd = _part(state, DIT)
    vocoder_sd = vae_mod.fold_weight_norm(_part(state, VAE + "vocoder."))
    dcae_sd = _part(state, VAE + "dcae.")
    with sizes_of(name, "ACE-Step v1's DiT"):
        dit = _assign(lambda: dit_mod.build(dit_sd), dit_sd, name, "DiT", skip=("projectors.",), dtype=dtype)
    with sizes_of(name, "ACE-Step v1's vocoder"):
        vocoder = _assign(lambda: vae_mod.build_vocoder(vocoder_sd), vocoder_sd, name, "vocoder",
                          skip=("mel_transform.",))
    with sizes_of(name, "ACE-Step v1's music autoencoder"):
        cfg = vae_mod.dcae_config(dcae_sd)
        dcae = _assign(lambda: AutoencoderDC(**cfg), dcae_sd, name, "autoencoder")
    te_sd = {k: v for k, v in _part(state, UMT5).items() if k != "spiece_model"}
    if "shared.weight" not in te_sd:
        raise NodeError(f"{name} holds no UMT5 text encoder ({UMT5}shared.weight): give ComfyUI's "
                        "ace_step_v1_3.5b.safetensors, which carries it")
    with sizes_of(name, "ACE-Step v1's UMT5"):
        built = umt5(te_sd, None)
    te_sd = {k: v for k, v in te_sd.items() if not k.startswith("decoder.")}
    encoder = _assign(built.make, {**te_sd, "encoder.embed_tokens.weight": te_sd["shared.weight"]}, name, "UMT5")
    return dit, vae_mod.MusicVAE(dcae, vocoder), encoder


def spiece(state: dict, name: str):
    """UMT5's tokenizer: the sentencepiece model ComfyUI keeps in the checkpoint (a uint8 spiece_model), run by
    sentencepiece itself, as ComfyUI's SPieceTokenizer runs it (its normalisation: tabs and line ends read as spaces,
    spaces at the ends dropped)."""
    import sentencepiece as spm

    from nodes.generate.split import stored_tokenizer
    key = next((k for k in state if k.endswith("spiece_model")), None)
    if key is None:
        raise NodeError(f"{name} carries no UMT5 tokenizer (a spiece_model tensor): give ComfyUI's "
                        "ace_step_v1_3.5b.safetensors, which carries it")
    return stored_tokenizer(name, lambda: spm.SentencePieceProcessor(model_proto=state[key].numpy().tobytes()))


def lyrics_vocab(checkpoint: Path) -> Path:
    """The VoiceBPE vocabulary (vocab.json) beside the checkpoint."""
    places = [checkpoint.parent / p.format(stem=checkpoint.stem) / "vocab.json" for p in VOCAB_PLACES]
    for p in places:
        if p.is_file():
            return p
    raise NodeError(f"ACE-Step v1's lyric tokenizer is not beside {checkpoint.name}: put ComfyUI's "
                    "comfy/text_encoders/ace_lyrics_tokenizer/vocab.json in one of " +
                    ", ".join(str(p.parent) for p in places))


def load(mm, checkpoint: str, device: str) -> AceStep1:
    """The model from ComfyUI's checkpoint (cached by the model manager): the DiT (the bulk of the file) in the
    project's type for the device (bf16 on CUDA, as ComfyUI runs ACE-Step; float32 on the CPU), the sound VAE and
    UMT5 (small) in float32."""
    from tokenizers import Tokenizer

    from nodes.generate.detect import read_header
    from nodes.generate.model_manager import dtype_of, resolve_model_path
    from nodes.generate.weights import load_weights
    ckpt = resolve_model_path(checkpoint, "checkpoints", "ACE-Step v1 checkpoint")
    if GENRE not in read_header(ckpt).shapes:      # a wrong file is named as such before its tokenizer is looked for
        raise NodeError(not_v1(ckpt.name))
    vocab = lyrics_vocab(ckpt)

    _, dtype = dtype_of("auto", "ace_step", device)

    def build():
        state = load_weights(ckpt)          # the file's own types: each part is cast once, to its own
        dit, vae, encoder = parts(state, ckpt.name, dtype)
        tok = spiece(state, ckpt.name)
        try:
            lyrics = Tokenizer.from_file(str(vocab))
        except Exception as exc:        # tokenizers' own error names neither the file nor the fix
            raise NodeError(f"{vocab} is not a tokenizer file ({exc}): give ComfyUI's ace_lyrics_tokenizer/"
                            "vocab.json") from None
        return AceStep1(dit.to(device), vae.to(device), encoder.to(device), tok, lyrics, device)
    return mm.cached(("ace_step1", str(ckpt), device), build, files=[ckpt, vocab])


# -- the lyrics (comfy/text_encoders/ace.py VoiceBpeTokenizer, ace_text_cleaners.py) ---------------------------------
START, LINE = 261, 2                  # the lyrics' start token and each line's end
STRUCTURE = re.compile(r"\[.*?\]")     # a [verse] mark: read as English
LANGUAGES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
             "pl": "Polish", "tr": "Turkish", "ru": "Russian", "cs": "Czech", "nl": "Dutch", "ar": "Arabic",
             "zh": "Chinese", "ja": "Japanese", "hu": "Hungarian", "ko": "Korean", "hi": "Hindi"}
SCRIPTS = ((r"[\u3040-\u30ff]", "Japanese"), (r"[\u4e00-\u9fff]", "Chinese"), (r"[\uac00-\ud7af]", "Korean"),
           (r"[\u0400-\u04ff]", "Russian"), (r"[\u0600-\u06ff]", "Arabic"), (r"[\u0900-\u097f]", "Hindi"))
_ABBREVIATIONS = [(re.compile(r"\b%s\." % a, re.IGNORECASE), b) for a, b in (
    ("mrs", "misess"), ("mr", "mister"), ("dr", "doctor"), ("st", "saint"), ("co", "company"), ("jr", "junior"),
    ("maj", "major"), ("gen", "general"), ("drs", "doctors"), ("rev", "reverend"), ("lt", "lieutenant"),
    ("hon", "honorable"), ("sgt", "sergeant"), ("capt", "captain"), ("esq", "esquire"), ("ltd", "limited"),
    ("col", "colonel"), ("ft", "fort"))]
_SYMBOLS = (("&", " and "), ("@", " at "), ("%", " percent "), ("#", " hash "), ("$", " dollar "), ("£", " pound "),
            ("°", " degree "))
_ONES = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _int_words(n: int) -> str:
    """ComfyUI's _int_to_text ("" for 0)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + (" " + _ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return _ONES[n // 100] + " hundred" + (" " + _int_words(n % 100) if n % 100 else "")
    for size, word in ((1000, "thousand"), (10 ** 6, "million")):
        if n < size * 1000:
            return _int_words(n // size) + f" {word}" + (" " + _int_words(n % size) if n % size else "")
    return _int_words(n // 10 ** 9) + " billion" + (" " + _int_words(n % 10 ** 9) if n % 10 ** 9 else "")


def _decimal_words(amount: str) -> str:
    """ComfyUI's number_to_text of a float: the whole part's words ("" for 0), " point ", then each digit."""
    num = float(amount.replace(",", "."))
    return _int_words(int(num)) + " point " + " ".join(_DIGITS[int(d)] for d in str(num).split(".")[1])


def _number_words(text: str) -> str:
    """ComfyUI's number expansion for English: thousands' commas dropped, decimals read digit by digit, ordinals as
    their cardinal (its ordinal flag is unused), then whole numbers; 0 is "zero". Currency amounts are left as they
    are: ComfyUI's expansion of them fails on a missing num2words and is skipped."""
    def words(n):
        return "zero" if n == 0 else _int_words(n)
    text = re.sub(r"\b\d{1,3}(,\d{3})*(\.\d+)?\b", lambda m: m.group(0).replace(",", ""), text)
    text = re.sub(r"([0-9]+[.,][0-9]+)", lambda m: _decimal_words(m.group(1)), text)
    text = re.sub(r"([0-9]+)(st|nd|rd|th)", lambda m: words(int(m.group(1))), text)
    return re.sub(r"[0-9]+", lambda m: words(int(m.group(0))), text)


def clean(text: str) -> str:
    """ComfyUI's multilingual_cleaners for English: quotes dropped, lower case, numbers, abbreviations and symbols
    spelt out, runs of spaces made one."""
    text = _number_words(text.replace('"', "").lower())
    for regex, word in _ABBREVIATIONS:
        text = regex.sub(word, text)
    for symbol, word in _SYMBOLS:
        text = text.replace(symbol, word).replace("  ", " ")
    return re.sub(r"\s+", " ", text.strip())


def clean_other(text: str, lang: str) -> str:
    """ComfyUI's multilingual_cleaners for another language: only quotes dropped (Turkish's dotted capitals made
    small first), lower case and runs of spaces made one; its number, abbreviation and symbol tables are
    English-only, and their lookups fail and are skipped."""
    text = text.replace('"', "")
    if lang == "tr":
        text = text.replace("İ", "i").replace("Ö", "ö").replace("Ü", "ü")
    return re.sub(r"\s+", " ", text.lower())


def lyric_ids(tokenizer, lyrics: str) -> list:
    """The lyrics' VoiceBPE ids as ComfyUI's LyricsTokenizer gives them: the start token, then for each piece the
    weight parser cuts (parentheses are prompt weights there, so "(ooh)" is a piece of its own) each line's ids (its
    text cleaned, its language's mark before it, spaces written [SPACE]) and a line end; an empty line a line end
    alone. A line's language is English, or the one its [xx] mark names (romanised, as ComfyUI's note asks: it
    converts no script); a line in another script is refused by name."""
    from nodes.generate.prompts import comfy_parts
    ids = [START]
    for piece, _ in comfy_parts(lyrics):
        if piece:
            ids += _piece_ids(tokenizer, piece)
            _within(len(ids), "lyrics", lyrics)
    return ids


def _within(count: int, what: str, text: str) -> None:
    """Refuse `what` (lyrics or tags) once its tokens pass MAX_TOKENS, as they are read."""
    if count > MAX_TOKENS:
        raise NodeError(f"generate.ace_step1: the {what} make more than {MAX_TOKENS:,} tokens ({len(text):,} "
                        f"characters, {text[:40]!r}...), and the model attends to all of them at once: shorten them")


def _piece_ids(tokenizer, piece: str) -> list:
    ids = []
    for line in piece.split("\n"):
        line = line.strip()
        if not line:
            ids.append(LINE)
            continue
        lang = line[1:3].lower() if line.startswith("[") and line[3:4] == "]" else ""
        lang, line = (lang, line[4:]) if lang in LANGUAGES else ("en", line)
        for pattern, language in SCRIPTS:
            if re.search(pattern, line):
                raise NodeError(f"the lyrics line {line[:30]!r} is written in {language} script: ACE-Step v1 reads "
                                "lyrics in Latin letters; romanise it and mark the line with its language, e.g. "
                                "[zh]wo3 ai4 ni3 (as ComfyUI's template note asks)")
        if STRUCTURE.match(line) or lang == "en":
            text = "[en]" + clean(line)
        else:
            text = f"[{'zh-cn' if lang == 'zh' else lang}]" + clean_other(line, lang)
        ids += tokenizer.encode(text.replace(" ", "[SPACE]")).ids + [LINE]
    return ids


@torch.no_grad()
def text_states(model: AceStep1, tags: str) -> torch.Tensor:
    """UMT5's last hidden states of the tags [1, N, 768] as ComfyUI's UMT5 reads them: each part its prompt-weight
    parser cuts tokenized on its own (brackets and weights dropped), then </s>; a token weighted w != 1 moved w times
    as far from the empty prompt's state at its place (</s>, then padding the encoder does not read), as sd1_clip's
    encode_token_weights does."""
    from nodes.generate.prompts import comfy_parts
    ids, weights = [], []
    for part, w in comfy_parts(tags):
        got = model.tokenizer.encode(part)
        ids += got
        weights += [w] * len(got)
        _within(len(ids), "tags", tags)
    eos = model.tokenizer.eos_id()
    ids, weights = ids + [eos], weights + [1.0]
    encode = model.text_encoder
    states = encode(input_ids=torch.tensor([ids], device=model.device)).last_hidden_state.float()
    if all(w == 1.0 for w in weights):
        return states
    empty = torch.zeros(1, len(ids), dtype=torch.long, device=model.device)
    empty[0, 0] = eos
    read = (torch.arange(len(ids), device=model.device) == 0).long()[None]      # the empty prompt's </s> alone
    bare = encode(input_ids=empty, attention_mask=read).last_hidden_state.float()
    w = torch.tensor(weights, device=states.device)[None, :, None]
    return torch.where(w != 1.0, (states - bare) * w + bare, states)


# -- sampling --------------------------------------------------------------------------------------------------------
def tonemap_reinhard(latent: torch.Tensor, multiplier: float) -> torch.Tensor:
    """LatentOperationTonemapReinhard: each column's vector length (over channels) squashed by Reinhard's
    l / (1 + l), against a ceiling of (mean + 5 std of the lengths) x multiplier."""
    size = torch.linalg.vector_norm(latent, dim=1)[:, None] + 1e-10
    unit = latent / size
    dims = list(range(1, size.ndim))
    top = (size.std(dim=dims, keepdim=True) * 5 + size.mean(dim=dims, keepdim=True)) * multiplier
    size = size / top
    return unit * (size / (size + 1.0) * top)


def sigmas(steps: int, scheduler: str, shift: float) -> torch.Tensor:
    """`steps` levels from ModelSamplingSD3's table (shift, 1000 levels), then 0."""
    from nodes.generate.samplers import SigmaTable, beta_sigmas, sgm_uniform_sigmas, simple_sigmas
    pick = {"simple": simple_sigmas, "sgm_uniform": sgm_uniform_sigmas, "beta": beta_sigmas}.get(scheduler)
    if pick is None:
        raise NodeError(f"scheduler={scheduler!r}: ACE-Step takes {', '.join(SCHEDULERS)}")
    return pick(SigmaTable.flow(shift), steps)


@dataclass(frozen=True)
class Song:
    """TextEncodeAceStepAudio's widgets."""
    tags: str
    lyrics: str = ""
    lyrics_strength: float = 1.0


@torch.no_grad()
def generate(model: AceStep1, song: Song, seconds: float, steps: int, cfg: float, sampler: str, scheduler: str,
             shift: float, seed: int, tonemap: float = 0.0, source: Optional[torch.Tensor] = None,
             denoise: float = 1.0, progress=None) -> torch.Tensor:
    """The song [2, samples] at 44.1 kHz, as loud as VAEDecodeAudio leaves it. `source`: VAEEncodeAudio's latent of
    a song to edit (its length then the song's, `seconds` unread), sampled from `denoise`; `tonemap` > 0: the
    guidance's Reinhard tonemap multiplier (LatentApplyOperationCFG)."""
    from nodes.generate.samplers import comfy_noise_sampler, ksampler_schedule, latent_sampler
    from nodes.generate.stable_audio import loudness
    sample = latent_sampler(sampler)
    dit = model.dit
    if source is None:
        cols = latent_columns(seconds)
        if cols < 1:
            raise NodeError(f"seconds={seconds:g} gives no sound: give at least 0.1 s (ComfyUI's minimum is 1)")
        source = torch.zeros(1, dit.channels, dit.height, cols)
    text = text_states(model, song.tags)
    ids = torch.tensor([lyric_ids(model.lyrics, song.lyrics)], device=model.device)
    vocab = dit.lyric_embs.num_embeddings
    if int(ids.max()) >= vocab:
        raise NodeError(f"the lyric tokenizer gives id {int(ids.max())}, past the {vocab} the model knows: its "
                        "vocab.json is not ComfyUI's ace_lyrics_tokenizer one")
    guided = not math.isclose(cfg, 1.0)        # ComfyUI's sampling_function skips the negative pass at cfg 1
    work = next(dit.parameters()).dtype
    text = text.to(work)
    context = dit.encode(text, ids, song.lyrics_strength)
    if guided:      # ConditioningZeroOut: the prompt's states and the lyric ids zeroed
        context = torch.cat([context, dit.encode(torch.zeros_like(text), torch.zeros_like(ids),
                                                 song.lyrics_strength)])

    def denoised(x, sigma):
        s = float(sigma)
        xs = torch.cat([x] * len(context))
        v = dit(xs.to(work), torch.full((len(context),), s * 1000.0, device=x.device), context).float()
        out = xs - s * v
        if not guided:      # LatentApplyOperationCFG's hook still runs: the missing negative is zeros there
            return tonemap_reinhard(out, tonemap) if tonemap > 0 else out
        cond, uncond = out.chunk(2)
        if tonemap > 0:
            cond = tonemap_reinhard(cond - uncond, tonemap) + uncond
        return uncond + cfg * (cond - uncond)

    gen = torch.Generator("cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    noise = torch.randn(source.shape, generator=gen)        # KSampler's noise
    # KSampler's denoise: the last steps + 1 levels of a schedule of int(steps / denoise) steps
    total = steps if denoise >= 1.0 else max(int(steps / denoise), steps)
    levels = ksampler_schedule(lambda n: sigmas(n, scheduler, shift), total, sampler)[-(steps + 1):]
    start = float(levels[0])
    x = (noise * start + source.cpu().float() * (1.0 - start)).to(model.device)
    kw = {"noise_sampler": comfy_noise_sampler(noise.shape, seed, model.device)}
    callback = (lambda i, n, _: progress(i + 1, n)) if progress else None
    latent = sample(denoised, x, levels, callback, flow=True, **kw)
    return loudness(model.vae.decode(latent).cpu())


def encode_song(model: AceStep1, audio) -> torch.Tensor:
    """VAEEncodeAudio: the song read as stereo at 44.1 kHz (a mono one on both sides), its latent [1, 8, 16, T]."""
    import numpy as np

    from nodes.generate.ltx2_sound import stereo
    wave = stereo(audio, RATE)
    if wave.shape[1] < 1:
        raise NodeError("the song to edit holds no sound: give io.load_audio a file with sound")
    return model.vae.encode(torch.from_numpy(np.ascontiguousarray(wave)).to(model.device)).cpu()
