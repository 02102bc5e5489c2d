"""A disk cache that cannot lie: swapped, truncated or edited entries are misses (and the run
gives the right frames), inputs replaced behind the cache's back change the key, and a cache
that cannot be written (disk full) costs a warning, never the video."""
import errno
import logging
import os

import numpy as np
import pytest

from graph_engine import Clip, Param, node
from graph_engine.api import load_workflow
from graph_engine.cache import DiskCache
from graph_engine.executor import Executor
from graph_engine.registry import Registry
from graph_engine.types import VIDEO


@node("test.seeded_clip", category="Test", expensive=True)
def seeded_clip(ctx, seed: int = Param(1)) -> VIDEO:
    """Stands in for sampling: expensive, so its clip goes to the disk tier."""
    return Clip.from_array(expected(seed), fps=8)


def expected(seed):
    return np.random.default_rng(seed).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def registry():
    reg = Registry()
    reg.load_entry_points()
    reg.register(seeded_clip)
    return reg


def workflow(tmp_path, seed, registry, out="out.mkv"):
    return load_workflow(registry=registry, text=f"kinograph: 1\nnodes:\n"
                              f"  gen: {{type: test.seeded_clip, params: {{seed: {seed}}}}}\n"
                              f"  save: {{type: io.save_video, inputs: {{video: gen.video}}, "
                              f"params: {{path: {tmp_path / out}, codec: ffv1}}}}\n")


def frames_of(res):
    return res.outputs["gen"]["video"].to_array()


def entry_files(root):
    return sorted(root.glob("??/*/*.frames.npy"))


def test_swapped_truncated_and_foreign_entries_are_misses_with_the_right_frames(registry, tmp_path, caplog):
    root = tmp_path / "cache"
    for seed in (1, 2):
        assert Executor(registry, disk=DiskCache(root, 1 << 30)).run(workflow(tmp_path, seed, registry)).ok
    a, b = entry_files(root)
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)          # the two entries' data swapped
    b.write_bytes(data_a)
    caplog.set_level(logging.WARNING, "kinograph.cache")
    for seed in (1, 2):
        res = Executor(registry, disk=DiskCache(root, 1 << 30)).run(workflow(tmp_path, seed, registry))
        assert res.ok and "gen" in res.executed
        assert np.array_equal(frames_of(res), expected(seed))
    assert "does not match its recorded content hash" in caplog.text
    # Truncated: a miss, not a crash of every later run.
    (a,) = [f for f in entry_files(root) if f.parent.name == a.parent.name]
    with open(a, "r+b") as f:
        f.truncate(100)
    res = Executor(registry, disk=DiskCache(root, 1 << 30)).run(workflow(tmp_path, 1, registry))
    assert res.ok and np.array_equal(frames_of(res), expected(1))
    # A whole entry folder moved under another key (data and manifest consistent with each other).
    k1, k2 = sorted(p.parent for p in root.glob("??/*/manifest.json"))
    tmp = k1.with_name("swap")
    os.rename(k1, tmp)
    os.rename(k2, k1)
    os.rename(tmp, k2)
    for seed in (1, 2):
        res = Executor(registry, disk=DiskCache(root, 1 << 30)).run(workflow(tmp_path, seed, registry))
        assert res.ok and np.array_equal(frames_of(res), expected(seed))
    assert "belongs to another key" in caplog.text
    # And a healthy entry is still served from disk.
    res = Executor(registry, disk=DiskCache(root, 1 << 30)).run(workflow(tmp_path, 1, registry))
    assert res.ok and "gen" not in res.executed and np.array_equal(frames_of(res), expected(1))


def test_an_input_replaced_with_the_same_size_and_times_changes_the_result(tmp_path):
    from PIL import Image
    img = tmp_path / "in.bmp"            # uncompressed: every 8x8 picture has the same size
    Image.fromarray(np.full((8, 8, 3), 10, np.uint8)).save(img)
    wf = load_workflow(text=f"kinograph: 1\nnodes:\n  load: {{type: io.load_image, params: {{path: {img}}}}}\n")
    ex = Executor(disk=DiskCache(tmp_path / "cache", 1 << 30))
    assert ex.run(wf).outputs["load"]["image"][0, 0, 0] == 10
    st = img.stat()
    replacement = tmp_path / "other.bmp"
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(replacement)
    os.replace(replacement, img)
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert img.stat().st_size == st.st_size and img.stat().st_mtime_ns == st.st_mtime_ns
    assert ex.run(wf).outputs["load"]["image"][0, 0, 0] == 200


