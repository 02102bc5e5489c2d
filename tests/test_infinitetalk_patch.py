"""InfiniteTalk as a podcaster brings it: a photo, one or two voice tracks, ComfyUI's patch file
(model_patches/wan2.1_infiniteTalk_*.safetensors: audio_proj and per-block audio_cross_attn / norm_x) over Wan 2.1
I2V. The patch here is tiny and random in that layout; what it does is compared with ComfyUI's forward
(comfy/ldm/wan/model_multitalk.py, comfy_extras/nodes_wan.py's WanInfiniteTalkToVideo) written out below."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from graph_engine import NodeError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_wan_s2v import _tone, encoder  # noqa: E402,F401  (the tiny wav2vec2 file: 2 layers of 128)

DIM, HEADS, AUDIO_DIM, TOKENS, INNER, LAYERS, WIDTH = 32, 2, 16, 32, 24, 2, 8


def _patch_state(blocks=2, dim=DIM, seed=0, width=WIDTH):
    """A tiny InfiniteTalk patch in ComfyUI's layout: features of LAYERS x width, 32 audio tokens a frame."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"audio_proj.proj1.weight": (INNER, 5 * LAYERS * width), "audio_proj.proj1.bias": (INNER,),
              "audio_proj.proj1_vf.weight": (INNER, 8 * LAYERS * width), "audio_proj.proj1_vf.bias": (INNER,),
              "audio_proj.proj2.weight": (INNER, INNER), "audio_proj.proj2.bias": (INNER,),
              "audio_proj.proj3.weight": (TOKENS * AUDIO_DIM, INNER), "audio_proj.proj3.bias": (TOKENS * AUDIO_DIM,),
              "audio_proj.norm.weight": (AUDIO_DIM,), "audio_proj.norm.bias": (AUDIO_DIM,)}
    for i in range(blocks):
        b = f"blocks.{i}."
        shapes.update({b + "audio_cross_attn.q_linear.weight": (dim, dim), b + "audio_cross_attn.q_linear.bias": (dim,),
                       b + "audio_cross_attn.kv_linear.weight": (2 * dim, AUDIO_DIM),
                       b + "audio_cross_attn.kv_linear.bias": (2 * dim,),
                       b + "audio_cross_attn.proj.weight": (dim, dim), b + "audio_cross_attn.proj.bias": (dim,),
                       b + "norm_x.weight": (dim,), b + "norm_x.bias": (dim,)})
    sd = {}
    for k, s in shapes.items():
        v = torch.randn(s, generator=g)
        sd[k] = (1 + 0.1 * v) if "norm" in k and k.endswith("weight") else v * (0.3 if k.endswith("weight") else 0.1)
    return {k: v.half().float() for k, v in sd.items()}


# --- ComfyUI's InfiniteTalk, written out (model_multitalk.py, nodes_wan.py) ---------------------------------------

def _comfy_encoded(layers):
    """WanInfiniteTalkToVideo: stack(encoded_audio_all_layers)[1:], linear_interpolation(50 -> 25), movedim."""
    enc = layers[1:]
    f = enc.transpose(1, 2)
    f = F.interpolate(f, size=int(f.shape[2] / 50.0 * 25), align_corners=True, mode="linear")
    return f.transpose(1, 2).movedim(0, 1)


