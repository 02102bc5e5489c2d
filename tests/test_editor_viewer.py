"""Reviewing in the viewer as dailies are reviewed (probe of stop 21): playback that keeps the clip's
time, a loop between in and out points, A/B side by side and difference, zoom to real pixels,
bounded memory on big frames, a word about sound, files named and reread when a run rewrites them,
and two takes compared from the history. Driven offscreen; any Qt warning fails a test."""
import os
import threading

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402
from test_editor import qbot_wait  # noqa: E402

from app.editor import viewer as viewer_mod  # noqa: E402
from app.editor.viewer import Source, ViewerPanel  # noqa: E402
from graph_engine import Param  # noqa: E402
from graph_engine.clip import Audio, Clip  # noqa: E402
from graph_engine.node_api import build_spec  # noqa: E402
from graph_engine.types import VIDEO  # noqa: E402

make_window, registry = test_editor.make_window, test_editor.registry

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


@pytest.fixture(autouse=True)
def private(monkeypatch, tmp_path):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))


class FakeClock:
    """Stands in for the viewer's playback clock: the test says how much time has passed."""

    def __init__(self):
        self.ms = 0

    def start(self):
        self.ms = 0

    def elapsed(self):
        return self.ms


class GatedClip:
    """A clip whose frames after the first wait for the test to let them through (a slow node, 4K)."""

    def __init__(self, length=200, fps=24.0):
        self.length, self.fps, self.width, self.height = length, fps, 32, 24
        self.gate = threading.Event()
        self.read = []

    def frames(self, a, b):
        return np.stack([self.frame(i) for i in range(a, b)])

    def frame(self, i):
        self.read.append(i)
        if i:
            self.gate.wait(10)
        return np.full((24, 32, 3), i % 256, np.uint8)


@pytest.fixture
def panel(qtbot):
    v = ViewerPanel()
    v.resize(640, 480)
    qtbot.addWidget(v)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.shutdown()


def _playing(v, clock):
    """Playing, with the test's clock and its own ticks (the timer never fires within the test)."""
    v._clock = clock
    v.play()
    v.timer.setInterval(10 ** 8)


def _solid(w, h, left, right=None):
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = left
    a[:, w // 2:] = left if right is None else right
    return a


def test_playback_keeps_the_clips_time_and_skips_frames_too_slow_to_compute(panel):
    clip = GatedClip()
    panel.set_source("A", clip, "slow")
    qbot_wait(lambda: panel.canvas.images["A"] is not None)
    shown = []
    panel.frameShown.connect(lambda slot, i, img: shown.append(i))
    clock = FakeClock()
    _playing(panel, clock)
    clock.ms = 1000
    panel._tick()
    # One second at 24 fps is frame 24, though frame 1 is not computed yet: the playhead keeps time.
    # (It waited for each frame, so a 4K clip at 18 frames a second took 1.33 s for each second.)
    assert panel.index == 24
    # The counters say what is on screen, and no 'computing' box flashes over the picture.
    assert panel.frame_box.value() == 0 and panel.canvas.loading == ""
    qbot_wait(lambda: 24 in clip.read)      # being computed when the playhead moves on
    clock.ms = 2000
    panel._tick()
    clip.gate.set()
    qbot_wait(lambda: 48 in shown)
    # Frame 24, computed while the playhead went on, was shown (the newest there was); 1-23 never computed.
    assert shown == [24, 48] and sorted(set(clip.read)) == [0, 24, 48]
    assert panel.frame_box.value() == 48 and panel.timecode_label.text() == "00:00:02:00"
    panel.pause()


def test_a_23976_clip_plays_at_its_own_rate_not_the_boxs_rounded_one(panel):
    clip = Clip.from_array(np.zeros((3, 8, 8, 3), np.uint8), fps=24000 / 1001)
    panel.set_source("A", clip, "ntsc")
    assert panel.rate() == 24000 / 1001
    panel.fps_box.setValue(12)
    assert panel.rate() == 12


def test_in_and_out_points_bound_the_loop_and_keys_set_and_clear_them(panel, qtbot):
    frames = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(20)])
    panel.set_source("A", Clip.from_array(frames), "twenty")
    qbot_wait(lambda: panel.canvas.images["A"] is not None)
    panel.canvas.setFocus()
    panel.seek(5)
    qtbot.keyClick(panel.canvas, Qt.Key_I)
    panel.seek(8)
    qtbot.keyClick(panel.canvas, Qt.Key_O)
    assert (panel.in_point, panel.out_point) == (5, 8)
    assert panel.range_label.text() == "in 5–8" and panel.slider.span == (5, 8)
    panel.seek(15)
    clock = FakeClock()
    _playing(panel, clock)
    assert panel.index == 5, "play outside the loop starts at its in point"
    seen = []
    for ms in range(0, 1000, 21):
        clock.ms = ms
        panel._tick()
        seen.append(panel.index)
    assert set(seen) == {5, 6, 7, 8}, seen
    panel.pause()
    panel.loop_box.setChecked(False)
    panel.seek(7)
    _playing(panel, clock)
    clock.ms = 500
    panel._tick()
    assert not panel.playing and panel.index == 8, "without loop, play stops at the out point"
    qtbot.keyClick(panel.canvas, Qt.Key_I, Qt.AltModifier)
    qtbot.keyClick(panel.canvas, Qt.Key_O, Qt.AltModifier)
    assert panel.span() == (0, 19) and panel.range_label.text() == "" and panel.slider.span is None


