"""Planning a run: which nodes, in what order, with which parameters and cache keys.

`plan_run()` is pure: it validates, coerces and resolves parameters, fingerprints the files nodes
read (a stat; the content too for small single files) and hashes each node's key, but runs nothing, writes nothing
and keeps no state. The executor runs a plan; the editor's "why did this re-run" compares two
plans' key parts (`explain`); sharding reads the writer's resolved parameters from one.

Cache key of a node = hash(type, version, canonical params, keys of its inputs, fingerprints
of the files it reads): changing one parameter changes that node's key and its descendants'."""
from __future__ import annotations

import graphlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from .cache import fingerprint, hash_key
from .errors import WorkflowError
from .outputs import resolve_path
from .registry import Registry
from .validate import coerce_param, read_outputs, run_scope, validate
from .workflow import Workflow


@dataclass(frozen=True)
class Plan:
    order: List[str]                          # topological: every node after the nodes feeding it
    keys: Dict[str, str]                      # node -> cache key
    params: Dict[str, Dict[str, Any]]         # node -> parameters as the node receives them
    parts: Dict[str, Dict[str, Any]]          # node -> what its key hashes (for `explain`)
    last_use: Dict[str, int]                  # node -> index in `order` of its last consumer
    left_out: List[str] = ()                  # nodes a whole run does not run (validate.run_scope)
    # node -> the key of its result with every output made, for a node this run leaves some unmade (its
    # optional_outputs nothing reads): that result serves too, and what reads the node is keyed by it
    full: Dict[str, str] = field(default_factory=dict)

    def releasable(self, step: int) -> List[str]:
        """Nodes whose values nothing after `order[step]` reads (free them once that node ran)."""
        return [n for n, last in self.last_use.items() if last == step]


def plan_run(wf: Workflow, registry: Registry, targets: Optional[Iterable[str]] = None) -> Plan:
    """The plan for `targets` and what they need (all nodes when None); raises WorkflowError."""
    g = wf.graph
    needed, left_out = (g.ancestors(list(targets)), []) if targets else run_scope(wf, registry)
    problems = validate(wf, registry, only=needed)
    if problems:
        raise WorkflowError(problems)
    order = _deciders_first(list(graphlib.TopologicalSorter({n: list(g.upstream(n)) for n in needed}).static_order()),
                            wf, registry)
    asked = set(targets or ())
    keys: Dict[str, str] = {}
    params: Dict[str, Dict[str, Any]] = {}
    parts: Dict[str, Dict[str, Any]] = {}
    last_use: Dict[str, int] = {}
    full: Dict[str, str] = {}
    for step, nid in enumerate(order):
        inst = g.nodes[nid]
        spec = registry.get(inst.type)
        p = {name: coerce_param(ps, inst.params.get(name, ps.default)) for name, ps in spec.params.items()}
        files = {}
        links = g.inputs.get(nid, {})
        for name, ps in spec.params.items():
            if ps.kind == "path" and isinstance(p[name], str) and p[name]:
                given = p[name]
                p[name] = resolve_path(given, wf.base_dir, ps.reads)
                if ps.reads:
                    files[name] = fingerprint(p[name])
                    # Not beside the workflow: the node looks the name up (a model folder), so the file it
                    # finds is what it reads; a file replaced under the same name must change the key.
                    if files[name] is None and ps.locate is not None:
                        files[name] = _located_fingerprint(ps.locate, given)
            elif ps.locate is not None and isinstance(p[name], str) and p[name]:
                files[name] = _located_fingerprint(ps.locate, p[name])
            elif ps.names_files is not None and isinstance(p[name], str) and p[name] and name not in links:
                # a linked prompt's text (and so the files it names) is known only when the node runs
                files[name] = _named_fingerprints(ps.names_files, p[name])
        params[nid] = p
        # Keyed by the source's full result: an output it leaves unmade changes none of the others, so linking or
        # unlinking a reader of it (a viewer on a prompt's negative) does not re-run what reads the rest.
        ins = {port: f"{full.get(src, keys[src])}.{sport}" for port, (src, sport) in sorted(links.items())}
        for src, _ in links.values():
            last_use[src] = step
        if inst.bypass:
            parts[nid] = {"bypass": True, "inputs": ins}
        else:
            # a param a link sets is keyed by the link (its source's key), not by the value typed in under it
            typed = {k: v for k, v in p.items() if k not in links}
            parts[nid] = {"type": inst.type, "version": spec.version, "params": typed, "inputs": ins, "files": files}
            # Outputs left unmade for want of a reader (NodeSpec.optional_outputs) are keyed: a cached result
            # without them must not serve a run that links one. A node asked for by name makes all of them.
            unmade = [] if nid in asked else [o for o in spec.optional_outputs if o not in read_outputs(g, nid)]
            if unmade:
                full[nid] = hash_key(parts[nid])
                parts[nid]["unmade"] = unmade
        keys[nid] = hash_key(parts[nid])
    return Plan(order, keys, params, parts, last_use, left_out, full)


