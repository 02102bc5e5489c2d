"""interpolate.rife: every published RIFE 4.x layout (random weights under the published names
and shapes, built by tests/rife_reference.py) is recognised from the file and computes what
an independent transcription of that release computes; files are found where ComfyUI keeps
them; validation names missing and foreign files; frames are scheduled like interpolate.flow."""
import shutil
import textwrap

import numpy as np
import pytest
import torch

from graph_engine import Clip, NodeError
from graph_engine.context import Context
from graph_engine.registry import Registry
from graph_engine.workflow import parse_workflow
from graph_engine.validate import validate
from nodes.interpolate import nodes as interp_nodes
from nodes.interpolate.ifnet import warp
from nodes.interpolate.rife import RifeSynth, compute_dtype, inspect, load_rife, rife_clip
from node_call import Nodes
from rife_reference import FAMILY, RELEASES, RefIFNet

interp = Nodes(interp_nodes)
# Widths divided by this keep every name, every channel count detection reads and the ratio
# between blocks; the full-size releases are checked too, but fewer of them (time).
SHRINK = 4


def save(state, path):
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def frames(n, size, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.rand(n, 3, size, size, generator=g)


def ref_and_file(release, tmp_path, shrink=SHRINK, suffix=".pth", prefix=""):
    torch.manual_seed(0)
    ref = RefIFNet(release, shrink).eval()
    path = save({prefix + k: v for k, v in ref.state_dict().items()}, tmp_path / f"rife_{release}{suffix}")
    return ref, path


@pytest.mark.parametrize("release", list(RELEASES))
def test_each_release_is_detected_and_matches_the_reference(release, tmp_path):
    # Alternate the containers users have: Practical-RIFE's "module." pickles and safetensors.
    suffix, prefix = (".safetensors", "") if len(release) % 2 else (".pkl", "module.")
    ref, path = ref_and_file(release, tmp_path, suffix=suffix, prefix=prefix)
    assert inspect(path).release == FAMILY[release]
    net = load_rife(str(path))
    size = net.layout.multiple(1.0)
    a, b = frames(2, size)
    t = torch.tensor([0.5, 0.3])
    with torch.no_grad():
        got, want = net(a, b, t), ref(a, b, t)
    assert got.shape == (2, 3, size, size)
    assert (got - want).abs().max() < 1e-4
    assert (got[0] - got[1]).abs().max() > 1e-3    # t is used per frame


@pytest.mark.parametrize("release,shrink", [("4.0", SHRINK), ("4.6", 1), ("4.8", SHRINK), ("4.15", SHRINK),
                                            ("4.26", 1)])
def test_ensemble_matches_the_reference(release, shrink, tmp_path):
    ref, path = ref_and_file(release, tmp_path, shrink=shrink)
    net = load_rife(str(path))
    a, b = frames(1, net.layout.multiple(1.0))
    t = torch.tensor([0.4])
    with torch.no_grad():
        got, want = net(a, b, t, ensemble=True), ref(a, b, t, ensemble=True)
        plain = net(a, b, t)
    assert (got - want).abs().max() < 1e-4
    if RELEASES[release][-1]:
        assert (got - plain).abs().max() > 1e-3
    else:   # 4.21+ were trained without it: ignored, as Practical-RIFE does
        assert torch.equal(got, plain)


@pytest.mark.parametrize("release,scale", [("4.6", 0.25), ("4.6", 4.0), ("4.15", 0.5), ("4.26", 2.0),
                                           ("4.25.lite", 0.5)])
def test_scale_matches_the_reference(release, scale, tmp_path):
    ref, path = ref_and_file(release, tmp_path)
    net = load_rife(str(path))
    size = max(net.layout.multiple(scale), net.layout.multiple(1.0))
    a, b = frames(1, size)
    t = torch.tensor([0.5])
    with torch.no_grad():
        got, want = net(a, b, t, scale), ref(a, b, t, scale)
        other = net(a, b, t, 1.0)
    assert (got - want).abs().max() < 1e-4
    assert (got - other).abs().max() > 1e-3


def test_rife40_restarts_large_motion_at_finer_scales(tmp_path):
    """4.0-4.1 run the pyramid again at doubled scales when block 1 still moves > 32 px both ways."""
    torch.manual_seed(0)
    ref = RefIFNet("4.0", SHRINK).eval()
    with torch.no_grad():
        ref.block1.lastconv.bias[:4] = 30.0      # x (2 * scale 4) = 240 px of correction
    path = save(ref.state_dict(), tmp_path / "rife40.pth")
    net = load_rife(str(path))
    a, b = frames(2, 64)
    t = torch.tensor([0.5, 0.5])
    with torch.no_grad():
        got, want = net(a, b, t), ref(a, b, t)
        ref.block1.lastconv.bias[:4] = 0.0
        calm = ref(a, b, t)
    assert (got - want).abs().max() < 1e-4
    assert (want - calm).abs().max() > 1e-2


def test_training_leftovers_are_ignored_and_foreign_parts_are_not(tmp_path):
    torch.manual_seed(0)
    state = RefIFNet("4.2", SHRINK).state_dict()
    state["contextnet.conv1.conv1.0.weight"] = torch.zeros(16, 3, 3, 3)   # 4.0-4.3 refinement net
    state["unet.conv.weight"] = torch.zeros(3, 16, 3, 3)
    assert load_rife(str(save(state, tmp_path / "rife42.pth"))).layout.release == "4.2-4.4"
    state = RefIFNet("4.22", SHRINK).state_dict()
    state["teacher.conv0.0.0.weight"] = torch.zeros(8, 3, 3, 3)           # distillation teacher
    state["caltime.0.weight"] = torch.zeros(8, 41, 3, 3)
    assert load_rife(str(save(state, tmp_path / "rife422.pth"))).layout.release == "4.21-4.23"
    state["block9.weight"] = torch.zeros(1)
    with pytest.raises(NodeError, match="rife422b.pth.*1 unexpected .e.g. block9.weight"):
        load_rife(str(save(state, tmp_path / "rife422b.pth")))


def test_unknown_layouts_say_what_they_hold_and_what_is_supported(tmp_path):
    foreign = save({"model.0.weight": torch.zeros(8, 3, 3, 3), "model.0.bias": torch.zeros(8)}, tmp_path / "esrgan.pth")
    with pytest.raises(NodeError) as e:
        load_rife(str(foreign))
    msg = str(e.value)
    assert "esrgan.pth" in msg and "no RIFE IFNet blocks" in msg and "model.0.weight (8, 3, 3, 3)" in msg
    assert "4.0-4.1" in msg and "4.25-4.26" in msg and "rife426.pth" in msg and "convert it" not in msg
    # RIFE 3.x: three blocks, no time input.
    state = {k: v for k, v in RefIFNet("4.2", SHRINK).state_dict().items() if not k.startswith("block3.")}
    with pytest.raises(NodeError, match="3 flow blocks.*RIFE 2.x/3.x"):
        load_rife(str(save(state, tmp_path / "rife39.pth")))
    # Right names, channels of no release (a 4.6 body fed encoder features it does not have).
    state = RefIFNet("4.6", SHRINK).state_dict()
    state["block0.conv0.0.0.weight"] = torch.zeros(24, 23, 3, 3)
    with pytest.raises(NodeError, match=r"odd.pth.*take \[23, 12, 12, 12\] input channels where the 4.6 layout "
                                        r"takes \[7, 12, 12, 12\]"):
        load_rife(str(save(state, tmp_path / "odd.pth")))


def test_damaged_files_name_the_file(tmp_path):
    _, good = ref_and_file("4.6", tmp_path)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(NodeError, match="truncated.pkl is not a readable checkpoint.*corrupt"):
        load_rife(str(truncated))
    # Bytes that are no pickle at all are a damaged file, not a file that would run code.
    noise = tmp_path / "rife49.pth"
    noise.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(NodeError, match=r"cannot read RIFE weights: .*rife49.pth is not a readable checkpoint") as e:
        load_rife(str(noise))
    assert "would run" not in str(e.value) and "refused" not in str(e.value)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a weight file at all")
    with pytest.raises(NodeError, match="garbage.safetensors"):
        load_rife(str(garbage))
    with pytest.raises(NodeError, match="not found"):
        load_rife(str(tmp_path / "missing.pkl"))


@pytest.fixture()
def comfy(tmp_path, monkeypatch):
    """A ComfyUI install with Frame-Interpolation's weights where that pack keeps them."""
    root = tmp_path / "ComfyUI"
    (root / "models" / "checkpoints").mkdir(parents=True)
    ckpts = root / "custom_nodes" / "ComfyUI-Frame-Interpolation" / "ckpts" / "rife"
    ckpts.mkdir(parents=True)
    torch.manual_seed(0)
    save(RefIFNet("4.8", SHRINK).state_dict(), ckpts / "rife49.pth")
    save(RefIFNet("4.26", SHRINK).state_dict(), ckpts / "rife426.pth")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(root))
    return ckpts


