"""Where a subgraph's input value comes from, in each way ComfyUI's files carry it.

ComfyUI's frontend (ExecutableNodeDTO.resolveInput) gives a node inside a subgraph what the instance's input gets:
the outer link when one is connected, else the value of the instance's widget for that input. That widget is a copy
whose value the instance stores in `widgets_values` (older files), or, in files with `proxyWidgets`, a view of the
widget of the first node inside (in the input's `linkIds` order) that the input reaches through a widget; every node
the input feeds gets that one value, a formula's plain input as much as another widget. The expected values below
are worked out from those rules by hand."""
import pytest

from app.comfyui.flatten import Ref, from_ui
from app.comfyui.mapping import widget_names


def _node(nid, typ, inputs=(), outputs=(), values=None, **extra):
    """A node as ComfyUI writes it; inputs are (name, type, link, widget name or None)."""
    n = {"id": nid, "type": typ, "pos": [0, 0], "mode": 0,
         "inputs": [dict({"name": a, "type": t, "link": lk}, **({"widget": {"name": w}} if w else {}))
                    for a, t, lk, w in inputs],
         "outputs": [{"name": o, "type": o} for o in outputs]}
    if values is not None:
        n["widgets_values"] = values
    n.update(extra)
    return n


def _sub(sid, inputs, nodes, links, outputs=()):
    """A subgraph definition: inputs are (name, type, linkIds); links are (id, origin, slot, target, slot)."""
    return {"id": sid, "name": sid, "inputNode": {"id": -10}, "outputNode": {"id": -20},
            "inputs": [{"name": a, "type": t, "linkIds": list(ids)} for a, t, ids in inputs],
            "outputs": [{"name": a, "type": t, "linkIds": list(ids)} for a, t, ids in outputs],
            "nodes": nodes,
            "links": [{"id": i, "origin_id": o, "origin_slot": os, "target_id": t, "target_slot": ts, "type": "*"}
                      for i, o, os, t, ts in links]}


def _formula_sub(first_widget_links):
    """'n' feeds ImageFromBatch's length (stored 33), a PrimitiveInt (stored 81) and a formula's plain input b, in
    the order `first_widget_links` gives their links (11, 12, 13)."""
    nodes = [_node(1, "ImageFromBatch", [("image", "IMAGE", None, None), ("batch_index", "INT", None, "batch_index"),
                                         ("length", "INT", 11, "length")], ["IMAGE"], [0, 33]),
             _node(2, "PrimitiveInt", [("value", "INT", 12, "value")], ["INT"], [81, "fixed"]),
             _node(3, "ComfyMathExpression", [("values.a", "FLOAT,INT", None, None),
                                              ("values.b", "FLOAT,INT", 13, None)], ["FLOAT", "INT", "BOOLEAN"],
                   ["a + b"])]
    return _sub("s", [("n", "INT", first_widget_links)], nodes,
                [(11, -10, 0, 1, 2), (12, -10, 0, 2, 0), (13, -10, 0, 3, 1)])


def _flat(subs, instance_values=None, instance_inputs=(), outer=(), links=(), properties=None):
    inst = _node(9, subs[0]["id"], instance_inputs, [], instance_values,
                 properties=properties if properties is not None else {})
    return from_ui({"nodes": [inst, *outer], "links": [list(lk) for lk in links],
                    "definitions": {"subgraphs": list(subs)}}, widget_names)


def test_a_plain_input_beside_a_widget_gets_the_widget_value_in_a_proxywidgets_file():
    # the first link of 'n' reaching a widget is ImageFromBatch's length (33): the formula's b and the PrimitiveInt
    # (whose own stored value is 81) get 33
    flat = _flat([_formula_sub([11, 12, 13])], [], [("n", "INT", None, "n")],
                 properties={"proxyWidgets": [["1", "length"]]})
    assert flat.nodes["9:3"].inputs["values.b"] == 33
    assert flat.nodes["9:1"].inputs["length"] == 33
    assert flat.nodes["9:2"].inputs["value"] == 33


def test_the_first_link_in_linkids_order_decides_not_the_plain_input_before_it():
    flat = _flat([_formula_sub([13, 12, 11])], [], [("n", "INT", None, "n")],
                 properties={"proxyWidgets": [["2", "value"]]})
    assert flat.nodes["9:3"].inputs["values.b"] == 81        # PrimitiveInt's link (12) is the first to a widget
    assert flat.nodes["9:1"].inputs["length"] == 81


