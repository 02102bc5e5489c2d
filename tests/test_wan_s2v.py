"""Wan 2.2 S2V (sound to video) as a ComfyUI artist brings it: a voice file, ComfyUI's wav2vec2 speech encoder
(audio_encoders/wav2vec2_large_english_fp16.safetensors: transformers' Wav2Vec2Model tensors under a `wav2vec2.`
prefix, fp16, the positional conv's weight norm as weight_g / weight_v, a CTC head beside them) and the template
video_wan2_2_14B_s2v.json. The encoder here is a tiny random one in that layout; its features are compared with
transformers' Wav2Vec2Model on the same weights and sound."""
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "tests" / "data" / "comfyui" / "templates" / "video_wan2_2_14B_s2v.json"
RATE = 16000


def _config():
    from transformers import Wav2Vec2Config
    return Wav2Vec2Config(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          conv_dim=(16,) * 7, conv_bias=True, feat_extract_norm="layer", do_stable_layer_norm=True,
                          num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=None,
                          mask_time_prob=0.0)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """(ComfyUI-layout file, transformers' Wav2Vec2Model holding the same fp16-rounded weights)."""
    from safetensors.torch import save_file
    from transformers import Wav2Vec2Model
    torch.manual_seed(0)
    ref = Wav2Vec2Model(_config()).eval()
    for p in ref.parameters():
        p.data = p.data + 0.05 * torch.randn_like(p)       # layer norms away from 1 / 0: a wrong one shows
    sd = {k: v.half() for k, v in ref.state_dict().items()}
    ref.load_state_dict({k: v.float() for k, v in sd.items()})
    comfy = {}
    for k, v in sd.items():
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                              "weight_v")
        comfy[f"wav2vec2.{k}"] = v.contiguous()
    comfy["lm_head.weight"] = torch.zeros(32, 128, dtype=torch.float16)
    comfy["wav2vec2.masked_spec_embed"] = torch.zeros(128, dtype=torch.float16)
    path = tmp_path_factory.mktemp("audio_encoders") / "wav2vec2_large_english_fp16.safetensors"
    save_file(comfy, str(path))
    return path, ref


def _tone(path, seconds, rate=RATE, channels=1):
    """A sung-like tone (220 Hz and two harmonics, swelling) as 16-bit PCM WAV; the samples written, mono."""
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 660 * t))
    pcm = np.round(x * (0.5 + 0.5 * t / seconds) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(pcm[:, None], channels, 1).tobytes())
    return pcm.astype(np.float32) / 32768


