"""A working session in the editor, as an artist coming from ComfyUI, Nuke or Blender runs one
(probe of stop 18, editor): renames with other edits in between, notes, long titles, the node
search. Driven through the real window offscreen; any Qt warning fails a test."""
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QRectF, Qt  # noqa: E402
from PySide6.QtGui import QImage, QPainter, QTextCursor  # noqa: E402
from PySide6.QtWidgets import QApplication, QPlainTextEdit, QStyleOptionGraphicsItem  # noqa: E402

from graph_engine.workflow import parse_workflow  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402
from app.editor import node_item  # noqa: E402
from app.editor.document import Document  # noqa: E402
from app.editor.settings import EditorSettings  # noqa: E402
from app.editor.window import MainWindow  # noqa: E402
from test_editor import chain  # noqa: E402
from tests.editor_run import run_past_the_precheck  # noqa: E402

make_window, no_modal_dialogs, registry = test_editor.make_window, test_editor.no_modal_dialogs, test_editor.registry

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


@pytest.fixture(autouse=True)
def private_config(monkeypatch, tmp_path):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def win(make_window):
    return make_window()


def test_a_rename_keeps_its_text_when_the_graph_changes_meanwhile(win, qtbot):
    """F2 on a node titled 'Hero grade', then any other edit before Enter (an align, new seeds, a
    note from the menu): the field emptied, and Enter renamed the node to nothing."""
    p, r, s = chain(win)
    win.controller.set_title(r, "Hero grade")
    gid = win.controller.group_selection([p], "Plates")
    for what, key in (("node", r), ("group", gid)):
        win.view.rename(what, key)
        ed = win.view._editor
        win.controller.move({s: (700.0, 40.0)})             # another edit while the field is open
        assert ed.text() == ("Hero grade" if what == "node" else "Plates")
        qtbot.keyClick(ed, Qt.Key_Return)
    assert win.doc.graph.nodes[r].title == "Hero grade"
    assert win.doc.graph.ui["_groups"][gid]["title"] == "Plates"


def test_a_note_added_while_a_field_is_open_gets_the_keyboard(win, qtbot):
    """Node > Add Sticky Note with a rename field open: the note showed its text selected, but
    what was typed went into the field and renamed the node."""
    p, r, s = chain(win)
    win.view.rename("node", r)
    win.add_note()
    assert win.view._editor is None
    (nid,) = win.scene.notes
    note = win.scene.notes[nid]
    assert win.scene.focusItem() is note.text_item
    qtbot.keyClicks(win.view, "shot 12")
    win.scene.clearFocus()                                  # a click elsewhere applies the text
    assert win.doc.graph.ui["_notes"][nid]["text"] == "shot 12"
    assert win.doc.graph.nodes[r].title in ("", None) and win.scene.nodes[r].title == "Resize"


def test_a_long_title_reads_from_its_start_in_the_properties(win, qtbot):
    """A node retitled 'A very long custom node title …' showed 'itle that somebody typed for their
    grade' in the properties' title field: its end, the cursor left after the last letter."""
    p, r, s = chain(win)
    title = "A very long custom node title that somebody typed for their grade, with notes on the plate"
    win.controller.set_title(r, title)
    win.scene.select_nodes([r])
    field = win.properties.title_edit
    assert field.text() == title and field.cursorPosition() == 0 and field.toolTip() == title
    win.controller.set_title(r, title + " again")              # renamed on the canvas: the same
    assert win.properties.title_edit.cursorPosition() == 0


def test_the_node_search_never_scrolls_sideways(win, qtbot):
    """'Encode Prompt with Image (HunyuanVideo) · Cond' was cut at the list's edge and a sideways
    scroll bar sat under the list; a long title now ends in '…' and the tooltip names it whole."""
    from PySide6.QtCore import QPoint
    from app.editor.palette import TYPE_ROLE
    win.view.open_palette(QPoint(40, 40))
    pal = win.view.palette
    lst = pal.list
    longest = max((lst.item(i) for i in range(lst.count()) if lst.item(i).data(TYPE_ROLE)),
                  key=lambda it: lst.fontMetrics().horizontalAdvance(it.text()))
    assert lst.fontMetrics().horizontalAdvance(longest.text()) > lst.viewport().width()    # one is too long
    assert not lst.horizontalScrollBar().isVisible()
    spec = win.doc.registry.get(longest.data(TYPE_ROLE))
    assert longest.toolTip().startswith(f"{spec.title}  ·  {spec.category}")


def test_cancelling_a_view_keeps_the_picture_before_and_says_cancelled(win, qtbot):
    """V on a slow node, then Cancel: the picture on screen was wiped for a red 'slow could not be
    computed: see the log', as if something had failed. It stays, and the viewer says the view
    was cancelled."""
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    c.set_param(pat, "frames", 4)
    slow = c.add_node("test.slow", (300, 0))
    c.set_param(slow, "steps", 100000)
    c.connect(pat, "video", slow, "video")
    win.view_node(pat, "A")
    qtbot.waitUntil(lambda: win.viewer.sources["A"] is not None, timeout=30000)
    assert win.runs.wait_idle(30)
    win.view_node(slow, "A")
    qtbot.waitUntil(lambda: win.runs.status.get(slow) is not None and win.runs.status[slow].state == "running",
                    timeout=30000)
    win.runs.cancel()
    assert win.runs.wait_idle(30)
    qtbot.waitUntil(lambda: "cancelled" in win.viewer.canvas.note, timeout=5000)
    # The viewer names what it shows as the canvas titles the node (editor41b), not by id.
    named = win.controller.named
    assert win.viewer.sources["A"] is not None and win.viewer.sources["A"].label == f"{named(pat)}.video"
    assert win.viewer.canvas.images["A"] is not None and not win.viewer.canvas.alert
    assert win.viewer.canvas.note == (f"A: computing {named(slow)}.video was cancelled; this is still "
                                      f"{named(pat)}.video (V computes it)")


