"""Points and boxes clicked on a node's frames in the viewer, as a compositor clicks them in ComfyUI's PointsEditor
(probes of stops 29 and 30): the text written is the one the node parses, in the picture's own pixels at any zoom, on
the frame shown (x,y@F) and for the object chosen ('|'), the rest of the text as written; each gesture one undo step;
the node's mask is shown tinted over the picture. Driven offscreen; any Qt warning fails a test."""
import os
import threading

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
from graph_engine.picks import box_groups  # noqa: E402
from graph_engine.types import MASK, VIDEO  # noqa: E402
from nodes.video.test_pattern import pattern_frames  # noqa: E402

make_window, no_modal_dialogs = test_editor.make_window, test_editor.no_modal_dialogs
W, H = 64, 48

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


def _boxed(ctx, video: VIDEO, points: str = Param("", kind="points"),
           negative: str = Param("", kind="negative_points"), box: str = Param("", kind="box"),
           model: str = Param("tiny", check=lambda v: None if v == "tiny" else f"model {v!r} not found")) -> MASK:
    """Stands in for SAM 2: a frame's mask is the boxes on that frame."""
    from nodes.common.masks import clip_of
    boxes = [b for g in box_groups(box) for b in g]

    def frames(a, b):
        m = np.zeros((b - a, video.height, video.width), np.float32)
        for x0, y0, x1, y1, f in boxes:
            if a <= f < b:
                m[f - a, int(y0):int(y1), int(x0):int(x1)] = 1.0
        return m
    return clip_of(frames, video)


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
    assert win.viewer.sources["A"].label == f"{c.named(node)}'s picture"     # named as the canvas titles it
    assert "No mask yet: model: model 'sam2.1-hiera-large' not found" in win.viewer.pick_label.text()
    c.set_param(node, "model", "tiny")
    _settled(win)
    assert win.viewer.sources["A"].label == f"{c.named(node)}.mask" and "No mask yet" not in win.viewer.pick_label.text()
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
    assert params["box"] == "8,6,40,30" and cv.picker.on_frame("box", 0) == [(8, 6, 40, 30)], "the box drawn follows the undo"
    win.doc.undo.undo()
    assert params["points"] == "10,20; 30,5" and cv.picker.on_frame("points", 0) == [(10, 20), (30, 5)]
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


def _pick_window(make_window, frames: int, values: dict):
    """A window picking for test.boxed on a `frames`-frame test pattern whose parameters hold `values`, at 200%;
    (window, node, the screen position of picture pixel (x, y))."""
    win = make_window()
    c = win.controller
    pattern = c.add_node("generate.test_pattern", (0, 0))
    for k, v in (("width", W), ("height", H), ("frames", frames)):
        c.set_param(pattern, k, v)
    node = c.add_node("test.boxed", (300, 0))
    c.connect(pattern, "video", node, "video")
    for k, v in values.items():
        c.set_param(node, k, v)
    win.scene.select_nodes([node])
    win.properties.editors["points"].pick_button.click()
    _settled(win)
    win.viewer.set_zoom(2.0)
    cv = win.viewer.canvas
    return win, node, lambda x, y: QPoint(round((cv.width() - 2 * W) / 2 + 2 * x), round((cv.height() - 2 * H) / 2 + 2 * y))


