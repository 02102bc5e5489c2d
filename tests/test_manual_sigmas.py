"""Sample's `sigmas` (ComfyUI's ManualSigmas) written by hand: a level the sampler cannot hold is refused where it is
read, naming it, rather than running into NaN noise that the NaN check then blames on the weights."""
import pytest
import torch

from graph_engine import NodeError
from nodes.generate.sampling import manual_sigmas


@pytest.mark.parametrize("text, shown", [("1e39, 0.0", "1e+39"), ("nan, 0.0", "nan"), ("inf, 0.5, 0.0", "inf"),
                                         ("1.0, 1e200, 0.0", "1e+200")])
def test_a_level_the_sampler_cannot_hold_is_refused_by_name(text, shown):
    # the reason: in the float32 the sampler works in, such a level is no number at all
    assert not torch.isfinite(torch.tensor([float(shown)], dtype=torch.float32)).all()
    with pytest.raises(NodeError) as err:
        manual_sigmas(text)
    msg = str(err.value)
    assert shown in msg and "Sample" in msg and "sigmas" in msg and "0 to 1" in msg


def test_written_schedules_within_range_still_read():
    levels = manual_sigmas("14.6146, 7.0, 0.0")
    assert torch.equal(levels, torch.tensor([14.6146, 7.0, 0.0], dtype=torch.float64))
    assert manual_sigmas("[1.0, 0.9937, 0.0]").tolist() == [1.0, 0.9937, 0.0]
