"""The editor never loses the user's work: what is typed but not yet applied, files changed or
unreadable on disk, autosaves of two windows, undo of odd graphs (issue: probe of stop 13).
Driven through the real window offscreen; any Qt warning fails a test."""
import os
import types
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QLabel, QMessageBox, QPlainTextEdit  # noqa: E402

from graph_engine import Param  # noqa: E402
from graph_engine.types import STRING  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402
from test_editor import registry_with  # noqa: E402

make_window, no_modal_dialogs = test_editor.make_window, test_editor.no_modal_dialogs

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]


def _echo(ctx, text: str = Param("", kind="text")) -> STRING:
    """Returns its prompt."""
    return text


@pytest.fixture(scope="module")
def registry():
    return registry_with(test_echo=_echo, test_slow=test_editor._slow)


@pytest.fixture(autouse=True)
def private_config(monkeypatch, tmp_path):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def win(make_window, qtbot):
    w = make_window()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    return w


def answer(monkeypatch, *answers):
    """QMessageBox.question answers these in turn; returns the list of (title, text) asked."""
    asked, left = [], list(answers)

    def question(parent, title, text, *a, **k):
        asked.append((title, text))
        return left.pop(0)
    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def type_prompt(w, qtbot, node, text):
    w.scene.select_nodes([node])
    box = w.properties.editors["text"].edit
    assert isinstance(box, QPlainTextEdit)
    box.setFocus()
    qtbot.keyClick(box, Qt.Key_End, Qt.ControlModifier)
    qtbot.keyClicks(box, text)


# -- a prompt typed but not yet applied is unsaved work ---------------------------------------------
@pytest.mark.parametrize("how", ["close", "new"])
def test_a_typed_prompt_counts_as_unsaved_at_close_and_new(win, qtbot, tmp_path, monkeypatch, how):
    path = tmp_path / "typed.yaml"
    n = win.controller.add_node("test.echo", (0, 0))
    win.controller.set_param(n, "text", "old prompt")
    assert win._save_to(path)
    type_prompt(win, qtbot, n, " at dusk")
    asked = answer(monkeypatch, QMessageBox.Save)
    if how == "close":
        assert win.close()
    else:
        win.new_document()
        assert not win.doc.graph.nodes
    assert [t for t, _ in asked] == ["Unsaved changes"], "the typed prompt was dropped without asking"
    assert "old prompt at dusk" in path.read_text()


# -- undo puts back exactly what was deleted ----------------------------------------------------------
DANGLING = """kinograph: 1
nodes:
  pat:
    type: generate.test_pattern
    params: {frames: 8}
  save:
    type: io.save_video
    inputs: {video: ghost.video}
    params: {path: out/x.mp4}
"""


def test_undo_of_deleting_a_node_with_a_link_from_a_missing_node_puts_the_link_back(registry, qtbot):
    from app.editor.controller import Controller
    from app.editor.document import Document
    doc = Document.from_text(DANGLING, None, registry)
    before = doc.text()
    Controller(doc).delete(["save"])
    assert "save" not in doc.graph.nodes
    doc.undo.undo()             # raised "no node 'ghost'" half-way and left the link out
    assert doc.graph.inputs["save"] == {"video": ("ghost", "video")}
    assert doc.text() == before
    doc.undo.redo()
    assert "save" not in doc.graph.nodes and "save" not in doc.graph.inputs


def test_undo_of_a_delete_puts_nodes_back_where_they_were_in_the_file(win, tmp_path):
    """Node order is the file's order: a delete undone must not move blocks around in a saved
    workflow (a diff of a file 'unchanged' by delete + undo showed them moved to the end)."""
    from test_editor import chain
    p, r, s = chain(win)
    win.controller.set_collapsed([r])
    path = tmp_path / "order.yaml"
    assert win._save_to(path)
    before = path.read_text()
    win.controller.delete([r])                       # reconnects p -> s
    win.controller.delete([p], reconnect=False)
    win.doc.undo.undo()
    win.doc.undo.undo()
    assert list(win.doc.graph.nodes) == [p, r, s]
    assert win._save_to(path)
    assert path.read_text() == before



# -- saving over a file that is not what was opened --------------------------------------------------
def test_saving_over_a_file_changed_on_disk_asks_and_never_drops_either_version(win, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog
    path = tmp_path / "shared.yaml"
    win.controller.add_node("video.reverse", (0, 0))
    assert win._save_to(path)
    win.controller.add_node("generate.test_pattern", (0, 200))
    theirs = path.read_text() + "name: a colleague's edit (a git pull)\n"
    path.write_text(theirs)

    asked = answer(monkeypatch, QMessageBox.Cancel)
    assert not win.save()
    assert path.read_text() == theirs and win.doc.modified
    (title, text), = asked
    assert str(path) in text and "changed on disk" in text and "another name" in text

    mine = tmp_path / "mine.yaml"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(mine), ""))
    answer(monkeypatch, QMessageBox.No)              # No: keep theirs, save mine beside it
    assert win.save()
    assert path.read_text() == theirs and "test_pattern" in mine.read_text() and win.doc.path == mine

    win.controller.add_node("video.reverse", (300, 200))
    assert win.save(), "a file this window wrote itself was taken for someone else's"
    mine.write_text(mine.read_text() + "# touched\n")
    win.controller.add_node("video.reverse", (300, 400))
    answer(monkeypatch, QMessageBox.Yes)             # Yes: replace it
    assert win.save() and "touched" not in mine.read_text() and not win.doc.modified