def _comfy_audio_embeds(sd, layer_list, audio_start, audio_end):
    encoded = [_comfy_encoded(x) for x in layer_list]
    if len(encoded) > 1:
        lens = [e.shape[0] for e in encoded]
        full_list, offset = [], 0
        for emb, n in zip(encoded, lens):
            full = torch.zeros(sum(lens), *emb.shape[1:])
            full[offset:offset + n] = emb
            full_list.append(full)
            offset += n
        encoded = full_list
    embs = []
    indices = torch.arange(5) - 2
    for e in encoded:
        if audio_end > e.shape[0]:
            e = torch.cat([e, e[:1].repeat(audio_end - e.shape[0], 1, 1)], 0)
        c = torch.clamp(torch.arange(audio_start, audio_end).unsqueeze(1) + indices.unsqueeze(0), 0, e.shape[0] - 1)
        embs.append(e[c].unsqueeze(0))
    audio_embs = torch.cat(embs, 0)
    first = audio_embs[:, :1]
    latter = rearrange(audio_embs[:, 1:], "b (n_t n) w s c -> b n_t n w s c", n=4)
    mid = 2
    a = rearrange(latter[:, :, :1, :mid + 1], "b n_t n w s c -> b n_t (n w) s c")
    b = rearrange(latter[:, :, 1:-1, mid:mid + 1], "b n_t n w s c -> b n_t (n w) s c")
    c = rearrange(latter[:, :, -1:, mid:], "b n_t n w s c -> b n_t (n w) s c")
    latter = torch.cat([a, b, c], 2)

    def lin(v, k):
        return F.linear(v, sd[f"audio_proj.{k}.weight"], sd[f"audio_proj.{k}.bias"])
    bsz = first.shape[0]
    video_length = first.shape[1] + latter.shape[1]
    e1 = rearrange(first, "bz f w b c -> (bz f) w b c")
    e1 = e1.reshape(e1.shape[0], -1)
    e2 = rearrange(latter, "bz f w b c -> (bz f) w b c")
    e2 = e2.reshape(e2.shape[0], -1)
    e1 = rearrange(torch.relu(lin(e1, "proj1")), "(bz f) c -> bz f c", bz=bsz)
    e2 = rearrange(torch.relu(lin(e2, "proj1_vf")), "(bz f) c -> bz f c", bz=bsz)
    ec = torch.concat([e1, e2], 1)
    bc, nt, ca = ec.shape
    ec = torch.relu(lin(ec.view(bc * nt, ca), "proj2"))
    ctx = lin(ec, "proj3").reshape(bc * nt, TOKENS, AUDIO_DIM)
    ctx = F.layer_norm(ctx, (AUDIO_DIM,), sd["audio_proj.norm.weight"], sd["audio_proj.norm.bias"])
    ctx = rearrange(ctx, "(bz f) m c -> bz f m c", f=video_length)
    return torch.cat(ctx.split(1), 2)                       # [1, F, humans * 32, C]


def _rotate_half(x):
    x = rearrange(x, "... (d r) -> ... d r", r=2)
    x1, x2 = x.unbind(-1)
    return rearrange(torch.stack((-x2, x1), -1), "... d r -> ... (d r)")


