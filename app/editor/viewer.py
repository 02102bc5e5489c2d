"""The viewer: any node's output, frame-accurately (play/pause, scrub, step, loop between in and
out points, fps, zoom), with A/B compare of two outputs (wipe, side by side, difference).

Frames are pulled one at a time from the lazy Clip on a loader thread, so only the frames
looked at are computed. Playback keeps the clip's time as a flipbook does: when computing a
frame is slower than the frame rate, frames are skipped (the rate reached is drawn on the
picture); "Play every frame" plays them all instead, slower."""
from __future__ import annotations

import html
import threading
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import numpy as np
from PySide6.QtCore import QElapsedTimer, QObject, QPointF, QRectF, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QFontMetricsF, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QAbstractSpinBox, QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout,
                               QLabel, QLineEdit, QMenu, QPlainTextEdit, QSizePolicy, QSlider, QSpinBox, QStyle,
                               QStyleOptionSlider, QTextEdit, QToolButton, QVBoxLayout, QWidget)

from . import theme
from .camera_preview import camera_path_image, is_camera
from .help_text import plain_tip
from .picker import object_colour

FRAME_CACHE = 48
# Decoded frames kept for scrubbing back, by bytes as well as count: 48 frames of 4K are 1.2 GB.
FRAME_CACHE_BYTES = 512 << 20
PLAY, PAUSE = "▶", "❚❚"
ZOOMS = (("Fit", 0.0), ("25%", 0.25), ("50%", 0.5), ("100%", 1.0), ("200%", 2.0), ("400%", 4.0))
EMPTY_HINT = ("V on a node: its output here (Shift+V: as B)\nDrop a render or a clip here to look at it\n"
              "(Shift: as B · two files: A and B)")
COMPARE = (("wipe", "wipe"), ("side by side", "side"), ("difference", "difference"))
TINT = np.array([255, 48, 48], np.float32)     # a mask laid over its picture, as Nuke's matte overlay is red
TINT_STRENGTH = 0.5


