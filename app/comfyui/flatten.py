"""ComfyUI's two JSON formats reduced to one shape: executable nodes with named inputs.

The UI format stores widget values by position, links in a separate array, and editor-only nodes
(reroutes, primitives, notes) beside the real ones; subgraphs live in `definitions.subgraphs`. Here
subgraphs are expanded, reroutes and primitives inlined, muted nodes dropped and bypassed nodes
rewired past (an output takes the input of the same type, the same slot first), the way ComfyUI
builds the prompt it executes. The API format is already this shape."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .errors import ComfyImportError
from .groupnodes import group_definitions, place_at

MODE_NEVER, MODE_BYPASS = 2, 4
REROUTES = {"Reroute", "Reroute (rgthree)", "SetNode"}
# KJNodes' wireless pair: a GetNode gives what the SetNode of the same name (its one widget) receives; both are
# editor-only in ComfyUI, which resolves them before it runs anything, like reroutes
GETS = {"GetNode"}
PRIMITIVES = {"PrimitiveNode"}
NOTES = {"Note", "MarkdownNote", "Note Plus (mtb)", "Label (rgthree)"}
# rgthree's contexts: one bundle of model, clip, vae, prompts, latent, image, seed (and more in Big) passed along a
# chain, each output the input of its name where linked, else what the base_ctx context carries
CONTEXTS = {"Context (rgthree)", "Context Big (rgthree)"}
# rgthree's switches pass on their first input that receives something (ComfyUI skips muted and empty ones)
SWITCHES = {"Any Switch (rgthree)"}
# cg-use-everywhere's broadcasters: what their inputs receive goes to the unconnected inputs of its type elsewhere,
# linked by the editor only when it queues the workflow (the file holds no link for them)
EVERYWHERE = {"Anything Everywhere", "Anything Everywhere3", "Anything Everywhere?", "Prompts Everywhere"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
SEED_WIDGETS = {"seed", "noise_seed"}
# The most nodes a workflow may have (UI files with their subgraphs expanded). Subgraphs hold instances of others,
# so a 6 KB file of fourteen levels, each placing the next four times, expanded to 4^14 (268 million) nodes: the
# import (kinograph import, File > Open, a dropped PNG) filled memory and never returned. Inlining costs the
# square of the nodes (22,000 took 30 s); real workflows have hundreds.
MAX_EXPANDED_NODES = 5_000
MAX_SUBGRAPH_DEPTH = 16
NESTED_TOO_DEEP = f"subgraphs nest more than {MAX_SUBGRAPH_DEPTH} levels deep (or contain themselves)"
DUPLICATE_ID = "the file has another node with id"


@dataclass(frozen=True)
class Ref:
    """A link to output `slot` of node `node`."""
    node: str
    slot: int


@dataclass
class CNode:
    id: str
    class_type: str
    title: str = ""
    inputs: Dict[str, Any] = field(default_factory=dict)    # name -> literal or Ref
    widgets: Any = None                                     # raw widgets_values when names are unknown
    pos: Optional[Tuple[float, float]] = None
    out_types: List[str] = field(default_factory=list)
    mode: int = 0
    missing_widgets: Tuple[str, ...] = ()       # named widgets the file's widgets_values stops short of
    pack: str = ""                              # the custom node pack ComfyUI recorded for it (cnr_id / aux_id)
    out_names: List[str] = field(default_factory=list)     # its outputs' names, for a placeholder's sockets
    controls: Dict[str, str] = field(default_factory=dict)  # seed widget -> its "control after generate"


@dataclass
class Flat:
    nodes: Dict[str, CNode]
    notes: List[Dict[str, Any]] = field(default_factory=list)
    groups: List[Dict[str, Any]] = field(default_factory=list)
    dropped: List[Tuple[str, str, str, str]] = field(default_factory=list)   # id, class, title, why
    # nodes Kinograph has no mapping for whose every used output has a linked input of its type, as ComfyUI's bypass
    # needs: passed through when the user asks (bypass_unmapped), else named so that the report can offer it
    bypassable: Dict[str, str] = field(default_factory=dict)    # id -> the types it passes
    bypassed: List[Tuple[str, str, str, str]] = field(default_factory=list)  # id, class, title, types, at the user's word
    # node id -> what its report line must add: inputs whose link leads nowhere (a node or link the file lacks, a
    # muted node, a bypass with nothing to pass on; ComfyUI runs without them too), a second node of the same id
    remarks: Dict[str, List[str]] = field(default_factory=dict)
    # nodes whose every link goes to a muted node, or into what a node bypassed at the user's word does not pass on:
    # ComfyUI runs a node only for an output that needs it, so these would not run there either
    orphaned: set = field(default_factory=set)


@dataclass(frozen=True)
class Lost:
    """Why a linked input receives nothing."""
    why: str


# API prompts name no types: what a node passes on is read from input names, the same name first (model -> model),
# else the one input of the consumer's kind
PASS_KINDS = ({"model"}, {"clip"}, {"vae"}, {"image", "images", "frames", "pixels"},
              {"conditioning", "positive", "negative"}, {"samples", "latent", "latent_image"})


def _api_pass(cn: CNode, name: str) -> Optional[str]:
    """The input of `cn` that a consumer's input `name` would take if `cn` were bypassed, or None."""
    if isinstance(cn.inputs.get(name), Ref):
        return name
    kind = next((k for k in PASS_KINDS if name in k), set())
    found = [k for k, v in cn.inputs.items() if k in kind and isinstance(v, Ref)]
    return found[0] if len(found) == 1 else None


