"""Node reference text for `kinograph nodes` (plain or Markdown), from the declarations."""
from __future__ import annotations

from typing import List


def _param_line(p) -> str:
    bits = [p.type]
    if p.choices is not None:
        bits.append("one of " + "/".join(map(str, p.choices)))
    if p.min is not None or p.max is not None:
        bits.append(f"{'' if p.min is None else p.min}..{'' if p.max is None else p.max}")
    line = f"{p.name} ({', '.join(bits)}; default {p.default!r})"
    return line + (f": {p.help}" if p.help else "")


def nodes_text(specs: List, full: bool = False) -> str:
    """One line of summary per node, or (`full`) its whole help, then its sockets and parameters."""
    out = []
    for s in specs:
        out.append(f"{s.type}  [{s.category}]  {s.summary}")
        rest = s.help.strip().split("\n\n", 1)[1:]          # what follows the summary's paragraph
        if full and rest:
            out += [""] + ["    " + line if line else "" for line in rest[0].splitlines()]
        for p in s.inputs.values():
            out.append(f"    in  {p.name}: {p.type.name}{' (optional)' if p.optional else ''}"
                       + (f": {p.help}" if p.help else ""))
        for p in s.outputs.values():
            out.append(f"    out {p.name}: {p.type.name}")
        for p in s.params.values():
            out.append(f"    param {_param_line(p)}")
    return "\n".join(out)


def nodes_markdown(specs: List) -> str:
    out = ["# Kinograph nodes", ""]
    for s in specs:
        out += [f"## `{s.type}` — {s.title}", "", s.help, ""]
        if s.inputs:
            # What an input is for (a start image, a mask...) was in the editor's tooltip only.
            out.append("Inputs: " + ", ".join(f"`{p.name}` ({p.type.name}{', optional' if p.optional else ''}"
                                              + (f": {p.help}" if p.help else "") + ")"
                                              for p in s.inputs.values()))
        if s.outputs:
            out.append("Outputs: " + ", ".join(f"`{p.name}` ({p.type.name})" for p in s.outputs.values()))
        if s.params:
            out += ["", "| parameter | type | default | range / choices | help |", "|---|---|---|---|---|"]
            for p in s.params.values():
                rng = "/".join(map(str, p.choices)) if p.choices is not None else (
                    f"{'' if p.min is None else p.min}..{'' if p.max is None else p.max}"
                    if p.min is not None or p.max is not None else "")
                out.append(f"| `{p.name}` | {p.type} | `{p.default!r}` | {rng} | {p.help} |")
        out.append("")
    return "\n".join(out)
