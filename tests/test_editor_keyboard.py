"""The editor for someone who works from the keyboard, or hears it through a screen reader: every
field says its name, F6 reaches each panel from the canvas (probe of stop 24, keyboard). Driven
through the real window offscreen with real key events; any Qt warning fails a test."""
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QAccessible  # noqa: E402
from PySide6.QtWidgets import (QAbstractScrollArea, QAbstractSpinBox, QApplication, QComboBox, QPushButton,  # noqa: E402
                               QScrollBar, QToolButton, QWidget)

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402

make_window, no_modal_dialogs, registry = test_editor.make_window, test_editor.no_modal_dialogs, test_editor.registry

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]

# One node for each kind of parameter editor: number, slider, seed, choice, bool, text, JSON, path,
# colour, schedule.
KINDS = ("generate.feedback", "color.cdl", "color.lut", "condition.inpaint", "encode.sdxl", "motion.tracks",
         "relight.directional", "color.match")


@pytest.fixture(autouse=True)
def private_config(monkeypatch, tmp_path):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def win(make_window):
    return make_window()


def spoken_name(w: QWidget) -> str:
    """What a screen reader announces as the widget's name (Qt's accessibility interface)."""
    return QAccessible.queryAccessibleInterface(w).text(QAccessible.Name)


def tab_stops(root: QWidget):
    """The widgets under `root` that Tab stops at, less the parts of a composite one (a spin box's
    line edit, a choice's list) whose parent carries the name, scroll bars and a scroll area's viewport."""
    for w in root.findChildren(QWidget):
        if not w.focusPolicy() & Qt.TabFocus or isinstance(w, QScrollBar):
            continue
        if isinstance(w.parentWidget(), QAbstractScrollArea) and w is w.parentWidget().viewport():
            continue
        if any(isinstance(a, (QAbstractSpinBox, QComboBox)) for a in (w.parentWidget(), w.parentWidget().parentWidget())):
            continue
        yield w


def test_a_screen_reader_hears_a_name_for_every_field_of_every_panel_and_every_kind_of_parameter(win, qtbot):
    named = []
    for i, t in enumerate(KINDS):
        nid = win.controller.add_node(t, (i * 300.0, 0.0))
        win.scene.select_nodes([nid])
        qtbot.waitUntil(lambda: win.properties.node_id == nid)
        win.view.open_palette(win.view.rect().center())
        for w in [win.view, *tab_stops(win)]:
            name = spoken_name(w)
            # A name with no letter is a symbol read out as such: "⇤", "◀|", "↻".
            if not any(c.isalpha() for c in name):
                raise AssertionError(f"{t}: a {type(w).__name__} in {type(w.parentWidget()).__name__} "
                                     f"(tip {w.toolTip()[:40]!r}) is announced as {name!r}")
            named.append(name)
        win.view.palette.hide()
    # The fields of a parameter say which: the seed's number, its new-seed button and its mode.
    # (A choice is named by its value on Linux, its label reaching the screen reader as a relation.)
    for want in ("seed", "seed: A new random seed now", "saturation",
                 "saturation slider", "color: Pick a colour", "path: Choose a file", "Node title",
                 "Search nodes to add", "First frame", "Play / pause"):
        assert want in named, want
    assert spoken_name(win.run_button) == "Run"         # not "black right-pointing triangle Run"


def test_f6_takes_the_keyboard_from_the_canvas_round_every_panel_and_back(win, qtbot):
    nid = win.controller.add_node("color.cdl", (0.0, 0.0))
    win.scene.select_nodes([nid])
    win.view.setFocus()
    qtbot.waitUntil(lambda: win.view.hasFocus() and win.properties.title_edit.isVisible())
    # Tab on the canvas is the node search, so before F6 the viewer, library and log could not be
    # reached from the canvas without the mouse.
    places = []
    for _ in range(6):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key_F6)
        places.append(QApplication.focusWidget())
    assert places == [win.viewer.canvas, win.properties.title_edit, win.library.filter, win.log, win.view,
                      win.viewer.canvas]
    assert "Viewer" in win.statusBar().currentMessage()
    # The library shares a dock with the properties: F6 brings it to the front, Shift+F6 back.
    qtbot.keyClick(win.viewer.canvas, Qt.Key_F6, Qt.ShiftModifier)
    assert win.view.hasFocus()
    qtbot.keyClick(win.view, Qt.Key_F6, Qt.ShiftModifier)
    assert win.log.hasFocus()
    qtbot.keyClick(win.log, Qt.Key_F6, Qt.ShiftModifier)
    assert win.library.filter.hasFocus() and win.library.isVisible()
    qtbot.keyClick(win.library.filter, Qt.Key_F6, Qt.ShiftModifier)
    assert win.properties.title_edit.hasFocus() and win.properties.isVisible()
    # A closed panel is passed by.
    win.docks["Viewer"].close()
    win.view.setFocus()
    qtbot.keyClick(win.view, Qt.Key_F6)
    assert win.properties.title_edit.hasFocus()


