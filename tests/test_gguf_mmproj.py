"""Qwen2.5-VL's vision tower from llama.cpp's projector file (mmproj-*.gguf) beside a Qwen2.5-VL text encoder GGUF,
as ComfyUI-GGUF's CLIPLoaderGGUF pairs them for Qwen-Image-Edit. A tiny transformers Qwen2.5-VL vision tower is
written as llama.cpp's convert_hf_to_gguf.py (Qwen2VLVisionModel) writes it: gguf-py's own name map and metadata
calls, each block's qkv split in three, the patch convolution split into its two frames (written out here as the
converter does), matrices Q8_0. Kinograph's text encoder built from the pair must see a picture as transformers'
tower does with the values the file holds (window attention laid out by the file's n_wa_pattern)."""
from __future__ import annotations

import pytest
import torch

gguf = pytest.importorskip("gguf")
from tests.gguf_blocks import T  # noqa: E402
from tests.test_gguf_llm_encoder import _model, _write_llama_cpp  # noqa: E402

DEPTH, WIDTH, HEADS, EVERY = 2, 64, 2, 2        # heads not the 7B's 80 wide: the file's count must be read


def _tower(out_hidden: int, width: int = WIDTH, heads: int = HEADS, every: int = EVERY):
    import transformers as tr
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel
    torch.manual_seed(3)
    cfg = tr.Qwen2_5_VLVisionConfig(depth=DEPTH, hidden_size=width, num_heads=heads, intermediate_size=96,
                                    out_hidden_size=out_hidden, fullatt_block_indexes=[every - 1])
    model = Qwen2_5_VisionTransformerPretrainedModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.05 + (1.0 if p.ndim == 1 and p.shape[0] == width else 0.0))
    return model