def test_the_run_bar_says_cancelling_until_the_run_stops(win, qtbot):
    """Cancel during a step that cannot stop midway (kinograph-mini read from disk: 10 s on a laptop)
    left the bar saying 'running default.yaml' until it ended: Cancel looked ignored."""
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    slow = c.add_node("test.slow", (300, 0))
    c.set_param(slow, "steps", 100000)
    c.set_title(slow, "Hero denoise")           # the bar names it as the canvas does, not by its id
    c.connect(pat, "video", slow, "video")
    job = win.run([slow])
    qtbot.waitUntil(lambda: win.runs.status.get(slow) is not None and win.runs.status[slow].state == "running",
                    timeout=30000)
    assert win.queue_label.text().strip() == f"running {job.label}"
    win.runs.cancel()              # the worker's 'stopped' arrives through the event loop, not yet run
    assert win.queue_label.text().strip() == f"cancelling {job.label} (stops when Hero denoise ends its step)"
    assert win.runs.wait_idle(30)
    assert win.queue_label.text().strip() == "idle"


def _rect(ui, gid):
    from PySide6.QtCore import QRectF
    return QRectF(*ui["_groups"][gid]["rect"])


def test_a_group_copies_pastes_and_duplicates_with_what_is_inside_it(make_window, qtbot):
    """A group (frame) selected by its title bar: Ctrl+C said 'Nothing selected to copy', Ctrl+D
    did nothing, and a sticky note copied alone pasted as 'the workflow has no nodes yet: add some
    in the editor (`kinograph gui FILE`)'. The group now goes with its nodes, their links and its
    notes, into another window too, and lands around its copies."""
    a, b = make_window(), make_window()
    p, r, s = chain(a)
    gid = a.controller.group_selection([p, r], "Plate prep")
    x, y, w, h = a.doc.graph.ui["_groups"][gid]["rect"]
    a.controller.update_group(gid, rect=[x, y, w, h + 300])
    a.controller.add_note((x + 20.0, y + h + 40.0), "denoise first")    # inside the group too
    a.scene.clearSelection()
    a.scene.groups[gid].setSelected(True)
    assert a.copy()
    b.view.setFocus()
    pasted = b.paste()
    g = b.doc.graph
    assert sorted(g.nodes[n].type for n in pasted) == ["generate.test_pattern", "video.resize"]
    assert [n for n in pasted if g.inputs.get(n)] and len(list(g.links())) == 1
    assert [v["text"] for v in g.ui["_notes"].values()] == ["denoise first"]
    (new_gid,) = g.ui["_groups"]
    assert g.ui["_groups"][new_gid]["title"] == "Plate prep"
    frame = _rect(g.ui, new_gid)
    for n in pasted:
        assert frame.contains(b.scene.nodes[n].sceneBoundingRect())
    # Duplicate: one step, the copy beside the original, the original untouched.
    steps = a.doc.undo.count()
    a.duplicate()
    assert a.doc.undo.count() == steps + 1 and len(a.doc.graph.ui["_groups"]) == 2
    assert len(a.doc.graph.nodes) == 5 and len(a.doc.graph.ui["_notes"]) == 2
    # Cut takes the group with what it holds; the clipboard brings it back.
    a.doc.undo.undo()
    a.scene.clearSelection()
    a.scene.groups[gid].setSelected(True)
    a.cut()
    assert set(a.doc.graph.nodes) == {s} and not a.doc.graph.ui.get("_groups") and not a.doc.graph.ui.get("_notes")
    a.paste()
    assert len(a.doc.graph.nodes) == 3 and len(a.doc.graph.ui["_groups"]) == 1
    # A note alone.
    a.scene.clearSelection()
    (nid,) = a.doc.graph.ui["_notes"]
    a.scene.notes[nid].setSelected(True)
    a.copy()
    a.paste()
    assert sorted(v["text"] for v in a.doc.graph.ui["_notes"].values()) == ["denoise first"] * 2
    assert a.statusBar().currentMessage() == "" or "nothing to paste" not in a.statusBar().currentMessage()


def test_a_workflow_of_notes_and_groups_alone_opens_with_them(win, tmp_path):
    """A canvas with only a sticky note and a group (a plan before the nodes), saved and opened
    again, came back blank: the file's layout was not read when it had no nodes, and saving it
    once more wrote the notes away."""
    from app.editor.document import Document
    nid = win.controller.add_note((0.0, 0.0), "shot 12: match the plate's grain")
    gid = win.controller.add_group([0, 100, 300, 200], "Comp")
    path = tmp_path / "plan.yaml"
    win.doc.save(path)
    again = Document.load(path, win.doc.registry)
    assert again.graph.ui["_notes"][nid]["text"] == "shot 12: match the plate's grain"
    assert again.graph.ui["_groups"][gid]["title"] == "Comp"


