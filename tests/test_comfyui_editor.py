"""The editor opens ComfyUI files through the importer: dropped or opened, with the report shown and
unmapped nodes drawn as red placeholders."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QRectF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from app.editor.document import Document
from app.editor.settings import EditorSettings
from app.editor import window as window_mod
from app.editor.window import MainWindow
from tests.editor_run import run_past_the_precheck  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "comfyui"


@pytest.fixture
def win(qtbot, tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError(f"a modal dialog would block the test: {a[1:3]}")
    monkeypatch.setattr(QMessageBox, "question", refuse)
    monkeypatch.setattr(QMessageBox, "warning", refuse)
    w = MainWindow(Document(), settings=EditorSettings(tmp_path / "editor.json"))
    w.show()
    qtbot.waitExposed(w)
    yield w
    for x in list(window_mod.WINDOWS):
        x.doc.undo.setClean()
        x.close()


def _drop(win, path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    vp = win.view.viewport()
    QApplication.sendEvent(vp, QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    QApplication.sendEvent(vp, QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))


def test_dropping_a_comfyui_json_imports_it_and_shows_the_report(win, tmp_path, monkeypatch):
    # An artist's models folder with svd_xt.safetensors: the report said only 'mapped exactly' of the workflow's
    # svd.safetensors, which the run would not find; it names it, with the close name the folder holds.
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "models" / "checkpoints" / "svd_xt.safetensors").write_bytes(b"")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    _drop(win, DATA / "svd_i2v.json")
    g = win.doc.graph
    assert {n.type for n in g.nodes.values()} >= {"generate.sample", "guide.linear_cfg", "condition.frames"}
    assert g.ui["k_sampler_3"]["pos"] == [868, 376]
    assert win.doc.path is None and win.doc.origin == (DATA / "svd_i2v.json").resolve()
    dlg = win._comfyui_report
    text = dlg.findChild(__import__("PySide6.QtWidgets", fromlist=["QTextEdit"]).QTextEdit).toPlainText()
    assert dlg.isVisible() and "SVD_img2vid_Conditioning #12" in text
    assert ("note: node image_only_checkpoint_loader_15: path: 'svd.safetensors' is not in the model folders" in text
            and "close names there: svd_xt.safetensors" in text), text


def test_unmapped_nodes_are_red_placeholders(win, tmp_path):
    wf = json.loads((DATA / "svd_i2v.json").read_text())
    wf["nodes"].append({"id": 30, "type": "ImageQuantize", "pos": [1300, 600], "mode": 0, "title": "Soft",
                        "inputs": [{"name": "image", "type": "IMAGE", "link": 50}],
                        "outputs": [{"name": "IMAGE", "type": "IMAGE"}], "widgets_values": [16, "none"]})
    wf["links"].append([50, 8, 0, 30, 0, "IMAGE"])
    src = tmp_path / "blur.json"
    src.write_text(json.dumps(wf))
    assert win.open_path(src) is win
    item = win.view.scene().nodes["image_quantize_30"]
    assert item.spec is None and item.header_color.name() == "#8a2f2f"
    assert win.doc.graph.nodes["image_quantize_30"].params["widgets_values"] == [16, "none"]
    assert "NOT MAPPED" in win._comfyui_report.findChild(
        __import__("PySide6.QtWidgets", fromlist=["QTextEdit"]).QTextEdit).toPlainText()


def test_red_nodes_that_pass_a_value_on_can_be_bypassed_from_the_report(win, tmp_path):
    """The report said what could be bypassed, but only `kinograph import --bypass-unmapped` could do it: the
    editor's report offers it when every red node passes a value on, and opens the file again that way. (The Wan
    Fun InP template, every node of which is mapped now, with a KJNodes model patch in its CFG-Zero*'s place.)"""
    import json
    from PySide6.QtWidgets import QPushButton
    data = json.loads((DATA / "templates" / "wan2.1_fun_inp.json").read_text())
    next(n for n in data["nodes"] if n["id"] == 66)["type"] = "ModelPatchTorchSettings"
    (tmp_path / "fun_inp.json").write_text(json.dumps(data))
    assert win.open_path(tmp_path / "fun_inp.json") is win
    assert any(n.type.startswith("comfyui.") for n in win.doc.graph.nodes.values())
    button = win._comfyui_report.findChild(QPushButton, "bypassUnmapped")
    button.click()
    assert not any(n.type.startswith("comfyui.") for n in win.doc.graph.nodes.values())
    text = win._comfyui_report.findChild(
        __import__("PySide6.QtWidgets", fromlist=["QTextEdit"]).QTextEdit).toPlainText()
    assert "bypassed as you asked" in text and "NOT MAPPED" not in text
    assert win._comfyui_report.findChild(QPushButton, "bypassUnmapped") is None
    win.open_path(DATA / "vhs_batch4x4.json")        # SolidMask makes a mask from nothing: no button
    assert win._comfyui_report.findChild(QPushButton, "bypassUnmapped") is None


