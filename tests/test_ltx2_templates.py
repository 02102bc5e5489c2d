"""ComfyUI's other LTX-2 (2.0) templates on the tiny LTX-2 of test_ltx2: the IC-LoRA guide clip (canny, depth) against
diffusers' LTX2InContextPipeline, and the templates (distilled text-to-video, dev image-to-video, image-to-video with
a style LoRA, canny-to-video) imported and run end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import test_ltx2
from test_ltx2 import PLAIN_CFG, PROMPT, _assert_same_latents, _upscaler

tiny, gemma = test_ltx2.tiny, test_ltx2.gemma       # its module-scoped fixtures, made once for this module too

TEMPLATES = Path(__file__).parent / "data" / "comfyui" / "templates"


@pytest.fixture(scope="module")
def parts(tiny, gemma):
    """The checkpoint loaded as Kinograph loads it and Gemma 3 with its connectors."""
    from graph_engine.context import Context
    from nodes.generate.loaders import load_parts
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    loaded = load_parts(Context("load"), "auto", str(tiny[1]))
    return loaded, load_text_encoder(ModelManager(), gemma[2].name, tiny[1].name, "auto", "cpu")


def test_guide_clip_samples_as_ltx2_in_context_pipeline(tiny, gemma, parts, monkeypatch):
    """condition.guide_video (ComfyUI's LTXVAddGuide on a clip at frame 0, the canny / depth IC-LoRA templates') then
    generate.sample at cfg 3: the video and sound latents of LTX2InContextPipeline with the clip as its reference
    condition (strength 1) on the same weights and noise; the guide steers the result, and the prompts from before
    the node (LTXVCropGuides') at another size are the plain ones."""
    import diffusers
    from PIL import Image
    import diffusers.pipelines.ltx2.pipeline_ltx2_ic_lora as ic
    from graph_engine import NodeError
    from nodes.generate.adapters.ltx2 import joined
    from nodes.generate.ltx2_guide import with_guide
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import scheduler
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    loaded, te = parts
    frames = np.random.default_rng(2).integers(0, 256, (9, 64, 64, 3), dtype=np.uint8)
    latent = empty_latent(loaded["vae"], 9, 64, 64, 24.0)
    plain = encode_prompt(te, PROMPT), encode_prompt(te, "blurry")
    pos, neg = with_guide(loaded["vae"], *plain, latent, frames)
    g = torch.Generator().manual_seed(3)
    video_noise = torch.randn(latent.samples.shape, generator=g)
    audio_noise = torch.randn(latent.audio.shape, generator=g)
    # the guide's frames follow the video's in the run (noise they take is never read at strength 1)
    out = run_sampling(loaded["model"], pos, neg, latent, steps=2, cfg=3.0, sampler="euler", seed=3,
                       noise=joined(torch.cat([video_noise, torch.randn(video_noise.shape)], 2), audio_noise))
    ref = diffusers.LTX2InContextPipeline(scheduler=scheduler("ltx2"), text_encoder=gemma[0],
                                          tokenizer=te.pipe.tokenizer, **tiny[0])
    draws = []

    def noise(shape, generator=None, device=None, dtype=None):
        # the pipeline's draws (video tokens with the reference's after them, then the packed sound), given ours
        draws.append(tuple(shape))
        if len(draws) == 1:
            v = ref._pack_latents(video_noise)
            return torch.cat([v, torch.zeros(1, shape[1] - v.shape[1], shape[2])], 1).to(device, dtype)
        return ref._pack_audio_latents(audio_noise).to(device, dtype)
    monkeypatch.setattr(ic, "randn_tensor", noise)
    video, audio = ref(prompt=PROMPT, negative_prompt="blurry", height=64, width=64, num_frames=9, frame_rate=24.0,
                       reference_conditions=[ic.LTX2ReferenceCondition(frames=[Image.fromarray(f) for f in frames])],
                       num_inference_steps=2, **PLAIN_CFG, generator=torch.Generator().manual_seed(3),
                       output_type="latent", return_dict=False)
    assert draws[0] == (1, 16, 8)                       # 8 video tokens and the reference's 8
    _assert_same_latents(ref, out, video, audio)
    unguided = run_sampling(loaded["model"], *plain, latent, steps=2, cfg=3.0, sampler="euler", seed=3,
                            noise=joined(video_noise, audio_noise))
    assert not torch.allclose(unguided.samples, out.samples, atol=1e-3)
    wider = empty_latent(loaded["vae"], 9, 128, 64, 24.0)
    with pytest.raises(NodeError, match="encoded for a 64x64 video and the latent is 128x64"):
        run_sampling(loaded["model"], pos, neg, wider, steps=1, cfg=3.0, sampler="euler", seed=3)
    with pytest.raises(NodeError, match="the guide .17 frames from frame 0. runs past the latent's 9 frames"):
        with_guide(loaded["vae"], *plain, latent, np.concatenate([frames, frames])[:17])


def test_keyframes_at_any_frame_and_strength_sample_as_comfyui(parts):
    """A first frame and a last frame at strength 0.7 (ComfyUI's flf2v templates) and a 9-frame clip at frame 3,
    strength 0.5, through condition.guide_video then two Euler steps: ComfyUI's LTXVAddGuide and sampler written out
    on the same transformer. Each guide's latent frames follow the video's (a clip past frame 0 encoded behind a
    copy of its first picture, whose latent frame is dropped), its tokens' RoPE times in pixel frames from its
    frame (-1: the last, 16 of 17; a clip not at 0 moved to a frame 8k + 1: 1), one picture's [i, i + 1), the
    first frame's causal; noise mask 1 - strength: the model reads x * m + guide * (1 - m) at timestep sigma * m
    and its prediction is blended back the same way; the attention between the video and a guide is weighed by
    log(strength)."""
    from nodes.generate.ltx2_guide import with_guide
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    loaded, te = parts
    rng = np.random.default_rng(4)
    first, last = (rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2))
    clip = rng.integers(0, 256, (9, 64, 64, 3), dtype=np.uint8)
    latent = empty_latent(loaded["vae"], 17, 64, 64, 24.0)          # 3 latent frames of 2 x 2 tokens
    pos = encode_prompt(te, PROMPT)
    for frames, idx, strength in ((first[None], 0, 0.7), (last[None], -1, 0.7), (clip, 3, 0.5)):
        pos, _ = with_guide(loaded["vae"], pos, None, latent, frames, idx, strength)
    out = run_sampling(loaded["model"], pos, None, latent, steps=2, cfg=1.0, sampler="euler", seed=5,
                       sigmas="1.0, 0.6, 0.0")

    pipe = loaded["vae"].pipe
    vae, model = pipe.vae, pipe.transformer

    def encode(pictures):
        px = pipe.video_processor.preprocess_video([Image.fromarray(p) for p in pictures], height=64, width=64)
        with torch.no_grad():
            z = vae.encode(px).latent_dist.mode()
        return (z - vae.latents_mean.view(1, -1, 1, 1, 1)) * vae.config.scaling_factor / vae.latents_std.view(
            1, -1, 1, 1, 1)
    from PIL import Image
    # ComfyUI: -1 is frame (3 - 1) * 8 + 1 - 1 = 16; the clip (not at 0) is encoded as [c0, c0, c1..c7] (cut to 8n+1)
    # without its first latent frame, and placed at (3 - 1) // 8 * 8 + 1 = 1
    guides = [(encode(first[None]), 0, 0.7, True), (encode(last[None]), 16, 0.7, True),
              (encode(np.concatenate([clip[:1], clip])[:9])[:, :, 1:], 1, 0.5, False)]

    def place(frames, at, causal):
        t, y, x = torch.meshgrid(torch.arange(frames), torch.arange(2), torch.arange(2), indexing="ij")
        start = torch.stack([t * 8, y * 32, x * 32]).reshape(3, -1).float()
        end = start + torch.tensor([8.0, 32, 32]).view(3, 1)
        if causal:
            start[0], end[0] = (start[0] - 7).clamp(min=0), (end[0] - 7).clamp(min=0)
        out = torch.stack([start, end], -1)
        out[0] += at
        return out
    coords = torch.cat([place(3, 0, True)] + [place(1, at, causal) for _, at, _, causal in guides], 1)[None]
    coords[:, 0] /= 24.0
    tokens = lambda z: z.permute(0, 2, 3, 4, 1).reshape(1, -1, z.shape[1])  # noqa: E731
    clean = torch.cat([torch.zeros(1, 12, 8)] + [tokens(z) for z, *_ in guides], 1)
    m = torch.cat([torch.ones(12)] + [torch.full((4,), 1 - s) for *_, s, _ in guides])[None, :, None]
    w = torch.cat([torch.full((4,), s) for *_, s, _ in guides])
    bias = torch.zeros(24, 24)
    bias[:12, 12:], bias[12:, :12] = w.log()[None, :], w.log()[:, None]
    gen = torch.Generator().manual_seed(5)
    video = tokens(torch.randn((1, 8, 6, 2, 2), generator=gen))
    sound = torch.randn(tuple(latent.audio.shape), generator=gen)
    length = sound.shape[2]
    sound = sound.permute(0, 2, 1, 3).reshape(1, length, -1)
    e, mask = pos.embeds, pos.mask
    cut = e.shape[-1] - model.audio_caption_projection.linear_1.in_features
    for s, nxt in ((1.0, 0.6), (0.6, 0.0)):
        x_in = video * m + clean * (1 - m)
        with torch.no_grad():
            v, a = model(hidden_states=x_in, audio_hidden_states=sound, encoder_hidden_states=e[..., :cut],
                         audio_encoder_hidden_states=e[..., cut:], encoder_attention_mask=mask,
                         audio_encoder_attention_mask=mask, timestep=1000.0 * s * m[..., 0],
                         audio_timestep=torch.full((1, length), 1000.0 * s), sigma=torch.tensor([1000.0 * s]),
                         audio_sigma=torch.tensor([1000.0 * s]), num_frames=6, height=2, width=2, fps=24.0,
                         audio_num_frames=length, video_coords=coords, use_cross_timestep=True,
                         # diffusers' multiplicative mask m gives the bias (m - 1) * 10000: ComfyUI's log(strength)
                         video_self_attention_mask=(1 + bias.double() / 10000).float()[None], return_dict=False)
        den = (x_in - s * v) * m + clean * (1 - m)
        video = video + (nxt - s) * (video - den) / s
        sound = sound + (nxt - s) * a
    mine = out.samples.permute(0, 2, 3, 4, 1).reshape(1, 12, 8)
    assert out.samples.shape[2] == 3 and out.mask is None           # the guides' frames are cut off after the run
    assert ((mine - video[:, :12]).norm() / video[:, :12].norm()).item() < 1e-4
    theirs = out.audio.permute(0, 2, 1, 3).reshape(1, length, -1)
    assert ((theirs - sound).norm() / sound.norm()).item() < 1e-4