def to_qimage(arr: np.ndarray) -> QImage:
    """uint8 RGB [H,W,3], a float mask [H,W] in [0,1] or a frame of a clip of masks (uint8 [H,W,1]) as a QImage
    that owns its pixels (a one-channel frame was read as RGB: a skewed, wrapped picture)."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = np.repeat((np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    elif a.ndim == 3 and a.shape[-1] == 1:
        a = np.repeat(a.astype(np.uint8, copy=False), 3, axis=2)
    a = np.ascontiguousarray(a[..., :3].astype(np.uint8, copy=False))
    h, w = a.shape[:2]
    return QImage(a.data, w, h, 3 * w, QImage.Format_RGB888).copy()


def tinted(picture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 RGB of the picture with the mask (float [H,W] in [0,1], or uint8 [H,W] / [H,W,1] as a clip of masks
    holds it) laid over it in red at half strength: the region reads against what it covers. A mask of another size
    is stretched to the picture's."""
    pic = np.asarray(picture)[..., :3].astype(np.float32)
    m = np.asarray(mask)
    m = m[..., 0] if m.ndim == 3 else m
    m = m.astype(np.float32) / 255.0 if m.dtype == np.uint8 else np.clip(m.astype(np.float32), 0.0, 1.0)
    h, w = pic.shape[:2]
    if m.shape != (h, w):
        m = m[(np.arange(h) * m.shape[0] // h)[:, None], np.arange(w) * m.shape[1] // w]
    a = (m * TINT_STRENGTH)[..., None]
    return (pic * (1.0 - a) + TINT * a + 0.5).astype(np.uint8)


def _frame_of(value, i: int) -> np.ndarray:
    """Frame i of a clip (the last for a shorter one), or the still itself."""
    if hasattr(value, "frames"):
        return value.frame(max(0, min(int(value.length) - 1, i)))
    return np.asarray(value)


def timecode(frame: int, fps: float) -> str:
    """HH:MM:SS:FF of a frame index (non-drop; fractional rates count whole frames per second)."""
    per = max(1, round(fps))
    secs, ff = divmod(int(frame), per)
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}:{ff:02d}"


class Source:
    """What a viewer slot shows: a clip, one image or mask, a camera path, or a plain value."""

    def __init__(self, value, label: str, backdrop=None):
        self.value, self.label = value, label
        # The picture a mask was made of: the mask is shown tinted over it (`overlay`), or alone as a matte.
        self.backdrop, self.overlay = backdrop, True
        self.text = ""
        self.size = None                        # (width, height) when known without computing
        self.sound = None                       # a clip: True when it carries sound, False when silent
        self.alpha = getattr(value, "matte", None) is not None     # a clip with transparency
        if hasattr(value, "frames") and hasattr(value, "length") and hasattr(value, "fps"):
            # a clip; MoGe's GEOMETRY also has frames(a, b) and a length, but its frames are maps: shown as text
            self.length, self.fps = int(value.length), float(value.fps or 24.0)
            self.size = (int(getattr(value, "width", 0)), int(getattr(value, "height", 0)))
            self.sound = getattr(value, "audio", None) is not None
        elif isinstance(value, np.ndarray) and value.ndim in (2, 3):
            self.length, self.fps = 1, 24.0
            self.size = (value.shape[1], value.shape[0])
        elif is_camera(value):
            self.length, self.fps = 1, 24.0
        else:
            self.length, self.fps = 0, 24.0
            # A value that says itself in words (a sound, a mesh) is shown so; another as Python writes it.
            said = value.summary() if callable(getattr(value, "summary", None)) else repr(value)
            self.text = f"{label} = {said}"[:400]

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
        if self.alpha:
            parts.append("alpha (A shows it)")
        if self.backdrop is not None:
            parts.append("over its picture (M: the matte alone)" if self.overlay else "matte (M: over its picture)")
        if self.sound is not None:
            # The viewer plays pictures only: a reviewer waiting for dialogue took the quiet for a lost
            # track, and could not tell a silent clip from one whose sound the render will carry.
            parts.append("♪ has sound (not played here)" if self.sound else "silent")
        return " · ".join(parts)

    def render(self, i: int, alpha: bool = False) -> QImage:
        """Frame i; with `alpha`, its transparency as grey (white: opaque), as Nuke's A key shows it: the colour
        is laid over black, so a transparent area and a black one looked the same."""
        v = self.value
        if self.backdrop is not None and self.overlay and not alpha:
            return to_qimage(tinted(_frame_of(self.backdrop, i), _frame_of(v, i)))
        if hasattr(v, "frames"):
            k = max(0, min(self.length - 1, i))
            if not alpha:
                return to_qimage(v.frame(k))
            matte = getattr(v, "matte", None)
            m = matte.frame(k)[..., 0] if matte is not None else np.full((v.height, v.width), 255, np.uint8)
            return to_qimage(np.repeat(m[..., None], 3, axis=2))
        if alpha and isinstance(v, np.ndarray):
            return to_qimage(np.full(v.shape[:2] + (3,), 255, np.uint8))
        if is_camera(v):
            return camera_path_image(v)
        return to_qimage(v)


class FrameLoader(QObject):
    """Renders the latest requested frame of each slot; older requests are dropped unseen."""
    # slot, the Source it was rendered from, frame, picture, whether it is the alpha
    loaded = Signal(str, object, int, QImage, bool)
    failed = Signal(str, object, str)
    _poke = Signal()

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self._want: Dict[str, Tuple[Source, int, bool]] = {}
        self._poke.connect(self._work, Qt.QueuedConnection)

    def request(self, slot: str, source: Source, index: int, alpha: bool = False) -> None:
        with self._lock:
            self._want[slot] = (source, index, alpha)
        self._poke.emit()

    @Slot()
    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._want:
                    return
                slot = next(iter(self._want))
                source, index, alpha = self._want.pop(slot)
            try:
                self.loaded.emit(slot, source, index, source.render(index, alpha), alpha)
            except Exception as e:      # a failing upstream node: say so in the viewer, keep going
                self.failed.emit(slot, source, f"{type(e).__name__}: {e}")


class FrameCanvas(QWidget):
    """Paints slot A, or A and B compared (a draggable wipe line, side by side, or their difference);
    wheel zooms, drag pans."""
    zoomed = Signal()
    objectPicked = Signal()                     # a click on another object's pick made it the one edited

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.images: Dict[str, Optional[QImage]] = {"A": None, "B": None}
        # The last frame of a slot's clip held past its end (a shorter take beside A), by slot: it was shown beside
        # A's later frame as if it were of that moment.
        self.held: Dict[str, Optional[int]] = {"A": None, "B": None}
        self.wipe: Optional[float] = None       # fraction of width where B starts; None: A alone
        self.mode = "wipe"                      # how A and B are compared: wipe, side (by side) or difference
        self.zoom = 0.0                         # 0 = fit; else image pixels to screen (device) pixels
        self.offset = QPointF(0, 0)
        self.note = ""
        self.alert = False                      # the note is a failure or a stale picture: a banner over it
        self.loading = ""                       # "computing…" while the shown frame is not there yet
        self.live: Optional[QImage] = None      # a sampler's step preview, shown over A and B while it runs
        self.rate = ("", False)                 # frames shown a second while playing; whether below the clip's
        self.tag = ""                           # the channel shown when not the colour ("alpha")
        self.picker = None                      # a node's points and box, clicked on A (app.editor.picker)
        self._drag = None
        self.setFocusPolicy(Qt.StrongFocus)     # a click (or the pointer over it) gives the viewer its keys
        self.setAccessibleName("Viewer picture")
        self.setAccessibleDescription("Space plays, J K L shuttle, I and O set the loop")

    def slot_tag(self, slot: str) -> str:
        """What the picture calls the slot: its letter, and past its clip's end which frame of it is held."""
        n = self.held.get(slot)
        return slot if n is None else f"{slot} ended: its last frame ({n}) held"

    def _dim_held(self, p: QPainter, area: QRectF) -> None:
        if self.held.get("B") is not None:
            p.fillRect(area, QColor(0, 0, 0, 150))

    def _tag_b(self, p: QPainter, at: QPointF) -> None:
        """B's tag from `at` (its top left); on a dark box where it says more than its letter."""
        text = self.slot_tag("B")
        box = p.boundingRect(QRectF(at.x(), at.y(), 1e4, 20), Qt.AlignLeft | Qt.AlignTop, text)
        if text != "B":
            p.fillRect(box.adjusted(-3, -1, 3, 1), QColor(0, 0, 0, 190))
            p.setPen(theme.WARN)
        p.drawText(box, Qt.AlignLeft | Qt.AlignTop, text)

    def scale(self, img: QImage, area: Optional[QRectF] = None) -> float:
        """Screen (logical) pixels per image pixel. 100% is one image pixel on one pixel of the screen:
        on a 150% desktop, a zoom of 1 in logical pixels drew each pixel 1.5 screen pixels wide, blurred,
        and the reviewer checking detail at 1:1 was not seeing the render's pixels."""
        r = area or QRectF(self.rect())
        if self.zoom:
            return self.zoom / max(1e-6, self.devicePixelRatioF())
        return min(r.width() / img.width(), r.height() / img.height())

    def shown_zoom(self) -> float:
        """The zoom on screen as the zoom box states it (image pixels to screen pixels)."""
        img = self.images["A"] or self.images["B"]
        if img is None:
            return self.zoom or 1.0
        return self.zoom or self.scale(img, self._areas()[0]) * self.devicePixelRatioF()

    def _areas(self):
        """Where A and B are fitted: the whole canvas, or its two halves side by side."""
        r = QRectF(self.rect())
        if self.wipe is None or self.mode != "side" or self.live is not None:
            return r, r
        half = r.width() / 2
        return QRectF(r.x(), r.y(), half, r.height()), QRectF(r.x() + half, r.y(), half, r.height())

    def _target(self, img: QImage, area: Optional[QRectF] = None) -> QRectF:
        area = area or QRectF(self.rect())
        s = self.scale(img, area)
        t = QRectF(0, 0, img.width() * s, img.height() * s)
        t.moveCenter(area.center() + self.offset)
        return t

    def _mapping(self):
        """The picture's size and the maps between its pixels and the canvas, for A as it is drawn; None without A."""
        img = self.images["A"]
        if img is None or self.live is not None or img.width() == 0:
            return None
        t = self._target(img)
        s = t.width() / img.width()
        return ((img.width(), img.height()), lambda x, y: QPointF(t.x() + x * s, t.y() + y * s),
                lambda at: ((at.x() - t.x()) / s, (at.y() - t.y()) / s))

    def _picking(self) -> bool:
        return self.picker is not None and self.picker.enabled and (self.wipe is None or self.images["B"] is None)

    def loading_box(self) -> QRectF:
        """Where the 'computing …' line is drawn: as wide as its words (wrapped to the canvas), at least 220 px. A
        fixed 220 px cut 'computing clip_vision_loader_49.image_encoder…' at both ends. While picking, at the foot
        of the canvas: in the middle it hid what was being clicked on."""
        room = QRectF(0, 0, max(220.0, self.width() - 16.0), self.height())
        text = QFontMetricsF(self.font()).boundingRect(room, Qt.AlignCenter | Qt.TextWordWrap, self.loading)
        w, h = max(220.0, text.width() + 20), max(32.0, text.height() + 14)
        return QRectF((self.width() - w) / 2, self.height() - h - 8 if self.picker is not None
                      else (self.height() - h) / 2, w, h)

    def paintEvent(self, event):
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#111214"))
        a, b = (self.live, None) if self.live is not None else (self.images["A"], self.images["B"])
        if a is None and b is None and not self.note and not self.loading:
            p.setPen(theme.TEXT_DIM)
            p.drawText(QRectF(self.rect()).adjusted(12, 12, -12, -12), Qt.AlignCenter | Qt.TextWordWrap, EMPTY_HINT)
        p.setRenderHint(QPainter.SmoothPixmapTransform, self.zoom == 0.0 or self.zoom < 1.0)
        area_a, area_b = self._areas()
        compare = b is not None and self.wipe is not None
        if a is not None:
            if compare and self.mode == "side":
                p.save()
                p.setClipRect(area_a)
                p.drawImage(self._target(a, area_a), a)
                p.restore()
            else:
                p.drawImage(self._target(a), a)
        if compare and self.mode == "side":
            p.save()
            p.setClipRect(area_b)
            p.drawImage(self._target(b, area_b), b)
            self._dim_held(p, area_b)
            p.restore()
            p.setPen(QPen(theme.NODE_SELECTED, 1.5))
            p.drawLine(QPointF(area_b.x(), 0), QPointF(area_b.x(), self.height()))
            p.drawText(area_a.adjusted(6, 4, -6, 0), Qt.AlignLeft | Qt.AlignTop, "A")
            self._tag_b(p, area_b.topLeft() + QPointF(6, 4))
        elif compare and self.mode == "difference":
            # B drawn where A is (takes of one shot at another size still line up): black where they
            # are the same, bright where they differ.
            p.save()
            p.setCompositionMode(QPainter.CompositionMode_Difference)
            p.drawImage(self._target(a) if a is not None else self._target(b), b)
            p.restore()
            text = "|A − B|" + ("" if self.held.get("B") is None else f" · {self.slot_tag('B')}")
            tag = p.boundingRect(QRectF(self.rect()).adjusted(6, 4, -6, 0), Qt.AlignLeft | Qt.AlignTop, text)
            p.fillRect(tag.adjusted(-3, -1, 3, 1), QColor(0, 0, 0, 170))
            p.setPen(QPen(theme.WARN if self.held.get("B") is not None else theme.NODE_SELECTED, 1.5))
            p.drawText(tag, Qt.AlignLeft | Qt.AlignTop, text)
        elif compare:
            x = self.width() * self.wipe
            p.save()
            p.setClipRect(QRectF(x, 0, self.width() - x, self.height()))
            p.drawImage(self._target(b), b)
            self._dim_held(p, QRectF(x, 0, self.width() - x, self.height()))
            p.restore()
            p.setPen(QPen(theme.NODE_SELECTED, 1.5))
            p.drawLine(QPointF(x, 0), QPointF(x, self.height()))
            p.drawText(QRectF(x - 30, 4, 26, 16), Qt.AlignRight, "A")
            self._tag_b(p, QPointF(x + 4, 4))
        if self._picking() and self._mapping() is not None:
            self.picker.paint(p, self._mapping()[1])
        if self.tag:
            box = p.boundingRect(QRectF(self.rect()).adjusted(0, 6, -8, 0), Qt.AlignRight | Qt.AlignTop, self.tag)
            p.fillRect(box.adjusted(-4, -1, 4, 1), QColor(0, 0, 0, 190))
            p.setPen(theme.NODE_SELECTED)
            p.drawText(box, Qt.AlignRight | Qt.AlignTop, self.tag)
        if self.rate[0]:
            box = p.boundingRect(QRectF(self.rect()), Qt.AlignRight | Qt.AlignBottom, self.rate[0])
            box = box.adjusted(-6, -2, 0, 0).translated(-6, -6)
            p.fillRect(box, QColor(0, 0, 0, 170))
            p.setPen(theme.WARN if self.rate[1] else theme.TEXT_DIM)
            p.drawText(box, Qt.AlignCenter, self.rate[0])
        if self.loading:
            box = self.loading_box()
            p.setPen(theme.TEXT)
            p.fillRect(box, QColor(0, 0, 0, 170))
            p.drawText(box, Qt.AlignCenter | Qt.TextWordWrap, self.loading)
        if self.note:
            box = QRectF(self.rect()).adjusted(8, 8, -8, -8)
            flags = Qt.AlignLeft | Qt.AlignTop | Qt.TextWordWrap
            if self.alert:
                need = p.boundingRect(box.adjusted(8, 6, -8, -6), flags, self.note)
                p.fillRect(QRectF(box.x(), box.y(), box.width(), need.height() + 12), QColor(120, 30, 24, 215))
                p.setPen(QColor("#ffd9d3"))
                p.drawText(box.adjusted(8, 6, -8, -6), flags, self.note)
            else:
                # On a band of its own: over a picture (a re-rendered file, a cancelled view) grey text
                # was lost in the picture and crossed by the A/B line.
                need = p.boundingRect(box.adjusted(8, 4, -8, -4), flags, self.note)
                p.fillRect(QRectF(box.x(), box.y(), box.width(), need.height() + 8), QColor(0, 0, 0, 190))
                p.setPen(theme.TEXT)
                p.drawText(box.adjusted(8, 4, -8, -4), flags, self.note)

    def set_note(self, text: str, alert: bool = False) -> None:
        self.note, self.alert = text, alert
        self.update()

    def enterEvent(self, event):
        focused = QApplication.focusWidget()
        if not isinstance(focused, (QLineEdit, QPlainTextEdit, QTextEdit, QAbstractSpinBox)):
            self.setFocus(Qt.MouseFocusReason)      # hover gives the keys, unless the user is typing
        super().enterEvent(event)

    def zoom_by(self, factor: float) -> None:
        if self.images["A"] is None and self.images["B"] is None:
            return
        self.zoom = max(0.05, min(16.0, self.shown_zoom() * factor))
        self.update()
        self.zoomed.emit()

    def wheelEvent(self, event):
        self.zoom_by(1.0015 ** event.angleDelta().y())

    def mousePressEvent(self, event):
        self.setFocus(Qt.MouseFocusReason)
        mapping = self._mapping() if self._picking() else None
        obj = self.picker.obj if self.picker is not None else None
        if mapping is not None and self.picker.press(event.position(), event.button(), event.modifiers(),
                                                     mapping[0], mapping[1], mapping[2]):
            self._drag = ("pick",)
            if self.picker.obj != obj:
                self.objectPicked.emit()
            self.update()
            return
        if self.wipe is not None and self.mode == "wipe" and abs(event.position().x() - self.width() * self.wipe) < 8:
            self._drag = ("wipe",)
        else:
            self._drag = ("pan", event.position(), QPointF(self.offset))

    def mouseMoveEvent(self, event):
        if not self._drag:
            return
        if self._drag[0] == "pick":
            self.picker.move(event.position())
        elif self._drag[0] == "wipe":
            self.wipe = max(0.0, min(1.0, event.position().x() / max(1, self.width())))
        else:
            self.offset = self._drag[2] + (event.position() - self._drag[1])
        self.update()

    def mouseReleaseEvent(self, event):
        drag, self._drag = self._drag, None
        mapping = self._mapping()
        if drag == ("pick",) and self.picker is not None and mapping is not None:
            self.picker.release(event.position(), mapping[0], mapping[2])
            self.update()

    def mouseDoubleClickEvent(self, event):
        if self._picking():
            return              # two quick clicks are two picks, not a request to fit the picture
        self.zoom, self.offset = 0.0, QPointF(0, 0)
        self.update()
        self.zoomed.emit()


class RangeSlider(QSlider):
    """The scrub bar, with the span between the in and out points drawn along its groove."""

    def __init__(self, parent=None):
        super().__init__(Qt.Horizontal, parent)
        self.span: Optional[Tuple[int, int]] = None

    def paintEvent(self, event):
        super().paintEvent(event)
        if self.span is None or self.maximum() <= self.minimum():
            return
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        groove = self.style().subControlRect(QStyle.CC_Slider, opt, QStyle.SC_SliderGroove, self)
        handle = self.style().subControlRect(QStyle.CC_Slider, opt, QStyle.SC_SliderHandle, self)
        room = groove.width() - handle.width()

        def x(v):
            return groove.x() + handle.width() / 2 + QStyle.sliderPositionFromValue(
                self.minimum(), self.maximum(), v, room)
        p = QPainter(self)
        p.fillRect(QRectF(x(self.span[0]) - 1, self.height() - 4, x(self.span[1]) - x(self.span[0]) + 2, 3),
                   theme.NODE_SELECTED)


class ViewerPanel(QWidget):
    frameShown = Signal(str, int, QImage)      # slot, frame index, image
    fileDropped = Signal(str, str)             # path, slot: a render or footage dropped here to be looked at
    pickingEnded = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.sources: Dict[str, Optional[Source]] = {"A": None, "B": None}
        self.index = 0
        self.direction, self.speed = 1, 1        # J/K/L shuttle: backwards or forwards, 1x, 2x, 4x
        self._cache: "OrderedDict[Tuple[str, int, int], QImage]" = OrderedDict()
        self._waiting: Dict[str, int] = {}
        self.alpha = False                       # the transparency is shown instead of the colour (A)
        self.overlay = True                      # a mask with its picture is shown over it (M: the matte alone)
        self._pick_note = ""                     # why the node being picked for shows no mask yet
        self._queued_view: dict = {}             # slot -> what its view job computes once the job before it ends
        self._shown_index = 0                    # the frame of A's picture on screen
        self.in_point: Optional[int] = None      # loop range (I / O); None: the clip's first / last frame
        self.out_point: Optional[int] = None
        self._clock = QElapsedTimer()            # playback time, so frames keep the clip's rate
        self._clock_from = 0                     # the frame the clock started at
        self._shown_at: list = []                # when frames were shown while playing: the rate reached
        self.canvas = FrameCanvas()
        self.canvas.objectPicked.connect(self.show_picks)
        self.loader = FrameLoader()
        self._thread = QThread()
        self._thread.setObjectName("kinograph-viewer")
        self.loader.moveToThread(self._thread)
        self.loader.loaded.connect(self._loaded)
        self.loader.failed.connect(self._failed)
        self._thread.start()
        self.setAcceptDrops(True)
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self._build()

    def _button(self, text: str, tip: str, slot) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.setAccessibleName(tip.split(" (")[0])      # a screen reader read "⇤" and "◀|"
        b.clicked.connect(slot)
        return b

    def _build(self) -> None:
        self.labels = {s: QLabel(f"{s}: —") for s in "AB"}
        for label in self.labels.values():
            label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)     # long names clip, the panel stays narrow
            label.setWordWrap(True)     # B's differences from A and each one's size and rate were cut off
            label.setTextFormat(Qt.PlainText)   # a file's or a node's name as written ('shot <b>.mp4'), never HTML
        names = QHBoxLayout()
        names.addWidget(self.labels["A"], 1)
        names.addWidget(self.labels["B"], 1)
        top = QHBoxLayout()
        self.wipe_box = QCheckBox("A/B")
        self.wipe_box.setToolTip("Compare A with B (W): a wipe (A left of the line, B right; drag the line), "
                                 "side by side, or their difference")
        self.wipe_box.toggled.connect(self._toggle_wipe)
        top.addWidget(self.wipe_box)
        self.compare_box = QComboBox()
        for name, _ in COMPARE:
            self.compare_box.addItem(name)
        self.compare_box.setToolTip("How A and B are compared: wipe, side by side, or difference (black where "
                                    "they are the same)")
        self.compare_box.currentIndexChanged.connect(self._compare_changed)
        self.compare_box.setAccessibleName("A/B comparison")
        self.compare_box.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        top.addWidget(self.compare_box)
        self.swap_button = self._button("⇄", "Swap A and B", self.swap)
        top.addWidget(self.swap_button)
        self.zoom_box = QComboBox()
        for name, _ in ZOOMS:
            self.zoom_box.addItem(name)
        self.zoom_box.setToolTip("Zoom (wheel over the picture, + and -; F fits, 1 is 100%: one pixel of the "
                                 "picture on one of the screen; double-click fits)")
        self.zoom_box.currentIndexChanged.connect(self._zoom_changed)
        self.zoom_box.setAccessibleName("Viewer zoom")
        self.canvas.zoomed.connect(self._zoom_shown)
        top.addWidget(self.zoom_box)

        self.slider = RangeSlider()
        self.slider.setToolTip("Scrub")
        self.slider.setAccessibleName("Frame slider")
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
        self.frame_box.setToolTip("Frame: a plate read from a numbered sequence (shot.1001.exr) counts by its "
                                  "own numbers, as its files and Nuke do")
        self.frame_box.setAccessibleName("Frame number")
        self.frame_box.valueChanged.connect(lambda v: self.seek(v - self.first_number))
        bar.addWidget(self.frame_box)
        self.count_label = QLabel("/ 0")
        bar.addWidget(self.count_label)
        self.timecode_label = QLabel(timecode(0, 24))
        self.timecode_label.setObjectName("Timecode")
        self.timecode_label.setToolTip("Timecode of the shown frame (HH:MM:SS:FF): the source's own where the "
                                       "file states one, else counted from 00:00:00:00")
        bar.addWidget(self.timecode_label)
        self.range_label = QLabel("")
        self.range_label.setToolTip("The loop range: I sets the in point at the shown frame, O the out point; "
                                    "Alt+I / Alt+O clear them")
        self.loop_box = QCheckBox("loop")
        self.loop_box.setChecked(True)
        self.loop_box.setToolTip("Play round between the in and out points (I / O; the whole clip when unset)")
        top.insertWidget(0, self.loop_box)
        self.fps_box = QDoubleSpinBox()
        self.fps_box.setRange(0.1, 240)
        self.fps_box.setDecimals(3)
        self.fps_box.setSuffix(" fps")
        self.fps_box.setAccessibleName("Playback rate")
        self.fps_box.setValue(24.0)
        self.fps_box.valueChanged.connect(self._fps_changed)
        top.insertWidget(1, self.fps_box)
        bar.insertWidget(bar.count() - 3, self.range_label)
        top.insertStretch(2, 1)
        # Options the dock has no room to show: in a menu at the end of the row.
        more = QToolButton()
        more.setText("⋯")
        more.setToolTip("Playback options")
        more.setAccessibleName("Playback options")
        more.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(more)
        self.every_box = menu.addAction("Play every frame (slower when frames are slow to compute)")
        self.every_box.setCheckable(True)
        self.every_box.setToolTip("Off, playback keeps the clip's time and skips the frames not ready in time")
        self.every_box.toggled.connect(lambda on: self.play(self.direction, self.speed) if self.playing else None)
        menu.addAction("Clear in and out points (Alt+I, Alt+O)", lambda: (self.set_in(None), self.set_out(None)))
        self.alpha_action = menu.addAction("Show alpha (A)")
        self.alpha_action.setCheckable(True)
        self.alpha_action.toggled.connect(self.show_alpha)
        self.overlay_action = menu.addAction("Masks over their picture (M)")
        self.overlay_action.setCheckable(True)
        self.overlay_action.setChecked(True)
        self.overlay_action.setToolTip("Off, a mask is shown as its matte: white the region, black the rest")
        self.overlay_action.toggled.connect(self.show_overlay)
        more.setMenu(menu)
        top.addWidget(more)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(4)
        lay.addLayout(top)
        lay.addLayout(names)
        self.pick_bar = QWidget()
        pick_lay = QVBoxLayout(self.pick_bar)
        pick_lay.setContentsMargins(0, 0, 0, 0)
        pick_lay.setSpacing(2)
        self.pick_label = QLabel()
        self.pick_label.setWordWrap(True)
        self.pick_label.setTextFormat(Qt.RichText)
        self.pick_label.setObjectName("PickHint")
        pick_lay.addWidget(self.pick_label)
        pick_row = QHBoxLayout()
        pick_lay.addLayout(pick_row)
        self.object_box = QComboBox()
        self.object_box.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.object_box.setToolTip("The object the clicks are for ('|' groups of the text) and the frames it has "
                                   "prompts on; the others are drawn dimmed, a click on one of their points picks it")
        self.object_box.setAccessibleName("Object picked")
        self.object_box.activated.connect(self._choose_object)
        pick_row.addWidget(self.object_box)
        self.remove_object_button = self._button("Remove object", "Remove the object picked: its points and boxes "
                                                 "on every frame", self._remove_object)
        pick_row.addWidget(self.remove_object_button)
        pick_row.addStretch(1)
        pick_row.addWidget(self._button("Done", "End picking (Esc)", self.stop_picking))
        self.pick_bar.hide()
        lay.addWidget(self.pick_bar)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.slider)
        lay.addLayout(bar)
        self._update_range()
        self._label("B")

    # -- sources --------------------------------------------------------------------------------
    @property
    def master(self) -> Optional[Source]:
        """The source whose frames the slider counts (A, or B alone); the other follows by time."""
        return self.sources["A"] or self.sources["B"]

    @property
    def first_number(self) -> int:
        """The number frame 0 has in the sequence it was read from (1001), else 0: a compositor asked to
        look at 1042 found frame 41 of 0..99 in the box."""
        number = getattr(self.master.value, "number", None) if self.master is not None else None
        return number if isinstance(number, int) else 0

    @property
    def length(self) -> int:
        m = self.master
        return m.length if m is not None else 0

    def _label(self, slot: str) -> None:
        src = self.sources[slot]
        text = f"{slot}: {src.label}" if src else f"{slot}: —"
        described = f"  {src.describe()}" if src and src.describe() else ""
        differs = self._differs() if slot == "B" else ""
        self.labels[slot].setText(text + (f"  {differs}" if differs else described))
        self.labels[slot].setToolTip(plain_tip(text + described))
        if slot == "A" and self.sources["B"] is not None:
            self._label("B")
        if slot == "B":
            self.labels["B"].setVisible(src is not None)        # A's line gets the room until there is a B
            for w in (self.compare_box, self.swap_button):
                w.setVisible(src is not None)

    def _differs(self) -> str:
        """How B differs from A in size, rate and length, first on B's line: two takes of other sizes or
        rates were wiped and differenced (B fitted and timed to A) with only each one's description to
        tell, cut off past the dock's width, and a difference of sizes looked like a different picture."""
        a, b = self.sources["A"], self.sources["B"]
        if a is None or b is None or not (a.size and b.size and all(a.size) and all(b.size)):
            return ""
        out = [f"{b.size[0]}×{b.size[1]} vs {a.size[0]}×{a.size[1]}"] if a.size != b.size else []
        if a.length > 1 and b.length > 1:
            out += [f"{b.fps:g} vs {a.fps:g} fps"] if abs(a.fps - b.fps) > 1e-3 else []
            out += [f"{b.length} vs {a.length} frames"] if a.length != b.length else []
        if None not in (a.sound, b.sound) and a.sound != b.sound:
            out.append("has sound vs silent" if b.sound else "silent vs has sound")
        return f"≠ A: {', '.join(out)}" if out else ""

    def set_source(self, slot: str, value, label: str, backdrop=None) -> None:
        """Show `value` in `slot`; a mask with the `backdrop` it was made of is drawn over that picture."""
        src = Source(value, label, backdrop)
        src.overlay = self.overlay
        self._pick_note = ""
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
        self.stop_picking()
        self.sources = {"A": None, "B": None}
        self._cache.clear()
        self._waiting.clear()
        self.canvas.images = {"A": None, "B": None}
        self.canvas.loading = ""
        self.canvas.set_note("")
        for s in "AB":
            self._label(s)
        self.index = 0
        self.in_point = self.out_point = None
        self._update_range()

    # -- picking points on the frames ------------------------------------------------------------
    def start_picking(self, picker) -> None:
        """Clicks on A edit `picker`'s node's points and boxes (app.editor.picker) on the frame shown."""
        self.canvas.picker = picker
        self.wipe_box.setChecked(False)         # A alone: the picks are drawn and clicked on A
        self.pick_bar.show()
        self.pause()
        self.show_picks()

    def _choose_object(self, k: int) -> None:
        if self.canvas.picker is not None:
            self.canvas.picker.choose(k)
            self.show_picks()

    def _remove_object(self) -> None:
        if self.canvas.picker is not None:
            self.canvas.picker.remove_object()
            self.show_picks()

    def stop_picking(self) -> None:
        if self.canvas.picker is None:
            return
        self.canvas.picker = None
        self._pick_note = ""
        self.pick_bar.hide()
        self.canvas.update()
        self.pickingEnded.emit()

    def pick_note(self, text: str) -> None:
        """What keeps the picked node's mask from showing (no point yet, no model), under the picking hint."""
        self._pick_note = text
        self.show_picks()

    def show_picks(self) -> None:
        """The picks and the hint as they are now (the node's parameters changed, the frame moved)."""
        picker = self.canvas.picker
        if picker is None:
            return
        # Clicks go to the frame on screen: none while the frame stepped to is still being computed.
        picker.frame = self.index
        picker.enabled = self.canvas.images["A"] is not None and self._shown_index == self.index
        text = picker.hint() + ("" if picker.enabled else f". Frame {self.index} is being computed: clicks wait "
                                                          "until it is shown")
        self._list_objects(picker)
        note = self._pick_note
        note = f"<br><span style='color:#ffb4a8'>{html.escape(note, False)}</span>" if note else ""
        self.pick_label.setText(html.escape(text, False) + note)
        self.canvas.update()

    def _list_objects(self, picker) -> None:
        box = self.object_box
        box.blockSignals(True)
        box.clear()
        for k in range(picker.count() + 1):
            frames = picker.frames_of(k)
            swatch = QPixmap(12, 12)
            swatch.fill(object_colour(k))
            box.addItem(QIcon(swatch), f"Object {k + 1}" + (f" · frame{'s' * (len(frames) > 1)} "
                                                            f"{', '.join(map(str, frames))}" if frames else "")
                        if k < picker.count() else "New object")
        box.setCurrentIndex(picker.obj)
        box.blockSignals(False)
        self.remove_object_button.setEnabled(picker.obj < picker.count() and bool(picker.frames_of(picker.obj)))

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

    def computing(self, slot: str, what: str, behind: str = "") -> None:
        """A view job for `slot` is on its way; `behind`: the job it waits for (a render of minutes), said until
        it starts (`started`): 'computing' read as under way all that while."""
        self._queued_view = {slot: what} if behind else {}
        self.canvas.loading = f"waiting for {behind} to finish, then computing {what}…" if behind else \
            f"computing {what}…"
        self.canvas.update()

    def started(self, slot: str) -> None:
        """The view job for `slot` that waited has started."""
        what = self._queued_view.pop(slot, None)
        if what is not None and self.canvas.loading.startswith("waiting for"):
            self.computing(slot, what)

    def cancelled(self, slot: str, what: str) -> None:
        """The view job for `slot` was cancelled: what was on screen stays, and says it is not `what`."""
        self.canvas.loading = ""
        src = self.sources[slot]
        if src is not None:
            self.canvas.set_note(f"{slot}: computing {what} was cancelled; this is still {src.label} (V computes it)")
        else:
            self.canvas.set_note(f"{slot}: computing {what} was cancelled (V computes it)")

    def fail(self, slot: str, message: str, alert: bool = True) -> None:
        """The output could not be computed (or, not `alert`, is nothing this viewer draws): no old picture left to
        look like the answer."""
        self.canvas.images[slot] = None
        self.canvas.loading = ""
        self.sources[slot] = None
        self._label(slot)
        self.canvas.set_note(message, alert=alert)
        self._update_range()

    def swap(self) -> None:
        self.sources["A"], self.sources["B"] = self.sources["B"], self.sources["A"]
        self._cache.clear()
        for s in "AB":
            self._label(s)
        self.show_frame(self.index)

    def _update_range(self) -> None:
        n, first = self.length, self.first_number
        for w, lo in ((self.slider, 0), (self.frame_box, first)):
            w.blockSignals(True)
            w.setRange(lo, lo + max(0, n - 1))
            w.blockSignals(False)
        self.count_label.setText(f"/ {first + max(0, n - 1)}")
        self.timecode_label.setText(self.master.timecode_of(self.index) if self.master else timecode(0, 24))
        # A render that replaced the clip with a shorter one: the range stays inside it.
        if self.out_point is not None and self.out_point > n - 1:
            self.out_point = None
        if self.in_point is not None and self.in_point > (self.out_point if self.out_point is not None else n - 1):
            self.in_point = None
        self._show_range()

    # -- in and out points ----------------------------------------------------------------------
    def span(self) -> Tuple[int, int]:
        """The frames playback loops over: in point to out point, else the whole clip."""
        last = max(0, self.length - 1)
        lo = self.in_point if self.in_point is not None else 0
        hi = self.out_point if self.out_point is not None else last
        return min(lo, last), min(hi, last)

    def set_in(self, frame: Optional[int]) -> None:
        """The loop starts here (None: at the first frame); an out point before it goes."""
        self.in_point = frame
        if frame is not None and self.out_point is not None and self.out_point < frame:
            self.out_point = None
        self._show_range()

    def set_out(self, frame: Optional[int]) -> None:
        self.out_point = frame
        if frame is not None and self.in_point is not None and self.in_point > frame:
            self.in_point = None
        self._show_range()

    def _show_range(self) -> None:
        marked = self.in_point is not None or self.out_point is not None
        lo, hi = self.span()
        self.slider.span = (lo, hi) if marked and self.length > 1 else None
        first = self.first_number
        self.range_label.setText(f"in {first + lo}–{first + hi}" if self.slider.span else "")
        self.slider.update()
        if self.playing:
            self._restart_clock()

    # -- frames ---------------------------------------------------------------------------------
    def _counters(self, i: int) -> None:
        for w, v in ((self.slider, i), (self.frame_box, self.first_number + i)):
            w.blockSignals(True)
            w.setValue(v)
            w.blockSignals(False)
        if self.master is not None:
            self.timecode_label.setText(self.master.timecode_of(i))

    def show_frame(self, i: int) -> None:
        self.index = i
        self.show_picks()
        master = self.master
        if not self.playing or self.every_box.isChecked():
            # Playing, the counters say which frame is on screen (_show), not one still being decoded.
            self._counters(i)
        for slot, src in self.sources.items():
            if src is None or src.length == 0:
                self.canvas.images[slot] = None
                self.canvas.held[slot] = None
                continue
            # Aligned by time, not frame number: B at 48 fps beside A at 24 shows frame 2i.
            j = i if src is master else round(i / master.fps * src.fps)
            self.canvas.held[slot] = src.length - 1 if j > src.length - 1 and src.length > 1 else None
            j = max(0, min(j, src.length - 1))
            key = (slot, id(src), j, self.alpha)
            if key in self._cache:
                self._cache.move_to_end(key)
                self._show(slot, j, self._cache[key])
            else:
                self._waiting[slot] = j
                if not (self.playing and self.canvas.images[slot] is not None):
                    # (Playing, the picture on screen stays until the next one is there: a 'computing'
                    # box flashed over the clip at every frame.)
                    self.canvas.loading = f"computing frame {j}…"
                self.loader.request(slot, src, j, self.alpha)
        self.canvas.update()

    def _show(self, slot: str, j: int, img: QImage, final: bool = True) -> None:
        self.canvas.images[slot] = img
        if slot == "A":
            self._shown_index = j
            self.show_picks()
        if final:
            self._waiting.pop(slot, None)
        if not self._waiting:
            self.canvas.loading = ""
        if self.playing and self.sources.get(slot) is self.master:
            self._counters(j)
            self._shown_at.append(self._clock.elapsed())
        self.canvas.update()
        self.frameShown.emit(slot, j, img)

    def _loaded(self, slot: str, rendered, j: int, img: QImage, alpha: bool = False) -> None:
        src = self.sources.get(slot)
        if src is None or rendered is not src:
            # A frame of what the slot showed before (an edit's result replaced it while the frame was
            # computed) was taken for the new picture's, and the new one's then dropped: the picture from
            # before the edit stayed on screen.
            return
        self._cache[(slot, id(src), j, alpha)] = img
        if alpha != self.alpha:
            return              # asked for before the channel shown changed
        self._trim_cache()
        if self._waiting.get(slot) == j:
            self._show(slot, j, img)
        elif slot in self._waiting and self.playing and not self.every_box.isChecked():
            # The playhead moved on while this frame was decoded: shown all the same (it is the newest
            # there is), while the one the playhead is at now is computed. Waiting only for the exact
            # frame showed nothing at all once a frame took longer than its time on screen (4K).
            self._show(slot, j, img, final=False)

    def _trim_cache(self) -> None:
        total = sum(im.sizeInBytes() for im in self._cache.values())
        while self._cache and (len(self._cache) > FRAME_CACHE or total > FRAME_CACHE_BYTES):
            total -= self._cache.popitem(last=False)[1].sizeInBytes()

    def _failed(self, slot: str, rendered, message: str) -> None:
        if rendered is not self.sources.get(slot):
            return
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

    def rate(self) -> float:
        """Frames a second to play at: the clip's own rate, exactly (the box shows 23.976 of 24000/1001)."""
        m = self.master
        box = self.fps_box.value()
        return m.fps if m is not None and m.length and abs(box - m.fps) < 6e-4 else box

    def _interval(self) -> int:
        return max(1, round(1000 / (self.rate() * self.speed)))

    def _restart_clock(self) -> None:
        self._clock.start()
        self._clock_from = self.index
        self._shown_at = []

    def _fps_changed(self, _v: float) -> None:
        if self.playing:
            self.play(self.direction, self.speed)

    def play(self, direction: int = 1, speed: int = 1) -> None:
        self.direction, self.speed = direction, speed
        if self.length > 1:
            lo, hi = self.span()
            if not lo <= self.index <= hi:
                self.show_frame(lo if direction > 0 else hi)        # the loop is elsewhere: start it
            # Keeping time, the timer looks at the clock several times a frame; every frame, once a frame.
            every = self.every_box.isChecked()
            self.timer.start(self._interval() if every else max(1, min(10, self._interval() // 4)))
            self._restart_clock()
            self.play_button.setText(PAUSE)

    def shuttle(self, direction: int) -> None:
        """J / L as in editing software: play that way; pressed again, twice as fast (up to 4x)."""
        same = self.playing and self.direction == direction
        self.play(direction, min(4, self.speed * 2) if same else 1)

    def pause(self) -> None:
        was = self.playing
        self.timer.stop()
        self.speed = 1
        self.play_button.setText(PLAY)
        self.canvas.rate = ("", False)
        self.canvas.update()
        if was:
            self._counters(self.index)      # the frame the playhead stopped at, which is the one shown next
            self.show_frame(self.index)

    def achieved_rate(self) -> Optional[float]:
        """Frames shown a second over the last two seconds of playing (None until there are enough)."""
        now = self._clock.elapsed()
        recent = [t for t in self._shown_at if now - t <= 2000]
        self._shown_at = recent
        if len(recent) < 3 or now < 1000:
            return None
        return (len(recent) - 1) * 1000.0 / max(1, recent[-1] - recent[0])

    def _tick(self) -> None:
        lo, hi = self.span()
        if self.every_box.isChecked():
            if self._waiting:
                return          # the current frame is still being computed: wait, never skip
            nxt = self.index + self.direction
        else:
            # Where the clock says the playhead is: a frame that took too long to compute is skipped.
            nxt = self._clock_from + self.direction * int(self._clock.elapsed() * self.rate() * self.speed / 1000)
        if not lo <= nxt <= hi:
            if not self.loop_box.isChecked():
                self.pause()
                self.show_frame(hi if self.direction > 0 else lo)
                return
            nxt = lo + (nxt - lo) % (hi - lo + 1)
        if nxt != self.index:
            self.show_frame(nxt)
        got = self.achieved_rate()
        want = self.rate() * self.speed
        if got is not None:
            slow = got < want * 0.95
            # Drawn on the picture, as Nuke and RV do: the dock's bars have no room left.
            self.canvas.rate = (f"{got:.1f} of {want:g} fps" + (" · frames skipped" if slow and not self.every_box.isChecked()
                                                                else " · slowed down" if slow else ""), slow)

    def show_overlay(self, on: bool) -> None:
        """A mask over the picture it was made of (tinted red), or its matte alone."""
        if on == self.overlay:
            return
        self.overlay = on
        self.overlay_action.setChecked(on)
        for slot, src in self.sources.items():
            if src is not None:
                src.overlay = on
                self._label(slot)
        self._cache.clear()
        self.show_frame(self.index)

    def show_alpha(self, on: bool) -> None:
        """The transparency of what is shown (white opaque, black transparent) instead of its colour."""
        if on == self.alpha:
            return
        self.alpha = on
        self.alpha_action.setChecked(on)
        self.canvas.tag = "alpha" if on else ""
        self.show_frame(self.index)

    def _toggle_wipe(self, on: bool) -> None:
        self.canvas.wipe = 0.5 if on else None
        self.canvas.update()

    def _compare_changed(self, i: int) -> None:
        self.canvas.mode = COMPARE[i][1]
        if not self.wipe_box.isChecked():
            self.wipe_box.setChecked(True)      # picking a way to compare is asking to compare
        self.canvas.update()

    def set_zoom(self, zoom: float) -> None:
        """0 fits; 1 is 100% (a picture pixel on a screen pixel)."""
        self.canvas.zoom = zoom
        self.canvas.offset = QPointF(0, 0)
        self.canvas.update()
        self._zoom_shown()

    def _zoom_changed(self, i: int) -> None:
        if i < len(ZOOMS):
            self.set_zoom(ZOOMS[i][1])

    def _zoom_shown(self) -> None:
        """The zoom box says the zoom on screen: it stayed 'Fit' over a picture wheeled to 300%."""
        z = self.canvas.zoom
        i = next((k for k, (_, v) in enumerate(ZOOMS) if abs(v - z) < 1e-6), None)
        self.zoom_box.blockSignals(True)
        while self.zoom_box.count() > len(ZOOMS):
            self.zoom_box.removeItem(len(ZOOMS))
        if i is None:
            self.zoom_box.addItem(f"{z * 100:.0f}%")
            i = len(ZOOMS)
        self.zoom_box.setCurrentIndex(i)
        self.zoom_box.blockSignals(False)

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
        elif k in (Qt.Key_I, Qt.Key_O):
            # As in Nuke and RV: I / O mark the loop at the shown frame, Alt clears the mark.
            at = None if event.modifiers() & Qt.AltModifier else self.index
            (self.set_in if k == Qt.Key_I else self.set_out)(at)
        elif k == Qt.Key_F:
            self.set_zoom(0.0)
        elif k == Qt.Key_1:
            self.set_zoom(1.0)
        elif k in (Qt.Key_Plus, Qt.Key_Equal):
            self.canvas.zoom_by(2.0)
        elif k == Qt.Key_Minus:
            self.canvas.zoom_by(0.5)
        elif k == Qt.Key_A:
            self.show_alpha(not self.alpha)
        elif k == Qt.Key_M:
            self.show_overlay(not self.overlay)
        elif k == Qt.Key_Escape and self.canvas.picker is not None:
            self.stop_picking()
        elif k == Qt.Key_W and self.sources["B"] is not None:
            self.wipe_box.toggle()
        else:
            super().keyPressEvent(event)

    # -- files dropped to be looked at ----------------------------------------------------------
    @staticmethod
    def _media(mime) -> list:
        from graph_engine.workflow import MEDIA_SUFFIXES
        from .view import SOUND_SUFFIXES, STILL_SUFFIXES, frames_folder
        from pathlib import Path
        return [u.toLocalFile().rstrip("/") or "/" for u in mime.urls() if u.isLocalFile() and (
            Path(u.toLocalFile()).suffix.lower() in MEDIA_SUFFIXES | STILL_SUFFIXES | SOUND_SUFFIXES
            and not Path(u.toLocalFile()).is_dir() or frames_folder(u.toLocalFile()))]

    def dragEnterEvent(self, event):
        # judged once per drag, as on the canvas: a frames folder is listed to tell, and moves come at every pixel
        self._drag_ok = bool(self._media(event.mimeData()))
        if self._drag_ok:
            event.acceptProposedAction()

    def dragMoveEvent(self, event):
        if getattr(self, "_drag_ok", False):
            event.acceptProposedAction()

    def dropEvent(self, event):
        """As onto a flipbook: a render or a clip dropped here is shown (Shift: as B; two at once: A and B
        to compare). Dropped on the viewer it did nothing; on the canvas it becomes a loader node."""
        paths = self._media(event.mimeData())
        if not paths:
            return
        event.acceptProposedAction()
        if len(paths) >= 2:
            self.fileDropped.emit(paths[0], "A")
            self.fileDropped.emit(paths[1], "B")
        else:
            self.fileDropped.emit(paths[0], "B" if event.modifiers() & Qt.ShiftModifier else "A")

    def shutdown(self) -> None:
        self.pause()
        self._thread.quit()
        self._thread.wait(5000)
