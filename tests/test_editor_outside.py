"""The editor's side of the output policy: a workflow opened from a file that writes outside
its folder runs only after the user agrees to the listed paths (once per document and paths)."""
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from app.editor import outside  # noqa: E402
from app.editor.document import Document  # noqa: E402
from app.editor.settings import EditorSettings  # noqa: E402
from app.editor.window import MainWindow  # noqa: E402
from graph_engine.registry import default_registry  # noqa: E402

pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


def test_the_editor_lists_outside_paths_and_runs_only_when_the_user_agrees(qtbot, tmp_path, monkeypatch):
    target = tmp_path / "elsewhere" / "v.mkv"
    wf = tmp_path / "project" / "shot.yaml"
    wf.parent.mkdir()
    wf.write_text("kinograph: 1\nnodes:\n"
                  "  pattern: {type: generate.test_pattern, params: {frames: 2, width: 16, height: 16}}\n"
                  f"  save: {{type: io.save_video, inputs: {{video: pattern.video}}, params: {{path: {target}, "
                  f"codec: ffv1}}}}\n")
    w = MainWindow(Document.load(wf, default_registry()), settings=EditorSettings(tmp_path / "editor.json"))
    asked, answer = [], [False]
    monkeypatch.setattr(outside, "ask", lambda parent, listed: asked.append(listed) or answer[0])
    try:
        assert w.run() is None and not target.exists()
        assert [(nid, path) for nid, _, path, _ in asked[0]] == [("save", str(target))]
        answer[0] = True
        job = w.run()
        assert w.runs.wait_idle(60) and job.state == "done", job.error
        assert target.is_file() and len(asked) == 2
        job = w.run()                     # agreed once for this document and these paths
        assert w.runs.wait_idle(60) and job.state == "done" and len(asked) == 2
    finally:
        w.runs.cancel(clear_queue=True)
        w.doc.undo.setClean()
        w.close()


def test_a_workflow_from_a_rendered_picture_lists_every_output_before_its_first_run(qtbot, tmp_path, monkeypatch):
    import numpy as np
    from nodes.io.images import write_png
    text = ("kinograph: 1\nnodes:\n  pattern: {type: generate.test_pattern, params: {frames: 2, width: 16, height: 16}}\n"
            "  save: {type: io.save_video, inputs: {video: pattern.video}, params: {path: out/v.mkv, codec: ffv1}}\n")
    write_png(np.zeros((4, 4, 3), np.uint8), str(tmp_path / "still.png"), text)
    w = MainWindow(Document.load(tmp_path / "still.png", default_registry()),
                   settings=EditorSettings(tmp_path / "editor.json"))
    asked = []
    monkeypatch.setattr(outside, "ask", lambda parent, listed: asked.append(listed) or False)
    try:
        assert w.run() is None and not (tmp_path / "out").exists()
        assert [(nid, path) for nid, _, path, _ in asked[0]] == [("save", str(tmp_path / "out" / "v.mkv"))]
    finally:
        w.doc.undo.setClean()
        w.close()


def test_the_editor_refuses_an_alias_bomb_without_expanding_it(tmp_path):
    import resource
    from pathlib import Path
    from graph_engine.errors import WorkflowError
    bomb = Path(__file__).parent / "data" / "hostile" / "alias_bomb.yaml"
    registry = default_registry()          # node modules imported before measuring
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(WorkflowError, match="anchors and aliases"):
        Document.load(bomb, registry)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000      # KB: nothing expanded
