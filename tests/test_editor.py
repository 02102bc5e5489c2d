"""The node editor, driven as a user would (offscreen Qt): edits through the canvas and the
controller, undo of each, clipboard, files, running with per-node status, cancelling,
autosave recovery and the node search. Any Qt warning fails a test."""
import os
import time

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox  # noqa: E402

from graph_engine import Param  # noqa: E402
from graph_engine.node_api import build_spec  # noqa: E402
from graph_engine.registry import Registry, default_registry  # noqa: E402
from graph_engine.types import FLOAT, VIDEO  # noqa: E402
from graph_engine.workflow import parse_workflow, to_data  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()      # a binding that corrupts refcounts would crash the run, not fail a test

from app.editor import rules, window as window_mod  # noqa: E402
from app.editor.autosave import find_recoveries  # noqa: E402
from app.editor.controller import Refused  # noqa: E402
from app.editor.document import Document  # noqa: E402
from app.editor.settings import EditorSettings  # noqa: E402
from app.editor.window import MainWindow, offer_recovery  # noqa: E402
from tests.editor_run import run_past_the_precheck  # noqa: E402

# The offscreen platform cannot resize native windows; that one notice is not a warning about our code.
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


# -- test-only node types ------------------------------------------------------------------------
def _slow(ctx, video: VIDEO, steps: int = Param(400, min=1, max=100000)) -> VIDEO:
    """Waits in small steps, reporting progress and honouring cancellation."""
    for i in range(steps):
        ctx.progress(i, steps)
        time.sleep(0.005)
    return video


def _seeded(ctx, seed: int = Param(5, min=0, max=1000, kind="seed"),
            amount: float = Param("0:(0), 24:(2)", kind="schedule"),
            frames: int = Param(25, min=2, max=100)) -> FLOAT:
    """A number from a seed and a schedule."""
    return float(seed) + amount(frames - 1)


def _spec(fn, type_name):
    return build_spec(fn, type_name, title="", category="Test", version=1, outputs=None, output=False,
                      expensive=False, migrations={}, device="cpu", temporal_radius=None)


def registry_with(**fns):
    """The default node types plus test-only ones, {type name: function}."""
    reg = Registry()
    reg.specs.update(default_registry().specs)
    for name, fn in fns.items():
        reg.add(_spec(fn, name.replace("_", ".", 1)))
    return reg


@pytest.fixture(scope="module")
def registry():
    return registry_with(test_slow=_slow, test_seeded=_seeded)


