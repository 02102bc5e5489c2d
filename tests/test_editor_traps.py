"""The traps an artist hit in the first half hour with the editor (issue #26), one test each,
driven through the real widgets: keys and clicks go to the widget that has them on screen."""
import os
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPointF, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QMessageBox, QPlainTextEdit, QPushButton  # noqa: E402

from graph_engine import Param  # noqa: E402
from graph_engine.types import FLOAT, STRING, VIDEO  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

from app.editor import window as window_mod  # noqa: E402
from app.editor.document import Document  # noqa: E402
from app.editor.settings import EditorSettings  # noqa: E402
from app.editor.window import MainWindow  # noqa: E402
# The window fixtures (Qt warnings fail a test, no modal dialog may block) and the way test-only
# node types are declared are test_editor's; `registry` below adds this file's node types.
import test_editor  # noqa: E402
from test_editor import chain, qbot_wait, registry_with  # noqa: E402

make_window, no_modal_dialogs = test_editor.make_window, test_editor.no_modal_dialogs

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
def win(make_window, qtbot):
    return active(make_window(), qtbot)


def active(w, qtbot):
    """The window takes keyboard shortcuts only once it is the active one."""
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
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
    win.run([r])                                           # a run closes it, applying nothing stale
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


# -- 2. the first view of a workflow is legible, on a canvas that has most of the window -----------
def test_2_opened_workflow_is_legible_and_the_canvas_has_most_of_the_window(make_window, qtbot, monkeypatch):
    from PySide6.QtWidgets import QFileDialog
    w = active(make_window(), qtbot)
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *a, **k: (str(REPO / "examples" / "default.yaml"), ""))
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key_O, Qt.ControlModifier)
    qtbot.wait(200)
    assert len(w.doc.graph.nodes) == 12
    # 0.6: below it nodes draw no socket names or fields (geometry.DETAIL_ZOOM)
    assert w.view.zoom() >= 0.6 and not w.scene.far, f"opened at {w.view.zoom():.0%}"
    canvas = w.view.width() * w.view.height()
    assert canvas >= 0.5 * w.width() * w.height(), f"canvas {w.view.width()}x{w.view.height()} of {w.size()}"
    shown = w.view.mapToScene(w.view.viewport().rect()).boundingRect()
    whole = [n for n, item in w.scene.nodes.items() if shown.contains(item.sceneBoundingRect())]
    assert len(whole) >= 4, f"only {whole} fully on screen"


# -- 15. relative paths in saved files, a window that fits the screen, a named reason to re-run ----
def test_15_relative_paths_window_fits_screen_and_why_names_the_parameter(make_window, qtbot, tmp_path,
                                                                          monkeypatch, registry):
    fresh = MainWindow(Document(registry=registry), settings=EditorSettings(tmp_path / "e.json"))
    fresh.show()
    qtbot.waitExposed(fresh)
    screen = fresh.screen().availableGeometry()
    assert screen.contains(fresh.frameGeometry()), f"{fresh.frameGeometry()} does not fit {screen}"
    fresh.close()

    w = active(make_window(), qtbot)
    p, r, s = chain(w)
    (tmp_path / "out").mkdir()
    w.controller.set_param(s, "path", str(tmp_path / "out" / "shot.mp4"))
    from PySide6.QtWidgets import QFileDialog
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "shot.yaml"), ""))
    qtbot.keyClick(w.view, Qt.Key_S, Qt.ControlModifier)
    text = (tmp_path / "shot.yaml").read_text()
    assert "out/shot.mp4" in text and str(tmp_path) not in text

    w.run([r])
    assert w.runs.wait_idle(30)
    w.controller.set_param(p, "width", 40)
    w.run([r])
    assert w.runs.wait_idle(30)
    w.scene.select_nodes([r])
    (button,) = [b for b in w.properties.findChildren(QPushButton) if b.text() == "Why re-run?"]
    qtbot.mouseClick(button, Qt.LeftButton)
    assert f"{p}.width changed from 32 to 40" in w.log.toPlainText()


