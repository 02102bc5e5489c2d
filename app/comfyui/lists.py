"""ComfyUI's list outputs (a node's is_output_list): the nodes after such a node run once per item, until a node
that takes the whole list (RebatchImages) joins their results. WanDancerPadKeyframesList hands on one segment of key
frames per item; where the file tells how many (num_segments from constants: WanDancer's final duration), it is
expanded on import: one WanDancerPadKeyframes per segment, the nodes after it copied per segment, and the joining
node reading a CreateList of the copies' results, which its rule joins in order. A list of one is left to the
mapping (it is the first segment itself); a count known only as the workflow runs, or past the cap, stays not
mapped, the report saying why."""
from __future__ import annotations

import copy
from typing import Optional

from .flatten import CNode, Flat, Ref
from .loops import MAX_PASSES, _below, _consumers

# list node -> (its input giving the number of items, the node making one item, that node's item index input)
LISTERS = {"WanDancerPadKeyframesList": ("num_segments", "WanDancerPadKeyframes", "segment_index")}
JOINS = ("RebatchImages",)          # nodes that take the whole list (INPUT_IS_LIST): the copies end before them


def expand(flat: Flat) -> None:
    """Expand every list node of the file whose number of items is known (see the module's docstring)."""
    for lid in [n for n, cn in flat.nodes.items() if cn.class_type in LISTERS]:
        why = _expand_one(flat, lid)
        if why:
            flat.remarks.setdefault(lid, []).append(f"its list is not expanded: {why}")


def _known(flat: Flat, v):
    """The value of a node input from the file's constants (a literal, or what the nodes before it compute on
    import, as the converter folds them); None where it is known only as the workflow runs."""
    if not isinstance(v, Ref):
        return v
    from .convert import Converter
    above, todo = {v.node}, [v.node]
    while todo:
        for src in flat.nodes[todo.pop()].inputs.values():
            if isinstance(src, Ref) and src.node in flat.nodes and src.node not in above:
                above.add(src.node)
                todo.append(src.node)
    part = Converter(Flat({n: copy.deepcopy(flat.nodes[n]) for n in above}))
    try:
        part.run()
    finally:
        part.close_regex()
    got = part.resolve(v)
    return got if isinstance(got, (int, float, str, bool)) else None


def _expand_one(flat: Flat, lid: str) -> Optional[str]:
    lister = flat.nodes[lid]
    count_input, single, index_input = LISTERS[lister.class_type]
    count = _known(flat, lister.inputs.get(count_input))
    if not isinstance(count, int) or isinstance(count, bool):
        return f"its {count_input} is known only as the workflow runs"
    if count == 1:
        return None
    if not 1 <= count <= MAX_PASSES:
        return f"it asks for {count} items; Kinograph expands a list of 1 to {MAX_PASSES} on import"
    consumers = _consumers(flat)
    body, todo = set(), [lid]
    while todo:
        for c in consumers.get(todo.pop(), ()):
            if flat.nodes[c].class_type not in JOINS and c not in body:
                body.add(c)
                todo.append(c)
    joins = {c for n in body | {lid} for c in consumers.get(n, ()) if flat.nodes[c].class_type in JOINS}
    if any(c in body for j in joins for c in _below(j, consumers)):
        return "a node after its list's join reads the list's items again"
    clash = next((f"{n}@{i}" for n in body | {lid} for i in range(count) if f"{n}@{i}" in flat.nodes), None)
    if clash:
        return f"the file already has a node {clash}, the id its copy would take"
    results = {}
    for i in range(count):
        moved_ids = {n: f"{n}@{i}" for n in body | {lid}}

        def moved(v, ids=moved_ids):
            return Ref(ids[v.node], v.slot) if isinstance(v, Ref) and v.node in ids else v
        inputs = {k: v for k, v in lister.inputs.items() if k != count_input}
        flat.nodes[moved_ids[lid]] = CNode(moved_ids[lid], single, f"{lister.title or single} (segment {i + 1})",
                                           {**inputs, index_input: i}, None, lister.pos, list(lister.out_types),
                                           lister.mode, (), lister.pack, list(lister.out_names))
        for n in body:
            cn = flat.nodes[n]
            flat.nodes[moved_ids[n]] = CNode(moved_ids[n], cn.class_type, f"{cn.title or cn.class_type} (segment "
                                             f"{i + 1})", {k: moved(v) for k, v in cn.inputs.items()},
                                             copy.deepcopy(cn.widgets), cn.pos, list(cn.out_types), cn.mode,
                                             cn.missing_widgets, cn.pack, list(cn.out_names), dict(cn.controls))
        for j in joins:
            for k, v in flat.nodes[j].inputs.items():
                if isinstance(v, Ref) and v.node in moved_ids:
                    results.setdefault((j, k), []).append(moved(v))
    for n in body | {lid}:
        del flat.nodes[n]
    for (j, k), items in results.items():
        gathered = f"{j}:{k}@list"
        flat.nodes[gathered] = CNode(gathered, "CreateList", f"{k} of each segment",
                                     {f"inputs.input{i}": v for i, v in enumerate(items)}, pos=flat.nodes[j].pos)
        flat.nodes[j].inputs[k] = Ref(gathered, 0)
    return None
