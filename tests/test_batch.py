"""Sweeps and batches without Ray: sweep files, output templates, local jobs, shard planning."""
import json
import os
import re
import sys
import textwrap

import numpy as np
import pytest

from app.cli import main
from app.shard import plan_shards, split_range
from app.sweep import load_sweep, plan_jobs, select_cases
from graph_engine.api import load_workflow
from graph_engine.errors import KinographError, WorkflowError
from graph_engine.registry import default_registry
from nodes.io.video_read import load_video
from nodes.video.test_pattern import pattern_frames

PIPELINE = """\
kinograph: 1
nodes:
  pattern:
    type: generate.test_pattern
    params: {frames: 6, width: 48, height: 32}
  trim:
    type: video.trim
    inputs: {video: pattern.video}
    params: {start: 0}
  resize:
    type: video.resize
    inputs: {video: trim.video}
    params: {width: 32, height: 0}
  save:
    type: io.save_video
    inputs: {video: resize.video}
    params: {path: "%s", codec: ffv1}
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def workflow(tmp_path, out="out/clip_{case}.mkv"):
    return write(tmp_path, "wf.yaml", PIPELINE % out)


def test_grid_then_cases_numbered_in_file_order(tmp_path):
    wf = load_workflow(workflow(tmp_path))
    sweep = load_sweep(write(tmp_path, "s.yaml", """\
        grid:
          resize.width: [32, 40]
          trim.start: [0, 1, 2]
        cases:
          - {trim.start: 3}
          - {}
        """), wf, default_registry())
    assert [c.number for c in sweep.cases] == list(range(1, 9))
    assert sweep.cases[0].overrides == {"resize.width": 32, "trim.start": 0}
    assert sweep.cases[2].overrides == {"resize.width": 32, "trim.start": 2}
    assert sweep.cases[3].overrides == {"resize.width": 40, "trim.start": 0}
    assert sweep.cases[6].overrides == {"trim.start": 3}
    assert sweep.cases[7].overrides == {}
    assert [c.number for c in select_cases(sweep, "2, 5-7")] == [2, 5, 6, 7]


def test_sweep_mistakes_are_located_in_the_sweep_file(tmp_path):
    wf = load_workflow(workflow(tmp_path))
    path = write(tmp_path, "bad.yaml", """\
        grid:
          resize.widht: [32, 40]
          trim.start: [0, -200000]
          seed: [1]
        cases:
          - {trim.start: "a"}
          - 5
          - {sav.path: x.mkv}
        extra: 1
        """)
    with pytest.raises(WorkflowError) as e:
        load_sweep(path, wf, default_registry())
    got = {(p.line, p.message) for p in e.value.problems}
    assert all(p.file == str(path) for p in e.value.problems)
    expected = [(2, "no parameter 'widht' (did you mean 'width'?)"), (3, "-200000 is out of range"),
                (4, "must be written NODE.PARAM"), (6, "expects a whole number, got 'a'"),
                (7, "case 2 of `cases:` must be a mapping"), (8, "no node 'sav'"), (8, "did you mean 'save'?"),
                (9, "unknown key 'extra'")]
    for line, words in expected:
        assert any(l == line and words in m for l, m in got), (line, words, got)
    assert len(e.value.problems) == 7


def test_a_sweep_of_more_cases_than_any_batch_is_refused_before_it_builds_them(tmp_path, monkeypatch):
    """A grid is a product: a 900-byte sweep of eighteen keys of ten values is 10^18 cases, which load_sweep built
    one by one (kinograph batch filled memory and never started). Over app.sweep.MAX_CASES the file is refused,
    naming the count; grid and cases count together."""
    import app.sweep
    monkeypatch.setattr(app.sweep, "MAX_CASES", 4)
    wf = load_workflow(workflow(tmp_path))
    with pytest.raises(WorkflowError) as e:
        load_sweep(write(tmp_path, "grid.yaml", "grid:\n  trim.start: [0, 1, 2]\n  resize.width: [32, 40]\n"),
                   wf, default_registry())
    assert [(p.line, p.message) for p in e.value.problems] == [
        (1, "the grid makes 6 cases (3 x 2 values); a sweep makes at most 4: give fewer values or keys, or split it "
            "into several sweep files")]
    with pytest.raises(WorkflowError) as e:
        load_sweep(write(tmp_path, "both.yaml", "grid: {trim.start: [0, 1]}\ncases:\n  - {}\n  - {}\n  - {}\n"),
                   wf, default_registry())
    assert [(p.line, p.message) for p in e.value.problems] == [
        (2, "the sweep makes 5 cases; a sweep makes at most 4: split it into several sweep files")]
    assert len(load_sweep(write(tmp_path, "ok.yaml", "grid: {trim.start: [0, 1]}\ncases: [{}, {}]\n"), wf,
                          default_registry()).cases) == 4


def test_only_names_existing_cases(tmp_path):
    wf = load_workflow(workflow(tmp_path))
    sweep = load_sweep(write(tmp_path, "s.yaml", "grid: {trim.start: [0, 1]}\n"), wf, default_registry())
    for bad, words in (("3", "case 3 does not exist: s.yaml has cases 1-2"), ("x", "not a case number")):
        with pytest.raises(WorkflowError, match=words):
            select_cases(sweep, bad)


def test_output_templates_and_collisions(tmp_path):
    reg = default_registry()
    wf = load_workflow(workflow(tmp_path, "out/w{resize.width:03d}_{save.codec}_{case}.mkv"))
    sweep = load_sweep(write(tmp_path, "s.yaml", "grid: {resize.width: [32, 40]}\n"), wf, reg)
    jobs, notes = plan_jobs(wf, sweep, sweep.cases, reg)
    assert [j.outputs for j in jobs] == [[str(tmp_path / "out/w032_ffv1_1.mkv")],
                                         [str(tmp_path / "out/w040_ffv1_2.mkv")]]
    assert notes == []
    # No placeholder that tells the cases apart: each output gets its case number.
    wf = load_workflow(workflow(tmp_path, "out/same.mkv"))
    jobs, notes = plan_jobs(wf, sweep, select_cases(sweep, "2"), reg)
    assert jobs[0].outputs == [str(tmp_path / "out/same_2.mkv")]
    assert "added _{case}" in notes[0]
    wf = load_workflow(workflow(tmp_path, "out/{resize.heigth}.mkv"))
    with pytest.raises(WorkflowError, match="node resize has no parameter 'heigth'"):
        plan_jobs(wf, sweep, sweep.cases, reg)


def test_local_batch_runs_every_case_and_reports_the_failure(tmp_path, capsys):
    wf = workflow(tmp_path, "out/clip_{case}.mkv")
    sweep = write(tmp_path, "s.yaml", "grid: {trim.start: [0, 2, 100, 4]}\n")
    code = main(["batch", str(wf), "--sweep", str(sweep), "--json"])
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert code == 1
    jobs = {r["case"]: r for r in rows if r["event"] == "job_finished"}
    assert [jobs[n]["ok"] for n in (1, 2, 3, 4)] == [True, True, False, True]
    assert "start=100 is past the end of the clip (6 frames)" in jobs[3]["error"]
    for case, start in ((1, 0), (2, 2), (4, 4)):
        got = load_video(str(tmp_path / f"out/clip_{case}.mkv")).to_array()
        assert got.shape == (6 - start, 21, 32, 3)
    assert not (tmp_path / "out/clip_3.mkv").exists()
    end = rows[-1]
    assert end["event"] == "batch_finished" and end["failed_cases"] == [3] and end["retry"].endswith("--only 3")
    # The retry runs that case alone; it still fails, with the same message, and nothing else re-runs.
    assert main(["batch", str(wf), "--sweep", str(sweep), "--only", "3"]) == 1
    out = capsys.readouterr()
    assert "0 of 1 jobs ok" in out.out and "start=100 is past the end" in out.err


def test_batch_errors_exit_2_without_running(tmp_path, capsys):
    wf = workflow(tmp_path)
    sweep = write(tmp_path, "s.yaml", "grid: {trim.stat: [0]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep)]) == 2
    assert "s.yaml:1: `trim.stat`: video.trim has no parameter 'stat' (did you mean 'start'?)" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_shard_plan_refuses_whole_clip_nodes(tmp_path):
    from graph_engine import node
    from graph_engine.registry import Registry
    from graph_engine.types import VIDEO

    @node("test.whole_clip", category="Test")
    def whole_clip(ctx, video: VIDEO) -> VIDEO:
        """Needs the whole clip at once (declares no temporal window)."""
        return video

    reg = Registry()
    reg.load_entry_points()
    reg.register(whole_clip)
    p = write(tmp_path, "whole.yaml", """\
        kinograph: 1
        nodes:
          pattern: {type: generate.test_pattern, params: {frames: 6, width: 32, height: 32}}
          w: {type: test.whole_clip, inputs: {video: pattern.video}}
          save: {type: io.save_video, inputs: {video: w.video}, params: {path: o.mkv, codec: ffv1}}
        """)
    with pytest.raises(KinographError, match=r"w \(test.whole_clip\) does not declare a bounded temporal window"):
        plan_shards(load_workflow(p, registry=reg), reg)
    p = write(tmp_path, "two.yaml", """\
        kinograph: 1
        nodes:
          pattern: {type: generate.test_pattern, params: {frames: 6, width: 32, height: 32}}
          a: {type: io.save_video, inputs: {video: pattern.video}, params: {path: a.mkv}}
          b: {type: io.save_frames, inputs: {video: pattern.video}, params: {path: frames}}
        """)
    with pytest.raises(KinographError, match=r"exactly one output node.*a \(io.save_video\), b \(io.save_frames\)"):
        plan_shards(load_workflow(p), default_registry())


def test_shard_plan_of_a_frame_local_graph(tmp_path):
    p = write(tmp_path, "fl.yaml", """\
        kinograph: 1
        nodes:
          pattern: {type: generate.test_pattern, params: {frames: 6, width: 32, height: 32}}
          resize: {type: video.resize, inputs: {video: pattern.video}, params: {width: 16}}
          save: {type: io.save_video, inputs: {video: resize.video}, params: {path: o.mkv, codec: ffv1, crf: 7}}
        """)
    plan = plan_shards(load_workflow(p), default_registry())
    assert plan.writer == "save" and plan.source == ("resize", "video") and plan.context == 0
    assert plan.settings["path"] == str(tmp_path / "o.mkv") and plan.settings["crf"] == 7


@pytest.mark.parametrize("length,shards,align", [(100, 3, 1), (100, 4, 8), (5, 8, 1), (64, 2, 32), (70, 3, 32),
                                                 (96, 4, 32), (1, 2, 32), (100, 3, 32)])
def test_split_range_covers_every_frame_once_on_chunk_boundaries(length, shards, align):
    ranges = split_range(length, shards, align)
    assert ranges[0][0] == 0 and ranges[-1][1] == length
    assert all(b0 == a1 for (_, b0), (a1, _) in zip(ranges, ranges[1:]))
    assert all(a < b for a, b in ranges) and all(a % align == 0 for a, _ in ranges)
    chunks = -(-length // align)
    assert len(ranges) == min(shards, chunks)
    assert max(b - a for a, b in ranges) <= -(-chunks // len(ranges)) * align


def test_missing_ray_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    wf = workflow(tmp_path)
    sweep = write(tmp_path, "s.yaml", "grid: {trim.start: [0]}\n")
    # Quoted: zsh reads a bare kinograph[ray] as a file pattern ("no matches found").
    assert main(["batch", str(wf), "--sweep", str(sweep), "--ray", "local"]) == 2
    assert 'pip install "kinograph[ray]"' in capsys.readouterr().err
    assert main(["run", str(wf), "--ray", "local"]) == 2
    assert 'pip install "kinograph[ray]"' in capsys.readouterr().err


def test_shards_need_ray(tmp_path, capsys):
    assert main(["run", str(workflow(tmp_path)), "--shards", "2"]) == 2
    assert "--shards needs Ray: add --ray local" in capsys.readouterr().err
    # With --json a program reading stdout got nothing at all; it gets the finished event, as for every refusal.
    assert main(["run", str(workflow(tmp_path)), "--shards", "2", "--json"]) == 2
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["event"] == "run_finished" and not last["ok"] and "--shards needs Ray" in last["error"]


def test_ffv1_shards_are_lossless(tmp_path):
    """Shards travel as FFV1 files: decoding one gives back the exact frames."""
    p = write(tmp_path, "p.yaml", """\
        kinograph: 1
        nodes:
          pattern: {type: generate.test_pattern, params: {frames: 5, width: 40, height: 24}}
          save: {type: io.save_video, inputs: {video: pattern.video}, params: {path: p.mkv, codec: ffv1}}
        """)
    assert main(["run", str(p)]) == 0
    assert np.array_equal(load_video(str(tmp_path / "p.mkv")).to_array(), pattern_frames(0, 5, 40, 24, 5))


class FakeRay:
    """Just enough of Ray's API to see what a WorkerPool asks the cluster for."""

    def __init__(self, resources):
        self.resources, self.asked = resources, []

    def cluster_resources(self):
        return dict(self.resources)

    def remote(self, cls):
        asked = self.asked

        class Actor:
            where = type("M", (), {"remote": staticmethod(object)})

        class Handle:
            def options(self, **opts):
                asked.append(opts)
                return self

            def remote(self, *args):
                return Actor()

        return Handle()


