"""Reversible graph operations: each calls the Graph API to do and to undo, nothing else.

An undo step (`commands.GraphCommand`) is a list of these. Operations record what they
replaced when first done, so undo puts back exactly that."""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional

from graph_engine.graph import Graph, Link

_UNSET = object()
# A parameter the node leaves out (its default holds): what SetParam sets to clear one, and undoes to.
LEFT_OUT = object()


class Op:
    def do(self, g: Graph) -> None:
        raise NotImplementedError

    def undo(self, g: Graph) -> None:
        raise NotImplementedError

    def absorb(self, later: "Op") -> bool:
        """Fold a later operation on the same target into this one (a slider drag is one step)."""
        return False


class AddNode(Op):
    def __init__(self, type_name: str, node_id: str, params: Dict[str, Any], version: int = 1,
                 ui: Optional[Dict[str, Any]] = None, bypass: bool = False, title: str = ""):
        self.args = (type_name, node_id, dict(params), version, copy.deepcopy(ui) if ui else None, bypass, title)

    @property
    def node_id(self) -> str:
        return self.args[1]

    def do(self, g):
        g.add_node(*self.args)

    def undo(self, g):
        g.remove_node(self.node_id)


class RemoveNode(Op):
    def __init__(self, node_id: str):
        self.node_id = node_id
        self.saved = None
        self.at = None

    def do(self, g):
        self.at = g.position(self.node_id)
        self.saved = g.remove_node(self.node_id)

    def undo(self, g):
        g.restore_node(*self.saved, at=self.at)


class Connect(Op):
    def __init__(self, src: str, src_port: str, dst: str, dst_port: str):
        self.link = Link(src, src_port, dst, dst_port)
        self.replaced: Optional[Link] = None

    def do(self, g):
        l = self.link
        self.replaced = g.connect(l.src, l.src_port, l.dst, l.dst_port)

    def undo(self, g):
        g.disconnect(self.link.dst, self.link.dst_port)
        if self.replaced is not None:
            r = self.replaced
            g.connect(r.src, r.src_port, r.dst, r.dst_port)


class Disconnect(Op):
    def __init__(self, dst: str, dst_port: str):
        self.dst, self.dst_port = dst, dst_port
        self.link: Optional[Link] = None

    def do(self, g):
        self.link = g.disconnect(self.dst, self.dst_port)

    def undo(self, g):
        if self.link is not None:
            l = self.link
            g.connect(l.src, l.src_port, l.dst, l.dst_port)


class SetParam(Op):
    """`value` LEFT_OUT leaves the parameter out of the node. Undo leaves one that was not set out again: writing
    its declared default put `path: out/video.mp4` into a workflow whose save node had followed the file's name
    (graph_engine.default_outputs)."""

    def __init__(self, node_id: str, name: str, value: Any):
        self.node_id, self.name, self.value = node_id, name, value
        self.old: Any = _UNSET

    def do(self, g):
        inst = g.nodes[self.node_id]
        if self.old is _UNSET:
            self.old = copy.deepcopy(inst.params[self.name]) if self.name in inst.params else LEFT_OUT
        self._put(g, self.value)

    def undo(self, g):
        self._put(g, self.old)

    def _put(self, g, value):
        if value is LEFT_OUT:
            g.unset_param(self.node_id, self.name)
        else:
            g.set_param(self.node_id, self.name, copy.deepcopy(value))

    def absorb(self, later):
        if isinstance(later, SetParam) and (later.node_id, later.name) == (self.node_id, self.name):
            self.value = later.value
            return True
        return False


class SetBypass(Op):
    def __init__(self, node_id: str, bypass: bool):
        self.node_id, self.bypass, self.old = node_id, bool(bypass), None

    def do(self, g):
        self.old = g.set_bypass(self.node_id, self.bypass)

    def undo(self, g):
        g.set_bypass(self.node_id, self.old)


class SetTitle(Op):
    def __init__(self, node_id: str, title: str):
        self.node_id, self.title, self.old = node_id, title, None

    def do(self, g):
        self.old = g.set_title(self.node_id, self.title)

    def undo(self, g):
        g.set_title(self.node_id, self.old)


class SetUi(Op):
    """Layout of one key: a node id, or `_groups`, `_notes`, `_reroutes`."""

    def __init__(self, key: str, value: Any):
        self.key, self.value = key, copy.deepcopy(value)
        self.old: Any = _UNSET

    def do(self, g):
        old = g.set_ui(self.key, copy.deepcopy(self.value))
        if self.old is _UNSET:
            self.old = old

    def undo(self, g):
        g.set_ui(self.key, copy.deepcopy(self.old))

    def absorb(self, later):
        if isinstance(later, SetUi) and later.key == self.key:
            self.value = later.value
            return True
        return False


class SetMeta(Op):
    def __init__(self, name: Optional[str] = None, description: Optional[str] = None):
        self.new = (name, description)
        self.old = (None, None)

    def do(self, g):
        self.old = (g.name, g.description)
        g.set_meta(*self.new)

    def undo(self, g):
        g.set_meta(*self.old)
