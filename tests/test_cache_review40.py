"""Review of the farm cache (studio40): open frame files, eviction once the cache is full, `cache clear` where the
filesystem has no locks, and the models-loaded variable. Tiny entries, no weights."""
import gc
import sys
import threading

import numpy as np
import pytest

from graph_engine import Clip, cache
from graph_engine.atomic import tree_bytes
from graph_engine.cache import DiskCache

FRAMES = (8, 4, 4, 3)


def frames(seed):
    return np.random.default_rng(seed).integers(0, 256, FRAMES, dtype=np.uint8)


def test_a_clip_the_cycle_collector_frees_while_another_is_read_does_not_hang_the_process(tmp_path, monkeypatch):
    """A cached clip caught in a reference cycle (a traceback's frames hold one) is freed by the cycle collector,
    which runs at whatever allocation crosses its threshold: here the `open` of another clip's file, under the lock
    for frame files. Its finalizer took that same lock: the process hung for ever."""
    monkeypatch.setattr(cache, "_open_lock", threading.Lock())    # what a hung thread holds is this test's own
    monkeypatch.setattr(cache, "OPEN_FRAMES", 1)
    disk = DiskCache(tmp_path, 1 << 30)
    for key, seed in (("a" * 32, 1), ("b" * 32, 2)):
        disk.put(key, {"video": Clip.from_array(frames(seed), fps=8)}, {}, "test")
    live = disk.get("a" * 32)[0]["video"]
    ring = [disk.get("b" * 32)[0]["video"]]      # closes a's file (one open at most): read next, it is opened again
    ring.append(ring)
    real_open = open

    def collecting_open(*args):
        gc.collect()
        return real_open(*args)
    got = []
    gc.disable()
    try:
        del ring
        monkeypatch.setattr(cache, "open", collecting_open, raising=False)
        reader = threading.Thread(target=lambda: got.append(live.frames(0, 8)), daemon=True)
        reader.start()
        reader.join(10)
    finally:
        gc.enable()
    assert not reader.is_alive(), "reading a cached clip hung"
    assert np.array_equal(got[0], frames(1))


def test_cache_clear_where_there_are_no_file_locks_removes_what_a_killed_writer_left(tmp_path, monkeypatch):
    """Where the filesystem has no such locks (Windows: no fcntl), no temporary entry is ever 'unheld', so `cache
    clear` left every half-written entry a killed job left, for ever; it removed them before it looked for writers."""
    left = tmp_path / "tmp" / ("c" * 32 + ".abcd1234")
    left.mkdir(parents=True)
    (left / "video.frames.npy").write_bytes(b"\0" * 4096)
    monkeypatch.setitem(sys.modules, "fcntl", None)        # import fcntl fails, as on Windows
    DiskCache(tmp_path, 1 << 30).clear()
    assert not left.exists()


def test_a_full_cache_is_not_read_whole_at_every_store(tmp_path, monkeypatch):
    """A farm's cache is full after its first night, and stays so. Every store then found the cache past its cap
    (eviction leaves it just under), so every store read every entry again: the 0.2 s per store at 600 entries
    that reading only after a tenth of the cap was stored had meant to end. Once full, it still evicts by last
    use, reading the folder again once per tenth of the cap stored."""
    value = np.zeros(4000, np.uint8)
    one = 4000 + 128 + 400          # the array, its .npy header, its manifest
    disk = DiskCache(tmp_path, 40 * one)
    readings = []
    real = DiskCache.entries
    monkeypatch.setattr(DiskCache, "entries", lambda self: readings.append(1) or real(self))
    for i in range(120):
        disk.put(f"{i:032d}", {"a": value}, {}, "test")
        disk.touch(f"{0:032d}")         # one entry every job uses
    assert len(readings) <= 120 // 4 + 2
    kept = {e["key"] for e in real(disk)}
    assert f"{0:032d}" in kept and f"{119:032d}" in kept and f"{50:032d}" not in kept
    assert sum(e["bytes"] for e in real(disk)) <= disk.cap


def test_a_models_loaded_variable_of_a_digit_sign_int_cannot_read_is_named(monkeypatch, caplog):
    """'²' is a digit to str.isdigit but not a number to int(): the check let it through and every model node failed
    with "invalid literal for int()", the error the check was there to name."""
    from graph_engine.config import models_loaded
    monkeypatch.setenv("KINOGRAPH_MODELS_LOADED", "²")
    assert models_loaded() == 3
    assert "KINOGRAPH_MODELS_LOADED='²' is not a number of models" in caplog.text


