"""RAFT-large read from torchvision's key layout gives the flow of torchvision's RAFT as ComfyUI calls it
(tests/raft_reference.py, written out), on random weights; other files are refused by name."""
import pytest
import torch
from safetensors.torch import load_file, save_file

from graph_engine import NodeError
from nodes.motion.raft import load_raft, raft_flow
from tests import raft_reference as ref


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    torch.manual_seed(0)
    model = ref.RAFT().eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    with torch.no_grad():       # default init's flow steps run away (NaN); these keep them a few pixels
        model.update_block.flow_head.conv2.weight.mul_(0.02)
        model.mask_predictor.conv.weight.mul_(0.1)
    path = tmp_path_factory.mktemp("raft") / "raft_large_C_T_SKHT_V2-ff5fadd5.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


def test_flow_is_torchvisions(published):
    model, path = published
    ours = load_raft(load_file(str(path)))
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 130, 134, generator=g)
    b = torch.roll(a, shifts=(2, 3), dims=(1, 2)) * 0.9 + 0.05
    want = ref.raft_optical_flow(model, a, b, updates=3)   # ComfyUI's 12, fewer to keep the test short
    got = raft_flow(ours, a, b, updates=3)
    assert got.shape == want.shape == (2, 130, 134)
    assert want.abs().max() > 1e-3
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_other_files_are_refused_by_name(published):
    _, path = published
    state = load_file(str(path))
    with pytest.raises(NodeError, match="not torchvision's RAFT-large"):
        load_raft({"encoder.weight": torch.zeros(1)})
    state["update_block.flow_head.conv2.weight"] = torch.zeros(2, 128, 3, 3)
    with pytest.raises(NodeError, match="of another size"):
        load_raft(state)
    with pytest.raises(NodeError, match="at least 128"):
        raft_flow(load_raft(load_file(str(path))), torch.zeros(3, 64, 200), torch.zeros(3, 64, 200))