def _api_bypass(flat: Flat, known, bypass: bool) -> None:
    """Nodes of no known class whose every consumer can take one of their inputs instead: bypassed on request
    (consumers relinked past them, and what then feeds nothing dropped, as ComfyUI runs only what an output needs),
    else named as bypassable."""
    nodes = flat.nodes
    # Who reads each node, kept as links change: asking every node of every node cost the square of their number,
    # the cube for a chain dropped one link a pass (a 1.3 MB API prompt of 20,000 nodes did not finish in 120 s).
    order = {nid: i for i, nid in enumerate(nodes)}
    readers: Dict[str, List[Tuple[CNode, str]]] = {}

    def link(c: CNode, k: str) -> None:
        v = c.inputs[k]
        if isinstance(v, Ref) and v.node in nodes:
            readers.setdefault(v.node, []).append((c, k))

    def unlink_inputs(cn: CNode) -> None:
        for k, v in cn.inputs.items():
            if isinstance(v, Ref) and v.node in readers:
                readers[v.node] = [(c, ck) for c, ck in readers[v.node] if not (c is cn and ck == k)]

    def uses(nid: str) -> List[Tuple[CNode, str]]:
        return sorted(readers.get(nid, ()), key=lambda ck: (order[ck[0].id], list(ck[0].inputs).index(ck[1])))

    for c in nodes.values():
        for k in c.inputs:
            link(c, k)
    fed = {nid for nid in nodes if readers.get(nid)}
    for nid in sorted(nodes, key=lambda n: (len(n), n)):
        cn = nodes.get(nid)
        if cn is None or known(cn.class_type) is not None:
            continue
        consumers = uses(nid)
        passes = {k: _api_pass(cn, k) for _, k in consumers}
        if not consumers or None in passes.values():
            continue
        if not bypass:
            flat.bypassable[nid] = ", ".join(dict.fromkeys(p.upper() for p in passes.values()))
            continue
        for c, k in consumers:
            c.inputs[k] = cn.inputs[passes[k]]
            link(c, k)
        readers.pop(nid, None)
        unlink_inputs(cn)
        del nodes[nid]
        flat.bypassed.append((nid, cn.class_type, cn.title, ", ".join(dict.fromkeys(p.upper()
                                                                                     for p in passes.values()))))
    # What feeds nothing now goes, and then what fed only that: one pass a link of a chain, as before, but each pass
    # looks only at the sources of what the last one dropped.
    candidates = list(nodes)
    while candidates:
        dropped = [nid for nid in candidates if nid in nodes and nid in fed and not readers.get(nid)]
        candidates = []
        for nid in dropped:
            cn = nodes.pop(nid)
            unlink_inputs(cn)
            candidates += [v.node for v in cn.inputs.values() if isinstance(v, Ref) and v.node in nodes]
            flat.dropped.append((nid, cn.class_type, cn.title,
                                 "not run: it only feeds nodes that do not run (muted, or bypassed), as in ComfyUI"))
        candidates = sorted(dict.fromkeys(candidates), key=order.__getitem__)


def from_api(prompt: Dict[str, Any], known=None, bypass_unmapped: bool = False) -> Flat:
    """`known(class_type)` is None for a class Kinograph does not map (see from_ui); with `bypass_unmapped` such a
    node is bypassed when every consumer can take one of its inputs instead."""
    _check_size(len(prompt))
    flat = _from_api(prompt)
    if known is not None:
        _api_bypass(flat, known, bypass_unmapped)
    return flat


def _from_api(prompt: Dict[str, Any]) -> Flat:
    nodes, lost = {}, {}
    for nid, body in prompt.items():
        if not isinstance(body, dict) or not isinstance(body.get("class_type"), str):
            raise ComfyImportError(f"API prompt node {nid!r} has no class_type")
        inputs = {}
        for k, v in (body.get("inputs") or {}).items():
            if isinstance(v, list) and len(v) == 2 and isinstance(v[1], int) and isinstance(v[0], (str, int)):
                if str(v[0]) not in prompt:
                    lost.setdefault(str(nid), []).append(_lost_note(k, f"it is linked to node {v[0]}, which is not "
                                                                       "in the file"))
                    continue
                inputs[k] = Ref(str(v[0]), v[1])
            else:
                inputs[k] = v
        title = ((body.get("_meta") or {}).get("title") or "") if isinstance(body.get("_meta"), dict) else ""
        nodes[str(nid)] = CNode(str(nid), body["class_type"], title, inputs)
    return Flat(nodes, remarks=lost)


def _lost_note(name: str, why: str) -> str:
    return f"input {name} receives nothing: {why}; connect it by hand if it is needed"


# -- UI format ---------------------------------------------------------------------------------------
def _links(raw) -> Dict[int, Tuple[str, int, str, int]]:
    """link id -> (origin node, origin slot, target node, target slot); both list and dict layouts."""
    out = {}
    for l in raw or []:
        try:
            if isinstance(l, dict):
                out[l["id"]] = (str(l["origin_id"]), int(l["origin_slot"]), str(l["target_id"]), int(l["target_slot"]))
            elif isinstance(l, list) and len(l) >= 5 and l[0] is not None:
                out[l[0]] = (str(l[1]), int(l[2]), str(l[3]), int(l[4]))
        except (KeyError, TypeError, ValueError):
            continue        # a damaged row links nothing; an input that names it is reported as receiving nothing
    return out


@dataclass
class _UINode:
    raw: Dict[str, Any]
    id: str
    inputs: List[Dict[str, Any]]        # each: name, type, link (id or None), widget name or None
    outputs: List[Dict[str, Any]]


