"""guide.cfg_override and guide.negative_model (ComfyUI's CFGOverride and DualModelGuider) on another family than the
one they were written for (Ideogram 4, tests/test_ideogram4.py): each either changes the sampling as it says, or is
refused by name where sample would otherwise leave it out without a word. Tiny Wan (tests/tiny_models.py)."""
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.text import encode_prompt
    from tiny_models import build_all
    root = build_all(tmp_path_factory.mktemp("tiny"), ("wan",))
    mm = ModelManager()
    h = mm.load("wan", str(root / "wan"))
    te = mm.components(h)["text_encoder"]
    return h, encode_prompt(te, "a castle"), encode_prompt(te, "blur")


def _fn(h, pos, neg, cfg, adapter=None, dual=None):
    from nodes.generate.adapters import get_adapter
    from nodes.generate.sampling import guided_model_fn
    fn = guided_model_fn(h, adapter or get_adapter("wan"), pos, neg, cfg, 1, "cpu", torch.float32, 1, dual=dual)
    return torch.no_grad()(fn)


X = torch.randn(1, 16, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def test_cfg_override_guides_a_run_at_cfg_1(wan):
    """CFGOverride's cfg over the whole way is that cfg, also when sample's own cfg is 1 (no negative pass of its
    own): the override was left out there, and the run sampled the prompt alone."""
    h, pos, neg = wan
    want = _fn(h, pos, neg, 5.0)(X, 0.85)
    got = _fn(h.with_option("cfg_override", (5.0, 0.0, 1.0)), pos, neg, 1.0)(X, 0.85)
    assert not torch.allclose(want, _fn(h, pos, neg, 1.0)(X, 0.85), atol=1e-4)
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())
    # outside its share sample's cfg 1 holds: the prompt alone
    late = _fn(h.with_option("cfg_override", (5.0, 0.9, 1.0)), pos, neg, 1.0)(X, 0.85)
    assert torch.allclose(late, _fn(h, pos, neg, 1.0)(X, 0.85), atol=1e-5)


def test_cfg_override_with_an_option_that_sets_the_scale_its_own_way_is_refused(wan):
    """guide.linear_cfg's per-frame scale, guide.dual_cfg's two scales and a distilled model's guidance input take
    no part of the override: sample used them and dropped the override without a word."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.sampling import DualCfg
    h, pos, neg = wan
    over = h.with_option("cfg_override", (3.0, 0.7, 1.0))
    with pytest.raises(NodeError, match="guide.cfg_override .* guide.linear_cfg"):
        _fn(over.with_option("min_cfg", 1.0), pos, neg, 5.0)
    with pytest.raises(NodeError, match="guide.cfg_override .* guide.dual_cfg"):
        _fn(over, pos, neg, 5.0, dual=DualCfg(pos, 2.0, False))

    class Distilled(type(get_adapter("wan"))):
        def distilled_guidance(self, handle):
            return True
    with pytest.raises(NodeError, match="guide.cfg_override .* told cfg as its guidance"):
        _fn(over, pos, neg, 5.0, adapter=Distilled())


def test_cfg_override_with_an_empty_share_is_refused():
    """start after end is a share of no levels: the override never acts."""
    from nodes.generate.nodes import cfg_override_guide
    with pytest.raises(NodeError, match="start 0.8 is after end 0.3"):
        cfg_override_guide(None, None, 3.0, 0.8, 0.3)


def test_negative_model_with_what_its_pass_would_leave_out_is_refused(wan):
    """Regional prompts and ComfyUI's SkipLayerGuidanceDiTSimple run their own negative passes on the first model, and
    a ControlNet rides on the first model only (ComfyUI's rides on the negative prompt, into the second model's
    pass): with guide.negative_model each made the second model's pass vanish, or lose the ControlNet, silently."""
    from nodes.generate.regions import combine, with_steps
    from nodes.generate.skip_layers import SkipLayers
    h, pos, neg = wan
    two = h.with_option("negative_model", replace(h))
    with pytest.raises(NodeError, match="guide.negative_model .* regional prompts"):
        _fn(two, combine(with_steps(pos, 0.0, 0.5), with_steps(pos, 0.5, 1.0)), neg, 5.0)
    with pytest.raises(NodeError, match="guide.negative_model .* guide.skip_layers_negative"):
        _fn(two.with_option("skip_layers_negative", SkipLayers.parse("0", 0.0, 0.0, 1.0, 0.0, negative=True)),
            pos, neg, 5.0)
    with pytest.raises(NodeError, match="guide.negative_model.*ControlNet"):
        _fn(two.with_option("controlnet", (object(),)), pos, neg, 5.0)
    # nothing else is refused: the same weights as the second model give sample's own guidance (its two passes
    # apart, not batched: float32 rounding)
    assert torch.allclose(_fn(two, pos, neg, 5.0)(X, 0.85), _fn(h, pos, neg, 5.0)(X, 0.85), atol=1e-4)