def test_a_node_s_parameters_are_in_view_with_its_help_a_click_away(win, qtbot):
    """A sampler's six paragraphs of help came first in the properties: its parameters began below
    the panel's fold, and every node meant scrolling to reach them. The first paragraph is shown,
    the rest behind 'More about this node', which stays open for the next node."""
    from PySide6.QtWidgets import QLabel
    n = win.controller.add_node("generate.sample", (0, 0))
    win.scene.select_nodes([n])
    panel = win.properties
    seed = panel.editors["seed"]

    def top(w):
        return w.mapTo(panel.widget(), w.rect().topLeft()).y()
    # Laid out (a widget not yet in place stands at 0 with Qt's default 640x480, or squashed).
    qtbot.waitUntil(lambda: top(seed) > top(panel.editors["steps"]) > 0
                    and seed.height() >= seed.minimumSizeHint().height())
    assert panel.verticalScrollBar().value() == 0 and top(seed) + seed.height() <= panel.viewport().height()
    help_text = panel.findChild(QLabel, "HelpText")
    spec = win.doc.registry.get("generate.sample")
    assert help_text.text() == spec.summary
    panel.findChild(QLabel, "HelpMore").linkActivated.emit("#")
    assert "Two samplers can share one schedule" in help_text.text()
    win.scene.select_nodes([win.controller.add_node("generate.sample", (300, 0))])
    assert "Two samplers can share one schedule" in panel.findChild(QLabel, "HelpText").text()


def _contrast(a, b) -> float:
    """WCAG contrast ratio of two QColors."""
    def lum(c):
        ch = [x / 255 for x in (c.red(), c.green(), c.blue())]
        ch = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in ch]
        return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_a_field_s_name_reads_over_its_slider_fill(win):
    """'denoise' at 1 and 'strength' at its maximum: the name was drawn dim grey on the blue slider
    fill, 2.6:1, and all but vanished; over the fill it is drawn bright, on the bare field dim."""
    from app.editor import theme
    n = win.controller.add_node("generate.sample", (0, 0))
    item = win.scene.nodes[n]
    win.controller.set_param(n, "denoise", 1.0)
    assert _contrast(item.param_label_color("denoise"), theme.FIELD_FILL) >= 4.5
    win.controller.set_param(n, "denoise", 0.0)
    assert _contrast(item.param_label_color("denoise"), theme.FIELD) >= 4.5
    assert item.param_label_color("denoise") == theme.TEXT_DIM          # names stay quieter than values


def test_a_colour_the_node_would_refuse_is_named_where_it_is_typed(win, qtbot, tmp_path):
    """relight.directional's colour: 'red' typed in the properties drew a red swatch and ran until
    the run reached the node (after a sampler's minutes) to be refused; 'ff0000', which it takes,
    drew a black swatch. The field now says what it expects, and validation refuses before a run."""
    from graph_engine.validate import validate
    from graph_engine.workflow import Workflow
    n = win.controller.add_node("relight.directional", (0, 0))
    win.scene.select_nodes([n])
    ed = win.properties.editors["color"]
    for typed, error in (("red", "color expects a colour written #rrggbb (e.g. #ffd8a8), got 'red'"),
                         ("ff0000", ""), ("#FFD8A8", "")):
        ed.edit.setFocus()
        ed.edit.selectAll()
        qtbot.keyClicks(ed.edit, typed)
        qtbot.keyClick(ed.edit, Qt.Key_Return)
        assert win.doc.graph.nodes[n].params["color"] == typed           # what is typed is what runs
        assert ed.error.text() == error and ed.error.isVisibleTo(ed) == bool(error)
        assert ("#000" in ed.swatch.styleSheet()) == bool(error)
        if not error:
            assert f"#{typed.lstrip('#')}" in ed.swatch.styleSheet()
    win.controller.set_param(n, "color", "red")
    problems = validate(Workflow(win.doc.graph, None), win.doc.registry)
    assert any("color" in p.message and "#rrggbb" in p.message for p in problems)


def test_one_node_and_one_link_are_counted_in_the_singular(win):
    """The status bar said '1 nodes · 100%' and the workflow page '2 nodes, 1 links'."""
    from PySide6.QtWidgets import QLabel
    p = win.controller.add_node("generate.test_pattern", (0, 0))
    assert win.zoom_label.text().startswith("1 node · ")
    r = win.controller.add_node("video.resize", (300, 0))
    win.controller.connect(p, "video", r, "video")
    win.scene.select_nodes([])
    win.properties._refresh_workflow()
    assert any(label.text() == "2 nodes, 1 link" for label in win.properties.findChildren(QLabel))


def test_footage_pasted_into_a_workflow_in_another_folder_is_still_found(make_window, registry, tmp_path):
    """A Load Image reading 'footage/plate.png' beside a/shot.yaml, copied into b/comp.yaml: it
    read b/footage/plate.png, which is not there, and the run failed. What a node reads keeps
    pointing at the same file; what it writes stays relative, beside the workflow it is pasted in."""
    from PySide6.QtGui import QImage
    from app.editor.document import Document
    (tmp_path / "a" / "footage").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    img = QImage(8, 8, QImage.Format_RGB32)
    img.fill(0x336699)
    assert img.save(str(tmp_path / "a" / "footage" / "plate.png"))
    (tmp_path / "a" / "shot.yaml").write_text(
        "kinograph: 1\nnodes:\n  plate: {type: io.load_image, params: {path: footage/plate.png}}\n"
        "  save: {type: io.save_video, inputs: {video: plate.image}, params: {path: out/shot.mp4}}\n")
    (tmp_path / "b" / "comp.yaml").write_text("kinograph: 1\nnodes:\n  pattern: {type: generate.test_pattern}\n")
    a = make_window(Document.load(tmp_path / "a" / "shot.yaml", registry))
    b = make_window(Document.load(tmp_path / "b" / "comp.yaml", registry))
    a.scene.select_nodes(["plate", "save"])
    a.copy()
    assert a.doc.graph.nodes["plate"].params["path"] == "footage/plate.png"     # the original is untouched
    ids = b.paste()
    params = {b.doc.graph.nodes[n].type: b.doc.graph.nodes[n].params for n in ids}
    read = params["io.load_image"]["path"]
    assert (b.doc.workflow.base_dir / read).resolve() == (tmp_path / "a" / "footage" / "plate.png").resolve()
    assert params["io.save_video"]["path"] == "out/shot.mp4"


