"""Editing verbs: what a click, a drag or a shortcut does to the workflow, as undoable steps.

Each method builds graph operations and pushes them as one command on the document's undo
stack; the canvas and panels never touch the graph themselves. Layout lives in `graph.ui`:
`ui[node] = {"pos": [x, y], "collapsed": bool, "seed": {param: mode}}`, and the special keys
`_groups` (backdrops), `_notes` (sticky notes) and `_reroutes` (`"dst.port": [[x, y], ...]`,
the points a link passes through)."""
from __future__ import annotations

import copy
import itertools
import random
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from graph_engine.graph import Link
from graph_engine.node_api import SEED_MAX
from graph_engine.outputs import is_output_param
from graph_engine.placeholders import param_value

from . import clipboard, layout, ops, rules
from .document import Document, absolute_inputs
from .geometry import node_size
from .titles import named_in

GROUPS, NOTES, REROUTES = "_groups", "_notes", "_reroutes"
SEED_MODES = ("fixed", "increment", "random")
NOTE_SIZE = (220, 120)
GROUP_COLORS = ("#3d5a80", "#6b4f7a", "#4f7a5a", "#7a6a4f", "#7a4f4f", "#4f6f7a")


class Refused(Exception):
    """An edit that does not make sense, with the reason for the user."""