def _deciders_first(order: List[str], wf: Workflow, registry: Registry) -> List[str]:
    """The order with what a switch's params are linked from (and all that feeds it) first, still topological (what
    feeds a node first is first too): its value is known before the nodes on the switch's sides are reached, so the
    side it does not pick need not run (NodeSpec.reads). What decides a switch may hold another switch and its sides
    (a test on a switch's value): that part is ordered the same way in turn, each pass a smaller part (its last switch
    decides nothing in it), so that switch's test too comes before its sides."""
    g = wf.graph
    lazy = [n for n in order if registry.get(g.nodes[n].type).reads is not None]
    srcs = [src for n in lazy for port, (src, _) in g.inputs.get(n, {}).items()
            if port in registry.get(g.nodes[n].type).params]
    first = set(g.ancestors(srcs))
    head = [n for n in order if n in first]
    if len(head) < len(order):
        head = _deciders_first(head, wf, registry)
    return head + [n for n in order if n not in first]


def explain(old: Optional[Dict[str, Any]], new: Optional[Dict[str, Any]]) -> str:
    """Why a node's key parts `new` differ from `old` (the editor's "why did this re-run")."""
    if new is None:
        return "it has not been part of a run yet"
    if old is None:
        return "first run of this node in this session"
    reasons = []
    for name in sorted(set(old.get("params", {})) | set(new.get("params", {}))):
        a, b = old.get("params", {}).get(name), new.get("params", {}).get(name)
        if a != b:
            reasons.append(f"parameter {name} changed from {a!r} to {b!r}")
    for port in sorted(set(old.get("inputs", {})) | set(new.get("inputs", {}))):
        if old.get("inputs", {}).get(port) != new.get("inputs", {}).get(port):
            reasons.append(f"input {port} changed upstream")
    for name in new.get("files", {}):
        if old.get("files", {}).get(name) != new["files"][name]:
            reasons.append(f"file of {name} changed on disk")
    if old.get("version") != new.get("version"):
        reasons.append("node version changed")
    made = sorted(set(old.get("unmade", ())) - set(new.get("unmade", ())))
    if made:
        reasons.append(f"output {', '.join(made)} is read now (the last run left it unmade)")
    return "; ".join(reasons) or "nothing changed: it was served from the cache"


def _named_fingerprints(names_files, value: str) -> Any:
    try:
        found = names_files(value)
    except Exception:   # as _located_fingerprint: the node reports what it cannot find
        return None
    return [fingerprint(str(f)) for f in found] or None


def _located_fingerprint(locate, name: str) -> Any:
    try:
        found = locate(name)
    except Exception:   # a name that does not resolve is the node's error to report, not the key's
        return None
    if not found:
        return None
    # A text encoder's tokenizer folder beside it: a tokenizer replaced there changes what the node makes
    companions = getattr(locate, "companions", None)
    return [fingerprint(str(f)) for f in (found, *companions(Path(found)))] if companions else fingerprint(str(found))