def test_the_node_search_knows_comfyui_names_and_colour_correct(win, qtbot):
    """Typed by someone coming from ComfyUI, 'CLIPTextEncode', 'EmptyLatentImage' and
    'CheckpointLoaderSimple' found nothing, nor did Nuke's 'ColorCorrect'; they find the node a
    ComfyUI import makes of them, and the help line names the ComfyUI nodes it stands for."""
    from PySide6.QtCore import QPoint
    win.view.open_palette(QPoint(40, 40))
    pal = win.view.palette
    for typed, first in (("CLIPTextEncode", "encode.text"), ("EmptyLatentImage", "latent.empty"),
                         ("CheckpointLoaderSimple", "load.model"), ("VHS_VideoCombine", "io.save_video"),
                         ("colour correct", "color.grade"), ("resize", "video.resize")):
        pal.edit.clear()
        qtbot.keyClicks(pal.edit, typed)
        assert pal.results()[:1] == [first], typed
    pal.edit.clear()
    qtbot.keyClicks(pal.edit, "CLIPTextEncode")
    assert "ComfyUI: CLIPTextEncode" in pal.help.text()


def test_a_workflow_that_cannot_be_opened_from_a_file_manager_opens_the_editor_saying_why(qtbot, monkeypatch,
                                                                                         tmp_path, capsys):
    """`kinograph gui shot.yaml` on a damaged file (the way a file manager's Open With runs it)
    printed to a terminal nobody had and quit: no window, no word. The editor opens, empty, and
    says which file and why."""
    from PySide6.QtWidgets import QApplication, QMessageBox
    from app.editor import main as editor_main, window as window_mod
    bad = tmp_path / "shot.yaml"
    bad.write_text("kinograph: 1\nnodes:\n  a: [1, 2\n")
    said = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a, **k: said.append((title, text)))
    monkeypatch.setattr(QApplication, "exec", lambda *a: 0)
    before = list(window_mod.WINDOWS)
    assert editor_main.run_editor(str(bad)) == 0
    new = [w for w in window_mod.WINDOWS if w not in before]
    try:
        (w,) = new
        assert w.isVisible() and not w.doc.graph.nodes and w.doc.path is None
        ((title, text),) = said
        assert title == "Cannot open workflow" and text.startswith("Cannot open shot.yaml:") and "not valid YAML" in text
        assert "cannot open" in capsys.readouterr().err
    finally:
        for w in new:
            w.close()


def test_a_node_edited_after_a_run_says_so_and_so_does_what_it_feeds(win, qtbot, tmp_path):
    """After a run every badge said 'done'; widening the resize then left them all saying done, as
    if the render on disk had the new width. The resize and the save it feeds now say 'edited'
    (the pattern, untouched, still done), an undo back restores their badges, and the next run
    computes them again."""
    p, r, s = chain(win, out=tmp_path / "out.mkv")
    job = win.run()
    assert win.runs.wait_idle(60) and job.state == "done"
    badge = {n: lambda n=n: win.scene.nodes[n].status.state for n in (p, r, s)}
    assert [badge[n]() for n in (p, r, s)] == ["done"] * 3
    win.controller.set_param(r, "width", 8)
    qtbot.waitUntil(lambda: badge[r]() == "edited")
    assert [badge[n]() for n in (p, r, s)] == ["done", "edited", "edited"]
    win.scene.select_nodes([s])
    assert "changed since the last run" in win.properties.status_label.text()
    win.doc.undo.undo()
    qtbot.waitUntil(lambda: badge[r]() == "done")
    assert [badge[n]() for n in (p, r, s)] == ["done"] * 3
    win.doc.undo.redo()
    qtbot.waitUntil(lambda: badge[s]() == "edited")
    job = win.run()
    assert win.runs.wait_idle(60) and job.state == "done"
    assert [badge[n]() for n in (p, r, s)] == ["cached", "done", "done"]


def test_a_failed_node_put_right_says_edited_not_failed(win, qtbot, tmp_path, monkeypatch):
    """A Load Video run on a path that does not exist failed; with the path put right, the node still said
    'failed: video file not found: nope.mp4', as if the fix had not been taken, and the Save Video it feeds
    'skipped', until the next run."""
    run_past_the_precheck(monkeypatch)
    c = win.controller
    load = c.add_node("io.load_video", (0, 0))
    save = c.add_node("io.save_video", (300, 0))
    c.connect(load, "video", save, "video")
    c.set_param(load, "path", str(tmp_path / "nope.mp4"))
    c.set_param(save, "path", str(tmp_path / "out.mkv"))
    job = win.run()
    assert win.runs.wait_idle(60) and job.state == "failed"
    status = lambda: win.scene.nodes[load].status
    assert (status().state, win.scene.nodes[save].status.state) == ("failed", "skipped")
    c.set_param(load, "path", str(tmp_path / "plate.mp4"))
    qtbot.waitUntil(lambda: status().state == "edited")
    assert win.scene.nodes[save].status.state == "edited"
    win.scene.select_nodes([load])
    shown = win.properties.status_label.text()
    assert "the next run tries it again" in shown and "nope.mp4" in shown      # what failed, said as past
    win.doc.undo.undo()
    qtbot.waitUntil(lambda: status().state == "failed")


