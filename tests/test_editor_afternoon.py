"""Traps an artist from Nuke/Blender hit in an afternoon with the editor (probe of stop 32), one test
each, driven offscreen through the window; any Qt warning fails a test."""
import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402
import test_editor_viewer  # noqa: E402
from test_editor import qbot_wait  # noqa: E402

from app.editor.document import Document  # noqa: E402
from graph_engine.node_api import build_spec  # noqa: E402

# The window fixtures, no modal dialog, a config folder of each test's own.
make_window, no_modal_dialogs = test_editor.make_window, test_editor.no_modal_dialogs
private = test_editor_viewer.private
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


@pytest.fixture
def registry():
    reg = test_editor.registry_with()
    reg.add(build_spec(test_editor_viewer._sample, "test.sample", title="", category="Test", version=1, outputs=None, output=False,
                       expensive=True, migrations={}, device="cpu", temporal_radius=None))
    return reg


def test_renaming_the_node_on_screen_leaves_its_picture_current(make_window, registry):
    w = make_window(Document(registry=registry))
    c = w.controller
    s = c.add_node("test.sample", (0, 0))
    p, r, _ = test_editor.chain(w)
    for slot, node in (("A", s), ("B", r)):
        w.view_node(node, slot)
        assert w.runs.wait_idle(60)
    qbot_wait(lambda: w.viewer.canvas.images["A"] is not None and w.viewer.canvas.images["B"] is not None)
    jobs = len(w.runs.jobs)
    # Renaming the sampler shown said 'A is out of date: press V to recompute' over a picture that
    # no rename changes, and renaming the resize in B computed it again.
    c.set_title(s, "Hero sampler")
    c.set_title(r, "Half size")
    assert not w.viewer.canvas.note and not w.viewer.canvas.alert
    assert not w._stale and not w._refresh_view.isActive() and len(w.runs.jobs) == jobs
    # A bypass does change the output: the picture goes on following it.
    c.set_bypass([r], True)
    assert w._stale == {"B"}


def test_edit_paste_into_another_window_lands_on_screen(make_window, registry):
    from PySide6.QtGui import QCursor
    w1, w2 = make_window(Document(registry=registry)), make_window(Document(registry=registry))
    _, r, s = test_editor.chain(w1)
    w1.scene.select_nodes([r, s])
    assert w1.copy()
    far = w2.controller.add_node("generate.test_pattern", (4000, 3000))
    w2.view.centerOn(w2.scene.nodes[far])
    QCursor.setPos(w2.mapToGlobal(w2.rect().bottomRight()) + w2.rect().bottomRight())   # off the canvas
    ids = w2.paste()
    shown = w2.view.mapToScene(w2.view.viewport().rect()).boundingRect()
    # The nodes went to where they were copied from (300, 0), 4000 pixels off the part on screen.
    assert len(ids) == 2 and shown.contains(w2.scene.nodes_rect(ids))


@pytest.mark.parametrize("typed, first", [
    ("deflicker", "restore.deflicker"),     # found nothing: the task word 'flicker' inside it was rewritten
    ("read", "io.load_"), ("merge", "video.over"), ("keylight", "video.matte"),
    ("kronos", "interpolate.flow"), ("framerange", "video.trim"), ("framehold", "video.frame"),
    ("append clip", "video.concat"), ("roto", "mask.track_points"), ("slow motion", "interpolate.flow"),
    # a node's own name, which a task word rewrote into one no node has ('metrics.deflicker', 'stylize model')
    # or into another node's ('scale' as 'resize': Scale (ComfyUI) not among the first five)
    ("metrics.flicker", "metrics.flicker"), ("style model", "load.style_model"), ("scale", "video.scale"),
])
def test_the_node_search_finds_what_nuke_and_blender_call_a_node(make_window, typed, first):
    """Nuke's Read, Write, Merge, Keylight, Kronos... found unrelated nodes or nothing."""
    w = make_window()
    w.view.open_palette(w.view.viewport().rect().center())
    w.view.palette.edit.setText(typed)
    assert w.view.palette.results()[0].startswith(first)


