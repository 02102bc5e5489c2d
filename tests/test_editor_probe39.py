"""An afternoon in the editor as an artist from ComfyUI and Nuke (probe editor39): ComfyUI templates with nodes
Kinograph keeps as they are, text pasted from elsewhere, an imported workflow's log, ... Driven through the real
window offscreen; any Qt warning fails a test."""
import json
import os
import time

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from graph_engine import Param  # noqa: E402
from graph_engine.types import VIDEO  # noqa: E402
from graph_engine.workflow import parse_workflow  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor_session  # noqa: E402
from test_editor_probe37 import TEMPLATES  # noqa: E402

from app.editor.comfyui_open import open_comfyui  # noqa: E402

make_window, no_modal_dialogs, registry = (test_editor_session.make_window, test_editor_session.no_modal_dialogs,
                                           test_editor_session.registry)
win, private_config, pytestmark = test_editor_session.win, test_editor_session.private_config, test_editor_session.pytestmark

RESTYLER = TEMPLATES / "templates_mjm_looped_restyler.json"


def _comfy_nodes(path):
    """Every node of a ComfyUI file, its subgraphs' too, as ComfyUI's JSON has them."""
    comfy = json.loads(path.read_text())
    return comfy["nodes"] + [n for sub in comfy.get("definitions", {}).get("subgraphs", []) for n in sub["nodes"]]


def test_a_kept_comfyui_node_shows_its_settings_as_text_not_python(make_window, qtbot):
    """The looped restyler's GeminiNodeV3 (no Kinograph equivalent, kept from the import) selected: the properties
    listed "widgets_values: ['Gemini 3.8 Flash', 'I am prompting a video model …\\n\\nI need a prompt …']" and
    "comfyui_inputs: {'model.images.image_1': 'ComfyUI node 89:84 output 0'}", Python's reprs, the prompt's
    paragraphs as backslash-n. Each value is on its own line, the prompt as it was written."""
    from PySide6.QtWidgets import QLabel
    doc, _ = open_comfyui(RESTYLER, None)
    w = make_window(doc)
    qtbot.wait(10)                  # the first view framed, as the window does once it is up
    (gemini,) = [n for n in _comfy_nodes(RESTYLER) if n["type"] == "GeminiNodeV3" and n["id"] == 93]
    nid = next(n for n, i in doc.graph.nodes.items() if i.type == "comfyui.GeminiNodeV3" and n.endswith("_93"))
    w.scene.select_nodes([nid])
    (kept,) = [lab.text() for lab in w.properties.widget().findChildren(QLabel) if "kept as they are" in lab.text()]
    assert "{'" not in kept and "['" not in kept and "\\n" not in kept, kept
    prompt = gemini["widgets_values"][1]
    lines = "\n".join(line.strip() for line in kept.split("\n"))
    assert "\n\n" in prompt and prompt in lines                     # its paragraphs, as ComfyUI's file has them
    for value in gemini["widgets_values"]:
        if value != "":
            assert str(value) in lines, value
    assert "model.images.image_1: ComfyUI node 89:84 output 0" in kept


def test_text_pasted_from_elsewhere_is_said_to_be_text(win):
    """Ctrl+V on the canvas with a model's page address copied from the browser (https://civitai.com/…), a
    two-line prompt or a number: 'nothing to paste: the file is a str; a workflow file must be a mapping', a
    Python type name, of a 'file' there was none of; 'shot 12: keep the flare' (a line from the notes) said a
    workflow was 'missing `kinograph: 1`'. It says the clipboard holds text, as for one plain word."""
    from PySide6.QtGui import QGuiApplication
    said = []
    win.message = said.append
    for text in ("https://civitai.com/models/1234/wan-22", "file:///mnt/plates/sh010.mp4",
                 "a red fox\nin the snow at dusk", "12", "shot 12: keep the flare", "- plate\n- grade"):
        said.clear()
        QGuiApplication.clipboard().setText(text)
        assert win.paste() == []
        assert len(said) == 1 and said[0].startswith("nothing to paste: the clipboard holds text, not Kinograph"), \
            (text, said)
    assert not win.doc.graph.nodes and not win.doc.undo.count()
    QGuiApplication.clipboard().setText("kinograph: 1\nnodes:\n  r: {type: video.resize}\n")
    assert len(win.paste()) == 1                                   # nodes written by hand still paste


def test_an_imported_workflow_s_log_names_no_file_line_it_does_not_have(make_window, qtbot):
    """The looped restyler imported: the Log said '<workflow>:116: node gemini_image_node_89_5: unknown node type
    …', a line 116 of a file named <workflow> that the artist has never seen (the YAML the import made in
    memory). A workflow read from a file still gives its line."""
    doc, _ = open_comfyui(RESTYLER, None)
    w = make_window(doc)
    qtbot.wait(10)                  # the first view framed, as the window does once it is up
    log = w.log.toPlainText()
    assert "node gemini_image_node_89_5: unknown node type 'comfyui.GeminiImageNode'" in log
    assert "<workflow>" not in log, log


def _previewing(ctx, video: VIDEO, steps: int = Param(400, min=1, max=100000),
                fail_at: int = Param(0, min=0, max=100000)) -> VIDEO:
    """A sampler's stand-in: a grey step preview at each step (as Sample sends its latent's), and a wait."""
    for i in range(steps):
        ctx.progress(i, steps)
        ctx.preview(np.full((8, 8, 3), 128, np.uint8), i, steps)
        if fail_at and i == fail_at:
            raise ValueError("the sampler met NaN at step 15")
        time.sleep(0.005)
    return video


