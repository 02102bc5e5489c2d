"""A render wrangler's night, probed: a render started from a terminal that then went away, a hang-up, shards
whose worker is gone by the time the driver fetches them. Tiny test-pattern graphs, no model weights; Ray
stood in for by a pool that calls app.distributed.Worker in this process."""
import errno
import json
import os
import pty
import signal

import av
import pytest

import app.batch as batch
from app.cli import main
from app.distributed import Worker, WorkerPool
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


@pytest.fixture
def hangup_is_fatal():
    """SIGHUP's own handler raising, where the process's default would end the test run as it ended the render."""
    def fatal(signum, frame):
        raise AssertionError("SIGHUP reached the process's own handler: the render would have died on the spot")

    old = signal.signal(signal.SIGHUP, fatal)
    yield fatal
    assert signal.getsignal(signal.SIGHUP) is fatal, "the command left its SIGHUP handler behind"
    signal.signal(signal.SIGHUP, old)


def test_a_hang_up_stops_a_batch_cleanly_with_its_summary(tmp_path, monkeypatch, capsys, hangup_is_fatal):
    """`kinograph batch ... 2>&1 | tee night.log` in an ssh session that dropped: SIGHUP ended the process where it
    stood, so batch.log never said which cases were not run nor how to run them, and --json had no batch_finished.
    It stops as SIGTERM does: the job cancelled, the summary and the retry line, exit 130."""
    real = batch.run_job

    def hung_up(*a, **k):
        os.kill(os.getpid(), signal.SIGHUP)
        return real(*a, **k)

    monkeypatch.setattr(batch, "run_job", hung_up)
    wf = write(tmp_path, "wf.yaml", SHOT % "out/clip.mp4")
    sweep = write(tmp_path, "s.yaml", "grid: {pattern.frames: [2, 3]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--json"]) == 130
    captured = capsys.readouterr()
    last = json.loads(captured.out.splitlines()[-1])
    assert last["event"] == "batch_finished" and last["cancelled"] and last["not_run"] == [1, 2]
    assert "hung up (SIGHUP): cancelling" in captured.err
    log = (tmp_path / "logs" / "wf.s" / "batch.log").read_text()
    assert "not run (the batch was stopped before they finished): cases 1, 2" in log
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def hang_up_as_it_runs(monkeypatch):
    """The run's Session.run gets a SIGHUP as it starts, as from a terminal closing under it."""
    from graph_engine.api import Session
    real = Session.run

    def hung_up(self, *a, **k):
        os.kill(os.getpid(), signal.SIGHUP)
        return real(self, *a, **k)

    monkeypatch.setattr(Session, "run", hung_up)


def test_a_hang_up_stops_a_run_cleanly(tmp_path, monkeypatch, capsys, hangup_is_fatal):
    hang_up_as_it_runs(monkeypatch)
    wf = write(tmp_path, "shot.yaml", SHOT % "out/shot.mp4")
    assert main(["run", str(wf), "--json"]) == 130
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["event"] == "run_finished" and last["cancelled"] and not last["ok"]
    assert not (tmp_path / "out" / "shot.mp4").exists()


class _Ref:
    """What a fake actor's method returns: its value, or the error ray.get raises for it."""

    def __init__(self, value=None, error=None):
        self.value, self.error = value, error


class _Exceptions:
    class RayError(Exception):
        pass

    class RayActorError(RayError):
        pass


class _Ray:
    """Just enough of Ray for WorkerPool's fetching of shards."""
    exceptions = _Exceptions

    @staticmethod
    def get(ref):
        if ref.error:
            raise ref.error
        return ref.value


class _Actor:
    """A Ray actor handle on a Worker in this process, with a pid of its own; once dead, every call on it fails as
    Ray fails a call on an actor whose process died."""

    def __init__(self, worker, pid):
        self.worker, self.pid, self.dead = worker, pid, False

    def __getattr__(self, name):
        method = getattr(self.worker, name)

        def remote(*args):
            if self.dead:
                return _Ref(error=_Exceptions.RayActorError(f"the actor (pid {self.pid}) died"))
            out = method(*args)
            return _Ref({**out, "pid": self.pid} if name in ("where", "render", "run", "probe") else out)
        return type("Method", (), {"remote": staticmethod(remote)})()


class LosingPool(WorkerPool):
    """A WorkerPool (its own local_copy, the code that fetches shards) on two fake actors over one in-process Worker,
    on a cluster without a shared filesystem: each shard comes back through its worker. The worker that renders
    shard `lose` dies after it (the OOM killer, a preempted node), before the driver fetches it."""
    lose = 1

    def __init__(self, ray, size, **kw):
        worker = Worker({}, "cpu")
        self.ray, self.size, self.note = _Ray, 2, kw.get("note", lambda s: None)
        self.actors = [_Actor(worker, 1001), _Actor(worker, 1002)]
        self.sink = None

    def close(self):
        pass

    def fit(self, calls):
        pass

    def call(self, method, *args):
        return getattr(self.actors[0], method).remote(*args).value

    def imap(self, calls):
        for n, (key, method, args) in enumerate(calls):
            live = [a for a in self.actors if not a.dead]
            actor = live[n % len(live)]
            out = _Ray.get(getattr(actor, method).remote(*args))
            if method == "render" and key == self.lose and not getattr(self, "lost", False):
                self.lost = actor.dead = True
            yield key, out