def test_a_broken_comfyui_file_is_a_message(win, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": [{"id": 1}], "links": []}')
    before = dict(win.doc.graph.nodes)
    assert win.open_path(bad) is None
    assert win.doc.graph.nodes == before
    assert "damaged" in win.statusBar().currentMessage()


def test_the_command_line_opens_a_comfyui_file_as_file_open_does(qtbot, monkeypatch):
    # `kinograph gui big.json` imported before the window existed: nothing on screen for seconds. The window
    # shows first, then the import runs as File > Open's does (off the UI thread, behind its busy dialog).
    from app.editor import main as editor_main, comfyui_open
    monkeypatch.setattr(QApplication, "exec", lambda *a: 0)
    before = list(window_mod.WINDOWS)
    shown_then = []
    read = comfyui_open.read_comfyui
    monkeypatch.setattr(comfyui_open, "read_comfyui", lambda *a: (
        shown_then.append([w.isVisible() for w in window_mod.WINDOWS if w not in before]), read(*a))[1])
    assert editor_main.run_editor(str(DATA / "svd_i2v.json")) == 0
    new = [w for w in window_mod.WINDOWS if w not in before]
    try:
        (w,) = new
        qtbot.waitUntil(lambda: bool(w.doc.graph.nodes), timeout=20000)
        assert shown_then == [[True]]
        assert "generate.sample" in {n.type for n in w.doc.graph.nodes.values()}
        assert w.doc.path is None and w._comfyui_report.isVisible()
    finally:
        for w in new:
            w.doc.undo.setClean()
            w.close()


def test_node_help_renders_quotes_as_written(win):
    from PySide6.QtGui import QTextDocument
    from PySide6.QtWidgets import QLabel
    node = win.controller.add_node("load.text_encoder", (0, 0))
    win.scene.select_nodes([node])
    (label,) = [x for x in win.properties.findChildren(QLabel) if x.objectName() == "HelpText"]
    rich = label.textFormat() == Qt.RichText or (label.textFormat() == Qt.AutoText and Qt.mightBeRichText(label.text()))
    shown = label.text()
    if rich:
        doc = QTextDocument()
        doc.setHtml(shown)
        shown = doc.toPlainText()
    assert "ComfyUI's Load CLIP" in shown and "&#x27;" not in shown


def test_a_kinograph_workflow_written_as_json_opens_as_itself(win, tmp_path):
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"kinograph": 1, "nodes": {"p": {"type": "generate.test_pattern"}}}))
    assert win.open_path(own) is win
    assert [n.type for n in win.doc.graph.nodes.values()] == ["generate.test_pattern"]
    assert not hasattr(win, "_comfyui_report")


def test_the_report_wraps_each_line_under_the_node_name(win):
    """An unmapped node's reason and what to use instead lay past the right edge of the report, a sideways scroll
    away: kijai's Leapfusion graph's one red node read 'LeapfusionHunyuanI2VPatcher #74 -> leap' in the window.
    Lines now wrap to the window, continuing under the node's name, past the status column."""
    from PySide6.QtWidgets import QTextEdit
    win.open_path(DATA / "community" / "kjnodes_leapfusion_hunyuan_i2v.json")
    text = win._comfyui_report.findChild(QTextEdit)
    assert text.horizontalScrollBar().maximum() == 0
    first = text.document().firstBlock()
    assert first.text().startswith("NOT MAPPED") and "condition.hunyuan_i2v" in first.text()
    layout = first.layout()
    name_x = text.fontMetrics().horizontalAdvance(first.text()[:first.text().index("Leapfusion")])
    assert layout.lineCount() > 2
    assert [round(layout.lineAt(i).x()) for i in range(1, layout.lineCount())] == [round(name_x)] * (
        layout.lineCount() - 1)


