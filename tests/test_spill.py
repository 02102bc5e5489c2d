"""A clip that two nodes of one run read is computed once (graph_engine/spill.py)."""
import os
from pathlib import Path

import numpy as np
import pytest

from graph_engine import config
from graph_engine.api import Session, load_workflow
from nodes.io.images import read_image
import nodes.video.test_pattern as test_pattern
from tests.cli_run import cli

WF = """
kinograph: 1
nodes:
  p: {{type: generate.test_pattern, params: {{frames: 40, width: 64, height: 48}}}}
  g: {{type: color.grade, inputs: {{video: p.video}}, params: {{exposure: 0.5}}}}
  a: {{type: io.save_frames, inputs: {{video: g.video}}, params: {{path: {d}/a}}}}
"""
SECOND = "  b: {{type: io.save_frames, inputs: {{video: g.video}}, params: {{path: {d}/b}}}}\n"


@pytest.fixture
def pulled(monkeypatch):
    """The source frames computed, in the order the run pulled them. Chunks of 4 frames: a clip keeps its
    last few chunks in memory, and 40 frames must be more than those for a second reader to miss them."""
    from graph_engine import clip, keep
    monkeypatch.setattr(clip, "MAX_CHUNK", 4)
    # These tiny frames cost next to nothing: count them as costly, as a denoise or an upscale is.
    monkeypatch.setattr(keep, "WORTH_BYTES_PER_SECOND", 1e15)
    seen = []
    real = test_pattern.pattern_frames

    def counting(a, b, *rest):
        seen.extend(range(a, b))
        return real(a, b, *rest)

    monkeypatch.setattr(test_pattern, "pattern_frames", counting)
    return seen


def frames(folder):
    return np.stack([read_image(str(p)) for p in sorted(Path(folder).glob("*.png"))])


def spill_dirs():
    root = config.cache_dir() / "spill"
    return list(root.glob("run-*")) if root.exists() else []


def test_two_outputs_of_one_chain_compute_it_once(tmp_path, pulled):
    """Each save pulled the whole chain again: a stylization or an upscale feeding an MP4 and a PNG
    sequence cost twice its time."""
    Session(use_disk=False).run(load_workflow(text=WF.format(d=tmp_path / "one")))
    alone = frames(tmp_path / "one" / "a")
    assert sorted(pulled) == list(range(40))
    pulled.clear()
    res = Session(use_disk=False).run(load_workflow(text=(WF + SECOND).format(d=tmp_path / "two")))
    assert res.ok and sorted(pulled) == list(range(40))
    assert np.array_equal(frames(tmp_path / "two" / "a"), alone)
    assert np.array_equal(frames(tmp_path / "two" / "b"), alone)
    assert spill_dirs() == []


def test_no_room_on_disk_recomputes_instead(tmp_path, pulled, monkeypatch):
    import shutil
    from collections import namedtuple
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("usage", "total used free")(10, 10, 1000))
    res = Session(use_disk=False).run(load_workflow(text=(WF + SECOND).format(d=tmp_path)))
    assert res.ok and sorted(pulled) == sorted(list(range(40)) * 2)
    assert np.array_equal(frames(tmp_path / "a"), frames(tmp_path / "b"))


def test_a_failed_write_keeps_the_render_going(tmp_path, pulled, monkeypatch):
    from graph_engine import spill

    def full(block, path):
        Path(path).write_bytes(b"x")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spill, "_store", full)
    res = Session(use_disk=False).run(load_workflow(text=(WF + SECOND).format(d=tmp_path)))
    assert res.ok and len(frames(tmp_path / "b")) == 40
    assert np.array_equal(frames(tmp_path / "a"), frames(tmp_path / "b"))
    assert spill_dirs() == []


def test_what_a_killed_run_left_is_swept(tmp_path):
    """A run killed outright (kill -9, the OOM killer) cannot remove its folder; the next run that spills does,
    leaving alone the folder a live run holds."""
    from graph_engine.atomic import hold
    cache = tmp_path / "cache"
    root = cache / "spill"
    dead, alive = root / "run-abcd1234", root / "run-live5678"
    for d in (dead, alive):
        d.mkdir(parents=True)
        (d / "0-0.raw").write_bytes(b"x" * 10)
        os.utime(d, (1e9, 1e9))                 # older than the run below
    lock = hold(alive)
    wf = tmp_path / "w.yaml"
    wf.write_text((WF + SECOND).format(d=tmp_path))
    try:
        r = cli("run", wf, env={**os.environ, "KINOGRAPH_CACHE_DIR": str(cache)})
    finally:
        os.close(lock)
    assert r.returncode == 0, r.stderr
    assert not dead.exists() and (alive / "0-0.raw").exists()
    assert [d.name for d in root.iterdir()] == ["run-live5678"]     # the run's own folder went at its end


def test_a_cached_clip_reads_its_source_after_the_run(tmp_path, pulled):
    """The memory cache keeps clips made from the shared one; after the run its chunks are gone."""
    s = Session(use_disk=False)
    s.run(load_workflow(text=(WF + SECOND).format(d=tmp_path / "x")))
    pulled.clear()
    wf = WF + SECOND + "  r: {{type: video.reverse, inputs: {{video: g.video}}}}\n" \
                      "  c: {{type: io.save_frames, inputs: {{video: r.video}}, params: {{path: {d}/c}}}}\n"
    res = s.run(load_workflow(text=wf.format(d=tmp_path / "x")))
    assert res.ok
    assert np.array_equal(frames(tmp_path / "x" / "c"), frames(tmp_path / "x" / "a")[::-1])


def test_an_output_served_from_the_cache_is_not_a_reader(tmp_path, pulled, monkeypatch):
    """The editor re-running after one save's path changed: the other save is cached and reads nothing, so
    the chain is not written to disk for nobody."""
    from graph_engine import spill
    s = Session(use_disk=False)
    s.run(load_workflow(text=(WF + SECOND).format(d=tmp_path)))
    stored = []
    real = spill._store
    monkeypatch.setattr(spill, "_store", lambda block, path: stored.append(path) or real(block, path))
    pulled.clear()
    res = s.run(load_workflow(text=(WF + SECOND.replace("/b", "/c")).format(d=tmp_path)))
    assert res.ok and len(frames(tmp_path / "c")) == 40
    assert stored == []


def test_frames_cheaper_than_the_disk_are_computed_again_not_written(tmp_path, pulled, monkeypatch):
    """A loader read by two nodes wrote every decoded frame to disk (6 GB per 1000 1080p frames) to spare a
    decode that costs less than writing and reading them back."""
    from graph_engine import keep, spill
    monkeypatch.setattr(keep, "WORTH_BYTES_PER_SECOND", 0)
    stored = []
    monkeypatch.setattr(spill, "_store", lambda block, path: stored.append(path))
    res = Session(use_disk=False).run(load_workflow(text=(WF + SECOND).format(d=tmp_path)))
    assert res.ok and stored == [] and sorted(pulled) == sorted(list(range(40)) * 2)
    assert np.array_equal(frames(tmp_path / "a"), frames(tmp_path / "b"))
