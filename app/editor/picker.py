"""Points and boxes clicked on a node's picture in the viewer, for its parameters of kind `points`,
`negative_points` and `box` (as ComfyUI's PointsEditor is clicked), on whichever frame is shown and for one object at
a time: left click on the object, right click (or Shift+click) off it, a left drag draws its box on that frame; a
point or a box corner dragged moves, right-clicked goes. The other objects are drawn dimmed in their own colours; a
click on one of them edits it instead. Positions are the picture's own pixels whatever the zoom; each gesture is one
edit of the parameters' text through the editor's commands (one undo step), rewriting only the object and frame
picked (graph_engine.picks.set_prompts)."""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Tuple

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen

from graph_engine.picks import groups_of, remove_object, set_prompts

PICK_KINDS = ("points", "negative_points", "box")
GRAB = 8.0                  # screen pixels around a point or corner that take a click
DRAG = 4.0                  # screen pixels a left press moves before it draws a box instead of a point
NEGATIVE = QColor("#ff5252")
# Object k's colour: its points (a cross) and its box; negative points are red with a bar whatever their object.
OBJECT_COLOURS = [QColor(c) for c in ("#3ddc84", "#40c4ff", "#ffd54f", "#e040fb", "#ff9100", "#b2ff59", "#f48fb1")]
DIMMED = 0.4                # the opacity of the objects not being edited
HINT = ("Object {obj} of {count}, frame {frame}: click the object{neg}{box}; drag a point or a corner to move it, "
        "right-click it to remove it. ←/→ or the slider change frame, Ctrl+Z undoes, Esc or Done ends")


def object_colour(k: int) -> QColor:
    return OBJECT_COLOURS[k % len(OBJECT_COLOURS)]


def pick_params(spec) -> Dict[str, str]:
    """{kind: parameter name} of the node's parameters picked on its picture (the first of each kind)."""
    found: Dict[str, str] = {}
    for name, p in (spec.params.items() if spec is not None else ()):
        if p.kind in PICK_KINDS:
            found.setdefault(p.kind, name)
    return found