def test_comfyui_frame_interpolation_folder_and_names(comfy):
    assert load_rife("rife426.pth").layout.release == "4.25-4.26"
    # The node's default is that pack's default; a converted copy's name finds the original.
    assert interp_nodes.rife.__kinograph_spec__.params["model"].default == "rife49.pth"
    assert load_rife("rife49.safetensors").layout.release == "4.7-4.9"
    assert load_rife("rife49").layout.release == "4.7-4.9"
    # Trainers' containers: {"state_dict": {...}} is looked into, for validation as for loading.
    wrapped = save({"state_dict": RefIFNet("4.6", SHRINK).state_dict()}, comfy / "rife46.ckpt")
    assert inspect(wrapped).release == "4.6" and load_rife("rife46.ckpt").layout.release == "4.6"
    with pytest.raises(NodeError, match=r"rife47.pth' not found(.|\n)*RIFE files found there: rife426.pth, rife46.ckpt"):
        load_rife("rife47.pth")


@pytest.mark.parametrize("release", ["4.25.lite", "4.26", "4.26.heavy"])
def test_comfyuis_own_repackaged_files_load(release, tmp_path, monkeypatch):
    """ComfyUI's core FrameInterpolate reads Comfy-Org's rife_v4.x.safetensors from models/frame_interpolation,
    whose blocks are a list (blocks.0. ...) where Practical-RIFE has block0. ...: such a file was 'no RIFE
    IFNet blocks in it'."""
    folder = tmp_path / "ComfyUI" / "models" / "frame_interpolation"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    ref = RefIFNet(release, SHRINK).eval()
    listed = {("blocks." + k[len("block"):] if k[5:6].isdigit() and k.startswith("block") else k): v
              for k, v in ref.state_dict().items()}
    assert any(k.startswith("blocks.4.") for k in listed)
    name = f"rife_v{release.replace('.lite', '_lite').replace('.heavy', '_heavy')}.safetensors"
    save(listed, folder / name)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "ComfyUI"))
    net = load_rife(name)
    size = net.layout.multiple(1.0)
    a, b = frames(1, size)
    with torch.no_grad():
        assert (net(a, b, torch.tensor([0.5])) - ref(a, b, torch.tensor([0.5]))).abs().max() < 1e-4


