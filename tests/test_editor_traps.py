"""The traps an artist hit in the first half hour with the editor (issue #26), one test each,
driven through the real widgets: keys and clicks go to the widget that has them on screen."""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPointF, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QLineEdit, QMessageBox, QPlainTextEdit  # noqa: E402

from graph_engine import Param  # noqa: E402
from graph_engine.types import FLOAT, STRING, VIDEO  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

from app.editor import window as window_mod  # noqa: E402
from app.editor.document import Document  # noqa: E402
# The window fixtures (Qt warnings fail a test, no modal dialog may block) and the way test-only
# node types are declared are test_editor's; `registry` below adds this file's node types.
from test_editor import chain, make_window, no_modal_dialogs, qbot_wait, registry_with  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


def _echo(ctx, text: str = Param("", kind="text")) -> STRING:
    """Returns its prompt."""
    return text


def _count(ctx, video: VIDEO, frames: int = Param(8, min=1, max=64)) -> FLOAT:
    """A number."""
    return float(frames)


@pytest.fixture(scope="module")
def registry():
    return registry_with(test_echo=_echo, test_count=_count)


@pytest.fixture(autouse=True)
def private_config(monkeypatch, tmp_path):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def win(make_window):  # noqa: F811 (the fixture imported above)
    w = make_window()
    w.activateWindow()
    return w


def click_scene(qtbot, w, scene_pos, button=Qt.LeftButton, mods=Qt.NoModifier):
    qtbot.mouseClick(w.view.viewport(), button, mods, w.view.mapFromScene(scene_pos))
    QApplication.processEvents()


def field_pos(w, node, name):
    item = w.scene.nodes[node]
    return item.mapToScene(item.param_rect(name).center())


def inline_editors(w):
    return [e for e in w.view.viewport().findChildren(QLineEdit, "InlineEditor") if e.isVisible()]


# -- 1. Ctrl+Enter in a prompt box runs the graph with what the box shows ---------------------------
def test_1_ctrl_enter_in_a_prompt_runs_with_the_new_text(win, qtbot):
    n = win.controller.add_node("test.echo", (0, 0))
    win.controller.set_param(n, "text", "old prompt")
    win.scene.select_nodes([n])
    box = win.properties.editors["text"].edit
    assert isinstance(box, QPlainTextEdit)
    box.setFocus()
    qtbot.keyClick(box, Qt.Key_End, Qt.ControlModifier)
    qtbot.keyClicks(box, " at dusk")
    qtbot.keyClick(box, Qt.Key_Return, Qt.ControlModifier)
    assert win.runs.jobs, "Ctrl+Enter did not start a run"
    job = win.runs.jobs[-1]
    assert job.workflow.graph.nodes[n].params["text"] == "old prompt at dusk"
    assert win.doc.graph.nodes[n].params["text"] == "old prompt at dusk"
    assert win.runs.wait_idle(30)


# -- 4. an inline editor closes when focus leaves, follows the model, and is not opened blind -------
def test_4_inline_editor_closes_on_click_away_follows_model_and_needs_visible_fields(win, qtbot):
    p, r, _ = chain(win)
    win.view.centerOn(QPointF(300, 100))
    click_scene(qtbot, win, field_pos(win, r, "width"))
    (ed,) = inline_editors(win)
    assert ed.text() == "16"
    click_scene(qtbot, win, QPointF(150, 400))             # empty canvas
    assert inline_editors(win) == [], "the editor stayed open after a click elsewhere"

    click_scene(qtbot, win, field_pos(win, r, "width"))
    (ed,) = inline_editors(win)
    win.controller.set_param(r, "width", 20)                # e.g. the properties panel, or an undo
    assert ed.text() == "20", "the open editor still shows the old value"
    qtbot.keyClick(ed, Qt.Key_Return)
    assert win.doc.graph.nodes[r].params["width"] == 20 and inline_editors(win) == []

    click_scene(qtbot, win, field_pos(win, r, "width"))
    (ed,) = inline_editors(win)
    win.run()                                              # a run closes it, applying nothing stale
    assert inline_editors(win) == []
    assert win.runs.wait_idle(30)

    win.view.zoom_by(0.5 / win.view.zoom())                 # fields are not drawn this far out
    win.view.centerOn(QPointF(300, 100))
    click_scene(qtbot, win, field_pos(win, r, "width"))
    assert inline_editors(win) == []
    assert win.scene.selected_nodes() == [r]
    qtbot.keyClick(win.view, Qt.Key_H)                       # the next key still works on the canvas
    assert win.doc.graph.ui[r].get("collapsed")


