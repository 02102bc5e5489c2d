"""GGUF files (ComfyUI-GGUF's UnetLoaderGGUF / CLIPLoaderGGUF files) load with their quantised tensors kept as
GGUF blocks (a PackedWeight, dequantised for the operation that reads it) and their F16 / BF16 / F32 tensors as
stored. The reference for the values is the `gguf` package's own numpy dequantisation (llama.cpp's gguf-py),
independent of the torch kernels Kinograph uses; packed and expanded loads must give the same outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
from tests.gguf_blocks import TYPES, T, blocks, write  # noqa: E402

ONCE = (T.IQ2_XXS, T.IQ2_XS, T.IQ2_S, T.IQ3_XXS, T.IQ3_S, T.IQ1_S, T.TQ1_0, T.TQ2_0)

ROWS, COLS = 8, 512


def _file(tmp_path, kind):
    rng = np.random.default_rng(1)
    q = blocks(kind, ROWS, COLS)
    bf16 = gguf.quants.quantize(rng.standard_normal((4, 32)).astype(np.float32), T.BF16)
    path = tmp_path / f"tiny-{kind.name}.gguf"
    write(path, {"lin.weight": (kind, q), "lin.bias": (None, rng.standard_normal(ROWS).astype(np.float32)),
                  "norm.weight": (None, rng.standard_normal(COLS).astype(np.float16)),
                  "emb.weight": (T.BF16, bf16)})
    return path, q, bf16


@pytest.mark.parametrize("kind", TYPES, ids=lambda k: k.name)
def test_each_quant_type_stays_packed_with_the_expanded_values(tmp_path, kind):
    from nodes.generate.packed_weight import PackedWeight, held_bytes
    from nodes.generate.weights import load_weights
    path, q, _ = _file(tmp_path, kind)
    want = torch.from_numpy(gguf.quants.dequantize(q, kind).copy())
    as_float = load_weights(path, packed=False)["lin.weight"]        # the former float32 load
    assert as_float.dtype == torch.float32 and as_float.shape == (ROWS, COLS)
    # the kernels multiply in half precision as ComfyUI-GGUF's do; gguf-py in float32
    assert torch.allclose(as_float, want, rtol=2e-3, atol=1e-3 * float(want.abs().max()))
    packed = load_weights(path, torch.bfloat16, packed=True)
    expanded = load_weights(path, torch.bfloat16, packed=False)
    w = packed["lin.weight"]
    assert isinstance(w, PackedWeight) and w.dtype == torch.bfloat16 and w.shape == (ROWS, COLS)
    assert type(expanded["lin.weight"]) is torch.Tensor
    x = torch.randn(3, COLS, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16)
    assert torch.equal(torch.nn.functional.linear(x, w, packed["lin.bias"]),
                       torch.nn.functional.linear(x, expanded["lin.weight"], expanded["lin.bias"]))
    assert torch.equal(w.dequantize(), expanded["lin.weight"])
    if kind in ONCE:    # gguf-py's numpy code alone: expanded once, at its first use, and held so (the bf16 bytes)
        assert w.stored.kind == "plain" and held_bytes([w]) == held_bytes([expanded["lin.weight"]])
        return
    # held: the file's blocks, not the bf16 matrix (Q8_0 about 0.53 of it, Q4_K 0.28, Q2_K 0.16)
    assert w.stored.nbytes() == q.nbytes
    assert held_bytes([w]) < held_bytes([expanded["lin.weight"]])
    assert held_bytes(packed.values()) < held_bytes(expanded.values())


def test_a_type_only_gguf_py_reads_is_dequantised_once_across_forwards(tmp_path, monkeypatch):
    """An IQ2_XXS layer (gguf-py's numpy dequantisation, 0.4-0.9 s a 3072 x 3072 matrix) was dequantised at
    every operation reading it, each layer of each step; now at its first use, kept in the compute dtype: counted
    as that before it (a budget sees it), gguf-py's values after, one call across two forwards."""
    from nodes.generate.handles import pipeline_bytes
    from nodes.generate.packed_weight import held_bytes
    from nodes.generate.weights import load_weights
    path, q, _ = _file(tmp_path, T.IQ2_XXS)
    want = torch.from_numpy(gguf.quants.dequantize(q, T.IQ2_XXS).copy()).to(torch.bfloat16)
    calls = []
    real = gguf.quants.dequantize
    monkeypatch.setattr(gguf.quants, "dequantize", lambda *a: calls.append(a[1]) or real(*a))
    state = load_weights(path, torch.bfloat16, packed=True)
    lin = torch.nn.Linear(COLS, ROWS, dtype=torch.bfloat16)
    lin.load_state_dict({"weight": state["lin.weight"], "bias": state["lin.bias"]}, assign=True)
    before = held_bytes([lin.weight])
    assert before == ROWS * COLS * 2 and pipeline_bytes(type("P", (), {"components": {"lin": lin}})) > before
    x = torch.randn(2, COLS, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    with torch.no_grad():
        outs = [lin(x), lin(x)]
    assert calls == [T.IQ2_XXS]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], torch.nn.functional.linear(x, want, lin.bias))
    assert held_bytes([lin.weight]) == before
    # accelerate's sequential offload moves it as type(param)(moved): moved is the kept matrix
    from accelerate.utils import set_module_tensor_to_device
    set_module_tensor_to_device(lin, "weight", "meta")
    assert lin.weight.device.type == "meta" and lin.weight.shape == (ROWS, COLS) and calls == [T.IQ2_XXS]


