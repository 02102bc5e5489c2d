"""graph_engine.plan: a pure planning step, and values let go after their last consumer."""
import gc
import textwrap
import weakref

from graph_engine import Param, node
from graph_engine.executor import Executor
from graph_engine.plan import explain, plan_run
from graph_engine.registry import Registry
from graph_engine.types import FLOAT
from graph_engine.workflow import parse_workflow

RAN = []
ALIVE = {}       # node id -> weak reference to the value it produced


class Box(float):
    """A float that can be weakly referenced, to see when the executor lets go of it."""


@node("plan.number", category="Test")
def number(ctx, value: float = Param(1.0)) -> FLOAT:
    """A constant."""
    RAN.append(ctx.node_id)
    out = Box(value)
    ALIVE[ctx.node_id] = weakref.ref(out)
    return out


@node("plan.add", category="Test")
def add(ctx, a: FLOAT, b: FLOAT = None, offset: float = Param(0.0)) -> FLOAT:
    """a + b + offset; checks that everything it no longer needs upstream is gone."""
    RAN.append(ctx.node_id)
    out = Box(a + (b or 0.0) + offset)
    ALIVE[ctx.node_id] = weakref.ref(out)
    gc.collect()
    ctx.report(alive=sorted(n for n, r in ALIVE.items() if r() is not None and n != ctx.node_id))
    return out


CHAIN = """
kinograph: 1
nodes:
  x: {type: plan.number, params: {value: 2.0}}
  y: {type: plan.number, params: {value: 3.0}}
  s: {type: plan.add, inputs: {a: x.float, b: y.float}}
  t: {type: plan.add, inputs: {a: s.float}, params: {offset: 1.0}}
  u: {type: plan.add, inputs: {a: t.float, b: x.float}}
"""


def setup():
    reg = Registry()
    reg.register(number, add)
    wf, problems = parse_workflow(textwrap.dedent(CHAIN), None, reg)
    assert not problems
    RAN.clear()
    ALIVE.clear()
    return reg, wf


def test_plan_runs_nothing_and_is_repeatable():
    reg, wf = setup()
    a, b = plan_run(wf, reg), plan_run(wf, reg)
    assert RAN == [] and a.keys == b.keys and a.params == b.params
    assert a.order.index("s") > max(a.order.index("x"), a.order.index("y")) and a.order[-1] == "u"
    # x feeds s and u: its value is needed until u, the last node.
    assert a.last_use["x"] == a.order.index("u") and a.last_use["s"] == a.order.index("t")
    assert plan_run(wf, reg, ["s"]).order[-1] == "s" and "u" not in plan_run(wf, reg, ["s"]).keys


def test_a_param_changes_the_keys_of_its_node_and_descendants_only():
    reg, wf = setup()
    before = plan_run(wf, reg)
    wf.graph.set_param("s", "offset", 0.5)
    after = plan_run(wf, reg)
    assert {n for n in before.keys if before.keys[n] != after.keys[n]} == {"s", "t", "u"}
    assert explain(before.parts["s"], after.parts["s"]) == "parameter offset changed from 0.0 to 0.5"
    assert explain(before.parts["t"], after.parts["t"]) == "input a changed upstream"
    assert explain(before.parts["x"], after.parts["x"]) == "nothing changed: it was served from the cache"


def test_values_are_released_after_their_last_consumer():
    reg, wf = setup()
    res = Executor(reg, memory_budget=0, use_disk=False).run(wf, keep=["u"])
    assert res.ok and res.outputs["u"]["float"] == 2 + 3 + 1 + 2
    assert set(res.outputs) == {"u"}
    # When t ran, y (last read by s) was gone; x was still held for u.
    assert res.results["t"]["alive"] == ["s", "x"]
    assert res.results["u"]["alive"] == ["t", "x"]


def test_without_keep_every_value_comes_back():
    reg, wf = setup()
    res = Executor(reg, memory_budget=0, use_disk=False).run(wf)
    assert res.ok and set(res.outputs) == {"x", "y", "s", "t", "u"}
    assert res.results["u"]["alive"] == ["s", "t", "x", "y"]
