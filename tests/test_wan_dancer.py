"""WanDancer (Wan 2.2 14B music-driven image-to-video) as a ComfyUI creator brings it: wan2.2_dancer_14b_global_* and
wan2.2_dancer_14b_local_* in diffusion_models/ (Wan 2.1 i2v's original names plus `patch_embedding_global`,
`img_emb_refimage`, `head_global`, `music_projection`, `music_encoder` and `music_injector`). The model here is a tiny
random one in that layout; its prediction is compared with ComfyUI's WanDancerModel forward
(comfy/ldm/wan/model_wandancer.py, its AudioInjector_WAN and WanI2VCrossAttention in comfy/ldm/wan/model.py)
written out below over the file's own tensors."""
import math

import pytest
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from tiny_wan22 import comfy_ops, comfy_rope

# one 128-wide head, 28 blocks (the last music layer follows block 27), CLIP tokens 24 wide, 35 music features into
# a 32-wide music encoder of 4 heads
DIM, LAYERS, TEXT, CLIPW, MUSIC, MDIM = 128, 28, 32, 24, 35, 32
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
    """(the loaded transformer, its file's tensors) of the tiny WanDancer file."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_diffusion_model
    sd = _dancer_state()
    path = tmp_path_factory.mktemp("dancer") / "wan2.2_dancer_tiny_global.safetensors"
    save_file({k: v.half().contiguous() for k, v in sd.items()}, str(path))
    info = describe_model(path)
    assert info["loads"] == "yes" and "WanDancer" in info["note"], info
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield load_diffusion_model(ModelManager(max_loaded=1), str(path), "default", "cpu").pipe.transformer, sd
    finally:
        torch.set_num_threads(threads)


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
    model, sd = dancer
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
    model, _ = dancer
    x, text, clip, ref, music = _inputs(4)
    t = torch.tensor([300.0])
    with torch.no_grad():
        a = forward(model, x, t, text, clip, ref, music, 6.0, 1.0)
        b = forward(model, x, t, text, clip, ref, music, 30.0, 1.0)
    assert (a - b).abs().max() > 1e-2


def test_bad_dancer_inputs_are_named(dancer):
    from nodes.generate.wan_dancer import forward
    model, _ = dancer
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