# -- 6. the viewer is a monitor: cleared on open, A/B by time, wipe stays off, failures shown ------
def test_6_viewer_clears_on_open_aligns_by_time_keeps_wipe_choice_and_shows_failures(make_window, qtbot,
                                                                                      monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog
    w = active(make_window(), qtbot)
    c = w.controller
    slow = c.add_node("generate.test_pattern", (0, 0))
    fast = c.add_node("generate.test_pattern", (0, 300))
    for n, frames, fps in ((slow, 8, 12.0), (fast, 16, 24.0)):
        for k, v in (("frames", frames), ("fps", fps), ("width", 32), ("height", 32)):
            c.set_param(n, k, v)
    w.view_node(slow, "A")
    assert "computing" in w.viewer.canvas.loading, "no sign that the frame is on its way"
    assert w.runs.wait_idle(30)
    qbot_wait(lambda: w.viewer.canvas.images["A"] is not None)
    assert "32×32" in w.viewer.labels["A"].text() and "12 fps" in w.viewer.labels["A"].text()
    w.view_node(fast, "B")
    assert w.runs.wait_idle(30)
    qbot_wait(lambda: w.viewer.canvas.images["B"] is not None)
    shown = {}
    w.viewer.frameShown.connect(lambda slot, i, img: shown.__setitem__(slot, i))
    w.viewer.canvas.setFocus()
    for _ in range(3):
        qtbot.keyClick(w.viewer.canvas, Qt.Key_Right)
    qbot_wait(lambda: not w.viewer._waiting)
    assert shown == {"A": 3, "B": 6}, "A/B matched by frame number instead of time"
    assert w.viewer.timecode_label.text() == "00:00:00:03"

    qtbot.mouseClick(w.viewer.wipe_box, Qt.LeftButton)
    assert w.viewer.canvas.wipe is None
    w.view_node(slow, "B")
    assert w.runs.wait_idle(30)
    qbot_wait(lambda: not w.viewer._waiting)
    assert w.viewer.canvas.wipe is None and not w.viewer.wipe_box.isChecked(), "the wipe turned itself on"

    bad = c.add_node("io.load_video", (0, 600))
    c.set_param(bad, "path", str(tmp_path / "missing.mp4"))
    w.view_node(bad, "A")
    assert w.runs.wait_idle(30)
    qbot_wait(lambda: w.viewer.canvas.alert)
    assert w.viewer.canvas.images["A"] is None, "the old frame stays as if it were the answer"
    assert "missing.mp4" in w.viewer.canvas.note

    path = tmp_path / "other.yaml"
    Document(registry=w.doc.registry).save(path)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    w.doc.undo.setClean()
    qtbot.keyClick(w.view, Qt.Key_O, Qt.ControlModifier)
    assert w.doc.path == path.resolve()
    assert w.viewer.sources == {"A": None, "B": None} and w.viewer.canvas.images == {"A": None, "B": None}


# -- 5. the viewer takes its keys when clicked or hovered, with the J/K/L shuttle -------------------
def test_5_viewer_keys_go_to_the_viewer_with_jkl_shuttle(win, qtbot):
    p, r, s = chain(win)
    before = {n: list(win.doc.graph.ui[n]["pos"]) for n in (p, r, s)}
    win.view_node(r, "A")
    assert win.runs.wait_idle(30)
    qbot_wait(lambda: win.viewer.canvas.images["A"] is not None)
    win.view.setFocus()
    qtbot.mouseClick(win.viewer.canvas, Qt.LeftButton)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_L)
    assert {n: list(win.doc.graph.ui[n]["pos"]) for n in (p, r, s)} == before, "L laid out the graph"
    assert win.viewer.playing and win.viewer.direction == 1
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_L)
    assert win.viewer.speed == 2
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_K)
    assert not win.viewer.playing
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_J)
    assert win.viewer.playing and win.viewer.direction == -1
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_K)
    i = win.viewer.index
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Right)
    assert win.viewer.index == min(i + 1, win.viewer.length - 1)


