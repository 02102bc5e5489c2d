"""Killing the editor's saving machinery at random moments: the workflow file is never truncated,
the autosave is always readable, and the edits lost are at most one autosave interval's worth.

The child process runs the editor's real Document, Controller and Autosaver on a 200-node
workflow, edits it every few milliseconds (a counter in one parameter), saves it now and then,
and autosaves every INTERVAL seconds; the 30-second product interval is scaled down so the test
is quick. After SIGKILL the parent reopens whatever is on disk."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graph_engine.graph import Graph
from graph_engine.registry import default_registry
from graph_engine.workflow import parse_workflow, save_workflow

REPO = Path(__file__).resolve().parents[1]
INTERVAL = 0.25           # seconds between autosaves in the child
GRACE = 2.0               # scheduling slack on a loaded two-core machine
TRIALS = 5

CHILD = r"""
import os, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
app = QGuiApplication([])
from app.editor.autosave import Autosaver
from app.editor.controller import Controller
from app.editor.document import Document
path, folder, interval_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
doc = Document.load(path)
ctl = Controller(doc)
auto = Autosaver(doc, interval_ms, folder)
auto.saved.connect(lambda f: print("autosaved", doc.graph.nodes["counter"].params["frames"], flush=True))
n = 0
def edit():
    global n
    n += 1
    ctl.set_param("counter", "frames", n)
    print("edit", n, time.time(), flush=True)
    if n % 40 == 0:
        doc.save()
        print("saved", n, flush=True)
