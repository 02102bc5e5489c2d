"""Review of studio41's night: a render started under nohup keeps running when its terminal closes (in a run, the
Ray wait, and the editor), and an I/O error on a log file is not mistaken for a terminal that hung up."""
import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from app.jobs import sigterm_interrupts
from app.progress import Printable
from tests.test_studio_batch import SHOT, frames_in, write
from tests.test_studio_night import hang_up_as_it_runs

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="needs SIGHUP")


@pytest.fixture
def nohup():
    """The process started as `nohup kinograph ...` is: SIGHUP ignored, so that closing the terminal leaves it."""
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    yield
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN, "the command took SIGHUP that nohup ignores"
    signal.signal(signal.SIGHUP, old)


def test_a_run_under_nohup_goes_on_when_its_terminal_closes(tmp_path, monkeypatch, nohup):
    """`nohup kinograph run shot.yaml &`, then logout: nohup made the hang-up ignored so the render goes on; the run's
    own SIGHUP handler replaced that, and the hang-up cancelled the render nohup was there to keep (exit 130)."""
    hang_up_as_it_runs(monkeypatch)
    wf = write(tmp_path, "shot.yaml", SHOT % "out/shot.mp4")
    assert main(["run", str(wf)]) == 0
    assert frames_in(tmp_path / "out" / "shot.mp4") == 2


def test_a_ray_wait_under_nohup_goes_on_when_its_terminal_closes(nohup):
    """What every command but the editor runs inside (and `run --ray`, `batch --ray` wait in): a hang-up under nohup
    raised KeyboardInterrupt, stopping the Ray workers."""
    try:
        with sigterm_interrupts():
            os.kill(os.getpid(), signal.SIGHUP)
    except KeyboardInterrupt:
        pytest.fail("the hang-up nohup ignores stopped the command")


EDITOR = r"""
import os, signal
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QTimer
from app.editor.main import _app, autosave_on_termination
app = _app()
autosave_on_termination(app)
QTimer.singleShot(0, lambda: print("ready", flush=True))
app.exec()
"""


