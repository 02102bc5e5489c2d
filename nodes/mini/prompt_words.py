"""Which words a kinograph-mini prompt may hold, without torch: the tokenizer refuses a prompt with this check, and
encode.text's preflight makes the same one at validation, so a word the model does not know stops a run before its
model loads, not after (README: 'an unknown word is an error that lists what it knows')."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from graph_engine.shipped import resource
from nodes.mini.shapes_world import normalise_words

PAD, BOS = "<pad>", "<bos>"
MAX_TOKENS = 32


def prompt_problem(prompt: str, vocabulary: Sequence[str], max_tokens: int = MAX_TOKENS) -> Optional[str]:
    """Why kinograph-mini cannot read `prompt` (a word it does not know, too many words), or None."""
    known = set(vocabulary) - {PAD, BOS}
    words = normalise_words(prompt)
    unknown = sorted({w for w in words if w not in known})
    if unknown:
        return (f"kinograph-mini does not know the word(s) {', '.join(map(repr, unknown))} in the prompt {prompt!r}. "
                f"It knows only: {', '.join(w for w in vocabulary if w not in (PAD, BOS))}. "
                f"Example: 'a red circle moving left on a blue background'.")
    if len(words) + 1 > max_tokens:
        return (f"the prompt {prompt!r} has {len(words)} words; kinograph-mini reads at most {max_tokens - 1}. "
                "Shorten it.")
    return None


def model_vocabulary(folder) -> tuple[list[str], int]:
    """The vocabulary and token limit a kinograph-mini folder's text encoder was trained with (its config.json)."""
    config = json.loads((Path(folder) / "text_encoder" / "config.json").read_text())
    return list(config["vocabulary"]), int(config.get("max_tokens", MAX_TOKENS))


def bundled_vocabulary() -> list[str]:
    return model_vocabulary(resource("models", "kinograph-mini"))[0]


def _model_folder(path: Optional[str]) -> Path:
    """The folder load.mini loads: a name is found in the model folders as the loader finds it, where the workflow's
    folder alone was looked in, so a model named from diffusion_models/ went unchecked."""
    if not path:
        return resource("models", "kinograph-mini")
    from nodes.generate.model_manager import resolve_family_path
    return resolve_family_path(path, "mini", "kinograph-mini model")


def encode_text_preflight(params: dict, sources: dict) -> list[tuple[str, str]]:
    """encode.text's check at validation: with a text encoder from load.mini, each prompt as encode.text reads it
    (its schedule's keyframes, emphasis taken off by the chosen weighting) holds only the model's words. Other
    encoders read any text; a prompt set by a link is known only as the workflow runs."""
    source = sources.get("text_encoder")
    if source is None or source[0] != "load.mini":
        return []
    from graph_engine.schedule import is_keyframed_text, parse_text_keyframes
    from nodes.generate.prompts import clean_and_weights, comfy_clean_and_weights
    vocabulary, max_tokens = model_vocabulary(_model_folder(source[1].get("path")))
    read = comfy_clean_and_weights if params.get("weighting") == "comfy" else clean_and_weights
    found = []
    for param in ("text", "negative"):
        prompt = params.get(param)
        if not isinstance(prompt, str):
            continue
        keys = parse_text_keyframes(prompt) if is_keyframed_text(prompt) else [(0, prompt)]
        problem = next(filter(None, (prompt_problem(read(text)[0], vocabulary, max_tokens) for _, text in keys)), None)
        if problem:
            found.append((param, problem))
    return found
