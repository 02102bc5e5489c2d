"""ComfyUI's older group nodes (before subgraphs) as subgraph definitions, so that they expand as subgraphs do.

A group node instance has the type "workflow>NAME" ("workflow/NAME" in older frontends); its definition is
extra.groupNodes[NAME]: the inner nodes in execution order (a node's `index` is its place there), links between
them as rows [from index, from slot, to index, to slot, ...] (from index null: a link from outside the group when it
was made), and `external`: the inner outputs that are also the group's outputs though linked inside. ComfyUI's
frontend (groupNode.js, GroupNodeConfig) builds the instance's slots from that definition:
- inputs: each inner node's inputs that no inner link feeds, node by node, the inputs that were widgets last;
- outputs: each inner node's outputs that no inner link reads, or that `external` lists, node by node;
- widgets: each inner node's widgets, node by node, their values on the instance (`widgets_values`).
Unlinked primitives, reroutes linked on both sides, and notes have no slots (ComfyUI skips them)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

GROUP_PREFIXES = ("workflow>", "workflow/")


def group_name(node_type: Any) -> Optional[str]:
    if isinstance(node_type, str):
        for p in GROUP_PREFIXES:
            if node_type.startswith(p):
                return node_type[len(p):]
    return None


def group_definitions(nodes: List[Any], extra: Any, remarks: Dict[str, List[str]],
                      spans=lambda class_type, values: None) -> Dict[str, Dict[str, Any]]:
    """Instance type -> a subgraph definition (definitions.subgraphs' shape) for every group node instance in `nodes`
    (the file's nodes, copied: each instance found is given a type of its own and its inputs renamed) whose definition
    extra.groupNodes holds; `remarks` gets a line for an instance whose widget values cannot be placed. `spans(class,
    values)` gives a known class's widgets' places in its values, [(name, start, stop)], or None."""
    groups = extra.get("groupNodes") if isinstance(extra, dict) else None
    if not isinstance(groups, dict):
        return {}
    out = {}
    for inst in nodes:
        name = group_name(inst.get("type")) if isinstance(inst, dict) else None
        d = groups.get(name) if name is not None else None
        if isinstance(d, dict) and isinstance(d.get("nodes"), list):
            # one definition per instance: each instance's widget values go into its own copy of the inner nodes
            key = f"{inst['type']}\x00{inst.get('id')}"
            inst["type"] = key
            out[key] = _as_subgraph(name, d, inst, remarks, spans)
    return out


def _has_slots(node: Dict[str, Any], idx: int, links_from, links_to) -> bool:
    t = node.get("type")
    if t == "PrimitiveNode":
        return idx in links_from
    if t == "Reroute":
        return not (idx in links_from and idx in links_to)
    return t not in ("Note", "MarkdownNote")


def _as_subgraph(name: str, d: Dict[str, Any], inst: Dict[str, Any], remarks, spans) -> Dict[str, Any]:
    nodes = [n for n in d["nodes"] if isinstance(n, dict)]
    inner: List[Tuple[int, int, int, int]] = []
    for row in d.get("links") or []:
        if isinstance(row, list) and len(row) >= 4 and row[0] is not None:
            inner.append((int(row[0]), int(row[1]), int(row[2]), int(row[3])))
    links_from = {a for a, _, _, _ in inner}
    links_to: Dict[int, set] = {}
    read: Dict[int, set] = {}
    for a, sa, b, sb in inner:
        links_to.setdefault(b, set()).add(sb)
        read.setdefault(a, set()).add(sa)
    external = set()
    for row in d.get("external") or []:
        if isinstance(row, list) and len(row) >= 2:
            # [index, slot, type]; some frontends wrote the whole node in place of its index
            idx = row[0].get("index") if isinstance(row[0], dict) else row[0]
            if isinstance(idx, int):
                external.add((idx, int(row[1])))

    slot_inputs, widget_inputs, outputs, sub_nodes = [], [], [], []
    for idx, n in enumerate(nodes):
        m = dict(n, id=idx)
        m["inputs"] = [dict(i, link=None) for i in n.get("inputs") or [] if isinstance(i, dict)]
        m["outputs"] = [dict(o, links=None) for o in n.get("outputs") or [] if isinstance(o, dict)]
        sub_nodes.append(m)
        if not _has_slots(n, idx, links_from, links_to):
            continue
        for s, i in enumerate(m["inputs"]):
            if s not in links_to.get(idx, ()):
                (widget_inputs if i.get("widget") else slot_inputs).append((idx, s))
        for s in range(len(m["outputs"])):
            if s not in read.get(idx, ()) or (idx, s) in external:
                outputs.append((idx, s))
    _place_widget_values(name, inst, sub_nodes, links_from, links_to, remarks, spans)
    place_at(sub_nodes, inst.get("pos"))

    # the instance's inputs in the order the frontend made them: its slots, then the widgets turned into inputs
    ins = [dict(i) for i in inst.get("inputs") or [] if isinstance(i, dict)]
    inst["inputs"] = ins
    inst_slots = [k for k, i in enumerate(ins) if not i.get("widget")]
    inst_widgets = [k for k, i in enumerate(ins) if i.get("widget")]
    targets = {}
    for ks, inner_ins in ((inst_slots, slot_inputs), (inst_widgets, widget_inputs)):
        for k, t in zip(ks, inner_ins):
            targets[k] = t
    # widgets the user turned into inputs on the instance come after those; each names the group widget it sets
    names = _group_widget_names(sub_nodes, links_from, links_to, spans) if inst_widgets[len(widget_inputs):] else {}
    for k in inst_widgets[len(widget_inputs):]:
        w = ins[k]["widget"]
        hit = names.get(w.get("name") if isinstance(w, dict) else w)
        if hit is None:
            if ins[k].get("link") is not None:
                _remark(inst, sub_nodes, remarks, f"group node {name}: its input {ins[k].get('name')!r} sets a "
                        "widget Kinograph cannot find in the group, so that link is not carried; set the value on "
                        "the inner node")
            continue
        idx, widget = hit
        sub_nodes[idx]["inputs"].append({"name": widget, "type": ins[k].get("type"), "widget": {"name": widget},
                                         "link": None})
        targets[k] = (idx, len(sub_nodes[idx]["inputs"]) - 1)
    # the subgraph's input k is the instance's input k (the subgraph expansion matches them by name)
    for k, i in enumerate(ins):
        i["name"] = f"{k}"
    sub_inputs = [{"name": f"{k}"} for k in range(len(ins))]
    links = [{"id": n + 1, "origin_id": a, "origin_slot": sa, "target_id": b, "target_slot": sb}
             for n, (a, sa, b, sb) in enumerate(inner)]
    for k, (b, sb) in targets.items():
        links.append({"id": len(links) + 1, "origin_id": -10, "origin_slot": k, "target_id": b, "target_slot": sb})
    for k, (a, sa) in enumerate(outputs):
        links.append({"id": len(links) + 1, "origin_id": a, "origin_slot": sa, "target_id": -20, "target_slot": k})
    return {"id": inst["type"], "name": name, "nodes": sub_nodes, "links": links, "inputs": sub_inputs,
            "outputs": [{"name": f"{k}"} for k in range(len(outputs))]}


def _remark(inst, inner, remarks, text) -> None:
    """`text` on the instance's first inner node the report lists (the instance itself is expanded away, and a
    primitive or reroute is folded into the nodes it feeds)."""
    shown = next((m for m in inner if m.get("type") not in ("PrimitiveNode", "Reroute", "Note", "MarkdownNote")),
                 None)
    remarks.setdefault(f"{inst.get('id')}:{shown['id']}" if shown else str(inst.get("id")), []).append(text)


def _group_widget_names(sub_nodes, links_from, links_to, spans) -> Dict[str, Tuple[int, str]]:
    """The group's widget names -> (inner node, widget), as groupNode.js names them (getInputConfig): node by node,
    its widgets and then its unlinked inputs take their own names; a name an earlier one took is given as
    '<inner title or type> <name>', and if that is taken too, '<title or type> <n> <name>'."""
    seen: Dict[str, int] = {}
    out: Dict[str, Tuple[int, str]] = {}

    def take(m, own):
        given = own
        if given in seen or (m.get("type") == "PrimitiveNode" and m.get("title")):
            prefix = f"{m.get('title') or m.get('type')} "
            given = prefix + own
            if given in seen:
                given = f"{prefix}{seen[given]} {own}"
        seen[given] = seen.get(given, 1) + 1
        return given

    for idx, m in enumerate(sub_nodes):
        if not _has_slots(m, idx, links_from, links_to):
            continue
        converted = {i["widget"].get("name") for i in m["inputs"] if isinstance(i.get("widget"), dict)}
        widgets = ["value"] if m.get("type") == "PrimitiveNode" else \
            [w for w, _, _ in spans(m.get("type"), m.get("widgets_values") or []) or ()]
        for w in widgets:
            if w not in converted:
                out.setdefault(take(m, w), (idx, w))
        for s, i in enumerate(m["inputs"]):
            if not isinstance(i.get("widget"), dict) and s not in links_to.get(idx, ()):
                take(m, str(i.get("name")))
    return out


def place_at(sub_nodes, pos) -> None:
    """Inner nodes keep the positions they had when the group (or subgraph) was made; each instance's are moved to
    where the instance stands (their top left corner at it), as ComfyUI's Convert to nodes places a group node's
    (its Unpack Subgraph centres a subgraph's on the node instead; from the corner, the nodes begin where the
    instance began, the wires into it coming from the left)."""
    at = [m.get("pos") for m in sub_nodes]
    at = [p for p in at if isinstance(p, list) and len(p) >= 2 and all(isinstance(v, (int, float)) for v in p[:2])]
    if not at or not (isinstance(pos, list) and len(pos) >= 2 and all(isinstance(v, (int, float)) for v in pos[:2])):
        return
    dx, dy = pos[0] - min(p[0] for p in at), pos[1] - min(p[1] for p in at)
    for m in sub_nodes:
        p = m.get("pos")
        if p is not None and any(p is q for q in at):
            m["pos"] = [p[0] + dx, p[1] + dy]


def _place_widget_values(name, inst, sub_nodes, links_from, links_to, remarks, spans) -> None:
    """The instance's widget values over the inner nodes' own (the values when the group was made), in the order
    groupNode.js gives the group its widgets: each inner node's widgets node by node, then the inner widgets that were
    converted to inputs and are not linked inside, node by node (its processConvertedWidgets runs after every node). A
    converted widget linked inside has no widget on the group: the inner node keeps its value."""
    values = inst.get("widgets_values")
    if not isinstance(values, list):
        return
    owners = [m for idx, m in enumerate(sub_nodes)
              if _has_slots(m, idx, links_from, links_to) and isinstance(m.get("widgets_values"), list)]
    first, last = [], []            # (inner node, places in its widgets_values)
    unknown = None
    for m in owners:
        converted = [(s, i["widget"]["name"]) for s, i in enumerate(m["inputs"]) if isinstance(i.get("widget"), dict)]
        places = {}
        if converted:
            places = {w: range(a, b) for w, a, b in spans(m.get("type"), m["widgets_values"]) or ()}
            if any(w not in places for _, w in converted):
                unknown = m.get("type")
        taken = {p for _, w in converted for p in places.get(w, ())}
        first.append((m, [p for p in range(len(m["widgets_values"])) if p not in taken]))
        last.extend((m, list(places.get(w, ()))) for s, w in converted if s not in links_to.get(m["id"], ()))
    order = first + last
    if unknown is not None or sum(len(p) for _, p in order) != len(values):
        why = (f"its inner {unknown} has widgets turned into inputs, whose places Kinograph does not know"
               if unknown is not None else
               f"its {len(values)} widget values do not match its definition's inner nodes")
        _remark(inst, owners, remarks, f"group node {name}: {why}, so the inner nodes keep the values the group was "
                                       "made with; check them against ComfyUI")
        return
    for m in owners:
        m["widgets_values"] = list(m["widgets_values"])
    k = 0
    for m, places in order:
        for p in places:
            m["widgets_values"][p] = values[k]
            k += 1