def test_a_cpu_run_without_room_keeps_dequantising_per_operation_and_says_what_it_costs(tmp_path, monkeypatch,
                                                                                        caplog):
    import graph_engine.devices as devices
    import nodes.common.stream as stream
    from nodes.generate.weights import load_weights
    monkeypatch.setattr(stream, "available_ram", lambda: 10_000)
    monkeypatch.setattr(devices, "run_device", lambda: "cpu")
    path, q, _ = _file(tmp_path, T.IQ3_S)
    w = load_weights(path, torch.bfloat16)["lin.weight"]
    assert "dequantised by gguf-py's numpy code at every step" in caplog.text and "Q4_K" in caplog.text
    w.dequantize()
    assert w.stored.kind == "gguf" and w.stored.nbytes() == q.nbytes


def test_float_tensors_stay_as_stored_unless_a_dtype_is_asked(tmp_path):
    """F16 and BF16 tensors were upcast to float32 at load: twice their bytes for a compute dtype of half."""
    from nodes.generate.weights import load_weights
    path, _, bf16 = _file(tmp_path, T.Q8_0)
    state = load_weights(path)
    assert state["norm.weight"].dtype == torch.float16 and state["lin.bias"].dtype == torch.float32
    emb = state["emb.weight"]
    assert emb.dtype == torch.bfloat16 and emb.shape == (4, 32)
    assert torch.equal(emb.float(), torch.from_numpy(gguf.quants.dequantize(bf16, T.BF16).copy()))
    half = load_weights(path, torch.float16, packed=True)
    assert all(v.dtype == torch.float16 for v in half.values())


@pytest.mark.parametrize("gpu, free, packed", [(False, 64 << 30, False), (False, 10_000, True), (True, 64 << 30, True)])
def test_the_pack_policy_decides_for_gguf_as_for_the_other_formats(tmp_path, monkeypatch, gpu, free, packed):
    import nodes.common.stream as stream
    from nodes.generate.packed_weight import PackedWeight
    from nodes.generate.weights import load_weights
    import graph_engine.devices as devices
    monkeypatch.setattr(stream, "available_ram", lambda: free)
    monkeypatch.setattr(devices, "run_device", lambda: "cuda" if gpu else "cpu")     # the loading run's device
    path, _, _ = _file(tmp_path, T.Q4_K)
    got = load_weights(path, torch.bfloat16)["lin.weight"]      # expanded: about 9.5 KB, over half of 10 KB
    assert isinstance(got, PackedWeight) is packed
    assert torch.equal(got.float(), load_weights(path, torch.bfloat16, packed=False)["lin.weight"].float())