def test_a_voice_is_encoded_by_comfyuis_wav2vec2_file_as_transformers_encodes_it(tmp_path, encoder):
    # Kinograph had no LoadAudio, AudioEncoderLoader or AudioEncoderEncode: the S2V template's sound side
    # imported as placeholders. Now the file's size is read from its tensors and its features are transformers'.
    from nodes.generate.audio_encoder import encode, load, samples
    from nodes.generate.model_manager import default_manager
    from nodes.io.sound import sound_span
    path, ref = encoder
    mono = _tone(tmp_path / "voice.wav", 0.5)
    handle = load(default_manager(), str(path), "cpu")
    span = sound_span(str(tmp_path / "voice.wav"), 0.1, 0.3)
    feats = encode(handle.pipe, samples(span))
    x = torch.as_tensor(mono[int(0.1 * RATE):int(0.4 * RATE)])[None]
    with torch.no_grad():
        want = ref((x - x.mean()) / torch.sqrt(x.var() + 1e-7), output_hidden_states=True).hidden_states
    assert feats["layers"].shape == (3, 14, 128) and feats["fps"] == 50      # 0.3 s at 50 a second
    assert torch.allclose(feats["layers"], torch.cat(want), atol=1e-4)
    assert torch.equal(feats["last"], feats["layers"][-1])
    # a 44.1 kHz stereo file is mixed down and resampled: the same frames a second
    _tone(tmp_path / "stereo.wav", 0.5, 44100, 2)
    assert encode(handle.pipe, samples(sound_span(str(tmp_path / "stereo.wav"), 0, 0)))["layers"].shape[1] == 24
    with pytest.raises(NodeError, match=r"start 2 s is past the end of voice.wav \(0:00.50"):
        sound_span(str(tmp_path / "voice.wav"), 2.0, 0)
    with pytest.raises(NodeError, match="needs at least 25 ms"):
        encode(handle.pipe, np.zeros(100, np.float32))
    from safetensors.torch import save_file
    save_file({"encoder.layers.0.attention.k_proj.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(NodeError, match="other.safetensors is not a wav2vec2 speech encoder"):
        load(default_manager(), str(tmp_path / "other.safetensors"), "cpu")


def test_a_base_wav2vec2_file_is_encoded_with_its_own_layer_norms_and_unnormalised_sound(tmp_path):
    # ComfyUI builds a base wav2vec2 (chinese-wav2vec2-base, InfiniteTalk's encoder: a group norm on the first conv
    # only) with its layers normalised after attention and the sound not normalised (do_stable_layer_norm and
    # do_normalize False); its tensor names are the large one's, so Kinograph read it as a large one.
    from safetensors.torch import save_file
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    from nodes.generate.audio_encoder import build, encode
    torch.manual_seed(1)
    ref = Wav2Vec2Model(Wav2Vec2Config(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
        conv_bias=False, feat_extract_norm="group", do_stable_layer_norm=False, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, vocab_size=None, mask_time_prob=0.0)).eval()
    for p in ref.parameters():
        p.data = p.data + 0.05 * torch.randn_like(p)
    save_file({k.replace("parametrizations.weight.original0", "weight_g")
               .replace("parametrizations.weight.original1", "weight_v"): v.contiguous()
               for k, v in ref.state_dict().items()}, str(tmp_path / "chinese-wav2vec2-base.safetensors"))
    model = build(tmp_path / "chinese-wav2vec2-base.safetensors", torch.float32, "cpu")
    x = 0.2 * torch.sin(torch.arange(4800) / 7.0) + 0.1       # 0.3 s, off zero mean and unit variance
    feats = encode(model, x.numpy())
    with torch.no_grad():
        want = torch.cat(ref(x[None], output_hidden_states=True).hidden_states)
    assert feats["layers"].shape == want.shape == (3, 14, 128)
    assert torch.allclose(feats["layers"], want, atol=1e-4), (feats["layers"] - want).abs().max()


def test_the_s2v_templates_sound_side_imports_and_runs(tmp_path, encoder):
    """LoadAudio, AudioEncoderLoader and AudioEncoderEncode become io.load_audio, load.audio_encoder and
    encode.audio, linked as in ComfyUI; that chain runs on the tiny encoder. CreateVideo puts the voice under the
    frames. The S2V sampling nodes are reported
    not mapped with why."""
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    result = import_data(json.loads(TEMPLATE.read_text(encoding="utf-8")))
    g = result.graph
    links = {(lk.dst, lk.dst_port): (lk.src, lk.src_port) for lk in g.links()}
    encodes = [n for n in g.nodes.values() if n.type == "encode.audio"]
    assert len(encodes) == 1            # the template's second copy (its 20-step group) is muted
    for n in encodes:
        enc, snd = links[n.id, "audio_encoder"], links[n.id, "audio"]
        assert g.nodes[enc[0]].params == {"name": "wav2vec2_large_english_fp16.safetensors"}
        assert g.nodes[snd[0]].type == "io.load_audio"
        assert g.nodes[snd[0]].params == {"path": "video_wan2_2_14B_s2v_input_audio.MP3"}
    # CreateVideo lays the voice under the frames (it said "the audio input is not carried": a silent video)
    song = next(n for n in g.nodes.values() if n.type == "io.add_audio")
    assert song.params == {"path": "video_wan2_2_14B_s2v_input_audio.MP3", "offset": 0.0}
    save = next(n for n in g.nodes.values() if n.type == "io.save_video")
    assert links[save.id, "video"] == (song.id, "video") and save.params["fps"] == 16
    unmapped = {e.class_type: e.notes[0] for e in result.report.entries.values() if e.status == "unmapped"}
    assert sorted(unmapped) == ["WanSoundImageToVideo", "WanSoundImageToVideoExtend"]
    assert "S2V transformer's audio layers" in unmapped["WanSoundImageToVideo"]
    status = {e.comfy_id: (e.class_type, e.status, e.notes) for e in result.report.entries.values()}
    assert status["58"] == ("LoadAudio", "exact", []) and status["57"] == ("AudioEncoderLoader", "exact", [])
    assert status["56"][:2] == ("AudioEncoderEncode", "approx") and "torchaudio" in status["56"][2][0]
    path, _ = encoder
    _tone(tmp_path / "voice.wav", 0.5)
    events = []
    Session(use_disk=False).run(load_workflow(text=f"""kinograph: 1
nodes:
  voice: {{type: io.load_audio, params: {{path: '{tmp_path / "voice.wav"}'}}}}
  enc: {{type: load.audio_encoder, params: {{name: '{path}'}}}}
  feats: {{type: encode.audio, inputs: {{audio_encoder: enc.audio_encoder, audio: voice.audio}}}}
"""), on_event=events.append)
    assert [e for e in events if e["event"] in ("error", "node_failed")] == []
    assert "24 feature frames (0.48 s of sound), 3 layers" in [e["message"] for e in events if e["event"] == "log"]


def test_latent_cut_and_concat_cut_and_join_as_comfyui_does():
    """LatentCut and LatentConcat (the S2V template's clip chaining) had no equivalent; latent.cut keeps what
    torch.narrow keeps with ComfyUI's clamping, latent.concat joins as torch.cat, and the pixel frames and size
    the latent decodes to follow."""
    from app.comfyui import import_data
    from nodes.generate.latent import Latent, concat_latents, cut_latent
    torch.manual_seed(1)
    x = torch.randn(1, 16, 5, 4, 6)
    lat = Latent(x, "wan", 17, 16.0, 48, 32)
    first = cut_latent(lat, "t", 0, 1)
    assert torch.equal(first.samples, x[:, :, :1]) and (first.frames, first.width) == (1, 48)
    tail = cut_latent(lat, "t", -2, 5)                   # clamped to the 2 there are
    assert torch.equal(tail.samples, x[:, :, 3:]) and tail.frames == 5
    assert torch.equal(cut_latent(lat, "x", 4, 9).samples, x[..., 4:]) and cut_latent(lat, "x", 4, 9).width == 16
    joined = concat_latents(lat, first, "t")
    assert torch.equal(joined.samples, torch.cat([x, x[:, :, :1]], 2)) and joined.frames == 21
    assert torch.equal(concat_latents(lat, first, "-t").samples, torch.cat([x[:, :, :1], x], 2))
    wide = concat_latents(lat, lat, "x")
    assert torch.equal(wide.samples, torch.cat([x, x], -1)) and (wide.width, wide.height, wide.frames) == (96, 32, 17)
    with pytest.raises(NodeError, match=r"cannot join latents of \(16, 5, 4, 6\) and \(16, 1, 4, 6\) \(channels, frames, height, width\) along x"):
        concat_latents(lat, first, "x")
    g = import_data(json.loads(TEMPLATE.read_text(encoding="utf-8"))).graph
    assert {n.type: n.params for n in g.nodes.values() if n.type in ("latent.cut", "latent.concat")} == {
        "latent.cut": {"axis": "t", "index": 0, "amount": 1}, "latent.concat": {"axis": "t"}}
