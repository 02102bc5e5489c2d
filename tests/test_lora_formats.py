"""LoRA files as ComfyUI / A1111 / Forge users have them in models/loras and models/LyCORIS, applied to a tiny
SD 1.5: kohya LoRA and LoCon, LyCORIS LoHa, LoKr (also factored and Tucker), DoRA and full diff. Each test writes
the file with the published tensor names (kohya sd-scripts networks/lora.py, LyCORIS lycoris/modules) and
checks the layer's output against the merged weight computed here from the file's own tensors, by the formulas
ComfyUI applies (comfy/weight_adapter), at a strength other than 1."""
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from graph_engine import NodeError

sys.path.insert(0, str(Path(__file__).resolve().parent))

LIN = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"     # Linear 32 -> 32
CONV = "down_blocks.0.resnets.0.conv1"                                  # Conv2d 32 -> 32, 3 x 3
K_LIN, K_CONV = "lora_unet_" + LIN.replace(".", "_"), "lora_unet_" + CONV.replace(".", "_")
STRENGTH = 0.7


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    from tiny_models import build_sd15_single_file
    return build_sd15_single_file(tmp_path_factory.mktemp("sd15")) / "diffusers"


def _pipe(folder):
    from diffusers import StableDiffusionPipeline
    return StableDiffusionPipeline.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False)


def _out(module, x):
    with torch.no_grad():
        return module(x)


def _apply(folder, tmp_path, state, strength=STRENGTH):
    """(pipe with the LoRA active, the unet's modules before it) for a file holding `state`."""
    from nodes.generate.model_manager import activate_loras
    path = tmp_path / "adapter.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    pipe = _pipe(folder)
    before = {n: (m.weight.detach().clone(), None if m.bias is None else m.bias.detach().clone())
              for n, m in pipe.unet.named_modules() if n in (LIN, CONV)}
    activate_loras(pipe, [(str(path), strength)])
    return pipe, before


def _check(pipe, before, deltas):
    """The model's layers give the outputs of their weights plus strength x the expected change."""
    mods = dict(pipe.unet.named_modules())
    torch.manual_seed(5)
    for name, delta in deltas.items():
        w, b = before[name]
        if w.dim() == 2:
            x = torch.randn(3, w.shape[1])
            want = F.linear(x, w + STRENGTH * delta, b)
            base = F.linear(x, w, b)
        else:
            x = torch.randn(1, w.shape[1], 8, 8)
            want = F.conv2d(x, w + STRENGTH * delta, b, padding=1)
            base = F.conv2d(x, w, b, padding=1)
        got = _out(mods[name], x)
        assert (got - base).abs().max() > 1e-3, f"{name}: the adapter changed nothing"
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def _r(*shape):
    return torch.randn(*shape) * 0.3


def test_kohya_lora_and_locon(sd, tmp_path):
    torch.manual_seed(0)
    d, u, cd, cu = _r(4, 32), _r(32, 4), _r(4, 32, 3, 3), _r(32, 4, 1, 1)
    state = {f"{K_LIN}.lora_down.weight": d, f"{K_LIN}.lora_up.weight": u, f"{K_LIN}.alpha": torch.tensor(2.0),
             f"{K_CONV}.lora_down.weight": cd, f"{K_CONV}.lora_up.weight": cu, f"{K_CONV}.alpha": torch.tensor(8.0)}
    pipe, before = _apply(sd, tmp_path, state)
    conv = torch.einsum("or,rikl->oikl", cu[:, :, 0, 0], cd)
    _check(pipe, before, {LIN: u @ d * (2.0 / 4), CONV: conv * (8.0 / 4)})


def test_loha_linear_and_conv(sd, tmp_path):
    torch.manual_seed(1)
    a1, b1, a2, b2 = _r(32, 3), _r(3, 32), _r(32, 3), _r(3, 32)
    c1, c2, c3, c4 = _r(32, 2), _r(2, 32 * 9), _r(32, 2), _r(2, 32 * 9)
    state = {f"{K_LIN}.hada_w1_a": a1, f"{K_LIN}.hada_w1_b": b1, f"{K_LIN}.hada_w2_a": a2, f"{K_LIN}.hada_w2_b": b2,
             f"{K_LIN}.alpha": torch.tensor(1.5),
             f"{K_CONV}.hada_w1_a": c1, f"{K_CONV}.hada_w1_b": c2, f"{K_CONV}.hada_w2_a": c3,
             f"{K_CONV}.hada_w2_b": c4}
    pipe, before = _apply(sd, tmp_path, state)
    # LoHa: (w1_a w1_b) Hadamard (w2_a w2_b), scaled by alpha / rank; a flat conv change folds into the kernel.
    _check(pipe, before, {LIN: (a1 @ b1) * (a2 @ b2) * (1.5 / 3),
                          CONV: ((c1 @ c2) * (c3 @ c4)).reshape(32, 32, 3, 3)})


def test_lokr_full_and_factored(sd, tmp_path):
    torch.manual_seed(2)
    w1, w2 = _r(4, 4), _r(8, 8)
    f1a, f1b, f2a, f2b = _r(4, 2), _r(2, 4), _r(8, 2), _r(2, 72)
    state = {f"{K_LIN}.lokr_w1": w1, f"{K_LIN}.lokr_w2": w2,
             f"{K_CONV}.lokr_w1_a": f1a, f"{K_CONV}.lokr_w1_b": f1b, f"{K_CONV}.lokr_w2_a": f2a,
             f"{K_CONV}.lokr_w2_b": f2b, f"{K_CONV}.alpha": torch.tensor(1.0)}
    pipe, before = _apply(sd, tmp_path, state)
    # LoKr: kron(w1, w2); a factored w2 carries alpha / its rank.
    _check(pipe, before, {LIN: torch.kron(w1, w2),
                          CONV: (torch.kron(f1a @ f1b, f2a @ f2b) * (1.0 / 2)).reshape(32, 32, 3, 3)})


def test_full_diff(sd, tmp_path):
    torch.manual_seed(3)
    diff, cdiff = _r(32, 32), _r(32, 32, 3, 3)
    pipe, before = _apply(sd, tmp_path, {f"{K_LIN}.diff": diff, f"{K_CONV}.diff": cdiff})
    _check(pipe, before, {LIN: diff, CONV: cdiff})


