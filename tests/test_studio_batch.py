"""A studio's overnight batch, probed as a technical director would: interrupted twice, common overrides for
every job, output names a script or a typist gets slightly wrong, and the Python API rendering the batch's
workflow. Tiny test-pattern graphs, no model weights, no Ray."""
import json
import os
import signal
import textwrap

import av
import pytest

import app.batch as batch
from app.cli import main
from app.sweep import load_sweep, plan_jobs
from graph_engine.api import Session, load_workflow
from graph_engine.registry import default_registry

SHOT = """\
kinograph: 1
nodes:
  pattern:
    type: generate.test_pattern
    params: {frames: 2, width: 16, height: 16, fps: 8.0}
  save:
    type: io.save_video
    inputs: {video: pattern.video}
    params: {path: "%s"}
"""


def write(folder, name, text):
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def frames_in(path):
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_a_second_ctrl_c_still_ends_the_batch_with_its_summary_and_log(tmp_path, monkeypatch, capsys):
    """The second Ctrl-C (or SIGTERM) of a local batch 'stops at once': it raised out of the batch, so the night's
    table, the retry line and batch.log's record of the cases not run were never written, and --json ended with
    a bare {"cancelled": true} without `not_run` or `retry`. It still stops at once, and the summary follows."""
    def interrupted_twice(*a, **k):
        os.kill(os.getpid(), signal.SIGINT)     # cancels
        os.kill(os.getpid(), signal.SIGINT)     # stops at once
        raise AssertionError("the second signal did not stop the job")

    monkeypatch.setattr(batch, "run_job", interrupted_twice)
    wf = write(tmp_path, "wf.yaml", SHOT % "out/clip.mp4")
    sweep = write(tmp_path, "s.yaml", "grid: {pattern.frames: [2, 3, 4]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep)]) == 130
    out = capsys.readouterr().out
    assert "0 of 3 jobs ok" in out and "--only 1,2,3" in out
    log = (tmp_path / "logs" / "wf.s" / "batch.log").read_text()
    assert "not run (the batch was stopped before they finished): cases 1, 2, 3" in log

    assert main(["batch", str(wf), "--sweep", str(sweep), "--json"]) == 130
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["event"] == "batch_finished" and last["cancelled"] is True
    assert last["not_run"] == [1, 2, 3] and "--only 1,2,3" in last["retry"]


@pytest.mark.parametrize("node,path", [("io.save_video", ""), ("io.save_video", "   "), ("io.save_frames", "")])
def test_an_empty_output_path_is_refused_before_anything_runs(tmp_path, capsys, node, path):
    """`--set save.path=` (a wrapper's variable left empty) passed validate: every node before the writer ran (a
    night's sampling) and it failed with '. is a folder; give a file name', exit 1."""
    wf = write(tmp_path, "wf.yaml", (SHOT % "out/clip.mp4").replace("io.save_video", node))
    assert main(["validate", str(wf), "--set", f"save.path={path}"]) == 2
    assert main(["run", str(wf), "--set", f"save.path={path}"]) == 2
    err = capsys.readouterr().err
    assert "node save: path is empty" in err and "is a folder" not in err
    assert not (tmp_path / "out").exists()


def test_a_folder_where_a_video_is_named_is_refused_before_anything_runs(tmp_path, capsys):
    """A folder at the video's name (out/shot.mp4/ made by a script, or a frames folder of that name) passed
    validate and failed at the writer once everything before it had run."""
    wf = write(tmp_path, "wf.yaml", SHOT % "out/shot.mp4")
    (tmp_path / "out" / "shot.mp4").mkdir(parents=True)
    assert main(["run", str(wf)]) == 2
    assert "shot.mp4 is a folder; give a file name" in capsys.readouterr().err
    # io.save_frames fills a folder: one there already is its place, not a problem
    frames = write(tmp_path, "frames.yaml", (SHOT % "out/shot.mp4").replace("io.save_video", "io.save_frames"))
    assert main(["validate", str(frames)]) == 0


@pytest.mark.parametrize("first,second", [("out/Shot.mp4", "out/shot.mp4"), ("out\\\\shot.mp4", "out/shot.mp4"),
                                          ("./out/shot.mp4", "out/shot.mp4")])
def test_sweep_outputs_naming_one_file_differently_are_numbered(tmp_path, first, second):
    """out/Shot.mp4 and out/shot.mp4 are one file on Windows and macOS; out\\shot.mp4 (a case typed on Windows)
    and ./out/shot.mp4 are out/shot.mp4 everywhere Kinograph runs. Told apart as text, the second case's render
    took the first's place (the first kept only as an unnamed take) and --skip-done judged both by one file.
    They get the case number, as identical names do."""
    wf = load_workflow(write(tmp_path, "wf.yaml", SHOT % "out/clip.mp4"))
    sweep = load_sweep(write(tmp_path, "s.yaml", f'cases:\n  - {{save.path: "{first}"}}\n'
                                                 f'  - {{save.path: "{second}"}}\n'), wf, default_registry())
    jobs, notes = plan_jobs(wf, sweep, sweep.cases, default_registry())
    names = [os.path.basename(j.outputs[0]) for j in jobs]
    assert names[0].casefold() == "shot_1.mp4" and names[1] == "shot_2.mp4"
    assert len({j.outputs[0] for j in jobs}) == 2
    assert any("same file for several cases" in n for n in notes)


def test_session_fills_output_placeholders_for_each_run(tmp_path):
    """`kinograph run` fills an output path's {NODE.PARAM} (a batch workflow rendered alone); Session.run wrote a
    file literally named 'clip_{pattern.frames}.mp4', each run replacing the one before. Filled for each run
    from that run's values; the workflow keeps its template, so the next run's values name the next file."""
    wf = load_workflow(write(tmp_path, "wf.yaml", SHOT % "out/clip_{pattern.frames}.mp4"))
    session = Session()
    for frames in (2, 3):
        result = session.run(wf, overrides={"pattern.frames": frames})
        assert result.ok and result.results["save"]["path"] == str(tmp_path / "out" / f"clip_{frames}.mp4")
        assert frames_in(tmp_path / "out" / f"clip_{frames}.mp4") == frames
    assert wf.graph.nodes["save"].params["path"] == "out/clip_{pattern.frames}.mp4"
    assert not (tmp_path / "out" / "takes").exists()


def test_batch_set_overrides_every_job_and_its_retry_keeps_it(tmp_path, capsys):
    """A night's sweep at final quality after the afternoon's previews: the change common to every case had to be
    copied into each case of the sweep or into a copy of the workflow (`batch` had no --set). --set applies to
    every job, before the sweep's own values (a case setting the same parameter wins), and the printed retry
    command carries it."""
    wf = write(tmp_path, "wf.yaml", SHOT % "out/clip_{case}.mp4")
    sweep = write(tmp_path, "s.yaml", "cases:\n  - {pattern.width: 16}\n  - {pattern.frames: 5}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--set", "pattern.frames=4"]) == 0
    assert [frames_in(tmp_path / "out" / f"clip_{n}.mp4") for n in (1, 2)] == [4, 5]
    # every workflow of a batch of files, and a wrong --set is the command's mistake: nothing runs
    other = write(tmp_path / "b", "other.yaml", SHOT % "out/other.mp4")
    capsys.readouterr()
    assert main(["batch", str(other), "--set", "pattern.frames=3"]) == 0
    assert frames_in(tmp_path / "b" / "out" / "other.mp4") == 3
    assert main(["batch", str(other), "--set", "pattern.frams=3"]) == 2
    assert "has no parameter 'frams'" in capsys.readouterr().err
    assert not (tmp_path / "b" / "out" / "takes").exists()