def test_workers_ask_for_a_gpu_when_the_graph_has_gpu_nodes(tmp_path):
    from app.distributed import WorkerPool, needs_gpu
    p = write(tmp_path, "sr.yaml", """\
        kinograph: 1
        nodes:
          pattern: {type: generate.test_pattern}
          sr: {type: upscale.model, inputs: {video: pattern.video}}
          save: {type: io.save_video, inputs: {video: sr.video}}
        """)
    wf = load_workflow(p, check=False)
    gpu = needs_gpu(wf, default_registry())
    assert gpu == ["sr"]
    ray = FakeRay({"CPU": 16, "GPU": 4})
    assert WorkerPool(ray, None, gpu_nodes=gpu, limit=10).size == 4
    assert ray.asked == [{"num_cpus": 1, "num_gpus": 1}] * 4
    notes = []
    ray = FakeRay({"CPU": 3})
    assert WorkerPool(ray, None, gpu_nodes=gpu, note=notes.append).size == 3
    assert ray.asked == [{"num_cpus": 1}] * 3 and "has no GPUs" in notes[0]
    ray = FakeRay({"CPU": 16, "GPU": 4})
    assert WorkerPool(ray, 8, gpu_nodes=needs_gpu(load_workflow(workflow(tmp_path)), default_registry()),
                      limit=5).size == 5
    assert ray.asked == [{"num_cpus": 1}] * 5