def test_a_full_diff_with_bias_changes_is_refused_by_name(sd, tmp_path):
    torch.manual_seed(3)
    state = {f"{K_LIN}.diff": _r(32, 32), f"{K_CONV}.diff": _r(32, 32, 3, 3), f"{K_CONV}.diff_b": _r(32)}
    with pytest.raises(NodeError, match=r"adapter.safetensors changes layer biases .*conv1\.diff_b"):
        _apply(sd, tmp_path, state)


@pytest.mark.parametrize("axis", ["in", "out"])
def test_dora(sd, tmp_path, axis):
    """DoRA: W' = m (W + dW) / ||W + dW||, the norm along dora_scale's axis; strength s gives W + s (W' - W)."""
    torch.manual_seed(4)
    d, u = _r(4, 32), _r(32, 4)
    scale = torch.rand(1, 32) + 0.5 if axis == "in" else torch.rand(32, 1) + 0.5
    state = {f"{K_LIN}.lora_down.weight": d, f"{K_LIN}.lora_up.weight": u, f"{K_LIN}.alpha": torch.tensor(4.0),
             f"{K_LIN}.dora_scale": scale}
    pipe, before = _apply(sd, tmp_path, state)
    w = before[LIN][0]
    calc = w + u @ d
    norm = calc.norm(dim=0, keepdim=True) if axis == "in" else calc.norm(dim=1, keepdim=True)
    _check(pipe, before, {LIN: calc * scale / norm - w})


def test_a_lycoris_file_for_another_model_says_so(sd, tmp_path):
    """An SDXL-sized LoHa (640-wide) on SD 1.5's 32-wide layer: named, not a shape traceback."""
    state = {f"{K_CONV}.hada_w1_a": _r(640, 2), f"{K_CONV}.hada_w1_b": _r(2, 640 * 9),
             f"{K_CONV}.hada_w2_a": _r(640, 2), f"{K_CONV}.hada_w2_b": _r(2, 640 * 9)}
    with pytest.raises(NodeError, match=r"adapter.safetensors: layer lora_unet_down_blocks_0_resnets_0_conv1 does "
                                        r"not fit the model .*another model"):
        _apply(sd, tmp_path, state)


def test_lycoris_files_are_detected_as_loras():
    from nodes.generate.detect import detect_state_dict
    for state in ({f"{K_LIN}.hada_w1_a": torch.zeros(1)}, {"diffusion_model.blocks.0.self_attn.q.lokr_w1": torch.zeros(1)},
                  {f"{K_LIN}.diff": torch.zeros(1)}, {f"{K_LIN}.oft_blocks": torch.zeros(1)},
                  {f"diffusion_model.blocks.0.self_attn.q.{p}.weight": torch.zeros(1) for p in ("a1", "a2", "b1", "b2")}):
        assert detect_state_dict(state).role == "lora", state


def test_loras_that_multiply_out_past_memory_are_refused_before_they_are(tmp_path, monkeypatch):
    """A LoKr's Kronecker product holds the product of its factors' sizes: two 300 x 300 factors (360 KB as fp16)
    made a 32 GB change, computed before its shape was compared with the model's layer. Each form's shape is now
    known from its factors (checked here against the change computed), and the file is refused before any is made.
    A plain LoRA's rank is held to its layer's width."""
    from nodes.generate.converters import lora
    r = _r
    forms = {"loha": {"hada_w1_a": r(8, 2), "hada_w1_b": r(2, 36), "hada_w2_a": r(8, 2), "hada_w2_b": r(2, 36)},
             "loha_tucker": {"hada_t1": r(2, 2, 3, 3), "hada_w1_a": r(2, 8), "hada_w1_b": r(2, 4),
                             "hada_t2": r(2, 2, 3, 3), "hada_w2_a": r(2, 8), "hada_w2_b": r(2, 4)},
             "lokr_conv": {"lokr_w1": r(4, 4), "lokr_w2": r(2, 2, 3, 3)},
             "lokr_tucker": {"lokr_w1": r(4, 4), "lokr_t2": r(2, 2, 3, 3), "lokr_w2_a": r(2, 2), "lokr_w2_b": r(2, 2)},
             "lokr_factored": {"lokr_w1_a": r(4, 2), "lokr_w1_b": r(2, 4), "lokr_w2_a": r(8, 2), "lokr_w2_b": r(2, 72)},
             "locon_mid": {"lora_down.weight": r(4, 32, 1, 1), "lora_up.weight": r(16, 4, 1, 1),
                           "lora_mid.weight": r(4, 4, 3, 3), "dora_scale": r(16, 1)},
             "diff": {"diff": r(8, 4, 3, 3)}}
    for form, layer in forms.items():
        assert lora.delta_shape(layer) == tuple(lora.layer_delta(layer)[0].shape), form
    # the tensors as small as their file; their product 16.8 M values (67 MB), more than the 16 MB "free"
    bomb = {f"{K_LIN}.lokr_w1": torch.ones(64, 64), f"{K_LIN}.lokr_w2": torch.ones(64, 64)}
    monkeypatch.setattr("nodes.common.stream.free_memory", lambda: 16 << 20)
    with pytest.raises(NodeError, match=r"bomb.safetensors's LoHa/LoKr layers multiply out to 16,777,216 values "
                                        r"\(67 MB\), more than the 17 MB this machine has free.*damaged"):
        lora.expand_lycoris(bomb, None, "bomb.safetensors")
    # a layer the model has: its shape is compared before the change is made
    with pytest.raises(NodeError, match=r"layer lora_unet_.*to_q does not fit the model \(its change has shape "
                                        r"\[4096, 4096\], the model's weight \[32, 32\]\)"):
        lora.expand_lycoris({f"{K_LIN}.lokr_w1": torch.ones(64, 64), f"{K_LIN}.lokr_w2": torch.ones(64, 64)},
                            lambda base: torch.zeros(32, 32), "small.safetensors")
    # a plain LoRA whose rank is larger than its layer is wide: diffusers made both matrices at that rank first
    te = "lora_te_text_model_encoder_layers_0_mlp_fc1"
    for down, up in [(torch.zeros(1000, 1), torch.zeros(1, 1000)), (torch.zeros(1, 1), torch.zeros(1, 1000))]:
        save_file({f"{te}.lora_down.weight": down, f"{te}.lora_up.weight": up}, str(tmp_path / "rank.safetensors"))
        with pytest.raises(NodeError, match=rf"rank.safetensors: layer {te} has rank 1,000 \(a down matrix of shape "
                                            rf"\[{down.shape[0]}, 1\], an up matrix of \[1, 1000\]\) but is 1 wide"):
            lora.lora_state(tmp_path / "rank.safetensors")
    save_file({f"{te}.lora_down.weight": torch.zeros(0, 8), f"{te}.lora_up.weight": torch.zeros(8, 0),
               f"{te}.alpha": torch.tensor(1.0)}, str(tmp_path / "rank.safetensors"))
    with pytest.raises(NodeError, match=r"has rank 0 \(a down matrix of shape \[0, 8\]"):
        lora.lora_state(tmp_path / "rank.safetensors")


