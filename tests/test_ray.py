"""Batches and sharded renders on a local Ray instance (2 CPUs, started once for this file).

The nodes under test reach the Ray workers the way a user's own nodes would: from a user
nodes folder named by KINOGRAPH_NODES_DIR, which the driver passes on to its workers."""
import json
import os
import re
import sys
import textwrap

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from app.cli import main  # noqa: E402
from graph_engine import config  # noqa: E402
from graph_engine.registry import default_registry  # noqa: E402
from nodes.io.video_read import load_video  # noqa: E402
from nodes.video.test_pattern import pattern_frames  # noqa: E402

# A hang guard: on 2 loaded cores beside a second xdist worker, the interpolate.flow shard test took 106-121 s.
pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

USER_NODES = '''
"""Nodes for the Ray tests: a temporal filter and a node that loads a "model" once per process."""
import os

import numpy as np

from graph_engine import Param, node
from graph_engine.types import VIDEO

RADIUS = 2
_MODEL = {}


@node("raytest.temporal_mean", category="Test", temporal_radius=RADIUS)
def temporal_mean(ctx, video: VIDEO) -> VIDEO:
    """Each frame becomes the rounded mean of itself and RADIUS neighbours either side (clamped)."""
    n = video.length

    def reader(a, b):
        lo, hi = max(0, a - RADIUS), min(n, b + RADIUS)
        window = video.frames(lo, hi).astype(np.uint16)
        idx = np.clip(np.arange(a, b)[:, None] + np.arange(-RADIUS, RADIUS + 1), 0, n - 1) - lo
        return ((window[idx].sum(1) + RADIUS) // (2 * RADIUS + 1)).astype(np.uint8)

    return video.with_(reader=reader)


@node("raytest.tint", category="Test", temporal_radius=0)
def tint(ctx, video: VIDEO, gain: float = Param(1.0, min=0, max=1)) -> VIDEO:
    """Scale colours by a loaded per-channel "model" and a gain; logs each model load."""
    if "rgb" not in _MODEL:
        with open(os.environ["KINOGRAPH_RAYTEST_LOADS"], "a") as f:
            f.write(f"{os.getpid()}\\n")
        _MODEL["rgb"] = np.array([1.0, 0.8, 0.6], np.float32)
    scale = _MODEL["rgb"] * gain
    return video.map(lambda fr: (fr * scale + 0.5).astype(np.uint8))


@node("raytest.die_once", category="Test", temporal_radius=0)
def die_once(ctx, video: VIDEO, always: bool = Param(False)) -> VIDEO:
    """Frames pass through; the first process to compute frames past 20 dies on the spot, as one the
    OOM killer ends (the file KINOGRAPH_RAYTEST_DIED records that it happened); every one, if `always`."""
    def reader(a, b):
        marker = os.environ["KINOGRAPH_RAYTEST_DIED"]
        if b > 20 and (always or not os.path.exists(marker)):
            open(marker, "w").close()
            os._exit(1)
        return video.frames(a, b)

    return video.with_(reader=reader)
'''


@pytest.fixture(scope="module")
def ray_local():
    # Every Ray test lives in this file, so module scope starts Ray once per session and
    # frees its processes before the rest of the suite runs.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 << 20)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def user_nodes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user_nodes")
    (folder / "raytest_nodes.py").write_text(USER_NODES)
    loads = folder / "loads.txt"
    old = {k: os.environ.get(k) for k in ("KINOGRAPH_NODES_DIR", "KINOGRAPH_RAYTEST_LOADS")}
    os.environ["KINOGRAPH_NODES_DIR"] = str(folder)
    os.environ["KINOGRAPH_RAYTEST_LOADS"] = str(loads)
    reg = default_registry()
    reg.load_folder(folder)
    yield loads
    for t in ("raytest.temporal_mean", "raytest.tint", "raytest.die_once"):
        reg.specs.pop(t, None)
    sys.modules.pop("kinograph_user_nodes.raytest_nodes", None)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def through(tmp_path, node_type, width=48, height=32):
    """A workflow of 70 pattern frames through one `node_type` node into sharded.mkv (lossless)."""
    return write(tmp_path, "wf.yaml", f"""\
        kinograph: 1
        nodes:
          pattern: {{type: generate.test_pattern, params: {{frames: 70, width: {width}, height: {height}}}}}
          node: {{type: {node_type}, inputs: {{video: pattern.video}}}}
          save: {{type: io.save_video, inputs: {{video: node.video}}, params: {{path: sharded.mkv, codec: ffv1}}}}
        """)