def test_node_help_shows_a_marked_name_in_the_fixed_font_not_its_backticks(win):
    """The docstrings mark a parameter's name with backticks; the panel and the search palette showed them, as
    Manga Line Art's 'the picture's short side is `resolution` rounded up to a whole 256'."""
    from PySide6.QtGui import QTextDocument
    from PySide6.QtWidgets import QLabel
    from app.editor.palette import SearchPalette

    def seen(label):
        doc = QTextDocument()
        doc.setHtml(label.text())
        return doc.toPlainText()
    node = win.controller.add_node("lines.manga", (0, 0))
    win.scene.select_nodes([node])
    (label,) = [x for x in win.properties.findChildren(QLabel) if x.objectName() == "HelpText"]
    assert "short side is resolution rounded up" in seen(label) and "<code>resolution</code>" in label.text()
    win.view.open_palette(win.view.rect().center())
    palette = win.findChild(SearchPalette)
    palette.edit.setText("manga")
    assert palette.results()[0] == "lines.manga"
    assert "short side is resolution rounded up" in seen(palette.help) and "`" not in seen(palette.help)


def test_a_parameters_tooltips_show_a_marked_name_in_the_fixed_font_not_its_backticks(win):
    """Nine parameters' help marks a name with backticks (video.stitch's 'where `other` goes'); the panel's help
    showed it in the fixed font but the tooltips, plain text, showed the backticks: on the field, its label, the
    spin box and the node's row in the graph."""
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QTextDocument
    from PySide6.QtWidgets import QLabel
    from app.editor.palette import SearchPalette
    from test_editor import _mouse

    def seen(tip):
        doc = QTextDocument()
        doc.setHtml(tip)
        return doc.toPlainText()
    stitch = win.controller.add_node("video.stitch", (0, 0))
    canny = win.controller.add_node("control.canny", (0, 300))
    win.scene.select_nodes([stitch])
    (label,) = [x for x in win.properties.findChildren(QLabel) if x.text() == "direction"]
    item = win.scene.nodes[stitch]
    row = QPointF(win.view.mapFromScene(item.mapToScene(item.param_rect("direction").center())))
    for dx in (0, 3):       # two moves: the first enters the node, the second hovers on the row
        _mouse(win.view.viewport(), QEvent.MouseMove, row + QPointF(dx, 0), Qt.NoButton, Qt.NoButton)
    tips = [label.toolTip(), win.properties.editors["direction"].toolTip(), item.toolTip()]
    win.scene.select_nodes([canny])
    tips.append(win.properties.editors["low"].spin.toolTip())
    # A node's whole help, in the library's and the search palette's tooltips (47 nodes mark names).
    win.library.filter.setText("manga lineart")
    win.library.refresh()
    found = win.library.tree.findItems("Manga Line Art", Qt.MatchRecursive)
    win.view.open_palette(win.view.rect().center())
    palette = win.findChild(SearchPalette)
    palette.edit.setText("manga")
    tips += [found[0].toolTip(0), palette.list.item(0).toolTip()]
    for tip in tips:
        assert "`" not in tip and "<code>" in tip, tip
    assert seen(tips[0]) == "where other goes: right of, below, left of or above video"
    assert seen(tips[2]).startswith("direction (str): where other goes") and seen(tips[2]).endswith(
        "\nDrag to change, click to type")
    assert "join an edge that reaches high (" in seen(tips[3])
    assert all("short side is resolution rounded up" in seen(tip) for tip in tips[4:])


def test_the_normal_map_nodes_are_found_by_an_artists_words(win):
    """'surface normals', 'bump map' or 'normalmap' found nothing (or not the normal maps): the nodes say 'normal
    map'. Read as 'normal', they list MiDaS and BAE Normal Map first."""
    from app.editor.palette import SearchPalette
    win.view.open_palette(win.view.rect().center())
    palette = win.findChild(SearchPalette)
    for words in ("surface normals", "bump map", "normalmap", "normal map"):
        palette.edit.setText(words)
        assert set(palette.results()[:2]) == {"normals.midas", "normals.bae"}, (words, palette.results())


