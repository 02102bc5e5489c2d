"""A node on the canvas: header with title and run status, typed coloured sockets, and inline
parameter fields (numbers scrub by dragging, choices and booleans change with a click).

Everything is painted by the one item (no child widgets), so a 500-node graph stays light;
far out, nodes draw as plain coloured blocks. Dragging a field pushes one undo step per drag."""
from __future__ import annotations

import os
import textwrap
from types import SimpleNamespace
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem

from graph_engine.default_outputs import from_file_name, own_default
from graph_engine.outputs import is_output_param
from graph_engine.validate import check_param

from . import rules, theme
from .geometry import (DETAIL_ZOOM, FAR_ZOOM, HEADER_H, zero_meaning, PAD, PORT_R, ROW_H, THUMB_H, drag_rate, node_size, places,
                       slider_range, snap)
from .help_text import help_tip, plain_tip
from .titles import node_title

TITLE_FONT = QFont()
TITLE_FONT.setPointSizeF(9.0)
TITLE_FONT.setBold(True)
LABEL_FONT = QFont()
LABEL_FONT.setPointSizeF(8.0)
BADGE_FONT = QFont()
BADGE_FONT.setPointSizeF(7.5)

PORT_HIT = 9.0
_WIDTHS = {}
_ELIDED = {}


def _wrap(message: str) -> str:
    """A tooltip's lines of 90 characters that never cut a word or a path: textwrap broke a missing plate's path at
    its hyphens (.../popen-\\ngw1/...), so the path read in the tip was not the file's."""
    return textwrap.fill(message, 90, break_on_hyphens=False, break_long_words=False)


class _Text:
    """Point-anchored text with cached metrics: drawing at a point costs a fifth of drawing
    into an aligned rectangle, which matters for a node's dozen labels."""

    def __init__(self, font: QFont):
        self.font = font
        self._fm = None
        self._shift = None

    @property
    def fm(self) -> QFontMetricsF:
        if self._fm is None:        # fonts can be measured only once the application exists
            self._fm = QFontMetricsF(self.font)
        return self._fm

    @property
    def shift(self) -> float:
        """From a row's vertical centre to the baseline that centres the text on it."""
        if self._shift is None:
            self._shift = (self.fm.ascent() - self.fm.descent()) / 2
        return self._shift

    def width(self, s: str) -> float:
        key = (id(self), s)
        w = _WIDTHS.get(key)
        if w is None:
            if len(_WIDTHS) > 20000:
                _WIDTHS.clear()
            w = _WIDTHS[key] = self.fm.horizontalAdvance(s)
        return w

    def elide(self, s: str, width: float, mode=Qt.ElideRight) -> str:
        if self.width(s) <= width:
            return s
        key = (id(self), s, round(width), mode)
        e = _ELIDED.get(key)
        if e is None:
            if len(_ELIDED) > 20000:
                _ELIDED.clear()
            e = _ELIDED[key] = self.fm.elidedText(s, mode, width)
        return e

    def left(self, painter, x: float, cy: float, s: str) -> None:
        painter.drawText(QPointF(x, cy + self.shift), s)

    def right(self, painter, x: float, cy: float, s: str) -> None:
        painter.drawText(QPointF(x - self.width(s), cy + self.shift), s)


TITLE = _Text(TITLE_FONT)
LABEL = _Text(LABEL_FONT)
BADGE = _Text(BADGE_FONT)
NUMERIC = ("int", "float")


def format_value(p, v) -> str:
    if v is None:
        return "—"
    if v == 0 and not isinstance(v, bool) and zero_meaning(p):
        return zero_meaning(p)
    if p.type == "float" and isinstance(v, (int, float)):
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:.4g}"
    if p.kind == "path" and isinstance(v, str):
        return os.path.basename(v.rstrip("/\\")) or v
    if isinstance(v, str):
        return " ".join(v.split())
    return str(v)


class _Socket(NamedTuple):
    """What the painter needs of a port, for a node whose type (and so ports) this install lacks."""
    type: Any
    optional: bool = False


_UNKNOWN = SimpleNamespace(color="#888888", name="?")


