"""ComfyUI's loops (comfy_extras/nodes_looping.py: StartLoop ... EndLoop) whose number of passes is in the file,
unrolled on import: the loop's body (the nodes after StartLoop that lead to its EndLoop) copied once per pass, each
copy given that pass's index, first / last flags, list item and carried value, as ComfyUI hands them; EndLoop's
output is the last pass's value, or every pass's as a list with accumulate. A simple loop whose count a node gives as
the workflow runs (Wan Animate 2's, from the clip's length) is unrolled to a fixed number of passes, the count picking
those that run (app.comfyui.loops_running). A loop nested in another, or past the caps, stays not mapped, the report
saying why."""
from __future__ import annotations

from typing import Dict, List, Optional

from . import loops_running as running
from .flatten import CNode, Flat, Ref
from .mapping import RULES

# Each pass copies the body: a file from a stranger asking for 10 ** 9 passes must not fill memory on import, and a
# Kinograph workflow of thousands of copies is no longer one anyone can read. ComfyUI's own templates loop a few times.
# The copies are counted over the whole file: counted per loop, 75 loops of 62 nodes (a file under the 5,000-node limit)
# unrolled to 300,000 nodes, taking a minute and 730 MB to import.
MAX_PASSES = 64
MAX_COPIES = 4000           # body nodes times passes, all the file's loops together


def _setting(cn: CNode, name: str, index: int, default):
    """A StartLoop / EndLoop setting: by name (API files), else by its place in widgets_values (UI files)."""
    if name in cn.inputs:
        return cn.inputs[name]
    w = cn.widgets if isinstance(cn.widgets, list) else []
    return w[index] if index < len(w) else default


