"""city96's T5 / umT5 encoder GGUFs (t5-v1_1-xxl-encoder-Q5_K_M.gguf for FLUX / SD3, umt5-xxl-encoder-*.gguf for
Wan; ComfyUI-GGUF's CLIPLoaderGGUF) hold llama.cpp's tensor names (enc.blk.N.attn_q ...). A tiny random T5 and umT5
written so, the names given by gguf-py's own tensor map (llama.cpp's converter uses it), must be detected as the
encoder and encode a prompt as transformers does with the same (dequantised) weights, matrices staying packed."""
from __future__ import annotations

import pytest
import torch

gguf = pytest.importorskip("gguf")
from tests.gguf_blocks import T  # noqa: E402


def _encoder(umt5: bool, gated: bool = True):
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel
    torch.manual_seed(3 if umt5 else 2)
    cfg = dict(vocab_size=128, d_model=64, d_kv=16, num_heads=4, d_ff=128, num_layers=2,
               relative_attention_num_buckets=32, relative_attention_max_distance=128,
               feed_forward_proj="gated-gelu" if gated else "relu", dense_act_fn="gelu_new" if gated else "relu")
    model = (UMT5EncoderModel(UMT5Config(**cfg)) if umt5 else T5EncoderModel(T5Config(**cfg))).eval()
    with torch.no_grad():           # norms away from 1 so a mixed-up norm shows
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.uniform_(0.5, 1.5)
    return model


def _write_llama_cpp(model, path):
    """The encoder as llama.cpp's convert_hf_to_gguf writes it: names from gguf-py's T5ENCODER map, matrices Q8_0,
    the rest F32. Returns transformers' state with the values the file holds (gguf-py's own dequantisation)."""
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.T5ENCODER, 2)
    w = gguf.GGUFWriter(str(path), "t5encoder")
    held = {}
    for k, v in model.state_dict().items():
        if k == "encoder.embed_tokens.weight":      # tied to shared; llama.cpp keeps one (token_embd)
            continue
        stem, _, suffix = k.rpartition(".")
        a = v.float().numpy()
        name = f"{names.get_name(stem)}.{suffix}"
        if a.ndim == 2 and a.shape[1] % 32 == 0:
            q = gguf.quants.quantize(a, T.Q8_0)
            w.add_tensor(name, q, raw_dtype=T.Q8_0)
            held[k] = torch.from_numpy(gguf.quants.dequantize(q, T.Q8_0).reshape(a.shape).copy())
        else:
            w.add_tensor(name, a)
            held[k] = v.clone()
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return held


@pytest.mark.parametrize("umt5,gated", [(False, True), (True, True), (False, False)],
                         ids=["t5-v1_1", "umt5", "t5-relu"])
def test_a_llama_cpp_t5_gguf_encodes_as_transformers(tmp_path, umt5, gated):
    from nodes.generate import converters
    from nodes.generate.detect import detect_file
    from nodes.generate.packed_weight import PackedWeight
    from nodes.generate.weights import load_weights
    model = _encoder(umt5, gated)
    path = tmp_path / ("umt5-xxl-encoder-Q8_0.gguf" if umt5 else "t5-v1_1-xxl-encoder-Q8_0.gguf")
    held = _write_llama_cpp(model, path)
    det = detect_file(path)
    assert (det.role, det.family) == ("text_encoder", "umt5" if umt5 else "t5")
    assert det.describe()       # what `kinograph info` lists
    built = converters.build(det, load_weights(path, torch.float32, packed=True), torch.float32, str(path))
    assert type(built).__name__ == type(model).__name__
    matrices = {k: v for k, v in built.named_parameters() if v.ndim == 2 and "relative_attention_bias" not in k}
    assert matrices and all(isinstance(v, PackedWeight) for v in matrices.values())
    ids = torch.tensor([[5, 17, 42, 3, 88, 1]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        got = built(input_ids=ids, attention_mask=mask).last_hidden_state
        original = model(input_ids=ids, attention_mask=mask).last_hidden_state
        model.load_state_dict(held, strict=False)       # the very values the file holds
        want = model(input_ids=ids, attention_mask=mask).last_hidden_state
    # the file's values as Kinograph expands them (diffusers' GGUF maths multiplies in float16, as ComfyUI-GGUF)
    # and as gguf-py does (float32) differ by float16 rounding, which the encoder's outputs carry
    torch.testing.assert_close(got, want, atol=3e-3, rtol=3e-3)
    torch.testing.assert_close(got, original, atol=0.05, rtol=0.05)       # Q8_0's rounding only


def test_kinograph_info_lists_the_gguf_encoder_under_transformers_names(tmp_path):
    from nodes.generate.detect import read_header
    _write_llama_cpp(_encoder(True), tmp_path / "umt5-xxl-encoder-Q8_0.gguf")
    header = read_header(tmp_path / "umt5-xxl-encoder-Q8_0.gguf")
    assert header.shapes["encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"] == (32, 4)
    assert header.dtypes["encoder.block.0.layer.1.DenseReluDense.wi_1.weight"] == "Q8_0"
    assert not any(k.startswith(("enc.", "token_embd")) for k in header.shapes)


def test_load_text_encoder_reads_the_gguf_as_the_safetensors_of_its_values(tmp_path, monkeypatch):
    """Through load.text_encoder's loader (type wan, the tokenizer in a folder beside each file): the umT5 GGUF encodes
    a prompt as a float32 safetensors file holding the GGUF's values (gguf-py's dequantisation) does."""
    import sys
    from pathlib import Path
    from safetensors.torch import save_file
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_models import t5_tokenizer
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.text import encode_prompt
    folder = tmp_path / "models" / "text_encoders"
    folder.mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    held = _write_llama_cpp(_encoder(True), folder / "umt5-xxl-encoder-Q8_0.gguf")
    save_file({k: v.contiguous() for k, v in held.items()}, str(folder / "umt5_values_fp32.safetensors"))
    for stem in ("umt5-xxl-encoder-Q8_0", "umt5_values_fp32"):
        t5_tokenizer(folder / stem)
    got, want = (encode_prompt(load_text_encoder(ModelManager(), name, "", "wan", "cpu"), "a red fox").embeds.float()
                 for name in ("umt5-xxl-encoder-Q8_0.gguf", "umt5_values_fp32.safetensors"))
    assert got.shape == want.shape and got.abs().max() > 0
    torch.testing.assert_close(got, want, atol=3e-3, rtol=3e-3)
