"""The editor driven from the keyboard and the mouse with real events: the wheel, the clipboard
keys, Tab, a wire dropped on a node, zoom and the help sheet (issue: probe of stop 15, probekeys).
Driven through the real window offscreen; any Qt warning fails a test."""
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from graph_engine import Param  # noqa: E402
from graph_engine.types import VIDEO  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402
from test_editor import chain, registry_with  # noqa: E402

make_window, no_modal_dialogs = test_editor.make_window, test_editor.no_modal_dialogs

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


def _long_names(ctx, video: VIDEO,
                temporal_consistency_strength_for_the_background: float = Param(0.5, min=0.0, max=1.0),
                keep_the_original_grain_structure_when_upscaling: bool = Param(True)) -> VIDEO:
    """A user's node with long parameter names."""
    return video


@pytest.fixture(scope="module")
def registry():
    return registry_with(test_long_names=_long_names)


@pytest.fixture(autouse=True)
def private_config(monkeypatch, tmp_path):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def win(make_window):
    return make_window()


def wheel(widget, notches: int = -1) -> None:
    """One turn of the mouse wheel over the middle of `widget`, as the cursor passing over it sends."""
    pos = QPointF(widget.rect().center())
    QApplication.sendEvent(widget, QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0),
                                               QPoint(0, 120 * notches), Qt.NoButton, Qt.NoModifier,
                                               Qt.NoScrollPhase, False))


# -- the wheel over the properties panel ------------------------------------------------------------
def test_scrolling_the_properties_over_fields_changes_no_value(win, qtbot):
    c = win.controller
    n = c.add_node("generate.sample", (0, 0))
    win.scene.select_nodes([n])
    win.view.setFocus()
    eds = win.properties.editors
    before, steps = dict(win.doc.graph.nodes[n].params), win.doc.undo.count()
    targets = [eds["steps"].spin, eds["cfg"].spin, eds["cfg"].slider, eds["sampler"].box, eds["seed"].spin,
               eds["seed"].mode]
    for t in targets:
        wheel(t)
    # Each of these changed its value (an undo step each) while the user only scrolled the panel.
    assert win.doc.graph.nodes[n].params == before and win.doc.undo.count() == steps
    assert eds["seed"].mode.currentText() == "fixed"
    bar = win.properties.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)      # the sampler's fields do not fit: the panel scrolls
    at = bar.value()
    wheel(eds["sampler"].box)
    assert bar.value() > at
    eds["steps"].spin.setFocus()            # clicked (or tabbed) into, the field takes the wheel
    qtbot.waitUntil(eds["steps"].spin.hasFocus)
    wheel(eds["steps"].spin, 1)
    assert win.doc.graph.nodes[n].params["steps"] == before["steps"] + 1


# -- clipboard keys belong to the canvas ------------------------------------------------------------
def test_ctrl_x_and_ctrl_c_in_a_panel_act_on_its_text_never_on_the_selected_node(win, qtbot):
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QLabel
    p, r, s = chain(win)
    win.scene.select_nodes([r])
    help_text = win.properties.findChild(QLabel, "HelpText")
    help_text.setFocus()                        # the user selects the node's help to copy it
    qtbot.waitUntil(help_text.hasFocus)
    qtbot.keyClick(help_text, Qt.Key_A, Qt.ControlModifier)
    qtbot.keyClick(help_text, Qt.Key_C, Qt.ControlModifier)
    assert QGuiApplication.clipboard().text() == help_text.selectedText() != ""
    steps = win.doc.undo.count()
    for key in (Qt.Key_X, Qt.Key_V, Qt.Key_D):
        qtbot.keyClick(help_text, key, Qt.ControlModifier)
    assert r in win.doc.graph.nodes, "Ctrl+X with the focus on the help text cut the node away"
    assert sorted(win.doc.graph.nodes) == sorted([p, r, s]) and win.doc.undo.count() == steps
    choice = win.properties.editors["method"].box       # a choice field has no text to cut
    choice.setFocus()
    qtbot.waitUntil(choice.hasFocus)
    qtbot.keyClick(choice, Qt.Key_X, Qt.ControlModifier)
    assert r in win.doc.graph.nodes and win.doc.undo.count() == steps
    win.view.setFocus()                         # on the canvas the keys are the node's
    qtbot.waitUntil(win.view.hasFocus)
    qtbot.keyClick(win.view, Qt.Key_X, Qt.ControlModifier)
    assert r not in win.doc.graph.nodes
    qtbot.keyClick(win.view, Qt.Key_V, Qt.ControlModifier)
    assert [i.type for i in win.doc.graph.nodes.values()].count("video.resize") == 1