def trimmed(tmp_path, n: int):
    """A workflow of n 32x24 pattern frames through video.trim into out/t{trim.start}.mkv (lossless)."""
    return write(tmp_path, "wf.yaml", f"""\
        kinograph: 1
        nodes:
          pattern: {{type: generate.test_pattern, params: {{frames: {n}, width: 32, height: 24}}}}
          trim: {{type: video.trim, inputs: {{video: pattern.video}}}}
          save: {{type: io.save_video, inputs: {{video: trim.video}}, params: {{path: "out/t{{trim.start}}.mkv", codec: ffv1}}}}
        """)


def events(out: str):
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def frames(path) -> np.ndarray:
    return load_video(str(path)).to_array()


def test_sweep_on_ray_writes_one_output_per_case_and_loads_models_once_per_worker(
        ray_local, user_nodes, tmp_path, capsys):
    wf = write(tmp_path, "wf.yaml", """\
        kinograph: 1
        nodes:
          pattern: {type: generate.test_pattern, params: {frames: 4, width: 32, height: 24}}
          tint: {type: raytest.tint, inputs: {video: pattern.video}}
          save:
            type: io.save_video
            inputs: {video: tint.video}
            params: {path: "out/tint_{case}_g{tint.gain}.mkv", codec: ffv1}
        """)
    sweep = write(tmp_path, "sweep.yaml", "grid:\n  tint.gain: [0.5, 0.6]\n  pattern.frames: [3, 4]\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--ray", "local", "--json"]) == 0
    rows = [e for e in events(capsys.readouterr().out) if e["event"] == "job_finished"]
    assert sorted(r["case"] for r in rows) == [1, 2, 3, 4] and all(r["ok"] for r in rows)
    expected = {1: ("tint_1_g0.5.mkv", 0.5, 3), 2: ("tint_2_g0.5.mkv", 0.5, 4),
                3: ("tint_3_g0.6.mkv", 0.6, 3), 4: ("tint_4_g0.6.mkv", 0.6, 4)}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(v[0] for v in expected.values())
    for name, gain, n in expected.values():
        want = (pattern_frames(0, n, 32, 24, n) * (np.array([1.0, 0.8, 0.6], np.float32) * gain) + 0.5)
        assert np.array_equal(frames(tmp_path / "out" / name), want.astype(np.uint8))
    # Four jobs, at most two worker processes, and each loaded the model once.
    pids = {r["pid"] for r in rows}
    loads = user_nodes.read_text().split()
    assert len(pids) <= 2 and sorted(loads) == sorted(str(p) for p in pids)


def test_failing_case_is_reported_and_the_others_finish(ray_local, tmp_path, capsys):
    wf = trimmed(tmp_path, 5)
    sweep = write(tmp_path, "sweep.yaml", "cases:\n  - {trim.start: 0}\n  - {trim.start: 50}\n  - {trim.start: 2}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--ray", "local"]) == 1
    out = capsys.readouterr()
    assert "2 of 3 jobs ok" in out.out and "--ray local --only 2" in out.out
    assert "2  FAILED" in out.out and "start=50 is past the end of the clip (5 frames)" in out.out
    assert frames(tmp_path / "out/t0.mkv").shape[0] == 5 and frames(tmp_path / "out/t2.mkv").shape[0] == 3
    assert not (tmp_path / "out/t50.mkv").exists()