class NodeItem(QGraphicsItem):
    def __init__(self, node_id: str, spec, inst, ui: dict):
        super().__init__()
        self.node_id = node_id
        self.spec = spec
        self.links = set()
        self.status = None                      # runner.NodeStatus
        self.thumb: Optional[QImage] = None
        self.info = ""                          # what a loader found: size, rate, length
        # What reading the workflow found wrong with it and validating it still finds ('width -5 is out of range'),
        # set by the scene
        self.problems: List[str] = []
        # param -> its model file that is not there (graph_engine.validate.MissingModel), set by the scene
        self.missing: Dict[str, Any] = {}
        self._hover_port = None
        self._drag = None                       # active inline parameter drag
        self.setFlags(QGraphicsItem.ItemIsMovable | QGraphicsItem.ItemIsSelectable |
                      QGraphicsItem.ItemSendsGeometryChanges)
        self.setAcceptHoverEvents(True)
        self.setZValue(1)
        # Painting a node is dozens of Python calls; a cached pixmap makes repaints (panning,
        # a neighbour's badge changing) blits. Zooming re-renders each node once.
        self.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        self.sync(inst, ui)

    # -- model -> item --------------------------------------------------------------------
    def sync(self, inst, ui: dict) -> None:
        self.prepareGeometryChange()
        self.inst = inst
        self.collapsed = bool(ui.get("collapsed"))
        self.w, self.h = node_size(self.spec, self.collapsed, self.thumb is not None and not self.collapsed)
        if self.spec is None and not self.collapsed:        # a row for each of its sockets
            rows = max(len(self._linked_rows(True)), len(self._linked_rows(False)))
            self.h = max(self.h, HEADER_H + 2 * PAD + rows * ROW_H)
        if self.info and not self.collapsed:
            self.h += ROW_H
        if self.missing and not self.collapsed:
            self.h += ROW_H * len(self.missing)
        self._rect = QRectF(-PORT_R - 2, -2, self.w + 2 * PORT_R + 4, self.h + 4)
        cat = self.spec.category if self.spec else ""
        self.header_color = theme.category_color(cat) if self.spec else QColor("#8a2f2f")
        # A type this install lacks says so even when the node has a title of its own.
        label = node_title(inst, self.spec) if self.spec else f"missing: {node_title(inst, None)}"
        self.label = label
        if not self.spec:
            self.setToolTip(plain_tip(f"{label} ({inst.type}): this Kinograph does not have this node type"))
        pos = ui.get("pos")
        if isinstance(pos, list) and len(pos) == 2 and QPointF(*pos) != self.pos():
            self.setPos(QPointF(*pos))
        self.update_links()
        self.update()

    @property
    def title(self) -> str:
        """The label as the header shows it, cut short only where the status badge beside it needs the
        room: a fixed 58 px was kept for a badge, so 'Load kinograph-mini' read 'Load kinograph-…' in
        the default example with no badge or a short one ('9.6 s') there."""
        # The badge's left edge (as _paint_status draws it) less a gap, or the node's right padding.
        end = self.w - (BADGE.width(self.status.badge()) + 12 + 5 + 6 if self.status is not None else PAD)
        return fit_title(self.label, end - (PAD + 2))

    def set_status(self, status) -> None:
        self.status = status
        self.update(QRectF(0, 0, self.w, HEADER_H + 4))

    def set_thumb(self, image: Optional[QImage]) -> None:
        self.thumb = image
        self._resized()

    def set_info(self, text: str) -> None:
        if text != self.info:
            self.info = text
            self._resized()

    def set_missing(self, missing: Dict[str, Any]) -> None:
        if missing != self.missing:
            self.missing = dict(missing)
            self._resized()

    def set_problems(self, problems: List[str]) -> None:
        if problems != self.problems:
            self.problems = list(problems)
            self.update()

    def trouble(self) -> List[str]:
        """Everything wrong with the node as read: its missing files, then its other problems."""
        return [m.message for m in self.missing.values()] + self.problems

    def missing_lines(self) -> List[Tuple[str, str]]:
        """(what, where it goes) for each model file the node names that is not there, as the node says them on its
        last rows (the field holds the name): the import report said it, and once it was closed nothing did."""
        many = len(self.missing) > 1
        return [(f"{name} missing" if many else "missing", str(m.into or "")) for name, m in self.missing.items()]

    def _resized(self) -> None:
        self.sync(self.inst, {"collapsed": self.collapsed})
        if self.scene() is not None:
            self.scene().fit_groups(self.node_id)       # the frame around it grows with it

    # -- geometry ---------------------------------------------------------------------------
    def boundingRect(self) -> QRectF:
        return self._rect

    def shape(self) -> QPainterPath:
        p = QPainterPath()
        p.addRect(QRectF(-PORT_R, 0, self.w + 2 * PORT_R, self.h))
        return p

    def _port_rows(self, is_input: bool):
        if self.spec is None:
            return self._linked_rows(is_input)
        return list((self.spec.inputs if is_input else self.spec.outputs).items())

    def _linked_rows(self, is_input: bool):
        """A node of a type this install lacks (a ComfyUI node the import has no equivalent for) has the sockets
        its links use, coloured as the other end: without them its wires were not drawn, as if it stood alone."""
        scene = self.scene()
        if scene is None:
            return []
        g, reg = scene.doc.graph, scene.doc.registry
        if is_input:
            ends = [(name, rules.port_type(reg, g, src, sport, False))
                    for name, (src, sport) in g.inputs.get(self.node_id, {}).items()]
        else:
            seen: dict = {}
            for dst, ins in g.inputs.items():
                for port, (src, sport) in ins.items():
                    if src == self.node_id:
                        seen[sport] = seen.get(sport) or rules.port_type(reg, g, dst, port, True)
            ends = sorted(seen.items())
        return [(name, _Socket(t or _UNKNOWN)) for name, t in ends]

    def linked_params(self) -> List[str]:
        """The params a link sets (a width from video.size): each shows a socket at its field's left edge."""
        linked = self.scene().doc.graph.inputs.get(self.node_id, {}) if self.scene() else {}
        return [n for n in self.spec.params if n in linked] if self.spec else []

    def port_pos(self, name: str, is_input: bool) -> QPointF:
        x = 0.0 if is_input else self.w
        if self.collapsed:
            return QPointF(x, HEADER_H / 2)
        if is_input and self.spec and name in self.spec.params:
            return QPointF(x, self.param_rect(name).center().y())
        names = [n for n, _ in self._port_rows(is_input)]
        i = names.index(name) if name in names else 0
        return QPointF(x, HEADER_H + PAD + i * ROW_H + ROW_H / 2)

    def port_scene_pos(self, name: str, is_input: bool) -> QPointF:
        return self.mapToScene(self.port_pos(name, is_input))

    def port_at(self, p: QPointF) -> Optional[Tuple[str, bool]]:
        for is_input in (True, False):
            names = [n for n, _ in self._port_rows(is_input)] + (self.linked_params() if is_input else [])
            for name in names:
                d = self.port_pos(name, is_input) - p
                if d.x() * d.x() + d.y() * d.y() <= PORT_HIT * PORT_HIT:
                    return name, is_input
        return None

    def _param_rect(self, j: int) -> QRectF:
        rows = max(len(self.spec.inputs), len(self.spec.outputs))
        y = HEADER_H + PAD + (rows + j) * ROW_H
        return QRectF(PAD + 2, y + 2, self.w - 2 * PAD - 4, ROW_H - 4)

    def param_at(self, p: QPointF, linked: bool = False) -> Optional[str]:
        """The param whose field is under `p`; one a link sets only with `linked` (its value is the link's, so
        the field does not edit)."""
        if self.collapsed or not self.spec:
            return None
        skip = () if linked else self.linked_params()
        for j, name in enumerate(self.spec.params):
            if self._param_rect(j).contains(p):
                return None if name in skip else name
        return None

    def param_rect(self, name: str) -> QRectF:
        return self._param_rect(list(self.spec.params).index(name))

    def update_links(self) -> None:
        for link in self.links:
            link.update_path()

    # -- painting ---------------------------------------------------------------------------
    def paint(self, painter, option, widget=None):
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        sel = self.isSelected()
        rect = QRectF(0, 0, self.w, self.h)
        bypass = self.inst.bypass
        if bypass:
            painter.setOpacity(0.55)
        if lod < FAR_ZOOM:
            painter.fillRect(rect, theme.NODE_SELECTED if sel else self.header_color)
            self._paint_trouble(painter, lod)
            return
        painter.setPen(QPen(theme.NODE_SELECTED if sel else theme.NODE_BORDER, 2.0 if sel else 1.0))
        painter.setBrush(theme.NODE_BODY)
        painter.drawRoundedRect(rect, 6, 6)
        head = QPainterPath()
        head.addRoundedRect(QRectF(0.5, 0.5, self.w - 1, HEADER_H), 5.5, 5.5)
        if not self.collapsed:
            head.addRect(QRectF(0.5, HEADER_H / 2, self.w - 1, HEADER_H / 2))
        painter.setPen(Qt.NoPen)
        painter.setBrush(theme.BYPASS if bypass else self.header_color)
        painter.drawPath(head.simplified())
        self._paint_status(painter)
        painter.setPen(theme.TEXT)
        painter.setFont(TITLE_FONT)
        TITLE.left(painter, PAD + 2, HEADER_H / 2, self.title)
        if lod < DETAIL_ZOOM:
            self._paint_ports(painter, labels=False)
            self._paint_trouble(painter, lod)
            return
        self._paint_ports(painter, labels=not self.collapsed)
        if not self.collapsed and self.spec:
            self._paint_params(painter)
            if self.thumb is not None:
                self._paint_thumb(painter)
            bottom = self.h - ROW_H / 2 - 2
            painter.setFont(LABEL_FONT)
            painter.setPen(theme.REFUSED)
            for what, where in reversed(self.missing_lines()):
                what += ": put it in " if where else ""
                # the folder cut at its start: its end (models/diffusion_models/wan) says where
                room = self.w - 2 * PAD - 4 - LABEL.width(what)
                LABEL.left(painter, PAD + 2, bottom, what + LABEL.elide(where, room, Qt.ElideLeft))
                bottom -= ROW_H
            if self.info:
                painter.setPen(theme.TEXT_DIM)
                LABEL.left(painter, PAD + 2, bottom, LABEL.elide(self.info, self.w - 2 * PAD - 4))

    def _paint_trouble(self, painter, lod: float) -> None:
        """Zoomed out, where fields (and their red) are not drawn: a red frame and a red '!' on a node with a
        problem, the same size on screen at any zoom. A missing model of an imported template at 55% showed
        nowhere but the properties panel."""
        if not self.trouble():
            return
        painter.setOpacity(1.0)
        painter.setPen(QPen(theme.REFUSED, 3.0 / lod))
        painter.setBrush(Qt.NoBrush)
        painter.drawRoundedRect(QRectF(0, 0, self.w, self.h), 6, 6)
        r = min(11.0 / lod, self.h / 2, self.w / 2)
        centre = QPointF(self.w / 2, max(self.h / 2, min(self.h - r, HEADER_H + r + 4)))
        painter.setPen(Qt.NoPen)
        painter.setBrush(theme.REFUSED)
        painter.drawEllipse(centre, r, r)
        font = QFont(TITLE_FONT)
        font.setPixelSize(max(1, round(1.4 * r)))
        painter.setFont(font)
        painter.setPen(theme.TEXT)
        painter.drawText(QRectF(centre.x() - r, centre.y() - r, 2 * r, 2 * r), Qt.AlignCenter, "!")

    def _paint_status(self, painter):
        st = self.status
        if st is None:
            return
        color = theme.STATUS_COLORS.get(st.state, theme.TEXT_DIM)
        text = st.badge()
        painter.setFont(BADGE_FONT)
        tw = BADGE.width(text) + 12
        r = QRectF(self.w - tw - 5, 5, tw, HEADER_H - 10)
        painter.setBrush(color.darker(160))
        painter.setPen(QPen(color, 1.0))
        painter.drawRoundedRect(r, 7, 7)
        painter.setPen(theme.TEXT)
        BADGE.left(painter, r.x() + 6, r.center().y(), text)
        if st.state == "running" and st.progress is not None:
            painter.fillRect(QRectF(1, HEADER_H - 3, (self.w - 2) * max(0.0, min(1.0, st.progress)), 3), color)

    def _paint_ports(self, painter, labels: bool):
        painter.setFont(LABEL_FONT)
        linked_in = self.scene().doc.graph.inputs.get(self.node_id, {}) if self.scene() else {}
        rows = {True: self._port_rows(True), False: self._port_rows(False)}
        texts = {}
        if labels:
            room = self.w - 2 * (PORT_R + 5)
            for i in range(max(len(rows[True]), len(rows[False]))):
                left, right = (rows[side][i][0] if i < len(rows[side]) else "" for side in (True, False))
                texts[True, left], texts[False, right] = socket_texts(left, right, room)
        for is_input in (True, False):
            for name, port in rows[is_input]:
                c = QColor(port.type.color)
                p = self.port_pos(name, is_input)
                hover = self._hover_port == (name, is_input)
                painter.setPen(QPen(theme.NODE_BORDER, 1.5))
                filled = not is_input or name in linked_in or not port.optional
                painter.setBrush(c if filled else theme.NODE_BODY)
                r = PORT_R + (1.5 if hover else 0.0)
                if port.optional and is_input:
                    painter.setPen(QPen(c, 1.8))
                painter.drawEllipse(p, r, r)
                if labels:
                    painter.setPen(theme.TEXT if (not is_input or name in linked_in) else theme.TEXT_DIM)
                    if is_input:
                        LABEL.left(painter, PORT_R + 5, p.y(), texts[True, name])
                    else:
                        LABEL.right(painter, self.w - PORT_R - 5, p.y(), texts[False, name])
        if self.collapsed:
            return
        for name in self.linked_params():
            p = self.port_pos(name, True)
            painter.setPen(QPen(theme.NODE_BORDER, 1.5))
            painter.setBrush(QColor(self.spec.port_type(name).color))
            r = PORT_R + (1.5 if self._hover_port == (name, True) else 0.0)
            painter.drawEllipse(p, r, r)

    def _paint_params(self, painter):
        painter.setFont(LABEL_FONT)
        values = self.inst.params
        links = self.scene().doc.graph.inputs.get(self.node_id, {}) if self.scene() else {}
        for j, (name, p) in enumerate(self.spec.params.items()):
            r = self._param_rect(j)
            v = values.get(name, p.default)
            left_out = is_output_param(p) and name not in values and self.scene() is not None
            if left_out:        # the path the run writes, the workflow file's own, greyed as the panel shows it
                v = own_default(self.scene().doc.workflow, p)
            painter.setPen(Qt.NoPen)
            painter.setBrush(theme.FIELD)
            painter.drawRoundedRect(r, 4, 4)
            if name in links:           # the value is the link's: say where it comes from, not the one typed under it
                inner = r.adjusted(PORT_R + 4, 0, -6, 0)
                label, value = field_texts(name, "← " + ".".join(links[name]), inner.width())
                painter.setPen(theme.TEXT_DIM)
                LABEL.left(painter, inner.x(), inner.center().y(), label)
                painter.setPen(theme.TEXT)
                LABEL.right(painter, inner.right(), inner.center().y(), value)
                continue
            fill = self._fill_width(p, v, r)
            if fill:
                painter.setBrush(theme.FIELD_FILL)
                painter.drawRoundedRect(QRectF(r.x(), r.y(), fill, r.height()), 4, 4)
            inner = r.adjusted(6, 0, -6, 0)
            if p.type == "bool":
                box = QRectF(inner.right() - 11, r.center().y() - 5.5, 11, 11)
                painter.setPen(QPen(theme.TEXT_DIM, 1))
                painter.setBrush(theme.FIELD_FILL if v else Qt.NoBrush)
                painter.drawRoundedRect(box, 2, 2)
                painter.setPen(theme.TEXT_DIM)
                LABEL.left(painter, inner.x(), inner.center().y(), LABEL.elide(name, inner.width() - 16))
                continue
            shown = format_value(p, v) + (" ▾" if p.choices else "")
            swatch = self.color_swatch(name)
            if swatch is not None:
                inner = inner.adjusted(0, 0, -(swatch[0].width() + 4), 0)
                painter.setPen(QPen(theme.NODE_BORDER, 1))
                painter.setBrush(swatch[1])
                painter.drawRoundedRect(swatch[0], 2, 2)
            label, value = field_texts(name, shown, inner.width(), file=p.kind == "path")
            painter.setPen(self._label_color(fill, 6 + LABEL.width(label)))
            LABEL.left(painter, inner.x(), inner.center().y(), label)
            painter.setPen(theme.REFUSED if name in self.missing else theme.TEXT_DIM if left_out else theme.TEXT)
            LABEL.right(painter, inner.right(), inner.center().y(), value)

    @staticmethod
    def _fill_width(p, v, r: QRectF) -> float:
        """How far a ranged number's slider fill reaches across its field `r` (0: none)."""
        if not slider_range(p) or not isinstance(v, (int, float)) or isinstance(v, bool):
            return 0.0
        frac = max(0.0, min(1.0, (v - p.min) / (p.max - p.min)))
        return max(8.0, r.width() * frac) if frac > 0 else 0.0

    @staticmethod
    def _label_color(fill: float, label_end: float) -> QColor:
        """A field's name over the slider fill is drawn bright: dim grey on the blue fill read at
        2.6:1 ('denoise', 'strength' at their maximum all but vanished); on the bare field, dim."""
        return theme.TEXT if fill >= label_end / 2 else theme.TEXT_DIM

    def param_label_color(self, name: str) -> QColor:
        """The colour the field of parameter `name` shows its name in, as painted."""
        j = list(self.spec.params).index(name)
        p, r = self.spec.params[name], self._param_rect(j)
        shown = format_value(p, self.inst.params.get(name, p.default)) + (" ▾" if p.choices else "")
        label, _ = field_texts(name, shown, r.width() - 12, file=p.kind == "path")
        return self._label_color(self._fill_width(p, self.inst.params.get(name, p.default), r), 6 + LABEL.width(label))

    def color_swatch(self, name: str) -> Optional[Tuple[QRectF, QColor]]:
        """Where a colour parameter's field shows its colour on the node, and which (None: not a
        colour, or one the node would refuse): the node showed '#ff8040' as text only, the colour
        itself was a click into the properties away."""
        p = self.spec.params[name]
        v = self.inst.params.get(name, p.default)
        if p.kind != "color" or not isinstance(v, str) or check_param(p, v):
            return None
        r = self.param_rect(name)
        side = r.height() - 6
        return QRectF(r.right() - 6 - side, r.center().y() - side / 2, side, side), QColor("#" + v.strip().lstrip("#"))

    def _paint_thumb(self, painter):
        bottom = self.h - (ROW_H if self.info else 0.0)
        area = QRectF(PAD, bottom - THUMB_H - PAD, self.w - 2 * PAD, THUMB_H)
        img = self.thumb
        s = min(area.width() / img.width(), area.height() / img.height())
        target = QRectF(0, 0, img.width() * s, img.height() * s)
        target.moveCenter(area.center())
        painter.drawImage(target, img)

    # -- interaction --------------------------------------------------------------------------
    def itemChange(self, change, value):
        # Snapped while dragged only: a position given (Align, Distribute, Auto-layout, the file) is drawn as the
        # workflow holds it; snapped too, a node stood up to 10 px from where the file put it.
        if change == QGraphicsItem.ItemPositionChange and self.scene() is not None and self.scene().snapping \
                and self.scene()._moving:
            return QPointF(snap(value.x()), snap(value.y()))
        if change == QGraphicsItem.ItemPositionHasChanged:
            self.update_links()
            sc = self.scene()
            if sc is not None:
                sc.overview_changed()
                sc.titles_may_move(self.sceneBoundingRect())
                if sc._moving:
                    sc.node_dragged(self)
        if change == QGraphicsItem.ItemSceneHasChanged and self.spec is None and value is not None:
            self.sync(self.inst, {"collapsed": self.collapsed})      # its sockets are its links: known now
        return super().itemChange(change, value)

    def hoverMoveEvent(self, event):
        port = self.port_at(event.pos())
        # Zoomed out no field is drawn: the node's own tip (with what is wrong with it), not an unseen field's.
        field = self.param_at(event.pos()) if _zoom(event) >= DETAIL_ZOOM else None
        if port != self._hover_port:
            self._hover_port = port
            self.update()
            self.setToolTip(help_tip(self._port_tip(port) if port else self._param_tip(field)))
        elif port is None:
            self.setToolTip(help_tip(self._param_tip(field)))

    def hoverLeaveEvent(self, event):
        if self._hover_port is not None:
            self._hover_port = None
            self.update()

    def _port_tip(self, port) -> str:
        name, is_input = port
        if self.spec is None:
            return (f"ComfyUI's {'input' if is_input else 'output'} {name}: kept linked as in ComfyUI, "
                    f"for the nodes that replace this one")
        if is_input and name in self.spec.params:
            src = self.scene().doc.graph.inputs.get(self.node_id, {}).get(name, ("?", "?"))
            return (f"{name}: set by {'.'.join(src)} ({self.spec.port_type(name).name}); drag the wire away to type "
                    f"the value in again")
        p = (self.spec.inputs if is_input else self.spec.outputs)[name]
        kind = "input" if is_input else "output"
        extra = " (optional)" if p.optional else ""
        return f"{kind} {name}: {p.type.name}{extra}" + (f"\n{p.type.help}" if p.type.help else "")

    def _param_tip(self, name) -> str:
        if not name:
            # Why it failed (or was not run), where the red badge is: the log may be scrolled away. What
            # 'streaming' means, where its badge is.
            st = self.status
            why = (_wrap(f"{st.state}: {st.message}") + "\n\n"
                   if st is not None and st.state in ("failed", "skipped", "streaming") and st.message else "")
            # A title cut short on the node reads whole here (it was nowhere but the properties).
            whole = f"{self.label}\n\n" if self.title != self.label else ""
            # Zoomed out the red field is not drawn: what is wrong, after why a run failed (which it may explain).
            wrong = "".join(_wrap(t) + "\n\n" for t in self.trouble())
            return whole + why + wrong + (self.spec.summary if self.spec else "")
        p = self.spec.params[name]
        if name in self.missing:
            return _wrap(self.missing[name].message) + "\n\n" + (f"{name}: {p.help}" if p.help else "")
        rng = f" [{p.min}..{p.max}]" if p.min is not None or p.max is not None else ""
        how = "Drag to change (Shift: fine, Ctrl: coarse)" if p.type in NUMERIC else "Drag to change"
        return f"{name} ({p.type}{rng})" + (f": {p.help}" if p.help else "") + f"\n{how}, click to type"

    def mousePressEvent(self, event):
        sc = self.scene()
        if event.button() == Qt.LeftButton and self.spec and not sc.far:     # far out a node is one block
            port = self.port_at(event.pos())
            if port is not None:
                sc.start_link_drag(self, port[0], port[1], event.scenePos())
                self._drag = ("link",)
                event.accept()
                return
            name = self.param_at(event.pos()) if _zoom(event) >= DETAIL_ZOOM else None
            if name is not None and not (event.modifiers() & (Qt.ControlModifier | Qt.ShiftModifier)):
                v = self.inst.params.get(name, self.spec.params[name].default)
                x = event.screenPos().x()
                self._drag = ("param", name, x, v, sc.controller.new_gesture(), False, x, v)
                event.accept()
                return
        self._drag = None
        super().mousePressEvent(event)
        if event.button() == Qt.LeftButton:
            sc.begin_move()

    def mouseMoveEvent(self, event):
        d = self._drag
        if d and d[0] == "link":
            self.scene().update_link_drag(event.scenePos())
            return
        if d and d[0] == "param":
            _, name, last, at, gesture, moved, x0, v0 = d
            p = self.spec.params[name]
            x = event.screenPos().x()
            if p.type in NUMERIC and isinstance(v0, (int, float)) and not isinstance(v0, bool) and (moved or abs(x - x0) > 2):
                mods = event.modifiers()
                speed = 0.1 if mods & Qt.ShiftModifier else 10.0 if mods & Qt.ControlModifier else 1.0
                at, v = scrub(p, at, v0, x - last, speed)
                self._drag = ("param", name, x, at, gesture, True, x0, v0)
                if v != self.inst.params.get(name, p.default):
                    self.scene().controller.set_param(self.node_id, name, v, gesture)
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event):
        d, self._drag = self._drag, None
        sc = self.scene()
        if d and d[0] == "link":
            sc.finish_link_drag(event.scenePos())
            return
        if d and d[0] == "param":
            if not d[5]:
                sc.click_param(self, d[1], event.screenPos())
            return
        super().mouseReleaseEvent(event)
        if event.button() == Qt.LeftButton:
            sc.end_move()

    def mouseDoubleClickEvent(self, event):
        if event.pos().y() <= HEADER_H:
            self.scene().rename_node(self)
            return
        super().mouseDoubleClickEvent(event)


