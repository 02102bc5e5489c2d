"""Wan 2.1 InfiniteTalk as a ComfyUI artist brings it: the template video_wan2_1_infinitetalk.json (two speakers, each
a voice file and a mask drawn in the Painter node, ModelPatchLoader's wan2.1_infiniteTalk_multi_fp16.safetensors on
Wan 2.1 i2v 14B). The voices play one after the other (AudioConcat) under the frames CreateVideo makes."""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_wan_s2v import RATE, _tone, encoder  # noqa: E402,F401  (the tiny wav2vec2 file)

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "tests" / "data" / "comfyui" / "templates" / "video_wan2_1_infinitetalk.json"


def test_audio_concat_joins_two_voices_and_create_video_lays_them_under_the_frames(tmp_path):
    # AudioConcat imported as a placeholder, and CreateVideo said "the audio input is not carried": the two
    # speakers' video came out silent. Now the voices join in order and play under the frames.
    from app.comfyui import import_data
    from graph_engine import Clip
    from nodes.generate.audio_encoder import samples
    from nodes.io.sound import concat, read_sound, sound_span
    from nodes.io.video_write import write_video
    _tone(tmp_path / "woman.wav", 0.3)
    _tone(tmp_path / "man.wav", 0.25, rate=44100, channels=2)
    woman, man = (sound_span(str(tmp_path / f), 0.0, 0.0) for f in ("woman.wav", "man.wav"))
    a, b = (read_sound(str(tmp_path / f), RATE, mean=True)[1] for f in ("woman.wav", "man.wav"))
    both = samples(concat(woman, man))
    assert len(both) == len(a) + len(b) == int(0.55 * RATE)
    np.testing.assert_array_equal(both, np.concatenate([a, b]))
    np.testing.assert_array_equal(samples(concat(man, woman)), np.concatenate([b, a]))

    result = import_data(json.loads(TEMPLATE.read_text(encoding="utf-8")))
    g = result.graph
    links = {(lk.dst, lk.dst_port): (lk.src, lk.src_port) for lk in g.links()}
    (join,) = [n for n in g.nodes.values() if n.type == "io.concat_audio"]
    assert join.params == {"order": "after"}
    assert [g.nodes[links[join.id, p][0]].params["path"] for p in ("first", "second")] == [
        "audio_speaker1_woman.mp3", "audio_speaker2_man.mp3"]
    under = [n for n in g.nodes.values() if n.type == "io.set_audio"]
    assert len(under) == 2 and all(links[n.id, "audio"] == (join.id, "audio") for n in under)
    status = {e.comfy_id: (e.class_type, e.status, e.notes) for e in result.report.entries.values()}
    assert status["113"] == ("AudioConcat", "exact", [])
    assert not any("audio input is not carried" in n for s in ("138", "140") for n in status[s][2])

    # 10 frames at 25 fps (0.4 s) under 0.55 s of voices: the sound is cut at the last frame, as ComfyUI's
    from nodes.io.nodes import set_audio
    clip = set_audio(None, Clip.from_array(np.zeros((10, 32, 32, 3), np.uint8), 25.0), concat(woman, man))
    write_video(clip, str(tmp_path / "talk.mp4"))
    seconds, _ = read_sound(str(tmp_path / "talk.mp4"), RATE)
    assert abs(seconds - 0.4) < 0.03
    import av
    both = av.AudioResampler(format="fltp", layout="stereo", rate=RATE)
    with av.open(str(tmp_path / "talk.mp4")) as c:
        heard = np.concatenate([g.to_ndarray() for f in c.decode(audio=0) for g in both.resample(f)], axis=1)
    # the woman first, her mono voice at its own level on both sides as ComfyUI duplicates it (was 3 dB down on each)
    for side in heard:
        np.testing.assert_allclose(side[1000:4000], a[1000:4000], atol=0.03)     # AAC's loss
    assert not result.report.blocking
    assert {status[s][:2] for s in ("174", "175")} == {("Painter", "exact")}


TALK = """kinograph: 1
nodes:
  unet: {type: load.diffusion_model, params: {name: wan2.1_i2v_480p_14B_fp16.safetensors}}
  clip: {type: load.text_encoder, params: {name: umt5_xxl_fp8_e4m3fn_scaled.safetensors, type: wan}}
  vae: {type: load.vae, params: {name: wan_2.1_vae.safetensors}}
  patch: {type: load.model_patch, params: {name: wan2.1_infiniteTalk_single_fp16.safetensors}}
  speech: {type: load.audio_encoder, params: {name: %s}}
  voice: {type: io.load_audio, params: {path: voice.wav}}
  feats: {type: encode.audio, inputs: {audio_encoder: speech.audio_encoder, audio: voice.audio}}
  prompt: {type: encode.text, inputs: {text_encoder: clip.text_encoder}, params: {text: a person talking}}
  talk:
    type: condition.infinitetalk
    inputs: {model: unet.model, model_patch: patch.model_patch, vae: vae.vae, positive: prompt.positive,
             audio_embeds: feats.audio_embeds}
"""


