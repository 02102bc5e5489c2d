"""A second look at stop 36's editor work, as a reviewer and an artist from ComfyUI (probe editor36b): the
minimap-avoiding framing, missing model files after the import report is closed, undo texts, ComfyUI's Ctrl+M, a
wire to a node below its source. Driven through the real window offscreen; any Qt warning fails a test."""
import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor_session  # noqa: E402
from PySide6.QtCore import QRectF  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.editor import view as view_mod  # noqa: E402
from app.editor.geometry import PORT_R, node_size  # noqa: E402

# The window fixtures of the session tests: a window, no modal dialog, a config folder of each test's own.
make_window, no_modal_dialogs, registry = (test_editor_session.make_window, test_editor_session.no_modal_dialogs,
                                           test_editor_session.registry)
win, private_config, pytestmark = test_editor_session.win, test_editor_session.private_config, test_editor_session.pytestmark

def test_the_first_view_stays_legible_when_a_node_lies_under_the_minimap(win):
    """The first view shows the whole graph only where it reads (LEGIBLE_ZOOM), else its start; the minimap
    avoidance then zoomed that whole graph out to fit beside the minimap, titles and fields too small to read."""
    c, view = win.controller, win.view
    vw, vh = view.viewport().width(), view.viewport().height()
    z = view_mod.LEGIBLE_ZOOM * 1.05        # the graph, margins and all, fits at a zoom just over the legible one
    w, h = node_size(win.doc.registry.get("video.resize"))
    # the far node's bottom right where the legible view, 40 px margins, ends: under the minimap
    first = c.add_node("generate.test_pattern", (0, 0))
    c.add_node("video.resize", (vw / z - 80 - w, vh / z - 80 - h))
    view.frame_legible()
    assert view.zoom() >= view_mod.LEGIBLE_ZOOM - 1e-6, view.zoom()
    box = view.mapFromScene(win.scene.nodes[first].sceneBoundingRect()).boundingRect()
    assert view.viewport().rect().contains(box), box       # its start in sight, as for any graph too big to read


def test_a_file_picked_in_the_second_folder_a_loader_reads_is_kept_by_its_name(win, tmp_path, monkeypatch):
    """Load Model reads checkpoints/ and diffusion_models/ (FLUX's file, as ComfyUI splits it): a file picked
    with the … in diffusion_models/ was kept as its full path (/home/…/models/diffusion_models/flux/…), which no
    other machine has, though the loader finds it by flux/x.safetensors; one in checkpoints/ was kept by its name."""
    from PySide6.QtWidgets import QFileDialog, QToolButton
    models = tmp_path / "models"
    for kind in ("checkpoints", "diffusion_models"):
        (models / kind / "flux").mkdir(parents=True)
        (models / kind / "flux" / f"{kind}_x.safetensors").write_bytes(b"")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    picked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a: (picked[-1], ""))
    n = win.controller.add_node("load.model", (0, 0))
    win.scene.select_nodes([n])
    for kind in ("checkpoints", "diffusion_models"):
        picked.append(str(models / kind / "flux" / f"{kind}_x.safetensors"))
        win.properties.editors["path"].findChild(QToolButton).click()
        assert win.doc.graph.nodes[n].params["path"] == f"flux/{kind}_x.safetensors", kind
    # a file outside every model folder is kept as picked: the name alone would not find it
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "y.safetensors").write_bytes(b"")
    picked.append(str(tmp_path / "elsewhere" / "y.safetensors"))
    win.properties.editors["path"].findChild(QToolButton).click()
    assert win.doc.graph.nodes[n].params["path"] == picked[-1]