def _search(win, qtbot, query: str):
    """Tab on the focused canvas opens the node search; the query is typed into it."""
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    qtbot.keyClick(win.view, Qt.Key_Tab)
    qtbot.keyClicks(win.view.palette.edit, query)
    return win.view.palette


def test_a_node_added_from_the_search_with_one_node_selected_is_wired_after_it(win, qtbot):
    c = win.controller
    load = c.add_node("io.load_video", (0.0, 0.0))
    grade = c.add_node("color.grade", (300.0, 0.0))        # in the way, right of the loader
    win.scene.select_nodes([load])
    pal = _search(win, qtbot, "resize")
    assert pal.filter_label.isVisible() and "after Load Video" in pal.filter_label.text()
    qtbot.keyClick(pal.edit, Qt.Key_Return)
    (new,) = set(win.doc.graph.nodes) - {load, grade}
    # Before, the keyboard could add a node but not connect it: it came unwired.
    assert win.doc.graph.inputs[new] == {"video": (load, "video")}
    assert win.scene.selected_nodes() == [new] and win.view.hasFocus()
    assert "wired from its video" in win.statusBar().currentMessage()
    placed = win.scene.nodes[new].sceneBoundingRect()
    assert placed.left() > win.scene.nodes[load].sceneBoundingRect().right()
    assert not placed.intersects(win.scene.nodes[grade].sceneBoundingRect())
    # One Ctrl+Z takes back the node with its link.
    qtbot.keyClick(win.view, Qt.Key_Z, Qt.ControlModifier)
    assert set(win.doc.graph.nodes) == {load, grade} and not win.doc.graph.inputs.get(grade)
    # A node that takes nothing the selected one gives is added as before, unwired.
    win.scene.select_nodes([grade])
    qtbot.keyClick(_search(win, qtbot, "load video").edit, Qt.Key_Return)
    (loader,) = set(win.doc.graph.nodes) - {load, grade}
    assert not win.doc.graph.inputs.get(loader) and not win.doc.graph.inputs.get(grade)
    # After a writer nothing can be wired: the search does not promise it.
    win.scene.select_nodes([c.add_node("io.save_video", (0.0, 600.0))])
    assert not _search(win, qtbot, "resize").filter_label.isVisible()


def test_alt_and_the_arrows_select_the_next_node_that_way_and_bring_it_on_screen(win, qtbot):
    c = win.controller
    left = c.add_node("io.load_video", (0.0, 0.0))
    right = c.add_node("color.grade", (400.0, 30.0))
    below = c.add_node("video.resize", (0.0, 400.0))
    far = c.add_node("video.resize", (5000.0, 60.0))
    win.scene.clearSelection()
    win.view.centerOn(win.scene.nodes[left])
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    view = win.view
    qtbot.keyClick(view, Qt.Key_Right, Qt.AltModifier)      # none selected: the one nearest the middle
    assert win.scene.selected_nodes() == [left]
    qtbot.keyClick(view, Qt.Key_Right, Qt.AltModifier)
    assert win.scene.selected_nodes() == [right]
    qtbot.keyClick(view, Qt.Key_Left, Qt.AltModifier)
    qtbot.keyClick(view, Qt.Key_Down, Qt.AltModifier)
    assert win.scene.selected_nodes() == [below]
    qtbot.keyClick(view, Qt.Key_Down, Qt.AltModifier)       # nothing further down: it says so, keeps it
    assert win.scene.selected_nodes() == [below] and win.statusBar().currentMessage() == "No node below Resize"
    qtbot.keyClick(view, Qt.Key_Up, Qt.AltModifier)
    qtbot.keyClick(view, Qt.Key_Right, Qt.AltModifier)
    qtbot.keyClick(view, Qt.Key_Right, Qt.AltModifier)
    assert win.scene.selected_nodes() == [far]
    on_screen = view.mapToScene(view.viewport().rect()).boundingRect()
    assert on_screen.contains(win.scene.nodes[far].sceneBoundingRect())
    # In the node search, Alt+arrow is the field's, not a move that changes what it is wired after.
    qtbot.keyClick(view, Qt.Key_Tab)
    qtbot.keyClick(view.palette.edit, Qt.Key_Left, Qt.AltModifier)
    assert win.scene.selected_nodes() == [far] and view.palette.isVisible()
    qtbot.keyClick(view.palette.edit, Qt.Key_Escape)
    # The keys the canvas had go on working on what is reached: Enter into its parameters.
    qtbot.keyClick(view, Qt.Key_Return)
    assert win.properties.editors["width"].spin.hasFocus()


