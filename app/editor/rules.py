"""What may connect to what, and why not: the editor refuses a link with a sentence, not silence."""
from __future__ import annotations

from typing import Iterable, List, Optional

from graph_engine.graph import Graph
from graph_engine.node_api import NodeSpec, typed_in
from graph_engine.types import SocketType


def port_type(registry, graph: Graph, node_id: str, port: str, is_input: bool) -> Optional[SocketType]:
    inst = graph.nodes.get(node_id)
    spec = registry.get(inst.type) if inst else None
    if spec is None:
        return None
    if is_input:
        return spec.port_type(port)          # an input's, or a param's that takes a link
    p = spec.outputs.get(port)
    return p.type if p else None


def why_not(registry, graph: Graph, src: str, src_port: str, dst: str, dst_port: str) -> Optional[str]:
    """None when src.src_port may feed dst.dst_port, else the reason in words."""
    if src == dst:
        return "a node cannot feed itself"
    have = port_type(registry, graph, src, src_port, False)
    want = port_type(registry, graph, dst, dst_port, True)
    if have is None:
        return f"{src} has no output {src_port!r}"
    if want is None:
        spec = registry.get(graph.nodes[dst].type) if dst in graph.nodes else None
        if spec is not None and dst_port in spec.params:
            return f"{typed_in(spec.params[dst_port])} (of {dst})"
        return f"{dst} has no input {dst_port!r}"
    if not want.can_take(have):
        return f"{have.name} cannot connect to {want.name} (input {dst_port!r} of {dst}){want.refusal_hint(have)}"
    if dst in graph.ancestors([src]):
        return f"this link would make a loop: {dst} already feeds {src}"
    return None


def first_input_taking(spec: NodeSpec, have: SocketType) -> Optional[str]:
    """The input a value of type `have` should go to: an exact type match first, then a conversion."""
    exact = [n for n, p in spec.inputs.items() if p.type is have]
    loose = [n for n, p in spec.inputs.items() if p.type.can_take(have)]
    return (exact or loose or [None])[0]


def first_output_for(spec: NodeSpec, want: SocketType) -> Optional[str]:
    exact = [n for n, p in spec.outputs.items() if p.type is want]
    loose = [n for n, p in spec.outputs.items() if want.can_take(p.type)]
    return (exact or loose or [None])[0]


def specs_for(specs: Iterable[NodeSpec], have: Optional[SocketType] = None,
              want: Optional[SocketType] = None) -> List[NodeSpec]:
    """Node types with an input that takes `have` (dragging from an output), or an output that
    feeds `want` (dragging from an input)."""
    out = []
    for s in specs:
        if have is not None and first_input_taking(s, have) is None:
            continue
        if want is not None and first_output_for(s, want) is None:
            continue
        out.append(s)
    return out


def output_feeding(src: NodeSpec, spec: NodeSpec) -> Optional[str]:
    """The output of `src` that a node of `spec` added after it is wired from: the first whose type
    one of its inputs takes as it is, else the first it takes through a conversion."""
    for exact in (True, False):
        for name, out in src.outputs.items():
            if any(p.type is out.type if exact else p.type.can_take(out.type) for p in spec.inputs.values()):
                return name
    return None