timer = QTimer()
timer.timeout.connect(edit)
timer.start(3)
print("ready", flush=True)
app.exec()
"""


def _workflow(path: Path) -> None:
    g = Graph("crash test")
    g.add_node("generate.test_pattern", "counter", {"frames": 0}, ui={"pos": [0, 0]})
    prev = "counter"
    for i in range(199):
        nid = f"rev{i}"
        g.add_node("video.reverse", nid, ui={"pos": [220 * (i + 1), 40 * (i % 7)]})
        g.connect(prev, "video", nid, "video")
        prev = nid
    save_workflow(g, path, default_registry())


def _counter(text: str) -> int:
    wf, problems = parse_workflow(text, None, default_registry())
    assert not problems, problems
    assert len(wf.graph.nodes) == 200, "a workflow file lost nodes"
    return wf.graph.nodes["counter"].params["frames"]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killing_the_editor_never_truncates_and_loses_at_most_one_interval(tmp_path):
    from app.editor.autosave import find_recoveries
    rng = random.Random(4)
    env = dict(os.environ, PYTHONPATH=str(REPO), KINOGRAPH_CONFIG_DIR=str(tmp_path / "config"))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    for trial in range(TRIALS):
        work = tmp_path / f"trial{trial}"
        work.mkdir()
        wf, rec_dir = work / "wf.yaml", work / "recovery"
        _workflow(wf)
        child = subprocess.Popen([sys.executable, str(script), str(wf), str(rec_dir), str(int(INTERVAL * 1000))],
                                 cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(rng.uniform(0.4, 1.6))
        child.send_signal(signal.SIGKILL)
        t_kill = time.time()
        # The rest of stdout through the reader that read "ready": communicate() reads the pipe itself
        # and loses what that reader buffered ahead (under load, 8 KB of lines, cut mid-line). The kill
        # can cut the last line short, so only newline-ended lines count.
        with child.stdout, child.stderr:
            out = child.stdout.read()
            child.stderr.read()
        child.wait(timeout=30)
        edits, autosaved, saved = {}, [0], [0]
        for line in out.split("\n")[:-1]:
            parts = line.split()
            if parts[0] == "edit":
                edits[int(parts[1])] = float(parts[2])
            elif parts[0] == "autosaved":
                autosaved.append(int(parts[1]))
            elif parts[0] == "saved":
                saved.append(int(parts[1]))
        assert edits, "the child made no edits before it was killed"

        for f in work.rglob("*.yaml"):      # every workflow-looking file on disk is complete
            _counter(f.read_text())
        on_disk = _counter(wf.read_text())
        assert on_disk >= saved[-1], "a completed save was lost"
        recs = find_recoveries(rec_dir)
        assert len(recs) <= 1
        recovered = _counter(recs[0].text()) if recs else 0
        kept = max(on_disk, recovered)
        assert kept >= max(autosaved[-1], saved[-1]), "a completed save or autosave was lost"
        lost = [t for n, t in edits.items() if n > kept]
        window = t_kill - min(lost) if lost else 0.0
        assert window <= INTERVAL + GRACE, f"trial {trial}: {window:.2f} s of edits lost (interval {INTERVAL} s)"


SIGNALLED = r"""
import os
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QTimer
from app.editor.main import _app, autosave_on_termination
from app.editor.window import MainWindow
app = _app()
w = MainWindow(autosave_ms=3_600_000)
w.show()
w.controller.add_node("video.reverse", (0, 0))
autosave_on_termination(app)
QTimer.singleShot(0, lambda: print("ready", flush=True))
app.exec()
"""


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="needs SIGHUP")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_the_editor_ended_by_a_signal_autosaves_first(tmp_path, sig):
    """Logging out (SIGTERM) or closing the terminal it was started from (SIGHUP) ended the editor at once,
    losing the edits since the last autosave (up to 30 s); now they are autosaved, and offered next time."""
    from app.editor.autosave import find_recoveries
    script = tmp_path / "child.py"
    script.write_text(SIGNALLED)
    env = dict(os.environ, PYTHONPATH=str(REPO), KINOGRAPH_CONFIG_DIR=str(tmp_path / "config"))
    child = subprocess.Popen([sys.executable, str(script)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready", child.stderr.read()
    child.send_signal(getattr(signal, sig))
    child.communicate(timeout=60)
    assert child.returncode == -getattr(signal, sig)
    (rec,) = find_recoveries(tmp_path / "config" / "recovery")
    assert "video.reverse" in rec.text() and rec.path is None


def test_damaged_recovery_files_are_offered_or_named_and_never_stop_the_editor(tmp_path):
    """The editor reads every recovery file's first line at each start, before its window shows: a header holding
    a list, a time or line number that was no number, or a time past what a date can show raised out of the start,
    at every start; a named pipe among them waited for ever; a recovery file of gigabytes was read whole."""
    from app.editor.autosave import HEADER, find_recoveries, recover
    from graph_engine.errors import WorkflowError
    from graph_engine.workflow import MAX_YAML_BYTES
    folder = tmp_path / "recovery"
    folder.mkdir()
    headers = ['[1]', '{"saved": "tomorrow"}', '{"unread": [["x", "y"], [3, "kept"]]}', '{"saved": 1e400}',
               '{"saved": 1e300, "path": 5, "origin": ["a"], "on_disk": {"a": 1}}', '{"saved": 1700000000.5']
    for i, header in enumerate(headers):
        (folder / f"r{i}.yaml").write_text(f"{HEADER}{header}\nkinograph: 1\nnodes: {{}}\n")
    os.mkfifo(folder / "pipe.yaml")
    with open(folder / "huge.yaml", "w") as f:
        f.truncate(MAX_YAML_BYTES + 1)
    found = {r.file.name: r for r in find_recoveries(folder)}
    assert sorted(found) == ["huge.yaml"] + [f"r{i}.yaml" for i in range(len(headers))]
    assert found["r2.yaml"].unread == [(3, "kept")]
    for name, rec in found.items():
        assert rec.path is None and rec.on_disk is None and rec.origin is None
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.saved))      # as offer_recovery shows it
        if name != "huge.yaml":
            assert recover(rec).graph.nodes == {}
    with pytest.raises(WorkflowError, match="a workflow file is at most"):
        recover(found["huge.yaml"])


QUITTING = r"""
import gc, os
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app.editor.window import MainWindow
for _ in range(3):
    w = MainWindow()
    c = w.controller
    a, b = c.add_node("generate.test_pattern", (0, 0)), c.add_node("color.grade", (300, 0))
    c.connect(a, "video", b, "video")
    c.set_param(b, "exposure", 1.5)
    w.scene.select_nodes([a, b])
    assert w.copy()
    w.doc.undo.setClean()
    w.close()
    w.deleteLater()
    QApplication.sendPostedEvents()
    gc.collect()
print("closed", flush=True)
"""


def test_the_editor_quits_cleanly_after_edits_and_a_copy(tmp_path):
    """A closed window's edits, and nodes left on the clipboard, crashed the process at a later gc pass or at its
    exit (a segfault after the last window closed, under pytest at every editor test file's end): the undo
    commands were deleted twice, and the clipboard's copy was deleted by Qt after Python had gone."""
    script = tmp_path / "child.py"
    script.write_text(QUITTING)
    env = dict(os.environ, PYTHONPATH=str(REPO), KINOGRAPH_CONFIG_DIR=str(tmp_path / "config"))
    done = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "closed"), done.stderr[-2000:]