def test_a_and_b_side_by_side_show_each_whole_and_difference_shows_what_changed(panel):
    # Wide pictures (fitted by width): A red | green, B blue | yellow.
    panel.set_source("A", _solid(256, 32, (255, 0, 0), (0, 255, 0)), "a")
    panel.set_source("B", _solid(256, 32, (0, 0, 255), (255, 255, 0)), "b")
    qbot_wait(lambda: panel.canvas.images["B"] is not None and panel.canvas.images["A"] is not None)
    assert panel.wipe_box.isChecked() and panel.compare_box.isVisibleTo(panel)
    c = panel.canvas
    w, h = c.width(), c.height()

    def at(fx):
        return c.grab().toImage().convertToFormat(QImage.Format_RGB888).pixelColor(round(w * fx), h // 2).getRgb()[:3]
    assert at(0.625) == (255, 255, 0), "the wipe shows B's right half right of the line"
    panel.compare_box.setCurrentIndex(1)        # side by side
    assert at(0.125) == (255, 0, 0) and at(0.375) == (0, 255, 0), "A whole in the left half"
    assert at(0.625) == (0, 0, 255) and at(0.875) == (255, 255, 0), "B whole in the right half"
    panel.set_source("A", _solid(256, 32, (200, 100, 50)), "a")
    panel.set_source("B", _solid(256, 32, (50, 100, 200)), "b")
    qbot_wait(lambda: not panel._waiting)
    panel.compare_box.setCurrentIndex(2)        # difference
    assert at(0.5) == (150, 0, 150)


def test_100_percent_is_one_picture_pixel_on_one_screen_pixel_and_the_box_says_the_zoom(panel, qtbot, monkeypatch):
    panel.set_source("A", np.zeros((100, 200, 3), np.uint8), "still")
    qbot_wait(lambda: panel.canvas.images["A"] is not None)
    monkeypatch.setattr(panel.canvas, "devicePixelRatioF", lambda: 2.0)     # a 200% desktop
    panel.canvas.setFocus()
    qtbot.keyClick(panel.canvas, Qt.Key_1)
    img = panel.canvas.images["A"]
    # 100 logical pixels are the 200 pixels of the picture on the screen; 200 logical were 400, blurred.
    assert panel.canvas._target(img).width() == 100 and panel.zoom_box.currentText() == "100%"
    qtbot.keyClick(panel.canvas, Qt.Key_F)
    assert panel.canvas.zoom == 0 and panel.zoom_box.currentText() == "Fit"
    fit = panel.canvas.shown_zoom()
    panel.canvas.zoom_by(1.5)
    # Wheeled in, the box said 'Fit' over a picture half as big again.
    assert panel.zoom_box.currentText() == f"{fit * 1.5 * 100:.0f}%"


def test_frames_kept_for_scrubbing_are_bounded_in_bytes_not_only_in_count(panel, monkeypatch):
    one = 64 * 48 * 3
    monkeypatch.setattr(viewer_mod, "FRAME_CACHE_BYTES", 4 * one)      # (512 MB: 20 frames of 4K, not 48)
    frames = np.zeros((10, 48, 64, 3), np.uint8)
    panel.set_source("A", Clip.from_array(frames), "big")
    for i in range(10):
        panel.seek(i)
        qbot_wait(lambda: not panel._waiting)
    assert len(panel._cache) == 4 and sum(im.sizeInBytes() for im in panel._cache.values()) <= 4 * one


def test_the_label_says_whether_a_clip_has_sound_or_is_silent():
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    assert Source(Clip.from_array(frames), "c").describe().endswith("silent")
    assert "has sound (not played here)" in Source(Clip.from_array(frames, audio=Audio("take.wav")), "c").describe()
    assert "silent" not in Source(frames[0], "still").describe()


WORKFLOW = """kinograph: 1
nodes:
  pat: {type: generate.test_pattern, params: {frames: 4, width: 32, height: 32}}
  save: {type: io.save_video, inputs: {video: pat.video}, params: {path: out/shot.mp4}}
"""


def _shot(make_window, tmp_path):
    from app.editor.document import Document
    wf = tmp_path / "shot.yaml"
    wf.write_text(WORKFLOW)
    return make_window(Document.load(wf, test_editor.registry_with()))


def test_a_file_in_the_viewer_is_named_and_reread_when_a_run_renders_it_again(make_window, tmp_path):
    w = _shot(make_window, tmp_path)
    w.runs.submit(w.doc)
    assert w.runs.wait_idle(60)
    shot = tmp_path / "out" / "shot.mp4"
    w.view_file(str(shot))
    assert w.runs.wait_idle(60)
    qbot_wait(lambda: w.viewer.canvas.images["A"] is not None)
    assert w.viewer.labels["A"].text().startswith("A: shot.mp4 "), w.viewer.labels["A"].text()
    assert w.viewer.length == 4
    w.controller.set_param("pat", "frames", 7)
    w.runs.submit(w.doc)
    assert w.runs.wait_idle(60)
    qbot_wait(lambda: w.viewer.length == 7)       # it kept the replaced render's 4 frames on screen
    assert w.viewer.labels["A"].text().startswith("A: shot.mp4 ")
    assert w.viewer.canvas.note == ("A: shot.mp4 was rendered again; this is the new one "
                                    "(the one before is takes/shot.001.mp4)")


def test_two_takes_compared_from_the_history(make_window, tmp_path):
    w = _shot(make_window, tmp_path)
    for frames in (4, 6):
        w.controller.set_param("pat", "frames", frames)
        w.runs.submit(w.doc)
        assert w.runs.wait_idle(60)
    hist = w.queue.history
    hist.setCurrentRow(0)           # the newest run: shot.mp4
    w.queue.view_button.click()
    assert w.runs.wait_idle(60)
    hist.setCurrentRow(1)           # the one before, kept as a take
    w.queue.view_b_button.click()
    assert w.runs.wait_idle(60)
    qbot_wait(lambda: w.viewer.canvas.images["B"] is not None)
    assert w.viewer.sources["A"].label == "shot.mp4" and w.viewer.sources["A"].length == 6
    assert w.viewer.sources["B"].label == "takes/shot.001.mp4" and w.viewer.sources["B"].length == 4
    assert w.viewer.wipe_box.isChecked()


def _sample(ctx, level: int = Param(10, min=0, max=255)) -> VIDEO:
    """Frames of one grey level, as an expensive node (a sampler) makes them."""
    return Clip.from_array(np.full((3, 16, 16, 3), level, np.uint8))


def test_a_run_that_computed_the_expensive_node_on_screen_shows_its_new_output(make_window, tmp_path):
    from app.editor.document import Document
    reg = test_editor.registry_with()
    reg.add(build_spec(_sample, "test.sample", title="", category="Test", version=1, outputs=None, output=False,
                       expensive=True, migrations={}, device="cpu", temporal_radius=None))
    w = make_window(Document(registry=reg))
    c = w.controller
    s = c.add_node("test.sample", (0, 0))
    out = c.add_node("io.save_video", (300, 0))
    c.connect(s, "video", out, "video")
    c.set_param(out, "path", str(tmp_path / "grey.mp4"))
    w.view_node(s, "A")
    assert w.runs.wait_idle(60)
    qbot_wait(lambda: w.viewer.canvas.images["A"] is not None)
    c.set_param(s, "level", 200)
    assert w.viewer.canvas.note.startswith("A is out of date")
    w.run()
    assert w.runs.wait_idle(60)
    qbot_wait(lambda: not w.viewer._waiting)
    # The run computed it: the viewer said 'out of date: press V' over the old grey until V was pressed.
    assert w.viewer.canvas.images["A"].pixelColor(0, 0).red() == 200
    assert not w.viewer.canvas.note


def test_playing_a_nodes_output_leaves_its_thumbnail_to_the_frame_stopped_at(make_window, monkeypatch):
    w = make_window()
    p, r, s = test_editor.chain(w, frames=12)
    w.view_node(r, "A")
    assert w.runs.wait_idle(30)
    qbot_wait(lambda: w.viewer.canvas.images["A"] is not None)
    thumbs = []
    monkeypatch.setattr(w.scene.nodes[r], "set_thumb", lambda img: thumbs.append(img))
    clock = FakeClock()
    _playing(w.viewer, clock)
    for ms in (100, 200, 300):
        clock.ms = ms
        w.viewer._tick()
        qbot_wait(lambda: not w.viewer._waiting)
    # Each frame played was scaled down on the GUI thread for the node's thumbnail (0.1 s a 4K frame).
    assert thumbs == []
    w.viewer.pause()
    qbot_wait(lambda: not w.viewer._waiting)
    assert len(thumbs) == 1


def test_a_numbered_plate_counts_frames_by_its_own_numbers(panel, qtbot):
    frames = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(10)])
    clip = Clip.from_array(frames).with_(number=1001)
    panel.set_source("A", clip, "plate")
    qbot_wait(lambda: not panel._waiting)
    assert panel.frame_box.value() == 1001 and panel.count_label.text() == "/ 1010"
    panel.canvas.setFocus()
    qtbot.keyClick(panel.canvas, Qt.Key_Right)
    assert panel.index == 1 and panel.frame_box.value() == 1002
    panel.frame_box.setValue(1008)          # typed: the frame the compositor was asked to look at
    qbot_wait(lambda: not panel._waiting)
    assert panel.index == 7 and panel.canvas.images["A"].pixelColor(0, 0).red() == 7
    qtbot.keyClick(panel.canvas, Qt.Key_I)
    assert panel.range_label.text() == "in 1008–1010"