def _slow_import(monkeypatch, gate):
    """The importer made to wait for `gate`, as a big template keeps it busy; where it ran is recorded."""
    import threading
    import app.comfyui
    real, seen = app.comfyui.import_workflow, {}

    def slow(*a, **k):
        seen["on_ui_thread"] = threading.current_thread() is threading.main_thread()
        seen["gate_opened"] = gate.wait(10)     # never opens when the UI thread is the one waiting here
        return real(*a, **k)
    monkeypatch.setattr(app.comfyui, "import_workflow", slow)
    return seen


def test_a_comfyui_import_leaves_the_window_drawing(win, monkeypatch):
    """The largest templates took 1 to 3 s to import on the UI thread, the window frozen meanwhile; the import
    runs on a worker thread while the window goes on handling events (here a timer, which opens the gate)."""
    import threading
    from PySide6.QtCore import QTimer
    gate = threading.Event()
    seen = _slow_import(monkeypatch, gate)
    QTimer.singleShot(20, gate.set)
    assert win.open_path(DATA / "svd_i2v.json") is win
    assert seen == {"on_ui_thread": False, "gate_opened": True}
    assert "k_sampler_3" in win.doc.graph.nodes and win._comfyui_report.isVisible()


def test_a_slow_comfyui_import_shows_a_busy_dialog_whose_cancel_keeps_the_graph(win, monkeypatch):
    import threading
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QProgressDialog, QPushButton
    from app.editor import comfyui_open
    monkeypatch.setattr(comfyui_open, "BUSY_AFTER_MS", 0)
    before = set(win.doc.graph.nodes)
    gate, shown = threading.Event(), []

    def cancel():
        busy = win.findChild(QProgressDialog, "busyImport")
        shown.append(busy.isVisible() and busy.labelText())
        busy.findChild(QPushButton).click()
    QTimer.singleShot(100, cancel)
    _slow_import(monkeypatch, gate)
    assert win.open_path(DATA / "svd_i2v.json") is None
    gate.set()
    assert shown == ["Importing svd_i2v.json…"]
    assert set(win.doc.graph.nodes) == before and not win.doc.modified
    assert "cancelled" in win.statusBar().currentMessage()


def test_a_comfyui_group_still_holds_its_nodes_once_they_are_kinograph_sized(win):
    """SVD's group framed its sampler in ComfyUI; the Kinograph sampler, with more fields, hung out of the frame,
    so dragging the group (which carries what lies wholly inside it) left the sampler behind."""
    from PySide6.QtCore import QPointF
    assert win.open_path(DATA / "svd_i2v.json") is win
    scene = win.view.scene()
    frame = scene.groups["group_1"].scene_rect()
    for nid in ("video_linear_cfg_guidance_14", "k_sampler_3", "vae_decode_8", "svd_img2vid_conditioning_12"):
        assert frame.contains(scene.nodes[nid].sceneBoundingRect()), nid
    assert not frame.intersects(scene.nodes["load_image_23"].sceneBoundingRect())
    group = scene.groups["group_1"]
    scene.clearSelection()
    group.setSelected(True)
    before = scene.nodes["k_sampler_3"].pos()
    scene.begin_move()
    group.setPos(group.pos() + QPointF(100, 0))
    assert scene.nodes["k_sampler_3"].pos().x() > before.x() + 50        # carried (then snapped to the grid)


