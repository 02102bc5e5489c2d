"""A render farm's night, probed as a pipeline TD would: several processes sharing one cache folder, a sweep whose
jobs reuse one sampler result while others fill the cache, and the limits that bound what a long batch keeps.
Tiny clips from test nodes, no model weights, no Ray."""
import gc
import logging
import os

from pathlib import Path

import numpy as np
import pytest

from graph_engine import Clip, Param, node
from graph_engine.api import load_workflow
from graph_engine import cache
from graph_engine.cache import DiskCache
from graph_engine.executor import Executor
from graph_engine.registry import Registry
from graph_engine.types import VIDEO

FRAMES = (80, 8, 8, 3)      # three chunks of 32 frames: a clip read back in part, as a long one is
ENTRY = int(np.prod(FRAMES))


def expected(seed):
    return np.random.default_rng(seed).integers(0, 256, FRAMES, dtype=np.uint8)


@node("farm.sampled", category="Test", expensive=True)
def sampled(ctx, seed: int = Param(1)) -> VIDEO:
    """Stands in for a sampler: expensive, so its clip goes to the disk tier and is read back from there."""
    return Clip.from_array(expected(seed), fps=8)


@node("farm.inverted", category="Test", expensive=True)
def inverted(ctx, video: VIDEO) -> VIDEO:
    """Another expensive node, reading the first: its entry is the one that fills the cache."""
    return video.map(lambda f: 255 - f)


@pytest.fixture(scope="module")
def registry():
    reg = Registry()
    reg.load_entry_points()
    reg.register(sampled)
    reg.register(inverted)
    return reg


def test_an_entry_evicted_by_another_process_is_still_read_whole_by_the_one_reading_it(tmp_path):
    """Two workers share one cache folder under a cap. One reads a sampler's clip back from its entry, a chunk at a
    time, while the other stores new entries and evicts it as the oldest: the reader's next chunk raised
    FileNotFoundError and its job failed in the middle of writing the video."""
    reader, writer = DiskCache(tmp_path, 2 * ENTRY + 4096), DiskCache(tmp_path, 2 * ENTRY + 4096)
    writer.put("a" * 32, {"video": Clip.from_array(expected(1), fps=8)}, {}, "farm.sampled")
    clip = reader.get("a" * 32)[0]["video"]
    first = clip.frames(0, 32)
    for key, seed in (("b" * 32, 2), ("c" * 32, 3)):
        writer.put(key, {"video": Clip.from_array(expected(seed), fps=8)}, {}, "farm.sampled")
    assert not reader.has("a" * 32)          # evicted: the cap holds two entries
    assert np.array_equal(np.concatenate([first, clip.frames(32, 80)]), expected(1))


def test_a_run_whose_later_entry_evicts_an_earlier_one_still_reads_it(registry, tmp_path):
    """The sampler's clip feeds an expensive node and a writer. The second entry fills the cap and evicts the first,
    which the writer had yet to read: the writer failed with FileNotFoundError on the cache's own file."""
    wf = load_workflow(registry=registry, text=f"""kinograph: 1
nodes:
  gen: {{type: farm.sampled}}
  inv: {{type: farm.inverted, inputs: {{video: gen.video}}}}
  save_inv: {{type: io.save_video, inputs: {{video: inv.video}}, params: {{path: {tmp_path}/inv.mkv, codec: ffv1}}}}
  save: {{type: io.save_video, inputs: {{video: gen.video}}, params: {{path: {tmp_path}/gen.mkv, codec: ffv1}}}}
""")
    res = Executor(registry, disk=DiskCache(tmp_path / "cache", ENTRY + 4096)).run(wf)
    assert res.ok, res.failed
    assert np.array_equal(res.outputs["gen"]["video"].to_array(), expected(1))


def open_files():
    return len(os.listdir("/proc/self/fd"))


def test_a_long_batch_keeps_a_bounded_number_of_cache_files_open(tmp_path, monkeypatch):
    """A batch's session keeps each job's sampled clip in its memory tier, and each read its entry through an open
    file: one more open file per job, and a night of small renders ran into the process's limit on open files
    (1024 on many farms). Past the bound the least recently read file is closed; it is opened again when read."""
    monkeypatch.setattr(cache, "OPEN_FRAMES", 4)
    disk = DiskCache(tmp_path, 1 << 30)
    gc.collect()                    # earlier tests' clips
    before = open_files()
    clips = []
    for seed in range(10):
        disk.put(f"{seed:032d}", {"video": Clip.from_array(expected(seed), fps=8)}, {}, "farm.sampled")
        clips.append(disk.get(f"{seed:032d}")[0]["video"])
    assert open_files() - before <= 4
    assert all(np.array_equal(c.frames(40, 80), expected(seed)[40:]) for seed, c in enumerate(clips))
    del clips
    assert open_files() <= before       # closed with their clips (and those of earlier tests, past the bound)


