"""Hostile inputs, pass 14: what landed last (block-scaled NVFP4 / MXFP8 weights, meshes from voxel grids, CLIP's
77-token windows, prompt weights). Each case was a traceback, a hang, a silent NaN or a memory bomb before its fix;
each must now be a NodeError naming the thing and what to do."""
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _file(tmp_path, state, name="model.safetensors"):
    from safetensors.torch import save_file
    path = tmp_path / name
    save_file(state, str(path))
    return path


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp8"])
@pytest.mark.parametrize("empty", [(48, 0), (0, 48, 32)])
def test_a_block_scaled_weight_of_no_values_is_named(tmp_path, fmt, empty):
    """A layer tagged NVFP4 / MXFP8 whose weight holds no values (rows of no columns, a bank of no experts; no byte
    in the file) beside an empty scale: a ZeroDivisionError (rows of 0 columns) or torch's 'stack expects a non-empty
    TensorList' (no experts) traceback out of every loader of the file."""
    import comfy_blockquant as ref
    from nodes.generate.weights import load_weights
    state = ref.quantise_layer("l", torch.randn(48, 64), fmt)
    dtype = state["l.weight"].dtype
    state["l.weight"] = torch.zeros(empty, dtype=dtype)
    state["l.weight_scale"] = state["l.weight_scale"].reshape(-1)[:0].contiguous()
    with pytest.raises(NodeError, match=f"model.safetensors: l is tagged {fmt}") as e:
        load_weights(_file(tmp_path, state))
    assert "holds no values" in str(e.value) and str(list(empty)) in str(e.value)
