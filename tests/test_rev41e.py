"""rev41e's review of TripoSplat (tripo40, tripo41): a TripoSplat latent's shape tokens and camera token are one
sample, which latent.cut / latent.concat / latent.upscale refuse by name instead of making a latent the sampler
refuses later (or, joined, one whose second camera token is silently dropped)."""
from __future__ import annotations

import pytest
import torch


def _tripo(camera=True):
    from nodes.generate.latent import Latent
    return Latent(torch.randn(1, 16, 1, 1, 8192), "triposplat", 1, 1.0, 8192, 1,
                  camera=torch.randn(1, 1, 5) if camera else None)


@pytest.mark.parametrize("op", ["cut", "concat", "concat_second", "upscale"])
def test_latent_ops_refuse_a_triposplat_latent(op):
    from graph_engine import NodeError
    from nodes.generate.latent import concat_latents, cut_latent, upscale_latent
    run = {"cut": lambda: cut_latent(_tripo(), "x", 0, 64),
           "concat": lambda: concat_latents(_tripo(), _tripo(), "x"),
           "concat_second": lambda: concat_latents(_tripo(camera=False), _tripo(), "t"),
           "upscale": lambda: upscale_latent(_tripo(), 1.5)}[op]
    with pytest.raises(NodeError, match="camera token.*condition.triposplat"):
        run()