def _ui_nodes(raw_nodes, remarks, prefix="") -> Dict[str, _UINode]:
    out = {}
    for n in raw_nodes:
        if not isinstance(n, dict) or "id" not in n or "type" not in n:
            raise ComfyImportError("a workflow node has no `id` or `type`; the file is damaged")
        nid = prefix + str(n["id"])
        if nid in out:
            # two nodes of one id (a damaged or hand-merged file): both are kept, as ComfyUI keeps both by giving
            # the second a new id; a link naming the id can only go to one of them, the first
            k = 2
            while f"{nid}-{k}" in out:
                k += 1
            remarks.setdefault(f"{nid}-{k}", []).append(
                f"{DUPLICATE_ID} {nid} ({out[nid].raw['type']}): this one is imported as "
                f"#{nid}-{k}, and links from node {nid} go to the other; check its connections")
            nid = f"{nid}-{k}"
        ins = [{"name": i.get("name", ""), "type": i.get("type", ""), "link": i.get("link"),
                "widget": (i.get("widget") or {}).get("name")} for i in (n.get("inputs") or [])]
        outs = [{"name": o.get("name", ""), "type": o.get("type", "")} for o in (n.get("outputs") or [])]
        out[nid] = _UINode(n, nid, ins, outs)
    return out


def _expand_subgraphs(data: Dict[str, Any], remarks: Dict[str, List[str]],
                      widget_names=lambda t: None) -> Tuple[List[Dict], List[Any]]:
    """Inline every subgraph instance, and every group node instance (ComfyUI's older bundles, made subgraphs by
    groupnodes.py): inner node ids become "<instance>:<inner>" (ComfyUI's own execution ids), links through the
    subgraph's input and output nodes are joined up."""
    defs = {s.get("id"): s for s in ((data.get("definitions") or {}).get("subgraphs") or []) if isinstance(s, dict)}
    nodes = [dict(n) for n in data.get("nodes") or []]

    def spans(class_type, values):
        names = widget_names(class_type)
        return None if names is None else _widget_spans(names, values)
    defs.update(group_definitions(nodes, data.get("extra"), remarks, spans))
    _check_size(_expanded_count(nodes, defs), " with its subgraphs expanded (each subgraph counts its nodes every "
                                              "time it is placed)")
    # a row that is neither (null, a number) links nothing; the inputs that named it say so in the report
    links = [list(l) if isinstance(l, list) else dict(l) for l in data.get("links") or [] if isinstance(l, (list, dict))]
    def held(node, inp, depth: int) -> Optional[Tuple[Any]]:
        """(value,) that widget input `inp` of `node` gives when the link into it carries nothing: its widget's value,
        or a subgraph instance's own for that input; None where it cannot be read (a class of unknown widgets)."""
        sub = defs.get(node.get("type"))
        if sub is not None:
            if depth >= MAX_SUBGRAPH_DEPTH:
                return None
            slot = next((k for k, i in enumerate(sub.get("inputs") or [])
                         if isinstance(i, dict) and i.get("name") == inp.get("name")), None)
            values = _instance_values(node, sub, lambda n, i: held(n, i, depth + 1), only=slot)[0]
            return (values[slot],) if slot in values else None
        name = (inp.get("widget") or {}).get("name")
        values = node.get("widgets_values")
        if isinstance(values, dict):
            return (values[name],) if name in values else None
        names = widget_names(node.get("type"))
        if not isinstance(values, list) or names is None:
            return None
        return next(((values[a],) for n, a, _ in _widget_spans(names, values) if n == name), None)

    for _ in range(MAX_SUBGRAPH_DEPTH):                   # nested subgraphs: one level per pass
        inst = [n for n in nodes if n.get("type") in defs]
        if not inst:
            return nodes, links
        table, by_id, inner = _LinkTable(links), {}, []
        for n in nodes:
            by_id.setdefault(str(n.get("id")), []).append(n)
        for n in inst:
            sub = defs[n["type"]]
            inner += _inline(n, sub, by_id, table, *_instance_values(n, sub, lambda m, i: held(m, i, 1)), remarks)
        placed = {id(n) for n in inst}
        nodes = [n for n in nodes if id(n) not in placed] + inner
        links = table.rows()
    raise ComfyImportError(NESTED_TOO_DEEP)


class _LinkTable:
    """A pass's outer links, indexed by the nodes they join, as instances are inlined one after another: each
    instance finds its own links without reading them all (a file of 4,900 chained instances, reading every link
    for each, hung the import)."""
    def __init__(self, links):
        self.raw = links
        self.norm = _links(links)
        self.touching: Dict[str, List[Any]] = {}
        for lid, (o, _, t, _) in self.norm.items():
            self.touching.setdefault(o, []).append(lid)
            self.touching.setdefault(t, []).append(lid)
        self.gone: set = set()
        self.next_id = max([k for k in self.norm if isinstance(k, int)] + [0]) + 1

    def of(self, node_id: str):
        """(link id, (origin, origin slot, target, target slot)) of every live link to or from the node."""
        return [(lid, self.norm[lid]) for lid in dict.fromkeys(self.touching.get(node_id, ()))
                if lid not in self.gone and lid in self.norm]

    def add(self, src, src_slot, dst, dst_slot) -> int:
        lid, self.next_id = self.next_id, self.next_id + 1
        self.raw.append([lid, src, src_slot, dst, dst_slot, "*"])
        self.norm[lid] = (str(src), int(src_slot), str(dst), int(dst_slot))
        self.touching.setdefault(str(src), []).append(lid)
        self.touching.setdefault(str(dst), []).append(lid)
        return lid

    def rows(self):
        return [l for l in self.raw if (l[0] if isinstance(l, list) else l["id"]) not in self.gone]


def _check_size(total: int, how: str = "") -> None:
    if total > MAX_EXPANDED_NODES:
        raise ComfyImportError(f"it has {total:,} nodes{how}; a workflow may have at most {MAX_EXPANDED_NODES:,}: the "
                               f"file is damaged or made to hang the import")


