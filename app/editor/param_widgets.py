"""Editors generated from parameter declarations: ranged numbers get a slider and a spin box,
choices a combo box, `text` a multi-line box, `path` a file dialog, `color` a colour picker,
`seed` a mode (fixed / increment / random per run), `schedule` a curve editor, `points`,
`negative_points` and `box` a button that picks them on the first frame in the viewer.

Each editor shows a value with `set_value` (no signal back) and reports edits through
`commit(value, gesture)`; a slider or curve drag passes one gesture token for the whole drag."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QEvent, QLocale, QObject, Qt, Signal
from PySide6.QtGui import QColor, QKeySequence, QValidator
from PySide6.QtWidgets import (QAbstractScrollArea, QAbstractSlider, QAbstractSpinBox, QApplication, QCheckBox,
                               QColorDialog, QComboBox, QDoubleSpinBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QSlider, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from graph_engine.schedule import EASINGS, ScheduleError, parse_schedule
from graph_engine.validate import check_param

from .clipboard import holds_nodes
from .curve_editor import CurveEditor
from .geometry import PLACES, decimals, places, slider_range, value_step, zero_meaning
from .help_text import help_tip

Commit = Callable[..., None]
INT_LIMIT = 2 ** 31 - 1
SLIDER_STEPS = 1000


class ParamEditor(QWidget):
    def __init__(self, p, commit: Commit):
        super().__init__()
        self.p, self.commit = p, commit
        self.lay = QHBoxLayout(self)
        self.lay.setContentsMargins(0, 0, 0, 0)
        self.lay.setSpacing(4)

    def set_value(self, v) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Commit what was typed but not yet applied (a run is about to start)."""

    def pending(self) -> bool:
        """True while the field holds typing not yet applied (Ctrl+Z then undoes that typing)."""
        return False

    def typed(self):
        """The text typed but not yet applied, for the autosave (None: nothing, or not text)."""
        return None


class IntBox(QAbstractSpinBox):
    """A spin box for whole numbers of any size. QSpinBox holds 32 bits, and a seed does not:
    ComfyUI's reach 2^50 and more (878361741413693 in its Wan example), which QSpinBox could
    neither show nor take."""
    valueChanged = Signal(object)

    def __init__(self):
        super().__init__()
        self._lo: Optional[int] = None
        self._hi: Optional[int] = None
        self._value = 0
        self.lineEdit().setText("0")
        self.editingFinished.connect(self.interpretText)

    def setRange(self, lo: Optional[int], hi: Optional[int]) -> None:
        self._lo, self._hi = lo, hi

    def _clamp(self, v: int) -> int:
        if self._lo is not None:
            v = max(self._lo, v)
        return min(self._hi, v) if self._hi is not None else v

    def value(self) -> int:
        return self._value

    def setValue(self, v) -> None:
        v = self._clamp(int(v))
        changed, self._value = v != self._value, v
        if self.lineEdit().text() != str(v):
            self.lineEdit().setText(str(v))
        if changed:
            self.valueChanged.emit(v)

    def interpretText(self) -> None:
        try:
            self.setValue(int(self.lineEdit().text().strip()))
        except ValueError:
            self.lineEdit().setText(str(self._value))      # half-typed ("-", ""): back to the value

    def stepBy(self, steps: int) -> None:
        self.setValue(self._value + steps)

    def stepEnabled(self):
        up = self._hi is None or self._value < self._hi
        down = self._lo is None or self._value > self._lo
        return ((QAbstractSpinBox.StepUpEnabled if up else QAbstractSpinBox.StepNone) |
                (QAbstractSpinBox.StepDownEnabled if down else QAbstractSpinBox.StepNone))

    def validate(self, text: str, pos: int):
        t = text.strip()
        if re.fullmatch(r"-?\d+", t):
            return QValidator.Acceptable, text, pos
        return (QValidator.Intermediate if t in ("", "-") else QValidator.Invalid), text, pos


