"""Lone UTF-16 surrogates in a ComfyUI file's texts, made readable.

JSON may write half of a UTF-16 pair ("\\ud800") that no text holds, and Python's json reads it as such. Kept, a
prompt with one was written into the imported YAML as an escape ("\\uD800") that YAML refuses to read back (the
import said the new file was not valid YAML, with advice on Windows paths), and a tokenizer refuses such a text at
run time. Each is the replacement character U+FFFD, as a UTF-8 decoder shows bytes it cannot read."""
from __future__ import annotations

import re
from typing import Any, Tuple

_LONE = re.compile("[\ud800-\udfff]")     # json.loads joins a proper pair into one character: what is left is lone


def without_lone_surrogates(data: Any) -> Tuple[Any, int]:
    """(`data` with every lone surrogate in its texts and keys made U+FFFD, how many were), walked without
    recursion (a file may nest as deep as json reads)."""
    found = 0

    def clean(text: str) -> str:
        nonlocal found
        fixed, n = _LONE.subn("\ufffd", text)
        found += n
        return fixed

    root = [data]
    todo = [(root, 0)]
    while todo:
        holder, key = todo.pop()
        value = holder[key]
        if isinstance(value, str):
            holder[key] = clean(value)
        elif isinstance(value, list):
            todo += [(value, i) for i in range(len(value))]
        elif isinstance(value, dict):
            if any(isinstance(k, str) and _LONE.search(k) for k in value):
                value = holder[key] = {clean(k) if isinstance(k, str) else k: v for k, v in value.items()}
            todo += [(value, k) for k in value]
    return root[0], found
