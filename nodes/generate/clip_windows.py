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

from graph_engine import NodeError
from nodes.generate.prompts import clean_and_weights, comfy_parts, token_weights

LENGTH = 77                 # CLIP's positions: start, 75 tokens, end
BODY = LENGTH - 2
LONG_WORD = 8               # SDTokenizer.max_word_length: parts this long may be cut between windows
COMMA_BACKTRACK = 20        # A1111's comma_padding_backtrack
PAD = -1                    # filled with each tokenizer's own pad id (CLIP-L pads with its end token, OpenCLIP-G with 0)
MAX_WINDOWS = 64            # windows a prompt may read: 4,800 tokens
MAX_REPEAT = 8              # conditionings laid side by side are repeated to at most this times the longest

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
    windows, at = [], 0         # the windows walk along the tokens (cutting the list each time was quadratic)
    while len(tokens) - at > BODY:
        # A1111 looks back only when the token after the full window is not a comma itself (that one is cut at
        # BODY), and takes a comma at most COMMA_BACKTRACK tokens before BODY (index BODY - 20 on).
        cut = BODY
        commas = [i for i, (t, _) in enumerate(tokens[at:at + BODY]) if [t] == comma]
        if commas and [tokens[at + BODY][0]] != comma and BODY - commas[-1] <= COMMA_BACKTRACK:
            cut = commas[-1] + 1
        windows.append(_closed(tokenizer, tokens[at:at + cut]))
        at += cut
    return windows + [_closed(tokenizer, tokens[at:])]


def windows_for(tokenizer, text: str, weighting: str) -> List[Window]:
    """The prompt's windows, at most MAX_WINDOWS: a megabyte of prompt made 8,000, every one encoded at once (CLIP's
    hidden states of each layer, gigabytes) and attended to at every sampling step."""
    windows = comfy_windows(tokenizer, text) if weighting == "comfy" else kinograph_windows(tokenizer, text)
    if len(windows) > MAX_WINDOWS:
        raise NodeError(f"the prompt ({len(text):,} characters, {text[:40]!r}...) reads {len(windows):,} windows of "
                        f"CLIP's {LENGTH} tokens; Kinograph reads at most {MAX_WINDOWS} ({MAX_WINDOWS * BODY:,} "
                        "tokens, a few pages of text): shorten the prompt")
    return windows


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
    """The length conditionings of these lengths are repeated to (to_length): their least common multiple, refused
    past MAX_REPEAT times the longest. Prompts of 2, 3, 5, ..., 19 windows made 9.7 million windows each, terabytes;
    ComfyUI concatenates only up to 4 times the shorter (CONDCrossAttn.can_concat) and samples the rest apart."""
    import math
    lengths = sorted({int(t.shape[1]) for t in tensors})
    length = math.lcm(*lengths)
    if length > MAX_REPEAT * lengths[-1]:
        counts = [str(n // LENGTH) for n in lengths]
        said = f"{', '.join(counts[:-1])} and {counts[-1]}"
        raise NodeError(f"the prompts read {said} windows of CLIP's {LENGTH} tokens; used together each is repeated "
                        f"to their least common multiple, {length // LENGTH:,} windows, {length // lengths[-1]:,} times "
                        f"the longest, which takes as many times the memory and time at every step (at most "
                        f"{MAX_REPEAT}): give the prompts window counts that divide one another (a window holds "
                        f"{BODY} tokens: lengthen a shorter prompt or shorten a longer one)")
    return length


def same_length(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Conditionings [n, L_i, D] of prompts of different window counts (a long prompt, a short negative) as one
    batch, each repeated to their common length (to_length)."""
    length = common_length(tensors)
    return torch.cat([to_length(t, length) for t in tensors])