class DecimalBox(QDoubleSpinBox):
    """A decimal number written with a point, whatever the desktop's language, as on the node and
    in the file; a decimal comma typed (a German keypad's decimal key) is read as the point. It was
    refused key by key: '2,5' became 2 without a word. It shows the decimals the parameter's step needs,
    more where the value holds more (Nuke's way), and keeps PLACES of what is typed."""

    def __init__(self, p=None):
        super().__init__()
        self.p = p
        self.setLocale(QLocale.c())
        self.setDecimals(PLACES)

    def textFromValue(self, v: float) -> str:
        return f"{v:.{decimals(self.p, v) if self.p is not None else places(v)}f}"

    def validate(self, text: str, pos: int):
        return super().validate(text.replace(",", "."), pos)

    def valueFromText(self, text: str) -> float:
        return super().valueFromText(text.replace(",", "."))


class NumberEditor(ParamEditor):
    wide = False            # whole numbers beyond 32 bits (an IntBox)

    def __init__(self, p, commit):
        super().__init__(p, commit)
        is_int = p.type == "int"
        self.spin = IntBox() if is_int and self.wide else QSpinBox() if is_int else DecimalBox(p)
        lo = p.min if p.min is not None else -INT_LIMIT
        hi = p.max if p.max is not None else INT_LIMIT
        if is_int and self.wide:
            self.spin.setRange(None if p.min is None else int(p.min), None if p.max is None else int(p.max))
        elif is_int:
            self.spin.setRange(int(max(lo, -INT_LIMIT)), int(min(hi, INT_LIMIT)))
        else:
            self.spin.setRange(float(lo), float(hi))
            self.spin.setSingleStep(value_step(p))
        self.spin.setKeyboardTracking(False)
        self._typed = False
        self.spin.lineEdit().textEdited.connect(lambda _t: setattr(self, "_typed", True))
        self._declared = (self.spin.minimum(), self.spin.maximum()) if not isinstance(self.spin, IntBox) else None
        self._special = zero_meaning(p) if zero_meaning(p) and p.min == 0 else ""
        self.spin.setSpecialValueText(self._special)      # shown at 0, as on the node
        self.spin.valueChanged.connect(lambda v: self._changed(v, None))
        self.slider = None
        self._gesture = None
        if slider_range(p):
            self.slider = QSlider(Qt.Horizontal)
            self.slider.setRange(0, SLIDER_STEPS if not is_int or p.max - p.min > SLIDER_STEPS else int(p.max - p.min))
            self.slider.sliderPressed.connect(self._press)
            self.slider.sliderReleased.connect(self._release)
            self.slider.valueChanged.connect(self._slid)
            self.lay.addWidget(self.slider, 3)
        self.lay.addWidget(self.spin, 2)

    def _to_slider(self, v) -> int:
        return round((v - self.p.min) / (self.p.max - self.p.min) * self.slider.maximum())

    def _from_slider(self, s: int):
        v = self.p.min + s / self.slider.maximum() * (self.p.max - self.p.min)
        return int(round(v)) if self.p.type == "int" else round(v, 4)

    def _press(self):
        self._gesture = ("slider", id(self), object())

    def _release(self):
        self._gesture = None

    def _slid(self, s: int):
        v = self._from_slider(s)
        self.spin.blockSignals(True)
        self.spin.setValue(v)
        self.spin.blockSignals(False)
        self.commit(v, self._gesture)

    def pending(self) -> bool:
        return self._typed

    def _changed(self, v, gesture):
        self._typed = False
        if self.slider is not None:
            self.slider.blockSignals(True)
            self.slider.setValue(self._to_slider(v))
            self.slider.blockSignals(False)
        self.commit(int(v) if self.p.type == "int" else float(v), gesture)

    def flush(self) -> None:
        self.spin.interpretText()       # emits valueChanged when the typed number differs

    def set_value(self, v) -> None:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return
        self._typed = False
        if self._declared is not None:
            # A value outside the declared range (read from a file) is shown as it is, not clamped
            # to the end (exposure 9.5 read '6.0000', width -3 read 'auto' while the node showed
            # them and the run refused them): the range widens to take it, until it is back inside.
            lo, hi = self._declared
            if isinstance(self.spin, QSpinBox):
                v = max(-INT_LIMIT, min(INT_LIMIT, int(v)))
            outside = not lo <= v <= hi
            self.spin.setRange(min(lo, v), max(hi, v))
            self.spin.setSpecialValueText("" if outside else self._special)
            self.spin.setToolTip(f"{v:g} is outside {lo:g}..{hi:g}: the run refuses it" if outside else help_tip(self.p.help))
        for w, val in ((self.spin, v), (self.slider, self._to_slider(v) if self.slider else None)):
            if w is not None:
                w.blockSignals(True)
                w.setValue(val)
                w.blockSignals(False)


