"""What the editor shows is what renders, and it makes sense to a person: the properties panel of
an imported sampler, the viewer's failure message, drops, duplicates, tooltips and the help sheet
(issue: probe of stop 14). Driven through the real window offscreen; any Qt warning fails a test."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPointF, Qt  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402
from test_editor import qbot_wait, registry_with  # noqa: E402
from tests.editor_run import run_past_the_precheck  # noqa: E402

make_window, no_modal_dialogs = test_editor.make_window, test_editor.no_modal_dialogs
DATA = Path(__file__).resolve().parent / "data" / "comfyui"

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


# -- a ComfyUI seed is wider than 32 bits ----------------------------------------------------------
def test_an_imported_samplers_big_seed_is_shown_typed_and_incremented_exactly(win, qtbot):
    win.open_path(DATA / "wan_t2v.json")
    g = win.doc.graph
    assert g.nodes["k_sampler_3"].params["seed"] == 878361741413693
    win.scene.select_nodes(["k_sampler_3"])         # raised OverflowError; the panel showed no parameter
    eds = win.properties.editors
    assert {"steps", "seed", "start_step", "end_step", "add_noise"} <= set(eds)
    seed = eds["seed"].spin
    assert seed.text() == "878361741413693"
    win.properties.commit_pending()                 # what a run does first: nothing may change
    assert g.nodes["k_sampler_3"].params["seed"] == 878361741413693 and not win.doc.undo.canUndo()
    seed.setFocus()
    seed.lineEdit().selectAll()
    qtbot.keyClicks(seed, "18446744073709551615")
    qtbot.keyClick(seed, Qt.Key_Return)
    assert g.nodes["k_sampler_3"].params["seed"] == 18446744073709551615
    qtbot.keyClick(seed, Qt.Key_Down)
    assert g.nodes["k_sampler_3"].params["seed"] == 18446744073709551614
    win.controller.set_param("k_sampler_3", "seed", 878361741413693)
    win.controller.set_seed_mode("k_sampler_3", "seed", "increment")
    win.controller.next_seeds()
    assert g.nodes["k_sampler_3"].params["seed"] == 878361741413694, "increment wrapped the seed to 0"
    assert seed.text() == "878361741413694"
    from app.editor.view import parse_field
    spec = win.doc.spec("k_sampler_3")
    assert parse_field(spec.params["seed"], "878361741413693123") == 878361741413693123   # typed on the node


# -- the viewer's failure is the viewed node's own -------------------------------------------------
def test_a_failed_view_names_its_own_missing_file_not_an_earlier_runs(win, tmp_path, monkeypatch):
    run_past_the_precheck(monkeypatch)
    c = win.controller
    clip = c.add_node("io.load_video", (0, 0))
    c.set_param(clip, "path", str(tmp_path / "missing_clip.mp4"))
    save = c.add_node("io.save_video", (300, 0))
    c.set_param(save, "path", str(tmp_path / "out.mp4"))
    c.connect(clip, "video", save, "video")
    job = win.run()
    assert win.runs.wait_idle(60) and job.state == "failed"
    still = c.add_node("io.load_image", (0, 300))
    c.set_param(still, "path", str(tmp_path / "missing_still.png"))
    win.view_node(still, "A")
    assert win.runs.wait_idle(30)
    qbot_wait(lambda: win.viewer.canvas.alert)
    note = win.viewer.canvas.note
    assert "missing_still.png" in note and "missing_clip.mp4" not in note, note
    grade = c.add_node("color.grade", (300, 300))
    c.connect(still_video := c.add_node("io.load_video", (0, 600)), "video", grade, "video")
    c.set_param(still_video, "width", -3)
    win.view_node(grade, "B")
    assert win.runs.wait_idle(30)
    qbot_wait(lambda: "Colour Grade could not" in win.viewer.canvas.note)
    assert f"Colour Grade could not be computed: {c.named(still_video)}: parameter 'width' -3" in win.viewer.canvas.note, \
        "the failure of the node upstream reads as the viewed node's own"


# -- dropped footage becomes a loader --------------------------------------------------------------
def _drop_files(w, paths, at=(300, 200)):
    from PySide6.QtCore import QMimeData, QPoint, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    vp = w.view.viewport()
    enter = QDragEnterEvent(QPoint(*at), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(vp, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(vp, QDropEvent(QPointF(*at), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    return w.view.mapToScene(QPoint(*at))


def _clip(path, frames=6):
    import av
    import numpy as np
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=24)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"
        for i in range(frames):
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.full((24, 32, 3), 30 * i, np.uint8), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def test_dropped_footage_and_a_still_become_loader_nodes_where_they_were_dropped(win, tmp_path):
    from PIL import Image
    from app.editor import window as window_mod
    import numpy as np
    clip, still = tmp_path / "take 17.mkv", tmp_path / "plate.jpg"
    _clip(clip)
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(still)
    win.controller.add_node("generate.test_pattern", (0, 0))
    before = set(win.doc.graph.nodes)
    at = _drop_files(win, [clip, still])
    g = win.doc.graph
    new = [n for n in g.nodes if n not in before]
    assert [g.nodes[n].type for n in new] == ["io.load_video", "io.load_image"], win.statusBar().currentMessage()
    assert [g.nodes[n].params["path"] for n in new] == [str(clip), str(still)]
    assert g.ui[new[0]]["pos"] == [round(at.x()), round(at.y())] and g.ui[new[1]]["pos"][1] > g.ui[new[0]]["pos"][1]
    assert window_mod.WINDOWS == [win] and set(win.scene.selected_nodes()) == set(new)
    win.view_node(new[0], "A")
    assert win.runs.wait_idle(30)
    qbot_wait(lambda: win.viewer.length == 6)
    win.doc.undo.undo()
    assert set(g.nodes) == before, "the drop was more than one undo step"


def test_a_dropped_lut_or_cdl_becomes_the_node_that_applies_it(win, tmp_path):
    """A colourist drags looks from the file browser: a .cube was taken for a workflow to open and
    refused; .cube/.3dl become color.lut, .cc/.ccc/.cdl color.cdl, with the file as their path."""
    look, cdl = tmp_path / "show look.cube", tmp_path / "A001C003.cc"
    look.write_text("LUT_3D_SIZE 2\n" + "0 0 0\n1 0 0\n0 1 0\n1 1 0\n0 0 1\n1 0 1\n0 1 1\n1 1 1\n")
    cdl.write_text("<ColorCorrection id='a'><SOPNode><Slope>1.1 1 1</Slope></SOPNode></ColorCorrection>")
    _drop_files(win, [look, cdl])
    g = win.doc.graph
    assert [(n.type, n.params["path"]) for n in g.nodes.values()] == [("color.lut", str(look)), ("color.cdl", str(cdl))]
    assert "connect footage to their video input" in win.statusBar().currentMessage()
    from app.editor import window as window_mod
    assert window_mod.WINDOWS == [win]          # nothing was opened as a workflow


# -- an imported ComfyUI graph: no node covers another ----------------------------------------------
@pytest.mark.parametrize("name", ["wan_i2v.json", "svd_i2v.json", "ltxv_i2v.json"])
def test_an_imported_comfyui_workflow_has_no_node_on_top_of_another(win, name):
    from PySide6.QtCore import QRectF
    _drop_files(win, [DATA / name])
    items = list(win.scene.nodes.values())
    assert len(items) > 5
    rects = {i.node_id: QRectF(i.pos().x(), i.pos().y(), i.w, i.h) for i in items}
    covered = [(a, b) for k, a in enumerate(rects) for b in list(rects)[k + 1:] if rects[a].intersects(rects[b])]
    assert not covered, f"nodes drawn on top of each other: {covered}"
    assert not win.doc.undo.canUndo() and not win.doc.modified


# -- copies never lie exactly on each other --------------------------------------------------------
def test_duplicating_twice_and_pasting_twice_at_one_spot_never_stack_copies(win, qtbot):
    c = win.controller
    a = c.add_node("generate.test_pattern", (0, 0))
    b = c.add_node("color.grade", (300, 0))
    c.connect(a, "video", b, "video")
    c.set_param(b, "exposure", 1.5)
    win.scene.select_nodes([a, b])
    win.view.setFocus()
    for _ in range(2):
        win.scene.select_nodes([a, b])
        qtbot.keyClick(win.view, Qt.Key_D, Qt.ControlModifier)
    g = win.doc.graph
    for _ in range(2):
        c.paste(c.copy_text([b]), at=(0, 400))
    assert len(g.nodes) == 8
    spots = [tuple(g.ui[n]["pos"]) for n in g.nodes]
    assert len(set(spots)) == len(spots), f"copies stacked on one another: {spots}"
    copies = [n for n in g.nodes if g.nodes[n].type == "color.grade" and n != b]
    assert all(g.nodes[n].params["exposure"] == 1.5 for n in copies)
    assert sum(1 for n in copies if g.inputs.get(n, {}).get("video", (None,))[0] not in (None, a)) == 2, \
        "a duplicated pair lost its own link"


# -- a failed node says why where its red badge is -------------------------------------------------
def test_hovering_a_failed_node_tells_why_it_failed(win, tmp_path, monkeypatch):
    run_past_the_precheck(monkeypatch)
    from PySide6.QtCore import QEvent
    c = win.controller
    load = c.add_node("io.load_video", (0, 0))
    c.set_param(load, "path", str(tmp_path / "take_17.mp4"))
    grade = c.add_node("color.grade", (300, 0))
    c.connect(load, "video", grade, "video")
    job = win.run()
    assert win.runs.wait_idle(60) and job.state == "failed"
    tips = {}
    for n in (load, grade):
        item = win.scene.nodes[n]
        header = item.mapToScene(QPointF(item.w / 3, 8))
        vp = win.view.viewport()
        for dx in (0, 3):       # two moves: the first enters the node, the second hovers in it
            test_editor._mouse(vp, QEvent.MouseMove, QPointF(win.view.mapFromScene(header)) + QPointF(dx, 0),
                               Qt.NoButton, Qt.NoButton)
        tips[n] = item.toolTip()
    assert "take_17.mp4" in tips[load] and tips[load].startswith("failed"), tips[load]
    assert f"not run: {c.named(load)} failed" in tips[grade], tips[grade]      # as the canvas titles it (rev41i)


# -- the shortcut sheet says what the keys do, and nothing reads through it ---------------------------
def test_the_shortcut_sheet_says_what_j_k_l_do_and_the_canvas_does_not_read_through(win, qtbot):
    from PySide6.QtWidgets import QLabel
    n = win.controller.add_node("generate.test_pattern", (0, 0))
    item = win.scene.nodes[n]
    win.view.centerOn(item.mapToScene(item.boundingRect().center()))
    win.help.toggle()
    text = win.help.findChild(QLabel).text()
    assert "play backwards" in text and "step back /" not in text, "J is said to step back; it plays backwards"
    assert "Space" in text and "one frame back" in text
    shot = win.grab().toImage()
    at = win.view.mapTo(win, win.view.mapFromScene(item.mapToScene(QPointF(item.w / 2, 13))))
    bg = shot.pixelColor(at.x(), at.y())
    assert max(abs(bg.red() - 10), abs(bg.green() - 11), abs(bg.blue() - 13)) <= 3, \
        f"the node's header reads through the sheet: {bg.getRgb()}"


# -- a value the choices no longer hold ------------------------------------------------------------
def test_a_choice_the_list_does_not_hold_is_shown_as_it_is_and_replaced_by_a_pick(make_window, registry,
                                                                                  tmp_path):
    from app.editor.document import Document
    path = tmp_path / "newer.yaml"
    path.write_text("kinograph: 1\nnodes:\n  sample:\n    type: generate.sample\n"
                    "    params: {sampler: res_2s, steps: 4}\n")
    w = make_window(Document.load(path, registry))
    w.scene.select_nodes(["sample"])
    box = w.properties.editors["sampler"].box
    assert "res_2s" in box.currentText(), f"the field reads {box.currentText()!r}"
    w.properties.commit_pending()
    assert w.doc.graph.nodes["sample"].params["sampler"] == "res_2s" and not w.doc.modified
    box.setCurrentIndex(box.findData("euler"))          # what picking 'euler' from the list does
    assert w.doc.graph.nodes["sample"].params["sampler"] == "euler"
    assert [box.itemText(i) for i in range(box.count())] == [str(c) for c in w.doc.spec("sample").params["sampler"].choices]
    w.doc.undo.undo()
    assert "res_2s" in box.currentText()


# -- a picture the last run could not make again is marked --------------------------------------------
def test_the_viewer_marks_its_picture_out_of_date_when_the_run_fails_upstream(win, tmp_path, monkeypatch):
    run_past_the_precheck(monkeypatch)
    c = win.controller
    take = tmp_path / "take.mkv"
    _clip(take)
    load = c.add_node("io.load_video", (0, 0))
    c.set_param(load, "path", str(take))
    grade = c.add_node("color.grade", (300, 0))
    c.connect(load, "video", grade, "video")
    save = c.add_node("io.save_video", (600, 0))
    c.set_param(save, "path", str(tmp_path / "out.mkv"))
    c.set_param(save, "codec", "ffv1")
    c.connect(grade, "video", save, "video")
    win.view_node(grade, "A")
    assert win.runs.wait_idle(30)
    qbot_wait(lambda: win.viewer.canvas.images["A"] is not None)
    assert not win.viewer.canvas.alert
    take.rename(tmp_path / "take_moved.mkv")
    job = win.run()
    assert win.runs.wait_idle(60) and job.state == "failed"
    note = win.viewer.canvas.note
    assert win.viewer.canvas.alert and "out of date" in note and f"{c.named(grade)} skipped" in note and "take.mkv" in note, note


# -- a pasted path reads as the file it names --------------------------------------------------------
@pytest.mark.parametrize("typed", ['  {p}  ', '"{p}"', "'{p}'\n", "{url}"])
def test_a_path_pasted_with_blanks_quotes_or_as_a_file_url_names_the_file(win, qtbot, tmp_path, typed):
    from PySide6.QtCore import QUrl
    from app.editor.view import parse_field
    clip = tmp_path / "my takes" / "take 17.mkv"
    clip.parent.mkdir()
    _clip(clip)
    text = typed.format(p=clip, url=QUrl.fromLocalFile(str(clip)).toString())
    load = win.controller.add_node("io.load_video", (0, 0))
    win.scene.select_nodes([load])
    field = win.properties.editors["path"].edit
    field.setFocus()
    field.selectAll()
    qtbot.keyClicks(field, text.replace("\n", ""))
    qtbot.keyClick(field, Qt.Key_Return)
    assert win.doc.graph.nodes[load].params["path"] == str(clip)
    assert field.text() == str(clip)
    assert parse_field(win.doc.spec(load).params["path"], text) == str(clip)     # typed on the node
    win.view_node(load, "A")
    assert win.runs.wait_idle(30)
    qbot_wait(lambda: win.viewer.length == 6 or win.viewer.canvas.alert)
    assert not win.viewer.canvas.alert, win.viewer.canvas.note


# -- the node on screen deleted ------------------------------------------------------------------------
def test_deleting_the_node_on_screen_marks_its_picture_and_no_new_node_takes_it_over(win, qtbot):
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    for k, v in (("frames", 4), ("width", 32), ("height", 32)):
        c.set_param(pat, k, v)
    grade = c.add_node("color.grade", (300, 0))
    c.connect(pat, "video", grade, "video")
    win.view_node(grade, "A")
    assert win.runs.wait_idle(30)
    qbot_wait(lambda: win.viewer.canvas.images["A"] is not None)
    win.scene.select_nodes([grade])
    win.view.setFocus()
    qtbot.keyClick(win.view, Qt.Key_Delete)
    assert grade not in win.doc.graph.nodes
    assert win.viewer.canvas.alert and f"{grade} was deleted" in win.viewer.canvas.note
    new = c.add_node("color.grade", (300, 300))       # takes the free id 'grade'
    assert new == grade
    c.connect(pat, "video", new, "video")
    c.set_param(new, "exposure", 2.0)
    qbot_wait(lambda: not win._refresh_view.isActive())
    assert win.runs.wait_idle(30)
    assert f"{grade} was deleted" in win.viewer.canvas.note, "a new node with the same id took the viewer over"
    for _ in range(4):
        win.doc.undo.undo()          # exposure, link, add, delete
    assert grade in win.doc.graph.nodes
    win.scene.select_nodes([grade])
    qtbot.keyClick(win.view, Qt.Key_V)
    assert win.runs.wait_idle(30)
    qbot_wait(lambda: not win.viewer.canvas.alert and win.viewer.canvas.images["A"] is not None)


# -- Select All is all ---------------------------------------------------------------------------------
def test_select_all_then_copy_takes_the_sticky_notes_too(win, qtbot):
    from PySide6.QtGui import QGuiApplication
    c = win.controller
    a = c.add_node("generate.test_pattern", (0, 0))
    c.add_note((0, 300), "client wants it warmer")
    win.view.setFocus()
    qtbot.keyClick(win.view, Qt.Key_A, Qt.ControlModifier)
    assert win.scene.selected_nodes() == [a] and len(win.scene.selected_notes()) == 1
    qtbot.keyClick(win.view, Qt.Key_C, Qt.ControlModifier)
    assert "client wants it warmer" in QGuiApplication.clipboard().text()


# -- a number held out of range reads as it is ----------------------------------------------------------
def test_a_number_out_of_range_in_the_file_reads_as_it_is_in_the_panel(make_window, registry, tmp_path):
    from app.editor.document import Document
    path = tmp_path / "hand_edited.yaml"
    path.write_text("kinograph: 1\nnodes:\n  load:\n    type: io.load_video\n    params: {path: a.mp4, width: -3}\n"
                    "  grade:\n    type: color.grade\n    inputs: {video: load.video}\n    params: {exposure: 9.5}\n")
    w = make_window(Document.load(path, registry))
    w.scene.select_nodes(["grade"])
    assert w.properties.editors["exposure"].spin.text() == "9.5"      # read '6.0000' (clamped)
    w.scene.select_nodes(["load"])
    width = w.properties.editors["width"].spin
    assert width.text() == "-3", f"the field reads {width.text()!r}"     # read 'auto'
    w.properties.commit_pending()
    assert w.doc.graph.nodes["load"].params["width"] == -3 and not w.doc.modified
    w.controller.set_param("load", "width", 0)
    assert width.text() == "auto" and width.minimum() == 0, "the range stayed widened"


def test_the_viewer_shows_the_plate_timecode(make_window, qtbot, tmp_path):
    """A camera file stamped 01:02:03:04 showed 00:00:00:03 at its frame 3: the editor's timecode did not
    match the one the editor and the render (io.save_video) carry."""
    import subprocess
    from nodes.io.video_write import ffmpeg_exe
    plate = tmp_path / "A001C003.mov"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=s=64x48:d=1:r=24",
                    "-c:v", "libx264", "-timecode", "01:02:03:04", str(plate)], check=True)
    w = make_window()
    w.show()
    qtbot.waitExposed(w)
    c = w.controller
    load = c.add_node("io.load_video", (0, 0))
    c.set_param(load, "path", str(plate))
    w.view_node(load, "A")
    assert w.runs.wait_idle(30)
    qbot_wait(lambda: w.viewer.canvas.images["A"] is not None)
    w.viewer.canvas.setFocus()
    for _ in range(3):
        qtbot.keyClick(w.viewer.canvas, Qt.Key_Right)
    qbot_wait(lambda: not w.viewer._waiting)
    assert w.viewer.timecode_label.text() == "01:02:03:07"



def test_the_theme_applied_again_leaves_the_application_as_it_is():
    """run_editor applies the theme on every call, and each Qt setter re-polishes every widget of every open window
    (with a test session's windows open, three --screenshot runs took 470 s). An application that has the theme
    already is left as it is; one whose style sheet was changed gets it back. A stand-in application records the
    setters called, so the session's own QApplication (and its open windows) are not restyled by this test."""
    from app.editor import theme

    class App:
        def __init__(self):
            self.sheet, self.pal, self.calls = "", None, []

        def styleSheet(self):
            return self.sheet

        def palette(self):
            return self.pal

        def setStyle(self, name):
            self.calls.append("style")

        def setPalette(self, p):
            self.pal = p
            self.calls.append("palette")

        def setStyleSheet(self, sheet):
            self.sheet = sheet
            self.calls.append("sheet")
    app = App()
    theme.apply(app)
    assert app.calls == ["style", "palette", "sheet"] and app.sheet and "@THEME@" not in app.sheet
    app.calls.clear()
    theme.apply(app)
    assert app.calls == []
    app.sheet = ""
    theme.apply(app)
    assert app.calls == ["style", "palette", "sheet"]
