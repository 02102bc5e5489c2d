"""app.jobs: failures come back as data, and Ctrl-C cancels first and stops second."""
import os
import signal

import pytest

from app.jobs import NodesFailed, cancel_on_interrupt, guard, run_job
from graph_engine.api import Session
from graph_engine.context import CancelToken
from graph_engine.errors import NodeError


def test_guard_turns_every_failure_into_a_row():
    assert guard(lambda: {"value": 1}) | {"seconds": 0} == {"ok": True, "cancelled": False, "results": {},
                                                             "failed": {}, "error": None, "value": 1, "seconds": 0}
    row = guard(lambda: (_ for _ in ()).throw(NodesFailed({"n": "broke"})))
    assert not row["ok"] and row["failed"] == {"n": "broke"} and row["error"] == "node n: broke"
    row = guard(lambda: (_ for _ in ()).throw(NodeError("the file x.mp4 is missing")))
    assert not row["ok"] and row["error"] == "the file x.mp4 is missing" and "traceback" not in row
    row = guard(lambda: 1 / 0)
    assert not row["ok"] and row["error"].startswith("ZeroDivisionError") and "Traceback" in row["traceback"]


def test_run_job_reports_a_bad_workflow_without_raising():
    row = run_job(Session(use_disk=False), {"yaml": "kinograph: 1\nnodes:\n  a: {type: no.such}\n", "path": None})
    assert not row["ok"] and "no.such" in row["error"] and row["seconds"] >= 0


@pytest.mark.parametrize("sig, says", [(signal.SIGINT, "Ctrl-C again"), (signal.SIGTERM, "SIGTERM")])
def test_the_first_signal_cancels_the_second_stops(sig, says):
    """SIGTERM, what a job scheduler sends, cancels as Ctrl-C does."""
    notes = []
    before = signal.getsignal(sig)
    with cancel_on_interrupt(CancelToken(), notes.append) as cancel:
        os.kill(os.getpid(), sig)
        assert cancel.cancelled and says in notes[0]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
    assert signal.getsignal(sig) is before
