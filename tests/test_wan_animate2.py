"""Wan Animate 2 (Wan-Video's Wan-Animate-2) as a ComfyUI user brings it: wan_animate_2_*.safetensors in
diffusion_models/ (Wan 2.1 I2V-14B's tensor names; its config metadata says model_type animate2) and the template
video_wan_animate2_distilled.json (WanAnimate2ToVideo, WanAnimate2Cache). The model here is a tiny random one in that
layout; its prediction is compared with ComfyUI's WanAnimate2Model (comfy/ldm/wan/model_animate2.py) written out
below over the file's own tensors, and condition.wan_animate2's layout with WanAnimate2ToVideo's
(comfy_extras/nodes_wan.py)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import Clip, NodeError
from test_wan_fun_control import _encode, _video
from tiny_wan22 import comfy_ops, comfy_rope, tiny_wan_folder

HEADS, LAYERS, TEXT, CLIP = 2, 2, 32, 24
DIM = 128 * HEADS
ANIMATE2 = {"config": json.dumps({"transformer": {"model_type": "animate2"}})}
TEMPLATE = Path(__file__).resolve().parents[1] / "tests" / "data" / "comfyui" / "templates" / \
    "video_wan_animate2_distilled.json"


def _state(clip: int = CLIP):
    """A tiny Wan 2.1 I2V transformer in ComfyUI's key names (two 128-wide heads, CLIP tokens `clip` wide), every
    tensor moved off its initial value so that modulations and norms are away from 0 / 1 and a wrong one shows."""
    from diffusers import WanTransformer3DModel
    from tiny_models import wan_original_transformer
    torch.manual_seed(11)
    wan = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=128,
                                in_channels=36, out_channels=16, text_dim=TEXT, freq_dim=256, ffn_dim=32,
                                num_layers=LAYERS, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                image_dim=clip, added_kv_proj_dim=DIM, rope_max_seq_len=32)
    sd = wan_original_transformer(wan.state_dict())
    return {k: (v + 0.05 * torch.randn_like(v)).half().float() for k, v in sd.items()}


@pytest.fixture(scope="module")
def animate2(tmp_path_factory):
    """(the file, its tensors, the loaded model handle, the tiny VAE) of the tiny Wan Animate 2, fp16 with its
    metadata, in a ComfyUI models/ folder with a tiny umt5 and Wan 2.1 VAE beside it."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_vae
    sd = _state()
    with tiny_wan_folder(tmp_path_factory.mktemp("animate2"), "wan_animate_2_tiny_bf16.safetensors", sd) as path:
        save_file({k: v.half().contiguous() for k, v in sd.items()}, str(path), metadata=ANIMATE2)
        mm = ModelManager(max_loaded=3)
        yield path, sd, load_diffusion_model(mm, str(path), "default", "cpu"), \
            load_vae(mm, "wan_tiny_vae.safetensors", "cpu")


