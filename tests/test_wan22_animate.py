"""Wan 2.2 Animate (wan2.2_animate_14B, ComfyUI's WanAnimateToVideo) on a tiny random-weight transformer in ComfyUI's
key layout. The files were refused by name ("Wan 2.2 Animate models ... are not supported"), and nothing in
Kinograph laid out the reference frame, pose latents and face pixels the model reads."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import Clip, NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_wan_fun_control import _video  # noqa: E402

ANIMATE, FP8 = "wan22_tiny_animate_fp16.safetensors", "wan22_tiny_animate_fp8_scaled.safetensors"
SIZE, FRAMES = 32, 5


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from tiny_wan22 import build_wan22_animate
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model, load_vae
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                # tiny tensors: one thread is faster than waiting for several
    root = build_wan22_animate(tmp_path_factory.mktemp("animate"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KINOGRAPH_MODELS", str(root / "models"))
        mm = ModelManager(max_loaded=4)
        yield {"root": root, "model": load_diffusion_model(mm, ANIMATE, "default", "cpu"),
               "vae": load_vae(mm, "wan_tiny_vae.safetensors", "cpu")}
    torch.set_num_threads(threads)


def _reference_pipeline(vae, text, image_tokens):
    """diffusers' WanAnimatePipeline on the tiny transformer diffusers builds (its weights rounded through fp16, as
    the file stores them), given the prompt embeddings and CLIP image tokens directly."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanAnimatePipeline
    from tiny_wan22 import wan_animate_transformer
    transformer = wan_animate_transformer().half().float()
    pipe = WanAnimatePipeline(tokenizer=None, text_encoder=None, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(
        shift=5.0), image_processor=None, image_encoder=None, transformer=transformer)
    pipe.encode_image = lambda image, device: image_tokens
    return pipe


