import cv2
import numpy as np
import pytest

from graph_engine import Clip, NodeError
from graph_engine.context import Context
from nodes.metrics.seam import (boundary_frames, color_drift, color_drift_node, frame_differences,
                                seam_discontinuity, seam_node)


def moving_video(n=48, size=32, seams=(), jump=40):
    """A periodic pattern sliding 1 px per frame (equal steps); at each seam the brightness jumps."""
    x = np.arange(size)[None, :, None]
    frames = []
    offset = 0
    for t in range(n):
        if t in seams:
            offset += jump
        frames.append(np.round(80 + 50 * np.sin(2 * np.pi * (x - t) / size)) + offset + np.zeros((size, 1, 3)))
    return np.stack(frames).astype(np.uint8)


def test_frame_differences_match_an_independent_computation():
    v = np.random.default_rng(0).integers(0, 256, (7, 8, 9, 3), dtype=np.uint8)
    want = [np.abs(v[t + 1].astype(int) - v[t].astype(int)).mean() for t in range(6)]
    np.testing.assert_allclose(frame_differences(v), want)
    # Streaming a Clip in chunks (boundary pairs included) gives the same series.
    np.testing.assert_allclose(frame_differences(Clip.from_array(np.concatenate([v] * 6), fps=8)),
                               np.concatenate([want, [np.abs(v[0].astype(int) - v[6].astype(int)).mean()]] * 6)[:-1])


def test_seam_ratio_is_boundary_difference_over_inside_median():
    clean = frame_differences(moving_video())
    assert seam_discontinuity(clean, [16, 32])["seam"] == pytest.approx(1.0, abs=0.05)
    seamy = frame_differences(moving_video(seams=(16, 32)))
    res = seam_discontinuity(seamy, [16, 32])
    want = np.mean([seamy[15], seamy[31]]) / np.median(np.delete(seamy, [15, 31]))
    assert res["seam"] == pytest.approx(want) and res["seam"] > 3
    assert res["boundaries"] == [16, 32]
    # The peak needs no boundaries: a jump at 20, away from the listed 16 and 32, reads as no seam there but is
    # the peak; a clip with no jump peaks near 1.
    off = frame_differences(moving_video(seams=(20,)))
    res = seam_discontinuity(off, [16, 32])
    assert res["seam"] == pytest.approx(1.0, abs=0.05)
    assert res["peak_at"] == 20 and res["peak"] == pytest.approx(off[19] / np.median(off)) and res["peak"] > 3
    assert seam_discontinuity(clean, [16, 32])["peak"] == pytest.approx(1.0, abs=0.1)
    with pytest.raises(ValueError, match="no seam boundaries"):
        seam_discontinuity(clean, [0, 48, 100])


def test_boundary_frames():
    assert boundary_frames(48, every=16) == [16, 32]
    assert boundary_frames(48, listed="12; 24, 36, 60") == [12, 24, 36]
    assert boundary_frames(40, every=16, listed=[12]) == [12, 16, 32]
    with pytest.raises(ValueError, match="separated by commas"):
        boundary_frames(40, listed="12 and 24")


def test_color_drift_rgb_and_lab():
    base = np.full((10, 4, 4, 3), 100, np.uint8)
    ramp = base + np.arange(10, dtype=np.uint8)[:, None, None, None]  # +1 grey level per frame
    res = color_drift(ramp, "rgb")
    np.testing.assert_allclose(res["drift"], np.sqrt(3) * np.arange(10), atol=1e-9)
    assert res["slope"] == pytest.approx(np.sqrt(3)) and res["max"] == pytest.approx(9 * np.sqrt(3))
    lab = color_drift(Clip.from_array(ramp, fps=8), "lab")
    ref = [cv2.cvtColor(f[:1, :1].astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[0, 0] for f in ramp]
    np.testing.assert_allclose(lab["drift"], [np.linalg.norm(r - ref[0]) for r in ref], rtol=0.02, atol=1e-3)
    assert color_drift(np.repeat(base, 1, 0), "lab")["slope"] == pytest.approx(0, abs=1e-9)


def test_nodes_report_numbers_and_series():
    ctx = Context("seam")
    clip = Clip.from_array(moving_video(seams=(16, 32)), fps=8)
    value = seam_node(ctx, clip, every=16, boundaries="")
    assert value == ctx.results["seam"] and value > 3
    assert len(ctx.results["frame_diff"]) == 47 and ctx.results["boundaries"] == [16, 32]
    with pytest.raises(NodeError, match="no boundary falls inside"):
        seam_node(Context("s"), clip, every=0, boundaries="")
    ctx = Context("drift")
    slope = color_drift_node(ctx, clip, space="rgb")
    assert slope == ctx.results["slope"] and len(ctx.results["drift"]) == 48
