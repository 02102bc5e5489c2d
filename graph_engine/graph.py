"""The graph model: nodes, parameters and links, with change events and no Qt.

The editor changes the graph only through these methods and redraws from the events;
the executor reads it. Every mutator returns what an undo needs to put things back."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class Link:
    src: str
    src_port: str
    dst: str
    dst_port: str

    def __str__(self):
        return f"{self.src}.{self.src_port} -> {self.dst}.{self.dst_port}"


@dataclass
class NodeInstance:
    id: str
    type: str
    params: Dict[str, Any] = field(default_factory=dict)
    version: int = 1
    bypass: bool = False
    title: str = ""


@dataclass
class Event:
    kind: str            # node_added, node_removed, param_changed, linked, unlinked, ui_changed, node_changed, meta_changed
    node: Optional[str] = None
    data: Dict[str, Any] = field(default_factory=dict)


class GraphError(ValueError):
    pass


class Graph:
    def __init__(self, name: str = ""):
        self.name = name
        self.description = ""
        self.nodes: Dict[str, NodeInstance] = {}
        self.inputs: Dict[str, Dict[str, Tuple[str, str]]] = {}   # dst -> port -> (src, src_port)
        self.ui: Dict[str, Any] = {}     # node id -> layout dict; keys starting with "_" for groups, notes, view
        self._listeners: List[Callable[[Event], None]] = []

    # -- events ---------------------------------------------------------------------------
    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    def _emit(self, kind: str, node: Optional[str] = None, **data) -> None:
        ev = Event(kind, node, data)
        for fn in list(self._listeners):
            fn(ev)

    # -- queries --------------------------------------------------------------------------
    def __contains__(self, node_id: str) -> bool:
        return node_id in self.nodes

    def links(self) -> Iterator[Link]:
        for dst, ports in self.inputs.items():
            for port, (src, sport) in ports.items():
                yield Link(src, sport, dst, port)

    def links_from(self, node_id: str) -> List[Link]:
        return [l for l in self.links() if l.src == node_id]

    def links_to(self, node_id: str) -> List[Link]:
        return [Link(s, sp, node_id, p) for p, (s, sp) in self.inputs.get(node_id, {}).items()]

    def upstream(self, node_id: str) -> List[str]:
        return [s for s, _ in self.inputs.get(node_id, {}).values()]

    def ancestors(self, targets) -> List[str]:
        seen, stack = set(), list(targets)
        while stack:
            n = stack.pop()
            if n in seen or n not in self.nodes:
                continue
            seen.add(n)
            stack.extend(self.upstream(n))
        return [n for n in self.nodes if n in seen]

    def descendants(self, *node_ids: str) -> List[str]:
        """Nodes fed (directly or not) by any of node_ids, in graph order. One walk for all of them: one walk
        each (validation's run_scope, for every half-connected node) took hours on a file of 300000 nodes."""
        down: Dict[str, List[str]] = {}
        for l in self.links():
            down.setdefault(l.src, []).append(l.dst)
        seen, stack = set(), [d for n in node_ids for d in down.get(n, [])]
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(down.get(n, []))
        return [n for n in self.nodes if n in seen]

    def unique_id(self, base: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_\-]", "_", base.split(".")[-1]) or "node"
        if not base[0].isalpha():
            base = "n" + base
        if base not in self.nodes:
            return base
        i = 2
        while f"{base}{i}" in self.nodes:
            i += 1
        return f"{base}{i}"

    # -- mutations ------------------------------------------------------------------------
    def add_node(self, type_name: str, node_id: Optional[str] = None, params: Optional[Dict[str, Any]] = None,
                 version: int = 1, ui: Optional[Dict[str, Any]] = None, bypass: bool = False, title: str = "") -> str:
        node_id = node_id or self.unique_id(type_name)
        if node_id in self.nodes:
            raise GraphError(f"a node with id {node_id!r} already exists")
        if not ID_RE.match(node_id):
            raise GraphError(f"node id {node_id!r} must start with a letter and use letters, digits, _ or -")
        self.nodes[node_id] = NodeInstance(node_id, type_name, dict(params or {}), version, bypass, title)
        if ui:
            self.ui[node_id] = dict(ui)
        self._emit("node_added", node_id)
        return node_id

    def remove_node(self, node_id: str) -> Tuple[NodeInstance, Dict[str, Any], List[Link]]:
        """Remove a node and its links; returns (node, ui, links) so an undo can restore them."""
        links = [l for l in self.links() if node_id in (l.src, l.dst)]
        for l in links:
            self.disconnect(l.dst, l.dst_port)
        inst = self.nodes.pop(node_id)
        ui = self.ui.pop(node_id, {})
        self.inputs.pop(node_id, None)
        self._emit("node_removed", node_id)
        return inst, ui, links

    def position(self, node_id: str) -> Tuple[int, Optional[int]]:
        """Where a node stands in the file: its index among the nodes and among the layout keys."""
        ui = list(self.ui)
        return list(self.nodes).index(node_id), (ui.index(node_id) if node_id in self.ui else None)

    def restore_node(self, inst: NodeInstance, ui: Dict[str, Any], links: List[Link],
                     at: Optional[Tuple[int, Optional[int]]] = None) -> None:
        """Undo `remove_node`; `at` (from `position`) puts it back where it stood, so a workflow
        saved after a delete and its undo reads as it did before."""
        self.add_node(inst.type, inst.id, inst.params, inst.version, ui, inst.bypass, inst.title)
        if at is not None:
            _move_key(self.nodes, inst.id, at[0])
            if at[1] is not None and inst.id in self.ui:
                _move_key(self.ui, inst.id, at[1])
        for l in links:
            if l.src in self.nodes:
                self.connect(l.src, l.src_port, l.dst, l.dst_port)
            else:
                # A link from a node the file names but does not hold: kept as it was read
                # (validate names it), so deleting and undoing loses nothing.
                self.inputs.setdefault(l.dst, {})[l.dst_port] = (l.src, l.src_port)
                self._emit("linked", l.dst, link=l)

    def connect(self, src: str, src_port: str, dst: str, dst_port: str) -> Optional[Link]:
        """Link src.src_port into dst.dst_port; returns the link it replaced, if any."""
        for n in (src, dst):
            if n not in self.nodes:
                raise GraphError(f"no node {n!r}")
        old = self.inputs.get(dst, {}).get(dst_port)
        replaced = Link(old[0], old[1], dst, dst_port) if old else None
        if replaced:
            self.disconnect(dst, dst_port)
        self.inputs.setdefault(dst, {})[dst_port] = (src, src_port)
        self._emit("linked", dst, link=Link(src, src_port, dst, dst_port))
        return replaced

    def disconnect(self, dst: str, dst_port: str) -> Optional[Link]:
        old = self.inputs.get(dst, {}).pop(dst_port, None)
        if old is None:
            return None
        link = Link(old[0], old[1], dst, dst_port)
        self._emit("unlinked", dst, link=link)
        return link

    def set_param(self, node_id: str, name: str, value: Any) -> Any:
        inst = self.nodes[node_id]
        old = inst.params.get(name)
        inst.params[name] = value
        self._emit("param_changed", node_id, name=name, old=old, value=value)
        return old

    def unset_param(self, node_id: str, name: str) -> Any:
        """Leave parameter `name` out of the node again, so its default holds (a writer's path then follows the
        workflow file's name, graph_engine.default_outputs); the event's value is None."""
        old = self.nodes[node_id].params.pop(name, None)
        self._emit("param_changed", node_id, name=name, old=old, value=None)
        return old

    def set_bypass(self, node_id: str, bypass: bool) -> bool:
        old = self.nodes[node_id].bypass
        self.nodes[node_id].bypass = bool(bypass)
        self._emit("node_changed", node_id, bypass=bool(bypass))
        return old

    def set_title(self, node_id: str, title: str) -> str:
        old = self.nodes[node_id].title
        self.nodes[node_id].title = title
        self._emit("node_changed", node_id, title=title)
        return old

    def set_ui(self, key: str, value: Any) -> Any:
        """Layout data for a node id (or a `_groups`/`_notes`/`_view` entry); never affects execution."""
        old = copy.deepcopy(self.ui.get(key))
        if value is None:
            self.ui.pop(key, None)
        else:
            self.ui[key] = value
        self._emit("ui_changed", key, old=old, value=value)
        return old

    def set_meta(self, name: Optional[str] = None, description: Optional[str] = None) -> None:
        if name is not None:
            self.name = name
        if description is not None:
            self.description = description
        self._emit("meta_changed")

    def copy(self) -> "Graph":
        g = Graph(self.name)
        g.description = self.description
        g.nodes = copy.deepcopy(self.nodes)
        g.inputs = copy.deepcopy(self.inputs)
        g.ui = copy.deepcopy(self.ui)
        return g

    def subgraph(self, node_ids) -> "Graph":
        """The given nodes with the links among them (what copy/paste carries)."""
        keep = set(node_ids)
        g = Graph(self.name)
        for n in self.nodes:
            if n in keep:
                g.nodes[n] = copy.deepcopy(self.nodes[n])
                if n in self.ui:
                    g.ui[n] = copy.deepcopy(self.ui[n])
        for l in self.links():
            if l.src in keep and l.dst in keep:
                g.inputs.setdefault(l.dst, {})[l.dst_port] = (l.src, l.src_port)
        return g


def _move_key(d: Dict[str, Any], key: str, index: int) -> None:
    """Move `key` to `index` in the insertion order of `d`, in place."""
    items = [(k, v) for k, v in d.items() if k != key]
    items.insert(min(index, len(items)), (key, d[key]))
    d.clear()
    d.update(items)