def _model_problems(model):
    reg = Registry()
    reg.register(interp_nodes.rife)
    params = "" if model is None else f"params: {{model: {model!r}}}"
    wf, problems = parse_workflow(textwrap.dedent(f"""\
        kinograph: 1
        nodes:
          slow: {{type: interpolate.rife, {params}}}
        """), None, reg)
    assert not problems
    return [p.message for p in validate(wf, reg) if "model" in p.message]


def test_validate_checks_the_file_and_its_layout(comfy, tmp_path, monkeypatch):
    assert _model_problems("rife426.pth") == [] and _model_problems(None) == []   # the default is there
    (missing,) = _model_problems("rife99.pth")
    assert "rife99.pth" in missing and "not found" in missing and "rife426.pth" in missing
    foreign = save({"model.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "esrgan.pth")
    (unknown,) = _model_problems(str(foreign))
    assert "esrgan.pth is not a RIFE layout Kinograph knows" in unknown and "4.25-4.26" in unknown
    only = tmp_path / "elsewhere" / "rife"           # a model folder with rife426 alone: the default is missing
    only.mkdir(parents=True)
    shutil.copy(comfy / "rife426.pth", only)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(only.parent))
    (default,) = _model_problems(None)
    assert "rife49.pth" in default and "not found" in default


def test_precision_follows_the_device():
    assert compute_dtype("cpu", "auto") == compute_dtype("cpu", "fp16") == torch.float32
    assert compute_dtype("cuda", "auto") == compute_dtype("cuda:1", "fp16") == torch.float16
    assert compute_dtype("cuda", "bf16") == torch.bfloat16 and compute_dtype("cuda", "fp32") == torch.float32
    with pytest.raises(NodeError, match="fp8"):
        compute_dtype("cuda", "fp8")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("rife")
    torch.manual_seed(0)
    state = RefIFNet("4.6", SHRINK).state_dict()
    save({"module." + k: v for k, v in state.items()}, d / "flownet.pkl")
    save(state, d / "rife46.safetensors")
    return d


@pytest.fixture(scope="module")
def clip():
    # Unrelated random frames: no motion matches one to the next, so to the scheduler's cut check
    # (schedule.structure_mismatch) every pair is a scene cut; tests that need in-betweens of them
    # turn detection off (scene_threshold=0).
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (4, 40, 56, 3), dtype=np.uint8)