def test_embedding_rows_split_and_a_reshaped_tensor(tmp_path):
    """A text encoder's token table looks up only its rows; a fused matrix split stays packed (each part over its
    own blocks); a tensor stored flattened with ComfyUI-GGUF's orig_shape comes back in its shape."""
    from nodes.generate.packed_weight import PackedWeight
    from nodes.generate.weights import load_weights
    q, conv = blocks(T.Q5_K, 12, 256), blocks(T.Q8_0, 4, 256, seed=3)
    path = tmp_path / "te.gguf"
    write(path, {"tok.weight": (T.Q5_K, q), "conv.weight": (T.Q8_0, conv)},
           {"comfy.gguf.orig_shape.conv.weight": [4, 2, 2, 4, 16]})
    packed = load_weights(path, torch.bfloat16, packed=True)
    plain = load_weights(path, torch.bfloat16, packed=False)
    tokens = torch.tensor([[3, 0, 11, 3]])
    table = packed["tok.weight"]
    assert torch.equal(torch.nn.functional.embedding(tokens, table),
                       torch.nn.functional.embedding(tokens, plain["tok.weight"]))
    parts = torch.split(table, [4, 4, 4])
    assert all(isinstance(p, PackedWeight) for p in parts)
    assert sum(p.stored.nbytes() for p in parts) == q.nbytes
    for p, want in zip(parts, torch.split(plain["tok.weight"], [4, 4, 4])):
        assert torch.equal(p.dequantize(), want)
    assert packed["conv.weight"].shape == (4, 2, 2, 4, 16)
    want = torch.from_numpy(gguf.quants.dequantize(conv, T.Q8_0).copy()).reshape(4, 2, 2, 4, 16)
    assert torch.allclose(plain["conv.weight"].float(), want, rtol=1e-2, atol=1e-3)
    assert torch.equal(packed["conv.weight"].dequantize(), plain["conv.weight"])