UNREADABLE = """kinograph: 1
nodes:
  pat:
    type: generate.test_pattern
    params: {frames: 8}
  "my node":
    type: video.reverse
    inputs: {video: pat.video}
  keyed:
    type: video.reverse
    colour: red
    inputs: {video: pat.video}
extra: {x: 1}
"""


def test_saving_over_a_file_with_parts_it_could_not_read_asks_first(win, tmp_path, monkeypatch):
    """A node id with a space, an unknown key: the log lists them, and Save wrote the file without
    them, silently. Now it asks; No keeps the file and saves under another name."""
    path = tmp_path / "hand_written.yaml"
    path.write_text(UNREADABLE)
    assert win.open_path(str(path)) is win
    assert sorted(win.doc.graph.nodes) == ["keyed", "pat"]
    win.controller.add_node("video.reverse", (0, 300))

    asked = answer(monkeypatch, QMessageBox.Cancel)
    assert not win.save()
    assert path.read_text() == UNREADABLE and win.doc.modified
    (title, text), = asked
    assert str(path) in text and "my node" in text and "'colour'" in text and "'extra'" in text
    assert "another name" in text

    asked = answer(monkeypatch, QMessageBox.Yes)
    assert win.save() and "my node" not in path.read_text()
    win.controller.add_node("video.reverse", (0, 500))
    asked = answer(monkeypatch)
    assert win.save() and asked == [], "asked again about a file it has just written"


# -- autosave -------------------------------------------------------------------------------------------
def test_two_windows_on_one_file_autosave_apart_and_both_are_recovered(registry, tmp_path, qtbot):
    """The file opened twice (dropped again on a full canvas): both autosaved to one recovery file,
    so after a crash one window's edits were gone, and the first save deleted the other's."""
    from app.editor.autosave import Autosaver, find_recoveries
    from app.editor.controller import Controller
    from app.editor.document import Document
    path = tmp_path / "shot.yaml"
    first = Document(registry=registry)
    Controller(first).add_node("generate.test_pattern", (0, 0))
    first.save(path)
    a, b = Document.load(path, registry), Document.load(path, registry)
    Controller(a).add_node("video.reverse", (300, 0))
    Controller(b).add_node("video.resize", (300, 200))
    folder = tmp_path / "recovery"
    savers = [Autosaver(d, 60_000, folder) for d in (a, b)]
    for s in savers:
        s.save_now()
    for s in savers:
        s.timer.stop()
        s._lock.unlock()                # what the OS does to a crashed editor's locks
    texts = [r.text() for r in find_recoveries(folder)]
    assert len(texts) == 2
    assert any("video.reverse" in t for t in texts) and any("video.resize" in t for t in texts)


# -- a render in progress is work too ---------------------------------------------------------------------
def slow_chain(w, steps):
    c = w.controller
    p = c.add_node("generate.test_pattern", (0, 0))
    s = c.add_node("test.slow", (300, 0))
    c.set_param(p, "frames", 2)
    c.set_param(s, "steps", steps)
    c.connect(p, "video", s, "video")
    return p, s


def test_closing_a_window_while_it_renders_asks_before_cancelling(win, qtbot, tmp_path, monkeypatch):
    w = win
    p, s = slow_chain(w, 100000)
    assert w._save_to(tmp_path / "render.yaml")
    job = w.run([s])
    qtbot.waitUntil(lambda: job.state == "running")
    asked = answer(monkeypatch, QMessageBox.No)
    assert not w.close(), "closing cancelled a running render without asking"
    (title, text), = asked
    assert job.label in text and "cancel" in text.lower()
    assert w.isVisible() and job.state == "running" and not job.cancel.cancelled
    answer(monkeypatch, QMessageBox.Yes)
    assert w.close() and job.cancel.cancelled


def test_a_render_left_running_by_new_marks_nothing_on_the_next_workflow(win, qtbot, monkeypatch):
    """File > New while a render runs: the render goes on, but its badges landed on the new
    workflow's nodes of the same ids ('done' on a node that never ran)."""
    p, s = slow_chain(win, 200)
    job = win.run([s])
    qtbot.waitUntil(lambda: job.state == "running")
    answer(monkeypatch, QMessageBox.Discard)
    win.new_document()
    n = win.controller.add_node("test.slow", (0, 0))
    assert n == s
    assert win.runs.wait_idle(30) and job.state == "done"
    assert win.scene.nodes[n].status is None and n not in win.runs.status
    assert f"✔ {job.label}: finished" in win.log.toPlainText()