def sharded_equals_unsharded(tmp_path, capsys, wf, shards=3):
    """Render in-process and in `shards` shards on Ray (70-frame clips: three 32-frame chunks)."""
    assert main(["run", str(wf), "--set", "save.path=ref.mkv"]) == 0
    capsys.readouterr()
    assert main(["run", str(wf), "--ray", "local", "--shards", str(shards), "--json"]) == 0
    evs = events(capsys.readouterr().out)
    done = [e for e in evs if e["event"] == "shard_finished"]
    assert len(done) == shards and all(e["ok"] for e in done)
    assert evs[-1]["event"] == "run_finished" and evs[-1]["ok"]
    assert not list((config.cache_dir() / "shards").glob("*/*")), "shard files left behind"
    return frames(tmp_path / "ref.mkv"), frames(tmp_path / "sharded.mkv")


def test_sharded_frame_local_render_equals_unsharded(ray_local, tmp_path, capsys):
    wf = write(tmp_path, "wf.yaml", """\
        kinograph: 1
        nodes:
          pattern: {type: generate.test_pattern, params: {frames: 70, width: 64, height: 48}}
          resize: {type: video.resize, inputs: {video: pattern.video}, params: {width: 40}}
          save: {type: io.save_video, inputs: {video: resize.video}, params: {path: sharded.mkv, codec: ffv1}}
        """)
    ref, got = sharded_equals_unsharded(tmp_path, capsys, wf)
    assert ref.shape == (70, 30, 40, 3) and np.array_equal(ref, got)


def test_a_sharded_render_carries_the_plate_timecode(ray_local, tmp_path, capsys):
    """The driver assembles the shards with the source clip's timecode, as an unsharded render has it."""
    import subprocess
    import av
    from nodes.io.video_write import ffmpeg_exe
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=s=48x32:d=3:r=24",
                    "-c:v", "libx264", "-timecode", "10:00:00:00", str(tmp_path / "plate.mov")], check=True)
    wf = write(tmp_path, "wf.yaml", """\
        kinograph: 1
        nodes:
          load: {type: io.load_video, params: {path: plate.mov, start: 30}}
          save: {type: io.save_video, inputs: {video: load.video}, params: {path: sharded.mov, codec: prores}}
        """)
    assert main(["run", str(wf), "--ray", "local", "--shards", "2", "--json"]) == 0
    assert [e for e in events(capsys.readouterr().out) if e["event"] == "shard_finished"][1]["ok"]
    with av.open(str(tmp_path / "sharded.mov")) as c:
        assert c.streams.video[0].metadata.get("timecode") == "10:00:01:06"