def test_esc_in_a_field_puts_back_the_workflows_value_as_on_the_canvas_and_a_prompt_keeps_its_typing(win, qtbot):
    nid = win.controller.add_node("video.resize", (0.0, 0.0))
    prompt = win.controller.add_node("encode.sdxl", (0.0, 300.0))
    params = win.doc.graph.nodes[nid].params
    win.scene.select_nodes([nid])
    win.view.setFocus()
    qtbot.waitUntil(lambda: win.view.hasFocus() and win.properties.editors["width"].spin.isVisible())
    qtbot.keyClick(win.view, Qt.Key_Return)
    width = win.properties.editors["width"].spin
    assert width.hasFocus()
    before, shown, edits = params["width"], width.text(), win.doc.undo.count()
    width.lineEdit().selectAll()
    qtbot.keyClicks(width, "320")
    qtbot.keyClick(width, Qt.Key_Escape)
    # It was applied (the focus leaving applies) and the next run rendered 320 wide.
    assert win.view.hasFocus() and params["width"] == before and width.text() == shown != "320"
    assert win.doc.undo.count() == edits
    # Enter, and Tab, apply.
    qtbot.keyClick(win.view, Qt.Key_Return)
    width.lineEdit().selectAll()
    qtbot.keyClicks(width, "320")
    qtbot.keyClick(width, Qt.Key_Return)
    assert params["width"] == 320
    height = win.properties.editors["height"].spin
    height.setFocus()
    height.lineEdit().selectAll()
    qtbot.keyClicks(height, "180")
    qtbot.keyClick(height, Qt.Key_Tab)
    assert params["height"] == 180
    # The title too, as F2 on the canvas: Esc gives up the new name.
    title = win.properties.title_edit
    title.setFocus()
    title.selectAll()
    qtbot.keyClicks(title, "Half size")
    qtbot.keyClick(title, Qt.Key_Escape)
    assert not win.doc.graph.nodes[nid].title and title.text() == "Resize"
    # A prompt is a paragraph of work: Esc leaves with it applied.
    win.scene.select_nodes([prompt])
    text = win.properties.editors["text"].edit
    qtbot.waitUntil(text.isVisible)
    text.setFocus()
    qtbot.keyClicks(text, "a lighthouse at dusk")
    qtbot.keyClick(text, Qt.Key_Escape)
    assert win.doc.graph.nodes[prompt].params["text"].endswith("a lighthouse at dusk") and win.view.hasFocus()


def test_ctrl_0_brings_the_canvas_back_to_100_percent(win, qtbot):
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    for _ in range(3):
        qtbot.keyClick(win.view, Qt.Key_Minus, Qt.ControlModifier)
    assert win.view.zoom() < 0.6
    qtbot.keyClick(win.view, Qt.Key_0, Qt.ControlModifier)
    assert win.view.zoom() == pytest.approx(1.0) and win.zoom_label.text().endswith("100%")


