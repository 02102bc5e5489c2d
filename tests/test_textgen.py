"""text.generate (ComfyUI's TextGenerate): a Qwen3 text encoder file in ComfyUI's names (qwen_3_4b's layout: model.*,
its head tied to the embeddings; and one holding its own lm_head, as qwen_3_8b does) writes the same tokens as
transformers' own Qwen3ForCausalLM.generate on the same weights, prompt, chat template (with a system turn) and seed;
a Qwen3-VL file (qwen3vl_4b's layout: model.*, visual.*) reading a picture writes what
Qwen3VLForConditionalGeneration.generate writes; encoders without a language model are refused by name."""
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SIZES = dict(vocab_size=300, hidden_size=48, intermediate_size=48, num_hidden_layers=2, num_attention_heads=1,
             num_key_value_heads=1, head_dim=128, rms_norm_eps=1e-6, rope_theta=1000000.0,
             max_position_embeddings=1024)
SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")


def build(root: Path) -> Path:
    """text_encoders/qwen3_tied_tiny.safetensors (no lm_head) and qwen3_head_tiny.safetensors (its own lm_head),
    bf16 as ComfyUI ships them, each with its tokenizer (Qwen3's chat template) in a folder named after it."""
    from safetensors.torch import save_file
    from transformers import Qwen3Config, Qwen3Model
    from tiny_flux2 import QWEN3_CHAT, tokenizer
    te = root / "models" / "text_encoders"
    te.mkdir(parents=True)
    torch.manual_seed(3)
    model = Qwen3Model(Qwen3Config(**SIZES))
    state = {"model." + k: v.bfloat16().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(te / "qwen3_tied_tiny.safetensors"))
    head = (torch.randn(300, 48) * 0.5).bfloat16()
    save_file({**state, "lm_head.weight": head}, str(te / "qwen3_head_tiny.safetensors"))
    for name in ("qwen3_tied_tiny", "qwen3_head_tiny"):
        tokenizer(te / name, QWEN3_CHAT, SPECIAL)
    build_qwen3vl(te)
    build_qwen35(te)
    build_gemma4(te)
    return root


# Qwen3.5's published text config (Qwen/Qwen3.5-9B), sizes cut down: three gated delta-net layers, then full
# attention with its rope on a quarter of each head
Q35 = dict(vocab_size=300, hidden_size=64, intermediate_size=48, num_hidden_layers=4, num_attention_heads=2,
           num_key_value_heads=1, head_dim=32, linear_num_key_heads=2, linear_num_value_heads=4,
           linear_key_head_dim=16, linear_value_head_dim=16, linear_conv_kernel_dim=4, rms_norm_eps=1e-6,
           rope_parameters={"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25,
                            "mrope_section": [11, 11, 10], "mrope_interleaved": True})


def build_qwen35(te: Path) -> None:
    """text_encoders/qwen35_tiny.safetensors: Qwen3.5 in ComfyUI's names (model.*, its own head as model.lm_head, as
    qwen3.5_9b holds it) without a vision tower, and qwen35vl_tiny.safetensors with one (visual.*), bf16, each with
    its tokenizer in a folder named after it."""
    from safetensors.torch import save_file
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig
    from tiny_flux2 import QWEN3_CHAT, tokenizer
    from tiny_qwen import qwen_tokenizer
    torch.manual_seed(5)
    lm = Qwen3_5ForCausalLM(Qwen3_5TextConfig(**Q35))
    with torch.no_grad():
        for name, w in lm.named_parameters():
            if name.endswith("norm.weight"):        # zero-initialised: every norm would read as (1 + 0)
                w.normal_(0, 0.3)
    save_file({("model." + k if k.startswith("lm_head") else k): v.bfloat16().contiguous()
               for k, v in lm.state_dict().items()}, str(te / "qwen35_tiny.safetensors"))
    tokenizer(te / "qwen35_tiny", QWEN3_CHAT, SPECIAL)
    vl = qwen35_vision()
    save_file({k.replace("model.language_model.", "model.", 1).replace("model.visual.", "visual.", 1)
               .replace("lm_head", "model.lm_head"): v.bfloat16().contiguous() for k, v in vl.state_dict().items()},
              str(te / "qwen35vl_tiny.safetensors"))
    qwen_tokenizer(te / "qwen35vl_tiny")


