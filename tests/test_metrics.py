"""Metric nodes: agreement with scikit-image, temporal measures on known motion, report files, learned metrics."""
import json

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.footage import footage
from graph_engine import Clip, NodeError
from graph_engine.context import Context
from nodes.metrics import nodes as metric_nodes
from node_call import Nodes

W, H = 80, 56


metrics = Nodes(metric_nodes)


@pytest.fixture(scope="module")
def clips():
    clean = footage(6, W, H, seed=1)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    return clean, noisy


def test_psnr_and_ssim_agree_with_scikit_image(clips):
    clean, noisy = clips
    ctx = Context("psnr")
    value = metrics.psnr(ctx, Clip.from_array(noisy), Clip.from_array(clean))
    ref = [peak_signal_noise_ratio(c, n, data_range=255) for c, n in zip(clean, noisy)]
    np.testing.assert_allclose(ctx.results["per_frame"], ref, atol=0.01)
    assert value == pytest.approx(np.mean(ref), abs=0.01) and ctx.results["value"] == value
    ctx = Context("ssim")
    value = metrics.ssim(ctx, Clip.from_array(noisy), Clip.from_array(clean))
    ref = [structural_similarity(c, n, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False) for c, n in zip(clean, noisy)]
    np.testing.assert_allclose(ctx.results["per_frame"], ref, atol=0.001)
    assert value == pytest.approx(np.mean(ref), abs=0.001)
    assert metrics.psnr(Context("p"), Clip.from_array(clean), Clip.from_array(clean)) == 100.0


def _psnr_from_definition(a, b):
    """10 log10(255^2 / MSE) over the R, G, B values, written out here (not a library's)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return np.inf if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_frames_identical_to_the_reference_do_not_raise_the_mean_psnr(clips):
    """An interpolated clip keeps its source frames unchanged: each scored 100 dB and went into the mean, so
    one identical frame in six lifted the reported PSNR by ~10 dB over the frames that were actually made.
    They are named and left out of the mean; ffmpeg's pooled `average` is reported beside it."""
    clean, noisy = clips
    mixed = noisy.copy()
    mixed[2] = clean[2]
    events = []
    ctx = Context("p", emit=events.append)
    value = metrics.psnr(ctx, Clip.from_array(mixed), Clip.from_array(clean))
    per_frame = [_psnr_from_definition(m, c) for m, c in zip(mixed, clean)]
    assert per_frame[2] == np.inf
    assert value == pytest.approx(np.mean([v for v in per_frame if np.isfinite(v)]), abs=1e-6)
    assert ctx.results["per_frame"][2] == 100.0 and ctx.results["identical"] == [2]
    pooled = 10 * np.log10(255.0 ** 2 / np.mean((mixed.astype(np.float64) - clean) ** 2))
    assert ctx.results["psnr_of_mean_mse"] == pytest.approx(pooled, abs=1e-6)
    assert ctx.results["unit"] == "dB" and "R, G, B" in ctx.results["definition"]
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert logs == [f"p: 1 of 6 frames are identical to the reference (PSNR infinite, shown as 100 dB): the value "
                    f"is the mean of the others; PSNR of the mean MSE over all frames (ffmpeg's average): "
                    f"{pooled:.2f} dB"]
    ctx = Context("s")          # identical frames: SSIM exactly 1, PSNR the cap (every frame identical)
    assert metrics.ssim(ctx, Clip.from_array(clean), Clip.from_array(clean)) == 1.0
    ctx = Context("p")
    assert metrics.psnr(ctx, Clip.from_array(clean), Clip.from_array(clean)) == 100.0
    assert ctx.results["identical_note"] == ("every frame is identical to the reference (PSNR infinite): the value "
                                             "is the 100 dB cap")


