"""An afternoon in the editor as an artist from Nuke and ComfyUI (probe editor38): footage that is not there, sounds
and meshes looked at and dropped, edits made while a render runs, an undo of the edit that put the viewer out of
date, a crashed import recovered, a run reopened to be made again. Driven through the real window offscreen; any Qt
warning fails a test."""
import math
import os
import struct
import wave

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor_session  # noqa: E402

make_window, no_modal_dialogs, registry = (test_editor_session.make_window, test_editor_session.no_modal_dialogs,
                                           test_editor_session.registry)
win, private_config, pytestmark = test_editor_session.win, test_editor_session.private_config, test_editor_session.pytestmark


def _field_errors(panel):
    from PySide6.QtWidgets import QLabel
    return [lab.text() for lab in panel.findChildren(QLabel) if lab.objectName() == "FieldError" and not lab.isHidden()]


def test_a_plate_that_is_not_there_is_marked_on_its_loader(win, tmp_path, qtbot):
    """Ctrl+Enter on Load Video -> Save Video whose plate is not there: nothing ran and the log named the file, but
    the Load Video on the canvas looked as good as ever (a model loader is marked in red, 'missing'), and its
    panel said nothing under its path. The plate put where it was named: the mark goes."""
    c = win.controller
    plate = tmp_path / "plates" / "sh010_plate.mp4"
    lv = c.add_node("io.load_video", (0, 0))
    c.set_param(lv, "path", str(plate))
    sv = c.add_node("io.save_video", (300, 0))
    c.connect(lv, "video", sv, "video")
    assert win.run() is None
    qtbot.wait(20)
    item = win.scene.nodes[lv]
    assert list(item.missing) == ["path"]
    assert str(plate) in item.missing["path"].message and "is not there" in item.missing["path"].message
    assert str(plate) in item._param_tip("path")        # the field's tip says it whole
    win.scene.select_nodes([lv])
    (said,) = _field_errors(win.properties)
    assert str(plate) in said
    # copied in, the node edited (or the window come back to): the mark goes
    plate.parent.mkdir()
    plate.write_bytes(b"")
    c.set_param(lv, "start", 1)
    qtbot.wait(20)
    assert item.missing == {} and _field_errors(win.properties) == []


