"""Quantised layers stay quantised in memory (nodes/generate/packed_weight.py): a tiny model loaded from each of
ComfyUI's quantised forms (NVFP4, MXFP8, int8_convrot, convrot_w4a4, fp8_scaled, plain fp8) holds the stored bytes,
not the expanded matrices, and computes what the published dequantisation (tests/comfy_blockquant.py,
tests/comfy_convrot.py, weight * scale_weight) gives; moves, casts, state_dict, LoRA (PEFT's side path and merged)
and GPT-OSS's expert banks keep working."""
from __future__ import annotations

import pytest
import torch

import comfy_blockquant as ref
import comfy_convrot as cr
from comfy_layouts import fp8_scaled

FORMATS = ("nvfp4", "mxfp8", "int8_convrot", "convrot_w4a4", "fp8_scaled", "fp8")


class Tiny(torch.nn.Module):
    def __init__(self, device=None, dtype=torch.bfloat16):
        super().__init__()
        self.blocks = torch.nn.Sequential(torch.nn.Linear(256, 256, device=device, dtype=dtype), torch.nn.GELU(),
                                          torch.nn.Linear(256, 256, device=device, dtype=dtype))

    def forward(self, x):
        return self.blocks(x)


def _plain_state():
    g = torch.Generator().manual_seed(0)
    return {f"blocks.{i}.{p}": torch.randn(*((256, 256) if p == "weight" else (256,)), generator=g) * 0.05
            for i in (0, 2) for p in ("weight", "bias")}


def _stored(fmt: str):
    """(the file's tensors in `fmt`, each weight by the published dequantisation in float32)."""
    plain = _plain_state()
    layers = ("blocks.0", "blocks.2")
    if fmt in ("nvfp4", "mxfp8"):
        state = {k: v for k, v in plain.items() if k.endswith(".bias")}
        for base in layers:
            state.update(ref.quantise_layer(base, plain[base + ".weight"], fmt))
        want = {base: ref.dequantise_layer(state, base, fmt) for base in layers}
    elif fmt in ("int8_convrot", "convrot_w4a4"):
        state = cr.quantise_file_state(plain)
        if fmt == "convrot_w4a4":
            for base in layers:
                q, scale = cr.quantize_convrot_w4a4_weight(plain[base + ".weight"], 256)
                state[base + ".weight"], state[base + ".weight_scale"] = q, scale
                state[base + ".comfy_quant"] = cr.tag({"format": "convrot_w4a4", "convrot_groupsize": 256})
            want = {b: cr.dequantize_convrot_w4a4_weight(state[b + ".weight"], state[b + ".weight_scale"], 256)
                    for b in layers}
        else:
            want = {b: cr.dequantize_int8_convrot_weight(state[b + ".weight"], state[b + ".weight_scale"], 256)
                    for b in layers}
    elif fmt == "fp8_scaled":
        state = fp8_scaled(plain)
        want = {b: state[b + ".weight"].float() * state[b + ".scale_weight"] for b in layers}
    else:
        state = {k: v.to(torch.float8_e4m3fn) if k.endswith(".weight") else v for k, v in plain.items()}
        want = {b: state[b + ".weight"].float() for b in layers}
    return state, want


def _load(state, packed: bool, dtype=torch.bfloat16):
    from nodes.generate.weights import dequantise
    model = Tiny(device="meta", dtype=dtype)
    model.load_state_dict(dequantise(state, dtype, packed=packed), assign=True)
    return model