def _rope1d(x, pos):
    d = x.shape[-1]
    freqs = 1.0 / (10000 ** (torch.arange(0, d, 2)[: d // 2].float() / d))
    freqs = repeat(torch.einsum("..., f -> ... f", pos.float(), freqs), "... n -> ... (n r)", r=2)
    cos, sin = rearrange(freqs.cos(), "n d -> 1 1 n d"), rearrange(freqs.sin(), "n d -> 1 1 n d")
    return (x.float() * cos + _rotate_half(x.float()) * sin).type_as(x)


def _attn(q, k, v):
    """optimized_attention on [B, H, N, d] (skip_reshape): softmax(q k^T / sqrt(d)) v."""
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
    return w @ v


def _ref_attn_map(q, k, shape, masks):
    """get_attn_map_with_target (split_num 2) over calculate_x_ref_attn_map (split_num 8)."""
    _, n_h, n_w = shape
    k = k[:, :n_h * n_w]
    _, seq, heads, _ = q.shape
    out = torch.zeros(masks.shape[0], seq)
    chunk = heads // 2
    for i in range(2):
        vq, rk = q[:, :, i * chunk:(i + 1) * chunk], k[:, :, i * chunk:(i + 1) * chunk]
        vq = vq.transpose(1, 2) * (1.0 / vq.shape[-1] ** 0.5)
        maps = []
        for m in masks:
            m = m.view(1, 1, 1, -1).float()
            a = vq @ rk.permute(0, 2, 3, 1)
            a = (a - a.max(-1, keepdim=True).values).exp()
            a = a / (a.sum(-1, keepdim=True) + 1e-8)
            maps.append(((a * m).sum(-1) / (m.sum() + 1e-8)).mean(1))
        out += torch.cat(maps, 0)
    return out / 2


def _norm_scale(col, lo, hi, new_lo, new_hi):
    return (col - lo) / (hi - lo + 1e-8) * (new_hi - new_lo) + new_lo


def _comfy_audio_attention(sd, i, x, ehs, shape, ref_map):
    """SingleStreamMultiAttention.forward (SingleStreamAttention's for one speaker), B = 1."""
    p = f"blocks.{i}.audio_cross_attn."
    n_t, n_h, n_w = shape
    d = DIM // HEADS
    ehs = ehs.squeeze(0)
    q = F.linear(x.view(n_t, n_h * n_w, DIM), sd[p + "q_linear.weight"], sd[p + "q_linear.bias"])
    kv = F.linear(ehs, sd[p + "kv_linear.weight"], sd[p + "kv_linear.bias"])
    if ref_map is None or ref_map.shape[0] <= 1:
        q = q.view(n_t, n_h * n_w, HEADS, d)
        k, v = kv.view(n_t, ehs.shape[1], 2, HEADS, d).unbind(2)
        o = _attn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
        return F.linear(o.reshape(n_t, n_h * n_w, DIM), sd[p + "proj.weight"], sd[p + "proj.bias"]).view(1, -1, DIM)
    q = q.view(n_t, n_h * n_w, HEADS, d).permute(0, 2, 1, 3)
    h1, h2, bak = (0, 4), (20, 24), 12
    mx = ref_map.max(1).values[:, None, None]
    mn = ref_map.min(1).values[:, None, None]
    mm = torch.cat([mx, mn], 2)
    human1 = _norm_scale(ref_map[0], mm[0, :, 1].min(), mm[0, :, 0].max(), *h1)
    human2 = _norm_scale(ref_map[1], mm[1, :, 1].min(), mm[1, :, 0].max(), *h2)
    back = torch.full((ref_map.size(1),), bak, dtype=human1.dtype)
    idx = ref_map.argmax(0)
    pos = torch.stack([human1, human2, back], 1)[torch.arange(ref_map.size(1)), idx]
    q = rearrange(q, "(B N_t) H S C -> B H (N_t S) C", N_t=n_t)
    q = rearrange(_rope1d(q, pos), "B H (N_t S) C -> (B N_t) H S C", N_t=n_t)
    n_a = ehs.shape[1]
    k, v = kv.view(n_t, n_a, 2, HEADS, d).permute(2, 0, 3, 1, 4).unbind(0)
    per_frame = torch.zeros(n_a)
    per_frame[: n_a // 2] = (h1[0] + h1[1]) / 2
    per_frame[n_a // 2:] = (h2[0] + h2[1]) / 2
    k = rearrange(k, "(B N_t) H S C -> B H (N_t S) C", N_t=n_t)
    k = rearrange(_rope1d(k, torch.cat([per_frame] * n_t)), "B H (N_t S) C -> (B N_t) H S C", N_t=n_t)
    o = _attn(q, k, v).transpose(1, 2).reshape(n_t, n_h * n_w, DIM)
    o = F.linear(o, sd[p + "proj.weight"], sd[p + "proj.bias"])
    return rearrange(o, "(B N_t) S C -> B (N_t S) C", N_t=n_t)


def _comfy_block(blk, i, sd, embeds, masks, scale, shape):
    """ComfyUI's WanAttentionBlock.forward with MultiTalkGetAttnMapPatch (attn1_patch) and MultiTalkCrossAttnPatch
    (attn2_patch), over diffusers' block's layers."""
    def forward(hidden_states, encoder_hidden_states, temb, rotary_emb):
        e = (blk.scale_shift_table + temb.float()).chunk(6, dim=1)
        x = hidden_states
        a = blk.attn1
        h = blk.norm1(x.float()) * (1 + e[1]) + e[0]
        q = a.norm_q(a.to_q(h)).unflatten(2, (HEADS, -1))
        k = a.norm_k(a.to_k(h)).unflatten(2, (HEADS, -1))
        v = a.to_v(h).unflatten(2, (HEADS, -1))
        ang = torch.atan2(rotary_emb[1], rotary_emb[0])[..., 0::2]        # comfy's apply_rope1: pairs rotated
        rot = torch.polar(torch.ones_like(ang), ang)
        q = torch.view_as_real(torch.view_as_complex(q.reshape(*q.shape[:-1], -1, 2).contiguous()) * rot).flatten(3)
        k = torch.view_as_real(torch.view_as_complex(k.reshape(*k.shape[:-1], -1, 2).contiguous()) * rot).flatten(3)
        ref_map = _ref_attn_map(q, k, shape, masks) if masks is not None else None
        y = _attn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2).flatten(2)
        x = x + a.to_out[0](y) * e[2]
        x = x + blk.attn2(blk.norm2(x.float()), encoder_hidden_states, None, None)
        nx = F.layer_norm(x, (DIM,), sd[f"blocks.{i}.norm_x.weight"], sd[f"blocks.{i}.norm_x.bias"])
        x = x + _comfy_audio_attention(sd, i, nx, embeds, shape, ref_map) * scale
        y = blk.ffn(blk.norm3(x.float()) * (1 + e[4]) + e[3])
        return x + y * e[5]
    return forward


@pytest.fixture(scope="module")
def wan():
    """A tiny Wan 2.1 I2V transformer (2 blocks of 2 heads) and a patch for it."""
    from diffusers import WanTransformer3DModel
    from nodes.generate.infinitetalk import InfiniteTalkPatch
    torch.manual_seed(0)
    model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=DIM // HEADS,
                                  in_channels=36, out_channels=16, text_dim=32, freq_dim=32, ffn_dim=32, num_layers=2,
                                  cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
                                  image_dim=32, added_kv_proj_dim=DIM).eval()
    for prm in model.parameters():
        prm.data += 0.05 * torch.randn_like(prm)
    sd = _patch_state()
    patch = InfiniteTalkPatch(sd)
    patch.load_state_dict(sd)
    return model, patch, sd


@pytest.mark.parametrize("speakers", [1, 2])
def test_the_patched_wan_predicts_as_comfyuis_infinitetalk(wan, speakers):
    """The audio tokens of one voice (or two taking turns) and the patched model's prediction at 3 latent frames
    (a 2x2 token grid, the speakers' masks its left and right halves) equal ComfyUI's written out above; the voice
    moves the prediction."""
    from nodes.generate.infinitetalk import audio_tokens, features_per_frame, one_timeline, patched
    model, patch, sd = wan
    torch.manual_seed(speakers)
    layers = [torch.randn(LAYERS + 1, n, WIDTH) for n in (23, 17)[:speakers]]
    tokens = audio_tokens(patch, one_timeline([features_per_frame({"layers": v, "fps": 50}) for v in layers]), 4, 9)
    want_tokens = _comfy_audio_embeds(sd, layers, 4, 13)
    assert tokens.shape == (3, speakers * TOKENS, AUDIO_DIM)
    assert torch.allclose(tokens, want_tokens[0], atol=1e-5), (tokens - want_tokens[0]).abs().max()
    masks = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1]], dtype=torch.bool) if speakers == 2 else None
    x = torch.randn(1, 36, 3, 4, 4)
    text, image, t = torch.randn(1, 512, 32), torch.randn(1, 4, 32), torch.tensor([600.0])
    with torch.no_grad():
        with patched(model, patch, tokens, masks, 0.8):
            got = model(x, t, text, encoder_hidden_states_image=image, return_dict=False)[0]
        plain = model(x, t, text, encoder_hidden_states_image=image, return_dict=False)[0]
        forwards = [b.forward for b in model.blocks]
        try:
            for i, b in enumerate(model.blocks):
                b.forward = _comfy_block(b, i, sd, want_tokens, masks, 0.8, (3, 2, 2))
            want = model(x, t, text, encoder_hidden_states_image=image, return_dict=False)[0]
        finally:
            for b, f in zip(model.blocks, forwards):
                b.forward = f
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert (got - plain).abs().max() > 1e-2