def _expanded_count(nodes, defs) -> int:
    """How many nodes `nodes` become with every subgraph instance inlined, counted without inlining (each
    definition's count once)."""
    counts: Dict[Any, int] = {}

    def count(items, depth: int) -> int:
        if depth > MAX_SUBGRAPH_DEPTH:
            raise ComfyImportError(NESTED_TOO_DEEP)
        total = 0
        for n in items:
            sub_id = n.get("type") if isinstance(n, dict) else None
            if not isinstance(sub_id, (str, int)) or sub_id not in defs:
                total += 1
                continue
            if sub_id not in counts:
                counts[sub_id] = count(defs[sub_id].get("nodes") or [], depth + 1)
            total += counts[sub_id]
        return total
    return count(nodes, 0)


def _inline(inst, sub, outer, table: _LinkTable, promoted, unread, remarks):
    """The instance's subgraph nodes, renamed and joined to the outer links in `table` (which gains the links
    through the subgraph and loses the instance's own); `outer` (node id -> nodes) gains them too. `promoted`:
    subgraph input k -> what it gives when nothing outside is linked to it; `unread`: k -> the node whose widget holds
    that value where it cannot be read (_instance_values)."""
    pid = f"{inst['id']}:"
    own = table.of(str(inst["id"]))
    inner_links = _links(sub.get("links"))
    _mend_lost_outputs(sub, inner_links, pid, remarks)
    inner_nodes = []
    for n in sub.get("nodes") or []:
        m = dict(n)
        m["id"] = pid + str(n["id"])
        m["_title_prefix"] = inst.get("title") or sub.get("name") or ""
        if n.get("mode") in (MODE_NEVER, MODE_BYPASS) or inst.get("mode") not in (None, 0):
            m["mode"] = n.get("mode") if n.get("mode") in (MODE_NEVER, MODE_BYPASS) else inst.get("mode")
        m["inputs"] = [dict(i) for i in n.get("inputs") or []]
        inner_nodes.append(m)
    # Where the instance stood, not where the subgraph's own canvas had them: Stable Audio 3's sampler landed 1,000
    # px above the rest, and basic_image_color_adjustment's nine subgraphs piled up far from their empty groups.
    place_at(inner_nodes, inst.get("pos"))
    inner = {m["id"]: m for m in inner_nodes}
    # which outer link feeds the subgraph's input k; which outer links leave its output k. The instance lists
    # only some of the subgraph's inputs (widget inputs left unlinked are not there), so its slots are matched
    # to the subgraph's inputs by name
    sub_slot = {i.get("name"): k for k, i in enumerate(sub.get("inputs") or []) if isinstance(i, dict)}
    inst_inputs = inst.get("inputs") or []

    def slot_in_sub(t_slot):
        name = inst_inputs[t_slot].get("name") if t_slot < len(inst_inputs) else None
        return sub_slot.get(name, t_slot)
    into = {slot_in_sub(t_slot): (o, o_slot) for lid, (o, o_slot, t, t_slot) in own if t == str(inst["id"])}
    out_of = {}
    for lid, (o, o_slot, t, t_slot) in own:
        if o == str(inst["id"]):
            out_of.setdefault(o_slot, []).append((lid, t, t_slot))
    table.gone.update(lid for lid, _ in own)
    for lid, (o, o_slot, t, t_slot) in inner_links.items():
        if o == "-10":                                       # from the subgraph's input k
            if o_slot in promoted and o_slot not in into:    # unconnected: the instance's widget gives its value
                src, src_slot = f"{pid}input{o_slot}", 0
                if src not in inner:
                    inner[src] = {"id": src, "type": "PrimitiveNode", "mode": 0, "inputs": [],
                                  "outputs": [{"name": "", "type": "*"}], "widgets_values": [promoted[o_slot]]}
                    inner_nodes.append(inner[src])
            elif o_slot not in into:
                _unlink(inner.get(pid + t), t_slot)          # unconnected: the inner widget keeps its value
                target = inner.get(pid + t)
                if o_slot in unread and target is not None and t_slot < len(target["inputs"]) \
                        and not target["inputs"][t_slot].get("widget"):
                    holder = unread[o_slot]
                    remarks.setdefault(pid + t, []).append(_lost_note(
                        target["inputs"][t_slot].get("name", ""),
                        f"it takes the subgraph's input {_sub_input_name(sub, o_slot)!r}, which nothing outside is "
                        f"linked to; ComfyUI gives it the value of that input's widget, held by "
                        f"{holder.get('type')} #{pid}{holder.get('id')}, a class Kinograph does not know, so which "
                        f"of its stored values that widget's is cannot be told"))
                continue
            else:
                src, src_slot = into[o_slot]
        else:
            src, src_slot = pid + o, o_slot
        if t == "-20":                                       # to the subgraph's output k
            for outer_lid, dst, dst_slot in out_of.get(t_slot, []):
                _relink(outer.get(str(dst), ()), dst, dst_slot, outer_lid, table.add(src, src_slot, dst, dst_slot))
            continue
        _relink_inner(inner.get(pid + t), t_slot, lid, table.add(src, src_slot, pid + t, t_slot))
    for m in inner_nodes:
        outer.setdefault(str(m["id"]), []).append(m)
    return inner_nodes