def test_a_sampler_stopped_midway_does_not_keep_its_step_preview_as_its_picture(make_window, qtbot):
    """The default example's Sample at 200 steps, cancelled at step 2: its node went on showing the step's preview,
    noise, under 'cancelled', as if that were its output, until the next run; a sampler that failed at step 15
    kept step 14's half-made picture. A node that stops midway shows what it showed before the run; one that
    finishes keeps its last step."""
    from app.editor.document import Document
    from test_editor import _spec, registry_with
    reg = registry_with()
    reg.specs["test.previewing"] = _spec(_previewing, "test.previewing")
    w = make_window(Document(registry=reg))
    c = w.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    c.set_param(pat, "frames", 2)
    s = c.add_node("test.previewing", (300, 0))
    c.connect(pat, "video", s, "video")
    item = w.scene.nodes[s]
    job = w.run([s])
    qtbot.waitUntil(lambda: item.thumb is not None, timeout=30000)
    w._cancel_run()
    assert w.runs.wait_idle(30) and job.state == "cancelled"
    qtbot.wait(10)
    assert item.thumb is None
    c.set_param(s, "fail_at", 15)
    job = w.run([s])
    assert w.runs.wait_idle(60) and job.state == "failed"
    qtbot.wait(10)
    assert item.thumb is None and item.status.state == "failed"
    c.set_param(s, "fail_at", 0)
    c.set_param(s, "steps", 3)
    job = w.run([s])
    assert w.runs.wait_idle(60) and job.state == "done"
    qtbot.wait(10)
    assert item.thumb is not None                   # finished: its last step stays


def test_a_long_workflow_name_leaves_what_the_run_wrote_in_sight_in_the_history(make_window, tmp_path):
    """Two runs of 'sh010_comp_v012_final_FINAL_with_the_new_flare_and_client_notes_applied_for_review_tuesday.yaml':
    each row of Queue & history was the file's name, then '— ou' cut at the edge, what the run wrote out of sight
    behind a sideways scrollbar. The name is cut in its middle; the whole of it is in the row's tip."""
    from PySide6.QtGui import QFontMetrics
    from test_editor import chain
    from app.editor.document import Document
    name = "sh010_comp_v012_final_FINAL_with_the_new_flare_and_client_notes_applied_for_review_tuesday.yaml"
    w = make_window()
    chain(w, out=tmp_path / "take.mkv")
    w.doc.save(tmp_path / name)
    w = make_window(Document.load(tmp_path / name, w.doc.registry))
    for _ in range(2):
        job = w.run()
        assert w.runs.wait_idle(60) and job.state == "done", job.error
    w.runs.jobsChanged.emit()
    w.bottom_tabs.setCurrentWidget(w.queue)
    history = w.queue.history
    assert history.count() == 2
    for row in range(2):
        item = history.item(row)
        assert item.text().startswith(("✔",)) and item.text().endswith("— take.mkv"), item.text()
        assert "sh010_comp_v012" in item.text() and "tuesday.yaml" in item.text()
        room = history.viewport().width()
        assert QFontMetrics(history.font()).horizontalAdvance(item.text()) <= room, (item.text(), room)
        assert name in item.toolTip() and str(tmp_path / "take.mkv") in item.toolTip()


def test_a_plan_saved_as_notes_opens_without_a_terminal_s_advice(win, tmp_path, qtbot):
    """A shot's plan written as sticky notes, saved, opened again: the Log warned, in orange, 'plan.yaml:2: the
    workflow has no nodes yet: add some in the editor (`kinograph gui plan.yaml`); `kinograph nodes` lists them',
    the command that opens the editor, in the editor. The canvas says how to add a node; the notes are back."""
    c = win.controller
    c.add_note((0, 0), "sh010: plate, denoise, grade")
    plan = tmp_path / "plan.yaml"
    win.doc.save(plan)
    _, problems = parse_workflow(plan.read_text(), plan, win.doc.registry)
    assert any("no nodes yet" in str(p) for p in problems)         # as the CLI says of it
    w = win.open_path(str(plan))
    qtbot.wait(10)
    assert "kinograph gui" not in w.log.toPlainText() and "no nodes yet" not in w.log.toPlainText(), w.log.toPlainText()
    assert [n["text"] for n in w.doc.graph.ui["_notes"].values()] == ["sh010: plate, denoise, grade"]


def test_a_cancelled_run_does_not_say_its_clip_was_computed(win, qtbot, tmp_path):
    """A 2,000-frame pattern into a Save, cancelled at frame 18: the Log said 'test_pattern computed its frames in
    3.0 s (as later nodes read them)', as if the clip were made; 18 were. It says how long it computed before the
    run was cancelled, and its badge never said 'done' for it."""
    c = win.controller
    pat = c.add_node("generate.test_pattern", (0, 0))
    for k, v in (("frames", 2000), ("width", 32), ("height", 32)):
        c.set_param(pat, k, v)
    slow = c.add_node("io.save_video", (300, 0))       # reads the pattern's frames as it writes them
    c.set_param(slow, "path", str(tmp_path / "long.mkv"))
    c.set_param(slow, "codec", "ffv1")
    c.connect(pat, "video", slow, "video")
    said = []
    win.runs.statusChanged.connect(lambda n, st: said.append((n, getattr(st, "state", None), getattr(st, "seconds", None))))
    job = win.run([slow])
    qtbot.waitUntil(lambda: (getattr(win.runs.status.get(slow), "progress", None) or 0) > 0, timeout=30000)
    win._cancel_run()
    assert win.runs.wait_idle(30) and job.state == "cancelled"
    qtbot.wait(10)
    log = win.log.toPlainText()
    assert "computed its frames" not in log, log
    assert f"{c.named(pat)} computed frames for " in log and "before the run was cancelled" in log, log
    assert not [s for s in said if s[0] == pat and s[1] == "done" and s[2] is not None], said
    assert win.scene.nodes[pat].status.state == "cancelled"
