"""The viewer: any node's output, frame-accurately (play/pause, scrub, step, loop, fps, zoom),
with an A/B wipe between two outputs.

Frames are pulled one at a time from the lazy Clip on a loader thread, so only the frames
looked at are computed; when computing is slower than the frame rate, playback slows down
instead of skipping frames."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (QAbstractSpinBox, QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout,
                               QLabel, QLineEdit, QPlainTextEdit, QSizePolicy, QSlider, QSpinBox, QTextEdit,
                               QToolButton, QVBoxLayout, QWidget)

from . import theme
from .camera_preview import camera_path_image, is_camera

FRAME_CACHE = 48
PLAY, PAUSE = "▶", "❚❚"
ZOOMS = (("Fit", 0.0), ("25%", 0.25), ("50%", 0.5), ("100%", 1.0), ("200%", 2.0), ("400%", 4.0))


def to_qimage(arr: np.ndarray) -> QImage:
    """uint8 RGB [H,W,3] or a float mask [H,W] in [0,1] as a QImage that owns its pixels."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = np.repeat((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    a = np.ascontiguousarray(a[..., :3].astype(np.uint8, copy=False))
    h, w = a.shape[:2]
    return QImage(a.data, w, h, 3 * w, QImage.Format_RGB888).copy()


def timecode(frame: int, fps: float) -> str:
    """HH:MM:SS:FF of a frame index (non-drop; fractional rates count whole frames per second)."""
    per = max(1, round(fps))
    secs, ff = divmod(int(frame), per)
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}:{ff:02d}"


class Source:
    """What a viewer slot shows: a clip, one image or mask, a camera path, or a plain value."""

    def __init__(self, value, label: str):
        self.value, self.label = value, label
        self.text = ""
        self.size = None                        # (width, height) when known without computing
        if hasattr(value, "frames") and hasattr(value, "length"):
            self.length, self.fps = int(value.length), float(value.fps or 24.0)
            self.size = (int(getattr(value, "width", 0)), int(getattr(value, "height", 0)))
        elif isinstance(value, np.ndarray) and value.ndim in (2, 3):
            self.length, self.fps = 1, 24.0
            self.size = (value.shape[1], value.shape[0])
        elif is_camera(value):
            self.length, self.fps = 1, 24.0
        else:
            self.length, self.fps = 0, 24.0
            self.text = f"{label} = {value!r}"[:400]

    def timecode_of(self, i: int) -> str:
        """The timecode of frame i: the source's own (a camera's 01:02:03:04) when the clip carries one."""
        start = getattr(self.value, "timecode", None)
        return start.shifted(i, self.fps).label() if start is not None else timecode(i, self.fps)

    def describe(self) -> str:
        """Size, rate and duration, as a monitor shows them."""
        parts = []
        if self.size and all(self.size):
            parts.append(f"{self.size[0]}×{self.size[1]}")
        if self.length > 1:
            parts.append(f"{self.fps:g} fps · {self.length} frames · {timecode(self.length, self.fps)}")
        return " · ".join(parts)

    def render(self, i: int) -> QImage:
        v = self.value
        if hasattr(v, "frames"):
            return to_qimage(v.frame(max(0, min(self.length - 1, i))))
        if is_camera(v):
            return camera_path_image(v)
        return to_qimage(v)


class FrameLoader(QObject):
    """Renders the latest requested frame of each slot; older requests are dropped unseen."""
    loaded = Signal(str, int, QImage)
    failed = Signal(str, str)
    _poke = Signal()

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self._want: Dict[str, Tuple[Source, int]] = {}
        self._poke.connect(self._work, Qt.QueuedConnection)

    def request(self, slot: str, source: Source, index: int) -> None:
        with self._lock:
            self._want[slot] = (source, index)
        self._poke.emit()

    @Slot()
    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._want:
                    return
                slot = next(iter(self._want))
                source, index = self._want.pop(slot)
            try:
                self.loaded.emit(slot, index, source.render(index))
            except Exception as e:      # a failing upstream node: say so in the viewer, keep going
                self.failed.emit(slot, f"{type(e).__name__}: {e}")