def test_an_sdxl_sized_lora_names_the_layer_and_shapes(sd, tmp_path):
    """diffusers' 'Error(s) in loading state_dict for UNet2DConditionModel:' (its first line) said nothing."""
    state = {f"{K_LIN}.lora_down.weight": _r(4, 640), f"{K_LIN}.lora_up.weight": _r(640, 4),
             "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": _r(4, 768),
             "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": _r(3072, 4)}
    with pytest.raises(NodeError) as e:
        _apply(sd, tmp_path, state)
    assert (f"its layer {LIN} has shape [4, 640] where this model's has [4, 32]" in str(e.value)
            and "it is an SDXL LoRA" in str(e.value) and "adapter.safetensors" in str(e.value)), str(e.value)


def test_a_lora_whose_layers_are_not_in_the_model_says_so(sd, tmp_path):
    state = {"lora_unet_input_blocks_4_1_proj_in.lora_down.weight": _r(2, 32),
             "lora_unet_input_blocks_4_1_proj_in.lora_up.weight": _r(32, 2)}
    with pytest.raises(NodeError, match=r"adapter.safetensors does not fit .*its layers .*4.1.proj_in.* "
                                        r"are not in this model"):
        _apply(sd, tmp_path, state)


def test_sampling_leaves_the_text_encoder_as_loaded(sd, tmp_path):
    """A LoRA's text-encoder layers stayed active after a sampling run (activate_loras), so the same graph's prompt
    encoded differently on its second run than on its first. Text is encoded as loaded (encode.text)."""
    torch.manual_seed(6)
    te = "lora_te_text_model_encoder_layers_0_mlp_fc1"
    state = {f"{K_LIN}.lora_down.weight": _r(4, 32), f"{K_LIN}.lora_up.weight": _r(32, 4),
             f"{te}.lora_down.weight": _r(4, 64), f"{te}.lora_up.weight": _r(37, 4)}
    path = tmp_path / "both.safetensors"
    save_file(state, str(path))
    from nodes.generate.model_manager import activate_loras
    pipe = _pipe(sd)
    with torch.no_grad():
        first = pipe.encode_prompt(["a cat"], "cpu", 1, False)[0]
        activate_loras(pipe, [(str(path), 1.0)])
        assert "text_encoder" in pipe.get_list_adapters()
        again = pipe.encode_prompt(["a cat"], "cpu", 1, False)[0]
    torch.testing.assert_close(again, first)


# -- Wan LoRAs in ComfyUI's naming (diffusion_model.blocks.N.self_attn.q ...) --------------------------------------
@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    from tiny_models import build_wan_comfy
    return build_wan_comfy(tmp_path_factory.mktemp("wan")) / "models" / "diffusion_models" / "wan_tiny_t2v_fp16.safetensors"


def _wan_check(model_file, tmp_path, state, deltas, biases=()):
    """Each named transformer layer gives its weights plus strength x the expected change (and bias change).
    The model is loaded as ComfyUI's split file is (load.diffusion_model)."""
    from nodes.generate.model_manager import ModelManager, activate_loras
    from nodes.generate.split import load_diffusion_model
    path = tmp_path / "wan_adapter.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    pipe = load_diffusion_model(ModelManager(), str(model_file), "fp32", "cpu").pipe
    mods = dict(pipe.transformer.named_modules())
    before = {n: (mods[n].weight.detach().float().clone(), mods[n].bias.detach().float().clone()) for n in deltas}
    activate_loras(pipe, [(str(path), STRENGTH)])
    mods = dict(pipe.transformer.named_modules())
    torch.manual_seed(7)
    for name, delta in deltas.items():
        w, b = before[name]
        x = torch.randn(3, w.shape[1])
        want = F.linear(x, w + STRENGTH * delta, b + STRENGTH * dict(biases).get(name, torch.zeros_like(b)))
        torch.testing.assert_close(_out(mods[name], x.to(mods[name].weight.dtype)).float(), want,
                                   rtol=1e-4, atol=1e-4)


def test_wan_lora_loha_and_lokr_in_comfyui_naming(wan, tmp_path):
    torch.manual_seed(8)
    d = "diffusion_model.blocks."
    a1, b1, a2, b2 = _r(4, 128), _r(128, 4), _r(2, 128), _r(128, 2)
    h = [_r(128, 3), _r(3, 128), _r(128, 3), _r(3, 128)]
    k1, k2, k3, k4 = _r(4, 4), _r(8, 32), _r(4, 4), _r(32, 8)
    state = {f"{d}0.self_attn.q.lora_A.weight": a1, f"{d}0.self_attn.q.lora_B.weight": b1,
             f"{d}0.self_attn.q.alpha": torch.tensor(2.0),
             f"{d}0.self_attn.k.lora_A.weight": a2, f"{d}0.self_attn.k.lora_B.weight": b2,
             f"{d}1.cross_attn.v.hada_w1_a": h[0], f"{d}1.cross_attn.v.hada_w1_b": h[1],
             f"{d}1.cross_attn.v.hada_w2_a": h[2], f"{d}1.cross_attn.v.hada_w2_b": h[3],
             f"{d}0.ffn.0.lokr_w1": k1, f"{d}0.ffn.0.lokr_w2": k2, f"{d}0.ffn.2.lokr_w1": k3, f"{d}0.ffn.2.lokr_w2": k4}
    _wan_check(wan, tmp_path, state, {
        "blocks.0.attn1.to_q": b1 @ a1 * (2.0 / 4), "blocks.0.attn1.to_k": b2 @ a2,
        "blocks.1.attn2.to_v": (h[0] @ h[1]) * (h[2] @ h[3]),
        "blocks.0.ffn.net.0.proj": torch.kron(k1, k2), "blocks.0.ffn.net.2": torch.kron(k3, k4)})