def _tone(path):
    """2 s of a 16 kHz sine, as a WAV file."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 10))) for i in range(32000)))
    return path


def test_a_sound_in_the_viewer_reads_as_a_sound_not_as_python(win, tmp_path, qtbot):
    """V on a Load Audio: the viewer said `load_audio.audio = Audio(path='/…/tone.wav', start=0.0, duration=2.0,
    then=(), speed=1.0, tape=False, gain=0.0, mix=())`, a Python object's insides. It says what the sound is: its
    length, the file it plays, and that the viewer does not play it."""
    tone = _tone(tmp_path / "tone.wav")
    c = win.controller
    a = c.add_node("io.load_audio", (0, 0))
    c.set_param(a, "path", str(tone))
    c.set_param(a, "start", 0.5)
    win.view_node(a, "A")
    assert win.runs.wait_idle(60)
    qtbot.waitUntil(lambda: win.viewer.sources["A"] is not None)
    text = win.viewer.sources["A"].text
    assert "Audio(" not in text and "tape=" not in text
    # 2 s of file from 0.5 s in: 1.5 s of sound (as the file holds it, counted independently by wave)
    assert "1.5 s" in text and "tone.wav" in text and "from 0.5 s" in text and "not played here" in text


def test_an_imported_templates_missing_picture_is_marked_and_covers_no_node(win, tmp_path, monkeypatch):
    """Wan 2.2's image-to-video template, its start picture not in ComfyUI's input/ here: its Load Image is marked
    missing as its model loaders are, and the import made room for that row (it covered nothing below it)."""
    from PySide6.QtCore import QRectF
    from test_editor_probe37 import TEMPLATES
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    win.open_path(str(TEMPLATES / "video_wan2_2_14B_i2v.json"))
    win._comfyui_report.close()
    items = list(win.scene.nodes.values())
    pictures = [a for a in items if a.inst.type == "io.load_image"]
    assert pictures and all(list(a.missing) == ["path"] for a in pictures)
    for a in [a for a in items if a.missing]:
        body = QRectF(a.pos().x(), a.pos().y(), a.w, a.h)
        covered = [b.label for b in items if b is not a and body.intersects(QRectF(b.pos().x(), b.pos().y(), b.w, b.h))]
        assert not covered, (a.label, covered)


def test_undoing_the_edit_that_put_the_sampler_on_screen_out_of_date_takes_the_mark_back(make_window, qtbot):
    """V on a sampler, then an edit to it: 'A is out of date: press V to recompute', rightly (a sampler is not run
    again unasked). Ctrl+Z put the graph back as the picture was made from, and the viewer went on saying it
    was out of date, in its alert banner, until V computed again (minutes of sampling) what was on screen."""
    import test_editor_afternoon
    from app.editor.document import Document
    reg = test_editor_afternoon.registry.__wrapped__()
    w = make_window(Document(registry=reg))
    c = w.controller
    s = c.add_node("test.sample", (0, 0))
    w.view_node(s, "A")
    assert w.runs.wait_idle(60)
    qtbot.waitUntil(lambda: w.viewer.canvas.images["A"] is not None)
    jobs = len(w.runs.jobs)
    c.set_param(s, "level", 200)
    assert w.viewer.canvas.note.startswith("A is out of date") and w.viewer.canvas.alert
    w.doc.undo.undo()
    qtbot.wait(300)
    assert not w.viewer.canvas.alert and "out of date" not in w.viewer.canvas.note
    assert len(w.runs.jobs) == jobs                 # and nothing was sampled again for it
    w.doc.undo.redo()                               # the edit again: out of date again
    assert w.viewer.canvas.note.startswith("A is out of date") and w.viewer.canvas.alert


def _pattern_then_slow(c):
    """A two-frame pattern into a Slow of 60 steps (0.3 s): (pattern, slow)."""
    pat = c.add_node("generate.test_pattern", (0, 0))
    c.set_param(pat, "frames", 2)
    first = c.add_node("test.slow", (300, 0))
    c.set_param(first, "steps", 60)
    c.connect(pat, "video", first, "video")
    return pat, first


def test_a_node_edited_while_the_run_computes_it_is_not_said_done_when_it_finishes(win, qtbot):
    """A long run, the first sampler-like node edited while it computed: once it finished (the run going on with
    the next node, minutes of a VAE decode in a Wan graph) its badge said 'done 1.2 s' in green, as if its
    output had the new value; only the run's end made it 'edited'. It says 'edited' the moment it finishes."""
    c = win.controller
    _, first = _pattern_then_slow(c)
    second = c.add_node("test.slow", (600, 0))
    c.set_param(second, "steps", 200)
    c.connect(first, "video", second, "video")
    job = win.run([second])
    qtbot.waitUntil(lambda: getattr(win.runs.status.get(first), "state", None) == "running", timeout=30000)
    c.set_param(first, "steps", 61)                 # edited while it runs
    qtbot.waitUntil(lambda: getattr(win.runs.status.get(second), "state", None) == "running", timeout=30000)
    item = win.scene.nodes[first]
    assert job.state == "running"
    assert item.status.state == "edited", item.status
    assert win.runs.wait_idle(30) and job.state == "done"
    assert item.status.state == "edited"
    assert win.scene.nodes[second].status.state == "edited"    # what it feeds ran from the old one too


def test_a_sound_render_opened_in_the_viewer_is_read_as_a_sound(win, tmp_path, qtbot):
    """A Save Audio's render opened from the history (or dropped on the viewer): 'tone.wav could not be computed:
    … holds no pictures (no video stream: a sound or data file?)' in red, as if the render were broken. It is read
    as the sound it is."""
    tone = _tone(tmp_path / "tone.wav")
    win.view_file(str(tone), "A")
    assert win.runs.wait_idle(60)
    qtbot.waitUntil(lambda: win.viewer.sources["A"] is not None or win.viewer.canvas.alert)
    assert not win.viewer.canvas.alert, win.viewer.canvas.note
    assert "sound: 2 s of tone.wav" in win.viewer.sources["A"].text


