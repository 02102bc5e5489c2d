"""An artist's evening in the editor (probe editor41): a workflow another program saves while it is open, errors
said where the artist looks, undo after a delete. Driven through the real window offscreen; any Qt warning fails a
test."""
import os
import shutil
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QEvent  # noqa: E402

from graph_engine.types import VIDEO  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor_session  # noqa: E402
from app.editor.document import Document  # noqa: E402
from app.editor.ops import SetParam  # noqa: E402
from test_editor import _seeded, _slow, registry_with  # noqa: E402

make_window, no_modal_dialogs = test_editor_session.make_window, test_editor_session.no_modal_dialogs
win, private_config, pytestmark = test_editor_session.win, test_editor_session.private_config, test_editor_session.pytestmark



def _mismatch(ctx, video: VIDEO) -> VIDEO:
    """Fails as a node does on footage it cannot take."""
    raise ValueError("the plate is 32x32 but the matte is 64x64: resize one of them")


@pytest.fixture(scope="module")
def registry():
    return registry_with(test_slow=_slow, test_seeded=_seeded, test_mismatch=_mismatch)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "test_pattern.yaml"


def _back_to(w, monkeypatch):
    """The artist comes back to the window (from a text editor, a terminal's git pull)."""
    monkeypatch.setattr(w, "isActiveWindow", lambda: True)
    w.changeEvent(QEvent(QEvent.ActivationChange))


def test_a_workflow_saved_by_another_program_is_shown_as_it_is_now(make_window, registry, tmp_path, monkeypatch):
    """tp.yaml open and untouched; a text editor (or a git pull) sets the resize to 1280 and saves. Back in the
    window the canvas still said 640, and Ctrl+Enter rendered the 640 the file no longer held. Untouched here, the
    window reads the file again (one undo step) and the log says so; with edits of its own here it keeps them and
    says the file changed (Save asks before replacing it), once."""
    path = tmp_path / "tp.yaml"
    shutil.copy(EXAMPLE, path)
    w = make_window(Document.load(path, registry))
    assert w.doc.graph.nodes["resize"].params["width"] == 640
    path.write_text(path.read_text().replace("width: 640", "width: 1280"))
    _back_to(w, monkeypatch)
    assert w.doc.graph.nodes["resize"].params["width"] == 1280
    assert not w.doc.modified and not w.doc.changed_on_disk()
    said = w.log.toPlainText()
    assert "tp.yaml changed on disk" in said and "Ctrl+Z" in said
    w.doc.undo.undo()                                   # what was open comes back, as any undo
    assert w.doc.graph.nodes["resize"].params["width"] == 640

    w.doc.undo.redo()
    w.controller.set_param("pattern", "frames", 12)     # an edit of its own here
    path.write_text(path.read_text().replace("width: 1280", "width: 1920"))
    _back_to(w, monkeypatch)
    _back_to(w, monkeypatch)
    assert w.doc.graph.nodes["pattern"].params["frames"] == 12 and w.doc.graph.nodes["resize"].params["width"] == 1280
    warned = [line for line in w.log.toPlainText().splitlines() if "unsaved" in line]
    assert len(warned) == 1 and "Save asks" in warned[0], warned


def _failing_run(win):
    """A pattern into a node titled 'Matte grade' that fails, run: (pattern, that node)."""
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    c.set_param(pat, "frames", 2)
    bad = c.add_node("test.mismatch", (300, 0))
    c.set_title(bad, "Matte grade")
    c.connect(pat, "video", bad, "video")
    job = win.run([bad])
    assert win.runs.wait_idle(30) and job.state == "failed"
    return pat, bad


def test_the_log_names_a_failed_node_as_the_canvas_titles_it(win, tmp_path):
    """A run whose 'Matte grade' failed: the log said 'mismatch failed: …  go to mismatch' and the history's label
    '→ mismatch', an id the canvas shows nowhere (the node reads 'Matte grade'), and the run's last line '1 node(s)
    failed', naming none. They name it as the canvas does, as undo does (Controller.named)."""
    pat, bad = _failing_run(win)
    said = win.log.toPlainText()
    assert "Matte grade failed: ValueError: the plate is 32x32" in said and "go to Matte grade" in said, said
    assert f"{bad} failed" not in said and "node(s)" not in said and said.rstrip().endswith("Matte grade failed"), said
    assert win.runs.history[-1].label.endswith("→ Matte grade"), win.runs.history[-1].label


