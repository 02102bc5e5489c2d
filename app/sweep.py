"""Sweep files: which parameter overrides make up each job of `kinograph batch`.

    grid:                          # every combination (the first key varies slowest)
      sample.seed: [1, 2, 3]
      prompt.text: ["a fox", "a heron"]
    cases:                         # and/or explicit cases
      - {sample.seed: 7, prompt.text: "a red kite"}

Cases are numbered from 1 in that order (grid first), so a number names the same job
every time the file is read: that is what `--only` takes to retry failed jobs. Output
path parameters may hold `{case}` and `{NODE.PARAM}` placeholders (with an optional
format spec, `{sample.seed:04d}`); an output that would be the same for several cases
gets `_{case}` added before its extension so no job overwrites another's result."""
from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from graph_engine.errors import WorkflowError
from graph_engine.placeholders import param_value, expand, output_params
from graph_engine.registry import Registry, did_you_mean
from graph_engine.validate import unknown_param
from graph_engine.validate import check_param
from graph_engine.workflow import Problem, Workflow, bare_braces_hint, load_yaml_with_lines

TOP_KEYS = ("grid", "cases")
# The most jobs one sweep file may make. A grid is a product: eighteen keys of ten values (900 bytes of YAML)
# are 10^18 cases, which were built one by one, and every case copies the workflow: the batch filled memory and
# never started. Ten thousand renders is more than any batch is meant to be.
MAX_CASES = 10_000


@dataclass
class Case:
    number: int
    overrides: Dict[str, Any]          # "node.param" -> value, in sweep-file order
    line: int = 0


@dataclass
class Sweep:
    path: Path
    cases: List[Case]

    @property
    def width(self) -> int:
        return len(str(len(self.cases)))

    def label(self, case: Case) -> str:
        return str(case.number).zfill(self.width)


@dataclass
class Job:
    case: Case
    label: str
    workflow: Optional[Workflow]        # with the case's overrides and outputs expanded; None: it did not load
    outputs: List[str] = field(default_factory=list)    # absolute output paths it will write
    source: Optional[str] = None        # its workflow file, in a batch of several
    written_by: Dict[str, str] = field(default_factory=dict)    # output path -> "node.param" that names it