def test_a_value_stored_on_the_instance_goes_to_every_node_the_input_feeds():
    flat = _flat([_formula_sub([11, 12, 13])], [7], [("n", "INT", None, "n")])
    assert [flat.nodes[k].inputs[i] for k, i in (("9:1", "length"), ("9:2", "value"), ("9:3", "values.b"))] \
        == [7, 7, 7]


def test_an_outer_link_or_primitive_wins_over_every_stored_value():
    seed = _node(5, "PrimitiveInt", [], ["INT"], [12, "fixed"])
    seed["outputs"][0]["links"] = [1]
    flat = _flat([_formula_sub([11, 12, 13])], [7], [("n", "INT", 1, "n")], outer=[seed], links=[(1, 5, 0, 9, 0)])
    assert flat.nodes["9:3"].inputs["values.b"] == Ref("5", 0)
    legacy = _node(5, "PrimitiveNode", [], ["INT"], [64, "fixed"])      # the editor-only primitive: inlined
    flat = _flat([_formula_sub([11, 12, 13])], [], [("n", "INT", 1, "n")], outer=[legacy], links=[(1, 5, 0, 9, 0)])
    assert flat.nodes["9:3"].inputs["values.b"] == 64 and flat.nodes["9:1"].inputs["length"] == 64


@pytest.mark.parametrize("inner_values, expected", [([], 81), ([5], 5)])
def test_a_nested_instance_holds_the_value_of_an_input_it_shares_with_a_plain_input(inner_values, expected):
    # outer 'n' feeds the nested instance's widget input first, then a formula's b; the nested instance's value is
    # its own stored one (older files) or its first inner widget's (PrimitiveInt, 81)
    inner = _sub("inner", [("n", "INT", [21])], [_node(2, "PrimitiveInt", [("value", "INT", 21, "value")], ["INT"],
                                                       [81, "fixed"])], [(21, -10, 0, 2, 0)])
    outer = _sub("outer", [("n", "INT", [31, 32])],
                 [_node(4, "inner", [("n", "INT", 31, "n")], [], inner_values),
                  _node(3, "ComfyMathExpression", [("values.a", "FLOAT,INT", None, None),
                                                   ("values.b", "FLOAT,INT", 32, None)], ["FLOAT"], ["a + b"])],
                 [(31, -10, 0, 4, 0), (32, -10, 0, 3, 1)])
    flat = _flat([outer, inner], [], [("n", "INT", None, "n")])
    assert flat.nodes["9:3"].inputs["values.b"] == expected
    assert flat.nodes["9:4:2"].inputs["value"] == expected


def test_an_input_passed_straight_to_an_output_carries_its_value_out():
    sub = _sub("s", [("n", "INT", [11, 12])],
               [_node(2, "PrimitiveInt", [("value", "INT", 11, "value")], ["INT"], [81, "fixed"])],
               [(11, -10, 0, 2, 0), (12, -10, 0, -20, 0)], outputs=[("n", "INT", [12])])
    after = _node(6, "ComfyMathExpression", [("values.a", "FLOAT,INT", 1, None)], ["FLOAT"], ["a * 2"])
    inst = _node(9, "s", [("n", "INT", None, "n")], ["INT"], [])
    inst["outputs"][0]["links"] = [1]
    flat = from_ui({"nodes": [inst, after], "links": [[1, 9, 0, 6, 0, "INT"]], "definitions": {"subgraphs": [sub]}},
                   widget_names)
    assert flat.nodes["6"].inputs["values.a"] == 81


def test_a_widget_of_a_node_kinograph_does_not_know_is_named_where_its_value_is_lost():
    sub = _sub("s", [("n", "INT", [11, 13])],
               [_node(1, "SomeoneElsesNode", [("count", "INT", 11, "count")], ["INT"], [3, 5]),
                _node(3, "ComfyMathExpression", [("values.a", "FLOAT,INT", None, None),
                                                 ("values.b", "FLOAT,INT", 13, None)], ["FLOAT"], ["a + b"])],
               [(11, -10, 0, 1, 0), (13, -10, 0, 3, 1)])
    flat = _flat([sub], [], [("n", "INT", None, "n")])
    assert "values.b" not in flat.nodes["9:3"].inputs
    assert flat.nodes["9:1"].widgets == [3, 5]                # its own widgets, untouched
    [remark] = flat.remarks["9:3"]
    assert "input values.b receives nothing" in remark and "'n'" in remark and "SomeoneElsesNode #9:1" in remark