def test_a_read_only_workflow_or_folder_is_not_saved_over_and_says_why(win, tmp_path, monkeypatch):
    """A workflow marked read-only was replaced (and made writable) by Save under root, and under a user QSaveFile
    said 'Existing file ... is not writable'; a folder that cannot be written said 'Permission denied', naming
    neither the folder nor why."""
    from PySide6.QtCore import QSaveFile
    said = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a, **k: said.append(text))
    win.controller.add_node("video.reverse", (0, 0))
    locked = tmp_path / "locked.yaml"
    assert win._save_to(locked)
    os.chmod(locked, 0o444)
    before = locked.read_bytes()
    win.controller.add_node("video.resize", (0, 200))
    assert not win.save()
    assert said[-1].startswith(f"{locked} is read-only (its permissions): save under another name, or make it "
                               f"writable (chmod u+w) if you mean to change it.\n\nNothing was written")
    assert locked.read_bytes() == before and win.doc.modified and os.stat(locked).st_mode & 0o777 == 0o444
    # A folder this user cannot write (a read-only share): what QSaveFile meets there, and the access check's answer.
    share = tmp_path / "share"
    share.mkdir()
    monkeypatch.setattr(QSaveFile, "open", lambda self, mode: False)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == share else real_access(p, m))
    assert not win._save_to(share / "shot.yaml")
    assert said[-1].startswith(f"cannot write {share / 'shot.yaml'}: the folder {share} cannot be written by this "
                               f"user (a read-only drive or network share, or another user's folder)")