# --- end to end: ComfyUI's files, the nodes, the sampler ---------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """ComfyUI's models/ folder with a tiny Wan 2.1 I2V (2 blocks, one 128-wide head), its umt5 and VAE, and an
    InfiniteTalk patch for it in model_patches/ (reading the tiny wav2vec2's 2 layers of 128); KINOGRAPH_MODELS
    points there."""
    from safetensors.torch import save_file
    from tiny_models import build_wan_comfy
    root = build_wan_comfy(tmp_path_factory.mktemp("infinitetalk"), i2v=True)
    (root / "models" / "model_patches").mkdir()
    sd = _patch_state(dim=128, width=128)
    save_file({k: v.half() for k, v in sd.items()},
              str(root / "models" / "model_patches" / "wan2.1_infiniteTalk_tiny_fp16.safetensors"))
    save_file({"controlnet_blocks.0.y_rms.weight": torch.ones(4)},
              str(root / "models" / "model_patches" / "qwen_image_canny_diffsynth_controlnet.safetensors"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KINOGRAPH_MODELS", str(root / "models"))
        yield root / "models"


GRAPH = """kinograph: 1
nodes:
  unet: {type: load.diffusion_model, params: {name: wan_tiny_i2v_fp16.safetensors}}
  clip: {type: load.text_encoder, params: {name: umt5_tiny_fp16.safetensors, type: wan}}
  vae: {type: load.vae, params: {name: wan_tiny_vae.safetensors}}
  patch: {type: load.model_patch, params: {name: %(patch)s}}
  speech: {type: load.audio_encoder, params: {name: %(encoder)s}}
  voice: {type: io.load_audio, params: {path: %(voice)s}}
  feats: {type: encode.audio, inputs: {audio_encoder: speech.audio_encoder, audio: voice.audio}}
  photo: {type: io.load_image, params: {path: %(photo)s}}
  prompt:
    type: encode.text
    inputs: {text_encoder: clip.text_encoder}
    params: {text: two people talking}
  talk:
    type: condition.infinitetalk
    inputs: {model: unet.model, model_patch: patch.model_patch, vae: vae.vae, positive: prompt.positive,
             negative: prompt.negative, audio_embeds: feats.audio_embeds, start: photo.image}
    params: {frames: 5, width: 32, height: 32, audio_scale: %(scale)s}
  sample:
    type: generate.sample
    inputs: {model: talk.model, positive: talk.positive, negative: talk.negative, latent: talk.latent}
    params: {steps: 2, cfg: 1.0, seed: 3}
"""


def test_a_photo_and_a_voice_become_a_talking_clip_through_the_nodes(files, encoder, tmp_path):  # noqa: F811
    """load.model_patch -> condition.infinitetalk -> generate.sample on ComfyUI's files (no CLIP vision, as the
    template: the image attention reads the text, as ComfyUI's Wan does without it): the clip is sampled with the
    audio attention on (another voice level, another clip) and its first latent frame is the photo's."""
    from graph_engine.api import Session, load_workflow
    from PIL import Image
    _tone(tmp_path / "voice.wav", 0.4)
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "me.png")
    args = {"patch": "wan2.1_infiniteTalk_tiny_fp16.safetensors", "encoder": str(encoder[0]),
            "voice": str(tmp_path / "voice.wav"), "photo": str(tmp_path / "me.png")}
    out = {}
    for scale in (1.0, 0.0):
        res = Session(device="cpu").run(load_workflow(text=GRAPH % dict(args, scale=scale), check=True),
                                        use_cache=False)
        assert res.ok, res.failed
        out[scale] = res.outputs
    clip = out[1.0]["sample"]["latent"].samples
    assert clip.shape == (1, 16, 2, 4, 4) and torch.isfinite(clip).all()
    assert (clip - out[0.0]["sample"]["latent"].samples).abs().max() > 1e-3
    talk = out[1.0]["talk"]
    assert talk["trim"] == 0
    assert torch.equal(talk["model"].option("infinitetalk").motion, talk["positive"].extra["concat"][:, 4:, :1])

    from nodes.generate.infinitetalk import load
    from nodes.generate.model_manager import ModelManager
    with pytest.raises(NodeError, match="a Qwen-Image DiffSynth ControlNet, not InfiniteTalk's"):
        load(ModelManager(), "qwen_image_canny_diffsynth_controlnet.safetensors")
    from nodes.generate.model_manager import describe_model        # `kinograph info` names it (was: unknown)
    info = describe_model(files / "model_patches" / "wan2.1_infiniteTalk_tiny_fp16.safetensors")
    assert (info["role"], info["loads"]) == ("model_patch", "yes") and "load.model_patch" in info["note"], info


