"""Output paths written as templates: `{case}` and `{NODE.PARAM[:spec]}` in the path a writer writes
(`out/fox_{sample.seed}.mp4`). `kinograph batch` fills them for each case of a sweep (app.sweep); a single run,
from the command line or `Session.run`, fills them from its own values, so a batch's workflow rendered alone
writes fox_7.mp4, not a file named 'fox_{sample.seed}.mp4'."""
from __future__ import annotations

import re
from typing import Any, List, Optional, Tuple

from .default_outputs import own_default
from .errors import WorkflowError
from .registry import Registry, did_you_mean
from .workflow import Problem, Workflow

# The longest file name most file systems take: no placeholder's format spec asks for more.
NAME_MAX = 255
PLACEHOLDER = re.compile(r"\{(case|[A-Za-z][A-Za-z0-9_\-]*\.[A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")


def output_params(wf: Workflow, registry: Registry) -> List[Tuple[str, str]]:
    """(node, param) of every path parameter a node writes to."""
    out = []
    for nid, inst in wf.graph.nodes.items():
        spec = registry.get(inst.type)
        if spec is None:
            continue
        for name, ps in spec.params.items():
            if ps.kind == "path" and not ps.reads:
                out.append((nid, name))
    return out


def param_value(wf: Workflow, registry: Registry, node_id: str, param: str) -> Any:
    inst = wf.graph.nodes[node_id]
    if param in inst.params:
        return inst.params[param]
    ps = registry.get(inst.type).params[param]
    return own_default(wf, ps) if ps.kind == "path" and not ps.reads else ps.default


def _named_default(wf: Workflow, registry: Registry, node_id: str, param: str) -> bool:
    """Whether an output path left out of the node takes the workflow file's name (graph_engine.default_outputs):
    the run writes it there, so it is written into the run's copy, and so into the workflow the render carries."""
    inst = wf.graph.nodes[node_id]
    return param not in inst.params and param_value(wf, registry, node_id, param) != \
        registry.get(inst.type).params[param].default


def expand(template: str, label: Optional[str], wf: Workflow, registry: Registry) -> str:
    """Fill `{case}` (left as it is without a label) and `{NODE.PARAM[:spec]}`; values become file-name
    safe (spaces and slashes to _)."""
    def fill(m: "re.Match") -> str:
        key, spec = m.group(1), m.group(2) or ""
        if key == "case":
            if label is None:           # a single run: no case to number
                return m.group(0)
            value: Any = label
        else:
            node_id, param = key.split(".", 1)
            if node_id not in wf.graph.nodes:
                raise ValueError(f"placeholder {{{key}}}: no node {node_id!r}{did_you_mean(node_id, wf.graph.nodes)}")
            spec_ = registry.get(wf.graph.nodes[node_id].type)
            if spec_ is None or param not in spec_.params:
                names = spec_.params if spec_ else ()
                raise ValueError(f"placeholder {{{key}}}: node {node_id} has no parameter {param!r}"
                                 f"{did_you_mean(param, names)}")
            value = param_value(wf, registry, node_id, param)
        widest = max(map(int, re.findall(r"\d+", spec)), default=0)
        if widest > NAME_MAX:
            # format() would build the whole text first: {sample.seed:>2000000000} took gigabytes and never ended.
            raise ValueError(f"placeholder {m.group(0)}: a width or precision of {widest} is more than a file name "
                             f"holds; give at most {NAME_MAX}")
        try:
            text = format(value, spec)
        except (ValueError, TypeError) as e:
            raise ValueError(f"placeholder {m.group(0)}: format {spec!r} does not fit {value!r} ({e})")
        text = re.sub(r"[^\w.+\-]+", "_", text).strip("_.")
        # A prompt of 'nul' or 'Con' is a device on Windows, and a name cut after a dot loses it there.
        from .portable import portable_name
        return portable_name(text, limit=60) or "_"

    return PLACEHOLDER.sub(fill, template)


def fill_placeholders(wf: Workflow, registry: Registry) -> List[str]:
    """Fill the `{NODE.PARAM}` placeholders of output paths for a single run (`kinograph run`), as a batch
    fills them for each case: a batch's workflow rendered alone wrote a file named 'fox_{sample.seed}.mp4'.
    `{case}` means nothing outside a batch and stays as written; the notes returned say so."""
    notes: List[str] = []
    problems: List[Problem] = []
    for nid, name in output_params(wf, registry):
        params = wf.graph.nodes[nid].params
        if _named_default(wf, registry, nid, name):
            params[name] = param_value(wf, registry, nid, name)
        value = params.get(name)
        if not isinstance(value, str) or not PLACEHOLDER.search(value):
            continue
        try:
            filled = expand(value, None, wf, registry)
        except ValueError as e:
            problems.append(wf.problem(str(e), "nodes", nid, "params", name, node=nid))
            continue
        if any(m.group(1) == "case" for m in PLACEHOLDER.finditer(filled)):
            notes.append(f"{nid}.{name} holds {{case}}, which kinograph batch fills with the case number; "
                         f"this run writes {filled}")
        wf.graph.nodes[nid].params[name] = filled
    if problems:
        raise WorkflowError(problems)
    return notes


def filled(wf: Workflow, registry: Registry) -> Workflow:
    """`wf` for one run: a copy with its output paths' placeholders filled (fill_placeholders), or `wf` itself
    when it has none. `wf` keeps its templates, so a script's next run (another seed) names its own file."""
    import dataclasses
    if not any(isinstance(v, str) and PLACEHOLDER.search(v) or _named_default(wf, registry, nid, name)
               for nid, name in output_params(wf, registry) for v in [wf.graph.nodes[nid].params.get(name)]):
        return wf
    run = dataclasses.replace(wf, graph=wf.graph.copy())
    fill_placeholders(run, registry)
    return run
