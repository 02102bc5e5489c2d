"""ComfyUI's value nodes run as Kinograph nodes: ComfyNumberConvert (comfy_extras/nodes_number_convert.py) as
math.number_convert, ComfyMathExpression as math.expression, PreviewAny (comfy_extras/nodes_preview_any.py) as
math.show. ComfyUI's two execute() bodies are written out below as the reference; the basic datatype conversion
template imports, validates and runs, each preview showing what ComfyUI's shows."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).parent / "data" / "comfyui" / "templates" / "basic_datatype_conversion.json"


def comfy_number_convert(value):
    """NumberConvertNode.execute"""
    if isinstance(value, bool):
        float_val = 1.0 if value else 0.0
        int_val = 1 if value else 0
    elif isinstance(value, int):
        float_val = float(value)
        int_val = value
    elif isinstance(value, float):
        float_val = value
        int_val = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("Cannot convert empty string to number.")
        try:
            float_val = float(text)
        except ValueError:
            raise ValueError(f"Cannot convert string to number: {value!r}") from None
        if not math.isfinite(float_val):
            raise ValueError(f"Cannot convert non-finite value to number: {float_val}")
        try:
            int_val = int(text)
        except ValueError:
            int_val = int(float_val)
    else:
        raise TypeError(f"Unsupported input type: {type(value).__name__}")
    if not math.isfinite(float_val):
        raise ValueError(f"Cannot convert non-finite value to number: {float_val}")
    return float_val, int_val


def comfy_preview_any(source=None):
    """PreviewAny.execute's text"""
    value = "None"
    if isinstance(source, str):
        value = source
    elif isinstance(source, (int, float, bool)):
        value = str(source)
    elif source is not None:
        try:
            value = json.dumps(source)
        except Exception:
            try:
                value = str(source)
            except Exception:
                value = "source exists, but could not be serialized."
    return value


def _run(wf):
    from graph_engine.api import Session
    events = []
    res = Session().run(wf, on_event=events.append)
    assert res.ok, res.failed
    return {e["node"]: e["message"] for e in events if e["event"] == "log"}


@pytest.mark.parametrize("value", ["1", " 2.9 ", "-1e2", "-2.5", "7", 3, 2.75, -0.5, True, False, "", "abc", "inf",
                                   "nan", [1]])
def test_number_convert_is_comfyuis(value):
    """math.number_convert on a linked value and on its typed-in text: ComfyUI's float and int, or a clear
    refusal where ComfyUI's node raises"""
    from graph_engine import NodeError
    from graph_engine.context import Context
    from graph_engine.executor import call_node
    from graph_engine.registry import default_registry
    spec = default_registry().get("math.number_convert")
    try:
        want = comfy_number_convert(value)
    except (ValueError, TypeError):
        want = None
    calls = [({"value": value}, {})] + ([({}, {"text": value})] if isinstance(value, str) else [])
    for inputs, params in calls:
        if want is None:
            with pytest.raises(NodeError, match="give a number"):
                call_node(spec, Context("n"), inputs, params)
        else:
            got = call_node(spec, Context("n"), inputs, params)
            assert (got["float"], got["int"]) == want
            assert type(got["int"]) is int and type(got["float"]) is float


@pytest.mark.parametrize("value", ["text", 7, 0.5, True, None, {"a": [1, 2]}])
def test_show_writes_what_preview_any_shows(value):
    from graph_engine.context import Context
    from graph_engine.executor import call_node
    from graph_engine.registry import default_registry
    logged = []
    ctx = Context("s", emit=logged.append)
    got = call_node(default_registry().get("math.show"), ctx, {} if value is None else {"value": value},
                    {"text": "None"} if value is None else {})
    assert got["text"] == comfy_preview_any(value) == logged[0]["message"]