class Controller:
    def __init__(self, doc: Document):
        self.doc = doc
        self._gestures = itertools.count(1)

    @property
    def graph(self):
        return self.doc.graph

    def new_gesture(self) -> int:
        """A token that makes every command pushed with it one undo step (drags, slider moves)."""
        return next(self._gestures)

    def _ui(self, key: str) -> dict:
        return copy.deepcopy(self.graph.ui.get(key) or {})

    def size_of(self, node_id: str) -> Tuple[float, float]:
        return node_size(self.doc.spec(node_id), bool(self.graph.ui.get(node_id, {}).get("collapsed")))

    # -- nodes ----------------------------------------------------------------------------------
    def add_node(self, type_name: str, pos: Tuple[float, float],
                 link_from: Optional[Tuple[str, str, bool]] = None) -> str:
        """Add a node with its declared defaults; `link_from=(node, port, port_is_input)` also wires it
        to the port a link was dragged from, through the first compatible port."""
        spec = self.doc.registry.get(type_name)
        if spec is None:
            raise Refused(f"unknown node type {type_name!r}")
        nid = self.graph.unique_id(type_name)
        # A writer's path is left out, as a file written by hand leaves it: it then follows the workflow file's name
        # (graph_engine.default_outputs); written as out/video.mp4, every workflow built here wrote that one file.
        params = {n: copy.deepcopy(p.default) for n, p in spec.params.items() if not is_output_param(p)}
        todo: List[ops.Op] = [ops.AddNode(type_name, nid, params, spec.version, {"pos": [round(pos[0]), round(pos[1])]})]
        if link_from is not None:
            other, port, is_input = link_from
            if is_input:
                want = rules.port_type(self.doc.registry, self.graph, other, port, True)
                out = rules.first_output_for(spec, want) if want else None
                if out is None:
                    raise Refused(f"{spec.title} has no output that {other}.{port} accepts")
                todo += self._drop_reroutes([f"{other}.{port}"]) + [ops.Connect(nid, out, other, port)]
            else:
                have = rules.port_type(self.doc.registry, self.graph, other, port, False)
                inp = rules.first_input_taking(spec, have) if have else None
                if inp is None:
                    raise Refused(f"{spec.title} has no input that takes {have.name if have else port}")
                todo.append(ops.Connect(other, port, nid, inp))
        self.doc.push(f"Add {spec.title}", todo)
        return nid

    def add_loaders(self, files: Sequence[Tuple[str, str]], pos: Tuple[float, float]) -> List[str]:
        """A loader node for each dropped file, `(type, path)`, one under the other from `pos`, as
        one undo step."""
        todo: List[ops.Op] = []
        ids: List[str] = []
        x, y = pos
        for type_name, path in files:
            spec = self.doc.registry.get(type_name)
            if spec is None:
                raise Refused(f"unknown node type {type_name!r}")
            nid = clipboard._fresh_id(self.graph.unique_id(type_name), set(self.graph.nodes) | set(ids))
            params = {n: copy.deepcopy(p.default) for n, p in spec.params.items()}
            params["path"] = str(path)
            todo.append(ops.AddNode(type_name, nid, params, spec.version, {"pos": [round(x), round(y)]}))
            ids.append(nid)
            y += node_size(spec)[1] + 20
        if todo:
            self.doc.push(f"Add {len(ids)} loader{'s' if len(ids) > 1 else ''}", todo)
        return ids

    def delete(self, node_ids: Iterable[str] = (), note_ids: Iterable[str] = (), group_ids: Iterable[str] = (),
               reroutes: Iterable[Tuple[str, int]] = (), reconnect: bool = True) -> None:
        """Delete; with `reconnect`, what fed a deleted chain is wired to what it fed, where the types allow."""
        gone = [n for n in node_ids if n in self.graph.nodes]
        todo: List[ops.Op] = []
        relinks = self._reconnections(set(gone)) if reconnect else []
        keys = [k for k in self._ui(REROUTES) if self._link_touches(k, set(gone))]
        todo += self._drop_reroutes(keys, extra=reroutes)
        todo += [ops.RemoveNode(n) for n in gone]
        todo += [ops.Connect(*l) for l in relinks]
        for key, ids in ((NOTES, set(note_ids)), (GROUPS, set(group_ids))):
            if ids:
                todo.append(ops.SetUi(key, {k: v for k, v in self._ui(key).items() if k not in ids}))
        if todo:
            self.doc.push("Delete", todo)

    def _link_touches(self, key: str, nodes) -> bool:
        dst, _, port = key.partition(".")
        src = self.graph.inputs.get(dst, {}).get(port, (None,))[0]
        return dst in nodes or src in nodes

    def _reconnections(self, gone) -> List[Tuple[str, str, str, str]]:
        reg, g = self.doc.registry, self.graph
        out = []
        for l in g.links():
            if l.src not in gone or l.dst in gone:
                continue
            want = rules.port_type(reg, g, l.dst, l.dst_port, True)
            node, seen = l.src, set()
            while node in gone and node not in seen and want is not None:
                seen.add(node)
                feeds = [(s, sp) for s, sp in g.inputs.get(node, {}).values()
                         if (t := rules.port_type(reg, g, s, sp, False)) is not None and want.can_take(t)]
                if not feeds:
                    break
                node, port = feeds[0]
                if node not in gone:
                    out.append((node, port, l.dst, l.dst_port))
        return out

    def _drop_reroutes(self, keys: Sequence[str], extra: Iterable[Tuple[str, int]] = ()) -> List[ops.Op]:
        rr = self._ui(REROUTES)
        extra = list(extra)
        if not any(k in rr for k in keys) and not extra:
            return []
        for k in keys:
            rr.pop(k, None)
        for key, idx in sorted(extra, key=lambda p: -p[1]):
            if key in rr and 0 <= idx < len(rr[key]):
                del rr[key][idx]
                if not rr[key]:
                    del rr[key]
        return [ops.SetUi(REROUTES, rr)]

    def named(self, node_id: str) -> str:
        """A node as the canvas names it, for undo texts: its title ('Undone: Set k_sampler_advanced_129_86.sampler'
        named it by an id the canvas shows nowhere), with its id where another node has the same title."""
        return named_in(self.graph, self.doc.registry, node_id)

    def set_param(self, node_id: str, name: str, value, gesture: Optional[int] = None) -> None:
        spec = self.doc.spec(node_id)
        inst = self.graph.nodes[node_id]
        # As the run takes it: a writer's path left out is the workflow file's own (out/shot.mp4), so the artist's
        # out/video.mp4 is written into the file, and the path shown, committed unchanged, is not.
        p = spec.params.get(name) if spec else None
        now = param_value(self.doc.workflow, self.doc.registry, node_id, name) if p else inst.params.get(name)
        if p is not None and is_output_param(p) and isinstance(value, str) and not value.strip():
            # A writer's path cleared goes back to the default shown greyed in its place, not to no file at all
            if name not in inst.params:
                return
            value = ops.LEFT_OUT
        if now == value and gesture is None:
            return
        self.doc.push(f"Set {name} of {self.named(node_id)}", [ops.SetParam(node_id, name, value)], gesture)

    def set_bypass(self, node_ids: Iterable[str], bypass: Optional[bool] = None) -> None:
        ids = [n for n in node_ids if n in self.graph.nodes]
        if not ids:
            return
        value = (not all(self.graph.nodes[n].bypass for n in ids)) if bypass is None else bypass
        self.doc.push("Bypass" if value else "Enable", [ops.SetBypass(n, value) for n in ids])

    def set_title(self, node_id: str, title: str) -> None:
        if self.graph.nodes[node_id].title != title:
            self.doc.push(f"Rename {self.named(node_id)} to {title}", [ops.SetTitle(node_id, title)])

    def set_collapsed(self, node_ids: Iterable[str], collapsed: Optional[bool] = None) -> None:
        ids = [n for n in node_ids if n in self.graph.nodes]
        if not ids:
            return
        value = (not all(self.graph.ui.get(n, {}).get("collapsed") for n in ids)) if collapsed is None else collapsed
        todo = []
        for n in ids:
            ui = self._ui(n)
            if value:
                ui["collapsed"] = True
            else:
                ui.pop("collapsed", None)
            todo.append(ops.SetUi(n, ui))
        self.doc.push("Collapse" if value else "Expand", todo)

    def set_seed_mode(self, node_id: str, param: str, mode: str) -> None:
        if mode not in SEED_MODES:
            raise Refused(f"seed mode must be one of {', '.join(SEED_MODES)}")
        ui = self._ui(node_id)
        seeds = dict(ui.get("seed") or {})
        seeds[param] = mode
        ui["seed"] = {k: v for k, v in seeds.items() if v != "fixed"}
        if not ui["seed"]:
            del ui["seed"]
        self.doc.push(f"Seed mode of {param} of {self.named(node_id)}", [ops.SetUi(node_id, ui)])

    def next_seeds(self, rng: Optional[random.Random] = None, reroll: bool = False) -> None:
        """Before a run: advance seeds set to increment, draw new ones for random (one undo step);
        `reroll` draws new values for every seed, whatever its mode."""
        rng = rng or random.Random()
        todo = []
        for nid, inst in self.graph.nodes.items():
            spec = self.doc.registry.get(inst.type)
            if spec is None:
                continue
            modes = self.graph.ui.get(nid, {}).get("seed") or {}
            if reroll:
                modes = {n: "random" for n, p in spec.params.items() if p.kind == "seed"}
            for name, mode in modes.items():
                if name not in spec.params:
                    continue
                p = spec.params[name]
                cur = int(inst.params.get(name, p.default) or 0)
                lo = int(p.min) if p.min is not None else 0
                if mode == "increment":
                    # No declared top: a seed grows past 2^31 (ComfyUI's do) instead of wrapping to 0.
                    top = int(p.max) if p.max is not None else SEED_MAX
                    new = cur + 1 if cur < top else lo
                else:
                    new = rng.randint(lo, int(p.max) if p.max is not None else 2 ** 31 - 1)
                todo.append(ops.SetParam(nid, name, new))
        if todo:
            self.doc.push("New seeds", todo)

    # -- links ----------------------------------------------------------------------------------
    def connect(self, src: str, src_port: str, dst: str, dst_port: str) -> None:
        why = rules.why_not(self.doc.registry, self.graph, src, src_port, dst, dst_port)
        if why:
            raise Refused(why)
        cur = self.graph.inputs.get(dst, {}).get(dst_port)
        if cur == (src, src_port):
            return
        todo = self._drop_reroutes([f"{dst}.{dst_port}"]) if cur else []
        self.doc.push(f"Connect {self.named(src)}'s {src_port} to {self.named(dst)}'s {dst_port}",
                      todo + [ops.Connect(src, src_port, dst, dst_port)])

    def relink(self, old: Tuple[str, str], src: str, src_port: str, dst: str, dst_port: str) -> None:
        """Move the loose end of the link into `old` (an input) to dst.dst_port, as one step."""
        why = rules.why_not(self.doc.registry, self.graph, src, src_port, dst, dst_port)
        if why:
            raise Refused(why)
        keys = [f"{old[0]}.{old[1]}"] + ([f"{dst}.{dst_port}"] if dst_port in self.graph.inputs.get(dst, {}) else [])
        self.doc.push(f"Reconnect {self.named(dst)}'s {dst_port}", self._drop_reroutes(keys) +
                      [ops.Disconnect(*old), ops.Connect(src, src_port, dst, dst_port)])

    def disconnect(self, links: Iterable[Tuple[str, str]]) -> None:
        links = [(d, p) for d, p in links if p in self.graph.inputs.get(d, {})]
        if links:
            self.doc.push("Disconnect", self._drop_reroutes([f"{d}.{p}" for d, p in links]) +
                          [ops.Disconnect(d, p) for d, p in links])

    def insert_on_link(self, node_id: str, link: Link, moved: Optional[Dict[str, Tuple[float, float]]] = None) -> bool:
        """Splice a node into a link (dropping a node onto a wire); with `moved`, the same undo step
        also places the dragged nodes."""
        spec = self.doc.spec(node_id)
        have = rules.port_type(self.doc.registry, self.graph, link.src, link.src_port, False)
        want = rules.port_type(self.doc.registry, self.graph, link.dst, link.dst_port, True)
        if spec is None or have is None or want is None or node_id in (link.src, link.dst):
            return False
        inp, out = rules.first_input_taking(spec, have), rules.first_output_for(spec, want)
        if inp is None or out is None or self.graph.inputs.get(node_id, {}).get(inp):
            return False
        if node_id in self.graph.ancestors([link.src]) or link.dst in self.graph.ancestors([node_id]):
            return False            # it would close a loop
        todo = self._move_ops(moved or {}) + self._drop_reroutes([f"{link.dst}.{link.dst_port}"])
        todo += [ops.Connect(link.src, link.src_port, node_id, inp), ops.Connect(node_id, out, link.dst, link.dst_port)]
        self.doc.push(f"Insert {self.named(node_id)}", todo)
        return True

    def set_reroutes(self, key: str, points: Sequence[Sequence[float]], gesture: Optional[int] = None) -> None:
        rr = self._ui(REROUTES)
        if points:
            rr[key] = [[round(x), round(y)] for x, y in points]
        else:
            rr.pop(key, None)
        self.doc.push("Reroute", [ops.SetUi(REROUTES, rr)], gesture)

    # -- moving and arranging -------------------------------------------------------------------
    def _move_ops(self, positions: Dict[str, Tuple[float, float]]) -> List[ops.Op]:
        todo = []
        for n, (x, y) in positions.items():
            if n in self.graph.nodes:
                ui = self._ui(n)
                new = [round(x), round(y)]
                if ui.get("pos") != new:
                    ui["pos"] = new
                    todo.append(ops.SetUi(n, ui))
        return todo

    def move(self, nodes: Dict[str, Tuple[float, float]] = None, notes: Dict[str, Tuple[float, float]] = None,
             groups: Dict[str, Tuple[float, float]] = None, reroutes: Dict[str, Sequence] = None,
             text: str = "Move") -> None:
        todo = self._move_ops(nodes or {})
        if reroutes:
            rr = self._ui(REROUTES)
            rr.update({k: [[round(x), round(y)] for x, y in pts] for k, pts in reroutes.items()})
            todo.append(ops.SetUi(REROUTES, rr))
        for key, moved in ((NOTES, notes or {}), (GROUPS, groups or {})):
            if not moved:
                continue
            data = self._ui(key)
            for k, (x, y) in moved.items():
                if k in data:
                    if key == GROUPS:
                        data[k]["rect"][:2] = [round(x), round(y)]
                    else:
                        data[k]["pos"] = [round(x), round(y)]
            todo.append(ops.SetUi(key, data))
        if todo:
            self.doc.push(text, todo)

    def _sizes(self, ids) -> Dict[str, Tuple[float, float]]:
        return {n: self.size_of(n) for n in ids}

    def _positions(self, ids) -> Dict[str, Tuple[float, float]]:
        return {n: tuple(self.graph.ui.get(n, {}).get("pos", (0, 0))) for n in ids}

    def align(self, node_ids: Sequence[str], mode: str) -> None:
        ids = [n for n in node_ids if n in self.graph.nodes]
        if len(ids) > 1:
            self.move(layout.align(self._positions(ids), self._sizes(ids), mode), text=f"Align {mode}")

    def distribute(self, node_ids: Sequence[str], axis: str) -> None:
        ids = [n for n in node_ids if n in self.graph.nodes]
        if len(ids) > 2:
            self.move(layout.distribute(self._positions(ids), self._sizes(ids), axis), text=f"Distribute {axis}")

    def auto_layout(self, node_ids: Optional[Sequence[str]] = None) -> None:
        ids = [n for n in (node_ids or self.graph.nodes) if n in self.graph.nodes]
        if not ids:
            return
        pos = self._positions(ids)
        origin = (min(p[0] for p in pos.values()), min(p[1] for p in pos.values()))
        links = [(l.src, l.dst) for l in self.graph.links()]
        self.move(layout.auto_layout(ids, links, self._sizes(ids), origin), text="Auto-layout")

    # -- groups and notes -----------------------------------------------------------------------
    def add_group(self, rect: Sequence[float], title: str = "Group", color: Optional[str] = None,
                  moves: Optional[Dict[str, Tuple[float, float]]] = None) -> str:
        """A frame at `rect`; `moves` (node -> position) go in the same undo step."""
        groups = self._ui(GROUPS)
        gid = clipboard._fresh_id("group", set(groups))
        groups[gid] = {"title": title, "color": color or GROUP_COLORS[len(groups) % len(GROUP_COLORS)],
                       "rect": [round(v) for v in rect]}
        self.doc.push("Add group", [ops.SetUi(GROUPS, groups)] + self._move_ops(moves or {}))
        return gid

    def group_selection(self, node_ids: Sequence[str], title: str = "Group", margin: float = 30.0) -> Optional[str]:
        ids = [n for n in node_ids if n in self.graph.nodes]
        if not ids:
            return None
        pos, sizes = self._positions(ids), self._sizes(ids)
        x0 = min(p[0] for p in pos.values()) - margin
        y0 = min(p[1] for p in pos.values()) - margin - 24
        x1 = max(pos[n][0] + sizes[n][0] for n in ids) + margin
        y1 = max(pos[n][1] + sizes[n][1] for n in ids) + margin
        # A frame holds what lies wholly inside it (a drag carries it, a copy takes it): a node left out of the
        # selection but lying between the selected ones would join the group. It steps just outside instead.
        others = [n for n in self.graph.nodes if n not in ids]
        moves = layout.out_of((x0, y0, x1, y1), self._positions(others), self._sizes(others), margin / 2)
        # Just past the edge may be where another node sits (one hid the other): the nearest spot there clear of
        # the nodes, the notes, the frame and the nodes stepped out before it.
        taken = [(x0, y0, x1 - x0, y1 - y0)]
        taken += [(*at, *self.size_of(n)) for n, at in self._positions(self.graph.nodes).items() if n not in moves]
        taken += [(*n.get("pos", (0, 0))[:2], *n.get("size", NOTE_SIZE)[:2]) for n in self._ui(NOTES).values()]
        # Nor in another group's frame, which it would join; one it lay in already may hold it still.
        frames = [tuple(g["rect"][:4]) for g in self._ui(GROUPS).values()]
        was = self._positions(list(moves))
        for n, (x, y) in moves.items():
            w, h = self.size_of(n)
            joined = [f for f in frames if not layout.holds(f, (*was[n], w, h))]
            moves[n] = layout.clear_spot((x, y, w, h), taken + joined)
            taken.append((*moves[n], w, h))
        return self.add_group([x0, y0, x1 - x0, y1 - y0], title, moves=moves)

    def update_group(self, gid: str, gesture: Optional[int] = None, **changes) -> None:
        groups = self._ui(GROUPS)
        if gid in groups:
            groups[gid].update({k: ([round(v) for v in val] if k == "rect" else val) for k, val in changes.items()})
            self.doc.push("Edit group", [ops.SetUi(GROUPS, groups)], gesture)

    def add_note(self, pos: Tuple[float, float], text: str = "Note") -> str:
        notes = self._ui(NOTES)
        nid = clipboard._fresh_id("note", set(notes))
        notes[nid] = {"text": text, "pos": [round(pos[0]), round(pos[1])], "size": list(NOTE_SIZE)}
        self.doc.push("Add note", [ops.SetUi(NOTES, notes)])
        return nid

    def update_note(self, nid: str, gesture: Optional[int] = None, **changes) -> None:
        notes = self._ui(NOTES)
        if nid in notes and any(notes[nid].get(k) != v for k, v in changes.items()):
            notes[nid].update(changes)
            self.doc.push("Edit note", [ops.SetUi(NOTES, notes)], gesture)

    # -- clipboard ------------------------------------------------------------------------------
    def copy_text(self, node_ids: Sequence[str], note_ids: Sequence[str] = (), group_ids: Sequence[str] = ()) -> str:
        # Relative paths to the footage the nodes read become absolute: pasted into a workflow in
        # another folder, 'footage/clip.mp4' named a file beside that one, and the run failed.
        g, folder = self.graph, self.doc.reads_from()
        fixes = absolute_inputs(g, self.doc.registry, folder, node_ids) if folder is not None else []
        if fixes:
            g = g.copy()
            for op in fixes:
                op.do(g)
        return clipboard.copy_text(g, self.doc.registry, node_ids, note_ids, group_ids)

    def paste(self, text: str, at: Optional[Tuple[float, float]] = None) -> List[str]:
        # Pasted nodes (and Ctrl+D's copies) landed on the nodes under the cursor, or 40 px from
        # their originals, hiding them: the copies go to the nearest place clear of the workflow.
        def build(d):
            try:
                return clipboard.paste_ops(text, self.graph, self.doc.registry,
                                           None if at is None else (at[0] + d[0], at[1] + d[1]),
                                           offset=(40.0 + d[0], 40.0 + d[1]))
            except ValueError as e:
                raise Refused(f"nothing to paste: {_not_nodes(text) or e}")
        todo, mapping = build((0.0, 0.0))
        rects = [(*op.args[4]["pos"], *node_size(self.doc.registry.get(op.args[0]), bool(op.args[4].get("collapsed"))))
                 for op in todo if isinstance(op, ops.AddNode)]
        # Its notes too: Ctrl+D on a note laid the copy 40 px from the original, over its text.
        mine = set(self.graph.ui.get(NOTES) or {})
        rects += [(*n["pos"][:2], *n.get("size", NOTE_SIZE)[:2]) for op in todo if isinstance(op, ops.SetUi)
                  and op.key == NOTES for k, n in op.value.items() if k not in mine]
        # Its groups' frames too: one came down over a node of the workflow pasted into, which a frame carries along
        # when dragged.
        mine = set(self.graph.ui.get(GROUPS) or {})
        rects += [tuple(grp["rect"][:4]) for op in todo if isinstance(op, ops.SetUi) and op.key == GROUPS
                  for k, grp in op.value.items() if k not in mine]
        if rects:
            left, top = min(r[0] for r in rects), min(r[1] for r in rects)
            block = (left, top, max(r[0] + r[2] for r in rects) - left, max(r[1] + r[3] for r in rects) - top)
            x, y = self.clear_spot(block)
            if (x, y) != (left, top):
                todo, mapping = build((x - left, y - top))
        self.doc.push(f"Paste {counted(len(mapping), 'node')}" if mapping else "Paste", todo)
        return list(mapping.values())

    def clear_spot(self, rect: Tuple[float, float, float, float]) -> Tuple[float, float]:
        """The top-left nearest to `rect`'s where it covers no node or note of the workflow."""
        others = [(*(self.graph.ui.get(n) or {}).get("pos", (0, 0))[:2], *self.size_of(n)) for n in self.graph.nodes]
        others += [(*n.get("pos", (0, 0))[:2], *n.get("size", NOTE_SIZE)[:2]) for n in self._ui(NOTES).values()]
        x, y = layout.clear_spot(rect, others)
        return round(x), round(y)

    def duplicate(self, node_ids: Sequence[str], note_ids: Sequence[str] = (), group_ids: Sequence[str] = ()) -> List[str]:
        ids = [n for n in node_ids if n in self.graph.nodes]
        if not ids and not note_ids and not group_ids:
            return []
        return self.paste(self.copy_text(ids, note_ids, group_ids))


