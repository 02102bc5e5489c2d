"""Wan VACE: a tiny VACE model in ComfyUI's single-file layout (wan2.1_vace_*.safetensors) against the same
model as a diffusers folder, the VACE conditioning against diffusers' WanVACEPipeline, and ComfyUI's public
reference-to-video example imported and run end to end on the tiny model."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
PHOTO = ROOT / "resources" / "samples" / "coffee.png"
UNET = "wan_tiny_vace_fp16.safetensors"

GRAPH = """
kinograph: 1
nodes:
%(loaders)s
  photo: {type: io.load_image, params: {path: '%(photo)s'}}
  prompt: {type: encode.text, inputs: {text_encoder: %(te)s}, params: {text: a red fox, negative: blurry}}
  vace:
    type: condition.vace
    inputs: {vae: %(vae)s, positive: prompt.positive, negative: prompt.negative%(reference)s}
    params: {width: 32, height: 32, frames: 5}
  sample:
    type: generate.sample
    inputs: {model: %(model)s, positive: vace.positive, negative: vace.negative, latent: vace.latent}
    params: {steps: 2, sampler: flow_euler, seed: 3, cfg: 4.0}
  trim: {type: latent.trim, inputs: {latent: sample.latent}, params: {amount: %(trim)d}}
  decode: {type: vae.decode, inputs: {vae: %(vae)s, latent: trim.latent}}
"""
SPLIT = {"loaders": f"""  unet: {{type: load.diffusion_model, params: {{name: {UNET}}}}}
  clip: {{type: load.text_encoder, params: {{name: umt5_tiny_fp16.safetensors, type: wan}}}}
  vae: {{type: load.vae, params: {{name: wan_tiny_vae.safetensors}}}}""", "te": "clip.text_encoder",
         "vae": "vae.vae", "model": "unet.model"}


def wan_vace(root):
    from tiny_models import build_wan_comfy
    return build_wan_comfy(root, vace=True)


@pytest.fixture(scope="module")
def vace(tmp_path_factory):
    from comfy_layouts import built
    mp = pytest.MonkeyPatch()
    for root in built(wan_vace, tmp_path_factory):
        mp.setenv("KINOGRAPH_MODELS", str(root / "models"))
        yield root
    mp.undo()


def _frames(path: Path) -> int:
    if path.suffix == ".webp":
        from PIL import Image
        with Image.open(path) as im:
            return im.n_frames
    import av
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _graph(parts, reference=True):
    return GRAPH % {**parts, "photo": PHOTO, "reference": ", reference: photo.image" if reference else "",
                    "trim": 1 if reference else 0}


def _run(text):
    from graph_engine.api import Session, load_workflow
    res = Session(device="cpu").run(load_workflow(text=text, check=True), use_cache=False)
    assert res.ok, res.failed
    return res.outputs


def test_vace_file_matches_the_diffusers_folder(vace):
    """wan2.1_vace_*.safetensors through load.diffusion_model samples what WanVACEPipeline's folder samples."""
    folder = {"loaders": f"  load: {{type: load.wan, params: {{path: '{vace / 'diffusers'}'}}}}",
              "te": "load.text_encoder", "vae": "load.vae", "model": "load.model"}
    ref = _run(_graph(folder))
    got = _run(_graph(SPLIT))
    a, b = ref["sample"]["latent"].samples, got["sample"]["latent"].samples
    assert a.shape == (1, 16, 3, 4, 4)                     # 2 video latent frames after the reference frame
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    assert got["trim"]["latent"].samples.shape[2] == 2 and got["trim"]["latent"].frames == 5
    assert got["decode"]["video"].length == 5
    # The hints are used: without the reference image the same seed gives another video.
    plain = _run(_graph(SPLIT, reference=False))["trim"]["latent"].samples
    assert plain.shape == (1, 16, 2, 4, 4)
    assert (plain - b[:, :, 1:]).abs().max() > 1e-3


def test_fp8_scaled_vace_file_samples_close_to_fp16(vace):
    """Kijai's and ComfyUI's fp8_scaled VACE files: every matrix (the VACE blocks' too) dequantised."""
    got = _run(_graph({**SPLIT, "loaders": SPLIT["loaders"].replace(UNET, "wan_tiny_vace_fp8_scaled.safetensors")}))
    ref = _run(_graph(SPLIT))
    a, b = ref["sample"]["latent"].samples, got["sample"]["latent"].samples
    rel = float((a - b).norm() / a.norm())
    assert 0 < rel < 0.05, rel


