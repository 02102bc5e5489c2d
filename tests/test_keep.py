"""Frames kept between the runs of one session (graph_engine/keep.py): the editor re-running after a change
downstream of a costly lazy node reads that node's frames back instead of computing them again."""
import gc

import numpy as np
import pytest

from graph_engine import config, keep, node
from graph_engine.executor import Executor
from graph_engine.registry import Registry
from graph_engine.types import VIDEO
from graph_engine.workflow import parse_workflow

COMPUTED = []


@node("test.costly", category="Test")
def costly(ctx, video: VIDEO) -> VIDEO:
    """Stands for a temporal node (restore.denoise): lazy, each chunk computed when a reader pulls it."""
    def read(a, b):
        COMPUTED.extend(range(a, b))
        return 255 - video.frames(a, b)
    return video.with_(reader=read)


WF = """kinograph: 1
nodes:
  p: {{type: generate.test_pattern, params: {{frames: 40, width: 64, height: 48}}}}
  c: {{type: test.costly, inputs: {{video: p.video}}}}
  g: {{type: color.grade, inputs: {{video: c.video}}, params: {{exposure: {exposure}}}}}
"""


@pytest.fixture(autouse=True)
def roomy_disk(monkeypatch):
    """The store leaves a tenth of the disk free: on a host whose disk is over 90% full (a CI runner, this machine
    after a few fresh clones) it rightly kept nothing, and the tests of what it keeps failed. They see a roomy
    disk; test_a_nearly_full_disk_keeps_nothing sets its own."""
    import shutil
    from collections import namedtuple
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("usage", "total used free")(100 << 30, 0, 90 << 30))


@pytest.fixture
def registry(monkeypatch):
    from graph_engine import clip
    monkeypatch.setattr(clip, "MAX_CHUNK", 4)       # as at 1080p: many chunks, a few kept in memory
    reg = Registry()
    reg.load_entry_points()
    reg.register(costly)
    COMPUTED.clear()
    return reg


def graded(ex, reg, exposure):
    wf, _ = parse_workflow(WF.format(exposure=exposure), None, reg)
    res = ex.run(wf)
    assert res.ok, res.failed
    return res.outputs["g"]["video"].to_array()


def kept_files():
    root = config.cache_dir() / "frames"
    return sorted(p.name for p in root.glob("keep-*/*")) if root.is_dir() else []


def test_a_change_downstream_reads_the_costly_frames_back(registry, monkeypatch):
    """The editor said the temporal node was cached and computed all its frames again on every tweak."""
    monkeypatch.setattr(keep, "WORTH_BYTES_PER_SECOND", 1e15)      # whatever it costs counts as costly
    ex = Executor(registry, use_disk=False, keep_frames=True)
    first = graded(ex, registry, 0.5)
    assert sorted(COMPUTED) == list(range(40)) and kept_files()
    COMPUTED.clear()
    second = graded(ex, registry, 1.0)
    assert COMPUTED == []
    fresh = graded(Executor(registry, use_disk=False), registry, 1.0)
    assert np.array_equal(second, fresh) and not np.array_equal(second, first)
    ex.close()
    assert kept_files() == []


def test_the_editor_session_keeps_frames():
    from PySide6.QtWidgets import QApplication
    from app.editor.runner import RunController
    QApplication.instance() or QApplication([])     # the editor's own kind: later widget tests need it
    runs = RunController(Registry())
    try:
        assert runs.executor.frames is not None
    finally:
        runs.shutdown()


def test_cheap_frames_are_computed_again_not_written(registry, monkeypatch):
    """A decode or a colour table costs less than writing its frames and reading them back."""
    monkeypatch.setattr(keep, "WORTH_BYTES_PER_SECOND", 0)
    ex = Executor(registry, use_disk=False, keep_frames=True)
    graded(ex, registry, 0.5)
    COMPUTED.clear()
    graded(ex, registry, 1.0)
    assert sorted(COMPUTED) == list(range(40)) and kept_files() == [] and ex.frames.written == 0


