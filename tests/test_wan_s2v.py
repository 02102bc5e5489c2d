"""Wan 2.2 S2V (sound to video) as a ComfyUI artist brings it: a voice file, ComfyUI's wav2vec2 speech encoder
(audio_encoders/wav2vec2_large_english_fp16.safetensors: transformers' Wav2Vec2Model tensors under a `wav2vec2.`
prefix, fp16, the positional conv's weight norm as weight_g / weight_v, a CTC head beside them) and the template
video_wan2_2_14B_s2v.json. The encoder here is a tiny random one in that layout; its features are compared with
transformers' Wav2Vec2Model on the same weights and sound."""
import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError
from tiny_wan22 import comfy_rope, encode_voice_logs, on_tiny_files, perturbed_wan, tiny_wan_folder

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
    with pytest.raises(NodeError, match="other.safetensors is neither a wav2vec2 nor a whisper speech encoder"):
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


@pytest.mark.parametrize("damage, message", [
    # the size is read from these tensors by name: a KeyError, an IndexError and a state_dict RuntimeError
    (lambda sd: {k: v for k, v in sd.items() if ".layers.0." not in k},
     "lacks encoder.layers.0.feed_forward.intermediate_dense.weight, which gives a wav2vec2 encoder's size"),
    (lambda sd: {k: v for k, v in sd.items() if "feature_extractor" not in k},
     "lacks feature_extractor.conv_layers.0.conv.weight"),
    (lambda sd: {**sd, "wav2vec2.encoder.layers.1.feed_forward.intermediate_dense.weight": torch.zeros(32, 128)},
     "its encoder.layers.1.feed_forward.intermediate_dense.weight is (32, 128), where the encoder its other tensors "
     "describe has (64, 128)")])
def test_a_damaged_speech_encoder_file_is_named_with_what_it_lacks(tmp_path, encoder, damage, message):
    from safetensors.torch import load_file, save_file
    from graph_engine import NodeError
    from nodes.generate.audio_encoder import build
    path = tmp_path / "wav2vec2.safetensors"
    save_file(damage(load_file(str(encoder[0]))), str(path))
    with pytest.raises(NodeError, match="wav2vec2.safetensors") as e:
        build(path, torch.float32, "cpu")
    assert message in str(e.value) and "download it again" in str(e.value)