def test_picks_on_later_frames_and_several_objects_rewrite_only_what_was_picked(make_window, qtbot, registry):
    """A compositor steps to frame 2 and corrects object 1 there, gives object 2 a box on that frame, starts a third
    object, removes the second: each gesture one undo step, every other object and frame kept as typed (odd spacing
    and all), and the text is what mask.track_points reads."""
    from nodes.mask.segment import prompts
    warmed = []
    registry.get("test.boxed").warm = lambda: warmed.append(threading.current_thread().name)
    typed = {"points": "10,20 ;12,22@3|  30,5@4 ", "negative": "1,1", "box": "2,2,9,9; 3,3,8,8@2"}
    win, node, at = _pick_window(make_window, 4, typed)
    qbot_wait(lambda: warmed)
    assert warmed == ["kinograph-warm-test.boxed"], "the node's imports begun on a thread of their own"
    viewer, cv, params = win.viewer, win.viewer.canvas, win.doc.graph.nodes[node].params
    assert cv.picker.on_frame("points", 0) == [(10, 20)] and cv.picker.count() == 2
    assert [viewer.object_box.itemText(i) for i in range(3)] == ["Object 1 · frames 0, 2, 3", "Object 2 · frame 4",
                                                                 "New object"]
    qtbot.keyClick(viewer, Qt.Key_Right)
    qtbot.keyClick(viewer, Qt.Key_Right)
    _settled(win)
    assert cv.picker.frame == 2 and cv.picker.enabled and "Object 1 of 2, frame 2" in viewer.pick_label.text()
    start = win.doc.undo.count()
    qtbot.mouseClick(cv, Qt.LeftButton, pos=at(40.5, 30.5))
    assert params["points"] == "10,20 ;12,22@3; 40,30@2|  30,5@4 "
    qtbot.mousePress(cv, Qt.LeftButton, pos=at(4, 4))                  # object 1's box on frame 2: a corner moves
    qtbot.mouseMove(cv, at(6, 5))
    qtbot.mouseRelease(cv, Qt.LeftButton, pos=at(6, 5))
    assert params["box"] == "2,2,9,9; 6,5,8,8@2"
    viewer.object_box.activated.emit(1)
    qtbot.mousePress(cv, Qt.LeftButton, pos=at(20, 10))
    qtbot.mouseMove(cv, at(30, 20))
    qtbot.mouseMove(cv, at(40, 30))
    qtbot.mouseRelease(cv, Qt.LeftButton, pos=at(40, 30))
    assert params["box"] == "2,2,9,9; 6,5,8,8@2 | 20,10,40,30@2"
    viewer.object_box.activated.emit(2)                                 # a new object, written at its first click
    assert "Object 3 of 3" in viewer.pick_label.text()
    qtbot.mouseClick(cv, Qt.LeftButton, pos=at(50.5, 40.5))
    assert params["points"] == "10,20 ;12,22@3; 40,30@2|  30,5@4 | 50,40@2"
    assert params["negative"] == "1,1", "one group of negatives is every object's: it stays one"
    assert win.doc.undo.count() == start + 4
    assert prompts(params["points"], params["negative"], params["box"]) == {       # the node's own reading
        0: {1: ([(2, 2), (9, 9), (10, 20), (1, 1)], [2, 3, 1, 0]), 2: ([(1, 1)], [0]), 3: ([(1, 1)], [0])},
        2: {1: ([(6, 5), (8, 8), (40, 30)], [2, 3, 1]), 2: ([(20, 10), (40, 30)], [2, 3]), 3: ([(50, 40)], [1])},
        3: {1: ([(12, 22)], [1])}, 4: {2: ([(30, 5)], [1])}}
    qtbot.mouseClick(cv, Qt.LeftButton, pos=at(20, 10))                 # object 2's corner, dimmed: picked, not moved
    assert cv.picker.obj == 1 and viewer.object_box.currentIndex() == 1
    assert win.doc.undo.count() == start + 4
    viewer.remove_object_button.click()
    assert (params["points"], params["box"]) == ("10,20 ;12,22@3; 40,30@2| 50,40@2", "2,2,9,9; 6,5,8,8@2")
    assert win.doc.undo.count() == start + 5, "the object gone from points and box is one undo step"
    win.doc.undo.undo()
    assert (params["points"], params["box"]) == ("10,20 ;12,22@3; 40,30@2|  30,5@4 | 50,40@2",
                                                  "2,2,9,9; 6,5,8,8@2 | 20,10,40,30@2")
    assert cv.picker.on_frame("box", 1) == [(20, 10, 40, 30)]
    for _ in range(4):
        win.doc.undo.undo()
    assert {k: params[k] for k in typed} == typed
    registry.get("test.boxed").warm = None
    win.properties.editors["points"].pick_button.click()
    assert warmed == ["kinograph-warm-test.boxed"], "once a session"