def test_a_read_only_config_folder_costs_the_recent_files_not_the_save(win, tmp_path, monkeypatch):
    """editor.json in a config folder that cannot be written (a locked-down studio account): Save wrote the
    workflow, then raised out of the window as it added it to the recent files (a traceback, no 'Saved')."""
    import errno
    from graph_engine import atomic
    config = Path(os.environ["KINOGRAPH_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    win.settings.path = config / "editor.json"        # where the editor keeps it (the fixture's is elsewhere)
    real = atomic.held_temporary

    def read_only_config(final, suffix=None):
        if config in Path(final).parents:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(final, suffix)
    monkeypatch.setattr(atomic, "held_temporary", read_only_config)
    win.controller.add_node("video.reverse", (0, 0))
    shot = tmp_path / "shot.yaml"
    assert win._save_to(shot)
    assert "video.reverse" in shot.read_text() and not win.doc.modified
    win.controller.add_node("video.resize", (0, 200))
    assert win.save() and "video.resize" in shot.read_text()


def test_an_autosave_that_cannot_be_written_says_so_once_and_raises_nothing(make_window, tmp_path, monkeypatch):
    """A config folder that cannot hold the recovery folder (read-only, full, a file): every 30 s
    a traceback on stderr, and the user believed their work was protected."""
    blocker = tmp_path / "config-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(blocker))
    w = make_window(autosave_ms=60_000)
    w.controller.add_node("video.reverse", (0, 0))
    w.autosaver.tick()
    w.controller.add_node("video.reverse", (0, 200))
    w.autosaver.tick()
    log = w.log.toPlainText()
    lines = [l for l in log.splitlines() if "autosave cannot" in l]
    assert len(lines) == 1, log
    line = lines[0]
    assert str(blocker / "recovery") in line and "Ctrl+S" in line


# -- Save As into another folder ---------------------------------------------------------------------------
def test_save_as_into_another_folder_keeps_reading_the_same_footage(win, tmp_path):
    """Save As kept 'footage/coffee.png' as typed, so the copy (and the open window, now based
    there) looked for other-folder/footage/coffee.png: 'image not found' at the next run."""
    import shutil
    from graph_engine.outputs import resolve_path
    proj, other = tmp_path / "proj", tmp_path / "other"
    (proj / "footage").mkdir(parents=True)
    other.mkdir()
    shutil.copy(test_editor.__file__, proj / "footage" / "clip.png")     # any file: only its place matters
    (proj / "shot.yaml").write_text("kinograph: 1\nnodes:\n"
                                    "  img: {type: io.load_image, params: {path: footage/clip.png}}\n"
                                    "  save: {type: io.save_image, inputs: {image: img.image}, "
                                    "params: {path: out/copy.png}}\n"
                                    "  model: {type: load.model, params: {path: wan/not_here.safetensors}}\n")
    assert win.open_path(str(proj / "shot.yaml")) is win
    copy = other / "shot.yaml"
    assert win._save_to(copy) and not win.doc.modified
    saved = test_editor.parse_workflow(copy.read_text(), copy, win.doc.registry)[0].graph
    read = saved.nodes["img"].params["path"]
    assert Path(resolve_path(read, other)) == proj / "footage" / "clip.png"
    assert not Path(read).is_absolute(), "the project pair is no longer movable together"
    assert saved.nodes["save"].params["path"] == "out/copy.png"                 # outputs go beside the workflow
    assert saved.nodes["model"].params["path"] == "wan/not_here.safetensors"    # a model name, not a file here
    live = win.doc.workflow
    assert Path(resolve_path(live.graph.nodes["img"].params["path"], live.base_dir)) == proj / "footage" / "clip.png"


def test_recovered_work_still_asks_before_replacing_a_file_changed_or_unreadable_on_disk(make_window, registry,
                                                                                       tmp_path, monkeypatch):
    """After a crash the file may have moved on (saved from another editor, a git pull), or may
    hold parts this version cannot read: the recovered workflow overwrote it without a word."""
    from app.editor.autosave import Autosaver
    from app.editor.controller import Controller
    from app.editor.document import Document
    from app.editor.window import offer_recovery
    path = tmp_path / "shot.yaml"
    path.write_text(UNREADABLE)
    crashed = Document.load(path, registry)
    Controller(crashed).add_node("video.resize", (300, 0))
    saver = Autosaver(crashed, 60_000)
    saver.save_now()
    saver.timer.stop()
    saver._lock.unlock()                       # what the OS does to a crashed editor's lock
    saver._file = saver._lock = None

    w = make_window()
    (rw,) = offer_recovery(w, registry, ask=lambda rec: True)
    assert rw is w and "video.resize" in [i.type for i in w.doc.graph.nodes.values()]
    asked = answer(monkeypatch, QMessageBox.Cancel)
    assert not w.save() and path.read_text() == UNREADABLE
    assert "my node" in asked[0][1]

    theirs = UNREADABLE.replace("frames: 8", "frames: 9")
    path.write_text(theirs)
    asked = answer(monkeypatch, QMessageBox.Cancel)
    assert not w.save() and path.read_text() == theirs
    assert "changed on disk" in asked[0][1]


# -- a layout the editor cannot use never keeps the workflow from opening ------------------------------------
BAD_LAYOUT = """kinograph: 1
nodes:
  pat:
    type: generate.test_pattern
  rev:
    type: video.reverse
    inputs: {video: pat.video}
ui:
  pat: {pos: "abc", collapsed: "yes"}
  rev: [1, 2]
  _groups:
    g1: {title: no rect}
    g2: {rect: [1, 2], color: 12}
    g3: {rect: [0, 0, 300, 200], title: kept}
  _notes:
    n1: {text: 5, pos: [1]}
    n2: {text: kept, pos: [10, 10]}
  _reroutes:
    rev.video: x
"""


def test_a_malformed_layout_opens_with_each_bad_entry_named_and_save_asks(win, tmp_path, monkeypatch):
    """A hand-edited or newer file's `ui:` (positions as text, a group without its rectangle):
    File > Open died with AttributeError. Layout never changes what runs: the workflow opens."""
    path = tmp_path / "layout.yaml"
    path.write_text(BAD_LAYOUT)
    assert win.open_path(str(path)) is win
    assert sorted(win.doc.graph.nodes) == ["pat", "rev"] and set(win.scene.nodes) == {"pat", "rev"}
    assert set(win.scene.groups) == {"g3"} and set(win.scene.notes) == {"n2"}
    log = win.log.toPlainText()
    for what in ("pat", "rev", "g1", "g2", "n1", "rev.video"):
        assert f"layout of {what}" in log, (what, log)
    win.controller.move(groups={"g3": (40, 40)})                 # the kept ones work
    asked = answer(monkeypatch, QMessageBox.Cancel)
    assert not win.save() and path.read_text() == BAD_LAYOUT
    assert "layout of g1" in asked[0][1]


def test_pasting_text_with_a_malformed_layout_pastes_the_nodes(win):
    """Text pasted from a forum post or another program: `ui:` with a position as a list of the
    wrong shape raised AttributeError out of Paste."""
    text = BAD_LAYOUT.replace("  _groups:", "  _unused:")
    ids = win.controller.paste(text, (100, 100))
    assert sorted(ids) == ["pat", "rev"] and win.doc.graph.inputs["rev"]["video"] == ("pat", "video")
    assert all(isinstance(win.doc.graph.ui[n]["pos"], list) for n in ids)


# -- a node this install does not have ---------------------------------------------------------------------
def test_a_node_of_a_missing_type_shows_what_it_holds_and_is_marked_missing(win, qtbot, tmp_path):
    """A node from a newer Kinograph or a missing node pack, with a title: the canvas showed only
    its title (nothing said 'missing'), the panel hid its parameters and links, and View said
    'connect its input' when it was connected."""
    path = tmp_path / "future.yaml"
    path.write_text("kinograph: 1\nnodes:\n  pat: {type: generate.test_pattern}\n"
                    "  magic: {type: future.magic_filter, title: My magic, inputs: {video: pat.video},\n"
                    "          params: {strength: 0.7, mode: swirl}}\n")
    assert win.open_path(str(path)) is win
    item = win.scene.nodes["magic"]
    assert item.title.startswith("missing: ") and item.label == "missing: My magic"
    assert "future.magic_filter" in item.toolTip()
    win.scene.select_nodes(["magic"])
    qtbot.wait(50)
    shown = "\n".join(l.text() for l in win.properties.widget().findChildren(QLabel))
    for what in ("future.magic_filter", "strength", "0.7", "swirl", "pat.video", "kept as they are"):
        assert what in shown, (what, shown)
    win.view_node("magic")
    msg = win.statusBar().currentMessage()
    assert "future.magic_filter" in msg and "connect" not in msg and "install the node pack" in msg


def test_viewing_a_node_whose_type_is_a_typo_names_the_type_meant(win, tmp_path):
    """'vae.decod' typed by hand: View told the user to install the node pack that provides it."""
    path = tmp_path / "typo.yaml"
    path.write_text("kinograph: 1\nnodes:\n  decode: {type: vae.decod}\n")
    assert win.open_path(str(path)) is win
    win.view_node("decode")
    assert win.statusBar().currentMessage() == ("decode is of type vae.decod, which this Kinograph does not "
                                                "have (did you mean 'vae.decode'?): correct the type in the "
                                                "file to see its output")


def test_a_failed_save_says_the_changes_are_still_open_and_how_to_keep_them(win, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    win.controller.add_node("video.reverse", (0, 0))
    said = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a, **k: said.append(text))
    assert not win._save_to(blocker / "shot.yaml")
    (text,) = said
    assert str(blocker / "shot.yaml") in text and "Save As" in text and win.doc.modified


def test_recovered_work_from_a_rendered_file_keeps_reading_beside_it(registry, tmp_path, qtbot):
    """A workflow opened from a render (or a ComfyUI file) has no file of its own; its relative
    paths are taken from the render's folder. Recovered after a crash, it lost that folder, so
    'footage/clip.mp4' was looked for in whatever the current folder was."""
    from app.editor.autosave import Autosaver, find_recoveries, recover
    from app.editor.controller import Controller
    from app.editor.document import Document
    render = tmp_path / "renders" / "shot.png"
    crashed = Document.from_text("kinograph: 1\nnodes:\n  clip: {type: io.load_video, params: {path: footage/a.mp4}}\n",
                                 None, registry)
    crashed.origin = render
    Controller(crashed).add_node("video.reverse", (300, 0))
    folder = tmp_path / "recovery"
    saver = Autosaver(crashed, 60_000, folder)
    saver.save_now()
    saver.timer.stop()
    saver._lock.unlock()
    (rec,) = find_recoveries(folder)
    doc = recover(rec, registry)
    assert doc.path is None and doc.origin == render
    assert doc.workflow.base_dir == render.parent


def test_a_sticky_note_being_typed_is_saved_by_ctrl_s_and_counts_at_close(win, qtbot, tmp_path, monkeypatch):
    """Typing in a sticky note: Ctrl+S was eaten by the note (every key was text), and closing
    the window dropped the text typed since the note was opened, without asking."""
    path = tmp_path / "notes.yaml"
    nid = win.controller.add_note((0, 0), "Note")
    assert win._save_to(path)
    note = win.scene.notes[nid]
    note.start_editing()
    qtbot.keyClicks(win.view.viewport(), "shot 12: keep the flare")
    assert note.text_item.toPlainText() == "shot 12: keep the flare"
    qtbot.keyClick(win.view.viewport(), Qt.Key_S, Qt.ControlModifier)
    assert "keep the flare" in path.read_text(), "Ctrl+S in a note did not save what it shows"

    note.start_editing(select_all=False)
    qtbot.keyClicks(win.view.viewport(), " (ask Ana)")
    asked = answer(monkeypatch, QMessageBox.Save)
    assert win.close()
    assert [t for t, _ in asked] == ["Unsaved changes"]
    assert "keep the flare (ask Ana)" in path.read_text()


def test_a_workflow_with_windows_line_endings_is_not_taken_for_changed_on_disk(win, tmp_path, monkeypatch):
    path = tmp_path / "crlf.yaml"
    path.write_bytes(b"kinograph: 1\r\nnodes:\r\n  pat: {type: generate.test_pattern}\r\n")
    assert win.open_path(str(path)) is win
    win.controller.add_node("video.reverse", (300, 0))
    asked = answer(monkeypatch)
    assert win.save() and asked == [] and "video.reverse" in path.read_text()


def test_saving_an_imported_comfyui_workflow_starts_beside_the_file_it_came_from(win, tmp_path, monkeypatch):
    """Ctrl+S on a workflow opened from a ComfyUI file or a render: the dialog opened in whatever
    folder the editor was started from, as 'workflow.yaml'."""
    import shutil
    from PySide6.QtWidgets import QFileDialog
    src = tmp_path / "shots" / "wan_t2v.json"
    src.parent.mkdir()
    shutil.copy(Path(test_editor.__file__).parent / "data" / "comfyui" / "wan_t2v.json", src)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    assert win.open_path(str(src)) is win and win.doc.origin == src.resolve()
    starts = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda parent, title, start, *a, **k: starts.append(start)
                        or ("", ""))
    assert not win.save()
    assert starts == [str(src.with_suffix(".yaml").resolve())]


# -- a user node file that does not load --------------------------------------------------------------------
BROKEN_NODE = '''from graph_engine import node, Param
from graph_engine.types import VIDEO

@node("my.invert", category="Mine")
def invert(ctx, video: VIDEO, amount: float = Param(1.0, min=0, max=1)) -> VIDEO:
    """Invert the colours."""
    return video.map(lambda f: (255 - f).astype("uint8")
'''


def test_a_node_whose_user_file_failed_to_load_names_that_file(make_window, tmp_path, qtbot):
    """The user's own node file with a typo: the workflow said 'unknown node type my.invert',
    the panel said 'install the node pack', and the import error went to a terminal nobody sees."""
    from graph_engine.registry import Registry, default_registry
    from app.editor.document import Document
    folder = tmp_path / "nodes"
    folder.mkdir()
    (folder / "mine.py").write_text(BROKEN_NODE)
    reg = Registry()
    reg.specs.update(default_registry().specs)
    reg.load_folder(folder)
    doc = Document.from_text("kinograph: 1\nnodes:\n  pat: {type: generate.test_pattern}\n"
                             "  inv: {type: my.invert, inputs: {video: pat.video}}\n", None, reg)
    (p,) = [p for p in doc.problems if p.node == "inv"]
    assert "my.invert" in p.message and str(folder / "mine.py") in p.message and "line 7" in p.message
    w = make_window(doc)
    w.scene.select_nodes(["inv"])
    qtbot.wait(50)
    shown = "\n".join(l.text() for l in w.properties.widget().findChildren(QLabel))
    assert "mine.py" in shown and "line 7" in shown


def test_save_as_without_the_extension_asks_before_replacing_the_yaml_of_that_name(win, tmp_path, monkeypatch):
    """'shot' typed into the save dialog: the dialog asked about a file named 'shot' (there is none),
    then '.yaml' was added and an existing shot.yaml was replaced without a word."""
    from PySide6.QtWidgets import QFileDialog
    theirs = tmp_path / "shot.yaml"
    theirs.write_text("kinograph: 1\nnodes: {}\n# their workflow\n")
    win.controller.add_node("video.reverse", (0, 0))
    names = [str(tmp_path / "shot"), str(tmp_path / "mine")]
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (names.pop(0), ""))
    asked = answer(monkeypatch, QMessageBox.No)
    assert win.save_as()
    assert theirs.read_text().endswith("# their workflow\n")
    assert [t for t, _ in asked] == ["Replace the file?"] and str(theirs) in asked[0][1]
    assert win.doc.path == tmp_path / "mine.yaml" and "video.reverse" in (tmp_path / "mine.yaml").read_text()