# -- 10. a refused value or link says why, where the user is looking ------------------------------
def test_10_bad_value_keeps_editor_open_with_reason_and_refused_link_message_stays(win, qtbot):
    p, r, _ = chain(win)
    img = win.controller.add_node("io.save_image", (300, 250))
    win.view.centerOn(QPointF(300, 100))
    click_scene(qtbot, win, field_pos(win, r, "height"))
    (ed,) = inline_editors(win)
    qtbot.keyClick(ed, Qt.Key_A, Qt.ControlModifier)
    qtbot.keyClicks(ed, "-3")
    qtbot.keyClick(ed, Qt.Key_Return)
    assert win.doc.graph.nodes[r].params["height"] == 16
    assert inline_editors(win) == [ed] and ed.text() == "-3", "the typed value snapped back silently"
    assert win.view.toast.isVisible() and "height" in win.view.toast.text()
    qtbot.keyClick(ed, Qt.Key_Escape)
    assert inline_editors(win) == []

    src = win.scene.nodes[r].port_scene_pos("video", False)
    dst = win.scene.nodes[img].port_scene_pos("image", True)
    vp = win.view.viewport()
    a, b = win.view.mapFromScene(src), win.view.mapFromScene(dst)
    qtbot.mousePress(vp, Qt.LeftButton, Qt.NoModifier, a)
    for i in range(1, 7):
        qtbot.mouseMove(vp, a + (b - a) * (i / 6))
    qtbot.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, b)
    qtbot.wait(300)
    assert "image" not in win.doc.graph.inputs.get(img, {})
    assert win.view.toast.isVisible() and "VIDEO cannot connect to IMAGE" in win.view.toast.text()


# -- 3. crash recovery lands in the one visible window, marked modified, file kept until saved -----
def test_3_recovery_opens_in_the_one_window_marked_modified_and_keeps_the_file(qtbot, registry, tmp_path,
                                                                              monkeypatch):
    from app.editor import main as editor_main
    from app.editor.autosave import Autosaver, find_recoveries, recovery_dir
    from app.editor.controller import Controller
    path = tmp_path / "shot.yaml"
    doc = Document(registry=registry)
    Controller(doc).add_node("generate.test_pattern", (0, 0))
    doc.save(path)
    crashed = Document.load(path, registry)
    Controller(crashed).add_node("video.reverse", (300, 0))
    saver = Autosaver(crashed, 60_000)
    rec_file = saver.save_now()
    saver._lock.unlock()                      # what the OS does to a crashed editor's lock
    saver.timer.stop()
    saver._file = saver._lock = None
    assert len(find_recoveries()) == 1

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    monkeypatch.setattr(QApplication, "exec", lambda *a: 0)
    before = list(window_mod.WINDOWS)
    assert editor_main.run_editor(str(path)) == 0
    new = [w for w in window_mod.WINDOWS if w not in before]
    try:
        shown = [w for w in new if w.isVisible()]
        assert len(shown) == 1, f"{len(shown)} windows opened for one recovered workflow"
        (w,) = shown
        assert w.doc.path == path.resolve()
        assert sorted(i.type for i in w.doc.graph.nodes.values()) == ["generate.test_pattern", "video.reverse"]
        assert w.doc.modified and w.isWindowModified()
        assert rec_file.exists(), "the recovery file was deleted before the recovered work was saved"
        assert w.save()
        assert not rec_file.exists() and not list(recovery_dir().glob("*.yaml"))
    finally:
        for w in new:
            w.doc.undo.setClean()
            w.close()


# -- 13. quitting with Discard leaves no traceback behind --------------------------------------------
QUIT_SCRIPT = r"""
import os
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox
app = QApplication([])
from app.editor.window import MainWindow
QMessageBox.question = lambda *a, **k: QMessageBox.Discard
w = MainWindow()
w.show()
w.activateWindow()
QTest.qWaitForWindowExposed(w)
w.controller.add_node("video.reverse", (0, 0))
QTest.keyClick(w, Qt.Key_Q, Qt.ControlModifier)
app.processEvents()
print("closed", not w.isVisible())
del w
"""


def test_13_quit_with_discard_prints_no_error(tmp_path):
    import subprocess
    env = dict(os.environ, PYTHONPATH=str(REPO), KINOGRAPH_CONFIG_DIR=str(tmp_path / "config"))
    out = subprocess.run([sys.executable, "-c", QUIT_SCRIPT], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "closed True" in out.stdout, out.stderr
    assert "Error" not in out.stderr and "Traceback" not in out.stderr, out.stderr