def test_copy_with_nothing_selected_leaves_the_clipboard_and_says_so(win, qtbot):
    from PySide6.QtGui import QGuiApplication
    chain(win)
    QGuiApplication.clipboard().setText("/footage/shot_042/plate.mov")
    win.scene.clearSelection()
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    for key in (Qt.Key_C, Qt.Key_X):
        qtbot.keyClick(win.view, key, Qt.ControlModifier)
        assert QGuiApplication.clipboard().text() == "/footage/shot_042/plate.mov"
        assert "Nothing selected to copy" in win.statusBar().currentMessage()
    assert len(win.doc.graph.nodes) == 3


# -- a big graph stays responsive -----------------------------------------------------------------
def test_pasting_many_nodes_checks_the_workflow_once_not_once_per_node(win, qtbot, monkeypatch):
    from PySide6.QtWidgets import QLabel
    c = win.controller
    ids = []
    for i in range(20):
        p = c.add_node("generate.test_pattern", (0, i * 200))
        r = c.add_node("video.resize", (260, i * 200))
        c.connect(p, "video", r, "video")
        ids += [p, r]
    text = c.copy_text(ids)
    win.scene.clearSelection()                  # the panel shows the workflow page and its problems
    QApplication.processEvents()
    checks = []
    real = type(win.doc).validate
    monkeypatch.setattr(type(win.doc), "validate", lambda doc: checks.append(1) or real(doc))
    new = c.paste(text)                         # one undo step: 40 nodes and 20 links
    assert len(new) == 40 and not checks, "the whole graph was validated during the paste, at each node"
    qtbot.waitUntil(lambda: len(checks) == 1)
    win.doc.undo.undo()
    qtbot.waitUntil(lambda: len(checks) == 2)
    win.doc.undo.redo()
    qtbot.waitUntil(lambda: len(checks) == 3)
    QApplication.processEvents()
    assert len(checks) == 3
    page = " ".join(lab.text() for lab in win.properties.findChildren(QLabel))
    assert "80 nodes, 40 links" in page          # and the page is up to date once the step is done


# -- the keyboard alone -------------------------------------------------------------------------------
def test_tab_leaves_a_prompt_for_the_next_field_and_types_no_tab(win, qtbot):
    n = win.controller.add_node("encode.text", (0, 0))
    win.scene.select_nodes([n])
    eds = win.properties.editors
    prompt = eds["text"].edit
    qtbot.waitUntil(lambda: eds["negative"].edit.isVisible())
    prompt.setFocus()
    qtbot.waitUntil(prompt.hasFocus)
    prompt.selectAll()
    qtbot.keyClicks(prompt, "a red circle moving right")
    qtbot.keyClick(prompt, Qt.Key_Tab)
    assert win.doc.graph.nodes[n].params["text"] == "a red circle moving right"     # no '\t' in it
    assert not prompt.hasFocus() and QApplication.focusWidget() is eds["negative"].edit
    qtbot.keyClicks(QApplication.focusWidget(), "blurry")
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Tab)
    assert win.doc.graph.nodes[n].params["negative"] == "blurry"
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Backtab, Qt.ShiftModifier)
    assert QApplication.focusWidget() is eds["negative"].edit


# -- wires dropped on a node ---------------------------------------------------------------------------
def test_a_wire_dropped_on_a_nodes_body_connects_to_the_port_that_fits_or_says_why_not(win):
    from test_editor import drag, port
    c = win.controller
    p = c.add_node("generate.test_pattern", (0, 0))
    r = c.add_node("video.resize", (400, 0))
    lat = c.add_node("latent.empty", (0, 400))
    QApplication.processEvents()
    body = win.scene.nodes[r].sceneBoundingRect().center()
    drag(win.view, port(win, p, "video", False), body)
    # It opened the add-node search ('Nodes that take VIDEO') as if dropped on empty canvas.
    assert win.doc.graph.inputs.get(r) == {"video": (p, "video")} and not win.view.palette.isVisible()
    win.doc.undo.undo()
    assert r not in win.doc.graph.inputs or not win.doc.graph.inputs[r]
    steps = win.doc.undo.count()
    drag(win.view, port(win, lat, "latent", False), body)
    assert not win.view.palette.isVisible() and win.doc.undo.count() == steps
    assert win.view.toast.isVisible()
    assert win.view.toast.text() == "Not connected: resize has no input that takes LATENT"
    # from an input to a body: the output that fits
    drag(win.view, port(win, r, "video", True), win.scene.nodes[p].sceneBoundingRect().center())
    assert win.doc.graph.inputs[r] == {"video": (p, "video")}