@pytest.mark.parametrize("how", ["run", "view"])
def test_edits_are_autosaved_before_a_run_or_view_starts(make_window, tmp_path, monkeypatch, how):
    """A run loads models and drives the GPU in the editor's process; killed there (the OOM killer, a
    driver crash), the prompt typed just before Ctrl+Enter was lost with the 30 s since the last autosave."""
    from app.editor.autosave import recovery_dir
    w = make_window(autosave_ms=3_600_000)
    n = w.controller.add_node("test.echo", (0, 0))
    w.controller.set_param(n, "text", "a lighthouse at dusk")
    # a job that never starts: only what was written before it matters here
    monkeypatch.setattr(w.runs, "submit", lambda *a, **k: types.SimpleNamespace())
    w.run() if how == "run" else w.view_node(n)
    (rec,) = recovery_dir().glob("*.yaml")
    assert "a lighthouse at dusk" in rec.read_text()


def test_a_save_onto_a_full_disk_or_an_unplugged_drive_says_which(win, tmp_path, monkeypatch):
    """QSaveFile said 'Unknown error' for a full disk and 'No such file or directory' for a folder gone
    with its drive: the artist could not tell what to do."""
    import shutil
    from PySide6.QtCore import QSaveFile
    said = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a, **k: said.append(text))
    win.controller.add_node("video.reverse", (0, 0))
    drive = tmp_path / "drive"
    drive.mkdir()
    assert win._save_to(drive / "shot.yaml")
    win.controller.add_node("video.resize", (0, 200))
    shutil.rmtree(drive)
    assert not win.save()
    assert f"the folder {drive} is not there any more" in said[-1] and win.doc.modified
    drive.mkdir()
    monkeypatch.setattr(QSaveFile, "write", lambda self, data: -1)       # what ENOSPC does to the write
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1 << 30, 1 << 30, 0))
    assert not win.save()
    assert f"the disk holding {drive} is full" in said[-1] and "Save As" in said[-1]
    assert win.doc.modified