def test_batches_across_pairs_give_the_same_frames(weights, clip):
    net = load_rife(str(weights / "flownet.pkl"))
    one, many = RifeSynth(net, batch=1), RifeSynth(net, batch=5)
    jobs = [(one.prepare(clip[i], clip[i + 1]), ts) for i, ts in ((0, [0.25, 0.5, 0.75]), (1, [0.5]), (2, [0.1, 0.9]))]
    a, b = one.render_many(jobs), many.render_many(jobs)
    assert [len(f) for f in b] == [3, 1, 2]
    for fa, fb in zip(a, b):
        for x, y in zip(fa, fb):
            assert x.shape == (40, 56, 3) and np.abs(x.astype(int) - y).max() <= 1
    assert np.abs(b[0][0].astype(int) - b[0][2]).max() > 0


def test_counts_originals_and_random_access(weights, clip, monkeypatch):
    path = str(weights / "flownet.pkl")
    out = rife_clip(Clip.from_array(clip, fps=10), path, factor=3, batch=1, scene_threshold=0)
    assert out.length == (len(clip) - 1) * 3 + 1 and out.fps == 30
    frames_ = out.to_array()
    for i, src in enumerate(clip):
        assert np.array_equal(frames_[3 * i], src)
    assert not any(np.array_equal(frames_[k], frames_[k - 1]) for k in (1, 2, 4))
    monkeypatch.setattr("graph_engine.clip.MAX_CHUNK", 2)
    part = rife_clip(Clip.from_array(clip, fps=10), path, factor=3, batch=1, scene_threshold=0).frames(4, 8)
    assert np.array_equal(part, frames_[4:8])


def test_safetensors_and_pickle_give_the_same_frames(weights, clip):
    a = rife_clip(Clip.from_array(clip), str(weights / "flownet.pkl"), factor=2).frame(1)
    b = rife_clip(Clip.from_array(clip), str(weights / "rife46.safetensors"), factor=2).frame(1)
    assert np.array_equal(a, b)


def test_zero_heads_blend_the_two_frames(tmp_path, clip):
    """With the last layers zeroed every block predicts no flow and mask 0, so the output must
    be exactly the 50/50 average: an independent check of the warp-and-merge path."""
    torch.manual_seed(0)
    state = RefIFNet("4.6", SHRINK).state_dict()
    for k in state:
        if "lastconv" in k:
            state[k].zero_()
    save(state, tmp_path / "zero.pth")
    mid = rife_clip(Clip.from_array(clip[:2]), str(tmp_path / "zero.pth"), factor=2,
                    scene_threshold=0).frame(1).astype(int)
    expect = (clip[0].astype(np.float32) / 255 + clip[1].astype(np.float32) / 255) / 2 * 255 + 0.5
    assert np.abs(mid - np.floor(expect)).max() <= 1


def test_warp_moves_by_the_flow():
    img = torch.arange(5 * 7, dtype=torch.float32).view(1, 1, 5, 7)
    flow = torch.zeros(1, 2, 5, 7)
    flow[:, 0] = 1.0
    assert torch.allclose(warp(img, flow)[..., :-1], img[..., 1:])