def test_kinograph_info_names_speech_encoders_and_what_else_sits_in_their_folder(tmp_path, encoder, monkeypatch):
    """`kinograph info` listed a good wav2vec2 or whisper file in audio_encoders/ as 'unknown, no known key pattern'
    and not loading; a Wan file put there must say it is no speech encoder and which files are."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import list_found_models
    folder = tmp_path / "audio_encoders"
    folder.mkdir()
    (folder / "wav2vec2_large_english_fp16.safetensors").write_bytes(encoder[0].read_bytes())
    save_file({"model.encoder.embed_positions.weight": torch.zeros(4, 8, dtype=torch.float16),
               "model.encoder.conv1.weight": torch.zeros(8, 2, 3, dtype=torch.float16)},
              str(folder / "whisper_large_v3_fp16.safetensors"))
    save_file({"head.modulation": torch.zeros(1, 2, 8), "patch_embedding.weight": torch.zeros(8, 16, 1, 2, 2),
               "blocks.0.self_attn.q.weight": torch.zeros(8, 8)}, str(folder / "wav2vec2-chinese-base_fp16.safetensors"))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    rows = {Path(path).name: row for kind, path, row in list_found_models() if kind == "audio_encoders"}
    large, whisper, wan = (rows[n] for n in ("wav2vec2_large_english_fp16.safetensors", "whisper_large_v3_fp16.safetensors",
                                             "wav2vec2-chinese-base_fp16.safetensors"))
    assert (large["family"], large["variant"], large["role"], large["loads"]) == ("wav2vec2", "large", "audio_encoder", "yes")
    assert (whisper["family"], whisper["role"], whisper["loads"]) == ("whisper", "audio_encoder", "yes")
    assert wan["family"] == "wan" and wan["loads"] == "no"
    assert "not a speech encoder" in wan["note"] and "whisper_large_v3_fp16.safetensors" in wan["note"]


def test_the_s2v_templates_sound_side_imports_and_runs(tmp_path, encoder):
    """LoadAudio, AudioEncoderLoader and AudioEncoderEncode become io.load_audio, load.audio_encoder and
    encode.audio, linked as in ComfyUI; that chain runs on the tiny encoder. CreateVideo puts the voice under the
    frames (the sampling side: test_the_s2v_template_imports_and_runs_on_tiny_weights)."""
    from app.comfyui import import_data
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
    status = {e.comfy_id: (e.class_type, e.status, e.notes) for e in result.report.entries.values()}
    assert status["58"] == ("LoadAudio", "exact", []) and status["57"] == ("AudioEncoderLoader", "exact", [])
    assert status["56"][:2] == ("AudioEncoderEncode", "approx") and "torchaudio" in status["56"][2][0]
    path, _ = encoder
    _tone(tmp_path / "voice.wav", 0.5)
    assert "24 feature frames (0.48 s of sound), 3 layers" in encode_voice_logs(tmp_path / "voice.wav", path)


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


# --- the S2V transformer ------------------------------------------------------------------------------------------
# A tiny Wan 2.2 S2V file in ComfyUI's layout (wan2.2_s2v_14B_*: Wan's original names, the S2V parts under theirs):
# 40 blocks (the released audio layers follow blocks 0, 4, ..., 39) of one 128-wide head.
DIM, LAYERS, TEXT, WIDTH, SOUND_LAYERS = 128, 40, 32, 128, 3


def _s2v_state():
    sd = perturbed_wan(3, 16, LAYERS, TEXT)
    q = DIM // 4
    shapes = {"casual_audio_encoder.weights": (1, SOUND_LAYERS, 1, 1),
              "casual_audio_encoder.encoder.conv1_local.conv.weight": (4 * q, WIDTH, 3),
              "casual_audio_encoder.encoder.conv1_local.conv.bias": (4 * q,),
              "casual_audio_encoder.encoder.conv1_global.conv.weight": (q, WIDTH, 3),
              "casual_audio_encoder.encoder.conv1_global.conv.bias": (q,),
              "casual_audio_encoder.encoder.conv2.conv.weight": (DIM // 2, q, 3),
              "casual_audio_encoder.encoder.conv2.conv.bias": (DIM // 2,),
              "casual_audio_encoder.encoder.conv3.conv.weight": (DIM, DIM // 2, 3),
              "casual_audio_encoder.encoder.conv3.conv.bias": (DIM,),
              "casual_audio_encoder.encoder.final_linear.weight": (DIM, DIM),
              "casual_audio_encoder.encoder.final_linear.bias": (DIM,),
              "casual_audio_encoder.encoder.padding_tokens": (1, 1, 1, DIM),
              "trainable_cond_mask.weight": (3, DIM),
              "cond_encoder.weight": (DIM, 16, 1, 2, 2), "cond_encoder.bias": (DIM,)}
    for name, k in (("proj", (1, 2, 2)), ("proj_2x", (2, 4, 4)), ("proj_4x", (4, 8, 8))):
        shapes[f"frame_packer.{name}.weight"] = (DIM, 16, *k)
        shapes[f"frame_packer.{name}.bias"] = (DIM,)
    for i in range(12):
        for p in "qkvo":
            shapes[f"audio_injector.injector.{i}.{p}.weight"] = (DIM, DIM)
            shapes[f"audio_injector.injector.{i}.{p}.bias"] = (DIM,)
        shapes[f"audio_injector.injector.{i}.norm_q.weight"] = (DIM,)
        shapes[f"audio_injector.injector.{i}.norm_k.weight"] = (DIM,)
        shapes[f"audio_injector.injector_adain_layers.{i}.linear.weight"] = (2 * DIM, DIM)
        shapes[f"audio_injector.injector_adain_layers.{i}.linear.bias"] = (2 * DIM,)
    for k, s in shapes.items():
        sd[k] = torch.randn(s) * (1.0 if "norm" in k or k.endswith("weights") else 0.1) + (1.0 if "norm" in k else 0)
    return {k: v.half().float() for k, v in sd.items()}


@pytest.fixture(scope="module")
def s2v(tmp_path_factory):
    """(the file, its tensors) of the tiny S2V model, fp16 as ComfyUI's bf16/fp16 files are, in a ComfyUI models/
    folder with a tiny umt5 and Wan 2.1 VAE beside it (KINOGRAPH_MODELS points there)."""
    sd = _s2v_state()
    with tiny_wan_folder(tmp_path_factory.mktemp("s2v"), "wan2.2_s2v_tiny_fp16.safetensors", sd) as path:
        yield path, sd


def _reference_s2v(sd, x, t, context, audio, ref, motion, control):
    """Wan 2.2 S2V's prediction written from the published model (ComfyUI's comfy/ldm/wan/model.py WanModel_S2V and
    the Wan blocks it inherits), over the file's own tensors: one head, patch (1, 2, 2)."""
    import math
    import torch.nn.functional as F

    def lin(v, k):
        return F.linear(v, sd[k + ".weight"], sd.get(k + ".bias"))

    def rms(v, k):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-6) * sd[k + ".weight"]

    def ln(v, eps=1e-6):
        return F.layer_norm(v, v.shape[-1:], eps=eps)

    def ids(t_len, h_len, w_len, t0=0.0, sh=None, sw=None):
        tt = torch.linspace(t0, t0 + t_len - 1, t_len, dtype=torch.float64)
        hh = torch.linspace(0, h_len - 1, sh or h_len, dtype=torch.float64)
        ww = torch.linspace(0, w_len - 1, sw or w_len, dtype=torch.float64)
        g = torch.zeros(len(tt), len(hh), len(ww), 3, dtype=torch.float64)
        g[..., 0] += tt.view(-1, 1, 1)
        g[..., 1] += hh.view(1, -1, 1)
        g[..., 2] += ww.view(1, 1, -1)
        return g.reshape(-1, 3)

    def repeat_e(e, n):
        r = n // e.shape[1]
        return torch.repeat_interleave(e, r, 1) if r * e.shape[1] == n else torch.repeat_interleave(e, r + 1, 1)[:, :n]

    def causal(v, k, stride):
        return F.conv1d(F.pad(v, (2, 0), mode="replicate"), sd[k + ".weight"], sd[k + ".bias"], stride=stride)

    # the voice: weighted layers, the local and global paths of MotionEncoder_tc
    b, _, time, hh, ww = x.shape
    a = audio[..., :time * 4]
    wts = F.silu(sd["casual_audio_encoder.weights"])
    feat = (a * wts / wts.sum(1, keepdim=True)).sum(1)                         # b c f
    pre = "casual_audio_encoder.encoder."
    loc = causal(feat, pre + "conv1_local.conv", 1)                           # b (n c) f
    loc = loc.reshape(b, 4, DIM // 4, -1).permute(0, 1, 3, 2).reshape(b * 4, -1, DIM // 4)
    loc = F.silu(ln(loc)).transpose(1, 2)
    loc = F.silu(ln(causal(loc, pre + "conv2.conv", 2).transpose(1, 2))).transpose(1, 2)
    loc = F.silu(ln(causal(loc, pre + "conv3.conv", 2).transpose(1, 2)))     # (b n) t c
    loc = loc.reshape(b, 4, -1, DIM).permute(0, 2, 1, 3)
    loc = torch.cat([loc, sd[pre + "padding_tokens"].repeat(b, loc.shape[1], 1, 1)], 2)
    glo = F.silu(ln(causal(feat, pre + "conv1_global.conv", 1).transpose(1, 2))).transpose(1, 2)
    glo = F.silu(ln(causal(glo, pre + "conv2.conv", 2).transpose(1, 2))).transpose(1, 2)
    glo = lin(F.silu(ln(causal(glo, pre + "conv3.conv", 2).transpose(1, 2))), pre + "final_linear")
    # tokens
    v = F.conv3d(x, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=(1, 2, 2))
    v = v + F.conv3d(control, sd["cond_encoder.weight"], sd["cond_encoder.bias"], stride=(1, 2, 2))
    tt = t.unsqueeze(1).repeat(1, v.shape[2])
    grid = v.shape[2:]
    v = v.flatten(2).transpose(1, 2)
    seq = v.shape[1]
    cm = sd["trainable_cond_mask.weight"]
    v = v + cm[0]
    pos = ids(time, hh // 2, ww // 2)
    r = F.conv3d(ref, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=(1, 2, 2))
    v = torch.cat([v, r.flatten(2).transpose(1, 2) + cm[1]], 1)
    pos = torch.cat([pos, ids(ref.shape[2], hh // 2, ww // 2, t0=max(30, time + 9))])
    tt = torch.cat([tt, torch.zeros(b, ref.shape[2])], 1)
    pad = torch.zeros(b, 16, 19, hh, ww)
    n = min(19, motion.shape[2])
    pad[:, :, -n:] = motion[:, :, -n:]
    m4, m2, m1 = pad.split([16, 2, 1], 2)
    p1 = F.conv3d(m1, sd["frame_packer.proj.weight"], sd["frame_packer.proj.bias"], stride=(1, 2, 2))
    p2 = F.conv3d(m2, sd["frame_packer.proj_2x.weight"], sd["frame_packer.proj_2x.bias"], stride=(2, 4, 4))
    p4 = F.conv3d(m4, sd["frame_packer.proj_4x.weight"], sd["frame_packer.proj_4x.bias"], stride=(4, 8, 8))
    mot = torch.cat([p.flatten(2).transpose(1, 2) for p in (p1, p2, p4)], 1) + cm[2]
    v = torch.cat([v, mot], 1)
    pos = torch.cat([pos, ids(1, hh // 2, ww // 2, -1), ids(1, hh // 2, ww // 2, -3, p2.shape[-2], p2.shape[-1]),
                     ids(4, hh // 2, ww // 2, -19, p4.shape[-2], p4.shape[-1])])
    tt = torch.cat([torch.repeat_interleave(tt, 2, 1), torch.zeros(b, 3)], 1)
    # time and text
    half = 128
    sinus = torch.outer(tt.flatten().double(), torch.pow(10000, -torch.arange(half, dtype=torch.float64) / half))
    e = torch.cat([sinus.cos(), sinus.sin()], 1).float()
    e = lin(F.silu(lin(e, "time_embedding.0")), "time_embedding.2").reshape(b, -1, DIM)
    e0 = lin(F.silu(e), "time_projection.1").unflatten(2, (6, DIM))
    ctx = lin(F.gelu(lin(context, "text_embedding.0"), approximate="tanh"), "text_embedding.2")

    def attend(q, k, vv):
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ vv

    inject = [0, 4, 8, 12, 16, 20, 24, 27, 30, 33, 36, 39]
    for i in range(LAYERS):
        p = f"blocks.{i}."
        m = [repeat_e(c, v.shape[1]) for c in (sd[p + "modulation"].unsqueeze(0) + e0).unbind(2)]
        h = ln(v) * (1 + m[1]) + m[0]
        q, k = comfy_rope(rms(lin(h, p + "self_attn.q"), p + "self_attn.norm_q"), pos), \
            comfy_rope(rms(lin(h, p + "self_attn.k"), p + "self_attn.norm_k"), pos)
        v = v + lin(attend(q, k, lin(h, p + "self_attn.v")), p + "self_attn.o") * m[2]
        h = F.layer_norm(v, (DIM,), sd[p + "norm3.weight"], sd[p + "norm3.bias"], eps=1e-6)
        v = v + lin(attend(rms(lin(h, p + "cross_attn.q"), p + "cross_attn.norm_q"),
                           rms(lin(ctx, p + "cross_attn.k"), p + "cross_attn.norm_k"), lin(ctx, p + "cross_attn.v")),
                    p + "cross_attn.o")
        h = ln(v) * (1 + m[4]) + m[3]
        v = v + lin(F.gelu(lin(h, p + "ffn.0"), approximate="tanh"), p + "ffn.2") * m[5]
        if i in inject:
            j = inject.index(i)
            a_ = f"audio_injector.injector.{j}."
            frames = loc.shape[1]
            hs = v[:, :seq].reshape(b * frames, -1, DIM)
            shift, scale = lin(F.silu(glo.reshape(b * frames, DIM)),
                               f"audio_injector.injector_adain_layers.{j}.linear").chunk(2, 1)
            hs = ln(hs, 1e-5) * (1 + scale[:, None]) + shift[:, None]
            au = loc.reshape(b * frames, -1, DIM)
            out = lin(attend(rms(lin(hs, a_ + "q"), a_ + "norm_q"), rms(lin(au, a_ + "k"), a_ + "norm_k"),
                             lin(au, a_ + "v")), a_ + "o")
            v = torch.cat([v[:, :seq] + out.reshape(b, seq, DIM), v[:, seq:]], 1)
    hm = [repeat_e(c, v.shape[1]) for c in (sd["head.modulation"].unsqueeze(0) + e.unsqueeze(2)).unbind(2)]
    out = lin(ln(v) * (1 + hm[1]) + hm[0], "head.head")[:, :seq]
    f, gh, gw = grid
    out = out.view(b, f, gh, gw, 1, 2, 2, 16)
    return torch.einsum("bfhwpqrc->bcfphqwr", out).reshape(b, 16, f, gh * 2, gw * 2)


def test_the_s2v_model_loads_from_its_file_and_predicts_as_the_published_model(s2v):
    """Wan 2.2 S2V files were refused ("not supported"). The tiny file loads (the S2V parts under their own names
    beside diffusers' Wan blocks) and its prediction for noise at 64x64, 2 latent frames, with a voice, a reference
    image, 5 motion frames and a control video, equals the published model's forward written out above."""
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.wan_s2v import forward, is_s2v
    path, sd = s2v
    info = describe_model(path)
    assert info["loads"] == "yes" and "Wan 2.2 S2V" in info["note"], info
    model = load_diffusion_model(ModelManager(max_loaded=2), str(path), "default", "cpu").pipe.transformer
    assert is_s2v(model) and model.dtype == torch.float32
    torch.manual_seed(5)
    x, control, ref = torch.randn(1, 16, 2, 8, 8), torch.randn(1, 16, 2, 8, 8), torch.randn(1, 16, 1, 8, 8)
    motion, audio, text = torch.randn(1, 16, 5, 8, 8), torch.randn(1, SOUND_LAYERS, WIDTH, 10), torch.randn(1, 7, TEXT)
    t = torch.tensor([700.0])
    with torch.no_grad():
        got = forward(model, x, t, text, audio, ref, motion, control)
        want = _reference_s2v(sd, x, t, text, audio, ref, motion, control)
        silent = forward(model, x, t, text, audio * 0, ref, motion, control)
    assert got.shape == (1, 16, 2, 8, 8)
    assert torch.allclose(got, want, atol=2e-4), (got - want).abs().max()
    assert (silent - got).abs().max() > 1e-2          # the voice moves the prediction



def test_the_s2v_blocks_modulated_by_segment_equal_diffusers_blocks_given_a_row_per_token():
    """The S2V blocks take one modulation row for the clip's tokens and one for the reference's and motion's (at
    timestep 0), as ComfyUI does, where diffusers' block takes one per token: on a tiny block, with the rows
    spread per token as diffusers reads them, its own forward gives the same, in float32 and in bfloat16."""
    from diffusers.models.transformers.transformer_wan import WanTransformerBlock
    from nodes.generate.wan_s2v import _block
    torch.manual_seed(3)
    block = WanTransformerBlock(64, 128, 2, cross_attn_norm=True).eval()
    with torch.no_grad():
        block.scale_shift_table.normal_()
    n, seq = 14, 9
    rows = (torch.randn(2, 6, 64), torch.randn(2, 6, 64))
    per_token = torch.cat([rows[0][:, None].expand(-1, seq, -1, -1), rows[1][:, None].expand(-1, n - seq, -1, -1)], 1)
    angles = torch.rand(1, n, 1, 32) * 6
    rotary = (angles.cos(), angles.sin())
    x, context = torch.randn(2, n, 64), torch.randn(2, 5, 64)
    with torch.no_grad():
        for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 0)):
            b = block.to(dtype)
            got = _block(b, x.to(dtype), context.to(dtype), rows, seq, rotary)
            want = b(x.to(dtype), context.to(dtype), per_token, rotary)
            assert got.dtype == dtype and torch.allclose(got.float(), want.float(), atol=tol), (got - want).abs().max()
            every = _block(b, x.to(dtype), context.to(dtype), rows, n, rotary)    # no reference or motion tokens
            assert torch.allclose(every.float(), b(x.to(dtype), context.to(dtype), rows[0], rotary).float(), atol=tol)


def _comfy_sound(layers, frames, offset):
    """The features per video frame as ComfyUI's WanSoundImageToVideo picks them (comfy_extras/nodes_wan.py:
    linear_interpolation 50 -> 30, get_audio_embed_bucket_fps with m=0), written out: [1, L, D, frames]."""
    feat = torch.nn.functional.interpolate(layers.transpose(1, 2), size=int(layers.shape[1] / 50 * 30),
                                           align_corners=True, mode="linear").transpose(1, 2)
    n = feat.shape[1]
    batches = int(n / (frames * 30 / 16)) + 1
    bucket = batches * frames
    total = math.ceil(bucket / 16 * 30)
    idx = np.clip(np.round(np.linspace(0, bucket / 16, bucket, endpoint=False) * 30).astype(int), 0, total - 1)
    rows = [feat[:, i] if i < n else torch.zeros(feat.shape[0], feat.shape[2]) for i in idx]
    return torch.stack(rows)[None].permute(0, 2, 3, 1)[..., offset:offset + frames]


def test_condition_s2v_lays_voice_reference_and_motion_as_comfyui(s2v, tmp_path):
    """condition.s2v (WanSoundImageToVideo; with previous, its Extend): the features per video frame equal ComfyUI's
    pick (and silence in the negative), the reference is the VAE's latent of the picture, the latent is empty at the
    size; continuing, the sound goes on where the clip so far ends and its last 19 latent frames are the motion."""
    from PIL import Image
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.wan_s2v_cond import condition
    torch.manual_seed(2)
    layers = torch.randn(3, 130, 8)                      # 2.6 s of features
    sound = {"layers": layers, "fps": 50}
    vae = load_vae(ModelManager(max_loaded=2), "wan_tiny_vae.safetensors", "cpu")
    pos = Conditioning("wan", torch.zeros(1, 4, 32))
    picture = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    first = condition(vae, pos, pos, 5, 32, 32, sound, picture)
    assert torch.allclose(first["positive"].extra["s2v_audio"], _comfy_sound(layers, 8, 0), atol=1e-6)
    assert torch.equal(first["negative"].extra["s2v_audio"], torch.zeros(1, 3, 8, 8))
    assert first["latent"].samples.shape == (1, 16, 2, 4, 4) and not first["latent"].samples.any()
    from nodes.generate.adapters import get_adapter
    px = vae.pipe.video_processor.preprocess(Image.fromarray(picture), height=32, width=32, resize_mode="crop")
    with torch.no_grad():
        want = get_adapter("wan").vae_encode(vae.pipe, px.permute(1, 0, 2, 3)[None])
    assert torch.allclose(first["positive"].extra["s2v_reference"], want, atol=1e-5)
    so_far = Latent(torch.randn(1, 16, 3, 4, 4), "wan", 9, 16.0, 32, 32)
    more = condition(vae, pos, None, 5, 640, 640, sound, previous=so_far)
    assert torch.allclose(more["positive"].extra["s2v_audio"], _comfy_sound(layers, 8, 12), atol=1e-6)
    assert torch.equal(more["positive"].extra["s2v_motion"], so_far.samples[:, :, -19:])
    assert more["latent"].samples.shape == (1, 16, 2, 4, 4) and more["negative"] is None


def test_the_s2v_template_imports_and_runs_on_tiny_weights(s2v, encoder, tmp_path):
    """ComfyUI's video_wan2_2_14B_s2v template: WanSoundImageToVideo and its two Extends became condition.s2v; the
    whole graph (the first clip, two continuations joined, the first frame doubled and cut) runs on the tiny S2V
    model with a 0.5 s tone, to a video with the voice under it."""
    import av
    import imageio.v3 as iio
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    result = import_data(json.loads(TEMPLATE.read_text(encoding="utf-8")))
    assert not [e for e in result.report.entries.values() if e.status == "unmapped"]
    g = result.graph
    links = {(lk.dst, lk.dst_port): (lk.src, lk.src_port) for lk in g.links()}
    conds = sorted((n for n in g.nodes.values() if n.type == "condition.s2v"), key=lambda n: "previous" in str(
        [p for (d, p) in links if d == n.id]))
    assert [n.params for n in conds] == [{"width": 640, "height": 640, "frames": 77}] + [{"frames": 77}] * 2
    assert [g.nodes[links[n.id, "previous"][0]].type for n in conds[1:]] == ["generate.sample", "latent.concat"]
    assert all(g.nodes[links[n.id, "audio_embeds"][0]].type == "encode.audio" for n in conds)
    _tone(tmp_path / "voice.wav", 0.5)
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (80, 64, 3), dtype=np.uint8)).save(tmp_path / "me.png")
    names = {"load.diffusion_model": s2v[0].name, "load.text_encoder": "umt5_tiny_fp16.safetensors",
             "load.vae": "wan_tiny_vae.safetensors", "load.audio_encoder": str(encoder[0])}
    on_tiny_files(g, names, tmp_path / "voice.wav", tmp_path / "me.png", tmp_path / "out.mp4")
    for n in g.nodes.values():
        if n.type == "condition.s2v":
            n.params.update(frames=5, **({"width": 64, "height": 64} if "width" in n.params else {}))
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    # 2 latent frames a clip, three clips and the doubled first frame: 7 -> 25 frames, 3 cut by ImageFromBatch
    assert iio.imread(tmp_path / "out.mp4").shape == (22, 64, 64, 3)
    with av.open(str(tmp_path / "out.mp4")) as c:         # the voice under it (silence after its 0.5 s)
        decoded = list(c.decode(audio=0))
    rate, sound = decoded[0].sample_rate, np.concatenate([f.to_ndarray().mean(0) for f in decoded])
    assert np.abs(sound[:int(0.4 * rate)]).mean() > 0.05 and np.abs(sound[int(0.6 * rate):]).max() < 0.01


def test_a_stereo_voice_reaches_the_speech_encoder_as_its_channels_mean(tmp_path):
    # ComfyUI's wav2vec2 takes the mean of a sound's channels; ffmpeg's downmix added them at 1/sqrt(2) each, 41%
    # louder, which a base encoder (its sound not normalised: InfiniteTalk's) reads as different features.
    from graph_engine import Audio
    from nodes.generate.audio_encoder import samples
    t = np.arange(RATE // 2) / RATE
    pcm = np.round(np.stack([0.4 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], 1) * 32767)
    with wave.open(str(tmp_path / "duet.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype("<i2").tobytes())
    got = samples(Audio(str(tmp_path / "duet.wav"), 0.0, None))
    want = pcm.mean(1) / 32768
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-4


def test_a_continuation_that_outlasts_the_sound_gets_silence_after_it():
    # An Extend of 49 frames after a first clip of 77 (80 + 52 + 52 feature frames over 8 s of voice, bucketed in
    # 52s): the third clip starts at frame 132 of a 156-frame bucket. Its last 28 frames were missing, and sampling
    # stopped: "the sound's features cover 24 video frames but the latent's 13 latent frames need 52".
    from nodes.generate.wan_s2v_cond import sound_per_frame
    layers = torch.randn(3, 400, 8, generator=torch.Generator().manual_seed(0))          # 8 s at 50 a second
    third = sound_per_frame(layers, 50, 52, 132)
    assert third.shape == (1, 3, 8, 52)
    assert torch.equal(third[..., :24], sound_per_frame(layers, 50, 52, 104)[..., 28:])
    assert not third[..., 24:].any() and sound_per_frame(layers, 50, 52, 156).shape[-1] == 0