def test_a_shard_whose_worker_died_before_it_was_fetched_is_rendered_again(tmp_path, monkeypatch, capsys):
    """Without a shared filesystem the driver fetches each shard from the worker that wrote it. One whose worker
    died after rendering it (while the other shards still rendered) failed the whole render at the end, every
    shard's hours thrown away; and asking each worker where it ran, the driver met the dead one and stopped with
    Ray's RayActorError, a traceback and no run_finished. The lost shard is rendered again on a live worker."""
    import numpy as np
    from contextlib import contextmanager
    import app.distributed as dist
    monkeypatch.setattr(dist, "ray_session", contextmanager(lambda *a, **k: (yield None)))
    monkeypatch.setattr(dist, "require_ray", lambda: None)
    monkeypatch.setattr(dist, "WorkerPool", LosingPool)
    monkeypatch.setattr(dist, "_visible", lambda path, size: False)
    wf = write(tmp_path, "wf.yaml", """\
        kinograph: 1
        nodes:
          pattern: {type: generate.test_pattern, params: {frames: 40, width: 16, height: 16}}
          save: {type: io.save_video, inputs: {video: pattern.video}, params: {path: sharded.mkv, codec: ffv1}}
        """)
    assert main(["run", str(wf), "--set", "save.path=ref.mkv"]) == 0
    assert main(["run", str(wf), "--ray", "local", "--shards", "2", "--json"]) == 0
    out = capsys.readouterr()
    last = json.loads(out.out.splitlines()[-1])
    assert last["event"] == "run_finished" and last["ok"], out.err
    assert "rendering it again" in out.err

    def frames(path):
        with av.open(str(path)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert np.array_equal(frames(tmp_path / "sharded.mkv"), frames(tmp_path / "ref.mkv"))


def test_a_run_whose_stdout_cannot_spell_its_path_still_exits_0(tmp_path, monkeypatch):
    """A Windows render node's stdout sent to a file or pipe encodes in the ANSI code page (cp1252), strictly: a
    render into a shot folder named in Japanese (or any letter the code page lacks) wrote its file, then died
    printing 'wrote PATH' with UnicodeEncodeError, exit 1, and the scheduler marked a finished render failed.
    What the stream cannot encode is printed as escapes, as stderr does it."""
    import io
    wf = write(tmp_path / "ショット", "shot.yaml", SHOT % "out/shot.mp4")
    out = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    monkeypatch.setattr("sys.stdout", out)
    assert main(["run", str(wf)]) == 0
    assert frames_in(tmp_path / "ショット" / "out" / "shot.mp4") == 2
    out.flush()
    assert "wrote " in out.buffer.getvalue().decode("cp1252") and "\\u30b7" in out.buffer.getvalue().decode("cp1252")


@pytest.mark.parametrize("script", ["import sys\nsys.exit(0)\n", "import argparse\nargparse.ArgumentParser()"
                                    ".parse_args(['--frames'])\n"], ids=["sys.exit", "argparse"])
def test_a_file_in_the_nodes_folder_that_exits_is_a_load_error(tmp_path, script):
    """A script dropped into the node folder (a helper that ends with sys.exit, one that reads its command line with
    argparse) ended every kinograph command as it loaded the nodes, before anything ran: sys.exit(0) made a night of
    renders exit 0 with nothing written and nothing said, argparse's exit 2 read as a wrong workflow. It is a node
    file that failed to load, named in the warning, as one raising an error is; the others load."""
    from graph_engine.registry import Registry
    (tmp_path / "a_script.py").write_text(script)
    (tmp_path / "b_nodes.py").write_text("from graph_engine import node\nfrom graph_engine.types import FLOAT\n\n"
                                         "@node('user.one')\ndef one(ctx) -> FLOAT:\n    \"One.\"\n    return 1.0\n")
    reg = Registry()
    reg.load_folder(tmp_path)
    assert "user.one" in reg
    assert [e for e in reg.load_errors if str(tmp_path / "a_script.py") in e and "exit" in e]


def test_a_run_whose_output_disk_is_full_is_refused_before_it_runs(tmp_path, monkeypatch, capsys):
    """A farm's task is one `kinograph run`: on an output disk already full, each sampled for its hour and then
    failed at its writer, as a batch's jobs did before they were checked. The run is refused before any node runs,
    exit 1 (the disk, not the workflow: a scheduler's retry runs it once space is freed), its finished event saying
    why. (The disk is made full by its reported free space.)"""
    from tests.test_studio_batch import filled
    real = os.statvfs
    out = tmp_path / "out"

    def statvfs(path):
        full = os.path.realpath(path).startswith(os.path.realpath(tmp_path))
        return filled(real(path)) if full else real(path)

    monkeypatch.setattr(os, "statvfs", statvfs)
    wf = write(tmp_path, "shot.yaml", SHOT % "out/shot.mp4")
    assert main(["run", str(wf), "--json"]) == 1
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert not [e for e in events if e["event"] == "node_started"]
    assert events[-1]["event"] == "run_finished" and not events[-1]["ok"]
    assert f"the disk holding {tmp_path} is full" in events[-1]["error"]
    assert not out.exists()


def test_the_times_in_json_events_are_rfc_3339(tmp_path, capsys):
    """batch --json's started_at and finished_at gave the offset as +0100: Python 3.10's datetime.fromisoformat (a
    farm wrapper's, Kinograph's own oldest Python) and strict ISO 8601 / RFC 3339 parsers refuse it. +01:00, as
    datetime.isoformat writes it, is read by all."""
    import re
    wf = write(tmp_path, "shot.yaml", SHOT % "out/shot.mp4")
    assert main(["batch", str(wf), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    times = [e[k] for e in events for k in ("started_at", "finished_at") if k in e]
    assert len(times) == 2
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", t) for t in times), times


def test_a_record_of_written_files_cut_short_keeps_the_next_entry(tmp_path, monkeypatch):
    """A power cut (or a full disk) while Kinograph appended to its record of the files it wrote leaves the last line
    cut short, or padded with zeros by the file system's recovery. The next entry was appended onto that line, so it
    could not be read: the next render's report (a metrics table, a camera file, which carry no workflow) was taken
    for someone else's file and its re-render refused. Each entry starts a line of its own."""
    from graph_engine import atomic
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "data"))
    report = tmp_path / "out" / "metrics.json"
    report.parent.mkdir()
    atomic.write_text(tmp_path / "out" / "first.json", "{}")
    ledger = tmp_path / "data" / atomic.LEDGER_NAME
    ledger.write_bytes(ledger.read_bytes()[:-9] + b"\0" * 6)          # the last entry cut short, zeros after it
    atomic.write_text(report, "{}")
    assert atomic.written_by_kinograph(report)
    assert atomic.refusal(report) is None


def test_a_gpu_the_scheduler_hid_is_named_before_the_run(tmp_path, monkeypatch, capsys):
    """`--device cuda` on a render node whose GPU this job cannot see (the scheduler set CUDA_VISIBLE_DEVICES to
    none, or the driver broke after an update) ran the nodes before the first model load, then failed it saying to
    install a CUDA build of torch, which was installed. A run with GPU nodes is refused before any node runs (exit
    1: the machine, not the workflow), naming CUDA_VISIBLE_DEVICES and nvidia-smi."""
    import torch
    from graph_engine import devices
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    devices.resolve_device.cache_clear()
    monkeypatch.setattr(devices.resolve_device, "cache_clear", devices.resolve_device.cache_clear)
    import shutil
    wf = tmp_path / "default.yaml"         # kinograph-mini: its sampler is a GPU node, its model bundled
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", "examples", "default.yaml"), wf)
    try:
        assert main(["run", str(wf), "--device", "cuda", "--json"]) == 1
    finally:
        devices.resolve_device.cache_clear()
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert not [e for e in events if e["event"] == "node_started"]
    error = events[-1]["error"]
    assert "CUDA_VISIBLE_DEVICES is set to ''" in error and "nvidia-smi" in error
    assert "install a CUDA build" not in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("closed", ["stdout", "stderr"])
@pytest.mark.parametrize("command", ["run", "batch"])
def test_a_command_started_with_its_output_closed_still_renders(tmp_path, monkeypatch, closed, command):
    """A wrapper that starts the command with stdout or stderr closed (`kinograph run shot.yaml >&-`, a daemon's job
    runner): Python has no stream for it (None), and the first line printed raised AttributeError. With stderr
    closed nothing was rendered, with stdout closed the render was written and the command still exited 1, and a
    batch ran no job. What would be printed there goes nowhere."""
    wf = write(tmp_path, "shot.yaml", SHOT % "out/shot.mp4")
    monkeypatch.setattr(f"sys.{closed}", None)
    assert main([command, str(wf)]) == 0
    assert frames_in(tmp_path / "out" / "shot.mp4") == 2


def test_a_report_another_render_node_wrote_is_refused_saying_why(tmp_path, monkeypatch):
    """Kinograph keeps its record of the files it wrote in its data folder, one per machine and account. A job run
    again on another render node (or as another user) found the report, table or camera file the first node wrote on
    the shared output folder, which carry no workflow, and refused it: 'already exists and Kinograph did not write
    it', which it had. The refusal says where its record is kept and the two ways on: one KINOGRAPH_DATA_DIR shared by
    the render nodes, or `overwrite: true`."""
    from graph_engine import atomic
    report = tmp_path / "out" / "metrics.json"
    report.parent.mkdir()
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "node_a"))
    atomic.write_text(report, "{}")
    assert atomic.refusal(report) is None
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "node_b"))
    why = atomic.refusal(report)
    assert "another machine or account" in why and str(tmp_path / "node_b" / atomic.LEDGER_NAME) in why
    assert "KINOGRAPH_DATA_DIR" in why and "overwrite: true" in why
