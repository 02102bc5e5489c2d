"""Prompt syntax: emphasis `(word:1.2)`, and how keyframed prompts blend (the keyframes themselves,
`0: a caterpillar, 24: a butterfly`, are read by graph_engine.schedule.parse_text_keyframes).

Pure string work; the text encoders turn the weights into scaled token embeddings."""
from __future__ import annotations

import math
import re
from bisect import bisect_right
from typing import List, Tuple

from graph_engine import NodeError

UP, DOWN = 1.1, 1 / 1.1
_WEIGHT = re.compile(r":\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*$")
# Brackets nested deeper are refused: ComfyUI's parser recursed a level a bracket (3,000 were a RecursionError) and
# parse_emphasis re-weighed every run inside at each closing one (20,000 took 22 s); 1.1^100 is already 13,780.
MAX_DEPTH = 100


def _too_deep(text: str) -> NodeError:
    return NodeError(f"the prompt {text[:60]!r}... nests brackets more than {MAX_DEPTH} deep: no weighting needs that; "
                     "write \\( or \\) for a literal bracket")


def _checked(parts: List[Tuple[str, float]]) -> List[Tuple[str, float]]:
    """The parts, refused where a weight is no finite number ((x:1e400), a 400-digit weight, 8,000 nested brackets):
    the conditioning came out infinite or NaN without a word."""
    for t, w in parts:
        if not math.isfinite(w):
            raise NodeError(f"the prompt weighs {t[:40]!r} by {w}, which is no weight: give a number such as 1.2 "
                            "(weights multiply in nested brackets)")
    return parts


def parse_emphasis(text: str) -> List[Tuple[str, float]]:
    """Split a prompt into (text, weight) runs.

    `(words)` multiplies by 1.1, `[words]` by 1/1.1, `(words:1.3)` by 1.3; groups nest and multiply.
    `\\(` and `\\)` are literal brackets. Unbalanced brackets are a clear error."""
    runs: List[Tuple[str, float]] = []
    stack: List[Tuple[str, int]] = []   # (bracket, index in runs where the group starts)
    buf = []

    def flush():
        if buf:
            runs.append(("".join(buf), 1.0))
            buf.clear()

    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "()[]\\":
            buf.append(text[i + 1])
            i += 2
            continue
        if c in "([":
            flush()
            stack.append((c, len(runs)))
            if len(stack) > MAX_DEPTH:
                raise _too_deep(text)
        elif c in ")]":
            if not stack or stack[-1][0] != ("(" if c == ")" else "["):
                raise NodeError(f"unbalanced {c!r} at character {i + 1} of the prompt {text!r}; "
                                "write \\( or \\) for a literal bracket")
            flush()
            kind, start = stack.pop()
            factor = UP if kind == "(" else DOWN
            if kind == "(" and start < len(runs):
                last_text, last_w = runs[-1]
                m = _WEIGHT.search(last_text)
                if m:
                    factor = float(m.group(1))
                    runs[-1] = (last_text[:m.start()], last_w)
            runs[start:] = [(t, w * factor) for t, w in runs[start:]]
        else:
            buf.append(c)
        i += 1
    if stack:
        raise NodeError(f"unclosed {stack[-1][0]!r} in the prompt {text!r}")
    flush()
    merged: List[Tuple[str, float]] = []
    for t, w in runs:
        if not t:
            continue
        if merged and merged[-1][1] == w:
            merged[-1] = (merged[-1][0] + t, w)
        else:
            merged.append((t, w))
    return _checked(merged)


def clean_and_weights(text: str) -> Tuple[str, List[Tuple[int, int, float]]]:
    """The prompt without emphasis markup, and (start, end, weight) character spans with weight != 1."""
    out, spans, pos = [], [], 0
    for t, w in parse_emphasis(text):
        out.append(t)
        if w != 1.0:
            spans.append((pos, pos + len(t), w))
        pos += len(t)
    return "".join(out), spans


