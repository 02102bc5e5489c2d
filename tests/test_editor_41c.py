"""editor41c: the minimap did not mark nodes with problems; a node Ctrl+G stepped out of a new frame could land in
another frame; the Log named another workflow's nodes by id; a file caught mid-write dropped nodes without a word.
Driven through the real window offscreen; any Qt warning fails a test."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

from pathlib import Path  # noqa: E402

import test_editor_session  # noqa: E402

make_window, no_modal_dialogs, registry = (test_editor_session.make_window, test_editor_session.no_modal_dialogs,
                                           test_editor_session.registry)
win, private_config, pytestmark = test_editor_session.win, test_editor_session.private_config, test_editor_session.pytestmark

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "test_pattern.yaml"


def _red_on_minimap(w, node) -> int:
    """How many pixels of the minimap's picture over `node` are the canvas' problem red."""
    from app.editor import theme
    mini = w.view.minimap
    img = mini._pixmap.toImage()
    s = mini._target().width() / mini._area.width()
    r = mini._map(w.scene.nodes[node].sceneBoundingRect(), s).adjusted(-2, -2, 2, 2).toAlignedRect()
    red = theme.REFUSED
    dpr = img.devicePixelRatio()
    return sum(1 for x in range(int(r.left() * dpr), int(r.right() * dpr))
               for y in range(int(r.top() * dpr), int(r.bottom() * dpr))
               if img.valid(x, y) and img.pixelColor(x, y).rgb() == red.rgb())


def test_the_minimap_marks_a_node_with_a_problem(make_window, registry, tmp_path, qtbot):
    """Zoomed out the canvas draws a red frame and '!' on a node with a problem (editor41b), but the minimap, the
    one place the whole graph shows, drew it as any other node. It is outlined in red there, and the mark goes once
    a link puts the problem right."""
    from app.editor.document import Document
    path = tmp_path / "tp.yaml"
    path.write_text(EXAMPLE.read_text().replace("      video: resize.video\n", "")
                    .replace("out/test_pattern.mp4", "out/tp.mp4"))
    w = make_window(Document.load(path, registry))
    w.view.minimap.rebuild()
    assert _red_on_minimap(w, "save") > 0
    assert _red_on_minimap(w, "resize") == 0
    w.controller.connect("resize", "video", "save", "video")
    qtbot.waitUntil(lambda: _red_on_minimap(w, "save") == 0, timeout=3000)


def test_the_log_names_another_workflows_nodes_as_its_canvas_titled_them(win):
    """File > New while a render runs: the render goes on, and its Log lines said 'pattern_1: …' and
    '✘ …: pattern_1 failed', ids its canvas never showed (or the new workflow's title of a node of the same id).
    They name the node as the job's own workflow titles it."""
    from app.editor.runner import Job
    from graph_engine.executor import RunResult
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    c.set_title(pat, "Hero plate")
    old = win.doc
    job = Job(900, "run", "shot", old.workflow_of(old.run_graph(None), None), state="running", owner=old)
    win.runs.jobs.append(job)
    old.undo.setClean()
    win.new_document()
    assert c is not win.controller and win.controller.add_node("generate.test_pattern", (0, 0)) == pat
    win.controller.set_title(pat, "Other")      # the new workflow's node of the same id
    win.runs._on_event(job.id, {"event": "node_failed", "node": pat, "message": "no memory"})
    win.runs._on_done(job.id, RunResult(ok=False, failed={pat: "no memory"}), "")
    said = win.log.toPlainText()
    assert "Hero plate: no memory" in said and "✘ shot: Hero plate failed" in said, said
    assert "Other" not in said and f"{pat}:" not in said, said


def test_a_node_ctrl_g_steps_out_of_its_frame_lands_clear_of_other_frames(win):
    """A node left out of the selection steps out of the new frame to the nearest spot clear of the nodes and notes
    (rev41i), but that spot could lie in another group's frame, and the node joined that group. It lands clear of
    every frame it was not in."""
    c = win.controller
    a = c.add_node("generate.test_pattern", (0, 0))
    b = c.add_node("generate.test_pattern", (900, 700))
    left_out = c.add_node("generate.test_pattern", (450, 350))
    win.scene.select_nodes([a, b])
    win.group_selection()
    x, y = win.doc.graph.ui[left_out]["pos"][:2]
    w, h = c.size_of(left_out)
    win.doc.undo.undo()
    other = c.add_group([x - 10, y - 10, w + 400, h + 400], "Plates")   # the spot it stepped to is in this frame
    win.scene.select_nodes([a, b])
    win.group_selection()
    moved = win.scene.nodes[left_out].sceneBoundingRect()
    for gid, frame in win.scene.groups.items():
        assert not moved.intersects(frame.sceneBoundingRect()), (gid, other, moved, frame.sceneBoundingRect())


def test_a_file_read_again_with_fewer_nodes_says_so(make_window, registry, tmp_path):
    """Another program caught mid-write at a line break leaves valid YAML with fewer nodes: back in the window it was
    read again as one undo step, saying only 'read again as it is there now', and the artist did not notice two nodes
    gone. The Log says how many fewer and that Undo brings them back."""
    from app.editor.document import Document
    path = tmp_path / "tp.yaml"
    text = EXAMPLE.read_text().replace("out/test_pattern.mp4", "out/tp.mp4")
    path.write_text(text)
    w = make_window(Document.load(path, registry))
    path.write_text("".join(text.splitlines(keepends=True)[:12]))     # cut after the first node's block
    w._look_at_disk()
    assert list(w.doc.graph.nodes) == ["pattern"]
    said = [line for line in w.log.toPlainText().splitlines() if "fewer nodes" in line]
    assert len(said) == 1 and "the file on disk now has 2 fewer nodes: Undo brings them back" in said[0], said
    w.doc.undo.undo()
    assert set(w.doc.graph.nodes) == {"pattern", "resize", "save"}