def test_guides_take_a_noise_nodes_noise(parts):
    """A noise.* node's noise is drawn at the given latent's shape; with guides the run's state has their frames
    too (ComfyUI draws noise for them): sample takes it, the guides' frames drawing seeded noise before the sound's,
    instead of refusing it as 'noise that does not fit the latent'. At strength 1 their noise is never read: the
    video is what the same noise followed by any other gives."""
    from nodes.generate.adapters.ltx2 import joined
    from nodes.generate.ltx2_guide import with_guide
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    loaded, te = parts
    latent = empty_latent(loaded["vae"], 9, 64, 64, 24.0)
    picture = np.random.default_rng(6).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    pos, _ = with_guide(loaded["vae"], encode_prompt(te, PROMPT), None, latent, picture, -1, 1.0)
    noise = torch.randn(latent.samples.shape, generator=torch.Generator().manual_seed(8))
    run = dict(steps=2, cfg=1.0, sampler="euler", seed=5)
    out = run_sampling(loaded["model"], pos, None, latent, noise=noise, **run)
    g = torch.Generator().manual_seed(5)
    torch.randn(noise.shape[:2] + (1,) + noise.shape[3:], generator=g)      # the guide's frame, unread
    sound = torch.randn(latent.audio.shape, generator=g)
    other = joined(torch.cat([noise, torch.full_like(noise[:, :, :1], 3.0)], 2), sound)
    ref = run_sampling(loaded["model"], pos, None, latent, noise=other, **run)
    assert out.samples.shape == latent.samples.shape
    assert torch.allclose(out.samples, ref.samples, atol=1e-5) and torch.allclose(out.audio, ref.audio, atol=1e-5)