def test_more_about_this_node_opens_from_the_keyboard(win, qtbot):
    nid = win.controller.add_node("generate.feedback", (0.0, 0.0))
    win.scene.select_nodes([nid])
    qtbot.waitUntil(lambda: win.properties.title_edit.isVisible())
    body = win.properties.widget()
    help_text = body.findChild(QWidget, "HelpText")
    short = help_text.text()
    win.properties.title_edit.setFocus()
    for _ in range(3):          # title, bypass, the link
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Tab)
        if QApplication.focusWidget().objectName() == "HelpMore":
            break
    assert QApplication.focusWidget().objectName() == "HelpMore"
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Return)
    assert len(help_text.text()) > len(short) and win.properties.help_open


def test_tab_shows_where_it_is_on_buttons_boxes_sliders_and_the_help_link(win, qtbot):
    from app.editor.theme import THEME_DIR
    win.setStyleSheet((THEME_DIR / "dark.qss").read_text(encoding="utf-8").replace("@THEME@", THEME_DIR.as_posix()))
    nid = win.controller.add_node("generate.sample", (0.0, 0.0))
    win.scene.select_nodes([nid])
    qtbot.waitUntil(lambda: win.properties.title_edit.isVisible())
    body = win.properties.widget()
    seed = win.properties.editors["seed"]
    places = {"View A": next(b for b in body.findChildren(QPushButton) if b.text() == "View A"),
              "bypass": win.properties.bypass_box, "new seed": seed.findChild(QToolButton),
              "cfg slider": win.properties.editors["cfg"].slider, "More": body.findChild(QWidget, "HelpMore")}
    for name, w in places.items():
        win.properties.title_edit.setFocus()
        qtbot.waitUntil(win.properties.title_edit.hasFocus)
        before = w.grab().toImage()
        w.setFocus(Qt.TabFocusReason)
        qtbot.waitUntil(w.hasFocus)
        # Drawn the same with the keyboard on it or not: nothing showed where Tab had got to.
        assert w.grab().toImage() != before, name


def test_nodes_brought_back_by_undo_or_redo_are_selected_so_the_keys_act_on_them(win, qtbot):
    a = win.controller.add_node("video.resize", (0.0, 0.0))
    b = win.controller.add_node("color.grade", (300.0, 0.0))
    win.scene.select_nodes([a])
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    qtbot.keyClick(win.view, Qt.Key_X)
    assert a not in win.doc.graph.nodes
    qtbot.keyClick(win.view, Qt.Key_Z, Qt.ControlModifier)
    assert win.scene.selected_nodes() == [a]
    qtbot.keyClick(win.view, Qt.Key_B)          # bypass: on the node that came back
    assert win.doc.graph.nodes[a].bypass and not win.doc.graph.nodes[b].bypass


def test_tab_in_a_field_on_a_node_goes_to_the_nodes_next_field(win, qtbot):
    """Frames typed on a Test Pattern node, then Tab to type its width (as in Blender and Nuke): the keyboard went
    to the canvas, the width typed fired its one-key commands, and Enter opened the selected node's panel (here
    Save Video's) with its path selected, ready to be typed over."""
    p, r, s = test_editor.chain(win)
    win.scene.select_nodes([s])
    win.view.edit_param(p, "frames")
    qtbot.waitUntil(lambda: win.view._editor is not None and win.view._editor.hasFocus())
    for key, typed in ((Qt.Key_Tab, "12"), (Qt.Key_Tab, "64"), (Qt.Key_Backtab, "40")):
        ed = win.view._editor
        ed.selectAll()
        qtbot.keyClicks(ed, typed)
        qtbot.keyClick(ed, key)
        qtbot.waitUntil(lambda: win.view._editor not in (None, ed) and win.view._editor.hasFocus())
    params = win.doc.graph.nodes[p].params
    assert (params["frames"], params["width"], params["height"]) == (12, 64, 40)
    assert win.view._editor.text() == "64"          # Shift+Tab went back from the height to the width
    assert win.doc.graph.nodes[s].params["path"] == "unused.mp4"
    qtbot.keyClick(win.view._editor, Qt.Key_Escape)
    # Past the last field of the node, the keyboard is the canvas'.
    win.view.edit_param(p, "fps")
    qtbot.keyClick(win.view._editor, Qt.Key_Tab)
    assert win.view._editor is None and win.view.hasFocus()