def test_a_full_cache_disk_is_a_warning_and_the_video_is_still_written(registry, tmp_path, monkeypatch):
    import graph_engine.cache as cache

    def disk_full(value, folder, name):
        (folder / f"{name}.frames.npy").write_bytes(b"\x93NUMPY partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "_encode", disk_full)
    events = []
    root = tmp_path / "cache"
    res = Executor(registry, disk=DiskCache(root, 1 << 30)).run(workflow(tmp_path, 3, registry), on_event=events.append)
    assert res.ok, res.failed
    from nodes.io.video_read import load_video
    assert np.array_equal(load_video(str(tmp_path / "out.mkv")).to_array(), expected(3))
    warnings = [e["message"] for e in events if e["event"] == "log"]
    assert any("could not write the disk cache" in m and "No space left" in m for m in warnings), warnings
    assert not list(root.glob("??/*")) and not list((root / "tmp").iterdir())     # no partial entry left


def test_a_small_full_disk_for_the_cache_leaves_the_render_intact(registry, tmp_path):
    """The same on a real 1 MB tmpfs (where this machine lets the test mount one)."""
    import subprocess
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        events = []
        res = Executor(registry, disk=DiskCache(small / "cache", 1 << 30)).run(workflow(tmp_path, 4, registry),
                                                                                on_event=events.append)
        assert res.ok, res.failed
        from nodes.io.video_read import load_video
        assert np.array_equal(load_video(str(tmp_path / "out.mkv")).to_array(), expected(4))
        assert any(e["event"] == "log" and "could not write the disk cache" in e["message"] for e in events)
        assert not list((small / "cache").glob("??/*"))
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_a_cache_folder_that_is_a_file_is_one_clear_warning(registry, tmp_path, caplog):
    """--cache-dir naming a file: the read side warned 'entry ... ignored and removed: unreadable manifest
    ([Errno 20] Not a directory ...)' though there was no entry, and the write side did not say the render
    goes on nor where the cache should go."""
    caplog.set_level(logging.WARNING, "kinograph.cache")
    root = tmp_path / "cachefile"
    root.write_text("not a folder")
    events = []
    res = Executor(registry, disk=DiskCache(root / "results", 1 << 30)).run(workflow(tmp_path, 5, registry),
                                                                           on_event=events.append)
    assert res.ok, res.failed
    assert "ignored and removed" not in caplog.text
    warnings = [e["message"] for e in events if e["event"] == "log"]
    assert warnings == [f"could not write the disk cache in {root / 'results'} (Not a directory); nothing more is "
                        f"tried there this session; the render goes on without it: point --cache-dir "
                        f"(KINOGRAPH_CACHE_DIR) at another folder"]
    assert root.read_text() == "not a folder"


def test_a_batch_on_a_cache_that_cannot_be_written_says_so_once(registry, tmp_path):
    """A farm batch (one session, many cases) on a cache folder it cannot write warned for every expensive node of
    every case; a second case now renders without a word about the cache."""
    root = tmp_path / "cachefile"
    root.write_text("not a folder")
    session = Executor(registry, disk=DiskCache(root / "results", 1 << 30))
    said = []
    for seed in (5, 6, 7):
        events = []
        res = session.run(workflow(tmp_path, seed, registry, out=f"out{seed}.mkv"), on_event=events.append)
        assert res.ok, res.failed
        said.append(sum(e["event"] == "log" and "disk cache" in e["message"] for e in events))
        assert (tmp_path / f"out{seed}.mkv").stat().st_size > 0
    assert said == [1, 0, 0]


def _python(code: str, *args: str):
    """A Python process running `code` (from the checkout), stopped once it prints a line; the line."""
    import subprocess
    import sys
    from pathlib import Path
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    return proc, proc.stdout.readline().strip()


SLOW_PUT = """import sys, time
import numpy as np
import graph_engine.cache as cache
def slow(value, folder, name):
    (folder / "half.npy").write_bytes(b"0" * 100000)
    print(folder.name, flush=True)
    time.sleep(120)
cache._encode = slow
cache.DiskCache(sys.argv[1], 1 << 30).put(sys.argv[2], {"x": np.zeros(4)}, {}, "test.node")
"""


def test_an_entry_a_killed_process_was_writing_goes_at_the_next_put(tmp_path):
    """kill -9 during a disk-cache write left tmp/KEY.xxxx behind, counted by no cap (a clip's entry
    can be gigabytes), until `kinograph cache clear`. The next put in a later process removes it;
    an entry another live process is writing stays."""
    import signal
    root = tmp_path / "cache"
    live, busy = _python(SLOW_PUT, str(root), "b" * 32)
    try:
        killed, name = _python(SLOW_PUT, str(root), "a" * 32)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        (root / "tmp" / "notes").mkdir()          # not the cache's: stays
        assert sorted(p.name for p in (root / "tmp").iterdir()) == sorted([name, busy, "notes"])
        later, _ = _python("import sys\nimport numpy as np\nfrom graph_engine.cache import DiskCache\n"
                           "print(DiskCache(sys.argv[1], 1 << 30).put('c' * 32, {'x': np.zeros(4)}, {}, 't'))",
                           str(root))
        later.wait()
        assert sorted(p.name for p in (root / "tmp").iterdir()) == sorted([busy, "notes"])
        assert DiskCache(root, 1 << 30).has("c" * 32)
    finally:
        live.kill()
        live.wait()


def test_a_result_larger_than_the_cap_leaves_the_other_entries_alone(registry, tmp_path):
    """It was written, then eviction took every other entry and then it: the cache emptied for nothing."""
    root = tmp_path / "cache"
    disk = DiskCache(root, 1 << 20)
    ex = Executor(registry, disk=disk)
    assert ex.run(workflow(tmp_path, 1, registry)).ok
    before = entry_files(root)
    assert len(before) == 1
    disk.cap = 4 * 16 * 16 * 3 - 1                          # a seeded clip no longer fits
    events = []
    res = ex.run(workflow(tmp_path, 2, registry, out="two.mkv"), on_event=events.append)
    assert res.ok and np.array_equal(frames_of(res), expected(2))
    assert entry_files(root) == before and not list((root / "tmp").iterdir())
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any("not kept in the disk cache: the result takes 1 MB and the disk cache holds at most 1 MB; raise "
               "disk_cache_gb" in m for m in logs), logs


@pytest.mark.parametrize("manifest", ["null", "[]", '"text"'])
def test_a_manifest_that_is_not_an_entry_is_counted_and_evicted(tmp_path, manifest):
    """`kinograph cache info` and every eviction after a put failed with AttributeError on such a manifest."""
    root = tmp_path / "cache"
    bad = root / "ab" / ("ab" + "0" * 30)
    bad.mkdir(parents=True)
    (bad / "manifest.json").write_text(manifest)
    (bad / "a.npy").write_bytes(bytes(5000))
    os.utime(bad / "manifest.json", (1e9, 1e9))          # the least recently used
    disk = DiskCache(root, 10_000)
    assert [(e["type"], e["bytes"]) for e in disk.entries()] == [("?", 5000 + len(manifest))]
    disk.put("cd" + "1" * 30, {"a": np.zeros(6000, np.uint8)}, {}, "test.node")
    assert [e["type"] for e in disk.entries()] == ["test.node"] and not bad.exists()


def _file_resident() -> int:
    """Bytes of files mapped into this process and resident (RssFile), or -1 where /proc does not say."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssFile:"))
    except (OSError, StopIteration):
        return -1


@pytest.mark.skipif(_file_resident() < 0, reason="needs Linux's /proc/self/status RssFile")
def test_reading_a_cached_clip_through_does_not_map_it_into_memory(tmp_path):
    # A long clip in the disk cache (generate.feedback's frames) was read back through a memory map: every
    # page read stayed resident, so memory grew with the clip's length (2 GB for 300 1080p frames).
    frames = np.random.default_rng(0).integers(0, 256, (48, 128, 256, 3), np.uint8)
    cache = DiskCache(tmp_path / "cache", 1 << 30)
    cache.put("k" * 32, {"video": Clip.from_array(frames)}, {}, "test")
    clip = cache.get("k" * 32)[0]["video"]
    before = _file_resident()
    read = [block.copy() for _, block in clip.chunks()]
    grown = _file_resident() - before
    assert np.array_equal(np.concatenate(read), frames)
    assert grown < frames.nbytes // 4, f"{grown >> 10} KB of the {frames.nbytes >> 10} KB clip stayed mapped"


def test_a_cached_clip_whose_made_sound_left_the_cache_folder_is_a_miss(tmp_path):
    # LTX-2's vae.decode writes its sound under the cache folder (sound/); with that file cleaned away, a cache hit
    # gave the clip a sound that is not there, and io.save_video stopped: "the sound file ... is not there (moved or
    # deleted?): put it back" - nothing the user could put back. Now the entry is a miss and the node runs again.
    # A user's own sound file elsewhere that moved stays a hit (its loss is named when saving, theirs to fix).
    from graph_engine import Audio
    made, own = tmp_path / "cache" / "sound" / "made.wav", tmp_path / "song.wav"
    made.parent.mkdir(parents=True)
    made.write_bytes(b"x")
    disk = DiskCache(tmp_path / "cache" / "results", 1 << 30)
    frames = expected(1)
    for key, path in (("a" * 64, made), ("b" * 64, own)):
        clip = Clip.from_array(frames, fps=8).with_(audio=Audio(str(path), 0.0, 0.5))
        assert disk.put(key, {"video": clip}, {}, "vae.decode")
    assert disk.get("a" * 64) is not None
    made.unlink()
    assert disk.get("a" * 64) is None
    outputs, _ = disk.get("b" * 64)
    assert np.array_equal(outputs["video"].to_array(), frames) and outputs["video"].audio.path == str(own)