class FrameCanvas(QWidget):
    """Paints slot A, or A and B split by a draggable wipe line; wheel zooms, drag pans."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.images: Dict[str, Optional[QImage]] = {"A": None, "B": None}
        self.wipe: Optional[float] = None       # fraction of width where B starts
        self.zoom = 0.0                         # 0 = fit
        self.offset = QPointF(0, 0)
        self.note = ""
        self.alert = False                      # the note is a failure or a stale picture: a banner over it
        self.loading = ""                       # "computing…" while the shown frame is not there yet
        self.live: Optional[QImage] = None      # a sampler's step preview, shown over A and B while it runs
        self._drag = None
        self.setFocusPolicy(Qt.StrongFocus)     # a click (or the pointer over it) gives the viewer its keys

    def _target(self, img: QImage) -> QRectF:
        r = QRectF(self.rect())
        s = self.zoom or min(r.width() / img.width(), r.height() / img.height())
        t = QRectF(0, 0, img.width() * s, img.height() * s)
        t.moveCenter(r.center() + self.offset)
        return t

    def paintEvent(self, event):
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#111214"))
        a, b = (self.live, None) if self.live is not None else (self.images["A"], self.images["B"])
        p.setRenderHint(QPainter.SmoothPixmapTransform, self.zoom == 0.0 or self.zoom < 1.0)
        if a is not None:
            p.drawImage(self._target(a), a)
        if b is not None and self.wipe is not None:
            x = self.width() * self.wipe
            p.save()
            p.setClipRect(QRectF(x, 0, self.width() - x, self.height()))
            p.drawImage(self._target(b), b)
            p.restore()
            p.setPen(QPen(theme.NODE_SELECTED, 1.5))
            p.drawLine(QPointF(x, 0), QPointF(x, self.height()))
            p.drawText(QRectF(x - 30, 4, 26, 16), Qt.AlignRight, "A")
            p.drawText(QRectF(x + 4, 4, 26, 16), Qt.AlignLeft, "B")
        if self.loading:
            p.setPen(theme.TEXT)
            p.fillRect(QRectF(self.width() / 2 - 110, self.height() / 2 - 16, 220, 32), QColor(0, 0, 0, 170))
            p.drawText(QRectF(self.rect()), Qt.AlignCenter, self.loading)
        if self.note:
            box = QRectF(self.rect()).adjusted(8, 8, -8, -8)
            flags = Qt.AlignLeft | Qt.AlignTop | Qt.TextWordWrap
            if self.alert:
                need = p.boundingRect(box.adjusted(8, 6, -8, -6), flags, self.note)
                p.fillRect(QRectF(box.x(), box.y(), box.width(), need.height() + 12), QColor(120, 30, 24, 215))
                p.setPen(QColor("#ffd9d3"))
                p.drawText(box.adjusted(8, 6, -8, -6), flags, self.note)
            else:
                p.setPen(theme.TEXT_DIM)
                p.drawText(box.adjusted(4, 0, -4, 0), flags, self.note)

    def set_note(self, text: str, alert: bool = False) -> None:
        self.note, self.alert = text, alert
        self.update()

    def enterEvent(self, event):
        focused = QApplication.focusWidget()
        if not isinstance(focused, (QLineEdit, QPlainTextEdit, QTextEdit, QAbstractSpinBox)):
            self.setFocus(Qt.MouseFocusReason)      # hover gives the keys, unless the user is typing
        super().enterEvent(event)

    def wheelEvent(self, event):
        img = self.images["A"]
        if img is None:
            return
        cur = self.zoom or self._target(img).width() / img.width()
        self.zoom = max(0.05, min(16.0, cur * (1.0015 ** event.angleDelta().y())))
        self.update()

    def mousePressEvent(self, event):
        self.setFocus(Qt.MouseFocusReason)
        if self.wipe is not None and abs(event.position().x() - self.width() * self.wipe) < 8:
            self._drag = ("wipe",)
        else:
            self._drag = ("pan", event.position(), QPointF(self.offset))

    def mouseMoveEvent(self, event):
        if not self._drag:
            return
        if self._drag[0] == "wipe":
            self.wipe = max(0.0, min(1.0, event.position().x() / max(1, self.width())))
        else:
            self.offset = self._drag[2] + (event.position() - self._drag[1])
        self.update()

    def mouseReleaseEvent(self, event):
        self._drag = None

    def mouseDoubleClickEvent(self, event):
        self.zoom, self.offset = 0.0, QPointF(0, 0)
        self.update()


class ViewerPanel(QWidget):
    frameShown = Signal(str, int, QImage)      # slot, frame index, image

    def __init__(self, parent=None):
        super().__init__(parent)
        self.sources: Dict[str, Optional[Source]] = {"A": None, "B": None}
        self.index = 0
        self.direction, self.speed = 1, 1        # J/K/L shuttle: backwards or forwards, 1x, 2x, 4x
        self._cache: "OrderedDict[Tuple[str, int, int], QImage]" = OrderedDict()
        self._waiting: Dict[str, int] = {}
        self.canvas = FrameCanvas()
        self.loader = FrameLoader()
        self._thread = QThread()
        self._thread.setObjectName("kinograph-viewer")
        self.loader.moveToThread(self._thread)
        self.loader.loaded.connect(self._loaded)
        self.loader.failed.connect(self._failed)
        self._thread.start()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self._build()

    def _button(self, text: str, tip: str, slot) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    def _build(self) -> None:
        self.labels = {s: QLabel(f"{s}: —") for s in "AB"}
        for label in self.labels.values():
            label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)     # long names clip, the panel stays narrow
        names = QHBoxLayout()
        names.addWidget(self.labels["A"], 1)
        names.addWidget(self.labels["B"], 1)
        top = QHBoxLayout()
        self.wipe_box = QCheckBox("A/B wipe")
        self.wipe_box.setToolTip("Split the view: A left of the line, B right; drag the line")
        self.wipe_box.toggled.connect(self._toggle_wipe)
        top.addWidget(self.wipe_box)
        top.addWidget(self._button("⇄", "Swap A and B", self.swap))
        self.zoom_box = QComboBox()
        for name, _ in ZOOMS:
            self.zoom_box.addItem(name)
        self.zoom_box.setToolTip("Zoom (wheel over the picture; double-click fits)")
        self.zoom_box.currentIndexChanged.connect(self._zoom_changed)
        top.addWidget(self.zoom_box)

        self.slider = QSlider(Qt.Horizontal)
        self.slider.setToolTip("Scrub")
        self.slider.valueChanged.connect(self.seek)
        bar = QHBoxLayout()
        self.play_button = self._button(PLAY, "Play / pause (Space; J back, K stop, L forward)", self.toggle_play)
        for w in (self._button("⇤", "First frame (Home)", lambda: self.seek(0)),
                  self._button("◀|", "Previous frame (Left)", lambda: self.step(-1)),
                  self.play_button,
                  self._button("|▶", "Next frame (Right)", lambda: self.step(1)),
                  self._button("⇥", "Last frame (End)", lambda: self.seek(self.length - 1))):
            bar.addWidget(w)
        bar.addStretch(1)
        self.frame_box = QSpinBox()
        self.frame_box.setToolTip("Frame")
        self.frame_box.valueChanged.connect(self.seek)
        bar.addWidget(self.frame_box)
        self.count_label = QLabel("/ 0")
        bar.addWidget(self.count_label)
        self.timecode_label = QLabel(timecode(0, 24))
        self.timecode_label.setObjectName("Timecode")
        self.timecode_label.setToolTip("Timecode of the shown frame (HH:MM:SS:FF): the source's own where the "
                                       "file states one, else counted from 00:00:00:00")
        bar.addWidget(self.timecode_label)
        self.loop_box = QCheckBox("loop")
        self.loop_box.setChecked(True)
        top.insertWidget(0, self.loop_box)
        self.fps_box = QDoubleSpinBox()
        self.fps_box.setRange(0.1, 240)
        self.fps_box.setDecimals(2)
        self.fps_box.setSuffix(" fps")
        self.fps_box.setValue(24.0)
        self.fps_box.valueChanged.connect(lambda v: self.timer.setInterval(self._interval()))
        top.insertWidget(1, self.fps_box)
        top.insertStretch(2, 1)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(4)
        lay.addLayout(top)
        lay.addLayout(names)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.slider)
        lay.addLayout(bar)
        self._update_range()

    # -- sources --------------------------------------------------------------------------------
    @property
    def master(self) -> Optional[Source]:
        """The source whose frames the slider counts (A, or B alone); the other follows by time."""
        return self.sources["A"] or self.sources["B"]

    @property
    def length(self) -> int:
        m = self.master
        return m.length if m is not None else 0

    def _label(self, slot: str) -> None:
        src = self.sources[slot]
        text = f"{slot}: {src.label}" if src else f"{slot}: —"
        self.labels[slot].setText(text + (f"  {src.describe()}" if src and src.describe() else ""))
        self.labels[slot].setToolTip(self.labels[slot].text())
        if slot == "B":
            self.labels["B"].setVisible(src is not None)        # A's line gets the room until there is a B

    def set_source(self, slot: str, value, label: str) -> None:
        src = Source(value, label)
        self.canvas.loading = ""
        first_b = slot == "B" and self.sources["B"] is None
        self.sources[slot] = src
        self._cache = OrderedDict((k, v) for k, v in self._cache.items() if k[0] != slot)
        self._label(slot)
        if slot == "A" and src.length:
            self.fps_box.setValue(src.fps)
        if first_b and not self.wipe_box.isChecked():
            self.wipe_box.setChecked(True)       # once; after that the wipe is the user's choice
        self.canvas.set_note(src.text)
        self._update_range()
        self.show_frame(min(self.index, max(0, self.length - 1)))

    def clear(self) -> None:
        """Nothing shown (another document was opened: its outputs are not this one's)."""
        self.pause()
        self.sources = {"A": None, "B": None}
        self._cache.clear()
        self._waiting.clear()
        self.canvas.images = {"A": None, "B": None}
        self.canvas.loading = ""
        self.canvas.set_note("")
        for s in "AB":
            self._label(s)
        self.index = 0
        self._update_range()

    def show_live(self, img: QImage, caption: str) -> None:
        """A step of a running sampler (a cheap projection of its latent), with step count and ETA."""
        self.canvas.live = img
        self.canvas.loading = caption
        self.canvas.update()

    def end_live(self) -> None:
        if self.canvas.live is not None:
            self.canvas.live = None
            self.canvas.loading = ""
            self.canvas.update()

    def computing(self, slot: str, what: str) -> None:
        """A view job for `slot` is on its way."""
        self.canvas.loading = f"computing {what}…"
        self.canvas.update()

    def cancelled(self, slot: str, what: str) -> None:
        """The view job for `slot` was cancelled: what was on screen stays, and says it is not `what`."""
        self.canvas.loading = ""
        src = self.sources[slot]
        if src is not None:
            self.canvas.set_note(f"{slot}: computing {what} was cancelled; this is still {src.label} (V computes it)")
        else:
            self.canvas.set_note(f"{slot}: computing {what} was cancelled (V computes it)")

    def fail(self, slot: str, message: str) -> None:
        """The output could not be computed: no old picture left to look like the answer."""
        self.canvas.images[slot] = None
        self.canvas.loading = ""
        self.sources[slot] = None
        self._label(slot)
        self.canvas.set_note(message, alert=True)
        self._update_range()

    def swap(self) -> None:
        self.sources["A"], self.sources["B"] = self.sources["B"], self.sources["A"]
        self._cache.clear()
        for s in "AB":
            self._label(s)
        self.show_frame(self.index)

    def _update_range(self) -> None:
        n = self.length
        for w in (self.slider, self.frame_box):
            w.blockSignals(True)
            w.setRange(0, max(0, n - 1))
            w.blockSignals(False)
        self.count_label.setText(f"/ {max(0, n - 1)}")
        self.timecode_label.setText(self.master.timecode_of(self.index) if self.master else timecode(0, 24))

    # -- frames ---------------------------------------------------------------------------------
    def show_frame(self, i: int) -> None:
        self.index = i
        for w in (self.slider, self.frame_box):
            w.blockSignals(True)
            w.setValue(i)
            w.blockSignals(False)
        master = self.master
        if master is not None:
            self.timecode_label.setText(master.timecode_of(i))
        for slot, src in self.sources.items():
            if src is None or src.length == 0:
                self.canvas.images[slot] = None
                continue
            # Aligned by time, not frame number: B at 48 fps beside A at 24 shows frame 2i.
            j = i if src is master else round(i / master.fps * src.fps)
            j = max(0, min(j, src.length - 1))
            key = (slot, id(src), j)
            if key in self._cache:
                self._cache.move_to_end(key)
                self._show(slot, j, self._cache[key])
            else:
                self._waiting[slot] = j
                self.canvas.loading = f"computing frame {j}…"
                self.loader.request(slot, src, j)
        self.canvas.update()

    def _show(self, slot: str, j: int, img: QImage) -> None:
        self.canvas.images[slot] = img
        self._waiting.pop(slot, None)
        if not self._waiting:
            self.canvas.loading = ""
        self.canvas.update()
        self.frameShown.emit(slot, j, img)

    def _loaded(self, slot: str, j: int, img: QImage) -> None:
        src = self.sources.get(slot)
        if src is None:
            return
        self._cache[(slot, id(src), j)] = img
        while len(self._cache) > FRAME_CACHE:
            self._cache.popitem(last=False)
        if self._waiting.get(slot) == j:
            self._show(slot, j, img)

    def _failed(self, slot: str, message: str) -> None:
        self._waiting.pop(slot, None)
        self.canvas.images[slot] = None
        self.canvas.loading = ""
        self.canvas.set_note(f"{slot} failed: {message}", alert=True)

    def seek(self, i: int) -> None:
        if self.length:
            self.show_frame(max(0, min(self.length - 1, int(i))))

    def step(self, d: int) -> None:
        self.pause()
        self.seek(self.index + d)

    # -- playback -------------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def _interval(self) -> int:
        return max(1, round(1000 / (self.fps_box.value() * self.speed)))

    def play(self, direction: int = 1, speed: int = 1) -> None:
        self.direction, self.speed = direction, speed
        if self.length > 1:
            self.timer.start(self._interval())
            self.play_button.setText(PAUSE)

    def shuttle(self, direction: int) -> None:
        """J / L as in editing software: play that way; pressed again, twice as fast (up to 4x)."""
        same = self.playing and self.direction == direction
        self.play(direction, min(4, self.speed * 2) if same else 1)

    def pause(self) -> None:
        self.timer.stop()
        self.speed = 1
        self.play_button.setText(PLAY)

    def _tick(self) -> None:
        if self._waiting:
            return          # the current frame is still being computed: wait, never skip
        nxt = self.index + self.direction
        if not 0 <= nxt < self.length:
            if not self.loop_box.isChecked():
                self.pause()
                return
            nxt = nxt % self.length
        self.show_frame(nxt)

    def _toggle_wipe(self, on: bool) -> None:
        self.canvas.wipe = 0.5 if on else None
        self.canvas.update()

    def _zoom_changed(self, i: int) -> None:
        self.canvas.zoom = ZOOMS[i][1]
        self.canvas.offset = QPointF(0, 0)
        self.canvas.update()

    def keyPressEvent(self, event):
        k = event.key()
        if k == Qt.Key_Space:
            self.toggle_play()
        elif k == Qt.Key_K:
            self.pause()
        elif k == Qt.Key_J:
            self.shuttle(-1)
        elif k == Qt.Key_L:
            self.shuttle(1)
        elif k == Qt.Key_Left:
            self.step(-1)
        elif k == Qt.Key_Right:
            self.step(1)
        elif k == Qt.Key_Home:
            self.seek(0)
        elif k == Qt.Key_End:
            self.seek(self.length - 1)
        else:
            super().keyPressEvent(event)

    def shutdown(self) -> None:
        self.pause()
        self._thread.quit()
        self._thread.wait(5000)