def test_psnr_and_ssim_on_bt601_luma_as_super_resolution_papers_measure(clips, tmp_path):
    """Only RGB could be measured; super-resolution results are published on BT.601 Y (16-235), so no number
    here could be set beside them. channels=y measures Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255."""
    import csv
    clean, noisy = clips

    def y(f):
        f = f.astype(np.float64)
        return 16 + (65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]) / 255

    ctx = Context("p")
    value = metrics.psnr(ctx, Clip.from_array(noisy), Clip.from_array(clean), channels="y")
    ref = [10 * np.log10(255.0 ** 2 / np.mean((y(n) - y(c)) ** 2)) for n, c in zip(noisy, clean)]
    np.testing.assert_allclose(ctx.results["per_frame"], ref, atol=1e-3)
    assert value == pytest.approx(np.mean(ref), abs=1e-3) and ctx.results["channels"] == "y"
    assert "BT.601 studio-range luma" in ctx.results["definition"] and "R, G, B" not in ctx.results["definition"]
    ctx = Context("s")
    metrics.ssim(ctx, Clip.from_array(noisy), Clip.from_array(clean), channels="y")
    ref = [structural_similarity(y(c), y(n), data_range=255, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False) for c, n in zip(clean, noisy)]
    np.testing.assert_allclose(ctx.results["per_frame"], ref, atol=1e-4)
    path = tmp_path / "y.json"
    metrics.report(Context("r"), Clip.from_array(noisy), reference=Clip.from_array(clean), source=None,
                   path=str(path), metrics="psnr, sharpness", channels="y")
    assert next(csv.reader(path.with_suffix(".csv").open())) == ["frame", "time (s)", "psnr Y (dB)", "sharpness"]


def test_metrics_name_mismatched_clips(clips, tmp_path):
    """A mismatch read 'the clips differ (Clip(6 frames, 80x56, 24 fps) vs Clip(...))': the reader had to compare
    two reprs, and was not told which was the video. A one-frame clip gave pairwise metrics a null in the report
    with no reason, and metrics.seam advised "set 'every' below 1"."""
    from nodes.metrics.seam import seam_node
    clean, noisy = clips
    with pytest.raises(NodeError) as e:
        metrics.psnr(Context("p"), Clip.from_array(clean), Clip.from_array(clean[:3]))
    assert str(e.value) == ("PSNR: the video has 6 frames and the reference 3 (at 24 and 24 fps); compare clips of "
                            "the same length: trim one first (video.trim) so frame i of each shows the same moment")
    with pytest.raises(NodeError) as e:
        metrics.ssim(Context("s"), Clip.from_array(clean), Clip.from_array(clean[:, :40]))
    assert str(e.value) == ("SSIM: the video is 80x56 and the reference 80x40; frames are compared pixel by pixel, "
                            "so resize one to the other's size first (video.resize)")
    with pytest.raises(NodeError, match=r"^warp error: the video is 80x56 and the source 80x40; "):
        metrics.warp_error(Context("w"), Clip.from_array(clean), source=Clip.from_array(clean[:, :40]))
    with pytest.raises(NodeError) as e:
        metrics.flicker(Context("f"), Clip.from_array(clean[:1]))
    assert str(e.value) == ("f: flicker compares each frame with the one before, so it needs at least two frames; "
                            "the clip has 1")
    with pytest.raises(NodeError, match=r"the video has 1 frame; a seam is a step between frames, .* at least 3"):
        seam_node(Context("s"), Clip.from_array(clean[:1]), every=16, boundaries="")
    path = tmp_path / "one.json"
    n = metrics.report(Context("r"), Clip.from_array(noisy[:1]), reference=Clip.from_array(clean[:1]), source=None,
                       path=str(path))
    doc = json.loads(path.read_text())
    assert n == 3 and set(doc["metrics"]) == {"psnr", "ssim", "sharpness"}
    assert doc["skipped"]["flicker"] == "compares each frame with the one before; the clip has 1 frame"



