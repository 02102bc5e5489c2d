"""Prompts longer than CLIP's 77 tokens, read in 77-token windows whose hidden states are laid end to end, as ComfyUI
and A1111 read them (CLIP itself reads 77 positions; cutting there dropped the rest of the prompt unseen).

Each window is start token, up to 75 prompt tokens, end token, padding. Where a window breaks:
- weighting "comfy": ComfyUI's SDTokenizer.tokenize_with_weights. Each weighted part of the prompt is tokenized on its
  own; a part of fewer than 8 tokens that would cross the window's end goes whole to the next window (the window is
  closed and padded), a longer one is cut at the end.
- weighting "kinograph": A1111's rule. The prompt is tokenized whole (so a prompt that fits one window reads as it
  always did); a full window breaks after its last comma when that comma is at most 20 tokens before its 75th token
  and the next token is not a comma.
The conditioning's pooled embedding (SDXL) is the first window's, as in both."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

from nodes.generate.prompts import clean_and_weights, comfy_parts, token_weights

LENGTH = 77                 # CLIP's positions: start, 75 tokens, end
BODY = LENGTH - 2
LONG_WORD = 8               # SDTokenizer.max_word_length: parts this long may be cut between windows
COMMA_BACKTRACK = 20        # A1111's comma_padding_backtrack
PAD = -1                    # filled with each tokenizer's own pad id (CLIP-L pads with its end token, OpenCLIP-G with 0)

Window = List[Tuple[int, float]]


def _ends(tokenizer) -> Tuple[int, int]:
    empty = tokenizer("")["input_ids"]
    return empty[0], empty[1]


def _closed(tokenizer, body: Sequence[Tuple[int, float]]) -> Window:
    start, end = _ends(tokenizer)
    window = [(start, 1.0)] + list(body) + [(end, 1.0)]
    return window + [(PAD, 1.0)] * (LENGTH - len(window))


def comfy_windows(tokenizer, text: str) -> List[Window]:
    """(token id, weight) windows of a prompt as ComfyUI's SDTokenizer batches it."""
    groups = [[(t, w) for t in tokenizer(part, truncation=False)["input_ids"][1:-1]] for part, w in comfy_parts(text)]
    windows, body = [], []
    for group in groups:
        large = len(group) >= LONG_WORD
        while group:
            if len(body) + len(group) <= BODY:
                body += group
                break
            room = BODY - len(body)
            if large:
                body, group = body + group[:room], group[room:]
            windows.append(_closed(tokenizer, body))
            body = []
    return windows + [_closed(tokenizer, body)]


def kinograph_windows(tokenizer, text: str) -> List[Window]:
    """(token id, weight) windows of a prompt read by Kinograph's emphasis rule, broken by A1111's."""
    clean, spans = clean_and_weights(text)
    enc = tokenizer(clean, truncation=False, return_offsets_mapping=True, add_special_tokens=False)
    weights = token_weights([tuple(o) for o in enc["offset_mapping"]], spans)
    tokens = list(zip(enc["input_ids"], weights))
    comma = tokenizer(",", add_special_tokens=False)["input_ids"]
    windows = []
    while len(tokens) > BODY:
        # A1111 looks back only when the token after the full window is not a comma itself (that one is cut at
        # BODY), and takes a comma at most COMMA_BACKTRACK tokens before BODY (index BODY - 20 on).
        cut = BODY
        commas = [i for i, (t, _) in enumerate(tokens[:BODY]) if [t] == comma]
        if commas and [tokens[BODY][0]] != comma and BODY - commas[-1] <= COMMA_BACKTRACK:
            cut = commas[-1] + 1
        windows.append(_closed(tokenizer, tokens[:cut]))
        tokens = tokens[cut:]
    return windows + [_closed(tokenizer, tokens)]


def windows_for(tokenizer, text: str, weighting: str) -> List[Window]:
    return comfy_windows(tokenizer, text) if weighting == "comfy" else kinograph_windows(tokenizer, text)


def ids(windows: List[Window], pad: int) -> torch.Tensor:
    """[windows, 77] token ids, the padding as this tokenizer pads."""
    return torch.tensor([[pad if t == PAD else t for t, _ in w] for w in windows], dtype=torch.long)


def weights(windows: List[Window]) -> torch.Tensor:
    return torch.tensor([[w for _, w in win] for win in windows], dtype=torch.float32)


def empty_window(tokenizer) -> List[Window]:
    """ComfyUI's gen_empty_tokens: start, end, padding: the encoding weights are measured from."""
    return [_closed(tokenizer, [])]


def to_length(t: torch.Tensor, length: int) -> torch.Tensor:
    """[n, L, D] repeated along the tokens to `length` (a multiple of L), as ComfyUI's CONDCrossAttn.concat lays
    conditionings of different lengths side by side: attention over a prompt's tokens repeated is attention over the
    prompt, so the repeat changes nothing the model computes."""
    return t if t.shape[1] == length else t.repeat(1, length // t.shape[1], 1)


def common_length(tensors: Sequence[torch.Tensor]) -> int:
    import math
    return math.lcm(*(int(t.shape[1]) for t in tensors))


def same_length(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Conditionings [n, L_i, D] of prompts of different window counts (a long prompt, a short negative) as one
    batch, each repeated to their common length (to_length)."""
    length = common_length(tensors)
    return torch.cat([to_length(t, length) for t in tensors])
