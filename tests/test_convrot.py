"""ComfyUI's ConvRot files (`*_int8_convrot.safetensors`, `convrot_w4a4`), which ComfyUI's templates now download,
load through Kinograph's one weights loader as the plain matrices they quantise: each layer exactly as ComfyUI's
published dequantisation gives it, within int8 (int4) error of the unquantised layer; a damaged or lying tag or scale
is refused naming the layer and the file."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_convrot as cr  # noqa: E402


def _layers():
    g = torch.Generator().manual_seed(0)
    # a rotated layer of ComfyUI's group (256 inputs), one of a small group, and one whose inputs do not divide
    # into groups: ComfyUI leaves it unrotated, tagged plain int8_tensorwise
    return {"big": torch.randn(24, 512, generator=g) * 0.05, "small": torch.randn(8, 32, generator=g),
            "odd": torch.randn(8, 40, generator=g)}


def _save(tmp_path, state, name="model_int8_convrot.safetensors"):
    from safetensors.torch import save_file
    path = tmp_path / name
    save_file(state, str(path))
    return path


def test_int8_convrot_layers_load_as_comfyui_dequantises_them(tmp_path):
    from nodes.generate.weights import load_weights
    layers = _layers()
    state = {}
    for name, w in layers.items():
        group = 256 if name == "big" else 16
        state.update(cr.quantise_file_state({f"{name}.weight": w, f"{name}.bias": torch.zeros(w.shape[0])}, group))
    assert cr.tag({"format": "int8_tensorwise", "convrot": True, "convrot_groupsize": 256}).tolist() == \
        state["big.comfy_quant"].tolist()
    path = _save(tmp_path, state)
    got = load_weights(path, torch.float32)
    assert set(got) == {f"{n}.{p}" for n in layers for p in ("weight", "bias")}
    x = torch.randn(5, 512, generator=torch.Generator().manual_seed(1))
    for name, w in layers.items():
        q, s = state[f"{name}.weight"], state[f"{name}.weight_scale"]
        if name == "odd":
            published = q.float() * s
        else:
            group = 256 if name == "big" else 16
            published = cr.dequantize_int8_convrot_weight(q, s, group)
            # ComfyUI's other path: the activations rotated, times the rotated int8 weight
            xi = x[:, : w.shape[1]]
            rotated = cr.rotate_activation(xi, cr.build_hadamard(group), group) @ (q.float() * s).T
            assert torch.allclose(rotated, xi @ got[f"{name}.weight"].T, atol=1e-5)
        # exactly ComfyUI's dequantised weight, so exactly its dequantised forward
        assert torch.equal(got[f"{name}.weight"], published), name
        xi = x[:, : w.shape[1]]
        assert torch.equal(torch.nn.functional.linear(xi, got[f"{name}.weight"]),
                           torch.nn.functional.linear(xi, published))
        # ... and the unquantised layer's output within int8 error
        want = xi @ w.T
        err = float((xi @ got[f"{name}.weight"].T - want).abs().max() / want.abs().max())
        assert err < 2e-2, (name, err)
        # the rotation matters: read as weight * scale the rotated layer is another matrix
        if name != "odd":
            assert float(((q.float() * s) - w).abs().max() / w.abs().max()) > 0.5
    # without a dtype, bf16 as ComfyUI's files are: the published values rounded once
    plain = load_weights(path)
    assert plain["big.weight"].dtype == torch.bfloat16
    assert torch.equal(plain["big.weight"], cr.dequantize_int8_convrot_weight(
        state["big.weight"], state["big.weight_scale"], 256).to(torch.bfloat16))


def test_convrot_w4a4_layers_load_as_comfyui_dequantises_them(tmp_path):
    from nodes.generate.weights import load_weights
    w = _layers()["big"]
    q, s = cr.quantize_convrot_w4a4_weight(w, 256)
    assert q.shape == (24, 256) and s.shape == (24,)
    path = _save(tmp_path, {"l.weight": q, "l.weight_scale": s,
                            "l.comfy_quant": cr.tag({"format": "convrot_w4a4", "convrot_groupsize": 256})})
    got = load_weights(path, torch.float32)["l.weight"]
    assert torch.equal(got, cr.dequantize_convrot_w4a4_weight(q, s, 256))
    x = torch.randn(5, 512, generator=torch.Generator().manual_seed(1))
    err = float((x @ got.T - x @ w.T).abs().max() / (x @ w.T).abs().max())
    assert err < 0.15, err


def test_damaged_or_lying_tags_and_scales_are_named(tmp_path):
    from graph_engine import NodeError
    from nodes.generate.weights import load_weights
    w = _layers()["small"]
    good = cr.quantise_file_state({"blk.proj.weight": w}, 16)
    cases = {
        "not JSON": ({"blk.proj.comfy_quant": torch.tensor(list(b"{format: int8"), dtype=torch.uint8)},
                     "comfy_quant tag is not the JSON"),
        "a group of 100": ({"blk.proj.comfy_quant": cr.tag({"format": "int8_tensorwise", "convrot": True,
                                                            "convrot_groupsize": 100})},
                           "rotation group of 100"),
        "a group the inputs do not divide into": (
            {"blk.proj.comfy_quant": cr.tag({"format": "int8_tensorwise", "convrot": True, "convrot_groupsize": 64})},
            "32 inputs, not a multiple of its ConvRot group of 64"),
        "a scale per tensor": ({"blk.proj.weight_scale": torch.tensor(0.1)}, "not one per row"),
        "a scale of other rows": ({"blk.proj.weight_scale": torch.ones(5, 1)}, "does not fit"),
        "a NaN scale": ({"blk.proj.weight_scale": torch.full((8, 1), float("nan"))}, "NaN"),
        "a float weight": ({"blk.proj.weight": w}, "tagged int8_tensorwise but its weight is float32"),
        # ComfyUI's mixture-of-experts bank, not a damaged file: said so (it was called damaged)
        "an experts' bank": ({"blk.proj.weight": good["blk.proj.weight"].expand(3, -1, -1).contiguous(),
                              "blk.proj.weight_scale": good["blk.proj.weight_scale"].expand(3, -1, -1).contiguous(),
                              "blk.proj.comfy_quant": cr.tag({"format": "int8_tensorwise", "convrot": True,
                                                              "convrot_groupsize": 16, "num_experts": 3})},
                             "a bank of 3 experts' matrices"),
        "a format not read": ({"blk.proj.comfy_quant": cr.tag({"format": "awq_w4a16"})},
                              "ComfyUI's awq_w4a16 format, which Kinograph cannot read yet"),
    }
    for why, (change, message) in cases.items():
        path = _save(tmp_path, dict(good, **change), "damaged_int8_convrot.safetensors")
        with pytest.raises(NodeError, match=rf"^damaged_int8_convrot\.safetensors: blk\.proj.*{message}") as e:
            load_weights(path)
        assert "Traceback" not in str(e.value), why
    lacking = {k: v for k, v in good.items() if not k.endswith(".weight_scale")}
    with pytest.raises(NodeError, match=r"^damaged_int8_convrot\.safetensors: blk\.proj .*has no weight_scale"):
        load_weights(_save(tmp_path, lacking, "damaged_int8_convrot.safetensors"))


def test_layers_described_in_the_files_quantization_metadata_are_rotated_back(tmp_path):
    """ComfyUI's documented form of a quantised file: the layers' descriptions in the safetensors metadata
    (`_quantization_metadata`, which comfy/utils.py convert_old_quants turns into tags), no comfy_quant tensors; a
    layer may be named without the file's key prefix, as ComfyUI strips it first."""
    import json

    from safetensors.torch import save_file

    from nodes.generate.detect import read_header
    from nodes.generate.weights import load_weights, unreadable_format
    w = _layers()["big"]
    q, s = cr.quantize_int8_convrot_weight(w, 256)
    q4, s4 = cr.quantize_convrot_w4a4_weight(w, 256)
    state = {"model.diffusion_model.blk.a.weight": q, "model.diffusion_model.blk.a.weight_scale": s,
             "model.diffusion_model.blk.b.weight": q4, "model.diffusion_model.blk.b.weight_scale": s4,
             "model.diffusion_model.blk.c.weight": w.to(torch.bfloat16)}
    layers = {"model.diffusion_model.blk.a": {"format": "int8_tensorwise", "convrot": True, "convrot_groupsize": 256},
              "blk.b": {"format": "convrot_w4a4", "params": {"convrot_groupsize": 256}}}
    path = tmp_path / "meta_int8_convrot.safetensors"
    save_file(state, str(path), metadata={"_quantization_metadata": json.dumps({"layers": layers})})
    got = load_weights(path, torch.float32)
    assert torch.equal(got["model.diffusion_model.blk.a.weight"], cr.dequantize_int8_convrot_weight(q, s, 256))
    assert torch.equal(got["model.diffusion_model.blk.b.weight"], cr.dequantize_convrot_w4a4_weight(q4, s4, 256))
    assert torch.equal(got["model.diffusion_model.blk.c.weight"], w.to(torch.bfloat16).float())
    header = read_header(path)
    assert unreadable_format(path, header.shapes, header.metadata) is None
    # a format Kinograph does not read, described only there, is named by `kinograph info` and by the load
    layers["blk.b"] = {"format": "awq_w4a16", "group_size": 64}
    save_file(state, str(path), metadata={"_quantization_metadata": json.dumps({"layers": layers})})
    header = read_header(path)
    assert "awq_w4a16" in unreadable_format(path, header.shapes, header.metadata)
    with pytest.raises(Exception, match=r"^meta_int8_convrot\.safetensors: model\.diffusion_model\.blk\.b .*awq_w4a16"):
        load_weights(path)
    save_file(state, str(path), metadata={"_quantization_metadata": "{layers"})
    with pytest.raises(Exception, match=r"^meta_int8_convrot\.safetensors: its _quantization_metadata is not the JSON"):
        load_weights(path)


