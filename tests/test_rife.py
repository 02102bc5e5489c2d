"""interpolate.rife: the own IFNet loads weights in the published layout (random weights here),
schedules frames like interpolate.flow, and rejects damaged or foreign files by name."""
import numpy as np
import pytest
import torch

from graph_engine import Clip, NodeError
from graph_engine.context import Context
from nodes.interpolate import nodes as interp_nodes
from nodes.interpolate.ifnet import IFNet, warp
from nodes.interpolate.rife import rife_clip
from node_call import Nodes

interp = Nodes(interp_nodes)
WIDTHS = (16, 16, 8, 8)   # the published file uses (192, 128, 96, 64); names are the same


def random_state(seed=0, prefix="module."):
    torch.manual_seed(seed)
    net = IFNet(WIDTHS)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    return {prefix + k: v.clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("rife")
    state = random_state()
    torch.save(state, d / "flownet.pkl")
    from safetensors.torch import save_file
    save_file({k[len("module."):]: v for k, v in state.items()}, str(d / "rife.safetensors"))
    return d


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (4, 40, 56, 3), dtype=np.uint8)


def test_published_parameter_names():
    names = set(IFNet().state_dict())
    for key in ("block0.conv0.0.0.weight", "block0.conv0.1.0.bias", "block0.convblock.7.conv.weight",
                "block0.convblock.0.beta", "block3.lastconv.0.weight", "block3.lastconv.0.bias"):
        assert key in names
    assert IFNet().state_dict()["block1.conv0.0.0.weight"].shape == (64, 12, 3, 3)


def test_counts_originals_and_random_access(weights, clip, monkeypatch):
    path = str(weights / "flownet.pkl")
    out = rife_clip(Clip.from_array(clip, fps=10), path, factor=3)
    assert out.length == (len(clip) - 1) * 3 + 1 and out.fps == 30
    frames = out.to_array()
    for i, src in enumerate(clip):
        assert np.array_equal(frames[3 * i], src)
    assert not any(np.array_equal(frames[k], frames[k - 1]) for k in (1, 2, 4))
    monkeypatch.setattr("graph_engine.clip.MAX_CHUNK", 2)
    part = rife_clip(Clip.from_array(clip, fps=10), path, factor=3).frames(4, 8)
    assert np.array_equal(part, frames[4:8])


def test_safetensors_and_pickle_give_the_same_frames(weights, clip):
    a = rife_clip(Clip.from_array(clip), str(weights / "flownet.pkl"), factor=2).frame(1)
    b = rife_clip(Clip.from_array(clip), str(weights / "rife.safetensors"), factor=2).frame(1)
    assert np.array_equal(a, b)


def test_zero_heads_blend_the_two_frames(tmp_path, clip):
    """With the last layers zeroed every block predicts no flow and mask 0, so the output must
    be exactly the 50/50 average: an independent check of the warp-and-merge path."""
    state = random_state(prefix="")
    for k in state:
        if "lastconv" in k:
            state[k].zero_()
    torch.save(state, tmp_path / "zero.pth")
    mid = rife_clip(Clip.from_array(clip[:2]), str(tmp_path / "zero.pth"), factor=2).frame(1).astype(int)
    expect = (clip[0].astype(np.float32) / 255 + clip[1].astype(np.float32) / 255) / 2 * 255 + 0.5
    assert np.abs(mid - np.floor(expect)).max() <= 1


def test_warp_moves_by_the_flow():
    img = torch.arange(5 * 7, dtype=torch.float32).view(1, 1, 5, 7)
    flow = torch.zeros(1, 2, 5, 7)
    flow[:, 0] = 1.0
    assert torch.allclose(warp(img, flow)[..., :-1], img[..., 1:])


def test_node_uses_model_folders(weights, clip, monkeypatch):
    (weights / "rife").mkdir(exist_ok=True)
    (weights / "rife" / "rife46.pkl").write_bytes((weights / "flownet.pkl").read_bytes())
    monkeypatch.setenv("KINOGRAPH_MODELS", str(weights))
    out = interp.rife(Context("r"), Clip.from_array(clip), model="rife46.pkl", factor=2)
    assert out.length == 7


def test_damaged_and_foreign_files_name_the_file(weights, tmp_path, clip):
    data = (weights / "flownet.pkl").read_bytes()
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(NodeError, match="truncated.pkl.*damaged"):
        rife_clip(Clip.from_array(clip), str(truncated))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a weight file at all")
    with pytest.raises(NodeError, match="garbage.safetensors"):
        rife_clip(Clip.from_array(clip), str(garbage))
    # Another architecture: an image upscaler's state dict.
    foreign = tmp_path / "esrgan.pth"
    torch.save({"model.0.weight": torch.zeros(8, 3, 3, 3), "model.0.bias": torch.zeros(8)}, foreign)
    with pytest.raises(NodeError, match="esrgan.pth does not hold RIFE"):
        rife_clip(Clip.from_array(clip), str(foreign))
    # The right names with a newer layout's shapes (RIFE 4.7+ feeds encoder features in).
    newer = random_state(prefix="")
    newer["block0.conv0.0.0.weight"] = torch.zeros(8, 23, 3, 3)
    torch.save(newer, tmp_path / "rife417.pth")
    with pytest.raises(NodeError, match="rife417.pth.*23 input channels"):
        rife_clip(Clip.from_array(clip), str(tmp_path / "rife417.pth"))
    with pytest.raises(NodeError, match="not found"):
        rife_clip(Clip.from_array(clip), str(tmp_path / "missing.pkl"))
