"""docs/comfyui-mapping.md, generated from the mapping table so it cannot drift from it.

    python -m app.comfyui.docs          # rewrites docs/comfyui-mapping.md"""
from __future__ import annotations

from pathlib import Path

from .mapping import INSTEAD, RULES, SAMPLERS_EXACT, SCHEDULERS_EXACT, VHS_FORMATS

HEADER = """# ComfyUI -> Kinograph mapping

`kinograph import FILE` (and the editor's File > Open) turns a ComfyUI workflow into a Kinograph one
using this table; every ComfyUI node is reported as mapped exactly, mapped approximately (with what
differs) or not mapped. This page is generated from `app/comfyui/mapping.py`
(`python -m app.comfyui.docs`); a test fails when it is out of date.

How the two formats are read: UI files store widget values by position (the "control after generate"
value after a seed becomes the editor's seed mode: randomize draws a new seed at each run after the first, increment adds one,
fixed and decrement keep it), VideoHelperSuite stores them by name; reroutes, KJNodes'
SetNode/GetNode pairs and primitive nodes are inlined, muted nodes dropped, bypassed nodes rewired
past (each output takes the input of the same type; an input left with nothing is named in its
node's line), subgraphs expanded (inner ids become `outer:inner`, the inner nodes placed from where the subgraph node stood, their top left at it; an input of the subgraph linked to nothing outside gives
every node it feeds the value of the subgraph node's widget, as ComfyUI does: the value stored on the subgraph node,
or in files that show inner widgets (`proxyWidgets`) the widget of the first node inside it reaches), ComfyUI's older group nodes (`workflow>NAME`, defined in `extra.groupNodes`) expanded the
same way (each instance's widget values go to its inner nodes in order), groups and notes kept in `ui:`. API prompts map the same way by input name.
Constants (`PrimitiveInt` and its kin), a `ComfySwitchNode` whose switch is a constant, and
`ComfyMathExpression`, `ResolutionSelector` and the string nodes (`StringReplace`, `StringConcatenate`,
`RegexExtract`, `RegexReplace`, `JsonExtractString`, `CustomCombo`) over constants are computed on import as
ComfyUI's code computes them, each result handed to the settings it feeds; a `ComfyMathExpression` of values
known only as the workflow runs (a picture's size) becomes `math.expression`, those values linked in, and a
`ComfySwitchNode` whose switch is only known then becomes `math.switch` (which, as ComfyUI's, runs only what feeds
the input it picks); `ComfyNumberConvert` of such a value becomes `math.number_convert`. `PreviewAny` of a number,
a switch or a text becomes `math.show`, which writes ComfyUI's text of it in the run's log; a `ComfyMathExpression`
or `ComfyNumberConvert` of constants that a `PreviewAny` shows also runs as its node for it to show; nodes that only feed a switch's unpicked input are left out (ComfyUI never runs them), and so are nodes
no output needs (outputs: nodes that save or preview, and a node of an unknown class that takes a link and feeds
nothing, as its pack may mark it an output, and a group node without its definition; a file with no output keeps every node). A widget that
another node's output feeds (a width from `GetImageSize`) becomes a link into the Kinograph parameter, where it
takes a number, a switch or a word. Unmapped nodes become red placeholder nodes
(`comfyui.<class_type>`) that keep their widget values, so nothing the user set is lost.

Differences that hold for every workflow: a seed does not give ComfyUI's exact noise (Kinograph draws
noise in each family's diffusers order); model file names are kept as written (Kinograph looks them
up in its model folders, ComfyUI's `models/` layout included); outputs go to `out/<prefix>.<ext>`
beside the workflow.

"Folded" nodes have no node of their own: their settings become parameters of the node that
consumes them (e.g. KSamplerSelect's sampler becomes `generate.sample`'s `sampler`).

| ComfyUI class_type | Kinograph | parameters and inputs | differences |
|---|---|---|---|
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _params(rule) -> str:
    parts = []
    for p in rule.params:
        how = f" ({p.convert.__doc__.strip()})" if p.convert is not None and p.convert.__doc__ else ""
        parts.append(f"`{p.comfy}` -> `{p.param}`{how}")
    parts += [f"input `{c}` -> `{k}`" for c, k in rule.inputs.items()]
    parts += [f"`{k}` = `{v!r}`" for k, v in rule.fixed.items()]
    if rule.takes:
        parts.append("takes " + ", ".join(f"`{t}`" for t in rule.takes) + " from folded nodes")
    return "; ".join(parts) or "-"


def _differences(rule) -> str:
    out = [rule.note] if rule.note else []
    carried = [f"`{k}`" + (f" (exact when {' or '.join(map(repr, v)) if isinstance(v, tuple) else repr(v)})"
                           if v is not None else "") for k, v in rule.ignore.items()]
    if carried:
        out.append("not carried: " + ", ".join(carried))
    return "; ".join(out) or "exact"


def mapping_markdown() -> str:
    rows = []
    for cls in sorted(RULES, key=str.lower):
        r = RULES[cls]
        target = (f"`{r.node}`" if r.node else "-") + (" (folded)" if r.fold else "") + (" (editor only)"
                                                                                       if r.kind == "ui" else "")
        if r.special:
            target += f" [{r.special}]"
        rows.append(f"| `{_cell(cls)}` | {target} | {_cell(_params(r))} | {_cell(_differences(r))} |")
    samplers = ", ".join(f"`{k}` -> `{v}`" for k, v in SAMPLERS_EXACT.items())
    sched = ", ".join(f"`{k}`" for k in SCHEDULERS_EXACT)
    formats = ", ".join(f"`{k}` -> `{c}` ({e})" for k, (c, e) in VHS_FORMATS.items())
    tail = f"""
## Values

- Samplers, exact: {samplers}. Any other -> `euler`, reported.
- Schedulers, exact: {sched}; any other -> `simple`.
- VideoHelperSuite formats: {formats}.
"""
    if INSTEAD:
        tail += "\n## Not mapped, and what to do instead\n\n" + "".join(
            f"- `{cls}`: {INSTEAD[cls]}.\n" for cls in sorted(INSTEAD, key=str.lower))
    return HEADER + "\n".join(rows) + "\n" + tail


def main() -> int:
    out = Path(__file__).resolve().parents[2] / "docs" / "comfyui-mapping.md"
    out.write_text(mapping_markdown(), encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
