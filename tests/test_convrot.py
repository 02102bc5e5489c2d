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
