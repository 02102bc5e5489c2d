import numpy as np
import pytest
import torch

from nodes.consistency.context_windows import (
    FUSE_METHODS, SCHEDULES, ContextOptions, context_windows, fuse_weights, fuse_window_outputs, latent_context,
    ordered_halving, step_for_sigma, window_boundaries)


def r(a, b):
    return list(range(a, b + 1))


def test_static_matches_hand_computed_windows():
    assert context_windows("static", 40, 16, 4) == [r(0, 15), r(12, 27), r(24, 39)]
    # The last window is pulled back to end at N-1 and keeps its full length.
    assert context_windows("static", 48, 16, 4) == [r(0, 15), r(12, 27), r(24, 39), r(32, 47)]
    assert context_windows("static", 20, 8, 0) == [r(0, 7), r(8, 15), r(12, 19)]
    assert context_windows("static", 16, 16, 4) == [r(0, 15)]
    assert context_windows("static", 10, 16, 4) == [r(0, 9)]


def test_static_closed_loop_wraps_the_last_window():
    assert context_windows("static", 40, 16, 4, closed_loop=True) == [
        r(0, 15), r(12, 27), r(24, 39), r(36, 39) + r(0, 11)]


def test_batched_is_non_overlapping_chunks():
    assert context_windows("batched", 40, 16, 4) == [r(0, 15), r(16, 31), r(32, 39)]
    assert context_windows("batched", 64, 16, 4) == [r(0, 15), r(16, 31), r(32, 47), r(48, 63)]


def test_window_boundaries_are_where_windows_begin_or_end():
    assert window_boundaries(context_windows("static", 64, 16, 4), 64) == [12, 16, 24, 28, 36, 40, 48, 52]
    assert window_boundaries(context_windows("batched", 64, 16, 0), 64) == [16, 32, 48]
    # The pulled-back last window begins at 32 and the one before it ends at 40.
    assert window_boundaries(context_windows("static", 48, 16, 4), 48) == [12, 16, 24, 28, 32, 40]
    # A closed loop's wrapped window (36..39, 0..11) begins at 36 and ends at 12; one window has no seam.
    assert window_boundaries(context_windows("static", 40, 16, 4, closed_loop=True), 40) == [12, 16, 24, 28, 36]
    assert window_boundaries(context_windows("static", 10, 16, 4), 10) == []


def test_ordered_halving_sequence():
    assert [ordered_halving(i) for i in range(8)] == [0, .5, .25, .75, .125, .625, .375, .875]


def test_uniform_looped_shifts_by_ordered_halving():
    assert context_windows("uniform_looped", 40, 16, 4, step=0) == [r(0, 15), r(12, 27), r(24, 39)]
    # step 1: pad = round(40 * 0.5) = 20; starts 20, 32, 44; indices wrap mod 40.
    assert context_windows("uniform_looped", 40, 16, 4, step=1) == [
        r(20, 35), r(32, 39) + r(0, 7), r(4, 19)]
    # step 2: pad = 10; starts 10, 22, 34.
    assert context_windows("uniform_looped", 40, 16, 4, step=2) == [
        r(10, 25), r(22, 37), r(34, 39) + r(0, 9)]
    assert context_windows("uniform_looped", 40, 16, 4, closed_loop=True, step=0) == [
        r(0, 15), r(12, 27), r(24, 39), r(36, 39) + r(0, 11)]


def test_uniform_standard_moves_wrapped_windows_to_the_end():
    assert context_windows("uniform_standard", 40, 16, 4, step=0) == [r(0, 15), r(12, 27), r(24, 39)]
    # The looped window 32..39,0..7 moves to 24..39; frame 0 is then uncovered by the next
    # window (4..19), so a window starting at 0 is inserted.
    assert context_windows("uniform_standard", 40, 16, 4, step=1) == [
        r(20, 35), r(24, 39), r(0, 15), r(4, 19)]


