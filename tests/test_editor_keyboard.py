"""The editor for someone who works from the keyboard, or hears it through a screen reader: every
field says its name, F6 reaches each panel from the canvas (probe of stop 24, keyboard). Driven
through the real window offscreen with real key events; any Qt warning fails a test."""
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QAccessible  # noqa: E402
from PySide6.QtWidgets import (QAbstractScrollArea, QAbstractSpinBox, QApplication, QComboBox, QScrollBar,  # noqa: E402
                               QWidget)

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402

make_window, no_modal_dialogs, registry = test_editor.make_window, test_editor.no_modal_dialogs, test_editor.registry

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]

# One node for each kind of parameter editor: number, slider, seed, choice, bool, text, JSON, path,
# colour, schedule.
KINDS = ("generate.feedback", "color.cdl", "color.lut", "condition.inpaint", "encode.sdxl", "motion.tracks",
         "relight.directional", "color.match")


@pytest.fixture(autouse=True)
def private_config(monkeypatch, tmp_path):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def win(make_window):
    return make_window()


def spoken_name(w: QWidget) -> str:
    """What a screen reader announces as the widget's name (Qt's accessibility interface)."""
    return QAccessible.queryAccessibleInterface(w).text(QAccessible.Name)


def tab_stops(root: QWidget):
    """The widgets under `root` that Tab stops at, less the parts of a composite one (a spin box's
    line edit, a choice's list) whose parent carries the name, scroll bars and a scroll area's viewport."""
    for w in root.findChildren(QWidget):
        if not w.focusPolicy() & Qt.TabFocus or isinstance(w, QScrollBar):
            continue
        if isinstance(w.parentWidget(), QAbstractScrollArea) and w is w.parentWidget().viewport():
            continue
        if any(isinstance(a, (QAbstractSpinBox, QComboBox)) for a in (w.parentWidget(), w.parentWidget().parentWidget())):
            continue
        yield w


def test_a_screen_reader_hears_a_name_for_every_field_of_every_panel_and_every_kind_of_parameter(win, qtbot):
    named = []
    for i, t in enumerate(KINDS):
        nid = win.controller.add_node(t, (i * 300.0, 0.0))
        win.scene.select_nodes([nid])
        qtbot.waitUntil(lambda: win.properties.node_id == nid)
        win.view.open_palette(win.view.rect().center())
        for w in [win.view, *tab_stops(win)]:
            name = spoken_name(w)
            # A name with no letter is a symbol read out as such: "⇤", "◀|", "↻".
            if not any(c.isalpha() for c in name):
                raise AssertionError(f"{t}: a {type(w).__name__} in {type(w.parentWidget()).__name__} "
                                     f"(tip {w.toolTip()[:40]!r}) is announced as {name!r}")
            named.append(name)
        win.view.palette.hide()
    # The fields of a parameter say which: the seed's number, its new-seed button and its mode.
    # (A choice is named by its value on Linux, its label reaching the screen reader as a relation.)
    for want in ("seed", "seed: A new random seed now", "saturation",
                 "saturation slider", "color: Pick a colour", "path: Choose a file", "Node title",
                 "Search nodes to add", "First frame", "Play / pause"):
        assert want in named, want
    assert spoken_name(win.run_button) == "Run"         # not "black right-pointing triangle Run"


def test_f6_takes_the_keyboard_from_the_canvas_round_every_panel_and_back(win, qtbot):
    nid = win.controller.add_node("color.cdl", (0.0, 0.0))
    win.scene.select_nodes([nid])
    win.view.setFocus()
    qtbot.waitUntil(lambda: win.view.hasFocus() and win.properties.title_edit.isVisible())
    # Tab on the canvas is the node search, so before F6 the viewer, library and log could not be
    # reached from the canvas without the mouse.
    places = []
    for _ in range(6):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key_F6)
        places.append(QApplication.focusWidget())
    assert places == [win.viewer.canvas, win.properties.title_edit, win.library.filter, win.log, win.view,
                      win.viewer.canvas]
    assert "Viewer" in win.statusBar().currentMessage()
    # The library shares a dock with the properties: F6 brings it to the front, Shift+F6 back.
    qtbot.keyClick(win.viewer.canvas, Qt.Key_F6, Qt.ShiftModifier)
    assert win.view.hasFocus()
    qtbot.keyClick(win.view, Qt.Key_F6, Qt.ShiftModifier)
    assert win.log.hasFocus()
    qtbot.keyClick(win.log, Qt.Key_F6, Qt.ShiftModifier)
    assert win.library.filter.hasFocus() and win.library.isVisible()
    qtbot.keyClick(win.library.filter, Qt.Key_F6, Qt.ShiftModifier)
    assert win.properties.title_edit.hasFocus() and win.properties.isVisible()
    # A closed panel is passed by.
    win.docks["Viewer"].close()
    win.view.setFocus()
    qtbot.keyClick(win.view, Qt.Key_F6)
    assert win.properties.title_edit.hasFocus()
