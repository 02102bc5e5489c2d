"""A curve editor for SCHEDULE values: the value over frames, keyframes as handles.

Drag a keyframe to change its frame and value (one undo step per drag), double-click to add
one, right-click for its easing or to delete it, Delete removes the selected one. Keyframes
written as expressions are drawn hollow and move in time only."""
from __future__ import annotations

from typing import List, Optional

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QMenu, QSizePolicy, QWidget

from graph_engine.schedule import EASINGS, Keyframe, Schedule, ScheduleError, parse_schedule

from . import theme

MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 34.0, 10.0, 10.0, 18.0
HANDLE_R = 5.0


def _fmt(v: float) -> str:
    return f"{v:.4f}".rstrip("0").rstrip(".") if v == v else "nan"


class CurveEditor(QWidget):
    edited = Signal(str, object)      # new schedule text, gesture token (None for a single click edit)

    def __init__(self, parent=None, bounds=(None, None)):
        super().__init__(parent)
        # The parameter's min and max (either None): a drag stops there, and the view shows no more than them
        # unless the values go past them. Without them hybrid_alpha (0..1) at 0.5 was drawn over -0.5..1.5 and a
        # drag took it to 1.3, which the run refuses.
        self.bounds = bounds
        self.setMinimumHeight(130)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setFocusPolicy(Qt.ClickFocus)
        self.schedule: Optional[Schedule] = None
        self.frames = 48
        self.selected: Optional[int] = None
        self._drag = None
        self._range = (0.0, 1.0)
        self._gesture = 0

    # -- data -----------------------------------------------------------------------------------
    def set_schedule(self, value, frames: Optional[int] = None) -> None:
        try:
            self.schedule = parse_schedule(value)
        except (ScheduleError, ValueError):
            self.schedule = None
        last = self.schedule.keyframes[-1].frame if self.schedule else 0
        self.frames = max(frames or 0, last + 1, 2)
        if self._drag is None:
            self._range = self._value_range()
        self.update()

    def _value_range(self):
        if self.schedule is None:
            return 0.0, 1.0
        try:
            vals = self.schedule.values(self.frames)
        except ScheduleError:
            return 0.0, 1.0
        lo, hi = float(vals.min()), float(vals.max())
        least, most = self.bounds
        if hi - lo < 1e-6:
            lo, hi = lo - 1.0, hi + 1.0
        pad = (hi - lo) * 0.15
        lo, hi = lo - pad, hi + pad
        if least is not None and float(vals.min()) >= least:
            lo = max(lo, least)
        if most is not None and float(vals.max()) <= most:
            hi = min(hi, most)
        return (lo, hi) if hi - lo > 1e-9 else (lo - 1.0, hi + 1.0)

    def _plot(self) -> QRectF:
        return QRectF(MARGIN_L, MARGIN_T, self.width() - MARGIN_L - MARGIN_R, self.height() - MARGIN_T - MARGIN_B)

    def _to_px(self, f: float, v: float) -> QPointF:
        r, (lo, hi) = self._plot(), self._range
        return QPointF(r.left() + f / max(1, self.frames - 1) * r.width(), r.bottom() - (v - lo) / (hi - lo) * r.height())

    def _from_px(self, p: QPointF):
        r, (lo, hi) = self._plot(), self._range
        f = (p.x() - r.left()) / max(1.0, r.width()) * max(1, self.frames - 1)
        v = lo + (r.bottom() - p.y()) / max(1.0, r.height()) * (hi - lo)
        least, most = self.bounds
        v = v if least is None else max(least, v)
        return max(0, round(f)), v if most is None else min(most, v)

    def _key_points(self) -> List[QPointF]:
        out = []
        for k in self.schedule.keyframes:
            try:
                v = k.number if k.number is not None else self.schedule(k.frame)
            except ScheduleError:
                v = 0.0
            out.append(self._to_px(k.frame, v))
        return out

    def _emit(self, keys: List[Keyframe], gesture) -> None:
        keys = sorted(keys, key=lambda k: k.frame)
        try:
            sched = Schedule(keys, self.schedule.interp if self.schedule else "linear")
        except ScheduleError:
            return
        self.schedule = sched
        self.update()
        self.edited.emit(sched.to_text(), gesture)

    # -- painting -------------------------------------------------------------------------------
    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.fillRect(self.rect(), theme.FIELD)
        r = self._plot()
        lo, hi = self._range
        p.setPen(QPen(theme.GRID_MAJOR, 1))
        p.drawRect(r)
        p.setPen(theme.TEXT_DIM)
        for v in (lo, (lo + hi) / 2, hi):
            y = self._to_px(0, v).y()
            p.drawText(QRectF(0, y - 8, MARGIN_L - 4, 16), Qt.AlignRight | Qt.AlignVCenter, f"{v:.3g}")
        p.drawText(QRectF(r.left(), r.bottom() + 2, 60, 14), Qt.AlignLeft, "0")
        p.drawText(QRectF(r.right() - 60, r.bottom() + 2, 60, 14), Qt.AlignRight, str(self.frames - 1))
        if self.schedule is None:
            p.drawText(r, Qt.AlignCenter, "not a valid schedule")
            return
        try:
            vals = self.schedule.values(self.frames)
        except ScheduleError as e:
            p.drawText(r, Qt.AlignCenter | Qt.TextWordWrap, str(e))
            return
        path = QPainterPath(self._to_px(0, vals[0]))
        for i in range(1, len(vals)):
            path.lineTo(self._to_px(i, vals[i]))
        p.setPen(QPen(QColor("#5aa9ff"), 2))
        p.drawPath(path)
        for i, (k, pt) in enumerate(zip(self.schedule.keyframes, self._key_points())):
            sel = i == self.selected
            p.setPen(QPen(theme.NODE_SELECTED if sel else theme.TEXT, 1.5))
            p.setBrush(theme.NODE_SELECTED if sel else (theme.TEXT if k.number is not None else Qt.NoBrush))
            p.drawEllipse(pt, HANDLE_R, HANDLE_R)

    # -- interaction ----------------------------------------------------------------------------
    def _hit(self, pos: QPointF) -> Optional[int]:
        if self.schedule is None:
            return None
        for i, pt in enumerate(self._key_points()):
            if (pt - pos).manhattanLength() <= HANDLE_R * 2:
                return i
        return None

    def mousePressEvent(self, event):
        i = self._hit(event.position())
        self.selected = i
        self.update()
        if i is None:
            return
        if event.button() == Qt.RightButton:
            self._menu(i, event.globalPosition().toPoint())
            return
        self._gesture += 1
        self._drag = (i, ("curve", id(self), self._gesture))

    def mouseMoveEvent(self, event):
        if self._drag is None or self.schedule is None:
            return
        i, gesture = self._drag
        keys = self.schedule.keyframes
        f, v = self._from_px(event.position())
        lo = keys[i - 1].frame + 1 if i > 0 else 0
        hi = keys[i + 1].frame - 1 if i + 1 < len(keys) else 10 ** 6
        f = max(lo, min(hi, f))
        k = keys[i]
        keys[i] = Keyframe(f, _fmt(v) if k.number is not None else k.value, k.easing)
        self._emit(keys, gesture)

    def mouseReleaseEvent(self, event):
        if self._drag is not None:
            self._drag = None
            self._range = self._value_range()
            self.update()

    def mouseDoubleClickEvent(self, event):
        if self.schedule is None or self._hit(event.position()) is not None:
            return
        f, v = self._from_px(event.position())
        keys = [k for k in self.schedule.keyframes if k.frame != f] + [Keyframe(f, _fmt(v))]
        self._emit(keys, None)
        self.selected = sorted(k.frame for k in keys).index(f)

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key_Delete, Qt.Key_Backspace) and self.selected is not None:
            self.delete_key(self.selected)
            return
        super().keyPressEvent(event)

    def delete_key(self, i: int) -> None:
        keys = self.schedule.keyframes
        if len(keys) > 1:
            del keys[i]
            self.selected = None
            self._emit(keys, None)

    def set_easing(self, i: int, easing: Optional[str]) -> None:
        keys = self.schedule.keyframes
        keys[i] = Keyframe(keys[i].frame, keys[i].value, easing)
        self._emit(keys, None)

    def _menu(self, i: int, at) -> None:
        menu = QMenu(self)
        cur = self.schedule.keyframes[i].easing
        for e in (None,) + EASINGS:
            a = menu.addAction("default (schedule's interpolation)" if e is None else f"ease: {e}")
            a.setCheckable(True)
            a.setChecked(e == cur)
            a.triggered.connect(lambda _=False, e=e: self.set_easing(i, e))
        menu.addSeparator()
        menu.addAction("Delete keyframe", lambda: self.delete_key(i))
        menu.popup(at)
