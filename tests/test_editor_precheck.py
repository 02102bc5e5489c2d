"""The editor's run (Ctrl+Enter) checks every file the graph reads before any node runs, as `kinograph run` does
(app.precheck): a graph whose second loader's file was missing rendered its first part, then failed at that loader.
Driven through the real window offscreen; any Qt warning fails a test."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.editor.compat import check_qt_binding  # noqa: E402

check_qt_binding()

import test_editor_session  # noqa: E402

from app.editor.document import Document  # noqa: E402
from test_session_precheck import GRAPH  # noqa: E402  a first part that works, then a loader lacking its file
from tests.model_stub import stub

make_window, no_modal_dialogs, registry = (test_editor_session.make_window, test_editor_session.no_modal_dialogs,
                                           test_editor_session.registry)
private_config, pytestmark = test_editor_session.private_config, test_editor_session.pytestmark

def test_a_run_with_a_missing_model_file_starts_no_node_and_names_the_file(make_window, registry, tmp_path,
                                                                           monkeypatch, qtbot):
    """Ctrl+Enter: no job, no node started, the file named in the status bar and the log with where to put it,
    the loader marked. A run of only the part that needs no missing file still runs."""
    models = tmp_path / "models"
    (models / "vae").mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    wf = tmp_path / "wf.yaml"
    wf.write_text(GRAPH)
    w = make_window(Document.load(wf, registry))
    ran = []
    w.runs.statusChanged.connect(lambda nid, st: ran.append(nid))
    assert w.run() is None and w.queue_new_seeds() is None
    w.runs.wait_idle()
    qtbot.wait(20)
    assert w.runs.jobs == [] and ran == [] and not (tmp_path / "out").exists()     # the pattern never ran
    said = w.statusBar().currentMessage()
    assert said.startswith("Nothing ran: 1 file missing or damaged (see the Log): vae2: ")
    assert "my_wan_vae.safetensors" in said and f"into {models / 'vae'}" in said       # where to put it
    log = w.log.toPlainText()
    assert "Nothing ran: the workflow needs 1 file that is not there or damaged:" in log and f"go to {w.controller.named('vae2')}" in log
    assert list(w.scene.nodes["vae2"].missing) == ["name"]          # the loader marked, as an import marks it
    # A run of the first part alone needs no model file: it runs.
    job = w.run(targets=["save"])
    assert job is not None and w.runs.wait_idle(60)
    assert job.state == "done", job.state
    assert (tmp_path / "out" / "first.mp4").exists()
    # The file put where the message said: the whole run starts.
    stub(models / "vae" / "my_wan_vae.safetensors")
    assert w.doc.missing_files() == []


def test_viewing_a_node_whose_loader_misses_its_file_starts_no_node(make_window, registry, tmp_path, monkeypatch,
                                                                   qtbot):
    """Ctrl+Shift+click (or V) on the decoder: the view ran the pattern and the encoder, then stopped at the loader
    with a red 'could not be computed'. Now nothing starts and the file is named, as for Ctrl+Enter; a node that
    needs no missing file is still shown."""
    models = tmp_path / "models"
    (models / "vae").mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    (tmp_path / "wf.yaml").write_text(GRAPH)
    w = make_window(Document.load(tmp_path / "wf.yaml", registry))
    ran = []
    w.runs.statusChanged.connect(lambda nid, st: ran.append(nid))
    assert w.view_node("dec", "A") is None and w.view_node("dec", "B") is None
    w.runs.wait_idle()
    qtbot.wait(20)
    assert w.runs.jobs == [] and ran == []
    said = w.statusBar().currentMessage()
    assert said.startswith("Nothing ran: 1 file missing or damaged (see the Log): vae2: ") and "my_wan_vae.safetensors" in said
    assert f"go to {w.controller.named('vae2')}" in w.log.toPlainText()
    job = w.view_node("p", "A")
    assert job is not None and w.runs.wait_idle(60) and job.state == "done", job.state


def test_a_run_with_a_cut_off_model_file_says_damaged_not_missing(make_window, registry, tmp_path, monkeypatch,
                                                                 qtbot):
    """The same check refuses a model file that is there but cut short: the headline said the workflow needed a
    file 'that is not there' while the Log line under it said the file was cut off."""
    import struct
    models = tmp_path / "models"
    (models / "vae").mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    header = b'{"w": {"dtype": "F32", "shape": [64], "data_offsets": [0, 256]}}'
    (models / "vae" / "my_wan_vae.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 100)
    (tmp_path / "wf.yaml").write_text(GRAPH)
    w = make_window(Document.load(tmp_path / "wf.yaml", registry))
    assert w.run() is None
    w.runs.wait_idle()
    qtbot.wait(20)
    assert w.runs.jobs == []
    assert w.statusBar().currentMessage().startswith("Nothing ran: 1 file missing or damaged (see the Log): vae2: ")
    log = w.log.toPlainText()
    assert "1 file that is not there or damaged:" in log and "my_wan_vae.safetensors" in log