def _reference(want, dtype=torch.bfloat16):
    """The model built from the published dequantisation's weights, in `dtype`."""
    model = Tiny(dtype=dtype)
    plain = _plain_state()
    model.load_state_dict({**{k: v.to(dtype) for k, v in plain.items() if k.endswith(".bias")},
                           **{b + ".weight": w.to(dtype) for b, w in want.items()}})
    return model


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_packed_model_holds_the_stored_bytes_and_computes_the_published_values(fmt):
    """Loaded packed, the model's parameters hold the file's packed weights and scales (about half the bf16 model for
    the one-byte formats, under a third for the 4-bit ones) and its output is that of the
    model built from the published dequantisation, bit for bit; loaded expanded (the former way) it holds the bf16
    matrices."""
    from nodes.generate.packed_weight import PackedWeight, module_bytes
    state, want = _stored(fmt)
    packed, expanded, reference = _load(state, True), _load(state, False), _reference(want)
    assert all(isinstance(packed.blocks[i].weight, PackedWeight) for i in (0, 2))
    assert isinstance(packed.blocks[0].weight, torch.nn.Parameter)
    x = torch.randn(3, 256, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    with torch.no_grad():
        got, anchor, published = packed(x), expanded(x), reference(x)
    assert torch.equal(got, published) and torch.equal(anchor, published)
    plain_bytes = module_bytes(expanded)
    assert plain_bytes == 2 * (256 * 256 + 256) * 2
    held = module_bytes(packed)
    weights = sum(v.untyped_storage().nbytes() for k, v in state.items() if k.endswith(".weight"))
    assert weights <= held < plain_bytes
    # one byte a value and its scales against bf16's two; 4-bit formats half a byte
    assert held < plain_bytes * (0.3 if fmt in ("nvfp4", "convrot_w4a4") else 0.52)


@pytest.mark.parametrize("fmt", ("nvfp4", "int8_convrot", "fp8_scaled"))
def test_casts_moves_and_state_dict_keep_it_packed(fmt):
    """.float() keeps the packed bytes and gives the values the expanded bf16 weight cast to float32 had;
    state_dict() and a second model built from that state dict (assign=True) keep it packed; a plain model loading
    that state dict gets the values; .to() a device moves the stored tensors and keeps the parameter."""
    from nodes.generate.packed_weight import PackedWeight, module_bytes
    state, want = _stored(fmt)
    model = _load(state, True)
    held = module_bytes(model)
    model.float().to("cpu")
    w = model.blocks[0].weight
    assert isinstance(w, PackedWeight) and isinstance(w, torch.nn.Parameter) and w.dtype == torch.float32
    assert module_bytes(model) == held + 2 * 256 * 2      # the biases are float32 now
    assert torch.equal(w, want["blocks.0"].to(torch.bfloat16).float())
    sd = model.state_dict()
    assert isinstance(sd["blocks.2.weight"], PackedWeight)
    again = Tiny(device="meta", dtype=torch.float32)
    again.load_state_dict(sd, assign=True)
    assert module_bytes(again) == module_bytes(model)
    plain = Tiny(dtype=torch.float32)
    plain.load_state_dict(model.state_dict())      # a fresh one: assign=True above marked sd's metadata to assign
    assert type(plain.blocks[2].weight.data) is torch.Tensor and torch.equal(plain.blocks[2].weight, want["blocks.2"].to(torch.bfloat16).float())
    assert torch.equal(w.t(), want["blocks.0"].to(torch.bfloat16).float().t()) and isinstance(w.t(), PackedWeight)
    from accelerate.utils import set_module_tensor_to_device
    set_module_tensor_to_device(model.blocks[2], "weight", "meta")     # how sequential CPU offload moves a weight
    moved = model.blocks[2].weight
    assert isinstance(moved, PackedWeight) and {t.device.type for t in moved.stored.tensors.values()} == {"meta"}
    model.to("meta")        # a device move (the CPU's only other device): the same parameter, its stored tensors moved
    assert model.blocks[0].weight is w and w.device.type == "meta"
    assert {t.device.type for t in w.stored.tensors.values()} == {"meta"}


def test_a_cast_through_data_as_the_converters_do_it():
    """converters' _cast sets `param.data = param.data.to(dtype)`, which keeps the object (and what it holds) and
    changes its dtype alone: the packed model then computes in that dtype what the expanded model cast alike does."""
    from nodes.generate.converters import _cast
    from nodes.generate.packed_weight import PackedWeight
    state, want = _stored("nvfp4")
    packed, reference = _load(state, True), _reference(want)
    _cast(packed, torch.float32)
    _cast(reference, torch.float32)
    assert isinstance(packed.blocks[0].weight, PackedWeight) and packed.blocks[0].weight.dtype == torch.float32
    x = torch.randn(3, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(packed(x), reference(x))


def _lora(model, g):
    from peft import LoraConfig, inject_adapter_in_model
    model = inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, target_modules=["0", "2"]), model)
    for name, p in model.named_parameters():
        if "lora_" in name:
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