def test_the_budget_holds_and_a_clip_let_go_takes_its_frames(registry, monkeypatch):
    monkeypatch.setattr(keep, "WORTH_BYTES_PER_SECOND", 1e15)
    chunk = 4 * 48 * 64 * 3
    ex = Executor(registry, use_disk=False, keep_frames=True)
    ex.frames.budget = 5 * chunk
    first = graded(ex, registry, 0.5)
    assert ex.frames.bytes <= 5 * chunk and len(kept_files()) == 5
    COMPUTED.clear()
    assert np.array_equal(graded(ex, registry, 0.5), first)
    ex.memory.clear()
    gc.collect()
    assert kept_files() == [] and ex.frames.bytes == 0


def test_a_chunk_deleted_under_the_session_is_computed_again(registry, monkeypatch):
    monkeypatch.setattr(keep, "WORTH_BYTES_PER_SECOND", 1e15)
    ex = Executor(registry, use_disk=False, keep_frames=True)
    first = graded(ex, registry, 0.5)
    for p in (config.cache_dir() / "frames").glob("keep-*/*"):
        p.write_bytes(b"cut short")
    COMPUTED.clear()
    assert np.array_equal(graded(ex, registry, 1.0), graded(Executor(registry, use_disk=False), registry, 1.0))
    assert sorted(set(COMPUTED)) == list(range(40))
    ex.close()
    assert np.array_equal(graded(Executor(registry, use_disk=False), registry, 0.5), first)


def test_the_alpha_is_kept_with_the_frames(tmp_path, monkeypatch):
    from graph_engine import Clip
    from graph_engine.clip import WorkMeter
    monkeypatch.setattr(keep, "WORTH_BYTES_PER_SECOND", 1e15)
    rgb = np.random.default_rng(1).integers(0, 256, (8, 6, 4, 3), dtype=np.uint8)
    alpha = np.random.default_rng(2).integers(0, 256, (8, 6, 4, 1), dtype=np.uint8)
    reads = []
    matte = Clip(8, 24, 4, 6, lambda a, b: reads.append(a) or alpha[a:b], chunk=2, channels=1)
    clip = Clip(8, 24, 4, 6, lambda a, b: rgb[a:b], chunk=2, matte=matte)
    meter = WorkMeter()
    store = keep.FrameStore(tmp_path, 1 << 20)
    kept = store.keep(meter.wrap("n", clip), meter)
    assert np.array_equal(kept.matte.to_array(), alpha) and np.array_equal(kept.to_array(), rgb)
    kept.drop_cache()
    reads.clear()
    assert np.array_equal(kept.matte.to_array(), alpha) and reads == []
    store.close()


def test_cache_clear_removes_what_a_killed_session_kept(tmp_path):
    """A crashed editor's kept frames (gigabytes) stayed until another session kept something."""
    import os
    from graph_engine.atomic import hold
    from tests.cli_run import cli
    dead, alive = tmp_path / "frames" / "keep-abcd1234", tmp_path / "frames" / "keep-live5678"
    for d in (dead, alive):
        d.mkdir(parents=True)
        (d / "0-0.raw").write_bytes(bytes(3 << 20))
        os.utime(d, (1e9, 1e9))
    lock = hold(alive)
    try:
        r = cli("cache", "clear", env={**os.environ, "KINOGRAPH_CACHE_DIR": str(tmp_path)})
    finally:
        os.close(lock)
    assert r.returncode == 0, r.stderr
    assert "removed 3.0 MB of frames that killed runs and editor sessions left" in r.stdout, r.stdout
    assert not dead.exists() and (alive / "0-0.raw").exists()


def test_a_nearly_full_disk_keeps_nothing(registry, monkeypatch):
    import shutil
    from collections import namedtuple
    monkeypatch.setattr(keep, "WORTH_BYTES_PER_SECOND", 1e15)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("usage", "total used free")(100 << 30, 0, 9 << 30))
    ex = Executor(registry, use_disk=False, keep_frames=True)
    first = graded(ex, registry, 0.5)
    COMPUTED.clear()
    assert np.array_equal(graded(ex, registry, 0.5), first) and sorted(COMPUTED) == list(range(40))
    assert kept_files() == [] and ex.frames.written == 0
