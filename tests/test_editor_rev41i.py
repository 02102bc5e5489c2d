"""Review of editor41b (rev41i): a node Ctrl+G steps out of its frame landed on another node; problems found when
reading a file, and a node skipped for an upstream failure, named nodes by ids the canvas shows nowhere. Driven
through the real window offscreen; any Qt warning fails a test."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor_session  # noqa: E402

make_window, no_modal_dialogs, registry = (test_editor_session.make_window, test_editor_session.no_modal_dialogs,
                                           test_editor_session.registry)
win, private_config, pytestmark = test_editor_session.win, test_editor_session.private_config, test_editor_session.pytestmark


def _rect(win, node):
    return win.scene.nodes[node].sceneBoundingRect()


def test_a_node_ctrl_g_steps_out_of_its_frame_lands_clear_of_the_others(win):
    """Subject Consensus lay between the two nodes grouped, left out of the selection; Ctrl+G stepped it just past
    the frame's nearest edge, onto the Save Video sitting there, one node hiding the other. It lands clear of every
    node and of the frame; an undo puts it back."""
    c = win.controller
    a = c.add_node("generate.test_pattern", (0, 0))
    b = c.add_node("generate.test_pattern", (900, 700))
    left_out = c.add_node("generate.test_pattern", (450, 350))
    c.set_title(left_out, "Subject Consensus")
    win.scene.select_nodes([a, b])
    win.group_selection()
    landed = tuple(win.doc.graph.ui[left_out]["pos"])
    win.doc.undo.undo()
    blocker = c.add_node("io.save_video", landed)       # the spot it stepped to is taken now
    before = dict(win.doc.graph.ui[left_out])
    win.scene.select_nodes([a, b])
    win.group_selection()
    frame = next(iter(win.scene.groups.values())).sceneBoundingRect()
    moved = _rect(win, left_out)
    assert not moved.intersects(frame), (moved, frame)
    for other in (a, b, blocker):
        assert not moved.intersects(_rect(win, other)), other
    win.doc.undo.undo()
    assert not win.scene.groups and win.doc.graph.ui[left_out] == before


def test_problems_read_from_a_file_name_the_node_as_the_canvas_titles_it(make_window, registry, tmp_path):
    """A file with Resize titled 'Upscale' and its width -5: the Log said 'tp.yaml:…: node resize: …' and the
    workflow page 'resize: parameter 'width' -5 …', an id the canvas shows nowhere. They name 'Upscale'."""
    from pathlib import Path
    from app.editor.document import Document
    text = (Path(__file__).resolve().parents[1] / "examples" / "test_pattern.yaml").read_text()
    text = text.replace("width: 640", "width: -5").replace("  resize:\n    type: video.resize\n",
                                                           "  resize:\n    type: video.resize\n    title: Upscale\n")
    path = tmp_path / "tp.yaml"
    path.write_text(text)
    w = make_window(Document.load(path, registry))
    said = [line for line in w.log.toPlainText().splitlines() if "-5" in line]
    assert said and all("node Upscale:" in line and "tp.yaml:" in line for line in said), said
    w.scene.clearSelection()
    from PySide6.QtWidgets import QLabel
    page = [lab.text() for lab in w.properties.findChildren(QLabel) if "-5" in lab.text()]
    assert page and all("Upscale: " in t and "resize:" not in t for t in page), page


def test_a_node_skipped_for_a_failure_upstream_names_it_by_its_title(win, tmp_path, monkeypatch):
    """A Load Video titled 'Plate' whose file is not there failed; the Save Video after it said 'not run:
    load_video failed' on its badge's tip, an id the canvas shows nowhere. It says 'not run: Plate failed'."""
    test_editor_session.run_past_the_precheck(monkeypatch)
    c = win.controller
    load = c.add_node("io.load_video", (0, 0))
    save = c.add_node("io.save_video", (300, 0))
    c.connect(load, "video", save, "video")
    c.set_title(load, "Plate")
    c.set_param(load, "path", str(tmp_path / "nope.mp4"))
    c.set_param(save, "path", str(tmp_path / "out.mkv"))
    job = win.run()
    assert win.runs.wait_idle(60) and job.state == "failed"
    st = win.scene.nodes[save].status
    assert st.state == "skipped" and st.message == "not run: Plate failed", st.message


def test_a_long_runs_warning_names_the_sampler_as_the_canvas_titles_it(win):
    """The Log's estimate lines name the sampler by its title since editor41b, but a long run's advice in the Log
    and the status bar still read 'fewer steps (k_sampler_3 runs 30: …)', an id the canvas shows nowhere."""
    from nodes.generate.estimate import Estimate, SamplerWork
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    c.set_title(pat, "Hero sample")
    work = SamplerWork(pat, unknown="no denoiser files")
    warning = (f"this run will take about 2 h on this CPU. To make it shorter: fewer steps ({pat} runs 30: half as "
               f"many take half the time); a GPU (--device cuda)")
    win.runs._estimated(None, Estimate([work], [work.describe()], 7200.0, warning))
    said = [line for line in win.log.toPlainText().splitlines() if "warning:" in line]
    assert said and "fewer steps (Hero sample runs 30:" in said[0], said
    assert f"({pat} runs" not in win.statusBar().currentMessage() + said[0]


def test_the_view_saved_at_each_autosave_tick_keeps_what_another_editor_saved(tmp_path, monkeypatch):
    """Two editors open (two workflows double-clicked): since editor41b one that is panned writes its view into
    editor.json at each autosave tick, every 30 s, and it wrote its own copy of the whole file read at start: the
    other editor's recent file and favourite node vanished. A change is made to the file as it is on disk."""
    from app.editor.settings import EditorSettings
    path = tmp_path / "editor.json"
    first, second = EditorSettings(path), EditorSettings(path)       # each editor reads the file as it starts
    first.add_recent_file("/shots/a.yaml")
    first.toggle_favourite("video.grade")
    second.remember_view("/shots/b.yaml", (10.0, 20.0, 0.5))          # the other editor's autosave tick
    now = EditorSettings(path)
    assert now.recent_files == ["/shots/a.yaml"] and now.favourites == ["video.grade"]
    assert now.view_of("/shots/b.yaml") == (10.0, 20.0, 0.5)
    # A config folder that cannot be written: this session's changes are still held (the file never changed).
    from app.editor import settings
    monkeypatch.setattr(settings, "atomic_write_text", lambda *a: (_ for _ in ()).throw(OSError("read-only")))
    now.toggle_favourite("video.blur")
    now.add_recent_file("/shots/c.yaml")
    assert now.favourites == ["video.grade", "video.blur"] and now.recent_files[0] == "/shots/c.yaml"


def test_a_problem_put_right_by_a_link_leaves_the_node_unmarked(make_window, registry, tmp_path):
    """A file whose Save Video had no input: zoomed out it showed the red frame and '!' (editor41b) with 'required
    input 'video' (VIDEO) is not connected' in its tip. Connected, the mark stayed until the file was reopened: a
    link made or removed did not look again. It goes once the link is made, and comes back when it is undone."""
    from pathlib import Path
    from app.editor.document import Document
    text = (Path(__file__).resolve().parents[1] / "examples" / "test_pattern.yaml").read_text()
    path = tmp_path / "tp.yaml"
    path.write_text(text.replace("      video: resize.video\n", "").replace("out/test_pattern.mp4", "out/tp.mp4"))
    w = make_window(Document.load(path, registry))
    item = w.scene.nodes["save"]
    assert any("not connected" in t for t in item.trouble()), item.trouble()
    w.controller.connect("resize", "video", "save", "video")
    assert item.trouble() == []
    w.doc.undo.undo()
    assert any("not connected" in t for t in item.trouble()), item.trouble()