def test_sharded_temporal_render_equals_unsharded(ray_local, user_nodes, tmp_path, capsys):
    wf = through(tmp_path, "raytest.temporal_mean")
    ref, got = sharded_equals_unsharded(tmp_path, capsys, wf)
    src = pattern_frames(0, 70, 48, 32, 70).astype(np.uint16)
    idx = np.clip(np.arange(70)[:, None] + np.arange(-2, 3), 0, 69)
    want = ((src[idx].sum(1) + 2) // 5).astype(np.uint8)
    assert np.array_equal(ref, want) and np.array_equal(got, want)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.mark.parametrize("node_type", ["interpolate.flow", "restore.deflicker"])
def test_sharded_render_of_library_temporal_nodes(ray_local, tmp_path, capsys, node_type):
    spec = default_registry().get(node_type)
    if spec is None or spec.temporal_radius is None:
        pytest.skip(f"{node_type} is not a shardable node in this checkout")
    wf = through(tmp_path, node_type)
    ref, got = sharded_equals_unsharded(tmp_path, capsys, wf)
    assert ref.shape == got.shape
    if not np.array_equal(ref, got):
        # Recursive filters may warm up differently at a shard's edge: within 0.1 dB of the source.
        src = pattern_frames(0, 70, 48, 32, 70)
        assert ref.shape == src.shape and abs(psnr(got, src) - psnr(ref, src)) <= 0.1


def test_shards_come_back_through_ray_when_the_driver_cannot_see_them(ray_local, tmp_path, capsys, monkeypatch):
    """On a cluster without a shared filesystem the driver fetches each shard from its worker."""
    import app.distributed as dist
    fetched = []
    monkeypatch.setattr(dist, "_visible", lambda path, size: fetched.append(path) and False)
    wf = write(tmp_path, "wf.yaml", """\
        kinograph: 1
        nodes:
          pattern: {type: generate.test_pattern, params: {frames: 40, width: 32, height: 24}}
          save: {type: io.save_video, inputs: {video: pattern.video}, params: {path: sharded.mkv, codec: ffv1}}
        """)
    ref, got = sharded_equals_unsharded(tmp_path, capsys, wf, shards=2)
    assert len(fetched) == 2 and np.array_equal(ref, got) and np.array_equal(got, pattern_frames(0, 40, 32, 24, 40))


def test_a_worker_deletes_only_shard_files_it_wrote(tmp_path, monkeypatch):
    """Worker.remove is a remote call taking any path: it deletes the shard files this worker wrote, nothing else."""
    import app.shard
    from app.distributed import Worker
    theirs, mine = tmp_path / "user.mp4", tmp_path / "shard_0.mkv"
    theirs.write_bytes(b"the user's")
    monkeypatch.setattr(app.shard, "render_range", lambda session, payload, source, a, b, out:
                        (mine.write_bytes(b"frames"), {"ok": True, "path": out, "frames": b - a, "bytes": 6})[1])
    monkeypatch.setattr(Worker, "_refused", staticmethod(lambda payload, here: None))     # no job to check here
    w = Worker({}, "cpu")
    w.remove(str(theirs))
    assert theirs.read_bytes() == b"the user's"
    assert w.render({}, None, 0, 4, str(mine))["path"] == str(mine)
    w.remove(str(mine))
    assert not mine.exists() and tmp_path.exists()


def test_a_shard_written_into_a_local_temp_folder_leaves_no_folder(tmp_path, monkeypatch):
    """A worker that cannot write the shared cache renders into its own temp folder; after the driver
    fetched the shard the file went, but the empty folder stayed in /tmp, one per shard."""
    import tempfile
    from pathlib import Path
    import app.shard
    from app.distributed import Worker
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = app.shard._writable("/proc/no-such-cache/shard_0.mkv")        # /proc takes no folders
    assert Path(out).parent.parent == tmp_path
    monkeypatch.setattr(app.shard, "render_range", lambda session, payload, source, a, b, path:
                        (Path(path).write_bytes(b"frames"), {"ok": True, "path": path, "frames": b - a, "bytes": 6})[1])
    monkeypatch.setattr(Worker, "_refused", staticmethod(lambda payload, here: None))     # no job to check here
    w = Worker({}, "cpu")
    w.render({}, None, 0, 4, out)
    w.remove(out)
    assert list(tmp_path.iterdir()) == []


def test_a_shard_whose_worker_dies_runs_again_and_stdout_stays_json(ray_local, user_nodes, tmp_path, capsys,
                                                                    monkeypatch):
    """A worker killed mid-shard (OOM killer, a lost node) failed the whole render, throwing away the
    shards that were done, and Ray's report of the death ('(raylet) A worker died...') landed on stdout
    among the --json events. The shard now runs again on another worker; Ray's reports go to stderr."""
    died = tmp_path / "died"
    monkeypatch.setenv("KINOGRAPH_RAYTEST_DIED", str(died))
    wf = through(tmp_path, "raytest.die_once", width=32, height=24)
    assert main(["run", str(wf), "--ray", "local", "--shards", "3", "--json"]) == 0
    out = capsys.readouterr()
    assert died.exists(), "no worker died: the test did not test anything"
    evs = [json.loads(line) for line in out.out.splitlines()]          # every line of stdout is an event
    assert evs[-1]["event"] == "run_finished" and evs[-1]["ok"]
    # Whichever shard first computes frames past 20 loses its worker (two run at once).
    assert re.search(r"a Ray worker died running shard \d \(frames \d+-\d+\) \(.*\); running it again", out.err)
    assert np.array_equal(frames(tmp_path / "sharded.mkv"), pattern_frames(0, 70, 32, 24, 70))


def test_what_ray_prints_goes_to_stderr_while_a_command_uses_it(ray_local, capsys):
    """Ray's driver prints the cluster's error reports with print() from a thread; stdout is the command's."""
    from app.distributed import ray_session
    with ray_session("local"):
        print("(raylet) A worker died or was killed while executing a task")
    out = capsys.readouterr()
    assert out.out == "" and "(raylet) A worker died" in out.err


def test_a_job_that_kills_every_worker_fails_after_one_retry_and_the_others_finish(ray_local, user_nodes, tmp_path,
                                                                                     capsys, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_RAYTEST_DIED", str(tmp_path / "died"))
    wf = through(tmp_path, "raytest.die_once", width=32, height=24)
    sweep = write(tmp_path, "s.yaml", "cases:\n  - {node.always: true}\n  - {node.always: false}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--ray", "local", "--json"]) == 1
    out = capsys.readouterr()
    rows = {e["case"]: e for e in map(json.loads, out.out.splitlines()) if e["event"] == "job_finished"}
    assert not rows[1]["ok"] and rows[1]["error"].startswith(
        "the worker process died on 2 workers in turn (out of memory, killed, or a crash in native code")
    assert out.err.count("a Ray worker died running case 1") == 1
    assert rows[2]["ok"] and frames(tmp_path / "sharded_2.mkv").shape[0] == 70


def test_more_shards_than_the_clip_makes_keep_only_the_workers_they_need(ray_local, tmp_path, capsys):
    """--shards 100 on a clip of one chunk made one shard yet kept every worker it had started (on a GPU
    cluster, a GPU each) to the end of the render; the surplus is stopped once the shards are known."""
    wf = write(tmp_path, "wf.yaml", """\
        kinograph: 1
        nodes:
          pattern: {type: generate.test_pattern, params: {frames: 10, width: 32, height: 24}}
          save: {type: io.save_video, inputs: {video: pattern.video}, params: {path: sharded.mkv, codec: ffv1}}
        """)
    assert main(["run", str(wf), "--ray", "local", "--shards", "100", "--json"]) == 0
    planned = next(e for e in events(capsys.readouterr().out) if e["event"] == "shards_planned")
    assert planned["ranges"] == [[0, 10]] and planned["workers"] == 1
    assert np.array_equal(frames(tmp_path / "sharded.mkv"), pattern_frames(0, 10, 32, 24, 10))


def test_jobs_on_ray_report_their_nodes_while_they_run(ray_local, tmp_path, capsys):
    wf = trimmed(tmp_path, 40)
    assert main(["run", str(wf), "--ray", "local", "--json"]) == 0
    evs = events(capsys.readouterr().out)
    # The worker's node events, as a local run prints them, between the driver's start and end.
    assert evs[0]["event"] == "run_started" and evs[-1]["event"] == "run_finished" and evs[-1]["ok"]
    assert {e["node"] for e in evs if e["event"] == "node_started"} == {"pattern", "trim", "save"}
    saved = [e for e in evs if e["event"] == "node_progress" and e["node"] == "save"]
    assert saved and saved[-1]["done"] == saved[-1]["total"] == 40
    assert main(["run", str(wf), "--ray", "local"]) == 0
    assert "> save (io.save_video)" in capsys.readouterr().err

    sweep = write(tmp_path, "sweep.yaml", "cases:\n  - {trim.start: 0}\n  - {trim.start: 30}\n")
    assert main(["batch", str(wf), "--sweep", str(sweep), "--ray", "local", "--json"]) == 0
    rows = events(capsys.readouterr().out)
    for case, frames in ((1, 40), (2, 10)):
        mine = [r for r in rows if r.get("case") == case]
        assert mine[-1]["event"] == "job_finished" and mine[-1]["ok"]
        saved = [r for r in mine if r["event"] == "node_progress" and r["node"] == "save"]
        assert saved and saved[-1]["done"] == saved[-1]["total"] == frames