def test_wan_bias_changes_apply(wan, tmp_path):
    """A LoRA with diff_b bias changes on some layers (lightx2v's Wan distillation LoRAs) left the LoRA bias of
    its other layers on the meta device, and the first step failed with 'Tensor on device meta is not on the
    expected device cpu'. A full diff with
    diff_b, and zero norm diffs (which no LoRA layer can hold), load too."""
    torch.manual_seed(9)
    d = "diffusion_model.blocks."
    a, b, bias_q, diff, bias_v = _r(4, 128), _r(128, 4), _r(128), _r(128, 128), _r(128)
    ka, kb = _r(4, 128), _r(128, 4)
    state = {f"{d}0.self_attn.q.lora_A.weight": a, f"{d}0.self_attn.q.lora_B.weight": b,
             f"{d}0.self_attn.k.lora_A.weight": ka, f"{d}0.self_attn.k.lora_B.weight": kb,   # no bias change
             f"{d}0.self_attn.q.diff_b": bias_q, f"{d}1.cross_attn.v.diff": diff, f"{d}1.cross_attn.v.diff_b": bias_v,
             f"{d}0.norm3.diff": torch.zeros(128), f"{d}0.norm3.diff_b": torch.zeros(128)}
    _wan_check(wan, tmp_path, state, {"blocks.0.attn1.to_q": b @ a, "blocks.0.attn1.to_k": kb @ ka,
                                      "blocks.1.attn2.to_v": diff},
               biases=[("blocks.0.attn1.to_q", bias_q), ("blocks.1.attn2.to_v", bias_v)])
    state[f"{d}0.norm3.diff"] = _r(128)
    with pytest.raises(NodeError, match="changes the norm layer diffusion_model.blocks.0.norm3"):
        _wan_check(wan, tmp_path, state, {})


def test_the_same_lora_twice_in_a_chain_adds_up_and_a_replaced_file_is_read_again(sd, tmp_path):
    """Two LoraLoaders with one file (0.5 and 0.3) gave neither strength (diffusers took the repeated adapter name
    once); ComfyUI applies both, 0.8 in all. A file retrained under the same name kept the old weights."""
    import os
    from nodes.generate.model_manager import activate_loras
    torch.manual_seed(10)
    d, u = _r(4, 32), _r(32, 4)
    path = tmp_path / "twice.safetensors"
    save_file({f"{K_LIN}.lora_down.weight": d, f"{K_LIN}.lora_up.weight": u, f"{K_LIN}.alpha": torch.tensor(4.0)},
              str(path))
    pipe = _pipe(sd)
    w, b = dict(pipe.unet.named_modules())[LIN].weight.detach().clone(), None      # to_q has no bias
    x = torch.randn(3, 32)

    def check(up, down, s):
        torch.testing.assert_close(_out(dict(pipe.unet.named_modules())[LIN], x), F.linear(x, w + s * up @ down, b),
                                   rtol=1e-4, atol=1e-4)
    activate_loras(pipe, [(str(path), 0.5), (str(path), 0.3)])
    check(u, d, 0.8)
    d2, u2 = _r(4, 32), _r(32, 4)
    before = path.stat().st_mtime_ns
    save_file({f"{K_LIN}.lora_down.weight": d2, f"{K_LIN}.lora_up.weight": u2, f"{K_LIN}.alpha": torch.tensor(4.0)},
              str(path))
    os.utime(path, ns=(before + 10**9, before + 10**9))
    activate_loras(pipe, [(str(path), 1.0)])
    check(u2, d2, 1.0)