def test_retry_command_keeps_the_flags_the_batch_ran_with(tmp_path, capsys, monkeypatch):
    """The retry line is run as printed: without --output-dir it refused the outputs the batch was
    allowed to write, and without --cache-dir it recomputed what the shared cache holds."""
    for name in ("KINOGRAPH_OUTPUT_DIR", "KINOGRAPH_CACHE_DIR"):     # main() sets them: undone after
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    renders = tmp_path / "renders"
    (tmp_path / "shot").mkdir()
    wf = write(tmp_path / "shot", "wf.yaml", PIPELINE % f"{renders}/clip_{{case}}.mkv")
    sweep = write(tmp_path, "s.yaml", "grid: {trim.start: [0, 100]}\n")
    flags = ["--output-dir", str(renders), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]
    assert main(["batch", str(wf), "--sweep", str(sweep), "--json", *flags]) == 1
    end = [json.loads(l) for l in capsys.readouterr().out.splitlines()][-1]
    retry = end["retry"].split()
    for flag, value in zip(flags[::2], flags[1::2]):
        assert retry[retry.index(flag) + 1] == value
    assert main(retry[1:]) == 1          # runs as printed: the same case fails the same way, not refused
    out = capsys.readouterr()
    assert "start=100 is past the end" in out.err and "outside" not in out.err


def test_json_ends_with_a_finished_event_when_nothing_could_run(tmp_path, capsys):
    """--json promises events ending with run_finished (batch_finished): a workflow refused before
    anything ran printed nothing on stdout, so a program reading it saw no result at all."""
    wf = workflow(tmp_path)
    assert main(["run", str(wf), "--json", "--set", "trim.start=abc"]) == 2
    out = capsys.readouterr()
    end = json.loads(out.out.splitlines()[-1])
    assert end["event"] == "run_finished" and end["ok"] is False and end["cancelled"] is False
    assert "parameter 'start' expects a whole number, got 'abc'" in end["error"]
    assert "expects a whole number" in out.err                 # people still read it on stderr
    sweep = write(tmp_path, "s.yaml", "grid: {trim.stat: [0]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--json"]) == 2
    end = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert end["event"] == "batch_finished" and end["ok"] is False
    assert "video.trim has no parameter 'stat'" in end["error"]