@pytest.mark.parametrize("typed, says", [
    ("PreviewImage", "previews show in Kinograph's viewer"), ("previewimage ", "previews show"),
    ("FluxGuidance", "guidance becomes its cfg"), ("KSamplerSelect", "sampler_name becomes its sampler"),
    ("ControlNetApply", "folds it into the node it feeds"), ("Note", "sticky note"),
    ("MarkdownNote", "sticky note"), ("Reroute", "double-click a link"), ("PrimitiveNode", "type its value"),
    ("PrimitiveInt", "type its value"),
    # as ComfyUI's search lists them, by their display names: the hint heard the class name alone
    ("Preview Image", "previews show"), ("lora  stacker", "folds it into"),
])
def test_the_node_search_says_where_a_comfyui_node_with_no_node_here_went(make_window, typed, says):
    """ComfyUI's Preview Image, FluxGuidance, KSamplerSelect, ControlNetApply, Note or Reroute typed in the
    node search: 'No node matches' (or, for Note, unrelated nodes), nothing said of where that job is done."""
    w = make_window()
    w.view.open_palette(w.view.viewport().rect().center())
    pal = w.view.palette
    pal.edit.setText(typed)
    assert pal.comfyui_label.isVisible() and says in pal.comfyui_label.text(), pal.comfyui_label.text()
    pal.edit.setText("KSampler")                    # a ComfyUI node with a node here is found as before
    assert not pal.comfyui_label.isVisible() and pal.results()[0] == "generate.sample"


def _drop(widget, paths, at=QPoint(200, 200)):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    QApplication.sendEvent(widget, QDragEnterEvent(at, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    QApplication.sendEvent(widget, QDropEvent(QPointF(at), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))


def test_a_folder_of_frames_dropped_becomes_footage(make_window, tmp_path):
    """A plate (a folder of numbered frames, as Nuke and Blender write them) dragged from the file manager
    was refused by the canvas and the viewer alike: only files were taken."""
    from PIL import Image
    plate = tmp_path / "plate"
    plate.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 12, 3), 40 * i, np.uint8)).save(plate / f"shot.{1001 + i}.png")
    (tmp_path / "empty").mkdir()
    w = make_window()
    _drop(w.view.viewport(), [tmp_path / "empty"])
    assert not w.doc.graph.nodes
    _drop(w.view.viewport(), [plate])
    (nid, inst), = w.doc.graph.nodes.items()
    assert inst.type == "io.load_frames" and inst.params["path"] == str(plate)
    _drop(w.viewer.canvas, [plate])
    assert w.runs.wait_idle(60)
    qbot_wait(lambda: w.viewer.canvas.images["A"] is not None)
    assert w.viewer.sources["A"].length == 3 and w.viewer.sources["A"].label == "plate"


def test_undoing_the_delete_of_the_node_on_screen_brings_its_picture_back(make_window, registry):
    """Deleted and brought back by Ctrl+Z, the node on screen went on being called deleted ('grade was
    deleted; this is its last output') and the viewer no longer followed its edits: exposure +1 stayed
    on screen after it was set to -1."""
    w = make_window(Document(registry=registry))
    c = w.controller
    p, r, _ = test_editor.chain(w)
    s = c.add_node("test.sample", (0, 300))
    for slot, node in (("A", r), ("B", s)):
        w.view_node(node, slot)
        assert w.runs.wait_idle(60)
    qbot_wait(lambda: w.viewer.canvas.images["A"] is not None and w.viewer.canvas.images["B"] is not None)
    jobs = len(w.runs.jobs)
    c.delete([r, s])
    assert "was deleted" in w.viewer.canvas.note
    w.doc.undo.undo()
    assert not w.viewer.canvas.note and w._viewing == {"A": r, "B": s}
    qbot_wait(lambda: not w._refresh_view.isActive())
    # The resize is shown again from the cache; the sampler's picture is kept, not run again unasked.
    assert [j.view[:3] for j in w.runs.jobs[jobs:]] == [(r, "video", "A")]
    c.set_param(r, "width", 8)
    assert w.runs.wait_idle(60)
    qbot_wait(lambda: w.viewer.canvas.images["A"] is not None and w.viewer.canvas.images["A"].width() == 8)
    # A node added later under the freed id is no undo: the picture stays marked as the deleted one's.
    c.delete([r])
    c.add_node("video.resize", (300, 300))
    assert "was deleted" in w.viewer.canvas.note and "A" not in w._viewing


