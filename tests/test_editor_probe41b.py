"""Traps earlier probes noticed and left alone (editor41b): a queued node edited mid-run, a group frame around a node
left out of it, the view not autosaved, problems unseen at low zoom, ids in the viewer and the Log, config warnings
before the window, titles of only spaces. Driven through the real window offscreen; any Qt warning fails a test."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor_session  # noqa: E402

make_window, no_modal_dialogs, registry = (test_editor_session.make_window, test_editor_session.no_modal_dialogs,
                                           test_editor_session.registry)
win, private_config, pytestmark = test_editor_session.win, test_editor_session.private_config, test_editor_session.pytestmark


def _state(win, node):
    return getattr(win.runs.status.get(node), "state", None)


def test_a_queued_node_edited_while_its_run_goes_on_says_it_changed(win, qtbot):
    """Two slow nodes in a row, run: the second waits 'queued' while the first computes. Its steps changed meanwhile,
    the badge still said 'queued' until it finished, as if the run would render the new value. It says 'edited'
    (the run goes on with the old value) as a finished node does; an undo back shows 'queued' again."""
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    first = c.add_node("test.slow", (300, 0))
    second = c.add_node("test.slow", (600, 0))
    c.set_param(first, "steps", 100000)
    c.connect(pat, "video", first, "video")
    c.connect(first, "video", second, "video")
    win.run([second])
    qtbot.waitUntil(lambda: _state(win, first) == "running", timeout=30000)
    assert win.scene.nodes[second].status.state == "queued"
    c.set_param(second, "steps", 7)
    qtbot.waitUntil(lambda: win.scene.nodes[second].status.state == "edited", timeout=2000)
    st = win.scene.nodes[second].status
    assert "old" in st.message and "next run" in st.message, st.message
    win.doc.undo.undo()
    qtbot.waitUntil(lambda: win.scene.nodes[second].status.state == "queued", timeout=2000)
    win._cancel_run()
    assert win.runs.wait_idle(30)


def test_ctrl_g_frames_only_the_selected_nodes(win):
    """Sample and Empty Latent selected, Subject Consensus between them left out, Ctrl+G: the frame drawn around the
    two held the third too, so dragging the group carried it and copying the group took it. The frame holds only
    what was selected (the node left out is moved just outside, in the same undo step), and the status bar says so."""
    c = win.controller
    a = c.add_node("generate.test_pattern", (0, 0))
    b = c.add_node("generate.test_pattern", (900, 700))
    left_out = c.add_node("generate.test_pattern", (450, 350))
    c.set_title(left_out, "Subject Consensus")
    before = dict(win.doc.graph.ui[left_out])
    win.scene.select_nodes([a, b])
    win.group_selection()
    gid = next(iter(win.scene.groups))
    win.scene.clearSelection()
    win.scene.groups[gid].setSelected(True)
    nodes, _, groups = win.scene.selection_with_groups()
    assert sorted(nodes) == sorted([a, b]) and groups == [gid]
    assert "Subject Consensus" in win.statusBar().currentMessage()
    win.doc.undo.undo()                                 # one step: no group, the node back where it was
    assert not win.scene.groups and win.doc.graph.ui[left_out] == before


def _view(w):
    top_left = w.view.mapToScene(0, 0)
    return round(top_left.x()), round(top_left.y()), round(w.view.zoom(), 3)


def test_the_view_is_autosaved_for_recovered_work_and_the_reopened_file(make_window, registry, qtbot, tmp_path):
    """Zoomed in to 200% on the grade, an edit, then the editor is killed: the recovered workflow, and the file
    opened again, came back at the default view, the artist hunting for where they were. The autosave keeps the
    view, and the settings get it at each autosave tick (not only when the window closes, which a crash skips)."""
    import shutil
    from pathlib import Path
    from app.editor.autosave import find_recoveries, recover
    from app.editor.document import Document
    path = tmp_path / "tp.yaml"
    shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "test_pattern.yaml", path)
    a = make_window(Document.load(path, registry))
    qtbot.wait(10)                                      # its first view is framed
    a.view.zoom_by(2.0 / a.view.zoom())
    a.view.centerOn(a.scene.nodes["resize"].sceneBoundingRect().center())
    a.controller.set_param("resize", "width", 320)
    was = _view(a)
    a.autosaver.tick()
    a.autosaver._lock.unlock()                          # as the kill leaves it
    rec = next(r for r in find_recoveries() if r.path == path)
    b = make_window(recover(rec, registry))
    b.view.frame_legible()
    assert _view(b) == was
    c = make_window(Document.load(path, registry))
    c.view.frame_legible()
    assert _view(c) == was


def _red_pixels(win, node, zoom):
    """How many pixels of `node` drawn at `zoom` are the canvas' red for a problem."""
    import numpy as np
    from PySide6.QtGui import QImage, QPainter
    from app.editor import theme
    area = win.scene.nodes[node].sceneBoundingRect().adjusted(-8, -8, 8, 8)
    img = QImage(int(area.width() * zoom), int(area.height() * zoom), QImage.Format_RGB32)
    img.fill(0)
    p = QPainter(img)
    win.scene.render(p, img.rect().toRectF(), area)
    p.end()
    px = np.frombuffer(img.constBits(), np.uint8, img.width() * img.height() * 4).reshape(-1, 4)[:, :3].astype(int)
    red = theme.REFUSED
    return int((np.abs(px - [red.blue(), red.green(), red.red()]).sum(axis=1) < 40).sum())