def test_counts_must_be_whole_and_not_negative(tmp_path, capsys):
    """--jobs -2 and --shards -3 were taken (one worker, no shards) without a word."""
    wf = workflow(tmp_path)
    sweep = write(tmp_path, "s.yaml", "grid: {trim.start: [0]}\n")
    for argv in (["batch", str(wf), "--sweep", str(sweep), "--jobs", "-2"], ["run", str(wf), "--shards", "-3"]):
        assert main(argv) == 2
        assert "is not a whole number of 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_ray_is_said_before_any_job_is_announced(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    wf = workflow(tmp_path)
    sweep = write(tmp_path, "s.yaml", "grid: {trim.start: [0, 1]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--ray", "local"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "kinograph[ray]"' in err and "2 jobs" not in err


def test_a_ray_address_where_nothing_answers_is_named_at_once(tmp_path):
    """A mistyped head address made `--ray HOST:PORT` retry forever, printing Ray's 'Failed to connect
    to GCS' lines every few seconds (SIGTERM did not stop it). Nothing listens there: say so and stop."""
    pytest.importorskip("ray")
    import socket
    import subprocess
    with socket.socket() as s:          # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wf = workflow(tmp_path)
    r = subprocess.run([sys.executable, "-m", "app.cli", "run", str(wf), "--ray", f"127.0.0.1:{port}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert f"cannot connect to the Ray cluster at '127.0.0.1:{port}': nothing answers there" in r.stderr
    assert "ray start --head" in r.stderr and "Traceback" not in r.stderr


def test_a_loopback_address_is_checked_where_this_machines_name_does_not_resolve(monkeypatch):
    """`--ray 127.0.0.1:PORT` also tries this machine's own IP, from its name; a name that does not resolve (a
    container's hostname missing from /etc/hosts, a Mac's NAME.local) raised socket.gaierror: a traceback."""
    import socket
    import app.distributed as dist

    def unresolved(name):
        raise socket.gaierror(-2, "Name or service not known")
    monkeypatch.setattr(socket, "gethostbyname", unresolved)
    with socket.socket() as s:          # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(dist.RayUnreachable, match=f"at '127.0.0.1:{port}': nothing answers there"):
        dist._check_answers(f"127.0.0.1:{port}")


def test_no_ray_cluster_is_said_once(monkeypatch):
    """Ray's own message ends with a full stop, and ours went on with '. Start one': '..'."""
    ray = pytest.importorskip("ray")
    from app.distributed import ray_session
    from graph_engine.errors import KinographError

    def no_cluster(**kw):
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", no_cluster)
    with pytest.raises(KinographError) as e:
        with ray_session("auto"):
            pass
    assert str(e.value) == ("cannot connect to the Ray cluster at 'auto': Could not find any running Ray instance. "
                            "Please specify the one to connect to. Start one with `ray start --head` (see "
                            "docs/ray.md), or use --ray local")


def test_a_cluster_that_wants_a_token_says_so(monkeypatch):
    """Ray 2.59+ starts clusters with token authentication on. A driver without the head's token printed
    'InvalidAuthToken' for twenty seconds, then said to start a cluster with `ray start --head`, which was
    running. (The head's GCS refusing the token is Ray's AuthenticationError, raised here in its client's place.)"""
    pytest.importorskip("ray")
    import ray
    import ray._raylet
    import app.distributed as dist
    from graph_engine.errors import KinographError

    def refuses(address, **kw):
        raise ray.exceptions.AuthenticationError("RPC error: InvalidAuthToken: Authentication token is missing")

    def init(**kw):      # what ray.init raises after its retries
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(dist, "_check_answers", lambda address: None)
    monkeypatch.setattr(ray._raylet, "GcsClient", refuses)
    for mode, sends in (("", "sends none (RAY_AUTH_MODE is not `token`)"),
                        ("token", "sends another (from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)")):
        monkeypatch.setenv("RAY_AUTH_MODE", mode)
        with pytest.raises(KinographError) as e:
            with dist.ray_session("10.0.0.5:6379"):
                pass
        assert str(e.value) == (f"the Ray cluster at '10.0.0.5:6379' asks for its authentication token and this "
                                f"command {sends}: run it with RAY_AUTH_MODE=token and the head's token in "
                                "~/.ray/auth_token or RAY_AUTH_TOKEN (`ray get-auth-token` on the head prints it; "
                                "see docs/ray.md)")


def test_a_cluster_address_that_leads_nowhere_says_what_to_check_and_nothing_is_announced(tmp_path, monkeypatch,
                                                                                           capsys):
    """`--ray HEAD:PORT` that failed said Ray's 'Failed to connect to Ray cluster' and to start one with `ray start
    --head`, after the batch had announced its jobs, and exited 1 (some jobs failed). Now: what answers at a port
    that is no Ray head's (a proxy, the dashboard's port) is told at once, with what to check in order (address
    and GCS port, the head, a firewall, versions); a cluster of another Ray or Python is told which to install;
    nothing is announced and no log written; exit 2, as for any mistake on the command line (nothing ran)."""
    pytest.importorskip("ray")
    import ray
    import ray._raylet
    import app.distributed as dist
    inits = []

    def not_a_head(address, **kw):
        raise ray.exceptions.RpcError("RPC error: Received http2 header with status: 404")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: inits.append(kw))
    monkeypatch.setattr(dist, "_check_answers", lambda address: None)
    monkeypatch.setattr(ray._raylet, "GcsClient", not_a_head)
    wf = workflow(tmp_path)
    sweep = write(tmp_path, "s.yaml", "grid: {trim.start: [0, 2]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--ray", "10.0.0.5:6379", "--json"]) == 2
    out = capsys.readouterr()
    assert out.err.startswith("cannot connect to the Ray cluster at '10.0.0.5:6379': something answers there, but "
                              "not as a Ray head does (RPC error: Received http2 header with status: 404). Check: the "
                              "address is the head's and the port its GCS port (`ray status` on the head prints it; ")
    for check in ("not the dashboard's 8265", "the head is running", "firewall", f"(Ray {ray.__version__}, Python"):
        assert check in out.err
    assert out.err.count("\n") == 1 and not inits and not (tmp_path / "logs").exists()
    assert [json.loads(line)["event"] for line in out.out.splitlines()] == ["batch_finished"]

    mismatch = ("Version mismatch: The cluster was started with:\n    Ray: 2.41.0\n    Python: 3.10.12\nThis process "
                "on node 10.0.0.9 was started with:\n    Ray: 2.60.0\n    Python: 3.11.7\n")
    monkeypatch.setattr(ray._raylet, "GcsClient", lambda address, **kw: None)
    monkeypatch.setattr(ray, "init", lambda **kw: (_ for _ in ()).throw(RuntimeError(mismatch)))
    assert main(["run", str(wf), "--ray", "10.0.0.5:6379"]) == 2
    err = capsys.readouterr().err
    assert ("\ncannot connect to the Ray cluster at '10.0.0.5:6379': it runs Ray 2.41.0 on Python 3.10.12, "
            f"this command Ray {ray.__version__} on Python ") in err
    assert 'install the cluster\'s here (`pip install "ray==2.41.0"` in a Python 3.10 environment)' in err

    # --ray local names no cluster: a private instance that fails to start was told to start a head or use --ray local
    monkeypatch.setattr(ray, "init", lambda **kw: (_ for _ in ()).throw(RuntimeError("Failed to start the GCS.")))
    assert main(["batch", str(wf), "--sweep", str(sweep), "--ray", "local"]) == 2
    assert capsys.readouterr().err == ("cannot start Ray on this machine (--ray local): Failed to start the GCS. Leave "
                                       "out --ray to render here without Ray (see docs/ray.md)\n")


class SigtermPool:
    """A fake Ray worker pool that sends this process SIGTERM while its first call runs."""
    size = 1
    sink = None

    def __init__(self, *a, **k):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def imap(self, calls):
        import os
        import signal
        for key, _, _ in calls:
            os.kill(os.getpid(), signal.SIGTERM)
            yield key, {"ok": True, "seconds": 0.0}

    def call(self, method, *args):
        return next(self.imap([(None, method, args)]))[1]


def fake_ray(monkeypatch):
    from contextlib import contextmanager
    import app.distributed as dist
    monkeypatch.setattr(dist, "ray_session", contextmanager(lambda *a, **k: (yield None)))
    monkeypatch.setattr(dist, "WorkerPool", SigtermPool)
    monkeypatch.setattr(dist, "require_ray", lambda: None)


def test_sigterm_during_a_ray_batch_stops_it_like_ctrl_c(tmp_path, monkeypatch, capsys):
    """On Ray, SIGTERM went to Ray's handler: a C++ stack dump, exit 1 and no summary. It now stops the
    workers and prints the table with the retry line, exit 130, as Ctrl-C does. (Fake Ray: the pool sends
    the signal while the first job runs.)"""
    import signal
    fake_ray(monkeypatch)

    def unhandled(signum, frame):
        raise RuntimeError("SIGTERM reached the process's own handler")

    old = signal.signal(signal.SIGTERM, unhandled)
    try:
        wf = workflow(tmp_path)
        sweep = write(tmp_path, "s.yaml", "grid: {trim.start: [0, 1]}\n")
        assert main(["batch", str(wf), "--sweep", str(sweep), "--ray", "local"]) == 130
    finally:
        assert signal.getsignal(signal.SIGTERM) is unhandled
        signal.signal(signal.SIGTERM, old)
    out = capsys.readouterr()
    assert "cancelled: stopping the Ray workers" in out.err
    assert "0 of 2 jobs ok" in out.out and "--only 1,2" in out.out


class HerePool(SigtermPool):
    """A fake Ray worker pool whose calls run on a real app.distributed.Worker in this process (the code a Ray
    actor runs), after `lose` is removed: the render node that gets the job lacks that file (from the `lose_on`
    call on; None: from the first)."""
    lose = None
    lose_on = None

    def imap(self, calls):
        from app.distributed import Worker
        worker = Worker({}, "cpu")
        for key, method, args in calls:
            if self.lose is not None and self.lose_on in (None, method):
                self.lose.unlink(missing_ok=True)
            yield key, getattr(worker, method)(*args)


def test_a_render_node_that_lacks_a_file_the_job_reads_is_named_before_the_run(tmp_path, monkeypatch, capsys):
    """A Ray worker on a node without the plate (or the model folder) the wrangler's machine has ran the job
    until its loader failed, naming a path that machine does have and no node: the line said neither where
    it ran nor why there. The worker now checks what the job reads first (as `kinograph validate` does): the
    job fails, not run, naming the node, the file and the fix; each job's line says where it ran."""
    import socket
    fake_ray(monkeypatch)
    import app.distributed as dist
    monkeypatch.setattr(dist, "WorkerPool", HerePool)
    write(tmp_path, "plate.mkv", "")
    monkeypatch.setattr(HerePool, "lose", tmp_path / "plate.mkv")
    plate = write(tmp_path, "plate.yaml", """\
        kinograph: 1
        nodes:
          plate: {type: io.load_video, params: {path: plate.mkv}}
          save: {type: io.save_video, inputs: {video: plate.video}, params: {path: out/plate.mkv}}
        """)
    shot = write(tmp_path, "shot.yaml", PIPELINE % "out/shot.mkv")
    assert main(["batch", str(plate), str(shot), "--ray", "local"]) == 1
    out = capsys.readouterr()
    here = f"{socket.gethostname()} (Ray worker pid {os.getpid()})"
    assert re.search(rf"^\d\d:\d\d:\d\d \[1\] case 1 \({re.escape(str(plate))}\) FAILED, not run: on "
                     rf"{re.escape(here)}: {re.escape(str(plate))}: node plate: path: 'plate.mkv' is not there "
                     rf"\({re.escape(str(tmp_path / 'plate.mkv'))}\).*Every Ray node needs the job's model and "
                     "footage files at the same paths", out.err, re.M)
    assert re.search(rf"\[2\] case 2 \({re.escape(str(shot))}\) ok \(\d+\.\d\ds on "
                     rf"{re.escape(socket.gethostname())}, pid {os.getpid()}\)", out.err)
    assert "1 of 2 jobs ok" in out.out and load_video(str(tmp_path / "out/shot.mkv")).length == 6
    assert not (tmp_path / "out/plate.mkv").exists()


class RenderHerePool(HerePool):
    """HerePool whose `lose` is removed only when the shards render: the probe ran on a node with the plate."""
    lose_on = "render"

    def fit(self, calls):
        pass

    def local_copy(self, shard, folder):
        return shard["path"]


def test_a_shard_on_a_render_node_that_lacks_the_plate_is_named_before_it_renders(tmp_path, monkeypatch, capsys):
    """`kinograph run --ray --shards` did not get a batch job's check: a shard on a node lacking the plate ran until
    the loader failed, naming neither the node nor why. The probe and every shard now check their own machine."""
    import socket
    from graph_engine.clip import Clip
    from nodes.io.video_write import write_video
    fake_ray(monkeypatch)
    import app.distributed as dist
    monkeypatch.setattr(dist, "WorkerPool", RenderHerePool)
    write_video(Clip.from_array(pattern_frames(0, 4, 16, 16, 4), fps=8), str(tmp_path / "plate.mkv"), codec="ffv1")
    monkeypatch.setattr(RenderHerePool, "lose", tmp_path / "plate.mkv")
    wf = write(tmp_path, "plate.yaml", """\
        kinograph: 1
        nodes:
          plate: {type: io.load_video, params: {path: plate.mkv}}
          save: {type: io.save_video, inputs: {video: plate.video}, params: {path: out/plate.mkv}}
        """)
    assert main(["run", str(wf), "--ray", "local", "--shards", "2"]) == 1
    err = capsys.readouterr().err
    here = f"{socket.gethostname()} (Ray worker pid {os.getpid()})"
    assert re.search(rf"shard 0 \(frames 0-4\) failed: on {re.escape(here)}: {re.escape(str(wf))}: node plate: path: "
                     rf"'plate.mkv' is not there \({re.escape(str(tmp_path / 'plate.mkv'))}\).*Every Ray node needs "
                     "the job's model and footage files at the same paths", err), err
    assert not (tmp_path / "out/plate.mkv").exists()

def test_a_run_on_ray_stopped_by_sigterm_ends_its_json_with_the_cancelled_event(tmp_path, monkeypatch, capsys):
    """`kinograph run --ray --json` stopped by SIGTERM or Ctrl-C exited 130 with no run_finished event, so a
    program reading stdout could not tell a cancelled render from a crashed one; a local run prints it."""
    fake_ray(monkeypatch)
    assert main(["run", str(workflow(tmp_path)), "--ray", "local", "--json"]) == 130
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["event"] == "run_finished" and last["cancelled"] and not last["ok"]


HELD_SHARD_FOLDER = """from app.shard import shard_folder
from graph_engine.atomic import hold
import time
folder = shard_folder()
lock = hold(folder)
(folder / "shard_0000.mkv").write_bytes(b"lossless frames" * 1000)
print(folder.name, flush=True)
time.sleep(120)
"""


def test_a_sharded_render_killed_outright_leaves_no_shards_in_the_cache(tmp_path, monkeypatch):
    """kill -9 of `kinograph run --shards` (or a lost driver machine) left CACHE/shards/RUN/ with its
    lossless shard files for ever, outside the cache's cap. The next sharded render removes such a
    folder; one a live render holds stays."""
    import signal
    import subprocess
    from pathlib import Path
    from app.shard import shard_folder
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path))

    def driver():
        proc = subprocess.Popen([sys.executable, "-c", HELD_SHARD_FOLDER], stdout=subprocess.PIPE, text=True,
                                cwd=Path(__file__).resolve().parents[1])
        return proc, proc.stdout.readline().strip()

    live, busy = driver()
    try:
        killed, gone = driver()
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == sorted([busy, gone])
        later = subprocess.run([sys.executable, "-c", "from app.shard import shard_folder\nprint(shard_folder().name)"],
                               capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], check=True)
        mine = later.stdout.strip()
        assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == sorted([busy, mine])
        assert (tmp_path / "shards" / busy / "shard_0000.mkv").is_file()
        assert shard_folder().is_dir()
        # `kinograph cache clear` takes them too (one killed now), for whoever needs the space back at once.
        killed, gone = driver()
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        r = subprocess.run([sys.executable, "-m", "app.cli", "cache", "clear"], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parents[1], check=True)
        assert f"removed 14.6 KB of shards that killed sharded renders left in {tmp_path / 'shards'}" in r.stdout
        assert not (tmp_path / "shards" / gone).exists() and (tmp_path / "shards" / busy).is_dir()
    finally:
        live.kill()
        live.wait()


