"""Links (curves coloured by the type they carry), their reroute points, and the link being dragged."""
from __future__ import annotations

from typing import List, Optional

from PySide6.QtCore import QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsSimpleTextItem

from . import theme

REROUTE_R = 6.0


def curve(points: List[QPointF]) -> QPainterPath:
    """Horizontal-tangent cubic segments through the points (a node editor's usual wire)."""
    path = QPainterPath(points[0])
    for a, b in zip(points, points[1:]):
        dx = max(30.0, abs(b.x() - a.x()) * 0.5)
        path.cubicTo(QPointF(a.x() + dx, a.y()), QPointF(b.x() - dx, b.y()), b)
    return path


def detour(a: QPointF, b: QPointF, src: QRectF, dst: QRectF) -> Optional[QPainterPath]:
    """The wire from output `a` of the node `src` to input `b` of the node `dst` when `dst` lies below (or above) the
    source with no room to curve forward: out to the right, down past the source, across the gap between them and
    into the input from its left, round-cornered. The curve ran behind the source node and seemed to come out of its
    bottom edge (Depth Anything 3 wired to Render Depth straight below it). None: the usual curve will do."""
    reach = 30.0                                    # the curve's least handle, and how far the detour keeps off
    if b.x() >= a.x() + 2 * reach:
        return None
    if dst.top() - src.bottom() >= 2 * reach / 3:               # below
        y = (src.bottom() + dst.top()) / 2
    elif src.top() - dst.bottom() >= 2 * reach / 3:             # above
        y = (dst.bottom() + src.top()) / 2
    else:
        return None
    x1, x2 = max(a.x(), src.right()) + reach, min(b.x(), dst.left()) - reach
    r = min(16.0, abs(y - a.y()) / 2, abs(b.y() - y) / 2, (x1 - x2) / 2)
    down1, down2 = (1.0 if y > a.y() else -1.0), (1.0 if b.y() > y else -1.0)
    path = QPainterPath(a)
    for (px, py), (cx, cy), (qx, qy) in (
            ((x1 - r, a.y()), (x1, a.y()), (x1, a.y() + down1 * r)), ((x1, y - down1 * r), (x1, y), (x1 - r, y)),
            ((x2 + r, y), (x2, y), (x2, y + down2 * r)), ((x2, b.y() - down2 * r), (x2, b.y()), (x2 + r, b.y()))):
        path.lineTo(px, py)
        path.quadTo(QPointF(cx, cy), QPointF(qx, qy))
    path.lineTo(b)
    return path


def _body(item) -> QRectF:
    return QRectF(item.scenePos(), QSizeF(item.w, item.h))