def comfy_parts(text: str) -> List[Tuple[str, float]]:
    """(text, weight) parts of a prompt as ComfyUI's tokenizers split it (sd1_clip's token_weights), for a family that
    tokenizes each part on its own (Anima): only round brackets weigh, an inner `(x:w)` sets w rather than multiplying
    (`((x:1.5))` is 1.5), `[x]` is text, `\\(` and `\\)` are brackets, unbalanced ones are let be, and parts are kept
    apart even where their weights match (`(x:1.0)` is a part of its own)."""
    def groups(s: str) -> List[str]:
        # top-level groups; a stray ")" takes the depth below 0 and holds the rest together, as ComfyUI's does
        out, cur, depth = [], "", 0
        for c in s:
            if c == "(" and depth == 0 and cur:
                out.append(cur)
                cur = ""
            depth += (c == "(") - (c == ")")
            cur += c
            if c == ")" and depth == 0:
                out.append(cur)
                cur = ""
        return out + [cur] if cur else out

    def weigh(s: str, weight: float) -> List[Tuple[str, float]]:
        out = []
        for g in groups(s):
            if len(g) < 2 or g[0] != "(" or g[-1] != ")":
                out.append((g, weight))
                continue
            inner, w = g[1:-1], weight * UP
            colon = inner.rfind(":")
            if colon > 0:
                try:
                    inner, w = inner[:colon], float(inner[colon + 1:])
                except ValueError:
                    pass
            out += weigh(inner, w)
        return out
    escaped = text.replace("\\)", "\0\1").replace("\\(", "\0\2")
    depth = deepest = 0
    for c in escaped:
        depth = max(depth + (c == "(") - (c == ")"), 0)
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise _too_deep(text)
    return _checked([(t.replace("\0\1", ")").replace("\0\2", "("), w) for t, w in weigh(escaped, 1.0)])


def comfy_clean_and_weights(text: str) -> Tuple[str, List[Tuple[int, int, float]]]:
    """clean_and_weights by ComfyUI's rules (comfy_parts). ComfyUI tokenizes each part's words on their own, so a part
    that meets the next without a space between (`a(red)cat`) is three words there, not one: the parts are joined
    with a space where none stands, which gives a word-wise tokenizer (CLIP's BPE, T5's sentencepiece) their tokens."""
    out, spans, pos = [], [], 0
    for t, w in comfy_parts(text):
        if out and t and not out[-1][-1:].isspace() and not t[0].isspace():
            out.append(" ")
            pos += 1
        out.append(t)
        if w != 1.0 and t.strip():
            spans.append((pos, pos + len(t), w))
        pos += len(t)
    return "".join(out), spans


def literal(text: str) -> str:
    """The prompt as ComfyUI reads it with weights off (disable_weights: MiniMax H3): brackets as written, save the
    escaped \\( and \\) it still turns into plain ones."""
    return text.replace("\\)", ")").replace("\\(", "(")


def token_weights(offsets, spans) -> List[float]:
    """Weight of each token from its character offsets (None for special/padding tokens -> 1.0). `spans` are in
    order and apart, as clean_and_weights gives them: each token's is found by bisection (a scan of all spans for
    every token took hours for a megabyte of weighted words)."""
    starts = [a for a, _, _ in spans]
    weights = []
    for off in offsets:
        w = 1.0
        if off is not None and off[1] > off[0]:
            i = bisect_right(starts, off[0]) - 1
            if i >= 0 and off[0] < spans[i][1]:
                w = spans[i][2]
        weights.append(w)
    return weights


def interpolation_weights(keyframes, frames):
    """[len(frames), len(keyframes)] linear interpolation weights between keyframes (held at the ends)."""
    import numpy as np
    keys = np.asarray(keyframes, dtype=np.float64)
    f = np.asarray(frames, dtype=np.float64)
    w = np.zeros((len(f), len(keys)))
    if len(keys) == 1:
        w[:, 0] = 1.0
        return w
    f = np.clip(f, keys[0], keys[-1])
    j = np.clip(np.searchsorted(keys, f, side="right") - 1, 0, len(keys) - 2)
    t = (f - keys[j]) / (keys[j + 1] - keys[j])
    w[np.arange(len(f)), j] = 1 - t
    w[np.arange(len(f)), j + 1] = t
    return w
