"""Points and a box clicked on a node's first frame in the viewer, as a compositor clicks them in ComfyUI's
PointsEditor (probe of stop 29): the text written is the one the node parses, in the picture's own pixels at any
zoom, each click one undo step; the node's mask is shown tinted over the picture. Driven offscreen; any Qt warning
fails a test."""
import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402
from test_editor import qbot_wait, registry_with  # noqa: E402

from graph_engine import Param  # noqa: E402
from graph_engine.picks import box_of, points_text  # noqa: E402
from graph_engine.types import MASK, VIDEO  # noqa: E402
from nodes.video.test_pattern import pattern_frames  # noqa: E402

make_window, no_modal_dialogs = test_editor.make_window, test_editor.no_modal_dialogs
W, H = 64, 48

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


def _boxed(ctx, video: VIDEO, points: str = Param("", kind="points"),
           negative: str = Param("", kind="negative_points"), box: str = Param("", kind="box"),
           model: str = Param("tiny", check=lambda v: None if v == "tiny" else f"model {v!r} not found")) -> MASK:
    """Stands in for SAM 2: the mask is the box."""
    m = np.zeros((video.height, video.width), np.float32)
    b = box_of(box)
    if b is not None:
        m[int(b[1]):int(b[3]), int(b[0]):int(b[2])] = 1.0
    return m


@pytest.fixture(scope="module")
def registry():
    return registry_with(test_boxed=_boxed)


@pytest.fixture(autouse=True)
def private_config(monkeypatch, tmp_path):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))