def test_a_lora_beside_and_merged_into_a_gguf_layer(tmp_path):
    """A LoRA as diffusers loads it (PEFT's path beside the layer) leaves the GGUF weight packed and gives the
    expanded model's output; merged in place, the layer becomes the plain matrix plus the change, exactly."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer
    from nodes.generate.packed_weight import PackedWeight
    from nodes.generate.weights import load_weights
    path, _, _ = _file(tmp_path, T.Q4_K)

    def model(packed):
        state = load_weights(path, torch.bfloat16, packed=packed)
        with torch.device("meta"):
            m = torch.nn.Sequential(torch.nn.Linear(COLS, ROWS, dtype=torch.bfloat16))
        m.load_state_dict({"0.weight": state["lin.weight"], "0.bias": state["lin.bias"]}, assign=True)
        m = inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, target_modules=["0"]), m)
        g = torch.Generator().manual_seed(5)
        for name, p in m.named_parameters():
            if "lora_" in name:
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        return m

    packed, reference = model(True), model(False)
    x = torch.randn(3, COLS, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(packed(x), reference(x))
        assert isinstance(packed[0].base_layer.weight, PackedWeight)
        for m in list(packed.modules()) + list(reference.modules()):
            if isinstance(m, LoraLayer):
                m.merge()
        assert torch.equal(packed[0].base_layer.weight, reference[0].base_layer.weight)
        assert torch.equal(packed(x), reference(x))


def test_a_flux_gguf_file_builds_packed_and_takes_a_lora(tmp_path):
    """A tiny FLUX.1 in Black Forest Labs' names as a Q4_0 GGUF file (city96's FLUX GGUFs: matrices quantised,
    the rest F16 / F32), built through Kinograph's detection and converter: every matrix but norm_out's (its two
    halves swapped) stays packed, including the double blocks' q, k, v that diffusers' converter writes as
    torch.cat([part]); the output equals the expanded model's, with a LoRA loaded as diffusers loads it too."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_flux import bfl_transformer, parts
    from nodes.generate import converters
    from nodes.generate.detect import detect_file
    from nodes.generate.packed_weight import PackedWeight, module_bytes
    from nodes.generate.weights import load_weights
    transformer = parts(True)[0]
    tensors = {}
    for k, v in bfl_transformer(transformer.state_dict()).items():
        a = v.float().numpy()
        quantised = a.ndim == 2 and a.shape[1] % 32 == 0
        tensors[k] = (T.Q4_0, gguf.quants.quantize(a, T.Q4_0)) if quantised else (None, a.astype(np.float16))
    path = tmp_path / "flux1-dev-tiny-Q4_0.gguf"
    write(path, tensors)
    det = detect_file(path)
    models = {p: converters.build(det, load_weights(path, torch.bfloat16, packed=p), torch.bfloat16, str(path))
              for p in (True, False)}
    matrices = {k: v for k, v in models[True].named_parameters() if v.ndim == 2}
    assert [k for k, v in matrices.items() if not isinstance(v, PackedWeight)] == ["norm_out.linear.weight"]
    assert module_bytes(models[True]) < 0.35 * module_bytes(models[False])
    g = torch.Generator().manual_seed(5)
    lora = {f"transformer.transformer_blocks.0.attn.{p}.lora_{ab}.weight":
            (torch.randn((4, 64) if ab == "A" else (64, 4), generator=g) * 0.1).to(torch.bfloat16)
            for p in ("to_q", "to_v") for ab in "AB"}
    inputs = dict(hidden_states=torch.randn(1, 16, 64, generator=g).to(torch.bfloat16),
                  encoder_hidden_states=torch.randn(1, 4, 32, generator=g).to(torch.bfloat16),
                  pooled_projections=torch.randn(1, 64, generator=g).to(torch.bfloat16),
                  timestep=torch.tensor([0.5]), guidance=torch.tensor([3.5]),
                  img_ids=torch.zeros(16, 3), txt_ids=torch.zeros(4, 3))
    with torch.no_grad():
        plain = [m(**inputs).sample for m in models.values()]
        assert torch.equal(*plain)
        for m in models.values():
            m.load_lora_adapter(dict(lora), prefix="transformer", adapter_name="style")
        got, want = (m(**inputs).sample for m in models.values())
    assert isinstance(models[True].transformer_blocks[0].attn.to_q.base_layer.weight, PackedWeight)
    assert torch.equal(got, want) and not torch.equal(got, plain[0])
    q = models[True].transformer_blocks[1].attn.to_q.weight
    copy = torch.cat([q])
    copy.add_(1)        # the copy made plain in place; the weight it was made from unchanged
    assert isinstance(q, PackedWeight) and torch.equal(copy, q.dequantize() + 1)


def test_a_quant_type_nothing_dequantises_is_named_with_the_file_to_get(tmp_path):
    """Q8_K (llama.cpp's intermediate type) is dequantised neither by diffusers' kernels nor by gguf-py: the
    message named its number ('quantization type: 15 which is unsupported') and nothing to use instead."""
    from graph_engine import NodeError
    from nodes.generate.weights import load_weights
    path = tmp_path / "model-Q8_K.gguf"
    write(path, {"lin.weight": (T.Q8_K, np.zeros((2, gguf.GGML_QUANT_SIZES[T.Q8_K][1]), np.uint8))})
    with pytest.raises(NodeError, match=r"model-Q8_K.gguf: lin.weight is stored as GGUF Q8_K, .* a Q8_0, Q6_K, "
                                        r"Q5_K_M or Q4_K_M file of the same model"):
        load_weights(path)
