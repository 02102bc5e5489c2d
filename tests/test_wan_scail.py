"""SCAIL-2 (zai-org's character animation on Wan 2.1 I2V-14B) as a ComfyUI user brings it: wan2.1_14B_SCAIL_2_*.safetensors
in diffusion_models/ (Wan 2.1 I2V's tensor names plus patch_embedding_pose and patch_embedding_mask). The model here is a
tiny random one in that layout; its prediction is compared with ComfyUI's SCAILWanModel / SCAIL2WanModel
(comfy/ldm/wan/model.py) written out below over the file's own tensors, in animation and replacement mode, and the colour
masks and their 28 channels with comfy_extras/nodes_scail.py's SCAIL2ColoredMask and _extract_mask_to_28ch, also
written out here."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graph_engine import NodeError
from tiny_wan22 import comfy_ops, comfy_rope, on_tiny_files, save_clip_vision, tiny_wan_folder

TEMPLATES = Path(__file__).resolve().parent / "data" / "comfyui" / "templates"
HEADS, LAYERS, TEXT, CLIP = 1, 2, 32, 32      # CLIP: the tiny clip_vision's width
DIM = 128 * HEADS


def _state():
    """A tiny SCAIL-2 transformer in ComfyUI's key names: Wan 2.1 I2V reading 20 channels, plus the pose (20) and
    mask (28) patch embeddings, every tensor moved off its initial value so a wrong one shows."""
    from diffusers import WanTransformer3DModel
    from tiny_models import wan_original_transformer
    torch.manual_seed(5)
    wan = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=128,
                                in_channels=20, out_channels=16, text_dim=TEXT, freq_dim=256, ffn_dim=32,
                                num_layers=LAYERS, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                image_dim=CLIP, added_kv_proj_dim=DIM, rope_max_seq_len=32)
    sd = wan_original_transformer(wan.state_dict())
    sd["patch_embedding_pose.weight"] = torch.randn(DIM, 20, 1, 2, 2) * 0.1
    sd["patch_embedding_pose.bias"] = torch.randn(DIM) * 0.1
    sd["patch_embedding_mask.weight"] = torch.randn(DIM, 28, 1, 2, 2) * 0.1
    sd["patch_embedding_mask.bias"] = torch.randn(DIM) * 0.1
    return {k: (v + 0.05 * torch.randn_like(v)).half().float() for k, v in sd.items()}


@pytest.fixture(scope="module")
def scail(tmp_path_factory):
    """(the file, its tensors, the loaded model handle) of the tiny SCAIL-2, fp16, in a ComfyUI models/ folder with a
    tiny umt5, Wan 2.1 VAE, CLIP vision and SAM 3 (where the import reads ComfyUI's sam3.1 file) beside it."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tests.tiny_models import build_sam3_video
    sd = _state()
    with tiny_wan_folder(tmp_path_factory.mktemp("scail"), "wan2.1_14B_SCAIL_2_tiny_fp16.safetensors", sd) as path:
        save_clip_vision(path.parents[1])
        build_sam3_video(path.parents[1] / "sam2" / "sam3")
        yield path, sd, load_diffusion_model(ModelManager(max_loaded=3), str(path), "default", "cpu")


# --- ComfyUI's SCAILWanModel / SCAIL2WanModel, written out --------------------------------------------------------
def _ids(t_len, h_len, w_len, t0=0.0, h0=0.0, w0=0.0, sy=1.0, sx=1.0):
    """WanModel.rope_encode's positions with rope_options: each axis linspace(start, start + (n - 1) * scale, n)."""
    g = torch.zeros(t_len, h_len, w_len, 3, dtype=torch.float64)
    g[..., 0] += torch.linspace(t0, t0 + t_len - 1, t_len, dtype=torch.float64).view(-1, 1, 1)
    g[..., 1] += torch.linspace(h0, h0 + (h_len - 1) * sy, h_len, dtype=torch.float64).view(1, -1, 1)
    g[..., 2] += torch.linspace(w0, w0 + (w_len - 1) * sx, w_len, dtype=torch.float64).view(1, 1, -1)
    return g.reshape(-1, 3)


def _positions(f, gh, gw, ref_t, pose, flag):
    """SCAILWanModel.rope_encode: (main, pose) positions; flag False is SCAIL-2's replacement mode."""
    parts = []
    if flag is not None and not flag:
        start = max(ref_t - 1, 0)
        if ref_t:
            parts.append(_ids(ref_t, gh, gw, h0=120.0))
        parts.append(_ids(f, gh, gw, t0=start))
    else:
        start = ref_t
        parts.append(_ids(ref_t + f, gh, gw))
    if pose is not None:
        fp, hp, wp = pose
        sy, sx = gh / hp, gw / wp
        parts.append(_ids(fp, hp, wp, t0=start, h0=(sy - 1) / 2, w0=120.0 + (sx - 1) / 2, sy=sy, sx=sx))
    return torch.cat(parts)


def _reference(sd, x, t, context, clip, ref=None, pose=None, ref_mask=None, sam=None, flag=None):
    """SCAILWanModel._forward / forward_orig over the file's tensors (x: the 20 input channels)."""
    lin, rms, ln = comfy_ops(sd)

    def conv(v, k):
        return F.conv3d(v, sd[k + ".weight"], sd[k + ".bias"], stride=(1, 2, 2))

    def heads(v):
        return v.view(v.shape[0], v.shape[1], HEADS, -1).transpose(1, 2)

    def attend(q, k, vv):
        return (torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ vv).transpose(1, 2).flatten(2)

    b, _, f, hh, ww = x.shape
    gh, gw = hh // 2, ww // 2
    ref_t = 0 if ref is None else ref.shape[2]
    xin = x if ref is None else torch.cat([ref, x], 2)
    v = conv(xin, "patch_embedding")
    if ref_mask is not None:
        v = v + conv(ref_mask, "patch_embedding_mask")
    v = v.flatten(2).transpose(1, 2)
    posed = 0
    if pose is not None:
        p = conv(pose, "patch_embedding_pose")
        if sam is not None:
            p = p + conv(sam, "patch_embedding_mask")
        p = p.flatten(2).transpose(1, 2)
        posed = p.shape[1]
        v = torch.cat([v, p], 1)
    pos = _positions(f, gh, gw, ref_t, None if pose is None else (pose.shape[2], pose.shape[3] // 2,
                                                                  pose.shape[4] // 2), flag)
    sinus = torch.outer(t.double(), torch.pow(10000, -torch.arange(128, dtype=torch.float64) / 128))
    e = torch.cat([sinus.cos(), sinus.sin()], 1).float()
    e = lin(F.silu(lin(e, "time_embedding.0")), "time_embedding.2").reshape(b, -1, DIM)
    e0 = lin(F.silu(e), "time_projection.1").unflatten(2, (6, DIM))
    c = lin(F.gelu(lin(context, "text_embedding.0"), approximate="tanh"), "text_embedding.2")
    img = ln(lin(F.gelu(lin(ln(clip, "img_emb.proj.0", 1e-5), "img_emb.proj.1")), "img_emb.proj.3"),
             "img_emb.proj.4", 1e-5)
    for i in range(LAYERS):
        pre = f"blocks.{i}."
        m = (sd[pre + "modulation"].unsqueeze(0) + e0).unbind(2)
        h = ln(v) * (1 + m[1]) + m[0]
        q = comfy_rope(heads(rms(lin(h, pre + "self_attn.q"), pre + "self_attn.norm_q")), pos)
        k = comfy_rope(heads(rms(lin(h, pre + "self_attn.k"), pre + "self_attn.norm_k")), pos)
        v = v + lin(attend(q, k, heads(lin(h, pre + "self_attn.v"))), pre + "self_attn.o") * m[2]
        h = ln(v, pre + "norm3")
        q = heads(rms(lin(h, pre + "cross_attn.q"), pre + "cross_attn.norm_q"))
        out = attend(q, heads(rms(lin(c, pre + "cross_attn.k"), pre + "cross_attn.norm_k")),
                     heads(lin(c, pre + "cross_attn.v")))
        out = out + attend(q, heads(rms(lin(img, pre + "cross_attn.k_img"), pre + "cross_attn.norm_k_img")),
                           heads(lin(img, pre + "cross_attn.v_img")))
        v = v + lin(out, pre + "cross_attn.o")
        h = ln(v) * (1 + m[4]) + m[3]
        v = v + lin(F.gelu(lin(h, pre + "ffn.0"), approximate="tanh"), pre + "ffn.2") * m[5]
    hm = (sd["head.modulation"].unsqueeze(0) + e.unsqueeze(2)).unbind(2)
    out = lin(ln(v) * (1 + hm[1]) + hm[0], "head.head")
    if posed:
        out = out[:, :-posed]
    n = ref_t + f
    out = out.view(b, n, gh, gw, 1, 2, 2, 16)
    return torch.einsum("bfhwpqrc->bcfphqwr", out).reshape(b, 16, n, hh, ww)[:, :, ref_t:]


def test_the_file_loads_as_scail2_and_predicts_as_comfyuis_model(scail):
    """The file is told apart by its pose and mask patch embeddings and loads with them; its prediction for a
    2-latent-frame clip with the reference frame, the pose latents at half the size and both colour masks equals
    ComfyUI's model written out above, in animation mode (rope of one clip, pose 120 columns across) and replacement
    mode (the reference 120 rows down, the video from its frame); without the pose, too."""
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import describe_model
    from nodes.generate.wan_scail import forward, is_scail, is_scail2
    path, sd, handle = scail
    det = detect_file(path)
    assert (det.family, det.variant) == ("wan", "scail2-dim128")
    info = describe_model(path)
    assert info["loads"] == "yes" and "condition.wan_scail" in info["note"], info
    model = handle.pipe.transformer
    assert is_scail(model) and is_scail2(model)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 20, 2, 4, 8, generator=g)
    ref = torch.cat([torch.randn(1, 16, 1, 4, 8, generator=g), torch.ones(1, 4, 1, 4, 8)], 1)
    pose = torch.cat([torch.randn(1, 16, 2, 2, 4, generator=g), torch.ones(1, 4, 2, 2, 4)], 1)
    ref_mask = torch.cat([(torch.rand(1, 28, 1, 4, 8, generator=g) > 0.5).float(), torch.zeros(1, 28, 2, 4, 8)], 2)
    sam = (torch.rand(1, 28, 2, 2, 4, generator=g) > 0.5).float()
    text, clip = torch.randn(1, 7, TEXT, generator=g), torch.randn(1, 4, CLIP, generator=g)
    t = torch.tensor([640.0])
    with torch.no_grad():
        for flag in (True, False, None):
            got = forward(model, x, t, text, clip, ref, pose, ref_mask, sam, replacement=flag is False)
            want = _reference(sd, x, t, text, clip, ref, pose, ref_mask, sam, flag)
            assert got.shape == (1, 16, 2, 4, 8)
            assert torch.allclose(got, want, atol=2e-4), (flag, (got - want).abs().max())
        bare = forward(model, x, t, text, clip, ref)
        assert torch.allclose(bare, _reference(sd, x, t, text, clip, ref), atol=2e-4)
    assert (bare - got).abs().max() > 1e-2          # the pose moves it
    import copy
    preview = copy.deepcopy(model)      # SCAIL-Preview (no mask embedding): ComfyUI's SCAILWanModel has no replacement
    del preview.patch_embedding_mask    # mode, its rope is the animation one whatever the conditioning's mode
    with torch.no_grad():
        got = forward(preview, x, t, text, clip, ref, pose, replacement=True)
    assert torch.allclose(got, _reference(sd, x, t, text, clip, ref, pose), atol=2e-4)
    # frames held from a previous clip (noise mask 0 on the first): SCAIL-2 reads them in its 4 history channels
    # and holds them clean (WAN21_SCAIL2.concat_cond / scale_latent_inpaint); SCAIL-Preview's are zeros and its kept
    # frames are noised as any model's (WAN21_SCAIL has neither)
    from types import SimpleNamespace
    from nodes.generate.adapters.wan import WanAdapter
    held = torch.ones(1, 1, 2, 4, 8)
    held[:, :, 0] = 0.0
    inputs = {"scail": {"replacement": False, "pose_window": (0.0, 1.0), "reference": ref, "pose": pose},
              "encoder_hidden_states": text, "encoder_hidden_states_image": clip, "noise_mask": held}
    with torch.no_grad():
        for den, history in ((model, (1 - held).expand(1, 4, 2, 4, 8)), (preview, torch.zeros(1, 4, 2, 4, 8))):
            got = WanAdapter()._scail(handle, den, x[:, :16], t, inputs)
            want = _reference(sd, torch.cat([x[:, :16], history], 1), t, text, clip, ref, pose)
            assert torch.allclose(got, want, atol=2e-4)
    pipes = (SimpleNamespace(vae=None, transformer=m, vae_scale_factor_temporal=4, vae_scale_factor_spatial=8)
             for m in (model, preview))
    assert [WanAdapter().keeps_clean(SimpleNamespace(pipe=p)) for p in pipes] == [True, False]
    from nodes.generate.adapters.wan import WanAdapter
    with pytest.raises(NodeError, match="through condition.wan_scail"):     # made for another Wan model
        WanAdapter().forward(handle, x[:, :16], t, {"encoder_hidden_states": text, "concat": x[:, :4]})
    with pytest.raises(NodeError, match="divisible by 32"):
        forward(model, x, t, text, clip, ref, pose[:, :, :, :, :3])


# --- comfy_extras/nodes_scail.py, written out ----------------------------------------------------------------------
PALETTE = [(0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0), (1.0, 1.0, 0.0)]
# comfy/latent_formats.py Wan21: what ComfyUI's model normalises a VAE latent with (process_in)
WAN21_MEAN = torch.tensor([-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                           0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]).view(1, 16, 1, 1, 1)
WAN21_STD = torch.tensor([2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                          3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]).view(1, 16, 1, 1, 1)


def _comfy_28ch(rgb_video):
    """_extract_mask_to_28ch, then WAN21_SCAIL2.extra_conds' movedim(1, 2)."""
    T, H, W, _ = rgb_video.shape
    mask = rgb_video.movedim(-1, 1).float()
    R, G, B = ((mask[:, i:i + 1] > 225.0 / 255.0).float() for i in range(3))
    nR, nG, nB = 1 - R, 1 - G, 1 - B
    binary_7ch = torch.cat([R * G * B, R * nG * nB, nR * G * nB, nR * nG * B, R * G * nB, R * nG * B, nR * G * B], 1)
    H_lat, W_lat = H, W
    for _ in range(3):
        H_lat, W_lat = (H_lat + 1) // 2, (W_lat + 1) // 2
    binary_7ch = F.interpolate(binary_7ch, size=(H_lat, W_lat), mode='area')
    T_latent = (T - 1) // 4 + 1
    padded = torch.cat([binary_7ch[:1].repeat(4, 1, 1, 1), binary_7ch[1:]], dim=0)
    return padded.view(T_latent, 28, H_lat, W_lat).unsqueeze(0).movedim(1, 2)


def _comfy_colored(masks_bool, sort_by, object_indices, background):
    """SCAIL2ColoredMask's _prep and _render_colored_masks on unpacked masks [T, N, H, W] (bool)."""
    if sort_by != "none" and masks_bool.shape[1]:
        m = masks_bool.float()
        T, H, W = m.shape[0], m.shape[-2], m.shape[-1]
        grid_x = torch.arange(W, dtype=m.dtype).view(1, 1, 1, W)
        area_t = m.sum(dim=(-1, -2))
        cx_t = (m * grid_x).sum(dim=(-1, -2)) / area_t.clamp(min=1)
        first_t = torch.where(area_t > 0, torch.arange(T).unsqueeze(1), T).amin(dim=0)
        sel = first_t.clamp(max=T - 1).unsqueeze(0)
        first_t, cx, area = first_t.tolist(), (cx_t.gather(0, sel).squeeze(0) / W).tolist(), \
            (area_t.gather(0, sel).squeeze(0) / (H * W)).tolist()
        if sort_by == "left_to_right":
            order = sorted(range(len(cx)), key=lambda i: (first_t[i], cx[i]))
        else:
            order = sorted(range(len(area)), key=lambda i: (first_t[i], -area[i]))
        masks_bool = masks_bool[:, order]
    if object_indices.strip():
        indices = [int(i.strip()) for i in object_indices.split(",") if i.strip().isdigit()]
        masks_bool = masks_bool[:, [i for i in indices if 0 <= i < masks_bool.shape[1]]]
    T, N, H, W = masks_bool.shape
    bg = torch.tensor((1.0, 1.0, 1.0) if background == "white" else (0.0, 0.0, 0.0)).view(1, 1, 1, 3)
    if N == 0:
        return bg.expand(T, H, W, 3)
    colors = torch.tensor([PALETTE[i % len(PALETTE)] for i in range(N)])
    overlay = colors[masks_bool.to(torch.uint8).argmax(dim=1)]
    return torch.where(masks_bool.any(dim=1).unsqueeze(-1), overlay, bg.expand_as(overlay))


def test_colour_masks_and_their_28_channels_are_comfyuis():
    """Three tracked objects (one appearing late, overlapping another) painted for each sort and a chosen subset, on
    black and on white, as SCAIL2ColoredMask paints them; their 28 channels (after the area resize) as
    _extract_mask_to_28ch makes them, 9 frames to 3 latent frames, odd sizes rounded up."""
    from nodes.generate.wan_scail_cond import mask_channels, painted, picked
    g = torch.Generator().manual_seed(1)
    masks = torch.rand(9, 3, 20, 28, generator=g) > 0.6
    masks[:4, 2] = False                                 # object 2 first appears on frame 4
    for sort_by in ("none", "left_to_right", "area"):
        for indices in ("", "2,0", "7"):
            for white in (False, True):
                got = painted(masks[:, picked(masks, sort_by, indices)], white)
                want = _comfy_colored(masks, sort_by, indices, "white" if white else "black")
                assert torch.equal(got, want), (sort_by, indices, white)
    rgb = painted(masks, True)
    assert torch.equal(mask_channels(rgb), _comfy_28ch(rgb))
    odd = torch.rand(5, 21, 27, 3, generator=g)
    assert torch.equal(mask_channels(odd), _comfy_28ch(odd))
    assert mask_channels(odd).shape == (1, 28, 2, 3, 4)


def test_the_colour_mask_node_paints_one_tracked_person(tmp_path):
    """mask.scail_colors on a mask clip (the person mask.segment tracks) and a still reference mask: the driving
    masks blue on white in replacement mode, the reference's on black; without a reference, a plain white (animation)
    or black (replacement) picture of the driving video's size."""
    from graph_engine import Clip
    from nodes.generate.wan_scail_nodes import scail_colors
    m = np.zeros((5, 16, 24, 3), np.uint8)
    m[:, 4:10, 6:12] = 255
    clip = Clip.from_array(m, fps=12.0)
    still = np.zeros((16, 24), np.float32)
    still[2:8, 3:9] = 1.0
    out = scail_colors(None, clip, still, "", "left_to_right", True, 24.0)
    video = out["pose_mask"].frames(0, 5)
    assert out["pose_mask"].fps == 12.0
    assert (video[:, 4:10, 6:12] == [0, 0, 255]).all() and (video[:, :4] == 255).all()
    ref = out["reference_mask"]
    assert (ref[2:8, 3:9] == [0, 0, 255]).all() and (ref[:2] == 0).all()
    plain = scail_colors(None, clip, None, "", "none", False, 24.0)
    assert plain["reference_mask"].shape == (16, 24, 3) and (plain["reference_mask"] == 255).all()
    assert (plain["pose_mask"].frames(0, 1)[0, :4] == 0).all()
    # each MASK is one person here (mask.segment: one mask of all it tracks): indices that leave it out would paint
    # nothing, silently, where ComfyUI's track keeps the person asked for
    assert (scail_colors(None, clip, still, "0", "none", True, 24.0)["pose_mask"].frames(0, 5) == video).all()
    with pytest.raises(NodeError, match="indices '1, 2'.*one person"):
        scail_colors(None, clip, still, "1, 2", "none", True, 24.0)


def test_condition_lays_out_wan_scail_to_video(scail):
    """condition.wan_scail against ComfyUI's WanSCAILToVideo written out (its VAE encode being the same tiny Wan
    VAE's): replacement mode, the reference cropped and resized bicubic and blacked out off its mask's matte, the pose
    video and its colour masks from the offset (moved back by the 5 held frames), cut to 4n+1 frames and resized
    (area) to half the size, the pose's VAE latent times its strength before the model normalises it, the 28 mask
    channels of both, the previous clip's last 5 frames in the latent's first 2 frames with the noise mask 0
    there."""
    from graph_engine.clip import Clip
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.latent import Conditioning
    from nodes.generate.wan_scail_cond import scail_condition
    from tests.test_comfy_image_utils import _comfy_upscale_center as up
    vae = load_vae(ModelManager(max_loaded=2), "wan_tiny_vae.safetensors", "cpu")
    g = np.random.default_rng(4)

    def u8(*shape):
        return (g.random(shape) * 255).astype(np.uint8)
    reference, pose, previous = u8(40, 24, 3), u8(11, 20, 48, 3), u8(7, 32, 64, 3)
    matte = np.zeros((40, 24, 3), np.uint8)
    matte[8:30, 4:20] = (0, 0, 255)
    colours = np.zeros((11, 20, 48, 3), np.uint8)
    colours[:, 4:16, 10:30] = (255, 255, 255)
    colours[:, 6:12, 14:22] = (0, 0, 255)
    pos = Conditioning(torch.randn(1, 5, 8), None, None, [0])
    out = scail_condition(vae, pos, pos, 64, 32, 9, Clip.from_array(pose), Clip.from_array(colours), True, 0.7, 0.0,
                          1.0, reference, matte, None, 3, 5, Clip.from_array(previous))

    def raw(img):                               # ComfyUI's vae.encode: the VAE's own latent, not yet normalised
        with torch.no_grad():
            px = (img * 2 - 1).permute(3, 0, 1, 2)[None].to(vae.pipe.vae.dtype)
            return vae.pipe.vae.encode(px).latent_dist.mode().float()

    def encode(img, strength=1.0):              # ... times a strength, then the model's process_latent_in (Wan21)
        return (raw(img) * strength - WAN21_MEAN) / WAN21_STD

    def f(a):                                   # a uint8 picture or clip -> ComfyUI's IMAGE [B, H, W, 3]
        t = torch.from_numpy(a).float() / 255.0
        return t[None] if t.ndim == 3 else t

    def fit(img, w, h, method):
        return up(img.movedim(-1, 1), w, h, method).movedim(1, -1)
    # WanSCAILToVideo.execute
    offset = max(0, 3 - 5)
    ref = fit(f(reference), 64, 32, "bicubic")
    rm = fit(f(matte), 64, 32, "nearest-exact")
    ref = ref * (rm[..., :3].max(dim=-1, keepdim=True).values > 0.1).to(ref.dtype)
    kept = ((min(11 - offset, 11 - offset, 9) - 1) // 4) * 4 + 1
    pose_latent = encode(fit(f(pose)[offset:][:kept], 32, 16, "area"), 0.7)
    driving = _comfy_28ch(fit(f(colours)[offset:][:kept], 32, 16, "area"))
    ref_mask = _comfy_28ch(fit(f(matte), 64, 32, "nearest-exact"))
    ref_mask = torch.cat([ref_mask, torch.zeros(1, 28, 3, 4, 8)], 2)
    prev = encode(fit(f(previous)[-5:], 64, 32, "bicubic"))
    e = out["positive"].extra
    assert torch.allclose(e["scail_reference"], torch.cat([encode(ref), torch.ones(1, 4, 1, 4, 8)], 1), atol=1e-5)
    assert torch.allclose(e["scail_pose"], torch.cat([pose_latent, torch.ones(1, 4, 3, 2, 4)], 1), atol=1e-5)
    assert torch.equal(e["scail_sam"], driving) and torch.equal(e["scail_ref_mask"], ref_mask)
    latent = out["latent"]
    assert torch.allclose(latent.samples[:, :, :2], prev[:, :, :2], atol=1e-5) and not latent.samples[:, :, 2:].any()
    assert latent.mask[0, 0, :, 0, 0].tolist() == [0.0, 0.0, 1.0] and out["offset"] == offset + 9
    assert out["positive"].meta["scail_replacement"] is True


@pytest.mark.parametrize("template", ["video_wan21_scail2_character_replacement.json"])
def test_imported_template_runs_the_base_clip_and_its_extension(scail, template, tmp_path):
    """ComfyUI's SCAIL-2 character replacement template, imported (every node mapped) and run on tiny files: SAM 3
    tracks the prompt's "human" in the driving video and the reference, each person apart (mask.segment_objects,
    SCAIL2ColoredMask exact), mask.scail_colors paints them,
    condition.wan_scail conditions a base clip of 9 frames and an extension from frame 4 holding the base clip's last
    5; the extension's first 5 frames dropped, colour-matched to the base clip's last frame and joined to it: 13
    frames. (The template's chunks are 81 frames from 76; here 9 from 4, as its arithmetic gives for 9.)"""
    import imageio.v3 as iio
    from PIL import Image

    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    from graph_engine.clip import Clip
    from nodes.io.video_write import write_video
    path, _, _ = scail
    result = import_workflow(TEMPLATES / template)
    assert not [e.class_type for e in result.report.entries.values() if e.status == "unmapped"]
    assert {e.status for e in result.report.entries.values() if e.class_type == "SCAIL2ColoredMask"} == {"exact"}
    graph = result.graph
    colours = [n for n in graph.nodes.values() if n.type == "mask.scail_colors"]
    assert colours and all(graph.nodes[graph.inputs[n.id][port][0]].type == "mask.segment_objects"
                           for n in colours for port in ("driving", "reference"))
    g = np.random.default_rng(0)
    base = (g.random((32, 64, 3)) * 255).astype(np.uint8)
    write_video(Clip.from_array(np.stack([np.roll(base, 2 * i, axis=1) for i in range(13)]), fps=8),
                str(tmp_path / "drive.mkv"), codec="ffv1")
    Image.fromarray((g.random((40, 24, 3)) * 255).astype(np.uint8)).save(tmp_path / "me.png")
    on_tiny_files(graph, {"load.diffusion_model": path.name, "load.vae": "wan_tiny_vae.safetensors",
                          "load.text_encoder": "umt5_tiny_fp16.safetensors",
                          "load.clip_vision": "clip_vision_tiny.safetensors"},
                  tmp_path / "none.wav", tmp_path / "me.png", tmp_path / "out.mp4")
    chunks = 0
    for n in graph.nodes.values():
        if n.type == "io.load_video":
            n.params["path"] = str(tmp_path / "drive.mkv")
        elif n.type in ("video.scale", "condition.wan_scail"):
            n.params.update(width=64, height=32)
        elif n.type == "mask.segment_objects":
            n.params["threshold"] = 0.0             # random weights: whatever the tiny SAM 3 finds
        elif n.type == "video.trim" and n.params.get("count") == 81:
            n.params.update(start=4 * chunks and 4, count=9)      # the chunks: frames 0..8, then 4..12
            chunks += 1
        elif n.type == "io.save_video":
            n.params["path"] = str(tmp_path / f"{n.id}.mp4")
    assert chunks == 2
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    samples = [res.outputs[n.id]["latent"] for n in graph.nodes.values() if n.type == "generate.sample"]
    assert [s.samples.shape for s in samples] == [(1, 16, 3, 4, 8)] * 2
    assert samples[1].mask is not None and samples[1].mask[0, 0, :, 0, 0].tolist() == [0.0, 0.0, 1.0]
    assert iio.imread(tmp_path / "save_video_202.mp4").shape == (9, 32, 64, 3)       # the base clip
    assert iio.imread(tmp_path / "save_video_271.mp4").shape == (13, 32, 64, 3)      # with the extension


def test_a_negative_start_counts_back_from_the_end():
    """video.trim's negative start, as ComfyUI's ImageFromBatch takes batch_index -1 (the template's colour reference:
    the base clip's last frame): counted back from the end, before the clip's start its first frame."""
    from graph_engine.clip import Clip
    from nodes.video.nodes import trim
    frames = np.arange(5, dtype=np.uint8).repeat(12).reshape(5, 2, 2, 3)
    clip = Clip.from_array(frames)
    assert trim(None, clip, -1, 1).frames(0, 1)[0, 0, 0, 0] == 4
    assert [f[0, 0, 0] for f in trim(None, clip, -3, 0).frames(0, 3)] == [2, 3, 4]
    assert trim(None, clip, -9, 2).frames(0, 2)[:, 0, 0, 0].tolist() == [0, 1]


def test_a_latent_other_than_condition_wan_scails_is_named(scail):
    """A latent not the one condition.wan_scail made (another size, more frames) is refused naming the latent, where
    it met a bare tensor error (size) or was told to remove context windows it does not have (frames); a window of
    the clip is still told apart."""
    from nodes.generate.latent import Conditioning
    from nodes.generate.wan_scail import forward
    from nodes.generate.wan_scail_cond import scail_inputs
    _, _, handle = scail
    g = torch.Generator().manual_seed(8)
    ref = torch.cat([torch.randn(1, 16, 1, 4, 8, generator=g), torch.ones(1, 4, 1, 4, 8)], 1)
    text, clip = torch.randn(1, 7, TEXT, generator=g), torch.randn(1, 4, CLIP, generator=g)
    with pytest.raises(NodeError, match="latent is 64x64.*condition.wan_scail made its inputs for 64x32"):
        forward(handle.pipe.transformer, torch.randn(1, 20, 2, 8, 8, generator=g), torch.tensor([500.0]), text,
                clip, ref)
    cond = Conditioning(text[0], None, None, [0]).with_extra(scail_reference=ref).with_meta(scail_frames=3)
    with pytest.raises(NodeError, match="5 latent frames.*condition.wan_scail made 3"):
        scail_inputs([cond], range(5), 1, "cpu", torch.float32)
    with pytest.raises(NodeError, match="remove context.windows"):
        scail_inputs([cond], [1, 2], 1, "cpu", torch.float32)