def test_a_red_placeholder_says_to_replace_it_not_to_install_a_node_pack(win, tmp_path):
    """Selecting a red ComfyUI node said "install the node pack that provides it": no pack provides
    comfyui.ImageQuantize; the import found no Kinograph equivalent, and the node is to be replaced."""
    from PySide6.QtWidgets import QLabel
    wf = json.loads((DATA / "svd_i2v.json").read_text())
    wf["nodes"].append({"id": 30, "type": "ImageQuantize", "pos": [1300, 600], "mode": 0,
                        "inputs": [{"name": "image", "type": "IMAGE", "link": 50}],
                        "outputs": [{"name": "IMAGE", "type": "IMAGE"}], "widgets_values": [16, "none"]})
    wf["links"].append([50, 8, 0, 30, 0, "IMAGE"])
    (tmp_path / "q.json").write_text(json.dumps(wf))
    assert win.open_path(tmp_path / "q.json") is win
    win.view.scene().select_nodes(["image_quantize_30"])
    said = [l.text() for l in win.properties.findChildren(QLabel, "FieldError")]
    assert said == ["ComfyUI's ImageQuantize has no Kinograph equivalent: replace it with Kinograph nodes that do "
                    "the same (Tab adds one), then delete it"]
    win.view_node("image_quantize_30", "A")
    assert win.statusBar().currentMessage() == ("ComfyUI's ImageQuantize has no Kinograph equivalent: replace it "
                                                "to see an output there")


def test_save_changes_is_asked_before_the_import_so_cancel_wastes_nothing(win, monkeypatch):
    # A modified graph: "Save changes?" came only once the import (seconds for a big template) had finished.
    from app.editor import comfyui_open
    win.controller.add_node("load.text_encoder", (0, 0))
    before = dict(win.doc.graph.nodes)
    said = []
    monkeypatch.setattr(comfyui_open, "read_comfyui", lambda *a: said.append("import"))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: (said.append("asked"), QMessageBox.Cancel)[1])
    assert win.open_path(DATA / "svd_i2v.json") is None
    assert said == ["asked"] and win.doc.graph.nodes == before and win.doc.modified


def test_a_comfyui_file_opens_at_the_view_it_was_saved_with(win, qtbot, tmp_path):
    # It opened framed from its top left, in many templates a tall Markdown note; ComfyUI reopens at extra.ds,
    # under which LiteGraph draws a point p at (p + offset) * scale.
    data = json.loads((DATA / "svd_i2v.json").read_text())
    data.setdefault("extra", {})["ds"] = {"offset": [-800, -300], "scale": 0.6}
    path = tmp_path / "saved_view.json"
    path.write_text(json.dumps(data))
    assert win.open_path(path) is win
    qtbot.wait(50)                      # the first view is set once the canvas has its size
    assert win.view.zoom() == pytest.approx(0.6)
    seen = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
    comfy = QRectF(800, 300, 1920 / 0.6, 980 / 0.6)       # what ComfyUI showed in a full-HD browser
    shown = [n for n, i in win.scene.nodes.items() if i.sceneBoundingRect().intersects(comfy)]
    assert shown and any(seen.intersects(win.scene.nodes[n].sceneBoundingRect()) for n in shown)


def test_a_saved_view_opens_on_what_comfyui_showed_not_on_empty_canvas(win, qtbot):
    """ComfyUI's saved view filled a browser window; put at the top left of the editor's smaller canvas, a
    template's nodes sat in its bottom corner or below it (z_image_turbo: the top half of the canvas empty)."""
    vw, vh = win.view.viewport().width(), win.view.viewport().height()
    # In the top half of ComfyUI's 980 px, across its left edge (ComfyUI showed it cut there too).
    shown = win.controller.add_node("load.text_encoder", (-100.0, vh - 60.0))
    win.controller.add_node("load.vae", (5000.0, 5000.0))                     # far off, as a template's other parts
    win.doc.saved_view = (0.0, 0.0, 1.0, 1920.0, 980.0)
    win.view.frame_legible()
    assert win.view.zoom() == pytest.approx(1.0)
    seen = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
    assert seen.contains(win.scene.nodes[shown].sceneBoundingRect()), "the node ComfyUI showed is cut by the edge"
    # More than the canvas holds: from the top left of what ComfyUI showed, the node across its edge whole.
    win.controller.add_node("load.vae", (vw + 100.0, vh - 60.0))
    win.view.frame_legible()
    seen = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
    node = win.scene.nodes[shown].sceneBoundingRect()
    assert seen.left() <= node.left() and seen.top() <= node.top(), "the node ComfyUI showed is cut by the edge"