def _mend_lost_outputs(sub, inner_links, pid, remarks) -> None:
    """A subgraph output whose every link id is missing from the subgraph's links (ComfyUI's video_ltx2_i2v_lora
    template names link 265 for its VIDEO; the file has none, and its CreateVideo's output lists no links) is joined
    to the one inner output of its type that leads nowhere, with a remark saying so; none or several: left lost."""
    for k, out in enumerate(sub.get("outputs") or []):
        ids = out.get("linkIds") if isinstance(out, dict) else None
        if not ids or any(l in inner_links for l in ids):
            continue
        free = [(n, s) for n in sub.get("nodes") or [] if n.get("mode") not in (MODE_NEVER, MODE_BYPASS)
                for s, o in enumerate(n.get("outputs") or [])
                if isinstance(o, dict) and o.get("type") == out.get("type") and not o.get("links")]
        if len(free) == 1:
            n, s = free[0]
            inner_links[("mended", k)] = (str(n["id"]), s, "-20", k)
            remarks.setdefault(pid + str(n["id"]), []).append(
                f"the subgraph's output {out.get('name')} names link {ids[0]}, which the file's subgraph lacks; this "
                f"node's {out.get('type')}, the only one leading nowhere, is taken as that output: check it")


def _instance_values(inst, sub, held, only=None) -> Tuple[Dict[int, Any], Dict[int, Dict[str, Any]]]:
    """Subgraph input k -> the value ComfyUI gives every node inside that the input feeds when nothing outside is
    linked to it: the value of the instance's widget for it. Files that show the subgraph's widget inputs as widgets of
    the instance keep those values in its `widgets_values` (one each, in input order); newer ones (`proxyWidgets`)
    keep none there, as the instance's widget shows the widget of the first node inside the input links to that has
    one (ComfyUI's frontend reads it through `getWidgetFromSlot`), so that widget's value goes to the others too: a
    formula's plain input beside it, another widget. `held(node, input)` reads that widget: (value,) or None; the
    second dict names the node whose widget could not be read, for each input left without a value. `only`: the one
    input wanted (a nested instance's: reading all of them at every level would multiply)."""
    inner = {str(n.get("id")): n for n in sub.get("nodes") or [] if isinstance(n, dict)}
    by_link = {lid: (t, t_slot) for lid, (o, _, t, t_slot) in _links(sub.get("links")).items() if o == "-10"}
    order: Dict[int, List[Any]] = {}
    for lid, (o, o_slot, _, _) in _links(sub.get("links")).items():
        if o == "-10":
            order.setdefault(o_slot, []).append(lid)
    for k, i in enumerate(sub.get("inputs") or []):
        if isinstance(i, dict) and isinstance(i.get("linkIds"), list):
            order[k] = [lid for lid in i["linkIds"] if lid in by_link] + \
                [lid for lid in order.get(k, []) if lid not in i["linkIds"]]

    def widget_input(lid):
        t, slot = by_link[lid]
        ins = (inner.get(t) or {}).get("inputs") or []
        return (inner[t], ins[slot]) if slot < len(ins) and isinstance(ins[slot], dict) and ins[slot].get("widget") \
            else None
    firsts = {k: next((w for lid in lids if (w := widget_input(lid))), None) for k, lids in order.items()}
    firsts = {k: w for k, w in firsts.items() if w is not None}
    values = inst.get("widgets_values")
    if isinstance(values, list) and values and len(values) == len(firsts):
        return dict(zip(sorted(firsts), values)), {}
    out, unread = {}, {}
    for k, (node, inp) in firsts.items():
        if only is not None and k != only:
            continue
        value = held(node, inp)
        if value is not None:
            out[k] = value[0]
        else:
            unread[k] = node
    return out, unread


def _sub_input_name(sub, slot) -> str:
    ins = sub.get("inputs") or []
    return str(ins[slot].get("name", slot)) if slot < len(ins) and isinstance(ins[slot], dict) else str(slot)


def _unlink(node, slot):
    if node is not None and slot < len(node["inputs"]):
        node["inputs"][slot] = dict(node["inputs"][slot], link=None)


def _relink_inner(node, slot, old, new):
    if node is not None and slot < len(node["inputs"]):
        node["inputs"][slot] = dict(node["inputs"][slot], link=new)


def _relink(nodes, dst, slot, old, new):
    for n in nodes:
        if str(n.get("id")) == str(dst):
            ins = n.get("inputs") or []
            for k, i in enumerate(ins):
                if i.get("link") == old:
                    ins[k] = dict(i, link=new)
            n["inputs"] = ins


def _passes(n: "_UINode") -> Optional[str]:
    """The types a node could pass through if bypassed (each used output has a linked input of its type), or None."""
    used = [o["type"] for k, o in enumerate(n.outputs)
            if k < len(n.raw.get("outputs") or []) and (n.raw["outputs"][k] or {}).get("links")]
    have = {i["type"] for i in n.inputs if i["link"] is not None}
    if not used or any(t in ("*", "") or t not in have for t in used):
        return None
    return ", ".join(dict.fromkeys(used))


def _groups_of(node: "_UINode", groups) -> set:
    pos = _pos(node.raw.get("pos"))
    found = set()
    for k, g in enumerate(groups):
        box = g.get("bounding") if isinstance(g, dict) else None
        if pos and isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box) \
                and box[0] <= pos[0] <= box[0] + box[2] and box[1] <= pos[1] <= box[1] + box[3]:
            found.add(k)
    return found


def _reaches(sender: "_UINode", node: "_UINode", name: str, groups) -> bool:
    """Whether a broadcaster's restrictions let it reach input `name` of `node`: same (1) or other (2) group or
    colour, and the title / input / group patterns of Anything Everywhere? (its widgets) or of its properties."""
    props = sender.raw.get("properties") if isinstance(sender.raw.get("properties"), dict) else {}
    props = {**props, **(props.get("ue_properties") if isinstance(props.get("ue_properties"), dict) else {})}
    for key, mine, theirs in (("group_restricted", _groups_of(sender, groups), _groups_of(node, groups)),
                              ("color_restricted", sender.raw.get("color"), node.raw.get("color"))):
        rule = props.get(key)
        same = bool(mine & theirs) if isinstance(mine, set) else mine == theirs
        if (rule in (True, 1) and not same) or (rule == 2 and same):
            return False
    patterns = dict(zip(("title_regex", "input_regex", "group_regex"), sender.raw.get("widgets_values") or [])) \
        if sender.raw["type"] == "Anything Everywhere?" else {}
    patterns.update({k: props[k] for k in ("title_regex", "input_regex", "group_regex") if props.get(k)})
    texts = {"title_regex": [node.raw.get("title") or node.raw["type"]], "input_regex": [name],
             "group_regex": [str(groups[k].get("title", "")) for k in _groups_of(node, groups)]}
    for key, pattern in patterns.items():
        if pattern and key in texts:
            try:
                if not any(re.search(str(pattern), t) for t in texts[key]):
                    return False
            except re.error:
                return False
    return True