def test_skip_done_picks_a_batch_up_where_it_stopped(tmp_path, capsys):
    """After a crash or kill -9 a batch had to render every case again (or the user had to work out
    which had finished for --only). --skip-done skips a case whose outputs are there carrying that
    case's workflow; a case with a missing output, or one written by another workflow, runs."""
    wf = workflow(tmp_path, "out/clip_{case}.mkv")
    sweep = write(tmp_path, "s.yaml", "grid: {trim.start: [0, 2, 4]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--only", "1-2"]) == 0      # then the batch died
    capsys.readouterr()
    first = (tmp_path / "out/clip_1.mkv").stat().st_mtime_ns
    other = write(tmp_path, "other.yaml", PIPELINE % "out/clip_2.mkv")            # clip_2 from another workflow
    assert main(["run", str(other), "--set", "trim.start=1"]) == 0
    capsys.readouterr()
    assert main(["batch", str(wf), "--sweep", str(sweep), "--skip-done", "--json"]) == 0
    rows = {r["case"]: r for r in map(json.loads, capsys.readouterr().out.splitlines()) if r["event"] == "job_finished"}
    assert rows[1]["ok"] and rows[1].get("skipped") and not rows[2].get("skipped") and not rows[3].get("skipped")
    assert (tmp_path / "out/clip_1.mkv").stat().st_mtime_ns == first
    for case, start in ((1, 0), (2, 2), (3, 4)):
        assert load_video(str(tmp_path / f"out/clip_{case}.mkv")).length == 6 - start
    assert main(["batch", str(wf), "--sweep", str(sweep), "--skip-done"]) == 0
    out = capsys.readouterr()
    assert "3 of 3 jobs ok" in out.out and out.out.count("skipped") == 3