def test_a_node_with_a_problem_shows_it_when_zoomed_out(make_window, registry, tmp_path, qtbot):
    """A template opened at 55%: nodes are drawn without their fields there, so the out-of-range width (and a model
    file that is not there) said in red on the field showed only in the properties panel. Zoomed out, such a node
    still shows a red mark, and hovering it says why; a node without a problem shows none."""
    from pathlib import Path
    from PySide6.QtCore import QPointF, Qt
    from app.editor.document import Document
    text = (Path(__file__).resolve().parents[1] / "examples" / "test_pattern.yaml").read_text()
    path = tmp_path / "tp.yaml"
    path.write_text(text.replace("width: 640", "width: -5").replace("out/test_pattern.mp4", "out/tp.mp4"))
    w = make_window(Document.load(path, registry))
    for zoom in (0.55, 0.3):
        assert _red_pixels(w, "resize", zoom) > 20, zoom
        assert _red_pixels(w, "pattern", zoom) == 0, zoom
    item = w.scene.nodes["resize"]
    w.view.resetTransform()
    w.view.zoom_by(0.55)
    w.view.centerOn(item)
    at = w.view.mapFromScene(item.mapToScene(QPointF(item.w / 2, item.h - 10)))      # over where a field would be
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication
    vp = w.view.viewport()
    for dx in (0, 2):                                   # in, then over it
        q = QPointF(at.x() + dx, at.y())
        QApplication.sendEvent(vp, QMouseEvent(QEvent.MouseMove, q, vp.mapToGlobal(q), Qt.NoButton, Qt.NoButton,
                                               Qt.NoModifier))
    assert "out of range" in item.toolTip()


def test_the_viewer_and_the_estimate_lines_name_nodes_as_the_canvas_titles_them(win, qtbot):
    """The Log, the run bar and the viewer's notes say 'Plate', but the viewer's source line read
    'A: test_pattern.video' and the Log's estimate 'estimate: k_sampler_3: 4 passes ...': ids the canvas shows
    nowhere. Both use the title now."""
    from nodes.generate.estimate import Estimate, SamplerWork
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    c.set_param(pat, "frames", 2)
    c.set_title(pat, "Plate")
    win.view_node(pat, "A")
    qtbot.waitUntil(lambda: win.viewer.sources["A"] is not None, timeout=30000)
    assert win.viewer.sources["A"].label == "Plate.video"
    assert win.viewer.labels["A"].text().startswith("A: Plate.video")
    work = SamplerWork(pat, unknown="no denoiser files")
    win.runs._estimated(None, Estimate([work], [work.describe()]))
    assert "estimate: Plate: not estimated: no denoiser files" in win.log.toPlainText()


def test_config_warnings_said_before_the_window_opens_are_in_its_log(make_window, tmp_path, caplog):
    """config.yaml with a typo, the editor started from a menu: the warning came while the editor started (its
    caches sized, the workflow read), before any window could show it, so it went to a terminal nobody had. The
    first window's Log says it; the terminal still gets it."""
    from graph_engine import config
    from app.editor import model_notes
    config.config_dir().mkdir(parents=True, exist_ok=True)
    (config.config_dir() / "config.yaml").write_text("disk_cache_gb: 20\nmemory_cahce_mb: 512\n")
    config.settings.cache_clear()
    model_notes.hold_early_warnings()                   # as the editor does first thing
    try:
        assert config.settings() == {"disk_cache_gb": 20}
        assert "memory_cahce_mb" in caplog.text           # where it went before, it still goes
        w = make_window()
        said = [line for line in w.log.toPlainText().splitlines() if "memory_cahce_mb" in line]
        assert len(said) == 1 and "config.yaml:2" in said[0], said
        assert "memory_cahce_mb" not in make_window().log.toPlainText()      # said once, not in every window
    finally:
        config.settings.cache_clear()


def test_a_title_of_only_spaces_falls_back_to_the_node_types_name(win, qtbot):
    """F2 on a node, the title cleared with spaces left in it (or a file with `title: "  "`): the canvas header, the
    Log and the run bar showed a blank where an empty title shows the type's name. They show the type's name."""
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    c.set_param(pat, "frames", 2)
    shown = c.named(pat)
    c.set_title(pat, "   ")
    assert win.scene.nodes[pat].label == shown and c.named(pat) == shown
    job = win.run([pat])
    assert f"→ {shown}" in job.label, job.label
    assert win.runs.wait_idle(30) and job.state == "done", job.error
    assert f"✔ untitled → {shown}: finished" in win.log.toPlainText(), win.log.toPlainText()