# -- reading the sweep file --------------------------------------------------------------------
def load_sweep(path, wf: Workflow, registry: Registry) -> Sweep:
    """Parse and check a sweep file against the workflow; every problem raises one WorkflowError."""
    import yaml
    from graph_engine.workflow import decode_text
    path = Path(path)
    label = str(path)
    try:
        text = decode_text(path.read_bytes(), label)   # a sweep written in Notepad or PowerShell, as a workflow
    except FileNotFoundError:
        raise WorkflowError([Problem(label, 0, None, "no such sweep file")])
    except OSError as e:
        raise WorkflowError([Problem(label, 0, None, f"cannot read the sweep file: {e}")])
    try:
        data, lines, dups = load_yaml_with_lines(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        line = mark.line + 1 if mark else 0
        raise WorkflowError([Problem(label, line, None, f"not valid YAML: {what}{bare_braces_hint(what, text, line)}")])

    def at(*keys) -> int:
        for n in range(len(keys), 0, -1):
            if keys[:n] in lines:
                return lines[keys[:n]]
        return 0

    problems = [Problem(label, line, None, f"duplicate key {k!r} (the later one would win)") for line, k in dups]
    if not isinstance(data, dict) or not any(k in data for k in TOP_KEYS):
        problems.append(Problem(label, 1 if data is not None else 0, None,
                                "a sweep file is a mapping with `grid:` (NODE.PARAM: [values]) and/or "
                                "`cases:` (a list of {NODE.PARAM: value} mappings)"))
        raise WorkflowError(problems)
    for k in data:
        if k not in TOP_KEYS:
            problems.append(Problem(label, at(k), None, f"unknown key {k!r}; a sweep file has "
                                                        f"{' and '.join(TOP_KEYS)}{did_you_mean(str(k), TOP_KEYS)}"))

    def check(key: Any, values: List[Any], key_where: tuple, value_where) -> None:
        msg, param = _check_key(str(key), wf, registry)
        if msg:
            problems.append(Problem(label, at(*key_where), None, msg))
            return
        for i, v in enumerate(values):
            msg = _check_value(str(key), v, param)
            if msg:
                problems.append(Problem(label, at(*value_where(i)), None, msg))

    cases: List[Case] = []
    grid = data.get("grid")
    if grid is not None:
        if not isinstance(grid, dict) or not grid:
            problems.append(Problem(label, at("grid"), None, "`grid:` must map NODE.PARAM to a list of values"))
        else:
            axes = []
            for key, values in grid.items():
                values = values if isinstance(values, list) else [values]
                if not values:
                    problems.append(Problem(label, at("grid", key), None, f"`{key}` has no values"))
                check(key, values, ("grid", key), lambda i, key=key: ("grid", key, i))
                axes.append([(str(key), v) for v in values])
            total = math.prod(len(a) for a in axes)
            if total > MAX_CASES:
                sizes = " x ".join(str(len(a)) for a in axes)
                problems.append(Problem(label, at("grid"), None, f"the grid makes {total:,} cases ({sizes} values); "
                                                                 f"a sweep makes at most {MAX_CASES:,}: give fewer "
                                                                 f"values or keys, or split it into several sweep "
                                                                 f"files"))
                raise WorkflowError(problems)
            for combo in itertools.product(*axes):
                cases.append(Case(len(cases) + 1, dict(combo), at("grid")))
    listed = data.get("cases")
    if listed is not None:
        if not isinstance(listed, list):
            problems.append(Problem(label, at("cases"), None, "`cases:` must be a list of {NODE.PARAM: value} "
                                                              "mappings"))
        else:
            for i, entry in enumerate(listed):
                if entry is None:
                    entry = {}
                if not isinstance(entry, dict):
                    problems.append(Problem(label, at("cases", i), None, f"case {i + 1} of `cases:` must be a "
                                                                         f"mapping of NODE.PARAM to a value"))
                    continue
                for key, v in entry.items():
                    check(key, [v], ("cases", i, key), lambda _, i=i, key=key: ("cases", i, key))
                cases.append(Case(len(cases) + 1, {str(k): v for k, v in entry.items()}, at("cases", i)))
    if not cases and not problems:
        problems.append(Problem(label, 1, None, "the sweep has no cases"))
    if len(cases) > MAX_CASES:
        problems.append(Problem(label, at("cases"), None, f"the sweep makes {len(cases):,} cases; a sweep makes at "
                                                          f"most {MAX_CASES:,}: split it into several sweep files"))
    if problems:
        raise WorkflowError(problems)
    return Sweep(path, cases)


def _check_key(key: str, wf: Workflow, registry: Registry):
    """(problem, Param) for a NODE.PARAM key: the problem is None when the key is good."""
    node_id, _, param = key.rpartition(".")
    if not node_id or not param:
        return f"`{key}` must be written NODE.PARAM (for example sample.seed)", None
    g = wf.graph
    if node_id not in g.nodes:
        return f"`{key}`: no node {node_id!r} in {wf.label}{did_you_mean(node_id, g.nodes)}", None
    spec = registry.get(g.nodes[node_id].type)
    if spec is None:
        return None, None          # the workflow's own validation names the unknown node type
    if param not in spec.params:
        return f"`{key}`: {unknown_param(spec, param)}", None
    return None, spec.params[param]


def _check_value(key: str, value: Any, param) -> Optional[str]:
    if isinstance(value, (list, dict)):
        return f"`{key}`: a value must be a single number, text or true/false, got {value!r}"
    why = check_param(param, value) if param is not None else None
    return f"`{key}`: {why}" if why else None


def select_cases(sweep: Sweep, only: str) -> List[Case]:
    """The cases `--only` names ("3", "1,4", "2-5"); all of them when it is empty."""
    if not only.strip():
        return list(sweep.cases)
    n = len(sweep.cases)
    wanted = set()
    for part in only.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise WorkflowError([Problem("--only", 0, None, f"{part!r} is not a case number or range like 2-5")])
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if lo < 1 or hi > n or lo > hi:
            raise WorkflowError([Problem("--only", 0, None, f"case {part} does not exist: "
                                                            f"{sweep.path.name} has cases 1-{n}")])
        wanted.update(range(lo, hi + 1))
    return [c for c in sweep.cases if c.number in wanted]


# -- building each case's workflow -----------------------------------------------------------
def _with_case(template: str) -> str:
    root, ext = os.path.splitext(template)
    return f"{root}_{{case}}{ext}"


def plan_jobs(wf: Workflow, sweep: Sweep, cases: List[Case], registry: Registry) -> Tuple[List[Job], List[str]]:
    """One workflow per case with overrides applied and output paths expanded; plus notes for the user.

    Collisions are judged over the whole sweep, not just `cases`, so a retried job writes
    where it would have in the full run."""
    from graph_engine.plan import resolve_path
    targets = output_params(wf, registry)
    variants = {c.number: _case_workflow(wf, c) for c in sweep.cases}
    notes: List[str] = []
    problems: List[Problem] = []
    templates: Dict[Tuple[str, str], Dict[int, str]] = {}
    for nid, name in targets:
        templates[(nid, name)] = {n: str(param_value(v, registry, nid, name) or "") for n, v in variants.items()}

    def expand_all(key, per_case) -> Optional[Dict[int, str]]:
        out = {}
        for c in sweep.cases:
            try:
                out[c.number] = expand(per_case[c.number], sweep.label(c), variants[c.number], registry)
            except ValueError as e:
                problems.append(wf.problem(str(e), "nodes", key[0], "params", key[1], node=key[0]))
                return None
        return out

    for key, per_case in templates.items():
        if not any(per_case.values()):
            continue
        paths = expand_all(key, per_case)
        if paths is None:
            continue
        # One file named differently is one file: out\\shot.mp4 (typed on Windows) and ./out/shot.mp4 are
        # out/shot.mp4, as is latest/shot.mp4 where latest links to out, and names that differ only in letter case
        # are one on Windows, macOS and a farm's shares (the cases may run there: numbered everywhere, and said).
        # Told apart as text, one case's render took the other's place.
        if len(sweep.cases) > 1 and len({os.path.realpath(resolve_path(p, variants[n].base_dir)).casefold()
                                         for n, p in paths.items()}) < len(paths):
            per_case = {n: _with_case(t) for n, t in per_case.items()}
            paths = expand_all(key, per_case)
            notes.append(f"{key[0]}.{key[1]} would be the same file for several cases; added _{{case}}: "
                         f"{per_case[sweep.cases[0].number]}")
            if paths is None:
                continue
        for n, p in paths.items():
            variants[n].graph.nodes[key[0]].params[key[1]] = p
    if problems:
        raise WorkflowError(problems)
    jobs = []
    for c in cases:
        v = variants[c.number]
        outs = [(resolve_path(str(v.graph.nodes[nid].params[name]), v.base_dir), f"{nid}.{name}")
                for nid, name in targets if v.graph.nodes[nid].params.get(name)]
        jobs.append(Job(c, sweep.label(c), v, [path for path, _ in outs], written_by=dict(outs)))
    return jobs, notes


def _case_workflow(wf: Workflow, case: Case) -> Workflow:
    g = wf.graph.copy()
    for key, value in case.overrides.items():
        node_id, _, param = key.rpartition(".")
        g.nodes[node_id].params[param] = value
    return Workflow(g, wf.path, wf.lines, render_dir=wf.render_base)
