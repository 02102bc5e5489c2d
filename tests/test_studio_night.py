"""A render wrangler's night, probed: a render started from a terminal that then went away, a hang-up, shards
whose worker is gone by the time the driver fetches them. Tiny test-pattern graphs, no model weights; Ray
stood in for by a pool that calls app.distributed.Worker in this process."""
import errno
import os
import pty

import pytest

from app.cli import main
from tests.test_studio_batch import SHOT, frames_in, write


@pytest.fixture
def hung_up_terminal():
    """A terminal whose other end has gone (the ssh session closed under `kinograph run ... &`): every write to it
    fails with EIO, as the kernel answers a hung-up terminal. The test puts it on sys.stderr itself (pytest's
    capture sets its own between a fixture and the test)."""
    master, slave = pty.openpty()
    stream = open(slave, "w", encoding="utf-8")      # opened on a live terminal: line-buffered, as a process's is
    os.close(master)
    with pytest.raises(OSError) as e:
        os.write(slave, b"x\n")
    assert e.value.errno == errno.EIO
    yield stream
    try:
        stream.close()
    except OSError:
        pass


def test_a_run_whose_terminal_went_away_still_writes_its_output(tmp_path, hung_up_terminal, monkeypatch):
    """`kinograph run shot.yaml > out.log &` from an ssh session, then logout: the shell does not stop a background
    job, but its stderr is the terminal that hung up, and the first progress line raised OSError (EIO) out of the
    run: the render died with nothing written. What cannot be shown is dropped, as for a reader that left a pipe."""
    wf = write(tmp_path, "shot.yaml", SHOT % "out/shot.mp4")
    monkeypatch.setattr("sys.stderr", hung_up_terminal)
    assert main(["run", str(wf)]) == 0
    assert frames_in(tmp_path / "out" / "shot.mp4") == 2


def test_a_batch_whose_terminal_went_away_runs_every_job(tmp_path, hung_up_terminal, monkeypatch):
    wf = write(tmp_path, "wf.yaml", SHOT % "out/clip.mp4")
    sweep = write(tmp_path, "s.yaml", "grid: {pattern.frames: [2, 3]}\n")
    monkeypatch.setattr("sys.stderr", hung_up_terminal)
    assert main(["batch", str(wf), "--sweep", str(sweep)]) == 0
    assert [frames_in(tmp_path / "out" / f"clip_{n}.mp4") for n in (1, 2)] == [2, 3]
