"""Review of the editor38 fixes (rev38d): a run reopened from the history keeps its seeds until a run has made
its picture with them, and what else those fixes left. Driven through the real window offscreen; any Qt warning
fails a test."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor_session  # noqa: E402

make_window, no_modal_dialogs, registry = (test_editor_session.make_window, test_editor_session.no_modal_dialogs,
                                           test_editor_session.registry)
win, private_config, pytestmark = test_editor_session.win, test_editor_session.private_config, test_editor_session.pytestmark


def _reopened_run(win, tmp_path, monkeypatch, steps=1):
    """A random seed and a pattern through a Slow (of `steps`) into a Save, run once, and that run reopened from
    Queue & history: (the reopened window, the seeded node, the slow node, the seed the run was made with)."""
    from app.editor import window as window_mod
    from test_editor_probe38 import _pattern_then_slow
    c = win.controller
    _, slow = _pattern_then_slow(c)
    c.set_param(slow, "steps", steps)
    seeded = c.add_node("test.seeded", (0, 300))
    c.set_seed_mode(seeded, "seed", "random")
    save = c.add_node("io.save_video", (600, 0))
    c.set_param(save, "path", str(tmp_path / "take.mkv"))
    c.connect(slow, "video", save, "video")
    first = win.run()
    assert win.runs.wait_idle(60) and first.state == "done", first.error
    before = set(window_mod.WINDOWS)
    win.open_job(first)
    (again,) = set(window_mod.WINDOWS) - before
    monkeypatch.setattr(window_mod, "allow_outside_for_run", lambda parent, doc: True)     # 'Write these files?': yes
    again.controller.set_param(save, "path", str(tmp_path / "again.mkv"))
    return again, seeded, slow, first.workflow.graph.nodes[seeded].params["seed"]


def test_a_run_to_here_that_needs_no_seed_does_not_spend_a_reopened_runs_seeds(win, tmp_path, monkeypatch):
    """A run reopened to be made again, and first a Run to Here on its Slow (no seed above it) to look at the
    plate: that look counted as the first run, so the Run after it drew a new random seed, and the render came
    out another picture than the one reopened."""
    again, seeded, slow, made_with = _reopened_run(win, tmp_path, monkeypatch)
    look = again.run([slow])
    assert again.runs.wait_idle(60) and look.state == "done", look.error
    job = again.run()
    assert again.runs.wait_idle(60) and job.state == "done", job.error
    assert job.workflow.graph.nodes[seeded].params["seed"] == made_with
    assert not again.doc.seeds_as_read              # that run made it: the next one draws, as random says


def test_a_cancelled_first_run_does_not_spend_a_reopened_runs_seeds(win, tmp_path, monkeypatch, qtbot):
    """The reopened run's first run cancelled (a wrong output path seen in the log): it made no picture, as a
    failed one does not, yet the next Run drew a new random seed."""
    again, seeded, slow, made_with = _reopened_run(win, tmp_path, monkeypatch)
    again.controller.set_param(slow, "steps", 100000)
    job = again.run()
    qtbot.waitUntil(lambda: getattr(again.runs.status.get(slow), "state", None) == "running", timeout=30000)
    again.runs.cancel()
    assert again.runs.wait_idle(30) and job.state == "cancelled"
    qtbot.wait(50)
    again.controller.set_param(slow, "steps", 1)
    job = again.run()
    assert again.runs.wait_idle(60) and job.state == "done", job.error
    assert job.workflow.graph.nodes[seeded].params["seed"] == made_with


def test_a_run_pressed_again_before_the_first_fails_draws_for_the_one_after(win, tmp_path, monkeypatch, qtbot):
    """The first run on a reopened run's seeds, and Run pressed again while it runs (new seeds drawn for that
    second one): the first failing must not make the third keep the second's seeds, as random says."""
    again, _, slow, _ = _reopened_run(win, tmp_path, monkeypatch)
    again.controller.set_param(slow, "steps", 100000)
    first = again.run()
    qtbot.waitUntil(lambda: getattr(again.runs.status.get(slow), "state", None) == "running", timeout=30000)
    again.controller.set_param(slow, "steps", 1)
    second = again.run()
    again.runs.cancel()                             # the first one
    assert again.runs.wait_idle(60) and first.state == "cancelled" and second.state == "done", second.error
    assert not again.doc.seeds_as_read              # the second run left the file's seeds behind



def _page_errors(panel):
    from PySide6.QtWidgets import QLabel
    return [lab.text() for lab in panel.findChildren(QLabel) if lab.objectName() == "FieldError"]