def fit_title(label: str, room: float) -> str:
    """`label` cut to `room`. A node from a ComfyUI subgraph is titled 'Subgraph / Its own name': the subgraph's name
    gives way first, then the node's own name is cut at its end. Cut at the end, Wan 2.2's positive and negative
    prompts both read 'Image to Video (Wan2.2) …'."""
    if TITLE.width(label) <= room:
        return label
    head, sep, own = label.rpartition(" / ")
    if not sep:
        return TITLE.elide(label, room)
    left = room - TITLE.width(sep + own)
    if left >= TITLE.width("Ima…"):
        return TITLE.elide(head, left) + sep + own
    return TITLE.elide(own, room)


WEIGHTS_SUFFIXES = (".safetensors", ".gguf", ".ckpt", ".pt", ".pth", ".bin", ".sft")


def default_path_text(wf, p) -> str:
    """What a writer's path `p` left out of its node reads as in the workflow `wf`: 'out/shot.mp4 (from the file
    name)' for shot.yaml, the node's own default (out/video.mp4) for an untitled workflow."""
    shown = own_default(wf, p)
    return f"{shown} (from the file name)" if from_file_name(wf, p) else shown


def field_texts(name: str, shown: str, width: float, file: bool = False) -> Tuple[str, str]:
    """(name, value) as a field `width` wide shows them: a long name (a user node's) ran past the
    node's edge and left the value no room at all; now it gives way down to half the field, elided
    (the tooltip has it whole), and the value takes the rest. A value cut short is cut in the middle, but a weights
    file's name (`file`) at its end, as ComfyUI cuts it: its suffix says little, and Wan 2.2's high- and low-noise
    models both read 'wan2.2_i2...fetensors'."""
    room = width - 10
    name_room = min(LABEL.width(name), max(room * 0.5, room - LABEL.width(shown)))
    label = LABEL.elide(name, name_room)
    weights = file and shown.lower().endswith(WEIGHTS_SUFFIXES)
    return label, LABEL.elide(shown, room - LABEL.width(label), Qt.ElideRight if weights else Qt.ElideMiddle)


