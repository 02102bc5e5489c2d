"""A Nuke compositor's second afternoon with the editor (stop 32): numbers that read and drag as their
declarations say, frames that hold what grows inside them, a report that says a thing once, a queue with
room for its rows. Driven offscreen through the window; any Qt warning fails a test."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEvent, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QListWidgetItem  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402
from test_editor import _mouse  # noqa: E402

from app.comfyui.report import Entry, Report  # noqa: E402
from app.editor.node_item import format_value  # noqa: E402

make_window, no_modal_dialogs = test_editor.make_window, test_editor.no_modal_dialogs
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]
DATA = Path(__file__).parent / "data" / "comfyui"


@pytest.fixture
def registry():
    return test_editor.registry_with()


def _show(w, node):
    w.scene.select_nodes([node])
    return w.properties.editors


def test_a_zero_reads_as_its_declaration_says(make_window, registry):
    """A timestep range's start 0 (from pure noise) and a multi-frame upscale's radius 0 (the frame alone)
    showed 'auto', read into their help; Load Video's count 0 still reads 'all', Resize's height 'auto'."""
    w = make_window()
    c = w.controller
    for t, name, on_node, in_panel in (("condition.timestep_range", "start", "0", "0.00"),
                                       ("upscale.multiframe", "radius", "0", "0"),
                                       ("io.load_video", "count", "all", "all"), ("video.resize", "height", "auto", "auto")):
        node = c.add_node(t, (0, 0))
        c.set_param(node, name, 0)
        assert format_value(w.doc.spec(node).params[name], 0) == on_node, (t, name)
        assert _show(w, node)[name].spin.text() == in_panel, (t, name)
    # Every number's 0 reads as its declaration (Param.zero) says, and as a number where it says nothing.
    for t in registry:
        for p in registry.get(t).params.values():
            if p.type in ("int", "float"):
                assert format_value(p, 0) == (p.zero or "0"), (t, p.name)


def test_a_float_shows_the_decimals_its_step_needs_and_keeps_what_is_typed(make_window):
    """Every float read with four decimals ('temperature 6500.0000'); typed 0.12345 became 0.1235."""
    w = make_window()
    c = w.controller
    g = c.add_node("color.grade", (0, 0))
    eds = _show(w, g)
    assert eds["temperature"].spin.text() == "6500"             # 1500..15000 steps by 1
    assert eds["exposure"].spin.text() == "0.0"                 # -6..6 by 0.1
    assert eds["saturation"].spin.text() == "1.00"              # 0..3 by 0.01
    spin = eds["saturation"].spin
    spin.lineEdit().selectAll()
    QTest.keyClicks(spin.lineEdit(), "0.12345")
    QTest.keyClick(spin.lineEdit(), Qt.Key_Return)
    assert w.doc.graph.nodes[g].params["saturation"] == 0.12345
    assert spin.text() == "0.12345"
    c.set_param(g, "exposure", 1.25)
    assert _show(w, g)["exposure"].spin.text() == "1.25"



def test_a_float_that_is_not_finite_still_gets_its_decimals(registry):
    """places() looked for the point in nan's and inf's text and raised: a stranger's workflow holding `.nan`
    broke the panel's formatting. They take the step's decimals."""
    from app.editor.geometry import decimals
    p = registry.get("color.grade").params["saturation"]
    for v in (float("nan"), float("inf"), float("-inf")):
        assert decimals(p, v) == decimals(p) == 2

def _drag_field(w, node, name, pixels, mods=Qt.NoModifier):
    """Press on a field without a key held (Shift/Ctrl at the press select), drag `pixels` screen pixels
    right with `mods` held, release."""
    item = w.scene.nodes[node]
    at = item.mapToScene(item.param_rect(name).center())
    w.view.centerOn(at)
    vp = w.view.viewport()
    a = QPointF(w.view.mapFromScene(at))
    _mouse(vp, QEvent.MouseButtonPress, a, Qt.LeftButton, Qt.LeftButton)
    for i in range(1, 9):
        _mouse(vp, QEvent.MouseMove, a + QPointF(pixels * i / 8, 0), Qt.NoButton, Qt.LeftButton, mods)
    _mouse(vp, QEvent.MouseButtonRelease, a + QPointF(pixels, 0), Qt.LeftButton, Qt.NoButton, mods)
    QApplication.processEvents()
    return w.doc.graph.nodes[node].params[name]


@pytest.mark.parametrize("zoom", [1.0, 2.0])
def test_dragging_a_field_follows_its_range_with_shift_fine_and_ctrl_coarse(make_window, zoom):
    """80 px of drag moved exposure 5 stops (the whole range across the node), and more when zoomed out."""
    w = make_window()
    c = w.controller
    g = c.add_node("color.grade", (0, 0))
    w.view.scale(zoom, zoom)
    for mods, stops in ((Qt.NoModifier, 0.8), (Qt.ShiftModifier, 0.08), (Qt.ControlModifier, 6.0)):
        c.set_param(g, "exposure", 0.0)
        assert _drag_field(w, g, "exposure", 80, mods) == pytest.approx(stops, abs=1e-9), mods
    c.set_param(g, "exposure", 0.0)
    assert _drag_field(w, g, "exposure", -40) == pytest.approx(-0.4, abs=1e-9)
    assert _drag_field(w, g, "temperature", 80) == 6500 + 800         # 13500 K of range: 10 K a pixel
    r = c.add_node("upscale.multiframe", (0, 400))
    assert _drag_field(w, r, "radius", 20) == 4                       # 0..4 whole numbers: one per 10 px


def test_a_group_frame_grows_with_a_thumbnail_inside_it(make_window):
    """A node inside a frame that got a thumbnail stuck out below it, and was left behind when the frame
    was dragged; the saved rect stays as it was (the thumbnail is no part of the file either)."""
    w = make_window()
    c = w.controller
    a = c.add_node("color.grade", (0, 0))
    b = c.add_node("color.grade", (600, 0))
    gid = c.group_selection([a])
    saved = list(w.doc.graph.ui["_groups"][gid]["rect"])
    grp, item = w.scene.groups[gid], w.scene.nodes[a]
    below = grp.scene_rect().bottom() - item.sceneBoundingRect().bottom()
    img = QImage(320, 180, QImage.Format_RGB32)
    img.fill(0x336699)
    item.set_thumb(img)
    w.scene.nodes[b].set_thumb(img)                   # a node outside it grows nothing
    assert grp.scene_rect().contains(item.sceneBoundingRect())
    assert grp.scene_rect().bottom() - item.sceneBoundingRect().bottom() == pytest.approx(below)
    assert w.scene._inside([grp]) == [item]
    assert w.doc.graph.ui["_groups"][gid]["rect"] == saved
    c.set_param(a, "exposure", 1.0)                   # an edit redraws the frame, still as large
    assert grp.scene_rect().contains(item.sceneBoundingRect())
    item.set_thumb(None)
    assert [grp.x(), grp.y(), grp.w, grp.h] == saved


def test_the_import_report_says_a_shared_explanation_once():
    """Impact Pack's detector, SAM loader and detailer each repeated the same six-line explanation."""
    from app.comfyui import import_workflow
    from app.comfyui.report import APPROX, UNMAPPED
    res = import_workflow(DATA / "community" / "impact_facedetailer_simple.json", registry=test_editor.registry_with())
    text = res.report.text()
    assert text.count("Impact Pack's detailers find faces") == 1
    line = next(x for x in text.splitlines() if "Impact Pack's detailers" in x)
    assert line.startswith("NOT MAPPED") and "3 nodes: MMDetLoader #15 -> mm_det_loader_15, SAMLoader #16" in line
    assert "FaceDetailer #27" in line and text.count("previews show in Kinograph's viewer") == 1
    # Alike only in status, or alone with its note, a node keeps a line of its own.
    r = Report()
    for i, (status, note) in enumerate(((UNMAPPED, "no detector"), (APPROX, "no detector"), (UNMAPPED, "no"))):
        r.add(Entry(str(i), "X", "", status, [], [note]))
    assert r.text().splitlines() == ["NOT MAPPED             X #0: no detector", "NOT MAPPED             X #2: no",
                                     "mapped approximately   X #1: no detector"]


