"""ComfyUI's NVFP4 and MXFP8 files (Comfy-Org's *_nvfp4, *_fp4_mixed, *_mxfp8) load as the plain matrices their
published dequantisation gives: layers quantised by comfy-kitchen's quantizers written out in tests/comfy_blockquant.py
(no code shared with nodes/generate/block_quant.py), saved under ComfyUI's keys, read by load_weights, equal the
reference's dequantised values; expert banks, tags in the file's metadata, and refusals naming layer and format."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import comfy_blockquant as ref  # noqa: E402
from comfy_convrot import tag  # noqa: E402


def _file(tmp_path, state, name="model.safetensors", metadata=None):
    from safetensors.torch import save_file
    path = tmp_path / name
    save_file(state, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp8"])
@pytest.mark.parametrize("shape", [(64, 128), (200, 96), (272, 160)])
def test_a_layer_is_the_references_dequantised_matrix(tmp_path, fmt, shape):
    """A matrix quantised as ComfyUI does (sizes off the 128 x 4 scale tiles, and a padded one) and saved with its
    scales, tag and an input_scale beside a bf16 layer loads as comfy-kitchen's dequantisation gives it, in float32
    exactly and in bf16 by default; the markers are gone, the plain layer kept."""
    from nodes.generate.weights import load_weights
    torch.manual_seed(0)
    w = torch.randn(*shape) * 0.05
    state = ref.quantise_layer("blocks.0.proj", w, fmt)
    state["blocks.0.proj.input_scale"] = torch.ones(())
    state["blocks.0.norm.weight"] = torch.randn(shape[0]).bfloat16()
    want = ref.dequantise_layer(state, "blocks.0.proj", fmt)
    rows, cols = want.shape
    assert torch.allclose(want[:shape[0], :shape[1]], w, atol=w.abs().max().item() * (0.2 if fmt == "nvfp4" else 0.07))
    assert not want[shape[0]:].any() and not want[:, shape[1]:].any()       # the padding is zeros
    path = _file(tmp_path, state)
    got = load_weights(path, torch.float32)
    assert set(got) == {"blocks.0.proj.weight", "blocks.0.norm.weight"}
    assert got["blocks.0.proj.weight"].shape == (rows, cols)
    assert torch.equal(got["blocks.0.proj.weight"], want)
    default = load_weights(path)["blocks.0.proj.weight"]
    assert default.dtype == torch.bfloat16 and torch.equal(default, want.bfloat16())


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp8"])
def test_an_expert_bank_is_each_experts_matrix(tmp_path, fmt):
    """ComfyUI's MoEExperts bank (GPT-OSS's gate_up_proj: [experts, out, in], each expert quantised on its own, one
    weight_scale_2 per expert, num_experts in the tag) loads as each expert's reference matrix."""
    from nodes.generate.weights import load_weights
    torch.manual_seed(1)
    w = torch.randn(3, 160, 64) * torch.tensor([0.01, 0.1, 1.0]).view(3, 1, 1)
    state = ref.quantise_layer("model.layers.0.mlp.experts.gate_up_proj", w, fmt)
    state["model.layers.0.mlp.experts.gate_up_proj.bias"] = torch.randn(3, 160)
    got = load_weights(_file(tmp_path, state), torch.float32)
    want = ref.dequantise_layer(state, "model.layers.0.mlp.experts.gate_up_proj", fmt)
    assert want.shape == (3, 160, 64) and torch.equal(got["model.layers.0.mlp.experts.gate_up_proj.weight"], want)
    assert torch.equal(got["model.layers.0.mlp.experts.gate_up_proj.bias"],
                       state["model.layers.0.mlp.experts.gate_up_proj.bias"])