class ChoiceEditor(ParamEditor):
    def __init__(self, p, commit):
        super().__init__(p, commit)
        self.box = QComboBox()
        for c in p.choices:
            self.box.addItem(str(c), c)
        self.box.currentIndexChanged.connect(self._chosen)
        self.lay.addWidget(self.box)

    def _chosen(self, i: int) -> None:
        if i < len(self.p.choices):
            self.commit(self.box.itemData(i), None)

    def set_value(self, v) -> None:
        # A value that is not a choice (a newer sampler's name, a file from another version) is
        # shown as it is, last and marked, instead of as the first choice: the field said 'euler'
        # while the workflow held, and the run refused, another name.
        self.box.blockSignals(True)
        while self.box.count() > len(self.p.choices):
            self.box.removeItem(self.box.count() - 1)
        i = self.box.findData(v) if v is not None else -1
        if i < 0:
            self.box.addItem(f"{v} (not a choice here)", v)
            i = self.box.count() - 1
        self.box.setCurrentIndex(i)
        self.box.blockSignals(False)


class BoolEditor(ParamEditor):
    def __init__(self, p, commit):
        super().__init__(p, commit)
        self.box = QCheckBox()
        self.box.toggled.connect(lambda on: self.commit(bool(on), None))
        self.lay.addWidget(self.box)
        self.lay.addStretch(1)

    def set_value(self, v) -> None:
        self.box.blockSignals(True)
        self.box.setChecked(bool(v))
        self.box.blockSignals(False)


class LineEditor(ParamEditor):
    def __init__(self, p, commit):
        super().__init__(p, commit)
        self.edit = QLineEdit()
        self.edit.editingFinished.connect(self.flush)
        self.lay.addWidget(self.edit)

    def flush(self) -> None:
        if self.edit.isModified():
            self.edit.setModified(False)
            self.commit(self.edit.text(), None)

    def pending(self) -> bool:
        return self.edit.isModified()

    def typed(self):
        return self.edit.text() if self.pending() else None

    def set_value(self, v) -> None:
        if self.edit.text() != ("" if v is None else str(v)):
            self.edit.setText("" if v is None else str(v))


class PlainTextField(QPlainTextEdit):
    def __init__(self, on_done):
        super().__init__()
        self.on_done = on_done

    def focusOutEvent(self, event):
        super().focusOutEvent(event)
        self.on_done()

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key_Return, Qt.Key_Enter) and event.modifiers() & Qt.ControlModifier:
            self.on_done()
            return
        super().keyPressEvent(event)