def test_a_model_folder_named_in_config_yaml_while_the_editor_is_open_is_looked_in(win, tmp_path, monkeypatch):
    """A ComfyUI workflow's VAE is 'not in the model folders: … add the folder that holds it to KINOGRAPH_MODELS or to
    model_dirs in config.yaml'. The artist adds ~/ComfyUI/models there and comes back to the window: the loader stayed
    marked missing and Ctrl+Enter refused the run until the editor was restarted (config.yaml was read once per
    process). The file is read again when it changed."""
    from graph_engine import config
    from tests.model_stub import stub
    monkeypatch.delenv("KINOGRAPH_MODELS", raising=False)
    comfy = tmp_path / "ComfyUI" / "models"
    (comfy / "vae").mkdir(parents=True)
    stub(comfy / "vae" / "my_wan_vae.safetensors")
    config.config_dir().mkdir(parents=True, exist_ok=True)
    (config.config_dir() / "config.yaml").write_text("disk_cache_gb: 20\n")
    config.settings.cache_clear()                               # (what other tests read)
    assert config.settings() == {"disk_cache_gb": 20}           # read once, as a first run reads it
    c = win.controller
    vae = c.add_node("load.vae", (0, 0))
    c.set_param(vae, "name", "my_wan_vae.safetensors")
    assert list(win.scene.nodes[vae].missing) == ["name"]
    (config.config_dir() / "config.yaml").write_text(f"disk_cache_gb: 20\nmodel_dirs: [{tmp_path / 'ComfyUI'}]\n")
    _back_to(win, monkeypatch)
    assert win.scene.nodes[vae].missing == {}
    assert win.doc.missing_files() == []
    config.settings.cache_clear()


def test_a_failed_run_is_said_where_the_run_was_started(win, tmp_path):
    """Ctrl+Enter, a render of minutes, and back at the desk: the bar beside ▶ Run read 'idle' as after a good run,
    the status bar nothing; the failure was in the Log (a closed dock, or scrolled away) and on a red badge that on a
    300-node graph was off screen. The bar says the last run failed and at which node until the next run, the status
    bar why; a run that goes through reads 'idle' again."""
    pat, _ = _failing_run(win)
    assert win.queue_label.text().strip() == "idle · the last run failed at Matte grade (see the Log)"
    assert win.statusBar().currentMessage() == ("Run failed at Matte grade: ValueError: the plate is 32x32 but the "
                                                "matte is 64x64: resize one of them")
    job = win.run([pat])
    assert win.runs.wait_idle(30) and job.state == "done"
    assert win.queue_label.text().strip() == "idle"


def test_a_recovered_workflows_problems_name_no_line_of_the_autosave(make_window, registry, tmp_path):
    """Killed mid-edit, reopened, the work recovered: the Log said 'def.yaml:12: node pattern: width …', a line of
    the autosave (its header line first, the graph as edited) named as a line of the artist's own file, where line 12
    holds something else. A recovered workflow's problems name their node, as an import's do."""
    from app.editor.autosave import Autosaver, find_recoveries, recover
    path = tmp_path / "tp.yaml"
    shutil.copy(EXAMPLE, path)
    doc = Document.load(path, registry)
    doc.push("wide", [SetParam("pattern", "width", 10 ** 6)])
    saver = Autosaver(doc, 10 ** 6, tmp_path / "recovery")
    saver.save_now()
    saver._lock.unlock()                                # what the OS does to a killed process's lock
    (rec,) = find_recoveries(tmp_path / "recovery")
    back = recover(rec, registry)
    said = [str(p) for p in back.problems]
    assert any(s.startswith("node pattern: ") and "width" in s for s in said), said
    assert not any("tp.yaml:" in s for s in said), said
    w = make_window(back)
    assert "node Test Pattern: " in w.log.toPlainText()      # as the canvas titles it (rev41i)
    back.undo.setClean()
    saver.stop()


def test_the_viewers_notes_name_nodes_as_the_canvas_titles_them(win, qtbot, tmp_path):
    """A run's render in the viewer, then an edit above it: 'A is out of date: press V to recompute save_video', and a
    look that failed 'mismatch could not be computed', ids the canvas shows nowhere beside 'Save Video' and 'Matte
    grade'. The viewer names them as the canvas does."""
    from test_editor import chain
    p, r, s = chain(win, frames=2, size=16, out=tmp_path / "a.mkv")
    win.run()
    assert win.runs.wait_idle(30)
    qtbot.waitUntil(lambda: win.viewer.sources["A"] is not None, timeout=10000)
    win.controller.set_param(p, "width", 24)
    qtbot.waitUntil(lambda: "out of date" in win.viewer.canvas.note, timeout=10000)
    assert win.viewer.canvas.note == "A is out of date: press V to recompute Save Video", win.viewer.canvas.note
    bad = win.controller.add_node("test.mismatch", (0, 300))
    win.controller.set_title(bad, "Matte grade")
    win.controller.connect(p, "video", bad, "video")
    win.view_node(bad, "B")
    assert win.runs.wait_idle(30)
    qtbot.waitUntil(lambda: "could not be computed" in win.viewer.canvas.note, timeout=10000)
    assert win.viewer.canvas.note.startswith("Matte grade could not be computed: ValueError"), win.viewer.canvas.note


def test_deleting_many_selected_nodes_rebuilds_the_panel_once(win, monkeypatch):
    """Ctrl+A, Delete on a 300-node graph: each selected node removed changed the selection, and the properties were
    rebuilt 300 times ('299 nodes selected', '298 …', then the workflow page looking for every model file), the
    window frozen for seconds. Once, after the delete; its undo (every node back, selected) once too."""
    c = win.controller
    ids = [c.add_node("video.resize", (i * 10.0, 0)) for i in range(40)]
    win._select_all()
    shown = []
    real = win.properties.show_selection
    monkeypatch.setattr(win.properties, "show_selection", lambda sel: (shown.append(list(sel)), real(sel)))
    win.delete(True)
    assert shown == [[]] and not win.doc.graph.nodes
    win._step_history(-1)
    assert len(shown) == 2 and sorted(shown[1]) == sorted(ids)