def test_the_recovery_question_says_when_the_file_changed_after_the_crashed_session(registry, tmp_path, qtbot,
                                                                                     monkeypatch):
    """The file saved again by another window after the autosave: the question offered the older edits as
    if nothing had happened since."""
    from app.editor.autosave import Autosaver
    from app.editor.controller import Controller
    from app.editor.document import Document
    from app.editor.window import offer_recovery
    path = tmp_path / "shot.yaml"
    first = Document(registry=registry)
    Controller(first).add_node("generate.test_pattern", (0, 0))
    first.save(path)
    crashed = Document.load(path, registry)
    Controller(crashed).add_node("video.reverse", (300, 0))
    saver = Autosaver(crashed, 60_000)
    saver.save_now()
    saver.timer.stop()
    saver._lock.unlock()                # what the OS does to a crashed editor's lock
    asked = answer(monkeypatch, QMessageBox.No, QMessageBox.No)
    Controller(first).add_node("video.resize", (300, 200))
    first.save(path)                    # another window saves the file after the crash
    assert offer_recovery(None, registry) == []
    (_, text), = asked
    assert "shot.yaml has changed on disk since that session opened or saved it" in text


def test_quit_cancelled_in_one_window_keeps_the_edits_of_every_window(make_window, monkeypatch):
    """Quit closed the windows one by one: Discard answered for the first closed it with its edits, and
    Cancel in the second then stopped the quit with the first one's work already gone."""
    from PySide6.QtWidgets import QApplication
    first, second = make_window(), make_window()
    for w in (first, second):
        w.controller.add_node("video.reverse", (0, 0))
    asked = answer(monkeypatch, QMessageBox.Discard, QMessageBox.Cancel)
    first._quit()
    assert len(asked) == 2 and first.isVisible() and second.isVisible()
    assert first.doc.modified and [i.type for i in first.doc.graph.nodes.values()] == ["video.reverse"]
    answer(monkeypatch, QMessageBox.Discard, QMessageBox.Discard)
    first._quit()
    QApplication.processEvents()
    assert not first.isVisible() and not second.isVisible()