@pytest.mark.parametrize("fmt", ("nvfp4", "int8_convrot"))
def test_a_lora_beside_and_merged_into_a_packed_layer(fmt):
    """A LoRA as diffusers loads it (PEFT's low-rank path beside the layer) leaves the weight packed and gives the
    expanded model's output with the same LoRA; merged into the weight (PEFT's merge adds the change in place) the
    layer becomes the plain matrix plus the change, as merging into the expanded model gives."""
    from peft.tuners.lora import LoraLayer
    from nodes.generate.packed_weight import PackedWeight, module_bytes
    state, want = _stored(fmt)
    held = module_bytes(_load(state, True))
    packed = _lora(_load(state, True), torch.Generator().manual_seed(2))
    reference = _lora(_reference(want), torch.Generator().manual_seed(2))
    x = torch.randn(3, 256, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(packed(x), reference(x))
    layer = packed.blocks[0]
    assert isinstance(layer.base_layer.weight, PackedWeight)
    lora_bytes = sum(p.untyped_storage().nbytes() for n, p in packed.named_parameters() if "lora_" in n)
    assert module_bytes(packed) == held + lora_bytes
    with torch.no_grad():
        for m in list(packed.modules()) + list(reference.modules()):
            if isinstance(m, LoraLayer):
                m.merge()
        assert torch.equal(packed.blocks[0].base_layer.weight, reference.blocks[0].base_layer.weight)
        assert torch.equal(packed(x), reference(x))


@pytest.mark.parametrize("fmt", ("nvfp4", "mxfp8"))
def test_gpt_oss_expert_banks_stay_packed(fmt):
    """ComfyUI's MoEExperts banks ([experts, out, in], each expert quantised alone) taken as transformers'
    GptOssExperts takes them (transposed, as converters/lens.py gives them) stay packed, each expert expanded alone
    when the router picks it, and the layer computes what the bank dequantised by the published code gives."""
    from transformers import GptOssConfig
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssExperts
    from nodes.generate.packed_weight import PackedWeight, module_bytes
    from nodes.generate.weights import dequantise
    g = torch.Generator().manual_seed(3)
    config = GptOssConfig(hidden_size=64, intermediate_size=32, num_local_experts=4)
    state = {}
    for name, shape in (("gate_up_proj", (4, 64, 64)), ("down_proj", (4, 64, 32))):
        state.update(ref.quantise_layer(f"experts.{name}", torch.randn(*shape, generator=g) * 0.1, fmt))
        state[f"experts.{name}.bias"] = torch.randn(4, shape[1], generator=g) * 0.1
    plain = {f"experts.{n}": ref.dequantise_layer(state, f"experts.{n}", fmt) for n in ("gate_up_proj", "down_proj")}

    def build(tensors):
        experts = GptOssExperts(config)
        experts.load_state_dict({"gate_up_proj": tensors["experts.gate_up_proj.weight"].transpose(1, 2),
                                 "down_proj": tensors["experts.down_proj.weight"].transpose(1, 2),
                                 "gate_up_proj_bias": tensors["experts.gate_up_proj.bias"],
                                 "down_proj_bias": tensors["experts.down_proj.bias"]}, assign=True)
        return experts

    packed = build(dequantise(state, torch.float32, packed=True))
    reference = build({**state, **{k + ".weight": v for k, v in plain.items()}})
    bank = packed.gate_up_proj
    assert isinstance(bank, PackedWeight) and bank.shape == (4, 64, 64) and isinstance(bank[2], PackedWeight)
    assert torch.equal(bank[2], plain["experts.gate_up_proj"][2].T)
    assert module_bytes(packed) < module_bytes(reference) / 2
    x = torch.randn(5, 64, generator=g)
    idx = torch.tensor([[0, 2], [1, 3], [2, 0], [3, 1], [0, 1]])
    weights = torch.softmax(torch.randn(5, 2, generator=g), -1)
    with torch.no_grad():
        assert torch.equal(packed(x, idx, weights), reference(x, idx, weights))


@pytest.mark.parametrize("implementation", ("grouped_mm", "batched_mm", "eager"))
@pytest.mark.parametrize("fmt", ("nvfp4", "mxfp8"))
def test_only_the_experts_a_token_is_routed_to_are_expanded(fmt, implementation, monkeypatch):
    """A bank of 8 experts, each token routed to 4 (as GPT-OSS-20B routes to 4 of 32), computed the three ways
    transformers computes GptOssExperts (grouped_mm is what a GptOssModel uses): only the routed experts' matrices
    are expanded, and the output is bit for bit that of the bank dequantised whole by the published code."""
    import nodes.generate.block_quant as bq
    from transformers import GptOssConfig
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssExperts
    from nodes.generate.weights import dequantise
    g = torch.Generator().manual_seed(5)
    config = GptOssConfig(hidden_size=64, intermediate_size=32, num_local_experts=8)
    config._experts_implementation = implementation
    state = {}
    for name, shape in (("gate_up_proj", (8, 64, 64)), ("down_proj", (8, 64, 32))):
        state.update(ref.quantise_layer(f"experts.{name}", torch.randn(*shape, generator=g) * 0.1, fmt))
        state[f"experts.{name}.bias"] = torch.randn(8, shape[1], generator=g) * 0.1
    plain = {f"experts.{n}.weight": ref.dequantise_layer(state, f"experts.{n}", fmt).to(torch.bfloat16)
             for n in ("gate_up_proj", "down_proj")}

    def build(tensors):
        experts = GptOssExperts(config)
        experts.load_state_dict({"gate_up_proj": tensors["experts.gate_up_proj.weight"].transpose(1, 2),
                                 "down_proj": tensors["experts.down_proj.weight"].transpose(1, 2),
                                 "gate_up_proj_bias": tensors["experts.gate_up_proj.bias"].to(torch.bfloat16),
                                 "down_proj_bias": tensors["experts.down_proj.bias"].to(torch.bfloat16)}, assign=True)
        return experts

    packed = build(dequantise(state, torch.bfloat16, packed=True))
    reference = build({**state, **plain})
    expanded = []
    expand = bq.expand
    monkeypatch.setattr(bq, "expand", lambda *a: expanded.append(a[1].shape[0]) or expand(*a))
    x = torch.randn(2, 64, generator=g).to(torch.bfloat16)
    idx = torch.tensor([[6, 1, 3, 4], [3, 1, 4, 6]])        # two tokens, the same 4 experts in another order
    weights = torch.softmax(torch.randn(2, 4, generator=g), -1).to(torch.bfloat16)
    with torch.no_grad():
        got, want = packed(x, idx, weights), reference(x, idx, weights)
    assert torch.equal(got, want)
    assert sum(expanded) == 2 * 4, expanded         # the 4 routed experts of each of the two banks, of 8 each


@pytest.mark.parametrize("fmt, backend", [("nvfp4", "inductor"), ("int8_convrot", "aot_eager"),
                                          ("fp8_scaled", "aot_eager")])
def test_torch_compile_traces_a_packed_model(fmt, backend):
    """torch.compile of a model holding packed weights (it stopped deep in dynamo: the weight's stored tensors were
    hidden from it) traces the expansion into one graph and computes what the model computes uncompiled; the model
    stays packed and runs uncompiled after."""
    from nodes.generate.packed_weight import PackedWeight
    state, _ = _stored(fmt)
    model = _load(state, True)
    x = torch.randn(4, 256, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    torch._dynamo.reset()
    with torch.no_grad():
        want = model(x)
        got = torch.compile(model, fullgraph=True, backend=backend)(x)
        assert torch.equal(got, want)
        assert torch.equal(model(x), want)
    assert isinstance(model.blocks[0].weight, PackedWeight)


def test_load_weights_gives_packed_layers_of_a_file(tmp_path):
    """load_weights (every loader's reader) gives a quantised file's layers packed: the state dict holds the file's
    bytes, and a damaged layer is still refused at load, naming it, not at the first step."""
    from safetensors.torch import save_file
    from graph_engine import NodeError
    from nodes.generate.packed_weight import held_bytes
    from nodes.generate.weights import load_weights
    state, want = _stored("nvfp4")
    save_file(state, str(tmp_path / "m.safetensors"))
    got = load_weights(tmp_path / "m.safetensors", packed=True)
    assert held_bytes(got.values()) < held_bytes(load_weights(tmp_path / "m.safetensors", packed=False).values()) / 3
    assert torch.equal(got["blocks.0.weight"], want["blocks.0"].to(torch.bfloat16))
    state["blocks.2.weight_scale_2"] = torch.tensor(float("nan"))
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(NodeError, match="bad.safetensors: blocks.2 is tagged nvfp4 .* NaN"):
        load_weights(tmp_path / "bad.safetensors")


def test_an_nvfp4_gpt_oss_text_encoder_loads_packed_through_its_converter(tmp_path):
    """Lens's GPT-OSS text encoder as Comfy-Org's gpt_oss_20b_nvfp4 holds it (attention and expert banks NVFP4, the
    rest bf16), read the way a workflow reads it (detect_file, load_weights, the gpt_oss converter): each quantised
    layer stays packed (the banks through the converter's transpose), the model holds far fewer bytes than the same
    file expanded at load, and its hidden states are the expanded model's."""
    from safetensors.torch import save_file
    from nodes.generate import converters
    from types import SimpleNamespace
    from nodes.generate.detect import detect_file
    from nodes.generate.handles import pipeline_bytes
    from nodes.generate.packed_weight import PackedWeight, module_bytes
    from nodes.generate.weights import load_weights
    from tiny_lens import gpt_oss_file
    state = gpt_oss_file()
    quantised = dict(state)
    for name, w in state.items():
        if name.endswith(".weight") and (".self_attn." in name or ".experts." in name) and w.ndim >= 2 \
                and w.shape[-1] % 16 == 0 and w.shape[-2] % 16 == 0:
            del quantised[name]
            quantised.update(ref.quantise_layer(name[: -len(".weight")], w, "nvfp4"))
    path = tmp_path / "gpt_oss_tiny_nvfp4.safetensors"
    save_file(quantised, str(path))
    det = detect_file(path)
    packed = converters.build(det, load_weights(path, torch.bfloat16, packed=True), torch.bfloat16, str(path))
    expanded = converters.build(det, load_weights(path, torch.bfloat16, packed=False), torch.bfloat16, str(path))
    kept = [n for n, p in packed.named_parameters() if isinstance(p, PackedWeight)]
    assert len(kept) == 24 * 5 and sum(n.endswith("experts.gate_up_proj") for n in kept) == 24
    # the tiny matrices' block scales are padded to cuBLAS's 128-row tiles: 20B's are a sixteenth of a byte a value
    assert module_bytes(packed) < module_bytes(expanded) * 0.6
    # what the model cache and the offload choice count (an expanded count sent a 16 GB card's run to CPU offload)
    assert pipeline_bytes(SimpleNamespace(components={"text_encoder": packed})) < \
        pipeline_bytes(SimpleNamespace(components={"text_encoder": expanded})) * 0.6
    ids = torch.tensor([[1, 5, 9, 200, 17, 3]])
    with torch.no_grad():
        assert torch.equal(packed(input_ids=ids).last_hidden_state, expanded(input_ids=ids).last_hidden_state)


def test_a_lora_loads_through_diffusers_onto_a_packed_transformer():
    """Kinograph applies a LoRA with diffusers' loader (model_manager.activate_loras: load_lora_weights, PEFT's
    layers beside the model's): on a tiny FLUX.1 transformer whose matrices are NVFP4 the LoRA loads, the layers it
    changes keep their packed weights, and the output is the expanded transformer's with the same LoRA."""
    from diffusers import FluxTransformer2DModel
    from nodes.generate.packed_weight import PackedWeight
    from nodes.generate.weights import dequantise
    torch.manual_seed(4)
    config = dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                  num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(4, 6, 6))
    plain = FluxTransformer2DModel(**config).to(torch.bfloat16).state_dict()
    stored = {}
    for k, v in plain.items():
        if k.endswith(".weight") and v.ndim == 2 and v.shape[0] % 16 == 0 and v.shape[1] % 16 == 0:
            stored.update(ref.quantise_layer(k[: -len(".weight")], v.float(), "nvfp4"))
        else:
            stored[k] = v

    def build(state):
        with torch.device("meta"):
            model = FluxTransformer2DModel(**config).to(torch.bfloat16)
        model.load_state_dict(state, assign=True)
        return model.eval()

    packed = build(dequantise(stored, torch.bfloat16, packed=True))
    expanded = build(dequantise(stored, torch.bfloat16, packed=False))
    g = torch.Generator().manual_seed(5)
    lora = {f"transformer.transformer_blocks.0.attn.{p}.lora_{ab}.weight":
            (torch.randn((4, 32) if ab == "A" else (32, 4), generator=g) * 0.1).to(torch.bfloat16)
            for p in ("to_q", "to_k") for ab in "AB"}
    for model in (packed, expanded):
        model.load_lora_adapter(dict(lora), prefix="transformer", adapter_name="style")
    assert isinstance(packed.transformer_blocks[0].attn.to_q.base_layer.weight, PackedWeight)
    inputs = dict(hidden_states=torch.randn(1, 16, 16, generator=g).to(torch.bfloat16),
                  encoder_hidden_states=torch.randn(1, 4, 32, generator=g).to(torch.bfloat16),
                  pooled_projections=torch.randn(1, 32, generator=g).to(torch.bfloat16),
                  timestep=torch.tensor([0.5]), img_ids=torch.zeros(16, 3), txt_ids=torch.zeros(4, 3))
    with torch.no_grad():
        got, want = packed(**inputs).sample, expanded(**inputs).sample
        packed.disable_lora()
        without = packed(**inputs).sample
    assert torch.equal(got, want) and not torch.equal(got, without)


@pytest.mark.parametrize("fmt", ("nvfp4", "fp8"))
def test_a_cast_is_a_copy_that_an_in_place_change_of_either_leaves_the_other_alone(fmt):
    """.to(another dtype) copies, as for a plain tensor: an in-place change of the float16 copy (a LoRA fused into
    it, copy_) changed the weight it was made from as well; and the other way round, also once the weight is
    plain."""
    from nodes.generate.weights import dequantise
    state, want = _stored(fmt)
    w = want["blocks.0"].to(torch.bfloat16)
    p = dequantise(state, torch.bfloat16, packed=True)["blocks.0.weight"]
    half = p.to(torch.float16)
    half.add_(1)
    assert torch.equal(p, w) and torch.equal(half, w.half() + 1)
    p.add_(2)
    assert torch.equal(half, w.half() + 1) and torch.equal(p, w + 2)
    again = p.to(torch.float16)         # of the weight made plain
    again.add_(4)
    assert torch.equal(p, w + 2) and torch.equal(again, (w + 2).half() + 4)


@pytest.mark.parametrize("fmt", ("nvfp4", "mxfp8", "fp8_scaled", "fp8"))
def test_an_embedding_expands_the_rows_it_looks_up(fmt, monkeypatch):
    """F.embedding of a packed table (a text encoder's token embedding stored fp8) gives the published values and
    expands the rows looked up alone: it expanded the whole table each call (T5-XXL's 32128 x 4096, 0.5 GB in
    float32, for 77 tokens). (ConvRot, whose files quantise linear layers, still expands it whole: its float32
    rotation rounds by how many rows go in.)"""
    from nodes.generate.packed_weight import Stored
    from nodes.generate.weights import dequantise
    state, want = _stored(fmt)
    table = dequantise(state, torch.bfloat16, packed=True)["blocks.0.weight"]
    made = []
    expand = Stored.expand
    monkeypatch.setattr(Stored, "expand", lambda self, *a: made.append(expand(self, *a).numel()) or expand(self, *a))
    tokens = torch.tensor([[5, 7, 5], [255, 0, 9]])
    got = torch.nn.functional.embedding(tokens, table)
    assert torch.equal(got, torch.nn.functional.embedding(tokens, want["blocks.0"].to(torch.bfloat16)))
    assert made and max(made) <= tokens.numel() * 256


@pytest.mark.parametrize("fmt", ("nvfp4", "mxfp8", "fp8_scaled", "fp8"))
def test_a_fused_matrix_split_into_its_parts_stays_packed(fmt):
    """FLUX.1's single blocks fuse q, k, v and the MLP's input in one `linear1` (the double blocks' attention q, k,
    v in one `qkv`); the converters split it by rows (converters.split_single_block, diffusers' chunk). The parts
    stay packed, together holding the fused matrix's stored bytes, with the published values: each part was the
    expanded matrix (a quarter of FLUX.1's weights held in bf16 where ComfyUI holds them fp8)."""
    from nodes.generate.converters import split_single_block
    from nodes.generate.packed_weight import PackedWeight, held_bytes
    from nodes.generate.weights import dequantise
    g = torch.Generator().manual_seed(3)
    fused = {"single_blocks.0.linear1.weight": torch.randn(1024, 256, generator=g) * 0.05}
    if fmt in ("nvfp4", "mxfp8"):
        state = ref.quantise_layer("single_blocks.0.linear1", fused["single_blocks.0.linear1.weight"], fmt)
        want = ref.dequantise_layer(state, "single_blocks.0.linear1", fmt)
    elif fmt == "fp8_scaled":
        state = fp8_scaled(fused)
        want = state["single_blocks.0.linear1.weight"].float() * state["single_blocks.0.linear1.scale_weight"]
    else:
        state = {k: v.to(torch.float8_e4m3fn) for k, v in fused.items()}
        want = state["single_blocks.0.linear1.weight"].float()
    want = want.to(torch.bfloat16)
    w = dequantise(state, torch.bfloat16, packed=True)["single_blocks.0.linear1.weight"]
    parts = split_single_block("single_blocks.0.linear1.weight", w, 192)
    assert [tuple(p.shape) for p in parts.values()] == [(192, 256)] * 3 + [(448, 256)]
    assert all(isinstance(p, PackedWeight) for p in parts.values())
    assert held_bytes(parts.values()) <= held_bytes([w]) + 4 * 4       # each part counting the one matrix scale
    assert torch.equal(torch.cat([p.dequantize() for p in parts.values()]), want)
    for got, rows in ((w.chunk(3)[1], want.chunk(3)[1]), (w[100:300], want[100:300]), (w[-5:], want[-5:])):
        assert isinstance(got, PackedWeight) and torch.equal(got, rows)
    assert torch.equal(w[::2], want[::2])       # a step: the plain rows


@pytest.mark.parametrize("fmt", ("nvfp4", "fp8"))
def test_writing_into_part_of_a_packed_weight_is_kept(fmt):
    """weight[rows] = ..., weight[:, column] = ..., weight[i, j] = ... (what a textual inversion or an
    initialisation of a padding row does) change the weight as they change the expanded matrix: the write went
    into a temporary expansion (or a packed part of its own) and was lost without a word."""
    from nodes.generate.weights import dequantise
    state, want = _stored(fmt)
    p = dequantise(state, torch.bfloat16, packed=True)["blocks.0.weight"]
    w = want["blocks.0"].to(torch.bfloat16)
    with torch.no_grad():
        for target in (p, w):
            target[0:2] = 0
            target[:, 3] = 1
            target[5, 7] = 2
            target.data[9:11] = 3
    assert torch.equal(p, w)