def test_a_result_the_memory_tier_serves_stays_recent_in_the_disk_cache(registry, tmp_path):
    """A sweep reuses one sampler result in job after job from the session's memory tier, while other jobs store
    theirs on disk. The disk's eviction goes by last use, and memory hits were no use: the result every job read was
    the first evicted, and a job after it that missed the memory tier sampled it again."""
    def job(seed):
        return load_workflow(registry=registry, text=f"kinograph: 1\nnodes:\n  gen: {{type: farm.sampled, params: "
                                                     f"{{seed: {seed}}}}}\n")
    disk = DiskCache(tmp_path / "cache", 2 * ENTRY + 4096)
    ex = Executor(registry, disk=disk)
    for seed in (1, 2, 1, 3):
        assert ex.run(job(seed)).ok
    kept = [e["key"] for e in disk.entries()]
    fresh = Executor(registry, disk=disk)
    assert "gen" not in fresh.run(job(1)).executed, kept      # seed 2's entry went, not the one in use


@pytest.mark.parametrize("value", ["abc", "", "2.5", "0"])
def test_a_wrong_models_loaded_variable_is_named_and_the_default_kept(monkeypatch, caplog, value):
    """KINOGRAPH_MODELS_LOADED from a farm's job template ('' when its variable was left blank, '2.5', 'abc') failed
    every model node with "ValueError: invalid literal for int() with base 10", naming no variable."""
    from nodes.generate import model_manager
    monkeypatch.setattr(model_manager, "_DEFAULT", None)
    monkeypatch.setenv("KINOGRAPH_MODELS_LOADED", value)
    assert model_manager.default_manager().max_loaded == 3
    assert f"KINOGRAPH_MODELS_LOADED={value!r} is not a number of models (1 or more); using 3" in caplog.text


def test_folders_a_ray_worker_inherits_are_the_drivers_own(tmp_path, monkeypatch):
    """A farm's wrapper sets KINOGRAPH_CACHE_DIR=cache (or models folders) relative to the job's folder. The driver
    read them there, but Ray workers got them as written and read them from their own working folder (where
    `ray start` ran on each node): a cache shared by no one, models not found. --cache-dir was made absolute, the
    variables were not."""
    from app.distributed import worker_env
    monkeypatch.chdir(tmp_path)
    for name in ("KINOGRAPH_CACHE_DIR", "KINOGRAPH_CONFIG_DIR", "KINOGRAPH_DATA_DIR", "KINOGRAPH_NODES_DIR",
                 "KINOGRAPH_OUTPUT_DIR"):
        monkeypatch.setenv(name, "rel/dir")
    monkeypatch.setenv("KINOGRAPH_MODELS", os.pathsep.join(["models", "/abs/models", "~/m", "$SHOW/models"]))
    monkeypatch.setenv("KINOGRAPH_KEEP_TAKES", "2")
    env = worker_env()
    assert env["KINOGRAPH_CACHE_DIR"] == env["KINOGRAPH_NODES_DIR"] == str(tmp_path / "rel" / "dir")
    assert env["KINOGRAPH_OUTPUT_DIR"] == env["KINOGRAPH_DATA_DIR"] == env["KINOGRAPH_CONFIG_DIR"]
    # what the worker expands itself (its user's home, the show's variable) is left as written
    assert env["KINOGRAPH_MODELS"].split(os.pathsep) == [str(tmp_path / "models"), "/abs/models", "~/m",
                                                         "$SHOW/models"]
    assert env["KINOGRAPH_KEEP_TAKES"] == "2"


def test_cache_clear_leaves_an_entry_another_process_is_writing(tmp_path):
    """`kinograph cache clear` from a wrangler's shell while a farm job stores a sampler's clip: the clear deleted the
    job's half-written entry, and the job lost its result (for a feedback loop, its frames were made twice). What a
    live writer holds stays, as it does for the work in progress and the frames that runs spill."""
    frames = expected(4)

    def read(a, b):
        DiskCache(tmp_path, 1 << 30).clear()         # the other process
        return frames[a:b]
    disk = DiskCache(tmp_path, 1 << 30)
    assert disk.put("d" * 32, {"video": Clip(80, 8.0, 8, 8, read)}, {}, "farm.sampled")
    got = disk.get("d" * 32)
    assert got is not None and np.array_equal(got[0]["video"].to_array(), frames)