def socket_texts(left: str, right: str, width: float) -> Tuple[str, str]:
    """(input, output) labels of one row of sockets `width` apart, each elided in the middle (names that share a
    start differ at the end: model_reference_images_image_1) to keep a gap between them. A placeholder's ComfyUI
    names drew over each other ('driving_track_dapose_video_mask'); the socket's tooltip has them whole."""
    room = width - (8 if left and right else 0)
    right_room = min(LABEL.width(right), max(room * 0.5, room - LABEL.width(left)))
    shown = LABEL.elide(right, right_room, Qt.ElideMiddle)
    return LABEL.elide(left, room - LABEL.width(shown), Qt.ElideMiddle), shown


def _zoom(event) -> float:
    """The zoom of the view a mouse event came through (its fields are drawn only close up)."""
    vp = event.widget()
    view = vp.parentWidget() if vp is not None else None
    return view.transform().m11() if view is not None and hasattr(view, "transform") else 1.0


def scrub(p, at: float, start, pixels: float, speed: float = 1.0) -> Tuple[float, Any]:
    """(where the drag is, the value the field shows) after `pixels` more screen pixels of a drag that is at
    `at` and began at `start`, at drag_rate(p) per pixel times `speed` (Shift 0.1, Ctrl 10): the value keeps
    the decimals of the step it moves by and of the value the drag began at. Where it is is held inside
    the range, so a drag back from past the end moves the value at once."""
    rate = drag_rate(p) * speed
    at += pixels * rate
    if p.min is not None:
        at = max(p.min, at)
    if p.max is not None:
        at = min(p.max, at)
    if p.type == "int":
        return at, int(round(at))
    return at, round(at, max(places(rate), places(start)))