class LinkItem(QGraphicsPathItem):
    def __init__(self, src_item, src_port: str, dst_item, dst_port: str, color: str):
        super().__init__()
        self.src_item, self.src_port = src_item, src_port
        self.dst_item, self.dst_port = dst_item, dst_port
        self.points: List[QPointF] = []            # reroutes
        self.color = QColor(color)
        self._shape = None
        self._rect = QRectF()
        self._pens = {}
        self.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        self.setFlags(QGraphicsItem.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.setZValue(0)
        self._hover = False
        self.highlight = False                     # a node dragged over it would be inserted
        src_item.links.add(self)
        dst_item.links.add(self)
        self.update_path()

    @property
    def key(self) -> str:
        return f"{self.dst_item.node_id}.{self.dst_port}"

    def detach(self) -> None:
        self.src_item.links.discard(self)
        self.dst_item.links.discard(self)

    def update_path(self) -> None:
        a = self.src_item.port_scene_pos(self.src_port, False)
        b = self.dst_item.port_scene_pos(self.dst_port, True)
        # Before _rect changes: the scene's index finds the item by the rect boundingRect() gives now. Told after
        # (setPath's own call), it looked under the new rect, left the link filed under the old one, and painted
        # a deleted link from there: a segfault after Auto-layout and a Delete.
        self.prepareGeometryChange()
        self._shape = None
        path = (None if self.points else detour(a, b, _body(self.src_item), _body(self.dst_item))) or \
            curve([a] + self.points + [b])
        self._rect = path.boundingRect().adjusted(-5, -5, 5, 5)
        self.setPath(path)

    def shape(self) -> QPainterPath:
        if self._shape is None:
            s = QPainterPathStroker()
            s.setWidth(10)
            self._shape = s.createStroke(self.path())
        return self._shape

    def boundingRect(self) -> QRectF:
        return self._rect

    def _pen(self, selected: bool, hot: bool, dim: bool) -> QPen:
        key = (selected, hot, dim)
        pen = self._pens.get(key)
        if pen is None:
            c = QColor(theme.NODE_SELECTED if selected else self.color)
            if dim:
                c.setAlpha(130)
            pen = self._pens[key] = QPen(c, 3.5 if hot else 2.2, Qt.SolidLine, Qt.RoundCap)
        return pen

    def paint(self, painter, option, widget=None):
        sel = self.highlight or self.isSelected()
        painter.setPen(self._pen(sel, sel or self._hover, self.src_item.inst.bypass or self.dst_item.inst.bypass))
        painter.setBrush(Qt.NoBrush)
        painter.drawPath(self.path())

    def hoverEnterEvent(self, event):
        self._hover = True
        self.update()

    def hoverLeaveEvent(self, event):
        self._hover = False
        self.update()

    def mouseDoubleClickEvent(self, event):
        self.scene().add_reroute(self, event.scenePos())


class RerouteItem(QGraphicsItem):
    """A point a link passes through; drag to move, Delete to remove."""

    def __init__(self, link_key: str, index: int, pos: QPointF, color: QColor):
        super().__init__()
        self.link_key, self.index, self.color = link_key, index, QColor(color)
        self.setPos(pos)
        self.setFlags(QGraphicsItem.ItemIsMovable | QGraphicsItem.ItemIsSelectable |
                      QGraphicsItem.ItemSendsGeometryChanges)
        self.setZValue(2)
        self.setToolTip("Reroute point: drag to move, Delete to remove")

    def boundingRect(self) -> QRectF:
        return QRectF(-REROUTE_R - 2, -REROUTE_R - 2, 2 * REROUTE_R + 4, 2 * REROUTE_R + 4)

    def paint(self, painter, option, widget=None):
        painter.setPen(QPen(theme.NODE_SELECTED if self.isSelected() else theme.NODE_BORDER, 2))
        painter.setBrush(self.color)
        painter.drawEllipse(QPointF(0, 0), REROUTE_R, REROUTE_R)

    def itemChange(self, change, value):
        if change == QGraphicsItem.ItemPositionHasChanged and self.scene() is not None:
            self.scene().reroute_dragged(self)
        return super().itemChange(change, value)

    def mousePressEvent(self, event):
        super().mousePressEvent(event)
        self.scene().begin_move()

    def mouseReleaseEvent(self, event):
        super().mouseReleaseEvent(event)
        self.scene().end_move()


class DragLink(QGraphicsPathItem):
    """The wire following the mouse while connecting; red with the reason when the target refuses."""

    def __init__(self, anchor: QPointF, from_input: bool, color: str):
        super().__init__()
        self.anchor, self.from_input, self.color = anchor, from_input, QColor(color)
        self.setZValue(10)
        self.label = QGraphicsSimpleTextItem(self)
        self.label.setBrush(theme.REFUSED)
        self.refusal: Optional[str] = None
        self.move_to(anchor)

    def move_to(self, p: QPointF, refusal: Optional[str] = None) -> None:
        self.refusal = refusal
        a, b = (p, self.anchor) if self.from_input else (self.anchor, p)
        self.setPath(curve([a, b]))
        self.setPen(QPen(theme.REFUSED if refusal else self.color, 2.2, Qt.DashLine if refusal else Qt.SolidLine))
        self.label.setText(refusal or "")
        self.label.setPos(p + QPointF(14, 10))
