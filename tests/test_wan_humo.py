"""HuMo (ByteDance's human video from a reference photo, a prompt and a voice, on Wan 2.1) as a ComfyUI creator
brings it: humo_17B_*.safetensors in diffusion_models/ (Wan's original names plus `audio_proj.*` and every block's
`audio_cross_attn_wrapper.*`), whisper_large_v3_fp16.safetensors in audio_encoders/ and the template
video_humo.json. The model here is a tiny random one in that layout; its prediction is compared with ComfyUI's
HumoWanModel forward written out below over the file's own tensors."""
import math

import pytest
import torch

from graph_engine import NodeError

# A tiny HuMo 17B-like file: 36 input channels (noise, a 4-channel mask, the image latent), 2 blocks of one 128-wide
# head; its voice projection reads 8 frames x 5 groups of 8-wide whisper features into 16 tokens 24 wide.
DIM, LAYERS, TEXT, WHISPER, KV, TOKENS = 128, 2, 32, 8, 24, 16


def _humo_state(in_channels):
    from diffusers import WanTransformer3DModel
    from tiny_models import wan_original_transformer
    torch.manual_seed(3)
    wan = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128,
                                in_channels=in_channels, out_channels=16, text_dim=TEXT, freq_dim=256, ffn_dim=32,
                                num_layers=LAYERS, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                rope_max_seq_len=32)
    sd = wan_original_transformer(wan.state_dict())
    for k in sd:                        # modulations and norms away from 0 / 1: a wrong one shows
        sd[k] = sd[k] + 0.05 * torch.randn_like(sd[k])
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
    from safetensors.torch import save_file
    from tiny_wan22 import save_umt5, save_wan_vae
    models = tmp_path_factory.mktemp("humo") / "models"
    for sub in ("diffusion_models", "vae", "text_encoders", "audio_encoders"):
        (models / sub).mkdir(parents=True)
    save_umt5(models)
    save_wan_vae(models)
    sd = _humo_state(36)
    path = models / "diffusion_models" / "humo_tiny_fp16.safetensors"
    save_file({k: v.half().contiguous() for k, v in sd.items()}, str(path))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                # tiny tensors: one thread is faster than waiting for several
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KINOGRAPH_MODELS", str(models))
        yield path, sd
    torch.set_num_threads(threads)


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

    def lin(v, k):
        return F.linear(v, sd[k + ".weight"], sd.get(k + ".bias"))

    def rms(v, k):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-6) * sd[k + ".weight"]

    def ln(v, k=None, eps=1e-6):
        return F.layer_norm(v, v.shape[-1:], sd.get(f"{k}.weight"), sd.get(f"{k}.bias"), eps=eps)

    def ids(t_len, h_len, w_len, t0=0):
        g = torch.zeros(t_len, h_len, w_len, 3, dtype=torch.float64)
        g[..., 0] += torch.arange(t0, t0 + t_len, dtype=torch.float64).view(-1, 1, 1)
        g[..., 1] += torch.arange(h_len, dtype=torch.float64).view(1, -1, 1)
        g[..., 2] += torch.arange(w_len, dtype=torch.float64).view(1, 1, -1)
        return g.reshape(-1, 3)

    def rope(v, pos):                    # flux's EmbedND / apply_rope1: pairs rotated by 2x2 matrices
        d = v.shape[-1]
        rows = []
        for axis, n in enumerate((d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6))):
            omega = 1.0 / 10000 ** torch.linspace(0, (n - 2) / n, n // 2, dtype=torch.float64)
            rows.append(pos[:, axis, None] * omega)
        ang = torch.cat(rows, 1).float()
        pair = v.reshape(*v.shape[:-1], -1, 2)
        c, s = ang.cos(), ang.sin()
        return torch.stack([c * pair[..., 0] - s * pair[..., 1], s * pair[..., 0] + c * pair[..., 1]], -1).flatten(-2)

    def attend(q, k, vv):
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ vv

    b, _, time, hh, ww = x.shape
    # WAN21_HuMo: c_concat (4 zero mask channels, the empty clip's latent) after the noise; the reference latent as
    # zeros, ones and its latent
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
        q, k = rope(rms(lin(h, p + "self_attn.q"), p + "self_attn.norm_q"), pos), \
            rope(rms(lin(h, p + "self_attn.k"), p + "self_attn.norm_k"), pos)
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