def qwen35_vision():
    """Qwen3_5ForConditionalGeneration in the published config (Q35 and a one-block tower), its vision token ids
    the tiny Qwen tokenizer's."""
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration
    from tiny_qwen import TEMPLATE_TOKENS
    ids = {k: 256 + TEMPLATE_TOKENS.index(t) for k, t in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    torch.manual_seed(6)
    lm = Qwen3_5ForConditionalGeneration(Qwen3_5Config(
        text_config=Q35, vision_config=dict(depth=1, hidden_size=32, intermediate_size=16, num_heads=1,
                                            out_hidden_size=64, num_position_embeddings=64), **ids)).eval()
    with torch.no_grad():
        for name, w in lm.named_parameters():
            if name.endswith("norm.weight") and "visual" not in name:
                w.normal_(0, 0.3)
    return lm


# Qwen3-VL-4B's tower heads are 64 wide (1024 = 16 x 64), the 8B's 72 (1152 = 16 x 72): two of the 4B's heads
TOWER = dict(tower_width=128, tower_heads=2)


def build_qwen3vl(te: Path) -> None:
    """text_encoders/qwen3vl_tiny.safetensors: Qwen3-VL in ComfyUI's names (model.*, visual.*) with its lm_head, its
    vision tower's heads as wide as the 4B's, and its tokenizer (Qwen's chat and vision tokens) in qwen3vl_tiny/."""
    from safetensors.torch import save_file
    from tiny_qwen import qwen_tokenizer
    from tiny_qwen21 import comfy_text_encoder, text_encoder
    torch.manual_seed(4)
    vl = text_encoder(**TOWER)
    with torch.no_grad():       # sharp attention in the tower, where how it splits into heads shows in the tokens
        for name, w in vl.named_parameters():
            if name.startswith("model.visual.") and name.endswith("attn.qkv.weight"):
                w.normal_(0, 1.0)
    state = {**comfy_text_encoder(vl.state_dict()), "lm_head.weight": vl.lm_head.weight}
    save_file({k: v.bfloat16().contiguous() for k, v in state.items()}, str(te / "qwen3vl_tiny.safetensors"))
    qwen_tokenizer(te / "qwen3vl_tiny")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from comfy_layouts import models_dir
    yield from models_dir(tmp_path_factory, build, "textgen")


def reference(models: Path, name: str, prompt: str, seed: int, system: str = "", **kw):
    """transformers alone: Qwen3ForCausalLM from the file's tensors (model.* as they are, the head tied where the file
    has none), the prompt in Qwen3's chat template with thinking off (after Qwen's system turn where `system` is
    given), generate under torch.manual_seed."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM
    state = {k: v.float() for k, v in load_file(str(models / "models/text_encoders" / f"{name}.safetensors")).items()}
    tied = "lm_head.weight" not in state
    lm = Qwen3ForCausalLM(Qwen3Config(**SIZES, tie_word_embeddings=tied)).eval()
    lm.load_state_dict(state, strict=not tied)
    tok = AutoTokenizer.from_pretrained(str(models / "models/text_encoders" / name))
    text = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    if system:
        text = f"<|im_start|>system\n{system}<|im_end|>\n" + text
    ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
    torch.manual_seed(seed)
    stops = [tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>")]
    out = lm.generate(ids, attention_mask=torch.ones_like(ids), eos_token_id=stops, pad_token_id=stops[0], **kw)
    return out[0, ids.shape[1]:].tolist()


def encoder(name: str):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    return load_text_encoder(ModelManager(), name, "", "auto", "cpu")


SAMPLED = dict(max_length=12, temperature=0.7, top_k=64, top_p=0.95, min_p=0.05, repetition_penalty=1.05)


@pytest.mark.parametrize("name", ["qwen3_tied_tiny", "qwen3_head_tiny"])
def test_sampled_tokens_equal_transformers_generate(models, name):
    from nodes.generate.textgen import generate_ids
    got, _ = generate_ids(encoder(f"{name}.safetensors"), "a cat on a roof", seed=11, **SAMPLED)
    want = reference(models, name, "a cat on a roof", 11, do_sample=True, max_new_tokens=12, temperature=0.7,
                     top_k=64, top_p=0.95, min_p=0.05, repetition_penalty=1.05)
    assert got == want and len(got) > 1


def test_greedy_tokens_equal_transformers_generate(models):
    from nodes.generate.textgen import generate_ids
    got, _ = generate_ids(encoder("qwen3_head_tiny.safetensors"), "a red kite", max_length=10, sample=False)
    assert got == reference(models, "qwen3_head_tiny", "a red kite", 0, do_sample=False, max_new_tokens=10)


def test_a_system_turn_comes_before_the_users(models):
    from nodes.generate.textgen import generate_ids
    system = "Answer in one line."
    got, _ = generate_ids(encoder("qwen3_head_tiny.safetensors"), "a red kite", seed=7, system=system, **SAMPLED)
    want = reference(models, "qwen3_head_tiny", "a red kite", 7, system=system, do_sample=True, max_new_tokens=12,
                     temperature=0.7, top_k=64, top_p=0.95, min_p=0.05, repetition_penalty=1.05)
    assert got == want
    assert got != reference(models, "qwen3_head_tiny", "a red kite", 7, do_sample=True, max_new_tokens=12,
                            temperature=0.7, top_k=64, top_p=0.95, min_p=0.05, repetition_penalty=1.05)


PICTURE = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)


def processor(tok, mean, std):
    """transformers' Qwen3VLProcessor with Qwen-VL's 16-pixel patches merged 2x2, pixels normalised by mean and std."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.processing_utils import ProcessorMixin
    check = ProcessorMixin.check_argument_for_proper_class
    ProcessorMixin.check_argument_for_proper_class = lambda self, name, arg: None   # no video processor
    try:
        return Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(patch_size=16, merge_size=2, image_mean=mean,
                                                                      image_std=std), tokenizer=tok)
    finally:
        ProcessorMixin.check_argument_for_proper_class = check