def test_a_colour_parameter_shows_its_colour_on_the_node(win):
    """relight.directional's colour read '#ff8040' on the node, as text only: it shows a swatch of
    that colour at the end of its field, the value beside it; none for a colour the node refuses."""
    from PySide6.QtGui import QColor
    n = win.controller.add_node("relight.directional", (0, 0))
    item = win.scene.nodes[n]
    win.controller.set_param(n, "color", "#ff8040")
    rect, colour = item.color_swatch("color")
    field = item.param_rect("color")
    assert colour == QColor("#ff8040") and field.contains(rect) and rect.right() < field.right()
    assert rect.left() > field.center().x()                      # at the value's end, not over the name
    win.controller.set_param(n, "color", "red")
    assert item.color_swatch("color") is None and item.color_swatch("intensity") is None


def test_a_decimal_comma_typed_into_a_number_is_its_point(win, qtbot):
    """'2,5' typed into relight's intensity (a German keypad's decimal key gives the comma) was
    refused key by key and set 2 without a word; on the canvas it was refused. Both read 2.5."""
    from test_editor import drag
    n = win.controller.add_node("relight.directional", (0, 0))
    win.scene.select_nodes([n])
    spin = win.properties.editors["intensity"].spin
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "2,5")
    qtbot.keyClick(spin, Qt.Key_Return)
    assert win.doc.graph.nodes[n].params["intensity"] == 2.5 and spin.text() == "2.50"
    item = win.scene.nodes[n]
    field = item.mapToScene(item.param_rect("ambient").center())
    drag(win.view, field, field, steps=1)                    # a click: type the value
    ed = win.view._editor
    ed.selectAll()
    qtbot.keyClicks(ed, "0,75")
    qtbot.keyClick(ed, Qt.Key_Return)
    assert win.doc.graph.nodes[n].params["ambient"] == 0.75


# -- probe of stop 34: an afternoon with ComfyUI's templates ----------------------------------------------------
def _painted_labels(item, monkeypatch):
    """[(left, right, baseline, text)] of the socket labels `item` paints, in its own coordinates."""
    drawn = []
    label = node_item.LABEL
    monkeypatch.setattr(label, "left", lambda p, x, cy, s: drawn.append((x, x + label.width(s), cy, s)))
    monkeypatch.setattr(label, "right", lambda p, x, cy, s: drawn.append((x - label.width(s), x, cy, s)))
    image = QImage(400, 400, QImage.Format_ARGB32)
    painter = QPainter(image)
    painter.translate(50, 50)
    item.paint(painter, QStyleOptionGraphicsItem())
    painter.end()
    return drawn


def test_a_placeholders_long_comfyui_socket_names_do_not_draw_over_each_other(win, tmp_path, monkeypatch):
    """SCAIL2ColoredMask imported from video_wan21_scail2_character_replacement.json (a red placeholder keeping
    ComfyUI's socket names): its rows read 'driving_track_dapose_video_mask', the input's and the output's names
    drawn over each other."""
    path = tmp_path / "scail.yaml"
    path.write_text("kinograph: 1\nnodes:\n  pat: {type: generate.test_pattern}\n"
                    "  mask: {type: comfyui.SCAIL2ColoredMask,\n"
                    "         inputs: {driving_track_data: pat.video, ref_track_data: pat.video}}\n"
                    "  a: {type: video.reverse, inputs: {video: mask.pose_video_mask}}\n"
                    "  b: {type: video.reverse, inputs: {video: mask.reference_image_mask}}\n")
    assert win.open_path(str(path)) is win
    item = win.scene.nodes["mask"]
    drawn = [d for d in _painted_labels(item, monkeypatch) if d[2] > node_item.HEADER_H]
    assert len(drawn) == 4
    for left, right, _, text in drawn:
        assert 0 <= left and right <= item.w, text
    rows = {}
    for d in drawn:
        rows.setdefault(d[2], []).append(d)
    assert len(rows) == 2
    for (l1, r1, _, t1), (l2, r2, _, t2) in (sorted(row) for row in rows.values()):
        assert r1 + 4 <= l2, (t1, t2)
        # each keeps the end that tells it from its neighbours (image_1 from image_2)
        assert t1.endswith("_data") and t2.endswith("_mask"), (t1, t2)


def _click_field(w, qtbot, node, name):
    """A click on a field drawn on the node, as the mouse gives it."""
    item = w.scene.nodes[node]
    w.view.centerOn(item)
    at = w.view.mapFromScene(item.mapRectToScene(item.param_rect(name)).center())
    qtbot.mouseClick(w.view.viewport(), Qt.LeftButton, Qt.NoModifier, at)