def test_a_batch_workflow_run_alone_fills_its_placeholders(tmp_path, capsys):
    """A batch's workflow rendered alone with `kinograph run` (a test render of one case) wrote a file named
    'clip_{trim.start}.mkv'. Its {NODE.PARAM} placeholders are filled as the batch fills them; {case}, which
    has no value outside a batch, stays and a note says so."""
    wf = workflow(tmp_path, "out/clip_{trim.start:02d}_{case}.mkv")
    assert main(["run", str(wf), "--set", "trim.start=2"]) == 0
    err = capsys.readouterr().err
    assert load_video(str(tmp_path / "out/clip_02_{case}.mkv")).length == 4
    assert "save.path holds {case}, which kinograph batch fills with the case number; this run writes " \
           "out/clip_02_{case}.mkv" in err
    wf = workflow(tmp_path, "out/c{pattern.nope}.mkv")
    assert main(["run", str(wf)]) == 2
    assert "placeholder {pattern.nope}: node pattern has no parameter 'nope'" in capsys.readouterr().err


def test_a_placeholder_asking_for_a_name_of_gigabytes_is_refused_by_validate_and_run(tmp_path, capsys):
    """An output path of 'out/v_{pattern.frames:>1500000000}.mkv' (a workflow from someone else) made format() build
    a 1.5 GB name: `kinograph run` was killed after 100 s under 3 GB, and `validate` said ok, never filling the
    placeholders. Widths and precisions stop at a file name's 255; validate fills the placeholders as run does."""
    wf = workflow(tmp_path, "out/v_{pattern.frames:>1500000000}.mkv")
    for command in ("validate", "run"):
        assert main([command, str(wf)]) == 2
        assert capsys.readouterr().err.strip() == (
            f"{wf}:17: node save: placeholder {{pattern.frames:>1500000000}}: a width or precision of 1500000000 is "
            f"more than a file name holds; give at most 255")
    assert main(["validate", str(workflow(tmp_path, "out/c{pattern.nope}.mkv"))]) == 2
    assert "placeholder {pattern.nope}: node pattern has no parameter 'nope'" in capsys.readouterr().err