def qwen3vl_reference(models: Path, prompt: str, seed: int, image=PICTURE, system: str = "", **kw):
    """transformers alone: Qwen3VLForConditionalGeneration from the file's tensors (transformers 5's names), Qwen3-VL's
    published processing (16-pixel patches merged 2x2, pixels to -1..1) and its chat turn written out, the picture
    first; generate under torch.manual_seed."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer
    from tiny_qwen21 import text_encoder
    lm = text_encoder(**TOWER)
    state = load_file(str(models / "models/text_encoders/qwen3vl_tiny.safetensors"))
    lm.load_state_dict({k.replace("model.", "model.language_model.", 1).replace("visual.", "model.visual.", 1)
                        if not k.startswith("lm_head") else k: v.float() for k, v in state.items()})
    tok = AutoTokenizer.from_pretrained(str(models / "models/text_encoders/qwen3vl_tiny"))
    proc = processor(tok, [0.5] * 3, [0.5] * 3)
    picture = "<|vision_start|><|image_pad|><|vision_end|>" if image is not None else ""
    text = f"<|im_start|>user\n{picture}{prompt}<|im_end|>\n<|im_start|>assistant\n"
    if system:
        text = f"<|im_start|>system\n{system}<|im_end|>\n" + text
    enc = proc(text=[text], images=None if image is None else [image], return_tensors="pt")
    stops = [tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>")]
    torch.manual_seed(seed)
    out = lm.generate(**enc, eos_token_id=stops, pad_token_id=stops[0], **kw)
    return out[0, enc.input_ids.shape[1]:].tolist()


def test_qwen3vl_reading_a_picture_writes_transformers_tokens(models):
    from nodes.generate.textgen import generate_ids
    te = encoder("qwen3vl_tiny.safetensors")
    got, _ = generate_ids(te, "what is it", max_length=10, sample=False, image=PICTURE)
    assert got == qwen3vl_reference(models, "what is it", 0, do_sample=False, max_new_tokens=10)
    got, _ = generate_ids(te, "what is it", seed=3, image=PICTURE, system="be brief", **SAMPLED)
    want = qwen3vl_reference(models, "what is it", 3, system="be brief", do_sample=True, max_new_tokens=12,
                             temperature=0.7, top_k=64, top_p=0.95, min_p=0.05, repetition_penalty=1.05)
    assert got == want and len(got) > 1
    assert got != qwen3vl_reference(models, "what is it", 3, image=PICTURE[::-1].copy(), system="be brief",
                                    do_sample=True, max_new_tokens=12, temperature=0.7, top_k=64, top_p=0.95,
                                    min_p=0.05, repetition_penalty=1.05)


def qwen35_reference(models: Path, text: str, seed: int, **kw):
    """transformers alone: Qwen3_5ForCausalLM in the published config from the file's tensors (the head renamed),
    `text` as written, generate under torch.manual_seed."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, Qwen3_5ForCausalLM, Qwen3_5TextConfig
    state = load_file(str(models / "models/text_encoders/qwen35_tiny.safetensors"))
    lm = Qwen3_5ForCausalLM(Qwen3_5TextConfig(**Q35)).eval()
    lm.load_state_dict({k.replace("model.lm_head", "lm_head"): v.float() for k, v in state.items()})
    tok = AutoTokenizer.from_pretrained(str(models / "models/text_encoders/qwen35_tiny"))
    ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
    stops = [tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>")]
    torch.manual_seed(seed)
    out = lm.generate(ids, attention_mask=torch.ones_like(ids), eos_token_id=stops, pad_token_id=stops[0], **kw)
    return out[0, ids.shape[1]:].tolist()


def test_qwen35_writes_transformers_tokens(models):
    """Qwen3.5 (ComfyUI's turn: an empty reasoning block when it is not to think, none when it is) after a system
    turn, sampled and greedy."""
    from nodes.generate.textgen import generate_ids
    te = encoder("qwen35_tiny.safetensors")
    turn = "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\na cat<|im_end|>\n<|im_start|>assistant\n"
    got, _ = generate_ids(te, "a cat", seed=2, system="be brief", **SAMPLED)
    assert got == qwen35_reference(models, turn + "<think>\n</think>\n", 2, do_sample=True, max_new_tokens=12,
                                   temperature=0.7, top_k=64, top_p=0.95, min_p=0.05, repetition_penalty=1.05)
    got, _ = generate_ids(te, "a cat", max_length=8, sample=False, thinking=True, system="be brief")
    assert got == qwen35_reference(models, turn, 0, do_sample=False, max_new_tokens=8) and len(got) > 1


def test_qwen35_for_a_model_family_or_with_a_picture_is_refused_by_name(models):
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.textgen import generate_ids
    with pytest.raises(NodeError, match=r"qwen35_tiny\.safetensors is Qwen3\.5, which Kinograph generates text with "
                                        r"\(text\.generate\) but pairs with no model family.*set type auto"):
        load_text_encoder(ModelManager(), "qwen35_tiny.safetensors", "", "wan", "cpu")
    with pytest.raises(NodeError, match=r"Qwen3\.5 language model, a file without its vision tower"):
        generate_ids(encoder("qwen35_tiny.safetensors"), "a cat", max_length=2, image=PICTURE)
    from nodes.generate.text import encode_prompt
    with pytest.raises(NodeError, match=r"qwen35_tiny\.safetensors is Qwen3\.5, which Kinograph writes text with "
                                        r"\(text\.generate\), but none of its model families reads prompts with it"):
        encode_prompt(encoder("qwen35_tiny.safetensors"), "a cat")


def qwen35vl_reference(models: Path, prompt: str, seed: int, **kw):
    """transformers alone: Qwen3_5ForConditionalGeneration from the file's tensors (transformers' names), the picture
    as ComfyUI prepares it for Qwen3.5 (16-pixel patches merged 2x2, CLIP's mean and spread), ComfyUI's Qwen3.5 turn
    written out (thinking off); generate under torch.manual_seed."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer
    lm = qwen35_vision()
    state = load_file(str(models / "models/text_encoders/qwen35vl_tiny.safetensors"))
    lm.load_state_dict({k.replace("model.lm_head", "lm_head").replace("model.", "model.language_model.", 1)
                        .replace("visual.", "model.visual.", 1): v.float() for k, v in state.items()})
    tok = AutoTokenizer.from_pretrained(str(models / "models/text_encoders/qwen35vl_tiny"))
    proc = processor(tok, [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])
    text = (f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{prompt}<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n</think>\n")
    enc = proc(text=[text], images=[PICTURE], return_tensors="pt")
    stops = [tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>")]
    torch.manual_seed(seed)
    out = lm.generate(**enc, eos_token_id=stops, pad_token_id=stops[0], **kw)
    return out[0, enc.input_ids.shape[1]:].tolist()


def test_qwen35_reading_a_picture_writes_transformers_tokens(models):
    """Qwen3.5 with its vision tower (ComfyUI's qwen3.5_4b layout) reads a picture and writes what
    Qwen3_5ForConditionalGeneration.generate writes."""
    from nodes.generate.textgen import generate_ids
    got, _ = generate_ids(encoder("qwen35vl_tiny.safetensors"), "what is it", seed=5, image=PICTURE, **SAMPLED)
    assert got == qwen35vl_reference(models, "what is it", 5, do_sample=True, max_new_tokens=12, temperature=0.7,
                                     top_k=64, top_p=0.95, min_p=0.05, repetition_penalty=1.05) and len(got) > 1


def test_a_picture_for_a_model_that_reads_none_is_refused_by_name(models):
    from graph_engine import NodeError
    from nodes.generate.textgen import generate_ids
    with pytest.raises(NodeError, match=r"qwen3_tied_tiny\.safetensors is a Qwen3 language model, a model that "
                                        r"reads no pictures.*Qwen3-VL"):
        generate_ids(encoder("qwen3_tied_tiny.safetensors"), "a cat", max_length=2, image=PICTURE)


def test_a_picture_without_the_chat_turn_is_refused_by_name(models):
    """The picture's place is a placeholder in the model's chat turn: with use_default_template off the prompt goes
    as written, with no place for it (transformers' processor raised a ValueError here)."""
    from graph_engine import NodeError
    from nodes.generate.textgen import generate_ids
    with pytest.raises(NodeError, match=r"qwen3vl_tiny\.safetensors reads a picture or sound inside its chat turn.*"
                                        r"use_default_template on"):
        generate_ids(encoder("qwen3vl_tiny.safetensors"), "a cat", max_length=2, image=PICTURE, use_template=False)


def test_a_seed_gives_the_same_text_and_leaves_the_global_stream_alone(models):
    from nodes.generate.textgen import generate_text
    te = encoder("qwen3_tied_tiny.safetensors")
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    first = generate_text(te, "a boat", seed=4, **SAMPLED)
    assert torch.equal(torch.rand(1), before)
    assert generate_text(te, "a boat", seed=4, **SAMPLED) == first
    assert generate_text(te, "a boat", seed=5, **SAMPLED) != first


def test_a_seed_reseeds_no_gpu_stream_it_does_not_restore(models, monkeypatch):
    """torch.manual_seed reseeds every GPU's stream (and Apple's MPS) while fork_rng restored only the model's device:
    an encoder on the CPU of a CUDA machine left the GPUs' global streams reseeded to the text's seed."""
    from nodes.generate.textgen import generate_text
    te = encoder("qwen3_tied_tiny.safetensors")
    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: reseeded.append(("cuda", seed)))
    monkeypatch.setattr(torch.mps, "manual_seed", lambda seed: reseeded.append(("mps", seed)))
    first = generate_text(te, "a boat", seed=4, **SAMPLED)
    assert reseeded == []
    assert generate_text(te, "a boat", seed=4, **SAMPLED) == first


def test_an_encoder_without_a_language_model_is_refused_by_name():
    from transformers import T5Config, T5EncoderModel
    from graph_engine import NodeError
    from nodes.generate.handles import ComponentHandle
    from nodes.generate.textgen import generate_text
    t5 = T5EncoderModel(T5Config(vocab_size=32, d_model=8, d_kv=4, d_ff=8, num_layers=1, num_heads=2))
    handle = ComponentHandle("ltx", "/m/text_encoders/t5xxl_fp16.safetensors",
                             types.SimpleNamespace(text_encoder=t5, tokenizer=None), "text_encoder")
    with pytest.raises(NodeError) as err:
        generate_text(handle, "a cat")
    msg = str(err.value)
    assert "t5xxl_fp16.safetensors" in msg and "no language model" in msg and "Qwen3" in msg and "Gemma 3" in msg


def test_comfyuis_qwen3_template_runs_and_writes_what_transformers_writes(models):
    """llm_qwen3_text_gen.json as published (qwen_3_4b loaded with type ltxv, which only text generation uses) runs
    on the tiny file: its TextGenerate writes transformers' tokens for that prompt and seed, decoded."""
    import json
    from transformers import AutoTokenizer
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from graph_engine.workflow import to_yaml
    data = json.loads((ROOT / "tests/data/comfyui/templates/llm_qwen3_text_gen.json").read_text(encoding="utf-8"))
    res = import_data(data)
    gen, = [n for n in res.graph.nodes.values() if n.type == "text.generate"]
    loader, = [n for n in res.graph.nodes.values() if n.type == "load.text_encoder"]
    assert loader.params["type"] == "auto"
    loader.params["name"] = "qwen3_tied_tiny.safetensors"
    gen.params["max_length"] = 12
    prompt, seed = gen.params["prompt"], gen.params["seed"]
    events = []
    run = Session(device="cpu").run(load_workflow(text=to_yaml(res.graph), check=True), use_cache=False,
                                    on_event=events.append)
    assert run.ok, run.failed
    want = reference(models, "qwen3_tied_tiny", prompt, seed, do_sample=True, max_new_tokens=12, temperature=0.7,
                     top_k=64, top_p=0.95, min_p=0.05, repetition_penalty=1.05)
    tok = AutoTokenizer.from_pretrained(str(models / "models/text_encoders/qwen3_tied_tiny"))
    text = tok.decode(want, skip_special_tokens=True).strip()
    assert run.outputs[gen.id]["text"] == text
    assert {"event": "log", "node": gen.id, "message": f"generated: {text}"} in events
    assert not any("saves a file" in r for r in res.report.remarks)


# Gemma 3 12B's published text_config (google/gemma-3-12b-it), sizes cut down: six layers, so the sixth attends
# globally with its linearly scaled rope, the first five in 1024-token windows
GEMMA = dict(vocab_size=300, hidden_size=32, intermediate_size=48, num_hidden_layers=6, num_attention_heads=2,
             num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16, rms_norm_eps=1e-6, sliding_window=1024,
             hidden_activation="gelu_pytorch_tanh", max_position_embeddings=131072,
             rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                              "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}})
GEMMA_SPECIAL = ("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>")


def test_gemma3_as_ltx2_loads_it_writes_transformers_tokens(tmp_path):
    """Gemma 3 (LTX-2's gemma_3_12B_it layout: model.*, head tied, no chat template in its tokenizer) through
    Kinograph's own loading of the file writes what Gemma3ForCausalLM.generate writes in Gemma's user turn."""
    from safetensors.torch import save_file
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig
    from tiny_flux2 import tokenizer
    from nodes.generate.detect import detect_file
    from nodes.generate.handles import ComponentHandle
    from nodes.generate.split import _module
    from nodes.generate.textgen import generate_ids
    torch.manual_seed(8)
    ref = Gemma3ForCausalLM(Gemma3TextConfig(**GEMMA, tie_word_embeddings=True)).eval()
    path = tmp_path / "gemma_3_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items() if not k.startswith("lm_head")}, str(path))
    tok = tokenizer(tmp_path / "gemma_3_tiny", None, GEMMA_SPECIAL)
    te = _module(path, detect_file(path), torch.float32, "cpu")
    handle = ComponentHandle("ltx2", f"{path}+/m/checkpoints/ltx-2-19b-dev.safetensors",
                             types.SimpleNamespace(text_encoder=te, tokenizer=tok), "text_encoder")
    got, _ = generate_ids(handle, "a fox at dusk", seed=2, **SAMPLED)
    ids = tok("<start_of_turn>user\na fox at dusk<end_of_turn>\n<start_of_turn>model\n", return_tensors="pt").input_ids
    stops = [tok.convert_tokens_to_ids(t) for t in ("<eos>", "<end_of_turn>")]
    torch.manual_seed(2)
    want = ref.generate(ids, attention_mask=torch.ones_like(ids), eos_token_id=stops, pad_token_id=stops[0],
                        do_sample=True, max_new_tokens=12, temperature=0.7, top_k=64, top_p=0.95, min_p=0.05,
                        repetition_penalty=1.05)[0, ids.shape[1]:].tolist()
    assert got == want and len(got) > 1


def test_sampling_mode_off_is_greedy_and_its_later_widgets_keep_their_names():
    """ComfyUI stores no sampling widgets when sampling_mode is off: the two values after it are thinking and
    use_default_template, not temperature and top_k."""
    import json
    from app.comfyui import import_data
    data = json.loads((ROOT / "tests/data/comfyui/templates/llm_qwen3_text_gen.json").read_text(encoding="utf-8"))
    node = next(n for n in data["nodes"] if n["type"] == "TextGenerate")
    node["widgets_values"] = ["a haiku", 64, "off", True, False]
    gen, = [n for n in import_data(data).graph.nodes.values() if n.type == "text.generate"]
    assert gen.params == {"prompt": "a haiku", "max_length": 64, "sampling": False, "thinking": True,
                          "use_default_template": False}


def test_sampling_mode_off_in_an_api_file_keeps_thinking_and_the_template_switch():
    """An API-format file names each value, so with sampling_mode off thinking and use_default_template are under
    their own names (only a UI file's widget list moves them up): they were dropped, thinking on read as off."""
    from app.comfyui import import_data
    api = {"1": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_3_4b.safetensors", "type": "stable_diffusion"}},
           "2": {"class_type": "TextGenerate", "inputs": {"clip": ["1", 0], "prompt": "a haiku", "max_length": 64,
                                                          "sampling_mode": "off", "thinking": True,
                                                          "use_default_template": False}},
           "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}}
    gen, = [n for n in import_data(api).graph.nodes.values() if n.type == "text.generate"]
    assert gen.params == {"prompt": "a haiku", "max_length": 64, "sampling": False, "thinking": True,
                          "use_default_template": False}


def test_a_file_of_an_untied_model_without_its_head_is_refused_by_name(models, monkeypatch):
    """Qwen3-8B keeps its own output head: a file of it without lm_head cannot generate (its embeddings are not the
    head), and says so; one with lm_head generates. The tiny width stands for 8B's 4096 here."""
    from graph_engine import NodeError
    from nodes.generate import textgen
    monkeypatch.setitem(textgen.UNTIED, "Qwen3Model", {48: "Qwen3-8B"})
    with pytest.raises(NodeError, match=r"qwen3_tied_tiny\.safetensors is Qwen3-8B, whose output head \(lm_head\)"):
        textgen.generate_ids(encoder("qwen3_tied_tiny.safetensors"), "a cat", max_length=2)
    assert textgen.generate_ids(encoder("qwen3_head_tiny.safetensors"), "a cat", max_length=2)[0]


def test_a_quantised_output_head_is_dequantised(tmp_path):
    """The file's own lm_head, int8_convrot or fp8 scaled as ComfyUI's quantised text encoders may hold it, read as
    its plain matrix: its names were cut to `weight`, which the loader's `.weight` rules never matched, so the raw
    int8 (or unscaled fp8) values became the head."""
    from types import SimpleNamespace

    from safetensors.torch import save_file

    import comfy_convrot as cr
    from nodes.generate.textgen import _file_head
    w = torch.randn(8, 256, generator=torch.Generator().manual_seed(0)) * 0.05
    q, s = cr.quantize_int8_convrot_weight(w, 256)
    path = tmp_path / "qwen_3_8b_int8_convrot.safetensors"
    save_file({"lm_head.weight": q, "lm_head.weight_scale": s, "model.norm.weight": torch.ones(256),
               "lm_head.comfy_quant": cr.tag({"format": "int8_tensorwise", "convrot": True})}, str(path))
    assert torch.equal(_file_head(SimpleNamespace(path=str(path))).float(),
                       cr.dequantize_int8_convrot_weight(q, s, 256).to(torch.bfloat16).float())
    scale = torch.tensor(0.01)
    save_file({"lm_head.weight": (w / scale).to(torch.float8_e4m3fn), "lm_head.scale_weight": scale,
               "scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}, str(path))
    want = (w / scale).to(torch.float8_e4m3fn).float() * scale
    assert torch.equal(_file_head(SimpleNamespace(path=str(path))), want)


@pytest.mark.parametrize("template, name, reference", [
    ("llm_qwen3vl_text_gen.json", "qwen3vl_tiny", qwen3vl_reference),
    ("llm_qwen3_5_text_gen.json", "qwen35vl_tiny", qwen35vl_reference)])
def test_comfyuis_picture_templates_read_it_as_transformers_does(models, tmp_path, template, name, reference):
    """llm_qwen3vl_text_gen.json and llm_qwen3_5_text_gen.json as published (qwen3vl_4b loaded as ideogram4,
    qwen3.5_4b as stable_diffusion; LoadImage into TextGenerate's image) run on the tiny files: their text is
    transformers' tokens for that picture, prompt and seed, decoded."""
    import json
    from PIL import Image
    from transformers import AutoTokenizer
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from graph_engine.workflow import to_yaml
    data = json.loads((ROOT / "tests/data/comfyui/templates" / template).read_text(encoding="utf-8"))
    res = import_data(data)
    gen, = [n for n in res.graph.nodes.values() if n.type == "text.generate"]
    Image.fromarray(PICTURE).save(tmp_path / "picture.png")
    for n in res.graph.nodes.values():
        if n.type == "load.text_encoder":
            n.params["name"] = f"{name}.safetensors"
        if n.type == "io.load_image":
            n.params["path"] = str(tmp_path / "picture.png")
    gen.params["max_length"] = 12
    run = Session(device="cpu").run(load_workflow(text=to_yaml(res.graph), check=True), use_cache=False)
    assert run.ok, run.failed
    want = reference(models, gen.params["prompt"], gen.params["seed"], do_sample=True, max_new_tokens=12,
                     temperature=0.7, top_k=64, top_p=0.95, min_p=0.05, repetition_penalty=1.05)
    tok = AutoTokenizer.from_pretrained(str(models / "models/text_encoders" / name))
    assert run.outputs[gen.id]["text"] == tok.decode(want, skip_special_tokens=True).strip()


def test_comfyuis_system_prompt_and_mtp_are_read():
    """The newer TextGenerate (ming_image_01_design_t2i's): its system prompt from a text primitive becomes
    text.generate's system_prompt, and its thirteenth widget mtp (auto) is a speed setting that changes no token."""
    import json
    from app.comfyui import import_data
    data = json.loads((ROOT / "tests/data/comfyui/templates/image_ming_image_01_design_t2i.json")
                      .read_text(encoding="utf-8"))
    res = import_data(data)
    gen, = [n for n in res.graph.nodes.values() if n.type == "text.generate"]
    assert gen.params["system_prompt"].startswith("You are a senior visual designer and image-prompt engineer.")
    assert gen.params["prompt"].startswith("A retro 1950s mid-century e-commerce homepage design")
    assert gen.params["max_length"] == 4096 and gen.params["repetition_penalty"] == 1.05
    entry, = [e for e in res.report.entries.values() if e.class_type == "TextGenerate"]
    assert not any("mtp" in n or "system_prompt" in n for n in entry.notes)


# Gemma 4's published text config (google/gemma-4-E2B-it), sizes cut down: sliding layers with full-attention ones of
# twice the head width, the last two reading the keys and values of the last layer of their kind before them, with
# the double-wide MLP; per-layer inputs; logits capped at 30
G4 = dict(vocab_size=300, hidden_size=64, intermediate_size=48, num_hidden_layers=4, num_attention_heads=2,
          num_key_value_heads=1, head_dim=32, global_head_dim=64, hidden_size_per_layer_input=16,
          vocab_size_per_layer_input=300, num_kv_shared_layers=2, use_double_wide_mlp=True, sliding_window=512,
          layer_types=["sliding_attention", "full_attention"] * 2, final_logit_softcapping=30.0, rms_norm_eps=1e-6)
# google/gemma-4-31B-it's shape: no per-layer inputs or shared layers, global layers with fewer key heads than the
# sliding ones and their keys as values (no v_proj)
G4_31B = dict(G4, hidden_size_per_layer_input=0, num_kv_shared_layers=0, use_double_wide_mlp=False,
              num_key_value_heads=2, num_global_key_value_heads=1, attention_k_eq_v=True)
GEMMA4 = {"gemma4_tiny": G4, "gemma4_31b_tiny": G4_31B}
G4_SPECIAL = ("<pad>", "<eos>", "<bos>", "<|turn>", "<turn|>", "<|think|>")


def build_gemma4(te: Path) -> None:
    """text_encoders/gemma4_tiny.safetensors and gemma4_31b_tiny.safetensors as ComfyUI's gemma4_e4b_it holds its
    language model: transformers' names under model., no head (tied), and the tokenizer's JSON inside as the uint8
    tensor tokenizer_json (the towers, which test_gemma4_media reads, left out)."""
    from safetensors.torch import save_file
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig
    from tiny_flux2 import tokenizer
    tokenizer(te / "_gemma4_tok", "", G4_SPECIAL)
    data = (te / "_gemma4_tok" / "tokenizer.json").read_bytes()
    for name, config in GEMMA4.items():
        torch.manual_seed(8)
        lm = Gemma4ForCausalLM(Gemma4TextConfig(**config))
        with torch.no_grad():
            for key, w in lm.named_parameters():
                if key.endswith("norm.weight"):
                    w.normal_(1, 0.3)
            lm.model.embed_tokens.weight.normal_(0, 4)     # logits (the tied head) well past the cap at 30
        state = {k: v.bfloat16().contiguous() for k, v in lm.state_dict().items() if not k.startswith("lm_head")}
        save_file({**state, "tokenizer_json": torch.frombuffer(bytearray(data), dtype=torch.uint8)},
                  str(te / f"{name}.safetensors"))


def gemma4_reference(models: Path, name: str, text: str, seed: int, **kw):
    """transformers alone: Gemma4ForCausalLM in the config above from the file's tensors, the turn written out (as
    ComfyUI writes it: <bos>, a system turn for thinking or a system prompt), the file's tokenizer JSON read by
    `tokenizers`; generate under torch.manual_seed, stopping at <eos> or <turn|>."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig
    state = load_file(str(models / "models/text_encoders" / f"{name}.safetensors"))
    tok = Tokenizer.from_str(bytes(state.pop("tokenizer_json").tolist()).decode("utf-8"))
    lm = Gemma4ForCausalLM(Gemma4TextConfig(**GEMMA4[name])).eval()
    lm.load_state_dict({k: v.float() for k, v in state.items() if k.startswith("model.")}, strict=False)
    lm.tie_weights()
    ids = torch.tensor([tok.encode(text, add_special_tokens=False).ids])
    stops = [tok.token_to_id("<eos>"), tok.token_to_id("<turn|>")]
    torch.manual_seed(seed)
    out = lm.generate(ids, attention_mask=torch.ones_like(ids), eos_token_id=stops,
                      pad_token_id=tok.token_to_id("<pad>"), **kw)
    return out[0, ids.shape[1]:].tolist()


@pytest.mark.parametrize("name", list(GEMMA4))
def test_gemma4_writes_transformers_tokens(models, name):
    """ComfyUI's Gemma 4 files (E2B's and 31B's shapes, their sizes read from the tensors, the tokenizer from inside
    them): greedy, and seeded sampling with a system prompt and thinking on, token-equal to Gemma4ForCausalLM.generate
    on the same weights."""
    from nodes.generate.textgen import generate_ids
    te = encoder(f"{name}.safetensors")
    got, _ = generate_ids(te, "a red fox", max_length=10, sample=False)
    assert got == gemma4_reference(models, name, "<bos><|turn>user\na red fox<turn|>\n<|turn>model\n", 0,
                                   do_sample=False, max_new_tokens=10)
    got, _ = generate_ids(te, "a red fox", seed=3, system="be brief", thinking=True, **SAMPLED)
    want = gemma4_reference(models, name, "<bos><|turn>system\n<|think|>be brief<turn|>\n<|turn>user\na red fox<turn|>\n"
                            "<|turn>model\n", 3, do_sample=True, max_new_tokens=12, temperature=0.7, top_k=64,
                            top_p=0.95, min_p=0.05, repetition_penalty=1.05)
    assert got == want and len(got) > 1


def test_gemma4_with_a_picture_or_a_model_family_is_refused_by_name(models):
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.textgen import generate_ids
    with pytest.raises(NodeError, match=r"gemma4_tiny\.safetensors is a Gemma 4 language model, a file without its "
                                        r"vision tower \(vision_model\.\*\): leave `image` unlinked"):
        generate_ids(encoder("gemma4_tiny.safetensors"), "what is it", image=PICTURE)
    with pytest.raises(NodeError, match=r"gemma4_tiny\.safetensors is Gemma 4, .* set type auto, not 'ltx2'"):
        load_text_encoder(ModelManager(), "gemma4_tiny.safetensors", "", "ltx2", "cpu")