def test_the_infinitetalk_template_imports_and_runs_two_speakers_on_tiny_weights(files, encoder, tmp_path):  # noqa: F811
    """ComfyUI's video_wan2_1_infinitetalk template: ModelPatchLoader and WanInfiniteTalkToVideo (two speakers, the
    second clip continuing the first from its last frames) import, Painter as mask.painter; the speakers' masks, drawn
    in ComfyUI's page (blank as published), are given as two drawings. The graph runs on the tiny model to the two
    clips joined with the two voices under them."""
    import av
    import imageio.v3 as iio
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from graph_engine.workflow import to_yaml
    template = Path(__file__).resolve().parent / "data" / "comfyui" / "templates" / "video_wan2_1_infinitetalk.json"
    import json
    result = import_data(json.loads(template.read_text(encoding="utf-8")))
    assert not [e for e in result.report.entries.values() if e.status == "unmapped"]
    g = result.graph
    talks = [n for n in g.nodes.values() if n.type == "condition.infinitetalk"]
    assert len(talks) == 2 and all(n.params == {"width": 832, "height": 480, "frames": 81, "motion_frames": 9,
                                                "audio_scale": 1} for n in talks)
    painters = sorted((n for n in g.nodes.values() if n.type == "mask.painter"), key=lambda n: n.id)
    assert [n.title for n in painters] == ["Painter (Draw Mask for Character 1)", "Painter (Draw Mask for Character 2)"]
    rgb = np.random.default_rng(1).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "two.png")
    for i, side in enumerate((slice(0, 24), slice(24, 48))):
        alpha = np.zeros((40, 48), np.uint8)
        alpha[:, side] = 255
        Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / f"speaker{i + 1}.png")
        painters[i].params["path"] = str(tmp_path / f"speaker{i + 1}.png")
    _tone(tmp_path / "woman.wav", 0.3)
    _tone(tmp_path / "man.wav", 0.25)
    names = {"load.diffusion_model": "wan_tiny_i2v_fp16.safetensors", "load.text_encoder": "umt5_tiny_fp16.safetensors",
             "load.vae": "wan_tiny_vae.safetensors", "load.audio_encoder": str(encoder[0]),
             "load.model_patch": "wan2.1_infiniteTalk_tiny_fp16.safetensors"}
    for n in g.nodes.values():
        if n.type in names:
            n.params["name"] = names[n.type]
        elif n.type == "lora.image":                 # no lightx2v LoRA file here: bypassed, the model passes on
            g.set_bypass(n.id, True)
        elif n.type == "io.load_audio":
            n.params["path"] = str(tmp_path / ("woman.wav" if "woman" in n.params["path"] else "man.wav"))
        elif n.type == "io.load_image":
            n.params["path"] = str(tmp_path / "two.png")
        elif n.type == "condition.infinitetalk":
            n.params.update(frames=9, width=32, height=32, motion_frames=5)
        elif n.type == "generate.sample":
            n.params["steps"] = 1
        elif n.type == "io.save_video":
            n.params["path"] = str(tmp_path / f"{n.id}.mp4")
    res = Session(device="cpu").run(load_workflow(text=to_yaml(g)), use_cache=False)
    assert res.ok, res.failed
    saved = sorted(tmp_path.glob("*.mp4"), key=lambda p: iio.imread(p).shape[0])
    # the first clip, and both joined (the second repeats the first's last 5 frames, as ComfyUI's template does)
    assert [iio.imread(p).shape for p in saved] == [(9, 32, 32, 3), (18, 32, 32, 3)]
    with av.open(str(saved[1])) as c:
        assert sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].rate > 0.5