def test_a_group_size_written_as_text_is_read_as_comfyui_reads_it(tmp_path):
    """ComfyUI's comfy/ops.py reads the group with int(): "256" (a tag written by another tool) loads there."""
    from nodes.generate.weights import load_weights
    w = _layers()["small"]
    q, s = cr.quantize_int8_convrot_weight(w, 16)
    for group in ("16", 16.0):
        tag = cr.tag({"format": "int8_tensorwise", "params": {"convrot": True, "convrot_groupsize": group}})
        path = _save(tmp_path, {"l.weight": q, "l.weight_scale": s, "l.comfy_quant": tag})
        assert torch.equal(load_weights(path, torch.float32)["l.weight"], cr.dequantize_int8_convrot_weight(q, s, 16))


def test_an_int8_convrot_file_is_not_called_fp8(tmp_path):
    """`kinograph info` called every file with a per-layer weight_scale fp8_mixed, int8_convrot ones too, and then
    int8_mixed, where the file names and the README say int8_convrot."""
    from nodes.generate.detect import precision_of, read_header
    state = cr.quantise_file_state({"a.weight": _layers()["big"], "b.weight": torch.randn(4, 4)}, 256)
    assert precision_of(read_header(_save(tmp_path, state))) == "int8_convrot"
    fp8 = {"a.weight": torch.randn(4, 4).to(torch.float8_e4m3fn), "a.weight_scale": torch.tensor(1.0)}
    assert precision_of(read_header(_save(tmp_path, fp8, "fp8mixed.safetensors"))) == "fp8_mixed"


def test_a_packed_layer_builds_its_hadamard_matrix_once(monkeypatch):
    """A packed ConvRot layer (nodes/generate/packed_weight.py) rotates back at every operation: it built the
    Hadamard matrix anew each time (15 ms for 256 on a busy CPU, each layer each step; copied to the GPU each time
    too). Built once per size and device, with the published values."""
    from nodes.generate.weights import dequantise
    g = torch.Generator().manual_seed(0)
    plain = {"blocks.0.weight": torch.randn(64, 512, generator=g) * 0.05}
    state = cr.quantise_file_state(plain)
    w = dequantise(state, torch.float32, packed=True)["blocks.0.weight"]
    built = []
    kron = torch.kron
    monkeypatch.setattr(torch, "kron", lambda *a: built.append(1) or kron(*a))
    want = cr.dequantize_int8_convrot_weight(state["blocks.0.weight"], state["blocks.0.weight_scale"], 256)
    built.clear()
    for _ in range(3):
        assert torch.equal(w.dequantize(), want)
    assert len(built) <= 3         # the Kronecker powers of one 256 matrix, once