# -- 7. the properties panel fits its column, says how a run ended, and shows messages as written --
def test_7_properties_fit_the_panel_show_the_final_state_and_plain_messages(make_window, qtbot, registry):
    doc = Document.from_text(
        "kinograph: 1\nnodes:\n  save: {type: io.save_video, params: {path: a.mp4}}\n"
        "  sample: {type: generate.sample}\n", None, registry)
    w = active(make_window(doc), qtbot)
    w.resizeDocks([w.docks["Properties"]], [330], Qt.Horizontal)
    qtbot.wait(50)
    w.scene.select_nodes(["sample"])
    qtbot.wait(50)
    panel = w.properties
    assert panel.widget().minimumSizeHint().width() <= panel.viewport().width(), "Sample's rows run off the side"
    assert not panel.horizontalScrollBar().isVisible()
    buttons = [b for b in panel.findChildren(QPushButton) if b.isVisible()]
    assert buttons and all(panel.viewport().rect().contains(b.mapTo(panel.viewport(), b.rect().topRight()))
                           for b in buttons)

    w.scene.select_nodes(["save"])
    errors = [lab.text() for lab in panel.findChildren(QLabel, "FieldError")]
    assert any("'video'" in t for t in errors) and not any("&#" in t for t in errors), errors

    c = w.controller
    p = c.add_node("generate.test_pattern", (0, 400))
    slow = c.add_node("test.count", (300, 400))
    c.connect(p, "video", slow, "video")
    w.scene.select_nodes([slow])
    job = w.run([slow])
    w.runs.cancel(job)
    assert w.runs.wait_idle(30)
    status = panel.findChild(QLabel, "StatusText")
    assert status.isVisible() and "running" not in status.text() and "queued" not in status.text()


# -- 9. a new sticky note takes what is typed next --------------------------------------------------
def test_9_new_sticky_note_starts_in_edit_mode(win, qtbot):
    win.view.setFocus()
    qtbot.keyClick(win.view, Qt.Key_N)
    assert len(win.scene.notes) == 1
    qtbot.keyClicks(win.view, "hand-held, 2x slower")
    qtbot.keyClick(win.view, Qt.Key_Escape)
    notes = win.doc.graph.ui.get("_notes") or {}
    assert len(notes) == 1, "typing made more notes"
    assert [n["text"] for n in notes.values()] == ["hand-held, 2x slower"]
    assert not win.doc.graph.nodes