def _broadcast(data, nodes: Dict[str, "_UINode"], links, remarks) -> None:
    """Link what cg-use-everywhere broadcasts. Its version 7 writes the links it resolved (extra.ue_links, the
    inputs naming link ids the file's links lack); for older files its rules are applied here: each unconnected input
    (not a widget) takes the one broadcast of its type that reaches it (Prompts Everywhere: positive to inputs named
    pos..., negative to neg...). Two that reach one input are named, not guessed between."""
    extra = data.get("extra") if isinstance(data.get("extra"), dict) else {}
    if isinstance(extra.get("ue_links"), list):
        for k, e in enumerate(extra["ue_links"]):
            try:
                down, slot, up, up_slot = str(e["downstream"]), int(e["downstream_slot"]), str(e["upstream"]), \
                    int(e["upstream_slot"])
            except (KeyError, TypeError, ValueError):
                continue
            # (only an input the file's own links leave open: a stale or damaged record does not replace a link)
            if down in nodes and 0 <= slot < len(nodes[down].inputs) and nodes[down].inputs[slot]["link"] not in links:
                links[("ue", k)] = (up, up_slot, down, slot)
                nodes[down].inputs[slot]["link"] = ("ue", k)
        return
    groups = [g for g in data.get("groups") or [] if isinstance(g, dict)]
    senders = []                                # (type, name hint, link id, broadcaster)
    for n in nodes.values():
        if n.raw["type"] not in EVERYWHERE or n.raw.get("mode", 0) in (MODE_NEVER, MODE_BYPASS):
            continue
        for k, i in enumerate(n.inputs):
            if i["link"] not in links:
                continue
            o, o_slot = links[i["link"]][:2]
            typ = i["type"] if i["type"] not in ("*", "") else \
                (nodes[o].outputs[o_slot]["type"] if o in nodes and o_slot < len(nodes[o].outputs) else "")
            hint = ("pos", "neg")[k] if n.raw["type"] == "Prompts Everywhere" and k < 2 else None
            senders.append((typ, hint, i["link"], n))
    if not senders:
        return
    for nid, n in nodes.items():
        if n.raw["type"] in EVERYWHERE or n.raw["type"] in NOTES:
            continue
        props = n.raw.get("properties") if isinstance(n.raw.get("properties"), dict) else {}
        closed = (props.get("ue_properties") or {}).get("input_ue_unconnectable") or {} \
            if isinstance(props.get("ue_properties"), dict) else {}
        for k, i in enumerate(n.inputs):
            if i["link"] is not None or i["widget"] or closed.get(i["name"]):
                continue
            found = [s for s in senders if s[0] == i["type"] and (s[1] is None or s[1] in i["name"].lower())
                     and _reaches(s[3], n, i["name"], groups)]
            if len(found) == 1:
                o, o_slot = links[found[0][2]][:2]
                links[("ue", nid, k)] = (o, o_slot, nid, k)
                i["link"] = ("ue", nid, k)
            elif found:
                remarks.setdefault(nid, []).append(
                    f"input {i['name']} is reached by {len(found)} Anything Everywhere broadcasts of {i['type']} ("
                    + ", ".join(f"#{s[3].id}" for s in found) + "): link it by hand to the one meant")