def _reference_uniform(n, length, overlap, stride, step, closed_loop, standard):
    """The uniform schedules as published (AnimateDiff-Evolved's create_windows_uniform_looped/_standard, from
    animatediff-cli's `uniform`), written out again step by step: windows shifted by round(N * ordered_halving(step)),
    dilated levels 1, 2, 4...; standard moves a wrapped window to end at N-1, inserts a window at the frame it
    wrapped to if the next window misses it, and drops repeats. One deliberate difference: the level cap is
    floor(log2(N/L)) + 1 (the published ceil allows a level whose windows span more than N frames)."""
    if n < length or (standard and n == length):
        return [list(range(n))]
    levels = min(stride, int(np.floor(np.log2(n / length))) + 1)
    windows = []
    for dilation in [2 ** k for k in range(levels)]:
        pad = int(round(n * ordered_halving(step)))
        end = n + pad + (0 if closed_loop and not standard else -overlap)
        for j in range(int(ordered_halving(step) * dilation) + pad, end, length * dilation - overlap):
            windows.append([e % n for e in range(j, j + length * dilation, dilation)])
    if not standard:
        return windows
    drop, i = [], 0
    while i < len(windows):
        w = windows[i]
        rolled = [k for k in range(1, len(w)) if w[k] < w[k - 1]]
        if rolled:
            wrapped_to = w[rolled[0]]
            shifted = [(v - w[0]) % n for v in w]
            windows[i] = [v + n - 1 - shifted[-1] for v in shifted]
            if wrapped_to not in windows[(i + 1) % len(windows)]:
                windows.insert(i + 1, list(range(wrapped_to, wrapped_to + length)))
        if any(windows[i] == windows[p] for p in range(i)):
            drop.append(i)
        i += 1
    return [w for k, w in enumerate(windows) if k not in drop]


def test_uniform_schedules_equal_the_published_algorithm():
    for n in (17, 31, 40, 64, 101):
        for length, overlap in ((8, 2), (12, 0), (16, 4), (16, 12)):
            for stride in (1, 3):
                for step in range(8):
                    for closed in (False, True):
                        assert context_windows("uniform_looped", n, length, overlap, stride, closed, step) == \
                            _reference_uniform(n, length, overlap, stride, step, closed, False), (n, length, step)
                    assert context_windows("uniform_standard", n, length, overlap, stride, False, step) == \
                        _reference_uniform(n, length, overlap, stride, step, False, True), (n, length, step)


def test_stride_adds_dilated_windows_that_fit():
    wins = context_windows("uniform_looped", 40, 16, 4, stride=3, step=0)
    # floor(log2(40/16)) + 1 = 2 levels: steps 1 and 2 (step 4 would span 64 > 40 frames).
    assert wins[:3] == [r(0, 15), r(12, 27), r(24, 39)]
    assert wins[3:] == [list(range(0, 31, 2)), [i % 40 for i in range(28, 59, 2)]]
    assert all(len(set(w)) == len(w) == 16 for w in wins)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("n", [17, 40, 48, 64, 101])
def test_every_frame_covered_at_every_step(schedule, n):
    for step in range(6):
        for closed in (False, True):
            wins = context_windows(schedule, n, 16, 4, stride=2, closed_loop=closed, step=step)
            covered = np.zeros(n, bool)
            for w in wins:
                assert all(0 <= i < n for i in w)
                assert len(w) == (16 if schedule != "batched" else len(w))
                covered[w] = True
            assert covered.all(), (schedule, n, step, closed)