def _run(yaml, tmp_path, name, targets=None):
    """The workflow's outputs by ComfyUI node id (of those `targets` need, where given)."""
    from graph_engine.api import Session, load_workflow
    wf = tmp_path / f"{name}.kino.yaml"
    wf.write_text(yaml)
    out = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False, targets=targets)
    assert out.ok, out.failed
    return {k.rsplit("_", 1)[-1]: v for k, v in out.outputs.items()}


def _import(name):
    from app.comfyui import import_data
    res = import_data(json.loads((TEMPLATES / name).read_text()))
    entries = {k: (e.class_type, e.status, e.notes) for k, e in res.report.entries.items()}
    assert "unmapped" not in {s for _, s, _ in entries.values()}, entries
    return res, entries


def _picture(tmp_path, name, seed=1):
    from PIL import Image
    path = tmp_path / name
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (96, 160, 3), dtype=np.uint8)).save(path)
    return path


def _lora(path, seed):
    """A LoRA under ComfyUI's names touching the video and sound streams' attention."""
    from safetensors.torch import save_file
    torch.manual_seed(seed)
    lora = {}
    for module, width in (("attn1.to_q", 16), ("audio_attn1.to_q", 8)):
        lora[f"diffusion_model.transformer_blocks.0.{module}.lora_A.weight"] = torch.randn(4, width)
        lora[f"diffusion_model.transformer_blocks.0.{module}.lora_B.weight"] = torch.randn(width, 4)
    path.parent.mkdir(exist_ok=True)
    save_file(lora, str(path))