def test_a_zero_that_means_all_or_follow_reads_so_on_the_node_and_in_the_panel(make_window):
    """Load Video's count showed 0, as if it read no frame, where it reads them all; Resize's height 0
    where it follows the width (Trim's count, Temporal Denoise's sigma alike)."""
    from app.editor.node_item import format_value
    w = make_window()
    c = w.controller
    nodes = {t: c.add_node(t, (0, 300 * i)) for i, t in enumerate(
        ("io.load_video", "video.resize", "video.trim", "restore.denoise"))}
    for (t, name), shown in (
            (("io.load_video", "count"), "all"), (("video.resize", "height"), "auto"),
            (("video.trim", "count"), "all"), (("restore.denoise", "sigma"), "auto"),
            (("io.load_video", "width"), "auto"), (("video.resize", "width"), "auto")):
        node = nodes[t]
        c.set_param(node, name, 0)
        assert format_value(w.doc.spec(node).params[name], 0) == shown, (t, name)
        w.scene.select_nodes([node])
        assert w.properties.editors[name].spin.text() == shown, (t, name)


def test_a_loaders_footer_names_the_clip_it_reads_now(make_window, tmp_path):
    """Load Video's footer ('32x32 · 24 fps · 8 fr') stayed on after its path was changed to another clip
    and its start moved, while the viewer showed something else: a stale fact about the file."""
    w = make_window()
    c = w.controller
    p, r, s = test_editor.chain(w, out=tmp_path / "a.mkv")
    assert w.run() is not None and w.runs.wait_idle(60)
    load = c.add_loaders([("io.load_video", str(tmp_path / "a.mkv"))], (0, 300))[0]
    g = c.add_node("color.grade", (300, 300))
    c.connect(load, "video", g, "video")
    w.view_node(g)
    assert w.runs.wait_idle(60)
    item = w.scene.nodes[load]
    qbot_wait(lambda: item.info)
    found = item.info
    assert found.startswith("16×16") and "8 fr" in found
    w.view_node(r)                                  # the viewer shows something else now
    assert w.runs.wait_idle(60)
    c.set_param(load, "path", str(tmp_path / "other.mkv"))
    assert item.info == ""
    w.doc.undo.undo()
    assert item.info == found


class _Grey:
    """A clip of one grey level whose frames wait for `gate` (a slow node being computed)."""

    def __init__(self, level, gate=None):
        self.length, self.fps, self.width, self.height = 4, 24.0, 8, 6
        self.level, self.gate = level, gate

    def frames(self, a, b):
        return np.stack([self.frame(i) for i in range(a, b)])

    def frame(self, i):
        if self.gate is not None:
            self.gate.wait(10)
        return np.full((6, 8, 3), self.level, np.uint8)


def test_a_frame_computed_for_the_picture_before_an_edit_does_not_stay_on_screen(qtbot):
    """The parameter changed while the viewer was still computing the frame shown: the old clip's frame,
    arriving after the new clip was on screen, was taken for the new one's and the new one's was dropped,
    so the picture from before the edit stayed on screen with nothing saying so."""
    import threading
    from app.editor.viewer import ViewerPanel
    v = ViewerPanel()
    qtbot.addWidget(v)
    v.show()
    gate = threading.Event()
    v.set_source("A", _Grey(10, gate), "grade.video")          # frame 0 is being computed
    qbot_wait(lambda: v.loader._want == {})
    v.set_source("A", _Grey(200), "grade.video")               # the edit's result
    gate.set()
    qbot_wait(lambda: not v._waiting and v.canvas.images["A"] is not None)
    qbot_wait(lambda: v.loader._want == {})
    for _ in range(20):
        QApplication.processEvents()
    assert v.canvas.images["A"].pixelColor(0, 0).red() == 200
    v.shutdown()