def test_a_recovered_comfyui_import_still_runs_first_on_the_files_own_seeds(qtbot, tmp_path):
    """A ComfyUI template imported, its prompt edited, the editor killed before a run (a driver crash): the
    recovered workflow's first run drew new seeds, where the import keeps the file's for the first run (they made
    ComfyUI's picture). What the file's seeds were is ComfyUI's own JSON, read here."""
    import json
    from app.editor.autosave import Autosaver, find_recoveries, recover
    from app.editor.comfyui_open import open_comfyui
    from app.editor.controller import Controller
    from test_editor_probe37 import TEMPLATES
    src = TEMPLATES / "video_wan2_2_14B_i2v.json"
    doc, _ = open_comfyui(src, None)
    assert doc.seeds_as_read
    sampler = next(n for n, i in doc.graph.nodes.items() if "noise_seed" in i.params or "seed" in i.params)
    Controller(doc).set_title(sampler, "High noise")
    saver = Autosaver(doc, folder=tmp_path)
    saver.save_now()
    saver._lock.unlock()                        # the editor gone: its lock no longer held
    # and its timer with it: left running, the document (cyclic garbage) was destroyed by whichever thread's
    # allocation set off Python's collector, a later test's run thread: 'Timers cannot be stopped from another thread'
    saver.timer.stop()
    (rec,) = find_recoveries(tmp_path)
    back = recover(rec)
    assert back.seeds_as_read
    comfy = json.loads(src.read_text())
    every = comfy["nodes"] + [n for sub in comfy.get("definitions", {}).get("subgraphs", []) for n in sub["nodes"]]
    seeds = {n["widgets_values"][1] for n in every if n["type"] == "KSamplerAdvanced"}     # its subgraph's samplers
    kept = {i.params.get("noise_seed", i.params.get("seed")) for n, i in back.graph.nodes.items() if n == sampler}
    assert kept <= seeds, (kept, seeds)


def test_a_mesh_render_opened_from_the_history_says_what_it_is(win, tmp_path, qtbot):
    """A Save GLB's render opened from the history: 'ComfyUI.glb could not be computed: … holds no pictures' in
    red, a video reader's failure, as if the mesh were broken. Nothing is decoded: the viewer says it is a 3-D
    mesh it does not draw, and where its counts are shown (V on the node that made it)."""
    import numpy as np
    from nodes.common.mesh import Mesh
    from nodes.mesh.glb import write_glb
    glb = tmp_path / "ComfyUI.glb"
    tri = Mesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32), np.array([[0, 1, 2]], np.int64))
    write_glb(tri, str(glb), "", False)
    jobs = len(win.runs.jobs)
    win.view_file(str(glb), "A")
    assert win.runs.wait_idle(30)
    note = win.viewer.canvas.note
    assert "could not be computed" not in note and "3-D mesh" in note and "ComfyUI.glb" in note, note
    assert len(win.runs.jobs) == jobs


def test_the_render_shown_after_a_run_is_marked_out_of_date_when_edited_while_it_ran(win, qtbot, tmp_path):
    """A prompt changed while the render ran: at its end the viewer showed the render ('A: slow2.video', the first
    Save's picture, as a run shows it unasked) with nothing over it, while the canvas said every node after the
    edit was 'edited': the picture looked like the new prompt's. It says it is out of date."""
    c = win.controller
    _, first = _pattern_then_slow(c)
    save = c.add_node("io.save_video", (600, 0))
    c.set_param(save, "path", str(tmp_path / "a.mp4"))
    c.connect(first, "video", save, "video")
    job = win.run()
    qtbot.waitUntil(lambda: getattr(win.runs.status.get(first), "state", None) == "running", timeout=30000)
    c.set_param(first, "steps", 61)
    assert win.runs.wait_idle(30) and job.state == "done"
    qtbot.waitUntil(lambda: win.viewer.sources["A"] is not None)
    assert win.viewer.canvas.alert and win.viewer.canvas.note.startswith("A is out of date"), win.viewer.canvas.note
    c.set_param(first, "steps", 60)                 # put back as it ran: the picture is current again
    assert not win.viewer.canvas.alert and "out of date" not in win.viewer.canvas.note