class TextEditor(ParamEditor):
    """Multi-line text (prompts); committed when focus leaves or on Ctrl+Enter. `json` params are
    checked before they are committed."""

    def __init__(self, p, commit):
        super().__init__(p, commit)
        self.edit = PlainTextField(self._done)
        # Tab goes on to the next field, as everywhere in the panel: it typed a tab character
        # into the prompt, and a keyboard user could not leave the box.
        self.edit.setTabChangesFocus(True)
        self.edit.setPlaceholderText("Ctrl+Enter to apply")
        self.edit.setFixedHeight(90)
        self.error = QLabel()
        self.error.setObjectName("FieldError")
        self.error.setWordWrap(True)
        self.error.hide()
        box = QVBoxLayout()
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.edit)
        box.addWidget(self.error)
        self.lay.addLayout(box)
        self._applied = ""

    def _done(self):
        text = self.edit.toPlainText()
        # What is typed is what runs, JSON or not: a text that is not JSON was kept out of the
        # workflow with the reason in a tooltip, and the run used the previous text without a word.
        # Now it is applied, the reason shows under the box, and the run refuses it by name.
        self._check(text)
        self._applied = text
        self.commit(text, None)

    def _check(self, text: str) -> None:
        if self.p.kind != "json":
            return
        try:
            json.loads(text or "null")
        except ValueError as e:
            self.error.setText(f"not valid JSON: {e}")
            self.error.show()
            return
        self.error.hide()

    def flush(self) -> None:
        self._done()

    def pending(self) -> bool:
        return self.edit.toPlainText() != self._applied

    def typed(self):
        return self.edit.toPlainText() if self.pending() else None

    def set_value(self, v) -> None:
        text = "" if v is None else str(v)
        self._applied = text
        if self.edit.toPlainText() != text:
            self.edit.setPlainText(text)
        self._check(text)


def clean_path(text: str) -> str:
    """A path as pasted or dropped into a field: without the blanks around it, the quotes a file
    manager's 'Copy as path' puts round it, or the file:// of a dropped file. Kept, the first two
    read 'not found' for a file that is there, with nothing on screen to show why."""
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        t = t[1:-1].strip()
    if t.startswith("file://"):
        from PySide6.QtCore import QUrl
        t = QUrl(t).toLocalFile() or t
    return t


class PathEditor(LineEditor):
    def __init__(self, p, commit, base_dir=None):
        super().__init__(p, commit)
        self.base_dir = base_dir
        b = QToolButton()
        b.setText("…")
        b.setToolTip("Choose a file")
        b.clicked.connect(self._browse)
        self.lay.addWidget(b)

    def flush(self) -> None:
        if self.edit.isModified():
            self.edit.setModified(False)
            path = clean_path(self.edit.text())
            if path != self.edit.text():
                self.edit.setText(path)
            self.commit(path, None)

    def _browse(self):
        # An untitled workflow's folder is the output folder, which a first run has not made yet:
        # the dialog then opened wherever the editor was started; the home folder is a known place.
        base = self.base_dir() if self.base_dir else None
        start = self._model_folder() or str(base if base is not None and Path(base).is_dir() else Path.home())
        if self.p.reads:
            path, _ = QFileDialog.getOpenFileName(self, f"Choose {self.p.name}", start)
        else:
            path, _ = QFileDialog.getSaveFileName(self, f"Write {self.p.name} to", start)
        if path:
            path = self._as_model_name(path)
            self.edit.setText(path)
            self.edit.setModified(False)
            self.commit(path, None)


    def _located(self, name: str) -> Optional[Path]:
        try:
            found = self.p.locate(name) if name and self.p.locate is not None else None
        except Exception:       # a name that cannot be looked up (a bad character) is not there
            return None
        return Path(found) if found else None

    def _model_folder(self) -> Optional[str]:
        """Where a model name's dialog opens: the folder of the file the name finds, else the first model folder
        of its kind there is (models/diffusion_models), where the loader looks, not the home folder."""
        name = clean_path(self.edit.text())
        found = self._located(name)
        if found is not None:
            return str(found.parent)
        searched = getattr(self.p.locate, "searched", None)
        try:
            return next((str(d) for d in (searched(name) if searched else ()) if d.is_dir()), None)
        except ValueError:      # a name of no kind the loader knows
            return None

    def _as_model_name(self, path: str) -> str:
        """A file picked inside a model folder kept as the name the loader finds it by (wan/x.safetensors), as
        ComfyUI's model list shows it, not as a full path no other machine has; any other file as picked."""
        every = getattr(self.p.locate, "every", None)
        picked = Path(path).resolve()
        for d in every() if every else ():
            try:
                name = picked.relative_to(d.resolve()).as_posix()
            except ValueError:
                continue
            found = self._located(name)
            if found is not None and found.resolve() == picked:
                return name
        return path