def test_tags_in_the_files_metadata(tmp_path):
    """A file that describes its layers in `_quantization_metadata` (ComfyUI's documented form, the layer named
    without the file's prefix) instead of comfy_quant tensors reads the same; `kinograph info` says it loads and
    calls it nvfp4_mixed (an mxfp8 one mxfp8_mixed), and the header gives the matrix's width that detection reads,
    not the packed bytes' half of it."""
    import json
    from nodes.generate.detect import precision_of, read_header
    from nodes.generate.weights import load_weights, unreadable_format
    torch.manual_seed(2)
    state = ref.quantise_layer("model.diffusion_model.blocks.0.proj", torch.randn(32, 64), "nvfp4")
    del state["model.diffusion_model.blocks.0.proj.comfy_quant"]
    meta = {"_quantization_metadata": json.dumps({"layers": {"blocks.0.proj": {"format": "nvfp4"}}})}
    path = _file(tmp_path, state, metadata=meta)
    want = ref.dequantise_layer(state, "model.diffusion_model.blocks.0.proj", "nvfp4")
    assert torch.equal(load_weights(path, torch.float32)["model.diffusion_model.blocks.0.proj.weight"], want)
    header = read_header(path)
    assert unreadable_format(path, header.shapes, header.metadata) is None
    assert precision_of(header) == "nvfp4_mixed"
    assert header.shapes["model.diffusion_model.blocks.0.proj.weight"] == (32, 64)     # the matrix's, not the bytes'
    mx = _file(tmp_path, ref.quantise_layer("blocks.0.proj", torch.randn(32, 64), "mxfp8"), "mx.safetensors")
    assert precision_of(read_header(mx)) == "mxfp8_mixed"


def test_block_scales_read_row_by_row_would_differ(tmp_path):
    """The loader reads the scales in cuBLAS's tile order: a matrix of 256 rows whose rows' blocks have scales of
    very different sizes comes back row for row; the untiled order is no identity here."""
    from nodes.generate.block_quant import untile
    torch.manual_seed(3)
    w = torch.randn(256, 128) * torch.logspace(-3, 0, 256).view(-1, 1)
    scales = ref.quantise_layer("l", w, "nvfp4")["l.weight_scale"]
    assert not torch.equal(scales.view(torch.uint8), ref.to_blocked(scales.view(torch.uint8)))
    assert torch.equal(untile(scales.view(torch.uint8), 256, 8), ref.from_blocked(scales.view(torch.uint8), 256, 8))


@pytest.mark.parametrize("damage,said", [
    (lambda s: s.pop("l.weight_scale_2"), "no weight_scale_2"),
    (lambda s: s.pop("l.weight_scale"), "no weight_scale"),
    (lambda s: s.update({"l.weight_scale": torch.ones(48, 2).to(torch.float8_e4m3fn)}), "128 x 4 tiles"),
    (lambda s: s.update({"l.weight_scale_2": torch.tensor(float("nan"))}), "NaN"),
    (lambda s: s.update({"l.weight": s["l.weight"].to(torch.float32)}), "not uint8"),
    (lambda s: s.update({"l.comfy_quant": tag({"format": "nvfp4", "num_experts": 4})}), "bank of 4 experts"),
])
def test_damaged_layers_are_named(tmp_path, damage, said):
    """A missing or misshapen scale (one row by row, not tiled), a NaN, a weight of another type, a bank the tag
    counts otherwise: refused naming the layer, its format and what is wrong, not a traceback or wrong weights."""
    from graph_engine import NodeError
    from nodes.generate.weights import load_weights
    state = ref.quantise_layer("l", torch.randn(48, 32), "nvfp4")
    damage(state)
    with pytest.raises(NodeError, match="model.safetensors: l is tagged nvfp4") as e:
        load_weights(_file(tmp_path, state))
    assert said in str(e.value)


def test_formats_not_read_are_still_named(tmp_path):
    """NVFP4 scales without ComfyUI's tag (another tool's layout) and tags of formats Kinograph does not read are
    refused by name, when loading and in `kinograph info`; an E8M0 NaN scale too."""
    from graph_engine import NodeError
    from nodes.generate.detect import read_header
    from nodes.generate.weights import load_weights, unreadable_format
    state = ref.quantise_layer("l", torch.randn(48, 32), "nvfp4")
    del state["l.comfy_quant"]
    path = _file(tmp_path, state)
    header = read_header(path)
    assert "l is stored in a 4-bit format (NVFP4" in unreadable_format(path, header.shapes, header.metadata)
    with pytest.raises(NodeError, match="without ComfyUI's comfy_quant tag"):
        load_weights(path)
    state = dict(ref.quantise_layer("l", torch.randn(48, 32), "nvfp4"), **{"l.comfy_quant": tag({"format": "awq_w4a16"})})
    path = _file(tmp_path, state)
    assert "ComfyUI's awq_w4a16 format" in unreadable_format(path, read_header(path).shapes)
    state = ref.quantise_layer("l", torch.randn(48, 64), "mxfp8")
    state["l.weight_scale"] = torch.full_like(state["l.weight_scale"].view(torch.uint8), 255)
    with pytest.raises(NodeError, match="l is tagged mxfp8.*E8M0 NaN"):
        load_weights(_file(tmp_path, state))