def test_b_says_first_how_it_differs_from_a(qtbot):
    """Two takes of other sizes and rates were wiped and differenced with nothing saying so but each
    one's description, cut off past the viewer's width: the difference of sizes looked like another
    picture."""
    from app.editor.viewer import ViewerPanel
    v = ViewerPanel()
    qtbot.addWidget(v)
    v.set_source("A", _Grey(10), "take1.mp4")
    small = _Grey(10)
    small.width, small.height, small.fps = 4, 3, 30.0
    v.set_source("B", small, "take2.mp4")
    assert v.labels["B"].text() == "B: take2.mp4  ≠ A: 4×3 vs 8×6, 30 vs 24 fps"
    v.set_source("A", small, "take1.mp4")                # A changed: B's line follows
    assert "≠" not in v.labels["B"].text()
    v.shutdown()


def test_a_folder_dragged_over_the_canvas_and_viewer_is_listed_once(make_window, tmp_path, monkeypatch):
    """A dragged folder was listed to find its frames at every mouse move over the canvas or the viewer (a plate of
    thousands of frames, at each pixel): it is judged when the drag enters, and each move reuses that."""
    from PySide6.QtGui import QDragMoveEvent
    from app.editor import view as view_mod
    plate = tmp_path / "plate"
    plate.mkdir()
    (plate / "shot.1001.png").write_bytes(b"")
    listed = []
    real = view_mod.frames_folder
    monkeypatch.setattr(view_mod, "frames_folder", lambda p: listed.append(p) or real(p))
    w = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(plate))])
    for widget in (w.view.viewport(), w.viewer):
        listed.clear()
        QApplication.sendEvent(widget, QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton,
                                                       Qt.NoModifier))
        moves = [QDragMoveEvent(QPoint(50 + i, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
                 for i in range(20)]
        for move in moves:
            QApplication.sendEvent(widget, move)
        assert len(listed) == 1, (widget, len(listed))
        assert all(move.isAccepted() for move in moves)


def test_a_model_names_file_button_opens_in_its_model_folder_and_keeps_the_name(make_window, tmp_path, monkeypatch):
    """The … beside Load Diffusion Model's name (a ComfyUI file's wan2.2 model, not there yet) opened the file
    dialog in the home folder, not in the diffusion_models folder the loader looks in; and a file picked inside
    that folder was kept as its full path (/home/…/models/diffusion_models/wan/…), which no other machine has,
    where ComfyUI keeps the name as its model list shows it (wan/wan2.2_….safetensors)."""
    from PySide6.QtWidgets import QFileDialog, QToolButton
    folder = tmp_path / "models" / "diffusion_models"
    (folder / "wan").mkdir(parents=True)
    (folder / "wan" / "wan2.2_low.safetensors").write_bytes(b"")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    opened = []

    def pick(parent, caption, start, *a):
        opened.append(start)
        return str(folder / "wan" / "wan2.2_low.safetensors"), ""
    monkeypatch.setattr(QFileDialog, "getOpenFileName", pick)
    w = make_window()
    n = w.controller.add_node("load.diffusion_model", (0, 0))
    w.controller.set_param(n, "name", "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors")
    w.scene.select_nodes([n])
    ed = w.properties.editors["name"]
    ed.findChild(QToolButton).click()
    assert opened == [str(folder)]
    assert w.doc.graph.nodes[n].params["name"] == "wan/wan2.2_low.safetensors"
    assert ed.edit.text() == "wan/wan2.2_low.safetensors"
    ed.findChild(QToolButton).click()                       # again: the file found opens its own folder
    assert opened[-1] == str(folder / "wan")