class ColorEditor(LineEditor):
    def __init__(self, p, commit):
        super().__init__(p, commit)
        self.swatch = QToolButton()
        self.swatch.setToolTip("Pick a colour")
        self.swatch.setFixedWidth(28)
        self.swatch.clicked.connect(self._pick)
        self.error = QLabel()
        self.error.setObjectName("FieldError")
        self.error.setWordWrap(True)
        self.error.hide()
        # The field and its swatch on one row, what is wrong with the value under them.
        self.lay.removeWidget(self.edit)
        row = QHBoxLayout()
        row.setSpacing(4)
        row.addWidget(self.swatch)
        row.addWidget(self.edit)
        box = QVBoxLayout()
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(row)
        box.addWidget(self.error)
        self.lay.addLayout(box)

    def _pick(self):
        c = QColorDialog.getColor(QColor(self._hex(self.edit.text()) or "#ffffff"), self, f"Choose {self.p.name}")
        if c.isValid():
            self.set_value(c.name())
            self.commit(c.name(), None)

    def flush(self) -> None:
        super().flush()
        self._check(self.edit.text())

    def set_value(self, v) -> None:
        super().set_value(v)
        self._check("" if v is None else str(v))

    def _hex(self, text: str) -> str:
        """`text` as #rrggbb when the node takes it, else ''."""
        from graph_engine.validate import check_param
        return "" if check_param(self.p, text) else "#" + text.strip().lstrip("#")

    def _check(self, text: str) -> None:
        """The swatch shows the colour the node will use, and a value it would refuse says so under
        the field: 'red' was drawn red and refused only when the run reached the node; 'ff0000',
        which it takes, was drawn black."""
        from graph_engine.validate import check_param
        why = check_param(self.p, text)
        self.swatch.setStyleSheet(f"background: {self._hex(text)};" if not why else "background: #000;")
        self.error.setText(f"{self.p.name} {why}" if why else "")
        self.error.setVisible(bool(why))


class PickEditor(LineEditor):
    """Positions in the node's picture (kinds points, negative_points, box): typed, or picked on its first frame in
    the viewer with the mouse (app.editor.picker)."""

    def __init__(self, p, commit, pick: Optional[Callable[[], None]] = None):
        super().__init__(p, commit)
        self.edit.setPlaceholderText("x0,y0,x1,y1" if p.kind == "box" else "x,y; x,y")
        if pick is not None:
            b = QToolButton()
            b.setText("Pick…")
            b.setToolTip("Click them on the first frame in the viewer: left click on the object, right click off it, "
                         "drag a box")
            b.clicked.connect(pick)
            self.pick_button = b
            self.lay.addWidget(b)


class SeedEditor(NumberEditor):
    """A seed with what happens to it at each run: kept, +1, or drawn at random."""
    wide = True

    def __init__(self, p, commit, mode: str = "fixed", set_mode: Optional[Callable[[str], None]] = None):
        super().__init__(p, commit)
        dice = QToolButton()
        dice.setText("↻")
        dice.setToolTip("A new random seed now")
        lo = int(p.min) if p.min is not None else 0
        hi = int(p.max) if p.max is not None else INT_LIMIT
        dice.clicked.connect(lambda: self.commit(random.randint(lo, hi), None))
        self.mode = QComboBox()
        self.mode.addItems(["fixed", "increment", "random"])
        self.mode.setToolTip("What the seed does at each run")
        self.mode.setCurrentText(mode)
        if set_mode is not None:
            self.mode.currentTextChanged.connect(set_mode)
        self.lay.addWidget(dice)
        self.lay.addWidget(self.mode)