@pytest.fixture(scope="module")
def loaded(files):
    """The tiny Wan 2.1 I2V, its VAE and the InfiniteTalk patch, loaded from the files."""
    from nodes.generate.infinitetalk import load
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_vae
    mm = ModelManager(max_loaded=4)
    return (load_diffusion_model(mm, "wan_tiny_i2v_fp16.safetensors", "default", "cpu"),
            load_vae(mm, "wan_tiny_vae.safetensors", "cpu"), load(mm, "wan2.1_infiniteTalk_tiny_fp16.safetensors").pipe)


def test_a_continuation_starts_from_the_clip_so_far_where_its_voices_go_on(loaded):
    """condition.infinitetalk with `previous` (ComfyUI's previous_frames): the audio tokens start where its last
    5 frames do (two voices taking turns, as ComfyUI's), those frames' latent starts the model's input and the
    result, `trim` says to drop them, and the speakers' masks are read at the token grid (nearest)."""
    from graph_engine import Clip
    from PIL import Image
    from nodes.generate.adapters import get_adapter
    from nodes.generate.infinitetalk import KeepMotion, condition
    from nodes.generate.latent import Conditioning
    model, vae, patch = loaded
    torch.manual_seed(4)
    layers = [torch.randn(LAYERS + 1, 40, 128), torch.randn(LAYERS + 1, 30, 128)]
    rng = np.random.default_rng(2)
    so_far = Clip.from_array(rng.integers(0, 255, (13, 32, 32, 3), dtype=np.uint8), 25.0)
    left = np.zeros((48, 40), np.float32)
    left[:, :20] = 1
    pos = Conditioning("wan", torch.zeros(1, 4, 32))
    out = condition(model, patch, vae, pos, None, [{"layers": v, "fps": 50} for v in layers], [left, 1 - left],
                    rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), None, so_far, 9, 32, 32, 5, 1.0)
    talk = out["model"].option("infinitetalk")
    want = _comfy_audio_embeds(_patch_state(dim=128, width=128), layers, 8, 17)[0]
    assert torch.allclose(talk.tokens, want, atol=1e-5), (talk.tokens - want).abs().max()
    assert talk.masks.tolist() == [[True, False, True, False], [False, True, False, True]]
    px = vae.pipe.video_processor.preprocess([Image.fromarray(f) for f in so_far.frames(8, 13)], height=32, width=32)
    with torch.no_grad():
        motion = get_adapter("wan").vae_encode(vae.pipe, px.permute(1, 0, 2, 3)[None])
    assert talk.motion.shape == (1, 16, 2, 4, 4) and torch.allclose(talk.motion, motion, atol=1e-5)
    assert out["trim"] == 5 and isinstance(out["model"].run_wrappers[-1], KeepMotion)
    assert out["latent"].samples.shape == (1, 16, 3, 4, 4)
    with pytest.raises(NodeError, match="two voices need both speakers' masks"):
        condition(model, patch, vae, pos, None, [{"layers": v, "fps": 50} for v in layers], [left])
    with pytest.raises(NodeError, match="one voice needs none"):
        condition(model, patch, vae, pos, None, [{"layers": layers[0], "fps": 50}], [left])
    # masks drawn at two sizes are each read at the token grid; an empty one (a Painter left blank) is named
    right = np.zeros((12, 10), np.float32)
    right[:, 5:] = 1
    other = condition(model, patch, vae, pos, None, [{"layers": v, "fps": 50} for v in layers], [left, right],
                      None, None, None, 9, 32, 32)
    assert other["model"].option("infinitetalk").masks.tolist() == talk.masks.tolist()
    with pytest.raises(NodeError, match="mask_2 covers none of the video's 4 patches.*give the mask.painter feeding "
                                        "it a drawing"):
        condition(model, patch, vae, pos, None, [{"layers": v, "fps": 50} for v in layers], [left, 0 * right],
                  None, None, None, 9, 32, 32)