def _pixels(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format_RGB888)
    rows = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return rows[:, :img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def _settled(win):
    """The view the last edit asked for computed and on screen (the edit's timer, its job, its frame)."""
    def done():
        win.runs.wait_idle(0.01)
        return not win._refresh_view.isActive() and not any(j.state in ("queued", "running") for j in win.runs.jobs) \
            and not win.viewer._waiting and win.viewer.canvas.images["A"] is not None
    qbot_wait(done)


def test_points_and_a_box_clicked_at_200_percent_are_the_pictures_pixels_undo_and_show_the_mask_over_it(
        make_window, qtbot):
    win = make_window()
    c, g = win.controller, win.doc.graph
    pattern = c.add_node("generate.test_pattern", (0, 0))
    for k, v in (("width", W), ("height", H), ("frames", 2)):
        c.set_param(pattern, k, v)
    node = c.add_node("test.boxed", (300, 0))
    win.scene.select_nodes([node])
    win.properties.editors["points"].pick_button.click()
    assert "no picture to pick on: connect a clip or an image to its video input" in win.statusBar().currentMessage()
    assert win.viewer.canvas.picker is None
    c.connect(pattern, "video", node, "video")
    c.set_param(node, "model", "sam2.1-hiera-large")
    win.scene.select_nodes([node])
    win.viewer.wipe_box.setChecked(True)
    win.properties.editors["box"].pick_button.click()
    assert win.viewer.pick_bar.isVisible() and "drag a box around it" in win.viewer.pick_label.text()
    assert not win.viewer.wipe_box.isChecked(), "the picks are clicked on A alone, not under a wipe"
    _settled(win)
    # Refused before it ran (its model is not there): the frame is still there to pick on, the reason beside the hint.
    assert win.viewer.sources["A"].label == "boxed's picture"
    assert "No mask yet: model: model 'sam2.1-hiera-large' not found" in win.viewer.pick_label.text()
    c.set_param(node, "model", "tiny")
    _settled(win)
    assert win.viewer.sources["A"].label == "boxed.mask" and "No mask yet" not in win.viewer.pick_label.text()
    cv = win.viewer.canvas
    win.viewer.set_zoom(2.0)
    # Where pixel (x, y) of the picture lies on screen at 200%, centred in the canvas, from the canvas's size alone.
    left, top = (cv.width() - 2 * W) / 2, (cv.height() - 2 * H) / 2

    def at(x, y):
        return QPoint(round(left + 2 * x), round(top + 2 * y))

    start = win.doc.undo.count()
    qtbot.mouseClick(cv, Qt.LeftButton, pos=at(10.5, 20.5))
    qtbot.mouseClick(cv, Qt.LeftButton, pos=at(30.5, 5.5))
    qtbot.mouseClick(cv, Qt.RightButton, pos=at(50.5, 40.5))
    qtbot.mouseClick(cv, Qt.LeftButton, Qt.ShiftModifier, pos=at(3.5, 44.5))
    qtbot.mousePress(cv, Qt.LeftButton, pos=at(8, 6))
    qtbot.mouseMove(cv, at(25, 18))
    qtbot.mouseMove(cv, at(40, 30))
    qtbot.mouseRelease(cv, Qt.LeftButton, pos=at(40, 30))
    params = g.nodes[node].params
    assert (params["points"], params["negative"], params["box"]) == ("10,20; 30,5", "50,40; 3,44", "8,6,40,30")
    assert win.doc.undo.count() == start + 5, "each click and the box drag are one undo step each"
    qtbot.mouseClick(cv, Qt.RightButton, pos=at(30.5, 5.5))            # a point right-clicked goes
    qtbot.mousePress(cv, Qt.LeftButton, pos=at(40, 30))                 # a box corner dragged moves
    qtbot.mouseMove(cv, at(44, 34))
    qtbot.mouseRelease(cv, Qt.LeftButton, pos=at(44, 34))
    assert (params["points"], params["box"]) == ("10,20", "8,6,44,34")
    win.doc.undo.undo()
    assert params["box"] == "8,6,40,30" and cv.picker.box == (8, 6, 40, 30), "the box drawn follows the undo"
    win.doc.undo.undo()
    assert params["points"] == "10,20; 30,5" and cv.picker.points["points"] == [(10, 20), (30, 5)]
    win.doc.undo.redo()
    win.doc.undo.redo()
    # The node's mask (the box) over the first frame: red at half strength inside, the picture untouched outside.
    _settled(win)
    assert win.viewer.sources["A"].backdrop is not None
    pic = pattern_frames(0, 1, W, H, 2)[0].astype(np.float64)
    inside = np.zeros((H, W, 1))
    inside[6:34, 8:44] = 1
    want = (pic * (1 - 0.5 * inside) + np.array([255, 48, 48]) * 0.5 * inside + 0.5).astype(np.uint8)
    shown = _pixels(cv.images["A"])
    assert np.array_equal(shown, want)
    assert np.array_equal(shown[0], pic[0].astype(np.uint8)) and not np.array_equal(shown[10, 10], pic[10, 10])
    qtbot.keyClick(win.viewer, Qt.Key_M)                                  # the matte alone
    qbot_wait(lambda: not win.viewer._waiting)
    assert np.array_equal(_pixels(cv.images["A"])[..., 0], (inside[..., 0] * 255).astype(np.uint8))
    qtbot.keyClick(win.viewer, Qt.Key_Escape)
    assert cv.picker is None and not win.viewer.pick_bar.isVisible()
    before = dict(params)
    qtbot.mouseClick(cv, Qt.LeftButton, pos=at(20.5, 20.5))              # done: a click pans, picks nothing
    assert dict(params) == before


def test_picked_text_is_what_the_node_reads_and_a_comfyui_points_list_stays_one():
    from app.editor.picker import pick_params
    from graph_engine.registry import default_registry
    from nodes.mask.segment import parse_box, parse_points
    spec = default_registry().get("mask.track_points")
    assert pick_params(spec) == {"points": "points", "negative_points": "negative", "box": "box"}
    assert points_text([(10, 20), (30, 5)]) == "10,20; 30,5"
    as_comfy = points_text([(10, 20), (30.5, 5)], like='[{"x": 1, "y": 2}]')
    assert as_comfy == '[{"x": 10, "y": 20}, {"x": 30.5, "y": 5}]'
    # one object, its points on the first frame (frame 0), as the node reads them
    assert parse_points(as_comfy, "points") == parse_points("10,20; 30.5,5", "points") == [[(10, 20, 0), (30.5, 5, 0)]]
    assert parse_box("8,6,40,30") == [[(8, 6, 40, 30, 0)]]


def test_picking_leaves_several_objects_and_later_frames_as_written():
    """mask.track_points reads several objects ('|') and prompts on later frames ('@') that picking on the first frame
    cannot show. A click used to rewrite the parameter from what the editor could read, dropping them; such a
    parameter is now left as written and the hint says to edit it as text. Plain text is still picked."""
    from app.editor.picker import Picker
    done = []
    names = {"points": "points", "negative_points": "negative", "box": "box"}
    rich = {"points": "10,20 | 30,5@4", "negative": "1,1", "box": "2,2,9,9; 3,3,8,8@2"}
    picker = Picker("track", names, rich, lambda name, text: done.append((name, text)))
    picker._add("points", (40.2, 30.7))
    picker._set_box((0, 0, 5, 5))
    picker._add("negative_points", (7, 8))
    assert done == [("negative", "1,1; 7,8")]
    assert "points, box holds several objects or prompts on later frames" in picker.hint()
    for text in ('[[{"x": 1, "y": 2}], [{"x": 3, "y": 4}]]', "5,6@1"):
        picker.set_value("points", text)
        picker._add("points", (1, 1))
    picker.set_value("box", "[[1, 2, 30, 40], [5, 6, 20, 30]]")
    picker._set_box((0, 0, 5, 5))
    assert done == [("negative", "1,1; 7,8")]
    picker.set_value("box", "[[1, 2, 30, 40]]")        # one KJNodes BBOX: one box, picked
    picker.set_value("points", "10,20")
    picker._set_box((0, 0, 5, 5))
    picker._add("points", (3, 4))
    assert done[1:] == [("box", "[0, 0, 5, 5]"), ("points", "10,20; 3,4")]
