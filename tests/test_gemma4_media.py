"""text.generate with Gemma 4 reading a picture and hearing a sound (ComfyUI's llm_gemma4_text_gen): a tiny
gemma4_e4b_it-shaped file in ComfyUI's names (model.*, vision_model.*, multi_modal_projector.*, audio_model.*,
audio_projector.*, the tokenizer's JSON inside) greedily writes the tokens transformers' own
Gemma4ForConditionalGeneration writes on the same weights, with the picture prepared by transformers'
Gemma4ImageProcessorPil and the sound by its Gemma4AudioFeatureExtractor, in ComfyUI's turn (written out below)."""
import json
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# Gemma 4 E2B's text shape cut down (as test_textgen's), a one-layer vision tower with 16-pixel patches and clipped
# linears, a one-layer conformer audio tower over 128 mel bins
TEXT = dict(vocab_size=300, hidden_size=64, intermediate_size=48, num_hidden_layers=4, num_attention_heads=2,
            num_key_value_heads=1, head_dim=32, global_head_dim=64, hidden_size_per_layer_input=16,
            vocab_size_per_layer_input=300, num_kv_shared_layers=2, use_double_wide_mlp=True, sliding_window=512,
            layer_types=["sliding_attention", "full_attention"] * 2, final_logit_softcapping=30.0, rms_norm_eps=1e-6)
VISION = dict(hidden_size=32, intermediate_size=40, num_attention_heads=2, num_key_value_heads=2, head_dim=16,
              num_hidden_layers=1, use_clipped_linears=True)
AUDIO = dict(hidden_size=32, num_attention_heads=2, num_hidden_layers=1, output_proj_dims=24)
SPECIAL = ("<pad>", "<eos>", "<bos>", "<|turn>", "<turn|>", "<|think|>", "<|image>", "<|image|>", "<image|>",
           "<|audio>", "<|audio|>", "<audio|>", "<|video|>")
# transformers' module names -> ComfyUI's, as the Comfy-Org/gemma-4 files hold them
COMFY = {"model.language_model.": "model.", "model.vision_tower.": "vision_model.",
         "model.embed_vision.": "multi_modal_projector.", "model.audio_tower.": "audio_model.",
         "model.embed_audio.": "audio_projector."}
# 672 x 960: 280 soft tokens of 3x3 16-pixel patches exactly, so neither side resizes it (PIL's bicubic, the
# processor's, is not torchvision's, ComfyUI's; their resizes are compared on their own below)
PICTURE = np.random.default_rng(0).integers(0, 256, (672, 960, 3), dtype=np.uint8)
# a smooth 64 x 48 picture: Pillow's bicubic and torch's agree within rounding on it (on noise their edges part)
_Y, _X = np.mgrid[0:64, 0:48]
SMALL = np.stack([_X * 5, _Y * 3, 128 + 60 * np.sin(_X / 7.0 + _Y / 9.0)], -1).astype(np.uint8)
SOUND = (np.sin(np.arange(11200) * 0.05) * 12000 + np.random.default_rng(1).normal(0, 3000, 11200)).astype(np.int16)


def token_ids(tok) -> dict:
    return {k: tok.token_to_id(t) for k, t in (
        ("image_token_id", "<|image|>"), ("video_token_id", "<|video|>"), ("audio_token_id", "<|audio|>"),
        ("boi_token_id", "<|image>"), ("eoi_token_id", "<image|>"), ("boa_token_id", "<|audio>"),
        ("eoa_token_index", "<audio|>"))}


def model(tok, audio=True):
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration
    return Gemma4ForConditionalGeneration(Gemma4Config(text_config=TEXT, vision_config=VISION,
                                                       audio_config=AUDIO if audio else None, **token_ids(tok))).eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from comfy_layouts import models_dir
    yield from models_dir(tmp_path_factory, build, "gemma4")


