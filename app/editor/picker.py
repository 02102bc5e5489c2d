"""Points and a box clicked on a node's first frame in the viewer, for its parameters of kind `points`,
`negative_points` and `box` (as ComfyUI's PointsEditor is clicked): left click on the object, right click (or
Shift+click) off it, a left drag draws the box; a point or a box corner dragged moves, right-clicked goes.
Positions are the picture's own pixels whatever the zoom; each gesture is one edit of the parameter's text,
through the editor's commands, so it undoes."""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Tuple

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen

from graph_engine.picks import beyond_first_frame, box_of, box_text, points_of, points_text

PICK_KINDS = ("points", "negative_points", "box")
GRAB = 8.0                  # screen pixels around a point or corner that take a click
DRAG = 4.0                  # screen pixels a left press moves before it draws a box instead of a point
COLOURS = {"points": QColor("#3ddc84"), "negative_points": QColor("#ff5252"), "box": QColor("#ffd54f")}
HINT = ("Picking on {node}'s first frame: click the object{neg}{box}. Drag a point or a corner to move it, "
        "right-click it to remove it; Ctrl+Z undoes; Esc or Done ends")


def pick_params(spec) -> Dict[str, str]:
    """{kind: parameter name} of the node's parameters picked on its picture (the first of each kind)."""
    found: Dict[str, str] = {}
    for name, p in (spec.params.items() if spec is not None else ()):
        if p.kind in PICK_KINDS:
            found.setdefault(p.kind, name)
    return found