def test_ctrl_c_and_ctrl_v_after_a_click_on_a_prompt_copy_and_paste_the_nodes(win, qtbot):
    """Nodes copied, then a click on a prompt node's text (to pick where to paste, or to select that node): the
    click puts the keyboard in the panel's box for the prompt, and Ctrl+V pasted the nodes' YAML into the prompt,
    applied as the focus left; Ctrl+C there copied nothing, and the next paste brought the nodes copied before."""
    p, r, _ = chain(win)
    c = win.controller
    prompt = c.add_node("encode.text", (0, 300))
    c.set_param(prompt, "text", "a red fox")
    win.scene.select_nodes([p, r])
    win.view.setFocus()
    assert win.copy()
    _click_field(win, qtbot, prompt, "text")
    box = QApplication.focusWidget()
    assert isinstance(box, QPlainTextEdit) and box.toPlainText() == "a red fox"      # the keyboard is in the panel
    before = set(win.doc.graph.nodes)
    qtbot.keyClick(box, Qt.Key_V, Qt.ControlModifier)
    pasted = set(win.doc.graph.nodes) - before
    assert {win.doc.graph.nodes[n].type for n in pasted} == {"generate.test_pattern", "video.resize"}
    assert win.view.hasFocus()
    assert win.doc.graph.nodes[prompt].params["text"] == "a red fox" and box.toPlainText() == "a red fox"
    assert "Pasted 2 nodes" in win.statusBar().currentMessage()

    # Ctrl+C in the prompt's box, nothing typed there selected: the node is what is copied
    _click_field(win, qtbot, prompt, "text")
    box = QApplication.focusWidget()
    qtbot.keyClick(box, Qt.Key_C, Qt.ControlModifier)
    assert set(parse_workflow(QApplication.clipboard().text())[0].graph.nodes) == {prompt}
    # text selected in the box is copied as text, and text on the clipboard is pasted into the box
    box.selectAll()
    qtbot.keyClick(box, Qt.Key_C, Qt.ControlModifier)
    assert QApplication.clipboard().text() == "a red fox"
    box.moveCursor(QTextCursor.End)
    qtbot.keyClick(box, Qt.Key_V, Qt.ControlModifier)
    assert box.toPlainText() == "a red foxa red fox" and len(win.doc.graph.nodes) == len(before) + 2
    win.commit_pending()                # applied, so that closing the window asks nothing

    # a click on a number opens its field on the canvas: Ctrl+V there pastes the nodes, the number stays
    win.scene.select_nodes([p, r])
    win.view.setFocus()
    assert win.copy()
    skip = win.doc.graph.nodes[prompt].params.get("clip_skip")
    _click_field(win, qtbot, prompt, "clip_skip")
    field, before = win.view._editor, set(win.doc.graph.nodes)
    assert field is not None and field.hasFocus()
    qtbot.keyClick(field, Qt.Key_V, Qt.ControlModifier)
    assert len(set(win.doc.graph.nodes) - before) == 2
    assert win.view._editor is None and win.doc.graph.nodes[prompt].params.get("clip_skip") == skip


def test_a_workflow_reopens_at_the_view_it_was_closed_at(make_window, qtbot, tmp_path, registry):
    """Zoomed in on the sampler, saved, closed: reopened, the canvas was back at the workflow's start at its first
    zoom, and the artist had to find the sampler again (ComfyUI reopens a workflow where it was left)."""
    w = MainWindow(Document(registry=registry), settings=EditorSettings(tmp_path / "editor.json"))
    w.resize(1600, 1000)
    w.show()
    qtbot.waitExposed(w)
    p, r, s = chain(w)
    path = tmp_path / "shot.yaml"
    w.doc.save(path)
    w.view.zoom_by(1.6 / w.view.zoom())
    w.view.centerOn(w.scene.nodes[s])
    left = w.view.mapToScene(0, 0)
    w.close()
    again = make_window()
    assert again.open_path(str(path)) is again
    qtbot.wait(50)                      # the first view is set once the canvas has its size
    top_left = again.view.mapToScene(0, 0)
    assert again.view.zoom() == pytest.approx(1.6, rel=1e-3)
    assert (top_left.x(), top_left.y()) == (pytest.approx(left.x(), abs=2), pytest.approx(left.y(), abs=2))


def _overlaps(win):
    rects = {n: i.sceneBoundingRect() for n, i in win.scene.nodes.items()}
    return [(a, b) for a in rects for b in rects if a < b and rects[a].intersects(rects[b])]


def _cursor_on_resize(win, qtbot):
    """A chain with nothing selected, the cursor on its middle node and the keyboard on the canvas."""
    from PySide6.QtGui import QCursor
    p, r, s = chain(win)
    win.scene.clearSelection()
    on_r = win.scene.nodes[r].sceneBoundingRect().center()
    QCursor.setPos(win.view.viewport().mapToGlobal(win.view.mapFromScene(on_r)))
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    return p, r, s


