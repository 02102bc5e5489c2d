"""Copy and paste as workflow YAML: the clipboard holds a small, valid workflow, so nodes move
between windows, between editors, and into a text editor and back."""
from __future__ import annotations

import copy
from typing import Dict, Iterable, List, Optional, Set, Tuple

from PySide6.QtGui import QGuiApplication

from graph_engine.graph import ID_RE, Graph
from graph_engine.workflow import parse_workflow, to_yaml

from . import ops
from .document import usable_layout

GROUPS, NOTES, REROUTES = "_groups", "_notes", "_reroutes"
# Beside the YAML text, a copy of nodes says it is one, so that a text field can tell it from text to type in
NODES_MIME = "application/x-kinograph-nodes"


def holds_nodes() -> bool:
    """The clipboard holds nodes copied in an editor's window (this one or another)."""
    mime = QGuiApplication.clipboard().mimeData()
    return mime is not None and mime.hasFormat(NODES_MIME)


def keep_as_text() -> None:
    """Hand the clipboard nodes copied here as plain text in a QMimeData Qt made itself: the one the
    editor made is a Python object, and a platform whose clipboard outlives the interpreter (offscreen's
    is a C++ static) deleted it at exit, through shiboken after Python had gone - a segfault at every
    quit after a copy. The YAML text still pastes as nodes; only the tag that tells a text field so goes."""
    board = QGuiApplication.clipboard()
    mime = board.mimeData()
    if mime is not None and mime.hasFormat(NODES_MIME):
        board.setText(mime.text())


def copy_text(graph: Graph, registry, node_ids: Iterable[str], note_ids: Iterable[str] = (),
              group_ids: Iterable[str] = ()) -> str:
    ids = [n for n in node_ids if n in graph.nodes]
    sub = graph.subgraph(ids)
    reroutes = {k: v for k, v in (graph.ui.get(REROUTES) or {}).items() if _link_key_inside(sub, k)}
    if reroutes:
        sub.ui[REROUTES] = copy.deepcopy(reroutes)
    for key, wanted in ((NOTES, set(note_ids)), (GROUPS, set(group_ids))):
        kept = {k: v for k, v in (graph.ui.get(key) or {}).items() if k in wanted}
        if kept:
            sub.ui[key] = copy.deepcopy(kept)
    return to_yaml(sub, registry)


def _link_key_inside(sub: Graph, key: str) -> bool:
    dst, _, port = key.partition(".")
    return port in sub.inputs.get(dst, {})


def _fresh_id(want: str, taken: Set[str]) -> str:
    base = want if ID_RE.match(want) else "node"
    if base not in taken:
        return base
    stem = base.rstrip("0123456789") or base
    i = 2
    while f"{stem}{i}" in taken:
        i += 1
    return f"{stem}{i}"


def paste_ops(text: str, graph: Graph, registry, at: Optional[Tuple[float, float]] = None,
              offset: Tuple[float, float] = (40.0, 40.0)) -> Tuple[List[ops.Op], Dict[str, str]]:
    """Operations that add the clipboard's nodes (renamed where ids clash), their links, notes
    and reroutes; placed with their top-left at `at`, or `offset` from where they were copied."""
    wf, problems = parse_workflow(text, None, registry)
    usable_layout(wf)           # pasted text may come from anywhere: its layout is only a hint
    src = wf.graph
    notes, groups = src.ui.get(NOTES) or {}, src.ui.get(GROUPS) or {}
    if not src.nodes and not notes and not groups:
        raise ValueError(problems[0].message if problems else "the clipboard holds no nodes")
    taken = set(graph.nodes)
    mapping: Dict[str, str] = {}
    for nid in src.nodes:
        mapping[nid] = _fresh_id(nid, taken)
        taken.add(mapping[nid])
    xs = [src.ui.get(n, {}).get("pos", [0, 0]) for n in src.nodes]
    xs += [n.get("pos", [0, 0]) for n in notes.values()]
    xs += [g.get("rect", [0, 0])[:2] for g in groups.values()]
    left, top = min(p[0] for p in xs), min(p[1] for p in xs)
    dx, dy = (at[0] - left, at[1] - top) if at is not None else offset
    out: List[ops.Op] = []
    for nid, inst in src.nodes.items():
        ui = copy.deepcopy(src.ui.get(nid) or {})
        x, y = ui.get("pos", [0, 0])
        ui["pos"] = [round(x + dx), round(y + dy)]
        out.append(ops.AddNode(inst.type, mapping[nid], inst.params, inst.version, ui, inst.bypass, inst.title))
    for dst, ports in src.inputs.items():
        for port, (s, sport) in ports.items():
            if s in mapping:
                out.append(ops.Connect(mapping[s], sport, mapping[dst], port))
    reroutes = src.ui.get(REROUTES) or {}
    if reroutes:
        merged = copy.deepcopy(graph.ui.get(REROUTES) or {})
        for key, pts in reroutes.items():
            dst, _, port = key.partition(".")
            if dst in mapping:
                merged[f"{mapping[dst]}.{port}"] = [[p[0] + dx, p[1] + dy] for p in pts]
        out.append(ops.SetUi(REROUTES, merged))
    # Notes, and groups (frames) with the nodes inside them: a group copied alone was left out,
    # so Ctrl+C on a group said 'nothing selected' and a note alone 'the workflow has no nodes'.
    for key, field, items in ((NOTES, "pos", notes), (GROUPS, "rect", groups)):
        if not items:
            continue
        merged = copy.deepcopy(graph.ui.get(key) or {})
        for iid, item in items.items():
            body = copy.deepcopy(item)
            x, y, *size = body.get(field, [0, 0])
            body[field] = [round(x + dx), round(y + dy), *size]
            merged[_fresh_id(iid, set(merged))] = body
        out.append(ops.SetUi(key, merged))
    return out, mapping