# -- zoom ------------------------------------------------------------------------------------------------
def test_the_status_bar_says_the_zoom_the_canvas_is_at(win, qtbot):
    chain(win)
    QApplication.processEvents()
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    qtbot.keyClick(win.view, Qt.Key_Equal, Qt.ControlModifier)
    assert round(win.view.zoom() * 100) == 125
    assert win.zoom_label.text() == "3 nodes · 125%"
    for _ in range(40):
        qtbot.keyClick(win.view, Qt.Key_Minus, Qt.ControlModifier)
    assert win.zoom_label.text() == "3 nodes · 5%"          # the far limit
    qtbot.keyClick(win.view, Qt.Key_Home)
    assert win.zoom_label.text() == f"3 nodes · {round(win.view.zoom() * 100)}%" != "3 nodes · 5%"


def test_a_node_placed_far_out_can_still_be_brought_on_screen(win, tmp_path, qtbot):
    far = tmp_path / "far.yaml"
    far.write_text("kinograph: 1\nnodes:\n  a: {type: generate.test_pattern}\n"
                   "  b: {type: video.resize, inputs: {video: a.video}}\n"
                   "ui:\n  a: {pos: [0, 0]}\n  b: {pos: [250000, 180000]}\n")
    win.open_path(far)
    QApplication.processEvents()

    def on_screen(nid):
        shown = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
        return shown.contains(win.scene.nodes[nid].sceneBoundingRect())

    win.go_to_node("b")                         # the log's link to a node, or select + F
    assert on_screen("b"), "the view stopped at 100000 scene units: node b could not be reached"
    win.go_to_node("a")
    assert on_screen("a")
    mm = win.view.minimap                       # a click on b in the minimap goes there too
    mm.rebuild()
    b = win.scene.nodes["b"].sceneBoundingRect()
    t, area = mm._target(), mm._area
    s = t.width() / area.width()
    mm._go(QPointF(t.x() + (b.center().x() - area.x()) * s, t.y() + (b.center().y() - area.y()) * s))
    assert on_screen("b")


# -- a small window ------------------------------------------------------------------------------------
def test_in_a_small_window_the_search_fits_the_canvas_and_the_minimap_leaves_it_usable(win, qtbot):
    chain(win)
    win.resize(640, 420)
    view = win.view
    qtbot.waitUntil(lambda: view.width() < 400)
    QApplication.processEvents()
    mm = view.minimap
    assert mm.width() <= view.width() // 3 + 1 and mm.height() <= view.height() // 3 + 1, \
        f"minimap {mm.width()}x{mm.height()} on a {view.width()}x{view.height()} canvas"
    assert view.rect().contains(mm.geometry())
    view.setFocus()
    qtbot.waitUntil(view.hasFocus)
    qtbot.keyClick(view, Qt.Key_Tab)
    pal = view.palette
    assert pal.isVisible() and view.rect().contains(pal.geometry()), \
        f"search {pal.geometry()} runs off the {view.width()}x{view.height()} canvas"
    qtbot.keyClicks(pal.edit, "resize")
    qtbot.keyClick(pal.edit, Qt.Key_Return)
    assert "video.resize" in [i.type for i in win.doc.graph.nodes.values()]
    win.resize(1600, 1000)                      # back to full size: full-size search and minimap
    qtbot.waitUntil(lambda: view.width() > 800)
    QApplication.processEvents()
    assert (mm.width(), mm.height()) == (220, 140)
    view.open_palette(view.rect().center())
    assert (pal.width(), pal.height()) == (360, 380)


# -- the shortcut sheet ------------------------------------------------------------------------------------
def test_the_shortcut_sheet_lists_every_key_of_a_command(win):
    import html
    import re

    from PySide6.QtWidgets import QLabel
    win.help.toggle()
    text = html.unescape(re.sub("<[^>]+>", " ", win.help.findChild(QLabel).text()))
    rows = " ".join(text.split())
    for keys, what in (("Del / Backspace / X", "Delete (reconnecting)"), ("Ctrl+Shift+Z / Ctrl+Y", "Redo"),
                       ("Ctrl+= / Ctrl++", "Zoom In"), ("Ctrl+Return / Ctrl+Enter", "Run Workflow"),
                       ("F1 / ?", "Keyboard Shortcuts")):
        assert f"{keys} {what}" in rows


def _search(win, qtbot, query: str):
    """Tab on the focused canvas opens the node search; the query is typed into it."""
    view = win.view
    view.setFocus()
    qtbot.waitUntil(view.hasFocus)
    qtbot.keyClick(view, Qt.Key_Tab)
    qtbot.keyClicks(view.palette.edit, query)
    return view.palette