def test_fuse_weight_shapes():
    assert fuse_weights("flat", r(0, 5), 20, 2).tolist() == [1] * 6
    assert fuse_weights("pyramid", r(0, 5), 20, 2).tolist() == [1, 2, 3, 3, 2, 1]
    assert fuse_weights("pyramid", r(0, 4), 20, 2).tolist() == [1, 2, 3, 2, 1]
    # Inner window: ramps on both sides; outer edges at frame 0 / N-1 stay at 1.
    np.testing.assert_allclose(fuse_weights("overlap_linear", r(4, 11), 20, 3),
                               [.25, .5, .75, 1, 1, .75, .5, .25])
    np.testing.assert_allclose(fuse_weights("overlap_linear", r(0, 7), 20, 3), [1, 1, 1, 1, 1, .75, .5, .25])
    np.testing.assert_allclose(fuse_weights("overlap_linear", r(12, 19), 20, 3), [.25, .5, .75, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(fuse_weights("overlap_linear", r(0, 7), 20, 3, looped=True)[:3], [.25, .5, .75])


def _total_weights(options, n, step):
    windows, weights = options.plan(n, step)
    cnt = np.zeros(n)
    for w, wt in zip(windows, weights):
        assert np.all(wt > 0)
        cnt[w] += wt
    return cnt


def test_overlap_linear_static_weights_are_a_partition_of_unity():
    # Windows overlapping by exactly O frames: the ramps cross-fade to a total of 1 everywhere.
    cnt = _total_weights(ContextOptions("static", 16, 4, fuse="overlap_linear"), 40, 0)
    np.testing.assert_allclose(cnt, np.ones(40))
    cnt = _total_weights(ContextOptions("static", 16, 4, fuse="flat"), 40, 0)
    assert cnt.tolist() == [1] * 12 + [2] * 4 + [1] * 8 + [2] * 4 + [1] * 12


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("fuse", FUSE_METHODS)
def test_fused_weights_positive_and_fusion_exact(schedule, fuse):
    n = 45
    x = np.random.default_rng(0).standard_normal((1, 2, n, 3, 3))
    opts = ContextOptions(schedule, 16, 4, stride=2, closed_loop=schedule == "uniform_looped", fuse=fuse)
    for step in range(4):
        assert np.all(_total_weights(opts, n, step) > 0)
        windows, weights = opts.plan(n, step)
        # A per-frame model (output depends only on its own frame) is reproduced exactly by fusion.
        outs = [np.take(x, w, axis=2) * 3 for w in windows]
        np.testing.assert_allclose(fuse_window_outputs(outs, windows, weights, n), x * 3, rtol=1e-12)


def test_fusion_is_weighted_average_torch_and_numpy_agree():
    n = 20
    windows = context_windows("static", n, 8, 3)
    weights = [fuse_weights("pyramid", w, n, 3) for w in windows]
    outs = [np.full((1, 1, len(w), 2, 2), float(k + 1)) for k, w in enumerate(windows)]
    fused = fuse_window_outputs(outs, windows, weights, n)
    acc, cnt = np.zeros(n), np.zeros(n)
    for k, (w, wt) in enumerate(zip(windows, weights)):
        for i, f in enumerate(w):
            acc[f] += (k + 1) * wt[i]
            cnt[f] += wt[i]
    np.testing.assert_allclose(fused[0, 0, :, 0, 0], acc / cnt)
    fused_t = fuse_window_outputs([torch.from_numpy(o).float() for o in outs], windows, weights, n)
    assert isinstance(fused_t, torch.Tensor) and fused_t.dtype == torch.float32
    np.testing.assert_allclose(fused_t.numpy(), fused, rtol=1e-6)


def test_fusion_rejects_uncovered_frames():
    with pytest.raises(ValueError, match="uncovered"):
        fuse_window_outputs([np.ones((1, 1, 4, 1, 1))], [r(0, 3)], [np.ones(4)], 6)


def test_latent_axis_mapping():
    assert latent_context(81, 16, 4) == (21, 4)
    assert latent_context(16, 4, 1) == (16, 4)
    windows, _ = ContextOptions("static", 33, 16).plan(41, 0, compression=4)
    # 33 pixel frames -> 9 latent, overlap 16 -> 4 latent, over 41 latent frames (161 pixel).
    assert windows == [r(s, s + 8) for s in range(0, 31, 5)] + [r(32, 40)]


def test_step_for_sigma():
    sigmas = [1.0, 0.8, 0.5, 0.2, 0.0]
    assert [step_for_sigma(sigmas, s) for s in (1.0, 0.8, 0.65, 0.2, 0.1)] == [0, 1, 1, 3, 3]


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="overlap"):
        context_windows("static", 40, 16, 16)
    with pytest.raises(ValueError, match="schedule"):
        context_windows("spiral", 40, 16, 4)
    with pytest.raises(ValueError, match="fuse"):
        ContextOptions(fuse="median")


def test_windowed_model_fn_runs_each_window_and_fuses():
    from nodes.consistency.context_sampling import windowed_model_fn
    from nodes.generate.samplers import flow_sigmas, sample_flow_euler

    sigmas = flow_sigmas(4)
    seen = []

    def per_frame_model(x, sigma, frames):
        assert x.shape[2] == len(frames) <= 16
        seen.append((float(sigma), list(frames)))
        return x * 0.5 - float(sigma)

    opts = ContextOptions("uniform_looped", 16, 4, fuse="pyramid")
    x = torch.randn(1, 3, 40, 4, 4, generator=torch.Generator().manual_seed(0))
    wrapped = windowed_model_fn(per_frame_model, opts, sigmas, frame_aware=True)
    out = sample_flow_euler(wrapped, x, sigmas)
    # A frame-local model gives the same result through windows as on all frames at once.
    ref = sample_flow_euler(lambda x, s: x * 0.5 - float(s), x, sigmas)
    torch.testing.assert_close(out, ref)
    by_step = {}
    for s, idx in seen:
        by_step.setdefault(s, []).append(idx)
    assert [by_step[float(s)] for s in sigmas[:4]] == [context_windows("uniform_looped", 40, 16, 4, step=i)
                                                       for i in range(4)]


def test_windowed_model_fn_limits_temporal_reach():
    from nodes.consistency.context_sampling import windowed_model_fn

    def temporal_mean(x, sigma):
        return x.mean(dim=2, keepdim=True).expand_as(x)

    x = torch.arange(40.0).reshape(1, 1, 40, 1, 1)
    out = windowed_model_fn(temporal_mean, ContextOptions("batched", 16, 0), [1.0, 0.0])(x, 1.0)
    assert out.flatten().tolist() == [7.5] * 16 + [23.5] * 16 + [35.5] * 8
    short = torch.arange(8.0).reshape(1, 1, 8, 1, 1)
    assert windowed_model_fn(temporal_mean, ContextOptions("static", 16, 4), [1.0, 0.0])(short, 1.0).flatten().tolist() == [3.5] * 8


def test_cross_faded_windows_spread_a_seam_over_the_overlap():
    """The seam a model leaves between windows, through the real wrapper and fusion: a model whose output is its
    window's mean frame (all a window sees, so neighbouring windows disagree by their means' difference, 12 on a
    ramp whose windows start 12 apart). Batched chunks jump by it in one frame; static windows overlapping by O
    cross-fade it in O + 1 equal steps with overlap_linear (and pyramid, whose ratios are the same there), in two
    halves with flat weights; frames inside one window do not move."""
    from nodes.consistency.context_sampling import windowed_model_fn

    def window_mean(x, sigma):
        return x.mean(dim=2, keepdim=True).expand_as(x)

    ramp = torch.arange(64.0).reshape(1, 1, 64, 1, 1)

    def steps(options):
        out = windowed_model_fn(window_mean, options, [1.0, 0.0])(ramp, 1.0).flatten()
        return out.diff()

    batched = steps(ContextOptions("batched", 16, 0))
    assert sorted(batched.tolist())[-3:] == [16.0] * 3 and float(batched.abs().sum()) == 48.0
    for fuse in ("overlap_linear", "pyramid"):
        fused = steps(ContextOptions("static", 16, 4, fuse=fuse))
        torch.testing.assert_close(fused[11:16], torch.full((5,), 12 / 5))      # frames 11 -> 16: 5 equal steps
        assert float(fused.abs().max()) == pytest.approx(12 / 5) and float(fused[:11].abs().max()) == 0
    flat = steps(ContextOptions("static", 16, 4, fuse="flat"))
    assert float(flat.abs().max()) == pytest.approx(6.0)


# -- through the engine, with a tiny random-weight kinograph-mini ---------------------------------

def build_tiny_mini(folder):
    """A kinograph-mini folder with small random weights (all of them, so frames interact)."""
    import json
    from nodes.mini.model import KinographMini
    from nodes.mini.text import MiniTextEncoder
    torch.manual_seed(0)
    model = KinographMini(channels=(16, 16, 16), text_dim=16, cond_dim=16, heads=2)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 1:
                p.normal_(0, p[0].numel() ** -0.5)
    model.save_pretrained(folder / "transformer")
    MiniTextEncoder(dim=16, layers=1, heads=2).save_pretrained(folder / "text_encoder")
    (folder / "model_index.json").write_text(json.dumps({"family": "mini"}))
    return folder


def mini_graph(folder, frames=24, noise="noise.repeat", noise_params="{seed: 3, length: 12}",
               wrapper="context.windows", wrapper_params="{}", steps=2):
    from graph_engine.api import load_workflow
    return load_workflow(text=f"""
kinograph: 1
nodes:
  load: {{type: load.mini, params: {{path: {folder}}}}}
  prompt: {{type: encode.text, inputs: {{text_encoder: load.text_encoder}}, params: {{text: a red circle}}}}
  empty: {{type: latent.empty, inputs: {{vae: load.vae}}, params: {{frames: {frames}, width: 32, height: 32}}}}
  noise: {{type: {noise}, inputs: {{latent: empty.latent}}, params: {noise_params}}}
  wrap: {{type: {wrapper}, inputs: {{model: load.model}}, params: {wrapper_params}}}
  sample:
    type: generate.sample
    inputs: {{model: wrap.model, positive: prompt.positive, negative: prompt.negative, latent: empty.latent,
             noise: noise.noise}}
    params: {{steps: {steps}, sampler: flow_euler, seed: 1}}
""")


def run_latent(wf, events=None):
    from graph_engine.api import Session
    res = Session(use_disk=False).run(wf, use_cache=False, on_event=events)
    assert res.ok, res.failed
    return res.outputs["sample"]["latent"].samples


@pytest.fixture(scope="module")
def tiny_mini(tmp_path_factory):
    return build_tiny_mini(tmp_path_factory.mktemp("mini"))


def test_context_windows_node_splits_the_sampling_into_windows(tiny_mini):
    # Noise whose second 12 frames repeat the first: batched 12-frame windows see identical
    # inputs and give identical halves; one 24-frame window lets the halves interact.
    wf = mini_graph(tiny_mini, wrapper_params="{schedule: batched, length: 12}")
    x = run_latent(wf)
    assert x.shape == (1, 3, 24, 32, 32)
    torch.testing.assert_close(x[:, :, :12], x[:, :, 12:], rtol=0, atol=1e-4)
    wf.set("wrap.length", 24)
    whole = run_latent(wf)
    assert float((whole[:, :, :12] - whole[:, :, 12:]).abs().max()) > 0.1
    wf.set("wrap.length", 12)
    wf.set("wrap.schedule", "static")
    fused = run_latent(wf)
    assert float((fused[:, :, :12] - fused[:, :, 12:]).abs().max()) > 0.1


def test_same_seed_bit_identical_different_seed_different(tiny_mini):
    wf = mini_graph(tiny_mini, noise="noise.freenoise", noise_params="{seed: 5, length: 12, overlap: 4}",
                    wrapper_params="{schedule: uniform_standard, length: 12, overlap: 4, fuse: pyramid}")
    a, b = run_latent(wf), run_latent(wf)
    assert torch.equal(a, b)
    wf.set("noise.seed", 6)
    assert not torch.equal(a, run_latent(wf))


def test_noise_independent_is_what_sample_draws_itself(tiny_mini):
    wf = mini_graph(tiny_mini, frames=8, noise="noise.independent", noise_params="{seed: 1}",
                    wrapper_params="{length: 100}")
    with_node = run_latent(wf)
    wf.graph.disconnect("sample", "noise")
    assert torch.equal(with_node, run_latent(wf))


def test_context_windows_node_rejects_bad_overlap(tiny_mini):
    """Refused before anything runs (it failed once the model had loaded)."""
    import pytest
    from graph_engine.api import Session
    from graph_engine.errors import WorkflowError
    with pytest.raises(WorkflowError) as e:
        Session(use_disk=False).run(mini_graph(tiny_mini, wrapper_params="{length: 8, overlap: 8}"), use_cache=False)
    assert [(p.node, p.message.split(":")[0]) for p in e.value.problems] == [("wrap", "overlap")]


@pytest.mark.parametrize("params,problem", [
    ("{schedule: static, stride: 3}", ("stride", "3 has no effect on static windows: dilated windows are a uniform "
                                                 "schedule's; choose uniform_standard or uniform_looped, or set stride "
                                                 "to 1")),
    ("{schedule: uniform_standard, closed_loop: true}",
     ("closed_loop", "uniform_standard windows never wrap from the last frames to the first, so the clip would not "
                     "loop; choose static or uniform_looped, or turn closed_loop off")),
    ("{schedule: batched, closed_loop: true}",
     ("closed_loop", "batched windows never wrap from the last frames to the first, so the clip would not loop; "
                     "choose static or uniform_looped, or turn closed_loop off")),
])
def test_context_windows_node_refuses_settings_its_schedule_ignores(tiny_mini, params, problem):
    """Stride on static or batched windows and closed_loop on uniform_standard or batched ones ran as if unset:
    a loop that did not loop, dilated windows that never came. Refused at validation, naming the schedules that
    take them; the same settings on a schedule that takes them pass."""
    from graph_engine.api import Session
    from graph_engine.errors import WorkflowError
    wf = mini_graph(tiny_mini, wrapper_params="{length: 12, overlap: 4}")
    for key, value in (kv.split(": ") for kv in params.strip("{}").split(", ")):
        wf.set(f"wrap.{key}", {"true": True}.get(value, int(value) if value.isdigit() else value))
    with pytest.raises(WorkflowError) as e:
        Session(use_disk=False).run(wf, use_cache=False)
    assert [(p.node, p.message) for p in e.value.problems] == [("wrap", ": ".join(problem))]
    wf.set("wrap.schedule", "uniform_looped")
    assert run_latent(wf).shape[2] == 24


def test_long_context_example_makes_48_frames_from_16_frame_windows(tiny_mini, tmp_path):
    from pathlib import Path
    from graph_engine.api import Session, load_workflow
    wf = load_workflow(Path(__file__).parent.parent / "examples" / "tiny" / "long_context.yaml")
    wf.set("load.path", str(tiny_mini))
    wf.set("sample.steps", 2)
    wf.set("save.path", str(tmp_path / "long.mp4"))
    res = Session(use_disk=False).run(wf, use_cache=False)
    assert res.ok, res.failed
    assert res.outputs["decode"]["video"].length == 48
    assert (tmp_path / "long.mp4").stat().st_size > 0
    # the seams it reports are where its windows begin or end (it measured where they begin only, and before that
    # at 16 and 32, the batched chunks' boundaries)
    from nodes.consistency.context_windows import context_windows, window_boundaries
    p = wf.graph.nodes["windows"].params
    bounds = window_boundaries(context_windows(p["schedule"], 48, p["length"], p["overlap"]), 48)
    assert res.results["seam"]["boundaries"] == bounds == [12, 16, 24, 28, 32, 40] and res.results["seam"]["seam"] > 0


def test_pinned_latent_start():
    from nodes.consistency.wrappers import pinned_latent_start
    assert pinned_latent_start(0, 4, 16, 1) == 0 and pinned_latent_start(12, 4, 16, 1) == 12
    assert pinned_latent_start(5, 2, 21, 4) == 2  # pixel frame 5 lies in latent frame 2 (pixels 5..8)
    assert pinned_latent_start(-1, 2, 21, 4) == 19 and pinned_latent_start(-1, 1, 16, 1) == 15


def test_pin_wrapper_replaces_predictions_and_shows_pinned_frames_at_the_chosen_noise():
    from types import SimpleNamespace
    from nodes.consistency.wrappers import PinWrapper
    known = torch.full((1, 2, 2, 3, 3), 5.0)
    seen = []

    def model_fn(x, sigma, frames=None):
        seen.append(x.clone())
        return torch.zeros_like(x)

    info = SimpleNamespace(num_frames=6, time_factor=1, flow=True)
    x = torch.randn(1, 2, 6, 3, 3, generator=torch.Generator().manual_seed(0))
    s = 0.5
    noisy = (1 - s) * known + s * x[:, :, 4:]  # pinned frames 4, 5 on their noising path
    x_in = torch.cat([x[:, :, :4], noisy], 2)
    for level, want in ((1.0, noisy), (0.5, 0.75 * known + 0.25 * x[:, :, 4:]), (0.0, known)):
        den = PinWrapper(known, -1, level)(model_fn, info)(x_in, s)
        assert torch.equal(den[:, :, 4:], known) and not den[:, :, :4].any()
        torch.testing.assert_close(seen[-1][:, :, 4:], want)
        assert torch.equal(seen[-1][:, :, :4], x_in[:, :, :4])
    # Inside a context window only the window's own pinned frames are touched.
    den = PinWrapper(known, -1)(model_fn, info)(x_in[:, :, 3:5], s, frames=[3, 4])
    assert torch.equal(den[:, :, 1], known[:, :, 0]) and not den[:, :, 0].any()


def test_pin_frames_continues_a_chunk_from_its_last_frames(tiny_mini):
    from graph_engine.api import Session, load_workflow
    wf = load_workflow(text=f"""
kinograph: 1
nodes:
  load: {{type: load.mini, params: {{path: {tiny_mini}}}}}
  prompt: {{type: encode.text, inputs: {{text_encoder: load.text_encoder}}, params: {{text: a red circle}}}}
  empty: {{type: latent.empty, inputs: {{vae: load.vae}}, params: {{frames: 8, width: 32, height: 32}}}}
  first:
    type: generate.sample
    inputs: {{model: load.model, positive: prompt.positive, negative: prompt.negative, latent: empty.latent}}
    params: {{steps: 3, sampler: flow_euler, seed: 1}}
  decode1: {{type: vae.decode, inputs: {{vae: load.vae, latent: first.latent}}}}
  tail: {{type: video.trim, inputs: {{video: decode1.video}}, params: {{start: 5, count: 3}}}}
  tail_latent: {{type: vae.encode, inputs: {{vae: load.vae, video: tail.video}}}}
  pin: {{type: condition.pin_frames, inputs: {{model: load.model, latent: tail_latent.latent}}, params: {{start: 0}}}}
  second:
    type: generate.sample
    inputs: {{model: pin.model, positive: prompt.positive, negative: prompt.negative, latent: empty.latent}}
    params: {{steps: 3, sampler: flow_euler, seed: 2}}
""")
    res = Session(use_disk=False).run(wf, use_cache=False)
    assert res.ok, res.failed
    known = res.outputs["tail_latent"]["latent"].samples
    second = res.outputs["second"]["latent"].samples
    torch.testing.assert_close(second[:, :, :3], known, rtol=0, atol=1e-5)
    free = res.outputs["first"]["latent"].samples
    assert float((second[:, :, 3:] - free[:, :, 3:]).abs().max()) > 0.1
    wf.set("pin.start", 6)
    res = Session(use_disk=False).run(wf, use_cache=False)
    assert not res.ok and "do not fit" in res.failed["second"]


@pytest.mark.parametrize("name,frames,size", [("long_autoregressive", 40, 48), ("long_keyframes", 46, 48),
                                              ("cascade", 61, 192)])
def test_long_video_scheme_examples_run(tiny_mini, tmp_path, name, frames, size):
    from pathlib import Path
    from graph_engine.api import Session, load_workflow
    wf = load_workflow(Path(__file__).parent.parent / "examples" / f"{name}.yaml")
    wf.set("load.path", str(tiny_mini))
    for nid, inst in wf.graph.nodes.items():
        if inst.type == "generate.sample":
            wf.set(f"{nid}.steps", 2)
    wf.set("save.path", str(tmp_path / "out.mp4"))
    res = Session(use_disk=False).run(wf, use_cache=False)
    assert res.ok, res.failed
    src = wf.graph.inputs["save"]["video"]
    clip = res.outputs[src[0]][src[1]]
    assert (clip.length, clip.width, clip.height) == (frames, size, size)
    assert (tmp_path / "out.mp4").stat().st_size > 0
    if name == "long_autoregressive":
        # Each chunk starts with the previous chunk's last frames, so the motion carries on.
        prev_tail = res.outputs["video1"]["video"].frames(12, 16).astype(int)
        assert np.abs(res.outputs["video2"]["video"].frames(0, 4) - prev_tail).max() <= 1


def test_node_choices_match_the_scheduler():
    # The node module keeps its own copies so `kinograph validate` never imports the maths.
    from nodes.consistency import sampling_nodes
    assert sampling_nodes.SCHEDULES == SCHEDULES and sampling_nodes.FUSE_METHODS == FUSE_METHODS


def test_a_prompt_schedule_one_pass_cannot_follow_is_named(tiny_mini):
    """kinograph-mini (like Wan, LTX...) reads one prompt for all the frames of a pass: '0: a red circle,
    20: a blue circle' sampled in one pass drew every frame from the schedule's average, without a word.
    The run now says so and what makes the schedule work; windows shorter than the clip need no note."""
    def notes(length):
        events = []
        wf = mini_graph(tiny_mini, wrapper_params=f"{{length: {length}, overlap: 4}}")
        wf.set("prompt.text", "0: a red circle, 20: a blue circle")
        run_latent(wf, events.append)
        return [e["message"] for e in events if e["event"] == "log" and e["node"] == "sample"]
    assert notes(24) == [
        "the prompt schedule's 2 keyframes do not change this clip over time: the kinograph-mini model reads one "
        "prompt for all the frames it samples at once, so every frame gets the schedule's average. Put "
        "context.windows (shorter than the clip) before sample to give each window its part of the schedule"]
    assert notes(12) == []



def test_uniform_standard_windows_are_not_compared_with_every_window_before_them(monkeypatch):
    """Each window was looked up in the list of those kept (`w not in out`): 34 s at 25,000 latent frames of
    length 1 (a 100,000-frame latent), at each of the run's steps and in the estimate before it. Counted as
    comparisons of windows, of which a set of them needs none."""
    import nodes.consistency.context_windows as cw
    compared = [0]

    class Window(list):
        __hash__ = None

        def __eq__(self, other):
            compared[0] += 1
            return list.__eq__(self, other)

    raw = cw._uniform_raw
    monkeypatch.setattr(cw, "_uniform_raw", lambda *a: [Window(w) for w in raw(*a)])
    n = 2000
    windows = context_windows("uniform_standard", n, 1, 0, 1)
    assert compared[0] < n, compared[0]
    assert sorted(map(list, windows)) == [[i] for i in range(n)]