def test_clips_of_one_duration_at_two_rates_are_told_to_resample(clips):
    """A 12-frame 24 fps render against its 6-frame 12 fps source was told to 'resize or trim one first':
    trimming compares different moments. Same duration, two rates: resample."""
    clean, noisy = clips
    doubled = np.repeat(noisy, 2, axis=0)
    with pytest.raises(NodeError) as e:
        metrics.psnr(Context("p"), Clip.from_array(doubled, fps=24.0), Clip.from_array(clean, fps=12.0))
    assert str(e.value) == ("PSNR: the clips last as long but have 12 and 6 frames, at 24 and 12 fps; resample one "
                            "to the other's rate (video.fps) to compare frame with frame")
    with pytest.raises(NodeError, match="trim one first"):          # a different duration: trim
        metrics.psnr(Context("p"), Clip.from_array(doubled, fps=24.0), Clip.from_array(clean[:3], fps=12.0))


def test_frames_too_small_for_ssim_say_so_and_the_report_keeps_the_rest(tmp_path):
    """SSIM on 8x8 frames ended in 'ValueError: SSIM needs frames of at least 11x11 pixels', and metrics.report,
    which measures SSIM by default, lost every other number with it."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + 5, 0, 255).astype(np.uint8)
    with pytest.raises(NodeError, match=r"SSIM needs frames of at least 11x11 pixels \(its window\), the clips are "
                                        r"10x8: enlarge both the same way \(upscale.resize\) or measure PSNR"):
        metrics.ssim(Context("s"), Clip.from_array(a), Clip.from_array(b))
    ctx = Context("r")
    metrics.report(ctx, Clip.from_array(a), reference=Clip.from_array(b), source=None, path=str(tmp_path / "m.json"))
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["skipped"] == {"ssim": "frames smaller than 11x11 pixels (SSIM's window)"}
    assert ctx.results["skipped"] == ["ssim"]
    ref = [peak_signal_noise_ratio(y, x, data_range=255) for x, y in zip(a, b)]
    assert doc["metrics"]["psnr"]["per_frame"] == pytest.approx(ref)


def test_clips_at_two_frame_rates_are_compared_but_said_to_be(clips):
    """A 12 fps clip scored against a 24 fps reference of as many frames compared different moments and
    printed a number with no word about it."""
    clean, noisy = clips
    events = []
    ctx = Context("p", emit=events.append)
    value = metrics.psnr(ctx, Clip.from_array(noisy, fps=12.0), Clip.from_array(clean, fps=24.0))
    assert value == metrics.psnr(Context("q"), Clip.from_array(noisy), Clip.from_array(clean))
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert logs == ["PSNR: the clips run at 12 and 24 fps; frame i is compared with frame i, which are different "
                    "moments. Resample one (video.fps) to compare like with like"]
    events.clear()
    metrics.ssim(ctx, Clip.from_array(noisy), Clip.from_array(clean))
    assert not [e for e in events if e["event"] == "log"]

def test_flicker_and_sharpness_on_known_changes(clips):
    clean, _ = clips
    flat = np.full((4, 32, 32, 3), 100, np.uint8)
    flat[1] += 10
    ctx = Context("f")
    assert metrics.flicker(ctx, Clip.from_array(flat)) == pytest.approx(20 / 3, abs=1e-3)
    assert ctx.results["per_frame"] == pytest.approx([10, 10, 0], abs=1e-3)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2) for f in clean])
    assert metrics.sharpness(Context("s"), Clip.from_array(clean)) > \
        2 * metrics.sharpness(Context("s"), Clip.from_array(blurred))


def _regional_flicker(frames, grid=4):
    """Flicker of a still clip from the definition: per region of a grid, |change of mean BT.709 luma|; the mean
    over regions, then over frame pairs (no motion, so no flow is needed)."""
    luma = frames.astype(np.float64) @ [0.2126, 0.7152, 0.0722]
    h, w = luma.shape[1:]
    means = np.stack([[[luma[t, h * i // grid:h * (i + 1) // grid, w * j // grid:w * (j + 1) // grid].mean()
                        for j in range(grid)] for i in range(grid)] for t in range(len(luma))])
    return np.abs(np.diff(means, axis=0)).mean()


def test_flicker_reads_local_flicker_and_is_not_fooled_by_a_frame_gain_or_by_motion():
    """Flicker was the change of the whole frame's mean luma: the very quantity restore.deflicker evens out with
    one gain a frame. On a clip whose left half flickered by 12 levels, the deflicker left both halves
    flickering (by 7 and 4 levels, opposite ways) and the metric read 1.7, a flicker all but gone; a pan read as
    flicker too. It now averages the motion-compensated change over a grid of regions."""
    from nodes.restore import nodes as restore_nodes
    still = np.repeat(footage(1, 160, 120, seed=3, noise=0.0), 8, axis=0).astype(np.int16)
    whole = still.copy()
    whole[1::2] += 8
    assert metrics.flicker(Context("f"), Clip.from_array(np.clip(whole, 0, 255).astype(np.uint8))) == \
        pytest.approx(8, abs=0.3)
    half = still.copy()
    half[1::2, :, :80] += 12
    half = np.clip(half, 0, 255).astype(np.uint8)
    assert metrics.flicker(Context("f"), Clip.from_array(half)) == pytest.approx(_regional_flicker(half), abs=0.3)
    # One gain a frame (restore.deflicker's tone gain, local off: what it did before it corrected regions).
    evened = Nodes(restore_nodes).deflicker(Context("d"), Clip.from_array(half), tone="gain", local=False).to_array()
    for side in (evened[:, :, :80], evened[:, :, 80:]):     # what the deflicker left: both halves flicker
        assert np.abs(np.diff(side.astype(np.float64).mean(axis=(1, 2, 3)))).mean() > 3
    assert metrics.flicker(Context("f"), Clip.from_array(evened)) == \
        pytest.approx(_regional_flicker(evened), abs=0.3) and _regional_flicker(evened) > 4
    base = footage(1, 200, 120, seed=2, noise=0.0)[0]
    pan = np.stack([base[:, 3 * i:3 * i + 120] for i in range(6)])
    assert metrics.flicker(Context("f"), Clip.from_array(pan)) < 0.5


def test_motion_and_warp_error_follow_the_motion():
    base = footage(1, 160, 120, seed=2, noise=0.0)[0]
    shifts = [cv2.warpAffine(base, np.float64([[1, 0, 2 * i], [0, 1, 0]]), (160, 120),
                             borderMode=cv2.BORDER_REFLECT101) for i in range(5)]
    moving = Clip.from_array(np.stack(shifts)[:, 20:-20, 20:-20].copy())
    ctx = Context("m")
    assert metrics.motion(ctx, moving) == pytest.approx(2.0, abs=0.3)
    assert ctx.results["dynamic_degree"] == 1.0
    steady = metrics.warp_error(Context("w"), moving)
    rng = np.random.default_rng(1)
    frames = moving.to_array()
    shimmer = np.clip(frames + rng.normal(0, 15, frames.shape), 0, 255).astype(np.uint8)
    # Flow from the clean source: the noise is judged as inconsistency, not as motion.
    assert metrics.warp_error(Context("w"), Clip.from_array(shimmer), source=moving) > 10 * steady


def test_warp_error_can_judge_with_a_flow_independent_of_dis(monkeypatch):
    """E_warp was measured with DIS flow only, the flow stylize.temporal carries its frames along: a DIS-based
    filter was judged by its own kind of flow. flow=farneback judges without DIS (here DIS would raise)."""
    from nodes.metrics import measures

    def no_dis(*a, **k):
        raise AssertionError("DIS flow used")

    base = footage(1, 160, 120, seed=2, noise=0.0)[0]
    shifts = [cv2.warpAffine(base, np.float64([[1, 0, 2 * i], [0, 1, 0]]), (160, 120),
                             borderMode=cv2.BORDER_REFLECT101) for i in range(5)]
    moving = np.stack(shifts)[:, 20:-20, 20:-20].copy()
    dis = metrics.warp_error(Context("w"), Clip.from_array(moving))
    monkeypatch.setattr(measures, "estimate_flow", no_dis)
    ctx = Context("w")
    steady = metrics.warp_error(ctx, Clip.from_array(moving), flow="farneback")
    assert ctx.results["flow"] == "farneback" and steady < 3 * dis + 1e-4
    flick = moving.astype(np.int16)
    flick[1::2] += 10                       # every pair: a 10-level step, (10/255)^2 on top of the motion's own
    flicker = metrics.warp_error(Context("w"), Clip.from_array(np.clip(flick, 0, 255).astype(np.uint8)),
                                 source=Clip.from_array(moving), flow="farneback")
    assert flicker - steady == pytest.approx((10 / 255) ** 2, rel=0.15)


def _unrelated_pair():
    """Two frames of noise that share nothing: the forward-backward flow check finds no pixel visible in both."""
    return np.random.default_rng(5).integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)


def test_warp_error_does_not_score_a_pair_it_cannot_measure_as_steady(tmp_path):
    """With no pixel visible in both frames, E_warp was an average over nothing, reported as 0: a perfectly
    steady pair. Such a pair is now not measured: left out of the mean and named, and a clip of nothing else
    is an error."""
    from nodes.metrics.measures import warp_error
    a, b = _unrelated_pair()
    assert np.isnan(warp_error(a, b, a, b))
    with pytest.raises(NodeError, match="no frame could be measured: the flow check found almost no pixel "
                                        "visible in both frames"):
        metrics.warp_error(Context("w"), Clip.from_array(np.stack([a, b])))
    # Steady frames, then the unrelated pair: the value is the steady pairs' mean, the pair is named.
    steady = footage(1, 48, 32, seed=2, noise=0.0)[0]
    frames = np.stack([steady, steady, steady, a, b])
    logs = []
    ctx = Context("w", emit=lambda e: logs.append(e.get("message")))
    value = metrics.warp_error(ctx, Clip.from_array(frames))
    series = ctx.results["per_frame"]
    assert series[:2] == [0.0, 0.0] and series[3] is None and ctx.results["unmeasured"] == [4]
    assert value == pytest.approx(np.mean(series[:3]))
    assert any("not measured" in (m or "") and "4" in m for m in logs)
    path = tmp_path / "r.json"
    metrics.report(Context("r"), Clip.from_array(frames), reference=None, source=None, path=str(path),
                   metrics="warp_error, flicker")
    doc = json.loads(path.read_text())["metrics"]["warp_error"]          # valid JSON: no NaN in it
    assert doc["value"] == pytest.approx(value) and doc["per_frame"] == series and doc["unmeasured"] == [4]
    assert "not measured" in doc["note"] and cv2.imread(str(path.with_suffix(".png"))) is not None
    metrics.report(Context("r"), Clip.from_array(np.stack([a, b])), reference=None, source=None, path=str(path),
                   metrics="warp_error")
    doc = json.loads(path.read_text())["metrics"]["warp_error"]
    assert doc["value"] is None and doc["per_frame"] == [None] and doc["note"].endswith("no value")


def test_report_writes_json_and_chart(clips, tmp_path):
    clean, noisy = clips
    ctx = Context("r")
    path = tmp_path / "m" / "report.json"
    n = metrics.report(ctx, Clip.from_array(noisy), reference=Clip.from_array(clean), source=None, path=str(path))
    doc = json.loads(path.read_text())
    assert n == 6 and set(doc["metrics"]) == {"psnr", "ssim", "warp_error", "flicker", "sharpness", "motion"}
    assert len(doc["metrics"]["psnr"]["per_frame"]) == 6 and len(doc["metrics"]["motion"]["per_frame"]) == 5
    chart = cv2.imread(str(path.with_suffix(".png")))
    assert chart is not None and chart.shape[0] > 6 * 100 and chart.std() > 10
    assert ctx.written == [str(path), str(path.with_suffix(".csv")), str(path.with_suffix(".png"))]
    ctx = Context("r")
    metrics.report(ctx, Clip.from_array(noisy), reference=None, source=None, path=str(path), metrics="psnr, flicker")
    assert ctx.results["skipped"] == ["psnr"] and list(ctx.results["metrics"]) == ["flicker"]
    with pytest.raises(NodeError, match="unknown metric"):
        metrics.report(Context("r"), Clip.from_array(noisy), reference=None, source=None, path=str(path),
                       metrics="psnr, vmaf")


def test_report_carries_units_definitions_and_a_table_a_spreadsheet_opens(clips, tmp_path):
    """The report gave numbers without units or definitions (RGB or Y? dB? mean or pooled?) and only as nested
    JSON: nothing a spreadsheet opens. Each metric now has its unit and definition, and a CSV beside the JSON
    has a row a frame and a column a metric headed with its unit."""
    import csv
    clean, noisy = clips
    path = tmp_path / "r.json"
    metrics.report(Context("r"), Clip.from_array(noisy), reference=Clip.from_array(clean), source=None,
                   path=str(path), metrics="psnr, ssim, flicker, motion")
    doc = json.loads(path.read_text())["metrics"]
    assert {k: v["unit"] for k, v in doc.items()} == {"psnr": "dB", "ssim": "", "flicker": "levels", "motion": "px"}
    assert all(v["definition"] for v in doc.values())
    assert "Wang et al. 2004" in doc["ssim"]["definition"] and "sigma 1.5" in doc["ssim"]["definition"]
    rows = list(csv.reader(path.with_suffix(".csv").read_text().splitlines()))
    assert rows[0] == ["frame", "time (s)", "psnr (dB)", "ssim", "flicker (levels)", "motion (px)"]
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(6)] and rows[2][1] == "0.0416667"
    psnr = [_psnr_from_definition(n, c) for n, c in zip(noisy, clean)]
    assert [float(r[2]) for r in rows[1:]] == pytest.approx(psnr, abs=1e-9)
    assert rows[1][4] == "" and rows[1][5] == ""            # pairwise metrics start at frame 1
    assert [float(r[4]) for r in rows[2:]] == pytest.approx(doc["flicker"]["per_frame"])
    with pytest.raises(NodeError, match=r"names the JSON file .* give it a .json ending"):
        metrics.report(Context("r"), Clip.from_array(noisy), reference=None, source=None,
                       path=str(tmp_path / "r.png"), metrics="flicker")


def test_chart_titles_carry_unit_and_reported_value_and_identical_frames_do_not_set_the_scale():
    """The chart's PSNR panel said 'mean 49.42' for a report value of 32.56 (it averaged the 100 dB of identical
    frames) and drew those frames at 100 dB, which pressed every other frame flat against the bottom."""
    from nodes.metrics.chart import MARGIN_L, MARGIN_R, MARGIN_T, PANEL_H, WIDTH, draw_chart, panel_label
    values = [100.0, 30.0, 31.0, 100.0, 32.0]
    meta = {"psnr": {"value": 31.0, "unit": "dB", "identical": [0, 3]}}
    assert panel_label("psnr", np.asarray(values), meta["psnr"]) == \
        "psnr (dB)   mean 31   (2 identical to the reference: infinite, not drawn)"
    assert panel_label("flicker", np.asarray([1.0, np.nan, 3.0]), {"unit": "levels"}) == \
        "flicker (levels)   mean 2   (1 not measured)"
    img = draw_chart({"psnr": values}, meta=meta)
    top, bottom = MARGIN_T, PANEL_H - 8
    x = round(MARGIN_L + 2 / 4 * (WIDTH - MARGIN_R - MARGIN_L))     # frame 2, at 31 dB: mid-panel
    curve = np.flatnonzero(np.abs(img[top:bottom, x].astype(int) - (31, 119, 180)).sum(-1) < 60) + top
    assert len(curve) and abs(curve.mean() - (top + bottom) / 2) < 10


def test_report_pulls_each_frame_once(clips, tmp_path):
    # A clip is lazy: every pass over it computes its chain upstream again. Measured one metric after another,
    # metrics.report's six metrics ran a restore -> interpolate chain six times over.
    clean, noisy = clips
    pulled = {"video": 0, "reference": 0}

    def counted(frames, name):
        def reader(a, b):
            pulled[name] += b - a
            return frames[a:b]
        return Clip(len(frames), 24, frames.shape[2], frames.shape[1], reader, chunk=1)

    video, reference = counted(noisy, "video"), counted(clean, "reference")
    metrics.report(Context("r"), video, reference=reference, source=None, path=str(tmp_path / "r.json"))
    assert pulled == {"video": len(noisy), "reference": len(clean)}
    doc = json.loads((tmp_path / "r.json").read_text())["metrics"]
    assert doc["psnr"]["value"] == pytest.approx(metrics.psnr(Context("p"), Clip.from_array(noisy),
                                                              Clip.from_array(clean)))
    assert doc["motion"]["value"] == pytest.approx(metrics.motion(Context("m"), Clip.from_array(noisy)))


def test_learned_metrics_say_what_is_missing(clips):
    clean, _ = clips
    c = Clip.from_array(clean)
    with pytest.raises(NodeError, match="AlexNet backbone weights not found.*never downloaded"):
        metrics.lpips(Context("l"), c, c, weights="", backbone="/nope/alexnet.pth")
    with pytest.raises(NodeError, match="I3D detector not found"):
        metrics.fvd(Context("f"), c, c, detector="")
    with pytest.raises(NodeError, match="CLIP model folder not found"):
        metrics.clip_score(Context("c"), c, prompt="a cat", model="/nope/clip")


def test_lpips_with_random_weights(clips, tmp_path):
    from nodes.metrics.learned import LPIPS
    torch.manual_seed(0)
    net = LPIPS()
    torch.save({f"features.{k}": v for k, v in net.features.state_dict().items()}, tmp_path / "alex.pth")
    torch.save({f"lin{k}.model.1.weight": lin.weight.detach().abs() for k, lin in enumerate(net.lins)},
               tmp_path / "lin.pth")
    clean, noisy = clips
    kw = dict(weights=str(tmp_path / "lin.pth"), backbone=str(tmp_path / "alex.pth"))
    assert metrics.lpips(Context("l"), Clip.from_array(clean), Clip.from_array(clean), **kw) == pytest.approx(0, abs=1e-6)
    assert metrics.lpips(Context("l"), Clip.from_array(noisy), Clip.from_array(clean), **kw) > 0
    with pytest.raises(NodeError, match="does not hold LPIPS head"):
        metrics.lpips(Context("l"), Clip.from_array(clean), Clip.from_array(clean), weights=kw["backbone"],
                      backbone=kw["backbone"])


class TinyI3D(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 8, 3, stride=2)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = True):
        return self.conv(x).mean((2, 3, 4))


# The public I3D detector is TorchScript, which torch now marks deprecated; loading it is still the point.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fvd_with_a_scripted_detector(clips, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "i3d.pt"
    torch.jit.script(TinyI3D()).save(str(path))
    clean, noisy = clips
    same = metrics.fvd(Context("f"), Clip.from_array(clean), Clip.from_array(clean), detector=str(path),
                       clip_frames=3, stride=1)
    other = metrics.fvd(Context("f"), Clip.from_array(noisy[::-1].copy()), Clip.from_array(clean),
                        detector=str(path), clip_frames=3, stride=1)
    assert same == pytest.approx(0, abs=1e-6) and other > same


def test_clip_score_with_a_tiny_random_model(clips, tmp_path):
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch], vocab[ch + "</w>"] = len(vocab), len(vocab) + 1
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")).save_pretrained(tmp_path / "clip")
    cfg = CLIPConfig(text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=32),
                     vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, image_size=32, patch_size=8), projection_dim=8)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(tmp_path / "clip")
    ctx = Context("c")
    value = metrics.clip_score(ctx, Clip.from_array(clips[0]), prompt="a cat", model=str(tmp_path / "clip"))
    assert 0 <= value <= 100 and len(ctx.results["per_frame"]) == len(clips[0])