def passes(cn: CNode, flat: Flat):
    """(pass values, list items or None) of a StartLoop as its execute computes them, or a str saying why not."""
    mode = _setting(cn, "mode", 0, "simple")
    if mode == "simple":
        n = _setting(cn, "mode.num_iterations", 1, 4)
        values = range(n) if isinstance(n, int) and not isinstance(n, bool) else None
        items = None
    elif mode == "For":
        start, stop, step = (_setting(cn, f"mode.{k}", i, d) for k, i, d in
                             (("start_iteration_index", 1, 0), ("max_iteration", 2, 4), ("step", 3, 1)))
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop, step))
        if ok and step == 0:
            return "its step is 0, which ComfyUI refuses too"
        values = range(start, stop, step) if ok else None
        items = None
    elif mode == "List":
        src = cn.inputs.get("mode.list")
        lister = flat.nodes.get(src.node) if isinstance(src, Ref) else None
        if lister is None or lister.class_type != "CreateList":
            return "it loops over a list known only as the workflow runs"
        items = [v for k, v in sorted(lister.inputs.items(), key=lambda kv: _number(kv[0]))
                 if k.startswith("inputs.") and v is not None]
        values = range(len(items))
    else:
        return f"its mode {mode!r} is not one of ComfyUI's (simple, For, List)"
    if values is None:
        return "its number of passes is known only as the workflow runs"
    # len() of a range past 2 ** 63 (a count of 10 ** 20 in a hostile file) raises OverflowError
    count = max(0, -((values.start - values.stop) // values.step))
    if count > MAX_PASSES:
        return f"it asks for {count} passes; Kinograph unrolls a loop of up to {MAX_PASSES} on import"
    return values, items


def _number(key: str) -> int:
    digits = "".join(c for c in key if c.isdecimal())
    return int(digits) if digits else 0


def _consumers(flat: Flat) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for cn in flat.nodes.values():
        for v in cn.inputs.values():
            if isinstance(v, Ref):
                out.setdefault(v.node, []).append(cn.id)
    return out


def _below(start: str, consumers) -> set:
    seen, todo = set(), [start]
    while todo:
        n = todo.pop()
        for c in consumers.get(n, ()):
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return seen


def _end_of(below: set, flat: Flat) -> Optional[str]:
    ends = [n for n in below if flat.nodes[n].class_type == "EndLoop"]
    return ends[0] if len(ends) == 1 else None


def unroll(flat: Flat) -> None:
    """Unroll every loop of the file that can be (see the module's docstring); say why of the others."""
    left = MAX_COPIES
    for sid in [n for n, cn in flat.nodes.items() if cn.class_type == "StartLoop"]:
        before = set(flat.nodes)
        why = _unroll_one(flat, sid, left)
        left -= len(set(flat.nodes) - before)        # the copies: every new id is one
        if why:
            flat.remarks.setdefault(sid, []).append(f"the loop is not unrolled: {why}")


def _unroll_one(flat: Flat, sid: str, left: int) -> Optional[str]:
    start = flat.nodes[sid]
    consumers = _consumers(flat)
    below = _below(sid, consumers)
    eid = _end_of(below, flat)
    if eid is None:
        return "it has no one End Loop that its nodes lead to"
    body = below - {eid} - _below(eid, consumers)
    if any(flat.nodes[n].class_type in ("StartLoop", "EndLoop") for n in body):
        return "it holds another loop (nested loops are not unrolled)"
    if isinstance(start.inputs.get("parent_iteration"), Ref):
        return "it is nested in another loop"
    lacking = sorted({flat.nodes[n].class_type for n in body} - set(RULES))
    if lacking:
        # copies of a node Kinograph cannot run would only repeat its report line once per pass
        return f"its nodes include {', '.join(lacking)}, which Kinograph has no equivalent for"
    # A node after the loop reading inside it would be left linked to nothing once the body is copies
    inside = body | {sid}
    for cn in flat.nodes.values():
        if cn.id not in inside and cn.id != eid:
            src = next((v.node for v in cn.inputs.values() if isinstance(v, Ref) and v.node in inside), None)
            if src is not None:
                return f"{cn.class_type} #{cn.id} after it reads {flat.nodes[src].class_type} #{src} inside it"
    end = flat.nodes[eid]
    accumulate = _setting(end, "accumulate", 0, False) is True
    got = passes(start, flat)
    count = None
    if isinstance(got, str):
        count = running.running_count(start, flat) if _setting(start, "mode", 0, "simple") == "simple" else None
        if count is None:
            return got
        why = running.refusal(flat, body, eid, accumulate)
        if why:
            return why
        got = range(running.MAX_RUNNING_PASSES), None
    values, items = got
    helpers = running.Helpers(flat, count, end.pos)
    taken = [f"{n}@{i}" for n in body for i in range(len(values))] + (helpers.ids(sid, eid) if count else [])
    clash = next((n for n in taken if n in flat.nodes), None)
    if clash:
        return f"the file already has a node {clash}, the id its copy would take"
    if len(values) * len(body) > left:
        earlier = f" nodes in one file, and the loops before it made {MAX_COPIES - left}" if left < MAX_COPIES else ""
        return (f"{len(values)} passes of its {len(body)} nodes would make {len(values) * len(body)}; Kinograph "
                f"unrolls up to {MAX_COPIES}{earlier}")
    carried = start.inputs.get("initial_iteration_value")
    outputs = []
    for i, value in enumerate(values):
        # StartLoop's outputs on this pass: iteration_index, is_first, is_last, list_item, current_iteration_value
        given = [value, i == 0, i == len(values) - 1, items[i] if items is not None else None, carried]
        copy = {n: f"{n}@{i}" for n in body}

        def moved(v):
            if isinstance(v, Ref) and v.node == sid and v.slot == 2 and count is not None:
                return running.is_last(helpers, sid, i)         # the count is known as the workflow runs
            if isinstance(v, Ref) and v.node == sid:
                return given[v.slot] if v.slot < len(given) else None
            if isinstance(v, Ref) and v.node in copy:
                return Ref(copy[v.node], v.slot)
            return v
        for n in body:
            cn = flat.nodes[n]
            flat.nodes[copy[n]] = CNode(copy[n], cn.class_type, f"{cn.title or cn.class_type} (pass {i + 1})",
                                        {k: moved(v) for k, v in cn.inputs.items()},
                                        list(cn.widgets) if isinstance(cn.widgets, list) else cn.widgets, cn.pos,
                                        list(cn.out_types), cn.mode, cn.missing_widgets, cn.pack)
        outputs.append(moved(end.inputs.get("output_value")))
        carried = moved(end.inputs.get("next_iteration_value"))
    for n in body:
        del flat.nodes[n]
    del flat.nodes[sid]
    if count is not None:
        got = running.gathered(helpers, sid, eid, outputs, accumulate)
        del flat.nodes[eid]
        for cn in flat.nodes.values():
            cn.inputs = {k: got if isinstance(v, Ref) and v.node == eid else v for k, v in cn.inputs.items()}
        return None
    # EndLoop: every pass's output as ComfyUI's list (accumulate), else the last pass's
    if accumulate:
        flat.nodes[eid] = CNode(eid, "CreateList", end.title, {f"inputs.input{i}": v for i, v in enumerate(outputs)},
                                pos=end.pos)
    else:
        # the nodes reading it read the last pass's value itself (none after no pass, as ComfyUI's)
        del flat.nodes[eid]
        last = outputs[-1] if outputs else None
        for cn in flat.nodes.values():
            cn.inputs = {k: last if isinstance(v, Ref) and v.node == eid else v for k, v in cn.inputs.items()}
    return None