def test_vace_layers_are_spread_like_comfyui(vace):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import will_load
    det = detect_file(vace / "models" / "diffusion_models" / UNET)
    assert (det.variant, will_load(det)) == ("vace-dim128", (True, "load.diffusion_model"))
    h = load_diffusion_model(ModelManager(), UNET, "default", "cpu")
    assert type(h.denoiser).__name__ == "WanVACETransformer3DModel"
    assert h.denoiser.config.vace_layers == [0, 2] and h.denoiser.config.vace_in_channels == 96
    from nodes.generate.converters.wan import vace_settings
    state = {"vace_patch_embedding.weight": torch.zeros(5120, 96, 1, 2, 2), "vace_blocks.0.proj_in.weight": 0,
             **{f"vace_blocks.{i}.proj_out.weight": 0 for i in range(8)}}
    assert vace_settings(state, 40)["vace_layers"] == [0, 5, 10, 15, 20, 25, 30, 35]       # Wan VACE 14B


def test_vace_context_matches_diffusers_pipeline(vace):
    """condition.vace's control context (inactive/reactive latents, unfolded mask, reference frame in front)
    equals the one WanVACEPipeline builds from the same control video, binary mask and reference."""
    from diffusers import WanVACEPipeline
    from PIL import Image
    from graph_engine import Clip
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.latent import Conditioning
    from nodes.generate.vace import vace_condition
    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    mask = np.zeros((5, 32, 32, 3), np.uint8)
    mask[:, 8:24, 16:] = 255
    ref = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    pipe = WanVACEPipeline.from_pretrained(str(vace / "diffusers"), local_files_only=True)
    v, m, refs = pipe.preprocess_conditions([Image.fromarray(f) for f in video], [Image.fromarray(f) for f in mask],
                                            Image.fromarray(ref), 1, 32, 32, 5, torch.float32, "cpu")
    want = torch.cat([pipe.prepare_video_latents(v, m, refs, device="cpu"), pipe.prepare_masks(m, refs)], dim=1)
    cond = Conditioning("wan", torch.zeros(1, 4, 32))
    out = vace_condition(load_vae(ModelManager(), "wan_tiny_vae.safetensors", "cpu"), cond, cond, 32, 32, 5, 0.7,
                         Clip.from_array(video, 16.0), Clip.from_array(mask, 16.0), ref)
    got = out["positive"].extra["vace"]
    assert got.shape == want.shape == (1, 96, 3, 4, 4)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert out["positive"].meta["vace_strength"] == 0.7 and torch.equal(out["negative"].extra["vace"], got)
    assert out["latent"].samples.shape == (1, 16, 3, 4, 4) and out["trim"] == 1


def test_trim_drops_leading_latent_frames():
    from nodes.generate.latent import Latent
    from nodes.generate.vace import trim_latent
    lat = Latent(torch.arange(22.0).view(1, 1, 22, 1, 1), "wan", 85, 16.0, 8, 8)
    out = trim_latent(lat, 1)
    assert out.frames == 81 and out.samples.shape[2] == 21 and out.samples[0, 0, 0, 0, 0] == 1
    assert trim_latent(lat, 0) is lat
    with pytest.raises(NodeError, match="nothing would be left"):
        trim_latent(lat, 22)


