"""ComfyUI's value nodes' semantics, shared by the nodes that run them and by the importer that computes them where
every input is a constant in the file: ComfyNumberConvert's reading of a number and PreviewAny's text of a value."""
from __future__ import annotations

import json
import math


def number(value):
    """ComfyNumberConvert: (float, int) of an int, float, bool or the text of a number."""
    if isinstance(value, bool) or isinstance(value, int):
        return float(value), int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return value, int(value)
    if not isinstance(value, str):
        raise TypeError(f"a {type(value).__name__} is not a number, a switch or a text")
    text = value.strip()
    try:
        f = float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a number ComfyUI's Number Convert reads") from None
    if not math.isfinite(f):
        raise ValueError(f"{value!r} is not a finite number")
    try:
        return f, int(text)
    except ValueError:
        return f, int(f)


def shown(value) -> str:
    """PreviewAny's text of a value: text as it is, a number or switch as str() writes it (7, 0.5, True), anything
    else as JSON where it is plain data, else its str()."""
    if isinstance(value, str):
        return value
    if value is None:
        return "None"
    if isinstance(value, (int, float, bool)):
        return str(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
