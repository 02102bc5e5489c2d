"""The attention weighting of LTX-2's guides (ComfyUI's guide attention mask: log(strength) between the video's tokens
and a guide's, in the video's self-attention only) on a bare tiny transformer, against diffusers' own
video_self_attention_mask given the same bias as a dense [T, T] matrix written out here."""
from __future__ import annotations

import logging

import pytest
import torch

F, H, W, AUDIO = 4, 2, 2, 5         # 4 latent frames of 2 x 2 tokens: the last 3 frames are guides
VIDEO = 4                           # the video's own tokens (one latent frame), then the guides' 12


def _model(perturbed):
    import diffusers
    torch.manual_seed(0)
    return diffusers.LTX2VideoTransformer3DModel(
        in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
        audio_in_channels=16, audio_out_channels=16, audio_num_attention_heads=2, audio_attention_head_dim=4,
        audio_cross_attention_dim=8, num_layers=2, gated_attn=perturbed, cross_attn_mod=perturbed,
        audio_gated_attn=perturbed, audio_cross_attn_mod=perturbed, use_prompt_embeddings=False,
        perturbed_attn=perturbed, rope_type="split" if perturbed else "interleaved").eval()


def _forward(model, **kw):
    g = torch.Generator().manual_seed(1)
    t = F * H * W
    x, a = torch.randn(2, t, 8, generator=g), torch.randn(2, AUDIO, 16, generator=g)
    e, ea = torch.randn(2, 4, 16, generator=g), torch.randn(2, 4, 8, generator=g)
    with torch.no_grad():
        return model(hidden_states=x, audio_hidden_states=a, encoder_hidden_states=e, audio_encoder_hidden_states=ea,
                     timestep=torch.full((2, t), 500.0), audio_timestep=torch.full((2, AUDIO), 500.0),
                     sigma=torch.full((2,), 500.0), audio_sigma=torch.full((2,), 500.0), num_frames=F, height=H,
                     width=W, fps=24.0, audio_num_frames=AUDIO, use_cross_timestep=True, return_dict=False, **kw)


@pytest.mark.parametrize("perturbed", [False, True], ids=["ltx2.0", "ltx2.3"])
def test_guide_attention_weighting_is_diffusers_mask_without_warnings(perturbed, monkeypatch):
    """Guides at 0.7, 2 (ComfyUI amplifies above 1) and 0 (shut off): the hooked forward gives what
    diffusers gives with the dense bias, on LTX-2.0's processor and on LTX-2.3's (gated, perturbable) one, batch 2,
    and diffusers logs nothing about arguments the hook does not take (LTX-2.3's perturbation_mask). No [T, T] bias
    reaches the attention: the video's queries get one broadcast row, the guides' a [G, T] block."""
    from nodes.generate.adapters.ltx2 import _video_self_attention_bias
    from nodes.generate.ltx2_guide import attention_blocks
    model = _model(perturbed)
    weight = torch.cat([torch.full((H * W,), s) for s in (0.7, 2.0, 0.0)])
    total = F * H * W
    dense = torch.zeros(total, total)
    logw = weight.log()
    dense[:VIDEO, VIDEO:] = logw[None, :]               # the video reads the guides
    dense[VIDEO:, :VIDEO] = logw[:, None]               # the guides read the video; guides among themselves: 0
    # diffusers' multiplicative mask m gives the additive bias (m - 1) * 10000
    want = _forward(model, video_self_attention_mask=(1 + dense.double() / 10000).float()[None].expand(2, -1, -1))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    log = logging.getLogger("diffusers.models.transformers.transformer_ltx2")
    log.addHandler(handler)
    masks = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def seen(*args, attn_mask=None, **kw):
        if attn_mask is not None:
            masks.append(tuple(attn_mask.shape[-2:]))
        return sdpa(*args, attn_mask=attn_mask, **kw)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", seen)
    try:
        with _video_self_attention_bias(model, attention_blocks(weight, total)):
            got = _forward(model)
    finally:
        log.removeHandler(handler)
    monkeypatch.undo()
    assert [r.getMessage() for r in records] == []
    guides = total - VIDEO
    assert sorted(set(masks)) == [(1, total), (guides, total)]
    for mine, theirs in zip(got, want):
        assert ((mine - theirs).norm() / theirs.norm()).item() < 1e-4    # the mask passes float32 1 + bias / 10000
    unbiased = _forward(model)[0]
    assert not torch.allclose(unbiased, want[0], atol=1e-3)       # the weighting changes the result


def test_guide_on_another_family_says_what_to_use():
    """condition.guide_video given LTX-Video's (0.9.x) VAE and latent: refused before anything is encoded, naming
    what it needs and LTX-Video's own node."""
    from types import SimpleNamespace

    import numpy as np

    from graph_engine import NodeError
    from nodes.generate.ltx2_guide import with_guide
    ltxv = SimpleNamespace(family="ltxv")
    with pytest.raises(NodeError, match="LTX-2 checkpoint's VAE.*condition.frames"):
        with_guide(ltxv, None, None, ltxv, np.zeros((1, 64, 64, 3), np.uint8))