def test_picked_text_is_what_the_node_reads_and_json_stays_json_where_it_can():
    """The editor's writes through graph_engine.picks: the node reads them back; a ComfyUI import's JSON stays JSON
    on the first frame, becomes text where JSON cannot say it (a later frame); a new object keeps the first's own
    negative points its own, in the same gesture."""
    from app.editor.picker import Picker, pick_params
    from graph_engine.picks import point_groups, remove_object, set_prompts
    from graph_engine.registry import default_registry
    from nodes.mask.segment import parse_box, parse_points
    spec = default_registry().get("mask.track_points")
    assert pick_params(spec) == {"points": "points", "negative_points": "negative", "box": "box"}
    assert spec.warm is not None
    comfy = '[{"x": 1, "y": 2}]'
    two = set_prompts(comfy, "points", 1, 0, [(30.5, 5)])
    assert two == '[[{"x": 1, "y": 2}], [{"x": 30.5, "y": 5}]]'
    assert parse_points(two, "points") == [[(1, 2, 0)], [(30.5, 5, 0)]]
    assert set_prompts(comfy, "points", 0, 3, [(7, 8)]) == "1,2; 7,8@3"
    assert remove_object(two, "points", 0) == '[{"x": 30.5, "y": 5}]'
    assert set_prompts("[1, 2, 30, 40]", "box", 0, 0, [(0, 0, 5, 5)]) == "[0, 0, 5, 5]"
    assert set_prompts("[1, 2, 30, 40]", "box", 1, 2, [(0, 0, 5, 5)]) == "1,2,30,40 | 0,0,5,5@2"
    assert parse_box(set_prompts("", "box", 1, 2, [(22, 8, 38, 22)])) == [[], [(22, 8, 38, 22, 2)]]
    assert set_prompts("120,80; 130.0,90@12 | 300,200", "points", 0, 12, []) == "120,80 | 300,200"
    assert point_groups(set_prompts("5,6@1", "points", 0, 1, [(5, 6), (1, 1)])) == [[(5, 6, 1), (1, 1, 1)]]
    # The last of a ComfyUI import's boxes taken away: the node read the "[]" written as "'[]' is not a box".
    assert remove_object("[1, 2, 30, 40]", "box", 0) == "[]" and parse_box("[]") == []
    # A position written as given: "{:g}" wrote 2640.016 as 2640.02 and 12345678 as 1.23457e+07.
    assert set_prompts("1,2", "points", 0, 4, [(2640.016, 12345678)]) == "1,2; 2640.016,12345678@4"
    done = []
    picker = Picker("track", {"points": "points", "negative_points": "negative", "box": "box"},
                    {"points": "10,20", "negative": "1,1", "box": ""}, done.append)
    picker.choose(1)
    picker._add("points", (40.2, 30.7))
    assert done == [{"points": "10,20 | 40,30", "negative": "1,1 | "}]
    picker.set_value("points", "not points")
    assert "points cannot be read as positions: a click replaces it" in picker.hint()
    picker.choose(0)
    picker._add("points", (3, 4))
    assert done[-1] == {"points": "3,4"}
    picker = Picker("track", {"points": "points", "negative_points": "negative"}, {"points": "1,1 | 2,2@3"},
                    done.append)
    picker.frame = 3
    for k in (1, 0):                    # a first negative point is its object's own, not one group for all
        picker.choose(k)
        picker._add("negative_points", (5, 5))
    assert done[-2:] == [{"negative": "| 5,5@3"}, {"negative": "5,5@3 | "}]


@pytest.mark.qt_log_ignore("This plugin does not support (raise|propagateSizeHints)")   # offscreen: no stacking
def test_a_floated_viewer_grows_to_half_the_window_for_picking_and_back_after(make_window, qtbot):
    """resizeDocks sizes docked widgets only: a viewer the user had floated stayed its thumbnail size to click in."""
    win = make_window()
    c = win.controller
    pattern = c.add_node("generate.test_pattern", (0, 0))
    node = c.add_node("test.boxed", (300, 0))
    c.connect(pattern, "video", node, "video")
    viewer = win.docks["Viewer"]
    viewer.setFloating(True)
    viewer.resize(360, 320)
    qbot_wait(lambda: (viewer.width(), viewer.height()) == (360, 320))
    before = (viewer.width(), viewer.height())
    win.pick(node)
    assert (viewer.width(), viewer.height()) == (win.width() // 2, win.height() * 3 // 5)
    qtbot.keyClick(win.viewer, Qt.Key_Escape)
    assert (viewer.width(), viewer.height()) == before