@pytest.fixture(autouse=True)
def no_modal_dialogs(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError(f"a modal dialog would block the test: {a[1:3]}")
    monkeypatch.setattr(QMessageBox, "question", refuse)
    monkeypatch.setattr(QMessageBox, "warning", refuse)


@pytest.fixture
def make_window(qtbot, registry, tmp_path, request):
    made = []

    def make(doc=None, autosave_ms=None):
        w = MainWindow(doc or Document(registry=registry), settings=EditorSettings(tmp_path / "editor.json"),
                       autosave_ms=autosave_ms)
        w.resize(1600, 1000)        # the geometry these tests click in (the offscreen screen is smaller)
        w.show()
        qtbot.waitExposed(w)
        w.view.resetTransform()
        made.append(w)
        return w

    yield make
    for w in made + [x for x in window_mod.WINDOWS if x not in made]:
        w.runs.cancel(clear_queue=True)
        w.doc.undo.setClean()
        w.close()
        w.deleteLater()
    # A closed window lives on until deleted, and Qt kept polishing every one of them: the 17th test of
    # test_editor_session.py spent 12 s re-styling the windows the 16 before it had closed (3 s alone).
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    capture = getattr(request.node, "qt_log_capture", None)
    bad = [r.message for r in (capture.records if capture else []) if r.matches_level("WARNING") and not r.ignored]
    assert not bad, f"Qt warnings: {bad}"


@pytest.fixture
def win(make_window):
    return make_window()


def chain(w, frames=8, size=32, out=None):
    """pattern -> resize -> save, laid out left to right."""
    c = w.controller
    p = c.add_node("generate.test_pattern", (0, 0))
    r = c.add_node("video.resize", (300, 0))
    s = c.add_node("io.save_video", (600, 0))
    c.set_param(p, "frames", frames)
    c.set_param(p, "width", size)
    c.set_param(p, "height", size)
    c.set_param(r, "width", size // 2)
    c.set_param(r, "height", size // 2)
    c.set_param(s, "path", str(out or "unused.mp4"))
    c.set_param(s, "codec", "ffv1")
    c.connect(p, "video", r, "video")
    c.connect(r, "video", s, "video")
    return p, r, s


def snapshot(w):
    return to_data(w.doc.graph, w.doc.registry)


# -- mouse ---------------------------------------------------------------------------------------
def _mouse(widget, kind, pos, button, buttons, mods=Qt.NoModifier):
    pos = QPointF(pos)
    QApplication.sendEvent(widget, QMouseEvent(kind, pos, QPointF(widget.mapToGlobal(pos)), button, buttons, mods))


def drag(view, a, b, mods=Qt.NoModifier, steps=6):
    """Press at scene point a, move to b in steps, release; with buttons held as a real drag has."""
    vp = view.viewport()
    pa, pb = QPointF(view.mapFromScene(a)), QPointF(view.mapFromScene(b))
    _mouse(vp, QEvent.MouseButtonPress, pa, Qt.LeftButton, Qt.LeftButton, mods)
    for i in range(1, steps + 1):
        _mouse(vp, QEvent.MouseMove, pa + (pb - pa) * (i / steps), Qt.NoButton, Qt.LeftButton, mods)
    _mouse(vp, QEvent.MouseButtonRelease, pb, Qt.LeftButton, Qt.NoButton, mods)
    QApplication.processEvents()


def port(w, node, name, is_input):
    return w.scene.nodes[node].port_scene_pos(name, is_input)


# -- creating, connecting, deleting, each undone ---------------------------------------------------
def test_create_node_then_undo_and_redo(win):
    nid = win.controller.add_node("video.resize", (40, 60))
    g = win.doc.graph
    assert nid in g.nodes and nid in win.scene.nodes
    assert g.ui[nid]["pos"] == [40, 60]
    assert g.nodes[nid].params == {"width": 512, "height": 0, "method": "area", "fit": "stretch"}
    assert win.doc.modified
    win.doc.undo.undo()
    assert nid not in g.nodes and nid not in win.scene.nodes and not win.doc.modified
    win.doc.undo.redo()
    assert win.scene.nodes[nid].pos() == QPointF(40, 60)


def test_connect_by_dragging_and_refusal_with_reason(win):
    c = win.controller
    p = c.add_node("generate.test_pattern", (0, 0))
    r = c.add_node("video.resize", (300, 0))
    img = c.add_node("io.save_image", (300, 250))
    win.view.centerOn(QPointF(300, 100))
    drag(win.view, port(win, p, "video", False), port(win, r, "video", True))
    assert win.doc.graph.inputs[r]["video"] == (p, "video")
    assert f"{r}.video" in win.scene.links
    steps = win.doc.undo.count()

    drag(win.view, port(win, r, "video", False), port(win, img, "image", True))
    assert "image" not in win.doc.graph.inputs.get(img, {})
    assert win.doc.undo.count() == steps
    assert "VIDEO cannot connect to IMAGE" in win.statusBar().currentMessage()
    assert win.statusBar().currentMessage().endswith(": take one frame of the clip with video.frame")
    with pytest.raises(Refused, match="VIDEO cannot connect to IMAGE"):
        c.connect(r, "video", img, "image")
    r2 = c.add_node("video.reverse", (600, 0))
    c.connect(r, "video", r2, "video")
    with pytest.raises(Refused, match="loop"):
        c.connect(r2, "video", r, "video")
    win.doc.undo.undo()
    win.doc.undo.undo()

    win.doc.undo.undo()
    assert r not in win.doc.graph.inputs or not win.doc.graph.inputs[r]
    assert f"{r}.video" not in win.scene.links


def test_a_number_wired_onto_a_params_field_sets_it_through_a_link(win):
    """A node's numbers can feed another's settings (video.size's width into video.resize's; ComfyUI's GetImageSize
    into a widget): dropping the wire on the field links it, the field shows where its value comes from and no
    longer edits, a socket at its edge ends the wire, and dragging the wire away types the value in again. A
    field that must be typed in (a path) does not take it."""
    c, g = win.controller, win.doc.graph
    p = c.add_node("generate.test_pattern", (0, 0))
    size = c.add_node("video.size", (0, 250))
    r = c.add_node("video.resize", (300, 0))
    save = c.add_node("io.save_video", (300, 300))
    c.connect(p, "video", size, "video")
    win.view.centerOn(QPointF(300, 150))
    item = win.scene.nodes[r]
    field = item.mapToScene(item.param_rect("width").center())
    drag(win.view, port(win, size, "width", False), field)
    assert g.inputs[r]["width"] == (size, "width") and f"{r}.width" in win.scene.links
    assert item.param_at(item.mapFromScene(field)) is None          # the field no longer edits
    win.scene.select_nodes([r])
    QApplication.processEvents()
    assert "width" not in win.properties.editors and "height" in win.properties.editors
    assert port(win, r, "width", True).y() == field.y() and item.port_at(item.mapFromScene(port(win, r, "width", True))) \
        == ("width", True)
    save_item = win.scene.nodes[save]
    drag(win.view, port(win, size, "width", False), save_item.mapToScene(save_item.param_rect("path").center()))
    assert "path" not in g.inputs.get(save, {})
    assert win.statusBar().currentMessage() == "Not connected: save_video has no input that takes INT"
    with pytest.raises(Refused, match=r"parameter 'path' \(path\) is typed in, not linked"):
        c.connect(size, "width", save, "path")
    drag(win.view, port(win, r, "width", True), QPointF(900, 600))
    assert "width" not in g.inputs.get(r, {}) and item.param_at(item.mapFromScene(field)) == "width"
    assert "width" in win.properties.editors


def test_drag_a_connected_input_away_disconnects(win):
    p, r, s = chain(win)
    drag(win.view, port(win, s, "video", True), QPointF(900, 300))
    assert "video" not in win.doc.graph.inputs.get(s, {})
    win.doc.undo.undo()
    assert win.doc.graph.inputs[s]["video"] == (r, "video")


def test_delete_reconnects_and_undo_restores(win):
    p, r, s = chain(win)
    before = snapshot(win)
    win.scene.select_nodes([r])
    win.delete(reconnect=True)
    g = win.doc.graph
    assert r not in g.nodes and g.inputs[s]["video"] == (p, "video")
    win.doc.undo.undo()
    assert snapshot(win) == before
    win.scene.select_nodes([r])
    win.delete(reconnect=False)
    assert "video" not in g.inputs.get(s, {})
    win.doc.undo.undo()
    assert snapshot(win) == before and set(win.scene.links) == {f"{r}.video", f"{s}.video"}


def test_knife_cuts_links_and_node_dropped_on_link_is_inserted(win):
    c = win.controller
    p = c.add_node("generate.test_pattern", (0, 0))
    s = c.add_node("io.save_video", (500, 0))
    c.connect(p, "video", s, "video")
    rev = c.add_node("video.reverse", (200, 300))
    y = port(win, p, "video", False).y()
    win.view.centerOn(QPointF(300, 100))
    item = win.scene.nodes[rev]
    grab = item.mapToScene(QPointF(60, 10))
    steps = win.doc.undo.count()
    drag(win.view, grab, QPointF(330, y))
    g = win.doc.graph
    assert g.inputs[rev]["video"] == (p, "video") and g.inputs[s]["video"] == (rev, "video")
    assert win.doc.undo.count() == steps + 1        # the move and the splice are one step
    a, b = port(win, rev, "video", False), port(win, s, "video", True)
    mid = (a + b) / 2
    drag(win.view, mid + QPointF(0, -60), mid + QPointF(0, 60), mods=Qt.AltModifier)
    assert "video" not in g.inputs.get(s, {})


def test_inline_field_drag_and_node_move_are_one_undo_step_each(win):
    p, r, s = chain(win)
    item = win.scene.nodes[s]
    field = item.mapToScene(item.param_rect("crf").center())
    steps = win.doc.undo.count()
    drag(win.view, field, field + QPointF(80, 0), steps=10)
    crf = win.doc.graph.nodes[s].params["crf"]
    assert crf > 19 and win.doc.undo.count() == steps + 1
    drag(win.view, item.mapToScene(QPointF(50, 10)), item.mapToScene(QPointF(50, 10)) + QPointF(100, 140), steps=8)
    assert win.doc.graph.ui[s]["pos"] == [700, 140] and win.doc.undo.count() == steps + 2
    win.doc.undo.undo()
    win.doc.undo.undo()
    assert win.doc.graph.nodes[s].params["crf"] == 19 and win.scene.nodes[s].pos() == QPointF(600, 0)


def test_groups_notes_reroutes_collapse_bypass_undo(win):
    p, r, s = chain(win)
    before = snapshot(win)
    c = win.controller
    gid = c.group_selection([p, r], "Source")
    note = c.add_note((0, 300), "remember the seed")
    win.scene.add_reroute(win.scene.links[f"{s}.video"], QPointF(450, 120))
    c.set_collapsed([r])
    c.set_bypass([r])
    g = win.doc.graph
    assert g.ui["_groups"][gid]["title"] == "Source" and gid in win.scene.groups
    assert g.ui["_notes"][note]["text"] == "remember the seed" and note in win.scene.notes
    assert g.ui["_reroutes"][f"{s}.video"] == [[450, 120]] and len(win.scene.reroute_items) == 1
    assert win.scene.nodes[r].collapsed and g.nodes[r].bypass
    for _ in range(5):
        win.doc.undo.undo()
    assert snapshot(win) == before and not win.scene.groups and not win.scene.notes and not win.scene.reroute_items


def test_align_distribute_and_auto_layout(win):
    c = win.controller
    ids = [c.add_node("video.reverse", (x, y)) for x, y in ((0, 0), (50, 200), (400, 90))]
    c.align(ids, "top")
    assert {win.doc.graph.ui[n]["pos"][1] for n in ids} == {0}
    c.distribute(ids, "horizontal")
    xs = sorted(win.doc.graph.ui[n]["pos"][0] for n in ids)
    assert xs[1] - xs[0] == xs[2] - xs[1]
    p, r, s = chain(win)
    c.auto_layout([p, r, s])
    pos = [win.doc.graph.ui[n]["pos"][0] for n in (p, r, s)]
    assert pos[0] < pos[1] < pos[2]


# -- clipboard and files -----------------------------------------------------------------------------
def test_copy_paste_round_trip(win):
    p, r, s = chain(win)
    win.scene.select_nodes([p, r])
    text = win.copy()
    assert QGuiApplication.clipboard().text() == text
    wf, problems = parse_workflow(text, None, win.doc.registry)
    assert not problems and set(wf.graph.nodes) == {p, r}
    new = win.paste()
    g = win.doc.graph
    assert len(new) == 2 and not set(new) & {p, r}
    np_, nr = new
    assert g.nodes[np_].params == g.nodes[p].params and g.nodes[nr].params == g.nodes[r].params
    assert g.inputs[nr]["video"] == (np_, "video")
    assert set(win.scene.selected_nodes()) == set(new)
    win.doc.undo.undo()
    assert set(g.nodes) == {p, r, s}


def test_save_load_round_trip_equals_model(win, tmp_path, registry):
    p, r, s = chain(win)
    c = win.controller
    c.group_selection([p, r], "Source")
    c.add_note((0, 300), "a note\nwith two lines")
    c.set_reroutes(f"{s}.video", [(450, 120), (500, 160)])
    c.set_collapsed([s])
    c.set_title(r, "Half size")
    c.set_seed_mode(c.add_node("test.seeded", (0, 500)), "seed", "increment")
    path = tmp_path / "wf.yaml"
    assert win._save_to(path) and not win.doc.modified
    assert path.read_text() == win.doc.text()
    loaded = Document.load(path, registry)
    assert to_data(loaded.graph, registry) == snapshot(win) and not loaded.problems
    w2 = MainWindow(loaded, settings=win.settings)
    try:
        assert set(w2.scene.groups) == set(win.scene.groups) and set(w2.scene.notes) == set(win.scene.notes)
        assert w2.scene.nodes[s].collapsed and len(w2.scene.reroute_items) == 2
    finally:
        w2.close()


def test_drop_rendered_png_opens_its_workflow(win, tmp_path):
    from PIL import Image, PngImagePlugin
    src = Document(registry=win.doc.registry)
    src.graph.add_node("generate.test_pattern", "pat", {"frames": 4}, ui={"pos": [0, 0]})
    meta = PngImagePlugin.PngInfo()
    meta.add_text("kinograph_workflow", src.text())
    png = tmp_path / "render.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png, pnginfo=meta)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(png))])
    vp = win.view.viewport()
    QApplication.sendEvent(vp, QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    QApplication.sendEvent(vp, QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    assert list(win.doc.graph.nodes) == ["pat"]
    assert win.doc.graph.nodes["pat"].params == {"frames": 4} and win.doc.path is None


# -- running -------------------------------------------------------------------------------------------
def test_run_from_the_gui_reports_each_node(win, tmp_path):
    out = tmp_path / "out.mkv"
    p, r, s = chain(win, out=out)
    seen = []
    win.runs.statusChanged.connect(lambda n, st: seen.append((n, st.state if st else None)))
    job = win.run()
    assert win.runs.wait_idle(60), "the run did not finish"
    assert job.state == "done", job.error
    assert out.is_file() and out.stat().st_size > 0
    for n in (p, r, s):
        assert (n, "queued") in seen and win.scene.nodes[n].status.state in ("done", "cached")
    assert (s, "running") in seen
    assert win.runs.history == [job] and job.outputs == [str(out)]
    ran, _ = parse_workflow(job.yaml, None, win.doc.registry)
    assert to_data(ran.graph, win.doc.registry) == snapshot(win)
    win.controller.set_param(r, "width", 8)
    job2 = win.run([r])
    assert win.runs.wait_idle(60) and job2.state == "done"
    assert "parameter width changed from 16 to 8" in win.explain(r)
    assert win.runs.status[p].state == "cached"


def test_cancel_a_running_job(win):
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    slow = c.add_node("test.slow", (300, 0))
    c.connect(pat, "video", slow, "video")
    job = win.run([slow])
    deadline = time.monotonic() + 30
    while (win.runs.status.get(slow) is None or win.runs.status[slow].state != "running") and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.005)
    assert win.runs.status[slow].state == "running"
    t0 = time.monotonic()
    win.runs.cancel()
    assert win.runs.wait_idle(30)
    assert job.state == "cancelled" and win.runs.status[slow].state == "cancelled"
    assert time.monotonic() - t0 < 1.5      # cancelled between steps, not after 400 of them


def test_failed_node_badge_and_go_to_node(win, monkeypatch):
    run_past_the_precheck(monkeypatch)
    c = win.controller
    load = c.add_node("io.load_video", (0, 0))
    c.set_param(load, "path", "/nonexistent/clip.mp4")
    save = c.add_node("io.save_video", (300, 0))
    c.connect(load, "video", save, "video")
    job = win.run()
    assert win.runs.wait_idle(60) and job.state == "failed"
    st = win.runs.status[load]
    assert st.state == "failed" and "clip.mp4" in st.message
    assert win.runs.status[save].state == "skipped"
    assert f"go to {c.named(load)}" in win.log.toPlainText()
    win.scene.clearSelection()
    win.log.nodeClicked.emit(load)
    assert win.scene.selected_nodes() == [load]


def test_seed_modes_apply_per_run(win):
    c = win.controller
    n = c.add_node("test.seeded", (0, 0))
    c.set_seed_mode(n, "seed", "increment")
    win.run()
    assert win.runs.wait_idle(30)
    win.run()
    assert win.runs.wait_idle(30)
    assert win.doc.graph.nodes[n].params["seed"] == 7
    assert [j.workflow.graph.nodes[n].params["seed"] for j in win.runs.history] == [6, 7]


def test_run_workflow_goes_past_a_node_parked_half_wired(win, tmp_path):
    """Run Workflow failed as a whole over a node the artist had set aside unconnected."""
    out = tmp_path / "out.mkv"
    chain(win, out=out)
    parked = win.controller.add_node("video.resize", (0, 400))
    job = win.run()
    assert win.runs.wait_idle(60) and job.state == "done", job.error
    assert out.stat().st_size > 0
    assert f"not run: {parked} (a required input is not connected" in win.log.toPlainText()


def test_viewer_shows_exact_frames_and_ab_wipe(win):
    from graph_engine.api import Session
    from graph_engine.workflow import Workflow
    p, r, s = chain(win)
    win.controller.add_node("io.save_image", (0, 400))      # half-wired elsewhere: must not block the view
    win.view_node(r, "A")
    assert win.runs.wait_idle(30)
    qbot_wait(lambda: win.viewer.canvas.images["A"] is not None)
    assert win.viewer.length == 8
    win.viewer.seek(5)
    qbot_wait(lambda: not win.viewer._waiting)
    img = win.viewer.canvas.images["A"].convertToFormat(QImage.Format_RGB888)
    rows = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    got = rows[:, :img.width() * 3].reshape(img.height(), img.width(), 3)
    res = Session().run(Workflow(win.doc.graph.subgraph([p, r])), targets=[r])
    assert np.array_equal(got, res.outputs[r]["video"].frame(5))
    win.view_node(p, "B")
    assert win.runs.wait_idle(30)
    qbot_wait(lambda: win.viewer.canvas.images["B"] is not None)
    assert win.viewer.canvas.wipe == 0.5


def qbot_wait(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        QApplication.processEvents()
        time.sleep(0.005)


# -- properties, schedules, search ------------------------------------------------------------------
def test_properties_schedule_curve_drag_is_one_step(win):
    n = win.controller.add_node("test.seeded", (0, 0))
    win.scene.select_nodes([n])
    ed = win.properties.editors["amount"]
    curve = ed.curve
    curve.resize(300, 140)
    start = win.doc.undo.count()
    pts = curve._key_points()
    a = pts[1]
    _mouse(curve, QEvent.MouseButtonPress, a, Qt.LeftButton, Qt.LeftButton)
    for dy in (-5, -10, -20, -30):
        _mouse(curve, QEvent.MouseMove, a + QPointF(0, dy), Qt.NoButton, Qt.LeftButton)
    _mouse(curve, QEvent.MouseButtonRelease, a + QPointF(0, -30), Qt.LeftButton, Qt.NoButton)
    value = win.doc.graph.nodes[n].params["amount"]
    assert value.startswith("0:(0), 24:(") and value != "0:(0), 24:(2)"
    assert float(value.split("24:(")[1].rstrip(")")) > 2
    assert win.doc.undo.count() == start + 1
    assert ed.edit.text() == value
    win.doc.undo.undo()
    assert win.doc.graph.nodes[n].params["amount"] == "0:(0), 24:(2)" and ed.edit.text() == "0:(0), 24:(2)"
    ed.edit.setText("0:(1), 10:(")
    ed._typed()
    assert ed.error.isVisibleTo(ed) and "^" in ed.error.text()


def test_a_deforum_schedule_keeps_to_its_range_in_the_curve_and_says_so_when_typed_past_it(win):
    """The loop's schedules declared no min or max: hybrid_alpha's curve (0.5) showed -0.5..1.5, a drag took it to
    1.3 and a typed 1.3 was taken without a word; the run refused either only when it reached the loop."""
    n = win.controller.add_node("generate.feedback", (0, 0))
    win.scene.select_nodes([n])
    ed = win.properties.editors["hybrid_alpha"]
    curve = ed.curve
    assert curve._range == (0.0, 1.0)           # 0.5 the whole clip: 0..1 around it, not 0.5 +- 1
    win.controller.set_param(n, "hybrid_alpha", "0:(0.5), 24:(0.9)")
    curve.resize(300, 140)
    a = curve._key_points()[1]
    _mouse(curve, QEvent.MouseButtonPress, a, Qt.LeftButton, Qt.LeftButton)
    _mouse(curve, QEvent.MouseMove, a + QPointF(0, -100), Qt.NoButton, Qt.LeftButton)
    _mouse(curve, QEvent.MouseButtonRelease, a + QPointF(0, -100), Qt.LeftButton, Qt.NoButton)
    assert win.doc.graph.nodes[n].params["hybrid_alpha"] == "0:(0.5), 24:(1)"
    assert not ed.error.isVisibleTo(ed)
    ed.edit.setText("0:(0.5), 24:(1.3)")
    ed._typed()
    assert ed.error.isVisibleTo(ed) and ed.error.text() == "keyframe 24: 1.3 is out of range (0.0..1.0)"
    problems = [p for p in win.doc.validate() if "hybrid_alpha" in str(p)]
    assert problems and "keyframe 24: 1.3 is out of range (0.0..1.0)" in str(problems[0])


def test_search_palette_filters_by_type_and_works_from_the_keyboard(win, qtbot):
    c = win.controller
    p = c.add_node("generate.test_pattern", (0, 0))
    win.view.open_palette(win.view.rect().center(), link_from=(p, "video", False))
    pal = win.view.palette
    found = pal.results()
    reg = win.doc.registry
    assert "video.resize" in found and "io.save_video" in found
    assert "generate.test_pattern" not in found and "io.save_image" not in found
    assert all(rules.first_input_taking(reg.get(t), VIDEO) for t in found)
    qtbot.keyClicks(pal.edit, "resz")
    assert pal.results()[0] == "video.resize"
    qtbot.keyClick(pal.edit, Qt.Key_Return)
    assert not pal.isVisible()
    new = [n for n in win.doc.graph.nodes if n != p]
    assert len(new) == 1 and win.doc.graph.inputs[new[0]]["video"] == (p, "video")
    assert win.settings.recent_nodes[0] == "video.resize"
    img = c.add_node("io.save_image", (0, 300))
    win.view.open_palette(win.view.rect().center(), link_from=(img, "image", True))
    # (math.switch's ANY output feeds any input, an IMAGE one too)
    assert all(any(o.type.name in ("IMAGE", "ANY") for o in reg.get(t).outputs.values()) for t in pal.results())
    qtbot.keyClick(pal.edit, Qt.Key_D, Qt.ControlModifier)
    assert pal.results()[0] in win.settings.favourites
    qtbot.keyClick(pal.edit, Qt.Key_Escape)
    assert not pal.isVisible()


# -- autosave and recovery ---------------------------------------------------------------------------
def test_autosave_and_recovery_after_a_crash(make_window, tmp_path, registry, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))
    w = make_window(autosave_ms=50)
    p, r, s = chain(w)
    w.controller.set_param(r, "method", "nearest")
    qbot_wait(lambda: w.autosaver._file is not None and w.autosaver._saved_revision == w.doc.revision)
    expected = snapshot(w)
    w.autosaver.timer.stop()
    w.autosaver._lock.unlock()        # what the OS does to a crashed process's lock
    recs = find_recoveries()
    assert len(recs) == 1 and recs[0].path is None
    (rw,) = offer_recovery(registry=registry, ask=lambda rec: True)
    try:
        assert to_data(rw.doc.graph, registry) == expected and rw.doc.modified
        assert find_recoveries() == []
    finally:
        rw.doc.undo.setClean()
        rw.close()


def test_camera_path_preview_follows_edits(win):
    n = win.controller.add_node("motion.camera_path", (0, 0))
    win.controller.set_param(n, "frames", 12)
    win.controller.set_param(n, "preset", "orbit_left")
    win.scene.select_nodes([n])
    qbot_wait(lambda: win.properties.preview_label.pixmap() is not None and
              not win.properties.preview_label.pixmap().isNull())
    first = win.properties.preview_label.pixmap().toImage()
    win.controller.set_param(n, "preset", "dolly_in")
    qbot_wait(lambda: win.properties.preview_label.pixmap().toImage() != first)


def test_viewer_plays_every_frame_in_order_and_loops(win):
    p, r, s = chain(win, frames=6)
    win.view_node(r, "A")
    assert win.runs.wait_idle(30)
    qbot_wait(lambda: win.viewer.canvas.images["A"] is not None)
    shown = []
    win.viewer.frameShown.connect(lambda slot, i, img: shown.append(i))
    win.viewer.fps_box.setValue(200)
    win.viewer.every_box.setChecked(True)       # (keeping time, 200 fps skips frames here)
    win.viewer.play()
    qbot_wait(lambda: len(shown) >= 9)
    win.viewer.pause()
    assert shown[:9] == [1, 2, 3, 4, 5, 0, 1, 2, 3]
    last = win.viewer.index
    win.viewer.step(-1)
    assert win.viewer.index == max(0, last - 1) and not win.viewer.playing


def test_library_and_help_overlay(win):
    lib = win.library
    lib.filter.setText("reverse")
    leaf = lib.tree.topLevelItem(0).child(0)
    lib.tree.itemActivated.emit(leaf, 0)
    assert [i.type for i in win.doc.graph.nodes.values()] == ["video.reverse"]
    win.help.toggle()
    assert win.help.isVisible() and "Frame All" in win.help.findChild(QLabel).text()
    win.help.toggle()
    assert not win.help.isVisible()


def test_unsaved_changes_guard(win, monkeypatch, tmp_path):
    path = tmp_path / "guarded.yaml"
    assert win._save_to(path)
    win.controller.add_node("video.reverse", (0, 0))
    answers = [QMessageBox.Cancel, QMessageBox.Save]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers.pop(0))
    assert not win.close() and win.isVisible() and win.doc.modified
    assert win.close() and not answers
    assert "video.reverse" in path.read_text()


def test_runs_queue_behind_each_other_with_new_seeds(win):
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    slow = c.add_node("test.slow", (300, 0))
    c.set_param(slow, "steps", 30)
    c.connect(pat, "video", slow, "video")
    seeded = c.add_node("test.seeded", (0, 300))
    first = win.run()
    second = win.queue_new_seeds()
    assert first.state == "running" and win.runs.pending == [second]
    assert win.runs.wait_idle(60)
    assert [j.state for j in win.runs.history] == ["done", "done"]
    seeds = [j.workflow.graph.nodes[seeded].params["seed"] for j in (first, second)]
    assert seeds[0] == 5 and seeds[1] == win.doc.graph.nodes[seeded].params["seed"]


def test_dragging_a_group_carries_its_nodes_in_one_step(win):
    p, r, s = chain(win)
    gid = win.controller.group_selection([p, r], "Source")
    grp = win.scene.groups[gid]
    win.view.centerOn(grp.sceneBoundingRect().center())
    title = grp.mapToScene(QPointF(60, 10))
    steps = win.doc.undo.count()
    drag(win.view, title, title + QPointF(100, 60))
    ui = win.doc.graph.ui
    assert ui[p]["pos"] == [100, 60] and ui[r]["pos"] == [400, 60] and ui[s]["pos"] == [600, 0]
    assert ui["_groups"][gid]["rect"][:2] == [round(grp.x()), round(grp.y())]
    assert win.doc.undo.count() == steps + 1
    win.doc.undo.undo()
    assert ui[p]["pos"] == [0, 0] and win.scene.nodes[r].pos() == QPointF(300, 0)


def test_inline_editors_type_values_and_titles(win, qtbot):
    p, r, s = chain(win)
    item = win.scene.nodes[r]
    field = item.mapToScene(item.param_rect("width").center())
    drag(win.view, field, field, steps=1)          # a click: type the value instead of scrubbing
    ed = win.view._editor
    assert ed is not None and ed.text() == "16"
    qtbot.keyClicks(ed, "24")
    qtbot.keyClick(ed, Qt.Key_Return)
    assert win.doc.graph.nodes[r].params["width"] == 24
    win.view.rename("node", r)
    qtbot.keyClicks(win.view._editor, "Half size")
    qtbot.keyClick(win.view._editor, Qt.Key_Return)
    assert win.doc.graph.nodes[r].title == "Half size" and "Half size" in win.scene.nodes[r].title
    field = item.mapToScene(item.param_rect("height").center())
    drag(win.view, field, field, steps=1)
    qtbot.keyClicks(win.view._editor, "-3")
    qtbot.keyClick(win.view._editor, Qt.Key_Return)
    assert win.doc.graph.nodes[r].params["height"] == 16
    assert "out of range" in win.statusBar().currentMessage()


def test_far_zoom_draws_blocks_in_batches_and_still_selects(win):
    from app.editor import theme
    p, r, s = chain(win)
    win.scene.select_nodes([r])
    win.view.zoom_by(0.2 / win.view.zoom())
    win.view.centerOn(win.scene.nodes_rect().center())
    img = win.view.viewport().grab().toImage()
    assert win.scene.far
    at = win.view.mapFromScene(win.scene.nodes[r].sceneBoundingRect().center())
    assert img.pixelColor(at) == theme.NODE_SELECTED
    centre = win.scene.nodes[p].sceneBoundingRect().center()
    drag(win.view, centre, centre, steps=1)
    assert win.scene.selected_nodes() == [p]
    win.view.resetTransform()
    win.view.viewport().grab()
    assert not win.scene.far