def test_tab_in_the_node_search_steps_through_the_results_and_keeps_the_query(win, qtbot):
    pal = _search(win, qtbot, "blur")
    results = pal.results()
    assert len(results) >= 2 and pal.list.currentItem().data(Qt.UserRole) == results[0]
    qtbot.keyClick(pal.edit, Qt.Key_Tab)
    # Tab reached the canvas, which opened the search anew: the query was gone.
    assert pal.isVisible() and pal.edit.text() == "blur"
    assert pal.list.currentItem().data(Qt.UserRole) == results[1]
    qtbot.keyClick(pal.edit, Qt.Key_Backtab, Qt.ShiftModifier)
    assert pal.list.currentItem().data(Qt.UserRole) == results[0]
    qtbot.keyClick(pal.edit, Qt.Key_Tab)
    qtbot.keyClick(pal.edit, Qt.Key_Return)
    assert [i.type for i in win.doc.graph.nodes.values()] == [results[1]]


# -- undo says what it takes back ----------------------------------------------------------------------------
def test_ctrl_z_says_which_step_it_took_back_and_the_menu_names_it_first(win, qtbot):
    p, r, s = chain(win)
    c = win.controller
    c.set_param(r, "width", 8)
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    last = win.doc.undo.undoText()
    assert win.undo_action.text() == f"&Undo {last}"
    qtbot.keyClick(win.view, Qt.Key_Z, Qt.ControlModifier)
    assert win.statusBar().currentMessage() == f"Undone: {last}"
    assert win.redo_action.text() == f"&Redo {last}"
    while win.doc.undo.canUndo():
        qtbot.keyClick(win.view, Qt.Key_Z, Qt.ControlModifier)
    assert win.undo_action.text() == "&Undo" and not win.undo_action.isEnabled()
    qtbot.keyClick(win.view, Qt.Key_Y, Qt.ControlModifier)
    assert win.statusBar().currentMessage().startswith("Redone: Add ")


def test_a_search_that_finds_nothing_says_so(win, qtbot):
    pal = _search(win, qtbot, "zzqqxx")
    qtbot.keyClick(pal.edit, Qt.Key_Return)
    assert pal.isVisible() and not pal.results() and not win.doc.graph.nodes
    assert "No node matches “zzqqxx”" in pal.help.text()
    pal.edit.setText("resize")
    assert "No node" not in pal.help.text() and pal.results()


def test_the_keyboard_alone_adds_a_node_sets_its_parameters_and_comes_back(win, qtbot):
    view = win.view
    qtbot.keyClick(_search(win, qtbot, "resize").edit, Qt.Key_Return)
    (nid,) = win.doc.graph.nodes
    assert view.hasFocus() and win.scene.selected_nodes() == [nid]
    eds = win.properties.editors
    qtbot.waitUntil(lambda: eds["width"].spin.isVisible())
    qtbot.keyClick(view, Qt.Key_Return)         # into its parameters: there was no key for that
    width = eds["width"].spin
    assert width.hasFocus()
    width.lineEdit().selectAll()
    qtbot.keyClicks(width, "320")
    qtbot.keyClick(width, Qt.Key_Tab)
    assert eds["height"].spin.hasFocus() and win.doc.graph.nodes[nid].params["width"] == 320
    qtbot.keyClick(eds["height"].spin, Qt.Key_Escape)
    assert view.hasFocus()                      # back on the canvas, where its keys work again
    qtbot.keyClick(view, Qt.Key_B)
    assert win.doc.graph.nodes[nid].bypass