# --- ComfyUI's WanAnimate2Model, written out ----------------------------------------------------------------------
def _reference(sd, x, t, context, clip, pose=None, context_pose=None, clip_pose=None, pose_strength=1.0,
               ref_strength=1.0):
    """WanAnimate2Model._forward / forward_orig over the file's tensors: the pose branch (forward_pose, timestep 1)
    feeding each generation block (forward_gen) its K/V, frame j reading driving frame j - 1."""
    import torch.nn.functional as F

    lin, rms, ln = comfy_ops(sd)

    def ids(t_len, h_len, w_len, t0=0, w0=0):
        g = torch.zeros(t_len, h_len, w_len, 3, dtype=torch.float64)
        g[..., 0] += torch.arange(t0, t0 + t_len, dtype=torch.float64).view(-1, 1, 1)
        g[..., 1] += torch.arange(h_len, dtype=torch.float64).view(1, -1, 1)
        g[..., 2] += torch.arange(w0, w0 + w_len, dtype=torch.float64).view(1, 1, -1)
        return g.reshape(-1, 3)

    def heads(v):                                   # [B, N, DIM] -> [B, H, N, 128]
        return v.view(v.shape[0], v.shape[1], HEADS, -1).transpose(1, 2)

    def attend(q, k, vv):                           # [B, H, N, 128] each -> [B, N, DIM]
        out = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ vv
        return out.transpose(1, 2).flatten(2)

    def embed_time(tt):
        sinus = torch.outer(tt.double(), torch.pow(10000, -torch.arange(128, dtype=torch.float64) / 128))
        e = torch.cat([sinus.cos(), sinus.sin()], 1).float()
        e = lin(F.silu(lin(e, "time_embedding.0")), "time_embedding.2").reshape(b, -1, DIM)
        return e, lin(F.silu(e), "time_projection.1").unflatten(2, (6, DIM))

    def embed_context(text, tokens):                # text_embedding, and MLPProj's img_emb in front
        c = lin(F.gelu(lin(text, "text_embedding.0"), approximate="tanh"), "text_embedding.2")
        img = ln(lin(F.gelu(lin(ln(tokens, "img_emb.proj.0", 1e-5), "img_emb.proj.1")), "img_emb.proj.3"),
                 "img_emb.proj.4", 1e-5)
        return c, img

    def self_qkv(v, m, p, pos):
        h = ln(v) * (1 + m[1]) + m[0]
        q = comfy_rope(heads(rms(lin(h, p + "self_attn.q"), p + "self_attn.norm_q")), pos)
        k = comfy_rope(heads(rms(lin(h, p + "self_attn.k"), p + "self_attn.norm_k")), pos)
        return q, k, heads(lin(h, p + "self_attn.v"))

    def cross_ffn(v, m, p, ctx):                    # WanI2VCrossAttention (norm3), then the FFN (norm2)
        c, img = ctx
        h = ln(v, p + "norm3")
        q = heads(rms(lin(h, p + "cross_attn.q"), p + "cross_attn.norm_q"))
        out = attend(q, heads(rms(lin(c, p + "cross_attn.k"), p + "cross_attn.norm_k")), heads(lin(c, p + "cross_attn.v")))
        out = out + attend(q, heads(rms(lin(img, p + "cross_attn.k_img"), p + "cross_attn.norm_k_img")),
                           heads(lin(img, p + "cross_attn.v_img")))
        v = v + lin(out, p + "cross_attn.o")
        h = ln(v) * (1 + m[4]) + m[3]
        return v + lin(F.gelu(lin(h, p + "ffn.0"), approximate="tanh"), p + "ffn.2") * m[5]

    b, _, f, hh, ww = x.shape
    gh, gw = hh // 2, ww // 2
    hw = gh * gw
    v = F.conv3d(x, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=(1, 2, 2)).flatten(2) \
        .transpose(1, 2)
    e, e0 = embed_time(t)
    ctx = embed_context(context, clip)
    pos = ids(f, gh, gw)
    if pose is not None:
        xp = F.conv3d(torch.cat([pose, torch.ones_like(pose[:, :4]), pose], 1), sd["patch_embedding.weight"],
                      sd["patch_embedding.bias"], stride=(1, 2, 2)).flatten(2).transpose(1, 2)
        _, e0p = embed_time(torch.ones_like(t))
        ctxp = embed_context(context if context_pose is None else context_pose, clip if clip_pose is None else clip_pose)
        posp = ids(f - 1, gh, gw, t0=1, w0=gw)       # rope_encode_pose: t_start 1, shift_x of one latent width
    for i in range(LAYERS):
        p = f"blocks.{i}."
        if pose is not None:
            m = (sd[p + "modulation"].unsqueeze(0) + e0p).unbind(2)
            q, kp, vp = self_qkv(xp, m, p, posp)
            xp = cross_ffn(xp + lin(attend(q, kp, vp), p + "self_attn.o") * m[2], m, p, ctxp)
            vp = vp * pose_strength
        m = (sd[p + "modulation"].unsqueeze(0) + e0).unbind(2)
        q, k, vv = self_qkv(v, m, p, pos)
        vv = vv.clone()
        vv[:, :, :hw] *= ref_strength
        if pose is None:
            out = attend(q, k, vv)
        else:
            out = torch.zeros(b, v.shape[1], DIM)
            out[:, :hw] = attend(q[:, :, :hw], k, vv)
            for j in range(1, f):
                kk = torch.cat([k, kp[:, :, (j - 1) * hw:j * hw]], 2)
                vj = torch.cat([vv, vp[:, :, (j - 1) * hw:j * hw]], 2)
                out[:, j * hw:(j + 1) * hw] = attend(q[:, :, j * hw:(j + 1) * hw], kk, vj)
        v = cross_ffn(v + lin(out, p + "self_attn.o") * m[2], m, p, ctx)
    hm = (sd["head.modulation"].unsqueeze(0) + e.unsqueeze(2)).unbind(2)
    out = lin(ln(v) * (1 + hm[1]) + hm[0], "head.head")
    out = out.view(b, f, gh, gw, 1, 2, 2, 16)
    return torch.einsum("bfhwpqrc->bcfphqwr", out).reshape(b, 16, f, gh * 2, gw * 2)