def test_comfyui_ltx2_t2v_distilled_template_first_pass_is_ltx2pipeline(tiny, gemma, tmp_path, monkeypatch):
    """video_ltx2_t2v_distilled: the distilled checkpoint, ManualSigmas for both passes, the x2 latent upscaler
    between them, cfg 1. On the tiny model (128x128 halved by its ImageScaleBy, 9 frames) it runs to an MP4; with
    its euler_ancestral swapped for euler, the first pass is LTX2Pipeline's own loop on the template's sigmas."""
    import diffusers
    from comfy_layouts import link_as
    models = tiny[1].parents[1]
    link_as(models / "text_encoders" / "gemma_3_12B_it_fp4_mixed.safetensors", gemma[2])
    _upscaler(models)
    res, _ = _import("video_ltx2_t2v_distilled.json")
    yaml = res.yaml.replace("width: 1280", "width: 128").replace("height: 720", "height: 128")
    yaml = yaml.replace("frames: 121", "frames: 9")
    assert yaml.count("sampler: euler_ancestral") == 2 and "sigmas: 1., 0.99375, 0.9875," in yaml
    monkeypatch.chdir(tmp_path)
    got = _run(yaml, tmp_path, "t2v_distilled")
    first, second = got["125"]["latent"], got["134"]["latent"]
    assert (first.width, first.samples.shape, second.width, second.samples.shape) == (
        64, (1, 8, 2, 2, 2), 128, (1, 8, 2, 4, 4))
    assert got["119"]["video"].length == 9 and got["119"]["video"].audio is not None
    assert sorted((tmp_path / "out").rglob("*.mp4"))
    euler = _run(yaml.replace("euler_ancestral", "euler"), tmp_path, "t2v_distilled_euler",
                 ["sampler_custom_advanced_177_125"])["125"]["latent"]
    sigmas = [1., 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875]
    flat = diffusers.FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    ref = diffusers.LTX2Pipeline(scheduler=flat, text_encoder=gemma[0], tokenizer=None, **tiny[0])
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    ref.tokenizer = load_text_encoder(ModelManager(), gemma[2].name, tiny[1].name, "auto", "cpu").pipe.tokenizer
    text = res.graph.nodes["clip_text_encode_177_102"].params["text"]
    video, audio = ref(prompt=text, height=64, width=64, num_frames=9, frame_rate=24.0, sigmas=sigmas,
                       num_inference_steps=len(sigmas), **dict(PLAIN_CFG, guidance_scale=1.0, audio_guidance_scale=1.0),
                       generator=torch.Generator().manual_seed(45), output_type="latent", return_dict=False)
    _assert_same_latents(ref, euler, video, audio)


