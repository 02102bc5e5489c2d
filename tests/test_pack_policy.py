"""When the caller does not say, a quantised file's layers stay packed (nodes/generate/packed_weight.py) on a
machine with a GPU or where the expanded weights would take more than half the memory free, and are expanded once at
load otherwise (nodes/generate/pack_policy.py): on the CPU a packed step measured several times the expanded one's.
The expanded weights are the published dequantisation's (tests/comfy_blockquant.py, an fp8 value cast)."""
from __future__ import annotations

import pytest
import torch

import comfy_blockquant as ref

GB = 1 << 30


@pytest.mark.parametrize("expanded, gpu, free, packed", [
    (10 * GB, True, 100 * GB, True),        # a GPU: its memory is what a run is short of
    (10 * GB, False, 100 * GB, False),      # the CPU with room: the faster step
    (10 * GB, False, 20 * GB, False),       # exactly half of what is free
    (10 * GB, False, 19 * GB, True),        # past half: packed is what lets it fit
    (10 * GB, False, None, True),           # free memory unknown: the lean way
])
def test_the_decision(expanded, gpu, free, packed):
    from nodes.generate.pack_policy import keep_packed
    assert keep_packed(expanded, gpu, free) is packed


def _state():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 128, generator=g) * 0.05
    state = ref.quantise_layer("a", w, "nvfp4")
    state["b.weight"] = w.to(torch.float8_e4m3fn)
    want = {"a.weight": ref.dequantise_layer(state, "a", "nvfp4"), "b.weight": state["b.weight"].float()}
    return state, want


@pytest.mark.parametrize("gpu, free, packed", [(False, 64 * GB, False), (False, 60_000, True), (True, 64 * GB, True)])
def test_dequantise_follows_the_machine(monkeypatch, gpu, free, packed):
    import nodes.common.stream as stream
    from nodes.generate.packed_weight import PackedWeight
    from nodes.generate.weights import dequantise
    monkeypatch.setattr(stream, "free_memory", lambda: free)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    state, want = _state()
    # the expanded weights: 64 x 128 in bfloat16 twice, 32 KB (60 KB free is less than twice that)
    got = dequantise(state, torch.bfloat16)
    for k, w in want.items():
        assert isinstance(got[k], PackedWeight) is packed
        assert torch.equal(got[k].float(), w.to(torch.bfloat16).float())
    assert all(type(v) is torch.Tensor for v in dequantise(state, torch.bfloat16, packed=False).values())
    assert all(isinstance(dequantise(state, torch.bfloat16, packed=True)[k], PackedWeight) for k in want)