def test_the_file_is_told_apart_by_its_metadata_and_predicts_as_comfyuis_model(animate2, tmp_path):
    """The file's tensors are Wan 2.1 I2V's: its metadata makes it Wan Animate 2, which loads marked so; the same
    tensors without it stay plain i2v. Its prediction for a 3-latent-frame clip (the reference frame and 2 more) with
    the driving video's latents, a pose prompt and pose CLIP tokens of their own, and both strengths off 1, equals
    ComfyUI's model written out above; without the pose branch it is that model's plain forward too."""
    from safetensors.torch import save_file
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import describe_model
    from nodes.generate.wan_animate2 import forward, is_animate2
    path, sd, handle, _ = animate2
    det = detect_file(path)
    assert (det.family, det.variant, det.extra.get("animate2")) == ("wan", "animate2-dim256", True)
    info = describe_model(path)
    assert info["loads"] == "yes" and "condition.wan_animate2" in info["note"], info
    model = handle.pipe.transformer
    assert is_animate2(model)
    plain = tmp_path / "wan_i2v_tiny.safetensors"
    save_file({k: v.half().contiguous() for k, v in sd.items()}, str(plain))
    assert detect_file(plain).variant == "i2v-dim256"
    g = torch.Generator().manual_seed(3)
    x, pose = torch.randn(1, 36, 3, 4, 6, generator=g), torch.randn(1, 16, 2, 4, 6, generator=g)
    text, text_pose = torch.randn(1, 7, TEXT, generator=g), torch.randn(1, 5, TEXT, generator=g)
    clip, clip_pose = torch.randn(1, 4, CLIP, generator=g), torch.randn(1, 4, CLIP, generator=g)
    t = torch.tensor([640.0])
    with torch.no_grad():
        got = forward(model, x, t, text, clip, pose, text_pose, clip_pose, pose_strength=1.3, reference_strength=0.7)
        want = _reference(sd, x, t, text, clip, pose, text_pose, clip_pose, pose_strength=1.3, ref_strength=0.7)
        bare = forward(model, x, t, text, clip)
        bare_want = _reference(sd, x, t, text, clip)
        own = forward(model, x, t, text, clip, pose)
    assert got.shape == (1, 16, 3, 4, 6)
    assert torch.allclose(got, want, atol=2e-4), (got - want).abs().max()
    assert torch.allclose(bare, bare_want, atol=2e-4), (bare - bare_want).abs().max()
    assert (own - got).abs().max() > 1e-2 and (bare - own).abs().max() > 1e-2     # the pose inputs move it
    with pytest.raises(NodeError, match="pose video has 1 latent frames where Wan Animate 2 reads 2"):
        forward(model, x, t, text, clip, pose[:, :, :1])


