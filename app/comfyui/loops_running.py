"""A ComfyUI loop (StartLoop ... EndLoop, mode simple) whose number of passes is counted only as the workflow runs:
Wan Animate 2's template computes it from the driving clip's length (floor((F - 2) / (b - 1)) + 1 windows of b
frames). Kinograph's graph has no cycles, and a Kinograph workflow's nodes are fixed before it runs, so the loop
is unrolled on import to MAX_RUNNING_PASSES passes and the count picks, as the workflow runs, how many of them are
read: each pass after the first is read only where the count reaches it (math.switch, which makes only the side it
picks: NodeSpec.reads), so the passes past the count never run, as ComfyUI never runs them. What a pass is told
that depends on the count (is_last) is a formula of it (math.expression). A count past the passes made, or none,
stops the run, saying so, rather than giving a shorter video.

EndLoop's output: the last pass's value (a switch per pass picking the later one where it ran), or with accumulate
every pass's value as a list; such a list is only carried here to nodes that join it (RebatchImages: one clip of the
passes' frames in order), since ComfyUI would run any other node once per pass."""
from __future__ import annotations

from typing import Dict, List, Optional

from .flatten import CNode, Flat, Ref
from .mapping import RULES

# Every pass is a copy of the loop's body in the imported workflow, read or not: 16 windows of Wan Animate 2's 81
# frames are 1,281 frames (53 s at 24 fps) in about 200 nodes; a longer clip is refused by name as it runs.
MAX_RUNNING_PASSES = 16


def running_count(start: CNode, flat: Flat):
    """The link giving a simple-mode StartLoop's number of passes, where a node Kinograph maps gives it (the file's
    constants were folded before: passes() read none), else None."""
    count = start.inputs.get("mode.num_iterations")
    src = flat.nodes.get(count.node) if isinstance(count, Ref) else None
    return count if src is not None and src.class_type in RULES else None


def refusal(flat: Flat, body: set, eid: str, accumulate: bool) -> Optional[str]:
    """Why the loop of `body` ending at `eid` is not unrolled for a count known as it runs, or None."""
    writer = _writer_in(flat, body)
    if writer is not None:
        return (f"{writer.class_type} #{writer.id} in it writes or shows on every pass, and each of its copies in "
                f"the {MAX_RUNNING_PASSES} passes made would run, with its pass, whatever the count")
    if not accumulate:
        return None
    from .lists import JOINS        # lists reads the loops' caps: imported here, once both are loaded
    readers = [(cn, k) for cn in flat.nodes.values() for k, v in cn.inputs.items() if isinstance(v, Ref)
               and v.node == eid]
    other = next((cn for cn, k in readers if cn.class_type not in JOINS or k != "images"), None)
    if other is not None:
        return (f"its passes are counted as the workflow runs and gathered as a list for {other.class_type} #{other.id}, "
                f"which ComfyUI runs once per pass; Kinograph gathers such a loop only for {', '.join(JOINS)}")
    return None


def _writer_in(flat: Flat, body: set) -> Optional[CNode]:
    """A node of the body that Kinograph runs for what it writes or shows (a SaveImage of each window, one linked to
    a termination input). Only the passes' values are behind the count's switches; such a node in a pass is run for
    itself, so every copy of it ran its pass: 16 samplings for a count of 2."""
    from graph_engine.registry import default_registry
    registry = default_registry()
    for n in sorted(body):
        rule = RULES.get(flat.nodes[n].class_type)
        spec = registry.get(rule.node) if rule is not None and rule.node else None
        if spec is not None and spec.output:
            return flat.nodes[n]
    return None


class Helpers:
    """The nodes the unrolling adds beside the copies, ComfyUI's own (ComfyMathExpression, ComfySwitchNode,
    CreateList, RebatchImages) so that they convert as the file's do; ids `<node>@<what><pass>`."""

    def __init__(self, flat: Flat, count: Ref, pos):
        self.flat, self.count, self.pos = flat, count, pos

    def ids(self, sid: str, eid: str) -> List[str]:
        passes = range(MAX_RUNNING_PASSES)
        return [f"{sid}@last{i}" for i in passes] + [f"{eid}@{w}{i}" for i in passes for w in
                                                       ("more", "pick", "list", "join")] + [f"{eid}@guard", f"{eid}@check"]

    def add(self, nid: str, class_type: str, title: str, inputs: Dict, out_types: List[str]) -> Ref:
        self.flat.nodes[nid] = CNode(nid, class_type, title, inputs, pos=self.pos, out_types=out_types)
        return Ref(nid, 0)

    def test(self, nid: str, formula: str, title: str) -> Ref:
        """ComfyMathExpression of the count `a`: its BOOL output."""
        self.add(nid, "ComfyMathExpression", title, {"expression": formula, "values.a": self.count},
                 ["FLOAT", "INT", "BOOL"])
        return Ref(nid, 2)

    def switch(self, nid: str, test: Ref, on_true, on_false, title: str, why: str = "") -> Ref:
        inputs = {"switch": test, "on_false": on_false}
        if on_true is not None:
            inputs["on_true"] = on_true
        if why:
            inputs["refusal"] = why
        return self.add(nid, "ComfySwitchNode", title, inputs, ["*"])


def is_last(helpers: Helpers, sid: str, i: int) -> Ref:
    """StartLoop's is_last on pass i: ComfyUI's i == count - 1."""
    nid = f"{sid}@last{i}"
    return Ref(nid, 2) if nid in helpers.flat.nodes else helpers.test(nid, f"a == {i + 1}", f"pass {i + 1} is the last")


def gathered(helpers: Helpers, sid: str, eid: str, outputs: list, accumulate: bool) -> Ref:
    """EndLoop's output from the passes' values: the last pass run's, or (accumulate) all of theirs joined; behind a
    check that the count is one the passes made cover."""
    cur = outputs[0]
    for i, out in enumerate(outputs[1:], 1):
        more = helpers.test(f"{eid}@more{i}", f"a > {i}", f"pass {i + 1} runs")
        if accumulate:
            items = helpers.add(f"{eid}@list{i}", "CreateList", f"passes 1 to {i + 1}",
                                {"inputs.input0": cur, "inputs.input1": out}, ["*"])
            out = helpers.add(f"{eid}@join{i}", "RebatchImages", f"passes 1 to {i + 1} joined",
                              {"images": items, "batch_size": 4096}, ["IMAGE"])
        cur = helpers.switch(f"{eid}@pick{i}", more, out, cur, f"after pass {i + 1}")
    outside = helpers.test(f"{eid}@guard", f"a < 1 or a > {len(outputs)}", "passes made cover the count")
    why = (f"the loop of StartLoop #{sid} was unrolled on import into {len(outputs)} passes, and this run counts more "
           f"(or none): give a shorter input, or run it in parts of at most {len(outputs)} passes")
    return helpers.switch(f"{eid}@check", outside, None, cur, "the loop's count checked", why)
