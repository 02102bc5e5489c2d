"""HuMo (ByteDance's human video from a reference photo, a prompt and a voice, on Wan 2.1) as a ComfyUI creator
brings it: humo_17B_*.safetensors in diffusion_models/ (Wan's original names plus `audio_proj.*` and every block's
`audio_cross_attn_wrapper.*`), whisper_large_v3_fp16.safetensors in audio_encoders/ and the template
video_humo.json. The model here is a tiny random one in that layout; its prediction is compared with ComfyUI's
HumoWanModel forward written out below over the file's own tensors."""
import json
import math
from pathlib import Path

import numpy as np

import pytest
import torch

from graph_engine import NodeError
from tiny_wan22 import comfy_ops, comfy_rope, encode_voice_logs, on_tiny_files, perturbed_wan, tiny_wan_folder

# A tiny HuMo 17B-like file: 36 input channels (noise, a 4-channel mask, the image latent), 2 blocks of one 128-wide
# head; its voice projection reads 8 frames x 5 groups of 16-wide whisper features into 16 tokens 24 wide.
DIM, LAYERS, TEXT, WHISPER, KV, TOKENS = 128, 2, 32, 16, 24, 16


def _humo_state(in_channels):
    sd = perturbed_wan(3, in_channels, LAYERS, TEXT)
    shapes = {"audio_proj.audio_proj_glob_1.layer.weight": (32, 8 * 5 * WHISPER),
              "audio_proj.audio_proj_glob_1.layer.bias": (32,),
              "audio_proj.audio_proj_glob_2.layer.weight": (32, 32), "audio_proj.audio_proj_glob_2.layer.bias": (32,),
              "audio_proj.audio_proj_glob_3.layer.weight": (TOKENS * KV, 32),
              "audio_proj.audio_proj_glob_3.layer.bias": (TOKENS * KV,),
              "audio_proj.audio_proj_glob_norm.layer.weight": (KV,), "audio_proj.audio_proj_glob_norm.layer.bias": (KV,)}
    for i in range(LAYERS):
        p = f"blocks.{i}.audio_cross_attn_wrapper."
        for n, cin in (("q", DIM), ("k", KV), ("v", KV), ("o", DIM)):
            shapes[f"{p}audio_cross_attn.{n}.weight"] = (DIM, cin)
            shapes[f"{p}audio_cross_attn.{n}.bias"] = (DIM,)
        for n in ("audio_cross_attn.norm_q.weight", "audio_cross_attn.norm_k.weight", "norm1_audio.weight",
                  "norm1_audio.bias"):
            shapes[p + n] = (DIM,)
    for k, s in shapes.items():
        sd[k] = torch.randn(s) * (0.2 if "norm" in k else 0.1) + (1.0 if "norm" in k and "weight" in k else 0)
    return {k: v.half().float() for k, v in sd.items()}


@pytest.fixture(scope="module")
def humo(tmp_path_factory):
    """(the file, its tensors) of the tiny HuMo 17B-like model, fp16, in a ComfyUI models/ folder with a tiny umt5
    and Wan 2.1 VAE beside it (KINOGRAPH_MODELS points there)."""
    sd = _humo_state(36)
    with tiny_wan_folder(tmp_path_factory.mktemp("humo"), "humo_tiny_fp16.safetensors", sd) as path:
        yield path, sd


# ComfyUI's WAN21_HuMo fills the 17B model's image channels with these (comfy/model_base.py)
EMPTY = [[0.8660, -0.4326, -0.0017, -0.4884, -0.5283, 0.9207, -0.9896, 0.4433, -0.5543, -0.0113, 0.5753, -0.6000,
          -0.8346, -0.3497, -0.1926, -0.6938],
         [1.0869, -1.2370, 0.0206, -0.4357, -0.6411, 2.0307, -1.5972, 1.2659, -0.8595, -0.4654, 0.9638, -1.6330,
          -1.4310, -0.1098, -0.3856, -1.4583],
         [0.8642, -1.8583, 0.1577, 0.1350, -0.3641, 2.5863, -1.9670, 1.6065, -1.0475, -0.8678, 1.1734, -1.8138,
          -1.5933, -0.7721, -0.3289, -1.3745]]