def test_a_prompt_being_typed_is_in_the_autosave(make_window, qtbot, monkeypatch):
    """A prompt is applied when its field is left: one typed for minutes (while a render ran) was not in
    the autosave, and a crash lost it whole. It is autosaved as typed, and the undo history is left as it was."""
    from app.editor.autosave import find_recoveries, recover, recovery_dir
    w = make_window(autosave_ms=3_600_000)
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    n = w.controller.add_node("test.echo", (0, 0))
    w.doc.undo.setClean()
    steps = w.doc.undo.count()
    type_prompt(w, qtbot, n, "a lighthouse at dusk")
    w.autosaver.tick()
    assert w.doc.undo.count() == steps and w.properties.editors["text"].pending()
    (file,) = recovery_dir().glob("*.yaml")
    w.autosaver._lock.unlock()          # what the OS does to a crashed editor's lock
    (rec,) = find_recoveries()
    assert recover(rec, w.doc.registry).graph.nodes[n].params["text"] == "a lighthouse at dusk"
    answer(monkeypatch, QMessageBox.Discard)
    assert w.close()


def test_typing_taken_back_leaves_no_autosave_to_offer(make_window, qtbot, monkeypatch):
    from app.editor.autosave import recovery_dir
    w = make_window(autosave_ms=3_600_000)
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    n = w.controller.add_node("test.echo", (0, 0))
    w.doc.undo.setClean()
    type_prompt(w, qtbot, n, "a lighthouse")
    w.autosaver.tick()
    assert list(recovery_dir().glob("*.yaml"))
    box = w.properties.editors["text"].edit
    for _ in "a lighthouse":
        qtbot.keyClick(box, Qt.Key_Backspace)
    w.autosaver.tick()
    assert not list(recovery_dir().glob("*.yaml")), "a crash now would offer typing that was taken back"


def test_a_sticky_note_being_typed_is_in_the_autosave(win, qtbot, monkeypatch):
    from app.editor.autosave import find_recoveries, recover
    nid = win.controller.add_note((0, 0), "Note")
    win.doc.undo.setClean()
    win.scene.notes[nid].start_editing()
    qtbot.keyClicks(win.view.viewport(), "shot 12: keep the flare")
    win.autosaver.tick()
    win.autosaver._lock.unlock()        # what the OS does to a crashed editor's lock
    (rec,) = find_recoveries()
    assert recover(rec, win.doc.registry).graph.ui["_notes"][nid]["text"] == "shot 12: keep the flare"
    assert win.doc.graph.ui["_notes"][nid]["text"] == "Note", "the autosave applied the typing to the workflow"
    answer(monkeypatch, QMessageBox.Discard)
    assert win.close()