def test_vace_model_samples_text_only_and_plain_wan_refuses_vace(vace):
    """Without condition.vace a VACE model runs as text-to-video (ComfyUI's empty control); VACE conditioning
    on a Wan model without VACE blocks says what is needed."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vace import vace_condition
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager(max_loaded=8)
    model = load_diffusion_model(mm, UNET, "default", "cpu")
    te = load_text_encoder(mm, "umt5_tiny_fp16.safetensors", "", "wan", "cpu")
    vae = load_vae(mm, "wan_tiny_vae.safetensors", "cpu")
    pos, neg = encode_prompt(te, "a cat"), encode_prompt(te, "")
    out = run_sampling(model, pos, neg, empty_latent(vae, 5, 32, 32, 16.0), steps=1, cfg=3.0, sampler="euler", seed=2)
    assert out.samples.shape == (1, 16, 2, 4, 4) and torch.isfinite(out.samples).all()
    c = vace_condition(vae, pos, neg, 32, 32, 5)
    c_short = vace_condition(vae, pos, neg, 32, 32, 9)
    with pytest.raises(NodeError, match="covers 3 latent frames but the latent has 2"):
        run_sampling(model, c_short["positive"], c_short["negative"], c["latent"], steps=1, cfg=3.0,
                     sampler="euler", seed=2)


def test_condition_vace_needs_a_vace_model(tmp_path_factory, monkeypatch):
    from tiny_models import build_all
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vace import vace_condition
    root = build_all(tmp_path_factory.mktemp("wan_plain"), ("wan",))
    mm = ModelManager()
    h = mm.load("wan", str(root / "wan"))
    parts = mm.components(h)
    pos = encode_prompt(parts["text_encoder"], "a cat")
    c = vace_condition(parts["vae"], pos, None, 32, 32, 5)
    with pytest.raises(NodeError, match="needs a Wan VACE model"):
        run_sampling(h, c["positive"], None, c["latent"], steps=1, cfg=1.0, sampler="euler", seed=0)


def test_damaged_vace_files_get_a_clear_message(vace, tmp_path):
    from safetensors.torch import load_file, save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    state = load_file(str(vace / "models" / "diffusion_models" / UNET))
    no_embedding = {k: v for k, v in state.items() if k != "vace_patch_embedding.weight"}
    save_file(no_embedding, str(tmp_path / "wan2.1_vace_partial.safetensors"))
    with pytest.raises(NodeError, match="lacks its VACE part.*Copy the file again"):
        load_diffusion_model(ModelManager(), str(tmp_path / "wan2.1_vace_partial.safetensors"), "default", "cpu")
    bad = dict(state, **{"vace_blocks.1.after_proj.weight": torch.zeros(64, 128, dtype=torch.float16)})
    save_file(bad, str(tmp_path / "wan2.1_vace_bad.safetensors"))
    with pytest.raises(NodeError, match=r"vace_blocks\.1\.proj_out\.weight has shape \(64, 128\), expected "
                                        r"\(128, 128\)"):
        load_diffusion_model(ModelManager(), str(tmp_path / "wan2.1_vace_bad.safetensors"), "default", "cpu")
    whole = (vace / "models" / "diffusion_models" / UNET).read_bytes()
    (tmp_path / "wan2.1_vace_cut.safetensors").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(NodeError, match="wan2.1_vace_cut.safetensors is not a valid safetensors file.*truncated"):
        load_diffusion_model(ModelManager(), str(tmp_path / "wan2.1_vace_cut.safetensors"), "default", "cpu")


def test_comfyui_vace_reference_example_runs_on_the_tiny_model(vace, tmp_path):
    """ComfyUI_examples' wan/vace_reference_to_video.json, its model names remapped to the tiny VACE files:
    the reference frame is sampled and trimmed, so both saved videos hold the clip's frames only."""
    from app.comfyui import import_workflow
    result = import_workflow(ROOT / "tests" / "data" / "comfyui" / "wan_vace_r2v.json")
    # its KSampler (uni_pc) is ComfyUI's own since the samplers were made exact
    assert result.report.summary().startswith("13 mapped exactly")
    names = {"load.diffusion_model": UNET, "load.text_encoder": "umt5_tiny_fp16.safetensors",
             "load.vae": "wan_tiny_vae.safetensors"}
    g = result.graph
    for n in g.nodes.values():
        if n.type in names:
            n.params["name"] = names[n.type]
        elif n.type == "io.load_image":
            n.params["path"] = str(PHOTO)
        elif n.type == "condition.vace":
            n.params.update(width=32, height=32, frames=5)
        elif n.type == "generate.sample":
            n.params["steps"] = 2
        elif n.type == "io.save_video":
            n.params["path"] = str(tmp_path / Path(n.params["path"]).name)
    assert g.nodes["trim_video_latent_56"].params["amount"] == 1
    from graph_engine.api import Session, load_workflow
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    assert res.outputs["k_sampler_3"]["latent"].samples.shape[2] == 3
    assert _frames(tmp_path / "ComfyUI.webp") == 5 and _frames(tmp_path / "ComfyUI.webm") == 5