def test_a_saved_view_on_a_small_canvas_opens_on_nodes_not_on_the_note_beside_them(win, qtbot):
    """On a small window, the Depth Anything 3 templates opened on their tall note of model links and not one node:
    what ComfyUI showed did not fit, and the view started at its top left, which was the note's."""
    win.resize(700, 500)
    qtbot.wait(50)
    vw, vh = win.view.viewport().width(), win.view.viewport().height()
    note = win.controller.add_note((0.0, 0.0), "## Models\n" + "- a link\n" * 60)
    win.controller.update_note(note, size=[vw - 60, 3 * vh])
    node = win.controller.add_node("load.text_encoder", (vw + 40.0, 2.0 * vh))
    win.doc.saved_view = (0.0, 0.0, 1.0, 1920.0, 980.0)
    win.view.frame_legible()
    seen = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
    assert seen.intersects(win.scene.nodes[node].sceneBoundingRect()), "no node in sight, only the note"
    # Only a note where ComfyUI's view was: the nodes are framed, as with no saved view.
    win.doc.saved_view = (-3000.0, -3000.0, 1.0, 1920.0, 980.0)
    far = win.controller.add_note((-2900.0, -2900.0), "far")
    win.view.frame_legible()
    seen = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
    assert seen.intersects(win.scene.nodes[node].sceneBoundingRect()) and not seen.intersects(
        win.scene.notes[far].sceneBoundingRect())


def test_without_a_saved_view_the_first_view_frames_the_nodes_not_a_tall_note(win, qtbot):
    note = win.controller.add_note((-3000, -200), "## Models\n" + "- a link\n" * 200)
    node = win.controller.add_node("load.text_encoder", (0, 0))
    win.view.frame_legible()
    seen = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
    assert seen.contains(win.scene.nodes[node].sceneBoundingRect())
    assert not seen.intersects(win.scene.notes[note].sceneBoundingRect())


def test_a_code_block_in_a_note_wraps_inside_the_note(win, qtbot):
    """The Model Links note of the Wan 2.2 templates ends in a code block, a tree of model folders: its lines
    did not wrap and ran past the note's right edge, the file names dark on the canvas or under the nodes."""
    raw = ("## Model links\n```\nComfyUI/\n├── models/\n│   └── loras/\n"
           "│       └── wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors\n```\nafter the block")
    nid = win.controller.add_note((0, 0), raw)
    note = win.scene.notes[nid]
    text = note.text_item
    assert "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors" in text.toPlainText().replace("\u2028", "")
    inside = note.mapRectToScene(note.boundingRect())
    assert inside.contains(text.mapRectToScene(text.boundingRect())), "the note's text is drawn past its edge"


def test_a_note_draws_its_markdown_and_is_typed_raw(win, qtbot):
    raw = "## Model links\n**checkpoints**: [svd](https://example.com/svd)\nsecond line"
    nid = win.controller.add_note((0, 0), raw)
    note = win.scene.notes[nid]
    shown = note.text_item.toPlainText()
    assert "##" not in shown and "**" not in shown and "](" not in shown
    assert "Model links" in shown and "checkpoints: svd" in shown
    assert shown.replace("\u2028", "\n").splitlines()[-2:] == ["checkpoints: svd", "second line"]   # lines kept
    assert note.h >= note.text_item.boundingRect().height()      # the box holds its wrapped text
    note.start_editing(select_all=False)
    assert note.text_item.toPlainText() == raw
    qtbot.keyClicks(win.view.viewport(), "!")
    note.text_item.clearFocus()
    assert win.doc.graph.ui["_notes"][nid]["text"] == raw + "!"
    assert "**" not in note.text_item.toPlainText()             # drawn again once typed