def test_condition_lays_out_wan_animate2_to_video(animate2):
    """condition.wan_animate2 as WanAnimate2ToVideo: the latent one frame longer (the reference's slot), the
    reference's latent then a grey clip's behind the noise, kept (mask 1) on the reference frame; the driving video
    from `offset`, its last frame held, encoded whole; the pose prompt and tokens defaulting to the generation's.
    Continuing a clip keeps its last frame only (trim_image 1, the offset one frame back)."""
    from nodes.generate.latent import Conditioning
    from nodes.generate.wan_animate2 import animate2_condition
    _, _, _, vae = animate2
    size, frames = 32, 5
    ref, drive = _video(1, 1, size, size), _video(7, 2, size, size)
    text, neg, tokens = (Conditioning("wan", torch.randn(1, 6, TEXT)) for _ in range(3))
    out = animate2_condition(vae, text, neg, size, size, frames, ref[0], Clip.from_array(drive), tokens, offset=4)
    assert out["latent"].samples.shape == (1, 16, 3, 4, 4) and (out["trim_image"], out["offset"]) == (0, 4 + frames)
    concat = out["positive"].extra["concat"]
    assert concat.shape == (1, 20, 3, 4, 4)
    assert (concat[:, :4, 0] == 1).all() and (concat[:, :4, 1:] == 0).all()
    grey = np.full((frames, size, size, 3), 127.5)
    torch.testing.assert_close(concat[:, 4:, :1], _encode(vae.pipe, ref), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(concat[:, 4:, 1:], _encode(vae.pipe, grey), atol=1e-4, rtol=1e-4)
    held = np.concatenate([drive[4:], drive[-1:].repeat(2, 0)])        # frames 4..6, then frame 6 twice
    torch.testing.assert_close(out["positive"].extra["animate2_pose"], _encode(vae.pipe, held), atol=1e-4, rtol=1e-4)
    for c in (out["positive"], out["negative"]):                       # the pose branch reads the positive prompt
        assert torch.equal(c.extra["animate2_text"], text.embeds) and torch.equal(c.extra["animate2_image"],
                                                                                   tokens.embeds)
    more = animate2_condition(vae, text, None, size, size, frames, ref[0], Clip.from_array(drive), tokens,
                              continue_motion=Clip.from_array(drive[:4]), offset=4)
    assert (more["trim_image"], more["offset"]) == (1, 3 + frames)
    concat = more["positive"].extra["concat"]
    assert (concat[:, :4, :2] == 1).all() and (concat[:, :4, 2:] == 0).all()
    first = np.concatenate([drive[3:4], grey[1:]])                      # the continued clip's last frame leads
    torch.testing.assert_close(concat[:, 4:, 1:], _encode(vae.pipe, first), atol=1e-4, rtol=1e-4)
    with pytest.raises(NodeError, match="pose video has 7 frames, none after frame 9"):
        animate2_condition(vae, text, None, size, size, frames, ref[0], Clip.from_array(drive), tokens, offset=9)


def test_sampling_runs_the_pose_branch_and_names_what_is_missing(animate2, tmp_path):
    """sample on condition.wan_animate2's output runs Wan Animate 2's forward (the pose moves the result), the pose
    branch only over its window of noise levels; without
    the reference's CLIP tokens the message names condition.wan_animate2's image_embeds, and another Wan model given
    condition.wan_animate2's conditioning says it is not Wan Animate 2."""
    from nodes.generate.latent import Conditioning
    from nodes.generate.sampling import run_sampling
    from nodes.generate.wan_animate2 import animate2_condition
    _, _, handle, vae = animate2
    size, frames = 32, 5
    ref, drive, still = _video(1, 1, size, size), _video(5, 2, size, size), _video(5, 9, size, size)
    text, tokens = Conditioning("wan", torch.randn(1, 6, TEXT)), Conditioning("wan", torch.randn(1, 4, CLIP))
    runs = []
    for video in (drive, still):
        out = animate2_condition(vae, text, None, size, size, frames, ref[0], Clip.from_array(video), tokens)
        runs.append(run_sampling(handle, out["positive"], None, out["latent"], steps=1, cfg=1.0,
                                 sampler="flow_euler", seed=3).samples)
    assert runs[0].shape == (1, 16, 3, 4, 4) and (runs[0] - runs[1]).abs().max() > 1e-3
    # pose_start / pose_end (ComfyUI's pose_start_percent / pose_end_percent): a one-step run starts at the top noise
    # level, inside a window from 0 and outside one from 0.5, where it samples as with no driving video at all
    plain = animate2_condition(vae, text, None, size, size, frames, ref[0], None, tokens)
    alone = run_sampling(handle, plain["positive"], None, plain["latent"], steps=1, cfg=1.0, sampler="flow_euler",
                         seed=3).samples
    for start, end, same in ((0.0, 0.4, runs[0]), (0.5, 1.0, alone)):
        out = animate2_condition(vae, text, None, size, size, frames, ref[0], Clip.from_array(drive), tokens,
                                 pose_start=start, pose_end=end)
        got = run_sampling(handle, out["positive"], None, out["latent"], steps=1, cfg=1.0, sampler="flow_euler",
                           seed=3).samples
        assert torch.allclose(got, same, atol=1e-5), (start, end)
    assert (alone - runs[0]).abs().max() > 1e-3
    with pytest.raises(NodeError, match="give a pose_start no greater than pose_end"):
        animate2_condition(vae, text, None, size, size, frames, ref[0], Clip.from_array(drive), tokens,
                           pose_start=0.6, pose_end=0.2)
    bare = animate2_condition(vae, text, None, size, size, frames, ref[0], Clip.from_array(drive))
    with pytest.raises(NodeError, match="condition.wan_animate2's image_embeds"):
        run_sampling(handle, bare["positive"], None, bare["latent"], steps=1, cfg=1.0, sampler="flow_euler")
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    plain = tmp_path / "wan_i2v_tiny.safetensors"
    save_file({k: v.half().contiguous() for k, v in animate2[1].items()}, str(plain))
    other = load_diffusion_model(ModelManager(max_loaded=1), str(plain), "default", "cpu")
    with pytest.raises(NodeError, match="feeds Wan Animate 2 models"):
        run_sampling(other, out["positive"], None, out["latent"], steps=1, cfg=1.0, sampler="flow_euler")


def test_the_distilled_template_converts_its_animate2_nodes():
    """ComfyUI's video_wan_animate2_distilled template was blocked by WanAnimate2ToVideo and WanAnimate2Cache: the
    first becomes condition.wan_animate2 (its prompt for the pose branch, the reference's and the driving video's
    CLIP tokens linked; its trim_latent 1 for TrimVideoLatent), the cache passes the model on. Nothing blocks it and
    it validates: its side-by-side stitches what SaveVideo saved (SaveVideo hands its clip on) beside the driving
    clip."""
    from app.comfyui import import_workflow
    from graph_engine.api import load_workflow
    result = import_workflow(TEMPLATE)
    report = result.report
    assert report.blocking == [], report.summary()
    load_workflow(text=result.yaml)
    ran = [e for e in report.entries.values() if e.class_type in ("WanAnimate2ToVideo", "WanAnimate2Cache")
           and e.status != "ui"]
    assert sorted(e.class_type for e in ran) == ["WanAnimate2Cache", "WanAnimate2ToVideo"]
    assert all(e.status == "approx" for e in ran)
    graph = result.graph
    (nid,) = [n for n, node in graph.nodes.items() if node.type == "condition.wan_animate2"]
    assert {k: graph.nodes[nid].params[k] for k in ("width", "height", "frames", "offset")} == \
        {"width": 482, "height": 854, "frames": 81, "offset": 0}         # the size of the template's resized picture
    into = set(graph.inputs.get(nid, {}))
    assert {"vae", "positive", "negative", "reference", "pose", "image_embeds", "pose_text",
            "pose_image_embeds"} <= into
    trims = [n for n in graph.nodes.values() if n.type == "latent.trim"]
    assert trims and all(n.params.get("amount") == 1 for n in trims)
    (decode,) = [n for n in graph.nodes.values() if n.type == "vae.decode"]
    (stitch,) = [n for n in graph.nodes.values() if n.type == "video.stitch"]
    saved, driving = (graph.inputs[graph.inputs[stitch.id][k][0]]["video"][0] for k in ("video", "other"))
    assert (saved, graph.nodes[driving].type) == (decode.id, "io.load_video")
    # ComfyUI lays the driving clip's sound under the generated frames (CreateVideo's audio); the decoded clip has none
    # here, and the report says so (the clip was taken to keep it, through the sampler's pose conditioning)
    assert "the audio input is not carried" in report.entries["245"].notes


# --- the template that loops over the driving clip ------------------------------------------------------------------
LOOPED = TEMPLATE.parent / "video_wan_animate2.json"


def _looped(passes=None):
    """video_wan_animate2, its windows of 5 frames at 32 x 32 (the template's 81 at 482 x 854 are the released
    size); with `passes`, its StartLoop's count typed into the file rather than computed from the driving clip."""
    data = json.loads(LOOPED.read_text(encoding="utf-8"))
    outer = next(n for n in data["nodes"] if n["id"] == 672)
    outer["widgets_values"][10:13] = [32, 32, 5]            # resize_type.width / height, fragment_length
    if passes is not None:
        sg = next(s for s in data["definitions"]["subgraphs"] if s["name"].startswith("Motion Transfer"))
        start = next(n for n in sg["nodes"] if n["type"] == "StartLoop")
        count = next(i for i in start["inputs"] if i["name"] == "mode.num_iterations")
        sg["links"] = [lk for lk in sg["links"] if lk["id"] != count["link"]]
        for n in sg["nodes"]:
            for o in n.get("outputs") or []:
                o["links"] = [k for k in o.get("links") or [] if k != count["link"]]
        count["link"] = None
        start["widgets_values"][1] = passes
    return data


@pytest.fixture(scope="module")
def looped_model(tmp_path_factory):
    """The tiny Wan Animate 2 reading CLIP tokens 32 wide (tiny_wan22's CLIP vision tower), in a models/ folder with
    that tower, a tiny umt5 and Wan 2.1 VAE beside it: the file's path."""
    from safetensors.torch import save_file
    from tiny_wan22 import save_clip_vision
    sd = _state(32)
    with tiny_wan_folder(tmp_path_factory.mktemp("looped"), "wan_animate_2_tiny_bf16.safetensors", sd) as path:
        save_file({k: v.half().contiguous() for k, v in sd.items()}, str(path), metadata=ANIMATE2)
        save_clip_vision(path.parent.parent)
        yield path


def _run_looped(data, model, tmp_path, frames):
    import imageio.v3 as iio
    from PIL import Image
    from app.comfyui import import_data
    from graph_engine.api import Session
    from graph_engine.workflow import Workflow
    from tiny_wan22 import on_tiny_files
    tmp_path.mkdir()
    result = import_data(data)
    assert not [e for e in result.report.entries.values() if e.status == "unmapped"]
    g = result.graph
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 32, 3), dtype=np.uint8)).save(tmp_path / "me.png")
    iio.imwrite(tmp_path / "drive.mp4", _video(frames, 6, 32, 32), fps=16, codec="libx264")
    names = {"load.diffusion_model": model.name, "load.text_encoder": "umt5_tiny_fp16.safetensors",
             "load.vae": "wan_tiny_vae.safetensors", "load.clip_vision": "clip_vision_tiny.safetensors"}
    on_tiny_files(g, names, tmp_path / "none.wav", tmp_path / "me.png", tmp_path / "out.mp4")
    for n in g.nodes.values():
        if n.type == "io.load_video":
            n.params["path"] = str(tmp_path / "drive.mp4")
    saves = [n for n in g.nodes.values() if n.type == "io.save_video"]
    for k, n in enumerate(saves):
        n.params["path"] = str(tmp_path / f"out{k}.mp4")
    made = next(g.inputs[n.id]["video"] for n in saves if g.nodes[g.inputs[n.id]["video"][0]].type != "video.stitch")
    res = Session(device="cpu", use_disk=False).run(Workflow(g, folder=tmp_path), use_cache=False)
    assert res.ok, res.failed
    clip = res.outputs[made[0]][made[1]]
    return g, res, np.asarray(clip.frames(0, clip.length))