def _drop_on_viewer(w, paths, modifiers=Qt.NoModifier):
    from PySide6.QtCore import QMimeData, QPoint, QPointF, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, modifiers)
    QApplication.sendEvent(w.viewer, enter)
    assert enter.isAccepted(), "the viewer refused the files"
    QApplication.sendEvent(w.viewer, QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, modifiers))


def test_renders_dropped_on_the_viewer_are_shown_there_one_as_a_two_as_a_and_b(make_window, tmp_path):
    from test_editor_view import _clip
    w = make_window()
    one, two = tmp_path / "take1.mkv", tmp_path / "take2.mkv"
    _clip(one, frames=3)
    _clip(two, frames=5)
    _drop_on_viewer(w, [one, two])
    assert w.runs.wait_idle(60)
    qbot_wait(lambda: w.viewer.canvas.images["B"] is not None)
    assert (w.viewer.sources["A"].label, w.viewer.sources["B"].label) == ("take1.mkv", "take2.mkv")
    _drop_on_viewer(w, [one], Qt.ShiftModifier)
    assert w.runs.wait_idle(60)
    _drop_on_viewer(w, [two], Qt.NoModifier)
    assert w.runs.wait_idle(60)
    assert w.viewer.sources["A"].length == 5 and w.viewer.sources["B"].length == 3
    assert not w.doc.graph.nodes, "looking at a file is no edit of the workflow"


def test_a_shows_the_transparency_of_a_clip_that_has_it(panel, qtbot):
    frames = np.zeros((2, 8, 8, 3), np.uint8)          # the colour over black: black wherever transparent
    alpha = np.zeros((2, 8, 8, 1), np.uint8)
    alpha[:, :, 4:] = 255
    clip = Clip.from_array(frames).with_matte(lambda a, b: alpha[a:b])
    panel.set_source("A", clip, "keyed")
    qbot_wait(lambda: not panel._waiting and panel.canvas.images["A"] is not None)
    assert "alpha (A shows it)" in panel.labels["A"].text()
    panel.canvas.setFocus()
    qtbot.keyClick(panel.canvas, Qt.Key_A)
    qbot_wait(lambda: not panel._waiting)
    img = panel.canvas.images["A"]
    assert (img.pixelColor(1, 1).red(), img.pixelColor(6, 1).red()) == (0, 255) and panel.canvas.tag == "alpha"
    qtbot.keyClick(panel.canvas, Qt.Key_A)
    qbot_wait(lambda: not panel._waiting)
    assert panel.canvas.images["A"].pixelColor(6, 1).red() == 0 and panel.canvas.tag == ""