# -- 11. a Run button and queue state, a hint on an empty canvas, a whole F1 sheet, task words -----
def test_11_run_button_empty_hint_help_sheet_search_words_and_zero_auto(win, qtbot, tmp_path):
    from app.editor import theme
    img = win.view.viewport().grab().toImage()
    hint = sum(1 for x in range(0, img.width(), 2) for y in range(img.height() // 3, 2 * img.height() // 3, 2)
               if img.pixelColor(x, y).lightness() > theme.GRID_MAJOR.lightness() + 40)
    assert hint > 50, "the empty canvas says nothing about how to start"

    qtbot.keyClick(win.view, Qt.Key_F1)
    sheet = win.help.findChild(QLabel)
    assert win.help.isVisible()
    top_left = sheet.mapTo(win.help, sheet.rect().topLeft())
    assert win.help.rect().contains(top_left), "the shortcut sheet is cut off"
    assert win.help.width() >= win.width() - 2
    qtbot.keyClick(win.view, Qt.Key_F1)

    win.view.open_palette(win.view.rect().center())
    qtbot.keyClicks(win.view.palette.edit, "slow motion")
    found = win.view.palette.results()
    assert found[0].startswith("interpolate.") and "interpolate.flow" in found, found
    qtbot.keyClick(win.view.palette.edit, Qt.Key_Escape)

    p, r, s = chain(win, out=tmp_path / "run.mp4")
    c = win.controller
    sample = c.add_node("generate.sample", (0, 300))
    item = win.scene.nodes[sample]
    item.update()
    from app.editor.node_item import format_value
    assert format_value(item.spec.params["cfg"], 0.0) == "auto"

    assert win.run_button.isVisible() and "Run" in win.run_button.text()
    c.delete([sample])
    qtbot.mouseClick(win.run_button, Qt.LeftButton)
    assert win.runs.jobs and win.runs.jobs[-1].kind == "run"
    assert "running" in win.queue_label.text() or "idle" in win.queue_label.text()
    assert win.runs.wait_idle(30)
    assert "idle" in win.queue_label.text()


# -- 14. a desktop without Qt's X11 libraries gets the exact install command ------------------------
def test_14_missing_x11_libraries_name_the_apt_command(tmp_path):
    import subprocess
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ldd").write_text("#!/bin/sh\necho '\tlibxcb-cursor.so.0 => not found'\necho '\tlibc.so.6 => /lib/libc.so.6'\n")
    (fake / "ldd").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.update(PATH=f"{fake}:{env.get('PATH', '')}", DISPLAY=":99", PYTHONPATH=str(REPO),
               KINOGRAPH_CONFIG_DIR=str(tmp_path / "config"))
    out = subprocess.run([sys.executable, "-m", "app.cli", "gui"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1, (out.returncode, out.stderr[-800:])
    assert "sudo apt-get install libxcb-cursor0" in out.stderr
    assert "Traceback" not in out.stderr


# -- 12. a lazy node's time is the time its frames took, wherever they were computed ---------------
def _slow_frames(ctx, video: VIDEO, delay: float = Param(0.05, min=0.0, max=1.0)) -> VIDEO:
    """Passes frames through, slowly, only when they are read."""
    def read(a, b):
        time.sleep(delay)
        return video.frames(a, b)
    return video.with_(reader=read)


def test_12_lazy_nodes_get_the_time_their_frames_took(make_window, qtbot, tmp_path):
    reg = registry_with(test_slowframes=_slow_frames)
    w = active(make_window(Document(registry=reg)), qtbot)
    c = w.controller
    p = c.add_node("generate.test_pattern", (0, 0))
    slow = c.add_node("test.slowframes", (300, 0))
    save = c.add_node("io.save_video", (600, 0))
    for k, v in (("frames", 6), ("width", 32), ("height", 32)):
        c.set_param(p, k, v)
    c.set_param(save, "path", str(tmp_path / "slow.mp4"))
    c.set_param(save, "codec", "ffv1")
    c.connect(p, "video", slow, "video")
    c.connect(slow, "video", save, "video")
    w.run()
    assert w.runs.wait_idle(60)
    log = w.log.toPlainText()
    assert f"{c.named(slow)} done in" not in log, "a lazy node claimed it was done in no time"
    assert f"{c.named(slow)} computed its frames in" in log
    st = w.runs.status[slow]
    assert st.state == "done" and st.seconds >= 0.04, st
    assert w.runs.status[save].seconds < st.seconds + 1.0

    c.set_param(slow, "delay", 0.3)
    c.set_param(p, "frames", 400)
    w.run()
    qbot_wait(lambda: w.runs.status.get(save) is not None and w.runs.status[save].state == "running")
    w.runs.cancel()
    assert w.runs.wait_idle(60)
    assert w.runs.status[slow].state == "cancelled" and w.runs.status[save].state == "cancelled"


# -- 8. live previews while sampling, step count and ETA, thumbnails, clip info on loaders ---------
def test_8_live_sampling_preview_steps_thumbnails_and_clip_info(make_window, qtbot, tmp_path, registry):
    from test_context_windows import build_tiny_mini
    folder = build_tiny_mini(tmp_path / "mini")
    doc = Document.from_text(f"""kinograph: 1
nodes:
  load: {{type: load.mini, params: {{path: {folder}}}}}
  prompt: {{type: encode.text, inputs: {{text_encoder: load.text_encoder}}, params: {{text: a red circle}}}}
  empty: {{type: latent.empty, inputs: {{vae: load.vae}}, params: {{frames: 4, width: 32, height: 32}}}}
  sample:
    type: generate.sample
    inputs: {{model: load.model, positive: prompt.positive, negative: prompt.negative, latent: empty.latent}}
    params: {{steps: 4, sampler: flow_euler, seed: 80626}}
  pattern: {{type: generate.test_pattern, params: {{frames: 12, width: 64, height: 48, fps: 12}}}}
  clip: {{type: io.load_video, params: {{path: {tmp_path / 'clip.mp4'}}}}}
""", None, registry)
    from graph_engine.api import Session
    from graph_engine.workflow import Workflow
    from graph_engine.graph import Graph
    g = Graph()
    src = g.add_node("generate.test_pattern", "p", {"frames": 12, "width": 64, "height": 48, "fps": 12.0})
    out = g.add_node("io.save_video", "s", {"path": str(tmp_path / "clip.mp4"), "codec": "ffv1"})
    g.connect(src, "video", out, "video")
    assert Session(use_disk=False).run(Workflow(g, allow_outside=True)).ok

    w = active(make_window(doc), qtbot)
    w.runs.executor.disk = None         # a sample cached by another test would (rightly) show no steps
    badges, live = [], []
    w.runs.statusChanged.connect(lambda n, st: n == "sample" and st is not None and badges.append(st.badge()))
    # Connected after the window's own slot: sees the viewer as each preview left it.
    w.runs.previewed.connect(lambda n, img, st: live.append((w.viewer.canvas.loading, w.viewer.canvas.live)))
    qtbot.mouseClick(w.run_button, Qt.LeftButton)
    assert w.runs.wait_idle(300)
    assert w.runs.jobs[-1].state == "done", w.log.toPlainText()[-600:]
    assert any(b[:3] in ("1/4", "2/4", "3/4", "4/4") for b in badges), badges     # steps, not a bare %
    assert len(live) == 4 and live[-1][0].startswith(f"{w.controller.named('sample')} · step 4/4"), live
    assert all(img is not None and 0 < img.width() <= 32 for _, img in live)     # latent-sized, no decode
    assert w.scene.nodes["sample"].thumb is not None, "no preview on the sampling node"
    assert w.viewer.canvas.live is None
    assert w.scene.nodes["clip"].info.startswith("64×48 · 12 fps · 12 fr · 00:00:01:00")


def test_14b_screenshot_without_x11_libraries_renders_offscreen(tmp_path):
    """`kinograph gui WF --screenshot PNG` on a desktop whose Qt lacks X11 libraries skipped the
    check and Qt aborted the process (a core dump, exit 134); a picture needs no display, so it is
    rendered offscreen and written."""
    import subprocess
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ldd").write_text("#!/bin/sh\necho '\tlibxcb-cursor.so.0 => not found'\n")
    (fake / "ldd").chmod(0o755)
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n"
                  "  pattern: {type: generate.test_pattern, params: {frames: 3, width: 32, height: 24}}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    # A display no X server answers: Qt's X11 plugin could not start there either.
    env.update(PATH=f"{fake}:{env.get('PATH', '')}", DISPLAY=":9999", PYTHONPATH=str(REPO),
               KINOGRAPH_CONFIG_DIR=str(tmp_path / "config"), KINOGRAPH_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-m", "app.cli", "gui", str(wf), "--screenshot", str(tmp_path / "s.png")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.returncode, out.stderr[-800:])
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- 16. a first graph, never saved: where did the video go? -----------------------------------------
def test_16_an_untitled_graph_renders_into_the_output_folder_and_the_log_says_where(make_window, qtbot, tmp_path,
                                                                                   monkeypatch):
    """Tab, Test Pattern, drag to Save Video, Run: its out/video.mp4 was written relative to the folder
    the editor was started from (the home folder, from a desktop launcher) and the log said only
    'save_video done'. An untitled workflow now writes into the output folder, and the log names the file."""
    out_dir, started = tmp_path / "output", tmp_path / "started here"
    started.mkdir()
    monkeypatch.setenv("KINOGRAPH_OUTPUT_DIR", str(out_dir))
    monkeypatch.chdir(started)
    w = make_window()
    c = w.controller
    p = c.add_node("generate.test_pattern", (0, 0))
    s = c.add_node("io.save_video", (300, 0))
    for name, value in (("frames", 3), ("width", 32), ("height", 24)):
        c.set_param(p, name, value)
    c.connect(p, "video", s, "video")
    assert w.doc.graph.nodes[s].params.get("path", "out/video.mp4") == "out/video.mp4"
    job = w.run()
    assert w.runs.wait_idle(60) and job.state == "done", job.error
    written = out_dir / "out" / "video.mp4"
    assert written.stat().st_size > 0 and not (started / "out").exists()
    assert f"wrote {written}" in w.log.toPlainText()


def test_17_a_run_with_the_viewer_empty_shows_what_it_wrote(make_window, qtbot, tmp_path):
    """After the first Run the viewer stayed empty: the result was a thumbnail on the save node and a
    Ctrl+Shift+click away. A run that writes a clip now shows it when the viewer shows nothing;
    a clip already on screen is left alone."""
    w = make_window()
    p, r, s = chain(w, frames=4, out=tmp_path / "first.mkv")
    job = w.run()
    assert w.runs.wait_idle(60) and job.state == "done", job.error
    qtbot.waitUntil(lambda: w.viewer.sources["A"] is not None, timeout=30000)
    shown = w.viewer.sources["A"]
    assert (shown.length, shown.size, shown.label) == (4, (16, 16), f"{w.controller.named(r)}.video") and w._viewing["A"] == s
    # The run's own badges stay: showing it re-ran nothing, so nothing reads 'cached'.
    assert {w.runs.status[n].state for n in (p, r, s)} == {"done"}
    # An edit starts no job the user did not ask for: the picture says it is out of date until the
    # next run, whose result it then shows.
    w.controller.set_param(r, "width", 8)
    qtbot.wait(400)
    assert not w.runs.jobs[1:] and "A is out of date" in w.viewer.canvas.note
    w.run()
    assert w.runs.wait_idle(60)
    qtbot.waitUntil(lambda: w.viewer.sources["A"].size == (8, 16))
    assert {w.runs.status[n].state for n in (r, s)} == {"done"}
    w.view_node(p, "A")
    qtbot.waitUntil(lambda: w.viewer.sources["A"] is not None and w.viewer.sources["A"].size == (32, 32))
    w.run()
    assert w.runs.wait_idle(60) and w._viewing["A"] == p and w.viewer.sources["A"].size == (32, 32)


def test_16b_choosing_footage_for_an_untitled_workflow_starts_in_a_folder_that_exists(make_window, qtbot, tmp_path,
                                                                                     monkeypatch):
    """An untitled workflow's relative paths resolve in the output folder, which a first run has not
    made yet: the file dialog for a Load Video's path was given that folder and opened elsewhere."""
    from PySide6.QtWidgets import QFileDialog, QToolButton
    monkeypatch.setenv("KINOGRAPH_OUTPUT_DIR", str(tmp_path / "not made yet"))
    monkeypatch.setenv("HOME", str(tmp_path))
    starts = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda parent, title, start, *a, **k: starts.append(start)
                        or ("", ""))
    w = make_window()
    n = w.controller.add_node("io.load_video", (0, 0))
    w.scene.select_nodes([n])
    qtbot.waitUntil(lambda: "path" in w.properties.editors)
    qtbot.mouseClick(w.properties.editors["path"].findChild(QToolButton), Qt.LeftButton)
    assert starts == [str(tmp_path)]


# -- 18. a first workflow to look at --------------------------------------------------------------------
def test_18_file_menu_opens_the_examples_by_name(make_window, qtbot):
    """Someone new had an empty canvas and a file dialog: the examples were a folder of the source
    tree to know about. File > Open Example lists them by name and opens one."""
    w = make_window()
    w.examples_menu.aboutToShow.emit()
    acts = {a.text(): a for a in w.examples_menu.actions()}
    assert "Text to video with kinograph-mini  (mini_text_to_video.yaml)" in acts, list(acts)
    # Which ones need model files, and which: someone with none found out at the loader.
    wan = acts["Wan text-to-video from ComfyUI's model files  (wan_comfyui_files.yaml, needs model files)"]
    assert wan.toolTip().startswith("needs wan2.1_t2v_1.3B_fp16.safetensors, umt5_xxl_fp8_e4m3fn_scaled.safetensors, "
                                    "wan_2.1_vae.safetensors in your model folders")
    acts["Kinograph showcase  (default.yaml)"].trigger()
    assert w.doc.path == REPO / "examples" / "default.yaml" and len(w.doc.graph.nodes) == 12


def test_16c_a_run_with_nothing_to_save_says_how_to_see_something(make_window, qtbot):
    """A Test Pattern alone, Run: 'finished in 0.01 s' and nothing to see (a whole run computes what
    saves and metrics read). The log and the status bar now say what to add, or how to look."""
    w = make_window()
    w.controller.add_node("generate.test_pattern", (0, 0))
    job = w.run()
    assert w.runs.wait_idle(60) and job.state == "done"
    said = "nothing in this workflow saves or measures anything: add a Save Video"
    assert said in w.log.toPlainText() and w.statusBar().currentMessage().startswith("Nothing in this workflow")


def test_14c_a_screenshot_never_replaces_a_picture_kinograph_did_not_write(tmp_path, capsys, monkeypatch):
    """`--screenshot shot.png` wrote over whatever shot.png was (a render named by mistake, a photo)."""
    from app.editor import main as editor_main
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "data"))
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"someone's photo")
    assert editor_main.run_editor(None, screenshot=str(photo)) == 1
    assert photo.read_bytes() == b"someone's photo"
    assert "photo.png already exists and Kinograph did not write it" in capsys.readouterr().err
    shot = tmp_path / "shot.png"
    for _ in range(2):          # its own earlier screenshot is replaced
        assert editor_main.run_editor(None, screenshot=str(shot)) == 0
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_a_value_set_right_loses_its_red_message(make_window, registry, qtbot):
    """A workflow read with frames: 0 showed "out of range" under the field; typing 8 there left the message
    in red (and selecting the node again showed it again) until the file was reopened: the properties showed
    what validating the graph had found when it was read. It goes once the value is right, and Undo brings it
    back with the 0."""
    doc = Document.from_text("kinograph: 1\nnodes:\n  count: {type: test.count, params: {frames: 0}}\n", None, registry)
    w = active(make_window(doc), qtbot)
    w.scene.select_nodes(["count"])
    unwired = "required input 'video' (VIDEO) is not connected"

    def red():
        QApplication.processEvents()            # a field added to the shown panel shows at the next event
        return [l.text() for l in w.properties.findChildren(QLabel, "FieldError") if l.isVisible()]
    assert red() == ["parameter 'frames' 0 is out of range (1..64)", unwired]
    box = w.properties.editors["frames"].spin
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "8")
    qtbot.keyClick(box.lineEdit(), Qt.Key_Return)
    assert w.doc.graph.nodes["count"].params["frames"] == 8
    assert red() == [unwired]                   # still true: it stays
    w.scene.select_nodes([])
    w.scene.select_nodes(["count"])
    assert red() == [unwired]                   # still true: it stays
    w.doc.undo.undo()
    assert red() == ["parameter 'frames' 0 is out of range (1..64)", unwired]
