"""Review of rev41c's per-workflow default outputs (graph_engine/default_outputs.py), and the editor leaving a new
save node's path to the workflow file's name."""
import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from graph_engine.api import load_workflow  # noqa: E402
from graph_engine.default_outputs import own_default  # noqa: E402
from graph_engine.graph import Graph  # noqa: E402
from graph_engine.registry import default_registry  # noqa: E402
from graph_engine.workflow import Workflow  # noqa: E402

import test_editor  # noqa: E402
from app.editor.document import Document  # noqa: E402

make_window, no_modal_dialogs, registry = test_editor.make_window, test_editor.no_modal_dialogs, test_editor.registry
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")]

PATTERN = "  pattern:\n    type: generate.test_pattern\n    params: {frames: 2, width: 16, height: 16, fps: 8.0}\n"


def test_a_picture_and_a_metrics_report_left_at_their_defaults_write_different_files(tmp_path):
    """metrics.report writes its chart beside its JSON with the JSON's name: named after shot.yaml, its out/shot.png
    was io.save_image's out/shot.png, and the workflow (out/image.png and out/metrics.png before) was refused. The
    report keeps its own name after the file's: out/shot_metrics.json, .csv, .png."""
    from app.cli import main
    wf = tmp_path / "shot.yaml"
    wf.write_text("kinograph: 1\nnodes:\n" + PATTERN +
                  "  frame:\n    type: video.frame\n    inputs: {video: pattern.video}\n"
                  "  still:\n    type: io.save_image\n    inputs: {image: frame.image}\n"
                  "  report:\n    type: metrics.report\n    inputs: {video: pattern.video}\n"
                  "    params: {metrics: sharpness}\n")
    assert main(["run", str(wf)]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "shot.png", "shot_metrics.csv", "shot_metrics.json", "shot_metrics.png"]


def test_a_workflow_checked_before_its_run_names_the_file_the_run_writes(tmp_path):
    """load_workflow (and wf.check(), the editor's checks) looked at out/video.mp4 for a shot.yaml whose save node
    leaves its path out: a file of the user's own there refused a workflow that never writes it, and a folder at
    out/shot.mp4, where the run writes, was said only when the run began."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "video.mp4").write_text("the artist's own file")
    wf = tmp_path / "shot.yaml"
    wf.write_text("kinograph: 1\nnodes:\n" + PATTERN + "  save:\n    type: io.save_video\n"
                  "    inputs: {video: pattern.video}\n")
    load_workflow(wf)
    (tmp_path / "out" / "shot.mp4").mkdir()
    with pytest.raises(Exception, match=r"out/shot\.mp4 is a folder"):
        load_workflow(wf)


def test_file_names_that_are_long_or_hold_braces_name_their_own_outputs(tmp_path):
    """Names were cut at 60 characters, so two workflows alike up to there (an imported template's long name and
    a take of it) wrote one file; and shot_{sample.seed}.yaml's default path was read as a placeholder."""
    p = default_registry().get("io.save_video").params["path"]
    long = "video_wan2_2_14B_fun_camera_control_with_a_long_description_of_the_shot"

    def named(stem):
        return own_default(Workflow(Graph(), tmp_path / f"{stem}.yaml"), p)
    a, b = named(long + "_take1"), named(long + "_take2")
    assert a != b and all(len(Path(x).stem) <= 60 and x.startswith("out/video_wan2_2") for x in (a, b))
    assert named("shot_{sample.seed}") == "out/shot__sample.seed_.mp4"
    assert named("CON") == "out/_CON.mp4" and named("..") == "out/video.mp4"


def _save_node_params(path):
    return yaml.safe_load(Path(path).read_text())["nodes"]["save_video"].get("params", {})


def test_a_save_node_added_in_the_editor_follows_the_workflow_files_name(make_window, registry, tmp_path, qtbot):
    """The editor wrote every parameter of a node it added: two workflows built there both said
    `path: out/video.mp4` and wrote one file. The path is left out until the artist sets it; the properties show
    greyed what it writes ('out/shot.mp4 (from the file name)', an untitled workflow's out/video.mp4), Save As
    names it anew, Undo and a cleared field leave it out again."""
    w = make_window(Document(registry=registry))
    c = w.controller
    s = c.add_node("io.save_video", (0, 0))
    assert s == "save_video" and "path" not in w.doc.graph.nodes[s].params

    def field():
        w.scene.select_nodes([s])
        qtbot.waitUntil(lambda: "path" in w.properties.editors)
        return w.properties.editors["path"].edit
    assert (field().text(), field().placeholderText()) == ("", "out/video.mp4")
    w.doc.save(tmp_path / "shot.yaml")
    assert (field().text(), field().placeholderText()) == ("", "out/shot.mp4 (from the file name)")
    assert "path" not in _save_node_params(tmp_path / "shot.yaml")
    w.doc.save(tmp_path / "take.yaml")
    assert field().placeholderText() == "out/take.mp4 (from the file name)"
    assert [load_workflow(tmp_path / f"{n}.yaml", check=False).graph.nodes[s].params.get("path") for n in
            ("shot", "take")] == [None, None]

    c.set_param(s, "path", "out/take.mp4")          # the path shown, committed as it is: still left out
    assert "path" not in w.doc.graph.nodes[s].params
    edit = field()
    qtbot.keyClicks(edit, "out/video.mp4")          # the artist's own, even the node's default, is written
    edit.editingFinished.emit()
    assert w.doc.graph.nodes[s].params["path"] == "out/video.mp4"
    w.doc.undo.undo()
    assert "path" not in w.doc.graph.nodes[s].params and field().text() == ""
    c.set_param(s, "path", "out/mine.mp4")
    c.set_param(s, "path", "  ")
    assert "path" not in w.doc.graph.nodes[s].params
    w.doc.undo.undo()
    assert w.doc.graph.nodes[s].params["path"] == "out/mine.mp4"
