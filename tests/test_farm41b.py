"""Farm items: a sharded Ray run refused on its worker exits 2 as the unsharded one does; workflow copies older
versions left in /tmp are swept once abandoned; the full-disk pre-check weighs what the run writes."""
import json
import os
import socket

from tests.cli_run import cli
from tests.test_studio_batch import write

PLATE = """\
    kinograph: 1
    nodes:
      plate: {type: io.load_video, params: {path: plate.mkv}}
      save: {type: io.save_video, inputs: {video: plate.video}, params: {path: out/plate.mkv}}
    """


def test_a_sharded_run_on_ray_whose_worker_lacks_a_file_exits_2_as_an_unsharded_one(tmp_path, monkeypatch):
    """`run --ray --shards N` whose probe (the worker's first check) is refused, the render node lacking the plate or a
    model: nothing ran, yet it exited 1 (a node failure to a farm, so retried) where `run --ray` and a local run exit 2
    with the same message."""
    import app.distributed as dist
    from tests.test_batch import HerePool, fake_ray
    fake_ray(monkeypatch)
    monkeypatch.setattr(dist, "WorkerPool", HerePool)
    wf = write(tmp_path, "plate.yaml", PLATE)
    write(tmp_path, "plate.mkv", "")
    monkeypatch.setattr(HerePool, "lose", tmp_path / "plate.mkv")
    unsharded = cli("run", wf, "--ray", "local", "--json", cwd=tmp_path)
    write(tmp_path, "plate.mkv", "")
    sharded = cli("run", wf, "--ray", "local", "--shards", "2", "--json", cwd=tmp_path)
    assert unsharded.returncode == 2, unsharded.stderr
    assert sharded.returncode == 2, sharded.stderr
    here = f"{socket.gethostname()} (Ray worker pid {os.getpid()})"
    missing = f"node plate: path: 'plate.mkv' is not there ({tmp_path / 'plate.mkv'})"
    for run in (unsharded, sharded):
        last = json.loads(run.stdout.splitlines()[-1])
        assert last["event"] == "run_finished" and not last["ok"]
        assert last["error"].startswith(f"on {here}: {wf}: {missing}") and "Every Ray node needs" in last["error"]
        assert missing in run.stderr
    assert json.loads(sharded.stdout.splitlines()[-1])["error"] == json.loads(unsharded.stdout.splitlines()[-1])["error"]
    assert not (tmp_path / "out").exists()