def test_a_loras_text_encoder_layers_act_at_its_clip_strength_in_encode_text(sd, tmp_path):
    """ComfyUI's LoraLoader strength_clip: the LoRA's lora_te_ layers change the prompt encoding, at their own
    strength, only for the text encoder lora.image passed on; the same encoder without the LoRA encodes as loaded."""
    from nodes.generate.handles import ComponentHandle
    from nodes.generate.text import encode_prompt
    torch.manual_seed(11)
    te = "lora_te_text_model_encoder_layers_0_mlp_fc1"
    d, u = _r(4, 64), _r(37, 4)
    state = {f"{K_LIN}.lora_down.weight": _r(4, 32), f"{K_LIN}.lora_up.weight": _r(32, 4),
             f"{te}.lora_down.weight": d, f"{te}.lora_up.weight": u, f"{te}.alpha": torch.tensor(2.0)}
    path = tmp_path / "style.safetensors"
    save_file(state, str(path))
    # Expected: a fresh copy with the merged weight W + 0.6 * alpha / rank * up @ down, encoding as SD does.
    ref = _pipe(sd)
    fc1 = ref.text_encoder.encoder.layers[0].mlp.fc1
    with torch.no_grad():
        plain = ref.encode_prompt(["a cat"], "cpu", 1, False)[0][0]
        fc1.weight += 0.6 * (2.0 / 4) * u @ d
        want = ref.encode_prompt(["a cat"], "cpu", 1, False)[0][0]
    h = ComponentHandle("sd", str(sd), _pipe(sd), "text_encoder")
    got = encode_prompt(h.with_lora(str(path), 0.6), "a cat").embeds[0]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert (want - plain).abs().max() > 1e-2
    torch.testing.assert_close(encode_prompt(h, "a cat").embeds[0], plain, rtol=1e-4, atol=1e-4)
    # A text encoder loaded on its own (load.text_encoder: a pipeline without a unet), as ComfyUI's CLIPLoader
    # feeds LoraLoader: diffusers stopped at the missing unet with an AttributeError.
    from nodes.generate.split import pipeline
    full = _pipe(sd)
    alone = ComponentHandle("sd", str(sd), pipeline("sd", text_encoder=full.text_encoder, tokenizer=full.tokenizer),
                            "text_encoder")
    torch.testing.assert_close(encode_prompt(alone.with_lora(str(path), 0.6), "a cat").embeds[0], want,
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(encode_prompt(alone, "a cat").embeds[0], plain, rtol=1e-4, atol=1e-4)


def test_a_wan_text_encoder_passes_a_lora_through_unchanged(tmp_path):
    """ComfyUI's Wan workflows wire the umt5 CLIP through LoraLoader: Wan LoRAs have no text-encoder layers, and
    the encoder comes out as it went in (no error, nothing recorded)."""
    from nodes.generate.handles import ComponentHandle
    from nodes.generate.loaders import add_text_lora
    h = ComponentHandle("wan", "umt5.safetensors", object(), "text_encoder")
    assert add_text_lora(h, str(tmp_path / "any.safetensors"), 1.0) is h
    assert add_text_lora(None, "any.safetensors", 1.0) is None


def test_an_imported_sd_workflow_with_a_lora_and_an_embedding_runs(sd, tmp_path, monkeypatch):
    """ComfyUI's CheckpointLoaderSimple -> LoraLoader -> CLIPTextEncode (an embedding in the negative) -> KSampler,
    imported and run: strength_clip changes the result, and the same run twice gives the same latent (the LoRA's
    text-encoder layers are active only while its encoder encodes)."""
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    models = sd.parent / "models"
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    (models / "loras").mkdir(exist_ok=True)
    (models / "embeddings").mkdir(exist_ok=True)
    torch.manual_seed(12)
    te = "lora_te_text_model_encoder_layers_0_mlp_fc1"
    save_file({f"{K_LIN}.lora_down.weight": _r(4, 32), f"{K_LIN}.lora_up.weight": _r(32, 4),
               f"{te}.lora_down.weight": _r(4, 64), f"{te}.lora_up.weight": _r(37, 4)},
              str(models / "loras" / "style.safetensors"))
    save_file({"emb_params": torch.randn(2, 64)}, str(models / "embeddings" / "EasyNegative.safetensors"))

    def run(clip):
        api = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15_tiny.safetensors"}},
               "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "style.safetensors", "strength_model": 0.8,
                                                            "strength_clip": clip, "model": ["1", 0],
                                                            "clip": ["1", 1]}},
               "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["2", 1]}},
               "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "(embedding:EasyNegative:1.2), ugly",
                                                                "clip": ["2", 1]}},
               "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
               "6": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["3", 0],
                                                          "negative": ["4", 0], "latent_image": ["5", 0], "seed": 3,
                                                          "steps": 2, "cfg": 7, "sampler_name": "euler",
                                                          "scheduler": "karras", "denoise": 1}}}
        res = import_data(api)
        out = Session(device="cpu").run(load_workflow(text=res.yaml), targets=["k_sampler_6"], use_cache=False,
                                        keep=["k_sampler_6"])
        assert out.ok, out.failed
        return out.outputs["k_sampler_6"]["latent"].samples
    first, again, no_clip = run(1.0), run(1.0), run(0.0)
    torch.testing.assert_close(again, first)
    assert (first - no_clip).abs().max() > 1e-4


def test_hunyuan_lora_and_loha_in_comfyui_naming(tmp_path):
    """HunyuanVideo's fused img_attn_qkv in ComfyUI's naming: the change of each third lands on to_q, to_k, to_v;
    a LoHa there stopped in diffusers' reader ('chunk expects at least a 1-dimensional tensor')."""
    from diffusers import HunyuanVideoPipeline
    from nodes.generate.model_manager import activate_loras
    from tiny_models import build_hunyuan
    build_hunyuan(tmp_path / "hunyuan")
    pipe = HunyuanVideoPipeline.from_pretrained(str(tmp_path / "hunyuan"))
    mods = dict(pipe.transformer.named_modules())
    att = "transformer_blocks.0.attn."
    names = [att + n for n in ("to_q", "to_k", "to_v", "to_out.0")]
    before = {n: (mods[n].weight.detach().clone(), mods[n].bias.detach().clone()) for n in names}
    torch.manual_seed(13)
    h, d = [_r(60, 2), _r(2, 20), _r(60, 2), _r(2, 20)], "diffusion_model.double_blocks.0."
    a, b = _r(4, 20), _r(20, 4)
    save_file({f"{d}img_attn_qkv.hada_w1_a": h[0], f"{d}img_attn_qkv.hada_w1_b": h[1],
               f"{d}img_attn_qkv.hada_w2_a": h[2], f"{d}img_attn_qkv.hada_w2_b": h[3],
               f"{d}img_attn_proj.lora_A.weight": a, f"{d}img_attn_proj.lora_B.weight": b},
              str(tmp_path / "hy.safetensors"))
    activate_loras(pipe, [(str(tmp_path / "hy.safetensors"), STRENGTH)])
    qkv = (h[0] @ h[1]) * (h[2] @ h[3])
    deltas = {names[0]: qkv[:20], names[1]: qkv[20:40], names[2]: qkv[40:], names[3]: b @ a}
    mods = dict(pipe.transformer.named_modules())
    x = torch.randn(3, 20)
    for n, delta in deltas.items():
        w, bias = before[n]
        torch.testing.assert_close(_out(mods[n], x), F.linear(x, w + STRENGTH * delta, bias), rtol=1e-4, atol=1e-4)


def test_a_lokr_under_diffusers_names_is_compared_with_its_layer_before_it_is_made():
    """kohya_modules resolved only kohya's names, so a LoKr under diffusers' (transformer.blocks.0.attn1.to_q.lokr_w1)
    had no layer to be compared with: its change was computed whole, up to the memory free, before diffusers refused
    it."""
    from types import SimpleNamespace
    from nodes.generate.converters import lora
    modules = lora.kohya_modules(SimpleNamespace(transformer=torch.nn.ModuleDict({"proj": torch.nn.Linear(4, 4)})))
    with pytest.raises(NodeError, match=r"x.safetensors: layer transformer.proj does not fit the model \(its change "
                                        r"has shape \[4096, 4096\], the model's weight \[4, 4\]\)"):
        lora.expand_lycoris({"transformer.proj.lokr_w1": torch.ones(64, 64), "transformer.proj.lokr_w2":
                             torch.ones(64, 64)}, lambda n: getattr(modules.get(n), "weight", None), "x.safetensors")
    assert modules["lora_transformer_proj"] is modules["transformer.proj"]