def test_enter_in_a_field_on_a_node_applies_it_and_gives_the_keyboard_back_to_the_canvas(win, qtbot):
    """Enter went on from the field to the canvas, which took it as Enter on the selected node: the keyboard was put
    in that node's panel with its first field selected (Save Video's path), and the next keys typed replaced it."""
    p, r, s = test_editor.chain(win)
    win.scene.select_nodes([s])
    qtbot.waitUntil(lambda: win.properties.node_id == s)
    win.view.edit_param(p, "frames")
    ed = win.view._editor
    qtbot.waitUntil(ed.hasFocus)
    qtbot.keyClicks(ed, "12")
    qtbot.keyClick(ed, Qt.Key_Return)
    assert win.doc.graph.nodes[p].params["frames"] == 12
    assert win.view.hasFocus(), f"the keyboard went to {type(QApplication.focusWidget()).__name__}"


def test_tab_in_a_field_on_a_node_passes_over_a_field_a_link_sets(win, qtbot):
    """A field whose value a link sets shows '← size.width' and does not edit on a click; Tab from the field before
    it opened an editor over it anyway, on the value the link hides, and what was typed there did nothing."""
    c = win.controller
    p = c.add_node("generate.test_pattern", (0, 0))
    for name, value in (("frames", 5), ("width", 64), ("height", 48)):
        c.set_param(p, name, value)
    src = c.add_node("generate.test_pattern", (0, 400))
    size = c.add_node("video.size", (300, 400))
    c.connect(src, "video", size, "video")
    c.connect(size, "width", p, "width")
    win.view.edit_param(p, "frames")
    for key, shown in ((Qt.Key_Tab, "48"), (Qt.Key_Backtab, "5")):
        ed = win.view._editor
        qtbot.waitUntil(ed.hasFocus)
        qtbot.keyClick(ed, key)
        qtbot.waitUntil(lambda: win.view._editor not in (None, ed))
        assert win.view._editor.text() == shown, "the keyboard went into the field the link sets"


def test_tab_to_a_field_below_the_canvas_edge_brings_it_into_sight(win, qtbot):
    """Zoomed in on a node, Tab from its field at the canvas' foot opened the next field's editor below the edge:
    the keyboard was in a field no one could see, and the value was typed blind."""
    p = win.controller.add_node("generate.test_pattern", (0, 0))
    item = win.scene.nodes[p]
    win.view.zoom_by(2.0 / win.view.zoom())
    frames = item.mapRectToScene(item.param_rect("frames"))
    # The frames field just above the canvas' foot: the width field, a row lower, below it.
    vp = win.view.viewport().rect()
    win.view.centerOn(frames.center().x(), frames.bottom() + 2 - vp.height() / 2 / win.view.zoom())
    assert vp.contains(win.view.mapFromScene(frames).boundingRect())
    win.view.edit_param(p, "frames")
    ed = win.view._editor
    qtbot.waitUntil(ed.hasFocus)
    qtbot.keyClick(ed, Qt.Key_Tab)
    qtbot.waitUntil(lambda: win.view._editor not in (None, ed))
    assert vp.contains(win.view._editor.geometry()), "the next field opened out of sight"


@pytest.mark.parametrize("type_name,name", [("encode.qwen_edit", "text"), ("text.flux3_layout", "prompt")])
def test_enter_in_an_edit_or_layout_prompt_starts_a_new_line(win, qtbot, type_name, name):
    """Qwen-Image-Edit's prompt and FLUX.3's layout caption were one-line fields, on the node and in the panel: Enter
    applied them, and a prompt of several lines (ComfyUI's are multi-line) could not be written."""
    nid = win.controller.add_node(type_name, (0, 0))
    win.view.edit_param(nid, name)             # a click on the field on the node: into the panel's field
    qtbot.waitUntil(lambda: win.properties.node_id == nid and name in win.properties.editors)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None and QApplication.focusWidget() is not win.view)
    field = QApplication.focusWidget()
    qtbot.keyClicks(field, "a red car")
    qtbot.keyClick(field, Qt.Key_Return)
    qtbot.keyClicks(field, "at dusk")
    field.clearFocus()
    qtbot.waitUntil(lambda: win.doc.graph.nodes[nid].params.get(name) == "a red car\nat dusk")