def test_datatype_template_imports_validates_and_runs():
    """basic_datatype_conversion: every node mapped, Number Convert and the three Math Expressions real nodes
    (one fed by Number Convert's int), each of the 13 previews a math.show whose run writes ComfyUI's text"""
    from app.comfyui import import_workflow
    from graph_engine.api import load_workflow
    res = import_workflow(str(TEMPLATE))
    assert not res.report.blocking
    assert {e.status for e in res.report.entries.values()} == {"exact"}
    graph = load_workflow(text=res.yaml, check=True).graph
    types = sorted(n.type for n in graph.nodes.values())
    assert types.count("math.show") == 13 and types.count("math.expression") == 3
    assert types.count("math.number_convert") == 1
    logs = _run(load_workflow(text=res.yaml, check=True))
    data = json.loads(TEMPLATE.read_text())
    nodes = {n["id"]: n for n in data["nodes"]}
    links = {link[0]: link for link in data["links"]}

    def comfy_value(node_id, slot):
        """what ComfyUI's node gives at slot, computed with its code above"""
        n = nodes[node_id]
        if n["type"].startswith("Primitive"):
            return n["widgets_values"][0]
        source = links[n["inputs"][0]["link"]]
        value = comfy_value(source[1], source[2])
        if n["type"] == "ComfyNumberConvert":
            return comfy_number_convert(value)[slot]
        if n["type"] == "ComfyMathExpression":        # the template's formula is `a`
            assert n["widgets_values"] == ["a"]
            return (float(value), int(value), bool(value))[slot]
        return comfy_preview_any(value)

    previews = [n for n in data["nodes"] if n["type"] == "PreviewAny"]
    assert len(previews) == 13
    for n in previews:
        assert logs[f"preview_any_{n['id']}"] == comfy_value(n["id"], 0)


def test_a_formula_that_is_not_shown_still_folds():
    """a Math Expression of constants feeding only a setting is computed on import, no node made for it"""
    from app.comfyui import import_data
    api = {"1": {"class_type": "ComfyMathExpression", "inputs": {"expression": "a * 2", "values.a": 8}},
           "2": {"class_type": "EmptyImage", "inputs": {"width": ["1", 1], "height": 8, "batch_size": 1,
                                                        "color": 0}},
           "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}
    res = import_data(api)
    assert "math.expression" not in {n.type for n in res.graph.nodes.values()}
    (solid,) = [n for n in res.graph.nodes.values() if n.type == "generate.solid"]
    assert solid.params["width"] == 16


def test_a_running_value_is_converted_as_the_workflow_runs():
    """ComfyNumberConvert of a picture's width (known only as the workflow runs) becomes math.number_convert,
    linked, its int feeding the next node's setting; it was a node Kinograph could not map"""
    from app.comfyui import import_data
    api = {"1": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 24, "batch_size": 1, "color": 0}},
           "2": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
           "3": {"class_type": "ComfyNumberConvert", "inputs": {"value": ["2", 0]}},
           "4": {"class_type": "EmptyImage", "inputs": {"width": ["3", 1], "height": 8, "batch_size": 1, "color": 0}},
           "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "x"}}}
    res = import_data(api)
    assert not res.report.blocking and res.report.entries["3"].status == "exact"
    (conv,) = [n for n in res.graph.nodes.values() if n.type == "math.number_convert"]
    assert res.graph.inputs[conv.id] == {"value": ("get_image_size_2", "width")}


@pytest.mark.parametrize("expression", ["9**9**9", "pow(9, 9 ** 9)", "((9 ** 999) ** 999) ** 999", "2 ** 5000",
                                        "round(5, -10 ** 8)", "1 << 10 ** 9", "__import__('os').system('true')",
                                        "().__class__.__bases__", "a.__class__", "open('/etc/passwd')",
                                        "exec('1')", "(lambda: 1)()", "[1] * 10 ** 9", "'a' * 10 ** 9"])
def test_a_strangers_formula_runs_no_code_and_ends_at_once(expression):
    """math.expression on a formula from a stranger's workflow: refused with a reason, never run as Python, and
    no power of millions of digits computed (a test that hangs here has failed)"""
    from graph_engine import NodeError
    from graph_engine.context import Context
    from graph_engine.executor import call_node
    from graph_engine.registry import default_registry
    with pytest.raises(NodeError):
        call_node(default_registry().get("math.expression"), Context("m"), {},
                  {"expression": expression, "a": 1.0})