def _reference_humo(sd, x, t, context, audio, ref):
    """HuMo's prediction written from the published model (ComfyUI's comfy/ldm/wan/model.py HumoWanModel,
    WanAttentionBlockAudio, AudioProjModel and comfy/model_base.py WAN21_HuMo's inputs), over the file's own
    tensors: one head, patch (1, 2, 2)."""
    import torch.nn.functional as F

    lin, rms, ln = comfy_ops(sd)

    def ids(t_len, h_len, w_len, t0=0):
        g = torch.zeros(t_len, h_len, w_len, 3, dtype=torch.float64)
        g[..., 0] += torch.arange(t0, t0 + t_len, dtype=torch.float64).view(-1, 1, 1)
        g[..., 1] += torch.arange(h_len, dtype=torch.float64).view(1, -1, 1)
        g[..., 2] += torch.arange(w_len, dtype=torch.float64).view(1, 1, -1)
        return g.reshape(-1, 3)

    def attend(q, k, vv):
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ vv

    b, _, time, hh, ww = x.shape
    if sd["patch_embedding.weight"].shape[1] == 36:
        # WAN21_HuMo, 17B: c_concat (4 zero mask channels, the empty clip's latent) after the noise; the reference
        # latent as zeros, ones and its latent
        concat = torch.zeros(b, 20, time, hh, ww)
        concat[:, 4:] = torch.tensor(EMPTY[2]).view(1, 16, 1, 1, 1)
        concat[:, 4:, :1] = torch.tensor(EMPTY[0]).view(1, 16, 1, 1, 1)
        concat[:, 4:, 1:2] = torch.tensor(EMPTY[1]).view(1, 16, 1, 1, 1)
        x = torch.cat([x, concat], 1)
        ref = torch.cat([torch.zeros_like(ref), torch.ones(b, 4, *ref.shape[2:]), ref], 1)
    v = F.conv3d(x, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=(1, 2, 2))
    grid = v.shape[2:]
    v = v.flatten(2).transpose(1, 2)
    seq = v.shape[1]
    half = 128
    sinus = torch.outer(t.double(), torch.pow(10000, -torch.arange(half, dtype=torch.float64) / half))
    e = torch.cat([sinus.cos(), sinus.sin()], 1).float()
    e = lin(F.silu(lin(e, "time_embedding.0")), "time_embedding.2").reshape(b, -1, DIM)
    e0 = lin(F.silu(e), "time_projection.1").unflatten(2, (6, DIM))
    r = F.conv3d(ref, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=(1, 2, 2))
    v = torch.cat([v, r.flatten(2).transpose(1, 2)], 1)
    pos = torch.cat([ids(time, hh // 2, ww // 2), ids(ref.shape[2], hh // 2, ww // 2, t0=time)])
    ctx = lin(F.gelu(lin(context, "text_embedding.0"), approximate="tanh"), "text_embedding.2")
    # AudioProjModel, the reference's frames silent
    a = torch.cat([audio, torch.zeros(b, ref.shape[2], *audio.shape[2:])], 1)
    frames = a.shape[1]
    a = a.reshape(b * frames, -1)
    a = torch.relu(lin(torch.relu(lin(a, "audio_proj.audio_proj_glob_1.layer")), "audio_proj.audio_proj_glob_2.layer"))
    a = lin(a, "audio_proj.audio_proj_glob_3.layer").reshape(b * frames, TOKENS, KV)
    a = ln(a, "audio_proj.audio_proj_glob_norm.layer", eps=1e-5).reshape(b, frames, TOKENS, KV)
    a = a.permute(0, 3, 1, 2).flatten(2).transpose(1, 2)
    for i in range(LAYERS):
        p = f"blocks.{i}."
        m = (sd[p + "modulation"].unsqueeze(0) + e0).unbind(2)
        h = ln(v) * (1 + m[1]) + m[0]
        q, k = comfy_rope(rms(lin(h, p + "self_attn.q"), p + "self_attn.norm_q"), pos), \
            comfy_rope(rms(lin(h, p + "self_attn.k"), p + "self_attn.norm_k"), pos)
        v = v + lin(attend(q, k, lin(h, p + "self_attn.v")), p + "self_attn.o") * m[2]
        h = ln(v, p + "norm3")
        v = v + lin(attend(rms(lin(h, p + "cross_attn.q"), p + "cross_attn.norm_q"),
                           rms(lin(ctx, p + "cross_attn.k"), p + "cross_attn.norm_k"), lin(ctx, p + "cross_attn.v")),
                    p + "cross_attn.o")
        w = p + "audio_cross_attn_wrapper."
        h = ln(v, w + "norm1_audio")
        q = rms(lin(h, w + "audio_cross_attn.q"), w + "audio_cross_attn.norm_q")
        k = rms(lin(a, w + "audio_cross_attn.k"), w + "audio_cross_attn.norm_k").reshape(-1, 16, DIM)
        vv = lin(a, w + "audio_cross_attn.v").reshape(-1, 16, DIM)
        v = v + lin(attend(q.reshape(k.shape[0], -1, DIM), k, vv).reshape(b, -1, DIM), w + "audio_cross_attn.o")
        h = ln(v) * (1 + m[4]) + m[3]
        v = v + lin(F.gelu(lin(h, p + "ffn.0"), approximate="tanh"), p + "ffn.2") * m[5]
    hm = (sd["head.modulation"].unsqueeze(0) + e.unsqueeze(2)).unbind(2)
    out = lin(ln(v) * (1 + hm[1]) + hm[0], "head.head")[:, :seq]
    f, gh, gw = grid
    out = out.view(b, f, gh, gw, 1, 2, 2, 16)
    return torch.einsum("bfhwpqrc->bcfphqwr", out).reshape(b, 16, f, gh * 2, gw * 2)


def test_the_humo_model_loads_from_its_file_and_predicts_as_the_published_model(humo):
    """HuMo files were read as Wan 2.2 image-to-video (their 36 channels) and failed on the unknown voice layers.
    The tiny file is told apart by its voice projection, loads (the voice layers under their own names beside
    diffusers' Wan blocks), and its prediction for noise at 32x32, 2 latent frames, with a voice and a reference
    image, equals the published model's forward written out above; the voice moves it."""
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.wan_humo import forward, is_humo
    path, sd = humo
    info = describe_model(path)
    assert info["loads"] == "yes" and "HuMo" in info["note"], info
    model = load_diffusion_model(ModelManager(max_loaded=2), str(path), "default", "cpu").pipe.transformer
    assert is_humo(model) and model.dtype == torch.float32
    torch.manual_seed(5)
    x, ref, text = torch.randn(1, 16, 2, 4, 4), torch.randn(1, 16, 1, 4, 4), torch.randn(1, 7, TEXT)
    audio = torch.randn(1, 2, 8, 5, WHISPER)
    t = torch.tensor([700.0])
    with torch.no_grad():
        got = forward(model, x, t, text, audio, ref)
        want = _reference_humo(sd, x, t, text, audio, ref)
        silent = forward(model, x, t, text, audio * 0, ref)
    assert got.shape == (1, 16, 2, 4, 4)
    assert torch.allclose(got, want, atol=2e-4), (got - want).abs().max()
    assert (silent - got).abs().max() > 1e-2          # the voice moves the prediction
    with pytest.raises(NodeError, match="condition.humo"):
        forward(model, x, t, text, audio[:, :1], ref)


def test_the_small_humo_model_reads_the_noise_alone(tmp_path):
    """HuMo 1.7B (on Wan 2.1 1.3B) reads 16 channels, no image channels, and its reference latent as it is: the
    tiny 16-channel file loads as HuMo and predicts as the published forward."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.wan_humo import forward
    sd = _humo_state(16)
    path = tmp_path / "humo_1.7B_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    model = load_diffusion_model(ModelManager(max_loaded=1), str(path), "default", "cpu").pipe.transformer
    torch.manual_seed(6)
    x, ref, text = torch.randn(1, 16, 3, 4, 6), torch.randn(1, 16, 1, 4, 6), torch.randn(1, 5, TEXT)
    audio, t = torch.randn(1, 3, 8, 5, WHISPER), torch.tensor([300.0])
    with torch.no_grad():
        got, want = forward(model, x, t, text, audio, ref), _reference_humo(sd, x, t, text, audio, ref)
    assert torch.allclose(got, want, atol=2e-4), (got - want).abs().max()


# --- the whisper speech encoder -----------------------------------------------------------------------------------
RATE = 16000


def _voice(path, seconds):
    """A sung-like tone (220 Hz and a harmonic, swelling) as 16-bit PCM WAV; the samples written, as floats."""
    import wave
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = np.round((0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 440 * t)) * (0.5 + t / seconds)
                   * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return pcm.astype(np.float32) / 32768


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    """(ComfyUI-layout file: WhisperModel's tensors under `model.`, fp16; transformers' WhisperModel holding the same
    fp16-rounded weights): WHISPER wide, 4 layers, 8 mel bins, whisper's 1500 positions (30 s)."""
    from safetensors.torch import save_file
    from transformers import WhisperConfig, WhisperModel
    torch.manual_seed(0)
    cfg = WhisperConfig(d_model=WHISPER, encoder_layers=4, encoder_attention_heads=1, encoder_ffn_dim=32,
                        num_mel_bins=8, max_source_positions=1500, decoder_layers=1, decoder_attention_heads=1,
                        decoder_ffn_dim=8, vocab_size=64, max_target_positions=8, pad_token_id=0, bos_token_id=1,
                        eos_token_id=2, decoder_start_token_id=1)
    ref = WhisperModel(cfg).eval()
    for p in ref.parameters():
        p.data = p.data + 0.05 * torch.randn_like(p)       # layer norms away from 1 / 0: a wrong one shows
    sd = {k: v.half() for k, v in ref.state_dict().items()}
    ref.load_state_dict({k: v.float() for k, v in sd.items()})
    path = tmp_path_factory.mktemp("audio_encoders") / "whisper_large_v3_fp16.safetensors"
    save_file({f"model.{k}": v.contiguous() for k, v in sd.items()}, str(path))
    return path, ref


def _comfy_log_mel(mono, bins):
    """ComfyUI's WhisperFeatureExtractor (comfy/audio_encoders/whisper.py) written out with torch.stft in place of
    torchaudio's MelSpectrogram: 30 s padded, 400-sample Hann frames every 160, power, slaney mel 0-8 kHz, the last
    frame dropped, log10 clamped at 8 below the peak, (x + 4) / 4."""
    from transformers.audio_utils import mel_filter_bank
    x = torch.nn.functional.pad(torch.as_tensor(mono), (0, 30 * RATE - len(mono)))
    spec = torch.stft(x, 400, 160, window=torch.hann_window(400), center=True, pad_mode="reflect",
                      return_complex=True).abs() ** 2
    fb = torch.as_tensor(mel_filter_bank(201, bins, 0.0, 8000.0, RATE, norm="slaney", mel_scale="slaney"),
                         dtype=torch.float32)
    mel = (fb.T @ spec)[:, :-1]
    mel = mel.clamp(min=1e-10).log10()
    return ((torch.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0)[None]


def test_a_voice_is_encoded_by_comfyuis_whisper_file_as_transformers_encodes_it(tmp_path, whisper):
    """load.audio_encoder took wav2vec2 files only ("not a wav2vec2 speech encoder"): HuMo's whisper file loads,
    and encode.audio's layers of a 0.9 s voice are transformers' WhisperModel encoder's hidden states of ComfyUI's
    log-mel features, for the whole 25 fps frames of the sound (ComfyUI's samples // 640 * 2 feature frames)."""
    from nodes.generate.audio_encoder import build, encode
    path, ref = whisper
    mono = _voice(tmp_path / "voice.wav", 0.9)
    model = build(path, torch.float32, "cpu")
    got = encode(model, mono)
    with torch.no_grad():
        want = ref.encoder(_comfy_log_mel(mono, 8), output_hidden_states=True).hidden_states
    n = len(mono) // 640 * 2
    assert got["layers"].shape == (5, n, WHISPER) and got["fps"] == 50
    assert torch.allclose(got["layers"], torch.stack(want)[:, 0, :n], atol=1e-4)
    assert f"{n} feature frames ({n / 50:.2f} s of sound), 5 layers" in encode_voice_logs(tmp_path / "voice.wav", path)


# --- condition.humo and the template --------------------------------------------------------------------------
TEMPLATE = Path(__file__).resolve().parents[1] / "tests" / "data" / "comfyui" / "templates" / "video_humo.json"


def _comfy_windows(layers, length):
    """The voice's windows as ComfyUI's WanHuMoImageToVideo makes them (comfy_extras/nodes_wan.py:
    linear_interpolation 50 -> 25 of the means of layers 0-7, 8-15, 16-23, 24-31 and layer 32, get_audio_emb_window),
    written out for whisper large-v3's 32 layers."""
    emb = layers.permute(1, 0, 2)[None]                                 # [1, T, 33, D]

    def interp(f):
        out = torch.nn.functional.interpolate(f.transpose(1, 2), size=int(f.shape[1] / 50 * 25),
                                              align_corners=True, mode="linear")
        return out.transpose(1, 2)
    feats = [interp(emb[:, :, i:i + 8].mean(dim=2)) for i in (0, 8, 16, 24)] + [interp(emb[:, :, 32])]
    emb = torch.stack(feats, dim=2)[0]                                  # [T', 5, D]
    zero = torch.zeros(emb.shape[1:])
    rows = []
    for i in range(1 + (length - 1) // 4):
        span = range(i - 2, i + 3) if i == 0 else range(1 + 4 * (i - 1) - 2, 1 + 4 * i + 2)
        w = torch.stack([emb[j] if 0 <= j < emb.shape[0] else zero for j in span])
        rows.append(torch.cat([torch.zeros(3, *emb.shape[1:]), w]) if i == 0 else w)
    return torch.stack(rows)[None]


def test_condition_humo_lays_voice_windows_and_reference_as_comfyui(humo):
    """condition.humo (WanHuMoImageToVideo): the voice's windows equal ComfyUI's (silence in the negative), the
    reference is the VAE's latent of the picture (zeros in the negative), the latent is empty at the size, 25 fps;
    without a reference both sides get a zero latent and no voice leaves the model its silence."""
    from PIL import Image
    from nodes.generate.adapters import get_adapter
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.wan_humo_cond import condition
    torch.manual_seed(2)
    layers = torch.randn(33, 47, 6)                     # 0.94 s of whisper large-v3's 32 layers (narrow)
    vae = load_vae(ModelManager(max_loaded=2), "wan_tiny_vae.safetensors", "cpu")
    pos = Conditioning("wan", torch.zeros(1, 4, 32))
    picture = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    out = condition(vae, pos, pos, 13, 32, 32, {"layers": layers, "fps": 50}, picture)
    want = _comfy_windows(layers, 13)
    assert want.shape == (1, 4, 8, 5, 6)
    assert torch.allclose(out["positive"].extra["humo_audio"], want, atol=1e-6)
    assert torch.equal(out["negative"].extra["humo_audio"], torch.zeros_like(want))
    assert out["latent"].samples.shape == (1, 16, 4, 4, 4) and not out["latent"].samples.any()
    assert out["latent"].fps == 25
    px = vae.pipe.video_processor.preprocess(Image.fromarray(picture), height=32, width=32, resize_mode="crop")
    with torch.no_grad():
        ref = get_adapter("wan").vae_encode(vae.pipe, px.permute(1, 0, 2, 3)[None])
    assert torch.allclose(out["positive"].extra["humo_reference"], ref, atol=1e-5)
    # ComfyUI's zeros_like(ref_latent), normalised by the model as every latent is
    mean, std = (torch.tensor(vae.pipe.vae.config.latents_mean), torch.tensor(vae.pipe.vae.config.latents_std))
    blank = ((0 - mean) / std).view(1, 16, 1, 1, 1).expand(1, 16, 1, 4, 4)
    assert torch.allclose(out["negative"].extra["humo_reference"], blank)
    bare = condition(vae, pos, None, 5, 32, 32)
    assert torch.allclose(bare["positive"].extra["humo_reference"], blank) and "humo_audio" not in bare["positive"].extra
    with pytest.raises(NodeError, match="whisper"):
        condition(vae, pos, None, 5, 32, 32, {"layers": torch.randn(3, 40, 6), "fps": 50})


def test_the_humo_template_imports_and_runs_on_tiny_weights(humo, whisper, tmp_path):
    """ComfyUI's video_humo template was blocked by WanHuMoImageToVideo; it became condition.humo, and the whole
    graph (whisper's features of the voice, the reference photo, the lightx2v LoRA bypassed) runs on the tiny HuMo
    model to a 25 fps video with the voice under it."""
    import av
    import imageio.v3 as iio
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    result = import_data(json.loads(TEMPLATE.read_text(encoding="utf-8")))
    assert not [e for e in result.report.entries.values() if e.status == "unmapped"]
    g = result.graph
    links = {(lk.dst, lk.dst_port): (lk.src, lk.src_port) for lk in g.links()}
    cond = next(n for n in g.nodes.values() if n.type == "condition.humo")
    assert cond.params == {"width": 640, "height": 640, "frames": 97}
    assert g.nodes[links[cond.id, "audio_embeds"][0]].type == "encode.audio"
    assert g.nodes[links[cond.id, "reference"][0]].type == "io.load_image"
    _voice(tmp_path / "voice.wav", 0.5)
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (80, 64, 3), dtype=np.uint8)).save(tmp_path / "me.png")
    names = {"load.diffusion_model": humo[0].name, "load.text_encoder": "umt5_tiny_fp16.safetensors",
             "load.vae": "wan_tiny_vae.safetensors", "load.audio_encoder": str(whisper[0])}
    on_tiny_files(g, names, tmp_path / "voice.wav", tmp_path / "me.png", tmp_path / "out.mp4")
    for n in g.nodes.values():
        if n.type == "condition.humo":
            n.params.update(frames=9, width=32, height=32)
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    assert iio.imread(tmp_path / "out.mp4").shape == (9, 32, 32, 3)
    assert iio.immeta(tmp_path / "out.mp4")["fps"] == 25
    with av.open(str(tmp_path / "out.mp4")) as c:         # the voice under it
        assert c.streams.audio and np.abs(np.concatenate([f.to_ndarray().mean(0) for f in c.decode(audio=0)])).max() > 0.1


def test_a_half_copied_humo_or_s2v_file_names_the_tensor_it_lacks():
    """HuMo's and S2V's extra layers are taken out of the Wan file by name; a file without one of the parts their
    size is read from says which and that the file is damaged, and leaves the base model's tensors in place."""
    from nodes.generate import wan_humo, wan_s2v
    for module, kept, needle in ((wan_humo, "audio_proj.audio_proj_glob_1.layer.weight", "voice projection"),
                                 (wan_s2v, "frame_packer.proj.weight", "sound, motion or control encoders")):
        state = {kept: torch.zeros(1), "blocks.0.attn1.to_q.weight": torch.zeros(1)}
        with pytest.raises(NodeError, match=needle) as e:
            module.parts(state)
        assert "damaged" in str(e.value) and next(k for k in module.NEEDED if k != kept) in str(e.value)
        assert list(state) == ["blocks.0.attn1.to_q.weight"]