# -- a save keeps the workflow it replaces ---------------------------------------------------------------
def test_a_save_keeps_the_workflow_it_replaced_and_restoring_it_is_one_undo_step(win, tmp_path, monkeypatch):
    """Saving a bad edit over a good workflow lost the good one for good once the editor closed: undo
    dies with the window, and the autosave is dropped by the save."""
    from graph_engine.versions import previous_versions
    path = tmp_path / "shot.yaml"
    a = win.controller.add_node("test.echo", (0, 0))
    b = win.controller.add_node("test.echo", (300, 0))
    win.controller.set_param(a, "text", "a fox at dawn")
    assert win._save_to(path)
    assert previous_versions(path) == [], "a new file replaced nothing"
    win.controller.delete([b])
    win.controller.set_param(a, "text", "a bad edit")
    assert win._save_to(path)
    assert win._save_to(path)            # unchanged: nothing new to keep
    kept = previous_versions(path)
    assert len(kept) == 1 and "a fox at dawn" in kept[0].file.read_text() and b in kept[0].file.read_text()

    win._fill_versions()
    acts = [x for x in win.versions_menu.actions() if x.isEnabled()]
    assert len(acts) == 1 and f"{kept[0].saved:%H:%M:%S}" in acts[0].text()
    acts[0].trigger()
    assert win.doc.graph.nodes[a].params["text"] == "a fox at dawn" and b in win.doc.graph.nodes
    assert win.doc.modified and "a bad edit" in path.read_text(), "restoring wrote to the file by itself"
    win.undo_action.trigger()
    assert win.doc.graph.nodes[a].params["text"] == "a bad edit" and b not in win.doc.graph.nodes
    win.redo_action.trigger()
    assert win._save_to(path)
    assert "a fox at dawn" in path.read_text()
    kept = previous_versions(path)
    assert len(kept) == 2 and "a bad edit" in kept[0].file.read_text(), "the newest version comes first"


def test_a_save_whose_old_version_cannot_be_kept_still_saves_and_says_so(make_window, tmp_path, monkeypatch):
    blocker = tmp_path / "config-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(blocker))
    w = make_window()
    path = tmp_path / "shot.yaml"
    n = w.controller.add_node("test.echo", (0, 0))
    assert w._save_to(path)
    w.controller.set_param(n, "text", "second")
    assert w._save_to(path)
    assert "second" in path.read_text()
    log = w.log.toPlainText()
    assert "could be kept" in log and str(blocker) in log and "Restore Saved Version" in log, log


def test_untitled_and_unsaved_workflows_say_why_no_version_is_offered(win, tmp_path):
    win._fill_versions()
    assert [x.text() for x in win.versions_menu.actions()] == [
        "(save the workflow first: each later save keeps what it replaces)"]
    win.controller.add_node("test.echo", (0, 0))
    assert win._save_to(tmp_path / "new.yaml")
    win._fill_versions()
    assert [x.isEnabled() for x in win.versions_menu.actions()] == [False]
    assert "none yet" in win.versions_menu.actions()[0].text()


def test_a_running_badge_tells_the_estimate_until_a_pace_is_measured_and_hours_as_hours():
    """An estimated Wan run's sampler showed '0/30' and nothing more until its first steps were measured, which on
    a laptop's CPU is minutes; and a long time read '162.0 min'. The badge shows what is left of the estimate
    ('est.') until the measured time replaces it, and hours as hours."""
    from app.editor.runner import NodeStatus
    assert NodeStatus("running", 0.0, estimate=3 * 3600).badge() == "0% · est. 3.0 h"
    assert NodeStatus("running", 0.5, steps=(15, 30), estimate=4 * 3600).badge() == "15/30 · est. 2.0 h"
    assert NodeStatus("running", 0.5, steps=(15, 30), eta=5400, estimate=3 * 3600).badge() == "15/30 · 90.0 min"
    assert NodeStatus("running", estimate=40).badge() == "running · est. 40.0 s"
    assert NodeStatus("done", seconds=9720).badge() == "2.7 h"


def test_save_as_of_a_template_from_a_read_only_folder_starts_where_work_is_saved(win, tmp_path, monkeypatch):
    """ComfyUI's templates are installed read-only (a Python package): Save on one opened from there
    offered that folder, and saving failed with 'Permission denied'."""
    import shutil
    from PySide6.QtWidgets import QFileDialog
    package = tmp_path / "site-packages" / "templates"
    package.mkdir(parents=True)
    src = package / "wan_t2v.json"
    shutil.copy(Path(test_editor.__file__).parent / "data" / "comfyui" / "wan_t2v.json", src)
    mine = tmp_path / "my workflows" / "a.yaml"
    mine.parent.mkdir()
    mine.write_text("kinograph: 1\nnodes: {}\n")
    win.settings.add_recent_file(str(mine))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    assert win.open_path(str(src)) is win
    # Read-only as a package is for a user; the tests may run as root, whom no mode bit stops.
    writable = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: writable(p, mode) and Path(p).resolve() != package.resolve())
    starts = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda parent, title, start, *a, **k: starts.append(start)
                        or ("", ""))
    assert not win.save()
    assert starts == [str(mine.parent.resolve() / "wan_t2v.yaml")]
