"""A batch's log files: one per case and the batch's batch.log, read the morning after a night's renders."""
import io
import json
import os
import re
import sys

import pytest

from app.cli import main
from nodes.io.video_read import load_video
from tests.test_batch import PIPELINE, write


def test_each_case_leaves_a_log_and_the_batch_a_summary_with_each_failures_retry(tmp_path, capsys, monkeypatch):
    """The night's only record was the batch's stderr, every job's lines interleaved, if the wrangler had thought
    of `2> night.log`. Each case now appends to its own file (parameters, node times, its error, where its output
    went, the command that runs it again) and batch.log gets the summary with a `--only N` per failed case. A
    batch stopped part way says in the stopped case's log that it was, and in batch.log what did not run."""
    wf = write(tmp_path, "shot.yaml", PIPELINE % "out/clip_{case}.mkv")
    sweep = write(tmp_path, "seeds.yaml", "grid: {trim.start: [0, 100, 2]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep)]) == 1
    out = capsys.readouterr()
    logs = tmp_path / "logs" / "shot.seeds"
    assert f"a log per case, and the summary in batch.log: {logs}" in out.err
    assert "jobs ok in " in out.out and f"each case's log in {logs}" in out.out
    assert sorted(p.name for p in logs.iterdir()) == ["batch.log", "case_1.log", "case_2.log", "case_3.log"]

    ok = (logs / "case_1.log").read_text()
    assert ok.startswith("==== case 1, run started ")
    assert f"workflow: {wf}\nparameters:\n  trim.start = 0\noutputs:\n  {tmp_path / 'out/clip_1.mkv'}\n" in ok
    for node, kind in (("pattern", "generate.test_pattern"), ("trim", "video.trim"), ("save", "io.save_video")):
        assert f" {node} started ({kind})\n" in ok
    assert re.search(r"\n\d\d:\d\d:\d\d save done in \d+\.\d\ds\n", ok)
    assert re.search(rf"\n\d\d:\d\d:\d\d ok in \d+\.\d\ds; wrote:\n  {re.escape(str(tmp_path / 'out/clip_1.mkv'))} "
                     r"\(6 frames\)\n$", ok)
    assert " pattern done from the cache\n" in (logs / "case_3.log").read_text()
    retry = f"kinograph batch {wf} --sweep {sweep} --only 2"
    failed = (logs / "case_2.log").read_text()
    assert re.search(r"\n\d\d:\d\d:\d\d trim FAILED: start=100 is past the end of the clip \(6 frames\)", failed)
    assert f"run it again with: {retry}\n" in failed and "ok in" not in failed
    summary = (logs / "batch.log").read_text()
    assert "==== batch of 3 jobs started " in summary and "2 of 3 jobs ok in " in summary
    assert re.search(r"failed cases, each with the command that runs it again:\n  case 2: trim: start=100 is past "
                     rf"the end .*\n    run it again with: {re.escape(retry)}\n", summary)

    # Retried, the case's log keeps the run that failed above the new one.
    assert main(["batch", str(wf), "--sweep", str(sweep), "--only", "2"]) == 1
    capsys.readouterr()
    again = (logs / "case_2.log").read_text()
    assert again.startswith(failed) and again.count("==== case 2, run started ") == 2

    # Stopped during case 2 (Ctrl-C cancels the run): case 1's render and log stand, case 2's log says it was
    # stopped, and batch.log names what did not run with the command that runs it.
    import app.batch
    real, calls = app.batch.run_job, []

    def stopped_in_the_second(session, payload, cancel, on_event):
        calls.append(1)

        def watch(ev):          # Ctrl-C as the second case's trim starts
            on_event(ev)
            if len(calls) == 2 and ev["event"] == "node_started" and ev["node"] == "trim":
                cancel.cancel()
        return real(session, payload, cancel, on_event=watch)

    monkeypatch.setattr(app.batch, "run_job", stopped_in_the_second)
    other = tmp_path / "night"
    assert main(["batch", str(wf), "--sweep", str(sweep), "--log-dir", str(other)]) == 130
    capsys.readouterr()
    assert load_video(str(tmp_path / "out/clip_1.mkv")).length == 6
    assert "ok in" in (other / "case_1.log").read_text()
    stopped = (other / "case_2.log").read_text()
    assert re.search(r"\n\d\d:\d\d:\d\d CANCELLED: the batch was stopped during this case; an output it had not "
                     r"finished is not written \(one it had, above, stands\). Run it again with: .* --log-dir "
                     rf"{re.escape(str(other))} --only 2\n$", stopped)
    assert not (other / "case_3.log").exists()
    assert re.search(r"not run \(the batch was stopped before they finished\): cases 2, 3; run them with:\n"
                     r"    kinograph batch .* --only 2,3\n", (other / "batch.log").read_text())


def test_a_log_folder_that_cannot_be_written_is_said_once_and_the_renders_go_on(tmp_path, capsys):
    wf = write(tmp_path, "shot.yaml", PIPELINE % "out/clip_{case}.mkv")
    sweep = write(tmp_path, "seeds.yaml", "grid: {trim.start: [0, 2]}\n")
    blocked = write(tmp_path, "a_file", "")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--log-dir", str(blocked / "logs")]) == 0
    out = capsys.readouterr()
    assert out.err.count("cannot write the batch's logs in") == 1 and "the renders go on" in out.err
    assert load_video(str(tmp_path / "out/clip_2.mkv")).length == 4
    # Nothing points the wrangler (or a farm's --json reader) at logs that were never written: stderr said
    # "a log per case ... in" the folder, the table's last line "each case's log in" it, each job_finished its file.
    assert "a log per case" not in out.err and "each case's log in" not in out.out
    assert main(["batch", str(wf), "--sweep", str(sweep), "--log-dir", str(blocked / "logs"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [("log" in r) for r in rows if r["event"] == "job_finished"] == [False, False]


def test_a_failed_shot_of_a_batch_of_files_is_retried_into_its_own_log(tmp_path, capsys):
    """A batch of files named each job's log by its case number (case_2.shot_b.log, beside the first file), and the
    printed retry, naming the failed file alone, made it case 1 of a batch beside that file: the retry's log went to
    case_1.shot_b.log in another folder, and the failure's was no longer above it as the README says. Each file's
    job is now logged under its workflow's name, and the retry keeps the batch's log folder."""
    import shlex
    for seq in ("seq010", "seq020"):
        (tmp_path / seq).mkdir()
    first = write(tmp_path / "seq010", "shot_a.yaml", PIPELINE % "out/a.mkv")
    failing = write(tmp_path / "seq020", "shot_b.yaml", (PIPELINE % "out/b.mkv").replace("start: 0", "start: 100"))
    assert main(["batch", str(first), str(failing)]) == 1
    logs = tmp_path / "seq010" / "logs" / "batch"
    assert sorted(p.name for p in logs.iterdir()) == ["batch.log", "shot_a.log", "shot_b.log"]
    retry = capsys.readouterr().out.rstrip().rpartition("\n")[2].strip()
    assert retry == f"kinograph batch {failing} --log-dir {logs}"
    assert main(shlex.split(retry)[1:]) == 1
    capsys.readouterr()
    assert (logs / "shot_b.log").read_text().count("==== case 2, run started ") == 1
    assert (logs / "shot_b.log").read_text().count("==== case 1, run started ") == 1
    assert sorted(p.name for p in logs.iterdir()) == ["batch.log", "shot_a.log", "shot_b.log"]


def test_a_log_folder_given_with_a_tilde_is_in_the_home_folder(tmp_path, capsys, monkeypatch):
    """`--log-dir=~/night` (no shell expands a ~ after '=') made a folder named '~' in the current one, where
    --output-dir=~/renders meant the home folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    wf = write(tmp_path, "shot.yaml", PIPELINE % "out/clip_{case}.mkv")
    sweep = write(tmp_path, "seeds.yaml", "grid: {trim.start: [0]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--log-dir=~/night"]) == 0
    assert f"each case's log in {tmp_path / 'home' / 'night'}" in capsys.readouterr().out
    assert (tmp_path / "home" / "night" / "case_1.log").is_file() and not (tmp_path / "~").exists()


def test_a_disk_that_fills_during_the_night_costs_the_logs_not_the_renders(tmp_path, capsys):
    """A case's log on a full disk (here /dev/full, whose writes fail with ENOSPC): each of its lines said 'cannot
    write the batch's logs' again, and closing the file raised the OSError out of the batch, a traceback with the
    other cases not run, no table and no retry."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    wf = write(tmp_path, "shot.yaml", PIPELINE % "out/clip_{case}.mkv")
    sweep = write(tmp_path, "seeds.yaml", "grid: {trim.start: [0, 2]}\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "case_1.log").symlink_to("/dev/full")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--log-dir", str(logs)]) == 0
    out = capsys.readouterr()
    assert out.err.count("cannot write the batch's logs in") == 1 and "No space left on device" in out.err
    assert "2 of 2 jobs ok" in out.out and load_video(str(tmp_path / "out/clip_2.mkv")).length == 4


def test_a_workflow_whose_name_is_not_utf8_is_logged_escaped(tmp_path, monkeypatch):
    """A shot named in Latin-1 (shot_\\xe9.yaml, from an old Windows share) reaches Python as a surrogate, which the
    logs' UTF-8 could not encode: the batch stopped in a UnicodeEncodeError before its first job."""
    try:
        wf = tmp_path / os.fsdecode(b"shot_\xe9.yaml")
        wf.write_text(PIPELINE % "out/clip.mkv")
    except (UnicodeError, OSError):
        pytest.skip("the file system takes only UTF-8 names")
    for stream in ("stdout", "stderr"):     # as a terminal's: capsys's refuse the surrogate the command prints
        monkeypatch.setattr(sys, stream, io.TextIOWrapper(io.BytesIO(), "utf-8", errors="backslashreplace"))
    assert main(["batch", str(wf)]) == 0
    assert "shot_\\udce9.yaml\n" in (tmp_path / "logs" / "batch" / os.fsdecode(b"shot_\xe9.log")).read_text()


def test_a_case_stopped_after_one_of_its_outputs_does_not_say_none_was_written(tmp_path, capsys, monkeypatch):
    """A case writing a proxy and a second file, stopped while writing the second: its log said 'its outputs were
    not written', and the proxy it had finished was there (a wrangler would render it again, or trust a wrong log)."""
    import app.batch
    wf = write(tmp_path, "shot.yaml", PIPELINE % "out/clip_{case}.mkv" + "  proxy:\n    type: io.save_video\n"
               "    inputs: {video: trim.video}\n    params: {path: 'out/proxy_{case}.mkv', codec: ffv1}\n")
    sweep = write(tmp_path, "seeds.yaml", "grid: {trim.start: [0]}\n")
    real, written = app.batch.run_job, []

    def stopped_at_the_second_writer(session, payload, cancel, on_event):
        def watch(ev):
            on_event(ev)
            if ev["event"] == "node_finished" and ev["node"] in ("save", "proxy"):
                written.append(ev["node"])
                cancel.cancel()
        return real(session, payload, cancel, on_event=watch)
    monkeypatch.setattr(app.batch, "run_job", stopped_at_the_second_writer)
    assert main(["batch", str(wf), "--sweep", str(sweep)]) == 130
    capsys.readouterr()
    first = {"save": "clip_1.mkv", "proxy": "proxy_1.mkv"}[written[0]]
    assert (tmp_path / "out" / first).is_file()
    log = (tmp_path / "logs" / "shot.seeds" / "case_1.log").read_text()
    assert f" {written[0]} done in " in log and "its outputs were not written" not in log and "CANCELLED" in log


def test_a_lazy_node_no_reader_pulled_is_not_logged_as_having_worked(tmp_path):
    """A case whose Save failed before it read a frame: the CLI no longer said its clip nodes 'computed their
    frames in 0.00s' (node_time's `frames`), but the case's log still read 'pat: 0.00s of its own work in all'."""
    from types import SimpleNamespace

    from app.batchlog import BatchLogs
    job = SimpleNamespace(case=SimpleNamespace(number=1, overrides={}), label="1", source=None, workflow=None,
                          outputs=[])
    logs = BatchLogs(tmp_path, lambda numbers: [], lambda text: None)
    for node in ("pat", "res"):
        logs.event(job, {"event": "node_finished", "node": node, "cached": False, "seconds": 0.0, "lazy": True})
    logs.event(job, {"event": "node_time", "node": "pat", "seconds": 0.0, "frames": False})
    logs.event(job, {"event": "node_time", "node": "res", "seconds": 1.5, "frames": True})
    text = logs.path(job).read_text()
    assert "res: 1.50s of its own work in all" in text and "pat:" not in text, text
