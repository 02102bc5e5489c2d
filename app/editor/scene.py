"""The canvas scene: a view of the document's graph that redraws from the graph's change events.

Interactive state (a node being dragged, a wire following the mouse) lives here until the
gesture ends; then the scene asks the controller for one undoable edit, and the items
move to where the model's events put them."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

from PySide6.QtCore import QPointF, QRectF, QSizeF, Qt, QTimer, Signal
from PySide6.QtGui import QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene

from graph_engine.graph import Event, Link

from . import rules, theme
from .controller import GROUPS, NOTES, REROUTES, Controller, Refused
from .decor_items import GroupItem, NoteItem
from .geometry import node_size
from .document import Document
from .link_items import DragLink, LinkItem, RerouteItem
from .node_item import NodeItem


class GraphScene(QGraphicsScene):
    message = Signal(str)                       # a refusal or a hint for the status bar
    refused = Signal(str, QPointF)              # why an edit was refused, where it was tried
    linkDroppedOnEmpty = Signal(QPointF, object)   # scene pos, (node, port, port_is_input)
    paramClicked = Signal(str, str)             # node, parameter: the view opens an editor
    renameRequested = Signal(str, str)          # "node"/"group", id
    layoutChanged = Signal()                    # something moved, appeared or vanished (minimap)

    def __init__(self, doc: Document, controller: Controller):
        super().__init__()
        self.doc, self.controller = doc, controller
        self.snapping = True
        self.far = False                # zoomed far out: the view draws nodes and links in a few batches
        self._overview = None
        self.nodes: Dict[str, NodeItem] = {}
        self.links: Dict[str, LinkItem] = {}           # by "dst.port"
        self.groups: Dict[str, GroupItem] = {}
        self.notes: Dict[str, NoteItem] = {}
        self.reroute_items: List[RerouteItem] = []
        self._drag: Optional[dict] = None
        self._moving: Optional[dict] = None
        self._insert_link: Optional[LinkItem] = None
        # Nodes added (a paste of 200) are looked at for missing model files together, once they are all in:
        # one at a time, each look went through the whole graph (a third of a 200-node paste's time).
        self._added: List[str] = []
        self._check_added = QTimer(self)
        self._check_added.setSingleShot(True)
        self._check_added.setInterval(0)
        self._check_added.timeout.connect(lambda: self.check_models(self._added[:]) or self._added.clear())
        self._unsubscribe = doc.graph.subscribe(self._on_event)
        doc.pathChanged.connect(lambda _: self.update())   # writers' default paths follow the file's new name
        self._selection_moved = False       # selected nodes removed by the edit under way, not told yet
        doc.undo.indexChanged.connect(self._tell_selection)     # each edit, undo and redo ends with it
        self.selectionChanged.connect(self.overview_changed)
        self.rebuild()

    def close(self) -> None:
        self._unsubscribe()

    def _tell_selection(self, _index=None) -> None:
        if self._selection_moved:
            self._selection_moved = False
            self.selectionChanged.emit()

    # -- model -> items -------------------------------------------------------------------------
    def rebuild(self) -> None:
        self.clear()
        self.nodes, self.links, self.groups, self.notes, self.reroute_items = {}, {}, {}, {}, []
        g = self.doc.graph
        for nid in g.nodes:
            self._add_node(nid)
        for l in g.links():
            self._add_link(l)
        self._sync_groups()
        self._sync_notes()
        self._sync_reroutes()
        self.fit_groups()
        self.check_models()
        self.layoutChanged.emit()

    def check_models(self, only=None) -> None:
        """Mark the loaders (of `only`, or all) whose model file is not there, as `kinograph validate` finds them,
        and the nodes with a problem the file was read with that validating them still finds."""
        found = self.doc.missing_models(only)
        for nid in list(self.nodes) if only is None else only:
            self._check_problems(nid, found.get(nid, {}))

    def _check_problems(self, nid: str, missing=None) -> None:
        """Mark `nid` with the problems the file was read with that validating it still finds (and with its
        `missing` model files, when looked for)."""
        item = self.nodes.get(nid)
        if item is None:
            return
        had = bool(item.trouble())
        if missing is not None:
            item.set_missing(missing)
        item.set_problems([p.message for p in self.doc.still_found(nid) if not p.dropped])
        if bool(item.trouble()) != had:
            self.layoutChanged.emit()       # the minimap marks it, or no longer

    def _add_node(self, nid: str) -> None:
        inst = self.doc.graph.nodes[nid]
        item = NodeItem(nid, self.doc.registry.get(inst.type), inst, self.doc.graph.ui.get(nid) or {})
        self.nodes[nid] = item
        self._far_mode(item)
        self.addItem(item)

    def _add_link(self, l: Link) -> None:
        a, b = self.nodes.get(l.src), self.nodes.get(l.dst)
        if a is None or b is None:
            return
        # out of a node of an unknown type (a red placeholder): the colour of what it feeds
        t = rules.port_type(self.doc.registry, self.doc.graph, l.src, l.src_port, False) or \
            rules.port_type(self.doc.registry, self.doc.graph, l.dst, l.dst_port, True)
        item = LinkItem(a, l.src_port, b, l.dst_port, t.color if t else "#888888")
        item.points = [QPointF(*p) for p in (self.doc.graph.ui.get(REROUTES) or {}).get(item.key, [])]
        item.update_path()
        self.links[item.key] = item
        self._far_mode(item)
        self.addItem(item)

    def _remove_link(self, key: str) -> None:
        item = self.links.pop(key, None)
        if item is not None:
            item.detach()
            self.removeItem(item)

    def _on_event(self, ev: Event) -> None:
        k = ev.kind
        if k == "node_added":
            self._add_node(ev.node)
            self._added.append(ev.node)
            self._check_added.start()
        elif k == "node_removed":
            item = self.nodes.pop(ev.node, None)
            if item is not None and item.isSelected():
                # Told once the edit is done (_tell_selection): a Delete of 300 selected nodes changed the selection
                # 300 times, each rebuilding the properties, the window frozen for seconds.
                self.blockSignals(True)
                try:
                    self.removeItem(item)
                finally:
                    self.blockSignals(False)
                self._selection_moved = True
            elif item is not None:
                self.removeItem(item)
        elif k == "linked":
            self._remove_link(f"{ev.node}.{ev.data['link'].dst_port}")
            self._add_link(ev.data["link"])
            self._refresh(ev.data["link"].dst)
            self._resize_unknown(ev.data["link"])
            # 'not connected', 'links to missing node' as read: put right by this link (or made so by its undo),
            # the red mark zoomed out stayed until the file was reopened
            self._check_problems(ev.data["link"].dst)
        elif k == "unlinked":
            self._remove_link(f"{ev.node}.{ev.data['link'].dst_port}")
            self._refresh(ev.node)
            self._resize_unknown(ev.data["link"])
            self._check_problems(ev.node)
        elif k == "param_changed":
            self._refresh(ev.node)
            self.check_models([ev.node])
            self.fit_groups(ev.node)        # it grew or shrank where it stands
            self.overview_changed()
            self.layoutChanged.emit()
            return
        elif k in ("node_changed", "ui_changed") and ev.node in self.nodes:
            g = self.doc.graph
            self.nodes[ev.node].sync(g.nodes[ev.node], g.ui.get(ev.node) or {})
            if k == "node_changed":         # bypassed, a loader loads nothing
                self.check_models([ev.node])
            for link in self.nodes[ev.node].links:
                link.update()
        elif k == "ui_changed" and ev.node == GROUPS:
            self._sync_groups()
        elif k == "ui_changed" and ev.node == NOTES:
            self._sync_notes()
        elif k == "ui_changed" and ev.node == REROUTES:
            self._sync_reroutes()
        else:
            return
        self.fit_groups()
        self.overview_changed()
        self.layoutChanged.emit()

    def _resize_unknown(self, link: Link) -> None:
        """A node of an unknown type has a socket per link: one more or less changes its height."""
        for nid in (link.src, link.dst):
            item = self.nodes.get(nid)
            if item is not None and item.spec is None:
                item.sync(item.inst, {"collapsed": item.collapsed})

    def _refresh(self, nid: str) -> None:
        item = self.nodes.get(nid)
        if item is not None:
            item.update()

    def _sync_keyed(self, key: str, items: dict, make) -> None:
        data = self.doc.graph.ui.get(key) or {}
        for k in [k for k in items if k not in data]:
            self.removeItem(items.pop(k))
        for k, body in data.items():
            if not isinstance(body, dict):
                continue
            if k in items:
                items[k].sync(body)
            else:
                items[k] = make(k, body)
                self.addItem(items[k])

    def _sync_groups(self) -> None:
        self._sync_keyed(GROUPS, self.groups, GroupItem)

    def fit_groups(self, grown: Optional[str] = None) -> None:
        """Each frame drawn around the nodes it holds at their plain size, grown by what they show beyond
        it (a thumbnail, a loader's footer), with the margin it had below and right of them. `grown`: only the
        node whose size changed where it stands (a thumbnail, an edit), so only the frames holding it: every
        frame against every node took 24 ms for 200 nodes in 20 frames, at each thumbnail after a run and each
        pixel of a field's drag."""
        def plain(item):
            return QRectF(item.pos(), QSizeF(*node_size(item.spec, item.collapsed)))
        frames = {grp: QRectF(grp.pos(), QSizeF(*grp.base)) for grp in self.groups.values()}
        if grown is not None:
            at = plain(self.nodes[grown]) if grown in self.nodes else None
            frames = {grp: f for grp, f in frames.items() if at is not None and f.contains(at)}
        rects = [(item, plain(item)) for item in self.nodes.values()] if frames else []
        for grp, frame in frames.items():
            right, bottom = frame.right(), frame.bottom()
            for item, rect in rects:
                if frame.contains(rect):
                    right = max(right, item.x() + item.w + frame.right() - rect.right())
                    bottom = max(bottom, item.y() + item.h + frame.bottom() - rect.bottom())
            grp.fit(right - frame.left(), bottom - frame.top())

    def _sync_notes(self) -> None:
        self._sync_keyed(NOTES, self.notes, NoteItem)

    def _sync_reroutes(self) -> None:
        for r in self.reroute_items:
            self.removeItem(r)
        self.reroute_items = []
        rr = self.doc.graph.ui.get(REROUTES) or {}
        for key, link in self.links.items():
            pts = [QPointF(*p) for p in rr.get(key, [])]
            if pts != link.points:
                link.points = pts
                link.update_path()
            for i, p in enumerate(pts):
                item = RerouteItem(key, i, p, link.color)
                self.reroute_items.append(item)
                self.addItem(item)

    # -- far out: batched drawing -----------------------------------------------------------------
    def set_far(self, far: bool) -> None:
        """Far out, a node is a coloured block and a link a thin line: the view paints them all in a
        few batched calls (`paint_overview`) instead of a thousand per-item calls, while the items
        stay in place for selecting and dragging. Close up, items paint themselves from a cache."""
        if far == self.far:
            return
        self.far = far
        for item in list(self.nodes.values()) + list(self.links.values()):
            self._far_mode(item)
        self._overview = None

    def _far_mode(self, item) -> None:
        item.setFlag(QGraphicsItem.ItemHasNoContents, self.far)
        item.setCacheMode(QGraphicsItem.NoCache if self.far else QGraphicsItem.DeviceCoordinateCache)

    def titles_may_move(self, rect: QRectF) -> None:
        """A node or note moved to `rect`: the frames' titles it stands over, or stood over, are drawn again."""
        for grp in self.groups.values():
            grp.title_may_move(rect)

    def overview_changed(self) -> None:
        if self.far:
            self._overview = None
            self.update()

    def paint_overview(self, painter) -> None:
        if self._overview is None:
            blocks, wires = {}, {}
            for item in self.nodes.values():
                st = item.status.state if item.status is not None else None
                c = theme.NODE_SELECTED if item.isSelected() else theme.STATUS_COLORS.get(st, item.header_color)
                blocks.setdefault(c.rgba(), (c, []))[1].append(QRectF(item.pos(), QSizeF(item.w, item.h)))
            for link in self.links.values():
                c = theme.NODE_SELECTED if link.isSelected() else link.color
                wires.setdefault(c.rgba(), (c, QPainterPath()))[1].addPath(link.path())
            self._overview = (list(blocks.values()), list(wires.values()))
        blocks, wires = self._overview
        painter.setBrush(Qt.NoBrush)
        for c, path in wires:
            painter.setPen(QPen(c, 0))
            painter.drawPath(path)
        painter.setPen(Qt.NoPen)
        for c, rects in blocks:
            painter.setBrush(c)
            painter.drawRects(rects)

    # -- status ---------------------------------------------------------------------------------
    def set_status(self, node_id: str, status) -> None:
        item = self.nodes.get(node_id)
        if item is not None:
            item.set_status(status)
            self.overview_changed()

    # -- selection ------------------------------------------------------------------------------
    def selected_nodes(self) -> List[str]:
        return [i.node_id for i in self.selectedItems() if isinstance(i, NodeItem)]

    def selected_notes(self) -> List[str]:
        return [i.nid for i in self.selectedItems() if isinstance(i, NoteItem)]

    def selected_groups(self) -> List[str]:
        return [i.gid for i in self.selectedItems() if isinstance(i, GroupItem)]

    def selected_links(self) -> List[Tuple[str, str]]:
        return [(i.dst_item.node_id, i.dst_port) for i in self.selectedItems() if isinstance(i, LinkItem)]

    def selected_reroutes(self) -> List[Tuple[str, int]]:
        return [(i.link_key, i.index) for i in self.selectedItems() if isinstance(i, RerouteItem)]

    def select_nodes(self, ids) -> None:
        self.select_items([self.nodes[n] for n in ids if n in self.nodes])

    def select_items(self, items) -> None:
        """Select these items alone, telling the window once: item by item, a paste of 90 nodes changed the
        selection 91 times, each change rebuilding the properties (20 s, the window frozen)."""
        before = self.selectedItems()
        self.blockSignals(True)
        try:
            self.clearSelection()
            for item in items:
                item.setSelected(True)
        finally:
            self.blockSignals(False)
        if self.selectedItems() != before:
            self.selectionChanged.emit()

    def node_at(self, pos: QPointF) -> Optional[NodeItem]:
        for item in self.items(pos):
            if isinstance(item, NodeItem):
                return item
        return None

    # -- dragging a wire ------------------------------------------------------------------------
    def start_link_drag(self, item: NodeItem, port: str, is_input: bool, pos: QPointF) -> None:
        g = self.doc.graph
        detach = None
        if is_input and port in g.inputs.get(item.node_id, {}):
            # Picking up a connected input moves that link's loose end, as in other node editors.
            src, sport = g.inputs[item.node_id][port]
            detach = (item.node_id, port)
            origin = (src, sport, False)
            self.links[f"{item.node_id}.{port}"].hide()
        else:
            origin = (item.node_id, port, is_input)
        o_item = self.nodes[origin[0]]
        t = rules.port_type(self.doc.registry, g, origin[0], origin[1], origin[2])
        wire = DragLink(o_item.port_scene_pos(origin[1], origin[2]), origin[2], t.color if t else "#888888")
        self.addItem(wire)
        self._drag = {"origin": origin, "detach": detach, "wire": wire, "target": None}
        self.update_link_drag(pos)

    def _target_at(self, pos: QPointF):
        """(node, port, is_input) under `pos` for the wire being dragged: the socket there, or on a
        node's body the port the wire would take; (None, why) when that node has none."""
        item = self.node_at(pos)
        if item is None:
            return None
        hit = item.port_at(item.mapFromScene(pos))
        if hit:
            return (item.node_id,) + hit
        # Dropped on the body (sockets are small): the first port that fits, as in other node
        # editors. It opened the add-node search as if dropped on empty canvas, and for a type the
        # node could not take said nothing of why.
        if not self._drag:
            return None
        # Dropped on a param's field from an output: the param takes the link (ComfyUI's widget turned input)
        # where it takes one of that type (numbers, switches, words); on any other field, as on the body.
        param = item.param_at(item.mapFromScene(pos), linked=True)
        node, port, from_input = self._drag["origin"]
        want = item.spec.port_type(param) if param is not None and item.spec else None
        have = rules.port_type(self.doc.registry, self.doc.graph, node, port, from_input)
        if want is not None and have is not None and not from_input and want.can_take(have):
            return item.node_id, param, True
        port, why = self._port_on(item, self._drag["origin"])
        return port or (None, why)

    def _port_on(self, item: NodeItem, origin):
        g, reg = self.doc.graph, self.doc.registry
        node, port, from_input = origin
        if item.node_id == node:
            return None, "a node cannot feed itself"
        if item.spec is None:
            return None, f"{item.node_id} is of type {item.inst.type}, which this Kinograph does not have"
        t = rules.port_type(reg, g, node, port, from_input)
        if t is None:
            return None, None
        if from_input:
            out = rules.first_output_for(item.spec, t)
            return ((item.node_id, out, False), None) if out else \
                (None, f"{item.node_id} has no output that {node}.{port} ({t.name}) takes")
        fits = [n for n, p in item.spec.inputs.items() if p.type.can_take(t)]
        if not fits:
            return None, f"{item.node_id} has no input that takes {t.name}"
        exact = [n for n in fits if item.spec.inputs[n].type is t] + fits
        taken = g.inputs.get(item.node_id, {})
        detached = self._drag["detach"] if self._drag else None
        best = next((n for n in exact if detached == (item.node_id, n)), None) or \
            next((n for n in exact if n not in taken), exact[0])
        return (item.node_id, best, True), None

    def _endpoints(self, origin, target):
        """(src, src_port, dst, dst_port) for a drag from origin to target, or a refusal."""
        if origin[2] == target[2]:
            side = "inputs" if origin[2] else "outputs"
            return None, f"cannot connect two {side}: drag from an output to an input"
        src, dst = (target, origin) if origin[2] else (origin, target)
        ends = (src[0], src[1], dst[0], dst[1])
        why = rules.why_not(self.doc.registry, self.doc.graph, *ends)
        if why and self._drag and self._drag["detach"] == (dst[0], dst[1]) and src[:2] == origin[:2]:
            why = None
        return (ends if not why else None), why

    def update_link_drag(self, pos: QPointF) -> None:
        d = self._drag
        if d is None:
            return
        target = self._target_at(pos)
        refusal = None
        if target is not None and target[0] is None:
            target, refusal = None, target[1]
        elif target is not None and target != d["origin"]:        # not the socket it starts from
            _, refusal = self._endpoints(d["origin"], target)
            if not refusal:
                pos = self.nodes[target[0]].port_scene_pos(target[1], target[2])
        d["target"] = target
        d["wire"].move_to(pos, refusal)
        if refusal:
            self.message.emit(refusal)

    def finish_link_drag(self, pos: QPointF) -> None:
        d = self._drag
        if d is None:
            return
        try:
            self._finish_link_drag(d, pos)
        finally:
            self._drag = None

    def _finish_link_drag(self, d: dict, pos: QPointF) -> None:
        self.removeItem(d["wire"])
        if d["detach"]:
            key = f"{d['detach'][0]}.{d['detach'][1]}"
            if key in self.links:
                self.links[key].show()
        target = self._target_at(pos)
        if target is not None and target[0] is None and not d["detach"]:
            if target[1]:
                self.refused.emit(f"Not connected: {target[1]}", pos)
            return
        if target is None or target[0] is None:        # a loose end let go where nothing takes it
            if d["detach"]:
                self.controller.disconnect([d["detach"]])
            else:
                self.linkDroppedOnEmpty.emit(pos, d["origin"])
            return
        ends, why = self._endpoints(d["origin"], target)
        if why:
            self.refused.emit(f"Not connected: {why}", pos)
            return
        if d["detach"] and d["detach"] == (ends[2], ends[3]):
            return
        try:
            self.controller.relink(d["detach"], *ends) if d["detach"] else self.controller.connect(*ends)
        except Refused as e:
            self.refused.emit(f"Not connected: {e}", pos)

    # -- moving ---------------------------------------------------------------------------------
    def begin_move(self) -> None:
        """A drag of the selection starts; selected groups carry the nodes and notes inside them."""
        moving = {i: i.pos() for i in self.selectedItems()
                  if isinstance(i, (NodeItem, NoteItem, GroupItem, RerouteItem))}
        inside = self._inside([i for i in moving if isinstance(i, GroupItem)])
        self._moving = {"start": moving, "carried": {i: i.pos() for i in inside if i not in moving}}

    def _inside(self, groups) -> list:
        """The node and note items lying wholly inside any of `groups` (what dragging one carries)."""
        areas = [g.scene_rect() for g in groups]
        return [item for item in list(self.nodes.values()) + list(self.notes.values())
                if any(a.contains(item.sceneBoundingRect()) for a in areas)]

    def selection_with_groups(self) -> Tuple[List[str], List[str], List[str]]:
        """The selected nodes, notes and groups, with what lies inside the selected groups: what a
        copy, a cut or a duplicate takes (a group copied empty would be a frame around nothing)."""
        groups = self.selected_groups()
        inside = self._inside([self.groups[g] for g in groups])
        nodes = self.selected_nodes() + [i.node_id for i in inside if isinstance(i, NodeItem) and not i.isSelected()]
        notes = self.selected_notes() + [i.nid for i in inside if isinstance(i, NoteItem) and not i.isSelected()]
        return nodes, notes, groups

    def group_dragged(self, grp: GroupItem) -> None:
        m = self._moving
        if not m or grp not in m["start"]:
            return
        delta = grp.pos() - m["start"][grp]
        for item, p in m["carried"].items():
            item.setPos(p + delta)

    def node_dragged(self, item: NodeItem) -> None:
        """Light up the link a lone, unconnected node would be inserted into if dropped here."""
        m = self._moving
        nodes = [i for i in (m["start"] if m else ()) if isinstance(i, NodeItem)]
        target = None
        if len(nodes) == 1 and nodes[0] is item and not item.links:
            body = item.sceneBoundingRect()
            crossing = [l for l in self.items(body) if isinstance(l, LinkItem)]
            if crossing:
                c = body.center()
                target = min(crossing, key=lambda l: (l.path().pointAtPercent(0.5) - c).manhattanLength())
        if target is not self._insert_link:
            if self._insert_link is not None:
                self._insert_link.highlight = False
                self._insert_link.update()
            if target is not None:
                target.highlight = True
                target.update()
            self._insert_link = target

    def reroute_dragged(self, r: RerouteItem) -> None:
        link = self.links.get(r.link_key)
        if link is not None and r.index < len(link.points):
            link.points[r.index] = r.pos()
            link.update_path()

    def end_move(self) -> None:
        m, self._moving = self._moving, None
        insert, self._insert_link = self._insert_link, None
        if insert is not None:
            insert.highlight = False
            insert.update()
        if not m:
            return
        items = dict(m["start"])
        items.update(m["carried"])
        moved = {i: i.pos() for i, p in items.items() if i.pos() != p}
        if not moved:
            return
        nodes = {i.node_id: (i.x(), i.y()) for i in moved if isinstance(i, NodeItem)}
        notes = {i.nid: (i.x(), i.y()) for i in moved if isinstance(i, NoteItem)}
        groups = {i.gid: (i.x(), i.y()) for i in moved if isinstance(i, GroupItem)}
        reroutes = {}
        for r in (i for i in moved if isinstance(i, RerouteItem)):
            link = self.links.get(r.link_key)
            if link is not None:
                reroutes[r.link_key] = [(p.x(), p.y()) for p in link.points]
        if insert is not None and len(nodes) == 1 and not notes and not groups:
            (nid,) = nodes
            link = Link(insert.src_item.node_id, insert.src_port, insert.dst_item.node_id, insert.dst_port)
            if self.controller.insert_on_link(nid, link, moved=nodes):
                return
        self.controller.move(nodes, notes, groups, reroutes)

    # -- small edits the items ask for ----------------------------------------------------------
    def add_reroute(self, link: LinkItem, pos: QPointF) -> None:
        a = link.src_item.port_scene_pos(link.src_port, False)
        b = link.dst_item.port_scene_pos(link.dst_port, True)
        chain = [a] + link.points + [b]

        def d(p, q):
            return math.hypot(p.x() - q.x(), p.y() - q.y())

        i = min(range(len(chain) - 1), key=lambda i: d(chain[i], pos) + d(pos, chain[i + 1]) - d(chain[i], chain[i + 1]))
        pts = link.points[:i] + [pos] + link.points[i:]
        self.controller.set_reroutes(link.key, [(p.x(), p.y()) for p in pts])

    def click_param(self, item: NodeItem, name: str, screen_pos) -> None:
        p = item.spec.params[name]
        if p.type == "bool":
            cur = item.inst.params.get(name, p.default)
            self.controller.set_param(item.node_id, name, not bool(cur))
        else:
            self.paramClicked.emit(item.node_id, name)

    def rename_node(self, item: NodeItem) -> None:
        self.renameRequested.emit("node", item.node_id)

    def rename_group(self, item: GroupItem) -> None:
        self.renameRequested.emit("group", item.gid)

    def nodes_rect(self, ids=None) -> QRectF:
        items = [self.nodes[n] for n in ids if n in self.nodes] if ids else \
            list(self.nodes.values()) + list(self.groups.values()) + list(self.notes.values())
        r = QRectF()
        for i in items:
            r = r.united(i.sceneBoundingRect())
        return r