def test_a_red_placeholder_has_the_sockets_and_wires_it_had_in_comfyui(win, tmp_path):
    # Its links were kept only in its params (shown in Properties): no socket, no wire, and the save node it fed
    # said "connect by hand". Now they are links of the graph, drawn on sockets named as in ComfyUI; it still
    # does not run (its type is unknown); deleted, it hands its input on to what it fed, as any deleted node does.
    wf = json.loads((DATA / "svd_i2v.json").read_text())
    wf["nodes"].append({"id": 30, "type": "ImageQuantize", "pos": [1300, 600], "mode": 0,
                        "inputs": [{"name": "image", "type": "IMAGE", "link": 50}],
                        "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [51]}], "widgets_values": [16, "none"]})
    save = next(n for n in wf["nodes"] if n["id"] == 10)
    save["inputs"][0]["link"] = 51
    wf["links"] = [x for x in wf["links"] if x[0] != 10] + [[50, 8, 0, 30, 0, "IMAGE"], [51, 30, 0, 10, 0, "IMAGE"]]
    src = tmp_path / "quantized.json"
    src.write_text(json.dumps(wf))
    assert win.open_path(src) is win
    g, red = win.doc.graph, "image_quantize_30"
    (saver,) = [n for n, i in g.nodes.items() if i.type.startswith("io.save") or i.type.startswith("io.write")]
    assert g.inputs[red] == {"image": ("vae_decode_8", "video")}
    assert next(iter(g.inputs[saver].values())) == (red, "image")
    item, scene = win.scene.nodes[red], win.scene
    assert [n for n, _ in item._port_rows(True)] == ["image"] and [n for n, _ in item._port_rows(False)] == ["image"]
    wire_in, wire_out = scene.links[f"{red}.image"], scene.links[f"{saver}.{next(iter(g.inputs[saver]))}"]
    assert wire_in.path().pointAtPercent(1) == item.port_scene_pos("image", True)
    assert wire_out.path().pointAtPercent(0) == item.port_scene_pos("image", False)
    assert any("unknown node type 'comfyui.ImageQuantize'" in str(p) for p in win.doc.problems)
    win.controller.delete([red])
    assert list(g.inputs[saver].values()) == [("vae_decode_8", "video")]


@pytest.mark.parametrize("name, node, control", [
    ("wan_t2v.json", "k_sampler_3", "randomize"),                                # KSampler's own widget
    ("templates/image_flux2.json", "sampler_custom_advanced_68_13", "randomize"),  # RandomNoise folded in
    ("templates/video_wanmove_480p.json", None, "increment"),
    ("wan_t2v_optimalsteps.json", None, "fixed"),
])
def test_a_seed_set_to_randomize_in_comfyui_draws_a_new_one_at_each_run(win, name, node, control):
    """ComfyUI's control after generate (randomize, its KSampler's default) was dropped: every seed came in fixed,
    so Run after Run gave the same picture (from the cache, at once) where ComfyUI draws a new seed at each queue."""
    import random
    assert win.open_path(DATA / name) is win
    g = win.doc.graph
    samplers = [n for n, i in g.nodes.items() if i.type == "generate.sample" and (node is None or n == node)]
    assert samplers
    before = {n: g.nodes[n].params["seed"] for n in samplers}
    win.controller.next_seeds(random.Random(7))       # what Run does before it starts
    after = {n: g.nodes[n].params["seed"] for n in samplers}
    # ComfyUI: randomize draws another seed, increment adds one, fixed keeps it
    if control == "randomize":
        assert all(after[n] != before[n] for n in samplers)
    elif control == "increment":
        assert any(after[n] == before[n] + 1 for n in samplers)
    else:
        assert after == before
    if node is not None:
        win.scene.select_nodes([node])
        assert win.properties.editors["seed"].mode.currentText() == "random"


def test_an_imported_workflow_is_named_after_its_file_until_saved(win, monkeypatch, tmp_path):
    """The window's title, 'Save changes to …?' and the queue said 'untitled' of image_z_image_turbo.json."""
    assert win.open_path(DATA / "wan_t2v.json") is win
    win.controller.set_param("k_sampler_3", "steps", 7)
    assert win.windowTitle().startswith("wan_t2v (unsaved)")
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *a: asked.append(text) or QMessageBox.Cancel)
    assert not win.confirm_discard()
    assert asked == ["Save changes to wan_t2v (unsaved)?"]
    win.doc.save(tmp_path / "shot.yaml")
    assert win.windowTitle().startswith("shot.yaml")


def test_the_first_run_of_an_imported_file_uses_the_seed_it_was_saved_with(win, monkeypatch):
    """ComfyUI applies 'randomize' after a queue, so the seed a ComfyUI file (or a picture carrying it) holds is the
    one its picture was made with. The editor drew a new seed before the first run: an artist who opened a file to
    make that picture again got another one. The first run keeps it; the next ones draw."""
    run_past_the_precheck(monkeypatch)
    monkeypatch.setattr(window_mod, "allow_outside_for_run", lambda parent, doc: True)
    ran = []
    monkeypatch.setattr(win.runs, "submit", lambda doc, **kw: ran.append(doc.graph.nodes["k_sampler_3"].params["seed"])
                        or SimpleNamespace(state="queued"))   # (the first still queued when Run is pressed again)
    assert win.open_path(DATA / "wan_t2v.json") is win
    saved = win.doc.graph.nodes["k_sampler_3"].params["seed"]
    assert win.doc.graph.ui["k_sampler_3"]["seed"] == {"seed": "random"}
    win.run()
    win.run()
    assert ran[0] == saved and ran[1] != saved


def test_a_first_run_that_stops_short_leaves_the_files_seed_for_the_next(win, tmp_path, monkeypatch):
    """The first run of a ComfyUI file usually stops at a model not yet in the folders; ComfyUI, refusing that
    queue, keeps the seed. Fixed and run again, the file's seed must still be the one sampled."""
    run_past_the_precheck(monkeypatch)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))       # empty: the run stops at loading
    monkeypatch.setattr(window_mod, "allow_outside_for_run", lambda parent, doc: True)
    assert win.open_path(DATA / "wan_t2v.json") is win
    saved = win.doc.graph.nodes["k_sampler_3"].params["seed"]
    first = win.run()
    assert win.runs.wait_idle(120) and first.state == "failed", first.error
    again = win.run()
    assert again.workflow.graph.nodes["k_sampler_3"].params["seed"] == saved
    assert win.runs.wait_idle(120)