def test_a_node_added_or_pasted_at_the_cursor_lands_beside_the_node_under_it(win, qtbot):
    """Tab with the cursor on a node (nothing selected), then Enter: the new node was laid on the
    one under the cursor, hiding it. Ctrl+V with the cursor on a node did the same, and Ctrl+D
    put the copy 40 px from its original, over its fields."""
    p, r, s = _cursor_on_resize(win, qtbot)
    qtbot.keyClick(win.view, Qt.Key_Tab)
    qtbot.keyClicks(win.view.palette.edit, "grade")
    qtbot.keyClick(win.view.palette.edit, Qt.Key_Return)
    (new,) = set(win.doc.graph.nodes) - {p, r, s}
    assert not _overlaps(win), "the node added with Tab covers another"
    # Near the cursor still: beside the node it was on, not at the far end of the workflow.
    assert win.scene.nodes[new].sceneBoundingRect().center().x() < win.scene.nodes[s].sceneBoundingRect().right()
    win.scene.select_nodes([p, r])
    assert win.copy()
    pasted = win.paste()
    assert len(pasted) == 2 and not _overlaps(win), "the pasted nodes cover others"
    assert win.doc.graph.inputs[pasted[1]]["video"] == (pasted[0], "video")
    win.scene.select_nodes([s])
    win.duplicate()
    assert len(win.doc.graph.nodes) == 7 and not _overlaps(win), "the duplicate covers its original"


def _canvas_on_screen(win):
    """The canvas as it stands on screen (the window's backing store), not as a fresh paint would draw it."""
    from PySide6.QtCore import QPoint, QRect
    vp = win.view.viewport()
    return win.screen().grabWindow(win.winId()).toImage().copy(QRect(vp.mapTo(win, QPoint(0, 0)), vp.size()))


def test_the_empty_canvas_hint_goes_when_nodes_are_pasted_into_a_new_workflow(win, qtbot):
    """File > New after a workflow, then Ctrl+V: the first nodes came, but the hint ('Tab or double-click: add a
    node…') stayed drawn on the canvas around them, until something else repainted it."""
    from PySide6.QtGui import QGuiApplication
    p, r, s = chain(win)
    win.scene.select_nodes([p, r])
    assert win.copy()
    win.doc.undo.setClean()
    win.new_document()
    qtbot.wait(300)
    hint = _canvas_on_screen(win)
    win.controller.paste(QGuiApplication.clipboard().text(), (0.0, 0.0))
    qtbot.wait(300)
    shown = _canvas_on_screen(win)
    win.view.viewport().repaint()
    qtbot.wait(300)
    assert shown != hint and shown == _canvas_on_screen(win), "part of the canvas was left as it was drawn before"


def test_a_note_added_with_the_cursor_on_a_node_is_not_hidden_under_it(win, qtbot):
    """N with the cursor on a node: the note was laid at the cursor, beneath the node (notes are drawn under nodes),
    and what was typed into it could not be seen."""
    p, r, s = _cursor_on_resize(win, qtbot)
    qtbot.keyClick(win.view, Qt.Key_N)
    (nid,) = win.scene.notes
    note = win.scene.notes[nid]
    assert note.text_item.hasFocus()
    covered = [n for n, i in win.scene.nodes.items() if i.sceneBoundingRect().intersects(note.sceneBoundingRect())]
    assert not covered, f"the note is under {covered}"


def test_a_duplicated_note_does_not_cover_its_original(win):
    """Ctrl+D on a note laid the copy 40 px from it, over its text: only the nodes of what is pasted were placed
    clear of the workflow, a note alone not at all."""
    c = win.controller
    note = c.add_note((0.0, 0.0), "Grade the plate first")
    node = c.add_node("generate.test_pattern", (300.0, 0.0))
    for notes, nodes in (([note], []), ([note], [node])):
        before = set(win.scene.notes)
        c.duplicate(nodes, notes)
        (copy,) = set(win.scene.notes) - before
        rect = win.scene.notes[copy].sceneBoundingRect()
        covered = [n for n in list(win.scene.nodes) + list(before)
                   if (win.scene.nodes.get(n) or win.scene.notes.get(n)).sceneBoundingRect().intersects(rect)]
        assert not covered, f"the copied note covers {covered}"


def test_the_free_spot_is_the_nearest_clear_place_as_a_search_of_every_place_finds_it():
    """Placement beside what a node would cover, checked against trying every place flush with another node's side
    (or its own) in order of distance, then height, then x: the search of all of them took seconds on 500 nodes."""
    import random
    from app.editor.layout import clear_spot

    def every_place(rect, others, gap=20.0):
        x, y, w, h = rect
        near = [(ox - gap, oy - gap, ox + ow + gap, oy + oh + gap) for ox, oy, ow, oh in others]
        xs = {x} | {v for l, _, r, _ in near for v in (r, l - w)}
        ys = {y} | {v for _, t, _, b in near for v in (b, t - h)}
        for _, py, px in sorted(((px - x) ** 2 + (py - y) ** 2, py, px) for px in xs for py in ys):
            if not any(px < r and l < px + w and py < b and t < py + h for l, t, r, b in near):
                return px, py

    # As near above, below, left and right: above (the highest, then the leftmost).
    assert clear_spot((0, 0, 100, 100), [(0, 0, 100, 100)]) == every_place((0, 0, 100, 100), [(0, 0, 100, 100)])
    rng = random.Random(7)
    for case in range(60):
        others = [(rng.randrange(0, 3000, 10), rng.randrange(0, 2000, 10), rng.choice((240, 300)),
                   rng.randrange(60, 300, 10)) for _ in range(rng.randrange(1, 40))]
        rect = (rng.randrange(0, 3000, 10), rng.randrange(0, 2000, 10), rng.choice((220, 240, 900)), rng.choice((120, 600)))
        assert clear_spot(rect, others) == every_place(rect, others), case


