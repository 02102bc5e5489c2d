"""Farm items: a sharded Ray run refused on its worker exits 2 as the unsharded one does; workflow copies older
versions left in /tmp are swept once abandoned; the full-disk pre-check weighs what the run writes."""
import json
import os
import socket

import pytest

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


OLD_META = ";FFMETADATA1\nkinograph_workflow=kinograph: 1\\\nnodes: {}\\\n\n"


def test_workflow_copies_older_versions_left_in_tmp_are_swept_once_abandoned(tmp_path, monkeypatch):
    """Versions before the writer's hidden temporary wrote the workflow as /tmp/kinograph-meta-*.txt, left for ever by
    a writer killed outright (112 on one machine, a whole workflow each). `run` and `batch` now remove those older
    than a day that no process has open; one a live process (an older version's ffmpeg) holds stays, as do recent
    ones and files not Kinograph's."""
    import subprocess
    import tempfile
    import time

    import app.old_temporaries as old
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    day_ago = time.time() - 2 * 86400

    def meta(name, text=OLD_META, when=day_ago):
        p = tmp_path / f"kinograph-meta-{name}.txt"
        p.write_text(text)
        os.utime(p, (when, when))
        return p

    abandoned, held, recent = meta("abandoned"), meta("held"), meta("recent", when=time.time())
    foreign = meta("foreign", "someone else's notes\n")
    with open(held) as f:
        holder = subprocess.Popen(["sleep", "60"], stdin=f)
    try:
        for command in ("run", "batch"):
            monkeypatch.setattr(old, "_swept", False)
            meta("abandoned")
            assert cli(command, tmp_path / "missing.yaml", cwd=tmp_path).returncode == 2
            assert not abandoned.exists()
            assert held.exists() and recent.exists() and foreign.exists()
    finally:
        holder.kill()
        holder.wait()
    meta("abandoned")
    assert cli("run", tmp_path / "missing.yaml", cwd=tmp_path).returncode == 2
    assert abandoned.exists()       # once per process: the sweep ran at its first command


class _Statvfs:
    """os.statvfs's answer for a 100 GB ext4 disk whose 5% root reserve is all that is left: 40 KB free to users."""
    f_frsize = f_bsize = 4096
    f_blocks = 25_000_000
    f_bfree = 1_250_010
    f_bavail = 10


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="root and its reserve: POSIX")
def test_the_full_disk_pre_check_counts_the_root_reserve_for_root(tmp_path, monkeypatch):
    """`kinograph run` refused a render under 1 MB free as the disk's users see it (f_bavail); run as root on bare
    metal, ext4's 5% kept back for root (5 GB of this 100 GB disk) was still its to write, and the run was refused.
    Root's run goes ahead; another user's is still refused, naming the disk."""
    import json

    from tests.test_studio_batch import SHOT, frames_in
    real = os.statvfs
    monkeypatch.setattr(os, "statvfs", lambda p: _Statvfs() if os.path.realpath(p).startswith(str(tmp_path)) else real(p))
    wf = write(tmp_path, "shot.yaml", SHOT % "out/shot.mp4")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    user = cli("run", wf, "--json", cwd=tmp_path)
    assert user.returncode == 1
    last = json.loads(user.stdout.splitlines()[-1])
    assert f"the disk holding {tmp_path} is full (40 KB free)" in last["error"]
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    root = cli("run", wf, cwd=tmp_path)
    assert root.returncode == 0, root.stderr
    assert frames_in(tmp_path / "out" / "shot.mp4") == 2