def test_ctrl_z_in_a_field_after_enter_undoes_that_edit_in_the_workflow(win, qtbot):
    c = win.controller
    r = c.add_node("video.resize", (0, 0))
    t = c.add_node("encode.text", (0, 300))
    g = win.doc.graph
    win.scene.select_nodes([r])
    width = win.properties.editors["width"].spin
    qtbot.waitUntil(width.isVisible)
    width.setFocus()
    qtbot.waitUntil(width.hasFocus)
    width.lineEdit().selectAll()
    qtbot.keyClicks(width, "320")
    qtbot.keyClick(width, Qt.Key_Return)
    assert g.nodes[r].params["width"] == 320
    qtbot.keyClick(width, Qt.Key_Z, Qt.ControlModifier)       # did nothing at all
    assert g.nodes[r].params["width"] == 512 and width.text() == "512"
    qtbot.keyClick(width, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert g.nodes[r].params["width"] == 320 and width.text() == "320"

    win.scene.select_nodes([t])
    prompt = win.properties.editors["text"].edit
    qtbot.waitUntil(prompt.isVisible)
    prompt.setFocus()
    qtbot.waitUntil(prompt.hasFocus)
    before = g.nodes[t].params["text"]
    prompt.selectAll()
    qtbot.keyClicks(prompt, "a blue square")
    steps = win.doc.undo.count()
    qtbot.keyClick(prompt, Qt.Key_Z, Qt.ControlModifier)      # typing not applied yet: the field's own undo
    assert win.doc.undo.count() == steps and g.nodes[t].params["text"] == before
    qtbot.keyClicks(prompt, "a blue square")
    qtbot.keyClick(prompt, Qt.Key_Return, Qt.ControlModifier)
    assert g.nodes[t].params["text"] == "a blue square"
    steps = win.doc.undo.count()
    qtbot.keyClick(prompt, Qt.Key_Z, Qt.ControlModifier)      # applied: the workflow's undo
    assert g.nodes[t].params["text"] == before and prompt.toPlainText() == before
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    # It took the text back on screen only, and leaving the field applied it again as a new edit.
    assert g.nodes[t].params["text"] == before and win.doc.undo.count() == steps and win.doc.undo.canRedo()


# -- long names ----------------------------------------------------------------------------------------------
def test_a_long_parameter_name_stays_on_its_node_and_leaves_the_value_room(win):
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtWidgets import QStyleOptionGraphicsItem

    from app.editor.geometry import PORT_R
    n = win.controller.add_node("test.long_names", (0, 0))
    item = win.scene.nodes[n]
    img = QImage(int(item.w) + 300, int(item.h) + 20, QImage.Format_ARGB32)
    img.fill(0)
    p = QPainter(img)
    p.translate(10, 10)
    item.paint(p, QStyleOptionGraphicsItem(), None)
    p.end()
    right = int(10 + item.w + PORT_R + 3)
    painted = [(x, y) for x in range(right, img.width(), 2) for y in range(0, img.height(), 2)
               if img.pixelColor(x, y).alpha() > 0]
    assert not painted, f"drawn past the node's right edge, e.g. at {painted[0]}"
    from app.editor.node_item import LABEL, field_texts
    field = item.param_rect("temporal_consistency_strength_for_the_background").adjusted(6, 0, -6, 0)
    label, value = field_texts("temporal_consistency_strength_for_the_background", "0.5", field.width())
    assert value == "0.5" and label.startswith("temporal_") and label.endswith("…")
    assert LABEL.width(label) + LABEL.width(value) <= field.width()


# -- what is typed is what runs ---------------------------------------------------------------------------------
def test_json_that_does_not_parse_is_applied_and_named_not_silently_replaced_by_the_last_good_one(win, qtbot):
    n = win.controller.add_node("motion.tracks", (0, 0))
    good = '{"tracks": [{"points": [[0, 0], [10, 10]]}]}'
    win.controller.set_param(n, "points", good)
    win.scene.select_nodes([n])
    ed = win.properties.editors["points"]
    qtbot.waitUntil(ed.edit.isVisible)
    ed.edit.setFocus()
    qtbot.waitUntil(ed.edit.hasFocus)
    ed.edit.selectAll()
    qtbot.keyClicks(ed.edit, '{"tracks": [{"points": [[0, 0], [40, 10]]}]')      # one brace short
    qtbot.keyClick(ed.edit, Qt.Key_Return, Qt.ControlModifier)
    # The model kept the previous text (the run used it) and the reason was only in a tooltip.
    assert win.doc.graph.nodes[n].params["points"] == '{"tracks": [{"points": [[0, 0], [40, 10]]}]'
    assert ed.error.isVisible() and ed.error.text().startswith("not valid JSON")
    ed.edit.setPlainText(good)
    ed.flush()
    assert win.doc.graph.nodes[n].params["points"] == good and not ed.error.isVisible()


def test_a_description_being_typed_is_saved_with_the_workflow(win, qtbot, tmp_path):
    from PySide6.QtWidgets import QLineEdit
    win.controller.add_node("video.resize", (0, 0))
    path = tmp_path / "shot.yaml"
    win.doc.save(path)
    win.scene.clearSelection()
    QApplication.processEvents()
    name = next(e for e in win.properties.findChildren(QLineEdit) if e.placeholderText() == "Name")
    qtbot.waitUntil(name.isVisible)
    name.setFocus()
    qtbot.waitUntil(name.hasFocus)
    qtbot.keyClicks(name, "Shot 42")
    qtbot.keyClick(name, Qt.Key_Tab)                # on to the description, and type it
    desc = QApplication.focusWidget()
    qtbot.keyClicks(desc, "grade for the trailer")
    qtbot.keyClick(desc, Qt.Key_S, Qt.ControlModifier)
    # Saved without it, and marked saved: closing did not ask, and the text was gone.
    assert "description: grade for the trailer" in path.read_text()
    assert win.doc.graph.description == "grade for the trailer" and not win.doc.modified
    qtbot.keyClicks(desc, ", v2")
    win.view.setFocus()                             # leaving the box applies it, as a prompt
    qtbot.waitUntil(win.view.hasFocus)
    assert win.doc.graph.description == "grade for the trailer, v2" and win.doc.modified


def test_the_canvas_keys_act_on_a_node_just_added_from_the_library(win, qtbot):
    lib = win.library
    lib.tree.setFocus()
    qtbot.waitUntil(lib.tree.hasFocus)
    lib.filter.setText("reverse")
    leaf = lib.tree.topLevelItem(0).child(0)
    lib.tree.itemActivated.emit(leaf, 0)            # a double-click (or Enter) in the library
    (nid,) = win.doc.graph.nodes
    focus = QApplication.focusWidget()
    qtbot.keyClick(focus, Qt.Key_D, Qt.ControlModifier)
    assert len(win.doc.graph.nodes) == 2, "Ctrl+D did nothing: the focus stayed in the library"
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Delete)
    assert list(win.doc.graph.nodes) == [nid]
    from PySide6.QtCore import QMimeData
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    lib.tree.setFocus()                             # dragged from the library onto the canvas
    qtbot.waitUntil(lib.tree.hasFocus)
    mime = QMimeData()
    mime.setData("application/x-kinograph-node", b"video.resize")
    vp = win.view.viewport()
    QApplication.sendEvent(vp, QDragEnterEvent(QPoint(300, 300), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    QApplication.sendEvent(vp, QDropEvent(QPointF(300, 300), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    assert len(win.doc.graph.nodes) == 2
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_B)
    assert [i.bypass for i in win.doc.graph.nodes.values()] == [False, True]


def test_pasting_what_is_not_nodes_says_what_the_clipboard_holds(win, qtbot):
    from PySide6.QtGui import QGuiApplication
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    for text, said in (("a red circle moving right", "the clipboard holds text, not Kinograph nodes"),
                       ('{"last_node_id": 3, "nodes": [{"id": 3, "type": "KSampler"}], "links": []}',
                        "the clipboard holds a ComfyUI workflow, not Kinograph nodes: save it as a .json file"),
                       ('{"3": {"class_type": "KSampler", "inputs": {}}}', "holds a ComfyUI workflow")):
        QGuiApplication.clipboard().setText(text)
        qtbot.keyClick(win.view, Qt.Key_V, Qt.ControlModifier)
        assert said in win.statusBar().currentMessage() and not win.doc.graph.nodes


def test_tab_in_a_field_typed_on_the_canvas_applies_it_and_opens_no_search(win, qtbot):
    from test_editor import drag
    p, r, s = chain(win)
    item = win.scene.nodes[r]
    field = item.mapToScene(item.param_rect("width").center())
    drag(win.view, field, field, steps=1)           # a click on the field: type its value
    ed = win.view._editor
    qtbot.keyClicks(ed, "24")
    qtbot.keyClick(ed, Qt.Key_Tab)
    assert win.doc.graph.nodes[r].params["width"] == 24
    # On to the height, the node's last field typed on the canvas (the others are menus); past it, the canvas.
    assert win.view._editor is not None and win.view._editor.text() == "16" and not win.view.palette.isVisible()
    qtbot.keyClick(win.view._editor, Qt.Key_Tab)
    assert win.view._editor is None and not win.view.palette.isVisible() and win.view.hasFocus()


def test_a_command_that_needs_a_selection_says_so_instead_of_doing_nothing(win, qtbot):
    chain(win)
    win.scene.clearSelection()
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    steps = win.doc.undo.count()
    for key, mods, said in ((Qt.Key_B, Qt.NoModifier, "Bypass: select a node first"),
                            (Qt.Key_V, Qt.NoModifier, "View Output (A): select a node first"),
                            (Qt.Key_F2, Qt.NoModifier, "Rename: select a node first"),
                            (Qt.Key_G, Qt.ControlModifier, "Group Selection: select a node first"),
                            (Qt.Key_Left, Qt.ControlModifier | Qt.AltModifier, "Align Left: select 2 nodes or more"),
                            (Qt.Key_Return, Qt.ControlModifier | Qt.ShiftModifier, "Run to Selected: select a node")):
        win.statusBar().clearMessage()
        qtbot.keyClick(win.view, key, mods)
        assert win.statusBar().currentMessage().startswith(said)
    assert win.doc.undo.count() == steps
    assert not win.runs.jobs, "Run to Selected with nothing selected rendered the whole workflow"
    win._select_all()
    qtbot.keyClick(win.view, Qt.Key_F2)
    assert win.statusBar().currentMessage() == "Rename: select one node (3 are selected)"


def test_hovering_a_node_whose_title_is_cut_short_shows_it_whole(win):
    n = win.controller.add_node("io.load_video", (0, 0))
    title = "Main plate of shot 042, graded, from the server"
    win.controller.set_title(n, title)
    item = win.scene.nodes[n]
    assert item.title != title and item.title.endswith("…")       # elided on the node
    from PySide6.QtCore import QEvent

    from test_editor import _mouse
    QApplication.processEvents()
    head = win.view.mapFromScene(item.mapToScene(QPointF(item.w / 2, 12)))
    for dx in (0, 3):                           # the cursor coming to rest on the title
        _mouse(win.view.viewport(), QEvent.MouseMove, QPointF(head) + QPointF(dx, 0), Qt.NoButton, Qt.NoButton)
    assert item.toolTip().startswith(title + "\n")


def test_esc_closes_the_shortcut_sheet_and_keys_never_reach_the_nodes_under_it(win, qtbot):
    p, r, s = chain(win)
    win.scene.select_nodes([r])
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    qtbot.keyClick(win.view, Qt.Key_F1)
    assert win.help.isVisible()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Delete)    # deleted the selected node, unseen
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_B)
    assert r in win.doc.graph.nodes and not win.doc.graph.nodes[r].bypass
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Escape)    # did not close it
    assert not win.help.isVisible() and win.view.hasFocus()
    qtbot.keyClick(win.view, Qt.Key_F1)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_F1)
    assert not win.help.isVisible() and win.view.hasFocus()