def test_comfyui_ltx2_i2v_templates_run(tiny, gemma, tmp_path, monkeypatch):
    """video_ltx2_i2v (dev, two passes) and video_ltx2_i2v_lora (the same with a style LoRA on both passes; its
    subgraph's output named a link the file lacks, so it imported as one approximate SaveVideo and 46 nodes left
    out) map every node and run on the tiny model: both passes start on the picture's encoding and keep it, the
    style LoRA changes the video, and SaveVideo writes the clip the mended output carries."""
    from comfy_layouts import link_as
    models = tiny[1].parents[1]
    for name in ("ltx-2-19b-dev.safetensors", "ltx-2-19b-dev-fp8.safetensors"):
        link_as(models / "checkpoints" / name, tiny[1])
    link_as(models / "text_encoders" / "gemma_3_12B_it_fp4_mixed.safetensors", gemma[2])
    _upscaler(models)
    _lora(models / "loras" / "ltx-2-19b-distilled-lora-384.safetensors", 5)
    _lora(models / "loras" / "ltx2-squish.safetensors", 6)
    picture = _picture(tmp_path, "picture.png")
    monkeypatch.chdir(tmp_path)
    results = {}
    for name in ("video_ltx2_i2v.json", "video_ltx2_i2v_lora.json"):
        res, entries = _import(name)
        yaml = res.yaml
        for old, new in (("width: 1280", "width: 128"), ("height: 720", "height: 128"), ("height: 1280", "height: 128"),
                         ("frames: 121", "frames: 9"), ("frames: 281", "frames: 9"), ("steps: 20", "steps: 2"),
                         ("size: 1536", "size: 128")):
            yaml = yaml.replace(old, new)
        import re
        yaml = re.sub(r"path: \S+\.(png|jpg|jpeg)\n", f"path: {picture}\n", yaml)
        assert yaml.count("type: latent.start_image") == {"video_ltx2_i2v.json": 2, "video_ltx2_i2v_lora.json": 1}[name]
        results[name] = (res, entries, _run(yaml, tmp_path, name[:-5]), yaml)
    for name, (res, entries, got, _) in results.items():
        pairs = [(res.graph.inputs[n.id]["latent"][0], n.id) for n in res.graph.nodes.values()
                 if n.type == "generate.sample" and res.graph.nodes[res.graph.inputs[n.id]["latent"][0]].type ==
                 "latent.start_image"]
        assert len(pairs) == {"video_ltx2_i2v.json": 2, "video_ltx2_i2v_lora.json": 1}[name]
        for start, sampled in pairs:
            placed, result = got[start.rsplit("_", 1)[-1]]["latent"], got[sampled.rsplit("_", 1)[-1]]["latent"]
            assert placed.mask[0, 0, :, 0, 0].tolist() == [0.0, 1.0]
            assert torch.equal(result.samples[:, :, :1], placed.samples[:, :, :1])
    res, entries, got, yaml = results["video_ltx2_i2v_lora.json"]
    assert entries["92:97"][1] == "approx" and "names link 265, which the file's subgraph lacks" in \
        entries["92:97"][2][0]
    assert entries["92:111"][:2] == ("ImageScaleToMaxDimension", "exact") and "side: longer" in yaml
    assert res.graph.inputs["save_video_75"]["video"] == ("vae_decode_tiled_92_116", "video")
    assert got["116"]["video"].length == 9 and got["116"]["video"].audio is not None
    assert sorted((tmp_path / "out").rglob("*.mp4"))
    styled = got["41"]["latent"].samples
    plain = _run(yaml.replace("path: ltx2-squish.safetensors\n      strength: 1\n",
                              "path: ltx2-squish.safetensors\n      strength: 0\n"), tmp_path, "i2v_lora_off",
                 ["sampler_custom_advanced_92_41"])
    assert not torch.allclose(plain["41"]["latent"].samples, styled)