# -- LyCORIS OFT, BOFT and GLoRA: changes that depend on the model's own weight ------------------------------------
# ComfyUI's comfy/weight_adapter/oft.py, boft.py and glora.py written out at strength 1 (the reference): each takes
# the layer's weight W and returns W's change.
def _comfy_cayley(blocks, alpha):
    q = blocks - blocks.transpose(-1, -2)
    if alpha > 0:
        n = torch.norm(q) + 1e-8
        if n > alpha:
            q = q * alpha / n
    eye = torch.eye(blocks.shape[-1])
    return (eye + q) @ (eye - q).inverse()


def _comfy_oft(w, blocks, alpha, strength=1.0):
    """OFTAdapter.calculate_weight: the strength scales R - I and then the change again (strength squared); it
    takes no rescale."""
    r = _comfy_cayley(blocks, alpha)
    n, b = blocks.shape[:2]
    diff = torch.einsum("k n m, k n ... -> k m ...", r * strength - strength * torch.eye(b),
                        w.view(n, b, *w.shape[1:])).reshape(w.shape)
    return strength * diff


def _comfy_boft(w, blocks, alpha, rescale=None, strength=1.0):
    """BOFTAdapter.calculate_weight: each stage's blocks blended with I by the strength, the change scaled by it."""
    r = _comfy_cayley(blocks, alpha)
    boft_m, _, boft_b = blocks.shape[:3]
    inp = w
    for i in range(boft_m):
        bi = r[i]
        k = 2 ** i * (boft_b // 2)
        if strength != 1:
            bi = bi * strength + (1 - strength) * torch.eye(boft_b)
        inp = inp.unflatten(0, (-1, 2, k)).transpose(1, 2).flatten(0, 2).unflatten(0, (-1, boft_b))
        inp = torch.einsum("b i j, b j ...-> b i ...", bi, inp)
        inp = inp.flatten(0, 1).unflatten(0, (-1, k, 2)).transpose(1, 2).flatten(0, 2)
    return strength * ((inp if rescale is None else inp * rescale) - w)


def _comfy_glora(w, a1, a2, b1, b2, alpha):
    rank = a2.shape[0]              # the current layout (a1: in x rank, a2: rank x in, b1: out x rank, b2: rank x in)
    return (w @ a1 @ a2 + b1 @ b2) * (alpha / rank)


def _weight_relative(sd, tmp_path, state, want):
    pipe, before = _apply(sd, tmp_path, state, strength=1.0)
    w, b = before[LIN]
    x = torch.randn(3, 32)
    got = _out(dict(pipe.unet.named_modules())[LIN], x)
    torch.testing.assert_close(got, F.linear(x, w + want(w), b), rtol=1e-4, atol=1e-4)
    assert (got - F.linear(x, w, b)).abs().max() > 1e-3


def test_oft_boft_and_glora_change_the_layer_as_comfyui_does(sd, tmp_path):
    torch.manual_seed(7)
    blocks = _r(4, 8, 8)
    _weight_relative(sd, tmp_path, {f"{K_LIN}.oft_blocks": blocks, f"{K_LIN}.alpha": torch.tensor(0.5)},
                     lambda w: _comfy_oft(w, blocks, 0.5))
    bblocks, rescale = _r(2, 4, 8, 8), 1 + _r(32, 1)
    _weight_relative(sd, tmp_path, {f"{K_LIN}.oft_blocks": bblocks, f"{K_LIN}.rescale": rescale,
                                    f"{K_LIN}.alpha": torch.tensor(0.0)},
                     lambda w: _comfy_boft(w, bblocks, 0.0, rescale))
    a1, a2, b1, b2 = _r(32, 4), _r(4, 32), _r(32, 4), _r(4, 32)
    _weight_relative(sd, tmp_path, {f"{K_LIN}.a1.weight": a1, f"{K_LIN}.a2.weight": a2, f"{K_LIN}.b1.weight": b1,
                                    f"{K_LIN}.b2.weight": b2, f"{K_LIN}.alpha": torch.tensor([2.0])},
                     lambda w: _comfy_glora(w, a1, a2, b1, b2, 2.0))


def test_an_oft_for_another_layer_size_is_named(sd, tmp_path):
    with pytest.raises(NodeError, match=r"adapter.safetensors: an OFT / BOFT layer lora_unet_down_blocks_0_attentions_0_"
                                        r"transformer_blocks_0_attn1_to_q does not fit the model"):
        _apply(sd, tmp_path, {f"{K_LIN}.oft_blocks": _r(3, 8, 8)})


def test_a_lora_comfyui_saved_in_its_own_sd_names_applies(sd, tmp_path):
    """ComfyUI's LoraSave / SaveLora write a LoRA under the model's own LDM names (comfy_extras/nodes_lora_extract:
    diffusion_model.input_blocks.1.1...lora_up.weight, no alpha: scale 1; the text encoder's under
    text_encoders.clip_l.transformer.), which ComfyUI's comfy/lora.py reads as the model's keys. diffusers reads
    none of them ('changes nothing')."""
    torch.manual_seed(9)
    d, u, cd, cu = _r(4, 32), _r(32, 4), _r(4, 32, 3, 3), _r(32, 4, 1, 1)
    pd, pu, td, tu = _r(2, 32, 1, 1), _r(32, 2, 1, 1), _r(4, 64), _r(37, 4)
    up = "output_blocks.5.1.proj_out"                   # diffusers' up_blocks.1.attentions.2.proj_out
    te = "text_model.encoder.layers.0.mlp.fc1"
    state = {"diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.lora_up.weight": u,
             "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.lora_down.weight": d,
             "diffusion_model.input_blocks.1.0.in_layers.2.lora_up.weight": cu,
             "diffusion_model.input_blocks.1.0.in_layers.2.lora_down.weight": cd,
             f"diffusion_model.{up}.lora_up.weight": pu, f"diffusion_model.{up}.lora_down.weight": pd,
             f"text_encoders.clip_l.transformer.{te}.lora_up.weight": tu,
             f"text_encoders.clip_l.transformer.{te}.lora_down.weight": td}
    pipe, before = _apply(sd, tmp_path, state)
    _check(pipe, before, {LIN: u @ d, CONV: torch.einsum("or,rikl->oikl", cu[:, :, 0, 0], cd)})
    proj = dict(pipe.unet.named_modules())["up_blocks.1.attentions.2.proj_out"]
    assert any("lora" in n for n, _ in proj.named_modules()), "the up block's layer took no LoRA"
    fc1 = next(m for n, m in pipe.text_encoder.named_modules() if n.endswith("layers.0.mlp.fc1"))
    assert any("lora" in n for n, _ in fc1.named_modules()), "the text encoder's layer took no LoRA"


def test_an_oft_in_comfyui_naming_says_which_naming_is_read():
    """An OFT layer's change is made from the model's weight, found by kohya's or diffusers' layer names; under
    ComfyUI's diffusion_model. names (a Wan OFT) none is found, which is not a LoRA for another model."""
    from nodes.generate.converters.lora import expand_lycoris
    state = {"diffusion_model.blocks.0.self_attn.q.oft_blocks": _r(4, 8, 8)}
    with pytest.raises(NodeError, match=r"wan_oft.safetensors .*OFT / BOFT.* kohya's or diffusers' layer "
                                        r"names, not ComfyUI's diffusion_model\. names"):
        expand_lycoris(state, lambda layer: None, "wan_oft.safetensors")


def test_oft_and_boft_at_other_strengths_change_the_layer_as_comfyui_does(sd, tmp_path):
    """ComfyUI's OFT squares the strength (and leaves `rescale` out); its BOFT blends each stage's blocks with I by
    the strength, then scales the change by it. A workflow at 0.5 or 0.8 gives ComfyUI's layer, on one pipeline
    whose strength changes between runs (the adapter of the other strength is dropped, not kept beside)."""
    from nodes.generate.model_manager import activate_loras
    torch.manual_seed(8)
    blocks, bblocks, rescale = _r(4, 8, 8), _r(2, 4, 8, 8), 1 + _r(32, 1)
    files = {"oft": ({f"{K_LIN}.oft_blocks": blocks, f"{K_LIN}.rescale": rescale, f"{K_LIN}.alpha": torch.tensor(0.0)},
                     lambda w, s: _comfy_oft(w, blocks, 0.0, s)),
             "boft": ({f"{K_LIN}.oft_blocks": bblocks, f"{K_LIN}.rescale": rescale, f"{K_LIN}.alpha": torch.tensor(0.0)},
                      lambda w, s: _comfy_boft(w, bblocks, 0.0, rescale, s))}
    pipe = _pipe(sd)
    layer = dict(pipe.unet.named_modules())[LIN]
    w, b = layer.weight.detach().clone(), layer.bias
    x = torch.randn(3, 32)
    for kind, (state, want) in files.items():
        path = tmp_path / f"{kind}.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        for strength in (0.5, 0.8):
            activate_loras(pipe, [(str(path), strength)])
            torch.testing.assert_close(_out(dict(pipe.unet.named_modules())[LIN], x), F.linear(x, w + want(w, strength), b), rtol=1e-4, atol=1e-4,
                                       msg=lambda m: f"{kind} at {strength}: {m}")
    assert len({a for held in pipe.get_list_adapters().values() for a in held}) == 2


def test_an_sd2_lora_comfyui_saved_reaches_its_text_encoder(sd, tmp_path):
    """SD 2.x's text encoder is OpenCLIP ViT-H, which ComfyUI holds as clip_h (sd2_clip.SD2ClipModel), so LoraSave
    writes its layers as text_encoders.clip_h.transformer.... (ComfyUI's model_lora_keys_clip maps any
    text_encoders.<its key>); they are the pipeline's text_encoder's, as clip_l's are SD 1.5's."""
    torch.manual_seed(10)
    te = "text_model.encoder.layers.0.mlp.fc1"
    state = {"diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.lora_up.weight": _r(32, 4),
             "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.lora_down.weight": _r(4, 32),
             f"text_encoders.clip_h.transformer.{te}.lora_up.weight": _r(37, 4),
             f"text_encoders.clip_h.transformer.{te}.lora_down.weight": _r(4, 64)}
    pipe, _ = _apply(sd, tmp_path, state)
    fc1 = next(m for n, m in pipe.text_encoder.named_modules() if n.endswith("layers.0.mlp.fc1"))
    assert any("lora" in n for n, _ in fc1.named_modules()), "the text encoder's layer took no LoRA"


def test_an_sdxl_lora_comfyui_saved_keeps_its_added_conditioning_layers():
    """A LoRA ComfyUI extracted from an SDXL model (LoraSave of a model difference) holds the added-conditioning
    MLP's layers (diffusion_model.label_emb.0.0 / 0.2, diffusers' add_embedding.linear_1 / 2), which ComfyUI
    applies. Renamed for diffusers' kohya reader (which load_lora_weights runs), each must reach its own layer."""
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_lora_to_diffusers
    from nodes.generate.converters.lora import comfy_ldm_lora_to_kohya
    state = {}
    for layer in ("label_emb.0.0", "label_emb.0.2", "time_embed.0"):
        state[f"diffusion_model.{layer}.lora_up.weight"], state[f"diffusion_model.{layer}.lora_down.weight"] = \
            _r(8, 2), _r(2, 8)
    converted, _ = _convert_non_diffusers_lora_to_diffusers(comfy_ldm_lora_to_kohya(state, 2, True))
    layers = {k.rsplit(".lora.", 1)[0] for k in converted}
    assert layers == {"unet.add_embedding.linear_1", "unet.add_embedding.linear_2", "unet.time_embedding.linear_1"}


def test_a_glora_on_a_convolution_changes_it_as_comfyui_does(sd, tmp_path):
    """ComfyUI's glora.py multiplies a convolution's kernel W [o, i, k, k] by a1 [i, r] and a2 [r, i] on its input
    channels (einsum 'o i ..., i j -> o j ...'), b1 [o, r] b2 [r, i, k, k] added, written out here."""
    torch.manual_seed(11)
    a1, a2, b1, b2 = _r(32, 4), _r(4, 32), _r(32, 4), _r(4, 32, 3, 3)
    state = {f"{K_CONV}.a1.weight": a1, f"{K_CONV}.a2.weight": a2, f"{K_CONV}.b1.weight": b1,
             f"{K_CONV}.b2.weight": b2, f"{K_CONV}.alpha": torch.tensor(2.0)}
    pipe, before = _apply(sd, tmp_path, state)
    w = before[CONV][0]
    diff = torch.einsum("o i ..., i j -> o j ...", torch.einsum("o i ..., i j -> o j ...", w, a1), a2)
    diff = diff + (b1 @ b2.flatten(1)).reshape(w.shape)
    _check(pipe, before, {CONV: diff * (2.0 / 4)})


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_lora_with_non_finite_values_is_refused_by_layer(sd, tmp_path, bad):
    """A damaged download with NaN or inf in a LoRA's tensors made every weight of the layer NaN (a black or noise
    picture, no word): ComfyUI adds it as it is. It is refused, naming the file and the layer."""
    torch.manual_seed(12)
    d, u = _r(4, 32), _r(32, 4)
    u[3, 1] = bad
    state = {f"{K_CONV}.lora_down.weight": _r(4, 32, 3, 3), f"{K_CONV}.lora_up.weight": _r(32, 4, 1, 1),
             f"{K_LIN}.lora_down.weight": d, f"{K_LIN}.lora_up.weight": u}
    with pytest.raises(NodeError, match=rf"adapter.safetensors.*{K_LIN}\.lora_up\.weight.*(NaN|inf).*get it again"):
        _apply(sd, tmp_path, state)


def test_two_comfyui_keys_renamed_to_one_layer_are_refused_by_name():
    """ComfyUI reads a LoRA saved under its LDM names as the model's own keys: input_blocks.1.9 is no layer of the
    model, and ComfyUI leaves it out ('lora key not loaded') while input_blocks.1.1 applies. Renamed to kohya's
    names both became one layer, the last read silently replacing the other."""
    from nodes.generate.converters.lora import comfy_ldm_lora_to_kohya
    state = {}
    for block in ("1.1", "1.9"):
        layer = f"diffusion_model.input_blocks.{block}.transformer_blocks.0.attn1.to_q"
        state[f"{layer}.lora_up.weight"], state[f"{layer}.lora_down.weight"] = _r(32, 4), _r(4, 32)
    with pytest.raises(NodeError, match=r"lora_x\.safetensors: .*input_blocks\.1\.1\.transformer_blocks\.0\.attn1"
                                        r"\.to_q and .*input_blocks\.1\.9\..* both .*down_blocks_0_attentions_0"):
        comfy_ldm_lora_to_kohya(state, 2, False, "lora_x.safetensors")


def test_an_oft_twice_in_a_chain_turns_the_turned_weight_as_comfyui_does(sd, tmp_path):
    """ComfyUI's calculate_weight (comfy/lora.py) runs a layer's patches in the chain's order, each adapter's
    calculate_weight given the weight the earlier ones left: OFT's second application turns the turned weight,
    W1 = W + oft(W), W2 = W1 + oft(W1). Two changes both made from W differ in the second order. A GLoRA after a
    plain LoRA likewise multiplies the weight the LoRA changed."""
    from nodes.generate.model_manager import activate_loras
    torch.manual_seed(13)
    blocks, d, u = _r(4, 8, 8), _r(4, 32), _r(32, 4)
    a1, a2, b1, b2 = _r(32, 4), _r(4, 32), _r(32, 4), _r(4, 32)
    oft, lora, glora = tmp_path / "oft.safetensors", tmp_path / "lora.safetensors", tmp_path / "glora.safetensors"
    save_file({f"{K_LIN}.oft_blocks": blocks, f"{K_LIN}.alpha": torch.tensor(0.0)}, str(oft))
    save_file({f"{K_LIN}.lora_down.weight": d, f"{K_LIN}.lora_up.weight": u}, str(lora))
    save_file({f"{K_LIN}.a1.weight": a1, f"{K_LIN}.a2.weight": a2, f"{K_LIN}.b1.weight": b1, f"{K_LIN}.b2.weight": b2,
               f"{K_LIN}.alpha": torch.tensor(2.0)}, str(glora))
    pipe = _pipe(sd)
    w = dict(pipe.unet.named_modules())[LIN].weight.detach().clone()
    x = torch.randn(3, 32)

    def check(want):
        torch.testing.assert_close(_out(dict(pipe.unet.named_modules())[LIN], x), F.linear(x, want), rtol=1e-4,
                                   atol=1e-4)
    activate_loras(pipe, [(str(oft), 1.0), (str(oft), 1.0)])
    w1 = w + _comfy_oft(w, blocks, 0.0)
    check(w1 + _comfy_oft(w1, blocks, 0.0))
    activate_loras(pipe, [(str(lora), 0.5), (str(glora), 1.0)])
    w1 = w + 0.5 * u @ d
    check(w1 + _comfy_glora(w1, a1, a2, b1, b2, 2.0))
    activate_loras(pipe, [(str(oft), 1.0)])
    check(w + _comfy_oft(w, blocks, 0.0))


def test_a_comfyui_saved_loras_embedding_layers_left_out_are_named_in_the_log(caplog):
    """ComfyUI's LoraSave of a text-encoder difference writes its token and position embeddings' changes, which
    ComfyUI applies (model_lora_keys_clip maps every text_encoders.<key>); diffusers' kohya reader has no LoRA of an
    embedding and transformers dropped them unnamed. The Log (kinograph.models) names them."""
    import logging
    from nodes.generate.converters.lora import comfy_ldm_lora_to_kohya
    te = "text_encoders.clip_l.transformer.text_model.embeddings."
    state = {}
    for layer in ("diffusion_model.input_blocks.1.1.proj_in", te + "token_embedding", te + "position_embedding",
                  "text_encoders.clip_l.transformer.text_model.encoder.layers.0.mlp.fc1"):
        state[f"{layer}.lora_up.weight"], state[f"{layer}.lora_down.weight"] = _r(8, 2), _r(2, 8)
    with caplog.at_level(logging.WARNING, logger="kinograph.models"):
        out = comfy_ldm_lora_to_kohya(state, 2, False, "te_lora.safetensors")
    said = [r.getMessage() for r in caplog.records if r.name == "kinograph.models"]
    assert len(said) == 1 and "te_lora.safetensors" in said[0], said
    assert f"{te}token_embedding" in said[0] and f"{te}position_embedding" in said[0]
    assert not any("embedding" in k for k in out) and len(out) == 4