def test_shipped_vace_example_runs(vace, tmp_path):
    from graph_engine.api import Session, load_workflow
    out = tmp_path / "vace.mp4"
    res = Session(device="cpu").run(load_workflow(ROOT / "examples" / "wan_vace_reference.yaml", check=False), overrides=[
        f"unet.name={UNET}", "clip.name=umt5_tiny_fp16.safetensors", "vae.name=wan_tiny_vae.safetensors",
        "vace.frames=5", "vace.width=32", "vace.height=32", "sample.steps=2", f"save.path={out}"], use_cache=False)
    assert res.ok, res.failed
    assert _frames(out) == 5


def test_control_clips_are_fitted_and_padded_as_comfyui_does():
    """Control frames and masks cropped about the centre to the size, and padded past their end: grey
    frames (nothing to follow) and white masks (generate)."""
    from graph_engine import Clip
    from nodes.generate.vace import control_frames, control_masks
    wide = np.zeros((2, 16, 64, 3), np.uint8)
    wide[:, :, 28:36] = 255                               # a white band in the middle
    px = control_frames(Clip.from_array(wide, 16.0), 5, 16, 16)
    assert px.shape == (5, 16, 16, 3)
    assert px[:2, :, 4:12].min() == 1.0 and px[:2, :, 0].max() == 0.0      # only the centre 16 columns kept
    assert (px[2:] == 0.5).all()
    m = control_masks(Clip.from_array(np.zeros((2, 16, 16, 3), np.uint8), 16.0), 5, 16, 16)
    assert m.shape == (5, 16, 16, 1) and (m[:2] == 0).all() and (m[2:] == 1).all()


def test_comfyui_vace_inpainting_template_segments_and_runs(vace, tmp_path):
    """ComfyUI's video_wan_vace_inpainting template, every node mapped: SAM 3 finds what the prompt names
    (SAM3_Detect as mask.segment, on a tiny SAM 3 in sam2/sam3, the folder the import reads for ComfyUI's
    sam3.1 file), the mask grows, VACE redraws there and the clip is saved; its CausVid LoRA is bypassed (no LoRA
    file here)."""
    import imageio.v3 as iio
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    from tiny_models import build_sam3_video
    if not (vace / "models" / "sam2" / "sam3").exists():
        build_sam3_video(vace / "models" / "sam2" / "sam3")
    result = import_workflow(ROOT / "tests" / "data" / "comfyui" / "templates" / "video_wan_vace_inpainting.json")
    assert not [e.class_type for e in result.report.entries.values() if e.status == "unmapped"]
    g = result.graph
    segment = next(n for n in g.nodes.values() if n.type == "mask.segment")
    assert segment.params == {"prompt": "cat", "model": "sam3", "threshold": 0.5, "objects": 1}
    segment.params["threshold"] = 0.0                 # random weights: every object the tiny model finds
    frames = np.random.default_rng(1).integers(0, 256, (5, 40, 48, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "input.mp4", frames, fps=16, codec="libx264")
    names = {"load.diffusion_model": UNET, "load.text_encoder": "umt5_tiny_fp16.safetensors",
             "load.vae": "wan_tiny_vae.safetensors"}
    for n in g.nodes.values():
        if n.type in names:
            n.params["name"] = names[n.type]
        elif n.type == "lora.image":
            g.set_bypass(n.id, True)
        elif n.type in ("video.resize", "video.scale", "condition.vace"):
            n.params.update(width=32, height=32)
        elif n.type == "generate.sample":
            n.params["steps"] = 2
        elif n.type == "io.load_video":
            n.params["path"] = str(tmp_path / "input.mp4")
        elif n.type == "io.load_image":
            n.params["path"] = str(PHOTO)
        elif n.type == "io.save_video":
            n.params["path"] = str(tmp_path / "out.mp4")
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    mask = res.outputs[segment.id]["mask"]
    assert (mask.length, mask.width, mask.height) == (5, 32, 32)
    assert iio.imread(tmp_path / "out.mp4").shape == (5, 32, 32, 3)