def test_a_batch_job_reports_its_nodes_while_it_runs(tmp_path, capsys, monkeypatch):
    from app import batch
    wf = workflow(tmp_path)
    sweep = write(tmp_path, "s.yaml", "grid: {trim.start: [0, 2]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--json"]) == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    for case, frames in ((1, 6), (2, 4)):
        mine = [r for r in rows if r.get("case") == case]
        # Its node events carry the case and come before the job's own line.
        assert mine[-1]["event"] == "job_finished" and mine[-1]["ok"]
        assert {"node_started", "node_finished"} <= {r["event"] for r in mine[:-1]}
        saved = [r for r in mine if r["event"] == "node_progress" and r["node"] == "save"]
        assert saved and saved[-1]["done"] == saved[-1]["total"] == frames
    # People see how far a long job is; quick jobs stay one line each.
    assert main(["batch", str(wf), "--sweep", str(sweep)]) == 0
    assert "case 1: save" not in capsys.readouterr().err
    monkeypatch.setattr(batch, "PROGRESS_LINE_S", 0.0)
    assert main(["batch", str(wf), "--sweep", str(sweep)]) == 0
    err = capsys.readouterr().err
    assert "case 1: save 100% (6/6)" in err and "case 2: save 100% (4/4)" in err


def test_a_fault_in_a_node_leaves_its_stack_trace_in_the_batch_log(tmp_path, capsys, monkeypatch):
    """A node that raised an unexpected exception (a bug in Kinograph or a node pack) left 'FAILED: resize:
    ZeroDivisionError: ...' in the night's log: its stack trace, what a bug report needs, was only in --json's
    rows, so the failed job had to be rendered again with --json to report it. It now follows the failure,
    under its case; a mistake with a message of its own (a trim past the end) gets none."""
    spec = default_registry().get("video.resize")

    def broken(ctx, **kw):
        return {}[kw["method"]]

    monkeypatch.setattr(spec, "func", broken)
    wf = workflow(tmp_path)
    sweep = write(tmp_path, "s.yaml", "grid: {trim.start: [0, 100]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep)]) == 1
    err = capsys.readouterr().err
    trace = re.search(r"^  case 1: resize failed: KeyError: 'area'\n((?:    \| .*\n)+)", err, re.M)
    assert trace, err
    lines = trace.group(1).splitlines()
    assert lines[0] == "    | Traceback (most recent call last):" and lines[-1] == "    | KeyError: 'area'"
    assert any("in broken" in line for line in lines)
    assert "case 2: trim failed" not in err and "start=100 is past the end" in err
    # A fault outside any node (the job's own code) leaves its trace the same way.
    import app.jobs
    monkeypatch.setattr(app.jobs, "workflow_of", lambda payload: 1 / 0)
    assert main(["batch", str(wf), "--sweep", str(sweep), "--only", "1"]) == 1
    assert re.search(r"^  case 1: ZeroDivisionError: division by zero\n    \| Traceback .*\n(    \| .*\n)*"
                     r"    \| ZeroDivisionError: division by zero\n", capsys.readouterr().err, re.M)


def test_relay_thins_progress_but_passes_every_tenth_and_the_end():
    from app.progress import Relay
    sent = []
    relay = Relay(sent.append)
    relay({"event": "run_started", "nodes": ["a"]})
    for i in range(1, 1001):
        relay({"event": "node_progress", "node": "a", "done": i, "total": 1000})
    relay({"event": "node_preview", "node": "a", "image": None})
    relay({"event": "node_finished", "node": "a", "cached": False, "seconds": 1.0})
    done = [e["done"] for e in sent if e["event"] == "node_progress"]
    # A thousand steps in well under RELAY_EVERY_S: the first, each new tenth, and the last.
    assert done == [1, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    assert [e["event"] for e in sent if e["event"] != "node_progress"] == ["node_finished"]


def test_a_batch_of_workflow_files_runs_every_one_it_can_and_names_the_others(tmp_path, capsys):
    """A wrangler's night: ten shot files in one `kinograph batch`. One file that did not load, or one case
    that could not run (its footage, its output), stopped the whole batch before anything rendered (exit 2).
    Now each is a failed job naming its file, line and problem; the others render; exit 1; the retry command
    names only the files that failed; every job's line carries the time of day it ended."""
    good = [write(tmp_path, f"shot_{n}.yaml", PIPELINE % f"out/shot_{n}.mkv") for n in (1, 2)]
    broken = write(tmp_path, "broken.yaml", "nodes: [\n")
    late = write(tmp_path, "late.yaml", PIPELINE.replace("{start: 0}", "{start: 100}") % "out/late.mkv")
    # A copy of shot 1's file edited but still writing shot 1's name: it would have replaced that render.
    twin = write(tmp_path, "twin.yaml", PIPELINE.replace("{start: 0}", "{start: 2}") % "out/shot_1.mkv")
    files = [str(good[0]), str(broken), str(late), str(tmp_path / "gone.yaml"), str(good[1]), str(twin)]
    assert main(["batch", *files, "--json"]) == 1
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    jobs = {r["case"]: r for r in rows if r["event"] == "job_finished"}
    assert [jobs[n]["ok"] for n in range(1, 7)] == [True, False, False, False, True, False]
    assert [jobs[n]["workflow"] for n in range(1, 7)] == files
    assert f"writes {tmp_path / 'out/shot_1.mkv'}, as case 1 ({good[0]}) does" in jobs[6]["error"]
    assert not (tmp_path / "out/takes").exists()
    assert jobs[2]["error"].startswith(f"{broken}:2: not valid YAML") and jobs[2]["seconds"] is None
    assert "start=100 is past the end of the clip (6 frames)" in jobs[3]["error"]
    assert jobs[4]["error"] == f"{tmp_path / 'gone.yaml'}: no such file"
    assert all(len(r["finished_at"]) == 25 for r in jobs.values())     # 2026-12-06T03:12:44+01:00
    for n in (1, 2):
        assert load_video(str(tmp_path / f"out/shot_{n}.mkv")).length == 6
    end = rows[-1]
    assert end["failed_cases"] == [2, 3, 4, 6]
    # The twin run again as it is would replace shot 1's render: it is told what to change, not put in the retry.
    assert end["retry"] == f"kinograph batch {broken} {late} {tmp_path / 'gone.yaml'}"
    assert end["change_first"] == [{"case": 6, "workflow": str(twin), "param": "save.path",
                                    "output": str(tmp_path / "out/shot_1.mkv"), "same_as_case": 1,
                                    "same_as": str(good[0])}]
    assert end["retry_after_change"] == f"kinograph batch {twin}"
    # For people: a line per job with its time and file, the table naming each file; --only picks files by number.
    assert main(["batch", *files, "--only", "2,5"]) == 1
    out = capsys.readouterr()
    assert re.search(rf"^\d\d:\d\d:\d\d \[1\] case 2 \({re.escape(str(broken))}\) FAILED, not run: ", out.err, re.M)
    assert "1 of 2 jobs ok" in out.out and f"kinograph batch {broken}\n" in out.out + "\n"
    # A sweep case that would write over a file Kinograph did not write (a client's delivery) fails alone.
    (tmp_path / "out/c_2.mkv").write_bytes(b"the client's file")
    wf = workflow(tmp_path, "out/c_{case}.mkv")
    sweep = write(tmp_path, "s.yaml", "grid: {trim.start: [1, 2, 3]}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep)]) == 1
    out = capsys.readouterr()
    assert "2 of 3 jobs ok" in out.out and "c_2.mkv already exists and Kinograph did not write it" in out.err
    assert [load_video(str(tmp_path / f"out/c_{n}.mkv")).length for n in (1, 3)] == [5, 3]
    assert (tmp_path / "out/c_2.mkv").read_bytes() == b"the client's file"
    # Nothing that can run: the command itself is wrong, exit 2, as before.
    assert main(["batch", str(broken), str(tmp_path / "gone.yaml")]) == 2
    assert main(["batch", str(wf), str(late), "--sweep", str(sweep)]) == 2
    assert "--sweep makes the cases of one workflow; 2 were given" in capsys.readouterr().err


def test_a_quoted_pattern_is_expanded_and_a_clash_is_told_what_to_change_before_its_retry(tmp_path, capsys,
                                                                                         monkeypatch):
    """A farm wrapper (or a Windows shell) passes 'shots/*.yaml' as it is: it was looked for as a file ("shots/
    *.yaml: no such file"). Now it is expanded in name order, and one that matches nothing says so and where it
    looked. Of two shots writing one file, the later failed and the summary's retry ran it again as it was,
    replacing the first shot's render: it now says what to change first, and the retry leaves it out."""
    monkeypatch.chdir(tmp_path)
    assert main(["batch", "shots/*.yaml"]) == 2
    assert capsys.readouterr().err == f"shots/*.yaml: no file matches this pattern (looked in {tmp_path / 'shots'}, " \
                                      "which does not exist)\n"
    (tmp_path / "shots").mkdir()
    write(tmp_path, "shots/b.yaml", PIPELINE % "out/one.mkv")
    write(tmp_path, "shots/a.yaml", PIPELINE % "out/one.mkv")
    write(tmp_path, "shots/c.yaml", "nodes: [\n")
    assert main(["batch", "shots/*.yaml"]) == 1
    out = capsys.readouterr().out
    table = [re.search(r"\d  (ok|FAILED) .*?(shots/\w.yaml)", line) for line in out.splitlines()[1:4]]
    assert [(m[1], m[2]) for m in table] == [("ok", "shots/a.yaml"), ("FAILED", "shots/b.yaml"),
                                             ("FAILED", "shots/c.yaml")]
    assert out.split("jobs ok in ")[1].split("\n", 1)[1] == (
        "  kinograph batch shots/c.yaml\n"
        "these write an earlier job's output and would replace its render: give each its own output path first\n"
        f"  shots/b.yaml: save.path writes {tmp_path / 'shots/out/one.mkv'}, as case 1 (shots/a.yaml) does\n"
        "then run them with:\n"
        "  kinograph batch shots/b.yaml\n")
    assert load_video(str(tmp_path / "shots/out/one.mkv")).length == 6 and not (tmp_path / "shots/out/takes").exists()
    assert main(["batch", "shots/*.yaml", "--sweep", "s.yaml"]) == 2
    assert "--sweep makes the cases of one workflow; 'shots/*.yaml' matches 3 files" in capsys.readouterr().err