def test_batch_retry_line_carries_set(tmp_path, capsys):
    wf = write(tmp_path, "wf.yaml", SHOT % "out/clip_{case}.mp4")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "clip_2.mp4").write_text("the user's own file")       # case 2 fails, not run
    sweep = write(tmp_path, "s.yaml", "grid: {pattern.width: [16, 32]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--set", "pattern.frames=3"]) == 1
    out = capsys.readouterr().out
    assert "--set pattern.frames=3 --only 2" in out


def test_a_batch_of_files_whose_outputs_differ_only_in_letter_case_runs_the_first(tmp_path, capsys, monkeypatch):
    """On a disk that does not tell letter case apart (Windows, macOS, an SMB share: made so here)."""
    import graph_engine.outputs as outputs
    monkeypatch.setattr(outputs, "folds_case", lambda path: True)
    a = write(tmp_path, "a.yaml", SHOT % "out/Shot.mp4")
    b = write(tmp_path, "b.yaml", SHOT % "out/shot.mp4")
    assert main(["batch", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "as case 1" in out and "give each workflow its own output path" in out
    assert sorted(os.listdir(tmp_path / "out")) == ["Shot.mp4"]


@pytest.mark.parametrize("second", ["out/shot.mp4", "out/Shot.mp4", "out\\\\shot.mp4"])
def test_two_writers_naming_one_file_are_refused_before_anything_runs(tmp_path, capsys, monkeypatch, second):
    """A save node copied with its path: both wrote out/shot.mp4, the run said 'wrote out/shot.mp4' twice and exit 0,
    and the first render was only an earlier take of the second. Refused before anything runs, naming both (on a
    disk that does not tell letter case apart, made so here, out/Shot.mp4 too)."""
    import graph_engine.outputs as outputs
    monkeypatch.setattr(outputs, "folds_case", lambda path: True)
    wf = write(tmp_path, "wf.yaml", (SHOT % "out/shot.mp4") + textwrap.indent(textwrap.dedent(f"""\
        save2:
          type: io.save_video
          inputs: {{video: pattern.video}}
          params: {{path: "{second}"}}
        """), "  "))
    assert main(["run", str(wf)]) == 2
    err = capsys.readouterr().err
    assert "node save2: output 'path'" in err and "save.path writes it too" in err
    assert not (tmp_path / "out").exists()


def test_a_placeholder_unquoted_in_a_flow_mapping_says_to_quote_it(tmp_path, capsys):
    """The examples write `params: {frames: 4, ...}`, and the README says output paths may hold {case}: written
    so, `params: {path: out/shot_{case}.mp4}` is not YAML, and the message ("did not find expected ',' or '}'")
    did not say the braces were the trouble. The line's placeholder is named with the quoting that fixes it, in a
    workflow and in a sweep file."""
    wf = write(tmp_path, "wf.yaml", (SHOT % "out/clip.mp4").replace('"out/clip.mp4"', "out/shot_{case}.mp4"))
    assert main(["validate", str(wf)]) == 2
    err = capsys.readouterr().err
    assert "wf.yaml:9: not valid YAML" in err and "{case}" in err and "\"out/shot_{case}.mp4\"" in err
    good = write(tmp_path, "good.yaml", SHOT % "out/clip_{case}.mp4")
    sweep = write(tmp_path, "s.yaml", "cases:\n  - {save.path: out/{pattern.frames}.mp4}\n")
    assert main(["batch", str(good), "--sweep", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "s.yaml:2: not valid YAML" in err and "\"out/{pattern.frames}.mp4\"" in err


@pytest.mark.parametrize("command", ["run", "batch"])
def test_sigterm_before_the_run_starts_is_a_cancel(tmp_path, command):
    """A scheduler's SIGTERM while the command loaded torch, checked the files or estimated (seconds, before the
    run set its own handler) killed the process: exit 143 and, with --json, no finished event for the wrapper.
    It stops there as Ctrl-C does: exit 130 and the finished event. (The signal is sent from the file check.)"""
    import subprocess
    import sys
    wf = write(tmp_path, "wf.yaml", SHOT % "out/clip.mp4")
    script = textwrap.dedent(f"""\
        import os, signal, sys
        import app.precheck as precheck
        real = precheck.problems_before_run if {command == "batch"} else precheck.missing_files
        def terminated(*a, **k):
            os.kill(os.getpid(), signal.SIGTERM)
            return real(*a, **k)
        setattr(precheck, real.__name__, terminated)
        from app.cli import main
        sys.exit(main([{command!r}, {str(wf)!r}, "--json"]))
        """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": root}, cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["event"] == f"{command}_finished" and last["cancelled"] is True
    assert not (tmp_path / "out").exists()


def filled(st):
    """statvfs's answer for the disk `st` tells of once it has filled: no block free, root's reserve too (a full
    disk's f_bavail alone left root its reserve to write)."""
    return os.statvfs_result((st.f_bsize, st.f_frsize, st.f_blocks, 0, 0, st.f_files, st.f_ffree, st.f_favail,
                              st.f_flag, st.f_namemax))


@pytest.mark.skipif(not hasattr(os, "statvfs"), reason="the disk is filled through statvfs (POSIX)")
def test_jobs_after_the_disk_fills_are_not_run(tmp_path, monkeypatch, capsys):
    """The disk filled during a night's fifth job: every job after it sampled for its hour, then failed at its
    writer on the same full disk. A job whose outputs' disk has no room left is not run, saying so, and is in the
    retry line for when space is freed. (The disk is made full after the first job by its reported free space.)"""
    real, ran = os.statvfs, []
    out = tmp_path / "out"

    def statvfs(path):
        full = ran and os.path.realpath(path).startswith(os.path.realpath(out))
        return filled(real(path)) if full else real(path)

    real_job = batch.run_job

    def run_job(*a, **k):
        ran.append(1)
        return real_job(*a, **k)

    monkeypatch.setattr(os, "statvfs", statvfs)
    monkeypatch.setattr(batch, "run_job", run_job)
    wf = write(tmp_path, "wf.yaml", SHOT % "out/clip.mp4")
    sweep = write(tmp_path, "s.yaml", "grid: {pattern.frames: [2, 3, 4]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep)]) == 1
    assert len(ran) == 1
    captured = capsys.readouterr()
    assert f"the disk holding {out} is full" in captured.err and "--only 2,3" in captured.out
    assert sorted(os.listdir(out)) == ["clip_1.mp4"]


def test_a_share_that_reports_no_size_is_not_taken_for_a_full_disk(tmp_path, monkeypatch, capsys):
    """Some network and FUSE mounts (sshfs, rclone, some SMB servers) answer statvfs with 0 blocks in all: no size
    and no free space. Taken as a full disk, every job of the batch was refused before it ran, though the share takes
    writes; a disk that tells no size is not judged."""
    import shutil
    from collections import namedtuple
    monkeypatch.setattr(shutil, "disk_usage", lambda path: namedtuple("usage", "total used free")(0, 0, 0))
    wf = write(tmp_path, "wf.yaml", SHOT % "out/clip.mp4")
    sweep = write(tmp_path, "s.yaml", "grid: {pattern.frames: [2, 3]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep)]) == 0, capsys.readouterr()
    assert sorted(os.listdir(tmp_path / "out")) == ["clip_1.mp4", "clip_2.mp4"]


def test_outputs_differing_only_in_letter_case_are_two_files_where_the_disk_tells_case_apart(tmp_path, capsys):
    """On Linux's own file systems out/Shot.mp4 and out/shot.mp4 are two files: a workflow writing both (a plate
    and its matte named so by a pipeline) and a batch of two workflows writing them were refused, as if they were
    one, for a clash that only Windows, macOS and SMB shares have. Where the disk tells case apart both are written;
    where it does not (the two tests above, made so), the later is refused."""
    import graph_engine.outputs as outputs
    assert outputs.folds_case(str(tmp_path)) is False       # the test's premise: this temp folder tells case apart
    wf = write(tmp_path, "wf.yaml", (SHOT % "out/shot.mp4") + textwrap.indent(textwrap.dedent("""\
        save2:
          type: io.save_video
          inputs: {video: pattern.video}
          params: {path: "out/Shot.mp4"}
        """), "  "))
    assert main(["run", str(wf)]) == 0, capsys.readouterr().err
    a = write(tmp_path, "a.yaml", SHOT % "b/Shot.mp4")
    b = write(tmp_path, "b.yaml", SHOT % "b/shot.mp4")
    assert main(["batch", str(a), str(b)]) == 0, capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.listdir(tmp_path / "b")) == ["Shot.mp4", "shot.mp4"]


def test_sweep_outputs_reaching_one_file_through_a_link_are_numbered(tmp_path):
    """A farm's folders are often links (renders/latest -> renders/v012): out/shot.mp4 and latest/shot.mp4 are one
    file, compared as text after resolving . and \\ only; the second case's render replaced the first's."""
    (tmp_path / "out").mkdir()
    (tmp_path / "latest").symlink_to(tmp_path / "out", target_is_directory=True)
    wf = load_workflow(write(tmp_path, "wf.yaml", SHOT % "out/clip.mp4"))
    sweep = load_sweep(write(tmp_path, "s.yaml", 'cases:\n  - {save.path: "out/shot.mp4"}\n'
                                                 '  - {save.path: "latest/shot.mp4"}\n'), wf, default_registry())
    jobs, notes = plan_jobs(wf, sweep, sweep.cases, default_registry())
    assert len({os.path.realpath(j.outputs[0]) for j in jobs}) == 2
    assert any("same file for several cases" in n for n in notes)