def test_animate_and_replace_match_diffusers_wan_animate_pipeline(parts):
    """Detected and loaded as Wan 2.2 Animate (its fp8_scaled copy too); condition.wan_animate's layout sampled by Kinograph == diffusers'
    WanAnimatePipeline for the same weights, inputs, seed and noise levels, in both of its modes: animate (the
    character in a grey picture) and replace (the footage kept outside the character's mask)."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from PIL import Image
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.wan_animate import animate_condition
    folder = parts["root"] / "models" / "diffusion_models"
    info = describe_model(folder / ANIMATE)
    assert (info["variant"], info["loads"]) == ("animate-dim128", "yes")
    model, vae = parts["model"], parts["vae"]
    assert type(model.pipe.transformer).__name__ == "WanAnimateTransformer3DModel"
    # the fp8_scaled copy: the same weights to fp8's precision (its face and motion matrices scaled like the rest)
    assert describe_model(folder / FP8)["precision"] == "fp8_scaled"
    fp8 = load_diffusion_model(ModelManager(), str(folder / FP8), "fp32", "cpu").pipe.transformer.state_dict()
    for k, v in model.pipe.transformer.state_dict().items():
        assert float((fp8[k] - v).abs().max()) <= 0.04 * float(v.abs().max()) + 1e-6, k
    model.pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=5.0)
    g = torch.Generator().manual_seed(0)
    text, negative, tokens = (torch.randn(1, 6, 32, generator=g) for _ in range(3))
    ref, pose, face, background = (_video(n, s, SIZE, SIZE) for n, s in ((1, 1), (FRAMES, 2), (FRAMES, 3), (FRAMES, 4)))
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[8:24, 8:16] = 1                                  # the character, on whole latent pixels
    ref_pipe = _reference_pipeline(vae.pipe.vae, text, tokens)
    pil = [Image.fromarray(f) for f in pose], [Image.fromarray(f) for f in face]
    for mode in ("animate", "replace"):
        replace = mode == "replace"
        out = animate_condition(vae, Conditioning("wan", text), Conditioning("wan", negative), SIZE, SIZE, FRAMES,
                                Clip.from_array(pose), Clip.from_array(face), ref[0], Conditioning("wan", tokens),
                                background=Clip.from_array(background) if replace else None,
                                character_mask=mask if replace else None)
        assert out["latent"].samples.shape == (1, 16, 3, 4, 4) and (out["trim_image"], out["offset"]) == (0, FRAMES)
        ours = run_sampling(model, out["positive"], out["negative"], out["latent"], steps=2, cfg=4.0,
                            sampler="flow_euler", seed=7)
        extra = {"background_video": [Image.fromarray(f) for f in background],
                 "mask_video": [Image.fromarray((mask * 255).astype(np.uint8))] * FRAMES} if replace else {}
        want = ref_pipe(image=Image.fromarray(ref[0]), pose_video=pil[0], face_video=pil[1], mode=mode,
                        prompt_embeds=text, negative_prompt_embeds=negative, height=SIZE, width=SIZE,
                        segment_frame_length=FRAMES, num_inference_steps=2, guidance_scale=4.0,
                        generator=torch.Generator().manual_seed(7), output_type="latent", **extra).frames
        # the pipeline's "latent" output is in the VAE's raw space (de-normalised for decoding)
        cfg = vae.pipe.vae.config
        raw = ours.samples * torch.tensor(cfg.latents_std).view(1, -1, 1, 1, 1) + torch.tensor(
            cfg.latents_mean).view(1, -1, 1, 1, 1)
        err = float((want - raw).abs().max()) / float(want.abs().max())
        assert err < 1e-4, (mode, err)


def test_missing_animate_inputs_are_named(parts):
    """The Animate model sampled without condition.wan_animate, condition.wan_animate without its face video, and
    without the reference's CLIP image tokens: each a message naming what to connect (not diffusers' TypeError on a
    None pose; the last named condition.frames)."""
    from nodes.generate.latent import Conditioning, Latent
    from nodes.generate.sampling import run_sampling
    from nodes.generate.wan_animate import animate_condition
    text = Conditioning("wan", torch.zeros(1, 6, 32))
    with pytest.raises(NodeError, match="through condition.wan_animate"):
        run_sampling(parts["model"], text, None, Latent(torch.zeros(1, 16, 2, 4, 4), "wan", 5, 16.0, SIZE, SIZE),
                     steps=1, cfg=1.0, sampler="flow_euler")
    clip = Clip.from_array(_video(FRAMES, 2, SIZE, SIZE))
    with pytest.raises(NodeError, match="needs the pose video .* and the face video"):
        animate_condition(parts["vae"], text, None, SIZE, SIZE, FRAMES, clip)
    out = animate_condition(parts["vae"], text, None, SIZE, SIZE, FRAMES, clip, clip)
    with pytest.raises(NodeError, match="reference's CLIP image tokens: connect encode.image"):
        run_sampling(parts["model"], out["positive"], None, out["latent"], steps=1, cfg=1.0, sampler="flow_euler")


def test_comfyuis_wan22_animate_template_chains_clips_and_runs(parts, tmp_path):
    """ComfyUI's video_wan2_2_14B_animate template: its three WanAnimateToVideo nodes (in subgraphs) become
    condition.wan_animate, each extension continuing the clip before it from the frame where it stopped (the offset
    output into the next one's offset), its first frames (trim_image) cut before the clips are joined, the reference
    frame trimmed (TrimVideoLatent by one), its SAM 2 nodes as mask.track_points, KJNodes' BlockifyMask and
    DrawMaskOnImage as mask.blockify and mask.fill, its DWPose Estimators as pose.dwpose: every node is mapped. In its
    Move mode (background and mask disconnected, as its note says) with the DWPose nodes (the drive video passed on) and
    its LoRAs bypassed, it runs on the tiny files: the extension's video is the first clip and the new frames
    after it."""
    import imageio.v3 as iio
    from PIL import Image
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    result = import_workflow(ROOT / "tests" / "data" / "comfyui" / "templates" / "video_wan2_2_14B_animate.json",
                             bypass_unmapped=True)
    g = result.graph
    unmapped = sorted({e.class_type for e in result.report.entries.values() if e.status == "unmapped"})
    assert unmapped == [], unmapped
    track = next(n for n in g.nodes.values() if n.type == "mask.track_points")
    assert track.params == {"points": '[{"x":256,"y":256}]', "model": "sam2_hiera_base_plus.safetensors"}
    first, extend = sorted((n for n in g.nodes.values() if n.type == "condition.wan_animate"), key=lambda n: n.id)
    assert first.params == {"width": 640, "height": 640, "frames": 77, "continue_frames": 5, "offset": 0}
    links = {(l.dst, l.dst_port): (l.src, l.src_port) for l in g.links()}
    assert links[extend.id, "offset"] == (first.id, "offset")
    assert g.nodes[links[extend.id, "continue_motion"][0]].type == "vae.decode"
    assert {n.params["amount"] for n in g.nodes.values() if n.type == "latent.trim"} == {1}
    assert sorted(src for (dst, port), (src, out) in links.items() if port == "start") == [first.id, extend.id]
    for n in [n for n in g.nodes.values() if n.type == "condition.wan_animate"]:
        for port in ("background", "character_mask"):
            g.disconnect(n.id, port)
        n.params.update(width=SIZE, height=SIZE, frames=FRAMES, continue_frames=1)
    saves = [n.id for n in g.nodes.values() if n.type == "io.save_video"]
    keep = set(g.ancestors(saves))
    for nid in [n for n in g.nodes if n not in keep]:
        g.remove_node(nid)
    iio.imwrite(tmp_path / "drive.mp4", _video(12, 6, 48, 48), fps=16, codec="libx264")
    Image.fromarray(_video(1, 2, SIZE, SIZE)[0]).save(tmp_path / "character.png")
    names = {"load.diffusion_model": ANIMATE, "load.text_encoder": "umt5_tiny_fp16.safetensors",
             "load.vae": "wan_tiny_vae.safetensors", "load.clip_vision": "clip_vision_tiny.safetensors"}
    for n in g.nodes.values():
        if n.type in names:
            n.params["name"] = names[n.type]
        elif n.type in ("lora.image", "pose.dwpose"):   # no LoRA or pose files here: bypassed, the input passes on
            g.set_bypass(n.id, True)
        elif n.type == "video.resize":
            n.params.update(width=SIZE, height=SIZE)
        elif n.type == "generate.sample":
            n.params["steps"] = 2
        elif n.type == "io.load_video":
            n.params["path"] = str(tmp_path / "drive.mp4")
        elif n.type == "io.load_image":
            n.params["path"] = str(tmp_path / "character.png")
        elif n.type == "io.save_video":
            n.params["path"] = str(tmp_path / f"{n.id}.mp4")
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    clip = iio.imread(tmp_path / "save_video_19.mp4")
    joined = iio.imread(tmp_path / "save_video_243.mp4")
    assert clip.shape == (FRAMES, SIZE, SIZE, 3) and joined.shape == (2 * FRAMES - 1, SIZE, SIZE, 3)
    assert np.abs(joined[:FRAMES].astype(int) - clip).mean() < 2          # the first clip, re-encoded


def test_the_example_chains_two_clips_natively(parts, tmp_path):
    """examples/comfyui/wan22_animate.yaml: the second clip continues the first (continue_motion, the first node's
    offset output into its offset), its repeated first frames cut by its trim_image output, the two joined."""
    import imageio.v3 as iio
    from PIL import Image
    from comfy_layouts import run_example
    iio.imwrite(tmp_path / "drive.mp4", _video(12, 6, SIZE, SIZE), fps=16, codec="libx264")
    Image.fromarray(_video(1, 2, SIZE, SIZE)[0]).save(tmp_path / "character.png")
    size = [f"{n}.{k}={v}" for n in ("animate", "more") for k, v in (("width", SIZE), ("height", SIZE),
                                                                     ("frames", FRAMES))]
    _, first = run_example("wan22_animate", parts["root"] / "models", tmp_path / "joined.mp4", [
        f"unet.name={ANIMATE}", "clip.name=umt5_tiny_fp16.safetensors", "vae.name=wan_tiny_vae.safetensors",
        "vision.name=clip_vision_tiny.safetensors", f"character.path={tmp_path / 'character.png'}",
        f"pose.path={tmp_path / 'drive.mp4'}", f"face.path={tmp_path / 'drive.mp4'}", "more.continue_frames=1",
        "sample.steps=2", "sample_more.steps=2", *size])
    joined = iio.imread(tmp_path / "joined.mp4")
    assert first.shape[0] == FRAMES and joined.shape == (2 * FRAMES - 1, SIZE, SIZE, 3)