def test_a_b_shorter_than_a_says_it_ended_instead_of_passing_its_last_frame_off_as_now(qtbot):
    """A/B of a 6-frame take against a 3-frame one, at frame 5: B showed its frame 2 beside A's 5 with nothing on the
    picture saying so (the label above read '6 vs 3 frames' once), and a reviewer compared two moments as one. Past its
    end B is drawn dimmed, and its tag says it ended and which frame is held; at frames both have, 'B' as before."""
    import numpy as np
    from PySide6.QtGui import QImage
    from app.editor.viewer import ViewerPanel
    from graph_engine.clip import Clip
    v = ViewerPanel()
    v.resize(480, 320)
    qtbot.addWidget(v)
    v.show()
    qtbot.waitExposed(v)
    try:
        white = np.full((6, 16, 32, 3), 255, np.uint8)
        v.set_source("A", Clip.from_array(np.zeros_like(white)), "a")
        v.set_source("B", Clip.from_array(white[:3]), "b")
        qtbot.waitUntil(lambda: v.canvas.images["B"] is not None and v.canvas.images["A"] is not None)
        v.seek(1)
        qtbot.waitUntil(lambda: not v._waiting)
        assert v.canvas.slot_tag("B") == "B"
        lit = v.canvas.grab().toImage().convertToFormat(QImage.Format_RGB888)
        v.seek(5)
        qtbot.waitUntil(lambda: not v._waiting)
        assert v.canvas.slot_tag("B") == "B ended: its last frame (2) held"
        held = v.canvas.grab().toImage().convertToFormat(QImage.Format_RGB888)
        x, y = round(v.canvas.width() * 0.8), v.canvas.height() // 2
        assert held.pixelColor(x, y).red() < lit.pixelColor(x, y).red() == 255       # dimmed past its end
    finally:
        v.shutdown()


def test_the_status_bar_names_nodes_as_the_canvas_titles_them(win, tmp_path):
    """V on a Save Video with nothing connected said 'save_video has nothing to show yet', and a plate dropped on the
    canvas 'Added load_video: connect its output …': ids the canvas shows nowhere."""
    s = win.controller.add_node("io.save_video", (0, 0))
    win.controller.set_title(s, "Hero render")
    win.view_node(s, "A")
    assert win.statusBar().currentMessage() == "Hero render has nothing to show yet: connect its input"
    plate = tmp_path / "plate.mp4"
    plate.write_bytes(b"")
    win.drop_files([str(plate)])
    assert win.statusBar().currentMessage().startswith("Added Load Video: connect its output"), \
        win.statusBar().currentMessage()


def test_a_group_pasted_into_another_workflow_lands_clear_and_comes_selected(make_window, registry):
    """Sample and Empty Latent grouped in default.yaml, copied, Ctrl+V in tp.yaml's window: the nodes were put clear of
    tp.yaml's, but their group's frame was not counted, and came down over tp.yaml's Save Video (a frame carries what
    stands in it when dragged); and only the nodes came selected, so dragging them into place left the frame behind.
    The frame lands clear of every node there, and is selected with its nodes."""
    example = EXAMPLE.parent / "default.yaml"
    a = make_window(Document.load(example, registry))
    b = make_window(Document.load(EXAMPLE, registry))
    a.scene.select_nodes(["latent", "sample"])
    a.group_selection()
    a.copy()
    b.view.setFocus()
    ids = b.paste()
    (gid,) = b.scene.groups
    frame = b.scene.groups[gid].scene_rect()
    assert not [n for n in ("pattern", "resize", "save") if frame.intersects(b.scene.nodes[n].sceneBoundingRect())]
    assert b.scene.groups[gid].isSelected() and sorted(b.scene.selected_nodes()) == sorted(ids)
    a.doc.undo.setClean()
    b.doc.undo.setClean()


def test_a_window_closed_before_its_first_frame_is_drawn_raises_nothing(registry, qtbot, tmp_path):
    """A window opened and closed at once (Ctrl+W on a run reopened from the history by mistake): the first view's
    framing and the panel's fitting, put off until the window had its size, then ran on a deleted canvas and printed
    'Internal C++ object (GraphView) already deleted' tracebacks. They go with the window."""
    from PySide6.QtCore import QCoreApplication
    from app.editor.settings import EditorSettings
    from app.editor.window import MainWindow
    w = MainWindow(Document.load(EXAMPLE, registry), settings=EditorSettings(tmp_path / "editor.json"))
    w.show()
    w.scene.select_nodes(["resize"])            # the panel fits its height once laid out
    w.doc.undo.setClean()
    w.close()
    w.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    with qtbot.captureExceptions() as raised:
        qtbot.wait(20)
    assert not raised, raised
