"""WanDancer (Wan 2.2 14B music-driven image-to-video) as a ComfyUI creator brings it: wan2.2_dancer_14b_global_* and
wan2.2_dancer_14b_local_* in diffusion_models/ (Wan 2.1 i2v's original names plus `patch_embedding_global`,
`img_emb_refimage`, `head_global`, `music_projection`, `music_encoder` and `music_injector`). The model here is a tiny
random one in that layout; its prediction is compared with ComfyUI's WanDancerModel forward
(comfy/ldm/wan/model_wandancer.py, its AudioInjector_WAN and WanI2VCrossAttention in comfy/ldm/wan/model.py)
written out below over the file's own tensors."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from tiny_wan22 import comfy_ops, comfy_rope, on_tiny_files, save_clip_vision, tiny_wan_folder

# one 128-wide head, 28 blocks (the last music layer follows block 27), CLIP tokens 32 wide (the tiny CLIP vision's),
# 35 music features into a 32-wide music encoder of 4 heads
DIM, LAYERS, TEXT, CLIPW, MUSIC, MDIM = 128, 28, 32, 32, 35, 32
TEMPLATE = Path(__file__).resolve().parents[1] / "tests" / "data" / "comfyui" / "templates" / "video_wan_dancer.json"
INJECT = (0, 4, 8, 12, 16, 20, 24, 27)


def _dancer_state():
    from diffusers import WanTransformer3DModel
    from tiny_models import wan_original_transformer
    torch.manual_seed(11)
    wan = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128, in_channels=36,
                                out_channels=16, text_dim=TEXT, freq_dim=256, ffn_dim=32, num_layers=LAYERS,
                                cross_attn_norm=True, qk_norm="rms_norm_across_heads", image_dim=CLIPW,
                                added_kv_proj_dim=DIM, rope_max_seq_len=32)
    sd = {k: v + 0.05 * torch.randn_like(v) for k, v in wan_original_transformer(wan.state_dict()).items()}
    shapes = {"patch_embedding_global.weight": (DIM, 36, 1, 2, 2), "patch_embedding_global.bias": (DIM,),
              "img_emb_refimage.proj.0.weight": (CLIPW,), "img_emb_refimage.proj.0.bias": (CLIPW,),
              "img_emb_refimage.proj.1.weight": (DIM, CLIPW), "img_emb_refimage.proj.1.bias": (DIM,),
              "img_emb_refimage.proj.3.weight": (DIM, DIM), "img_emb_refimage.proj.3.bias": (DIM,),
              "img_emb_refimage.proj.4.weight": (DIM,), "img_emb_refimage.proj.4.bias": (DIM,),
              "head_global.head.weight": (64, DIM), "head_global.head.bias": (64,),
              "head_global.modulation": (1, 2, DIM),
              "music_projection.weight": (MDIM, MUSIC), "music_projection.bias": (MDIM,)}
    for i in range(2):
        p = f"music_encoder.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{p}self_attn.{n}.weight"], shapes[f"{p}self_attn.{n}.bias"] = (MDIM, MDIM), (MDIM,)
        shapes[p + "linear1.weight"], shapes[p + "linear1.bias"] = (64, MDIM), (64,)
        shapes[p + "linear2.weight"], shapes[p + "linear2.bias"] = (MDIM, 64), (MDIM,)
        for n in ("norm1", "norm2"):
            shapes[f"{p}{n}.weight"], shapes[f"{p}{n}.bias"] = (MDIM,), (MDIM,)
    for i in range(len(INJECT)):
        p = f"music_injector.injector.{i}."
        for n in "qkvo":
            shapes[f"{p}{n}.weight"], shapes[f"{p}{n}.bias"] = (DIM, DIM), (DIM,)
        shapes[p + "norm_q.weight"] = shapes[p + "norm_k.weight"] = (DIM,)
    for k, s in shapes.items():
        sd[k] = torch.randn(s) * (0.2 if "norm" in k or "proj.0" in k or "proj.4" in k else 0.1) \
            + (1.0 if k.endswith("weight") and len(s) == 1 else 0)
    return {k: v.half().float() for k, v in sd.items()}


@pytest.fixture(scope="module")
def dancer(tmp_path_factory):
    """(the loaded transformer, its file's tensors, the file) of the tiny WanDancer file, fp16, in a ComfyUI models/
    folder with a tiny umt5, Wan 2.1 VAE and CLIP vision beside it (KINOGRAPH_MODELS points there)."""
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_diffusion_model
    sd = _dancer_state()
    with tiny_wan_folder(tmp_path_factory.mktemp("dancer"), "wan2.2_dancer_tiny.safetensors", sd) as path:
        save_clip_vision(path.parent.parent)
        info = describe_model(path)
        assert info["loads"] == "yes" and "WanDancer" in info["note"], info
        model = load_diffusion_model(ModelManager(max_loaded=1), str(path), "default", "cpu").pipe.transformer
        yield model, sd, path


def _reference_dancer(sd, x, t, context, clip, ref, music, fps, scale):
    """WanDancerModel._forward / forward_orig written from ComfyUI's code over the file's tensors: one head, patch
    (1, 2, 2); its rope_encode's time positions at another rate than 30 fps, MusicEncoderLayer with flux's EmbedND /
    apply_rope1, the music stretched by bilinear interpolation, AudioInjector_WAN with one audio token per run of
    video tokens (its attention run in full), WanI2VCrossAttention reading [reference, first frame] image tokens."""
    lin, rms, ln = comfy_ops(sd)

    def attend(q, k, vv):
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ vv

    b, _, time, hh, ww = x.shape
    glob = int(fps + 0.5) != 30
    pe = "patch_embedding_global" if glob else "patch_embedding"
    v = F.conv3d(x, sd[pe + ".weight"], sd[pe + ".bias"], stride=(1, 2, 2))
    grid = v.shape[2:]
    latent_frames = grid[0]
    v = v.flatten(2).transpose(1, 2)
    seq = v.shape[1]
    # rope_encode
    if glob:
        time_scale = 30.0 / fps
        tpos = torch.arange(grid[0], dtype=torch.float64) * time_scale
        tpos[-1] = int(time_scale * grid[0] + 0.5) - 1
    else:
        tpos = torch.linspace(0, grid[0] - 1, grid[0], dtype=torch.float64)
    ids = torch.zeros(grid[0], grid[1], grid[2], 3, dtype=torch.float64)
    ids[..., 0] += tpos.view(-1, 1, 1)
    ids[..., 1] += torch.linspace(0, grid[1] - 1, grid[1], dtype=torch.float64).view(1, -1, 1)
    ids[..., 2] += torch.linspace(0, grid[2] - 1, grid[2], dtype=torch.float64).view(1, 1, -1)
    pos = ids.reshape(-1, 3)
    half = 128
    sinus = torch.outer(t.double(), torch.pow(10000, -torch.arange(half, dtype=torch.float64) / half))
    e = torch.cat([sinus.cos(), sinus.sin()], 1).float()
    e = lin(F.silu(lin(e, "time_embedding.0")), "time_embedding.2").reshape(b, -1, DIM)
    e0 = lin(F.silu(e), "time_projection.1").unflatten(2, (6, DIM))
    ctx = lin(F.gelu(lin(context, "text_embedding.0"), approximate="tanh"), "text_embedding.2")
    # music: projection, two encoder layers (EmbedND(dim=8, axes_dim=[8]) over positions 0..S-1), interpolation
    m = lin(music, "music_projection")
    hd = MDIM // 4
    omega = 1.0 / 10000 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = (torch.arange(m.shape[1], dtype=torch.float64)[:, None] * omega).float()

    def rope1(q):               # apply_rope1 on [b, s, heads, d]
        pair = q.reshape(*q.shape[:-1], -1, 1, 2)
        c, s_ = ang.cos()[None, :, None], ang.sin()[None, :, None]
        rot = torch.stack([torch.stack([c, -s_], -1), torch.stack([s_, c], -1)], -2)  # [[cos, -sin], [sin, cos]]
        return (rot[..., 0] * pair[..., 0] + rot[..., 1] * pair[..., 1]).reshape(*q.shape)

    for i in range(2):
        p = f"music_encoder.{i}."
        h = ln(m, p + "norm1", eps=1e-5)
        q = rope1(lin(h, p + "self_attn.q_proj").view(b, -1, 4, hd)).transpose(1, 2)
        k = rope1(lin(h, p + "self_attn.k_proj").view(b, -1, 4, hd)).transpose(1, 2)
        vv = lin(h, p + "self_attn.v_proj").view(b, -1, 4, hd).transpose(1, 2)
        m = m + lin(attend(q, k, vv).transpose(1, 2).reshape(b, -1, MDIM), p + "self_attn.out_proj")
        m = m + lin(F.gelu(lin(ln(m, p + "norm2", eps=1e-5), p + "linear1")), p + "linear2")
    audio_emb = F.interpolate(m.unsqueeze(1), size=(latent_frames * 8, DIM), mode="bilinear").squeeze(1)

    def mlp(c, k):
        c = lin(ln(c, k + ".proj.0", eps=1e-5), k + ".proj.1")
        return ln(lin(F.gelu(c), k + ".proj.3"), k + ".proj.4", eps=1e-5)
    ctx = torch.cat([mlp(ref, "img_emb_refimage"), mlp(clip, "img_emb"), ctx], 1)
    img_len = ref.shape[1] + clip.shape[1]
    for i in range(LAYERS):
        p = f"blocks.{i}."
        mo = (sd[p + "modulation"].unsqueeze(0) + e0).unbind(2)
        h = ln(v) * (1 + mo[1]) + mo[0]
        q, k = comfy_rope(rms(lin(h, p + "self_attn.q"), p + "self_attn.norm_q"), pos), \
            comfy_rope(rms(lin(h, p + "self_attn.k"), p + "self_attn.norm_k"), pos)
        v = v + lin(attend(q, k, lin(h, p + "self_attn.v")), p + "self_attn.o") * mo[2]
        h = ln(v, p + "norm3")
        q = rms(lin(h, p + "cross_attn.q"), p + "cross_attn.norm_q")
        cimg, ctext = ctx[:, :img_len], ctx[:, img_len:]
        a = attend(q, rms(lin(cimg, p + "cross_attn.k_img"), p + "cross_attn.norm_k_img"),
                   lin(cimg, p + "cross_attn.v_img"))
        a = a + attend(q, rms(lin(ctext, p + "cross_attn.k"), p + "cross_attn.norm_k"), lin(ctext, p + "cross_attn.v"))
        v = v + lin(a, p + "cross_attn.o")
        h = ln(v) * (1 + mo[4]) + mo[3]
        v = v + lin(F.gelu(lin(h, p + "ffn.0"), approximate="tanh"), p + "ffn.2") * mo[5]
        if i in INJECT:
            j = f"music_injector.injector.{INJECT.index(i)}."
            runs = audio_emb.shape[1]
            hs = F.layer_norm(v[:, :seq].reshape(b * runs, -1, DIM), (DIM,), eps=1e-6)
            a_tok = audio_emb.reshape(b * runs, 1, DIM)
            out = attend(rms(lin(hs, j + "q"), j + "norm_q"), rms(lin(a_tok, j + "k"), j + "norm_k"), lin(a_tok, j + "v"))
            v = v.clone()
            v[:, :seq] = v[:, :seq] + lin(out, j + "o").reshape(b, -1, DIM) * scale
    head = "head_global" if glob else "head"
    hm = (sd[head + ".modulation"].unsqueeze(0) + e.unsqueeze(2)).unbind(2)
    out = lin(ln(v) * (1 + hm[1]) + hm[0], head + ".head")
    f, gh, gw = grid
    out = out.view(b, f, gh, gw, 1, 2, 2, 16)
    return torch.einsum("bfhwpqrc->bcfphqwr", out).reshape(b, 16, f, gh * 2, gw * 2)


def _inputs(seed):
    torch.manual_seed(seed)
    return (torch.randn(1, 36, 3, 8, 8), torch.randn(1, 512, TEXT), torch.randn(1, 5, CLIPW), torch.randn(1, 4, CLIPW),
            torch.randn(1, 40, MUSIC))


@pytest.mark.parametrize("fps", [6.0, 30.0, 7.5])
def test_the_dancer_model_loads_and_predicts_as_comfyui_at_the_global_and_local_rates(dancer, fps):
    """The tiny WanDancer file is told apart by its music layers, loads (the added parts under their own names beside
    diffusers' i2v Wan blocks) and predicts as ComfyUI's forward written out above: at 6 and 7.5 fps (the global
    pass: its own patch embedding, head and stretched rotary times) and at 30 fps (the local passes); the music and
    its scale move it."""
    from nodes.generate.wan_dancer import forward, is_dancer
    model, sd, _ = dancer
    assert is_dancer(model)
    x, text, clip, ref, music = _inputs(3)
    t = torch.tensor([600.0])
    with torch.no_grad():
        got = forward(model, x, t, text, clip, ref, music, fps, 0.8)
        want = _reference_dancer(sd, x, t, text, clip, ref, music, fps, 0.8)
        quiet = forward(model, x, t, text, clip, ref, music, fps, 0.0)
    assert got.shape == (1, 16, 3, 8, 8)
    assert torch.allclose(got, want, atol=2e-4), (got - want).abs().max()
    assert (quiet - got).abs().max() > 1e-3


def test_the_global_pass_differs_from_the_local_one(dancer):
    """The same input at 6 fps and 30 fps: other embeddings, head and times give another prediction (a model run
    at the wrong rate would not show in the test above if both paths were the same)."""
    from nodes.generate.wan_dancer import forward
    model, _, _ = dancer
    x, text, clip, ref, music = _inputs(4)
    t = torch.tensor([300.0])
    with torch.no_grad():
        a = forward(model, x, t, text, clip, ref, music, 6.0, 1.0)
        b = forward(model, x, t, text, clip, ref, music, 30.0, 1.0)
    assert (a - b).abs().max() > 1e-2


def test_bad_dancer_inputs_are_named(dancer):
    from nodes.generate.wan_dancer import forward
    model, _, _ = dancer
    x, text, clip, ref, music = _inputs(5)
    t = torch.tensor([300.0])
    with pytest.raises(NodeError, match="start image"):
        forward(model, x[:, :16], t, text, clip, ref, music)
    with pytest.raises(NodeError, match="CLIP image tokens"):
        forward(model, x, t, text, None, None, music)
    with pytest.raises(NodeError, match="35"):
        forward(model, x, t, text, clip, ref, music[..., :20])
    with pytest.raises(NodeError, match="multiple of 8"):
        forward(model, x[..., :6, :6], t, text, clip, ref, music)


# --- the key frames of the local passes ----------------------------------------------------------------------------------

def _comfy_pad_keyframes(images, segment_length, segment_index, audio):
    """WanDancerPadKeyframes.do_execute (comfy_extras/nodes_wandancer.py) written out: (keyframes, mask, audio
    segment's waveform)."""
    B, H, W, C = images.shape
    fps = 30
    audio_duration = audio["waveform"].shape[-1] / audio["sample_rate"]
    segment_duration = segment_length / fps
    buffer = 0.2
    num_segments = int((audio_duration - buffer) / segment_duration) + 1 if audio_duration > buffer else 0
    total_frames = num_segments * segment_length
    mask = torch.zeros((segment_length, H, W), dtype=images.dtype)
    keyframes = torch.zeros((segment_length, H, W, C), dtype=images.dtype)
    if total_frames > 0 and B > 0:
        frame_interval = float(total_frames) / B
        seg_num = int(math.ceil(total_frames / segment_length))
        is_last_segment = (segment_index == seg_num - 1)
        positions = []
        images_before_this_segment = 0
        for seg_idx in range(segment_index):
            end_idx = (total_frames - segment_length * seg_idx - 1) if seg_idx == seg_num - 1 else (segment_length - 1)
            cnt = 0
            while cnt * frame_interval < end_idx - frame_interval:
                cnt += 1
            images_before_this_segment += cnt
        end_index = (total_frames - segment_length * segment_index - 1) if is_last_segment else (segment_length - 1)
        cnt = 0
        while cnt * frame_interval < end_index - frame_interval:
            positions.append((int(math.ceil(frame_interval * cnt)), images_before_this_segment + cnt))
            cnt += 1
        positions.append((end_index, images_before_this_segment + cnt))
        valid_positions = [(pos, idx) for pos, idx in positions if idx < B and pos < segment_length]
        if valid_positions:
            seg_positions, img_indices = zip(*valid_positions)
            mask[torch.tensor(seg_positions)] = 1
            keyframes[torch.tensor(seg_positions)] = images[torch.tensor(img_indices)]
    start_time = segment_index * segment_duration
    end_time = min(start_time + segment_duration, audio_duration)
    sample_rate = audio["sample_rate"]
    return keyframes, mask, audio["waveform"][:, :, int(start_time * sample_rate):int(end_time * sample_rate)]


def _wav(path, seconds, rate):
    import wave
    rng = np.random.default_rng(int(seconds * 10))
    pcm = (rng.uniform(-0.3, 0.3, int(round(seconds * rate))) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return torch.from_numpy(pcm.astype(np.float32) / 32768)[None, None]


@pytest.mark.parametrize("count,seconds,length,index", [(38, 25.0, 149, 0), (38, 25.0, 149, 2), (38, 25.0, 149, 4),
                                                        (4, 2.0, 13, 0), (4, 2.0, 13, 1), (7, 1.3, 13, 2)])
def test_key_frames_are_laid_and_the_music_cut_as_comfyui(tmp_path, count, seconds, length, index):
    """video.wan_dancer_keyframes (WanDancerPadKeyframes): the global pass's pictures at the frames ComfyUI's node
    lays them in each segment (the template's 38 pictures over 25 s, segments 0, 2 and the last, and short songs),
    the mask white there only, and the segment's samples of the music."""
    from graph_engine import Clip
    from nodes.generate.wan_dancer_keys import keyframes
    from nodes.io.sound import sound_span
    rate = 8000
    wave = _wav(tmp_path / "song.wav", seconds, rate)
    pictures = np.random.default_rng(count).integers(0, 255, (count, 6, 8, 3), dtype=np.uint8)
    keys, mask, music = keyframes(Clip.from_array(pictures, fps=6.0), sound_span(str(tmp_path / "song.wav"), 0, 0),
                                  length, index)
    want_keys, want_mask, want_wave = _comfy_pad_keyframes(torch.from_numpy(pictures).float() / 255, length, index,
                                                           {"waveform": wave, "sample_rate": rate})
    assert keys.length == mask.length == length and keys.fps == 30
    assert np.array_equal(keys.frames(0, length).astype(np.float32) / 255, want_keys.numpy())
    assert np.array_equal(mask.frames(0, length)[..., 0] / 255.0, want_mask.numpy())
    assert want_mask.any()
    assert round(music.pieces()[0].start * rate) == int(index * (length / 30) * rate)      # ComfyUI's first sample
    assert round(music.pieces()[0].duration * rate) == want_wave.shape[-1]


def test_a_segment_past_the_music_is_named(tmp_path):
    from graph_engine import Clip
    from nodes.generate.wan_dancer_keys import keyframes
    from nodes.io.sound import sound_span
    _wav(tmp_path / "song.wav", 1.0, 8000)
    with pytest.raises(NodeError, match="segment 3 starts"):
        keyframes(Clip.from_array(np.zeros((4, 6, 8, 3), np.uint8), fps=6.0),
                  sound_span(str(tmp_path / "song.wav"), 0, 0), 13, 3)


def test_the_song_is_decoded_once_for_all_its_segments(tmp_path, monkeypatch):
    """The local passes' music (video.wan_dancer_keyframes then encode.wan_dancer_audio per segment): the song's file
    is decoded once for all its segments, each segment's features those of ComfyUI's cut of the waveform; a file
    changed on disk is decoded again."""
    from graph_engine import Clip
    import nodes.io.sound as sound
    from nodes.generate.audio_encoder import samples
    from nodes.generate.wan_dancer_audio import encode, native_rate
    from nodes.generate.wan_dancer_keys import keyframes
    calls = []
    decoded = sound.decoded
    monkeypatch.setattr(sound, "decoded", lambda path, resampler=None: calls.append(path) or decoded(path, resampler))
    rate, length, path = 8000, 13, tmp_path / "song.wav"
    wave = _wav(path, 2.0, rate)
    pictures = Clip.from_array(np.zeros((4, 6, 8, 3), np.uint8), fps=6.0)
    song = sound.Audio(str(path), 0.0, 2.0)

    def features(index):
        music = keyframes(pictures, song, length, index)[2]
        mine = encode(samples(music, native_rate(music)), rate, length, 1.0)[0]["dancer"]
        cut = _comfy_pad_keyframes(torch.zeros(4, 6, 8, 3), length, index, {"waveform": wave, "sample_rate": rate})[2]
        assert torch.equal(mine, encode(cut[0, 0].numpy(), rate, length, 1.0)[0]["dancer"])
    for index in range(4):
        features(index)
    assert len(calls) == 1
    wave = _wav(path, 2.5, rate)        # another length: another size on disk
    features(1)
    assert len(calls) == 2


# --- the conditioning ------------------------------------------------------------------------------------------------------

def _comfy_model_mask(mask, length, latent_frames, h, w, starts):
    """WanDancerVideo's concat_mask, as WAN21.concat_cond hands it to the model (1 - concat_mask, 4 channels)."""
    if mask is None:
        concat_mask = torch.ones((1, 1, latent_frames, h, w))
        concat_mask[:, :, :((starts - 1) // 4) + 1] = 0.0
    else:
        concat_mask = 1 - mask[:length].unsqueeze(0)
        concat_mask = F.interpolate(concat_mask, size=(h, w), mode="nearest-exact")
        concat_mask = torch.cat([torch.repeat_interleave(concat_mask[:, 0:1], repeats=4, dim=1), concat_mask[:, 1:]],
                                dim=1)
        concat_mask = concat_mask.view(1, concat_mask.shape[1] // 4, 4, h, w).transpose(1, 2)
    out = 1.0 - concat_mask
    if out.shape[2] < latent_frames:        # concat_cond: latent frames past the mask's are generated
        out = F.pad(out, (0, 0, 0, 0, 0, latent_frames - out.shape[2]), value=0)
    return out.repeat(1, 4, 1, 1, 1) if out.shape[1] == 1 else out


@pytest.mark.parametrize("given", [1, 5, 13, "still"])
def test_a_mask_shorter_than_the_clip_keeps_only_its_own_frames(given):
    """WanDancerVideo's mask of fewer frames than the clip (a single picture's mask, or 4n+1 frames) keeps its
    white only in the latent frames it covers; the rest are generated (concat_cond pads them with 0). A still mask
    is one frame; a mask of a frame count the VAE cannot hold (3) is refused naming the counts that work."""
    from graph_engine import Clip
    from nodes.generate.wan_dancer_cond import kept_mask
    rng = np.random.default_rng(5)
    marks = (rng.random((13, 32, 48, 1)) > 0.5).astype(np.uint8) * 255
    if given == "still":
        mask, frames = marks[0, ..., 0].astype(np.float32) / 255.0, 1
    else:
        mask, frames = Clip(given, 30.0, 48, 32, lambda a, b: marks[a:b], channels=1), given
    want = _comfy_model_mask(torch.from_numpy(marks[:frames, ..., 0] / 255.0).float(), 13, 4, 4, 6, 13)
    assert torch.equal(kept_mask(13, 4, 4, 6, 13, mask), want)
    with pytest.raises(NodeError, match="4n\\+1"):
        kept_mask(13, 4, 4, 6, 13, Clip(3, 30.0, 48, 32, lambda a, b: marks[a:b], channels=1))


def test_condition_wan_dancer_keeps_the_frames_comfyui_keeps(dancer):
    """condition.wan_dancer (WanDancerVideo): the start frames' latent (black after them) beside the mask of kept
    frames ComfyUI's node and WAN21's concat_cond give the model, with a start picture alone (its latent frame kept)
    and with the key frames' mask (the local pass); CLIP tokens, reference tokens and the music's rate on both sides;
    a speech encoder's features refused by name."""
    from graph_engine import Clip
    from nodes.generate.adapters import get_adapter
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.wan_dancer_cond import condition
    vae = load_vae(ModelManager(max_loaded=2), "wan_tiny_vae.safetensors", "cpu")
    pos, neg = Conditioning("wan", torch.zeros(1, 4, 32)), Conditioning("wan", torch.ones(1, 4, 32))
    rng = np.random.default_rng(3)
    start = rng.integers(0, 255, (5, 32, 48, 3), dtype=np.uint8)
    clip, ref = Conditioning("wan", torch.randn(1, 65, 32)), Conditioning("wan", torch.randn(1, 65, 32))
    music = {"dancer": torch.randn(1, 40, 35), "fps": 6.0, "scale": 0.5}
    out = condition(vae, pos, neg, 13, 48, 32, Clip.from_array(start[:1], fps=6.0), None, clip, ref, music)
    concat = out["positive"].extra["concat"]
    assert concat.shape == (1, 20, 4, 4, 6) and out["latent"].samples.shape == (1, 16, 4, 4, 6)
    assert torch.equal(concat[:, :4], _comfy_model_mask(None, 13, 4, 4, 6, 1))
    px = torch.zeros(1, 3, 13, 32, 48) - 1.0
    px[:, :, 0] = torch.from_numpy(start[0]).permute(2, 0, 1).float() / 255 * 2 - 1
    with torch.no_grad():
        z = get_adapter("wan").vae_encode(vae.pipe, px)
    assert torch.allclose(concat[:, 4:], z, atol=1e-4)
    for side in ("positive", "negative"):
        c = out[side]
        assert torch.equal(c.extra["image_embeds"], clip.embeds) and torch.equal(c.extra["dancer_reference"], ref.embeds)
        assert torch.equal(c.extra["dancer_music"], music["dancer"])
        assert c.meta["dancer_fps"] == 6.0 and c.meta["dancer_scale"] == 0.5
    keys = np.zeros((13, 32, 48, 3), np.uint8)
    marks = np.zeros((13, 32, 48, 1), np.uint8)
    for at in (0, 5, 12):
        keys[at], marks[at] = start[at // 4], 255
    mask_clip = Clip(13, 30.0, 48, 32, lambda a, b: marks[a:b], channels=1)
    local = condition(vae, pos, None, 13, 48, 32, Clip.from_array(keys, fps=30.0), mask_clip, clip, ref,
                      {**music, "fps": 30.0})
    want = _comfy_model_mask(torch.from_numpy(marks[..., 0] / 255.0).float(), 13, 4, 4, 6, 13)
    assert torch.equal(local["positive"].extra["concat"][:, :4], want)
    assert local["negative"] is None and local["latent"].fps == 30
    with pytest.raises(NodeError, match="encode.wan_dancer_audio"):
        condition(vae, pos, None, 13, 48, 32, music={"layers": torch.zeros(3, 4, 5), "fps": 50})
    with pytest.raises(NodeError, match="4n\\+1"):
        condition(vae, pos, None, 13, 48, 32, Clip.from_array(keys, fps=30.0),
                  Clip(6, 30.0, 48, 32, lambda a, b: marks[a:b], channels=1))


_CONDITION_MEMORY = """
import resource, sys, types
import numpy as np, torch
import nodes.generate.adapters as adapters
import nodes.generate.vae_ops as vae_ops
from graph_engine import Clip
from nodes.generate.latent import Conditioning, Latent
from nodes.generate.wan_dancer_cond import condition
frames, size = 149, 256
seen = {}
def encode(pipe, pixels):
    a = pixels.numpy()                  # a view: numpy reduces it in place, torch might copy it
    seen["pixels"] = (float(a.min()), float(a.max()), a.shape)
    return torch.zeros(1, 16, (frames - 1) // 4 + 1, size // 8, size // 8)
adapters.get_adapter = lambda family: types.SimpleNamespace(vae_encode=encode)
vae_ops.empty_latent = lambda vae, f, w, h, fps: Latent(torch.zeros(1, 16, (f - 1) // 4 + 1, h // 8, w // 8), "wan",
                                                        f, fps, w, h)
keys = Clip.from_array(np.random.default_rng(0).integers(0, 256, (frames, size, size, 3), dtype=np.uint8), fps=30.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
condition(types.SimpleNamespace(family="wan", pipe=None), Conditioning("wan", torch.zeros(1, 4, 32)), None, frames,
          size, size, keys)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(grown / (frames * size * size * 3 * 4), seen["pixels"])
"""


def test_the_start_frames_take_one_float_copy():
    """condition.wan_dancer's local pass encodes all 149 frames of key frames (720x1280 as released: 1.6 GB as
    float32): the frames are fitted and scaled to -1..1 into one buffer a few at a time, so the process grows by
    under twice that buffer (it grew by over three: the whole clip's float frames, their /255 and scaled
    copies, then *2 and -1 each made another); the pixels the VAE gets still span -1..1."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", _CONDITION_MEMORY], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split(maxsplit=1)
    assert float(out[0]) < 2.0, out
    assert out[1].strip() == "(-1.0, 1.0, (1, 3, 149, 256, 256))"


# --- the template ---------------------------------------------------------------------------------------------------------

def _template(final_choice=None):
    """The stored template, its final duration set to the CustomCombo option `final_choice` (index, text)."""
    data = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    if final_choice is not None:
        combo = next(n for sg in data["definitions"]["subgraphs"] for n in sg["nodes"] if n["id"] == 700)
        combo["widgets_values"][1], combo["widgets_values"][0] = final_choice
    return data


def test_a_longer_final_duration_is_expanded_into_segments_joined_in_order():
    """The template's final duration of 15 s makes WanDancerPadKeyframesList hand on 3 segments, each run through
    the local pass on its own in ComfyUI and joined by RebatchImages: the import copies the local pass per segment
    (video.wan_dancer_keyframes' segment 0, 1, 2) and joins the three clips in that order; a count past the cap stays
    not mapped, saying why."""
    from app.comfyui import import_data
    result = import_data(_template((2, "15")))
    assert not [e for e in result.report.entries.values() if e.status == "unmapped"]
    g = result.graph
    links = {(lk.dst, lk.dst_port): (lk.src, lk.src_port) for lk in g.links()}
    keys = sorted((n for n in g.nodes.values() if n.type == "video.wan_dancer_keyframes"), key=lambda n: n.params["segment"])
    assert [n.params["segment"] for n in keys] == [0, 1, 2]
    assert len([n for n in g.nodes.values() if n.type == "condition.wan_dancer"]) == 4     # the global and 3 local

    def segment_of(node, port):         # the key frames node a clip comes from, up the chain
        todo = [links[node, port][0]]
        while todo:
            n = todo.pop()
            if g.nodes[n].type == "video.wan_dancer_keyframes":
                return g.nodes[n].params["segment"]
            todo += [src for (dst, _), (src, _) in links.items() if dst == n]
    save = next(n for n in g.nodes.values() if n.type == "io.save_video" and n.params["fps"] == 30)
    last = links[save.id, "video"][0]
    while g.nodes[last].type != "video.concat":
        last = next(src for (dst, _), (src, _) in links.items() if dst == last)
    inner = links[last, "video"][0]
    assert g.nodes[inner].type == "video.concat"
    assert (segment_of(inner, "video"), segment_of(inner, "other"), segment_of(last, "other")) == (0, 1, 2)
    many = import_data(_template((99, "500")))
    line = next(e for e in many.report.entries.values() if e.class_type == "WanDancerPadKeyframesList")
    assert line.status == "unmapped" and any("expands a list of 1 to 64" in n for n in line.notes), line.notes


def test_the_wan_dancer_template_imports_and_runs_on_tiny_weights(dancer, tmp_path):
    """ComfyUI's video_wan_dancer template was blocked by WanDancerEncodeAudio, WanDancerVideo,
    WanDancerPadKeyframesList and a StringConcatenate of the music's frame-rate words; it imports with every node
    mapped (the prompt joined to the words as the workflow runs, text.join), and the whole graph runs on the tiny
    model at its 10 s final duration (two segments): the global pass over the song's key frames at its low rate, its
    pictures laid as each local segment's key frames, the local passes at 30 fps joined, both videos written, the
    final one with the music under it."""
    import av
    import imageio.v3 as iio
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    import wave as wavmod
    one = import_data(_template())
    assert next(n for n in one.graph.nodes.values() if n.type == "video.wan_dancer_keyframes").params == \
        {"length": 149, "segment": 0}
    result = import_data(_template((1, "10")))
    assert not [e for e in result.report.entries.values() if e.status == "unmapped"]
    g = result.graph
    links = {(lk.dst, lk.dst_port): (lk.src, lk.src_port) for lk in g.links()}
    conds = [n for n in g.nodes.values() if n.type == "condition.wan_dancer"]
    assert len(conds) == 3 and all(n.params["frames"] == 149 for n in conds)
    joins = [n for n in g.nodes.values() if n.type == "text.join"]
    assert len(joins) == 1 and joins[0].params["a"].startswith("一个人正在跳舞") and joins[0].params["delimiter"] == " "
    assert g.nodes[links[joins[0].id, "b"][0]].type == "encode.wan_dancer_audio" and links[joins[0].id, "b"][1] == \
        "fps_string"
    assert sorted(n.params["segment"] for n in g.nodes.values() if n.type == "video.wan_dancer_keyframes") == [0, 1]
    local = next(n for n in conds if (n.id, "mask") in links)
    assert g.nodes[links[local.id, "mask"][0]].type == "video.wan_dancer_keyframes"
    # a 2 s song and a picture; 13 frames a pass at 64x64 (the template's 149 at 720x1280 are the released size)
    rate = 22050
    t = np.arange(2 * rate) / rate
    song = (0.4 * np.sin(2 * np.pi * 220 * t) * (np.mod(t, 0.5) < 0.1) * 32767).astype(np.int16)
    with wavmod.open(str(tmp_path / "song.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(song.tobytes())
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (80, 64, 3), dtype=np.uint8)).save(tmp_path / "me.png")
    names = {"load.diffusion_model": dancer[2].name, "load.text_encoder": "umt5_tiny_fp16.safetensors",
             "load.vae": "wan_tiny_vae.safetensors", "load.clip_vision": "clip_vision_tiny.safetensors"}
    on_tiny_files(g, names, tmp_path / "song.wav", tmp_path / "me.png", tmp_path / "out.mp4")
    saves = sorted((n for n in g.nodes.values() if n.type == "io.save_video"), key=lambda n: n.id)
    for n, name in zip(saves, ("a.mp4", "b.mp4")):
        n.params["path"] = str(tmp_path / name)
    for n in g.nodes.values():
        if n.type == "condition.wan_dancer":
            n.params.update(frames=13, width=64, height=64)
        elif n.type == "encode.wan_dancer_audio":
            n.params["frames"] = 13
        elif n.type == "video.wan_dancer_keyframes":
            n.params["length"] = 13
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    made = {name: iio.imread(tmp_path / name) for name in ("a.mp4", "b.mp4")}
    # the preview: the global pass's 4 latent frames each decoded alone (one picture each); the final: two segments
    # of 13 frames
    assert sorted(v.shape[0] for v in made.values()) == [4, 26]
    final = next(name for name, v in made.items() if v.shape[0] == 26)
    assert made[final].shape == (26, 64, 64, 3) and iio.immeta(tmp_path / final)["fps"] == 30
    with av.open(str(tmp_path / final)) as c:         # the music under it
        assert c.streams.audio


def test_the_fp8_scaled_files_the_template_names_load(dancer, tmp_path):
    """The template's files are ComfyUI's fp8_scaled (wan2.2_dancer_14b_*_fp8_scaled): the music, reference and
    global layers' matrices too are fp8 beside their scale_weight; the file loads and predicts as ComfyUI's forward
    over its dequantised tensors (weight * scale_weight)."""
    from safetensors.torch import save_file
    from tiny_models import to_fp8_scaled
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.wan_dancer import forward
    sd8 = to_fp8_scaled({k: v.half() for k, v in dancer[1].items()})
    path = tmp_path / "wan2.2_dancer_tiny_fp8_scaled.safetensors"
    save_file(sd8, str(path))
    deq = {k: v.float() * sd8[k[:-len(".weight")] + ".scale_weight"].float() if k[:-len(".weight")] + ".scale_weight"
           in sd8 else v.float() for k, v in sd8.items() if not k.endswith(".scale_weight") and k != "scaled_fp8"}
    model = load_diffusion_model(ModelManager(max_loaded=1), str(path), "default", "cpu").pipe.transformer
    x, text, clip, ref, music = _inputs(6)
    t = torch.tensor([500.0])
    with torch.no_grad():
        got = forward(model.float(), x, t, text, clip, ref, music, 6.0, 1.0)
        want = _reference_dancer(deq, x, t, text, clip, ref, music, 6.0, 1.0)
    assert torch.allclose(got, want, atol=5e-4), (got - want).abs().max()