def test_the_looped_template_runs_its_windows_as_the_clip_counts_them(looped_model, tmp_path):
    """ComfyUI's video_wan_animate2 generates the driving clip in windows: its StartLoop runs floor((F - 2) / (b - 1))
    + 1 passes of b frames (F the clip's frames; the math node's formula), each after the first continuing the one
    before (its last frame, the driving clip's offset) and dropping its first frame, the last pass only as long as
    what is left; RebatchImages joins them. Imported, the count is computed as the workflow runs: on a 13-frame clip
    with windows of 5 it runs 3 passes (5 + 4 + 4 frames: the clip's 13), and the passes past the count never run
    (test_comfyui_running_loop runs counts of 1 to 3 and one past the cap). What it makes equals the same template
    with that count typed into its StartLoop, the loop then unrolled on import into exactly those passes (the body
    run by hand `passes` times)."""
    frames, passes = 13, 3
    assert (frames - 2) // (5 - 1) + 1 == passes
    g, res, got = _run_looped(_looped(), looped_model, tmp_path / "counted", frames)
    ran = [n for n in res.executed if g.nodes[n].type == "condition.wan_animate2"]
    assert len(ran) == passes
    by_hand = _run_looped(_looped(passes), looped_model, tmp_path / "typed", frames)[2]
    assert got.shape == (frames, 32, 32, 3)
    assert np.array_equal(got, by_hand)
    assert not np.array_equal(got[:5], got[5:10])          # each window its own part of the driving clip