def test_the_motion_frames_x0_is_read_from_the_clean_frames_whatever_the_sampler_holds_there(loaded):
    """ComfyUI's InfiniteTalk writes the motion frames into the model's input in place, so their x0 is the clean
    latent less sigma times the prediction: what the sampler drew there never reaches the result (else the photo's
    frame comes out as the noise it started from, moved by predictions made for another input)."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.infinitetalk import condition
    from nodes.generate.latent import Conditioning
    from nodes.generate.sampling import guided_model_fn
    model, vae, patch = loaded
    torch.manual_seed(5)
    out = condition(model, patch, vae, Conditioning("wan", torch.zeros(1, 4, 32)), None,
                    [{"layers": torch.randn(LAYERS + 1, 20, 128), "fps": 50}], [],
                    np.random.default_rng(3).integers(0, 255, (32, 32, 3), dtype=np.uint8), None, None, 5, 32, 32)
    predict = guided_model_fn(out["model"], get_adapter("wan"), out["positive"], None, 1.0, 1, "cpu", torch.float32,
                              2)
    drawn = torch.randn(1, 16, 2, 4, 4)
    other = drawn.clone()
    other[:, :, :1] = torch.randn(1, 16, 1, 4, 4)
    with torch.no_grad():
        a, b = predict(drawn, 0.7), predict(other, 0.7)
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
