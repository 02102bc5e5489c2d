"""Hostile inputs, pass 13: files and workflows from strangers aimed at the newest loaders and commands. Each case
failed (a traceback, a hang, a lost file) before the change its commit names."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from app.cli import main
from graph_engine import NodeError
from nodes.generate.detect import detect_file


# Tensors under the names a family's rule reads, one of them of no values or too few dimensions.
DAMAGED = {
    "text_encoders/qwen_3_06b.safetensors": {"model.layers.0.self_attn.q_norm.weight": torch.ones(4),
                                             "model.embed_tokens.weight": torch.zeros(0)},
    "diffusion_models/seedvr2_3b.safetensors": {"vid_in.proj.weight": torch.ones(()),
                                                "emb_in.proj_in.weight": torch.ones(4, 4)},
    "vae/qwen_image_vae.safetensors": {"decoder.middle.0.residual.0.gamma": torch.ones(4, 1, 1),
                                       "encoder.conv1.weight": torch.zeros(0)},
}


def test_a_damaged_header_is_named_not_a_traceback_from_info_or_a_loader(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KINOGRAPH_MODELS", raising=False)
    for name, state in DAMAGED.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(tmp_path / name))
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name, state in DAMAGED.items():
        row = next(line for line in out.splitlines() if line.rstrip().endswith(name))
        assert row.split()[0] == "unreadable" and row.split()[-2] == "no"
        with pytest.raises(NodeError) as e:
            detect_file(tmp_path / name)
        assert str(e.value).startswith(f"{tmp_path / name} is not a model file Kinograph can read: its tensor ")
        assert "the file is damaged" in str(e.value)
    assert "its tensor model.embed_tokens.weight has shape [0]" in out


@pytest.fixture(scope="module")
def ace(tmp_path_factory):
    from tests.test_ace_step import build
    return build(tmp_path_factory.mktemp("ace")) / "models"


@pytest.fixture(scope="module")
def sa3(tmp_path_factory):
    from tests.test_stable_audio3 import build
    return build(tmp_path_factory.mktemp("sa3")) / "models"


def _edited(src: Path, dst: Path, change) -> str:
    state = load_file(str(src))
    change(state)
    save_file(state, str(dst))
    return str(dst)


def _feed_forward(state, key):
    state[next(k for k in state if k.endswith(key))] = torch.zeros(2_000_000_000, 0)    # no byte, 2e9 wide


CLAIM = r"its tensor shapes make a network of [\d,]+ values, far more than the file's [\d,]+: the file is damaged"


def test_ace_step_files_claiming_a_far_larger_network_are_named_before_it_is_built(ace, tmp_path):
    """A 2e9-wide feed-forward said by a tensor of no values: the DiT, the text encoder and the language model were
    built from it at once, asking the allocator for 256 GB (a RuntimeError traceback, or the machine's memory where
    less is asked)."""
    from nodes.generate import ace_step
    from nodes.generate.model_manager import ModelManager
    dm, te = ace / "diffusion_models/acestep_tiny.safetensors", ace / "text_encoders/qwen_0.6b_ace15.safetensors"
    vae = str(ace / "vae/ace_1.5_vae.safetensors")
    bad_dm = _edited(dm, tmp_path / "acestep_big.safetensors",
                     lambda s: _feed_forward(s, "decoder.layers.0.mlp.gate_proj.weight"))
    with pytest.raises(NodeError, match="acestep_big.safetensors: " + CLAIM):
        ace_step.load(ModelManager(), bad_dm, str(te), "", vae, "cpu", codes=False)
    bad_te = _edited(te, tmp_path / "qwen_big.safetensors",
                     lambda s: _feed_forward(s, "model.layers.0.mlp.gate_proj.weight"))
    with pytest.raises(NodeError, match="qwen_big.safetensors: " + CLAIM):
        ace_step.load(ModelManager(), str(dm), bad_te, "", vae, "cpu", codes=False)


def test_stable_audio_3_files_claiming_a_far_larger_network_are_named_before_it_is_built(sa3, tmp_path):
    """The same claim in the checkpoint's DiT (a terabyte asked for), and 600 transformer blocks named by tensors of
    one value (5,000 took 109 s and ended in the allocator's error under a 6 GB limit)."""
    from nodes.generate import stable_audio3
    from nodes.generate.model_manager import ModelManager
    ckpt, te = sa3 / "checkpoints/stable_audio_3_tiny.safetensors", str(sa3 / "text_encoders/t5gemma_tiny.safetensors")
    wide = _edited(ckpt, tmp_path / "sa3_wide.safetensors",
                   lambda s: _feed_forward(s, "transformer.layers.0.ff.ff.0.proj.weight"))
    with pytest.raises(NodeError, match="sa3_wide.safetensors: " + CLAIM):
        stable_audio3.load(ModelManager(), wide, te, "cpu")
    deep = _edited(ckpt, tmp_path / "sa3_deep.safetensors", lambda s: s.update(
        {f"model.model.transformer.layers.{100 + i}.x": torch.zeros(1) for i in range(600)}))
    with pytest.raises(NodeError, match="sa3_deep.safetensors: its tensor names number 602 blocks of "
                                        r"transformer_blocks.N; .* \(Kinograph reads at most 512\)"):
        stable_audio3.load(ModelManager(), deep, te, "cpu")


def test_an_fp8_weight_of_no_dimensions_beside_its_scale_is_named(tmp_path):
    """An fp8_scaled file (Ideogram 4's, Boogu's Qwen3-VL) whose weight has shape [] beside a per-row scale: the scale
    check read the weight's first side, an IndexError traceback out of every loader reading the file."""
    from nodes.generate.weights import load_weights
    p = tmp_path / "ideogram4_fp8_scaled.safetensors"
    save_file({"layer.weight": torch.tensor(2.0).to(torch.float8_e4m3fn), "layer.weight_scale": torch.ones(4)}, str(p))
    with pytest.raises(NodeError) as e:
        load_weights(p)
    assert str(e.value).startswith(f"{p.name}: layer's scale of shape [4] does not fit its weight of shape []: the "
                                   "file is damaged")


def test_a_vae_lacking_a_tensor_is_named_not_an_attribute_error(tmp_path):
    """FLUX.2's flux2-vae (Lens's, Ideogram 4's) without one downsampler bias: diffusers' LDM conversion hands a
    lacking tensor back as None, and the shape check stopped on it with an AttributeError traceback."""
    from tests.tiny_flux2 import parts, save_vae
    from nodes.generate import split
    from nodes.generate.model_manager import ModelManager
    whole = tmp_path / "flux2-vae.safetensors"
    save_vae(parts()[1], whole)
    cut = _edited(whole, tmp_path / "flux2-vae-cut.safetensors", lambda s: s.pop("encoder.down.0.downsample.conv.bias"))
    with pytest.raises(NodeError) as e:
        split.load_vae(ModelManager(), cut, "cpu")
    assert str(e.value).startswith(f"{cut} (flux2 vae fp32) does not match the expected AutoencoderKLFlux2: missing "
                                   "['encoder.down_blocks.0.downsamplers.0.conv.bias']")


def _odd_head(state, key):
    state[key] = torch.ones(state[key].shape[0] + 3, dtype=state[key].dtype)      # an odd head width


def test_an_odd_head_width_the_libraries_refuse_is_named(tmp_path):
    """Widths the libraries check themselves: Qwen-Image's (and Qwen-Image-Layered's) transformer with an odd query
    norm stopped in diffusers' rope_params assert, a Qwen3-VL encoder (Boogu's, Ideogram 4's, JoyImage's) in
    transformers' strict config validation (StrictDataclassClassValidationError, no ValueError): both tracebacks."""
    from tests.tiny_qwen21 import comfy_text_encoder, text_encoder
    from tests.tiny_qwen_layered import parts
    from nodes.generate import split
    from nodes.generate.model_manager import ModelManager
    state = parts()[0].state_dict()
    _odd_head(state, "transformer_blocks.0.attn.norm_q.weight")
    odd = tmp_path / "qwen_image_odd.safetensors"
    save_file(state, str(odd))
    with pytest.raises(NodeError, match=r"qwen_image_odd.safetensors \(qwenimage diffusion_model fp32\) holds tensors "
                                        r"of shapes no such model has \(AssertionError\)"):
        split.load_diffusion_model(ModelManager(), str(odd), "default", "cpu")
    state = comfy_text_encoder(text_encoder().state_dict())
    _odd_head(state, "model.layers.0.self_attn.q_norm.weight")
    odd = tmp_path / "qwen3vl_8b_odd.safetensors"
    save_file(state, str(odd))
    with pytest.raises(NodeError, match=r"qwen3vl_8b_odd.safetensors \(qwen3vl h64 text_encoder fp32\) holds tensors of "
                                        r"shapes no such model has \(RoPE requires an even rotary dimension, but got "
                                        r"`head_dim`=35"):
        split.load_text_encoder(ModelManager(), str(odd), "", "boogu", "cpu")


@pytest.mark.parametrize("family,key,data", [("gemma3", "spiece_model", b"garbage" * 10),
                                              ("umt5", "spiece_model", b"garbage" * 10),
                                              ("gpt_oss", "tokenizer_json", b'{"x": 1'),
                                              ("gpt_oss", "tokenizer_json", b"\xff\xfe")])
def test_a_damaged_tokenizer_stored_in_the_file_is_named(tmp_path, family, key, data):
    """ComfyUI keeps T5's, T5Gemma's (Stable Audio 3), Gemma's (LTX-2) and GPT-OSS's (Lens) tokenizer inside the
    encoder's file; a damaged one was sentencepiece's RuntimeError, transformers' 'tiktoken is required' ValueError,
    tokenizers' bare Exception or a UnicodeDecodeError, each a traceback out of the encoder's loader."""
    from nodes.generate.detect import Detection
    from nodes.generate.split import tokenizer
    p = tmp_path / "encoder.safetensors"
    save_file({"x": torch.zeros(1), key: torch.frombuffer(bytearray(data), dtype=torch.uint8)}, str(p))
    with pytest.raises(NodeError, match=r"^encoder.safetensors: the tokenizer stored inside it cannot be read \(.*\): "
                                        "the file is damaged"):
        tokenizer(p, Detection("text_encoder", family))


@pytest.mark.parametrize("kind,value,said", [("string", "ab", "'ab'"), ("uint32", 16, "'16'"), ("bool", True, "'True'"),
                                             ("array", ["4", "4"], "\"['4', '4']\""),
                                             ("array", [2.5, 6.4], "'[2.5, 6.400000095367432]'")])
def test_a_gguf_shape_that_is_no_list_of_whole_numbers_is_named(tmp_path, kind, value, said):
    """comfy.gguf.orig_shape.NAME, which ComfyUI-GGUF writes as an array of whole numbers, given as text, a number or
    a list of text: a ValueError / TypeError traceback out of `kinograph info` and every GGUF loader (a list of 2.5
    and 6.4 was cut to 2 x 6 and then refused as holding other values than the file)."""
    from tests.tiny_models import to_gguf
    from nodes.generate.detect import read_header
    path = tmp_path / "wan2.1-Q8_0.gguf"
    to_gguf({"x": torch.zeros(16)}, path, meta={"comfy.gguf.orig_shape.x": (kind, value)})
    with pytest.raises(NodeError) as e:
        read_header(path)
    assert str(e.value) == (f"{path} is not a valid GGUF file: its metadata gives tensor x the shape {said}, where "
                            "ComfyUI writes a list of whole numbers. It is corrupt or made to mislead; copy the file "
                            "again from where it was published.")


def test_hostile_anima_lllite_files_are_named(tmp_path):
    """Anima LLLite nets (model_patches/) read their sizes from names, shapes and metadata: a residual block numbered
    'x', a 1-D probe or FiLM weight and dilations 'a,b' were ValueError / IndexError tracebacks; a block numbered
    200,000 built 200,001 blocks; dilations of 1e20 loaded; a FiLM layer 2e9 wide said by a tensor of no values asked
    the allocator for 8 GB (torch could not even count it on the meta device, so the size check let it through)."""
    from tests.test_anima_lllite import lllite_state, load, save
    base = lllite_state(aspp=True, blocks=(0,))
    film = "lllite_dit_blocks_0_mlp_layer1.down.weight"
    for name, extra, meta, said in (
            ("res_x", {"lllite_conditioning1.resblocks.x.w": torch.zeros(1)}, None,
             r"holds tensors of shapes an Anima LLLite net does not have \(invalid literal"),
            ("probe_1d", {"lllite_conditioning1.conv1.weight": torch.zeros(4)}, None,
             "holds tensors of shapes an Anima LLLite net does not have"),
            ("film_1d", {film: torch.zeros(4)}, None, "holds tensors of shapes an Anima LLLite net does not have"),
            ("res_far", {"lllite_conditioning1.resblocks.200000.x": torch.zeros(1)}, None,
             "numbers its encoder's residual blocks up to 200,000; Kinograph reads at most 512"),
            ("aspp_words", {}, {"lllite.aspp_dilations": "a,b"},
             r"lllite.aspp_dilations \('a,b'\) are not all whole numbers from 1 to 1024"),
            ("aspp_far", {}, {"lllite.aspp_dilations": "1,100000000000000000000"}, "are not all whole numbers"),
            ("film_wide", {film: torch.zeros(2_000_000_000, 0)}, None,
             "its tensor shapes make a network too large to count, far more than the file's")):
        with pytest.raises(NodeError, match=f"^{name}.safetensors.{{0,3}} .*{said}"):
            load(save(tmp_path, f"{name}.safetensors", dict(base, **extra), meta))


def test_a_damaged_umt5_tokenizer_in_an_ace_step_v1_checkpoint_is_named():
    """ACE-Step v1's checkpoint carries UMT5's sentencepiece model, read through its own door (ace_step1.spiece):
    a damaged one was sentencepiece's RuntimeError traceback."""
    from nodes.generate.ace_step1 import spiece
    state = {"text_encoders.umt5base.spiece_model": torch.frombuffer(bytearray(b"garbage" * 10), dtype=torch.uint8)}
    with pytest.raises(NodeError, match=r"^ace_step_v1_3.5b.safetensors: the tokenizer stored inside it cannot be "
                                        r"read \(.*\): the file is damaged"):
        spiece(state, "ace_step_v1_3.5b.safetensors")