def test_the_library_filter_adds_its_first_match_on_enter_and_down_goes_to_the_list(win, qtbot):
    lib = win.library
    win.docks["Library"].raise_()
    lib.filter.setFocus()
    qtbot.waitUntil(lib.filter.hasFocus)
    qtbot.keyClicks(lib.filter, "reverse")
    qtbot.keyClick(lib.filter, Qt.Key_Return)        # did nothing
    assert [i.type for i in win.doc.graph.nodes.values()] == ["video.reverse"]
    assert win.view.hasFocus()                       # on the new node, as after the node search
    lib.filter.setFocus()
    qtbot.waitUntil(lib.filter.hasFocus)
    lib.filter.setText("resize")
    qtbot.keyClick(lib.filter, Qt.Key_Down)          # stayed in the filter
    assert lib.tree.hasFocus() and lib.tree.currentItem().data(0, Qt.UserRole) == "video.resize"
    qtbot.keyClick(lib.tree, Qt.Key_Return)
    assert sorted(i.type for i in win.doc.graph.nodes.values()) == ["video.resize", "video.reverse"]


def test_duplicating_while_a_canvas_field_is_typed_copies_the_value_on_screen(win, qtbot):
    from test_editor import drag
    p, r, s = chain(win)
    win.scene.select_nodes([r])
    item = win.scene.nodes[r]
    field = item.mapToScene(item.param_rect("width").center())
    drag(win.view, field, field, steps=1)
    qtbot.keyClicks(win.view._editor, "24")
    qtbot.keyClick(win.view._editor, Qt.Key_D, Qt.ControlModifier)
    # The copy took the value from before (16) while the field showed 24.
    widths = sorted(n.params["width"] for n in win.doc.graph.nodes.values() if n.type == "video.resize")
    assert widths == [24, 24]
    win.view.setFocus()
    qtbot.keyClick(win.view, Qt.Key_Period, Qt.ControlModifier)
    assert win.statusBar().currentMessage() == "Nothing is running"