@pytest.mark.parametrize("spread", [(1100, 100, 690, 1580, 1200, 1580, 820, 1120), (0, 0, 0, 900, 1400, 900, 1400, 0)])
def test_frame_all_leaves_no_node_under_the_minimap(win, spread):
    """Stable Audio 3's template framed with F (View > Frame All): its Generate Text node, at the
    bottom right of the graph, lay under the minimap, only its title's corner in sight."""
    c = win.controller
    ids = [c.add_node(t, (spread[2 * k], spread[2 * k + 1]))
           for k, t in enumerate(("generate.test_pattern", "video.resize", "io.save_video", "video.resize"))]
    win.view.frame_all()
    mini = win.view.minimap.geometry().translated(-win.view.viewport().pos())
    assert win.view.minimap.isVisible()
    port = win.view.viewport().rect()
    for nid in ids:
        box = QRectF(win.view.mapFromScene(win.scene.nodes[nid].sceneBoundingRect()).boundingRect())
        assert port.contains(box.toRect()), (nid, box, port)
        assert not box.intersects(QRectF(mini)), (nid, box, mini)


def test_pasted_nodes_are_not_left_under_the_minimap(win, qtbot):
    """A group with its nodes copied from FLUX.3 Klein's template and pasted into the Wan 2.2 one: the view
    scrolled to the pasted nodes, but one of them lay wholly under the minimap, as if it had not come."""
    p, r, s = chain(win)
    view = win.view
    win._select_all()
    win.copy()
    view.centerOn(win.scene.nodes_rect().center())
    mini = QRectF(view.minimap.geometry().translated(-view.viewport().pos()))
    ids = win.paste()
    assert len(ids) == 3
    for nid in ids:
        box = QRectF(view.mapFromScene(win.scene.nodes[nid].sceneBoundingRect()).boundingRect())
        assert view.viewport().rect().contains(box.toRect()) and not box.intersects(mini), (nid, box, mini)


def test_a_note_added_or_a_node_selected_by_the_keyboard_is_not_left_under_the_minimap(win, qtbot):
    """N with the cursor in the canvas' bottom right corner laid the note under the minimap, and what was typed
    into it could not be seen; Alt+Down selected a node lying under the minimap and left it there."""
    from PySide6.QtGui import QCursor
    view = win.view
    p, r, s = chain(win)
    far = win.controller.add_node("video.resize", (300.0, 600.0))          # straight below resize
    mini = QRectF(view.minimap.geometry().translated(-view.viewport().pos()))
    view.centerOn(win.scene.nodes[far].sceneBoundingRect().center() + QRectF(view.viewport().rect()).center()
                  - mini.center())                                          # far under the minimap

    def clear(item):
        box = QRectF(view.mapFromScene(item.sceneBoundingRect()).boundingRect())
        return view.viewport().rect().contains(box.toRect()) and not box.intersects(mini)
    assert not clear(win.scene.nodes[far])
    win.scene.select_nodes([r])
    view.setFocus()
    qtbot.waitUntil(view.hasFocus)
    qtbot.keyClick(view, Qt.Key_Down, Qt.AltModifier)
    assert win.scene.selected_nodes() == [far] and clear(win.scene.nodes[far])
    QCursor.setPos(view.viewport().mapToGlobal(mini.center().toPoint()))
    qtbot.keyClick(view, Qt.Key_N)
    (nid,) = win.scene.notes
    assert clear(win.scene.notes[nid])


def test_nodes_from_one_subgraph_keep_their_own_names_on_the_canvas(win):
    """Wan 2.2's template titles the nodes of its subgraph 'Image to Video (Wan2.2) / CLIP Text Encode (Positive
    Prompt)' and '... (Negative Prompt)': both read 'Image to Video (Wan2.2) …' on the canvas, and the positive prompt
    could not be told from the negative one. The subgraph's name gives way first."""
    c = win.controller
    shown = {}
    for k, which in enumerate(("Positive", "Negative")):
        n = c.add_node("encode.text", (0, 300 * k))
        c.set_title(n, f"Image to Video (Wan2.2) / CLIP Text Encode ({which} Prompt)")
        shown[which] = win.scene.nodes[n].title
    assert "(Posit" in shown["Positive"] and "(Nega" in shown["Negative"], shown      # told apart
    r = c.add_node("video.resize", (600, 0))
    c.set_title(r, "Grade / Resize")                    # room for all of it: shown whole
    assert win.scene.nodes[r].title == "Grade / Resize"


def test_two_model_names_that_differ_in_the_middle_read_apart_on_the_canvas(win):
    """Wan 2.2's two Load Diffusion Model nodes, wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors and
    ..._low_noise_...: both read 'wan2.2_i2...fetensors' on the canvas (cut in the middle, where they differ, to keep
    '.safetensors'), so which one fed which sampler could not be seen. A weights file is cut at its end, as ComfyUI
    cuts it; a name that fits is shown whole."""
    from app.editor.node_item import field_texts, format_value
    c = win.controller
    shown = []
    for k, which in enumerate(("high", "low")):
        n = c.add_node("load.diffusion_model", (0, 200 * k))
        c.set_param(n, "name", f"wan2.2_i2v_{which}_noise_14B_fp8_scaled.safetensors")
        item = win.scene.nodes[n]
        p = item.spec.params["name"]
        width = item._param_rect(list(item.spec.params).index("name")).adjusted(6, 0, -6, 0).width()
        shown.append(field_texts("name", format_value(p, item.inst.params["name"]), width, file=True)[1])
    assert "high" in shown[0] and "low" in shown[1], shown
    assert field_texts("name", "wan_2.1_vae.safetensors", 400, file=True)[1] == "wan_2.1_vae.safetensors"