class Picker:
    """One node's picks: read from its parameters' text, drawn over the picture of `frame`, edited by the mouse for
    object `obj` (0-based; one past the last is a new object, written at its first pick). `commit({name: text})`
    applies one gesture's edits as one undo step; `set_value` takes a parameter's text back (an undo, a value typed)."""

    def __init__(self, node_id: str, names: Dict[str, str], values: Dict[str, str],
                 commit: Callable[[Dict[str, str]], None]):
        self.node_id, self.names, self.commit = node_id, dict(names), commit
        self.texts: Dict[str, str] = {}
        self.groups: Dict[str, list] = {kind: [] for kind in PICK_KINDS}
        self.unreadable: List[str] = []        # parameters whose text is not positions: shown, not drawn over
        self.enabled = True                    # a picture is on screen
        self.frame = 0
        self.obj = 0
        self._drag = None
        for kind, name in self.names.items():
            self.set_value(name, values.get(name, ""))

    # -- what there is -------------------------------------------------------------------------------
    def count(self) -> int:
        """The objects the text names (at least one: the first pick makes it)."""
        return max(1, len(self.groups["points"]), len(self.groups["box"]))

    def shared_negatives(self) -> bool:
        """One group of negative points for several objects: the node takes it for every object."""
        return len(self.groups["negative_points"]) == 1 and self.count() > 1

    def _group(self, kind: str, k: int) -> int:
        return 0 if kind == "negative_points" and self.shared_negatives() else k

    def on_frame(self, kind: str, k: int) -> list:
        """Object k's positions of this kind on the frame shown: [(x, y), ...] or [(x0, y0, x1, y1)]."""
        groups = self.groups[kind]
        k = self._group(kind, k)
        return [p[:-1] for p in groups[k] if p[-1] == self.frame] if k < len(groups) else []

    def frames_of(self, k: int) -> List[int]:
        """The frames object k has prompts on (the object list says them)."""
        return sorted({p[-1] for kind in ("points", "box") if k < len(self.groups[kind])
                       for p in self.groups[kind][k]})

    def hint(self) -> str:
        neg = ", right-click (or Shift+click) what to leave out" if "negative_points" in self.names else ""
        box = ", drag a box around it" if "box" in self.names else ""
        count = max(self.count(), self.obj + 1)
        text = HINT.format(obj=self.obj + 1, count=count, frame=self.frame, neg=neg, box=box)
        if "negative_points" in self.names and self.shared_negatives():
            text += f". {self.names['negative_points']} is one group: its points are left out of every object"
        if self.unreadable:
            text += f". {', '.join(self.unreadable)} cannot be read as positions: a click replaces it"
        return text

    def set_value(self, name: str, text) -> None:
        kind = next((k for k, n in self.names.items() if n == name), None)
        if kind is None:
            return
        self.texts[name] = "" if text is None else str(text)
        self.unreadable = [n for n in self.unreadable if n != name]
        try:
            self.groups[kind] = groups_of(text, kind)
        except ValueError:
            self.unreadable.append(name)
            self.groups[kind] = []
        self.obj = min(self.obj, self.count())

    def choose(self, k: int) -> None:
        """Edit object k (0-based; count() starts a new one)."""
        self.obj = max(0, min(int(k), self.count()))

    def remove_object(self) -> None:
        """The object being edited gone from every parameter, as one undo step; the objects after it move up."""
        if self.obj >= self.count():
            self.obj = max(0, self.count() - 1)
            return
        edits = {}
        for kind, name in self.names.items():
            if kind == "negative_points" and len(self.groups[kind]) != self.count():
                continue            # one group for all (or none): it stays for the objects left
            edits[name] = remove_object(self.texts.get(name, ""), kind, self.obj)
        self._commit(edits)
        self.obj = max(0, min(self.obj, self.count() - 1))

    # -- edits -------------------------------------------------------------------------------------
    def _commit(self, edits: Dict[str, str]) -> None:
        edits = {n: t for n, t in edits.items() if t != self.texts.get(n, "")}
        if edits:
            self.commit(edits)

    def _set(self, kind: str, values) -> None:
        """Object obj's positions of `kind` on the frame shown made `values`, in one gesture: with a new object,
        negative points that were the first object's own stay its own (a group is added for the new one)."""
        name = self.names[kind]
        text = "" if name in self.unreadable else self.texts.get(name, "")
        count, k = self.count(), self._group(kind, self.obj)
        edits = {name: set_prompts(text, kind, k, self.frame, values)}
        negative = self.names.get("negative_points")
        negs = len(self.groups["negative_points"])
        if kind == "negative_points" and negs == 0 and self.obj < count - 1:
            edits[name] = set_prompts(edits[name], kind, count - 1, self.frame, [])    # not one group for all
        elif kind != "negative_points" and negative and self.obj >= count and negs == count and \
                (count > 1 or any(self.groups["negative_points"][0])) and negative not in self.unreadable:
            edits[negative] = set_prompts(self.texts.get(negative, ""), "negative_points", self.obj, self.frame, [])
        self._commit(edits)

    def _hit(self, at: QPointF, to_screen, k: int) -> Optional[tuple]:
        """Object k's point or box corner under the screen position `at`: (kind, index)."""
        best, found = GRAB, None
        for kind in ("points", "negative_points"):
            for i, (x, y) in enumerate(self.on_frame(kind, k) if kind in self.names else ()):
                d = _dist(to_screen(x + 0.5, y + 0.5), at)
                if d <= best:
                    best, found = d, (kind, i)
        box = self._box(k)
        if box is not None:
            for i, (x, y) in enumerate(_corners(box)):
                d = _dist(to_screen(x, y), at)
                if d <= best:
                    best, found = d, ("box", i)
        return found

    def _box(self, k: int):
        boxes = self.on_frame("box", k) if "box" in self.names else []
        return boxes[0] if boxes else None

    def press(self, at: QPointF, button, modifiers, size: Tuple[int, int], to_screen, to_image) -> bool:
        """A mouse press at screen position `at` over a picture of `size` (width, height); True when it was
        a pick (the canvas does not pan). A press on another object's point or corner makes it the one edited."""
        if not self.enabled:
            return False
        hit = self._hit(at, to_screen, self.obj)
        if hit is None and button in (Qt.LeftButton, Qt.RightButton):
            other = next((k for k in range(self.count()) if k != self.obj and self._hit(at, to_screen, k)), None)
            if other is not None:
                self.obj = other
                return True
        if button == Qt.RightButton:
            if hit and hit[0] == "box":
                self._set("box", [])
            elif hit:
                pts = self.on_frame(hit[0], self.obj)
                del pts[hit[1]]
                self._set(hit[0], pts)
            elif "negative_points" in self.names and _inside(to_image(at), size):
                self._add("negative_points", to_image(at))
            return True
        if button != Qt.LeftButton:
            return False
        if hit:
            self._drag = ("move", hit, at, at)
        elif modifiers & Qt.ShiftModifier and "negative_points" in self.names:
            if _inside(to_image(at), size):
                self._add("negative_points", to_image(at))
        elif _inside(to_image(at), size):
            self._drag = ("new", None, at, at)
        return True

    def move(self, at: QPointF) -> None:
        if self._drag is not None:
            self._drag = self._drag[:3] + (at,)

    def release(self, at: QPointF, size: Tuple[int, int], to_image) -> None:
        drag, self._drag = self._drag, None
        if drag is None:
            return
        w, h = size
        if drag[0] == "move":
            kind, i = drag[1]
            if _dist(drag[2], at) < 1:
                return          # a click on a point (not a drag) leaves it where it is
            x, y = to_image(at)
            if kind == "box":
                corners = _corners(self._box(self.obj))
                corners[i] = (_edge(x, w), _edge(y, h))
                box = _box_of_corners(corners[i], corners[(i + 2) % 4])
                if box is not None:
                    self._set("box", [box])
            elif _inside((x, y), size):
                pts = self.on_frame(kind, self.obj)
                pts[i] = _pixel(x, y)
                self._set(kind, pts)
            return
        start = drag[2]
        if _dist(start, at) < DRAG or "box" not in self.names:
            if "points" in self.names:
                self._add("points", to_image(start))
            return
        (x0, y0), (x1, y1) = to_image(start), to_image(at)
        box = _box_of_corners((_edge(x0, w), _edge(y0, h)), (_edge(x1, w), _edge(y1, h)))
        if box is not None:
            self._set("box", [box])

    def _add(self, kind: str, at: Tuple[float, float]) -> None:
        if kind in self.names:
            self._set(kind, self.on_frame(kind, self.obj) + [_pixel(*at)])

    # -- drawing -----------------------------------------------------------------------------------
    def paint(self, p: QPainter, to_screen) -> None:
        if not self.enabled:
            return
        p.save()
        p.setRenderHint(QPainter.Antialiasing, True)
        for k in [k for k in range(self.count()) if k != self.obj] + [self.obj]:
            p.setOpacity(1.0 if k == self.obj else DIMMED)
            self._paint_object(p, to_screen, k)
        p.restore()

    def _paint_object(self, p: QPainter, to_screen, k: int) -> None:
        drag = self._drag if k == self.obj else None
        moving = drag[1] if drag and drag[0] == "move" else None
        colour, box = object_colour(k), self._box(k)
        if drag and drag[0] == "new" and _dist(drag[2], drag[3]) >= DRAG and "box" in self.names:
            _draw_box(p, QRectF(drag[2], drag[3]).normalized(), [], colour)
        elif box is not None:
            corners = [to_screen(x, y) for x, y in _corners(box)]
            i = 0
            if moving and moving[0] == "box":
                i = moving[1]
                corners[i] = drag[3]
            _draw_box(p, QRectF(corners[i], corners[(i + 2) % 4]).normalized(), corners if k == self.obj else [],
                      colour)
        for kind in ("points", "negative_points"):
            if kind == "negative_points" and k != self.obj and self.shared_negatives():
                continue            # one group for all: drawn once, with the object edited
            for i, (x, y) in enumerate(self.on_frame(kind, k) if kind in self.names else ()):
                at = drag[3] if moving == (kind, i) else to_screen(x + 0.5, y + 0.5)
                _draw_point(p, at, NEGATIVE if kind == "negative_points" else colour, kind == "negative_points")