# -- where a node from the search lands ---------------------------------------------------------------------
def test_a_node_added_with_the_cursor_in_a_corner_lands_whole_on_the_canvas_clear_of_the_minimap(win, qtbot):
    """Tab with the cursor near the canvas' bottom-right corner put the new node's corner at the
    cursor: the node ran off the canvas and under the minimap, as if nothing had been added."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QCursor
    view = win.view
    corner = QPoint(view.viewport().width() - 30, view.viewport().height() - 30)
    QCursor.setPos(view.viewport().mapToGlobal(corner))
    qtbot.waitUntil(lambda: view.viewport().mapFromGlobal(QCursor.pos()) == corner)
    pal = _search(win, qtbot, "save video")
    qtbot.keyClick(pal.edit, Qt.Key_Return)
    (nid,) = win.doc.graph.nodes
    item = win.scene.nodes[nid]
    on_canvas = view.mapFromScene(item.sceneBoundingRect()).boundingRect()
    assert view.viewport().rect().contains(on_canvas), (on_canvas, view.viewport().rect())
    mini = view.minimap.geometry().translated(-view.viewport().pos())
    assert view.minimap.isVisible() and not QRectF(on_canvas).intersects(QRectF(mini)), (on_canvas, mini)


def test_a_title_is_cut_short_only_as_far_as_its_status_badge_needs(win):
    """A fixed 58 px was kept for the status badge: 'Load kinograph-mini', the first node of the
    default example, read 'Load kinograph-…' with no badge, or a short one, beside it."""
    from app.editor.node_item import BADGE, PAD, TITLE
    from app.editor.runner import NodeStatus
    n = win.controller.add_node("load.mini", (0, 0))
    item = win.scene.nodes[n]
    assert item.title == "Load kinograph-mini"
    for st in (NodeStatus("done", seconds=9.6), NodeStatus("running", 0.5, steps=(10, 20), eta=75.0)):
        item.set_status(st)
        room = item.w - BADGE.width(st.badge()) - 12 - 5 - 6 - (PAD + 2)   # up to the badge, as painted
        assert TITLE.width(item.title) <= room
        assert item.title == item.label or TITLE.width(item.label) > room, (st.badge(), item.title)
    assert item.title.endswith("…")             # '10/20 · 1.2 min' leaves too little room


def test_the_minimap_is_not_drawn_over_an_empty_canvas(win, qtbot):
    """A blank dark box sat in the corner of the empty canvas, beside the hint on how to start, and
    took the clicks there; it now appears with the first node."""
    from PySide6.QtGui import QColor, QImage, QRegion
    from PySide6.QtWidgets import QWidget
    mm = win.view.minimap

    def painted() -> int:
        img = QImage(mm.size(), QImage.Format_RGB32)
        img.fill(QColor(255, 0, 255))
        mm.render(img, QPoint(), QRegion(), QWidget.RenderFlag.DrawChildren)     # what paintEvent draws
        return sum(img.pixelColor(x, y) != QColor(255, 0, 255) for x in range(0, img.width(), 4)
                   for y in range(0, img.height(), 4))
    assert painted() == 0 and mm.testAttribute(Qt.WA_TransparentForMouseEvents)
    win.controller.add_node("generate.test_pattern", (0, 0))
    mm.rebuild()
    assert painted() > 0 and not mm.testAttribute(Qt.WA_TransparentForMouseEvents)


def test_ctrl_g_groups_and_leaves_the_keys_on_the_nodes_f2_names_the_group(win, qtbot):
    p, r, s = chain(win)
    win.scene.select_nodes([p, r])
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    qtbot.keyClick(win.view, Qt.Key_G, Qt.ControlModifier)
    (gid,) = win.doc.graph.ui["_groups"]
    # The next key acts on the grouped nodes: it went into the group's title before.
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_B)
    assert win.doc.graph.nodes[p].bypass and win.doc.graph.nodes[r].bypass
    assert win.doc.graph.ui["_groups"][gid]["title"] == "Group"
    assert "F2" in win.statusBar().currentMessage()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_F2)
    qtbot.keyClicks(win.view._editor, "Plates")
    qtbot.keyClick(win.view._editor, Qt.Key_Return)
    assert win.doc.graph.ui["_groups"][gid]["title"] == "Plates"


def test_comfyuis_keys_for_bypass_collapse_and_fit_work_on_the_canvas(win, qtbot):
    """Someone from ComfyUI pressed Ctrl+B to bypass a node, Alt+C to collapse it and '.' to fit the view to it:
    nothing happened (Kinograph's own keys are B, H and F), and the next run ran the node they meant to skip."""
    p, r, s = chain(win)
    win.scene.select_nodes([r])
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    qtbot.keyClick(win.view, Qt.Key_B, Qt.ControlModifier)
    assert win.doc.graph.nodes[r].bypass
    qtbot.keyClick(win.view, Qt.Key_C, Qt.AltModifier)
    assert win.doc.graph.ui[r].get("collapsed")
    win.view.zoom_by(0.3 / win.view.zoom())
    qtbot.keyClick(win.view, Qt.Key_Period)
    seen = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
    assert win.view.zoom() > 0.5 and seen.contains(win.scene.nodes[r].sceneBoundingRect())
    d = seen.center() - win.scene.nodes[r].sceneBoundingRect().center()      # the selected node's, not all's
    assert abs(d.x()) < 60 and abs(d.y()) < 60, d