def test_the_queue_and_history_shows_six_runs_at_its_first_height(make_window):
    """At the bottom dock's first height (110 px) the queue & history showed about two rows."""
    w = make_window()
    test_editor.qbot_wait(lambda: getattr(w, "_laid_out", False))
    QApplication.processEvents()
    w.bottom_tabs.setCurrentWidget(w.queue)
    h = w.queue.history
    for i in range(10):
        h.addItem(QListWidgetItem(f"✔ 12:00:0{i}  #{i} render — out.mp4"))

    def seen():
        return [i for i in range(h.count()) if h.viewport().rect().contains(h.visualItemRect(h.item(i)))]
    # The docks are sized over two zero timers after the first show: wait for that layout, then judge it. With the
    # theme applied (any test that ran the editor's own start-up before this one, as the app always does) the
    # panel was four runs tall: sized from the font, not the theme's padded rows.
    try:
        test_editor.qbot_wait(lambda: len(seen()) >= 6, timeout=5.0)
    except AssertionError:
        pass
    assert len(seen()) >= 6, (len(seen()), h.viewport().height())
    assert w.view.height() > 500                      # the canvas keeps most of the window


def test_a_thumbnail_refits_only_the_frames_holding_its_node(make_window, monkeypatch):
    """Every frame was measured against every node at each thumbnail and each drag step of a field (200 nodes in
    20 frames: 24 ms a thumbnail, 5 s for a run's thumbnails): only the frames holding the node that grew are."""
    from app.editor import scene as scene_mod
    w = make_window()
    c = w.controller
    held = [[c.add_node("color.grade", (g * 1000 + i * 250, 0)) for i in range(3)] for g in range(4)]
    for nodes in held:
        c.group_selection(nodes)
    alone = c.add_node("color.grade", (0, 2000))
    measured = []
    real = scene_mod.node_size
    monkeypatch.setattr(scene_mod, "node_size", lambda *a: measured.append(a) or real(*a))
    img = QImage(320, 180, QImage.Format_RGB32)
    w.scene.nodes[alone].set_thumb(img)
    assert len(measured) == 1                       # itself, in no frame
    measured.clear()
    w.scene.nodes[held[0][0]].set_thumb(img)
    assert len(measured) == 1 + 13                  # itself, then every node once for its one frame
    grp = next(g for g in w.scene.groups.values() if g.scene_rect().contains(w.scene.nodes[held[0][0]].pos()))
    assert grp.scene_rect().contains(w.scene.nodes[held[0][0]].sceneBoundingRect())


@pytest.mark.parametrize("lo, hi, step, rate", [(0.0, 1.0, 0.01, 0.001), (0.01, 1.0, 0.01, 0.001),
                                                (0.01, 0.99, 0.01, 0.001), (-6.0, 6.0, 0.1, 0.01),
                                                (0.0, 0.25, 0.001, 0.0002), (1500.0, 15000.0, 1.0, 10.0)])
def test_a_range_a_little_short_of_a_round_one_steps_as_that_one(lo, hi, step, rate):
    """denoise (0.01..1) stepped by 0.001 and dragged at 0.0005 a pixel where a 0..1 strength takes 0.01 and 0.001."""
    from types import SimpleNamespace
    from app.editor.geometry import drag_rate, value_step
    p = SimpleNamespace(type="float", min=lo, max=hi, step=None)
    assert (value_step(p), drag_rate(p)) == (step, pytest.approx(rate))