def test_a_config_path_a_windows_variable_makes_absolute_is_left_as_written(monkeypatch, tmp_path):
    """config.yaml's relative paths are read from its own folder. `%APPDATA%\\ComfyUI\\extra_model_paths.yaml` (what
    a Windows user writes; the reader expands it) is not absolute as written, so it was put under config.yaml's
    folder and the file was no longer found."""
    import ntpath
    import os
    import types
    from graph_engine import config
    monkeypatch.setenv("APPDATA", "C:\\Users\\ana\\AppData\\Roaming")
    monkeypatch.setattr(config, "os", types.SimpleNamespace(path=ntpath, environ=os.environ))      # as on Windows
    written = "%APPDATA%\\ComfyUI\\extra_model_paths.yaml"
    assert config._beside(tmp_path, [written, "models"]) == [written, str(tmp_path / "models")]


@pytest.mark.parametrize("again", [3, 1])       # other bytes; the same bytes (a deterministic node's), read on
def test_a_clip_whose_entry_was_written_again_while_its_file_was_closed_is_not_read_as_a_mix(tmp_path, monkeypatch,
                                                                                            again):
    """Past the bound on open frame files, a clip's file is closed and opened again by its name when next read. If
    its entry was evicted meanwhile and the key stored again by another worker (another GPU's render of the same
    sampler, whose bytes differ), the clip went on with the other render's frames after its first chunks."""
    monkeypatch.setattr(cache, "OPEN_FRAMES", 1)
    disk = DiskCache(tmp_path, 1 << 30)
    disk.put("a" * 32, {"video": Clip.from_array(frames(1), fps=8)}, {}, "test")
    disk.put("b" * 32, {"video": Clip.from_array(frames(2), fps=8)}, {}, "test")
    clip = disk.get("a" * 32)[0]["video"]
    head = clip.frames(0, 4)
    other = disk.get("b" * 32)[0]["video"]        # closes a's file
    disk.clear()
    disk.put("a" * 32, {"video": Clip.from_array(frames(again), fps=8)}, {}, "test")
    try:
        tail = clip.frames(4, 8)
    except ValueError as e:
        assert again != 1 and "changed while" in str(e)
    else:
        assert np.array_equal(np.concatenate([head, tail]), frames(1))
    assert other.length == 8


def test_where_an_open_file_cannot_be_deleted_a_cached_clip_keeps_none_open(tmp_path, monkeypatch):
    """Windows refuses to delete a file that is open. A session's memory tier keeps its clips for the next job, each
    with its entry's file open: no eviction could remove those entries (each warned as 'another user's'), nor could
    `kinograph cache clear` while the editor was open. There a clip's file is open only while it is read."""
    import os
    monkeypatch.setattr(cache, "_HOLD_OPEN", False, raising=False)       # as on Windows
    disk = DiskCache(tmp_path, 1 << 30)
    disk.put("a" * 32, {"video": Clip.from_array(frames(1), fps=8)}, {}, "test")
    clip = disk.get("a" * 32)[0]["video"]
    assert np.array_equal(clip.frames(0, 8), frames(1))
    held = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")]
    assert not [p for p in held if p.startswith(str(tmp_path))]


def test_workers_sharing_a_cache_keep_it_near_its_cap(tmp_path):
    """Eight farm workers share one cache folder. Each read the folder again only after it had stored a tenth of the
    cap itself, not counting what the others stored meanwhile: together they held the cache two thirds past its cap,
    on a share sized for it. Each now reads it again sooner when the others store too."""
    value = np.zeros(4000, np.uint8)
    one = 4000 + 128 + 400
    workers = [DiskCache(tmp_path, 40 * one) for _ in range(8)]
    most = 0
    for i in range(160):
        workers[i % 8].put(f"{i:032d}", {"a": value}, {}, "test")
        most = max(most, tree_bytes(tmp_path))
    assert most <= 1.2 * workers[0].cap, most / workers[0].cap


def test_cache_clear_on_a_share_whose_folders_take_no_lock_removes_what_a_killed_writer_left(tmp_path, monkeypatch):
    """NFS takes these locks as fcntl ones, which a folder opened for reading cannot take (EBADF): no temporary entry
    was ever 'unheld' there, so on the farm's shared cache `cache clear` left every half-written entry for ever."""
    import errno
    import fcntl
    left = tmp_path / "tmp" / ("c" * 32 + ".abcd1234")
    left.mkdir(parents=True)

    def nfs_flock(fd, op):
        raise OSError(errno.EBADF, "Bad file descriptor")
    monkeypatch.setattr(fcntl, "flock", nfs_flock)
    DiskCache(tmp_path, 1 << 30).clear()
    assert not left.exists()