class Picker:
    """One node's picks: read from its parameters' text, drawn over the picture, edited by the mouse.
    `commit(name, text)` applies an edit; `set_value` takes the parameter's text back (an undo)."""

    def __init__(self, node_id: str, names: Dict[str, str], values: Dict[str, str],
                 commit: Callable[[str, str], None]):
        self.node_id, self.names, self.commit = node_id, dict(names), commit
        self.texts: Dict[str, str] = {}
        self.points: Dict[str, List[Tuple[float, float]]] = {"points": [], "negative_points": []}
        self.box: Optional[Tuple[float, float, float, float]] = None
        self.unreadable: List[str] = []        # parameters whose text is not points: shown, not drawn over
        self.kept: List[str] = []              # several objects or later frames: left as written, not picked
        self.enabled = True                    # the first frame is on screen
        self._drag = None
        for kind, name in self.names.items():
            self.set_value(name, values.get(name, ""))

    def hint(self) -> str:
        neg = ", right-click (or Shift+click) what to leave out" if "negative_points" in self.names else ""
        box = ", drag a box around it" if "box" in self.names else ""
        text = HINT.format(node=self.node_id, neg=neg, box=box)
        if self.unreadable:
            text += f". {', '.join(self.unreadable)} cannot be read as positions: a click replaces it"
        if self.kept:
            text += (f". {', '.join(self.kept)} holds several objects or prompts on later frames ('|', '@'): "
                     "edit it as text; picking here would drop them")
        return text

    def set_value(self, name: str, text) -> None:
        kind = next((k for k, n in self.names.items() if n == name), None)
        if kind is None:
            return
        self.texts[name] = "" if text is None else str(text)
        self.unreadable = [n for n in self.unreadable if n != name]
        self.kept = [n for n in self.kept if n != name]
        if beyond_first_frame(text, kind):
            self.kept.append(name)
            if kind == "box":
                self.box = None
            else:
                self.points[kind] = []
            return
        try:
            if kind == "box":
                self.box = box_of(text)
            else:
                self.points[kind] = points_of(text)
        except ValueError:
            self.unreadable.append(name)
            if kind == "box":
                self.box = None
            else:
                self.points[kind] = []

    # -- edits -------------------------------------------------------------------------------------
    def _set_points(self, kind: str, pts) -> None:
        name = self.names[kind]
        if name in self.kept:
            return
        self.commit(name, points_text(pts, self.texts.get(name, "")))

    def _set_box(self, box) -> None:
        name = self.names["box"]
        if name in self.kept:
            return
        self.commit(name, box_text(box, self.texts.get(name, "")))

    def _hit(self, at: QPointF, to_screen) -> Optional[tuple]:
        """The point or box corner under the screen position `at`: (kind, index)."""
        best, found = GRAB, None
        for kind in ("points", "negative_points"):
            for i, (x, y) in enumerate(self.points[kind]):
                d = _dist(to_screen(x + 0.5, y + 0.5), at)
                if d <= best:
                    best, found = d, (kind, i)
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            for i, (x, y) in enumerate(((x0, y0), (x1, y0), (x1, y1), (x0, y1))):
                d = _dist(to_screen(x, y), at)
                if d <= best:
                    best, found = d, ("box", i)
        return found

    def press(self, at: QPointF, button, modifiers, size: Tuple[int, int], to_screen, to_image) -> bool:
        """A mouse press at screen position `at` over a picture of `size` (width, height); True when it was
        a pick (the canvas does not pan)."""
        if not self.enabled:
            return False
        hit = self._hit(at, to_screen)
        if button == Qt.RightButton:
            if hit and hit[0] == "box":
                self._set_box(None)
            elif hit:
                pts = list(self.points[hit[0]])
                del pts[hit[1]]
                self._set_points(hit[0], pts)
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
                corners = _corners(self.box)
                corners[i] = (_edge(x, w), _edge(y, h))
                box = _box_of_corners(corners[i], corners[(i + 2) % 4])
                if box is not None:
                    self._set_box(box)
            elif _inside((x, y), size):
                pts = list(self.points[kind])
                pts[i] = _pixel(x, y)
                self._set_points(kind, pts)
            return
        start = drag[2]
        if _dist(start, at) < DRAG or "box" not in self.names:
            if "points" in self.names:
                self._add("points", to_image(start))
            return
        (x0, y0), (x1, y1) = to_image(start), to_image(at)
        box = _box_of_corners((_edge(x0, w), _edge(y0, h)), (_edge(x1, w), _edge(y1, h)))
        if box is not None:
            self._set_box(box)

    def _add(self, kind: str, at: Tuple[float, float]) -> None:
        if kind in self.names:
            self._set_points(kind, self.points[kind] + [_pixel(*at)])

    # -- drawing -----------------------------------------------------------------------------------
    def paint(self, p: QPainter, to_screen) -> None:
        if not self.enabled:
            return
        p.save()
        p.setRenderHint(QPainter.Antialiasing, True)
        drag = self._drag
        moving = drag[1] if drag and drag[0] == "move" else None
        if drag and drag[0] == "new" and _dist(drag[2], drag[3]) >= DRAG and "box" in self.names:
            _draw_box(p, QRectF(drag[2], drag[3]).normalized(), [])
        elif self.box is not None:
            corners = [to_screen(x, y) for x, y in _corners(self.box)]
            k = 0
            if moving and moving[0] == "box":
                k = moving[1]
                corners[k] = drag[3]
            _draw_box(p, QRectF(corners[k], corners[(k + 2) % 4]).normalized(), corners)
        for kind in ("points", "negative_points"):
            for i, (x, y) in enumerate(self.points[kind]):
                at = drag[3] if moving == (kind, i) else to_screen(x + 0.5, y + 0.5)
                _draw_point(p, at, COLOURS[kind], kind == "negative_points")
        p.restore()


def _draw_box(p: QPainter, r: QRectF, corners) -> None:
    p.setBrush(Qt.NoBrush)
    p.setPen(QPen(QColor(0, 0, 0, 200), 3))
    p.drawRect(r)
    p.setPen(QPen(COLOURS["box"], 1.5, Qt.DashLine))
    p.drawRect(r)
    p.setPen(QPen(QColor(0, 0, 0), 1))
    p.setBrush(COLOURS["box"])
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
