"""Textual-inversion embeddings in prompts: ComfyUI's `embedding:EasyNegative` (also weighted,
`(embedding:EasyNegative:1.2)`, and with the file's extension), read from the embeddings/ model folders.

Each file's vectors become new tokens of the loaded CLIP tokenizer and rows of its text encoder's token table
(added once per pipeline; the original vocabulary is untouched), and the prompt names those tokens, so the text
encoder sees the vectors where the name stood, as in ComfyUI and A1111. Files: A1111's .pt/.bin
(`string_to_param`), its .safetensors (`emb_params`), SDXL's pair (`clip_l`, `clip_g`: SDXL reads both, one per
encoder; the CLIP-L vectors are the ones SD 1.5's encoder takes) and diffusers' learned_embeds ({token: vector})."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Callable

from graph_engine import NodeError

# As ComfyUI reads it: `embedding:` opening the prompt, a word (after a space or a line break) or a bracket
# group; the name runs to whitespace, a comma, a weight's colon or a bracket. ("cat,embedding:x" is text there.)
EMBEDDING = re.compile(r"(?<![^\s(\[])embedding:([^\s,:()\[\]]+)")


def has_embeddings(prompt: str) -> bool:
    return bool(EMBEDDING.search(prompt))


def embedding_files(prompt: str) -> list:
    """The files of the embeddings a prompt names that the model folders hold (for the cache key: encode.text's
    text and negative `names_files`); a missing one is left to the encoding to name."""
    from nodes.common.models_dirs import find_model
    found = (find_model(name, "embeddings", required=False) for name in EMBEDDING.findall(prompt))
    return [f for f in found if f is not None]


def vectors(path: Path, key: str = "clip_l"):
    """The [n, width] vectors of an embedding file."""
    import torch
    from nodes.generate.weights import read_raw
    data = read_raw(path)
    if any(k.startswith("string_to_param.") for k in data):
        data = {k: v for k, v in data.items() if k.startswith("string_to_param.")}
    elif "emb_params" in data:
        data = {"emb_params": data["emb_params"]}
    elif key in data:
        data = {key: data[key]}
    tensors = [v for v in data.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not tensors:
        raise NodeError(f"{path} holds no embedding vectors (no string_to_param, emb_params or {key}): it is not "
                        "a textual-inversion embedding")
    vec = tensors[0].detach().float()
    return vec.reshape(1, -1) if vec.dim() == 1 else vec.reshape(-1, vec.shape[-1])


def insert_embeddings(pipe, prompt: str, clip: bool, log: Callable[[str], None] = lambda m: None) -> str:
    """The prompt with each `embedding:NAME` replaced by the tokens of that file's vectors (added to the pipeline's
    tokenizer and text encoder the first time). `clip`: the family encodes text with CLIP (SD 1.5, AnimateDiff)."""
    if not has_embeddings(prompt):
        return prompt
    if not clip:
        encoder = type(getattr(pipe, "text_encoder", None)).__name__
        raise NodeError(f"textual-inversion embeddings ({EMBEDDING.search(prompt).group(0)} in the prompt) are "
                        f"trained for CLIP text encoders (SD 1.5, AnimateDiff); this model's is {encoder}: remove "
                        "them from the prompt")

    def replace(m: re.Match) -> str:
        return " ".join(_tokens(pipe, m.group(1), log))
    return EMBEDDING.sub(replace, prompt)


def _tokens(pipe, name: str, log) -> list:
    import torch
    from nodes.generate.model_manager import resolve_model_path
    path = resolve_model_path(name, "embeddings", f"embedding {name!r} (embedding:{name} in the prompt)")
    added = getattr(pipe, "_kinograph_embeddings", None)
    if added is None:
        added = pipe._kinograph_embeddings = {}
    # A file replaced under the same name (retrained) gets tokens of its own.
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if key in added:
        return added[key]
    # SDXL reads the file's clip_l vectors with CLIP-L and its clip_g vectors with OpenCLIP-G, each tokenizer
    # naming them with the same new tokens.
    encoders = [(pipe.text_encoder, pipe.tokenizer, vectors(path, "clip_l"))] if pipe.text_encoder is not None else []
    if getattr(pipe, "text_encoder_2", None) is not None:       # the SDXL refiner: OpenCLIP-G alone
        encoders.append((pipe.text_encoder_2, pipe.tokenizer_2, vectors(path, "clip_g")))
    vec = encoders[0][2]
    for encoder, _, v in encoders:
        table = encoder.get_input_embeddings()
        if v.shape[1] != table.weight.shape[1] or v.shape[0] != vec.shape[0]:
            raise NodeError(f"{path.name} holds {v.shape[1]}-wide vectors and this text encoder takes "
                            f"{table.weight.shape[1]}-wide ones: the embedding was trained for another model "
                            "(768 is SD 1.x, 1024 SD 2.x, SDXL's files hold clip_l and clip_g); use one made for "
                            "this model")
    # Lower-case ASCII names the CLIP tokenizer keeps whole; the file's hash keeps two files of one name apart.
    tag = hashlib.sha1(key.encode()).hexdigest()[:10]
    tokens = [f"<kgemb{tag}n{i}>" for i in range(vec.shape[0])]
    for encoder, tokenizer, v in encoders:
        tokenizer.add_tokens(tokens)
        ids = tokenizer.convert_tokens_to_ids(tokens)
        table = encoder.get_input_embeddings()
        if max(ids) >= table.weight.shape[0]:
            encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            table = encoder.get_input_embeddings()
        with torch.no_grad():
            table.weight[ids] = v.to(table.weight.device, table.weight.dtype)
    added[key] = tokens
    log(f"embedding {name}: {vec.shape[0]} vector{'s' if vec.shape[0] != 1 else ''} from {path}")
    return tokens


def describe(path: Path) -> dict:
    """`kinograph info`'s row for a file in embeddings/, from its header: a textual inversion (named in a prompt as
    embedding:NAME) or a stored prompt (condition.load: Marigold v2's *_conditioning), else what detection makes of it.
    detect's rules know neither, so ComfyUI's embeddings/ folder was listed as 'unknown: no known key pattern', none
    of it loading."""
    from nodes.generate.detect import precision_of
    from nodes.generate.model_manager import describe_model
    from nodes.generate.weights import read_header
    try:
        header = read_header(path)
    except NodeError as exc:
        return {"family": "unreadable", "variant": "", "role": "", "precision": "", "loads": "no",
                "note": str(exc).splitlines()[0]}
    shapes = header.shapes
    row = {"precision": precision_of(header), "loads": "yes"}
    cond = shapes.get("conditioning")
    if cond is not None and len(cond) in (2, 3):
        return dict(row, family="conditioning", variant=f"{cond[-2]}x{cond[-1]}", role="conditioning",
                    note=f"condition.load: a stored prompt, {cond[-2]} tokens {cond[-1]} wide (Marigold v2's task "
                         "prompts are Qwen-Image's, 3584 wide)")
    stem = Path(path).stem
    if "clip_l" in shapes and "clip_g" in shapes:
        return dict(row, family="embedding", variant="sdxl", role="embedding",
                    note=f"embedding:{stem} in an SDXL prompt; its clip_l half in an SD 1.5 or AnimateDiff one")
    found = [s for k, s in shapes.items() if k.startswith("string_to_param.") or k == "emb_params"] or \
        (list(shapes.values()) if len(shapes) == 1 else [])
    if not found or len(found[0]) not in (1, 2) or found[0][-1] != 768:     # CLIP-L's width: SD 1.x's vectors
        return describe_model(path)
    return dict(row, family="embedding", variant="sd15", role="embedding",
                note=f"embedding:{stem} in an SD 1.5 or AnimateDiff prompt")