def from_ui(data: Dict[str, Any], widget_names, bypass_unmapped: bool = False) -> Flat:
    """`widget_names(class_type)` gives the positional widget names of a known class, or None. With `bypass_unmapped`
    a node of no known class that can pass its inputs through is bypassed, as ComfyUI bypasses a node."""
    flat = Flat({})
    raw_nodes, raw_links = _expand_subgraphs(data, flat.remarks, widget_names)
    nodes = _ui_nodes(raw_nodes, flat.remarks)
    links = _links(raw_links)
    _broadcast(data, nodes, links, flat.remarks)
    for g in data.get("groups") or []:
        if isinstance(g, dict):
            flat.groups.append(g)

    def title(n: _UINode) -> str:
        t = n.raw.get("title") or ""
        prefix = n.raw.get("_title_prefix")
        return f"{prefix} / {t}" if prefix and t else t

    # 1. editor-only nodes become values or disappear; muted nodes are dropped
    literal: Dict[Tuple[str, int], Any] = {}
    literal_controls: Dict[Tuple[str, int], Optional[str]] = {}
    passthrough: Dict[str, Optional[int]] = {}       # reroute / bypassed node -> how outputs map to inputs
    sets: Dict[str, str] = {}                        # SetNode name -> node id
    for nid, n in nodes.items():
        t = n.raw["type"]
        mode = n.raw.get("mode", 0)
        if t in NOTES:
            values = n.raw.get("widgets_values")
            # a list as ComfyUI writes it; some note nodes of custom packs store a dict
            text = (values or [""])[0] if isinstance(values, list) else \
                (values.get("text", "") if isinstance(values, dict) else values or "")
            flat.notes.append({"id": nid, "title": n.raw.get("title") or t, "text": str(text),
                               "pos": n.raw.get("pos"), "size": n.raw.get("size")})
        elif t in PRIMITIVES:
            vals = n.raw.get("widgets_values") or [None]
            literal[(nid, 0)] = vals[0] if isinstance(vals, list) else vals
            # a primitive on a seed has its own "control after generate", the one ComfyUI's editor applies (the
            # seed widget it drives keeps a stale one); a subgraph's promoted widget (made a primitive on
            # expansion) holds none, and its inner seed widget's stands
            literal_controls[(nid, 0)] = _controls(["seed"], vals[:2]).get("seed") if isinstance(vals, list) else None
        elif t in EVERYWHERE:
            flat.dropped.append((nid, t, title(n), "cg-use-everywhere's broadcast: what it receives is linked to the "
                                                   "inputs it reaches, as ComfyUI's editor links them when it queues"))
        elif t in REROUTES or t in GETS:
            passthrough[nid] = None
            if t == "SetNode" and n.raw.get("widgets_values"):
                sets.setdefault(str(n.raw["widgets_values"][0]), nid)
        elif mode == MODE_NEVER:
            flat.dropped.append((nid, t, title(n), "muted in ComfyUI (never runs)"))
        elif mode == MODE_BYPASS:
            passthrough[nid] = None
            flat.dropped.append((nid, t, title(n), "bypassed in ComfyUI: its inputs pass straight through"))
        elif t in CONTEXTS or t in SWITCHES:
            passthrough[nid] = None
        elif widget_names(t) is None and not t.startswith(("workflow>", "workflow/")) and _passes(n):
            if bypass_unmapped:
                passthrough[nid] = None
                flat.bypassed.append((nid, t, title(n), _passes(n)))
            else:
                flat.bypassable[nid] = _passes(n)

    def named(o: str) -> str:
        n = nodes[o]
        t = n.raw.get("title")
        return f"{n.raw['type']} #{o}" + (f" \"{t}\"" if t and t != n.raw["type"] else "")

    def source(link_id, depth=0) -> Any:
        """What feeds a link after reroutes, primitives and bypasses: Ref, a literal, or Lost (why nothing)."""
        if link_id not in links:
            return Lost(f"its link {link_id} is missing from the file's links")
        if depth > 256:
            return Lost("it passes through more than 256 reroutes or bypassed nodes")
        o, o_slot, _, _ = links[link_id]
        if (o, o_slot) in literal:
            return ("literal", literal[(o, o_slot)], literal_controls.get((o, o_slot)))
        n = nodes.get(o)
        if n is None:
            return Lost(f"it is linked to node {o}, which is not in the file")
        if o in passthrough:
            if n.raw["type"] in GETS:
                name = str((n.raw.get("widgets_values") or [""])[0])
                if name not in sets:
                    return Lost(f"{named(o)} reads {name!r}, which no SetNode in the file sets")
                o = sets[name]
                n = nodes[o]
            if n.raw["type"] in REROUTES:
                if not n.inputs or n.inputs[0]["link"] is None:
                    return Lost(f"it comes through {named(o)}, which has nothing connected")
                return source(n.inputs[0]["link"], depth + 1)
            if n.raw["type"] in SWITCHES and n.raw.get("mode", 0) != MODE_BYPASS:
                for i in n.inputs:
                    if i["link"] is not None and not isinstance(found := source(i["link"], depth + 1), Lost):
                        return found
                return Lost(f"{named(o)} passes on nothing: none of its inputs receives anything")
            if n.raw["type"] in CONTEXTS and n.raw.get("mode", 0) != MODE_BYPASS:
                return context_field(n, n.outputs[o_slot]["name"] if o_slot < len(n.outputs) else "", depth + 1)
            want = n.outputs[o_slot]["type"] if o_slot < len(n.outputs) else None
            cands = [k for k, i in enumerate(n.inputs) if i["link"] is not None and i["type"] == want]
            if not cands:
                return Lost(f"{named(o)}, which feeds it, is bypassed in ComfyUI and has no connected {want} input "
                            "to pass on")
            k = o_slot if o_slot in cands else cands[0]
            return source(n.inputs[k]["link"], depth + 1)
        if n.raw.get("mode", 0) == MODE_NEVER:
            return Lost(f"{named(o)}, which feeds it, is muted in ComfyUI")
        if n.raw["type"] in NOTES:
            return Lost(f"it is linked to {named(o)}, a note")
        return Ref(o, o_slot)

    def context_field(n: _UINode, field: str, depth: int, chain: Tuple[str, ...] = ()) -> Any:
        """An rgthree context's output `field`: its own input of that name (images for IMAGE), else the field of the
        context its base_ctx comes from (through reroutes)."""
        chain += (n.id,)
        def key(name: str) -> str:
            return name.lower().rstrip("s")
        own = next((i for i in n.inputs if i["name"] != "base_ctx" and key(i["name"]) == key(field)
                    and i["link"] is not None), None)
        if own is not None:
            return source(own["link"], depth)
        base = next((i["link"] for i in n.inputs if i["name"] == "base_ctx" and i["link"] is not None), None)
        while base in links and depth <= 256:
            up = nodes.get(links[base][0])
            if up is None or up.raw["type"] not in REROUTES or not up.inputs:
                break
            base, depth = up.inputs[0]["link"], depth + 1
        up = nodes.get(links[base][0]) if base in links else None
        if up is not None and up.id in chain:
            return Lost(f"{named(chain[0])} carries no {field}: its chain of contexts (" +
                        ", ".join(f"#{c}" for c in chain + (up.id,)) + ") comes back on itself through base_ctx, "
                        f"and none along it has its {field.lower()} input connected")
        if up is None or up.raw["type"] not in CONTEXTS or depth > 256:
            return Lost(f"{named(chain[0])} carries no {field}: no context along its chain ("
                        + ", ".join(f"#{c}" for c in chain) + f") has its {field.lower()} input connected")
        return context_field(up, field, depth + 1, chain)

    # ComfyUI runs a node only for an output that needs it: one whose every link goes to a muted node, into what a
    # node bypassed at the user's word does not pass on, or to such a node itself, does not run (a loader left
    # behind by a bypassed IP-Adapter): it is left out, whether Kinograph could map it or not
    user_bypassed = {b[0]: set(b[3].split(", ")) for b in flat.bypassed}
    targets: Dict[str, List[Tuple[str, Optional[str]]]] = {}
    for o, _, t, t_slot in links.values():
        if o in nodes and t in nodes:
            ins = nodes[t].inputs
            targets.setdefault(o, []).append((t, ins[t_slot]["type"] if t_slot < len(ins) else None))
    changed = True
    while changed:
        changed = False
        for nid, outs in targets.items():
            if nid in flat.orphaned or nid in passthrough or nodes[nid].raw.get("mode", 0) == MODE_NEVER:
                continue
            if all(nodes[t].raw.get("mode", 0) == MODE_NEVER or t in flat.orphaned or
                   (t in user_bypassed and kind not in user_bypassed[t]) for t, kind in outs):
                flat.orphaned.add(nid)
                changed = True
    for nid in sorted(flat.orphaned):
        flat.dropped.append((nid, nodes[nid].raw["type"], title(nodes[nid]),
                             "not run: it only feeds nodes that do not run (muted, or bypassed), as in ComfyUI"))

    # 2. the executable nodes, widgets named, links resolved
    for nid, n in nodes.items():
        t = n.raw["type"]
        if t in NOTES or t in PRIMITIVES or t in EVERYWHERE or nid in passthrough \
                or n.raw.get("mode", 0) == MODE_NEVER or nid in flat.orphaned:
            continue
        cn = CNode(nid, t, title(n), pos=_pos(n.raw.get("pos")), out_types=[o["type"] for o in n.outputs],
                   mode=n.raw.get("mode", 0), out_names=[str(o.get("name") or "") for o in n.outputs])
        props = n.raw.get("properties") if isinstance(n.raw.get("properties"), dict) else {}
        pack = props.get("cnr_id") or props.get("aux_id")
        if isinstance(pack, str) and pack:
            cn.pack = pack + (f" {props['ver']}" if isinstance(props.get("ver"), str) and props["ver"] else "")
        values = n.raw.get("widgets_values")
        names = widget_names(t)
        if isinstance(values, dict):                  # VideoHelperSuite stores its widgets by name
            cn.inputs.update({k: v for k, v in values.items() if k != "videopreview"})
        elif isinstance(values, list):
            if names is None:
                cn.widgets = list(values)
            else:
                by_name = _name_widgets(names, values)
                cn.inputs.update(by_name)
                cn.controls = _controls(names, values)
                cn.missing_widgets = tuple(k for k in names if k not in by_name)
            # rgthree's Power Lora Loader keeps one dict widget per LoRA; its API format names them lora_1, ...
            loras = [x for x in values if isinstance(x, dict) and "lora" in x]
            cn.inputs.update({f"lora_{i}": x for i, x in enumerate(loras, 1) if f"lora_{i}" not in cn.inputs})
        for i in n.inputs:
            if i["link"] is None:
                continue
            src = source(i["link"])
            if isinstance(src, Lost):
                flat.remarks.setdefault(nid, []).append(_lost_note(i["widget"] or i["name"], src.why))
                continue
            if isinstance(src, tuple) and src[0] == "literal":
                cn.inputs[i["widget"] or i["name"]] = src[1]
                if src[2] is not None and (i["widget"] or i["name"]) in SEED_WIDGETS:
                    cn.controls[i["widget"] or i["name"]] = src[2]
            else:
                cn.inputs[i["widget"] or i["name"]] = src
        flat.nodes[nid] = cn
    return flat