def _write_mmproj(model, path, projector="qwen2.5vl_merger"):
    """The tower as convert_hf_to_gguf.py's Qwen2VLVisionModel writes it; returns the values the file holds in
    transformers' names."""
    cfg = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, max(cfg.depth, 3))     # mm.2 among them
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_clip_has_vision_encoder(True)
    w.add_clip_projector_type(projector)
    w.add_vision_projection_dim(cfg.out_hidden_size)
    w.add_vision_image_size(560)
    w.add_vision_patch_size(cfg.patch_size)
    w.add_vision_embedding_length(cfg.hidden_size)
    w.add_vision_feed_forward_length(cfg.intermediate_size)
    w.add_vision_block_count(cfg.depth)
    w.add_vision_head_count(cfg.num_heads)
    w.add_vision_use_silu(True)
    w.add_vision_n_wa_pattern(cfg.fullatt_block_indexes[0] + 1)
    w.add_vision_attention_layernorm_eps(1e-6)
    held = {}

    def put(name, a):
        if a.ndim == 2 and a.shape[1] % 32 == 0:
            q = gguf.quants.quantize(a, T.Q8_0)
            w.add_tensor(name, q, raw_dtype=T.Q8_0)
            return gguf.quants.dequantize(q, T.Q8_0).reshape(a.shape)
        w.add_tensor(name, a.astype("float16") if a.ndim == 4 else a)
        return a.astype("float16").astype("float32") if a.ndim == 4 else a

    for k, v in model.state_dict().items():
        hf, a = "visual." + k, v.float().numpy()
        stem, _, suffix = hf.rpartition(".")
        if ".qkv." in hf:       # split as the converter splits it
            c = a.shape[0] // 3
            back = [put(f"{names.get_name(stem.replace('qkv', x))}.{suffix}", a[i * c:(i + 1) * c])
                    for i, x in enumerate("qkv")]
            import numpy as np
            held[k] = torch.from_numpy(np.concatenate(back, axis=0))
        elif "patch_embed.proj.weight" in hf:        # the Conv3D's two frames as two Conv2Ds
            first = put("v.patch_embd.weight", a[:, :, 0])
            second = put("v.patch_embd.weight.1", a[:, :, 1])
            held[k] = torch.stack([torch.from_numpy(first), torch.from_numpy(second)], dim=2)
        else:
            held[k] = torch.from_numpy(put(f"{names.get_name(stem)}.{suffix}", a).copy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return held


def _pixels(model, grid=(1, 12, 12)):
    """A picture's patches as Qwen2VLImageProcessor lays them out (12 x 12 patches: more than one 112-pixel
    window, so windowed and whole-picture blocks differ)."""
    cfg = model.config
    torch.manual_seed(5)
    n = grid[0] * grid[1] * grid[2]
    return torch.randn(n, cfg.in_channels * cfg.temporal_patch_size * cfg.patch_size ** 2), torch.tensor([grid])


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Qwen2.5-VL's language model and its projector, named as users keep them for ComfyUI-GGUF."""
    folder = tmp_path_factory.mktemp("text_encoders")
    text, arch, _ = _model("qwen2vl")
    _write_llama_cpp(text, arch, folder / "Qwen2.5-VL-7B-Instruct-Q8_0.gguf")
    tower = _tower(text.config.hidden_size)
    held = _write_mmproj(tower, folder / "Qwen2.5-VL-7B-Instruct-mmproj-F16.gguf")
    return folder, tower, held


def test_the_mmproj_beside_a_qwen25vl_gguf_sees_a_picture_as_transformers(pair):
    from nodes.generate.detect import detect_file
    from nodes.generate.split import _module
    folder, tower, held = pair
    path = folder / "Qwen2.5-VL-7B-Instruct-Q8_0.gguf"
    built = _module(path, detect_file(path), torch.float32, "cpu")
    assert built.config.vision_config.fullatt_block_indexes == [EVERY - 1]
    reference = type(tower)(tower.config).eval()
    reference.load_state_dict(held)
    pixels, grid = _pixels(tower)
    with torch.no_grad():
        got = built.visual(pixels, grid_thw=grid).pooler_output
        want = reference(pixels, grid_thw=grid).pooler_output
        original = tower(pixels, grid_thw=grid).pooler_output
    assert got.shape == (36, tower.config.out_hidden_size)
    # Kinograph expands Q8_0 in float16 (ComfyUI-GGUF's maths), gguf-py in float32
    torch.testing.assert_close(got, want, atol=2e-3 * float(want.abs().max()), rtol=3e-3)
    assert (got - original).abs().max() < 0.1 * original.abs().max()          # Q8_0's rounding only


def test_the_projector_is_found_as_comfyui_gguf_finds_it(tmp_path, pair):
    from graph_engine import NodeError
    from nodes.generate.gguf_mmproj import find_mmproj, missing, vision_tower
    folder, _, _ = pair
    assert find_mmproj(folder / "Qwen2.5-VL-7B-Instruct-Q8_0.gguf") == folder / "Qwen2.5-VL-7B-Instruct-mmproj-F16.gguf"
    # a projector for another size of the model, by its width
    with pytest.raises(NodeError, match="Qwen2.5-VL 256 wide, but Qwen2.5-VL-7B-Instruct-Q8_0.gguf is Qwen2.5-VL 7B"):
        vision_tower(folder / "Qwen2.5-VL-7B-Instruct-Q8_0.gguf", 3584, torch.float32)
    # llama.cpp's usual name (mmproj-F16.gguf) does not hold the model's: named, with how to rename it
    (tmp_path / "Qwen2.5-VL-7B-Instruct-UD-Q4_K_XL.gguf").write_bytes(b"")
    (tmp_path / "mmproj-F16.gguf").write_bytes(b"")
    assert find_mmproj(tmp_path / "Qwen2.5-VL-7B-Instruct-UD-Q4_K_XL.gguf") is None
    said = missing(tmp_path / "Qwen2.5-VL-7B-Instruct-UD-Q4_K_XL.gguf")
    assert "mmproj-F16.gguf" in said and "rename" in said and "qwen2.5-vl-7b-instruct-mmproj-<its type>.gguf" in said


def test_another_model_s_projector_is_refused_by_name(tmp_path):
    from graph_engine import NodeError
    from nodes.generate.gguf_mmproj import vision_tower
    w = gguf.GGUFWriter(str(tmp_path / "gemma-3-4b-it-mmproj-F16.gguf"), "clip")
    w.add_clip_projector_type("gemma3")
    w.add_tensor("mm.input_projection.weight", torch.zeros(4, 4).numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(NodeError, match="projector for 'gemma3', not Qwen2.5-VL's"):
        vision_tower(tmp_path / "gemma-3-4b-it-Q4_K_M.gguf", 0, torch.float32)


def test_qwen_edit_without_the_projector_says_where_it_goes(tmp_path):
    from types import SimpleNamespace
    import numpy as np
    from graph_engine import NodeError
    from nodes.generate.handles import ComponentHandle
    from nodes.generate.qwen_edit import encode_edit
    te = SimpleNamespace(model=SimpleNamespace())       # a Qwen2.5-VL without its tower
    handle = ComponentHandle("qwenimage", str(tmp_path / "Qwen2.5-VL-7B-Instruct-Q5_K_M.gguf"),
                             SimpleNamespace(text_encoder=te), "text_encoder")
    with pytest.raises(NodeError, match=r"projector file.*'mmproj' and 'qwen2.5-vl-7b-instruct'"):
        encode_edit(handle, None, "make it blue", [np.zeros((8, 8, 3), np.uint8)])


def test_the_projector_loaded_alone_says_what_it_is(tmp_path, pair):
    from graph_engine import NodeError
    from nodes.generate.split import _detect
    folder, _, _ = pair
    with pytest.raises(NodeError, match=r"vision projector \(mmproj, qwen2.5vl_merger\), read with the language-model"):
        _detect(folder / "Qwen2.5-VL-7B-Instruct-mmproj-F16.gguf", ("text_encoder",), "a text encoder")


def test_qwen_edit_reads_a_picture_through_the_gguf_pair_as_through_the_safetensors(tmp_path, monkeypatch):
    """Through load.text_encoder (type qwen_image) and encode.qwen_edit: the GGUF and its mmproj, tokenizer read
    from the GGUF, give the conditioning the safetensors encoder of the same values (its vision tower as visual.*,
    the same tokenizer in a folder) gives."""
    import numpy as np
    from safetensors.torch import save_file
    from tests.test_gguf_tokenizer import _trained_bpe, write_qwen25vl
    from nodes.generate.model_manager import ModelManager
    from nodes.generate import qwen_edit
    from nodes.generate.qwen_edit import encode_edit
    from nodes.generate.split import load_text_encoder
    folder = tmp_path / "models" / "text_encoders"
    folder.mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(qwen_edit, "PLUS_VL_AREA", 128 * 128)      # fewer patches than the released 384 x 384
    reference = _trained_bpe("qwen2")
    reference.add_special_tokens({"additional_special_tokens": ["<|vision_start|>", "<|vision_end|>",
                                                                "<|image_pad|>", "<|video_pad|>"]})
    gguf_path = folder / "Qwen2.5-VL-7B-Instruct-Q8_0.gguf"
    held = write_qwen25vl(gguf_path, reference)
    # the released 7B's layout, which a safetensors file's tower is built with: 80-wide heads, every 8th block whole
    seen = _write_mmproj(_tower(256, width=160, heads=2, every=8), folder / "Qwen2.5-VL-7B-Instruct-mmproj-F16.gguf")
    save_file({**{"model." + k: v.contiguous() for k, v in held.items()},
               **{"visual." + k: v.contiguous() for k, v in seen.items()}}, str(folder / "qwen_values.safetensors"))
    reference.save_pretrained(str(folder / "qwen_values"))
    picture = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    got, want = (encode_edit(load_text_encoder(ModelManager(), name, "", "qwen_image", "cpu"), None, "make it blue",
                             [picture]).embeds for name in (gguf_path.name, "qwen_values.safetensors"))
    assert got.shape == want.shape and got.abs().max() > 0
    torch.testing.assert_close(got.float(), want.float(), atol=2e-3 * float(want.abs().max()), rtol=3e-3)


def test_a_projector_replaced_or_added_beside_the_gguf_changes_the_loaders_cache_key(tmp_path, monkeypatch):
    """The node's key fingerprinted the language-model GGUF alone: a projector put beside it (or another one in its
    place) re-read nothing, and the editor served the encoding made without it (or with the old one)."""
    import yaml
    from graph_engine.api import load_workflow
    from graph_engine.plan import plan_run
    from graph_engine.registry import default_registry
    folder = tmp_path / "models" / "text_encoders"
    folder.mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    (folder / "Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf").write_bytes(b"GGUF language model")
    wf = tmp_path / "w.yaml"
    wf.write_text(yaml.safe_dump({"kinograph": 1, "nodes": {"te": {
        "type": "load.text_encoder", "params": {"name": "Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf"}}}}))

    def key():
        return plan_run(load_workflow(str(wf)), default_registry()).keys["te"]
    alone = key()
    (folder / "Qwen2.5-VL-7B-Instruct-mmproj-F16.gguf").write_bytes(b"GGUF projector one")
    first = key()
    (folder / "Qwen2.5-VL-7B-Instruct-mmproj-F16.gguf").write_bytes(b"GGUF projector two")
    assert len({alone, first, key()}) == 3


def test_of_several_projectors_matching_the_name_the_one_of_the_encoders_size_is_read(tmp_path, pair):
    """A language model named without its size (qwen2.5-vl-Q8_0.gguf) matches the 3B's and the 7B's projectors
    alike: the first by name (the 3B's) was read and refused as another size, and the message said to put the right
    one beside it, where it was."""
    import shutil
    from nodes.generate.gguf_mmproj import vision_tower
    folder, tower, _ = pair
    (tmp_path / "qwen2.5-vl-Q8_0.gguf").write_bytes(b"")
    _write_mmproj(_tower(128), tmp_path / "qwen2.5-vl-3B-mmproj-F16.gguf")
    shutil.copy(folder / "Qwen2.5-VL-7B-Instruct-mmproj-F16.gguf", tmp_path / "qwen2.5-vl-7B-mmproj-F16.gguf")
    width = tower.config.out_hidden_size
    state, _ = vision_tower(tmp_path / "qwen2.5-vl-Q8_0.gguf", width, torch.float32)
    assert state["visual.merger.mlp.2.weight"].shape[0] == width != 128