def counted(n: int, word: str) -> str:
    """'1 node', '3 nodes' (the status bar said '1 nodes', the workflow page '1 links')."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _not_nodes(text: str) -> str:
    """What the clipboard holds when it is not Kinograph nodes at all, or '': plain text read 'the
    file is a str; a workflow file must be a mapping', a ComfyUI workflow 'missing `kinograph: 1`'. Text is what
    reads as no mapping of a workflow's own keys: a page's address, a prompt's lines, a number, a note's 'shot 12:
    keep the flare' (YAML's one-key mapping, said to be a workflow 'missing `kinograph: 1`')."""
    import json
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):        # RecursionError: brackets nested past json's C scanner
        data = None
    if isinstance(data, dict) and "kinograph" not in data and (
            isinstance(data.get("nodes"), list) or
            (data and all(isinstance(v, dict) and "class_type" in v for v in data.values()))):
        return ("the clipboard holds a ComfyUI workflow, not Kinograph nodes: save it as a .json file and "
                "open it (Ctrl+O) or drop it on the canvas, which imports it")
    if data is None:
        # Nodes written by hand (a slip in them gets the reader's line and reason) open a line with a workflow's own
        # key, or are a {...} mapping. Told by the lines, not by reading the text again: PyYAML, past the reader's
        # screen, recursed out of Ctrl+V on deep nesting and took 19 s over a megabyte of a pasted log.
        return "" if text.lstrip().startswith("{") or re.search(r"^(kinograph|nodes|ui)\s*:", text, re.M) else _TEXT
    if not (isinstance(data, dict) and {"kinograph", "nodes", "ui"} & set(data)):
        return _TEXT
    return ""


_TEXT = "the clipboard holds text, not Kinograph nodes (select nodes and Ctrl+C to copy them)"