def build(root: Path) -> Path:
    """text_encoders/gemma4mm_tiny.safetensors (both towers, E4B's shape) and gemma4v_tiny.safetensors (the vision
    tower alone, as the 31B), bf16, and a 0.7 s 16 kHz sound."""
    from safetensors.torch import save_file
    from tokenizers import Tokenizer
    from tiny_flux2 import tokenizer
    te = root / "models" / "text_encoders"
    te.mkdir(parents=True)
    tokenizer(root / "tok", "", SPECIAL)
    data = (root / "tok" / "tokenizer.json").read_bytes()
    tok = Tokenizer.from_str(data.decode("utf-8"))
    for name, audio in (("gemma4mm_tiny", True), ("gemma4v_tiny", False)):
        torch.manual_seed(8)
        lm = model(tok, audio)
        with torch.no_grad():
            for key, w in lm.named_parameters():
                if key.endswith("norm.weight"):
                    w.normal_(1, 0.3)
                elif "tower" in key or "embed_vision" in key or "embed_audio" in key:
                    w.normal_(0, 0.5)       # the towers' outputs as loud as the words': they steer the tokens
                elif key.endswith(("proj.weight", "gate.weight")):
                    w.normal_(0, 0.3)       # layers loud enough beside the residual to read the turn
            lm.model.language_model.embed_tokens.weight.normal_(0, 0.15)
            for key, b in lm.named_buffers():
                if key.endswith(("input_max", "output_max")):
                    b.fill_(4.0)            # clipping that bites: ComfyUI's files carry the trained bounds
                elif key.endswith(("input_min", "output_min")):
                    b.fill_(-4.0)
        state = {}
        for k, v in lm.state_dict().items():
            if k.startswith("lm_head"):
                continue
            prefix = next(p for p in COMFY if k.startswith(p))
            state[COMFY[prefix] + k[len(prefix):]] = v.bfloat16().contiguous()
        save_file({**state, "tokenizer_json": torch.frombuffer(bytearray(data), dtype=torch.uint8)},
                  str(te / f"{name}.safetensors"))
    with wave.open(str(root / "voice.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(SOUND.tobytes())
    return root


# 30 frames of 336 x 480 (70 soft tokens each exactly, unresized): ComfyUI reads frames 0 and 24
FRAMES = np.random.default_rng(3).integers(0, 256, (30, 336, 480, 3), dtype=np.uint8)


def reference(root: Path, name: str, prompt: str, picture=None, sound=None, steps=10, frames=None):
    """transformers alone: the file's tensors under transformers' names in Gemma4ForConditionalGeneration, the
    picture through Gemma4ImageProcessorPil (280 soft tokens), the sound through Gemma4AudioFeatureExtractor, ComfyUI's
    Gemma 4 turn: <bos>, the user's turn with the picture between <|image> and <image|> set off by blank lines,
    then the sound between <|audio> and <audio|> (as many placeholders as ComfyUI counts from the sample count),
    then the prompt; greedy to <eos> or <turn|>."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer
    from transformers import Gemma4AudioFeatureExtractor, Gemma4ImageProcessorPil
    state = load_file(str(root / "models/text_encoders" / f"{name}.safetensors"))
    tok = Tokenizer.from_str(bytes(state.pop("tokenizer_json").tolist()).decode("utf-8"))
    back = {v: k for k, v in COMFY.items()}
    lm = model(tok, any(k.startswith("audio_model.") for k in state))
    mapped = {}
    for k, v in state.items():
        prefix = max((p for p in back if k.startswith(p)), key=len)
        mapped[back[prefix] + k[len(prefix):]] = v.float()
    missing, unexpected = lm.load_state_dict(mapped, strict=False)
    assert missing == ["lm_head.weight"] and not unexpected
    lm.tie_weights()
    media, kw = "", {}
    if picture is not None:
        img = Gemma4ImageProcessorPil()(Image.fromarray(picture), return_tensors="pt")
        media += "\n\n<|image>" + "<|image|>" * int(img["num_soft_tokens_per_image"][0]) + "<image|>\n\n"
        kw.update(pixel_values=img["pixel_values"], image_position_ids=img["image_position_ids"])
    if frames is not None:          # ComfyUI's video turn: each frame after its mm:ss time, video placeholders
        vid = [Gemma4ImageProcessorPil(max_soft_tokens=70)(Image.fromarray(f), return_tensors="pt") for f in frames]
        media += "\n\n" + " ".join(f"00:{i:02d} <|image>" + "<|video|>" * int(v["num_soft_tokens_per_image"][0])
                                   + "<image|>" for i, v in enumerate(vid)) + "\n\n"
        kw.update(pixel_values_videos=torch.cat([v["pixel_values"] for v in vid]),
                  video_position_ids=torch.cat([v["image_position_ids"] for v in vid]),
                  num_frames_per_video=torch.tensor([len(vid)]))
    if sound is not None:
        feats = Gemma4AudioFeatureExtractor()([sound.astype(np.float32) / 32768.0], sampling_rate=16000,
                                              return_tensors="pt")
        frames = (len(sound) + 160 - 321) // 160 + 1        # ComfyUI's count of the sound's soft tokens
        for _ in range(2):
            frames = (frames + 2 - 3) // 2 + 1
        media += "<|audio>" + "<|audio|>" * frames + "<audio|>"
        kw.update(input_features=feats["input_features"], input_features_mask=feats["input_features_mask"])
    text = f"<bos><|turn>user\n{media}{prompt}<turn|>\n<|turn>model\n"
    ids = torch.tensor([tok.encode(text, add_special_tokens=False).ids])
    with torch.no_grad():
        out = lm.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=steps,
                          eos_token_id=[tok.token_to_id("<eos>"), tok.token_to_id("<turn|>")],
                          pad_token_id=tok.token_to_id("<pad>"), **kw)
    return out[0, ids.shape[1]:].tolist()


def encoder(name: str):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    return load_text_encoder(ModelManager(), name, "", "auto", "cpu")


def test_a_picture_and_a_sound_write_transformers_tokens(models):
    """Greedy, token-equal to Gemma4ForConditionalGeneration.generate: the picture alone, the sound alone, both; and
    each changes what is written, so neither is dropped."""
    from graph_engine.clip import Audio
    from nodes.generate.textgen import generate_ids
    te = encoder("gemma4mm_tiny.safetensors")
    sound = Audio(str(models / "voice.wav"))
    alone, _ = generate_ids(te, "what is it", max_length=10, sample=False)
    seen, _ = generate_ids(te, "what is it", max_length=10, sample=False, image=PICTURE)
    assert seen == reference(models, "gemma4mm_tiny", "what is it", picture=PICTURE)
    heard, _ = generate_ids(te, "what is it", max_length=10, sample=False, audio=sound)
    assert heard == reference(models, "gemma4mm_tiny", "what is it", sound=SOUND)
    both, _ = generate_ids(te, "what is it", max_length=10, sample=False, image=PICTURE, audio=sound)
    assert both == reference(models, "gemma4mm_tiny", "what is it", picture=PICTURE, sound=SOUND)
    assert len({tuple(alone), tuple(seen), tuple(heard), tuple(both)}) == 4


def test_a_video_is_read_one_frame_a_second(models):
    """A video's frames 0 and 24 of 30 (ComfyUI takes any video as 24 fps and reads one frame a second), 70 soft
    tokens each after its time, with the sound: token-equal to Gemma4ForConditionalGeneration.generate given them
    as its video; another video writes other tokens."""
    from graph_engine.clip import Audio, Clip
    from nodes.generate.textgen import generate_ids
    te = encoder("gemma4mm_tiny.safetensors")
    sound = Audio(str(models / "voice.wav"))
    got, _ = generate_ids(te, "what happens", max_length=10, sample=False, video=Clip.from_array(FRAMES), audio=sound)
    assert got == reference(models, "gemma4mm_tiny", "what happens", frames=FRAMES[[0, 24]], sound=SOUND)
    other, _ = generate_ids(te, "what happens", max_length=10, sample=False, video=Clip.from_array(FRAMES[::-1]),
                            audio=sound)
    assert other != got


def test_a_picture_is_resized_as_the_released_processor_resizes_it():
    """A 64 x 48 picture grows to the largest 48-multiple size within 280 soft tokens (912 x 672: 266 tokens), its
    patches in the processor's order and grid places; the pixels within one 8-bit step of Pillow's bicubic (the
    processor's; torchvision's antialiased bicubic, ComfyUI's, follows Pillow's filter, and torchvision is not
    installed here to compare with)."""
    from transformers import Gemma4ImageProcessorPil
    from nodes.generate.gemma4_media import picture
    patches, places, tokens = picture(SMALL)
    want = Gemma4ImageProcessorPil()(Image.fromarray(SMALL), return_tensors="np")
    assert tokens == want["num_soft_tokens_per_image"][0] == 266
    assert np.array_equal(places, want["image_position_ids"][0])
    assert np.abs(patches - want["pixel_values"][0]).max() <= 1.5 / 255


def test_the_log_mel_is_the_released_feature_extractors():
    """ComfyUI's numpy log mel (what Kinograph computes) equals transformers' Gemma4AudioFeatureExtractor's, frames
    on padding masked alike, for lengths that do and do not fill the last 128-sample block."""
    from transformers import Gemma4AudioFeatureExtractor
    from nodes.generate.gemma4_media import log_mel
    for n in (11200, 11111, 480):
        mono = SOUND[:n].astype(np.float32) / 32768.0
        mel, mask = log_mel(mono)
        want = Gemma4AudioFeatureExtractor()([mono], sampling_rate=16000, return_tensors="np")
        assert np.array_equal(mask, want["input_features_mask"][0])
        np.testing.assert_allclose(mel, want["input_features"][0], atol=1e-5)


def test_a_file_without_a_tower_says_so_and_a_template_off_refuses(models):
    from graph_engine import NodeError
    from graph_engine.clip import Audio
    from nodes.generate.textgen import generate_ids
    te = encoder("gemma4v_tiny.safetensors")
    seen, _ = generate_ids(te, "what is it", max_length=6, sample=False, image=PICTURE)
    assert seen == reference(models, "gemma4v_tiny", "what is it", picture=PICTURE, steps=6)
    with pytest.raises(NodeError, match=r"holds no audio tower \(audio_model\.\*: only E2B and E4B hear\)"):
        generate_ids(te, "what is it", max_length=6, audio=Audio(str(models / "voice.wav")))
    with pytest.raises(NodeError, match="use_default_template off sends the prompt as written"):
        generate_ids(encoder("gemma4mm_tiny.safetensors"), "what is it", max_length=6, image=PICTURE,
                     use_template=False)


def test_the_template_imports_with_its_picture_and_sound():
    """llm_gemma4_text_gen (stored in the corpus): the picture and the sound reach text.generate; the unlinked
    video loader is left out."""
    from app.comfyui import import_data
    data = json.loads((ROOT / "tests/data/comfyui/templates/llm_gemma4_text_gen.json").read_text(encoding="utf-8"))
    res = import_data(data)
    gen, = [n for n in res.graph.nodes.values() if n.type == "text.generate"]
    links = res.graph.inputs[gen.id]
    assert res.graph.nodes[links["image"][0]].type == "io.load_image"
    assert res.graph.nodes[links["audio"][0]].type == "io.load_audio"
    assert res.graph.nodes[links["text_encoder"][0]].params["type"] == "auto"
    assert gen.params["prompt"] == "Describe the image, and transcribe the audio"
    assert "video" not in links


def test_a_template_given_a_video_links_it_and_says_the_picture_is_not_read():
    """The same template with GetVideoComponents' images linked to TextGenerate's video: the video loader reaches
    text.generate's video; the picture, which ComfyUI's Gemma 4 then does not read, is said to be unread."""
    from app.comfyui import import_data
    data = json.loads((ROOT / "tests/data/comfyui/templates/llm_gemma4_text_gen.json").read_text(encoding="utf-8"))
    data["links"].append([9, 7, 0, 1, 2, "IMAGE"])
    for n in data["nodes"]:
        if n["id"] == 1:
            next(i for i in n["inputs"] if i["name"] == "video")["link"] = 9
        elif n["id"] == 7:
            n["outputs"][0]["links"] = [9]
    res = import_data(data)
    gen, = [n for n in res.graph.nodes.values() if n.type == "text.generate"]
    assert res.graph.nodes[res.graph.inputs[gen.id]["video"][0]].type == "io.load_video"
    entry, = [e for e in res.report.entries.values() if e.class_type == "TextGenerate"]
    assert any("its image is not read: with a video linked too" in n for n in entry.notes)


def test_kinograph_info_says_what_each_file_reads(models, capsys):
    """`kinograph info` tells a Gemma 4 file with both towers from one with the vision tower alone."""
    from app.cli import main
    assert main(["info"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "with its vision and audio towers: it reads a picture and hears a sound" in out, out
    assert "with its vision tower: it reads a picture, read by text.generate" in out, out


def test_the_template_runs_and_writes_transformers_text(models, tmp_path):
    """llm_gemma4_text_gen as published (gemma4_e4b_it loaded as stable_diffusion; LoadImage and LoadAudio into
    TextGenerate) runs on the tiny file, greedy: its text is transformers' tokens for that picture, sound and
    prompt, decoded."""
    from tokenizers import Tokenizer
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from graph_engine.workflow import to_yaml
    data = json.loads((ROOT / "tests/data/comfyui/templates/llm_gemma4_text_gen.json").read_text(encoding="utf-8"))
    res = import_data(data)
    gen, = [n for n in res.graph.nodes.values() if n.type == "text.generate"]
    Image.fromarray(PICTURE).save(tmp_path / "picture.png")
    for n in res.graph.nodes.values():
        if n.type == "load.text_encoder":
            n.params["name"] = "gemma4mm_tiny.safetensors"
        if n.type == "io.load_image":
            n.params["path"] = str(tmp_path / "picture.png")
        if n.type == "io.load_audio":
            n.params["path"] = str(models / "voice.wav")
    gen.params.update(max_length=10, sampling=False)
    run = Session(device="cpu").run(load_workflow(text=to_yaml(res.graph), check=True), use_cache=False)
    assert run.ok, run.failed
    want = reference(models, "gemma4mm_tiny", gen.params["prompt"], picture=PICTURE, sound=SOUND)
    tok = Tokenizer.from_str((models / "tok" / "tokenizer.json").read_text(encoding="utf-8"))
    text = tok.decode(want, skip_special_tokens=True).strip()
    assert run.outputs[gen.id]["text"] == text and len(text) > 2