def test_the_workflow_page_forgets_a_missing_plate_once_it_is_copied_in(win, tmp_path, qtbot, monkeypatch):
    """Nothing selected: the workflow page lists 'Load Video: plate.mkv is missing', and the loader is marked. The
    plate copied in from the file manager and the window come back to: the canvas mark went, but the page went on
    listing the plate as missing until a node was added or linked."""
    from PySide6.QtCore import QEvent
    c = win.controller
    plate = tmp_path / "plate.mkv"
    load = c.add_node("io.load_video", (0, 0))
    c.set_param(load, "path", str(plate))
    qtbot.wait(20)
    win.scene.clearSelection()
    win.properties.show_node(None)
    assert list(win.scene.nodes[load].missing) == ["path"]
    assert "Load Video: plate.mkv is missing" in _page_errors(win.properties)
    plate.write_bytes(b"")                          # copied in
    monkeypatch.setattr(win, "isActiveWindow", lambda: True)
    win.changeEvent(QEvent(QEvent.ActivationChange))    # back from the file manager
    qtbot.wait(20)
    assert win.scene.nodes[load].missing == {}
    assert not any("plate.mkv" in e for e in _page_errors(win.properties)), _page_errors(win.properties)
    # a description being typed is not lost to it: the page is not built again under the typing
    other = tmp_path / "other.mkv"
    c.set_param(load, "path", str(other))
    qtbot.wait(20)
    assert list(win.scene.nodes[load].missing) == ["path"]
    desc = win.properties._meta_edits[1]
    desc.setPlainText("sh010: keep the flare")
    other.write_bytes(b"")
    win.changeEvent(QEvent(QEvent.ActivationChange))
    qtbot.wait(20)
    assert win.scene.nodes[load].missing == {}
    assert win.properties._meta_edits[1].toPlainText() == "sh010: keep the flare"
    desc.setPlainText("")                           # (no 'Unsaved changes' asked at the test's end)


def test_undoing_an_edit_that_put_both_slots_out_of_date_leaves_no_mark(make_window, qtbot):
    """A sampler in A and the resize after it in B, both looked at; the sampler edited: both out of date, rightly.
    Ctrl+Z put the graph back as both pictures were made from, yet the viewer said 'A is out of date: press V'
    in its alert banner: B's mark had put back, as 'the note before it', A's mark (the viewer has one note)."""
    import test_editor_afternoon
    from app.editor.document import Document
    w = make_window(Document(registry=test_editor_afternoon.registry.__wrapped__()))
    c = w.controller
    s = c.add_node("test.sample", (0, 0))
    r = c.add_node("video.resize", (300, 0))
    c.set_param(r, "width", 8)
    c.set_param(r, "height", 8)
    c.connect(s, "video", r, "video")
    for slot, node in (("A", s), ("B", r)):
        w.view_node(node, slot)
        assert w.runs.wait_idle(60)
    qtbot.waitUntil(lambda: w.viewer.canvas.images["A"] is not None and w.viewer.canvas.images["B"] is not None)
    jobs = len(w.runs.jobs)
    c.set_param(s, "level", 200)
    assert "out of date" in w.viewer.canvas.note and w.viewer.canvas.alert
    w.doc.undo.undo()
    qtbot.wait(300)
    assert "out of date" not in w.viewer.canvas.note and not w.viewer.canvas.alert, w.viewer.canvas.note
    assert len(w.runs.jobs) == jobs                 # and nothing was computed again for it
    w.doc.undo.redo()
    assert "out of date" in w.viewer.canvas.note and w.viewer.canvas.alert


def test_a_missing_plate_in_a_big_folder_is_not_matched_against_it_at_every_look(tmp_path, monkeypatch):
    """The editor looks for the loaders' files at every edit of one (and the workflow page for all of them at
    every link made): each missing plate's 'did you mean' read its whole folder and compared the name with each
    file in it, 0.75 s for a folder of 20,000 frames, seconds a link for a few plates on a network drive. The
    folder is read again only once it has changed, and then the hint names the file put there."""
    import graph_engine.portable as portable
    from app.editor.controller import Controller
    from app.editor.document import Document
    plates = tmp_path / "plates"
    plates.mkdir()
    for i in range(50):
        (plates / f"sh020_comp.{i:04d}.exr").write_bytes(b"")
    doc = Document()
    c = Controller(doc)
    load = c.add_node("io.load_video", (0, 0))
    c.set_param(load, "path", str(plates / "sh010_plate_v002.mp4"))
    read = []
    compare = portable.difflib.get_close_matches
    monkeypatch.setattr(portable.difflib, "get_close_matches", lambda name, names, **kw: read.append(name) or
                        compare(name, names, **kw))
    first = doc.missing_models()[load]["path"].message
    assert doc.missing_models()[load]["path"].message == first and "did you mean" not in first
    assert len(read) == 1, read                     # the folder compared once for both looks
    (plates / "sh010_plate_v001.mp4").write_bytes(b"")     # the plate there under the name before
    os.utime(plates, ns=(os.stat(plates).st_atime_ns, os.stat(plates).st_mtime_ns + 10 ** 9))  # (a coarse clock)
    assert "did you mean 'sh010_plate_v001.mp4'" in doc.missing_models()[load]["path"].message
    assert len(read) == 2


def test_a_first_run_taken_off_the_queue_before_it_started_does_not_spend_the_seeds(win, tmp_path, monkeypatch, qtbot):
    """The reopened run's first Run queued behind a long look (V on the Slow), and taken off the queue before it
    started: it never ran, yet the next Run drew a new random seed."""
    again, seeded, slow, made_with = _reopened_run(win, tmp_path, monkeypatch)
    again.controller.set_param(slow, "steps", 100000)
    again.view_node(slow, "A")
    qtbot.waitUntil(lambda: getattr(again.runs.status.get(slow), "state", None) == "running", timeout=30000)
    queued = again.run()
    assert queued.state == "queued"
    again.runs.cancel(queued)
    again.runs.cancel()                             # the look
    assert again.runs.wait_idle(30) and queued.state == "cancelled"
    again.controller.set_param(slow, "steps", 1)
    job = again.run()
    assert again.runs.wait_idle(60) and job.state == "done", job.error
    assert job.workflow.graph.nodes[seeded].params["seed"] == made_with