def test_the_record_of_written_files_is_not_rewritten_at_every_output_once_past_its_size(tmp_path, monkeypatch):
    """The record of the files Kinograph wrote is compacted past 1 MB, keeping the files still there. A render
    account's farm outputs are kept, so after some 12,500 renders and takes it stayed past 1 MB: every output then
    re-read the record, checked each file it names and rewrote it (0.5-0.9 s a write here, a stat per render on the
    farm's share). It is compacted again only once it has doubled since."""
    from graph_engine import atomic
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(atomic, "LEDGER_COMPACT_BYTES", 4096)
    compactions = []
    compact = atomic._compact
    monkeypatch.setattr(atomic, "_compact", lambda ledger: (compactions.append(1), compact(ledger)))
    for i in range(200):        # about 100 bytes each
        (tmp_path / f"{i}.txt").write_text("kept")
        atomic.record_written(tmp_path / f"{i}.txt")
    assert len(compactions) <= 4
    assert all(atomic.written_by_kinograph(tmp_path / f"{i}.txt") for i in range(200))


def test_relative_folders_in_config_yaml_are_read_from_its_own_folder(tmp_path, monkeypatch):
    """A show's config (KINOGRAPH_CONFIG_DIR=/show/kinograph) names `model_dirs: [models]` and `output_dir: renders`
    beside it. They were read from the folder each command ran in: a farm task starts in a folder of its own, so its
    models were 'missing' and its output folder was another each job."""
    from graph_engine import config
    from nodes.common.models_dirs import model_dirs
    show = tmp_path / "show"
    show.mkdir()
    (show / "config.yaml").write_text("model_dirs: [models, /abs/models, ~/m]\noutput_dir: renders\n"
                                      "extra_model_paths: comfy.yaml\n")
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(show))
    monkeypatch.delenv("KINOGRAPH_MODELS", raising=False)
    monkeypatch.delenv("KINOGRAPH_OUTPUT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    config.settings.cache_clear()
    try:
        assert model_dirs()[:3] == [show / "models", Path("/abs/models"), Path("~/m").expanduser()]
        assert config.output_dir() == show / "renders"
        assert config.settings()["extra_model_paths"] == str(show / "comfy.yaml")
    finally:
        config.settings.cache_clear()


def test_storing_an_entry_does_not_read_the_whole_cache_each_time(tmp_path, monkeypatch):
    """Each entry stored listed every entry of the cache, its files and its manifest, to judge the cap: with 600
    entries a store took 0.2 s here (3,000 did not finish in 5 minutes), and a night of stills on a share paid that
    per job. Between readings it evicts by what this process knows of it (its last reading and what it stored since),
    and reads it again after storing a tenth of the cap (less when others store too), so other workers' entries count."""
    disk = DiskCache(tmp_path, 1 << 30)
    readings = []
    entries = disk.entries
    monkeypatch.setattr(disk, "entries", lambda: readings.append(1) or entries())
    for i in range(30):
        disk.put(f"{i:032d}", {"x": np.zeros(1000, np.uint8)}, {}, "farm.still")
    assert len(readings) <= 2
    small = DiskCache(tmp_path, 10_000)         # a cap of a few entries is still kept, however many are stored
    for i in range(30, 40):
        small.put(f"{i:032d}", {"x": np.zeros(1000, np.uint8)}, {}, "farm.still")
    assert small.size() <= 10_000 and small.has(f"{39:032d}")


def test_entries_eviction_cannot_remove_are_not_counted_as_gone(tmp_path, monkeypatch):
    """An entry eviction cannot remove (another user's in a shared cache folder, a read-only share) was counted as
    gone: eviction stopped there, and the cache stayed past its cap without a word. The next entry goes instead."""
    disk = DiskCache(tmp_path, 2 * ENTRY + 4096)
    stuck = disk._dir("a" * 32)
    rmtree = cache.shutil.rmtree
    monkeypatch.setattr(cache.shutil, "rmtree", lambda p, **k: None if Path(p) == stuck else rmtree(p, **k))
    for key, seed in (("a" * 32, 1), ("b" * 32, 2), ("c" * 32, 3)):
        disk.put(key, {"video": Clip.from_array(expected(seed), fps=8)}, {}, "farm.sampled")
    assert disk.has("a" * 32) and not disk.has("b" * 32) and disk.has("c" * 32)


def test_a_cache_held_past_its_cap_by_entries_it_cannot_remove_says_so_once(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, "kinograph.cache")
    disk = DiskCache(tmp_path, ENTRY + 4096)
    rmtree = cache.shutil.rmtree
    # entries (root/XX/KEY) stay; temporary folders still go
    monkeypatch.setattr(cache.shutil, "rmtree", lambda p, **k: None if Path(p).parent.parent == tmp_path
                        else rmtree(p, **k))
    for key, seed in (("a" * 32, 1), ("b" * 32, 2), ("c" * 32, 3)):
        disk.put(key, {"video": Clip.from_array(expected(seed), fps=8)}, {}, "farm.sampled")
    assert caplog.text.count("could not be removed (another user's, or a read-only folder)") == 1
