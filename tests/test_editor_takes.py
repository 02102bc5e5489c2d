"""The editor and earlier takes, re-runs from renders, the log panel's lines and where Save As starts
(probe of stop 17). Driven through the real window offscreen; any Qt warning fails a test."""
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPoint  # noqa: E402
from PySide6.QtWidgets import QFileDialog  # noqa: E402

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor  # noqa: E402

make_window, registry = test_editor.make_window, test_editor.registry

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]

WORKFLOW = """kinograph: 1
nodes:
  pat: {type: generate.test_pattern, params: {frames: 4, width: 32, height: 32}}
  save: {type: io.save_video, inputs: {video: pat.video}, params: {path: out/shot.mp4}}
"""


@pytest.fixture(autouse=True)
def private(monkeypatch, tmp_path):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))
    os.environ.pop("KINOGRAPH_KEEP_TAKES", None)
    yield
    os.environ.pop("KINOGRAPH_KEEP_TAKES", None)


def _open(make_window, path):
    from app.editor.document import Document
    return make_window(Document.load(path, test_editor.registry_with()))


def test_runs_keep_earlier_takes_and_the_history_finds_each_one(make_window, tmp_path):
    wf = tmp_path / "shot.yaml"
    wf.write_text(WORKFLOW)
    w = _open(make_window, wf)
    assert w.takes_action.isChecked()
    jobs = []
    for frames in (4, 6):
        w.controller.set_param("pat", "frames", frames)
        jobs.append(w.runs.submit(w.doc))
        assert w.runs.wait_idle(60)
    out = tmp_path / "out"
    assert sorted(os.listdir(out / "takes")) == ["shot.001.mp4"]
    # The first run's output is the take now, the second's the file at the stable name.
    assert jobs[0].outputs == [str(out / "takes" / "shot.001.mp4")]
    assert jobs[1].outputs == [str(out / "shot.mp4")]
    assert "the earlier take of shot.mp4 is kept as takes/shot.001.mp4" in w.log.toPlainText()
    # Run again unchanged, the writer is served from the cache: its old report moves no history entry.
    again = w.runs.submit(w.doc)
    assert w.runs.wait_idle(60) and "save" not in again.result.executed
    assert jobs[1].outputs == [str(out / "shot.mp4")]
    # Off, as `--replace`: the run replaces the render, keeping nothing more.
    w.takes_action.trigger()
    assert not w.takes_action.isChecked() and w.settings.get("keep_takes") is False
    w.controller.set_param("pat", "frames", 5)
    w.runs.submit(w.doc)
    assert w.runs.wait_idle(60)
    assert sorted(os.listdir(out / "takes")) == ["shot.001.mp4"]


def test_a_render_opened_in_the_editor_writes_where_it_wrote_before(make_window, tmp_path):
    from app.cli import main
    wf = tmp_path / "project" / "shot.yaml"
    wf.parent.mkdir()
    wf.write_text(WORKFLOW)
    assert main(["run", str(wf)]) == 0
    render = wf.parent / "out" / "shot.mp4"
    w = _open(make_window, render)
    w.controller.set_param("pat", "frames", 6)        # an edit; its outputs still resolve from project/
    w.controller.set_param("save", "path", "out/shot_v2.mp4")
    assert w.doc.workflow.base_dir == wf.parent
    # Save As offers the workflow's own folder, not out/ (where its out/ would be out/out/).
    starts = []
    import unittest.mock as mock
    with mock.patch.object(QFileDialog, "getSaveFileName",
                           lambda parent, title, start, *a, **k: starts.append(start) or ("", "")):
        assert not w.save()
    assert starts == [str(wf.parent / "shot-run.yaml")]


def test_save_as_of_an_untitled_workflow_starts_in_a_known_folder(make_window, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    launched = tmp_path / "launched here"
    launched.mkdir()
    monkeypatch.chdir(launched)
    starts = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda parent, title, start, *a, **k: starts.append(start) or ("", ""))
    w = make_window()
    assert not w.save_as()
    assert starts == [str(tmp_path / "home" / "workflow.yaml")]
    mine = tmp_path / "my workflows" / "a.yaml"
    mine.parent.mkdir()
    mine.write_text(WORKFLOW)
    w.settings.add_recent_file(str(mine))
    assert not w.save_as()
    assert starts[-1] == str(mine.parent / "workflow.yaml")


def test_the_log_shows_whole_lines_at_any_height(make_window, qtbot):
    w = make_window()
    log = w.log
    for i in range(40):
        log.log("info", f"line {i}")
    cut = []
    for height in range(90, 140, 7):
        log.resize(log.width(), height)
        qtbot.wait(1)
        bar = log.verticalScrollBar()
        bar.setValue(bar.maximum())
        top = log.cursorForPosition(QPoint(4, 1)).block()
        # Scrolled to the newest line, the first line shown starts at the top of the panel (not above it).
        cut.append(bar.value() - log.document().documentLayout().blockBoundingRect(top).top())
    assert cut == [0] * len(cut)


def test_keep_earlier_takes_is_one_setting_for_every_window(make_window):
    first, second = make_window(), make_window()
    first.takes_action.trigger()
    # Runs of both windows replace now (the process's setting): the other window's tick said 'keep'.
    assert os.environ.get("KINOGRAPH_KEEP_TAKES") == "0"
    assert not first.takes_action.isChecked() and not second.takes_action.isChecked()
    second.takes_action.trigger()
    assert "KINOGRAPH_KEEP_TAKES" not in os.environ and first.takes_action.isChecked()


# An output path written as a template (as a batch's workflow names its renders) run from the editor: `kinograph
# run` and Session.run fill it from the run's values; the editor wrote a file literally named
# 'shot_{pat.frames}.mp4', each run replacing the one before.
TEMPLATED = """kinograph: 1
nodes:
  pat: {type: generate.test_pattern, params: {frames: 4, width: 32, height: 32}}
  save: {type: io.save_video, inputs: {video: pat.video}, params: {path: "out/shot_{pat.frames}.mp4"}}
"""


def test_the_editor_fills_an_output_paths_placeholders_as_kinograph_run_does(make_window, tmp_path):
    from app.editor.document import Document
    wf = tmp_path / "shot.yaml"
    wf.write_text(TEMPLATED)
    w = make_window(Document.load(wf, test_editor.registry_with()))
    for frames in (4, 6):
        w.controller.set_param("pat", "frames", frames)
        job = w.runs.submit(w.doc)
        assert w.runs.wait_idle(60)
        assert job.outputs == [str(tmp_path / "out" / f"shot_{frames}.mp4")], (job.error, job.outputs)
    assert sorted(os.listdir(tmp_path / "out")) == ["shot_4.mp4", "shot_6.mp4"]
    # the document keeps its template: the next run, another value, names its own file
    assert w.doc.graph.nodes["save"].params["path"] == "out/shot_{pat.frames}.mp4"


def test_a_placeholder_naming_no_node_stops_the_editors_run_saying_so(make_window, tmp_path):
    from app.editor.document import Document
    wf = tmp_path / "shot.yaml"
    wf.write_text(TEMPLATED.replace("{pat.frames}", "{pattern.frames}"))
    w = make_window(Document.load(wf, test_editor.registry_with()))
    job = w.runs.submit(w.doc)
    assert w.runs.wait_idle(60)
    assert "placeholder {pattern.frames}: no node 'pattern'" in job.error
    assert not (tmp_path / "out").exists()