def test_the_editor_under_nohup_stays_open_when_its_terminal_closes(tmp_path):
    """`nohup kinograph gui &`: the editor's autosave-then-end handler took the SIGHUP nohup ignores, and the editor
    closed with its terminal. Here SIGHUP then SIGTERM are sent: the SIGTERM must be what ends it."""
    script = tmp_path / "child.py"
    script.write_text(EDITOR)
    env = dict(os.environ, PYTHONPATH=str(REPO), KINOGRAPH_CONFIG_DIR=str(tmp_path / "config"))
    child = subprocess.Popen([sys.executable, str(script)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert child.stdout.readline().strip() == "ready", child.stderr.read()
    child.send_signal(signal.SIGHUP)
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM


class _FailingDisk:
    """A log file (`kinograph run ... > /nfs/night.log`) whose disk answers writes with EIO: a real I/O error."""

    def __init__(self, fd):
        self.fd = fd

    def write(self, text):
        raise OSError(errno.EIO, "Input/output error")

    def fileno(self):
        return self.fd


def test_an_io_error_on_a_log_file_is_not_taken_for_a_hung_up_terminal(tmp_path):
    """EIO is how a hung-up terminal answers, and also how a failing disk or a soft NFS mount does. Taken for the
    terminal, a log or --json file on a failing disk was silently made /dev/null: the farm's record of the night was
    lost with exit 0. Only a terminal's EIO is dropped."""
    with open(tmp_path / "night.log", "w") as log:
        with pytest.raises(OSError) as e:
            Printable(_FailingDisk(log.fileno())).write("wrote out/shot.mp4\n")
        assert e.value.errno == errno.EIO
        fd, file = os.fstat(log.fileno()), (tmp_path / "night.log").stat()
        assert (fd.st_dev, fd.st_ino) == (file.st_dev, file.st_ino), "the log file was made /dev/null"


BOTH_CLOSED = r"""
import os, sys
from app.cli import main
os.close(1)
os.close(2)
sys.stdout = sys.stderr = None
main(["--version"])
taken = os.open(os.devnull, os.O_RDONLY)      # a file the host opens after the command
with open(sys.argv[1], "w") as f:
    f.write(str(taken))
"""


def test_a_command_started_with_both_outputs_closed_leaves_neither_number_free(tmp_path):
    """stdout and stderr both closed (`>&- 2>&-`): the /dev/null stream for stdout was opened after descriptor 1 was
    mended and took number 2, so 2 was never given /dev/null of its own and was closed again with that stream: a file
    opened afterwards in the process became its stderr, and a child's error lines went into that file."""
    script = tmp_path / "child.py"
    script.write_text(BOTH_CLOSED)
    subprocess.run([sys.executable, str(script), str(tmp_path / "fd")], cwd=tmp_path, check=True, timeout=60,
                   env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert int((tmp_path / "fd").read_text()) > 2


KILLED_WRITER = r"""
import os, signal, sys
import numpy as np
from graph_engine import Clip
from nodes.io import video_write
video_write._encode = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)     # kill -9 as ffmpeg encodes
video_write.write_video(Clip.from_array(np.zeros((2, 16, 16, 3), np.uint8)), sys.argv[1],
                        workflow_yaml="kinograph: 1\nnodes: {}\n")
"""


def test_a_writer_killed_outright_leaves_no_copy_of_its_workflow(tmp_path, monkeypatch):
    """A writer killed with kill -9 (the OOM killer, a preempted farm node) left its metadata file, the whole workflow,
    in /tmp for ever (112 of them on one machine). It is a temporary of the output's own, beside it, which the next
    write into that folder removes as it removes the killed writer's half-written video."""
    import numpy as np

    import graph_engine.atomic as atomic
    from graph_engine import Clip
    from nodes.io.video_write import write_video
    temp, out = tmp_path / "tmp", tmp_path / "out"
    temp.mkdir()
    script = tmp_path / "child.py"
    script.write_text(KILLED_WRITER)
    child = subprocess.run([sys.executable, str(script), str(out / "shot.mp4")], cwd=tmp_path, timeout=60,
                           env=dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(temp)))
    assert child.returncode == -signal.SIGKILL
    monkeypatch.setattr(atomic, "_STARTED", atomic.time.time())      # the next render starts after the kill
    write_video(Clip.from_array(np.zeros((2, 16, 16, 3), np.uint8)), str(out / "shot.mp4"),
                workflow_yaml="kinograph: 1\nnodes: {}\n")
    assert os.listdir(temp) == []
    assert os.listdir(out) == ["shot.mp4"]


def test_a_run_on_ray_whose_worker_lacks_a_file_exits_2_as_a_local_run(tmp_path, monkeypatch, capsys):
    """`kinograph run --ray` where the render node lacks the plate (or model) the job reads: nothing ran, as a local
    run refused for a missing file, which exits 2; on Ray it exited 1, read by a farm as a node that failed (retry)
    rather than a job that cannot run there. Exit 2, the message naming the node, the file and the Ray node."""
    import json
    import socket

    import app.distributed as dist
    from tests.test_batch import HerePool, fake_ray
    wf = write(tmp_path, "plate.yaml", """\
        kinograph: 1
        nodes:
          plate: {type: io.load_video, params: {path: plate.mkv}}
          save: {type: io.save_video, inputs: {video: plate.video}, params: {path: out/plate.mkv}}
        """)
    assert main(["run", str(wf)]) == 2
    missing = f"node plate: path: 'plate.mkv' is not there ({tmp_path / 'plate.mkv'})"
    assert missing in capsys.readouterr().err
    fake_ray(monkeypatch)
    monkeypatch.setattr(dist, "WorkerPool", HerePool)
    write(tmp_path, "plate.mkv", "")
    monkeypatch.setattr(HerePool, "lose", tmp_path / "plate.mkv")
    assert main(["run", str(wf), "--ray", "local", "--json"]) == 2
    out = capsys.readouterr()
    last = json.loads(out.out.splitlines()[-1])
    here = f"{socket.gethostname()} (Ray worker pid {os.getpid()})"
    assert last["event"] == "run_finished" and not last["ok"]
    assert last["error"].startswith(f"on {here}: {wf}: {missing}") and "Every Ray node needs" in last["error"]
    assert last["problems"] and missing in out.err
    assert not (tmp_path / "out").exists()


@pytest.fixture
def hang_up_is_caught():
    """SIGHUP's handler outside the command raising, where the default would end the test run."""
    def outside(signum, frame):
        raise AssertionError("a SIGHUP reached the handler outside the command")

    old = signal.signal(signal.SIGHUP, outside)
    yield
    signal.signal(signal.SIGHUP, old)


def test_a_hang_up_sent_twice_still_stops_a_run_cleanly(hang_up_is_caught):
    """An ssh session that drops under a foreground `kinograph batch | tee` can deliver SIGHUP to it twice: the shell
    passes its hang-up on to its jobs, then the kernel hangs up the foreground group as the shell exits. The second
    was taken for 'a second SIGHUP stops at once' and interrupted the clean stop the first had begun (summary, the
    partial outputs' removal). A hang-up is one event, however many times it is delivered."""
    from app.jobs import cancel_on_interrupt
    from graph_engine.context import CancelToken
    notes = []
    try:
        with cancel_on_interrupt(CancelToken(), notes.append) as cancel:
            os.kill(os.getpid(), signal.SIGHUP)
            os.kill(os.getpid(), signal.SIGHUP)
    except KeyboardInterrupt:
        pytest.fail("the shell's and the kernel's SIGHUP together stopped the run at once")
    assert cancel.cancelled and len(notes) == 1


def test_a_hang_up_sent_twice_lets_the_ray_workers_stop(hang_up_is_caught):
    """On Ray (and before a run sets its own handler) a hang-up raises KeyboardInterrupt, which stops the workers and
    prints the summary; the kernel's second SIGHUP raised another out of that cleanup."""
    cleaned = False
    with pytest.raises(KeyboardInterrupt):
        with sigterm_interrupts():
            try:
                os.kill(os.getpid(), signal.SIGHUP)
            except KeyboardInterrupt:
                os.kill(os.getpid(), signal.SIGHUP)      # the kernel's, as the workers are stopped
                cleaned = True
                raise
    assert cleaned