def test_a_missing_model_file_is_said_on_its_loader_and_in_its_panel_after_the_report(win, tmp_path, monkeypatch,
                                                                                      qtbot):
    """Wan 2.2's template names wan/wan2.2_i2v_high_noise….safetensors, not there yet: the import report said so,
    and once it was closed nothing did: the loader looked ready, its panel said nothing, and the run failed at it.
    The loader now says the file is missing and where to put it (graph_engine.validate's own check), in its panel
    under the field and on the canvas; the file copied in and the window come back to, it says nothing."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QLabel
    folder = tmp_path / "models" / "diffusion_models"
    folder.mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    c = win.controller
    n = c.add_node("load.diffusion_model", (0, 0))
    c.set_param(n, "name", "wan/wan2.2_high.safetensors")
    item = win.scene.nodes[n]
    assert item.missing_lines() == [("missing", str(folder / "wan"))]
    win.scene.select_nodes([n])

    def said():
        return [lab.text() for lab in win.properties.findChildren(QLabel)
                if lab.objectName() == "FieldError" and not lab.isHidden()]
    assert any("'wan/wan2.2_high.safetensors' is not in the model folders" in t and str(folder / "wan") in t
               for t in said()), said()
    (folder / "wan").mkdir()
    (folder / "wan" / "wan2.2_high.safetensors").write_bytes(b"")
    QApplication.sendEvent(win, QEvent(QEvent.ActivationChange))        # back from the file manager
    assert item.missing_lines() == [] and not said(), said()
    c.set_param(n, "name", "wan2.2_low.safetensors")                    # a name set that is not there: said at once
    assert item.missing_lines() == [("missing", str(folder))] and said()
    win.copy()                                                          # pasted: said of the copy too
    (copy,) = win.paste()
    qtbot.waitUntil(lambda: win.scene.nodes[copy].missing_lines() == [("missing", str(folder))])


def test_undo_and_redo_name_nodes_by_the_title_the_canvas_shows(win):
    """'Undone: Set k_sampler_advanced_129_86.sampler': the status bar and Edit > Undo named the node by its id, which
    the canvas shows nowhere. They name it as the canvas does (its title; two of one title told apart by id)."""
    c = win.controller
    src = c.add_node("generate.test_pattern", (0, 0))
    a = c.add_node("video.resize", (300, 0))
    b = c.add_node("video.resize", (300, 300))
    c.set_title(a, "Hero grade")
    texts = []

    def step(do):
        do()
        texts.append(win.doc.undo.undoText())
    step(lambda: c.set_param(a, "width", 640))
    step(lambda: c.connect(src, "video", b, "video"))
    step(lambda: c.set_title(b, "Hero grade"))                      # two of one title now
    step(lambda: c.set_param(b, "width", 320))
    assert texts == ["Set width of Hero grade", "Connect Test Pattern's video to Resize's video",
                     "Rename Resize to Hero grade", f"Set width of Hero grade ({b})"], texts
    win.undo_action.trigger()
    assert win.statusBar().currentMessage() == f"Undone: Set width of Hero grade ({b})"
    assert not any(n in t for t in texts[:3] for n in (a, b, src)), texts


def test_comfyuis_ctrl_m_switches_a_node_off_and_says_how_kinograph_does_it(win, qtbot):
    """Ctrl+M (ComfyUI's mute: the node never runs) did nothing, and the next run saved the video meant to be left
    out. Kinograph's one way to switch a node off is bypass; Ctrl+M bypasses, and says how that differs (a
    bypassed node passes its input on to what reads it, where a muted one leaves it nothing). The F1 sheet has it."""
    from PySide6.QtCore import Qt
    from test_editor import chain
    p, r, s = chain(win)
    win.view.setFocus()
    qtbot.waitUntil(win.view.hasFocus)
    win.scene.select_nodes([s])
    for off in (True, False):                   # again: on, as ComfyUI's Ctrl+M toggles
        qtbot.keyClick(win.view, Qt.Key_M, Qt.ControlModifier)
        said = win.statusBar().currentMessage()
        assert win.doc.graph.nodes[s].bypass is off
        assert "mute" in said and "bypass" in said and "passes its input on" in said, said
    sheet = [a for a in win.help._actions if "Ctrl+M" in [k.toString() for k in a.shortcuts()]]
    assert len(sheet) == 1 and "Mute" in sheet[0].text(), [a.text() for a in sheet]


def _inside(link, item, inset=4.0):
    """The points of `link`'s wire that run over `item`'s body (behind it: wires are drawn under the nodes)."""
    body = item.sceneBoundingRect().adjusted(PORT_R + inset, inset, -PORT_R - inset, -inset)
    path = link.path()
    return [path.pointAtPercent(k / 200) for k in range(201) if body.contains(path.pointAtPercent(k / 200))]


def test_a_wire_to_a_node_below_its_source_runs_around_the_source_not_behind_it(win):
    """Depth Anything 3 above Render Depth, its output wired to the input straight below: the wire ran from the
    output on the right, behind the source node, and seemed to come out of its bottom edge (ComfyUI draws it the
    same). It now goes round: out to the right, down past the source, across the gap and into the input."""
    c = win.controller
    src = c.add_node("generate.test_pattern", (0, 0))
    h = win.scene.nodes[src].sceneBoundingRect().height()
    for dx, dy in ((0, h + 40), (-60, h + 120), (80, h + 40)):          # straight below, below left, below right
        dst = c.add_node("video.resize", (dx, dy))
        c.connect(src, "video", dst, "video")
        link = win.scene.links[f"{dst}.video"]
        assert not _inside(link, win.scene.nodes[src]), (dx, dy)
        assert not _inside(link, win.scene.nodes[dst]), (dx, dy)
        win.doc.undo.undo()                                             # the link, then the node
        win.doc.undo.undo()


def test_the_comfyui_hint_is_not_contradicted_by_what_was_typed_before(win):
    """Typed letter by letter, 'PreviewIma' found nothing ('No node matches “PreviewIma”'), and that line stayed
    under the hint once 'PreviewImage' was whole: the palette said where the job is done and, below, that the
    half-typed word matched nothing."""
    win.view.open_palette(win.view.viewport().rect().center())
    pal = win.view.palette
    for typed in ("Preview", "PreviewIma", "PreviewImage"):
        pal.edit.setText(typed)
    assert pal.comfyui_label.isVisible() and "PreviewIma" not in pal.help.text(), pal.help.text()


def test_the_workflow_page_lists_the_model_files_that_are_not_there(win, tmp_path, monkeypatch):
    """With nothing selected the panel shows the workflow, its node and link count and what does not validate: of
    the four model files Wan 2.2's template names and this machine lacks, nothing once the import report was closed."""
    from PySide6.QtWidgets import QLabel
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    (tmp_path / "models" / "vae").mkdir(parents=True)
    c = win.controller
    n = c.add_node("load.vae", (0, 0))
    c.set_param(n, "name", "wan_2.1_vae.safetensors")
    win.scene.select_nodes([])
    win.properties.show_node(None)
    said = [lab.text() for lab in win.properties.findChildren(QLabel) if lab.objectName() == "FieldError"]
    assert f"Load VAE: wan_2.1_vae.safetensors is missing: put it in {tmp_path / 'models' / 'vae'}" in said, said


def test_a_loader_saying_its_file_is_missing_covers_no_node_of_an_imported_template(win, tmp_path, monkeypatch):
    """FLUX.3 Klein's template with no model here: Load Text Encoder, a row taller for saying its file is missing,
    covered the Load VAE below it. The import makes room for that row, as for Kinograph's taller nodes."""
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    win.open_path(str(Path(__file__).resolve().parent / "data" / "comfyui" / "templates" /
                      "image_flux2_klein_text_to_image.json"))
    win._comfyui_report.close()
    items = list(win.scene.nodes.values())
    marked = [a for a in items if a.missing]
    assert marked
    for a in marked:
        body = QRectF(a.pos().x(), a.pos().y(), a.w, a.h)
        covered = [b.label for b in items if b is not a and body.intersects(QRectF(b.pos().x(), b.pos().y(), b.w, b.h))]
        assert not covered, (a.label, covered)