def test_validate_refuses_a_voice_from_the_wrong_speech_encoder_before_anything_loads(tmp_path, monkeypatch,
                                                                                        capsys, encoder):  # noqa: F811
    """HuMo's whisper file in load.audio_encoder feeding condition.infinitetalk (which reads wav2vec2 features) was
    refused only when the conditioning ran, after the Wan model, the patch and the encoder had loaded. The encoder
    file's header tells at once: `kinograph validate` names it (exit 2); a wav2vec2 file draws no such word, and
    condition.humo (whisper's features) refuses a wav2vec2 one."""
    from safetensors.torch import save_file
    from transformers import WhisperConfig, WhisperModel
    from app.cli import main
    folder = tmp_path / "models" / "audio_encoders"
    folder.mkdir(parents=True)
    cfg = WhisperConfig(d_model=16, encoder_layers=2, encoder_attention_heads=1, encoder_ffn_dim=16, num_mel_bins=8,
                        max_source_positions=16, decoder_layers=1, decoder_attention_heads=1, decoder_ffn_dim=8,
                        vocab_size=64, max_target_positions=8, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                        decoder_start_token_id=1)
    # ComfyUI's layout of whisper_large_v3_fp16.safetensors: WhisperModel's tensors under `model.`.
    save_file({f"model.{k}": v.contiguous() for k, v in WhisperModel(cfg).state_dict().items()},
              str(folder / "whisper_large_v3_fp16.safetensors"))
    (folder / "wav2vec2-chinese-base_fp16.safetensors").write_bytes(encoder[0].read_bytes())
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    _tone(tmp_path / "voice.wav", 0.5)
    wf = tmp_path / "talk.yaml"
    wf.write_text(TALK % "whisper_large_v3_fp16.safetensors")
    assert main(["validate", str(wf)]) == 2
    err = capsys.readouterr().err
    assert (f"{wf}:11: node talk: audio_embeds: the voice is encoded by whisper (whisper_large_v3_fp16.safetensors); "
            "InfiniteTalk reads wav2vec2 features: load "
            "audio_encoders/wav2vec2-chinese-base_fp16.safetensors in the load.audio_encoder that feeds it") in err, err
    wf.write_text(TALK % "wav2vec2-chinese-base_fp16.safetensors")
    assert main(["validate", str(wf)]) == 2          # the Wan files are not there: that, and nothing on the voice
    err = capsys.readouterr().err
    assert "wan2.1_i2v_480p_14B_fp16.safetensors' is not in the model folders" in err and "whisper" not in err, err
    # HuMo the other way round: it reads whisper's features, and a wav2vec2 file is named as early.
    humo = TALK.split("  talk:")[0] % "wav2vec2-chinese-base_fp16.safetensors" + \
        "  humo: {type: condition.humo, inputs: {vae: vae.vae, positive: prompt.positive, audio_embeds: feats.audio_embeds}}\n"
    wf.write_text(humo)
    assert main(["validate", str(wf)]) == 2
    assert (f"{wf}:11: node humo: audio_embeds: the voice is encoded by wav2vec2 (wav2vec2-chinese-base_fp16.safetensors);"
            " HuMo reads whisper features: load audio_encoders/whisper_large_v3_fp16.safetensors in the "
            "load.audio_encoder that feeds it") in capsys.readouterr().err


def test_a_speech_encoder_file_that_cannot_be_told_draws_no_word_on_the_voice_at_validation(tmp_path, monkeypatch,
                                                                                             capsys):
    """encoder_family is to say nothing where the header cannot tell whisper from wav2vec2: a damaged file was
    refused as 'the voice is encoded by unreadable', a word no encoder has and a fix (load the wav2vec2 file) that
    was not the problem. The load names what is wrong with such a file."""
    from app.cli import main
    folder = tmp_path / "models" / "audio_encoders"
    folder.mkdir(parents=True)
    (folder / "wav2vec2-chinese-base_fp16.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    _tone(tmp_path / "voice.wav", 0.5)
    wf = tmp_path / "talk.yaml"
    wf.write_text(TALK % "wav2vec2-chinese-base_fp16.safetensors")
    assert main(["validate", str(wf)]) == 2          # the Wan files are not there: that, and nothing on the voice
    err = capsys.readouterr().err
    assert "wan2.1_i2v_480p_14B_fp16.safetensors' is not in the model folders" in err and "encoded by" not in err, err