def test_a_subgraphs_nodes_open_where_the_subgraph_stood(win):
    """Stable Audio 3's template holds its nodes in a subgraph at (370, 1120), beside its notes and Save Audio: they
    opened where the subgraph's own canvas had them, the sampler 1,000 px above everything and the text encoder far
    below, as if the graph were three loose pieces; ComfyUI's Convert to nodes places them where the subgraph was."""
    win.open_path(str(DATA / "templates" / "audio_stable_audio_3_medium.json"))
    win._comfyui_report.close()
    g = win.doc.graph
    # the subgraph's canvas begins at (-390, 100) (its constants, folded on import): moved by (760, 1020), its
    # layout kept, the sampler on Save Audio's row. Its Preview Any and Math Expression (1370, 1310 / 1360) now run
    # as math.show / math.expression: the Math Expression, taller than ComfyUI drew it, is moved down off the
    # preview, and Text Generate off it, as any stacked imported nodes are
    assert {n: g.ui[n]["pos"] for n in g.nodes if "_52_" in n} == {
        "k_sampler_52_3": [1100 + 760, 100 + 1020], "clip_loader_52_29": [690 + 760, 1580 + 1020],
        "preview_any_52_42": [1370 + 760, 1310 + 1020], "comfy_math_expression_52_41": [1370 + 760, 1360 + 1020 + 48],
        "text_generate_52_28": [1200 + 760, 1580 + 1020 + 46]}
    assert g.ui["save_audio_advanced_57"]["pos"] == [820, 1120]


def test_file_open_shows_comfyui_files_without_changing_the_filter(win, monkeypatch):
    """File > Open listed Kinograph's .yaml only (its first filter): the folder of ComfyUI workflows, .json all of
    them, looked empty until the filter at the bottom of the dialog was changed. File > Import ComfyUI Workflow…
    opens the dialog on ComfyUI's files."""
    from PySide6.QtWidgets import QFileDialog
    asked = []

    def dialog(parent, caption, start, filters, selected="", *a):
        asked.append((filters.split(";;"), selected))
        return "", ""
    monkeypatch.setattr(QFileDialog, "getOpenFileName", dialog)
    (op,) = [a for a in win.menuBar().actions()[0].menu().actions() if a.text() == "&Open…"]
    op.trigger()
    assert asked[-1][1] == ""
    shown = asked[-1][0][0]
    assert all(f"*.{ext}" in shown for ext in ("yaml", "json", "png", "mp4", "webp")), shown
    (imp,) = [a for a in win.menuBar().actions()[0].menu().actions() if a.text().startswith("&Import ComfyUI")]
    imp.trigger()
    filters, selected = asked[-1]
    assert selected.startswith("ComfyUI workflows") and selected in filters
