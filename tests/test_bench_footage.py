"""The real-footage benchmark's files and its tuning set (bench/interpolation_real.py, bench/heldout.py)."""
import pytest

from bench import heldout, interpolation_real
from bench.heldout import bench_frames, shots, tuning_segments, windows


def test_tuning_windows_skip_bench_frames_and_cuts():
    # Frames 40..59 are a bench clip's, and a new shot starts at 25: no window may hold either.
    assert windows(100, set(range(40, 60)), [25], 10) == [0, 10, 25, 60, 70, 80, 90]


def test_held_out_city_clip_tuning_set_is_its_shots_between_the_bench_clips():
    assert shots("cityCC0.mpg") == (190, (116,))      # one cut, found by the node's own detector
    segs = tuning_segments(["cityCC0.mpg"])
    assert [s.first for s in segs] == [41, 66, 91, 116]
    for s in segs:
        assert bench_frames("cityCC0.mpg").isdisjoint(range(s.first, s.first + s.frames))
    frames = heldout.read_segment(segs[-1])
    assert frames.shape == (25, 360, 640, 3)            # cropped as the bench clips of the file are


def test_missing_footage_package_names_it_and_how_to_install(monkeypatch):
    monkeypatch.setitem(interpolation_real.FOOTAGE, "walk.mp4", "no-such-footage-package")
    with pytest.raises(SystemExit, match=r"no-such-footage-package is not installed.*walk\.mp4.*pip install"):
        interpolation_real.footage_path("walk.mp4")
