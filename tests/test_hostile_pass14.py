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


@pytest.mark.parametrize("algorithm", ["surface net", "basic"])
def test_a_noisy_voxel_grid_is_named_before_it_is_meshed(algorithm):
    """A voxel grid of noise (a damaged ShapeVAE, a latent sampled a step): nearly every cell crosses the threshold.
    mesh.from_voxels's surface net took about 1.5 KB a crossed cell before a vertex came out (1.46 GB at 100^3, 25 GB
    at decode.hunyuan3d's default resolution 256, the machine's memory at 512), the basic mesh 4 vertices a shown face;
    now the crossed cells / shown faces are counted first and a grid past MAX_CELLS is named. A smooth shape meshes
    as before (test_mesh_voxels)."""
    import numpy as np

    from graph_engine.context import Context
    from nodes.common.mesh import Voxel
    from nodes.mesh import nodes
    from nodes.mesh.voxels import MAX_CELLS
    n = 170                      # 4.9 million cells, nearly all crossed; 7.4 million faces shown
    assert n ** 3 > MAX_CELLS
    noise = (np.random.default_rng(0).random((n, n, n)) > 0.5).astype(np.float32)
    with pytest.raises(NodeError, match="grid is noise rather than a shape") as e:
        nodes.from_voxels(Context("m"), Voxel(noise), algorithm=algorithm, threshold=0.6)
    assert ("passes through 4,8" if algorithm == "surface net" else "voxel faces") in str(e.value)