class ScheduleEditor(QWidget):
    """The schedule's text (with the position of a mistake), its interpolation, and its curve."""

    def __init__(self, p, commit, frames: Optional[Callable[[], int]] = None):
        super().__init__()
        self.p, self.commit, self.frames = p, commit, frames
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        row = QHBoxLayout()
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("1.0  or  0:(1.0), 24:(1.5)  or  1 + 0.1*sin(t/8)")
        self.edit.editingFinished.connect(self._typed)
        self.interp = QComboBox()
        self.interp.addItems(EASINGS)
        self.interp.setToolTip("Interpolation between keyframes without their own easing")
        self.interp.currentTextChanged.connect(self._interp)
        row.addWidget(self.edit, 1)
        row.addWidget(self.interp)
        self.error = QLabel()
        self.error.setObjectName("FieldError")
        self.error.setWordWrap(True)
        self.error.hide()
        self.curve = CurveEditor(bounds=(p.min, p.max))
        self.curve.edited.connect(lambda text, gesture: self.commit(text, gesture))
        lay.addLayout(row)
        lay.addWidget(self.error)
        lay.addWidget(self.curve)

    def flush(self) -> None:
        if self.edit.isModified():
            self._typed()

    def pending(self) -> bool:
        return self.edit.isModified()

    def _typed(self):
        self.edit.setModified(False)
        text = self.edit.text().strip()
        try:
            parse_schedule(text)
        except (ScheduleError, ValueError) as e:
            self.error.setText(str(e))
            self.error.show()
            return
        self.error.hide()
        try:
            value = float(text)
        except ValueError:
            value = text
        self.commit(value, None)

    def _interp(self, mode: str):
        try:
            sched = parse_schedule(self.edit.text().strip() or "0")
        except (ScheduleError, ValueError):
            return
        if sched.interp != mode and len(sched.keyframes) > 1:
            self.commit(sched.with_keyframes(sched.keyframes, mode).to_text(), None)

    def set_value(self, v) -> None:
        text = "" if v is None else (str(v) if not isinstance(v, float) else f"{v:g}")
        if self.edit.text() != text:
            self.edit.setText(text)
        try:
            sched = parse_schedule(v)
            self.interp.blockSignals(True)
            self.interp.setCurrentText(sched.interp)
            self.interp.blockSignals(False)
            # A keyframe past the parameter's min or max, as the run would refuse it (typed, or read from a file).
            why = check_param(self.p, v)
            self.error.setText(why or "")
            self.error.setVisible(bool(why))
        except (ScheduleError, ValueError) as e:
            self.error.setText(str(e))
            self.error.show()
        self.curve.set_schedule(v, self.frames() if self.frames else None)


class _WheelGuard(QObject):
    """The wheel over a field that has not been clicked (or tabbed) into scrolls the panel and
    leaves the value alone: scrolling down the properties changed every spin box, choice and
    slider the cursor passed over, silently, each one an edit of the workflow."""

    def eventFilter(self, obj, event):
        if event.type() != QEvent.Wheel or obj.hasFocus():
            return False
        area = obj.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is not None:
            QApplication.sendEvent(area.viewport(), event)
        return True


_WHEEL_GUARD = None


def guard_wheel(editor: QWidget) -> QWidget:
    """Fields of `editor` that change with the wheel take it only once they have the focus."""
    global _WHEEL_GUARD
    if _WHEEL_GUARD is None:
        _WHEEL_GUARD = _WheelGuard()
    for w in editor.findChildren(QWidget):
        if not isinstance(w, (QAbstractSpinBox, QComboBox, QAbstractSlider)):
            continue
        w.setFocusPolicy(Qt.StrongFocus)        # the wheel does not hand them the focus either
        w.installEventFilter(_WHEEL_GUARD)
    return editor


class _UndoRoute(QObject):
    """Ctrl+Z / Ctrl+Shift+Z in a field whose typing is applied go to the workflow's history: in a
    number field they did nothing at all after Enter, and in a text field they took the text back
    on screen only, to be applied again as a new edit when the focus left."""

    def __init__(self, editor):
        super().__init__(editor)
        self.editor = editor

    def eventFilter(self, obj, event):
        if event.type() == QEvent.ShortcutOverride and not self.editor.pending() and \
                any(event.matches(k) for k in (QKeySequence.Undo, QKeySequence.Redo)):
            event.ignore()          # not the field's: the window's Undo / Redo takes the key
            return True
        return False