def test_node_with_every_option(weights, clip, monkeypatch):
    (weights / "rife").mkdir(exist_ok=True)
    (weights / "rife" / "rife46.pth").write_bytes((weights / "flownet.pkl").read_bytes())
    monkeypatch.setenv("KINOGRAPH_MODELS", str(weights))
    out = interp.rife(Context("r"), Clip.from_array(clip), model="rife46.safetensors", factor=2, scene_threshold=0)
    assert out.length == 7
    opts = interp.rife(Context("r"), Clip.from_array(clip), model="rife46.pth", factor=2, ensemble=True, scale=2.0,
                       precision="fp16", batch=3, scene_threshold=0).to_array()
    assert opts.shape == (7, 40, 56, 3) and not np.array_equal(opts[1], out.frame(1))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_paths_stay_close_to_fp32(weights, clip, dtype):
    """What runs on a CUDA GPU in fp16/bf16, run here on the CPU: same frames within a few levels."""
    net = load_rife(str(weights / "flownet.pkl"))
    half = load_rife(str(weights / "flownet.pkl"), dtype=dtype)
    assert next(half.parameters()).dtype == dtype and next(net.parameters()).dtype == torch.float32
    jobs = [(RifeSynth(half).prepare(clip[0], clip[1]), [0.5])]
    got = RifeSynth(half).render_many(jobs)[0][0].astype(int)
    want = RifeSynth(net).render_many([(RifeSynth(net).prepare(clip[0], clip[1]), [0.5])])[0][0]
    assert np.abs(got - want).mean() < 2.0


def test_rife40_restart_is_decided_per_pair_in_a_batch(tmp_path):
    """Published 4.0 restarts the whole batch when any pair moves far; here each pair decides for
    itself, so a frame never depends on which other frames share its batch."""
    ref, path = ref_and_file("4.0", tmp_path)
    net = load_rife(str(path))

    def loud_at_t03(block):   # block 1 moves 100x more for the pair at t = 0.3 (input channel 6: time)
        plain = block.forward

        def forward(x, flow=None, scale=1):
            fd, md, feat = plain(x, flow, scale)
            gain = torch.where((x[:, 6].mean((1, 2)) - 0.3).abs() < 1e-3, 100.0, 1.0).view(-1, 1, 1, 1)
            return fd * gain, md, feat
        block.forward = forward

    loud_at_t03(net.block1)
    loud_at_t03(ref.block1)
    a, b = frames(2, 64)
    t = torch.tensor([0.3, 0.5])
    with torch.no_grad():
        both, ref_both = net(a, b, t), ref(a, b, t)
        alone = [ref(a[i:i + 1], b[i:i + 1], t[i:i + 1])[0] for i in range(2)]
    # Each pair as the published network computes it on its own: only the loud one restarted...
    assert (both[0] - alone[0]).abs().max() < 1e-4 and (both[1] - alone[1]).abs().max() < 1e-4
    # ...where the published batch restarts the quiet one too.
    assert (ref_both[0] - alone[0]).abs().max() < 1e-4 and (ref_both[1] - alone[1]).abs().max() > 1e-2


@pytest.fixture
def two_torch_threads():
    """Torch on two threads, as CI's serial runs had it: on one (an xdist worker's share of two cores) the reused
    features' float sums round one pixel of 6720 one level apart from a fresh run's, which bit-equality catches."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_synth_reuses_a_pairs_features_without_changing_frames(tmp_path, clip, two_torch_threads):
    _, path = ref_and_file("4.26", tmp_path)
    net = load_rife(str(path))
    synth = RifeSynth(net, batch=3)
    state = synth.prepare(clip[0], clip[1])
    got = synth.render_many([(state, [0.25, 0.5, 0.75])])[0]
    x0, x1 = state[0].expand(3, -1, -1, -1), state[1].expand(3, -1, -1, -1)
    with torch.no_grad():
        fresh = net(x0, x1, torch.tensor([0.25, 0.5, 0.75]))[:, :, :40, :56].clamp(0, 1)
    fresh = (fresh * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert all(np.array_equal(g, f) for g, f in zip(got, fresh))