def _draw_box(p: QPainter, r: QRectF, corners, colour: QColor) -> None:
    p.setBrush(Qt.NoBrush)
    p.setPen(QPen(QColor(0, 0, 0, 200), 3))
    p.drawRect(r)
    p.setPen(QPen(colour, 1.5, Qt.DashLine))
    p.drawRect(r)
    p.setPen(QPen(QColor(0, 0, 0), 1))
    p.setBrush(colour)
    for c in corners:
        p.drawRect(QRectF(c.x() - 3.5, c.y() - 3.5, 7, 7))


def _draw_point(p: QPainter, at: QPointF, colour: QColor, negative: bool) -> None:
    p.setPen(QPen(QColor(0, 0, 0), 1.5))
    p.setBrush(colour)
    p.drawEllipse(at, 6, 6)
    p.setPen(QPen(QColor(255, 255, 255), 2))
    p.drawLine(QPointF(at.x() - 3, at.y()), QPointF(at.x() + 3, at.y()))
    if not negative:
        p.drawLine(QPointF(at.x(), at.y() - 3), QPointF(at.x(), at.y() + 3))


def _dist(a: QPointF, b: QPointF) -> float:
    return math.hypot(a.x() - b.x(), a.y() - b.y())


def _inside(at: Tuple[float, float], size: Tuple[int, int]) -> bool:
    return 0 <= at[0] < size[0] and 0 <= at[1] < size[1]


def _pixel(x: float, y: float) -> Tuple[int, int]:
    """The pixel a position falls in (its column and row), as PointsEditor gives whole pixels."""
    return int(math.floor(x)), int(math.floor(y))


def _edge(v: float, n: int) -> int:
    """A box edge: between pixels, the nearest to `v`, on the picture."""
    return max(0, min(n, int(round(v))))


def _corners(box) -> list:
    x0, y0, x1, y1 = box
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _box_of_corners(a, b) -> Optional[Tuple[int, int, int, int]]:
    """The box between two opposite corners in any order; None when it has no area."""
    x0, x1 = sorted((a[0], b[0]))
    y0, y1 = sorted((a[1], b[1]))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None