class _ClipboardRoute(QObject):
    """Ctrl+V in a field while the clipboard holds nodes copied on the canvas pastes them there, and Ctrl+C with no
    text selected copies the selected nodes: a click on a node's prompt (to select the node) puts the keyboard in
    the panel's box for it, and Ctrl+V there pasted the copied nodes' YAML into the prompt, applied as soon as the
    focus left, while Ctrl+C copied nothing. `to_canvas("copy" | "paste")` does the canvas's."""

    def __init__(self, field, to_canvas: Callable[[str], None]):
        super().__init__(field)
        self.field, self.to_canvas = field, to_canvas

    def _selected_text(self) -> bool:
        f = self.field
        if isinstance(f, QPlainTextEdit):
            return f.textCursor().hasSelection()
        line = f if isinstance(f, QLineEdit) else f.findChild(QLineEdit)
        return line is not None and line.hasSelectedText()

    def _which(self, event) -> str:
        if event.matches(QKeySequence.Paste):
            return "paste" if holds_nodes() else ""
        return "copy" if event.matches(QKeySequence.Copy) and not self._selected_text() else ""

    def eventFilter(self, obj, event):
        if event.type() not in (QEvent.ShortcutOverride, QEvent.KeyPress):
            return False
        which = self._which(event)
        if not which:
            return False
        event.accept()
        if event.type() == QEvent.KeyPress:
            self.to_canvas(which)
        return True


def route_clipboard(editor: QWidget, to_canvas: Callable[[str], None]) -> QWidget:
    for field in editor.findChildren(QWidget):
        if isinstance(field, (QPlainTextEdit, QAbstractSpinBox)) or (
                isinstance(field, QLineEdit) and not isinstance(field.parentWidget(), QAbstractSpinBox)):
            field.installEventFilter(_ClipboardRoute(field, to_canvas))
    return editor


def route_undo(editor: QWidget) -> QWidget:
    field = getattr(editor, "spin", None) or getattr(editor, "edit", None)
    if field is not None and hasattr(editor, "pending"):
        field.installEventFilter(_UndoRoute(editor))
    return editor


def name_fields(editor: QWidget, name: str) -> QWidget:
    """Give each field of a parameter's editor a name a screen reader says. The label beside the row
    names the editor's container only, so its spin box, slider and buttons were announced as a
    nameless "spin box" and "↻"."""
    main = getattr(editor, "spin", None) or getattr(editor, "edit", None) or getattr(editor, "box", None)
    for w in editor.findChildren(QWidget):
        if w.accessibleName() or isinstance(w.parentWidget(), (QAbstractSpinBox, QComboBox)):
            continue            # a spin box's or a choice's own line edit: its parent carries the name
        if w is main:
            w.setAccessibleName(name)
        elif isinstance(w, QAbstractSlider):
            w.setAccessibleName(f"{name} slider")
        elif w.toolTip():
            w.setAccessibleName(f"{name}: {w.toolTip()}")
    return editor


def make_editor(p, commit: Commit, *, seed_mode: str = "fixed", set_seed_mode=None, base_dir=None, frames=None,
                pick=None):
    return name_fields(route_undo(guard_wheel(_make_editor(p, commit, seed_mode=seed_mode, set_seed_mode=set_seed_mode,
                                               base_dir=base_dir, frames=frames, pick=pick))), p.name)


def _make_editor(p, commit: Commit, *, seed_mode: str = "fixed", set_seed_mode=None, base_dir=None, frames=None,
                 pick=None):
    if p.type == "schedule" or p.kind == "schedule":
        return ScheduleEditor(p, commit, frames)
    if p.kind == "seed" and p.type == "int":
        return SeedEditor(p, commit, seed_mode, set_seed_mode)
    if p.choices:
        return ChoiceEditor(p, commit)
    if p.type == "bool":
        return BoolEditor(p, commit)
    if p.type in ("int", "float"):
        return NumberEditor(p, commit)
    if p.kind in ("text", "json"):
        return TextEditor(p, commit)
    if p.kind == "path":
        return PathEditor(p, commit, base_dir)
    if p.kind == "color":
        return ColorEditor(p, commit)
    if p.kind in ("points", "negative_points", "box"):
        return PickEditor(p, commit, pick)
    return LineEditor(p, commit)
