"""The minimap: the whole graph in a corner, the visible area outlined; click or drag to go there.

The overview is re-rendered at most twice a second after the layout changes, never per frame."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from . import theme

SIZE = (220, 140)


class Minimap(QWidget):
    def __init__(self, view):
        super().__init__(view)
        self.view = view
        self.setFixedSize(*SIZE)
        self.setCursor(Qt.PointingHandCursor)
        self._pixmap = None
        self._area = QRectF()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(500)
        self._timer.timeout.connect(self.rebuild)
        self.setToolTip("Minimap: click or drag to move the view")

    def fit(self, canvas) -> None:
        """At most a third of the canvas each way: at its full size it covered half of a small
        window's canvas (900x600), and the nodes under it could not be clicked."""
        w = max(60, min(SIZE[0], canvas.width() // 3))
        h = max(40, min(SIZE[1], canvas.height() // 3))
        if (w, h) != (self.width(), self.height()):
            self.setFixedSize(w, h)
            self.rebuild()

    def schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def rebuild(self) -> None:
        sc = self.view.scene()
        area = sc.nodes_rect() if sc is not None else QRectF()
        self.view.reach(area)           # every node drawn here can be gone to
        # Over an empty canvas it is nothing: a blank dark box in the corner beside the canvas' "how
        # to start" hint was a mystery to someone new (and took clicks meant for the canvas).
        self.setAttribute(Qt.WA_TransparentForMouseEvents, area.isEmpty())
        if area.isEmpty():
            self._pixmap, self._area = None, QRectF()
            self.update()
            return
        pad = max(area.width(), area.height()) * 0.05
        self._area = area.adjusted(-pad, -pad, pad, pad)
        pm = QPixmap(self.size() * self.devicePixelRatioF())
        pm.setDevicePixelRatio(self.devicePixelRatioF())
        pm.fill(Qt.transparent)
        p = QPainter(pm)
        target = self._target()
        s = target.width() / self._area.width()
        p.setPen(Qt.NoPen)
        for g in sc.groups.values():
            p.setBrush(QColor(g.color.red(), g.color.green(), g.color.blue(), 90))
            p.drawRect(self._map(g.scene_rect(), s))
        for item in sc.nodes.values():
            p.setBrush(item.header_color.lighter(120))
            p.drawRect(self._map(item.sceneBoundingRect(), s))
        # A node with a problem outlined in red, as the canvas frames it zoomed out: the minimap is the one place
        # the whole graph shows, and a missing model far off screen was drawn as any other node there.
        p.setBrush(Qt.NoBrush)
        p.setPen(QPen(theme.REFUSED, 2.0))
        for item in sc.nodes.values():
            if item.trouble():
                p.drawRect(self._map(item.sceneBoundingRect(), s).adjusted(-1.5, -1.5, 1.5, 1.5))
        p.end()
        self._pixmap = pm
        self.update()

    def _target(self) -> QRectF:
        """Where the graph area lands in the widget: centred, aspect kept."""
        box = QRectF(self.rect()).adjusted(4, 4, -4, -4)
        s = min(box.width() / self._area.width(), box.height() / self._area.height())
        t = QRectF(0, 0, self._area.width() * s, self._area.height() * s)
        t.moveCenter(box.center())
        return t

    def _map(self, r: QRectF, s: float) -> QRectF:
        t = self._target()
        return QRectF(t.x() + (r.x() - self._area.x()) * s, t.y() + (r.y() - self._area.y()) * s,
                      max(2.0, r.width() * s), max(2.0, r.height() * s))

    def paintEvent(self, event):
        if self._pixmap is None:
            return
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(20, 21, 24))
        p.setPen(QPen(QColor("#3a3c42"), 1))
        p.drawRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5))
        p.drawPixmap(0, 0, self._pixmap)
        s = self._target().width() / self._area.width()
        visible = self.view.mapToScene(self.view.viewport().rect()).boundingRect()
        if visible.contains(self._area):
            return          # everything is in view: no frame to show
        p.setPen(QPen(theme.NODE_SELECTED, 1.2))
        p.setBrush(QColor(255, 255, 255, 18))
        p.drawRect(self._map(visible, s).intersected(QRectF(self.rect()).adjusted(1, 1, -1, -1)))

    def _go(self, pos: QPointF) -> None:
        if self._area.isEmpty():
            return
        t = self._target()
        s = t.width() / self._area.width()
        self.view.centerOn(QPointF(self._area.x() + (pos.x() - t.x()) / s, self._area.y() + (pos.y() - t.y()) / s))
        self.update()

    def mousePressEvent(self, event):
        self._go(event.position())

    def mouseMoveEvent(self, event):
        if event.buttons() & Qt.LeftButton:
            self._go(event.position())
