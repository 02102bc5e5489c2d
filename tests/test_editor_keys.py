"""The editor driven from the keyboard and the mouse with real events: the wheel, the clipboard
keys, Tab, a wire dropped on a node, zoom and the help sheet (issue: probe of stop 15, probekeys).
Driven through the real window offscreen; any Qt warning fails a test."""
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402
from test_editor import chain, registry_with  # noqa: E402

make_window, no_modal_dialogs = test_editor.make_window, test_editor.no_modal_dialogs

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


@pytest.fixture(scope="module")
def registry():
    return registry_with()


@pytest.fixture(autouse=True)
def private_config(monkeypatch, tmp_path):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def win(make_window):
    return make_window()


def wheel(widget, notches: int = -1) -> None:
    """One turn of the mouse wheel over the middle of `widget`, as the cursor passing over it sends."""
    pos = QPointF(widget.rect().center())
    QApplication.sendEvent(widget, QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0),
                                               QPoint(0, 120 * notches), Qt.NoButton, Qt.NoModifier,
                                               Qt.NoScrollPhase, False))


# -- the wheel over the properties panel ------------------------------------------------------------
def test_scrolling_the_properties_over_fields_changes_no_value(win, qtbot):
    c = win.controller
    n = c.add_node("generate.sample", (0, 0))
    win.scene.select_nodes([n])
    win.view.setFocus()
    eds = win.properties.editors
    before, steps = dict(win.doc.graph.nodes[n].params), win.doc.undo.count()
    targets = [eds["steps"].spin, eds["cfg"].spin, eds["cfg"].slider, eds["sampler"].box, eds["seed"].spin,
               eds["seed"].mode]
    for t in targets:
        wheel(t)
    # Each of these changed its value (an undo step each) while the user only scrolled the panel.
    assert win.doc.graph.nodes[n].params == before and win.doc.undo.count() == steps
    assert eds["seed"].mode.currentText() == "fixed"
    bar = win.properties.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)      # the sampler's fields do not fit: the panel scrolls
    at = bar.value()
    wheel(eds["sampler"].box)
    assert bar.value() > at
    eds["steps"].spin.setFocus()            # clicked (or tabbed) into, the field takes the wheel
    qtbot.waitUntil(eds["steps"].spin.hasFocus)
    wheel(eds["steps"].spin, 1)
    assert win.doc.graph.nodes[n].params["steps"] == before["steps"] + 1