def _name_widgets(names, values) -> Dict[str, Any]:
    """Positional widget values to names; the "control after generate" value ComfyUI stores after a
    seed widget is skipped when present (older files lack it). Frontends of early 2023 stored it as a
    true/false "randomize" toggle: a boolean after the seed, when the file holds one value more than the
    widgets, is that toggle (read as steps, it shifted every later value one place). Values past the known
    widgets are left: the frontend stores some of its own there (an upload button, a preview)."""
    return {name: values[a] for name, a, _ in _widget_spans(names, values)}


def _controls(names, values) -> Dict[str, str]:
    """Each seed widget's "control after generate" (fixed, increment, decrement, randomize) where the file holds
    one; the early toggle's true is randomize."""
    out = {}
    for name, a, b in _widget_spans(names, values):
        if b - a == 2:
            c = values[a + 1]
            out[name] = c if isinstance(c, str) else "randomize" if c else "fixed"
    return out


def _widget_spans(names, values) -> List[Tuple[str, int, int]]:
    """Each named widget's place in `values`: (name, start, stop), a seed's span taking its control value."""
    out, k = [], 0
    for name in names:
        if k >= len(values):
            break
        a = k
        k += 1
        if name in SEED_WIDGETS and k < len(values) and (
                (isinstance(values[k], str) and values[k] in CONTROL_VALUES)
                or (isinstance(values[k], bool) and len(values) > len(names))):
            k += 1
        out.append((name, a, k))
    return out


def _pos(p) -> Optional[Tuple[float, float]]:
    if isinstance(p, dict):
        p = [p.get("0"), p.get("1")]
    if isinstance(p, (list, tuple)) and len(p) >= 2 and all(isinstance(v, (int, float)) for v in p[:2]):
        return float(p[0]), float(p[1])
    return None