def test_a_run_reopened_from_the_history_or_its_render_runs_first_on_its_own_seeds(win, make_window, tmp_path,
                                                                                    monkeypatch):
    """A seed set to random, a render made; the run reopened from Queue & history ('exactly as it ran') or its
    render opened, and Run pressed to make it again (at last with the right output path): a new seed was drawn
    before that first run, and another picture came out, where a ComfyUI file opened keeps its seeds for its
    first run. Its next run draws anew, as random says."""
    from app.editor import window as window_mod
    from app.editor.document import Document
    c = win.controller
    seeded = c.add_node("test.seeded", (0, 0))
    c.set_seed_mode(seeded, "seed", "random")
    pat = c.add_node("generate.test_pattern", (0, 300))
    c.set_param(pat, "frames", 2)
    save = c.add_node("io.save_video", (300, 300))
    c.set_param(save, "path", str(tmp_path / "take.mkv"))
    c.set_param(save, "codec", "ffv1")
    c.connect(pat, "video", save, "video")
    first = win.run()
    assert win.runs.wait_idle(60) and first.state == "done", first.error
    made_with = first.workflow.graph.nodes[seeded].params["seed"]
    before = set(window_mod.WINDOWS)
    win.open_job(first)
    (again,) = set(window_mod.WINDOWS) - before
    rendered = make_window(Document.load(tmp_path / "take.mkv", win.doc.registry))
    monkeypatch.setattr(window_mod, "allow_outside_for_run", lambda parent, doc: True)     # 'Write these files?': yes
    for w in (again, rendered):
        w.controller.set_param(save, "path", str(tmp_path / "again.mkv"))
        job = w.run()
        assert w.runs.wait_idle(60) and job.state == "done", job.error
        assert job.workflow.graph.nodes[seeded].params["seed"] == made_with
        assert not w.doc.seeds_as_read                  # the next run draws, as random says


def test_a_sound_file_dropped_on_the_canvas_becomes_a_load_audio(win, tmp_path):
    """A voice-over .wav dragged from the file manager onto the canvas (ComfyUI makes a LoadAudio of it): the drag
    was refused, the cursor a 'no entry', nothing said. It becomes a Load Audio reading that file."""
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication
    tone = _tone(tmp_path / "voice over.wav")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tone))])
    vp = win.view.viewport()
    enter = QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(vp, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(vp, QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    (nid,) = win.doc.graph.nodes
    inst = win.doc.graph.nodes[nid]
    assert inst.type == "io.load_audio" and inst.params["path"] == str(tone)
    # and dropped on the viewer, it is looked at as the sound it is
    vp = win.viewer
    QApplication.sendEvent(vp, QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    QApplication.sendEvent(vp, QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    assert win.runs.wait_idle(60)
    assert "sound: 2 s of voice over.wav" in win.viewer.sources["A"].text


def test_a_workflow_description_being_typed_is_in_the_autosave(make_window, qtbot, monkeypatch):
    """Nothing selected, the shot's notes typed into the workflow's description for minutes while a render ran (it
    is applied when the field is left, or Ctrl+Enter): the autosave held the old description, and a crash lost what
    was typed, where a prompt or a sticky note being typed is autosaved as typed."""
    from PySide6.QtWidgets import QMessageBox
    from app.editor.autosave import find_recoveries, recover
    w = make_window(autosave_ms=3_600_000)
    w.controller.add_node("generate.test_pattern", (0, 0))
    w.doc.undo.setClean()
    w.scene.select_nodes([])
    name, desc = w.properties._meta_edits
    desc.setFocus()
    qtbot.keyClicks(desc, "sh010: keep the flare")
    w.autosaver.tick()
    assert w.doc.graph.description == "", "the autosave applied the typing to the workflow"
    w.autosaver._lock.unlock()          # what the OS does to a crashed editor's lock
    (rec,) = find_recoveries()
    assert recover(rec, w.doc.registry).graph.description == "sh010: keep the flare"
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Discard)
    assert w.close()


def test_a_tooltip_never_cuts_a_path_at_its_hyphens():
    """A missing plate's tip wrapped its path at a hyphen (.../popen-<newline>gw1/...): under pytest-xdist the test
    above failed, and a user copying the path from the tip got a file that is not theirs."""
    import textwrap
    from app.editor.node_item import _wrap
    path = "/mnt/projects/show-2026/sequence-010/shot-0040/plates/sh040-main-plate-v012.mp4"
    message = f"Load Video: path: '{path}' is not there"
    assert not any(path in line for line in textwrap.fill(message, 90).split("\n"))     # what the tip did
    assert any(path in line for line in _wrap(message).split("\n"))