def test_comfyui_ltx2_canny_template_runs_with_its_guide_clip(tiny, gemma, tmp_path, monkeypatch):
    """video_ltx2_canny_to_video: Canny edges of a loaded clip become condition.guide_video (it was imported as the
    edges' first frame pinned as the video's first frame); the first pass samples with the guide, LTXVCropGuides
    gives the second pass (after the x2 upscaler, at twice the size) the prompts without it. On the tiny model
    (64x64 halved from 128x128, 9 frames) it runs to an MP4, and the guide changes the first pass."""
    import av
    from comfy_layouts import link_as
    models = tiny[1].parents[1]
    link_as(models / "checkpoints" / "ltx-2-19b-dev-fp8.safetensors", tiny[1])
    link_as(models / "text_encoders" / "gemma_3_12B_it_fp4_mixed.safetensors", gemma[2])
    _upscaler(models)
    _lora(models / "loras" / "ltx-2-19b-distilled-lora-384.safetensors", 5)
    _lora(models / "loras" / "ltx-2-19b-ic-lora-canny-control.safetensors", 7)
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as f:
        s = f.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        for k in range(12):
            img = np.zeros((96, 160, 3), np.uint8)
            img[20:70, 10 + 8 * k:60 + 8 * k] = 255
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                f.mux(p)
        for p in s.encode():
            f.mux(p)
    picture = _picture(tmp_path, "first.png")
    res, entries = _import("video_ltx2_canny_to_video.json")
    guide, = [n for n in res.graph.nodes.values() if n.type == "condition.guide_video"]
    assert res.graph.inputs[guide.id]["video"] == ("canny_158", "video")
    assert not [n for n in res.graph.nodes.values() if n.type == "condition.frames"]
    second = res.graph.inputs["sampler_custom_advanced_143_107"]
    assert second["positive"] == ("clip_text_encode_143_124", "positive")
    yaml = res.yaml.replace("width: 1280", "width: 128").replace("height: 720", "height: 128")
    yaml = yaml.replace("count: 121", "count: 9").replace("steps: 20", "steps: 2")
    yaml = yaml.replace("path: squirrel_in_flower_garden.mp4", f"path: {clip}").replace(
        "path: ltx_2_canny_1st_frame.png", f"path: {picture}")
    monkeypatch.chdir(tmp_path)
    got = _run(yaml, tmp_path, "canny")
    first = got["123"]["latent"]
    assert (first.width, first.height, first.samples.shape) == (64, 64, (1, 8, 2, 2, 2))
    assert got["178"]["video"].length == 9 and (got["178"]["video"].width, got["178"]["video"].height) == (128, 128)
    unguided = _run(yaml.replace("positive: ltxv_add_guide_143_132.positive", "positive: clip_text_encode_143_124"
                                 ".positive").replace("negative: ltxv_add_guide_143_132.negative",
                                                      "negative: clip_text_encode_143_119.positive"),
                    tmp_path, "canny_off", ["sampler_custom_advanced_143_123"])
    assert not torch.allclose(unguided["123"]["latent"].samples, first.samples, atol=1e-4)


def test_comfyui_ltx2_depth_template_maps_its_lotus_subgraph():
    """video_ltx2_depth_to_video's depth map comes from a Lotus-D subgraph: it imports with every node mapped, the
    subgraph as Lotus' prompt (condition.lotus) into a one-step sample from level 999 without noise (SetFirstSigma,
    DisableNoise), and the rest of the graph (the guide clip into the IC-LoRA pass) as the canny template's."""
    from app.comfyui import import_data
    res = import_data(json.loads((TEMPLATES / "video_ltx2_depth_to_video.json").read_text()))
    assert not [e for e in res.report.entries.values() if e.status == "unmapped"]
    nodes = list(res.graph.nodes.values())
    lotus = [n for n in nodes if n.type == "condition.lotus"]
    assert len(lotus) == 1
    depth = next(n for n in nodes if n.type == "generate.sample" and res.graph.inputs[n.id]["positive"][0] == lotus[0].id)
    assert depth.params["first_sigma"] == pytest.approx(999.0) and depth.params["add_noise"] is False
    assert depth.params["steps"] == 1
    assert [n.type for n in nodes].count("condition.guide_video") == 1


def test_importing_an_ltx25_template_says_its_model_does_not_run_before_its_files_are_fetched(tmp_path, monkeypatch):
    """LTX-2.5's templates import node for node ('mapped exactly', exit 0), and the import listed its 22B files to
    put in place; the run then said LTX-2.5 does not load. The import now says so beside that list; LTX-2.3's does
    not."""
    from app.comfyui import import_workflow
    from app.comfyui.cli import missing_models
    from graph_engine.api import load_workflow
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))

    def said(name):
        wf = load_workflow(text=import_workflow(str(TEMPLATES / name)).yaml, check=False)
        return missing_models(wf, tmp_path)
    assert any(line.startswith("LTX-2.5 does not run in Kinograph yet") for line in said("video_ltx2_5_t2v.json"))
    assert not any("LTX-2.5" in line for line in said("video_ltx2_3_t2v.json"))
